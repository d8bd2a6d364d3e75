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

use std::net::IpAddr;

use super::message::{
    self, find_param, is_scheme, is_token, is_wsp, method_enum, parse_decimal, parse_param,
    parse_quoted, split_outside, split_request_line, split_status_line, starts_with_ignore_case,
    truncate, FramingRules, GrammarError, StreamFramer,
};
use super::{Header, MessageError, Param};

/// Largest number of comma-separated specs accepted in one `Transport` header.
pub const MAX_TRANSPORT_SPECS: usize = 16;

/// Errors from [`parse`], [`setup_info`] and [`RtspFramer`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtspError {
    /// Size limit, header block or framing error.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// The Request-Line is malformed.
    #[error("invalid request line {0:?}: expected `METHOD SP URI SP RTSP/1.0`")]
    InvalidRequestLine(String),
    /// The Status-Line is malformed.
    #[error("invalid status line {0:?}: expected `RTSP/1.0 SP 3-digit-code SP reason`")]
    InvalidStatusLine(String),
    /// A version other than RTSP/1.0 or RTSP/2.0.
    #[error("unsupported RTSP version {0:?}")]
    UnsupportedVersion(String),
    /// A mandatory header is absent.
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    /// A single-valued header appears more than once.
    #[error("header {name} must appear once but appears {count} times")]
    DuplicateHeader {
        /// Canonical name.
        name: &'static str,
        /// Occurrences.
        count: usize,
    },
    /// A header value does not follow its grammar.
    #[error("invalid {name} header: {reason}")]
    InvalidHeader {
        /// Canonical name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// [`setup_info`] was given something other than a SETUP request and its 2xx response.
    #[error("not a SETUP exchange: {0}")]
    NotSetupExchange(String),
}

fn invalid(name: &'static str, reason: impl Into<String>) -> RtspError {
    RtspError::InvalidHeader {
        name,
        reason: reason.into(),
    }
}

fn transport_err(e: GrammarError) -> RtspError {
    invalid("Transport", e.0)
}

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

fn is_content_length(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-length")
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

/// The media endpoints negotiated by one SETUP exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupInfo {
    /// The transport spec the server chose (from the response).
    pub transport: TransportSpec,
    /// Client RTP port.
    pub client_rtp: Option<u16>,
    /// Client RTCP port.
    pub client_rtcp: Option<u16>,
    /// Server RTP port.
    pub server_rtp: Option<u16>,
    /// Server RTCP port.
    pub server_rtcp: Option<u16>,
    /// Server-side media source address (`source=` or `src_addr`), when given.
    pub source: Option<IpAddr>,
    /// Client-side media destination address (`destination=` or `dest_addr`), when given.
    pub destination: Option<IpAddr>,
    /// Media is carried over TCP (interleaved on the RTSP connection or
    /// `RTP/AVP/TCP`): no UDP pinhole is needed.
    pub interleaved: bool,
    /// Multicast delivery.
    pub multicast: bool,
    /// The `Session` of the response.
    pub session: Option<Session>,
}

impl SetupInfo {
    /// True when UDP media flows must be let through for this setup.
    pub fn needs_pinhole(&self) -> bool {
        !self.interleaved && (self.client_rtp.is_some() || self.server_rtp.is_some())
    }
}

