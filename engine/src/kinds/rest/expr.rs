//! Record expressions of `kind: rest`: the minijinja expressions of `where:`, `compute:`
//! and `classify.from`, over `record` (one raw record) and the request parameters (`days`,
//! `start_date`, `end_date`, `filters.NAME`).
//!
//! Every expression is compiled in one process-wide environment that knows only the
//! filters listed in [`FILTERS`] (no globals: expressions never see configuration or
//! secrets), and kept compiled with its source. Each is checked when the file loads: its
//! syntax, every name it reads and every filter and test it applies; evaluation then
//! cannot meet an unknown name. Each evaluation runs with a fuel limit, so a pathological
//! expression fails its dataset instead of stalling the hub.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex};

use chrono::{DateTime, NaiveDate};
use minijinja::value::{Enumerator, Object, ObjectRepr, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Expression, UndefinedBehavior, Value};
use regex::Regex;

use crate::mapping::coerce_date;
use crate::template::{request_values, unknown_variable};

/// Instructions one evaluation may run.
const FUEL: u64 = 20_000;
/// Distinct regular expressions kept compiled (the patterns are literals of the loaded
/// files' expressions, so this bounds a cache that is normally never full).
const MAX_REGEXES: usize = 256;

/// The filters expressions may apply, and the tests (`x is defined`).
pub const FILTERS: &[&str] = &[
    "regex_capture",
    "regex_match",
    "url_host",
    "url_path",
    "date",
    "lower",
    "upper",
    "trim",
    "default",
    "length",
    "int",
    "float",
    "replace",
    "split",
    "first",
    "last",
    "join",
    "round",
    "abs",
];
const TESTS: &[&str] = &[
    "defined",
    "undefined",
    "none",
    "number",
    "string",
    "mapping",
    "boolean",
    "startingwith",
    "endingwith",
    "in",
];
/// Request parameters an expression may read besides `record` and `filters.NAME`.
const ROOTS: &[&str] = &["record", "days", "start_date", "end_date", "filters"];

/// The environment every expression is compiled in.
static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::empty();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_fuel(Some(FUEL));
    add_filters(&mut env);
    env
});

/// One compiled expression of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExprId(usize);

/// The expressions of one source.
#[derive(Default)]
pub struct Expressions {
    compiled: Vec<Expression<'static, 'static>>,
    sources: Vec<String>,
}

impl std::fmt::Debug for Expressions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expressions")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl Expressions {
    pub fn new() -> Expressions {
        Expressions::default()
    }

    /// Checks and compiles `source`; the problem, worded for a config report, otherwise.
    /// `declared` are the source's request filters.
    pub fn add(&mut self, source: &str, declared: &BTreeSet<String>) -> Result<ExprId, String> {
        let expression = ENV
            .compile_expression_owned(source.to_owned())
            .map_err(|err| format!("not a valid expression: {}", describe(&err)))?;
        let mut problems: Vec<String> = expression
            .undeclared_variables(true)
            .into_iter()
            .filter_map(|name| unknown_name(&name, declared))
            .collect();
        problems.sort();
        problems.extend(unknown_filters(source));
        problems.extend(bad_regexes(source));
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let id = ExprId(self.sources.len());
        self.compiled.push(expression);
        self.sources.push(source.to_owned());
        Ok(id)
    }

    /// The expression's text, for messages.
    pub fn source(&self, id: ExprId) -> &str {
        &self.sources[id.0]
    }

    /// Evaluates `id` in `context` (a [`RecordContext::value`]).
    pub fn eval(&self, id: ExprId, context: &Value) -> Result<Value, String> {
        self.compiled[id.0]
            .eval(context)
            .map_err(|err| describe(&err))
    }

    /// Whether `id` holds for the record in `context`: Jinja truthiness.
    pub fn holds(&self, id: ExprId, context: &Value) -> Result<bool, String> {
        self.eval(id, context).map(|value| value.is_true())
    }

    /// The request parameters as expressions read them: `days`, `start_date` and
    /// `end_date` (`YYYY-MM-DD` strings, so they compare with `record.x | date`) and
    /// `filters.NAME` (dates as the same strings).
    pub fn request(params: &crate::model::QueryParams) -> Value {
        request_values(params, |date| Value::from(date.to_string()))
    }

    /// What an expression sees: `record` (its fields, with those added by
    /// [`RecordContext::add`] in front) and the request's parameters in `request` (from
    /// [`Expressions::request`]). One per record, however many expressions read it.
    pub fn context(
        record: &Arc<serde_json::Map<String, serde_json::Value>>,
        request: &Value,
    ) -> RecordContext {
        let view = Arc::new(RecordView {
            base: record.clone(),
            added: Mutex::default(),
        });
        let value = minijinja::context! { record => Value::from_dyn_object(view.clone()), ..request.clone() };
        RecordContext { view, value }
    }
}

