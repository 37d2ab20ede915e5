//! Hostile plugins against the sandbox, each in its own test: a plugin that loops forever,
//! one that allocates without bound, one that panics, one that calls a host it may not
//! (directly, through a redirect, and by a name resolving to loopback), one that answers
//! malformed data, one that fetches a 50 MB body and one that makes too many requests.
//! Each must end as a clear per-source error in `metadata` within its deadline while the
//! SQLite demo still answers in the same request, and the hub must keep serving after.
//!
//! The components come from `plugins/build.sh` (tests/run.sh runs it first); the HTTP
//! stand-ins are axum servers on 127.0.0.1.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_hub::hub::{Hub, HubSettings};
use metrics_hub::load;
use metrics_hub_tests::{
    details, get as get_json, plugin_component, repo_root, sources_dir, TestHub,
};
use serde_json::Value;

fn demo_yaml() -> String {
    std::fs::read_to_string(repo_root().join("sources.d/demo.yaml")).unwrap()
}

/// One demo database for every test of this file, created once (it takes a few seconds):
/// tests only need the demo to answer, not particular numbers.
fn demo_data_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasm-sandbox-demo");
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.clone();
        // Its own runtime: each test has one, and this outlives none of them.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let sources = sources_dir(&[("demo.yaml", demo_yaml())]).unwrap();
                let env = HashMap::from([(
                    "METRICS_HUB_DATA_DIR".to_owned(),
                    data.display().to_string(),
                )]);
                let loaded =
                    load::load_dir_with(sources.path(), &|name| env.get(name).cloned()).unwrap();
                let hub = Hub::new(loaded, HubSettings::default());
                hub.initialize().await;
                hub.cleanup().await;
            })
        })
        .join()
        .unwrap();
        dir
    })
    .clone()
}

/// A plugin source: `plugin` is the crate name, `extra` more YAML under `connection:`.
fn plugin_yaml(id: &str, plugin: &str, timeout: &str, connection: &str) -> String {
    format!(
        "id: {id}\nname: {id}\nkind: wasm\ntimeout: {timeout}\ncache:\n  ttl: 0s\nconnection:\n  component: {}\n{connection}",
        plugin_component(plugin).display()
    )
}

async fn start(files: &[(&str, String)], env: &[(&str, &str)]) -> (TestHub, tempfile::TempDir) {
    let mut all = vec![("demo.yaml", demo_yaml())];
    all.extend(files.iter().cloned());
    let sources = sources_dir(&all).unwrap();
    let mut vars = HashMap::from([(
        "METRICS_HUB_DATA_DIR".to_owned(),
        demo_data_dir().display().to_string(),
    )]);
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let settings = HubSettings {
        answer_ttl: Duration::ZERO,
        ..HubSettings::default()
    };
    let hub = TestHub::start(sources.path(), &vars, settings)
        .await
        .unwrap();
    let (status, body) = get_json(&hub, "/api/sources").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["invalidFiles"],
        serde_json::json!([]),
        "{body}"
    );
    (hub, sources)
}

/// Asks for every source: the answer is a 200 with the demo's data, and `id` reported
/// with `status` and `code`, all within `within`. Returns the plugin's details.
async fn answer_isolates(
    hub: &TestHub,
    id: &str,
    status: &str,
    code: &str,
    within: Duration,
) -> Value {
    let started = Instant::now();
    let (http, body) = get_json(hub, "/api/metrics?days=7").await;
    let took = started.elapsed();
    assert_eq!(http, 200, "{body}");
    assert!(
        took < within,
        "the answer took {took:?}, more than {within:?}"
    );
    assert_eq!(details(&body, "demo")["status"], "ok", "{body}");
    assert_eq!(body["metadata"]["sources"], serde_json::json!(["demo"]));
    assert!(body["data"]["summary"]["total_events"].as_i64().unwrap() > 0);
    let plugin = details(&body, id).clone();
    assert_eq!(plugin["status"], status, "{body}");
    assert_eq!(plugin["error"]["code"], code, "{body}");
    plugin
}

