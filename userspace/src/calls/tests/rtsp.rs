//! RTSP session flows with hand-built events; every step asserts the exact
//! intents.

use std::net::SocketAddr;
use std::time::Duration;

use super::support::Step::{Rtsp, Tick};
use super::support::*;
use crate::calls::*;

const CLIENT: &str = "192.0.2.10:50000";
const SERVER: &str = "198.51.100.20:554";

fn ports(rtp: u16, rtcp: Option<u16>) -> Option<PortPair> {
    Some(PortPair { rtp, rtcp })
}

fn owner() -> Owner {
    rtsp_owner(SERVER, "12345678")
}

fn open(a: &str, b: &str) -> Intent {
    opened(owner(), a, b)
}

fn close(a: &str, b: &str, cause: CloseCause) -> Intent {
    closed(owner(), a, b, cause)
}

/// A request from the client to the server.
fn request(
    method: RtspMethod,
    cseq: u32,
    session: Option<&str>,
    transport: Option<RtspTransport>,
) -> RtspEvent {
    RtspEvent {
        src: sa(CLIENT),
        dst: sa(SERVER),
        start: RtspStart::Request(method),
        cseq,
        session: session.map(str::to_string),
        session_timeout: None,
        transport,
    }
}

/// The response to `req`.
fn response(
    req: &RtspEvent,
    code: u16,
    session: Option<&str>,
    timeout: Option<u64>,
    transport: Option<RtspTransport>,
) -> RtspEvent {
    RtspEvent {
        src: req.dst,
        dst: req.src,
        start: RtspStart::Response(code),
        cseq: req.cseq,
        session: session.map(str::to_string),
        session_timeout: timeout.map(Duration::from_secs),
        transport,
    }
}

/// `RTP/AVP;unicast;client_port=5000-5001`
fn client_transport() -> RtspTransport {
    RtspTransport {
        client_port: ports(5000, Some(5001)),
        ..RtspTransport::default()
    }
}

/// `RTP/AVP;unicast;client_port=5000-5001;server_port=6000-6001`
fn server_transport() -> RtspTransport {
    RtspTransport {
        server_port: ports(6000, Some(6001)),
        ..client_transport()
    }
}

/// SETUP and its 200 (Session 12345678, timeout 60): RTP and RTCP open.
fn setup() -> Vec<Step> {
    let req = request(RtspMethod::Setup, 2, None, Some(client_transport()));
    vec![
        Rtsp(0, req.clone(), vec![]),
        Rtsp(
            1,
            response(
                &req,
                200,
                Some("12345678"),
                Some(60),
                Some(server_transport()),
            ),
            vec![
                open("192.0.2.10:5000", "198.51.100.20:6000"),
                open("192.0.2.10:5001", "198.51.100.20:6001"),
            ],
        ),
    ]
}

fn teardown_closes(cause: CloseCause) -> Vec<Intent> {
    vec![
        close("192.0.2.10:5000", "198.51.100.20:6000", cause),
        close("192.0.2.10:5001", "198.51.100.20:6001", cause),
    ]
}

#[test]
fn setup_play_teardown() {
    let play = request(RtspMethod::Play, 3, Some("12345678"), None);
    let mut steps = setup();
    steps.extend([
        Rtsp(2, play.clone(), vec![]),
        Rtsp(
            3,
            response(&play, 200, Some("12345678"), None, None),
            vec![],
        ),
        Rtsp(
            10_000,
            request(RtspMethod::Teardown, 4, Some("12345678"), None),
            teardown_closes(CloseCause::Teardown),
        ),
        // Its response and a second observation of the TEARDOWN do nothing.
        Rtsp(
            10_001,
            response(
                &request(RtspMethod::Teardown, 4, None, None),
                200,
                None,
                None,
                None,
            ),
            vec![],
        ),
        Rtsp(
            10_002,
            request(RtspMethod::Teardown, 4, Some("12345678"), None),
            vec![],
        ),
    ]);
    let calls = run(CallConfig::default(), steps);
    let c = calls.counters();
    assert_eq!(
        (c.sessions_opened, c.calls_closed(CloseCause::Teardown)),
        (1, 1)
    );
    assert_eq!(calls.active_sessions(), 0);
}

