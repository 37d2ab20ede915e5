//! Loading a sources directory: each file is parsed as YAML, `${ENV}`-interpolated,
//! checked against the JSON Schema, parsed into the raw shapes, validated (the common
//! fields by [`config::common`], the kind's part by [`kinds::compile`]), and finally the
//! checks that need every file run (unique ids, agreeing merge policies). Every error of
//! every file is collected with its file, line and JSON pointer; a broken file never
//! stops the good ones from loading.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::locate::locate;
use crate::config::raw::SourceConfig;
use crate::config::schema::schema_problems;
use crate::config::{self, interpolate, ConfigError, MergePolicy, Problems};
use crate::derived::{self, Metric};
use crate::kinds::{self, KindContext, SourceSpec};
use crate::merge::Policies;
use crate::model::Dataset;
use crate::secret::redact;

/// Everything read from a sources directory.
#[derive(Debug, Default)]
pub struct LoadedSources {
    /// Valid sources, sorted by id.
    pub sources: Vec<SourceSpec>,
    /// Files with errors, each with all of its errors.
    pub broken: BTreeMap<PathBuf, Vec<ConfigError>>,
    /// How each field combines across the valid sources (they agree, or the later file
    /// is broken).
    pub policies: Policies,
    /// The derived metrics of `metrics.d/` beside the directory (their broken files are
    /// in `broken` too).
    pub derived: Vec<Metric>,
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

/// Why an env file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnvFileError {
    #[error("cannot read env file {}: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: expected NAME=VALUE (blank lines and # comments are allowed)", file.display())]
    Syntax { file: PathBuf, line: usize },
}

/// The variables of an env file (`NAME=VALUE` lines, `export ` and quotes around the
/// value allowed, `#` comments), read anew at start-up and at every reload, so a secret
/// rotated in the file takes effect on the next reload.
pub fn read_env_file(file: &Path) -> Result<BTreeMap<String, String>, EnvFileError> {
    let text = std::fs::read_to_string(file).map_err(|source| EnvFileError::Read {
        file: file.to_owned(),
        source,
    })?;
    let mut vars = BTreeMap::new();
    for (at, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let syntax = || EnvFileError::Syntax {
            file: file.to_owned(),
            line: at + 1,
        };
        let (name, value) = line.split_once('=').ok_or_else(syntax)?;
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(syntax());
        }
        let value = value.trim();
        let unquoted = [('"', '"'), ('\'', '\'')]
            .iter()
            .find_map(|(open, close)| value.strip_prefix(*open)?.strip_suffix(*close));
        vars.insert(name.to_owned(), unquoted.unwrap_or(value).to_owned());
    }
    Ok(vars)
}

/// What `${NAME}` resolves from: the env file's variables (read now), then the process
/// environment. Start-up and every reload call it, so an edited env file takes effect.
pub fn environment(
    env_file: Option<&Path>,
) -> Result<impl Fn(&str) -> Option<String>, EnvFileError> {
    let vars = match env_file {
        Some(file) => read_env_file(file)?,
        None => BTreeMap::new(),
    };
    Ok(move |name: &str| vars.get(name).cloned().or_else(|| std::env::var(name).ok()))
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
    load_dir_keeping(dir, env, &Running::new())
}

/// Which file each running source came from (id -> file).
pub type Running = BTreeMap<String, PathBuf>;

/// Loads `dir` for a reload: where two files claim one id, or disagree on a merge policy,
/// the file of the running source wins and the other is reported, whatever their names.
pub fn load_dir_keeping(
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    running: &Running,
) -> Result<LoadedSources, DirectoryError> {
    let read_error = |source| DirectoryError {
        dir: dir.to_owned(),
        source,
    };
    let files = config::yaml_files(dir).map_err(read_error)?;
    let texts = files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).map_err(|err| ConfigError {
                file: file.clone(),
                line: None,
                path: String::new(),
                message: format!("cannot read the file: {err}"),
            });
            (file, text)
        })
        .collect();
    let mut loaded = load_texts_keeping(texts, env, running);
    let metrics = derived::load_dir(&derived::metrics_dir(dir), &loaded.sources);
    loaded.broken.extend(metrics.broken);
    loaded.derived = metrics.metrics;
    Ok(loaded)
}

