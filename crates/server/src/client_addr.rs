//! The client's address, for the limits on guessing: the peer's address, or, when the peer is
//! one of the operator's trusted proxies (`--trusted-proxy`), the address that proxy reports
//! in `X-Forwarded-For`. A header from anyone else is ignored: it is whatever the client says.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::state::AppState;

/// At most this many `X-Forwarded-For` hops are walked.
const MAX_HOPS: usize = 16;

/// The address a request is attributed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(Self(client_ip(peer, &parts.headers, &state.trusted_proxies)))
    }
}

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    proxies.iter().any(|n| n.contains(&ip))
}

/// Walks `X-Forwarded-For` from the right while the hop that added each entry is trusted; the
/// first address a trusted proxy reports that is not itself a trusted proxy is the client.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    if proxies.is_empty() || !trusted(peer, proxies) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev().take(MAX_HOPS) {
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !trusted(ip, proxies) {
            break;
        }
    }
    client
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// Parses `--trusted-proxy`: a CIDR block, or one address.
pub fn parse_proxy(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("'{s}' is not an address or a CIDR block"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(xff: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in xff {
            m.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        m
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let proxies = vec![parse_proxy("10.0.0.0/8").unwrap(), parse_proxy("192.0.2.7").unwrap()];
        let xff = h(&["203.0.113.9"]);
        assert_eq!(client_ip(ip("198.51.100.1"), &xff, &proxies), ip("198.51.100.1"), "untrusted");
        assert_eq!(client_ip(ip("10.1.2.3"), &xff, &proxies), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("10.1.2.3"), &xff, &[]), ip("10.1.2.3"), "no proxies configured");
        // A client's own forged entry sits left of what the proxies appended.
        let chain = h(&["6.6.6.6, 203.0.113.9", "192.0.2.7"]);
        assert_eq!(client_ip(ip("10.1.2.3"), &chain, &proxies), ip("203.0.113.9"));
        // Garbage stops the walk at the last good hop.
        assert_eq!(client_ip(ip("10.1.2.3"), &h(&["nonsense"]), &proxies), ip("10.1.2.3"));
        assert_eq!(
            client_ip(ip("10.1.2.3"), &h(&["[2001:db8::5]:443"]), &proxies),
            ip("2001:db8::5")
        );
        assert_eq!(client_ip(ip("::ffff:10.0.0.1"), &xff, &proxies), ip("203.0.113.9"));
        assert!(parse_proxy("not-an-ip").is_err());
    }
}
