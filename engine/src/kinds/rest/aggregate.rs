//! Declared aggregation of raw records into unified rows ("a list of deals" becomes daily
//! events and clients). Records are folded in as each page arrives, so memory holds one
//! accumulator per group (plus the distinct values of `count_distinct`), never the
//! records themselves.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Number, Value};

use super::expr::ExprId;
use super::json_path::JsonPath;
use crate::mapping::{coerce_date, MappingError};
use crate::model::{Dataset, Record};

/// What one output column computes.
#[derive(Debug, Clone, PartialEq)]
pub enum Measure {
    /// Records, or records where the field is present and not null.
    Count(Option<JsonPath>),
    /// Distinct non-null values of the field, exactly, keeping at most this many per
    /// group (per row).
    CountDistinct(JsonPath, u64),
    Sum(JsonPath),
    Min(JsonPath),
    Max(JsonPath),
}

/// The grouping column: which record field, and the output column it fills.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupBy {
    pub field: JsonPath,
    pub output: String,
    /// Values are bucketed to their day (the `daily` dataset's key).
    pub by_day: bool,
}

/// One output column.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub measure: Measure,
    /// The column counts only the records this holds for (its `where:`).
    pub keep: Option<ExprId>,
    /// What the result is divided by at the end (`divide_by:`, e.g. 100 for cents), so a
    /// sum stays exact in integers until then.
    pub divide_by: Option<f64>,
}

/// A validated `aggregate:` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// `None` folds every record into one row (the `summary` dataset).
    pub group_by: Option<GroupBy>,
    /// The output columns, in declaration order.
    pub fields: Vec<Field>,
}

impl Aggregate {
    /// Each column's `where:`, in column order.
    pub fn wheres(&self) -> Vec<Option<ExprId>> {
        self.fields.iter().map(|field| field.keep).collect()
    }
}

#[derive(Debug)]
enum Accumulator {
    Count(u64),
    Distinct(HashSet<String>),
    Sum {
        integer: i64,
        float: f64,
        exact: bool,
    },
    Extreme(Option<(f64, Number)>),
}

impl Accumulator {
    fn new(measure: &Measure) -> Accumulator {
        match measure {
            Measure::Count(_) => Accumulator::Count(0),
            Measure::CountDistinct(..) => Accumulator::Distinct(HashSet::new()),
            Measure::Sum(_) => Accumulator::Sum {
                integer: 0,
                float: 0.0,
                exact: true,
            },
            Measure::Min(_) | Measure::Max(_) => Accumulator::Extreme(None),
        }
    }

    fn value(self) -> Value {
        match self {
            Accumulator::Count(n) => Value::from(n),
            Accumulator::Distinct(values) => Value::from(values.len() as u64),
            Accumulator::Sum {
                integer,
                exact: true,
                ..
            } => Value::from(integer),
            Accumulator::Sum { float, .. } => {
                Number::from_f64(float).map_or(Value::Null, Value::Number)
            }
            Accumulator::Extreme(found) => found.map_or(Value::Null, |(_, n)| Value::Number(n)),
        }
    }
}

/// The running aggregation of one dataset.
pub struct Aggregation<'a> {
    spec: &'a Aggregate,
    dataset: Dataset,
    groups: BTreeMap<String, Vec<Accumulator>>,
    /// Records left out because their group value was missing or null.
    ungrouped: u64,
}

