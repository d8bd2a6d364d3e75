//! The ng wire format as rtpengine documents it: a UDP datagram
//! `COOKIE SP bencode-dictionary`, where the reply echoes the request's
//! cookie. The dictionary may also be a JSON object, as rtpengine allows;
//! the reply then is JSON too ([`Format`]). Requests decode into
//! [`NgRequest`]; replies are dictionaries with `result` (`ok`, `pong` or
//! `error`) and, on error, `error-reason`.
//!
//! Dictionary keys are matched case-sensitively, with space, `-` and `_`
//! interchangeable (`delete-delay`, `delete delay`), as rtpengine does.

// Reads untrusted bytes: no panicking shortcuts (as in signaling/).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;

use super::bencode::{self, BencodeError, Limits, Value};
use super::options::MediaOptions;

/// Longest cookie accepted (rtpengine's peers use a few dozen bytes).
pub const MAX_COOKIE: usize = 256;

/// Longest Call-ID or tag accepted.
pub const MAX_ID: usize = 512;

/// Entries a `list` reply holds unless the request's `limit` says otherwise
/// (rtpengine's default).
pub const DEFAULT_LIST_LIMIT: usize = 32;

/// Why a datagram has no usable cookie. Such a datagram gets no reply: a
/// reply could not be matched to it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("datagram has no cookie")]
    NoCookie,
    #[error("cookie longer than {MAX_COOKIE} bytes")]
    CookieTooLong,
}

/// Splits a datagram into its cookie and its body at the first space.
pub fn split(datagram: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    let head = datagram.get(..MAX_COOKIE + 1).unwrap_or(datagram);
    match head.iter().position(|&b| b == b' ') {
        Some(0) => Err(FrameError::NoCookie),
        Some(i) => {
            // `i` indexes a byte of `datagram`, so both halves exist.
            let (cookie, rest) = datagram.split_at_checked(i).ok_or(FrameError::NoCookie)?;
            Ok((cookie, rest.get(1..).unwrap_or_default()))
        }
        None if head.len() > MAX_COOKIE => Err(FrameError::CookieTooLong),
        None => Err(FrameError::NoCookie),
    }
}

/// How a request's dictionary is written; the reply uses the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Bencode,
    /// A JSON object, which rtpengine accepts too
    /// (`rtpengine-ng-client --json`).
    Json,
}

impl Format {
    /// JSON when the body starts with `{` (after whitespace), else bencode.
    pub fn of(body: &[u8]) -> Format {
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Format::Json,
            _ => Format::Bencode,
        }
    }
}

/// `cookie SP reply` in bencode.
pub fn frame(cookie: &[u8], reply: &Value) -> Vec<u8> {
    frame_as(cookie, reply, Format::Bencode)
}

/// `cookie SP reply` in `format`. In JSON, byte strings become strings
/// (invalid UTF-8 replaced) and integers numbers.
pub fn frame_as(cookie: &[u8], reply: &Value, format: Format) -> Vec<u8> {
    let mut out = Vec::with_capacity(cookie.len() + 64);
    out.extend_from_slice(cookie);
    out.push(b' ');
    match format {
        Format::Bencode => reply.encode_into(&mut out),
        Format::Json => out.extend_from_slice(to_json(reply).to_string().as_bytes()),
    }
    out
}

fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        Value::Int(n) => J::from(*n),
        Value::List(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Dict(d) => J::Object(
            d.iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), to_json(v)))
                .collect(),
        ),
    }
}

