//! The `rest` kind's part of a source file: where the API lives, how to authenticate, and
//! per dataset the request (path, query, headers, JSON body as minijinja templates), where
//! the records are, how pages follow each other, and optionally how raw records aggregate
//! into unified rows. Compiled into a [`RestSpec`], every problem recorded at its pointer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use reqwest::header::{HeaderName, HeaderValue};
use schemars::SchemaGenerator;
use serde_json::Value;
use url::Url;

use super::aggregate::{Aggregate, Field, GroupBy, Measure};
use super::expr::{ExprId, Expressions};
use super::json_path::JsonPath;
use super::paging::{Ends, Pagination, Paging, ParamIn};
use super::raw::{
    AggregateConfig, AuthConfig, ClassifyConfig, ClientAuth, ConnectionConfig, KeyLocation,
    Location, MeasureConfig, Method, Op, PaginationConfig, QueryConfig,
};
use super::template::{RequestParts, RequestTemplates};
use super::transform::{Classify, Match, Otherwise, Transforms};
use crate::config::raw::{Number, Size};
use crate::config::Problems;
use crate::kinds::{KindContext, KindSchema};
use crate::model::Dataset;
use crate::secret::Secret;

/// This kind's part of the source-file schema.
pub fn schema(generator: &mut SchemaGenerator) -> KindSchema {
    KindSchema {
        description: "A source read from a JSON HTTP API: per dataset, a request whose path, query parameters, headers and JSON body are minijinja templates over days, start_date, end_date and the declared filters (each value encoded for where it lands: percent-encoded in the path and query, JSON in the body), where the records are in each answer, how pages follow each other, and optionally how raw records aggregate into the dataset's rows. Rows are then mapped like any source's (see mappings).",
        connection: generator.subschema_for::<ConnectionConfig>(),
        query: generator.subschema_for::<QueryConfig>(),
        required: &["connection", "queries"],
        refused: &["identifiers"],
    }
}

const DEFAULT_RETRIES: u32 = 2;
const MAX_RETRIES: i64 = 10;
const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(250);
const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
const MIN_RESPONSE_BYTES: u64 = 1024;
const MAX_RESPONSE_BYTES: u64 = 1024 * 1024 * 1024;
const DEFAULT_MAX_PAGES: u32 = 1000;
const MAX_MAX_PAGES: i64 = 100_000;

/// OAuth 2.0 client credentials.
#[derive(Debug, Clone)]
pub struct OAuth2 {
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: Secret,
    pub scope: Option<String>,
    pub client_auth: ClientAuth,
}

/// How requests prove who they are.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    ApiKey {
        location: KeyLocation,
        name: String,
        value: Secret,
    },
    Bearer {
        token: Secret,
    },
    Basic {
        username: String,
        password: Secret,
    },
    OAuth2(OAuth2),
}

impl Auth {
    /// The secret values, for redaction.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            Auth::None => Vec::new(),
            Auth::ApiKey { value, .. } => vec![value.expose().to_owned()],
            Auth::Bearer { token } => vec![token.expose().to_owned()],
            Auth::Basic { password, .. } => vec![password.expose().to_owned()],
            Auth::OAuth2(oauth) => vec![oauth.client_secret.expose().to_owned()],
        }
    }
}

/// One dataset's query, besides its request templates.
#[derive(Debug, Clone)]
pub struct RestQuery {
    pub method: Method,
    /// Where the records are in each answer.
    pub records: JsonPath,
    pub paging: Paging,
    /// What happens to each record first (`compute`, `classify`, `where`).
    pub transforms: Transforms,
    /// `None`: records already are rows of the dataset (the API aggregates).
    pub aggregate: Option<Aggregate>,
}

/// How to reach the API: shared by every query of a source.
#[derive(Debug, Clone)]
pub struct RestConnection {
    /// `None` only in a disabled source whose URL variable is unset.
    pub base_url: Option<Url>,
    pub auth: Auth,
    /// Sent with every request; values may hold secrets.
    pub headers: Vec<(HeaderName, Secret)>,
    /// Limit of one HTTP request; the source `timeout` bounds the whole fetch.
    pub request_timeout: Option<Duration>,
    pub retries: u32,
    /// First pause between attempts, doubled each time, with jitter.
    pub retry_backoff: Duration,
    pub max_response_bytes: u64,
    /// Probed by health checks when given.
    pub health_path: Option<String>,
}

