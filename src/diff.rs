//! Old values vs new values -> the changes worth an event. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::extract::Values;
use crate::notify::{self, Rules};

/// One field's move. `old` is the value receivers were last told of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub old: Value,
    pub new: Value,
    /// For prices and numbers: new - old, a decimal string ("-100.00").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<String>,
    /// For prices and numbers: the change in percent of old, two decimals ("-7.69");
    /// absent when old is zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pct: Option<String>,
}

impl Change {
    /// A change, sized when the field is numeric and both sides are comparable amounts.
    pub fn new(old: Value, new: Value, numeric: bool) -> Self {
        let movement = numeric.then(|| notify::movement(&old, &new)).flatten();
        Change {
            delta: movement.as_ref().map(|m| m.delta.to_string()),
            pct: movement.and_then(|m| m.pct()).map(|p| p.to_string()),
            old,
            new,
        }
    }
}

pub type Changes = BTreeMap<String, Change>;

/// What a successful check found, compared with the last one.
#[derive(Debug, Clone, PartialEq)]
pub enum Diff {
    /// The first success: recorded, announced to nobody.
    Baseline,
    Unchanged,
    Changed(Changes),
}

/// What a check found, after the notify rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The changes to announce.
    pub diff: Diff,
    /// Fields that changed since the last check but did not pass their rules: recorded,
    /// not announced.
    pub quiet: Vec<String>,
    /// The values receivers have now been told of (or baselined), to keep in state.
    pub announced: Values,
}

