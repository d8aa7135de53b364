//! Notify rules: which recorded changes are worth an event. Pure.
//!
//! A rule measures a change from the value last announced to receivers (so a price creeping
//! down by 0.5% a day still fires a 2% rule once the total reaches 2%), and a threshold fires
//! when the value crosses it between two checks, not on every check while it stays past it.

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

/// Which way a change must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    Any,
    Increase,
    Decrease,
}

/// One set of rules; every rule that is set must pass.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Rule {
    pub on: Direction,
    /// At least this many percent of the last announced value, either way.
    pub min_change_pct: Option<Decimal>,
    /// At least this much in the value's own unit, either way.
    pub min_change_abs: Option<Decimal>,
    /// Fire when the value drops below this (from at or above it).
    pub below: Option<Decimal>,
    /// Fire when the value rises above this (from at or below it).
    pub above: Option<Decimal>,
}

/// A field's own setting.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum FieldNotify {
    /// The watcher's rule (for price and number fields) or any change.
    #[default]
    Inherit,
    /// `notify = false`: tracked and recorded, never announced.
    Never,
    Rule(Rule),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FieldRules {
    /// A price or number: its changes have a size, so they carry delta and pct and the
    /// watcher's rule applies to them.
    pub numeric: bool,
    pub notify: FieldNotify,
}

/// A watcher's rules, compiled from its config.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Rules {
    pub watcher: Option<Rule>,
    pub fields: BTreeMap<String, FieldRules>,
}

impl Rules {
    pub fn numeric(&self, field: &str) -> bool {
        self.fields.get(field).is_some_and(|f| f.numeric)
    }

    /// Whether a field's change from `announced` (last sent) through `previous` (last
    /// recorded) to `new` is worth an event.
    pub fn passes(&self, field: &str, announced: &Value, previous: &Value, new: &Value) -> bool {
        let rules = self.fields.get(field);
        let rule = match rules.map(|f| &f.notify) {
            Some(FieldNotify::Never) => return false,
            Some(FieldNotify::Rule(rule)) => Some(rule),
            Some(FieldNotify::Inherit) | None if self.numeric(field) => self.watcher.as_ref(),
            _ => None,
        };
        rule.is_none_or(|rule| rule.passes(announced, previous, new))
    }
}

impl Rule {
    pub fn passes(&self, announced: &Value, previous: &Value, new: &Value) -> bool {
        // A value appearing, vanishing or changing currency has no size: always worth telling.
        let Some(movement) = movement(announced, new) else {
            return true;
        };
        let delta = movement.delta;
        let direction = match self.on {
            Direction::Any => !delta.is_zero(),
            Direction::Increase => delta > Decimal::ZERO,
            Direction::Decrease => delta < Decimal::ZERO,
        };
        let abs = self.min_change_abs.is_none_or(|min| delta.abs() >= min);
        // From zero, any change is infinitely many percent.
        let pct = match (self.min_change_pct, movement.exact_pct) {
            (Some(min), Some(pct)) => pct.abs() >= min,
            _ => true,
        };
        direction && abs && pct && self.crosses(previous, announced, new)
    }

    fn crosses(&self, previous: &Value, announced: &Value, new: &Value) -> bool {
        if self.below.is_none() && self.above.is_none() {
            return true;
        }
        let Some((new, currency)) = amount(new) else {
            return true;
        };
        let from = amount(previous)
            .filter(|(_, c)| *c == currency)
            .or_else(|| amount(announced).filter(|(_, c)| *c == currency));
        let Some((from, _)) = from else {
            return true;
        };
        let down = self.below.is_some_and(|b| from >= b && new < b);
        let up = self.above.is_some_and(|a| from <= a && new > a);
        down || up
    }
}

/// The size of a change between two values of a numeric field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// new - old, at the scale of the more precise side ("-100.00").
    pub delta: Decimal,
    /// 100 * delta / old, unrounded; None when old is zero.
    pub exact_pct: Option<Decimal>,
}

impl Movement {
    /// The percentage as sent: two decimals, half away from zero.
    pub fn pct(&self) -> Option<Decimal> {
        self.exact_pct.map(|p| {
            p.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
        })
    }
}

/// How far a price or number moved; None when either side is not one, or the currencies
/// differ (dollars minus euros is no amount).
pub fn movement(old: &Value, new: &Value) -> Option<Movement> {
    let (old, old_currency) = amount(old)?;
    let (new, new_currency) = amount(new)?;
    if old_currency != new_currency {
        return None;
    }
    let delta = new.checked_sub(old)?;
    let exact_pct = if old.is_zero() {
        None
    } else {
        delta
            .checked_mul(Decimal::ONE_HUNDRED)
            .and_then(|d| d.checked_div(old))
    };
    Some(Movement { delta, exact_pct })
}

/// A value's amount and currency: a price object's, or a number field's decimal string.
pub fn amount(value: &Value) -> Option<(Decimal, Option<&str>)> {
    match value {
        Value::String(s) => Some((Decimal::from_str(s).ok()?, None)),
        Value::Object(map) => {
            let amount = Decimal::from_str(map.get("amount")?.as_str()?).ok()?;
            Some((amount, map.get("currency").and_then(Value::as_str)))
        }
        _ => None,
    }
}

