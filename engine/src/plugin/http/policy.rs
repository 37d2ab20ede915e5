//! What a plugin's request may be, checked by the host on the request it really sends:
//! the rules listed in [`super`], as one implementation for both HTTP paths (`http.send`
//! and `wasi:http`). [`admit`] turns a guest's request into an [`Outbound`] or refuses it;
//! [`PublicOnly`] is the resolver that keeps allowed names off internal addresses.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use url::Url;

use crate::plugin::allowlist::{origin, Allowlist};
use crate::plugin::bindings::http::{Header, HttpError, Request};

/// A request the policy admitted, as the host will send it.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Vec<u8>>,
}

/// Why the policy refused a request: a denial (reported as the call's cause) or a
/// malformed request (the guest's own bug).
pub(crate) enum Refusal {
    Denied(String),
    Invalid(String),
}

impl From<Refusal> for HttpError {
    fn from(refusal: Refusal) -> HttpError {
        match refusal {
            Refusal::Denied(why) => HttpError::Denied(why),
            Refusal::Invalid(why) => HttpError::Transport(why),
        }
    }
}

/// Checks `request` against the scheme, credential, allowlist, method and header rules.
pub(crate) fn admit(request: Request, allowlist: &Allowlist) -> Result<Outbound, Refusal> {
    let url = Url::parse(&request.url)
        .map_err(|err| Refusal::Invalid(format!("not a valid URL: {err}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(Refusal::Denied(format!(
            "scheme {} is not http or https",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Denied(format!(
            "{}: credentials in URLs are refused",
            origin(&url)
        )));
    }
    allowlist.check(&url).map_err(Refusal::Denied)?;
    let method = match request.method.to_ascii_uppercase().as_str() {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        "DELETE" => Method::DELETE,
        "HEAD" => Method::HEAD,
        other => return Err(Refusal::Invalid(format!("method {other} is not supported"))),
    };
    let mut headers = HeaderMap::new();
    for Header { name, value } in request.headers {
        if HOST_CONTROLLED_HEADERS
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&name))
        {
            continue;
        }
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Refusal::Invalid(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| Refusal::Invalid(format!("invalid value for header {name}")))?;
        headers.append(name, value);
    }
    Ok(Outbound {
        method,
        url,
        headers,
        body: request.body,
    })
}

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
pub(crate) const PRIVATE_ONLY: &str =
    "resolves only to loopback, private or internal addresses (allow_private_addresses is off)";

/// DNS for plugin requests: the system resolver, keeping public addresses only.
pub(crate) struct PublicOnly;

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
