//! A local Salesforce org for end-to-end tests, speaking the REST wire format of
//! `shared/reference/wire-contracts.md`: the OAuth 2.0 client-credentials token endpoint,
//! SOQL over `/services/data/vXX.X/query` with `nextRecordsUrl` paging, aggregate results
//! (`AggregateResult`, `exprN` names, `COUNT()` in `totalSize`), `/limits`, and error
//! arrays (`INVALID_SESSION_ID` on 401, `REQUEST_LIMIT_EXCEEDED` on 403,
//! `MALFORMED_QUERY`, `INVALID_FIELD`...).
//!
//! Queries are really evaluated over [`Org`]'s records by a small SOQL interpreter (select
//! fields, relationship fields, `COUNT()`, `COUNT`, `COUNT_DISTINCT`, `SUM`, `DAY_ONLY`,
//! `WHERE` conditions joined by `AND`, `GROUP BY`, `LIMIT`), not matched against canned
//! text, so a plugin that builds a wrong query gets Salesforce's error or wrong numbers.
//! What it does not know (`ORDER BY`, `OR`, date literals such as `LAST_N_DAYS:30`) is
//! refused as MALFORMED_QUERY. Tests compute their expectations from [`Org`] directly.
//!
//! Test controls: [`SalesforceStandIn::expire_sessions`] makes every issued token invalid,
//! [`SalesforceStandIn::exceed_request_limit`] makes the next API calls answer
//! REQUEST_LIMIT_EXCEEDED, [`SalesforceStandIn::set_page_size`] shrinks query batches
//! (Salesforce's default is 2,000) so paging shows with little data.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use serde_json::{json, Map, Value};

/// The connected app's consumer key the stand-in accepts.
pub const CLIENT_ID: &str = "3MVG9standin.consumer.key";
/// The connected app's consumer secret the stand-in accepts.
pub const CLIENT_SECRET: &str = "standin-consumer-secret-0123456789";
/// Versions the stand-in serves, as `/services/data/vXX.X/`.
const VERSIONS: [&str; 3] = ["v60.0", "v61.0", "v62.0"];
/// Salesforce's default query batch size.
pub const DEFAULT_PAGE_SIZE: usize = 2000;

// ---------------------------------------------------------------------------------------
// The org's data

/// An `Account`.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
}

/// A `Contact`, possibly without an account.
#[derive(Debug, Clone)]
pub struct Contact {
    pub id: String,
    pub account_id: Option<String>,
    pub created: DateTime<Utc>,
}

/// An `Opportunity`. `IsClosed` and `IsWon` follow from the stage, as in Salesforce.
#[derive(Debug, Clone)]
pub struct Opportunity {
    pub id: String,
    pub name: String,
    pub account_id: Option<String>,
    pub amount: Option<f64>,
    pub stage: &'static str,
    pub created: DateTime<Utc>,
}

impl Opportunity {
    pub fn is_closed(&self) -> bool {
        self.stage.starts_with("Closed")
    }

    pub fn is_won(&self) -> bool {
        self.stage == "Closed Won"
    }
}

/// Everything the stand-in's org holds.
#[derive(Debug, Clone, Default)]
pub struct Org {
    pub accounts: Vec<Account>,
    pub contacts: Vec<Contact>,
    pub opportunities: Vec<Opportunity>,
}

/// Account names; a few also exist as HubSpot companies in the HubSpot stand-in, so merged
/// clients show both CRMs adding up.
pub const ACCOUNT_NAMES: [&str; 26] = [
    "Northwind Traders",
    "Contoso Realty",
    "Fabrikam Homes",
    "Tailspin Investments",
    "Wingtip Properties",
    "Adventure Works",
    "Blue Yonder Estates",
    "Coho Capital",
    "Litware Lending",
    "Proseware Partners",
    "Lamna Holdings",
    "Margie's Rentals",
    "Trey Research",
    "Woodgrove Capital",
    "Alpine Ski House",
    "Fourth Coffee",
    "Graphic Design Institute",
    "Humongous Insurance",
    "Lucerne Publishing",
    "Nod Publishers",
    "Southridge Video",
    "VanArsdel Homes",
    "Wide World Importers",
    "City Power & Light",
    "Datum Corporation",
    "Consolidated Messenger",
];

const STAGES: [&str; 5] = [
    "Prospecting",
    "Qualification",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];

/// SplitMix64: deterministic data without a `rand` dependency.
pub(crate) struct Random(u64);