/// Two recorded values say the same thing. Prices compare by amount and currency, so a
/// reworded label ("$5" -> "Only $5.00") is no change.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if x.contains_key("amount") => {
            match (amount(a), amount(b)) {
                (Some(p), Some(q)) => p == q && y.contains_key("amount"),
                _ => a == b,
            }
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn price(amount: &str) -> Value {
        json!({"amount": amount, "currency": "USD", "raw": format!("${amount}")})
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn rule(f: impl FnOnce(&mut Rule)) -> Rule {
        let mut r = Rule::default();
        f(&mut r);
        r
    }

    #[test]
    fn movement_has_delta_and_rounded_pct() {
        let m = movement(&price("1299.99"), &price("1199.99")).unwrap();
        assert_eq!(m.delta.to_string(), "-100.00");
        assert_eq!(m.pct().unwrap().to_string(), "-7.69");
        let m = movement(&json!("17"), &json!("3")).unwrap();
        assert_eq!(
            (m.delta.to_string(), m.pct().unwrap().to_string()),
            ("-14".into(), "-82.35".into())
        );
        assert_eq!(movement(&json!("0"), &json!("5")).unwrap().pct(), None);
        let euros = json!({"amount": "5", "currency": "EUR", "raw": "5 €"});
        assert_eq!(movement(&price("5"), &euros), None);
        assert_eq!(movement(&Value::Null, &price("5")), None);
        assert_eq!(movement(&json!("Widget"), &json!("Gadget")), None);
    }

    #[test]
    fn same_ignores_the_raw_text_of_prices() {
        let a = json!({"amount": "5", "currency": "USD", "raw": "$5"});
        let b = json!({"amount": "5.00", "currency": "USD", "raw": "Only $5.00"});
        assert!(same(&a, &b));
        assert!(!same(&a, &price("6")));
        assert!(!same(&json!("a"), &json!("b")));
    }

    #[test]
    fn direction_and_minimums() {
        let (old, down, up) = (price("100.00"), price("97.00"), price("100.50"));
        let decrease = rule(|r| r.on = Direction::Decrease);
        assert!(decrease.passes(&old, &old, &down));
        assert!(!decrease.passes(&old, &old, &up));
        let increase = rule(|r| r.on = Direction::Increase);
        assert!(increase.passes(&old, &old, &up) && !increase.passes(&old, &old, &down));

        let pct = rule(|r| r.min_change_pct = Some(d("1")));
        assert!(pct.passes(&old, &old, &down), "3% passes 1%");
        assert!(!pct.passes(&old, &old, &up), "0.5% does not");
        assert!(
            pct.passes(&price("0"), &price("0"), &up),
            "from zero is any %"
        );

        let abs = rule(|r| r.min_change_abs = Some(d("2.50")));
        assert!(abs.passes(&old, &old, &down) && !abs.passes(&old, &old, &up));
        assert!(
            abs.passes(&old, &old, &price("97.50")),
            "the minimum itself passes"
        );
    }

    #[test]
    fn thresholds_fire_on_crossing_not_while_staying() {
        let below = rule(|r| r.below = Some(d("100")));
        let at = |p: &str| price(p);
        assert!(
            below.passes(&at("120"), &at("120"), &at("99")),
            "crossing down"
        );
        assert!(
            !below.passes(&at("99"), &at("99"), &at("98")),
            "staying below"
        );
        assert!(
            !below.passes(&at("99"), &at("99"), &at("101")),
            "going back up"
        );
        assert!(
            below.passes(&at("99"), &at("101"), &at("97")),
            "crossing again"
        );
        assert!(
            !below.passes(&at("130"), &at("130"), &at("100")),
            "reaching is not crossing"
        );

        let above = rule(|r| r.above = Some(d("50")));
        assert!(above.passes(&at("40"), &at("40"), &at("51")));
        assert!(!above.passes(&at("51"), &at("51"), &at("60")));

        let both = rule(|r| {
            r.below = Some(d("10"));
            r.above = Some(d("20"));
        });
        assert!(both.passes(&at("15"), &at("15"), &at("9")));
        assert!(both.passes(&at("15"), &at("15"), &at("21")));
        assert!(!both.passes(&at("15"), &at("15"), &at("16")));
    }

    #[test]
    fn field_settings_override_the_watcher() {
        let mut rules = Rules {
            watcher: Some(rule(|r| r.on = Direction::Decrease)),
            ..Rules::default()
        };
        let numeric = |notify| FieldRules {
            numeric: true,
            notify,
        };
        rules
            .fields
            .insert("price".into(), numeric(FieldNotify::Inherit));
        rules
            .fields
            .insert("shipping".into(), numeric(FieldNotify::Never));
        rules
            .fields
            .insert("stock".into(), numeric(FieldNotify::Rule(Rule::default())));
        rules.fields.insert("title".into(), FieldRules::default());
        let (a, b) = (json!("5"), json!("6"));
        assert!(!rules.passes("price", &a, &a, &b), "watcher: decrease only");
        assert!(rules.passes("price", &b, &b, &a));
        assert!(!rules.passes("shipping", &b, &b, &a), "notify = false");
        assert!(rules.passes("stock", &a, &a, &b), "the field's own rule");
        assert!(
            rules.passes("title", &a, &a, &b),
            "text ignores numeric watcher rules"
        );
        assert!(
            rules.passes("price", &Value::Null, &Value::Null, &a),
            "appearing has no size"
        );
    }
}
