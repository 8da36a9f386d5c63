//! Where an integrator's webhook endpoint may point: the URL rules checked when an endpoint is
//! saved, and the address rules checked again before every connection (a name that resolved to
//! a public address when it was saved may resolve to a private one later).
//!
//! - `https://` only; plain `http://` only in development and only to a loopback host.
//! - No user name or password, a host, at most [`MAX_URL_LEN`] characters.
//! - In production no address that is not public: loopback, private, shared (CGNAT),
//!   link-local, unique-local, multicast, broadcast, unspecified, documentation, benchmarking,
//!   reserved, and IPv6 forms that carry one of those (IPv4-mapped, IPv4-compatible, NAT64,
//!   6to4). In development loopback is allowed too, and nothing else production forbids.
//!
//! The contract is `docs/integrator-events.md`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The longest URL an endpoint may have.
pub const MAX_URL_LEN: usize = 2048;

/// How long a name may take to resolve before it counts as not resolving.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a URL or address is refused (the message is the API's field error for `url`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    #[error("is not a valid absolute URL")]
    Malformed,
    #[error("must be at most 2048 characters")]
    TooLong,
    #[error("must be an https:// URL")]
    NotHttps,
    #[error("must be an https:// URL (http:// only to a loopback host, and only in development)")]
    HttpNotLoopback,
    #[error("must not contain a user name or password")]
    Userinfo,
    #[error("must have a host")]
    NoHost,
    #[error("must point to a public address (not private, loopback, link-local, multicast or otherwise non-public)")]
    ForbiddenAddress,
    #[error("the host does not resolve")]
    Unresolvable,
}

/// Checks the URL's form, and an IP-literal host against [`is_forbidden_ip`] (a name host is
/// checked by [`resolve_public`], except `localhost` names, refused here in production).
/// Returns the parsed URL (its `as_str()` is the normalised form to store).
pub fn check_url(url: &str, development: bool) -> Result<url::Url, UrlProblem> {
    if url.len() > MAX_URL_LEN {
        return Err(UrlProblem::TooLong);
    }
    let parsed = url::Url::parse(url).map_err(|_| UrlProblem::Malformed)?;
    // The parser normalises (`HTTPS://` → `https://`, IPv4 in any notation → dotted quad);
    // the normalised form is what is stored and connected to, so it is what is checked.
    if parsed.as_str().len() > MAX_URL_LEN {
        return Err(UrlProblem::TooLong);
    }
    let scheme = parsed.scheme();
    if scheme != "https" && scheme != "http" {
        return Err(UrlProblem::NotHttps);
    }
    let host = parsed.host().ok_or(UrlProblem::NoHost)?;
    if scheme == "http" && !(development && is_loopback_host(&host)) {
        return Err(UrlProblem::HttpNotLoopback);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(UrlProblem::Userinfo);
    }
    let forbidden = match &host {
        url::Host::Ipv4(ip) => is_forbidden_ip(IpAddr::V4(*ip), development),
        url::Host::Ipv6(ip) => is_forbidden_ip(IpAddr::V6(*ip), development),
        url::Host::Domain(name) => name.is_empty() || (!development && is_localhost_name(name)),
    };
    if forbidden {
        return Err(UrlProblem::ForbiddenAddress);
    }
    Ok(parsed)
}

/// `localhost`, or a name under it (RFC 6761: they always resolve to loopback).
fn is_localhost_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Whether a URL host is loopback: a `localhost` name, 127.0.0.0/8 or ::1 (also IPv4-mapped).
fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => is_localhost_name(name),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => is_loopback(IpAddr::V6(*ip)),
    }
}

/// Whether `ip` is loopback: 127.0.0.0/8, ::1, or an IPv6 form of 127.0.0.0/8.
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || embedded_v4(v6).is_some_and(|v4| v4.is_loopback()),
    }
}

