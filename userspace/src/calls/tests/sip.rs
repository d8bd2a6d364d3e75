//! SIP call flows with hand-built events; every step asserts the exact
//! intents.

use std::net::SocketAddr;
use std::time::Duration;

use super::support::Step::{Sip, Tick};
use super::support::*;
use crate::calls::*;

fn rejected() -> Media {
    Media {
        rtp: None,
        rtcp: None,
        rtcp_mux: false,
        hold: false,
        one_way: false,
    }
}

/// `c=0.0.0.0` hold with a non-zero port.
fn held() -> Media {
    Media {
        rtp: None,
        rtcp: None,
        rtcp_mux: false,
        hold: true,
        one_way: false,
    }
}

fn owner() -> Owner {
    sip_owner("call-1@192.0.2.10", "caller-tag")
}

fn open(a: &str, b: &str) -> Intent {
    opened(owner(), a, b)
}

fn close(a: &str, b: &str, cause: CloseCause) -> Intent {
    closed(owner(), a, b, cause)
}

fn refused(reason: Refusal, pair: Option<(&str, &str)>) -> Intent {
    Intent::Refused {
        owner: Some(owner()),
        reason,
        pair: pair.map(|(a, b)| (sa(a), sa(b))),
    }
}

/// The caller's initial INVITE (CSeq 1) to the callee.
fn invite(sdp: Option<Vec<Media>>) -> SipEvent {
    SipEvent {
        src: sa(CALLER),
        dst: sa(CALLEE),
        start: SipStart::Request(SipMethod::Invite),
        call_id: "call-1@192.0.2.10".into(),
        from_tag: "caller-tag".into(),
        to_tag: None,
        cseq: 1,
        cseq_method: SipMethod::Invite,
        sdp,
    }
}

/// A response to `req` from its destination, with To-tag `tag`.
fn reply(req: &SipEvent, code: u16, tag: Option<&str>, sdp: Option<Vec<Media>>) -> SipEvent {
    SipEvent {
        src: req.dst,
        dst: req.src,
        start: SipStart::Response(code),
        to_tag: tag.map(str::to_string).or_else(|| req.to_tag.clone()),
        sdp,
        ..req.clone()
    }
}

/// A request from the caller inside dialog `tag`.
fn caller_req(method: SipMethod, cseq: u32, tag: &str, sdp: Option<Vec<Media>>) -> SipEvent {
    SipEvent {
        start: SipStart::Request(method),
        to_tag: Some(tag.into()),
        cseq,
        cseq_method: method,
        sdp,
        ..invite(None)
    }
}

/// A request from the callee (dialog `tag`) to the caller.
fn callee_req(method: SipMethod, cseq: u32, tag: &str, sdp: Option<Vec<Media>>) -> SipEvent {
    SipEvent {
        src: sa(CALLEE),
        dst: sa(CALLER),
        start: SipStart::Request(method),
        call_id: "call-1@192.0.2.10".into(),
        from_tag: tag.into(),
        to_tag: Some("caller-tag".into()),
        cseq,
        cseq_method: method,
        sdp,
    }
}

fn cancel() -> SipEvent {
    SipEvent {
        start: SipStart::Request(SipMethod::Cancel),
        cseq_method: SipMethod::Cancel,
        ..invite(None)
    }
}

/// INVITE with offer, 100, 180, 200 with answer, ACK: an established call.
fn established() -> Vec<Step> {
    let inv = invite(Some(vec![audio(A_RTP)]));
    vec![
        Sip(0, inv.clone(), vec![]),
        Sip(1, reply(&inv, 100, None, None), vec![]),
        Sip(2, reply(&inv, 180, Some("b1"), None), vec![]),
        Sip(
            3,
            reply(&inv, 200, Some("b1"), Some(vec![audio(B_RTP)])),
            opens(A_RTP, B_RTP),
        ),
        Sip(4, caller_req(SipMethod::Ack, 1, "b1", None), vec![]),
    ]
}

/// The established stream's RTP and RTCP pairs close for `cause`.
fn closes(cause: CloseCause) -> Vec<Intent> {
    vec![close(A_RTP, B_RTP, cause), close(A_RTCP, B_RTCP, cause)]
}

/// The RTP pair `a` ↔ `b` and its RTCP pair (next ports) open.
fn opens(a: &str, b: &str) -> Vec<Intent> {
    let rtcp = |s: &str| {
        let s = sa(s);
        SocketAddr::new(s.ip(), s.port() + 1).to_string()
    };
    vec![open(a, b), open(&rtcp(a), &rtcp(b))]
}

/// A renegotiation moves the established stream to `a` ↔ `b`.
fn moves_to(a: &str, b: &str) -> Vec<Intent> {
    [closes(CloseCause::Renegotiated), opens(a, b)].concat()
}

#[test]
fn plain_call_caller_hangs_up_after_grace() {
    let mut steps = established();
    steps.extend([
        Sip(10_000, caller_req(SipMethod::Bye, 2, "b1", None), vec![]),
        Tick(11_999, vec![]),
        Tick(12_000, closes(CloseCause::Bye)),
        // 200 to the BYE and a late BYE retransmission match nothing.
        Sip(
            12_001,
            reply(&caller_req(SipMethod::Bye, 2, "b1", None), 200, None, None),
            vec![],
        ),
        Sip(12_002, caller_req(SipMethod::Bye, 2, "b1", None), vec![]),
    ]);
    let calls = run(CallConfig::default(), steps);
    let c = calls.counters();
    assert_eq!((c.calls_opened, c.calls_closed(CloseCause::Bye)), (1, 1));
    assert_eq!((c.pairs_opened, c.pairs_closed(CloseCause::Bye)), (2, 2));
    assert_eq!(c.sip_unmatched, 2);
    assert_eq!(calls.active_calls(), 0);
}

#[test]
fn plain_call_over_tcp_connections_callee_hangs_up() {
    // Over TCP every message may come from an ephemeral port, and the
    // callee's BYE has the tags swapped and its own CSeq space.
    let inv = SipEvent {
        src: sa("192.0.2.10:40001"),
        ..invite(Some(vec![audio(A_RTP)]))
    };
    let ok = SipEvent {
        dst: sa("192.0.2.10:40001"),
        ..reply(&inv, 200, Some("b1"), Some(vec![audio(B_RTP)]))
    };
    let bye = SipEvent {
        src: sa("198.51.100.20:40002"),
        ..callee_req(SipMethod::Bye, 1, "b1", None)
    };
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(1, reply(&inv, 180, Some("b1"), None), vec![]),
        Sip(2, ok, opens(A_RTP, B_RTP)),
        Sip(3, caller_req(SipMethod::Ack, 1, "b1", None), vec![]),
        Sip(60_000, bye, vec![]),
        Tick(61_000, vec![]),
        Tick(62_000, closes(CloseCause::Bye)),
    ];
    run(CallConfig::default(), steps);
}

