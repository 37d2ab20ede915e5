//! The outbound HTTP capability granted to plugins: one gate per source, used by both
//! HTTP paths a guest may take (the contract's `http.send`, a call that returns the whole
//! response, and
//! `wasi:http/outgoing-handler`, which Python's and JavaScript's HTTP clients use).
//!
//! The rules, each checked by the host on the request it really sends ([`policy`]):
//! - The URL is parsed here; its scheme, host and port (the scheme's default when absent)
//!   must match an `allowed_hosts` entry. Guest headers never decide where a request goes
//!   (`Host` and hop-by-hop headers from the guest are dropped), which is how Spin's
//!   CVE-2024-32980 allowlist bypass worked.
//! - Redirects are not followed: a 3xx goes back to the plugin, and following it is a new
//!   request checked like the first. So every hop is checked on the URL actually requested.
//! - Host names must resolve to public addresses: a name whose addresses are all loopback,
//!   private, link-local or otherwise internal is refused (DNS cannot turn an allowed name
//!   into a path to an internal service) unless the source sets `allow_private_addresses`.
//!   An IP literal is honoured only when that very address is on the allowlist, which is
//!   how tests reach stand-ins on 127.0.0.1.
//! - Each call may make at most `max_requests_per_call` requests (retries included), must
//!   finish within the call's deadline, and a response body is streamed and cut off past
//!   `max_response_bytes` instead of being buffered whole.
//! - Proxies from the environment are ignored, so no variable can reroute a plugin.
//!
//! Then [`pacing`]: the source's `rate_limit` spaces requests per origin, and its `retry`
//! tries a 429 or 503 again. Every try is logged at `debug` with the source id.

pub(crate) mod pacing;
pub(crate) mod policy;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::allowlist::{origin, Allowlist};
use super::bindings::http::{Header, HttpError, Request, Response};
use super::sandbox::Retry;
use crate::retry;
use pacing::Buckets;
use policy::{Outbound, Refusal, PRIVATE_ONLY};

pub use policy::is_public;

/// What the HTTP capability did during one call, for limits and for reporting. Shared
/// with the requests of that call still in flight (a `wasi:http` request runs as a task).
#[derive(Debug, Default)]
pub(crate) struct CallTally {
    requests: AtomicU32,
    /// The first refused origin, when the allowlist refused one.
    denied: Mutex<Option<String>>,
    /// The response cap, when a body exceeded it (0: none did).
    too_large: AtomicU64,
    /// Set when the request cap was reached.
    too_many: AtomicBool,
}

impl CallTally {
    /// Why the host refused something during the call, if it did: the clearer cause of a
    /// failure than whatever the plugin made of the refusal.
    pub(crate) fn refusal(&self) -> Option<Refused> {
        if let Some(why) = self.denied.lock().ok().and_then(|denied| denied.clone()) {
            return Some(Refused::Denied(why));
        }
        match self.too_large.load(Ordering::Relaxed) {
            0 if self.too_many.load(Ordering::Relaxed) => Some(Refused::TooMany),
            0 => None,
            limit => Some(Refused::TooLarge(limit)),
        }
    }

    /// Counts one request, or says the cap was reached.
    fn count(&self, max: u32) -> bool {
        let counted = self
            .requests
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if !counted {
            self.too_many.store(true, Ordering::Relaxed);
        }
        counted
    }
}

/// A refusal recorded in a [`CallTally`].
pub(crate) enum Refused {
    Denied(String),
    TooLarge(u64),
    TooMany,
}

/// The outbound HTTP of one source: its allowlist, limits, pacing and client.
pub(crate) struct HttpGate {
    source: String,
    allowlist: Allowlist,
    max_response_bytes: u64,
    max_requests: u32,
    buckets: Buckets,
    retry: Retry,
    client: reqwest::Client,
}

impl HttpGate {
    pub(crate) fn new(
        source: &str,
        sandbox: &super::sandbox::Sandbox,
    ) -> Result<HttpGate, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("metrics-hub-plugin/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10));
        if !sandbox.allow_private_addresses {
            builder = builder.dns_resolver(Arc::new(policy::PublicOnly));
        }
        Ok(HttpGate {
            source: source.to_owned(),
            allowlist: sandbox.allowed_hosts.clone(),
            max_response_bytes: sandbox.max_response_bytes,
            max_requests: sandbox.max_requests_per_call,
            buckets: Buckets::new(sandbox.rate_limit),
            retry: sandbox.retry,
            client: builder.build()?,
        })
    }

    /// The cap of requests per call.
    pub(crate) fn max_requests(&self) -> u32 {
        self.max_requests
    }

    /// `http.send`: sends one guest request within `deadline`.
    pub(crate) async fn send(
        self: &Arc<Self>,
        request: Request,
        deadline: Instant,
        tally: &Arc<CallTally>,
    ) -> Result<Response, HttpError> {
        let outbound = self.admit(request, tally)?;
        self.clone()
            .exchange(outbound, deadline, tally.clone())
            .await
    }

    /// The policy's verdict on `request`; a denial is logged and remembered for the call.
    pub(crate) fn admit(&self, request: Request, tally: &CallTally) -> Result<Outbound, HttpError> {
        policy::admit(request, &self.allowlist).map_err(|refusal| {
            if let Refusal::Denied(why) = &refusal {
                self.deny(tally, why.clone());
            }
            refusal.into()
        })
    }

