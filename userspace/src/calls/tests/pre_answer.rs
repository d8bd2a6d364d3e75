//! Pre-answer latching in the call layer ([`CallConfig::pre_answer`]): which
//! offers arm provisional pairs, how the answer supersedes them (its own
//! pairs first, then the provisional closes), and what else ends them.

use std::time::Duration;

use super::support::*;
use crate::calls::*;

const CALL_ID: &str = "pre-1@192.0.2.10";
/// [`CallConfig::default`]'s setup timeout: the provisional window.
const SETUP: Duration = Duration::from_secs(180);

fn owner() -> Owner {
    sip_owner(CALL_ID, "caller-tag")
}

fn pre_answer() -> CallConfig {
    CallConfig {
        pre_answer: true,
        ..CallConfig::default()
    }
}

/// A message of the call from `src` to `dst`.
fn msg(
    src: &str,
    dst: &str,
    start: SipStart,
    to_tag: Option<&str>,
    sdp: Option<Vec<Media>>,
) -> SipEvent {
    let (cseq, cseq_method) = match start {
        SipStart::Request(SipMethod::Ack) => (1, SipMethod::Ack),
        SipStart::Request(SipMethod::Cancel) => (1, SipMethod::Cancel),
        SipStart::Request(SipMethod::Invite) if to_tag.is_some() => (2, SipMethod::Invite),
        SipStart::Response(_) if to_tag.is_some() && src == CALLER => (2, SipMethod::Invite),
        _ => (1, SipMethod::Invite),
    };
    SipEvent {
        src: sa(src),
        dst: sa(dst),
        start,
        call_id: CALL_ID.into(),
        from_tag: "caller-tag".into(),
        to_tag: to_tag.map(Into::into),
        cseq,
        cseq_method,
        sdp,
    }
}

fn invite(sdp: Option<Vec<Media>>) -> SipEvent {
    msg(
        CALLER,
        CALLEE,
        SipStart::Request(SipMethod::Invite),
        None,
        sdp,
    )
}

/// A response to the initial INVITE from the callee's branch `tag`.
fn response(code: u16, tag: &str, sdp: Option<Vec<Media>>) -> SipEvent {
    msg(CALLEE, CALLER, SipStart::Response(code), Some(tag), sdp)
}

/// A provisional pair: `a` known, the callee's end unknown (port 0),
/// latching from the callee's signaling address.
fn towards_caller(a: &str) -> Intent {
    Intent::Latch {
        owner: owner(),
        a: sa(a),
        b: sa("198.51.100.20:0"),
        side: Side::B,
        from: ip("198.51.100.20"),
        window: SETUP,
        idle_timeout: IDLE,
        pre_answer: true,
    }
}

/// A provisional pair of an offer by the callee: the caller's end unknown.
fn towards_callee(b: &str) -> Intent {
    Intent::Latch {
        owner: owner(),
        a: sa("192.0.2.10:0"),
        b: sa(b),
        side: Side::A,
        from: ip("192.0.2.10"),
        window: SETUP,
        idle_timeout: IDLE,
        pre_answer: true,
    }
}

fn open(a: &str, b: &str) -> Intent {
    opened(owner(), a, b)
}

fn close(a: &str, b: &str, cause: CloseCause) -> Intent {
    closed(owner(), a, b, cause)
}

fn no_rtcp(rtp: &str) -> Media {
    Media {
        rtcp: None,
        ..audio(rtp)
    }
}

#[test]
fn the_offer_arms_and_the_answer_supersedes_after_opening() {
    let calls = run(
        pre_answer(),
        vec![
            Step::Sip(
                0,
                invite(Some(vec![audio(A_RTP)])),
                vec![towards_caller(A_RTP), towards_caller(A_RTCP)],
            ),
            // A retransmission arms nothing new.
            Step::Sip(10, invite(Some(vec![audio(A_RTP)])), vec![]),
            Step::Sip(20, response(180, "b1", None), vec![]),
            Step::Sip(
                30,
                response(200, "b1", Some(vec![audio(B_RTP)])),
                vec![
                    open(A_RTP, B_RTP),
                    open(A_RTCP, B_RTCP),
                    close(A_RTP, "198.51.100.20:0", CloseCause::Renegotiated),
                    close(A_RTCP, "198.51.100.20:0", CloseCause::Renegotiated),
                ],
            ),
            Step::Sip(
                40,
                msg(
                    CALLER,
                    CALLEE,
                    SipStart::Request(SipMethod::Ack),
                    Some("b1"),
                    None,
                ),
                vec![],
            ),
        ],
    );
    let c = calls.counters();
    assert_eq!(
        (
            c.pairs_pre_answer,
            c.pairs_pre_answer_closed,
            c.pairs_latching,
            c.pairs_opened,
            c.pairs_closed(CloseCause::Renegotiated)
        ),
        (2, 2, 0, 2, 0)
    );
    let json = serde_json::to_value(c).unwrap();
    assert_eq!(json["pairs_pre_answer"], 2);
}

