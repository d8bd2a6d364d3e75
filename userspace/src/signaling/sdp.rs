//! SDP parsing (RFC 4566 / 8866) for offer/answer (RFC 3264), with RTCP port
//! rules from RFC 3605 (`a=rtcp`) and RFC 5761 (`a=rtcp-mux`).
//!
//! [`parse`] validates the description (line syntax, `v=0` first, known line
//! types, `c=` and `m=` fields, ports, addresses, `a=rtcp`) and keeps the raw
//! session and media sections. [`SessionDescription::media`] derives what a
//! firewall needs per stream: the RTP and RTCP endpoints, direction and hold.
//!
//! ```
//! use pinhole::signaling::sdp;
//! let sd = sdp::parse("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n\
//!                      t=0 0\r\nm=audio 49170 RTP/AVP 0\r\n").unwrap();
//! let m = &sd.media()[0];
//! assert_eq!(m.rtp, Some("192.0.2.1:49170".parse().unwrap()));
//! assert_eq!(m.rtcp, Some("192.0.2.1:49171".parse().unwrap()));
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::message::{is_token, parse_decimal, truncate};

/// Largest SDP accepted, in bytes.
pub const MAX_SDP_SIZE: usize = 64 * 1024;

/// Largest number of lines accepted.
pub const MAX_SDP_LINES: usize = 1024;

/// Largest number of `m=` sections accepted.
pub const MAX_MEDIA: usize = 64;

/// Largest number of formats on one `m=` line.
pub const MAX_FORMATS: usize = 128;

/// Errors from [`parse`]. Line numbers are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Input larger than [`MAX_SDP_SIZE`].
    #[error("SDP of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Input size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// More lines than [`MAX_SDP_LINES`].
    #[error("SDP has more than {max} lines")]
    TooManyLines {
        /// The limit.
        max: usize,
    },
    /// More `m=` sections than [`MAX_MEDIA`].
    #[error("SDP has more than {max} m= sections")]
    TooManyMedia {
        /// The limit.
        max: usize,
    },
    /// The first line is not `v=`.
    #[error("SDP must start with v=0")]
    MissingVersion,
    /// `v=` is not 0.
    #[error("unsupported SDP version {0:?}")]
    UnsupportedVersion(String),
    /// A line is not `<letter>=<value>`.
    #[error("line {line}: expected `<type>=<value>`, got {text:?}")]
    MalformedLine {
        /// Line number.
        line: usize,
        /// The line (truncated).
        text: String,
    },
    /// A line type letter SDP does not define (RFC 4566 §5: reject the whole description).
    #[error("line {line}: unknown line type {kind:?}")]
    UnknownLineType {
        /// Line number.
        line: usize,
        /// The type letter.
        kind: char,
    },
    /// A field does not follow its grammar.
    #[error("line {line}: invalid {field}: {reason}")]
    InvalidField {
        /// Line number.
        line: usize,
        /// Line type or attribute (`"c="`, `"m="`, `"a=rtcp"`, …).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A port is not a decimal number in 0-65535 (or the port range overflows).
    #[error("line {line}: invalid port {value:?}")]
    InvalidPort {
        /// Line number.
        line: usize,
        /// The port text.
        value: String,
    },
    /// An address is neither a valid IP literal of the announced type nor a host name.
    #[error("line {line}: invalid {addr_type} address {value:?}")]
    InvalidAddress {
        /// Line number.
        line: usize,
        /// `IP4` or `IP6`.
        addr_type: AddrType,
        /// The address text.
        value: String,
    },
    /// An active (non-zero port) stream has no `c=` at media or session level.
    #[error("m= section {index} (line {line}) has a non-zero port but no c= line")]
    MissingConnection {
        /// Index of the section (0-based).
        index: usize,
        /// Line of its `m=`.
        line: usize,
    },
}

/// Address type of `c=`, `o=` or `a=rtcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrType {
    /// `IP4`
    Ip4,
    /// `IP6`
    Ip6,
}

impl fmt::Display for AddrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddrType::Ip4 => "IP4",
            AddrType::Ip6 => "IP6",
        })
    }
}

/// The address in a `c=` line or `a=rtcp`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConnectionAddress {
    /// An IP literal.
    Ip(IpAddr),
    /// A fully qualified domain name (allowed by RFC 4566, not resolved here).
    Fqdn(String),
}

impl ConnectionAddress {
    /// The IP literal, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            ConnectionAddress::Ip(ip) => Some(*ip),
            ConnectionAddress::Fqdn(_) => None,
        }
    }
}

