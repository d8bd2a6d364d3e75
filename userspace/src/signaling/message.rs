//! Shared text-message machinery for SIP and RTSP: header-section splitting,
//! header folding, list splitting that respects quotes and `<…>`, parameter
//! parsing, `Content-Length`, and the bounded stream framer behind
//! [`crate::signaling::sip::SipFramer`] and [`crate::signaling::rtsp::RtspFramer`].
//!
//! Both protocols use the RFC 822 style "name: value" header block ended by an
//! empty line. Lines may end with CRLF or a bare LF; a line starting with SP or
//! HTAB continues the previous header (folding), and is joined with one SP.

use std::fmt;
use std::ops::RangeInclusive;

/// Largest SIP or RTSP message (start line, headers and body) accepted, in bytes.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// Largest number of header fields (after unfolding) accepted in one message.
pub const MAX_HEADERS: usize = 256;

/// Largest number of `;`-separated parameters accepted in one header value.
pub const MAX_PARAMS: usize = 64;

/// Largest number of comma-separated elements accepted in one header value.
pub const MAX_LIST_ITEMS: usize = 64;

/// Errors from the protocol-independent layer (size limits, header block, framing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The message (or a framed message announced by its headers) is too large.
    #[error("message of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Size seen or announced.
        size: usize,
        /// The limit ([`MAX_MESSAGE_SIZE`]).
        max: usize,
    },
    /// Nothing but line breaks (or nothing at all) was given.
    #[error("empty message")]
    Empty,
    /// The header section does not end with an empty line.
    #[error("header section is not terminated by an empty line")]
    UnterminatedHeaders,
    /// More header fields than [`MAX_HEADERS`].
    #[error("more than {max} header fields")]
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
    /// A header line has no `:`.
    #[error("line {line}: header field without ':'")]
    MissingColon {
        /// 1-based line number in the message.
        line: usize,
    },
    /// A header name is empty or contains non-token characters.
    #[error("line {line}: invalid header field name {name:?}")]
    InvalidHeaderName {
        /// 1-based line number in the message.
        line: usize,
        /// The offending name.
        name: String,
    },
    /// A folded continuation line appears before any header field.
    #[error("line {line}: continuation line without a preceding header field")]
    OrphanContinuation {
        /// 1-based line number in the message.
        line: usize,
    },
    /// `Content-Length` is not a non-negative decimal integer.
    #[error("invalid Content-Length {0:?}")]
    InvalidContentLength(String),
    /// `Content-Length` appears more than once.
    #[error("Content-Length appears {0} times")]
    DuplicateContentLength(usize),
    /// `Content-Length` announces more body bytes than the message holds.
    #[error("Content-Length {declared} exceeds the {available} body bytes present")]
    ContentLengthExceedsMessage {
        /// Announced body length.
        declared: usize,
        /// Bytes present after the header section.
        available: usize,
    },
    /// A stream message has no `Content-Length` where the protocol requires one.
    #[error("Content-Length is required on stream transports")]
    MissingContentLength,
    /// The framer failed earlier and has lost message boundaries.
    #[error("stream framer is desynchronised by an earlier error; reset it")]
    Poisoned,
}

/// One header field as received: the name keeps its spelling, the value is
/// unfolded (continuation lines joined with one SP) and trimmed.
///
/// Bytes that are not UTF-8 are replaced by U+FFFD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Field name as written (e.g. `"Call-ID"`, `"i"`).
    pub name: String,
    /// Field value, unfolded and trimmed.
    pub value: String,
}

/// A `name[=value]` parameter from a header (`;tag=abc`, `;lr`, `;boundary="x"`).
/// Quoted values are stored unquoted with escapes resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Parameter name as written.
    pub name: String,
    /// Parameter value, if any.
    pub value: Option<String>,
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={}", self.name, v),
            None => f.write_str(&self.name),
        }
    }
}

/// Looks up a parameter by case-insensitive name; `Some(None)` for a flag parameter.
pub(crate) fn find_param<'a>(params: &'a [Param], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.value.as_deref())
}

/// A parsed header section.
#[derive(Debug)]
pub(crate) struct Head {
    /// The first line, without its line terminator.
    pub start_line: String,
    /// Header fields in order.
    pub headers: Vec<Header>,
    /// Offset of the first body byte (just past the empty line).
    pub body_offset: usize,
}

