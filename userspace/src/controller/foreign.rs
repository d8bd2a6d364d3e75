//! The controller's side of HA (`--ha-redis`, see [`crate::ha`]): what it
//! hands the replicator and the foreign pinholes the replicator installs.
//!
//! Out: after every step the controller puts the table's snapshot (O(1),
//! structure shared) in a `watch` channel when the table changed, and the
//! ends of calls it observed (BYE, CANCEL, TEARDOWN) in a bounded channel.
//! Neither blocks: the watch keeps only the newest snapshot, and the
//! replicator diffs it against the last one it published, so coalesced
//! changes are never lost; an end that does not fit is counted and the call
//! closes on the other nodes by their idle timeout after adoption.
//!
//! In: [`HaOp`]s. A foreign pinhole is a claim tagged `ha:<node>` with no
//! idle timeout: it never expires on local idleness (the standby sees no
//! media); its owner's updates and TTL govern it. Adopting turns it into
//! claims of the owners the record names, with the record's timeout.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::{
    core::{Core, Source},
    handle::Reply,
    table::{OpenRequest, Pinhole, Pinholes},
    CommandError, FlowStore,
};
use crate::{
    addr::{Endpoint, Pair},
    feed::{EndKey, Feed},
    metrics::{HaNumbers, Metrics},
};

/// The owner tag prefix of foreign claims in the local table; never
/// replicated, never accepted from a peer or the control API.
pub const FOREIGN_TAG: &str = "ha:";

/// The local table's owner tag of pinholes `node` replicated.
pub fn foreign_tag(node: &str) -> String {
    format!("{FOREIGN_TAG}{node}")
}

/// The Redis hash field of a pair.
pub fn field_of(a: SocketAddr, b: SocketAddr) -> String {
    format!("{a}|{b}")
}

/// One replicated pinhole: the pair, and the owners a node holds it for
/// (`None`: the operator), with the longest idle timeout among them (0:
/// never), which applies once another node adopts it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub a: SocketAddr,
    pub b: SocketAddr,
    pub rtcp: bool,
    pub idle_secs: u64,
    pub owners: Vec<Option<String>>,
}

/// Most owners one record names.
pub const MAX_RECORD_OWNERS: usize = 8;

impl Record {
    /// The part of a local pinhole a node replicates: its local claims (not
    /// the foreign ones); `None` when it has none.
    pub fn of(p: &Pinhole) -> Option<Record> {
        let mut owners = Vec::new();
        let mut idle = Some(0u64);
        let mut rtcp = false;
        for (tag, claim) in &p.claims {
            if tag.as_deref().is_some_and(|t| t.starts_with(FOREIGN_TAG)) {
                continue;
            }
            owners.push(tag.clone());
            rtcp |= claim.rtcp;
            // 0 (never) wins, as in the table.
            idle = match (idle, claim.idle_timeout_secs) {
                (_, 0) | (None, _) => None,
                (Some(x), y) => Some(x.max(y)),
            };
        }
        if owners.is_empty() {
            return None;
        }
        owners.truncate(MAX_RECORD_OWNERS);
        Some(Record {
            a: p.pair.a().addr(),
            b: p.pair.b().addr(),
            rtcp,
            idle_secs: idle.unwrap_or(0),
            owners,
        })
    }

    pub fn field(&self) -> String {
        field_of(self.a, self.b)
    }

    fn pair(&self) -> Result<Pair, CommandError> {
        Ok(Pair::new(
            Endpoint::new(self.a)?,
            Endpoint::new(self.b)?,
            self.rtcp,
        )?)
    }
}

/// HA's numbers for `stats` and the metrics, kept by the replicator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaStatus {
    /// This node's name (`--ha-node`).
    pub node: String,
    /// Connected to Redis now.
    pub connected: bool,
    /// Other nodes whose pinholes are installed here.
    pub peers: u64,
    /// Foreign pinholes in the table now.
    pub foreign_pinholes: u64,
    /// Foreign pinholes adopted since start.
    pub adopted: u64,
    /// Changes written to Redis and published.
    pub published: u64,
    /// Peers' changes applied here.
    pub applied: u64,
    /// Peers' messages or records refused as invalid, or over the cap.
    pub refused: u64,
    /// Redis errors and lost connections.
    pub errors: u64,
    /// Full resyncs done (one per (re)connect).
    pub resyncs: u64,
    /// Replication lag of the last change applied: its publisher's send
    /// time to its install here, in ms (clocks of both nodes).
    pub lag_ms_last: u64,
    pub lag_ms_max: u64,
    /// Ends of calls not handed to the replicator (its queue was full).
    pub ends_dropped: u64,
}