/// `c=IN <addrtype> <address>[/<ttl>][/<count>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `IP4` or `IP6`.
    pub addr_type: AddrType,
    /// The base address.
    pub address: ConnectionAddress,
    /// Multicast TTL (IP4 only).
    pub ttl: Option<u8>,
    /// Number of multicast addresses.
    pub count: Option<u32>,
}

impl Connection {
    /// The IP literal, if the address is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.ip()
    }

    /// True for `0.0.0.0` / `::` (RFC 2543 style hold).
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

/// `o=<username> <sess-id> <sess-version> IN <addrtype> <address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name (`-` when none).
    pub username: String,
    /// Session id (numeric string).
    pub session_id: String,
    /// Session version (numeric string).
    pub session_version: String,
    /// Network type (`IN`).
    pub net_type: String,
    /// Address type as written.
    pub addr_type: String,
    /// Unicast address or host name as written.
    pub address: String,
}

/// `a=<name>[:<value>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name.
    pub name: String,
    /// Attribute value, if any.
    pub value: Option<String>,
}

/// The media type of an `m=` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `audio`
    Audio,
    /// `video`
    Video,
    /// `text`
    Text,
    /// `application`
    Application,
    /// `message`
    Message,
    /// `image` (e.g. T.38 fax)
    Image,
    /// Any other token.
    Other(String),
}

impl MediaKind {
    fn from_token(s: &str) -> MediaKind {
        match s {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "text" => MediaKind::Text,
            "application" => MediaKind::Application,
            "message" => MediaKind::Message,
            "image" => MediaKind::Image,
            other => MediaKind::Other(other.to_string()),
        }
    }

    /// The token as written in SDP.
    pub fn as_str(&self) -> &str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Text => "text",
            MediaKind::Application => "application",
            MediaKind::Message => "message",
            MediaKind::Image => "image",
            MediaKind::Other(s) => s,
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Media direction (RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    #[default]
    SendRecv,
    /// `a=sendonly`
    SendOnly,
    /// `a=recvonly`
    RecvOnly,
    /// `a=inactive`
    Inactive,
}

impl Direction {
    fn from_attribute(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// Transport family of an `m=` protocol, as far as a UDP firewall cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportFamily {
    /// `RTP/AVP`, `RTP/SAVP`, `RTP/AVPF`, `UDP/TLS/RTP/SAVPF`, `udptl`, `udp`, …
    Udp,
    /// Any protocol starting with `TCP` (`TCP/MSRP`, `TCP/TLS/RTP/SAVP`, `TCP/BFCP`, …).
    Tcp,
}

/// `a=rtcp:<port> [IN <addrtype> <address>]` (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcpAttribute {
    /// RTCP port.
    pub port: u16,
    /// RTCP address, when given.
    pub address: Option<ConnectionAddress>,
}

/// One `m=` section as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// Media type.
    pub kind: MediaKind,
    /// Transport port (0 = stream rejected/disabled).
    pub port: u16,
    /// Number of ports from `<port>/<count>` (1 when absent).
    pub port_count: u16,
    /// Transport protocol as written (`RTP/AVP`, `UDP/TLS/RTP/SAVPF`, …).
    pub proto: String,
    /// Media formats (payload types for RTP).
    pub formats: Vec<String>,
    /// Media-level `c=` lines.
    pub connections: Vec<Connection>,
    /// Media-level attributes in order.
    pub attributes: Vec<Attribute>,
    /// Validated `a=rtcp`, when present.
    pub rtcp: Option<RtcpAttribute>,
    /// Line number of the `m=` line.
    pub line: usize,
}

impl MediaSection {
    /// First attribute called `name`: `Some(None)` for a flag attribute.
    pub fn attribute(&self, name: &str) -> Option<Option<&str>> {
        find_attribute(&self.attributes, name)
    }

    /// True when the port is 0 (RFC 3264 §6: stream rejected).
    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// True for RTP-based protocols (`RTP/…`, `…/RTP/…`).
    pub fn is_rtp(&self) -> bool {
        self.proto.split('/').any(|p| p.eq_ignore_ascii_case("RTP"))
    }

    /// UDP or TCP transport.
    pub fn transport_family(&self) -> TransportFamily {
        if self
            .proto
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case("TCP"))
        {
            TransportFamily::Tcp
        } else {
            TransportFamily::Udp
        }
    }
}

fn find_attribute<'a>(attrs: &'a [Attribute], name: &str) -> Option<Option<&'a str>> {
    attrs
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.value.as_deref())
}

