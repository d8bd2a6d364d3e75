//! Call state: turns observed SIP and RTSP signaling into pinhole intents.
//!
//! Pure state like the pinhole table: no kernel, no sockets, no clock. The
//! controller feeds parsed messages ([`SipEvent`], [`RtspEvent`]) with the
//! current time (`now`, nanoseconds of CLOCK_MONOTONIC), calls
//! [`Calls::tick`] at [`Calls::next_deadline`] (or periodically) for deferred
//! closes, and executes the returned [`Intent`]s against the pinhole table.
//! [`SipEvent::from_message`] and [`RtspEvent::from_message`] build the events
//! from the parsers' messages ([`crate::signaling`]).
//!
//! Every intent names one symmetric pair: a media stream yields an RTP pair
//! and, unless both sides multiplex RTCP (RFC 5761), an RTCP pair. Within one
//! owner each pair is opened at most once and closed at most once, so
//! retransmitted or twice-observed messages produce nothing new. Two owners
//! may name the same pair; the table decides how to share it.

mod adapt;
mod api;
mod pairs;
mod policy;
mod rtsp_sessions;
mod sip_calls;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::ser::{Serialize, SerializeMap, Serializer};

pub use adapt::media_of;
pub use api::{check_source, ApiError, ApiSource, CallInfo, CallState, StreamInfo};
pub use pairs::Latch;
pub use policy::CallConfig;
pub use rtsp_sessions::{PortPair, RtspEvent, RtspMethod, RtspStart, RtspTransport};
pub use sip_calls::{Media, SipEvent, SipMethod, SipStart};

use rtsp_sessions::RtspSessions;
use sip_calls::SipCalls;

/// A SIP call: the Call-ID and the caller's From-tag (shared by all forks).
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct CallKey {
    pub call_id: String,
    pub caller_tag: String,
}

/// An RTSP session: the server's signaling address and its Session id.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct SessionKey {
    pub server: SocketAddr,
    pub session: String,
}

/// Who asked for a pinhole.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    Sip(CallKey),
    Rtsp(SessionKey),
}

impl Owner {
    /// The owner a pinhole tag names: the inverse of [`Owner`]'s `Display`
    /// (`sip:<call-id>;from-tag=<tag>`, `rtsp:<server>;session=<id>`).
    /// Exact: a From-tag never contains `;`, nor a server address.
    pub fn parse(tag: &str) -> Option<Owner> {
        if let Some(rest) = tag.strip_prefix("sip:") {
            let (call_id, caller_tag) = rest.rsplit_once(";from-tag=")?;
            return Some(Owner::Sip(CallKey {
                call_id: call_id.to_string(),
                caller_tag: caller_tag.to_string(),
            }));
        }
        let rest = tag.strip_prefix("rtsp:")?;
        let (server, session) = rest.split_once(";session=")?;
        Some(Owner::Rtsp(SessionKey {
            server: server.parse().ok()?,
            session: session.to_string(),
        }))
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Sip(k) => write!(f, "sip:{};from-tag={}", k.call_id, k.caller_tag),
            Owner::Rtsp(k) => write!(f, "rtsp:{};session={}", k.server, k.session),
        }
    }
}

/// One end of a pair: `a` (the caller's, the client's) or `b`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Side {
    A,
    B,
}

