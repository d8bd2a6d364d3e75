//! The `Transport` header: its specs, ports and addresses (RFC 2326 §12.39,
//! RFC 7826 §18.54).

use std::net::IpAddr;

use super::error::invalid;
use super::RtspError;
use crate::signaling::message::{
    self, is_token, is_wsp, parse_decimal, parse_param, parse_quoted, split_outside, truncate,
    GrammarError,
};
use crate::signaling::Param;

fn transport_err(e: GrammarError) -> RtspError {
    invalid("Transport", e.0)
}

/// Lower transport of a transport spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LowerTransport {
    /// UDP (the default).
    #[default]
    Udp,
    /// TCP (media interleaved on the RTSP connection, or a separate TCP connection).
    Tcp,
}

/// Unicast or multicast delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// `unicast`
    Unicast,
    /// `multicast`
    Multicast,
}

/// A port or port range `a[-b]` from `client_port`, `server_port` or `port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port (RTP).
    pub first: u16,
    /// Last port, when a range was given.
    pub last: Option<u16>,
}

impl PortRange {
    /// The RTP port.
    pub fn rtp(&self) -> u16 {
        self.first
    }

    /// The RTCP port: the second port of a range, else RTP + 1.
    pub fn rtcp(&self) -> Option<u16> {
        match self.last {
            Some(l) if l != self.first => Some(l),
            _ => self.first.checked_add(1),
        }
    }
}

/// One address from RTSP 2.0 `dest_addr` / `src_addr`: `"host:port"` or `":port"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportAddr {
    /// Host (IPv6 without brackets), when given.
    pub host: Option<String>,
    /// Port, when given.
    pub port: Option<u16>,
}

impl TransportAddr {
    /// The host as an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.as_deref().and_then(|h| h.parse().ok())
    }
}

/// One transport spec of a `Transport` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportSpec {
    /// Transport protocol (`RTP`).
    pub protocol: String,
    /// Profile (`AVP`, `SAVP`, `AVPF`, …).
    pub profile: String,
    /// Lower transport (`UDP` when absent).
    pub lower: LowerTransport,
    /// `unicast` / `multicast`.
    pub delivery: Option<Delivery>,
    /// `destination=` (1.0).
    pub destination: Option<String>,
    /// `source=` (1.0).
    pub source: Option<String>,
    /// `client_port=`.
    pub client_port: Option<PortRange>,
    /// `server_port=`.
    pub server_port: Option<PortRange>,
    /// `port=` (multicast).
    pub port: Option<PortRange>,
    /// `interleaved=a[-b]` channels.
    pub interleaved: Option<(u8, Option<u8>)>,
    /// `ttl=`.
    pub ttl: Option<u8>,
    /// `ssrc=` (as written; 1.0 allows one, 2.0 a `/`-list).
    pub ssrc: Option<String>,
    /// `mode=` (unquoted).
    pub mode: Option<String>,
    /// `dest_addr=` addresses (2.0): RTP first, then RTCP.
    pub dest_addr: Vec<TransportAddr>,
    /// `src_addr=` addresses (2.0): RTP first, then RTCP.
    pub src_addr: Vec<TransportAddr>,
    /// Other parameters.
    pub params: Vec<Param>,
}

fn port_range(v: Option<&str>, name: &str) -> Result<PortRange, RtspError> {
    let v = v.ok_or_else(|| invalid("Transport", format!("{name} needs a value")))?;
    let bad = || {
        invalid(
            "Transport",
            format!("{name}={:?} is not a port or port range", truncate(v)),
        )
    };
    let port = |s: &str| {
        parse_decimal(s.trim(), 5)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(bad)
    };
    match v.split_once('-') {
        None => Ok(PortRange {
            first: port(v)?,
            last: None,
        }),
        Some((a, b)) => {
            let (first, last) = (port(a)?, port(b)?);
            if last < first {
                return Err(bad());
            }
            Ok(PortRange {
                first,
                last: Some(last),
            })
        }
    }
}

fn small_number(v: Option<&str>, name: &str) -> Result<u8, RtspError> {
    v.and_then(|v| parse_decimal(v.trim(), 3))
        .and_then(|n| u8::try_from(n).ok())
        .ok_or_else(|| invalid("Transport", format!("{name} must be 0-255")))
}

/// Parses `"host:port"/"host:port"` (quoted or not) from `dest_addr` / `src_addr`.
fn transport_addrs(raw: &str, name: &str) -> Result<Vec<TransportAddr>, RtspError> {
    let mut out = Vec::new();
    let mut rest = raw.trim_matches(is_wsp);
    loop {
        let (item, after) = if rest.starts_with('"') {
            parse_quoted(rest).map_err(transport_err)?
        } else {
            match rest.find('/') {
                Some(i) => (rest[..i].to_string(), &rest[i..]),
                None => (rest.to_string(), ""),
            }
        };
        if out.len() >= 8 {
            return Err(invalid("Transport", format!("too many {name} addresses")));
        }
        out.push(parse_transport_addr(&item, name)?);
        let after = after.trim_matches(is_wsp);
        if after.is_empty() {
            return Ok(out);
        }
        rest = after
            .strip_prefix('/')
            .ok_or_else(|| invalid("Transport", format!("malformed {name}")))?
            .trim_matches(is_wsp);
    }
}

