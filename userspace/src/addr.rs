//! Endpoints (`192.0.2.1:4000`, `[2001:db8::1]:4000`), endpoint pairs and
//! their translation to [`FlowKey`]s.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
};

use pinhole_common::{FlowKey, FAMILY_V4, FAMILY_V6, IPPROTO_UDP};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A malformed or unusable endpoint, or an impossible pair of endpoints.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AddrError {
    #[error("empty endpoint; expected ADDR:PORT or [IPv6]:PORT")]
    Empty,
    #[error("`{0}` has no port; expected ADDR:PORT or [IPv6]:PORT")]
    MissingPort(String),
    #[error("IPv6 address in `{0}` must be written in brackets: [ADDR]:PORT")]
    UnbracketedV6(String),
    #[error("invalid IP address `{0}`")]
    BadIp(String),
    #[error("invalid port `{0}`; expected a number 1-65535")]
    BadPort(String),
    #[error("port {0} out of range (1-65535)")]
    PortRange(String),
    #[error("{0} is not a unicast address")]
    NotUnicast(std::net::IpAddr),
    #[error("{0} is an IPv4-mapped IPv6 address; write it in IPv4 form")]
    V4Mapped(std::net::Ipv6Addr),
    #[error("IPv6 zone ids are not supported (`{0}`)")]
    ZoneId(String),
    #[error("A ({a}) and B ({b}) mix IPv4 and IPv6; a pinhole joins two endpoints of one family")]
    FamilyMix { a: SocketAddr, b: SocketAddr },
    #[error("A and B are the same endpoint ({0})")]
    SameEndpoint(SocketAddr),
    #[error("--with-rtcp needs both ports below 65535 (RTCP uses port+1), got {0}")]
    RtcpPort(SocketAddr),
}

/// A validated media endpoint: a unicast IP address without zone id and a
/// non-zero UDP port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint(SocketAddr);

impl Endpoint {
    /// Validates `addr` as an endpoint.
    pub fn new(addr: SocketAddr) -> Result<Self, AddrError> {
        if addr.port() == 0 {
            return Err(AddrError::PortRange("0".into()));
        }
        check_ip(addr.ip())?;
        if let SocketAddr::V6(v6) = addr {
            if v6.scope_id() != 0 {
                return Err(AddrError::ZoneId(addr.to_string()));
            }
        }
        Ok(Endpoint(addr))
    }

    pub fn addr(&self) -> SocketAddr {
        self.0
    }

    pub fn ip(&self) -> IpAddr {
        self.0.ip()
    }

    pub fn port(&self) -> u16 {
        self.0.port()
    }

    pub fn is_ipv4(&self) -> bool {
        self.0.is_ipv4()
    }

    /// The same address with port + 1 (the RTCP port), if it exists.
    pub fn next_port(&self) -> Option<Endpoint> {
        let port = self.port().checked_add(1)?;
        Some(Endpoint(SocketAddr::new(self.ip(), port)))
    }
}

fn check_ip(ip: IpAddr) -> Result<(), AddrError> {
    let usable = match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => {
            if v6.to_ipv4_mapped().is_some() {
                return Err(AddrError::V4Mapped(v6));
            }
            !(v6.is_unspecified() || v6.is_multicast())
        }
    };
    if usable {
        Ok(())
    } else {
        Err(AddrError::NotUnicast(ip))
    }
}

fn parse_port(s: &str) -> Result<u16, AddrError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddrError::BadPort(s.to_string()));
    }
    match s.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(AddrError::PortRange(s.to_string())),
    }
}

impl FromStr for Endpoint {
    type Err = AddrError;

