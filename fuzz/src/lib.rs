//! pinhole's pure modules, compiled on their own for fuzzing, and the checks
//! the fuzz targets share.
//!
//! The signaling parsers, the TCP reassembler, the ng codec and the call state
//! touch no kernel, socket or runtime, so the targets compile exactly those
//! source files (by `#[path]`) instead of depending on the `pinhole` crate,
//! whose build script builds the eBPF object and whose daemon pulls in aya,
//! tokio and hyper. The fuzzed code is the same code: if one of these modules
//! starts to need another part of the daemon, the build here fails and the
//! module list below must follow.

#[path = "../../userspace/src/signaling/mod.rs"]
pub mod signaling;

/// The call state ([`calls::Calls`]) and its adapters from parsed messages.
#[path = "../../userspace/src/calls/mod.rs"]
pub mod calls;

pub mod ng;

pub mod call_script;
pub mod check;
pub mod tcp_script;
