//! Observed signaling through the controller.

use super::*;
use crate::capture::nfqueue::Sink;

#[test]
fn hold_retimes_in_place_and_expiry_reopens_on_the_next_reinvite() {
    let (fx, mut c) = signaling_fixture(64);
    let now = || fx.now.load(Ordering::SeqCst);
    let advance = |secs: u64| fx.now.fetch_add(secs * S, Ordering::SeqCst);
    let call = "call-hold@192.0.2.10";
    let exchange = |c: &mut Controller<FakeStore>, [req, resp]: [String; 2]| {
        c.on_signaling(Ok(udp(ALICE, BOB, &req, now())));
        c.on_signaling(Ok(udp(BOB, ALICE, &resp, now())));
    };
    let idle = |c: &Controller<FakeStore>| -> Vec<u64> {
        c.table().iter().map(|p| p.idle_timeout_secs).collect()
    };
    c.on_signaling(Ok(udp(ALICE, BOB, &invite(call, 10000), now())));
    c.on_signaling(Ok(udp(BOB, ALICE, &ok200(call, 20000), now())));
    assert_eq!(idle(&c), [60, 60]);
    let (ins, rem) = (c.store().inserts, c.store().removes);
    assert_eq!((ins, rem), (4, 0));

    // On hold: the hold timeout, the same flows (no remove, no insert).
    exchange(
        &mut c,
        reinvite(call, 2, "a=sendonly\r\n", "a=recvonly\r\n"),
    );
    assert_eq!(idle(&c), [3600, 3600]);
    assert_eq!((c.store().inserts, c.store().removes), (ins, rem));
    // Silent for 10 minutes: still open.
    advance(600);
    c.tick();
    assert_eq!(c.table().len(), 2);
    // Resume with the same SDP: back to the idle timeout, still in place.
    exchange(&mut c, reinvite(call, 3, "", ""));
    assert_eq!(idle(&c), [60, 60]);
    assert_eq!((c.store().inserts, c.store().removes), (ins, rem));

    // Silence past the idle timeout: expired, and the call knows.
    advance(61);
    c.tick();
    assert_eq!(c.table().len(), 0);
    assert_eq!(c.store().flows.len(), 0);
    let counters = c.feed().calls().counters();
    assert_eq!(counters.pairs_expired_sip, 2);
    let listed = c.calls().unwrap();
    let states: Vec<&str> = listed.calls[0]
        .streams
        .iter()
        .map(|s| s.state.as_str())
        .collect();
    assert_eq!(states, ["expired", "expired"]);
    // A re-INVITE with the same SDP opens both pairs again.
    exchange(&mut c, reinvite(call, 4, "", ""));
    assert_eq!(idle(&c), [60, 60]);
    assert_eq!(c.store().flows.len(), 4);
    assert_eq!(c.feed().calls().counters().pairs_reopened, 2);
    let listed = c.calls().unwrap();
    assert!(listed.calls[0].streams.iter().all(|s| s.state == "open"));
    assert_consistent(&c);
}

#[test]
fn sip_call_over_udp_opens_the_answered_pairs_and_bye_grace_closes_them() {
    let (fx, mut c) = signaling_fixture(64);
    let now = || fx.now.load(Ordering::SeqCst);
    let call = "call-1@192.0.2.10";
    c.on_signaling(Ok(udp(ALICE, BOB, &invite(call, 10000), now())));
    assert!(c.table().is_empty(), "an offer alone opens nothing");
    // The answer arrived 5 µs before the controller handled it.
    c.on_signaling(Ok(udp(BOB, ALICE, &ok200(call, 20000), now() - 5_000)));
    let want = vec![
        (
            "192.0.2.10:10000".into(),
            "198.51.100.20:20000".into(),
            owners(call),
        ),
        (
            "192.0.2.10:10001".into(),
            "198.51.100.20:20001".into(),
            owners(call),
        ),
    ];
    assert_eq!(pinholes(&c), want);
    assert_eq!(c.store().flows.len(), 4);
    assert!(
        c.table().iter().all(|p| p.idle_timeout_secs == 60),
        "--call-idle"
    );
    assert_consistent(&c);
    let st = c.stats().unwrap().signaling;
    assert_eq!(st.setup_latency_us.count, 1);
    assert!((st.setup_latency_us.p50 - 5.0).abs() < 0.5, "{st:?}");
    let list = c.list().unwrap();
    assert_eq!(list.pinholes[0].owner, owners(call)[0]);

    // ACK and BYE: the pinholes stay for the BYE grace (2 s).
    c.on_signaling(Ok(udp(
        ALICE,
        BOB,
        &sip(
            "ACK sip:bob@198.51.100.20 SIP/2.0",
            call,
            Some("b1"),
            "1 ACK",
            None,
        ),
        now(),
    )));
    c.on_signaling(Ok(udp(ALICE, BOB, &bye(call), now())));
    fx.now.fetch_add(S, Ordering::SeqCst);
    c.tick();
    assert_eq!(c.table().len(), 2, "still in the BYE grace");
    let deadline = c.feed().next_deadline().unwrap();
    fx.now.store(deadline, Ordering::SeqCst);
    c.call_timers();
    assert!(c.table().is_empty(), "closed after the grace");
    assert!(c.store().flows.is_empty());

    let st = c.stats().unwrap().signaling;
    assert_eq!(
        (
            st.mode.as_str(),
            st.packets,
            st.sip_messages,
            st.parse_errors
        ),
        ("inline", 4, 4, 0)
    );
    assert_eq!(
        (st.calls_opened, st.calls_closed, st.calls_active),
        (1, 1, 0)
    );
    assert_eq!(
        st.setup_latency_us.count, 1,
        "only packets that opened count"
    );
}

