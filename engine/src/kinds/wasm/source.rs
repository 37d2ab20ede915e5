//! `kind: wasm`: a source answered by a WebAssembly plugin. The component is loaded (and
//! compiled once, or taken precompiled from the cache) at initialization; calls go through
//! the source's [`Pool`] of sandboxed instances; answers are checked and turned into the
//! unified model here, so a plugin's bad data becomes this source's clear error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use serde_json::{Number, Value};
use tokio::sync::OnceCell;

use super::config::WasmSpec;
use crate::kinds::SourceSpec;
use crate::kinds::{DataSource, SourceError};
use crate::model::{Dataset, FilterValue, QueryParams, Record, SourceData};
use crate::plugin::bindings::types;
use crate::plugin::pool::Pool;
use crate::plugin::{PluginError, Runtime};
use crate::secret::redact;

/// A `wasm` source: its declaration and, once loaded, its instance pool.
pub struct WasmSource {
    id: String,
    spec: WasmSpec,
    component: PathBuf,
    deadline: Duration,
    secrets: Arc<Vec<String>>,
    runtime: Option<Arc<Runtime>>,
    pool: OnceCell<Arc<Pool>>,
}

impl WasmSource {
    /// A source on the process-wide plugin runtime.
    pub fn new(source: &SourceSpec, spec: WasmSpec) -> WasmSource {
        WasmSource::build(source, spec, None)
    }

    /// A source on a given runtime (benchmarks compare cold and warm caches with it).
    pub fn with_runtime(source: &SourceSpec, spec: WasmSpec, runtime: Arc<Runtime>) -> WasmSource {
        WasmSource::build(source, spec, Some(runtime))
    }

    fn build(source: &SourceSpec, spec: WasmSpec, runtime: Option<Arc<Runtime>>) -> WasmSource {
        WasmSource {
            id: source.id.clone(),
            component: spec.component_path(&source.file),
            deadline: spec.sandbox.cpu_deadline.unwrap_or(source.timeout),
            secrets: source.secrets.clone(),
            spec,
            runtime,
            pool: OnceCell::new(),
        }
    }

    /// The pool, loading the component and starting the pool on first use. A failure is
    /// not remembered: the next call tries again (e.g. once the plugin has been built).
    async fn pool(&self) -> Result<&Arc<Pool>, SourceError> {
        self.pool
            .get_or_try_init(|| async {
                let runtime = match &self.runtime {
                    Some(runtime) => runtime.clone(),
                    None => Runtime::shared()?,
                };
                let path = self.component.clone();
                let loader = runtime.clone();
                let plugin = tokio::task::spawn_blocking(move || loader.load(&path))
                    .await
                    .map_err(|err| PluginError::Load {
                        path: self.component.clone(),
                        message: format!("the loading task failed: {err}"),
                    })??;
                Ok(Pool::new(
                    &self.id,
                    runtime,
                    plugin,
                    self.spec.config.0.clone(),
                    self.secrets.clone(),
                    &self.spec.sandbox,
                    self.deadline,
                )?)
            })
            .await
    }
}

#[async_trait]
impl DataSource for WasmSource {
    async fn initialize(&self) -> Result<(), SourceError> {
        Ok(self.pool().await?.warm_up().await?)
    }

    async fn fetch_metrics(&self, params: &QueryParams) -> Result<SourceData, SourceError> {
        let pool = self.pool().await?;
        let metrics = pool.fetch(query_params(params)).await?;
        to_source_data(metrics, params, &self.spec.datasets)
            .map_err(|what| PluginError::BadData(redact(&what, &self.secrets)).into())
    }

    async fn health_check(&self) -> Result<(), SourceError> {
        Ok(self.pool().await?.health().await?)
    }

    async fn cleanup(&self) {
        if let Some(pool) = self.pool.get() {
            pool.cleanup().await;
        }
    }

    fn memory_high_water(&self) -> Option<u64> {
        self.pool.get().map(|pool| pool.memory_high_water() as u64)
    }
}

