//! Insights over a request's window: every daily series of every selected source, of the
//! merged answer and of the derived metrics, asked through the same caches as
//! `/api/metrics` (a dashboard that just drew the window costs no upstream query), and
//! judged by [`crate::insights`]: anomalies, forecasts and correlations.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::report::answered;
use super::request::{self, RequestError};
use super::Hub;
use crate::derived::evaluate;
use crate::insights::{
    adjusted, anomalies, best_lag, forecast, Anomaly, Forecast, Point, HORIZON, MAX_LAG, MIN_DAYS,
    THRESHOLD,
};
use crate::merge::merge;
use crate::model::Record;

/// `GET /api/insights/anomalies`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnomalyReport {
    start_date: NaiveDate,
    end_date: NaiveDate,
    /// How days are judged, in words.
    method: &'static str,
    /// Scales from the typical residual a day must be to be listed.
    threshold: f64,
    /// Every series checked, each with its unusual days (most unusual first).
    series: Vec<SeriesAnomalies>,
    /// Selected sources that did not answer, so their series are not checked.
    unavailable: Vec<String>,
}

/// One daily series and its unusual days.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeriesAnomalies {
    /// `SOURCE.daily.FIELD`, `merged.daily.FIELD` or `derived.NAME`.
    name: String,
    /// Days with a value.
    days: usize,
    /// Why the series was not checked (too short), when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
    anomalies: Vec<Anomaly>,
}

/// `GET /api/insights/forecast`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForecastReport {
    start_date: NaiveDate,
    end_date: NaiveDate,
    method: &'static str,
    /// Days forecast after the window's last day.
    horizon: usize,
    series: Vec<SeriesForecast>,
    unavailable: Vec<String>,
}

/// One daily series' forecast.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeriesForecast {
    name: String,
    days: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
    /// The fitted model and the forecast days, when the series was long enough.
    #[serde(skip_serializing_if = "Option::is_none")]
    forecast: Option<Forecast>,
}

/// `GET /api/insights/correlations`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CorrelationReport {
    start_date: NaiveDate,
    end_date: NaiveDate,
    method: &'static str,
    /// Lags tried each way, in days.
    max_lag: i64,
    /// Pairs of series from different sources that were compared (constant series, such
    /// as a field a source does not give, are left out).
    tested: usize,
    /// The pairs with p < 0.05, strongest first, at most [`STRONGEST`].
    pairs: Vec<Correlated>,
    unavailable: Vec<String>,
}

/// Two series that move together, at their best lag.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Correlated {
    a: String,
    b: String,
    /// Days `b` follows `a` by; negative when `b` leads.
    lag: i64,
    pearson: f64,
    spearman: f64,
    /// Days paired at that lag.
    n: usize,
    /// Adjusted for the series' autocorrelation and the lags tried.
    p_value: f64,
    /// The relation in words, e.g. `Salesforce new contacts follows Demo users by 3 days (r = 0.82)`.
    sentence: String,
}

/// Pairs listed by `/api/insights/correlations`.
pub const STRONGEST: usize = 20;
const SIGNIFICANT: f64 = 0.05;

const ANOMALY_METHOD: &str = "robust z-score: expected = median of the same weekday in the 6 nearest weeks; scale = 1.4826 x the median absolute deviation of the residuals";
const FORECAST_METHOD: &str = "exponential smoothing with a damped trend and a weekly season (ETS(A,Ad,A)), parameters by least squares over a grid; intervals from the model's h-step variance";
const CORRELATION_METHOD: &str = "Pearson and Spearman on each series' residuals after its centred 7-day trend and weekday pattern, lags -14..+14; p-value from Student's t with Bartlett's effective sample size, times the lags tried; series that never change are not compared";

/// The daily series of a window, by name, and who could not give theirs.
struct Gathered {
    start_date: NaiveDate,
    end_date: NaiveDate,
    series: BTreeMap<String, Vec<Point>>,
    /// Source id -> display name, of every selected source.
    names: BTreeMap<String, String>,
    unavailable: Vec<String>,
}

