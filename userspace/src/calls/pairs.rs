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
    /// The stream is on hold (`sendonly`, `recvonly`, `inactive` or
    /// `c=0.0.0.0` on either side): the pair idles out after
    /// [`CallConfig::hold_timeout`] instead of [`CallConfig::idle_timeout`].
    pub hold: bool,
}

impl Candidate {
    /// Checks the pair `a` ↔ `b`, where `a` was announced by the signaling
    /// peer `a_origin` and `b` by `b_origin`. One end that fails the media
    /// origin check makes the pair a latching one when the configuration
    /// allows it ([`CallConfig::latch`]), else third-party media. An end
    /// whose origin is unspecified (the control API's `trust-address`,
    /// `VOUCHED` in `sip_calls/api.rs`) is vouched for and passes.
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
            hold: false,
        })
    }

    /// The same candidate, on hold or not.
    pub fn held(self, hold: bool) -> Candidate {
        Candidate { hold, ..self }
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
            hold: false,
        }
    }
}

/// The pairs an owner holds open, in the order they were opened, the pairs
/// that idled out of the pinhole table, and the refusals already reported
/// for what it currently asks for.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct PairSet {
    installed: Vec<Pair>,
    /// Installed pairs opened (or retimed) with the hold timeout.
    #[serde(default)]
    held: Vec<Pair>,
    /// Pairs the table closed for idleness ([`PairSet::expire`]) that the
    /// signaling still names: not open, counted against the cap, and
    /// opened again by the next completed offer/answer exchange (or RTSP
    /// `PLAY`), never by a message that merely repeats old state.
    #[serde(default)]
    expired: Vec<Pair>,
    /// Not saved: after a restore, a refusal still asked for is reported
    /// once more.
    #[serde(skip)]
    refused: Vec<(Pair, Refusal)>,
}

impl PairSet {
    pub fn installed(&self) -> &[Pair] {
        &self.installed
    }

    pub fn expired(&self) -> &[Pair] {
        &self.expired
    }

    /// The table closed the installed pair `a` ↔ `b` (either orientation)
    /// because it idled out: it is remembered as expired, not open. Returns
    /// whether this set held it.
    pub fn expire(&mut self, a: SocketAddr, b: SocketAddr) -> bool {
        let Some(i) = self
            .installed
            .iter()
            .position(|p| (p.a, p.b) == (a, b) || (p.a, p.b) == (b, a))
        else {
            return false;
        };
        let p = self.installed.remove(i);
        self.held.retain(|h| *h != p);
        if !self.expired.contains(&p) {
            self.expired.push(p);
        }
        true
    }

    /// Opens every expired pair again (RTSP `PLAY`).
    pub fn reopen_expired(&mut self, owner: &Owner, ctx: &mut Ctx<'_>) {
        for p in std::mem::take(&mut self.expired) {
            ctx.counters.pairs_reopened += 1;
            open_pair(owner, &p, false, ctx);
            self.installed.push(p);
        }
    }

    /// Makes the open pairs follow `candidates`: closes pairs no longer asked
    /// for (with `cause`), then opens new acceptable ones while fewer than
    /// `cap` are open. Pairs already open are never displaced by new ones.
    /// A refusal is reported once for as long as the pair keeps being asked
    /// for, so repeated signaling does not repeat it. Expired pairs still
    /// asked for open again only when `reopen` (an offer/answer exchange
    /// completed). A kept pair whose hold state changed keeps its flows and
    /// only gets its idle timeout changed ([`super::Intent::Retime`]).
    pub fn reconcile(
        &mut self,
        owner: &Owner,
        candidates: &[Candidate],
        cap: usize,
        cause: CloseCause,
        reopen: bool,
        ctx: &mut Ctx<'_>,
    ) {
        let mut wanted_set = HashSet::new();
        let mut wanted_hold = HashSet::new();
        let wanted: Vec<Pair> = candidates
            .iter()
            .filter(|c| c.verdict.is_ok() && wanted_set.insert(c.pair))
            .map(|c| {
                if c.hold {
                    wanted_hold.insert(c.pair);
                }
                c.pair
            })
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
        // Expired pairs no longer asked for are forgotten (the table closed
        // them already); those still asked for wait for an exchange.
        let mut expired: Vec<Pair> = self
            .expired
            .iter()
            .copied()
            .filter(|p| wanted_set.contains(p) && !next.contains(p))
            .collect();
        let mut opens = Vec::new();
        if reopen {
            for p in expired.drain(..) {
                if next.len() < cap {
                    ctx.counters.pairs_reopened += 1;
                    next.push(p);
                    opens.push(p);
                }
            }
        }
        for p in wanted {
            if next.contains(&p) || expired.contains(&p) {
                continue;
            }
            if next.len() + expired.len() < cap {
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
        // Hold changes of kept pairs: the same flows, another idle timeout.
        for p in &next[..kept] {
            let hold = wanted_hold.contains(p);
            if hold != self.held.contains(p) {
                ctx.retime(owner, p, hold);
            }
        }
        for p in &opens {
            open_pair(owner, p, wanted_hold.contains(p), ctx);
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
        self.held = next
            .iter()
            .copied()
            .filter(|p| wanted_hold.contains(p))
            .collect();
        self.installed = next;
        self.expired = expired;
        self.refused = refused;
    }

    /// Closes every open pair (and forgets the expired ones).
    pub fn close_all(&mut self, owner: &Owner, cause: CloseCause, ctx: &mut Ctx<'_>) {
        for p in self.installed.drain(..) {
            ctx.close_pair(owner, &p, cause);
        }
        self.held.clear();
        self.expired.clear();
        self.refused.clear();
    }
}

/// Emits the open (or latch) of `p`.
fn open_pair(owner: &Owner, p: &Pair, hold: bool, ctx: &mut Ctx<'_>) {
    match p.latch {
        Some(l) => ctx.latch(owner, p.a, p.b, l, hold),
        None => ctx.open(owner, p.a, p.b, hold),
    }
}