/// Compare fresh values with the last recorded ones (`recorded`) and with the last announced
/// ones (`announced`, None before this state existed), and apply the notify rules.
///
/// A field that the last snapshot does not have (it was just added to the config) is
/// baselined silently rather than reported as a change from nothing; a field that
/// disappeared from the config is simply no longer tracked.
pub fn evaluate(
    rules: &Rules,
    recorded: Option<&Values>,
    announced: Option<&Values>,
    new: &Values,
) -> Evaluation {
    let Some(recorded) = recorded else {
        return Evaluation {
            diff: Diff::Baseline,
            quiet: Vec::new(),
            announced: new.clone(),
        };
    };
    let mut changes = Changes::new();
    let mut quiet = Vec::new();
    let mut told = Values::new();
    for (name, value) in new {
        let Some(previous) = recorded.get(name) else {
            told.insert(name.clone(), value.clone());
            continue;
        };
        let reference = announced.and_then(|a| a.get(name)).unwrap_or(previous);
        if notify::same(previous, value) {
            told.insert(name.clone(), reference.clone());
        } else if !notify::same(reference, value) && rules.passes(name, reference, previous, value)
        {
            let change = Change::new(reference.clone(), value.clone(), rules.numeric(name));
            changes.insert(name.clone(), change);
            told.insert(name.clone(), value.clone());
        } else {
            quiet.push(name.clone());
            told.insert(name.clone(), reference.clone());
        }
    }
    let diff = if changes.is_empty() {
        Diff::Unchanged
    } else {
        Diff::Changed(changes)
    };
    Evaluation {
        diff,
        quiet,
        announced: told,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The diff with no notify rules: every change is announced.
    fn diff(old: Option<&Values>, new: &Values) -> Diff {
        evaluate(&Rules::default(), old, None, new).diff
    }

    fn values(pairs: &[(&str, Value)]) -> Values {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn first_success_is_a_baseline() {
        assert_eq!(
            diff(None, &values(&[("price", json!("5"))])),
            Diff::Baseline
        );
    }

    #[test]
    fn equal_values_are_unchanged() {
        let v = values(&[("price", json!("5")), ("title", json!("Widget"))]);
        assert_eq!(diff(Some(&v), &v.clone()), Diff::Unchanged);
    }

    #[test]
    fn only_changed_fields_are_reported() {
        let old = values(&[("price", json!("5")), ("title", json!("Widget"))]);
        let new = values(&[("price", json!("4")), ("title", json!("Widget"))]);
        let Diff::Changed(changes) = diff(Some(&old), &new) else {
            panic!("expected a change");
        };
        assert_eq!(changes.len(), 1);
        assert_eq!(changes["price"], Change::new(json!("5"), json!("4"), false));
    }

    #[test]
    fn a_newly_added_field_is_baselined_not_reported() {
        let old = values(&[("price", json!("5"))]);
        let new = values(&[("price", json!("5")), ("stock", json!("In stock"))]);
        assert_eq!(diff(Some(&old), &new), Diff::Unchanged);
    }

    #[test]
    fn a_field_becoming_null_is_a_change() {
        let old = values(&[("badge", json!("Sale"))]);
        let new = values(&[("badge", Value::Null)]);
        assert!(matches!(diff(Some(&old), &new), Diff::Changed(_)));
    }

    fn price(amount: &str) -> Value {
        json!({"amount": amount, "currency": "USD", "raw": format!("${amount}")})
    }

    fn price_rules(rule: notify::Rule) -> Rules {
        let mut rules = Rules {
            watcher: Some(rule),
            ..Rules::default()
        };
        for (name, numeric) in [("price", true), ("title", false)] {
            let field = notify::FieldRules {
                numeric,
                notify: notify::FieldNotify::Inherit,
            };
            rules.fields.insert(name.into(), field);
        }
        rules
    }

    #[test]
    fn price_changes_carry_delta_and_pct() {
        let rules = price_rules(notify::Rule::default());
        let old = values(&[("price", price("1299.99"))]);
        let new = values(&[("price", price("1199.99"))]);
        let Diff::Changed(changes) = evaluate(&rules, Some(&old), None, &new).diff else {
            panic!("expected a change")
        };
        let body = serde_json::to_value(&changes["price"]).unwrap();
        assert_eq!(body["delta"], "-100.00");
        assert_eq!(body["pct"], "-7.69");
        assert_eq!(body["old"]["amount"], "1299.99");
    }

    #[test]
    fn a_reworded_price_is_recorded_but_not_a_change() {
        let rules = price_rules(notify::Rule::default());
        let old = values(&[("price", price("5"))]);
        let new = values(&[(
            "price",
            json!({"amount": "5.00", "currency": "USD", "raw": "Only $5.00"}),
        )]);
        let e = evaluate(&rules, Some(&old), Some(&old), &new);
        assert_eq!((e.diff, e.quiet.len()), (Diff::Unchanged, 0));
    }

    #[test]
    fn small_moves_are_quiet_until_they_add_up() {
        let rule = notify::Rule {
            min_change_pct: Some(rust_decimal::Decimal::from(2)),
            ..Default::default()
        };
        let rules = price_rules(rule);
        let v100 = values(&[("price", price("100.00")), ("title", json!("W"))]);
        let baseline = evaluate(&rules, None, None, &v100);
        assert_eq!(baseline.diff, Diff::Baseline);
        assert_eq!(baseline.announced, v100);

        // -1%: recorded, not announced; receivers still know 100.00.
        let v99 = values(&[("price", price("99.00")), ("title", json!("W"))]);
        let first = evaluate(&rules, Some(&v100), Some(&baseline.announced), &v99);
        assert_eq!(first.diff, Diff::Unchanged);
        assert_eq!(first.quiet, ["price"]);
        assert_eq!(first.announced["price"], price("100.00"));

        // Another -1.01%: -2.5% from what receivers were told, so it fires, from 100.00.
        let v975 = values(&[("price", price("97.50")), ("title", json!("W2"))]);
        let second = evaluate(&rules, Some(&v99), Some(&first.announced), &v975);
        let Diff::Changed(changes) = second.diff else {
            panic!("expected a change")
        };
        assert_eq!(changes["price"].old, price("100.00"));
        assert_eq!(changes["price"].pct.as_deref(), Some("-2.50"));
        assert_eq!(changes["title"].delta, None, "text has no size");
        assert_eq!(second.announced, v975);
    }

    #[test]
    fn notify_false_fields_are_tracked_but_never_announced() {
        let mut rules = price_rules(notify::Rule::default());
        rules.fields.get_mut("price").unwrap().notify = notify::FieldNotify::Never;
        let old = values(&[("price", price("5"))]);
        let new = values(&[("price", price("1"))]);
        let e = evaluate(&rules, Some(&old), Some(&old), &new);
        assert_eq!(e.diff, Diff::Unchanged);
        assert_eq!(e.quiet, ["price"]);
    }
}
