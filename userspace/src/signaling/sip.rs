//! SIP message parsing (RFC 3261) and TCP framing.
//!
//! [`parse`] takes one complete message (a UDP datagram, or a frame from
//! [`SipFramer`]) and returns a [`SipMessage`] with the header fields a media
//! firewall needs already parsed and validated: `Call-ID`, `CSeq`, `From`/`To`
//! (with tags), `Via`, `Contact`, `Max-Forwards`, `Content-Type`,
//! `Content-Length`, `Content-Encoding`. Header names are matched
//! case-insensitively and compact forms (`i`, `f`, `t`, `v`, `l`, `c`, `m`,
//! `k`, `s`, `e`, …) are understood. The SDP body is found directly or inside
//! a `multipart/*` body ([`SipMessage::sdp_body`], [`SipMessage::sdp`]).
//!
//! Validation follows the RFC 4475 torture tests: messages that RFC 4475
//! §3.1.2 lists as invalid are rejected with a descriptive [`SipError`].
//!
//! ```
//! use pinhole::signaling::sip;
//! let msg = sip::parse(
//!     b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
//!       f: <sip:a@example.com>;tag=1\r\nt: <sip:b@example.com>;tag=2\r\n\
//!       i: abc@192.0.2.1\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n",
//! )
//! .unwrap();
//! assert_eq!(msg.status_code(), Some(180));
//! assert_eq!(msg.to_tag(), Some("2"));
//! ```

use std::fmt;
use std::net::IpAddr;

use super::message::{
    self, find_param, is_scheme, is_token, is_wsp, method_enum, parse_decimal, parse_head,
    parse_params, parse_quoted, split_outside, split_request_line, split_status_line,
    starts_with_ignore_case, truncate, FramingRules, GrammarError, StreamFramer, MAX_LIST_ITEMS,
};
use super::sdp::{self, SdpError, SessionDescription};
use super::{Header, MessageError, Param};

/// Largest `CSeq` sequence number (RFC 3261 §8.1.1.5: less than 2**31).
pub const MAX_CSEQ: u32 = (1 << 31) - 1;

/// Largest number of leaf parts collected from a multipart body.
pub const MAX_BODY_PARTS: usize = 32;

/// Deepest nesting of multipart bodies that is followed.
pub const MAX_MULTIPART_DEPTH: usize = 3;

