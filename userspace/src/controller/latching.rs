//! Half-open pinholes (bounded latching, see [`crate::datapath::latch`]): the
//! controller's side.
//!
//! A [`Intent::Latch`](crate::calls::Intent::Latch) arms an entry in the latch map (one per (remote
//! signaling address, local media endpoint), shared by every call that asks
//! for it) and sets aside the two flows its pair will need, so that the
//! table can always adopt what the program installs. Each claimant is the
//! pair as the call named it (SDP addresses), so the call's later
//! [`Intent::Close`](crate::calls::Intent::Close) finds it.
//!
//! Every claim the program makes is reported ([`Latched`]), and every report
//! ends with the program's flows either adopted into the table (one claim
//! per claimant, with the call's owner tag) or removed again: the kernel
//! never holds a flow the table does not know. An entry whose window passed,
//! or whose last claimant left, is removed from the map on the next tick;
//! when the removal finds it gone, the program claimed it and its report is
//! on its way.
//!
//! Provisional pairs (pre-answer latching, [`Intent::Latch`](crate::calls::Intent::Latch) with
//! `pre_answer`) use the same entries; their signaled pair names the
//! unknown end with port 0. The pair such a claim latches is adopted under
//! the call's owner tag with [`PRE_ANSWER_SUFFIX`], a claim of its own: the
//! answer then opens its exact pair under the call's tag before the
//! provisional claim is released, so when both name the same pair the
//! table's claim count keeps its flows (one owner tag would hold one claim,
//! and releasing the provisional one would close the answered pair).
//!
//! [`Latching`] owns this state and its steps; it reaches the pinhole table
//! and the flow map only through [`LatchHost`], which the controller's
//! `Core` implements (`core.rs`), so this file knows nothing of `Core`.

use std::{
    collections::{BTreeSet, HashMap},
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use pinhole_common::{FlowKey, LatchValue, FAMILY_V4, FAMILY_V6, IPPROTO_UDP};
use tracing::{debug, error, info, warn};

use super::{
    table::{MapOp, OpenOutcome, OpenRequest, PinholeId, PinholeTable},
    CommandError, NS_PER_SEC,
};
use crate::{
    addr::{flow_key, AddrError, Endpoint, Pair},
    calls::CloseCause,
    clock::RateLimit,
    datapath::error::StoreError,
};

use crate::{
    calls::Side,
    datapath::latch::{LatchKey, Latched},
};

/// Flows set aside per armed entry: the two directions of its pair.
const FLOWS_PER_LATCH: usize = 2;
/// How long a claimed entry may wait for its report before the controller
/// gives up on it. Cannot happen (the program reserves the report before it
/// claims); logged as an error if it does.
const LOST_REPORT_NS: u64 = 10 * NS_PER_SEC;

/// Appended to a call's owner tag for the pinhole a provisional
/// (pre-answer) claim latched.
pub(super) const PRE_ANSWER_SUFFIX: &str = " (pre-answer)";

/// How a signaled pair latches (the fields of [`Intent::Latch`](crate::calls::Intent::Latch) besides
/// its owner and pair).
#[derive(Clone, Copy, Debug)]
pub(super) struct How {
    /// Which end of the signaled pair latches.
    pub side: Side,
    /// That end's signaling address.
    pub from: IpAddr,
    pub window: Duration,
    pub idle: Duration,
    /// A provisional pair: the `side` end is `from:0`.
    pub pre_answer: bool,
}

/// One claimant: the call (owner tag) and the pair as it signaled it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct ClaimKey {
    pub owner: String,
    pub a: SocketAddr,
    pub b: SocketAddr,
}

/// Where a claim stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the first packet on this entry.
    Waiting(LatchKey),
    /// Latched: the claimant holds the pinhole of this pair.
    Latched(Pair),
    /// The window passed, or the latched pair could not be adopted.
    Lapsed,
}

#[derive(Clone, Debug)]
struct Claim {
    /// Which end of the signaled pair latches (the other is local).
    side: Side,
    idle_timeout_secs: u64,
    /// Provisional (pre-answer): adopted under [`PRE_ANSWER_SUFFIX`].
    pre_answer: bool,
    state: State,
}

