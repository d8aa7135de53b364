//! Scripts and style sheets are often half of a product page's bytes, and no field reads them
//! (JSON data blocks aside). Emptying them before the HTML parse spares the parser that work.

use std::borrow::Cow;

/// `html` with the contents of its `<script>` and `<style>` elements removed, except scripts
/// that carry JSON data (`application/ld+json`, `application/json`). The tags themselves stay,
/// so the document keeps its shape.
pub fn strip(html: &str) -> Cow<'_, str> {
    let bytes = html.as_bytes();
    let mut out = String::new();
    // Copied up to here.
    let mut done = 0;
    let mut at = 0;
    while let Some(open) = find_open(bytes, at) {
        let Some(tag_end) = tag_end(bytes, open.content_start) else {
            break;
        };
        let content = tag_end + 1;
        let Some(close) = find_ci(bytes, content, open.close) else {
            break;
        };
        if !(open.script && carries_data(&html[open.content_start..tag_end])) && close > content {
            out.push_str(&html[done..content]);
            done = close;
        }
        at = close + open.close.len();
    }
    if done == 0 {
        return Cow::Borrowed(html);
    }
    out.push_str(&html[done..]);
    Cow::Owned(out)
}

struct Open {
    script: bool,
    /// Just after the tag name: where the attributes start.
    content_start: usize,
    close: &'static [u8],
}

/// The next `<script` or `<style` start tag at or after `from`.
fn find_open(bytes: &[u8], mut from: usize) -> Option<Open> {
    while let Some(lt) = memchr(bytes, b'<', from) {
        let rest = &bytes[lt + 1..];
        for (name, script, close) in [
            (&b"script"[..], true, &b"</script"[..]),
            (&b"style"[..], false, &b"</style"[..]),
        ] {
            let after = lt + 1 + name.len();
            if rest.len() > name.len()
                && rest[..name.len()].eq_ignore_ascii_case(name)
                && matches!(
                    rest[name.len()],
                    b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'>' | b'/'
                )
            {
                return Some(Open {
                    script,
                    content_start: after,
                    close,
                });
            }
        }
        from = lt + 1;
    }
    None
}

/// The `>` that ends a start tag whose attributes begin at `from`, skipping quoted values.
fn tag_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in bytes.iter().enumerate().skip(from) {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// A script whose type says it holds JSON: structured data that fields may read.
fn carries_data(attributes: &str) -> bool {
    attributes.to_ascii_lowercase().contains("json")
}

fn memchr(bytes: &[u8], needle: u8, from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .iter()
        .position(|&b| b == needle)
        .map(|i| from + i)
}

/// The next case-insensitive occurrence of `needle` (which starts with `<`) at or after `from`.
fn find_ci(bytes: &[u8], mut from: usize, needle: &[u8]) -> Option<usize> {
    while let Some(lt) = memchr(bytes, b'<', from) {
        if bytes
            .get(lt..lt + needle.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(needle))
        {
            return Some(lt);
        }
        from = lt + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_styles_are_emptied_and_data_blocks_kept() {
        let page = concat!(
            "<head><style>.a{}</style><SCRIPT src=x.js></SCRIPT>",
            "<script type=\"application/ld+json\">{\"price\": 1}</script>",
            "<script id=\"__NEXT_DATA__\" type='application/json'>{}</script></head>",
            "<body><script>if (a < b && c > d) { x = \"</div>\"; }</script>",
            "<p class=\"price\">$5</p><scripts>not a script</scripts>",
            "<style media=\"x>y\">p{}</style></body>"
        );
        assert_eq!(
            strip(page),
            concat!(
                "<head><style></style><SCRIPT src=x.js></SCRIPT>",
                "<script type=\"application/ld+json\">{\"price\": 1}</script>",
                "<script id=\"__NEXT_DATA__\" type='application/json'>{}</script></head>",
                "<body><script></script>",
                "<p class=\"price\">$5</p><scripts>not a script</scripts>",
                "<style media=\"x>y\"></style></body>"
            )
        );
    }

    #[test]
    fn a_page_without_scripts_is_not_copied_and_broken_tags_are_left_alone() {
        assert!(matches!(strip("<p>plain</p>"), Cow::Borrowed(_)));
        assert!(matches!(
            strip("<p>x</p><script>never closed"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(strip("<script"), Cow::Borrowed(_)));
        assert_eq!(strip("<style>a</style><script"), "<style></style><script");
    }
}