/// A validated `rest` source.
#[derive(Debug, Clone)]
pub struct RestSpec {
    /// Datasets this source has a query for.
    pub datasets: BTreeSet<Dataset>,
    pub connection: Arc<RestConnection>,
    pub queries: BTreeMap<Dataset, RestQuery>,
    pub templates: Arc<RequestTemplates>,
    /// The record expressions of every query.
    pub expressions: Arc<Expressions>,
}

fn path(problems: &mut Problems, pointer: &str, text: &str) -> JsonPath {
    JsonPath::parse(text).unwrap_or_else(|message| {
        problems.add(pointer, message);
        JsonPath::root()
    })
}

/// A parameter name: plain text in a query string, a dotted path into a body.
fn param_name(problems: &mut Problems, pointer: &str, name: &str, location: ParamIn) {
    let valid = match location {
        ParamIn::Query => !name.trim().is_empty(),
        ParamIn::Body => JsonPath::parse(name).is_ok_and(|p| !p.is_root()),
    };
    if !valid {
        problems.add(
            pointer,
            format!(
                "`{name}` is not a parameter name (in a body, a dotted path such as page.after)"
            ),
        );
    }
}

fn http_url(text: &str) -> Option<Url> {
    Url::parse(text.trim())
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .filter(|url| url.host().is_some() && url.fragment().is_none())
}

fn compile_auth(config: AuthConfig, enabled: bool, problems: &mut Problems) -> Auth {
    let mut required = |key: &str, value: &str| {
        if enabled && value.trim().is_empty() {
            problems.add(
                &format!("/connection/auth/{key}"),
                format!("the source is enabled but `{key}` is empty: set the variable it reads or disable the source"),
            );
        }
    };
    match config {
        AuthConfig::None => Auth::None,
        AuthConfig::ApiKey {
            location,
            name,
            value,
        } => {
            required("value", &value);
            if HeaderName::from_bytes(name.as_bytes()).is_err() || name.trim().is_empty() {
                problems.add(
                    "/connection/auth/name",
                    format!("`{name}` is not a valid header or parameter name"),
                );
            }
            Auth::ApiKey {
                location,
                name,
                value: Secret::new(value),
            }
        }
        AuthConfig::Bearer { token } => {
            required("token", &token);
            Auth::Bearer {
                token: Secret::new(token),
            }
        }
        AuthConfig::Basic { username, password } => {
            required("username", &username);
            Auth::Basic {
                username,
                password: Secret::new(password),
            }
        }
        AuthConfig::Oauth2 {
            token_url,
            client_id,
            client_secret,
            scope,
            client_auth,
        } => {
            required("client_id", &client_id);
            required("client_secret", &client_secret);
            let parsed = http_url(&token_url);
            if parsed.is_none() && (enabled || !token_url.trim().is_empty()) {
                problems.add(
                    "/connection/auth/token_url",
                    "token_url must be an absolute http or https URL",
                );
            }
            Auth::OAuth2(OAuth2 {
                token_url: parsed.unwrap_or_else(|| {
                    Url::parse("http://token-url.invalid/").expect("a valid placeholder")
                }),
                client_id,
                client_secret: Secret::new(client_secret),
                scope: scope.filter(|s| !s.trim().is_empty()),
                client_auth: client_auth.unwrap_or_default(),
            })
        }
    }
}