/// An armed latch map entry.
#[derive(Clone, Debug)]
struct Entry {
    cookie: u64,
    deadline: u64,
    claimants: BTreeSet<ClaimKey>,
    /// The program claimed it (a removal found it gone) at this time; its
    /// report is on its way.
    claimed_at: Option<u64>,
}

/// What latching needs from the pinhole table and the flow map it works
/// beside: implemented by the controller's `Core`, which owns both (and the
/// [`Latching`] state). Arming reserves flows in the table and writes the
/// latch map; a latched pair is opened like any pinhole, with the flows the
/// program installed already in the map.
pub(super) trait LatchHost {
    /// CLOCK_MONOTONIC nanoseconds.
    fn now(&self) -> u64;
    /// The pinhole table: flow reservations, latched pinholes.
    fn table(&mut self) -> &mut PinholeTable;
    /// Puts an entry in the kernel's latch map.
    fn arm_latch(&mut self, key: &LatchKey, value: LatchValue) -> Result<(), StoreError>;
    /// Takes an entry out of the latch map: `false` when the program
    /// claimed it meanwhile.
    fn disarm_latch(&mut self, key: &LatchKey) -> Result<bool, StoreError>;
    /// Opens (or claims) a pinhole whose flows `installed` are in the map
    /// already.
    fn open_request_with(
        &mut self,
        req: OpenRequest,
        installed: &[FlowKey],
    ) -> Result<(PinholeId, OpenOutcome), CommandError>;
    /// Counts and logs a signaled pair that could not be opened.
    fn open_failed(&mut self, owner: &str, a: SocketAddr, b: SocketAddr, e: CommandError);
    /// Applies the removals of `ops`; returns how many.
    fn apply_removes(&mut self, ops: &[MapOp]) -> usize;
    /// Removes one flow from the map (retried later when that fails).
    fn remove_flow(&mut self, key: &FlowKey);
    /// The program could not complete `key` for `remote`: the flow map is
    /// full. Counted with the map-full refusals, logged (rate-limited).
    fn latch_map_full(&mut self, key: &LatchKey, remote: SocketAddr, now: u64);
}

/// What the controller knows about half-open pinholes, and what it does
/// with them: arm, release, expire, adopt what the program latched.
#[derive(Debug, Default)]
pub(super) struct Latching {
    entries: HashMap<LatchKey, Entry>,
    claims: HashMap<ClaimKey, Claim>,
    next_cookie: u64,
    counters: LatchCounters,
    log: RateLimit,
}

/// Counters of bounded latching (`stats --json` → `signaling.detail.latching`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LatchCounters {
    /// Entries put in the latch map.
    pub armed: u64,
    /// Entries the program completed into an exact pair.
    pub latched: u64,
    /// Entries whose window passed without a packet from the remote's
    /// signaling address.
    pub expired: u64,
    /// Entries removed because every call that asked for them closed (or
    /// renegotiated) first.
    pub withdrawn: u64,
    /// Completions the flow map refused: the program dropped the packet and
    /// put the entry back.
    pub flows_full: u64,
    /// Half-open pinholes refused: flow table or latch map full.
    pub refused_full: u64,
    /// Latched pairs no call claimed any more, removed from the flow map.
    pub orphaned: u64,
    /// Of the above, what provisional (pre-answer) claims did.
    pub pre_answer: PreAnswerCounters,
}

/// Counters of pre-answer latching, per provisional claim (a call's
/// offered stream endpoint): `stats --json` →
/// `signaling.detail.latching.counters.pre_answer`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PreAnswerCounters {
    /// Provisional claims armed (a new entry or one shared with others).
    pub armed: u64,
    /// Not armed: latch map or flow table full, or an unusable address.
    /// The call goes on; the answer opens its pairs as without
    /// pre-answer latching.
    pub unarmed: u64,
    /// The answerer's first packet came before the answer and latched.
    pub latched: u64,
    /// Latched, and the answer named the same pair: it stayed open.
    pub confirmed: u64,
    /// Latched, and released with the pinhole closing: the answer named
    /// another port, or the call failed or was cancelled.
    pub superseded: u64,
    /// Released before any packet latched (the usual case: the answer
    /// came first).
    pub answered_first: u64,
    /// Their window (the setup timeout) passed unlatched.
    pub expired: u64,
}