#[test]
fn tcp_segmented_out_of_order_and_coalesced_messages_work() {
    let (_fx, mut c) = signaling_fixture(64);
    let call = "tcp-1@192.0.2.10";
    let (client, server) = ("192.0.2.10:40000", "198.51.100.20:5060");
    let inv = invite(call, 10000);
    let inv = inv.as_bytes();
    let (isn, sisn) = (1000u32, 7000u32);
    c.on_signaling(Ok(tcp(client, server, isn, true, b"")));
    c.on_signaling(Ok(tcp(server, client, sisn, true, b"")));
    // The INVITE in three segments: last first, then the first, then a
    // retransmission of the first overlapping the middle one.
    let (p1, p2, p3) = (&inv[..50], &inv[50..120], &inv[120..]);
    c.on_signaling(Ok(tcp(client, server, isn + 1 + 120, false, p3)));
    c.on_signaling(Ok(tcp(client, server, isn + 1, false, p1)));
    assert_eq!(c.feed().counters().sip_messages, 0, "incomplete");
    c.on_signaling(Ok(tcp(client, server, isn + 1, false, &inv[..120])));
    assert_eq!(
        c.feed().counters().sip_messages,
        1,
        "{:?}",
        c.feed().counters()
    );
    assert_eq!(p2.len(), 70);
    // 180 Ringing and 200 OK in one segment.
    let mut both = sip("SIP/2.0 180 Ringing", call, Some("b1"), "1 INVITE", None).into_bytes();
    both.extend_from_slice(ok200(call, 20000).as_bytes());
    c.on_signaling(Ok(tcp(server, client, sisn + 1, false, &both)));
    assert_eq!(c.feed().counters().sip_messages, 3);
    assert_eq!(c.feed().counters().parse_errors, 0);
    assert_eq!(c.table().len(), 2);
    assert_eq!(c.feed().tcp_streams(), 2);
    assert_consistent(&c);
}

#[test]
fn unparsable_signaling_is_counted_and_opens_nothing() {
    let (_fx, mut c) = signaling_fixture(64);
    let call = "bad-1@192.0.2.10";
    let bad_sdp = invite(call, 10000).replace("m=audio 10000 RTP/AVP 0", "m=audio x RTP/AVP 0");
    let no_call_id = ok200(call, 20000).replace("Call-ID", "X-Call");
    let packets: Vec<Result<SignalingPacket, PacketError>> = vec![
        Err(PacketError::Fragment),
        Err(PacketError::Malformed("truncated".into())),
        Ok(udp(ALICE, BOB, "garbage\r\n\r\n", 0)),
        Ok(udp(ALICE, BOB, &invite(call, 10000)[..100], 0)),
        Ok(udp(ALICE, BOB, &bad_sdp, 0)),
        Ok(udp(BOB, ALICE, &no_call_id, 0)),
        Ok(udp(
            ALICE,
            BOB,
            "\u{0}\u{1}\u{2}\u{3}\u{4}\u{5}\u{6}\u{7}",
            0,
        )),
    ];
    let n = packets.len() as u64;
    for p in packets {
        c.on_signaling(p);
    }
    let st = c.stats().unwrap().signaling;
    assert_eq!((st.packets, st.parse_errors, st.sip_messages), (n, n, 0));
    assert!(c.table().is_empty());
    assert!(c.store().flows.is_empty());
    assert_eq!(st.setup_latency_us.count, 0);
}

#[test]
fn map_full_refuses_signaled_pinholes_and_counts_them() {
    // Room for one pair (2 flows): RTP opens, RTCP is refused.
    let (_fx, mut c) = signaling_fixture(2);
    let call = "full-1@192.0.2.10";
    c.on_signaling(Ok(udp(ALICE, BOB, &invite(call, 10000), 0)));
    c.on_signaling(Ok(udp(BOB, ALICE, &ok200(call, 20000), 0)));
    assert_eq!(c.table().len(), 1);
    let st = c.stats().unwrap();
    assert_eq!(st.signaling.refused.map_full, 1);
    assert_eq!(st.rejected_full, 1);
    assert_eq!(c.store().flows.len(), 2, "nothing evicted");
    // The call ends: its open pair closes, the refused one is not an error.
    c.on_signaling(Ok(udp(ALICE, BOB, &bye(call), 0)));
    let now = c.feed().next_deadline().unwrap();
    c.core.config.clock = Arc::new(move || now);
    c.call_timers();
    assert!(c.table().is_empty());
    assert_eq!(c.applied().failed, 0);
    assert_consistent(&c);
}

