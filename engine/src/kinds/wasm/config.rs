//! The `wasm` kind's part of a source file, compiled into a [`WasmSpec`]:
//!
//! ```yaml
//! kind: wasm
//! timeout: 10s
//! connection:
//!   component: ../plugins/target/wasm32-wasip2/release/salesforce.wasm  # relative to this file
//!   config:                          # handed to the plugin's initialize, values as strings
//!     instance_url: ${SALESFORCE_INSTANCE_URL}
//!     client_secret: ${SALESFORCE_CLIENT_SECRET}
//!   sandbox:                         # every key optional; the defaults are safe
//!     allowed_hosts: ["https://*.my.salesforce.com"]   # default: none
//!     memory: 64MiB                  # per instance
//!     cpu_deadline: 10s              # per call; default: the source's timeout
//!     max_response_bytes: 16MiB      # per HTTP response
//!     max_requests_per_call: 100
//!     instances: 2                   # instances kept for concurrent requests
//!     allow_private_addresses: false # let allowed names resolve to internal addresses
//!     rate_limit: {requests_per_second: 4, burst: 1}   # per allowed host; default none
//!     retry: {max_tries: 3, initial_backoff: 500ms, max_backoff: 8s}   # 429 and 503
//! queries:                           # the datasets taken from the plugin; default all
//!   summary: {}
//!   daily: {}
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::{JsonSchema, SchemaGenerator};
use serde::Deserialize;
use serde_json::Value;

use crate::config::raw::{Flag, Number, Size};
use crate::config::Problems;
use crate::kinds::{KindContext, KindSchema};
use crate::model::Dataset;
use crate::plugin::allowlist::{AllowedHost, Allowlist};
use crate::plugin::sandbox::{RateLimit, Sandbox};

/// The plugin, its configuration and its sandbox.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "wasm-connection")]
struct ConnectionConfig {
    /// The plugin's component file (.wasm), absolute or relative to this source file,
    /// e.g. ../plugins/target/wasm32-wasip2/release/salesforce.wasm.
    #[schemars(length(min = 1))]
    component: String,
    /// Key/value pairs handed to the plugin's initialize, values as strings. Use ${VAR}
    /// for secrets: they reach the plugin but never a log line.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ConfigValue>")]
    config: BTreeMap<String, Value>,
    /// What the plugin may use. Every limit has a safe default.
    #[serde(default)]
    sandbox: SandboxConfig,
}

/// A `config:` value: any scalar, handed to the plugin as text.
struct ConfigValue;

impl JsonSchema for ConfigValue {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ConfigValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": ["null", "string", "number", "boolean"]})
    }
}

/// What the plugin may use. Every limit has a safe default.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
struct SandboxConfig {
    /// Where the plugin may send HTTP requests: scheme, host and optional port, e.g.
    /// https://api.hubapi.com, https://*.my.salesforce.com (subdomains only),
    /// http://127.0.0.1:8080. Anything else is refused, redirects included (each hop is a
    /// new, checked request). Default: nowhere.
    #[serde(default)]
    #[schemars(extend("uniqueItems" = true), inner(length(min = 1)))]
    allowed_hosts: Vec<String>,
    /// Memory cap of each plugin instance, e.g. 64MiB (default), from 1MiB to 4GiB; a
    /// plugin growing past it traps.
    #[serde(default)]
    memory: Option<Size>,
    /// Longest a call into the plugin may run before it is interrupted (default: the
    /// source's timeout).
    #[serde(default)]
    #[schemars(schema_with = "crate::config::schema::duration")]
    cpu_deadline: Option<String>,
    /// Largest HTTP response body handed to the plugin, e.g. 16MiB (default); longer
    /// bodies are cut off while streaming and reported as too large.
    #[serde(default)]
    max_response_bytes: Option<Size>,
    /// Outbound requests one call may make, paging included (default 100, at most 10000).
    #[serde(default)]
    #[schemars(range(min = 0, max = 10_000))]
    max_requests_per_call: Option<Number>,
    /// Plugin instances kept for concurrent requests, 1 to 16 (default 2).
    #[serde(default)]
    #[schemars(range(min = 1, max = 16))]
    instances: Option<Number>,
    /// Let allowed host names resolve to loopback, private or link-local addresses
    /// (default false, so DNS cannot point an allowed name at an internal service). IP
    /// addresses listed in allowed_hosts are always reachable.
    #[serde(default)]
    allow_private_addresses: Option<Flag>,
    /// Paces requests to each allowed host (before they are sent, across every
    /// instance of this source), e.g. {requests_per_second: 4, burst: 1}. Default: no pacing.
    #[serde(default)]
    rate_limit: Option<RateLimitConfig>,
    /// Tries a 429 or 503 answer again, honouring Retry-After, else backing off
    /// exponentially with jitter, within the call's deadline. Every try counts against
    /// max_requests_per_call. Default: {max_tries: 3, initial_backoff: 500ms, max_backoff: 8s}.
    #[serde(default)]
    retry: Option<RetryConfig>,
}

