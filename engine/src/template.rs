//! Query templates: minijinja SQL in which request values can reach the text only as
//! driver bind placeholders.
//!
//! Printing anything with `{{ ... }}` goes through a formatter that accepts only strings
//! this module itself marked safe: the placeholders `bind()` emits and the identifiers
//! `ident()` let through from the source's allowlist. Any other printed value, above all a
//! request value, is a render error, which validation turns into a config error at start-up.
//! The environment starts empty, so Jinja's `safe`/`escape` filters, which would mark
//! arbitrary text safe, do not exist here.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::Arc;

use chrono::NaiveDate;
use minijinja::value::{Object, ObjectRepr};
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};

use crate::model::{FilterValue, QueryParams};

/// How the target driver spells a bind parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// PostgreSQL: `$1`, `$2`, ...
    Numbered,
    /// SQLite: `?` in order of appearance.
    Question,
    /// BigQuery named query parameters: `@p1`, `@p2`, ...
    Named,
}

/// A value bound to a placeholder, typed so the driver sends the right parameter type.
#[derive(Debug, Clone, PartialEq)]
pub enum BindValue {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Date(NaiveDate),
}

/// SQL text with placeholders, and the values for them in order.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedQuery {
    pub sql: String,
    pub binds: Vec<BindValue>,
}

/// Why a template could not be compiled or rendered.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

impl From<minijinja::Error> for TemplateError {
    fn from(err: minijinja::Error) -> Self {
        // `{:#}` would add the template source excerpt; the one-line form plus the
        // detail keeps the message fit for a config report.
        let mut message = match err.detail() {
            Some(detail) => format!("{}: {}", err.kind(), detail),
            None => err.kind().to_string(),
        };
        if let Some(line) = err.line() {
            message.push_str(&format!(" (template line {line})"));
        }
        TemplateError(message)
    }
}

/// Names a template may read besides `filters.NAME`.
const PARAMETERS: [&str; 3] = ["days", "start_date", "end_date"];
/// Globals this module defines, which `undeclared_variables` reports like variables.
const GLOBALS: [&str; 2] = ["bind", "ident"];

thread_local! {
    /// Values bound during the render running on this thread. Rendering is synchronous,
    /// so the render that set it is the only reader until it takes the values back.
    static BINDS: RefCell<Vec<BindValue>> = const { RefCell::new(Vec::new()) };
}

/// A date request value: printed `YYYY-MM-DD`, and an object so `bind()` knows to send
/// a DATE and the REST date filters know it is one.
#[derive(Debug)]
struct RequestDate(NaiveDate);

impl Object for RequestDate {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

fn date_value(date: NaiveDate) -> Value {
    Value::from_object(RequestDate(date))
}

/// What every query template sees of a request: `days`, `start_date`, `end_date` (dates)
/// and `filters.NAME`.
pub(crate) fn request_context(params: &QueryParams) -> Value {
    request_values(params, date_value)
}

/// A request's parameters as template values, each date (the window's and date filters)
/// written by `date`.
pub(crate) fn request_values(params: &QueryParams, date: fn(NaiveDate) -> Value) -> Value {
    let filters: BTreeMap<&str, Value> = params
        .filters
        .iter()
        .map(|(name, value)| {
            let value = match value {
                FilterValue::Text(text) => Value::from(text.as_str()),
                FilterValue::Integer(number) => Value::from(*number),
                FilterValue::Date(day) => date(*day),
            };
            (name.as_str(), value)
        })
        .collect();
    minijinja::context! {
        days => params.days,
        start_date => date(params.start_date),
        end_date => date(params.end_date),
        filters => filters,
    }
}

/// The compiled query templates of one source.
pub struct QueryTemplates {
    env: Environment<'static>,
    /// Names of the connection identifiers ([`QueryTemplates::with_connection_identifiers`]),
    /// which templates read like variables.
    connection_names: Vec<&'static str>,
}

impl fmt::Debug for QueryTemplates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryTemplates").finish_non_exhaustive()
    }
}

