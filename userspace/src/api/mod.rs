//! The local control socket (JSON lines): the daemon's [`server`], the
//! [`client`] the CLI commands use, and the [`wire`] format between them.

pub mod client;
pub mod server;
pub mod wire;

use std::{io, path::PathBuf};

use thiserror::Error;

use wire::RemoteKind;

/// Failures of the control socket, on either side.
#[derive(Debug, Error)]
pub enum ControlError {
    #[error("another pinhole daemon is already running (control socket {0})")]
    AlreadyRunning(PathBuf),
    #[error("{path} exists and is not a socket; refusing to replace it")]
    NotASocket { path: PathBuf },
    #[error("control socket {path}: {source}")]
    Socket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot reach the pinhole daemon at {path}: {source} ({hint})")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
        hint: &'static str,
    },
    #[error("talking to the pinhole daemon: {0}")]
    Io(#[from] io::Error),
    #[error("the daemon sent an invalid response: {0}")]
    BadResponse(#[source] serde_json::Error),
    #[error("the daemon sent an invalid response: neither result nor error")]
    EmptyResponse,
    #[error("the daemon closed the connection without answering")]
    NoResponse,
    #[error("{message}")]
    Remote { kind: RemoteKind, message: String },
}
