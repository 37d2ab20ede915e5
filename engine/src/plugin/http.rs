//! The outbound HTTP capability granted to plugins: one small module with a clear allowlist.
//!
//! The rules, each checked by the host on the request it really sends:
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
//! - Each call may make at most `max_requests_per_call` requests, must finish within the
//!   call's deadline, and a response body is streamed and cut off past
//!   `max_response_bytes` instead of being buffered whole.
//! - Proxies from the environment are ignored, so no variable can reroute a plugin.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

use super::allowlist::{origin, Allowlist};
use super::bindings::http::{Header, HttpError, Request, Response};

/// Whether an address is reachable on the public internet (what a name on the allowlist
/// must resolve to unless private addresses are allowed).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                // shared address space (carrier-grade NAT)
                || (a == 100 && (64..128).contains(&b))
                // IETF protocol assignments and benchmarking
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // unique local fc00::/7 and link-local fe80::/10
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                // documentation 2001:db8::/32
                || (first == 0x2001 && v6.segments()[1] == 0xdb8))
        }
    }
}

/// How the resolver refuses a name; recognised in the error chain to report a denial.
const PRIVATE_ONLY: &str =
    "resolves only to loopback, private or internal addresses (allow_private_addresses is off)";

/// DNS for plugin requests: the system resolver, keeping public addresses only.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| is_public(addr.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} {PRIVATE_ONLY}").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Headers a guest may not set: the host derives them from the URL and body.
const HOST_CONTROLLED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-connection",
];

/// What the HTTP capability did during one call, for limits and for reporting.
#[derive(Debug, Default)]
pub(crate) struct CallTally {
    pub(crate) requests: u32,
    /// The first refused origin, when the allowlist refused one.
    pub(crate) denied: Option<String>,
    /// The response cap, when a body exceeded it.
    pub(crate) too_large: Option<u64>,
    /// Set when the request cap was reached.
    pub(crate) too_many: bool,
}

/// The outbound HTTP of one source: its allowlist, limits and client.
pub(crate) struct HttpGate {
    source: String,
    allowlist: Allowlist,
    max_response_bytes: u64,
    max_requests: u32,
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
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(HttpGate {
            source: source.to_owned(),
            allowlist: sandbox.allowed_hosts.clone(),
            max_response_bytes: sandbox.max_response_bytes,
            max_requests: sandbox.max_requests_per_call,
            client: builder.build()?,
        })
    }

    /// The cap of requests per call.
    pub(crate) fn max_requests(&self) -> u32 {
        self.max_requests
    }

    /// Sends one guest request from a blocking thread, within `deadline`.
    pub(crate) fn send(
        &self,
        runtime: &tokio::runtime::Handle,
        request: Request,
        deadline: Instant,
        tally: &mut CallTally,
    ) -> Result<Response, HttpError> {
        if tally.requests >= self.max_requests {
            tally.too_many = true;
            tracing::warn!(source = %self.source, limit = self.max_requests, "plugin request refused: too many requests in one call");
            return Err(HttpError::TooManyRequests(self.max_requests));
        }
        tally.requests += 1;
        let url = Url::parse(&request.url)
            .map_err(|err| HttpError::Transport(format!("not a valid URL: {err}")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return self.deny(
                tally,
                format!("scheme {} is not http or https", url.scheme()),
            );
        }
        if !url.username().is_empty() || url.password().is_some() {
            return self.deny(
                tally,
                format!("{}: credentials in URLs are refused", origin(&url)),
            );
        }
        if let Err(why) = self.allowlist.check(&url) {
            return self.deny(tally, why);
        }
        let method = match request.method.to_ascii_uppercase().as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            "PATCH" => reqwest::Method::PATCH,
            "DELETE" => reqwest::Method::DELETE,
            "HEAD" => reqwest::Method::HEAD,
            other => {
                return Err(HttpError::Transport(format!(
                    "method {other} is not supported"
                )))
            }
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(HttpError::Timeout);
        }
        let mut builder = self.client.request(method, url.clone()).timeout(remaining);
        for Header { name, value } in request.headers {
            if HOST_CONTROLLED_HEADERS
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&name))
            {
                continue;
            }
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpError::Transport(format!("invalid header name {name:?}")))?;
            let value = reqwest::header::HeaderValue::from_str(&value)
                .map_err(|_| HttpError::Transport(format!("invalid value for header {name}")))?;
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
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
        let outcome = runtime.block_on(async {
            tokio::time::timeout(remaining, exchange)
                .await
                .unwrap_or(Err(HttpError::Timeout))
        });
        match &outcome {
            Err(HttpError::Transport(why)) if why.contains(PRIVATE_ONLY) => {
                return self.deny(tally, format!("{} {PRIVATE_ONLY}", origin(&url)));
            }
            Err(HttpError::TooLarge(limit)) => {
                tally.too_large = Some(*limit);
                tracing::warn!(source = %self.source, url = %origin(&url), limit, "plugin response refused: body over the cap");
            }
            Err(HttpError::Timeout) => {
                tracing::warn!(source = %self.source, url = %origin(&url), "plugin request timed out")
            }
            Err(HttpError::Transport(why)) => {
                tracing::warn!(source = %self.source, url = %origin(&url), "plugin request failed: {why}")
            }
            _ => {}
        }
        outcome
    }

    fn deny(&self, tally: &mut CallTally, why: String) -> Result<Response, HttpError> {
        tracing::warn!(source = %self.source, "plugin request refused: {why}");
        tally.denied.get_or_insert_with(|| why.clone());
        Err(HttpError::Denied(why))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "::ffff:8.8.8.8"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
