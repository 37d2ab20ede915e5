//! Correlations between two daily series, at lags from −[`MAX_LAG`] to +[`MAX_LAG`] days.
//!
//! The method:
//! 1. each series is first freed of its trend and weekday pattern (the residuals of a
//!    classical decomposition: a centred 7-day mean for the trend, weekday means of what
//!    is left for the pattern), so two series that merely share a business week or a
//!    growth trend are not reported as related; what is correlated is how each departs
//!    from its usual;
//! 2. at lag k, day d of `a` is paired with day d + k of `b` (k > 0: `b` follows `a`);
//!    lags with fewer than [`MIN_PAIRS`] pairs are not tried;
//! 3. Pearson's r and Spearman's ρ (Pearson's r of the ranks, ties averaged) at each lag;
//!    the best lag is the one with the largest |r|;
//! 4. the p-value is that of r under no correlation (Student's t, two-sided) with n
//!    shrunk for the series' own autocorrelation (Bartlett's effective sample size), and
//!    multiplied by the number of lags tried (Bonferroni), since the best of 29 lags is
//!    likelier to look strong by chance than one lag chosen beforehand. Without both, a
//!    fifth of independent pairs of 90 days came out "significant" in the tests.

use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use utoipa::ToSchema;

use super::anomaly::{Point, MIN_DAYS};
use super::contiguous;

/// The furthest lag tried, in days, each way.
pub const MAX_LAG: i64 = 14;
/// The fewest paired days a lag is judged on.
pub const MIN_PAIRS: usize = 14;

/// A series freed of its weekday pattern and trend: one slot per day from `first`.
#[derive(Debug, Clone)]
pub struct Adjusted {
    first: NaiveDate,
    values: Vec<Option<f64>>,
    /// Its autocorrelation at lags 1 to [`MAX_LAG`].
    autocorrelation: Vec<f64>,
}

/// The best lag between two series.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lagged {
    /// Days the second series follows the first by; negative when it leads.
    pub lag: i64,
    pub pearson: f64,
    pub spearman: f64,
    /// Days paired at that lag.
    pub n: usize,
    /// Of Pearson's r at that lag under no correlation, times the lags tried (at most 1).
    pub p_value: f64,
}

/// The residuals of a classical decomposition of `points`: each day minus its centred
/// 7-day mean (the trend) minus its weekday's mean departure from the trend (the weekly
/// pattern). The first and last 3 days, and days within 3 of a gap, have no centred mean
/// and are left out. `None` when the series is too short to know its weekday pattern, or never
/// changes (nothing can move with it).
pub fn adjusted(points: &[Point]) -> Option<Adjusted> {
    let (first, days) = contiguous(points);
    let observed = days.iter().flatten().count();
    let varies = days
        .iter()
        .flatten()
        .any(|v| Some(v) != days.iter().flatten().next());
    if observed < MIN_DAYS || !varies {
        return None;
    }
    let detrended: Vec<Option<f64>> = (0..days.len())
        .map(|i| {
            let week = days.get(i.checked_sub(3)?..i + 4)?;
            let sum = week.iter().copied().sum::<Option<f64>>()?;
            Some(days[i]? - sum / 7.0)
        })
        .collect();
    let monday_first = first.weekday().num_days_from_monday() as usize;
    let weekday = |i: usize| (monday_first + i) % 7;
    let mut by_weekday = [(0.0, 0usize); 7];
    for (i, value) in detrended.iter().enumerate() {
        if let Some(value) = value {
            let slot = &mut by_weekday[weekday(i)];
            *slot = (slot.0 + value, slot.1 + 1);
        }
    }
    let means = by_weekday.map(|(sum, n)| sum / n.max(1) as f64);
    let centre = means.iter().sum::<f64>() / 7.0;
    let values = detrended
        .iter()
        .enumerate()
        .map(|(i, v)| v.map(|v| v - (means[weekday(i)] - centre)))
        .collect();
    let mut adjusted = Adjusted {
        first,
        values,
        autocorrelation: Vec::new(),
    };
    adjusted.autocorrelation = (1..=MAX_LAG)
        .map(|lag| {
            let sums = sums(&adjusted, &adjusted, lag);
            let enough = sums.n >= MIN_PAIRS as f64;
            enough.then(|| sums.pearson()).flatten().unwrap_or(0.0)
        })
        .collect();
    Some(adjusted)
}

