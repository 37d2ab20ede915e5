//! A derived metric's file: its shape (the JSON Schema is generated from it), and the load
//! of `metrics.d/` into compiled [`Metric`]s checked against the loaded sources. A bad
//! file is reported with file, line, path and fix and leaves the others serving.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, OnceLock};

use minijinja::{Environment, Expression, UndefinedBehavior};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::config::locate::locate;
use crate::config::{yaml_files, ConfigError, Problems};
use crate::kinds::SourceSpec;
use crate::model::Dataset;

/// The JSON Schema every metric file must satisfy; editors use the same file.
pub const METRIC_SCHEMA: &str = include_str!("../../../schemas/metric.schema.json");
/// Instructions one evaluation may run.
const FUEL: u64 = 10_000;
/// The name expressions use for the merged answer.
pub const MERGED: &str = "merged";

/// A derived metric, one per file in `metrics.d/`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Metrics Hub derived metric")]
pub struct MetricConfig {
    /// The metric's name in answers: lowercase letters, digits and `_`, starting with a letter.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]{0,63}$"))]
    pub name: String,
    /// What the dashboard calls it, e.g. `Page views per user`.
    #[schemars(length(min = 1, max = 80))]
    pub label: String,
    /// One sentence on what it means, shown beside the card.
    #[serde(default)]
    pub description: Option<String>,
    /// How its value is shown: `number` (the default), `count`, `percent` (the value is a
    /// fraction: 0.25 shows as 25%) or `currency` (with `unit`).
    #[serde(default)]
    pub format: Format,
    /// The unit shown after the value, e.g. `USD` for a currency or `events`.
    #[serde(default)]
    pub unit: Option<String>,
    /// An expression over the window's summaries: `SOURCE.summary.FIELD` (the source id
    /// with `_` for `-`) and `merged.summary.FIELD`, e.g.
    /// `demo.summary.page_views / demo.summary.total_users`. Arithmetic, comparisons and
    /// `x if cond else y`; no filters.
    #[serde(default)]
    pub summary: Option<String>,
    /// An expression evaluated once per day over the daily series, joined by date:
    /// `SOURCE.daily.FIELD` and `merged.daily.FIELD`, e.g.
    /// `demo.daily.events / demo.daily.users`.
    #[serde(default)]
    pub daily: Option<String>,
}

/// How a derived value is shown.
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Number,
    Count,
    Percent,
    Currency,
}

/// One input an expression reads: `demo.summary.page_views`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Input {
    /// The source id (`ga4-bigquery`), or `merged`.
    pub source: String,
    /// The variable the expression names it by (`ga4_bigquery`).
    pub var: String,
    pub dataset: Dataset,
    pub field: String,
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.source, self.dataset, self.field)
    }
}

/// A checked, compiled expression and what it reads.
pub struct Compiled {
    pub text: String,
    pub expression: Expression<'static, 'static>,
    pub inputs: Vec<Input>,
}

/// Two compilations of the same text are the same expression.
impl PartialEq for Compiled {
    fn eq(&self, other: &Compiled) -> bool {
        self.text == other.text
    }
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A derived metric ready to evaluate.
#[derive(Debug, PartialEq)]
pub struct Metric {
    pub name: String,
    pub label: String,
    pub description: Option<String>,
    pub format: Format,
    pub unit: Option<String>,
    pub file: PathBuf,
    pub summary: Option<Compiled>,
    pub daily: Option<Compiled>,
}

/// What a load of `metrics.d/` found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Valid metrics in name order.
    pub metrics: Vec<Metric>,
    /// Files with errors, each with all of its errors.
    pub broken: BTreeMap<PathBuf, Vec<ConfigError>>,
}

/// Where derived metrics live for a sources directory: `metrics.d` beside it.
pub fn metrics_dir(sources_dir: &Path) -> PathBuf {
    let parent = sources_dir.parent().unwrap_or(Path::new(""));
    parent.join("metrics.d")
}

/// The environment every derived expression is compiled in: no filters, no globals.
pub(crate) static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::empty();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_fuel(Some(FUEL));
    env
});

