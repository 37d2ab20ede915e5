//! A local JSON API stand-in for `kind: rest`: axum on 127.0.0.1, serving generated events
//! through every auth and pagination style the engine supports, with the known traps on
//! request, and recording every request exactly as it arrived so tests can assert what
//! the hub sent.
//!
//! Paths are `/{auth}/{style}`:
//! - auth: `open`, `key-header` (`X-Api-Key`), `key-query` (`api_key=`), `bearer`, `basic`,
//!   `oauth` (tokens from `POST /oauth/token`, client credentials).
//! - style: `cursor` (GET, `after`/`limit`, a next cursor whenever a page is full, so an
//!   exactly full last page is followed by an empty one), `cursor-body` (the same over POST
//!   with the cursor, window and client in the JSON body), `offset` (`offset`/`limit`,
//!   `total`; `cap=N` caps pages below the limit asked, `no_total=1` hides the total),
//!   `page` (`page`/`per_page`, `meta.total_pages`; `hide=1` drops records after paging so
//!   pages come back short mid-stream), `next-url` (`links.next`, relative, or absolute with
//!   `absolute=1`), `link` (RFC 8288 `Link` header), `endless` (a fresh cursor forever),
//!   `loop` (the same cursor forever), `stats` and `stats-summary` (answers the API already
//!   aggregated), `echo` (no records; for checking what arrived).
//! - Every style filters by `from`/`to` (YYYY-MM-DD, inclusive) and `client`, serves only
//!   the first `take` events when asked, and sleeps `delay_ms` first.
//! - `fault=KIND` (with `fault_at=POSITION`, default the first page) injects: `429s`
//!   (once, `Retry-After: 1`), `429d` (once, `Retry-After` an HTTP date 2 s ahead), `503`
//!   (once, no Retry-After), `500` (always), `429long` (always, `Retry-After: 3600`),
//!   `malformed` (always, truncated JSON) and `oversized` (always, a 2 MiB answer).
//! - The token URL takes `uses=N` (a token works for N API requests), `expires_in=S`,
//!   `reject=1` (the endpoint refuses the client) and `broken=1` (tokens the API refuses).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::{Days, NaiveDate, NaiveTime};
use serde_json::{json, Value};

pub const API_KEY: &str = "key-7f3a9c1e55";
pub const BEARER_TOKEN: &str = "bearer-5d2b8e4f77";
pub const BASIC_USER: &str = "hub";
pub const BASIC_PASSWORD: &str = "pw-91c4e7d2";
pub const CLIENT_ID: &str = "hub-client";
pub const CLIENT_SECRET: &str = "cs-3e8a1f6b09";

/// The generated events span this many days from [`first_day`].
pub const DAYS: u64 = 30;
pub const CLIENTS: [&str; 5] = ["acme", "globex", "initech", "umbrella", "hooli"];
pub const FEATURES: [&str; 4] = ["Home Dashboard", "Buybox", "Properties", "Importer"];
/// The pages a raw event's `url` points at, and the feature the GA4 dashboard's `CASE`
/// gives each (`None`: no feature; `Buybox - Deals` must win over its prefix `Buybox`).
pub const PAGES: [(&str, Option<&str>); 6] = [
    ("/", Some("Home Dashboard")),
    ("/buybox/deals/812", Some("Buybox - Deals")),
    ("/buybox", Some("Buybox")),
    ("/properties/search", Some("Properties")),
    ("/importer/upload", Some("Importer")),
    ("/account/settings", None),
];

/// The first day of generated events.
pub fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).expect("a valid date")
}

/// One generated event, with the facts tests compute expectations from.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: u64,
    /// The UTC day it happened.
    pub day: NaiveDate,
    /// How the API writes its time: UTC with `Z`, with a +02:00 offset, or naive.
    pub created_at: String,
    pub contact: String,
    pub client: &'static str,
    pub feature: &'static str,
    pub amount: i64,
    /// `page_view` for four events in five, else `click`.
    pub kind: &'static str,
    /// The page it happened on: `https://{client}.8020rei.com{path}?ref=N`.
    pub url: String,
    /// The feature of that page, by [`PAGES`].
    pub page_feature: Option<&'static str>,
}

/// Event `i` of a stand-in whose data starts at [`first_day`].
pub fn event(i: u64) -> Event {
    event_from(first_day(), i)
}

