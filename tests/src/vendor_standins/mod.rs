//! Local stand-ins for three SaaS APIs the hub's YAML REST sources read, speaking their
//! wire formats as `shared/reference/wire-contracts.md` describes them (sections "1.
//! Stripe", "2. Zendesk Support", "3. Intercom"), so end-to-end tests can run a source
//! file written for the real vendor against 127.0.0.1:
//!
//! - [`StripeStandIn`]: `GET /v1/charges` (base URL `{url}/v1`).
//! - [`ZendeskStandIn`]: the incremental ticket export, `tickets.json` in cursor and
//!   offset mode, `organizations.json` (base URL `{url}/api/v2`).
//! - [`IntercomStandIn`]: `POST /conversations/search` (base URL `{url}`).
//!
//! Each serves a deterministic dataset spanning [`first_day`]..=[`last_day`] (UTC),
//! generated from the record's index with plain arithmetic, and exposes it as the JSON
//! the vendor sends, so tests compute their expectations from the data, never from the
//! hub. Each counts requests, logs them ([`Arrival`]), records the API version header it
//! was sent, and answers the next `n` requests 429 on [`StripeStandIn::rate_limit_next`]
//! (and the like), with the vendor's body and headers. Every bad request gets the vendor's
//! error shape with a 4xx. The traps each one sets are listed in its module's header.

pub mod intercom;
pub mod stripe;
pub mod zendesk;

pub use intercom::IntercomStandIn;
pub use stripe::StripeStandIn;
pub use zendesk::ZendeskStandIn;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{Days, NaiveDate};
use serde_json::Value;

/// The first day of every stand-in's data (UTC).
pub fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 5, 1).expect("a valid date")
}

/// The last day of every stand-in's data (UTC), inclusive.
pub fn last_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 7, 31).expect("a valid date")
}

/// Midnight UTC of `date`, in unix seconds.
pub fn unix(date: NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp()
}

/// The UTC day of a unix-seconds instant.
pub fn day_of(seconds: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp(seconds, 0)
        .expect("a representable instant")
        .date_naive()
}

/// The current time in unix seconds.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The days of the data, with their position from 0.
fn window() -> impl Iterator<Item = (u64, NaiveDate)> {
    (0u64..)
        .map(|d| (d, first_day() + Days::new(d)))
        .take_while(|(_, day)| *day <= last_day())
}

/// One request as a stand-in received it.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub method: String,
    /// Path and query exactly as sent (still percent-encoded).
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Arrival {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The decoded query parameters, in order.
    pub fn query(&self) -> Vec<(String, String)> {
        let query = self.uri.split_once('?').map_or("", |(_, q)| q);
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }
}

/// The counters and log every stand-in keeps, and its 429 switch.
#[derive(Default)]
struct Control {
    requests: AtomicUsize,
    refuse: AtomicUsize,
    version: Mutex<Option<String>>,
    log: Mutex<Vec<Arrival>>,
}

impl Control {
    /// Logs a request; returns its number, from 1.
    fn arrive(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &str) -> usize {
        let arrival = Arrival {
            method: method.to_string(),
            uri: uri.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    (k.to_string(), value)
                })
                .collect(),
            body: body.to_owned(),
        };
        lock(&self.log).push(arrival);
        self.requests.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Whether this request is one of those to refuse with a 429 (consumes one).
    fn refused(&self) -> bool {
        self.refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Records the version header of a request, when it has one.
    fn note_version(&self, version: Option<&str>) {
        if let Some(version) = version {
            *lock(&self.version) = Some(version.to_owned());
        }
    }

    fn rate_limit_next(&self, count: usize) {
        self.refuse.store(count, Ordering::SeqCst);
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn version(&self) -> Option<String> {
        lock(&self.version).clone()
    }

    fn arrivals(&self) -> Vec<Arrival> {
        lock(&self.log).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A header's value as text.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The decoded query parameters of `uri`, in order (`created%5Bgte%5D` is `created[gte]`).
fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The first value of query parameter `name`.
fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A JSON answer.
fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// An error answer not rendered yet: small, so it travels in a `Result`.
struct Failure {
    status: StatusCode,
    body: Value,
}

impl From<Failure> for Response {
    fn from(failure: Failure) -> Response {
        json_response(failure.status, &failure.body)
    }
}

/// Sets header `name` on `response` (values that are not valid header text are dropped).
fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(name), value);
    }
}

/// The user and password of an `Authorization: Basic ...` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = header(headers, "authorization")?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The token of an `Authorization: Bearer ...` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    header(headers, "authorization")?.strip_prefix("Bearer ")
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 section 4).
fn base64_encode(input: &[u8]) -> String {
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
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The bytes of standard base64 text (padding optional); `None` when it is not base64.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u32> = text
        .trim_end_matches('=')
        .bytes()
        .map(|c| ALPHABET.iter().position(|&a| a == c).map(|p| p as u32))
        .collect::<Option<_>>()?;
    if digits.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | (d << (18 - 6 * i)));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("1580753798.0||432|", "MTU4MDc1Mzc5OC4wfHw0MzJ8"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), output);
            assert_eq!(base64_decode(output).as_deref(), Some(input.as_bytes()));
        }
        assert_eq!(base64_decode("a b"), None);
    }
}
