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

mod body;
mod framer;
mod headers;

use body::collect_parts;
pub use body::{BodyPart, MediaType};
pub use framer::SipFramer;
use headers::{list_items, parse_contacts, parse_cseq};
pub use headers::{parse_name_addr, parse_via, CSeq, NameAddr, Via};

use crate::signaling::message::{
    self, is_scheme, is_token, method_enum, parse_decimal, split_request_line, split_status_line,
    starts_with_ignore_case, truncate, GrammarError, MAX_LIST_ITEMS,
};
use crate::signaling::sdp::{self, SdpError, SessionDescription};
use crate::signaling::{Header, MessageError};

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