/// Loads source files given as (path, text or read error), in that order; nothing is
/// read from disk, so the same path gives the same answer as the text it came with.
pub fn load_texts(
    files: Vec<(PathBuf, Result<String, ConfigError>)>,
    env: &dyn Fn(&str) -> Option<String>,
) -> LoadedSources {
    load_texts_keeping(files, env, &Running::new())
}

fn load_texts_keeping(
    files: Vec<(PathBuf, Result<String, ConfigError>)>,
    env: &dyn Fn(&str) -> Option<String>,
    running: &Running,
) -> LoadedSources {
    let mut loaded = LoadedSources::default();
    let mut texts = BTreeMap::new();
    for (file, text) in files {
        let outcome = match &text {
            Ok(text) => load_source(&file, text, env),
            Err(err) => Err(vec![err.clone()]),
        };
        match outcome {
            Ok(spec) => loaded.sources.push(spec),
            Err(errors) => {
                loaded.broken.insert(file.clone(), errors);
            }
        }
        texts.insert(file, text.unwrap_or_default());
    }
    // Running sources first, so the checks below keep them and report the newcomer.
    let is_running = |spec: &SourceSpec| running.get(&spec.id) == Some(&spec.file);
    loaded.sources.sort_by_key(|spec| !is_running(spec));
    check_across_files(&mut loaded, &texts);
    loaded.sources.sort_by(|a, b| a.id.cmp(&b.id));
    loaded
}