fn compile_paging(
    config: Option<PaginationConfig>,
    pointer: &str,
    method: Method,
    query: &BTreeMap<String, Value>,
    problems: &mut Problems,
) -> Paging {
    let mut at = PagingRules {
        pointer,
        method,
        problems,
    };
    let mut ends = Ends::default();
    let (pagination, max_pages) = match config {
        None | Some(PaginationConfig::None) => (Pagination::None, None),
        Some(PaginationConfig::Cursor {
            cursor_path,
            param,
            location,
            has_more_path,
            end_path,
            max_pages,
        }) => {
            ends = at.ends(has_more_path, end_path);
            (at.cursor(cursor_path, param, location), max_pages)
        }
        Some(PaginationConfig::Offset {
            offset_param,
            limit_param,
            limit,
            start,
            total_path,
            location,
            max_pages,
        }) => {
            let location = at.location(location);
            let pagination = Pagination::Offset {
                offset_param: at.param("offset_param", offset_param, "offset", location),
                limit_param: at.param("limit_param", limit_param, "limit", location),
                limit: at.count("limit", Some(&limit), 1..=1_000_000, 100),
                start: at.count("start", start.as_ref(), 0..=i64::MAX, 0),
                total_path: at.optional_path("total_path", total_path),
                location,
            };
            (pagination, max_pages)
        }
        Some(PaginationConfig::Page {
            page_param,
            start,
            page_size_param,
            page_size,
            total_path,
            total_pages_path,
            location,
            max_pages,
        }) => {
            let location = at.location(location);
            let (page_size_param, page_size) = at.page_size(page_size_param, page_size, location);
            let pagination = Pagination::Page {
                page_param: at.param("page_param", page_param, "page", location),
                start: at.count("start", start.as_ref(), 0..=i64::MAX, 1),
                page_size_param,
                page_size,
                total_path: at.optional_path("total_path", total_path),
                total_pages_path: at.optional_path("total_pages_path", total_pages_path),
                location,
            };
            (pagination, max_pages)
        }
        Some(PaginationConfig::NextUrl {
            next_path,
            has_more_path,
            end_path,
            max_pages,
        }) => {
            ends = at.ends(has_more_path, end_path);
            let next_path = at.path("next_path", &next_path);
            (Pagination::NextUrl { next_path }, max_pages)
        }
        Some(PaginationConfig::LinkHeader { max_pages }) => (Pagination::LinkHeader, max_pages),
    };
    let max_pages = match (&pagination, max_pages) {
        (Pagination::None, _) => 1,
        (_, max_pages) => at.max_pages(max_pages.as_ref()),
    };
    at.not_in_query(&pagination, query);
    Paging {
        pagination,
        max_pages,
        ends,
    }
}

/// The checks of one `pagination:`, each recording its problem under the block's pointer.
struct PagingRules<'a> {
    pointer: &'a str,
    method: Method,
    problems: &'a mut Problems,
}

