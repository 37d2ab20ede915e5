//! The part of a source file every kind shares, validated: id, name, badge, enabled,
//! cache and timeout, identifiers, filters, mappings and merge policies. The kind's own
//! part (`connection`, each query) is compiled by its folder under `kinds/`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use super::filter::{self, FilterSpec};
use super::names::{FIELD_NAME, IDENTIFIER, SOURCE_ID};
use super::raw::{CacheConfig, Flag, MappingConfig, MergePolicy, SourceConfig};
use super::Problems;
use crate::mapping::FieldMapping;
use crate::model::Dataset;

const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CONCURRENCY: i64 = 4;
/// Badges sit beside numbers on the dashboard: a few characters, not a sentence.
const MAX_BADGE_CHARS: usize = 16;

/// Per dataset: unified field -> where it comes from.
pub type Mappings = BTreeMap<Dataset, BTreeMap<String, FieldMapping>>;
/// Per dataset: field -> how values from several sources combine.
pub type MergePolicies = BTreeMap<Dataset, BTreeMap<String, MergePolicy>>;

/// The validated fields every kind shares (mappings and merge policies apart: they are
/// checked against the datasets the kind answers, see [`mappings`] and [`merge`]).
#[derive(Debug, Clone)]
pub struct Common {
    pub id: String,
    pub name: String,
    /// The YAML `badge`, or the name.
    pub badge: String,
    pub description: Option<String>,
    pub enabled: bool,
    /// `Duration::ZERO` turns caching off.
    pub cache_ttl: Duration,
    /// How long past its TTL an entry may still be served; `None` takes the hub's default.
    pub stale: StaleConfig,
    pub timeout: Duration,
    /// Upstream fetches that may run at once.
    pub concurrency: usize,
    pub identifiers: BTreeSet<String>,
    pub filters: BTreeMap<String, FilterSpec>,
}

/// Validates the shared fields of `config`, recording every problem.
pub fn compile(config: &mut SourceConfig, problems: &mut Problems) -> Common {
    if !SOURCE_ID.allows(&config.id) {
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
    let badge = badge(config, problems);
    let enabled = enabled(config.enabled.as_ref(), problems);
    let ttl = config.cache.as_ref().and_then(|c| c.ttl.as_deref());
    let cache_ttl = problems.duration("/cache/ttl", ttl, DEFAULT_CACHE_TTL);
    let stale = stale(config.cache.as_ref(), problems);
    let timeout = problems.duration("/timeout", config.timeout.as_deref(), DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        problems.add("/timeout", "timeout must be longer than zero");
    }
    let concurrency = problems.bounded(
        "/concurrency",
        config.concurrency.as_ref(),
        1..=64,
        DEFAULT_CONCURRENCY,
        "concurrency",
    ) as usize;
    Common {
        id: config.id.clone(),
        name: config.name.clone(),
        badge,
        description: config.description.clone(),
        enabled,
        cache_ttl,
        stale,
        timeout,
        concurrency,
        identifiers: identifiers(&config.identifiers, problems),
        filters: filter::compile(std::mem::take(&mut config.filters), problems),
    }
}

/// A source's stale windows, each `None` where the file leaves it to the hub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StaleConfig {
    pub while_revalidate: Option<Duration>,
    pub if_error: Option<Duration>,
}

fn stale(cache: Option<&CacheConfig>, problems: &mut Problems) -> StaleConfig {
    let mut window = |pointer: &str, value: Option<&String>| {
        let value = value?;
        Some(problems.duration(pointer, Some(value), Duration::ZERO))
    };
    StaleConfig {
        while_revalidate: window(
            "/cache/stale_while_revalidate",
            cache.and_then(|c| c.stale_while_revalidate.as_ref()),
        ),
        if_error: window(
            "/cache/stale_if_error",
            cache.and_then(|c| c.stale_if_error.as_ref()),
        ),
    }
}

fn badge(config: &SourceConfig, problems: &mut Problems) -> String {
    match config.badge.as_deref().map(str::trim) {
        None => config.name.trim().to_owned(),
        Some(badge) if badge.is_empty() || badge.chars().count() > MAX_BADGE_CHARS => {
            problems.add(
                "/badge",
                format!("badge must be 1 to {MAX_BADGE_CHARS} characters, e.g. GA4, CRM or DB; leave it out to show the name"),
            );
            String::new()
        }
        Some(badge) => badge.to_owned(),
    }
}