#[test]
fn bye_without_grace_closes_at_once_and_retransmission_does_not_extend_grace() {
    let mut steps = established();
    steps.push(Sip(
        5_000,
        caller_req(SipMethod::Bye, 2, "b1", None),
        closes(CloseCause::Bye),
    ));
    run(
        CallConfig {
            bye_grace: Duration::ZERO,
            ..CallConfig::default()
        },
        steps,
    );

    let mut steps = established();
    steps.extend([
        Sip(5_000, caller_req(SipMethod::Bye, 2, "b1", None), vec![]),
        Sip(6_500, caller_req(SipMethod::Bye, 2, "b1", None), vec![]),
        Tick(7_000, closes(CloseCause::Bye)),
    ]);
    run(CallConfig::default(), steps);
}

#[test]
fn early_media_opens_on_183_and_200_repeats_the_answer() {
    let inv = invite(Some(vec![audio(A_RTP)]));
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(
            1,
            reply(&inv, 183, Some("b1"), Some(vec![audio(B_RTP)])),
            opens(A_RTP, B_RTP),
        ),
        Sip(
            2,
            reply(&inv, 183, Some("b1"), Some(vec![audio(B_RTP)])),
            vec![],
        ),
        Sip(
            3,
            reply(&inv, 200, Some("b1"), Some(vec![audio(B_RTP)])),
            vec![],
        ),
        Sip(4, caller_req(SipMethod::Ack, 1, "b1", None), vec![]),
    ];
    run(CallConfig::default(), steps);
}

#[test]
fn early_media_answer_changed_by_200_moves_the_pairs() {
    let inv = invite(Some(vec![audio(A_RTP)]));
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(
            1,
            reply(&inv, 183, Some("b1"), Some(vec![audio(B_RTP)])),
            opens(A_RTP, B_RTP),
        ),
        Sip(
            2,
            reply(
                &inv,
                200,
                Some("b1"),
                Some(vec![audio("198.51.100.20:10008")]),
            ),
            moves_to(A_RTP, "198.51.100.20:10008"),
        ),
    ];
    run(CallConfig::default(), steps);
}

#[test]
fn repeated_answer_from_another_host_changes_nothing() {
    // A forger that knows the dialog's identifiers repeats the 200 from its
    // own address with media of its own: the committed pairs stay, and the
    // real callee can still change its answer.
    let inv = invite(Some(vec![audio(A_RTP)]));
    let forged = SipEvent {
        src: sa("198.51.100.66:5060"),
        ..reply(
            &inv,
            200,
            Some("b1"),
            Some(vec![audio("198.51.100.66:10000")]),
        )
    };
    let mut steps = established();
    steps.extend([
        Sip(5, forged.clone(), vec![]),
        Sip(6, forged, vec![]),
        Sip(
            7,
            reply(
                &inv,
                200,
                Some("b1"),
                Some(vec![audio("198.51.100.20:10008")]),
            ),
            moves_to(A_RTP, "198.51.100.20:10008"),
        ),
    ]);
    run(CallConfig::default(), steps);
}

#[test]
fn forking_three_branches_losers_close_when_one_answers() {
    let inv = invite(Some(vec![audio(A_RTP)]));
    // Each branch answers from its own address with its own media.
    let branch = |n: u8, code: u16, sdp: bool| SipEvent {
        src: sa(&format!("198.51.100.{n}:5060")),
        ..reply(
            &inv,
            code,
            Some(&format!("t{n}")),
            sdp.then(|| vec![audio(&format!("198.51.100.{n}:20000"))]),
        )
    };
    let b = |n: u8, port: u16| format!("198.51.100.{n}:{port}");
    let open_b = |n: u8| vec![open(A_RTP, &b(n, 20000)), open(A_RTCP, &b(n, 20001))];
    let lost = |n: u8| {
        vec![
            close(A_RTP, &b(n, 20000), CloseCause::ForkLost),
            close(A_RTCP, &b(n, 20001), CloseCause::ForkLost),
        ]
    };
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(1, branch(1, 183, true), open_b(1)),
        Sip(2, branch(2, 180, false), vec![]),
        Sip(3, branch(2, 183, true), open_b(2)),
        Sip(4, branch(3, 183, true), open_b(3)),
        Sip(5, branch(2, 200, true), [lost(1), lost(3)].concat()),
        // A late provisional from a losing fork changes nothing.
        Sip(6, branch(3, 183, true), vec![]),
        Sip(7, caller_req(SipMethod::Ack, 1, "t2", None), vec![]),
        Sip(8_000, caller_req(SipMethod::Bye, 2, "t2", None), vec![]),
        Tick(
            10_000,
            vec![
                close(A_RTP, &b(2, 20000), CloseCause::Bye),
                close(A_RTCP, &b(2, 20001), CloseCause::Bye),
            ],
        ),
    ];
    let calls = run(CallConfig::default(), steps);
    assert_eq!(calls.counters().pairs_closed(CloseCause::ForkLost), 4);
}

#[test]
fn reinvite_from_caller_moves_media_once_answered() {
    let mut steps = established();
    steps.extend([
        Sip(
            1_000,
            caller_req(
                SipMethod::Invite,
                2,
                "b1",
                Some(vec![audio("192.0.2.10:4002")]),
            ),
            vec![],
        ),
        Sip(
            1_001,
            reply(
                &caller_req(SipMethod::Invite, 2, "b1", None),
                200,
                None,
                Some(vec![audio(B_RTP)]),
            ),
            moves_to("192.0.2.10:4002", B_RTP),
        ),
        Sip(1_002, caller_req(SipMethod::Ack, 2, "b1", None), vec![]),
    ]);
    run(CallConfig::default(), steps);
}

#[test]
fn reinvite_from_callee_with_own_cseq_space() {
    // The callee's CSeq 1 must not be mistaken for the initial INVITE.
    let reinvite = callee_req(
        SipMethod::Invite,
        1,
        "b1",
        Some(vec![audio("198.51.100.20:10010")]),
    );
    let mut steps = established();
    steps.extend([
        Sip(1_000, reinvite.clone(), vec![]),
        Sip(
            1_001,
            reply(&reinvite, 200, None, Some(vec![audio(A_RTP)])),
            moves_to(A_RTP, "198.51.100.20:10010"),
        ),
        Sip(1_002, callee_req(SipMethod::Ack, 1, "b1", None), vec![]),
    ]);
    run(CallConfig::default(), steps);
}

#[test]
fn rejected_reinvite_keeps_media_and_drops_the_offer() {
    let reinvite = caller_req(
        SipMethod::Invite,
        2,
        "b1",
        Some(vec![audio("192.0.2.10:4002")]),
    );
    let mut steps = established();
    steps.extend([
        Sip(1_000, reinvite.clone(), vec![]),
        Sip(1_001, reply(&reinvite, 488, None, None), vec![]),
        // A stray 200 with SDP for the failed transaction answers nothing.
        Sip(
            1_002,
            reply(&reinvite, 200, None, Some(vec![audio(B_RTP)])),
            vec![],
        ),
    ]);
    run(CallConfig::default(), steps);
}