    fn from_str(s: &str) -> Result<Self, AddrError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(AddrError::Empty);
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let Some((host, after)) = rest.split_once(']') else {
                return Err(AddrError::BadIp(s.to_string()));
            };
            let Some(port) = after.strip_prefix(':') else {
                return Err(if after.is_empty() {
                    AddrError::MissingPort(s.to_string())
                } else {
                    AddrError::BadPort(after.to_string())
                });
            };
            if host.contains('%') {
                return Err(AddrError::ZoneId(s.to_string()));
            }
            let ip: Ipv6Addr = host
                .parse()
                .map_err(|_| AddrError::BadIp(host.to_string()))?;
            (IpAddr::V6(ip), port)
        } else {
            let Some((host, port)) = s.rsplit_once(':') else {
                return Err(AddrError::MissingPort(s.to_string()));
            };
            if host.contains(':') {
                return Err(AddrError::UnbracketedV6(s.to_string()));
            }
            let ip: Ipv4Addr = host
                .parse()
                .map_err(|_| AddrError::BadIp(host.to_string()))?;
            (IpAddr::V4(ip), port)
        };
        let port = parse_port(port)?;
        Endpoint::new(SocketAddr::new(host, port))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The two endpoints of a pinhole, same family, distinct, and (with RTCP)
/// both with a port below 65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pair {
    a: Endpoint,
    b: Endpoint,
    rtcp: bool,
}

/// The identity of a pinhole: its endpoint pair without orientation, so that
/// `open A B` and `open B A` name the same pinhole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairKey(Endpoint, Endpoint);

impl Pair {
    pub fn new(a: Endpoint, b: Endpoint, rtcp: bool) -> Result<Self, AddrError> {
        if a.is_ipv4() != b.is_ipv4() {
            return Err(AddrError::FamilyMix {
                a: a.addr(),
                b: b.addr(),
            });
        }
        if a == b {
            return Err(AddrError::SameEndpoint(a.addr()));
        }
        if rtcp {
            for e in [a, b] {
                if e.next_port().is_none() {
                    return Err(AddrError::RtcpPort(e.addr()));
                }
            }
        }
        Ok(Pair { a, b, rtcp })
    }

    pub fn a(&self) -> Endpoint {
        self.a
    }

    pub fn b(&self) -> Endpoint {
        self.b
    }

    pub fn rtcp(&self) -> bool {
        self.rtcp
    }

    /// The same pair with A and B swapped (same flows, same identity).
    pub fn reversed(&self) -> Pair {
        Pair {
            a: self.b,
            b: self.a,
            rtcp: self.rtcp,
        }
    }

    pub fn key(&self) -> PairKey {
        pair_key(self.a, self.b)
    }

    /// The flows of this pinhole: A→B, B→A, and with RTCP (A+1)→(B+1),
    /// (B+1)→(A+1). Never contains duplicates.
    pub fn flows(&self) -> Vec<FlowKey> {
        let mut flows = vec![flow_key(self.a, self.b), flow_key(self.b, self.a)];
        if self.rtcp {
            if let (Some(a1), Some(b1)) = (self.a.next_port(), self.b.next_port()) {
                for k in [flow_key(a1, b1), flow_key(b1, a1)] {
                    if !flows.contains(&k) {
                        flows.push(k);
                    }
                }
            }
        }
        flows
    }
}

/// The orientation-free identity of the pair (`a`, `b`).
pub fn pair_key(a: Endpoint, b: Endpoint) -> PairKey {
    if a <= b {
        PairKey(a, b)
    } else {
        PairKey(b, a)
    }
}

/// The map key of the UDP flow `src` → `dst`. Both must be of one family.
pub fn flow_key(src: Endpoint, dst: Endpoint) -> FlowKey {
    let (family, src_addr, dst_addr) = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (FAMILY_V4, v4_bytes(s), v4_bytes(d)),
        (s, d) => (FAMILY_V6, v6_bytes(s), v6_bytes(d)),
    };
    FlowKey {
        family,
        proto: IPPROTO_UDP,
        _pad: [0; 2],
        src_port: src.port(),
        dst_port: dst.port(),
        src_addr,
        dst_addr,
    }
}

fn v4_bytes(ip: Ipv4Addr) -> [u8; 16] {
    let mut out = [0; 16];
    out[..4].copy_from_slice(&ip.octets());
    out
}

fn v6_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V6(v6) => v6.octets(),
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
    }
}

