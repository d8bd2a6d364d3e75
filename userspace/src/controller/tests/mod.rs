//! The controller's unit tests: the task and its core (table, store, expiry);
//! signaling and ng in their own files.

use std::sync::atomic::{AtomicU64, Ordering};

use pinhole_common::{FlowKey, FlowStats};

use super::*;
use crate::{
    addr::flow_key,
    api::{server::remote_kind, wire::RemoteKind},
    capture::{TcpInfo, Transport},
    controller::report::MAX_OWNER_LEN,
};

const S: u64 = NS_PER_SEC;

fn ep(s: &str) -> Endpoint {
    s.parse().unwrap()
}

fn params(a: &str, b: &str, rtcp: bool, idle: Option<u64>) -> OpenParams {
    OpenParams {
        a: ep(a),
        b: ep(b),
        rtcp,
        idle_secs: idle,
        owner: None,
    }
}

struct Fixture {
    now: Arc<AtomicU64>,
    config: ControllerConfig,
}

fn fixture(capacity: usize, default_idle: u64) -> Fixture {
    let now = Arc::new(AtomicU64::new(1_000 * S));
    let clock_now = now.clone();
    let mut config = ControllerConfig::new(capacity, default_idle);
    config.clock = Arc::new(move || clock_now.load(Ordering::SeqCst));
    config.tick = Duration::from_millis(10);
    Fixture { now, config }
}

/// Map and table agree: the store holds exactly the table's flows.
fn assert_consistent(c: &Controller<FakeStore>) {
    let mut want: Vec<FlowKey> = c.table().iter().flat_map(|p| p.flows.clone()).collect();
    want.sort();
    want.dedup();
    let mut have: Vec<FlowKey> = c.store().flows.keys().copied().collect();
    have.sort();
    assert_eq!(have, want);
}

