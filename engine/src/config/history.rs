//! A source's `history:` validated: when its days settle, how far and how fast the
//! backfill goes, how long stored days are kept, and which fields add up across days.
//! The store and the answering live in [`crate::history`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::names::FIELD_NAME;
use super::raw::HistoryConfig;
use super::Problems;
use crate::model::Dataset;

const DAY: Duration = Duration::from_secs(86_400);
const DEFAULT_SETTLE: Duration = DAY;
const DEFAULT_BACKFILL: Duration = Duration::from_secs(90 * 86_400);
const DEFAULT_EVERY: Duration = Duration::from_secs(1);
const DEFAULT_RETENTION: Duration = Duration::from_secs(400 * 86_400);
/// The longest backfill: a request window is at most this long too (`MAX_DAYS`).
const MAX_BACKFILL_DAYS: u32 = 3_660;

/// A source's validated `history:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistorySpec {
    /// How long after a UTC day ends its numbers may still change.
    pub settle: Duration,
    /// Settled days the background backfill stores, counting back from the newest.
    pub backfill_days: u32,
    /// At most one backfill fetch per this interval.
    pub backfill_every: Duration,
    /// Stored days older than this many days are deleted.
    pub retention_days: u32,
    /// Per dataset, the fields summed across days.
    pub additive: BTreeMap<Dataset, BTreeSet<String>>,
}

impl HistorySpec {
    /// Whether `dataset` can be answered from stored days: daily rows are one per day;
    /// another dataset needs every unified field but its key to add up.
    pub fn stores(&self, dataset: Dataset) -> bool {
        if dataset == Dataset::Daily {
            return true;
        }
        let additive = self.additive.get(&dataset);
        dataset
            .fields()
            .iter()
            .filter(|(field, _)| Some(*field) != dataset.key_field())
            .all(|(field, _)| additive.is_some_and(|set| set.contains(*field)))
    }

    /// Whether `field` of `dataset` adds up across days.
    pub fn is_additive(&self, dataset: Dataset, field: &str) -> bool {
        self.additive
            .get(&dataset)
            .is_some_and(|set| set.contains(field))
    }
}

/// The unified model's fields that add up across days, per dataset.
pub fn default_additive() -> BTreeMap<Dataset, BTreeSet<String>> {
    let set = |fields: &[&str]| fields.iter().map(|f| (*f).to_owned()).collect();
    BTreeMap::from([
        (Dataset::Summary, set(&["total_events", "page_views"])),
        (Dataset::Features, set(&["views"])),
        (Dataset::Clients, set(&["events", "page_views"])),
    ])
}

/// Validates `history:`; `datasets` are those the source has a query for.
pub fn compile(
    config: HistoryConfig,
    datasets: &BTreeSet<Dataset>,
    problems: &mut Problems,
) -> HistorySpec {
    let settle = problems.duration("/history/settle", config.settle.as_deref(), DEFAULT_SETTLE);
    let backfill = whole_days(
        problems,
        "/history/backfill",
        config.backfill.as_deref(),
        DEFAULT_BACKFILL,
    );
    let retention = whole_days(
        problems,
        "/history/retention",
        config.retention.as_deref(),
        DEFAULT_RETENTION,
    );
    let every = problems.duration(
        "/history/backfill_every",
        config.backfill_every.as_deref(),
        DEFAULT_EVERY,
    );
    if backfill > MAX_BACKFILL_DAYS {
        problems.add(
            "/history/backfill",
            format!("the backfill goes back at most {MAX_BACKFILL_DAYS}d: shorten it"),
        );
    }
    if retention < backfill {
        problems.add(
            "/history/retention",
            format!("retention ({retention}d) is shorter than the backfill ({backfill}d): keep at least what the backfill stores"),
        );
    }
    HistorySpec {
        settle,
        backfill_days: backfill,
        backfill_every: every,
        retention_days: retention,
        additive: additive(config.additive, datasets, problems),
    }
}

