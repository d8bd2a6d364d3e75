//! RTSP 1.0 (RFC 2326) and 2.0 (RFC 7826) message parsing and TCP framing.
//!
//! [`parse`] reads one framed message and validates the start line, `CSeq`,
//! `Session` (`id;timeout=N`) and every `Transport` spec. [`setup_info`] pairs
//! a SETUP request with its response and derives the client/server RTP and
//! RTCP ports and addresses a firewall must open, or reports that the media is
//! interleaved on the RTSP connection (no pinhole needed). [`RtspFramer`]
//! splits a reassembled TCP stream into messages and skips `$`-framed
//! interleaved binary data.
//!
//! ```
//! use pinhole::signaling::rtsp;
//! let req = rtsp::parse(b"SETUP rtsp://example.com/foo RTSP/1.0\r\nCSeq: 302\r\n\
//!     Transport: RTP/AVP;unicast;client_port=4588-4589\r\n\r\n").unwrap();
//! let resp = rtsp::parse(b"RTSP/1.0 200 OK\r\nCSeq: 302\r\nSession: 47112344\r\n\
//!     Transport: RTP/AVP;unicast;client_port=4588-4589;server_port=6256-6257\r\n\r\n").unwrap();
//! let info = rtsp::setup_info(&req, &resp).unwrap();
//! assert_eq!((info.client_rtp, info.server_rtcp), (Some(4588), Some(6257)));
//! ```
//!
//! Here: the message, its start line and `Session`; `transport.rs` holds the
//! `Transport` header grammar, `setup.rs` the SETUP pairing, `framer.rs` the
//! TCP framing, `error.rs` the errors.

use super::message::{
    self, find_param, is_scheme, is_token, is_wsp, method_enum, parse_decimal, split_outside,
    split_request_line, split_status_line, starts_with_ignore_case, truncate,
};
use super::Header;

mod error;
mod framer;
mod setup;
mod transport;

use error::invalid;
pub use error::RtspError;
use framer::is_content_length;
pub use framer::RtspFramer;
pub use setup::{setup_info, SetupInfo};
pub use transport::{
    parse_transport_spec, Delivery, LowerTransport, PortRange, TransportAddr, TransportSpec,
};

/// Largest number of comma-separated specs accepted in one `Transport` header.
pub const MAX_TRANSPORT_SPECS: usize = 16;

/// Protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// RTSP/1.0 (RFC 2326)
    V1_0,
    /// RTSP/2.0 (RFC 7826)
    V2_0,
}

impl Version {
    fn parse(s: &str) -> Option<Version> {
        match s {
            "RTSP/1.0" => Some(Version::V1_0),
            "RTSP/2.0" => Some(Version::V2_0),
            _ => None,
        }
    }
}

method_enum! {
    /// An RTSP method (case-sensitive).
    pub enum Method {
        /// DESCRIBE
        Describe = "DESCRIBE",
        /// ANNOUNCE (1.0)
        Announce = "ANNOUNCE",
        /// GET_PARAMETER
        GetParameter = "GET_PARAMETER",
        /// OPTIONS
        Options = "OPTIONS",
        /// PAUSE
        Pause = "PAUSE",
        /// PLAY
        Play = "PLAY",
        /// PLAY_NOTIFY (2.0)
        PlayNotify = "PLAY_NOTIFY",
        /// RECORD (1.0)
        Record = "RECORD",
        /// REDIRECT
        Redirect = "REDIRECT",
        /// SETUP
        Setup = "SETUP",
        /// SET_PARAMETER
        SetParameter = "SET_PARAMETER",
        /// TEARDOWN
        Teardown = "TEARDOWN",
    }
}

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `METHOD SP URI SP RTSP/x.y`
    Request {
        /// Method.
        method: Method,
        /// Request-URI (`*` or an absolute URI).
        uri: String,
        /// Version.
        version: Version,
    },
    /// `RTSP/x.y SP code SP reason`
    Response {
        /// Version.
        version: Version,
        /// Status code, 100-599.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
}

/// `Session: <id>[;timeout=<secs>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Session identifier.
    pub id: String,
    /// Timeout in seconds, when given.
    pub timeout: Option<u32>,
}

/// A parsed RTSP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtspMessage {
    /// Request-Line or Status-Line.
    pub start_line: StartLine,
    /// Every header field in order (unfolded).
    pub headers: Vec<Header>,
    /// `CSeq`.
    pub cseq: u32,
    /// `Session`, when present.
    pub session: Option<Session>,
    /// `Transport` specs in order of preference.
    pub transport: Vec<TransportSpec>,
    /// `Content-Type`, when present (as written).
    pub content_type: Option<String>,
    /// `Content-Length`, when present.
    pub content_length: Option<usize>,
    /// Body.
    pub body: Vec<u8>,
}

