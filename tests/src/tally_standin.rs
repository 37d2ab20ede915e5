//! The small API the shipped Python and JavaScript example plugins read (plugins/python,
//! plugins/js): daily active users and events, paged, behind a bearer key.
//!
//! `GET /v1/days?from=YYYY-MM-DD&to=YYYY-MM-DD&page=N` with `Authorization: Bearer KEY`
//! answers `{"data": [{"date", "users", "events"}...], "next_page": N | null}`, seven days
//! a page, oldest first. A missing or wrong key is `401 {"error": "unauthorized"}`; a bad
//! date or page is `400 {"error": "..."}`. Test controls: [`TallyStandIn::refuse_next`]
//! answers the next requests `429 {"error": "rate_limited"}` with `Retry-After: 1`.
//! Numbers come from [`day`], so tests compute their expectations without the plugins.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{Datelike, Days, NaiveDate};
use serde::Deserialize;
use serde_json::{json, Value};

/// The key the stand-in accepts.
pub const API_KEY: &str = "tally-key-0123456789abcdef";
/// Days per page.
pub const PAGE_DAYS: u64 = 7;

/// The figures of one day: `(users, events)`.
pub fn day(date: NaiveDate) -> (i64, i64) {
    let n = i64::from(date.ordinal()) + 366 * i64::from(date.year() % 7);
    let users = 5 + (n * 7) % 50;
    (users, users * 3 + n % 7)
}

/// The hub's summary and daily answer for `start..=end`, computed from [`day`].
pub fn expected(start: NaiveDate, end: NaiveDate) -> (i64, i64, Vec<Value>) {
    let (mut users, mut events, mut daily) = (0, 0, Vec::new());
    for date in start.iter_days().take_while(|d| *d <= end) {
        let (u, e) = day(date);
        users += u;
        events += e;
        daily.push(json!({"date": date.to_string(), "users": u, "events": e}));
    }
    (users, events, daily)
}

#[derive(Default)]
struct Counters {
    refuse: AtomicUsize,
    requests: AtomicUsize,
}

/// A running stand-in.
pub struct TallyStandIn {
    base: String,
    state: Arc<Counters>,
    _server: crate::Background,
}

impl TallyStandIn {
    pub async fn start() -> anyhow::Result<TallyStandIn> {
        let state = Arc::new(Counters::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let router = Router::new()
            .route("/v1/days", get(days))
            .with_state(state.clone());
        let server = crate::serve_in_background(listener, router);
        Ok(TallyStandIn {
            base,
            state,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The next `count` requests answer 429 with `Retry-After: 1`.
    pub fn refuse_next(&self, count: usize) {
        self.state.refuse.store(count, Ordering::SeqCst);
    }

    /// Requests that arrived, refused ones included.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

#[derive(Deserialize)]
struct Window {
    from: String,
    to: String,
    page: Option<String>,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

async fn days(
    State(state): State<Arc<Counters>>,
    headers: HeaderMap,
    Query(window): Query<Window>,
) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {API_KEY}"));
    if !authorized {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let refused = state
        .refuse
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    if refused.is_ok() {
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        response.headers_mut().insert(header::RETRY_AFTER, 1.into());
        return response;
    }
    let parse = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
    let (Some(from), Some(to)) = (parse(&window.from), parse(&window.to)) else {
        return error(StatusCode::BAD_REQUEST, "from and to must be YYYY-MM-DD");
    };
    let page: u64 = match window.page.as_deref().map(str::parse) {
        None => 1,
        Some(Ok(page)) if page >= 1 => page,
        Some(_) => return error(StatusCode::BAD_REQUEST, "page must be a number from 1"),
    };
    let first = from + Days::new((page - 1) * PAGE_DAYS);
    let data: Vec<Value> = first
        .iter_days()
        .take(PAGE_DAYS as usize)
        .take_while(|d| *d <= to)
        .map(|date| {
            let (users, events) = day(date);
            json!({"date": date.to_string(), "users": users, "events": events})
        })
        .collect();
    let more = first + Days::new(PAGE_DAYS) <= to;
    Json(json!({"data": data, "next_page": more.then_some(page + 1)})).into_response()
}
