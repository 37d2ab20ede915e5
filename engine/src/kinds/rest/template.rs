//! Request templates of `kind: rest`: the path, query parameters, headers and JSON body of
//! each query are minijinja templates over `days`, `start_date`, `end_date` and the
//! declared `filters`, and every value is encoded for where it lands.
//!
//! - The path is rendered by its own environment whose formatter percent-encodes every
//!   printed value as path-segment text: a filter value can never add a segment (`/`),
//!   start a query (`?`) or climb a level (`..` segments are refused after rendering).
//! - Query parameters are rendered to plain text and encoded by the URL builder.
//! - Headers are rendered to text and refused if they hold control characters (CR/LF).
//! - The body is built as data, not by pasting strings: its string leaves are templates;
//!   a leaf that is exactly one `{{ expression }}` keeps the value's JSON type (numbers
//!   stay numbers) and is left out when the value is undefined. Other leaves are text.
//!
//! Printing an undefined value (a filter the request did not give) or a list or map is an
//! error, found at load time by trial-rendering every template. Optional parameters are
//! written as a single expression (`client: "{{ filters.client }}"`) and disappear when
//! undefined, in the query, the headers and the body alike.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use chrono::NaiveTime;
use minijinja::value::ValueKind;
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::model::{Dataset, QueryParams};
use crate::template::{as_date, request_context as context, unknown_variable, TemplateError};

/// What stays unencoded in a path segment: RFC 3986 unreserved characters only.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn not_a_date(filter: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{filter} expects a date such as start_date or end_date"),
    )
}

/// The text of a printed value; undefined, none, lists and maps cannot be printed.
fn printable(value: &Value) -> Result<String, Error> {
    match value.kind() {
        ValueKind::Undefined => Err(Error::new(
            ErrorKind::UndefinedError,
            "a value printed here is undefined: guard optional filters with {% if filters.NAME is defined %}, give a `| default(...)`, or make the whole value one {{ expression }} so it is left out",
        )),
        ValueKind::None => Err(Error::new(
            ErrorKind::InvalidOperation,
            "a value printed here is none",
        )),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable | ValueKind::Bytes => {
            Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("cannot print a {} here: print single values", value.kind()),
            ))
        }
        _ => Ok(value.to_string()),
    }
}

fn write_failed(_: fmt::Error) -> Error {
    Error::new(ErrorKind::WriteFailure, "write failed")
}

/// An environment with the request context's filters and tests, and no globals.
fn environment(encode_segments: bool) -> Environment<'static> {
    let mut env = Environment::empty();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    if encode_segments {
        env.set_formatter(|out, _state, value| {
            let text = printable(value)?;
            out.write_str(&utf8_percent_encode(&text, SEGMENT).to_string())
                .map_err(write_failed)
        });
    } else {
        env.set_formatter(|out, _state, value| {
            out.write_str(&printable(value)?).map_err(write_failed)
        });
    }
    env.add_filter("yyyymmdd", |value: Value| -> Result<Value, Error> {
        as_date(&value)
            .map(|date| Value::from(date.format("%Y%m%d").to_string()))
            .ok_or_else(|| not_a_date("yyyymmdd"))
    });
    env.add_filter(
        "strftime",
        |value: Value, format: String| -> Result<Value, Error> {
            let date = as_date(&value).ok_or_else(|| not_a_date("strftime"))?;
            // Checked first: chrono's Display of a bad format fails mid-write.
            let items = chrono::format::StrftimeItems::new(&format)
                .parse()
                .map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        format!("strftime: `{format}` is not a valid format"),
                    )
                })?;
            let midnight = date.and_time(NaiveTime::MIN);
            Ok(Value::from(
                midnight.format_with_items(items.iter()).to_string(),
            ))
        },
    );
    env.add_filter("timestamp", |value: Value| -> Result<Value, Error> {
        let date = as_date(&value).ok_or_else(|| not_a_date("timestamp"))?;
        Ok(Value::from(
            date.and_time(NaiveTime::MIN).and_utc().timestamp(),
        ))
    });
    env.add_filter("default", minijinja::filters::default);
    env.add_filter("lower", minijinja::filters::lower);
    env.add_filter("upper", minijinja::filters::upper);
    env.add_filter("trim", minijinja::filters::trim);
    env.add_filter("replace", minijinja::filters::replace);
    env.add_filter("length", minijinja::filters::length);
    env.add_filter("string", minijinja::filters::string);
    env.add_filter("int", minijinja::filters::int);
    env.add_filter("float", minijinja::filters::float);
    env.add_test("defined", minijinja::tests::is_defined);
    env.add_test("undefined", minijinja::tests::is_undefined);
    env.add_test("none", minijinja::tests::is_none);
    env
}

