//! What happens to each raw record of a `kind: rest` query before it is aggregated (or
//! kept as a row): `compute:` adds named fields from expressions, `classify:` adds a field
//! from ordered rules (first match wins), and `where:` drops the records it does not hold
//! for. They run in that order, so `where:` can read computed fields; a computed or
//! classified name replaces a record field of the same name.

use std::sync::Arc;

use regex::Regex;
use serde_json::{Map, Value};

use super::expr::{ExprId, Expressions};
use crate::model::Record;

/// How one rule of a classification matches the text.
#[derive(Debug, Clone)]
pub enum Match {
    Prefix(String),
    Contains(String),
    Equals(String),
    Regex(Regex),
}

impl PartialEq for Match {
    fn eq(&self, other: &Match) -> bool {
        match (self, other) {
            (Match::Prefix(a), Match::Prefix(b))
            | (Match::Contains(a), Match::Contains(b))
            | (Match::Equals(a), Match::Equals(b)) => a == b,
            (Match::Regex(a), Match::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Match {
    fn matches(&self, text: &str) -> bool {
        match self {
            Match::Prefix(prefix) => text.starts_with(prefix.as_str()),
            Match::Contains(part) => text.contains(part.as_str()),
            Match::Equals(whole) => text == whole,
            Match::Regex(regex) => regex.is_match(text),
        }
    }
}

/// What a record that no rule matches gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Otherwise {
    /// The field is null (a record grouped by it is then left out, with a warning).
    Null,
    /// The record is dropped from this query.
    Drop,
    /// The field is this value.
    Value(String),
}

/// One `classify:` field.
#[derive(Debug, Clone, PartialEq)]
pub struct Classify {
    pub name: String,
    /// The text the rules look at.
    pub from: ExprId,
    pub rules: Vec<(Match, String)>,
    pub otherwise: Otherwise,
}

/// A query's record transforms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transforms {
    pub compute: Vec<(String, ExprId)>,
    pub classify: Vec<Classify>,
    pub keep: Option<ExprId>,
}

impl Transforms {
    /// Whether there is anything to do.
    pub fn is_empty(&self) -> bool {
        self.compute.is_empty() && self.classify.is_empty() && self.keep.is_none()
    }

    /// Transforms `record` in place; `false` when it is to be dropped. `request` holds
    /// the request parameters the expressions may read.
    pub fn apply(
        &self,
        exprs: &Expressions,
        record: &mut Map<String, Value>,
        request: &minijinja::Value,
    ) -> Result<bool, String> {
        if self.is_empty() {
            return Ok(true);
        }
        let (taken, outcome) = shared(std::mem::take(record), |base| {
            self.derive(exprs, base, request)
        });
        *record = taken;
        let (keep, added) = outcome?;
        if keep {
            record.extend(added);
        }
        Ok(keep)
    }

    /// The fields to add and whether the record stays, reading the record through a view
    /// that converts only the fields an expression reads.
    fn derive(
        &self,
        exprs: &Expressions,
        base: &Arc<Map<String, Value>>,
        request: &minijinja::Value,
    ) -> Result<(bool, Vec<(String, Value)>), String> {
        let context = Expressions::context(base, request);
        let eval = |id: ExprId, name: &str| {
            exprs
                .eval(id, context.value())
                .map_err(|err| failed(exprs, id, name, err))
        };
        for (name, id) in &self.compute {
            let value = eval(*id, name)?;
            context.add(name.clone(), to_json(&value));
        }
        for classify in &self.classify {
            let text = eval(classify.from, &classify.name)?;
            let value = match text.as_str().and_then(|text| first_match(classify, text)) {
                Some(value) => Value::from(value),
                None => match &classify.otherwise {
                    Otherwise::Drop => return Ok((false, context.into_added())),
                    Otherwise::Null => Value::Null,
                    Otherwise::Value(value) => Value::from(value.as_str()),
                },
            };
            context.add(classify.name.clone(), value);
        }
        let keep = match self.keep {
            None => true,
            Some(id) => eval(id, "where")?.is_true(),
        };
        Ok((keep, context.into_added()))
    }
}

/// For each of `wheres` (an aggregate's per-field conditions), whether it holds for
/// `record`; a field without one always counts it. `None` when no field has one.
pub fn holding(
    exprs: &Expressions,
    wheres: &[Option<ExprId>],
    record: Record,
    request: &minijinja::Value,
) -> Result<(Record, Option<Vec<bool>>), String> {
    if wheres.iter().all(Option::is_none) {
        return Ok((record, None));
    }
    let (record, mask) = shared(record, |base| {
        let context = Expressions::context(base, request);
        wheres
            .iter()
            .map(|when| match when {
                None => Ok(true),
                Some(id) => exprs
                    .holds(*id, context.value())
                    .map_err(|err| failed(exprs, *id, "where", err)),
            })
            .collect::<Result<Vec<bool>, String>>()
    });
    Ok((record, Some(mask?)))
}

/// Runs `read` over `record` shared the way expressions read it, then takes the record
/// back (copied only if a value `read` returned still holds it).
fn shared<R>(record: Record, read: impl FnOnce(&Arc<Record>) -> R) -> (Record, R) {
    let base = Arc::new(record);
    let result = read(&base);
    let record = Arc::try_unwrap(base).unwrap_or_else(|shared| (*shared).clone());
    (record, result)
}

fn first_match<'a>(classify: &'a Classify, text: &str) -> Option<&'a str> {
    classify
        .rules
        .iter()
        .find(|(test, _)| test.matches(text))
        .map(|(_, value)| value.as_str())
}

