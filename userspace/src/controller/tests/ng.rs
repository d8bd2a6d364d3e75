//! ng requests, calls and metrics through the controller.

use super::*;
use crate::ng::bencode::{self, Value};

/// One ng request through the controller; the decoded reply.
fn ng(c: &mut Controller<FakeStore>, cookie: &str, req: Value) -> Value {
    let mut datagram = format!("{cookie} ").into_bytes();
    datagram.extend(req.encode());
    let at = c.now();
    let reply = c
        .on_ng("127.0.0.1:40000".parse().unwrap(), &datagram, at)
        .expect("a reply");
    let body = reply
        .strip_prefix(format!("{cookie} ").as_bytes())
        .expect("the cookie is echoed");
    bencode::decode(body).unwrap()
}

fn offer_answer(cmd: &str, call: &str, to_tag: Option<&str>, sdp: &str) -> Value {
    let mut entries = vec![
        ("command", Value::str(cmd)),
        ("call-id", Value::str(call)),
        ("from-tag", Value::str("ft")),
        ("sdp", Value::str(sdp)),
        // The SDP's addresses are the test's own (ng/ tests received-from).
        ("flags", Value::List(vec![Value::str("trust-address")])),
    ];
    if let Some(t) = to_tag {
        entries.push(("to-tag", Value::str(t)));
    }
    Value::dict(entries)
}

fn ng_fixture() -> (Fixture, Controller<FakeStore>) {
    let mut fx = fixture(64, 300);
    fx.config.ng = Some(crate::ng::NgConfig::default());
    fx.config.metrics = Some(Arc::new(Metrics::new()));
    let c = Controller::new(FakeStore::new(64), fx.config.clone());
    (fx, c)
}