impl PagingRules<'_> {
    /// `in:` as a parameter location; the body only for POST.
    fn location(&mut self, location: Option<Location>) -> ParamIn {
        match location {
            None | Some(Location::Query) => ParamIn::Query,
            Some(Location::Body) => {
                if self.method == Method::Get {
                    self.problems.add(
                        &format!("{}/in", self.pointer),
                        "paging parameters can go into the body only with method: POST",
                    );
                }
                ParamIn::Body
            }
        }
    }

    fn max_pages(&mut self, value: Option<&Number>) -> u32 {
        let range = 1..=MAX_MAX_PAGES;
        let pointer = format!("{}/max_pages", self.pointer);
        let default = i64::from(DEFAULT_MAX_PAGES);
        self.problems
            .bounded(&pointer, value, range, default, "max_pages") as u32
    }

    fn count(
        &mut self,
        key: &str,
        value: Option<&Number>,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
    ) -> u64 {
        let pointer = format!("{}/{key}", self.pointer);
        self.problems.bounded(&pointer, value, range, default, key) as u64
    }

    fn path(&mut self, key: &str, text: &str) -> JsonPath {
        path(self.problems, &format!("{}/{key}", self.pointer), text)
    }

    fn optional_path(&mut self, key: &str, value: Option<String>) -> Option<JsonPath> {
        value.map(|text| self.path(key, &text))
    }

    fn ends(&mut self, has_more_path: Option<String>, end_path: Option<String>) -> Ends {
        Ends {
            has_more: self.optional_path("has_more_path", has_more_path),
            end: self.optional_path("end_path", end_path),
        }
    }

    /// A parameter name (its default when absent), checked for where it goes.
    fn param(&mut self, key: &str, name: Option<String>, default: &str, at: ParamIn) -> String {
        let name = name.unwrap_or_else(|| default.to_owned());
        param_name(self.problems, &format!("{}/{key}", self.pointer), &name, at);
        name
    }

    fn cursor(&mut self, cursor_path: String, param: String, at: Option<Location>) -> Pagination {
        let location = self.location(at);
        param_name(
            self.problems,
            &format!("{}/param", self.pointer),
            &param,
            location,
        );
        Pagination::Cursor {
            cursor_path: self.path("cursor_path", &cursor_path),
            param,
            location,
        }
    }

    /// `page_size_param` and `page_size`, which go together.
    fn page_size(
        &mut self,
        param: Option<String>,
        size: Option<Number>,
        at: ParamIn,
    ) -> (Option<String>, Option<u64>) {
        if let Some(name) = &param {
            let pointer = format!("{}/page_size_param", self.pointer);
            param_name(self.problems, &pointer, name, at);
        }
        if param.is_some() != size.is_some() {
            self.problems.add(
                self.pointer,
                "page_size_param and page_size go together: give both or neither",
            );
        }
        let size = size.map(|size| self.count("page_size", Some(&size), 1..=1_000_000, 100));
        (param, size)
    }

    /// Paging parameters in the query string must not be set by `query:` as well.
    fn not_in_query(&mut self, pagination: &Pagination, query: &BTreeMap<String, Value>) {
        if pagination.location() != ParamIn::Query {
            return;
        }
        let query_pointer = self.pointer.trim_end_matches("/pagination");
        let given = pagination.params().into_iter();
        for name in given.filter(|name| query.contains_key(*name)) {
            self.problems.add(
                &format!("{query_pointer}/query/{name}"),
                format!("pagination sets the query parameter `{name}`: remove it from `query:`"),
            );
        }
    }
}

fn compile_aggregate(
    config: AggregateConfig,
    dataset: Dataset,
    pointer: &str,
    records: &mut RecordExprs<'_>,
) -> Aggregate {
    let problems = &mut *records.problems;
    let group_by = match (config.group_by, dataset.key_field()) {
        (None, None) => None,
        (Some(_), None) => {
            problems.add(
                &format!("{pointer}/group_by"),
                "the summary is one row over every record: remove group_by",
            );
            None
        }
        (None, Some(key)) => {
            problems.add(
                pointer,
                format!("{dataset} rows are one per {key}: add group_by with the record field that holds it"),
            );
            None
        }
        (Some(group), Some(key)) => {
            let output = group.output.unwrap_or_else(|| key.to_owned());
            Some(GroupBy {
                field: path(problems, &format!("{pointer}/group_by/field"), &group.field),
                output,
                by_day: dataset == Dataset::Daily,
            })
        }
    };
    if config.fields.is_empty() {
        problems.add(
            &format!("{pointer}/fields"),
            "declare at least one output field, e.g. events: { op: count }",
        );
    }
    let mut fields = Vec::new();
    for (name, measure) in config.fields {
        let field_pointer = format!("{pointer}/fields/{name}");
        let plain = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plain {
            problems.add(
                &field_pointer,
                format!("`{name}` is not a column name: use letters, digits and _"),
            );
        }
        if group_by.as_ref().is_some_and(|g| g.output == name) {
            problems.add(
                &field_pointer,
                format!("`{name}` is already the group_by column"),
            );
        }
        let field = measure
            .field
            .as_deref()
            .map(|text| path(problems, &format!("{field_pointer}/field"), text));
        if measure.max_distinct.is_some() && !matches!(measure.op, Op::CountDistinct) {
            problems.add(
                &format!("{field_pointer}/max_distinct"),
                "max_distinct bounds count_distinct only: remove it",
            );
        }
        let max_distinct = measure.max_distinct.unwrap_or(DEFAULT_MAX_DISTINCT);
        let divide_by = divisor(problems, &field_pointer, &measure);
        let keep = measure.keep;
        let measure = match (measure.op, field) {
            (Op::Count, field) => Measure::Count(field),
            (Op::CountDistinct, Some(field)) => Measure::CountDistinct(field, max_distinct),
            (Op::Sum, Some(field)) => Measure::Sum(field),
            (Op::Min, Some(field)) => Measure::Min(field),
            (Op::Max, Some(field)) => Measure::Max(field),
            (_, None) => {
                problems.add(
                    &field_pointer,
                    "count_distinct, sum, min and max need the record `field` they read",
                );
                continue;
            }
        };
        let keep = keep.map(|text| (field_pointer, text));
        fields.push((name, measure, keep, divide_by));
    }
    let fields = fields
        .into_iter()
        .map(|(name, measure, keep, divide_by)| Field {
            name,
            measure,
            keep: keep.and_then(|(at, text)| records.expression(&format!("{at}/where"), &text)),
            divide_by,
        })
        .collect();
    Aggregate { group_by, fields }
}

