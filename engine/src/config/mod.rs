//! Source declarations: read every `sources.d/*.yaml`, interpolate `${ENV}`, check each
//! against `schemas/source.schema.json`, parse into raw serde shapes, then validate into
//! typed [`SourceSpec`]s. Every error of every file is collected with its file, line and
//! JSON pointer; a broken file never stops the good ones from loading.

pub mod bigquery;
mod interpolate;
mod locate;
pub mod raw;
pub mod rest;
pub mod sql;
pub mod wasm;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use interpolate::{interpolate, InterpolationError};
pub use locate::locate;
pub use raw::MergePolicy;

use crate::mapping::FieldMapping;
use crate::model::{Dataset, FilterValue, QueryParams};

/// The JSON Schema every source file must satisfy; editors use the same file.
pub const SOURCE_SCHEMA: &str = include_str!("../../../schemas/source.schema.json");

const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_STRING_FILTER_LENGTH: usize = 256;

/// A string that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value itself, for the one place that needs it (opening a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Replaces every occurrence of the given secret values in `text` with `***`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        if secret.len() >= 4 {
            text = text.replace(secret.as_str(), "***");
        }
    }
    text
}

/// One problem in one source file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line, where it could be found.
    pub line: Option<usize>,
    /// JSON pointer inside the document, e.g. `/queries/daily/sql`; empty for the whole file.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": at {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A declared filter, ready to check request values.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterSpec {
    Text {
        max_length: usize,
    },
    Integer {
        minimum: Option<i64>,
        maximum: Option<i64>,
    },
    Date,
    Enum {
        values: Vec<String>,
    },
}

impl FilterSpec {
    /// Checks a request value against the declaration; the error says what is accepted.
    pub fn parse(&self, raw: &str) -> Result<FilterValue, String> {
        match self {
            FilterSpec::Text { max_length } => {
                if raw.chars().count() > *max_length {
                    Err(format!("must be at most {max_length} characters"))
                } else if raw.chars().any(char::is_control) {
                    Err("must not contain control characters".to_owned())
                } else {
                    Ok(FilterValue::Text(raw.to_owned()))
                }
            }
            FilterSpec::Integer { minimum, maximum } => {
                let number: i64 = raw
                    .trim()
                    .parse()
                    .map_err(|_| "must be a whole number".to_owned())?;
                if minimum.is_some_and(|min| number < min)
                    || maximum.is_some_and(|max| number > max)
                {
                    let min = minimum.map_or("any".to_owned(), |m| m.to_string());
                    let max = maximum.map_or("any".to_owned(), |m| m.to_string());
                    return Err(format!("must be between {min} and {max}"));
                }
                Ok(FilterValue::Integer(number))
            }
            FilterSpec::Date => NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
                .map(FilterValue::Date)
                .map_err(|_| "must be a date written YYYY-MM-DD".to_owned()),
            FilterSpec::Enum { values } => {
                if values.iter().any(|v| v == raw) {
                    Ok(FilterValue::Text(raw.to_owned()))
                } else {
                    Err(format!("must be one of: {}", values.join(", ")))
                }
            }
        }
    }

    /// A value of the right type, used to trial-render templates at validation.
    fn sample(&self) -> FilterValue {
        match self {
            FilterSpec::Text { .. } => FilterValue::Text("sample".to_owned()),
            FilterSpec::Integer { minimum, .. } => FilterValue::Integer(minimum.unwrap_or(0)),
            FilterSpec::Date => FilterValue::Date(NaiveDate::MIN),
            FilterSpec::Enum { values } => {
                FilterValue::Text(values.first().cloned().unwrap_or_default())
            }
        }
    }
}

/// The kind-specific, validated part of a source.
#[derive(Debug, Clone)]
pub enum KindSpec {
    Sql(sql::SqlSpec),
    Rest(rest::RestSpec),
    Bigquery(bigquery::BigquerySpec),
    Wasm(wasm::WasmSpec),
}

