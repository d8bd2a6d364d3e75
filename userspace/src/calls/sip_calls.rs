//! SIP calls: offer/answer tracking per dialog (RFC 3261, 3262, 3264, 3311,
//! 6337) and the pairs each call's negotiated media justify.
//!
//! A call is keyed by Call-ID and the caller's From-tag and is created only by
//! an INVITE without To-tag. Responses to it create one early dialog per
//! To-tag (forking); the first 2xx confirms its dialog and drops the others.
//! Each dialog keeps the media of its last completed offer/answer exchange;
//! the call's pairs are the union over its dialogs, stream by stream
//! (m-line *i* of the offer with m-line *i* of the answer).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use super::pairs::{Candidate, PairSet};
use super::policy::canonical;
use super::{after, limit, CallConfig, CallKey, CloseCause, Ctx, Owner, Refusal};

/// SIP methods the call state distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SipMethod {
    Invite,
    Ack,
    Bye,
    Cancel,
    Prack,
    Update,
    /// Any other method (OPTIONS, INFO, REFER, …): never changes media.
    Other,
}

/// The start line of a SIP message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SipStart {
    Request(SipMethod),
    Response(u16),
}

/// One `m=` line of an SDP body, as far as pinholes are concerned.
///
/// The `a=sendonly`/`recvonly`/`inactive` direction is deliberately absent:
/// a held stream keeps its pinholes (RTCP keeps flowing), so direction never
/// changes what is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Media {
    /// Where this side receives RTP: the effective `c=` address and the
    /// `m=` port. `None` when the port is 0 (stream rejected or disabled) or
    /// no address is known.
    pub rtp: Option<SocketAddr>,
    /// Where this side receives RTCP when RTCP is not multiplexed: the
    /// `a=rtcp` port and address (RFC 3605), else RTP port + 1 on the RTP
    /// address. `None` when there is none (port 65535).
    pub rtcp: Option<SocketAddr>,
    /// `a=rtcp-mux` present. RTCP shares the RTP pair only when both sides
    /// say so (RFC 5761 §5.1.1); otherwise `rtcp` is used.
    pub rtcp_mux: bool,
    /// RFC 2543 hold: the connection address is `0.0.0.0` (or `::`) with a
    /// non-zero port. The stream keeps its previous endpoint; `rtp` and
    /// `rtcp` are ignored.
    pub hold: bool,
}

/// One observed SIP message, reduced to what the call state needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipEvent {
    /// Sender of the packet (IP source, transport source port).
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub start: SipStart,
    pub call_id: String,
    /// From-tag; empty when absent.
    pub from_tag: String,
    pub to_tag: Option<String>,
    pub cseq: u32,
    pub cseq_method: SipMethod,
    /// The SDP body (its `m=` lines in order), if the message carries one.
    pub sdp: Option<Vec<Media>>,
}

impl SipEvent {
    fn is_request(&self) -> bool {
        matches!(self.start, SipStart::Request(_))
    }
}

/// A transaction as far as offer/answer goes: CSeq number and method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Txn {
    cseq: u32,
    method: SipMethod,
}

/// An SDP offer.
#[derive(Clone, Debug)]
struct Offer {
    txn: Txn,
    by_caller: bool,
    /// Carried by a response (INVITE without SDP): answered by ACK or PRACK.
    in_response: bool,
    media: Vec<Media>,
    /// IP source of the message that carried it.
    origin: IpAddr,
    at: u64,
}

/// The last completed offer/answer exchange of a dialog, kept to recognise
/// repeats of its messages.
#[derive(Clone, Debug)]
struct Exchange {
    offer: Offer,
    answer_txn: Txn,
    answer_in_response: bool,
}

/// One side's receive endpoints for one stream, with the signaling peer that
/// announced them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Endpoint {
    rtp: Option<SocketAddr>,
    rtcp: Option<SocketAddr>,
    rtcp_mux: bool,
    origin: IpAddr,
}

/// The media a dialog negotiated, per side, stream by stream.
#[derive(Clone, Debug, Default)]
struct Negotiated {
    caller: Vec<Endpoint>,
    callee: Vec<Endpoint>,
}

#[derive(Clone, Debug)]
struct Dialog {
    /// The callee's tag (To-tag of responses to the caller).
    tag: String,
    active: Option<Negotiated>,
    pending: Option<Offer>,
    last: Option<Exchange>,
}

impl Dialog {
    fn new(tag: String, pending: Option<Offer>) -> Self {
        Dialog {
            tag,
            active: None,
            pending,
            last: None,
        }
    }

