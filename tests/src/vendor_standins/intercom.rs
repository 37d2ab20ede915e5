//! Intercom's `POST /conversations/search` (the hub's base URL is `{url}`).
//!
//! - Auth: `Authorization: Bearer {INTERCOM_TOKEN}`; otherwise 401 `error.list` with
//!   `unauthorized` / `Access Token Invalid`, and without the rate-limit headers (Intercom
//!   leaves them off unauthenticated requests).
//! - `Intercom-Version` is required here (`N.N` or `Unstable`, else 400
//!   `intercom_version_invalid`); the last one seen is [`IntercomStandIn::intercom_version`].
//! - Body: `{"query": Q, "pagination": {"per_page": N, "starting_after": C}, "sort":
//!   {"field", "order"}}`. `Q` is a filter `{"field", "operator", "value"}` or a group
//!   `{"operator": "AND"|"OR", "value": [...]}`, groups nested at most 2 deep, at most 15
//!   items a group. Operators `=`, `!=`, `IN`, `NIN`, `>`, `<` (`>` and `<` strict). Fields:
//!   timestamps `created_at`, `updated_at`, `waiting_since`, `snoozed_until` (values must be
//!   integers: `"1717200000"` is 400 `parameter_invalid`); text `state`, `source.type`,
//!   `source.delivered_as`, `source.author.type`, `source.author.email`, `priority`, `id`;
//!   integers `admin_assignee_id` (or null); booleans `open`, `read`. Anything else is 400.
//! - `per_page` defaults to 20, at most 150 (more is 400 `parameter_invalid`).
//!   `starting_after` counts only inside the body's `pagination`: as a query parameter it
//!   is ignored and page 1 comes back. Order: `created_at` ascending then `id`, unless
//!   `sort` names another timestamp field or `descending`.
//! - Answer: `{"type": "conversation.list", "total_count", "conversations", "pages":
//!   {"type": "pages", "page", "per_page", "total_pages", "next": {"page",
//!   "starting_after"}}}`; the last page has no `next` key at all (also when it is exactly
//!   full).
//! - Authenticated answers carry `X-RateLimit-Limit` (1666 per 10 s), `X-RateLimit-Remaining`
//!   and `X-RateLimit-Reset` (unix seconds: the next 10-second boundary; one second ahead on
//!   a 429). [`IntercomStandIn::rate_limit_next`]: the next requests get 429 `error.list`
//!   `rate_limit_exceeded`, remaining 0, no `Retry-After`.
//!
//! Traps in the data: conversations at 2024-05-01T00:00:00Z and 2024-07-31T23:59:59Z and
//! one each a second outside the window, so a window needs `created_at > start - 1` and
//! `created_at < end + 1` with the strict operators; some share their `created_at` with the
//! one before; admin- and bot-initiated conversations have an author with a null `email`;
//! customer authors' emails are at company domains and gmail.com.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use super::{
    base64_decode, base64_encode, bearer, header, json_response, now, set_header, unix, window,
    Arrival, Control,
};

pub const INTERCOM_TOKEN: &str = "dG9rOjVmM2MzZDRfZDdiMV80ZTlhX2FiMjhfNDkwZDhjMWZmMzE0OjE6MA==";
/// Operations per 10-second window, as `X-RateLimit-Limit` says.
pub const RATE_LIMIT: usize = 1666;

/// `(id, name, email)` of the teammates.
pub const ADMINS: [(i64, &str, &str); 4] = [
    (814860, "Alex Rivera", "alex@ourapp.io"),
    (814861, "Bea Schmidt", "bea@ourapp.io"),
    (902113, "Chris Okafor", "chris@ourapp.io"),
    (902577, "Dana Levi", "dana@ourapp.io"),
];

