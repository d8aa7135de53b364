//! CSS selectors matched against elements as they stream past: only what an element, its
//! ancestors and its earlier siblings decide, since what comes later is not read yet.

use std::fmt;

use html5ever::Namespace;
use scraper::selector::{CssLocalName, CssString, NonTSPseudoClass, PseudoElement, Simple};
use selectors::attr::{AttrSelectorOperation, CaseSensitivity, NamespaceConstraint};
use selectors::bloom::BloomFilter;
use selectors::matching::{self, ElementSelectorFlags, MatchingContext};
use selectors::parser::{self, Combinator, Component, NthType, ParseRelative, SelectorList};
use selectors::{Element, OpaqueElement};

use crate::extract::markup::Node;

/// A selector the streaming read can match.
pub struct StreamSelector {
    list: SelectorList<Simple>,
}

impl fmt::Debug for StreamSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamSelector")
    }
}

struct Parser;

impl<'i> parser::Parser<'i> for Parser {
    type Impl = Simple;
    type Error = parser::SelectorParseErrorKind<'i>;

    fn parse_is_and_where(&self) -> bool {
        true
    }
}

impl StreamSelector {
    /// The selector, or why only the parsed page can match it.
    pub fn parse(css: &str) -> Result<StreamSelector, &'static str> {
        let mut input = cssparser::ParserInput::new(css);
        let mut parser = cssparser::Parser::new(&mut input);
        let list = SelectorList::parse(&Parser, &mut parser, ParseRelative::No)
            .map_err(|_| "a selector the streaming matcher cannot read (`:has()`, ...)")?;
        supported(&list)?;
        Ok(StreamSelector { list })
    }

    /// Whether the last of `open` matches.
    pub(super) fn matches(&self, open: &[Node<'_>]) -> bool {
        let element = Streamed {
            open,
            at: open.len() - 1,
            sibling: None,
        };
        let mut caches = matching::SelectorCaches::default();
        let mut context = MatchingContext::new(
            matching::MatchingMode::Normal,
            None,
            &mut caches,
            matching::QuirksMode::NoQuirks,
            matching::NeedsSelectorFlags::No,
            matching::MatchingForInvalidation::No,
        );
        self.list
            .slice()
            .iter()
            .any(|s| matching::matches_selector(s, 0, None, &element, &mut context))
    }
}

fn supported(list: &SelectorList<Simple>) -> Result<(), &'static str> {
    // SVG's camel-case names (`clipPath`, `viewBox`) match by rules of their own.
    const CAMEL: &str = "an upper-case element or attribute name (SVG's camel case)";
    for selector in list.slice() {
        for component in selector.iter_raw_match_order() {
            match component {
                Component::LocalName(name) if name.name != name.lower_name => return Err(CAMEL),
                Component::AttributeInNoNamespaceExists {
                    local_name,
                    local_name_lower,
                } if local_name != local_name_lower => return Err(CAMEL),
                Component::AttributeOther(attr) if attr.local_name != attr.local_name_lower => {
                    return Err(CAMEL);
                }
                Component::Combinator(Combinator::Child | Combinator::Descendant)
                | Component::LocalName(_)
                | Component::ID(_)
                | Component::Class(_)
                | Component::AttributeInNoNamespaceExists { .. }
                | Component::AttributeInNoNamespace { .. }
                | Component::ExplicitUniversalType => {}
                Component::AttributeOther(attr) if attr.namespace.is_none() => {}
                Component::Nth(nth) if matches!(nth.ty, NthType::Child | NthType::OfType) => {}
                Component::Negation(inner) | Component::Is(inner) | Component::Where(inner) => {
                    supported(inner)?
                }
                Component::Combinator(_) => {
                    return Err("a sibling combinator (`+`, `~`): later siblings are read after");
                }
                Component::Nth(_) | Component::NthOf(_) | Component::Empty => {
                    return Err("a pseudo-class that depends on what follows the element");
                }
                Component::Root => return Err("`:root`"),
                _ => return Err("a namespace, pseudo-class or pseudo-element"),
            }
        }
    }
    Ok(())
}

/// An element of the stream: `open[at]`, or, with `sibling`, the element child of
/// `open[at - 1]` at that index (an earlier sibling, known only by its name).
#[derive(Debug, Clone, Copy)]
struct Streamed<'n, 'a> {
    open: &'n [Node<'a>],
    at: usize,
    sibling: Option<usize>,
}