/// One templated value.
#[derive(Debug, Clone)]
enum Leaf {
    /// No template syntax: used as written.
    Literal(serde_json::Value),
    /// A text template, by name (its JSON pointer).
    Text(String),
    /// Exactly one `{{ expression }}`: the value keeps its type; undefined leaves it out.
    Expression { pointer: String, source: String },
}

/// A body template: JSON whose string leaves are templates.
#[derive(Debug, Clone)]
enum Node {
    Leaf(Leaf),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

#[derive(Debug, Clone)]
struct RequestShape {
    path: Leaf,
    path_pointer: String,
    query: Vec<(String, Leaf)>,
    headers: Vec<(String, Leaf)>,
    body: Option<Node>,
}

/// One query's request as written in YAML (already parsed into its parts).
pub struct RequestParts<'a> {
    /// JSON pointer of the query, e.g. `/queries/daily`.
    pub pointer: &'a str,
    pub path: &'a str,
    pub query: &'a BTreeMap<String, serde_json::Value>,
    pub headers: &'a BTreeMap<String, String>,
    pub body: Option<&'a serde_json::Value>,
}

/// A rendered request, before the URL is built and paging parameters are added.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedRequest {
    /// Appended to the base URL; printed values percent-encoded.
    pub path: String,
    /// Decoded text; the URL builder encodes it.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
}

/// A template that failed to render, with the JSON pointer of the template.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{pointer}: {message}")]
pub struct RenderError {
    pub pointer: String,
    pub message: String,
}

/// The compiled request templates of one `rest` source.
pub struct RequestTemplates {
    path_env: Environment<'static>,
    value_env: Environment<'static>,
    requests: BTreeMap<Dataset, RequestShape>,
}

impl fmt::Debug for RequestTemplates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestTemplates")
            .field("datasets", &self.requests.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Default for RequestTemplates {
    fn default() -> Self {
        RequestTemplates::new()
    }
}

/// Splits `{{ expr }}` out of a string that is exactly one expression.
fn single_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    let nested = ["{{", "}}", "{%", "%}", "{#", "#}"]
        .iter()
        .any(|marker| inner.contains(marker));
    (!nested && !inner.trim().is_empty()).then(|| inner.trim())
}