impl RtspMessage {
    /// The request method (`None` for responses).
    pub fn method(&self) -> Option<&Method> {
        match &self.start_line {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code (`None` for requests).
    pub fn status_code(&self) -> Option<u16> {
        match &self.start_line {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }
}

/// The value of a header that must appear at most once.
fn single<'a>(headers: &'a [Header], name: &'static str) -> Result<Option<&'a str>, RtspError> {
    message::single(headers, |n| n.eq_ignore_ascii_case(name))
        .map_err(|count| RtspError::DuplicateHeader { name, count })
}

/// Parses one complete RTSP message. Without `Content-Length` the body is
/// whatever follows the headers (normally nothing).
pub fn parse(data: &[u8]) -> Result<RtspMessage, RtspError> {
    let message::Parts {
        start_line,
        headers,
        content_length,
        body,
    } = message::parse_parts(data, is_content_length, parse_start_line)?;
    let cseq = single(&headers, "CSeq")?.ok_or(RtspError::MissingHeader("CSeq"))?;
    let cseq = parse_decimal(cseq.trim(), 10)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            invalid(
                "CSeq",
                format!("{:?} is not a 32-bit number", truncate(cseq)),
            )
        })?;
    let session = single(&headers, "Session")?
        .map(parse_session)
        .transpose()?;
    let mut transport = Vec::new();
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transport"))
    {
        let specs = split_outside(&h.value, ',', MAX_TRANSPORT_SPECS).ok_or_else(|| {
            invalid(
                "Transport",
                format!("more than {MAX_TRANSPORT_SPECS} transport specs"),
            )
        })?;
        for spec in specs {
            if transport.len() >= MAX_TRANSPORT_SPECS {
                return Err(invalid(
                    "Transport",
                    format!("more than {MAX_TRANSPORT_SPECS} transport specs"),
                ));
            }
            transport.push(parse_transport_spec(spec)?);
        }
    }
    let content_type = single(&headers, "Content-Type")?.map(str::to_string);
    Ok(RtspMessage {
        start_line,
        headers,
        cseq,
        session,
        transport,
        content_type,
        content_length,
        body,
    })
}

fn parse_start_line(line: &str) -> Result<StartLine, RtspError> {
    if starts_with_ignore_case(line, "RTSP/") {
        let status = split_status_line(line, 100..=599)
            .ok_or_else(|| RtspError::InvalidStatusLine(truncate(line)))?;
        let version = Version::parse(status.version)
            .ok_or_else(|| RtspError::UnsupportedVersion(truncate(status.version)))?;
        let code = status
            .code
            .ok_or_else(|| RtspError::InvalidStatusLine(truncate(line)))?;
        return Ok(StartLine::Response {
            version,
            code,
            reason: status.reason.to_string(),
        });
    }
    let Some([method, uri, version]) = split_request_line(line) else {
        return Err(RtspError::InvalidRequestLine(truncate(line)));
    };
    if !is_token(method) || uri.is_empty() {
        return Err(RtspError::InvalidRequestLine(truncate(line)));
    }
    let version = Version::parse(version).ok_or_else(|| {
        if version.starts_with("RTSP/") {
            RtspError::UnsupportedVersion(truncate(version))
        } else {
            RtspError::InvalidRequestLine(truncate(line))
        }
    })?;
    let uri_ok = uri == "*"
        || (uri
            .split_once(':')
            .is_some_and(|(s, r)| is_scheme(s) && !r.is_empty())
            && !uri.contains(|c: char| c.is_whitespace() || c.is_control()));
    if !uri_ok {
        return Err(RtspError::InvalidRequestLine(truncate(line)));
    }
    Ok(StartLine::Request {
        method: Method::from_token(method),
        uri: uri.to_string(),
        version,
    })
}

/// Parses `Session: id[;timeout=N]` (other parameters are ignored).
pub fn parse_session(value: &str) -> Result<Session, RtspError> {
    let (id, params) = match value.find(';') {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    let id = id.trim_matches(is_wsp);
    if id.is_empty() || id.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(invalid("Session", "session id must be one non-empty word"));
    }
    let params = message::parse_params(params).map_err(|e| invalid("Session", e.0))?;
    let timeout = match find_param(&params, "timeout") {
        None => None,
        Some(v) => Some(
            v.and_then(|v| parse_decimal(v, 10))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid("Session", "timeout must be a number of seconds"))?,
        ),
    };
    Ok(Session {
        id: id.to_string(),
        timeout,
    })
}