#[test]
fn a_pair_shared_by_two_calls_and_the_operator_survives_one_close() {
    let (fx, mut c) = signaling_fixture(64);
    let (c1, c2) = ("share-1@192.0.2.10", "share-2@192.0.2.10");
    for call in [c1, c2] {
        c.on_signaling(Ok(udp(ALICE, BOB, &invite(call, 10000), 0)));
        c.on_signaling(Ok(udp(BOB, ALICE, &ok200(call, 20000), 0)));
    }
    // The operator also opened the RTP pair.
    c.open(params(
        "192.0.2.10:10000",
        "198.51.100.20:20000",
        false,
        Some(0),
    ))
    .unwrap();
    let mut both = owners(c1);
    both.extend(owners(c2));
    let mut all = vec!["manual".to_string()];
    all.extend(both.clone());
    assert_eq!(
        pinholes(&c),
        vec![
            ("192.0.2.10:10000".into(), "198.51.100.20:20000".into(), all),
            (
                "192.0.2.10:10001".into(),
                "198.51.100.20:20001".into(),
                both
            ),
        ]
    );
    assert_eq!(c.store().flows.len(), 4);

    let end = |c: &mut Controller<FakeStore>, call: &str| {
        c.on_signaling(Ok(udp(ALICE, BOB, &bye(call), 0)));
        fx.now
            .store(c.feed().next_deadline().unwrap(), Ordering::SeqCst);
        c.call_timers();
    };
    end(&mut c, c1);
    assert_eq!(c.table().len(), 2, "call 2 still holds both pairs");
    assert_eq!(c.store().flows.len(), 4);
    end(&mut c, c2);
    assert_eq!(
        pinholes(&c),
        vec![(
            "192.0.2.10:10000".into(),
            "198.51.100.20:20000".into(),
            vec!["manual".to_string()]
        )],
        "the operator's pinhole outlives both calls"
    );
    assert_eq!(c.store().flows.len(), 2);
    assert_consistent(&c);
}

#[tokio::test]
async fn the_queue_sink_returns_after_the_pinholes_are_in_the_map() {
    let mut fx = fixture(64, 300);
    fx.config.tick = Duration::from_secs(3600);
    let (handle, task) = spawn(FakeStore::new(64), fx.config.clone());
    let call = "sink-1@192.0.2.10";
    let mut sink = handle.sink();
    let (inv, ok) = (invite(call, 10000), ok200(call, 20000));
    // A blocking thread, like the queue reader.
    let delivered = tokio::task::spawn_blocking(move || {
        let a = sink.deliver(Ok(udp(ALICE, BOB, &inv, 0)));
        let b = sink.deliver(Ok(udp(BOB, ALICE, &ok, 0)));
        (a, b, sink)
    })
    .await
    .unwrap();
    assert!(delivered.0 && delivered.1);
    // No waiting: delivery returned only after the map was updated.
    let list = handle.list().await.unwrap();
    assert_eq!(list.pinholes.len(), 2);
    assert!(list.pinholes.iter().all(|p| p.owner == owners(call)[0]));
    let stats = handle.stats().await.unwrap();
    assert_eq!(stats.signaling.setup_latency_us.count, 1);
    assert_eq!(stats.flows.used, 4);

    // With the controller gone, delivery reports it instead of hanging.
    let mut sink = delivered.2;
    task.abort();
    let _ = task.await;
    let gone = tokio::task::spawn_blocking(move || sink.deliver(Err(PacketError::NotIp)))
        .await
        .unwrap();
    assert!(!gone);
}

#[tokio::test]
async fn call_timers_run_in_the_task() {
    let fx = fixture(64, 300);
    let (handle, _task) = spawn(FakeStore::new(64), fx.config.clone());
    let call = "timer-1@192.0.2.10";
    for p in [
        udp(ALICE, BOB, &invite(call, 10000), 0),
        udp(BOB, ALICE, &ok200(call, 20000), 0),
        udp(ALICE, BOB, &bye(call), 0),
    ] {
        handle.signaling(Ok(p)).await.unwrap();
    }
    assert_eq!(handle.stats().await.unwrap().pinholes, 2);
    // Past the 2 s grace on the controller's clock: the next timer or
    // tick closes the call.
    fx.now.fetch_add(3 * S, Ordering::SeqCst);
    let mut waited = 0;
    while handle.stats().await.unwrap().pinholes != 0 {
        waited += 1;
        assert!(waited < 500, "BYE grace never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(handle.stats().await.unwrap().signaling.calls_closed, 1);
}
