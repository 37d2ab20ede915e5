//! A local HubSpot account for end-to-end tests, speaking the CRM v3 wire format of
//! `shared/reference/wire-contracts.md`: `POST /crm/v3/objects/{object}/search` with a
//! private app token, filter groups (OR of ANDed filters), one sort, requested
//! `properties` as strings, `limit` up to 200, `after` cursors with `paging.next` on every
//! page but the last, the 10,000-result cap (a cursor at or past it answers 400 while
//! `paging.next` is still offered), and HubSpot's error bodies
//! (`{"status":"error","message":..,"correlationId":..,"category":..}`).
//!
//! Test controls: [`HubSpotStandIn::rate_limit`] makes the next searches answer 429 with
//! an optional `Retry-After`; [`HubSpotStandIn::enforce_secondly_limit`] enforces
//! HubSpot's search limit (a number of searches per rolling second per account, beyond it
//! the documented `SECONDLY` 429 body, with or without `Retry-After`); the request log
//! tells which objects and cursors were asked.
//! Tests compute their expectations from [`Portal`] directly.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value};

use crate::salesforce_standin::Random;

/// The private app token the stand-in accepts.
pub const ACCESS_TOKEN: &str = "pat-na1-00000000-0000-4000-8000-standin00001";
/// The most results any one search returns.
pub const RESULT_CAP: usize = 10_000;
/// The largest `limit` a search accepts.
pub const MAX_LIMIT: usize = 200;

// ---------------------------------------------------------------------------------------
// The account's data

/// A contact, possibly associated with a company.
#[derive(Debug, Clone)]
pub struct HubContact {
    pub id: String,
    pub company_id: Option<String>,
    pub created: DateTime<Utc>,
}

/// A deal. `hs_is_closed` and `hs_is_closed_won` follow from the stage, as in HubSpot's
/// default pipeline.
#[derive(Debug, Clone)]
pub struct HubDeal {
    pub id: String,
    pub name: String,
    pub company_id: Option<String>,
    pub amount: Option<f64>,
    pub stage: &'static str,
    pub created: DateTime<Utc>,
}

impl HubDeal {
    pub fn is_closed(&self) -> bool {
        self.stage.starts_with("closed")
    }

    pub fn is_won(&self) -> bool {
        self.stage == "closedwon"
    }
}

/// A company; its rollups (`num_associated_deals`...) are computed from the deals and
/// contacts associated with it, as HubSpot maintains them.
#[derive(Debug, Clone)]
pub struct HubCompany {
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
}

/// Everything the stand-in's account holds.
#[derive(Debug, Clone, Default)]
pub struct Portal {
    pub contacts: Vec<HubContact>,
    pub deals: Vec<HubDeal>,
    pub companies: Vec<HubCompany>,
}

/// Company names; the first few are also Salesforce accounts in the Salesforce stand-in.
pub const COMPANY_NAMES: [&str; 28] = [
    "Northwind Traders",
    "Contoso Realty",
    "Fabrikam Homes",
    "Tailspin Investments",
    "Bellows College",
    "Best For You Organics",
    "Cohowinery",
    "Proseware Inc",
    "Relecloud",
    "School of Fine Art",
    "Munson's Pickles",
    "First Up Consultants",
    "Liberty's Delightful",
    "Hexa Homes",
    "Olympia Lenders",
    "Pelican Property",
    "Quick Flip LLC",
    "Riverbend Realty",
    "Summit Buyers",
    "Trinity Capital",
    "Upland Estates",
    "Vista Holdings",
    "Willow Creek Rentals",
    "Yellowstone Homes",
    "Zenith Partners",
    "Acorn Lending",
    "Birch Street Homes",
    "Cedar Point Capital",
];

const STAGES: [&str; 5] = [
    "appointmentscheduled",
    "qualifiedtobuy",
    "contractsent",
    "closedwon",
    "closedlost",
];

impl Portal {
    /// A deterministic account whose records were created over the 120 days up to `today`.
    /// Company `n` (of the first 24) has `24 - n` deals, so the ranking of companies by
    /// deals has no ties and the names Salesforce also knows lead it; the last four have none.
    pub fn generate(today: NaiveDate) -> Portal {
        Portal::generate_with(today, 380)
    }