#[test]
fn hold_keeps_pairs_in_both_styles() {
    let one_way = Media {
        one_way: true,
        ..audio(A_RTP)
    };
    let sendonly = caller_req(SipMethod::Invite, 2, "b1", Some(vec![one_way]));
    let zero = caller_req(SipMethod::Invite, 3, "b1", Some(vec![held()]));
    let resume = caller_req(SipMethod::Invite, 4, "b1", Some(vec![audio(A_RTP)]));
    let retime = |hold| {
        vec![
            retimed(owner(), A_RTP, B_RTP, hold),
            retimed(owner(), A_RTCP, B_RTCP, hold),
        ]
    };
    let mut steps = established();
    steps.extend([
        // a=sendonly / a=inactive: same endpoints; the answer puts the
        // pairs on the hold timeout, in place (no close, no open).
        Sip(1_000, sendonly.clone(), vec![]),
        Sip(
            1_001,
            reply(&sendonly, 200, None, Some(vec![audio(B_RTP)])),
            retime(true),
        ),
        Sip(1_002, caller_req(SipMethod::Ack, 2, "b1", None), vec![]),
        // c=0.0.0.0: the previous endpoint stays, nothing opens to 0.0.0.0;
        // still on hold, so nothing changes.
        Sip(2_000, zero.clone(), vec![]),
        Sip(
            2_001,
            reply(&zero, 200, None, Some(vec![audio(B_RTP)])),
            vec![],
        ),
        Sip(2_002, caller_req(SipMethod::Ack, 3, "b1", None), vec![]),
        // Resume: back to the idle timeout, again in place.
        Sip(3_000, resume.clone(), vec![]),
        Sip(
            3_001,
            reply(&resume, 200, None, Some(vec![audio(B_RTP)])),
            retime(false),
        ),
    ]);
    let calls = run(CallConfig::default(), steps);
    let c = calls.counters();
    assert_eq!((c.pairs_opened, c.pairs_retimed), (2, 4));
    assert_eq!(c.pairs_closed.iter().sum::<u64>(), 0);
}

#[test]
fn hold_with_zero_address_on_a_fresh_call_opens_nothing() {
    let inv = invite(Some(vec![held()]));
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(
            1,
            reply(&inv, 200, Some("b1"), Some(vec![audio(B_RTP)])),
            vec![],
        ),
    ];
    run(CallConfig::default(), steps);
}

#[test]
fn cancel_closes_early_media_and_late_invite_copy_stays_dead() {
    let inv = invite(Some(vec![audio(A_RTP)]));
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(
            1,
            reply(&inv, 183, Some("b1"), Some(vec![audio(B_RTP)])),
            opens(A_RTP, B_RTP),
        ),
        Sip(2, cancel(), closes(CloseCause::Cancel)),
        Sip(3, reply(&cancel(), 200, None, None), vec![]),
        Sip(4, reply(&inv, 487, Some("b1"), None), vec![]),
        Sip(5, caller_req(SipMethod::Ack, 1, "b1", None), vec![]),
        // A second observation of the INVITE does not start the call again.
        Sip(6, inv.clone(), vec![]),
        Sip(
            7,
            reply(&inv, 183, Some("b1"), Some(vec![audio(B_RTP)])),
            vec![],
        ),
    ];
    let calls = run(CallConfig::default(), steps);
    let c = calls.counters();
    assert_eq!((c.calls_opened, c.calls_closed(CloseCause::Cancel)), (1, 1));
    assert_eq!(calls.active_calls(), 0);
}

#[test]
fn final_error_responses_close_the_call() {
    // (code, with early media first)
    for (code, early) in [(486, false), (486, true), (603, true), (408, false)] {
        let inv = invite(Some(vec![audio(A_RTP)]));
        let mut steps = vec![Sip(0, inv.clone(), vec![])];
        let mut want = vec![];
        if early {
            steps.push(Sip(
                1,
                reply(&inv, 183, Some("b1"), Some(vec![audio(B_RTP)])),
                opens(A_RTP, B_RTP),
            ));
            want = closes(CloseCause::Failed);
        } else {
            steps.push(Sip(1, reply(&inv, 180, Some("b1"), None), vec![]));
        }
        steps.push(Sip(2, reply(&inv, code, Some("b1"), None), want));
        steps.push(Sip(3, caller_req(SipMethod::Ack, 1, "b1", None), vec![]));
        let calls = run(CallConfig::default(), steps);
        assert_eq!(
            calls.counters().calls_closed(CloseCause::Failed),
            1,
            "{code}"
        );
        assert_eq!(calls.active_calls(), 0, "{code}");
    }
}

#[test]
fn challenged_invite_retried_with_higher_cseq_is_a_new_call() {
    let inv = invite(Some(vec![audio(A_RTP)]));
    let retry = SipEvent {
        cseq: 2,
        ..inv.clone()
    };
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(1, reply(&inv, 407, Some("proxy"), None), vec![]),
        Sip(2, retry.clone(), vec![]),
        Sip(
            3,
            reply(&retry, 200, Some("b1"), Some(vec![audio(B_RTP)])),
            opens(A_RTP, B_RTP),
        ),
    ];
    let calls = run(CallConfig::default(), steps);
    assert_eq!(calls.counters().calls_opened, 2);
}

#[test]
fn max_lifetime_closes_in_tick() {
    let mut steps = established();
    steps.extend([
        Tick(59_999, vec![]),
        Tick(60_000, closes(CloseCause::Lifetime)),
    ]);
    let cfg = CallConfig {
        max_lifetime: Duration::from_secs(60),
        ..CallConfig::default()
    };
    let calls = run(cfg, steps);
    assert_eq!(calls.counters().calls_closed(CloseCause::Lifetime), 1);
    assert_eq!(
        calls.next_deadline(),
        Some(ms(60_000 + 32_000)),
        "tombstone only"
    );
}

#[test]
fn default_lifetime_is_four_hours() {
    let mut steps = established();
    steps.extend([
        Tick(4 * 3_600_000 - 1, vec![]),
        Tick(4 * 3_600_000, closes(CloseCause::Lifetime)),
    ]);
    run(CallConfig::default(), steps);
}

#[test]
fn unanswered_setup_expires_and_provisionals_refresh_it() {
    let inv = invite(Some(vec![audio(A_RTP)]));
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(
            60_000,
            reply(&inv, 183, Some("b1"), Some(vec![audio(B_RTP)])),
            opens(A_RTP, B_RTP),
        ),
        Tick(180_000, vec![]),
        Tick(239_999, vec![]),
        Tick(240_000, closes(CloseCause::SetupTimeout)),
    ];
    let calls = run(CallConfig::default(), steps);
    assert_eq!(calls.counters().calls_closed(CloseCause::SetupTimeout), 1);
}

