//! The client's address behind a load balancer: `server.trusted_proxies` and the
//! `X-Forwarded-For` walk.
//!
//! A forwarding header is only as honest as whoever wrote it. Anyone can send
//! `X-Forwarded-For: 1.2.3.4`, so the header counts only when the TCP peer is a proxy the
//! operator listed; then the header is read from the right (the entries our own proxies
//! appended) to the left, skipping trusted proxies, and the first address that is not one is
//! the client. Everything left of it was written by the client and is never looked at.
//!
//! # Layout
//!
//! - [`Network`]: one address or CIDR network, parsed by hand (std only).
//! - [`TrustedProxies`]: the configured list; reads from TOML arrays and from a
//!   comma-separated `APP__SERVER__TRUSTED_PROXIES`.
//! - [`client_addr`]: what every per-address limit keys on.

use std::{fmt, net::IpAddr, str::FromStr};

use actix_web::{HttpRequest, http::header::HeaderValue};
use serde::{Deserialize, Deserializer, de};

/// One address (`10.0.0.7`, a /32 or /128) or network (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    /// True when `ip` lies in this network (an IPv4-mapped IPv6 address counts as its IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, ip.to_canonical()) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(base) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(base) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || format!("{text:?} is not an IP address or CIDR network (e.g. 10.0.0.0/8)");
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let base = addr.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            // digits only: `u8::from_str` would also take `+8`
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
            None => max,
        };
        Ok(Self { base, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// `server.trusted_proxies`: the peers whose `X-Forwarded-For` is believed. Empty (the
/// default) believes no one: the TCP peer is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// True when `ip` is one of the listed proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list (the form an environment variable can carry); blanks skipped.
    fn from_str(text: &str) -> Result<Self, String> {
        let nets = text.split(',').filter(|s| !s.trim().is_empty()).map(str::parse::<Network>);
        Ok(Self(nets.collect::<Result<_, _>>()?))
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A TOML array, or one string: `APP__SERVER__TRUSTED_PROXIES=10.0.0.0/8,10.1.2.3`
        // arrives as a string, since no other setting needs the config crate's list parsing.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            One(String),
            Many(Vec<String>),
        }
        let list = match Form::deserialize(deserializer)? {
            Form::One(text) => text.parse(),
            Form::Many(items) => items.iter().map(|s| s.parse()).collect::<Result<_, _>>().map(Self),
        };
        list.map_err(|e| de::Error::custom(format!("server.trusted_proxies: {e}")))
    }
}

/// The client of `req`: its TCP peer, or — when that peer is a trusted proxy — what the
/// proxies say in `X-Forwarded-For` ([`resolve`]). `None` when the connection has no peer
/// address (a test request).
pub fn client_addr(req: &HttpRequest, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    Some(resolve(peer, req.headers().get_all("x-forwarded-for"), trusted))
}

