//! pinhole: an eBPF/XDP firewall that drops RTP/RTCP media unless it belongs
//! to an open symmetric pinhole.
//!
//! - [`addr`]: endpoints and their flow keys;
//! - [`table`]: the pure pinhole table (refcounted flows, capacity, expiry);
//! - [`controller`]: the task that owns the table, the flow map and the call
//!   state;
//! - [`capture`]: inline signaling capture (iptables NFQUEUE rules, queue
//!   reader, packet decoding, the signaling feed);
//! - [`calls`] and [`signaling`]: call state and signaling parsers;
//! - [`control`] and [`proto`]: the JSON-lines control socket;
//! - [`loader`] and [`maps`]: the kernel side; [`link_kind`]: which program
//!   an interface's link type needs; [`media_scope`]: `--media-prefix` and
//!   the ephemeral-port overlap warning; [`links`]: interfaces that
//!   go down, go away and come back;
//! - [`cli`], [`commands`], [`daemon`], [`output`]: the `pinhole` binary.
pub mod addr;
pub mod calls;
pub mod capture;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod control;
pub mod controller;
pub mod daemon;
pub mod ebpf;
pub mod error;
pub mod latch;
pub mod link_kind;
pub mod links;
pub mod loader;
pub mod maps;
pub mod media_scope;
pub mod metrics;
pub mod ng;
pub mod output;
pub mod pin;
pub mod proto;
pub mod signaling;
pub mod state;
pub mod table;
