//! Semantic checks of resolved settings: ranges, overlaps, caps, names,
//! paths.

use pinhole_common::{PortRange, MAX_MEDIA_PREFIXES, MAX_PORT_RANGES};

use super::{check_maps, ConfigError, Location, RunSettings, MAX_IFNAME, MAX_LATCHING_SECS};
use crate::datapath::load::{MAX_FLOWS, MIN_FLOWS};

pub(super) type Locate<'a> = dyn Fn(&'static str) -> (Option<Location>, String) + 'a;

/// Semantic checks: ranges, overlaps, caps, names, paths.
pub(super) fn validate(s: &RunSettings, locate: &Locate<'_>, errors: &mut Vec<ConfigError>) {
    let mut err = |field: &'static str, msg: String| {
        let (loc, name) = locate(field);
        errors.push(ConfigError::at(loc, format!("{name}: {msg}")));
    };

    if s.interfaces.is_empty() {
        err("interfaces", "no interface to filter".into());
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
            err(
                "interfaces",
                format!("invalid interface name `{name}` (1-{MAX_IFNAME} characters, no `/`, `:` or spaces)"),
            );
        } else if s.interfaces[..i].contains(name) {
            err("interfaces", format!("interface `{name}` listed twice"));
        }
    }

    let show = |r: &PortRange| format!("{}-{}", r.lo, r.hi);
    if s.media_ports.is_empty() {
        err("media_ports", "no media port range".into());
    }
    if s.media_ports.len() > MAX_PORT_RANGES {
        err(
            "media_ports",
            format!(
                "{} ranges; the filter holds at most {MAX_PORT_RANGES}",
                s.media_ports.len()
            ),
        );
    }
    for (i, r) in s.media_ports.iter().enumerate() {
        if let Some(o) = s.media_ports[..i]
            .iter()
            .find(|o| r.lo <= o.hi && o.lo <= r.hi)
        {
            err(
                "media_ports",
                format!("ranges {} and {} overlap", show(o), show(r)),
            );
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
                format!("{given} IPv{family} networks; the filter holds at most {MAX_MEDIA_PREFIXES} per family"),
            );
        }
    }

    if !(MIN_FLOWS..=MAX_FLOWS).contains(&s.max_pinholes) {
        err(
            "max_pinholes",
            format!(
                "{} out of range ({MIN_FLOWS}-{MAX_FLOWS} flows)",
                s.max_pinholes
            ),
        );
    }

    for (field, ports) in [("sip_ports", &s.sip_ports), ("rtsp_ports", &s.rtsp_ports)] {
        for (i, p) in ports.iter().enumerate() {
            if *p == 0 {
                err(field, "invalid port 0; expected 1-65535".into());
            } else if ports[..i].contains(p) {
                err(field, format!("port {p} listed twice"));
            }
        }
    }
    for (i, p) in s.sip_ports.iter().enumerate() {
        if s.sip_ports[..i].contains(p) {
            continue;
        }
        if s.rtsp_ports.contains(p) {
            err(
                "rtsp_ports",
                format!("port {p} is both a SIP and an RTSP port"),
            );
        }
        // SIP over UDP to a protected port would be dropped by the filter.
        if let Some(r) = s.media_ports.iter().find(|r| (r.lo..=r.hi).contains(p)) {
            err(
                "sip_ports",
                format!(
                    "SIP port {p} lies in media port range {}; the filter would drop its UDP packets",
                    show(r)
                ),
            );
        }
    }

    if s.max_pinholes_per_call == 0 {
        err("max_pinholes_per_call", "must be at least 1".into());
    }
    if s.max_calls_per_peer == 0 {
        err("max_calls_per_peer", "must be at least 1".into());
    }
    if s.latching > MAX_LATCHING_SECS {
        err(
            "latching",
            format!(
                "{} s is not bounded latching; at most {MAX_LATCHING_SECS} s (0 = strict)",
                s.latching
            ),
        );
    }

    if let Err(e) = check_maps(&s.nat) {
        err("nat", e);
    }

    for field in ["ng_listen", "metrics_listen"] {
        let addr = if field == "ng_listen" {
            s.ng_listen
        } else {
            s.metrics_listen
        };
        if addr.is_some_and(|a| a.port() == 0) {
            err(field, "port 0; clients need a fixed port".into());
        }
    }
    if let Some(url) = &s.ha_redis {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            err(
                "ha_redis",
                format!(
                    "`{}` is not a redis:// or rediss:// URL",
                    crate::ha::redact(url)
                ),
            );
        }
        match &s.ha_node {
            None => err("ha_node", "required with HA (--ha-redis)".into()),
            Some(n) if !crate::ha::schema::valid_node(n) => {
                err("ha_node", format!("`{n}`: 1-64 characters of A-Za-z0-9._-"))
            }
            Some(_) => {}
        }
        if !(2..=3600).contains(&s.ha_ttl) {
            err("ha_ttl", format!("{} s; 2 to 3600", s.ha_ttl));
        }
        if s.ha_max_foreign == 0 {
            err(
                "ha_max_foreign",
                "0: no foreign pinhole could be installed".into(),
            );
        }
    }
    if s.ng_listen.is_some() && s.ng_allow.is_empty() {
        err(
            "ng_allow",
            "empty: no client could use the ng listener".into(),
        );
    }

    for (field, path) in [
        ("control", &s.control),
        ("pin_dir", &s.pin_dir),
        ("state_file", &s.state_file),
    ] {
        if !path.is_absolute() {
            err(
                field,
                format!("`{}` is not an absolute path", path.display()),
            );
        }
    }
}
