//! The serde shapes of a sources.d file that every kind shares, mirroring the YAML one to
//! one. Unknown keys are errors (`deny_unknown_fields`), so a typo is reported rather
//! than silently ignored. Kind-specific parts (`connection`, each query) stay JSON here
//! and are parsed by the kind's own folder under `kinds/`, so adding a kind touches
//! nothing here.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::names::{self, FIELD_NAME};
use super::schema::{self, UNINTERPOLATED};
use crate::model::Dataset;

/// One data source for Metrics Hub: a file sources.d/NAME.yaml declares where the data
/// lives, which request filters it accepts, the query that answers each dataset
/// (summary, daily, features, clients) and how its columns map onto the unified fields.
/// Values are checked after ${VAR}, ${VAR:-default} and ${VAR:+value} interpolation; a
/// value that still contains ${...} is accepted wherever a duration, a flag or a number
/// is expected so that editors do not flag the raw file. An explicit null is the same as
/// leaving a key out.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Metrics Hub source")]
pub struct SourceConfig {
    /// Stable identifier of the source, unique across all files in sources.d. Lower-case
    /// letters, digits and '-'. It appears in API responses, per-source status and logs.
    #[schemars(regex(pattern = names::SOURCE_ID.pattern), extend("examples" = ["demo", "postgres-prod"]))]
    pub id: String,
    /// Human-readable name shown in dashboards and status output.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Short label the dashboard shows beside numbers that come from this source, e.g.
    /// "GA4", "CRM" or "DB". At most 16 characters; the name is shown when absent.
    #[serde(default)]
    #[schemars(length(min = 1, max = 16), extend("examples" = ["GA4", "CRM", "DB"]))]
    pub badge: Option<String>,
    /// How the hub talks to this source; each kind's own keys are described under
    /// `$defs/kind-NAME`.
    pub kind: String,
    /// Whether the hub loads this source (default true). A boolean, or a string that is
    /// "true", "false" or "" after interpolation; "" means false, so
    /// `enabled: "${DATABASE_URL:+true}"` turns a source on only when DATABASE_URL is set.
    #[serde(default)]
    #[schemars(extend("default" = true))]
    pub enabled: Option<Flag>,
    /// Free text for people reading the configuration; not used by the hub.
    #[serde(default)]
    pub description: Option<String>,
    /// Where the data lives. Its shape depends on kind (see `$defs/kind-NAME`).
    #[serde(default)]
    #[schemars(with = "Option<Map<String, Value>>")]
    pub connection: Option<Value>,
    /// Caching of this source's results.
    #[serde(default)]
    pub cache: Option<CacheConfig>,
    /// Upstream fetches of this source that may run at once, 1 to 64 (default 4). A
    /// request that needs another while the hub's queue for this source is full is
    /// answered 503 with Retry-After, while cached answers keep flowing.
    #[serde(default)]
    #[schemars(range(min = 1, max = 64))]
    pub concurrency: Option<Number>,
    /// Longest time one fetch of this source may take before it is abandoned and the
    /// source is reported as timed out (default 10s).
    #[serde(default)]
    #[schemars(schema_with = "schema::duration", extend("default" = "10s"))]
    pub timeout: Option<String>,
    /// Request filters this source accepts, by name. Templates see the declared filters
    /// given in the request as filters.NAME; a declared filter the request does not give
    /// is undefined.
    #[serde(default)]
    #[schemars(extend("propertyNames" = {"description": "Filter name: a lower-case letter, then lower-case letters, digits or '_'.", "pattern": names::FILTER_NAME.pattern}))]
    pub filters: BTreeMap<String, FilterConfig>,
    /// Allowlist of SQL identifiers (table or column names) that templates may emit
    /// through ident(...). Anything else passed to ident() is a render error.
    #[serde(default)]
    #[schemars(extend("uniqueItems" = true), inner(regex(pattern = names::IDENTIFIER.pattern)))]
    pub identifiers: Vec<String>,
    /// How this source answers each dataset; give at least one (a wasm source may leave
    /// them out to take all four). A dataset without a query is simply not provided by
    /// this source. Each query's shape depends on kind.
    #[serde(default)]
    #[schemars(schema_with = "queries")]
    pub queries: BTreeMap<String, Value>,
    /// Per dataset, which column of the query result fills each unified field. Unmapped
    /// unified fields are taken from the column of the same name; columns not mapped to a
    /// unified field pass through as extra fields.
    #[serde(default)]
    #[schemars(schema_with = "mappings")]
    pub mappings: BTreeMap<String, BTreeMap<String, MappingConfig>>,
    /// Per dataset, how a field is combined when several sources return it for the same
    /// key (for summary, across sources; for daily, features and clients, per date,
    /// feature or client). Fields not listed are summed.
    #[serde(default)]
    #[schemars(schema_with = "merge")]
    pub merge: BTreeMap<String, BTreeMap<String, MergePolicy>>,
    /// Keep this source's settled days in the hub's history store, so that a request
    /// queries only the days that can still change (off unless declared).
    #[serde(default)]
    pub history: Option<HistoryConfig>,
}

