//! `kind: rest`: any JSON API declared in YAML. Per dataset, the request templates are
//! rendered for the request, pages are fetched one after another (each with retries inside
//! the source deadline), the records at the declared path are either kept as rows or folded
//! into the declared aggregation as each page arrives (after the query's `compute:`,
//! `classify:` and `where:`), and the rows are mapped into the unified model. Datasets
//! whose requests render the same share one listing, fetched once and fed to each; the
//! listings of one fetch run concurrently.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::try_join_all;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, LINK};
use reqwest::StatusCode;
use serde_json::{Map, Value};
use url::Url;

use super::aggregate::Aggregation;
use super::auth::TokenCache;
use super::config::{Auth, RestQuery, RestSpec};
use super::expr::{ExprId, Expressions};
use super::http::{Deadline, Reply, Transport};
use super::json_path::{kind_of, JsonPath};
use super::paging::{Next, PageInfo, PageRequest, Pager, ParamIn};
use super::raw::{KeyLocation, Method};
use super::template::RenderedRequest;
use super::transform::holding;
use crate::kinds::SourceSpec;
use crate::kinds::{DataSource, SourceError};
use crate::mapping::{map_rows, FieldMapping};
use crate::model::{Dataset, QueryParams, Record, SourceData};
use crate::secret::{redact, Secret};

/// Redirects followed within the base URL's origin, at most this many.
const MAX_REDIRECTS: usize = 5;

/// A `rest` source: its declaration, HTTP client and (for OAuth 2.0) token.
pub struct RestSource {
    spec: RestSpec,
    mappings: BTreeMap<Dataset, BTreeMap<String, FieldMapping>>,
    timeout: std::time::Duration,
    /// Environment values and credentials: redacted from every message.
    secrets: Vec<String>,
    transport: Result<Transport, String>,
    token: Option<TokenCache>,
}

/// Rows of one dataset as pages arrive: kept, or folded into an aggregation.
enum Sink<'a> {
    Rows(Vec<Record>),
    Aggregate(Aggregation<'a>),
}

/// One dataset's share of a listing: its query's record transforms and its rows so far.
struct Feed<'a> {
    dataset: Dataset,
    query: &'a RestQuery,
    exprs: &'a Expressions,
    request: &'a minijinja::Value,
    /// The aggregate columns' own `where:`s.
    wheres: Vec<Option<ExprId>>,
    sink: Sink<'a>,
}

