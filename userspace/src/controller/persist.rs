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

use std::collections::HashSet;

use super::*;
use crate::{
    calls::CallsSnapshot,
    controller::{
        state_file::{SavedPinhole, State, StateWriter},
        table::Pinholes,
    },
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

/// The controller's side of the state file.
pub(super) struct Persist {
    writer: Arc<StateWriter>,
    /// The fingerprint of the last snapshot taken (`None`: none yet).
    saved: Option<Fingerprint>,
    /// When the next write is due, if one is.
    due: Option<Instant>,
    /// No write before this.
    earliest: Instant,
}

impl Persist {
    pub(super) fn new(writer: Arc<StateWriter>) -> Self {
        Persist {
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
struct StateSnapshot {
    next_id: u64,
    pinholes: Pinholes,
    calls: CallsSnapshot,
}

impl StateSnapshot {
    fn into_state(self) -> State {
        State::new(
            self.next_id,
            self.pinholes.values().map(SavedPinhole::of).collect(),
            self.calls,
        )
    }
}

/// What [`Controller::restore`] did.
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

impl<S: FlowStore> Controller<S> {
    pub(super) fn fingerprint(&self) -> Fingerprint {
        let calls = self.feed.calls();
        Fingerprint {
            generation: self.core.table.generation(),
            signaling_packets: self.feed.counters().packets,
            ng_requests: self.ng.as_ref().map_or(0, |ng| {
                let c = ng.counters();
                c.ok.iter().chain(&c.errors).sum::<u64>()
            }),
            calls: calls.active_calls(),
            sessions: calls.active_sessions(),
            next_deadline: self.feed.next_deadline(),
        }
    }

    /// Schedules a write when the state changed since the last snapshot.
    pub(super) fn note_changes(&mut self) {
        if self.persist.is_none() {
            return;
        }
        let fp = self.fingerprint();
        let p = self.persist.as_mut().expect("checked");
        if p.saved != Some(fp) && p.due.is_none() {
            p.due = Some((Instant::now() + DEBOUNCE).max(p.earliest));
        }
    }

    /// The state as the state file keeps it.
    pub fn state(&self) -> State {
        self.state_snapshot().into_state()
    }

    /// What the state file keeps, taken now: cheap, the rest is done by
    /// [`StateSnapshot::into_state`] wherever the caller likes.
    fn state_snapshot(&self) -> StateSnapshot {
        let table = &self.core.table;
        StateSnapshot {
            next_id: table.next_id(),
            pinholes: table.snapshot(),
            calls: self.feed.calls().snapshot(),
        }
    }

    /// Hands a snapshot to the writer, which serialises and writes it;
    /// returns its sequence number (0 when there is no state file).
    pub(super) fn save_state(&mut self) -> u64 {
        if self.persist.is_none() {
            return 0;
        }
        let fp = self.fingerprint();
        let snapshot = self.state_snapshot();
        let p = self.persist.as_mut().expect("checked");
        let seq = p
            .writer
            .submit_with(move || snapshot.into_state().to_bytes());
        p.saved = Some(fp);
        p.due = None;
        p.earliest = Instant::now() + MIN_INTERVAL.max(p.writer.build_cost() * COST_FACTOR);
        seq
    }

    /// Takes over the state an earlier daemon saved: its calls and
    /// sessions, and its pinholes with their ids, owners and times. Then
    /// brings the flow store in line with the table (the store is the
    /// adopted map, which the earlier daemon may have changed after its
    /// last write): flows no pinhole has are removed, missing ones inserted.
    pub fn restore(&mut self, state: State) -> RestoreReport {
        let mut report = RestoreReport::default();
        self.feed.calls_mut().restore(state.calls);
        let calls = self.feed.calls();
        (report.calls, report.sessions) = (calls.active_calls(), calls.active_sessions());
        for saved in state.pinholes {
            let claims = saved.claims();
            match self.core.table.restore(
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
        let core = &mut self.core;
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
                error!(
                    "listing the adopted flows failed, flows of closed pinholes may stay open: {e}"
                );
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
        // Write the merged state back soon (it may differ from the file).
        self.note_changes();
        report
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use std::path::Path;

    use crate::calls::{Media, SipEvent, SipMethod, SipStart};

    const S: u64 = NS_PER_SEC;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn config(now: &Arc<AtomicU64>, capacity: usize) -> ControllerConfig {
        let now = now.clone();
        let mut c = ControllerConfig::new(capacity, 300);
        c.clock = Arc::new(move || now.load(Ordering::SeqCst));
        c.signaling_inline = true;
        c
    }

    fn open(c: &mut Controller<FakeStore>, a: &str, b: &str, rtcp: bool, idle: u64) {
        c.open(OpenParams {
            a: ep(a),
            b: ep(b),
            rtcp,
            idle_secs: Some(idle),
            owner: None,
        })
        .unwrap();
    }

    fn sip(src: &str, dst: &str, start: SipStart, to_tag: Option<&str>, port: u16) -> SipEvent {
        SipEvent {
            src: sa(src),
            dst: sa(dst),
            start,
            call_id: "c1@192.0.2.10".into(),
            from_tag: "ft".into(),
            to_tag: to_tag.map(str::to_string),
            cseq: 1,
            cseq_method: SipMethod::Invite,
            sdp: Some(vec![Media {
                rtp: Some(SocketAddr::new(sa(src).ip(), port)),
                rtcp: None,
                rtcp_mux: true,
                hold: false,
                one_way: false,
            }]),
        }
    }

    /// A daemon with a manual pinhole and a SIP call, saved, and a second
    /// daemon that takes over its (adopted) map and the saved state.
    #[test]
    fn a_second_controller_takes_over_pinholes_calls_and_ids() {
        let now = Arc::new(AtomicU64::new(1_000 * S));
        let mut first = Controller::new(FakeStore::new(64), config(&now, 64));
        open(&mut first, "192.0.2.1:4000", "198.51.100.2:10000", true, 30);
        let caller = "192.0.2.10:5060";
        let callee = "198.51.100.20:5060";
        let invite = sip(
            caller,
            callee,
            SipStart::Request(SipMethod::Invite),
            None,
            4000,
        );
        let ok = SipEvent {
            cseq: 1,
            ..sip(callee, caller, SipStart::Response(200), Some("tt"), 10000)
        };
        let calls = first.feed.calls_mut();
        for ev in [&invite, &ok] {
            let intents = calls.on_sip(ev, 1_000 * S);
            first.core.apply(intents, Source::Observed);
        }
        assert_eq!(first.core.table.len(), 2);
        // Traffic after the last save, and a flow of a pinhole opened after
        // it, are in the map the second daemon adopts.
        let saved = first.state();
        let json = String::from_utf8(saved.to_bytes()).unwrap();
        open(
            &mut first,
            "192.0.2.1:6000",
            "198.51.100.2:16000",
            false,
            30,
        );
        let mut map = std::mem::take(&mut first.core.store.flows);
        let a_to_b = flow_key(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"));
        map.get_mut(&a_to_b).unwrap().packets = 77;
        // And a flow of the saved table went missing.
        let rtcp = flow_key(ep("198.51.100.2:10001"), ep("192.0.2.1:4001"));
        map.remove(&rtcp).unwrap();

        now.store(1_010 * S, Ordering::SeqCst);
        let store = FakeStore {
            flows: map,
            ..FakeStore::new(64)
        };
        let mut second = Controller::new(store, config(&now, 64));
        let state = State::parse(
            Path::new("state.json"),
            json.as_bytes(),
            &crate::controller::state_file::boot_id(),
        )
        .unwrap();
        let report = second.restore(state);
        assert_eq!(
            report,
            RestoreReport {
                pinholes: 2,
                calls: 1,
                reinserted: 1,
                orphans_removed: 2,
                ..RestoreReport::default()
            }
        );
        assert_eq!(second.core.store.flows.len(), 6);
        assert_eq!(second.core.store.flows[&a_to_b].packets, 77);
        let list = second.list().unwrap();
        assert_eq!(list.pinholes.len(), 2);
        let manual = &list.pinholes[0];
        assert_eq!((manual.id, manual.age_secs, manual.packets), (1, 10, 77));
        assert_eq!(list.pinholes[1].owner, "sip:c1@192.0.2.10;from-tag=ft");
        // New ids continue after the first daemon's.
        let reply = second
            .open(OpenParams {
                a: ep("192.0.2.1:8000"),
                b: ep("198.51.100.2:18000"),
                rtcp: false,
                idle_secs: None,
                owner: None,
            })
            .unwrap();
        assert_eq!(reply.id, 3);
        // The call goes on: its BYE closes its pinhole (after the grace).
        let bye = SipEvent {
            start: SipStart::Request(SipMethod::Bye),
            cseq: 2,
            cseq_method: SipMethod::Bye,
            sdp: None,
            ..sip(
                caller,
                callee,
                SipStart::Request(SipMethod::Bye),
                Some("tt"),
                0,
            )
        };
        let intents = second.feed.calls_mut().on_sip(&bye, 1_011 * S);
        second.core.apply(intents, Source::Observed);
        now.store(1_020 * S, Ordering::SeqCst);
        second.tick();
        assert_eq!(second.core.table.len(), 2, "manual and the new one");
        assert_eq!(second.calls().unwrap().calls.len(), 0);
        // The manual pinhole still expires on its idle timeout, counted
        // from the adopted map's traffic.
        second
            .core
            .store
            .flows
            .get_mut(&a_to_b)
            .unwrap()
            .last_seen_ns = 1_015 * S;
        // Idle from the stamp plus its 1 s granularity: 1_016 + 30.
        now.store(1_045 * S, Ordering::SeqCst);
        second.tick();
        assert_eq!(second.core.table.len(), 2);
        now.store(1_046 * S, Ordering::SeqCst);
        second.tick();
        assert_eq!(second.core.table.len(), 1);
    }

    #[test]
    fn refused_pinholes_lose_their_flows() {
        let now = Arc::new(AtomicU64::new(1_000 * S));
        let mut first = Controller::new(FakeStore::new(64), config(&now, 64));
        open(&mut first, "192.0.2.1:4000", "198.51.100.2:10000", true, 30);
        open(
            &mut first,
            "192.0.2.1:6000",
            "198.51.100.2:16000",
            false,
            30,
        );
        let state = first.state();
        // The second daemon has room for one pinhole with RTCP only.
        let store = FakeStore {
            flows: std::mem::take(&mut first.core.store.flows),
            ..FakeStore::new(4)
        };
        let mut second = Controller::new(store, config(&now, 4));
        let report = second.restore(state);
        assert_eq!((report.pinholes, report.refused), (1, 1));
        assert_eq!(report.orphans_removed, 2);
        assert_eq!(second.core.store.flows.len(), 4);
        assert_eq!(second.core.table.flows_used(), 4);
    }

    #[test]
    fn changes_schedule_one_debounced_write() {
        let dir = std::env::temp_dir().join(format!("pinhole-persist-{}", std::process::id()));
        let path = dir.join("state.json");
        let writer = Arc::new(StateWriter::start(&path).unwrap());
        let now = Arc::new(AtomicU64::new(1_000 * S));
        let mut cfg = config(&now, 64);
        cfg.state_writer = Some(writer.clone());
        let mut c = Controller::new(FakeStore::new(64), cfg);
        c.note_changes();
        let first = c.persist.as_ref().unwrap().due().expect("never saved yet");
        let seq = c.save_state();
        assert!(c.persist.as_ref().unwrap().due().is_none());
        c.note_changes();
        assert!(
            c.persist.as_ref().unwrap().due().is_none(),
            "nothing changed"
        );
        open(&mut c, "192.0.2.1:4000", "198.51.100.2:10000", false, 30);
        c.note_changes();
        let due = c.persist.as_ref().unwrap().due().unwrap();
        assert!(
            due >= first + MIN_INTERVAL - DEBOUNCE,
            "spaced by MIN_INTERVAL"
        );
        // More changes before it is due do not move it.
        open(&mut c, "192.0.2.1:6000", "198.51.100.2:16000", false, 30);
        c.note_changes();
        assert_eq!(c.persist.as_ref().unwrap().due(), Some(due));
        let seq2 = c.save_state();
        assert!(seq2 > seq);
        // Serialised on the writer thread from the snapshot of the save:
        // what changes after it is not in the file.
        c.close(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"))
            .unwrap();
        open(&mut c, "192.0.2.1:8000", "198.51.100.2:18000", false, 30);
        writer.wait(seq2, Duration::from_secs(10)).unwrap();
        let saved = crate::controller::state_file::load(&path).unwrap().unwrap();
        let ports: Vec<u16> = saved.pinholes.iter().map(|p| p.a.port()).collect();
        assert_eq!(ports, [4000, 6000]);
        assert_eq!(saved.next_id, 3);
        drop(c);
        drop(writer);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
