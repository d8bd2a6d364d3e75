//! Integration-test harness for pinhole.
//!
//! * [`Netns`]: a throw-away network namespace (`ph-<pid>-<n>`) with helpers to
//!   run commands in it, wire veth pairs straight between namespaces (nothing
//!   appears in the root namespace), assign addresses and routes, and open
//!   sockets inside it from the test process.
//! * [`Topology`]: the standard outside ↔ router ↔ inside setup, IPv4 and IPv6.
//! * [`Daemon`]: `pinhole run …` inside a namespace, ready once its control
//!   socket answers, stopped with SIGTERM on drop; plus the CLI and its JSON.
//! * [`traffic`]: tagged UDP datagrams, exact receive counts and end-of-stream
//!   markers, so "nothing arrived" is checked without sleeping.
//!
//! Everything needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF) and fails with
//! a clear message without it. Every wait is a bounded poll.

pub mod bpffs;
#[cfg(test)]
mod docs_paths;
pub mod flood;
pub mod frames;
pub mod ha_lab;
pub mod kamailio;
pub mod xdp;

mod daemon;
pub mod lab;
mod netns;
pub mod rtsp_peer;
pub mod sip_craft;
pub mod sipp;
mod topology;
pub mod traffic;
pub mod tun;

use std::{
    io,
    path::PathBuf,
    process::ExitStatus,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

pub use daemon::{
    pinhole_bin, pinhole_command, run_bounded, Call, CallList, CallStream, CliOutput, CounterValue,
    Daemon, Flow, FlowUsage, InterfaceState, LatencySummary, Pinhole, PinholeList, SignalingStats,
    Stats,
};
pub use netns::Netns;
pub use topology::{Family, Topology, XdpMode};

/// How often bounded waits poll.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Errors of the harness.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start `{cmd}`: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: io::Error,
    },
    #[error("`{cmd}` failed ({status}):\n{stderr}")]
    Command {
        cmd: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("`{cmd}` printed invalid JSON ({source}):\n{text}")]
    Json {
        cmd: String,
        #[source]
        source: serde_json::Error,
        text: String,
    },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("{0}")]
    Setup(String),
}

/// Result of the harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

/// A number unique within this process, for names of namespaces and directories.
pub fn unique_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Polls `f` every [`POLL_INTERVAL`] until it returns `Some`, for at most
/// `timeout`. `what` names the condition in the timeout error.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: what.to_owned(),
                after: timeout,
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Fails unless the process runs as root: the harness creates namespaces,
/// veths and loads XDP programs.
pub fn require_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::Setup(
            "these tests need root (network namespaces, veth, XDP): run them as root, \
             e.g. via `cargo xtask test`"
                .into(),
        ));
    }
    Ok(())
}

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `pinhole-test-<pid>-<n>`, readable by everyone (a test may run
    /// the binary as an unprivileged user from it).
    pub fn new() -> Result<TempDir> {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!(
            "pinhole-test-{}-{}",
            std::process::id(),
            unique_id()
        ));
        std::fs::create_dir_all(&path)
            .map_err(Error::io(format!("creating {}", path.display())))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(Error::io(format!("chmod {}", path.display())))?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