/// What connects a controller to the replicator.
pub struct HaLink {
    /// The table's newest snapshot (see the module doc).
    pub table: watch::Sender<Pinholes>,
    /// Ends of calls observed here.
    pub ends: mpsc::Sender<EndKey>,
    /// `pinhole ha promote`: the replicator adopts every foreign pinhole
    /// and replies.
    pub promote: mpsc::Sender<Reply<HaReply>>,
    pub status: Mutex<HaStatus>,
    /// The registry the status is mirrored to (`--metrics-listen`).
    pub metrics: Option<Arc<Metrics>>,
    /// The table generation last put in `table`.
    sent: AtomicU64,
}

impl HaLink {
    pub fn new(
        table: watch::Sender<Pinholes>,
        ends: mpsc::Sender<EndKey>,
        promote: mpsc::Sender<Reply<HaReply>>,
        node: &str,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        HaLink {
            table,
            ends,
            promote,
            status: Mutex::new(HaStatus {
                node: node.to_string(),
                ..HaStatus::default()
            }),
            metrics,
            sent: AtomicU64::new(u64::MAX),
        }
    }

    pub fn status(&self) -> HaStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn update(&self, f: impl FnOnce(&mut HaStatus)) {
        let Ok(mut s) = self.status.lock() else {
            return;
        };
        f(&mut s);
        if let Some(m) = &self.metrics {
            m.update_ha(HaNumbers {
                connected: s.connected,
                peers: s.peers,
                foreign_pinholes: s.foreign_pinholes,
                lag_ms_last: s.lag_ms_last,
                lag_ms_max: s.lag_ms_max,
                adopted: s.adopted,
                published: s.published,
                applied: s.applied,
                refused: s.refused,
                errors: s.errors,
                resyncs: s.resyncs,
                ends_dropped: s.ends_dropped,
            });
        }
    }
}

/// A change the replicator asks of the controller.
#[derive(Clone, Debug)]
pub enum HaOp {
    /// Installs (or updates) `node`'s pinhole as foreign.
    Install { node: String, rec: Record },
    /// Drops `node`'s claim on the pair.
    Remove {
        node: String,
        a: SocketAddr,
        b: SocketAddr,
    },
    /// Turns `node`'s foreign pinholes into local ones.
    Adopt { node: String, recs: Vec<Record> },
    /// A call or session ended: end it here. `seen_here`: this node saw
    /// the end itself, so its calls layer handles the calls it tracks and
    /// only claims of no tracked call (adopted pinholes) are released.
    End { end: EndKey, seen_here: bool },
    /// `pinhole ha promote` (handed to the replicator).
    Promote,
}

/// What an [`HaOp`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaReply {
    /// Pinholes installed, removed, adopted or closed.
    pub done: usize,
    /// Ones that could not be (logged each).
    pub failed: usize,
}

/// Hands the replicator what changed in this step (see the module doc):
/// the table's snapshot when it changed, the ends of calls `feed` saw.
pub(super) fn note<S: FlowStore>(core: &Core<S>, feed: &mut Feed) {
    let Some(link) = core.config.ha.as_ref() else {
        return;
    };
    feed.record_ends();
    let generation = core.table.generation();
    if link.sent.swap(generation, Ordering::Relaxed) != generation {
        link.table.send_replace(core.table.snapshot());
    }
    for end in feed.take_ends() {
        if link.ends.try_send(end).is_err() {
            link.update(|s| s.ends_dropped += 1);
        }
    }
}

/// Runs one [`HaOp`] on the table (`core`) and the calls (`feed`);
/// `reply` gets the answer (a promote is answered by the replicator).
pub(super) fn on_op<S: FlowStore>(
    core: &mut Core<S>,
    feed: &mut Feed,
    op: HaOp,
    reply: Reply<HaReply>,
) {
    let result = match op {
        HaOp::Promote => match &core.config.ha {
            Some(link) => match link.promote.try_send(reply) {
                Ok(()) => return,
                Err(e) => {
                    let reply = match e {
                        mpsc::error::TrySendError::Full(r)
                        | mpsc::error::TrySendError::Closed(r) => r,
                    };
                    let _ = reply.send(Err(CommandError::HaOff));
                    return;
                }
            },
            None => Err(CommandError::HaOff),
        },
        HaOp::Install { node, rec } => install_foreign(core, &node, &rec),
        HaOp::Remove { node, a, b } => Ok(remove_foreign(core, &node, a, b)),
        HaOp::Adopt { node, recs } => Ok(adopt(core, &node, &recs)),
        HaOp::End { end, seen_here } => Ok(end_call(core, feed, &end, seen_here)),
    };
    let _ = reply.send(result);
}

