//! End-to-end: the `salesforce` WebAssembly plugin inside the hub, beside the SQL demo
//! source (and, in the first test, the `hubspot` plugin too), talking to the local
//! Salesforce stand-in (`metrics_hub_tests::salesforce_standin`) over real HTTP through the
//! host's sandboxed `http.send`. Expected numbers are computed from the stand-in's records
//! and the demo's events directly, never from the plugin. The sources are the shipped
//! `sources.d/salesforce.yaml` and `hubspot.yaml`, pointed at the stand-ins.
//!
//! The plugins must be built first: `plugins/build.sh` (tests/run.sh does).

use std::collections::HashMap;

use chrono::{Days, NaiveDate, Utc};
use metrics_hub::hub::HubSettings;
use metrics_hub::kinds::sql::demo;
use metrics_hub_tests::expected::{expected, Narrow};
use metrics_hub_tests::hubspot_standin::{self, HubSpotStandIn, Portal};
use metrics_hub_tests::salesforce_standin::{self, Org, SalesforceStandIn};
use metrics_hub_tests::{details, get, plugin_component, repo_root, sources_dir, TestHub};
use serde_json::{json, Value};

/// Records per query response: small, so that a 30-day window pages.
const PAGE_SIZE: usize = 25;

fn shipped(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("sources.d").join(name)).unwrap()
}

/// `text` with `from` replaced, failing loudly when the shipped file no longer has it.
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the shipped source no longer contains {from:?}"
    );
    text.replace(from, to)
}

/// The shipped Salesforce source aimed at `standin`: the built component, the stand-in's
/// address allowed (it is loopback, so private addresses too), and no cache, so every
/// request reaches the plugin.
fn salesforce_source(standin: &SalesforceStandIn) -> String {
    let text = shipped("salesforce.yaml");
    let text = replaced(
        &text,
        "../plugins/target/wasm32-wasip2/release/salesforce.wasm",
        &plugin_component("salesforce").display().to_string(),
    );
    let text = replaced(
        &text,
        r#"allowed_hosts: ["https://*.my.salesforce.com"]"#,
        &format!(
            "allowed_hosts: [\"{}\"]\n    allow_private_addresses: true",
            standin.url()
        ),
    );
    replaced(&text, "ttl: 10m", "ttl: 0s")
}

/// The shipped HubSpot source aimed at `standin`, likewise.
fn hubspot_source(standin: &HubSpotStandIn) -> String {
    let text = shipped("hubspot.yaml");
    let text = replaced(
        &text,
        "../plugins/target/wasm32-wasip2/release/hubspot.wasm",
        &plugin_component("hubspot").display().to_string(),
    );
    let text = replaced(
        &text,
        r#"allowed_hosts: ["https://api.hubapi.com"]"#,
        &format!(
            "allowed_hosts: [\"{}\"]\n    allow_private_addresses: true",
            standin.url()
        ),
    );
    let text = replaced(&text, "page_size: 200", "page_size: 50");
    let text = replaced(
        &text,
        "access_token: \"${HUBSPOT_ACCESS_TOKEN:-}\"",
        &format!(
            "access_token: \"${{HUBSPOT_ACCESS_TOKEN:-}}\"\n    base_url: {}",
            standin.url()
        ),
    );
    replaced(&text, "ttl: 10m", "ttl: 0s")
}