/// Whether the engine must not connect to `ip`: every address that is not public. In
/// development loopback is allowed (and nothing else that production forbids).
pub fn is_forbidden_ip(ip: IpAddr, development: bool) -> bool {
    if development && is_loopback(ip) {
        return false;
    }
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

/// IPv4 ranges that are not public (IANA special-purpose registry), as (network, prefix).
const FORBIDDEN_V4: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),       // "this network", with the unspecified address
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // shared address space (CGNAT)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local (and cloud metadata services)
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast (deprecated)
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, with the limited broadcast 255.255.255.255
];

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    FORBIDDEN_V4.iter().any(|(net, p)| in_v4(ip, *net, *p))
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

const fn v6(s: [u16; 8]) -> Ipv6Addr {
    Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7])
}

/// The IPv4 address an IPv6 address stands for, where it is a form that reaches one:
/// IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d` (deprecated), NAT64
/// `64:ff9b::a.b.c.d` and 6to4 `2002:aabb:ccdd::/48`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if in_v6(ip, Ipv6Addr::UNSPECIFIED, 96) {
        return Some(low32);
    }
    if in_v6(ip, v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0]), 96) {
        return Some(low32);
    }
    if in_v6(ip, v6([0x2002, 0, 0, 0, 0, 0, 0, 0]), 16) {
        return Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    None
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        // `::` and `::1` are IPv4-compatible in form but are the unspecified and loopback
        // addresses; the embedded 0.0.0.0 / 0.0.0.1 are forbidden as well.
        return is_forbidden_v4(v4);
    }
    // Only global unicast (2000::/3) is public; everything else (link-local fe80::/10,
    // unique-local fc00::/7, multicast ff00::/8, site-local fec0::/10, discard 100::/64,
    // local-use NAT64 64:ff9b:1::/48, SRv6 5f00::/16, …) is not.
    if !in_v6(ip, v6([0x2000, 0, 0, 0, 0, 0, 0, 0]), 3) {
        return true;
    }
    // The special-purpose blocks inside 2000::/3.
    const SPECIAL: &[([u16; 8], u8)] = &[
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), // IETF protocol assignments (Teredo, benchmarking, ORCHID)
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), // documentation (RFC 9637)
    ];
    SPECIAL.iter().any(|(net, p)| in_v6(ip, v6(*net), *p))
}

/// Resolves `host` (a name, or an IP literal, bracketed or not) and returns its addresses,
/// refusing if it does not resolve (within [`RESOLVE_TIMEOUT`]) or if ANY address is
/// forbidden ([`is_forbidden_ip`]). An HTTP client should connect only to the returned
/// addresses, so that a name cannot resolve once for the check and again, differently, for
/// the connection.
pub async fn resolve_public(
    host: &str,
    port: u16,
    development: bool,
) -> Result<Vec<SocketAddr>, UrlProblem> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            if bare.is_empty() {
                return Err(UrlProblem::NoHost);
            }
            if !development && is_localhost_name(bare) {
                return Err(UrlProblem::ForbiddenAddress);
            }
            match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((bare, port))).await
            {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(_)) | Err(_) => return Err(UrlProblem::Unresolvable),
            }
        }
    };
    if addrs.is_empty() {
        return Err(UrlProblem::Unresolvable);
    }
    if addrs.iter().any(|a| is_forbidden_ip(a.ip(), development)) {
        return Err(UrlProblem::ForbiddenAddress);
    }
    Ok(addrs)
}

