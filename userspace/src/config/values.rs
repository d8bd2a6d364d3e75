//! The value types of settings and how the file spells them: enums,
//! port ranges, CIDR lists.

use std::{fmt, net::IpAddr};

use ipnet::IpNet;
use pinhole_common::{FragmentPolicy, PortRange};
use serde::de::{self, Deserialize, Deserializer};

use crate::datapath::load::parse_port_range;

/// Non-first UDP fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Fragments {
    Pass,
    Drop,
}

impl From<Fragments> for FragmentPolicy {
    fn from(f: Fragments) -> Self {
        match f {
            Fragments::Pass => FragmentPolicy::Pass,
            Fragments::Drop => FragmentPolicy::Drop,
        }
    }
}

/// How pinholes are learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SignalingMode {
    /// Queue SIP/RTSP through the daemon (iptables NFQUEUE) and follow calls.
    Inline,
    /// Only the control socket, the CLI and the ng protocol open pinholes.
    Off,
}

/// An on/off setting (`--pre-answer on|off`, `pre_answer = "on"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    On,
    Off,
}

impl From<OnOff> for bool {
    fn from(v: OnOff) -> bool {
        v == OnOff::On
    }
}

/// Log output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A media port range in the file: `"LO-HI"`, `"PORT"` or `PORT`.
pub(super) struct PortSpec(pub(super) PortRange);

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = PortSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port range \"LO-HI\" or a port")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PortSpec, E> {
                parse_port_range(s).map(PortSpec).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PortSpec, E> {
                match u16::try_from(n) {
                    Ok(p) if p > 0 => Ok(PortSpec(PortRange { lo: p, hi: p })),
                    _ => Err(E::custom(format!("invalid port {n}; expected 1-65535"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

pub(super) struct Ports(pub(super) Vec<PortRange>);

impl<'de> Deserialize<'de> for Ports {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<PortSpec>::deserialize(d)?;
        Ok(Ports(v.into_iter().map(|p| p.0).collect()))
    }
}

impl From<Ports> for Vec<PortRange> {
    fn from(p: Ports) -> Self {
        p.0
    }
}

/// Parses `ADDR/PREFIX` (host bits cleared) or a bare address (that host).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    let bad = || {
        format!("invalid network `{s}`; expected ADDR/PREFIX such as 192.0.2.0/24 or 2001:db8::/32")
    };
    if t.contains('/') {
        t.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| bad())
    } else {
        t.parse::<IpAddr>().map(IpNet::from).map_err(|_| bad())
    }
}

pub(super) struct Nets(pub(super) Vec<IpNet>);

impl<'de> Deserialize<'de> for Nets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.iter()
            .map(|s| parse_cidr(s))
            .collect::<Result<_, _>>()
            .map(Nets)
            .map_err(de::Error::custom)
    }
}

impl From<Nets> for Vec<IpNet> {
    fn from(n: Nets) -> Self {
        n.0
    }
}
