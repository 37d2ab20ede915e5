//! A plugin that does no I/O: it computes synthetic metrics from the query parameters
//! alone, so the host's tests can check merged numbers exactly and the overhead benchmark
//! measures the host, not a remote service.
//!
//! For each day of the window (epoch day `n`): `users = 100 + n % 17 + bonus`,
//! `events = 3 * users + n % 5`, where `bonus` is the length of the `client` filter when
//! the request gives one. The summary adds those up (`page_views = total_events / 2`,
//! `active_clients = 2`); two features and two clients scale with the number of days.
//!
//! Config: `omit` (comma-separated datasets to answer `none` for), `report_work`
//! (`true` adds the summary extra field `work_ns`: the nanoseconds spent computing, as
//! measured with the host clock), `report_deadline` (`true` adds `deadline_ms`: the
//! `deadline-ms` the host passed).

use std::cell::RefCell;

wit_bindgen::generate!({
    world: "data-source",
    path: "../../wit",
});

use metrics_hub::source::clock;
use metrics_hub::source::types::{
    ClientMetric, DailyMetric, ExtraField, FeatureMetric, FieldValue, FilterValue, Summary,
};

#[derive(Default)]
struct Settings {
    omit: Vec<String>,
    report_work: bool,
    report_deadline: bool,
}

thread_local! {
    static SETTINGS: RefCell<Option<Settings>> = const { RefCell::new(None) };
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (Howard Hinnant's days_from_civil).
fn epoch_day(date: &str) -> Option<i64> {
    let mut parts = date.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// `YYYY-MM-DD` of an epoch day (civil_from_days).
fn civil(n: i64) -> String {
    let z = n + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

struct Trivial;

impl Guest for Trivial {
    fn initialize(config: Vec<ConfigEntry>) -> Result<(), SourceError> {
        let mut settings = Settings::default();
        for entry in config {
            match entry.key.as_str() {
                "omit" => {
                    settings.omit = entry
                        .value
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                }
                "report_work" => settings.report_work = entry.value == "true",
                "report_deadline" => settings.report_deadline = entry.value == "true",
                other => {
                    return Err(SourceError::InvalidConfig(format!(
                        "unknown config key `{other}`"
                    )))
                }
            }
        }
        SETTINGS.with(|s| *s.borrow_mut() = Some(settings));
        Ok(())
    }

    fn fetch_metrics(params: QueryParams) -> Result<Metrics, SourceError> {
        let started = clock::monotonic_now();
        SETTINGS.with(|s| {
            let settings = s.borrow();
            let settings = settings
                .as_ref()
                .ok_or_else(|| SourceError::Internal("fetch before initialize".into()))?;
            let first = epoch_day(&params.start_date)
                .ok_or_else(|| SourceError::Internal("bad start date".into()))?;
            let last = epoch_day(&params.end_date)
                .ok_or_else(|| SourceError::Internal("bad end date".into()))?;
            let bonus = params
                .filters
                .iter()
                .find_map(|f| match (&f.name[..], &f.value) {
                    ("client", FilterValue::Text(client)) => Some(client.len() as i64),
                    _ => None,
                })
                .unwrap_or(0);
            let days = last - first + 1;
            let daily: Vec<DailyMetric> = (first..=last)
                .map(|n| {
                    let users = 100 + n % 17 + bonus;
                    DailyMetric {
                        date: civil(n),
                        users,
                        events: 3 * users + n % 5,
                        extra: vec![ExtraField {
                            name: "epoch_day".into(),
                            value: FieldValue::Integer(n),
                        }],
                    }
                })
                .collect();
            let total_users: i64 = daily.iter().map(|d| d.users).sum();
            let total_events: i64 = daily.iter().map(|d| d.events).sum();
            let mut summary = Summary {
                total_users: Some(total_users),
                total_events: Some(total_events),
                page_views: Some(total_events / 2),
                active_clients: Some(2),
                extra: vec![ExtraField {
                    name: "synthetic".into(),
                    value: FieldValue::Boolean(true),
                }],
            };
            let features = vec![
                FeatureMetric {
                    feature: "Plugin Reports".into(),
                    views: days * 10,
                    extra: vec![],
                },
                FeatureMetric {
                    feature: "Plugin Alerts".into(),
                    views: days * 4,
                    extra: vec![],
                },
            ];
            let clients = vec![
                ClientMetric {
                    client: "trivial-one".into(),
                    events: days * 7,
                    users: days * 3,
                    page_views: days * 2,
                    extra: vec![],
                },
                ClientMetric {
                    client: "trivial-two".into(),
                    events: days * 5,
                    users: days,
                    page_views: days,
                    extra: vec![ExtraField {
                        name: "ratio".into(),
                        value: FieldValue::Float(0.5),
                    }],
                },
            ];
            let keep = |name: &str| !settings.omit.iter().any(|o| o == name);
            if settings.report_deadline {
                summary.extra.push(ExtraField {
                    name: "deadline_ms".into(),
                    value: FieldValue::Integer(params.deadline_ms as i64),
                });
            }
            if settings.report_work {
                let work = clock::monotonic_now().saturating_sub(started);
                summary.extra.push(ExtraField {
                    name: "work_ns".into(),
                    value: FieldValue::Integer(work as i64),
                });
            }
            Ok(Metrics {
                summary: keep("summary").then_some(summary),
                daily: keep("daily").then_some(daily),
                features: keep("features").then_some(features),
                clients: keep("clients").then_some(clients),
            })
        })
    }

    fn health_check() -> Result<(), SourceError> {
        Ok(())
    }

    fn cleanup() {}
}

export!(Trivial);