/// Pairs a SETUP request with its response (same `CSeq`, 2xx status) and
/// derives the media ports. The response's transport spec is authoritative;
/// ports it omits are taken from the request's matching spec.
pub fn setup_info(request: &RtspMessage, response: &RtspMessage) -> Result<SetupInfo, RtspError> {
    if request.method() != Some(&Method::Setup) {
        return Err(RtspError::NotSetupExchange("request is not SETUP".into()));
    }
    let code = response
        .status_code()
        .ok_or_else(|| RtspError::NotSetupExchange("second message is not a response".into()))?;
    if !(200..300).contains(&code) {
        return Err(RtspError::NotSetupExchange(format!(
            "response status {code}"
        )));
    }
    if request.cseq != response.cseq {
        return Err(RtspError::NotSetupExchange(format!(
            "CSeq {} does not match request CSeq {}",
            response.cseq, request.cseq
        )));
    }
    let chosen = response
        .transport
        .first()
        .ok_or(RtspError::MissingHeader("Transport"))?;
    let offered = request
        .transport
        .iter()
        .find(|t| t.lower == chosen.lower && t.profile.eq_ignore_ascii_case(&chosen.profile))
        .or(request.transport.first());
    let client_from = |t: &TransportSpec| {
        t.client_port
            .map(|r| (Some(r.rtp()), r.rtcp()))
            .or_else(|| {
                t.dest_addr.first().and_then(|a| a.port).map(|rtp| {
                    let rtcp = t
                        .dest_addr
                        .get(1)
                        .and_then(|a| a.port)
                        .or(rtp.checked_add(1));
                    (Some(rtp), rtcp)
                })
            })
    };
    let (client_rtp, client_rtcp) = client_from(chosen)
        .or_else(|| offered.and_then(client_from))
        .unwrap_or((None, None));
    let (server_rtp, server_rtcp) = chosen
        .server_port
        .map(|r| (Some(r.rtp()), r.rtcp()))
        .or_else(|| {
            chosen.src_addr.first().and_then(|a| a.port).map(|rtp| {
                let rtcp = chosen
                    .src_addr
                    .get(1)
                    .and_then(|a| a.port)
                    .or(rtp.checked_add(1));
                (Some(rtp), rtcp)
            })
        })
        .unwrap_or((None, None));
    let ip = |s: &Option<String>| s.as_deref().and_then(|s| s.trim().parse::<IpAddr>().ok());
    let source = ip(&chosen.source).or_else(|| chosen.src_addr.first().and_then(TransportAddr::ip));
    let destination =
        ip(&chosen.destination).or_else(|| chosen.dest_addr.first().and_then(TransportAddr::ip));
    Ok(SetupInfo {
        transport: chosen.clone(),
        client_rtp,
        client_rtcp,
        server_rtp,
        server_rtcp,
        source,
        destination,
        interleaved: chosen.lower == LowerTransport::Tcp || chosen.interleaved.is_some(),
        multicast: chosen.delivery == Some(Delivery::Multicast),
        session: response.session.clone(),
    })
}

/// Splits a reassembled RTSP-over-TCP byte stream into messages.
///
/// Messages are delimited by the empty line plus `Content-Length` (absent
/// means no body). Interleaved binary frames (`$`, channel, 16-bit length,
/// data — RFC 2326 §10.12, RFC 7826 §14) between messages are skipped without
/// being buffered, and counted. Buffered data never exceeds
/// [`MAX_MESSAGE_SIZE`](super::MAX_MESSAGE_SIZE); after an error the framer
/// is poisoned until [`RtspFramer::reset`].
#[derive(Debug)]
pub struct RtspFramer {
    inner: StreamFramer,
}

impl Default for RtspFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl RtspFramer {
    /// A framer at the start of a stream.
    pub fn new() -> Self {
        RtspFramer {
            inner: StreamFramer::new(FramingRules {
                require_content_length: false,
                interleaved: true,
                is_content_length,
            }),
        }
    }

    /// Appends stream bytes and returns the raw bytes of every message they
    /// complete, in order (pass each to [`parse`]).
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, RtspError> {
        Ok(self.inner.push(data)?)
    }

    /// Bytes buffered towards the next, incomplete message.
    pub fn buffered(&self) -> &[u8] {
        self.inner.buffered()
    }

    /// Number of interleaved `$` frames skipped.
    pub fn interleaved_frames(&self) -> u64 {
        self.inner.interleaved_frames()
    }

    /// True after an error.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Discards buffered data and clears the poisoned state.
    pub fn reset(&mut self) {
        self.inner.reset();
    }
}
