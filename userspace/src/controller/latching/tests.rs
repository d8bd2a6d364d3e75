use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use tokio::sync::mpsc;

use super::*;
use crate::{
    calls::{CallKey, Intent, Owner},
    controller::{
        core::{Applied, Source},
        Controller, ControllerConfig, ControllerHandle, FakeStore,
    },
};

const S: u64 = NS_PER_SEC;
const WINDOW: Duration = Duration::from_secs(5);
/// The caller's SDP address behind NAT, its signaling address, the
/// port its NAT picks, and the callee's media endpoint.
const SDP: &str = "203.0.113.5:30000";
const SIGNALING: &str = "192.0.2.10";
const NAT: &str = "192.0.2.10:40000";
const LOCAL: &str = "198.51.100.20:10000";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn owner(call: &str) -> Owner {
    Owner::Sip(CallKey {
        call_id: call.into(),
        caller_tag: "t".into(),
    })
}

fn tag(call: &str) -> String {
    owner(call).to_string()
}

fn latch_pair(call: &str, a: &str, b: &str, side: Side, from: &str) -> Intent {
    Intent::Latch {
        owner: owner(call),
        a: sa(a),
        b: sa(b),
        side,
        from: from.parse().unwrap(),
        window: WINDOW,
        idle_timeout: Duration::from_secs(60),
        pre_answer: false,
    }
}

fn latch(call: &str) -> Intent {
    latch_pair(call, SDP, LOCAL, Side::A, SIGNALING)
}

fn close_pair(call: &str, a: &str, b: &str) -> Intent {
    Intent::Close {
        owner: owner(call),
        a: sa(a),
        b: sa(b),
        cause: CloseCause::Bye,
    }
}

fn close(call: &str) -> Intent {
    close_pair(call, SDP, LOCAL)
}

struct Fx {
    now: Arc<AtomicU64>,
    c: Controller<FakeStore>,
}

impl Fx {
    /// A controller whose table holds `capacity` flows and whose flow
    /// map holds `store_capacity`.
    fn new(capacity: usize, store_capacity: usize) -> Fx {
        let now = Arc::new(AtomicU64::new(1_000 * S));
        let clock = now.clone();
        let mut config = ControllerConfig::new(capacity, 30);
        config.clock = Arc::new(move || clock.load(Ordering::SeqCst));
        Fx {
            now,
            c: Controller::new(FakeStore::new(store_capacity), config),
        }
    }

