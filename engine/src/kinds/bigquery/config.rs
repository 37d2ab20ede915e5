//! The `bigquery` kind's part of a source file: where the data lives (project, dataset),
//! how to authenticate, the cost guard and paging settings, and one standard-SQL template
//! per dataset, compiled into a [`BigquerySpec`].
//!
//! Request values reach BigQuery only as named query parameters: `bind()` writes `@p1`,
//! `@p2`, ... and the source sends each value typed (STRING, INT64, FLOAT64, BOOL, DATE).
//! The project and dataset reach the SQL text only through `ident()`: templates see them
//! as the variables `project` and `dataset`, whose values (checked here as a project id
//! and a dataset id) are the allowlist `ident()` adds to the source's `identifiers`, so
//! `` `{{ ident(project) }}.{{ ident(dataset) }}.events_*` `` names the table fully
//! qualified and the same file runs against whichever project and dataset the environment
//! selects. They are also sent as the request's `defaultDataset`, for unqualified names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use schemars::{JsonSchema, SchemaGenerator};
use serde::Deserialize;

use crate::config::raw::Number;
use crate::config::Problems;
use crate::kinds::{KindContext, KindSchema, SqlQueryConfig};
use crate::model::Dataset;
use crate::secret::Secret;
use crate::template::{Placeholder, QueryTemplates};

/// Where the data lives and how to reach it, for kind bigquery.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "bigquery-connection")]
struct ConnectionConfig {
    /// Google Cloud project id the jobs run and are billed in, and that holds the
    /// dataset, e.g. "${GOOGLE_CLOUD_PROJECT:-my-project}". It may be "" in a disabled
    /// source.
    project: String,
    /// The dataset unqualified table names resolve in (sent as the query's
    /// defaultDataset), e.g. "${BIGQUERY_DATASET:-analytics_123456789}" for a GA4 export.
    /// Templates can name a table fully qualified as
    /// `{{ ident(project) }}.{{ ident(dataset) }}.TABLE` inside backticks. It may be "" in a
    /// disabled source.
    dataset: String,
    /// How the hub authenticates.
    credentials: CredentialsConfig,
    /// Where jobs run, e.g. US, EU or europe-west1; BigQuery infers it from the dataset
    /// when absent or "".
    #[serde(default)]
    location: Option<String>,
    /// Cost guard sent with every query: BigQuery refuses, rather than bills, a query that
    /// would scan more bytes. An integer or a numeric string, at least 1, e.g. 1000000000
    /// (1 GB).
    #[schemars(range(min = 1))]
    maximum_bytes_billed: Number,
    /// The REST v2 base URL (default https://bigquery.googleapis.com/bigquery/v2); paths
    /// /projects/... are appended. https, or http on a loopback address for a local
    /// stand-in in tests.
    #[serde(default)]
    #[schemars(regex(pattern = "^https?://"))]
    base_url: Option<String>,
    /// Result rows per page (maxResults), 1 to 100000 (default 10000). An integer or a
    /// numeric string.
    #[serde(default)]
    #[schemars(range(min = 1, max = 100_000))]
    page_size: Option<Number>,
    /// Pause between polls of a job that is not complete yet (default 500ms, at most 1m).
    #[serde(default)]
    #[schemars(schema_with = "crate::config::schema::duration", extend("default" = "500ms"))]
    poll_interval: Option<String>,
}

/// How the hub authenticates: inline_json (a service-account key JSON, usually
/// "${GOOGLE_APPLICATION_CREDENTIALS_JSON:-}"), key_file (path to a service-account key
/// file), application_default (GOOGLE_APPLICATION_CREDENTIALS, the gcloud file, then the
/// metadata server) or none (tests only: accepted only with a loopback base_url).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[schemars(rename = "bigquery-credentials", transform = crate::config::schema::tagged_union)]
enum CredentialsConfig {
    /// A service-account key JSON, usually from the environment.
    InlineJson {
        /// The service-account key JSON. Treated as a secret; it may be "" in a disabled
        /// source.
        json: String,
    },
    /// A service-account key file.
    KeyFile {
        /// Path of the service-account key JSON file.
        path: String,
    },
    /// Application default credentials.
    ApplicationDefault {},
    /// None at all: a local stand-in only.
    #[serde(rename = "none")]
    NoCredentials {},
}