    /// As [`Portal::generate`] with `contacts` contacts (more than 10,000 exercises the cap).
    pub fn generate_with(today: NaiveDate, contacts: usize) -> Portal {
        let mut random = Random::new(0x004B_5B07);
        let companies: Vec<HubCompany> = COMPANY_NAMES
            .iter()
            .enumerate()
            .map(|(n, name)| HubCompany {
                id: (9_000_000_000u64 + n as u64 * 7).to_string(),
                name: (*name).to_owned(),
                created: random.moment(today, 300 + n as u64),
            })
            .collect();
        let mut deals = Vec::new();
        let mut add_deal = |random: &mut Random, company_id: Option<String>| {
            let n = deals.len();
            deals.push(HubDeal {
                id: (20_000_000_000u64 + n as u64 * 3).to_string(),
                name: format!("Deal {n}"),
                company_id,
                // Whole multiples of 25 add up exactly in f64, whatever the order.
                amount: (random.below(15) != 0).then(|| (4 + random.below(2000)) as f64 * 25.0),
                stage: STAGES[random.below(STAGES.len() as u64) as usize],
                created: random.recent(today, 120),
            });
        };
        for (n, company) in companies.iter().take(24).enumerate() {
            for _ in 0..24 - n {
                add_deal(&mut random, Some(company.id.clone()));
            }
        }
        for _ in 0..25 {
            add_deal(&mut random, None);
        }
        let contacts = (0..contacts)
            .map(|n| HubContact {
                id: (100_000 + n as u64 * 11).to_string(),
                company_id: (random.below(4) != 0).then(|| {
                    companies[random.below(companies.len() as u64) as usize]
                        .id
                        .clone()
                }),
                created: random.recent(today, 120),
            })
            .collect();
        Portal {
            contacts,
            deals,
            companies,
        }
    }