/// The source and destination of a flow key, or `None` for an unknown family.
pub fn flow_endpoints(key: &FlowKey) -> Option<(SocketAddr, SocketAddr)> {
    let ip = |bytes: &[u8; 16]| -> Option<IpAddr> {
        match key.family {
            FAMILY_V4 => Some(IpAddr::V4(Ipv4Addr::new(
                bytes[0], bytes[1], bytes[2], bytes[3],
            ))),
            FAMILY_V6 => Some(IpAddr::V6(Ipv6Addr::from(*bytes))),
            _ => None,
        }
    };
    Some((
        SocketAddr::new(ip(&key.src_addr)?, key.src_port),
        SocketAddr::new(ip(&key.dst_addr)?, key.dst_port),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    #[test]
    fn endpoint_parsing_table() {
        let ok = [
            ("192.0.2.1:4000", "192.0.2.1:4000"),
            ("  198.51.100.2:1 ", "198.51.100.2:1"),
            ("203.0.113.9:65535", "203.0.113.9:65535"),
            ("[2001:db8::1]:5", "[2001:db8::1]:5"),
            ("[2001:DB8:0:0::1]:10000", "[2001:db8::1]:10000"),
            ("127.0.0.1:5004", "127.0.0.1:5004"),
            ("192.0.2.1:0004000", "192.0.2.1:4000"),
            ("192.0.2.1:5\n", "192.0.2.1:5"),
        ];
        for (input, want) in ok {
            assert_eq!(ep(input).to_string(), want, "{input:?}");
        }

        use AddrError::*;
        let bad: &[(&str, AddrError)] = &[
            ("", Empty),
            ("   ", Empty),
            ("192.0.2.1", MissingPort("192.0.2.1".into())),
            ("192.0.2.1:", BadPort("".into())),
            ("192.0.2.1:0", PortRange("0".into())),
            ("192.0.2.1:70000", PortRange("70000".into())),
            ("192.0.2.1:65536", PortRange("65536".into())),
            (
                "192.0.2.1:99999999999999999999999",
                PortRange("99999999999999999999999".into()),
            ),
            ("192.0.2.1:-1", BadPort("-1".into())),
            ("192.0.2.1:+5", BadPort("+5".into())),
            ("192.0.2.1:5x", BadPort("5x".into())),
            ("192.0.2.1: 5", BadPort(" 5".into())),
            ("192.0.2.256:5", BadIp("192.0.2.256".into())),
            ("192.0.2:5", BadIp("192.0.2".into())),
            ("example.com:5", BadIp("example.com".into())),
            (":5", BadIp("".into())),
            ("2001:db8::1:5", UnbracketedV6("2001:db8::1:5".into())),
            ("[2001:db8::1]", MissingPort("[2001:db8::1]".into())),
            ("[2001:db8::1]5", BadPort("5".into())),
            ("[2001:db8::1:5", BadIp("[2001:db8::1:5".into())),
            ("[192.0.2.1]:5", BadIp("192.0.2.1".into())),
            ("[fe80::1%eth0]:5", ZoneId("[fe80::1%eth0]:5".into())),
            ("[]:5", BadIp("".into())),
            ("0.0.0.0:5", NotUnicast("0.0.0.0".parse().unwrap())),
            (
                "255.255.255.255:5",
                NotUnicast("255.255.255.255".parse().unwrap()),
            ),
            ("224.0.0.1:5", NotUnicast("224.0.0.1".parse().unwrap())),
            ("[::]:5", NotUnicast("::".parse().unwrap())),
            ("[ff02::1]:5", NotUnicast("ff02::1".parse().unwrap())),
            (
                "[::ffff:192.0.2.1]:5",
                V4Mapped("::ffff:192.0.2.1".parse().unwrap()),
            ),
        ];
        for (input, want) in bad {
            let got = input.parse::<Endpoint>();
            assert_eq!(got.as_ref().err(), Some(want), "{input:?} -> {got:?}");
        }
    }

    #[test]
    fn hostile_endpoint_strings_never_panic() {
        let long = "9".repeat(100_000);
        let inputs = [
            long.as_str(),
            "[[[[",
            "]]]]:1",
            "::::::",
            "[::]:",
            "\u{0}:1",
            "１９２.0.2.1:5",
            "192.0.2.1:５",
            "[2001:db8::1]:5:6",
            "192.0.2.1:5:6",
        ];
        for input in inputs {
            assert!(input.parse::<Endpoint>().is_err(), "{input:?}");
        }
    }

    #[test]
    fn pair_validation_table() {
        let v4a = ep("192.0.2.1:4000");
        let v4b = ep("198.51.100.2:10000");
        let v6 = ep("[2001:db8::1]:5");
        let top = ep("192.0.2.1:65535");
        let cases: &[(Endpoint, Endpoint, bool, Option<AddrError>)] = &[
            (v4a, v4b, false, None),
            (v4a, v4b, true, None),
            (
                v4a,
                v6,
                false,
                Some(AddrError::FamilyMix {
                    a: v4a.addr(),
                    b: v6.addr(),
                }),
            ),
            (
                v6,
                v4a,
                true,
                Some(AddrError::FamilyMix {
                    a: v6.addr(),
                    b: v4a.addr(),
                }),
            ),
            (v4a, v4a, false, Some(AddrError::SameEndpoint(v4a.addr()))),
            (top, v4b, false, None),
            (top, v4b, true, Some(AddrError::RtcpPort(top.addr()))),
            (v4b, top, true, Some(AddrError::RtcpPort(top.addr()))),
        ];
        for (a, b, rtcp, want) in cases {
            let got = Pair::new(*a, *b, *rtcp);
            assert_eq!(got.as_ref().err(), want.as_ref(), "{a} {b} rtcp={rtcp}");
        }
    }

    #[test]
    fn flows_cover_both_directions_and_rtcp() {
        let a = ep("192.0.2.1:4000");
        let b = ep("198.51.100.2:10000");
        let plain = Pair::new(a, b, false).unwrap().flows();
        assert_eq!(plain.len(), 2);
        assert_eq!(plain[1], plain[0].reversed());
        let (src, dst) = flow_endpoints(&plain[0]).unwrap();
        assert_eq!((src, dst), (a.addr(), b.addr()));

        let with = Pair::new(a, b, true).unwrap().flows();
        assert_eq!(with.len(), 4);
        let (src, dst) = flow_endpoints(&with[2]).unwrap();
        assert_eq!(src.to_string(), "192.0.2.1:4001");
        assert_eq!(dst.to_string(), "198.51.100.2:10001");
        assert_eq!(with[3], with[2].reversed());

        // Adjacent ports on one host: the RTP and RTCP flows stay distinct.
        let c = ep("192.0.2.1:4001");
        let f = Pair::new(a, c, true).unwrap().flows();
        assert_eq!(f.len(), 4);
    }

    #[test]
    fn flow_keys_match_the_abi() {
        let k = flow_key(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"));
        assert_eq!(k.family, FAMILY_V4);
        assert_eq!(k.proto, IPPROTO_UDP);
        assert_eq!(&k.src_addr[..4], &[192, 0, 2, 1]);
        assert_eq!(&k.src_addr[4..], &[0; 12]);
        assert_eq!((k.src_port, k.dst_port), (4000, 10000));

        let k6 = flow_key(ep("[2001:db8::1]:5"), ep("[2001:db8::2]:6"));
        assert_eq!(k6.family, FAMILY_V6);
        assert_eq!(
            k6.src_addr,
            "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets()
        );
        let (s, d) = flow_endpoints(&k6).unwrap();
        assert_eq!(
            (s.to_string().as_str(), d.to_string().as_str()),
            ("[2001:db8::1]:5", "[2001:db8::2]:6")
        );

        let bogus = FlowKey { family: 9, ..k };
        assert_eq!(flow_endpoints(&bogus), None);
    }

    #[test]
    fn pair_key_ignores_orientation() {
        let a = ep("192.0.2.1:4000");
        let b = ep("198.51.100.2:10000");
        assert_eq!(pair_key(a, b), pair_key(b, a));
        assert_ne!(pair_key(a, b), pair_key(a, ep("198.51.100.2:10002")));
    }

    #[test]
    fn endpoints_round_trip_through_json() {
        let a = ep("[2001:db8::1]:5");
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"[2001:db8::1]:5\"");
        assert_eq!(serde_json::from_str::<Endpoint>(&json).unwrap(), a);
        assert!(serde_json::from_str::<Endpoint>("\"192.0.2.1:0\"").is_err());
        assert!(serde_json::from_str::<Endpoint>("42").is_err());
    }
}
