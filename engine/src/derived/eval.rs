//! Derived metrics evaluated over one answer: the summary expression once over every
//! answering source's summary and the merged one, the daily expression once per date over
//! the daily records of that date. Whatever cannot be computed (a source that did not
//! answer, a field it lacks, division by zero) is `null` for that value only.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use minijinja::Value as Jinja;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::config::{Compiled, Format, Input, Metric, MERGED};
use crate::merge::Merged;
use crate::model::{Dataset, Record, SourceData};

/// One derived metric in an answer (`data.derived[]`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DerivedValue {
    pub name: String,
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub format: Format,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The summary expression's value for the window; null when it could not be computed
    /// or the metric has no summary expression.
    pub value: Option<f64>,
    /// The daily expression's value per date, oldest first (empty without one).
    pub daily: Vec<DerivedDay>,
    /// What the expressions read, e.g. `demo.summary.page_views`.
    pub inputs: Vec<String>,
    /// Inputs this answer did not have (a source that failed or lacks the field).
    pub missing: Vec<String>,
}

/// A derived value on one date.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DerivedDay {
    pub date: NaiveDate,
    pub value: Option<f64>,
}

/// Every metric over `answered` (source id and data) and `merged`.
pub fn evaluate(
    metrics: &[Metric],
    answered: &[(&str, &SourceData)],
    merged: &Merged,
) -> Vec<DerivedValue> {
    if metrics.is_empty() {
        return Vec::new();
    }
    let data: BTreeMap<&str, &SourceData> = answered.iter().copied().collect();
    let summaries = summary_context(&data, merged);
    metrics
        .iter()
        .map(|metric| one(metric, &data, merged, &summaries))
        .collect()
}

fn one(
    metric: &Metric,
    data: &BTreeMap<&str, &SourceData>,
    merged: &Merged,
    summaries: &Jinja,
) -> DerivedValue {
    let inputs: Vec<&Input> = metric
        .summary
        .iter()
        .chain(&metric.daily)
        .flat_map(|compiled| &compiled.inputs)
        .collect();
    let missing = inputs
        .iter()
        .filter(|input| !present(input, data, merged))
        .map(|input| input.to_string())
        .collect();
    DerivedValue {
        name: metric.name.clone(),
        label: metric.label.clone(),
        description: metric.description.clone(),
        format: metric.format,
        unit: metric.unit.clone(),
        value: metric.summary.as_ref().and_then(|c| number(c, summaries)),
        daily: metric
            .daily
            .as_ref()
            .map(|c| daily(c, data, merged))
            .unwrap_or_default(),
        inputs: inputs.iter().map(|input| input.to_string()).collect(),
        missing,
    }
}

/// `{var: {summary: {...}}}` for every answering source, and `merged`.
fn summary_context(data: &BTreeMap<&str, &SourceData>, merged: &Merged) -> Jinja {
    let mut context = Map::new();
    for (id, source) in data {
        if let Some(summary) = &source.summary {
            context.insert(id.replace('-', "_"), wrap(Dataset::Summary, summary));
        }
    }
    context.insert(MERGED.into(), wrap(Dataset::Summary, &merged.summary));
    Jinja::from_serialize(&context)
}

fn wrap(dataset: Dataset, record: &Record) -> Value {
    let mut inner = Map::new();
    inner.insert(dataset.as_str().into(), Value::Object(record.clone()));
    Value::Object(inner)
}

/// The daily expression on every date any of its sources has, joined by date.
fn daily(
    compiled: &Compiled,
    data: &BTreeMap<&str, &SourceData>,
    merged: &Merged,
) -> Vec<DerivedDay> {
    let mut by_date: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut vars: Vec<(&str, &str)> = compiled
        .inputs
        .iter()
        .map(|input| (input.source.as_str(), input.var.as_str()))
        .collect();
    vars.dedup();
    for (source, var) in vars {
        let rows = match source {
            MERGED => Some(merged.daily_metrics.as_slice()),
            id => data.get(id).and_then(|d| d.daily.as_deref()),
        };
        for row in rows.unwrap_or_default() {
            let Some(date) = row.get("date").and_then(Value::as_str) else {
                continue;
            };
            by_date
                .entry(date.to_owned())
                .or_default()
                .insert(var.to_owned(), wrap(Dataset::Daily, row));
        }
    }
    by_date
        .into_iter()
        .filter_map(|(date, context)| {
            let date = date.parse().ok()?;
            let value = number(compiled, &Jinja::from_serialize(&context));
            Some(DerivedDay { date, value })
        })
        .collect()
}