#[test]
fn unanswered_reinvite_offer_expires_without_touching_media() {
    let reinvite = caller_req(
        SipMethod::Invite,
        2,
        "b1",
        Some(vec![audio("192.0.2.10:4002")]),
    );
    let mut steps = established();
    steps.extend([
        Sip(1_000, reinvite.clone(), vec![]),
        Tick(181_000, vec![]),
        // After expiry a late 200 with SDP is only a new offer (never answered).
        Sip(
            181_001,
            reply(&reinvite, 200, None, Some(vec![audio(B_RTP)])),
            vec![],
        ),
        Sip(181_002, caller_req(SipMethod::Ack, 2, "b1", None), vec![]),
    ]);
    let calls = run(CallConfig::default(), steps);
    assert_eq!(calls.active_calls(), 1);
}

#[test]
fn invite_without_sdp_offer_in_200_answer_in_ack() {
    let inv = invite(None);
    let ok = reply(&inv, 200, Some("b1"), Some(vec![audio(B_RTP)]));
    let ack = caller_req(SipMethod::Ack, 1, "b1", Some(vec![audio(A_RTP)]));
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(1, reply(&inv, 180, Some("b1"), None), vec![]),
        Sip(2, ok.clone(), vec![]),
        Sip(3, ack.clone(), opens(A_RTP, B_RTP)),
        // 2xx and ACK retransmissions.
        Sip(4, ok, vec![]),
        Sip(5, ack, vec![]),
    ];
    run(CallConfig::default(), steps);
}

#[test]
fn prack_answers_offer_in_reliable_183() {
    let inv = invite(None);
    let prack = caller_req(SipMethod::Prack, 2, "b1", Some(vec![audio(A_RTP)]));
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(
            1,
            reply(&inv, 183, Some("b1"), Some(vec![audio(B_RTP)])),
            vec![],
        ),
        Sip(2, prack.clone(), opens(A_RTP, B_RTP)),
        Sip(3, reply(&prack, 200, None, None), vec![]),
        Sip(4, prack, vec![]),
        // The 2xx repeats the 183's offer: already answered.
        Sip(
            5,
            reply(&inv, 200, Some("b1"), Some(vec![audio(B_RTP)])),
            vec![],
        ),
        Sip(6, caller_req(SipMethod::Ack, 1, "b1", None), vec![]),
    ];
    run(CallConfig::default(), steps);
}

#[test]
fn prack_and_update_carry_new_offers() {
    let inv = invite(Some(vec![audio(A_RTP)]));
    let prack = caller_req(
        SipMethod::Prack,
        2,
        "b1",
        Some(vec![audio("192.0.2.10:4002")]),
    );
    let update = callee_req(
        SipMethod::Update,
        7,
        "b1",
        Some(vec![audio("198.51.100.20:10004")]),
    );
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(
            1,
            reply(&inv, 183, Some("b1"), Some(vec![audio(B_RTP)])),
            opens(A_RTP, B_RTP),
        ),
        Sip(2, prack.clone(), vec![]),
        Sip(
            3,
            reply(&prack, 200, None, Some(vec![audio(B_RTP)])),
            moves_to("192.0.2.10:4002", B_RTP),
        ),
        // UPDATE from the callee in the early dialog.
        Sip(4, update.clone(), vec![]),
        Sip(
            5,
            reply(&update, 200, None, Some(vec![audio("192.0.2.10:4002")])),
            vec![
                close("192.0.2.10:4002", B_RTP, CloseCause::Renegotiated),
                close("192.0.2.10:4003", B_RTCP, CloseCause::Renegotiated),
                open("192.0.2.10:4002", "198.51.100.20:10004"),
                open("192.0.2.10:4003", "198.51.100.20:10005"),
            ],
        ),
        Sip(
            6,
            reply(&update, 200, None, Some(vec![audio("192.0.2.10:4002")])),
            vec![],
        ),
        Sip(
            7,
            reply(&inv, 200, Some("b1"), Some(vec![audio(B_RTP)])),
            vec![],
        ),
    ];
    run(CallConfig::default(), steps);
}

#[test]
fn several_m_lines_pair_by_index_and_port_zero_rejects() {
    let offer = vec![
        audio(A_RTP),
        audio("192.0.2.10:4010"),
        audio("192.0.2.10:4020"),
    ];
    // The answer rejects the second stream and accepts the first and third.
    let answer = vec![audio(B_RTP), rejected(), audio("198.51.100.20:10020")];
    let inv = invite(Some(offer));
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(
            1,
            reply(&inv, 200, Some("b1"), Some(answer)),
            vec![
                open(A_RTP, B_RTP),
                open(A_RTCP, B_RTCP),
                open("192.0.2.10:4020", "198.51.100.20:10020"),
                open("192.0.2.10:4021", "198.51.100.20:10021"),
            ],
        ),
    ];
    run(CallConfig::default(), steps);

    // A stream the offer rejects (port 0) stays closed whatever the answer.
    let inv = invite(Some(vec![rejected(), audio(A_RTP)]));
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(
            1,
            reply(
                &inv,
                200,
                Some("b1"),
                Some(vec![audio("198.51.100.20:10030"), audio(B_RTP)]),
            ),
            opens(A_RTP, B_RTP),
        ),
    ];
    run(CallConfig::default(), steps);
}

#[test]
fn rfc3605_rtcp_attribute_gives_the_rtcp_endpoint() {
    let a = Media {
        rtcp: Some(sa("192.0.2.10:4005")),
        ..audio(A_RTP)
    };
    let inv = invite(Some(vec![a]));
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(
            1,
            reply(&inv, 200, Some("b1"), Some(vec![audio(B_RTP)])),
            vec![open(A_RTP, B_RTP), open("192.0.2.10:4005", B_RTCP)],
        ),
    ];
    run(CallConfig::default(), steps);

    // a=rtcp naming a third-party address is refused like any media address.
    let a = Media {
        rtcp: Some(sa("203.0.113.9:4005")),
        ..audio(A_RTP)
    };
    let inv = invite(Some(vec![a]));
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(
            1,
            reply(&inv, 200, Some("b1"), Some(vec![audio(B_RTP)])),
            vec![
                open(A_RTP, B_RTP),
                refused(Refusal::ThirdPartyMedia, Some(("203.0.113.9:4005", B_RTCP))),
            ],
        ),
    ];
    run(CallConfig::default(), steps);
}

#[test]
fn rtcp_mux_needs_both_sides() {
    let mux = |m: Media| Media {
        rtcp_mux: true,
        ..m
    };
    // (offer muxes, answer muxes, expected pairs)
    let cases = [
        (true, true, vec![open(A_RTP, B_RTP)]),
        (true, false, opens(A_RTP, B_RTP)),
        (false, true, opens(A_RTP, B_RTP)),
    ];
    for (offer_mux, answer_mux, want) in cases {
        let offer = if offer_mux {
            mux(audio(A_RTP))
        } else {
            audio(A_RTP)
        };
        let answer = if answer_mux {
            mux(audio(B_RTP))
        } else {
            audio(B_RTP)
        };
        let inv = invite(Some(vec![offer]));
        let steps = vec![
            Sip(0, inv.clone(), vec![]),
            Sip(1, reply(&inv, 200, Some("b1"), Some(vec![answer])), want),
        ];
        run(CallConfig::default(), steps);
    }
}