/// A measure's `divide_by:`: a positive number, for sum, min and max only.
fn divisor(problems: &mut Problems, pointer: &str, measure: &MeasureConfig) -> Option<f64> {
    let by = measure.divide_by?;
    let pointer = format!("{pointer}/divide_by");
    if matches!(measure.op, Op::Count | Op::CountDistinct) {
        problems.add(
            &pointer,
            "divide_by scales sum, min and max only: remove it",
        );
    } else if !(by.is_finite() && by > 0.0) {
        problems.add(
            &pointer,
            format!("{by} is not a positive number: write e.g. 100 for cents"),
        );
    }
    Some(by)
}

/// The most distinct values a `count_distinct` keeps unless told otherwise.
const DEFAULT_MAX_DISTINCT: u64 = 1_000_000;

/// Compiles a source's record expressions, reporting problems at their pointers.
struct RecordExprs<'a> {
    exprs: &'a mut Expressions,
    declared: &'a BTreeSet<String>,
    problems: &'a mut Problems,
}

impl RecordExprs<'_> {
    fn expression(&mut self, pointer: &str, text: &str) -> Option<ExprId> {
        match self.exprs.add(text, self.declared) {
            Ok(id) => Some(id),
            Err(problem) => {
                self.problems.add(pointer, problem);
                None
            }
        }
    }

    /// `compute:`, `classify:` and `where:` of one query.
    fn transforms(&mut self, pointer: &str, query: &QueryConfig) -> Transforms {
        let mut compute = Vec::new();
        for (name, text) in &query.compute {
            let at = format!("{pointer}/compute/{name}");
            self.field_name(&at, name);
            match text.as_str() {
                Some(text) => {
                    compute.extend(self.expression(&at, text).map(|id| (name.clone(), id)))
                }
                None => self.problems.add(
                    &at,
                    "write the field as an expression in a string, e.g. \"record.url | url_host\"",
                ),
            }
        }
        let mut classify = Vec::new();
        for (name, value) in &query.classify {
            let at = format!("{pointer}/classify/{name}");
            self.field_name(&at, name);
            if let Some(config) = self.problems.parse::<ClassifyConfig>(&at, value) {
                classify.extend(self.classify(&at, name, config));
            }
        }
        let keep = query
            .keep
            .as_deref()
            .and_then(|text| self.expression(&format!("{pointer}/where"), text));
        Transforms {
            compute,
            classify,
            keep,
        }
    }

    fn field_name(&mut self, pointer: &str, name: &str) {
        if !crate::config::names::FIELD_NAME.allows(name) {
            self.problems.add(
                pointer,
                format!("`{name}` is not a field name: use letters, digits and _"),
            );
        }
    }

    fn classify(&mut self, pointer: &str, name: &str, config: ClassifyConfig) -> Option<Classify> {
        let from = self.expression(&format!("{pointer}/from"), &config.from);
        let mut rules = Vec::new();
        for (index, rule) in config.rules.into_iter().enumerate() {
            let at = format!("{pointer}/rules/{index}");
            let test = match (rule.prefix, rule.contains, rule.equals, rule.regex) {
                (Some(text), None, None, None) => Some(Match::Prefix(text)),
                (None, Some(text), None, None) => Some(Match::Contains(text)),
                (None, None, Some(text), None) => Some(Match::Equals(text)),
                (None, None, None, Some(pattern)) => match Regex::new(&pattern) {
                    Ok(regex) => Some(Match::Regex(regex)),
                    Err(err) => {
                        self.problems.add(
                            &format!("{at}/regex"),
                            format!("not a valid regular expression: {err}"),
                        );
                        None
                    }
                },
                _ => {
                    self.problems
                        .add(&at, "give exactly one of prefix, contains, equals or regex");
                    None
                }
            };
            rules.extend(test.map(|test| (test, rule.value)));
        }
        let otherwise = match config.otherwise.as_deref() {
            None => Otherwise::Null,
            Some("drop") => Otherwise::Drop,
            Some(value) => Otherwise::Value(value.to_owned()),
        };
        Some(Classify {
            name: name.to_owned(),
            from: from?,
            rules,
            otherwise,
        })
    }
}