impl<'a> Aggregation<'a> {
    pub fn new(spec: &'a Aggregate, dataset: Dataset) -> Aggregation<'a> {
        Aggregation {
            spec,
            dataset,
            groups: BTreeMap::new(),
            ungrouped: 0,
        }
    }

    fn fail(&self, path: &JsonPath, value: &Value, expected: &'static str) -> MappingError {
        let mut text = value.to_string();
        if let Some((cut, _)) = text.char_indices().nth(64) {
            text.truncate(cut);
            text.push('…');
        }
        MappingError {
            dataset: self.dataset,
            column: path.to_string(),
            value: text,
            expected,
        }
    }

    /// Folds one raw record into every column.
    pub fn add(&mut self, record: &Value) -> Result<(), MappingError> {
        self.add_counted(record, None)
    }

    /// Folds one raw record in, into the columns `counted` marks (all when `None`; the
    /// record's group exists either way, so a day without page views still has a row).
    pub fn add_counted(
        &mut self,
        record: &Value,
        counted: Option<&[bool]>,
    ) -> Result<(), MappingError> {
        let counts = |index: usize| counted.is_none_or(|mask| mask.get(index) != Some(&false));
        let key = match &self.spec.group_by {
            None => String::new(),
            Some(group) => match group.field.get(record) {
                None | Some(Value::Null) => {
                    self.ungrouped += 1;
                    return Ok(());
                }
                Some(raw) if group.by_day => match coerce_date(raw) {
                    Some(day) => day.format("%Y-%m-%d").to_string(),
                    None => {
                        return Err(self.fail(
                            &group.field,
                            raw,
                            "a date (YYYYMMDD, YYYY-MM-DD or a timestamp)",
                        ))
                    }
                },
                Some(Value::String(text)) if !text.trim().is_empty() => text.clone(),
                Some(Value::Number(number)) => number.to_string(),
                Some(raw) => return Err(self.fail(&group.field, raw, "a non-empty name")),
            },
        };
        // Check every value before touching the accumulators, so a failing record leaves
        // no partial trace (the error fails the dataset anyway, but keep it clean).
        let mut numbers = Vec::with_capacity(self.spec.fields.len());
        for (index, field) in self.spec.fields.iter().enumerate() {
            if !counts(index) {
                numbers.push(None);
                continue;
            }
            numbers.push(match &field.measure {
                Measure::Sum(path) | Measure::Min(path) | Measure::Max(path) => {
                    match path.get(record) {
                        None | Some(Value::Null) => None,
                        Some(raw) => {
                            Some(number(raw).ok_or_else(|| self.fail(path, raw, "a number"))?)
                        }
                    }
                }
                _ => None,
            });
        }
        let spec = self.spec;
        let accumulators = self.groups.entry(key).or_insert_with(|| {
            spec.fields
                .iter()
                .map(|field| Accumulator::new(&field.measure))
                .collect()
        });
        for (index, ((field, accumulator), number)) in spec
            .fields
            .iter()
            .zip(accumulators)
            .zip(numbers)
            .enumerate()
        {
            if !counts(index) {
                continue;
            }
            match (&field.measure, accumulator) {
                (Measure::Count(None), Accumulator::Count(n)) => *n += 1,
                (Measure::Count(Some(path)), Accumulator::Count(n)) => {
                    if !matches!(path.get(record), None | Some(Value::Null)) {
                        *n += 1;
                    }
                }
                (Measure::CountDistinct(path, max), Accumulator::Distinct(values)) => {
                    match path.get(record) {
                        None | Some(Value::Null) => {}
                        Some(Value::String(text)) => {
                            if !values.contains(text.as_str()) {
                                values.insert(text.clone());
                            }
                        }
                        Some(other) => {
                            values.insert(other.to_string());
                        }
                    }
                    if values.len() as u64 > *max {
                        return Err(MappingError {
                            dataset: self.dataset,
                            column: format!("{} (count_distinct of {path})", field.name),
                            value: format!("more than {max} distinct values"),
                            expected: "at most max_distinct distinct values (raise `max_distinct` of this field, or ask for a shorter window)",
                        });
                    }
                }
                (
                    Measure::Sum(_),
                    Accumulator::Sum {
                        integer,
                        float,
                        exact,
                    },
                ) => {
                    if let Some(number) = number {
                        *float += number.as_f64().unwrap_or(0.0);
                        match number.as_i64().and_then(|n| integer.checked_add(n)) {
                            Some(sum) if *exact => *integer = sum,
                            _ => *exact = false,
                        }
                    }
                }
                (Measure::Min(_), Accumulator::Extreme(found)) => {
                    if let Some(number) = number {
                        let x = number.as_f64().unwrap_or(f64::NAN);
                        if found.as_ref().is_none_or(|(best, _)| x < *best) {
                            *found = Some((x, number));
                        }
                    }
                }
                (Measure::Max(_), Accumulator::Extreme(found)) => {
                    if let Some(number) = number {
                        let x = number.as_f64().unwrap_or(f64::NAN);
                        if found.as_ref().is_none_or(|(best, _)| x > *best) {
                            *found = Some((x, number));
                        }
                    }
                }
                _ => unreachable!("accumulators are built from the same measures"),
            }
        }
        Ok(())
    }

    /// The rows, ordered by group value, and a warning when records were left out.
    pub fn finish(mut self) -> (Vec<Record>, Option<String>) {
        if self.spec.group_by.is_none() && self.groups.is_empty() {
            // A summary over no records is zeros, not a missing row.
            let spec = self.spec;
            self.groups.insert(
                String::new(),
                spec.fields
                    .iter()
                    .map(|field| Accumulator::new(&field.measure))
                    .collect(),
            );
        }
        let warning = match (&self.spec.group_by, self.ungrouped) {
            (Some(group), n) if n > 0 => Some(format!(
                "{n} record(s) had no `{}` and were left out of the aggregation",
                group.field
            )),
            _ => None,
        };
        let rows = self
            .groups
            .into_iter()
            .map(|(key, accumulators)| {
                let mut row = Record::new();
                if let Some(group) = &self.spec.group_by {
                    row.insert(group.output.clone(), Value::from(key));
                }
                for (field, accumulator) in self.spec.fields.iter().zip(accumulators) {
                    row.insert(
                        field.name.clone(),
                        divided(accumulator.value(), field.divide_by),
                    );
                }
                row
            })
            .collect();
        (rows, warning)
    }
}

/// `value / by` when both are numbers: one division of the exact result, so 123456 cents
/// is 1234.56 and not the sum of 1234 rounded quotients.
fn divided(value: Value, by: Option<f64>) -> Value {
    match (by, value.as_f64()) {
        (Some(by), Some(x)) => Number::from_f64(x / by).map_or(Value::Null, Value::Number),
        _ => value,
    }
}

/// Numbers and numeric strings; anything else is not a number.
fn number(raw: &Value) -> Option<Number> {
    match raw {
        Value::Number(number) => Some(number.clone()),
        Value::String(text) => {
            let text = text.trim();
            text.parse::<i64>()
                .ok()
                .map(Number::from)
                .or_else(|| text.parse::<f64>().ok().and_then(Number::from_f64))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(text: &str) -> JsonPath {
        JsonPath::parse(text).unwrap()
    }

    fn fields(columns: Vec<(&str, Measure)>) -> Vec<Field> {
        columns
            .into_iter()
            .map(|(name, measure)| Field {
                name: name.into(),
                measure,
                keep: None,
                divide_by: None,
            })
            .collect()
    }

    fn daily() -> Aggregate {
        Aggregate {
            group_by: Some(GroupBy {
                field: path("created_at"),
                output: "date".into(),
                by_day: true,
            }),
            fields: fields(vec![
                ("events", Measure::Count(None)),
                ("users", Measure::CountDistinct(path("contact.id"), 10)),
                ("revenue", Measure::Sum(path("amount"))),
                ("smallest", Measure::Min(path("amount"))),
                ("largest", Measure::Max(path("amount"))),
                ("with_amount", Measure::Count(Some(path("amount")))),
            ]),
        }
    }

    #[test]
    fn groups_by_day_in_utc_and_computes_every_measure() {
        let spec = daily();
        let mut aggregation = Aggregation::new(&spec, Dataset::Daily);
        for record in [
            json!({"created_at": "2026-02-10T08:00:00Z", "contact": {"id": "a"}, "amount": 5}),
            json!({"created_at": "2026-02-10T23:00:00Z", "contact": {"id": "a"}, "amount": "2.5"}),
            // 01:00 at +02:00 is still the 10th in UTC.
            json!({"created_at": "2026-02-11T01:00:00+02:00", "contact": {"id": "b"}, "amount": null}),
            json!({"created_at": "20260211", "contact": {"id": 7}}),
            json!({"contact": {"id": "c"}}),
        ] {
            aggregation.add(&record).unwrap();
        }
        let (rows, warning) = aggregation.finish();
        let rows: Vec<Value> = rows.into_iter().map(Value::Object).collect();
        assert_eq!(
            rows,
            vec![
                json!({"date": "2026-02-10", "events": 3, "users": 2, "revenue": 7.5,
                       "smallest": 2.5, "largest": 5, "with_amount": 2}),
                json!({"date": "2026-02-11", "events": 1, "users": 1, "revenue": 0,
                       "smallest": null, "largest": null, "with_amount": 0}),
            ]
        );
        assert!(warning.unwrap().contains("1 record(s) had no `created_at`"));
    }

    #[test]
    fn integer_sums_stay_integers_and_summaries_exist_without_records() {
        let spec = Aggregate {
            group_by: None,
            fields: fields(vec![
                ("total_events", Measure::Count(None)),
                ("amount", Measure::Sum(path("amount"))),
            ]),
        };
        let (rows, warning) = Aggregation::new(&spec, Dataset::Summary).finish();
        assert_eq!(
            Value::Object(rows[0].clone()),
            json!({"total_events": 0, "amount": 0})
        );
        assert_eq!(warning, None);
        let mut aggregation = Aggregation::new(&spec, Dataset::Summary);
        aggregation.add(&json!({"amount": 2})).unwrap();
        aggregation.add(&json!({"amount": "3"})).unwrap();
        let (rows, _) = aggregation.finish();
        assert_eq!(rows[0]["amount"], json!(5));
    }

    #[test]
    fn bad_values_name_the_field_and_value() {
        let spec = daily();
        let mut aggregation = Aggregation::new(&spec, Dataset::Daily);
        let err = aggregation
            .add(&json!({"created_at": "yesterday"}))
            .unwrap_err();
        assert_eq!(err.column, "created_at");
        assert!(err.to_string().contains("\"yesterday\""), "{err}");
        let err = aggregation
            .add(&json!({"created_at": "2026-02-10", "amount": "lots"}))
            .unwrap_err();
        assert_eq!(err.column, "amount");

        let by_client = Aggregate {
            group_by: Some(GroupBy {
                field: path("client"),
                output: "client".into(),
                by_day: false,
            }),
            fields: fields(vec![("events", Measure::Count(None))]),
        };
        let mut aggregation = Aggregation::new(&by_client, Dataset::Clients);
        aggregation.add(&json!({"client": "acme"})).unwrap();
        aggregation.add(&json!({"client": 42})).unwrap();
        assert!(aggregation.add(&json!({"client": ["x"]})).is_err());
        let (rows, _) = aggregation.finish();
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn a_column_counts_only_what_its_where_marks_and_distincts_are_bounded() {
        let spec = Aggregate {
            group_by: None,
            fields: fields(vec![
                ("total_events", Measure::Count(None)),
                ("page_views", Measure::Count(None)),
                ("total_users", Measure::CountDistinct(path("user"), 2)),
            ]),
        };
        let mut aggregation = Aggregation::new(&spec, Dataset::Summary);
        aggregation
            .add_counted(&json!({"user": "a"}), Some(&[true, true, true]))
            .unwrap();
        aggregation
            .add_counted(&json!({"user": "b"}), Some(&[true, false, true]))
            .unwrap();
        let err = aggregation
            .add_counted(&json!({"user": "c"}), Some(&[true, false, true]))
            .unwrap_err();
        assert!(err.to_string().contains("max_distinct"), "{err}");
        let mut aggregation = Aggregation::new(&spec, Dataset::Summary);
        for (user, view) in [("a", true), ("b", false), ("a", false)] {
            aggregation
                .add_counted(&json!({ "user": user }), Some(&[true, view, true]))
                .unwrap();
        }
        let (rows, _) = aggregation.finish();
        assert_eq!(
            Value::Object(rows[0].clone()),
            json!({"total_events": 3, "page_views": 1, "total_users": 2})
        );
    }
}
