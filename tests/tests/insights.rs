//! Insights through a real hub on a socket, against planted truth.
//!
//! - Anomalies: a source whose 90 days follow a business week (weekends a third of
//!   weekdays, a slow rise, noise from a fixed generator) with a spike and an outage
//!   planted on known days. The planted days must be found (recall 1) with few false
//!   alarms (precision at least 0.8, printed), the weekends must not be, and a window too
//!   short to hold the weekly pattern is skipped.
//! - Forecasts: the same source asked for a window that ends 14 days ago; the forecast of
//!   those 14 days is compared with what the source holds for them.
//! - Correlations: two more sources, one whose contacts follow the other's users by 3
//!   days; that pair must be the strongest, at lag 3, and few unrelated pairs listed.

use std::collections::HashMap;

use chrono::{Days, Utc};
use metrics_hub::hub::HubSettings;
use metrics_hub_tests::planted::{anomalies_source as source, lagged_sources, DAYS, LAG, PLANTED};
use metrics_hub_tests::{get, sources_dir, TestHub};
use serde_json::Value;

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

#[tokio::test]
async fn the_forecast_of_the_last_two_weeks_holds_what_came() {
    let today = Utc::now().date_naive();
    let dir = sources_dir(&[("plant.yaml", source(today))]).unwrap();
    let hub = TestHub::start(dir.path(), &HashMap::new(), HubSettings::default())
        .await
        .unwrap();
    let end = today - Days::new(14);
    let start = today - Days::new(DAYS - 1);
    let (status, report) = get(
        &hub,
        &format!("/api/insights/forecast?start_date={start}&end_date={end}"),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    let (_, truth) = get(&hub, &format!("/api/metrics?days={DAYS}")).await;
    let actual: HashMap<(String, String), f64> = truth["data"]["dailyMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            ["users", "events"].map(|f| {
                let key = (row["date"].as_str().unwrap().to_owned(), f.to_owned());
                (key, row[f].as_f64().unwrap())
            })
        })
        .collect();
    for field in ["users", "events"] {
        let made = &series(&report, &format!("plant.daily.{field}"))["forecast"];
        let points = made["points"].as_array().unwrap();
        assert_eq!(points.len(), 14, "{made}");
        assert_eq!(points[0]["date"], (end + Days::new(1)).to_string());
        let mut inside = 0;
        let mut judged = 0;
        for point in points {
            let date = point["date"].as_str().unwrap();
            let planted = PLANTED
                .iter()
                .any(|(b, f, _)| *f == field && (today - Days::new(*b)).to_string() == date);
            if planted {
                continue;
            }
            let value = actual[&(date.to_owned(), field.to_owned())];
            let (low, high) = (
                point["lower95"].as_f64().unwrap(),
                point["upper95"].as_f64().unwrap(),
            );
            assert!(
                low <= point["value"].as_f64().unwrap() && low < high,
                "{point}"
            );
            judged += 1;
            inside += usize::from((low..=high).contains(&value));
        }
        eprintln!("{field}: {inside} of {judged} days inside the 95% interval");
        assert!(
            inside * 100 >= judged * 85,
            "{field}: {inside} of {judged}: {made}"
        );
    }
    let (status, short) = get(&hub, "/api/insights/forecast?days=14").await;
    assert_eq!(status, 200, "{short}");
    assert!(
        series(&short, "plant.daily.users")["skipped"].is_string(),
        "{short}"
    );
}

#[tokio::test]
async fn a_planted_lag_is_the_strongest_relation_found() {
    let today = Utc::now().date_naive();
    let (lead, follow) = lagged_sources(today);
    let dir = sources_dir(&[
        ("plant.yaml", source(today)),
        ("lead.yaml", lead),
        ("follow.yaml", follow),
    ])
    .unwrap();
    let hub = TestHub::start(dir.path(), &HashMap::new(), HubSettings::default())
        .await
        .unwrap();
    let (status, report) = get(&hub, "/api/insights/correlations?days=90").await;
    assert_eq!(status, 200, "{report}");
    let data = &report["data"];
    // Every pair of varying source series from different sources is compared: the
    // fixture declares plant {users, events}, lead {users}, follow {contacts, events};
    // the fields a source leaves out are constant zeros, which cannot correlate.
    let varying = [2, 1, 2];
    let pairs_across = varying[0] * varying[1] + varying[0] * varying[2] + varying[1] * varying[2];
    assert_eq!(data["tested"], pairs_across, "{report}");
    let pairs = data["pairs"].as_array().unwrap();
    let top = &pairs[0];
    assert_eq!(
        (top["a"].as_str(), top["b"].as_str()),
        (Some("follow.daily.contacts"), Some("lead.daily.users")),
        "{report}"
    );
    // b (lead) leads a (follow) by 3 days.
    assert_eq!(top["lag"], -LAG, "{top}");
    assert!(top["pearson"].as_f64().unwrap() > 0.7, "{top}");
    assert!(top["spearman"].as_f64().unwrap() > 0.6, "{top}");
    assert!(top["pValue"].as_f64().unwrap() < 1e-6, "{top}");
    assert_eq!(
        top["sentence"].as_str().unwrap(),
        format!(
            "Follow contacts follows Lead users by 3 days (r = {:.2})",
            top["pearson"].as_f64().unwrap()
        )
    );
    let precision = 1.0 / pairs.len() as f64;
    eprintln!(
        "planted 1 relation among {pairs_across} pairs, listed {}: precision {precision:.2}",
        pairs.len()
    );
    assert!(pairs.len() <= 2, "{report}");
}