    /// Sends an admitted request: paced, retried on 429 and 503, each try counted
    /// against the call's cap and bounded by its deadline.
    pub(crate) async fn exchange(
        self: Arc<Self>,
        outbound: Outbound,
        deadline: Instant,
        tally: Arc<CallTally>,
    ) -> Result<Response, HttpError> {
        let origin = origin(&outbound.url);
        let mut tries = 0;
        let mut last = None;
        loop {
            if !tally.count(self.max_requests) {
                // A concurrent request of the same call took the room a retry needed.
                if let Some(response) = last {
                    return Ok(response);
                }
                tracing::warn!(source = %self.source, limit = self.max_requests, "plugin request refused: too many requests in one call");
                return Err(HttpError::TooManyRequests(self.max_requests));
            }
            tries += 1;
            let Some(wait) = self.buckets.reserve(&origin, Instant::now(), deadline) else {
                tracing::warn!(source = %self.source, url = %origin, "plugin request not sent: its rate limit leaves no room before the call's deadline");
                return Err(HttpError::Timeout);
            };
            tokio::time::sleep(wait).await;
            let started = Instant::now();
            let outcome = self.once(&outbound, deadline).await;
            self.observe(&outbound, &outcome, started.elapsed(), tries);
            let response = match outcome {
                Ok(response) => response,
                Err(err) => return Err(self.failed(&tally, &origin, err)),
            };
            match self.backoff(&response, tries, deadline, &tally) {
                Some(backoff) => {
                    last = Some(response);
                    tokio::time::sleep(backoff).await;
                }
                None => return Ok(response),
            }
        }
    }

    /// How long to wait before trying `response`'s request again, or `None` to hand the
    /// response to the plugin: it is not a 429 or 503, the tries are used up, the call's
    /// cap has no room left, or the wait would outlast the deadline.
    fn backoff(
        &self,
        response: &Response,
        tries: u32,
        deadline: Instant,
        tally: &CallTally,
    ) -> Option<Duration> {
        if !Retry::retries(response.status) || tries >= self.retry.max_tries {
            return None;
        }
        if tally.requests.load(Ordering::Acquire) >= self.max_requests {
            return None;
        }
        let asked = response
            .headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case("retry-after"))
            .and_then(|header| retry::parse_retry_after(&header.value, SystemTime::now()));
        let backoff = self.retry.backoff(tries, asked);
        (Instant::now() + backoff < deadline).then_some(backoff)
    }

    /// One try: the request sent and its body read under the cap and the deadline.
    async fn once(&self, outbound: &Outbound, deadline: Instant) -> Result<Response, HttpError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(HttpError::Timeout);
        }
        let mut builder = self
            .client
            .request(outbound.method.clone(), outbound.url.clone())
            .headers(outbound.headers.clone())
            .timeout(remaining);
        if let Some(body) = &outbound.body {
            builder = builder.body(body.clone());
        }
        let limit = self.max_response_bytes;
        let exchange = async move {
            let mut response = builder.send().await.map_err(transport)?;
            if response.content_length().is_some_and(|len| len > limit) {
                return Err(HttpError::TooLarge(limit));
            }
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(name, value)| Header {
                    name: name.as_str().to_owned(),
                    value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
                })
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(transport)? {
                if body.len() as u64 + chunk.len() as u64 > limit {
                    return Err(HttpError::TooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Response {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(remaining, exchange)
            .await
            .unwrap_or(Err(HttpError::Timeout))
    }

    /// The `debug` line of one try: method, origin and path (never the query, which may
    /// hold a key), status, duration, bytes and which try it was.
    fn observe(
        &self,
        outbound: &Outbound,
        outcome: &Result<Response, HttpError>,
        took: Duration,
        tries: u32,
    ) {
        let url = format!("{}{}", origin(&outbound.url), outbound.url.path());
        let took_ms = took.as_secs_f64() * 1000.0;
        match outcome {
            Ok(response) => tracing::debug!(
                source = %self.source, method = %outbound.method, url, status = response.status,
                took_ms, bytes = response.body.len(), retry = tries - 1, "plugin request"
            ),
            Err(err) => tracing::debug!(
                source = %self.source, method = %outbound.method, url, error = %err,
                took_ms, retry = tries - 1, "plugin request failed"
            ),
        }
    }

    /// Records and logs a failed try, turning a resolver refusal into a denial.
    fn failed(&self, tally: &CallTally, origin: &str, err: HttpError) -> HttpError {
        match err {
            HttpError::Transport(why) if why.contains(PRIVATE_ONLY) => {
                return self.deny(tally, format!("{origin} {PRIVATE_ONLY}"));
            }
            HttpError::TooLarge(limit) => {
                tally.too_large.store(limit, Ordering::Relaxed);
                tracing::warn!(source = %self.source, url = %origin, limit, "plugin response refused: body over the cap");
            }
            HttpError::Timeout => {
                tracing::warn!(source = %self.source, url = %origin, "plugin request timed out")
            }
            HttpError::Transport(ref why) => {
                tracing::warn!(source = %self.source, url = %origin, "plugin request failed: {why}")
            }
            _ => {}
        }
        err
    }

    fn deny(&self, tally: &CallTally, why: String) -> HttpError {
        tracing::warn!(source = %self.source, "plugin request refused: {why}");
        if let Ok(mut denied) = tally.denied.lock() {
            denied.get_or_insert_with(|| why.clone());
        }
        HttpError::Denied(why)
    }
}

fn transport(err: reqwest::Error) -> HttpError {
    if err.is_timeout() {
        return HttpError::Timeout;
    }
    // The full chain (e.g. "resolves only to private addresses") helps the plugin author;
    // it holds no secrets since URLs' paths are not part of reqwest's messages here.
    let mut source = std::error::Error::source(&err);
    let mut text = match err.url() {
        // Without the URL: its path or query may carry a token.
        Some(_) => err
            .to_string()
            .split(" for url (")
            .next()
            .unwrap_or_default()
            .to_owned(),
        None => err.to_string(),
    };
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    HttpError::Transport(text)
}