fn parse_transport_addr(item: &str, name: &str) -> Result<TransportAddr, RtspError> {
    let bad = || {
        invalid(
            "Transport",
            format!("invalid {name} address {:?}", truncate(item)),
        )
    };
    let (host, port) = if let Some(v6) = item.strip_prefix('[') {
        let (h, r) = v6.split_once(']').ok_or_else(bad)?;
        (h, r.strip_prefix(':'))
    } else {
        match item.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => (item, None),
            None => (item, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(
            parse_decimal(p, 5)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(bad)?,
        ),
    };
    if host.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    if host.is_empty() && port.is_none() {
        return Err(bad());
    }
    Ok(TransportAddr {
        host: (!host.is_empty()).then(|| host.to_string()),
        port,
    })
}

/// Parses one transport spec: `RTP/AVP[/UDP|/TCP]` followed by `;`-parameters.
pub fn parse_transport_spec(spec: &str) -> Result<TransportSpec, RtspError> {
    let pieces = split_outside(spec, ';', message::MAX_PARAMS)
        .ok_or_else(|| invalid("Transport", "too many parameters"))?;
    let mut pieces = pieces.into_iter();
    let proto = pieces.next().unwrap_or_default().trim_matches(is_wsp);
    let parts: Vec<&str> = proto.split('/').collect();
    let (protocol, profile, lower) = match parts[..] {
        [p, prof] => (p, prof, LowerTransport::Udp),
        [p, prof, l] if l.eq_ignore_ascii_case("UDP") => (p, prof, LowerTransport::Udp),
        [p, prof, l] if l.eq_ignore_ascii_case("TCP") => (p, prof, LowerTransport::Tcp),
        _ => {
            return Err(invalid(
                "Transport",
                format!("invalid transport protocol {:?}", truncate(proto)),
            ))
        }
    };
    if !is_token(protocol) || !is_token(profile) {
        return Err(invalid(
            "Transport",
            format!("invalid transport protocol {:?}", truncate(proto)),
        ));
    }
    let mut t = TransportSpec {
        protocol: protocol.to_string(),
        profile: profile.to_string(),
        lower,
        delivery: None,
        destination: None,
        source: None,
        client_port: None,
        server_port: None,
        port: None,
        interleaved: None,
        ttl: None,
        ssrc: None,
        mode: None,
        dest_addr: Vec::new(),
        src_addr: Vec::new(),
        params: Vec::new(),
    };
    for piece in pieces {
        let piece = piece.trim_matches(is_wsp);
        if piece.is_empty() {
            // RFC 2326 examples fold after a trailing ';'; tolerate empty parameters.
            continue;
        }
        let (name, raw_value) = match piece.split_once('=') {
            Some((n, v)) => (n.trim_matches(is_wsp), Some(v.trim_matches(is_wsp))),
            None => (piece, None),
        };
        let lname = name.to_ascii_lowercase();
        // dest_addr/src_addr hold several quoted strings; parse them raw.
        match lname.as_str() {
            "dest_addr" => {
                t.dest_addr = transport_addrs(raw_value.unwrap_or_default(), "dest_addr")?;
                continue;
            }
            "src_addr" => {
                t.src_addr = transport_addrs(raw_value.unwrap_or_default(), "src_addr")?;
                continue;
            }
            _ => {}
        }
        let p = parse_param(piece).map_err(transport_err)?;
        let v = p.value.as_deref();
        match lname.as_str() {
            "unicast" => t.delivery = Some(Delivery::Unicast),
            "multicast" => t.delivery = Some(Delivery::Multicast),
            "destination" => t.destination = v.map(str::to_string),
            "source" => t.source = v.map(str::to_string),
            "client_port" => t.client_port = Some(port_range(v, "client_port")?),
            "server_port" => t.server_port = Some(port_range(v, "server_port")?),
            "port" => t.port = Some(port_range(v, "port")?),
            "ttl" => t.ttl = Some(small_number(v, "ttl")?),
            "interleaved" => {
                let v = v.ok_or_else(|| invalid("Transport", "interleaved needs a value"))?;
                t.interleaved = Some(match v.split_once('-') {
                    None => (small_number(Some(v), "interleaved")?, None),
                    Some((a, b)) => (
                        small_number(Some(a), "interleaved")?,
                        Some(small_number(Some(b), "interleaved")?),
                    ),
                });
            }
            "ssrc" => t.ssrc = v.map(str::to_string),
            "mode" => t.mode = v.map(str::to_string),
            _ => {
                if t.params.len() >= message::MAX_PARAMS {
                    return Err(invalid("Transport", "too many parameters"));
                }
                t.params.push(p)
            }
        }
    }
    Ok(t)
}
