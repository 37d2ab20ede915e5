//! Zendesk Support's ticket endpoints (the hub's base URL is `{url}/api/v2`).
//!
//! - Auth: only `Authorization: Basic base64("{ZENDESK_EMAIL}/token:{ZENDESK_TOKEN}")`;
//!   anything else (a Bearer token, the email without `/token`, nothing) is 401
//!   `{"error":"Couldn't authenticate you"}`.
//! - `GET /api/v2/incremental/tickets/cursor.json?start_time={unix}[&per_page=N]`:
//!   tickets with `updated_at >= start_time`, by `updated_at` then `id` ascending; then
//!   `?cursor={after_cursor}`. Pages hold `per_page` (1-1000, default 1000) tickets, at most
//!   the stand-in's page size ([`ZendeskStandIn::set_page_size`]). The answer is
//!   `{tickets, after_url, after_cursor, before_url: null, before_cursor: null,
//!   end_of_stream}`. A missing, malformed or too recent (less than a minute ago, or future)
//!   `start_time` or a malformed cursor is 400 `{"error":"InvalidValue","description":..}`.
//! - `GET /api/v2/tickets.json` and `GET /api/v2/organizations.json`: with `page[size]`
//!   (1-100) cursor mode (`page[after]`, `page[before]`; `{.., meta: {has_more,
//!   after_cursor, before_cursor}, links: {next, prev}}`), without it offset mode (`page`,
//!   `per_page` up to 100, `{.., next_page, previous_page, count}`; past 10,000 records a
//!   400). Ordered by `id`. `page[after]` without `page[size]` is offset mode, so it
//!   answers page 1 again.
//! - Every answer carries `X-Rate-Limit: 700` and `X-Rate-Limit-Remaining` (700 minus the
//!   requests so far). [`ZendeskStandIn::rate_limit_next`]: the next requests get 429,
//!   `Retry-After: 1`, text/plain `Number of allowed API requests per minute exceeded`.
//!
//! Traps:
//! - The incremental export's last page says `end_of_stream: true` but still carries
//!   `after_url`/`after_cursor`; that cursor answers an empty page, `end_of_stream: true`,
//!   and the same cursor again. A client that ignores `end_of_stream` makes one extra
//!   request (or loops, if it also ignores empty pages).
//! - `tickets.json`'s last cursor page says `has_more: false` but `links.next` is still a
//!   URL (which answers an empty page with `links.next: null`).
//! - Cursors are standard base64 (with `=` padding, and `+` or `/` at times), so they must
//!   be percent-encoded when put in a query string; the URLs the stand-in returns are.
//! - 24 tickets were created in March and April 2024 and are updated inside the window
//!   (one exactly at 2024-05-01T00:00:00Z), one was updated at 2024-04-30T23:59:59Z and one
//!   on 2024-04-20: counting by `updated_at` differs from counting by `created_at`.
//! - Tickets created late in the window are updated in August; `new` tickets have
//!   `updated_at == created_at`; `assignee_id`, `organization_id`, `group_id`, `priority`
//!   and `type` are null on some tickets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, NaiveDate};
use serde_json::{json, Value};

use super::{
    base64_decode, base64_encode, basic_credentials, json_response, now, param, query_pairs,
    set_header, unix, window, Arrival, Control, Failure,
};

pub const ZENDESK_EMAIL: &str = "metrics-reader@acme-support.test";
pub const ZENDESK_TOKEN: &str = "6wiIBWbGkBMo1mRDMuVwkw6EMyvbQp4vAbC0dE1f";
/// The stand-in's page size when none is set: Zendesk's default for the export.
pub const DEFAULT_PAGE_SIZE: usize = 1000;

/// `(id, name, domain)` of the organizations tickets belong to.
pub const ORGANIZATIONS: [(i64, &str, &str); 6] = [
    (509974, "Acme Corp", "acme.com"),
    (509975, "Globex", "globex.io"),
    (510201, "Initech", "initech.com"),
    (511330, "Umbrella", "umbrella.co"),
    (512044, "Hooli", "hooli.xyz"),
    (513987, "Stark Industries", "stark.com"),
];

