//! Operating the binary: SIGHUP reloads and the log says what changed in one line,
//! `--log-format json` writes one JSON object per line with the request id on the lines
//! of a request, and `/metrics` is valid OpenMetrics (checked by the Python
//! prometheus_client parser, an independent implementation) behind the read scope once
//! tokens exist.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::process::HubProcess;
use support::sources_dir;

const ADMIN: &str = "mh_admin_token_for_the_operations_test_0123456789abcdef0123456789ab";

fn source(id: &str, sql: &str) -> String {
    format!(
        "id: {id}\nname: Source {id}\nkind: sql\nconnection:\n  driver: sqlite\n  url: \"sqlite::memory:\"\nqueries:\n  summary:\n    sql: {sql}\n"
    )
}

fn wait_for(mut ready: impl FnMut() -> bool, what: &str) {
    for _ in 0..200 {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn sighup_reloads_and_json_logs_carry_the_request_id() {
    let dir = sources_dir(&[
        ("a.yaml", source("a", "SELECT 1 AS total_users")),
        ("bad.yaml", source("bad", "SELECT * FROM no_such_table")),
    ]);
    let data = tempfile::tempdir().unwrap();
    let args = [
        "--sources",
        dir.path().to_str().unwrap(),
        "--no-watch",
        "--log-format",
        "json",
    ];
    let data_env = [("METRICS_HUB_DATA_DIR", data.path().to_str().unwrap())];
    let hub = HubProcess::start(&[], &args, &data_env).unwrap();

    std::fs::write(
        dir.path().join("b.yaml"),
        source("b", "SELECT 2 AS total_users"),
    )
    .unwrap();
    // SAFETY: kill() with the pid of a child this test spawned and has not reaped.
    unsafe { libc::kill(hub.pid() as libc::pid_t, libc::SIGHUP) };
    wait_for(
        || {
            hub.log_lines()
                .iter()
                .any(|l| l.contains("reloaded sources"))
        },
        "the reload's log line",
    );
    let client = reqwest::Client::new();
    let sources: Value = client
        .get(hub.url("/api/sources"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sources["data"]["generation"]["number"], 2);

    let answer = client
        .get(hub.url("/api/metrics?source=bad"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.headers()["x-request-id"], "trace-me-42");
    wait_for(
        || hub.log_lines().iter().any(|l| l.contains("fetch failed")),
        "the failed fetch's log line",
    );
    let lines: Vec<Value> = hub
        .log_lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let reload = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("reloaded sources")
        })
        .unwrap();
    let message = reload["fields"]["message"].as_str().unwrap();
    assert!(
        message.contains("generation 2: 1 added (b)") && message.contains("2 kept"),
        "{message}"
    );
    let failed = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("fetch failed")
        })
        .unwrap();
    let spans = failed["spans"].as_array().unwrap();
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "request" && s["id"] == "trace-me-42"),
        "{failed}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s["name"] == "source_fetch" && s["source"] == "bad"),
        "{failed}"
    );
    hub.terminate();
}

/// Parses OpenMetrics text with prometheus_client; returns `name{labels} value` lines.
fn parsed_by_python(text: &str) -> Vec<String> {
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {float(s.value)}")
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "prometheus_client rejects the exposition: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn metrics_are_valid_openmetrics_behind_the_read_scope() {
    let dir = sources_dir(&[("a.yaml", source("a", "SELECT 1 AS total_users"))]);
    let data = tempfile::tempdir().unwrap();
    let args = ["--sources", dir.path().to_str().unwrap(), "--no-watch"];
    let env = [
        ("METRICS_HUB_DATA_DIR", data.path().to_str().unwrap()),
        ("METRICS_HUB_ADMIN_TOKENS", ADMIN),
    ];
    let hub = HubProcess::start(&[], &args, &env).unwrap();
    let client = reqwest::Client::new();
    let anonymous = client.get(hub.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    for _ in 0..3 {
        let answer = client
            .get(hub.url("/api/metrics"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let scrape = client
        .get(hub.url("/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(scrape.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = scrape.text().await.unwrap();
    let samples = parsed_by_python(&text);
    let has = |expected: &str| {
        assert!(
            samples.iter().any(|s| s == expected),
            "no `{expected}` in:\n{}",
            samples.join("\n")
        );
    };
    has(r#"metrics_hub_http_requests_total{method="GET",route="/api/metrics",status="200"} 3.0"#);
    has(r#"metrics_hub_http_requests_total{method="GET",route="/metrics",status="401"} 1.0"#);
    has(r#"metrics_hub_source_upstream_queries_total{source="a"} 1.0"#);
    has(r#"metrics_hub_source_fetches_total{outcome="ok",source="a"} 1.0"#);
    has(r#"metrics_hub_source_cache_entries{source="a"} 1.0"#);
    has(r#"metrics_hub_config_generation{} 1.0"#);
    has(r#"metrics_hub_source_rows_total{source="a"} 1.0"#);
    assert!(samples
        .iter()
        .any(|s| s.starts_with("metrics_hub_build_info{version=")));
    assert!(samples.iter().any(|s| s.starts_with(
        r#"metrics_hub_http_request_duration_seconds_bucket{le="0.001",route="/api/metrics"}"#
    )));
    // Request values never become labels.
    assert!(!text.contains("sources="), "{text}");
    hub.terminate();
}