/// A duration in whole days.
fn whole_days(
    problems: &mut Problems,
    pointer: &str,
    value: Option<&str>,
    default: Duration,
) -> u32 {
    let duration = problems.duration(pointer, value, default);
    if !duration.as_secs().is_multiple_of(DAY.as_secs()) || duration.is_zero() {
        problems.add(
            pointer,
            "give a whole number of days of at least one, e.g. 90d",
        );
        return 1;
    }
    u32::try_from(duration.as_secs() / DAY.as_secs()).unwrap_or(u32::MAX)
}

/// The declared additive fields over the defaults: a listed dataset replaces its default
/// list.
fn additive(
    config: BTreeMap<String, Vec<String>>,
    datasets: &BTreeSet<Dataset>,
    problems: &mut Problems,
) -> BTreeMap<Dataset, BTreeSet<String>> {
    let mut additive = default_additive();
    for (name, fields) in config {
        let pointer = format!("/history/additive/{name}");
        let Some(dataset) = super::common::dataset(&name, &pointer, problems) else {
            continue;
        };
        if dataset == Dataset::Daily {
            problems.add(
                &pointer,
                "daily rows are one per day and stored whole: leave daily out",
            );
            continue;
        }
        if !datasets.contains(&dataset) {
            problems.add(
                &pointer,
                format!("there is no `queries.{name}` for this list to apply to"),
            );
        }
        let mut set = BTreeSet::new();
        for (index, field) in fields.into_iter().enumerate() {
            let at = format!("{pointer}/{index}");
            if !FIELD_NAME.allows(&field) {
                problems.add(&at, format!("`{field}` is not a field name"));
            } else if Some(field.as_str()) == dataset.key_field() {
                problems.add(
                    &at,
                    format!("`{field}` is what {dataset} rows are matched by, not a value to add up: leave it out"),
                );
            } else if !set.insert(field.clone()) {
                problems.add(&at, format!("`{field}` is listed twice"));
            }
        }
        additive.insert(dataset, set);
    }
    additive
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(yaml: &str) -> (HistorySpec, Vec<(String, String)>) {
        let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
        let config: HistoryConfig = serde_json::from_value(value).unwrap();
        let mut problems = Problems::new();
        let spec = compile(config, &Dataset::ALL.into_iter().collect(), &mut problems);
        (spec, problems.into_list())
    }

    #[test]
    fn defaults_store_daily_and_features_only() {
        let (spec, problems) = compiled("{}");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(spec.settle, DAY);
        assert_eq!((spec.backfill_days, spec.retention_days), (90, 400));
        let stored: Vec<Dataset> = Dataset::ALL
            .into_iter()
            .filter(|d| spec.stores(*d))
            .collect();
        assert_eq!(stored, [Dataset::Daily, Dataset::Features]);
        assert!(spec.is_additive(Dataset::Summary, "total_events"));
        assert!(!spec.is_additive(Dataset::Summary, "total_users"));
    }

    #[test]
    fn a_declared_list_replaces_the_default() {
        let (spec, problems) =
            compiled("{settle: 2d, additive: {summary: [total_users, total_events, page_views, active_clients, leads]}}");
        assert!(problems.is_empty(), "{problems:?}");
        assert!(spec.stores(Dataset::Summary));
        assert!(spec.is_additive(Dataset::Summary, "leads"));
        assert_eq!(spec.settle, 2 * DAY);
    }

    #[test]
    fn mistakes_are_named_with_a_fix() {
        let (_, problems) = compiled(
            "{backfill: 36h, retention: 30d, additive: {daily: [users], features: [feature, views, views], nonsense: [x]}}",
        );
        let text = format!("{problems:?}");
        for expected in [
            "/history/backfill\", \"give a whole number of days",
            "/history/additive/daily\", \"daily rows are one per day",
            "/history/additive/features/0\", \"`feature` is what features rows are matched by",
            "/history/additive/features/2\", \"`views` is listed twice",
            "/history/additive/nonsense\", \"`nonsense` is not a dataset",
        ] {
            assert!(text.contains(expected), "{text} lacks {expected}");
        }
        let (_, problems) = compiled("{backfill: 90d, retention: 30d}");
        assert!(
            format!("{problems:?}").contains("retention (30d) is shorter than the backfill (90d)")
        );
    }
}
