//! `kind: bigquery`: Google BigQuery through `gcp-bigquery-client` and the REST v2 API.
//!
//! Each dataset's template is rendered into standard SQL whose request values are named
//! query parameters (`@p1`, ...), sent typed, never pasted into the text. A query goes to
//! `jobs.query`; while the job is not complete its results are polled with
//! `jobs.getQueryResults`, then the pages are followed by `pageToken` until the last one,
//! all within the source's deadline. Cells arrive as strings and are decoded by the result
//! schema (numbers, booleans, timestamps, nested RECORD and REPEATED values) into records
//! for [`map_rows`]. BigQuery's error envelope becomes an auth, rate-limit or upstream
//! [`SourceError`] whose message holds no secret.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::try_join_all;
use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::client_builder::ClientBuilder;
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::model::dataset_reference::DatasetReference;
use gcp_bigquery_client::model::get_query_results_parameters::GetQueryResultsParameters;
use gcp_bigquery_client::model::query_parameter::QueryParameter;
use gcp_bigquery_client::model::query_parameter_type::QueryParameterType;
use gcp_bigquery_client::model::query_parameter_value::QueryParameterValue;
use gcp_bigquery_client::model::query_request::QueryRequest;
use gcp_bigquery_client::model::query_response::QueryResponse;
use gcp_bigquery_client::Client;
use rand::Rng;
use tokio::sync::RwLock;
use tokio::time::Instant;

use super::config::{BigquerySpec, Credentials};
use super::decode::decode_rows;
use crate::kinds::SourceSpec;
use crate::kinds::{DataSource, SourceError};
use crate::mapping::{map_rows, FieldMapping};
use crate::model::{Dataset, QueryParams, Record, SourceData};
use crate::secret::redact;
use crate::template::{BindValue, RenderedQuery};

/// Attempts of one call when BigQuery answers with a retryable error.
const MAX_ATTEMPTS: u32 = 4;
/// First backoff; doubled per attempt, plus jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest server-side wait asked for in one call (`timeoutMs`).
const MAX_SERVER_WAIT: Duration = Duration::from_secs(10);
/// The token sent when a test stand-in needs none (`credentials: {type: none}`).
const NO_CREDENTIALS_TOKEN: &str = "metrics-hub-no-credentials";

/// A `bigquery` source: its declaration and, once built, its client.
pub struct BigquerySource {
    id: String,
    pub(super) spec: BigquerySpec,
    mappings: BTreeMap<Dataset, BTreeMap<String, FieldMapping>>,
    pub(super) timeout: Duration,
    secrets: Arc<Vec<String>>,
    client: RwLock<Option<Client>>,
}

/// A fixed token for a local stand-in; the config only allows it with a loopback base URL.
#[derive(Clone)]
struct NoCredentials;

#[async_trait]
impl Authenticator for NoCredentials {
    async fn access_token(&self) -> Result<String, BQError> {
        Ok(NO_CREDENTIALS_TOKEN.to_owned())
    }
}

/// A failed call, classified: whether trying again may help.
struct Failure {
    error: SourceError,
    retryable: bool,
}

impl BigquerySource {
    pub fn new(source: &SourceSpec, spec: BigquerySpec) -> BigquerySource {
        BigquerySource {
            id: source.id.clone(),
            spec,
            mappings: source.mappings.clone(),
            timeout: source.timeout,
            secrets: source.secrets.clone(),
            client: RwLock::new(None),
        }
    }

    /// Messages from the client or BigQuery can quote configuration; strip every secret.
    fn clean(&self, text: impl std::fmt::Display) -> String {
        redact(&text.to_string(), &self.secrets)
    }

