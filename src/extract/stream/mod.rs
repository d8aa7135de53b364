//! Fields read in one streaming pass over the page, with no tree: CSS fields whose selectors
//! the streaming matcher supports, and JSON-LD fields. Where the page holds markup the parser
//! would repair in ways the read does not follow, it says so ([`Unsure`]) and the caller parses
//! the page instead, so both ways give the same values.

mod selector;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

pub use self::selector::StreamSelector;
use super::css::normalise;
use super::markup::{Node, Unsure, Visitor, walk};
use super::{Field, FieldError, Source};

/// How a watcher's page is read, chosen once from its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// A streaming pass, with the parse kept for pages it cannot read exactly.
    Stream,
    /// The parse; the reason names the first field that needs it.
    Parse(&'static str),
    /// No HTML at all: JSON fields only.
    Json,
}

impl Reading {
    pub fn of(fields: &[Field]) -> Reading {
        let mut html = false;
        for field in fields {
            match &field.source {
                Source::Css { selector, .. } => {
                    if let Err(why) = &selector.stream {
                        return Reading::Parse(why);
                    }
                    html = true;
                }
                Source::JsonLd { .. } => html = true,
                Source::Json { .. } => {}
                Source::Auto => {
                    return Reading::Parse("a URL-only field reads microdata and the visible page");
                }
            }
        }
        match html {
            true => Reading::Stream,
            false => Reading::Json,
        }
    }
}

/// What one streaming pass found.
#[derive(Debug, Default)]
pub(super) struct Streamed {
    /// Each CSS field's text (or attribute), by field name.
    pub texts: BTreeMap<String, Result<String, FieldError>>,
    /// The page's JSON-LD blocks, when a field reads them.
    pub jsonld: Option<Vec<String>>,
}

/// Read `fields` (all streamable) off `body` in one pass.
pub(super) fn read(
    fields: &[Field],
    body: &str,
    strip_inert: bool,
    stop: &AtomicBool,
) -> Result<Streamed, Unsure> {
    let mut reader = Reader {
        fields: fields
            .iter()
            .filter_map(|field| match &field.source {
                Source::Css {
                    css,
                    selector,
                    attr,
                } => Some(Pending {
                    name: &field.name,
                    css,
                    selector: selector.stream.as_ref().ok()?,
                    attr: attr.as_deref(),
                    state: State::Waiting,
                }),
                _ => None,
            })
            .collect(),
        jsonld: fields
            .iter()
            .any(|f| matches!(f.source, Source::JsonLd { .. }))
            .then(Vec::new),
        open: 0,
    };
    walk(body, strip_inert, stop, &mut reader)?;
    let texts = reader
        .fields
        .into_iter()
        .map(|p| {
            let found = match p.state {
                State::Found(found) => found,
                State::Capturing { text, .. } => Ok(normalise(&text)),
                State::Waiting => Err(FieldError::NoMatch(p.css.to_owned())),
            };
            (p.name.to_owned(), found)
        })
        .collect();
    Ok(Streamed {
        texts,
        jsonld: reader
            .jsonld
            .map(|blocks| blocks.into_iter().map(Cow::into_owned).collect()),
    })
}

struct Reader<'f, 'a> {
    fields: Vec<Pending<'f>>,
    jsonld: Option<Vec<Cow<'a, str>>>,
    /// Fields capturing text.
    open: usize,
}

struct Pending<'f> {
    name: &'f str,
    css: &'f str,
    selector: &'f StreamSelector,
    attr: Option<&'f str>,
    state: State,
}

enum State {
    Waiting,
    /// Inside the first match, whose element is the `depth`th open one.
    Capturing {
        depth: usize,
        text: String,
    },
    Found(Result<String, FieldError>),
}

impl<'a> Visitor<'a> for Reader<'_, 'a> {
    fn element(&mut self, open: &[Node<'a>]) -> Result<(), Unsure> {
        let node = open.last().expect("an element");
        for field in &mut self.fields {
            if !matches!(field.state, State::Waiting) || !field.selector.matches(open) {
                continue;
            }
            if node.implied {
                return Err(Unsure::Implied);
            }
            field.state = match field.attr {
                Some(name) => State::Found(node.attr(name).map(normalise).ok_or_else(|| {
                    FieldError::NoAttribute {
                        css: field.css.to_owned(),
                        attr: name.to_owned(),
                    }
                })),
                None => {
                    self.open += 1;
                    State::Capturing {
                        depth: open.len(),
                        text: String::new(),
                    }
                }
            };
        }
        Ok(())
    }

    fn closed(&mut self, len: usize) {
        if self.open == 0 {
            return;
        }
        for field in &mut self.fields {
            if let State::Capturing { depth, text } = &mut field.state
                && *depth > len
            {
                field.state = State::Found(Ok(normalise(text)));
                self.open -= 1;
            }
        }
    }

    fn wants_text(&self) -> bool {
        self.open > 0
    }

    fn text(&mut self, text: &str) {
        for field in &mut self.fields {
            if let State::Capturing { text: into, .. } = &mut field.state {
                into.push_str(text);
            }
        }
    }

    fn data_script(&mut self, script: &Node<'a>, contents: Cow<'a, str>) {
        let Some(blocks) = &mut self.jsonld else {
            return;
        };
        if super::jsonld::is_jsonld(script.attr("type").unwrap_or_default()) {
            blocks.push(contents);
        }
    }

    fn done(&self) -> bool {
        self.jsonld.is_none()
            && self
                .fields
                .iter()
                .all(|f| matches!(f.state, State::Found(_)))
    }
}

/// In debug builds (and so in every test that extracts), the parse reads each streamed page
/// too, and the two must agree: every CSS field of the test suite is a differential test.
#[cfg(debug_assertions)]
pub(super) fn cross_check(fields: &[Field], body: &str, strip_inert: bool, streamed: &Streamed) {
    // Pages built to be huge are the hostile-input tests' business, not this check's.
    if body.len() > 2 << 20 {
        return;
    }
    let stop = AtomicBool::new(false);
    let Ok(html) = super::dom::parse(body, strip_inert, &stop) else {
        return;
    };
    for field in fields {
        if let Source::Css {
            css,
            selector,
            attr,
        } = &field.source
        {
            let parsed = super::css::select(&html, css, &selector.dom, attr.as_deref());
            assert_eq!(
                streamed.texts.get(&field.name),
                Some(&parsed),
                "the streaming read and the parse disagree on `{css}`"
            );
        }
    }
    if let Some(blocks) = &streamed.jsonld {
        assert_eq!(
            *blocks,
            super::jsonld::blocks(&html),
            "JSON-LD blocks differ"
        );
    }
}

#[cfg(test)]
mod tests;