/// Event `i` of data starting at `first`: deterministic, spread over [`DAYS`] days (each
/// day gets every 30th event), clients, features and contacts.
pub fn event_from(first: NaiveDate, i: u64) -> Event {
    let day = first + Days::new((i * 7) % DAYS);
    let time = NaiveTime::from_hms_opt(((i * 5) % 24) as u32, ((i * 13) % 60) as u32, 0)
        .expect("a valid time");
    let utc = day.and_time(time);
    let created_at = match i % 3 {
        0 => utc.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        // Late UTC hours land on the next local day: the hub must bucket by UTC.
        1 => (utc + chrono::Duration::hours(2))
            .format("%Y-%m-%dT%H:%M:%S+02:00")
            .to_string(),
        _ => utc.format("%Y-%m-%d %H:%M:%S").to_string(),
    };
    let client = CLIENTS[(i % 5) as usize];
    let (path, page_feature) = PAGES[((i * 11) % 6) as usize];
    Event {
        id: i,
        day,
        created_at,
        contact: format!("c-{}", (i * 31) % 97),
        client,
        feature: FEATURES[((i / 3) % 4) as usize],
        amount: ((i * 37) % 500) as i64,
        kind: if i % 5 == 2 { "click" } else { "page_view" },
        url: format!("https://{client}.8020rei.com{path}?ref={i}"),
        page_feature,
    }
}

/// The first `n` events of data starting at `first`.
pub fn events_from(first: NaiveDate, n: u64) -> Vec<Event> {
    (0..n).map(|i| event_from(first, i)).collect()
}

/// Records the `page` style with `hide=1` leaves out after paging.
pub fn hidden(event: &Event) -> bool {
    event.id % 7 == 3
}

fn event_json(event: &Event) -> Value {
    // Every fourth amount is a numeric string, as some APIs write money.
    let amount = if event.id.is_multiple_of(4) {
        Value::from(event.amount.to_string())
    } else {
        Value::from(event.amount)
    };
    json!({
        "id": event.id,
        "created_at": event.created_at,
        "contact": {"id": event.contact},
        "client": event.client,
        "feature": event.feature,
        "amount": amount,
        "type": event.kind,
        "url": event.url,
    })
}

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query exactly as sent (still percent-encoded).
    pub uri: String,
    /// The path as sent (still percent-encoded).
    pub path: String,
    /// Decoded query parameters.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Token {
    uses_left: Option<u32>,
    expires: Option<Instant>,
    broken: bool,
}

/// Shared by the handlers.
pub struct StandInState {
    events: Vec<Event>,
    base: String,
    log: Mutex<Vec<Received>>,
    tokens: Mutex<HashMap<String, Token>>,
    tokens_issued: AtomicUsize,
    faults: Mutex<HashMap<String, u32>>,
}

