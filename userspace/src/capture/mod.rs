//! Inline signaling capture: iptables rules queue SIP and RTSP packets
//! crossing the attached interfaces to an NFQUEUE; a reader thread decodes
//! each packet and holds it until the controller has opened the pinholes it
//! justifies, so media announced by a message is allowed before the message
//! reaches its peer.
//!
//! - [`packet`]: L3 packet → [`SignalingPacket`] (etherparse);
//! - [`crate::feed`] (its own tier, below calls): packets → SIP/RTSP
//!   messages → call state → intents (pure);
//! - [`rules`]: the iptables/ip6tables rules, removed on drop;
//! - [`nat`]: NAT on the router itself: the `--nat` view of signaling and
//!   the detection of NAT rules at start;
//! - [`nfqueue`]: the queue reader thread;
//! - [`latency`]: the setup-latency histogram.

pub mod latency;
pub mod nat;
pub mod nfqueue;
pub mod packet;
pub mod rules;

use std::io;

use thiserror::Error;

pub use packet::{PacketError, SignalingPacket, TcpInfo, Transport};

/// Failures setting up the capture.
#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("{program} not found: inline signaling needs iptables/ip6tables (Debian package `iptables`), or run with --signaling off")]
    IptablesMissing { program: &'static str },
    #[error("`{program} {args}` failed: {message}")]
    Iptables {
        program: &'static str,
        args: String,
        message: String,
    },
    #[error("the NFQUEUE target is unavailable to {program} (kernel without xt_NFQUEUE/nft_compat?): {message}; run with --signaling off")]
    NfqueueUnavailable {
        program: &'static str,
        message: String,
    },
    #[error(
        "permission denied opening the signaling queue: pinhole run needs root (CAP_NET_ADMIN)"
    )]
    QueuePermission,
    #[error("NFQUEUE {queue_num} is already bound by another process; pick another --queue-num")]
    QueueBusy { queue_num: u16 },
    #[error("signaling queue {queue_num}: {what}: {source}")]
    Queue {
        queue_num: u16,
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The running capture: the reader thread and the rules feeding it. Dropping
/// it removes the rules (the thread then idles until the process ends).
#[derive(Debug)]
pub struct Capture {
    // Drop order: rules first, so nothing more is queued.
    _rules: rules::Rules,
    reader: nfqueue::Reader,
}

impl Capture {
    /// Binds the queue, then (after removing stale rules of a crashed run)
    /// installs the rules. The reader reports to `health` and restarts
    /// under `policy`.
    pub fn start(
        spec: &rules::RuleSpec,
        queue: nfqueue::QueueOptions,
        sink: impl nfqueue::Sink,
        health: std::sync::Arc<nfqueue::Health>,
        policy: nfqueue::RestartPolicy,
    ) -> Result<Capture, CaptureError> {
        let reader = nfqueue::start(queue, sink, health, policy)?;
        let rules = rules::Rules::install(spec, &[])?;
        Ok(Capture {
            _rules: rules,
            reader,
        })
    }

    /// See [`nfqueue::Reader::failed`].
    pub fn failed(&mut self) -> Option<tokio::sync::oneshot::Receiver<String>> {
        self.reader.failed()
    }
}