impl LatchCounters {
    /// Every counter as (kind, event, count), for the metrics: `entry` for
    /// the latch map's entries (NAT and pre-answer alike), `pre_answer` for
    /// the provisional pairs calls asked for.
    pub fn events(&self) -> Vec<(&'static str, &'static str, u64)> {
        let p = &self.pre_answer;
        vec![
            ("entry", "armed", self.armed),
            ("entry", "latched", self.latched),
            ("entry", "expired", self.expired),
            ("entry", "withdrawn", self.withdrawn),
            ("entry", "flows_full", self.flows_full),
            ("entry", "refused_full", self.refused_full),
            ("entry", "orphaned", self.orphaned),
            ("pre_answer", "armed", p.armed),
            ("pre_answer", "unarmed", p.unarmed),
            ("pre_answer", "latched", p.latched),
            ("pre_answer", "confirmed", p.confirmed),
            ("pre_answer", "superseded", p.superseded),
            ("pre_answer", "answered_first", p.answered_first),
            ("pre_answer", "expired", p.expired),
        ]
    }
}

impl Latching {
    pub fn counters(&self) -> &LatchCounters {
        &self.counters
    }

    /// Entries armed and not yet completed or removed.
    pub fn pending(&self) -> usize {
        self.entries.len()
    }

    /// The pinhole a claim latched, if it did.
    pub fn latched_pair(&self, claim: &ClaimKey) -> Option<Pair> {
        match self.claims.get(claim)?.state {
            State::Latched(p) => Some(p),
            _ => None,
        }
    }

    /// Arms (or joins) the half-open pinhole for the signaled pair `a` ↔
    /// `b`, whose `side` end latches from `from`.
    pub(super) fn arm(
        &mut self,
        host: &mut impl LatchHost,
        owner: &str,
        a: SocketAddr,
        b: SocketAddr,
        how: How,
    ) -> Result<(), CommandError> {
        let How {
            side,
            from,
            window,
            idle,
            pre_answer,
        } = how;
        let local = match side {
            Side::A => b,
            Side::B => a,
        };
        if pre_answer {
            // Only the offered end is known; the other is `from:0`.
            Endpoint::new(local)?;
        } else {
            // The signaled pair must be one a pinhole could join.
            Pair::new(Endpoint::new(a)?, Endpoint::new(b)?, false)?;
        }
        Endpoint::new(SocketAddr::new(from, 1))?;
        let key = LatchKey { from, local };
        if key.to_map_key().is_none() {
            return Err(AddrError::FamilyMix {
                a: SocketAddr::new(from, 0),
                b: local,
            }
            .into());
        }
        let claim = ClaimKey {
            owner: owner.to_string(),
            a,
            b,
        };
        if self.claims.contains_key(&claim) {
            return Ok(());
        }
        let now = host.now();
        if let Some(e) = self.entries.get_mut(&key) {
            e.claimants.insert(claim.clone());
        } else {
            if let Err(e) = host.table().reserve(FLOWS_PER_LATCH) {
                self.counters.refused_full += 1;
                return Err(e.into());
            }
            self.next_cookie += 1;
            let value = LatchValue {
                deadline_ns: now
                    .saturating_add(u64::try_from(window.as_nanos()).unwrap_or(u64::MAX)),
                cookie: self.next_cookie,
            };
            if let Err(e) = host.arm_latch(&key, value) {
                host.table().unreserve(FLOWS_PER_LATCH);
                if matches!(e, StoreError::LatchMapFull) {
                    self.counters.refused_full += 1;
                }
                return Err(e.into());
            }
            self.counters.armed += 1;
            self.entries.insert(
                key,
                Entry {
                    cookie: value.cookie,
                    deadline: value.deadline_ns,
                    claimants: BTreeSet::from([claim.clone()]),
                    claimed_at: None,
                },
            );
            info!(%key, owner, window_secs = window.as_secs(), cookie = value.cookie, pre_answer, "half-open pinhole armed");
        }
        if pre_answer {
            self.counters.pre_answer.armed += 1;
        }
        self.claims.insert(
            claim,
            Claim {
                side,
                idle_timeout_secs: secs_up(idle),
                pre_answer,
                state: State::Waiting(key),
            },
        );
        Ok(())
    }