    /// Feeds one message's SDP (or final error) to the dialog's offer/answer
    /// state. `sender_is_caller` tells which side sent the message.
    fn offer_answer(&mut self, ev: &SipEvent, sender_is_caller: bool, now: u64) {
        let txn = Txn {
            cseq: ev.cseq,
            method: ev.cseq_method,
        };
        let is_response = !ev.is_request();
        if let SipStart::Response(code) = ev.start {
            if code >= 300 {
                // The offer of a failed transaction is void (RFC 3261 §14.1).
                if self
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.txn == txn && !p.in_response)
                {
                    self.pending = None;
                }
                return;
            }
            if code < 101 {
                return;
            }
        }
        let Some(media) = &ev.sdp else {
            return;
        };
        let origin = ev.src.ip();

        // A repeat of the message that answered the last exchange.
        if let Some(x) = &self.last {
            if x.answer_txn == txn
                && x.answer_in_response == is_response
                && x.offer.by_caller != sender_is_caller
            {
                let offer = x.offer.clone();
                self.commit(&offer, media, origin);
                return;
            }
        }
        // The answer to the pending offer.
        if let Some(p) = &self.pending {
            let answers = p.by_caller != sender_is_caller
                && if p.in_response {
                    match ev.start {
                        SipStart::Request(SipMethod::Ack) => ev.cseq == p.txn.cseq,
                        SipStart::Request(SipMethod::Prack) => true,
                        _ => false,
                    }
                } else {
                    is_response && txn == p.txn
                };
            if answers {
                let offer = self.pending.take().expect("checked above");
                self.commit(&offer, media, origin);
                self.last = Some(Exchange {
                    offer,
                    answer_txn: txn,
                    answer_in_response: is_response,
                });
                return;
            }
        }
        // A repeat of the offer of the last exchange (e.g. the 2xx after a
        // reliable 18x that carried the same offer, or a retransmission).
        if let Some(x) = &self.last {
            if x.offer.txn == txn
                && x.offer.in_response == is_response
                && x.offer.by_caller == sender_is_caller
            {
                return;
            }
        }
        let may_offer = match ev.start {
            SipStart::Request(m) => {
                matches!(m, SipMethod::Invite | SipMethod::Update | SipMethod::Prack)
            }
            SipStart::Response(_) => ev.cseq_method == SipMethod::Invite,
        };
        if !may_offer {
            return;
        }
        let at = match &self.pending {
            Some(p)
                if p.txn == txn
                    && p.in_response == is_response
                    && p.by_caller == sender_is_caller =>
            {
                p.at
            }
            _ => now,
        };
        self.pending = Some(Offer {
            txn,
            by_caller: sender_is_caller,
            in_response: is_response,
            media: media.clone(),
            origin,
            at,
        });
    }

    /// Makes `offer` + `answer` the dialog's media.
    fn commit(&mut self, offer: &Offer, answer: &[Media], answer_origin: IpAddr) {
        let prev = self.active.take().unwrap_or_default();
        let (caller, caller_origin, callee, callee_origin) = if offer.by_caller {
            (&offer.media[..], offer.origin, answer, answer_origin)
        } else {
            (answer, answer_origin, &offer.media[..], offer.origin)
        };
        self.active = Some(Negotiated {
            caller: resolve(caller, caller_origin, &prev.caller),
            callee: resolve(callee, callee_origin, &prev.callee),
        });
    }

    fn candidates(&self, cfg: &CallConfig, out: &mut Vec<Candidate>) {
        let Some(n) = &self.active else {
            return;
        };
        for (x, y) in n.caller.iter().zip(&n.callee) {
            let (Some(xr), Some(yr)) = (x.rtp, y.rtp) else {
                continue;
            };
            out.push(Candidate::check(cfg, xr, x.origin, yr, y.origin));
            if x.rtcp_mux && y.rtcp_mux {
                continue;
            }
            if let (Some(xc), Some(yc)) = (x.rtcp, y.rtcp) {
                out.push(Candidate::check(cfg, xc, x.origin, yc, y.origin));
            }
        }
    }
}

