//! The pinhole table: which pinholes are open, who holds them, and which
//! flows they need.
//!
//! Pure state: no kernel, no clock, no I/O. Every change returns the
//! [`MapOp`]s that bring the flow map in line with the table; the caller
//! applies them.
//!
//! A pinhole is identified by its endpoint pair (orientation-free). Several
//! owners may hold the same pinhole: the operator ("manual", owner `None`),
//! SIP calls and RTSP sessions (owner tags such as `sip:<call-id>;…`). Each
//! owner has its own [`Claim`] (idle timeout, RTCP); the pinhole is the union
//! of its claims and stays until its last owner releases it
//! ([`PinholeTable::release`]), it goes idle, or the operator force-closes it
//! ([`PinholeTable::close`]). So one call ending never closes media another
//! call (or the operator) still uses.
//!
//! Several pinholes may also need the same flow (for example a pinhole with
//! RTCP and another one on the RTCP ports), so each flow carries a reference
//! count and is inserted on its first user and removed with its last.
//!
//! Capacity is counted in flows (map entries). A pinhole that does not fit is
//! refused ([`TableError::Full`]) and counted; nothing is ever evicted.
//!
//! Times are nanoseconds of CLOCK_MONOTONIC, the clock of the XDP program's
//! `last_seen_ns`.
//!
//! The pinholes live in a persistent map ([`imbl::OrdMap`]), so
//! [`PinholeTable::snapshot`] is O(1): a report task walks the table as it
//! was at that instant while the controller goes on changing it.
//!
//! Idle expiry costs what is due, not what is open: a deadline index
//! (`known activity + idle timeout`, ordered) names the pinholes that may
//! have idled out, and [`PinholeTable::expire_some`] handles at most a given
//! number of them per call (a due pinhole whose flows saw traffic is
//! rescheduled, not expired).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::SocketAddr,
};

use pinhole_common::FlowKey;

use crate::addr::{pair_key, Endpoint, Pair, PairKey};

/// Refusals of the pinhole table. None of them changes the table.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TableError {
    #[error(
        "flow table full: the pinhole needs {needed} new flows but only {free} of {capacity} \
         are free (close pinholes or raise --max-pinholes)"
    )]
    Full {
        needed: usize,
        free: usize,
        capacity: usize,
    },
    #[error("no pinhole {a} <-> {b}")]
    NotFound { a: SocketAddr, b: SocketAddr },
    #[error("the open plan is stale: the table changed since it was made")]
    StalePlan,
    #[error("pinhole {id} ({a} <-> {b}) cannot be restored: {why}")]
    Restore {
        id: u64,
        a: SocketAddr,
        b: SocketAddr,
        why: String,
    },
}

const NS_PER_SEC: u64 = 1_000_000_000;

/// Who holds a pinhole: `None` is the operator (CLI or control API without
/// owner), `Some(tag)` a signaling owner such as `sip:<call-id>;from-tag=…`.
pub type OwnerTag = Option<String>;

/// How an owner tag is shown: `manual` for the operator.
pub fn owner_name(owner: &OwnerTag) -> &str {
    owner.as_deref().unwrap_or(MANUAL_OWNER)
}

/// The name of the operator's owner tag.
pub const MANUAL_OWNER: &str = "manual";

/// Identifies a pinhole for as long as the daemon runs. Never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct PinholeId(pub u64);

impl std::fmt::Display for PinholeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One change to the flow map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapOp {
    Insert(FlowKey),
    Remove(FlowKey),
}

/// What to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenRequest {
    pub pair: Pair,
    /// Seconds without traffic after which the pinhole closes; 0 = never.
    pub idle_timeout_secs: u64,
    /// Who opens it; `None` for the operator.
    pub owner: OwnerTag,
}

/// What one owner asked for on a pinhole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// 0 = never idle out.
    pub idle_timeout_secs: u64,
    /// Wants the RTCP pair (A+1 ↔ B+1) too.
    pub rtcp: bool,
}

/// An open pinhole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pinhole {
    pub id: PinholeId,
    /// The endpoints in the orientation of the first open; `rtcp` is set when
    /// any owner wants RTCP.
    pub pair: Pair,
    /// The effective idle timeout: 0 (never) when any owner says never, else
    /// the longest one.
    pub idle_timeout_secs: u64,
    /// Owners and what each asked for, never empty. `None` (manual) sorts
    /// first.
    pub claims: BTreeMap<OwnerTag, Claim>,
    /// When it was first opened.
    pub created_ns: u64,
    /// The latest activity known: the last (re-)open or the newest
    /// `last_seen_ns` of its flows seen so far. Idle time counts from here.
    pub active_ns: u64,
    /// Its flows, in [`Pair::flows`] order.
    pub flows: Vec<FlowKey>,
}

impl Pinhole {
    /// The idle timeout in nanoseconds, `None` when it never expires.
    pub fn idle_timeout_ns(&self) -> Option<u64> {
        (self.idle_timeout_secs != 0).then(|| self.idle_timeout_secs.saturating_mul(NS_PER_SEC))
    }

    /// When it idles out unless its flows saw traffic after `active_ns`:
    /// `active_ns + timeout` (saturating); `None` when it never expires.
    pub fn deadline_ns(&self) -> Option<u64> {
        self.idle_timeout_ns()
            .map(|t| self.active_ns.saturating_add(t))
    }

    /// Whether its known activity makes it idle at `now_ns`.
    fn idle_at(&self, now_ns: u64) -> bool {
        self.idle_timeout_ns()
            .is_some_and(|timeout| now_ns.saturating_sub(self.active_ns) >= timeout)
    }

    /// The latest activity, given the flows' `last_seen_ns`.
    pub fn last_active_ns(&self, mut last_seen: impl FnMut(&FlowKey) -> Option<u64>) -> u64 {
        self.flows
            .iter()
            .filter_map(&mut last_seen)
            .fold(self.active_ns, u64::max)
    }

    /// The owners' names (`manual` first when the operator holds it).
    pub fn owner_names(&self) -> impl Iterator<Item = &str> {
        self.claims.keys().map(owner_name)
    }

    /// Whether `owner` holds this pinhole.
    pub fn is_held_by(&self, owner: &OwnerTag) -> bool {
        self.claims.contains_key(owner)
    }
}

/// The effective RTCP choice and idle timeout of a set of claims.
fn effective(claims: &BTreeMap<OwnerTag, Claim>) -> (bool, u64) {
    let rtcp = claims.values().any(|c| c.rtcp);
    let idle = if claims.values().any(|c| c.idle_timeout_secs == 0) {
        0
    } else {
        claims
            .values()
            .map(|c| c.idle_timeout_secs)
            .max()
            .unwrap_or(0)
    };
    (rtcp, idle)
}

/// `pair` with its RTCP flag set to `rtcp`, in the orientation of `like`.
/// `alt` is another pair on the same endpoints that has `rtcp` already (one
/// of `pair` and `alt` always does, so no revalidation is needed).
fn shaped(pair: Pair, alt: Pair, rtcp: bool, like: Pair) -> Pair {
    let chosen = if pair.rtcp() == rtcp { pair } else { alt };
    debug_assert_eq!(chosen.rtcp(), rtcp);
    if chosen.a() == like.a() {
        chosen
    } else {
        chosen.reversed()
    }
}

