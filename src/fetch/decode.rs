//! Response bytes -> text: the Content-Type charset, else a `<meta charset>` near the top of the
//! page, else UTF-8; bytes the encoding cannot map become U+FFFD rather than failing the check.

use encoding_rs::{Encoding, UTF_8};

/// How far into a page a browser looks for `<meta charset>`; the HTML standard says 1024 bytes.
const META_PRESCAN: usize = 1024;

/// Decode a body. An unknown charset label is ignored, as browsers do, rather than failing a
/// page that is readable anyway.
pub(super) fn decode(body: Vec<u8>, content_type: Option<&str>) -> String {
    let encoding = content_type
        .and_then(charset_param)
        .and_then(|label| Encoding::for_label(label.as_bytes()))
        .or_else(|| meta_charset(&body[..body.len().min(META_PRESCAN)]))
        .unwrap_or(UTF_8);
    if encoding == UTF_8 {
        // The common case keeps its buffer: no copy for a valid UTF-8 page.
        return match String::from_utf8(body) {
            Ok(text) => text,
            Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        };
    }
    // `decode` also honours a byte-order mark, which outranks any label.
    encoding.decode(&body).0.into_owned()
}

/// The `charset` parameter of a Content-Type value, unquoted.
fn charset_param(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches(|c| c == '"' || c == '\''))
    })
}

/// The encoding named by `<meta charset="...">` or `<meta http-equiv="Content-Type"
/// content="...; charset=...">` in the first bytes of a page.
fn meta_charset(head: &[u8]) -> Option<&'static Encoding> {
    let lower = head.to_ascii_lowercase();
    let mut rest = lower.as_slice();
    while let Some(at) = find(rest, b"<meta") {
        rest = &rest[at + 5..];
        let end = rest.iter().position(|&b| b == b'>').unwrap_or(rest.len());
        let tag = &rest[..end];
        if let Some(at) = find(tag, b"charset") {
            let value = tag[at + 7..]
                .iter()
                .skip_while(|b| b.is_ascii_whitespace())
                .skip_while(|&&b| b == b'=')
                .skip_while(|b| b.is_ascii_whitespace() || **b == b'"' || **b == b'\'')
                .take_while(|b| !(b.is_ascii_whitespace() || b"\"';/>".contains(b)))
                .copied()
                .collect::<Vec<u8>>();
            // A page that claims UTF-16 in a meta tag is already being read as ASCII, so the
            // standard says to take it as UTF-8.
            return Encoding::for_label(&value).map(|e| e.output_encoding());
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_charset_wins() {
        let body = b"<meta charset=utf-8><p>caf\xe9</p>".to_vec();
        let text = decode(body, Some("text/html; charset=ISO-8859-1"));
        assert!(text.contains("café"), "{text}");
    }

    #[test]
    fn meta_charset_is_used_when_the_header_is_silent() {
        let body = b"<html><head><META http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1251\"></head>\xcf\xf0\xe8".to_vec();
        assert!(decode(body, Some("text/html")).ends_with("При"));
        let body = b"<meta charset='shift_jis'>\x93\xfa\x96\x7b".to_vec();
        assert!(decode(body, None).ends_with("日本"));
    }

    #[test]
    fn unknown_labels_fall_back_to_utf8_with_replacement() {
        let body = b"<p>\xe2\x82\xac 5 \xff</p>".to_vec();
        let text = decode(body, Some("text/html; charset=\"x-no-such-charset\""));
        assert_eq!(text, "<p>€ 5 \u{fffd}</p>");
    }

    #[test]
    fn a_bom_outranks_the_label() {
        let body = b"\xef\xbb\xbfcaf\xc3\xa9".to_vec();
        assert_eq!(decode(body, Some("text/html; charset=latin1")), "café");
    }

    #[test]
    fn charset_param_reads_quoted_and_spaced_values() {
        assert_eq!(
            charset_param("text/html; Charset = \"UTF-8\""),
            Some("UTF-8")
        );
        assert_eq!(charset_param("text/html"), None);
        assert_eq!(
            charset_param("text/html; boundary=x; charset=koi8-r"),
            Some("koi8-r")
        );
    }
}
