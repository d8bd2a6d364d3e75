//! What the controller reports: the results of the control socket's
//! requests (see [`crate::api::wire`] for the framing). The `list`, `stats`
//! and `calls` results are exactly what `--json` prints.

use std::{collections::BTreeMap, net::SocketAddr};

use serde::{Deserialize, Serialize};

use crate::{addr::Endpoint, controller::table::OpenOutcome};
pub use crate::{capture::nfqueue::QueueStats, datapath::links::InterfaceStatus};

/// Longest owner tag accepted.
pub const MAX_OWNER_LEN: usize = 256;

/// Parameters of an open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenParams {
    pub a: Endpoint,
    pub b: Endpoint,
    #[serde(default)]
    pub rtcp: bool,
    /// Idle timeout in seconds (0 = never); the daemon's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_secs: Option<u64>,
    /// Who owns the pinhole (e.g. a call id). The CLI sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// Result of `open`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenReply {
    pub id: u64,
    pub outcome: OpenOutcome,
    pub a: Endpoint,
    pub b: Endpoint,
    pub rtcp: bool,
    pub idle_timeout_secs: u64,
    /// Flows the pinhole uses.
    pub flows: usize,
}

/// Result of `close`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseReply {
    pub id: u64,
    pub a: Endpoint,
    pub b: Endpoint,
    pub rtcp: bool,
    /// Map entries removed (flows shared with other pinholes stay).
    pub flows_removed: usize,
}

/// Result of `list` (and `list --json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListReply {
    pub pinholes: Vec<PinholeInfo>,
}

/// One pinhole in `list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinholeInfo {
    pub id: u64,
    pub a: Endpoint,
    pub b: Endpoint,
    pub rtcp: bool,
    pub idle_timeout_secs: u64,
    pub idle_secs: u64,
    pub age_secs: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Who holds it: `manual`, `sip:<call-id>;from-tag=…` or
    /// `rtsp:<server>;session=…`. The operator first when it holds it too;
    /// every holder is in `owners`.
    #[serde(default = "manual")]
    pub owner: String,
    #[serde(default)]
    pub owners: Vec<String>,
    pub flows: Vec<FlowInfo>,
}

fn manual() -> String {
    crate::controller::table::MANUAL_OWNER.to_string()
}

/// One flow of a pinhole in `list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowInfo {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub packets: u64,
    pub bytes: u64,
}

/// Result of `calls` (and `calls --json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallsReply {
    pub calls: Vec<CallEntry>,
}

/// One call in `calls`: a SIP call followed from the wire (`sip`), one a
/// proxy drives over the ng protocol (`ng`), or an RTSP session (`rtsp`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEntry {
    /// `sip`, `ng` or `rtsp`.
    pub kind: String,
    /// The SIP Call-ID, or the RTSP Session id.
    pub call_id: String,
    /// SIP: the caller's From-tag; RTSP: the server's address.
    pub tag: String,
    /// The owner tag its pinholes carry in `list`.
    pub owner: String,
    /// SIP: `calling`, `confirmed` or `ending`; RTSP: `active`.
    pub state: String,
    /// Seconds since the call (or the session's first pinhole) started.
    pub age_secs: u64,
    /// Seconds since its last signaling message or API request (SIP, ng).
    #[serde(default)]
    pub last_signal_secs: Option<u64>,
    /// Over all its streams, both directions.
    pub packets: u64,
    pub bytes: u64,
    /// The open media pairs.
    pub streams: Vec<StreamEntry>,
}

/// One open media pair of a call: its tuple and its traffic each way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEntry {
    /// SIP: index of the `m=` line, from 0; RTSP: order.
    pub index: usize,
    /// `rtp`, `rtcp`, or `media` (RTSP, which does not say).
    #[serde(rename = "type")]
    pub kind: String,
    /// SIP: the callee's tag of the dialog.
    #[serde(default)]
    pub dialog: Option<String>,
    /// The caller's (client's) end and the callee's (server's) end.
    pub a: SocketAddr,
    pub b: SocketAddr,
    pub a_to_b: CounterInfo,
    pub b_to_a: CounterInfo,
    pub packets: u64,
    pub bytes: u64,
    /// `open`, `hold` (open, on the hold timeout) or `expired` (idled out
    /// of the table; the next offer/answer naming it opens it again).
    #[serde(default = "open_state")]
    pub state: String,
}

fn open_state() -> String {
    "open".into()
}

/// Result of `stats` (and `stats --json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsReply {
    /// Per verdict reason (`Reason::name()`), summed over CPUs.
    pub counters: BTreeMap<String, CounterInfo>,
    pub flows: FlowUsage,
    /// Open pinholes.
    pub pinholes: usize,
    /// Opens refused because the flow table was full.
    pub rejected_full: u64,
    /// Pinholes closed by the idle timeout.
    pub expired: u64,
    /// Signaling observed inline (zeros with `--signaling off`).
    #[serde(default)]
    pub signaling: SignalingStats,
    /// The configured interfaces and whether the program is attached to
    /// them (interfaces can go away and come back while the daemon runs).
    #[serde(default)]
    pub interfaces: Vec<InterfaceStatus>,
    /// The longest the controller task spent on one step (a command, a
    /// tick, call timers, a state snapshot, an expiry step) since start, in
    /// µs: how long signaling can wait behind other work.
    #[serde(default)]
    pub longest_step_us: u64,
    /// HA replication (`--ha-redis`), absent without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ha: Option<crate::controller::foreign::HaStatus>,
}

/// The `signaling` object of `stats`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SignalingStats {
    /// `inline` or `off`.
    #[serde(default)]
    pub mode: String,
    /// Packets taken off the queue.
    #[serde(default)]
    pub packets: u64,
    pub sip_messages: u64,
    pub rtsp_messages: u64,
    /// Undecodable packets, unparsable messages, broken TCP streams.
    pub parse_errors: u64,
    /// SIP calls and RTSP sessions tracked now.
    pub calls_active: u64,
    /// SIP calls and RTSP sessions started since start.
    pub calls_opened: u64,
    /// SIP calls and RTSP sessions ended since start.
    pub calls_closed: u64,
    pub refused: RefusedStats,
    /// Signaling packet received from the queue → its pinholes in the map.
    pub setup_latency_us: LatencyStats,
    /// TCP signaling streams followed now.
    #[serde(default)]
    pub tcp_streams: u64,
    /// Everything the call layer counts (refusals and closes by cause, …).
    #[serde(default)]
    pub detail: serde_json::Value,
    /// The signaling queue, with inline signaling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueStats>,
}

/// Pinholes and calls refused, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedStats {
    /// Signaling neither from nor to a `--trusted-signaling` network.
    pub untrusted: u64,
    /// Media address not the signaling peer's and not a `--media-relay`.
    pub third_party_media: u64,
    /// `--max-pinholes-per-call` reached.
    pub call_cap: u64,
    /// `--max-calls-per-peer` reached.
    pub peer_cap: u64,
    /// The flow map was full; nothing was evicted.
    pub map_full: u64,
}

/// Quantiles in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    #[serde(default)]
    pub max: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterInfo {
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowUsage {
    pub used: usize,
    pub capacity: usize,
}