struct Setup {
    hub: TestHub,
    salesforce: SalesforceStandIn,
    events: Vec<demo::DemoEvent>,
    today: NaiveDate,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// The shipped demo and Salesforce sources (and `extra` files), with `env` added to the
/// variables the Salesforce source needs.
async fn setup(client_secret: &str, extra: Vec<(&str, String)>, env: &[(&str, &str)]) -> Setup {
    let today = Utc::now().date_naive();
    let salesforce = SalesforceStandIn::start(Org::generate(today))
        .await
        .unwrap();
    salesforce.set_page_size(PAGE_SIZE);
    let data = tempfile::tempdir().unwrap();
    let mut files = vec![
        ("demo.yaml", shipped("demo.yaml")),
        ("salesforce.yaml", salesforce_source(&salesforce)),
    ];
    files.extend(extra);
    let sources = sources_dir(&files).unwrap();
    let mut variables = HashMap::from([
        (
            "METRICS_HUB_DATA_DIR".to_owned(),
            data.path().display().to_string(),
        ),
        (
            "SALESFORCE_INSTANCE_URL".to_owned(),
            salesforce.url().to_owned(),
        ),
        (
            "SALESFORCE_CLIENT_ID".to_owned(),
            salesforce_standin::CLIENT_ID.to_owned(),
        ),
        (
            "SALESFORCE_CLIENT_SECRET".to_owned(),
            client_secret.to_owned(),
        ),
    ]);
    for (name, value) in env {
        variables.insert((*name).to_owned(), (*value).to_owned());
    }
    let hub = TestHub::start(sources.path(), &variables, HubSettings::default())
        .await
        .unwrap();
    Setup {
        hub,
        salesforce,
        events: demo::generate(today),
        today,
        _dirs: (data, sources),
    }
}

/// Adds `from`'s numbers into `into`'s, leaving other values (names, dates) alone.
fn add_fields(into: &mut Value, from: &Value) {
    for (key, value) in from.as_object().unwrap() {
        let sum = match (into.get(key), value) {
            (None, _) => value.clone(),
            (Some(Value::Number(a)), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
                (Some(a), Some(b)) => json!(a + b),
                _ => json!(a.as_f64().unwrap() + b.as_f64().unwrap()),
            },
            (Some(existing), _) => existing.clone(),
        };
        into[key] = sum;
    }
}

/// Several sources' expected answers combined as the dashboard contract says: summaries
/// added field by field, days by date, features and clients by name, clients ranked by
/// events then name and cut to the top 20.
fn merged(parts: &[Value]) -> Value {
    let mut summary = json!({});
    let mut lists: HashMap<&str, Vec<Value>> = HashMap::new();
    for part in parts {
        add_fields(&mut summary, &part["summary"]);
        for (list, key) in [
            ("dailyMetrics", "date"),
            ("featureMetrics", "feature"),
            ("clientMetrics", "client"),
        ] {
            let rows = lists.entry(list).or_default();
            for row in part[list].as_array().unwrap() {
                match rows.iter_mut().find(|r| r[key] == row[key]) {
                    Some(existing) => add_fields(existing, row),
                    None => rows.push(row.clone()),
                }
            }
        }
    }
    let number = |row: &Value, key: &str| row[key].as_f64().unwrap_or(0.0);
    let text = |row: &Value, key: &str| row[key].as_str().unwrap_or_default().to_owned();
    let mut daily = lists.remove("dailyMetrics").unwrap_or_default();
    daily.sort_by_key(|row| text(row, "date"));
    let mut features = lists.remove("featureMetrics").unwrap_or_default();
    features.sort_by(|a, b| {
        number(b, "views")
            .total_cmp(&number(a, "views"))
            .then_with(|| text(a, "feature").cmp(&text(b, "feature")))
    });
    let mut clients = lists.remove("clientMetrics").unwrap_or_default();
    clients.sort_by(|a, b| {
        number(b, "events")
            .total_cmp(&number(a, "events"))
            .then_with(|| text(a, "client").cmp(&text(b, "client")))
    });
    clients.truncate(20);
    json!({"summary": summary, "dailyMetrics": daily, "featureMetrics": features, "clientMetrics": clients})
}

#[tokio::test]
async fn demo_salesforce_and_hubspot_merge_to_independently_computed_numbers() {
    let today = Utc::now().date_naive();
    let hubspot = HubSpotStandIn::start(Portal::generate(today))
        .await
        .unwrap();
    let s = setup(
        salesforce_standin::CLIENT_SECRET,
        vec![("hubspot.yaml", hubspot_source(&hubspot))],
        &[("HUBSPOT_ACCESS_TOKEN", hubspot_standin::ACCESS_TOKEN)],
    )
    .await;
    let start = s.today - Days::new(30);

    let (status, body) = get(&s.hub, "/api/metrics?days=30").await;
    assert_eq!(status, 200, "{body}");
    let want = merged(&[
        expected(&s.events, start, s.today, &Narrow::default(), 1),
        s.salesforce.org().expected(start, s.today),
        hubspot.portal().expected(start, s.today),
    ]);
    assert_eq!(body["data"], want, "merged data differ");
    assert_eq!(
        body["metadata"]["sources"],
        json!(["demo", "hubspot", "salesforce"])
    );
    for id in ["salesforce", "hubspot"] {
        let d = details(&body, id);
        assert_eq!(d["status"], "ok", "{d}");
        // A CRM has no feature usage: the source declares no `features`, and says so.
        assert_eq!(d["missingDatasets"], json!(["features"]), "{d}");
    }
    // Each source alone equals its own expectation.
    let salesforce = s.salesforce.org().expected(start, s.today);
    let crm = hubspot.portal().expected(start, s.today);
    let (_, alone) = get(&s.hub, "/api/metrics?days=30&source=salesforce").await;
    assert_eq!(alone["data"], salesforce);
    let (_, alone) = get(&s.hub, "/api/metrics?days=30&source=hubspot").await;
    assert_eq!(alone["data"], crm);

    // The two CRMs alone: the demo's busy clients no longer crowd theirs out, and the
    // companies both know (Northwind Traders...) are one client whose numbers add up.
    let (_, both) = get(&s.hub, "/api/metrics?days=30&source=salesforce,hubspot").await;
    assert_eq!(both["data"], merged(&[salesforce.clone(), crm.clone()]));
    let client = |data: &Value, name: &str| {
        data["clientMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["client"] == name)
            .cloned()
    };
    let shared: Vec<Value> = both["data"]["clientMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            let name = c["client"].as_str().unwrap();
            client(&salesforce, name).is_some() && client(&crm, name).is_some()
        })
        .cloned()
        .collect();
    assert!(!shared.is_empty(), "no client known to both CRMs in {both}");
    for merged_client in shared {
        let name = merged_client["client"].as_str().unwrap();
        let (a, b) = (
            client(&salesforce, name).unwrap(),
            client(&crm, name).unwrap(),
        );
        assert_eq!(
            merged_client["events"],
            a["events"].as_i64().unwrap() + b["events"].as_i64().unwrap(),
            "{name}"
        );
        assert_eq!(
            merged_client["won_amount"],
            a["won_amount"].as_f64().unwrap() + b["won_amount"].as_f64().unwrap(),
            "{name}"
        );
    }

    // One token served every query: the plugin keeps its session between calls.
    assert_eq!(s.salesforce.token_requests(), 1);
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn queries_follow_next_records_url_until_done() {
    let s = setup(salesforce_standin::CLIENT_SECRET, vec![], &[]).await;
    let start = s.today - Days::new(90);
    let (status, body) = get(&s.hub, "/api/metrics?days=90&source=salesforce").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], s.salesforce.org().expected(start, s.today));

