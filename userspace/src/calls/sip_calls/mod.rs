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

use super::pairs::PairSet;
use super::Side;
use super::{after, limit, CallConfig, CallKey, CloseCause, Ctx, Owner, Refusal};

mod api;
mod dialog;

use dialog::{offer_candidates, Dialog, EndPair, Exchange, Offer, Txn};

/// SIP methods the call state distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
/// A held stream keeps its pinholes (RTCP keeps flowing), so the direction
/// never changes what is open; it only makes the pairs idle out after the
/// hold timeout instead of the idle timeout ([`CallConfig::hold_timeout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The direction is `sendonly`, `recvonly` or `inactive` (RFC 3264
    /// §5.1): media flows one way or not at all, so the stream is on hold.
    #[serde(default)]
    pub one_way: bool,
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

/// Whether `ev`, matching no tracked call, may take its dialog over
/// ([`SipCalls::pick_up`]): an in-dialog INVITE, or UPDATE with SDP.
fn may_pick_up(ev: &SipEvent) -> bool {
    ev.to_tag.is_some()
        && match ev.start {
            SipStart::Request(SipMethod::Invite) => true,
            SipStart::Request(SipMethod::Update) => ev.sdp.is_some(),
            _ => false,
        }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Phase {
    /// INVITE sent, no 2xx yet.
    Calling,
    /// 2xx seen from dialog `winner`.
    Confirmed { winner: String },
    /// BYE seen; pairs close at `close_at`.
    Ending { close_at: u64 },
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Call {
    initial_cseq: u32,
    /// The initial INVITE's offer, handed to every early dialog.
    initial_offer: Option<(Vec<Media>, IpAddr)>,
    /// Destination IP of the initial INVITE: where its answers come from
    /// (for pre-answer latching). `None` for API calls and in state written
    /// before this field existed.
    #[serde(default)]
    initial_offer_to: Option<IpAddr>,
    /// Source IP of the initial INVITE (for the per-peer cap); for a call
    /// driven by the control API, the initial offer's `received-from`, if
    /// any.
    peer: Option<IpAddr>,
    /// Driven by the control API (ng): the proxy names the signaling
    /// source (`received-from`) and is the trust check itself; observed
    /// signaling leaves it alone.
    api: bool,
    /// Sequence of API offers (the CSeq of their synthetic transactions).
    api_seq: u32,
    created: u64,
    /// Last signaling message or API operation.
    last_signal: u64,
    /// Last message while calling (setup timeout counts from here).
    last_progress: u64,
    phase: Phase,
    dialogs: Vec<Dialog>,
    pairs: PairSet,
    /// Scheduled in `SipCalls::timers` unless `u64::MAX` (not saved: the
    /// timers are rebuilt on restore).
    #[serde(skip, default = "super::never")]
    deadline: u64,
    /// Taken over from in-dialog signaling ([`SipCalls::pick_up`]): the
    /// "caller" is whoever sent that request. Until an exchange completes
    /// it lives no longer than `setup_timeout`, and a failure ends it.
    #[serde(default)]
    picked_up: bool,
}

impl Call {
    fn next_deadline(&self, cfg: &CallConfig) -> u64 {
        let mut t = limit(self.created, cfg.max_lifetime);
        match self.phase {
            Phase::Ending { close_at } => t = t.min(close_at),
            Phase::Calling => t = t.min(limit(self.last_progress, cfg.setup_timeout)),
            Phase::Confirmed { .. } => {}
        }
        if self.awaits_media() {
            t = t.min(limit(self.created, cfg.setup_timeout));
        }
        for d in &self.dialogs {
            if let Some(p) = &d.pending {
                t = t.min(limit(p.at, cfg.setup_timeout));
            }
        }
        t
    }

    /// A picked-up call none of whose exchanges completed yet.
    fn awaits_media(&self) -> bool {
        self.picked_up && self.dialogs.iter().all(|d| d.active.is_none())
    }

    fn dialog_mut(&mut self, tag: &str) -> Option<&mut Dialog> {
        self.dialogs.iter_mut().find(|d| d.tag == tag)
    }

    /// Makes the open pairs follow the dialogs' media; `reopen`: an
    /// offer/answer exchange completed, so pairs that idled out open again.
    fn reconcile(&mut self, owner: &Owner, cause: CloseCause, reopen: bool, ctx: &mut Ctx<'_>) {
        let mut candidates = Vec::new();
        for d in &self.dialogs {
            d.candidates(ctx.cfg, &mut candidates);
        }
        // Provisional pairs of offers still waiting for their answer, after
        // the negotiated ones (which they never displace under the cap).
        // Every branch of a forked INVITE answers through the same next
        // hop: the branches' pending copies of the initial offer name the
        // same pairs, which the pair set holds once.
        if !self.api && ctx.cfg.pre_answer {
            if self.dialogs.is_empty() && self.phase == Phase::Calling {
                if let Some((media, origin)) = &self.initial_offer {
                    let to = self.initial_offer_to;
                    offer_candidates(ctx.cfg, Side::A, media, *origin, to, &mut candidates);
                }
            }
            for d in &self.dialogs {
                d.pre_answer_candidates(ctx.cfg, &mut candidates);
            }
        }
        self.pairs.reconcile(
            owner,
            &candidates,
            ctx.cfg.max_pairs_per_call,
            cause,
            reopen,
            ctx,
        );
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

    /// Whether `key` closed within the linger, whatever the CSeq.
    fn holds(&self, key: &CallKey, now: u64) -> bool {
        self.map.get(key).is_some_and(|&(_, until)| until > now)
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
    /// Caller tags of the tracked calls, by Call-ID.
    ids: HashMap<String, Vec<String>>,
}

impl SipCalls {
    /// Adds `key` to the Call-ID index (calls by Call-ID, any caller tag).
    fn index(&mut self, key: &CallKey) {
        self.ids
            .entry(key.call_id.clone())
            .or_default()
            .push(key.caller_tag.clone());
    }

    /// Removes `key` from the Call-ID index.
    fn unindex(&mut self, key: &CallKey) {
        if let Some(tags) = self.ids.get_mut(&key.call_id) {
            tags.retain(|t| *t != key.caller_tag);
            if tags.is_empty() {
                self.ids.remove(&key.call_id);
            }
        }
    }

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
            None if may_pick_up(ev) => self.pick_up(ev, ctx),
            None => ctx.counters.sip_unmatched += 1,
        }
    }

    /// An in-dialog re-INVITE (with or without SDP: late offer) or UPDATE
    /// with SDP of a dialog no tracked call knows: its call expired from
    /// the table, or began before this daemon with no saved state. It is
    /// taken over like a new call, under the same checks as an initial
    /// INVITE (trust was checked by the caller; table, per-peer cap, and
    /// per pair the per-call cap and media origin in `reconcile`); the
    /// sender of the request becomes the call's "caller" side, the To-tag
    /// its dialog. Nothing opens before the exchange completes (or, with
    /// pre-answer latching, before the answerer's media arrive). A dialog
    /// that closed within the linger (BYE, CANCEL, failure) is not revived.
    fn pick_up(&mut self, ev: &SipEvent, ctx: &mut Ctx<'_>) {
        let Some(to_tag) = ev.to_tag.clone() else {
            return;
        };
        let key = CallKey {
            call_id: ev.call_id.clone(),
            caller_tag: ev.from_tag.clone(),
        };
        let other = CallKey {
            call_id: ev.call_id.clone(),
            caller_tag: to_tag.clone(),
        };
        if self.tombstones.holds(&key, ctx.now) || self.tombstones.holds(&other, ctx.now) {
            ctx.counters.sip_unmatched += 1;
            return;
        }
        let owner = Owner::Sip(key.clone());
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
        ctx.counters.calls_picked_up += 1;
        self.index(&key);
        self.calls.insert(
            key.clone(),
            Call {
                initial_cseq: ev.cseq,
                initial_offer: None,
                initial_offer_to: None,
                peer: Some(peer),
                api: false,
                api_seq: 0,
                created: ctx.now,
                last_signal: ctx.now,
                last_progress: ctx.now,
                phase: Phase::Confirmed {
                    winner: to_tag.clone(),
                },
                dialogs: vec![Dialog::new(to_tag, None)],
                pairs: PairSet::default(),
                deadline: u64::MAX,
                picked_up: true,
            },
        );
        self.in_call(key, true, ev, ctx);
    }

    /// The table closed the pair `a` ↔ `b` of the call `key` for
    /// idleness. `Some(api)` when the call held it.
    pub fn on_pair_expired(&mut self, key: &CallKey, a: SocketAddr, b: SocketAddr) -> Option<bool> {
        let call = self.calls.get_mut(key)?;
        call.pairs.expire(a, b).then_some(call.api)
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
            if call.api {
                ctx.counters.sip_unmatched += 1;
                return;
            }
            call.last_signal = ctx.now;
            // A retransmission, a second observation, or (higher CSeq) the
            // INVITE repeated with credentials after a challenge we missed.
            if call.phase == Phase::Calling && ev.cseq > call.initial_cseq {
                call.initial_cseq = ev.cseq;
                call.initial_offer = offer;
                call.initial_offer_to = Some(ev.dst.ip());
                call.last_progress = ctx.now;
                call.dialogs.clear();
                call.reconcile(&owner, CloseCause::Renegotiated, false, ctx);
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
        self.index(&key);
        self.calls.insert(
            key.clone(),
            Call {
                initial_cseq: ev.cseq,
                initial_offer: offer,
                initial_offer_to: Some(ev.dst.ip()),
                peer: Some(peer),
                api: false,
                api_seq: 0,
                created: ctx.now,
                last_signal: ctx.now,
                last_progress: ctx.now,
                phase: Phase::Calling,
                dialogs: Vec::new(),
                pairs: PairSet::default(),
                deadline: u64::MAX,
                picked_up: false,
            },
        );
        if ctx.cfg.pre_answer {
            let call = self.calls.get_mut(&key).expect("just inserted");
            call.reconcile(&owner, CloseCause::Renegotiated, false, ctx);
        }
        self.reschedule(&key, ctx.cfg);
    }

    fn in_call(&mut self, key: CallKey, from_is_caller: bool, ev: &SipEvent, ctx: &mut Ctx<'_>) {
        let owner = Owner::Sip(key.clone());
        let call = self.calls.get_mut(&key).expect("looked up");
        if call.api {
            ctx.counters.sip_unmatched += 1;
            return;
        }
        if matches!(call.phase, Phase::Ending { .. }) {
            return;
        }
        call.last_signal = ctx.now;
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
                    if calling || call.awaits_media() {
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
                    let done = dialog.offer_answer(ev, sender_is_caller, ctx.now);
                    call.reconcile(&owner, CloseCause::Renegotiated, done, ctx);
                    // A picked-up call whose only offer failed.
                    let failed = matches!(ev.start, SipStart::Response(c) if c >= 300);
                    if failed
                        && call.awaits_media()
                        && call.dialogs.iter().all(|d| d.pending.is_none())
                    {
                        end = Some(CloseCause::Failed);
                    }
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
                call.reconcile(owner, CloseCause::ForkLost, false, ctx);
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
                to: call.initial_offer_to,
                at: ctx.now,
            });
            call.dialogs.push(Dialog::new(tag.to_string(), pending));
        }
        let dialog = call.dialog_mut(tag).expect("present or just added");
        let done = dialog.offer_answer(ev, false, ctx.now);
        call.reconcile(owner, CloseCause::Renegotiated, done, ctx);
    }

    pub(crate) fn has_call_id(&self, call_id: &str) -> bool {
        self.ids.contains_key(call_id)
    }

    /// Ends every call with this Call-ID as a BYE would, at once (another
    /// node saw the BYE: see `crate::ha`).
    pub(crate) fn end_call_id(&mut self, call_id: &str, ctx: &mut Ctx<'_>) {
        let tags = self.ids.get(call_id).cloned().unwrap_or_default();
        for caller_tag in tags {
            let key = CallKey {
                call_id: call_id.to_string(),
                caller_tag,
            };
            self.close(&key, CloseCause::Bye, ctx);
        }
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
        if let Some(peer) = call.peer {
            if let Some(n) = self.peers.get_mut(&peer) {
                *n -= 1;
                if *n == 0 {
                    self.peers.remove(&peer);
                }
            }
        }
        self.unindex(key);
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
                _ if call.awaits_media() && limit(call.created, cfg.setup_timeout) <= now => {
                    Some(CloseCause::SetupTimeout)
                }
                _ => None,
            };
            match cause {
                Some(cause) => self.close(&key, cause, ctx),
                None => {
                    let mut dropped = false;
                    for d in &mut call.dialogs {
                        if d.pending
                            .as_ref()
                            .is_some_and(|p| limit(p.at, cfg.setup_timeout) <= now)
                        {
                            d.pending = None;
                            dropped = true;
                        }
                    }
                    if dropped && cfg.pre_answer {
                        // Unanswered offers take their provisional pairs.
                        let owner = Owner::Sip(key.clone());
                        call.reconcile(&owner, CloseCause::SetupTimeout, false, ctx);
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

/// The calls as the state file keeps them (closed calls' tombstones are
/// not kept: a late copy of a closed call's INVITE after a restart starts it
/// again, as it would after the tombstone's linger).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct SipSnapshot {
    calls: Vec<(CallKey, Call)>,
}

impl SipCalls {
    pub fn snapshot(&self) -> SipSnapshot {
        let mut calls: Vec<(CallKey, Call)> = self
            .calls
            .iter()
            .map(|(k, c)| (k.clone(), c.clone()))
            .collect();
        calls.sort_by(|x, y| x.0.cmp(&y.0));
        SipSnapshot { calls }
    }

    /// Replaces every call with the snapshot's, rebuilding the timers, the
    /// per-peer counts and the Call-ID index.
    pub fn restore(&mut self, snapshot: SipSnapshot, cfg: &CallConfig) {
        *self = SipCalls::default();
        for (key, mut call) in snapshot.calls {
            call.deadline = u64::MAX;
            if let Some(peer) = call.peer {
                *self.peers.entry(peer).or_insert(0) += 1;
            }
            self.index(&key);
            self.calls.insert(key.clone(), call);
            self.reschedule(&key, cfg);
        }
    }
}