/// A parsed, validated session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`, when present.
    pub origin: Option<Origin>,
    /// `s=`, when present.
    pub session_name: Option<String>,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// Session-level attributes in order.
    pub attributes: Vec<Attribute>,
    /// The `m=` sections in order.
    pub media_sections: Vec<MediaSection>,
}

/// What a firewall needs to know about one media stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Index of the `m=` section (RFC 3264 matches offer and answer streams by index).
    pub index: usize,
    /// Media type.
    pub kind: MediaKind,
    /// Transport protocol as written.
    pub proto: String,
    /// UDP or TCP.
    pub transport: TransportFamily,
    /// Where this side receives RTP (or other media): `None` when the stream
    /// is rejected (port 0), the address is unspecified (hold) or a host name.
    pub rtp: Option<SocketAddr>,
    /// Where this side receives RTCP: same as `rtp` with `a=rtcp-mux`, the
    /// `a=rtcp` port/address when given, else RTP port + 1. `None` when `rtp`
    /// is `None` or the protocol is not RTP.
    pub rtcp: Option<SocketAddr>,
    /// Number of consecutive RTP/RTCP port pairs (`m=video 49170/2 …`).
    pub port_count: u16,
    /// Where this side receives RTCP if multiplexing is not agreed: `a=rtcp`
    /// port/address, else RTP port + 1. Under RFC 5761 §5.1.1 an offer with
    /// `a=rtcp-mux` must still be ready for this until the answer accepts mux.
    /// Equal to `rtcp` when `rtcp_mux` is false.
    pub rtcp_without_mux: Option<SocketAddr>,
    /// `a=rtcp-mux` present (RFC 5761).
    pub rtcp_mux: bool,
    /// Effective direction (media level, else session level, else sendrecv).
    pub direction: Direction,
    /// The stream is put on hold by this description: the connection address
    /// is unspecified (`0.0.0.0` / `::`, RFC 2543 style), or the direction is
    /// `sendonly` or `inactive` (RFC 3264 §8.4). Never set for rejected streams.
    pub held: bool,
    /// Port 0: the stream is rejected or disabled.
    pub rejected: bool,
    /// The connection address when it is a host name rather than an IP literal.
    pub unresolved_host: Option<String>,
}

impl SessionDescription {
    /// Session-level attribute `name`: `Some(None)` for a flag attribute.
    pub fn attribute(&self, name: &str) -> Option<Option<&str>> {
        find_attribute(&self.attributes, name)
    }

    /// Session-level direction (sendrecv when absent).
    pub fn direction(&self) -> Direction {
        direction_of(&self.attributes).unwrap_or_default()
    }

    /// The derived per-stream view, one entry per `m=` section in order.
    pub fn media(&self) -> Vec<MediaDescription> {
        self.media_sections
            .iter()
            .enumerate()
            .map(|(index, m)| self.describe(index, m))
            .collect()
    }

    fn describe(&self, index: usize, m: &MediaSection) -> MediaDescription {
        let conn = m.connections.first().or(self.connection.as_ref());
        let rejected = m.is_rejected();
        let direction = direction_of(&m.attributes).unwrap_or_else(|| self.direction());
        let unspecified = conn.is_some_and(Connection::is_unspecified);
        let ip = conn
            .and_then(Connection::ip)
            .filter(|ip| !ip.is_unspecified());
        let rtp = if rejected {
            None
        } else {
            ip.map(|ip| SocketAddr::new(ip, m.port))
        };
        let rtcp_mux = m.attribute("rtcp-mux").is_some();
        // RTCP where it goes without multiplexing: a=rtcp, else RTP port + 1.
        let rtcp_without_mux = match rtp {
            Some(rtp) if m.is_rtp() => match &m.rtcp {
                Some(attr) => match &attr.address {
                    None => Some(SocketAddr::new(rtp.ip(), attr.port)),
                    Some(ConnectionAddress::Ip(ip)) if !ip.is_unspecified() => {
                        Some(SocketAddr::new(*ip, attr.port))
                    }
                    Some(_) => None,
                },
                None => rtp
                    .port()
                    .checked_add(1)
                    .map(|p| SocketAddr::new(rtp.ip(), p)),
            },
            _ => None,
        };
        let rtcp = match rtp {
            Some(rtp) if m.is_rtp() && rtcp_mux => Some(rtp),
            _ => rtcp_without_mux,
        };
        let unresolved_host = match conn.map(|c| &c.address) {
            Some(ConnectionAddress::Fqdn(h)) if !rejected => Some(h.clone()),
            _ => None,
        };
        MediaDescription {
            index,
            kind: m.kind.clone(),
            proto: m.proto.clone(),
            transport: m.transport_family(),
            rtp,
            rtcp,
            rtcp_without_mux,
            port_count: m.port_count,
            rtcp_mux,
            direction,
            held: !rejected
                && (unspecified || matches!(direction, Direction::SendOnly | Direction::Inactive)),
            rejected,
            unresolved_host,
        }
    }
}