fn has_template_syntax(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

type Problems = Vec<(String, String)>;

impl RequestTemplates {
    pub fn new() -> RequestTemplates {
        RequestTemplates {
            path_env: environment(true),
            value_env: environment(false),
            requests: BTreeMap::new(),
        }
    }

    fn leaf(&mut self, pointer: &str, text: &str, in_path: bool, problems: &mut Problems) -> Leaf {
        if !has_template_syntax(text) {
            return Leaf::Literal(serde_json::Value::from(text));
        }
        if !in_path {
            if let Some(source) = single_expression(text) {
                if let Err(err) = self.value_env.compile_expression(source) {
                    problems.push((
                        pointer.to_owned(),
                        format!(
                            "the template does not compile: {}",
                            TemplateError::from(err)
                        ),
                    ));
                }
                return Leaf::Expression {
                    pointer: pointer.to_owned(),
                    source: source.to_owned(),
                };
            }
        }
        let env = if in_path {
            &mut self.path_env
        } else {
            &mut self.value_env
        };
        if let Err(err) = env.add_template_owned(pointer.to_owned(), text.to_owned()) {
            problems.push((
                pointer.to_owned(),
                format!(
                    "the template does not compile: {}",
                    TemplateError::from(err)
                ),
            ));
        }
        Leaf::Text(pointer.to_owned())
    }

    fn node(&mut self, pointer: &str, value: &serde_json::Value, problems: &mut Problems) -> Node {
        match value {
            serde_json::Value::String(text) => {
                Node::Leaf(self.leaf(pointer, text, false, problems))
            }
            serde_json::Value::Array(items) => Node::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.node(&format!("{pointer}/{i}"), item, problems))
                    .collect(),
            ),
            serde_json::Value::Object(map) => Node::Object(
                map.iter()
                    .map(|(key, item)| {
                        let child = format!("{pointer}/{}", escape_pointer(key));
                        (key.clone(), self.node(&child, item, problems))
                    })
                    .collect(),
            ),
            other => Node::Leaf(Leaf::Literal(other.clone())),
        }
    }

    /// Compiles one dataset's request. Returns the problems as (JSON pointer, message).
    pub fn add(&mut self, dataset: Dataset, parts: RequestParts<'_>) -> Problems {
        let mut problems = Vec::new();
        let pointer = parts.pointer;
        let path_pointer = format!("{pointer}/path");
        let path = self.leaf(&path_pointer, parts.path, true, &mut problems);
        let mut query = Vec::new();
        for (name, value) in parts.query {
            let leaf_pointer = format!("{pointer}/query/{}", escape_pointer(name));
            let leaf = match value {
                serde_json::Value::String(text) => {
                    self.leaf(&leaf_pointer, text, false, &mut problems)
                }
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
                    Leaf::Literal(serde_json::Value::from(value.to_string()))
                }
                _ => {
                    problems.push((
                        leaf_pointer,
                        "a query parameter is a string, number or boolean".to_owned(),
                    ));
                    continue;
                }
            };
            query.push((name.clone(), leaf));
        }
        let mut headers = Vec::new();
        for (name, value) in parts.headers {
            let leaf_pointer = format!("{pointer}/headers/{}", escape_pointer(name));
            headers.push((
                name.clone(),
                self.leaf(&leaf_pointer, value, false, &mut problems),
            ));
        }
        let body = parts
            .body
            .map(|body| self.node(&format!("{pointer}/body"), body, &mut problems));
        self.requests.insert(
            dataset,
            RequestShape {
                path,
                path_pointer,
                query,
                headers,
                body,
            },
        );
        problems
    }

    /// Every template of `dataset` may read only request parameters and declared filters,
    /// and must render for each of `samples` (with and without filters). Returns problems.
    pub fn check(
        &self,
        dataset: Dataset,
        declared_filters: &BTreeSet<String>,
        samples: &[QueryParams],
    ) -> Problems {
        let Some(shape) = self.requests.get(&dataset) else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        let mut leaves: Vec<(&Leaf, bool)> = vec![(&shape.path, true)];
        leaves.extend(shape.query.iter().map(|(_, leaf)| (leaf, false)));
        leaves.extend(shape.headers.iter().map(|(_, leaf)| (leaf, false)));
        if let Some(body) = &shape.body {
            body_leaves(body, &mut leaves);
        }
        for (leaf, in_path) in leaves {
            let (pointer, variables) = match leaf {
                Leaf::Literal(_) => continue,
                Leaf::Text(name) => {
                    let env = if in_path {
                        &self.path_env
                    } else {
                        &self.value_env
                    };
                    let Ok(template) = env.get_template(name) else {
                        continue;
                    };
                    (name.as_str(), template.undeclared_variables(true))
                }
                Leaf::Expression { pointer, source } => {
                    let Ok(expression) = self.value_env.compile_expression(source) else {
                        continue;
                    };
                    (pointer.as_str(), expression.undeclared_variables(true))
                }
            };
            let mut unknown: Vec<String> = variables
                .iter()
                .filter_map(|v| unknown_variable(v, declared_filters, &[]))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            unknown.sort();
            problems.extend(unknown.into_iter().map(|m| (pointer.to_owned(), m)));
        }
        if !problems.is_empty() {
            return problems;
        }
        for params in samples {
            if let Err(err) = self.render(dataset, params) {
                let when = if params.filters.is_empty() {
                    "for a request without filters"
                } else {
                    "for a request with every filter given"
                };
                problems.push((
                    err.pointer,
                    format!("the template fails to render {when}: {}", err.message),
                ));
                break;
            }
        }
        problems
    }

    /// Renders the request of `dataset` for `params`.
    pub fn render(
        &self,
        dataset: Dataset,
        params: &QueryParams,
    ) -> Result<RenderedRequest, RenderError> {
        let shape = self.requests.get(&dataset).ok_or_else(|| RenderError {
            pointer: format!("/queries/{dataset}"),
            message: "no request for this dataset".to_owned(),
        })?;
        let context = context(params);
        let path = match &shape.path {
            Leaf::Literal(text) => text.as_str().unwrap_or_default().to_owned(),
            Leaf::Text(name) => self.render_text(&self.path_env, name, &context)?,
            Leaf::Expression { .. } => unreachable!("paths are never single expressions"),
        };
        check_path(&path).map_err(|message| RenderError {
            pointer: shape.path_pointer.clone(),
            message,
        })?;
        let mut query = Vec::new();
        for (name, leaf) in &shape.query {
            if let Some(text) = self.render_scalar(leaf, &context)? {
                query.push((name.clone(), text));
            }
        }
        let mut headers = Vec::new();
        for (name, leaf) in &shape.headers {
            if let Some(text) = self.render_scalar(leaf, &context)? {
                if text.chars().any(|c| c.is_control() && c != '\t') {
                    return Err(RenderError {
                        pointer: leaf_pointer(leaf, name),
                        message:
                            "a header value may not contain line breaks or other control characters"
                                .to_owned(),
                    });
                }
                headers.push((name.clone(), text));
            }
        }
        let body = match &shape.body {
            None => None,
            Some(node) => Some(
                self.render_node(node, &context)?
                    .unwrap_or(serde_json::Value::Null),
            ),
        };
        Ok(RenderedRequest {
            path,
            query,
            headers,
            body,
        })
    }

    fn render_text(
        &self,
        env: &Environment<'static>,
        name: &str,
        context: &Value,
    ) -> Result<String, RenderError> {
        let failed = |err: Error| RenderError {
            pointer: name.to_owned(),
            message: TemplateError::from(err).to_string(),
        };
        env.get_template(name)
            .map_err(failed)?
            .render(context)
            .map_err(failed)
    }

    fn evaluate(&self, pointer: &str, source: &str, context: &Value) -> Result<Value, RenderError> {
        let failed = |err: Error| RenderError {
            pointer: pointer.to_owned(),
            message: TemplateError::from(err).to_string(),
        };
        // Compiled per render: an expression borrows its environment, so it cannot be
        // stored beside it, and parsing a one-line expression costs microseconds.
        self.value_env
            .compile_expression(source)
            .map_err(failed)?
            .eval(context)
            .map_err(failed)
    }

    /// Text of a query parameter or header; `None` leaves it out.
    fn render_scalar(&self, leaf: &Leaf, context: &Value) -> Result<Option<String>, RenderError> {
        match leaf {
            Leaf::Literal(serde_json::Value::String(text)) => Ok(Some(text.clone())),
            Leaf::Literal(other) => Ok(Some(other.to_string())),
            Leaf::Text(name) => self.render_text(&self.value_env, name, context).map(Some),
            Leaf::Expression { pointer, source } => {
                let value = self.evaluate(pointer, source, context)?;
                if value.is_undefined() || value.is_none() {
                    return Ok(None);
                }
                printable(&value).map(Some).map_err(|err| RenderError {
                    pointer: pointer.clone(),
                    message: TemplateError::from(err).to_string(),
                })
            }
        }
    }

    /// A body value; `None` when it is left out (an undefined single expression).
    fn render_node(
        &self,
        node: &Node,
        context: &Value,
    ) -> Result<Option<serde_json::Value>, RenderError> {
        Ok(Some(match node {
            Node::Leaf(Leaf::Literal(value)) => value.clone(),
            Node::Leaf(Leaf::Text(name)) => {
                serde_json::Value::from(self.render_text(&self.value_env, name, context)?)
            }
            Node::Leaf(Leaf::Expression { pointer, source }) => {
                let value = self.evaluate(pointer, source, context)?;
                if value.is_undefined() {
                    return Ok(None);
                }
                serde_json::to_value(&value).map_err(|err| RenderError {
                    pointer: pointer.clone(),
                    message: format!("the value cannot be written as JSON: {err}"),
                })?
            }
            Node::Array(items) => {
                let mut rendered = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(value) = self.render_node(item, context)? {
                        rendered.push(value);
                    }
                }
                serde_json::Value::Array(rendered)
            }
            Node::Object(fields) => {
                let mut rendered = serde_json::Map::new();
                for (key, item) in fields {
                    if let Some(value) = self.render_node(item, context)? {
                        rendered.insert(key.clone(), value);
                    }
                }
                serde_json::Value::Object(rendered)
            }
        }))
    }
}

