//! Forecasts of a daily series: the next [`HORIZON`] days with 80% and 95% intervals,
//! from exponential smoothing with a damped trend and a weekly season (ETS(A,Ad,A) in
//! Hyndman's taxonomy, the model `augurs` and R's `forecast::ets` fit to such series).
//!
//! The method, for a series of at least [`super::MIN_DAYS`] days:
//! 1. states: a level, a trend damped by φ each day, and one seasonal offset per weekday,
//!    started from the first two weeks (their means give level and trend, the first
//!    week's departures from the level the offsets);
//! 2. each day the one-step forecast is level + φ·trend + that weekday's offset; its error
//!    corrects the level by α, the trend by β and the offset by γ (the error-correction
//!    form); a missing day is a day without correction;
//! 3. α, β, γ and φ are chosen by the smallest sum of squared one-step errors: the best
//!    of a coarse grid, refined by a pattern search (a step each way per parameter while
//!    it helps, halving the steps);
//! 4. the h-step forecast continues the states without errors; its variance is
//!    σ²·(1 + Σ_{j<h} c_j²) with c_j = α + β(φ + … + φ^j) + γ·[j a whole number of weeks]
//!    (Hyndman et al., *Forecasting with Exponential Smoothing*, class 1), σ² the mean
//!    squared one-step error, and the intervals are the forecast ± 1.2816σ_h (80%) and
//!    ± 1.96σ_h (95%);
//! 5. a series that was never negative (counts) is not forecast below zero.

use chrono::{Days, NaiveDate};
use serde::Serialize;
use utoipa::ToSchema;

use super::anomaly::{Point, TooShort, MIN_DAYS};
use super::contiguous;

/// Days forecast after the last day of a series.
pub const HORIZON: usize = 14;
const SEASON: usize = 7;
const Z80: f64 = 1.281_551_6;
const Z95: f64 = 1.959_964;

/// One forecast day.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForecastPoint {
    pub date: NaiveDate,
    pub value: f64,
    pub lower80: f64,
    pub upper80: f64,
    pub lower95: f64,
    pub upper95: f64,
}

/// The fitted model and its forecast.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Forecast {
    /// Smoothing of the level, the trend and the weekday offsets, and the trend's damping.
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
    pub phi: f64,
    /// The standard deviation of the one-step errors over the series.
    pub sigma: f64,
    pub points: Vec<ForecastPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Params {
    alpha: f64,
    beta: f64,
    gamma: f64,
    phi: f64,
}

/// The states after the last day, and the sum of squared one-step errors.
struct Fit {
    level: f64,
    trend: f64,
    season: [f64; SEASON],
    /// Index into `season` of the day after the last.
    next: usize,
    sse: f64,
    errors: usize,
}

/// The forecast of the [`HORIZON`] days after the last day of `points` (any order, one
/// point per date).
pub fn forecast(points: &[Point]) -> Result<Forecast, TooShort> {
    let (first, days) = contiguous(points);
    let observed = days.iter().flatten().count();
    if observed < MIN_DAYS {
        return Err(TooShort { days: observed });
    }
    let first_value = points[0].value;
    let params = if points.iter().all(|p| p.value == first_value) {
        // A constant series (a field the source leaves at 0) continues as it is.
        Params {
            alpha: 0.1,
            beta: 0.0,
            gamma: 0.0,
            phi: 0.98,
        }
    } else {
        best(&days)
    };
    let fit = run(&days, params);
    let sigma = (fit.sse / fit.errors.max(1) as f64).sqrt();
    let never_negative = points.iter().all(|p| p.value >= 0.0);
    let last = first + Days::new(days.len() as u64 - 1);
    Ok(Forecast {
        alpha: params.alpha,
        beta: params.beta,
        gamma: params.gamma,
        phi: params.phi,
        sigma,
        points: (1..=HORIZON)
            .map(|h| ahead(&fit, params, sigma, h, last, never_negative))
            .collect(),
    })
}