impl KindSpec {
    /// The `kind:` value as written.
    pub fn name(&self) -> &'static str {
        match self {
            KindSpec::Sql(_) => "sql",
            KindSpec::Rest(_) => "rest",
            KindSpec::Bigquery(_) => "bigquery",
            KindSpec::Wasm(_) => "wasm",
        }
    }

    /// Datasets the source has a query for.
    pub fn datasets(&self) -> &BTreeSet<Dataset> {
        match self {
            KindSpec::Sql(spec) => &spec.datasets,
            KindSpec::Rest(spec) => &spec.datasets,
            KindSpec::Bigquery(spec) => &spec.datasets,
            KindSpec::Wasm(spec) => &spec.datasets,
        }
    }
}

/// A validated source declaration.
#[derive(Clone)]
pub struct SourceSpec {
    pub id: String,
    pub name: String,
    /// Short label for dashboards: the YAML `badge`, or the name.
    pub badge: String,
    pub description: Option<String>,
    pub enabled: bool,
    /// The file it came from.
    pub file: PathBuf,
    /// `Duration::ZERO` turns caching off for this source.
    pub cache_ttl: Duration,
    pub timeout: Duration,
    pub filters: BTreeMap<String, FilterSpec>,
    pub mappings: BTreeMap<Dataset, BTreeMap<String, FieldMapping>>,
    pub merge: BTreeMap<Dataset, BTreeMap<String, MergePolicy>>,
    pub kind: KindSpec,
    /// Values that came from the environment: redacted from every message about this source.
    pub secrets: Arc<Vec<String>>,
}

/// Only what identifies the source: the environment values in `secrets` and the kind's
/// connection details must not reach a log line through `{:?}`.
impl fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceSpec")
            .field("id", &self.id)
            .field("kind", &self.kind.name())
            .field("enabled", &self.enabled)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// Everything read from a sources directory.
#[derive(Debug, Default)]
pub struct LoadedSources {
    /// Valid sources, sorted by id.
    pub sources: Vec<SourceSpec>,
    /// Files with errors, each with all of its errors.
    pub broken: BTreeMap<PathBuf, Vec<ConfigError>>,
}

impl LoadedSources {
    /// Every error of every file, in file order.
    pub fn errors(&self) -> impl Iterator<Item = &ConfigError> {
        self.broken.values().flatten()
    }
}

/// Why the directory itself could not be read (file errors are collected, not returned).
#[derive(Debug, thiserror::Error)]
#[error("cannot read sources directory {}: {source}", dir.display())]
pub struct DirectoryError {
    dir: PathBuf,
    source: std::io::Error,
}

/// Loads every `*.yaml`/`*.yml` file of `dir` with the process environment.
pub fn load_dir(dir: &Path) -> Result<LoadedSources, DirectoryError> {
    load_dir_with(dir, &|name| std::env::var(name).ok())
}

/// Loads every source file of `dir`, resolving `${VAR}` through `env`.
pub fn load_dir_with(
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedSources, DirectoryError> {
    let read_error = |source| DirectoryError {
        dir: dir.to_owned(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_error)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.is_file()
                && matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml")
                )
        })
        .collect();
    files.sort();
    let mut loaded = LoadedSources::default();
    for file in files {
        let outcome = match std::fs::read_to_string(&file) {
            Ok(text) => load_source(&file, &text, env),
            Err(err) => Err(vec![ConfigError {
                file: file.clone(),
                line: None,
                path: String::new(),
                message: format!("cannot read the file: {err}"),
            }]),
        };
        match outcome {
            Ok(spec) => loaded.sources.push(spec),
            Err(errors) => {
                loaded.broken.insert(file, errors);
            }
        }
    }
    check_across_files(&mut loaded);
    loaded.sources.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(loaded)
}

