//! Insights computed from the daily series the sources answer: what is unusual in them,
//! what comes next, and which move together. Pure functions of series of (date, value);
//! the hub feeds them and the API serves them.
//!
//! - [`anomaly`]: days outside a band that accounts for the weekday pattern and the trend,
//!   found with a robust z-score against the same weekday in the nearest weeks.
//! - [`forecast`]: the next 14 days with 80% and 95% intervals, from exponential
//!   smoothing with a damped trend and a weekly season.
//! - [`correlation`]: Pearson and Spearman between two series at lags of up to 14 days
//!   each way, on the series freed of their weekday pattern, with a p-value.

pub mod anomaly;
pub mod correlation;
pub mod forecast;

pub use anomaly::{anomalies, Anomaly, Point, TooShort, MIN_DAYS, THRESHOLD};
pub use correlation::{adjusted, best_lag, Lagged, MAX_LAG};
pub use forecast::{forecast, Forecast, ForecastPoint, HORIZON};

use chrono::NaiveDate;

/// Every day from the first to the last date of `points`, `None` where one is missing.
pub(crate) fn contiguous(points: &[Point]) -> (NaiveDate, Vec<Option<f64>>) {
    let Some(first) = points.iter().map(|p| p.date).min() else {
        return (NaiveDate::MIN, Vec::new());
    };
    let last = points.iter().map(|p| p.date).max().unwrap_or(first);
    let mut days = vec![None; (last - first).num_days() as usize + 1];
    for p in points {
        days[(p.date - first).num_days() as usize] = Some(p.value);
    }
    (first, days)
}