    async fn connect(&self) -> Result<Client, SourceError> {
        let http = reqwest::Client::builder()
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .build()
            .map_err(|e| SourceError::Connect(self.clean(e)))?;
        let mut builder = ClientBuilder::new();
        builder.with_client(http);
        if let Some(url) = &self.spec.base_url {
            builder.with_v2_base_url(url.clone());
        }
        // The full bigquery scope, not bigquery.readonly: Google does not list the read-only
        // scope for every jobs method. The service account's IAM roles (BigQuery Job User
        // and Data Viewer) are what keep the hub read-only.
        let built = match &self.spec.credentials {
            Credentials::InlineJson(json) => {
                let key = gcp_bigquery_client::yup_oauth2::parse_service_account_key(json.expose())
                    .map_err(|_| {
                        SourceError::Auth(
                            "the credentials JSON is not a service-account key".to_owned(),
                        )
                    })?;
                builder.build_from_service_account_key(key, false).await
            }
            Credentials::KeyFile(path) => {
                let key = gcp_bigquery_client::yup_oauth2::read_service_account_key(path)
                    .await
                    .map_err(|e| {
                        SourceError::Auth(self.clean(format!(
                            "cannot read the service-account key file {}: {e}",
                            path.display()
                        )))
                    })?;
                builder.build_from_service_account_key(key, false).await
            }
            Credentials::ApplicationDefault => {
                builder.build_from_application_default_credentials().await
            }
            Credentials::None => {
                builder
                    .build_from_authenticator(Arc::new(NoCredentials))
                    .await
            }
        };
        built.map_err(|e| self.classify(e).error)
    }

    /// The client, building it first when that has not happened yet.
    pub(super) async fn client(&self) -> Result<Client, SourceError> {
        if let Some(client) = self.client.read().await.as_ref() {
            return Ok(client.clone());
        }
        let mut slot = self.client.write().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let client = self.connect().await?;
        *slot = Some(client.clone());
        Ok(client)
    }

    pub(super) fn render(
        &self,
        dataset: Dataset,
        params: &QueryParams,
    ) -> Result<RenderedQuery, SourceError> {
        self.spec
            .templates
            .render(dataset.as_str(), params)
            .map_err(|e| SourceError::Template {
                dataset,
                message: e.to_string(),
            })
    }

    /// The jobs.query request for rendered SQL: standard SQL, typed named parameters, the
    /// cost guard, the default dataset, and labels that attribute the job in billing.
    pub(super) fn request(
        &self,
        dataset: Option<Dataset>,
        query: RenderedQuery,
        deadline: Instant,
        dry_run: bool,
    ) -> QueryRequest {
        let mut request = QueryRequest::new(query.sql);
        request.use_legacy_sql = false;
        request.parameter_mode = Some("NAMED".to_owned());
        request.query_parameters = Some(query_parameters(&query.binds));
        request.maximum_bytes_billed = Some(self.spec.maximum_bytes_billed.to_string());
        request.default_dataset = Some(DatasetReference {
            dataset_id: self.spec.dataset.clone(),
            project_id: self.spec.project.clone(),
        });
        request.location = self.spec.location.clone();
        request.max_results = Some(i32::try_from(self.spec.page_size).unwrap_or(i32::MAX));
        request.timeout_ms = Some(server_wait(deadline));
        // Retries of jobs.query with the same request id do not start a second job.
        request.request_id = Some(request_id());
        let mut labels = HashMap::from([("metrics_hub_source".to_owned(), self.id.clone())]);
        if let Some(dataset) = dataset {
            labels.insert(
                "metrics_hub_dataset".to_owned(),
                dataset.as_str().to_owned(),
            );
        }
        request.labels = Some(labels);
        if dry_run {
            request.dry_run = Some(true);
        }
        request
    }