/// The request as the WIT contract spells it.
pub fn query_params(params: &QueryParams) -> types::QueryParams {
    types::QueryParams {
        days: params.days,
        // NaiveDate's Display is YYYY-MM-DD, without strftime's per-call format parsing.
        start_date: params.start_date.to_string(),
        end_date: params.end_date.to_string(),
        filters: params
            .filters
            .iter()
            .map(|(name, value)| types::Filter {
                name: name.clone(),
                value: match value {
                    FilterValue::Text(text) => types::FilterValue::Text(text.clone()),
                    FilterValue::Integer(number) => types::FilterValue::Integer(*number),
                    FilterValue::Date(date) => types::FilterValue::Date(date.to_string()),
                },
            })
            .collect(),
        // Set by the pool when the call starts, from the time its instance has left.
        deadline_ms: 0,
    }
}

/// Checks a plugin's answer and turns it into the unified model, keeping the datasets the
/// source declares. The error describes the first problem: dataset, position, field and a
/// shortened value.
pub fn to_source_data(
    metrics: types::Metrics,
    params: &QueryParams,
    datasets: &BTreeSet<Dataset>,
) -> Result<SourceData, String> {
    let mut data = SourceData::default();
    let wanted = |dataset| datasets.contains(&dataset);
    if let Some(summary) = metrics.summary.filter(|_| wanted(Dataset::Summary)) {
        let mut record = Record::with_capacity(4 + summary.extra.len());
        let at = At::SUMMARY;
        let fields = [
            ("total_users", summary.total_users),
            ("total_events", summary.total_events),
            ("page_views", summary.page_views),
            ("active_clients", summary.active_clients),
        ];
        // A field the plugin says it does not have stays out of the record, and so out of
        // `summaryFields` and of every merge.
        for (field, value) in fields {
            if let Some(value) = value {
                record.insert(field.into(), count(at, field, value)?);
            }
        }
        extras(at, Dataset::Summary, summary.extra, &mut record)?;
        data.summary = Some(record);
    }
    if let Some(daily) = metrics.daily.filter(|_| wanted(Dataset::Daily)) {
        let mut seen = BTreeMap::new();
        let mut records = Vec::with_capacity(daily.len());
        for (index, day) in daily.into_iter().enumerate() {
            let at = At::item("daily", index);
            let date = plain_date(&day.date).ok_or_else(|| {
                format!(
                    "{at}.date is {}, not a date written YYYY-MM-DD",
                    shorten(&day.date)
                )
            })?;
            if date < params.start_date || date > params.end_date {
                return Err(format!(
                    "{at}.date {date} is outside the requested window {} to {}",
                    params.start_date, params.end_date
                ));
            }
            if let Some(first) = seen.insert(date, index) {
                return Err(format!(
                    "{at}.date {date} repeats daily[{first}]: one entry per day"
                ));
            }
            let mut record = Record::with_capacity(3 + day.extra.len());
            record.insert("date".into(), Value::from(day.date));
            record.insert("users".into(), count(at, "users", day.users)?);
            record.insert("events".into(), count(at, "events", day.events)?);
            extras(at, Dataset::Daily, day.extra, &mut record)?;
            records.push(record);
        }
        data.daily = Some(records);
    }
    if let Some(features) = metrics.features.filter(|_| wanted(Dataset::Features)) {
        let mut seen = BTreeSet::new();
        let mut records = Vec::with_capacity(features.len());
        for (index, feature) in features.into_iter().enumerate() {
            let at = At::item("features", index);
            label(at, "feature", &feature.feature, &mut seen)?;
            let mut record = Record::with_capacity(2 + feature.extra.len());
            record.insert("feature".into(), Value::from(feature.feature));
            record.insert("views".into(), count(at, "views", feature.views)?);
            extras(at, Dataset::Features, feature.extra, &mut record)?;
            records.push(record);
        }
        data.features = Some(records);
    }
    if let Some(clients) = metrics.clients.filter(|_| wanted(Dataset::Clients)) {
        let mut seen = BTreeSet::new();
        let mut records = Vec::with_capacity(clients.len());
        for (index, client) in clients.into_iter().enumerate() {
            let at = At::item("clients", index);
            label(at, "client", &client.client, &mut seen)?;
            let mut record = Record::with_capacity(4 + client.extra.len());
            record.insert("client".into(), Value::from(client.client));
            record.insert("events".into(), count(at, "events", client.events)?);
            record.insert("users".into(), count(at, "users", client.users)?);
            record.insert(
                "page_views".into(),
                count(at, "page_views", client.page_views)?,
            );
            extras(at, Dataset::Clients, client.extra, &mut record)?;
            records.push(record);
        }
        data.clients = Some(records);
    }
    Ok(data)
}

