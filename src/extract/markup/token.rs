//! What the markup at a `<` is, as the HTML tokenizer reads it: the one dispatch both the
//! prepare pass and the streaming read follow.

use super::elements::Name;
use super::scan::{comment_end, find, find_seq, tag_end};

pub(super) enum Token {
    /// Not markup: the `<` is text.
    Text,
    /// A comment, doctype, processing instruction or bogus comment, ending before `end`.
    Skip {
        end: usize,
    },
    /// CDATA inside SVG or MathML, ending before `end`.
    Cdata {
        end: usize,
    },
    EndTag {
        name: Name,
        gt: usize,
    },
    StartTag {
        name: Name,
        gt: usize,
        self_closing: bool,
    },
    /// The document ends inside it.
    Eof,
}

/// The token that starts with the `<` at `lt`; `foreign` when tags are read as SVG or MathML.
pub(super) fn token_at(bytes: &[u8], lt: usize, foreign: bool) -> Token {
    let skip = |end: Option<usize>| end.map_or(Token::Eof, |end| Token::Skip { end });
    match bytes.get(lt + 1) {
        Some(b'!') if bytes[lt..].starts_with(b"<!--") => skip(comment_end(bytes, lt + 4)),
        Some(b'!') if foreign && bytes[lt..].starts_with(b"<![CDATA[") => {
            find_seq(bytes, b"]]>", lt + 9).map_or(Token::Eof, |i| Token::Cdata { end: i + 3 })
        }
        // Doctypes, CDATA outside SVG and MathML, and `<?...>` run to the next `>`.
        Some(b'!' | b'?') => skip(find(bytes, b'>', lt + 2).map(|i| i + 1)),
        Some(b'/') => match bytes.get(lt + 2) {
            Some(c) if c.is_ascii_alphabetic() => {
                let name = Name::read(bytes, lt + 2);
                match tag_end(bytes, name.end()) {
                    Some((gt, _)) => Token::EndTag { name, gt },
                    None => Token::Eof,
                }
            }
            Some(b'>') => Token::Skip { end: lt + 3 },
            Some(_) => skip(find(bytes, b'>', lt + 2).map(|i| i + 1)),
            None => Token::Eof,
        },
        Some(c) if c.is_ascii_alphabetic() => {
            let name = Name::read(bytes, lt + 1);
            match tag_end(bytes, name.end()) {
                Some((gt, self_closing)) => Token::StartTag {
                    name,
                    gt,
                    self_closing,
                },
                None => Token::Eof,
            }
        }
        Some(_) => Token::Text,
        None => Token::Eof,
    }
}