/// The lag with the strongest Pearson correlation between `a` and `b`, if any lag has
/// enough paired days with some variation.
pub fn best_lag(a: &Adjusted, b: &Adjusted) -> Option<Lagged> {
    let tried: Vec<(i64, Sums)> = (-MAX_LAG..=MAX_LAG)
        .map(|lag| (lag, sums(a, b, lag)))
        .filter(|(_, sums)| sums.n >= MIN_PAIRS as f64)
        .collect();
    let lags = tried.len();
    let (lag, r) = tried
        .iter()
        .filter_map(|(lag, sums)| sums.pearson().map(|r| (*lag, r)))
        .max_by(|x, y| x.1.abs().total_cmp(&y.1.abs()))?;
    let pairs = paired(a, b, lag);
    let n = pairs.len();
    Some(Lagged {
        lag,
        pearson: r,
        spearman: spearman(&pairs).unwrap_or(0.0),
        n,
        p_value: (p_value(r, effective(n, a, b)) * lags as f64).min(1.0),
    })
}

/// The sums Pearson's r needs, of the pairs at one lag, gathered in one pass.
#[derive(Debug, Default)]
struct Sums {
    n: f64,
    x: f64,
    y: f64,
    xx: f64,
    yy: f64,
    xy: f64,
}

impl Sums {
    /// `None` when either side does not vary. (The residuals are centred near zero, so
    /// the one-pass formula loses nothing to cancellation.)
    fn pearson(&self) -> Option<f64> {
        let sxx = self.xx - self.x * self.x / self.n;
        let syy = self.yy - self.y * self.y / self.n;
        let sxy = self.xy - self.x * self.y / self.n;
        let denominator = (sxx * syy).sqrt();
        (denominator > f64::EPSILON * (self.xx * self.yy).sqrt().max(f64::MIN_POSITIVE))
            .then(|| (sxy / denominator).clamp(-1.0, 1.0))
    }
}

fn sums(a: &Adjusted, b: &Adjusted, lag: i64) -> Sums {
    let mut sums = Sums::default();
    for (x, y) in overlap(a, b, lag) {
        if let (Some(x), Some(y)) = (x, y) {
            sums.n += 1.0;
            sums.x += x;
            sums.y += y;
            sums.xx += x * x;
            sums.yy += y * y;
            sums.xy += x * y;
        }
    }
    sums
}

/// Day d of `a` beside day d + `lag` of `b`, over the days both series span.
fn overlap<'s>(
    a: &'s Adjusted,
    b: &'s Adjusted,
    lag: i64,
) -> impl Iterator<Item = (Option<f64>, Option<f64>)> + 's {
    // Index i of `a` meets index i + shift of `b`.
    let shift = (a.first - b.first).num_days() + lag;
    let start = (-shift).max(0) as usize;
    let b_start = (start as i64 + shift) as usize;
    let a_values = a.values.get(start..).unwrap_or_default();
    let b_values = b.values.get(b_start..).unwrap_or_default();
    a_values.iter().copied().zip(b_values.iter().copied())
}

/// The independent pairs `n` autocorrelated pairs are worth (Bartlett): each series'
/// own day-to-day dependence makes chance correlations between two of them larger than
/// between independent draws, by 1 + 2·Σ ρ_a(k)·ρ_b(k) in variance.
fn effective(n: usize, a: &Adjusted, b: &Adjusted) -> f64 {
    let shared: f64 = a
        .autocorrelation
        .iter()
        .zip(&b.autocorrelation)
        .map(|(x, y)| x * y)
        .sum();
    n as f64 / (1.0 + 2.0 * shared).max(1.0)
}

/// Day d of `a` with day d + `lag` of `b`, where both have a value.
fn paired(a: &Adjusted, b: &Adjusted, lag: i64) -> Vec<(f64, f64)> {
    overlap(a, b, lag)
        .filter_map(|(x, y)| Some((x?, y?)))
        .collect()
}

/// Pearson's r; `None` when either side does not vary.
fn pearson(pairs: &[(f64, f64)]) -> Option<f64> {
    let n = pairs.len() as f64;
    let (sx, sy) = pairs
        .iter()
        .fold((0.0, 0.0), |(x, y), p| (x + p.0, y + p.1));
    let (mx, my) = (sx / n, sy / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in pairs {
        let (dx, dy) = (x - mx, y - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    let denominator = (sxx * syy).sqrt();
    (denominator > f64::EPSILON * n).then(|| (sxy / denominator).clamp(-1.0, 1.0))
}

/// Spearman's ρ: Pearson's r of the ranks.
fn spearman(pairs: &[(f64, f64)]) -> Option<f64> {
    let xs = ranks(&pairs.iter().map(|p| p.0).collect::<Vec<_>>());
    let ys = ranks(&pairs.iter().map(|p| p.1).collect::<Vec<_>>());
    pearson(&xs.into_iter().zip(ys).collect::<Vec<_>>())
}

/// 1-based ranks, tied values sharing the mean of their ranks.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let shared = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = shared;
        }
        start = end;
    }
    ranks
}