#[tokio::test]
async fn open_list_expire_close_through_the_task() {
    let fx = fixture(64, 30);
    let (handle, task) = spawn(FakeStore::new(64), fx.config.clone());

    let r = handle
        .open(params("192.0.2.1:4000", "198.51.100.2:10000", false, None))
        .await
        .unwrap();
    assert_eq!(
        (r.id, r.outcome, r.flows, r.idle_timeout_secs),
        (1, crate::controller::table::OpenOutcome::Opened, 2, 30)
    );
    let r2 = handle
        .open(params(
            "[2001:db8::1]:4000",
            "[2001:db8::2]:10000",
            true,
            Some(5),
        ))
        .await
        .unwrap();
    assert_eq!((r2.id, r2.flows), (2, 4));

    let list = handle.list().await.unwrap();
    assert_eq!(list.pinholes.len(), 2);
    assert_eq!(list.pinholes[0].a.to_string(), "192.0.2.1:4000");
    assert_eq!(list.pinholes[0].flows[0].src.to_string(), "192.0.2.1:4000");
    assert_eq!(
        list.pinholes[0].flows[0].dst.to_string(),
        "198.51.100.2:10000"
    );
    assert_eq!(list.pinholes[1].flows.len(), 4);
    let stats = handle.stats().await.unwrap();
    assert_eq!(
        (stats.flows.used, stats.flows.capacity, stats.pinholes),
        (6, 64, 2)
    );
    assert_eq!(stats.counters.len(), Reason::COUNT as usize);
    assert!(stats.counters.contains_key("ext_header_limit"));

    // 5 s later the IPv6 pinhole (idle 5) expires on a tick; the other stays.
    fx.now.fetch_add(5 * S, Ordering::SeqCst);
    let mut waited = 0;
    loop {
        let s = handle.stats().await.unwrap();
        if s.expired == 1 {
            assert_eq!((s.pinholes, s.flows.used), (1, 2));
            break;
        }
        waited += 1;
        assert!(waited < 500, "expiry tick never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let c = handle
        .close(ep("198.51.100.2:10000"), ep("192.0.2.1:4000"))
        .await
        .unwrap();
    assert_eq!((c.id, c.flows_removed), (1, 2));
    let err = handle
        .close(ep("198.51.100.2:10000"), ep("192.0.2.1:4000"))
        .await
        .unwrap_err();
    assert_eq!(remote_kind(&err), RemoteKind::Runtime);
    assert!(handle.list().await.unwrap().pinholes.is_empty());

    drop(handle);
    task.await.unwrap();
}

#[test]
fn bad_requests_are_classified() {
    let fx = fixture(64, 30);
    let mut c = Controller::new(FakeStore::new(64), fx.config);
    let cases = [
        params("192.0.2.1:4000", "[2001:db8::2]:10000", false, None),
        params("192.0.2.1:4000", "192.0.2.1:4000", false, None),
        params("192.0.2.1:65535", "198.51.100.2:10000", true, None),
    ];
    for p in cases {
        let err = c.open(p.clone()).unwrap_err();
        assert_eq!(remote_kind(&err), RemoteKind::BadRequest, "{p:?}: {err}");
    }
    let mut long = params("192.0.2.1:4000", "198.51.100.2:10000", false, None);
    long.owner = Some("x".repeat(MAX_OWNER_LEN + 1));
    assert_eq!(
        remote_kind(&c.open(long).unwrap_err()),
        RemoteKind::BadRequest
    );
    assert!(c.table().is_empty());
    assert_consistent(&c);
}

#[test]
fn full_table_is_refused_loudly_and_counted() {
    let fx = fixture(2, 30);
    let mut c = Controller::new(FakeStore::new(2), fx.config);
    c.open(params("192.0.2.1:4000", "198.51.100.2:10000", false, None))
        .unwrap();
    let err = c
        .open(params("192.0.2.1:4002", "198.51.100.2:10002", false, None))
        .unwrap_err();
    assert!(
        matches!(
            err,
            CommandError::Table(TableError::Full {
                needed: 2,
                free: 0,
                capacity: 2
            })
        ),
        "{err}"
    );
    assert_eq!(c.stats().unwrap().rejected_full, 1);
    // The first pinhole is untouched.
    assert_eq!(c.list().unwrap().pinholes.len(), 1);
    assert_consistent(&c);
}

#[test]
fn failed_insert_rolls_back_the_open() {
    let fx = fixture(64, 30);
    let mut store = FakeStore::new(64);
    // The 3rd insert (first RTCP flow) fails.
    store.fail_inserts_after = Some(2);
    let mut c = Controller::new(store, fx.config);
    let err = c
        .open(params("192.0.2.1:4000", "198.51.100.2:10000", true, None))
        .unwrap_err();
    assert!(matches!(err, CommandError::Store(_)), "{err}");
    assert!(c.table().is_empty());
    assert!(
        c.store().flows.is_empty(),
        "inserted flows were removed again"
    );

    // A failure while upgrading an existing pinhole leaves it as it was.
    c.core.store.fail_inserts_after = Some(2);
    c.open(params("192.0.2.1:4000", "198.51.100.2:10000", false, None))
        .unwrap();
    let err = c
        .open(params("192.0.2.1:4000", "198.51.100.2:10000", true, None))
        .unwrap_err();
    assert!(matches!(err, CommandError::Store(_)));
    let p = c.table().iter().next().unwrap();
    assert!(!p.pair.rtcp());
    assert_eq!(c.store().flows.len(), 2);
    assert_consistent(&c);
}

/// A flow already in the map when an open starts (latched by the XDP
/// program, its report not adopted yet) is not the open's to delete
/// when the open fails half-way: only what the open itself inserted is
/// rolled back.
#[test]
fn rollback_keeps_flows_that_were_in_the_map_before() {
    let fx = fixture(64, 30);
    let mut store = FakeStore::new(64);
    let (a, b) = (ep("192.0.2.1:4000"), ep("198.51.100.2:10000"));
    let latched = [flow_key(a, b), flow_key(b, a)];
    for k in &latched {
        store.flows.insert(*k, FlowStats::default());
    }
    // The RTP flows exist; the first RTCP insert fails.
    store.fail_inserts_after = Some(0);
    let mut c = Controller::new(store, fx.config);
    let err = c.open(params("192.0.2.1:4000", "198.51.100.2:10000", true, None));
    assert!(matches!(err, Err(CommandError::Store(_))), "{err:?}");
    assert!(c.table().is_empty());
    for k in &latched {
        assert!(
            c.store().flows.contains_key(k),
            "a flow that existed before the open was deleted by its rollback"
        );
    }
    assert_eq!(c.store().flows.len(), 2);
}

#[test]
fn kernel_map_full_is_an_error_not_a_panic() {
    // The table allows 4 flows but the store only holds 3.
    let fx = fixture(4, 30);
    let mut c = Controller::new(FakeStore::new(3), fx.config);
    let err = c
        .open(params("192.0.2.1:4000", "198.51.100.2:10000", true, None))
        .unwrap_err();
    assert!(
        matches!(err, CommandError::Store(StoreError::MapFull)),
        "{err}"
    );
    assert!(c.table().is_empty());
    assert_consistent(&c);
}

#[test]
fn a_mass_expiry_is_spread_over_bounded_steps() {
    let n = 3 * EXPIRY_BUDGET + 5;
    let fx = fixture(4 * n, 10);
    let mut c = Controller::new(FakeStore::new(4 * n), fx.config);
    for i in 0..n {
        let a = format!("192.0.2.{}:{}", 1 + i / 1000, 4000 + 2 * (i % 1000));
        c.open(params(&a, "198.51.100.2:10000", false, None))
            .unwrap();
    }
    fx.now.fetch_add(10 * S, Ordering::SeqCst);
    c.tick();
    assert!(c.expiry_backlog());
    assert_eq!(c.table().expired(), EXPIRY_BUDGET as u64);
    // Commands between steps see the table as it is then.
    c.open(params(
        "192.0.2.200:4000",
        "198.51.100.9:10000",
        false,
        None,
    ))
    .unwrap();
    let mut steps = 1;
    while c.expiry_backlog() {
        c.expire_step();
        steps += 1;
        assert!(steps <= 10, "expiry does not end");
    }
    assert_eq!(steps, 4);
    assert_eq!(c.table().expired(), n as u64);
    assert_eq!(c.table().len(), 1, "the pinhole opened meanwhile stays");
    assert_consistent(&c);
}

#[test]
fn failed_removals_are_retried_on_tick() {
    let fx = fixture(64, 30);
    let mut c = Controller::new(FakeStore::new(64), fx.config);
    c.open(params("192.0.2.1:4000", "198.51.100.2:10000", false, None))
        .unwrap();
    c.core.store.fail_removes = true;
    c.close(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"))
        .unwrap();
    assert_eq!(c.store().flows.len(), 2, "removal failed");
    c.tick();
    assert_eq!(c.store().flows.len(), 2, "still failing");
    c.core.store.fail_removes = false;
    c.tick();
    assert!(c.store().flows.is_empty(), "retried on tick");
    assert!(c.core.pending_removals.is_empty());

    // A pending flow that is reopened before the retry is kept.
    c.open(params("192.0.2.1:4000", "198.51.100.2:10000", false, None))
        .unwrap();
    c.core.store.fail_removes = true;
    c.close(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"))
        .unwrap();
    c.core.store.fail_removes = false;
    c.open(params("192.0.2.1:4000", "198.51.100.2:10000", false, None))
        .unwrap();
    c.tick();
    assert_eq!(c.store().flows.len(), 2);
    assert_consistent(&c);
}

#[test]
fn traffic_keeps_a_pinhole_alive_and_shows_in_list() {
    let fx = fixture(64, 10);
    let mut c = Controller::new(FakeStore::new(64), fx.config);
    c.open(params("192.0.2.1:4000", "198.51.100.2:10000", false, None))
        .unwrap();
    let t0 = fx.now.load(Ordering::SeqCst);
    // Traffic A->B at t0+8.
    let k = flow_key(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"));
    *c.core.store.flows.get_mut(&k).unwrap() = FlowStats {
        packets: 3,
        bytes: 300,
        last_seen_ns: t0 + 8 * S,
    };
    fx.now.store(t0 + 12 * S, Ordering::SeqCst);
    c.tick();
    assert_eq!(c.table().len(), 1, "traffic at +8 s keeps it open at +12 s");
    let l = c.list().unwrap();
    let p = &l.pinholes[0];
    // Idle counts from the stamp plus its 1 s granularity (+9 s).
    assert_eq!(
        (p.packets, p.bytes, p.idle_secs, p.age_secs),
        (3, 300, 3, 12)
    );
    assert_eq!((p.flows[0].packets, p.flows[1].packets), (3, 0));
    // The stamp may lag the newest packet by up to 1 s (the program
    // stamps at that granularity): idle counts from t0+9, never early.
    fx.now.store(t0 + 18 * S, Ordering::SeqCst);
    c.tick();
    assert_eq!(c.table().len(), 1, "stamp at +8 may mean a packet at +8.99");
    fx.now.store(t0 + 19 * S, Ordering::SeqCst);
    c.tick();
    assert!(c.table().is_empty());
    assert_eq!(c.stats().unwrap().expired, 1);
    assert_consistent(&c);
}

#[tokio::test]
async fn stopped_controller_is_reported() {
    let fx = fixture(4, 30);
    let (handle, task) = spawn(FakeStore::new(4), fx.config);
    task.abort();
    let _ = task.await;
    let err = handle.list().await.unwrap_err();
    assert!(matches!(err, CommandError::Stopped));
}

// ---- signaling helpers (tests in signaling.rs, ng.rs) ----------------

const ALICE: &str = "192.0.2.10:5060";
const BOB: &str = "198.51.100.20:5060";

fn sdp(ip: &str, port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\n"
    )
}

/// A SIP message of call `call`: start line, From/To tags, CSeq, body.
fn sip(start: &str, call: &str, to_tag: Option<&str>, cseq: &str, body: Option<&str>) -> String {
    let to = to_tag.map_or(String::new(), |t| format!(";tag={t}"));
    let body = body.unwrap_or("");
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{start}\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{cseq_n}\r\n\
         From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>{to}\r\n\
         Call-ID: {call}\r\nCSeq: {cseq}\r\nMax-Forwards: 70\r\n\
         {ctype}Content-Length: {}\r\n\r\n{body}",
        body.len(),
        cseq_n = cseq.split(' ').next().unwrap(),
    )
}

fn invite(call: &str, port: u16) -> String {
    sip(
        "INVITE sip:bob@example.com SIP/2.0",
        call,
        None,
        "1 INVITE",
        Some(&sdp("192.0.2.10", port)),
    )
}

fn ok200(call: &str, port: u16) -> String {
    sip(
        "SIP/2.0 200 OK",
        call,
        Some("b1"),
        "1 INVITE",
        Some(&sdp("198.51.100.20", port)),
    )
}

fn bye(call: &str) -> String {
    sip(
        "BYE sip:bob@198.51.100.20 SIP/2.0",
        call,
        Some("b1"),
        "2 BYE",
        None,
    )
}

fn udp(src: &str, dst: &str, text: &str, at: u64) -> SignalingPacket {
    SignalingPacket {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        transport: Transport::Udp,
        payload: text.as_bytes().to_vec(),
        received_at: at,
    }
}

fn tcp(src: &str, dst: &str, seq: u32, syn: bool, payload: &[u8]) -> SignalingPacket {
    SignalingPacket {
        transport: Transport::Tcp(TcpInfo {
            seq,
            syn,
            ..TcpInfo::default()
        }),
        payload: payload.to_vec(),
        ..udp(src, dst, "", 0)
    }
}

/// (a, b, owners) of every pinhole, sorted.
fn pinholes(c: &Controller<FakeStore>) -> Vec<(String, String, Vec<String>)> {
    let mut v: Vec<_> = c
        .table()
        .iter()
        .map(|p| {
            (
                p.pair.a().to_string(),
                p.pair.b().to_string(),
                p.owner_names().map(str::to_string).collect(),
            )
        })
        .collect();
    v.sort();
    v
}

fn owners(call: &str) -> Vec<String> {
    vec![format!("sip:{call};from-tag=a1")]
}

fn signaling_fixture(capacity: usize) -> (Fixture, Controller<FakeStore>) {
    let mut fx = fixture(capacity, 300);
    fx.config.feed.calls.idle_timeout = Duration::from_secs(60);
    fx.config.signaling_inline = true;
    let c = Controller::new(FakeStore::new(capacity), fx.config.clone());
    (fx, c)
}

/// A re-INVITE (CSeq `n`) of call `call` from Alice with `attr` in its
/// SDP, and Bob's 200 with `answer_attr`.
fn reinvite(call: &str, n: u32, attr: &str, answer_attr: &str) -> [String; 2] {
    let body = |ip: &str, port: u16, a: &str| format!("{}{a}", sdp(ip, port));
    let cseq = format!("{n} INVITE");
    [
        sip(
            "INVITE sip:bob@198.51.100.20 SIP/2.0",
            call,
            Some("b1"),
            &cseq,
            Some(&body("192.0.2.10", 10000, attr)),
        ),
        sip(
            "SIP/2.0 200 OK",
            call,
            Some("b1"),
            &cseq,
            Some(&body("198.51.100.20", 20000, answer_attr)),
        ),
    ]
}

mod ng;
mod signaling;

/// The datapath stamps `last_seen_ns` at most once a second, so the
/// newest packet is up to a second after the stamp; the controller
/// reports that upper bound, but never later than now, for every
/// consumer (idle expiry and the call timers alike).
#[test]
fn last_seen_is_the_stamps_upper_bound_clamped_to_now() {
    let now = 1_000 * S;
    let mut store = FakeStore::new(4);
    let (a, b) = (ep("192.0.2.1:4000"), ep("198.51.100.2:10000"));
    let key = flow_key(a, b);
    let stamped = |t: u64| FlowStats {
        last_seen_ns: t,
        ..FlowStats::default()
    };
    assert_eq!(core::last_seen(&store, &key, now), None, "no flow");
    store.flows.insert(key, stamped(0));
    assert_eq!(core::last_seen(&store, &key, now), None, "never seen");
    for (stamp, want) in [
        (now - 5 * S, now - 4 * S),
        (now - S, now),
        (now - S / 10, now),
        (now, now),
    ] {
        store.flows.insert(key, stamped(stamp));
        assert_eq!(
            core::last_seen(&store, &key, now),
            Some(want),
            "stamp {stamp}"
        );
    }
}