/// The router, separate from serving so it can run anywhere.
pub fn app(state: Arc<StandInState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// A running stand-in, stopped on drop.
pub struct RestStandIn {
    state: Arc<StandInState>,
    /// Serving until dropped.
    _server: crate::Background,
}

impl RestStandIn {
    /// Serves `n` generated events from [`first_day`] on 127.0.0.1:0, on the current runtime.
    pub async fn start(n: u64) -> anyhow::Result<RestStandIn> {
        RestStandIn::start_from(first_day(), n).await
    }

    /// Serves `n` generated events starting at `first`.
    pub async fn start_from(first: NaiveDate, n: u64) -> anyhow::Result<RestStandIn> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        RestStandIn::serve(listener, first, n)
    }

    /// Serves on `listener` (for a stand-in in a process of its own, as the benchmarks run it).
    pub fn serve(
        listener: tokio::net::TcpListener,
        first: NaiveDate,
        n: u64,
    ) -> anyhow::Result<RestStandIn> {
        let base = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(StandInState {
            events: events_from(first, n),
            base,
            log: Mutex::new(Vec::new()),
            tokens: Mutex::new(HashMap::new()),
            tokens_issued: AtomicUsize::new(0),
            faults: Mutex::new(HashMap::new()),
        });
        let server = crate::serve_in_background(listener, app(state.clone()));
        Ok(RestStandIn {
            state,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> &str {
        &self.state.base
    }

    pub fn events(&self) -> &[Event] {
        &self.state.events
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        lock(&self.state.log).clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }

    /// Tokens the token endpoint has issued.
    pub fn tokens_issued(&self) -> usize {
        self.state.tokens_issued.load(Ordering::SeqCst)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        axum::Json(json!({"error": "unauthorized"})),
    )
        .into_response()
}

async fn handle(
    State(state): State<Arc<StandInState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: Vec<(String, String)> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let received = Received {
        method: method.to_string(),
        uri: uri
            .path_and_query()
            .map_or_else(String::new, |p| p.to_string()),
        path: uri.path().to_owned(),
        query: query.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    lock(&state.log).push(received.clone());
    if received.path == "/oauth/token" {
        return token_endpoint(&state, &received);
    }
    let mut segments = received.path.trim_start_matches('/').splitn(3, '/');
    let auth = segments.next().unwrap_or_default();
    let style = segments.next().unwrap_or_default();
    let authorized = match auth {
        "open" => true,
        "key-header" => received.header("x-api-key") == Some(API_KEY),
        "key-query" => received.param("api_key") == Some(API_KEY),
        "bearer" => received.header("authorization") == Some(&format!("Bearer {BEARER_TOKEN}")),
        "basic" => received.header("authorization") == Some(&basic(BASIC_USER, BASIC_PASSWORD)),
        "oauth" => use_token(&state, received.header("authorization")),
        _ => return json_response(StatusCode::NOT_FOUND, json!({"error": "no such API"})),
    };
    if !authorized {
        return unauthorized();
    }
    let request = Request::new(&received, &query);
    if let Some(delay) = request.number("delay_ms") {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if let Some(response) = fault(&state, &request) {
        return response;
    }
    match style {
        "cursor" | "cursor-body" => cursor(&state, &request),
        "offset" => offset(&state, &request),
        "page" => page(&state, &request),
        "next-url" | "link" => follow(&state, &request, auth, style),
        "endless" => {
            let limit = request.number("limit").unwrap_or(10) as usize;
            let position = request.cursor();
            let items: Vec<Value> = state.events.iter().take(limit).map(event_json).collect();
            json_response(
                StatusCode::OK,
                json!({"data": {"items": items}, "paging": {"next": {"after": format!("c{}", position + limit as u64)}}}),
            )
        }
        "loop" => {
            let items: Vec<Value> = state.events.iter().take(2).map(event_json).collect();
            json_response(
                StatusCode::OK,
                json!({"data": {"items": items}, "paging": {"next": {"after": "same"}}}),
            )
        }
        "stats" => stats(&state, &request),
        "stats-summary" => {
            let selected = request.select(&state.events);
            let contacts: std::collections::BTreeSet<&str> =
                selected.iter().map(|e| e.contact.as_str()).collect();
            let companies: std::collections::BTreeSet<&str> =
                selected.iter().map(|e| e.client).collect();
            json_response(
                StatusCode::OK,
                json!({"data": {"unique_contacts": contacts.len(), "deals": selected.len(), "companies": companies.len()}}),
            )
        }
        "echo" => json_response(StatusCode::OK, json!({"items": []})),
        _ => json_response(StatusCode::NOT_FOUND, json!({"error": "no such style"})),
    }
}

/// The parameters of one API request, from the query string or (POST) the JSON body.
struct Request<'a> {
    received: &'a Received,
    query: &'a [(String, String)],
    body: Value,
}

impl<'a> Request<'a> {
    fn new(received: &'a Received, query: &'a [(String, String)]) -> Request<'a> {
        Request {
            received,
            query,
            body: serde_json::from_str(&received.body).unwrap_or(Value::Null),
        }
    }

    /// A parameter from the query string, else from the body (`filter.x` or `page.x`).
    fn text(&self, name: &str) -> Option<String> {
        if let Some((_, value)) = self.query.iter().find(|(k, _)| k == name) {
            return Some(value.clone());
        }
        for section in ["filter", "page"] {
            match self.body.get(section).and_then(|s| s.get(name)) {
                Some(Value::String(text)) => return Some(text.clone()),
                Some(Value::Number(n)) => return Some(n.to_string()),
                _ => {}
            }
        }
        None
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.text(name).and_then(|t| t.parse().ok())
    }

    /// The position a cursor (`c123`) stands for.
    fn cursor(&self) -> u64 {
        self.text("after")
            .and_then(|c| c.trim_start_matches('c').parse().ok())
            .unwrap_or(0)
    }

    fn select<'e>(&self, events: &'e [Event]) -> Vec<&'e Event> {
        let date = |name| {
            self.text(name)
                .and_then(|t| NaiveDate::parse_from_str(&t, "%Y-%m-%d").ok())
        };
        let (from, to, client) = (date("from"), date("to"), self.text("client"));
        let take = self.number("take").map_or(events.len(), |n| n as usize);
        events
            .iter()
            .take(take)
            .filter(|e| from.is_none_or(|f| e.day >= f) && to.is_none_or(|t| e.day <= t))
            .filter(|e| client.as_deref().is_none_or(|c| e.client == c))
            .collect()
    }

    /// Query parameters to carry into a next-page URL.
    fn carried(&self, skip: &[&str]) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.query {
            if !skip.contains(&k.as_str()) {
                out.append_pair(k, v);
            }
        }
        out.finish()
    }
}