/// The hub still serves: the demo alone, health and the registry.
async fn still_serving(hub: &TestHub) {
    let (status, body) = get_json(hub, "/api/metrics?days=3&source=demo").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(details(&body, "demo")["status"], "ok");
    let (status, _) = get_json(hub, "/api/health").await;
    assert_eq!(status, 200);
    let (status, _) = get_json(hub, "/api/sources").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_plugin_that_loops_forever_is_interrupted_at_its_cpu_deadline() {
    // The source timeout is long: only the epoch deadline can end the call this early.
    let (hub, _dir) = start(
        &[(
            "spin.yaml",
            plugin_yaml(
                "spin",
                "test-spin",
                "30s",
                "  sandbox:\n    cpu_deadline: 500ms\n",
            ),
        )],
        &[],
    )
    .await;
    let spin = answer_isolates(&hub, "spin", "timeout", "timeout", Duration::from_secs(5)).await;
    assert_eq!(
        spin["error"]["message"], "no answer within 500 ms",
        "{spin}"
    );
    // While another call spins, the hub answers other requests at once.
    let spinning = tokio::spawn({
        let url = hub.url("/api/metrics?days=5");
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    still_serving(&hub).await;
    // Generous for a loaded CI machine; a blocked hub would wait the whole 30 s timeout.
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(spinning.await.unwrap(), 200);
    // A fresh instance replaced the interrupted one, and it is interrupted again.
    answer_isolates(&hub, "spin", "timeout", "timeout", Duration::from_secs(5)).await;
    hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_plugin_that_sleeps_past_its_deadline_is_woken_there() {
    // An hour's `std::thread::sleep` under a 500 ms deadline and a 30 s source timeout: the
    // host cuts the sleep at the deadline, so the answer comes at once, not after 30 s.
    let (hub, _dir) = start(
        &[(
            "sleepy.yaml",
            plugin_yaml(
                "sleepy",
                "test-spin",
                "30s",
                "  config:\n    sleep: true\n  sandbox:\n    cpu_deadline: 500ms\n    instances: 1\n",
            ),
        )],
        &[],
    )
    .await;
    for _ in 0..2 {
        let started = Instant::now();
        let sleepy =
            answer_isolates(&hub, "sleepy", "timeout", "timeout", Duration::from_secs(5)).await;
        assert_eq!(
            sleepy["error"]["message"], "no answer within 500 ms",
            "{sleepy}"
        );
        // The one instance was freed too: the second round would wait otherwise.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    still_serving(&hub).await;
    hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_plugin_that_loops_forever_cannot_outlast_the_source_timeout() {
    // No cpu_deadline: it defaults to the source's timeout.
    let (hub, _dir) = start(
        &[("spin.yaml", plugin_yaml("spin", "test-spin", "1s", ""))],
        &[],
    )
    .await;
    answer_isolates(&hub, "spin", "timeout", "timeout", Duration::from_secs(4)).await;
    still_serving(&hub).await;
    hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_plugin_that_allocates_without_bound_hits_its_memory_limit() {
    let (hub, _dir) = start(
        &[(
            "hog.yaml",
            plugin_yaml("hog", "test-hog", "10s", "  sandbox:\n    memory: 16MiB\n"),
        )],
        &[],
    )
    .await;
    let hog = answer_isolates(
        &hub,
        "hog",
        "error",
        "plugin_out_of_memory",
        Duration::from_secs(8),
    )
    .await;
    assert_eq!(
        hog["error"]["message"],
        "the plugin exceeded its memory limit of 16777216 bytes"
    );
    answer_isolates(
        &hub,
        "hog",
        "error",
        "plugin_out_of_memory",
        Duration::from_secs(8),
    )
    .await;
    still_serving(&hub).await;
    hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_plugin_that_panics_is_replaced_by_a_fresh_instance() {
    let (hub, _dir) = start(
        &[(
            "panic.yaml",
            plugin_yaml(
                "panicky",
                "test-panic",
                "5s",
                "  sandbox:\n    instances: 1\n",
            ),
        )],
        &[],
    )
    .await;
    let calls = |body: &Value| body["data"]["summary"]["calls"].as_i64();
    let (_, body) = get_json(&hub, "/api/metrics?days=7&source=panicky").await;
    assert_eq!(calls(&body), Some(1), "{body}");
    let (_, body) = get_json(&hub, "/api/metrics?days=6&source=panicky").await;
    assert_eq!(calls(&body), Some(2), "the instance is reused: {body}");

    let started = Instant::now();
    let (status, body) = get_json(&hub, "/api/metrics?days=13").await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(details(&body, "demo")["status"], "ok");
    let panicky = details(&body, "panicky");
    assert_eq!(panicky["status"], "error");
    assert_eq!(panicky["error"]["code"], "plugin_crashed");
    assert_eq!(
        panicky["error"]["message"],
        "the plugin crashed; see the hub log"
    );

    let (_, body) = get_json(&hub, "/api/metrics?days=7&source=panicky").await;
    assert_eq!(
        calls(&body),
        Some(1),
        "a fresh instance, initialized again: {body}"
    );
    still_serving(&hub).await;
    hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_plugin_answering_malformed_data_is_refused_with_the_reason() {
    let malformed = |mode: &str| {
        (
            format!("{mode}.yaml"),
            plugin_yaml(
                mode,
                "test-malformed",
                "5s",
                &format!("  config:\n    mode: {mode}\n"),
            ),
        )
    };
    let files: Vec<(String, String)> = ["negative", "bad-date", "duplicate-day"]
        .into_iter()
        .map(malformed)
        .collect();
    let files: Vec<(&str, String)> = files.iter().map(|(n, y)| (n.as_str(), y.clone())).collect();
    let (hub, _dir) = start(&files, &[]).await;
    let (status, body) = get_json(&hub, "/api/metrics?days=7").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(details(&body, "demo")["status"], "ok");
    assert_eq!(body["metadata"]["sources"], serde_json::json!(["demo"]));
    for (id, reason) in [
        (
            "negative",
            "summary.total_events is -20: counts cannot be negative",
        ),
        (
            "bad-date",
            "daily[1].date is \"2026-02-30\", not a date written YYYY-MM-DD",
        ),
        ("duplicate-day", "daily[1].date"),
    ] {
        let d = details(&body, id);
        assert_eq!(d["status"], "error", "{d}");
        assert_eq!(d["error"]["code"], "bad_plugin_data");
        let message = d["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{id}: {message}");
    }
    let duplicate = details(&body, "duplicate-day")["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(duplicate.contains("repeats daily[0]"), "{duplicate}");
    still_serving(&hub).await;
    hub.stop().await.unwrap();
}

/// Two stand-ins on 127.0.0.1: `allowed` (ok, redirect, huge body) and `forbidden`, which
/// counts every request that reaches it (there must be none).
struct StandIns {
    allowed: String,
    forbidden: String,
    allowed_port: u16,
    allowed_hits: Arc<AtomicUsize>,
    forbidden_hits: Arc<AtomicUsize>,
}

const HUGE: usize = 50 * 1024 * 1024;

async fn stand_ins() -> StandIns {
    let forbidden_hits = Arc::new(AtomicUsize::new(0));
    let forbidden = Router::new()
        .fallback(|State(hits): State<Arc<AtomicUsize>>| async move {
            hits.fetch_add(1, Ordering::SeqCst);
            "you should not be here"
        })
        .with_state(forbidden_hits.clone());
    let forbidden_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let forbidden_addr = forbidden_listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(forbidden_listener, forbidden).await });
    let forbidden_base = format!("http://{forbidden_addr}");

    let allowed_hits = Arc::new(AtomicUsize::new(0));
    let redirect_to = format!("{forbidden_base}/secret");
    let allowed = Router::new()
        .route("/ok", get(|| async { "hello" }))
        .route(
            "/redirect",
            get(move || {
                let target = redirect_to.clone();
                async move {
                    Response::builder()
                        .status(302)
                        .header("location", target)
                        .body(Body::empty())
                        .unwrap()
                }
            }),
        )
        .route(
            // 50 MB, chunked (no Content-Length): only streaming can stop it.
            "/huge",
            get(|| async {
                let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
                let chunks = futures::stream::iter(
                    (0..HUGE / chunk.len()).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                );
                Body::from_stream(chunks).into_response()
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            allowed_hits.clone(),
            |State(hits): State<Arc<AtomicUsize>>,
             request: axum::extract::Request,
             next: axum::middleware::Next| async move {
                hits.fetch_add(1, Ordering::SeqCst);
                next.run(request).await
            },
        ));
    let allowed_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let allowed_addr = allowed_listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(allowed_listener, allowed).await });
    StandIns {
        allowed: format!("http://{allowed_addr}"),
        forbidden: forbidden_base,
        allowed_port: allowed_addr.port(),
        allowed_hits,
        forbidden_hits,
    }
}

fn fetch_yaml(id: &str, stand_ins: &StandIns, config: &str, sandbox: &str) -> String {
    plugin_yaml(
        id,
        "test-fetch",
        "10s",
        &format!(
            "  config:\n    token: ${{FETCH_TOKEN}}\n{config}  sandbox:\n    allowed_hosts: [\"{}\"]\n{sandbox}",
            stand_ins.allowed
        ),
    )
}

const TOKEN: &str = "tok-3f9a1c77e2";

#[tokio::test]
async fn a_plugin_calling_a_host_it_may_not_is_refused_every_way() {
    let s = stand_ins().await;
    let files = [
        (
            "fine.yaml",
            fetch_yaml("fine", &s, &format!("    url: {}/ok\n", s.allowed), ""),
        ),
        (
            "direct.yaml",
            fetch_yaml(
                "direct",
                &s,
                &format!("    url: {}/steal\n", s.forbidden),
                "",
            ),
        ),
        (
            "redirected.yaml",
            fetch_yaml(
                "redirected",
                &s,
                &format!("    url: {}/redirect\n    follow: 1\n", s.allowed),
                "",
            ),
        ),
        (
            // Listed by name, but the name resolves to loopback: refused unless the
            // source allows private addresses.
            "by-name.yaml",
            plugin_yaml(
                "by-name",
                "test-fetch",
                "10s",
                &format!(
                    "  config:\n    url: http://localhost:{port}/ok\n  sandbox:\n    allowed_hosts: [\"http://localhost:{port}\"]\n",
                    port = s.allowed_port
                ),
            ),
        ),
    ];
    let (hub, _dir) = start(&files, &[("FETCH_TOKEN", TOKEN)]).await;
    let (status, body) = get_json(&hub, "/api/metrics?days=7").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(details(&body, "demo")["status"], "ok");

    let fine = details(&body, "fine");
    assert_eq!(fine["status"], "ok", "{fine}");
    assert_eq!(
        body["metadata"]["sources"],
        serde_json::json!(["demo", "fine"])
    );

    for (id, refused) in [
        ("direct", s.forbidden.clone()),
        ("redirected", s.forbidden.clone()),
        ("by-name", format!("localhost:{}", s.allowed_port)),
    ] {
        let d = details(&body, id);
        assert_eq!(d["status"], "error", "{d}");
        assert_eq!(d["error"]["code"], "host_denied", "{d}");
        // The refused origin comes from the source's config: it is in the hub log, and
        // the public message names no config-derived value.
        let message = d["error"]["message"].as_str().unwrap();
        assert!(!message.contains(&refused), "{id}: {message}");
        assert!(
            message.contains("sandbox does not allow"),
            "{id}: {message}"
        );
    }
    assert_eq!(
        s.forbidden_hits.load(Ordering::SeqCst),
        0,
        "no request may reach a host off the allowlist"
    );
    // fine's /ok and the redirect's first hop; the by-name request never left the host.
    assert_eq!(s.allowed_hits.load(Ordering::SeqCst), 2);
    assert!(
        !body.to_string().contains(TOKEN),
        "the secret leaked: {body}"
    );
    still_serving(&hub).await;
    hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_50_mb_body_is_cut_off_while_streaming() {
    let s = stand_ins().await;
    let files = [(
        "huge.yaml",
        fetch_yaml(
            "huge",
            &s,
            &format!("    url: {}/huge\n", s.allowed),
            "    max_response_bytes: 2MiB\n",
        ),
    )];
    let (hub, _dir) = start(&files, &[("FETCH_TOKEN", TOKEN)]).await;
    let huge = answer_isolates(
        &hub,
        "huge",
        "error",
        "response_too_large",
        Duration::from_secs(8),
    )
    .await;
    assert_eq!(
        huge["error"]["message"],
        format!("the response exceeded {} bytes", 2 * 1024 * 1024)
    );
    still_serving(&hub).await;
    hub.stop().await.unwrap();
}

#[tokio::test]
async fn a_plugin_making_too_many_requests_is_stopped_at_the_cap() {
    let s = stand_ins().await;
    let files = [(
        "chatty.yaml",
        fetch_yaml(
            "chatty",
            &s,
            &format!("    url: {}/ok\n    repeat: 10\n", s.allowed),
            "    max_requests_per_call: 3\n",
        ),
    )];
    let (hub, _dir) = start(&files, &[("FETCH_TOKEN", TOKEN)]).await;
    let chatty = answer_isolates(
        &hub,
        "chatty",
        "error",
        "too_many_requests",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        chatty["error"]["message"],
        "the plugin exceeded 3 requests in one call"
    );
    assert_eq!(s.allowed_hits.load(Ordering::SeqCst), 3);
    // The cap is per call: the next call gets three more.
    answer_isolates(
        &hub,
        "chatty",
        "error",
        "too_many_requests",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(s.allowed_hits.load(Ordering::SeqCst), 6);
    still_serving(&hub).await;
    hub.stop().await.unwrap();
}