/// Errors from [`parse`], [`SipFramer`] and body extraction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    /// Size limit, header block or framing error.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// The first line is neither a Request-Line nor a Status-Line.
    #[error("invalid request line {0:?}: expected `Method SP Request-URI SP SIP/2.0`")]
    InvalidRequestLine(String),
    /// The Status-Line is malformed (status code must be 3 digits, 100-699).
    #[error("invalid status line {0:?}: expected `SIP/2.0 SP 3-digit-code SP reason`")]
    InvalidStatusLine(String),
    /// A protocol version other than SIP/2.0.
    #[error("unsupported SIP version {0:?}")]
    UnsupportedVersion(String),
    /// The method is not a token.
    #[error("invalid method {0:?}")]
    InvalidMethod(String),
    /// The Request-URI is malformed.
    #[error("invalid Request-URI {uri:?}: {reason}")]
    InvalidRequestUri {
        /// The offending URI (truncated).
        uri: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A mandatory header field is absent.
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    /// A single-valued header field appears more than once.
    #[error("header {name} must appear once but appears {count} times")]
    DuplicateHeader {
        /// Canonical header name.
        name: &'static str,
        /// Number of occurrences.
        count: usize,
    },
    /// A header field value does not follow its grammar.
    #[error("invalid {name} header: {reason}")]
    InvalidHeader {
        /// Canonical header name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// In a request, the `CSeq` method differs from the request method.
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMethodMismatch {
        /// Method of the Request-Line.
        method: String,
        /// Method in `CSeq`.
        cseq: String,
    },
    /// A `multipart/*` body is malformed.
    #[error("invalid multipart body: {0}")]
    InvalidMultipart(String),
    /// The body is compressed or otherwise encoded; it cannot be read.
    #[error("unsupported Content-Encoding {0:?}")]
    UnsupportedContentEncoding(String),
    /// The `application/sdp` body is not UTF-8.
    #[error("SDP body is not valid UTF-8")]
    SdpNotUtf8,
    /// The `application/sdp` body is invalid.
    #[error("SDP body: {0}")]
    Sdp(#[from] SdpError),
}

fn invalid(name: &'static str, reason: impl Into<String>) -> SipError {
    SipError::InvalidHeader {
        name,
        reason: reason.into(),
    }
}

fn grammar(name: &'static str) -> impl Fn(GrammarError) -> SipError {
    move |e| invalid(name, e.0)
}

method_enum! {
    /// A SIP method. Methods are case-sensitive (RFC 3261 §7.1).
    pub enum Method {
        /// INVITE
        Invite = "INVITE",
        /// ACK
        Ack = "ACK",
        /// BYE
        Bye = "BYE",
        /// CANCEL
        Cancel = "CANCEL",
        /// OPTIONS
        Options = "OPTIONS",
        /// REGISTER
        Register = "REGISTER",
        /// PRACK (RFC 3262)
        Prack = "PRACK",
        /// UPDATE (RFC 3311)
        Update = "UPDATE",
        /// INFO (RFC 6086)
        Info = "INFO",
        /// SUBSCRIBE (RFC 6665)
        Subscribe = "SUBSCRIBE",
        /// NOTIFY (RFC 6665)
        Notify = "NOTIFY",
        /// REFER (RFC 3515)
        Refer = "REFER",
        /// MESSAGE (RFC 3428)
        Message = "MESSAGE",
        /// PUBLISH (RFC 3903)
        Publish = "PUBLISH",
    }
}

/// The first line of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `Method SP Request-URI SP SIP/2.0`
    Request {
        /// Request method.
        method: Method,
        /// Request-URI as written.
        uri: String,
    },
    /// `SIP/2.0 SP Status-Code SP Reason-Phrase`
    Response {
        /// Status code, 100-699.
        code: u16,
        /// Reason phrase (may be empty).
        reason: String,
    },
}

/// `CSeq: <seq> <method>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (at most [`MAX_CSEQ`]).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

/// A `name-addr` or `addr-spec` with header parameters (`From`, `To`, `Contact`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name (unquoted), if any.
    pub display_name: Option<String>,
    /// The URI, without `<>`.
    pub uri: String,
    /// Header parameters after the URI (`tag`, `expires`, `q`, …).
    pub params: Vec<Param>,
}

impl NameAddr {
    /// Value of a parameter (case-insensitive name); `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }
}

/// One `Via` entry: `SIP/2.0/UDP host[:port];params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Protocol name (`SIP`).
    pub protocol: String,
    /// Protocol version (`2.0`).
    pub version: String,
    /// Transport (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, …) as written.
    pub transport: String,
    /// `sent-by` host (IPv6 references keep their brackets).
    pub host: String,
    /// `sent-by` port.
    pub port: Option<u16>,
    /// Via parameters (`branch`, `received`, `rport`, …).
    pub params: Vec<Param>,
}

impl Via {
    /// Value of a parameter (case-insensitive name); `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// The `received` parameter as an address.
    pub fn received(&self) -> Option<IpAddr> {
        self.param("received").flatten().and_then(parse_host_ip)
    }

    /// The `rport` parameter value, if it has one.
    pub fn rport(&self) -> Option<u16> {
        self.param("rport").flatten().and_then(|p| p.parse().ok())
    }

    /// The `sent-by` host as an address, when it is an IP literal.
    pub fn host_ip(&self) -> Option<IpAddr> {
        parse_host_ip(&self.host)
    }
}

fn parse_host_ip(s: &str) -> Option<IpAddr> {
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

/// A MIME media type (`Content-Type`): type and subtype are lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// Top-level type (`application`, `multipart`, …), lower case.
    pub kind: String,
    /// Subtype (`sdp`, `mixed`, …), lower case.
    pub subtype: String,
    /// Parameters (`boundary`, `charset`, …).
    pub params: Vec<Param>,
}

impl MediaType {
    /// Parses `type/subtype *(;param)`.
    pub fn parse(value: &str) -> Result<MediaType, SipError> {
        let value = value.trim_matches(is_wsp);
        let (essence, params) = match value.find(';') {
            Some(i) => (&value[..i], &value[i..]),
            None => (value, ""),
        };
        let (kind, subtype) = essence
            .split_once('/')
            .ok_or_else(|| invalid("Content-Type", "expected type/subtype"))?;
        let (kind, subtype) = (kind.trim_matches(is_wsp), subtype.trim_matches(is_wsp));
        if !is_token(kind) || !is_token(subtype) {
            return Err(invalid(
                "Content-Type",
                format!("invalid media type {:?}", truncate(essence)),
            ));
        }
        Ok(MediaType {
            kind: kind.to_ascii_lowercase(),
            subtype: subtype.to_ascii_lowercase(),
            params: parse_params(params).map_err(grammar("Content-Type"))?,
        })
    }

