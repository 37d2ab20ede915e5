//! Anomalies in a daily series: a robust z-score against the same weekday nearby.
//!
//! The method, for a series of at least [`MIN_DAYS`] days:
//! 1. expected: the median of the same weekday in the [`NEIGHBOURS`] nearest weeks around
//!    the day (3 before and 3 after in the middle of a series, later or earlier ones at its
//!    ends), so the weekly pattern (weekends a third of weekdays) and a slow trend are
//!    what is expected, and one odd day among the neighbours cannot move it;
//! 2. residual: the value minus expected; its scale is the median absolute deviation of
//!    all residuals times 1.4826 (the standard deviation for normal noise), floored at 1%
//!    of the series' median level so a flat series does not flag every wobble;
//! 3. a day is an anomaly when its residual is more than [`THRESHOLD`] scales from the
//!    residuals' median; the band is expected plus or minus the threshold times the scale.
//!
//! Medians everywhere keep the planted spike or outage itself from hiding in the
//! estimates, and the weekend of a business product is the pattern, not an anomaly.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use serde::Serialize;
use utoipa::ToSchema;

/// How many scales from the typical residual a day must be to be reported.
pub const THRESHOLD: f64 = 3.5;
/// The shortest series checked: three of each weekday.
pub const MIN_DAYS: usize = 21;
/// Same weekdays the expected value of a day is the median of.
pub const NEIGHBOURS: usize = 6;
/// MAD to standard deviation, for normal noise.
const MAD_SCALE: f64 = 1.4826;

/// One day of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub date: NaiveDate,
    pub value: f64,
}

/// One unusual day.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Anomaly {
    pub date: NaiveDate,
    pub value: f64,
    /// The median of the same weekday in the nearest weeks.
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
    /// Scales from the typical residual; negative below the band.
    pub score: f64,
}

/// The series is too short to tell a pattern from an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooShort {
    pub days: usize,
}

/// The anomalies of `points` (in any order; one point per date), oldest first.
pub fn anomalies(points: &[Point], threshold: f64) -> Result<Vec<Anomaly>, TooShort> {
    let by_date: BTreeMap<NaiveDate, f64> = points.iter().map(|p| (p.date, p.value)).collect();
    if by_date.len() < MIN_DAYS {
        return Err(TooShort {
            days: by_date.len(),
        });
    }
    let expected: Vec<(NaiveDate, f64, f64)> = by_date
        .iter()
        .map(|(&date, &value)| (date, value, same_weekday_median(&by_date, date)))
        .collect();
    let residuals: Vec<f64> = expected.iter().map(|(_, v, e)| v - e).collect();
    let centre = median(&residuals);
    let deviations: Vec<f64> = residuals.iter().map(|r| (r - centre).abs()).collect();
    let level = median(&by_date.values().map(|v| v.abs()).collect::<Vec<_>>());
    let scale = (median(&deviations) * MAD_SCALE)
        .max(level * 0.01)
        .max(f64::EPSILON);
    let band = threshold * scale;
    Ok(expected
        .into_iter()
        .filter_map(|(date, value, expected)| {
            let expected = expected + centre;
            let score = (value - expected) / scale;
            (score.abs() > threshold).then_some(Anomaly {
                date,
                value,
                expected,
                lower: expected - band,
                upper: expected + band,
                score,
            })
        })
        .collect())
}

/// The median of the same weekday in the [`NEIGHBOURS`] nearest weeks that have a value.
fn same_weekday_median(by_date: &BTreeMap<NaiveDate, f64>, date: NaiveDate) -> f64 {
    let mut near = Vec::with_capacity(NEIGHBOURS);
    // Alternate after and before, nearest first, as far as the series reaches.
    for weeks in 1..=by_date.len() as u64 / 7 + 1 {
        for shifted in [
            date.checked_add_days(Days::new(7 * weeks)),
            date.checked_sub_days(Days::new(7 * weeks)),
        ] {
            if let Some(value) = shifted.and_then(|d| by_date.get(&d)) {
                near.push(*value);
            }
        }
        if near.len() >= NEIGHBOURS {
            break;
        }
    }
    median(&near)
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use chrono::Datelike;

    use super::*;

    /// 120 days of a business product: weekdays about 1,000, weekends a third of it, a
    /// slow rise, ±4% noise from a fixed generator; `planted` days multiplied.
    fn series(planted: &[(usize, f64)]) -> Vec<Point> {
        let start = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let mut state: u64 = 7;
        (0..120)
            .map(|day| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.08;
                let date = start + chrono::Days::new(day as u64);
                let weekend = date.weekday().num_days_from_monday() >= 5;
                let base = if weekend { 340.0 } else { 1000.0 } + day as f64 * 2.0;
                let factor = planted.iter().find(|(d, _)| *d == day).map_or(1.0, |p| p.1);
                Point {
                    date,
                    value: (base * (1.0 + noise) * factor).round(),
                }
            })
            .collect()
    }

    #[test]
    fn planted_spikes_and_dips_are_found_and_weekends_are_not() {
        let planted = [(17, 1.6), (40, 0.45), (41, 0.5), (76, 1.35), (103, 0.6)];
        let points = series(&planted);
        let found = anomalies(&points, THRESHOLD).unwrap();
        let found_days: Vec<usize> = found
            .iter()
            .map(|a| points.iter().position(|p| p.date == a.date).unwrap())
            .collect();
        let hits = planted
            .iter()
            .filter(|(d, _)| found_days.contains(d))
            .count();
        let recall = hits as f64 / planted.len() as f64;
        let precision = hits as f64 / found_days.len().max(1) as f64;
        eprintln!("planted {planted:?}, found {found_days:?}: precision {precision:.2}, recall {recall:.2}");
        assert_eq!(recall, 1.0, "{found:?}");
        assert!(precision >= 0.8, "{found:?}");
        let spike = &found[found_days.iter().position(|d| *d == 17).unwrap()];
        assert!(
            spike.score > THRESHOLD && spike.value > spike.upper,
            "{spike:?}"
        );
        let dip = &found[found_days.iter().position(|d| *d == 40).unwrap()];
        assert!(dip.score < -THRESHOLD && dip.value < dip.lower, "{dip:?}");
    }

    #[test]
    fn a_clean_series_has_no_anomalies_and_a_short_one_is_refused() {
        assert_eq!(anomalies(&series(&[]), THRESHOLD).unwrap(), []);
        let short = &series(&[])[..20];
        assert_eq!(anomalies(short, THRESHOLD), Err(TooShort { days: 20 }));
    }

    #[test]
    fn a_flat_series_flags_only_a_real_change() {
        let start = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let mut points: Vec<Point> = (0..30)
            .map(|d| Point {
                date: start + chrono::Days::new(d),
                value: 100.0,
            })
            .collect();
        points[12].value = 101.0;
        points[20].value = 160.0;
        let found = anomalies(&points, THRESHOLD).unwrap();
        assert_eq!(
            found.iter().map(|a| a.date).collect::<Vec<_>>(),
            [points[20].date]
        );
    }
}
