//! Stripe's `GET /v1/charges` (the hub's base URL is `{url}/v1`).
//!
//! - Auth: `Authorization: Basic base64("{STRIPE_KEY}:")` (the key as user, an empty
//!   password) or `Authorization: Bearer {STRIPE_KEY}`. Otherwise 401 with Stripe's error
//!   object: `You did not provide an API key...` when none came, `Invalid API Key
//!   provided: sk_test_****XXXX` (the prefix and the last 4 characters) when it is wrong.
//! - `Stripe-Version` is required here (400 without it, or when it is not
//!   `YYYY-MM-DD[.codename]`); the last one seen is [`StripeStandIn::stripe_version`].
//!   Answers carry `Request-Id: req_...` and echo `Stripe-Version`.
//! - Query: `limit` (1-100, default 10), `created` or `created[gt|gte|lt|lte]` (unix
//!   seconds), `customer`, `starting_after`/`ending_before` (object ids, not both; an
//!   unknown id is 404 `resource_missing`), `expand[]=data.balance_transaction` (inlines
//!   [`balance_transaction`]; `expand[]=data.customer` inlines [`customer`];
//!   `expand[]=total_count` is 400 `property_forbidden`). Any other
//!   parameter is 400 `parameter_unknown`, as Stripe answers.
//! - Newest first: `created` descending, then `id` descending. `has_more` is exact, so a
//!   last page that is exactly full says `has_more: false`.
//! - Traps in the data: some charges share their `created` second with a neighbour (a
//!   client paging by `created[lt]` of the last item loses records; `starting_after` does
//!   not); charges at 2024-05-01T00:00:00Z and 2024-07-31T23:59:59Z, and one each just
//!   outside (2024-04-30T23:59:59Z, 2024-08-01T00:00:00Z), so `gte`/`gt`/`lt`/`lte` matter;
//!   failed and pending charges; partial refunds (`refunded: false`) and full refunds
//!   (`refunded: true`); a few `eur` charges among `usd`; null customers.
//! - [`StripeStandIn::rate_limit_next`]: the next requests get 429 with the rate-limit body
//!   (`code: rate_limit`, `type: invalid_request_error`), with neither `Retry-After` nor
//!   `Stripe-Should-Retry` (the official SDKs would not retry such a 429).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::{
    basic_credentials, bearer, day_of, header, json_response, param, query_pairs, set_header, unix,
    window, Arrival, Control, Failure,
};

/// The secret key the stand-in accepts.
pub const STRIPE_KEY: &str = "sk_test_51PvStandInKey0a1b2c3d4e5f6g7h8i9j0kZq7X";

/// The customers charges are drawn from (about one charge in seven has none).
pub const CUSTOMERS: [&str; 12] = [
    "cus_QAcmeN1fUfNV2H",
    "cus_QGlobex7aLp3Xk",
    "cus_QInitechR4wq9Z",
    "cus_QUmbrella2Kd8M",
    "cus_QHooliV0zx5Tb",
    "cus_QStark88JnsQe",
    "cus_QWayneEnt3Hyc",
    "cus_QWonka5Pvo1Ld",
    "cus_QTyrell9Gm2Rf",
    "cus_QCyberdyn4Tw7",
    "cus_QSoylent6Bn0E",
    "cus_QVandelay1Xs3",
];

const AMOUNTS: [i64; 8] = [500, 1099, 2000, 4900, 9900, 19900, 1250, 7500];