/// `sandbox.rate_limit`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
struct RateLimitConfig {
    /// Requests per second to each allowed host, above 0 and at most 1000 (e.g. 4, 0.5).
    #[schemars(range(max = 1000))]
    requests_per_second: f64,
    /// Requests that may go back to back after a quiet spell, 1 to 1000 (default 1).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    burst: Option<Number>,
}

/// `sandbox.retry`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(inline)]
struct RetryConfig {
    /// Tries in all, the first included, 1 to 10 (default 3); 1 turns retries off.
    #[serde(default)]
    #[schemars(range(min = 1, max = 10))]
    max_tries: Option<Number>,
    /// The first wait when the answer has no Retry-After (default 500ms); doubled per try.
    #[serde(default)]
    #[schemars(schema_with = "crate::config::schema::duration")]
    initial_backoff: Option<String>,
    /// The longest such wait (default 8s).
    #[serde(default)]
    #[schemars(schema_with = "crate::config::schema::duration")]
    max_backoff: Option<String>,
}

/// Take this dataset from the plugin. Nothing to configure: write {}.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "wasm-query")]
struct QueryConfig {}

/// This kind's part of the source-file schema.
pub fn schema(generator: &mut SchemaGenerator) -> KindSchema {
    KindSchema {
        description: "A source answered by a WebAssembly plugin: a component implementing the metrics-hub:source/data-source world (see wit/ and plugins/README.md), run sandboxed by the hub. The plugin returns unified fields itself, so there are no mappings or identifiers; filters declared here are passed to it. `queries:` lists the datasets taken from the plugin, each as an empty mapping (e.g. `summary: {}`); all four when absent.",
        connection: generator.subschema_for::<ConnectionConfig>(),
        query: generator.subschema_for::<QueryConfig>(),
        required: &["connection"],
        refused: &["mappings", "identifiers"],
    }
}

/// The plugin's `config:` entries. Values may hold secrets: `Debug` shows keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PluginConfig(pub Vec<(String, String)>);

impl fmt::Debug for PluginConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(key, _)| (key, "***")))
            .finish()
    }
}

/// A validated `wasm` source.
#[derive(Debug, Clone)]
pub struct WasmSpec {
    /// The component as written; see [`WasmSpec::component_path`].
    pub component: PathBuf,
    pub config: PluginConfig,
    pub sandbox: Sandbox,
    /// Datasets this source provides.
    pub datasets: BTreeSet<Dataset>,
}

impl WasmSpec {
    /// The component file, a relative path being taken from the source file's directory.
    pub fn component_path(&self, source_file: &Path) -> PathBuf {
        if self.component.is_absolute() {
            return self.component.clone();
        }
        source_file
            .parent()
            .unwrap_or(Path::new("."))
            .join(&self.component)
    }
}

const MIN_MEMORY: u64 = 1 << 20;
const MAX_MEMORY: u64 = 4 << 30;

/// Parses and checks the kind-specific parts, recording problems under their pointers.
pub fn compile(context: &KindContext<'_>, problems: &mut Problems) -> Option<WasmSpec> {
    let Some(connection) = context.connection else {
        problems.add(
            "/connection",
            "a wasm source needs `connection:` with `component` (the plugin's .wasm file)",
        );
        return None;
    };
    let connection: ConnectionConfig = problems.parse("/connection", connection)?;
    if connection.component.trim().is_empty() {
        problems.add(
            "/connection/component",
            "give the plugin's .wasm file, relative to this file or absolute",
        );
    }
    let config = compile_plugin_config(connection.config, problems);
    let sandbox = compile_sandbox(connection.sandbox, problems);
    let mut datasets: BTreeSet<Dataset> = context
        .typed_queries::<QueryConfig>(problems)
        .into_iter()
        .map(|(dataset, _, _)| dataset)
        .collect();
    if context.queries.is_empty() {
        datasets.extend(Dataset::ALL);
    }
    if !context.identifiers.is_empty() {
        problems.add(
            "/identifiers",
            "identifiers are for SQL templates; a wasm source has none",
        );
    }
    Some(WasmSpec {
        component: PathBuf::from(connection.component.trim()),
        config: PluginConfig(config),
        sandbox,
        datasets,
    })
}

