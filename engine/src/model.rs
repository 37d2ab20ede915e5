//! The unified metrics model every source maps into, and the query parameters every source receives.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{AdditionalProperties, KnownFormat, Object, SchemaFormat, Type};
use utoipa::openapi::ObjectBuilder;

/// The four datasets a dashboard asks for. A source may provide any subset of them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Dataset {
    Summary,
    Daily,
    Features,
    Clients,
}

impl Dataset {
    /// Every dataset, in response order.
    pub const ALL: [Dataset; 4] = [
        Dataset::Summary,
        Dataset::Daily,
        Dataset::Features,
        Dataset::Clients,
    ];

    /// The name used in YAML keys and error paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Dataset::Summary => "summary",
            Dataset::Daily => "daily",
            Dataset::Features => "features",
            Dataset::Clients => "clients",
        }
    }

    /// Parses a YAML key.
    pub fn parse(name: &str) -> Option<Dataset> {
        Dataset::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// The unified fields of this dataset with their types; mappings may only target these.
    pub fn fields(self) -> &'static [(&'static str, FieldType)] {
        use FieldType::*;
        match self {
            Dataset::Summary => &[
                ("total_users", Count),
                ("total_events", Count),
                ("page_views", Count),
                ("active_clients", Count),
            ],
            Dataset::Daily => &[("date", Date), ("users", Count), ("events", Count)],
            Dataset::Features => &[("feature", Label), ("views", Count)],
            Dataset::Clients => &[
                ("client", Label),
                ("events", Count),
                ("users", Count),
                ("page_views", Count),
            ],
        }
    }

    /// The field that identifies a record when merging across sources (none for the summary).
    pub fn key_field(self) -> Option<&'static str> {
        match self {
            Dataset::Summary => None,
            Dataset::Daily => Some("date"),
            Dataset::Features => Some("feature"),
            Dataset::Clients => Some("client"),
        }
    }

    /// What the dataset holds, for the schema and API descriptions.
    pub fn description(self) -> &'static str {
        match self {
            Dataset::Summary => "Totals over the requested period, one row: total_users, total_events, page_views, active_clients.",
            Dataset::Daily => "One row per day: date, users, events.",
            Dataset::Features => "Views per product feature: feature, views.",
            Dataset::Clients => "Activity per client: client, events, users, page_views.",
        }
    }

    /// What a unified field of this dataset means, for the schema and API descriptions.
    pub fn field_description(self, field: &str) -> &'static str {
        match (self, field) {
            (Dataset::Summary, "total_users") => "Distinct users in the period.",
            (Dataset::Summary, "total_events") => "Events in the period.",
            (Dataset::Summary, "page_views") => "Page-view events in the period.",
            (Dataset::Summary, "active_clients") => "Distinct clients with activity in the period.",
            (Dataset::Daily, "date") => "The day (a date, or YYYYMMDD text).",
            (Dataset::Daily, "users") => "Distinct users that day.",
            (Dataset::Daily, "events") => "Events that day.",
            (Dataset::Features, "feature") => "Feature name.",
            (Dataset::Features, "views") => "Page views of the feature.",
            (Dataset::Clients, "client") => "Client identifier.",
            (Dataset::Clients, "events") => "Events of the client.",
            (Dataset::Clients, "users") => "Distinct users of the client.",
            (Dataset::Clients, "page_views") => "Page-view events of the client.",
            _ => "",
        }
    }

    /// The JSON Schema of one record of this dataset in an answer, for the API
    /// description: every unified field is there (mapping fills or refuses each), and
    /// whatever extra fields the source passed through.
    pub fn record_schema(self) -> Object {
        let mut record = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(self.description()))
            .additional_properties(Some(AdditionalProperties::FreeForm(true)));
        for &(field, field_type) in self.fields() {
            let description = Some(self.field_description(field));
            let schema = field_type.schema().description(description);
            record = record.property(field, schema).required(field);
        }
        record.build()
    }

    /// The type of a unified field, or `None` when `field` is not one.
    pub fn field_type(self, field: &str) -> Option<FieldType> {
        self.fields()
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, ty)| *ty)
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a unified field holds; mapping coerces source values into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A non-negative whole number (users, events, views).
    Count,
    /// A calendar day, written `YYYY-MM-DD`.
    Date,
    /// A name: a feature or a client.
    Label,
}

impl FieldType {
    /// How a field of this type is written in an answer.
    fn schema(self) -> ObjectBuilder {
        match self {
            // Mapping keeps fractional counts (an average over a period) as they are.
            FieldType::Count => ObjectBuilder::new()
                .schema_type(Type::Number)
                .minimum(Some(0)),
            FieldType::Date => ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))),
            FieldType::Label => ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1)),
        }
    }
}

/// One record of the unified model: the dataset's unified fields plus any extra fields
/// the source passed through. Kept as a JSON object so extra fields stay open-ended.
pub type Record = Map<String, Value>;

