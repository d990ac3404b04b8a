//! The network identity of one API call: what "the same place" means for trust on first use.
//!
//! `sourceIPAddress` alone is not an identity. A call through a VPC endpoint carries the
//! caller's *private* address, which is the same in every VPC; the endpoint id is what names
//! the path. A service acting on the principal's behalf writes its own name there
//! (`lambda.amazonaws.com`) or `AWS Internal`. And the field is free text: real, pseudonymised
//! logs contain `035.249.253.232`, which no IP parser accepts; such values are kept verbatim as
//! opaque identities so that equal strings still compare equal.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where a call came from, reduced to what can be compared across calls.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetworkIdentity {
    /// A public IPv4 address.
    V4(Ipv4Addr),
    /// A public IPv6 network, compared by its /64 prefix: hosts rotate temporary addresses
    /// inside their /64 (RFC 8981), so the full address would raise false alarms.
    V6Net(Ipv6Addr),
    /// A VPC endpoint, optionally with the account that owns it.
    VpcEndpoint { id: String, owner: Option<String> },
    /// A value that is not an address (kept verbatim, lower-cased).
    Opaque(String),
}

/// What the `sourceIPAddress`/`vpcEndpointId` pair of a call says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A comparable identity.
    Identity(NetworkIdentity),
    /// AWS acting on the principal's behalf (`*.amazonaws.com`, `AWS Internal`): never an identity.
    AwsService,
    /// A private, loopback or link-local address without a VPC endpoint: proves nothing.
    Unattributable,
    /// No source at all.
    Missing,
}

impl NetworkIdentity {
    /// The stable text form used as a storage key and in alerts
    /// (`ip:203.0.113.7`, `ip6:2001:db8:1:2::/64`, `vpce:vpce-0abc@111122223333`, `raw:…`).
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// Parses the text form written by [`NetworkIdentity::key`].
    pub fn from_key(s: &str) -> Option<NetworkIdentity> {
        if let Some(v) = s.strip_prefix("ip:") {
            return v.parse().ok().map(NetworkIdentity::V4);
        }
        if let Some(v) = s.strip_prefix("ip6:") {
            return v.strip_suffix("/64")?.parse().ok().map(NetworkIdentity::V6Net);
        }
        if let Some(v) = s.strip_prefix("vpce:") {
            let (id, owner) = match v.split_once('@') {
                Some((id, owner)) => (id, Some(owner.to_string())),
                None => (v, None),
            };
            return Some(NetworkIdentity::VpcEndpoint { id: id.to_string(), owner });
        }
        s.strip_prefix("raw:").map(|v| NetworkIdentity::Opaque(v.to_string()))
    }

    /// The IP address behind the identity, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            NetworkIdentity::V4(a) => Some(IpAddr::V4(*a)),
            NetworkIdentity::V6Net(a) => Some(IpAddr::V6(*a)),
            _ => None,
        }
    }
}

impl fmt::Display for NetworkIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkIdentity::V4(a) => write!(f, "ip:{a}"),
            NetworkIdentity::V6Net(a) => write!(f, "ip6:{a}/64"),
            NetworkIdentity::VpcEndpoint { id, owner: Some(o) } => write!(f, "vpce:{id}@{o}"),
            NetworkIdentity::VpcEndpoint { id, owner: None } => write!(f, "vpce:{id}"),
            NetworkIdentity::Opaque(s) => write!(f, "raw:{s}"),
        }
    }
}

/// Classifies the origin of a call from its `sourceIPAddress`, `vpcEndpointId` and
/// `vpcEndpointAccountId` fields.
pub fn classify(source_ip: Option<&str>, vpc_endpoint_id: Option<&str>, vpc_endpoint_account: Option<&str>) -> Origin {
    let src = source_ip.map(str::trim).filter(|s| !s.is_empty());
    if let Some(s) = src {
        if is_aws_service(s) {
            return Origin::AwsService;
        }
    }
    if let Some(id) = vpc_endpoint_id.map(str::trim).filter(|s| !s.is_empty()) {
        let owner = vpc_endpoint_account.map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        return Origin::Identity(NetworkIdentity::VpcEndpoint { id: id.to_ascii_lowercase(), owner });
    }
    let Some(s) = src else {
        return Origin::Missing;
    };
    match parse_ip(s) {
        Some(ip) if !is_public(&ip) => Origin::Unattributable,
        Some(IpAddr::V4(a)) => Origin::Identity(NetworkIdentity::V4(a)),
        Some(IpAddr::V6(a)) => Origin::Identity(NetworkIdentity::V6Net(v6_prefix64(a))),
        None => Origin::Identity(NetworkIdentity::Opaque(s.to_ascii_lowercase())),
    }
}