/// How the source authenticates to BigQuery.
#[derive(Debug, Clone, PartialEq)]
pub enum Credentials {
    /// A service-account key JSON held in the environment (the original dashboard's
    /// `GOOGLE_APPLICATION_CREDENTIALS_JSON`).
    InlineJson(Secret),
    /// A service-account key file on disk.
    KeyFile(PathBuf),
    /// Application default credentials: `GOOGLE_APPLICATION_CREDENTIALS`, the gcloud
    /// file, then the metadata server.
    ApplicationDefault,
    /// No credentials at all: only accepted with a loopback `base_url`, i.e. a local
    /// stand-in in tests, so a production source can never run unauthenticated.
    None,
}

/// A validated `bigquery` source.
#[derive(Debug, Clone)]
pub struct BigquerySpec {
    /// The project jobs run (and are billed) in, and that holds `dataset`.
    pub project: String,
    /// The default dataset of every query: unqualified table names resolve in it.
    pub dataset: String,
    pub credentials: Credentials,
    /// Where jobs run, e.g. `US`, `EU` or `europe-west1`; BigQuery infers it when absent.
    pub location: Option<String>,
    /// Sent with every query: BigQuery refuses, rather than bills, a query above it.
    pub maximum_bytes_billed: u64,
    /// The REST v2 base URL, e.g. `https://bigquery.googleapis.com/bigquery/v2`; `None`
    /// for Google's.
    pub base_url: Option<String>,
    /// Rows per result page (`maxResults`).
    pub page_size: u32,
    /// Pause between polls of a job that is not complete yet.
    pub poll_interval: Duration,
    /// Datasets this source has a query for.
    pub datasets: BTreeSet<Dataset>,
    pub templates: Arc<QueryTemplates>,
}

/// This kind's part of the source-file schema.
pub fn schema(generator: &mut SchemaGenerator) -> KindSchema {
    KindSchema {
        description: "A source read from Google BigQuery (REST v2): each query is a minijinja template rendered per request into standard SQL whose request values are named query parameters (@p1, @p2, ...) sent with their types. Name tables fully qualified through ident(), e.g. `{{ ident(project) }}.{{ ident(dataset) }}.events_*` in backticks (the variables project and dataset hold connection.project and connection.dataset); unqualified names resolve in the default dataset every query is sent with.",
        connection: generator.subschema_for::<ConnectionConfig>(),
        query: generator.subschema_for::<SqlQueryConfig>(),
        required: &["connection", "queries"],
        refused: &[],
    }
}

const DEFAULT_PAGE_SIZE: u32 = 10_000;
const MAX_PAGE_SIZE: i64 = 100_000;
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// Parses and checks the kind-specific parts, recording problems under their pointers.
pub fn compile(context: &KindContext<'_>, problems: &mut Problems) -> Option<BigquerySpec> {
    let Some(connection) = context.connection else {
        problems.add(
            "/connection",
            "a bigquery source needs `connection:` with project, dataset, credentials and maximum_bytes_billed",
        );
        return None;
    };
    let connection: ConnectionConfig = problems.parse("/connection", connection)?;
    let enabled = context.enabled;
    let project = compile_project(&connection.project, enabled, problems);
    let dataset = compile_dataset(&connection.dataset, enabled, problems);
    let location = compile_location(connection.location, problems);
    let maximum_bytes_billed = match connection.maximum_bytes_billed.value() {
        Some(n) if n >= 1 => n as u64,
        _ => {
            problems.add(
                "/connection/maximum_bytes_billed",
                "maximum_bytes_billed must be a whole number of bytes, at least 1 (e.g. 1000000000 for 1 GB)",
            );
            1
        }
    };
    let page_size = match connection.page_size.as_ref().map(Number::value) {
        None => DEFAULT_PAGE_SIZE,
        Some(Some(n @ 1..=MAX_PAGE_SIZE)) => n as u32,
        Some(_) => {
            problems.add(
                "/connection/page_size",
                format!("page_size must be a whole number from 1 to {MAX_PAGE_SIZE}"),
            );
            DEFAULT_PAGE_SIZE
        }
    };
    let poll_interval = problems.duration(
        "/connection/poll_interval",
        connection.poll_interval.as_deref(),
        DEFAULT_POLL_INTERVAL,
    );
    if poll_interval.is_zero() || poll_interval > MAX_POLL_INTERVAL {
        problems.add(
            "/connection/poll_interval",
            "poll_interval must be longer than zero and at most 1m",
        );
    }
    let base_url = compile_base_url(connection.base_url.as_deref(), problems);
    let loopback = base_url.as_deref().is_some_and(is_loopback_url);
    let credentials = compile_credentials(connection.credentials, enabled, loopback, problems);
    // The checked names only: a project or dataset id that failed its check above is
    // already an error, and must not become something ident() writes.
    let checked = |name: &str, ok: bool| if ok { name.to_owned() } else { String::new() };
    let connection_identifiers = BTreeMap::from([
        ("project", checked(&project, valid_project(&project))),
        ("dataset", checked(&dataset, valid_dataset(&dataset))),
    ]);
    let (templates, datasets) = crate::kinds::compile_sql_queries_with(
        context,
        Placeholder::Named,
        connection_identifiers,
        problems,
    );
    Some(BigquerySpec {
        project,
        dataset,
        credentials,
        location,
        maximum_bytes_billed,
        base_url,
        page_size,
        poll_interval,
        datasets,
        templates: Arc::new(templates),
    })
}

