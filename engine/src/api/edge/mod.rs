//! The HTTP edge: accepting connections and serving the router on them, with the limits
//! a server on a network needs. `axum::serve` has no header-read timeout, idle timeout or
//! connection cap, and stops accepting for a second whenever the process runs out of
//! file descriptors; this serves hyper's HTTP/1.1 connections directly instead.
//!
//! - Each connection is watched ([`conn`]): a request head must arrive within the
//!   header-read timeout (else a JSON 408) and a kept-alive connection may wait for its
//!   next request for the idle timeout.
//! - At most `max_connections` connections are served. At the cap, the connection that
//!   has waited longest for a request is closed to make room, so idle or half-open
//!   connections cannot keep a new client out; when every connection is busy, a few
//!   reserve connections are admitted for `/api/health`, `/metrics` and `/api/admin/...`
//!   only, and beyond those a connection gets a JSON 503 at once.
//! - The open-file limit is raised to its hard limit at start ([`raise_fd_limit`]), and
//!   the default cap leaves descriptors for the hub's own files and connections.
//! - On shutdown, connections that wait are closed, those answering finish their request
//!   (within the drain timeout), and then the future returns.

pub mod conn;
mod service;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use conn::{json_response, ConnState, Phase, Timeouts, WatchedIo};
use service::Tracked;

/// Limits of the edge; every one has a flag (see `metrics-hub serve --help`).
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub timeouts: Timeouts,
    /// Connections served at once (besides the reserve).
    pub max_connections: usize,
    /// Connections admitted beyond the cap for health, metrics and admin requests only.
    pub reserve_connections: usize,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Most headers in one request.
    pub max_headers: usize,
    /// Longest request line; a head refused for its line is a 414, not a 431.
    pub max_request_line: usize,
    /// How long shutdown waits for requests being answered.
    pub drain_timeout: Duration,
}

/// hyper's own header count, kept unless asked otherwise: a larger one costs a heap
/// allocation per request.
const HYPER_MAX_HEADERS: usize = 100;

impl Default for EdgeSettings {
    fn default() -> Self {
        EdgeSettings {
            timeouts: Timeouts {
                header_read: Duration::from_secs(10),
                idle: Duration::from_secs(75),
            },
            max_connections: 1024,
            reserve_connections: 16,
            max_header_bytes: 64 * 1024,
            max_headers: HYPER_MAX_HEADERS,
            max_request_line: 32 * 1024,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl EdgeSettings {
    /// The default cap for an open-file limit of `files`: everything but what the hub
    /// keeps for itself (database pools, plugin files, outbound requests, the reserve).
    pub fn connections_for(files: u64) -> usize {
        let kept = 64 + files / 8;
        files.saturating_sub(kept).clamp(16, 65_536) as usize
    }
}

/// Raises the soft open-file limit to the hard limit; returns (soft before, soft now).
pub fn raise_fd_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        let before = limit.rlim_cur;
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok((before, limit.rlim_cur))
    }
}

/// The connections being served, for the cap, eviction and draining.
#[derive(Default)]
struct Registry {
    // A std Mutex: held to insert, remove or scan, never across an await.
    connections: Mutex<HashMap<u64, Arc<ConnState>>>,
    next_id: AtomicU64,
    emptied: Notify,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn insert(&self) -> (u64, Arc<ConnState>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new());
        self.lock().insert(id, state.clone());
        (id, state)
    }

    fn remove(&self, id: u64) {
        let mut connections = self.lock();
        connections.remove(&id);
        if connections.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    /// Closes the connection that has waited longest for a request; false when every
    /// connection is answering one.
    fn evict_longest_waiting(&self) -> bool {
        let connections = self.lock();
        let victim = connections
            .values()
            .filter(|c| c.phase() != Phase::Serving && !c.is_evicted())
            .min_by_key(|c| c.since());
        match victim {
            Some(victim) => {
                victim.evict();
                true
            }
            None => false,
        }
    }

    /// Closes every connection that is not answering a request.
    fn evict_waiting(&self) {
        for conn in self.lock().values().filter(|c| c.phase() != Phase::Serving) {
            conn.evict();
        }
    }
}

/// How a new connection is served.
enum Admission {
    Normal,
    /// Over the cap: health, metrics and admin requests only, then closed.
    Reserve,
    Refused,
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: EdgeSettings,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let registry = Arc::new(Registry::default());
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut last_accept_error: Option<Instant> = None;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let admission = admit(&registry, &settings);
                    start(stream, peer, admission, &registry, &app, &settings, &stopping);
                }
                Err(err) => accept_failed(err, &registry, &mut last_accept_error).await,
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop.send(true);
    registry.evict_waiting();
    drain(&registry, settings.drain_timeout).await;
    Ok(())
}