#[test]
fn session_timeout_without_keepalive_closes() {
    let keepalive = |t: u64, method| Rtsp(t, request(method, 3, Some("12345678"), None), vec![]);
    let req = request(RtspMethod::Setup, 2, None, Some(client_transport()));
    let steps = vec![
        Rtsp(0, req.clone(), vec![]),
        Rtsp(
            1,
            response(
                &req,
                200,
                Some("12345678"),
                Some(30),
                Some(server_transport()),
            ),
            vec![
                open("192.0.2.10:5000", "198.51.100.20:6000"),
                open("192.0.2.10:5001", "198.51.100.20:6001"),
            ],
        ),
        keepalive(20_000, RtspMethod::Play),
        Tick(30_001, vec![]),
        keepalive(45_000, RtspMethod::Other),
        Tick(74_999, vec![]),
        Tick(75_000, teardown_closes(CloseCause::SessionTimeout)),
    ];
    let calls = run(CallConfig::default(), steps);
    assert_eq!(calls.counters().calls_closed(CloseCause::SessionTimeout), 1);
    assert_eq!(calls.next_deadline(), None);
}

#[test]
fn default_session_timeout_is_sixty_seconds() {
    let req = request(RtspMethod::Setup, 2, None, Some(client_transport()));
    let steps = vec![
        Rtsp(0, req.clone(), vec![]),
        Rtsp(
            1,
            response(&req, 200, Some("12345678"), None, Some(server_transport())),
            vec![
                open("192.0.2.10:5000", "198.51.100.20:6000"),
                open("192.0.2.10:5001", "198.51.100.20:6001"),
            ],
        ),
        Tick(60_000, vec![]),
        Tick(60_001, teardown_closes(CloseCause::SessionTimeout)),
    ];
    run(CallConfig::default(), steps);
}

#[test]
fn keepalive_from_another_host_does_not_count() {
    let stranger = |method| RtspEvent {
        src: sa("192.0.2.99:50000"),
        ..request(method, 3, Some("12345678"), None)
    };
    let mut steps = setup();
    steps.extend([
        Rtsp(30_000, stranger(RtspMethod::Other), vec![]),
        Rtsp(30_001, stranger(RtspMethod::Teardown), vec![]),
        Tick(60_001, teardown_closes(CloseCause::SessionTimeout)),
    ]);
    let calls = run(CallConfig::default(), steps);
    assert_eq!(calls.counters().rtsp_unmatched, 2);
}

#[test]
fn interleaved_transport_opens_nothing() {
    let tcp = RtspTransport {
        interleaved: true,
        ..RtspTransport::default()
    };
    // (request transport, response transport)
    let cases = [(tcp, tcp), (client_transport(), tcp)];
    for (req_t, resp_t) in cases {
        let req = request(RtspMethod::Setup, 2, None, Some(req_t));
        let steps = vec![
            Rtsp(0, req.clone(), vec![]),
            Rtsp(
                1,
                response(&req, 200, Some("12345678"), None, Some(resp_t)),
                vec![],
            ),
        ];
        let calls = run(CallConfig::default(), steps);
        assert_eq!(calls.counters().rtsp_interleaved, 1);
        assert_eq!(calls.active_sessions(), 0);
    }
}

#[test]
fn two_tracks_in_one_session() {
    let video = RtspTransport {
        client_port: ports(5002, Some(5003)),
        ..RtspTransport::default()
    };
    let req = request(RtspMethod::Setup, 3, Some("12345678"), Some(video));
    let mut steps = setup();
    steps.extend([
        Rtsp(2, req.clone(), vec![]),
        Rtsp(
            3,
            response(
                &req,
                200,
                Some("12345678"),
                Some(60),
                Some(RtspTransport {
                    server_port: ports(6002, Some(6003)),
                    ..video
                }),
            ),
            vec![
                open("192.0.2.10:5002", "198.51.100.20:6002"),
                open("192.0.2.10:5003", "198.51.100.20:6003"),
            ],
        ),
        Rtsp(
            4,
            request(RtspMethod::Teardown, 4, Some("12345678"), None),
            [
                teardown_closes(CloseCause::Teardown),
                vec![
                    close(
                        "192.0.2.10:5002",
                        "198.51.100.20:6002",
                        CloseCause::Teardown,
                    ),
                    close(
                        "192.0.2.10:5003",
                        "198.51.100.20:6003",
                        CloseCause::Teardown,
                    ),
                ],
            ]
            .concat(),
        ),
    ]);
    run(CallConfig::default(), steps);
}

