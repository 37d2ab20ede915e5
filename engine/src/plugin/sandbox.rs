//! What one plugin source may use: memory, time per call, outbound hosts, response sizes and
//! request counts. Values come from the source's `connection.sandbox` in YAML; every limit
//! has a safe default, and each is enforced by the host, never by the plugin's goodwill.

use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use wasmtime::ResourceLimiter;

use super::allowlist::Allowlist;

/// Default cap of one plugin instance's linear memory.
pub const DEFAULT_MEMORY_BYTES: usize = 64 * 1024 * 1024;
/// Default cap of one HTTP response body a plugin receives.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// Default cap of outbound requests during one call (a whole `fetch-metrics`, paging included).
pub const DEFAULT_MAX_REQUESTS_PER_CALL: u32 = 100;
/// Default number of instances per source; see [`super::pool`] for why more than one.
pub const DEFAULT_INSTANCES: usize = 2;
/// Table elements a plugin may grow to: far above what compiled Rust or Python needs.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// `sandbox.rate_limit`: requests per second to each allowed origin, with a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    /// Requests that may go at once after a quiet spell (at least 1).
    pub burst: u32,
}

/// `sandbox.retry`: which answers are tried again, how often and how patiently.
/// What is applied is in `super::http::pacing`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    /// Tries in all, the first included; 1 turns retries off.
    pub max_tries: u32,
    /// The first backoff when the answer has no usable `Retry-After`; doubled per try.
    pub initial_backoff: Duration,
    /// The longest backoff (a `Retry-After` may ask for more, up to the deadline).
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_tries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// The validated sandbox of one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Sandbox {
    /// Where outbound HTTP may go; empty means nowhere.
    pub allowed_hosts: Allowlist,
    /// Cap of each linear memory of an instance, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock time one call may run, guest code and host calls together. `None`: the
    /// source's `timeout`.
    pub cpu_deadline: Option<Duration>,
    /// Cap of one response body; longer bodies are cut off while streaming.
    pub max_response_bytes: u64,
    /// Outbound requests one call may make.
    pub max_requests_per_call: u32,
    /// Instances kept per source (each initialized once and reused).
    pub instances: usize,
    /// Let host names that resolve to loopback, private or link-local addresses through.
    /// Off by default, so that a name on the allowlist cannot be pointed (by DNS) at an
    /// internal service. IP literals on the allowlist are explicit and always honoured.
    pub allow_private_addresses: bool,
    /// Pacing of requests to each allowed origin; `None`: none.
    pub rate_limit: Option<RateLimit>,
    /// Retries of 429 and 503 answers.
    pub retry: Retry,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox {
            allowed_hosts: Allowlist::default(),
            memory_bytes: DEFAULT_MEMORY_BYTES,
            cpu_deadline: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_requests_per_call: DEFAULT_MAX_REQUESTS_PER_CALL,
            instances: DEFAULT_INSTANCES,
            allow_private_addresses: false,
            rate_limit: None,
            retry: Retry::default(),
        }
    }
}

/// The store's resource limiter: a memory cap that traps instead of failing quietly, and
/// remembers that it fired so the trap can be reported as "out of memory".
pub(crate) struct Limits {
    memory_bytes: usize,
    /// Set when a memory grow was refused.
    pub(crate) memory_exhausted: bool,
    /// The largest memory any instance of the source was allowed, shared by its pool.
    high_water: Arc<AtomicUsize>,
}

impl Limits {
    pub(crate) fn new(memory_bytes: usize, high_water: Arc<AtomicUsize>) -> Limits {
        Limits {
            memory_bytes,
            memory_exhausted: false,
            high_water,
        }
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_exhausted = true;
            // An error, not `Ok(false)`: a guest that ignores a failed grow would go on in
            // an inconsistent state; trapping ends the call and discards the instance.
            wasmtime::bail!(
                "the plugin tried to grow its memory to {desired} bytes, over its limit of {}",
                self.memory_bytes
            );
        }
        self.high_water.fetch_max(desired, Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            wasmtime::bail!("the plugin tried to grow a table to {desired} elements");
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_limit_refuses_and_remembers() {
        let mut limits = Limits::new(1 << 20, Arc::default());
        assert!(limits.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!limits.memory_exhausted);
        assert!(limits.memory_growing(1 << 20, 2 << 20, None).is_err());
        assert!(limits.memory_exhausted);
    }
}