    /// Value of a parameter (case-insensitive name).
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name).flatten()
    }

    /// True for `application/sdp`.
    pub fn is_sdp(&self) -> bool {
        self.kind == "application" && self.subtype == "sdp"
    }

    /// True for any `multipart/*`.
    pub fn is_multipart(&self) -> bool {
        self.kind == "multipart"
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.subtype)?;
        for p in &self.params {
            write!(f, ";{p}")?;
        }
        Ok(())
    }
}

/// One leaf of a message body: the whole body, or a part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPart<'a> {
    /// The part's content type (`None` when absent; RFC 2046 then implies text/plain).
    pub content_type: Option<MediaType>,
    /// The part's own MIME headers (empty for a non-multipart body).
    pub headers: Vec<Header>,
    /// The part's content.
    pub body: &'a [u8],
}

/// A parsed SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipMessage {
    /// Request-Line or Status-Line.
    pub start_line: StartLine,
    /// Every header field in order, as received (unfolded).
    pub headers: Vec<Header>,
    /// `Call-ID` (`i`).
    pub call_id: String,
    /// `CSeq`.
    pub cseq: CSeq,
    /// `From` (`f`).
    pub from: NameAddr,
    /// `To` (`t`).
    pub to: NameAddr,
    /// All `Via` (`v`) entries, top-most first.
    pub via: Vec<Via>,
    /// All `Contact` (`m`) entries (empty for `Contact: *`).
    pub contact: Vec<NameAddr>,
    /// `Contact: *` (REGISTER removal of all bindings).
    pub contact_wildcard: bool,
    /// `Max-Forwards`.
    pub max_forwards: Option<u8>,
    /// `Content-Type` (`c`).
    pub content_type: Option<MediaType>,
    /// `Content-Length` (`l`), when present.
    pub content_length: Option<usize>,
    /// `Content-Encoding` (`e`), when present.
    pub content_encoding: Option<String>,
    /// The body: `Content-Length` bytes, or everything after the headers
    /// when `Content-Length` is absent (allowed on UDP only).
    pub body: Vec<u8>,
}

/// Compact header forms (RFC 3261 §7.3.3 and later registrations).
const COMPACT_FORMS: &[(char, &str)] = &[
    ('a', "accept-contact"),
    ('b', "referred-by"),
    ('c', "content-type"),
    ('d', "request-disposition"),
    ('e', "content-encoding"),
    ('f', "from"),
    ('i', "call-id"),
    ('j', "reject-contact"),
    ('k', "supported"),
    ('l', "content-length"),
    ('m', "contact"),
    ('n', "identity-info"),
    ('o', "event"),
    ('r', "refer-to"),
    ('s', "subject"),
    ('t', "to"),
    ('u', "allow-events"),
    ('v', "via"),
    ('x', "session-expires"),
    ('y', "identity"),
];

/// True when header `name` (as received, possibly compact) is `canonical`
/// (any case, long or compact form).
pub fn header_name_matches(name: &str, canonical: &str) -> bool {
    if name.eq_ignore_ascii_case(canonical) {
        return true;
    }
    let expand = |n: &str| -> Option<&'static str> {
        let mut chars = n.chars();
        let c = chars.next()?.to_ascii_lowercase();
        if chars.next().is_some() {
            return None;
        }
        COMPACT_FORMS.iter().find(|(k, _)| *k == c).map(|(_, v)| *v)
    };
    match (expand(name), expand(canonical)) {
        (Some(full), _) => full.eq_ignore_ascii_case(canonical),
        (None, Some(full)) => full.eq_ignore_ascii_case(name),
        (None, None) => false,
    }
}

fn is_content_length(name: &str) -> bool {
    header_name_matches(name, "content-length")
}