/// Charge `i`, created at `created` (unix seconds), as Stripe lists it.
fn charge(i: u64, created: i64) -> Value {
    let amount = AMOUNTS[((i * 3) % 8) as usize] + ((i * 37) % 10) as i64 * 100;
    let currency = if i % 11 == 4 { "eur" } else { "usd" };
    let customer = (i % 7 != 3).then(|| CUSTOMERS[((i * 5) % 12) as usize]);
    let status = if i % 13 == 5 {
        "failed"
    } else if i % 29 == 7 {
        "pending"
    } else {
        "succeeded"
    };
    let failed = status == "failed";
    let amount_refunded = match status {
        "succeeded" if i % 23 == 11 => amount,
        "succeeded" if i % 9 == 2 => amount / 4,
        _ => 0,
    };
    json!({
        "id": format!("ch_3PvSt{i:06}"),
        "object": "charge",
        "amount": amount,
        "amount_captured": if failed { 0 } else { amount },
        "amount_refunded": amount_refunded,
        "currency": currency,
        "created": created,
        "customer": customer,
        "status": status,
        "paid": status == "succeeded",
        "captured": !failed,
        "refunded": amount_refunded == amount,
        "disputed": false,
        "balance_transaction": (!failed).then(|| format!("txn_3PvSt{i:06}")),
        "payment_intent": null,
        "livemode": false,
        "failure_code": failed.then_some("card_declined"),
        "metadata": {},
    })
}

/// Seconds into its day of the `k`-th charge of day `d`, charge `i` overall.
fn second_of_day(d: u64, k: u64, i: u64) -> i64 {
    let hour = (k * 5 + d * 7) % 24;
    (hour * 3600 + ((i * 13) % 60) * 60 + (i * 29) % 60) as i64
}

/// Every charge, in generation order (oldest day first): 3 to 6 a day over the window,
/// plus one a second before it and one a second after it.
///
/// Charge `i` (its id is `ch_3PvSt{i:06}`): `amount` from a table of eight amounts plus
/// `(i*37 % 10) * 100` cents; `eur` when `i % 11 == 4`; no customer when `i % 7 == 3`;
/// `failed` when `i % 13 == 5` (`paid: false`, `captured: false`, `amount_captured: 0`,
/// `failure_code: card_declined`, no balance transaction), else `pending` when
/// `i % 29 == 7` (`paid: false`, captured), else `succeeded`; a succeeded charge is fully
/// refunded when `i % 23 == 11` and refunded a quarter (integer division) when `i % 9 == 2`.
/// When `i % 17 == 0` a charge has the same `created` as the one before it on its day.
pub fn charges() -> Vec<Value> {
    let mut out = vec![charge(0, unix(super::first_day()) - 1)];
    let mut i = 1;
    for (d, day) in window() {
        let count = 3 + (d * 5) % 4;
        let mut previous = None;
        for k in 0..count {
            let mut created = unix(day) + second_of_day(d, k, i);
            if d == 0 && k == 0 {
                created = unix(day);
            } else if day == super::last_day() && k + 1 == count {
                created = unix(day) + 86_399;
            } else if i % 17 == 0 {
                created = previous.unwrap_or(created);
            }
            previous = Some(created);
            out.push(charge(i, created));
            i += 1;
        }
    }
    out.push(charge(i, unix(super::last_day()) + 86_400));
    out
}

/// The customer object `expand[]=data.customer` inlines: every third customer has no
/// name, so a source must fall back to the email.
pub fn customer(id: &str) -> Value {
    let i = CUSTOMERS.iter().position(|c| *c == id).unwrap_or(0);
    let company = id.trim_start_matches("cus_Q");
    let name = (i % 3 != 1).then(|| format!("{company} Inc."));
    json!({"id": id, "object": "customer", "name": name,
           "email": format!("billing{i}@{}.test", company.to_lowercase()), "livemode": false})
}

/// The balance transaction of a charge (what `expand[]=data.balance_transaction` inlines):
/// the fee is 2.9 % + 30 cents for `usd`, 1.5 % + 25 cents for `eur` (integer division),
/// `net = amount - fee`, available a week after `created`. `None` for failed charges.
pub fn balance_transaction(charge: &Value) -> Option<Value> {
    let id = charge["balance_transaction"].as_str()?;
    let amount = charge["amount"].as_i64()?;
    let currency = charge["currency"].as_str()?;
    let fee = if currency == "eur" {
        amount * 15 / 1000 + 25
    } else {
        amount * 29 / 1000 + 30
    };
    let created = charge["created"].as_i64()?;
    let available_on = unix(day_of(created + 7 * 86_400));
    Some(json!({
        "id": id, "object": "balance_transaction", "amount": amount, "fee": fee,
        "net": amount - fee, "currency": currency, "created": created,
        "available_on": available_on, "type": "charge", "reporting_category": "charge",
        "status": "available", "source": charge["id"], "exchange_rate": null,
        "description": null,
        "fee_details": [{"amount": fee, "currency": currency,
            "description": "Stripe processing fees", "type": "stripe_fee"}],
    }))
}