/// Whether an open created a pinhole or updated an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenOutcome {
    /// A new pinhole.
    Opened,
    /// The pinhole existed; this owner's claim was added or updated.
    Refreshed,
}

/// A checked open that has not been applied yet: apply `ops` to the flow map,
/// then [`PinholeTable::commit`] the plan. Dropping it leaves the table as it
/// was, which is how a failed map update is rolled back.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a plan does nothing until it is committed"]
pub struct OpenPlan {
    generation: u64,
    pinhole: Pinhole,
    outcome: OpenOutcome,
    /// Inserts first, then removes (a re-open that drops RTCP removes flows).
    pub ops: Vec<MapOp>,
}

impl OpenPlan {
    pub fn id(&self) -> PinholeId {
        self.pinhole.id
    }

    pub fn outcome(&self) -> OpenOutcome {
        self.outcome
    }

    pub fn pinhole(&self) -> &Pinhole {
        &self.pinhole
    }
}

/// The result of [`PinholeTable::release`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// The pinhole after the release (as it was, when it closed).
    pub pinhole: Pinhole,
    /// True when the last owner left and the pinhole closed.
    pub closed: bool,
    /// Flow removals to apply (none while other owners need every flow).
    pub ops: Vec<MapOp>,
}

/// The pinholes by id, shared with the snapshots taken of it.
pub type Pinholes = imbl::OrdMap<PinholeId, Pinhole>;

/// What one [`PinholeTable::expire_some`] call did.
#[derive(Debug, Default)]
pub struct Expiry {
    /// The pinholes that expired, with the flow removals to apply.
    pub expired: Vec<(Pinhole, Vec<MapOp>)>,
    /// Due pinholes whose traffic moved their deadline on.
    pub rescheduled: usize,
    /// True when the budget ran out with pinholes still due at `now`.
    pub more: bool,
}

/// The table of open pinholes.
#[derive(Debug)]
pub struct PinholeTable {
    capacity: usize,
    pinholes: Pinholes,
    by_pair: HashMap<PairKey, PinholeId>,
    refs: HashMap<FlowKey, u32>,
    /// `(deadline_ns, id)` of every pinhole that can idle out: exactly the
    /// pinholes with a [`Pinhole::deadline_ns`], at that deadline.
    deadlines: BTreeSet<(u64, PinholeId)>,
    next_id: u64,
    /// Bumped on every change; plans made before a change are refused.
    generation: u64,
    rejected_full: u64,
    expired: u64,
    /// Flows set aside (for half-open pinholes the XDP program may complete
    /// at any time); counted against the capacity.
    reserved: usize,
}

impl PinholeTable {
    /// An empty table that holds at most `capacity` flows.
    pub fn new(capacity: usize) -> Self {
        PinholeTable {
            capacity,
            pinholes: Pinholes::new(),
            by_pair: HashMap::new(),
            refs: HashMap::new(),
            deadlines: BTreeSet::new(),
            next_id: 1,
            generation: 0,
            rejected_full: 0,
            expired: 0,
            reserved: 0,
        }
    }

    /// Sets `flows` aside: opens can no longer use them until
    /// [`unreserve`](Self::unreserve)d. Refused (and counted) like an open
    /// when they are not free.
    pub fn reserve(&mut self, flows: usize) -> Result<(), TableError> {
        let free = self.free();
        if flows > free {
            self.rejected_full += 1;
            return Err(TableError::Full {
                needed: flows,
                free,
                capacity: self.capacity,
            });
        }
        self.reserved += flows;
        Ok(())
    }

    /// Returns reserved flows.
    pub fn unreserve(&mut self, flows: usize) {
        debug_assert!(flows <= self.reserved, "unreserving more than reserved");
        self.reserved = self.reserved.saturating_sub(flows);
    }

    /// Flows set aside by [`reserve`](Self::reserve).
    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// Flows neither used nor reserved.
    pub fn free(&self) -> usize {
        self.capacity
            .saturating_sub(self.refs.len())
            .saturating_sub(self.reserved)
    }

    /// Capacity in flows.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Distinct flows in use (= entries the flow map should hold).
    pub fn flows_used(&self) -> usize {
        self.refs.len()
    }

    /// How many pinholes are open.
    pub fn len(&self) -> usize {
        self.pinholes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pinholes.is_empty()
    }

    /// How many opens were refused because the table was full.
    pub fn rejected_full(&self) -> u64 {
        self.rejected_full
    }

    /// How many pinholes expired since start.
    pub fn expired(&self) -> u64 {
        self.expired
    }

    /// The pinholes, oldest id first.
    pub fn iter(&self) -> impl Iterator<Item = &Pinhole> {
        self.pinholes.values()
    }

    /// The pinholes as they are now, oldest id first, for a reader on
    /// another task: O(1), and later changes of the table do not show in it
    /// (they copy the B-tree nodes they touch while a snapshot holds them).
    pub fn snapshot(&self) -> Pinholes {
        self.pinholes.clone()
    }

    pub fn get(&self, id: PinholeId) -> Option<&Pinhole> {
        self.pinholes.get(&id)
    }

    /// The pinhole joining `a` and `b`, in either orientation.
    pub fn find(&self, a: Endpoint, b: Endpoint) -> Option<&Pinhole> {
        self.by_pair
            .get(&pair_key(a, b))
            .and_then(|id| self.pinholes.get(id))
    }

    /// Bumped by every change of the pinholes, their owners or their flows
    /// (not by activity alone).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The id the next new pinhole gets.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Puts back a pinhole an earlier run of the daemon had open, with its
    /// id, owners, claims and times; its RTCP choice and idle timeout follow
    /// from the claims. New pinholes get ids above every restored one (and
    /// above `next_id`, the saved table's counter), so ids are not reused
    /// across restarts.
    ///
    /// Refused, leaving the table unchanged, when the pinhole has no owner,
    /// its id or endpoint pair is taken, its endpoints cannot form the pair
    /// its claims ask for, or its flows do not fit.
    pub fn restore(
        &mut self,
        id: PinholeId,
        (a, b): (Endpoint, Endpoint),
        claims: BTreeMap<OwnerTag, Claim>,
        (created_ns, active_ns): (u64, u64),
        next_id: u64,
    ) -> Result<PinholeId, TableError> {
        let refuse = |why: String| TableError::Restore {
            id: id.0,
            a: a.addr(),
            b: b.addr(),
            why,
        };
        if claims.is_empty() {
            return Err(refuse("it has no owner".into()));
        }
        if id.0 == 0 || self.pinholes.contains_key(&id) {
            return Err(refuse("its id is taken".into()));
        }
        let (rtcp, idle_timeout_secs) = effective(&claims);
        let pair = Pair::new(a, b, rtcp).map_err(|e| refuse(e.to_string()))?;
        if self.by_pair.contains_key(&pair.key()) {
            return Err(refuse("another pinhole joins the same endpoints".into()));
        }
        let flows = pair.flows();
        let needed = flows.iter().filter(|f| self.refcount(f) == 0).count();
        let free = self.capacity.saturating_sub(self.refs.len());
        if needed > free {
            return Err(refuse(
                TableError::Full {
                    needed,
                    free,
                    capacity: self.capacity,
                }
                .to_string(),
            ));
        }
        for f in &flows {
            *self.refs.entry(*f).or_insert(0) += 1;
        }
        self.by_pair.insert(pair.key(), id);
        self.put(Pinhole {
            id,
            pair,
            idle_timeout_secs,
            claims,
            created_ns,
            active_ns,
            flows,
        });
        self.next_id = self.next_id.max(id.0.saturating_add(1)).max(next_id);
        self.generation += 1;
        Ok(id)
    }

