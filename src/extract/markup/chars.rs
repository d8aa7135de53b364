//! Character references (`&amp;`, `&#233;`, `&#x20AC;`) as the HTML tokenizer decodes them, in
//! the forms that leave no doubt. The tokenizer's corner cases (a named reference without its
//! `;`, a numeric one cut short) are reported instead of guessed, so a streaming read can hand
//! such a page to the parser.

use std::borrow::Cow;

use html5ever::data::{C1_REPLACEMENTS, NAMED_ENTITIES};

/// `raw` with its line breaks made `\n`, as the tokenizer hands raw text (scripts, styles) on.
pub(in crate::extract) fn lines(raw: &str) -> Cow<'_, str> {
    match raw.contains('\r') {
        true => Cow::Owned(raw.replace("\r\n", "\n").replace('\r', "\n")),
        false => Cow::Borrowed(raw),
    }
}

/// A character reference the tokenizer reads by rules this module does not follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::extract) struct Doubtful;

/// `raw` with its character references decoded and line breaks made `\n`, as the tokenizer
/// hands text and attribute values to the tree.
pub(in crate::extract) fn decode(raw: &str) -> Result<Cow<'_, str>, Doubtful> {
    if !raw.bytes().any(|b| b == b'&' || b == b'\r') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find(['&', '\r']) {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix('\r') {
            out.push('\n');
            rest = after.strip_prefix('\n').unwrap_or(after);
            continue;
        }
        let (decoded, used) = reference(&rest[1..])?;
        match decoded {
            Some(text) => out.push_str(&text),
            None => out.push('&'),
        }
        rest = &rest[1 + used..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// The reference after an `&`: what it decodes to (None: the `&` is literal) and how many
/// bytes it takes.
fn reference(after: &str) -> Result<(Option<String>, usize), Doubtful> {
    let bytes = after.as_bytes();
    match bytes.first() {
        Some(b'#') => numeric(after),
        Some(b) if b.is_ascii_alphanumeric() => {
            let len = bytes
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric())
                .count();
            // The table holds every prefix of every name too, as (0, 0).
            let named = |name: &str| NAMED_ENTITIES.get(name).filter(|(first, _)| *first != 0);
            if bytes.get(len) == Some(&b';')
                && let Some(&(first, second)) = named(&after[..=len])
            {
                let text = [first, second]
                    .into_iter()
                    .filter(|&c| c != 0)
                    .map(|c| char::from_u32(c).ok_or(Doubtful))
                    .collect::<Result<String, _>>()?;
                return Ok((Some(text), len + 1));
            }
            // A legacy name without its `;` ("&copy 2024", "&amp=") decodes by rules of its
            // own; a run that starts no name at all ("R&D") is plain text.
            if (1..=len.min(32)).any(|n| named(&after[..n]).is_some()) {
                return Err(Doubtful);
            }
            Ok((None, 0))
        }
        _ => Ok((None, 0)),
    }
}

fn numeric(after: &str) -> Result<(Option<String>, usize), Doubtful> {
    let bytes = after.as_bytes();
    let (radix, start) = match bytes.get(1) {
        Some(b'x' | b'X') => (16, 2),
        _ => (10, 1),
    };
    let digits = bytes[start..]
        .iter()
        .take_while(|b| (b as &u8).is_ascii_hexdigit() && (radix == 16 || b.is_ascii_digit()))
        .count();
    if digits == 0 || digits > 8 || bytes.get(start + digits) != Some(&b';') {
        return Err(Doubtful);
    }
    let code = u32::from_str_radix(&after[start..start + digits], radix).map_err(|_| Doubtful)?;
    let c = match code {
        0x80..=0x9f => C1_REPLACEMENTS[(code - 0x80) as usize]
            .unwrap_or_else(|| char::from_u32(code).expect("a C1 control")),
        0 | 0xd800..=0xdfff | 0x11_0000.. => '\u{fffd}',
        // Controls and noncharacters pass through as the tokenizer lets them, with an error.
        _ => char::from_u32(code).ok_or(Doubtful)?,
    };
    Ok((Some(c.to_string()), start + digits + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_decode_as_the_tokenizer_decodes_them() {
        let cases = [
            ("plain", "plain"),
            ("a &amp; b", "a & b"),
            ("&euro;12&nbsp;", "€12\u{a0}"),
            ("&#233;&#xE9;&#X20ac;", "éé€"),
            ("&#128;", "€"),
            ("&#0;", "\u{fffd}"),
            ("R&D & co &zzz;", "R&D & co &zzz;"),
            ("a\r\nb\rc", "a\nb\nc"),
            ("&NotEqualTilde;", "\u{2242}\u{338}"),
        ];
        for (raw, decoded) in cases {
            assert_eq!(decode(raw), Ok(Cow::Borrowed(decoded)), "{raw}");
        }
        for doubtful in ["&copy 2024", "&amp=1", "&#233 x", "&#x;", "&notanentity;"] {
            assert_eq!(decode(doubtful), Err(Doubtful), "{doubtful}");
        }
    }
}
