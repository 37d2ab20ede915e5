//! The description against the router it describes and the answers it serves: every route
//! of the real router (read off the router itself, not a list kept here) is described with
//! its methods, and real answers of every operation, from a hub with the shipped demo
//! source, a second source and one that cannot connect, validate against its schemas.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tempfile::TempDir;
use tower::ServiceExt;

use crate::api::access::{Access, AccessSettings, Rate, Scope, TokenStore};
use crate::api::{app, ApiSettings};
use crate::hub::{Hub, HubSettings};
use crate::load::load_texts;

const READ_TOKEN: &str = "mh_read_token_of_the_openapi_test";
const ADMIN_TOKEN: &str = "mh_admin_token_of_the_openapi_test";

/// A hub with the shipped demo source (its data in a temporary directory) and the shipped
/// derived metrics, a second source that answers, one that cannot connect and a file that does not load.
struct Fixture {
    hub: Arc<Hub>,
    _data: TempDir,
}

fn fixture(with_working_sources: bool) -> Fixture {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_owned();
    let demo = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sources.d/demo.yaml"),
    )
    .unwrap();
    let crm = "id: crm\nname: CRM\nbadge: CRM\nkind: sql\nconnection:\n  driver: sqlite\n  url: \"sqlite::memory:\"\nqueries:\n  summary:\n    sql: SELECT 12 AS total_users, 3 AS active_clients\n";
    // No such directory, and sqlite is not asked to create the file: it cannot connect.
    let down = format!("id: down\nname: Down\nkind: sql\nconnection:\n  driver: sqlite\n  url: \"sqlite://{dir}/missing/down.sqlite\"\nqueries:\n  summary:\n    sql: SELECT 1 AS total_users\n");
    let mut files = vec![
        (PathBuf::from("down.yaml"), Ok(down)),
        (PathBuf::from("bad.yaml"), Ok("id: Bad\n".to_owned())),
    ];
    if with_working_sources {
        files.push((PathBuf::from("demo.yaml"), Ok(demo)));
        files.push((PathBuf::from("crm.yaml"), Ok(crm.to_owned())));
    }
    let env = move |name: &str| (name == "METRICS_HUB_DATA_DIR").then(|| dir.clone());
    let mut loaded = load_texts(files, &env);
    if with_working_sources {
        // The shipped derived metrics, so answers carry `data.derived` too.
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../metrics.d");
        loaded.derived = crate::derived::load_dir(&dir, &loaded.sources).metrics;
        assert!(!loaded.derived.is_empty());
    }
    Fixture {
        hub: Arc::new(Hub::new(loaded, HubSettings::default())),
        _data: data,
    }
}

/// Settings with a read and an admin token, and one admin request per caller at a time.
fn guarded() -> ApiSettings {
    let mut tokens = TokenStore::default();
    tokens.add_env_list(Scope::Read, READ_TOKEN);
    tokens.add_env_list(Scope::Admin, ADMIN_TOKEN);
    let access = AccessSettings {
        tokens,
        admin_rate: Some(Rate {
            per_second: 0.001,
            burst: 1,
        }),
        ..AccessSettings::default()
    };
    let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    ApiSettings {
        access: Arc::new(Access::for_listener(listen, access).unwrap()),
        ..ApiSettings::default()
    }
}