/// A JSON request as the bencode value it stands for: strings become byte
/// strings, integers integers, `true`/`false` 1/0; fractions and `null`
/// are refused, and nesting is bounded as for bencode.
fn from_json(j: &serde_json::Value, depth: usize, max_depth: usize) -> Result<Value, RequestError> {
    use serde_json::Value as J;
    let nested = |depth: usize| {
        if depth >= max_depth {
            Err(RequestError::Json(format!(
                "nesting deeper than {max_depth} levels"
            )))
        } else {
            Ok(depth + 1)
        }
    };
    Ok(match j {
        J::String(s) => Value::Bytes(s.as_bytes().to_vec()),
        J::Number(n) => Value::Int(
            n.as_i64()
                .ok_or_else(|| RequestError::Json(format!("number {n} is not a 64-bit integer")))?,
        ),
        J::Bool(b) => Value::Int(i64::from(*b)),
        J::Null => return Err(RequestError::Json("null is not a value".into())),
        J::Array(items) => {
            let d = nested(depth)?;
            Value::List(
                items
                    .iter()
                    .map(|i| from_json(i, d, max_depth))
                    .collect::<Result<_, _>>()?,
            )
        }
        J::Object(map) => {
            let d = nested(depth)?;
            Value::Dict(
                map.iter()
                    .map(|(k, v)| Ok((k.as_bytes().to_vec(), from_json(v, d, max_depth)?)))
                    .collect::<Result<_, RequestError>>()?,
            )
        }
    })
}

/// Decodes a request body in either format (see [`Format::of`]).
pub fn decode_body(body: &[u8], limits: Limits) -> Result<Value, RequestError> {
    match Format::of(body) {
        Format::Bencode => Ok(bencode::decode_with(body, limits)?),
        Format::Json => {
            if body.len() > limits.max_input {
                return Err(RequestError::Bencode(BencodeError::TooLarge {
                    len: body.len(),
                    max: limits.max_input,
                }));
            }
            let j: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| RequestError::Json(e.to_string()))?;
            from_json(&j, 0, limits.max_depth)
        }
    }
}

/// The commands pinhole implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NgCommand {
    Ping,
    Offer,
    Answer,
    Delete,
    Query,
    List,
    Statistics,
}

impl NgCommand {
    pub const ALL: [NgCommand; 7] = [
        NgCommand::Ping,
        NgCommand::Offer,
        NgCommand::Answer,
        NgCommand::Delete,
        NgCommand::Query,
        NgCommand::List,
        NgCommand::Statistics,
    ];

    /// The command's name on the wire (and in metrics labels).
    pub fn name(self) -> &'static str {
        match self {
            NgCommand::Ping => "ping",
            NgCommand::Offer => "offer",
            NgCommand::Answer => "answer",
            NgCommand::Delete => "delete",
            NgCommand::Query => "query",
            NgCommand::List => "list",
            NgCommand::Statistics => "statistics",
        }
    }

    fn from_name(name: &[u8]) -> Option<NgCommand> {
        NgCommand::ALL
            .into_iter()
            .find(|c| c.name().as_bytes() == name)
    }
}

/// A call, or a side of it, as `query` and `delete` name it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallRef {
    pub call_id: String,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
}

/// An `offer` or `answer`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OfferAnswer {
    pub call_id: String,
    /// The tag of the side that sent the SIP message carrying the SDP.
    pub from_tag: String,
    /// Absent on an initial offer; always present on an answer.
    pub to_tag: Option<String>,
    /// The SDP body, byte for byte (echoed unchanged in the reply).
    pub sdp: Vec<u8>,
    /// `flags`, as sent (kept for logging; [`options`](Self::options) is
    /// what pinhole makes of them).
    pub flags: Vec<String>,
    pub via_branch: Option<String>,
    /// `received-from`, the address flags and the options pinhole refuses.
    pub options: MediaOptions,
}

/// A `delete`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delete {
    pub call: CallRef,
    /// `delete-delay` in seconds; absent: the daemon's default.
    pub delete_delay: Option<u64>,
    /// The `fatal` flag: an unknown call is an error, not a warning.
    pub fatal: bool,
}

/// A decoded request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NgRequest {
    Ping,
    Offer(OfferAnswer),
    Answer(OfferAnswer),
    Delete(Delete),
    Query(CallRef),
    /// At most `limit` Call-IDs (at least 1).
    List {
        limit: usize,
    },
    Statistics,
}