/// The right-to-left walk over every `X-Forwarded-For` line, in order (a proxy may append
/// its own line rather than extend the last). Falls back to `peer` when the peer is not
/// trusted, when there is no header, or when an entry met on the walk is not an address —
/// a proxy that wrote garbage cannot be believed about anything further left.
pub fn resolve<'a>(
    peer: IpAddr,
    header_lines: impl Iterator<Item = &'a HeaderValue>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let mut entries = Vec::new();
    for line in header_lines {
        let Ok(line) = line.to_str() else { return peer };
        entries.extend(line.split(','));
    }
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Ok(hop) = entry.trim().parse::<IpAddr>() else { return peer };
        client = hop.to_canonical();
        if !trusted.contains(client) {
            break;
        }
        // A trusted hop: it only forwarded; keep walking left. When every hop is trusted
        // the left-most one is the best answer there is.
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(list: &str) -> TrustedProxies {
        list.parse().expect("a valid list")
    }

    fn walk(peer: &str, lines: &[&str], list: &str) -> IpAddr {
        let lines: Vec<HeaderValue> = lines.iter().map(|l| HeaderValue::from_str(l).unwrap()).collect();
        resolve(peer.parse().unwrap(), lines.iter(), &trusted(list))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_network_contains_exactly_its_prefix() {
        let net: Network = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.255.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!("0.0.0.0/0".parse::<Network>().unwrap().contains(ip("203.0.113.9")));
        let one: Network = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6: Network = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(one.contains(ip("::ffff:127.0.0.1")), "an IPv4-mapped peer is its IPv4");
    }

    #[test]
    fn a_malformed_network_is_refused_with_its_text() {
        for bad in ["10.0.0.0/33", "10.0.0.0/", "10.0.0.0/+8", "10.0.0/8", "::/129", "proxy", "/8"] {
            let e = bad.parse::<Network>().expect_err(bad);
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn a_comma_separated_list_reads_like_an_array() {
        let list = trusted(" 10.0.0.0/8, 127.0.0.1 ,,");
        assert!(list.contains(ip("10.9.9.9")) && list.contains(ip("127.0.0.1")));
        assert!(trusted("").is_empty());
        assert!("10.0.0.0/8,nope".parse::<TrustedProxies>().is_err());
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(walk("203.0.113.5", &["198.51.100.1"], "10.0.0.0/8"), ip("203.0.113.5"));
        assert_eq!(walk("203.0.113.5", &["198.51.100.1"], ""), ip("203.0.113.5"));
    }

    #[test]
    fn a_trusted_peer_names_the_right_most_untrusted_hop() {
        let list = "10.0.0.0/8";
        assert_eq!(walk("10.0.0.2", &["198.51.100.7"], list), ip("198.51.100.7"));
        // the client forged the left entry; our balancer appended the real one
        assert_eq!(walk("10.0.0.2", &["1.2.3.4, 198.51.100.7"], list), ip("198.51.100.7"));
        // two trusted hops (an edge proxy, then the balancer) are skipped
        assert_eq!(walk("10.0.0.2", &["1.2.3.4, 198.51.100.7, 10.0.0.9"], list), ip("198.51.100.7"));
    }

    #[test]
    fn separate_header_lines_are_read_as_one_list_in_order() {
        assert_eq!(walk("10.0.0.2", &["1.2.3.4", "198.51.100.7"], "10.0.0.0/8"), ip("198.51.100.7"));
    }

    #[test]
    fn a_trusted_peer_without_a_header_is_the_client() {
        assert_eq!(walk("10.0.0.2", &[], "10.0.0.0/8"), ip("10.0.0.2"));
    }

    #[test]
    fn a_malformed_hop_on_the_walk_falls_back_to_the_peer() {
        let list = "10.0.0.0/8";
        assert_eq!(walk("10.0.0.2", &["not-an-address"], list), ip("10.0.0.2"));
        assert_eq!(walk("10.0.0.2", &["198.51.100.7, "], list), ip("10.0.0.2"));
        assert_eq!(walk("10.0.0.2", &["198.51.100.7:4000"], list), ip("10.0.0.2"));
    }

    #[test]
    fn garbage_left_of_the_client_changes_nothing() {
        // the walk stops at the client: what it wrote further left is never read, so it
        // cannot make itself look like the balancer (and share everyone's budget)
        assert_eq!(walk("10.0.0.2", &["junk, 198.51.100.7"], "10.0.0.0/8"), ip("198.51.100.7"));
    }

    #[test]
    fn when_every_hop_is_trusted_the_left_most_is_the_client() {
        assert_eq!(walk("10.0.0.2", &["10.0.0.3, 10.0.0.4"], "10.0.0.0/8"), ip("10.0.0.3"));
    }

    #[test]
    fn ipv4_mapped_hops_and_peers_read_as_ipv4() {
        assert_eq!(walk("::ffff:10.0.0.2", &["::ffff:198.51.100.7"], "10.0.0.0/8"), ip("198.51.100.7"));
    }
}
