//! Bounded latching in the call layer: which streams become half-open
//! ([`Intent::Latch`]) instead of third-party refusals, and how they close.

use std::time::Duration;

use super::support::*;
use crate::calls::*;

/// The caller's SDP address behind its NAT.
const NAT_RTP: &str = "203.0.113.5:30000";
const NAT_RTCP: &str = "203.0.113.5:30001";
const WINDOW: Duration = Duration::from_secs(5);

fn owner() -> Owner {
    sip_owner("nat-1@192.0.2.10", "caller-tag")
}

fn latching() -> CallConfig {
    CallConfig {
        latching: WINDOW,
        ..CallConfig::default()
    }
}

fn invite(src: &str, sdp: Vec<Media>) -> SipEvent {
    SipEvent {
        src: sa(src),
        dst: sa(CALLEE),
        start: SipStart::Request(SipMethod::Invite),
        call_id: "nat-1@192.0.2.10".into(),
        from_tag: "caller-tag".into(),
        to_tag: None,
        cseq: 1,
        cseq_method: SipMethod::Invite,
        sdp: Some(sdp),
    }
}

fn ok(req: &SipEvent, src: &str, sdp: Vec<Media>) -> SipEvent {
    SipEvent {
        src: sa(src),
        dst: req.src,
        start: SipStart::Response(200),
        to_tag: Some("b1".into()),
        sdp: Some(sdp),
        ..req.clone()
    }
}

fn bye() -> SipEvent {
    SipEvent {
        start: SipStart::Request(SipMethod::Bye),
        to_tag: Some("b1".into()),
        cseq: 2,
        cseq_method: SipMethod::Bye,
        sdp: None,
        ..invite(CALLER, vec![])
    }
}

fn latch(a: &str, b: &str, side: Side, from: &str) -> Intent {
    Intent::Latch {
        owner: owner(),
        a: sa(a),
        b: sa(b),
        side,
        from: ip(from),
        window: WINDOW,
        idle_timeout: IDLE,
        pre_answer: false,
    }
}

fn open(a: &str, b: &str) -> Intent {
    opened(owner(), a, b)
}

fn close(a: &str, b: &str, cause: CloseCause) -> Intent {
    closed(owner(), a, b, cause)
}

fn refused(a: &str, b: &str) -> Intent {
    Intent::Refused {
        owner: Some(owner()),
        reason: Refusal::ThirdPartyMedia,
        pair: Some((sa(a), sa(b))),
    }
}

/// The intents of an INVITE then a 200, each from its signaling address.
fn call(
    cfg: CallConfig,
    caller_sig: &str,
    offer: &str,
    callee_sig: &str,
    answer: &str,
) -> (Calls, Vec<Intent>) {
    let mut calls = Calls::new(cfg);
    let inv = invite(caller_sig, vec![audio(offer)]);
    assert_eq!(calls.on_sip(&inv, T0), vec![]);
    let got = calls.on_sip(&ok(&inv, callee_sig, vec![audio(answer)]), T0 + 1);
    (calls, got)
}

#[test]
fn nat_media_latches_from_the_signaling_address_and_closes_like_a_pair() {
    let (mut calls, got) = call(latching(), CALLER, NAT_RTP, CALLEE, B_RTP);
    assert_eq!(
        got,
        vec![
            latch(NAT_RTP, B_RTP, Side::A, "192.0.2.10"),
            latch(NAT_RTCP, B_RTCP, Side::A, "192.0.2.10"),
        ]
    );
    let c = calls.counters();
    assert_eq!((c.pairs_opened, c.pairs_latching), (2, 2));
    assert_eq!(c.refused(Refusal::ThirdPartyMedia), 0);
    let json = serde_json::to_value(c).unwrap();
    assert_eq!(json["pairs_latching"], 2);

    // A retransmitted 200 changes nothing.
    let inv = invite(CALLER, vec![audio(NAT_RTP)]);
    assert_eq!(
        calls.on_sip(&ok(&inv, CALLEE, vec![audio(B_RTP)]), T0 + 2),
        vec![]
    );
    // BYE (grace 2 s) closes both pairs by their signaled ends.
    assert_eq!(calls.on_sip(&bye(), T0 + 3), vec![]);
    assert_eq!(
        calls.tick(T0 + 3 + 2_000_000_000),
        vec![
            close(NAT_RTP, B_RTP, CloseCause::Bye),
            close(NAT_RTCP, B_RTCP, CloseCause::Bye),
        ]
    );
}

#[test]
fn the_callee_side_may_latch_too() {
    let (_, got) = call(
        latching(),
        CALLER,
        "192.0.2.10:4000",
        CALLEE,
        "203.0.113.7:20000",
    );
    assert_eq!(
        got,
        vec![
            latch(
                "192.0.2.10:4000",
                "203.0.113.7:20000",
                Side::B,
                "198.51.100.20"
            ),
            latch(
                "192.0.2.10:4001",
                "203.0.113.7:20001",
                Side::B,
                "198.51.100.20"
            ),
        ]
    );
}

/// One call of [`what_latches_and_what_is_still_refused`].
struct Case {
    name: &'static str,
    cfg: CallConfig,
    caller: &'static str,
    offer: &'static str,
    callee: &'static str,
    answer: &'static str,
    want: Vec<Intent>,
}