/// What the controller should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Open the symmetric pair `a` ↔ `b` (flows a→b and b→a). For SIP `a` is
    /// the caller's side, for RTSP the client's.
    Open {
        owner: Owner,
        a: SocketAddr,
        b: SocketAddr,
        /// [`CallConfig::idle_timeout`], or [`CallConfig::hold_timeout`]
        /// for a stream on hold; zero = never.
        idle_timeout: Duration,
    },
    /// Change the idle timeout of a pair this owner opened (or latched)
    /// earlier, in place: its flows stay in the map (a stream going on or
    /// off hold).
    Retime {
        owner: Owner,
        a: SocketAddr,
        b: SocketAddr,
        idle_timeout: Duration,
    },
    /// Open the pair `a` ↔ `b` by latching ([`CallConfig::latching`]): the
    /// `side` end announced an address its packets will not come from (it
    /// is behind NAT). Arm a half-open pinhole that the first packet from
    /// `from` (that end's signaling address, any port) to the other end
    /// within `window` completes into the exact pair (packet source ↔ the
    /// other end); nothing else opens it. Closed like an opened pair, by an
    /// [`Intent::Close`] naming the same `a` and `b`.
    Latch {
        owner: Owner,
        a: SocketAddr,
        b: SocketAddr,
        side: Side,
        from: IpAddr,
        /// [`CallConfig::latching`], or for a provisional pair
        /// [`CallConfig::setup_timeout`].
        window: Duration,
        /// As for [`Intent::Open`].
        idle_timeout: Duration,
        /// A provisional pair ([`CallConfig::pre_answer`]): the `side` end
        /// is `from:0`, unknown until the answer; the pair the latch makes
        /// holds only until the answer, which opens what it justifies
        /// before this pair's [`Intent::Close`].
        pre_answer: bool,
    },
    /// Close a pair this owner opened (or latched) earlier (same `a` and `b`).
    Close {
        owner: Owner,
        a: SocketAddr,
        b: SocketAddr,
        cause: CloseCause,
    },
    /// Something was not opened. Already counted in [`Counters::refused`];
    /// for logging (rate-limited) only.
    Refused {
        owner: Option<Owner>,
        reason: Refusal,
        pair: Option<(SocketAddr, SocketAddr)>,
    },
}

/// Why a call, a session or a pair was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// Neither end of the signaling is in `trusted_signaling`.
    UntrustedSignaling,
    /// A media address differs from the address of the signaling peer that
    /// announced it and is not in `media_relay` (`sip_direct_media`).
    ThirdPartyMedia,
    /// The two ends of a stream are of different address families.
    FamilyMismatch,
    /// A media address cannot carry a pinhole (multicast, broadcast, zone id,
    /// or both ends equal).
    UnusableEndpoint,
    /// The call or session already holds `max_pairs_per_call` pairs.
    PerCallCap,
    /// The signaling peer already has `max_calls_per_peer` calls or sessions.
    PerPeerCap,
    /// `max_calls` calls, sessions or pending SETUPs are tracked already.
    TableFull,
    /// The call already has `max_dialogs_per_call` early dialogs.
    DialogCap,
    /// A successful RTSP SETUP response without Session id or UDP ports.
    IncompleteSetup,
}

impl Refusal {
    pub const ALL: [Refusal; 9] = [
        Refusal::UntrustedSignaling,
        Refusal::ThirdPartyMedia,
        Refusal::FamilyMismatch,
        Refusal::UnusableEndpoint,
        Refusal::PerCallCap,
        Refusal::PerPeerCap,
        Refusal::TableFull,
        Refusal::DialogCap,
        Refusal::IncompleteSetup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Refusal::UntrustedSignaling => "untrusted_signaling",
            Refusal::ThirdPartyMedia => "third_party_media",
            Refusal::FamilyMismatch => "family_mismatch",
            Refusal::UnusableEndpoint => "unusable_endpoint",
            Refusal::PerCallCap => "per_call_cap",
            Refusal::PerPeerCap => "per_peer_cap",
            Refusal::TableFull => "table_full",
            Refusal::DialogCap => "dialog_cap",
            Refusal::IncompleteSetup => "incomplete_setup",
        }
    }
}

/// Why a pair, a call or a session closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CloseCause {
    /// BYE seen and its grace elapsed.
    Bye,
    /// CANCEL of an unanswered INVITE.
    Cancel,
    /// Final error response (≥ 300) to the initial INVITE.
    Failed,
    /// `max_lifetime` reached.
    Lifetime,
    /// Setup not completed within `setup_timeout`.
    SetupTimeout,
    /// Pair only: replaced by a new offer/answer.
    Renegotiated,
    /// Pair only: its early dialog lost to another fork's 2xx.
    ForkLost,
    /// RTSP TEARDOWN.
    Teardown,
    /// RTSP session timeout without keep-alive.
    SessionTimeout,
}