/// Number of leading CR/LF bytes (stream keep-alives, RFC 3261 §7.5 leading CRLFs).
pub(crate) fn leading_line_breaks(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Finds the end of the header section, scanning from `from`: returns the
/// offset just past the empty line (`\n\n` or `\n\r\n`).
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let tail = buf.get(from..)?;
    tail.iter().enumerate().find_map(|(k, &b)| {
        let i = from + k;
        match (b, buf.get(i + 1), buf.get(i + 2)) {
            (b'\n', Some(b'\n'), _) => Some(i + 2),
            (b'\n', Some(b'\r'), Some(b'\n')) => Some(i + 3),
            _ => None,
        }
    })
}

/// RFC 3261 `token` characters (also RFC 2616/2326 tokens minus a few).
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// True when `s` is a non-empty token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// SP or HTAB.
pub(crate) fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Splits a buffer that starts with a start line into the start line, the
/// unfolded header fields and the body offset.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Head, MessageError> {
    let end = find_head_end(buf, 0).ok_or(MessageError::UnterminatedHeaders)?;
    let head = buf.get(..end).unwrap_or(buf);
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let start_line = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let mut headers: Vec<Header> = Vec::new();
    for (idx, raw) in lines.enumerate() {
        let line_no = idx + 2;
        if raw.is_empty() {
            break;
        }
        let line = String::from_utf8_lossy(raw);
        if line.starts_with(is_wsp) {
            let last = headers
                .last_mut()
                .ok_or(MessageError::OrphanContinuation { line: line_no })?;
            let cont = line.trim_matches(is_wsp);
            if !cont.is_empty() {
                if !last.value.is_empty() {
                    last.value.push(' ');
                }
                last.value.push_str(cont);
            }
            continue;
        }
        let colon = line
            .find(':')
            .ok_or(MessageError::MissingColon { line: line_no })?;
        let name = line[..colon].trim_end_matches(is_wsp);
        if !is_token(name) {
            return Err(MessageError::InvalidHeaderName {
                line: line_no,
                name: name.chars().take(64).collect(),
            });
        }
        if headers.len() >= MAX_HEADERS {
            return Err(MessageError::TooManyHeaders { max: MAX_HEADERS });
        }
        headers.push(Header {
            name: name.to_string(),
            value: line[colon + 1..].trim_matches(is_wsp).to_string(),
        });
    }
    Ok(Head {
        start_line,
        headers,
        body_offset: end,
    })
}

/// Defines a protocol's method enum from one table of `Variant = "TOKEN"`
/// pairs, plus `Other(String)` for any other token. `from_token`, `as_str`
/// and `Display` are generated from that table, so the two directions of the
/// mapping are written once and cannot disagree.
macro_rules! method_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $token:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// Any other token.
            Other(String),
        }

        impl $name {
            /// Maps a method token (case-sensitive) to a method.
            pub fn from_token(s: &str) -> $name {
                match s {
                    $( $token => $name::$variant, )*
                    other => $name::Other(other.to_string()),
                }
            }

            /// The method token.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $token, )*
                    $name::Other(s) => s,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use method_enum;

/// True when `s` starts with `prefix`, ASCII case-insensitively (`SIP/`, `RTSP/`).
pub(crate) fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// A Status-Line `version SP code SP reason`, split but not yet judged.
#[derive(Debug)]
pub(crate) struct StatusLine<'a> {
    /// The protocol version as written.
    pub version: &'a str,
    /// The status code, `None` unless it is exactly three digits within the
    /// protocol's range.
    pub code: Option<u16>,
    /// The reason phrase (empty when absent).
    pub reason: &'a str,
}

/// Splits a Status-Line; `None` when it has no SP after the version.
pub(crate) fn split_status_line(line: &str, codes: RangeInclusive<u64>) -> Option<StatusLine<'_>> {
    let (version, rest) = line.split_once(' ')?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let code = (code.len() == 3)
        .then(|| parse_decimal(code, 3))
        .flatten()
        .filter(|c| codes.contains(c))
        .and_then(|c| u16::try_from(c).ok());
    Some(StatusLine {
        version,
        code,
        reason,
    })
}

/// Splits a Request-Line into exactly three SP-separated fields
/// `[method, uri, version]` (any of them may be empty).
pub(crate) fn split_request_line(line: &str) -> Option<[&str; 3]> {
    let mut parts = line.splitn(4, ' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(uri), Some(version), None) => Some([method, uri, version]),
        _ => None,
    }
}