#[test]
fn ipv6_call_and_family_mismatch() {
    let v6 = |caller: &str, callee: &str| {
        let inv = SipEvent {
            src: sa("[2001:db8::10]:5060"),
            dst: sa("[2001:db8:1::20]:5060"),
            ..invite(Some(vec![audio(caller)]))
        };
        let ok = reply(&inv, 200, Some("b1"), Some(vec![audio(callee)]));
        (inv, ok)
    };
    let (inv, ok) = v6("[2001:db8::10]:4000", "[2001:db8:1::20]:10000");
    let steps = vec![
        Sip(0, inv, vec![]),
        Sip(
            1,
            ok,
            vec![
                open("[2001:db8::10]:4000", "[2001:db8:1::20]:10000"),
                open("[2001:db8::10]:4001", "[2001:db8:1::20]:10001"),
            ],
        ),
        Sip(
            2,
            SipEvent {
                src: sa("[2001:db8::10]:5060"),
                dst: sa("[2001:db8:1::20]:5060"),
                ..caller_req(SipMethod::Bye, 2, "b1", None)
            },
            vec![],
        ),
        Tick(
            2_002,
            vec![
                close(
                    "[2001:db8::10]:4000",
                    "[2001:db8:1::20]:10000",
                    CloseCause::Bye,
                ),
                close(
                    "[2001:db8::10]:4001",
                    "[2001:db8:1::20]:10001",
                    CloseCause::Bye,
                ),
            ],
        ),
    ];
    run(CallConfig::default(), steps);

    // An IPv4 offer answered with IPv6 media cannot be one pinhole.
    let inv = invite(Some(vec![audio(A_RTP)]));
    let ok = SipEvent {
        src: sa("[2001:db8:1::20]:5060"),
        ..reply(
            &inv,
            200,
            Some("b1"),
            Some(vec![audio("[2001:db8:1::20]:10000")]),
        )
    };
    let steps = vec![
        Sip(0, inv, vec![]),
        Sip(
            1,
            ok,
            vec![
                refused(
                    Refusal::FamilyMismatch,
                    Some((A_RTP, "[2001:db8:1::20]:10000")),
                ),
                refused(
                    Refusal::FamilyMismatch,
                    Some((A_RTCP, "[2001:db8:1::20]:10001")),
                ),
            ],
        ),
    ];
    run(CallConfig::default(), steps);
}

#[test]
fn third_party_media_refused_unless_relay_network() {
    let inv = invite(Some(vec![audio("203.0.113.5:30000")]));
    let ok = reply(&inv, 200, Some("b1"), Some(vec![audio(B_RTP)]));
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(
            1,
            ok.clone(),
            vec![
                refused(Refusal::ThirdPartyMedia, Some(("203.0.113.5:30000", B_RTP))),
                refused(
                    Refusal::ThirdPartyMedia,
                    Some(("203.0.113.5:30001", B_RTCP)),
                ),
            ],
        ),
        // Repeats are not refused (nor counted) again.
        Sip(2, ok.clone(), vec![]),
    ];
    let calls = run(CallConfig::default(), steps);
    assert_eq!(calls.counters().refused(Refusal::ThirdPartyMedia), 2);

    let relay = CallConfig {
        media_relay: vec!["203.0.113.0/24".parse().unwrap()],
        ..CallConfig::default()
    };
    let steps = vec![
        Sip(0, inv, vec![]),
        Sip(
            1,
            ok,
            vec![
                open("203.0.113.5:30000", B_RTP),
                open("203.0.113.5:30001", B_RTCP),
            ],
        ),
    ];
    run(relay, steps);
}

#[test]
fn unusable_media_addresses_are_refused() {
    let inv = invite(Some(vec![audio("224.0.1.1:4000")]));
    let relay_all = CallConfig {
        media_relay: vec!["0.0.0.0/0".parse().unwrap()],
        ..CallConfig::default()
    };
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(
            1,
            reply(&inv, 200, Some("b1"), Some(vec![audio(B_RTP)])),
            vec![
                refused(Refusal::UnusableEndpoint, Some(("224.0.1.1:4000", B_RTP))),
                refused(Refusal::UnusableEndpoint, Some(("224.0.1.1:4001", B_RTCP))),
            ],
        ),
    ];
    run(relay_all, steps);
}

#[test]
fn untrusted_signaling_is_refused() {
    let cfg = CallConfig {
        trusted_signaling: vec!["203.0.113.0/24".parse().unwrap()],
        ..CallConfig::default()
    };
    let inv = invite(Some(vec![audio(A_RTP)]));
    let untrusted = Intent::Refused {
        owner: None,
        reason: Refusal::UntrustedSignaling,
        pair: None,
    };
    let steps = vec![
        Sip(0, inv.clone(), vec![untrusted.clone()]),
        Sip(
            1,
            reply(&inv, 200, Some("b1"), Some(vec![audio(B_RTP)])),
            vec![untrusted],
        ),
    ];
    let calls = run(cfg, steps);
    assert_eq!(calls.counters().refused(Refusal::UntrustedSignaling), 2);
    assert_eq!(calls.active_calls(), 0);

    // Signaling to a trusted network is enough.
    let cfg = CallConfig {
        trusted_signaling: vec!["198.51.100.0/24".parse().unwrap()],
        ..CallConfig::default()
    };
    run(cfg, established());
}

#[test]
fn per_call_cap_refuses_excess_pairs() {
    let cfg = CallConfig {
        max_pairs_per_call: 3,
        ..CallConfig::default()
    };
    let inv = invite(Some(vec![audio(A_RTP), audio("192.0.2.10:4010")]));
    let ok = reply(
        &inv,
        200,
        Some("b1"),
        Some(vec![audio(B_RTP), audio("198.51.100.20:10010")]),
    );
    let steps = vec![
        Sip(0, inv, vec![]),
        Sip(
            1,
            ok.clone(),
            vec![
                open(A_RTP, B_RTP),
                open(A_RTCP, B_RTCP),
                open("192.0.2.10:4010", "198.51.100.20:10010"),
                refused(
                    Refusal::PerCallCap,
                    Some(("192.0.2.10:4011", "198.51.100.20:10011")),
                ),
            ],
        ),
        Sip(2, ok, vec![]),
    ];
    let calls = run(cfg, steps);
    assert_eq!(calls.counters().refused(Refusal::PerCallCap), 1);
}

fn other_call(n: u32, src: &str) -> SipEvent {
    SipEvent {
        src: sa(src),
        call_id: format!("other-{n}"),
        ..invite(Some(vec![audio(A_RTP)]))
    }
}