fn fault(state: &StandInState, request: &Request<'_>) -> Option<Response> {
    let kind = request.text("fault")?;
    let position = request
        .number("pos")
        .or_else(|| request.number("offset"))
        .or_else(|| request.number("page"))
        .unwrap_or_else(|| request.cursor());
    let at = request.number("fault_at").unwrap_or(position);
    if at != position {
        return None;
    }
    let once = |state: &StandInState| {
        let mut hits = lock(&state.faults);
        let count = hits
            .entry(format!("{kind}@{position}@{}", request.received.path))
            .or_insert(0);
        *count += 1;
        *count == 1
    };
    match kind.as_str() {
        "429s" if once(state) => Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "1")],
                "slow down",
            )
                .into_response(),
        ),
        "429d" if once(state) => {
            let at = httpdate(SystemTime::now() + Duration::from_secs(2));
            Some(
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, at)],
                    "slow down",
                )
                    .into_response(),
            )
        }
        "503" if once(state) => {
            Some((StatusCode::SERVICE_UNAVAILABLE, "try again").into_response())
        }
        "500" => Some((StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()),
        "429long" => Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "3600")],
                "come back later",
            )
                .into_response(),
        ),
        "malformed" => Some(
            (
                [(header::CONTENT_TYPE, "application/json")],
                "{\"data\": {\"items\": [{\"id\": 1}, ",
            )
                .into_response(),
        ),
        "oversized" => {
            let filler = "x".repeat(2 * 1024 * 1024);
            Some(json_response(
                StatusCode::OK,
                json!({"data": {"items": []}, "padding": filler}),
            ))
        }
        _ => None,
    }
}