/// One side's new media, with held streams (`c=0.0.0.0`) keeping their
/// previous endpoint.
fn resolve(media: &[Media], origin: IpAddr, prev: &[Endpoint]) -> Vec<Endpoint> {
    let rejected = Endpoint {
        rtp: None,
        rtcp: None,
        rtcp_mux: false,
        origin,
    };
    media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let port_zero = m.rtp.is_some_and(|a| a.port() == 0);
            let hold = !port_zero && (m.hold || m.rtp.is_some_and(|a| a.ip().is_unspecified()));
            if hold {
                return prev.get(i).copied().unwrap_or(rejected);
            }
            if port_zero {
                return rejected;
            }
            Endpoint {
                rtp: m.rtp.map(canonical),
                rtcp: m
                    .rtcp
                    .filter(|a| a.port() != 0 && !a.ip().is_unspecified())
                    .map(canonical),
                rtcp_mux: m.rtcp_mux,
                origin,
            }
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// INVITE sent, no 2xx yet.
    Calling,
    /// 2xx seen from dialog `winner`.
    Confirmed { winner: String },
    /// BYE seen; pairs close at `close_at`.
    Ending { close_at: u64 },
}

#[derive(Clone, Debug)]
struct Call {
    initial_cseq: u32,
    /// The initial INVITE's offer, handed to every early dialog.
    initial_offer: Option<(Vec<Media>, IpAddr)>,
    /// Source IP of the initial INVITE (for the per-peer cap).
    peer: IpAddr,
    created: u64,
    /// Last message while calling (setup timeout counts from here).
    last_progress: u64,
    phase: Phase,
    dialogs: Vec<Dialog>,
    pairs: PairSet,
    /// Scheduled in `SipCalls::timers` unless `u64::MAX`.
    deadline: u64,
}

impl Call {
    fn next_deadline(&self, cfg: &CallConfig) -> u64 {
        let mut t = limit(self.created, cfg.max_lifetime);
        match self.phase {
            Phase::Ending { close_at } => t = t.min(close_at),
            Phase::Calling => t = t.min(limit(self.last_progress, cfg.setup_timeout)),
            Phase::Confirmed { .. } => {}
        }
        for d in &self.dialogs {
            if let Some(p) = &d.pending {
                t = t.min(limit(p.at, cfg.setup_timeout));
            }
        }
        t
    }

    fn dialog_mut(&mut self, tag: &str) -> Option<&mut Dialog> {
        self.dialogs.iter_mut().find(|d| d.tag == tag)
    }

    fn reconcile(&mut self, owner: &Owner, cause: CloseCause, ctx: &mut Ctx<'_>) {
        let mut candidates = Vec::new();
        for d in &self.dialogs {
            d.candidates(ctx.cfg, &mut candidates);
        }
        self.pairs
            .reconcile(owner, &candidates, ctx.cfg.max_pairs_per_call, cause, ctx);
    }
}

/// Closed calls, remembered for a while with their initial CSeq so that a
/// late copy of the INVITE does not start them again.
#[derive(Debug, Default)]
struct Tombstones {
    map: HashMap<CallKey, (u32, u64)>,
    order: VecDeque<(u64, CallKey)>,
}

impl Tombstones {
    fn insert(&mut self, key: CallKey, cseq: u32, until: u64, cap: usize) {
        if cap == 0 {
            return;
        }
        while self.map.len() >= cap {
            let Some((t, k)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&k).is_some_and(|&(_, u)| u == t) {
                self.map.remove(&k);
            }
        }
        self.map.insert(key.clone(), (cseq, until));
        self.order.push_back((until, key));
    }

    fn blocks(&self, key: &CallKey, cseq: u32, now: u64) -> bool {
        self.map
            .get(key)
            .is_some_and(|&(c, until)| cseq <= c && until > now)
    }

    fn expire(&mut self, now: u64) {
        while let Some((t, _)) = self.order.front() {
            if *t > now {
                break;
            }
            let (t, k) = self.order.pop_front().expect("front exists");
            if self.map.get(&k).is_some_and(|&(_, u)| u == t) {
                self.map.remove(&k);
            }
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        self.order.front().map(|(t, _)| *t)
    }
}

/// All tracked SIP calls.
#[derive(Debug, Default)]
pub(crate) struct SipCalls {
    calls: HashMap<CallKey, Call>,
    timers: BTreeSet<(u64, CallKey)>,
    peers: HashMap<IpAddr, usize>,
    tombstones: Tombstones,
}

impl SipCalls {
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn on_event(&mut self, ev: &SipEvent, ctx: &mut Ctx<'_>) {
        if !ctx.cfg.is_trusted(ev.src.ip(), ev.dst.ip()) {
            ctx.refuse(None, Refusal::UntrustedSignaling, None);
            return;
        }
        if ev.start == SipStart::Request(SipMethod::Invite) && ev.to_tag.is_none() {
            self.initial_invite(ev, ctx);
            return;
        }
        match self.lookup(ev) {
            Some((key, from_is_caller)) => self.in_call(key, from_is_caller, ev, ctx),
            None => ctx.counters.sip_unmatched += 1,
        }
    }

