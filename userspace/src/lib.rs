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
//! - [`loader`] and [`maps`]: the kernel side; [`links`]: interfaces that
//!   go down, go away and come back;
//! - [`cli`], [`commands`], [`daemon`], [`output`]: the `pinhole` binary.
pub mod addr;
pub mod api;
pub mod app;
pub mod calls;
pub mod capture;
pub mod clock;
pub mod config;
pub mod controller;
pub mod datapath;
pub mod metrics;
pub mod ng;
pub mod signaling;