    // The window's opportunities with an account span several batches of PAGE_SIZE; each
    // batch after the first was fetched through its nextRecordsUrl.
    let with_account = s
        .salesforce
        .org()
        .opportunities
        .iter()
        .filter(|o| o.account_id.is_some() && (start..=s.today).contains(&o.created.date_naive()))
        .count();
    let pages = s
        .salesforce
        .requests()
        .iter()
        .filter(|r| r.contains("/query/01g"))
        .count();
    assert!(
        with_account > 3 * PAGE_SIZE,
        "too little data to page: {with_account}"
    );
    assert_eq!(
        pages,
        with_account.div_ceil(PAGE_SIZE) - 1,
        "{:?}",
        s.salesforce.requests()
    );
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_and_the_answer_is_complete() {
    let s = setup(salesforce_standin::CLIENT_SECRET, vec![], &[]).await;
    let (_, first) = get(&s.hub, "/api/metrics?days=30&source=salesforce").await;
    assert_eq!(details(&first, "salesforce")["status"], "ok");
    assert_eq!(s.salesforce.token_requests(), 1);

    // Every token dies: the next query answers 401 INVALID_SESSION_ID, the plugin asks for a
    // new token and repeats the query. (Another window, so no cached answer is served.)
    s.salesforce.expire_sessions();
    let start = s.today - Days::new(29);
    let (status, second) = get(&s.hub, "/api/metrics?days=29&source=salesforce").await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(details(&second, "salesforce")["status"], "ok", "{second}");
    assert_eq!(second["data"], s.salesforce.org().expected(start, s.today));
    assert_eq!(s.salesforce.token_requests(), 2);
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn request_limit_exceeded_is_reported_as_rate_limited_while_the_demo_answers() {
    let s = setup(salesforce_standin::CLIENT_SECRET, vec![], &[]).await;
    let start = s.today - Days::new(30);
    s.salesforce.exceed_request_limit(1);
    let (status, body) = get(&s.hub, "/api/metrics?days=30").await;
    assert_eq!(status, 200, "{body}");
    let d = details(&body, "salesforce");
    assert_eq!(d["status"], "error", "{d}");
    assert_eq!(d["error"]["code"], "rate_limited", "{d}");
    assert_eq!(
        body["data"],
        expected(&s.events, start, s.today, &Narrow::default(), 1)
    );

    // Salesforce gave no wait: the hub holds off for a second without calling it... Shown
    // on Salesforce alone, refused again once the first hold-off is over, so that neither
    // the demo's query nor the check above eats into that second.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    s.salesforce.exceed_request_limit(1);
    let (_, refused) = get(&s.hub, "/api/metrics?days=27&source=salesforce").await;
    let d = details(&refused, "salesforce");
    assert_eq!(d["error"]["code"], "rate_limited", "{d}");
    let (_, held) = get(&s.hub, "/api/metrics?days=29&source=salesforce").await;
    let d = details(&held, "salesforce");
    assert_eq!(d["error"]["code"], "rate_limited", "{d}");
    assert!(
        d["error"]["message"]
            .as_str()
            .unwrap()
            .contains("asks it again"),
        "{d}"
    );
    // ...then, the limit lifted, the same hub answers in full (another window: nothing
    // cached).
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let (_, again) = get(&s.hub, "/api/metrics?days=28").await;
    assert_eq!(details(&again, "salesforce")["status"], "ok", "{again}");
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn refused_client_credentials_are_an_auth_error_without_the_secret() {
    let wrong = "not-the-secret-4f9a";
    let s = setup(wrong, vec![], &[]).await;
    let (status, body) = get(&s.hub, "/api/metrics?days=30").await;
    assert_eq!(status, 200, "{body}");
    let d = details(&body, "salesforce");
    assert_eq!(d["status"], "error", "{d}");
    assert_eq!(d["error"]["code"], "auth_failed", "{d}");
    assert!(!body.to_string().contains(wrong));
    assert_eq!(s.salesforce.api_requests(), 0, "no query without a token");
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn an_error_array_becomes_an_upstream_error() {
    // An API version the org does not serve: 404 [{"errorCode":"NOT_FOUND",...}].
    let s = setup(
        salesforce_standin::CLIENT_SECRET,
        vec![],
        &[("SALESFORCE_API_VERSION", "12.0")],
    )
    .await;
    let (_, body) = get(&s.hub, "/api/metrics?days=7").await;
    let d = details(&body, "salesforce");
    assert_eq!(d["status"], "error", "{d}");
    assert_eq!(d["error"]["code"], "upstream_error", "{d}");
    assert!(s
        .salesforce
        .requests()
        .iter()
        .any(|r| r.contains("/v12.0/query")));
    s.hub.stop().await.unwrap();
}

#[test]
fn the_shipped_sources_are_disabled_without_credentials_and_valid_with_them() {
    let dir = repo_root().join("sources.d");
    let ids = ["hubspot", "salesforce"];
    let without = metrics_hub::load::load_dir_with(&dir, &|_| None).unwrap();
    let with_env = metrics_hub::load::load_dir_with(&dir, &|name| match name {
        "SALESFORCE_CLIENT_ID" | "SALESFORCE_CLIENT_SECRET" | "HUBSPOT_ACCESS_TOKEN" => {
            Some("x".into())
        }
        "SALESFORCE_INSTANCE_URL" => Some("https://acme.my.salesforce.com".into()),
        _ => None,
    })
    .unwrap();
    for (loaded, enabled) in [(&without, false), (&with_env, true)] {
        let broken: Vec<String> = loaded.errors().map(|e| format!("{e:?}")).collect();
        assert!(
            broken
                .iter()
                .all(|e| ids.iter().all(|id| !e.contains(&format!("{id}.yaml")))),
            "{broken:?}"
        );
        for id in ids {
            let source = loaded
                .sources
                .iter()
                .find(|s| s.id == id)
                .unwrap_or_else(|| panic!("{id} not loaded"));
            assert_eq!(source.enabled, enabled, "{id}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The stand-in itself, on the wire, with a plain HTTP client.

#[tokio::test]
async fn the_standin_speaks_salesforce_rest() {
    let today = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let standin = SalesforceStandIn::start(Org::generate(today))
        .await
        .unwrap();
    standin.set_page_size(100);
    let http = reqwest::Client::new();
    let token_url = format!("{}/services/oauth2/token", standin.url());
    let form = |secret: &str| {
        format!(
            "grant_type=client_credentials&client_id={}&client_secret={secret}",
            salesforce_standin::CLIENT_ID
        )
    };
    let post_form = |body: String| {
        http.post(&token_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };

    let refused = post_form(form("wrong")).await.unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(
        refused.json::<Value>().await.unwrap(),
        json!({"error": "invalid_client", "error_description": "invalid client credentials"})
    );
    let granted: Value = post_form(form(salesforce_standin::CLIENT_SECRET))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(granted["token_type"], "Bearer");
    assert_eq!(granted["instance_url"], standin.url());
    assert!(granted.get("refresh_token").is_none() && granted.get("expires_in").is_none());
    let token = granted["access_token"].as_str().unwrap().to_owned();

    let query = |path: String| {
        let request = http
            .get(format!("{}{path}", standin.url()))
            .bearer_auth(&token);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let usage = response
                .headers()
                .get("Sforce-Limit-Info")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, usage, response.json::<Value>().await.unwrap())
        }
    };
    let soql = |text: &str| format!("/services/data/v62.0/query?q={}", text.replace(' ', "+"));

    let (status, usage, count) = query(soql("SELECT COUNT() FROM Contact")).await;
    assert_eq!(status, 200);
    assert!(usage.unwrap().starts_with("api-usage="));
    assert_eq!(
        count,
        json!({"totalSize": 420, "done": true, "records": []})
    );

    // 360 opportunities in batches of 100, each batch naming the next until done.
    let (_, _, mut page) = query(soql("SELECT Id, Account.Name FROM Opportunity")).await;
    let mut ids = Vec::new();
    loop {
        assert_eq!(page["totalSize"], 360);
        ids.extend(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["Id"].as_str().unwrap().to_owned()),
        );
        if page["done"] == true {
            assert!(page.get("nextRecordsUrl").is_none());
            break;
        }
        let next = page["nextRecordsUrl"].as_str().unwrap().to_owned();
        assert!(next.starts_with("/services/data/v62.0/query/01g"), "{next}");
        page = query(next).await.2;
    }
    assert_eq!(ids.len(), 360);

    let (_, _, grouped) = query(soql(
        "SELECT IsWon, COUNT(Id) FROM Opportunity GROUP BY IsWon",
    ))
    .await;
    let won = standin
        .org()
        .opportunities
        .iter()
        .filter(|o| o.is_won())
        .count();
    let rows = grouped["records"].as_array().unwrap();
    assert_eq!(grouped["done"], true);
    assert!(
        rows.iter().any(|r| r["IsWon"] == true && r["expr0"] == won),
        "{grouped}"
    );

    let (status, _, malformed) = query(soql("SELECT Id FROM Contact WHERE")).await;
    assert_eq!(status, 400);
    assert_eq!(malformed[0]["errorCode"], "MALFORMED_QUERY");

    standin.exceed_request_limit(1);
    let (status, _, limited) = query(soql("SELECT COUNT() FROM Contact")).await;
    assert_eq!(
        (status, limited[0]["errorCode"].as_str()),
        (403, Some("REQUEST_LIMIT_EXCEEDED"))
    );

    standin.expire_sessions();
    let (status, _, expired) = query(soql("SELECT COUNT() FROM Contact")).await;
    assert_eq!(status, 401);
    assert_eq!(
        expired,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
}