/// Parses one complete SIP message.
///
/// Leading CRLFs are skipped. With `Content-Length`, the body is that many
/// bytes and trailing octets are ignored (RFC 3261 §18.3, RFC 4475 §3.1.1.8);
/// a `Content-Length` larger than what follows the headers is an error.
/// Without it, the body is the rest of the input.
pub fn parse(data: &[u8]) -> Result<SipMessage, SipError> {
    let message::Parts {
        start_line,
        headers,
        content_length,
        body,
    } = message::parse_parts(data, is_content_length, parse_start_line)?;

    let call_id = single(&headers, "Call-ID")?.ok_or(SipError::MissingHeader("Call-ID"))?;
    if call_id.is_empty() || call_id.contains(char::is_whitespace) {
        return Err(invalid("Call-ID", "must be one non-empty word"));
    }
    let cseq = parse_cseq(single(&headers, "CSeq")?.ok_or(SipError::MissingHeader("CSeq"))?)?;
    let from = parse_name_addr(
        single(&headers, "From")?.ok_or(SipError::MissingHeader("From"))?,
        "From",
    )?;
    let to = parse_name_addr(
        single(&headers, "To")?.ok_or(SipError::MissingHeader("To"))?,
        "To",
    )?;
    let mut via = Vec::new();
    for h in headers
        .iter()
        .filter(|h| header_name_matches(&h.name, "via"))
    {
        for item in list_items(&h.value, "Via")? {
            if via.len() >= MAX_LIST_ITEMS {
                return Err(invalid(
                    "Via",
                    format!("more than {MAX_LIST_ITEMS} entries"),
                ));
            }
            via.push(parse_via(item)?);
        }
    }
    if via.is_empty() {
        return Err(SipError::MissingHeader("Via"));
    }
    let (contact, contact_wildcard) = parse_contacts(&headers)?;
    let max_forwards = match single(&headers, "Max-Forwards")? {
        None => None,
        Some(v) => Some(
            parse_decimal(v, 10)
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| {
                    invalid("Max-Forwards", format!("{:?} is not 0-255", truncate(v)))
                })?,
        ),
    };
    let content_type = single(&headers, "Content-Type")?
        .map(MediaType::parse)
        .transpose()?;
    let content_encoding = single(&headers, "Content-Encoding")?.map(str::to_string);
    if let Some(date) = single(&headers, "Date")? {
        // RFC 3261 §20.17: SIP-date is RFC 1123 date in GMT only (RFC 4475 §3.1.2.12).
        if !date.ends_with(" GMT") {
            return Err(invalid("Date", "time zone must be GMT"));
        }
    }
    if let StartLine::Request { method, .. } = &start_line {
        if *method != cseq.method {
            return Err(SipError::CSeqMethodMismatch {
                method: method.to_string(),
                cseq: cseq.method.to_string(),
            });
        }
    }
    Ok(SipMessage {
        start_line,
        call_id: call_id.to_string(),
        cseq,
        from,
        to,
        via,
        contact,
        contact_wildcard,
        max_forwards,
        content_type,
        content_length,
        content_encoding,
        body,
        headers,
    })
}

/// The value of a header that must appear at most once.
fn single<'a>(headers: &'a [Header], name: &'static str) -> Result<Option<&'a str>, SipError> {
    message::single(headers, |n| header_name_matches(n, name))
        .map_err(|count| SipError::DuplicateHeader { name, count })
}

fn parse_start_line(line: &str) -> Result<StartLine, SipError> {
    if starts_with_ignore_case(line, "SIP/") {
        let status = split_status_line(line, 100..=699)
            .ok_or_else(|| SipError::InvalidStatusLine(truncate(line)))?;
        if !status.version.eq_ignore_ascii_case("SIP/2.0") {
            return Err(SipError::UnsupportedVersion(truncate(status.version)));
        }
        let code = status
            .code
            .ok_or_else(|| SipError::InvalidStatusLine(truncate(line)))?;
        return Ok(StartLine::Response {
            code,
            reason: status.reason.to_string(),
        });
    }
    let Some([method, uri, version]) = split_request_line(line) else {
        return Err(SipError::InvalidRequestLine(truncate(line)));
    };
    if method.is_empty() || uri.is_empty() || version.is_empty() {
        return Err(SipError::InvalidRequestLine(truncate(line)));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(if starts_with_ignore_case(version, "SIP/") {
            SipError::UnsupportedVersion(truncate(version))
        } else {
            SipError::InvalidRequestLine(truncate(line))
        });
    }
    if !is_token(method) {
        return Err(SipError::InvalidMethod(truncate(method)));
    }
    validate_request_uri(uri)?;
    Ok(StartLine::Request {
        method: Method::from_token(method),
        uri: uri.to_string(),
    })
}