impl CloseCause {
    pub const ALL: [CloseCause; 9] = [
        CloseCause::Bye,
        CloseCause::Cancel,
        CloseCause::Failed,
        CloseCause::Lifetime,
        CloseCause::SetupTimeout,
        CloseCause::Renegotiated,
        CloseCause::ForkLost,
        CloseCause::Teardown,
        CloseCause::SessionTimeout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CloseCause::Bye => "bye",
            CloseCause::Cancel => "cancel",
            CloseCause::Failed => "failed",
            CloseCause::Lifetime => "lifetime",
            CloseCause::SetupTimeout => "setup_timeout",
            CloseCause::Renegotiated => "renegotiated",
            CloseCause::ForkLost => "fork_lost",
            CloseCause::Teardown => "teardown",
            CloseCause::SessionTimeout => "session_timeout",
        }
    }
}

/// Counters of the call-state layer. Serializes as a JSON object of names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Refusals, indexed by [`Refusal`] (see [`Counters::refused`]).
    pub refused: [u64; Refusal::ALL.len()],
    /// SIP calls that started being tracked.
    pub calls_opened: u64,
    /// RTSP sessions that started being tracked.
    pub sessions_opened: u64,
    /// Calls and sessions that ended, by cause.
    pub calls_closed: [u64; CloseCause::ALL.len()],
    /// Open intents emitted, latching ones included (provisional ones not:
    /// see `pairs_pre_answer`).
    pub pairs_opened: u64,
    /// Of those, [`Intent::Latch`]es (media behind NAT, latching on).
    pub pairs_latching: u64,
    /// Provisional pairs of offers not answered yet
    /// ([`CallConfig::pre_answer`]) armed, and closed again (by the answer or
    /// the end of the call): kept apart from `pairs_opened` and
    /// `pairs_closed`, which count what the signaling justified.
    pub pairs_pre_answer: u64,
    pub pairs_pre_answer_closed: u64,
    /// Close intents emitted, by cause.
    pub pairs_closed: [u64; CloseCause::ALL.len()],
    /// SIP messages that matched no tracked call or dialog.
    pub sip_unmatched: u64,
    /// RTSP messages that matched no pending SETUP or tracked session.
    pub rtsp_unmatched: u64,
    /// RTSP SETUPs answered with interleaved (TCP) transport: no pinhole.
    pub rtsp_interleaved: u64,
    /// Pairs the pinhole table closed for idleness, by call layer
    /// (observed SIP, ng, RTSP): remembered as expired and opened again by
    /// the next offer/answer (or `PLAY`).
    pub pairs_expired_sip: u64,
    pub pairs_expired_ng: u64,
    pub pairs_expired_rtsp: u64,
    /// Expired pairs opened again.
    pub pairs_reopened: u64,
    /// Open pairs whose idle timeout changed in place (hold, resume).
    pub pairs_retimed: u64,
    /// Calls taken over from in-dialog signaling (a re-INVITE or UPDATE of
    /// a dialog no tracked call knows).
    pub calls_picked_up: u64,
    /// RTSP session timeouts deferred because the client's media (RTCP
    /// receiver reports) kept flowing.
    pub rtsp_media_keepalive: u64,
}

impl Counters {
    pub fn refused(&self, reason: Refusal) -> u64 {
        self.refused[reason as usize]
    }

    pub fn calls_closed(&self, cause: CloseCause) -> u64 {
        self.calls_closed[cause as usize]
    }

    pub fn pairs_closed(&self, cause: CloseCause) -> u64 {
        self.pairs_closed[cause as usize]
    }
}

struct Named<'a, T: Copy + 'static> {
    all: &'static [T],
    name: fn(T) -> &'static str,
    values: &'a [u64],
}