/// The `h`-step forecast and its intervals.
fn ahead(
    fit: &Fit,
    p: Params,
    sigma: f64,
    h: usize,
    last: NaiveDate,
    never_negative: bool,
) -> ForecastPoint {
    let damped = |j: usize| (1..=j).map(|i| p.phi.powi(i as i32)).sum::<f64>();
    let value = fit.level + damped(h) * fit.trend + fit.season[(fit.next + h - 1) % SEASON];
    let spread: f64 = (1..h)
        .map(|j| {
            let seasonal = if j % SEASON == 0 { p.gamma } else { 0.0 };
            (p.alpha + p.beta * damped(j) + seasonal).powi(2)
        })
        .sum();
    let sd = sigma * (1.0 + spread).sqrt();
    let floor = |v: f64| if never_negative { v.max(0.0) } else { v };
    ForecastPoint {
        date: last + Days::new(h as u64),
        value: floor(value),
        lower80: floor(value - Z80 * sd),
        upper80: floor(value + Z80 * sd),
        lower95: floor(value - Z95 * sd),
        upper95: floor(value + Z95 * sd),
    }
}

/// The parameters with the smallest squared one-step error: the best of a coarse grid,
/// then a pattern search around it (each parameter moved by a step each way while that
/// lowers the error, the steps halved each round).
fn best(days: &[Option<f64>]) -> Params {
    let coarse = grid(&[0.1, 0.3, 0.6], &[0.0, 0.02], &[0.05, 0.2], &[0.9, 0.98]);
    let sse = |p: Params| run(days, p).sse;
    let (mut found, mut lowest) = coarse
        .map(|p| (p, sse(p)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("the grid is never empty");
    let mut steps = [0.1, 0.01, 0.05, 0.04];
    for _ in 0..4 {
        for (which, step) in steps.iter().enumerate() {
            for sign in [1.0, -1.0] {
                let tried = moved(found, which, sign * step);
                if let Some(tried) = tried.filter(admissible) {
                    let error = sse(tried);
                    if error < lowest {
                        (found, lowest) = (tried, error);
                    }
                }
            }
        }
        steps = steps.map(|s| s / 2.0);
    }
    found
}

/// `p` with parameter `which` (α, β, γ, φ) moved by `by`, if it stays in its range.
fn moved(p: Params, which: usize, by: f64) -> Option<Params> {
    let mut q = p;
    let (value, max) = match which {
        0 => (&mut q.alpha, 0.99),
        1 => (&mut q.beta, 0.5),
        2 => (&mut q.gamma, 0.99),
        _ => (&mut q.phi, 0.99),
    };
    *value += by;
    let min = if which == 0 || which == 3 { 0.01 } else { 0.0 };
    (min..=max).contains(value).then_some(q)
}

/// β ≤ α and γ ≤ 1 − α keep the model forecastable.
fn admissible(p: &Params) -> bool {
    p.beta <= p.alpha && p.gamma <= 1.0 - p.alpha
}

/// Every admissible combination.
fn grid<'a>(
    alphas: &'a [f64],
    betas: &'a [f64],
    gammas: &'a [f64],
    phis: &'a [f64],
) -> impl Iterator<Item = Params> + 'a {
    alphas
        .iter()
        .flat_map(move |&alpha| {
            betas.iter().flat_map(move |&beta| {
                gammas.iter().flat_map(move |&gamma| {
                    phis.iter().map(move |&phi| Params {
                        alpha,
                        beta,
                        gamma,
                        phi,
                    })
                })
            })
        })
        .filter(admissible)
}

