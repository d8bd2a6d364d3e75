//! The ng service end to end over the real call state, hostile datagrams,
//! and the UDP listener.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::bencode::{self, Value};
use super::service::MAX_REPLY;
use super::*;
use crate::calls::{CallConfig, Calls, Intent, Media};
use crate::metrics::Snapshot;

const S: u64 = 1_000_000_000;
const CALLER_SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n";
const CALLEE_SDP: &str = "v=0\r\no=- 2 2 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0\r\n";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn proxy() -> SocketAddr {
    sa("127.0.0.1:40000")
}

/// The pinhole table and flow map, reduced to open flows and counters.
#[derive(Default)]
struct Table {
    flows: HashMap<(SocketAddr, SocketAddr), Totals>,
    /// Half-open pairs: (end that latches, its signaling address, other end).
    latches: Vec<(SocketAddr, std::net::IpAddr, SocketAddr)>,
    applies: usize,
    warn: Option<ApplyFailure>,
    capacity: usize,
}

impl Table {
    fn with_capacity(capacity: usize) -> Table {
        Table {
            capacity,
            ..Table::default()
        }
    }
}

impl Pinholes for Table {
    fn free_flows(&self) -> usize {
        self.capacity.saturating_sub(self.flows.len())
    }

    fn apply(&mut self, intents: Vec<Intent>) -> Result<(), ApplyFailure> {
        self.applies += 1;
        for i in intents {
            match i {
                Intent::Open { a, b, .. } => {
                    self.flows.insert((a, b), Totals::default());
                    self.flows.insert((b, a), Totals::default());
                }
                Intent::Close { a, b, .. } => {
                    self.flows.remove(&(a, b));
                    self.flows.remove(&(b, a));
                }
                Intent::Refused { .. } | Intent::Retime { .. } => {}
                Intent::Latch {
                    a, b, side, from, ..
                } => {
                    let (end, other) = match side {
                        crate::calls::Side::A => (a, b),
                        crate::calls::Side::B => (b, a),
                    };
                    self.latches.push((end, from, other));
                }
            }
        }
        self.warn.clone().map_or(Ok(()), Err)
    }

    fn flow_totals(&self, src: SocketAddr, dst: SocketAddr) -> Totals {
        self.flows.get(&(src, dst)).copied().unwrap_or_default()
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            pinholes_open: self.flows.len() as u64 / 2,
            flows_used: self.flows.len() as u64,
            flows_capacity: 1024,
            ..Snapshot::default()
        }
    }

    fn unix_secs(&self, mono_ns: u64) -> u64 {
        1_700_000_000 + mono_ns / S
    }
}

struct Daemon {
    svc: NgService,
    calls: Calls,
    table: Table,
}

impl Daemon {
    fn new() -> Self {
        Daemon {
            svc: NgService::new(NgConfig::default()),
            calls: Calls::new(CallConfig::default()),
            table: Table::with_capacity(1024),
        }
    }

    fn raw(&mut self, peer: SocketAddr, datagram: &[u8], now: u64) -> Option<Vec<u8>> {
        let mut backend = CallsBackend {
            calls: &mut self.calls,
            pinholes: &mut self.table,
            now,
        };
        self.svc.handle(&mut backend, peer, datagram, now)
    }

    /// Sends `cookie SP request` and returns the decoded reply.
    fn send(&mut self, cookie: &str, entries: &[(&str, Value)], now: u64) -> Value {
        let body = Value::dict(entries.iter().cloned()).encode();
        let dgram = [cookie.as_bytes(), b" ", &body].concat();
        let reply = self.raw(proxy(), &dgram, now).expect("a reply");
        let (c, body) = wire::split(&reply).unwrap();
        assert_eq!(c, cookie.as_bytes());
        bencode::decode(body).unwrap()
    }
}

fn s(t: &str) -> Value {
    Value::str(t)
}

/// The value at `path` in nested dictionaries.
fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {path:?} in {v:?}"))
}

fn int(v: &Value, path: &[&str]) -> i64 {
    at(v, path)
        .and_then(Value::as_int)
        .unwrap_or_else(|| panic!("no {path:?} in {v:?}"))
}