/// The expression's value when it is a finite number.
fn number(compiled: &Compiled, context: &Jinja) -> Option<f64> {
    let value = compiled.expression.eval(context).ok()?;
    let number = f64::try_from(value).ok()?;
    number.is_finite().then_some(number)
}

fn present(input: &Input, data: &BTreeMap<&str, &SourceData>, merged: &Merged) -> bool {
    let has = |record: &Record| record.contains_key(&input.field);
    match (input.source.as_str(), input.dataset) {
        (MERGED, Dataset::Daily) => merged.daily_metrics.iter().any(has),
        (MERGED, _) => has(&merged.summary),
        (id, Dataset::Daily) => data
            .get(id)
            .and_then(|d| d.daily.as_ref())
            .is_some_and(|rows| rows.iter().any(has)),
        (id, _) => data
            .get(id)
            .and_then(|d| d.summary.as_ref())
            .is_some_and(has),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::derived::config::{load_metric, tests::demo_sources};
    use crate::merge::{merge, Policies};

    fn record(value: Value) -> Record {
        value.as_object().unwrap().clone()
    }

    fn demo() -> SourceData {
        SourceData {
            summary: Some(record(
                json!({"total_users": 4, "page_views": 10, "total_events": 0}),
            )),
            daily: Some(vec![
                record(json!({"date": "2026-11-01", "users": 2, "events": 6})),
                record(json!({"date": "2026-11-02", "users": 0, "events": 3})),
            ]),
            ..SourceData::default()
        }
    }

    fn metric(text: &str) -> Metric {
        load_metric(Path::new("m.yaml"), text, &demo_sources()).unwrap()
    }

    fn run(metric: &Metric, answered: &[(&str, &SourceData)]) -> DerivedValue {
        let data: Vec<&SourceData> = answered.iter().map(|(_, d)| *d).collect();
        let merged = merge(&data, &Policies::new(), 10);
        evaluate(std::slice::from_ref(metric), answered, &merged).remove(0)
    }

    #[test]
    fn summary_and_daily_values_with_null_for_what_cannot_be_computed() {
        let m = metric("name: epu\nlabel: E\nsummary: demo.summary.page_views / demo.summary.total_users\ndaily: demo.daily.events / demo.daily.users\n");
        let data = demo();
        let value = run(&m, &[("demo", &data)]);
        assert_eq!(value.value, Some(2.5));
        let days: Vec<(String, Option<f64>)> = value
            .daily
            .iter()
            .map(|d| (d.date.to_string(), d.value))
            .collect();
        // 3 events over 0 users is a division by zero: null for that day only.
        assert_eq!(
            days,
            [
                ("2026-11-01".to_owned(), Some(3.0)),
                ("2026-11-02".to_owned(), None)
            ]
        );
        assert!(value.missing.is_empty(), "{:?}", value.missing);
    }

    #[test]
    fn a_source_that_did_not_answer_gives_null_and_is_named_missing() {
        let m = metric(
            "name: epu\nlabel: E\nsummary: demo.summary.total_events / demo.summary.total_users\n",
        );
        let value = run(&m, &[]);
        assert_eq!(value.value, None);
        assert_eq!(
            value.missing,
            ["demo.summary.total_events", "demo.summary.total_users"]
        );
        let zero = run(&m, &[("demo", &demo())]);
        assert_eq!(zero.value, Some(0.0));
    }

    #[test]
    fn merged_fields_and_conditionals_evaluate() {
        let m = metric("name: s\nlabel: S\nformat: percent\nsummary: (merged.summary.page_views / merged.summary.total_users) if merged.summary.total_users > 0 else 0\n");
        assert_eq!(run(&m, &[("demo", &demo())]).value, Some(2.5));
        assert_eq!(run(&m, &[]).value, Some(0.0));
    }
}
