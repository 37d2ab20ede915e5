//! The hosts a plugin may reach (`sandbox.allowed_hosts`): entries parsed from YAML and
//! checked against every URL the host really requests. A leaf: parsing and matching
//! only, so the config side can validate entries without the HTTP client.

use std::fmt;
use std::net::IpAddr;

use url::{Host, Url};

/// One `allowed_hosts` entry: `https://api.example.com`, `https://*.example.com:8443`,
/// `http://127.0.0.1:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: String,
    host: HostPattern,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Exactly this name (lowercase).
    Name(String),
    /// Any name ending in `.SUFFIX` (not SUFFIX itself).
    Subdomains(String),
    /// Exactly this address.
    Ip(IpAddr),
}

impl AllowedHost {
    /// Parses an entry; the error says what is wrong with it.
    pub fn parse(entry: &str) -> Result<AllowedHost, String> {
        let entry = entry.trim();
        let (scheme, rest) = entry.split_once("://").ok_or_else(|| {
            format!("`{entry}` needs a scheme: write e.g. https://api.example.com")
        })?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("`{entry}`: only http and https are allowed"));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "`{entry}`: give scheme, host and optional port only, without path or credentials"
            ));
        }
        let (wildcard, rest) = match rest.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        if rest.contains('*') {
            return Err(format!(
                "`{entry}`: a wildcard may only stand for the leading labels, as in https://*.example.com"
            ));
        }
        // Let the URL parser handle brackets, ports and normalisation.
        let url = Url::parse(&format!("{scheme}://{rest}/"))
            .map_err(|err| format!("`{entry}` is not a valid host: {err}"))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| format!("`{entry}`: cannot tell the port"))?;
        let host = match url.host() {
            Some(Host::Domain(name)) if wildcard => {
                if !name.contains('.') {
                    return Err(format!(
                        "`{entry}`: a wildcard needs a domain with at least two labels after it"
                    ));
                }
                HostPattern::Subdomains(name.to_ascii_lowercase())
            }
            Some(Host::Domain(name)) => HostPattern::Name(name.to_ascii_lowercase()),
            Some(Host::Ipv4(ip)) if !wildcard => HostPattern::Ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) if !wildcard => HostPattern::Ip(IpAddr::V6(ip)),
            _ => return Err(format!("`{entry}`: a wildcard cannot apply to an address")),
        };
        Ok(AllowedHost { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &Host<&str>, port: u16) -> bool {
        if self.scheme != scheme || self.port != port {
            return false;
        }
        match (&self.host, host) {
            (HostPattern::Name(name), Host::Domain(domain)) => name.eq_ignore_ascii_case(domain),
            (HostPattern::Subdomains(suffix), Host::Domain(domain)) => {
                let domain = domain.to_ascii_lowercase();
                domain.len() > suffix.len() + 1
                    && domain.ends_with(suffix.as_str())
                    && domain.as_bytes()[domain.len() - suffix.len() - 1] == b'.'
            }
            (HostPattern::Ip(ip), Host::Ipv4(v4)) => *ip == IpAddr::V4(*v4),
            (HostPattern::Ip(ip), Host::Ipv6(v6)) => *ip == IpAddr::V6(*v6),
            _ => false,
        }
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            HostPattern::Name(name) => write!(f, "{}://{name}:{}", self.scheme, self.port),
            HostPattern::Subdomains(suffix) => {
                write!(f, "{}://*.{suffix}:{}", self.scheme, self.port)
            }
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "{}://[{ip}]:{}", self.scheme, self.port),
            HostPattern::Ip(ip) => write!(f, "{}://{ip}:{}", self.scheme, self.port),
        }
    }
}

/// The hosts one source may reach. Empty (the default) refuses everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist(pub Vec<AllowedHost>);

impl Allowlist {
    /// Whether `url` may be requested. The error names the origin refused.
    pub fn check(&self, url: &Url) -> Result<(), String> {
        let origin = origin(url);
        let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
            return Err(format!("{origin} has no host"));
        };
        if self
            .0
            .iter()
            .any(|entry| entry.allows(url.scheme(), &host, port))
        {
            Ok(())
        } else {
            Err(format!("{origin} is not in allowed_hosts"))
        }
    }
}

/// `scheme://host:port` of a URL: what logs may show (paths and queries can hold secrets).
pub fn origin(url: &Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        _ => format!("{}://?", url.scheme()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Allowlist {
        Allowlist(
            entries
                .iter()
                .map(|e| AllowedHost::parse(e).unwrap())
                .collect(),
        )
    }

    fn allowed(list: &Allowlist, url: &str) -> bool {
        list.check(&Url::parse(url).unwrap()).is_ok()
    }
    #[test]
    fn entries_match_scheme_host_and_port() {
        let hosts = list(&["https://api.example.com", "http://127.0.0.1:8080"]);
        assert!(allowed(&hosts, "https://api.example.com/v1?q=1"));
        assert!(allowed(&hosts, "https://API.Example.com:443/"));
        assert!(!allowed(&hosts, "http://api.example.com/"));
        assert!(!allowed(&hosts, "https://api.example.com:8443/"));
        assert!(!allowed(&hosts, "https://api.example.com.evil.net/"));
        assert!(!allowed(&hosts, "https://evil.net/api.example.com"));
        assert!(allowed(&hosts, "http://127.0.0.1:8080/x"));
        assert!(!allowed(&hosts, "http://127.0.0.1:8081/x"));
        assert!(!allowed(&hosts, "http://localhost:8080/x"));
        // The userinfo trick: the host is evil.net.
        assert!(!allowed(&hosts, "https://api.example.com@evil.net/"));
    }
    #[test]
    fn wildcards_cover_subdomains_only() {
        let hosts = list(&["https://*.my.salesforce.com"]);
        assert!(allowed(&hosts, "https://acme.my.salesforce.com/services"));
        assert!(allowed(&hosts, "https://a.b.my.salesforce.com/"));
        assert!(!allowed(&hosts, "https://my.salesforce.com/"));
        assert!(!allowed(&hosts, "https://evilmy.salesforce.com/"));
        assert!(!allowed(&hosts, "https://acme.my.salesforce.com.evil.net/"));
    }
    #[test]
    fn bad_entries_say_why() {
        for (entry, expected) in [
            ("api.example.com", "needs a scheme"),
            ("ftp://example.com", "only http and https"),
            ("https://example.com/path", "without path"),
            ("https://user@example.com", "without path or credentials"),
            ("https://*.com", "at least two labels"),
            ("https://a.*.example.com", "leading labels"),
            ("https://*.127.0.0.1", "a wildcard"),
        ] {
            let err = AllowedHost::parse(entry).unwrap_err();
            assert!(err.contains(expected), "{entry}: {err}");
        }
        assert_eq!(
            AllowedHost::parse("https://API.example.com/")
                .unwrap()
                .to_string(),
            "https://api.example.com:443"
        );
    }
}