#[test]
fn off_arms_nothing() {
    run(
        CallConfig::default(),
        vec![
            Step::Sip(0, invite(Some(vec![audio(A_RTP)])), vec![]),
            Step::Sip(
                30,
                response(200, "b1", Some(vec![audio(B_RTP)])),
                vec![open(A_RTP, B_RTP), open(A_RTCP, B_RTCP)],
            ),
        ],
    );
}

#[test]
fn only_live_direct_streams_arm() {
    let rejected = Media {
        rtp: Some(sa("192.0.2.10:0")),
        ..audio(A_RTP)
    };
    let held = Media {
        rtp: Some(sa("0.0.0.0:4002")),
        rtcp: Some(sa("0.0.0.0:4003")),
        ..audio(A_RTP)
    };
    let hold_flag = Media {
        hold: true,
        ..audio("192.0.2.10:4004")
    };
    let muxed = Media {
        rtcp_mux: true,
        ..audio("192.0.2.10:4006")
    };
    // Announced by the caller for a host that is not its own: the
    // media-origin check fails, so nothing arms (and nothing is refused
    // before the answer).
    let third_party = audio("203.0.113.9:4008");
    let no_rtcp_port = no_rtcp("192.0.2.10:4010");
    run(
        pre_answer(),
        vec![Step::Sip(
            0,
            invite(Some(vec![
                rejected,
                held,
                hold_flag,
                muxed,
                third_party,
                no_rtcp_port,
            ])),
            vec![
                towards_caller("192.0.2.10:4006"),
                towards_caller("192.0.2.10:4010"),
            ],
        )],
    );
    // A media relay's address passes the check.
    let relayed = CallConfig {
        media_relay: vec!["203.0.113.0/28".parse().unwrap()],
        ..pre_answer()
    };
    run(
        relayed,
        vec![Step::Sip(
            0,
            invite(Some(vec![no_rtcp("203.0.113.9:4008")])),
            vec![towards_caller("203.0.113.9:4008")],
        )],
    );
}

#[test]
fn an_answer_with_another_port_closes_the_provisional_pair() {
    // The provisional pair's latch may have completed with another port
    // (the controller holds that); the call layer only knows that the
    // answer does not justify it: it closes, the answered pair opens.
    run(
        pre_answer(),
        vec![
            Step::Sip(
                0,
                invite(Some(vec![no_rtcp(A_RTP)])),
                vec![towards_caller(A_RTP)],
            ),
            Step::Sip(
                30,
                response(183, "b1", Some(vec![no_rtcp("198.51.100.20:12000")])),
                vec![
                    open(A_RTP, "198.51.100.20:12000"),
                    close(A_RTP, "198.51.100.20:0", CloseCause::Renegotiated),
                ],
            ),
        ],
    );
}

#[test]
fn cancel_failure_and_timeout_close_provisional_pairs() {
    let armed = || {
        Step::Sip(
            0,
            invite(Some(vec![no_rtcp(A_RTP)])),
            vec![towards_caller(A_RTP)],
        )
    };
    run(
        pre_answer(),
        vec![
            armed(),
            Step::Sip(
                50,
                msg(
                    CALLER,
                    CALLEE,
                    SipStart::Request(SipMethod::Cancel),
                    None,
                    None,
                ),
                vec![close(A_RTP, "198.51.100.20:0", CloseCause::Cancel)],
            ),
        ],
    );
    run(
        pre_answer(),
        vec![
            armed(),
            Step::Sip(
                50,
                response(486, "b1", None),
                vec![close(A_RTP, "198.51.100.20:0", CloseCause::Failed)],
            ),
        ],
    );
    let setup_ms = SETUP.as_millis() as u64;
    run(
        pre_answer(),
        vec![
            armed(),
            Step::Tick(setup_ms - 1, vec![]),
            Step::Tick(
                setup_ms,
                vec![close(A_RTP, "198.51.100.20:0", CloseCause::SetupTimeout)],
            ),
        ],
    );
}

