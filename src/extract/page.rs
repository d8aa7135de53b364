//! A body, and the forms of it the fields need.

use std::cell::{OnceCell, RefCell};
use std::collections::BTreeMap;

use scraper::Html;
use serde_json::Value;

use super::{FieldError, json, jsonld, visible};

/// A body, and the forms of it the fields need, each made at most once.
pub(super) struct Page<'b> {
    body: &'b str,
    /// Parsed when any field reads HTML.
    html: Option<Html>,
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
            graph: OnceCell::new(),
            json: OnceCell::new(),
            anchors: OnceCell::new(),
            visible_paths: RefCell::default(),
        }
    }

    pub(super) fn html(&self) -> &Html {
        self.html
            .as_ref()
            .expect("parsed whenever a field reads HTML")
    }

    pub(super) fn graph(&self) -> &jsonld::Graph {
        self.graph
            .get_or_init(|| jsonld::Graph::from_document(self.html()))
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