    /// The call `ev` belongs to, and whether its From header is the caller's.
    fn lookup(&self, ev: &SipEvent) -> Option<(CallKey, bool)> {
        let key = CallKey {
            call_id: ev.call_id.clone(),
            caller_tag: ev.from_tag.clone(),
        };
        if self.calls.contains_key(&key) {
            return Some((key, true));
        }
        let key = CallKey {
            call_id: ev.call_id.clone(),
            caller_tag: ev.to_tag.clone()?,
        };
        self.calls.contains_key(&key).then_some((key, false))
    }

    fn initial_invite(&mut self, ev: &SipEvent, ctx: &mut Ctx<'_>) {
        let key = CallKey {
            call_id: ev.call_id.clone(),
            caller_tag: ev.from_tag.clone(),
        };
        let owner = Owner::Sip(key.clone());
        let offer = ev.sdp.clone().map(|m| (m, ev.src.ip()));
        if let Some(call) = self.calls.get_mut(&key) {
            // A retransmission, a second observation, or (higher CSeq) the
            // INVITE repeated with credentials after a challenge we missed.
            if call.phase == Phase::Calling && ev.cseq > call.initial_cseq {
                call.initial_cseq = ev.cseq;
                call.initial_offer = offer;
                call.last_progress = ctx.now;
                call.dialogs.clear();
                call.reconcile(&owner, CloseCause::Renegotiated, ctx);
                self.reschedule(&key, ctx.cfg);
            }
            return;
        }
        if self.tombstones.blocks(&key, ev.cseq, ctx.now) {
            return;
        }
        if self.calls.len() >= ctx.cfg.max_calls {
            ctx.refuse(Some(&owner), Refusal::TableFull, None);
            return;
        }
        let peer = ev.src.ip();
        if self.peers.get(&peer).copied().unwrap_or(0) >= ctx.cfg.max_calls_per_peer {
            ctx.refuse(Some(&owner), Refusal::PerPeerCap, None);
            return;
        }
        *self.peers.entry(peer).or_insert(0) += 1;
        ctx.counters.calls_opened += 1;
        self.calls.insert(
            key.clone(),
            Call {
                initial_cseq: ev.cseq,
                initial_offer: offer,
                peer,
                created: ctx.now,
                last_progress: ctx.now,
                phase: Phase::Calling,
                dialogs: Vec::new(),
                pairs: PairSet::default(),
                deadline: u64::MAX,
            },
        );
        self.reschedule(&key, ctx.cfg);
    }

    fn in_call(&mut self, key: CallKey, from_is_caller: bool, ev: &SipEvent, ctx: &mut Ctx<'_>) {
        let owner = Owner::Sip(key.clone());
        let call = self.calls.get_mut(&key).expect("looked up");
        if matches!(call.phase, Phase::Ending { .. }) {
            return;
        }
        let calling = call.phase == Phase::Calling;
        if calling {
            call.last_progress = ctx.now;
        }
        let sender_is_caller = ev.is_request() == from_is_caller;
        // The callee's tag names the dialog.
        let tag = if from_is_caller {
            ev.to_tag.as_deref()
        } else {
            Some(ev.from_tag.as_str())
        };
        let mut end = None;
        match ev.start {
            SipStart::Request(SipMethod::Cancel) => {
                if calling && from_is_caller && ev.cseq == call.initial_cseq {
                    end = Some(CloseCause::Cancel);
                }
            }
            SipStart::Request(SipMethod::Bye) => {
                if tag.is_some_and(|t| call.dialogs.iter().any(|d| d.tag == t)) {
                    if ctx.cfg.bye_grace.is_zero() {
                        end = Some(CloseCause::Bye);
                    } else {
                        call.phase = Phase::Ending {
                            close_at: after(ctx.now, ctx.cfg.bye_grace),
                        };
                    }
                } else {
                    ctx.counters.sip_unmatched += 1;
                }
            }
            SipStart::Response(code)
                if from_is_caller
                    && ev.cseq_method == SipMethod::Invite
                    && ev.cseq == call.initial_cseq =>
            {
                if code >= 300 {
                    if calling {
                        end = Some(CloseCause::Failed);
                    }
                } else if code >= 101 {
                    match tag {
                        Some(tag) => Self::initial_response(call, &owner, tag, code, ev, ctx),
                        None => ctx.counters.sip_unmatched += 1,
                    }
                }
            }
            _ => match tag.and_then(|t| call.dialog_mut(t)) {
                Some(dialog) => {
                    dialog.offer_answer(ev, sender_is_caller, ctx.now);
                    call.reconcile(&owner, CloseCause::Renegotiated, ctx);
                }
                None => ctx.counters.sip_unmatched += 1,
            },
        }
        match end {
            Some(cause) => self.close(&key, cause, ctx),
            None => self.reschedule(&key, ctx.cfg),
        }
    }