/// `(contact id, name, email)` of the customers; the first seven are users, the rest leads.
pub const PEOPLE: [(&str, &str, &str); 10] = [
    ("6650a1f2e3d4c5b6a7980001", "Jo Park", "jo@acme.com"),
    ("6650a1f2e3d4c5b6a7980002", "Sam Lee", "sam@globex.io"),
    ("6650a1f2e3d4c5b6a7980003", "Ana Costa", "ana@acme.com"),
    ("6650a1f2e3d4c5b6a7980004", "Raj Patel", "raj@initech.com"),
    ("6650a1f2e3d4c5b6a7980005", "Mia Wong", "mia.wong@gmail.com"),
    ("6650a1f2e3d4c5b6a7980006", "Leo Rossi", "leo@globex.io"),
    ("6650a1f2e3d4c5b6a7980007", "Kim Chen", "kim@acme.com"),
    ("6650a1f2e3d4c5b6a7980008", "Tom Berg", "tom.berg@gmail.com"),
    ("6650a1f2e3d4c5b6a7980009", "Eva Novak", "eva@initech.com"),
    ("6650a1f2e3d4c5b6a7980010", "Ben Adler", "ben@hooli.xyz"),
];

const TEAMS: [&str; 2] = ["5017691", "5017692"];
const SOURCE_TYPES: [&str; 8] = [
    "conversation",
    "conversation",
    "email",
    "conversation",
    "email",
    "whatsapp",
    "conversation",
    "phone_call",
];
const SUBJECTS: [&str; 5] = [
    "Billing question",
    "Cannot export my report",
    "Upgrade to the annual plan",
    "Password reset not arriving",
    "API rate limits",
];
const BODIES: [&str; 6] = [
    "Hi",
    "Hello, I need help with my invoice",
    "Is there a way to export data?",
    "The app keeps logging me out",
    "Can I change my plan?",
    "Thanks for the quick reply!",
];

/// Conversation `i`'s state: `closed` for six in ten, `open` and `snoozed` for two each.
fn state_of(i: u64) -> &'static str {
    match (i * 3) % 10 {
        0..=5 => "closed",
        6 | 7 => "open",
        _ => "snoozed",
    }
}

/// `(author, delivered_as, contact)` of conversation `i`.
fn author(i: u64) -> (Value, &'static str, Value) {
    let person = if matches!(i % 12, 4 | 7 | 10) {
        ((i * 5 + 3) % 10) as usize
    } else {
        ((i * 5) % 10) as usize
    };
    let (contact_id, name, email) = PEOPLE[person];
    let user = person < 7;
    let contact = json!({
        "type": "contact", "id": contact_id,
        "external_id": user.then(|| format!("usr_{:04}", person + 1)),
    });
    let (author, delivered_as) = match i % 12 {
        4 | 10 => {
            let (id, name, _) = ADMINS[((i / 12) % 4) as usize];
            let author =
                json!({"type": "admin", "id": id.to_string(), "name": name, "email": null});
            (author, "admin_initiated")
        }
        7 => {
            let author = json!({"type": "bot", "id": "7731042", "name": "Operator", "email": null});
            (author, "automated")
        }
        _ => {
            let kind = if user { "user" } else { "lead" };
            let author = json!({"type": kind, "id": contact_id, "name": name, "email": email});
            (author, "customer_initiated")
        }
    };
    (author, delivered_as, contact)
}

fn statistics(i: u64, created: i64, span: i64, state: &str, customer: bool) -> Value {
    let assigned = i % 5 != 4;
    let reply = (i % 6 != 1).then(|| (60 + ((i * 337) % 7200) as i64).min(span / 2));
    let closed = state == "closed";
    let first_close = if i.is_multiple_of(4) { span / 2 } else { span };
    let contact_reply = if customer || i.is_multiple_of(2) {
        Some(created + if customer { 0 } else { 1800 })
    } else {
        None
    };
    json!({
        "type": "conversation_statistics",
        "time_to_assignment": assigned.then_some(((i * 41) % 300) as i64),
        "time_to_admin_reply": reply,
        "time_to_first_close": closed.then_some(first_close),
        "time_to_last_close": closed.then_some(span),
        "median_time_to_reply": reply,
        "first_contact_reply_at": contact_reply,
        "first_admin_reply_at": reply.map(|r| created + r),
        "first_close_at": closed.then_some(created + first_close),
        "last_close_at": closed.then_some(created + span),
        "count_reopens": i64::from(closed && i.is_multiple_of(4)),
        "count_assignments": i64::from(assigned),
        "count_conversation_parts": 2 + (i % 9) as i64,
    })
}

