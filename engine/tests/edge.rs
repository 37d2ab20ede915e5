//! The HTTP edge under attack and at its limits, against the real binary: half-open
//! connections under a 1,024-file limit, hostile heads and bodies, SIGTERM with requests
//! in flight, an unusable data directory, a corrupt precompiled plugin. Each test checks
//! what a client sees and what the hub logs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Json, Router};
use futures::future::join_all;
use serde_json::{json, Value};
use support::process::{run_hub, HubProcess};
use support::raw::{authority, exchange};
use support::{demo_yaml, plugins_dir, serve_in_background, sources_dir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client without connection reuse, so each request is a new connection.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn get_json(url: &str) -> (u16, Value) {
    let response = client().get(url).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The demo on its own, served by a process with `prefix` and `args`.
fn demo_hub(prefix: &[&str], args: &[&str], data: &Path) -> (HubProcess, tempfile::TempDir) {
    let sources = sources_dir(&[("demo.yaml", demo_yaml())]);
    let dir = sources.path().to_str().unwrap().to_owned();
    let mut all = vec!["--sources", dir.as_str()];
    all.extend_from_slice(args);
    let data = data.to_str().unwrap();
    let hub = HubProcess::start(prefix, &all, &[("METRICS_HUB_DATA_DIR", data)]).unwrap();
    (hub, sources)
}

/// Lets this test process open the connections an attack needs.
fn raise_own_file_limit() {
    let _ = metrics_hub::api::edge::raise_fd_limit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_connections_under_a_1024_file_limit_starve_nothing() {
    raise_own_file_limit();
    let data = tempfile::tempdir().unwrap();
    let (hub, _sources) = demo_hub(
        &["prlimit", "--nofile=1024:1024"],
        &["--header-timeout", "3s"],
        data.path(),
    );
    let (status, _) = get_json(&hub.url("/api/metrics?days=7")).await;
    assert_eq!(status, 200, "warm the cache");
    let limit_line = hub
        .log_lines()
        .into_iter()
        .find(|l| l.contains("open-file limit"));
    assert!(
        limit_line
            .as_deref()
            .is_some_and(|l| l.contains("soft_now=1024")),
        "{limit_line:?}"
    );

    // 1,100 connections that each send half a request line and then nothing.
    let mut attackers = Vec::new();
    for _ in 0..1100 {
        let mut stream = TcpStream::connect(authority(&hub.base)).await.unwrap();
        stream
            .write_all(b"GET /api/metrics?days=7 HTT")
            .await
            .unwrap();
        attackers.push(stream);
    }
    for path in ["/api/health", "/api/metrics?days=7"] {
        let started = Instant::now();
        let (status, body) = get_json(&hub.url(path)).await;
        let took = started.elapsed();
        assert_eq!(status, 200, "{path}: {body}");
        assert!(
            took < Duration::from_secs(1),
            "{path} took {took:?} among 1,100 half-open connections"
        );
    }

    // Every half-open connection is closed: evicted to make room, or by the header timeout.
    let closed = join_all(attackers.iter_mut().map(|stream| async move {
        let mut buf = [0u8; 512];
        let deadline = Duration::from_secs(8);
        loop {
            match tokio::time::timeout(deadline, stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue, // a 408 before the close
                Err(_) => return false,
            }
        }
    }))
    .await;
    let open = closed.iter().filter(|c| !**c).count();
    assert_eq!(
        open, 0,
        "{open} half-open connections still open after the header timeout"
    );
    let (_, sources) = get_json(&hub.url("/api/sources")).await;
    assert_eq!(sources["data"]["sources"][0]["health"], "ok", "{sources}");
}

#[tokio::test]
async fn a_slow_request_head_gets_a_json_408() {
    let data = tempfile::tempdir().unwrap();
    let (hub, _sources) = demo_hub(&[], &["--header-timeout", "1s"], data.path());
    let started = Instant::now();
    let response = exchange(
        &hub.base,
        b"GET /api/health HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 408);
    assert_eq!(response.json()["error"]["code"], "request_timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn hostile_heads_and_bodies_get_json_4xx_and_the_hub_lives() {
    let data = tempfile::tempdir().unwrap();
    let (hub, _sources) = demo_hub(&[], &[], data.path());
    let limit = Duration::from_secs(10);
    let big_header = format!(
        "GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let many_headers = format!(
        "GET /api/health HTTP/1.1\r\nHost: x\r\n{}\r\n",
        "X: y\r\n".repeat(10_000)
    );
    let uri = |bytes: usize| {
        format!(
            "GET /api/metrics?client={} HTTP/1.1\r\nHost: x\r\n\r\n",
            "a".repeat(bytes)
        )
    };
    let mut raw_utf8 = b"GET /api/metrics?client=".to_vec();
    raw_utf8.extend_from_slice(&[0xff, 0xfe]);
    raw_utf8.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    let huge_body = format!(
        "POST /api/cache/clear HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}",
        50 << 20,
        "x".repeat(1 << 20)
    );
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "100 KB header",
            big_header.into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            "10,000 headers",
            many_headers.into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            "40 KB query string",
            uri(40_000).into_bytes(),
            414,
            "uri_too_long",
        ),
        (
            "1 MB query string",
            uri(1 << 20).into_bytes(),
            414,
            "uri_too_long",
        ),
        ("raw bytes that are not UTF-8", raw_utf8, 400, "bad_request"),
        (
            "encoded bytes that are not UTF-8",
            b"GET /api/metrics?days=%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "invalid_days",
        ),
        (
            "a 50 MB body to an admin endpoint",
            huge_body.into_bytes(),
            413,
            "body_too_large",
        ),
    ];
    for (what, request, status, code) in cases {
        let response = exchange(&hub.base, &request, limit).await.unwrap();
        assert_eq!(response.status, status, "{what}: {}", response.head);
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{what}"
        );
        let body = response.json();
        assert_eq!(
            (body["success"].as_bool(), body["error"]["code"].as_str()),
            (Some(false), Some(code)),
            "{what}: {body}"
        );
    }
    let (status, _) = get_json(&hub.url("/api/health")).await;
    assert_eq!(status, 200, "the hub lives");
    assert!(!hub.log_lines().iter().any(|l| l.contains("panicked")));
}

/// A JSON API that answers one summary after `delay`.
async fn slow_api(delay: Duration) -> (String, tokio::sync::oneshot::Sender<()>) {
    let app = Router::new().route(
        "/summary",
        get(move || async move {
            tokio::time::sleep(delay).await;
            Json(json!({"total_users": 5, "total_events": 9}))
        }),
    );
    serve_in_background(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_with_50_requests_in_flight_answers_every_one_and_exits_0() {
    let (api, _background) = slow_api(Duration::from_millis(1500)).await;
    let slow = format!("id: slow\nname: Slow API\nkind: rest\nconcurrency: 32\ntimeout: 10s\nconnection:\n  base_url: {api}\nqueries:\n  summary:\n    path: /summary\n");
    let sources = sources_dir(&[("demo.yaml", demo_yaml()), ("slow.yaml", slow)]);
    let data = tempfile::tempdir().unwrap();
    let args = ["--sources", sources.path().to_str().unwrap()];
    let mut hub = HubProcess::start(
        &[],
        &args,
        &[("METRICS_HUB_DATA_DIR", data.path().to_str().unwrap())],
    )
    .unwrap();
    let (status, _) = get_json(&hub.url("/api/metrics?days=30")).await;
    assert_eq!(status, 200, "warm one window");
    // 25 cold requests (a window each, so each waits on the slow API) and 25 cached ones.
    let urls: Vec<String> = (1..=25)
        .map(|days| hub.url(&format!("/api/metrics?days={days}")))
        .chain((0..25).map(|_| hub.url("/api/metrics?days=30")))
        .collect();
    let requests =
        tokio::spawn(async move {
            join_all(urls.iter().map(|url| async move {
                client().get(url).send().await.map(|r| r.status().as_u16())
            }))
            .await
        });
    tokio::time::sleep(Duration::from_millis(400)).await;
    hub.terminate();
    let statuses = requests.await.unwrap();
    let answered = statuses.iter().filter(|s| matches!(s, Ok(200))).count();
    assert_eq!(answered, 50, "{statuses:?}");
    let exit = hub.wait(Duration::from_secs(20)).unwrap();
    assert!(exit.success(), "{exit}");
    let log = hub.log_lines();
    assert!(
        log.iter()
            .any(|l| l.contains("stopped: every source cleaned up")),
        "{log:?}"
    );
}

/// A mount that is undone when dropped.
struct Mount(PathBuf);

impl Mount {
    fn new(args: &[&str], target: &Path) -> Mount {
        let status = Command::new("mount")
            .args(args)
            .arg(target)
            .status()
            .unwrap();
        assert!(status.success(), "mount {args:?} {}", target.display());
        Mount(target.to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_or_full_data_directory_is_a_clear_error_at_start() {
    let scratch = tempfile::tempdir().unwrap();
    let source = scratch.path().join("source");
    let read_only = scratch.path().join("read-only");
    let full = scratch.path().join("full");
    for dir in [&source, &read_only, &full] {
        std::fs::create_dir(dir).unwrap();
    }
    let _ro = Mount::new(
        &["--bind", "-o", "ro", source.to_str().unwrap()],
        &read_only,
    );
    let _tmpfs = Mount::new(&["-t", "tmpfs", "-o", "size=64k", "tmpfs"], &full);
    // Fill the small file system.
    let _ = std::fs::write(full.join("filler"), vec![0u8; 64 * 1024]);
    let sources = sources_dir(&[("demo.yaml", demo_yaml())]);
    for (dir, says) in [
        (&read_only, "is on a read-only file system"),
        (&full, "is full"),
    ] {
        let (status, stderr) = run_hub(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--sources",
                sources.path().to_str().unwrap(),
            ],
            &[("METRICS_HUB_DATA_DIR", dir.to_str().unwrap())],
        )
        .unwrap();
        assert!(!status.success());
        assert!(
            stderr.contains(&format!("the data directory {} {says}", dir.display())),
            "{stderr}"
        );
        assert!(
            stderr.contains("METRICS_HUB_DATA_DIR"),
            "says how to fix it: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_precompiled_plugin_is_rebuilt_and_logged_once() {
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let component = plugins_dir().join("test_trivial.wasm");
    assert!(
        component.is_file(),
        "build the plugins with plugins/build.sh"
    );
    let plugin = format!(
        "id: trivial\nname: Trivial\nkind: wasm\nconnection:\n  component: {}\n",
        component.display()
    );
    let sources = sources_dir(&[("trivial.yaml", plugin)]);
    let start = || {
        HubProcess::start(
            &[],
            &["--sources", sources.path().to_str().unwrap()],
            &[
                ("METRICS_HUB_PLUGIN_CACHE", cache.path().to_str().unwrap()),
                ("METRICS_HUB_DATA_DIR", data.path().to_str().unwrap()),
            ],
        )
        .unwrap()
    };
    let mut first = start();
    first.terminate();
    first.wait(Duration::from_secs(20)).unwrap();
    let artefact = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("the first start stored a precompiled artefact");
    let size = std::fs::metadata(&artefact).unwrap().len();
    std::fs::write(
        &artefact,
        &std::fs::read(&artefact).unwrap()[..(size / 2) as usize],
    )
    .unwrap();

    let second = start();
    let (status, body) = get_json(&second.url("/api/metrics?days=3")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["summary"]["total_users"].as_i64().unwrap() > 0);
    let warnings: Vec<String> = second
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("ignoring a precompiled plugin"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(
        std::fs::metadata(&artefact).unwrap().len(),
        size,
        "rebuilt in full"
    );
}