/// A complete message taken apart: the protocol's parsed start line, the
/// header fields and the body `Content-Length` delimits.
#[derive(Debug)]
pub(crate) struct Parts<S> {
    /// The start line, as the protocol parsed it.
    pub start_line: S,
    /// Header fields in order (unfolded).
    pub headers: Vec<Header>,
    /// `Content-Length`, when present.
    pub content_length: Option<usize>,
    /// `Content-Length` bytes after the header section, or all of them
    /// without `Content-Length`.
    pub body: Vec<u8>,
}

/// The protocol-independent steps of parsing one complete SIP or RTSP
/// message, in this order: the [`MAX_MESSAGE_SIZE`] limit, leading line
/// breaks skipped, the header section, the start line (`parse_start_line`),
/// the single `Content-Length` (names recognised by `is_content_length`) and
/// the body. Bytes after `Content-Length` are ignored; a `Content-Length`
/// larger than what follows the headers is an error.
pub(crate) fn parse_parts<S, E: From<MessageError>>(
    data: &[u8],
    is_content_length: impl Fn(&str) -> bool,
    parse_start_line: impl FnOnce(&str) -> Result<S, E>,
) -> Result<Parts<S>, E> {
    if data.len() > MAX_MESSAGE_SIZE {
        return Err(MessageError::TooLarge {
            size: data.len(),
            max: MAX_MESSAGE_SIZE,
        }
        .into());
    }
    let data = data.get(leading_line_breaks(data)..).unwrap_or_default();
    if data.is_empty() {
        return Err(MessageError::Empty.into());
    }
    let head = parse_head(data)?;
    let start_line = parse_start_line(&head.start_line)?;
    let content_length = content_length(&head.headers, is_content_length)?;
    let rest = data.get(head.body_offset..).unwrap_or_default();
    let body = match content_length {
        Some(cl) => rest
            .get(..cl)
            .ok_or(MessageError::ContentLengthExceedsMessage {
                declared: cl,
                available: rest.len(),
            })?
            .to_vec(),
        None => rest.to_vec(),
    };
    Ok(Parts {
        start_line,
        headers: head.headers,
        content_length,
        body,
    })
}

/// The value of the header that `is_name` recognises, which may appear at
/// most once: `Err(count)` when it appears `count` (more than one) times.
pub(crate) fn single(
    headers: &[Header],
    is_name: impl Fn(&str) -> bool,
) -> Result<Option<&str>, usize> {
    let mut it = headers.iter().filter(|h| is_name(&h.name));
    let first = it.next();
    let extra = it.count();
    if extra > 0 {
        return Err(extra + 1);
    }
    Ok(first.map(|h| h.value.as_str()))
}

/// Parses a `Content-Length` value: decimal digits only (no sign), at most 10 digits.
pub(crate) fn parse_content_length(value: &str) -> Result<usize, MessageError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MessageError::InvalidContentLength(
            v.chars().take(32).collect(),
        ));
    }
    v.parse::<usize>()
        .map_err(|_| MessageError::InvalidContentLength(v.to_string()))
}

/// The single `Content-Length` among `headers` (names compared with `is_cl`).
pub(crate) fn content_length(
    headers: &[Header],
    is_cl: impl Fn(&str) -> bool,
) -> Result<Option<usize>, MessageError> {
    let mut found = headers.iter().filter(|h| is_cl(&h.name));
    let Some(first) = found.next() else {
        return Ok(None);
    };
    let extra = found.count();
    if extra > 0 {
        return Err(MessageError::DuplicateContentLength(extra + 1));
    }
    parse_content_length(&first.value).map(Some)
}

/// Splits `s` on `sep` where `sep` is outside double quotes (with `\` escapes)
/// and outside `<…>`. Pieces are returned untrimmed. At most `max` pieces;
/// `None` when there are more.
pub(crate) fn split_outside(s: &str, sep: char, max: usize) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quote = false;
    let mut escaped = false;
    let mut angle = 0usize;
    for (i, c) in s.char_indices() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '"' => in_quote = true,
            '<' => angle += 1,
            '>' => angle = angle.saturating_sub(1),
            _ if c == sep && angle == 0 => {
                if out.len() + 1 >= max {
                    return None;
                }
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    Some(out)
}

/// Error from the small grammar helpers; callers wrap it with context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GrammarError(pub String);

