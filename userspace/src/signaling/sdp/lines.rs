//! The value of each line type (`o=`, `c=`, `m=`, `a=`, `a=rtcp`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    AddrType, Attribute, Connection, ConnectionAddress, MediaKind, MediaSection, Origin,
    RtcpAttribute, SdpError, MAX_FORMATS,
};
use crate::signaling::message::{is_token, parse_decimal, truncate};

fn fields(value: &str) -> Vec<&str> {
    value.split([' ', '\t']).filter(|s| !s.is_empty()).collect()
}

pub(super) fn parse_origin(value: &str, line: usize) -> Result<Origin, SdpError> {
    let f = fields(value);
    let [username, session_id, session_version, net_type, addr_type, address] = f[..] else {
        return Err(SdpError::InvalidField {
            line,
            field: "o=",
            reason: format!("expected 6 fields, found {}", f.len()),
        });
    };
    Ok(Origin {
        username: username.to_string(),
        session_id: session_id.to_string(),
        session_version: session_version.to_string(),
        net_type: net_type.to_string(),
        addr_type: addr_type.to_string(),
        address: address.to_string(),
    })
}

fn parse_addr_type(s: &str, line: usize, field: &'static str) -> Result<AddrType, SdpError> {
    match s {
        "IP4" => Ok(AddrType::Ip4),
        "IP6" => Ok(AddrType::Ip6),
        other => Err(SdpError::InvalidField {
            line,
            field,
            reason: format!("unsupported address type {:?}", truncate(other)),
        }),
    }
}

/// An IP literal of the announced type, or a host name. Dotted-decimal text
/// that does not parse (e.g. `192.0.2.300`) is an error, not a host name.
fn parse_address(s: &str, addr_type: AddrType, line: usize) -> Result<ConnectionAddress, SdpError> {
    let bad = || SdpError::InvalidAddress {
        line,
        addr_type,
        value: truncate(s),
    };
    match addr_type {
        AddrType::Ip4 => {
            if let Ok(ip) = s.parse::<Ipv4Addr>() {
                return Ok(ConnectionAddress::Ip(IpAddr::V4(ip)));
            }
        }
        AddrType::Ip6 => {
            if let Ok(ip) = s.parse::<Ipv6Addr>() {
                return Ok(ConnectionAddress::Ip(IpAddr::V6(ip)));
            }
        }
    }
    if is_hostname(s) {
        Ok(ConnectionAddress::Fqdn(s.to_string()))
    } else {
        Err(bad())
    }
}

/// RFC 1123 host name whose last label is not all digits.
fn is_hostname(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let s = s.strip_suffix('.').unwrap_or(s);
    let labels_ok = s.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    labels_ok
        && s.rsplit('.')
            .next()
            .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()))
}

pub(super) fn parse_connection(value: &str, line: usize) -> Result<Connection, SdpError> {
    let f = fields(value);
    let [net_type, addr_type, address] = f[..] else {
        return Err(SdpError::InvalidField {
            line,
            field: "c=",
            reason: format!("expected 3 fields, found {}", f.len()),
        });
    };
    if net_type != "IN" {
        return Err(SdpError::InvalidField {
            line,
            field: "c=",
            reason: format!("unsupported network type {:?}", truncate(net_type)),
        });
    }
    let addr_type = parse_addr_type(addr_type, line, "c=")?;
    let mut parts = address.split('/');
    let base = parts.next().unwrap_or_default();
    let suffixes: Vec<&str> = parts.collect();
    let address = parse_address(base, addr_type, line)?;
    let bad_suffix = |s: &str| SdpError::InvalidField {
        line,
        field: "c=",
        reason: format!("invalid multicast suffix {:?}", truncate(s)),
    };
    let number = |s: &str| parse_decimal(s, 10).ok_or_else(|| bad_suffix(s));
    let (ttl, count) = match (addr_type, suffixes.as_slice()) {
        (_, []) => (None, None),
        (AddrType::Ip4, [ttl]) => (Some(number(ttl)?), None),
        (AddrType::Ip4, [ttl, count]) => (Some(number(ttl)?), Some(number(count)?)),
        (AddrType::Ip6, [count]) => (None, Some(number(count)?)),
        _ => return Err(bad_suffix(&suffixes.join("/"))),
    };
    let ttl = ttl
        .map(|t| u8::try_from(t).map_err(|_| bad_suffix(&t.to_string())))
        .transpose()?;
    let count = count
        .map(|c| {
            u32::try_from(c)
                .ok()
                .filter(|&c| c >= 1)
                .ok_or_else(|| bad_suffix(&c.to_string()))
        })
        .transpose()?;
    Ok(Connection {
        addr_type,
        address,
        ttl,
        count,
    })
}

