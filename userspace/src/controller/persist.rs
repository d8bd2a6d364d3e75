//! Keeping the state file in step with the controller, and taking over the
//! state an earlier daemon saved (see [`crate::controller::state_file`]).
//!
//! After every command, tick or timer the controller compares a cheap
//! [`Fingerprint`] of its state with the one it last saved; a difference
//! schedules a write [`DEBOUNCE`] later, so a burst of changes is written
//! once. Writes are also spaced by at least [`MIN_INTERVAL`] and by
//! [`COST_FACTOR`] times what the last snapshot took to serialise, which
//! bounds the share of a CPU that goes into saving a big table.
//!
//! The controller only takes the snapshot: the table's is O(1)
//! ([`PinholeTable::snapshot`]), the calls' a copy (O(calls), a few hundred
//! bytes each). The [`StateWriter`] thread turns it into JSON and writes
//! it, so the pinholes and calls of one instant are saved together, in the
//! order the snapshots were taken, without holding the controller up.

use std::{collections::HashSet, sync::Arc, time::Duration};

use pinhole_common::FlowKey;
use tokio::time::Instant;
use tracing::error;

use super::{
    core::{Core, FlowDisplay},
    state_file::{SavedPinhole, State, StateWriter},
    table::{PinholeId, PinholeTable, Pinholes},
    FlowStore,
};
use crate::{
    calls::{Calls, CallsSnapshot},
    datapath::maps::Inserted,
    feed::Feed,
    ng::NgService,
};

/// Delay between a change and its write, to coalesce bursts.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// Least time between two writes.
pub const MIN_INTERVAL: Duration = Duration::from_millis(200);
/// Writes are spaced by at least this many times the cost of the last
/// snapshot.
pub const COST_FACTOR: u32 = 20;

/// What changes whenever anything the state file holds changes: the
/// table's generation, and for the call state the signaling and ng requests
/// handled, the calls and sessions tracked and their next timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fingerprint {
    generation: u64,
    signaling_packets: u64,
    ng_requests: u64,
    calls: usize,
    sessions: usize,
    next_deadline: Option<u64>,
}

/// The controller's side of the state file: when to write, and handing
/// the writer what to write.
pub(super) struct Persister {
    writer: Arc<StateWriter>,
    /// The fingerprint of the last snapshot taken (`None`: none yet).
    saved: Option<Fingerprint>,
    /// When the next write is due, if one is.
    due: Option<Instant>,
    /// No write before this.
    earliest: Instant,
}

impl Persister {
    pub(super) fn new(writer: Arc<StateWriter>) -> Self {
        Persister {
            writer,
            saved: None,
            due: None,
            earliest: Instant::now(),
        }
    }

    /// When the pending write is due.
    pub(super) fn due(&self) -> Option<Instant> {
        self.due
    }
}

/// The state of one instant, before it is serialised.
pub(super) struct StateSnapshot {
    next_id: u64,
    pinholes: Pinholes,
    calls: CallsSnapshot,
}

impl StateSnapshot {
    /// What the state file keeps, taken now: cheap (the table's snapshot
    /// is O(1), the calls' a copy), the rest is done by
    /// [`into_state`](Self::into_state) wherever the caller likes.
    pub(super) fn take(table: &PinholeTable, calls: &Calls) -> Self {
        StateSnapshot {
            next_id: table.next_id(),
            pinholes: table.snapshot(),
            calls: calls.snapshot(),
        }
    }

    pub(super) fn into_state(self) -> State {
        State::new(
            self.next_id,
            self.pinholes.values().map(SavedPinhole::of).collect(),
            self.calls,
        )
    }
}

/// What [`Controller::restore`](super::Controller::restore) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Pinholes put back into the table.
    pub pinholes: usize,
    /// Saved pinholes that could not be put back (logged each).
    pub refused: usize,
    /// SIP calls and RTSP sessions taken over.
    pub calls: usize,
    pub sessions: usize,
    /// Flows of restored pinholes that the map lacked and that were
    /// inserted again.
    pub reinserted: usize,
    /// Flows in the map that no restored pinhole has, removed.
    pub orphans_removed: usize,
    /// Flows that could not be inserted or removed (logged each).
    pub failed: usize,
}