fn admit(registry: &Registry, settings: &EdgeSettings) -> Admission {
    let active = registry.len();
    if active < settings.max_connections || registry.evict_longest_waiting() {
        Admission::Normal
    } else if active < settings.max_connections + settings.reserve_connections {
        Admission::Reserve
    } else {
        Admission::Refused
    }
}

fn start(
    stream: TcpStream,
    peer: SocketAddr,
    admission: Admission,
    registry: &Arc<Registry>,
    app: &Router,
    settings: &EdgeSettings,
    stopping: &watch::Receiver<bool>,
) {
    let reserve = match admission {
        Admission::Normal => false,
        Admission::Reserve => true,
        Admission::Refused => {
            tokio::spawn(refuse(stream));
            return;
        }
    };
    let (id, state) = registry.insert();
    let registry = registry.clone();
    let service = Tracked::new(app.clone(), state.clone(), peer, reserve);
    let settings = settings.clone();
    let stopping = stopping.clone();
    tokio::spawn(async move {
        connection(stream, state, service, &settings, stopping).await;
        registry.remove(id);
    });
}

/// Too many connections, all busy: a JSON 503, then the connection is closed.
async fn refuse(stream: TcpStream) {
    let response = json_response(503, &[("retry-after", "1")]);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.writable().await;
        let _ = stream.try_write(&response);
    })
    .await;
    conn::shutdown_write(&stream);
}

/// `accept` failed, most likely for want of file descriptors: make room by closing the
/// longest-waiting connection, log at most once a second, and pause briefly instead of
/// axum's full second.
async fn accept_failed(err: io::Error, registry: &Registry, last: &mut Option<Instant>) {
    registry.evict_longest_waiting();
    if last.is_none_or(|at| at.elapsed() > Duration::from_secs(1)) {
        tracing::warn!(
            connections = registry.len(),
            "cannot accept a connection: {err}"
        );
        *last = Some(Instant::now());
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
}

/// One connection from accept to close.
async fn connection(
    stream: TcpStream,
    state: Arc<ConnState>,
    service: Tracked,
    settings: &EdgeSettings,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let stream = Arc::new(stream);
    let watched = WatchedIo::new(stream.clone(), state.clone(), settings.max_request_line);
    let io = TokioIo::new(watched);
    let mut builder = http1::Builder::new();
    builder
        .header_read_timeout(None)
        .max_buf_size(settings.max_header_bytes.max(8192) + 8192)
        .max_header_size(settings.max_header_bytes)
        .keep_alive(true);
    if settings.max_headers != HYPER_MAX_HEADERS {
        builder.max_headers(settings.max_headers);
    }
    let serving = builder.serve_connection(io, TowerToHyperService::new(service));
    tokio::pin!(serving);
    let mut draining = *stopping.borrow();
    loop {
        let deadline = state.deadline(&settings.timeouts);
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        let wake = deadline.map_or(far, tokio::time::Instant::from_std);
        tokio::select! {
            _ = serving.as_mut() => break,
            () = tokio::time::sleep_until(wake), if deadline.is_some() => {
                if timed_out(&stream, &state, settings) {
                    break;
                }
            }
            () = state.changed() => {
                if state.is_evicted() || (draining && state.phase() != Phase::Serving) {
                    break;
                }
            }
            changed = stopping.changed(), if !draining => {
                draining = changed.is_err() || *stopping.borrow();
                if draining {
                    serving.as_mut().graceful_shutdown();
                    if state.phase() != Phase::Serving {
                        break;
                    }
                }
            }
        }
    }
}

/// Whether the connection's wait ran out (checked again, since the phase may have moved
/// on since the deadline was computed); a request head that did not arrive gets a 408.
fn timed_out(stream: &TcpStream, state: &ConnState, settings: &EdgeSettings) -> bool {
    let Some(deadline) = state.deadline(&settings.timeouts) else {
        return false;
    };
    if Instant::now() < deadline {
        return false;
    }
    if state.phase() == Phase::Reading {
        let _ = stream.try_write(&json_response(408, &[]));
        conn::shutdown_write(stream);
    }
    true
}

/// Waits until every connection is closed, or `limit` has passed.
async fn drain(registry: &Registry, limit: Duration) {
    let waited = tokio::time::timeout(limit, async {
        loop {
            let emptied = registry.emptied.notified();
            if registry.len() == 0 {
                return;
            }
            emptied.await;
        }
    })
    .await;
    if waited.is_err() {
        tracing::warn!(
            connections = registry.len(),
            "shutdown: requests still running after {} s are cut off",
            limit.as_secs()
        );
    }
}
