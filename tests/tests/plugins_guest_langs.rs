//! End-to-end: the shipped example plugins in Rust, Python and JavaScript (plugins/tally,
//! plugins/python/tally, plugins/js/tally: what `metrics-hub plugin new tally` writes,
//! built from source by plugins/build.sh) inside the hub, reading the tally API stand-in
//! (`metrics_hub_tests::tally_standin`) over real HTTP. The Rust and Python plugins use
//! the contract's `http.send`; the JavaScript one the web `fetch()`, which leaves through
//! `wasi:http`. Both paths go through the one host gate, so each is checked
//! for paging with the auth header, a 429 the host retries, and a forbidden host.
//! Expected numbers come from the stand-in's formula, never from a plugin.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use metrics_hub::hub::HubSettings;
use metrics_hub_tests::tally_standin::{self, TallyStandIn, PAGE_DAYS};
use metrics_hub_tests::{details, get, plugin_component, sources_dir, TestHub};
use serde_json::json;

/// Seconds a source and a request may take here: room for a cold compile.
const COMPILE_ROOM: u64 = 90;

const LANGUAGES: [(&str, &str); 3] = [
    ("tally-rs", "tally"),
    ("tally-py", "tally_py"),
    ("tally-js", "tally_js"),
];

/// A source for plugin `component` reading `base_url`, allowed to reach `allowed`. The
/// first hub to load a component compiles it (18 MB of Python takes 10 to 20 s on a busy
/// two-core machine), so the source's timeout and the hub's request deadline leave room
/// for that.
fn source(id: &str, component: &str, base_url: &str, allowed: &str) -> String {
    format!(
        "id: {id}\nname: Tally ({id})\nkind: wasm\ntimeout: {COMPILE_ROOM}s\ncache:\n  ttl: 0s\nconnection:\n  component: {}\n  config:\n    base_url: {base_url}\n    api_key: ${{secret:TALLY_API_KEY}}\n  sandbox:\n    allowed_hosts: [\"{allowed}\"]\n    retry: {{max_tries: 3, initial_backoff: 200ms, max_backoff: 1s}}\nqueries:\n  summary: {{}}\n  daily: {{}}\n",
        plugin_component(component).display()
    )
}

/// A hub with the three plugins' sources, reading `base_url` and allowed to reach `allowed`,
/// with `key` as the API key.
async fn hub(
    base_url: &str,
    allowed: &str,
    key: &str,
) -> (TestHub, tempfile::TempDir, tempfile::TempDir) {
    let names: Vec<String> = LANGUAGES
        .iter()
        .map(|(id, _)| format!("{id}.yaml"))
        .collect();
    let files: Vec<(&str, String)> = LANGUAGES
        .iter()
        .zip(&names)
        .map(|((id, component), name)| (name.as_str(), source(id, component, base_url, allowed)))
        .collect();
    let dir = sources_dir(&files).unwrap();
    let data = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("TALLY_API_KEY".to_owned(), key.to_owned()),
        (
            "METRICS_HUB_DATA_DIR".to_owned(),
            data.path().display().to_string(),
        ),
    ]);
    let settings = HubSettings {
        request_deadline: Duration::from_secs(COMPILE_ROOM),
        ..HubSettings::default()
    };
    let hub = TestHub::start(dir.path(), &env, settings).await.unwrap();
    (hub, dir, data)
}

#[tokio::test]
async fn plugins_in_every_language_page_through_the_api() {
    let api = TallyStandIn::start().await.unwrap();
    let (hub, _dir, _data) = hub(api.url(), api.url(), tally_standin::API_KEY).await;
    let today = Utc::now().date_naive();
    let (users, events, daily) = tally_standin::expected(today - Days::new(20), today);
    for (id, _) in LANGUAGES {
        let before = api.requests();
        let (status, body) = get(&hub, &format!("/api/metrics?days=20&source={id}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(details(&body, id)["status"], "ok", "{id}: {body}");
        let summary = &body["data"]["summary"];
        assert_eq!(summary["total_users"], users, "{id}: {summary}");
        assert_eq!(summary["total_events"], events, "{id}: {summary}");
        // The plugins say the API has no page views or clients (WIT 0.2.0 `none`): the
        // fields are neither provided nor merged as zeros.
        let mut fields: Vec<_> = details(&body, id)["summaryFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_owned())
            .collect();
        fields.sort();
        assert_eq!(fields, ["total_events", "total_users"], "{id}");
        let rows: Vec<_> = body["data"]["dailyMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| json!({"date": row["date"], "users": row["users"], "events": row["events"]}))
            .collect();
        assert_eq!(rows, daily, "{id}");
        // 21 days are three pages of seven: every page asked once, with the key.
        assert_eq!(
            api.requests() - before,
            21usize.div_ceil(PAGE_DAYS as usize),
            "{id}"
        );
    }
    hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_429_is_retried_by_the_host_on_both_http_paths() {
    let api = TallyStandIn::start().await.unwrap();
    let (hub, _dir, _data) = hub(api.url(), api.url(), tally_standin::API_KEY).await;
    for (id, _) in LANGUAGES {
        api.refuse_next(1);
        let before = api.requests();
        let started = Instant::now();
        let (_, body) = get(&hub, &format!("/api/metrics?days=6&source={id}")).await;
        assert_eq!(details(&body, id)["status"], "ok", "{id}: {body}");
        // The refused try, then the one page; after the stand-in's Retry-After: 1.
        assert_eq!(api.requests() - before, 2, "{id}");
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{id}: {:?}",
            started.elapsed()
        );
    }
    hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_forbidden_host_is_refused_on_both_http_paths() {
    let allowed = TallyStandIn::start().await.unwrap();
    let forbidden = TallyStandIn::start().await.unwrap();
    let (hub, _dir, _data) = hub(forbidden.url(), allowed.url(), tally_standin::API_KEY).await;
    for (id, _) in LANGUAGES {
        let (_, body) = get(&hub, &format!("/api/metrics?days=6&source={id}")).await;
        let d = details(&body, id);
        assert_eq!(d["error"]["code"], "host_denied", "{id}: {d}");
        let message = d["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains(forbidden.url().trim_start_matches("http://")),
            "{message}"
        );
    }
    assert_eq!(
        forbidden.requests(),
        0,
        "a request reached a host off the allowlist"
    );
    assert_eq!(allowed.requests(), 0);
    hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_refused_key_is_an_auth_error_that_never_shows_the_key() {
    let api = TallyStandIn::start().await.unwrap();
    let wrong = "tally-wrong-key-fedcba9876543210";
    let (hub, _dir, _data) = hub(api.url(), api.url(), wrong).await;
    for (id, _) in LANGUAGES {
        let (_, body) = get(&hub, &format!("/api/metrics?days=6&source={id}")).await;
        assert_eq!(
            details(&body, id)["error"]["code"],
            "auth_failed",
            "{id}: {body}"
        );
        assert!(!body.to_string().contains(wrong), "{body}");
    }
    hub.stop().await.unwrap();
}