/// Conversation `i`, created at `created` (unix seconds).
fn conversation(i: u64, created: i64) -> Value {
    let state = state_of(i);
    let span = 600 + ((i * 2293) % (4 * 86_400)) as i64;
    let updated = created + span;
    let source_type = SOURCE_TYPES[((i * 7) % 8) as usize];
    let admin = (i % 5 != 4).then(|| ADMINS[((i * 3) % 4) as usize].0);
    let (author, delivered_as, contact) = author(i);
    let customer = delivered_as == "customer_initiated";
    let subject = if source_type == "email" {
        SUBJECTS[((i * 3) % 5) as usize]
    } else {
        ""
    };
    json!({
        "type": "conversation",
        "id": (2_000_000_000 + i * 7).to_string(),
        "created_at": created,
        "updated_at": updated,
        "waiting_since": (state == "open" && i.is_multiple_of(2)).then_some(updated),
        "snoozed_until": (state == "snoozed").then_some(updated + 86_400),
        "open": state != "closed",
        "state": state,
        "read": !i.is_multiple_of(4),
        "priority": if i.is_multiple_of(7) { "priority" } else { "not_priority" },
        "admin_assignee_id": admin,
        "team_assignee_id": (!i.is_multiple_of(3)).then(|| TEAMS[(i % 2) as usize]),
        "source": {
            "type": source_type,
            "id": (300_000_000 + i).to_string(),
            "delivered_as": delivered_as,
            "subject": subject,
            "body": format!("<p>{}</p>", BODIES[((i * 11) % 6) as usize]),
            "author": author,
            "url": (i % 5 == 1).then_some("https://www.ourapp.io/pricing"),
        },
        "contacts": {"type": "contact.list", "contacts": [contact]},
        "teammates": {"type": "admin.list", "admins": admin.map_or_else(Vec::new, |id| vec![json!({"type": "admin", "id": id.to_string()})])},
        "statistics": statistics(i, created, span, state, customer),
    })
}

/// Every conversation, by `created_at` then `id` (ids are ten-digit strings, so text and
/// numeric order agree): 3 to 7 a day over the window, the first at 2024-05-01T00:00:00Z
/// and the last at 2024-07-31T23:59:59Z, plus one a second before and one a second after.
///
/// Conversation `i` (id `2000000000 + 7i`): state `closed` when `(i*3) % 10 < 6`, `open`
/// for 6-7, `snoozed` for 8-9 (`open: true` unless closed); author `admin` when `i % 12` is
/// 4 or 10, `bot` when it is 7 (both with `email: null`), else the customer
/// `PEOPLE[(i*5) % 10]` (`user` for the first seven, `lead` for the rest); no admin
/// assignee when `i % 5 == 4`; `source.type` `SOURCE_TYPES[(i*7) % 8]`; `updated_at` 10
/// minutes to 4 days after `created_at`. When `i % 13 == 0` a conversation has the same
/// `created_at` as the one before it on its day.
pub fn conversations() -> Vec<Value> {
    let mut out = vec![conversation(0, unix(super::first_day()) - 1)];
    let mut i = 1;
    for (d, day) in window() {
        let count = 3 + (d * 7) % 5;
        let mut previous = None;
        for k in 0..count {
            let hour = (k * 3 + d * 5) % 24;
            let mut created =
                unix(day) + (hour * 3600 + ((i * 17) % 60) * 60 + (i * 7) % 60) as i64;
            if d == 0 && k == 0 {
                created = unix(day);
            } else if day == super::last_day() && k + 1 == count {
                created = unix(day) + 86_399;
            } else if i % 13 == 0 {
                created = previous.unwrap_or(created);
            }
            previous = Some(created);
            out.push(conversation(i, created));
            i += 1;
        }
    }
    out.push(conversation(i, unix(super::last_day()) + 86_400));
    out.sort_by_key(|c| {
        (
            c["created_at"].as_i64(),
            c["id"].as_str().map(str::to_owned),
        )
    });
    out
}