/// What one source answered, per dataset. `None` means the source does not provide that
/// dataset (said so in metadata) rather than "zero".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceData {
    pub summary: Option<Record>,
    pub daily: Option<Vec<Record>>,
    pub features: Option<Vec<Record>>,
    pub clients: Option<Vec<Record>>,
    /// Things the answer is still correct but worth knowing about (e.g. a page limit hit),
    /// reported per source in metadata.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// How the history store took part, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryNote>,
}

/// What the history store did for one answer (`sourceDetails[].history`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryNote {
    /// The datasets summed from days (the others were queried for the whole window).
    pub datasets: Vec<Dataset>,
    /// Settled days read from the store.
    pub stored_days: usize,
    /// Settled days the store lacked, fetched one by one and stored.
    pub fetched_days: usize,
    /// Days not settled yet, fetched fresh.
    pub open_days: usize,
    /// Why the store was not used for this answer, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypassed: Option<String>,
}

impl SourceData {
    /// Number of records across the datasets (the summary counts as one).
    pub fn record_count(&self) -> usize {
        usize::from(self.summary.is_some())
            + self.daily.as_ref().map_or(0, Vec::len)
            + self.features.as_ref().map_or(0, Vec::len)
            + self.clients.as_ref().map_or(0, Vec::len)
    }

    /// Datasets this answer does not contain.
    pub fn missing_datasets(&self) -> Vec<Dataset> {
        Dataset::ALL
            .into_iter()
            .filter(|d| match d {
                Dataset::Summary => self.summary.is_none(),
                Dataset::Daily => self.daily.is_none(),
                Dataset::Features => self.features.is_none(),
                Dataset::Clients => self.clients.is_none(),
            })
            .collect()
    }

    /// Drops every dataset not in `datasets`.
    pub fn keep(&mut self, datasets: &std::collections::BTreeSet<Dataset>) {
        let keep = |dataset| datasets.contains(&dataset);
        if !keep(Dataset::Summary) {
            self.summary = None;
        }
        if !keep(Dataset::Daily) {
            self.daily = None;
        }
        if !keep(Dataset::Features) {
            self.features = None;
        }
        if !keep(Dataset::Clients) {
            self.clients = None;
        }
    }

    /// Stores the rows of one dataset; the summary keeps the first row (an empty result
    /// becomes an all-default summary row).
    pub fn set(&mut self, dataset: Dataset, mut rows: Vec<Record>) {
        match dataset {
            Dataset::Summary => {
                self.summary = Some(if rows.is_empty() {
                    Record::new()
                } else {
                    rows.swap_remove(0)
                })
            }
            Dataset::Daily => self.daily = Some(rows),
            Dataset::Features => self.features = Some(rows),
            Dataset::Clients => self.clients = Some(rows),
        }
    }
}

/// A typed value of a declared filter, already checked against its declaration.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(untagged)]
pub enum FilterValue {
    Text(String),
    Integer(i64),
    Date(NaiveDate),
}

/// The normalised parameters of one metrics request. Two requests that mean the same
/// thing produce equal values, which is what the caches key on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct QueryParams {
    /// Length of the window in days (`end_date - start_date`), as the original `days` meant.
    pub days: u32,
    /// First day included.
    pub start_date: NaiveDate,
    /// Last day included.
    pub end_date: NaiveDate,
    /// Declared filters given in the request, by name.
    pub filters: BTreeMap<String, FilterValue>,
}

impl QueryParams {
    /// The window `today - days ..= today`, as the original GA4 queries used.
    pub fn last_days(days: u32, today: NaiveDate) -> QueryParams {
        QueryParams {
            days,
            start_date: today - chrono::Days::new(u64::from(days)),
            end_date: today,
            filters: BTreeMap::new(),
        }
    }

    /// An explicit inclusive window.
    pub fn between(start_date: NaiveDate, end_date: NaiveDate) -> QueryParams {
        let days = u32::try_from((end_date - start_date).num_days().max(0)).unwrap_or(u32::MAX);
        QueryParams {
            days,
            start_date,
            end_date,
            filters: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unified_field_is_described() {
        for dataset in Dataset::ALL {
            assert!(!dataset.description().is_empty());
            for (field, _) in dataset.fields() {
                assert!(
                    !dataset.field_description(field).is_empty(),
                    "{dataset}.{field}"
                );
            }
        }
    }

    #[test]
    fn last_days_counts_back_from_today_inclusive() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let p = QueryParams::last_days(30, today);
        assert_eq!(p.start_date, NaiveDate::from_ymd_opt(2026, 1, 30).unwrap());
        assert_eq!(p.end_date, today);
        assert_eq!(QueryParams::between(p.start_date, p.end_date).days, 30);
    }

    #[test]
    fn missing_datasets_are_reported_not_zeroed() {
        let mut data = SourceData::default();
        data.set(Dataset::Daily, vec![]);
        assert_eq!(
            data.missing_datasets(),
            vec![Dataset::Summary, Dataset::Features, Dataset::Clients]
        );
        data.set(Dataset::Summary, vec![]);
        assert_eq!(data.summary, Some(Record::new()));
    }
}
