//! The `rest` kind's raw shapes, mirroring the YAML one to one (`deny_unknown_fields`):
//! `connection:` (where the API lives, how to authenticate) and each query (the request,
//! where the records are, pagination, aggregation). Their `///` comments are the schema's
//! descriptions. [`super::config`] compiles them into a `RestSpec`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::config::raw::{Number, Size};
use crate::config::schema::{duration, tagged_union};

/// Where the API lives and how to reach it, for kind rest.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "rest-connection")]
pub struct ConnectionConfig {
    /// Absolute http(s) URL every query path is appended to, e.g.
    /// "${CRM_URL:-https://api.example.com/v1}" (a /v1 in it stays). Treated as a secret
    /// when it comes from the environment. It may be "" in a disabled source.
    pub base_url: String,
    /// How requests authenticate.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Headers sent with every request, e.g. Accept or an API version. Values are plain
    /// text (use ${VAR} for secrets), not templates; per-query headers can be templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Longest one HTTP request may take (default: no limit of its own). The source's
    /// timeout bounds the whole fetch, pages and retries included.
    #[serde(default)]
    #[schemars(schema_with = "duration")]
    pub request_timeout: Option<String>,
    /// Retries of a request after a connection error, a 5xx or a 429, 0 to 10 (default
    /// 2), with exponential backoff and jitter, honouring Retry-After (seconds or HTTP
    /// date) while the source's timeout allows.
    #[serde(default)]
    #[schemars(range(min = 0, max = 10))]
    pub retries: Option<Number>,
    /// Pause before the first retry, doubled for each further one, jittered, at most 10s
    /// (default 250ms).
    #[serde(default)]
    #[schemars(schema_with = "duration", extend("default" = "250ms"))]
    pub retry_backoff: Option<String>,
    /// Largest answer accepted, e.g. 16MiB (default), from 1KiB to 1GiB; enforced while
    /// the body streams in and reported as response_too_large.
    #[serde(default)]
    pub max_response_bytes: Option<Size>,
    /// A path such as /health that health checks GET with the source's credentials and
    /// expect 2xx from. Without it, any answer below 500 from base_url counts as up (and
    /// an OAuth 2.0 token must be obtainable).
    #[serde(default)]
    #[schemars(regex(pattern = "^/"))]
    pub health_path: Option<String>,
}

/// How requests authenticate: none, api_key (in a header or the query string), bearer,
/// basic, or oauth2 (client credentials; the token is cached until shortly before it
/// expires and fetched anew once when the API answers 401). Secrets are treated as such:
/// no log line, error or response shows them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[schemars(rename = "rest-auth", transform = tagged_union)]
pub enum AuthConfig {
    /// No credentials.
    None,
    /// A key in a header or the query string.
    ApiKey {
        /// header or query.
        #[serde(rename = "in")]
        location: KeyLocation,
        /// The header or query parameter name, e.g. X-Api-Key.
        #[schemars(length(min = 1))]
        name: String,
        /// The key, usually "${CRM_API_KEY}".
        value: String,
    },
    /// `Authorization: Bearer TOKEN`.
    Bearer {
        /// The token, usually "${CRM_TOKEN}".
        token: String,
    },
    /// HTTP Basic.
    Basic {
        /// The user name.
        username: String,
        /// The password, usually "${CRM_PASSWORD}".
        password: String,
    },
    /// OAuth 2.0 client credentials.
    Oauth2 {
        /// The token endpoint, an absolute http(s) URL.
        token_url: String,
        /// The client id.
        client_id: String,
        /// The client secret, usually "${CRM_CLIENT_SECRET}".
        client_secret: String,
        /// Space-separated scopes to ask for.
        #[serde(default)]
        scope: Option<String>,
        /// How the client authenticates at the token endpoint: basic (HTTP Basic, the
        /// default) or body (client_id and client_secret as form fields).
        #[serde(default)]
        client_auth: Option<ClientAuth>,
    },
}

/// Where an API key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
pub enum KeyLocation {
    Header,
    Query,
}

/// How an OAuth 2.0 client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline, transform = crate::config::schema::plain_enum)]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret, which RFC 6749 says servers must support.
    #[default]
    Basic,
    /// `client_id` and `client_secret` as form fields, for servers that want them there.
    Body,
}