    /// Classifies a client error. BigQuery's envelope carries an HTTP code and reasons;
    /// the text of both goes to the log only (see [`SourceError::public_message`]).
    fn classify(&self, err: BQError) -> Failure {
        let failure = |error, retryable| Failure { error, retryable };
        match err {
            BQError::ResponseError { error } => {
                let error = error.error;
                let reasons: Vec<&str> = error
                    .errors
                    .iter()
                    .filter_map(|e| e.get("reason").map(String::as_str))
                    .collect();
                let has = |reason: &str| reasons.contains(&reason);
                let status = u16::try_from(error.code).unwrap_or(500);
                let message = self.clean(format!(
                    "{}: {}",
                    reasons.first().copied().unwrap_or(error.status.as_str()),
                    error.message
                ));
                if has("rateLimitExceeded") || status == 429 {
                    failure(SourceError::RateLimited { retry_after: None }, true)
                } else if has("quotaExceeded") {
                    failure(SourceError::RateLimited { retry_after: None }, false)
                } else if status == 401 || has("authError") || has("accessDenied") {
                    failure(SourceError::Auth(message), false)
                } else if status >= 500 || has("backendError") || has("internalError") {
                    failure(SourceError::Upstream { status, message }, true)
                } else {
                    failure(SourceError::Upstream { status, message }, false)
                }
            }
            BQError::RequestError(err) if err.is_decode() => failure(
                SourceError::BadResponse(
                    "BigQuery's answer was not the JSON of the REST v2 API".to_owned(),
                ),
                false,
            ),
            BQError::RequestError(err) if err.is_timeout() => {
                failure(SourceError::Timeout(self.timeout), false)
            }
            BQError::RequestError(err) => {
                let retryable =
                    err.is_connect() || err.status().is_some_and(|s| s.is_server_error());
                failure(SourceError::Unreachable(self.clean(err)), retryable)
            }
            BQError::SerializationError(_) => failure(
                SourceError::BadResponse(
                    "BigQuery's answer did not have the expected shape".to_owned(),
                ),
                false,
            ),
            err @ (BQError::AuthError(_)
            | BQError::YupAuthError(_)
            | BQError::NoToken
            | BQError::InvalidServiceAccountKey(_)
            | BQError::InvalidServiceAccountAuthenticator(_)
            | BQError::InvalidApplicationDefaultCredentialsAuthenticator(_)
            | BQError::InvalidAuthorizedUserAuthenticator(_)
            | BQError::InvalidInstalledFlowAuthenticator(_)) => {
                failure(SourceError::Auth(self.clean(err)), false)
            }
            err => failure(SourceError::Connect(self.clean(err)), false),
        }
    }

