//! Helpers shared by the call-layer tests (`api_tests`, `latch_tests`,
//! `rtsp_tests`, `sip_tests`): addresses from strings, test time, media, the
//! owners and intents the tests expect, and a runner of timed steps that
//! asserts the exact intents of each.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::calls::*;

/// The idle timeout every expected open carries ([`CallConfig::default`]'s).
pub(super) const IDLE: Duration = Duration::from_secs(300);

/// The caller's and callee's signaling addresses and media of the scripted
/// calls (documentation addresses).
pub(super) const CALLER: &str = "192.0.2.10:5060";
pub(super) const CALLEE: &str = "198.51.100.20:5060";
pub(super) const A_RTP: &str = "192.0.2.10:4000";
pub(super) const A_RTCP: &str = "192.0.2.10:4001";
pub(super) const B_RTP: &str = "198.51.100.20:10000";
pub(super) const B_RTCP: &str = "198.51.100.20:10001";

/// Test time zero, in CLOCK_MONOTONIC nanoseconds.
pub(super) const T0: u64 = 1_000_000_000_000;

pub(super) fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `t` milliseconds after [`T0`].
pub(super) fn ms(t: u64) -> u64 {
    T0 + t * 1_000_000
}

/// An API source that vouches for the SDP's addresses (ng `trust-address`).
pub(super) fn vouched() -> ApiSource {
    ApiSource {
        vouched: true,
        ..ApiSource::default()
    }
}

/// An API source that names the signaling peer (ng `received-from`).
pub(super) fn received_from(peer: &str) -> ApiSource {
    ApiSource {
        peer: Some(ip(peer)),
        ..ApiSource::default()
    }
}

/// Audio stream at `rtp`, RTCP on the next port.
pub(super) fn audio(rtp: &str) -> Media {
    let rtp = sa(rtp);
    Media {
        rtp: Some(rtp),
        rtcp: Some(SocketAddr::new(rtp.ip(), rtp.port() + 1)),
        rtcp_mux: false,
        hold: false,
        one_way: false,
    }
}

/// The owner of the SIP call `call_id` started by `caller_tag`.
pub(super) fn sip_owner(call_id: &str, caller_tag: &str) -> Owner {
    Owner::Sip(CallKey {
        call_id: call_id.into(),
        caller_tag: caller_tag.into(),
    })
}

/// The owner of RTSP session `session` at `server`.
pub(super) fn rtsp_owner(server: &str, session: &str) -> Owner {
    Owner::Rtsp(SessionKey {
        server: sa(server),
        session: session.into(),
    })
}

/// `owner` opens `a` ↔ `b` with [`IDLE`].
pub(super) fn opened(owner: Owner, a: &str, b: &str) -> Intent {
    Intent::Open {
        owner,
        a: sa(a),
        b: sa(b),
        idle_timeout: IDLE,
    }
}

/// The idle timeout of a held stream's pairs ([`CallConfig::default`]'s).
pub(super) const HOLD: Duration = Duration::from_secs(3600);

/// `owner` changes the idle timeout of `a` ↔ `b` in place: to [`HOLD`]
/// when `hold`, else back to [`IDLE`].
pub(super) fn retimed(owner: Owner, a: &str, b: &str, hold: bool) -> Intent {
    Intent::Retime {
        owner,
        a: sa(a),
        b: sa(b),
        idle_timeout: if hold { HOLD } else { IDLE },
    }
}

/// `owner` closes `a` ↔ `b` for `cause`.
pub(super) fn closed(owner: Owner, a: &str, b: &str, cause: CloseCause) -> Intent {
    Intent::Close {
        owner,
        a: sa(a),
        b: sa(b),
        cause,
    }
}

/// One step of a scripted flow, at a time in ms after [`T0`], with the exact
/// intents it must yield.
pub(super) enum Step {
    /// A SIP message.
    Sip(u64, SipEvent, Vec<Intent>),
    /// An RTSP message.
    Rtsp(u64, RtspEvent, Vec<Intent>),
    /// A tick.
    Tick(u64, Vec<Intent>),
    /// The pinhole table closed `owner`'s pair `a` ↔ `b` for idleness
    /// (told by [`Calls::on_pair_expired`], which must know the pair).
    Expire(u64, Owner, &'static str, &'static str),
}

/// Feeds `steps` in order to fresh [`Calls`] and asserts each step's intents.
pub(super) fn run(cfg: CallConfig, steps: Vec<Step>) -> Calls {
    let mut calls = Calls::new(cfg);
    play(&mut calls, steps);
    calls
}

/// Feeds `steps` in order to `calls` and asserts each step's intents.
pub(super) fn play(calls: &mut Calls, steps: impl IntoIterator<Item = Step>) {
    for (i, step) in steps.into_iter().enumerate() {
        match step {
            Step::Sip(t, ev, want) => {
                let got = calls.on_sip(&ev, ms(t));
                assert_eq!(got, want, "step {i}: {:?} at {t} ms", ev.start);
            }
            Step::Rtsp(t, ev, want) => {
                let got = calls.on_rtsp(&ev, ms(t));
                assert_eq!(got, want, "step {i}: {:?} at {t} ms", ev.start);
            }
            Step::Tick(t, want) => {
                let got = calls.tick(ms(t));
                assert_eq!(got, want, "step {i}: tick at {t} ms");
            }
            Step::Expire(t, owner, a, b) => {
                assert!(
                    calls.on_pair_expired(&owner, sa(a), sa(b)),
                    "step {i}: expiry of {a} <-> {b} at {t} ms names no pair of {owner}"
                );
            }
        }
    }
}