fn validate_request_uri(uri: &str) -> Result<(), SipError> {
    let err = |reason| SipError::InvalidRequestUri {
        uri: truncate(uri),
        reason,
    };
    if uri
        .contains(|c: char| c.is_whitespace() || c.is_control() || c == '<' || c == '>' || c == '"')
    {
        return Err(err(
            "contains whitespace, control characters, '<', '>' or '\"'",
        ));
    }
    let (scheme, rest) = uri.split_once(':').ok_or_else(|| err("no scheme"))?;
    if !is_scheme(scheme) {
        return Err(err("invalid scheme"));
    }
    if rest.is_empty() {
        return Err(err("empty after scheme"));
    }
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        let hostpart = rest.split_once('@').map_or(rest, |(_, h)| h);
        if hostpart.is_empty() {
            return Err(err("no host"));
        }
        if hostpart.contains('?') {
            return Err(err("headers are not allowed in a Request-URI"));
        }
    }
    Ok(())
}

fn parse_cseq(value: &str) -> Result<CSeq, SipError> {
    let mut it = value
        .split(|c: char| c.is_whitespace())
        .filter(|s| !s.is_empty());
    let (Some(num), Some(method), None) = (it.next(), it.next(), it.next()) else {
        return Err(invalid("CSeq", "expected `number method`"));
    };
    let seq = parse_decimal(num, 10)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n <= MAX_CSEQ)
        .ok_or_else(|| {
            invalid(
                "CSeq",
                format!("sequence number {:?} is not below 2**31", truncate(num)),
            )
        })?;
    if !is_token(method) {
        return Err(invalid(
            "CSeq",
            format!("invalid method {:?}", truncate(method)),
        ));
    }
    Ok(CSeq {
        seq,
        method: Method::from_token(method),
    })
}

/// Non-empty comma-separated elements of a list header.
fn list_items<'a>(value: &'a str, name: &'static str) -> Result<Vec<&'a str>, SipError> {
    let items = split_outside(value, ',', MAX_LIST_ITEMS)
        .ok_or_else(|| invalid(name, format!("more than {MAX_LIST_ITEMS} elements")))?;
    items
        .into_iter()
        .map(|i| {
            let i = i.trim_matches(is_wsp);
            if i.is_empty() {
                Err(invalid(name, "empty list element"))
            } else {
                Ok(i)
            }
        })
        .collect()
}

fn parse_contacts(headers: &[Header]) -> Result<(Vec<NameAddr>, bool), SipError> {
    let mut contacts = Vec::new();
    let mut wildcard = false;
    for h in headers
        .iter()
        .filter(|h| header_name_matches(&h.name, "contact"))
    {
        if h.value == "*" {
            wildcard = true;
            continue;
        }
        for item in list_items(&h.value, "Contact")? {
            if contacts.len() >= MAX_LIST_ITEMS {
                return Err(invalid(
                    "Contact",
                    format!("more than {MAX_LIST_ITEMS} entries"),
                ));
            }
            contacts.push(parse_name_addr(item, "Contact")?);
        }
    }
    if wildcard && !contacts.is_empty() {
        return Err(invalid("Contact", "'*' mixed with addresses"));
    }
    Ok((contacts, wildcard))
}

/// Parses `[display-name] <URI> *(;param)` or `addr-spec *(;param)`.
pub fn parse_name_addr(value: &str, name: &'static str) -> Result<NameAddr, SipError> {
    let s = value.trim_matches(is_wsp);
    if s.is_empty() {
        return Err(invalid(name, "empty value"));
    }
    let (display_name, uri, after) = if s.starts_with('"') {
        let (display, rest) = parse_quoted(s).map_err(grammar(name))?;
        let rest = rest.trim_start_matches(is_wsp);
        if !rest.starts_with('<') {
            return Err(invalid(
                name,
                "quoted display name must be followed by <URI>",
            ));
        }
        let (uri, after) = angle_uri(rest, name)?;
        (Some(display), uri, after)
    } else if let Some(lt) = s.find('<') {
        let display = s[..lt].trim_matches(is_wsp);
        if !display.split(is_wsp).all(|w| w.is_empty() || is_token(w)) {
            return Err(invalid(
                name,
                format!(
                    "display name {:?} must be tokens or a quoted string",
                    truncate(display)
                ),
            ));
        }
        let (uri, after) = angle_uri(&s[lt..], name)?;
        let display = (!display.is_empty()).then(|| display.to_string());
        (display, uri, after)
    } else {
        let (uri, after) = match s.find(';') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        };
        let uri = uri.trim_end_matches(is_wsp);
        if uri.contains(['?', ',']) {
            return Err(invalid(
                name,
                "a URI containing ',', ';' or '?' must be enclosed in <>",
            ));
        }
        (None, uri, after)
    };
    if uri.contains(char::is_whitespace) {
        return Err(invalid(name, "whitespace inside the URI"));
    }
    let (scheme, rest) = uri
        .split_once(':')
        .ok_or_else(|| invalid(name, format!("URI {:?} has no scheme", truncate(uri))))?;
    if !is_scheme(scheme) || rest.is_empty() {
        return Err(invalid(name, format!("invalid URI {:?}", truncate(uri))));
    }
    Ok(NameAddr {
        display_name,
        uri: uri.to_string(),
        params: parse_params(after).map_err(grammar(name))?,
    })
}