/// [`check_url`], then (in production) [`resolve_public`] on its host and port: what the API
/// checks when an endpoint's URL is saved.
pub async fn check_public_url(url: &str, development: bool) -> Result<url::Url, UrlProblem> {
    let parsed = check_url(url, development)?;
    if !development {
        let host = parsed.host_str().ok_or(UrlProblem::NoHost)?;
        let port = parsed
            .port_or_known_default()
            .ok_or(UrlProblem::Malformed)?;
        resolve_public(host, port, development).await?;
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("{s} is an IP"))
    }

    const PUBLIC: &[&str] = &[
        "1.1.1.1",
        "8.8.8.8",
        "93.184.216.34",
        "100.63.255.255",  // just below CGNAT
        "100.128.0.0",     // just above CGNAT
        "172.15.255.255",  // just below 172.16/12
        "172.32.0.0",      // just above
        "192.167.255.255", // just below 192.168/16
        "192.169.0.0",
        "169.253.255.255",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255", // the last unicast before multicast
        "11.0.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "2a00:1450:4001:80b::200e",
        "2001:200::1", // APNIC, just above the IETF block 2001::/23
        "::ffff:8.8.8.8",
        "64:ff9b::808:808", // NAT64 of 8.8.8.8
        "2002:808:808::1",  // 6to4 of 8.8.8.8
        "3ffe::1",          // below 3fff::/20
    ];

    const FORBIDDEN: &[&str] = &[
        // unspecified and "this network"
        "0.0.0.0",
        "0.1.2.3",
        "::",
        // loopback
        "127.0.0.1",
        "127.255.255.254",
        "::1",
        // private
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "192.168.255.255",
        // link-local (cloud metadata)
        "169.254.169.254",
        "169.254.0.1",
        "fe80::1",
        "febf:ffff::1",
        // shared (CGNAT)
        "100.64.0.1",
        "100.127.255.255",
        // multicast and broadcast
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "ff02::1",
        "ff0e::1",
        // reserved
        "240.0.0.1",
        // documentation
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "2001:db8::1",
        "3fff::1",
        // benchmarking, protocol assignments, 6to4 relay
        "198.18.0.1",
        "198.19.255.255",
        "192.0.0.8",
        "192.88.99.1",
        "2001:2::1",
        // unique-local and site-local
        "fc00::1",
        "fd12:3456:789a::1",
        "fec0::1",
        // Teredo, discard, local NAT64, SRv6
        "2001::1",
        "100::1",
        "64:ff9b:1::1",
        "5f00::1",
        // IPv6 forms of forbidden IPv4 addresses
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:192.168.1.1",
        "::ffff:0.0.0.0",
        "::127.0.0.1",
        "::10.0.0.1",
        "64:ff9b::a00:1",    // NAT64 of 10.0.0.1
        "64:ff9b::7f00:1",   // NAT64 of 127.0.0.1
        "2002:7f00:1::1",    // 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1", // 6to4 of 169.254.169.254
        "2002:c0a8:101::1",  // 6to4 of 192.168.1.1
    ];

    #[test]
    fn production_allows_public_addresses_only() {
        for a in PUBLIC {
            assert!(!is_forbidden_ip(ip(a), false), "{a} is public");
        }
        for a in FORBIDDEN {
            assert!(is_forbidden_ip(ip(a), false), "{a} is not public");
        }
    }

    #[test]
    fn development_allows_loopback_and_nothing_else_production_forbids() {
        for a in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
        ] {
            assert!(!is_forbidden_ip(ip(a), true), "{a} is loopback");
        }
        for a in FORBIDDEN {
            if !is_loopback(ip(a)) {
                assert!(is_forbidden_ip(ip(a), true), "{a} in development");
            }
        }
        for a in PUBLIC {
            assert!(!is_forbidden_ip(ip(a), true), "{a} in development");
        }
    }

    #[test]
    fn https_urls_to_public_hosts_pass_and_are_normalised() {
        for dev in [false, true] {
            let u = check_url("https://hooks.example.com/ezpulze?x=1", dev).expect("ok");
            assert_eq!(u.as_str(), "https://hooks.example.com/ezpulze?x=1");
            let u = check_url("HTTPS://Hooks.Example.COM:8443", dev).expect("ok");
            assert_eq!(u.as_str(), "https://hooks.example.com:8443/");
            assert!(check_url("https://8.8.8.8/x", dev).is_ok());
            assert!(check_url("https://[2606:4700:4700::1111]/x", dev).is_ok());
        }
    }

    #[test]
    fn bad_forms_are_refused() {
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        for dev in [false, true] {
            assert_eq!(check_url(&long, dev), Err(UrlProblem::TooLong));
            assert_eq!(
                check_url("hooks.example.com", dev),
                Err(UrlProblem::Malformed)
            );
            assert_eq!(check_url("", dev), Err(UrlProblem::Malformed));
            assert_eq!(check_url("https://", dev), Err(UrlProblem::Malformed));
            assert_eq!(
                check_url("ftp://example.com/", dev),
                Err(UrlProblem::NotHttps)
            );
            assert_eq!(
                check_url("file:///etc/passwd", dev),
                Err(UrlProblem::NotHttps)
            );
            assert_eq!(
                check_url("javascript:alert(1)", dev),
                Err(UrlProblem::NotHttps)
            );
            assert_eq!(
                check_url("https://user:pw@example.com/", dev),
                Err(UrlProblem::Userinfo)
            );
            assert_eq!(
                check_url("https://user@example.com/", dev),
                Err(UrlProblem::Userinfo)
            );
            assert_eq!(
                check_url("http://example.com/", dev),
                Err(UrlProblem::HttpNotLoopback)
            );
            assert_eq!(
                check_url("http://10.0.0.1/", dev),
                Err(UrlProblem::HttpNotLoopback)
            );
        }
        let at_limit = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN - 20));
        assert_eq!(at_limit.len(), MAX_URL_LEN);
        assert!(check_url(&at_limit, false).is_ok());
    }

    #[test]
    fn http_only_to_loopback_and_only_in_development() {
        for u in [
            "http://127.0.0.1:9000/hook",
            "http://localhost:9000/hook",
            "http://LOCALHOST./hook",
            "http://api.localhost/hook",
            "http://[::1]:9000/hook",
            "http://127.8.9.10/",
        ] {
            assert!(check_url(u, true).is_ok(), "{u} in development");
            assert_eq!(
                check_url(u, false),
                Err(UrlProblem::HttpNotLoopback),
                "{u} in production"
            );
        }
    }

    #[test]
    fn production_refuses_non_public_ip_literals_and_localhost_in_any_notation() {
        for u in [
            "https://127.0.0.1/x",
            "https://10.0.0.1",
            "https://[::1]/",
            "https://localhost/",
            "https://foo.localhost/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:a9fe:a9fe]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://0x7f.1/",       // 127.0.0.1 in hexadecimal
            "https://2130706433/",   // 127.0.0.1 as one number
            "https://017700000001/", // 127.0.0.1 in octal
            "https://0/",
            "https://192.168.1.1:8443/",
            "https://100.64.1.1/",
            "https://224.0.0.1/",
            "https://255.255.255.255/",
            "https://192.0.2.10/",
        ] {
            assert_eq!(
                check_url(u, false),
                Err(UrlProblem::ForbiddenAddress),
                "{u}"
            );
        }
        // Development: loopback over https too, nothing else.
        assert!(check_url("https://127.0.0.1/x", true).is_ok());
        assert!(check_url("https://localhost/x", true).is_ok());
        assert!(check_url("https://[::1]/", true).is_ok());
        for u in [
            "https://10.0.0.1",
            "https://169.254.169.254/",
            "https://[fd00::1]/",
        ] {
            assert_eq!(check_url(u, true), Err(UrlProblem::ForbiddenAddress), "{u}");
        }
    }

    #[tokio::test]
    async fn resolution_refuses_forbidden_and_unresolvable_hosts() {
        assert_eq!(
            resolve_public("127.0.0.1", 443, false).await,
            Err(UrlProblem::ForbiddenAddress)
        );
        assert_eq!(
            resolve_public("[::1]", 443, false).await,
            Err(UrlProblem::ForbiddenAddress)
        );
        assert_eq!(
            resolve_public("localhost", 443, false).await,
            Err(UrlProblem::ForbiddenAddress)
        );
        assert_eq!(
            resolve_public("8.8.8.8", 443, false).await,
            Ok(vec![SocketAddr::new(ip("8.8.8.8"), 443)])
        );
        assert_eq!(
            resolve_public("[::1]", 8080, true).await,
            Ok(vec![SocketAddr::new(ip("::1"), 8080)])
        );
        // `.invalid` never resolves (RFC 6761).
        assert_eq!(
            resolve_public("no-such-host.invalid", 443, false).await,
            Err(UrlProblem::Unresolvable)
        );
        assert_eq!(
            check_public_url("https://no-such-host.invalid/x", false).await,
            Err(UrlProblem::Unresolvable)
        );
        // Development resolves nothing at save time.
        assert!(check_public_url("https://no-such-host.invalid/x", true)
            .await
            .is_ok());
    }
}
