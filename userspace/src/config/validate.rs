//! Semantic checks of resolved settings: ranges, overlaps, caps, names,
//! paths.

use std::path::PathBuf;

use pinhole_common::{PortRange, MAX_MEDIA_PREFIXES, MAX_PORT_RANGES};

use super::{
    diagnostics::{ConfigError, Location, Problem, SettingName},
    RunSettings, MAX_IFNAME, MAX_LATCHING_SECS,
};
use crate::{
    capture::nat::{check_maps, NatMapsError},
    datapath::load::{MAX_FLOWS, MIN_FLOWS},
};

/// Shortest and longest HA key TTL, seconds.
const HA_TTL_SECS: std::ops::RangeInclusive<u64> = 2..=3600;

/// Why one resolved setting is refused. Shown after the setting's name
/// ([`Problem::Setting`]); the conflicts between two settings are reported
/// at the one the user should change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadSetting {
    #[error("no interface to filter")]
    NoInterface,
    #[error("invalid interface name `{0}` (1-{MAX_IFNAME} characters, no `/`, `:` or spaces)")]
    InterfaceName(String),
    #[error("interface `{0}` listed twice")]
    InterfaceTwice(String),
    #[error("no media port range")]
    NoMediaPorts,
    #[error("{0} ranges; the filter holds at most {MAX_PORT_RANGES}")]
    TooManyRanges(usize),
    #[error("ranges {} and {} overlap", show(.0), show(.1))]
    RangesOverlap(PortRange, PortRange),
    #[error(
        "{count} IPv{family} networks; the filter holds at most {MAX_MEDIA_PREFIXES} per family"
    )]
    TooManyPrefixes { family: u8, count: usize },
    #[error("{0} out of range ({MIN_FLOWS}-{MAX_FLOWS} flows)")]
    Capacity(u32),
    #[error("invalid port 0; expected 1-65535")]
    PortZero,
    #[error("port {0} listed twice")]
    PortTwice(u16),
    /// Conflict: a port in both `sip_ports` and `rtsp_ports`.
    #[error("port {0} is both a SIP and an RTSP port")]
    SipAndRtspPort(u16),
    /// Conflict: a SIP port inside a media range, whose UDP XDP would drop.
    #[error("SIP port {port} lies in media port range {}; the filter would drop its UDP packets", show(.range))]
    SipPortInMedia { port: u16, range: PortRange },
    #[error("must be at least 1")]
    Zero,
    #[error("{0} s is not bounded latching; at most {MAX_LATCHING_SECS} s (0 = strict)")]
    LatchingTooLong(u64),
    #[error(transparent)]
    Nat(#[from] NatMapsError),
    #[error("port 0; clients need a fixed port")]
    ListenPortZero,
    /// The URL, its password redacted.
    #[error("`{0}` is not a redis:// or rediss:// URL")]
    NotRedisUrl(String),
    #[error("required with HA (--ha-redis)")]
    HaNodeMissing,
    #[error("`{0}`: 1-64 characters of A-Za-z0-9._-")]
    HaNodeName(String),
    #[error("{secs} s; {} to {}", HA_TTL_SECS.start(), HA_TTL_SECS.end())]
    HaTtl { secs: u64 },
    #[error("0: no foreign pinhole could be installed")]
    NoForeign,
    #[error("empty: no client could use the ng listener")]
    NgAllowEmpty,
    #[error("`{}` is not an absolute path", .0.display())]
    NotAbsolute(PathBuf),
}

fn show(r: &PortRange) -> String {
    format!("{}-{}", r.lo, r.hi)
}

/// Where a field's value came from, to report a problem with it.
pub(super) type Locate<'a> = dyn Fn(&'static str) -> (Option<Location>, SettingName) + 'a;