impl<'a> Feed<'a> {
    fn new(
        dataset: Dataset,
        query: &'a RestQuery,
        exprs: &'a Expressions,
        request: &'a minijinja::Value,
    ) -> Feed<'a> {
        let sink = match &query.aggregate {
            Some(spec) => Sink::Aggregate(Aggregation::new(spec, dataset)),
            None => Sink::Rows(Vec::new()),
        };
        Feed {
            dataset,
            query,
            exprs,
            request,
            wheres: query
                .aggregate
                .as_ref()
                .map(|a| a.wheres())
                .unwrap_or_default(),
            sink,
        }
    }

    /// Transforms one record and keeps or folds it, unless its `where:` drops it.
    fn take(
        &mut self,
        mut record: Map<String, Value>,
        bad: &impl Fn(String) -> SourceError,
    ) -> Result<(), SourceError> {
        let dataset = self.dataset;
        let failed = |err: String| bad(format!("`{dataset}`: {err}"));
        let transforms = &self.query.transforms;
        if !transforms
            .apply(self.exprs, &mut record, self.request)
            .map_err(failed)?
        {
            return Ok(());
        }
        match &mut self.sink {
            Sink::Rows(rows) => rows.push(record),
            Sink::Aggregate(aggregation) => {
                let (record, counted) =
                    holding(self.exprs, &self.wheres, record, self.request).map_err(failed)?;
                aggregation.add_counted(&Value::Object(record), counted.as_deref())?;
            }
        }
        Ok(())
    }

    /// The rows, and the aggregation's warning.
    fn finish(self) -> (Dataset, Vec<Record>, Vec<String>) {
        match self.sink {
            Sink::Rows(rows) => (self.dataset, rows, Vec::new()),
            Sink::Aggregate(aggregation) => {
                let (rows, warning) = aggregation.finish();
                let dataset = self.dataset;
                let warnings = warning.map(|w| format!("`{dataset}`: {w}"));
                (dataset, rows, warnings.into_iter().collect())
            }
        }
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

impl RestSource {
    pub fn new(source: &SourceSpec, spec: RestSpec) -> RestSource {
        let mut secrets: Vec<String> = source.secrets.iter().cloned().collect();
        secrets.extend(spec.connection.auth.secrets());
        secrets.extend(
            spec.connection
                .headers
                .iter()
                .map(|(_, v)| v.expose().to_owned()),
        );
        // Redirects stay on the base URL's origin: credentials in custom headers (API keys)
        // are not stripped by the client the way Authorization is.
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else if attempt
                .previous()
                .first()
                .is_some_and(|first| !same_origin(first, attempt.url()))
            {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let transport = reqwest::Client::builder()
            .redirect(policy)
            .user_agent(concat!("metrics-hub/", env!("CARGO_PKG_VERSION")))
            .build()
            .map(|client| Transport {
                client,
                retries: spec.connection.retries,
                backoff: spec.connection.retry_backoff,
                request_timeout: spec.connection.request_timeout,
                max_bytes: spec.connection.max_response_bytes,
            })
            .map_err(|err| err.to_string());
        let token = match &spec.connection.auth {
            Auth::OAuth2(config) => Some(TokenCache::new(config.clone())),
            _ => None,
        };
        RestSource {
            spec,
            mappings: source.mappings.clone(),
            timeout: source.timeout,
            secrets,
            transport,
            token,
        }
    }

    fn clean(&self, text: String) -> String {
        redact(&text, &self.secrets)
    }

    fn transport(&self) -> Result<&Transport, SourceError> {
        self.transport
            .as_ref()
            .map_err(|err| SourceError::Connect(format!("cannot set up the HTTP client: {err}")))
    }

    fn base_url(&self) -> Result<&Url, SourceError> {
        self.spec
            .connection
            .base_url
            .as_ref()
            .ok_or_else(|| SourceError::Connect("the source has no base_url".to_owned()))
    }

    /// `base_url` with `path` appended (not resolved: `/v1` in the base stays).
    fn url_for(&self, path: &str) -> Result<Url, SourceError> {
        let mut url = self.base_url()?.clone();
        let joined = format!("{}{path}", url.path().trim_end_matches('/'));
        url.set_path(if joined.is_empty() { "/" } else { &joined });
        Ok(url)
    }

    /// One request with auth, retried by the transport; refreshes an OAuth token once when
    /// the API answers 401. Returns only successful answers.
    async fn call(
        &self,
        method: Method,
        url: &Url,
        headers: &HeaderMap,
        body: Option<&Bytes>,
        deadline: Deadline,
    ) -> Result<Reply, SourceError> {
        let transport = self.transport()?;
        let clean = |text: String| self.clean(text);
        let mut url = url.clone();
        if let Auth::ApiKey {
            location: KeyLocation::Query,
            name,
            value,
        } = &self.spec.connection.auth
        {
            // A next-page URL may carry the key already.
            if !url.query_pairs().any(|(key, _)| key == name.as_str()) {
                url.query_pairs_mut().append_pair(name, value.expose());
            }
        }
        let mut refreshed = false;
        loop {
            let token = match &self.token {
                Some(cache) => Some(cache.token(transport, deadline, &clean).await?),
                None => None,
            };
            let reply = transport
                .send(
                    || self.request(transport, method, &url, headers, body, token.as_ref()),
                    deadline,
                    &clean,
                )
                .await?;
            let status = reply.status;
            let what = format!(
                "{} {}",
                match method {
                    Method::Get => "GET",
                    Method::Post => "POST",
                },
                url.path()
            );
            match status {
                s if s.is_success() => return Ok(reply),
                StatusCode::UNAUTHORIZED if !refreshed && token.is_some() => {
                    if let (Some(cache), Some(used)) = (&self.token, &token) {
                        cache.invalidate(used).await;
                    }
                    refreshed = true;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    let after = if refreshed {
                        " even with a freshly issued token"
                    } else {
                        ""
                    };
                    return Err(SourceError::Auth(self.clean(format!(
                        "{what} answered HTTP {}{after}: {}",
                        status.as_u16(),
                        reply.snippet()
                    ))));
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    return Err(SourceError::RateLimited {
                        retry_after: reply.retry_after,
                    })
                }
                _ => {
                    return Err(SourceError::Upstream {
                        status: status.as_u16(),
                        message: self.clean(format!("{what}: {}", reply.snippet())),
                    })
                }
            }
        }
    }

    fn request(
        &self,
        transport: &Transport,
        method: Method,
        url: &Url,
        headers: &HeaderMap,
        body: Option<&Bytes>,
        token: Option<&Secret>,
    ) -> reqwest::RequestBuilder {
        let method = match method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
        };
        let mut request = transport
            .client
            .request(method, url.clone())
            .headers(headers.clone());
        if let Some(body) = body {
            request = request.body(body.clone());
        }
        match (&self.spec.connection.auth, token) {
            (_, Some(token)) => request.bearer_auth(token.expose()),
            (
                Auth::ApiKey {
                    location: KeyLocation::Header,
                    name,
                    value,
                },
                _,
            ) => match HeaderValue::from_str(value.expose()) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    request.header(name.as_str(), value)
                }
                // Checked at load for control characters; nothing else can fail here.
                Err(_) => request,
            },
            (Auth::Bearer { token }, _) => request.bearer_auth(token.expose()),
            (Auth::Basic { username, password }, _) => {
                request.basic_auth(username, Some(password.expose()))
            }
            _ => request,
        }
    }

    /// The headers every page of a query sends: the connection's, then the query's.
    fn headers(
        &self,
        dataset: Dataset,
        rendered: &[(String, String)],
        json_body: bool,
    ) -> Result<HeaderMap, SourceError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if json_body {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        for (name, value) in &self.spec.connection.headers {
            if let Ok(mut value) = HeaderValue::from_str(value.expose()) {
                value.set_sensitive(true);
                headers.insert(name.clone(), value);
            }
        }
        for (name, value) in rendered {
            let failed = || SourceError::Template {
                dataset,
                message: format!("header `{name}` cannot be sent"),
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| failed())?;
            let value = HeaderValue::from_str(value).map_err(|_| failed())?;
            headers.insert(name, value);
        }
        Ok(headers)
    }

    /// The request of each dataset, rendered for `params`, with datasets whose requests
    /// are the same (method, URL, headers, body, records path and pagination) grouped:
    /// each group is one listing, fetched once and fed to all of them.
    fn listings(
        &self,
        params: &QueryParams,
    ) -> Result<Vec<(Vec<Dataset>, RenderedRequest)>, SourceError> {
        let mut listings: Vec<(Vec<Dataset>, RenderedRequest)> = Vec::new();
        for &dataset in &self.spec.datasets {
            let query = self.query(dataset)?;
            let rendered = self.spec.templates.render(dataset, params).map_err(|err| {
                SourceError::Template {
                    dataset,
                    message: self.clean(err.to_string()),
                }
            })?;
            let same = listings.iter_mut().find(|(datasets, other)| {
                let first = &self.spec.queries[&datasets[0]];
                *other == rendered
                    && first.method == query.method
                    && first.records == query.records
                    && first.paging == query.paging
            });
            match same {
                Some((datasets, _)) => datasets.push(dataset),
                None => listings.push((vec![dataset], rendered)),
            }
        }
        Ok(listings)
    }

    fn query(&self, dataset: Dataset) -> Result<&RestQuery, SourceError> {
        self.spec
            .queries
            .get(&dataset)
            .ok_or_else(|| SourceError::Template {
                dataset,
                message: "no query for this dataset".to_owned(),
            })
    }

    /// Fetches one listing page by page, feeding each page's records to the sink of
    /// every dataset that reads it; their rows, mapped, and their warnings.
    async fn fetch_listing(
        &self,
        datasets: &[Dataset],
        rendered: &RenderedRequest,
        params: &QueryParams,
        deadline: Deadline,
    ) -> Result<Vec<(Dataset, Vec<Record>, Vec<String>)>, SourceError> {
        let query = self.query(datasets[0])?;
        let mut first = self.url_for(&rendered.path)?;
        if !rendered.query.is_empty() {
            first.query_pairs_mut().extend_pairs(&rendered.query);
        }
        let location = query.paging.pagination.location();
        let json_body = rendered.body.is_some() || location == ParamIn::Body;
        let headers = self.headers(datasets[0], &rendered.headers, json_body)?;
        let names: Vec<String> = datasets.iter().map(|d| d.to_string()).collect();
        let names = names.join("`, `");
        let bad = |page: u32, message: String| {
            SourceError::BadResponse(format!("`{names}` page {page}: {message}"))
        };
        let request_values = Expressions::request(params);
        let mut feeds: Vec<Feed<'_>> = datasets
            .iter()
            .map(|&dataset| {
                Feed::new(
                    dataset,
                    &self.spec.queries[&dataset],
                    &self.spec.expressions,
                    &request_values,
                )
            })
            .collect();

        let mut pager = Pager::new(&query.paging);
        let mut request = pager.first();
        let mut current = first.clone();
        let mut truncated = None;
        loop {
            let page = pager.pages() + 1;
            let (url, body) = match request {
                PageRequest::Params(params) => {
                    let mut url = first.clone();
                    let mut body = rendered.body.clone();
                    match location {
                        ParamIn::Query => set_query(&mut url, &params),
                        ParamIn::Body => {
                            let target =
                                body.get_or_insert_with(|| Value::Object(Default::default()));
                            for (name, value) in params {
                                if let Ok(path) = JsonPath::parse(&name) {
                                    path.set(target, value);
                                }
                            }
                        }
                    }
                    (url, body)
                }
                PageRequest::Url(next) => {
                    let url = current
                        .join(&next)
                        .map_err(|_| bad(page - 1, "the next page URL is not a URL".to_owned()))?;
                    if !same_origin(&url, self.base_url()?) {
                        return Err(bad(
                            page - 1,
                            "the next page URL points to another host; it is not followed, so credentials stay with base_url".to_owned(),
                        ));
                    }
                    (url, rendered.body.clone())
                }
            };
            let body = match &body {
                Some(value) => Some(Bytes::from(serde_json::to_vec(value).map_err(|err| {
                    SourceError::Template {
                        dataset: datasets[0],
                        message: format!("the body cannot be written: {err}"),
                    }
                })?)),
                None => None,
            };
            let reply = self
                .call(query.method, &url, &headers, body.as_ref(), deadline)
                .await?;
            current = url;
            let mut answer: Value = serde_json::from_slice(&reply.body)
                .map_err(|err| bad(page, format!("the answer is not valid JSON ({err})")))?;
            drop(reply.body);
            let count = match query.records.get(&answer) {
                None => {
                    return Err(bad(
                        page,
                        format!("the answer has no `{}` (the records path)", query.records),
                    ))
                }
                Some(Value::Array(items)) => items.len(),
                Some(Value::Object(_)) => 1,
                Some(other) => {
                    return Err(bad(
                        page,
                        format!(
                            "`{}` is {}, not a list of records",
                            query.records,
                            kind_of(other)
                        ),
                    ))
                }
            };
            let link: Vec<&str> = reply
                .headers
                .get_all(LINK)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .collect();
            let link = link.join(", ");
            let next = pager
                .advance(&PageInfo {
                    records: count,
                    body: &answer,
                    link: (!link.is_empty()).then_some(link.as_str()),
                })
                .map_err(|message| bad(page, message))?;
            let records = query.records.take(&mut answer).unwrap_or(Value::Null);
            drop(answer);
            feed_records(&mut feeds, records, &query.records, |m| bad(page, m))?;
            match next {
                Next::Fetch(following) => request = following,
                Next::Done => break,
                Next::Truncated(warning) => {
                    truncated = Some(warning);
                    break;
                }
            }
        }
        if datasets.len() > 1 {
            tracing::debug!(
                datasets = %names,
                pages = pager.pages(),
                "one listing fed several datasets"
            );
        }
        let mut results = Vec::new();
        for feed in feeds {
            let (dataset, rows, mut own) = feed.finish();
            own.extend(truncated.iter().map(|w| format!("`{dataset}`: {w}")));
            let empty = BTreeMap::new();
            let rows = map_rows(dataset, self.mappings.get(&dataset).unwrap_or(&empty), rows)?;
            results.push((dataset, rows, own));
        }
        Ok(results)
    }
}

