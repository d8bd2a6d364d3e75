//! The description's parts as written: addresses, `c=`, `o=`, `a=`, `m=`.

use std::fmt;
use std::net::IpAddr;

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
    pub(super) fn from_token(s: &str) -> MediaKind {
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
    pub(super) fn from_attribute(name: &str) -> Option<Direction> {
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

pub(super) fn find_attribute<'a>(attrs: &'a [Attribute], name: &str) -> Option<Option<&'a str>> {
    attrs
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.value.as_deref())
}