/// The two-sided p-value of `r` from `n` (independent) pairs under no correlation.
pub fn p_value(r: f64, n: f64) -> f64 {
    if n < 3.0 {
        return 1.0;
    }
    let df = n - 2.0;
    let squared = r * r;
    if squared >= 1.0 {
        return 0.0;
    }
    let t2 = squared * df / (1.0 - squared);
    incomplete_beta(df / 2.0, 0.5, df / (df + t2))
}

/// The regularized incomplete beta function I_x(a, b), by its continued fraction
/// (Numerical Recipes, `betai`).
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    d = 1.0 / if d.abs() < TINY { TINY } else { d };
    let mut h = d;
    for m in 1..=300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        for aa in [
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ] {
            d = 1.0 + aa * d;
            d = 1.0 / if d.abs() < TINY { TINY } else { d };
            c = 1.0 + aa / c;
            c = if c.abs() < TINY { TINY } else { c };
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-14 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let t = x + 7.5;
    let sum = G[1..]
        .iter()
        .enumerate()
        .fold(G[0], |s, (i, g)| s + g / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

#[cfg(test)]
mod tests {
    use chrono::Days;

    use super::*;

    /// Uniform on (-0.5, 0.5) from splitmix64, so two seeds give independent streams.
    fn noise(seed: u64) -> impl FnMut() -> f64 {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        }
    }

    fn days(values: impl Iterator<Item = f64>) -> Vec<Point> {
        let start = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        values
            .enumerate()
            .map(|(d, value)| Point {
                date: start + Days::new(d as u64),
                value,
            })
            .collect()
    }

    #[test]
    fn p_values_match_student_t() {
        // t = 2 with 10 degrees of freedom: r = 2 / sqrt(14), two-sided p = 0.07339.
        let r = 2.0 / 14f64.sqrt();
        assert!(
            (p_value(r, 12.0) - 0.073_388).abs() < 1e-5,
            "{}",
            p_value(r, 12.0)
        );
        // t = 3.5, 30 degrees of freedom: p = 0.001478.
        let r = 3.5 / (3.5f64 * 3.5 + 30.0).sqrt();
        assert!(
            (p_value(r, 32.0) - 0.001_478).abs() < 2e-6,
            "{}",
            p_value(r, 32.0)
        );
        assert_eq!(p_value(0.0, 40.0), 1.0);
        assert_eq!(p_value(1.0, 40.0), 0.0);
    }

    #[test]
    fn a_planted_lag_is_the_best_one() {
        let mut wobble = noise(5);
        let driver: Vec<f64> = (0..120).map(|_| 100.0 * wobble()).collect();
        let weekly = |d: usize| if d % 7 >= 5 { 300.0 } else { 900.0 };
        let a = days((0..120).map(|d| weekly(d) + d as f64 + driver[d]));
        // b follows a by 3 days, at a tenth of its size, with its own noise.
        let b = days((0..120).map(|d| {
            let followed = if d >= 3 { driver[d - 3] } else { 0.0 };
            weekly(d) / 10.0 + 0.1 * followed + 3.0 * wobble()
        }));
        let found = best_lag(&adjusted(&a).unwrap(), &adjusted(&b).unwrap()).unwrap();
        assert_eq!(found.lag, 3, "{found:?}");
        assert!(found.pearson > 0.8 && found.spearman > 0.7, "{found:?}");
        assert!(found.p_value < 1e-6, "{found:?}");
        let back = best_lag(&adjusted(&b).unwrap(), &adjusted(&a).unwrap()).unwrap();
        assert_eq!(back.lag, -3, "{back:?}");
    }

    #[test]
    fn a_shared_week_and_trend_alone_are_not_a_relation() {
        const TRIALS: usize = 200;
        let (mut one, mut two) = (noise(8), noise(1 << 40));
        let weekly = |d: usize| if d % 7 >= 5 { 300.0 } else { 900.0 };
        let mut alarms = 0;
        for _ in 0..TRIALS {
            let a = days((0..90).map(|d| weekly(d) + 2.0 * d as f64 + 60.0 * one()));
            let b = days((0..90).map(|d| weekly(d) * 0.5 + d as f64 + 30.0 * two()));
            let found = best_lag(&adjusted(&a).unwrap(), &adjusted(&b).unwrap()).unwrap();
            alarms += usize::from(found.p_value < 0.05);
        }
        // At p < 0.05 a twentieth of independent pairs is expected; 8% is the bound.
        eprintln!("{alarms} of {TRIALS} independent pairs had p < 0.05");
        assert!(
            alarms * 100 <= TRIALS * 8,
            "{alarms} of {TRIALS} called related"
        );
    }

    #[test]
    fn ranks_share_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
        let pairs: Vec<(f64, f64)> = (1..=10).map(|x| (x as f64, (x as f64).powi(3))).collect();
        assert!((spearman(&pairs).unwrap() - 1.0).abs() < 1e-12);
        assert!(pearson(&pairs).unwrap() < 0.95);
    }
}