/// Parses and checks the kind-specific parts, recording problems under their pointers.
pub fn compile(context: &KindContext<'_>, problems: &mut Problems) -> Option<RestSpec> {
    let Some(connection) = context.connection else {
        problems.add(
            "/connection",
            "a rest source needs `connection:` with at least `base_url`",
        );
        return None;
    };
    let connection: ConnectionConfig = problems.parse("/connection", connection)?;
    let connection = compile_connection(connection, context.enabled, problems);
    if !context.identifiers.is_empty() {
        problems.add(
            "/identifiers",
            "identifiers are for SQL templates; a rest source has none",
        );
    }
    let mut templates = RequestTemplates::new();
    let declared: BTreeSet<String> = context.filters.keys().cloned().collect();
    let mut expressions = Expressions::new();
    let mut queries = BTreeMap::new();
    let mut compiled = BTreeSet::new();
    context.require_queries(problems);
    for (dataset, pointer, query) in context.typed_queries::<QueryConfig>(problems) {
        let mut records = RecordExprs {
            exprs: &mut expressions,
            declared: &declared,
            problems: &mut *problems,
        };
        let transforms = records.transforms(&pointer, &query);
        let (query, templates_compiled) =
            compile_query(dataset, &pointer, query, &mut templates, &mut records);
        if templates_compiled {
            compiled.insert(dataset);
        }
        queries.insert(
            dataset,
            RestQuery {
                transforms,
                ..query
            },
        );
    }
    let samples = crate::kinds::sample_params(context.filters);
    // Trial renders only of what compiled: a syntax error is reported once, not again as
    // a failed render.
    for dataset in &compiled {
        for (at, message) in templates.check(*dataset, &declared, &samples) {
            problems.add(&at, message);
        }
    }
    Some(RestSpec {
        datasets: queries.keys().copied().collect(),
        connection: Arc::new(connection),
        queries,
        templates: Arc::new(templates),
        expressions: Arc::new(expressions),
    })
}

/// `connection:`: where the API is, how to authenticate, and the limits of a request.
fn compile_connection(
    connection: ConnectionConfig,
    enabled: bool,
    problems: &mut Problems,
) -> RestConnection {
    let base_url = compile_base_url(&connection.base_url, enabled, problems);
    let auth = compile_auth(
        connection.auth.unwrap_or(AuthConfig::None),
        enabled,
        problems,
    );
    let headers = compile_headers(connection.headers, &auth, problems);
    let request_timeout = connection.request_timeout.as_deref().map(|text| {
        let pointer = "/connection/request_timeout";
        let timeout = problems.duration(pointer, Some(text), Duration::from_secs(10));
        if timeout.is_zero() {
            problems.add(pointer, "request_timeout must be longer than zero");
        }
        timeout
    });
    let retries = problems.bounded(
        "/connection/retries",
        connection.retries.as_ref(),
        0..=MAX_RETRIES,
        i64::from(DEFAULT_RETRIES),
        "retries",
    ) as u32;
    let retry_backoff = problems.duration(
        "/connection/retry_backoff",
        connection.retry_backoff.as_deref(),
        DEFAULT_RETRY_BACKOFF,
    );
    let max_response_bytes = compile_max_response_bytes(&connection.max_response_bytes, problems);
    if let Some(health) = &connection.health_path {
        if !health.starts_with('/') || health.contains('#') {
            problems.add(
                "/connection/health_path",
                "health_path is a path such as /health, appended to base_url",
            );
        }
    }
    RestConnection {
        base_url,
        auth,
        headers,
        request_timeout,
        retries,
        retry_backoff,
        max_response_bytes,
        health_path: connection.health_path,
    }
}

