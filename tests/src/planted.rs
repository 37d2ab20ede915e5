//! Sources with planted truth for the insights tests and benchmarks: SQLite sources of
//! one `SELECT ... UNION ALL` row per day (no server needed), whose numbers come from a
//! fixed generator, with anomalies on known days ([`anomalies_source`]) and a lagged
//! relation between two sources ([`lagged_sources`]), and a year of ten series for the
//! insights benchmark ([`year_sources`]).

use chrono::{Datelike, Days, NaiveDate};

pub const DAYS: u64 = 90;
/// (days before today, field, factor).
pub const PLANTED: [(u64, &str, f64); 3] =
    [(70, "users", 1.8), (41, "events", 0.35), (12, "users", 0.4)];

/// Uniform on (-0.5, 0.5) from a fixed generator.
pub fn uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64 - 0.5
    }
}

/// A SQLite source `id` of one `SELECT '…' AS date, … AS …` per day in `rows`, joined by
/// `UNION ALL`, the request's window kept; its name is the id capitalised.
pub fn sql_source(id: &str, rows: Vec<String>) -> String {
    format!(
        "id: {id}\nname: {}\nkind: sql\nconnection:\n  driver: sqlite\n  url: \"sqlite::memory:\"\nqueries:\n  daily:\n    sql: >-\n      SELECT * FROM ({})\n      WHERE date >= {{{{ bind(start_date) }}}} AND date <= {{{{ bind(end_date) }}}}\n",
        id[..1].to_uppercase() + &id[1..],
        rows.join("\n      UNION ALL ")
    )
}

/// `weekday` on Monday to Friday, `weekend` on Saturday and Sunday.
pub fn weekday_base(date: NaiveDate, weekday: f64, weekend: f64) -> f64 {
    if date.weekday().num_days_from_monday() >= 5 {
        weekend
    } else {
        weekday
    }
}

/// The planted-anomalies source, `plant`, of [`DAYS`] days up to `today`.
pub fn anomalies_source(today: NaiveDate) -> String {
    let mut wobble = uniform(11);
    let mut noise = || 1.0 + wobble() * 0.08;
    let rows: Vec<String> = (0..DAYS)
        .map(|back| {
            let date = today - Days::new(back);
            let base = weekday_base(date, 900.0, 300.0) + (DAYS - back) as f64 * 1.5;
            let factor = |field: &str| {
                PLANTED
                    .iter()
                    .find(|(b, f, _)| *b == back && *f == field)
                    .map_or(1.0, |p| p.2)
            };
            let users = (base * noise() * factor("users")).round();
            let events = (base * 5.0 * noise() * factor("events")).round();
            format!("SELECT '{date}' AS date, {users} AS users, {events} AS events")
        })
        .collect();
    sql_source("plant", rows)
}

/// The days of the planted lag: `lead` has users driven by a day-to-day swing, `follow`
/// has contacts that are a tenth of that swing 3 days later (and events unrelated).
pub const LAG: i64 = 3;

pub fn lagged_sources(today: NaiveDate) -> (String, String) {
    let (mut swing, mut own, mut other) = (uniform(21), uniform(22 << 20), uniform(23 << 40));
    let driver: Vec<f64> = (0..DAYS + LAG as u64).map(|_| 200.0 * swing()).collect();
    let (mut lead, mut follow) = (Vec::new(), Vec::new());
    for back in 0..DAYS {
        let date = today - Days::new(back);
        let at = (DAYS - back) as usize + LAG as usize - 1;
        let users = weekday_base(date, 1200.0, 400.0) + driver[at];
        lead.push(format!("SELECT '{date}' AS date, {users:.0} AS users"));
        let contacts =
            weekday_base(date, 60.0, 20.0) + 0.1 * driver[at - LAG as usize] + 4.0 * own();
        let events = weekday_base(date, 5000.0, 1500.0) + 300.0 * other();
        follow.push(format!(
            "SELECT '{date}' AS date, {contacts:.1} AS contacts, {events:.0} AS events"
        ));
    }
    (sql_source("lead", lead), sql_source("follow", follow))
}

/// `sources` SQLite sources of `days` days up to `today`, each with users and events (a
/// business week, a slow rise, noise); the second's users follow the first's by
/// [`LAG`] days. As (file name, file) pairs.
pub fn year_sources(today: NaiveDate, sources: usize, days: u64) -> Vec<(String, String)> {
    let mut swing = uniform(31);
    let driver: Vec<f64> = (0..days + LAG as u64).map(|_| 300.0 * swing()).collect();
    (0..sources)
        .map(|n| {
            let mut noise = uniform(1000 + n as u64 * (1 << 32));
            let rows = (0..days)
                .map(|back| {
                    let date = today - Days::new(back);
                    let at = (days - back) as usize + LAG as usize - 1;
                    let shared = match n {
                        0 => driver[at],
                        1 => 0.5 * driver[at - LAG as usize],
                        _ => 0.0,
                    };
                    let rise = (days - back) as f64 * (1.0 + n as f64);
                    let users = weekday_base(date, 2000.0, 700.0) + rise + shared + 80.0 * noise();
                    let events = weekday_base(date, 9000.0, 3000.0) + 4.0 * rise + 400.0 * noise();
                    format!("SELECT '{date}' AS date, {users:.0} AS users, {events:.0} AS events")
                })
                .collect();
            let id = format!("series{n}");
            (format!("{id}.yaml"), sql_source(&id, rows))
        })
        .collect()
}
