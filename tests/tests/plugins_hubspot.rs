//! End-to-end: the `hubspot` WebAssembly plugin inside the hub, beside the SQL demo
//! source, talking to the local HubSpot stand-in (`metrics_hub_tests::hubspot_standin`)
//! over real HTTP through the host's sandboxed `http.send`. Expected numbers are computed
//! from the stand-in's records directly, never from the plugin. The source is the shipped
//! `sources.d/hubspot.yaml`, pointed at the stand-in. (The three-source merge, HubSpot
//! included, is tested in plugins_salesforce.rs.)
//!
//! The plugins must be built first: `plugins/build.sh` (tests/run.sh does).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use metrics_hub::hub::HubSettings;
use metrics_hub::kinds::sql::demo;
use metrics_hub_tests::expected::{expected, Narrow};
use metrics_hub_tests::hubspot_standin::{self, HubSpotStandIn, Portal, RESULT_CAP};
use metrics_hub_tests::{details, get, plugin_component, repo_root, sources_dir, TestHub};
use serde_json::{json, Value};

/// The shipped HubSpot source aimed at `standin` with `page_size` results a page: the
/// built component, the stand-in's address allowed (it is loopback, so private addresses
/// too), and no cache, so every request reaches the plugin.
fn hubspot_source(standin: &HubSpotStandIn, page_size: u32) -> String {
    let replace = |text: String, from: &str, to: &str| {
        assert!(
            text.contains(from),
            "the shipped source no longer contains {from:?}"
        );
        text.replace(from, to)
    };
    let text = std::fs::read_to_string(repo_root().join("sources.d/hubspot.yaml")).unwrap();
    let text = replace(
        text,
        "../plugins/target/wasm32-wasip2/release/hubspot.wasm",
        &plugin_component("hubspot").display().to_string(),
    );
    let text = replace(
        text,
        r#"allowed_hosts: ["https://api.hubapi.com"]"#,
        &format!(
            "allowed_hosts: [\"{}\"]\n    allow_private_addresses: true",
            standin.url()
        ),
    );
    let text = replace(
        text,
        "page_size: 200",
        &format!("page_size: {page_size}\n    base_url: {}", standin.url()),
    );
    replace(text, "ttl: 10m", "ttl: 0s")
}