    /// Runs one call, retrying retryable failures with backoff while the deadline allows.
    pub(super) async fn call<T, F, Fut>(
        &self,
        deadline: Instant,
        mut call: F,
    ) -> Result<T, SourceError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, BQError>>,
    {
        let mut attempt = 1;
        loop {
            let failure = match call().await {
                Ok(value) => return Ok(value),
                Err(err) => self.classify(err),
            };
            let jitter = Duration::from_millis(rand::thread_rng().gen_range(0..100));
            let wait = FIRST_BACKOFF * 2u32.pow(attempt - 1) + jitter;
            if !failure.retryable || attempt >= MAX_ATTEMPTS || Instant::now() + wait >= deadline {
                return Err(failure.error);
            }
            tracing::debug!(source = %self.id, attempt, "retrying BigQuery: {}", failure.error);
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Runs one dataset's query and returns its mapped records.
    async fn run(
        &self,
        client: &Client,
        dataset: Dataset,
        params: &QueryParams,
        deadline: Instant,
    ) -> Result<Vec<Record>, SourceError> {
        let query = self.render(dataset, params)?;
        let request = self.request(Some(dataset), query, deadline, false);
        let project = self.spec.project.as_str();
        let mut response = self
            .call(deadline, || client.job().query(project, request.clone()))
            .await?;
        let job = response.job_reference.clone().unwrap_or_default();
        let location = job.location.clone().or_else(|| self.spec.location.clone());
        let results = |page_token: Option<String>| {
            let job_id = job.job_id.clone();
            let location = location.clone();
            async move {
                let Some(job_id) = job_id else {
                    return Err(SourceError::BadResponse(format!(
                        "`{dataset}`: BigQuery returned no jobReference.jobId to fetch results with"
                    )));
                };
                let parameters = GetQueryResultsParameters {
                    location,
                    max_results: Some(i32::try_from(self.spec.page_size).unwrap_or(i32::MAX)),
                    page_token,
                    timeout_ms: Some(server_wait(deadline)),
                    ..GetQueryResultsParameters::default()
                };
                let page = self
                    .call(deadline, || {
                        client
                            .job()
                            .get_query_results(project, &job_id, parameters.clone())
                    })
                    .await?;
                Ok(QueryResponse::from(page))
            }
        };

        while !response.job_complete.unwrap_or(false) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(SourceError::Timeout(self.timeout));
            }
            tokio::time::sleep(self.spec.poll_interval.min(remaining)).await;
            response = results(None).await?;
        }

        let fields = response
            .schema
            .as_ref()
            .and_then(|schema| schema.fields.clone())
            .ok_or_else(|| {
                SourceError::BadResponse(format!(
                    "`{dataset}`: the completed job has no result schema"
                ))
            })?;
        let total_rows: Option<usize> = response.total_rows.as_deref().and_then(|t| t.parse().ok());
        let mut rows = decode_rows(dataset, &fields, response.rows.take().unwrap_or_default())?;
        let mut seen = HashSet::new();
        while let Some(token) = response.page_token.take() {
            if !seen.insert(token.clone()) {
                return Err(SourceError::BadResponse(format!(
                    "`{dataset}`: BigQuery repeated a pageToken; paging stopped"
                )));
            }
            if Instant::now() >= deadline {
                return Err(SourceError::Timeout(self.timeout));
            }
            response = results(Some(token)).await?;
            if !response.job_complete.unwrap_or(false) {
                return Err(SourceError::BadResponse(format!(
                    "`{dataset}`: a result page of a completed job said jobComplete false"
                )));
            }
            rows.extend(decode_rows(
                dataset,
                &fields,
                response.rows.take().unwrap_or_default(),
            )?);
        }
        if let Some(total) = total_rows {
            if rows.len() != total {
                return Err(SourceError::BadResponse(format!(
                    "`{dataset}`: BigQuery reported {total} rows but its pages held {}",
                    rows.len()
                )));
            }
        }
        let empty = BTreeMap::new();
        Ok(map_rows(
            dataset,
            self.mappings.get(&dataset).unwrap_or(&empty),
            rows,
        )?)
    }
}

impl BigquerySource {
    /// Sends `request` as a dry run: the bytes the query would scan.
    pub(super) async fn dry_run_bytes(
        &self,
        client: &Client,
        request: QueryRequest,
        deadline: Instant,
    ) -> Result<u64, SourceError> {
        let project = self.spec.project.as_str();
        let response = self
            .call(deadline, || client.job().query(project, request.clone()))
            .await?;
        response
            .total_bytes_processed
            .as_deref()
            .and_then(|bytes| bytes.parse().ok())
            .ok_or_else(|| {
                SourceError::BadResponse("the dry run reported no totalBytesProcessed".to_owned())
            })
    }
}

#[async_trait]
impl DataSource for BigquerySource {
    async fn initialize(&self) -> Result<(), SourceError> {
        self.client().await.map(drop)
    }

    async fn fetch_metrics(&self, params: &QueryParams) -> Result<SourceData, SourceError> {
        self.fetch_datasets(params, &self.spec.datasets).await
    }