impl<T: Copy> Serialize for Named<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.all.len()))?;
        for (item, value) in self.all.iter().zip(self.values) {
            m.serialize_entry((self.name)(*item), value)?;
        }
        m.end()
    }
}

impl Serialize for Counters {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let refused = Named {
            all: &Refusal::ALL,
            name: Refusal::name,
            values: &self.refused,
        };
        let calls_closed = Named {
            all: &CloseCause::ALL,
            name: CloseCause::name,
            values: &self.calls_closed,
        };
        let pairs_closed = Named {
            all: &CloseCause::ALL,
            name: CloseCause::name,
            values: &self.pairs_closed,
        };
        let expired = [
            ("sip", self.pairs_expired_sip),
            ("ng", self.pairs_expired_ng),
            ("rtsp", self.pairs_expired_rtsp),
        ];
        let expired: std::collections::BTreeMap<&str, u64> = expired.into_iter().collect();
        let mut m = s.serialize_map(Some(18))?;
        m.serialize_entry("calls_opened", &self.calls_opened)?;
        m.serialize_entry("sessions_opened", &self.sessions_opened)?;
        m.serialize_entry("calls_closed", &calls_closed)?;
        m.serialize_entry("pairs_opened", &self.pairs_opened)?;
        m.serialize_entry("pairs_latching", &self.pairs_latching)?;
        m.serialize_entry("pairs_pre_answer", &self.pairs_pre_answer)?;
        m.serialize_entry("pairs_pre_answer_closed", &self.pairs_pre_answer_closed)?;
        m.serialize_entry("pairs_closed", &pairs_closed)?;
        m.serialize_entry("refused", &refused)?;
        m.serialize_entry("sip_unmatched", &self.sip_unmatched)?;
        m.serialize_entry("rtsp_unmatched", &self.rtsp_unmatched)?;
        m.serialize_entry("rtsp_interleaved", &self.rtsp_interleaved)?;
        m.serialize_entry("pairs_expired", &expired)?;
        m.serialize_entry("pairs_reopened", &self.pairs_reopened)?;
        m.serialize_entry("pairs_retimed", &self.pairs_retimed)?;
        m.serialize_entry("calls_picked_up", &self.calls_picked_up)?;
        m.serialize_entry("rtsp_media_keepalive", &self.rtsp_media_keepalive)?;
        m.end()
    }
}

/// What the trackers need while handling one event or tick.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a CallConfig,
    pub counters: &'a mut Counters,
    pub out: &'a mut Vec<Intent>,
    pub now: u64,
}

impl Ctx<'_> {
    /// The idle timeout of a pair on hold or not.
    fn idle(&self, hold: bool) -> Duration {
        if hold {
            self.cfg.hold_timeout
        } else {
            self.cfg.idle_timeout
        }
    }

    fn open(&mut self, owner: &Owner, a: SocketAddr, b: SocketAddr, hold: bool) {
        self.counters.pairs_opened += 1;
        self.out.push(Intent::Open {
            owner: owner.clone(),
            a,
            b,
            idle_timeout: self.idle(hold),
        });
    }

    fn retime(&mut self, owner: &Owner, pair: &pairs::Pair, hold: bool) {
        self.counters.pairs_retimed += 1;
        self.out.push(Intent::Retime {
            owner: owner.clone(),
            a: pair.a,
            b: pair.b,
            idle_timeout: self.idle(hold),
        });
    }

    fn latch(&mut self, owner: &Owner, a: SocketAddr, b: SocketAddr, latch: Latch, hold: bool) {
        let window = if latch.pre_answer {
            self.counters.pairs_pre_answer += 1;
            self.cfg.setup_timeout
        } else {
            self.counters.pairs_opened += 1;
            self.counters.pairs_latching += 1;
            self.cfg.latching
        };
        self.out.push(Intent::Latch {
            owner: owner.clone(),
            a,
            b,
            side: latch.side,
            from: latch.from,
            window,
            idle_timeout: self.idle(hold),
            pre_answer: latch.pre_answer,
        });
    }

    /// Closes `pair`, counted as provisional or by `cause`.
    fn close_pair(&mut self, owner: &Owner, pair: &pairs::Pair, cause: CloseCause) {
        if pair.latch.is_some_and(|l| l.pre_answer) {
            self.counters.pairs_pre_answer_closed += 1;
            self.out.push(Intent::Close {
                owner: owner.clone(),
                a: pair.a,
                b: pair.b,
                cause,
            });
        } else {
            self.close(owner, pair.a, pair.b, cause);
        }
    }

    fn close(&mut self, owner: &Owner, a: SocketAddr, b: SocketAddr, cause: CloseCause) {
        self.counters.pairs_closed[cause as usize] += 1;
        self.out.push(Intent::Close {
            owner: owner.clone(),
            a,
            b,
            cause,
        });
    }

    fn refuse(
        &mut self,
        owner: Option<&Owner>,
        reason: Refusal,
        pair: Option<(SocketAddr, SocketAddr)>,
    ) {
        self.counters.refused[reason as usize] += 1;
        self.out.push(Intent::Refused {
            owner: owner.cloned(),
            reason,
            pair,
        });
    }
}