#[test]
fn duplicates_are_idempotent() {
    let req = request(RtspMethod::Setup, 2, None, Some(client_transport()));
    let resp = response(
        &req,
        200,
        Some("12345678"),
        Some(60),
        Some(server_transport()),
    );
    let steps = vec![
        Rtsp(0, req.clone(), vec![]),
        Rtsp(0, req.clone(), vec![]),
        Rtsp(
            1,
            resp.clone(),
            vec![
                open("192.0.2.10:5000", "198.51.100.20:6000"),
                open("192.0.2.10:5001", "198.51.100.20:6001"),
            ],
        ),
        Rtsp(1, resp.clone(), vec![]),
        // The same SETUP seen again later (say on a second interface) and its
        // response: the pairs are open already.
        Rtsp(2, req, vec![]),
        Rtsp(3, resp, vec![]),
    ];
    let calls = run(CallConfig::default(), steps);
    assert_eq!(calls.counters().pairs_opened, 2);
    assert_eq!(calls.counters().sessions_opened, 1);
}

#[test]
fn failed_or_incomplete_setups() {
    let req = request(RtspMethod::Setup, 2, None, Some(client_transport()));
    let no_server_port = response(&req, 200, Some("12345678"), None, Some(client_transport()));
    let no_session = response(&req, 200, None, None, Some(server_transport()));
    let incomplete = Intent::Refused {
        owner: None,
        reason: Refusal::IncompleteSetup,
        pair: None,
    };
    // (response, intents)
    let cases = [
        (response(&req, 454, None, None, None), vec![]),
        (response(&req, 461, None, None, None), vec![]),
        (no_server_port, vec![incomplete.clone()]),
        (no_session, vec![incomplete]),
    ];
    for (resp, want) in cases {
        let steps = vec![Rtsp(0, req.clone(), vec![]), Rtsp(1, resp, want)];
        let calls = run(CallConfig::default(), steps);
        assert_eq!(calls.active_sessions(), 0);
    }
    // A response without a SETUP we saw.
    let steps = vec![Rtsp(
        1,
        response(&req, 200, Some("1"), None, Some(server_transport())),
        vec![],
    )];
    run(CallConfig::default(), steps);
}

#[test]
fn single_ports_open_only_rtp() {
    let t = RtspTransport {
        client_port: ports(5000, None),
        ..RtspTransport::default()
    };
    let req = request(RtspMethod::Setup, 2, None, Some(t));
    let steps = vec![
        Rtsp(0, req.clone(), vec![]),
        Rtsp(
            1,
            response(
                &req,
                200,
                Some("12345678"),
                None,
                Some(RtspTransport {
                    server_port: ports(6000, Some(6001)),
                    ..t
                }),
            ),
            vec![open("192.0.2.10:5000", "198.51.100.20:6000")],
        ),
    ];
    run(CallConfig::default(), steps);
}

#[test]
fn source_and_destination_must_be_the_peers_or_relays() {
    let with = |destination: Option<&str>, source: Option<&str>| {
        let req_t = RtspTransport {
            destination: destination.map(ip),
            ..client_transport()
        };
        let resp_t = RtspTransport {
            destination: destination.map(ip),
            source: source.map(ip),
            ..server_transport()
        };
        let req = request(RtspMethod::Setup, 2, None, Some(req_t));
        let resp = response(&req, 200, Some("12345678"), None, Some(resp_t));
        (req, resp)
    };
    let third = |a: &str, b: &str| Intent::Refused {
        owner: Some(owner()),
        reason: Refusal::ThirdPartyMedia,
        pair: Some((sa(a), sa(b))),
    };
    let relay = CallConfig {
        media_relay: vec!["203.0.113.0/24".parse().unwrap()],
        ..CallConfig::default()
    };
    // (config, destination=, source=, intents)
    let cases = [
        (
            CallConfig::default(),
            Some("192.0.2.10"),
            Some("198.51.100.20"),
            vec![
                open("192.0.2.10:5000", "198.51.100.20:6000"),
                open("192.0.2.10:5001", "198.51.100.20:6001"),
            ],
        ),
        (
            CallConfig::default(),
            Some("203.0.113.7"),
            None,
            vec![
                third("203.0.113.7:5000", "198.51.100.20:6000"),
                third("203.0.113.7:5001", "198.51.100.20:6001"),
            ],
        ),
        (
            CallConfig::default(),
            None,
            Some("203.0.113.8"),
            vec![
                third("192.0.2.10:5000", "203.0.113.8:6000"),
                third("192.0.2.10:5001", "203.0.113.8:6001"),
            ],
        ),
        (
            relay.clone(),
            Some("203.0.113.7"),
            Some("203.0.113.8"),
            vec![
                open("203.0.113.7:5000", "203.0.113.8:6000"),
                open("203.0.113.7:5001", "203.0.113.8:6001"),
            ],
        ),
    ];
    for (cfg, destination, source, want) in cases {
        let (req, resp) = with(destination, source);
        run(cfg, vec![Rtsp(0, req, vec![]), Rtsp(1, resp, want)]);
    }
}

