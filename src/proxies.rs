//! What reverse proxies tell authd: the client's address (`X-Forwarded-For`, believed only from a
//! trusted proxy, `AUTHD_TRUSTED_PROXIES`, and only as far back as trusted proxies vouch for it),
//! and which header carries the original request target (`AUTHD_FORWARDED_URI_HEADER`). Plain
//! Rust, no HTTP types.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

/// Networks whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

/// A trusted-proxy entry that is neither an IP address nor a CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or CIDR network (e.g. 10.0.0.0/8, 127.0.0.1, ::1)")]
pub struct BadProxy(pub String);

impl FromStr for TrustedProxies {
    type Err = BadProxy;

    /// A comma- or space-separated list of IP addresses and CIDR networks; empty trusts nobody.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut nets = Vec::new();
        for item in s.split([',', ' ']).map(str::trim).filter(|i| !i.is_empty()) {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| BadProxy(item.to_owned()))?;
            nets.push(net);
        }
        Ok(Self { nets })
    }
}

impl TrustedProxies {
    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request from `peer` carrying these `X-Forwarded-For` header
    /// values (in order). From an untrusted peer: the peer. From a trusted one: the right-most
    /// address that is not a trusted proxy; if an entry does not parse, the last address a
    /// trusted proxy vouched for; if every entry is trusted, the left-most.
    pub fn client_addr<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let mut entries: Vec<&[u8]> = Vec::new();
        for value in forwarded_for {
            entries.extend(value.split(|&b| b == b','));
        }
        let mut client = peer;
        for entry in entries.iter().rev() {
            let Some(ip) = parse_entry(entry) else {
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(entry).ok()?.trim();
    s.parse::<IpAddr>()
        .or_else(|_| s.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// Which header `/verify` reads the original request target from (`AUTHD_FORWARDED_URI_HEADER`).
///
/// A proxy sets one of them and usually passes the client's headers on, so the client can add
/// the other one. `Auto` reads both and refuses them when they disagree; naming the header the
/// proxy sets makes authd ignore the other entirely, for a proxy chain where the two differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedUriHeader {
    /// `X-Original-URI` or `X-Forwarded-Uri`, whichever is there; both there must say the same.
    #[default]
    Auto,
    /// Only `X-Original-URI` (nginx, as the README configures it).
    XOriginalUri,
    /// Only `X-Forwarded-Uri` (Traefik, Caddy).
    XForwardedUri,
}

/// An `AUTHD_FORWARDED_URI_HEADER` value that is none of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not `auto`, `x-original-uri` or `x-forwarded-uri`")]
pub struct BadForwardedUriHeader(pub String);

impl FromStr for ForwardedUriHeader {
    type Err = BadForwardedUriHeader;

    /// `auto`, `x-original-uri` or `x-forwarded-uri`, in any case (empty is `auto`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(Self::Auto),
            "x-original-uri" => Ok(Self::XOriginalUri),
            "x-forwarded-uri" => Ok(Self::XForwardedUri),
            _ => Err(BadForwardedUriHeader(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_from_an_untrusted_peer_changes_nothing() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_addr(ip("198.51.100.1"), [&b"203.0.113.9"[..]]),
            ip("198.51.100.1")
        );
        let some: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(
            some.client_addr(ip("198.51.100.1"), [&b"203.0.113.9"[..]]),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn right_most_untrusted_address_is_the_client() {
        let t: TrustedProxies = "127.0.0.1, 10.0.0.0/8".parse().unwrap();
        // The client forged the first entry; the proxies appended the rest.
        let xff: [&[u8]; 2] = [b"1.1.1.1, 203.0.113.9", b"10.1.2.3"];
        assert_eq!(t.client_addr(ip("127.0.0.1"), xff), ip("203.0.113.9"));
        // No header: the peer itself.
        assert_eq!(t.client_addr(ip("127.0.0.1"), []), ip("127.0.0.1"));
        // Only trusted hops: the left-most.
        assert_eq!(
            t.client_addr(ip("127.0.0.1"), [&b"10.0.0.5,10.0.0.6"[..]]),
            ip("10.0.0.5")
        );
        // Garbage where a trusted proxy would have written an address: stop at what is vouched.
        assert_eq!(
            t.client_addr(ip("127.0.0.1"), [&b"203.0.113.9, nonsense, 10.0.0.7"[..]]),
            ip("10.0.0.7")
        );
        // Ports and IPv6.
        assert_eq!(
            t.client_addr(ip("::ffff:127.0.0.1"), [&b"[2001:db8::1]:4711"[..]]),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("proxy.local".parse::<TrustedProxies>().is_err());
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
    }

    #[test]
    fn forwarded_uri_header_names_parse_in_any_case() {
        assert_eq!("".parse(), Ok(ForwardedUriHeader::Auto));
        assert_eq!("Auto".parse(), Ok(ForwardedUriHeader::Auto));
        assert_eq!(
            "X-Original-URI".parse(),
            Ok(ForwardedUriHeader::XOriginalUri)
        );
        assert_eq!(
            " x-forwarded-uri ".parse(),
            Ok(ForwardedUriHeader::XForwardedUri)
        );
        assert!("x-forwarded-for".parse::<ForwardedUriHeader>().is_err());
    }
}