#[test]
fn an_unanswered_offer_in_an_early_dialog_times_out_alone() {
    // The call keeps going on 180s (they refresh the call's setup timer);
    // the branch's copy of the offer expires and takes the provisional
    // pair with it.
    let setup_ms = SETUP.as_millis() as u64;
    run(
        pre_answer(),
        vec![
            Step::Sip(
                0,
                invite(Some(vec![no_rtcp(A_RTP)])),
                vec![towards_caller(A_RTP)],
            ),
            Step::Sip(10, response(180, "b1", None), vec![]),
            Step::Sip(setup_ms, response(180, "b1", None), vec![]),
            Step::Tick(
                setup_ms + 10,
                vec![close(A_RTP, "198.51.100.20:0", CloseCause::SetupTimeout)],
            ),
        ],
    );
}

#[test]
fn late_offer_in_the_2xx_latches_from_the_caller_until_the_ack() {
    run(
        pre_answer(),
        vec![
            Step::Sip(0, invite(None), vec![]),
            Step::Sip(
                30,
                response(200, "b1", Some(vec![no_rtcp(B_RTP)])),
                vec![towards_callee(B_RTP)],
            ),
            Step::Sip(
                40,
                msg(
                    CALLER,
                    CALLEE,
                    SipStart::Request(SipMethod::Ack),
                    Some("b1"),
                    Some(vec![no_rtcp(A_RTP)]),
                ),
                vec![
                    open(A_RTP, B_RTP),
                    close("192.0.2.10:0", B_RTP, CloseCause::Renegotiated),
                ],
            ),
        ],
    );
}

#[test]
fn forks_share_the_provisional_pairs_until_the_winner_answers() {
    run(
        pre_answer(),
        vec![
            Step::Sip(
                0,
                invite(Some(vec![no_rtcp(A_RTP)])),
                vec![towards_caller(A_RTP)],
            ),
            // Two branches, both answering through the same next hop.
            Step::Sip(10, response(180, "b1", None), vec![]),
            Step::Sip(11, response(180, "b2", None), vec![]),
            // b1's early answer opens its pair; b2's offer is still pending,
            // so the shared provisional pair stays.
            Step::Sip(
                20,
                response(183, "b1", Some(vec![no_rtcp(B_RTP)])),
                vec![open(A_RTP, B_RTP)],
            ),
            // b2 wins with its own answer: b1's pair is lost with its
            // dialog; b2's answer opens its pair, and only then does the
            // provisional pair close.
            Step::Sip(
                30,
                response(200, "b2", Some(vec![no_rtcp("198.51.100.20:12000")])),
                vec![
                    close(A_RTP, B_RTP, CloseCause::ForkLost),
                    open(A_RTP, "198.51.100.20:12000"),
                    close(A_RTP, "198.51.100.20:0", CloseCause::Renegotiated),
                ],
            ),
        ],
    );
}

#[test]
fn a_reoffer_arms_towards_the_offerer_until_answered() {
    let reinvite = msg(
        CALLEE,
        CALLER,
        SipStart::Request(SipMethod::Invite),
        Some("b1"),
        Some(vec![no_rtcp("198.51.100.20:12000")]),
    );
    // A re-INVITE from the callee: From is the callee's tag, To the caller's.
    let reinvite = SipEvent {
        from_tag: "b1".into(),
        to_tag: Some("caller-tag".into()),
        ..reinvite
    };
    let answer = SipEvent {
        src: sa(CALLER),
        dst: sa(CALLEE),
        start: SipStart::Response(200),
        sdp: Some(vec![no_rtcp(A_RTP)]),
        ..reinvite.clone()
    };
    run(
        pre_answer(),
        vec![
            Step::Sip(
                0,
                invite(Some(vec![no_rtcp(A_RTP)])),
                vec![towards_caller(A_RTP)],
            ),
            Step::Sip(
                30,
                response(200, "b1", Some(vec![no_rtcp(B_RTP)])),
                vec![
                    open(A_RTP, B_RTP),
                    close(A_RTP, "198.51.100.20:0", CloseCause::Renegotiated),
                ],
            ),
            Step::Sip(1000, reinvite, vec![towards_callee("198.51.100.20:12000")]),
            Step::Sip(
                1010,
                answer,
                vec![
                    close(A_RTP, B_RTP, CloseCause::Renegotiated),
                    open(A_RTP, "198.51.100.20:12000"),
                    close(
                        "192.0.2.10:0",
                        "198.51.100.20:12000",
                        CloseCause::Renegotiated,
                    ),
                ],
            ),
        ],
    );
}

