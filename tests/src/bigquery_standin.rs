//! A local stand-in for Google BigQuery's REST v2 API, speaking the wire format recorded in
//! `shared/reference/wire-contracts.md`, so the hub's `bigquery` source can be driven through
//! the real `gcp-bigquery-client` in tests:
//!
//! - `POST /bigquery/v2/projects/{project}/queries` (jobs.query) answers the first page, or
//!   `jobComplete: false` while a job is still "running";
//! - `GET /bigquery/v2/projects/{project}/queries/{jobId}` (jobs.getQueryResults) polls and
//!   pages with `pageToken`, `maxResults` rows at a time;
//! - every scalar cell is a JSON string, NULL is `{"v": null}`, RECORD `{"v": {"f": [...]}}`,
//!   REPEATED `{"v": [{"v": ...}]}`;
//! - errors are HTTP 4xx/5xx with `error.code`, `error.message`, `error.status` and
//!   `error.errors[]`.
//!
//! It is as strict as the service where the hub could get things wrong: legacy SQL, a
//! parameter the SQL names but the request lacks, a parameter of the wrong type, a missing
//! default dataset, a scan above `maximumBytesBilled`, an unknown job or page token are all
//! errors. Every request is recorded for the test to inspect.
//!
//! It answers from its own data. [`Data::Events`] holds GA4 export rows (`event_params` and
//! all) and evaluates the four GA4-shaped queries of `sources.d/ga4-bigquery.yaml`: it
//! recognises the dataset asked for by the job label the hub sends
//! (`metrics_hub_dataset`), reads the window and filters from the typed query parameters the
//! SQL names (`_TABLE_SUFFIX BETWEEN @a AND @b`, `event_name = @x`, `client = @y`), and
//! computes the result rows from the events. [`Data::Table`] serves one fixed result to any
//! query, for exercising cell types.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_hub::kinds::sql::demo::DemoEvent;
use serde_json::{json, Value};

/// One `event_params` entry of a GA4 export row.
#[derive(Debug, Clone, PartialEq)]
pub struct EventParam {
    pub key: String,
    pub string_value: Option<String>,
    pub int_value: Option<i64>,
}

/// One row of a GA4 export table `events_YYYYMMDD` (the columns the queries read).
#[derive(Debug, Clone, PartialEq)]
pub struct Ga4Event {
    /// `YYYYMMDD`; also the suffix of the daily table the row lives in.
    pub event_date: String,
    pub event_timestamp: i64,
    pub event_name: String,
    pub user_pseudo_id: String,
    pub event_params: Vec<EventParam>,
}

impl Ga4Event {
    /// The export row GA4 would write for a demo event: `page_location` as a string param,
    /// plus the integer params GA4 always adds.
    pub fn from_demo(event: &DemoEvent) -> Ga4Event {
        let mut event_params = vec![
            EventParam {
                key: "ga_session_id".to_owned(),
                string_value: None,
                int_value: Some(event.event_timestamp / 1_000_000 / 1800),
            },
            EventParam {
                key: "engagement_time_msec".to_owned(),
                string_value: None,
                int_value: Some(event.event_timestamp % 60_000),
            },
        ];
        if let Some(url) = &event.page_location {
            event_params.insert(
                1,
                EventParam {
                    key: "page_location".to_owned(),
                    string_value: Some(url.clone()),
                    int_value: None,
                },
            );
        }
        Ga4Event {
            event_date: event.event_date.clone(),
            event_timestamp: event.event_timestamp,
            event_name: event.event_name.clone(),
            user_pseudo_id: event.user_pseudo_id.clone(),
            event_params,
        }
    }

    fn page_location(&self) -> Option<&str> {
        self.event_params
            .iter()
            .find(|p| p.key == "page_location")
            .and_then(|p| p.string_value.as_deref())
    }

    /// What reading this row costs, in the stand-in's byte model: every column's size.
    pub fn bytes(&self) -> u64 {
        let params: usize = self
            .event_params
            .iter()
            .map(|p| p.key.len() + p.string_value.as_ref().map_or(8, String::len))
            .sum();
        (self.event_date.len() + 8 + self.event_name.len() + self.user_pseudo_id.len() + params)
            as u64
    }
}