impl Fingerprint {
    /// The fingerprint of the table, the calls and the ng service now.
    pub(super) fn of(table: &PinholeTable, feed: &Feed, ng: Option<&NgService>) -> Self {
        let calls = feed.calls();
        Fingerprint {
            generation: table.generation(),
            signaling_packets: feed.counters().packets,
            ng_requests: ng.map_or(0, |ng| {
                let c = ng.counters();
                c.ok.iter().chain(&c.errors).sum::<u64>()
            }),
            calls: calls.active_calls(),
            sessions: calls.active_sessions(),
            next_deadline: feed.next_deadline(),
        }
    }
}

impl Persister {
    /// Schedules a write when the state (`now`, its fingerprint) changed
    /// since the last snapshot.
    pub(super) fn note(&mut self, now: Fingerprint) {
        if self.saved != Some(now) && self.due.is_none() {
            self.due = Some((Instant::now() + DEBOUNCE).max(self.earliest));
        }
    }

    /// Hands `snapshot` (whose fingerprint is `fp`) to the writer, which
    /// serialises and writes it; returns its sequence number.
    pub(super) fn save(&mut self, fp: Fingerprint, snapshot: StateSnapshot) -> u64 {
        let seq = self
            .writer
            .submit_with(move || snapshot.into_state().to_bytes());
        self.saved = Some(fp);
        self.due = None;
        self.earliest = Instant::now() + MIN_INTERVAL.max(self.writer.build_cost() * COST_FACTOR);
        seq
    }
}

/// Takes over the state an earlier daemon saved: its calls and sessions
/// (into `calls`), and its pinholes with their ids, owners and times (into
/// `core`'s table). Then brings the flow store in line with the table (the
/// store is the adopted map, which the earlier daemon may have changed
/// after its last write): flows no pinhole has are removed, missing ones
/// inserted.
pub(super) fn restore<S: FlowStore>(
    core: &mut Core<S>,
    calls: &mut Calls,
    state: State,
) -> RestoreReport {
    let mut report = RestoreReport::default();
    calls.restore(state.calls);
    (report.calls, report.sessions) = (calls.active_calls(), calls.active_sessions());
    for saved in state.pinholes {
        let claims = saved.claims();
        match core.table.restore(
            PinholeId(saved.id),
            (saved.a, saved.b),
            claims,
            (saved.created_ns, saved.active_ns),
            state.next_id,
        ) {
            Ok(_) => report.pinholes += 1,
            Err(e) => {
                error!("{e}; its flows are removed");
                report.refused += 1;
            }
        }
    }
    let wanted: HashSet<FlowKey> = core
        .table
        .iter()
        .flat_map(|p| p.flows.iter().copied())
        .collect();
    match core.store.keys() {
        Ok(keys) => {
            for k in keys.iter().filter(|k| !wanted.contains(k)) {
                match core.store.remove(k) {
                    Ok(_) => report.orphans_removed += 1,
                    Err(e) => {
                        error!(flow = %FlowDisplay(k), "removing a flow no pinhole has: {e}");
                        core.pending_removals.push(*k);
                        report.failed += 1;
                    }
                }
            }
        }
        Err(e) => {
            error!("listing the adopted flows failed, flows of closed pinholes may stay open: {e}");
            report.failed += 1;
        }
    }
    let mut wanted: Vec<FlowKey> = wanted.into_iter().collect();
    wanted.sort_by_key(|k| (k.src_addr, k.dst_addr, k.src_port, k.dst_port));
    for k in &wanted {
        match core.store.insert(k) {
            Ok(Inserted::New) => report.reinserted += 1,
            Ok(Inserted::Existed) => {}
            Err(e) => {
                error!(flow = %FlowDisplay(k), "restoring a flow failed, its pinhole passes nothing: {e}");
                report.failed += 1;
            }
        }
    }
    report
}

#[cfg(test)]
mod tests;