/// `base_url`; `None` (and no problem) when empty in a disabled source.
fn compile_base_url(text: &str, enabled: bool, problems: &mut Problems) -> Option<Url> {
    if text.trim().is_empty() {
        if enabled {
            problems.add(
                "/connection/base_url",
                "the source is enabled but its base_url is empty: set the variable it reads or disable the source",
            );
        }
        return None;
    }
    let parsed = http_url(text);
    if parsed.is_none() {
        problems.add(
            "/connection/base_url",
            "base_url must be an absolute http or https URL without a #fragment",
        );
    }
    parsed
}

/// Headers sent with every request; `Authorization` only when `auth:` does not set it.
fn compile_headers(
    headers: BTreeMap<String, String>,
    auth: &Auth,
    problems: &mut Problems,
) -> Vec<(HeaderName, Secret)> {
    let mut compiled = Vec::new();
    for (name, value) in headers {
        let pointer = format!("/connection/headers/{name}");
        match HeaderName::from_bytes(name.as_bytes()) {
            Err(_) => problems.add(&pointer, format!("`{name}` is not a valid header name")),
            Ok(header)
                if header == reqwest::header::AUTHORIZATION && !matches!(auth, Auth::None) =>
            {
                problems.add(
                    &pointer,
                    "auth: sets Authorization already: remove this header or use auth type none",
                )
            }
            Ok(header) => {
                if HeaderValue::from_str(&value).is_err() {
                    problems.add(
                        &pointer,
                        "a header value may not contain line breaks or other control characters",
                    );
                }
                compiled.push((header, Secret::new(value)));
            }
        }
    }
    compiled
}

fn compile_max_response_bytes(size: &Option<Size>, problems: &mut Problems) -> u64 {
    let Some(size) = size else {
        return DEFAULT_MAX_RESPONSE_BYTES;
    };
    match size.bytes() {
        Some(bytes) if (MIN_RESPONSE_BYTES..=MAX_RESPONSE_BYTES).contains(&bytes) => bytes,
        _ => {
            problems.add(
                "/connection/max_response_bytes",
                "max_response_bytes must be a size from 1KiB to 1GiB, e.g. 16MiB or 1048576",
            );
            DEFAULT_MAX_RESPONSE_BYTES
        }
    }
}

