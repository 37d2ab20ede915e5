//! API tokens, scopes, CORS and a trusted proxy, end to end through the binary: tokens
//! from the environment and from a tokens file made with `metrics-hub token new`, every
//! admin endpoint refused without the right token, and no token ever in the log.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::process::{run_hub, HubProcess};
use support::{demo_yaml, sources_dir};

const READ: &str = "mh_read_token_for_the_access_test_0123456789abcdef0123456789abcdef";

/// `metrics-hub token new --scope admin --name NAME`: (token, tokens-file line).
fn new_admin_token(name: &str) -> (String, String) {
    let output = std::process::Command::new(support::process::hub_binary())
        .args(["token", "new", "--scope", "admin", "--name", name])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let token = text
        .split_whitespace()
        .find(|w| w.starts_with("mh_"))
        .unwrap()
        .to_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("admin "))
        .unwrap()
        .to_owned();
    assert!(
        !line.contains(&token),
        "the file line holds the hash, not the token: {text}"
    );
    (token, line)
}

struct Guarded {
    hub: HubProcess,
    admin: String,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn guarded(extra: &[&str]) -> Guarded {
    let (admin, line) = new_admin_token("ci");
    let sources = sources_dir(&[
        ("demo.yaml", demo_yaml()),
        ("tokens", format!("# made by token new\n{line}\n")),
    ]);
    let data = tempfile::tempdir().unwrap();
    let tokens = sources.path().join("tokens");
    let mut args = vec![
        "--sources",
        sources.path().to_str().unwrap(),
        "--tokens-file",
        tokens.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let hub = HubProcess::start(
        &[],
        &args,
        &[
            ("METRICS_HUB_READ_TOKENS", READ),
            ("METRICS_HUB_DATA_DIR", data.path().to_str().unwrap()),
        ],
    )
    .unwrap();
    Guarded {
        hub,
        admin,
        _dirs: (sources, data),
    }
}

async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().request(method.parse().unwrap(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn every_admin_endpoint_needs_an_admin_token() {
    let setup = guarded(&[]);
    let hub = &setup.hub;
    let wrong = format!("mh_{}", "0".repeat(64));
    assert_eq!(
        wrong.len(),
        setup.admin.len(),
        "a wrong token of the right length"
    );
    for (method, path) in [
        ("POST", "/api/cache/clear"),
        ("POST", "/api/sources/demo/check"),
    ] {
        let url = hub.url(path);
        for (token, status, code) in [
            (None, 401, "missing_token"),
            (Some(READ), 403, "insufficient_scope"),
            (Some(wrong.as_str()), 401, "invalid_token"),
        ] {
            let (got, headers, body) = call(method, &url, token, &[]).await;
            assert_eq!(
                (got, body["error"]["code"].as_str()),
                (status, Some(code)),
                "{path} with {token:?}: {body}"
            );
            let challenge = headers["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.starts_with("Bearer realm=\"metrics-hub\""),
                "{challenge}"
            );
        }
        let (got, _, body) = call(method, &url, Some(&setup.admin), &[]).await;
        assert_eq!(got, 200, "{path} with the admin token: {body}");
    }
}

#[tokio::test]
async fn reads_need_a_token_of_either_scope_and_pages_load_without() {
    let setup = guarded(&[]);
    let hub = &setup.hub;
    for path in ["/api/metrics?days=3", "/api/sources", "/api/health"] {
        let (status, _, body) = call("GET", &hub.url(path), None, &[]).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("missing_token")),
            "{path}"
        );
        for token in [READ, setup.admin.as_str()] {
            let (status, _, body) = call("GET", &hub.url(path), Some(token), &[]).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
    }
    let page = reqwest::get(hub.url("/")).await.unwrap();
    assert_eq!(
        page.status(),
        200,
        "the page's static shell holds no data and asks for a token"
    );
    let log = hub.log_lines().join("\n");
    assert!(
        !log.contains(READ) && !log.contains(&setup.admin),
        "a token reached the log"
    );
}

#[tokio::test]
async fn public_health_and_the_admin_rate_limit() {
    let setup = guarded(&["--public-health", "--admin-rate", "1/s,burst=3"]);
    let hub = &setup.hub;
    let (status, _, _) = call("GET", &hub.url("/api/health"), None, &[]).await;
    assert_eq!(status, 200, "--public-health");
    let (status, _, _) = call("GET", &hub.url("/api/sources"), None, &[]).await;
    assert_eq!(status, 401, "only health is public");
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, headers, body) = call(
            "POST",
            &hub.url("/api/cache/clear"),
            Some(&setup.admin),
            &[],
        )
        .await;
        statuses.push(status);
        if status == 429 {
            assert_eq!(body["error"]["code"], "rate_limited");
            assert!(headers.contains_key("retry-after"));
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    // Another caller has its own bucket: a read token is refused for scope, not rate.
    let (status, _, _) = call("POST", &hub.url("/api/cache/clear"), Some(READ), &[]).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn cors_answers_preflights_for_listed_origins_only() {
    let setup = guarded(&["--cors-origin", "https://dash.example.com"]);
    let url = setup.hub.url("/api/metrics?days=3");
    let preflight = [
        ("origin", "https://dash.example.com"),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "authorization"),
    ];
    let (status, headers, _) = call("OPTIONS", &url, None, &preflight).await;
    assert!((200..300).contains(&status), "preflight {status}");
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://dash.example.com"
    );
    assert!(
        !headers.contains_key("access-control-allow-credentials"),
        "never credentials"
    );
    let (status, headers, _) = call(
        "GET",
        &url,
        Some(READ),
        &[("origin", "https://dash.example.com")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://dash.example.com"
    );
    let (_, headers, _) = call(
        "GET",
        &url,
        Some(READ),
        &[("origin", "https://evil.example.com")],
    )
    .await;
    assert!(!headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn a_trusted_proxy_names_users_and_others_cannot() {
    let setup = guarded(&[
        "--trust-proxy-header",
        "X-Forwarded-User",
        "--trusted-proxy",
        "127.0.0.1/32",
        "--proxy-admin",
        "alice",
    ]);
    let hub = &setup.hub;
    let clear = hub.url("/api/cache/clear");
    let (status, _, _) = call("POST", &clear, None, &[("x-forwarded-user", "alice")]).await;
    assert_eq!(status, 200, "alice is an admin behind the proxy");
    let (status, _, body) = call("POST", &clear, None, &[("x-forwarded-user", "bob")]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let (status, _, _) = call(
        "GET",
        &hub.url("/api/sources"),
        None,
        &[("x-forwarded-user", "bob")],
    )
    .await;
    assert_eq!(status, 200, "bob reads");

    let untrusted = guarded(&[
        "--trust-proxy-header",
        "X-Forwarded-User",
        "--trusted-proxy",
        "10.0.0.0/8",
    ]);
    let (status, _, _) = call(
        "GET",
        &untrusted.hub.url("/api/sources"),
        None,
        &[("x-forwarded-user", "alice")],
    )
    .await;
    assert_eq!(
        status, 401,
        "the header from an untrusted address counts for nothing"
    );
}

#[test]
fn a_hub_off_loopback_refuses_to_start_without_an_admin_token() {
    let sources = sources_dir(&[("demo.yaml", demo_yaml())]);
    // It refuses before it binds, so nothing listens on the wildcard address.
    let (status, stderr) = run_hub(
        &[
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--sources",
            sources.path().to_str().unwrap(),
        ],
        &[],
    )
    .unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("needs an admin token") && stderr.contains("--allow-anonymous-read"),
        "{stderr}"
    );
}
