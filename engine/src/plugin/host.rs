//! The state behind one plugin instance's store, and the host functions its world imports:
//! `http` (through [`super::http::HttpGate`]), `log` and `clock`. WASI is granted with an
//! empty context: no arguments, environment, preopened directories or network, and stdout
//! and stderr captured into a small buffer the hub logs when the plugin fails. Its
//! `wasi:http` outgoing handler goes through the same gate ([`super::outgoing`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::{clock, http, log, types};
use super::http::{CallTally, HttpGate};
use super::outgoing::GateHooks;
use super::sandbox::Limits;
use crate::secret::redact;

/// How much of the guest's stdout/stderr is kept (the tail of a panic message is enough).
const OUTPUT_CAPACITY: usize = 16 * 1024;
/// Log lines one call may write before the rest are dropped.
const MAX_LOG_LINES_PER_CALL: u32 = 200;
/// Longest log message or field value kept, in bytes.
const MAX_LOG_TEXT: usize = 2048;

/// Everything the host functions of one instance need.
pub(crate) struct HostState {
    pub(crate) source: Arc<str>,
    secrets: Arc<Vec<String>>,
    started: Instant,
    /// The way out for both HTTP paths, with the current call's deadline and tally.
    hooks: GateHooks,
    /// Log lines the current call wrote.
    log_lines: u32,
    /// Raised when a sleep of the current call is woken at its deadline (see sleep.rs).
    sleep_cut: Arc<AtomicBool>,
    pub(crate) limits: Limits,
    output: MemoryOutputPipe,
    wasi: WasiCtx,
    wasi_http: WasiHttpCtx,
    table: ResourceTable,
}

impl HostState {
    pub(crate) fn new(
        source: Arc<str>,
        secrets: Arc<Vec<String>>,
        http: Arc<HttpGate>,
        runtime: tokio::runtime::Handle,
        memory_bytes: usize,
        high_water: Arc<AtomicUsize>,
    ) -> HostState {
        let output = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        // Nothing inherited: no args, env, preopens, stdin; sockets are refused by the
        // default address check. stdout and stderr go to a bounded in-memory pipe.
        let wasi = WasiCtx::builder()
            .stdout(output.clone())
            .stderr(output.clone())
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        HostState {
            source,
            secrets,
            started: Instant::now(),
            hooks: GateHooks {
                gate: http,
                runtime,
                deadline: Instant::now(),
                tally: Arc::default(),
            },
            log_lines: 0,
            sleep_cut: Arc::default(),
            limits: Limits::new(memory_bytes, high_water),
            output,
            wasi,
            wasi_http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
        }
    }

    /// Starts a call that must end by `deadline`: fresh counts, for both HTTP paths.
    pub(crate) fn begin(&mut self, deadline: Instant) {
        self.hooks.deadline = deadline;
        self.log_lines = 0;
        // Reset in place when nothing of the last call holds them (the usual case: no
        // allocation per call); otherwise fresh ones, so a request or a sleep still
        // pending from that call cannot count against this one.
        match Arc::get_mut(&mut self.hooks.tally) {
            Some(tally) => *tally = CallTally::default(),
            None => self.hooks.tally = Arc::default(),
        }
        match Arc::get_mut(&mut self.sleep_cut) {
            Some(cut) => *cut.get_mut() = false,
            None => self.sleep_cut = Arc::default(),
        }
    }

    /// How long the current call has left.
    pub(crate) fn time_left(&self) -> std::time::Duration {
        self.hooks
            .deadline
            .saturating_duration_since(Instant::now())
    }

    /// Nanoseconds since the instance started: the guest's monotonic clock.
    pub(crate) fn monotonic_nanos(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The current call's flag for a sleep woken at its deadline.
    pub(crate) fn sleep_cut(&self) -> Arc<AtomicBool> {
        self.sleep_cut.clone()
    }

    /// Whether a sleep of the current call was woken at its deadline.
    pub(crate) fn sleep_was_cut(&self) -> bool {
        self.sleep_cut.load(Ordering::Relaxed)
    }

    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// What the current call's HTTP did.
    pub(crate) fn tally(&self) -> &CallTally {
        &self.hooks.tally
    }

    /// What the guest printed to stdout/stderr (e.g. a panic message), redacted and
    /// trimmed to its last lines.
    pub(crate) fn output(&self) -> String {
        let bytes = self.output.contents();
        let text = String::from_utf8_lossy(&bytes);
        redact(text.trim(), &self.secrets)
    }

    fn clean(&self, text: &str) -> String {
        let mut text = redact(text, &self.secrets);
        if text.len() > MAX_LOG_TEXT {
            let mut cut = MAX_LOG_TEXT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        text
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.wasi_http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl types::Host for HostState {}

impl http::Host for HostState {
    async fn send(&mut self, request: http::Request) -> Result<http::Response, http::HttpError> {
        let GateHooks {
            gate,
            deadline,
            tally,
            ..
        } = &self.hooks;
        gate.send(request, *deadline, tally).await
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String, fields: Vec<(String, String)>) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES_PER_CALL {
            if self.log_lines == MAX_LOG_LINES_PER_CALL + 1 {
                tracing::warn!(plugin = %self.source, "plugin log lines past {MAX_LOG_LINES_PER_CALL} in one call are dropped");
            }
            return;
        }
        let message = self.clean(&message);
        let fields = fields
            .iter()
            .take(32)
            .map(|(key, value)| format!("{}={}", self.clean(key), self.clean(value)))
            .collect::<Vec<_>>()
            .join(" ");
        let source = &*self.source;
        match level {
            log::Level::Trace => tracing::trace!(plugin = source, %fields, "{message}"),
            log::Level::Debug => tracing::debug!(plugin = source, %fields, "{message}"),
            log::Level::Info => tracing::info!(plugin = source, %fields, "{message}"),
            log::Level::Warn => tracing::warn!(plugin = source, %fields, "{message}"),
            log::Level::Error => tracing::error!(plugin = source, %fields, "{message}"),
        }
    }
}

impl clock::Host for HostState {
    fn monotonic_now(&mut self) -> u64 {
        self.monotonic_nanos()
    }

    fn now(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::sandbox::Sandbox;

    #[tokio::test]
    async fn logged_text_is_redacted_and_bounded() {
        let gate = HttpGate::new("crm", &Sandbox::default()).unwrap();
        let state = HostState::new(
            "crm".into(),
            Arc::new(vec!["hunter2-secret".to_owned()]),
            Arc::new(gate),
            tokio::runtime::Handle::current(),
            1 << 20,
            Arc::default(),
        );
        assert_eq!(state.clean("token=hunter2-secret ok"), "token=*** ok");
        let long = state.clean(&"é".repeat(MAX_LOG_TEXT));
        assert!(long.len() <= MAX_LOG_TEXT + '…'.len_utf8());
        assert!(long.ends_with('…'));
    }
}