/// The project id, trimmed; empty is allowed only in a disabled source.
fn compile_project(text: &str, enabled: bool, problems: &mut Problems) -> String {
    let project = text.trim().to_owned();
    if project.is_empty() {
        if enabled {
            problems.add(
                "/connection/project",
                "the source is enabled but its project is empty: set the variable it reads or disable the source",
            );
        }
    } else if !valid_project(&project) {
        problems.add(
            "/connection/project",
            "not a Google Cloud project id: 6 to 30 lowercase letters, digits and dashes, starting with a letter (optionally `domain:` before it)",
        );
    }
    project
}

/// The dataset id, trimmed; empty is allowed only in a disabled source.
fn compile_dataset(text: &str, enabled: bool, problems: &mut Problems) -> String {
    let dataset = text.trim().to_owned();
    if dataset.is_empty() {
        if enabled {
            problems.add(
                "/connection/dataset",
                "the source is enabled but its dataset is empty: set the variable it reads or disable the source",
            );
        }
    } else if !valid_dataset(&dataset) {
        problems.add(
            "/connection/dataset",
            "not a BigQuery dataset id: use letters, digits and _ (e.g. analytics_123456789)",
        );
    }
    dataset
}

/// Where jobs run; "" (an unset `${BIGQUERY_LOCATION:-}`) lets BigQuery infer it.
fn compile_location(location: Option<String>, problems: &mut Problems) -> Option<String> {
    let location = location
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())?;
    let plain = location.len() <= 64
        && location
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !plain {
        problems.add(
            "/connection/location",
            "not a BigQuery location: write e.g. US, EU or europe-west1",
        );
    }
    Some(location)
}

fn compile_base_url(text: Option<&str>, problems: &mut Problems) -> Option<String> {
    match text.map(str::trim) {
        None | Some("") => None,
        Some(text) => match check_base_url(text) {
            Ok(url) => Some(url),
            Err(message) => {
                problems.add("/connection/base_url", message);
                None
            }
        },
    }
}

/// The credentials; `none` only with a loopback `base_url` (a local stand-in).
fn compile_credentials(
    config: CredentialsConfig,
    enabled: bool,
    loopback: bool,
    problems: &mut Problems,
) -> Credentials {
    match config {
        CredentialsConfig::InlineJson { json } => {
            if enabled {
                if let Err(message) = check_service_account_key(&json) {
                    problems.add("/connection/credentials/json", message);
                }
            }
            Credentials::InlineJson(Secret::new(json))
        }
        CredentialsConfig::KeyFile { path } => {
            let path = path.trim();
            if enabled && path.is_empty() {
                problems.add(
                    "/connection/credentials/path",
                    "the source is enabled but the key file path is empty: set the variable it reads or disable the source",
                );
            } else if enabled && !std::path::Path::new(path).is_file() {
                problems.add(
                    "/connection/credentials/path",
                    "the key file does not exist or is not a file: point path at a service-account key JSON",
                );
            }
            Credentials::KeyFile(PathBuf::from(path))
        }
        CredentialsConfig::ApplicationDefault {} => Credentials::ApplicationDefault,
        CredentialsConfig::NoCredentials {} => {
            if !loopback {
                problems.add(
                    "/connection/credentials/type",
                    "credentials type `none` is only for a local stand-in: it needs a base_url on 127.0.0.1, ::1 or localhost; use inline_json, key_file or application_default for BigQuery itself",
                );
            }
            Credentials::None
        }
    }
}