#[test]
fn untrusted_and_caps() {
    let untrusted = CallConfig {
        trusted_signaling: vec!["203.0.113.0/24".parse().unwrap()],
        ..CallConfig::default()
    };
    let refused = Intent::Refused {
        owner: None,
        reason: Refusal::UntrustedSignaling,
        pair: None,
    };
    let req = request(RtspMethod::Setup, 2, None, Some(client_transport()));
    let steps = vec![
        Rtsp(0, req.clone(), vec![refused.clone()]),
        Rtsp(
            1,
            response(&req, 200, Some("12345678"), None, Some(server_transport())),
            vec![refused],
        ),
    ];
    let calls = run(untrusted, steps);
    assert_eq!(calls.active_sessions(), 0);

    // One session per client, one pair per session.
    let tight = CallConfig {
        max_calls_per_peer: 1,
        max_pairs_per_call: 1,
        ..CallConfig::default()
    };
    let second = request(RtspMethod::Setup, 5, None, Some(client_transport()));
    let steps = vec![
        Rtsp(0, req.clone(), vec![]),
        Rtsp(
            1,
            response(&req, 200, Some("12345678"), None, Some(server_transport())),
            vec![
                open("192.0.2.10:5000", "198.51.100.20:6000"),
                Intent::Refused {
                    owner: Some(owner()),
                    reason: Refusal::PerCallCap,
                    pair: Some((sa("192.0.2.10:5001"), sa("198.51.100.20:6001"))),
                },
            ],
        ),
        Rtsp(2, second.clone(), vec![]),
        Rtsp(
            3,
            response(&second, 200, Some("other"), None, Some(server_transport())),
            vec![Intent::Refused {
                owner: Some(rtsp_owner(SERVER, "other")),
                reason: Refusal::PerPeerCap,
                pair: None,
            }],
        ),
    ];
    let calls = run(tight, steps);
    assert_eq!(calls.counters().refused(Refusal::PerPeerCap), 1);
    assert_eq!(calls.counters().refused(Refusal::PerCallCap), 1);

    // Pending SETUPs are bounded too.
    let one = CallConfig {
        max_calls: 1,
        ..CallConfig::default()
    };
    let steps = vec![
        Rtsp(0, req.clone(), vec![]),
        Rtsp(
            1,
            second,
            vec![Intent::Refused {
                owner: None,
                reason: Refusal::TableFull,
                pair: None,
            }],
        ),
    ];
    run(one, steps);
}

#[test]
fn unanswered_setup_is_forgotten() {
    let req = request(RtspMethod::Setup, 2, None, Some(client_transport()));
    let mut calls = Calls::new(CallConfig::default());
    assert!(calls.on_rtsp(&req, ms(0)).is_empty());
    assert_eq!(calls.next_deadline(), Some(ms(180_000)));
    assert!(calls.tick(ms(180_000)).is_empty());
    assert_eq!(calls.next_deadline(), None);
    let resp = response(&req, 200, Some("12345678"), None, Some(server_transport()));
    assert!(calls.on_rtsp(&resp, ms(180_001)).is_empty());
    assert_eq!(calls.active_sessions(), 0);
}

#[test]
fn ipv6_session() {
    let req = RtspEvent {
        src: sa("[2001:db8::10]:50000"),
        dst: sa("[2001:db8:1::20]:8554"),
        ..request(RtspMethod::Setup, 2, None, Some(client_transport()))
    };
    let resp = response(&req, 200, Some("abc"), None, Some(server_transport()));
    let owner = rtsp_owner("[2001:db8:1::20]:8554", "abc");
    let pair = |a: &str, b: &str| (sa(a), sa(b));
    let rtp = pair("[2001:db8::10]:5000", "[2001:db8:1::20]:6000");
    let rtcp = pair("[2001:db8::10]:5001", "[2001:db8:1::20]:6001");
    let mut calls = Calls::new(CallConfig::default());
    assert!(calls.on_rtsp(&req, ms(0)).is_empty());
    let got = calls.on_rtsp(&resp, ms(1));
    let want: Vec<Intent> = [rtp, rtcp]
        .into_iter()
        .map(|(a, b)| Intent::Open {
            owner: owner.clone(),
            a,
            b,
            idle_timeout: IDLE,
        })
        .collect();
    assert_eq!(got, want);
    let teardown = RtspEvent {
        session: Some("abc".into()),
        ..request(RtspMethod::Teardown, 3, None, None)
    };
    let teardown = RtspEvent {
        src: req.src,
        dst: req.dst,
        ..teardown
    };
    let want: Vec<Intent> = [rtp, rtcp]
        .into_iter()
        .map(|(a, b)| Intent::Close {
            owner: owner.clone(),
            a,
            b,
            cause: CloseCause::Teardown,
        })
        .collect();
    assert_eq!(calls.on_rtsp(&teardown, ms(2)), want);
}