struct Stripe {
    /// Newest first, as listed.
    listed: Vec<Value>,
    control: Control,
}

/// A running Stripe stand-in, stopped on drop.
pub struct StripeStandIn {
    base: String,
    state: Arc<Stripe>,
    _server: crate::Background,
}

impl StripeStandIn {
    pub async fn start() -> anyhow::Result<StripeStandIn> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let mut listed = charges();
        listed.sort_by_key(|c| std::cmp::Reverse(sort_key(c)));
        let state = Arc::new(Stripe {
            listed,
            control: Control::default(),
        });
        let router = Router::new()
            .route("/v1/charges", get(list_charges))
            .fallback(unknown)
            .method_not_allowed_fallback(unknown)
            .with_state(state.clone());
        let server = crate::serve_in_background(listener, router);
        Ok(StripeStandIn {
            base,
            state,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT`; the hub's base URL is this plus `/v1`.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The charges, newest first (as the API lists them); the same as [`charges`].
    pub fn charges(&self) -> &[Value] {
        &self.state.listed
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

    /// The last `Stripe-Version` header received.
    pub fn stripe_version(&self) -> Option<String> {
        self.state.control.version()
    }
}

fn sort_key(charge: &Value) -> (i64, String) {
    let created = charge["created"].as_i64().unwrap_or_default();
    (
        created,
        charge["id"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Stripe's error object.
fn error(status: StatusCode, code: Option<&str>, message: &str, param: Option<&str>) -> Failure {
    let doc_url = code.map(|c| {
        format!(
            "https://stripe.com/docs/error-codes/{}",
            c.replace('_', "-")
        )
    });
    let body = json!({"error": {
        "type": "invalid_request_error", "code": code, "message": message,
        "param": param, "doc_url": doc_url,
    }});
    Failure { status, body }
}

fn bad_param(message: &str, param: &str) -> Failure {
    error(
        StatusCode::BAD_REQUEST,
        Some("parameter_invalid_integer"),
        message,
        Some(param),
    )
}

/// `sk_test_****XXXX`: a known prefix and the last four characters.
fn mask(key: &str) -> String {
    let prefix = [
        "sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_",
    ]
    .into_iter()
    .find(|p| key.starts_with(p))
    .unwrap_or_default();
    let chars: Vec<char> = key.chars().collect();
    let last: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("{prefix}****{last}")
}

/// `None` when the key is right, else the 401.
fn authenticate(headers: &HeaderMap) -> Option<Response> {
    let given = match (basic_credentials(headers), bearer(headers)) {
        (Some((user, password)), _) if password.is_empty() => Some(user),
        (Some((user, _)), _) => Some(format!("{user} (with a password)")),
        (None, Some(token)) => Some(token.to_owned()),
        (None, None) => None,
    };
    let message = match given {
        Some(key) if key == STRIPE_KEY => return None,
        Some(key) => format!("Invalid API Key provided: {}", mask(&key)),
        None => "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').".to_owned(),
    };
    Some(error(StatusCode::UNAUTHORIZED, None, &message, None).into())
}

/// `YYYY-MM-DD` with an optional `.codename` (lowercase letters).
fn valid_version(version: &str) -> bool {
    let (date, codename) = version.split_once('.').unwrap_or((version, "a"));
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok()
        && date.len() == 10
        && !codename.is_empty()
        && codename.bytes().all(|b| b.is_ascii_lowercase())
}

fn rate_limited() -> Response {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        Some("rate_limit"),
        "Request rate limit exceeded. You can learn more about rate limits here https://stripe.com/docs/rate-limits.",
        None,
    )
    .into()
}

async fn list_charges(
    State(state): State<Arc<Stripe>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let number = state.control.arrive(&method, &uri, &headers, "");
    let version = header(&headers, "stripe-version");
    state.control.note_version(version);
    let mut response = answer(&state, &uri, &headers, version);
    set_header(
        &mut response,
        "request-id",
        &format!("req_StandIn{number:08}"),
    );
    if let Some(version) = version {
        set_header(&mut response, "stripe-version", version);
    }
    response
}

fn answer(state: &Stripe, uri: &Uri, headers: &HeaderMap, version: Option<&str>) -> Response {
    if let Some(refusal) = authenticate(headers) {
        return refusal;
    }
    if state.control.refused() {
        return rate_limited();
    }
    match version {
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                None,
                "This stand-in requires a Stripe-Version header.",
                None,
            )
            .into()
        }
        Some(v) if !valid_version(v) => {
            let message = format!("Invalid Stripe API version: {v}");
            return error(StatusCode::BAD_REQUEST, None, &message, None).into();
        }
        Some(_) => {}
    }
    match ListQuery::parse(&query_pairs(uri)) {
        Ok(query) => query.page(&state.listed),
        Err(failure) => failure.into(),
    }
}

/// The parameters of one list request.
#[derive(Default)]
struct ListQuery {
    limit: usize,
    /// Inclusive bounds on `created`.
    from: Option<i64>,
    to: Option<i64>,
    customer: Option<String>,
    /// A `payment_intent` or `transfer_group` filter: no charge has one, so none match.
    nothing: bool,
    starting_after: Option<String>,
    ending_before: Option<String>,
    expand_balance_transaction: bool,
    expand_customer: bool,
}

const KNOWN: [&str; 11] = [
    "limit",
    "created",
    "created[gt]",
    "created[gte]",
    "created[lt]",
    "created[lte]",
    "customer",
    "starting_after",
    "ending_before",
    "payment_intent",
    "transfer_group",
];

impl ListQuery {
    fn parse(pairs: &[(String, String)]) -> Result<ListQuery, Failure> {
        let mut query = ListQuery {
            limit: 10,
            ..ListQuery::default()
        };
        for (key, value) in pairs {
            if key.starts_with("expand[") {
                query.expand(value)?;
            } else if key.starts_with("created") && KNOWN.contains(&key.as_str()) {
                query.bound(key, value)?;
            } else if !KNOWN.contains(&key.as_str()) {
                let message = format!("Received unknown parameter: {key}");
                let status = StatusCode::BAD_REQUEST;
                return Err(error(
                    status,
                    Some("parameter_unknown"),
                    &message,
                    Some(key),
                ));
            }
        }
        if let Some(limit) = param(pairs, "limit") {
            query.limit = match limit.parse::<i64>() {
                Ok(n) if n < 1 => {
                    return Err(bad_param(
                        "This value must be greater than or equal to 1.",
                        "limit",
                    ))
                }
                Ok(n) if n > 100 => {
                    return Err(bad_param(
                        "This value must be less than or equal to 100.",
                        "limit",
                    ))
                }
                Ok(n) => n as usize,
                Err(_) => return Err(bad_param(&format!("Invalid integer: {limit}"), "limit")),
            };
        }
        query.customer = param(pairs, "customer").map(str::to_owned);
        query.nothing = ["payment_intent", "transfer_group"]
            .iter()
            .any(|name| param(pairs, name).is_some());
        query.starting_after = param(pairs, "starting_after").map(str::to_owned);
        query.ending_before = param(pairs, "ending_before").map(str::to_owned);
        if query.starting_after.is_some() && query.ending_before.is_some() {
            let message =
                "You may only specify one of these parameters: ending_before, starting_after.";
            let status = StatusCode::BAD_REQUEST;
            return Err(error(status, None, message, Some("ending_before")));
        }
        Ok(query)
    }

    fn expand(&mut self, value: &str) -> Result<(), Failure> {
        match value {
            "data.balance_transaction" => {
                self.expand_balance_transaction = true;
                Ok(())
            }
            "data.customer" => {
                self.expand_customer = true;
                Ok(())
            }
            "total_count" | "data.total_count" => Err(error(
                StatusCode::BAD_REQUEST,
                Some("property_forbidden"),
                "The total_count property cannot be expanded since API version 2025-03-31.basil.",
                Some("expand"),
            )),
            _ => Err(error(
                StatusCode::BAD_REQUEST,
                None,
                &format!("This property cannot be expanded ({value})."),
                Some("expand"),
            )),
        }
    }

    fn bound(&mut self, key: &str, value: &str) -> Result<(), Failure> {
        let Ok(n) = value.parse::<i64>() else {
            return Err(bad_param(&format!("Invalid integer: {value}"), key));
        };
        let (from, to) = match key {
            "created" => (Some(n), Some(n)),
            "created[gt]" => (Some(n + 1), None),
            "created[gte]" => (Some(n), None),
            "created[lt]" => (None, Some(n - 1)),
            _ => (None, Some(n)),
        };
        self.from = from.max(self.from);
        self.to = match (to, self.to) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(())
    }

    fn matches(&self, charge: &Value) -> bool {
        let created = charge["created"].as_i64().unwrap_or_default();
        !self.nothing
            && self.from.is_none_or(|f| created >= f)
            && self.to.is_none_or(|t| created <= t)
            && self
                .customer
                .as_deref()
                .is_none_or(|c| charge["customer"] == c)
    }

    /// The position in `listed` of the object a cursor names, or the 404.
    fn position(listed: &[Value], id: &str, param: &str) -> Result<usize, Failure> {
        listed.iter().position(|c| c["id"] == id).ok_or_else(|| {
            let message = format!("No such charge: '{id}'");
            let status = StatusCode::NOT_FOUND;
            error(status, Some("resource_missing"), &message, Some(param))
        })
    }

    fn page(&self, listed: &[Value]) -> Response {
        let (after, before) = match (&self.starting_after, &self.ending_before) {
            (Some(id), _) => match ListQuery::position(listed, id, "starting_after") {
                Ok(p) => (Some(p), None),
                Err(failure) => return failure.into(),
            },
            (None, Some(id)) => match ListQuery::position(listed, id, "ending_before") {
                Ok(p) => (None, Some(p)),
                Err(failure) => return failure.into(),
            },
            (None, None) => (None, None),
        };
        let selected: Vec<&Value> = listed
            .iter()
            .enumerate()
            .filter(|(p, _)| after.is_none_or(|a| *p > a) && before.is_none_or(|b| *p < b))
            .map(|(_, c)| c)
            .filter(|c| self.matches(c))
            .collect();
        // ending_before pages backwards: the `limit` items just before the cursor.
        let skip = if before.is_some() {
            selected.len().saturating_sub(self.limit)
        } else {
            0
        };
        let data: Vec<Value> = selected
            .iter()
            .skip(skip)
            .take(self.limit)
            .map(|c| self.render(c))
            .collect();
        let has_more = selected.len() > data.len();
        let body =
            json!({"object": "list", "url": "/v1/charges", "has_more": has_more, "data": data});
        json_response(StatusCode::OK, &body)
    }

    fn render(&self, charge: &Value) -> Value {
        let mut charge = charge.clone();
        if self.expand_balance_transaction {
            if let Some(txn) = balance_transaction(&charge) {
                charge["balance_transaction"] = txn;
            }
        }
        if self.expand_customer {
            if let Some(id) = charge["customer"].as_str() {
                charge["customer"] = customer(id);
            }
        }
        charge
    }
}

async fn unknown(
    State(state): State<Arc<Stripe>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    state.control.arrive(&method, &uri, &headers, "");
    let message = format!(
        "Unrecognized request URL ({method}: {}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
        uri.path()
    );
    error(StatusCode::NOT_FOUND, None, &message, None).into()
}