impl NgRequest {
    pub fn command(&self) -> NgCommand {
        match self {
            NgRequest::Ping => NgCommand::Ping,
            NgRequest::Offer(_) => NgCommand::Offer,
            NgRequest::Answer(_) => NgCommand::Answer,
            NgRequest::Delete(_) => NgCommand::Delete,
            NgRequest::Query(_) => NgCommand::Query,
            NgRequest::List { .. } => NgCommand::List,
            NgRequest::Statistics => NgCommand::Statistics,
        }
    }
}

/// Why a request body is not a request pinhole can carry out. The message
/// is the reply's `error-reason`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("malformed bencode: {0}")]
    Bencode(#[from] BencodeError),
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("request is not a dictionary")]
    NotDictionary,
    #[error("missing key `{0}`")]
    Missing(&'static str),
    #[error("key `{key}` must be {expected}")]
    Type {
        key: &'static str,
        expected: &'static str,
    },
    #[error("invalid `{key}`: {why}")]
    Invalid {
        key: &'static str,
        why: &'static str,
    },
    #[error("unknown command `{0}`")]
    UnknownCommand(String),
}

/// Decodes a request body (the bytes after the cookie).
pub fn parse_request(body: &[u8], limits: Limits) -> Result<NgRequest, RequestError> {
    let value = decode_body(body, limits)?;
    let dict = value.as_dict().ok_or(RequestError::NotDictionary)?;
    let fields = Fields(dict);
    let command = fields
        .get("command")
        .ok_or(RequestError::Missing("command"))?
        .as_bytes()
        .ok_or(RequestError::Type {
            key: "command",
            expected: "a string",
        })?;
    let Some(command) = NgCommand::from_name(command) else {
        return Err(RequestError::UnknownCommand(printable(command)));
    };
    Ok(match command {
        NgCommand::Ping => NgRequest::Ping,
        NgCommand::Statistics => NgRequest::Statistics,
        NgCommand::Offer | NgCommand::Answer => {
            let flags = fields.strings("flags")?;
            let options = MediaOptions::parse(&flags, |k| fields.get(k))?;
            let oa = OfferAnswer {
                call_id: fields.id("call-id")?,
                from_tag: fields.tag("from-tag")?,
                to_tag: fields.opt_tag("to-tag")?,
                sdp: fields
                    .get("sdp")
                    .ok_or(RequestError::Missing("sdp"))?
                    .as_bytes()
                    .ok_or(RequestError::Type {
                        key: "sdp",
                        expected: "a string",
                    })?
                    .to_vec(),
                flags,
                via_branch: fields.opt_tag("via-branch")?,
                options,
            };
            if command == NgCommand::Offer {
                NgRequest::Offer(oa)
            } else if oa.to_tag.is_none() {
                return Err(RequestError::Missing("to-tag"));
            } else {
                NgRequest::Answer(oa)
            }
        }
        NgCommand::Delete => NgRequest::Delete(Delete {
            call: fields.call_ref()?,
            delete_delay: fields.uint("delete-delay")?,
            fatal: fields.strings("flags")?.iter().any(|f| f == "fatal"),
        }),
        NgCommand::Query => NgRequest::Query(fields.call_ref()?),
        NgCommand::List => {
            let limit = match fields.uint("limit")? {
                None => DEFAULT_LIST_LIMIT,
                Some(0) => {
                    return Err(RequestError::Invalid {
                        key: "limit",
                        why: "must be at least 1",
                    })
                }
                Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            };
            NgRequest::List { limit }
        }
    })
}

/// Text for an error message: lossy UTF-8, control characters escaped, at
/// most 64 characters.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(64)
        .flat_map(char::escape_debug)
        .collect()
}

/// `a-b c_d` → `a-b-c-d`.
fn normalised(key: &[u8]) -> impl Iterator<Item = u8> + '_ {
    key.iter()
        .map(|&b| if b == b' ' || b == b'_' { b'-' } else { b })
}