/// The HTTP method of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(inline, extend("enum" = ["GET", "POST", "get", "post"]))]
pub enum Method {
    #[serde(rename = "GET", alias = "get")]
    Get,
    #[serde(rename = "POST", alias = "post")]
    Post,
}

/// The request answering one dataset, for kind rest. Templates read days, start_date
/// and end_date (dates; filters yyyymmdd, strftime('%Y-%m-%d'), timestamp) and
/// filters.NAME. A value that is exactly one {{ expression }} is left out when undefined
/// (an optional filter not given) and, in the body, keeps its JSON type; printing an
/// undefined value anywhere else is an error found when the file is loaded.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "rest-query")]
pub struct QueryConfig {
    /// GET (default) or POST.
    #[serde(default)]
    pub method: Option<Method>,
    /// Template appended to base_url, e.g. /stats/{{ filters.client | default('all') }}/daily.
    /// Printed values are percent-encoded as one path segment each; `.`/`..` segments,
    /// `?` and `#` are refused.
    #[serde(default)]
    pub path: String,
    /// Query parameters: name -> template (or a number or boolean), encoded by the URL
    /// builder, e.g. from: "{{ start_date }}".
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, QueryValue>")]
    pub query: BTreeMap<String, Value>,
    /// Request headers: name -> template; a rendered value with a line break or other
    /// control character is refused.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// POST only: the JSON body, built as data. String leaves are templates; numbers,
    /// booleans, lists and objects stay as written.
    #[serde(default)]
    pub body: Option<Value>,
    /// Dotted path to the records in each answer, e.g. data.items (a list; for summary
    /// also one object). Absent: the whole answer. A missing path is the source's error,
    /// naming it.
    #[serde(default)]
    pub records: Option<String>,
    /// How pages follow each other.
    #[serde(default)]
    pub pagination: Option<PaginationConfig>,
    /// Fields added to each record, in order: name -> a minijinja expression over
    /// `record` and the request parameters (days, start_date, end_date, filters.NAME),
    /// e.g. client: "record.url | regex_capture('^https://([^.]+)\\.example\\.com')".
    /// Filters: regex_capture(pattern, group=1), regex_match(pattern), url_host,
    /// url_path, date (the UTC day, YYYY-MM-DD, of an ISO date or timestamp, YYYYMMDD,
    /// or epoch seconds or milliseconds), lower, upper, trim, default, length, int,
    /// float, replace, split, first, last, join, round, abs. A later field may read an
    /// earlier one as record.NAME; group_by and aggregate fields read them like record
    /// fields.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>", extend("propertyNames" = {"pattern": crate::config::names::FIELD_NAME.pattern}))]
    pub compute: serde_json::Map<String, Value>,
    /// Fields set by ordered rules over a text, after `compute:`: name -> { from:
    /// expression, rules: [{prefix|contains|equals|regex: ..., value: ...}], otherwise:
    /// drop | a default value }. The first matching rule wins, so list the longer
    /// prefixes first.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ClassifyConfig>", extend("propertyNames" = {"pattern": crate::config::names::FIELD_NAME.pattern}))]
    pub classify: serde_json::Map<String, Value>,
    /// Keeps only the records for which this expression is true (after `compute:` and
    /// `classify:`), e.g. record.type == 'page_view'.
    #[serde(default, rename = "where")]
    #[schemars(length(min = 1))]
    pub keep: Option<String>,
    /// How raw records become the dataset's rows.
    #[serde(default)]
    pub aggregate: Option<AggregateConfig>,
}

/// A field set by the first of ordered rules that matches a text.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "rest-classify")]
pub struct ClassifyConfig {
    /// The text the rules look at: an expression, e.g. record.url | url_path.
    #[schemars(length(min = 1))]
    pub from: String,
    /// Tried in order; the first that matches gives the value.
    #[schemars(length(min = 1))]
    pub rules: Vec<RuleConfig>,
    /// When no rule matches: `drop` leaves the record out of this dataset; any other
    /// text is the value. Absent: the field is null (a record grouped by it is left out).
    #[serde(default)]
    pub otherwise: Option<String>,
}

/// One rule: exactly one of prefix, contains, equals or regex, and the value it gives.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
pub struct RuleConfig {
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub contains: Option<String>,
    #[serde(default)]
    pub equals: Option<String>,
    /// A regular expression (Rust syntax) searched in the text; anchor it with ^ and $.
    #[serde(default)]
    pub regex: Option<String>,
    /// The field's value when the rule matches.
    pub value: String,
}

