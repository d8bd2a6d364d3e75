//! Error types of the library. Each error says what was wrong in words a user
//! can act on; the binary prints it as one `error: …` line.
//!
//! Errors fall in two classes, which decide the exit code (see [`exit_code`]):
//! *bad input* (the request itself is invalid: a malformed endpoint, an
//! impossible option) exits 2, everything else (kernel, daemon, I/O) exits 1.

use std::{io, net::SocketAddr, path::PathBuf};

use thiserror::Error;

/// Exit code for bad input or usage.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code for runtime failures.
pub const EXIT_RUNTIME: i32 = 1;

/// A malformed or unusable endpoint, or an impossible pair of endpoints.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AddrError {
    #[error("empty endpoint; expected ADDR:PORT or [IPv6]:PORT")]
    Empty,
    #[error("`{0}` has no port; expected ADDR:PORT or [IPv6]:PORT")]
    MissingPort(String),
    #[error("IPv6 address in `{0}` must be written in brackets: [ADDR]:PORT")]
    UnbracketedV6(String),
    #[error("invalid IP address `{0}`")]
    BadIp(String),
    #[error("invalid port `{0}`; expected a number 1-65535")]
    BadPort(String),
    #[error("port {0} out of range (1-65535)")]
    PortRange(String),
    #[error("{0} is not a unicast address")]
    NotUnicast(std::net::IpAddr),
    #[error("{0} is an IPv4-mapped IPv6 address; write it in IPv4 form")]
    V4Mapped(std::net::Ipv6Addr),
    #[error("IPv6 zone ids are not supported (`{0}`)")]
    ZoneId(String),
    #[error("A ({a}) and B ({b}) mix IPv4 and IPv6; a pinhole joins two endpoints of one family")]
    FamilyMix { a: SocketAddr, b: SocketAddr },
    #[error("A and B are the same endpoint ({0})")]
    SameEndpoint(SocketAddr),
    #[error("--with-rtcp needs both ports below 65535 (RTCP uses port+1), got {0}")]
    RtcpPort(SocketAddr),
}

/// An invalid `pinhole run` option.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid port range `{0}`; expected LO-HI with 1 <= LO <= HI <= 65535")]
    BadRange(String),
    #[error("too many media port ranges ({given}); at most {max}")]
    TooManyRanges { given: usize, max: usize },
    #[error("media port ranges {a} and {b} overlap")]
    Overlap { a: String, b: String },
    #[error("no --iface given")]
    NoInterface,
    #[error("interface `{0}` given twice")]
    DuplicateInterface(String),
    #[error("invalid interface name `{0}`")]
    BadInterfaceName(String),
    #[error("--max-pinholes {given} out of range ({min}-{max} flows)")]
    Capacity { given: u64, min: u64, max: u64 },
    #[error("port {0} is both a --sip-ports and an --rtsp-ports port")]
    SignalingPortTwice(u16),
    #[error(
        "signaling port {port} lies in media port range {range}; XDP would drop its UDP packets"
    )]
    SignalingPortInMedia { port: u16, range: String },
    /// The configuration file or the flags, with every problem found.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("too many IPv{family} --media-prefix networks ({given}); at most {max}")]
    TooManyPrefixes {
        family: u8,
        given: usize,
        max: usize,
    },
}

/// Refusals of the pinhole table. None of them changes the table.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TableError {
    #[error(
        "flow table full: the pinhole needs {needed} new flows but only {free} of {capacity} \
         are free (close pinholes or raise --max-pinholes)"
    )]
    Full {
        needed: usize,
        free: usize,
        capacity: usize,
    },
    #[error("no pinhole {a} <-> {b}")]
    NotFound { a: SocketAddr, b: SocketAddr },
    #[error("the open plan is stale: the table changed since it was made")]
    StalePlan,
    #[error("pinhole {id} ({a} <-> {b}) cannot be restored: {why}")]
    Restore {
        id: u64,
        a: SocketAddr,
        b: SocketAddr,
        why: String,
    },
}

/// A failure of the kernel flow store (the BPF map or a fake of it).
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("the flow map is full (E2BIG)")]
    MapFull,
    #[error("the latch map is full (E2BIG): too many half-open pinholes waiting")]
    LatchMapFull,
    #[error("flow map {op} failed: {source}")]
    Map {
        op: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("flow store {op} failed: {message}")]
    Other { op: &'static str, message: String },
}

