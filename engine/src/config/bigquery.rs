//! The `bigquery` kind's part of a source file: where the data lives (project, dataset),
//! how to authenticate, the cost guard and paging settings, and one standard-SQL template
//! per dataset, compiled into a [`BigquerySpec`].
//!
//! Request values reach BigQuery only as named query parameters: `bind()` writes `@p1`,
//! `@p2`, ... and the source sends each value typed (STRING, INT64, FLOAT64, BOOL, DATE).
//! The project and dataset never enter the SQL text at all: the source sends them as the
//! request's `defaultDataset`, so templates name tables unqualified (`` `events_*` ``) and
//! the same file runs against whichever project and dataset the environment selects.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::raw::Number;
use super::{KindContext, Problems, Secret};
use crate::model::Dataset;
use crate::template::{Placeholder, QueryTemplates};

/// `connection:` of a bigquery source, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionConfig {
    /// Project the jobs run and are billed in, and that holds the dataset.
    project: String,
    /// Dataset unqualified table names resolve in (the queries' default dataset).
    dataset: String,
    credentials: CredentialsConfig,
    /// Where jobs run (US, EU, europe-west1, ...); "" or absent lets BigQuery infer it.
    #[serde(default)]
    location: Option<String>,
    /// The cost guard sent with every query.
    maximum_bytes_billed: Number,
    /// The REST v2 base URL; Google's when absent.
    #[serde(default)]
    base_url: Option<String>,
    /// Result rows per page (`maxResults`).
    #[serde(default)]
    page_size: Option<Number>,
    /// Pause between polls of a job that is not complete yet.
    #[serde(default)]
    poll_interval: Option<String>,
}

/// `connection.credentials`, by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum CredentialsConfig {
    /// A service-account key JSON, usually from the environment.
    InlineJson { json: String },
    /// A service-account key file.
    KeyFile { path: String },
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

const DEFAULT_PAGE_SIZE: u32 = 10_000;
const MAX_PAGE_SIZE: i64 = 100_000;
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// Parses and checks the kind-specific parts, recording problems under their pointers.
pub(super) fn compile(context: &KindContext<'_>, problems: &mut Problems) -> Option<BigquerySpec> {
    let Some(connection) = context.connection else {
        problems.add(
            "/connection",
            "a bigquery source needs `connection:` with project, dataset, credentials and maximum_bytes_billed",
        );
        return None;
    };
    let connection: ConnectionConfig = problems.parse("/connection", connection)?;
    let enabled = context.enabled;

    let project = connection.project.trim().to_owned();
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
    let dataset = connection.dataset.trim().to_owned();
    if dataset.is_empty() {
        if enabled {
            problems.add(
                "/connection/dataset",
                "the source is enabled but its dataset is empty: set the variable it reads or disable the source",
            );
        }
    } else if dataset.len() > 1024
        || !dataset
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        problems.add(
            "/connection/dataset",
            "not a BigQuery dataset id: use letters, digits and _ (e.g. analytics_123456789)",
        );
    }

    // "" (an unset `${BIGQUERY_LOCATION:-}`) lets BigQuery infer the location.
    let location = connection
        .location
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty());
    if let Some(location) = &location {
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
    }

    let maximum_bytes_billed = match super::number(&connection.maximum_bytes_billed) {
        Some(n) if n >= 1 => n as u64,
        _ => {
            problems.add(
                "/connection/maximum_bytes_billed",
                "maximum_bytes_billed must be a whole number of bytes, at least 1 (e.g. 1000000000 for 1 GB)",
            );
            1
        }
    };
    let page_size = match connection.page_size.as_ref().map(super::number) {
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
    let poll_interval = super::duration(
        problems,
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

    let base_url = match connection.base_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match check_base_url(text) {
            Ok(url) => Some(url),
            Err(message) => {
                problems.add("/connection/base_url", message);
                None
            }
        },
    };
    let loopback = base_url.as_deref().is_some_and(is_loopback_url);

    let credentials = match connection.credentials {
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
    };

    let (templates, datasets) = super::compile_sql_queries(context, Placeholder::Named, problems);

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

/// Project ids: 6 to 30 characters of lowercase letters, digits and dashes, starting with
/// a letter and not ending with a dash; legacy ones carry a `domain:` prefix.
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
