//! End-to-end: `kind: rest` sources served by the hub against the local JSON API stand-in,
//! through every auth and pagination style and the known traps; numbers are checked
//! against expectations computed here from the stand-in's generated events, and what the
//! stand-in received is checked for encoding and credentials.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use metrics_hub::hub::HubSettings;
use metrics_hub::model::QueryParams;
use metrics_hub_tests::expected::{expected, Narrow};
use metrics_hub_tests::rest_standin::{self, Event, RestStandIn};
use metrics_hub_tests::{details, get, repo_root, sources_dir, TestHub};
use serde_json::{json, Value};

const FROM: &str = "2026-01-03";
const TO: &str = "2026-01-20";
/// Events served by the stand-in: two per day over 30 days, so 36 fall in FROM..=TO.
const EVENTS: u64 = 60;

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// The aggregation every raw-record query here declares.
const AGGREGATE: &str = "    aggregate:
      group_by: { field: created_at }
      fields:
        events: { op: count }
        users: { op: count_distinct, field: contact.id }
        revenue: { op: sum, field: amount }
";

/// A source file: `connection` and `queries` are YAML blocks indented by two spaces.
fn source(id: &str, base: &str, connection: &str, queries: &str) -> String {
    format!(
        "id: {id}\nname: REST {id}\nkind: rest\ntimeout: 10s\ncache:\n  ttl: 0s\nconnection:\n  base_url: {base}\n  retry_backoff: 10ms\n{connection}filters:\n  client: {{ type: string, max_length: 100 }}\nqueries:\n{queries}"
    )
}

/// A daily query over raw events at `path`, windowed and filtered in the query string.
fn daily(path: &str, extra_query: &str, records: &str, pagination: &str) -> String {
    format!(
        "  daily:\n    path: {path}\n    query:\n      from: \"{{{{ start_date }}}}\"\n      to: \"{{{{ end_date }}}}\"\n      client: \"{{{{ filters.client }}}}\"\n{extra_query}    records: {records}\n    pagination: {pagination}\n{AGGREGATE}"
    )
}

/// Daily rows computed from the events directly: per UTC day, events, distinct contacts
/// and the sum of amounts.
fn expected_daily<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    from: &str,
    to: &str,
    client: Option<&str>,
) -> Value {
    let (from, to) = (date(from), date(to));
    let mut days: BTreeMap<NaiveDate, (u64, BTreeSet<&str>, i64)> = BTreeMap::new();
    for e in events {
        if e.day < from || e.day > to || client.is_some_and(|c| c != e.client) {
            continue;
        }
        let day = days.entry(e.day).or_default();
        day.0 += 1;
        day.1.insert(&e.contact);
        day.2 += e.amount;
    }
    Value::Array(
        days.into_iter()
            .map(|(day, (events, users, revenue))| {
                json!({"date": day.to_string(), "events": events, "users": users.len(), "revenue": revenue})
            })
            .collect(),
    )
}

struct Setup {
    hub: TestHub,
    api: RestStandIn,
    _dir: tempfile::TempDir,
}

async fn setup(api: RestStandIn, files: Vec<(String, String)>, env: &[(&str, &str)]) -> Setup {
    let files: Vec<(&str, String)> = files.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let dir = sources_dir(&files).unwrap();
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let loaded = metrics_hub::load::load_dir_with(dir.path(), &|n| env.get(n).cloned()).unwrap();
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "files that failed to load: {errors:#?}");
    let hub = TestHub::start(dir.path(), &env, HubSettings::default())
        .await
        .unwrap();
    Setup {
        hub,
        api,
        _dir: dir,
    }
}

fn file(id: &str, text: String) -> (String, String) {
    (format!("{id}.yaml"), text)
}

/// The window's metrics of one source.
async fn metrics_of(hub: &TestHub, id: &str) -> Value {
    let (status, body) = get(
        hub,
        &format!("/api/metrics?source={id}&start_date={FROM}&end_date={TO}"),
    )
    .await;
    assert!(status == 200 || status == 503, "{status}: {body}");
    body
}

