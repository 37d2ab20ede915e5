//! `metrics-hub history verify`: re-queries a sample of a source's stored days and reports
//! every dataset whose fresh answer differs from the stored one, so a store that has
//! drifted from its source (a late correction upstream, a changed definition that kept
//! its digest) is found instead of trusted.

use chrono::{Days, NaiveDate, Utc};
use serde_json::Value;

use super::compose;
use super::source::Core;
use crate::kinds::SourceError;
use crate::model::{Dataset, Record, SourceData};

/// One stored day that differs from the source's answer now.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub day: NaiveDate,
    pub dataset: Dataset,
    pub stored: Value,
    pub fresh: Value,
}

/// What a verification found.
#[derive(Debug, Default)]
pub struct Report {
    /// Stored days compared.
    pub checked: usize,
    pub differences: Vec<Difference>,
}

/// Compares at most `sample` of the stored days among the newest `days` settled ones
/// (spread evenly, newest and oldest included) with fresh one-day answers.
pub async fn verify(core: &Core, days: u32, sample: usize) -> Result<Report, SourceError> {
    let newest = compose::newest_settled(Utc::now(), core.spec.settle);
    let oldest = newest - Days::new(u64::from(days.max(1) - 1));
    let stored = core
        .store
        .days(&core.id, &core.definition, oldest, newest)
        .await
        .map_err(|err| SourceError::Connect(err.to_string()))?;
    let mut report = Report::default();
    let all: Vec<(&NaiveDate, &SourceData)> = stored.iter().collect();
    for (day, kept) in spread(&all, sample) {
        let fresh = core.fetch_day(*day).await?;
        report.checked += 1;
        for dataset in &core.stored {
            let (a, b) = (canonical(kept, *dataset), canonical(&fresh, *dataset));
            if a != b {
                report.differences.push(Difference {
                    day: *day,
                    dataset: *dataset,
                    stored: a,
                    fresh: b,
                });
            }
        }
    }
    Ok(report)
}

/// At most `count` items of `items`, evenly spaced, first and last included.
fn spread<T: Copy>(items: &[T], count: usize) -> Vec<T> {
    if items.len() <= count {
        return items.to_vec();
    }
    if count <= 1 {
        return items.last().copied().into_iter().collect();
    }
    (0..count)
        .map(|i| items[i * (items.len() - 1) / (count - 1)])
        .collect()
}

/// One dataset of an answer with its rows in key order, so order does not count.
fn canonical(data: &SourceData, dataset: Dataset) -> Value {
    let mut rows: Vec<Record> = match dataset {
        Dataset::Summary => data.summary.iter().cloned().collect(),
        Dataset::Daily => data.daily.clone().unwrap_or_default(),
        Dataset::Features => data.features.clone().unwrap_or_default(),
        Dataset::Clients => data.clients.clone().unwrap_or_default(),
    };
    if let Some(key) = dataset.key_field() {
        rows.sort_by_key(|row| row.get(key).map(Value::to_string));
    }
    Value::Array(rows.into_iter().map(Value::Object).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_spreads_over_the_days() {
        let days: Vec<u32> = (0..10).collect();
        assert_eq!(spread(&days, 3), [0, 4, 9]);
        assert_eq!(spread(&days, 20), days);
        assert_eq!(spread(&days, 1), [9]);
    }

    #[test]
    fn row_order_does_not_count() {
        let row = |name: &str, views: u32| {
            serde_json::json!({"feature": name, "views": views})
                .as_object()
                .unwrap()
                .clone()
        };
        let a = SourceData {
            features: Some(vec![row("a", 1), row("b", 2)]),
            ..SourceData::default()
        };
        let b = SourceData {
            features: Some(vec![row("b", 2), row("a", 1)]),
            ..SourceData::default()
        };
        assert_eq!(
            canonical(&a, Dataset::Features),
            canonical(&b, Dataset::Features)
        );
    }
}
