//! Message bodies: Content-Type, multipart bodies and their parts.

use std::fmt;

use super::{grammar, header_name_matches, invalid, SipError, MAX_BODY_PARTS, MAX_MULTIPART_DEPTH};
use crate::signaling::{
    message::{self, find_param, is_token, is_wsp, parse_head, parse_params, truncate},
    Header, Param,
};

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

pub(super) fn collect_parts<'a>(
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
        let no_headers = part
            .strip_prefix(b"\r\n")
            .or_else(|| part.strip_prefix(b"\n"));
        let (part_headers, part_body) = if let Some(part_body) = no_headers {
            // No part headers: the part starts with the empty line.
            (Vec::new(), part_body)
        } else {
            // Part headers have no start line: prepend a dummy one for the shared parser.
            let mut framed = Vec::with_capacity(part.len() + 2);
            framed.extend_from_slice(b"\r\n");
            let (head_bytes, part_body) = message::find_head_end(part, 0)
                .and_then(|end| part.split_at_checked(end))
                .ok_or_else(|| SipError::InvalidMultipart("part headers not terminated".into()))?;
            framed.extend_from_slice(head_bytes);
            let head = parse_head(&framed)
                .map_err(|e| SipError::InvalidMultipart(format!("part headers: {e}")))?;
            (head.headers, part_body)
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

pub(super) fn find_bytes(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|off| from + off)
}

/// Splits a multipart body on `--boundary` delimiter lines (RFC 2046 §5.1.1).
/// Returns the raw parts (headers + blank line + content), excluding the
/// CRLF that precedes each delimiter. The close delimiter is required.
pub(super) fn split_multipart<'a>(
    body: &'a [u8],
    boundary: &str,
) -> Result<Vec<&'a [u8]>, SipError> {
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
            if i == 0 || body.get(i - 1) == Some(&b'\n') {
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
        // `after <= body.len()`: a whole delimiter was found at `pos`.
        let line = body.get(after..).unwrap_or_default();
        if line.starts_with(b"--") {
            return Ok(parts);
        }
        // Skip transport padding, then the line break ending the delimiter line.
        let pad = line
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let content_start = match line.get(pad..).unwrap_or_default() {
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
        if end > content_start && body.get(end - 1) == Some(&b'\n') {
            end -= 1;
            if end > content_start && body.get(end - 1) == Some(&b'\r') {
                end -= 1;
            }
        }
        if parts.len() >= MAX_BODY_PARTS {
            return Err(SipError::InvalidMultipart(format!(
                "more than {MAX_BODY_PARTS} parts"
            )));
        }
        parts.push(
            body.get(content_start..end.max(content_start))
                .unwrap_or_default(),
        );
        pos = next;
    }
}