fn body_leaves<'a>(node: &'a Node, out: &mut Vec<(&'a Leaf, bool)>) {
    match node {
        Node::Leaf(leaf) => out.push((leaf, false)),
        Node::Array(items) => items.iter().for_each(|item| body_leaves(item, out)),
        Node::Object(fields) => fields.iter().for_each(|(_, item)| body_leaves(item, out)),
    }
}

fn leaf_pointer(leaf: &Leaf, fallback: &str) -> String {
    match leaf {
        Leaf::Text(name) => name.clone(),
        Leaf::Expression { pointer, .. } => pointer.clone(),
        Leaf::Literal(_) => fallback.to_owned(),
    }
}

/// RFC 6901: `~` and `/` inside a key.
fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// A rendered path: empty or starting with `/`, no query or fragment (those are `query:`),
/// and no `.`/`..` segments, which URL parsers resolve, in any spelling.
fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Ok(());
    }
    if !path.starts_with('/') {
        return Err(format!(
            "the path must start with `/` (it is appended to base_url), not `{path}`"
        ));
    }
    if path.contains(['?', '#']) {
        return Err(
            "the path may not hold `?` or `#`: put query parameters under `query:`".to_owned(),
        );
    }
    if path.chars().any(char::is_control) {
        return Err("the path may not hold control characters".to_owned());
    }
    let dot_segment = path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    });
    if dot_segment {
        return Err("the path may not hold `.` or `..` segments".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FilterValue;
    use chrono::NaiveDate;
    use serde_json::json;

    const HOSTILE: &str = "acme/../admin?x=1&y=2#frag \"quoted\" %41";

    fn params(client: Option<&str>) -> QueryParams {
        let mut params = QueryParams::between(
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
        );
        if let Some(client) = client {
            params
                .filters
                .insert("client".into(), FilterValue::Text(client.into()));
        }
        params
    }

    fn compile(
        path: &str,
        query: serde_json::Value,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> (RequestTemplates, Problems) {
        let query: BTreeMap<String, serde_json::Value> = serde_json::from_value(query).unwrap();
        let headers: BTreeMap<String, String> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut templates = RequestTemplates::new();
        let problems = templates.add(
            Dataset::Daily,
            RequestParts {
                pointer: "/queries/daily",
                path,
                query: &query,
                headers: &headers,
                body: body.as_ref(),
            },
        );
        (templates, problems)
    }

    #[test]
    fn path_values_are_percent_encoded_as_segments() {
        let (t, problems) = compile(
            "/stats/{{ filters.client | default('all') }}/daily-{{ days }}",
            json!({}),
            &[],
            None,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let rendered = t.render(Dataset::Daily, &params(Some(HOSTILE))).unwrap();
        assert_eq!(
            rendered.path,
            "/stats/acme%2F..%2Fadmin%3Fx%3D1%26y%3D2%23frag%20%22quoted%22%20%2541/daily-30"
        );
        assert_eq!(
            t.render(Dataset::Daily, &params(None)).unwrap().path,
            "/stats/all/daily-30"
        );
    }

    #[test]
    fn dot_segments_from_values_are_refused() {
        let (t, _) = compile("/stats/{{ filters.client }}", json!({}), &[], None);
        for value in ["..", "."] {
            let err = t.render(Dataset::Daily, &params(Some(value))).unwrap_err();
            assert!(err.message.contains("`..` segments"), "{value}: {err}");
        }
    }

    #[test]
    fn query_values_are_text_and_single_expressions_drop_out_when_undefined() {
        let (t, problems) = compile(
            "/events",
            json!({"from": "{{ start_date }}", "to": "{{ end_date | yyyymmdd }}",
                   "client": "{{ filters.client }}", "limit": 100, "raw": true,
                   "since": "{{ start_date | timestamp }}",
                   "label": "c={{ filters.client | default('-') }}"}),
            &[],
            None,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let rendered = t.render(Dataset::Daily, &params(None)).unwrap();
        assert_eq!(
            rendered.query,
            vec![
                ("from".into(), "2026-01-01".into()),
                ("label".into(), "c=-".into()),
                ("limit".into(), "100".into()),
                ("raw".into(), "true".into()),
                ("since".into(), "1767225600".into()),
                ("to".into(), "20260131".into()),
            ]
        );
        let rendered = t.render(Dataset::Daily, &params(Some(HOSTILE))).unwrap();
        assert!(rendered
            .query
            .contains(&("client".to_owned(), HOSTILE.to_owned())));
    }

    #[test]
    fn bodies_are_built_as_data() {
        let (t, problems) = compile(
            "/search",
            json!({}),
            &[],
            Some(json!({
                "filter": {"from": "{{ start_date }}", "days": "{{ days }}",
                           "client": "{{ filters.client }}",
                           "label": "client {{ filters.client | default('any') }}"},
                "limit": 1000, "flags": [true, "{{ days > 7 }}"],
                "at": "{{ start_date | strftime('%Y-%m-%dT%H:%M:%SZ') }}"
            })),
        );
        assert!(problems.is_empty(), "{problems:?}");
        let body = t
            .render(Dataset::Daily, &params(Some(HOSTILE)))
            .unwrap()
            .body
            .unwrap();
        assert_eq!(
            body,
            json!({
                "filter": {"from": "2026-01-01", "days": 30, "client": HOSTILE,
                           "label": format!("client {HOSTILE}")},
                "limit": 1000, "flags": [true, true], "at": "2026-01-01T00:00:00Z"
            })
        );
        // JSON-escaped on the wire, never spliced into the text.
        let wire = serde_json::to_string(&body).unwrap();
        assert!(wire.contains(r#"\"quoted\""#), "{wire}");
        let body = t
            .render(Dataset::Daily, &params(None))
            .unwrap()
            .body
            .unwrap();
        assert_eq!(body["filter"].get("client"), None);
    }

    #[test]
    fn headers_with_line_breaks_are_refused() {
        let (t, problems) = compile(
            "/x",
            json!({}),
            &[
                ("X-Tenant", "{{ filters.client }}"),
                ("X-Mixed", "t-{{ days }}"),
            ],
            None,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let rendered = t.render(Dataset::Daily, &params(Some("acme"))).unwrap();
        assert_eq!(
            rendered.headers,
            vec![
                ("X-Mixed".into(), "t-30".into()),
                ("X-Tenant".into(), "acme".into())
            ]
        );
        let err = t
            .render(Dataset::Daily, &params(Some("a\r\nX-Evil: 1")))
            .unwrap_err();
        assert_eq!(err.pointer, "/queries/daily/headers/X-Tenant");
    }

    #[test]
    fn validation_names_undeclared_filters_and_unguarded_values() {
        let declared = BTreeSet::from(["client".to_owned()]);
        let samples = crate::kinds::sample_params(&BTreeMap::from([(
            "client".to_owned(),
            crate::config::FilterSpec::Text { max_length: 10 },
        )]));
        let (t, _) = compile(
            "/x/{{ filters.region }}",
            json!({"q": "{{ tenant }}"}),
            &[],
            None,
        );
        let problems = t.check(Dataset::Daily, &declared, &samples);
        assert!(
            problems
                .iter()
                .any(|(p, m)| p == "/queries/daily/path" && m.contains("filters.region")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|(p, m)| p == "/queries/daily/query/q" && m.contains("`tenant`")),
            "{problems:?}"
        );

        // Printing an optional filter into the path fails for a request without it.
        let (t, _) = compile("/x/{{ filters.client }}", json!({}), &[], None);
        let problems = t.check(Dataset::Daily, &declared, &samples);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].1.contains("without filters"), "{problems:?}");
        assert!(problems[0].1.contains("undefined"), "{problems:?}");

        let (_, problems) = compile("/x/{{ days", json!({}), &[], None);
        assert!(problems[0].1.contains("does not compile"), "{problems:?}");
        let (t, _) = compile("/x?page=1", json!({}), &[], None);
        let problems = t.check(Dataset::Daily, &declared, &samples);
        assert!(problems[0].1.contains("under `query:`"), "{problems:?}");
    }
}