impl Hub {
    /// The anomalies of every daily series in the window of `query` (the parameters of
    /// `/api/metrics`).
    pub async fn anomalies_query(
        &self,
        query: &str,
        today: NaiveDate,
    ) -> Result<AnomalyReport, RequestError> {
        let window = self.gather(query, today).await?;
        let series = window.series;
        let series = computed(move || {
            let checked = series
                .into_iter()
                .map(|(name, points)| checked(name, &points));
            checked.collect()
        });
        Ok(AnomalyReport {
            start_date: window.start_date,
            end_date: window.end_date,
            method: ANOMALY_METHOD,
            threshold: THRESHOLD,
            series: series.await,
            unavailable: window.unavailable,
        })
    }

    /// The next [`HORIZON`] days of every daily series in the window of `query`.
    pub async fn forecast_query(
        &self,
        query: &str,
        today: NaiveDate,
    ) -> Result<ForecastReport, RequestError> {
        let window = self.gather(query, today).await?;
        let series = window.series;
        let series = computed(move || series.into_iter().map(forecast_of).collect());
        Ok(ForecastReport {
            start_date: window.start_date,
            end_date: window.end_date,
            method: FORECAST_METHOD,
            horizon: HORIZON,
            series: series.await,
            unavailable: window.unavailable,
        })
    }

    /// The strongest relations between daily series of different sources in the window
    /// of `query`.
    pub async fn correlations_query(
        &self,
        query: &str,
        today: NaiveDate,
    ) -> Result<CorrelationReport, RequestError> {
        let window = self.gather(query, today).await?;
        let (window, (tested, pairs)) = computed(move || {
            let found = strongest(&window);
            (window, found)
        })
        .await;
        Ok(CorrelationReport {
            start_date: window.start_date,
            end_date: window.end_date,
            method: CORRELATION_METHOD,
            max_lag: MAX_LAG,
            tested,
            pairs,
            unavailable: window.unavailable,
        })
    }

    /// Every daily series of the window of `query`: each answering source's, the merged
    /// answer's and each derived metric's.
    async fn gather(&self, query: &str, today: NaiveDate) -> Result<Gathered, RequestError> {
        let generation = self.current();
        let request = request::parse(query, today, &generation.declared())?;
        let outcomes = self.outcomes(&generation, &request).await;
        let answered = answered(&outcomes);
        let data: Vec<_> = answered.iter().map(|(_, data)| *data).collect();
        let merged = merge(&data, &generation.policies, self.settings.top_clients);
        let mut series: BTreeMap<String, Vec<Point>> = BTreeMap::new();
        for (id, data) in &answered {
            daily_series(id, data.daily.as_deref().unwrap_or_default(), &mut series);
        }
        daily_series("merged", &merged.daily_metrics, &mut series);
        for metric in evaluate(&generation.derived, &answered, &merged) {
            let points = metric.daily.iter().filter_map(|d| {
                d.value.map(|value| Point {
                    date: d.date,
                    value,
                })
            });
            let points: Vec<Point> = points.collect();
            if !points.is_empty() {
                series.insert(format!("derived.{}", metric.name), points);
            }
        }
        let answered_ids: Vec<&str> = answered.iter().map(|(id, _)| *id).collect();
        Ok(Gathered {
            start_date: request.params.start_date,
            end_date: request.params.end_date,
            series,
            names: outcomes
                .iter()
                .map(|(spec, _)| (spec.id.clone(), spec.name.clone()))
                .collect(),
            unavailable: request
                .sources
                .iter()
                .filter(|id| !answered_ids.contains(&id.as_str()))
                .cloned()
                .collect(),
        })
    }
}

/// Runs `work` on the blocking pool: a year of many series takes milliseconds of CPU,
/// which would stall the other requests of an async worker.
async fn computed<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|failed| std::panic::resume_unwind(failed.into_panic()))
}

fn forecast_of((name, points): (String, Vec<Point>)) -> SeriesForecast {
    let (forecast, skipped) = match forecast(&points) {
        Ok(made) => (Some(made), None),
        Err(short) => (None, Some(too_short(short.days))),
    };
    SeriesForecast {
        name,
        days: points.len(),
        skipped,
        forecast,
    }
}