impl QueryTemplates {
    /// An environment for one source: its placeholder style and identifier allowlist.
    pub fn new(placeholder: Placeholder, identifiers: BTreeSet<String>) -> QueryTemplates {
        QueryTemplates::with_connection_identifiers(placeholder, identifiers, BTreeMap::new())
    }

    /// Like [`QueryTemplates::new`], plus identifiers a kind derives from its connection
    /// (bigquery: `project` and `dataset`). Each is a template variable holding the
    /// configured name, which the allowlist of `ident()` also holds: `{{ ident(project) }}`
    /// writes it, while `{{ project }}` is refused like any other printed value. So a
    /// template can name a table fully qualified without pasting configuration into the
    /// SQL by hand, and the kind's own checks on those names are what lets them through.
    pub fn with_connection_identifiers(
        placeholder: Placeholder,
        mut identifiers: BTreeSet<String>,
        connection: BTreeMap<&'static str, String>,
    ) -> QueryTemplates {
        let mut env = Environment::empty();
        let connection_names = connection.keys().copied().collect();
        for (name, value) in connection {
            identifiers.insert(value.clone());
            env.add_global(name, Value::from(value));
        }
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_keep_trailing_newline(true);
        env.set_formatter(|out, _state, value| {
            if value.is_safe() {
                if let Some(text) = value.as_str() {
                    return out.write_str(text).map_err(|_| {
                        minijinja::Error::new(ErrorKind::WriteFailure, "write failed")
                    });
                }
            }
            Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                "values cannot be printed into SQL: wrap request values in bind(...), \
                 and vary identifiers only through ident(...) over the source's `identifiers`",
            ))
        });
        env.add_function(
            "bind",
            move |value: Value| -> Result<Value, minijinja::Error> {
                let bound = to_bind_value(&value)?;
                let index = BINDS.with(|binds| {
                    let mut binds = binds.borrow_mut();
                    binds.push(bound);
                    binds.len()
                });
                Ok(Value::from_safe_string(match placeholder {
                    Placeholder::Numbered => format!("${index}"),
                    Placeholder::Question => "?".to_owned(),
                    Placeholder::Named => format!("@p{index}"),
                }))
            },
        );
        env.add_function("ident", move |value: Value| -> Result<Value, minijinja::Error> {
            match value.as_str() {
                Some(name) if identifiers.contains(name) => Ok(Value::from_safe_string(name.to_owned())),
                _ => Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("ident() got a value that is not in this source's `identifiers` allowlist ({value:?})"),
                )),
            }
        });
        env.add_filter(
            "yyyymmdd",
            |value: Value| -> Result<Value, minijinja::Error> {
                match as_date(&value) {
                    Some(date) => Ok(Value::from(date.format("%Y%m%d").to_string())),
                    None => Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        "yyyymmdd expects a date such as start_date or end_date",
                    )),
                }
            },
        );
        // Harmless helpers: none of them marks text safe.
        env.add_filter("default", minijinja::filters::default);
        env.add_filter("lower", minijinja::filters::lower);
        env.add_filter("upper", minijinja::filters::upper);
        env.add_filter("length", minijinja::filters::length);
        env.add_filter("trim", minijinja::filters::trim);
        env.add_test("defined", minijinja::tests::is_defined);
        env.add_test("undefined", minijinja::tests::is_undefined);
        env.add_test("none", minijinja::tests::is_none);
        QueryTemplates {
            env,
            connection_names,
        }
    }

    /// Compiles a template under `name`.
    pub fn add(&mut self, name: &str, source: &str) -> Result<(), TemplateError> {
        self.env
            .add_template_owned(name.to_owned(), source.to_owned())
            .map_err(TemplateError::from)
    }

    /// Renders `name` for `params`: SQL with placeholders plus the values to bind.
    pub fn render(&self, name: &str, params: &QueryParams) -> Result<RenderedQuery, TemplateError> {
        let template = self.env.get_template(name)?;
        let context = request_context(params);
        BINDS.with(|binds| binds.borrow_mut().clear());
        let rendered = template.render(context);
        let binds = BINDS.with(|binds| std::mem::take(&mut *binds.borrow_mut()));
        Ok(RenderedQuery {
            sql: rendered?,
            binds,
        })
    }

    /// Checks what the template reads: only the request parameters and declared filters.
    /// Returns one message per unknown name.
    pub fn check_variables(&self, name: &str, declared_filters: &BTreeSet<String>) -> Vec<String> {
        let Ok(template) = self.env.get_template(name) else {
            return Vec::new();
        };
        let globals: Vec<&str> = GLOBALS
            .iter()
            .chain(&self.connection_names)
            .copied()
            .collect();
        let mut problems: Vec<String> = template
            .undeclared_variables(true)
            .into_iter()
            .filter_map(|variable| unknown_variable(&variable, declared_filters, &globals))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        problems.sort();
        problems
    }
}