/// One record's evaluation context, and the fields computed for it so far.
pub struct RecordContext {
    view: Arc<RecordView>,
    value: Value,
}

impl RecordContext {
    /// The context expressions are evaluated in.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Adds a computed field that later expressions read as `record.NAME`.
    pub fn add(&self, name: String, value: serde_json::Value) {
        self.view.added().push((name, value));
    }

    /// The computed fields, in order.
    pub fn into_added(self) -> Vec<(String, serde_json::Value)> {
        std::mem::take(&mut *self.view.added())
    }
}

/// A record as expressions see it: its fields, with those added so far in front, each
/// converted to a template value only when read.
#[derive(Debug)]
struct RecordView {
    base: Arc<serde_json::Map<String, serde_json::Value>>,
    added: Mutex<Vec<(String, serde_json::Value)>>,
}

impl RecordView {
    fn added(&self) -> std::sync::MutexGuard<'_, Vec<(String, serde_json::Value)>> {
        self.added
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Object for RecordView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        let added = self.added();
        let found = added
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value)
            .or_else(|| self.base.get(key))?;
        Some(from_json(found))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let added = self.added();
        let mut keys: Vec<Value> = self
            .base
            .keys()
            .filter(|key| !added.iter().any(|(name, _)| name == *key))
            .map(|key| Value::from(key.as_str()))
            .collect();
        keys.extend(added.iter().map(|(name, _)| Value::from(name.as_str())));
        Enumerator::Values(keys)
    }
}

/// A JSON value as expressions read it; scalars directly, without serde's machinery
/// (this runs for every field an expression reads of every record).
pub fn from_json(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(flag) => Value::from(*flag),
        serde_json::Value::String(text) => Value::from(text.as_str()),
        serde_json::Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(signed), _) => Value::from(signed),
            (None, Some(unsigned)) => Value::from(unsigned),
            _ => Value::from(number.as_f64().unwrap_or(f64::NAN)),
        },
        nested => Value::from_serialize(nested),
    }
}

/// The one-line text of a minijinja error.
fn describe(err: &Error) -> String {
    match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    }
}

fn unknown_name(name: &str, declared: &BTreeSet<String>) -> Option<String> {
    let head = name.split('.').next().unwrap_or_default();
    if !ROOTS.contains(&head) {
        return Some(format!(
            "the expression reads `{name}`, which is neither the record nor a request parameter: expressions read record.FIELD, days, start_date, end_date and filters.NAME"
        ));
    }
    if head == "filters" {
        return unknown_variable(name, declared, &[]);
    }
    None
}

/// The names after `|` (filters) and after `is` / `is not` (tests) outside string
/// literals, that this environment does not define.
fn unknown_filters(source: &str) -> Vec<String> {
    let words = words(source);
    let mut problems = Vec::new();
    for (at, word) in words.iter().enumerate() {
        let previous = at.checked_sub(1).map(|i| words[i].as_str());
        let before = at.checked_sub(2).map(|i| words[i].as_str());
        let is_filter = previous == Some("|");
        let is_test = previous == Some("is") || (previous == Some("not") && before == Some("is"));
        if word == "not" && previous == Some("is") {
            continue;
        }
        if is_filter && !FILTERS.contains(&word.as_str()) {
            problems.push(format!(
                "unknown filter `{word}`: expressions may use {}",
                FILTERS.join(", ")
            ));
        }
        if is_test && !TESTS.contains(&word.as_str()) {
            problems.push(format!(
                "unknown test `{word}`: expressions may use is {}",
                TESTS.join(", is ")
            ));
        }
    }
    problems
}