/// Failures while loading and attaching the XDP program.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("no such interface: {0}")]
    NoSuchInterface(String),
    #[error("permission denied: pinhole run needs root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON)")]
    PermissionDenied,
    #[error("interface {0} already has an XDP program attached (is another pinhole running?)")]
    AlreadyAttached(String),
    #[error("interface {0} does not support native XDP; retry with --xdp-mode skb")]
    NativeUnsupported(String),
    #[error(
        "interface {0} has no link-layer header (tun, WireGuard, PPP); such links have no \
         native XDP (the kernel refuses it on tun, WireGuard and PPP); use --xdp-mode skb"
    )]
    NativeOnL3(String),
    #[error(
        "interface {iface} has link type {arphrd}, which pinhole cannot filter; it handles \
         Ethernet (ARPHRD 1, PPPoE sessions included) and links without a link-layer header \
         (tun/WireGuard 65534, PPP 512)"
    )]
    UnsupportedLink { iface: String, arphrd: u16 },
    #[error("cannot tell the link type of interface {iface}: {message}")]
    LinkType { iface: String, message: String },
    #[error("attaching to interface {iface} failed: {source}")]
    Attach {
        iface: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("loading the eBPF object failed: {0}")]
    Object(#[source] aya::EbpfError),
    #[error(
        "the kernel verifier rejected the XDP program ({errno}); the verifier log was written above"
    )]
    Verifier { errno: io::Error },
    #[error("loading the XDP program failed: {0}")]
    Program(#[source] aya::programs::ProgramError),
    #[error("the eBPF object has no {what} `{name}`")]
    Missing {
        what: &'static str,
        name: &'static str,
    },
    #[error("map `{name}` has an unexpected type: {source}")]
    MapType {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error(transparent)]
    PinDir(#[from] crate::pin::PinDirError),
    #[error("pinning {what} at {path}: {message}")]
    Pin {
        what: String,
        path: PathBuf,
        message: String,
    },
    #[error(
        "taking over the pinned link {path}: {message} (the old filter stays attached;          `pinhole detach` removes it)"
    )]
    Adopt { path: PathBuf, message: String },
    #[error("reading the eBPF object's maps: {0}")]
    ObjectMaps(String),
}

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
    BadResponse(String),
    #[error("the daemon closed the connection without answering")]
    NoResponse,
    #[error("{message}")]
    Remote { kind: RemoteKind, message: String },
}

/// Why the controller refused or failed a command.
#[derive(Debug, Error)]
pub enum CommandError {
    #[error(transparent)]
    Addr(#[from] AddrError),
    #[error("owner tag longer than {max} bytes")]
    OwnerTooLong { max: usize },
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the controller has stopped")]
    Stopped,
}

impl CommandError {
    /// How the daemon reports it to the client.
    pub fn kind(&self) -> RemoteKind {
        match self {
            CommandError::Addr(_) | CommandError::OwnerTooLong { .. } => RemoteKind::BadRequest,
            CommandError::Table(_) | CommandError::Store(_) | CommandError::Stopped => {
                RemoteKind::Runtime
            }
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

/// The exit code for an error: 2 when it (or one of its causes) is bad input,
/// 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if cause.is::<AddrError>() || cause.is::<ConfigError>() {
            return EXIT_BAD_INPUT;
        }
        if let Some(ControlError::Remote { kind, .. }) = cause.downcast_ref::<ControlError>() {
            return match kind {
                RemoteKind::BadRequest => EXIT_BAD_INPUT,
                RemoteKind::Runtime => EXIT_RUNTIME,
            };
        }
    }
    EXIT_RUNTIME
}

/// Renders an error and its causes on one line (`outer: cause: cause`),
/// skipping causes whose text the outer message already contains.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_error_class() {
        let bad: anyhow::Error = AddrError::Empty.into();
        assert_eq!(exit_code(&bad), EXIT_BAD_INPUT);
        let wrapped = anyhow::Error::from(ConfigError::NoInterface).context("parsing options");
        assert_eq!(exit_code(&wrapped), EXIT_BAD_INPUT);
        let remote_bad: anyhow::Error = ControlError::Remote {
            kind: RemoteKind::BadRequest,
            message: "x".into(),
        }
        .into();
        assert_eq!(exit_code(&remote_bad), EXIT_BAD_INPUT);
        let remote_rt: anyhow::Error = ControlError::Remote {
            kind: RemoteKind::Runtime,
            message: "x".into(),
        }
        .into();
        assert_eq!(exit_code(&remote_rt), EXIT_RUNTIME);
        let rt: anyhow::Error = LoadError::PermissionDenied.into();
        assert_eq!(exit_code(&rt), EXIT_RUNTIME);
    }

    #[test]
    fn one_line_joins_causes_and_flattens_newlines() {
        let inner = io::Error::other("line one\nline two");
        let err = anyhow::Error::from(inner).context("outer");
        assert_eq!(one_line(&err), "outer: line one line two");
        // A cause already quoted by its parent is not repeated.
        let err = anyhow::Error::from(ControlError::Connect {
            path: "/x".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
            hint: "h",
        });
        let line = one_line(&err);
        assert_eq!(line.matches("not found").count(), 1, "{line}");
    }
}