impl Random {
    pub(crate) fn new(seed: u64) -> Random {
        Random(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A moment on one of the `days` days before `today` or on `today`.
    pub(crate) fn recent(&mut self, today: NaiveDate, days: u64) -> DateTime<Utc> {
        let days_ago = self.below(days + 1);
        self.moment(today, days_ago)
    }

    /// A moment on the day `days_ago` days before `today`, at a random second.
    pub(crate) fn moment(&mut self, today: NaiveDate, days_ago: u64) -> DateTime<Utc> {
        let day = today - Days::new(days_ago);
        let second = self.below(86_400) as u32;
        let time = NaiveTime::from_num_seconds_from_midnight_opt(second, 0).expect("second of day");
        Utc.from_utc_datetime(&day.and_time(time))
    }
}

/// An 18-character Salesforce id with the object's key prefix.
fn salesforce_id(prefix: &str, n: usize) -> String {
    format!("{prefix}5g00000{n:05}AAA")
}

impl Org {
    /// A deterministic org whose records were created over the 120 days up to `today`.
    pub fn generate(today: NaiveDate) -> Org {
        let mut random = Random::new(0x5A1E_5F0C);
        let accounts: Vec<Account> = ACCOUNT_NAMES
            .iter()
            .enumerate()
            .map(|(n, name)| Account {
                id: salesforce_id("001", n),
                name: (*name).to_owned(),
                created: random.moment(today, 200 + n as u64),
            })
            .collect();
        let pick_account = |random: &mut Random| -> Option<String> {
            // One record in ten has no account; accounts further down the list get fewer.
            if random.below(10) == 0 {
                return None;
            }
            let skewed = random
                .below(accounts.len() as u64)
                .min(random.below(accounts.len() as u64));
            Some(accounts[skewed as usize].id.clone())
        };
        let contacts = (0..420)
            .map(|n| Contact {
                id: salesforce_id("003", n),
                account_id: pick_account(&mut random),
                created: random.recent(today, 120),
            })
            .collect();
        let opportunities = (0..360)
            .map(|n| Opportunity {
                id: salesforce_id("006", n),
                name: format!("Opportunity {n}"),
                account_id: pick_account(&mut random),
                // Whole multiples of 50 add up exactly in f64, whatever the order.
                amount: (random.below(20) != 0).then(|| (10 + random.below(990)) as f64 * 50.0),
                stage: STAGES[random.below(STAGES.len() as u64) as usize],
                created: random.recent(today, 120),
            })
            .collect();
        Org {
            accounts,
            contacts,
            opportunities,
        }
    }

    fn account(&self, id: Option<&str>) -> Option<&Account> {
        id.and_then(|id| self.accounts.iter().find(|a| a.id == id))
    }

    /// What the Salesforce plugin should answer for the days `start..=end` (UTC), in the
    /// hub's response shape, computed from the records directly: no SOQL, no plugin code.
    /// Clients are the top 20 accounts by opportunities, then name.
    pub fn expected(&self, start: NaiveDate, end: NaiveDate) -> Value {
        let within = |moment: &DateTime<Utc>| (start..=end).contains(&moment.date_naive());
        let contacts: Vec<&Contact> = self
            .contacts
            .iter()
            .filter(|c| within(&c.created))
            .collect();
        let opportunities: Vec<&Opportunity> = self
            .opportunities
            .iter()
            .filter(|o| within(&o.created))
            .collect();
        let amount = |o: &Opportunity| o.amount.unwrap_or(0.0);
        let outcomes = |opportunities: &[&Opportunity]| {
            json!({
                "pipeline_amount": opportunities.iter().filter(|o| !o.is_closed()).map(|o| amount(o)).sum::<f64>(),
                "won_deals": opportunities.iter().filter(|o| o.is_won()).count(),
                "won_amount": opportunities.iter().filter(|o| o.is_won()).map(|o| amount(o)).sum::<f64>(),
            })
        };
        let with_outcomes = |mut record: Value, opportunities: &[&Opportunity]| {
            for (key, value) in outcomes(opportunities).as_object().expect("object") {
                record[key] = value.clone();
            }
            record
        };

        let accounts: BTreeSet<&str> = opportunities
            .iter()
            .filter_map(|o| o.account_id.as_deref())
            .collect();
        let summary = with_outcomes(
            json!({
                "total_users": contacts.len(),
                "total_events": opportunities.len(),
                // Not provided by the CRM; the merged answer shows it as 0.
                "page_views": 0,
                "active_clients": accounts.len(),
            }),
            &opportunities,
        );

        let mut days: BTreeMap<NaiveDate, (usize, usize, f64)> = BTreeMap::new();
        for contact in &contacts {
            days.entry(contact.created.date_naive()).or_default().0 += 1;
        }
        for opportunity in &opportunities {
            let day = days.entry(opportunity.created.date_naive()).or_default();
            day.1 += 1;
            day.2 += amount(opportunity);
        }
        let daily: Vec<Value> = days
            .into_iter()
            .map(|(date, (users, events, amount))| json!({"date": date.to_string(), "users": users, "events": events, "amount": amount}))
            .collect();

        let mut clients: Vec<(String, Vec<&Opportunity>, usize)> = accounts
            .iter()
            .map(|id| {
                let name = self
                    .account(Some(id))
                    .map_or_else(|| (*id).to_owned(), |a| a.name.clone());
                let theirs: Vec<&Opportunity> = opportunities
                    .iter()
                    .copied()
                    .filter(|o| o.account_id.as_deref() == Some(*id))
                    .collect();
                let contacts = contacts
                    .iter()
                    .filter(|c| c.account_id.as_deref() == Some(*id))
                    .count();
                (name, theirs, contacts)
            })
            .collect();
        clients.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
        clients.truncate(20);
        let clients: Vec<Value> = clients
            .into_iter()
            .map(|(name, theirs, contacts)| {
                with_outcomes(json!({"client": name, "events": theirs.len(), "users": contacts, "page_views": 0}), &theirs)
            })
            .collect();
        json!({"summary": summary, "dailyMetrics": daily, "featureMetrics": [], "clientMetrics": clients})
    }
}

// ---------------------------------------------------------------------------------------
// The server

/// A running stand-in on 127.0.0.1 and a free port, stopped on drop.
pub struct SalesforceStandIn {
    base: String,
    state: Arc<StandIn>,
    /// Serving until dropped.
    _server: crate::Background,
}

/// The server's state. Std mutexes: nothing awaits while one is held.
pub struct StandIn {
    org: Org,
    base: Mutex<String>,
    page_size: AtomicUsize,
    tokens: Mutex<HashSet<String>>,
    issued: AtomicUsize,
    /// Query locator -> the rows still to serve, as JSON records.
    cursors: Mutex<HashMap<String, Vec<Value>>>,
    limit_exceeded: AtomicUsize,
    token_requests: AtomicUsize,
    api_requests: AtomicUsize,
    /// Every request as `METHOD path`, for assertions.
    log: Mutex<Vec<String>>,
}

impl StandIn {
    pub fn new(org: Org) -> Arc<StandIn> {
        Arc::new(StandIn {
            org,
            base: Mutex::new(String::new()),
            page_size: AtomicUsize::new(DEFAULT_PAGE_SIZE),
            tokens: Mutex::new(HashSet::new()),
            issued: AtomicUsize::new(0),
            cursors: Mutex::new(HashMap::new()),
            limit_exceeded: AtomicUsize::new(0),
            token_requests: AtomicUsize::new(0),
            api_requests: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        })
    }

    fn record(&self, line: String) {
        self.log.lock().expect("log lock").push(line);
    }
}

impl SalesforceStandIn {
    /// Serves `org` on a fresh port.
    pub async fn start(org: Org) -> anyhow::Result<SalesforceStandIn> {
        let state = StandIn::new(org);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        *state.base.lock().expect("base lock") = base.clone();
        let server = crate::serve_in_background(listener, app(state.clone()));
        Ok(SalesforceStandIn {
            base,
            state,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT`: the login URL and the instance URL at once.
    pub fn url(&self) -> &str {
        &self.base
    }

    pub fn org(&self) -> &Org {
        &self.state.org
    }

    /// Invalidates every token issued so far: the next API call answers 401 INVALID_SESSION_ID.
    pub fn expire_sessions(&self) {
        self.state.tokens.lock().expect("tokens lock").clear();
    }

    /// The next `calls` API calls (token requests excluded) answer 403 REQUEST_LIMIT_EXCEEDED.
    pub fn exceed_request_limit(&self, calls: usize) {
        self.state.limit_exceeded.store(calls, Ordering::SeqCst);
    }

    /// Records per query response; Salesforce's own minimum is 200, smaller shows paging
    /// with little data.
    pub fn set_page_size(&self, records: usize) {
        self.state.page_size.store(records.max(1), Ordering::SeqCst);
    }

    /// How many token requests arrived, granted or not.
    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// How many authorized API calls arrived (queries, query pages, limits).
    pub fn api_requests(&self) -> usize {
        self.state.api_requests.load(Ordering::SeqCst)
    }

    /// Every request so far as `METHOD path`.
    pub fn requests(&self) -> Vec<String> {
        self.state.log.lock().expect("log lock").clone()
    }
}

/// The stand-in's routes over `state`, separate from serving so tests can drive it directly.
pub fn app(state: Arc<StandIn>) -> Router {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/data/{version}/query", get(query))
        .route("/services/data/{version}/query/{locator}", get(query_more))
        .route("/services/data/{version}/limits", get(limits))
        .fallback(not_found)
        .with_state(state)
}

/// Salesforce's error array.
fn errors(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!([{"message": message, "errorCode": code}])),
    )
        .into_response()
}

async fn not_found() -> Response {
    errors(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

/// `application/x-www-form-urlencoded` -> pairs.
fn form_decode(body: &str) -> HashMap<String, String> {
    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = bytes
                        .get(i + 1..i + 3)
                        .and_then(|h| std::str::from_utf8(h).ok());
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(byte) => {
                            out.push(byte);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                byte => out.push(byte),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

async fn token(State(state): State<Arc<StandIn>>, headers: HeaderMap, body: String) -> Response {
    state.token_requests.fetch_add(1, Ordering::SeqCst);
    state.record("POST /services/oauth2/token".into());
    let oauth_error = |error: &str, description: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": error, "error_description": description})),
        )
            .into_response()
    };
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let form = form_decode(&body);
    if !form_encoded || form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error("unsupported_grant_type", "grant type not supported");
    }
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return oauth_error("invalid_client", "invalid client credentials");
    }
    let n = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let access_token = format!("00D5g000004STAND!AQ0AQ{n:06}.standin.session");
    state
        .tokens
        .lock()
        .expect("tokens lock")
        .insert(access_token.clone());
    let base = state.base.lock().expect("base lock").clone();
    Json(json!({
        "access_token": access_token,
        "signature": "c3RhbmRpbi1zaWduYXR1cmU=",
        "scope": "api",
        "instance_url": base,
        "id": format!("{base}/id/00D5g000004STANDEAA/0055g00000STANDAAA"),
        "token_type": "Bearer",
        "issued_at": Utc::now().timestamp_millis().to_string(),
    }))
    .into_response()
}

/// Checks the version, the bearer token and the request limit of an API call; the
/// refusal to answer when one fails.
fn refusal(state: &StandIn, version: &str, headers: &HeaderMap) -> Option<Response> {
    state.api_requests.fetch_add(1, Ordering::SeqCst);
    if !VERSIONS.contains(&version) {
        return Some(errors(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        ));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let valid = token.is_some_and(|t| state.tokens.lock().expect("tokens lock").contains(t));
    if !valid {
        return Some(errors(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        ));
    }
    let exceeded = state
        .limit_exceeded
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if exceeded {
        return Some(errors(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        ));
    }
    None
}

/// A successful API answer with the usage header Salesforce adds.
fn api_ok(state: &StandIn, body: Value) -> Response {
    let used = state.api_requests.load(Ordering::SeqCst);
    (
        [("Sforce-Limit-Info", format!("api-usage={used}/100000"))],
        Json(body),
    )
        .into_response()
}

async fn limits(
    State(state): State<Arc<StandIn>>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    state.record(format!("GET /services/data/{version}/limits"));
    if let Some(refused) = refusal(&state, &version, &headers) {
        return refused;
    }
    let used = state.api_requests.load(Ordering::SeqCst) as u64;
    api_ok(
        &state,
        json!({"DailyApiRequests": {"Max": 100_000, "Remaining": 100_000 - used}}),
    )
}

async fn query(
    State(state): State<Arc<StandIn>>,
    Path(version): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    state.record(format!("GET /services/data/{version}/query"));
    if let Some(refused) = refusal(&state, &version, &headers) {
        return refused;
    }
    let Some(soql) = params.get("q") else {
        return errors(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        );
    };
    let answer = match parse(soql).and_then(|query| evaluate(&state.org, &query, &version)) {
        Ok(answer) => answer,
        Err(SoqlError { code, message }) => return errors(StatusCode::BAD_REQUEST, code, &message),
    };
    let body = match answer {
        Answer::Count(n) => json!({"totalSize": n, "done": true, "records": []}),
        Answer::Aggregate(rows) => json!({"totalSize": rows.len(), "done": true, "records": rows}),
        Answer::Records(rows) => page(&state, &version, rows, 0),
    };
    api_ok(&state, body)
}

async fn query_more(
    State(state): State<Arc<StandIn>>,
    Path((version, locator)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    state.record(format!("GET /services/data/{version}/query/{locator}"));
    if let Some(refused) = refusal(&state, &version, &headers) {
        return refused;
    }
    let rows = locator
        .rsplit_once('-')
        .and_then(|(cursor, offset)| Some((cursor, offset.parse::<usize>().ok()?)))
        .and_then(|(cursor, offset)| {
            let cursors = state.cursors.lock().expect("cursors lock");
            cursors.get(cursor).map(|rows| (rows.clone(), offset))
        });
    match rows {
        Some((rows, offset)) if offset <= rows.len() => {
            api_ok(&state, page(&state, &version, rows, offset))
        }
        _ => errors(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        ),
    }
}

/// One batch of a record query from `offset`, with `nextRecordsUrl` while rows remain.
fn page(state: &StandIn, version: &str, rows: Vec<Value>, offset: usize) -> Value {
    let size = state.page_size.load(Ordering::SeqCst);
    let end = (offset + size).min(rows.len());
    let mut body =
        json!({"totalSize": rows.len(), "done": end == rows.len(), "records": rows[offset..end]});
    if end < rows.len() {
        // Salesforce's locators look like `01gD0000002HU6KIAW-2000`: a cursor id, then the
        // offset of the next batch. A new cursor per page keeps this simple.
        let mut cursors = state.cursors.lock().expect("cursors lock");
        let cursor = format!("01g5g00000STND{:04}", cursors.len());
        body["nextRecordsUrl"] = json!(format!("/services/data/{version}/query/{cursor}-{end}"));
        cursors.insert(cursor, rows);
    }
    body
}

// ---------------------------------------------------------------------------------------
// SOQL

/// A refused query, as Salesforce's error code and message.
#[derive(Debug)]
pub struct SoqlError {
    code: &'static str,
    message: String,
}

fn malformed(message: impl Into<String>) -> SoqlError {
    SoqlError {
        code: "MALFORMED_QUERY",
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Count,
    CountDistinct,
    Sum,
    DayOnly,
}

impl Func {
    fn aggregates(self) -> bool {
        self != Func::DayOnly
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    /// A field path, lowercase: `amount`, `account.name`.
    Field(String),
    /// `COUNT()` has no argument.
    Call(Func, Option<String>),
}

#[derive(Debug, Clone)]
struct Item {
    expr: Expr,
    alias: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    DateTime(DateTime<Utc>),
    Date(NaiveDate),
}

#[derive(Debug, Clone)]
struct Condition {
    field: String,
    op: Op,
    value: Literal,
}

#[derive(Debug, Clone)]
pub struct SoqlQuery {
    items: Vec<Item>,
    object: String,
    conditions: Vec<Condition>,
    group_by: Vec<Expr>,
    limit: Option<usize>,
}

fn tokenize(text: &str) -> Result<Vec<String>, SoqlError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if matches!(c, '(' | ')' | ',') {
            tokens.push(c.to_string());
            chars.next();
        } else if matches!(c, '<' | '>' | '=' | '!') {
            let mut op = String::from(c);
            chars.next();
            if chars.peek() == Some(&'=') {
                op.push('=');
                chars.next();
            }
            tokens.push(op);
        } else if c == '\'' {
            chars.next();
            let mut literal = String::from("'");
            loop {
                match chars.next() {
                    Some('\\') => literal.extend(chars.next()),
                    Some('\'') => break,
                    Some(other) => literal.push(other),
                    None => return Err(malformed("unterminated string literal")),
                }
            }
            literal.push('\'');
            tokens.push(literal);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || matches!(c, '(' | ')' | ',' | '<' | '>' | '=' | '!' | '\'')
                {
                    break;
                }
                word.push(c);
                chars.next();
            }
            tokens.push(word);
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        self.peek().is_some_and(|t| t.eq_ignore_ascii_case(keyword))
    }

    fn next(&mut self) -> Result<String, SoqlError> {
        let token = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or_else(|| malformed("unexpected end of query"))?;
        self.at += 1;
        Ok(token)
    }

    fn expect(&mut self, keyword: &str) -> Result<(), SoqlError> {
        let token = self.next()?;
        if token.eq_ignore_ascii_case(keyword) {
            Ok(())
        } else {
            Err(malformed(format!(
                "unexpected token: '{token}', expected {keyword}"
            )))
        }
    }

    fn identifier(&mut self) -> Result<String, SoqlError> {
        let token = self.next()?;
        let valid = token
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if valid {
            Ok(token)
        } else {
            Err(malformed(format!("unexpected token: '{token}'")))
        }
    }

    fn expr(&mut self) -> Result<Expr, SoqlError> {
        let name = self.identifier()?;
        if self.peek() != Some("(") {
            return Ok(Expr::Field(name.to_ascii_lowercase()));
        }
        self.next()?;
        let func = match name.to_ascii_uppercase().as_str() {
            "COUNT" => Func::Count,
            "COUNT_DISTINCT" => Func::CountDistinct,
            "SUM" => Func::Sum,
            "DAY_ONLY" => Func::DayOnly,
            other => return Err(malformed(format!("unsupported function {other}"))),
        };
        let argument = if self.peek() == Some(")") {
            None
        } else {
            Some(self.identifier()?.to_ascii_lowercase())
        };
        self.expect(")")?;
        if argument.is_none() && func != Func::Count {
            return Err(malformed(format!("{name}() needs a field")));
        }
        Ok(Expr::Call(func, argument))
    }

    fn literal(&mut self) -> Result<Literal, SoqlError> {
        let token = self.next()?;
        if let Some(text) = token.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
            return Ok(Literal::Text(text.to_owned()));
        }
        match token.to_ascii_lowercase().as_str() {
            "null" => return Ok(Literal::Null),
            "true" => return Ok(Literal::Bool(true)),
            "false" => return Ok(Literal::Bool(false)),
            _ => {}
        }
        if let Ok(moment) = DateTime::parse_from_rfc3339(&token) {
            return Ok(Literal::DateTime(moment.with_timezone(&Utc)));
        }
        if let Ok(moment) = DateTime::parse_from_str(&token, "%Y-%m-%dT%H:%M:%S%.f%z") {
            return Ok(Literal::DateTime(moment.with_timezone(&Utc)));
        }
        if let Ok(day) = NaiveDate::parse_from_str(&token, "%Y-%m-%d") {
            return Ok(Literal::Date(day));
        }
        if let Ok(number) = token.parse::<f64>() {
            return Ok(Literal::Number(number));
        }
        Err(malformed(format!(
            "unexpected token: '{token}' (this stand-in knows no date literals)"
        )))
    }
}

fn is_clause_keyword(token: &str) -> bool {
    [
        "FROM", "WHERE", "GROUP", "ORDER", "LIMIT", "AND", "OR", "HAVING", "OFFSET",
    ]
    .iter()
    .any(|k| token.eq_ignore_ascii_case(k))
}

/// Parses the subset of SOQL the stand-in evaluates.
pub fn parse(soql: &str) -> Result<SoqlQuery, SoqlError> {
    let mut parser = Parser {
        tokens: tokenize(soql)?,
        at: 0,
    };
    parser.expect("SELECT")?;
    let mut items = Vec::new();
    loop {
        let expr = parser.expr()?;
        let alias = match parser.peek() {
            Some(token) if token != "," && !is_clause_keyword(token) => Some(parser.identifier()?),
            _ => None,
        };
        items.push(Item { expr, alias });
        if parser.peek() == Some(",") {
            parser.next()?;
        } else {
            break;
        }
    }
    parser.expect("FROM")?;
    let object = parser.identifier()?;
    let mut conditions = Vec::new();
    if parser.peek_keyword("WHERE") {
        parser.next()?;
        loop {
            let field = parser.identifier()?.to_ascii_lowercase();
            let op = match parser.next()?.as_str() {
                "=" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                other => return Err(malformed(format!("unexpected token: '{other}'"))),
            };
            conditions.push(Condition {
                field,
                op,
                value: parser.literal()?,
            });
            if parser.peek_keyword("AND") {
                parser.next()?;
            } else {
                break;
            }
        }
    }
    let mut group_by = Vec::new();
    if parser.peek_keyword("GROUP") {
        parser.next()?;
        parser.expect("BY")?;
        loop {
            group_by.push(parser.expr()?);
            if parser.peek() == Some(",") {
                parser.next()?;
            } else {
                break;
            }
        }
    }
    let mut limit = None;
    if parser.peek_keyword("LIMIT") {
        parser.next()?;
        let token = parser.next()?;
        limit = Some(
            token
                .parse()
                .map_err(|_| malformed(format!("unexpected token: '{token}'")))?,
        );
    }
    if let Some(token) = parser.peek() {
        return Err(malformed(format!(
            "unexpected token: '{token}' (not supported by this stand-in)"
        )));
    }
    Ok(SoqlQuery {
        items,
        object,
        conditions,
        group_by,
        limit,
    })
}

/// A field value of one record.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    DateTime(DateTime<Utc>),
}

impl Val {
    fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => json!(b),
            Val::Number(n) => json!(n),
            Val::Text(t) => json!(t),
            // Salesforce's dateTime format.
            Val::DateTime(d) => json!(d.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()),
        }
    }

    /// A key that groups and orders equal values together.
    fn group_key(&self) -> String {
        match self {
            Val::Null => String::new(),
            Val::Bool(b) => b.to_string(),
            Val::Number(n) => format!("{n:020.4}"),
            Val::Text(t) => t.clone(),
            Val::DateTime(d) => d.to_rfc3339(),
        }
    }
}

/// The kind of a field, for type-checking filter values as Salesforce does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Id,
    Text,
    Number,
    Bool,
    DateTime,
}

/// The fields of each object: canonical name, kind. `Account.Name` is a relationship field.
fn schema(object: &str) -> Option<(&'static str, &'static [(&'static str, Kind)])> {
    const ACCOUNT: &[(&str, Kind)] = &[
        ("Id", Kind::Id),
        ("Name", Kind::Text),
        ("CreatedDate", Kind::DateTime),
    ];
    const CONTACT: &[(&str, Kind)] = &[
        ("Id", Kind::Id),
        ("AccountId", Kind::Id),
        ("CreatedDate", Kind::DateTime),
        ("Account.Name", Kind::Text),
    ];
    const OPPORTUNITY: &[(&str, Kind)] = &[
        ("Id", Kind::Id),
        ("Name", Kind::Text),
        ("AccountId", Kind::Id),
        ("Amount", Kind::Number),
        ("StageName", Kind::Text),
        ("IsClosed", Kind::Bool),
        ("IsWon", Kind::Bool),
        ("CreatedDate", Kind::DateTime),
        ("Account.Name", Kind::Text),
    ];
    match object.to_ascii_lowercase().as_str() {
        "account" => Some(("Account", ACCOUNT)),
        "contact" => Some(("Contact", CONTACT)),
        "opportunity" => Some(("Opportunity", OPPORTUNITY)),
        _ => None,
    }
}

/// One record's fields by lowercase name.
type Row = HashMap<String, Val>;

fn rows(org: &Org, object: &str) -> Vec<Row> {
    let text = |s: &str| Val::Text(s.to_owned());
    let id = |s: Option<&String>| s.map_or(Val::Null, |s| Val::Text(s.clone()));
    let account_name = |account_id: Option<&String>| {
        org.account(account_id.map(String::as_str))
            .map_or(Val::Null, |a| Val::Text(a.name.clone()))
    };
    match object {
        "Account" => org
            .accounts
            .iter()
            .map(|a| {
                Row::from([
                    ("id".into(), text(&a.id)),
                    ("name".into(), text(&a.name)),
                    ("createddate".into(), Val::DateTime(a.created)),
                ])
            })
            .collect(),
        "Contact" => org
            .contacts
            .iter()
            .map(|c| {
                Row::from([
                    ("id".into(), text(&c.id)),
                    ("accountid".into(), id(c.account_id.as_ref())),
                    ("createddate".into(), Val::DateTime(c.created)),
                    ("account.name".into(), account_name(c.account_id.as_ref())),
                ])
            })
            .collect(),
        _ => org
            .opportunities
            .iter()
            .map(|o| {
                Row::from([
                    ("id".into(), text(&o.id)),
                    ("name".into(), text(&o.name)),
                    ("accountid".into(), id(o.account_id.as_ref())),
                    ("amount".into(), o.amount.map_or(Val::Null, Val::Number)),
                    ("stagename".into(), text(o.stage)),
                    ("isclosed".into(), Val::Bool(o.is_closed())),
                    ("iswon".into(), Val::Bool(o.is_won())),
                    ("createddate".into(), Val::DateTime(o.created)),
                    ("account.name".into(), account_name(o.account_id.as_ref())),
                ])
            })
            .collect(),
    }
}

/// What a query answers.
enum Answer {
    /// `SELECT COUNT() ...`: only `totalSize`.
    Count(usize),
    /// `AggregateResult` rows, never paged.
    Aggregate(Vec<Value>),
    /// Records, paged by the server.
    Records(Vec<Value>),
}

fn evaluate(org: &Org, query: &SoqlQuery, version: &str) -> Result<Answer, SoqlError> {
    let (object, fields) = schema(&query.object).ok_or_else(|| SoqlError {
        code: "INVALID_TYPE",
        message: format!("sObject type '{}' is not supported.", query.object),
    })?;
    let kind_of = |field: &str| -> Result<(&'static str, Kind), SoqlError> {
        fields
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(field))
            .map(|(name, kind)| (*name, *kind))
            .ok_or_else(|| SoqlError {
                code: "INVALID_FIELD",
                message: format!("No such column '{field}' on entity '{object}'."),
            })
    };
    // Type-check every referenced field and filter value first, as Salesforce does.
    for item in &query.items {
        if let Expr::Field(f) | Expr::Call(_, Some(f)) = &item.expr {
            kind_of(f)?;
        }
    }
    for condition in &query.conditions {
        let (name, kind) = kind_of(&condition.field)?;
        let ordered = matches!(condition.op, Op::Lt | Op::Le | Op::Gt | Op::Ge);
        let fits = match (&condition.value, kind) {
            (Literal::Null, _) => !ordered,
            (Literal::Bool(_), Kind::Bool) => !ordered,
            (Literal::Number(_), Kind::Number) => true,
            (Literal::Text(_), Kind::Id | Kind::Text) => true,
            (Literal::DateTime(_), Kind::DateTime) => true,
            _ => false,
        };
        if !fits {
            return Err(malformed(format!(
                "value of filter criterion for field '{name}' must be of type {kind:?} and should not be enclosed in quotes"
            )));
        }
    }

    let matching: Vec<Row> = rows(org, object)
        .into_iter()
        .filter(|row| query.conditions.iter().all(|c| holds(row, c)))
        .collect();

    let aggregate = !query.group_by.is_empty()
        || query
            .items
            .iter()
            .any(|i| matches!(i.expr, Expr::Call(func, _) if func.aggregates()));
    if !aggregate {
        if query.items.iter().any(|i| matches!(i.expr, Expr::Call(..))) {
            return Err(malformed("DAY_ONLY needs GROUP BY in this stand-in"));
        }
        let mut records: Vec<Value> = matching
            .iter()
            .map(|row| record(object, fields, &query.items, row, version))
            .collect();
        if let Some(limit) = query.limit {
            records.truncate(limit);
        }
        return Ok(Answer::Records(records));
    }
    if query.items.len() == 1
        && query.items[0].expr == Expr::Call(Func::Count, None)
        && query.group_by.is_empty()
    {
        return Ok(Answer::Count(matching.len()));
    }
    for item in &query.items {
        let grouped = match &item.expr {
            Expr::Call(func, _) if func.aggregates() => true,
            expr => query.group_by.contains(expr),
        };
        if !grouped {
            return Err(malformed(format!(
                "Field must be grouped or aggregated: {:?}",
                item.expr
            )));
        }
        if item.expr == Expr::Call(Func::Count, None) {
            return Err(malformed(
                "COUNT() must be the only item of the select list",
            ));
        }
    }
    let mut groups: BTreeMap<Vec<String>, Vec<&Row>> = BTreeMap::new();
    for row in &matching {
        let key = query
            .group_by
            .iter()
            .map(|e| scalar(row, e).group_key())
            .collect();
        groups.entry(key).or_default().push(row);
    }
    // An aggregate without GROUP BY answers one row even over no records.
    if query.group_by.is_empty() && groups.is_empty() {
        groups.insert(Vec::new(), Vec::new());
    }
    let mut out = Vec::new();
    for members in groups.values() {
        let mut row = Map::new();
        row.insert("attributes".into(), json!({"type": "AggregateResult"}));
        let mut unnamed = 0;
        for item in &query.items {
            let value = match &item.expr {
                Expr::Call(func, argument) if func.aggregates() => {
                    aggregate_value(*func, argument.as_deref(), members)
                }
                expr => members
                    .first()
                    .map_or(Value::Null, |first| scalar(first, expr).to_json()),
            };
            let name = match (&item.alias, &item.expr) {
                (Some(alias), _) => alias.clone(),
                (None, Expr::Field(field)) => kind_of(field)?.0.to_owned(),
                (None, Expr::Call(..)) => {
                    unnamed += 1;
                    format!("expr{}", unnamed - 1)
                }
            };
            row.insert(name, value);
        }
        out.push(Value::Object(row));
    }
    if let Some(limit) = query.limit {
        out.truncate(limit);
    }
    Ok(Answer::Aggregate(out))
}

fn holds(row: &Row, condition: &Condition) -> bool {
    let value = row.get(&condition.field).unwrap_or(&Val::Null);
    let ordering = match (value, &condition.value) {
        (Val::Null, Literal::Null) => Some(std::cmp::Ordering::Equal),
        (_, Literal::Null) | (Val::Null, _) => None,
        (Val::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        (Val::Number(a), Literal::Number(b)) => a.partial_cmp(b),
        (Val::Text(a), Literal::Text(b)) => Some(a.cmp(b)),
        (Val::DateTime(a), Literal::DateTime(b)) => Some(a.cmp(b)),
        _ => None,
    };
    use std::cmp::Ordering::*;
    match (condition.op, ordering) {
        (Op::Ne, None) => true,
        (_, None) => false,
        (Op::Eq, Some(o)) => o == Equal,
        (Op::Ne, Some(o)) => o != Equal,
        (Op::Lt, Some(o)) => o == Less,
        (Op::Le, Some(o)) => o != Greater,
        (Op::Gt, Some(o)) => o == Greater,
        (Op::Ge, Some(o)) => o != Less,
    }
}

/// A non-aggregate expression on one row: a field or `DAY_ONLY(field)` (in UTC).
fn scalar(row: &Row, expr: &Expr) -> Val {
    match expr {
        Expr::Field(field) => row.get(field).cloned().unwrap_or(Val::Null),
        Expr::Call(Func::DayOnly, Some(field)) => match row.get(field) {
            Some(Val::DateTime(moment)) => Val::Text(moment.date_naive().to_string()),
            _ => Val::Null,
        },
        Expr::Call(..) => Val::Null,
    }
}

fn aggregate_value(func: Func, argument: Option<&str>, members: &[&Row]) -> Value {
    let values = || {
        members.iter().map(|row| {
            argument
                .and_then(|a| row.get(a))
                .cloned()
                .unwrap_or(Val::Null)
        })
    };
    match func {
        Func::Count => json!(values().filter(|v| *v != Val::Null).count()),
        Func::CountDistinct => {
            let distinct: BTreeSet<String> = values()
                .filter(|v| *v != Val::Null)
                .map(|v| v.group_key())
                .collect();
            json!(distinct.len())
        }
        Func::Sum => {
            let numbers: Vec<f64> = values()
                .filter_map(|v| match v {
                    Val::Number(n) => Some(n),
                    _ => None,
                })
                .collect();
            if numbers.is_empty() {
                Value::Null
            } else {
                json!(numbers.iter().sum::<f64>())
            }
        }
        Func::DayOnly => Value::Null,
    }
}

/// One record in Salesforce's JSON: `attributes`, then the selected fields, relationship
/// fields nested under the relationship's name (`"Account": {"attributes":..,"Name":..}`,
/// or `null` when the lookup is empty).
fn record(
    object: &str,
    fields: &[(&str, Kind)],
    items: &[Item],
    row: &Row,
    version: &str,
) -> Value {
    let id = match row.get("id") {
        Some(Val::Text(id)) => id.clone(),
        _ => String::new(),
    };
    let mut out = Map::new();
    out.insert(
        "attributes".into(),
        json!({"type": object, "url": format!("/services/data/{version}/sobjects/{object}/{id}")}),
    );
    for item in items {
        let Expr::Field(field) = &item.expr else {
            continue;
        };
        let canonical = fields
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(field))
            .map_or(field.as_str(), |(name, _)| *name);
        let value = row.get(field).cloned().unwrap_or(Val::Null);
        match canonical.split_once('.') {
            None => {
                out.insert(canonical.to_owned(), value.to_json());
            }
            Some((relationship, child)) => {
                let account_id = match row.get("accountid") {
                    Some(Val::Text(id)) => Some(id.clone()),
                    _ => None,
                };
                let entry = out.entry(relationship.to_owned()).or_insert(Value::Null);
                if let Some(account_id) = account_id {
                    if entry.is_null() {
                        *entry = json!({"attributes": {"type": relationship, "url": format!("/services/data/{version}/sobjects/{relationship}/{account_id}")}});
                    }
                    entry[child] = value.to_json();
                }
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org() -> Org {
        Org::generate(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap())
    }

    fn run(soql: &str) -> Result<Answer, SoqlError> {
        evaluate(&org(), &parse(soql)?, "v62.0")
    }

    #[test]
    fn counts_with_count_and_groups_by_day() {
        let org = org();
        let (start, end) = ("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z");
        let moment = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        let within = |d: &DateTime<Utc>| *d >= moment(start) && *d < moment(end);
        let expected = org.contacts.iter().filter(|c| within(&c.created)).count();
        let Ok(Answer::Count(n)) = run(&format!(
            "SELECT COUNT() FROM Contact WHERE CreatedDate >= {start} AND CreatedDate < {end}"
        )) else {
            panic!("COUNT()");
        };
        assert_eq!(n, expected);

        let Ok(Answer::Aggregate(rows)) = run(&format!(
            "SELECT DAY_ONLY(CreatedDate) day, COUNT(Id) c FROM Contact WHERE CreatedDate >= {start} AND CreatedDate < {end} GROUP BY DAY_ONLY(CreatedDate)"
        )) else {
            panic!("GROUP BY");
        };
        let total: u64 = rows.iter().map(|r| r["c"].as_u64().unwrap()).sum();
        assert_eq!(total as usize, expected);
        assert_eq!(rows[0]["attributes"], json!({"type": "AggregateResult"}));
        assert!(rows
            .windows(2)
            .all(|w| w[0]["day"].as_str() < w[1]["day"].as_str()));
    }

    #[test]
    fn names_unaliased_aggregates_expr_n_and_sums_to_null_over_nothing() {
        let Ok(Answer::Aggregate(rows)) =
            run("SELECT COUNT(Id), SUM(Amount) FROM Opportunity WHERE CreatedDate < 2000-01-01T00:00:00Z")
        else {
            panic!("aggregate");
        };
        assert_eq!(
            rows,
            vec![json!({"attributes": {"type": "AggregateResult"}, "expr0": 0, "expr1": null})]
        );
    }

    #[test]
    fn records_nest_relationship_fields() {
        let Ok(Answer::Records(records)) =
            run("SELECT AccountId, Account.Name, Amount FROM Opportunity LIMIT 400")
        else {
            panic!("records");
        };
        assert_eq!(records.len(), 360);
        let with = records.iter().find(|r| !r["AccountId"].is_null()).unwrap();
        assert_eq!(with["Account"]["attributes"]["type"], "Account");
        assert!(with["Account"]["Name"].is_string());
        let without = records.iter().find(|r| r["AccountId"].is_null()).unwrap();
        assert_eq!(without["Account"], Value::Null);
    }

    #[test]
    fn refuses_what_salesforce_refuses() {
        let code = |soql: &str| match run(soql) {
            Err(error) => error.code,
            Ok(_) => "ok",
        };
        assert_eq!(code("SELECT Foo FROM Account"), "INVALID_FIELD");
        assert_eq!(code("SELECT Id FROM Lead"), "INVALID_TYPE");
        assert_eq!(
            code("SELECT Id FROM Contact WHERE CreatedDate >= 2026-01-01"),
            "MALFORMED_QUERY"
        );
        assert_eq!(
            code("SELECT Id FROM Contact WHERE CreatedDate >= '2026-01-01T00:00:00Z'"),
            "MALFORMED_QUERY"
        );
        assert_eq!(
            code("SELECT AccountId, COUNT(Id) FROM Contact"),
            "MALFORMED_QUERY"
        );
        assert_eq!(
            code("SELECT Id FROM Contact ORDER BY Id"),
            "MALFORMED_QUERY"
        );
        assert_eq!(
            code("SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS:30"),
            "MALFORMED_QUERY"
        );
        assert_eq!(
            code("SELECT Id, Name FROM Account WHERE Name != null"),
            "ok"
        );
    }

    #[test]
    fn decodes_forms() {
        let form =
            form_decode("grant_type=client_credentials&client_id=a%20b&client_secret=s%26c+d");
        assert_eq!(form["client_id"], "a b");
        assert_eq!(form["client_secret"], "s&c d");
    }
}