/// Identifiers and `|` of `source`, in order, string literals skipped (their text becomes
/// one `'` token so that `regex_capture('...')` is seen as a call with a literal).
fn words(source: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = source.chars().peekable();
    let mut after_dot = false;
    while let Some(c) = chars.next() {
        let dot = c == '.';
        if c == '\'' || c == '"' {
            let mut text = String::new();
            while let Some(next) = chars.next() {
                match next {
                    '\\' => {
                        if let Some(escaped) = chars.next() {
                            text.push('\\');
                            text.push(escaped);
                        }
                    }
                    quote if quote == c => break,
                    other => text.push(other),
                }
            }
            words.push(format!("'{text}"));
        } else if c.is_alphabetic() || c == '_' {
            let mut word = c.to_string();
            while let Some(&next) = chars.peek() {
                if next.is_alphanumeric() || next == '_' {
                    word.push(next);
                    chars.next();
                } else {
                    break;
                }
            }
            // An attribute (`record.is`) is a name in the record, never a filter or test.
            if after_dot {
                words.push(".".to_owned());
            } else {
                words.push(word);
            }
        } else if c == '|' || c == '(' {
            words.push(c.to_string());
        }
        if !c.is_whitespace() {
            after_dot = dot;
        }
    }
    words
}

/// Literal patterns given to `regex_capture` / `regex_match` that do not compile.
fn bad_regexes(source: &str) -> Vec<String> {
    let words = words(source);
    words
        .windows(3)
        .filter(|w| (w[0] == "regex_capture" || w[0] == "regex_match") && w[1] == "(")
        .filter_map(|w| w[2].strip_prefix('\''))
        .filter_map(|pattern| {
            let pattern = unescape(pattern);
            Regex::new(&pattern)
                .err()
                .map(|err| format!("`{pattern}` is not a valid regular expression: {err}"))
        })
        .collect()
}

/// A string literal's text as minijinja reads it (`\\` -> `\`, `\'` -> `'`).
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn add_filters(env: &mut Environment<'static>) {
    let regexes: Arc<Mutex<HashMap<String, Regex>>> = Arc::default();
    let cache = regexes.clone();
    env.add_filter(
        "regex_capture",
        move |value: Value, pattern: &str, group: Option<usize>| -> Result<Value, Error> {
            let Some(text) = value.as_str() else {
                return Ok(Value::from(()));
            };
            let regex = compiled(&cache, pattern)?;
            let captured = regex
                .captures(text)
                .and_then(|c| c.get(group.unwrap_or(1)))
                .map(|m| m.as_str().to_owned());
            Ok(captured.map_or(Value::from(()), Value::from))
        },
    );
    env.add_filter(
        "regex_match",
        move |value: Value, pattern: &str| -> Result<bool, Error> {
            let regex = compiled(&regexes, pattern)?;
            Ok(value.as_str().is_some_and(|text| regex.is_match(text)))
        },
    );
    env.add_filter("url_host", |value: Value| {
        url_part(&value, |url| url.host_str().map(str::to_owned))
    });
    env.add_filter("url_path", |value: Value| {
        url_part(&value, |url| Some(url.path().to_owned()))
    });
    env.add_filter("date", |value: Value| {
        // NaiveDate's Display is YYYY-MM-DD, without strftime's per-call parsing.
        day(&value).map_or(Value::from(()), |d| Value::from(d.to_string()))
    });
    env.add_filter("lower", minijinja::filters::lower);
    env.add_filter("upper", minijinja::filters::upper);
    env.add_filter("trim", minijinja::filters::trim);
    env.add_filter("default", minijinja::filters::default);
    env.add_filter("length", minijinja::filters::length);
    env.add_filter("int", minijinja::filters::int);
    env.add_filter("float", minijinja::filters::float);
    env.add_filter("replace", minijinja::filters::replace);
    env.add_filter("split", minijinja::filters::split);
    env.add_filter("first", minijinja::filters::first);
    env.add_filter("last", minijinja::filters::last);
    env.add_filter("join", minijinja::filters::join);
    env.add_filter("round", minijinja::filters::round);
    env.add_filter("abs", minijinja::filters::abs);
    env.add_test("defined", minijinja::tests::is_defined);
    env.add_test("undefined", minijinja::tests::is_undefined);
    env.add_test("none", minijinja::tests::is_none);
    env.add_test("number", minijinja::tests::is_number);
    env.add_test("string", minijinja::tests::is_string);
    env.add_test("mapping", minijinja::tests::is_mapping);
    env.add_test("boolean", minijinja::tests::is_boolean);
    env.add_test("startingwith", minijinja::tests::is_startingwith);
    env.add_test("endingwith", minijinja::tests::is_endingwith);
    env.add_test("in", minijinja::tests::is_in);
}

