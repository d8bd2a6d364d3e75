//! The pinhole table: which pinholes are open and which flows they need.
//!
//! Pure state: no kernel, no clock, no I/O. Every change returns the
//! [`MapOp`]s that bring the flow map in line with the table; the caller
//! applies them. Several pinholes may need the same flow (for example a
//! pinhole with RTCP and another one on the RTCP ports), so each flow carries a
//! reference count and is inserted on its first user and removed with its last.
//!
//! Capacity is counted in flows (map entries). A pinhole that does not fit is
//! refused ([`TableError::Full`]) and counted; nothing is ever evicted.
//!
//! Times are nanoseconds of CLOCK_MONOTONIC, the clock of the XDP program's
//! `last_seen_ns`.

use std::collections::{BTreeMap, HashMap};

use pinhole_common::FlowKey;

use crate::{
    addr::{pair_key, Endpoint, Pair, PairKey},
    error::TableError,
};

const NS_PER_SEC: u64 = 1_000_000_000;

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
    /// Who opened it (for example a call id), so that a signaling layer can
    /// close everything it owns. Free text, `None` for the CLI.
    pub owner: Option<String>,
}

/// An open pinhole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pinhole {
    pub id: PinholeId,
    pub pair: Pair,
    pub idle_timeout_secs: u64,
    pub owner: Option<String>,
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

    /// The latest activity, given the flows' `last_seen_ns`.
    pub fn last_active_ns(&self, mut last_seen: impl FnMut(&FlowKey) -> Option<u64>) -> u64 {
        self.flows
            .iter()
            .filter_map(&mut last_seen)
            .fold(self.active_ns, u64::max)
    }
}

/// Whether an open created a pinhole or updated an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenOutcome {
    Opened,
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

/// The table of open pinholes.
#[derive(Debug)]
pub struct PinholeTable {
    capacity: usize,
    pinholes: BTreeMap<PinholeId, Pinhole>,
    by_pair: HashMap<PairKey, PinholeId>,
    refs: HashMap<FlowKey, u32>,
    next_id: u64,
    /// Bumped on every change; plans made before a change are refused.
    generation: u64,
    rejected_full: u64,
    expired: u64,
}

