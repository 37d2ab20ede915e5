//! The arithmetic of history, pure: which days of a window are settled, and how stored
//! days and a fresh answer for the open days add up to the window's answer. Only fields
//! declared additive are summed; daily rows are one per day and are taken whole.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde_json::{Number, Value};

use crate::config::HistorySpec;
use crate::model::{Dataset, QueryParams, Record, SourceData};

/// An inclusive run of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRun {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl DayRun {
    /// Every day of the run, oldest first.
    pub fn iter(self) -> impl DoubleEndedIterator<Item = NaiveDate> {
        (0..self.len() as u64).map(move |offset| self.first + Days::new(offset))
    }

    /// How many days the run has (at least one: a run is never empty).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(self) -> usize {
        usize::try_from((self.last - self.first).num_days() + 1).unwrap_or(0)
    }

    /// The run as an unfiltered request window.
    pub fn params(self) -> QueryParams {
        QueryParams::between(self.first, self.last)
    }

    /// A run of one day.
    pub fn day(day: NaiveDate) -> DayRun {
        DayRun {
            first: day,
            last: day,
        }
    }
}

/// A window cut at the newest settled day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Days the store answers.
    pub settled: Option<DayRun>,
    /// Days fetched fresh.
    pub open: Option<DayRun>,
}

/// The newest day whose numbers no longer change at `now`: a UTC day is settled once
/// `settle` has passed since it ended.
pub fn newest_settled(now: DateTime<Utc>, settle: Duration) -> NaiveDate {
    let settle = chrono::Duration::from_std(settle).unwrap_or(chrono::Duration::MAX);
    let cutoff = now
        .checked_sub_signed(settle)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    cutoff.date_naive() - Days::new(1)
}

/// Cuts `params`' window at `newest_settled`.
pub fn split(params: &QueryParams, newest_settled: NaiveDate) -> Split {
    let (start, end) = (params.start_date, params.end_date);
    let settled = (start <= newest_settled).then(|| DayRun {
        first: start,
        last: end.min(newest_settled),
    });
    let open = (end > newest_settled).then(|| DayRun {
        first: start.max(newest_settled + Days::new(1)),
        last: end,
    });
    Split { settled, open }
}

/// The datasets of `provided` that `spec` lets the store answer.
pub fn stored_datasets(spec: &HistorySpec, provided: &BTreeSet<Dataset>) -> BTreeSet<Dataset> {
    provided
        .iter()
        .copied()
        .filter(|d| spec.stores(*d))
        .collect()
}

/// Whether a stored day has every dataset the store answers (a day stored before a
/// dataset was added is not).
pub fn complete(day: &SourceData, datasets: &BTreeSet<Dataset>) -> bool {
    day.missing_datasets().iter().all(|d| !datasets.contains(d))
}

/// The window's answer for `datasets` from its days' answers (stored days, then the
/// fresh one for the open days), oldest first.
pub fn combine<'a>(
    spec: &HistorySpec,
    datasets: &BTreeSet<Dataset>,
    days: impl IntoIterator<Item = &'a SourceData>,
) -> SourceData {
    let mut sums: BTreeMap<Dataset, Sums> = datasets
        .iter()
        .filter(|d| **d != Dataset::Daily)
        .map(|d| (*d, Sums::default()))
        .collect();
    let mut daily = datasets.contains(&Dataset::Daily).then(Vec::new);
    let mut warnings = BTreeSet::new();
    for day in days {
        if let (Some(rows), Some(day_rows)) = (daily.as_mut(), &day.daily) {
            rows.extend(day_rows.iter().cloned());
        }
        for (dataset, sums) in &mut sums {
            for row in rows_of(day, *dataset) {
                sums.add(spec, *dataset, row, &mut warnings);
            }
        }
    }
    let mut data = SourceData::default();
    if let Some(rows) = daily {
        data.daily = Some(rows);
    }
    for (dataset, sums) in sums {
        data.set(dataset, sums.rows);
    }
    data.warnings = warnings.into_iter().collect();
    data
}

fn rows_of(day: &SourceData, dataset: Dataset) -> &[Record] {
    match dataset {
        Dataset::Summary => day.summary.as_slice(),
        Dataset::Daily => day.daily.as_deref().unwrap_or_default(),
        Dataset::Features => day.features.as_deref().unwrap_or_default(),
        Dataset::Clients => day.clients.as_deref().unwrap_or_default(),
    }
}

/// Rows summed by their key (one row for the summary), in order of first appearance.
#[derive(Default)]
struct Sums {
    rows: Vec<Record>,
    at: BTreeMap<String, usize>,
}

impl Sums {
    fn add(
        &mut self,
        spec: &HistorySpec,
        dataset: Dataset,
        row: &Record,
        warnings: &mut BTreeSet<String>,
    ) {
        let key_field = dataset.key_field();
        let key = key_field
            .and_then(|field| row.get(field))
            .map(Value::to_string)
            .unwrap_or_default();
        let index = *self.at.entry(key).or_insert_with(|| {
            let mut fresh = Record::new();
            if let Some(field) = key_field {
                fresh.insert(
                    field.to_owned(),
                    row.get(field).cloned().unwrap_or(Value::Null),
                );
            }
            self.rows.push(fresh);
            self.rows.len() - 1
        });
        let target = &mut self.rows[index];
        for (field, value) in row {
            if Some(field.as_str()) == key_field {
                continue;
            }
            if !spec.is_additive(dataset, field) {
                warnings.insert(format!(
                    "{dataset}.{field} is not declared additive (history.additive.{dataset}), so it is left out of answers from stored days"
                ));
                continue;
            }
            let sum = match target.get(field) {
                None => Some(value.clone()),
                Some(seen) => add(seen, value),
            };
            match sum {
                Some(sum) => {
                    target.insert(field.clone(), sum);
                }
                None => {
                    warnings.insert(format!(
                        "{dataset}.{field} is declared additive but is not a number on every day: left out"
                    ));
                }
            }
        }
    }
}