/// `s` starts with `<`: returns the URI inside and the text after `>`.
fn angle_uri<'a>(s: &'a str, name: &'static str) -> Result<(&'a str, &'a str), SipError> {
    let gt = s
        .find('>')
        .ok_or_else(|| invalid(name, "'<' without matching '>'"))?;
    let uri = &s[1..gt];
    if uri.is_empty() {
        return Err(invalid(name, "empty <>"));
    }
    if uri.starts_with(char::is_whitespace) || uri.ends_with(char::is_whitespace) {
        return Err(invalid(name, "whitespace inside <>"));
    }
    Ok((uri, &s[gt + 1..]))
}

/// Parses one Via entry (`sent-protocol LWS sent-by *(;via-params)`), allowing
/// whitespace around `/` as RFC 3261 does.
pub fn parse_via(item: &str) -> Result<Via, SipError> {
    let (proto, params) = match item.find(';') {
        Some(i) => (&item[..i], &item[i..]),
        None => (item, ""),
    };
    let mut fields = Vec::with_capacity(3);
    let mut rest = proto.trim_start_matches(is_wsp);
    for i in 0..3 {
        let end = rest
            .find(|c: char| !(c.is_ascii() && message::is_token_char(c as u8)))
            .unwrap_or(rest.len());
        let tok = &rest[..end];
        if tok.is_empty() {
            return Err(invalid(
                "Via",
                format!("malformed sent-protocol in {:?}", truncate(item)),
            ));
        }
        fields.push(tok);
        rest = &rest[end..];
        if i < 2 {
            rest = rest
                .trim_start_matches(is_wsp)
                .strip_prefix('/')
                .ok_or_else(|| invalid("Via", format!("expected '/' in {:?}", truncate(item))))?
                .trim_start_matches(is_wsp);
        }
    }
    if !rest.starts_with(is_wsp) {
        return Err(invalid("Via", "expected whitespace before sent-by"));
    }
    let sent_by = rest.trim_matches(is_wsp);
    let (host, port) = if let Some(v6) = sent_by.strip_prefix('[') {
        let close = v6
            .find(']')
            .ok_or_else(|| invalid("Via", "unterminated IPv6 reference"))?;
        (&sent_by[..close + 2], &v6[close + 1..])
    } else {
        match sent_by.find(':') {
            Some(i) => (sent_by[..i].trim_end_matches(is_wsp), &sent_by[i..]),
            None => (sent_by, ""),
        }
    };
    let port = port.trim_matches(is_wsp);
    let port = if port.is_empty() {
        None
    } else {
        let p = port
            .strip_prefix(':')
            .map(|p| p.trim_matches(is_wsp))
            .ok_or_else(|| invalid("Via", "unexpected text after host"))?;
        Some(
            parse_decimal(p, 5)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| invalid("Via", format!("invalid port {:?}", truncate(p))))?,
        )
    };
    let host_ok = if host.starts_with('[') {
        host.len() > 2 && parse_host_ip(host).is_some()
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    };
    if !host_ok {
        return Err(invalid(
            "Via",
            format!("invalid sent-by host {:?}", truncate(host)),
        ));
    }
    Ok(Via {
        protocol: fields[0].to_string(),
        version: fields[1].to_string(),
        transport: fields[2].to_string(),
        host: host.to_string(),
        port,
        params: parse_params(params).map_err(grammar("Via"))?,
    })
}

