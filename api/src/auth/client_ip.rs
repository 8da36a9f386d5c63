//! The client's IP: the socket peer, or, when the peer is a trusted proxy, the nearest
//! untrusted address in `X-Forwarded-For` (read from the right).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use ipnet::IpNet;

pub fn client_ip(req: &Request, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>()?.0.ip();
    resolve(
        peer,
        req.headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok()),
        trusted,
    )
}

pub fn resolve<'a>(
    peer: IpAddr,
    forwarded: impl Iterator<Item = &'a str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = forwarded
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut last = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => last = ip,
            Ok(ip) => return Some(ip),
            // A garbled hop: do not trust anything to its left.
            Err(_) => return Some(last),
        }
    }
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let xff = ["1.2.3.4, 10.0.0.7"];
        assert_eq!(
            resolve(ip("8.8.8.8"), xff.iter().copied(), &trusted),
            Some(ip("8.8.8.8"))
        );
        assert_eq!(
            resolve(ip("10.0.0.1"), xff.iter().copied(), &trusted),
            Some(ip("1.2.3.4"))
        );
        let spoof = ["6.6.6.6, 1.2.3.4"];
        assert_eq!(
            resolve(ip("10.0.0.1"), spoof.iter().copied(), &trusted),
            Some(ip("1.2.3.4"))
        );
        assert_eq!(
            resolve(ip("10.0.0.1"), std::iter::empty(), &trusted),
            Some(ip("10.0.0.1"))
        );
    }
}
