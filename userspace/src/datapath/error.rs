//! Errors of the kernel side: loading and attaching the program, the flow
//! and latch maps, and datapath settings the program cannot take.

use std::{io, path::PathBuf};

use thiserror::Error;

/// A datapath setting the XDP program cannot take: bad input (exit 2).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SetupError {
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
    #[error("too many IPv{family} --media-prefix networks ({given}); at most {max}")]
    TooManyPrefixes {
        family: u8,
        given: usize,
        max: usize,
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
    PinDir(#[from] super::pin::PinDirError),
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
    #[error("setting the interfaces forwarded media may leave by (--forward-iface): {0}")]
    ForwardIfaces(String),
    #[error("reading the eBPF object's maps: {0}")]
    ObjectMaps(String),
}