/// `now + d`, saturating.
pub(crate) fn after(now: u64, d: Duration) -> u64 {
    now.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// No deadline: the default of the deadlines a snapshot does not keep.
pub(crate) fn never() -> u64 {
    u64::MAX
}

/// `now + d`, or never (`u64::MAX`) when `d` is zero (a disabled limit).
pub(crate) fn limit(now: u64, d: Duration) -> u64 {
    if d.is_zero() {
        u64::MAX
    } else {
        after(now, d)
    }
}

/// The call state as the state file keeps it (see [`Calls::snapshot`]):
/// every SIP call with its dialogs, negotiated media and open pairs, and
/// every RTSP session. Times are CLOCK_MONOTONIC nanoseconds, so a snapshot
/// is only meaningful within the boot that wrote it.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CallsSnapshot {
    sip: sip_calls::SipSnapshot,
    rtsp: rtsp_sessions::RtspSnapshot,
}

/// SIP calls and RTSP sessions, with their shared policy and counters.
#[derive(Debug)]
pub struct Calls {
    cfg: CallConfig,
    counters: Counters,
    sip: SipCalls,
    rtsp: RtspSessions,
}

impl Calls {
    pub fn new(cfg: CallConfig) -> Self {
        Calls {
            cfg,
            counters: Counters::default(),
            sip: SipCalls::default(),
            rtsp: RtspSessions::default(),
        }
    }