    /// A 101–299 response to the initial INVITE from the dialog `tag`.
    fn initial_response(
        call: &mut Call,
        owner: &Owner,
        tag: &str,
        code: u16,
        ev: &SipEvent,
        ctx: &mut Ctx<'_>,
    ) {
        match &call.phase {
            Phase::Confirmed { winner } if winner != tag => {
                // A 2xx from a second fork: the caller will BYE it.
                ctx.counters.sip_unmatched += 1;
                return;
            }
            Phase::Calling if (200..300).contains(&code) => {
                call.dialogs.retain(|d| d.tag == tag);
                call.reconcile(owner, CloseCause::ForkLost, ctx);
                call.phase = Phase::Confirmed {
                    winner: tag.to_string(),
                };
            }
            _ => {}
        }
        if call.dialog_mut(tag).is_none() {
            if call.dialogs.len() >= ctx.cfg.max_dialogs_per_call {
                ctx.refuse(Some(owner), Refusal::DialogCap, None);
                return;
            }
            let pending = call.initial_offer.as_ref().map(|(media, origin)| Offer {
                txn: Txn {
                    cseq: call.initial_cseq,
                    method: SipMethod::Invite,
                },
                by_caller: true,
                in_response: false,
                media: media.clone(),
                origin: *origin,
                at: ctx.now,
            });
            call.dialogs.push(Dialog::new(tag.to_string(), pending));
        }
        let dialog = call.dialog_mut(tag).expect("present or just added");
        dialog.offer_answer(ev, false, ctx.now);
        call.reconcile(owner, CloseCause::Renegotiated, ctx);
    }

    fn close(&mut self, key: &CallKey, cause: CloseCause, ctx: &mut Ctx<'_>) {
        let Some(mut call) = self.calls.remove(key) else {
            return;
        };
        if call.deadline != u64::MAX {
            self.timers.remove(&(call.deadline, key.clone()));
        }
        call.pairs.close_all(&Owner::Sip(key.clone()), cause, ctx);
        ctx.counters.calls_closed[cause as usize] += 1;
        if let Some(n) = self.peers.get_mut(&call.peer) {
            *n -= 1;
            if *n == 0 {
                self.peers.remove(&call.peer);
            }
        }
        self.tombstones.insert(
            key.clone(),
            call.initial_cseq,
            after(ctx.now, ctx.cfg.closed_linger),
            ctx.cfg.max_calls,
        );
    }

    fn reschedule(&mut self, key: &CallKey, cfg: &CallConfig) {
        let Some(call) = self.calls.get_mut(key) else {
            return;
        };
        let next = call.next_deadline(cfg);
        if next == call.deadline {
            return;
        }
        if call.deadline != u64::MAX {
            self.timers.remove(&(call.deadline, key.clone()));
        }
        call.deadline = next;
        if next != u64::MAX {
            self.timers.insert((next, key.clone()));
        }
    }

    pub fn tick(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        self.tombstones.expire(now);
        while let Some((t, key)) = self.timers.first().cloned() {
            if t > now {
                break;
            }
            self.timers.remove(&(t, key.clone()));
            let cfg = ctx.cfg;
            let Some(call) = self.calls.get_mut(&key) else {
                continue;
            };
            call.deadline = u64::MAX;
            let cause = match call.phase {
                Phase::Ending { close_at } if close_at <= now => Some(CloseCause::Bye),
                _ if limit(call.created, cfg.max_lifetime) <= now => Some(CloseCause::Lifetime),
                Phase::Calling if limit(call.last_progress, cfg.setup_timeout) <= now => {
                    Some(CloseCause::SetupTimeout)
                }
                _ => None,
            };
            match cause {
                Some(cause) => self.close(&key, cause, ctx),
                None => {
                    for d in &mut call.dialogs {
                        if d.pending
                            .as_ref()
                            .is_some_and(|p| limit(p.at, cfg.setup_timeout) <= now)
                        {
                            d.pending = None;
                        }
                    }
                    self.reschedule(&key, cfg);
                }
            }
        }
    }

    pub fn next_deadline(&self) -> Option<u64> {
        let call = self.timers.first().map(|(t, _)| *t);
        match (call, self.tombstones.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