fn install_foreign<S: FlowStore>(
    core: &mut Core<S>,
    node: &str,
    rec: &Record,
) -> Result<HaReply, CommandError> {
    core.open_request(OpenRequest {
        pair: rec.pair()?,
        idle_timeout_secs: 0,
        owner: Some(foreign_tag(node)),
    })?;
    Ok(HaReply { done: 1, failed: 0 })
}

fn remove_foreign<S: FlowStore>(
    core: &mut Core<S>,
    node: &str,
    a: SocketAddr,
    b: SocketAddr,
) -> HaReply {
    let (Ok(ea), Ok(eb)) = (Endpoint::new(a), Endpoint::new(b)) else {
        return HaReply::default();
    };
    match core.table.release(ea, eb, &Some(foreign_tag(node))) {
        Ok(r) => {
            core.apply_removes(&r.ops);
            HaReply { done: 1, failed: 0 }
        }
        Err(_) => HaReply::default(),
    }
}

/// Each record's owners claim its pair with its timeout, then the
/// foreign claim goes.
fn adopt<S: FlowStore>(core: &mut Core<S>, node: &str, recs: &[Record]) -> HaReply {
    let mut out = HaReply::default();
    for rec in recs {
        let opened = rec.pair().and_then(|pair| {
            for owner in &rec.owners {
                core.open_request(OpenRequest {
                    pair,
                    idle_timeout_secs: rec.idle_secs,
                    owner: owner.clone(),
                })?;
            }
            Ok(())
        });
        match opened {
            Ok(()) => {
                remove_foreign(core, node, rec.a, rec.b);
                out.done += 1;
            }
            Err(e) => {
                warn!(%node, a = %rec.a, b = %rec.b, "adopting a foreign pinhole failed, it stays foreign: {e}");
                out.failed += 1;
            }
        }
    }
    info!(%node, adopted = out.done, failed = out.failed, "HA: adopted foreign pinholes");
    out
}