/// Loads every `*.yaml`/`*.yml` file of `dir` (none when it does not exist), checking what
/// each reads against `sources`.
pub fn load_dir(dir: &Path, sources: &[SourceSpec]) -> Loaded {
    // No directory, no derived metrics.
    let files = yaml_files(dir).unwrap_or_default();
    let mut loaded = Loaded::default();
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files {
        let outcome = std::fs::read_to_string(&file)
            .map_err(|err| vec![whole_file(&file, format!("cannot read the file: {err}"))])
            .and_then(|text| load_metric(&file, &text, sources));
        match outcome {
            Ok(metric) => match names.get(&metric.name) {
                Some(first) => {
                    let message = format!(
                        "the name {} is already taken by {}: give each metric its own name",
                        metric.name,
                        first.display()
                    );
                    loaded
                        .broken
                        .insert(file.clone(), vec![whole_file(&file, message)]);
                }
                None => {
                    names.insert(metric.name.clone(), file);
                    loaded.metrics.push(metric);
                }
            },
            Err(errors) => {
                loaded.broken.insert(file, errors);
            }
        }
    }
    loaded.metrics.sort_by(|a, b| a.name.cmp(&b.name));
    loaded
}

fn whole_file(file: &Path, message: String) -> ConfigError {
    ConfigError {
        file: file.to_owned(),
        line: None,
        path: String::new(),
        message,
    }
}

/// One metric file from its text: YAML, schema, typed parse, expressions.
pub fn load_metric(
    file: &Path,
    text: &str,
    sources: &[SourceSpec],
) -> Result<Metric, Vec<ConfigError>> {
    let finish = |problems: Vec<(String, String)>| -> Vec<ConfigError> {
        problems
            .into_iter()
            .map(|(path, message)| ConfigError {
                file: file.to_owned(),
                line: locate(text, &path),
                path,
                message,
            })
            .collect()
    };
    let document: Value = serde_yaml::from_str(text).map_err(|err| {
        vec![ConfigError {
            line: err.location().map(|l| l.line()),
            ..whole_file(file, format!("not valid YAML: {err}"))
        }]
    })?;
    let schema = schema_problems(&document);
    if !schema.is_empty() {
        return Err(finish(schema));
    }
    let mut problems = Problems::new();
    let Some(config) = problems.parse::<MetricConfig>("", &document) else {
        return Err(finish(problems.into_list()));
    };
    let known = Known::of(sources);
    let summary = config
        .summary
        .as_deref()
        .and_then(|text| compile(text, Dataset::Summary, &known, "/summary", &mut problems));
    let daily = config
        .daily
        .as_deref()
        .and_then(|text| compile(text, Dataset::Daily, &known, "/daily", &mut problems));
    if config.summary.is_none() && config.daily.is_none() {
        problems.add(
            "",
            "a metric needs a summary expression, a daily one or both: add summary: or daily:",
        );
    }
    if config.format == Format::Currency && config.unit.is_none() {
        problems.add("/format", "a currency needs its unit: add e.g. unit: USD");
    }
    if !problems.is_empty() {
        return Err(finish(problems.into_list()));
    }
    Ok(Metric {
        name: config.name,
        label: config.label,
        description: config.description,
        format: config.format,
        unit: config.unit,
        file: file.to_owned(),
        summary,
        daily,
    })
}

/// The sources an expression may read: variable -> (id, declared datasets).
struct Known(BTreeMap<String, (String, BTreeSet<Dataset>)>);

impl Known {
    fn of(sources: &[SourceSpec]) -> Known {
        let mut known = BTreeMap::new();
        for spec in sources {
            let datasets = spec.kind.datasets().clone();
            known.insert(spec.id.replace('-', "_"), (spec.id.clone(), datasets));
        }
        Known(known)
    }
}

/// Compiles `text` and checks every name it reads, recording problems at `pointer`.
fn compile(
    text: &str,
    dataset: Dataset,
    known: &Known,
    pointer: &str,
    problems: &mut Problems,
) -> Option<Compiled> {
    if text.contains('|') {
        problems.add(pointer, "derived expressions take no filters: write arithmetic over SOURCE.summary.FIELD or SOURCE.daily.FIELD");
        return None;
    }
    let expression = match ENV.compile_expression_owned(text.to_owned()) {
        Ok(expression) => expression,
        Err(err) => {
            let detail = err.detail().map(|d| format!(": {d}")).unwrap_or_default();
            problems.add(
                pointer,
                format!("not a valid expression: {}{detail}", err.kind()),
            );
            return None;
        }
    };
    let mut inputs = Vec::new();
    let mut wrong = Vec::new();
    for name in expression.undeclared_variables(true) {
        match input(&name, dataset, known) {
            Ok(input) => inputs.push(input),
            Err(message) => wrong.push(message),
        }
    }
    if inputs.is_empty() && wrong.is_empty() {
        wrong.push(format!(
            "the expression reads no source: write e.g. {}",
            example(dataset)
        ));
    }
    if !wrong.is_empty() {
        wrong.sort();
        for message in wrong {
            problems.add(pointer, message);
        }
        return None;
    }
    inputs.sort();
    Some(Compiled {
        text: text.to_owned(),
        expression,
        inputs,
    })
}