#[test]
fn per_peer_and_table_caps_refuse_new_calls() {
    let cfg = CallConfig {
        max_calls_per_peer: 2,
        max_calls: 3,
        ..CallConfig::default()
    };
    let refuse = |n: u32, reason| Intent::Refused {
        owner: Some(sip_owner(&format!("other-{n}"), "caller-tag")),
        reason,
        pair: None,
    };
    let mut steps = established();
    steps.extend([
        Sip(10, other_call(1, CALLER), vec![]),
        Sip(
            11,
            other_call(2, CALLER),
            vec![refuse(2, Refusal::PerPeerCap)],
        ),
        Sip(12, other_call(3, "192.0.2.11:5060"), vec![]),
        Sip(
            13,
            other_call(4, "192.0.2.12:5060"),
            vec![refuse(4, Refusal::TableFull)],
        ),
        // Once a call of the first peer ends, it may start another.
        Sip(14, caller_req(SipMethod::Bye, 2, "b1", None), vec![]),
        Tick(2_014, closes(CloseCause::Bye)),
        Sip(2_015, other_call(2, CALLER), vec![]),
    ]);
    let calls = run(cfg, steps);
    let c = calls.counters();
    assert_eq!(c.refused(Refusal::PerPeerCap), 1);
    assert_eq!(c.refused(Refusal::TableFull), 1);
    assert_eq!(calls.active_calls(), 3);
}

#[test]
fn dialog_cap_bounds_forks() {
    let cfg = CallConfig {
        max_dialogs_per_call: 2,
        ..CallConfig::default()
    };
    let inv = invite(Some(vec![audio(A_RTP)]));
    let steps = vec![
        Sip(0, inv.clone(), vec![]),
        Sip(1, reply(&inv, 180, Some("t1"), None), vec![]),
        Sip(2, reply(&inv, 180, Some("t2"), None), vec![]),
        Sip(
            3,
            reply(&inv, 180, Some("t3"), None),
            vec![refused(Refusal::DialogCap, None)],
        ),
        // The 2xx of any fork still confirms the call.
        Sip(
            4,
            reply(&inv, 200, Some("t3"), Some(vec![audio(B_RTP)])),
            opens(A_RTP, B_RTP),
        ),
    ];
    run(cfg, steps);
}

#[test]
fn every_message_seen_twice_is_idempotent() {
    let inv = invite(Some(vec![audio(A_RTP)]));
    let reinvite = caller_req(
        SipMethod::Invite,
        2,
        "b1",
        Some(vec![audio("192.0.2.10:4002")]),
    );
    let msgs = [
        (inv.clone(), vec![]),
        (reply(&inv, 100, None, None), vec![]),
        (
            reply(&inv, 183, Some("b1"), Some(vec![audio(B_RTP)])),
            opens(A_RTP, B_RTP),
        ),
        (
            reply(&inv, 200, Some("b1"), Some(vec![audio(B_RTP)])),
            vec![],
        ),
        (caller_req(SipMethod::Ack, 1, "b1", None), vec![]),
        (reinvite.clone(), vec![]),
        (
            reply(&reinvite, 200, None, Some(vec![audio(B_RTP)])),
            moves_to("192.0.2.10:4002", B_RTP),
        ),
        (caller_req(SipMethod::Ack, 2, "b1", None), vec![]),
        (caller_req(SipMethod::Bye, 3, "b1", None), vec![]),
    ];
    let mut steps = Vec::new();
    for (i, (msg, want)) in msgs.into_iter().enumerate() {
        let t = i as u64 * 10;
        steps.push(Sip(t, msg.clone(), want));
        steps.push(Sip(t + 1, msg, vec![]));
    }
    steps.push(Tick(
        2_080,
        vec![
            close("192.0.2.10:4002", B_RTP, CloseCause::Bye),
            close("192.0.2.10:4003", B_RTCP, CloseCause::Bye),
        ],
    ));
    let calls = run(CallConfig::default(), steps);
    let c = calls.counters();
    assert_eq!((c.calls_opened, c.pairs_opened), (1, 4));
}

#[test]
fn messages_of_unknown_calls_and_dialogs_are_only_counted() {
    let mut steps = established();
    steps.extend([
        // Unknown dialog tag in a known call.
        Sip(10, caller_req(SipMethod::Bye, 2, "nope", None), vec![]),
        Sip(
            11,
            caller_req(SipMethod::Invite, 3, "nope", Some(vec![audio(A_RTP)])),
            vec![],
        ),
        // Unknown Call-ID.
        Sip(
            12,
            SipEvent {
                call_id: "stranger".into(),
                ..caller_req(SipMethod::Bye, 2, "b1", None)
            },
            vec![],
        ),
    ]);
    let calls = run(CallConfig::default(), steps);
    assert_eq!(calls.counters().sip_unmatched, 3);
    assert_eq!(calls.active_calls(), 1);
}

#[test]
fn next_deadline_follows_the_earliest_timer() {
    let mut calls = Calls::new(CallConfig::default());
    assert_eq!(calls.next_deadline(), None);
    let inv = invite(Some(vec![audio(A_RTP)]));
    calls.on_sip(&inv, ms(0));
    // Setup timeout (180 s) is the earliest.
    assert_eq!(calls.next_deadline(), Some(ms(180_000)));
    calls.on_sip(
        &reply(&inv, 200, Some("b1"), Some(vec![audio(B_RTP)])),
        ms(5),
    );
    assert_eq!(calls.next_deadline(), Some(ms(4 * 3_600_000)));
    calls.on_sip(&caller_req(SipMethod::Bye, 2, "b1", None), ms(1_000));
    assert_eq!(calls.next_deadline(), Some(ms(3_000)));
    assert_eq!(calls.tick(ms(3_000)).len(), 2);
    assert_eq!(calls.next_deadline(), Some(ms(3_000 + 32_000)));
    assert!(calls.tick(ms(35_000)).is_empty());
    assert_eq!(calls.next_deadline(), None);
}

#[test]
fn counters_serialize_by_name() {
    let calls = run(CallConfig::default(), established());
    let json = serde_json::to_value(calls.counters()).unwrap();
    assert_eq!(json["calls_opened"], 1);
    assert_eq!(json["pairs_opened"], 2);
    assert_eq!(json["refused"]["third_party_media"], 0);
    assert_eq!(json["calls_closed"]["bye"], 0);
    assert_eq!(
        json["refused"].as_object().unwrap().len(),
        Refusal::ALL.len()
    );
    assert_eq!(
        json["pairs_closed"].as_object().unwrap().len(),
        CloseCause::ALL.len()
    );
}

/// `calls` saved to JSON (as the state file does) and restored into a fresh
/// state with the same configuration.
fn restarted(calls: &Calls) -> Calls {
    let json = serde_json::to_string(&calls.snapshot()).unwrap();
    let mut fresh = Calls::new(calls.config().clone());
    fresh.restore(serde_json::from_str(&json).unwrap());
    fresh
}