fn direction_of(attrs: &[Attribute]) -> Option<Direction> {
    attrs
        .iter()
        .rev()
        .find_map(|a| Direction::from_attribute(&a.name))
}

/// Parses and validates a session description.
///
/// Lines may end with CRLF or LF; blank lines and trailing whitespace are
/// tolerated. `o=`, `s=` and `t=` are not required (some devices omit them),
/// but when present `o=` must have its six fields.
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    if text.len() > MAX_SDP_SIZE {
        return Err(SdpError::TooLarge {
            size: text.len(),
            max: MAX_SDP_SIZE,
        });
    }
    let mut sd = SessionDescription {
        origin: None,
        session_name: None,
        connection: None,
        attributes: Vec::new(),
        media_sections: Vec::new(),
    };
    let mut seen_version = false;
    for (idx, raw) in text.split('\n').enumerate() {
        let line = idx + 1;
        if line > MAX_SDP_LINES {
            return Err(SdpError::TooManyLines { max: MAX_SDP_LINES });
        }
        let raw = raw.strip_suffix('\r').unwrap_or(raw).trim_end();
        if raw.is_empty() {
            continue;
        }
        let kind = match raw.as_bytes() {
            &[kind, b'=', ..] if kind.is_ascii_lowercase() => kind,
            _ => {
                return Err(SdpError::MalformedLine {
                    line,
                    text: truncate(raw),
                })
            }
        };
        // The first two bytes are ASCII, so byte 2 is a char boundary.
        let value = raw.get(2..).unwrap_or_default();
        if !seen_version {
            if kind != b'v' {
                return Err(SdpError::MissingVersion);
            }
            if value != "0" {
                return Err(SdpError::UnsupportedVersion(truncate(value)));
            }
            seen_version = true;
            continue;
        }
        match kind {
            b'v' => {
                return Err(SdpError::InvalidField {
                    line,
                    field: "v=",
                    reason: "repeated".into(),
                })
            }
            b'o' => sd.origin = Some(parse_origin(value, line)?),
            b's' => sd.session_name = Some(value.to_string()),
            b'c' => {
                let c = parse_connection(value, line)?;
                match sd.media_sections.last_mut() {
                    Some(m) => m.connections.push(c),
                    None => sd.connection = Some(c),
                }
            }
            b'm' => {
                if sd.media_sections.len() >= MAX_MEDIA {
                    return Err(SdpError::TooManyMedia { max: MAX_MEDIA });
                }
                sd.media_sections.push(parse_media(value, line)?);
            }
            b'a' => {
                let (attr, rtcp) = parse_attribute(value, line)?;
                match sd.media_sections.last_mut() {
                    Some(m) => {
                        if rtcp.is_some() {
                            m.rtcp = rtcp;
                        }
                        m.attributes.push(attr);
                    }
                    None => sd.attributes.push(attr),
                }
            }
            b'i' | b'u' | b'e' | b'p' | b'b' | b't' | b'r' | b'z' | b'k' => {}
            other => {
                return Err(SdpError::UnknownLineType {
                    line,
                    kind: char::from(other),
                })
            }
        }
    }
    if !seen_version {
        return Err(SdpError::MissingVersion);
    }
    for (index, m) in sd.media_sections.iter().enumerate() {
        if m.port != 0 && m.connections.is_empty() && sd.connection.is_none() {
            return Err(SdpError::MissingConnection {
                index,
                line: m.line,
            });
        }
    }
    Ok(sd)
}

fn fields(value: &str) -> Vec<&str> {
    value.split([' ', '\t']).filter(|s| !s.is_empty()).collect()
}

fn parse_origin(value: &str, line: usize) -> Result<Origin, SdpError> {
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

fn parse_connection(value: &str, line: usize) -> Result<Connection, SdpError> {
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

fn parse_media(value: &str, line: usize) -> Result<MediaSection, SdpError> {
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

fn parse_attribute(
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
