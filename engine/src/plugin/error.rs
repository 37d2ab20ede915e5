//! What can go wrong with a plugin: loading it, or one call into it. The source kind
//! (`kinds::wasm`) turns these into the source's errors; the plugin host knows nothing of
//! sources.

use std::path::PathBuf;
use std::time::Duration;

/// Why a plugin could not be used, or what went wrong in one call. `Display` is the full
/// story for logs (secrets redacted); [`PluginError::public_message`] is for clients.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    /// The component file is missing, unreadable, not a component, or does not implement
    /// the `data-source` world.
    #[error("cannot load plugin {}: {message}", path.display())]
    Load { path: PathBuf, message: String },
    /// The guest trapped (a panic, `unreachable`, a stack overflow...).
    #[error("the plugin crashed: {0}")]
    Trap(String),
    /// The guest tried to grow its memory past the limit.
    #[error("the plugin exceeded its memory limit of {0} bytes")]
    OutOfMemory(usize),
    /// The guest ran past its deadline and was interrupted.
    #[error("the plugin did not finish within {0:?}")]
    Deadline(Duration),
    /// `initialize` refused the source's `config:`.
    #[error("the plugin refused its configuration: {0}")]
    InvalidConfig(String),
    /// The plugin reported a bug of its own.
    #[error("the plugin failed: {0}")]
    Internal(String),
    /// The plugin reported that its remote service failed.
    #[error("the plugin's service failed: {0}")]
    Upstream(String),
    /// The plugin asked for a host its sandbox does not allow (and then failed).
    #[error("the plugin tried to reach a host it may not: {0}")]
    Denied(String),
    /// The plugin hit the cap of requests per call (and then failed).
    #[error("the plugin made more than {0} requests in one call")]
    TooManyRequests(u32),
    /// The plugin answered data the hub refuses (negative counts, bad or repeated dates).
    #[error("the plugin answered invalid data: {0}")]
    BadData(String),
    /// The host could not set up what the plugin needs (its HTTP client, its pool).
    #[error("cannot set up the plugin: {0}")]
    Setup(String),
    /// A response to the plugin was larger than its sandbox's cap (and then it failed).
    #[error("response larger than {0} bytes")]
    TooLarge(u64),
    /// The plugin reported that its service refused the credentials.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The plugin reported that its service asked to slow down.
    #[error("rate limited{}", .retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
}

impl PluginError {
    /// A stable code for dashboards and alerting.
    pub fn code(&self) -> &'static str {
        match self {
            PluginError::Load { .. } => "plugin_unavailable",
            PluginError::Trap(_) => "plugin_crashed",
            PluginError::OutOfMemory(_) => "plugin_out_of_memory",
            PluginError::Deadline(_) => "timeout",
            PluginError::InvalidConfig(_) => "plugin_invalid_config",
            PluginError::Internal(_) => "plugin_failed",
            PluginError::Upstream(_) => "upstream_error",
            PluginError::Denied(_) => "host_denied",
            PluginError::TooManyRequests(_) => "too_many_requests",
            PluginError::BadData(_) => "bad_plugin_data",
            PluginError::Setup(_) => "connect_failed",
            PluginError::TooLarge(_) => "response_too_large",
            PluginError::Auth(_) => "auth_failed",
            PluginError::RateLimited { .. } => "rate_limited",
        }
    }

    /// What clients may see: nothing the plugin wrote freely, except the description of
    /// the data it answered (which names a dataset, a field and a shortened value).
    pub fn public_message(&self) -> String {
        match self {
            PluginError::Load { .. } => "the plugin could not be loaded; see the hub log".into(),
            PluginError::Trap(_) => "the plugin crashed; see the hub log".into(),
            PluginError::OutOfMemory(limit) => {
                format!("the plugin exceeded its memory limit of {limit} bytes")
            }
            PluginError::Deadline(limit) => {
                format!("the plugin did not finish within {} ms", limit.as_millis())
            }
            PluginError::InvalidConfig(_) => {
                "the plugin refused its configuration; see the hub log".into()
            }
            PluginError::Internal(_) => "the plugin failed; see the hub log".into(),
            PluginError::Upstream(_) => "the plugin's service failed; see the hub log".into(),
            // The refused origin comes from the plugin's config: it stays in the log.
            PluginError::Denied(_) => {
                "the plugin was refused a request to a host its sandbox does not allow; see the hub log".into()
            }
            PluginError::TooManyRequests(limit) => {
                format!("the plugin exceeded {limit} requests in one call")
            }
            PluginError::BadData(what) => format!("the plugin answered invalid data: {what}"),
            // These become the source's own connect, size, auth and rate-limit errors
            // (see `kinds`), whose public messages say the same.
            PluginError::Setup(_) => "the source could not be reached; see the hub log".into(),
            PluginError::TooLarge(limit) => format!("the response exceeded {limit} bytes"),
            PluginError::Auth(_) => "the service refused the credentials; see the hub log".into(),
            PluginError::RateLimited { .. } => "rate limited by the service".into(),
        }
    }
}