    /// A provisional pair that could not be armed: counted and logged
    /// (rate-limited), not a refusal of the call.
    pub(super) fn pre_answer_unarmed(
        &mut self,
        now: u64,
        owner: &str,
        a: SocketAddr,
        b: SocketAddr,
        e: CommandError,
    ) {
        self.counters.pre_answer.unarmed += 1;
        if let Some(n) = self.log.allow(now) {
            warn!(%owner, %a, %b, unarmed_total = self.counters.pre_answer.unarmed, suppressed = n,
                "no pre-answer latch (the answer still opens the call's media): {e}");
        }
    }

    /// Whether `claim` is a provisional (pre-answer) pair still waiting for
    /// its first packet: releasing it only gives back its reservation.
    pub(super) fn is_waiting_pre_answer(&self, claim: &ClaimKey) -> bool {
        self.claims
            .get(claim)
            .is_some_and(|c| c.pre_answer && matches!(c.state, State::Waiting(_)))
    }

    /// Releases `claim` if it is a latching one (whatever its state);
    /// returns whether it was.
    pub(super) fn release(
        &mut self,
        host: &mut impl LatchHost,
        claim: &ClaimKey,
        cause: CloseCause,
    ) -> bool {
        let Some(c) = self.claims.remove(claim) else {
            return false;
        };
        match c.state {
            State::Waiting(key) => {
                if c.pre_answer {
                    self.counters.pre_answer.answered_first += 1;
                }
                let now = host.now();
                if let Some(e) = self.entries.get_mut(&key) {
                    e.claimants.remove(claim);
                    if e.claimants.is_empty() && e.claimed_at.is_none() {
                        self.disarm(host, key, now);
                    }
                }
            }
            State::Latched(pair) => {
                let tag = Some(adoption_tag(&claim.owner, c.pre_answer));
                match host.table().release(pair.a(), pair.b(), &tag) {
                    Ok(r) => {
                        if c.pre_answer {
                            let pa = &mut self.counters.pre_answer;
                            if r.closed {
                                pa.superseded += 1;
                            } else {
                                pa.confirmed += 1;
                            }
                        }
                        let removed = host.apply_removes(&r.ops);
                        info!(id = %r.pinhole.id, a = %pair.a(), b = %pair.b(), owner = claim.owner,
                            cause = cause.name(), closed = r.closed, flows_removed = removed,
                            "latched pinhole released");
                    }
                    Err(e) => debug!(
                        owner = claim.owner,
                        cause = cause.name(),
                        "latched close: {e}"
                    ),
                }
            }
            State::Lapsed => {}
        }
        true
    }

    /// Releases what a provisional pair whose claim this controller does
    /// not know latched (the claim was made by the daemon before a
    /// restart: claims are not saved, the call state is): the pinholes
    /// held under the call's pre-answer tag at the pair's known end.
    /// Returns whether `claim` names a provisional pair (one end port 0).
    pub(super) fn release_unknown_pre_answer(
        host: &mut impl LatchHost,
        claim: &ClaimKey,
        cause: CloseCause,
    ) -> bool {
        let known = match (claim.a.port(), claim.b.port()) {
            (0, _) => claim.b,
            (_, 0) => claim.a,
            _ => return false,
        };
        let tag = Some(adoption_tag(&claim.owner, true));
        let held: Vec<(Endpoint, Endpoint)> = host
            .table()
            .iter()
            .filter(|p| p.is_held_by(&tag))
            .filter(|p| p.pair.a().addr() == known || p.pair.b().addr() == known)
            .map(|p| (p.pair.a(), p.pair.b()))
            .collect();
        for (a, b) in held {
            if let Ok(r) = host.table().release(a, b, &tag) {
                let removed = host.apply_removes(&r.ops);
                info!(id = %r.pinhole.id, a = %a, b = %b, owner = claim.owner, cause = cause.name(),
                    closed = r.closed, flows_removed = removed, "pre-answer pinhole of an earlier daemon released");
            }
        }
        true
    }

