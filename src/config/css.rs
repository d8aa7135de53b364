//! A field's `css`, compiled once at load, with one line saying what is wrong when it does not
//! compile. scraper prints most selector errors as a Rust debug dump ("Unexpected error
//! occurred. Please report this to the developer" and the enum on the lines after), which
//! would break the one-line `FILE:LINE:COL: message` of `pagehook check`.

use scraper::Selector;
use scraper::error::SelectorErrorKind;
use selectors::parser::SelectorParseErrorKind as Kind;

pub(super) fn selector(css: &str) -> Result<Selector, String> {
    Selector::parse(css).map_err(|err| match err {
        SelectorErrorKind::UnexpectedSelectorParseError(kind) => reason(&kind),
        // The others are one readable line already.
        other => other.to_string(),
    })
}

fn reason(kind: &Kind<'_>) -> String {
    match kind {
        Kind::EmptySelector => "a selector is empty (a lone `#`, or nothing beside a comma)".into(),
        Kind::DanglingCombinator => {
            "a combinator (` `, `>`, `+` or `~`) has no selector after it".into()
        }
        Kind::NonCompoundSelector => "only a simple selector, such as `a.price`, fits here".into(),
        Kind::NonPseudoElementAfterSlotted | Kind::InvalidPseudoElementAfterSlotted => {
            "`::slotted()` takes no pseudo-element after it".into()
        }
        Kind::InvalidPseudoElementInsideWhere => {
            "a pseudo-element cannot stand inside `:is()` or `:where()`".into()
        }
        Kind::InvalidState => "a pseudo-class or pseudo-element stands where it cannot".into(),
        Kind::NoQualifiedNameInAttributeSelector(_) | Kind::InvalidQualNameInAttr(_) => {
            "an attribute selector needs an attribute name, as in `[data-sku]`".into()
        }
        Kind::UnexpectedTokenInAttributeSelector(_) | Kind::BadValueInAttr(_) => {
            "an attribute selector reads `[name]`, `[name=value]` or `[name=\"a value\"]`".into()
        }
        Kind::ExpectedBarInAttr(_) | Kind::ExplicitNamespaceUnexpectedToken(_) => {
            "a namespace prefix is incomplete: write `ns|name`".into()
        }
        Kind::PseudoElementExpectedColon(_) | Kind::PseudoElementExpectedIdent(_) => {
            "a pseudo-element needs a name after `::`".into()
        }
        Kind::NoIdentForPseudo(_) => "a `:` needs a pseudo-class name after it".into(),
        Kind::ClassNeedsIdent(_) => "a `.` needs a class name after it".into(),
        Kind::UnsupportedPseudoClassOrElement(name) => {
            format!("unsupported pseudo-class or pseudo-element `{name}`")
        }
        Kind::UnexpectedIdent(name) => format!("unexpected `{name}`"),
        Kind::ExpectedNamespace(prefix) => format!("unknown namespace prefix `{prefix}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_selector_is_one_line() {
        let cases = [
            ("div >", "a combinator"),
            (":has(", "a combinator"),
            ("a:foo(", "unsupported pseudo-class or pseudo-element `foo`"),
            (
                "::before",
                "unsupported pseudo-class or pseudo-element `before`",
            ),
            ("#", "a selector is empty"),
            ("a,", "a selector is empty"),
            ("a.#x", "a `.` needs a class name"),
            ("a[", "Unexpected EOL"),
            ("a[x=5px]", "an attribute selector reads"),
            ("a[x y]", "an attribute selector reads"),
            ("a:nth-child(x)", "Token \"x\" was not expected"),
        ];
        for (css, start) in cases {
            let err = selector(css).unwrap_err();
            assert!(err.starts_with(start), "{css}: {err}");
            assert!(
                !err.contains('\n') && !err.contains("developer"),
                "{css}: {err}"
            );
        }
        assert!(selector("div.product_main p.price_color").is_ok());
    }
}