fn compiled(cache: &Mutex<HashMap<String, Regex>>, pattern: &str) -> Result<Regex, Error> {
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(regex) = cache.get(pattern) {
        return Ok(regex.clone());
    }
    let regex = Regex::new(pattern).map_err(|err| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("`{pattern}` is not a valid regular expression: {err}"),
        )
    })?;
    if cache.len() >= MAX_REGEXES {
        cache.clear();
    }
    cache.insert(pattern.to_owned(), regex.clone());
    Ok(regex)
}

/// A part of a URL (absolute, or a path with its query, as analytics exports give them);
/// none when the value is not one.
fn url_part(value: &Value, part: impl Fn(&url::Url) -> Option<String>) -> Value {
    let Some(text) = value.as_str() else {
        return Value::from(());
    };
    let base = url::Url::parse("http://relative.invalid/").expect("a valid base URL");
    let parsed = match url::Url::parse(text) {
        Ok(url) => Some(url),
        Err(url::ParseError::RelativeUrlWithoutBase) if text.starts_with('/') => {
            base.join(text).ok()
        }
        Err(_) => None,
    };
    parsed
        .as_ref()
        .and_then(part)
        .filter(|text| text != "relative.invalid")
        .map_or(Value::from(()), Value::from)
}

/// The UTC day of a date, a timestamp (ISO 8601 / RFC 3339), `YYYYMMDD`, or epoch seconds
/// or milliseconds (numbers or digit strings; 10^11 and above are milliseconds).
pub fn day(value: &Value) -> Option<NaiveDate> {
    match value.kind() {
        ValueKind::Number => epoch_day(
            value
                .as_i64()
                .or_else(|| f64::try_from(value.clone()).ok().map(|f| f as i64))?,
        ),
        ValueKind::String => {
            let text = value.as_str()?.trim();
            let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
            if digits && text.len() != 8 {
                return epoch_day(text.parse().ok()?);
            }
            // Dates, timestamps and YYYYMMDD, as mapping reads them everywhere else.
            coerce_date(&serde_json::Value::from(text))
        }
        _ => None,
    }
}