/// `enabled:` as a flag; absent means enabled.
fn enabled(flag: Option<&Flag>, problems: &mut Problems) -> bool {
    match flag {
        None => true,
        Some(flag) => flag.value().unwrap_or_else(|other| {
            problems.add("/enabled", format!("`{other}` is not true or false"));
            false
        }),
    }
}

fn identifiers(names: &[String], problems: &mut Problems) -> BTreeSet<String> {
    let mut identifiers = BTreeSet::new();
    for (index, name) in names.iter().enumerate() {
        let pointer = format!("/identifiers/{index}");
        if !IDENTIFIER.allows(name) {
            problems.add(
                &pointer,
                format!("`{name}` is not a plain SQL identifier: use letters, digits and _"),
            );
        } else if !identifiers.insert(name.clone()) {
            problems.add(&pointer, format!("`{name}` is listed twice"));
        }
    }
    identifiers
}

/// Validates `mappings:`; `datasets` are those the kind has a query for.
pub fn mappings(
    config: BTreeMap<String, BTreeMap<String, MappingConfig>>,
    datasets: &BTreeSet<Dataset>,
    problems: &mut Problems,
) -> Mappings {
    let mut mappings = BTreeMap::new();
    for (name, fields) in config {
        let pointer = format!("/mappings/{name}");
        let Some(dataset) = dataset(&name, &pointer, problems) else {
            continue;
        };
        if !datasets.contains(&dataset) {
            problems.add(
                &pointer,
                format!("there is no `queries.{name}` for this mapping to apply to"),
            );
        }
        let typed = fields
            .into_iter()
            .filter_map(|(field, mapping)| {
                let mapping = field_mapping(dataset, &pointer, &field, mapping, problems)?;
                Some((field, mapping))
            })
            .collect();
        mappings.insert(dataset, typed);
    }
    mappings
}

fn field_mapping(
    dataset: Dataset,
    pointer: &str,
    field: &str,
    mapping: MappingConfig,
    problems: &mut Problems,
) -> Option<FieldMapping> {
    if dataset.field_type(field).is_none() {
        let known: Vec<_> = dataset.fields().iter().map(|(f, _)| *f).collect();
        problems.add(
            &format!("{pointer}/{field}"),
            format!(
                "`{field}` is not a unified field of {dataset}: map to one of {} (other columns pass through unmapped as extra fields)",
                known.join(", ")
            ),
        );
        return None;
    }
    match mapping {
        MappingConfig::Column(column) => Some(FieldMapping {
            column,
            default: None,
        }),
        MappingConfig::Full(full)
            if matches!(full.default, Some(Value::Array(_) | Value::Object(_))) =>
        {
            problems.add(
                &format!("{pointer}/{field}/default"),
                "a default must be a number, string, boolean or null",
            );
            None
        }
        MappingConfig::Full(full) => Some(FieldMapping {
            column: full.column,
            default: full.default,
        }),
    }
}

/// Validates `merge:`: known datasets, plain field names.
pub fn merge(
    config: BTreeMap<String, BTreeMap<String, MergePolicy>>,
    problems: &mut Problems,
) -> MergePolicies {
    let mut merge = BTreeMap::new();
    for (name, fields) in config {
        let pointer = format!("/merge/{name}");
        let Some(dataset) = dataset(&name, &pointer, problems) else {
            continue;
        };
        for field in fields.keys().filter(|field| !FIELD_NAME.allows(field)) {
            problems.add(
                &format!("{pointer}/{field}"),
                format!("`{field}` is not a field name"),
            );
        }
        merge.insert(dataset, fields);
    }
    merge
}

/// The dataset a `mappings:`/`merge:`/`queries:` key names, or a recorded problem.
pub fn dataset(name: &str, pointer: &str, problems: &mut Problems) -> Option<Dataset> {
    let dataset = Dataset::parse(name);
    if dataset.is_none() {
        problems.add(
            pointer,
            format!("`{name}` is not a dataset: use summary, daily, features or clients"),
        );
    }
    dataset
}