    /// Removes the entry `key` from the map: its window passed or nobody
    /// wants it any more. When the program claimed it meanwhile, waits for
    /// the report instead.
    fn disarm(&mut self, host: &mut impl LatchHost, key: LatchKey, now: u64) {
        match host.disarm_latch(&key) {
            Ok(true) => {
                let e = self.entries.remove(&key).expect("caller checked");
                host.table().unreserve(FLOWS_PER_LATCH);
                if e.claimants.is_empty() {
                    self.counters.withdrawn += 1;
                    debug!(%key, "half-open pinhole withdrawn");
                } else {
                    self.counters.expired += 1;
                    for c in &e.claimants {
                        if let Some(claim) = self.claims.get_mut(c) {
                            claim.state = State::Lapsed;
                            if claim.pre_answer {
                                self.counters.pre_answer.expired += 1;
                            }
                        }
                    }
                    info!(%key, claimants = e.claimants.len(), "half-open pinhole expired unlatched");
                }
            }
            Ok(false) => {
                if let Some(e) = self.entries.get_mut(&key) {
                    e.claimed_at = Some(now);
                }
            }
            Err(err) => {
                if let Some(n) = self.log.allow(now) {
                    warn!(%key, suppressed = n, "removing a half-open pinhole failed, will retry: {err}");
                }
            }
        }
    }

    /// Removes entries whose window passed or whose claimants all left;
    /// gives up on claimed entries whose report never came.
    pub(super) fn expire(&mut self, host: &mut impl LatchHost) {
        let now = host.now();
        let due: Vec<LatchKey> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.claimed_at.is_none() && (e.claimants.is_empty() || e.deadline <= now)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.disarm(host, key, now);
        }
        let lost: Vec<LatchKey> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.claimed_at
                    .is_some_and(|t| now.saturating_sub(t) > LOST_REPORT_NS)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in lost {
            let e = self.entries.remove(&key).expect("just listed");
            host.table().unreserve(FLOWS_PER_LATCH);
            for c in &e.claimants {
                if let Some(claim) = self.claims.get_mut(c) {
                    claim.state = State::Lapsed;
                }
            }
            error!(%key, cookie = e.cookie, "a claimed half-open pinhole was never reported; its flows may be left in the map");
        }
    }

    /// One report from the program.
    pub(super) fn on_latched(&mut self, host: &mut impl LatchHost, ev: Latched) {
        let now = host.now();
        let fwd = flow_key_of(ev.remote, ev.key.local);
        let rev = flow_key_of(ev.key.local, ev.remote);
        if !ev.installed {
            // The program dropped the packet and put the entry back.
            self.counters.flows_full += 1;
            if let Some(e) = self.entries.get_mut(&ev.key) {
                e.claimed_at = None;
            }
            host.latch_map_full(&ev.key, ev.remote, now);
            return;
        }
        self.counters.latched += 1;
        let claimants = match self.entries.remove(&ev.key) {
            Some(e) => {
                host.table().unreserve(FLOWS_PER_LATCH);
                if e.cookie != ev.cookie {
                    debug!(key = %ev.key, armed = e.cookie, reported = ev.cookie, "latch re-armed while it was claimed");
                }
                e.claimants
            }
            None => BTreeSet::new(),
        };
        let mut adopted = 0;
        for claim in claimants {
            let Some(c) = self.claims.get(&claim).cloned() else {
                continue;
            };
            let (a, b) = match c.side {
                Side::A => (ev.remote, ev.key.local),
                Side::B => (ev.key.local, ev.remote),
            };
            let tag = adoption_tag(&claim.owner, c.pre_answer);
            let state = match Self::adopt(host, &tag, a, b, c.idle_timeout_secs, &[fwd, rev]) {
                Ok(pair) => {
                    adopted += 1;
                    if c.pre_answer {
                        self.counters.pre_answer.latched += 1;
                    }
                    info!(owner = claim.owner, %a, %b, signaled_a = %claim.a, signaled_b = %claim.b,
                        "pinhole latched");
                    State::Latched(pair)
                }
                Err(e) => {
                    host.open_failed(&claim.owner, a, b, e);
                    State::Lapsed
                }
            };
            if let Some(c) = self.claims.get_mut(&claim) {
                c.state = state;
            }
        }
        if adopted == 0 {
            // Nobody wants the pair any more: take the program's flows out.
            self.counters.orphaned += 1;
            for k in [fwd, rev] {
                if host.table().refcount(&k) == 0 {
                    host.remove_flow(&k);
                }
            }
            debug!(key = %ev.key, remote = %ev.remote, "latched pair orphaned, removed");
        }
    }

    /// Changes the idle timeout of the latching claim `claim`, in place:
    /// a claim still waiting keeps it for its adoption, a latched one
    /// re-claims its pinhole (same flows, no map change). Returns whether
    /// `claim` is a latching one.
    pub(super) fn retime(
        &mut self,
        host: &mut impl LatchHost,
        claim: &ClaimKey,
        idle: Duration,
    ) -> bool {
        let Some(c) = self.claims.get_mut(claim) else {
            return false;
        };
        c.idle_timeout_secs = secs_up(idle);
        if let State::Latched(pair) = c.state {
            let tag = adoption_tag(&claim.owner, c.pre_answer);
            let secs = c.idle_timeout_secs;
            if let Err(e) = Self::adopt(host, &tag, pair.a().addr(), pair.b().addr(), secs, &[]) {
                warn!(
                    owner = claim.owner,
                    "changing a latched pair's idle timeout failed: {e}"
                );
            }
        }
        true
    }

    /// The latched claim of `owner` (provisional or not) whose pinhole
    /// `pair` idled out, forgotten so that the call's next latch for it
    /// arms afresh.
    pub(super) fn forget_expired(
        &mut self,
        owner: &str,
        pre_answer: bool,
        pair: &Pair,
    ) -> Option<ClaimKey> {
        let key = self
            .claims
            .iter()
            .find(|(k, c)| {
                k.owner == owner
                    && c.pre_answer == pre_answer
                    && matches!(c.state, State::Latched(p) if p.key() == pair.key())
            })
            .map(|(k, _)| k.clone())?;
        self.claims.remove(&key);
        Some(key)
    }

    /// Records the pair the program installed as `owner`'s pinhole.
    fn adopt(
        host: &mut impl LatchHost,
        owner: &str,
        a: SocketAddr,
        b: SocketAddr,
        idle_timeout_secs: u64,
        installed: &[FlowKey],
    ) -> Result<Pair, CommandError> {
        let pair = Pair::new(Endpoint::new(a)?, Endpoint::new(b)?, false)?;
        host.open_request_with(
            OpenRequest {
                pair,
                idle_timeout_secs,
                owner: Some(owner.to_string()),
            },
            installed,
        )?;
        Ok(pair)
    }

    /// The flow that carries `owner`'s signaled `src` → `dst`: the latched
    /// pair's when the XDP program latched it, else `src` → `dst`.
    pub(super) fn signaled_flow(
        &self,
        owner: &str,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> (SocketAddr, SocketAddr) {
        let claim = |a, b| ClaimKey {
            owner: owner.to_string(),
            a,
            b,
        };
        if let Some(p) = self.latched_pair(&claim(src, dst)) {
            return (p.a().addr(), p.b().addr());
        }
        if let Some(p) = self.latched_pair(&claim(dst, src)) {
            return (p.b().addr(), p.a().addr());
        }
        (src, dst)
    }

    /// `signaling.detail.latching` of `stats --json`; `reserved_flows` is
    /// the table's reservation.
    pub(super) fn stats(&self, reserved_flows: usize) -> serde_json::Value {
        serde_json::json!({
            "counters": self.counters(),
            "pending": self.pending(),
            "reserved_flows": reserved_flows,
        })
    }
}

