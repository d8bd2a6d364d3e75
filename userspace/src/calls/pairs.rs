//! The set of pairs one call or session holds, and how it follows the pairs
//! its signaling justifies.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use super::policy::usable_endpoint;
use super::{CallConfig, CloseCause, Ctx, Owner, Refusal, Side};

/// How a pair whose `side` end is behind NAT opens: by latching on the first
/// packet from `from`, that end's signaling address (see
/// [`super::Intent::Latch`]).
///
/// `pre_answer` marks a *provisional* pair ([`CallConfig::pre_answer`]): an
/// offer crossed and its answer has not, so the answerer's media port is
/// not known yet. The `side` end of such a pair is the placeholder
/// `from:0` (the answerer's signaling address, port 0: a port no pinhole
/// can have, so it never equals a real pair); the other end is the
/// offerer's media endpoint. It lives until the offer is answered (or
/// fails, or times out) and is then closed, after the answer's own pairs
/// opened.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Latch {
    pub side: Side,
    pub from: IpAddr,
    #[serde(default)]
    pub pre_answer: bool,
}

/// One symmetric pair: `a` is the caller's (client's) end, `b` the callee's
/// (server's). `latch` is set when it opens by latching; the same ends
/// with and without latching are different pairs (renegotiating from one
/// to the other closes and reopens).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub(crate) struct Pair {
    pub a: SocketAddr,
    pub b: SocketAddr,
    #[serde(default)]
    pub latch: Option<Latch>,
}

/// A pair the signaling asks for, with the policy's verdict on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub pair: Pair,
    pub verdict: Result<(), Refusal>,
}

impl Candidate {
    /// Checks the pair `a` ↔ `b`, where `a` was announced by the signaling
    /// peer `a_origin` and `b` by `b_origin`. One end that fails the media
    /// origin check makes the pair a latching one when the configuration
    /// allows it ([`CallConfig::latch`]), else third-party media. An end
    /// whose origin is unspecified (the control API's `trust-address`,
    /// [`super::sip_calls::VOUCHED`]) is vouched for and passes.
    pub fn check(
        cfg: &CallConfig,
        a: SocketAddr,
        a_origin: IpAddr,
        b: SocketAddr,
        b_origin: IpAddr,
    ) -> Candidate {
        let mut c = Candidate::check_vouched(a, b);
        if c.verdict.is_err() {
            return c;
        }
        let allowed = |m: IpAddr, o: IpAddr| o.is_unspecified() || cfg.media_allowed(m, o);
        let latch = match (allowed(a.ip(), a_origin), allowed(b.ip(), b_origin)) {
            (true, true) => return c,
            (false, true) => cfg.latch(Side::A, a_origin, b),
            (true, false) => cfg.latch(Side::B, b_origin, a),
            (false, false) => None,
        };
        match latch {
            Some(l) => c.pair.latch = Some(l),
            None => c.verdict = Err(Refusal::ThirdPartyMedia),
        }
        c
    }

    /// The provisional pair ([`Latch::pre_answer`]) for the offered media
    /// endpoint `offered`, announced by the signaling peer `origin` on the
    /// offerer's side `offerer` (`Side::A`: the caller), whose answer will
    /// come from `answerer`, the address the offer was sent to. `None` when
    /// pre-answer latching is off, or the offered endpoint fails the media
    /// origin check or cannot carry a pinhole, or `answerer` cannot source
    /// media towards it: then the answer opens what it justifies, as
    /// without pre-answer latching (no refusal is reported for an offer).
    pub fn pre_answer(
        cfg: &CallConfig,
        offerer: Side,
        offered: SocketAddr,
        origin: IpAddr,
        answerer: IpAddr,
    ) -> Option<Candidate> {
        let from = answerer.to_canonical();
        let acceptable = cfg.pre_answer
            && cfg.media_allowed(offered.ip(), origin)
            && usable_endpoint(offered)
            && usable_endpoint(SocketAddr::new(from, 1))
            && from.is_ipv4() == offered.ip().to_canonical().is_ipv4();
        if !acceptable {
            return None;
        }
        let unknown = SocketAddr::new(from, 0);
        let (a, b, side) = match offerer {
            Side::A => (offered, unknown, Side::B),
            Side::B => (unknown, offered, Side::A),
        };
        Some(Candidate {
            pair: Pair {
                a,
                b,
                latch: Some(Latch {
                    side,
                    from,
                    pre_answer: true,
                }),
            },
            verdict: Ok(()),
        })
    }