#[test]
fn a_restored_call_goes_on_hold_and_closes_on_bye() {
    let calls = run(CallConfig::default(), established());
    let mut calls = restarted(&calls);
    assert_eq!(calls.active_calls(), 1);
    // The same call: a retransmitted 200 opens nothing new, a hold keeps the
    // pairs (the negotiated media came back), and the callee's BYE closes
    // them after the grace.
    let inv = invite(Some(vec![audio(A_RTP)]));
    let steps = [
        Sip(
            5,
            reply(&inv, 200, Some("b1"), Some(vec![audio(B_RTP)])),
            vec![],
        ),
        Sip(
            6_000,
            caller_req(SipMethod::Invite, 2, "b1", Some(vec![held()])),
            vec![],
        ),
        Sip(
            6_001,
            reply(
                &caller_req(SipMethod::Invite, 2, "b1", None),
                200,
                None,
                Some(vec![audio(B_RTP)]),
            ),
            vec![
                retimed(owner(), A_RTP, B_RTP, true),
                retimed(owner(), A_RTCP, B_RTCP, true),
            ],
        ),
        Sip(7_000, callee_req(SipMethod::Bye, 1, "b1", None), vec![]),
        Tick(8_999, vec![]),
        Tick(9_000, closes(CloseCause::Bye)),
    ];
    play(&mut calls, steps);
    assert_eq!(calls.active_calls(), 0);
}

#[test]
fn a_restored_call_keeps_its_timers_and_peer_count() {
    let cfg = CallConfig {
        max_lifetime: Duration::from_secs(60),
        max_calls_per_peer: 1,
        ..CallConfig::default()
    };
    let calls = run(cfg, established());
    let mut calls = restarted(&calls);
    // The lifetime counts from the INVITE before the restart.
    assert_eq!(calls.next_deadline(), Some(ms(60_000)));
    // The caller's one call still counts against its cap.
    let other = SipEvent {
        call_id: "call-2@192.0.2.10".into(),
        ..invite(Some(vec![audio(A_RTP)]))
    };
    let got = calls.on_sip(&other, ms(100));
    assert!(
        matches!(
            got.as_slice(),
            [Intent::Refused {
                reason: Refusal::PerPeerCap,
                ..
            }]
        ),
        "{got:?}"
    );
    assert_eq!(calls.tick(ms(60_000)), closes(CloseCause::Lifetime));
    // Nothing was tracked twice: an empty snapshot restores to nothing.
    let empty = restarted(&calls);
    assert_eq!(empty.active_calls(), 0);
    assert_eq!(empty.next_deadline(), None);
}

/// The established stream's two pairs idle out of the table.
fn expire_both(t: u64) -> [Step; 2] {
    [
        Step::Expire(t, owner(), A_RTP, B_RTP),
        Step::Expire(t, owner(), B_RTCP, A_RTCP),
    ]
}

#[test]
fn expired_pairs_reopen_on_the_next_completed_exchange() {
    // (what renegotiates after the pairs idled out, as steps naming the
    // same media; the last step completes the exchange)
    let reinvite = caller_req(SipMethod::Invite, 2, "b1", Some(vec![audio(A_RTP)]));
    let update = callee_req(SipMethod::Update, 1, "b1", Some(vec![audio(B_RTP)]));
    let late = caller_req(SipMethod::Invite, 2, "b1", None);
    let cases: Vec<(&str, Vec<SipEvent>)> = vec![
        (
            "re-INVITE, same SDP",
            vec![
                reinvite.clone(),
                reply(&reinvite, 200, None, Some(vec![audio(B_RTP)])),
            ],
        ),
        (
            "UPDATE from the callee",
            vec![
                update.clone(),
                reply(&update, 200, None, Some(vec![audio(A_RTP)])),
            ],
        ),
        (
            "late offer: re-INVITE without SDP, offer in 200, answer in ACK",
            vec![
                late.clone(),
                reply(&late, 200, None, Some(vec![audio(B_RTP)])),
                caller_req(SipMethod::Ack, 2, "b1", Some(vec![audio(A_RTP)])),
            ],
        ),
    ];
    for (name, msgs) in cases {
        let mut calls = run(CallConfig::default(), established());
        let mut steps: Vec<Step> = expire_both(60_000).into();
        // An in-dialog message that completes no exchange reopens nothing:
        // the pairs stay closed until signaling confirms the media again.
        steps.push(Sip(
            61_000,
            caller_req(SipMethod::Other, 2, "b1", None),
            vec![],
        ));
        let last = msgs.len() - 1;
        for (i, m) in msgs.into_iter().enumerate() {
            let want = if i == last {
                opens(A_RTP, B_RTP)
            } else {
                vec![]
            };
            steps.push(Sip(62_000 + i as u64, m, want));
        }
        play(&mut calls, steps);
        let c = calls.counters();
        assert_eq!(
            (c.pairs_expired_sip, c.pairs_reopened, c.pairs_opened),
            (2, 2, 4),
            "{name}"
        );
        // Open again: a BYE closes them as usual.
        play(
            &mut calls,
            [
                Sip(70_000, caller_req(SipMethod::Bye, 9, "b1", None), vec![]),
                Tick(72_000, closes(CloseCause::Bye)),
            ],
        );
    }
}

#[test]
fn calls_list_shows_expired_and_held_streams() {
    let mut calls = run(CallConfig::default(), established());
    play(&mut calls, expire_both(60_000));
    let info = calls.sip_calls();
    assert_eq!(info[0].streams.len(), 1);
    let s = &info[0].streams[0];
    assert_eq!((s.rtp, s.rtcp, s.hold), (None, None, false));
    assert_eq!(
        s.expired,
        vec![(sa(A_RTP), sa(B_RTP)), (sa(A_RTCP), sa(B_RTCP))]
    );
    // Expiry of a pair the call does not hold is not counted.
    assert!(!calls.on_pair_expired(&owner(), sa(A_RTP), sa(B_RTCP)));
    assert_eq!(calls.counters().pairs_expired_sip, 2);
}

#[test]
fn a_stream_put_on_hold_before_expiry_reopens_on_hold() {
    // Pairs that idled out while on hold (hold timeout passed) reopen with
    // the hold timeout when the next exchange still holds the stream.
    let one_way = Media {
        one_way: true,
        ..audio(A_RTP)
    };
    let hold = caller_req(SipMethod::Invite, 2, "b1", Some(vec![one_way]));
    let again = caller_req(SipMethod::Invite, 3, "b1", Some(vec![one_way]));
    let mut steps = established();
    steps.extend([
        Sip(1_000, hold.clone(), vec![]),
        Sip(
            1_001,
            reply(&hold, 200, None, Some(vec![audio(B_RTP)])),
            vec![
                retimed(owner(), A_RTP, B_RTP, true),
                retimed(owner(), A_RTCP, B_RTCP, true),
            ],
        ),
    ]);
    steps.extend(expire_both(4_000_000));
    steps.extend([
        Sip(4_001_000, again.clone(), vec![]),
        Sip(
            4_001_001,
            reply(&again, 200, None, Some(vec![audio(B_RTP)])),
            vec![
                Intent::Open {
                    owner: owner(),
                    a: sa(A_RTP),
                    b: sa(B_RTP),
                    idle_timeout: HOLD,
                },
                Intent::Open {
                    owner: owner(),
                    a: sa(A_RTCP),
                    b: sa(B_RTCP),
                    idle_timeout: HOLD,
                },
            ],
        ),
    ]);
    run(CallConfig::default(), steps);
}