fn window() -> QueryParams {
    QueryParams::between(date(FROM), date(TO))
}

#[tokio::test]
async fn every_auth_style_reaches_the_api_with_its_credentials() {
    let api = RestStandIn::start(EVENTS).await.unwrap();
    let base = api.base().to_owned();
    let cursor = "{ type: cursor, cursor_path: paging.next.after, param: after }";
    let limit = "      limit: 7\n";
    let token_url = format!("{base}/oauth/token");
    let files = vec![
        file("key-header", source("key-header", &base,
            "  auth: { type: api_key, in: header, name: X-Api-Key, value: \"${API_KEY}\" }\n",
            &daily("/key-header/cursor", limit, "data.items", cursor))),
        file("key-query", source("key-query", &base,
            "  auth: { type: api_key, in: query, name: api_key, value: \"${API_KEY}\" }\n",
            &daily("/key-query/cursor", limit, "data.items", cursor))),
        file("bearer", source("bearer", &base,
            "  auth: { type: bearer, token: \"${TOKEN}\" }\n",
            &daily("/bearer/cursor", limit, "data.items", cursor))),
        file("basic", source("basic", &base,
            "  auth: { type: basic, username: hub, password: \"${PASSWORD}\" }\n",
            &daily("/basic/cursor", limit, "data.items", cursor))),
        file("oauth", source("oauth", &base,
            &format!("  auth: {{ type: oauth2, token_url: \"{token_url}\", client_id: hub-client, client_secret: \"${{CLIENT_SECRET}}\" }}\n"),
            &daily("/oauth/cursor", limit, "data.items", cursor))),
        file("oauth-body", source("oauth-body", &base,
            &format!("  auth: {{ type: oauth2, token_url: \"{token_url}\", client_id: hub-client, client_secret: \"${{CLIENT_SECRET}}\", client_auth: body, scope: read }}\n"),
            &daily("/oauth/cursor", limit, "data.items", cursor))),
        file("wrong-token", source("wrong-token", &base,
            "  auth: { type: bearer, token: \"${WRONG_TOKEN}\" }\n",
            &daily("/bearer/cursor", limit, "data.items", cursor))),
    ];
    let env = [
        ("API_KEY", rest_standin::API_KEY),
        ("TOKEN", rest_standin::BEARER_TOKEN),
        ("PASSWORD", rest_standin::BASIC_PASSWORD),
        ("CLIENT_SECRET", rest_standin::CLIENT_SECRET),
        ("WRONG_TOKEN", "guessed-token-123"),
    ];
    let s = setup(api, files, &env).await;
    let expected = expected_daily(s.api.events(), FROM, TO, None);
    for id in [
        "key-header",
        "key-query",
        "bearer",
        "basic",
        "oauth",
        "oauth-body",
    ] {
        let body = metrics_of(&s.hub, id).await;
        assert_eq!(details(&body, id)["status"], "ok", "{id}: {body}");
        assert_eq!(body["data"]["dailyMetrics"], expected, "{id}");
    }
    // 36 records at 7 per page: 6 pages, each with the source's credentials.
    let key_query = s.api.requests_to("/key-query/");
    assert_eq!(key_query.len(), 6);
    assert!(key_query
        .iter()
        .all(|r| r.param("api_key") == Some(rest_standin::API_KEY)));
    let key_header = s.api.requests_to("/key-header/");
    assert!(key_header
        .iter()
        .all(|r| r.header("x-api-key") == Some(rest_standin::API_KEY)
            && r.param("api_key").is_none()));
    // One token per OAuth source, reused for every page.
    assert_eq!(s.api.tokens_issued(), 2);
    let token_requests = s.api.requests_to("/oauth/token");
    assert_eq!(token_requests.len(), 2);
    let in_body = token_requests
        .iter()
        .find(|r| r.body.contains("client_id"))
        .unwrap();
    assert!(in_body.body.contains("scope=read") && in_body.header("authorization").is_none());

    let body = metrics_of(&s.hub, "wrong-token").await;
    let wrong = details(&body, "wrong-token");
    assert_eq!(wrong["status"], "error");
    assert_eq!(wrong["error"]["code"], "auth_failed");

    // No credential shows up in any answer.
    let (_, sources) = get(&s.hub, "/api/sources").await;
    let (_, all) = get(
        &s.hub,
        &format!("/api/metrics?start_date={FROM}&end_date={TO}"),
    )
    .await;
    let shown = format!("{sources}{all}{body}");
    for (_, secret) in env {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn every_pagination_style_reads_every_record_once() {
    let api = RestStandIn::start(EVENTS).await.unwrap();
    let base = api.base().to_owned();
    let hidden_too = "      hide: 1\n";
    let files = vec![
        // Cursor in the query; 36 records at 6 per page: the last page is exactly full and
        // comes with a cursor, so a seventh, empty page ends it.
        file("cursor", source("cursor", &base, "",
            &daily("/open/cursor", "      limit: 6\n", "data.items", "{ type: cursor, cursor_path: paging.next.after, param: after }"))),
        // Cursor, window and client in a POST body.
        file("cursor-body", source("cursor-body", &base, "", &format!(
            "  daily:\n    method: POST\n    path: /open/cursor-body\n    body:\n      filter: {{ from: \"{{{{ start_date }}}}\", to: \"{{{{ end_date }}}}\", client: \"{{{{ filters.client }}}}\" }}\n      page: {{ size: 8 }}\n    records: data.items\n    pagination: {{ type: cursor, cursor_path: paging.next.after, param: page.after, in: body }}\n{AGGREGATE}"))),
        file("offset-total", source("offset-total", &base, "",
            &daily("/open/offset", "      src: offset-total\n", "results", "{ type: offset, limit: 6, total_path: total }"))),
        file("offset-no-total", source("offset-no-total", &base, "",
            &daily("/open/offset", "      src: offset-no-total\n      no_total: 1\n", "results", "{ type: offset, limit: 6 }"))),
        // The server caps pages at 4 although 10 are asked for: short pages, not the last.
        file("offset-capped", source("offset-capped", &base, "",
            &daily("/open/offset", "      src: offset-capped\n      cap: 4\n      no_total: 1\n", "results", "{ type: offset, limit: 10 }"))),
        file("page", source("page", &base, "",
            &daily("/open/page", "", "items", "{ type: page, page_size_param: per_page, page_size: 5, total_pages_path: meta.total_pages }"))),
        file("page-hidden", source("page-hidden", &base, "",
            &daily("/open/page", hidden_too, "items", "{ type: page, page_size_param: per_page, page_size: 5, total_pages_path: meta.total_pages }"))),
        file("next-url", source("next-url", &base, "",
            &daily("/open/next-url", "      per_page: 5\n", "results", "{ type: next_url, next_path: links.next }"))),
        file("next-url-absolute", source("next-url-absolute", &base, "",
            &daily("/open/next-url", "      per_page: 5\n      absolute: 1\n", "results", "{ type: next_url, next_path: links.next }"))),
        file("link", source("link", &base, "",
            &daily("/open/link", "      per_page: 5\n", ".", "{ type: link_header }"))),
        // An API that aggregates already: rows mapped by name, counts as numeric strings.
        file("stats", source("stats", &base, "", "  daily:\n    path: /open/stats\n    query: { from: \"{{ start_date }}\", to: \"{{ end_date }}\", client: \"{{ filters.client }}\" }\n    records: days\nmappings:\n  daily:\n    date: day\n    users: visitors\n    events: hits\n")),
    ];
    let s = setup(api, files, &[]).await;
    let all = expected_daily(s.api.events(), FROM, TO, None);
    let shown: Vec<Event> = s
        .api
        .events()
        .iter()
        .filter(|e| !rest_standin::hidden(e))
        .cloned()
        .collect();
    let without_hidden = expected_daily(&shown, FROM, TO, None);
    let requests = |id: &str| {
        s.api
            .requests()
            .iter()
            .filter(|r| r.param("src") == Some(id))
            .count()
    };
    for id in [
        "cursor",
        "cursor-body",
        "offset-total",
        "offset-no-total",
        "offset-capped",
        "page",
        "next-url",
        "next-url-absolute",
        "link",
    ] {
        let body = metrics_of(&s.hub, id).await;
        assert_eq!(details(&body, id)["status"], "ok", "{id}: {body}");
        assert_eq!(details(&body, id)["warnings"], json!([]), "{id}");
        assert_eq!(body["data"]["dailyMetrics"], all, "{id}");
    }
    let body = metrics_of(&s.hub, "page-hidden").await;
    assert_eq!(body["data"]["dailyMetrics"], without_hidden);
    let stats = metrics_of(&s.hub, "stats").await;
    let mut no_revenue = all.clone();
    for row in no_revenue.as_array_mut().unwrap() {
        row.as_object_mut().unwrap().remove("revenue");
    }
    assert_eq!(stats["data"]["dailyMetrics"], no_revenue);

    let cursor_pages = s
        .api
        .requests()
        .iter()
        .filter(|r| r.path == "/open/cursor")
        .count();
    assert_eq!(cursor_pages, 7, "six full pages, then an empty one");
    assert_eq!(s.api.requests_to("/open/cursor-body").len(), 5); // 36 at 8: 4 full, 1 short
    assert_eq!(
        requests("offset-total"),
        6,
        "the reported total saves the empty page"
    );
    assert_eq!(requests("offset-no-total"), 7);
    assert_eq!(
        requests("offset-capped"),
        10,
        "9 capped pages, then an empty one"
    );
    let offsets: Vec<String> = s
        .api
        .requests()
        .iter()
        .filter(|r| r.param("src") == Some("offset-capped"))
        .filter_map(|r| r.param("offset").map(str::to_owned))
        .collect();
    assert_eq!(
        offsets,
        ["0", "4", "8", "12", "16", "20", "24", "28", "32", "36"]
    );
    let pages = s.api.requests_to("/open/page");
    assert_eq!(
        pages.iter().filter(|r| r.param("hide").is_none()).count(),
        8
    );
    assert_eq!(
        pages.iter().filter(|r| r.param("hide").is_some()).count(),
        8,
        "short pages do not stop paging"
    );
    let cursor_body = s.api.requests_to("/open/cursor-body");
    let second: Value = serde_json::from_str(&cursor_body[1].body).unwrap();
    assert_eq!(second["page"], json!({"size": 8, "after": "c8"}));
    assert_eq!(second["filter"]["from"], FROM);
    assert_eq!(s.api.requests_to("/open/next-url").len(), 16);
    assert_eq!(s.api.requests_to("/open/link").len(), 8);
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn endless_and_looping_apis_stop_with_a_warning() {
    let api = RestStandIn::start(EVENTS).await.unwrap();
    let base = api.base().to_owned();
    let files = vec![
        file(
            "endless",
            source(
                "endless",
                &base,
                "",
                &daily(
                    "/open/endless",
                    "      limit: 4\n",
                    "data.items",
                    "{ type: cursor, cursor_path: paging.next.after, param: after, max_pages: 5 }",
                ),
            ),
        ),
        file(
            "looping",
            source(
                "looping",
                &base,
                "",
                &daily(
                    "/open/loop",
                    "",
                    "data.items",
                    "{ type: cursor, cursor_path: paging.next.after, param: after }",
                ),
            ),
        ),
    ];
    let s = setup(api, files, &[]).await;
    let body = metrics_of(&s.hub, "endless").await;
    let endless = details(&body, "endless");
    assert_eq!(endless["status"], "ok", "{body}");
    let warning = endless["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("`daily`") && warning.contains("max_pages") && warning.contains("5 pages"),
        "{warning}"
    );
    assert_eq!(s.api.requests_to("/open/endless").len(), 5);

    let body = metrics_of(&s.hub, "looping").await;
    let warning = details(&body, "looping")["warnings"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(warning.contains("a cursor it had sent before"), "{warning}");
    assert_eq!(s.api.requests_to("/open/loop").len(), 2);
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn oauth_tokens_are_refreshed_once_on_401_and_endpoint_errors_are_clear() {
    let api = RestStandIn::start(EVENTS).await.unwrap();
    let base = api.base().to_owned();
    let oauth = |token_query: &str| {
        format!("  auth: {{ type: oauth2, token_url: \"{base}/oauth/token{token_query}\", client_id: hub-client, client_secret: \"${{CLIENT_SECRET}}\" }}\n")
    };
    let cursor = "{ type: cursor, cursor_path: paging.next.after, param: after }";
    let files = vec![
        // Each token works for 3 requests: it expires mid-pagination, twice.
        file(
            "short-lived",
            source(
                "short-lived",
                &base,
                &oauth("?uses=3"),
                &daily(
                    "/oauth/cursor",
                    "      limit: 5\n      src: short-lived\n",
                    "data.items",
                    cursor,
                ),
            ),
        ),
        file(
            "refused",
            source(
                "refused",
                &base,
                &oauth("?broken=1"),
                &daily(
                    "/oauth/cursor",
                    "      src: refused\n",
                    "data.items",
                    cursor,
                ),
            ),
        ),
        file(
            "rejected",
            source(
                "rejected",
                &base,
                &oauth("?reject=1"),
                &daily(
                    "/oauth/cursor",
                    "      src: rejected\n",
                    "data.items",
                    cursor,
                ),
            ),
        ),
    ];
    let s = setup(
        api,
        files,
        &[("CLIENT_SECRET", rest_standin::CLIENT_SECRET)],
    )
    .await;

    let body = metrics_of(&s.hub, "short-lived").await;
    assert_eq!(details(&body, "short-lived")["status"], "ok", "{body}");
    assert_eq!(
        body["data"]["dailyMetrics"],
        expected_daily(s.api.events(), FROM, TO, None)
    );
    // 36 records at 5 per page: 8 pages, served by 3 tokens with 2 refusals in between.
    let api_requests = s
        .api
        .requests()
        .iter()
        .filter(|r| r.param("src") == Some("short-lived"))
        .count();
    assert_eq!((s.api.tokens_issued(), api_requests), (3, 10));

    let issued = s.api.tokens_issued();
    let err = s
        .hub
        .hub
        .query_source("refused", &window())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("authentication failed") && err.contains("freshly issued token"),
        "{err}"
    );
    assert_eq!(
        s.api.tokens_issued(),
        issued + 2,
        "one token, then exactly one refresh"
    );

    let err = s
        .hub
        .hub
        .query_source("rejected", &window())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("token endpoint")
            && err.contains("invalid_client")
            && err.contains("client authentication failed"),
        "{err}"
    );
    assert!(!err.contains(rest_standin::CLIENT_SECRET));
    let body = metrics_of(&s.hub, "rejected").await;
    assert_eq!(details(&body, "rejected")["error"]["code"], "auth_failed");
    assert!(!body.to_string().contains(rest_standin::CLIENT_SECRET));
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn tokens_are_renewed_before_they_expire() {
    let api = RestStandIn::start(EVENTS).await.unwrap();
    let base = api.base().to_owned();
    let files = vec![file("expiring", source("expiring", &base,
        &format!("  auth: {{ type: oauth2, token_url: \"{base}/oauth/token?expires_in=3\", client_id: hub-client, client_secret: \"${{CLIENT_SECRET}}\" }}\n"),
        "  summary:\n    path: /oauth/stats-summary\n    records: data\n"))];
    let s = setup(
        api,
        files,
        &[("CLIENT_SECRET", rest_standin::CLIENT_SECRET)],
    )
    .await;
    s.hub.hub.query_source("expiring", &window()).await.unwrap();
    s.hub.hub.query_source("expiring", &window()).await.unwrap();
    assert_eq!(s.api.tokens_issued(), 1, "a fresh token is reused");
    // Fresh for 2.7 s (a tenth of the lifetime is kept as margin); the server would still
    // take the old token at 2.8 s, so a new one here is renewal ahead of expiry.
    tokio::time::sleep(Duration::from_millis(2800)).await;
    s.hub.hub.query_source("expiring", &window()).await.unwrap();
    assert_eq!(s.api.tokens_issued(), 2);
    // Renewed ahead of expiry: the API never had to refuse one.
    assert_eq!(s.api.requests_to("/oauth/stats-summary").len(), 3);
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn retries_honour_retry_after_within_the_deadline() {
    let api = RestStandIn::start(EVENTS).await.unwrap();
    let base = api.base().to_owned();
    let cursor = "{ type: cursor, cursor_path: paging.next.after, param: after }";
    // Faults on the second page (cursor position 10).
    let faulty = |id: &str, fault: &str| {
        file(
            id,
            source(
                id,
                &base,
                "  retries: 2\n",
                &daily(
                    "/open/cursor",
                    &format!("      src: {id}\n      fault: \"{fault}\"\n      fault_at: 10\n"),
                    "data.items",
                    cursor,
                ),
            ),
        )
    };
    let mut files = vec![
        faulty("seconds", "429s"),
        faulty("http-date", "429d"),
        faulty("unavailable", "503"),
        faulty("broken", "500"),
    ];
    files.push(file(
        "later",
        source(
            "later",
            &base,
            "  retries: 2\n",
            &daily(
                "/open/cursor",
                "      src: later\n      fault: 429long\n",
                "data.items",
                cursor,
            ),
        )
        .replace("timeout: 10s", "timeout: 3s"),
    ));
    let s = setup(api, files, &[]).await;
    let expected = expected_daily(s.api.events(), FROM, TO, None);
    let requests = |id: &str| {
        s.api
            .requests()
            .iter()
            .filter(|r| r.param("src") == Some(id))
            .count()
    };

    for (id, at_least) in [("seconds", 1000), ("http-date", 900), ("unavailable", 0)] {
        let started = Instant::now();
        let body = metrics_of(&s.hub, id).await;
        let took = started.elapsed();
        assert_eq!(details(&body, id)["status"], "ok", "{id}: {body}");
        assert_eq!(body["data"]["dailyMetrics"], expected, "{id}");
        assert!(
            took >= Duration::from_millis(at_least),
            "{id} did not wait: {took:?}"
        );
        // 36 records at 10 per page: 4 pages, one of them asked twice.
        assert_eq!(requests(id), 5, "{id}");
    }

    let body = metrics_of(&s.hub, "broken").await;
    let broken = details(&body, "broken");
    assert_eq!(broken["error"]["code"], "upstream_error", "{body}");
    assert_eq!(
        requests("broken"),
        1 + 3,
        "the first page, then the second three times"
    );

    // Retry-After beyond the source's deadline: give up at once instead of waiting it out.
    let started = Instant::now();
    let body = metrics_of(&s.hub, "later").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let later = details(&body, "later");
    assert_eq!(later["error"]["code"], "rate_limited", "{body}");
    assert!(later["error"]["message"].as_str().unwrap().contains("3600"));
    assert_eq!(requests("later"), 1);
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_missing_and_oversized_answers_are_errors_naming_the_problem() {
    let api = RestStandIn::start(EVENTS).await.unwrap();
    let base = api.base().to_owned();
    let cursor = "{ type: cursor, cursor_path: paging.next.after, param: after }";
    let files = vec![
        file(
            "malformed",
            source(
                "malformed",
                &base,
                "",
                &daily(
                    "/open/cursor",
                    "      fault: malformed\n",
                    "data.items",
                    cursor,
                ),
            ),
        ),
        file(
            "missing",
            source(
                "missing",
                &base,
                "",
                &daily("/open/cursor", "", "data.rows", cursor),
            ),
        ),
        file(
            "oversized",
            source(
                "oversized",
                &base,
                "  max_response_bytes: 1MiB\n",
                &daily(
                    "/open/cursor",
                    "      fault: oversized\n",
                    "data.items",
                    cursor,
                ),
            ),
        ),
    ];
    let s = setup(api, files, &[]).await;
    let cases = [
        ("malformed", "bad_response", "not valid JSON"),
        ("missing", "bad_response", "`data.rows`"),
        ("oversized", "response_too_large", "1048576"),
    ];
    for (id, code, message) in cases {
        let body = metrics_of(&s.hub, id).await;
        let d = details(&body, id);
        assert_eq!(d["error"]["code"], code, "{id}: {body}");
        let shown = d["error"]["message"].as_str().unwrap();
        assert!(shown.contains(message), "{id}: {shown}");
    }
    let err = s
        .hub
        .hub
        .query_source("missing", &window())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`daily` page 1: the answer has no `data.rows`"),
        "{err}"
    );
    s.hub.stop().await.unwrap();
}

#[tokio::test]
async fn hostile_filter_values_arrive_encoded_for_where_they_land() {
    let api = RestStandIn::start(EVENTS).await.unwrap();
    let base = api.base().to_owned();
    let queries = "  daily:
    path: /open/echo/{{ filters.client | default('all') }}/daily
    query: { client: \"{{ filters.client }}\", from: \"{{ start_date }}\" }
    headers: { X-Client: \"{{ filters.client }}\" }
    records: items
  features:
    method: POST
    path: /open/echo/search
    body:
      filter: { client: \"{{ filters.client }}\", label: \"client {{ filters.client | default('-') }}\" }
      limit: 10
    records: items
";
    let s = setup(
        api,
        vec![file("hostile", source("hostile", &base, "", queries))],
        &[],
    )
    .await;
    let hostile = "acme/../admin?x=1&y=2#frag \"q\" %41 ü";
    let encoded: String = form_urlencoded::byte_serialize(hostile.as_bytes()).collect();
    let (status, body) = get(
        &s.hub,
        &format!("/api/metrics?source=hostile&start_date={FROM}&end_date={TO}&client={encoded}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(details(&body, "hostile")["status"], "ok", "{body}");

    let sent = s.api.requests_to("/open/echo/");
    let fetched = sent.iter().find(|r| r.method == "GET").unwrap();
    assert_eq!(
        fetched.path,
        "/open/echo/acme%2F..%2Fadmin%3Fx%3D1%26y%3D2%23frag%20%22q%22%20%2541%20%C3%BC/daily"
    );
    assert_eq!(fetched.param("client"), Some(hostile));
    assert_eq!(fetched.param("from"), Some(FROM));
    assert!(
        fetched.param("y").is_none() && fetched.param("admin").is_none(),
        "{:?}",
        fetched.query
    );
    assert!(
        !fetched.uri.contains('#') && !fetched.uri.contains(' '),
        "{}",
        fetched.uri
    );
    assert_eq!(fetched.header("x-client"), Some(hostile));
    let post = sent.iter().find(|r| r.method == "POST").unwrap();
    let sent_body: Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(
        sent_body,
        json!({"filter": {"client": hostile, "label": format!("client {hostile}")}, "limit": 10})
    );
    assert_eq!(post.header("content-type"), Some("application/json"));

    // A line break never reaches a header: the hub refuses the value up front.
    let before = s.api.requests().len();
    let (status, _) = get_status(
        &s.hub,
        "/api/metrics?source=hostile&client=a%0D%0AX-Evil:%201",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(s.api.requests().len(), before);

    // Without the filter, the optional values are left out rather than sent empty.
    let (_, _) = get(
        &s.hub,
        &format!("/api/metrics?source=hostile&start_date={FROM}&end_date={FROM}"),
    )
    .await;
    let last_get = s
        .api
        .requests_to("/open/echo/")
        .into_iter()
        .rfind(|r| r.method == "GET")
        .unwrap();
    assert_eq!(last_get.path, "/open/echo/all/daily");
    assert!(last_get.param("client").is_none() && last_get.header("x-client").is_none());
    s.hub.stop().await.unwrap();
}

async fn get_status(hub: &TestHub, path: &str) -> (u16, String) {
    let response = reqwest::get(hub.url(path)).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_rest_source_merges_with_the_sqlite_demo() {
    let today = Utc::now().date_naive();
    let first = today - chrono::Days::new(rest_standin::DAYS - 1);
    let api = RestStandIn::start_from(first, 120).await.unwrap();
    let base = api.base().to_owned();
    let rest = source("crm", &base, "  auth: { type: bearer, token: \"${CRM_TOKEN}\" }\n",
        "  summary:\n    path: /bearer/stats-summary\n    query: { from: \"{{ start_date }}\", to: \"{{ end_date }}\", client: \"{{ filters.client }}\" }\n    records: data\n  daily:\n    path: /bearer/cursor\n    query: { from: \"{{ start_date }}\", to: \"{{ end_date }}\", client: \"{{ filters.client }}\", limit: 25 }\n    records: data.items\n    pagination: { type: cursor, cursor_path: paging.next.after, param: after }\n    aggregate:\n      group_by: { field: created_at }\n      fields:\n        events: { op: count }\n        users: { op: count_distinct, field: contact.id }\nmappings:\n  summary:\n    total_users: unique_contacts\n    total_events: deals\n    active_clients: companies\n");
    let demo = std::fs::read_to_string(repo_root().join("sources.d/demo.yaml")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let s = setup(
        api,
        vec![("demo.yaml".to_owned(), demo), file("crm", rest)],
        &[
            ("CRM_TOKEN", rest_standin::BEARER_TOKEN),
            ("METRICS_HUB_DATA_DIR", &data_dir),
        ],
    )
    .await;
    let (from, to) = (today - chrono::Days::new(20), today - chrono::Days::new(2));
    let (status, body) = get(
        &s.hub,
        &format!("/api/metrics?start_date={from}&end_date={to}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["metadata"]["sources"], json!(["crm", "demo"]));

    // The demo's numbers from its generated events, plus the stand-in's from its own.
    let mut want = expected(
        &metrics_hub::kinds::sql::demo::generate(today),
        from,
        to,
        &Narrow::default(),
        1,
    );
    let in_window: Vec<&Event> = s
        .api
        .events()
        .iter()
        .filter(|e| e.day >= from && e.day <= to)
        .collect();
    let contacts: BTreeSet<&str> = in_window.iter().map(|e| e.contact.as_str()).collect();
    let clients: BTreeSet<&str> = in_window.iter().map(|e| e.client).collect();
    let add = |value: &mut Value, n: usize| *value = json!(value.as_u64().unwrap() + n as u64);
    add(&mut want["summary"]["total_users"], contacts.len());
    add(&mut want["summary"]["total_events"], in_window.len());
    add(&mut want["summary"]["active_clients"], clients.len());
    let rest_daily = expected_daily(s.api.events(), &from.to_string(), &to.to_string(), None);
    let mut daily: BTreeMap<String, Value> = want["dailyMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["date"].as_str().unwrap().to_owned(), d.clone()))
        .collect();
    for row in rest_daily.as_array().unwrap() {
        let date = row["date"].as_str().unwrap().to_owned();
        let merged = daily
            .entry(date.clone())
            .or_insert_with(|| json!({"date": date, "users": 0, "events": 0}));
        add(
            &mut merged["users"],
            row["users"].as_u64().unwrap() as usize,
        );
        add(
            &mut merged["events"],
            row["events"].as_u64().unwrap() as usize,
        );
    }
    want["dailyMetrics"] = Value::Array(daily.into_values().collect());
    assert_eq!(body["data"], want);
    assert_eq!(details(&body, "crm")["status"], "ok");
    assert_eq!(
        details(&body, "crm")["missingDatasets"],
        json!(["features", "clients"])
    );
    s.hub.stop().await.unwrap();
    drop(data);
}
