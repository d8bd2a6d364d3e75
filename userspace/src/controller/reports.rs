//! Big reports (`list`, `calls`) built off the controller task.
//!
//! With a million pinholes, reading each flow's counters with one
//! BPF_MAP_LOOKUP_ELEM and building the reply took seconds, and every
//! queued signaling packet waited for it. Now the controller only takes what
//! it alone can give, at one instant:
//! - the table as a persistent snapshot ([`PinholeTable::snapshot`], O(1));
//! - for `calls`, the SIP calls it tracks and where latching moved their
//!   flows (O(calls), no map access);
//! - a [`StatsReader`] on the flow maps (two duplicated descriptors);
//!
//! and a blocking task reads the maps in batches
//! ([`crate::datapath::maps::batch`]) and builds the reply. The pinholes and owners
//! are those of the snapshot's instant; the counters are read just after it
//! (a flow closed in between shows zero traffic, as a flow missing from the
//! map always did).
//!
//! So the controller's longest step for a report is the calls copy, bounded
//! by the tracked calls (`--max-calls`), not by the table size.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
};

use pinhole_common::{FlowKey, FlowStats};

use super::table::Pinholes;
use super::{
    core::{owner_tag, Core, Source},
    handle::Reply,
    report::{CallEntry, CallsReply, CounterInfo, FlowInfo, ListReply, PinholeInfo, StreamEntry},
    table::Pinhole,
    CommandError, FlowStore, NS_PER_SEC, RTSP_OWNER_PREFIX,
};
use crate::{
    addr::{flow_endpoints, flow_key, Endpoint},
    calls::{Calls, Owner},
    datapath::error::StoreError,
    ng::{call_stats, Totals},
};

/// Every flow's counters as read at one moment.
pub type FlowStatsMap = HashMap<FlowKey, FlowStats>;

/// Reads every flow's counters once, on the thread of a report.
pub trait StatsReader: Send + 'static {
    fn read_all(&self) -> Result<FlowStatsMap, StoreError>;
}

impl StatsReader for crate::datapath::maps::FlowReader {
    fn read_all(&self) -> Result<FlowStatsMap, StoreError> {
        crate::datapath::maps::FlowReader::read_all(self)
    }
}

/// The counters a fake store held when the report was asked for.
pub struct CopiedStats(pub FlowStatsMap);

impl StatsReader for CopiedStats {
    fn read_all(&self) -> Result<FlowStatsMap, StoreError> {
        Ok(self.0.clone())
    }
}

/// What `list` needs, taken on the controller task.
pub struct ListJob {
    pinholes: Pinholes,
    reader: Box<dyn StatsReader>,
    now: u64,
}

impl ListJob {
    /// The reply: the snapshot's pinholes, oldest id first, with their
    /// flows' counters.
    pub fn build(self) -> Result<ListReply, CommandError> {
        let stats = self.reader.read_all()?;
        let pinholes = self
            .pinholes
            .values()
            .map(|p| describe(p, &stats, self.now))
            .collect();
        Ok(ListReply { pinholes })
    }
}

/// One pinhole of `list`, with its flows' counters from `stats`.
pub fn describe(p: &Pinhole, stats: &FlowStatsMap, now: u64) -> PinholeInfo {
    let mut flows = Vec::with_capacity(p.flows.len());
    let mut active = p.active_ns;
    let (mut packets, mut bytes) = (0u64, 0u64);
    for k in &p.flows {
        let st = stats.get(k).copied().unwrap_or_default();
        if st.last_seen_ns != 0 {
            active = active.max(st.last_seen_ns);
        }
        packets = packets.wrapping_add(st.packets);
        bytes = bytes.wrapping_add(st.bytes);
        let (src, dst) = flow_endpoints(k).expect("the table only holds valid keys");
        flows.push(FlowInfo {
            src,
            dst,
            packets: st.packets,
            bytes: st.bytes,
        });
    }
    let owners: Vec<String> = p.owner_names().map(str::to_string).collect();
    PinholeInfo {
        id: p.id.0,
        a: p.pair.a(),
        b: p.pair.b(),
        rtcp: p.pair.rtcp(),
        idle_timeout_secs: p.idle_timeout_secs,
        idle_secs: now.saturating_sub(active) / NS_PER_SEC,
        age_secs: now.saturating_sub(p.created_ns) / NS_PER_SEC,
        packets,
        bytes,
        owner: owners.first().cloned().unwrap_or_default(),
        owners,
        flows,
    }
}