/// A date written exactly `YYYY-MM-DD`, read without chrono's general parser (this runs
/// for every daily record of every call).
fn plain_date(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes[range].iter().try_fold(0u32, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(5..7)?, digits(8..10)?)
}

/// Where in the answer a value is (`summary`, `daily[3]`), written out only for an error.
#[derive(Clone, Copy)]
struct At {
    list: &'static str,
    index: Option<usize>,
}

impl At {
    const SUMMARY: At = At {
        list: "summary",
        index: None,
    };

    fn item(list: &'static str, index: usize) -> At {
        At {
            list,
            index: Some(index),
        }
    }
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(index) => write!(f, "{}[{index}]", self.list),
            None => f.write_str(self.list),
        }
    }
}

fn count(at: At, field: &str, value: i64) -> Result<Value, String> {
    if value < 0 {
        return Err(format!(
            "{at}.{field} is {value}: counts cannot be negative"
        ));
    }
    Ok(Value::from(value))
}

fn label(at: At, field: &str, value: &str, seen: &mut BTreeSet<String>) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{at}.{field} is empty: every entry needs a name"));
    }
    if !seen.insert(value.to_owned()) {
        return Err(format!(
            "{at}.{field} {} appears twice: one entry per {field}",
            shorten(value)
        ));
    }
    Ok(())
}