    fn at(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn advance(&self, d: u64) {
        self.now.fetch_add(d, Ordering::SeqCst);
    }

    fn apply(&mut self, intents: Vec<Intent>) -> Applied {
        self.c.core.apply(intents, Source::Observed)
    }

    /// A packet `src → LOCAL` reaching the program.
    fn packet(&mut self, src: &str) -> Option<Latched> {
        let now = self.at();
        self.c.core.store.kernel_latch(sa(src), sa(LOCAL), now)
    }

    fn counters(&self) -> LatchCounters {
        *self.c.latch_counters()
    }

    /// (pinhole a, b, owners) of every pinhole.
    fn pinholes(&self) -> Vec<(SocketAddr, SocketAddr, Vec<String>)> {
        self.c
            .table()
            .iter()
            .map(|p| {
                (
                    p.pair.a().addr(),
                    p.pair.b().addr(),
                    p.owner_names().map(str::to_string).collect(),
                )
            })
            .collect()
    }

    /// The flow map holds exactly the table's flows, and nothing is
    /// reserved unless an entry is pending.
    fn assert_consistent(&self) {
        let mut want: Vec<FlowKey> = self
            .c
            .table()
            .iter()
            .flat_map(|p| p.flows.clone())
            .collect();
        want.sort();
        want.dedup();
        let mut have: Vec<FlowKey> = self.c.store().flows.keys().copied().collect();
        have.sort();
        assert_eq!(have, want, "flow map and table agree");
        let pending = self.c.core.latching.pending();
        assert_eq!(self.c.table().reserved(), 2 * pending, "reservations");
        assert_eq!(self.c.store().latches.len(), pending, "latch map entries");
    }
}

fn flows(src: &str, dst: &str) -> [FlowKey; 2] {
    let (s, d) = (
        Endpoint::new(sa(src)).unwrap(),
        Endpoint::new(sa(dst)).unwrap(),
    );
    [flow_key(s, d), flow_key(d, s)]
}

#[test]
fn the_first_packet_latches_the_exact_pair_for_the_call() {
    let mut fx = Fx::new(64, 64);
    let r = fx.apply(vec![latch("c1")]);
    assert_eq!((r.opened, r.failures.len()), (1, 0));
    assert_eq!(fx.c.table().reserved(), 2);
    assert!(fx.pinholes().is_empty());
    fx.assert_consistent();

    // Another host cannot claim it; the signaling address can, once.
    assert_eq!(fx.packet("192.0.2.99:40000"), None);
    let ev = fx.packet(NAT).expect("latched");
    assert!(ev.installed);
    assert_eq!(
        fx.packet("192.0.2.10:40002"),
        None,
        "strict after the latch"
    );
    fx.c.on_latched(vec![ev]);
    assert_eq!(
        fx.pinholes(),
        vec![(sa(NAT), sa(LOCAL), vec![tag("c1")])],
        "the latched pair, in the signaled orientation, owned by the call"
    );
    let p = fx.c.table().iter().next().unwrap();
    assert_eq!(p.idle_timeout_secs, 60);
    // The call's streams are the signaled pair; their traffic is the
    // latched pair's.
    let [fwd, _] = flows(NAT, LOCAL);
    fx.c.core.store.flows.get_mut(&fwd).unwrap().packets = 7;
    let totals = |s: &str, d: &str| {
        let (s, d) = fx.c.core.latching.signaled_flow(&tag("c1"), sa(s), sa(d));
        fx.c.core.flow_totals(s, d).packets
    };
    assert_eq!((totals(SDP, LOCAL), totals(LOCAL, SDP)), (7, 0));
    fx.assert_consistent();
    let c = fx.counters();
    assert_eq!((c.armed, c.latched, c.orphaned), (1, 1, 0));
    let stats = fx.c.stats().unwrap();
    assert_eq!(stats.signaling.detail["latching"]["counters"]["latched"], 1);
    assert_eq!(stats.signaling.detail["latching"]["pending"], 0);

    // The call's close names the signaled pair.
    fx.apply(vec![close("c1")]);
    assert!(fx.pinholes().is_empty());
    fx.assert_consistent();
    assert!(fx.c.store().flows.is_empty());
}

/// An ng call's latch is claimed under its `ng:` tag; its close, from
/// an ng request or from the timers, releases it (latched or not).
#[test]
fn an_ng_calls_latch_closes_with_it() {
    let mut fx = Fx::new(64, 64);
    fx.c.core.apply(vec![latch("c1")], Source::Ng);
    let ev = fx.packet(NAT).expect("latched");
    fx.c.on_latched(vec![ev]);
    assert_eq!(fx.pinholes().len(), 1);
    // The close of a delete-delay comes from the timers (observed).
    fx.apply(vec![close("c1")]);
    assert!(fx.pinholes().is_empty(), "the latched pair closed");
    fx.assert_consistent();
    assert!(fx.c.store().flows.is_empty());
    // Not latched yet: the close withdraws the entry.
    fx.c.core.apply(vec![latch("c2")], Source::Ng);
    fx.c.core.apply(vec![close("c2")], Source::Ng);
    assert_eq!(fx.counters().withdrawn, 1);
    fx.assert_consistent();
    assert_eq!(fx.packet(NAT), None);
}

#[test]
fn an_unlatched_entry_expires_on_the_tick_after_its_window() {
    let mut fx = Fx::new(64, 64);
    fx.apply(vec![latch("c1")]);
    fx.advance(WINDOW.as_nanos() as u64 - 1);
    fx.c.tick();
    assert_eq!(fx.counters().expired, 0, "still inside the window");
    fx.advance(1);
    fx.c.tick();
    assert_eq!(fx.counters().expired, 1);
    fx.assert_consistent();
    assert_eq!(fx.packet(NAT), None, "gone from the map");
    // Its close finds nothing to do.
    fx.apply(vec![close("c1")]);
    fx.assert_consistent();
    assert!(fx.pinholes().is_empty());
}

#[test]
fn closing_before_the_latch_withdraws_the_entry() {
    let mut fx = Fx::new(64, 64);
    fx.apply(vec![latch("c1"), close("c1")]);
    assert_eq!(fx.counters().withdrawn, 1);
    fx.assert_consistent();
    assert_eq!(fx.packet(NAT), None);
}

#[test]
fn a_latch_reported_after_its_call_closed_is_removed_again() {
    let mut fx = Fx::new(64, 64);
    fx.apply(vec![latch("c1")]);
    let ev = fx.packet(NAT).expect("latched");
    // The call closes while the report is on its way: the removal finds
    // the entry claimed, so the controller waits for the report.
    fx.apply(vec![close("c1")]);
    assert_eq!(fx.c.core.latching.pending(), 1);
    fx.c.on_latched(vec![ev]);
    assert_eq!(fx.counters().orphaned, 1);
    assert!(fx.pinholes().is_empty());
    fx.assert_consistent();
    assert!(
        fx.c.store().flows.is_empty(),
        "the program's flows are removed"
    );
}

#[test]
fn a_latch_claimed_just_before_its_deadline_is_still_adopted() {
    let mut fx = Fx::new(64, 64);
    fx.apply(vec![latch("c1")]);
    let ev = fx.packet(NAT).expect("latched");
    fx.advance(WINDOW.as_nanos() as u64 + S);
    fx.c.tick();
    assert_eq!(fx.counters().expired, 0, "claimed, not expired");
    fx.c.on_latched(vec![ev]);
    assert_eq!(fx.pinholes().len(), 1);
    fx.assert_consistent();
}

#[test]
fn calls_sharing_an_entry_share_the_latched_pinhole() {
    let mut fx = Fx::new(64, 64);
    fx.apply(vec![latch("c1"), latch("c2")]);
    assert_eq!(fx.counters().armed, 1, "one entry");
    assert_eq!(fx.c.table().reserved(), 2);
    let ev = fx.packet(NAT).unwrap();
    fx.c.on_latched(vec![ev]);
    assert_eq!(
        fx.pinholes(),
        vec![(sa(NAT), sa(LOCAL), vec![tag("c1"), tag("c2")])]
    );
    fx.apply(vec![close("c1")]);
    assert_eq!(fx.pinholes().len(), 1, "c2 still holds it");
    fx.apply(vec![close("c2")]);
    assert!(fx.pinholes().is_empty());
    fx.assert_consistent();
}

#[test]
fn reservations_keep_room_for_the_latch_and_full_maps_are_counted() {
    // A table of 4 flows: one manual pinhole (2) and one half-open (2).
    let mut fx = Fx::new(4, 64);
    fx.c.open(crate::controller::report::OpenParams {
        a: "192.0.2.1:4000".parse().unwrap(),
        b: "198.51.100.2:10000".parse().unwrap(),
        rtcp: false,
        idle_secs: None,
        owner: None,
    })
    .unwrap();
    assert_eq!(fx.apply(vec![latch("c1")]).opened, 1);
    // No room for another half-open, nor for a manual open.
    let other = latch_pair("c2", SDP, "198.51.100.20:10002", Side::A, SIGNALING);
    assert_eq!(fx.apply(vec![other]).failures.len(), 1);
    assert_eq!(fx.counters().refused_full, 1);
    assert_eq!(fx.c.applied().map_full, 1);
    let manual = fx.c.open(crate::controller::report::OpenParams {
        a: "192.0.2.1:4002".parse().unwrap(),
        b: "198.51.100.2:10002".parse().unwrap(),
        rtcp: false,
        idle_secs: None,
        owner: None,
    });
    assert!(manual.is_err(), "the reserved flows are not free");
    // The reserved room is there for the latch.
    let ev = fx.packet(NAT).unwrap();
    fx.c.on_latched(vec![ev]);
    assert_eq!(fx.pinholes().len(), 2);
    fx.assert_consistent();

    // A full latch map refuses the half-open, counted.
    let mut fx = Fx::new(64, 64);
    fx.c.core.store.latch_capacity = Some(0);
    assert_eq!(fx.apply(vec![latch("c1")]).failures.len(), 1);
    assert_eq!(fx.counters().refused_full, 1);
    assert_eq!(fx.c.applied().map_full, 1);
    fx.assert_consistent();
}

#[test]
fn a_full_flow_map_fails_the_latch_and_keeps_the_entry() {
    // The kernel map is smaller than the table (as if something else
    // filled it): the program reports the failure and puts the entry
    // back.
    let mut fx = Fx::new(64, 1);
    fx.apply(vec![latch("c1")]);
    let ev = fx.packet(NAT).unwrap();
    assert!(!ev.installed);
    fx.c.on_latched(vec![ev]);
    let c = fx.counters();
    assert_eq!((c.flows_full, c.latched), (1, 0));
    assert_eq!(fx.c.applied().map_full, 1);
    assert!(fx.pinholes().is_empty());
    fx.assert_consistent();
    // Room again: the next packet latches.
    fx.c.core.store.capacity = 64;
    let ev = fx.packet(NAT).unwrap();
    fx.c.on_latched(vec![ev]);
    assert_eq!(fx.pinholes().len(), 1);
    fx.assert_consistent();
}

#[test]
fn the_callee_side_latches_in_its_orientation() {
    let mut fx = Fx::new(64, 64);
    let intent = latch_pair("c1", LOCAL, SDP, Side::B, SIGNALING);
    fx.apply(vec![intent]);
    let ev = fx.packet(NAT).unwrap();
    fx.c.on_latched(vec![ev]);
    assert_eq!(fx.pinholes(), vec![(sa(LOCAL), sa(NAT), vec![tag("c1")])]);
    let [fwd, rev] = flows(NAT, LOCAL);
    assert!(fx.c.store().flows.contains_key(&fwd) && fx.c.store().flows.contains_key(&rev));
    fx.apply(vec![close_pair("c1", LOCAL, SDP)]);
    assert!(fx.pinholes().is_empty());
    fx.assert_consistent();
}

#[test]
fn bad_latches_are_refused() {
    let mut fx = Fx::new(64, 64);
    let cases = [
        latch_pair("c1", SDP, LOCAL, Side::A, "2001:db8::1"),
        latch_pair("c1", SDP, LOCAL, Side::A, "224.0.0.1"),
        latch_pair("c1", SDP, SDP, Side::A, SIGNALING),
    ];
    for intent in cases {
        let r = fx.apply(vec![intent.clone()]);
        assert_eq!(r.failures.len(), 1, "{intent:?}");
    }
    assert_eq!(fx.c.applied().failed, 3);
    fx.assert_consistent();
}

/// The provisional pair of `call`: the caller's end unknown (its
/// signaling address, port 0), the offered `LOCAL` known.
fn provisional(call: &str) -> Intent {
    Intent::Latch {
        owner: owner(call),
        a: SocketAddr::new(SIGNALING.parse().unwrap(), 0),
        b: sa(LOCAL),
        side: Side::A,
        from: SIGNALING.parse().unwrap(),
        window: WINDOW,
        idle_timeout: Duration::from_secs(60),
        pre_answer: true,
    }
}

fn close_provisional(call: &str) -> Intent {
    Intent::Close {
        owner: owner(call),
        a: SocketAddr::new(SIGNALING.parse().unwrap(), 0),
        b: sa(LOCAL),
        cause: CloseCause::Renegotiated,
    }
}

fn open_pair(call: &str, a: &str) -> Intent {
    Intent::Open {
        owner: owner(call),
        a: sa(a),
        b: sa(LOCAL),
        idle_timeout: Duration::from_secs(60),
    }
}

fn pre_answer_tag(call: &str) -> String {
    format!("{}{PRE_ANSWER_SUFFIX}", tag(call))
}

#[test]
fn an_answer_naming_the_latched_pair_keeps_its_flows() {
    let mut fx = Fx::new(64, 64);
    assert_eq!(fx.apply(vec![provisional("c1")]).opened, 1);
    let ev = fx.packet(NAT).expect("the early packet latches");
    fx.c.on_latched(vec![ev]);
    assert_eq!(
        fx.pinholes(),
        vec![(sa(NAT), sa(LOCAL), vec![pre_answer_tag("c1")])]
    );
    // The answer names the same port: its open comes first, then the
    // provisional close. One call holding the pair twice is two claims.
    fx.apply(vec![open_pair("c1", NAT), close_provisional("c1")]);
    assert_eq!(fx.pinholes(), vec![(sa(NAT), sa(LOCAL), vec![tag("c1")])]);
    let [fwd, rev] = flows(NAT, LOCAL);
    assert!(fx.c.store().flows.contains_key(&fwd) && fx.c.store().flows.contains_key(&rev));
    fx.assert_consistent();
    let pa = fx.counters().pre_answer;
    assert_eq!(
        (pa.armed, pa.latched, pa.confirmed, pa.superseded),
        (1, 1, 1, 0)
    );
    let stats = fx.c.stats().unwrap();
    assert_eq!(
        stats.signaling.detail["latching"]["counters"]["pre_answer"]["confirmed"],
        1
    );
    // And the metrics export them.
    let events = fx.c.snapshot().latch_events;
    assert!(
        events.contains(&("pre_answer", "confirmed", 1)),
        "{events:?}"
    );
    assert!(events.contains(&("entry", "latched", 1)), "{events:?}");
    // The call's end closes it.
    fx.apply(vec![close_pair("c1", NAT, LOCAL)]);
    assert!(fx.pinholes().is_empty());
    assert!(fx.c.store().flows.is_empty());
    fx.assert_consistent();
}

#[test]
fn an_answer_naming_another_port_removes_the_latched_pair() {
    let mut fx = Fx::new(64, 64);
    fx.apply(vec![provisional("c1")]);
    let ev = fx.packet("192.0.2.10:40002").unwrap();
    fx.c.on_latched(vec![ev]);
    fx.apply(vec![open_pair("c1", NAT), close_provisional("c1")]);
    assert_eq!(fx.pinholes(), vec![(sa(NAT), sa(LOCAL), vec![tag("c1")])]);
    let [fwd, _] = flows("192.0.2.10:40002", LOCAL);
    assert!(
        !fx.c.store().flows.contains_key(&fwd),
        "the early port is gone"
    );
    fx.assert_consistent();
    let pa = fx.counters().pre_answer;
    assert_eq!((pa.latched, pa.confirmed, pa.superseded), (1, 0, 1));
}

#[test]
fn an_answer_fits_in_a_table_full_to_the_last_flow() {
    // Two flows: the provisional pair's reservation fills the table, and
    // the answer's pair needs the same two. The unlatched provisional
    // pair is released first, so the answer is not refused.
    let mut fx = Fx::new(2, 64);
    assert_eq!(fx.apply(vec![provisional("c1")]).opened, 1);
    let applied = fx.apply(vec![open_pair("c1", NAT), close_provisional("c1")]);
    assert_eq!(applied.failures, Vec::<String>::new());
    assert_eq!(applied.opened, 1);
    assert_eq!(fx.c.applied().map_full, 0);
    assert_eq!(fx.pinholes(), vec![(sa(NAT), sa(LOCAL), vec![tag("c1")])]);
    fx.assert_consistent();
    // A latched provisional pair the answer confirms needs no new room.
    let mut fx = Fx::new(2, 64);
    fx.apply(vec![provisional("c1")]);
    let ev = fx.packet(NAT).unwrap();
    fx.c.on_latched(vec![ev]);
    let applied = fx.apply(vec![open_pair("c1", NAT), close_provisional("c1")]);
    assert_eq!(applied.failures, Vec::<String>::new());
    assert_eq!(fx.pinholes(), vec![(sa(NAT), sa(LOCAL), vec![tag("c1")])]);
    fx.assert_consistent();
}

#[test]
fn an_answer_before_any_packet_withdraws_the_entry() {
    let mut fx = Fx::new(64, 64);
    fx.apply(vec![provisional("c1")]);
    fx.apply(vec![open_pair("c1", NAT), close_provisional("c1")]);
    assert_eq!(fx.packet("192.0.2.10:40002"), None, "no longer armed");
    assert_eq!(fx.pinholes(), vec![(sa(NAT), sa(LOCAL), vec![tag("c1")])]);
    fx.assert_consistent();
    let pa = fx.counters().pre_answer;
    assert_eq!((pa.armed, pa.answered_first, pa.latched), (1, 1, 0));
    // A claim the program made just before the removal, reported after
    // the answer: the answered pair stays, nothing else does.
    let mut fx = Fx::new(64, 64);
    fx.apply(vec![provisional("c1")]);
    let ev = fx.packet(NAT).unwrap();
    fx.apply(vec![open_pair("c1", NAT), close_provisional("c1")]);
    fx.c.on_latched(vec![ev]);
    assert_eq!(fx.pinholes(), vec![(sa(NAT), sa(LOCAL), vec![tag("c1")])]);
    fx.assert_consistent();
}

#[test]
fn an_unarmed_provisional_pair_is_no_failure() {
    let mut fx = Fx::new(64, 64);
    fx.c.core.store.latch_capacity = Some(0);
    let r = fx.apply(vec![provisional("c1")]);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(fx.c.applied().map_full, 0);
    assert_eq!(fx.counters().pre_answer.unarmed, 1);
    // Its close finds nothing; the answer opens as usual.
    fx.apply(vec![open_pair("c1", NAT), close_provisional("c1")]);
    assert_eq!(fx.pinholes(), vec![(sa(NAT), sa(LOCAL), vec![tag("c1")])]);
    fx.assert_consistent();
}

#[test]
fn a_provisional_pair_latched_before_a_restart_is_released_by_its_close() {
    let mut fx = Fx::new(64, 64);
    fx.apply(vec![provisional("c1")]);
    let ev = fx.packet(NAT).unwrap();
    fx.c.on_latched(vec![ev]);
    // A restarted daemon knows the table and the calls, not the claims.
    fx.c.core.latching = Latching::default();
    fx.apply(vec![
        open_pair("c1", "192.0.2.10:40002"),
        close_provisional("c1"),
    ]);
    assert_eq!(
        fx.pinholes(),
        vec![(sa("192.0.2.10:40002"), sa(LOCAL), vec![tag("c1")])]
    );
    fx.assert_consistent();
}

#[test]
fn an_unlatched_provisional_pair_expires() {
    let mut fx = Fx::new(64, 64);
    fx.apply(vec![provisional("c1")]);
    fx.advance(WINDOW.as_nanos() as u64);
    fx.c.tick();
    assert_eq!(fx.counters().pre_answer.expired, 1);
    assert_eq!(fx.packet(NAT), None);
    fx.apply(vec![close_provisional("c1")]);
    fx.assert_consistent();
}

#[tokio::test]
async fn reports_reach_the_task() {
    let mut fx = Fx::new(64, 64);
    fx.apply(vec![latch("c1")]);
    let ev = fx.packet(NAT).unwrap();
    let (handle, task) = {
        let (tx, rx) = mpsc::channel(4);
        let c = std::mem::replace(
            &mut fx.c,
            Controller::new(FakeStore::new(1), ControllerConfig::new(1, 0)),
        );
        (ControllerHandle { tx }, tokio::spawn(c.run(rx)))
    };
    handle.latched(vec![ev]).await.unwrap();
    let list = handle.list().await.unwrap();
    assert_eq!(list.pinholes.len(), 1);
    assert_eq!(list.pinholes[0].owner, tag("c1"));
    drop(handle);
    task.await.unwrap();
}
