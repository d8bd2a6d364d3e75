//! The client side of the control socket, what the CLI subcommands use.

use std::{io, path::Path, time::Duration};

use serde::de::DeserializeOwned;
use tokio::{
    io::{AsyncWriteExt, BufReader},
    net::UnixStream,
};

use super::{
    wire::{read_line, Request, Response},
    ControlError,
};

/// How long a client waits for the daemon.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest response line the client accepts.
const MAX_RESPONSE_LINE: usize = 1 << 30;

/// Sends one request to the daemon at `path` and decodes its result.
pub async fn request<T: DeserializeOwned>(path: &Path, req: &Request) -> Result<T, ControlError> {
    match tokio::time::timeout(CLIENT_TIMEOUT, request_inner(path, req)).await {
        Ok(r) => r,
        Err(_) => Err(ControlError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no answer from the daemon at {} within {}s",
                path.display(),
                CLIENT_TIMEOUT.as_secs()
            ),
        ))),
    }
}

async fn request_inner<T: DeserializeOwned>(path: &Path, req: &Request) -> Result<T, ControlError> {
    let stream = UnixStream::connect(path).await.map_err(|source| {
        let hint = match source.kind() {
            io::ErrorKind::PermissionDenied => "the control socket is root-only",
            _ => "is `pinhole run` running?",
        };
        ControlError::Connect {
            path: path.into(),
            source,
            hint,
        }
    })?;
    let (rd, mut wr) = stream.into_split();
    let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
    line.push(b'\n');
    wr.write_all(&line).await?;
    wr.shutdown().await?;
    let mut rd = BufReader::new(rd);
    let mut buf = Vec::new();
    read_line(&mut rd, &mut buf, MAX_RESPONSE_LINE)
        .await?
        .ok_or(ControlError::NoResponse)?;
    decode_response(&buf)
}

/// Turns a response line into the result or the daemon's error.
pub fn decode_response<T: DeserializeOwned>(line: &[u8]) -> Result<T, ControlError> {
    let resp: Response = serde_json::from_slice(line).map_err(ControlError::BadResponse)?;
    match (resp.ok, resp.result, resp.error) {
        (true, Some(v), _) => serde_json::from_value(v).map_err(ControlError::BadResponse),
        (false, _, Some(err)) => Err(ControlError::Remote {
            kind: err.kind,
            message: err.message,
        }),
        _ => Err(ControlError::EmptyResponse),
    }
}