    /// How many pinholes use `flow`.
    pub fn refcount(&self, flow: &FlowKey) -> u32 {
        self.refs.get(flow).copied().unwrap_or(0)
    }

    /// Checks an open and computes its map changes without changing the table.
    ///
    /// Opening a pair that is already open (in either orientation) adds or
    /// replaces the requesting owner's claim: the pinhole keeps its id,
    /// orientation and flows' counters, its RTCP choice and idle timeout
    /// become those of the union of the claims, and its idle time restarts at
    /// `now`. Only flows no pinhole has yet are inserted.
    ///
    /// Refuses with [`TableError::Full`] (and counts the refusal) when the
    /// inserts would exceed the capacity. Removes are not credited: the map
    /// must hold the new flows before the old ones go.
    pub fn plan_open(&mut self, req: OpenRequest, now_ns: u64) -> Result<OpenPlan, TableError> {
        let existing = self
            .by_pair
            .get(&req.pair.key())
            .and_then(|id| self.pinholes.get(id));
        let claim = Claim {
            idle_timeout_secs: req.idle_timeout_secs,
            rtcp: req.pair.rtcp(),
        };
        let (pinhole, outcome) = match existing {
            Some(old) => {
                let mut claims = old.claims.clone();
                claims.insert(req.owner, claim);
                let (rtcp, idle) = effective(&claims);
                // Keep the original orientation for display; the flow set is
                // the same either way.
                let pair = shaped(req.pair, old.pair, rtcp, old.pair);
                let p = Pinhole {
                    id: old.id,
                    pair,
                    idle_timeout_secs: idle,
                    claims,
                    created_ns: old.created_ns,
                    active_ns: old.active_ns.max(now_ns),
                    flows: pair.flows(),
                };
                (p, OpenOutcome::Refreshed)
            }
            None => {
                let p = Pinhole {
                    id: PinholeId(self.next_id),
                    pair: req.pair,
                    idle_timeout_secs: req.idle_timeout_secs,
                    claims: BTreeMap::from([(req.owner, claim)]),
                    created_ns: now_ns,
                    active_ns: now_ns,
                    flows: req.pair.flows(),
                };
                (p, OpenOutcome::Opened)
            }
        };
        let old_flows: &[FlowKey] = existing.map_or(&[], |p| &p.flows);

        let mut ops = Vec::new();
        for f in &pinhole.flows {
            if !old_flows.contains(f) && self.refcount(f) == 0 {
                ops.push(MapOp::Insert(*f));
            }
        }
        let needed = ops.len();
        let free = self.free();
        if needed > free {
            self.rejected_full += 1;
            return Err(TableError::Full {
                needed,
                free,
                capacity: self.capacity,
            });
        }
        ops.extend(self.dropped_flows(old_flows, &pinhole.flows));
        Ok(OpenPlan {
            generation: self.generation,
            pinhole,
            outcome,
            ops,
        })
    }

    /// Removes for the flows of `old` that `new` no longer has and no other
    /// pinhole uses.
    fn dropped_flows(&self, old: &[FlowKey], new: &[FlowKey]) -> Vec<MapOp> {
        old.iter()
            .filter(|f| !new.contains(f) && self.refcount(f) == 1)
            .map(|f| MapOp::Remove(*f))
            .collect()
    }

    /// Records a plan whose map ops were applied.
    pub fn commit(&mut self, plan: OpenPlan) -> Result<(PinholeId, OpenOutcome), TableError> {
        if plan.generation != self.generation {
            return Err(TableError::StalePlan);
        }
        let OpenPlan {
            pinhole, outcome, ..
        } = plan;
        let id = pinhole.id;
        if self.pinholes.contains_key(&id) {
            self.replace(pinhole);
        } else {
            self.next_id += 1;
            for f in &pinhole.flows {
                *self.refs.entry(*f).or_insert(0) += 1;
            }
            self.by_pair.insert(pinhole.pair.key(), id);
            self.put(pinhole);
        }
        self.generation += 1;
        Ok((id, outcome))
    }

    /// Swaps an existing pinhole for `new` (same id and pair), moving flow
    /// references from its old flows to the new ones.
    fn replace(&mut self, new: Pinhole) {
        for f in &new.flows {
            *self.refs.entry(*f).or_insert(0) += 1;
        }
        if let Some(old) = self.put(new) {
            self.release_flows(&old.flows);
        }
    }

    /// Inserts or replaces a pinhole, keeping the deadline index in step.
    /// Returns the one it replaced.
    fn put(&mut self, p: Pinhole) -> Option<Pinhole> {
        let entry = p.deadline_ns().map(|d| (d, p.id));
        let old = self.pinholes.insert(p.id, p);
        if let Some(old) = &old {
            self.unschedule(old);
        }
        if let Some(entry) = entry {
            self.deadlines.insert(entry);
        }
        old
    }

    /// Takes `p`'s entry out of the deadline index.
    fn unschedule(&mut self, p: &Pinhole) {
        if let Some(d) = p.deadline_ns() {
            self.deadlines.remove(&(d, p.id));
        }
    }