/// What the stand-in answers queries from.
#[derive(Debug, Clone)]
pub enum Data {
    /// GA4 export rows; queries are evaluated over them (see the module documentation).
    Events(Arc<Vec<Ga4Event>>),
    /// One fixed result for every query: `schema` is `{"fields": [...]}`, `rows` are
    /// already-encoded `{"f": [...]}` rows; scans `bytes`.
    Table {
        schema: Value,
        rows: Vec<Value>,
        bytes: u64,
    },
}

/// An error the stand-in answers with, in BigQuery's envelope.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: u16,
    /// `error.status`, e.g. INVALID_ARGUMENT.
    pub code_name: String,
    /// `error.errors[0].reason`, e.g. invalidQuery, backendError, rateLimitExceeded.
    pub reason: String,
    pub message: String,
}

impl Failure {
    pub fn new(status: u16, code_name: &str, reason: &str, message: &str) -> Failure {
        Failure {
            status,
            code_name: code_name.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// How the stand-in behaves; change it between requests with [`BigqueryStandin::set`].
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Responses per job that say `jobComplete: false` before it completes (jobs.query
    /// first, then getQueryResults polls).
    pub pending_polls: u32,
    /// Answer jobs.query with this error...
    pub fail: Option<Failure>,
    /// ...only for jobs with this `metrics_hub_dataset` label (all when `None`)...
    pub fail_dataset: Option<String>,
    /// ...only this many times, then succeed (always when 0).
    pub fail_times: u32,
    /// The bearer token every request must carry; 401 `authError` otherwise.
    pub require_token: Option<String>,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: &'static str,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub authorization: Option<String>,
    /// The JSON body of jobs.query.
    pub body: Option<Value>,
}

impl Recorded {
    /// The `metrics_hub_dataset` label of a jobs.query request.
    pub fn dataset_label(&self) -> Option<&str> {
        self.body.as_ref()?["labels"]["metrics_hub_dataset"].as_str()
    }
}

#[derive(Debug)]
struct Job {
    plan: Plan,
    /// Schema and encoded rows, computed when the job completes: like BigQuery, the
    /// stand-in validates a query when it arrives and runs it afterwards.
    result: Option<(Value, Vec<Value>)>,
    bytes: u64,
    location: String,
    polls_left: u32,
    /// Page tokens handed out, with the row offset each continues at.
    tokens: HashMap<String, usize>,
}

#[derive(Debug, Default)]
struct Inner {
    behaviour: Behaviour,
    failures_served: u32,
    jobs: HashMap<String, Job>,
    next_job: u64,
    requests: Vec<Recorded>,
}

/// The stand-in's state: its project and dataset, its data and what happened so far.
pub struct StandinState {
    project: String,
    dataset: String,
    data: Data,
    /// For [`Data::Events`], the columns the GA4 queries compute from each row.
    derived: Vec<Derived>,
    // A std Mutex: handlers hold it only to read or update a few fields, never across an
    // await.
    inner: Mutex<Inner>,
}

impl StandinState {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running stand-in on 127.0.0.1 and a free port, stopped on drop.
pub struct BigqueryStandin {
    /// `http://127.0.0.1:PORT/bigquery/v2`, what `connection.base_url` takes.
    pub base_url: String,
    state: Arc<StandinState>,
    /// Serving until dropped.
    _server: crate::Background,
}

impl BigqueryStandin {
    /// Serves `data` as project `project`, dataset `dataset`.
    pub async fn start(project: &str, dataset: &str, data: Data) -> anyhow::Result<Self> {
        let derived = match &data {
            Data::Events(events) => events.iter().map(Derived::of).collect(),
            Data::Table { .. } => Vec::new(),
        };
        let state = Arc::new(StandinState {
            project: project.to_owned(),
            dataset: dataset.to_owned(),
            data,
            derived,
            inner: Mutex::new(Inner::default()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}/bigquery/v2", listener.local_addr()?);
        let server = crate::serve_in_background(listener, app(state.clone()));
        Ok(BigqueryStandin {
            base_url,
            state,
            _server: server,
        })
    }

    /// Replaces the behaviour (and resets its failure count).
    pub fn set(&self, behaviour: Behaviour) {
        let mut inner = self.state.inner();
        inner.behaviour = behaviour;
        inner.failures_served = 0;
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.inner().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state.inner().requests.clear();
    }

    /// What scanning the tables with suffixes `from..=to` costs in the stand-in's model:
    /// the `totalBytesProcessed` it reports for a GA4 query over that window.
    pub fn scan_bytes(&self, from: &str, to: &str) -> u64 {
        match &self.state.data {
            Data::Events(events) => scan_bytes(events, from, to),
            Data::Table { bytes, .. } => *bytes,
        }
    }
}

/// What a GA4 query over the tables with suffixes `from..=to` of `events` scans, in the
/// stand-in's byte model (what it reports as `totalBytesProcessed`).
pub fn scan_bytes(events: &[Ga4Event], from: &str, to: &str) -> u64 {
    events
        .iter()
        .filter(|e| e.event_date.as_str() >= from && e.event_date.as_str() <= to)
        .map(Ga4Event::bytes)
        .sum()
}

/// The stand-in's routes over its state.
pub fn app(state: Arc<StandinState>) -> Router {
    Router::new()
        .route("/bigquery/v2/projects/{project}/queries", post(jobs_query))
        .route(
            "/bigquery/v2/projects/{project}/queries/{job_id}",
            get(get_query_results),
        )
        .with_state(state)
}

/// BigQuery's error envelope.
fn envelope(failure: &Failure) -> Response {
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({"error": {
        "code": failure.status,
        "message": failure.message,
        "status": failure.code_name,
        "errors": [{"message": failure.message, "domain": "global", "reason": failure.reason}],
    }});
    (status, Json(body)).into_response()
}

fn invalid_query(message: impl Into<String>) -> Failure {
    Failure::new(400, "INVALID_ARGUMENT", "invalidQuery", &message.into())
}

fn record(
    state: &StandinState,
    method: &'static str,
    path: String,
    query: BTreeMap<String, String>,
    headers: &HeaderMap,
    body: Option<Value>,
) {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state.inner().requests.push(Recorded {
        method,
        path,
        query,
        authorization,
        body,
    });
}

/// The 401 BigQuery answers a request without a valid token with, if one is required.
fn check_token(state: &StandinState, headers: &HeaderMap) -> Option<Response> {
    let required = state.inner().behaviour.require_token.clone()?;
    let given = headers.get("authorization").and_then(|v| v.to_str().ok());
    if given == Some(format!("Bearer {required}").as_str()) {
        return None;
    }
    Some(envelope(&Failure::new(
        401,
        "UNAUTHENTICATED",
        "authError",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
    )))
}

async fn jobs_query(
    State(state): State<Arc<StandinState>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    record(
        &state,
        "POST",
        format!("/bigquery/v2/projects/{project}/queries"),
        BTreeMap::new(),
        &headers,
        parsed.clone(),
    );
    if let Some(denied) = check_token(&state, &headers) {
        return denied;
    }
    let Some(request) = parsed else {
        return envelope(&Failure::new(
            400,
            "INVALID_ARGUMENT",
            "parseError",
            "Parse error: the request body is not JSON",
        ));
    };
    if project != state.project {
        return envelope(&Failure::new(
            404,
            "NOT_FOUND",
            "notFound",
            &format!("Not found: Project {project}"),
        ));
    }
    let label = request["labels"]["metrics_hub_dataset"]
        .as_str()
        .map(str::to_owned);
    {
        let mut inner = state.inner();
        let behaviour = inner.behaviour.clone();
        if let Some(failure) = &behaviour.fail {
            let applies = behaviour.fail_dataset.is_none() || behaviour.fail_dataset == label;
            let exhausted =
                behaviour.fail_times > 0 && inner.failures_served >= behaviour.fail_times;
            if applies && !exhausted {
                inner.failures_served += 1;
                return envelope(failure);
            }
        }
    }
    let (plan, bytes) = match plan(&state, &request, label.as_deref()) {
        Ok(planned) => planned,
        Err(failure) => return envelope(&failure),
    };
    let location = request["location"].as_str().unwrap_or("US").to_owned();
    if request["dryRun"] == json!(true) {
        // A dry run validates and prices the query; it starts no job.
        return Json(json!({
            "kind": "bigquery#queryResponse",
            "jobReference": {"projectId": state.project, "location": location},
            "schema": schema(&plan, &state),
            "totalBytesProcessed": bytes.to_string(),
            "jobComplete": false,
            "cacheHit": false,
        }))
        .into_response();
    }
    if let Some(limit) = request["maximumBytesBilled"]
        .as_str()
        .and_then(|l| l.parse::<u64>().ok())
    {
        if bytes > limit {
            return envelope(&Failure::new(
                400,
                "INVALID_ARGUMENT",
                "bytesBilledLimitExceeded",
                &format!(
                    "Query exceeded limit for bytes billed: {limit}. {bytes} or higher required."
                ),
            ));
        }
    }
    let page_size = request["maxResults"].as_u64().map(|n| n as usize);
    let polls = state.inner().behaviour.pending_polls;
    let result = (polls == 0).then(|| run(&state, &plan));
    let mut job = Job {
        plan,
        result,
        bytes,
        location,
        polls_left: polls,
        tokens: HashMap::new(),
    };
    let mut inner = state.inner();
    inner.next_job += 1;
    let job_id = format!("job_standin_{}", inner.next_job);
    let answer = respond(
        &state.project,
        &job_id,
        &mut job,
        0,
        page_size,
        "queryResponse",
    );
    inner.jobs.insert(job_id, job);
    Json(answer).into_response()
}

async fn get_query_results(
    State(state): State<Arc<StandinState>>,
    Path((project, job_id)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    record(
        &state,
        "GET",
        format!("/bigquery/v2/projects/{project}/queries/{job_id}"),
        query.clone(),
        &headers,
        None,
    );
    if let Some(denied) = check_token(&state, &headers) {
        return denied;
    }
    // The poll that finds the job complete runs it, outside the lock.
    let due = match state.inner().jobs.get(&job_id) {
        Some(job) if job.polls_left == 0 && job.result.is_none() => Some(job.plan.clone()),
        _ => None,
    };
    let computed = due.map(|plan| run(&state, &plan));
    let mut inner = state.inner();
    let not_found = || {
        envelope(&Failure::new(
            404,
            "NOT_FOUND",
            "notFound",
            &format!("Not found: Job {project}:{job_id}"),
        ))
    };
    let Some(job) = inner.jobs.get_mut(&job_id) else {
        return not_found();
    };
    if let Some(computed) = computed {
        job.result.get_or_insert(computed);
    }
    // A job is found in its own location only, and outside the US and EU multi-regions
    // only when the request names that location.
    let location_ok = match query.get("location") {
        Some(location) => *location == job.location,
        None => matches!(job.location.as_str(), "US" | "EU"),
    };
    if !location_ok || project != state.project {
        return not_found();
    }
    let offset = match query.get("pageToken") {
        None => 0,
        Some(token) => match job.tokens.get(token) {
            Some(offset) => *offset,
            None => {
                return envelope(&Failure::new(
                    400,
                    "INVALID_ARGUMENT",
                    "invalid",
                    "Invalid page token",
                ))
            }
        },
    };
    let page_size = query.get("maxResults").and_then(|m| m.parse().ok());
    let answer = respond(
        &state.project,
        &job_id,
        job,
        offset,
        page_size,
        "getQueryResultsResponse",
    );
    Json(answer).into_response()
}

/// A jobs.query or getQueryResults body: not complete yet, or the page at `offset`.
fn respond(
    project: &str,
    job_id: &str,
    job: &mut Job,
    offset: usize,
    page_size: Option<usize>,
    kind: &str,
) -> Value {
    let reference = json!({"projectId": project, "jobId": job_id, "location": job.location});
    if job.polls_left > 0 {
        job.polls_left -= 1;
        return json!({"kind": format!("bigquery#{kind}"), "jobReference": reference, "jobComplete": false});
    }
    let incomplete = json!({"kind": format!("bigquery#{kind}"), "jobReference": reference, "jobComplete": false});
    let Some((schema, rows)) = &job.result else {
        return incomplete;
    };
    let end = page_size.map_or(rows.len(), |size| (offset + size.max(1)).min(rows.len()));
    let mut answer = json!({
        "kind": format!("bigquery#{kind}"),
        "jobReference": reference,
        "jobComplete": true,
        "totalRows": rows.len().to_string(),
        "schema": schema,
        "totalBytesProcessed": job.bytes.to_string(),
        "cacheHit": false,
    });
    // Like BigQuery, no `rows` key at all when the page is empty.
    if end > offset {
        answer["rows"] = Value::from(rows[offset..end].to_vec());
    }
    if end < rows.len() {
        let token = format!(
            "BQ{:08x}{}",
            end * 2_654_435_761 % 4_294_967_291,
            job.tokens.len()
        );
        job.tokens.insert(token.clone(), end);
        answer["pageToken"] = Value::from(token);
    }
    answer
}

/// How a job's rows are computed, decided (and the query validated) when it arrives.
#[derive(Debug, Clone)]
enum Plan {
    /// The fixed result of [`Data::Table`].
    Table,
    /// A query that reads no table, such as the hub's `SELECT 1` health probe.
    Probe,
    /// One of the GA4 queries: `dataset` is its `metrics_hub_dataset` label.
    Ga4 { dataset: String, window: Window },
}

/// The typed parameters of a request, by name: (type, value).
fn parameters(request: &Value) -> Result<HashMap<String, (String, Option<String>)>, Failure> {
    let mut named = HashMap::new();
    let Some(list) = request["queryParameters"].as_array() else {
        return Ok(named);
    };
    if !list.is_empty() && request["parameterMode"] != json!("NAMED") {
        return Err(invalid_query(
            "Positional parameters are not supported here: set parameterMode NAMED",
        ));
    }
    for parameter in list {
        let name = parameter["name"].as_str().unwrap_or_default().to_owned();
        let kind = parameter["parameterType"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let value = parameter["parameterValue"]["value"]
            .as_str()
            .map(str::to_owned);
        if name.is_empty() || kind.is_empty() {
            return Err(invalid_query("Query parameters need a name and a type"));
        }
        named.insert(name, (kind, value));
    }
    Ok(named)
}

/// The `@name`s the SQL refers to, with their offsets; quoted text is skipped.
fn referenced_parameters(sql: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut quote: Option<char> = None;
    let mut chars = sql.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '@') => {
                let name: String = sql[at + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                    found.push((at, name));
                }
            }
            (None, _) => {}
        }
    }
    found
}

/// The parameter named right after `pattern` in the SQL (e.g. `client = @`), if any.
fn parameter_after(sql: &str, pattern: &str) -> Option<String> {
    let start = sql.find(pattern)? + pattern.len();
    let name: String = sql[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    Some(name)
}

/// The STRING value of parameter `name`; a value of another type is the error BigQuery
/// gives when comparing it with a STRING column.
fn string_parameter(
    params: &HashMap<String, (String, Option<String>)>,
    name: &str,
    column: &str,
) -> Result<Option<String>, Failure> {
    match params.get(name) {
        Some((kind, value)) if kind == "STRING" => Ok(value.clone()),
        Some((kind, _)) => Err(invalid_query(format!(
            "No matching signature for operator = for argument types: STRING, {kind}. Supported signature: ANY = ANY (comparing {column})"
        ))),
        None => Err(invalid_query(format!("Query parameter '{name}' not found"))),
    }
}

/// Validates a jobs.query request as BigQuery would and plans its result; also returns
/// the bytes the query scans.
fn plan(
    state: &StandinState,
    request: &Value,
    label: Option<&str>,
) -> Result<(Plan, u64), Failure> {
    if request["useLegacySql"] != json!(false) {
        return Err(invalid_query(
            "Legacy SQL is not supported by this stand-in: send useLegacySql false",
        ));
    }
    let sql = request["query"].as_str().unwrap_or_default();
    if sql.trim().is_empty() {
        return Err(invalid_query("The query is empty"));
    }
    let params = parameters(request)?;
    for (at, name) in referenced_parameters(sql) {
        if !params.contains_key(&name) {
            return Err(invalid_query(format!(
                "Query parameter '{name}' not found at [offset {at}]"
            )));
        }
    }
    let reads_events = sql.contains("`events_*`");
    if reads_events {
        let default = &request["defaultDataset"];
        match (default["projectId"].as_str(), default["datasetId"].as_str()) {
            (None, _) | (_, None) => {
                return Err(invalid_query(
                    "Table name \"events_*\" missing dataset while no default dataset is set in the request.",
                ))
            }
            (Some(project), Some(dataset)) if project != state.project || dataset != state.dataset => {
                return Err(Failure::new(
                    404,
                    "NOT_FOUND",
                    "notFound",
                    &format!("Not found: Dataset {project}:{dataset} was not found in location US"),
                ))
            }
            _ => {}
        }
    }
    match &state.data {
        Data::Table { bytes, .. } => Ok((Plan::Table, *bytes)),
        Data::Events(_) if !reads_events => Ok((Plan::Probe, 0)),
        Data::Events(_) => {
            let dataset = match label {
                Some(name @ ("summary" | "daily" | "features" | "clients")) => name.to_owned(),
                _ => {
                    return Err(invalid_query(
                        "The stand-in evaluates the GA4 queries of a metrics-hub dataset (label metrics_hub_dataset) only",
                    ))
                }
            };
            let window = Window::from_sql(sql, &params)?;
            let (from, to) = (day_number(&window.from), day_number(&window.to));
            let bytes = state
                .derived
                .iter()
                .filter(|d| d.day >= from && d.day <= to)
                .map(|d| d.bytes)
                .sum();
            Ok((Plan::Ga4 { dataset, window }, bytes))
        }
    }
}

/// The result schema of a plan.
fn schema(plan: &Plan, state: &StandinState) -> Value {
    match (plan, &state.data) {
        (Plan::Table, Data::Table { schema, .. }) => schema.clone(),
        (Plan::Ga4 { dataset, .. }, _) => match dataset.as_str() {
            "summary" => json!({"fields": [
                field("total_users", "INTEGER"), field("total_events", "INTEGER"),
                field("page_views", "INTEGER"), field("active_clients", "INTEGER"),
            ]}),
            "daily" => json!({"fields": [
                field("event_date", "STRING"), field("users", "INTEGER"), field("events", "INTEGER"),
            ]}),
            "features" => {
                json!({"fields": [field("feature", "STRING"), field("views", "INTEGER")]})
            }
            _ => json!({"fields": [
                field("client", "STRING"), field("events", "INTEGER"),
                field("users", "INTEGER"), field("page_views", "INTEGER"),
            ]}),
        },
        _ => json!({"fields": [field("f0_", "INTEGER")]}),
    }
}

/// Runs a plan: the result schema and its encoded rows.
fn run(state: &StandinState, plan: &Plan) -> (Value, Vec<Value>) {
    let rows = match (plan, &state.data) {
        (Plan::Table, Data::Table { rows, .. }) => rows.clone(),
        (Plan::Ga4 { dataset, window }, Data::Events(events)) => {
            let (from, to) = (day_number(&window.from), day_number(&window.to));
            let scanned: Vec<(&Ga4Event, &Derived)> = events
                .iter()
                .zip(&state.derived)
                .filter(|(e, d)| {
                    d.day >= from
                        && d.day <= to
                        && window
                            .event_name
                            .as_ref()
                            .is_none_or(|n| e.event_name == *n)
                })
                .collect();
            match dataset.as_str() {
                "summary" => summary(&scanned, window),
                "daily" => daily(&scanned, window),
                "features" => features(&scanned, window),
                _ => clients(&scanned, window),
            }
        }
        _ => vec![json!({"f": [{"v": "1"}]})],
    };
    (schema(plan, state), rows)
}

/// What the GA4 queries restrict, read from the typed parameters their SQL names.
#[derive(Debug, Clone)]
struct Window {
    from: String,
    to: String,
    event_name: Option<String>,
    client: Option<String>,
}

impl Window {
    fn from_sql(
        sql: &str,
        params: &HashMap<String, (String, Option<String>)>,
    ) -> Result<Window, Failure> {
        let between = "_TABLE_SUFFIX BETWEEN @";
        let Some(from_name) = parameter_after(sql, between) else {
            return Err(invalid_query(
                "The stand-in needs `_TABLE_SUFFIX BETWEEN @a AND @b` to prune the events_* tables",
            ));
        };
        let after = &sql[sql.find(between).unwrap_or_default()..];
        let to_name = parameter_after(after, " AND @").unwrap_or_default();
        let suffix = |name: &str| -> Result<String, Failure> {
            match params.get(name) {
                Some((kind, Some(value))) if kind == "STRING" => Ok(value.clone()),
                Some((kind, _)) => Err(invalid_query(format!(
                    "No matching signature for operator BETWEEN for argument types: STRING, {kind}, {kind}"
                ))),
                None => Err(invalid_query(format!("Query parameter '{name}' not found"))),
            }
        };
        let event_name = match parameter_after(sql, "event_name = @") {
            Some(name) => string_parameter(params, &name, "event_name")?,
            None => None,
        };
        let client = match parameter_after(sql, "client = @") {
            Some(name) => string_parameter(params, &name, "client")?,
            None => None,
        };
        Ok(Window {
            from: suffix(&from_name)?,
            to: suffix(&to_name)?,
            event_name,
            client,
        })
    }
}

/// `REGEXP_EXTRACT(CONCAT(url, '/'), r'^https://([^./]+)\.8020rei\.com[/?#:]')`.
fn client_of_url(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let end = rest.find(['.', '/'])?;
    if end == 0 || !rest[end..].starts_with('.') {
        return None;
    }
    let tail = format!("{}/", &rest[end..]);
    let boundary = tail.strip_prefix(".8020rei.com")?.chars().next()?;
    matches!(boundary, '/' | '?' | '#' | ':').then(|| rest[..end].to_owned())
}

/// The CASE over STRPOS in the features query: first pattern found wins.
fn feature_of_url(url: &str) -> &'static str {
    const FEATURES: [(&str, &str); 8] = [
        ("/home", "Home Dashboard"),
        ("/buybox/deals", "Buybox - Deals"),
        ("/buybox", "Buybox"),
        ("/properties", "Properties"),
        ("/importer", "Importer"),
        ("/integrations/api-tokens", "API Tokens"),
        ("/integrations", "Integrations"),
        ("/session/login", "Login"),
    ];
    FEATURES
        .iter()
        .find(|(pattern, _)| url.contains(pattern))
        .map_or("Other", |(_, feature)| feature)
}

fn field(name: &str, kind: &str) -> Value {
    json!({"name": name, "type": kind, "mode": "NULLABLE"})
}

fn cell(value: impl ToString) -> Value {
    json!({"v": value.to_string()})
}

/// The columns the GA4 queries derive from one row, computed once when the stand-in
/// starts rather than per query (a debug build would take seconds per scan otherwise).
#[derive(Debug)]
struct Derived {
    /// `event_date` as a number, for the `_TABLE_SUFFIX` range.
    day: u32,
    /// `REGEXP_EXTRACT(...)` over page_location.
    client: Option<String>,
    /// The features query's CASE; `None` without a page_location.
    feature: Option<&'static str>,
    bytes: u64,
}

impl Derived {
    fn of(event: &Ga4Event) -> Derived {
        let page = event.page_location();
        Derived {
            day: day_number(&event.event_date),
            client: page.and_then(client_of_url),
            feature: page.map(feature_of_url),
            bytes: event.bytes(),
        }
    }
}

/// `YYYYMMDD` as a number; anything else sorts before every day.
fn day_number(text: &str) -> u32 {
    if text.len() == 8 {
        text.parse().unwrap_or(0)
    } else {
        0
    }
}

type Scanned<'a> = [(&'a Ga4Event, &'a Derived)];

/// The rows whose client passes the `client = @x` filter.
fn scoped<'a>(rows: &Scanned<'a>, window: &Window) -> Vec<(&'a Ga4Event, &'a Derived)> {
    rows.iter()
        .filter(|(_, d)| window.client.is_none() || d.client == window.client)
        .copied()
        .collect()
}

fn summary(events: &Scanned<'_>, window: &Window) -> Vec<Value> {
    let rows = scoped(events, window);
    let users: HashSet<&str> = rows
        .iter()
        .map(|(e, _)| e.user_pseudo_id.as_str())
        .collect();
    let clients: HashSet<&str> = rows
        .iter()
        .filter_map(|(_, d)| d.client.as_deref())
        .collect();
    let views = rows
        .iter()
        .filter(|(e, _)| e.event_name == "page_view")
        .count();
    let row = json!({"f": [cell(users.len()), cell(rows.len()), cell(views), cell(clients.len())]});
    vec![row]
}

fn daily(events: &Scanned<'_>, window: &Window) -> Vec<Value> {
    let mut days: BTreeMap<&str, (HashSet<&str>, usize)> = BTreeMap::new();
    for (event, _) in scoped(events, window) {
        let day = days.entry(event.event_date.as_str()).or_default();
        day.0.insert(event.user_pseudo_id.as_str());
        day.1 += 1;
    }
    days.into_iter()
        .map(|(day, (users, count))| json!({"f": [cell(day), cell(users.len()), cell(count)]}))
        .collect()
}

fn features(events: &Scanned<'_>, window: &Window) -> Vec<Value> {
    let views: Vec<(&Ga4Event, &Derived)> = events
        .iter()
        .filter(|(e, d)| e.event_name == "page_view" && d.feature.is_some())
        .copied()
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, derived) in scoped(&views, window) {
        match derived.feature {
            Some("Other") | None => {}
            Some(feature) => *counts.entry(feature).or_default() += 1,
        }
    }
    let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    counts
        .into_iter()
        .map(|(feature, views)| json!({"f": [cell(feature), cell(views)]}))
        .collect()
}

fn clients(events: &Scanned<'_>, window: &Window) -> Vec<Value> {
    let mut per_client: HashMap<&str, (usize, HashSet<&str>, usize)> = HashMap::new();
    for (event, derived) in scoped(events, window) {
        let Some(client) = derived.client.as_deref() else {
            continue;
        };
        let entry = per_client.entry(client).or_default();
        entry.0 += 1;
        entry.1.insert(event.user_pseudo_id.as_str());
        entry.2 += usize::from(event.event_name == "page_view");
    }
    let mut list: Vec<(&str, usize, usize, usize)> = per_client
        .into_iter()
        .map(|(client, (events, users, views))| (client, events, users.len(), views))
        .collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    list.truncate(20);
    list.into_iter()
        .map(|(client, events, users, views)| {
            json!({"f": [cell(client), cell(events), cell(users), cell(views)]})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_follow_the_regular_expression() {
        assert_eq!(
            client_of_url("https://acme.8020rei.com/home").as_deref(),
            Some("acme")
        );
        assert_eq!(
            client_of_url("https://acme.8020rei.com").as_deref(),
            Some("acme")
        );
        assert_eq!(
            client_of_url("https://acme.8020rei.com:443/x").as_deref(),
            Some("acme")
        );
        assert_eq!(client_of_url("https://a.b.8020rei.com/"), None);
        assert_eq!(client_of_url("https://8020rei.com/"), None);
        assert_eq!(client_of_url("https://acme.8020rei.community/"), None);
        assert_eq!(client_of_url("https://x/acme.8020rei.com/"), None);
    }

    #[test]
    fn parameters_named_in_sql_are_found() {
        let sql = "WHERE _TABLE_SUFFIX BETWEEN @p1 AND @p2 AND client = @p3 AND x = 'a@b'";
        let names: Vec<String> = referenced_parameters(sql)
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(names, vec!["p1", "p2", "p3"]);
        assert_eq!(parameter_after(sql, "client = @").as_deref(), Some("p3"));
    }
}