    /// Deals associated with the company.
    pub fn deals_of<'a>(&'a self, company_id: &'a str) -> impl Iterator<Item = &'a HubDeal> + 'a {
        self.deals
            .iter()
            .filter(move |d| d.company_id.as_deref() == Some(company_id))
    }

    /// Contacts associated with the company.
    pub fn contacts_of<'a>(
        &'a self,
        company_id: &'a str,
    ) -> impl Iterator<Item = &'a HubContact> + 'a {
        self.contacts
            .iter()
            .filter(move |c| c.company_id.as_deref() == Some(company_id))
    }

    /// HubSpot's `total_revenue`: the amounts of the company's closed-won deals, unset
    /// while there are none.
    pub fn total_revenue(&self, company_id: &str) -> Option<f64> {
        let won: Vec<f64> = self
            .deals_of(company_id)
            .filter(|d| d.is_won())
            .map(|d| d.amount.unwrap_or(0.0))
            .collect();
        (!won.is_empty()).then(|| won.iter().sum())
    }

    /// What the HubSpot plugin should answer for the days `start..=end` (UTC), in the
    /// hub's response shape, computed from the records directly: no search, no plugin code.
    /// Clients are the 20 companies with the most deals (all-time rollups, as HubSpot keeps
    /// them); `active_clients` counts every company with a deal.
    pub fn expected(&self, start: NaiveDate, end: NaiveDate) -> Value {
        let within = |moment: &DateTime<Utc>| (start..=end).contains(&moment.date_naive());
        let contacts: Vec<&HubContact> = self
            .contacts
            .iter()
            .filter(|c| within(&c.created))
            .collect();
        let deals: Vec<&HubDeal> = self.deals.iter().filter(|d| within(&d.created)).collect();
        let amount = |d: &HubDeal| d.amount.unwrap_or(0.0);
        let with_deals: Vec<&HubCompany> = self
            .companies
            .iter()
            .filter(|c| self.deals_of(&c.id).next().is_some())
            .collect();
        let summary = json!({
            "total_users": contacts.len(),
            "total_events": deals.len(),
            // Not provided by the CRM; the merged answer shows it as 0.
            "page_views": 0,
            "active_clients": with_deals.len(),
            "pipeline_amount": deals.iter().filter(|d| !d.is_closed()).map(|d| amount(d)).sum::<f64>(),
            "won_deals": deals.iter().filter(|d| d.is_won()).count(),
            "won_amount": deals.iter().filter(|d| d.is_won()).map(|d| amount(d)).sum::<f64>(),
        });

        let mut days: std::collections::BTreeMap<NaiveDate, (usize, usize, f64)> =
            Default::default();
        for contact in &contacts {
            days.entry(contact.created.date_naive()).or_default().0 += 1;
        }
        for deal in &deals {
            let day = days.entry(deal.created.date_naive()).or_default();
            day.1 += 1;
            day.2 += amount(deal);
        }
        let daily: Vec<Value> = days
            .into_iter()
            .map(|(date, (users, events, amount))| json!({"date": date.to_string(), "users": users, "events": events, "amount": amount}))
            .collect();

        let mut clients: Vec<(&str, usize, usize, f64)> = with_deals
            .iter()
            .map(|c| {
                let deals = self.deals_of(&c.id).count();
                let contacts = self.contacts_of(&c.id).count();
                (
                    c.name.as_str(),
                    deals,
                    contacts,
                    self.total_revenue(&c.id).unwrap_or(0.0),
                )
            })
            .collect();
        clients.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        clients.truncate(20);
        let clients: Vec<Value> = clients
            .into_iter()
            .map(|(name, deals, contacts, revenue)| {
                json!({"client": name, "events": deals, "users": contacts, "page_views": 0, "won_amount": revenue})
            })
            .collect();
        json!({"summary": summary, "dailyMetrics": daily, "featureMetrics": [], "clientMetrics": clients})
    }

    /// Every object of a type as `(id, properties)`, property values as HubSpot types them.
    fn objects(&self, object: &str) -> Option<Objects> {
        let id_number = |id: &str| Prop::Number(id.parse().unwrap_or(0.0));
        match object {
            "contacts" => Some(
                self.contacts
                    .iter()
                    .map(|c| {
                        let props = HashMap::from([
                            ("createdate", Prop::DateTime(c.created)),
                            ("lastmodifieddate", Prop::DateTime(c.created)),
                            ("hs_object_id", id_number(&c.id)),
                            (
                                "associatedcompanyid",
                                c.company_id.as_deref().map_or(Prop::Null, id_number),
                            ),
                        ]);
                        (c.id.clone(), props)
                    })
                    .collect(),
            ),
            "deals" => Some(
                self.deals
                    .iter()
                    .map(|d| {
                        let props = HashMap::from([
                            ("createdate", Prop::DateTime(d.created)),
                            ("hs_lastmodifieddate", Prop::DateTime(d.created)),
                            ("hs_object_id", id_number(&d.id)),
                            ("dealname", Prop::Text(d.name.clone())),
                            ("amount", d.amount.map_or(Prop::Null, Prop::Number)),
                            ("dealstage", Prop::Text(d.stage.to_owned())),
                            ("pipeline", Prop::Text("default".into())),
                            ("hs_is_closed", Prop::Bool(d.is_closed())),
                            ("hs_is_closed_won", Prop::Bool(d.is_won())),
                        ]);
                        (d.id.clone(), props)
                    })
                    .collect(),
            ),
            "companies" => Some(
                self.companies
                    .iter()
                    .map(|c| {
                        let props = HashMap::from([
                            ("createdate", Prop::DateTime(c.created)),
                            ("hs_lastmodifieddate", Prop::DateTime(c.created)),
                            ("hs_object_id", id_number(&c.id)),
                            ("name", Prop::Text(c.name.clone())),
                            (
                                "num_associated_deals",
                                Prop::Number(self.deals_of(&c.id).count() as f64),
                            ),
                            (
                                "num_associated_contacts",
                                Prop::Number(self.contacts_of(&c.id).count() as f64),
                            ),
                            (
                                "total_revenue",
                                self.total_revenue(&c.id).map_or(Prop::Null, Prop::Number),
                            ),
                        ]);
                        (c.id.clone(), props)
                    })
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// A property value before HubSpot turns it into a string.
#[derive(Debug, Clone, PartialEq)]
enum Prop {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    DateTime(DateTime<Utc>),
}

impl Prop {
    /// The wire form: every value a string (`"1500"`, `"true"`, `"2024-01-01T00:00:00.000Z"`).
    fn to_json(&self) -> Value {
        match self {
            Prop::Null => Value::Null,
            Prop::Bool(b) => json!(b.to_string()),
            Prop::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => {
                json!(format!("{}", *n as i64))
            }
            Prop::Number(n) => json!(n.to_string()),
            Prop::Text(t) => json!(t),
            Prop::DateTime(d) => json!(iso(d)),
        }
    }

    /// Orders against a filter value: datetimes as epoch milliseconds, numbers numerically,
    /// the rest as text.
    fn compare(&self, value: &FilterValue) -> Option<CmpOrdering> {
        match self {
            Prop::Null => None,
            Prop::DateTime(d) => Some(d.timestamp_millis().cmp(&value.millis?)),
            Prop::Number(n) => n.partial_cmp(&value.number?),
            Prop::Bool(b) => Some(b.to_string().cmp(&value.text.to_ascii_lowercase())),
            Prop::Text(t) => Some(t.as_str().cmp(&value.text)),
        }
    }

    /// A sort key within one property: values of one type compare among themselves.
    fn sort_cmp(&self, other: &Prop) -> CmpOrdering {
        match (self, other) {
            (Prop::Null, Prop::Null) => CmpOrdering::Equal,
            (Prop::Null, _) => CmpOrdering::Less,
            (_, Prop::Null) => CmpOrdering::Greater,
            (Prop::Number(a), Prop::Number(b)) => a.total_cmp(b),
            (Prop::DateTime(a), Prop::DateTime(b)) => a.cmp(b),
            (Prop::Bool(a), Prop::Bool(b)) => a.cmp(b),
            (a, b) => a.to_json().to_string().cmp(&b.to_json().to_string()),
        }
    }
}

/// A filter's value, read once in every form a property may compare it in.
#[derive(Debug, Clone)]
struct FilterValue {
    text: String,
    number: Option<f64>,
    /// Epoch milliseconds, or an ISO timestamp read as such.
    millis: Option<i64>,
}

impl FilterValue {
    fn new(text: String) -> FilterValue {
        let millis = text.parse::<i64>().ok().or_else(|| {
            DateTime::parse_from_rfc3339(&text)
                .ok()
                .map(|v| v.timestamp_millis())
        });
        FilterValue {
            number: text.parse().ok(),
            millis,
            text,
        }
    }
}

/// HubSpot's timestamp format.
pub fn iso(moment: &DateTime<Utc>) -> String {
    moment.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

// ---------------------------------------------------------------------------------------
// The server

/// A running stand-in on 127.0.0.1 and a free port, stopped on drop.
pub struct HubSpotStandIn {
    base: String,
    state: Arc<StandIn>,
    /// Serving until dropped.
    _server: crate::Background,
}

/// One record as `(id, properties)`.
type Entry = (String, HashMap<&'static str, Prop>);
/// One object's records.
type Objects = Vec<Entry>;

/// The server's state. Std mutexes: nothing awaits while one is held.
pub struct StandIn {
    portal: Portal,
    /// The portal's records with their properties, computed once: searches only read them.
    objects: HashMap<&'static str, Objects>,
    /// How many of the next searches answer 429, and the Retry-After they carry.
    rate_limited: Mutex<(usize, Option<u32>)>,
    /// HubSpot's per-second search limit, when enforced.
    secondly: Mutex<Option<Secondly>>,
    /// Searches refused by that limit.
    over_limit: AtomicUsize,
    searches: AtomicUsize,
    /// Every search as `object after` (`-` for the first page).
    log: Mutex<Vec<String>>,
}

impl StandIn {
    pub fn new(portal: Portal) -> Arc<StandIn> {
        let objects = ["contacts", "deals", "companies"]
            .into_iter()
            .filter_map(|name| Some((name, portal.objects(name)?)))
            .collect();
        Arc::new(StandIn {
            portal,
            objects,
            rate_limited: Mutex::new((0, None)),
            secondly: Mutex::new(None),
            over_limit: AtomicUsize::new(0),
            searches: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        })
    }
}

/// A per-second limit on searches: at most `per_second` accepted in any rolling second.
struct Secondly {
    per_second: usize,
    retry_after: bool,
    accepted: VecDeque<Instant>,
}

impl StandIn {
    /// Whether a search arriving now is over the per-second limit; when it is not, it
    /// counts towards the limit. `Some(with Retry-After)` when over.
    fn over_secondly_limit(&self) -> Option<bool> {
        let mut secondly = self.secondly.lock().expect("secondly lock");
        let limit = secondly.as_mut()?;
        let now = Instant::now();
        while limit
            .accepted
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1))
        {
            limit.accepted.pop_front();
        }
        if limit.accepted.len() >= limit.per_second {
            self.over_limit.fetch_add(1, Ordering::SeqCst);
            return Some(limit.retry_after);
        }
        limit.accepted.push_back(now);
        None
    }
}

/// The 429 HubSpot answers past its per-second limit (wire-contracts.md, section 4).
fn secondly_limit(retry_after: bool) -> Response {
    let body = json!({
        "status": "error",
        "message": "You have reached your secondly limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c033cdaa-2c40-4a64-ae48-b4cec88dad24",
        "policyName": "SECONDLY",
        "requestId": "3d3e35b7-0dae-4b9f-a6e3-9c230cbcf8dd",
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    if retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, 1.into());
    }
    response
}

impl HubSpotStandIn {
    /// Serves `portal` on a fresh port.
    pub async fn start(portal: Portal) -> anyhow::Result<HubSpotStandIn> {
        let state = StandIn::new(portal);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let server = crate::serve_in_background(listener, app(state.clone()));
        Ok(HubSpotStandIn {
            base,
            state,
            _server: server,
        })
    }

    /// `http://127.0.0.1:PORT`, standing for `https://api.hubapi.com`.
    pub fn url(&self) -> &str {
        &self.base
    }

    pub fn portal(&self) -> &Portal {
        &self.state.portal
    }

    /// The next `searches` searches answer 429, with `Retry-After: retry_after` when given.
    pub fn rate_limit(&self, searches: usize, retry_after: Option<u32>) {
        *self.state.rate_limited.lock().expect("rate limit lock") = (searches, retry_after);
    }

    /// From now on at most `per_second` searches are accepted in any rolling second, as
    /// HubSpot limits its search endpoints per account; the others get the `SECONDLY`
    /// 429, with `Retry-After: 1` when `retry_after`.
    pub fn enforce_secondly_limit(&self, per_second: usize, retry_after: bool) {
        *self.state.secondly.lock().expect("secondly lock") = Some(Secondly {
            per_second,
            retry_after,
            accepted: VecDeque::new(),
        });
    }

    /// Searches refused by the per-second limit.
    pub fn over_limit(&self) -> usize {
        self.state.over_limit.load(Ordering::SeqCst)
    }

    /// How many search requests arrived, refused ones included.
    pub fn searches(&self) -> usize {
        self.state.searches.load(Ordering::SeqCst)
    }

    /// Every search so far as `object after` (`-` for a first page).
    pub fn requests(&self) -> Vec<String> {
        self.state.log.lock().expect("log lock").clone()
    }
}

/// The stand-in's routes over `state`, separate from serving so tests can drive it directly.
pub fn app(state: Arc<StandIn>) -> Router {
    Router::new()
        .route("/crm/v3/objects/{object}/search", post(search))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "NOT_FOUND", "Resource not found") })
        .with_state(state)
}