/// `a + b` for JSON numbers, exact for integers; null adds nothing. `None` when either
/// is not a number.
fn add(a: &Value, b: &Value) -> Option<Value> {
    match (a, b) {
        (Value::Null, other) | (other, Value::Null) if other.is_number() || other.is_null() => {
            Some(other.clone())
        }
        (Value::Number(a), Value::Number(b)) => {
            if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
                if let Some(sum) = x.checked_add(y) {
                    return Some(Value::from(sum));
                }
            }
            if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
                if let Some(sum) = x.checked_add(y) {
                    return Some(Value::from(sum));
                }
            }
            let sum = a.as_f64()? + b.as_f64()?;
            Number::from_f64(sum).map(Value::Number)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn record(value: Value) -> Record {
        value.as_object().unwrap().clone()
    }

    fn spec() -> HistorySpec {
        HistorySpec {
            settle: Duration::ZERO,
            backfill_days: 90,
            backfill_every: Duration::from_secs(1),
            retention_days: 400,
            additive: crate::config::history::default_additive(),
        }
    }

    #[test]
    fn a_day_settles_once_its_settle_time_has_passed_after_it_ended() {
        let now = at("2026-03-05T10:00:00Z");
        assert_eq!(newest_settled(now, Duration::ZERO), day("2026-03-04"));
        assert_eq!(
            newest_settled(now, Duration::from_secs(2 * 86_400)),
            day("2026-03-02")
        );
        // Ten hours after midnight, a ten-hour settle has just passed for yesterday.
        assert_eq!(
            newest_settled(now, Duration::from_secs(10 * 3_600)),
            day("2026-03-04")
        );
        assert_eq!(
            newest_settled(now, Duration::from_secs(10 * 3_600 + 1)),
            day("2026-03-03")
        );
    }

    #[test]
    fn windows_split_at_the_newest_settled_day() {
        let window = QueryParams::between(day("2026-03-01"), day("2026-03-10"));
        let split = split(&window, day("2026-03-07"));
        assert_eq!(split.settled.unwrap().len(), 7);
        assert_eq!(split.open.unwrap().first, day("2026-03-08"));
        let old = super::split(&window, day("2026-03-20"));
        assert_eq!(
            (old.settled.unwrap().last, old.open),
            (day("2026-03-10"), None)
        );
        let new = super::split(&window, day("2026-02-01"));
        assert_eq!((new.settled, new.open.unwrap().len()), (None, 10));
    }

    #[test]
    fn additive_fields_sum_exactly_and_others_are_left_out_with_a_warning() {
        let one = SourceData {
            daily: Some(vec![record(
                json!({"date": "2026-03-01", "users": 2, "events": 5}),
            )]),
            features: Some(vec![
                record(json!({"feature": "Deals", "views": 3, "avg_seconds": 1.5})),
                record(json!({"feature": "Buybox", "views": 1})),
            ]),
            ..SourceData::default()
        };
        let two = SourceData {
            daily: Some(vec![record(
                json!({"date": "2026-03-02", "users": 4, "events": 7}),
            )]),
            features: Some(vec![record(
                json!({"feature": "Deals", "views": 9007199254740993_i64}),
            )]),
            ..SourceData::default()
        };
        let datasets = BTreeSet::from([Dataset::Daily, Dataset::Features]);
        let data = combine(&spec(), &datasets, [&one, &two]);
        let daily = data.daily.unwrap();
        assert_eq!(daily.len(), 2);
        assert_eq!(daily[1]["users"], json!(4));
        let features = data.features.unwrap();
        assert_eq!(
            features[0],
            record(json!({"feature": "Deals", "views": 9007199254740996_i64}))
        );
        assert_eq!(
            features[1],
            record(json!({"feature": "Buybox", "views": 1}))
        );
        assert_eq!(data.warnings.len(), 1);
        assert!(data.warnings[0].contains("features.avg_seconds is not declared additive"));
        assert_eq!(data.summary, None);
    }

    #[test]
    fn numbers_add_as_integers_where_they_can() {
        assert_eq!(add(&json!(2), &json!(3)), Some(json!(5)));
        assert_eq!(add(&json!(u64::MAX - 1), &json!(1)), Some(json!(u64::MAX)));
        assert_eq!(add(&json!(1.5), &json!(2)), Some(json!(3.5)));
        assert_eq!(add(&json!(null), &json!(2)), Some(json!(2)));
        assert_eq!(add(&json!("2"), &json!(2)), None);
        let full = BTreeSet::from([Dataset::Summary]);
        let day = SourceData {
            summary: Some(Record::new()),
            ..SourceData::default()
        };
        assert!(complete(&day, &full));
        assert!(!complete(&day, &BTreeSet::from([Dataset::Daily])));
    }
}
