//! A local stand-in for Google BigQuery's REST v2 API, speaking the wire format recorded in
//! `shared/reference/wire-contracts.md`, so the hub's `bigquery` source can be driven through
//! the real `gcp-bigquery-client` in tests:
//!
//! - `POST /bigquery/v2/projects/{project}/queries` (jobs.query) answers the first page, or
//!   `jobComplete: false` while a job is still "running", or prices a dry run;
//! - `GET /bigquery/v2/projects/{project}/queries/{jobId}` (jobs.getQueryResults) polls and
//!   pages with `pageToken`, `maxResults` rows at a time;
//! - every scalar cell is a JSON string, NULL is `{"v": null}`, RECORD `{"v": {"f": [...]}}`,
//!   REPEATED `{"v": [{"v": ...}]}`;
//! - errors are HTTP 4xx/5xx with `error.code`, `error.message`, `error.status` and
//!   `error.errors[]`.
//!
//! It is as strict as the service where the hub could get things wrong: legacy SQL, a
//! parameter the SQL names but the request lacks, an untyped or mistyped parameter, a scan
//! above `maximumBytesBilled`, an unknown job or page token are all errors. Every request is
//! recorded for the test to inspect.
//!
//! It answers from its own data. [`Data::Export`] is a GA4 export (daily and intraday tables
//! with nested `event_params`) over which every query is *executed*: the SQL worker
//! ([`crate::bigquery_sql`]) translates the GoogleSQL with sqlglot and runs it on DuckDB
//! with the typed parameters bound as values, so a query sqlglot or DuckDB rejects is a
//! 400 `invalidQuery`, and a table that does not exist a 404 `notFound`. The bytes a query
//! scans are those of the tables its `_TABLE_SUFFIX` conditions select (the worker names
//! them, [`Ga4Export::bytes_of`] prices them). [`Data::Table`] serves one fixed result to
//! any query, for exercising cell types.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use serde_json::{json, Value};

use crate::bigquery_sql::SqlWorker;
use crate::ga4_export::Ga4Export;

