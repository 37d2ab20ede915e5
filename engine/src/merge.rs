//! Combining the answers of several sources into one: summaries field by field, daily
//! points by date, features and clients by name, each field by its declared policy.
//! Pure functions over data, so the rules are tested directly.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::{Array, Object};

use crate::config::MergePolicy;
use crate::model::{Dataset, Record, SourceData};

/// How each field combines, by dataset and field; fields not listed are summed.
pub type Policies = BTreeMap<(Dataset, String), MergePolicy>;

/// The merged datasets, in the dashboard's shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Merged {
    /// Every summary field, zero where no source gave it.
    #[schema(schema_with = summary_schema)]
    pub summary: Record,
    /// By date, oldest first.
    #[schema(schema_with = daily_schema)]
    pub daily_metrics: Vec<Record>,
    #[schema(schema_with = features_schema)]
    pub feature_metrics: Vec<Record>,
    /// The top clients by events.
    #[schema(schema_with = clients_schema)]
    pub client_metrics: Vec<Record>,
}

// A record is an open JSON object in Rust; its schema comes from the dataset's declared
// fields instead, so the description says what each record holds.
pub fn summary_schema() -> Object {
    Dataset::Summary.record_schema()
}

pub fn daily_schema() -> Array {
    Array::new(Dataset::Daily.record_schema())
}

pub fn features_schema() -> Array {
    Array::new(Dataset::Features.record_schema())
}

pub fn clients_schema() -> Array {
    Array::new(Dataset::Clients.record_schema())
}

/// Merges answers given in source id order (which is what `first` refers to), keeping the
/// `top_clients` clients with the most events.
pub fn merge(answers: &[&SourceData], policies: &Policies, top_clients: usize) -> Merged {
    let mut summary = Record::new();
    for answer in answers {
        if let Some(record) = &answer.summary {
            combine_into(&mut summary, record, Dataset::Summary, policies);
        }
    }
    // The dashboard reads every unified summary field; one no source provides is zero
    // here, and each source's metadata says which fields it provided (`summaryFields`)
    // and whether it provided a summary at all.
    for (field, _) in Dataset::Summary.fields() {
        summary.entry(*field).or_insert_with(|| Value::from(0));
    }

    let mut daily = group(answers, Dataset::Daily, |d| d.daily.as_deref(), policies);
    daily.sort_by(|a, b| key(a, "date").cmp(key(b, "date")));

    let mut features = group(
        answers,
        Dataset::Features,
        |d| d.features.as_deref(),
        policies,
    );
    features.sort_by(|a, b| {
        number(b, "views")
            .total_cmp(&number(a, "views"))
            .then_with(|| key(a, "feature").cmp(key(b, "feature")))
    });

    let mut clients = group(
        answers,
        Dataset::Clients,
        |d| d.clients.as_deref(),
        policies,
    );
    clients.sort_by(|a, b| {
        number(b, "events")
            .total_cmp(&number(a, "events"))
            .then_with(|| key(a, "client").cmp(key(b, "client")))
    });
    clients.truncate(top_clients);

    Merged {
        summary,
        daily_metrics: daily,
        feature_metrics: features,
        client_metrics: clients,
    }
}

fn key<'a>(record: &'a Record, field: &str) -> &'a str {
    record
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn number(record: &Record, field: &str) -> f64 {
    record.get(field).and_then(Value::as_f64).unwrap_or(0.0)
}