/// Checks that need every file: unique ids and agreeing merge policies. The later file
/// (in file name order) is the one reported, naming the earlier one.
fn check_across_files(loaded: &mut LoadedSources) {
    let mut ids: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut policies: BTreeMap<(Dataset, String), (MergePolicy, PathBuf)> = BTreeMap::new();
    let mut kept = Vec::new();
    for spec in std::mem::take(&mut loaded.sources) {
        let mut errors = Vec::new();
        let text = std::fs::read_to_string(&spec.file).unwrap_or_default();
        let error = |path: String, message: String| ConfigError {
            file: spec.file.clone(),
            line: locate(&text, &path),
            path,
            message,
        };
        if let Some(first) = ids.get(&spec.id) {
            errors.push(error(
                "/id".to_owned(),
                format!(
                    "id `{}` is already used by {}: every source needs its own id",
                    spec.id,
                    first.display()
                ),
            ));
        }
        for (dataset, fields) in &spec.merge {
            for (field, policy) in fields {
                if let Some((other, file)) = policies.get(&(*dataset, field.clone())) {
                    if other != policy {
                        errors.push(error(
                            format!("/merge/{dataset}/{field}"),
                            format!(
                                "merge policy {policy:?} disagrees with {other:?} in {}: sources must agree on how {dataset}.{field} combines",
                                file.display()
                            )
                            .to_lowercase(),
                        ));
                    }
                }
            }
        }
        if errors.is_empty() {
            ids.insert(spec.id.clone(), spec.file.clone());
            for (dataset, fields) in &spec.merge {
                for (field, policy) in fields {
                    policies
                        .entry((*dataset, field.clone()))
                        .or_insert((*policy, spec.file.clone()));
                }
            }
            kept.push(spec);
        } else {
            loaded.broken.insert(spec.file.clone(), errors);
        }
    }
    loaded.sources = kept;
}

/// Problems of one file, by JSON pointer; turned into [`ConfigError`]s at the end.
pub(crate) struct Problems {
    list: Vec<(String, String)>,
}

impl Problems {
    fn new() -> Problems {
        Problems { list: Vec::new() }
    }

    pub(crate) fn add(&mut self, pointer: &str, message: impl Into<String>) {
        self.list.push((pointer.to_owned(), message.into()));
    }

    /// Deserializes `value`, recording a failure under `pointer` plus the failing path.
    pub(crate) fn parse<T: DeserializeOwned>(&mut self, pointer: &str, value: &Value) -> Option<T> {
        match serde_path_to_error::deserialize(value.clone()) {
            Ok(parsed) => Some(parsed),
            Err(err) => {
                let inner = err.path().to_string();
                let mut path = pointer.to_owned();
                if inner != "." {
                    for part in inner.split('.') {
                        path.push('/');
                        path.push_str(part.trim_start_matches('[').trim_end_matches(']'));
                    }
                }
                self.add(&path, err.into_inner().to_string());
                None
            }
        }
    }
}

fn schema() -> &'static jsonschema::Validator {
    static SCHEMA: OnceLock<jsonschema::Validator> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let schema: Value =
            serde_json::from_str(SOURCE_SCHEMA).expect("the embedded schema is JSON");
        // Validated with the draft-7 engine although the file says 2020-12 (for editors):
        // building a 2020-12 validator first compiles the 2020-12 meta-schema, which stays
        // in memory for good and measured ~138 MB of heap against ~22 MB for draft 7. The
        // schema keeps to keywords both drafts share; the tests check it is valid 2020-12
        // and that this validator and the typed config agree on every fixture.
        // The `regex` engine, not fancy-regex: our patterns need no look-around, and
        // `regex` matches in linear time whatever text a source file holds.
        jsonschema::draft7::options()
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(&schema)
            .expect("the embedded schema is a valid 2020-12 schema")
    })
}