/// `config:` values as the text the plugin receives.
fn compile_plugin_config(
    config: BTreeMap<String, Value>,
    problems: &mut Problems,
) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    for (key, value) in config {
        let text = match value {
            Value::String(text) => text,
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            Value::Null => String::new(),
            Value::Array(_) | Value::Object(_) => {
                problems.add(
                    &format!("/connection/config/{key}"),
                    "a plugin config value must be a string, number or boolean",
                );
                continue;
            }
        };
        entries.push((key, text));
    }
    entries
}

/// `sandbox:` over the safe defaults: what the plugin may reach and use.
fn compile_sandbox(raw: SandboxConfig, problems: &mut Problems) -> Sandbox {
    let mut sandbox = Sandbox::default();
    let mut hosts = Vec::new();
    for (index, entry) in raw.allowed_hosts.iter().enumerate() {
        match AllowedHost::parse(entry) {
            Ok(host) => hosts.push(host),
            Err(why) => problems.add(&format!("/connection/sandbox/allowed_hosts/{index}"), why),
        }
    }
    sandbox.allowed_hosts = Allowlist(hosts);
    if let Some(size) = &raw.memory {
        match size.bytes() {
            Some(bytes) if (MIN_MEMORY..=MAX_MEMORY).contains(&bytes) => {
                sandbox.memory_bytes = bytes as usize
            }
            _ => problems.add(
                "/connection/sandbox/memory",
                "memory must be a size from 1MiB to 4GiB, e.g. 64MiB",
            ),
        }
    }
    if let Some(text) = raw.cpu_deadline.as_deref() {
        let pointer = "/connection/sandbox/cpu_deadline";
        let deadline = problems.duration(pointer, Some(text), Duration::ZERO);
        if deadline.is_zero() {
            problems.add(pointer, "cpu_deadline must be longer than zero");
        }
        sandbox.cpu_deadline = Some(deadline);
    }
    if let Some(size) = &raw.max_response_bytes {
        match size.bytes() {
            Some(bytes) if bytes > 0 => sandbox.max_response_bytes = bytes,
            _ => problems.add(
                "/connection/sandbox/max_response_bytes",
                "max_response_bytes must be a size above zero, e.g. 16MiB",
            ),
        }
    }
    compile_sandbox_counts(&raw, &mut sandbox, problems);
    compile_pacing(&raw, &mut sandbox, problems);
    if let Some(flag) = &raw.allow_private_addresses {
        match flag.value() {
            Ok(allowed) => sandbox.allow_private_addresses = allowed,
            Err(other) => problems.add(
                "/connection/sandbox/allow_private_addresses",
                format!("`{other}` is not true or false"),
            ),
        }
    }
    sandbox
}

/// The whole-number limits of `sandbox:`.
fn compile_sandbox_counts(raw: &SandboxConfig, sandbox: &mut Sandbox, problems: &mut Problems) {
    if let Some(number) = &raw.max_requests_per_call {
        match number.value() {
            Some(n @ 0..=10_000) => sandbox.max_requests_per_call = n as u32,
            _ => problems.add(
                "/connection/sandbox/max_requests_per_call",
                "max_requests_per_call must be a whole number from 0 to 10000",
            ),
        }
    }
    if let Some(number) = &raw.instances {
        match number.value() {
            Some(n @ 1..=16) => sandbox.instances = n as usize,
            _ => problems.add(
                "/connection/sandbox/instances",
                "instances must be a whole number from 1 to 16",
            ),
        }
    }
}