/// `d` in whole seconds, rounded up (a sub-second timeout must not become
/// "never").
fn secs_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The owner tag the pinhole a claim latched is held under.
fn adoption_tag(owner: &str, pre_answer: bool) -> String {
    if pre_answer {
        format!("{owner}{PRE_ANSWER_SUFFIX}")
    } else {
        owner.to_string()
    }
}

/// The flow `src → dst` (both valid endpoints of one family, as reported by
/// the program).
fn flow_key_of(src: SocketAddr, dst: SocketAddr) -> FlowKey {
    match (Endpoint::new(src), Endpoint::new(dst)) {
        (Ok(s), Ok(d)) => flow_key(s, d),
        // The program only reports packets it parsed as unicast UDP; keep
        // the raw key so the removal still names the right entry.
        _ => {
            let mut k = FlowKey {
                family: if src.is_ipv4() { FAMILY_V4 } else { FAMILY_V6 },
                proto: IPPROTO_UDP,
                src_port: src.port(),
                dst_port: dst.port(),
                ..FlowKey::default()
            };
            let put = |ip: IpAddr, out: &mut [u8; 16]| match ip {
                IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
                IpAddr::V6(v6) => *out = v6.octets(),
            };
            put(src.ip(), &mut k.src_addr);
            put(dst.ip(), &mut k.dst_addr);
            k
        }
    }
}

#[cfg(test)]
mod tests;