#[test]
fn a_restored_session_times_out_and_tears_down() {
    let calls = run(CallConfig::default(), setup());
    let json = serde_json::to_string(&calls.snapshot()).unwrap();
    let mut calls = Calls::new(CallConfig::default());
    calls.restore(serde_json::from_str(&json).unwrap());
    assert_eq!(calls.active_sessions(), 1);
    // The 60 s session timeout counts from the SETUP's response.
    assert_eq!(calls.next_deadline(), Some(ms(60_001)));
    let mut again = Calls::new(CallConfig::default());
    again.restore(calls.snapshot());
    assert_eq!(
        again.tick(ms(60_001)),
        teardown_closes(CloseCause::SessionTimeout)
    );
    assert_eq!(
        calls.on_rtsp(
            &request(RtspMethod::Teardown, 9, Some("12345678"), None),
            ms(30_000)
        ),
        teardown_closes(CloseCause::Teardown)
    );
    assert_eq!(calls.active_sessions(), 0);
}

#[test]
fn play_after_a_pause_longer_than_the_idle_timeout_reopens() {
    let (rtp, rtcp) = (
        ("192.0.2.10:5000", "198.51.100.20:6000"),
        ("192.0.2.10:5001", "198.51.100.20:6001"),
    );
    let mut steps = setup();
    steps.extend([
        Rtsp(
            2,
            request(RtspMethod::Pause, 3, Some("12345678"), None),
            vec![],
        ),
        // The pairs idle out during the pause; GET_PARAMETER keeps the
        // session but opens nothing.
        Step::Expire(400_000, owner(), rtp.0, rtp.1),
        Step::Expire(400_000, owner(), rtcp.1, rtcp.0),
        Rtsp(
            401_000,
            request(RtspMethod::Other, 4, Some("12345678"), None),
            vec![],
        ),
        Rtsp(
            402_000,
            request(RtspMethod::Play, 5, Some("12345678"), None),
            vec![open(rtp.0, rtp.1), open(rtcp.0, rtcp.1)],
        ),
        Rtsp(
            403_000,
            request(RtspMethod::Teardown, 6, Some("12345678"), None),
            teardown_closes(CloseCause::Teardown),
        ),
    ]);
    let calls = run(CallConfig::default(), steps);
    let c = calls.counters();
    assert_eq!((c.pairs_expired_rtsp, c.pairs_reopened), (2, 2));
}

#[test]
fn client_rtcp_keeps_a_session_up() {
    let mut calls = run(CallConfig::default(), setup());
    let rtcp = (sa("192.0.2.10:5001"), sa("198.51.100.20:6001"));
    // The client sends receiver reports every 5 s and no RTSP request: the
    // client → server flow of the RTCP pair is the keep-alive. Server → client
    // media does not count (a server streams whether the client is there).
    let mut last_rr = ms(1);
    for t in (5_000..=300_000).step_by(5_000) {
        let now = ms(t);
        let got = calls.tick_with_activity(now, &mut |o, a, b| {
            assert_eq!(*o, owner());
            ((a, b) == rtcp).then_some(last_rr)
        });
        assert_eq!(got, vec![], "at {t} ms");
        last_rr = now;
    }
    assert_eq!(calls.active_sessions(), 1);
    assert!(calls.counters().rtsp_media_keepalive >= 4);
    // The reports stop: the session times out 60 s after the last one.
    let stop = last_rr;
    let none = |t: u64, calls: &mut Calls| {
        calls.tick_with_activity(t, &mut |_, a, b| ((a, b) == rtcp).then_some(stop))
    };
    assert_eq!(none(stop + 59 * 1_000_000_000, &mut calls), vec![]);
    assert_eq!(
        none(stop + 60 * 1_000_000_000, &mut calls),
        teardown_closes(CloseCause::SessionTimeout)
    );
    // Only the server's media: times out.
    let mut calls = run(CallConfig::default(), setup());
    let server_only = |_: &Owner, a: SocketAddr, _: SocketAddr| {
        (a.ip() == ip("198.51.100.20")).then_some(ms(59_000))
    };
    let mut f = server_only;
    assert_eq!(
        calls.tick_with_activity(ms(60_001), &mut f),
        teardown_closes(CloseCause::SessionTimeout)
    );
}
