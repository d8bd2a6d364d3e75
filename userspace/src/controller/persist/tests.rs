use std::{
    net::SocketAddr,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use super::*;
use crate::{
    addr::{flow_key, Endpoint},
    calls::{Media, SipEvent, SipMethod, SipStart},
    controller::{
        core::Source, report::OpenParams, Controller, ControllerConfig, FakeStore, NS_PER_SEC,
    },
};

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