#[test]
fn provisional_pairs_count_against_the_cap_without_refusals() {
    let cfg = CallConfig {
        max_pairs_per_call: 2,
        ..pre_answer()
    };
    let calls = run(
        cfg,
        vec![
            Step::Sip(
                0,
                invite(Some(vec![audio(A_RTP), no_rtcp("192.0.2.10:4010")])),
                vec![towards_caller(A_RTP), towards_caller(A_RTCP)],
            ),
            // The answer's pairs get the whole cap back.
            Step::Sip(
                30,
                response(
                    200,
                    "b1",
                    Some(vec![audio(B_RTP), no_rtcp("198.51.100.20:10010")]),
                ),
                vec![
                    open(A_RTP, B_RTP),
                    open(A_RTCP, B_RTCP),
                    close(A_RTP, "198.51.100.20:0", CloseCause::Renegotiated),
                    close(A_RTCP, "198.51.100.20:0", CloseCause::Renegotiated),
                    Intent::Refused {
                        owner: Some(owner()),
                        reason: Refusal::PerCallCap,
                        pair: Some((sa("192.0.2.10:4010"), sa("198.51.100.20:10010"))),
                    },
                ],
            ),
        ],
    );
    assert_eq!(calls.counters().refused(Refusal::PerCallCap), 1);
}

#[test]
fn ipv6_offers_arm_from_the_callee_signaling_address() {
    let caller = "[2001:db8:1::10]:5060";
    let callee = "[2001:db8:2::20]:5060";
    let ev = SipEvent {
        src: sa(caller),
        dst: sa(callee),
        ..invite(Some(vec![no_rtcp("[2001:db8:1::10]:4000")]))
    };
    run(
        pre_answer(),
        vec![Step::Sip(
            0,
            ev,
            vec![Intent::Latch {
                owner: owner(),
                a: sa("[2001:db8:1::10]:4000"),
                b: sa("[2001:db8:2::20]:0"),
                side: Side::B,
                from: ip("2001:db8:2::20"),
                window: SETUP,
                idle_timeout: IDLE,
                pre_answer: true,
            }],
        )],
    );
    // The offer sent to an address of the other family cannot latch.
    let mixed = SipEvent {
        dst: sa(callee),
        ..invite(Some(vec![no_rtcp(A_RTP)]))
    };
    run(pre_answer(), vec![Step::Sip(0, mixed, vec![])]);
}

#[test]
fn the_api_never_arms_provisional_pairs() {
    let mut calls = Calls::new(pre_answer());
    assert_eq!(
        calls.on_api_offer(
            CALL_ID,
            "caller-tag",
            None,
            &[no_rtcp(A_RTP)],
            vouched(),
            ms(0)
        ),
        Ok(vec![])
    );
    assert_eq!(
        calls.on_api_answer(
            CALL_ID,
            "caller-tag",
            "b1",
            &[no_rtcp(B_RTP)],
            vouched(),
            ms(10)
        ),
        Ok(vec![Intent::Open {
            owner: owner(),
            a: sa(A_RTP),
            b: sa(B_RTP),
            idle_timeout: IDLE,
        }])
    );
    assert_eq!(calls.counters().pairs_pre_answer, 0);
}

#[test]
fn provisional_pairs_survive_a_snapshot() {
    let mut calls = run(
        pre_answer(),
        vec![Step::Sip(
            0,
            invite(Some(vec![no_rtcp(A_RTP)])),
            vec![towards_caller(A_RTP)],
        )],
    );
    let json = serde_json::to_string(&calls.snapshot()).unwrap();
    let mut restored = Calls::new(pre_answer());
    restored.restore(serde_json::from_str(&json).unwrap());
    for c in [&mut calls, &mut restored] {
        play(
            c,
            [Step::Sip(
                30,
                response(200, "b1", Some(vec![no_rtcp(B_RTP)])),
                vec![
                    open(A_RTP, B_RTP),
                    close(A_RTP, "198.51.100.20:0", CloseCause::Renegotiated),
                ],
            )],
        );
    }
}
