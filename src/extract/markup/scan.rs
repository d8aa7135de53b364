//! Byte-level scanning as the HTML tokenizer does it: where a tag, a comment or raw text ends.

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

/// The `>` that ends a tag whose attributes begin at `from`, and whether the tag ends in `/>`;
/// None when the document ends inside the tag. Quotes only count where an attribute value
/// starts, as in the HTML tokenizer: `<p title=a"b>` ends at its `>`.
pub(super) fn tag_end(bytes: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let class = |i: usize| bytes.get(i).map(|&b| CLASS[b as usize]);
    loop {
        while class(i)? == SPACE {
            i += 1;
        }
        match bytes[i] {
            b'>' => return Some((i, false)),
            b'/' => {
                i += 1;
                if bytes.get(i) == Some(&b'>') {
                    return Some((i, true));
                }
                continue;
            }
            _ => {}
        }
        // An attribute name: its first character may be `=`.
        i += 1;
        while class(i)? & (SPACE | GT | SLASH | EQ) == 0 {
            i += 1;
        }
        while class(i)? == SPACE {
            i += 1;
        }
        if bytes[i] != b'=' {
            continue;
        }
        i += 1;
        while class(i)? == SPACE {
            i += 1;
        }
        match bytes[i] {
            quote @ (b'"' | b'\'') => i = find(bytes, quote, i + 1)? + 1,
            b'>' => return Some((i, false)),
            _ => {
                while class(i).is_some_and(|c| c & (SPACE | GT) == 0) {
                    i += 1;
                }
            }
        }
    }
}

/// What the tokenizer makes of a byte inside a tag.
pub(super) const SPACE: u8 = 1;
pub(super) const GT: u8 = 2;
pub(super) const SLASH: u8 = 4;
pub(super) const EQ: u8 = 8;

pub(super) static CLASS: [u8; 256] = {
    let mut class = [0; 256];
    class[b' ' as usize] = SPACE;
    class[b'\t' as usize] = SPACE;
    class[b'\n' as usize] = SPACE;
    class[b'\r' as usize] = SPACE;
    class[0x0c] = SPACE;
    class[b'>' as usize] = GT;
    class[b'/' as usize] = SLASH;
    class[b'=' as usize] = EQ;
    class
};

/// Where the comment whose text starts at `from` (just after `<!--`) ends.
pub(super) fn comment_end(bytes: &[u8], from: usize) -> Option<usize> {
    // `<!-->` and `<!--->` are empty comments.
    if bytes.get(from) == Some(&b'>') {
        return Some(from + 1);
    }
    if bytes.get(from..from + 2) == Some(b"->") {
        return Some(from + 2);
    }
    let mut at = from;
    while let Some(dashes) = find_seq(bytes, b"--", at) {
        match bytes.get(dashes + 2) {
            Some(b'>') => return Some(dashes + 3),
            Some(b'!') if bytes.get(dashes + 3) == Some(&b'>') => return Some(dashes + 4),
            _ => at = dashes + 1,
        }
    }
    None
}

/// Where the raw text that starts at `from` ends: the `<` of the first `</name` followed by a
/// space, `/` or `>`, ignoring case.
pub(super) fn raw_text_end(bytes: &[u8], mut from: usize, name: &[u8]) -> Option<usize> {
    while let Some(lt) = find_seq(bytes, b"</", from) {
        let after = lt + 2 + name.len();
        if bytes
            .get(lt + 2..after)
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
            && bytes
                .get(after)
                .is_some_and(|&b| is_space(b) || b == b'/' || b == b'>')
        {
            return Some(lt);
        }
        from = lt + 2;
    }
    None
}

/// A script whose type says it holds JSON: structured data that fields may read.
pub(super) fn carries_data(attributes: &str) -> bool {
    attributes.to_ascii_lowercase().contains("json")
}

pub(super) fn find(bytes: &[u8], needle: u8, from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    // Most gaps between tags and most attribute values are short: look at those bytes one by
    // one before paying for a vectorised search.
    let near = rest.len().min(16);
    if let Some(i) = rest[..near].iter().position(|&b| b == needle) {
        return Some(from + i);
    }
    memchr::memchr(needle, &rest[near..]).map(|i| from + near + i)
}

pub(super) fn find_seq(bytes: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    memchr::memmem::find(bytes.get(from..)?, needle).map(|i| from + i)
}
