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
//! queries:                           # the datasets taken from the plugin; default all
//!   summary: {}
//!   daily: {}
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::raw::{Flag, Number, Size};
use super::{KindContext, Problems};
use crate::model::Dataset;
use crate::plugin::http::{AllowedHost, Allowlist};
use crate::plugin::sandbox::Sandbox;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionConfig {
    /// The component file, absolute or relative to the source file.
    component: String,
    /// Key/value configuration for the plugin's `initialize`.
    #[serde(default)]
    config: BTreeMap<String, Value>,
    #[serde(default)]
    sandbox: SandboxConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SandboxConfig {
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    memory: Option<Size>,
    #[serde(default)]
    cpu_deadline: Option<String>,
    #[serde(default)]
    max_response_bytes: Option<Size>,
    #[serde(default)]
    max_requests_per_call: Option<Number>,
    #[serde(default)]
    instances: Option<Number>,
    #[serde(default)]
    allow_private_addresses: Option<Flag>,
}

/// A dataset's entry under `queries:`; nothing to say yet, the plugin decides how.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryConfig {}

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
pub(super) fn compile(context: &KindContext<'_>, problems: &mut Problems) -> Option<WasmSpec> {
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

    let mut config = Vec::new();
    for (key, value) in connection.config {
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
        config.push((key, text));
    }

    let raw = connection.sandbox;
    let mut sandbox = Sandbox::default();
    let mut hosts = Vec::new();
    for (index, entry) in raw.allowed_hosts.iter().enumerate() {
        match AllowedHost::parse(entry) {
            Ok(host) => hosts.push(host),
            Err(why) => problems.add(&format!("/connection/sandbox/allowed_hosts/{index}"), why),
        }
    }
    sandbox.allowed_hosts = Allowlist(hosts);
    if let Some(size) = raw.memory {
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
        let deadline = super::duration(
            problems,
            "/connection/sandbox/cpu_deadline",
            Some(text),
            Duration::ZERO,
        );
        if deadline.is_zero() {
            problems.add(
                "/connection/sandbox/cpu_deadline",
                "cpu_deadline must be longer than zero",
            );
        }
        sandbox.cpu_deadline = Some(deadline);
    }
    if let Some(size) = raw.max_response_bytes {
        match size.bytes() {
            Some(bytes) if bytes > 0 => sandbox.max_response_bytes = bytes,
            _ => problems.add(
                "/connection/sandbox/max_response_bytes",
                "max_response_bytes must be a size above zero, e.g. 16MiB",
            ),
        }
    }
    if let Some(number) = raw.max_requests_per_call {
        match super::number(&number) {
            Some(n @ 0..=10_000) => sandbox.max_requests_per_call = n as u32,
            _ => problems.add(
                "/connection/sandbox/max_requests_per_call",
                "max_requests_per_call must be a whole number from 0 to 10000",
            ),
        }
    }
    if let Some(number) = raw.instances {
        match super::number(&number) {
            Some(n @ 1..=16) => sandbox.instances = n as usize,
            _ => problems.add(
                "/connection/sandbox/instances",
                "instances must be a whole number from 1 to 16",
            ),
        }
    }
    match raw.allow_private_addresses {
        None => {}
        Some(Flag::Bool(flag)) => sandbox.allow_private_addresses = flag,
        Some(Flag::Text(text)) => match text.trim() {
            "true" => sandbox.allow_private_addresses = true,
            "false" | "" => {}
            other => problems.add(
                "/connection/sandbox/allow_private_addresses",
                format!("`{other}` is not true or false"),
            ),
        },
    }

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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{load_source, KindSpec};

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