/// `None` when `variable` is a request parameter, a declared filter or one of `globals`
/// (the functions the template environment defines).
pub(crate) fn unknown_variable(
    variable: &str,
    declared: &BTreeSet<String>,
    globals: &[&str],
) -> Option<String> {
    let mut parts = variable.split('.');
    let head = parts.next().unwrap_or_default();
    if PARAMETERS.contains(&head) || globals.contains(&head) {
        return None;
    }
    if head == "filters" {
        return match parts.next() {
            None => None,
            Some(filter) if declared.contains(filter) => None,
            Some(filter) => Some(format!(
                "the template uses filters.{filter}, which is not declared: add `{filter}` under `filters:` with its type, or remove it from the template"
            )),
        };
    }
    Some(format!(
        "the template uses `{variable}`, which is not a request parameter: templates can read days, start_date, end_date and filters.NAME"
    ))
}

/// A request date, or a `YYYY-MM-DD` string, as a date.
pub(crate) fn as_date(value: &Value) -> Option<NaiveDate> {
    if let Some(date) = value.downcast_object_ref::<RequestDate>() {
        return Some(date.0);
    }
    value
        .as_str()
        .and_then(|text| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
}

fn to_bind_value(value: &Value) -> Result<BindValue, minijinja::Error> {
    use minijinja::value::ValueKind;
    if let Some(date) = value.downcast_object_ref::<RequestDate>() {
        return Ok(BindValue::Date(date.0));
    }
    let bound = match value.kind() {
        ValueKind::String => value.as_str().map(|s| BindValue::Text(s.to_owned())),
        ValueKind::Bool => Some(BindValue::Bool(value.is_true())),
        ValueKind::Number => match value.as_i64() {
            Some(number) => Some(BindValue::Integer(number)),
            None => f64::try_from(value.clone()).ok().map(BindValue::Float),
        },
        ValueKind::Undefined | ValueKind::None => {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                "bind() got an undefined value: guard optional filters with {% if filters.NAME is defined %}",
            ))
        }
        _ => None,
    };
    bound.ok_or_else(|| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "bind() takes a string, number, boolean or date, not {}",
                value.kind()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> QueryParams {
        let mut params = QueryParams::between(
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
        );
        params.filters.insert(
            "client".into(),
            FilterValue::Text("x'; DROP TABLE events; --".into()),
        );
        params
    }

    fn templates(placeholder: Placeholder, source: &str) -> QueryTemplates {
        let mut t = QueryTemplates::new(placeholder, BTreeSet::from(["events".to_owned()]));
        t.add("q", source).unwrap();
        t
    }

    #[test]
    fn bind_emits_numbered_placeholders_and_records_typed_values() {
        let t = templates(
            Placeholder::Numbered,
            "SELECT 1 WHERE d >= {{ bind(start_date) }} AND s <= {{ bind(end_date | yyyymmdd) }} \
             AND c = {{ bind(filters.client) }} AND n = {{ bind(days) }}",
        );
        let q = t.render("q", &params()).unwrap();
        assert_eq!(
            q.sql,
            "SELECT 1 WHERE d >= $1 AND s <= $2 AND c = $3 AND n = $4"
        );
        assert_eq!(
            q.binds,
            vec![
                BindValue::Date(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()),
                BindValue::Text("20260131".into()),
                BindValue::Text("x'; DROP TABLE events; --".into()),
                BindValue::Integer(30),
            ]
        );
    }

    #[test]
    fn sqlite_uses_question_marks_and_binds_reset_per_render() {
        let t = templates(
            Placeholder::Question,
            "a = {{ bind(days) }} AND b = {{ bind(days) }}",
        );
        assert_eq!(t.render("q", &params()).unwrap().sql, "a = ? AND b = ?");
        assert_eq!(t.render("q", &params()).unwrap().binds.len(), 2);
    }

    #[test]
    fn printing_a_request_value_is_refused() {
        for source in [
            "{{ filters.client }}",
            "{{ start_date }}",
            "{{ days }}",
            "{{ 'literal' }}",
            "{{ bind(days) ~ filters.client }}",
            "{{ filters.client | upper }}",
        ] {
            let t = templates(Placeholder::Numbered, source);
            let err = t.render("q", &params()).unwrap_err().to_string();
            assert!(err.contains("bind("), "{source}: {err}");
        }
    }

    #[test]
    fn safe_marking_filters_do_not_exist() {
        for source in ["{{ filters.client | safe }}", "{{ filters.client | e }}"] {
            let mut t = QueryTemplates::new(Placeholder::Numbered, BTreeSet::new());
            let err = match t.add("q", source) {
                Err(err) => err.to_string(),
                Ok(()) => t.render("q", &params()).unwrap_err().to_string(),
            };
            assert!(err.contains("unknown filter"), "{source}: {err}");
        }
    }

    #[test]
    fn ident_only_passes_allowlisted_names() {
        let t = templates(Placeholder::Numbered, "ORDER BY {{ ident('events') }}");
        assert_eq!(t.render("q", &params()).unwrap().sql, "ORDER BY events");
        let t = templates(
            Placeholder::Numbered,
            "ORDER BY {{ ident(filters.client) }}",
        );
        assert!(t
            .render("q", &params())
            .unwrap_err()
            .to_string()
            .contains("allowlist"));
    }

    #[test]
    fn connection_identifiers_pass_ident_but_are_not_printable() {
        let connection = BTreeMap::from([
            ("project", "web-app-1".to_owned()),
            ("dataset", "analytics_1".to_owned()),
        ]);
        let mut t = QueryTemplates::with_connection_identifiers(
            Placeholder::Named,
            BTreeSet::new(),
            connection,
        );
        t.add(
            "q",
            "FROM `{{ ident(project) }}.{{ ident(dataset) }}.events_*`",
        )
        .unwrap();
        t.add("printed", "FROM {{ project }}").unwrap();
        t.add("other", "FROM {{ ident('analytics_2') }}").unwrap();
        assert_eq!(
            t.render("q", &params()).unwrap().sql,
            "FROM `web-app-1.analytics_1.events_*`"
        );
        assert!(t.check_variables("q", &BTreeSet::new()).is_empty());
        let err = t.render("printed", &params()).unwrap_err().to_string();
        assert!(err.contains("bind("), "{err}");
        let err = t.render("other", &params()).unwrap_err().to_string();
        assert!(err.contains("allowlist"), "{err}");
    }

    #[test]
    fn optional_filters_render_only_when_given() {
        let t = templates(
            Placeholder::Numbered,
            "x{% if filters.client is defined %} AND c = {{ bind(filters.client) }}{% endif %}",
        );
        let mut p = params();
        assert_eq!(t.render("q", &p).unwrap().sql, "x AND c = $1");
        p.filters.clear();
        let q = t.render("q", &p).unwrap();
        assert_eq!((q.sql.as_str(), q.binds.len()), ("x", 0));
    }

    #[test]
    fn undeclared_filters_and_unknown_variables_are_named() {
        let t = templates(
            Placeholder::Numbered,
            "{{ bind(filters.client) }} {{ bind(filters.region) }} {{ bind(tenant) }}",
        );
        let problems = t.check_variables("q", &BTreeSet::from(["client".to_owned()]));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("filters.region")));
        assert!(problems.iter().any(|p| p.contains("`tenant`")));
    }
}
