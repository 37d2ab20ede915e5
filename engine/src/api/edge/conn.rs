//! One accepted connection, watched. The hub, not hyper, decides when a connection has
//! waited too long: for the head of a request (the header-read timeout, answered with a
//! JSON 408) or for the next request on a kept-alive connection (the idle timeout,
//! closed silently). It also knows which connections are only waiting, so that at the
//! connection cap the longest-waiting one can make room for a new one.
//!
//! The socket is read and written through [`WatchedIo`], which notes the first byte of a
//! request head, and turns the bare responses hyper writes by itself for requests it
//! cannot parse (400, 414, 431, with an empty body) into the hub's JSON error shape.
//! Every response the hub itself sends carries `x-request-id`; hyper's own never do.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::api::error::refusal;

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, or done with a response: waiting for the first byte of a request.
    Waiting = 0,
    /// Bytes of a request head arrived; the head is not complete yet.
    Reading = 1,
    /// The hub is answering a request.
    Serving = 2,
}

/// The start of the process-wide clock of [`now_ms`].
fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// A monotonic clock in milliseconds, cheap to keep in an atomic.
pub fn now_ms() -> u64 {
    start().elapsed().as_millis() as u64
}

fn instant_at(ms: u64) -> Instant {
    start() + Duration::from_millis(ms)
}

/// What the accept loop and the connection's own task share about it.
#[derive(Debug)]
pub struct ConnState {
    phase: AtomicU8,
    /// When the current phase began, in [`now_ms`] milliseconds.
    since: AtomicU64,
    /// Woken on every phase change (the watchdog recomputes its deadline) and on eviction.
    changed: Notify,
    evicted: AtomicU8,
}

impl ConnState {
    pub fn new() -> ConnState {
        ConnState {
            phase: AtomicU8::new(Phase::Waiting as u8),
            since: AtomicU64::new(now_ms()),
            changed: Notify::new(),
            evicted: AtomicU8::new(0),
        }
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Waiting,
            1 => Phase::Reading,
            _ => Phase::Serving,
        }
    }

    /// Milliseconds (of [`now_ms`]) when the current phase began.
    pub fn since(&self) -> u64 {
        self.since.load(Ordering::Acquire)
    }

    fn enter(&self, phase: Phase) {
        self.since.store(now_ms(), Ordering::Release);
        self.phase.store(phase as u8, Ordering::Release);
        self.changed.notify_one();
    }

    /// A request reached the service: its head is complete.
    pub fn serving(&self) {
        self.enter(Phase::Serving);
    }

    /// The response is done; the connection waits for the next request.
    pub fn done(&self) {
        self.enter(Phase::Waiting);
    }

    /// Bytes arrived; true when they start a request head (the connection was waiting).
    fn received(&self) -> bool {
        let waiting = Phase::Waiting as u8;
        let reading = Phase::Reading as u8;
        let started = self
            .phase
            .compare_exchange(waiting, reading, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if started {
            self.since.store(now_ms(), Ordering::Release);
            // Once per request: the watchdog now counts the header-read timeout.
            self.changed.notify_one();
        }
        started
    }

    /// Asks the connection's task to close it now.
    pub fn evict(&self) {
        self.evicted.store(1, Ordering::Release);
        self.changed.notify_one();
    }

    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire) == 1
    }

    /// Resolves on the next phase change or eviction.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// When the current phase runs out, or `None` while a request is being served.
    pub fn deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        let since = self.since();
        match self.phase() {
            Phase::Waiting => Some(instant_at(since) + timeouts.idle),
            Phase::Reading => Some(instant_at(since) + timeouts.header_read),
            Phase::Serving => None,
        }
    }
}

impl Default for ConnState {
    fn default() -> Self {
        ConnState::new()
    }
}

/// How long a connection may wait, per phase.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the first byte of a request head to its end.
    pub header_read: Duration,
    /// From the end of a response (or the accept) to the first byte of the next request.
    pub idle: Duration,
}