    /// Checks the pair `a` ↔ `b` whose addresses a trusted party vouches
    /// for (the control API): only family and usability, no media origin.
    pub fn check_vouched(a: SocketAddr, b: SocketAddr) -> Candidate {
        let verdict = if a.is_ipv4() != b.is_ipv4() {
            Err(Refusal::FamilyMismatch)
        } else if !usable_endpoint(a) || !usable_endpoint(b) || a == b {
            Err(Refusal::UnusableEndpoint)
        } else {
            Ok(())
        };
        Candidate {
            pair: Pair { a, b, latch: None },
            verdict,
        }
    }
}

/// The pairs an owner holds open, in the order they were opened, and the
/// refusals already reported for what it currently asks for.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct PairSet {
    installed: Vec<Pair>,
    /// Not saved: after a restore, a refusal still asked for is reported
    /// once more.
    #[serde(skip)]
    refused: Vec<(Pair, Refusal)>,
}

impl PairSet {
    pub fn installed(&self) -> &[Pair] {
        &self.installed
    }

    /// Makes the open pairs follow `candidates`: closes pairs no longer asked
    /// for (with `cause`), then opens new acceptable ones while fewer than
    /// `cap` are open. Pairs already open are never displaced by new ones.
    /// A refusal is reported once for as long as the pair keeps being asked
    /// for, so repeated signaling does not repeat it.
    pub fn reconcile(
        &mut self,
        owner: &Owner,
        candidates: &[Candidate],
        cap: usize,
        cause: CloseCause,
        ctx: &mut Ctx<'_>,
    ) {
        let mut wanted_set = HashSet::new();
        let wanted: Vec<Pair> = candidates
            .iter()
            .filter(|c| c.verdict.is_ok() && wanted_set.insert(c.pair))
            .map(|c| c.pair)
            .collect();
        let mut refused_set = HashSet::new();
        let mut refused: Vec<(Pair, Refusal)> = Vec::new();
        for c in candidates {
            if let Err(reason) = c.verdict {
                if !wanted_set.contains(&c.pair) && refused_set.insert(c.pair) {
                    refused.push((c.pair, reason));
                }
            }
        }

        let mut next: Vec<Pair> = self
            .installed
            .iter()
            .copied()
            .filter(|p| wanted_set.contains(p))
            .collect();
        let kept = next.len();
        let mut opens = Vec::new();
        for p in wanted {
            if next[..kept].contains(&p) {
                continue;
            }
            if next.len() < cap {
                next.push(p);
                opens.push(p);
            } else if !p.latch.is_some_and(|l| l.pre_answer) {
                // A provisional pair over the cap is simply not armed: it
                // is an optimisation of the answer's pairs, which the cap
                // is there for, not something the signaling asked for.
                refused.push((p, Refusal::PerCallCap));
            }
        }

        // Provisional (pre-answer) pairs close after the opens: when the
        // answer justifies the very pair a provisional one latched, the
        // answer's open claims it before the provisional claim lets go, so
        // its flows never leave the map. Other pairs close first, so a
        // renegotiation frees its room before it opens anew.
        let provisional = |p: &Pair| p.latch.is_some_and(|l| l.pre_answer);
        let gone: Vec<Pair> = self
            .installed
            .iter()
            .copied()
            .filter(|p| !wanted_set.contains(p))
            .collect();
        for p in gone.iter().filter(|p| !provisional(p)) {
            ctx.close_pair(owner, p, cause);
        }
        for p in opens {
            match p.latch {
                Some(l) => ctx.latch(owner, p.a, p.b, l),
                None => ctx.open(owner, p.a, p.b),
            }
        }
        for p in gone.iter().filter(|p| provisional(p)) {
            ctx.close_pair(owner, p, cause);
        }
        let before: HashSet<&(Pair, Refusal)> = self.refused.iter().collect();
        for r @ &(p, reason) in &refused {
            if !before.contains(r) {
                ctx.refuse(Some(owner), reason, Some((p.a, p.b)));
            }
        }
        self.installed = next;
        self.refused = refused;
    }

    /// Closes every open pair.
    pub fn close_all(&mut self, owner: &Owner, cause: CloseCause, ctx: &mut Ctx<'_>) {
        for p in self.installed.drain(..) {
            ctx.close_pair(owner, &p, cause);
        }
        self.refused.clear();
    }
}