/// (name, config, caller signaling, offer, callee signaling, answer,
/// intents of the 200)
fn case(
    name: &'static str,
    cfg: CallConfig,
    caller: &'static str,
    offer: &'static str,
    callee: &'static str,
    answer: &'static str,
    want: Vec<Intent>,
) -> Case {
    Case {
        name,
        cfg,
        caller,
        offer,
        callee,
        answer,
        want,
    }
}

#[test]
fn what_latches_and_what_is_still_refused() {
    let relay = CallConfig {
        media_relay: vec!["203.0.113.0/24".parse().unwrap()],
        ..latching()
    };
    let cases = vec![
        case(
            "strict by default",
            CallConfig::default(),
            CALLER,
            NAT_RTP,
            CALLEE,
            B_RTP,
            vec![refused(NAT_RTP, B_RTP), refused(NAT_RTCP, B_RTCP)],
        ),
        case(
            "no NAT: a plain open even with latching on",
            latching(),
            CALLER,
            "192.0.2.10:4000",
            CALLEE,
            B_RTP,
            vec![
                open("192.0.2.10:4000", B_RTP),
                open("192.0.2.10:4001", B_RTCP),
            ],
        ),
        case(
            "a media relay address opens plainly",
            relay,
            CALLER,
            NAT_RTP,
            CALLEE,
            B_RTP,
            vec![open(NAT_RTP, B_RTP), open(NAT_RTCP, B_RTCP)],
        ),
        case(
            "both ends unverified: no anchor, refused",
            latching(),
            CALLER,
            NAT_RTP,
            CALLEE,
            "203.0.113.7:20000",
            vec![
                refused(NAT_RTP, "203.0.113.7:20000"),
                refused(NAT_RTCP, "203.0.113.7:20001"),
            ],
        ),
        case(
            "IPv6 signaling for IPv4 media cannot latch",
            latching(),
            "[2001:db8::10]:5060",
            NAT_RTP,
            CALLEE,
            B_RTP,
            vec![refused(NAT_RTP, B_RTP), refused(NAT_RTCP, B_RTCP)],
        ),
        case(
            "IPv6 behind NAT66",
            latching(),
            "[2001:db8::10]:5060",
            "[2001:db8:ff::5]:30000",
            "[2001:db8:2::20]:5060",
            "[2001:db8:2::20]:10000",
            vec![
                latch(
                    "[2001:db8:ff::5]:30000",
                    "[2001:db8:2::20]:10000",
                    Side::A,
                    "2001:db8::10",
                ),
                latch(
                    "[2001:db8:ff::5]:30001",
                    "[2001:db8:2::20]:10001",
                    Side::A,
                    "2001:db8::10",
                ),
            ],
        ),
        case(
            "IPv4-mapped signaling latches as IPv4",
            latching(),
            "[::ffff:192.0.2.10]:5060",
            NAT_RTP,
            CALLEE,
            B_RTP,
            vec![
                latch(NAT_RTP, B_RTP, Side::A, "192.0.2.10"),
                latch(NAT_RTCP, B_RTCP, Side::A, "192.0.2.10"),
            ],
        ),
    ];
    for c in cases {
        let (_, got) = call(c.cfg, c.caller, c.offer, c.callee, c.answer);
        assert_eq!(got, c.want, "{}", c.name);
    }
}

#[test]
fn renegotiating_out_of_nat_closes_the_latch_and_opens_plainly() {
    let (mut calls, got) = call(latching(), CALLER, NAT_RTP, CALLEE, B_RTP);
    assert_eq!(got.len(), 2);
    // re-INVITE: the caller now announces its public address.
    let reinvite = SipEvent {
        to_tag: Some("b1".into()),
        cseq: 2,
        ..invite(CALLER, vec![audio("192.0.2.10:4000")])
    };
    assert_eq!(calls.on_sip(&reinvite, T0 + 10), vec![]);
    let got = calls.on_sip(&ok(&reinvite, CALLEE, vec![audio(B_RTP)]), T0 + 11);
    assert_eq!(
        got,
        vec![
            close(NAT_RTP, B_RTP, CloseCause::Renegotiated),
            close(NAT_RTCP, B_RTCP, CloseCause::Renegotiated),
            open("192.0.2.10:4000", B_RTP),
            open("192.0.2.10:4001", B_RTCP),
        ]
    );
}

#[test]
fn latching_turns_on_only_with_a_window() {
    let cfg = latching();
    let local = sa(B_RTP);
    assert_eq!(
        cfg.latch(Side::A, ip("192.0.2.10"), local),
        Some(Latch {
            side: Side::A,
            from: ip("192.0.2.10"),
            pre_answer: false,
        })
    );
    // (origin, why not)
    let refused = [
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("2001:db8::1", "other family"),
    ];
    for (origin, why) in refused {
        assert_eq!(cfg.latch(Side::A, ip(origin), local), None, "{why}");
    }
    assert_eq!(
        CallConfig::default().latch(Side::A, ip("192.0.2.10"), local),
        None,
        "off by default"
    );
}