/// A query parameter's value: a template, a number or a boolean.
struct QueryValue;

impl JsonSchema for QueryValue {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "QueryValue".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": ["string", "number", "boolean"]})
    }
}

/// How pages follow each other: none (default), cursor, offset, page, next_url or
/// link_header (RFC 8288 Link: rel="next"). Paging always ends on an empty page and
/// after max_pages (default 1000, at most 100000); hitting max_pages, or a cursor or URL
/// sent twice, ends it with a warning in the answer's sourceDetails rather than a silent
/// truncation. A short page does not end paging, since servers cap page sizes; an empty
/// one does. For APIs whose cursor or next URL keeps coming after the end, cursor and
/// next_url also stop where has_more_path reads false or end_path reads true (only a
/// boolean counts: absent or null leaves the other rules to decide), saving the request
/// that would prove the end by being empty.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[schemars(rename = "rest-pagination", transform = tagged_union)]
pub enum PaginationConfig {
    /// One request, no paging.
    None,
    /// A cursor from each answer is sent with the next request.
    Cursor {
        /// Dotted path of the next cursor in each answer; absent, null or "" means the
        /// last page.
        #[schemars(length(min = 1))]
        cursor_path: String,
        /// The parameter that carries the cursor (a dotted path when in: body).
        #[schemars(length(min = 1))]
        param: String,
        /// Where paging parameters go: query (default) or body (POST only).
        #[serde(default, rename = "in")]
        location: Option<Location>,
        /// Dotted path of a boolean that is true while more pages follow (Stripe's
        /// has_more, Zendesk's meta.has_more); false ends paging.
        #[serde(default)]
        #[schemars(length(min = 1))]
        has_more_path: Option<String>,
        /// Dotted path of a boolean that is true on the last page (Zendesk's
        /// end_of_stream).
        #[serde(default)]
        #[schemars(length(min = 1))]
        end_path: Option<String>,
        /// Most pages fetched, 1 to 100000 (default 1000).
        #[serde(default)]
        #[schemars(range(min = 1, max = 100_000))]
        max_pages: Option<Number>,
    },
    /// An offset advanced by the records received.
    Offset {
        /// Parameter name of the offset (default offset).
        #[serde(default)]
        #[schemars(length(min = 1))]
        offset_param: Option<String>,
        /// Parameter name of the page size (default limit).
        #[serde(default)]
        #[schemars(length(min = 1))]
        limit_param: Option<String>,
        /// Records asked for per page, 1 to 1000000.
        #[schemars(range(min = 1, max = 1_000_000))]
        limit: Number,
        /// First offset (default 0).
        #[serde(default)]
        #[schemars(range(min = 0))]
        start: Option<Number>,
        /// Dotted path of the total number of records, when the API reports it; paging
        /// stops once that many arrived.
        #[serde(default)]
        #[schemars(length(min = 1))]
        total_path: Option<String>,
        /// Where paging parameters go: query (default) or body (POST only).
        #[serde(default, rename = "in")]
        location: Option<Location>,
        /// Most pages fetched, 1 to 100000 (default 1000).
        #[serde(default)]
        #[schemars(range(min = 1, max = 100_000))]
        max_pages: Option<Number>,
    },
    /// A page number counted up from `start`.
    Page {
        /// Parameter name of the page number (default page).
        #[serde(default)]
        #[schemars(length(min = 1))]
        page_param: Option<String>,
        /// First page number (default 1).
        #[serde(default)]
        #[schemars(range(min = 0))]
        start: Option<Number>,
        /// Parameter name of the page size, with page_size.
        #[serde(default)]
        #[schemars(length(min = 1))]
        page_size_param: Option<String>,
        /// Records per page, with page_size_param.
        #[serde(default)]
        #[schemars(range(min = 1))]
        page_size: Option<Number>,
        /// Dotted path of the total number of records, when the API reports it; paging
        /// stops once that many arrived.
        #[serde(default)]
        #[schemars(length(min = 1))]
        total_path: Option<String>,
        /// Dotted path of the number of pages, when the API reports it.
        #[serde(default)]
        #[schemars(length(min = 1))]
        total_pages_path: Option<String>,
        /// Where paging parameters go: query (default) or body (POST only).
        #[serde(default, rename = "in")]
        location: Option<Location>,
        /// Most pages fetched, 1 to 100000 (default 1000).
        #[serde(default)]
        #[schemars(range(min = 1, max = 100_000))]
        max_pages: Option<Number>,
    },
    /// The next page's URL from each answer.
    NextUrl {
        /// Dotted path of the next page's URL (absolute or relative), followed as given;
        /// only URLs on base_url's host are followed.
        #[schemars(length(min = 1))]
        next_path: String,
        /// Dotted path of a boolean that is true while more pages follow (Stripe's
        /// has_more, Zendesk's meta.has_more); false ends paging.
        #[serde(default)]
        #[schemars(length(min = 1))]
        has_more_path: Option<String>,
        /// Dotted path of a boolean that is true on the last page (Zendesk's
        /// end_of_stream).
        #[serde(default)]
        #[schemars(length(min = 1))]
        end_path: Option<String>,
        /// Most pages fetched, 1 to 100000 (default 1000).
        #[serde(default)]
        #[schemars(range(min = 1, max = 100_000))]
        max_pages: Option<Number>,
    },
    /// RFC 8288 `Link: <...>; rel="next"` headers.
    LinkHeader {
        /// Most pages fetched, 1 to 100000 (default 1000).
        #[serde(default)]
        #[schemars(range(min = 1, max = 100_000))]
        max_pages: Option<Number>,
    },
}

