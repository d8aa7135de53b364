//! Fields read in one streaming pass over the page, with no tree: CSS fields whose selectors
//! the streaming matcher supports, JSON-LD fields, and the JSON-LD and head meta tags that
//! URL-only fields read first. Where the page holds markup the parser would repair in ways the
//! read does not follow, it says so ([`Unsure`]) and the caller parses the page instead, so
//! both ways give the same values.

mod selector;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

pub use self::selector::StreamSelector;
use super::css::normalise;
use super::markup::{Node, Unsure, Visitor, walk};
use super::{Field, FieldError, Source};

/// How a watcher's page is read, chosen once from its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// A streaming pass, with the parse kept for pages it cannot read exactly.
    Stream,
    /// The parse, and why: what the first field that needs it asks for.
    Parse(&'static str),
    /// No HTML at all: JSON fields only.
    Json,
}

impl Reading {
    pub fn of(fields: &[Field]) -> Reading {
        let mut html = false;
        for field in fields {
            match &field.source {
                Source::Css { selector, attr, .. } => {
                    if let Err(why) = &selector.stream {
                        return Reading::Parse(why);
                    }
                    if attr
                        .as_deref()
                        .is_some_and(|a| a.bytes().any(|b| b.is_ascii_uppercase()))
                    {
                        return Reading::Parse("an upper-case attribute name (SVG's camel case)");
                    }
                    html = true;
                }
                // JSON-LD and the head's meta tags stream; a page whose structured data leaves
                // a URL-only field in doubt is parsed after all.
                Source::JsonLd { .. } | Source::Auto => html = true,
                Source::Json { .. } => {}
            }
        }
        match html {
            true => Reading::Stream,
            false => Reading::Json,
        }
    }
}

/// What a watcher's recent pages said about the streaming read: a watcher whose pages keep
/// needing the DOM goes straight to the parse, trying the streaming read again now and then,
/// in case the page has changed.
#[derive(Debug, Default)]
pub struct Hint(AtomicU8);

/// Checks that go straight to the parse after a page that needed it.
const PARSE_RUN: u8 = 15;

impl Hint {
    /// Whether to skip the streaming read this time.
    pub(super) fn parse_directly(&self) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    pub(super) fn streamed(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    pub(super) fn needed_dom(&self) {
        self.0.store(PARSE_RUN, Ordering::Relaxed);
    }
}

// A hint is what pages said, not how a watcher is set up: clones start afresh, and it never
// makes two watchers differ.
impl Clone for Hint {
    fn clone(&self) -> Self {
        Hint::default()
    }
}

impl PartialEq for Hint {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// What one streaming pass found.
#[derive(Debug, Default)]
pub(super) struct Streamed {
    /// Each CSS field's text (or attribute), by field name.
    pub texts: BTreeMap<String, Result<String, FieldError>>,
    /// The page's JSON-LD blocks, when a field reads them.
    pub jsonld: Option<Vec<String>>,
    /// The `property` and `content` of each `<meta property>` in the head, in order, when a
    /// URL-only field reads them.
    pub head_meta: Option<Vec<(String, String)>>,
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
            .any(|f| matches!(f.source, Source::JsonLd { .. } | Source::Auto))
            .then(Vec::new),
        head_meta: fields
            .iter()
            .any(|f| matches!(f.source, Source::Auto))
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
        head_meta: reader.head_meta,
    })
}

struct Reader<'f, 'a> {
    fields: Vec<Pending<'f>>,
    jsonld: Option<Vec<Cow<'a, str>>>,
    head_meta: Option<Vec<(String, String)>>,
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
        if let Some(metas) = &mut self.head_meta
            && node.name == "meta"
            && open.len() == 3
            && open[1].implied
            && open[1].name == "head"
            && let Some(property) = node.attr("property")
        {
            let content = node.attr("content").unwrap_or_default();
            metas.push((property.to_owned(), content.to_owned()));
        }
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
            && self.head_meta.is_none()
            && self
                .fields
                .iter()
                .all(|f| matches!(f.state, State::Found(_)))
    }
}

#[cfg(test)]
mod tests;