/// A SIP or ng call as `calls` shows it.
struct SipCall {
    info: crate::calls::CallInfo,
    source: Source,
    /// Where latching moved the flows of its signaled pairs.
    moved: HashMap<(SocketAddr, SocketAddr), (SocketAddr, SocketAddr)>,
}

/// What `calls` needs, taken on the controller task.
pub struct CallsJob {
    sip: Vec<SipCall>,
    pinholes: Pinholes,
    reader: Box<dyn StatsReader>,
    now: u64,
}

impl CallsJob {
    pub fn build(self) -> Result<CallsReply, CommandError> {
        let stats = self.reader.read_all()?;
        let totals = |src: SocketAddr, dst: SocketAddr| -> Totals {
            let (Ok(s), Ok(d)) = (Endpoint::new(src), Endpoint::new(dst)) else {
                return Totals::default();
            };
            stats
                .get(&flow_key(s, d))
                .map_or_else(Totals::default, |st| Totals {
                    packets: st.packets,
                    bytes: st.bytes,
                })
        };
        let now = self.now;
        let secs = |since: u64| now.saturating_sub(since) / NS_PER_SEC;
        let mut calls = Vec::new();
        for SipCall {
            info,
            source,
            moved,
        } in &self.sip
        {
            let tag = owner_tag(&Owner::Sip(info.key.clone()), *source);
            let call = call_stats(
                std::slice::from_ref(info),
                |s, d| {
                    let (s, d) = moved.get(&(s, d)).copied().unwrap_or((s, d));
                    totals(s, d)
                },
                |t| t,
            );
            let held = |dialog: &str, index| {
                info.streams
                    .iter()
                    .any(|x| x.hold && x.dialog == dialog && x.index == index)
            };
            let mut streams: Vec<StreamEntry> = call
                .streams
                .iter()
                .map(|s| {
                    stream_entry(
                        s.index,
                        if s.rtcp { "rtcp" } else { "rtp" },
                        Some(s.to_tag.clone()),
                        (s.a, s.b),
                        (s.a_to_b, s.b_to_a),
                        if held(&s.to_tag, s.index) {
                            "hold"
                        } else {
                            "open"
                        },
                    )
                })
                .collect();
            // Pairs that idled out: listed, closed, until an offer/answer
            // reopens them.
            for x in &info.streams {
                for (i, &(a, b)) in x.expired.iter().enumerate() {
                    let rtcp = x.rtp.is_some() || i > 0;
                    streams.push(stream_entry(
                        x.index,
                        if rtcp { "rtcp" } else { "rtp" },
                        Some(x.dialog.clone()),
                        (a, b),
                        (Totals::default(), Totals::default()),
                        "expired",
                    ));
                }
            }
            calls.push(call_entry(
                if info.api { "ng" } else { "sip" },
                info.key.call_id.clone(),
                info.key.caller_tag.clone(),
                tag,
                info.state.name(),
                secs(info.created),
                Some(secs(info.last_signal)),
                streams,
            ));
        }
        // RTSP sessions, from the pinholes they hold.
        let mut sessions: BTreeMap<&str, Vec<&Pinhole>> = BTreeMap::new();
        for p in self.pinholes.values() {
            for owner in p.owner_names() {
                if owner.starts_with(RTSP_OWNER_PREFIX) {
                    sessions.entry(owner).or_default().push(p);
                }
            }
        }
        for (owner, pinholes) in sessions {
            let rest = &owner[RTSP_OWNER_PREFIX.len()..];
            let (server, session) = rest.split_once(";session=").unwrap_or((rest, ""));
            let created = pinholes.iter().map(|p| p.created_ns).min().unwrap_or(now);
            let streams = pinholes
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let (a, b) = (p.pair.a().addr(), p.pair.b().addr());
                    stream_entry(
                        i,
                        "media",
                        None,
                        (a, b),
                        (totals(a, b), totals(b, a)),
                        "open",
                    )
                })
                .collect();
            calls.push(call_entry(
                "rtsp",
                session.to_string(),
                server.to_string(),
                owner.to_string(),
                "active",
                secs(created),
                None,
                streams,
            ));
        }
        calls.sort_by(|x, y| (&x.kind, &x.call_id, &x.tag).cmp(&(&y.kind, &y.call_id, &y.tag)));
        Ok(CallsReply { calls })
    }
}