impl Streamed<'_, '_> {
    fn node(&self) -> Option<&Node<'_>> {
        self.sibling.is_none().then(|| &self.open[self.at])
    }

    fn index(&self) -> usize {
        self.sibling.unwrap_or(self.open[self.at].index)
    }

    fn key(&self) -> u64 {
        match self.sibling {
            None => self.open[self.at].key(),
            Some(k) => self.open[self.at - 1].children[k],
        }
    }
}

impl Element for Streamed<'_, '_> {
    type Impl = Simple;

    fn opaque(&self) -> OpaqueElement {
        match self.sibling {
            None => OpaqueElement::new(&self.open[self.at]),
            Some(k) => OpaqueElement::new(&self.open[self.at - 1].children[k]),
        }
    }

    fn parent_element(&self) -> Option<Self> {
        (self.at > 0).then(|| Streamed {
            open: self.open,
            at: self.at - 1,
            sibling: None,
        })
    }

    fn parent_node_is_shadow_root(&self) -> bool {
        false
    }

    fn containing_shadow_host(&self) -> Option<Self> {
        None
    }

    fn is_pseudo_element(&self) -> bool {
        false
    }

    fn prev_sibling_element(&self) -> Option<Self> {
        let index = self.index();
        (index > 0 && self.at > 0).then(|| Streamed {
            sibling: Some(index - 1),
            ..*self
        })
    }

    fn next_sibling_element(&self) -> Option<Self> {
        None
    }

    fn first_element_child(&self) -> Option<Self> {
        None
    }

    fn is_html_element_in_html_document(&self) -> bool {
        self.node().is_some_and(|n| !n.foreign)
    }

    fn has_local_name(&self, name: &CssLocalName) -> bool {
        self.node().is_some_and(|n| n.name == *name.0)
    }

    fn has_namespace(&self, namespace: &Namespace) -> bool {
        self.node()
            .is_some_and(|n| !n.foreign && *namespace == html5ever::ns!(html))
    }

    fn is_same_type(&self, other: &Self) -> bool {
        self.key() == other.key()
    }

    fn imported_part(&self, _: &CssLocalName) -> Option<CssLocalName> {
        None
    }

    fn is_part(&self, _: &CssLocalName) -> bool {
        false
    }

    fn attr_matches(
        &self,
        ns: &NamespaceConstraint<&Namespace>,
        local_name: &CssLocalName,
        operation: &AttrSelectorOperation<&CssString>,
    ) -> bool {
        let no_namespace = match ns {
            NamespaceConstraint::Any => true,
            NamespaceConstraint::Specific(url) => url.is_empty(),
        };
        no_namespace
            && self
                .node()
                .and_then(|n| n.attr(&local_name.0))
                .is_some_and(|value| operation.eval_str(value))
    }

    fn match_non_ts_pseudo_class(
        &self,
        pc: &NonTSPseudoClass,
        _: &mut MatchingContext<'_, Simple>,
    ) -> bool {
        match *pc {}
    }

    fn match_pseudo_element(
        &self,
        pe: &PseudoElement,
        _: &mut MatchingContext<'_, Simple>,
    ) -> bool {
        match *pe {}
    }

    fn apply_selector_flags(&self, _: ElementSelectorFlags) {}

    fn is_link(&self) -> bool {
        self.node().is_some_and(|n| n.name == "link")
    }

    fn is_html_slot_element(&self) -> bool {
        true
    }

    fn has_id(&self, id: &CssLocalName, case: CaseSensitivity) -> bool {
        self.node()
            .and_then(|n| n.attr("id"))
            .is_some_and(|value| case.eq(id.0.as_bytes(), value.as_bytes()))
    }

    fn has_class(&self, name: &CssLocalName, case: CaseSensitivity) -> bool {
        self.node()
            .and_then(|n| n.attr("class"))
            .is_some_and(|value| {
                value
                    .split_ascii_whitespace()
                    .any(|class| case.eq(class.as_bytes(), name.0.as_bytes()))
            })
    }

    fn has_custom_state(&self, _: &CssLocalName) -> bool {
        false
    }

    fn is_empty(&self) -> bool {
        false
    }

    fn is_root(&self) -> bool {
        self.at == 0 && self.sibling.is_none()
    }

    fn add_element_unique_hashes(&self, _: &mut BloomFilter) -> bool {
        false
    }
}