/// Checks that need every file: unique ids and agreeing merge policies. The later file
/// (in file name order) is the one reported, naming the earlier one. What the kept
/// sources say about merging becomes `loaded.policies`.
fn check_across_files(loaded: &mut LoadedSources, texts: &BTreeMap<PathBuf, String>) {
    let mut ids: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut policies: BTreeMap<(Dataset, String), (MergePolicy, PathBuf)> = BTreeMap::new();
    let mut kept = Vec::new();
    for spec in std::mem::take(&mut loaded.sources) {
        let text = texts.get(&spec.file).map_or("", String::as_str);
        let error = |path: String, message: String| ConfigError {
            file: spec.file.clone(),
            line: locate(text, &path),
            path,
            message,
        };
        let mut errors = Vec::new();
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
        for (dataset, field, policy) in spec.merge_policies() {
            let Some((other, file)) = policies.get(&(dataset, field.to_owned())) else {
                continue;
            };
            if *other != policy {
                errors.push(error(
                    format!("/merge/{dataset}/{field}"),
                    format!(
                        "merge policy {policy} disagrees with {other} in {}: sources must agree on how {dataset}.{field} combines",
                        file.display()
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            loaded.broken.insert(spec.file.clone(), errors);
            continue;
        }
        ids.insert(spec.id.clone(), spec.file.clone());
        for (dataset, field, policy) in spec.merge_policies() {
            policies
                .entry((dataset, field.to_owned()))
                .or_insert((policy, spec.file.clone()));
        }
        kept.push(spec);
    }
    loaded.sources = kept;
    loaded.policies = policies
        .into_iter()
        .map(|(key, (policy, _))| (key, policy))
        .collect();
}

/// Loads one source file from its text: parse, interpolate, schema, typed parse, validate.
pub fn load_source(
    file: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SourceSpec, Vec<ConfigError>> {
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
    let mut document = parse_yaml(file, text).map_err(|problem| match problem {
        Err(errors) => errors,
        Ok(problem) => finish(vec![problem], &[]),
    })?;
    let secrets = interpolate::interpolate_document(&mut document, env).map_err(|errors| {
        let problems = errors.into_iter().map(|(p, e)| (p, e.to_string()));
        finish(problems.collect(), &[])
    })?;
    let mut problems = schema_problems(&document);
    if problems.is_empty() {
        let mut spec =
            typed_problems(file, &document, secrets).map_err(|problems| finish(problems, &[]))?;
        spec.fingerprint = fingerprint(&document, &spec);
        spec.definition = definition(&document, &spec);
        return Ok(spec);
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

/// What a reload compares to tell a changed source from an unchanged one: the file's
/// path, its interpolated document with keys in a canonical order (so comments, layout
/// and key order do not count, a rotated secret does), and the bytes of every file it
/// refers to, such as a plugin's component.
fn fingerprint(document: &Value, spec: &SourceSpec) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(spec.file.as_os_str().as_encoded_bytes());
    hasher.update([0]);
    hasher.update(canonical(document).to_string());
    for referenced in spec.referenced_files() {
        match std::fs::read(&referenced) {
            Ok(bytes) => hasher.update(Sha256::digest(bytes)),
            Err(_) => hasher.update(b"unreadable"),
        }
    }
    hasher.finalize().into()
}

/// A digest of what decides a source's numbers: its kind, connection, queries, mappings
/// and identifiers as written (environment values redacted, so a rotated secret does not
/// count) and the files it refers to. Stored history days carry it: a changed query makes
/// them stale, never wrong.
fn definition(document: &Value, spec: &SourceSpec) -> String {
    let mut hasher = Sha256::new();
    for key in ["kind", "connection", "queries", "mappings", "identifiers"] {
        let part = document.get(key).map(canonical).unwrap_or(Value::Null);
        hasher.update(redact(&part.to_string(), &spec.secrets));
        hasher.update([0]);
    }
    for referenced in spec.referenced_files() {
        if let Ok(bytes) = std::fs::read(&referenced) {
            hasher.update(Sha256::digest(bytes));
        }
    }
    hasher
        .finalize()
        .iter()
        .take(12)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let sorted = keys
                .into_iter()
                .map(|key| (key.clone(), canonical(&map[key])))
                .collect();
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The YAML document as JSON, which must be a mapping. `Err(Ok(problem))` is a problem
/// at a pointer; `Err(Err(errors))` a YAML syntax error, which carries its own line.
fn parse_yaml(
    file: &Path,
    text: &str,
) -> Result<Value, Result<(String, String), Vec<ConfigError>>> {
    match serde_yaml::from_str(text) {
        Ok(Value::Object(map)) => Ok(Value::Object(map)),
        Ok(_) => Err(Ok((
            String::new(),
            "a source file must be a YAML mapping with id, name, kind, ...".into(),
        ))),
        Err(err) => Err(Err(vec![ConfigError {
            file: file.to_owned(),
            line: err.location().map(|l| l.line()),
            path: String::new(),
            message: format!("not valid YAML: {err}"),
        }])),
    }
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
        .parse::<SourceConfig>("", document)
        .and_then(|config| validate(file, config, secrets.clone(), &mut problems));
    match spec {
        Some(spec) if problems.is_empty() => Ok(spec),
        _ => Err(problems
            .into_list()
            .into_iter()
            .map(|(path, message)| (path, redact(&message, &secrets)))
            .collect()),
    }
}

/// The common fields, then the kind's part, then what depends on the kind's datasets.
fn validate(
    file: &Path,
    mut config: SourceConfig,
    secrets: Arc<Vec<String>>,
    problems: &mut Problems,
) -> Option<SourceSpec> {
    let common = config::common::compile(&mut config, problems);
    let context = KindContext {
        connection: config.connection.as_ref(),
        queries: &config.queries,
        identifiers: &common.identifiers,
        filters: &common.filters,
        enabled: common.enabled,
    };
    let kind = kinds::compile(&config.kind, &context, problems)?;
    let mappings = config::common::mappings(config.mappings, kind.datasets(), problems);
    let merge = config::common::merge(config.merge, problems);
    let history = config
        .history
        .map(|history| config::history::compile(history, kind.datasets(), problems));
    Some(SourceSpec {
        id: common.id,
        name: common.name,
        badge: common.badge,
        description: common.description,
        enabled: common.enabled,
        file: file.to_owned(),
        cache_ttl: common.cache_ttl,
        stale: common.stale,
        timeout: common.timeout,
        concurrency: common.concurrency,
        filters: common.filters,
        mappings,
        merge,
        kind,
        history,
        secrets,
        fingerprint: [0; 32],
        definition: String::new(),
    })
}

#[cfg(test)]
mod tests;