impl SipMessage {
    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start_line, StartLine::Request { .. })
    }

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

    /// The first value of header `name` (case-insensitive, compact forms understood).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| header_name_matches(&h.name, name))
            .map(|h| h.value.as_str())
    }

    /// Every value of header `name`, one per header line, in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| header_name_matches(&h.name, name))
            .map(|h| h.value.as_str())
    }

    /// `tag` of `From`.
    pub fn from_tag(&self) -> Option<&str> {
        self.from.tag()
    }

    /// `tag` of `To`.
    pub fn to_tag(&self) -> Option<&str> {
        self.to.tag()
    }

    /// The leaf parts of the body: the body itself, or the parts of a
    /// `multipart/*` body (nested multiparts flattened, up to
    /// [`MAX_MULTIPART_DEPTH`] levels and [`MAX_BODY_PARTS`] parts). Empty
    /// when there is no body.
    pub fn body_parts(&self) -> Result<Vec<BodyPart<'_>>, SipError> {
        let mut out = Vec::new();
        if self.body.is_empty() {
            return Ok(out);
        }
        collect_parts(
            self.content_type.clone(),
            Vec::new(),
            &self.body,
            0,
            &mut out,
        )?;
        Ok(out)
    }

    /// The bytes of the first `application/sdp` body or body part, if any.
    ///
    /// Fails when the body is content-encoded (e.g. gzip) or a multipart body is malformed.
    pub fn sdp_body(&self) -> Result<Option<&[u8]>, SipError> {
        if let Some(enc) = &self.content_encoding {
            if !enc.eq_ignore_ascii_case("identity") {
                return Err(SipError::UnsupportedContentEncoding(truncate(enc)));
            }
        }
        Ok(self
            .body_parts()?
            .into_iter()
            .find(|p| p.content_type.as_ref().is_some_and(MediaType::is_sdp))
            .map(|p| p.body))
    }

    /// The parsed SDP body, if the message carries one.
    pub fn sdp(&self) -> Result<Option<SessionDescription>, SipError> {
        let Some(body) = self.sdp_body()? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(body).map_err(|_| SipError::SdpNotUtf8)?;
        Ok(Some(sdp::parse(text)?))
    }
}

fn collect_parts<'a>(
    content_type: Option<MediaType>,
    headers: Vec<Header>,
    body: &'a [u8],
    depth: usize,
    out: &mut Vec<BodyPart<'a>>,
) -> Result<(), SipError> {
    let boundary = match &content_type {
        Some(ct) if ct.is_multipart() => ct
            .param("boundary")
            .ok_or_else(|| SipError::InvalidMultipart("multipart without boundary".into()))?
            .to_string(),
        _ => {
            if out.len() >= MAX_BODY_PARTS {
                return Err(SipError::InvalidMultipart(format!(
                    "more than {MAX_BODY_PARTS} parts"
                )));
            }
            out.push(BodyPart {
                content_type,
                headers,
                body,
            });
            return Ok(());
        }
    };
    if depth >= MAX_MULTIPART_DEPTH {
        return Err(SipError::InvalidMultipart(format!(
            "nested deeper than {MAX_MULTIPART_DEPTH} levels"
        )));
    }
    for part in split_multipart(body, &boundary)? {
        let (part_headers, part_body) = if part.starts_with(b"\r\n") || part.starts_with(b"\n") {
            // No part headers: the part starts with the empty line.
            let skip = if part.starts_with(b"\r\n") { 2 } else { 1 };
            (Vec::new(), &part[skip..])
        } else {
            // Part headers have no start line: prepend a dummy one for the shared parser.
            let mut framed = Vec::with_capacity(part.len() + 2);
            framed.extend_from_slice(b"\r\n");
            let end = message::find_head_end(part, 0)
                .ok_or_else(|| SipError::InvalidMultipart("part headers not terminated".into()))?;
            framed.extend_from_slice(&part[..end]);
            let head = parse_head(&framed)
                .map_err(|e| SipError::InvalidMultipart(format!("part headers: {e}")))?;
            (head.headers, &part[end..])
        };
        let ct = match part_headers
            .iter()
            .find(|h| header_name_matches(&h.name, "content-type"))
        {
            Some(h) => Some(MediaType::parse(&h.value)?),
            None => None,
        };
        collect_parts(ct, part_headers, part_body, depth + 1, out)?;
    }
    Ok(())
}

