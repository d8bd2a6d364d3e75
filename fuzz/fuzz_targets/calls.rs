//! Call state: a script of SIP messages (INVITE, re-INVITE, PRACK, UPDATE,
//! ACK, BYE, CANCEL and responses, with SDP from a small pool of addresses
//! and ports, between a few signaling hosts, with time passing) written out,
//! parsed by `signaling::sip::parse` and fed to `calls::Calls`. Checked:
//!
//! - an `Open` names two endpoints that an SDP of that call announced, each
//!   announced by the signaling host of that address (or in a media-relay
//!   network): never a third party's address;
//! - untrusted signaling produces nothing but its refusal;
//! - an owner opens a pair only when it is not open and closes only open
//!   pairs; both ends are usable and of one family;
//! - the counters match the intents;
//! - once every timer has run, no call and no pair is left.
#![no_main]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use pinhole_fuzz::call_script::CallScript;
use pinhole_fuzz::calls::{CallConfig, Calls, Intent, Owner, Refusal, SipEvent};
use pinhole_fuzz::signaling::sip;

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// Endpoints announced per Call-ID, with the signaling host that announced
/// each.
type Announced = BTreeMap<String, BTreeSet<(SocketAddr, IpAddr)>>;

struct Checker {
    cfg: CallConfig,
    announced: Announced,
    open: HashSet<(Owner, SocketAddr, SocketAddr)>,
    opens: u64,
    closes: u64,
    refusals: u64,
}

impl Checker {
    fn intents(&mut self, intents: Vec<Intent>) {
        for intent in intents {
            match intent {
                Intent::Open { owner, a, b, .. } => {
                    let Owner::Sip(key) = &owner else {
                        panic!("SIP opened an RTSP pair");
                    };
                    for end in [a, b] {
                        let ok = self.announced.get(&key.call_id).is_some_and(|set| {
                            set.iter().any(|&(ep, origin)| {
                                ep == canonical(end) && self.cfg.media_allowed(end.ip(), origin)
                            })
                        });
                        assert!(ok, "{end} opened for {owner} but not announced by its host");
                        assert_ne!(end.port(), 0);
                        assert!(!end.ip().is_unspecified() && !end.ip().is_multicast());
                    }
                    assert_eq!(a.is_ipv4(), b.is_ipv4(), "mixed families: {a} {b}");
                    assert_ne!(canonical(a), canonical(b));
                    assert!(
                        self.open.insert((owner.clone(), a, b)),
                        "{owner} opened {a} <-> {b} twice"
                    );
                    self.opens += 1;
                }
                Intent::Close { owner, a, b, .. } => {
                    assert!(
                        self.open.remove(&(owner.clone(), a, b)),
                        "{owner} closed {a} <-> {b}, which it had not open"
                    );
                    self.closes += 1;
                }
                Intent::Refused { .. } => self.refusals += 1,
                // Hold and resume change an open pair's idle timeout in
                // place: only a pair this owner holds open may be retimed.
                Intent::Retime { owner, a, b, .. } => assert!(
                    self.open.contains(&(owner.clone(), a, b)),
                    "{owner} retimed {a} <-> {b}, which it had not open"
                ),
                // Latching (a half-open pair for media behind NAT) is off in
                // this configuration, so nothing else may come out.
                #[allow(unreachable_patterns)]
                other => panic!("unexpected intent with latching off: {other:?}"),
            }
        }
    }

    fn counters(&self, calls: &Calls) {
        let c = calls.counters();
        assert_eq!(c.pairs_opened, self.opens);
        assert_eq!(c.pairs_closed.iter().sum::<u64>(), self.closes);
        assert_eq!(c.refused.iter().sum::<u64>(), self.refusals);
    }
}

fuzz_target!(|data: &[u8]| run(CallScript::decode(data)));

fn run(script: CallScript) {
    let mut cfg = CallConfig::default();
    if script.narrow_trust {
        cfg.trusted_signaling = vec!["192.0.2.0/24".parse().expect("net")];
    }
    if script.relay {
        cfg.media_relay = vec!["203.0.113.192/26".parse().expect("net")];
    }
    let mut calls = Calls::new(cfg.clone());
    let mut check = Checker {
        cfg,
        announced: Announced::new(),
        open: HashSet::new(),
        opens: 0,
        closes: 0,
        refusals: 0,
    };
    let mut now: u64 = 1_000_000_000;
    for step in script.steps.iter().take(64) {
        now += u64::from(step.wait_10ms) * 10_000_000;
        check.intents(calls.tick(now));
        let (src, dst) = step.addresses();
        let text = step.message(src);
        let msg = sip::parse(text.as_bytes()).expect("the script writes valid SIP");
        let Ok(ev) = SipEvent::from_message(&msg, src, dst) else {
            continue;
        };
        for m in ev.sdp.iter().flatten() {
            let set = check.announced.entry(ev.call_id.clone()).or_default();
            for ep in [m.rtp, m.rtcp].into_iter().flatten() {
                set.insert((canonical(ep), src.ip()));
            }
        }
        let trusted = check.cfg.is_trusted(src.ip(), dst.ip());
        let intents = calls.on_sip(&ev, now);
        if !trusted {
            assert!(
                matches!(
                    intents.as_slice(),
                    [Intent::Refused {
                        reason: Refusal::UntrustedSignaling,
                        ..
                    }]
                ),
                "untrusted signaling did something: {intents:?}"
            );
        }
        check.intents(intents);
        check.counters(&calls);
    }
    // Run every timer: calls end by BYE grace, setup timeout or max lifetime.
    for _ in 0..10_000 {
        let Some(deadline) = calls.next_deadline() else {
            break;
        };
        now = now.max(deadline);
        check.intents(calls.tick(now));
        now += 1_000_000;
    }
    check.counters(&calls);
    assert_eq!(calls.active_calls(), 0, "calls left after every timer ran");
    assert!(check.open.is_empty(), "pairs left open: {:?}", check.open);
}
