//! The control protocol: one JSON object per line each way.
//!
//! Request: `{"cmd":"open","a":"192.0.2.1:4000","b":"198.51.100.2:10000","rtcp":false,"idle_secs":30}`,
//! `{"cmd":"close","a":…,"b":…}`, `{"cmd":"list"}`, `{"cmd":"stats"}`,
//! `{"cmd":"calls"}`, `{"cmd":"ha_promote"}`.
//! Response: `{"ok":true,"result":{…}}` or
//! `{"ok":false,"error":{"kind":"bad_request"|"runtime","message":"…"}}`.
//! The results are the controller's reports ([`crate::controller::report`]).

use std::io;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

use crate::{addr::Endpoint, controller::report::OpenParams};

/// Longest request line the daemon reads, newline included.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;
/// A request to the daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Open(OpenParams),
    Close {
        a: Endpoint,
        b: Endpoint,
    },
    List,
    Stats,
    Calls,
    /// `pinhole ha promote`: adopt every foreign pinhole now.
    HaPromote,
}

/// The daemon's answer to one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub kind: RemoteKind,
    pub message: String,
}

impl Response {
    pub fn success<T: Serialize>(result: &T) -> Response {
        match serde_json::to_value(result) {
            Ok(v) => Response {
                ok: true,
                result: Some(v),
                error: None,
            },
            Err(e) => Response::failure(RemoteKind::Runtime, format!("encoding the reply: {e}")),
        }
    }

    pub fn failure(kind: RemoteKind, message: impl Into<String>) -> Response {
        Response {
            ok: false,
            result: None,
            error: Some(ErrorBody {
                kind,
                message: message.into(),
            }),
        }
    }
}

/// How the daemon classified a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteKind {
    /// The request was invalid (exit 2).
    BadRequest,
    /// The request was valid but could not be carried out (exit 1).
    Runtime,
}

/// Reads a line of at most `max` bytes (newline included). `Ok(None)` at end
/// of stream; an error when the line is longer.
pub(super) async fn read_line<R: AsyncRead + Unpin>(
    rd: &mut BufReader<R>,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<()>> {
    buf.clear();
    let n = rd.take(max as u64).read_until(b'\n', buf).await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && n >= max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line longer than {max} bytes"),
        ));
    }
    Ok(Some(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::report::ListReply;

    #[test]
    fn requests_parse_from_the_documented_json() {
        let table: &[(&str, Option<Request>)] = &[
            (r#"{"cmd":"list"}"#, Some(Request::List)),
            (r#"{"cmd":"stats","extra":1}"#, Some(Request::Stats)),
            (r#"{"cmd":"calls"}"#, Some(Request::Calls)),
            (
                r#"{"cmd":"open","a":"192.0.2.1:4000","b":"198.51.100.2:10000"}"#,
                Some(Request::Open(OpenParams {
                    a: "192.0.2.1:4000".parse().unwrap(),
                    b: "198.51.100.2:10000".parse().unwrap(),
                    rtcp: false,
                    idle_secs: None,
                    owner: None,
                })),
            ),
            (
                r#"{"cmd":"close","a":"[2001:db8::1]:5","b":"[2001:db8::2]:6"}"#,
                Some(Request::Close {
                    a: "[2001:db8::1]:5".parse().unwrap(),
                    b: "[2001:db8::2]:6".parse().unwrap(),
                }),
            ),
            (
                r#"{"cmd":"open","a":"192.0.2.1:0","b":"198.51.100.2:1"}"#,
                None,
            ),
            (r#"{"cmd":"open","a":"192.0.2.1:1"}"#, None),
            (
                r#"{"cmd":"open","a":"192.0.2.1:1","b":"198.51.100.2:1","idle_secs":-1}"#,
                None,
            ),
            (r#"{"cmd":"reboot"}"#, None),
            (r#"{"list":true}"#, None),
            (r#"{"cmd":"list"} trailing"#, None),
            ("null", None),
            ("", None),
            ("{", None),
        ];
        for (json, want) in table {
            let got = serde_json::from_str::<Request>(json).ok();
            assert_eq!(&got, want, "{json}");
        }
    }

    #[test]
    fn responses_round_trip() {
        let ok = Response::success(&ListReply::default());
        let text = serde_json::to_string(&ok).unwrap();
        assert_eq!(text, r#"{"ok":true,"result":{"pinholes":[]}}"#);
        let err = Response::failure(RemoteKind::BadRequest, "nope");
        let text = serde_json::to_string(&err).unwrap();
        assert_eq!(
            text,
            r#"{"ok":false,"error":{"kind":"bad_request","message":"nope"}}"#
        );
        assert_eq!(serde_json::from_str::<Response>(&text).unwrap(), err);
    }
}
