//! The `metrics-hub` binary as users run it: validate and query.

use std::path::Path;
use std::process::Command;

fn hub() -> Command {
    Command::new(env!("CARGO_BIN_EXE_metrics-hub"))
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn validate_accepts_the_shipped_sources() {
    let output = hub()
        .arg("validate")
        .arg(repo().join("sources.d"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("(demo, sql, enabled)") && stdout.contains("(postgres, sql, disabled)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("(derived metric page_views_per_user)"),
        "the shipped metrics.d beside sources.d: {stdout}"
    );
}

#[test]
fn validate_prints_every_error_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ok.yaml"),
        std::fs::read_to_string(repo().join("sources.d/demo.yaml")).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "id: Bad_Id\nname: x\nkind: sql\nconnection:\n  driver: sqlite\n  url: x\nqueries:\n  daily:\n    sql: SELECT {{ bind(filters.region) }}\n",
    )
    .unwrap();
    let output = hub().arg("validate").arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("ok    ") && stdout.contains("(demo, sql, enabled)"),
        "{stdout}"
    );
    assert!(stdout.contains("bad.yaml:1: at /id: "), "{stdout}");
    assert!(
        stdout.contains("bad.yaml:9: at /queries/daily/sql: ") && stdout.contains("filters.region"),
        "{stdout}"
    );
}

#[test]
fn query_prints_one_sources_unified_json() {
    let data = tempfile::tempdir().unwrap();
    let output = hub()
        .args([
            "query",
            "--source",
            "demo",
            "--days",
            "3",
            "--filter",
            "event_name=page_view",
            "--sources",
        ])
        .arg(repo().join("sources.d"))
        .env("METRICS_HUB_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let data: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let summary = &data["summary"];
    assert!(summary["total_events"].as_i64().unwrap() > 0, "{data}");
    assert_eq!(
        summary["total_events"], summary["page_views"],
        "only page views were asked for: {data}"
    );
    assert_eq!(data["daily"].as_array().unwrap().len(), 4);

    let output = hub()
        .args(["query", "--source", "nope", "--sources"])
        .arg(repo().join("sources.d"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("nope"));
}

#[test]
fn serve_strict_refuses_invalid_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yaml"), "id: x\n").unwrap();
    let output = hub()
        .args(["serve", "--strict", "--listen", "127.0.0.1:0", "--sources"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--strict") && stderr.contains("bad.yaml"),
        "{stderr}"
    );
}

#[test]
fn history_backfill_verify_and_clear_the_demo() {
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = hub()
            .arg("history")
            .args(args)
            .args(["--source", "demo", "--sources"])
            .arg(repo().join("sources.d"))
            .env("METRICS_HUB_DATA_DIR", data.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code(), stdout, stderr)
    };
    let (code, stdout, stderr) = run(&["backfill", "--days", "5", "--every", "0s"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("demo: 5 of 5 settled days stored"),
        "{stdout}"
    );
    // Not a terminal: a line per tenth of the way, the last one full.
    assert!(
        stderr.contains(&format!("[{}] 5/5 days", "#".repeat(30))),
        "{stderr}"
    );
    assert!(data.path().join("history.sqlite").is_file());
    let (code, stdout, _) = run(&["verify", "--days", "5", "--sample", "2"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("demo: 2 stored day(s) checked, 0 difference(s)"),
        "{stdout}"
    );
    let (code, stdout, _) = run(&["clear"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("demo: 5 stored day(s) deleted"), "{stdout}");
    let (code, _, stderr) = run(&["backfill", "--days", "500"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("beyond the source's retention (400d)"),
        "{stderr}"
    );
}
