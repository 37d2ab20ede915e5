//! Faults inside and behind the hub, under load: the database stopped and started again,
//! and a JSON API that flaps and then hangs (a plugin that traps on every call is in
//! plugin_traps.rs, alone in its process so that its memory is its own). In each, the
//! other sources keep answering, no request outlives its deadline, and the broken source
//! recovers by itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use futures::future::join_all;
use metrics_hub::hub::HubSettings;
use metrics_hub::kinds::sql::demo;
use metrics_hub_tests::{details, repo_root, serve_in_background, sources_dir, Postgres, TestHub};
use serde_json::{json, Value};

fn demo_yaml() -> String {
    std::fs::read_to_string(repo_root().join("sources.d/demo.yaml")).unwrap()
}

/// `clients` tasks asking `path` until `stop`; every answer's status and body.
fn load(
    hub: &TestHub,
    path: &str,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(u16, Value, Duration)>> {
    let url = hub.url(path);
    tokio::spawn(async move {
        let answers = Arc::new(Mutex::new(Vec::new()));
        join_all((0..clients).map(|_| {
            let (url, stop, answers) = (url.clone(), stop.clone(), answers.clone());
            async move {
                let client = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let response = client.get(&url).send().await.unwrap();
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap();
                    answers
                        .lock()
                        .unwrap()
                        .push((status, body, started.elapsed()));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }))
        .await;
        Arc::try_unwrap(answers).unwrap().into_inner().unwrap()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_database_stopped_under_load_fails_alone_and_recovers_without_a_restart() {
    let server = Postgres::start().unwrap();
    let url = server.database("outage").await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let today = chrono::Utc::now().date_naive();
    let events: Vec<_> = demo::generate(today).into_iter().step_by(7).collect();
    demo::load_postgres(&pool, &events).await.unwrap();
    pool.close().await;
    let postgres = std::fs::read_to_string(repo_root().join("sources.d/postgres.yaml"))
        .unwrap()
        .replace("ttl: 5m", "ttl: 2s")
        .replace("timeout: 10s", "timeout: 3s");
    let sources = sources_dir(&[("demo.yaml", demo_yaml()), ("postgres.yaml", postgres)]).unwrap();
    let data = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("DATABASE_URL".to_owned(), url.clone()),
        (
            "METRICS_HUB_DATA_DIR".to_owned(),
            data.path().display().to_string(),
        ),
    ]);
    let settings = HubSettings {
        answer_ttl: Duration::from_millis(200),
        ..HubSettings::default()
    };
    let hub = TestHub::start(sources.path(), &env, settings)
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&hub, "/api/metrics?days=7", 32, stop.clone());

    tokio::time::sleep(Duration::from_secs(2)).await;
    server.pause().unwrap();
    let outage_began = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, during) = metrics_hub_tests::get(&hub, "/api/sources").await;
    server.resume().unwrap();
    let resumed = Instant::now();
    let mut recovered = None;
    while resumed.elapsed() < Duration::from_secs(15) {
        let (_, body) = metrics_hub_tests::get(&hub, "/api/metrics?days=7").await;
        if details(&body, "postgres")["status"] == "ok" {
            recovered = Some(resumed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let answers = clients.await.unwrap();

    assert!(
        answers.iter().all(|(status, _, _)| *status == 200),
        "every answer was 200: the demo kept serving"
    );
    assert!(answers
        .iter()
        .all(|(_, body, _)| details(body, "demo")["status"] == "ok"));
    let failed = answers
        .iter()
        .filter(|(_, body, _)| details(body, "postgres")["status"] != "ok")
        .count();
    assert!(
        failed > 0,
        "the outage ({:?}) showed in some answers",
        outage_began.elapsed()
    );
    let row = during["data"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "postgres")
        .unwrap();
    assert_eq!(row["health"], "failing", "{row}");
    let recovered = recovered.expect("postgres answered again after the restart");
    assert!(
        recovered < Duration::from_secs(2) + Duration::from_secs(3),
        "recovered within one TTL (plus a connect): {recovered:?}"
    );
    let (_, after) = metrics_hub_tests::get(&hub, "/api/sources").await;
    let row = after["data"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "postgres")
        .unwrap();
    assert_eq!(row["health"], "ok", "{row}");
    hub.stop().await.unwrap();
}

/// A JSON API that answers 500 to every other request, and after `hang_after` requests
/// does not answer at all.
async fn flapping_api(hang_after: u64) -> (String, metrics_hub_tests::Background) {
    let served = Arc::new(AtomicU64::new(0));
    let app = Router::new().route(
        "/summary",
        get(move || {
            let served = served.clone();
            async move {
                let n = served.fetch_add(1, Ordering::Relaxed);
                if n >= hang_after {
                    tokio::time::sleep(Duration::from_secs(120)).await;
                }
                if n % 2 == 1 {
                    return (StatusCode::INTERNAL_SERVER_ERROR, "flap").into_response();
                }
                Json(json!({"total_users": 3})).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (base, serve_in_background(listener, app))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flapping_then_hanging_api_fails_alone_within_the_deadline() {
    let (api, _background) = flapping_api(60).await;
    let flappy = format!("id: flappy\nname: Flapping API\nkind: rest\ntimeout: 2s\ncache:\n  ttl: 0s\nconcurrency: 64\nconnection:\n  base_url: {api}\n  retries: 0\nqueries:\n  summary:\n    path: /summary\n");
    let sources = sources_dir(&[("demo.yaml", demo_yaml()), ("flappy.yaml", flappy)]).unwrap();
    let data = tempfile::tempdir().unwrap();
    let env = HashMap::from([(
        "METRICS_HUB_DATA_DIR".to_owned(),
        data.path().display().to_string(),
    )]);
    let deadline = Duration::from_secs(4);
    let settings = HubSettings {
        request_deadline: deadline,
        answer_ttl: Duration::ZERO,
        ..HubSettings::default()
    };
    let hub = TestHub::start(sources.path(), &env, settings)
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&hub, "/api/metrics?days=7", 8, stop.clone());
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    let answers = clients.await.unwrap();

    let statuses = |wanted: &str| {
        answers
            .iter()
            .filter(|(_, body, _)| details(body, "flappy")["status"] == wanted)
            .count()
    };
    assert!(
        statuses("ok") > 0 && statuses("error") > 0 && statuses("timeout") > 0,
        "flapped then hung: ok {}, error {}, timeout {}",
        statuses("ok"),
        statuses("error"),
        statuses("timeout")
    );
    for (status, body, took) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(details(body, "demo")["status"], "ok");
        assert!(
            *took < deadline + Duration::from_millis(500),
            "an answer took {took:?}, past the {deadline:?} deadline"
        );
    }
    hub.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cold_path_sheds_load_while_cached_answers_flow() {
    let slow = Router::new().route(
        "/summary",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            Json(json!({"total_users": 2}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let _background = serve_in_background(listener, slow);
    let source = format!("id: slow\nname: Slow API\nkind: rest\nconcurrency: 1\ntimeout: 10s\nconnection:\n  base_url: {api}\nqueries:\n  summary:\n    path: /summary\n");
    let sources = sources_dir(&[("slow.yaml", source)]).unwrap();
    let settings = HubSettings {
        fetch_queue: 1,
        ..HubSettings::default()
    };
    let hub = TestHub::start(sources.path(), &HashMap::new(), settings)
        .await
        .unwrap();
    let (status, _) = metrics_hub_tests::get(&hub, "/api/metrics?days=30").await;
    assert_eq!(status, 200, "warm one window");
    // Six windows at once: one fetch runs, one waits, the rest are shed.
    let cold = join_all((1..=6).map(|days| {
        let url = hub.url(&format!("/api/metrics?days={days}"));
        async move {
            let response = reqwest::get(url).await.unwrap();
            let retry = response.headers().get("retry-after").cloned();
            (
                response.status().as_u16(),
                retry,
                response.json::<Value>().await.unwrap(),
            )
        }
    }));
    let cached = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let (status, body) = metrics_hub_tests::get(&hub, "/api/metrics?days=30").await;
        (status, body, started.elapsed())
    };
    let (cold, (status, body, took)) = tokio::join!(cold, cached);
    assert_eq!(status, 200, "the cached answer flows: {body}");
    assert!(took < Duration::from_millis(300), "and at once: {took:?}");
    let shed: Vec<_> = cold.iter().filter(|(status, ..)| *status == 503).collect();
    let served = cold.iter().filter(|(status, ..)| *status == 200).count();
    assert_eq!((served, shed.len()), (2, 4), "{cold:?}");
    for (_, retry, body) in shed {
        assert!(retry.is_some(), "Retry-After on a shed request");
        assert_eq!(body["error"]["code"], "overloaded", "{body}");
        assert_eq!(details(body, "slow")["error"]["code"], "overloaded");
    }
    let (_, sources) = metrics_hub_tests::get(&hub, "/api/sources").await;
    assert_eq!(
        sources["data"]["sources"][0]["health"], "ok",
        "shedding is not the source failing"
    );
    hub.stop().await.unwrap();
}