fn parse_port(s: &str, line: usize) -> Result<u16, SdpError> {
    parse_decimal(s, 5)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| SdpError::InvalidPort {
            line,
            value: truncate(s),
        })
}

pub(super) fn parse_media(value: &str, line: usize) -> Result<MediaSection, SdpError> {
    let f = fields(value);
    let &[kind, port_field, proto, ref formats @ ..] = f.as_slice() else {
        return Err(SdpError::InvalidField {
            line,
            field: "m=",
            reason: "expected `<media> <port>[/<count>] <proto> <fmt> ...`".into(),
        });
    };
    if formats.len() > MAX_FORMATS {
        return Err(SdpError::InvalidField {
            line,
            field: "m=",
            reason: format!("more than {MAX_FORMATS} formats"),
        });
    }
    if !is_token(kind) {
        return Err(SdpError::InvalidField {
            line,
            field: "m=",
            reason: format!("invalid media type {:?}", truncate(kind)),
        });
    }
    let (port, count) = match port_field.split_once('/') {
        Some((p, c)) => (p, Some(c)),
        None => (port_field, None),
    };
    let port = parse_port(port, line)?;
    let port_count = match count {
        None => 1,
        Some(c) => {
            let n = parse_decimal(c, 5)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|&n| n >= 1)
                .ok_or_else(|| SdpError::InvalidPort {
                    line,
                    value: truncate(port_field),
                })?;
            // RTP uses even ports and each stream needs a pair.
            if u32::from(port) + 2 * (u32::from(n) - 1) + 1 > 65535 {
                return Err(SdpError::InvalidPort {
                    line,
                    value: truncate(port_field),
                });
            }
            n
        }
    };
    if proto.is_empty() || !proto.split('/').all(is_token) {
        return Err(SdpError::InvalidField {
            line,
            field: "m=",
            reason: format!("invalid protocol {:?}", truncate(proto)),
        });
    }
    Ok(MediaSection {
        kind: MediaKind::from_token(kind),
        port,
        port_count,
        proto: proto.to_string(),
        formats: formats.iter().map(|s| s.to_string()).collect(),
        connections: Vec::new(),
        attributes: Vec::new(),
        rtcp: None,
        line,
    })
}

pub(super) fn parse_attribute(
    value: &str,
    line: usize,
) -> Result<(Attribute, Option<RtcpAttribute>), SdpError> {
    let (name, val) = match value.split_once(':') {
        Some((n, v)) => (n, Some(v)),
        None => (value, None),
    };
    if !is_token(name) {
        return Err(SdpError::InvalidField {
            line,
            field: "a=",
            reason: format!("invalid attribute name {:?}", truncate(name)),
        });
    }
    let rtcp = if name == "rtcp" {
        Some(parse_rtcp(val.unwrap_or_default(), line)?)
    } else {
        None
    };
    Ok((
        Attribute {
            name: name.to_string(),
            value: val.map(str::to_string),
        },
        rtcp,
    ))
}

fn parse_rtcp(value: &str, line: usize) -> Result<RtcpAttribute, SdpError> {
    let f = fields(value);
    let bad = |reason: String| SdpError::InvalidField {
        line,
        field: "a=rtcp",
        reason,
    };
    let (port, addr) = match f[..] {
        [port] => (port, None),
        [port, net, addr_type, addr] => {
            if net != "IN" {
                return Err(bad(format!("unsupported network type {:?}", truncate(net))));
            }
            let t = parse_addr_type(addr_type, line, "a=rtcp")?;
            (port, Some(parse_address(addr, t, line)?))
        }
        _ => return Err(bad("expected `<port> [IN <addrtype> <address>]`".into())),
    };
    let port = parse_port(port, line)?;
    if port == 0 {
        return Err(SdpError::InvalidPort {
            line,
            value: "0".into(),
        });
    }
    Ok(RtcpAttribute {
        port,
        address: addr,
    })
}
