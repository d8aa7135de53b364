//! A body, and the forms of it the fields need.

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;

use scraper::Html;
use serde_json::Value;

use super::stream::Streamed;
use super::{FieldError, json, jsonld, microdata, visible};

/// A body, and the forms of it the fields need, each made at most once.
pub(super) struct Page<'b> {
    body: &'b str,
    /// Parsed when a field reads HTML and the streaming read could not.
    html: Option<Html>,
    /// What the streaming read found, when it read the page.
    streamed: Option<Streamed>,
    graph: OnceCell<jsonld::Graph>,
    json: OnceCell<Result<Value, FieldError>>,
    /// The product's title and buy button, shared by the price and availability readings.
    anchors: OnceCell<visible::Anchors>,
    /// Paths of the values the visible-page reading found, by field.
    visible_paths: RefCell<BTreeMap<String, String>>,
}

impl<'b> Page<'b> {
    pub(super) fn new(body: &'b str, html: Option<Html>) -> Self {
        Page {
            body,
            html,
            streamed: None,
            graph: OnceCell::new(),
            json: OnceCell::new(),
            anchors: OnceCell::new(),
            visible_paths: RefCell::default(),
        }
    }

    /// A page the streaming read read: its CSS fields' text and its JSON-LD.
    pub(super) fn streamed(body: &'b str, streamed: Streamed) -> Self {
        Page {
            streamed: Some(streamed),
            ..Page::new(body, None)
        }
    }

    /// What the streaming read found for a CSS field, if it read the page.
    pub(super) fn streamed_text(&self, field: &str) -> Option<Result<String, FieldError>> {
        self.streamed.as_ref()?.texts.get(field).cloned()
    }

    /// The parsed page, or `NeedsDom` when it was read without one.
    pub(super) fn dom(&self) -> Result<&Html, FieldError> {
        self.html.as_ref().ok_or(FieldError::NeedsDom)
    }

    /// The product's price from the meta tags in the head.
    pub(super) fn head_meta_price(&self) -> Option<microdata::Found> {
        match (
            &self.html,
            self.streamed.as_ref().and_then(|s| s.head_meta.as_ref()),
        ) {
            (Some(html), _) => microdata::meta_price(&microdata::Marked::head(html)),
            (None, Some(metas)) => microdata::meta_price_in(metas),
            (None, None) => None,
        }
    }

    pub(super) fn html(&self) -> &Html {
        self.html
            .as_ref()
            .expect("parsed whenever a field reads HTML")
    }

    pub(super) fn graph(&self) -> &jsonld::Graph {
        self.graph.get_or_init(
            || match self.streamed.as_ref().and_then(|s| s.jsonld.as_ref()) {
                Some(blocks) => jsonld::Graph::from_blocks(blocks),
                None => jsonld::Graph::from_document(self.html()),
            },
        )
    }

    pub(super) fn json(&self) -> Result<&Value, FieldError> {
        self.json
            .get_or_init(|| json::parse(self.body))
            .as_ref()
            .map_err(Clone::clone)
    }

    pub(super) fn anchors(&self) -> &visible::Anchors {
        self.anchors
            .get_or_init(|| visible::Anchors::of(self.html()))
    }

    /// Note where on the visible page a field's value was read.
    pub(super) fn record_path(&self, field: &str, path: String) {
        self.visible_paths
            .borrow_mut()
            .insert(field.to_owned(), path);
    }

    /// Where on the visible page a field's value was read, if it was.
    pub(super) fn take_path(&self, field: &str) -> Option<String> {
        self.visible_paths.borrow_mut().remove(field)
    }
}