    pub fn config(&self) -> &CallConfig {
        &self.cfg
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Calls tracked now (any phase, incl. BYE grace).
    pub fn active_calls(&self) -> usize {
        self.sip.len()
    }

    /// RTSP sessions tracked now.
    pub fn active_sessions(&self) -> usize {
        self.rtsp.len()
    }

    /// Runs `step` on the SIP calls and RTSP sessions with a context at
    /// `now`; returns the intents it produced.
    fn with_ctx(
        &mut self,
        now: u64,
        step: impl FnOnce(&mut SipCalls, &mut RtspSessions, &mut Ctx<'_>),
    ) -> Vec<Intent> {
        let mut out = Vec::new();
        let mut ctx = Ctx {
            cfg: &self.cfg,
            counters: &mut self.counters,
            out: &mut out,
            now,
        };
        step(&mut self.sip, &mut self.rtsp, &mut ctx);
        out
    }

    /// One observed SIP message.
    pub fn on_sip(&mut self, ev: &SipEvent, now: u64) -> Vec<Intent> {
        self.with_ctx(now, |sip, _, ctx| sip.on_event(ev, ctx))
    }

    /// One observed RTSP message.
    pub fn on_rtsp(&mut self, ev: &RtspEvent, now: u64) -> Vec<Intent> {
        self.with_ctx(now, |_, rtsp, ctx| rtsp.on_event(ev, ctx))
    }

    /// Whether a call with this Call-ID is tracked (any phase).
    pub fn has_call_id(&self, call_id: &str) -> bool {
        self.sip.has_call_id(call_id)
    }

    /// Whether the RTSP session is tracked.
    pub fn has_session(&self, key: &SessionKey) -> bool {
        self.rtsp.has(key)
    }

    /// Ends the calls with this Call-ID (a BYE, CANCEL or ng delete seen
    /// on another node of an HA pair), closing their pairs now.
    pub fn end_call_id(&mut self, call_id: &str, now: u64) -> Vec<Intent> {
        self.with_ctx(now, |sip, _, ctx| sip.end_call_id(call_id, ctx))
    }

    /// Ends an RTSP session (a TEARDOWN seen on another node).
    pub fn end_session(&mut self, key: &SessionKey, now: u64) -> Vec<Intent> {
        self.with_ctx(now, |_, rtsp, ctx| rtsp.end(key, ctx))
    }

    /// Runs every timer due at `now`: BYE grace, max lifetime, setup and
    /// RTSP session timeouts, and forgetting stale state. Knows no media
    /// activity (see [`tick_with_activity`](Self::tick_with_activity)).
    pub fn tick(&mut self, now: u64) -> Vec<Intent> {
        self.tick_with_activity(now, &mut |_, _, _| None)
    }

    /// [`tick`](Self::tick), with `last_seen(owner, src, dst)` telling when
    /// the flow `src → dst` of a pair `owner` signaled last carried a
    /// packet (CLOCK_MONOTONIC ns, `None`: never or unknown). An RTSP
    /// session whose client keeps sending media (RTCP receiver reports)
    /// does not time out.
    pub fn tick_with_activity(
        &mut self,
        now: u64,
        last_seen: &mut dyn FnMut(&Owner, SocketAddr, SocketAddr) -> Option<u64>,
    ) -> Vec<Intent> {
        let mut out = Vec::new();
        let mut ctx = Ctx {
            cfg: &self.cfg,
            counters: &mut self.counters,
            out: &mut out,
            now,
        };
        self.sip.tick(&mut ctx);
        self.rtsp.tick(&mut ctx, last_seen);
        out
    }

    /// The pinhole table closed the pair `a` ↔ `b` of `owner` because it
    /// idled out. The call or session remembers the pair as expired (not
    /// open) and opens it again when the next offer/answer (or RTSP
    /// `PLAY`) names it. Returns whether `owner` held the pair.
    pub fn on_pair_expired(&mut self, owner: &Owner, a: SocketAddr, b: SocketAddr) -> bool {
        let found = match owner {
            Owner::Sip(key) => self.sip.on_pair_expired(key, a, b),
            Owner::Rtsp(key) => self.rtsp.on_pair_expired(key, a, b).then_some(false),
        };
        match (owner, found) {
            (Owner::Sip(_), Some(true)) => self.counters.pairs_expired_ng += 1,
            (Owner::Sip(_), Some(false)) => self.counters.pairs_expired_sip += 1,
            (Owner::Rtsp(_), Some(_)) => self.counters.pairs_expired_rtsp += 1,
            (_, None) => {}
        }
        found.is_some()
    }

    /// The state a restarted daemon needs to go on following the calls and
    /// sessions (not the counters, nor SETUPs awaiting their response).
    pub fn snapshot(&self) -> CallsSnapshot {
        CallsSnapshot {
            sip: self.sip.snapshot(),
            rtsp: self.rtsp.snapshot(),
        }
    }

    /// Replaces the calls and sessions with a snapshot's. Their timers run
    /// from the times the snapshot holds (a BYE grace or lifetime that ended
    /// meanwhile fires on the next [`tick`](Self::tick)).
    pub fn restore(&mut self, snapshot: CallsSnapshot) {
        self.sip.restore(snapshot.sip, &self.cfg);
        self.rtsp.restore(snapshot.rtsp);
    }

    /// The earliest time at which [`tick`](Self::tick) has work, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        match (
            self.sip.next_deadline(),
            self.rtsp.next_deadline(self.cfg.setup_timeout),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