const AGENTS: [i64; 5] = [235323, 235324, 235401, 235577, 236002];
const GROUPS: [i64; 3] = [98738, 98739, 98740];
const STATUSES: [&str; 10] = [
    "new", "open", "open", "pending", "hold", "solved", "solved", "solved", "closed", "closed",
];
const PRIORITIES: [Option<&str>; 6] = [
    Some("urgent"),
    Some("high"),
    Some("normal"),
    Some("normal"),
    Some("low"),
    None,
];
const TYPES: [Option<&str>; 6] = [
    Some("problem"),
    Some("incident"),
    Some("question"),
    Some("question"),
    Some("task"),
    None,
];
const CHANNELS: [&str; 6] = ["web", "email", "email", "api", "chat", "mobile"];
const TAGS: [&str; 5] = ["billing", "bug", "onboarding", "vip", "refund"];
const SUBJECTS: [&str; 8] = [
    "Help, my printer is on fire!",
    "Cannot log in",
    "Invoice shows the wrong amount",
    "Feature request: dark mode",
    "Export to CSV fails",
    "How do I add a teammate?",
    "Refund for a double charge",
    "The dashboard is slow",
];

/// ISO 8601 in UTC with `Z`, as Zendesk writes times.
pub fn iso(seconds: i64) -> String {
    DateTime::from_timestamp(seconds, 0)
        .expect("a representable instant")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Unix seconds of an ISO 8601 time (as in `created_at`); 0 when it is not one.
pub fn seconds(iso: &str) -> i64 {
    DateTime::parse_from_rfc3339(iso).map_or(0, |t| t.timestamp())
}

/// Ticket number `i` (its fields come from `i`), with its id and times.
fn ticket(base: &str, i: u64, id: i64, created: i64, updated: i64) -> Value {
    let status = STATUSES[((i * 7) % 10) as usize];
    let assignee = (status != "new").then(|| AGENTS[((i * 3) % 5) as usize]);
    let group = (status != "new" || i % 2 == 1).then(|| GROUPS[(i % 3) as usize]);
    let organization = (i % 8 != 7).then(|| ORGANIZATIONS[((i * 5) % 6) as usize].0);
    let channel = CHANNELS[((i / 2) % 6) as usize];
    let requester = 380_000_000 + ((i * 37) % 150) as i64;
    let submitter = if channel == "api" {
        AGENTS[0]
    } else {
        requester
    };
    let mut tags = vec![TAGS[(i % 5) as usize]];
    if i.is_multiple_of(3) {
        tags.push(TAGS[((i + 2) % 5) as usize]);
    }
    json!({
        "id": id,
        "url": format!("{base}/api/v2/tickets/{id}.json"),
        "created_at": iso(created),
        "updated_at": iso(if status == "new" { created } else { updated }),
        "status": status,
        "priority": PRIORITIES[((i * 5) % 6) as usize],
        "type": TYPES[((i / 3) % 6) as usize],
        "subject": SUBJECTS[((i * 13) % 8) as usize],
        "requester_id": requester,
        "submitter_id": submitter,
        "assignee_id": assignee,
        "organization_id": organization,
        "group_id": group,
        "tags": tags,
        "via": {"channel": channel},
        "custom_fields": [],
    })
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
}

/// Every ticket, by id, with `url`s under `base` (`http://127.0.0.1:PORT`).
///
/// Tickets 0-23 (ids 40100-40123) were created from 2024-03-01, one every 2.5 days, and
/// updated from 2024-05-01 on, every 3 days (ticket 0 at 2024-05-01T00:00:00Z exactly,
/// ticket 1 at 2024-04-30T23:59:59Z, ticket 2 on 2024-04-20). Then 4 to 7 tickets a day
/// over the window (ids `41000 + i`), each updated 1 minute to 10 days after it was created
/// (`new` ones not at all). Ticket `i`: status `STATUSES[(i*7) % 10]` (half of them
/// `solved` or `closed`), priority `[urgent, high, normal, normal, low, null][(i*5) % 6]`,
/// type `[problem, incident, question, question, task, null][(i/3) % 6]`, organization
/// null when `i % 8 == 7`, else `ORGANIZATIONS[(i*5) % 6]`; no assignee when `new`.
pub fn tickets(base: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for j in 0..24u64 {
        let created = unix(date(2024, 3, 1)) + (j * 216_000 + (j * 4567) % 3600) as i64;
        let updated = match j {
            0 => unix(super::first_day()),
            1 => unix(super::first_day()) - 1,
            2 => unix(date(2024, 4, 20)),
            _ => unix(super::first_day()) + (j * 3 * 86_400 + (j * 7919) % 86_400) as i64,
        };
        // Never `new`: old tickets have been worked on.
        let i = if (j * 7) % 10 == 0 { j + 1 } else { j };
        out.push(ticket(base, i, 40_100 + j as i64, created, updated));
    }
    let mut i = 24u64;
    for (d, day) in window() {
        for k in 0..4 + (d * 3) % 4 {
            let hour = (k * 4 + d * 5) % 24;
            let second = hour * 3600 + ((i * 7) % 60) * 60 + (i * 13) % 60;
            let created = unix(day) + second as i64;
            let updated = created + 60 + ((i * 3671) % (10 * 86_400)) as i64;
            out.push(ticket(base, i, 41_000 + i as i64, created, updated));
            i += 1;
        }
    }
    out
}

/// The organizations as `organizations.json` lists them, by id.
pub fn organizations(base: &str) -> Vec<Value> {
    ORGANIZATIONS
        .iter()
        .enumerate()
        .map(|(n, (id, name, domain))| {
            let created = unix(date(2023, 1 + n as u32, 10));
            json!({
                "url": format!("{base}/api/v2/organizations/{id}.json"),
                "id": id, "name": name, "created_at": iso(created), "updated_at": iso(created),
                "domain_names": [domain], "external_id": null, "group_id": null,
                "tags": [], "organization_fields": {},
            })
        })
        .collect()
}

struct Zendesk {
    base: String,
    /// By id.
    tickets: Vec<Value>,
    organizations: Vec<Value>,
    /// `(updated_at, id)` of each ticket with its position in `tickets`, ascending.
    updates: Vec<((i64, i64), usize)>,
    page_size: AtomicUsize,
    control: Control,
}

/// A running Zendesk stand-in, stopped on drop.
pub struct ZendeskStandIn {
    state: Arc<Zendesk>,
    _server: crate::Background,
}

impl ZendeskStandIn {
    pub async fn start() -> anyhow::Result<ZendeskStandIn> {
        ZendeskStandIn::start_with_page_size(DEFAULT_PAGE_SIZE).await
    }

    /// A stand-in whose pages hold at most `page_size` records, whatever the client asks.
    pub async fn start_with_page_size(page_size: usize) -> anyhow::Result<ZendeskStandIn> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let tickets = tickets(&base);
        let mut updates: Vec<((i64, i64), usize)> = tickets
            .iter()
            .enumerate()
            .map(|(n, t)| {
                (
                    (seconds(t["updated_at"].as_str().unwrap_or_default()), id(t)),
                    n,
                )
            })
            .collect();
        updates.sort();
        let state = Arc::new(Zendesk {
            organizations: organizations(&base),
            base,
            tickets,
            updates,
            page_size: AtomicUsize::new(page_size.max(1)),
            control: Control::default(),
        });
        let router = Router::new()
            .route("/api/v2/incremental/tickets/cursor.json", get(export))
            .route("/api/v2/tickets.json", get(list_tickets))
            .route("/api/v2/organizations.json", get(list_organizations))
            .fallback(unknown)
            .method_not_allowed_fallback(unknown)
            .with_state(state.clone());
        let server = crate::serve_in_background(listener, router);
        Ok(ZendeskStandIn {
            state,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT`; the hub's base URL is this plus `/api/v2`.
    pub fn url(&self) -> &str {
        &self.state.base
    }

    /// The tickets, by id; the same as [`tickets`] with this stand-in's URL.
    pub fn tickets(&self) -> &[Value] {
        &self.state.tickets
    }

    pub fn organizations(&self) -> &[Value] {
        &self.state.organizations
    }

    /// Pages hold at most `size` records from now on.
    pub fn set_page_size(&self, size: usize) {
        self.state.page_size.store(size.max(1), Ordering::SeqCst);
    }

    /// The next `count` requests (after authentication) answer 429.
    pub fn rate_limit_next(&self, count: usize) {
        self.state.control.rate_limit_next(count);
    }

    /// Requests that arrived, refused ones included.
    pub fn requests(&self) -> usize {
        self.state.control.requests()
    }

    /// Every request so far, in arrival order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state.control.arrivals()
    }
}

fn id(record: &Value) -> i64 {
    record["id"].as_i64().unwrap_or_default()
}

fn error(status: StatusCode, error: &str, description: &str) -> Failure {
    let body = json!({"error": error, "description": description});
    Failure { status, body }
}

fn invalid(description: &str) -> Failure {
    error(StatusCode::BAD_REQUEST, "InvalidValue", description)
}

fn unauthorized() -> Response {
    let body = json!({"error": "Couldn't authenticate you"});
    json_response(StatusCode::UNAUTHORIZED, &body)
}

fn rate_limited() -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Number of allowed API requests per minute exceeded",
    )
        .into_response();
    set_header(&mut response, "retry-after", "1");
    response
}

fn authorized(headers: &HeaderMap) -> bool {
    basic_credentials(headers).is_some_and(|(user, password)| {
        user == format!("{ZENDESK_EMAIL}/token") && password == ZENDESK_TOKEN
    })
}

/// The checks every endpoint makes, and the rate-limit headers on whatever it answers.
fn serve(
    state: &Zendesk,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    answer: impl FnOnce(&Zendesk, &[(String, String)]) -> Response,
) -> Response {
    let number = state.control.arrive(method, uri, headers, "");
    let mut response = if !authorized(headers) {
        unauthorized()
    } else if state.control.refused() {
        rate_limited()
    } else {
        answer(state, &query_pairs(uri))
    };
    let remaining = if response.status() == StatusCode::TOO_MANY_REQUESTS {
        0
    } else {
        700usize.saturating_sub(number)
    };
    set_header(&mut response, "x-rate-limit", "700");
    set_header(
        &mut response,
        "x-rate-limit-remaining",
        &remaining.to_string(),
    );
    response
}

async fn export(
    State(state): State<Arc<Zendesk>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&state, &method, &uri, &headers, incremental)
}

async fn list_tickets(
    State(state): State<Arc<Zendesk>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&state, &method, &uri, &headers, |state, pairs| {
        list(state, pairs, &state.tickets, "tickets")
    })
}

async fn list_organizations(
    State(state): State<Arc<Zendesk>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&state, &method, &uri, &headers, |state, pairs| {
        list(state, pairs, &state.organizations, "organizations")
    })
}

async fn unknown(
    State(state): State<Arc<Zendesk>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    serve(&state, &method, &uri, &headers, |_, _| {
        error(StatusCode::NOT_FOUND, "InvalidEndpoint", "Not found").into()
    })
}

// ---------------------------------------------------------------------------------------
// Incremental export

/// `{updated_at}.0||{id}|` in base64, as Zendesk's export cursors decode.
fn export_cursor((updated, id): (i64, i64)) -> String {
    base64_encode(format!("{updated}.0||{id}|").as_bytes())
}

fn parse_export_cursor(cursor: &str) -> Option<(i64, i64)> {
    let text = String::from_utf8(base64_decode(cursor)?).ok()?;
    let (updated, id) = text.split_once("||")?;
    let updated = updated.strip_suffix(".0")?.parse().ok()?;
    Some((updated, id.strip_suffix('|')?.parse().ok()?))
}

/// Where a request starts: after this `(updated_at, id)`.
fn export_position(pairs: &[(String, String)]) -> Result<(i64, i64), Failure> {
    if let Some(cursor) = param(pairs, "cursor") {
        return parse_export_cursor(cursor).ok_or_else(|| invalid("Invalid cursor"));
    }
    let Some(start) = param(pairs, "start_time") else {
        return Err(invalid("start_time is required"));
    };
    let Ok(start) = start.parse::<i64>() else {
        return Err(invalid("start_time must be an integer (unix seconds)"));
    };
    if start > now() - 60 {
        return Err(invalid(
            "Too recent start_time. Use a start_time older than 1 minute",
        ));
    }
    // Ids are positive, so this takes every ticket updated at `start` or later.
    Ok((start, 0))
}

/// `per_page` (1-1000, default 1000), capped at the stand-in's page size.
fn export_page_size(state: &Zendesk, pairs: &[(String, String)]) -> Result<usize, Failure> {
    let asked = match param(pairs, "per_page").map(str::parse::<usize>) {
        None => 1000,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => return Err(invalid("per_page must be an integer from 1 to 1000")),
    };
    Ok(asked.min(state.page_size.load(Ordering::SeqCst)))
}

fn incremental(state: &Zendesk, pairs: &[(String, String)]) -> Response {
    let (position, size) = match (export_position(pairs), export_page_size(state, pairs)) {
        (Ok(position), Ok(size)) => (position, size),
        (Err(failure), _) | (_, Err(failure)) => return failure.into(),
    };
    let rest: Vec<&((i64, i64), usize)> = state
        .updates
        .iter()
        .filter(|(key, _)| *key > position)
        .collect();
    let page = &rest[..size.min(rest.len())];
    let tickets: Vec<&Value> = page.iter().map(|(_, n)| &state.tickets[*n]).collect();
    // The last page still points somewhere: at an empty page that ends the stream again.
    let after = page.last().map_or(position, |(key, _)| *key);
    let cursor = export_cursor(after);
    let mut after_url = format!(
        "{}/api/v2/incremental/tickets/cursor.json?cursor={}",
        state.base,
        encode(&cursor)
    );
    if let Some(per_page) = param(pairs, "per_page") {
        after_url.push_str(&format!("&per_page={}", encode(per_page)));
    }
    let body = json!({
        "tickets": tickets, "after_url": after_url, "after_cursor": cursor,
        "before_url": null, "before_cursor": null, "end_of_stream": rest.len() <= size,
    });
    json_response(StatusCode::OK, &body)
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

// ---------------------------------------------------------------------------------------
// tickets.json and organizations.json

/// `{"o":"nice_id","v":ID}` in base64.
fn list_cursor(id: i64) -> String {
    base64_encode(format!(r#"{{"o":"nice_id","v":{id}}}"#).as_bytes())
}

fn parse_list_cursor(cursor: &str) -> Option<i64> {
    let value: Value = serde_json::from_slice(&base64_decode(cursor)?).ok()?;
    value["v"].as_i64()
}

fn list(state: &Zendesk, pairs: &[(String, String)], items: &[Value], key: &str) -> Response {
    if param(pairs, "page[size]").is_some() {
        cursor_page(state, pairs, items, key)
    } else {
        offset_page(state, pairs, items, key)
    }
}

fn pagination_error(description: &str) -> Failure {
    error(
        StatusCode::BAD_REQUEST,
        "InvalidPaginationParameter",
        description,
    )
}

fn cursor_page(
    state: &Zendesk,
    pairs: &[(String, String)],
    items: &[Value],
    key: &str,
) -> Response {
    let size = match param(pairs, "page[size]").map(str::parse::<usize>) {
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => return pagination_error("page[size] must be an integer from 1 to 100").into(),
    };
    let served = size.min(state.page_size.load(Ordering::SeqCst));
    let bound = |name| match param(pairs, name) {
        None => Ok(None),
        Some(c) => parse_list_cursor(c)
            .map(Some)
            .ok_or_else(|| pagination_error(&format!("Invalid {name}"))),
    };
    let (after, before) = match (bound("page[after]"), bound("page[before]")) {
        (Ok(after), Ok(before)) => (after, before),
        (Err(failure), _) | (_, Err(failure)) => return failure.into(),
    };
    let selected: Vec<&Value> = items
        .iter()
        .filter(|r| after.is_none_or(|a| id(r) > a) && before.is_none_or(|b| id(r) < b))
        .collect();
    let skip = if before.is_some() {
        selected.len().saturating_sub(served)
    } else {
        0
    };
    let page: Vec<&Value> = selected.iter().skip(skip).take(served).copied().collect();
    let has_more = if before.is_some() {
        skip > 0
    } else {
        selected.len() > page.len()
    };
    let after_cursor = page.last().map(|r| list_cursor(id(r)));
    let before_cursor = page.first().map(|r| list_cursor(id(r)));
    let link = |name: &str, cursor: &Option<String>| {
        cursor.as_ref().map(|c| {
            format!(
                "{}/api/v2/{key}.json?page[size]={size}&page[{name}]={}",
                state.base,
                encode(c)
            )
        })
    };
    let body = json!({
        key: page,
        "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
        // `next` even when nothing follows, as Zendesk sends it.
        "links": {"next": link("after", &after_cursor), "prev": link("before", &before_cursor)},
    });
    json_response(StatusCode::OK, &body)
}

fn offset_page(
    state: &Zendesk,
    pairs: &[(String, String)],
    items: &[Value],
    key: &str,
) -> Response {
    let number = match param(pairs, "page").map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return pagination_error("page must be an integer from 1").into(),
    };
    let per_page = match param(pairs, "per_page").map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if n >= 1 => n.min(100),
        Some(_) => return pagination_error("per_page must be an integer from 1").into(),
    };
    let served = per_page.min(state.page_size.load(Ordering::SeqCst));
    let start = (number - 1) * served;
    if start >= 10_000 {
        return pagination_error("Offset pagination is limited to the first 10,000 records").into();
    }
    let page: Vec<&Value> = items.iter().skip(start).take(served).collect();
    let url = |n: usize| {
        format!(
            "{}/api/v2/{key}.json?page={n}&per_page={per_page}",
            state.base
        )
    };
    let next = (start + served < items.len()).then(|| url(number + 1));
    let previous = (number > 1).then(|| url(number - 1));
    let body =
        json!({key: page, "next_page": next, "previous_page": previous, "count": items.len()});
    json_response(StatusCode::OK, &body)
}