/// A request of a dialog this daemon never saw (no INVITE), from the
/// callee's side when `from_callee`.
fn unknown_dialog(from_callee: bool, method: SipMethod, sdp: Option<Vec<Media>>) -> SipEvent {
    if from_callee {
        callee_req(method, 7, "b1", sdp)
    } else {
        caller_req(method, 7, "b1", sdp)
    }
}

#[test]
fn in_dialog_signaling_of_an_unknown_dialog_is_picked_up() {
    // (sender is the callee, method, offer carried by the request)
    for (from_callee, method, early_offer) in [
        (false, SipMethod::Invite, true),
        (true, SipMethod::Invite, true),
        (false, SipMethod::Update, true),
        (true, SipMethod::Update, true),
        (false, SipMethod::Invite, false),
        (true, SipMethod::Invite, false),
    ] {
        let name = format!("callee {from_callee}, {method:?}, early offer {early_offer}");
        let (mine, theirs) = if from_callee {
            (B_RTP, A_RTP)
        } else {
            (A_RTP, B_RTP)
        };
        let req = unknown_dialog(from_callee, method, early_offer.then(|| vec![audio(mine)]));
        // The requester is the picked-up call's "a" side.
        let key = if from_callee { "b1" } else { "caller-tag" };
        let o = sip_owner("call-1@192.0.2.10", key);
        let both = |a: &str, b: &str| {
            let rtcp = |s: &str| {
                let s = sa(s);
                SocketAddr::new(s.ip(), s.port() + 1).to_string()
            };
            vec![
                opened(o.clone(), a, b),
                opened(o.clone(), &rtcp(a), &rtcp(b)),
            ]
        };
        let mut steps = vec![Sip(0, req.clone(), vec![])];
        if early_offer {
            steps.push(Sip(
                1,
                reply(&req, 200, None, Some(vec![audio(theirs)])),
                both(mine, theirs),
            ));
        } else {
            // Late offer: the 200 offers, the ACK answers.
            steps.push(Sip(
                1,
                reply(&req, 200, None, Some(vec![audio(theirs)])),
                vec![],
            ));
            let ack = SipEvent {
                start: SipStart::Request(SipMethod::Ack),
                cseq_method: SipMethod::Ack,
                sdp: Some(vec![audio(mine)]),
                ..req.clone()
            };
            steps.push(Sip(2, ack, both(mine, theirs)));
        }
        // Later messages of either direction find the call: the other
        // side's BYE ends it.
        let bye = if from_callee {
            caller_req(SipMethod::Bye, 9, "b1", None)
        } else {
            callee_req(SipMethod::Bye, 9, "b1", None)
        };
        steps.push(Sip(10, bye, vec![]));
        let mut calls = Calls::new(CallConfig::default());
        play(&mut calls, steps);
        let c = calls.counters();
        assert_eq!(
            (c.calls_picked_up, c.pairs_opened, c.sip_unmatched),
            (1, 2, 0),
            "{name}"
        );
        assert_eq!(calls.active_calls(), 1, "{name}: in BYE grace");
        assert_eq!(calls.tick(ms(2_010)).len(), 2, "{name}: BYE closes");
    }
}

#[test]
fn picked_up_dialogs_pass_the_same_checks_as_an_initial_invite() {
    let reinvite = || unknown_dialog(false, SipMethod::Invite, Some(vec![audio(A_RTP)]));
    let answered = |media: &str| reply(&reinvite(), 200, None, Some(vec![audio(media)]));
    let trusted_elsewhere = CallConfig {
        trusted_signaling: vec!["203.0.113.0/24".parse().unwrap()],
        ..CallConfig::default()
    };
    let one_per_peer = CallConfig {
        max_calls_per_peer: 0,
        ..CallConfig::default()
    };
    let one_pair = CallConfig {
        max_pairs_per_call: 1,
        ..CallConfig::default()
    };
    // (config, answer media, counter that must count, pairs opened)
    let cases: Vec<(&str, CallConfig, &str, Refusal, u64)> = vec![
        (
            "untrusted",
            trusted_elsewhere,
            B_RTP,
            Refusal::UntrustedSignaling,
            0,
        ),
        ("per-peer cap", one_per_peer, B_RTP, Refusal::PerPeerCap, 0),
        (
            "third-party media in the answer",
            CallConfig::default(),
            "203.0.113.5:10000",
            Refusal::ThirdPartyMedia,
            0,
        ),
        ("per-call cap", one_pair, B_RTP, Refusal::PerCallCap, 1),
    ];
    for (name, cfg, media, reason, opened) in cases {
        let mut calls = Calls::new(cfg);
        calls.on_sip(&reinvite(), ms(0));
        calls.on_sip(&answered(media), ms(1));
        let c = calls.counters();
        assert!(c.refused(reason) >= 1, "{name}: {c:?}");
        assert_eq!(c.pairs_opened, opened, "{name}");
    }
}

#[test]
fn a_closed_or_failed_dialog_is_not_picked_up() {
    // A BYE'd call's late re-INVITE does not revive it.
    let mut steps = established();
    steps.extend([
        Sip(100, caller_req(SipMethod::Bye, 2, "b1", None), vec![]),
        Tick(2_100, closes(CloseCause::Bye)),
        Sip(
            2_200,
            caller_req(SipMethod::Invite, 3, "b1", Some(vec![audio(A_RTP)])),
            vec![],
        ),
    ]);
    let calls = run(CallConfig::default(), steps);
    assert_eq!(calls.counters().calls_picked_up, 0);
    assert_eq!(calls.active_calls(), 0);

    // A picked-up re-INVITE that fails ends the call at once; one never
    // answered ends at the setup timeout; in-dialog requests other than
    // INVITE and UPDATE with SDP pick nothing up.
    let req = unknown_dialog(false, SipMethod::Invite, Some(vec![audio(A_RTP)]));
    let mut calls = Calls::new(CallConfig::default());
    play(
        &mut calls,
        [
            Sip(0, req.clone(), vec![]),
            Sip(1, reply(&req, 488, None, None), vec![]),
        ],
    );
    assert_eq!(calls.active_calls(), 0);
    assert_eq!(calls.counters().calls_closed(CloseCause::Failed), 1);
    play(&mut calls, [Sip(2_000, req.clone(), vec![])]);
    assert_eq!(calls.active_calls(), 0, "the failed dialog lingers closed");
    let mut calls = Calls::new(CallConfig::default());
    play(&mut calls, [Sip(0, req, vec![])]);
    assert_eq!(calls.tick(ms(180_000)), vec![]);
    assert_eq!(calls.active_calls(), 0);
    for m in [
        SipMethod::Ack,
        SipMethod::Bye,
        SipMethod::Prack,
        SipMethod::Other,
    ] {
        calls.on_sip(
            &unknown_dialog(false, m, Some(vec![audio(A_RTP)])),
            ms(200_000),
        );
    }
    calls.on_sip(&unknown_dialog(true, SipMethod::Update, None), ms(200_000));
    assert_eq!(calls.active_calls(), 0);
    assert_eq!(calls.counters().calls_picked_up, 1);
}