/// Every pair of source series (not merged or derived, which repeat their inputs) from
/// different sources, the number compared and the significant ones, strongest first.
fn strongest(window: &Gathered) -> (usize, Vec<Correlated>) {
    let sources: Vec<(&str, &str, _)> = window
        .series
        .iter()
        .filter_map(|(name, points)| {
            let (source, _) = name.split_once(".daily.")?;
            let known = window.names.contains_key(source);
            known.then(|| adjusted(points).map(|a| (name.as_str(), source, a)))?
        })
        .collect();
    let mut tested = 0;
    let mut pairs = Vec::new();
    for (i, (a, a_source, a_series)) in sources.iter().enumerate() {
        for (b, b_source, b_series) in &sources[i + 1..] {
            if a_source == b_source {
                continue;
            }
            tested += 1;
            let Some(best) = best_lag(a_series, b_series).filter(|l| l.p_value < SIGNIFICANT)
            else {
                continue;
            };
            pairs.push(Correlated {
                sentence: sentence(window, a, b, best.lag, best.pearson),
                a: (*a).to_owned(),
                b: (*b).to_owned(),
                lag: best.lag,
                pearson: best.pearson,
                spearman: best.spearman,
                n: best.n,
                p_value: best.p_value,
            });
        }
    }
    pairs.sort_by(|x, y| y.pearson.abs().total_cmp(&x.pearson.abs()));
    pairs.truncate(STRONGEST);
    (tested, pairs)
}

/// `Salesforce new contacts follows Demo users by 3 days (r = 0.82)`.
fn sentence(window: &Gathered, a: &str, b: &str, lag: i64, r: f64) -> String {
    let (a, b) = (spoken(window, a), spoken(window, b));
    let days = |n: i64| format!("{n} day{}", if n == 1 { "" } else { "s" });
    let relation = match (lag, r >= 0.0) {
        (0, true) => format!("{a} and {b} rise and fall together"),
        (0, false) => format!("{b} falls when {a} rises"),
        (k, true) if k > 0 => format!("{b} follows {a} by {}", days(k)),
        (k, true) => format!("{a} follows {b} by {}", days(-k)),
        (k, false) if k > 0 => format!("{b} moves against {a} {} later", days(k)),
        (k, false) => format!("{a} moves against {b} {} later", days(-k)),
    };
    format!("{relation} (r = {r:.2})")
}

/// `demo.daily.page_views` as `Demo page views`.
fn spoken(window: &Gathered, series: &str) -> String {
    let (source, field) = series.split_once(".daily.").unwrap_or((series, ""));
    let name = window.names.get(source).map_or(source, String::as_str);
    format!("{name} {}", field.replace('_', " "))
}

fn too_short(days: usize) -> String {
    format!("{days} days: at least {MIN_DAYS} are needed to tell the weekday pattern from the rest (ask for days={MIN_DAYS} or more)")
}

/// Every numeric field of `rows` but the date, as `ID.daily.FIELD`.
fn daily_series(id: &str, rows: &[Record], into: &mut BTreeMap<String, Vec<Point>>) {
    let mut fields: BTreeMap<&str, Vec<Point>> = BTreeMap::new();
    for row in rows {
        let Some(date) = row
            .get("date")
            .and_then(Value::as_str)
            .and_then(|d| d.parse().ok())
        else {
            continue;
        };
        for (field, value) in row {
            if let Some(value) = value.as_f64().filter(|_| field != "date") {
                fields.entry(field).or_default().push(Point { date, value });
            }
        }
    }
    for (field, points) in fields {
        into.insert(format!("{id}.daily.{field}"), points);
    }
}

fn checked(name: String, points: &[Point]) -> SeriesAnomalies {
    let (anomalies, skipped) = match anomalies(points, THRESHOLD) {
        Ok(mut found) => {
            found.sort_by(|a, b| b.score.abs().total_cmp(&a.score.abs()));
            (found, None)
        }
        Err(short) => (Vec::new(), Some(too_short(short.days))),
    };
    SeriesAnomalies {
        name,
        days: points.len(),
        skipped,
        anomalies,
    }
}