fn failed(exprs: &Expressions, id: ExprId, what: &str, err: String) -> String {
    format!("`{what}` ({}) failed: {err}", exprs.source(id))
}

/// An expression's value as JSON; undefined becomes null.
pub fn to_json(value: &minijinja::Value) -> Value {
    use minijinja::value::ValueKind;
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => Value::Null,
        ValueKind::Bool => Value::Bool(value.is_true()),
        ValueKind::String => value.as_str().map_or(Value::Null, Value::from),
        ValueKind::Number if value.is_integer() => match value.as_i64() {
            Some(integer) => Value::from(integer),
            None => serde_json::to_value(value).unwrap_or(Value::Null),
        },
        ValueKind::Number => f64::try_from(value.clone())
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        _ => serde_json::to_value(value).unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;

    fn record(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn values_cross_between_json_and_expressions_unchanged() {
        for value in [
            json!(null),
            json!(true),
            json!("text"),
            json!(-3),
            json!(u64::MAX),
            json!(1.5),
            json!([1, "a"]),
            json!({"a": {"b": 2}}),
        ] {
            let through = to_json(&super::super::expr::from_json(&value));
            assert_eq!(through, value, "{value}");
        }
        assert_eq!(to_json(&minijinja::Value::UNDEFINED), Value::Null);
    }

    fn features(exprs: &mut Expressions, otherwise: Otherwise) -> Transforms {
        let none = BTreeSet::new();
        Transforms {
            compute: vec![(
                "client".into(),
                exprs
                    .add(r"record.url | regex_capture('^https://([^.]+)\\.')", &none)
                    .unwrap(),
            )],
            classify: vec![Classify {
                name: "feature".into(),
                from: exprs.add("record.url | url_path", &none).unwrap(),
                rules: vec![
                    (
                        Match::Prefix("/buybox/deals".into()),
                        "Buybox - Deals".into(),
                    ),
                    (Match::Prefix("/buybox".into()), "Buybox".into()),
                    (
                        Match::Regex(Regex::new("^/deal/[0-9]+$").unwrap()),
                        "Deal".into(),
                    ),
                ],
                otherwise,
            }],
            keep: Some(exprs.add("record.client != 'staging'", &none).unwrap()),
        }
    }

    fn run(transforms: &Transforms, exprs: &Expressions, url: &str) -> Option<Map<String, Value>> {
        let mut rec = record(json!({ "url": url }));
        let request = minijinja::Value::from(());
        transforms
            .apply(exprs, &mut rec, &request)
            .unwrap()
            .then_some(rec)
    }

    #[test]
    fn the_first_matching_rule_wins_and_computed_fields_feed_the_rest() {
        let mut exprs = Expressions::new();
        let transforms = features(&mut exprs, Otherwise::Drop);
        let deals = run(&transforms, &exprs, "https://acme.x.com/buybox/deals?id=1").unwrap();
        assert_eq!(deals["feature"], "Buybox - Deals");
        assert_eq!(deals["client"], "acme");
        let buybox = run(&transforms, &exprs, "https://acme.x.com/buybox/list").unwrap();
        assert_eq!(buybox["feature"], "Buybox");
        assert_eq!(
            run(&transforms, &exprs, "https://b.x.com/deal/42").unwrap()["feature"],
            "Deal"
        );
        // No rule: dropped; `where:` on a computed field: dropped.
        assert!(run(&transforms, &exprs, "https://acme.x.com/settings").is_none());
        assert!(run(&transforms, &exprs, "https://staging.x.com/buybox").is_none());
    }

    #[test]
    fn unmatched_records_get_the_default_or_null() {
        let mut exprs = Expressions::new();
        let other = features(&mut exprs, Otherwise::Value("Other".into()));
        assert_eq!(
            run(&other, &exprs, "https://a.x.com/settings").unwrap()["feature"],
            "Other"
        );
        let null = features(&mut exprs, Otherwise::Null);
        assert_eq!(
            run(&null, &exprs, "https://a.x.com/settings").unwrap()["feature"],
            Value::Null
        );
    }
}
