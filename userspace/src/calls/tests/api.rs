//! API-driven (ng) call flows; every step asserts the exact intents.

use std::time::Duration;

use super::support::*;
use crate::calls::*;

const CALL: &str = "api-call-1@proxy";
const A_TAG: &str = "caller-tag";
const B_TAG: &str = "callee-tag";
// Media addresses (A_RTP, B_RTP, …) need not match any signaling peer: the
// API vouches for them.

fn muxed(rtp: &str) -> Media {
    Media {
        rtcp_mux: true,
        ..audio(rtp)
    }
}

fn owner() -> Owner {
    sip_owner(CALL, A_TAG)
}

fn open(a: &str, b: &str) -> Intent {
    opened(owner(), a, b)
}

fn close(a: &str, b: &str, cause: CloseCause) -> Intent {
    closed(owner(), a, b, cause)
}

fn calls() -> Calls {
    Calls::new(CallConfig {
        idle_timeout: IDLE,
        // Only 203.0.113.0/24 may signal: API calls do not depend on it.
        trusted_signaling: vec!["203.0.113.0/24".parse().unwrap()],
        ..CallConfig::default()
    })
}

/// A call with the caller's offer answered by `B_TAG`; both pairs open.
fn answered() -> Calls {
    let mut c = calls();
    assert_eq!(
        c.on_api_offer(CALL, A_TAG, None, &[audio(A_RTP)], vouched(), ms(0)),
        Ok(vec![])
    );
    assert_eq!(
        c.on_api_answer(CALL, A_TAG, B_TAG, &[audio(B_RTP)], vouched(), ms(10)),
        Ok(vec![open(A_RTP, B_RTP), open(A_RTCP, B_RTCP)])
    );
    c
}

#[test]
fn offer_answer_delete_opens_and_closes() {
    let mut c = answered();
    assert_eq!(c.active_calls(), 1);
    assert_eq!(c.counters().calls_opened, 1);
    // The answer again (a retransmission, or 200 after 183): nothing new.
    assert_eq!(
        c.on_api_answer(CALL, A_TAG, B_TAG, &[audio(B_RTP)], vouched(), ms(20)),
        Ok(vec![])
    );
    // The offer again: nothing new either.
    assert_eq!(
        c.on_api_offer(CALL, A_TAG, None, &[audio(A_RTP)], vouched(), ms(30)),
        Ok(vec![])
    );
    assert_eq!(
        c.on_api_delete(CALL, Some(A_TAG), Some(B_TAG), Some(Duration::ZERO), ms(40)),
        Ok(vec![
            close(A_RTP, B_RTP, CloseCause::Bye),
            close(A_RTCP, B_RTCP, CloseCause::Bye)
        ])
    );
    assert_eq!(c.active_calls(), 0);
    assert_eq!(c.counters().calls_closed(CloseCause::Bye), 1);
    assert_eq!(
        c.on_api_delete(CALL, Some(A_TAG), None, None, ms(50)),
        Err(ApiError::UnknownCall)
    );
}

#[test]
fn delete_waits_for_its_delay() {
    // Default delay: the BYE grace (2 s).
    let mut c = answered();
    assert_eq!(
        c.on_api_delete(CALL, Some(A_TAG), None, None, ms(100)),
        Ok(vec![])
    );
    assert_eq!(c.next_deadline(), Some(ms(2100)));
    assert_eq!(c.tick(ms(1000)), vec![]);
    // Offers and answers while it closes do nothing, with a warning.
    let err = c.on_api_offer(CALL, A_TAG, None, &[audio(A_RTP)], vouched(), ms(1100));
    assert_eq!(err, Err(ApiError::Closing));
    assert!(ApiError::Closing.is_warning());
    // A second delete with a shorter delay brings it forward.
    assert_eq!(
        c.on_api_delete(CALL, None, None, Some(Duration::from_millis(500)), ms(1200)),
        Ok(vec![])
    );
    assert_eq!(c.next_deadline(), Some(ms(1700)));
    assert_eq!(
        c.tick(ms(1700)),
        vec![
            close(A_RTP, B_RTP, CloseCause::Bye),
            close(A_RTCP, B_RTCP, CloseCause::Bye)
        ]
    );
    assert_eq!(c.active_calls(), 0);
}