impl GrammarError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        GrammarError(msg.into())
    }
}

/// Parses a quoted string starting at the opening `"` of `s`. Returns the
/// unescaped content and the text after the closing quote.
pub(crate) fn parse_quoted(s: &str) -> Result<(String, &str), GrammarError> {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, '"')) => {}
        _ => return Err(GrammarError::new("expected '\"'")),
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e)) => out.push(e),
                None => break,
            },
            '"' => return Ok((out, &s[i + 1..])),
            _ => out.push(c),
        }
    }
    Err(GrammarError::new("unterminated quoted string"))
}

/// Parses `;name[=value]` parameters. `s` must be empty (after trimming) or
/// start with `;`. Empty parameters (`;;`) and `name=` without a value are errors.
pub(crate) fn parse_params(s: &str) -> Result<Vec<Param>, GrammarError> {
    let s = s.trim_matches(is_wsp);
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = s.strip_prefix(';') else {
        return Err(GrammarError::new(format!(
            "unexpected text {:?} where ';' parameters were expected",
            truncate(s)
        )));
    };
    let pieces = split_outside(rest, ';', MAX_PARAMS)
        .ok_or_else(|| GrammarError::new(format!("more than {MAX_PARAMS} parameters")))?;
    pieces.into_iter().map(parse_param).collect()
}

/// Parses one `name[=value]` parameter (no leading `;`).
pub(crate) fn parse_param(piece: &str) -> Result<Param, GrammarError> {
    let piece = piece.trim_matches(is_wsp);
    if piece.is_empty() {
        return Err(GrammarError::new("empty parameter"));
    }
    let (name, value) = match piece.split_once('=') {
        Some((n, v)) => (n.trim_matches(is_wsp), Some(v.trim_matches(is_wsp))),
        None => (piece, None),
    };
    if !is_token(name) {
        return Err(GrammarError::new(format!(
            "invalid parameter name {:?}",
            truncate(name)
        )));
    }
    let value = match value {
        None => None,
        Some("") => {
            return Err(GrammarError::new(format!(
                "parameter {name:?} has '=' but no value"
            )))
        }
        Some(v) if v.starts_with('"') => {
            let (unq, rest) = parse_quoted(v)?;
            if !rest.trim_matches(is_wsp).is_empty() {
                return Err(GrammarError::new(format!(
                    "text after quoted value of {name:?}"
                )));
            }
            Some(unq)
        }
        Some(v) => {
            if v.contains(is_wsp) || v.contains('"') {
                return Err(GrammarError::new(format!(
                    "invalid value for parameter {name:?}"
                )));
            }
            Some(v.to_string())
        }
    };
    Ok(Param {
        name: name.to_string(),
        value,
    })
}

/// At most 64 characters of `s`, for error messages.
pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Checks a URI scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
pub(crate) fn is_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.')
}

/// Parses a decimal integer of at most `max_digits` digits into u64.
pub(crate) fn parse_decimal(s: &str, max_digits: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// How a protocol frames messages on a stream transport.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FramingRules {
    /// A message without `Content-Length` is an error (SIP over TCP) rather
    /// than a message without body (RTSP).
    pub require_content_length: bool,
    /// `$ channel len16 data` interleaved binary frames may appear between
    /// messages (RTSP over TCP).
    pub interleaved: bool,
    /// Recognises the `Content-Length` header name (compact forms included).
    pub is_content_length: fn(&str) -> bool,
}

/// Bounded framer over reassembled stream bytes; see the protocol wrappers.
#[derive(Debug)]
pub(crate) struct StreamFramer {
    rules: FramingRules,
    buf: Vec<u8>,
    /// Bytes of the current message already scanned for the end of headers.
    scanned: usize,
    /// Total length of the message at the front of `buf`, once known.
    pending: Option<usize>,
    /// Interleaved binary bytes still to discard.
    skip: usize,
    poisoned: bool,
    keepalives: u64,
    interleaved_frames: u64,
}

impl StreamFramer {
    pub(crate) fn new(rules: FramingRules) -> Self {
        StreamFramer {
            rules,
            buf: Vec::new(),
            scanned: 0,
            pending: None,
            skip: 0,
            poisoned: false,
            keepalives: 0,
            interleaved_frames: 0,
        }
    }