struct Fields<'a>(&'a BTreeMap<Vec<u8>, Value>);

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key.as_bytes()).or_else(|| {
            self.0
                .iter()
                .find(|(k, _)| normalised(k).eq(key.bytes()))
                .map(|(_, v)| v)
        })
    }

    fn opt_text(&self, key: &'static str, max: usize) -> Result<Option<String>, RequestError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let s = v.as_str().ok_or(RequestError::Type {
            key,
            expected: "a UTF-8 string",
        })?;
        if s.len() > max {
            return Err(RequestError::Invalid {
                key,
                why: "longer than 512 bytes",
            });
        }
        if s.chars().any(char::is_control) {
            return Err(RequestError::Invalid {
                key,
                why: "contains control characters",
            });
        }
        Ok(Some(s.to_string()))
    }

    fn opt_tag(&self, key: &'static str) -> Result<Option<String>, RequestError> {
        self.opt_text(key, MAX_ID)
    }

    /// A present tag (possibly empty: RFC 2543 peers send no From-tag).
    fn tag(&self, key: &'static str) -> Result<String, RequestError> {
        self.opt_tag(key)?.ok_or(RequestError::Missing(key))
    }

    /// A present, non-empty identifier.
    fn id(&self, key: &'static str) -> Result<String, RequestError> {
        let id = self.tag(key)?;
        if id.is_empty() {
            return Err(RequestError::Invalid {
                key,
                why: "is empty",
            });
        }
        Ok(id)
    }

    fn call_ref(&self) -> Result<CallRef, RequestError> {
        Ok(CallRef {
            call_id: self.id("call-id")?,
            from_tag: self.opt_tag("from-tag")?,
            to_tag: self.opt_tag("to-tag")?,
        })
    }

    /// A non-negative integer, also accepted as a decimal string.
    fn uint(&self, key: &'static str) -> Result<Option<u64>, RequestError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let n = match v {
            Value::Int(n) => u64::try_from(*n).ok(),
            Value::Bytes(b)
                if !b.is_empty() && b.len() <= 19 && b.iter().all(u8::is_ascii_digit) =>
            {
                std::str::from_utf8(b).ok().and_then(|s| s.parse().ok())
            }
            _ => {
                return Err(RequestError::Type {
                    key,
                    expected: "an integer",
                })
            }
        };
        n.map(Some).ok_or(RequestError::Invalid {
            key,
            why: "must be a non-negative integer",
        })
    }

    /// A list of UTF-8 strings (absent: empty).
    fn strings(&self, key: &'static str) -> Result<Vec<String>, RequestError> {
        let Some(v) = self.get(key) else {
            return Ok(Vec::new());
        };
        let bad = RequestError::Type {
            key,
            expected: "a list of strings",
        };
        v.as_list()
            .ok_or(bad.clone())?
            .iter()
            .map(|item| item.as_str().map(str::to_string).ok_or(bad.clone()))
            .collect()
    }
}

/// `{result: ok}` plus `extra`.
pub fn reply_ok<'a>(extra: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    let mut v = Value::dict(extra);
    if let Value::Dict(d) = &mut v {
        d.insert(b"result".to_vec(), Value::str("ok"));
    }
    v
}

/// `{result: ok, warning: …}`.
pub fn reply_warning(warning: &str) -> Value {
    reply_ok([("warning", Value::str(warning))])
}

/// `{result: pong}`.
pub fn reply_pong() -> Value {
    Value::dict([("result", Value::str("pong"))])
}

/// `{result: error, error-reason: …}` and nothing else, as rtpengine
/// specifies.
pub fn reply_error(reason: &str) -> Value {
    Value::dict([
        ("result", Value::str("error")),
        ("error-reason", Value::str(reason)),
    ])
}

// Spelled out: the fuzz crate compiles this file by `#[path]`, where a bare
// `mod tests;` would resolve to ng/tests.rs.
#[cfg(test)]
#[path = "wire/tests.rs"]
#[expect(clippy::indexing_slicing, reason = "tests slice known fixtures")]
mod tests;