/// A response hyper wrote by itself, being replaced by the JSON one.
struct Rewrite {
    replacement: Vec<u8>,
    written: usize,
    /// The length of the buffer hyper gave, reported as written once the replacement is out.
    original: usize,
}

/// The socket as hyper reads and writes it. It holds the stream through an `Arc` so that
/// the watchdog can still write a 408 to it while hyper owns this value.
pub struct WatchedIo {
    stream: Arc<TcpStream>,
    conn: Arc<ConnState>,
    rewrite: Option<Rewrite>,
    line: RequestLine,
}

/// How much of the current request's first line has arrived, so that a head hyper
/// refuses as too large because of its request line is answered 414, not 431.
#[derive(Debug, Default)]
struct RequestLine {
    limit: usize,
    length: usize,
    ended: bool,
    too_long: bool,
}

impl RequestLine {
    fn start(&mut self) {
        *self = RequestLine {
            limit: self.limit,
            ..RequestLine::default()
        };
    }

    fn read(&mut self, bytes: &[u8]) {
        if self.ended {
            return;
        }
        match bytes.iter().position(|b| *b == b'\n') {
            Some(at) => {
                self.length += at;
                self.ended = true;
            }
            None => self.length += bytes.len(),
        }
        self.too_long |= self.length > self.limit;
    }
}

impl WatchedIo {
    /// `max_line` is the longest request line (method, path and query) the hub takes.
    pub fn new(stream: Arc<TcpStream>, conn: Arc<ConnState>, max_line: usize) -> WatchedIo {
        WatchedIo {
            stream,
            conn,
            rewrite: None,
            line: RequestLine {
                limit: max_line,
                ..RequestLine::default()
            },
        }
    }
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            match self.stream.try_read(buf.initialize_unfilled()) {
                Ok(read) => {
                    if read > 0 {
                        if self.conn.received() {
                            self.line.start();
                        }
                        if self.conn.phase() == Phase::Reading {
                            let fresh = &buf.initialize_unfilled()[..read];
                            let mut line = std::mem::take(&mut self.line);
                            line.read(fresh);
                            self.line = line;
                        }
                    }
                    buf.advance(read);
                    return Poll::Ready(Ok(()));
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.rewrite.is_none() {
            match automatic_response(buf, self.line.too_long) {
                Some(replacement) => {
                    self.rewrite = Some(Rewrite {
                        replacement,
                        written: 0,
                        original: buf.len(),
                    })
                }
                None => return poll_write_to(&self.stream, cx, buf),
            }
        }
        let this = &mut *self;
        let Some(rewrite) = this.rewrite.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        while rewrite.written < rewrite.replacement.len() {
            let rest = &rewrite.replacement[rewrite.written..];
            let written = ready!(poll_write_to(&this.stream, cx, rest))?;
            rewrite.written += written;
        }
        let original = rewrite.original;
        this.rewrite = None;
        Poll::Ready(Ok(original))
    }

    /// hyper queues a response's head and body slices instead of copying the body into
    /// its own buffer when the transport writes vectored: a cached answer goes from the
    /// cache's `Bytes` to the socket without a per-request copy (and without a
    /// body-sized buffer per connection, which glibc would keep after it closed).
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let first = bufs.iter().find(|buf| !buf.is_empty());
        let own = first.is_some_and(|buf| automatic_response(buf, self.line.too_long).is_some());
        if self.rewrite.is_none() && !own {
            return poll_write_vectored_to(&self.stream, cx, bufs);
        }
        // A response hyper wrote by itself (small, and rare): replaced whole.
        let whole: Vec<u8> = bufs.iter().flat_map(|buf| buf.iter().copied()).collect();
        self.poll_write(cx, &whole)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the socket; there is nothing buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        shutdown_write(&self.stream);
        Poll::Ready(Ok(()))
    }
}

fn poll_write_to(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    bytes: &[u8],
) -> Poll<io::Result<usize>> {
    loop {
        ready!(stream.poll_write_ready(cx))?;
        match stream.try_write(bytes) {
            Ok(written) => return Poll::Ready(Ok(written)),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => return Poll::Ready(Err(err)),
        }
    }
}

