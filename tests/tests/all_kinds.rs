//! End-to-end: one hub merging a SQL source (the SQLite demo), a BigQuery source (the
//! shipped GA4 file against the BigQuery stand-in) and a REST source (against the JSON
//! API stand-in), checked against numbers computed from each stand-in's own data.

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use metrics_hub::hub::HubSettings;
use metrics_hub::kinds::sql::demo;
use metrics_hub_tests::bigquery_standin::{BigqueryStandin, Data};
use metrics_hub_tests::expected::{expected, Narrow};
use metrics_hub_tests::ga4_export::Ga4Export;
use metrics_hub_tests::rest_standin::{self, Event, RestStandIn};
use metrics_hub_tests::{repo_root, sources_dir, TestHub};
use serde_json::{json, Value};

fn shipped(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("sources.d").join(name)).unwrap()
}

#[tokio::test]
async fn sql_bigquery_and_rest_sources_merge_into_one_answer() {
    let today = Utc::now().date_naive();
    let events = demo::generate(today);

    // BigQuery holds the demo's events as GA4 export rows.
    let export = Ga4Export::daily(&events);
    let bigquery = BigqueryStandin::start(
        "standin-project",
        "analytics_489035450",
        Data::Export(export.into()),
    )
    .await
    .unwrap();
    bigquery.set_today(today);
    let ga4 = shipped("ga4-bigquery.yaml")
        .replacen(
            "enabled: \"${GOOGLE_APPLICATION_CREDENTIALS_JSON:+true}\"",
            "enabled: true",
            1,
        )
        .replacen(
            "    type: inline_json\n    json: \"${GOOGLE_APPLICATION_CREDENTIALS_JSON:-}\"\n",
            &format!("    type: none\n  base_url: {}\n", bigquery.base_url),
            1,
        );
    assert!(
        ga4.contains("type: none"),
        "the shipped ga4-bigquery.yaml changed shape"
    );

    // The REST API holds its own deals; its summary endpoint aggregates them.
    let first = today - chrono::Days::new(rest_standin::DAYS - 1);
    let api = RestStandIn::start_from(first, 120).await.unwrap();
    let crm = format!(
        "id: crm\nname: CRM\nkind: rest\nconnection:\n  base_url: {}\n  auth: {{ type: bearer, token: \"${{CRM_TOKEN}}\" }}\nfilters:\n  client: {{ type: string }}\nqueries:\n  summary:\n    path: /bearer/stats-summary\n    query: {{ from: \"{{{{ start_date }}}}\", to: \"{{{{ end_date }}}}\", client: \"{{{{ filters.client }}}}\" }}\n    records: data\nmappings:\n  summary:\n    total_users: unique_contacts\n    total_events: deals\n    active_clients: companies\n",
        api.base()
    );

    let data = tempfile::tempdir().unwrap();
    let dir = sources_dir(&[
        ("demo.yaml", shipped("demo.yaml")),
        ("ga4-bigquery.yaml", ga4),
        ("crm.yaml", crm),
    ])
    .unwrap();
    let env = HashMap::from([
        (
            "METRICS_HUB_DATA_DIR".to_owned(),
            data.path().display().to_string(),
        ),
        (
            "GOOGLE_CLOUD_PROJECT".to_owned(),
            "standin-project".to_owned(),
        ),
        (
            "CRM_TOKEN".to_owned(),
            rest_standin::BEARER_TOKEN.to_owned(),
        ),
    ]);
    let hub = TestHub::start(dir.path(), &env, HubSettings::default())
        .await
        .unwrap();

    let (from, to) = (today - chrono::Days::new(20), today - chrono::Days::new(2));
    let response = reqwest::get(hub.url(&format!("/api/metrics?start_date={from}&end_date={to}")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["metadata"]["sources"],
        json!(["crm", "demo", "ga4-bigquery"]),
        "{body}"
    );

    // SQL and BigQuery hold the same events (counted twice); REST adds its deals.
    let mut want = expected(&events, from, to, &Narrow::default(), 2);
    let deals: Vec<&Event> = api
        .events()
        .iter()
        .filter(|e| e.day >= from && e.day <= to)
        .collect();
    let contacts: BTreeSet<&str> = deals.iter().map(|e| e.contact.as_str()).collect();
    let companies: BTreeSet<&str> = deals.iter().map(|e| e.client).collect();
    let add = |value: &mut Value, n: usize| *value = json!(value.as_u64().unwrap() + n as u64);
    add(&mut want["summary"]["total_users"], contacts.len());
    add(&mut want["summary"]["total_events"], deals.len());
    add(&mut want["summary"]["active_clients"], companies.len());
    assert_eq!(body["data"], want);
    for detail in body["metadata"]["sourceDetails"].as_array().unwrap() {
        assert_eq!(detail["status"], "ok", "{detail}");
    }
    hub.stop().await.unwrap();
}