fn valid_dataset(dataset: &str) -> bool {
    dataset.len() <= 1024
        && dataset
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_project(project: &str) -> bool {
    let id = match project.rsplit_once(':') {
        Some((domain, id)) => {
            let domain_ok = !domain.is_empty()
                && domain
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
            if !domain_ok {
                return false;
            }
            id
        }
        None => project,
    };
    (6..=30).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// An https URL, or http on a loopback address (a local stand-in); no query or fragment.
/// Returned without a trailing slash, since the client appends `/projects/...`.
fn check_base_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|err| {
        format!(
            "base_url is not a URL ({err}): write e.g. https://bigquery.googleapis.com/bigquery/v2"
        )
    })?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err("base_url must not carry a query, fragment or user name".to_owned());
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_url(text) => {}
        "http" => {
            return Err(
                "base_url must use https, except on a loopback address (127.0.0.1, ::1, localhost)"
                    .to_owned(),
            )
        }
        other => return Err(format!("base_url must be https, not {other}")),
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// Whether `text` is a URL whose host is this machine.
fn is_loopback_url(text: &str) -> bool {
    match url::Url::parse(text).ok().as_ref().and_then(url::Url::host) {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Checks that an inline key is a service-account key JSON. The message names only the
/// position of a problem, never a fragment of the key.
fn check_service_account_key(json: &str) -> Result<(), String> {
    if json.trim().is_empty() {
        return Err("the source is enabled but the credentials JSON is empty: set the variable it reads or disable the source".to_owned());
    }
    match serde_json::from_str::<gcp_bigquery_client::yup_oauth2::ServiceAccountKey>(json) {
        Ok(key) if key.key_type.as_deref().is_none_or(|t| t == "service_account") => Ok(()),
        Ok(_) => Err("the credentials JSON is not a service-account key (its `type` is not service_account): use application_default for user credentials".to_owned()),
        Err(err) => Err(format!(
            "the credentials JSON is not a service-account key ({} at line {}, column {}): it needs client_email, private_key and token_uri",
            match err.classify() {
                serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "invalid JSON",
                _ => "missing or mistyped field",
            },
            err.line(),
            err.column()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids_follow_google_rules() {
        for ok in [
            "web-app-production-451214",
            "test-project",
            "example.com:my-project",
        ] {
            assert!(valid_project(ok), "{ok}");
        }
        for bad in [
            "Proj-123",
            "abc",
            "1project",
            "project-",
            "a b c d e f",
            "x;drop",
        ] {
            assert!(!valid_project(bad), "{bad}");
        }
    }

    #[test]
    fn base_urls_need_https_except_on_loopback() {
        assert_eq!(
            check_base_url("http://127.0.0.1:9000/bigquery/v2/").unwrap(),
            "http://127.0.0.1:9000/bigquery/v2"
        );
        assert!(check_base_url("http://[::1]:9000/bigquery/v2").is_ok());
        assert!(check_base_url("http://localhost/bigquery/v2").is_ok());
        assert!(check_base_url("https://bigquery.googleapis.com/bigquery/v2").is_ok());
        assert!(check_base_url("http://bigquery.example.com/bigquery/v2").is_err());
        assert!(check_base_url("http://127.0.0.2.example.com/v2").is_err());
        assert!(check_base_url("ftp://127.0.0.1/v2").is_err());
        assert!(check_base_url("https://x.example.com/v2?key=1").is_err());
        assert!(!is_loopback_url(
            "https://bigquery.googleapis.com/bigquery/v2"
        ));
    }

    #[test]
    fn key_errors_never_quote_the_key() {
        let secret = r#"{"type":"service_account","client_email":"a@b.iam","private_key":42}"#;
        let err = check_service_account_key(secret).unwrap_err();
        assert!(err.contains("missing or mistyped field"), "{err}");
        assert!(
            !err.contains("a@b.iam") && !err.contains("integer"),
            "{err}"
        );
        let err = check_service_account_key("{not json").unwrap_err();
        assert!(err.contains("invalid JSON"), "{err}");
        let ok = r#"{"type":"service_account","client_email":"a@b.iam","private_key":"-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n","token_uri":"https://oauth2.googleapis.com/token"}"#;
        check_service_account_key(ok).unwrap();
        let user =
            r#"{"type":"authorized_user","client_email":"a","private_key":"k","token_uri":"t"}"#;
        assert!(check_service_account_key(user).is_err());
    }
}