/// HubSpot's error body.
fn error(status: StatusCode, category: &str, message: &str) -> Response {
    let body = json!({
        "status": "error",
        "message": message,
        "correlationId": "5b0c6a4e-0000-4000-8000-standin00000",
        "category": category,
    });
    (status, Json(body)).into_response()
}

fn validation(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", &message.into())
}

async fn search(
    State(state): State<Arc<StandIn>>,
    Path(object): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    state.searches.fetch_add(1, Ordering::SeqCst);
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {ACCESS_TOKEN}"));
    if !authorized {
        return error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        );
    }
    {
        let mut limited = state.rate_limited.lock().expect("rate limit lock");
        if limited.0 > 0 {
            limited.0 -= 1;
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITS",
                "You have reached your secondly limit.",
            );
            if let Some(seconds) = limited.1 {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, seconds.into());
            }
            state
                .log
                .lock()
                .expect("log lock")
                .push(format!("{object} 429"));
            return response;
        }
    }
    if let Some(retry_after) = state.over_secondly_limit() {
        state
            .log
            .lock()
            .expect("log lock")
            .push(format!("{object} 429"));
        return secondly_limit(retry_after);
    }
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return validation("Invalid input JSON on line 1");
    };
    let Some(objects) = state.objects.get(object.as_str()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "OBJECT_NOT_FOUND",
            &format!("Unable to infer object type from: {object}"),
        );
    };
    let after = match request.get("after") {
        None | Some(Value::Null) => 0,
        Some(value) => match value.as_str().and_then(|a| a.parse::<usize>().ok()) {
            Some(after) => after,
            None => return validation(format!("Invalid after: {value}")),
        },
    };
    state.log.lock().expect("log lock").push(format!(
        "{object} {}",
        request.get("after").and_then(Value::as_str).unwrap_or("-")
    ));
    if after >= RESULT_CAP {
        return validation(format!(
            "Search results are limited to {RESULT_CAP}; after {after} is beyond them"
        ));
    }
    let limit = match request.get("limit") {
        None => 10,
        Some(value) => match value.as_u64() {
            Some(limit) if (1..=MAX_LIMIT as u64).contains(&limit) => limit as usize,
            _ => return validation(format!("limit must be between 1 and {MAX_LIMIT}")),
        },
    };

    // Filter groups are ORed, the filters of a group ANDed; no groups matches everything.
    let groups = match request.get("filterGroups") {
        None => Vec::new(),
        Some(Value::Array(groups)) => groups.clone(),
        Some(_) => return validation("filterGroups must be an array"),
    };
    let mut tests: Vec<Vec<(String, String, Option<FilterValue>)>> = Vec::new();
    for group in &groups {
        let Some(filters) = group.get("filters").and_then(Value::as_array) else {
            return validation("each filter group needs filters");
        };
        let mut parsed = Vec::new();
        for filter in filters {
            let property = filter.get("propertyName").and_then(Value::as_str);
            let operator = filter.get("operator").and_then(Value::as_str);
            let value = match filter.get("value") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::Bool(b)) => Some(b.to_string()),
                _ => None,
            };
            let (Some(property), Some(operator)) = (property, operator) else {
                return validation("each filter needs propertyName and operator");
            };
            if ![
                "EQ",
                "NEQ",
                "LT",
                "LTE",
                "GT",
                "GTE",
                "HAS_PROPERTY",
                "NOT_HAS_PROPERTY",
            ]
            .contains(&operator)
            {
                return validation(format!("Unsupported operator {operator} in this stand-in"));
            }
            if value.is_none() && !operator.ends_with("HAS_PROPERTY") {
                return validation(format!(
                    "filter on {property} with {operator} needs a value"
                ));
            }
            parsed.push((
                property.to_owned(),
                operator.to_owned(),
                value.map(FilterValue::new),
            ));
        }
        tests.push(parsed);
    }
    let matches = |props: &HashMap<&'static str, Prop>| {
        tests.is_empty()
            || tests.iter().any(|group| {
                group.iter().all(|(property, operator, value)| {
                    let prop = props.get(property.as_str()).unwrap_or(&Prop::Null);
                    match operator.as_str() {
                        "HAS_PROPERTY" => *prop != Prop::Null,
                        "NOT_HAS_PROPERTY" => *prop == Prop::Null,
                        op => {
                            let ordering = value.as_ref().and_then(|value| prop.compare(value));
                            match (op, ordering) {
                                ("NEQ", None) => true,
                                (_, None) => false,
                                ("EQ", Some(o)) => o == CmpOrdering::Equal,
                                ("NEQ", Some(o)) => o != CmpOrdering::Equal,
                                ("LT", Some(o)) => o == CmpOrdering::Less,
                                ("LTE", Some(o)) => o != CmpOrdering::Greater,
                                ("GT", Some(o)) => o == CmpOrdering::Greater,
                                (_, Some(o)) => o != CmpOrdering::Less,
                            }
                        }
                    }
                })
            })
    };
    let mut found: Vec<&Entry> = objects.iter().filter(|(_, p)| matches(p)).collect();

    let sorts = request
        .get("sorts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if sorts.len() > 1 {
        return validation("Only one sort is supported");
    }
    let id_order = |a: &str, b: &str| a.len().cmp(&b.len()).then_with(|| a.cmp(b));
    found.sort_by(|a, b| id_order(&a.0, &b.0));
    if let Some(sort) = sorts.first() {
        let property = sort
            .get("propertyName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let descending = sort.get("direction").and_then(Value::as_str) == Some("DESCENDING");
        // Keys looked up once; the sort is stable, so ties keep id order.
        let mut keyed: Vec<(&Prop, &Entry)> = found
            .iter()
            .map(|entry| (entry.1.get(property).unwrap_or(&Prop::Null), *entry))
            .collect();
        keyed.sort_by(|a, b| {
            let ordering = a.0.sort_cmp(b.0);
            if descending {
                ordering.reverse()
            } else {
                ordering
            }
        });
        found = keyed.into_iter().map(|(_, entry)| entry).collect();
    }

    let requested: Vec<String> = request
        .get("properties")
        .and_then(Value::as_array)
        .map(|p| {
            p.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let total = found.len();
    let end = (after + limit).min(total).min(RESULT_CAP);
    let results: Vec<Value> = found[after.min(end)..end]
        .iter()
        .map(|(id, props)| {
            let mut properties = Map::new();
            // HubSpot adds these to whatever was asked.
            let defaults = ["createdate", "hs_object_id", if object == "contacts" { "lastmodifieddate" } else { "hs_lastmodifieddate" }];
            for name in defaults.iter().map(|d| d.to_string()).chain(requested.iter().cloned()) {
                // A requested property the object does not have is left out.
                if let Some(prop) = props.get(name.as_str()) {
                    properties.insert(name, prop.to_json());
                }
            }
            let created = props.get("createdate").map(Prop::to_json).unwrap_or(Value::Null);
            json!({"id": id, "properties": properties, "createdAt": created, "updatedAt": created, "archived": false})
        })
        .collect();
    let mut answer = json!({"total": total, "results": results});
    // Offered while records remain, even at the cap: the next request then fails.
    if end < total {
        answer["paging"] =
            json!({"next": {"after": end.to_string(), "link": format!("?after={end}")}});
    }
    Json(answer).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companies_have_distinct_deal_counts_at_the_top() {
        let portal = Portal::generate(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap());
        let mut counts: Vec<usize> = portal
            .companies
            .iter()
            .map(|c| portal.deals_of(&c.id).count())
            .collect();
        counts.sort_unstable();
        counts.dedup();
        assert_eq!(counts, (0..=24).collect::<Vec<_>>());
    }

    #[test]
    fn properties_are_strings_on_the_wire() {
        assert_eq!(Prop::Number(1500.0).to_json(), json!("1500"));
        assert_eq!(Prop::Number(12.5).to_json(), json!("12.5"));
        assert_eq!(Prop::Bool(true).to_json(), json!("true"));
        let moment = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            Prop::DateTime(moment).to_json(),
            json!("2024-01-01T00:00:00.000Z")
        );
        assert_eq!(
            Prop::DateTime(moment).compare(&FilterValue::new("1704067200000".into())),
            Some(CmpOrdering::Equal)
        );
    }
}