#[test]
fn ng_offer_answer_query_delete_drive_pinholes_with_ng_owner_tags() {
    let (fx, mut c) = ng_fixture();
    let call = "ng-1@proxy";
    let owner = format!("ng:{call};from-tag=ft");
    let r = ng(&mut c, "1", Value::dict([("command", Value::str("ping"))]));
    assert_eq!(r.get("result").and_then(Value::as_str), Some("pong"));

    let r = ng(
        &mut c,
        "2",
        offer_answer("offer", call, None, &sdp("192.0.2.10", 10000)),
    );
    assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
    assert!(c.table().is_empty(), "an offer alone opens nothing");
    let r = ng(
        &mut c,
        "3",
        offer_answer("answer", call, Some("tt"), &sdp("198.51.100.20", 20000)),
    );
    assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
    assert_eq!(
        r.get("sdp").and_then(Value::as_str),
        Some(sdp("198.51.100.20", 20000).as_str()),
        "the SDP comes back unchanged"
    );
    let want = vec![
        (
            "192.0.2.10:10000".to_string(),
            "198.51.100.20:20000".to_string(),
            vec![owner.clone()],
        ),
        (
            "192.0.2.10:10001".to_string(),
            "198.51.100.20:20001".to_string(),
            vec![owner.clone()],
        ),
    ];
    assert_eq!(pinholes(&c), want);
    assert_eq!(c.store().flows.len(), 4);
    assert_consistent(&c);
    assert_eq!(c.latency().count(), 1, "the answer's setup latency");

    // Traffic on the RTP pair shows in query and in `calls`.
    let k = flow_key(ep("192.0.2.10:10000"), ep("198.51.100.20:20000"));
    c.core.store.flows.get_mut(&k).unwrap().packets = 7;
    c.core.store.flows.get_mut(&k).unwrap().bytes = 700;
    let q = ng(
        &mut c,
        "4",
        Value::dict([
            ("command", Value::str("query")),
            ("call-id", Value::str(call)),
        ]),
    );
    let rtp = q.get("totals").and_then(|t| t.get("RTP")).unwrap();
    assert_eq!(rtp.get("packets").and_then(Value::as_int), Some(7), "{q:?}");
    let calls = c.calls().unwrap();
    assert_eq!(calls.calls.len(), 1);
    let e = &calls.calls[0];
    assert_eq!(
        (
            e.kind.as_str(),
            e.call_id.as_str(),
            e.tag.as_str(),
            e.owner.as_str()
        ),
        ("ng", call, "ft", owner.as_str())
    );
    assert_eq!(
        (e.state.as_str(), e.packets, e.bytes),
        ("confirmed", 7, 700)
    );
    assert_eq!(e.streams.len(), 2);
    assert_eq!(
        (
            e.streams[0].kind.as_str(),
            e.streams[0].a_to_b.packets,
            e.streams[1].kind.as_str()
        ),
        ("rtp", 7, "rtcp")
    );
    let l = ng(&mut c, "5", Value::dict([("command", Value::str("list"))]));
    assert_eq!(
        l.get("calls").and_then(Value::as_list).map(|v| v.len()),
        Some(1)
    );

    // Metrics: scraped numbers come from the controller.
    c.refresh_metrics();
    let text = c.metrics.as_ref().unwrap().encode();
    for line in [
        "pinhole_pinholes_open 2",
        "pinhole_calls_active 1",
        "pinhole_flows_used 4",
        "pinhole_flows_capacity 64",
        "pinhole_signaling_messages_total{kind=\"ng\",outcome=\"ok\"} 5",
        "pinhole_setup_latency_seconds_count 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }

    // A retransmitted delete runs once; delete-delay 0 closes at once.
    let del = Value::dict([
        ("command", Value::str("delete")),
        ("call-id", Value::str(call)),
        ("from-tag", Value::str("ft")),
        ("delete-delay", Value::Int(0)),
    ]);
    let r = ng(&mut c, "6", del.clone());
    assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
    assert!(c.table().is_empty());
    assert!(c.store().flows.is_empty());
    assert_eq!(ng(&mut c, "6", del), r, "the cached reply");
    let r = ng(
        &mut c,
        "7",
        Value::dict([
            ("command", Value::str("query")),
            ("call-id", Value::str(call)),
        ]),
    );
    assert_eq!(r.get("result").and_then(Value::as_str), Some("error"));
    let _ = fx;
}

#[test]
fn ng_delete_delay_and_observed_calls_keep_their_own_tags() {
    let (fx, mut c) = ng_fixture();
    c.core.config.signaling_inline = true;
    // An observed SIP call and an ng call on the same pair share it.
    let sip_call = "obs-1@192.0.2.10";
    c.on_signaling(Ok(udp(ALICE, BOB, &invite(sip_call, 10000), 0)));
    c.on_signaling(Ok(udp(BOB, ALICE, &ok200(sip_call, 20000), 0)));
    let call = "ng-2@proxy";
    ng(
        &mut c,
        "1",
        offer_answer("offer", call, None, &sdp("192.0.2.10", 10000)),
    );
    ng(
        &mut c,
        "2",
        offer_answer("answer", call, Some("tt"), &sdp("198.51.100.20", 20000)),
    );
    assert_eq!(c.table().len(), 2);
    assert!(c.table().iter().all(|p| p.owner_names().count() == 2));
    let kinds: Vec<String> = c
        .calls()
        .unwrap()
        .calls
        .iter()
        .map(|e| e.kind.clone())
        .collect();
    assert_eq!(kinds, ["ng", "sip"]);

    // delete with a 5 s delay: still open, then closed by the timer;
    // the observed call keeps the pairs.
    let r = ng(
        &mut c,
        "3",
        Value::dict([
            ("command", Value::str("delete")),
            ("call-id", Value::str(call)),
            ("delete-delay", Value::Int(5)),
        ]),
    );
    assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
    assert!(c.table().iter().all(|p| p.owner_names().count() == 2));
    fx.now.fetch_add(5 * S, Ordering::SeqCst);
    c.call_timers();
    assert_eq!(
        pinholes(&c)[0].2,
        owners(sip_call),
        "only the ng claim went"
    );
    assert_eq!(c.table().len(), 2);
    assert_consistent(&c);
}

#[test]
fn ng_errors_and_ng_off() {
    let (_fx, mut c) = ng_fixture();
    for (i, (req, reason)) in [
        (
            Value::dict([("command", Value::str("frobnicate"))]),
            "frobnicate",
        ),
        (
            offer_answer("answer", "nope", Some("tt"), &sdp("198.51.100.20", 20000)),
            "nknown call",
        ),
        (offer_answer("offer", "x", None, "not sdp"), "SDP"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = ng(&mut c, &format!("e{i}"), req);
        assert_eq!(
            r.get("result").and_then(Value::as_str),
            Some("error"),
            "{r:?}"
        );
        let why = r.get("error-reason").and_then(Value::as_str).unwrap();
        assert!(why.contains(reason), "{why}");
    }
    let at = c.now();
    let r = c
        .on_ng("127.0.0.1:1".parse().unwrap(), b"c1 d3:foo", at)
        .unwrap();
    assert!(
        r.starts_with(b"c1 d12:error-reason") && r.ends_with(b"6:result5:errore"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    // Outside the allow-list: no reply.
    assert!(c
        .on_ng("192.0.2.9:1".parse().unwrap(), b"c2 d7:command4:pinge", at)
        .is_none());
    // Without --ng-listen there is no ng service.
    let fx = fixture(4, 30);
    let mut off = Controller::new(FakeStore::new(4), fx.config);
    assert!(off
        .on_ng("127.0.0.1:1".parse().unwrap(), b"c d7:command4:pinge", 0)
        .is_none());
}

#[test]
fn rtsp_sessions_show_in_calls_from_their_pinholes() {
    let fx = fixture(64, 30);
    let mut c = Controller::new(FakeStore::new(64), fx.config);
    let owner = "rtsp:198.51.100.20:554;session=12345678";
    c.open(OpenParams {
        owner: Some(owner.into()),
        ..params("192.0.2.10:5000", "198.51.100.20:6970", false, None)
    })
    .unwrap();
    let calls = c.calls().unwrap().calls;
    assert_eq!(calls.len(), 1);
    let e = &calls[0];
    assert_eq!(
        (
            e.kind.as_str(),
            e.call_id.as_str(),
            e.tag.as_str(),
            e.owner.as_str()
        ),
        ("rtsp", "12345678", "198.51.100.20:554", owner)
    );
    assert_eq!(e.streams.len(), 1);
    assert_eq!(e.streams[0].a.to_string(), "192.0.2.10:5000");
    assert!(e.last_signal_secs.is_none());
}
