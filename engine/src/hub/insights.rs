//! Insights over a request's window: every daily series of every selected source, of the
//! merged answer and of the derived metrics, asked through the same caches as
//! `/api/metrics` (a dashboard that just drew the window costs no upstream query), and
//! checked by [`crate::insights`].

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::report::answered;
use super::request::{self, RequestError};
use super::Hub;
use crate::derived::evaluate;
use crate::insights::{anomalies, Anomaly, Point, MIN_DAYS, THRESHOLD};
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

const METHOD: &str = "robust z-score: expected = median of the same weekday in the 6 nearest weeks; scale = 1.4826 x the median absolute deviation of the residuals";

impl Hub {
    /// The anomalies of every daily series in the window of `query` (the parameters of
    /// `/api/metrics`).
    pub async fn anomalies_query(
        &self,
        query: &str,
        today: NaiveDate,
    ) -> Result<AnomalyReport, RequestError> {
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
        Ok(AnomalyReport {
            start_date: request.params.start_date,
            end_date: request.params.end_date,
            method: METHOD,
            threshold: THRESHOLD,
            series: series
                .into_iter()
                .map(|(name, points)| checked(name, &points))
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

/// Every numeric field of `rows` but the date, as `ID.daily.FIELD`.
fn daily_series(id: &str, rows: &[Record], into: &mut BTreeMap<String, Vec<Point>>) {
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
                let name = format!("{id}.daily.{field}");
                into.entry(name).or_default().push(Point { date, value });
            }
        }
    }
}

fn checked(name: String, points: &[Point]) -> SeriesAnomalies {
    let (anomalies, skipped) = match anomalies(points, THRESHOLD) {
        Ok(mut found) => {
            found.sort_by(|a, b| b.score.abs().total_cmp(&a.score.abs()));
            (found, None)
        }
        Err(short) => (
            Vec::new(),
            Some(format!(
                "{} days: at least {MIN_DAYS} are needed to tell the weekday pattern from an anomaly (ask for days={MIN_DAYS} or more)",
                short.days
            )),
        ),
    };
    SeriesAnomalies {
        name,
        days: points.len(),
        skipped,
        anomalies,
    }
}