/// What the stand-in answers queries from.
#[derive(Debug, Clone)]
pub enum Data {
    /// A GA4 export; queries are executed over it (see the module documentation).
    Export(Arc<Ga4Export>),
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

/// A query's result: the schema and the encoded rows, and the bytes it scanned.
#[derive(Debug, Clone)]
struct Executed {
    schema: Value,
    rows: Vec<Value>,
    bytes: u64,
}

#[derive(Debug)]
struct Job {
    /// The jobs.query request, run when the job completes: like BigQuery, the stand-in
    /// validates and prices a query when it arrives and runs it afterwards.
    request: Value,
    /// Schema, rows and bytes once it ran; before, the dry run's (no rows).
    result: Executed,
    ran: bool,
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
    /// The worker executing queries over [`Data::Export`]; one query at a time.
    worker: Option<Mutex<SqlWorker>>,
    /// What `CURRENT_DATE()` is; today (UTC) unless a test fixes it.
    today: Mutex<Option<NaiveDate>>,
    // A std Mutex: handlers hold it only to read or update a few fields, never across an
    // await.
    inner: Mutex<Inner>,
}

impl StandinState {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn today(&self) -> NaiveDate {
        let fixed = *self.today.lock().unwrap_or_else(|p| p.into_inner());
        fixed.unwrap_or_else(|| Utc::now().date_naive())
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
    /// Serves `data` as project `project`, dataset `dataset`; an export is loaded into a
    /// new SQL worker first.
    pub async fn start(project: &str, dataset: &str, data: Data) -> anyhow::Result<Self> {
        let worker = match &data {
            Data::Export(export) => {
                let export = export.clone();
                let worker = tokio::task::spawn_blocking(move || SqlWorker::start(&export));
                Some(Mutex::new(worker.await??))
            }
            Data::Table { .. } => None,
        };
        let state = Arc::new(StandinState {
            project: project.to_owned(),
            dataset: dataset.to_owned(),
            data,
            worker,
            today: Mutex::new(None),
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

    /// Fixes what `CURRENT_DATE()` is, so a test's "today" and the stand-in's agree.
    pub fn set_today(&self, today: NaiveDate) {
        *self.state.today.lock().unwrap_or_else(|p| p.into_inner()) = Some(today);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.inner().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state.inner().requests.clear();
    }

    /// What reading `tables` costs in the stand-in's model: what it reports as
    /// `totalBytesProcessed` for a query that reads them.
    pub fn bytes_of<S: AsRef<str>>(&self, tables: &[S]) -> u64 {
        match &self.state.data {
            Data::Export(export) => export.bytes_of(tables),
            Data::Table { bytes, .. } => *bytes,
        }
    }
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

/// The injected failure for this jobs.query, if [`Behaviour::fail`] applies to it.
fn injected_failure(state: &StandinState, request: &Value) -> Option<Failure> {
    let label = request["labels"]["metrics_hub_dataset"].as_str();
    let mut inner = state.inner();
    let behaviour = inner.behaviour.clone();
    let failure = behaviour.fail?;
    let applies = behaviour.fail_dataset.is_none() || behaviour.fail_dataset.as_deref() == label;
    let exhausted = behaviour.fail_times > 0 && inner.failures_served >= behaviour.fail_times;
    if applies && !exhausted {
        inner.failures_served += 1;
        return Some(failure);
    }
    None
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
    if let Some(failure) = injected_failure(&state, &request) {
        return envelope(&failure);
    }
    let location = request["location"].as_str().unwrap_or("US").to_owned();
    let result = match execute_blocking(&state, &request, true).await {
        Ok(result) => result,
        Err(failure) => return envelope(&failure),
    };
    if request["dryRun"] == json!(true) {
        // A dry run validates and prices the query; it starts no job.
        return Json(json!({
            "kind": "bigquery#queryResponse",
            "jobReference": {"projectId": state.project, "location": location},
            "schema": result.schema,
            "totalBytesProcessed": result.bytes.to_string(),
            "jobComplete": false,
            "cacheHit": false,
        }))
        .into_response();
    }
    if let Some(limit) = request["maximumBytesBilled"]
        .as_str()
        .and_then(|l| l.parse::<u64>().ok())
    {
        if result.bytes > limit {
            return envelope(&Failure::new(
                400,
                "INVALID_ARGUMENT",
                "bytesBilledLimitExceeded",
                &format!(
                    "Query exceeded limit for bytes billed: {limit}. {} or higher required.",
                    result.bytes
                ),
            ));
        }
    }
    let page_size = request["maxResults"].as_u64().map(|n| n as usize);
    let polls = state.inner().behaviour.pending_polls;
    let mut job = Job {
        request,
        result,
        ran: false,
        location,
        polls_left: polls,
        tokens: HashMap::new(),
    };
    if polls == 0 {
        if let Err(failure) = run_job(&state, &mut job).await {
            return envelope(&failure);
        }
    }
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

/// [`execute`] on a blocking thread: the worker answers synchronously.
async fn execute_blocking(
    state: &Arc<StandinState>,
    request: &Value,
    dry_run: bool,
) -> Result<Executed, Failure> {
    let (state, request) = (state.clone(), request.clone());
    tokio::task::spawn_blocking(move || execute(&state, &request, dry_run))
        .await
        .unwrap_or_else(|_| {
            Err(Failure::new(
                500,
                "INTERNAL",
                "internalError",
                "the stand-in failed",
            ))
        })
}

/// Runs a job's query once, keeping its result.
async fn run_job(state: &Arc<StandinState>, job: &mut Job) -> Result<(), Failure> {
    if !job.ran {
        job.result = execute_blocking(state, &job.request, false).await?;
        job.ran = true;
    }
    Ok(())
}

/// Validates a jobs.query request as BigQuery would, then runs it (or, for a dry run,
/// only plans it) over the stand-in's data.
fn execute(state: &StandinState, request: &Value, dry_run: bool) -> Result<Executed, Failure> {
    let location = request["location"].as_str().unwrap_or("US");
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
        if !params.iter().any(|p| p["name"] == name.as_str()) {
            return Err(invalid_query(format!(
                "Query parameter '{name}' not found at [offset {at}]"
            )));
        }
    }
    let (Data::Export(export), Some(worker)) = (&state.data, &state.worker) else {
        let Data::Table {
            schema,
            rows,
            bytes,
        } = &state.data
        else {
            unreachable!("an export always has its worker")
        };
        let rows = if dry_run { Vec::new() } else { rows.clone() };
        return Ok(Executed {
            schema: schema.clone(),
            rows,
            bytes: *bytes,
        });
    };
    let call = json!({
        "op": "run", "sql": sql, "params": params, "dry_run": dry_run,
        "default_dataset": request.get("defaultDataset"),
        "project": state.project, "dataset": state.dataset, "location": location,
        "today": state.today().format("%Y-%m-%d").to_string(),
    });
    let answer = worker
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .call(&call)
        .map_err(|err| Failure::new(500, "INTERNAL", "internalError", &format!("{err:#}")))?;
    if answer["ok"] != true {
        let text = |key: &str| answer[key].as_str().unwrap_or_default().to_owned();
        let status = answer["status"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok());
        return Err(Failure::new(
            status.unwrap_or(500),
            &text("code_name"),
            &text("reason"),
            &text("message"),
        ));
    }
    let tables: Vec<String> = serde_json::from_value(answer["tables"].clone()).unwrap_or_default();
    Ok(Executed {
        schema: answer["schema"].clone(),
        rows: answer["rows"].as_array().cloned().unwrap_or_default(),
        bytes: export.bytes_of(&tables),
    })
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
        Some(job) if job.polls_left == 0 && !job.ran => Some(job.request.clone()),
        _ => None,
    };
    let ran = match due {
        Some(request) => match execute_blocking(&state, &request, false).await {
            Ok(result) => Some(result),
            Err(failure) => return envelope(&failure),
        },
        None => None,
    };
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
    if let Some(result) = ran {
        if !job.ran {
            (job.result, job.ran) = (result, true);
        }
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
    let rows = &job.result.rows;
    let end = page_size.map_or(rows.len(), |size| (offset + size.max(1)).min(rows.len()));
    let mut answer = json!({
        "kind": format!("bigquery#{kind}"),
        "jobReference": reference,
        "jobComplete": true,
        "totalRows": rows.len().to_string(),
        "schema": job.result.schema,
        "totalBytesProcessed": job.result.bytes.to_string(),
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

/// Scalar parameter types BigQuery accepts, and whether a value is valid for each.
fn valid_parameter(kind: &str, value: &str) -> Option<bool> {
    let valid = match kind {
        "STRING" => true,
        "INT64" | "INTEGER" => value.parse::<i64>().is_ok(),
        "FLOAT64" | "FLOAT" => {
            value.parse::<f64>().is_ok() || ["NaN", "Infinity", "-Infinity"].contains(&value)
        }
        "BOOL" | "BOOLEAN" => {
            value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
        }
        "DATE" => NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok(),
        "NUMERIC" | "BIGNUMERIC" | "TIMESTAMP" | "DATETIME" => true,
        _ => return None,
    };
    Some(valid)
}

/// The typed named parameters of a request as `{name, type, value}`, each checked: a
/// parameter without a name or a known scalar type, or with a value its type cannot hold,
/// is refused as BigQuery refuses it.
fn parameters(request: &Value) -> Result<Vec<Value>, Failure> {
    let Some(list) = request["queryParameters"].as_array() else {
        return Ok(Vec::new());
    };
    if !list.is_empty() && request["parameterMode"] != json!("NAMED") {
        return Err(invalid_query(
            "Positional parameters are not supported here: set parameterMode NAMED",
        ));
    }
    let mut named = Vec::new();
    for parameter in list {
        let name = parameter["name"].as_str().unwrap_or_default();
        let kind = parameter["parameterType"]["type"]
            .as_str()
            .unwrap_or_default();
        let value = parameter["parameterValue"]["value"].as_str();
        if name.is_empty() || kind.is_empty() {
            return Err(invalid_query("Query parameters need a name and a type"));
        }
        match value.map(|v| valid_parameter(kind, v)) {
            Some(None) => {
                return Err(invalid_query(format!(
                    "Unsupported query parameter type {kind} for parameter {name}"
                )))
            }
            Some(Some(false)) => {
                return Err(invalid_query(format!(
                    "Invalid value for query parameter {name} of type {kind}"
                )))
            }
            _ => {}
        }
        named.push(json!({"name": name, "type": kind, "value": value}));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_named_in_sql_are_found() {
        let sql = "WHERE _TABLE_SUFFIX BETWEEN @p1 AND @p2 AND client = @p3 AND x = 'a@b'";
        let names: Vec<String> = referenced_parameters(sql)
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(names, vec!["p1", "p2", "p3"]);
    }

    #[test]
    fn parameters_must_be_typed_and_hold_their_type() {
        let request = |kind: &str, value: &str| {
            json!({"parameterMode": "NAMED", "queryParameters": [
                {"name": "p1", "parameterType": {"type": kind}, "parameterValue": {"value": value}}
            ]})
        };
        assert!(parameters(&request("STRING", "20260101")).is_ok());
        assert!(parameters(&request("DATE", "2026-01-01")).is_ok());
        assert!(parameters(&request("INT64", "30")).is_ok());
        for (kind, value) in [
            ("INT64", "3.5"),
            ("DATE", "20260101"),
            ("BOOL", "yes"),
            ("TEXT", "x"),
            ("", "x"),
        ] {
            let err = parameters(&request(kind, value)).unwrap_err();
            assert_eq!(err.reason, "invalidQuery", "{kind} {value}");
        }
    }
}