fn poll_write_vectored_to(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    bufs: &[io::IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    loop {
        ready!(stream.poll_write_ready(cx))?;
        match stream.try_write_vectored(bufs) {
            Ok(written) => return Poll::Ready(Ok(written)),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => return Poll::Ready(Err(err)),
        }
    }
}

/// Half-closes the socket, so the client sees the end of the response at once.
pub fn shutdown_write(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for as long as `stream` lives, and shutdown() only
    // changes the socket's state; an error (already closed) is of no consequence.
    unsafe {
        libc::shutdown(stream.as_raw_fd(), libc::SHUT_WR);
    }
}

/// The JSON replacement of a response hyper wrote by itself for a request it refused to
/// parse, or `None` for any other bytes. A head too large because of its request line
/// is a 414.
fn automatic_response(buf: &[u8], long_line: bool) -> Option<Vec<u8>> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ")?;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let ours = head
        .split("\r\n")
        .any(|line| line.len() > 13 && line[..13].eq_ignore_ascii_case("x-request-id:"));
    let status: u16 = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    if ours || !(400..500).contains(&status) {
        return None;
    }
    let status = if status == 431 && long_line {
        414
    } else {
        status
    };
    Some(json_response(status, &[]))
}

/// A complete `Connection: close` response with the hub's JSON error for `status`.
pub fn json_response(status: u16, extra_headers: &[(&str, &str)]) -> Vec<u8> {
    let (reason, code, message) = refusal(status);
    let body = serde_json::json!({"success": false, "error": {"code": code, "message": message}})
        .to_string();
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in extra_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_own_refusals_become_json_and_ours_pass() {
        let bare =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let replaced = String::from_utf8(automatic_response(bare, false).unwrap()).unwrap();
        assert!(replaced.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(replaced.ends_with(r#"{"success":false,"error":{"code":"headers_too_large","message":"the request's headers are too large or too many"}}"#), "{replaced}");
        let ours = b"HTTP/1.1 404 Not Found\r\nx-request-id: 7\r\ncontent-length: 2\r\n\r\n{}";
        assert!(automatic_response(ours, false).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(automatic_response(ok, false).is_none());
        assert!(automatic_response(b"{\"body\": \"HTTP/1.1 400\"}", false).is_none());
    }

    #[test]
    fn a_head_refused_for_its_request_line_is_a_414() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        let long = String::from_utf8(automatic_response(bare, true).unwrap()).unwrap();
        assert!(long.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{long}");
    }

    #[test]
    fn a_request_line_is_measured_to_its_end_only() {
        let mut line = RequestLine {
            limit: 20,
            ..RequestLine::default()
        };
        line.read(b"GET /0123");
        assert!(!line.too_long);
        line.read(b"45 HTTP/1.1\r\nX-Long: ");
        assert!(line.too_long, "21 bytes before the line ended");
        line.start();
        line.read(b"GET / HTTP/1.1\r\nX-Long: ");
        line.read(&[b'a'; 100]);
        assert!(!line.too_long, "header bytes do not count");
    }

    #[test]
    fn phases_move_on_bytes_requests_and_responses() {
        let timeouts = Timeouts {
            header_read: Duration::from_secs(5),
            idle: Duration::from_secs(60),
        };
        let conn = ConnState::new();
        assert_eq!(conn.phase(), Phase::Waiting);
        let idle_until = conn.deadline(&timeouts).unwrap();
        conn.received();
        assert_eq!(conn.phase(), Phase::Reading);
        assert!(conn.deadline(&timeouts).unwrap() < idle_until);
        conn.serving();
        assert_eq!(conn.deadline(&timeouts), None);
        conn.received();
        assert_eq!(
            conn.phase(),
            Phase::Serving,
            "body bytes do not restart a head"
        );
        conn.done();
        assert_eq!(conn.phase(), Phase::Waiting);
    }
}