/// Groups the records of one dataset across answers by its key field, first seen first.
fn group<'a>(
    answers: &[&'a SourceData],
    dataset: Dataset,
    rows: impl Fn(&'a SourceData) -> Option<&'a [Record]>,
    policies: &Policies,
) -> Vec<Record> {
    let key_field = dataset.key_field().unwrap_or_default();
    let mut order: Vec<Record> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for answer in answers {
        for record in rows(answer).unwrap_or_default() {
            let key = key(record, key_field).to_owned();
            match index.get(&key) {
                Some(&at) => combine_into(&mut order[at], record, dataset, policies),
                None => {
                    index.insert(key, order.len());
                    order.push(record.clone());
                }
            }
        }
    }
    order
}

/// Folds `record` into `into`, field by field.
fn combine_into(into: &mut Record, record: &Record, dataset: Dataset, policies: &Policies) {
    for (field, value) in record {
        let policy = policies
            .get(&(dataset, field.clone()))
            .copied()
            .unwrap_or_default();
        match into.get_mut(field) {
            None => {
                into.insert(field.clone(), value.clone());
            }
            Some(existing) => {
                if let Some(combined) = combine(existing, value, policy) {
                    *existing = combined;
                }
            }
        }
    }
}

/// Combines two values; `None` keeps the existing one (the `first` policy, and any
/// non-numeric field such as a name, which cannot be summed).
fn combine(existing: &Value, incoming: &Value, policy: MergePolicy) -> Option<Value> {
    if policy == MergePolicy::First {
        return None;
    }
    let (Value::Number(a), Value::Number(b)) = (existing, incoming) else {
        return None;
    };
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return Some(Value::from(match policy {
            MergePolicy::Sum => a.saturating_add(b),
            MergePolicy::Max => a.max(b),
            MergePolicy::Min => a.min(b),
            MergePolicy::First => a,
        }));
    }
    let (a, b) = (a.as_f64()?, b.as_f64()?);
    let value = match policy {
        MergePolicy::Sum => a + b,
        MergePolicy::Max => a.max(b),
        MergePolicy::Min => a.min(b),
        MergePolicy::First => a,
    };
    serde_json::Number::from_f64(value).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn records(value: Value) -> Vec<Record> {
        serde_json::from_value(value).unwrap()
    }

    fn answer(value: Value) -> SourceData {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn sums_by_default_and_honours_declared_policies() {
        let a = answer(
            json!({"summary": {"total_users": 10, "total_events": 100, "page_views": 5, "active_clients": 3, "revenue": 1.5, "label": "x"}}),
        );
        let b = answer(
            json!({"summary": {"total_users": 7, "total_events": 50, "page_views": 5, "active_clients": 4, "revenue": 2.0, "label": "y"}}),
        );
        let policies = Policies::from([
            (
                (Dataset::Summary, "active_clients".to_owned()),
                MergePolicy::Max,
            ),
            (
                (Dataset::Summary, "page_views".to_owned()),
                MergePolicy::First,
            ),
        ]);
        let merged = merge(&[&a, &b], &policies, 20);
        assert_eq!(
            Value::Object(merged.summary),
            json!({"total_users": 17, "total_events": 150, "page_views": 5, "active_clients": 4, "revenue": 3.5, "label": "x"})
        );
    }

    #[test]
    fn daily_points_combine_by_date_and_sort() {
        let a = answer(
            json!({"daily": [{"date": "2026-01-02", "users": 1, "events": 2}, {"date": "2026-01-01", "users": 3, "events": 4}]}),
        );
        let b = answer(
            json!({"daily": [{"date": "2026-01-02", "users": 10, "events": 20}, {"date": "2026-01-03", "users": 1, "events": 1}]}),
        );
        let policies = Policies::from([((Dataset::Daily, "users".to_owned()), MergePolicy::Min)]);
        let merged = merge(&[&a, &b], &policies, 20);
        assert_eq!(
            merged.daily_metrics,
            records(json!([
                {"date": "2026-01-01", "users": 3, "events": 4},
                {"date": "2026-01-02", "users": 1, "events": 22},
                {"date": "2026-01-03", "users": 1, "events": 1}
            ]))
        );
    }

    #[test]
    fn clients_are_resorted_and_cut_to_top_n() {
        let a = answer(
            json!({"clients": [{"client": "a", "events": 5}, {"client": "b", "events": 4}, {"client": "c", "events": 3}]}),
        );
        let b = answer(
            json!({"clients": [{"client": "c", "events": 10}, {"client": "d", "events": 1}]}),
        );
        let merged = merge(&[&a, &b], &Policies::new(), 2);
        let names: Vec<_> = merged
            .client_metrics
            .iter()
            .map(|c| key(c, "client"))
            .collect();
        assert_eq!(names, vec!["c", "a"]);
        assert_eq!(merged.client_metrics[0]["events"], json!(13));
    }

    #[test]
    fn features_sort_by_views_then_name_and_missing_summary_is_zero() {
        let a = answer(
            json!({"features": [{"feature": "B", "views": 2}, {"feature": "A", "views": 2}, {"feature": "C", "views": 9}]}),
        );
        let merged = merge(&[&a], &Policies::new(), 20);
        let names: Vec<_> = merged
            .feature_metrics
            .iter()
            .map(|c| key(c, "feature"))
            .collect();
        assert_eq!(names, vec!["C", "A", "B"]);
        assert_eq!(
            Value::Object(merged.summary),
            json!({"total_users": 0, "total_events": 0, "page_views": 0, "active_clients": 0})
        );
    }
}