/// Semantic checks: ranges, overlaps, caps, names, paths.
pub(super) fn validate(s: &RunSettings, locate: &Locate<'_>, errors: &mut Vec<ConfigError>) {
    let mut err = |field: &'static str, reason: BadSetting| {
        let (at, setting) = locate(field);
        errors.push(ConfigError::at(at, Problem::Setting { setting, reason }));
    };

    if s.interfaces.is_empty() {
        err("interfaces", BadSetting::NoInterface);
    }
    for (i, name) in s.interfaces.iter().enumerate() {
        let bad = name.is_empty()
            || name.len() > MAX_IFNAME
            || name == "."
            || name == ".."
            || name
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace());
        if bad {
            err("interfaces", BadSetting::InterfaceName(name.clone()));
        } else if s.interfaces[..i].contains(name) {
            err("interfaces", BadSetting::InterfaceTwice(name.clone()));
        }
    }

    if s.media_ports.is_empty() {
        err("media_ports", BadSetting::NoMediaPorts);
    }
    if s.media_ports.len() > MAX_PORT_RANGES {
        err(
            "media_ports",
            BadSetting::TooManyRanges(s.media_ports.len()),
        );
    }
    for (i, r) in s.media_ports.iter().enumerate() {
        if let Some(o) = s.media_ports[..i]
            .iter()
            .find(|o| r.lo <= o.hi && o.lo <= r.hi)
        {
            err("media_ports", BadSetting::RangesOverlap(*o, *r));
        }
    }

    for (family, v4) in [(4, true), (6, false)] {
        let given = s
            .media_prefixes
            .iter()
            .filter(|n| n.addr().is_ipv4() == v4)
            .count();
        if given > MAX_MEDIA_PREFIXES {
            err(
                "media_prefixes",
                BadSetting::TooManyPrefixes {
                    family,
                    count: given,
                },
            );
        }
    }

    if !(MIN_FLOWS..=MAX_FLOWS).contains(&s.max_pinholes) {
        err("max_pinholes", BadSetting::Capacity(s.max_pinholes));
    }

    for (field, ports) in [("sip_ports", &s.sip_ports), ("rtsp_ports", &s.rtsp_ports)] {
        for (i, p) in ports.iter().enumerate() {
            if *p == 0 {
                err(field, BadSetting::PortZero);
            } else if ports[..i].contains(p) {
                err(field, BadSetting::PortTwice(*p));
            }
        }
    }
    for (i, p) in s.sip_ports.iter().enumerate() {
        if s.sip_ports[..i].contains(p) {
            continue;
        }
        if s.rtsp_ports.contains(p) {
            err("rtsp_ports", BadSetting::SipAndRtspPort(*p));
        }
        // SIP over UDP to a protected port would be dropped by the filter.
        if let Some(r) = s.media_ports.iter().find(|r| (r.lo..=r.hi).contains(p)) {
            err(
                "sip_ports",
                BadSetting::SipPortInMedia {
                    port: *p,
                    range: *r,
                },
            );
        }
    }

    if s.max_pinholes_per_call == 0 {
        err("max_pinholes_per_call", BadSetting::Zero);
    }
    if s.max_calls_per_peer == 0 {
        err("max_calls_per_peer", BadSetting::Zero);
    }
    if s.latching > MAX_LATCHING_SECS {
        err("latching", BadSetting::LatchingTooLong(s.latching));
    }

    if let Err(e) = check_maps(&s.nat) {
        err("nat", e.into());
    }

    for field in ["ng_listen", "metrics_listen"] {
        let addr = if field == "ng_listen" {
            s.ng_listen
        } else {
            s.metrics_listen
        };
        if addr.is_some_and(|a| a.port() == 0) {
            err(field, BadSetting::ListenPortZero);
        }
    }
    if let Some(url) = &s.ha_redis {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            err("ha_redis", BadSetting::NotRedisUrl(crate::ha::redact(url)));
        }
        match &s.ha_node {
            None => err("ha_node", BadSetting::HaNodeMissing),
            Some(n) if !crate::ha::schema::valid_node(n) => {
                err("ha_node", BadSetting::HaNodeName(n.clone()))
            }
            Some(_) => {}
        }
        if !HA_TTL_SECS.contains(&s.ha_ttl) {
            err("ha_ttl", BadSetting::HaTtl { secs: s.ha_ttl });
        }
        if s.ha_max_foreign == 0 {
            err("ha_max_foreign", BadSetting::NoForeign);
        }
    }
    if s.ng_listen.is_some() && s.ng_allow.is_empty() {
        err("ng_allow", BadSetting::NgAllowEmpty);
    }

    for (field, path) in [
        ("control", &s.control),
        ("pin_dir", &s.pin_dir),
        ("state_file", &s.state_file),
    ] {
        if !path.is_absolute() {
            err(field, BadSetting::NotAbsolute(path.clone()));
        }
    }
}
