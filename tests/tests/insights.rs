//! Anomalies through a real hub on a socket, against planted truth: a source whose 90
//! days follow a business week (weekends a third of weekdays, a slow rise, noise from a
//! fixed generator) with a spike and an outage planted on known days. The planted days
//! must be found (recall 1) with few false alarms (precision at least 0.8, printed), the
//! weekends must not be, and a window too short to hold the weekly pattern is skipped.

use std::collections::HashMap;

use chrono::{Datelike, Days, NaiveDate, Utc};
use metrics_hub::hub::HubSettings;
use metrics_hub_tests::{get, sources_dir, TestHub};
use serde_json::Value;

const DAYS: u64 = 90;
/// (days before today, field, factor).
const PLANTED: [(u64, &str, f64); 3] =
    [(70, "users", 1.8), (41, "events", 0.35), (12, "users", 0.4)];

/// The source file: one `SELECT ... UNION ALL` row per day, the request's window kept.
fn source(today: NaiveDate) -> String {
    let mut state: u64 = 11;
    let mut noise = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        1.0 + ((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.08
    };
    let rows: Vec<String> = (0..DAYS)
        .map(|back| {
            let date = today - Days::new(back);
            let weekend = date.weekday().num_days_from_monday() >= 5;
            let base = if weekend { 300.0 } else { 900.0 } + (DAYS - back) as f64 * 1.5;
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
    format!(
        "id: plant\nname: Planted\nkind: sql\nconnection:\n  driver: sqlite\n  url: \"sqlite::memory:\"\nqueries:\n  daily:\n    sql: >-\n      SELECT * FROM ({})\n      WHERE date >= {{{{ bind(start_date) }}}} AND date <= {{{{ bind(end_date) }}}}\n",
        rows.join("\n      UNION ALL ")
    )
}

fn series<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["data"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no series {name} in {report}"))
}

fn dates(series: &Value) -> Vec<String> {
    let list = series["anomalies"].as_array().unwrap();
    list.iter()
        .map(|a| a["date"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn planted_anomalies_are_found_with_few_false_alarms() {
    let today = Utc::now().date_naive();
    let dir = sources_dir(&[("plant.yaml", source(today))]).unwrap();
    let hub = TestHub::start(dir.path(), &HashMap::new(), HubSettings::default())
        .await
        .unwrap();
    let (status, report) = get(&hub, "/api/insights/anomalies?days=90").await;
    assert_eq!(status, 200, "{report}");
    let (mut hits, mut found) = (0, 0);
    for field in ["users", "events"] {
        let checked = series(&report, &format!("plant.daily.{field}"));
        assert_eq!(checked["days"], 90, "{checked}");
        let flagged = dates(checked);
        found += flagged.len();
        for (back, planted_field, factor) in PLANTED {
            let day = (today - Days::new(back)).to_string();
            if planted_field != field {
                continue;
            }
            let at = flagged.iter().position(|d| *d == day);
            let anomaly = &checked["anomalies"][at.unwrap_or_else(|| {
                panic!("{field} planted x{factor} on {day} not found: {checked}")
            })];
            hits += 1;
            let score = anomaly["score"].as_f64().unwrap();
            assert_eq!(score > 0.0, factor > 1.0, "{anomaly}");
            let (value, lower, upper) = (
                anomaly["value"].as_f64().unwrap(),
                anomaly["lower"].as_f64().unwrap(),
                anomaly["upper"].as_f64().unwrap(),
            );
            assert!(value < lower || value > upper, "{anomaly}");
        }
    }
    let precision = hits as f64 / found.max(1) as f64;
    let recall = hits as f64 / PLANTED.len() as f64;
    eprintln!(
        "planted {}, flagged {found}, found {hits}: precision {precision:.2}, recall {recall:.2}",
        PLANTED.len()
    );
    assert_eq!(recall, 1.0);
    assert!(precision >= 0.8, "{report}");
    // One source: the merged series is its series, and so are its anomalies.
    assert_eq!(
        dates(series(&report, "merged.daily.users")),
        dates(series(&report, "plant.daily.users"))
    );

    let (status, short) = get(&hub, "/api/insights/anomalies?days=14").await;
    assert_eq!(status, 200, "{short}");
    let skipped = series(&short, "plant.daily.users");
    assert!(
        skipped["skipped"].as_str().unwrap().contains("at least 21"),
        "{skipped}"
    );
    let (status, wrong) = get(&hub, "/api/insights/anomalies?days=abc").await;
    assert_eq!(status, 400, "{wrong}");
}