    /// Appends `data` and returns every message completed by it, in order.
    /// Memory stays bounded by [`MAX_MESSAGE_SIZE`] whatever `data`'s length.
    pub(crate) fn push(&mut self, mut data: &[u8]) -> Result<Vec<Vec<u8>>, MessageError> {
        if self.poisoned {
            return Err(MessageError::Poisoned);
        }
        let mut out = Vec::new();
        loop {
            // Discard interleaved payload straight from the input when nothing is buffered.
            if self.skip > 0 && self.buf.is_empty() {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = data.get(n..).unwrap_or_default();
            }
            let room = MAX_MESSAGE_SIZE.saturating_sub(self.buf.len());
            let take = room.min(data.len());
            // `take <= data.len()`, so the fallback is never taken.
            let (now, later) = data.split_at_checked(take).unwrap_or((data, &[]));
            self.buf.extend_from_slice(now);
            data = later;
            if let Err(e) = self.extract(&mut out) {
                self.poison();
                return Err(e);
            }
            if data.is_empty() {
                return Ok(out);
            }
            if self.buf.len() >= MAX_MESSAGE_SIZE {
                self.poison();
                return Err(MessageError::TooLarge {
                    size: self.buf.len() + data.len(),
                    max: MAX_MESSAGE_SIZE,
                });
            }
        }
    }

    fn poison(&mut self) {
        self.poisoned = true;
        self.buf = Vec::new();
        self.pending = None;
        self.scanned = 0;
        self.skip = 0;
    }

    /// Pulls complete messages off the front of `buf`.
    fn extract(&mut self, out: &mut Vec<Vec<u8>>) -> Result<(), MessageError> {
        let mut pos = 0;
        let len = self.buf.len();
        let result = loop {
            if self.skip > 0 {
                let n = self.skip.min(len - pos);
                pos += n;
                self.skip -= n;
                if self.skip > 0 {
                    break Ok(());
                }
            }
            if self.pending.is_none() && self.scanned == 0 {
                let ws = leading_line_breaks(self.buf.get(pos..).unwrap_or_default());
                if ws > 0 {
                    self.keepalives += 1;
                    pos += ws;
                }
            }
            if pos == len {
                break Ok(());
            }
            if self.rules.interleaved && self.pending.is_none() && self.buf.get(pos) == Some(&b'$')
            {
                let Some(&[_, _, hi, lo]) = self.buf.get(pos..pos + 4) else {
                    break Ok(());
                };
                self.skip = usize::from(u16::from_be_bytes([hi, lo]));
                self.interleaved_frames += 1;
                pos += 4;
                continue;
            }
            let avail = len - pos;
            let total = match self.pending {
                Some(t) => t,
                None => {
                    let msg = self.buf.get(pos..).unwrap_or_default();
                    let Some(head_end) = find_head_end(msg, self.scanned) else {
                        if avail >= MAX_MESSAGE_SIZE {
                            break Err(MessageError::TooLarge {
                                size: avail,
                                max: MAX_MESSAGE_SIZE,
                            });
                        }
                        self.scanned = avail.saturating_sub(2);
                        break Ok(());
                    };
                    let head = match parse_head(msg.get(..head_end).unwrap_or_default()) {
                        Ok(h) => h,
                        Err(e) => break Err(e),
                    };
                    let cl = match content_length(&head.headers, self.rules.is_content_length) {
                        Ok(Some(cl)) => cl,
                        Ok(None) if self.rules.require_content_length => {
                            break Err(MessageError::MissingContentLength)
                        }
                        Ok(None) => 0,
                        Err(e) => break Err(e),
                    };
                    let total = head_end.saturating_add(cl);
                    if total > MAX_MESSAGE_SIZE {
                        break Err(MessageError::TooLarge {
                            size: total,
                            max: MAX_MESSAGE_SIZE,
                        });
                    }
                    self.pending = Some(total);
                    total
                }
            };
            // Present exactly when `avail >= total`.
            let Some(message) = self.buf.get(pos..pos + total) else {
                break Ok(());
            };
            out.push(message.to_vec());
            pos += total;
            self.pending = None;
            self.scanned = 0;
        };
        self.buf.drain(..pos);
        result
    }

    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf
    }

    pub(crate) fn keepalives(&self) -> u64 {
        self.keepalives
    }

    pub(crate) fn interleaved_frames(&self) -> u64 {
        self.interleaved_frames
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    pub(crate) fn reset(&mut self) {
        self.poison();
        self.poisoned = false;
    }
}
