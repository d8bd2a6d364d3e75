//! pinhole: an eBPF/XDP firewall that drops RTP/RTCP media unless it belongs
//! to an open symmetric pinhole.
//!
//! # Layers
//!
//! Each tier imports only tiers listed above it (`cargo xtask layers`, a
//! step of `cargo xtask test`, fails on a circle between them). Data flows
//! capture → signaling → calls → controller (table) → datapath (maps).
//!
//! | tier | what |
//! |------|------|
//! | [`clock`], [`addr`] | leaves: the monotonic clock and rate-limited logging; endpoints, flow keys and [`addr::AddrError`] |
//! | [`datapath`] | the kernel side, imports only `pinhole-common` and the leaves: loading and attaching ([`datapath::load`], which owns `XdpMode`, the flow limits and port-range parsing), maps, the latch maps and their event ring ([`datapath::latch`], which sends events on a channel), pins on bpffs, interfaces that come and go ([`datapath::links`]), the embedded object, which program a link type needs ([`datapath::link_kind`]), `--media-prefix` and the ephemeral-port overlap warning ([`datapath::media_scope`]), their errors |
//! | [`capture`] | NFQUEUE and the iptables rules that feed it; L3/L4 packet decoding |
//! | [`metrics`] | the Prometheus registry; takes the queue's numbers ([`capture::nfqueue::QueueStats`]) from capture |
//! | [`signaling`] | pure SIP, SDP and RTSP parsers and TCP reassembly |
//! | [`calls`] | call and session state machines → pinhole intents (pure, and compiled alone by the fuzz crate) |
//! | [`feed`] | packet → TCP reassembly → parser → calls: the signaling pipeline the controller runs |
//! | [`ng`] | rtpengine's ng protocol: bencode, the reply cache, the wire format, the service |
//! | [`controller`] | the one task that owns the pinhole table ([`controller::table`]), the flow map and the call state; its reports, the state file, and the controller's side of latching |
//! | [`ha`] | HA through Redis: the schema (untrusted peers' data checked), the diffs, the replicator task that publishes the table's changes and installs peers' pinholes as foreign ones |
//! | [`api`] | the local control socket: server, client and the JSON-lines wire format |
//! | [`config`] | `pinhole run` settings: the TOML file with spans, flags, limits |
//! | [`app`] | the binary: command line, subcommands (`detach` included), output, the daemon's wiring, exit codes |
//!
//! `main.rs` only parses arguments, starts logging and the runtime, and
//! dispatches to [`app`].
pub mod addr;
pub mod api;
pub mod app;
pub mod calls;
pub mod capture;
pub mod clock;
pub mod config;
pub mod controller;
pub mod datapath;
pub mod feed;
pub mod ha;
pub mod metrics;
pub mod ng;
pub mod signaling;