/// Runs the smoothing over `days` from states started on its first two weeks.
fn run(days: &[Option<f64>], p: Params) -> Fit {
    let mean = |range: std::ops::Range<usize>| {
        let seen: Vec<f64> = days[range].iter().flatten().copied().collect();
        seen.iter().sum::<f64>() / seen.len().max(1) as f64
    };
    let (week1, week2) = (mean(0..SEASON), mean(SEASON..2 * SEASON));
    let mut trend = (week2 - week1) / SEASON as f64;
    // The level at the middle of the first week, moved to its end.
    let mut level = week1 + trend * (SEASON as f64 - 1.0) / 2.0;
    let mut season = [0.0; SEASON];
    for (i, offset) in season.iter_mut().enumerate() {
        let centred = week1 + trend * (i as f64 - (SEASON as f64 - 1.0) / 2.0);
        *offset = days[i].map_or(0.0, |v| v - centred);
    }
    let (mut sse, mut errors) = (0.0, 0);
    for (t, day) in days.iter().enumerate().skip(SEASON) {
        let s = t % SEASON;
        let predicted = level + p.phi * trend + season[s];
        let error = day.map_or(0.0, |y| y - predicted);
        if day.is_some() {
            sse += error * error;
            errors += 1;
        }
        level += p.phi * trend + p.alpha * error;
        trend = p.phi * trend + p.beta * error;
        season[s] += p.gamma * error;
    }
    Fit {
        level,
        trend,
        season,
        next: days.len() % SEASON,
        sse,
        errors,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Datelike;

    use super::*;

    /// A business week (weekends a third), a rise of 2 a day, normal noise of `noise`
    /// times the level from a fixed generator.
    fn series(days: usize, noise: f64, seed: u64) -> Vec<Point> {
        let start = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let mut state = seed;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..days)
            .map(|day| {
                let date = start + Days::new(day as u64);
                let weekend = date.weekday().num_days_from_monday() >= 5;
                let base = if weekend { 340.0 } else { 1000.0 } + day as f64 * 2.0;
                // Box-Muller.
                let normal =
                    (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos();
                Point {
                    date,
                    value: base * (1.0 + noise * normal),
                }
            })
            .collect()
    }

    #[test]
    fn a_clean_pattern_is_continued_exactly() {
        let points = series(120, 0.0, 1);
        let made = forecast(&points).unwrap();
        let truth = series(120 + HORIZON, 0.0, 1);
        for (got, want) in made.points.iter().zip(&truth[120..]) {
            assert_eq!(got.date, want.date);
            assert!(
                (got.value - want.value).abs() < want.value * 0.02,
                "{got:?} vs {want:?} ({made:?})"
            );
        }
    }

    #[test]
    fn the_intervals_hold_the_future_as_often_as_they_say() {
        let (mut in80, mut in95, mut total) = (0, 0, 0);
        for seed in 1..=40 {
            let truth = series(180 + HORIZON, 0.05, seed);
            let made = forecast(&truth[..180]).unwrap();
            for (got, want) in made.points.iter().zip(&truth[180..]) {
                assert!(got.lower95 <= got.lower80 && got.lower80 <= got.value);
                assert!(got.value <= got.upper80 && got.upper80 <= got.upper95);
                in80 += usize::from((got.lower80..=got.upper80).contains(&want.value));
                in95 += usize::from((got.lower95..=got.upper95).contains(&want.value));
                total += 1;
            }
        }
        let (c80, c95) = (in80 as f64 / total as f64, in95 as f64 / total as f64);
        eprintln!(
            "coverage over {total} forecast days: 80% interval {c80:.3}, 95% interval {c95:.3}"
        );
        assert!((0.72..=0.90).contains(&c80), "{c80}");
        assert!((0.89..=0.99).contains(&c95), "{c95}");
    }

    #[test]
    fn gaps_are_bridged_counts_stay_positive_and_short_series_are_refused() {
        let mut points = series(60, 0.05, 3);
        points.remove(30);
        points.remove(10);
        let made = forecast(&points).unwrap();
        assert_eq!(made.points.len(), HORIZON);
        assert_eq!(
            made.points[0].date,
            points.last().unwrap().date + Days::new(1)
        );
        let falling: Vec<Point> = (0..30)
            .map(|d| Point {
                date: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap() + Days::new(d),
                value: 300.0 - 10.0 * d as f64,
            })
            .collect();
        assert!(forecast(&falling)
            .unwrap()
            .points
            .iter()
            .all(|p| p.lower95 >= 0.0));
        assert_eq!(forecast(&points[..20]), Err(TooShort { days: 20 }));
    }
}