impl ListJob {
    /// Takes what `list` needs (O(1) in the table size).
    pub(super) fn take<S: FlowStore>(core: &Core<S>) -> Result<ListJob, CommandError> {
        Ok(ListJob {
            pinholes: core.table.snapshot(),
            reader: core.store.reader()?,
            now: core.now(),
        })
    }
}

impl CallsJob {
    /// Takes what `calls` needs (O(calls), no map access).
    pub(super) fn take<S: FlowStore>(
        core: &Core<S>,
        calls: &Calls,
    ) -> Result<CallsJob, CommandError> {
        let sip = calls
            .sip_calls()
            .into_iter()
            .map(|info| {
                let source = if info.api {
                    Source::Ng
                } else {
                    Source::Observed
                };
                let tag = owner_tag(&Owner::Sip(info.key.clone()), source);
                let mut moved = HashMap::new();
                for s in &info.streams {
                    for (a, b) in [s.rtp, s.rtcp].into_iter().flatten() {
                        for (src, dst) in [(a, b), (b, a)] {
                            let flow = core.latching.signaled_flow(&tag, src, dst);
                            if flow != (src, dst) {
                                moved.insert((src, dst), flow);
                            }
                        }
                    }
                }
                SipCall {
                    info,
                    source,
                    moved,
                }
            })
            .collect();
        Ok(CallsJob {
            sip,
            pinholes: core.table.snapshot(),
            reader: core.store.reader()?,
            now: core.now(),
        })
    }
}

/// Runs `build` on a blocking thread and sends its result to `reply`; runs
/// it here when there is no runtime (a controller driven by hand in tests).
pub(super) fn off_task<T: Send + 'static>(
    build: impl FnOnce() -> Result<T, CommandError> + Send + 'static,
    reply: Reply<T>,
) {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn_blocking(move || {
                let _ = reply.send(build());
            });
        }
        Err(_) => {
            let _ = reply.send(build());
        }
    }
}

fn stream_entry(
    index: usize,
    kind: &str,
    dialog: Option<String>,
    (a, b): (SocketAddr, SocketAddr),
    (a_to_b, b_to_a): (Totals, Totals),
    state: &str,
) -> StreamEntry {
    let info = |t: Totals| CounterInfo {
        packets: t.packets,
        bytes: t.bytes,
    };
    StreamEntry {
        index,
        kind: kind.into(),
        dialog,
        a,
        b,
        packets: a_to_b.packets.saturating_add(b_to_a.packets),
        bytes: a_to_b.bytes.saturating_add(b_to_a.bytes),
        a_to_b: info(a_to_b),
        b_to_a: info(b_to_a),
        state: state.into(),
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one argument per field of a calls-reply row; its two callers fill them positionally"
)]
fn call_entry(
    kind: &str,
    call_id: String,
    tag: String,
    owner: String,
    state: &str,
    age_secs: u64,
    last_signal_secs: Option<u64>,
    streams: Vec<StreamEntry>,
) -> CallEntry {
    CallEntry {
        kind: kind.into(),
        call_id,
        tag,
        owner,
        state: state.into(),
        age_secs,
        last_signal_secs,
        packets: streams.iter().map(|s| s.packets).sum(),
        bytes: streams.iter().map(|s| s.bytes).sum(),
        streams,
    }
}

/// Refusals by reason for metrics: the call layer's, and the map's.
#[cfg(test)]
mod tests;
