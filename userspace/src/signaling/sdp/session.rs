//! A whole description and the per-stream view a firewall needs.

use std::net::SocketAddr;

use super::model::find_attribute;
use super::{
    Attribute, Connection, ConnectionAddress, Direction, MediaKind, MediaSection, Origin,
    TransportFamily,
};

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