/// `history:` of a source. Days are stored per UTC day once settled; a request's window
/// is answered from stored days plus a fresh fetch of the open days. Only fields that add
/// up across days are summed from the store (see `additive`); a dataset with a field that
/// does not (distinct users, active clients) is queried for the whole window as before.
/// Requests with filters are always queried directly.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "history")]
pub struct HistoryConfig {
    /// How long after a UTC day ends its numbers may still change (default 1d). GA4's
    /// export keeps changing for about two days ("2d"); a CRM's created counts settle at
    /// once ("0s"). Days that are not settled are always fetched fresh.
    #[serde(default)]
    #[schemars(schema_with = "schema::duration", extend("default" = "1d"))]
    pub settle: Option<String>,
    /// How far back the background backfill stores settled days (default 90d, whole days).
    #[serde(default)]
    #[schemars(schema_with = "schema::duration", extend("default" = "90d"))]
    pub backfill: Option<String>,
    /// The backfill's pace: at most one day fetched per this interval (default 1s).
    #[serde(default)]
    #[schemars(schema_with = "schema::duration", extend("default" = "1s"))]
    pub backfill_every: Option<String>,
    /// Stored days older than this are deleted (default 400d); at least `backfill`.
    #[serde(default)]
    #[schemars(schema_with = "schema::duration", extend("default" = "400d"))]
    pub retention: Option<String>,
    /// Per dataset (summary, features, clients), the fields that add up across days, so a
    /// window's value is the sum of its days'. Defaults: summary total_events and
    /// page_views; features views; clients events and page_views. A dataset is served
    /// from the store only when every unified field of it is listed; extra fields not
    /// listed are left out of stored answers, with a warning. Daily rows are one per day
    /// and are stored whole.
    #[serde(default)]
    #[schemars(schema_with = "additive")]
    pub additive: BTreeMap<String, Vec<String>>,
}

/// A boolean, or a string that became one after `${...}` interpolation.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Flag {
    Bool(bool),
    Text(String),
}

impl JsonSchema for Flag {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Flag".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"anyOf": [
            {"type": "boolean"},
            {"type": "string", "enum": ["true", "false", ""]},
            {"type": "string", "pattern": UNINTERPOLATED}
        ]})
    }
}

impl Flag {
    /// The flag's value: `true`, `false`, or `""` (an unset `${VAR:+true}`) as false;
    /// any other text is returned as the error.
    pub fn value(&self) -> Result<bool, String> {
        match self {
            Flag::Bool(flag) => Ok(*flag),
            Flag::Text(text) => match text.trim() {
                "true" => Ok(true),
                "false" | "" => Ok(false),
                other => Err(other.to_owned()),
            },
        }
    }
}

/// A whole number, or a string that became one after interpolation.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Number {
    Integer(i64),
    Text(String),
}

/// An integer, or a string of digits (or still `${...}`); ranges are the field's.
impl JsonSchema for Number {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Number".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["integer", "string"],
            "pattern": format!("^ *[0-9]+ *$|{UNINTERPOLATED}")
        })
    }
}

impl Number {
    /// The number, or `None` when the text is not a whole number.
    pub fn value(&self) -> Option<i64> {
        match self {
            Number::Integer(n) => Some(*n),
            Number::Text(text) => text.trim().parse().ok(),
        }
    }
}