/// Puts paging parameters into the query string, replacing any of the same name.
fn set_query(url: &mut Url, params: &[(String, Value)]) {
    if params.is_empty() {
        return;
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(key, _)| !params.iter().any(|(name, _)| name == key))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut pairs = url.query_pairs_mut();
    pairs.clear();
    pairs.extend_pairs(kept);
    for (name, value) in params {
        match value {
            Value::String(text) => pairs.append_pair(name, text),
            other => pairs.append_pair(name, &other.to_string()),
        };
    }
}

/// Feeds a page's records (a list, or one object) to every dataset of the listing.
fn feed_records(
    feeds: &mut [Feed<'_>],
    records: Value,
    path: &JsonPath,
    bad: impl Fn(String) -> SourceError,
) -> Result<(), SourceError> {
    let records = match records {
        Value::Array(items) => items,
        single => vec![single],
    };
    for (index, record) in records.into_iter().enumerate() {
        let map = match record {
            Value::Object(map) => map,
            other => {
                return Err(bad(format!(
                    "record {index} of `{path}` is {}, not an object",
                    kind_of(&other)
                )))
            }
        };
        let Some((last, others)) = feeds.split_last_mut() else {
            return Ok(());
        };
        for feed in others {
            feed.take(map.clone(), &bad)?;
        }
        last.take(map, &bad)?;
    }
    Ok(())
}

#[async_trait]
impl DataSource for RestSource {
    async fn initialize(&self) -> Result<(), SourceError> {
        self.transport()?;
        self.base_url()?;
        Ok(())
    }

    async fn fetch_metrics(&self, params: &QueryParams) -> Result<SourceData, SourceError> {
        let deadline = Deadline::after(self.timeout);
        let listings = self.listings(params)?;
        let results =
            try_join_all(listings.iter().map(|(datasets, rendered)| {
                self.fetch_listing(datasets, rendered, params, deadline)
            }))
            .await?;
        let mut data = SourceData::default();
        for (dataset, rows, warnings) in results.into_iter().flatten() {
            data.set(dataset, rows);
            data.warnings.extend(warnings);
        }
        Ok(data)
    }

    /// With `health_path`, that path must answer 2xx with the source's credentials.
    /// Without, any answer below 500 from `base_url` shows the service is up (and for
    /// OAuth 2.0, a token must be obtainable).
    async fn health_check(&self) -> Result<(), SourceError> {
        let deadline = Deadline::after(self.timeout);
        let headers = self.headers(Dataset::Summary, &[], false)?;
        match &self.spec.connection.health_path {
            Some(path) => {
                let url = self.url_for(path)?;
                self.call(Method::Get, &url, &headers, None, deadline)
                    .await
                    .map(drop)
            }
            None => {
                let transport = self.transport()?;
                let clean = |text: String| self.clean(text);
                if let Some(cache) = &self.token {
                    cache.token(transport, deadline, &clean).await?;
                }
                let url = self.base_url()?.clone();
                let reply = transport
                    .send(
                        || transport.client.get(url.clone()).headers(headers.clone()),
                        deadline,
                        &clean,
                    )
                    .await?;
                if reply.status.is_server_error() {
                    return Err(SourceError::Upstream {
                        status: reply.status.as_u16(),
                        message: "health probe of base_url".to_owned(),
                    });
                }
                Ok(())
            }
        }
    }

    async fn cleanup(&self) {}
}