    /// The earliest deadline of the pinholes that can idle out: no pinhole
    /// expires before it.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|&(d, _)| d)
    }

    /// [`plan_open`](Self::plan_open) and [`commit`](Self::commit) in one step,
    /// for callers whose map updates cannot fail.
    pub fn open(
        &mut self,
        req: OpenRequest,
        now_ns: u64,
    ) -> Result<(PinholeId, OpenOutcome, Vec<MapOp>), TableError> {
        let plan = self.plan_open(req, now_ns)?;
        let ops = plan.ops.clone();
        let (id, outcome) = self.commit(plan)?;
        Ok((id, outcome, ops))
    }

    /// Force-closes the pinhole joining `a` and `b` (either orientation),
    /// including its RTCP flows, whoever holds it: the operator's `close`.
    /// Returns it and the flows to remove.
    pub fn close(&mut self, a: Endpoint, b: Endpoint) -> Result<(Pinhole, Vec<MapOp>), TableError> {
        let id = self.id_of(a, b)?;
        Ok(self
            .remove(id)
            .expect("by_pair only names pinholes in the table"))
    }

    fn id_of(&self, a: Endpoint, b: Endpoint) -> Result<PinholeId, TableError> {
        self.by_pair
            .get(&pair_key(a, b))
            .copied()
            .ok_or(TableError::NotFound {
                a: a.addr(),
                b: b.addr(),
            })
    }

    /// Drops `owner`'s claim on the pinhole joining `a` and `b`. The pinhole
    /// closes when that was its last owner; otherwise it keeps the other
    /// owners' union (which may drop RTCP flows only this owner wanted).
    /// [`TableError::NotFound`] when there is no such pinhole or `owner` does
    /// not hold it; nothing changes then.
    pub fn release(
        &mut self,
        a: Endpoint,
        b: Endpoint,
        owner: &OwnerTag,
    ) -> Result<Release, TableError> {
        let id = self.id_of(a, b)?;
        let p = self.pinholes.get(&id).expect("by_pair names live pinholes");
        if !p.is_held_by(owner) {
            return Err(TableError::NotFound {
                a: a.addr(),
                b: b.addr(),
            });
        }
        Ok(self.release_id(id, owner))
    }

    fn release_id(&mut self, id: PinholeId, owner: &OwnerTag) -> Release {
        let p = self.pinholes.get(&id).expect("caller checked");
        if p.claims.len() == 1 {
            let (pinhole, ops) = self.remove(id).expect("caller checked");
            return Release {
                pinhole,
                closed: true,
                ops,
            };
        }
        let mut claims = p.claims.clone();
        claims.remove(owner);
        let (rtcp, idle) = effective(&claims);
        let pair = if rtcp == p.pair.rtcp() {
            p.pair
        } else {
            // Only dropping RTCP is possible here: the remaining claims are a
            // subset, and a pair that had RTCP validated its ports.
            Pair::new(p.pair.a(), p.pair.b(), rtcp).expect("dropping RTCP is always valid")
        };
        let new = Pinhole {
            pair,
            idle_timeout_secs: idle,
            claims,
            flows: pair.flows(),
            ..p.clone()
        };
        let ops = self.dropped_flows(&p.flows, &new.flows);
        self.replace(new.clone());
        self.generation += 1;
        Release {
            pinhole: new,
            closed: false,
            ops,
        }
    }

    /// Drops `owner`'s claims everywhere (see [`release`](Self::release)).
    pub fn release_owned(&mut self, owner: &OwnerTag) -> Vec<Release> {
        let ids: Vec<PinholeId> = self
            .pinholes
            .values()
            .filter(|p| p.is_held_by(owner))
            .map(|p| p.id)
            .collect();
        ids.into_iter()
            .map(|id| self.release_id(id, owner))
            .collect()
    }

    /// Closes the pinholes idle for at least their timeout at `now_ns`,
    /// whoever holds them: [`expire_some`](Self::expire_some) without a
    /// budget.
    pub fn expire(
        &mut self,
        now_ns: u64,
        last_seen: impl FnMut(&FlowKey) -> Option<u64>,
    ) -> Vec<(Pinhole, Vec<MapOp>)> {
        self.expire_some(now_ns, usize::MAX, last_seen).expired
    }

    /// Closes pinholes idle for at least their timeout at `now_ns`, whoever
    /// holds them, handling at most `budget` due pinholes (expired or
    /// rescheduled), earliest deadline first; [`Expiry::more`] says whether
    /// due ones are left for the next call.
    ///
    /// Idle time is `now − max(last open, newest last_seen of its flows)`.
    /// Only pinholes whose known activity is old enough to expire are
    /// looked at (through the deadline index) and only their flows are
    /// asked about: a call costs O(log n) per due pinhole and nothing for
    /// the others. A due pinhole whose flows saw traffic since gets its new
    /// activity and deadline. A timeout of 0 never expires.
    pub fn expire_some(
        &mut self,
        now_ns: u64,
        budget: usize,
        mut last_seen: impl FnMut(&FlowKey) -> Option<u64>,
    ) -> Expiry {
        let mut out = Expiry::default();
        // Rescheduled entries go back after the walk, so each pinhole is
        // handled once per call even when its new deadline is not later.
        let mut rescheduled = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now_ns {
                break;
            }
            if out.expired.len() + rescheduled.len() == budget {
                out.more = true;
                break;
            }
            self.deadlines.pop_first();
            // `get_mut` copies the node a snapshot shares: only due
            // pinholes are touched.
            let Some(p) = self.pinholes.get_mut(&id) else {
                debug_assert!(false, "the deadline index names a closed pinhole");
                continue;
            };
            // A deadline that saturated can come up before the pinhole is
            // idle; then there is nothing to look up.
            if p.idle_at(now_ns) {
                p.active_ns = p.last_active_ns(&mut last_seen);
            }
            if p.idle_at(now_ns) {
                // Its index entry is gone already.
                out.expired.extend(self.remove(id));
            } else if let Some(d) = p.deadline_ns() {
                rescheduled.push((d, id));
            }
        }
        out.rescheduled = rescheduled.len();
        self.deadlines.extend(rescheduled);
        self.expired += out.expired.len() as u64;
        out
    }

    fn remove(&mut self, id: PinholeId) -> Option<(Pinhole, Vec<MapOp>)> {
        let p = self.pinholes.remove(&id)?;
        self.unschedule(&p);
        self.by_pair.remove(&p.pair.key());
        let ops = self.release_flows(&p.flows);
        self.generation += 1;
        Some((p, ops))
    }

    /// Drops one reference to each flow; returns removes for the flows that
    /// lost their last user.
    fn release_flows(&mut self, flows: &[FlowKey]) -> Vec<MapOp> {
        let mut ops = Vec::new();
        for f in flows {
            match self.refs.get_mut(f) {
                Some(n) if *n > 1 => *n -= 1,
                Some(_) => {
                    self.refs.remove(f);
                    ops.push(MapOp::Remove(*f));
                }
                None => debug_assert!(false, "releasing an unreferenced flow"),
            }
        }
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::flow_key;

    const S: u64 = NS_PER_SEC;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    fn req(a: &str, b: &str, rtcp: bool, idle: u64) -> OpenRequest {
        OpenRequest {
            pair: Pair::new(ep(a), ep(b), rtcp).unwrap(),
            idle_timeout_secs: idle,
            owner: None,
        }
    }

    fn inserts(ops: &[MapOp]) -> usize {
        ops.iter().filter(|o| matches!(o, MapOp::Insert(_))).count()
    }

    fn removes(ops: &[MapOp]) -> usize {
        ops.iter().filter(|o| matches!(o, MapOp::Remove(_))).count()
    }

    /// The flows the table says the map holds, checked against the refcounts
    /// recomputed from scratch.
    fn check_invariants(t: &PinholeTable) {
        let mut want: HashMap<FlowKey, u32> = HashMap::new();
        for p in t.iter() {
            for f in &p.flows {
                *want.entry(*f).or_default() += 1;
            }
            assert_eq!(t.find(p.pair.a(), p.pair.b()).map(|q| q.id), Some(p.id));
        }
        assert_eq!(want, t.refs);
        assert_eq!(t.by_pair.len(), t.pinholes.len());
        let deadlines: BTreeSet<(u64, PinholeId)> = t
            .iter()
            .filter_map(|p| p.deadline_ns().map(|d| (d, p.id)))
            .collect();
        assert_eq!(deadlines, t.deadlines, "the deadline index is out of step");
        assert!(t.flows_used() <= t.capacity());
    }

    #[test]
    fn open_and_close_produce_matching_ops() {
        let mut t = PinholeTable::new(100);
        let (id, outcome, ops) = t
            .open(req("192.0.2.1:4000", "198.51.100.2:10000", true, 30), 5)
            .unwrap();
        assert_eq!(outcome, OpenOutcome::Opened);
        assert_eq!(id, PinholeId(1));
        assert_eq!((inserts(&ops), removes(&ops)), (4, 0));
        assert_eq!(t.flows_used(), 4);
        check_invariants(&t);

        // Close by the reversed orientation.
        let (p, ops) = t
            .close(ep("198.51.100.2:10000"), ep("192.0.2.1:4000"))
            .unwrap();
        assert_eq!(p.id, id);
        assert_eq!((inserts(&ops), removes(&ops)), (0, 4));
        assert!(t.is_empty());
        assert_eq!(t.flows_used(), 0);
        check_invariants(&t);
    }

    #[test]
    fn reopen_is_idempotent_and_refreshes() {
        let mut t = PinholeTable::new(100);
        let r = req("192.0.2.1:4000", "198.51.100.2:10000", false, 30);
        let (id, _, _) = t.open(r.clone(), 10 * S).unwrap();
        // Same pair and owner, other orientation, new timeout, later.
        let r2 = req("198.51.100.2:10000", "192.0.2.1:4000", false, 60);
        let (id2, outcome, ops) = t.open(r2, 20 * S).unwrap();
        assert_eq!((id2, outcome), (id, OpenOutcome::Refreshed));
        assert!(ops.is_empty(), "no duplicate flows: {ops:?}");
        let p = t.get(id).unwrap();
        assert_eq!(p.idle_timeout_secs, 60);
        assert_eq!(p.created_ns, 10 * S);
        assert_eq!(p.active_ns, 20 * S);
        assert_eq!(p.owner_names().collect::<Vec<_>>(), ["manual"]);
        assert_eq!(p.pair.a(), ep("192.0.2.1:4000"), "orientation kept");
        assert_eq!(t.len(), 1);
        assert_eq!(t.flows_used(), 2);
        check_invariants(&t);

        // Upgrading to RTCP inserts only the RTCP flows; downgrading removes them.
        let (_, _, ops) = t
            .open(
                req("192.0.2.1:4000", "198.51.100.2:10000", true, 60),
                21 * S,
            )
            .unwrap();
        assert_eq!((inserts(&ops), removes(&ops)), (2, 0));
        assert_eq!(t.flows_used(), 4);
        let (_, _, ops) = t
            .open(
                req("192.0.2.1:4000", "198.51.100.2:10000", false, 60),
                22 * S,
            )
            .unwrap();
        assert_eq!((inserts(&ops), removes(&ops)), (0, 2));
        assert_eq!(t.flows_used(), 2);
        check_invariants(&t);
        // Ids are not reused after a refresh.
        let (id3, _, _) = t
            .open(
                req("192.0.2.1:4002", "198.51.100.2:10002", false, 60),
                23 * S,
            )
            .unwrap();
        assert_eq!(id3, PinholeId(2));
    }

    #[test]
    fn capacity_edges() {
        // (capacity, opens as (a_port, b_port, rtcp), expected result per open)
        type Case = (
            usize,
            &'static [(u16, u16, bool)],
            &'static [Result<usize, usize>],
        );
        // Ok(flows_used after) / Err(needed)
        let cases: &[Case] = &[
            (0, &[(4000, 10000, false)], &[Err(2)]),
            (1, &[(4000, 10000, false)], &[Err(2)]),
            (
                2,
                &[(4000, 10000, false), (4002, 10002, false)],
                &[Ok(2), Err(2)],
            ),
            (3, &[(4000, 10000, true)], &[Err(4)]),
            (
                4,
                &[(4000, 10000, true), (4000, 10000, true)],
                &[Ok(4), Ok(4)],
            ),
            // Shares the RTCP flows of the first pinhole: only 0 new flows.
            (
                4,
                &[(4000, 10000, true), (4001, 10001, false)],
                &[Ok(4), Ok(4)],
            ),
            // Full table, but a re-open needs nothing new.
            (
                2,
                &[(4000, 10000, false), (4000, 10000, false)],
                &[Ok(2), Ok(2)],
            ),
            // Full table: upgrading to RTCP needs 2 more.
            (
                2,
                &[(4000, 10000, false), (4000, 10000, true)],
                &[Ok(2), Err(2)],
            ),
        ];
        for (capacity, opens, want) in cases {
            let mut t = PinholeTable::new(*capacity);
            let mut rejected = 0;
            for ((a, b, rtcp), want) in opens.iter().zip(want.iter()) {
                let r = req(
                    &format!("192.0.2.1:{a}"),
                    &format!("198.51.100.2:{b}"),
                    *rtcp,
                    0,
                );
                let before = (t.len(), t.flows_used());
                match (t.open(r, 0), want) {
                    (Ok(_), Ok(used)) => assert_eq!(t.flows_used(), *used),
                    (
                        Err(TableError::Full {
                            needed,
                            free,
                            capacity: c,
                        }),
                        Err(n),
                    ) => {
                        rejected += 1;
                        assert_eq!(needed, *n);
                        assert_eq!(c, *capacity);
                        assert_eq!(free, capacity - before.1);
                        assert_eq!(
                            (t.len(), t.flows_used()),
                            before,
                            "refusal changed the table"
                        );
                    }
                    (got, want) => panic!("cap {capacity} {a}->{b}: got {got:?}, want {want:?}"),
                }
                check_invariants(&t);
            }
            assert_eq!(t.rejected_full(), rejected);
        }
    }

    #[test]
    fn overlapping_pinholes_share_flows_by_refcount() {
        let mut t = PinholeTable::new(100);
        // P1 with RTCP: 4000<->10000 and 4001<->10001.
        let (p1, _, ops1) = t
            .open(req("192.0.2.1:4000", "198.51.100.2:10000", true, 0), 0)
            .unwrap();
        assert_eq!(inserts(&ops1), 4);
        // P2 is exactly P1's RTCP pair.
        let (_p2, _, ops2) = t
            .open(req("192.0.2.1:4001", "198.51.100.2:10001", false, 0), 0)
            .unwrap();
        assert!(ops2.is_empty(), "shared flows are not inserted twice");
        let shared = flow_key(ep("192.0.2.1:4001"), ep("198.51.100.2:10001"));
        assert_eq!(t.refcount(&shared), 2);
        check_invariants(&t);

        // Closing P1 keeps the shared flows for P2.
        let (p, ops) = t
            .close(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"))
            .unwrap();
        assert_eq!(p.id, p1);
        assert_eq!(removes(&ops), 2);
        assert!(!ops.contains(&MapOp::Remove(shared)));
        assert_eq!(t.refcount(&shared), 1);
        check_invariants(&t);

        // Closing P2 removes them.
        let (_, ops) = t
            .close(ep("192.0.2.1:4001"), ep("198.51.100.2:10001"))
            .unwrap();
        assert!(ops.contains(&MapOp::Remove(shared)));
        assert_eq!(t.flows_used(), 0);
        check_invariants(&t);
    }

    #[test]
    fn close_unknown_is_an_error_and_changes_nothing() {
        let mut t = PinholeTable::new(10);
        t.open(req("192.0.2.1:4000", "198.51.100.2:10000", false, 0), 0)
            .unwrap();
        let unknown = [
            ("192.0.2.1:4000", "198.51.100.2:10002"),
            ("192.0.2.1:4001", "198.51.100.2:10001"), // not an RTCP pair of anything
            ("[2001:db8::1]:4000", "[2001:db8::2]:10000"),
        ];
        for (a, b) in unknown {
            let err = t.close(ep(a), ep(b)).unwrap_err();
            assert_eq!(
                err,
                TableError::NotFound {
                    a: ep(a).addr(),
                    b: ep(b).addr()
                }
            );
            assert_eq!((t.len(), t.flows_used()), (1, 2));
        }
        // Closing twice: the second one fails.
        t.close(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"))
            .unwrap();
        assert!(t
            .close(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"))
            .is_err());
    }

    #[test]
    fn expiry_boundaries() {
        // (timeout s, opened at s, flow last_seen s (None = no traffic), now s, expired?)
        let cases: &[(u64, u64, Option<u64>, u64, bool)] = &[
            (10, 0, None, 9, false),
            (10, 0, None, 10, true), // idle == timeout expires
            (10, 0, None, 11, true),
            (10, 0, Some(5), 14, false),
            (10, 0, Some(5), 15, true),
            (10, 5, Some(1), 14, false), // traffic before (re)open does not age it
            (10, 5, Some(1), 15, true),
            (0, 0, None, u64::MAX / S, false),        // 0 = never
            (u64::MAX, 0, None, u64::MAX / S, false), // saturating timeout
            (10, 100, None, 50, false),               // clock before open: not idle
            (10, 0, Some(200), 100, false),           // last_seen ahead of now: not idle
        ];
        for &(timeout, opened, seen, now, want) in cases {
            let mut t = PinholeTable::new(10);
            t.open(
                req("192.0.2.1:4000", "198.51.100.2:10000", false, timeout),
                opened * S,
            )
            .unwrap();
            let out = t.expire(now * S, |_| seen.map(|s| s * S));
            assert_eq!(
                out.len() == 1,
                want,
                "timeout {timeout} opened {opened} seen {seen:?} now {now}"
            );
            assert_eq!(t.expired(), out.len() as u64);
            if want {
                assert_eq!(removes(&out[0].1), 2);
                assert!(t.is_empty());
            }
            check_invariants(&t);
        }
    }

    #[test]
    fn expire_skips_lookups_for_recently_active_pinholes() {
        let mut t = PinholeTable::new(10);
        t.open(req("192.0.2.1:4000", "198.51.100.2:10000", false, 10), 0)
            .unwrap();
        let mut lookups = 0;
        assert!(t
            .expire(9 * S, |_| {
                lookups += 1;
                None
            })
            .is_empty());
        assert_eq!(lookups, 0);
        // Due by the cached activity; traffic at 8 s keeps it alive and is cached.
        assert!(t
            .expire(10 * S, |_| {
                lookups += 1;
                Some(8 * S)
            })
            .is_empty());
        assert_eq!(lookups, 2);
        assert!(t
            .expire(17 * S, |_| {
                lookups += 1;
                Some(8 * S)
            })
            .is_empty());
        assert_eq!(lookups, 2);
        assert_eq!(t.expire(18 * S, |_| Some(8 * S)).len(), 1);
    }

    #[test]
    fn expire_with_shared_flows_keeps_the_survivor_intact() {
        let mut t = PinholeTable::new(10);
        t.open(req("192.0.2.1:4000", "198.51.100.2:10000", true, 10), 0)
            .unwrap();
        t.open(req("192.0.2.1:4001", "198.51.100.2:10001", false, 0), 0)
            .unwrap();
        let out = t.expire(10 * S, |_| None);
        assert_eq!(out.len(), 1);
        assert_eq!(removes(&out[0].1), 2, "the shared RTCP flows stay");
        assert_eq!(t.flows_used(), 2);
        check_invariants(&t);
    }

    #[test]
    fn stale_plans_are_refused() {
        let mut t = PinholeTable::new(10);
        let plan = t
            .plan_open(req("192.0.2.1:4000", "198.51.100.2:10000", false, 0), 0)
            .unwrap();
        t.open(req("192.0.2.1:4002", "198.51.100.2:10002", false, 0), 0)
            .unwrap();
        assert_eq!(t.commit(plan), Err(TableError::StalePlan));
        assert_eq!(t.len(), 1);
        check_invariants(&t);
        // A dropped plan leaves no trace.
        let plan = t
            .plan_open(req("192.0.2.1:4004", "198.51.100.2:10004", false, 0), 0)
            .unwrap();
        drop(plan);
        assert_eq!((t.len(), t.flows_used()), (1, 2));
    }

    fn owned(a: &str, b: &str, rtcp: bool, idle: u64, owner: Option<&str>) -> OpenRequest {
        OpenRequest {
            owner: owner.map(str::to_string),
            ..req(a, b, rtcp, idle)
        }
    }

    fn tag(s: &str) -> OwnerTag {
        Some(s.to_string())
    }

    #[test]
    fn release_owned_releases_only_that_owner() {
        let mut t = PinholeTable::new(10);
        for (port, owner) in [(4000, Some("call-a")), (4002, Some("call-b")), (4004, None)] {
            t.open(
                owned(
                    &format!("192.0.2.1:{port}"),
                    "198.51.100.2:10000",
                    false,
                    0,
                    owner,
                ),
                0,
            )
            .unwrap();
        }
        let released = t.release_owned(&tag("call-a"));
        assert_eq!(released.len(), 1);
        assert!(released[0].closed);
        assert_eq!(removes(&released[0].ops), 2);
        assert_eq!(released[0].pinhole.pair.a().port(), 4000);
        assert!(t.release_owned(&tag("call-a")).is_empty());
        assert_eq!(t.len(), 2);
        check_invariants(&t);
    }

    #[test]
    fn a_shared_pair_survives_until_its_last_owner_releases_it() {
        let a = "192.0.2.1:4000";
        let b = "198.51.100.2:10000";
        // (step, owner, expected (pinholes, flows, owners) after it)
        // Opens: call-1 (rtcp, idle 60), manual (no rtcp, idle 300), call-2
        // (no rtcp, idle 0 = never).
        let mut t = PinholeTable::new(16);
        let (id, o, ops) = t.open(owned(a, b, true, 60, Some("sip:1")), 0).unwrap();
        assert_eq!((o, inserts(&ops)), (OpenOutcome::Opened, 4));
        let (id2, o, ops) = t.open(owned(b, a, false, 300, None), S).unwrap();
        assert_eq!((id2, o), (id, OpenOutcome::Refreshed));
        assert!(ops.is_empty(), "RTCP stays while sip:1 wants it: {ops:?}");
        let p = t.get(id).unwrap();
        assert!(p.pair.rtcp());
        assert_eq!(p.idle_timeout_secs, 300, "the longest timeout wins");
        assert_eq!(p.owner_names().collect::<Vec<_>>(), ["manual", "sip:1"]);
        let (_, _, ops) = t.open(owned(a, b, false, 0, Some("sip:2")), 2 * S).unwrap();
        assert!(ops.is_empty());
        assert_eq!(t.get(id).unwrap().idle_timeout_secs, 0, "never wins");
        check_invariants(&t);

        // An owner that does not hold it cannot release it.
        assert!(matches!(
            t.release(ep(a), ep(b), &tag("sip:3")),
            Err(TableError::NotFound { .. })
        ));
        // sip:1 leaves: its RTCP flows go, the RTP pair stays for the others.
        let r = t.release(ep(b), ep(a), &tag("sip:1")).unwrap();
        assert!(!r.closed);
        assert_eq!((inserts(&r.ops), removes(&r.ops)), (0, 2));
        assert!(!r.pinhole.pair.rtcp());
        assert_eq!(r.pinhole.pair.a(), ep(a), "orientation kept");
        assert_eq!(r.pinhole.id, id);
        assert_eq!(t.flows_used(), 2);
        check_invariants(&t);
        // Releasing twice fails.
        assert!(t.release(ep(a), ep(b), &tag("sip:1")).is_err());
        // The operator leaves: still open for sip:2, idle now 0 (sip:2's).
        let r = t.release(ep(a), ep(b), &None).unwrap();
        assert!(!r.closed && r.ops.is_empty());
        assert_eq!(r.pinhole.owner_names().collect::<Vec<_>>(), ["sip:2"]);
        // The last owner leaves: closed, flows removed.
        let r = t.release(ep(a), ep(b), &tag("sip:2")).unwrap();
        assert!(r.closed);
        assert_eq!(removes(&r.ops), 2);
        assert!(t.is_empty());
        assert_eq!(t.flows_used(), 0);
        check_invariants(&t);
    }

    #[test]
    fn force_close_and_expiry_drop_every_owner() {
        let a = "192.0.2.1:4000";
        let b = "198.51.100.2:10000";
        let mut t = PinholeTable::new(16);
        t.open(owned(a, b, false, 10, Some("sip:1")), 0).unwrap();
        t.open(owned(a, b, true, 10, Some("rtsp:2")), 0).unwrap();
        let (p, ops) = t.close(ep(a), ep(b)).unwrap();
        assert_eq!(p.claims.len(), 2);
        assert_eq!(removes(&ops), 4);
        assert!(t.is_empty());

        t.open(owned(a, b, false, 10, Some("sip:1")), 0).unwrap();
        t.open(owned(a, b, false, 20, Some("sip:2")), 0).unwrap();
        assert!(t.expire(10 * S, |_| None).is_empty(), "20 s is the timeout");
        let out = t.expire(20 * S, |_| None);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.claims.len(), 2);
        assert!(t.is_empty());
        check_invariants(&t);
    }

    #[test]
    fn a_failed_owner_open_on_a_full_table_leaves_the_other_owner_intact() {
        let a = "192.0.2.1:4000";
        let b = "198.51.100.2:10000";
        let mut t = PinholeTable::new(2);
        t.open(owned(a, b, false, 0, Some("sip:1")), 0).unwrap();
        // sip:2 wants RTCP too: 2 more flows do not fit.
        let err = t.open(owned(a, b, true, 0, Some("sip:2")), 0).unwrap_err();
        assert!(matches!(err, TableError::Full { needed: 2, .. }));
        let p = t.iter().next().unwrap();
        assert_eq!(p.owner_names().collect::<Vec<_>>(), ["sip:1"]);
        assert!(!p.pair.rtcp());
        // Without RTCP it shares the existing flows and fits.
        t.open(owned(a, b, false, 0, Some("sip:2")), 0).unwrap();
        assert_eq!(t.iter().next().unwrap().claims.len(), 2);
        assert_eq!(t.flows_used(), 2);
        check_invariants(&t);
    }

    #[test]
    fn restore_rebuilds_refcounts_and_keeps_ids_unique() {
        let claim = |idle, rtcp| Claim {
            idle_timeout_secs: idle,
            rtcp,
        };
        let manual = |idle, rtcp| BTreeMap::from([(None, claim(idle, rtcp))]);
        let mut t = PinholeTable::new(6);
        // With RTCP (4 flows), then a pinhole on its RTCP ports (shares 2).
        let id = t
            .restore(
                PinholeId(7),
                (ep("192.0.2.1:4000"), ep("198.51.100.2:10000")),
                manual(30, true),
                (5 * S, 9 * S),
                3,
            )
            .unwrap();
        assert_eq!(id, PinholeId(7));
        let two_owners = BTreeMap::from([
            (None, claim(0, false)),
            (Some("sip:c;from-tag=t".to_string()), claim(60, false)),
        ]);
        t.restore(
            PinholeId(3),
            (ep("192.0.2.1:4001"), ep("198.51.100.2:10001")),
            two_owners,
            (6 * S, 6 * S),
            3,
        )
        .unwrap();
        assert_eq!((t.len(), t.flows_used()), (2, 4));
        let p = t.get(PinholeId(7)).unwrap();
        assert_eq!((p.idle_timeout_secs, p.pair.rtcp()), (30, true));
        assert_eq!((p.created_ns, p.active_ns), (5 * S, 9 * S));
        // Any owner saying "never" makes the pinhole never idle out.
        assert_eq!(t.get(PinholeId(3)).unwrap().idle_timeout_secs, 0);
        check_invariants(&t);

        // Refusals leave the table as it was.
        type Case = (u64, &'static str, &'static str, bool, &'static str);
        let cases: &[Case] = &[
            (
                7,
                "192.0.2.9:4000",
                "198.51.100.9:10000",
                false,
                "its id is taken",
            ),
            (
                0,
                "192.0.2.9:4000",
                "198.51.100.9:10000",
                false,
                "its id is taken",
            ),
            (
                8,
                "198.51.100.2:10000",
                "192.0.2.1:4000",
                false,
                "same endpoints",
            ),
            (8, "192.0.2.9:65535", "198.51.100.9:10000", true, "RTCP"),
            (
                8,
                "192.0.2.9:4000",
                "198.51.100.9:10000",
                true,
                "flow table full",
            ),
        ];
        for (id, a, b, rtcp, want) in cases {
            let before = (t.len(), t.flows_used(), t.generation());
            let err = t
                .restore(PinholeId(*id), (ep(a), ep(b)), manual(30, *rtcp), (S, S), 1)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{id} {a} {b}: {err}");
            assert_eq!((t.len(), t.flows_used(), t.generation()), before);
        }
        let err = t
            .restore(
                PinholeId(9),
                (ep("192.0.2.9:4000"), ep("198.51.100.9:10000")),
                BTreeMap::new(),
                (S, S),
                1,
            )
            .unwrap_err();
        assert!(err.to_string().contains("no owner"), "{err}");

        // New pinholes continue after the highest id and the saved counter.
        assert_eq!(t.next_id(), 8);
        let (id, _, _) = t
            .open(
                req("192.0.2.9:4000", "198.51.100.9:10000", false, 30),
                10 * S,
            )
            .unwrap();
        assert_eq!(id, PinholeId(8));
        // Now full: a restore that does not fit is refused.
        let err = t
            .restore(
                PinholeId(2),
                (ep("192.0.2.8:4000"), ep("198.51.100.8:10000")),
                manual(1, false),
                (S, S),
                50,
            )
            .unwrap_err();
        assert!(err.to_string().contains("flow table full"), "{err}");
        let mut u = PinholeTable::new(10);
        u.restore(
            PinholeId(2),
            (ep("192.0.2.8:4000"), ep("198.51.100.8:10000")),
            manual(1, false),
            (S, S),
            50,
        )
        .unwrap();
        assert_eq!(u.next_id(), 50);
        check_invariants(&u);
    }

    /// The deadline of the pinhole joining `a` and `b`, as the index has it.
    fn indexed(t: &PinholeTable, a: &str, b: &str) -> Option<u64> {
        let id = t.find(ep(a), ep(b)).unwrap().id;
        let found: Vec<u64> = t
            .deadlines
            .iter()
            .filter(|(_, i)| *i == id)
            .map(|(d, _)| *d)
            .collect();
        assert!(found.len() <= 1, "{id} is indexed twice: {found:?}");
        found.first().copied()
    }

    #[test]
    fn the_deadline_index_follows_opens_retimes_releases_and_closes() {
        let (a, b) = ("192.0.2.1:4000", "198.51.100.2:10000");
        let mut t = PinholeTable::new(100);
        t.open(owned(a, b, false, 30, Some("sip:1")), S).unwrap();
        assert_eq!(indexed(&t, a, b), Some(31 * S));
        // A refresh restarts the idle time: the deadline moves.
        t.open(owned(a, b, false, 30, Some("sip:1")), 10 * S)
            .unwrap();
        assert_eq!(indexed(&t, a, b), Some(40 * S));
        // A retime to a longer timeout moves it too.
        t.open(owned(a, b, false, 60, Some("sip:1")), 10 * S)
            .unwrap();
        assert_eq!(indexed(&t, a, b), Some(70 * S));
        // A second owner saying "never": out of the index.
        t.open(owned(a, b, false, 0, None), 12 * S).unwrap();
        assert_eq!(indexed(&t, a, b), None);
        check_invariants(&t);
        // It leaves: back in, with the other owner's timeout.
        t.release(ep(a), ep(b), &None).unwrap();
        assert_eq!(indexed(&t, a, b), Some(72 * S));
        check_invariants(&t);
        // A stale plan changes nothing, a failed one neither.
        let plan = t.plan_open(owned(a, b, false, 5, None), 20 * S).unwrap();
        t.open(
            req("192.0.2.1:4002", "198.51.100.2:10002", false, 7),
            20 * S,
        )
        .unwrap();
        assert!(t.commit(plan).is_err());
        assert_eq!(indexed(&t, a, b), Some(72 * S));
        check_invariants(&t);
        t.close(ep(a), ep(b)).unwrap();
        assert_eq!(t.deadlines.len(), 1);
        check_invariants(&t);
        t.release(ep("192.0.2.1:4002"), ep("198.51.100.2:10002"), &None)
            .unwrap();
        assert!(t.deadlines.is_empty());
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn restored_pinholes_are_indexed_at_their_saved_activity() {
        let manual = |idle| {
            BTreeMap::from([(
                None,
                Claim {
                    idle_timeout_secs: idle,
                    rtcp: false,
                },
            )])
        };
        let mut t = PinholeTable::new(10);
        let (a, b) = ("192.0.2.1:4000", "198.51.100.2:10000");
        t.restore(PinholeId(4), (ep(a), ep(b)), manual(30), (S, 9 * S), 1)
            .unwrap();
        t.restore(
            PinholeId(5),
            (ep("192.0.2.1:4002"), ep("198.51.100.2:10002")),
            manual(0),
            (S, S),
            1,
        )
        .unwrap();
        assert_eq!(indexed(&t, a, b), Some(39 * S));
        assert_eq!(t.next_deadline(), Some(39 * S));
        check_invariants(&t);
        assert!(t.expire(38 * S, |_| None).is_empty());
        assert_eq!(t.expire(39 * S, |_| None)[0].0.id, PinholeId(4));
        check_invariants(&t);
    }

    #[test]
    fn expiry_is_bounded_per_call_and_reschedules_active_pinholes() {
        let mut t = PinholeTable::new(1000);
        // 10 pinholes with 10 s, opened at 0..9 s; the even ones see traffic
        // at 25 s.
        for i in 0..10u64 {
            t.open(
                req(
                    &format!("192.0.2.1:{}", 4000 + 2 * i),
                    &format!("198.51.100.2:{}", 10000 + 2 * i),
                    false,
                    10,
                ),
                i * S,
            )
            .unwrap();
        }
        let never = req("192.0.2.9:4000", "198.51.100.9:10000", false, 0);
        t.open(never, 0).unwrap();
        let seen = |k: &FlowKey| k.src_port.is_multiple_of(4).then_some(25 * S);
        let mut lookups = 0;
        let mut expired = Vec::new();
        let mut rescheduled = 0;
        // At 30 s all ten are due: four calls of at most 3.
        let mut calls = 0;
        loop {
            calls += 1;
            let step = t.expire_some(30 * S, 3, |k| {
                lookups += 1;
                seen(k)
            });
            assert!(step.expired.len() + step.rescheduled <= 3);
            expired.extend(step.expired.into_iter().map(|(p, _)| p.id.0));
            rescheduled += step.rescheduled;
            check_invariants(&t);
            if !step.more {
                break;
            }
            assert!(calls < 10, "expiry does not end");
        }
        assert_eq!(calls, 4);
        // Earliest deadline first; the odd (quiet) ones went.
        assert_eq!(expired, vec![2, 4, 6, 8, 10]);
        assert_eq!((rescheduled, t.len(), t.expired()), (5, 6, 5));
        assert_eq!(lookups, 20, "two flows of each due pinhole, once");
        // The active ones idle out 10 s after their traffic.
        assert_eq!(t.next_deadline(), Some(35 * S));
        let step = t.expire_some(35 * S, 100, |_| Some(25 * S));
        assert_eq!((step.expired.len(), step.more), (5, false));
        assert_eq!(t.len(), 1, "the pinhole that never expires stays");
        check_invariants(&t);
        // Budget 0 does nothing but says what is left.
        assert!(!t.expire_some(u64::MAX, 0, |_| None).more);
    }

    #[test]
    fn a_saturated_deadline_is_handled_once_and_kept() {
        let mut t = PinholeTable::new(10);
        t.open(
            req("192.0.2.1:4000", "198.51.100.2:10000", false, u64::MAX),
            5,
        )
        .unwrap();
        assert_eq!(t.next_deadline(), Some(u64::MAX));
        let step = t.expire_some(u64::MAX, usize::MAX, |_| None);
        assert_eq!(
            (step.expired.len(), step.rescheduled, step.more),
            (0, 1, false)
        );
        assert_eq!(t.len(), 1);
        check_invariants(&t);
    }

    #[test]
    fn expiry_leaves_a_snapshot_as_it_was() {
        let mut t = PinholeTable::new(10);
        t.open(req("192.0.2.1:4000", "198.51.100.2:10000", false, 10), 0)
            .unwrap();
        t.open(req("192.0.2.1:4002", "198.51.100.2:10002", false, 10), 0)
            .unwrap();
        let before = t.snapshot();
        let out = t.expire(10 * S, |k| (k.src_port == 4002).then_some(5 * S));
        assert_eq!(out.len(), 1);
        assert_eq!(before.len(), 2);
        assert!(before.values().all(|p| p.active_ns == 0));
        assert_eq!(t.iter().next().unwrap().active_ns, 5 * S);
        check_invariants(&t);
    }
}