/// `cache:` of a source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "cache")]
pub struct CacheConfig {
    /// How long a result for the same request stays cached (default 5m). "0s" disables
    /// caching for this source.
    #[schemars(schema_with = "schema::duration", extend("default" = "5m"))]
    pub ttl: Option<String>,
    /// After the TTL, serve the expired result at once for this long while one refresh
    /// runs in the background (default: the hub's `--stale-while-revalidate`, 0s).
    #[serde(default)]
    #[schemars(schema_with = "schema::duration")]
    pub stale_while_revalidate: Option<String>,
    /// When a fresh fetch fails, serve a result up to this old instead of the error,
    /// marked stale with the error (default: the hub's `--stale-if-error`, 0s).
    #[serde(default)]
    #[schemars(schema_with = "schema::duration")]
    pub stale_if_error: Option<String>,
}

/// Declaration of one request filter. The keys allowed besides type and description
/// depend on type.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
#[schemars(rename = "filter", transform = schema::tagged_union)]
pub enum FilterConfig {
    /// Text.
    String {
        /// What the filter does, for API documentation.
        description: Option<String>,
        /// Longest accepted value in characters (default 256).
        #[schemars(range(min = 1), extend("default" = 256))]
        max_length: Option<usize>,
    },
    /// A whole number.
    Integer {
        /// What the filter does, for API documentation.
        description: Option<String>,
        /// Smallest accepted value.
        minimum: Option<i64>,
        /// Largest accepted value.
        maximum: Option<i64>,
    },
    /// A date written YYYY-MM-DD.
    Date {
        /// What the filter does, for API documentation.
        description: Option<String>,
    },
    /// One of a list of values.
    Enum {
        /// What the filter does, for API documentation.
        description: Option<String>,
        /// The accepted values (at least one).
        #[schemars(length(min = 1), extend("uniqueItems" = true), inner(length(min = 1)))]
        values: Vec<String>,
    },
}

/// The column that fills this field: its name, or {column, default} to also give a
/// value used when the column is NULL.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum MappingConfig {
    Column(String),
    Full(FullMapping),
}

/// Written by hand rather than derived: `if`/`else` on the type instead of `anyOf`, so
/// errors point at the key that is wrong.
impl JsonSchema for MappingConfig {
    fn schema_name() -> Cow<'static, str> {
        "mapping".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut full = generator.subschema_for::<FullMapping>().to_value();
        full.as_object_mut().map(|o| o.remove("type"));
        json_schema!({
            "description": "The column that fills this field: its name, or {column, default} to also give a value used when the column is NULL.",
            "type": ["string", "object"],
            "if": {"type": "string"},
            "then": {"minLength": 1},
            "else": full
        })
    }
}

/// A mapping with a value for NULL.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
pub struct FullMapping {
    /// Name of the result column.
    #[schemars(length(min = 1))]
    pub column: String,
    /// Value used when the column is NULL: a number, a string, a boolean or null.
    #[serde(default)]
    #[schemars(with = "Option<Scalar>")]
    pub default: Option<Value>,
}

/// The schema of a JSON scalar (what a mapping's default may be).
struct Scalar;

impl JsonSchema for Scalar {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Scalar".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": ["null", "number", "string", "boolean"]})
    }
}

/// sum adds the values (default); max and min keep the largest or smallest; first keeps
/// the value from the first source (in id order) that returns one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline, transform = schema::plain_enum)]
pub enum MergePolicy {
    /// Add the values (the original dashboard's only policy).
    #[default]
    Sum,
    /// Keep the largest value.
    Max,
    /// Keep the smallest value.
    Min,
    /// Keep the value of the first source, in source id order.
    First,
}

/// As written in YAML: `sum`, `max`, `min`, `first`.
impl std::fmt::Display for MergePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MergePolicy::Sum => "sum",
            MergePolicy::Max => "max",
            MergePolicy::Min => "min",
            MergePolicy::First => "first",
        })
    }
}

/// A byte count, or text such as `16MiB` (rest response caps, wasm sandbox sizes).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

