//! Authentication by a trusted reverse proxy (an SSO proxy such as oauth2-proxy): when a
//! request comes from an address in `--trusted-proxy` and carries the configured header
//! (e.g. `X-Forwarded-User`), that header names the user. From any other address the
//! header is ignored, so a client cannot claim to be someone.

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName};

use super::{Caller, Scope};

/// An address block, `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDRESS/PREFIX`, or a bare address (one host).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let fail =
            || format!("`{text}` is not an address block: write e.g. 10.0.0.0/8 or 127.0.0.1");
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| fail())?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(fail)?,
            None => width,
        };
        Ok(Cidr { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let bits = |ip: IpAddr| -> (u128, u32) {
            match ip {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let ((net, width), (addr, other)) = (bits(self.network), bits(ip));
        if width != other {
            return false;
        }
        let shift = width - u32::from(self.prefix);
        shift >= width || (net >> shift) == (addr >> shift)
    }
}

/// Which proxies to trust, the header they set, and who among their users is an admin.
#[derive(Debug, Clone)]
pub struct TrustedProxy {
    pub header: HeaderName,
    pub networks: Vec<Cidr>,
    /// Users given the admin scope; every other user the proxy names gets read.
    pub admins: Vec<String>,
}

impl TrustedProxy {
    /// The user the proxy names, when the request comes through one.
    pub fn caller(&self, headers: &HeaderMap, peer: IpAddr) -> Option<Caller> {
        if !self.networks.iter().any(|n| n.contains(peer)) {
            return None;
        }
        let user = headers.get(&self.header)?.to_str().ok()?.trim();
        if user.is_empty() {
            return None;
        }
        let scope = if self.admins.iter().any(|a| a == user) {
            Scope::Admin
        } else {
            Scope::Read
        };
        Some(Caller::Proxy {
            user: user.to_owned(),
            scope,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses_only() {
        let block = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(block.contains(ip("10.1.200.3")) && !block.contains(ip("10.2.0.1")));
        assert!(
            block.contains(ip("::ffff:10.1.0.9")),
            "v4-mapped v6 peers count"
        );
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        for bad in ["10.0.0.0/33", "ten", "10.0.0.0/x"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_trusted_peers_may_name_a_user() {
        let proxy = TrustedProxy {
            header: HeaderName::from_static("x-forwarded-user"),
            networks: vec![Cidr::parse("10.0.0.0/8").unwrap()],
            admins: vec!["alice".into()],
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-user", "alice".parse().unwrap());
        assert_eq!(
            proxy.caller(&headers, ip("10.0.0.5")),
            Some(Caller::Proxy {
                user: "alice".into(),
                scope: Scope::Admin
            })
        );
        assert_eq!(proxy.caller(&headers, ip("192.168.0.5")), None);
        headers.insert("x-forwarded-user", "bob".parse().unwrap());
        assert_eq!(
            proxy
                .caller(&headers, ip("10.0.0.5"))
                .map(|c| c.name().to_owned()),
            Some("bob".into())
        );
    }
}
