//! Shared pieces of the benchmark binaries: the quick/full mode switch, latency statistics,
//! PostgreSQL loaded with the demo events, and the pass/fail verdict.
//!
//! Each bench binary includes this with `mod common;` and uses only part of it, hence the
//! `dead_code` allowance below: what one binary leaves unused another one needs.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use metrics_hub::template::BindValue;
use metrics_hub_tests::{repo_root, Postgres};
use sqlx::PgPool;

/// Quick mode: a smoke run of a few seconds that proves the bench works, not a measurement.
///
/// On when `BENCH_QUICK` is set to anything but `0` or empty, and also when the binary is
/// not given `--bench` (that is, `cargo test --benches` runs it as a test, the way
/// criterion's test mode does); `cargo bench` always passes `--bench`.
pub fn quick() -> bool {
    let forced = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    forced || !std::env::args().any(|arg| arg == "--bench")
}

/// Prints the mode line every bench starts with.
pub fn announce(name: &str, quick: bool) {
    let mode = if quick {
        "QUICK (smoke run: figures are indicative, targets are not enforced)"
    } else {
        "FULL"
    };
    println!("== {name} — mode {mode}");
}

/// The value at percentile `p` (0..=100) of `samples`, by nearest rank.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with three decimals, for printing.
pub fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1e3)
}

/// A source file shipped in the repository's `sources.d/`.
pub fn shipped_source(name: &str) -> anyhow::Result<String> {
    let path: PathBuf = repo_root().join("sources.d").join(name);
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

/// A PostgreSQL server whose `events` table holds the demo events ending `today`, vacuumed
/// and analyzed so that plans and hint bits do not change during the measurement.
pub async fn postgres_with_demo_events(today: NaiveDate) -> anyhow::Result<(Postgres, PgPool)> {
    let pg = Postgres::start()?;
    let pool = PgPool::connect(pg.url()).await?;
    let events = metrics_hub::kinds::sql::demo::generate(today);
    metrics_hub::kinds::sql::demo::load_postgres(&pool, &events).await?;
    sqlx::query("VACUUM ANALYZE events").execute(&pool).await?;
    println!(
        "PostgreSQL at {} holds {} demo events ending {today}",
        pg.url(),
        events.len()
    );
    Ok((pg, pool))
}

/// The env map a hub loads `postgres.yaml` with.
pub fn postgres_env(url: &str) -> HashMap<String, String> {
    HashMap::from([("DATABASE_URL".to_owned(), url.to_owned())])
}

/// Binds rendered values in order with their SQL types, as a hand-written client would.
pub fn bind_values<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    binds: &[BindValue],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for value in binds {
        query = match value {
            BindValue::Text(text) => query.bind(text.clone()),
            BindValue::Integer(number) => query.bind(*number),
            BindValue::Float(number) => query.bind(*number),
            BindValue::Bool(flag) => query.bind(*flag),
            BindValue::Date(date) => query.bind(*date),
        };
    }
    query
}

/// Collects target checks and turns them into the process exit code.
#[derive(Default)]
pub struct Verdict {
    failures: Vec<String>,
}

impl Verdict {
    /// A performance target: enforced in full mode only, since quick runs take too few
    /// samples to mean anything.
    pub fn target(&mut self, quick: bool, passed: bool, what: String) {
        let tag = match (passed, quick) {
            (true, _) => "PASS",
            (false, true) => "MISS (not enforced in quick mode)",
            (false, false) => "FAIL",
        };
        println!("[{tag}] {what}");
        if !passed && !quick {
            self.failures.push(what);
        }
    }

    /// A correctness check: enforced in every mode.
    pub fn check(&mut self, passed: bool, what: String) {
        println!("[{}] {what}", if passed { "PASS" } else { "FAIL" });
        if !passed {
            self.failures.push(what);
        }
    }

    /// Exits non-zero when anything enforced failed.
    pub fn finish(self, name: &str) {
        if self.failures.is_empty() {
            println!("== {name}: all enforced checks passed");
        } else {
            println!(
                "== {name}: {} enforced check(s) failed:",
                self.failures.len()
            );
            for failure in &self.failures {
                println!("   - {failure}");
            }
            std::process::exit(1);
        }
    }
}