/// What a call answered.
struct Answered {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

async fn call(router: &Router, method: &str, uri: &str, token: Option<&str>) -> Answered {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    Answered {
        status: response.status(),
        content_type,
        body: response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    }
}

/// The description the router serves.
async fn served(router: &Router) -> Value {
    let answer = call(router, "GET", "/api/openapi.json", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    serde_json::from_slice(&answer.body).unwrap()
}

/// The (path template, method) pairs the router routes, read off the router itself:
/// axum prints each route's path and its method router's `Allow` header in `{:?}`. A
/// route without a method list (a service) is returned with method `?`.
fn routed(router: &Router) -> BTreeSet<(String, String)> {
    let text = format!("{router:?}");
    // The fallbacks come after the routes; they are not routes of the API.
    let routes = &text[..text
        .find("fallback_router:")
        .expect("axum's Router {:?} has changed: update routed()")];
    let path = regex::Regex::new(r#"RouteId\((\d+)\): "([^"]*)""#).unwrap();
    let methods =
        regex::Regex::new(r#"RouteId\((\d+)\): MethodRouter\(MethodRouter \{[^}]*allow_header: Bytes\(b"([A-Z,]*)"\)"#)
            .unwrap();
    let allowed: BTreeMap<&str, &str> = methods
        .captures_iter(routes)
        .map(|c| (c.get(1).unwrap().as_str(), c.get(2).unwrap().as_str()))
        .collect();
    let mut found = BTreeSet::new();
    for capture in path.captures_iter(routes) {
        let (id, path) = (&capture[1], super::template(&capture[2]));
        let methods = allowed.get(id).copied().unwrap_or("?");
        for method in methods.split(',').filter(|m| *m != "HEAD") {
            found.insert((path.clone(), method.to_owned()));
        }
    }
    found
}

/// The (path, method) pairs the description has.
fn described(doc: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            found.insert((path.clone(), method.to_uppercase()));
        }
    }
    found
}

#[tokio::test]
async fn every_route_of_the_router_is_described_and_nothing_else() {
    let fixture = fixture(true);
    let router = app(fixture.hub.clone(), &ApiSettings::default());
    let routed = routed(&router);
    // The reading of the router works: a route everyone knows is there.
    assert!(
        routed.contains(&("/api/metrics".to_owned(), "GET".to_owned())),
        "{routed:?}"
    );
    assert_eq!(routed, described(&served(&router).await));
}

#[test]
fn the_route_reader_sees_an_undescribed_route() {
    // A mutation check of the test above: a route added without `routes!` is seen.
    let hub = fixture(false).hub;
    let plain = app(hub, &ApiSettings::default())
        .route("/api/undescribed", axum::routing::post(|| async { "" }));
    assert!(routed(&plain).contains(&("/api/undescribed".to_owned(), "POST".to_owned())));
}

#[tokio::test]
async fn the_description_is_openapi_3_1_with_each_groups_scope() {
    let doc = served(&app(fixture(false).hub, &ApiSettings::default())).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (&bearer["type"], &bearer["scheme"]),
        (&json!("http"), &json!("bearer"))
    );
    let scope = |path: &str, method: &str| doc["paths"][path][method]["security"].clone();
    assert_eq!(scope("/api/metrics", "get"), json!([{"bearer": ["read"]}]));
    assert_eq!(
        scope("/api/openapi.json", "get"),
        json!([{"bearer": ["read"]}])
    );
    assert_eq!(
        scope("/api/cache/clear", "post"),
        json!([{"bearer": ["admin"]}])
    );
    assert_eq!(scope("/", "get"), Value::Null);
    let statuses = |path: &str, method: &str| -> Vec<String> {
        doc["paths"][path][method]["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(
        statuses("/api/sources/{id}/check", "post"),
        ["200", "400", "401", "403", "413", "414", "429"]
    );
    assert_eq!(
        statuses("/api/metrics", "get"),
        ["200", "400", "401", "413", "414", "503"]
    );
}

/// One real call and the operation it exercises.
struct Case {
    /// `guarded()` settings, else open.
    guarded: bool,
    method: &'static str,
    template: &'static str,
    uri: &'static str,
    token: Option<&'static str>,
    status: u16,
}

const fn case(
    method: &'static str,
    template: &'static str,
    uri: &'static str,
    status: u16,
) -> Case {
    Case {
        guarded: false,
        method,
        template,
        uri,
        token: None,
        status,
    }
}

const fn with_tokens(
    method: &'static str,
    template: &'static str,
    uri: &'static str,
    token: Option<&'static str>,
    status: u16,
) -> Case {
    Case {
        guarded: true,
        method,
        template,
        uri,
        token,
        status,
    }
}

/// Calls answered by the hub with every source: each operation's answers, good and bad.
/// In order: the rate-limit case needs the admin token's one request used just before.
const CASES: &[Case] = &[
    case(
        "GET",
        "/api/metrics",
        "/api/metrics?days=7&source=demo,crm",
        200,
    ),
    case(
        "GET",
        "/api/metrics",
        "/api/metrics?start_date=2026-01-01&end_date=2026-01-31",
        200,
    ),
    case(
        "GET",
        "/api/metrics",
        "/api/metrics?days=30&client=acme",
        200,
    ),
    case("GET", "/api/metrics", "/api/metrics?source=down", 503),
    case("GET", "/api/metrics", "/api/metrics?days=0", 400),
    case("GET", "/api/metrics", "/api/metrics?nope=1", 400),
    case(
        "GET",
        "/api/insights/anomalies",
        "/api/insights/anomalies?days=60",
        200,
    ),
    case(
        "GET",
        "/api/insights/anomalies",
        "/api/insights/anomalies?days=7&source=demo",
        200,
    ),
    case(
        "GET",
        "/api/insights/anomalies",
        "/api/insights/anomalies?days=0",
        400,
    ),
    case(
        "GET",
        "/api/insights/forecast",
        "/api/insights/forecast?days=60",
        200,
    ),
    case(
        "GET",
        "/api/insights/forecast",
        "/api/insights/forecast?days=7",
        200,
    ),
    case(
        "GET",
        "/api/insights/forecast",
        "/api/insights/forecast?nope=1",
        400,
    ),
    case(
        "GET",
        "/api/insights/correlations",
        "/api/insights/correlations?days=90",
        200,
    ),
    case(
        "GET",
        "/api/insights/correlations",
        "/api/insights/correlations?days=0",
        400,
    ),
    case("GET", "/api/sources", "/api/sources", 200),
    case("GET", "/api/health", "/api/health", 200),
    case("GET", "/api/openapi.json", "/api/openapi.json", 200),
    case("GET", "/metrics", "/metrics", 200),
    // The fixture's sources were given in memory: there is no directory to reload.
    case("POST", "/api/admin/reload", "/api/admin/reload", 409),
    case(
        "POST",
        "/api/sources/{id}/check",
        "/api/sources/demo/check",
        200,
    ),
    case(
        "POST",
        "/api/sources/{id}/check",
        "/api/sources/down/check",
        200,
    ),
    case(
        "POST",
        "/api/sources/{id}/check",
        "/api/sources/nope/check",
        400,
    ),
    case(
        "POST",
        "/api/cache/clear",
        "/api/cache/clear?source=demo",
        200,
    ),
    case("POST", "/api/cache/clear", "/api/cache/clear?all=1", 400),
    case("GET", "/", "/", 200),
    case("GET", "/admin", "/admin", 308),
    case("GET", "/admin/sources", "/admin/sources", 200),
    case(
        "GET",
        "/assets/{path}",
        "/assets/vendor/chart.js/chart.umd.min.js",
        200,
    ),
    case("GET", "/assets/{path}", "/assets/index.html", 404),
    with_tokens("GET", "/api/metrics", "/api/metrics", None, 401),
    with_tokens(
        "GET",
        "/api/metrics",
        "/api/metrics",
        Some("mh_not_a_token"),
        401,
    ),
    with_tokens(
        "GET",
        "/api/metrics",
        "/api/metrics?days=7",
        Some(READ_TOKEN),
        200,
    ),
    with_tokens("GET", "/api/sources", "/api/sources", None, 401),
    with_tokens(
        "GET",
        "/api/openapi.json",
        "/api/openapi.json",
        Some(READ_TOKEN),
        200,
    ),
    with_tokens(
        "POST",
        "/api/sources/{id}/check",
        "/api/sources/crm/check",
        Some(READ_TOKEN),
        403,
    ),
    with_tokens(
        "POST",
        "/api/cache/clear",
        "/api/cache/clear",
        Some(ADMIN_TOKEN),
        200,
    ),
    with_tokens(
        "POST",
        "/api/cache/clear",
        "/api/cache/clear",
        Some(ADMIN_TOKEN),
        429,
    ),
];

/// A reload from a real directory: one source kept, one added, one file rejected.
#[tokio::test]
async fn a_reload_answer_validates_against_the_description() {
    let dir = tempfile::tempdir().unwrap();
    let source = |id: &str| {
        format!("id: {id}\nname: {id}\nkind: sql\nconnection:\n  driver: sqlite\n  url: \"sqlite::memory:\"\nqueries:\n  summary:\n    sql: SELECT 1 AS total_users\n")
    };
    std::fs::write(dir.path().join("a.yaml"), source("a")).unwrap();
    let loaded = crate::load::load_dir_with(dir.path(), &|_| None).unwrap();
    let settings = HubSettings {
        sources_dir: Some(dir.path().to_owned()),
        ..HubSettings::default()
    };
    let router = app(
        Arc::new(Hub::new(loaded, settings)),
        &ApiSettings::default(),
    );
    std::fs::write(dir.path().join("b.yaml"), source("b")).unwrap();
    std::fs::write(dir.path().join("c.yaml"), "id: C\n").unwrap();
    let answer = call(&router, "POST", "/api/admin/reload", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        (body["data"]["kept"].clone(), body["data"]["added"].clone()),
        (json!(["a"]), json!(["b"]))
    );
    assert_eq!(body["data"]["rejected"].as_array().unwrap().len(), 1);
    let strict = strict(served(&router).await);
    let reload = case("POST", "/api/admin/reload", "/api/admin/reload", 200);
    conforms(&strict, &reload, &answer).unwrap();
    let sources = call(&router, "GET", "/api/sources", None).await;
    conforms(&strict, &case("GET", "/api/sources", "", 200), &sources).unwrap();
}

#[tokio::test]
async fn real_answers_of_every_operation_validate_against_the_description() {
    let fixture = fixture(true);
    fixture.hub.initialize().await;
    let open = app(fixture.hub.clone(), &ApiSettings::default());
    let guarded = app(fixture.hub.clone(), &guarded());
    let doc = served(&open).await;
    let strict = strict(doc.clone());
    let mut wrong = Vec::new();
    let mut exercised = BTreeSet::new();
    for case in CASES {
        let router = if case.guarded { &guarded } else { &open };
        let answer = call(router, case.method, case.uri, case.token).await;
        let what = format!("{} {}", case.method, case.uri);
        if answer.status.as_u16() != case.status {
            wrong.push(format!(
                "{what}: answered {} instead of {}: {}",
                answer.status,
                case.status,
                String::from_utf8_lossy(&answer.body)
            ));
            continue;
        }
        exercised.insert((case.template.to_owned(), case.method.to_owned()));
        if let Err(why) = conforms(&strict, case, &answer) {
            wrong.push(format!("{what}: {why}"));
        }
    }
    // An operation also fails when nothing exercised it: a new route needs a case here.
    for operation in described(&doc).difference(&exercised) {
        wrong.push(format!("no real answer of {operation:?} was checked"));
    }
    // The partial failure and the shed/failed shapes are among them.
    let everything = call(&open, "GET", "/api/metrics", None).await;
    let body: Value = serde_json::from_slice(&everything.body).unwrap();
    assert_eq!(everything.status, StatusCode::OK, "{body}");
    let statuses: Vec<&str> = body["metadata"]["sourceDetails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ok", "ok", "error"], "crm, demo, down");
    assert!(body["data"]["derived"][0]["value"].is_number(), "{body}");
    if let Err(why) = conforms(&strict, &case("GET", "/api/metrics", "", 200), &everything) {
        wrong.push(format!("GET /api/metrics (a partial failure): {why}"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn health_when_nothing_can_serve_validates_too() {
    let fixture = fixture(false);
    let router = app(fixture.hub.clone(), &ApiSettings::default());
    let strict = strict(served(&router).await);
    let answer = call(&router, "GET", "/api/health", None).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    conforms(&strict, &case("GET", "/api/health", "", 503), &answer).unwrap();
}

#[tokio::test]
async fn the_validation_refuses_an_answer_the_description_does_not_allow() {
    // A mutation check: a real answer, changed the ways a drifting type would change it.
    let fixture = fixture(true);
    let router = app(fixture.hub.clone(), &ApiSettings::default());
    let strict = strict(served(&router).await);
    let answer = call(&router, "GET", "/api/metrics?source=crm", None).await;
    let real: Value = serde_json::from_slice(&answer.body).unwrap();
    let metrics = case("GET", "/api/metrics", "", 200);
    let changed = |edit: &dyn Fn(&mut Value)| {
        let mut body = real.clone();
        edit(&mut body);
        Answered {
            status: answer.status,
            content_type: answer.content_type.clone(),
            body: serde_json::to_vec(&body).unwrap(),
        }
    };
    assert!(conforms(&strict, &metrics, &changed(&|_| {})).is_ok());
    let edits: [&dyn Fn(&mut Value); 4] = [
        &|b| b["metadata"]["sourceDetails"][0]["status"] = json!("fine"),
        &|b| b["metadata"]["window"]["startDate"] = json!("yesterday"),
        &|b| b["data"]["summary"]["total_users"] = json!(-1),
        &|b| b["metadata"]["undescribed"] = json!(true),
    ];
    for edit in edits {
        assert!(conforms(&strict, &metrics, &changed(edit)).is_err());
    }
}

#[tokio::test]
async fn the_described_metrics_parameters_are_the_ones_the_parser_reads() {
    let fixture = fixture(true);
    let router = app(fixture.hub.clone(), &ApiSettings::default());
    let doc = served(&router).await;
    let parameters = doc["paths"]["/api/metrics"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = parameters
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["days", "start_date", "end_date", "source", "filters"]
    );
    // Each named parameter is one the parser knows (any other name is a filter, which
    // the demo does not declare under these names); `filters` stands for the declared ones.
    for name in ["days", "start_date", "end_date", "source"] {
        let uri = format!("/api/metrics?{name}=x");
        let answer = call(&router, "GET", &uri, None).await;
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_ne!(body["error"]["code"], "unknown_filter", "{name}: {body}");
    }
}

/// Whether an answer is one its operation describes: its status, its media type and, for
/// JSON, its body against the schema.
fn conforms(doc: &Value, case: &Case, answer: &Answered) -> Result<(), String> {
    let operation = &doc["paths"][case.template][case.method.to_lowercase()];
    let mut response = &operation["responses"][answer.status.as_str()];
    if let Some(name) = response["$ref"].as_str() {
        response = resolve(doc, name);
    }
    if response.is_null() {
        return Err(format!("status {} is not described", answer.status));
    }
    let Some(content) = response["content"].as_object() else {
        return if answer.body.is_empty() {
            Ok(())
        } else {
            Err("a body where none is described".into())
        };
    };
    let essence = answer
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    let media = content
        .get(essence)
        .or_else(|| content.get("*/*"))
        .ok_or_else(|| format!("{essence} is not described: {:?}", content.keys()))?;
    if essence != "application/json" {
        return Ok(());
    }
    let body: Value = serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
    validate(doc, &media["schema"], &body)
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    doc.pointer(reference.trim_start_matches('#'))
        .unwrap_or(&Value::Null)
}

/// Validates `body` against `schema` (JSON Schema 2020-12, the dialect of OpenAPI 3.1),
/// with the description's components there for its `$ref`s, and formats checked.
fn validate(doc: &Value, schema: &Value, body: &Value) -> Result<(), String> {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&root)
        .map_err(|e| format!("the schema does not compile: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("at {}: {e}", e.instance_path))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The description with every object that lists its properties closed to others (unless
/// it says otherwise, as records do): an answer with a field the types do not declare
/// fails, where the description as served would let it through.
fn strict(mut doc: Value) -> Value {
    fn close(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                    map.insert("additionalProperties".into(), Value::Bool(false));
                }
                map.values_mut().for_each(close);
            }
            Value::Array(items) => items.iter_mut().for_each(close),
            _ => {}
        }
    }
    close(&mut doc["components"]);
    close(&mut doc["paths"]);
    doc
}