/// `*.amazonaws.com` (a service principal acting for the caller) or `AWS Internal`.
pub fn is_aws_service(s: &str) -> bool {
    const SUFFIX: &str = ".amazonaws.com";
    let s = s.trim();
    s.eq_ignore_ascii_case("AWS Internal")
        || (s.len() > SUFFIX.len()
            && s.is_char_boundary(s.len() - SUFFIX.len())
            && s[s.len() - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX))
}

/// Parses an address, accepting `[v6]`, IPv4-mapped IPv6 (reduced to IPv4) and a `%zone`.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let s = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(s);
    let s = s.split('%').next().unwrap_or(s);
    match s.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => Some(match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }),
        v4 => Some(v4),
    }
}

fn v6_prefix64(a: Ipv6Addr) -> Ipv6Addr {
    let s = a.segments();
    Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)
}

/// Whether an address can name a place on the internet (RFC 1918/6598/4193 and friends are not).
pub fn is_public(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || (o[0] == 100 && (64..128).contains(&o[1]))) // carrier-grade NAT, RFC 6598
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local, RFC 4193
                || (s[0] & 0xffc0) == 0xfe80) // link-local
        }
    }
}

/// An IPv4 or IPv6 network in CIDR form, for allowlists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `203.0.113.0/24`, `2001:db8::/32` or a bare address (a /32 or /128).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = parse_ip(a).ok_or_else(|| format!("`{s}` is not an IP network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}` has a bad prefix length (0..={max})"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                (u32::from(n) & mask) == (u32::from(*a) & mask)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                (u128::from(n) & mask) == (u128::from(*a) & mask)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Origin {
        classify(Some(s), None, None)
    }

    #[test]
    fn public_addresses_are_identities() {
        assert_eq!(id("104.102.221.250"), Origin::Identity(NetworkIdentity::V4([104, 102, 221, 250].into())));
        assert_eq!(id(" ::ffff:104.102.221.250 "), id("104.102.221.250"));
        assert_eq!(id("2001:db8:1:2:aaaa::1"), id("2001:db8:1:2:bbbb::9"), "same /64");
        assert_ne!(id("2001:db8:1:2::1"), id("2001:db8:1:3::1"));
    }

    #[test]
    fn aws_on_behalf_and_private_are_not_identities() {
        assert_eq!(id("lambda.amazonaws.com"), Origin::AwsService);
        assert_eq!(id("AWS Internal"), Origin::AwsService);
        assert_eq!(id("10.1.2.3"), Origin::Unattributable);
        assert_eq!(id("100.64.0.1"), Origin::Unattributable);
        assert_eq!(id("fd00::1"), Origin::Unattributable);
        assert_eq!(classify(None, None, None), Origin::Missing);
        assert_eq!(classify(Some(""), None, None), Origin::Missing);
    }

    #[test]
    fn vpc_endpoint_names_the_path() {
        let o = classify(Some("10.1.2.3"), Some("vpce-0ABC"), Some("111122223333"));
        let Origin::Identity(i) = o else { panic!("expected identity") };
        assert_eq!(i.key(), "vpce:vpce-0abc@111122223333");
        assert_eq!(NetworkIdentity::from_key(&i.key()), Some(i));
    }

    #[test]
    fn odd_values_are_opaque_and_never_panic() {
        assert_eq!(id("035.249.253.232"), Origin::Identity(NetworkIdentity::Opaque("035.249.253.232".into())));
        for s in ["<Attacker source IP>", "redacted", "é.amazonaws.com", "ü", "[::1", "1.2.3.4%eth0"] {
            let _ = id(s);
        }
        for k in ["ip:1.2.3.4", "ip6:2001:db8::/64", "raw:x", "vpce:vpce-1"] {
            let i = NetworkIdentity::from_key(k).expect("round trip");
            assert_eq!(i.key(), k);
        }
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("203.0.113.0/24").expect("cidr");
        assert!(c.contains(&"203.0.113.77".parse().expect("ip")));
        assert!(!c.contains(&"203.0.114.1".parse().expect("ip")));
        assert!(Cidr::parse("0.0.0.0/0").expect("cidr").contains(&"8.8.8.8".parse().expect("ip")));
        assert!(Cidr::parse("2001:db8::/32").expect("cidr").contains(&"2001:db8:ff::1".parse().expect("ip")));
        assert!(Cidr::parse("1.2.3.4/33").is_err());
        assert!(Cidr::parse("nope").is_err());
    }
}