fn example(dataset: Dataset) -> &'static str {
    match dataset {
        Dataset::Daily => "demo.daily.events / demo.daily.users",
        _ => "demo.summary.page_views / demo.summary.total_users",
    }
}

/// What one name an expression reads refers to, or the problem, worded with its fix.
fn input(name: &str, dataset: Dataset, known: &Known) -> Result<Input, String> {
    let parts: Vec<&str> = name.split('.').collect();
    let expected = format!("SOURCE.{dataset}.FIELD");
    let [var, part, field] = parts[..] else {
        return Err(format!(
            "the expression reads `{name}`: write {expected}, e.g. {}",
            example(dataset)
        ));
    };
    let source = if var == MERGED {
        MERGED.to_owned()
    } else {
        let Some((id, datasets)) = known.0.get(var) else {
            let names: Vec<&str> = known.0.keys().map(String::as_str).collect();
            return Err(format!(
                "no source `{var}` is loaded: use one of {} or merged (a source id is written with _ for -)",
                names.join(", ")
            ));
        };
        if !datasets.contains(&dataset) {
            return Err(format!("source {id} does not declare the {dataset} dataset: read another source, or merged"));
        }
        id.clone()
    };
    if part != dataset.as_str() {
        return Err(format!(
            "the {dataset} expression reads `{name}`: write {expected}"
        ));
    }
    check_field(field, dataset)?;
    Ok(Input {
        source,
        var: var.to_owned(),
        dataset,
        field: field.to_owned(),
    })
}

/// A unified field of `dataset`, or an extra field a source passes through; a name one or
/// two edits away from a unified field is taken for a typo.
fn check_field(field: &str, dataset: Dataset) -> Result<(), String> {
    let unified: Vec<&str> = dataset.fields().iter().map(|(name, _)| *name).collect();
    if unified.contains(&field) {
        return Ok(());
    }
    match unified
        .iter()
        .find(|name| strsim::levenshtein(name, field) <= 2)
    {
        Some(near) => Err(format!(
            "`{field}` is not a field of {dataset}: did you mean {near}? ({dataset} has {})",
            unified.join(", ")
        )),
        None => Ok(()),
    }
}

fn validator() -> &'static jsonschema::Validator {
    static SCHEMA: OnceLock<jsonschema::Validator> = OnceLock::new();
    SCHEMA.get_or_init(|| crate::config::schema::validator(METRIC_SCHEMA))
}

fn schema_problems(document: &Value) -> Vec<(String, String)> {
    validator()
        .iter_errors(document)
        .map(|err| {
            let message = match &err.kind {
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    format!("unknown key {}: remove it or check its spelling (name, label, description, format, unit, summary, daily)", unexpected.join(", "))
                }
                jsonschema::error::ValidationErrorKind::Required { property } => {
                    format!("missing required key {property}: add it")
                }
                _ => err.to_string(),
            };
            (err.instance_path.to_string(), message)
        })
        .collect()
}