/// One dataset's query; the bool says whether its templates compiled (and so may be
/// trial-rendered).
fn compile_query(
    dataset: Dataset,
    pointer: &str,
    query: QueryConfig,
    templates: &mut RequestTemplates,
    record_exprs: &mut RecordExprs<'_>,
) -> (RestQuery, bool) {
    let problems = &mut *record_exprs.problems;
    let method = query.method.unwrap_or(Method::Get);
    if method == Method::Get && query.body.is_some() {
        problems.add(
            &format!("{pointer}/body"),
            "a GET request has no body: use method: POST, or move the values under `query:`",
        );
    }
    for header in query.headers.keys() {
        if HeaderName::from_bytes(header.as_bytes()).is_err() {
            problems.add(
                &format!("{pointer}/headers/{header}"),
                format!("`{header}` is not a valid header name"),
            );
        }
    }
    let records = query.records.as_deref().unwrap_or("");
    let records = path(problems, &format!("{pointer}/records"), records);
    let paging_pointer = format!("{pointer}/pagination");
    let paging = compile_paging(
        query.pagination,
        &paging_pointer,
        method,
        &query.query,
        problems,
    );
    let aggregate = query.aggregate.map(|aggregate| {
        compile_aggregate(
            aggregate,
            dataset,
            &format!("{pointer}/aggregate"),
            record_exprs,
        )
    });
    let problems = &mut *record_exprs.problems;
    let parts = RequestParts {
        pointer,
        path: &query.path,
        query: &query.query,
        headers: &query.headers,
        body: query.body.as_ref(),
    };
    let template_problems = templates.add(dataset, parts);
    let compiled = template_problems.is_empty();
    for (at, message) in template_problems {
        problems.add(&at, message);
    }
    let query = RestQuery {
        method,
        records,
        paging,
        transforms: Transforms::default(),
        aggregate,
    };
    (query, compiled)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::kinds::KindSpec;
    use crate::load::load_source;

    fn load(yaml: &str) -> Result<RestSpec, Vec<String>> {
        let env = |name: &str| (name == "TOKEN").then(|| "s3cr3t-token-value".to_owned());
        match load_source(Path::new("crm.yaml"), yaml, &env) {
            Ok(spec) => match spec.kind {
                KindSpec::Rest(rest) => Ok(rest),
                other => panic!("not rest: {other:?}"),
            },
            Err(errors) => Err(errors
                .into_iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect()),
        }
    }

    #[test]
    fn a_declaration_compiles_with_its_defaults() {
        let spec = load(
            "id: crm\nname: CRM\nkind: rest\nconnection:\n  base_url: https://api.example.com/v1/\n  auth: { type: bearer, token: \"${TOKEN}\" }\n  max_response_bytes: 2MiB\nqueries:\n  daily:\n    path: /deals\n    records: data.items\n    pagination: { type: offset, limit: 50 }\n    aggregate:\n      group_by: { field: created_at }\n      fields: { events: { op: count } }\n",
        )
        .unwrap();
        let connection = &spec.connection;
        assert_eq!(
            connection.base_url.as_ref().map(Url::as_str),
            Some("https://api.example.com/v1/")
        );
        assert!(
            matches!(&connection.auth, Auth::Bearer { token } if token.expose() == "s3cr3t-token-value")
        );
        assert_eq!(
            (
                connection.retries,
                connection.retry_backoff,
                connection.max_response_bytes
            ),
            (DEFAULT_RETRIES, DEFAULT_RETRY_BACKOFF, 2 * 1024 * 1024)
        );
        let daily = &spec.queries[&Dataset::Daily];
        assert_eq!(daily.method, Method::Get);
        assert_eq!(daily.records.as_str(), "data.items");
        assert_eq!(daily.paging.max_pages, DEFAULT_MAX_PAGES);
        assert!(matches!(
            &daily.paging.pagination,
            Pagination::Offset { offset_param, limit_param, limit: 50, start: 0, total_path: None, location: ParamIn::Query }
                if offset_param == "offset" && limit_param == "limit"
        ));
        let group = daily.aggregate.as_ref().unwrap().group_by.as_ref().unwrap();
        assert_eq!((group.output.as_str(), group.by_day), ("date", true));
    }

    #[test]
    fn every_problem_is_reported_at_its_path_without_secrets() {
        let errors = load(
            "id: crm\nname: CRM\nkind: rest\nidentifiers: [events]\nconnection:\n  base_url: \"not a url ${TOKEN}\"\n  auth: { type: oauth2, token_url: nowhere, client_id: \"\", client_secret: \"${TOKEN}\" }\n  headers: { Authorization: x }\nqueries:\n  summary:\n    path: /s\n    aggregate:\n      group_by: { field: day }\n      fields: { \"bad name\": { op: count } }\n  daily:\n    method: POST\n    path: /d\n    query: { page: 1 }\n    pagination: { type: page, page_size: 10 }\n",
        )
        .unwrap_err();
        let shown = errors.join("\n");
        for path in [
            "/identifiers",
            "/connection/base_url",
            "/connection/auth/token_url",
            "/connection/auth/client_id",
            "/connection/headers/Authorization",
            "/queries/summary/aggregate/group_by",
            "/queries/summary/aggregate/fields: \"bad name\"",
            "/queries/daily/pagination: page_size_param and page_size go together",
            "/queries/daily/query/page",
        ] {
            assert!(shown.contains(path), "{path} missing in:\n{shown}");
        }
        assert!(!shown.contains("s3cr3t-token-value"), "{shown}");
    }
}