impl JsonSchema for Size {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // No pattern: the typed check's message says which sizes are accepted.
        json_schema!({"type": ["integer", "string"], "minimum": 1})
    }
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

/// `queries:`: one entry per dataset; each kind says what an entry holds.
fn queries(_: &mut SchemaGenerator) -> Schema {
    let datasets: Map<String, Value> = Dataset::ALL
        .iter()
        .map(|d| {
            let about = json!({"description": d.description(), "type": "object"});
            (d.as_str().to_owned(), about)
        })
        .collect();
    json_schema!({
        "type": "object",
        "minProperties": 1,
        "additionalProperties": false,
        "properties": datasets
    })
}

/// `mappings:`: per dataset, a column (or column and default) per unified field.
fn mappings(generator: &mut SchemaGenerator) -> Schema {
    let mapping = generator.subschema_for::<MappingConfig>().to_value();
    let datasets: Map<String, Value> = Dataset::ALL
        .iter()
        .map(|&dataset| {
            let fields: Vec<&str> = dataset.fields().iter().map(|(f, _)| *f).collect();
            let properties: Map<String, Value> = fields
                .iter()
                .map(|field| {
                    let mut schema = json!({"description": dataset.field_description(field)});
                    merge_into(&mut schema, &mapping);
                    ((*field).to_owned(), schema)
                })
                .collect();
            let schema = json!({
                "description": format!("Column for each {dataset} field."),
                "type": "object",
                "propertyNames": {"enum": fields},
                "properties": properties
            });
            (dataset.as_str().to_owned(), schema)
        })
        .collect();
    json_schema!({"type": "object", "additionalProperties": false, "properties": datasets})
}

/// `merge:`: per dataset, a policy per field name.
fn merge(generator: &mut SchemaGenerator) -> Schema {
    let policy = generator.subschema_for::<MergePolicy>().to_value();
    let datasets: Map<String, Value> = Dataset::ALL
        .iter()
        .map(|&dataset| {
            let fields: Vec<&str> = dataset.fields().iter().map(|(f, _)| *f).collect();
            let matched = match dataset.key_field() {
                Some(key) => format!("; rows are matched by {key}"),
                None => String::new(),
            };
            let schema = json!({
                "description": format!("Merge policies for {dataset} fields ({}, or an extra field){matched}.", fields.join(", ")),
                "type": "object",
                "propertyNames": {
                    "description": "A unified field or an extra (passed-through) field name.",
                    "pattern": FIELD_NAME.pattern
                },
                "additionalProperties": policy
            });
            (dataset.as_str().to_owned(), schema)
        })
        .collect();
    json_schema!({"type": "object", "additionalProperties": false, "properties": datasets})
}

/// `history.additive:`: per dataset that sums across days, a list of field names.
fn additive(_: &mut SchemaGenerator) -> Schema {
    let datasets: Map<String, Value> = [Dataset::Summary, Dataset::Features, Dataset::Clients]
        .iter()
        .map(|&dataset| {
            let schema = json!({
                "description": format!("The {dataset} fields that add up across days."),
                "type": "array",
                "uniqueItems": true,
                "items": {"type": "string", "pattern": FIELD_NAME.pattern}
            });
            (dataset.as_str().to_owned(), schema)
        })
        .collect();
    json_schema!({"type": "object", "additionalProperties": false, "properties": datasets})
}

/// Adds the keywords of `from` that `into` does not have yet.
fn merge_into(into: &mut Value, from: &Value) {
    if let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) {
        for (key, value) in from {
            into.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_policies_print_as_written() {
        let written: Vec<MergePolicy> =
            serde_json::from_str(r#"["sum", "max", "min", "first"]"#).unwrap();
        let shown: Vec<String> = written.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["sum", "max", "min", "first"]);
    }

    #[test]
    fn flags_and_numbers_read_interpolated_text() {
        assert_eq!(Flag::Text(" true ".into()).value(), Ok(true));
        assert_eq!(Flag::Text(String::new()).value(), Ok(false));
        assert_eq!(Flag::Text("yes".into()).value(), Err("yes".into()));
        assert_eq!(Number::Text(" 42".into()).value(), Some(42));
        assert_eq!(Number::Text("4x".into()).value(), None);
    }

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
