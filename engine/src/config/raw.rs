//! The serde shapes of a sources.d file, mirroring the YAML one to one. Unknown keys are
//! errors (`deny_unknown_fields`), so a typo is reported rather than silently ignored.
//! Kind-specific parts (`connection`, each query) stay JSON here and are parsed by the
//! kind's own module, so adding a kind touches one file.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A whole source file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique id: lowercase letters, digits and dashes.
    pub id: String,
    /// Human-readable name shown in `/api/sources`.
    pub name: String,
    /// A short label (e.g. `GA4`, `CRM`, `DB`) the dashboard puts on numbers from this
    /// source; the name when absent.
    #[serde(default)]
    pub badge: Option<String>,
    /// Which built-in kind reads this source.
    pub kind: KindName,
    /// Whether the hub queries this source; `true` when absent.
    #[serde(default)]
    pub enabled: Option<Flag>,
    /// Free text for admins.
    #[serde(default)]
    pub description: Option<String>,
    /// Kind-specific connection settings.
    #[serde(default)]
    pub connection: Option<Value>,
    /// Caching of this source's answers.
    #[serde(default)]
    pub cache: Option<CacheConfig>,
    /// Deadline for one fetch of this source, e.g. `10s`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Request filters this source accepts, by name.
    #[serde(default)]
    pub filters: BTreeMap<String, FilterConfig>,
    /// Identifiers the templates may vary through `ident(...)`.
    #[serde(default)]
    pub identifiers: Vec<String>,
    /// One query per dataset, kind-specific.
    #[serde(default)]
    pub queries: BTreeMap<String, Value>,
    /// Per dataset: unified field -> source column.
    #[serde(default)]
    pub mappings: BTreeMap<String, BTreeMap<String, MappingConfig>>,
    /// Per dataset: field -> how values from several sources combine.
    #[serde(default)]
    pub merge: BTreeMap<String, BTreeMap<String, MergePolicy>>,
}

/// The built-in source kinds. Openness comes from WASM plugins, not from more variants here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KindName {
    Sql,
    Rest,
    Bigquery,
    Wasm,
}

/// A boolean, or a string that became one after `${...}` interpolation.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Flag {
    Bool(bool),
    Text(String),
}

/// A whole number, or a string that became one after interpolation.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Number {
    Integer(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// How long answers stay cached, e.g. `5m`; `0s` turns caching off.
    pub ttl: Option<String>,
}

/// A declared request filter.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum FilterConfig {
    String {
        description: Option<String>,
        max_length: Option<usize>,
    },
    Integer {
        description: Option<String>,
        minimum: Option<i64>,
        maximum: Option<i64>,
    },
    Date {
        description: Option<String>,
    },
    Enum {
        description: Option<String>,
        values: Vec<String>,
    },
}

/// A mapping: either the column name, or the column with a default for NULL.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum MappingConfig {
    Column(String),
    Full(FullMapping),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullMapping {
    pub column: String,
    #[serde(default)]
    pub default: Option<Value>,
}

/// How a field combines across sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MergePolicy {
    /// Add the values (the original dashboard's only policy).
    #[default]
    Sum,
    Max,
    Min,
    /// Keep the value of the first source, in source id order.
    First,
}

/// A byte count, or text such as `16MiB` (rest response caps, wasm sandbox sizes).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    /// The size in bytes, or `None` when the text is not a size.
    pub fn bytes(&self) -> Option<u64> {
        match self {
            Size::Bytes(bytes) => Some(*bytes),
            Size::Text(text) => parse_size(text),
        }
    }
}

/// Parses a byte size as YAML writes it: `65536`, `512KiB`, `64MiB`, `1GiB` (also KB, MB,
/// GB as powers of 1000).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_binary_and_decimal_units() {
        assert_eq!(parse_size("65536"), Some(65536));
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("16 KiB"), Some(16 << 10));
        assert_eq!(parse_size("2MB"), Some(2_000_000));
        assert_eq!(parse_size("1.5MiB"), None);
        assert_eq!(parse_size("MiB"), None);
        assert_eq!(parse_size("5 parsecs"), None);
    }
}