/// Where paging parameters go.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
pub enum Location {
    Query,
    Body,
}

/// Turns raw records into the dataset's rows as each page arrives (memory holds one row
/// per group, not the records). summary: one row over every record, no group_by. daily,
/// features, clients: one row per group_by value; for daily the value is bucketed to its
/// day in UTC (dates, YYYYMMDD and ISO timestamps; for epoch numbers group by a computed
/// `record.x | date`). Records whose group value is missing or null are left out, with a
/// warning.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "rest-aggregate")]
pub struct AggregateConfig {
    /// The record field rows are grouped by.
    #[serde(default)]
    pub group_by: Option<GroupByConfig>,
    /// Row column -> what it computes, e.g. events: { op: count }, users: { op:
    /// count_distinct, field: contact.id }.
    #[schemars(extend("minProperties" = 1, "propertyNames" = {"pattern": crate::config::names::FIELD_NAME.pattern}))]
    pub fields: BTreeMap<String, MeasureConfig>,
}

/// The record field rows are grouped by.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
pub struct GroupByConfig {
    /// Dotted path of the record field to group by, e.g. created_at or owner.team.
    #[schemars(length(min = 1))]
    pub field: String,
    /// The row column it fills (default: the dataset's key, date, feature or client).
    #[serde(default, rename = "as")]
    #[schemars(length(min = 1))]
    pub output: Option<String>,
}

/// count (records, or records where field is present and not null), count_distinct,
/// sum, min or max of a record field (numbers or numeric strings; null and missing
/// values are skipped).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    rename = "rest-measure",
    extend(
        "if" = {"required": ["op"], "properties": {"op": {"enum": ["count_distinct", "sum", "min", "max"]}}},
        "then" = {"required": ["field"]}
    )
)]
pub struct MeasureConfig {
    /// What to compute.
    pub op: Op,
    /// Dotted path of the record field (required except for count).
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub field: Option<String>,
    /// Counts only the records for which this expression is true, in the same pass as
    /// the other fields, e.g. page_views: { op: count, where: "record.type ==
    /// 'page_view'" }.
    #[serde(default, rename = "where")]
    #[schemars(length(min = 1))]
    pub keep: Option<String>,
    /// count_distinct only: the most distinct values kept per row (default 1000000;
    /// memory is about this times the value size, per group). The count is exact up to
    /// it; past it the dataset fails with an error naming the column, rather than answer
    /// a wrong number.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_distinct: Option<u64>,
    /// sum, min and max: divides the result, e.g. 100 for amounts in cents. The sum is
    /// exact in integers up to this one division, so 123456 cents is 1234.56.
    #[serde(default)]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub divide_by: Option<f64>,
}

/// An aggregate's operation.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(inline)]
pub enum Op {
    Count,
    CountDistinct,
    Sum,
    Min,
    Max,
}