/// The schema generated from [`MetricConfig`], as checked in.
pub fn metric_schema() -> Value {
    let schema = crate::kinds::schema::generator().into_root_schema_for::<MetricConfig>();
    let mut value = serde_json::to_value(schema).expect("a schema is JSON");
    value["$id"] = "https://metrics-hub.invalid/schemas/metric.schema.json".into();
    value["$comment"] = "Generated from engine/src/derived/config.rs: change it, then run METRICS_HUB_WRITE_SCHEMA=1 cargo test -p metrics-hub --lib schema.".into();
    value
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn checked_in() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/metric.schema.json")
    }

    #[test]
    fn the_checked_in_metric_schema_is_the_generated_one() {
        let generated = serde_json::to_string_pretty(&metric_schema()).unwrap() + "\n";
        let writing = std::env::var_os("METRICS_HUB_WRITE_SCHEMA").is_some();
        if writing {
            std::fs::write(checked_in(), &generated).unwrap();
        }
        assert!(
            generated == METRIC_SCHEMA || writing,
            "schemas/metric.schema.json is not what MetricConfig generates: run \
             METRICS_HUB_WRITE_SCHEMA=1 cargo test -p metrics-hub --lib schema and commit it"
        );
    }

    pub(crate) fn demo_sources() -> Vec<SourceSpec> {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sources.d/demo.yaml");
        let text = std::fs::read_to_string(&file).unwrap();
        vec![crate::load::load_source(&file, &text, &|_| None).unwrap()]
    }

    fn errors(text: &str) -> Vec<ConfigError> {
        load_metric(Path::new("m.yaml"), text, &demo_sources()).unwrap_err()
    }

    #[test]
    fn a_good_file_compiles_with_its_inputs() {
        let text = "name: ppu\nlabel: P\nsummary: demo.summary.page_views / demo.summary.total_users\ndaily: demo.daily.events / merged.daily.users\n";
        let metric = load_metric(Path::new("m.yaml"), text, &demo_sources()).unwrap();
        let inputs = |c: &Option<Compiled>| -> Vec<String> {
            c.as_ref()
                .unwrap()
                .inputs
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            inputs(&metric.summary),
            ["demo.summary.page_views", "demo.summary.total_users"]
        );
        assert_eq!(
            inputs(&metric.daily),
            ["demo.daily.events", "merged.daily.users"]
        );
    }

    #[test]
    fn each_mistake_names_its_line_path_and_fix() {
        let cases = [
            (
                "name: a\nlabel: A\nsummary: nosuch.summary.x / 2\n",
                3,
                "/summary",
                "no source `nosuch` is loaded: use one of demo or merged",
            ),
            (
                "name: a\nlabel: A\nsummary: demo.summary.page_veiws / 2\n",
                3,
                "/summary",
                "did you mean page_views?",
            ),
            (
                "name: a\nlabel: A\nsummary: demo.daily.events / 2\n",
                3,
                "/summary",
                "write SOURCE.summary.FIELD",
            ),
            (
                "name: a\nlabel: A\ndaily: demo.daily\n",
                3,
                "/daily",
                "write SOURCE.daily.FIELD",
            ),
            (
                "name: a\nlabel: A\nsummary: demo.summary.page_views / \n",
                3,
                "/summary",
                "not a valid expression",
            ),
            (
                "name: a\nlabel: A\nsummary: demo.summary.page_views | round\n",
                3,
                "/summary",
                "take no filters",
            ),
            (
                "name: a\nlabel: A\nsummary: 1 + 2\n",
                3,
                "/summary",
                "reads no source",
            ),
            (
                "name: a\nlabel: A\n",
                0,
                "",
                "needs a summary expression, a daily one or both",
            ),
            (
                "name: a\nlabel: A\nformat: currency\nsummary: demo.summary.page_views\n",
                3,
                "/format",
                "add e.g. unit: USD",
            ),
            (
                "name: a\nlabel: A\nsumary: demo.summary.page_views\n",
                0,
                "",
                "unknown key sumary",
            ),
            (
                "name: Bad Name\nlabel: A\nsummary: demo.summary.page_views\n",
                1,
                "/name",
                "does not match",
            ),
        ];
        for (text, line, path, message) in cases {
            let found = errors(text);
            assert!(
                found.iter().any(|e| e.path == path
                    && e.line.unwrap_or(0) == line
                    && e.message.contains(message)),
                "{text:?}: expected {path} line {line} with {message:?}, got {found:?}"
            );
        }
    }

    #[test]
    fn a_directory_reports_a_taken_name_and_keeps_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let body = "name: same\nlabel: S\nsummary: demo.summary.page_views\n";
        std::fs::write(dir.path().join("a.yaml"), body).unwrap();
        std::fs::write(dir.path().join("b.yaml"), body).unwrap();
        let loaded = load_dir(dir.path(), &demo_sources());
        assert_eq!(loaded.metrics.len(), 1);
        assert_eq!(loaded.metrics[0].file, dir.path().join("a.yaml"));
        let error = &loaded.broken[&dir.path().join("b.yaml")][0];
        assert!(error.message.contains("already taken"), "{error}");
    }

    #[test]
    fn the_shipped_metrics_load_against_the_shipped_sources() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let sources = crate::load::load_dir(&root.join("sources.d")).unwrap();
        assert!(sources.broken.is_empty(), "{:?}", sources.broken);
        assert!(sources.derived.len() >= 3, "{:?}", sources.derived);
    }
}