fn httpdate(at: SystemTime) -> String {
    let stamp: chrono::DateTime<chrono::Utc> = at.into();
    stamp.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn cursor(state: &StandInState, request: &Request<'_>) -> Response {
    let selected = request.select(&state.events);
    let limit = request
        .number("limit")
        .or_else(|| request.number("size"))
        .unwrap_or(10) as usize;
    let position = request.cursor() as usize;
    let items: Vec<Value> = selected
        .iter()
        .skip(position)
        .take(limit)
        .map(|e| event_json(e))
        .collect();
    // A full page always comes with a cursor, even when nothing follows it.
    let next = (items.len() == limit).then(|| json!({"after": format!("c{}", position + limit)}));
    json_response(
        StatusCode::OK,
        json!({"data": {"items": items}, "paging": {"next": next}}),
    )
}

fn offset(state: &StandInState, request: &Request<'_>) -> Response {
    let selected = request.select(&state.events);
    let limit = request.number("limit").unwrap_or(10);
    let limit = request.number("cap").map_or(limit, |cap| limit.min(cap)) as usize;
    let start = request.number("offset").unwrap_or(0) as usize;
    let items: Vec<Value> = selected
        .iter()
        .skip(start)
        .take(limit)
        .map(|e| event_json(e))
        .collect();
    let mut body = json!({"results": items});
    if request.text("no_total").is_none() {
        body["total"] = Value::from(selected.len());
    }
    json_response(StatusCode::OK, body)
}

fn page(state: &StandInState, request: &Request<'_>) -> Response {
    let selected = request.select(&state.events);
    let per_page = request.number("per_page").unwrap_or(10).max(1) as usize;
    let number = request.number("page").unwrap_or(1).max(1) as usize;
    let hide = request.text("hide").is_some();
    let items: Vec<Value> = selected
        .iter()
        .skip((number - 1) * per_page)
        .take(per_page)
        .filter(|e| !(hide && hidden(e)))
        .map(|e| event_json(e))
        .collect();
    let total_pages = selected.len().div_ceil(per_page);
    json_response(
        StatusCode::OK,
        json!({"items": items, "meta": {"total_pages": total_pages}}),
    )
}

fn follow(state: &StandInState, request: &Request<'_>, auth: &str, style: &str) -> Response {
    let selected = request.select(&state.events);
    let per_page = request.number("per_page").unwrap_or(10).max(1) as usize;
    let position = request.number("pos").unwrap_or(0) as usize;
    let items: Vec<Value> = selected
        .iter()
        .skip(position)
        .take(per_page)
        .map(|e| event_json(e))
        .collect();
    let next = (position + per_page < selected.len()).then(|| {
        let carried = request.carried(&["pos", "api_key"]);
        let path = format!("/{auth}/{style}?pos={}&{carried}", position + per_page);
        if request.text("absolute").is_some() {
            format!("{}{path}", state.base)
        } else {
            path
        }
    });
    if style == "link" {
        let mut response = json_response(StatusCode::OK, json!(items));
        if let Some(next) = next {
            let link = format!(
                "<{}/{auth}/{style}?pos=0>; rel=\"first\", <{}>; rel=\"next\"",
                state.base,
                if next.starts_with('/') {
                    format!("{}{next}", state.base)
                } else {
                    next
                }
            );
            if let Ok(value) = link.parse() {
                response.headers_mut().insert(header::LINK, value);
            }
        }
        response
    } else {
        json_response(
            StatusCode::OK,
            json!({"results": items, "links": {"next": next}}),
        )
    }
}

fn stats(state: &StandInState, request: &Request<'_>) -> Response {
    let mut days: std::collections::BTreeMap<NaiveDate, (u64, std::collections::BTreeSet<&str>)> =
        Default::default();
    for e in request.select(&state.events) {
        let day = days.entry(e.day).or_default();
        day.0 += 1;
        day.1.insert(&e.contact);
    }
    let rows: Vec<Value> = days
        .into_iter()
        .map(|(day, (hits, visitors))| {
            json!({"day": day.format("%Y%m%d").to_string(), "visitors": visitors.len(), "hits": hits.to_string()})
        })
        .collect();
    json_response(StatusCode::OK, json!({"days": rows}))
}

fn token_endpoint(state: &StandInState, received: &Received) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(received.body.as_bytes())
        .into_owned()
        .collect();
    let by_header = received.header("authorization") == Some(&basic(CLIENT_ID, CLIENT_SECRET));
    let by_form = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    if received.param("reject").is_some() || !(by_header || by_form) {
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client", "error_description": "client authentication failed"}),
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "unsupported_grant_type"}),
        );
    }
    let number = state.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("tok-{number}");
    let expires_in: u64 = received
        .param("expires_in")
        .and_then(|v| v.parse().ok())
        .unwrap_or(3600);
    lock(&state.tokens).insert(
        token.clone(),
        Token {
            uses_left: received.param("uses").and_then(|v| v.parse().ok()),
            expires: Some(Instant::now() + Duration::from_secs(expires_in)),
            broken: received.param("broken").is_some(),
        },
    );
    json_response(
        StatusCode::OK,
        json!({"access_token": token, "token_type": "bearer", "expires_in": expires_in}),
    )
}

fn use_token(state: &StandInState, authorization: Option<&str>) -> bool {
    let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
        return false;
    };
    let mut tokens = lock(&state.tokens);
    let Some(entry) = tokens.get_mut(token) else {
        return false;
    };
    if entry.broken || entry.expires.is_some_and(|at| Instant::now() >= at) {
        return false;
    }
    match &mut entry.uses_left {
        Some(0) => false,
        Some(n) => {
            *n -= 1;
            true
        }
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("hub:pw", "aHViOnB3"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }

    #[test]
    fn events_put_late_hours_on_the_utc_day() {
        let e = event(1);
        assert!(e.created_at.ends_with("+02:00"), "{e:?}");
        // Hour 5 UTC: 07:00 local, the same day.
        assert_eq!(e.day, first_day() + Days::new(7));
    }
}