/// Loads one source file from its text: parse, interpolate, schema, typed parse, validate.
pub fn load_source(
    file: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SourceSpec, Vec<ConfigError>> {
    let mut secrets = Vec::new();
    let finish = |problems: Vec<(String, String)>, secrets: &[String]| -> Vec<ConfigError> {
        problems
            .into_iter()
            .map(|(path, message)| ConfigError {
                file: file.to_owned(),
                line: locate(text, &path),
                message: redact(&message, secrets),
                path,
            })
            .collect()
    };
    let mut document: Value = match serde_yaml::from_str(text) {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(_) => {
            return Err(finish(
                vec![(
                    String::new(),
                    "a source file must be a YAML mapping with id, name, kind, ...".into(),
                )],
                &secrets,
            ))
        }
        Err(err) => {
            return Err(vec![ConfigError {
                file: file.to_owned(),
                line: err.location().map(|l| l.line()),
                path: String::new(),
                message: format!("not valid YAML: {err}"),
            }])
        }
    };
    match interpolate::interpolate_document(&mut document, env) {
        Ok(values) => secrets = values,
        Err(errors) => {
            return Err(finish(
                errors
                    .into_iter()
                    .map(|(p, e)| (p, e.to_string()))
                    .collect(),
                &secrets,
            ))
        }
    }
    let mut problems = schema_problems(&document);
    if problems.is_empty() {
        return typed_problems(file, &document, secrets).map_err(|problems| finish(problems, &[]));
    }
    // Report the semantic problems too (a template error beside a typo), except where
    // they only restate a schema error in other words.
    if let Err(typed) = typed_problems(file, &document, secrets.clone()) {
        let covered: Vec<String> = problems.iter().map(|(path, _)| path.clone()).collect();
        problems.extend(typed.into_iter().filter(|(path, _)| {
            !covered
                .iter()
                .any(|c| path.starts_with(c.as_str()) || c.starts_with(path.as_str()))
        }));
    }
    Err(finish(problems, &secrets))
}

/// What the JSON Schema says about an interpolated document, as (pointer, message).
fn schema_problems(document: &Value) -> Vec<(String, String)> {
    schema()
        .iter_errors(document)
        .map(|err| (err.instance_path.to_string(), schema_message(&err)))
        .collect()
}

/// Typed parsing and validation of an interpolated document, independent of the schema
/// (the tests hold the two in agreement). Messages are already redacted.
fn typed_problems(
    file: &Path,
    document: &Value,
    secrets: Vec<String>,
) -> Result<SourceSpec, Vec<(String, String)>> {
    let mut problems = Problems::new();
    let secrets = Arc::new(secrets);
    let spec = problems
        .parse::<raw::SourceConfig>("", document)
        .and_then(|config| validate(file, config, secrets.clone(), &mut problems));
    match spec {
        Some(spec) if problems.list.is_empty() => Ok(spec),
        _ => Err(problems
            .list
            .into_iter()
            .map(|(path, message)| (path, redact(&message, &secrets)))
            .collect()),
    }
}

/// Adds a hint on how to fix the most common schema failures.
fn schema_message(err: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind as Kind;
    let message = err.to_string();
    match &err.kind {
        Kind::AdditionalProperties { unexpected } => format!(
            "unknown key{} {}: remove it or check its spelling against the schema",
            if unexpected.len() > 1 { "s" } else { "" },
            unexpected
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Kind::Required { property } => format!("missing required key {property}: add it"),
        Kind::Pattern { pattern } if pattern.contains("ms|s|m|h") => format!(
            "{} is not a duration: write e.g. 500ms, 30s, 5m, 1h or 1h 30m",
            err.instance
        ),
        Kind::Pattern { .. } if err.instance_path.to_string() == "/id" => format!(
            "{} is not a valid id: use lowercase letters, digits and dashes",
            err.instance
        ),
        _ => message,
    }
}

fn number(value: &raw::Number) -> Option<i64> {
    match value {
        raw::Number::Integer(n) => Some(*n),
        raw::Number::Text(text) => text.trim().parse().ok(),
    }
}

/// Durations as the schema spells them: numbers with ms, s, m, h or d, e.g. `1h 30m`.
/// humantime alone would also take `5 minutes`, which the schema (and editors) refuse.
fn duration(
    problems: &mut Problems,
    pointer: &str,
    value: Option<&str>,
    default: Duration,
) -> Duration {
    let text = match value.map(str::trim) {
        None | Some("") => return default,
        Some(text) => text,
    };
    let simple = text.split_whitespace().all(|part| {
        let unit_at = part
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(part.len());
        unit_at > 0 && matches!(&part[unit_at..], "ms" | "s" | "m" | "h" | "d")
    });
    match humantime::parse_duration(text) {
        Ok(parsed) if simple => parsed,
        _ => {
            problems.add(
                pointer,
                format!("`{text}` is not a duration: write e.g. 500ms, 30s, 5m, 1h or 1h 30m"),
            );
            default
        }
    }
}

fn validate(
    file: &Path,
    config: raw::SourceConfig,
    secrets: Arc<Vec<String>>,
    problems: &mut Problems,
) -> Option<SourceSpec> {
    let id_valid = !config.id.is_empty()
        && config
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !id_valid {
        problems.add(
            "/id",
            format!(
                "`{}` is not a valid id: use lowercase letters, digits and dashes",
                config.id
            ),
        );
    }
    if config.name.trim().is_empty() {
        problems.add(
            "/name",
            "name must not be empty: give the source a human-readable name",
        );
    }
    let badge = match config.badge.as_deref().map(str::trim) {
        None => config.name.trim().to_owned(),
        Some(badge) if badge.is_empty() || badge.chars().count() > MAX_BADGE_CHARS => {
            problems.add(
                "/badge",
                format!("badge must be 1 to {MAX_BADGE_CHARS} characters, e.g. GA4, CRM or DB; leave it out to show the name"),
            );
            String::new()
        }
        Some(badge) => badge.to_owned(),
    };
    let enabled = match &config.enabled {
        None => true,
        Some(raw::Flag::Bool(flag)) => *flag,
        Some(raw::Flag::Text(text)) => match text.trim() {
            "true" => true,
            "false" | "" => false,
            other => {
                problems.add("/enabled", format!("`{other}` is not true or false"));
                false
            }
        },
    };
    let cache_ttl = duration(
        problems,
        "/cache/ttl",
        config.cache.as_ref().and_then(|c| c.ttl.as_deref()),
        DEFAULT_CACHE_TTL,
    );
    let timeout = duration(
        problems,
        "/timeout",
        config.timeout.as_deref(),
        DEFAULT_TIMEOUT,
    );
    if timeout.is_zero() {
        problems.add("/timeout", "timeout must be longer than zero");
    }

    let mut identifiers = BTreeSet::new();
    for (index, name) in config.identifiers.iter().enumerate() {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid && !identifiers.insert(name.clone()) {
            problems.add(
                &format!("/identifiers/{index}"),
                format!("`{name}` is listed twice"),
            );
        } else if !valid {
            problems.add(
                &format!("/identifiers/{index}"),
                format!("`{name}` is not a plain SQL identifier: use letters, digits and _"),
            );
        }
    }

    let mut filters = BTreeMap::new();
    for (name, filter) in config.filters {
        let pointer = format!("/filters/{name}");
        let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !plain {
            problems.add(
                &pointer,
                format!("`{name}` is not a valid filter name: use lowercase letters, digits and _, starting with a letter"),
            );
        }
        let spec = match filter {
            raw::FilterConfig::String { max_length, .. } => FilterSpec::Text {
                max_length: max_length.unwrap_or(DEFAULT_STRING_FILTER_LENGTH),
            },
            raw::FilterConfig::Integer {
                minimum, maximum, ..
            } => {
                if let (Some(min), Some(max)) = (minimum, maximum) {
                    if min > max {
                        problems.add(&pointer, "minimum is greater than maximum");
                    }
                }
                FilterSpec::Integer { minimum, maximum }
            }
            raw::FilterConfig::Date { .. } => FilterSpec::Date,
            raw::FilterConfig::Enum { values, .. } => {
                if values.is_empty() {
                    problems.add(
                        &format!("{pointer}/values"),
                        "an enum filter needs at least one value",
                    );
                }
                FilterSpec::Enum { values }
            }
        };
        filters.insert(name, spec);
    }

    let context = KindContext {
        connection: config.connection.as_ref(),
        queries: &config.queries,
        identifiers: &identifiers,
        filters: &filters,
        enabled,
    };
    let kind = match config.kind {
        raw::KindName::Sql => KindSpec::Sql(sql::compile(&context, problems)?),
        raw::KindName::Rest => KindSpec::Rest(rest::compile(&context, problems)?),
        raw::KindName::Bigquery => KindSpec::Bigquery(bigquery::compile(&context, problems)?),
        raw::KindName::Wasm => KindSpec::Wasm(wasm::compile(&context, problems)?),
    };

    let mut mappings = BTreeMap::new();
    for (name, fields) in config.mappings {
        let pointer = format!("/mappings/{name}");
        let Some(dataset) = Dataset::parse(&name) else {
            problems.add(
                &pointer,
                format!("`{name}` is not a dataset: use summary, daily, features or clients"),
            );
            continue;
        };
        if !kind.datasets().contains(&dataset) {
            problems.add(
                &pointer,
                format!("there is no `queries.{name}` for this mapping to apply to"),
            );
        }
        let mut typed = BTreeMap::new();
        for (field, mapping) in fields {
            if dataset.field_type(&field).is_none() {
                let known: Vec<_> = dataset.fields().iter().map(|(f, _)| *f).collect();
                problems.add(
                    &format!("{pointer}/{field}"),
                    format!(
                        "`{field}` is not a unified field of {dataset}: map to one of {} (other columns pass through unmapped as extra fields)",
                        known.join(", ")
                    ),
                );
                continue;
            }
            let mapping = match mapping {
                raw::MappingConfig::Column(column) => FieldMapping {
                    column,
                    default: None,
                },
                raw::MappingConfig::Full(full)
                    if matches!(full.default, Some(Value::Array(_) | Value::Object(_))) =>
                {
                    problems.add(
                        &format!("{pointer}/{field}/default"),
                        "a default must be a number, string, boolean or null",
                    );
                    continue;
                }
                raw::MappingConfig::Full(full) => FieldMapping {
                    column: full.column,
                    default: full.default,
                },
            };
            typed.insert(field, mapping);
        }
        mappings.insert(dataset, typed);
    }

    let mut merge = BTreeMap::new();
    for (name, fields) in config.merge {
        match Dataset::parse(&name) {
            Some(dataset) => {
                for field in fields.keys() {
                    let plain = field
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !plain {
                        problems.add(
                            &format!("/merge/{name}/{field}"),
                            format!("`{field}` is not a field name"),
                        );
                    }
                }
                merge.insert(dataset, fields);
            }
            None => problems.add(
                &format!("/merge/{name}"),
                format!("`{name}` is not a dataset: use summary, daily, features or clients"),
            ),
        }
    }

    let spec = SourceSpec {
        id: config.id,
        name: config.name,
        badge,
        description: config.description,
        enabled,
        file: file.to_owned(),
        cache_ttl,
        timeout,
        filters,
        mappings,
        merge,
        kind,
        secrets,
    };
    Some(spec)
}

/// Badges sit beside numbers on the dashboard: a few characters, not a sentence.
const MAX_BADGE_CHARS: usize = 16;

/// What a kind's `compile` gets from the common part of a source file.
pub(crate) struct KindContext<'a> {
    pub connection: Option<&'a Value>,
    pub queries: &'a BTreeMap<String, Value>,
    pub identifiers: &'a BTreeSet<String>,
    pub filters: &'a BTreeMap<String, FilterSpec>,
    pub enabled: bool,
}

impl KindContext<'_> {
    /// Reports an empty `queries:` for kinds that need at least one query.
    pub fn require_queries(&self, problems: &mut Problems) {
        if self.queries.is_empty() {
            problems.add(
                "/queries",
                "declare at least one of summary, daily, features, clients under `queries:`",
            );
        }
    }

    /// Each entry under `queries:` as (dataset, its JSON pointer, its body parsed as `Q`).
    /// A name that is not a dataset, or a body that does not parse, is reported and left out.
    pub fn typed_queries<Q: DeserializeOwned>(
        &self,
        problems: &mut Problems,
    ) -> Vec<(Dataset, String, Q)> {
        let mut typed = Vec::new();
        for (name, query) in self.queries {
            let pointer = format!("/queries/{name}");
            let Some(dataset) = Dataset::parse(name) else {
                problems.add(
                    &pointer,
                    format!("`{name}` is not a dataset: use summary, daily, features or clients"),
                );
                continue;
            };
            if let Some(query) = problems.parse::<Q>(&pointer, query) {
                typed.push((dataset, pointer, query));
            }
        }
        typed
    }
}