fn extras(
    at: At,
    dataset: Dataset,
    extra: Vec<types::ExtraField>,
    record: &mut Record,
) -> Result<(), String> {
    for field in extra {
        let name = &field.name;
        let plain = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plain {
            return Err(format!(
                "{at}.extra has the field name {}: use letters, digits and _",
                shorten(name)
            ));
        }
        if dataset.field_type(name).is_some() || record.contains_key(name) {
            return Err(format!("{at}.extra repeats the field {name}"));
        }
        let value = match field.value {
            types::FieldValue::Integer(number) => Value::from(number),
            types::FieldValue::Float(number) => Number::from_f64(number)
                .map(Value::Number)
                .ok_or_else(|| format!("{at}.extra.{name} is {number}, not a finite number"))?,
            types::FieldValue::Text(text) => Value::from(text),
            types::FieldValue::Boolean(flag) => Value::from(flag),
        };
        record.insert(field.name, value);
    }
    Ok(())
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use types::{
        ClientMetric, DailyMetric, ExtraField, FeatureMetric, FieldValue, Metrics, Summary,
    };

    fn params() -> QueryParams {
        QueryParams::between(
            NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            NaiveDate::from_ymd_opt(2026, 3, 3).unwrap(),
        )
    }

    fn day(date: &str, users: i64) -> DailyMetric {
        DailyMetric {
            date: date.into(),
            users,
            events: 2 * users,
            extra: vec![],
        }
    }

    fn all() -> BTreeSet<Dataset> {
        Dataset::ALL.into_iter().collect()
    }

    fn metrics() -> Metrics {
        Metrics {
            summary: Some(Summary {
                total_users: Some(5),
                total_events: Some(9),
                page_views: Some(3),
                active_clients: Some(1),
                extra: vec![ExtraField {
                    name: "pipeline".into(),
                    value: FieldValue::Float(1250.5),
                }],
            }),
            daily: Some(vec![day("2026-03-01", 2), day("2026-03-03", 3)]),
            features: Some(vec![FeatureMetric {
                feature: "Deals".into(),
                views: 4,
                extra: vec![],
            }]),
            clients: None,
        }
    }

    #[test]
    fn a_good_answer_becomes_unified_records() {
        let data = to_source_data(metrics(), &params(), &all()).unwrap();
        assert_eq!(
            Value::Object(data.summary.clone().unwrap()),
            serde_json::json!({"total_users": 5, "total_events": 9, "page_views": 3, "active_clients": 1, "pipeline": 1250.5})
        );
        assert_eq!(
            data.daily.as_ref().unwrap()[1],
            serde_json::json!({"date": "2026-03-03", "users": 3, "events": 6})
                .as_object()
                .unwrap()
                .clone()
        );
        assert_eq!(data.missing_datasets(), vec![Dataset::Clients]);
        // Only declared datasets are kept.
        let summary_only =
            to_source_data(metrics(), &params(), &BTreeSet::from([Dataset::Summary])).unwrap();
        assert_eq!(
            summary_only.missing_datasets(),
            vec![Dataset::Daily, Dataset::Features, Dataset::Clients]
        );
    }

    #[test]
    fn absent_summary_fields_are_left_out() {
        let mut answer = metrics();
        let summary = answer.summary.as_mut().unwrap();
        summary.page_views = None;
        summary.active_clients = None;
        let data = to_source_data(answer, &params(), &all()).unwrap();
        assert_eq!(
            Value::Object(data.summary.unwrap()),
            serde_json::json!({"total_users": 5, "total_events": 9, "pipeline": 1250.5})
        );
    }

    #[test]
    fn malformed_answers_are_named() {
        let check = |change: &dyn Fn(&mut Metrics), expected: &str| {
            let mut answer = metrics();
            change(&mut answer);
            let err = to_source_data(answer, &params(), &all()).unwrap_err();
            assert!(err.contains(expected), "{err} lacks {expected}");
        };
        check(
            &|m| m.summary.as_mut().unwrap().total_users = Some(-1),
            "summary.total_users is -1: counts cannot be negative",
        );
        check(
            &|m| m.daily.as_mut().unwrap()[1].date = "2026-02-30".into(),
            "daily[1].date is \"2026-02-30\", not a date",
        );
        check(
            &|m| m.daily.as_mut().unwrap()[1].date = "20260302".into(),
            "not a date written YYYY-MM-DD",
        );
        check(
            &|m| m.daily.as_mut().unwrap()[1].date = "2026-03-01".into(),
            "daily[1].date 2026-03-01 repeats daily[0]",
        );
        check(
            &|m| m.daily.as_mut().unwrap()[0].date = "2025-03-01".into(),
            "outside the requested window",
        );
        check(
            &|m| m.daily.as_mut().unwrap()[0].events = -4,
            "daily[0].events is -4",
        );
        check(
            &|m| {
                m.clients = Some(vec![
                    ClientMetric {
                        client: "acme".into(),
                        events: 1,
                        users: 1,
                        page_views: 1,
                        extra: vec![],
                    };
                    2
                ])
            },
            "clients[1].client \"acme\" appears twice",
        );
        check(
            &|m| m.features.as_mut().unwrap()[0].feature = " ".into(),
            "features[0].feature is empty",
        );
        check(
            &|m| {
                m.summary.as_mut().unwrap().extra[0].value = FieldValue::Float(f64::NAN);
            },
            "summary.extra.pipeline is NaN",
        );
        check(
            &|m| m.summary.as_mut().unwrap().extra[0].name = "total_users".into(),
            "summary.extra repeats the field total_users",
        );
    }

    #[test]
    fn only_plain_dates_are_dates() {
        assert_eq!(
            plain_date("2026-03-01"),
            NaiveDate::from_ymd_opt(2026, 3, 1)
        );
        for bad in [
            "2026-3-01",
            "2026/03/01",
            "+026-03-01",
            "2026-02-30",
            "2026-03-01 ",
            "２０２６-03-01",
        ] {
            assert_eq!(plain_date(bad), None, "{bad}");
        }
    }
}