fn epoch_day(number: i64) -> Option<NaiveDate> {
    let seconds = if number.unsigned_abs() >= 100_000_000_000 {
        number.div_euclid(1000)
    } else {
        number
    };
    DateTime::from_timestamp(seconds, 0).map(|stamp| stamp.date_naive())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(source: &str, record: serde_json::Value) -> Value {
        let mut exprs = Expressions::new();
        let id = exprs.add(source, &BTreeSet::new()).unwrap();
        let request = minijinja::context! { days => 7 };
        let serde_json::Value::Object(record) = record else {
            unreachable!()
        };
        exprs
            .eval(
                id,
                Expressions::context(&Arc::new(record), &request).value(),
            )
            .unwrap()
    }

    fn problem(source: &str) -> String {
        Expressions::new()
            .add(source, &BTreeSet::new())
            .unwrap_err()
    }

    #[test]
    fn filters_take_records_apart() {
        let record = json!({"url": "https://acme.8020rei.com/buybox/deals?x=1", "at": "2026-03-01T23:30:00-02:00", "type": "page_view"});
        let client = r"record.url | regex_capture('^https://([^.]+)\\.8020rei\\.com')";
        assert_eq!(eval(client, record.clone()), Value::from("acme"));
        assert_eq!(
            eval("record.url | url_host", record.clone()),
            Value::from("acme.8020rei.com")
        );
        assert_eq!(
            eval("record.url | url_path", record.clone()),
            Value::from("/buybox/deals")
        );
        assert_eq!(
            eval("'/a/b?q=1' | url_path", record.clone()),
            Value::from("/a/b")
        );
        assert_eq!(
            eval("record.at | date", record.clone()),
            Value::from("2026-03-02")
        );
        assert_eq!(
            eval("record.type == 'page_view' and days == 7", record.clone()),
            Value::from(true)
        );
        assert_eq!(
            eval("record.url | regex_match('deals')", record.clone()),
            Value::from(true)
        );
        assert_eq!(
            eval("record.missing | default('none')", record),
            Value::from("none")
        );
    }

    #[test]
    fn vendor_fields_that_come_in_two_shapes_read_either() {
        // Stripe's `customer` is an id, or the object when expanded; Intercom's email may
        // be missing. The shipped sources rely on these spellings.
        let name = "(record.customer.name or record.customer.email or record.customer.id) if record.customer is mapping else record.customer";
        let expanded = json!({"customer": {"id": "cus_1", "name": null, "email": "a@b.co"}});
        assert_eq!(eval(name, expanded), Value::from("a@b.co"));
        assert_eq!(
            eval(name, json!({"customer": "cus_2"})),
            Value::from("cus_2")
        );
        assert!(eval(name, json!({"customer": null})).is_none());
        let domain = "record.author.email | split('@') | last | lower if record.author.email is string and '@' in record.author.email else none";
        let author = |email: serde_json::Value| json!({"author": {"email": email}});
        assert_eq!(
            eval(domain, author(json!("Jo@Acme.COM"))),
            Value::from("acme.com")
        );
        assert!(eval(domain, author(json!(null))).is_none());
        assert!(eval(domain, author(json!("no-at-sign"))).is_none());
        assert!(
            eval(
                "record.company.name if record.company is mapping else 'x'",
                json!({})
            ) == Value::from("x")
        );
        assert_eq!(
            eval("record.n is boolean", json!({"n": true})),
            Value::from(true)
        );
    }

    #[test]
    fn dates_come_from_every_usual_spelling() {
        for (raw, day_text) in [
            (json!("2026-03-01"), "2026-03-01"),
            (json!("20260301"), "2026-03-01"),
            (json!(1772323200), "2026-03-01"),
            (json!(1772323200000_i64), "2026-03-01"),
            (json!("1772323200"), "2026-03-01"),
            (json!("2026-03-01 10:00:00"), "2026-03-01"),
        ] {
            assert_eq!(
                day(&Value::from_serialize(&raw)).map(|d| d.to_string()),
                Some(day_text.to_owned()),
                "{raw}"
            );
        }
        assert_eq!(day(&Value::from("soon")), None);
    }

    #[test]
    fn load_time_checks_name_the_problem() {
        assert!(problem("record.url | urlhost").contains("unknown filter `urlhost`"));
        assert!(problem("record.x is frobbed").contains("unknown test `frobbed`"));
        assert!(problem("secrets.token").contains("neither the record nor a request parameter"));
        assert!(problem("filters.client == 'a'").contains("filters.client, which is not declared"));
        assert!(problem("record.url | regex_match('(')").contains("not a valid regular expression"));
        assert!(problem("record.url ==").contains("not a valid expression"));
        // A filter's name inside a string is not a filter.
        assert!(Expressions::new()
            .add("record.x == '| nope'", &BTreeSet::new())
            .is_ok());
        assert!(Expressions::new()
            .add("record.x is not none", &BTreeSet::new())
            .is_ok());
    }

    #[test]
    fn an_expression_past_its_fuel_fails_instead_of_running_on() {
        // Expressions have no loops, so their cost grows with their length: one of 30,000
        // terms needs more than FUEL instructions.
        // (Constant lists are folded when compiled, so the terms read the record.)
        let long = format!("[{}] | length", vec!["record.a"; 30_000].join(", "));
        let short = format!("[{}] | length", vec!["record.a"; 1_000].join(", "));
        let mut exprs = Expressions::new();
        let (long, short) = (
            exprs.add(&long, &BTreeSet::new()).unwrap(),
            exprs.add(&short, &BTreeSet::new()).unwrap(),
        );
        let context = Expressions::context(&Arc::default(), &Value::from(()));
        assert_eq!(
            exprs.eval(short, context.value()).unwrap(),
            Value::from(1_000)
        );
        let err = exprs.eval(long, context.value()).unwrap_err();
        assert!(err.contains("fuel"), "{err}");
    }

    #[test]
    fn request_dates_compare_with_record_dates_and_attributes_are_not_filters() {
        let params = crate::model::QueryParams::between(
            NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        );
        let mut exprs = Expressions::new();
        let id = exprs
            .add(
                "(record.at | date) >= start_date and (record.at | date) <= end_date",
                &BTreeSet::new(),
            )
            .unwrap();
        let request = Expressions::request(&params);
        let holds = |at: &str| {
            let serde_json::Value::Object(record) = json!({ "at": at }) else {
                unreachable!()
            };
            exprs
                .holds(
                    id,
                    Expressions::context(&Arc::new(record), &request).value(),
                )
                .unwrap()
        };
        assert!(holds("2026-03-15T10:00:00Z"));
        assert!(!holds("2026-04-01T00:00:00Z"));
        assert!(Expressions::new()
            .add("record.is == 'x' and record.not is none", &BTreeSet::new())
            .is_ok());
        assert_eq!(day(&Value::from(i64::MIN)), None);
    }
}