impl PinholeTable {
    /// An empty table that holds at most `capacity` flows.
    pub fn new(capacity: usize) -> Self {
        PinholeTable {
            capacity,
            pinholes: BTreeMap::new(),
            by_pair: HashMap::new(),
            refs: HashMap::new(),
            next_id: 1,
            generation: 0,
            rejected_full: 0,
            expired: 0,
        }
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

    pub fn get(&self, id: PinholeId) -> Option<&Pinhole> {
        self.pinholes.get(&id)
    }

    /// The pinhole joining `a` and `b`, in either orientation.
    pub fn find(&self, a: Endpoint, b: Endpoint) -> Option<&Pinhole> {
        self.by_pair
            .get(&pair_key(a, b))
            .and_then(|id| self.pinholes.get(id))
    }

    /// How many pinholes use `flow`.
    pub fn refcount(&self, flow: &FlowKey) -> u32 {
        self.refs.get(flow).copied().unwrap_or(0)
    }

    /// Checks an open and computes its map changes without changing the table.
    ///
    /// Opening a pair that is already open (in either orientation) is
    /// idempotent: the pinhole keeps its id, orientation and flows' counters,
    /// takes the new idle timeout, RTCP choice and owner, and its idle time
    /// restarts at `now`. Only flows no pinhole has yet are inserted.
    ///
    /// Refuses with [`TableError::Full`] (and counts the refusal) when the
    /// inserts would exceed the capacity. Removes are not credited: the map
    /// must hold the new flows before the old ones go.
    pub fn plan_open(&mut self, req: OpenRequest, now_ns: u64) -> Result<OpenPlan, TableError> {
        let existing = self.by_pair.get(&req.pair.key()).copied();
        let (pinhole, outcome) = match existing.and_then(|id| self.pinholes.get(&id)) {
            Some(old) => {
                // Keep the original orientation for display; the flow set is
                // the same either way.
                let pair = if req.pair.a() == old.pair.a() {
                    req.pair
                } else {
                    req.pair.reversed()
                };
                let p = Pinhole {
                    id: old.id,
                    pair,
                    idle_timeout_secs: req.idle_timeout_secs,
                    owner: req.owner,
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
                    owner: req.owner,
                    created_ns: now_ns,
                    active_ns: now_ns,
                    flows: req.pair.flows(),
                };
                (p, OpenOutcome::Opened)
            }
        };
        let old_flows: &[FlowKey] = existing
            .and_then(|id| self.pinholes.get(&id))
            .map_or(&[], |p| &p.flows);

        let mut ops = Vec::new();
        for f in &pinhole.flows {
            if !old_flows.contains(f) && self.refcount(f) == 0 {
                ops.push(MapOp::Insert(*f));
            }
        }
        let needed = ops.len();
        let free = self.capacity.saturating_sub(self.refs.len());
        if needed > free {
            self.rejected_full += 1;
            return Err(TableError::Full {
                needed,
                free,
                capacity: self.capacity,
            });
        }
        for f in old_flows {
            if !pinhole.flows.contains(f) && self.refcount(f) == 1 {
                ops.push(MapOp::Remove(*f));
            }
        }
        Ok(OpenPlan {
            generation: self.generation,
            pinhole,
            outcome,
            ops,
        })
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
        if let Some(old) = self.pinholes.remove(&id) {
            self.release(&old.flows);
        } else {
            self.next_id += 1;
        }
        for f in &pinhole.flows {
            *self.refs.entry(*f).or_insert(0) += 1;
        }
        self.by_pair.insert(pinhole.pair.key(), id);
        self.pinholes.insert(id, pinhole);
        self.generation += 1;
        Ok((id, outcome))
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

    /// Closes the pinhole joining `a` and `b` (either orientation), including
    /// its RTCP flows. Returns it and the flows to remove.
    pub fn close(&mut self, a: Endpoint, b: Endpoint) -> Result<(Pinhole, Vec<MapOp>), TableError> {
        let id = self
            .by_pair
            .get(&pair_key(a, b))
            .copied()
            .ok_or(TableError::NotFound {
                a: a.addr(),
                b: b.addr(),
            })?;
        Ok(self
            .remove(id)
            .expect("by_pair only names pinholes in the table"))
    }

    /// Closes every pinhole whose owner is `owner`.
    pub fn close_owned(&mut self, owner: &str) -> Vec<(Pinhole, Vec<MapOp>)> {
        let ids: Vec<PinholeId> = self
            .pinholes
            .values()
            .filter(|p| p.owner.as_deref() == Some(owner))
            .map(|p| p.id)
            .collect();
        ids.into_iter().filter_map(|id| self.remove(id)).collect()
    }

    /// Closes the pinholes idle for at least their timeout at `now_ns`.
    ///
    /// Idle time is `now − max(last open, newest last_seen of its flows)`.
    /// `last_seen` is only asked about pinholes whose known activity is old
    /// enough to expire, so a tick costs no map lookups for active pinholes.
    /// A timeout of 0 never expires.
    pub fn expire(
        &mut self,
        now_ns: u64,
        mut last_seen: impl FnMut(&FlowKey) -> Option<u64>,
    ) -> Vec<(Pinhole, Vec<MapOp>)> {
        let mut due = Vec::new();
        for p in self.pinholes.values_mut() {
            let Some(timeout) = p.idle_timeout_ns() else {
                continue;
            };
            if now_ns.saturating_sub(p.active_ns) < timeout {
                continue;
            }
            p.active_ns = p.last_active_ns(&mut last_seen);
            if now_ns.saturating_sub(p.active_ns) >= timeout {
                due.push(p.id);
            }
        }
        let out: Vec<_> = due.into_iter().filter_map(|id| self.remove(id)).collect();
        self.expired += out.len() as u64;
        out
    }

    fn remove(&mut self, id: PinholeId) -> Option<(Pinhole, Vec<MapOp>)> {
        let p = self.pinholes.remove(&id)?;
        self.by_pair.remove(&p.pair.key());
        let ops = self.release(&p.flows);
        self.generation += 1;
        Some((p, ops))
    }

    /// Drops one reference to each flow; returns removes for the flows that
    /// lost their last user.
    fn release(&mut self, flows: &[FlowKey]) -> Vec<MapOp> {
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
        // Same pair, other orientation, new timeout, later.
        let mut r2 = req("198.51.100.2:10000", "192.0.2.1:4000", false, 60);
        r2.owner = Some("call-1".into());
        let (id2, outcome, ops) = t.open(r2, 20 * S).unwrap();
        assert_eq!((id2, outcome), (id, OpenOutcome::Refreshed));
        assert!(ops.is_empty(), "no duplicate flows: {ops:?}");
        let p = t.get(id).unwrap();
        assert_eq!(p.idle_timeout_secs, 60);
        assert_eq!(p.created_ns, 10 * S);
        assert_eq!(p.active_ns, 20 * S);
        assert_eq!(p.owner.as_deref(), Some("call-1"));
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

    #[test]
    fn close_owned_closes_only_that_owner() {
        let mut t = PinholeTable::new(10);
        for (port, owner) in [(4000, Some("call-a")), (4002, Some("call-b")), (4004, None)] {
            let mut r = req(&format!("192.0.2.1:{port}"), "198.51.100.2:10000", false, 0);
            r.owner = owner.map(str::to_string);
            t.open(r, 0).unwrap();
        }
        let closed = t.close_owned("call-a");
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].0.pair.a().port(), 4000);
        assert!(t.close_owned("call-a").is_empty());
        assert_eq!(t.len(), 2);
        check_invariants(&t);
    }
}
