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
//!
//! The parser walks the lines here; `lines.rs` parses each line type's
//! value, `model.rs` holds the description as written, `session.rs` the
//! whole description and its per-stream view, `error.rs` the errors.

use super::message::truncate;

mod error;
mod lines;
mod model;
mod session;

pub use error::SdpError;
use lines::{parse_attribute, parse_connection, parse_media, parse_origin};
pub use model::{
    AddrType, Attribute, Connection, ConnectionAddress, Direction, MediaKind, MediaSection, Origin,
    RtcpAttribute, TransportFamily,
};
pub use session::{MediaDescription, SessionDescription};

/// Largest SDP accepted, in bytes.
pub const MAX_SDP_SIZE: usize = 64 * 1024;

/// Largest number of lines accepted.
pub const MAX_SDP_LINES: usize = 1024;

/// Largest number of `m=` sections accepted.
pub const MAX_MEDIA: usize = 64;

/// Largest number of formats on one `m=` line.
pub const MAX_FORMATS: usize = 128;

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