    /// Only the queries of `datasets` run, so only they are billed.
    async fn fetch_datasets(
        &self,
        params: &QueryParams,
        datasets: &BTreeSet<Dataset>,
    ) -> Result<SourceData, SourceError> {
        let deadline = Instant::now() + self.timeout;
        let client = self.client().await?;
        let wanted = self.spec.datasets.intersection(datasets);
        let results = try_join_all(wanted.map(|&dataset| {
            let client = &client;
            async move {
                let rows = self.run(client, dataset, params, deadline).await?;
                Ok::<_, SourceError>((dataset, rows))
            }
        }))
        .await?;
        let mut data = SourceData::default();
        for (dataset, rows) in results {
            data.set(dataset, rows);
        }
        Ok(data)
    }

    /// A dry run of `SELECT 1`: checks credentials and project access, scans and bills
    /// nothing.
    async fn health_check(&self) -> Result<(), SourceError> {
        let deadline = Instant::now() + self.timeout;
        let client = self.client().await?;
        let probe = RenderedQuery {
            sql: "SELECT 1".to_owned(),
            binds: Vec::new(),
        };
        let request = self.request(None, probe, deadline, true);
        self.dry_run_bytes(&client, request, deadline)
            .await
            .map(drop)
    }

    async fn cleanup(&self) {
        self.client.write().await.take();
    }
}

/// `timeoutMs` for one call: how long BigQuery may hold it waiting for the job, bounded
/// by what is left of the deadline.
fn server_wait(deadline: Instant) -> i32 {
    let left = deadline.saturating_duration_since(Instant::now());
    i32::try_from(left.min(MAX_SERVER_WAIT).as_millis().max(1)).unwrap_or(i32::MAX)
}

/// A random UUID-shaped id for `requestId`.
fn request_id() -> String {
    let n: u128 = rand::random();
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The recorded bind values as BigQuery named parameters `p1`, `p2`, ..., each typed.
pub fn query_parameters(binds: &[BindValue]) -> Vec<QueryParameter> {
    binds
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let (kind, text) = match value {
                BindValue::Text(text) => ("STRING", text.clone()),
                BindValue::Integer(number) => ("INT64", number.to_string()),
                BindValue::Float(number) => ("FLOAT64", float_text(*number)),
                BindValue::Bool(flag) => ("BOOL", flag.to_string()),
                BindValue::Date(date) => ("DATE", date.format("%Y-%m-%d").to_string()),
            };
            QueryParameter {
                name: Some(format!("p{}", index + 1)),
                parameter_type: Some(QueryParameterType {
                    r#type: kind.to_owned(),
                    ..QueryParameterType::default()
                }),
                parameter_value: Some(QueryParameterValue {
                    value: Some(text),
                    ..QueryParameterValue::default()
                }),
            }
        })
        .collect()
}

/// FLOAT64 parameter text as BigQuery reads it (`NaN`, `Infinity`, `-Infinity` included).
fn float_text(number: f64) -> String {
    if number.is_nan() {
        "NaN".to_owned()
    } else if number.is_infinite() {
        if number > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        }
        .to_owned()
    } else {
        number.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use serde_json::json;

    #[test]
    fn binds_become_typed_named_parameters() {
        let params = query_parameters(&[
            BindValue::Text("20260101".into()),
            BindValue::Integer(30),
            BindValue::Float(0.25),
            BindValue::Bool(true),
            BindValue::Date(NaiveDate::from_ymd_opt(2026, 1, 31).unwrap()),
        ]);
        assert_eq!(
            serde_json::to_value(params).unwrap(),
            json!([
                {"name": "p1", "parameterType": {"type": "STRING"}, "parameterValue": {"value": "20260101"}},
                {"name": "p2", "parameterType": {"type": "INT64"}, "parameterValue": {"value": "30"}},
                {"name": "p3", "parameterType": {"type": "FLOAT64"}, "parameterValue": {"value": "0.25"}},
                {"name": "p4", "parameterType": {"type": "BOOL"}, "parameterValue": {"value": "true"}},
                {"name": "p5", "parameterType": {"type": "DATE"}, "parameterValue": {"value": "2026-01-31"}}
            ])
        );
        assert_eq!(float_text(f64::INFINITY), "Infinity");
    }
}