/// Request parameters to trial-render templates with at validation: one set without
/// filters and one with every declared filter given, so both branches of
/// `{% if filters.x is defined %}` are exercised.
pub(crate) fn sample_params(filters: &BTreeMap<String, FilterSpec>) -> [QueryParams; 2] {
    let today = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap_or_default();
    let bare = QueryParams::last_days(30, today);
    let mut full = bare.clone();
    full.filters = filters
        .iter()
        .map(|(n, f)| (n.clone(), f.sample()))
        .collect();
    [bare, full]
}

/// One query of a kind whose queries are SQL templates (sql, bigquery).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlQueryConfig {
    sql: String,
}

/// Compiles `queries.DATASET.sql` templates for the given placeholder style and runs the
/// load-time template checks; returns the templates and the datasets that compiled.
pub(crate) fn compile_sql_queries(
    context: &KindContext<'_>,
    placeholder: crate::template::Placeholder,
    problems: &mut Problems,
) -> (crate::template::QueryTemplates, BTreeSet<Dataset>) {
    let mut templates =
        crate::template::QueryTemplates::new(placeholder, context.identifiers.clone());
    let mut datasets = BTreeSet::new();
    context.require_queries(problems);
    for (dataset, pointer, query) in context.typed_queries::<SqlQueryConfig>(problems) {
        match templates.add(dataset.as_str(), &query.sql) {
            Ok(()) => {
                datasets.insert(dataset);
            }
            Err(err) => problems.add(
                &format!("{pointer}/sql"),
                format!("the template does not compile: {err}"),
            ),
        }
    }
    check_query_templates(&templates, &datasets, context.filters, "sql", problems);
    (templates, datasets)
}

/// Checks templates rendered with [`crate::template::QueryTemplates`] (one per dataset,
/// at `/queries/DATASET/FIELD`): they may read only request parameters and declared
/// filters, and must render both without filters and with every filter set. That is where
/// printing a request value instead of binding it shows up: at start-up, not on a request.
pub(crate) fn check_query_templates(
    templates: &crate::template::QueryTemplates,
    datasets: &BTreeSet<Dataset>,
    filters: &BTreeMap<String, FilterSpec>,
    field: &str,
    problems: &mut Problems,
) {
    let declared: BTreeSet<String> = filters.keys().cloned().collect();
    let samples = sample_params(filters);
    for dataset in datasets {
        let pointer = format!("/queries/{dataset}/{field}");
        let unknown = templates.check_variables(dataset.as_str(), &declared);
        let had_unknown = !unknown.is_empty();
        for problem in unknown {
            problems.add(&pointer, problem);
        }
        if had_unknown {
            continue;
        }
        for params in &samples {
            if let Err(err) = templates.render(dataset.as_str(), params) {
                problems.add(&pointer, format!("the template fails to render: {err}"));
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests;