struct Intercom {
    conversations: Vec<Value>,
    control: Control,
}

/// A running Intercom stand-in, stopped on drop.
pub struct IntercomStandIn {
    base: String,
    state: Arc<Intercom>,
    _server: crate::Background,
}

impl IntercomStandIn {
    pub async fn start() -> anyhow::Result<IntercomStandIn> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Intercom {
            conversations: conversations(),
            control: Control::default(),
        });
        let router = Router::new()
            .route("/conversations/search", post(search))
            .fallback(unknown)
            .method_not_allowed_fallback(unknown)
            .with_state(state.clone());
        let server = crate::serve_in_background(listener, router);
        Ok(IntercomStandIn {
            base,
            state,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT`, the hub's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The conversations by `created_at` then `id`; the same as [`conversations`].
    pub fn conversations(&self) -> &[Value] {
        &self.state.conversations
    }

    /// The next `count` requests (after authentication) answer 429.
    pub fn rate_limit_next(&self, count: usize) {
        self.state.control.rate_limit_next(count);
    }

    /// Requests that arrived, refused ones included.
    pub fn requests(&self) -> usize {
        self.state.control.requests()
    }

    /// Every request so far, in arrival order (with its JSON body).
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state.control.arrivals()
    }

    /// The last `Intercom-Version` header received.
    pub fn intercom_version(&self) -> Option<String> {
        self.state.control.version()
    }
}

// ---------------------------------------------------------------------------------------
// Serving

fn request_id(number: usize) -> String {
    format!("{number:08x}-5c1d-4e2f-9a3b-standin{number:05}")
}

fn error_list(status: StatusCode, number: usize, code: &str, message: &str) -> Response {
    let body = json!({
        "type": "error.list", "request_id": request_id(number),
        "errors": [{"code": code, "message": message}],
    });
    json_response(status, &body)
}

fn rate_headers(response: &mut Response, number: usize, refused: bool) {
    let (remaining, reset) = if refused {
        (0, now() + 1)
    } else {
        (RATE_LIMIT.saturating_sub(number), (now() / 10 + 1) * 10)
    };
    set_header(response, "x-ratelimit-limit", &RATE_LIMIT.to_string());
    set_header(response, "x-ratelimit-remaining", &remaining.to_string());
    set_header(response, "x-ratelimit-reset", &reset.to_string());
}

fn valid_version(version: &str) -> bool {
    version == "Unstable"
        || version.split_once('.').is_some_and(|(major, minor)| {
            [major, minor]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
}

async fn search(
    State(state): State<Arc<Intercom>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body);
    let number = state.control.arrive(&method, &uri, &headers, &text);
    if bearer(&headers) != Some(INTERCOM_TOKEN) {
        let status = StatusCode::UNAUTHORIZED;
        return error_list(status, number, "unauthorized", "Access Token Invalid");
    }
    let refused = state.control.refused();
    let version = header(&headers, "intercom-version");
    state.control.note_version(version);
    let mut response = if refused {
        let message = format!("Exceeded rate limit of {RATE_LIMIT} in 10_seconds");
        let status = StatusCode::TOO_MANY_REQUESTS;
        error_list(status, number, "rate_limit_exceeded", &message)
    } else if !version.is_some_and(valid_version) {
        let message = "Requested resource version is not valid (this stand-in requires an Intercom-Version header)";
        error_list(
            StatusCode::BAD_REQUEST,
            number,
            "intercom_version_invalid",
            message,
        )
    } else {
        match Search::parse(&text) {
            Ok(search) => search.answer(&state.conversations),
            Err(message) => error_list(
                StatusCode::BAD_REQUEST,
                number,
                "parameter_invalid",
                &message,
            ),
        }
    };
    rate_headers(&mut response, number, refused);
    response
}

async fn unknown(
    State(state): State<Arc<Intercom>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let number = state.control.arrive(&method, &uri, &headers, "");
    error_list(
        StatusCode::NOT_FOUND,
        number,
        "not_found",
        "Resource Not Found",
    )
}

// ---------------------------------------------------------------------------------------
// The query language

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Timestamp,
    Text,
    Integer,
    Boolean,
}

fn kind_of(field: &str) -> Option<Kind> {
    Some(match field {
        "created_at" | "updated_at" | "waiting_since" | "snoozed_until" => Kind::Timestamp,
        "state"
        | "source.type"
        | "source.delivered_as"
        | "source.author.type"
        | "source.author.email"
        | "priority"
        | "id" => Kind::Text,
        "admin_assignee_id" => Kind::Integer,
        "open" | "read" => Kind::Boolean,
        _ => return None,
    })
}

/// The value of a (dotted) field of a conversation.
fn field<'a>(conversation: &'a Value, name: &str) -> &'a Value {
    name.split('.').fold(conversation, |v, part| &v[part])
}

enum Filter {
    Compare {
        field: String,
        operator: String,
        value: Value,
    },
    Group {
        and: bool,
        parts: Vec<Filter>,
    },
}

/// Whether `value` is a valid operand for a field of `kind`.
fn operand_fits(kind: Kind, value: &Value) -> bool {
    match kind {
        Kind::Timestamp => value.as_i64().is_some(),
        Kind::Text => value.is_string(),
        Kind::Integer => value.is_null() || value.as_i64().is_some(),
        Kind::Boolean => value.is_boolean(),
    }
}

impl Filter {
    /// `depth` is the number of groups around this item.
    fn parse(item: &Value, depth: usize) -> Result<Filter, String> {
        let operator = item["operator"]
            .as_str()
            .ok_or("a filter needs an operator")?;
        if item.get("field").is_none() {
            return Filter::group(item, operator, depth);
        }
        let name = item["field"].as_str().ok_or("field must be a string")?;
        let kind = kind_of(name).ok_or_else(|| format!("{name} is not a searchable field"))?;
        let value = item.get("value").ok_or("a filter needs a value")?;
        let fits = match operator {
            "=" | "!=" => operand_fits(kind, value),
            ">" | "<" => {
                matches!(kind, Kind::Timestamp | Kind::Integer) && value.as_i64().is_some()
            }
            "IN" | "NIN" => value
                .as_array()
                .is_some_and(|items| items.iter().all(|v| operand_fits(kind, v))),
            _ => {
                return Err(format!(
                    "Operator {operator} is not supported by this stand-in"
                ))
            }
        };
        if !fits {
            return Err(format!(
                "{value} is not a valid value for {name} {operator}"
            ));
        }
        Ok(Filter::Compare {
            field: name.to_owned(),
            operator: operator.to_owned(),
            value: value.clone(),
        })
    }

    fn group(item: &Value, operator: &str, depth: usize) -> Result<Filter, String> {
        let and = match operator {
            "AND" => true,
            "OR" => false,
            _ => return Err(format!("{operator} is not a valid operator for a group")),
        };
        if depth >= 2 {
            return Err("Filters can be nested at most 2 levels deep".to_owned());
        }
        let items = item["value"]
            .as_array()
            .ok_or("a group's value must be an array")?;
        if items.is_empty() || items.len() > 15 {
            return Err("A group holds from 1 to 15 filters".to_owned());
        }
        let parts = items
            .iter()
            .map(|i| Filter::parse(i, depth + 1))
            .collect::<Result<_, _>>()?;
        Ok(Filter::Group { and, parts })
    }

    fn matches(&self, conversation: &Value) -> bool {
        match self {
            Filter::Group { and: true, parts } => parts.iter().all(|p| p.matches(conversation)),
            Filter::Group { and: false, parts } => parts.iter().any(|p| p.matches(conversation)),
            Filter::Compare {
                field: name,
                operator,
                value,
            } => {
                let actual = field(conversation, name);
                let number = |v: &Value| v.as_i64();
                match operator.as_str() {
                    "=" => actual == value,
                    "!=" => actual != value,
                    ">" => number(actual)
                        .zip(number(value))
                        .is_some_and(|(a, v)| a > v),
                    "<" => number(actual)
                        .zip(number(value))
                        .is_some_and(|(a, v)| a < v),
                    "IN" => value.as_array().is_some_and(|vs| vs.contains(actual)),
                    _ => value.as_array().is_some_and(|vs| !vs.contains(actual)),
                }
            }
        }
    }
}

/// One search request.
struct Search {
    filter: Filter,
    per_page: usize,
    /// `(sort value × 1000, id)` of the last conversation of the previous page.
    after: Option<(i64, i64)>,
    sort_field: String,
    descending: bool,
}

fn cursor((key, id): (i64, i64)) -> String {
    base64_encode(format!("[{key},{id}]").as_bytes())
}

fn parse_cursor(text: &str) -> Option<(i64, i64)> {
    let parts: Vec<i64> = serde_json::from_slice(&base64_decode(text)?).ok()?;
    match parts[..] {
        [key, id] => Some((key, id)),
        _ => None,
    }
}

impl Search {
    fn parse(text: &str) -> Result<Search, String> {
        let body: Value =
            serde_json::from_str(text).map_err(|e| format!("The body is not valid JSON: {e}"))?;
        let query = body.get("query").ok_or("query is required")?;
        let filter = Filter::parse(query, 0)?;
        let pagination = &body["pagination"];
        let per_page = match &pagination["per_page"] {
            Value::Null => 20,
            v => match v.as_u64() {
                Some(n @ 1..=150) => n as usize,
                _ => {
                    return Err(format!(
                        "per_page must be an integer from 1 to 150, got {v}"
                    ))
                }
            },
        };
        let after = match &pagination["starting_after"] {
            Value::Null => None,
            Value::String(c) => Some(parse_cursor(c).ok_or("starting_after is not valid")?),
            _ => return Err("starting_after must be a string".to_owned()),
        };
        let sort_field = body["sort"]["field"].as_str().unwrap_or("created_at");
        if kind_of(sort_field) != Some(Kind::Timestamp) {
            return Err(format!("Cannot sort by {sort_field}"));
        }
        let descending = match body["sort"]["order"].as_str() {
            None | Some("ascending" | "asc") => false,
            Some("descending" | "desc") => true,
            Some(other) => return Err(format!("{other} is not a sort order")),
        };
        Ok(Search {
            filter,
            per_page,
            after,
            sort_field: sort_field.to_owned(),
            descending,
        })
    }

    fn key(&self, conversation: &Value) -> (i64, i64) {
        let value = field(conversation, &self.sort_field).as_i64().unwrap_or(0);
        let id = conversation["id"].as_str().and_then(|s| s.parse().ok());
        (value * 1000, id.unwrap_or(0))
    }

    fn answer(&self, conversations: &[Value]) -> Response {
        let mut selected: Vec<(i64, i64, &Value)> = conversations
            .iter()
            .filter(|c| self.filter.matches(c))
            .map(|c| {
                let (key, id) = self.key(c);
                (key, id, c)
            })
            .collect();
        selected.sort_by_key(|&(key, id, _)| (key, id));
        if self.descending {
            selected.reverse();
        }
        // The conversations up to the cursor, in the order of travel, are behind us.
        let passed = |key: (i64, i64), after: (i64, i64)| {
            if self.descending {
                key >= after
            } else {
                key <= after
            }
        };
        let start = self.after.map_or(0, |after| {
            selected
                .iter()
                .take_while(|(key, id, _)| passed((*key, *id), after))
                .count()
        });
        let page: Vec<&Value> = selected
            .iter()
            .skip(start)
            .take(self.per_page)
            .map(|(_, _, c)| *c)
            .collect();
        let total = selected.len();
        let number = start / self.per_page + 1;
        let mut pages = json!({
            "type": "pages", "page": number, "per_page": self.per_page,
            "total_pages": total.div_ceil(self.per_page),
        });
        if start + page.len() < total {
            let (key, id, _) = selected[start + page.len() - 1];
            pages["next"] = json!({"page": number + 1, "starting_after": cursor((key, id))});
        }
        let body = json!({
            "type": "conversation.list", "total_count": total,
            "conversations": page, "pages": pages,
        });
        json_response(StatusCode::OK, &body)
    }
}
