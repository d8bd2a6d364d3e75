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
//!
//! Here: the table and its changes. `table/pinhole.rs` holds one pinhole
//! and its owners' claims, `table/changes.rs` the requests and results of a
//! change, `table/error.rs` the refusals.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pinhole_common::FlowKey;

use crate::addr::{pair_key, Endpoint, Pair, PairKey};
pub use changes::{Expiry, MapOp, OpenOutcome, OpenPlan, OpenRequest, Release};
pub use error::TableError;
use pinhole::effective;
pub use pinhole::{owner_name, Claim, OwnerTag, Pinhole, PinholeId, MANUAL_OWNER};

mod changes;
mod error;
mod pinhole;

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

/// The pinholes by id, shared with the snapshots taken of it.
pub type Pinholes = imbl::OrdMap<PinholeId, Pinhole>;

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
mod tests;
