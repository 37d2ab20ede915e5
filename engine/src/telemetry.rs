//! The hub's Prometheus metrics: one registry for the process, recorded by the API (HTTP
//! requests) and the hub (fetches, caches, plugins, reloads), and values read at scrape
//! time (cache entries, the config generation, plugin memory). Names follow the
//! Prometheus conventions: one `metrics_hub_` prefix, base units (seconds, bytes),
//! `_total` counters, and labels bounded by the configuration (route templates, source
//! ids, error codes), never by request values.
//!
//! Recording can be switched off ([`set_enabled`]) to measure what it costs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route template (`/api/sources/{id}/check`), or `unmatched`.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub source: String,
    /// `ok`, or the error's stable code (`timeout`, `connect_failed`, ...).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    pub source: String,
    /// `hit`, `miss` or `stale`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrapLabels {
    pub source: String,
    /// `crash`, `memory` or `deadline` (fuel or epoch).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

fn seconds_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric the hub records.
pub struct Telemetry {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub fetches: Family<OutcomeLabels, Counter>,
    pub fetch_duration: Family<SourceLabels, Histogram, fn() -> Histogram>,
    pub cache_lookups: Family<LookupLabels, Counter>,
    pub cache_entries: Family<SourceLabels, Gauge>,
    pub upstream_queries: Family<SourceLabels, Counter>,
    pub rows: Family<SourceLabels, Counter>,
    pub plugin_traps: Family<TrapLabels, Counter>,
    pub plugin_memory: Family<SourceLabels, Gauge>,
    pub reloads: Family<ReloadLabels, Counter>,
    pub generation: Gauge,
}

impl Telemetry {
    fn new() -> Telemetry {
        let mut t = Telemetry {
            registry: Registry::with_prefix("metrics_hub"),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(seconds_histogram),
            fetches: Family::default(),
            fetch_duration: Family::new_with_constructor(seconds_histogram),
            cache_lookups: Family::default(),
            cache_entries: Family::default(),
            upstream_queries: Family::default(),
            rows: Family::default(),
            plugin_traps: Family::default(),
            plugin_memory: Family::default(),
            reloads: Family::default(),
            generation: Gauge::default(),
        };
        t.register();
        t
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            self.http_requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request, by route",
            Unit::Seconds,
            self.http_duration.clone(),
        );
        r.register(
            "source_fetches",
            "Upstream fetches of a source, by outcome (ok or an error code)",
            self.fetches.clone(),
        );
        r.register_with_unit(
            "source_fetch_duration",
            "Time of one upstream fetch of a source",
            Unit::Seconds,
            self.fetch_duration.clone(),
        );
        r.register(
            "source_cache_lookups",
            "Requests for a source's data, by cache result (hit, miss, stale)",
            self.cache_lookups.clone(),
        );
        r.register(
            "source_cache_entries",
            "Entries a source's cache holds, stale ones included",
            self.cache_entries.clone(),
        );
        r.register(
            "source_upstream_queries",
            "Queries a source sent upstream",
            self.upstream_queries.clone(),
        );
        r.register(
            "source_rows",
            "Rows a source's upstream fetches returned",
            self.rows.clone(),
        );
        r.register(
            "plugin_traps",
            "Plugin calls that trapped, by reason (crash, memory, deadline)",
            self.plugin_traps.clone(),
        );
        r.register_with_unit(
            "plugin_memory_high_water",
            "Largest linear memory one instance of a source's plugin reached",
            Unit::Bytes,
            self.plugin_memory.clone(),
        );
        r.register(
            "reloads",
            "Reloads of the sources directory, by outcome",
            self.reloads.clone(),
        );
        r.register(
            "config_generation",
            "The configuration generation serving (1 at start-up)",
            self.generation.clone(),
        );
        let build = Info::new(BuildLabels {
            version: env!("CARGO_PKG_VERSION"),
        });
        r.register("build", "The hub's version", build);
    }
}

static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
static ENABLED: AtomicBool = AtomicBool::new(true);

/// The process's metrics, when recording is on.
pub fn get() -> Option<&'static Telemetry> {
    if ENABLED.load(Ordering::Relaxed) {
        Some(TELEMETRY.get_or_init(Telemetry::new))
    } else {
        None
    }
}

/// Turns recording on or off for the whole process (`serve --no-metrics`, benchmarks).
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Everything recorded so far in the OpenMetrics text format.
pub fn encode() -> String {
    let mut text = String::new();
    let registry = &TELEMETRY.get_or_init(Telemetry::new).registry;
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

/// `duration` as the seconds a histogram observes.
pub fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}