struct Setup {
    hub: TestHub,
    hubspot: HubSpotStandIn,
    today: NaiveDate,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn setup(portal: Portal, page_size: u32, token: &str) -> Setup {
    let today = Utc::now().date_naive();
    let hubspot = HubSpotStandIn::start(portal).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let demo_yaml = std::fs::read_to_string(repo_root().join("sources.d/demo.yaml")).unwrap();
    let sources = sources_dir(&[
        ("demo.yaml", demo_yaml),
        ("hubspot.yaml", hubspot_source(&hubspot, page_size)),
    ])
    .unwrap();
    let env = HashMap::from([
        (
            "METRICS_HUB_DATA_DIR".to_owned(),
            data.path().display().to_string(),
        ),
        ("HUBSPOT_ACCESS_TOKEN".to_owned(), token.to_owned()),
    ]);
    let hub = TestHub::start(sources.path(), &env, HubSettings::default())
        .await
        .unwrap();
    Setup {
        hub,
        hubspot,
        today,
        _dirs: (data, sources),
    }
}

#[tokio::test]
async fn searches_page_with_after_until_there_is_no_paging() {
    let today = Utc::now().date_naive();
    let s = setup(Portal::generate(today), 50, hubspot_standin::ACCESS_TOKEN).await;
    let start = s.today - Days::new(60);
    let (status, body) = get(&s.hub, "/api/metrics?days=60&source=hubspot").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(details(&body, "hubspot")["status"], "ok", "{body}");
    assert_eq!(body["data"], s.hubspot.portal().expected(start, s.today));
    // A CRM has no page views: the plugin says so, and the field is not counted as its.
    assert_eq!(
        details(&body, "hubspot")["summaryFields"],
        json!([
            "total_users",
            "total_events",
            "active_clients",
            "pipeline_amount",
            "won_deals",
            "won_amount"
        ]),
        "{body}"
    );

    // Contacts in the window need several pages of 50: a first page, then one per cursor.
    let in_window = s
        .hubspot
        .portal()
        .contacts
        .iter()
        .filter(|c| (start..=s.today).contains(&c.created.date_naive()))
        .count();
    let contact_pages: Vec<String> = s
        .hubspot
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("contacts "))
        .collect();
    assert!(in_window > 100, "too little data to page: {in_window}");
    assert_eq!(
        contact_pages.len(),
        in_window.div_ceil(50),
        "{contact_pages:?}"
    );
    assert_eq!(contact_pages[0], "contacts -");
    assert_eq!(contact_pages[1], "contacts 50");
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn merged_with_the_demo_the_numbers_add_up() {
    let today = Utc::now().date_naive();
    let s = setup(Portal::generate(today), 200, hubspot_standin::ACCESS_TOKEN).await;
    let start = s.today - Days::new(30);
    let (status, body) = get(&s.hub, "/api/metrics?days=30").await;
    assert_eq!(status, 200, "{body}");
    let demo = expected(
        &demo::generate(s.today),
        start,
        s.today,
        &Narrow::default(),
        1,
    );
    let crm = s.hubspot.portal().expected(start, s.today);
    // The summaries add up field by field; the CRM's extra fields come along.
    for field in [
        "total_users",
        "total_events",
        "page_views",
        "active_clients",
    ] {
        let sum =
            demo["summary"][field].as_i64().unwrap() + crm["summary"][field].as_i64().unwrap();
        assert_eq!(body["data"]["summary"][field], sum, "{field}");
    }
    for field in ["pipeline_amount", "won_deals", "won_amount"] {
        assert_eq!(
            body["data"]["summary"][field], crm["summary"][field],
            "{field}"
        );
    }
    // A day both sources know adds up.
    let day = crm["dailyMetrics"][0]["date"].clone();
    let on = |data: &Value| {
        data["dailyMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["date"] == day)
            .cloned()
    };
    let (merged_day, crm_day) = (on(&body["data"]).unwrap(), on(&crm).unwrap());
    let demo_users = on(&demo).map_or(0, |d| d["users"].as_i64().unwrap());
    assert_eq!(
        merged_day["users"],
        crm_day["users"].as_i64().unwrap() + demo_users
    );
    assert_eq!(body["data"]["featureMetrics"], demo["featureMetrics"]);
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn more_than_ten_thousand_results_are_read_in_several_searches() {
    let today = Utc::now().date_naive();
    // Every contact falls inside a 120-day window.
    let portal = Portal::generate_with(today, RESULT_CAP + 300);
    let s = setup(portal, 200, hubspot_standin::ACCESS_TOKEN).await;
    let start = s.today - Days::new(120);
    let (status, body) = get(&s.hub, "/api/metrics?days=120&source=hubspot").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(details(&body, "hubspot")["status"], "ok", "{body}");
    assert_eq!(body["data"]["summary"]["total_users"], RESULT_CAP + 300);
    assert_eq!(body["data"], s.hubspot.portal().expected(start, s.today));

    // The first search stopped at the cap without asking past it; a second one went on.
    let contacts: Vec<String> = s
        .hubspot
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("contacts "))
        .collect();
    assert_eq!(
        contacts.iter().filter(|r| *r == "contacts -").count(),
        2,
        "{contacts:?}"
    );
    assert!(!contacts.contains(&"contacts 10000".to_owned()));
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_429_the_host_cannot_wait_for_is_reported_and_the_hub_holds_off() {
    let today = Utc::now().date_naive();
    let s = setup(Portal::generate(today), 200, hubspot_standin::ACCESS_TOKEN).await;
    // A Retry-After longer than the call's deadline: the host hands the 429 back at once
    // and the plugin reports it.
    s.hubspot.rate_limit(100, Some(60));
    let (status, body) = get(&s.hub, "/api/metrics?days=30").await;
    assert_eq!(status, 200, "{body}");
    let d = details(&body, "hubspot");
    assert_eq!(d["status"], "error", "{d}");
    assert_eq!(d["error"]["code"], "rate_limited", "{d}");
    let message = d["error"]["message"].as_str().unwrap();
    assert!(message.contains("retry after 60 s"), "{d}");
    assert_eq!(details(&body, "demo")["status"], "ok");
    assert_eq!(s.hubspot.searches(), 1);

    // For the next minute the hub does not call the plugin at all, and says so.
    let (_, body) = get(&s.hub, "/api/metrics?days=29").await;
    let d = details(&body, "hubspot");
    assert_eq!(d["error"]["code"], "rate_limited", "{d}");
    assert!(
        d["error"]["message"]
            .as_str()
            .unwrap()
            .contains("asks it again in"),
        "{d}"
    );
    assert_eq!(
        s.hubspot.searches(),
        1,
        "the hub asked a rate-limited source"
    );
    let (_, sources) = get(&s.hub, "/api/sources").await;
    let info = sources["data"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|source| source["id"] == "hubspot")
        .unwrap();
    let until: chrono::DateTime<Utc> = info["rateLimitedUntil"].as_str().unwrap().parse().unwrap();
    let left = until - Utc::now();
    assert!((50..=60).contains(&left.num_seconds()), "{info}");
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_429_without_retry_after_is_retried_by_the_host_with_backoff() {
    let today = Utc::now().date_naive();
    let s = setup(Portal::generate(today), 200, hubspot_standin::ACCESS_TOKEN).await;
    let (_, body) = get(&s.hub, "/api/metrics?days=30&source=hubspot").await;
    assert_eq!(details(&body, "hubspot")["status"], "ok", "{body}");
    let searches = s.hubspot.searches();

    s.hubspot.rate_limit(2, None);
    let started = Instant::now();
    let (_, body) = get(&s.hub, "/api/metrics?days=29&source=hubspot").await;
    assert_eq!(details(&body, "hubspot")["status"], "ok", "{body}");
    let start = today - Days::new(29);
    assert_eq!(body["data"], s.hubspot.portal().expected(start, today));
    // Two refused tries, then the same searches as before: the host waited between them
    // (the shipped source's backoff starts at 1 s, with jitter down to half of it).
    assert_eq!(s.hubspot.searches(), 2 * searches + 2);
    assert!(
        started.elapsed() >= Duration::from_millis(1_400),
        "{:?}",
        started.elapsed()
    );
    s.hub.stop().await.unwrap();
}

/// Another app on the same HubSpot account, sharing its search limit: a search every
/// 700 ms until aborted, counted in `sent`.
async fn neighbour(url: String, sent: Arc<AtomicUsize>) {
    let client = reqwest::Client::new();
    loop {
        let search = client
            .post(format!("{url}/crm/v3/objects/companies/search"))
            .bearer_auth(hubspot_standin::ACCESS_TOKEN)
            .json(&json!({"limit": 1}));
        sent.fetch_add(1, Ordering::SeqCst);
        let _ = search.send().await;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}

/// A portal big enough for a 90-day window to need more searches than a second allows,
/// behind HubSpot's limit of five a second (with `Retry-After: 1` on its 429s or not).
async fn limited(retry_after: bool) -> Setup {
    let today = Utc::now().date_naive();
    let s = setup(
        Portal::generate_with(today, 3_000),
        100,
        hubspot_standin::ACCESS_TOKEN,
    )
    .await;
    s.hubspot.enforce_secondly_limit(5, retry_after);
    s
}

/// A 90-day window against HubSpot's five searches a second per account, while another
/// app uses one and a half of them (so the hub's four a second meet 429s, which the host retries),
/// then two windows at once sharing the source's pace.
async fn through_the_secondly_limit(retry_after: bool) {
    let s = limited(retry_after).await;
    let today = s.today;
    let sent = Arc::new(AtomicUsize::new(0));
    let other = tokio::spawn(neighbour(s.hubspot.url().to_owned(), sent.clone()));
    let started = Instant::now();
    let (status, body) = get(&s.hub, "/api/metrics?days=90&source=hubspot").await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(details(&body, "hubspot")["status"], "ok", "{body}");
    assert_eq!(
        body["data"],
        s.hubspot.portal().expected(today - Days::new(90), today)
    );
    let (all, refused) = (s.hubspot.searches(), s.hubspot.over_limit());
    let hubs = all - sent.load(Ordering::SeqCst);
    println!(
        "90-day window (Retry-After: {retry_after}): {hubs} searches by the hub, {refused} refused (the neighbour's included), {:.2} s",
        took.as_secs_f64()
    );
    assert!(hubs > 20, "too little data to meet the limit: {hubs}");
    assert!(
        refused > 0,
        "the limit was never reached, so retries were not tested"
    );
    other.abort();

    let (a, b) = tokio::join!(
        get(&s.hub, "/api/metrics?days=60&source=hubspot"),
        get(&s.hub, "/api/metrics?days=45&source=hubspot"),
    );
    for ((status, body), days) in [(a, 60), (b, 45)] {
        assert_eq!(status, 200, "{body}");
        assert_eq!(details(&body, "hubspot")["status"], "ok", "{days}: {body}");
        let start = today - Days::new(days);
        assert_eq!(
            body["data"],
            s.hubspot.portal().expected(start, today),
            "{days}"
        );
    }
    s.hub.stop().await.unwrap();
}

/// Without competition: the wall time of a 90-day window against the minimum the limit
/// allows, and whether the host's pacing alone kept every search under it.
#[tokio::test]
async fn the_hosts_pacing_keeps_a_90_day_window_under_the_limit() {
    let s = limited(false).await;
    let started = Instant::now();
    let (_, body) = get(&s.hub, "/api/metrics?days=90&source=hubspot").await;
    let took = started.elapsed().as_secs_f64();
    assert_eq!(details(&body, "hubspot")["status"], "ok", "{body}");
    let searches = s.hubspot.searches();
    // The first search goes at once; the rest can go no faster than five a second.
    let minimum = (searches - 1) as f64 / 5.0;
    println!("90-day window alone: {searches} searches in {took:.2} s; the limit allows {minimum:.2} s ({:.2} of the best possible)", minimum / took);
    assert_eq!(
        s.hubspot.over_limit(),
        0,
        "the host's pacing let a search over the limit"
    );
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_90_day_window_gets_through_the_secondly_limit_with_retry_after() {
    through_the_secondly_limit(true).await;
}

#[tokio::test]
async fn a_90_day_window_gets_through_the_secondly_limit_without_retry_after() {
    through_the_secondly_limit(false).await;
}

#[tokio::test]
async fn a_refused_token_is_an_auth_error_without_the_token() {
    let today = Utc::now().date_naive();
    let wrong = "pat-na1-wrong-token-77";
    let s = setup(Portal::generate(today), 200, wrong).await;
    let (_, body) = get(&s.hub, "/api/metrics?days=30").await;
    let d = details(&body, "hubspot");
    assert_eq!(d["status"], "error", "{d}");
    assert_eq!(d["error"]["code"], "auth_failed", "{d}");
    assert!(!body.to_string().contains(wrong));
    s.hub.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// The stand-in itself, on the wire, with a plain HTTP client.

#[tokio::test]
async fn the_standin_speaks_crm_v3_search() {
    let today = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let standin = HubSpotStandIn::start(Portal::generate_with(today, RESULT_CAP + 5))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let search = |object: &str, token: &str, body: Value| {
        let request = http
            .post(format!("{}/crm/v3/objects/{object}/search", standin.url()))
            .bearer_auth(token)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("Retry-After")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, retry_after, response.json::<Value>().await.unwrap())
        }
    };
    let token = hubspot_standin::ACCESS_TOKEN;

    let (status, _, refused) = search("contacts", "pat-wrong", json!({})).await;
    assert_eq!(
        (status, refused["category"].as_str()),
        (401, Some("INVALID_AUTHENTICATION"))
    );

    // Deals created in February 2026 (epoch milliseconds), 20 a page, oldest first.
    let (from, until) = ("1769904000000", "1772323200000");
    let body = |after: Option<&str>| {
        let mut body = json!({
            "filterGroups": [{"filters": [
                {"propertyName": "createdate", "operator": "GTE", "value": from},
                {"propertyName": "createdate", "operator": "LT", "value": until}
            ]}],
            "sorts": [{"propertyName": "createdate", "direction": "ASCENDING"}],
            "properties": ["amount", "hs_is_closed_won"],
            "limit": 20
        });
        if let Some(after) = after {
            body["after"] = json!(after);
        }
        body
    };
    let february = standin
        .portal()
        .deals
        .iter()
        .filter(|d| d.created.format("%Y-%m").to_string() == "2026-02")
        .count();
    let (mut after, mut seen, mut last) = (None::<String>, 0, String::new());
    loop {
        let (status, _, page) = search("deals", token, body(after.as_deref())).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"], february);
        for result in page["results"].as_array().unwrap() {
            let created = result["properties"]["createdate"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(created >= last, "not sorted: {created} after {last}");
            assert!(
                result["properties"]["hs_is_closed_won"].is_string(),
                "{result}"
            );
            last = created;
            seen += 1;
        }
        match page.pointer("/paging/next/after").and_then(Value::as_str) {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, february);

    // Past the cap: paging is still offered at 10,000, but asking for it is a 400.
    let everything = |after: &str| json!({"limit": 200, "after": after});
    let (_, _, near) = search("contacts", token, everything("9800")).await;
    assert_eq!(near.pointer("/paging/next/after"), Some(&json!("10000")));
    let (status, _, beyond) = search("contacts", token, everything("10000")).await;
    assert_eq!(
        (status, beyond["category"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    let (status, _, _) = search("contacts", token, json!({"limit": 201})).await;
    assert_eq!(status, 400);

    standin.rate_limit(1, Some(2));
    let (status, retry_after, limited) = search("contacts", token, json!({})).await;
    assert_eq!((status, retry_after.as_deref()), (429, Some("2")));
    assert_eq!(limited["category"], "RATE_LIMITS");
    let (status, _, _) = search("contacts", token, json!({})).await;
    assert_eq!(status, 200);
}