/// Ends a call or session another node saw end: the calls layer
/// closes its pairs, then claims of it no call here knows (adopted
/// pinholes) are released.
fn end_call<S: FlowStore>(
    core: &mut Core<S>,
    feed: &mut Feed,
    end: &EndKey,
    seen_here: bool,
) -> HaReply {
    let now = core.now();
    let calls = feed.calls_mut();
    let session = match end {
        EndKey::Rtsp(tag) => match crate::calls::Owner::parse(tag) {
            Some(crate::calls::Owner::Rtsp(key)) => Some(key),
            _ => return HaReply::default(),
        },
        EndKey::Sip(_) => None,
    };
    let intents = match (end, &session, seen_here) {
        (_, _, true) => Vec::new(),
        (EndKey::Sip(call_id), _, false) => calls.end_call_id(call_id, now),
        (_, Some(key), false) => calls.end_session(key, now),
        _ => Vec::new(),
    };
    let tracked = match (end, &session) {
        (EndKey::Sip(call_id), _) => calls.has_call_id(call_id),
        (_, Some(key)) => calls.has_session(key),
        _ => false,
    };
    let mut done = intents.len();
    core.apply(intents, Source::Observed);
    if tracked {
        return HaReply { done, failed: 0 };
    }
    let tags: std::collections::BTreeSet<String> = core
        .table
        .iter()
        .flat_map(|p| p.claims.keys().flatten())
        .filter(|t| end.matches(t))
        .cloned()
        .collect();
    for tag in tags {
        for r in core.table.release_owned(&Some(tag)) {
            core.apply_removes(&r.ops);
            done += 1;
        }
    }
    HaReply { done, failed: 0 }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use tokio::sync::oneshot;

    use super::*;
    use crate::controller::{
        report::OpenParams, Controller, ControllerConfig, FakeStore, NS_PER_SEC,
    };

    const S: u64 = NS_PER_SEC;

    fn controller(now: &Arc<AtomicU64>) -> Controller<FakeStore> {
        let now = now.clone();
        let mut config = ControllerConfig::new(64, 300);
        config.clock = Arc::new(move || now.load(Ordering::SeqCst));
        Controller::new(FakeStore::new(64), config)
    }

    fn ha(c: &mut Controller<FakeStore>, op: HaOp) -> Result<HaReply, CommandError> {
        let (tx, mut rx) = oneshot::channel();
        c.on_ha(op, tx);
        rx.try_recv().expect("answered at once")
    }

    fn rec(owner: &str, idle: u64) -> Record {
        Record {
            a: "192.0.2.2:16000".parse().unwrap(),
            b: "198.51.100.2:12000".parse().unwrap(),
            rtcp: false,
            idle_secs: idle,
            owners: vec![Some(owner.to_string())],
        }
    }

    const CALL: &str = "sip:c1@192.0.2.2;from-tag=t1";

    #[test]
    fn foreign_pinholes_never_idle_out_and_adopted_ones_do() {
        let now = Arc::new(AtomicU64::new(1_000 * S));
        let mut c = controller(&now);
        let r = rec(CALL, 30);
        assert_eq!(
            ha(
                &mut c,
                HaOp::Install {
                    node: "rtr-a".into(),
                    rec: r.clone()
                }
            )
            .unwrap()
            .done,
            1
        );
        assert_eq!(c.store().flows.len(), 2);
        let p = c.table().iter().next().unwrap();
        assert!(p.is_held_by(&Some("ha:rtr-a".into())));
        assert_eq!(Record::of(p), None, "not this node's to replicate");
        // A day without media on the standby: still there.
        now.store(90_000 * S, Ordering::SeqCst);
        c.tick();
        assert_eq!(c.table().len(), 1);

        // Adopted: the owner's claim with its timeout, the foreign one gone.
        let done = ha(
            &mut c,
            HaOp::Adopt {
                node: "rtr-a".into(),
                recs: vec![r.clone()],
            },
        )
        .unwrap();
        assert_eq!(done, HaReply { done: 1, failed: 0 });
        let p = c.table().iter().next().unwrap();
        assert_eq!(p.claims.len(), 1);
        assert_eq!(Record::of(p), Some(r));
        now.store(90_031 * S, Ordering::SeqCst);
        c.tick();
        assert_eq!(c.table().len(), 0, "idles out like any of its own");
        assert!(c.store().flows.is_empty());
    }

    #[test]
    fn removes_and_ends_release_only_what_they_name() {
        let now = Arc::new(AtomicU64::new(1_000 * S));
        let mut c = controller(&now);
        let node = |n: &str| n.to_string();
        ha(
            &mut c,
            HaOp::Install {
                node: node("rtr-a"),
                rec: rec(CALL, 30),
            },
        )
        .unwrap();
        ha(
            &mut c,
            HaOp::Install {
                node: node("rtr-b"),
                rec: rec(CALL, 30),
            },
        )
        .unwrap();
        let r = rec(CALL, 30);
        // One node's claim goes, the other's keeps the flows.
        ha(
            &mut c,
            HaOp::Remove {
                node: node("rtr-a"),
                a: r.a,
                b: r.b,
            },
        )
        .unwrap();
        assert_eq!(c.store().flows.len(), 2);
        ha(
            &mut c,
            HaOp::Adopt {
                node: node("rtr-b"),
                recs: vec![r.clone()],
            },
        )
        .unwrap();
        // An end of another call leaves it; its own call's end closes it,
        // seen here or not (no call here tracks it).
        let other = EndKey::Sip("c2@192.0.2.2".into());
        ha(
            &mut c,
            HaOp::End {
                end: other,
                seen_here: false,
            },
        )
        .unwrap();
        assert_eq!(c.table().len(), 1);
        let end = EndKey::Sip("c1@192.0.2.2".into());
        assert_eq!(
            ha(
                &mut c,
                HaOp::End {
                    end,
                    seen_here: true
                }
            )
            .unwrap()
            .done,
            1
        );
        assert_eq!(c.table().len(), 0);
        assert!(c.store().flows.is_empty());
    }

    #[test]
    fn the_api_cannot_forge_foreign_claims_and_promote_needs_ha() {
        let now = Arc::new(AtomicU64::new(1_000 * S));
        let mut c = controller(&now);
        let e = c
            .open(OpenParams {
                a: "192.0.2.2:16000".parse().unwrap(),
                b: "198.51.100.2:12000".parse().unwrap(),
                rtcp: false,
                idle_secs: None,
                owner: Some("ha:rtr-a".into()),
            })
            .unwrap_err();
        assert!(matches!(e, CommandError::ReservedOwner));
        assert!(matches!(
            ha(&mut c, HaOp::Promote),
            Err(CommandError::HaOff)
        ));
    }
}