#[test]
fn reoffer_from_the_callee_renegotiates() {
    let mut c = answered();
    // The callee's re-INVITE: its tag is the From-tag now.
    const B2: &str = "198.51.100.21:12000";
    const B2_RTCP: &str = "198.51.100.21:12001";
    assert_eq!(
        c.on_api_offer(CALL, B_TAG, Some(A_TAG), &[audio(B2)], vouched(), ms(100)),
        Ok(vec![])
    );
    // Answered by the caller: from-tag stays the offerer's.
    assert_eq!(
        c.on_api_answer(CALL, B_TAG, A_TAG, &[audio(A_RTP)], vouched(), ms(110)),
        Ok(vec![
            close(A_RTP, B_RTP, CloseCause::Renegotiated),
            close(A_RTCP, B_RTCP, CloseCause::Renegotiated),
            open(A_RTP, B2),
            open(A_RTCP, B2_RTCP),
        ])
    );
    // The callee answering its own offer is not an answer.
    assert_eq!(
        c.on_api_offer(
            CALL,
            B_TAG,
            Some(A_TAG),
            &[audio(B_RTP)],
            vouched(),
            ms(120)
        ),
        Ok(vec![])
    );
    assert_eq!(
        c.on_api_answer(CALL, A_TAG, B_TAG, &[audio(B_RTP)], vouched(), ms(130)),
        Err(ApiError::NoOffer)
    );
    // A BYE from the callee: from-tag is the callee's.
    assert_eq!(
        c.on_api_delete(
            CALL,
            Some(B_TAG),
            Some(A_TAG),
            Some(Duration::ZERO),
            ms(140)
        ),
        Ok(vec![
            close(A_RTP, B2, CloseCause::Bye),
            close(A_RTCP, B2_RTCP, CloseCause::Bye)
        ])
    );
}

#[test]
fn forked_answers_and_branch_delete() {
    let mut c = answered();
    const B2_TAG: &str = "fork-2";
    const C_RTP: &str = "203.0.113.30:20000";
    const C_RTCP: &str = "203.0.113.30:20001";
    assert_eq!(
        c.on_api_answer(CALL, A_TAG, B2_TAG, &[audio(C_RTP)], vouched(), ms(100)),
        Ok(vec![open(A_RTP, C_RTP), open(A_RTCP, C_RTCP)])
    );
    let info = c.find_sip_calls(CALL, Some(A_TAG), None);
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].streams.len(), 2);
    // Deleting one branch closes only its pairs, at once.
    assert_eq!(
        c.on_api_delete(CALL, Some(A_TAG), Some(B2_TAG), None, ms(200)),
        Ok(vec![
            close(A_RTP, C_RTP, CloseCause::ForkLost),
            close(A_RTCP, C_RTCP, CloseCause::ForkLost)
        ])
    );
    assert_eq!(c.active_calls(), 1);
    // The last branch takes the whole call (here after its delay).
    assert_eq!(
        c.on_api_delete(CALL, Some(A_TAG), Some(B_TAG), None, ms(300)),
        Ok(vec![])
    );
    assert_eq!(c.tick(ms(2300)).len(), 2);
}

#[test]
fn offer_updates_and_unknown_answers() {
    let mut c = calls();
    // An answer for a call never offered.
    assert_eq!(
        c.on_api_answer(CALL, A_TAG, B_TAG, &[audio(B_RTP)], vouched(), ms(0)),
        Err(ApiError::UnknownCall)
    );
    // The callee's tag cannot answer the initial offer as if it were the
    // caller's: from-tag must be the offerer's.
    c.on_api_offer(CALL, A_TAG, None, &[audio(A_RTP)], vouched(), ms(0))
        .unwrap();
    assert_eq!(
        c.on_api_answer(CALL, B_TAG, A_TAG, &[audio(B_RTP)], vouched(), ms(10)),
        Err(ApiError::NoOffer)
    );
    // A changed initial offer (e.g. the INVITE again after a challenge)
    // replaces the first; the answer pairs with the new one.
    const A2: &str = "192.0.2.11:4100";
    c.on_api_offer(CALL, A_TAG, None, &[muxed(A2)], vouched(), ms(20))
        .unwrap();
    assert_eq!(
        c.on_api_answer(CALL, A_TAG, B_TAG, &[muxed(B_RTP)], vouched(), ms(30)),
        Ok(vec![open(A2, B_RTP)])
    );
    // Both sides multiplex: the stream has no RTCP pair.
    let info = c.find_sip_calls(CALL, None, None);
    assert_eq!(
        info[0].streams,
        vec![StreamInfo {
            dialog: B_TAG.into(),
            index: 0,
            rtp: Some((sa(A2), sa(B_RTP))),
            rtcp: None,
            expired: Vec::new(),
            hold: false,
        }]
    );
    assert!(info[0].api);
    assert_eq!(info[0].state, CallState::Confirmed);
    assert_eq!((info[0].created, info[0].last_signal), (ms(0), ms(30)));
}