fn offer() -> Vec<(&'static str, Value)> {
    vec![
        ("command", s("offer")),
        ("call-id", s("c1@proxy")),
        ("from-tag", s("ft")),
        ("sdp", s(CALLER_SDP)),
        ("flags", Value::List(vec![s("trust-address")])),
    ]
}

/// `base` with the entries of `set` replacing (or added to) its own.
fn with(
    mut base: Vec<(&'static str, Value)>,
    set: &[(&'static str, Value)],
) -> Vec<(&'static str, Value)> {
    for (k, v) in set {
        base.retain(|(b, _)| b != k);
        base.push((k, v.clone()));
    }
    base
}

fn answer() -> Vec<(&'static str, Value)> {
    vec![
        ("command", s("answer")),
        ("call-id", s("c1@proxy")),
        ("from-tag", s("ft")),
        ("to-tag", s("tt")),
        ("sdp", s(CALLEE_SDP)),
        ("flags", Value::List(vec![s("trust-address")])),
    ]
}

#[test]
fn offer_answer_query_list_delete() {
    let mut d = Daemon::new();
    assert_eq!(
        d.send("p1", &[("command", s("ping"))], 0),
        Value::dict([("result", s("pong"))])
    );

    // Offer: the SDP comes back byte for byte, nothing opens yet.
    let r = d.send("o1", &offer(), S);
    assert_eq!(text(&r, &["result"]), "ok");
    assert_eq!(text(&r, &["sdp"]), CALLER_SDP);
    assert!(d.table.flows.is_empty());

    // Answer: RTP and RTCP pairs open, both directions.
    let r = d.send("a1", &answer(), 2 * S);
    assert_eq!(text(&r, &["result"]), "ok");
    assert_eq!(text(&r, &["sdp"]), CALLEE_SDP);
    let mut flows: Vec<_> = d.table.flows.keys().copied().collect();
    flows.sort();
    let (a, b) = (sa("192.0.2.10:4000"), sa("198.51.100.20:10000"));
    let (ac, bc) = (sa("192.0.2.10:4001"), sa("198.51.100.20:10001"));
    let mut want = vec![(a, b), (b, a), (ac, bc), (bc, ac)];
    want.sort();
    assert_eq!(flows, want);

    // The answer retransmitted: same reply, the command does not run again.
    let applies = d.table.applies;
    let first = d.raw(
        proxy(),
        &[b"a1 ".as_slice(), &Value::dict(answer()).encode()].concat(),
        3 * S,
    );
    assert_eq!(d.table.applies, applies);
    assert_eq!(d.svc.counters().retransmissions, 1);
    let again = d.raw(
        proxy(),
        &[b"a1 ".as_slice(), &Value::dict(answer()).encode()].concat(),
        3 * S,
    );
    assert_eq!(first, again);

    // Traffic, then query.
    d.table.flows.insert(
        (a, b),
        Totals {
            packets: 10,
            bytes: 1720,
        },
    );
    d.table.flows.insert(
        (bc, ac),
        Totals {
            packets: 1,
            bytes: 80,
        },
    );
    let r = d.send(
        "q1",
        &[("command", s("query")), ("call-id", s("c1@proxy"))],
        4 * S,
    );
    assert_eq!(text(&r, &["result"]), "ok");
    assert_eq!(int(&r, &["totals", "RTP", "packets"]), 10);
    assert_eq!(int(&r, &["totals", "RTP", "bytes"]), 1720);
    assert_eq!(int(&r, &["totals", "RTCP", "packets"]), 1);
    assert_eq!(int(&r, &["created"]), 1_700_000_001);
    assert_eq!(int(&r, &["last signal"]), 1_700_000_002);
    let streams = r.get("streams").and_then(Value::as_list).unwrap();
    assert_eq!(streams.len(), 2);
    assert_eq!(text(&streams[0], &["type"]), "RTP");
    assert_eq!(text(&streams[0], &["a"]), "192.0.2.10:4000");
    assert_eq!(text(&streams[0], &["b"]), "198.51.100.20:10000");
    assert_eq!(text(&streams[0], &["to-tag"]), "tt");
    assert_eq!(int(&streams[0], &["index"]), 1);
    assert_eq!(int(&streams[0], &["a-to-b", "packets"]), 10);
    assert_eq!(int(&streams[1], &["b-to-a", "bytes"]), 80);

    let r = d.send("l1", &[("command", s("list"))], 5 * S);
    assert_eq!(r.get("calls"), Some(&Value::List(vec![s("c1@proxy")])));
    let r = d.send("s1", &[("command", s("statistics"))], 5 * S);
    assert_eq!(int(&r, &["statistics", "pinhole", "pinholes"]), 2);
    assert_eq!(
        int(&r, &["statistics", "currentstatistics", "sessionstotal"]),
        1
    );
    assert_eq!(
        int(&r, &["statistics", "pinhole", "verdicts", "hit", "packets"]),
        0
    );

    // Delete at once: the reply carries the final numbers, the flows go.
    let r = d.send(
        "d1",
        &[
            ("command", s("delete")),
            ("call-id", s("c1@proxy")),
            ("from-tag", s("ft")),
            ("delete-delay", Value::Int(0)),
        ],
        6 * S,
    );
    assert_eq!(text(&r, &["result"]), "ok");
    assert_eq!(int(&r, &["totals", "RTP", "packets"]), 10);
    assert!(d.table.flows.is_empty());

    // Deleting again: a warning, or with `fatal` an error.
    let r = d.send(
        "d2",
        &[("command", s("delete")), ("call-id", s("c1@proxy"))],
        7 * S,
    );
    assert_eq!(text(&r, &["result"]), "ok");
    assert_eq!(
        text(&r, &["warning"]),
        "Call-ID not found or tags didn't match"
    );
    let r = d.send(
        "d3",
        &[
            ("command", s("delete")),
            ("call-id", s("c1@proxy")),
            ("flags", Value::List(vec![s("fatal")])),
        ],
        7 * S,
    );
    assert_eq!(text(&r, &["result"]), "error");
    assert_eq!(text(&r, &["error-reason"]), "Unknown call-ID");
    let r = d.send(
        "q2",
        &[("command", s("query")), ("call-id", s("c1@proxy"))],
        7 * S,
    );
    assert_eq!(text(&r, &["error-reason"]), "Unknown call-ID");

    let c = d.svc.counters();
    assert_eq!(c.ok[NgCommand::Offer as usize], 1);
    assert_eq!(c.ok[NgCommand::Delete as usize], 2);
    assert_eq!(c.errors[NgCommand::Delete as usize], 1);
    assert_eq!(c.errors[NgCommand::Query as usize], 1);
    let counts = c.signaling_counts();
    assert!(counts.iter().any(|m| m.outcome == "ok" && m.count == 8));
}

#[test]
fn delayed_delete_and_backend_outcomes() {
    let mut d = Daemon::new();
    d.send("o", &offer(), 0);
    d.send("a", &answer(), 0);
    // Default delay: nothing closes at once.
    let r = d.send(
        "d",
        &[
            ("command", s("delete")),
            ("call-id", s("c1@proxy")),
            ("from-tag", s("ft")),
            ("to-tag", s("tt")),
        ],
        S,
    );
    assert_eq!(text(&r, &["result"]), "ok");
    assert_eq!(d.table.flows.len(), 4);
    // An offer for a call being deleted: ok with a warning, SDP unchanged.
    let r = d.send("o2", &offer(), S);
    assert_eq!(text(&r, &["result"]), "ok");
    assert_eq!(text(&r, &["sdp"]), CALLER_SDP);
    assert_eq!(text(&r, &["warning"]), "call is being deleted");
    // The timer closes it.
    let intents = d.calls.tick(S + 2 * S);
    d.table.apply(intents).unwrap();
    assert!(d.table.flows.is_empty());

    // An answer nobody offered, and a warning from the table.
    let r = d.send("a2", &answer(), 4 * S);
    assert_eq!(text(&r, &["error-reason"]), "Unknown call-ID");
    d.table.warn = Some(ApplyFailure {
        full: false,
        reason: "1 of 2 media pairs not opened: conflict".into(),
    });
    d.send("o3", &offer(), 5 * S);
    let r = d.send("a3", &answer(), 5 * S);
    assert_eq!(
        text(&r, &["warning"]),
        "1 of 2 media pairs not opened: conflict"
    );
    assert_eq!(text(&r, &["sdp"]), CALLEE_SDP);
    // A full table: rtpengine's error, so that the proxy fails over.
    d.table.warn = Some(ApplyFailure {
        full: true,
        reason: "flow map full".into(),
    });
    d.send("o4", &with(offer(), &[("call-id", s("c4"))]), 6 * S);
    let r = d.send("a4", &with(answer(), &[("call-id", s("c4"))]), 6 * S);
    assert_eq!(text(&r, &["result"]), "error");
    assert_eq!(text(&r, &["error-reason"]), "Ran out of ports");
    // Caps: an error.
    let mut d = Daemon::new();
    d.calls = Calls::new(CallConfig {
        max_calls: 0,
        ..CallConfig::default()
    });
    let r = d.send("o", &offer(), 0);
    assert_eq!(text(&r, &["result"]), "error");
    assert_eq!(
        text(&r, &["error-reason"]),
        "Parallel session limit reached"
    );
}

enum Want {
    NoReply,
    Error(&'static str),
}

#[test]
fn hostile_datagrams_get_errors_or_nothing() {
    let offer_with_sdp = |sdp: &[u8]| {
        let mut e = offer();
        e.retain(|(k, _)| *k != "sdp");
        e.push(("sdp", Value::Bytes(sdp.to_vec())));
        [b"c ".as_slice(), &Value::dict(e).encode()].concat()
    };
    let deep = format!("c d1:x{}i1e{}e", "l".repeat(100), "e".repeat(100));
    let oversized = [b"c d1:x40000:".as_slice(), &[b'y'; 40_000], b"e"].concat();
    let cases: Vec<(Vec<u8>, Want)> = vec![
        (b"".to_vec(), Want::NoReply),
        (b"nocookie".to_vec(), Want::NoReply),
        (b" d7:command4:pinge".to_vec(), Want::NoReply),
        ([&[b'k'; 300][..], b" de"].concat(), Want::NoReply),
        (b"c ".to_vec(), Want::Error("malformed bencode: input ends")),
        (
            b"c d7:command4:ping".to_vec(),
            Want::Error("malformed bencode: input ends"),
        ),
        (
            b"c d7:command3:fooe".to_vec(),
            Want::Error("unknown command `foo`"),
        ),
        (
            b"c d7:command15:start recordinge".to_vec(),
            Want::Error("unknown command `start recording`"),
        ),
        (b"c de".to_vec(), Want::Error("missing key `command`")),
        (b"c le".to_vec(), Want::Error("request is not a dictionary")),
        (
            deep.into_bytes(),
            Want::Error("nesting deeper than 32 levels"),
        ),
        (
            b"c d999999999:xe".to_vec(),
            Want::Error("runs past the end of the input"),
        ),
        (
            b"c d-1:xe".to_vec(),
            Want::Error("dictionary key at byte 1 is not a byte string"),
        ),
        (
            b"c d7:command4:ping1:ni01ee".to_vec(),
            Want::Error("invalid integer"),
        ),
        (
            b"c d7:command4:ping1:n01:ee".to_vec(),
            Want::Error("invalid string length"),
        ),
        (
            b"c d7:command4:pinge junk".to_vec(),
            Want::Error("trailing data"),
        ),
        (oversized, Want::Error("bytes exceeds the 32768-byte limit")),
        (offer_with_sdp(b"not sdp"), Want::Error("malformed SDP")),
        (
            offer_with_sdp(b"v=0\r\n\xff\r\n"),
            Want::Error("SDP is not valid UTF-8"),
        ),
    ];
    let mut d = Daemon::new();
    for (i, (dgram, want)) in cases.into_iter().enumerate() {
        // A cookie of its own, so that no reply comes from the cache.
        let dgram = match dgram.strip_prefix(b"c ") {
            Some(rest) => [format!("c{i} ").as_bytes(), rest].concat(),
            None => dgram,
        };
        let got = d.raw(proxy(), &dgram, i as u64);
        let label = String::from_utf8_lossy(&dgram[..dgram.len().min(60)]).into_owned();
        match want {
            Want::NoReply => assert_eq!(got, None, "{label}"),
            Want::Error(reason) => {
                let got = got.unwrap_or_else(|| panic!("no reply to {label}"));
                let (_, body) = wire::split(&got).unwrap();
                let v = bencode::decode(body).unwrap();
                assert_eq!(text(&v, &["result"]), "error", "{label}");
                assert!(
                    text(&v, &["error-reason"]).contains(reason),
                    "{label}: {v:?}"
                );
                // Nothing but result and error-reason, as rtpengine says.
                assert_eq!(v.as_dict().map(|m| m.len()), Some(2));
            }
        }
    }
    assert_eq!(d.svc.counters().no_cookie, 4);
    assert!(d.table.flows.is_empty());
}

#[test]
fn truncations_and_noise_never_panic() {
    let mut d = Daemon::new();
    let full = [b"c ".as_slice(), &Value::dict(offer()).encode()].concat();
    for n in 0..full.len() {
        // A fresh cookie each time, so no reply comes from the cache.
        let dgram = [format!("t{n}").as_bytes(), &full[1..n.max(1)]].concat();
        let _ = d.raw(proxy(), &dgram, n as u64);
    }
    // Deterministic noise (xorshift), with and without a cookie.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..5_000u64 {
        let mut dgram = format!("n{i} ").into_bytes();
        let len = (x % 64) as usize;
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            dgram.push(b"dlie0123456789:-x "[(x % 18) as usize]);
        }
        if i % 7 == 0 {
            dgram.drain(..dgram.iter().position(|&b| b == b' ').unwrap() + 1);
        }
        let _ = d.raw(proxy(), &dgram, i);
    }
    assert!(d.svc.counters().invalid > 0);
}

#[test]
fn json_requests_get_json_replies() {
    let mut d = Daemon::new();
    // (request body, expected reply body)
    let cases: [(&str, &str); 6] = [
        (r#"{"command":"ping"}"#, r#"{"result":"pong"}"#),
        (
            r#" {"command":"list","limit":5}"#,
            r#"{"calls":[],"result":"ok"}"#,
        ),
        (
            r#"{"command":"offer","call-id":"j1","from-tag":"f","sdp":"v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n","flags":["trust address"]}"#,
            r#"{"result":"ok","sdp":"v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n"}"#,
        ),
        (
            r#"{"command":"delete","call-id":"j1","delete-delay":0,"flags":["fatal"]}"#,
            r#"{"created":1700000000,"last signal":1700000000,"result":"ok","streams":[],"totals":{"RTCP":{"bytes":0,"errors":0,"packets":0},"RTP":{"bytes":0,"errors":0,"packets":0}}}"#,
        ),
        (
            r#"{"command":"ping","x":null}"#,
            r#"{"error-reason":"malformed JSON: null is not a value","result":"error"}"#,
        ),
        (
            r#"{"command":"ping","#,
            r#"{"error-reason":"malformed JSON: EOF while parsing a value at line 1 column 18","result":"error"}"#,
        ),
    ];
    for (i, (req, want)) in cases.into_iter().enumerate() {
        let dgram = format!("j{i} {req}");
        let reply = d.raw(proxy(), dgram.as_bytes(), 0).expect("a reply");
        assert_eq!(
            String::from_utf8(reply).unwrap(),
            format!("j{i} {want}"),
            "{req}"
        );
    }
}

#[test]
fn peers_outside_the_allow_list_get_nothing() {
    let mut d = Daemon::new();
    let ping = b"c d7:command4:pinge";
    assert_eq!(d.raw(sa("192.0.2.1:5000"), ping, 0), None);
    assert!(d.raw(sa("[::1]:5000"), ping, 0).is_some());
    assert!(d.raw(sa("[::ffff:127.0.0.1]:5000"), ping, 0).is_some());
    assert_eq!(d.svc.counters().denied, 1);
    // A cookie reused by another peer is not answered from the cache.
    let mut d = Daemon::new();
    d.svc = NgService::new(NgConfig {
        allow: vec!["0.0.0.0/0".parse().unwrap()],
        ..NgConfig::default()
    });
    d.raw(sa("192.0.2.1:5000"), ping, 0);
    d.raw(sa("192.0.2.2:5000"), ping, 0);
    assert_eq!(d.svc.counters().retransmissions, 0);
}

/// A backend with many calls, to overflow a datagram.
struct Many;

impl NgBackend for Many {
    fn offer(&mut self, _: &OfferAnswer, _: &[Media]) -> Result<(), BackendError> {
        Err(BackendError::Failed("no".into()))
    }
    fn answer(&mut self, _: &OfferAnswer, _: &[Media]) -> Result<(), BackendError> {
        Err(BackendError::Failed("no".into()))
    }
    fn delete(&mut self, _: &Delete) -> Result<CallStats, BackendError> {
        Err(BackendError::Failed("no".into()))
    }
    fn query(&mut self, _: &CallRef) -> Result<CallStats, BackendError> {
        let stream = StreamStats {
            from_tag: "f".repeat(500),
            to_tag: "t".repeat(500),
            index: 0,
            rtcp: false,
            a: sa("192.0.2.1:1"),
            b: sa("192.0.2.2:2"),
            a_to_b: Totals::default(),
            b_to_a: Totals::default(),
        };
        Ok(CallStats {
            streams: vec![stream; 100],
            ..CallStats::default()
        })
    }
    fn list(&mut self, limit: usize) -> Vec<String> {
        (0..limit.min(5000)).map(|i| format!("{i:0>100}")).collect()
    }
    fn statistics(&mut self) -> Snapshot {
        Snapshot::default()
    }
}

#[test]
fn replies_fit_a_datagram() {
    let mut svc = NgService::new(NgConfig::default());
    let list = b"c d7:command4:list5:limiti100000ee";
    let reply = svc.handle(&mut Many, proxy(), list, 0).unwrap();
    assert!(reply.len() <= MAX_REPLY);
    let v = bencode::decode(wire::split(&reply).unwrap().1).unwrap();
    let n = v.get("calls").and_then(Value::as_list).unwrap().len();
    assert!((500..5000).contains(&n), "{n}");
    // A reply that cannot be cut becomes an error.
    let query = b"q d7:command5:query7:call-id1:xe";
    let reply = svc.handle(&mut Many, proxy(), query, 0).unwrap();
    let v = bencode::decode(wire::split(&reply).unwrap().1).unwrap();
    assert_eq!(
        text(&v, &["error-reason"]),
        "reply too large for a datagram"
    );
    // Backend failures become error replies.
    let r = svc
        .handle(
            &mut Many,
            proxy(),
            &[b"o ".as_slice(), &Value::dict(offer()).encode()].concat(),
            0,
        )
        .unwrap();
    let v = bencode::decode(wire::split(&r).unwrap().1).unwrap();
    assert_eq!(text(&v, &["error-reason"]), "no");
}

#[tokio::test]
async fn udp_listener_round_trip() {
    let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    let daemon = Arc::new(Mutex::new(Daemon::new()));
    let d = daemon.clone();
    let task = tokio::spawn(serve_udp(server, move |peer, dgram| {
        let d = d.clone();
        async move { d.lock().unwrap().raw(peer, &dgram, 0) }
    }));
    let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(addr).await.unwrap();
    // A datagram without a cookie gets nothing; the ping after it a pong.
    client.send(b"garbage").await.unwrap();
    client.send(b"k7 d7:command4:pinge").await.unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
        .await
        .expect("a reply within 5 s")
        .unwrap();
    assert_eq!(&buf[..n], b"k7 d6:result4:ponge");
    assert_eq!(daemon.lock().unwrap().svc.counters().no_cookie, 1);
    task.abort();
}

/// The measured bug: an offer whose SDP names a third party while
/// received-from names the UA opened its media. Now it is refused by name,
/// nothing is tracked, and the UA's own address is accepted.
#[test]
fn received_from_decides_whose_media_passes() {
    let rf = |a: &str| ("received-from", Value::List(vec![s("IP4"), s(a)]));
    let sdp = |a: &str| {
        s(&format!(
            "v=0\r\no=- 1 1 IN IP4 {a}\r\ns=-\r\nc=IN IP4 {a}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
        ))
    };
    let no_flags = |e: Vec<(&'static str, Value)>| {
        e.into_iter()
            .filter(|(k, _)| *k != "flags")
            .collect::<Vec<_>>()
    };
    let mut d = Daemon::new();
    let third = with(
        no_flags(offer()),
        &[rf("203.0.113.10"), ("sdp", sdp("203.0.113.66"))],
    );
    let r = d.send("t", &third, 0);
    assert_eq!(text(&r, &["result"]), "error");
    assert!(
        text(&r, &["error-reason"]).contains("203.0.113.66 is not received-from 203.0.113.10"),
        "{r:?}"
    );
    assert_eq!(d.calls.active_calls(), 0);
    // No received-from, no trust-address: refused, safe default.
    let r = d.send("n", &no_flags(offer()), 0);
    assert!(text(&r, &["error-reason"]).contains("no received-from"));
    // The UA's own address, then the callee's from its own received-from.
    let own = with(
        no_flags(offer()),
        &[rf("203.0.113.10"), ("sdp", sdp("203.0.113.10"))],
    );
    assert_eq!(text(&d.send("o", &own, 0), &["result"]), "ok");
    let ans = with(no_flags(answer()), &[rf("198.51.100.20")]);
    assert_eq!(text(&d.send("a", &ans, 0), &["result"]), "ok");
    assert_eq!(d.table.flows.len(), 4);
    // SIP-source-address: the SDP's (private) address is replaced by
    // received-from.
    let mut d = Daemon::new();
    let nat = with(
        no_flags(offer()),
        &[
            rf("203.0.113.10"),
            ("sdp", sdp("198.51.100.50")),
            ("flags", Value::List(vec![s("SIP-source-address")])),
        ],
    );
    let r = d.send("s", &nat, 0);
    assert_eq!(text(&r, &["result"]), "ok");
    assert_eq!(text(&r, &["sdp"]), text(&sdp("198.51.100.50"), &[]));
    d.send("a", &with(no_flags(answer()), &[rf("198.51.100.20")]), 0);
    assert!(d
        .table
        .flows
        .contains_key(&(sa("203.0.113.10:4000"), sa("198.51.100.20:10000"))));
    // A refused option: an error naming it, nothing tracked.
    let mut d = Daemon::new();
    let ice = with(offer(), &[("ICE", s("remove"))]);
    let r = d.send("i", &ice, 0);
    assert!(text(&r, &["error-reason"]).ends_with("unsupported: ICE=remove"));
    assert_eq!(d.calls.active_calls(), 0);
}

/// A table without room for a new call's pairs: rtpengine's "Ran out of
/// ports" on the offer, so the proxy offers the call to its next node.
#[test]
fn a_full_table_runs_out_of_ports_on_the_offer() {
    let mut d = Daemon::new();
    // CALLER_SDP: one stream, RTCP on its own pair: four flows.
    d.table.capacity = 3;
    let r = d.send("o", &offer(), 0);
    assert_eq!(text(&r, &["result"]), "error");
    assert_eq!(text(&r, &["error-reason"]), OUT_OF_PORTS);
    assert_eq!(d.calls.active_calls(), 0);
    d.table.capacity = 4;
    assert_eq!(text(&d.send("o2", &offer(), 0), &["result"]), "ok");
    assert_eq!(d.svc.counters().errors[NgCommand::Offer as usize], 1);
}