/// `sandbox.rate_limit` and `sandbox.retry`.
fn compile_pacing(raw: &SandboxConfig, sandbox: &mut Sandbox, problems: &mut Problems) {
    if let Some(limit) = &raw.rate_limit {
        let per_second = limit.requests_per_second;
        if !(per_second > 0.0 && per_second <= 1000.0) {
            problems.add(
                "/connection/sandbox/rate_limit/requests_per_second",
                "requests_per_second must be above 0 and at most 1000, e.g. 4 or 0.5",
            );
        }
        let burst = match limit.burst.as_ref().map(Number::value) {
            None => 1,
            Some(Some(n @ 1..=1000)) => n as u32,
            Some(_) => {
                problems.add(
                    "/connection/sandbox/rate_limit/burst",
                    "burst must be a whole number from 1 to 1000",
                );
                1
            }
        };
        sandbox.rate_limit = Some(RateLimit { per_second, burst });
    }
    let Some(retry) = &raw.retry else { return };
    let pointer = |key: &str| format!("/connection/sandbox/retry/{key}");
    match retry.max_tries.as_ref().map(Number::value) {
        None => {}
        Some(Some(n @ 1..=10)) => sandbox.retry.max_tries = n as u32,
        Some(_) => problems.add(
            &pointer("max_tries"),
            "max_tries must be a whole number from 1 to 10",
        ),
    }
    if let Some(text) = retry.initial_backoff.as_deref() {
        sandbox.retry.initial_backoff =
            problems.duration(&pointer("initial_backoff"), Some(text), Duration::ZERO);
    }
    if let Some(text) = retry.max_backoff.as_deref() {
        sandbox.retry.max_backoff =
            problems.duration(&pointer("max_backoff"), Some(text), Duration::ZERO);
    }
    if sandbox.retry.max_backoff < sandbox.retry.initial_backoff {
        problems.add(
            &pointer("max_backoff"),
            "max_backoff must be at least initial_backoff",
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::kinds::KindSpec;
    use crate::load::load_source;

    fn load(yaml: &str) -> Result<WasmSpec, Vec<String>> {
        let env = |name: &str| (name == "TOKEN").then(|| "s3cr3t-token".to_owned());
        match load_source(Path::new("/srv/sources.d/crm.yaml"), yaml, &env) {
            Ok(spec) => match spec.kind {
                KindSpec::Wasm(wasm) => Ok(wasm),
                other => panic!("not wasm: {other:?}"),
            },
            Err(errors) => Err(errors
                .into_iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect()),
        }
    }

    #[test]
    fn a_full_declaration_compiles() {
        let spec = load(
            "id: crm\nname: CRM\nkind: wasm\ntimeout: 5s\nconnection:\n  component: ../plugins/crm.wasm\n  config:\n    token: ${TOKEN}\n    page_size: 200\n    sandbox: true\n  sandbox:\n    allowed_hosts: [\"https://*.crm.example.com\", \"http://127.0.0.1:9000\"]\n    memory: 32MiB\n    cpu_deadline: 2s\n    max_response_bytes: 1MiB\n    max_requests_per_call: 20\n    instances: 3\nqueries:\n  summary: {}\n  daily: {}\n",
        )
        .unwrap();
        assert_eq!(
            spec.component_path(Path::new("/srv/sources.d/crm.yaml")),
            Path::new("/srv/sources.d/../plugins/crm.wasm")
        );
        assert_eq!(
            spec.config.0,
            vec![
                ("page_size".to_owned(), "200".to_owned()),
                ("sandbox".to_owned(), "true".to_owned()),
                ("token".to_owned(), "s3cr3t-token".to_owned()),
            ]
        );
        assert!(!format!("{spec:?}").contains("s3cr3t"));
        let sandbox = &spec.sandbox;
        assert_eq!(sandbox.allowed_hosts.0.len(), 2);
        assert_eq!(sandbox.memory_bytes, 32 << 20);
        assert_eq!(sandbox.cpu_deadline, Some(Duration::from_secs(2)));
        assert_eq!(sandbox.max_response_bytes, 1 << 20);
        assert_eq!(sandbox.max_requests_per_call, 20);
        assert_eq!(sandbox.instances, 3);
        assert_eq!(
            spec.datasets,
            BTreeSet::from([Dataset::Summary, Dataset::Daily])
        );
    }

    #[test]
    fn defaults_are_safe_and_every_dataset_is_taken() {
        let spec =
            load("id: crm\nname: CRM\nkind: wasm\nconnection:\n  component: /x.wasm\n").unwrap();
        assert_eq!(spec.sandbox, Sandbox::default());
        assert!(spec.sandbox.allowed_hosts.0.is_empty());
        assert_eq!(spec.sandbox.memory_bytes, 64 << 20);
        assert_eq!(spec.datasets.len(), 4);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let errors = load(
            "id: crm\nname: CRM\nkind: wasm\nconnection:\n  component: x.wasm\n  config:\n    nested: [1]\n  sandbox:\n    allowed_hosts: [\"api.example.com\"]\n    memory: lots\n    cpu_deadline: soon\n    instances: 99\nqueries:\n  weekly: {}\n  daily: {sql: x}\n",
        )
        .unwrap_err();
        let text = errors.join("\n");
        for expected in [
            "/connection/config/nested",
            "/connection/sandbox/allowed_hosts/0",
            "/connection/sandbox/memory",
            "/connection/sandbox/cpu_deadline",
            "/connection/sandbox/instances",
            "/queries: unknown key `weekly`",
            "/queries/daily",
            "needs a scheme",
            "memory must be a size",
        ] {
            assert!(text.contains(expected), "{expected} missing in:\n{text}");
        }
    }

    #[test]
    fn sql_only_keys_are_refused() {
        let errors = load(
            "id: crm\nname: CRM\nkind: wasm\nconnection:\n  component: x.wasm\nidentifiers: [a]\nmappings:\n  daily:\n    date: day\n",
        )
        .unwrap_err();
        let text = errors.join("\n");
        assert!(text.contains("/identifiers"), "{text}");
        assert!(text.contains("/mappings"), "{text}");
    }
}