#[test]
fn unusable_media_is_refused_not_failed() {
    let mut c = calls();
    let media = [
        audio(A_RTP),
        audio("192.0.2.10:4002"),
        audio("[2001:db8::1]:5000"),
    ];
    c.on_api_offer(CALL, A_TAG, None, &media, vouched(), ms(0))
        .unwrap();
    let answer = [
        audio("224.0.0.1:6000"),      // multicast
        audio("198.51.100.20:10002"), // fine
        audio("198.51.100.20:10004"), // family mismatch
    ];
    let out = c
        .on_api_answer(CALL, A_TAG, B_TAG, &answer, vouched(), ms(10))
        .unwrap();
    let refused: Vec<Refusal> = out
        .iter()
        .filter_map(|i| match i {
            Intent::Refused { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    let opened = out
        .iter()
        .filter(|i| matches!(i, Intent::Open { .. }))
        .count();
    assert_eq!(opened, 2, "{out:?}");
    assert_eq!(
        refused,
        vec![
            Refusal::UnusableEndpoint,
            Refusal::UnusableEndpoint,
            Refusal::FamilyMismatch,
            Refusal::FamilyMismatch
        ]
    );
    assert_eq!(c.counters().refused(Refusal::ThirdPartyMedia), 0);
}

#[test]
fn caps_still_apply() {
    let mut c = Calls::new(CallConfig {
        max_calls: 1,
        max_dialogs_per_call: 1,
        max_pairs_per_call: 1,
        ..CallConfig::default()
    });
    c.on_api_offer(CALL, A_TAG, None, &[audio(A_RTP)], vouched(), ms(0))
        .unwrap();
    assert_eq!(
        c.on_api_offer("other", A_TAG, None, &[audio(A_RTP)], vouched(), ms(0)),
        Err(ApiError::TableFull)
    );
    assert_eq!(c.counters().refused(Refusal::TableFull), 1);
    let out = c
        .on_api_answer(CALL, A_TAG, B_TAG, &[audio(B_RTP)], vouched(), ms(10))
        .unwrap();
    assert_eq!(out[0], open(A_RTP, B_RTP));
    assert!(matches!(
        out[1],
        Intent::Refused {
            reason: Refusal::PerCallCap,
            ..
        }
    ));
    assert_eq!(
        c.on_api_answer(CALL, A_TAG, "fork-2", &[audio(B_RTP)], vouched(), ms(20)),
        Err(ApiError::TooManyDialogs)
    );
    assert_eq!(c.counters().refused(Refusal::DialogCap), 1);
}

#[test]
fn observed_and_api_calls_keep_to_their_driver() {
    let mut c = Calls::new(CallConfig::default());
    // A call observed on the wire.
    let invite = SipEvent {
        src: sa("192.0.2.10:5060"),
        dst: sa("198.51.100.20:5060"),
        start: SipStart::Request(SipMethod::Invite),
        call_id: "seen".into(),
        from_tag: A_TAG.into(),
        to_tag: None,
        cseq: 1,
        cseq_method: SipMethod::Invite,
        sdp: Some(vec![audio(A_RTP)]),
    };
    assert_eq!(c.on_sip(&invite, ms(0)), vec![]);
    for r in [
        c.on_api_offer("seen", A_TAG, None, &[audio(A_RTP)], vouched(), ms(1)),
        c.on_api_answer("seen", A_TAG, B_TAG, &[audio(B_RTP)], vouched(), ms(1)),
        c.on_api_delete("seen", Some(A_TAG), None, None, ms(1)),
        c.on_api_delete("seen", None, None, None, ms(1)),
    ] {
        assert_eq!(r, Err(ApiError::NotApiCall));
    }
    assert!(ApiError::NotApiCall.is_warning());
    // An API call: observed signaling for it is ignored.
    c.on_api_offer(CALL, A_TAG, None, &[audio(A_RTP)], vouched(), ms(0))
        .unwrap();
    let ok = SipEvent {
        src: sa("198.51.100.20:5060"),
        dst: sa("192.0.2.10:5060"),
        start: SipStart::Response(200),
        call_id: CALL.into(),
        to_tag: Some(B_TAG.into()),
        sdp: Some(vec![audio(B_RTP)]),
        ..invite.clone()
    };
    let before = c.counters().sip_unmatched;
    assert_eq!(c.on_sip(&ok, ms(5)), vec![]);
    assert_eq!(
        c.on_sip(
            &SipEvent {
                call_id: CALL.into(),
                ..invite
            },
            ms(6)
        ),
        vec![]
    );
    assert_eq!(c.counters().sip_unmatched, before + 2);
    let mut ids: Vec<&str> = c.sip_call_ids().collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![CALL, "seen"]);
    let mut all: Vec<(String, bool)> = c
        .sip_calls()
        .into_iter()
        .map(|i| (i.key.call_id, i.api))
        .collect();
    all.sort();
    assert_eq!(all, vec![(CALL.into(), true), ("seen".into(), false)]);
}

#[test]
fn lookups_by_either_tag() {
    let mut c = answered();
    // Another call with the same Call-ID but another caller tag.
    c.on_api_offer(
        CALL,
        "other-caller",
        None,
        &[audio(A_RTP)],
        vouched(),
        ms(50),
    )
    .unwrap();
    // (from-tag, to-tag) → the caller tags found.
    let cases: [(Option<&str>, Option<&str>, Vec<&str>); 6] = [
        (Some(A_TAG), None, vec![A_TAG]),
        (Some(A_TAG), Some(B_TAG), vec![A_TAG]),
        (Some(B_TAG), Some(A_TAG), vec![A_TAG]),
        (Some(B_TAG), None, vec![A_TAG]),
        (Some("nobody"), None, vec![]),
        (None, None, vec![A_TAG, "other-caller"]),
    ];
    for (from, to, want) in cases {
        let mut got: Vec<String> = c
            .find_sip_calls(CALL, from, to)
            .into_iter()
            .map(|i| i.key.caller_tag)
            .collect();
        got.sort();
        assert_eq!(got, want, "{from:?} {to:?}");
    }
    assert!(c.find_sip_calls("nope", None, None).is_empty());
    // Deleting by Call-ID alone takes both.
    let out = c
        .on_api_delete(CALL, None, None, Some(Duration::ZERO), ms(60))
        .unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(c.active_calls(), 0);
    assert_eq!(c.sip_call_ids().count(), 0);
    // An unanswered offer times out like an unanswered INVITE.
    let mut c = calls();
    c.on_api_offer(CALL, A_TAG, None, &[audio(A_RTP)], vouched(), ms(0))
        .unwrap();
    let setup = c.config().setup_timeout;
    assert_eq!(c.next_deadline(), Some(ms(0) + setup.as_nanos() as u64));
    assert_eq!(c.tick(ms(0) + setup.as_nanos() as u64), vec![]);
    assert_eq!(c.active_calls(), 0);
    assert_eq!(c.counters().calls_closed(CloseCause::SetupTimeout), 1);
}

#[test]
fn expired_pairs_of_an_api_call_reopen_on_the_next_answer() {
    let mut c = answered();
    assert!(c.on_pair_expired(&owner(), sa(A_RTP), sa(B_RTP)));
    assert!(c.on_pair_expired(&owner(), sa(B_RTCP), sa(A_RTCP)));
    assert_eq!(c.counters().pairs_expired_ng, 2);
    // The re-offer opens nothing; its answer reopens both pairs.
    assert_eq!(
        c.on_api_offer(
            CALL,
            A_TAG,
            Some(B_TAG),
            &[audio(A_RTP)],
            vouched(),
            ms(60_000)
        ),
        Ok(vec![])
    );
    assert_eq!(
        c.on_api_answer(CALL, A_TAG, B_TAG, &[audio(B_RTP)], vouched(), ms(60_010)),
        Ok(vec![open(A_RTP, B_RTP), open(A_RTCP, B_RTCP)])
    );
    assert_eq!(c.counters().pairs_reopened, 2);
}

/// ng `received-from`: the media must come from the signaling peer the
/// proxy names (or a media-relay network), as for observed signaling; the
/// per-peer cap counts per that peer.
#[test]
fn received_from_applies_the_direct_media_rule_and_the_peer_cap() {
    const UA: &str = "203.0.113.10";
    const THIRD: &str = "203.0.113.66:4000";
    let relay = CallConfig {
        idle_timeout: IDLE,
        media_relay: vec!["198.51.100.128/25".parse().unwrap()],
        max_calls_per_peer: 1,
        ..CallConfig::default()
    };
    // (offered media, source, outcome of the offer)
    let cases: Vec<(&str, ApiSource, Result<(), ApiError>)> = vec![
        ("203.0.113.10:4000", received_from(UA), Ok(())),
        ("198.51.100.200:4000", received_from(UA), Ok(())),
        (
            THIRD,
            received_from(UA),
            Err(ApiError::ThirdPartyMedia {
                media: ip("203.0.113.66"),
                peer: ip(UA),
            }),
        ),
        (THIRD, vouched(), Ok(())),
        (THIRD, ApiSource::default(), Err(ApiError::NoSource)),
        (
            THIRD,
            ApiSource {
                latching: true,
                ..received_from(UA)
            },
            Err(ApiError::LatchingOff),
        ),
    ];
    for (media, source, want) in cases {
        let mut c = Calls::new(relay.clone());
        let got = c
            .on_api_offer(CALL, A_TAG, None, &[audio(media)], source, ms(0))
            .map(|_| ());
        assert_eq!(got, want, "{media} from {source:?}");
        // A refused offer leaves nothing behind.
        assert_eq!(c.active_calls(), usize::from(want.is_ok()), "{media}");
    }

    // The per-peer cap: one call from the UA; a second is refused, another
    // peer's is not; closing the first makes room.
    let mut c = Calls::new(relay.clone());
    let ua_media = [audio("203.0.113.10:4000")];
    c.on_api_offer(CALL, A_TAG, None, &ua_media, received_from(UA), ms(0))
        .unwrap();
    assert_eq!(
        c.on_api_offer("2", A_TAG, None, &ua_media, received_from(UA), ms(1)),
        Err(ApiError::PerPeerCap(ip(UA)))
    );
    assert_eq!(c.counters().refused(Refusal::PerPeerCap), 1);
    let other = [audio("203.0.113.11:4000")];
    assert!(c
        .on_api_offer(
            "3",
            A_TAG,
            None,
            &other,
            received_from("203.0.113.11"),
            ms(2)
        )
        .is_ok());
    c.on_api_delete(CALL, None, None, Some(Duration::ZERO), ms(3))
        .unwrap();
    assert!(c
        .on_api_offer("2", A_TAG, None, &ua_media, received_from(UA), ms(4))
        .is_ok());
    // Vouched-for calls without received-from have no peer to count.
    for i in 0..3 {
        let id = format!("v{i}");
        assert!(c
            .on_api_offer(&id, A_TAG, None, &ua_media, vouched(), ms(5))
            .is_ok());
    }
}

/// The answer's media are checked against the answerer's received-from;
/// a pair whose ends each come from their own peer opens exactly.
#[test]
fn answer_is_checked_against_its_own_received_from() {
    let mut c = calls();
    let caller = received_from("192.0.2.10");
    let callee = received_from("198.51.100.20");
    c.on_api_offer(CALL, A_TAG, None, &[audio(A_RTP)], caller, ms(0))
        .unwrap();
    // The callee's answer naming the caller's host: third-party.
    assert_eq!(
        c.on_api_answer(
            CALL,
            A_TAG,
            B_TAG,
            &[audio("192.0.2.99:10000")],
            callee,
            ms(5)
        ),
        Err(ApiError::ThirdPartyMedia {
            media: ip("192.0.2.99"),
            peer: ip("198.51.100.20"),
        })
    );
    assert_eq!(
        c.on_api_answer(CALL, A_TAG, B_TAG, &[audio(B_RTP)], callee, ms(10)),
        Ok(vec![open(A_RTP, B_RTP), open(A_RTCP, B_RTCP)])
    );
}

/// A UA behind NAT names its private address: with latching on (and the
/// proxy's port-latching, or without it, as for observed calls) its end
/// latches from its received-from address.
#[test]
fn nated_ua_latches_from_received_from() {
    const PRIVATE: &str = "198.51.100.50:4000";
    const PUBLIC: &str = "203.0.113.10";
    let cfg = CallConfig {
        idle_timeout: IDLE,
        latching: Duration::from_secs(10),
        ..CallConfig::default()
    };
    for latching in [true, false] {
        let mut c = Calls::new(cfg.clone());
        let nat = ApiSource {
            latching,
            ..received_from(PUBLIC)
        };
        let media = [Media {
            rtcp_mux: true,
            ..audio(PRIVATE)
        }];
        c.on_api_offer(CALL, A_TAG, None, &media, nat, ms(0))
            .unwrap();
        let answer = [Media {
            rtcp_mux: true,
            ..audio(B_RTP)
        }];
        let out = c
            .on_api_answer(
                CALL,
                A_TAG,
                B_TAG,
                &answer,
                received_from("198.51.100.20"),
                ms(10),
            )
            .unwrap();
        match out.as_slice() {
            [Intent::Latch {
                a, b, side, from, ..
            }] => {
                assert_eq!((*a, *b), (sa(PRIVATE), sa(B_RTP)));
                assert_eq!((*side, *from), (Side::A, ip(PUBLIC)));
            }
            other => panic!("one latch expected, got {other:?}"),
        }
    }
}