fn find_bytes(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut i = from;
    while i + needle.len() <= hay.len() {
        let off = hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        i += off;
        if hay[i..].starts_with(needle) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Splits a multipart body on `--boundary` delimiter lines (RFC 2046 §5.1.1).
/// Returns the raw parts (headers + blank line + content), excluding the
/// CRLF that precedes each delimiter. The close delimiter is required.
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<&'a [u8]>, SipError> {
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(SipError::InvalidMultipart(
            "boundary must be 1-70 characters".into(),
        ));
    }
    let mut delim = Vec::with_capacity(boundary.len() + 2);
    delim.extend_from_slice(b"--");
    delim.extend_from_slice(boundary.as_bytes());

    // Delimiters only count at the start of the body or of a line.
    let next_delim = |from: usize| -> Option<usize> {
        let mut at = from;
        loop {
            let i = find_bytes(body, &delim, at)?;
            if i == 0 || body[i - 1] == b'\n' {
                return Some(i);
            }
            at = i + 1;
        }
    };
    let mut parts = Vec::new();
    let mut pos = next_delim(0)
        .ok_or_else(|| SipError::InvalidMultipart("no boundary delimiter found".into()))?;
    loop {
        let after = pos + delim.len();
        if body[after..].starts_with(b"--") {
            return Ok(parts);
        }
        // Skip transport padding, then the line break ending the delimiter line.
        let line = &body[after..];
        let pad = line
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let content_start = match &line[pad..] {
            [b'\r', b'\n', ..] => after + pad + 2,
            [b'\n', ..] => after + pad + 1,
            _ => {
                return Err(SipError::InvalidMultipart(
                    "text after boundary delimiter".into(),
                ))
            }
        };
        let next = next_delim(content_start)
            .ok_or_else(|| SipError::InvalidMultipart("missing close delimiter".into()))?;
        // The line break before the delimiter belongs to the delimiter.
        let mut end = next;
        if end > content_start && body[end - 1] == b'\n' {
            end -= 1;
            if end > content_start && body[end - 1] == b'\r' {
                end -= 1;
            }
        }
        if parts.len() >= MAX_BODY_PARTS {
            return Err(SipError::InvalidMultipart(format!(
                "more than {MAX_BODY_PARTS} parts"
            )));
        }
        parts.push(&body[content_start..end.max(content_start)]);
        pos = next;
    }
}

/// Splits a reassembled SIP-over-TCP byte stream into messages using
/// `Content-Length` (mandatory on streams, RFC 3261 §18.3).
///
/// CRLF keep-alives between messages (RFC 5626 §3.5.1) are skipped and
/// counted. Incomplete data is kept until more arrives; buffered data never
/// exceeds [`MAX_MESSAGE_SIZE`](super::MAX_MESSAGE_SIZE). After an error
/// (oversized message, missing `Content-Length`, malformed header block) the
/// stream has lost message boundaries: the framer is poisoned and every later
/// [`SipFramer::push`] fails with [`MessageError::Poisoned`] until
/// [`SipFramer::reset`].
///
/// ```
/// use pinhole::signaling::sip::SipFramer;
/// let mut f = SipFramer::new();
/// assert!(f.push(b"\r\n\r\nOPTIONS sip:a@example.com SIP/2.0\r\nl: 3\r\n").unwrap().is_empty());
/// let msgs = f.push(b"\r\nabcOPT").unwrap();
/// assert_eq!(msgs.len(), 1);
/// assert!(msgs[0].ends_with(b"\r\n\r\nabc"));
/// assert_eq!(f.buffered(), b"OPT");
/// ```
#[derive(Debug)]
pub struct SipFramer {
    inner: StreamFramer,
}

impl Default for SipFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl SipFramer {
    /// A framer at the start of a stream.
    pub fn new() -> Self {
        SipFramer {
            inner: StreamFramer::new(FramingRules {
                require_content_length: true,
                interleaved: false,
                is_content_length,
            }),
        }
    }

    /// Appends stream bytes and returns the raw bytes of every message they
    /// complete, in order (pass each to [`parse`]).
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, SipError> {
        Ok(self.inner.push(data)?)
    }

    /// Bytes buffered towards the next, incomplete message (the leftovers).
    pub fn buffered(&self) -> &[u8] {
        self.inner.buffered()
    }

    /// Number of CRLF keep-alive runs skipped between messages.
    pub fn keepalives(&self) -> u64 {
        self.inner.keepalives()
    }

    /// True after an error: the stream must be dropped or the framer reset.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Discards buffered data and clears the poisoned state.
    pub fn reset(&mut self) {
        self.inner.reset();
    }
}
