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
use std::time::Duration;

use super::api::{ApiError, ApiSource, CallInfo, CallState, StreamInfo};
use super::pairs::{Candidate, PairSet};
use super::policy::canonical;
use super::Side;
use super::{after, limit, CallConfig, CallKey, CloseCause, Ctx, Owner, Refusal};

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

/// A transaction as far as offer/answer goes: CSeq number and method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Txn {
    cseq: u32,
    method: SipMethod,
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

/// An SDP offer.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Offer {
    txn: Txn,
    by_caller: bool,
    /// Carried by a response (INVITE without SDP): answered by ACK or PRACK.
    in_response: bool,
    media: Vec<Media>,
    /// IP source of the message that carried it.
    origin: IpAddr,
    /// IP destination of the message that carried it: where the answer
    /// will come from (the answerer or its next hop). `None` for offers of
    /// the control API and in state written before this field existed.
    #[serde(default)]
    to: Option<IpAddr>,
    at: u64,
}

/// The last completed offer/answer exchange of a dialog, kept to recognise
/// repeats of its messages.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Exchange {
    offer: Offer,
    answer_txn: Txn,
    answer_in_response: bool,
    /// Who sent the answer. Only that peer may repeat it with other media: a
    /// copy from elsewhere carries the dialog's identifiers, not its origin.
    /// `None` only in state written before this field existed.
    #[serde(default)]
    answer_origin: Option<IpAddr>,
}

/// One side's receive endpoints for one stream, with the signaling peer that
/// announced them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Endpoint {
    rtp: Option<SocketAddr>,
    rtcp: Option<SocketAddr>,
    rtcp_mux: bool,
    origin: IpAddr,
    /// This side put the stream on hold ([`Media::hold`] or
    /// [`Media::one_way`]).
    #[serde(default)]
    held: bool,
}

/// The media a dialog negotiated, per side, stream by stream.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Negotiated {
    caller: Vec<Endpoint>,
    callee: Vec<Endpoint>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
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
    /// state. `sender_is_caller` tells which side sent the message. Returns
    /// whether it completed an exchange (or repeated its answer): then the
    /// dialog's media are confirmed anew, and pairs that idled out open
    /// again.
    fn offer_answer(&mut self, ev: &SipEvent, sender_is_caller: bool, now: u64) -> bool {
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
                return false;
            }
            if code < 101 {
                return false;
            }
        }
        let Some(media) = &ev.sdp else {
            return false;
        };
        let origin = ev.src.ip();

        // A repeat of the message that answered the last exchange.
        if let Some(x) = &self.last {
            if x.answer_txn == txn
                && x.answer_in_response == is_response
                && x.offer.by_caller != sender_is_caller
            {
                // A repeat from another host is a forgery (or a stray copy):
                // it must not move or cut the committed media.
                if x.answer_origin.is_some_and(|o| o != origin) {
                    return false;
                }
                let offer = x.offer.clone();
                self.commit(&offer, media, origin);
                return true;
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
                    answer_origin: Some(origin),
                });
                return true;
            }
        }
        // A repeat of the offer of the last exchange (e.g. the 2xx after a
        // reliable 18x that carried the same offer, or a retransmission).
        if let Some(x) = &self.last {
            if x.offer.txn == txn
                && x.offer.in_response == is_response
                && x.offer.by_caller == sender_is_caller
            {
                return false;
            }
        }
        let may_offer = match ev.start {
            SipStart::Request(m) => {
                matches!(m, SipMethod::Invite | SipMethod::Update | SipMethod::Prack)
            }
            SipStart::Response(_) => ev.cseq_method == SipMethod::Invite,
        };
        if !may_offer {
            return false;
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
            to: Some(ev.dst.ip()),
            at,
        });
        false
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

    /// The pairs this dialog's media justify. An end announced by
    /// [`VOUCHED`] skips the media-origin check.
    fn candidates(&self, cfg: &CallConfig, out: &mut Vec<Candidate>) {
        let check = |a: SocketAddr, a_origin, b: SocketAddr, b_origin| {
            Candidate::check(cfg, a, a_origin, b, b_origin)
        };
        for (_, rtp, rtcp, hold) in self.stream_pairs() {
            let ((xr, xo), (yr, yo)) = rtp;
            out.push(check(xr, xo, yr, yo).held(hold));
            if let Some(((xc, xo), (yc, yo))) = rtcp {
                out.push(check(xc, xo, yc, yo).held(hold));
            }
        }
    }

    /// The provisional pairs of this dialog's pending offer, if any (see
    /// [`offer_candidates`]).
    fn pre_answer_candidates(&self, cfg: &CallConfig, out: &mut Vec<Candidate>) {
        if let Some(p) = &self.pending {
            let offerer = if p.by_caller { Side::A } else { Side::B };
            offer_candidates(cfg, offerer, &p.media, p.origin, p.to, out);
        }
    }

    /// Per negotiated stream (m-line index): the RTP pair and, unless both
    /// sides multiplex, the RTCP pair, each end with its announcing peer,
    /// and whether either side holds the stream.
    fn stream_pairs(&self) -> Vec<(usize, EndPair, Option<EndPair>, bool)> {
        let Some(n) = &self.active else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, (x, y)) in n.caller.iter().zip(&n.callee).enumerate() {
            let (Some(xr), Some(yr)) = (x.rtp, y.rtp) else {
                continue;
            };
            let rtcp = match (x.rtcp, y.rtcp) {
                (Some(xc), Some(yc)) if !(x.rtcp_mux && y.rtcp_mux) => {
                    Some(((xc, x.origin), (yc, y.origin)))
                }
                _ => None,
            };
            out.push((i, ((xr, x.origin), (yr, y.origin)), rtcp, x.held || y.held));
        }
        out
    }
}

/// The provisional pairs ([`CallConfig::pre_answer`]) of an offer of the
/// side `offerer`, announced by `origin` and sent to `to`: per offered
/// stream, its RTP endpoint and, unless the offer multiplexes RTCP, its
/// RTCP endpoint, each latching from `to`. Rejected (port 0) and held
/// (`c=0.0.0.0`) streams have none.
fn offer_candidates(
    cfg: &CallConfig,
    offerer: Side,
    media: &[Media],
    origin: IpAddr,
    to: Option<IpAddr>,
    out: &mut Vec<Candidate>,
) {
    let Some(to) = to.filter(|_| cfg.pre_answer) else {
        return;
    };
    for m in media {
        let Some(rtp) = m.rtp.filter(|a| a.port() != 0) else {
            continue;
        };
        if m.hold || rtp.ip().is_unspecified() {
            continue;
        }
        let rtcp = m
            .rtcp
            .filter(|a| !m.rtcp_mux && a.port() != 0 && !a.ip().is_unspecified());
        for end in std::iter::once(rtp).chain(rtcp) {
            out.extend(Candidate::pre_answer(
                cfg,
                offerer,
                canonical(end),
                origin,
                to,
            ));
        }
    }
}

/// Two ends of a pair, each with the signaling peer that announced it.
type EndPair = ((SocketAddr, IpAddr), (SocketAddr, IpAddr));

/// One side's new media, with held streams (`c=0.0.0.0`) keeping their
/// previous endpoint.
fn resolve(media: &[Media], origin: IpAddr, prev: &[Endpoint]) -> Vec<Endpoint> {
    let rejected = Endpoint {
        rtp: None,
        rtcp: None,
        rtcp_mux: false,
        origin,
        held: false,
    };
    media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let port_zero = m.rtp.is_some_and(|a| a.port() == 0);
            let hold = !port_zero && (m.hold || m.rtp.is_some_and(|a| a.ip().is_unspecified()));
            if hold {
                let prev = prev.get(i).copied().unwrap_or(rejected);
                return Endpoint { held: true, ..prev };
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
                held: m.one_way,
            }
        })
        .collect()
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

/// The "signaling peer" of media whose addresses the proxy vouches for (ng
/// `trust-address`): such an end skips the media-origin check
/// ([`Candidate::check`]). No real signaling source is unspecified, and
/// state saved before API calls had a source used it for every API end.
pub(crate) const VOUCHED: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// The origin recorded for media handed over from `source`.
fn api_origin(source: ApiSource) -> Result<IpAddr, ApiError> {
    match source {
        ApiSource { vouched: true, .. } => Ok(VOUCHED),
        ApiSource { peer: Some(p), .. } => Ok(p.to_canonical()),
        ApiSource { peer: None, .. } => Err(ApiError::NoSource),
    }
}

/// Control-API (ng) operations. The proxy's `from-tag` names the side that
/// sent the SIP message carrying the SDP, so a call is found by its caller's
/// tag or, for messages from the callee, by the callee's tag with the
/// caller's as `to-tag`.
impl SipCalls {
    /// The call that `from_tag` (and `to_tag`) name, and whether `from_tag`
    /// is its caller's tag.
    fn api_lookup(
        &self,
        call_id: &str,
        from_tag: &str,
        to_tag: Option<&str>,
    ) -> Option<(CallKey, bool)> {
        let callers = self.ids.get(call_id)?;
        let key = |tag: &str| CallKey {
            call_id: call_id.to_string(),
            caller_tag: tag.to_string(),
        };
        if callers.iter().any(|t| t == from_tag) {
            return Some((key(from_tag), true));
        }
        if let Some(to) = to_tag.filter(|to| callers.iter().any(|t| t == to)) {
            return Some((key(to), false));
        }
        // A callee's tag without the caller's: search the call's dialogs.
        callers.iter().find_map(|t| {
            let k = key(t);
            self.calls
                .get(&k)?
                .dialogs
                .iter()
                .any(|d| d.tag == from_tag)
                .then_some((k, false))
        })
    }

    fn index(&mut self, key: &CallKey) {
        self.ids
            .entry(key.call_id.clone())
            .or_default()
            .push(key.caller_tag.clone());
    }

    fn unindex(&mut self, key: &CallKey) {
        if let Some(tags) = self.ids.get_mut(&key.call_id) {
            tags.retain(|t| *t != key.caller_tag);
            if tags.is_empty() {
                self.ids.remove(&key.call_id);
            }
        }
    }

    /// An offer from the side `from_tag`; `to_tag` names the dialog of a
    /// re-offer. Creates the call when it is unknown.
    pub fn api_offer(
        &mut self,
        call_id: &str,
        from_tag: &str,
        to_tag: Option<&str>,
        media: &[Media],
        source: ApiSource,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), ApiError> {
        let origin = api_origin(source)?;
        let (key, by_caller) = match self.api_lookup(call_id, from_tag, to_tag) {
            Some(found) => found,
            None => {
                let key = CallKey {
                    call_id: call_id.to_string(),
                    caller_tag: from_tag.to_string(),
                };
                if self.calls.len() >= ctx.cfg.max_calls {
                    ctx.refuse(Some(&Owner::Sip(key)), Refusal::TableFull, None);
                    return Err(ApiError::TableFull);
                }
                let peer = source.peer.map(|p| p.to_canonical());
                if let Some(p) = peer {
                    if self.peers.get(&p).copied().unwrap_or(0) >= ctx.cfg.max_calls_per_peer {
                        ctx.refuse(Some(&Owner::Sip(key)), Refusal::PerPeerCap, None);
                        return Err(ApiError::PerPeerCap(p));
                    }
                    *self.peers.entry(p).or_insert(0) += 1;
                }
                ctx.counters.calls_opened += 1;
                self.index(&key);
                self.calls.insert(
                    key.clone(),
                    Call {
                        initial_cseq: 0,
                        initial_offer: None,
                        initial_offer_to: None,
                        peer,
                        api: true,
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
                (key, true)
            }
        };
        let owner = Owner::Sip(key.clone());
        let call = self.calls.get_mut(&key).expect("looked up or inserted");
        api_writable(call)?;
        call.last_signal = ctx.now;
        call.api_seq = call.api_seq.wrapping_add(1);
        let offer = Offer {
            txn: Txn {
                cseq: call.api_seq,
                method: SipMethod::Invite,
            },
            by_caller,
            in_response: false,
            media: media.to_vec(),
            origin,
            to: None,
            at: ctx.now,
        };
        // The callee's tag names the dialog.
        let dialog_tag = if by_caller { to_tag } else { Some(from_tag) };
        match (dialog_tag, &call.phase) {
            (None, Phase::Calling) => {
                // The initial offer, or its repeat (a retransmission, another
                // branch, the INVITE again after a challenge).
                call.last_progress = ctx.now;
                if call.initial_offer.as_ref().map(|(m, o)| (&m[..], *o)) != Some((media, origin)) {
                    call.initial_offer = Some((media.to_vec(), origin));
                    call.dialogs.clear();
                    call.reconcile(&owner, CloseCause::Renegotiated, false, ctx);
                }
            }
            (None, _) => {
                // A new offer from the caller to whichever dialog won.
                for d in &mut call.dialogs {
                    d.pending = Some(offer.clone());
                }
            }
            (Some(tag), _) => {
                if call.dialog_mut(tag).is_none() {
                    if call.dialogs.len() >= ctx.cfg.max_dialogs_per_call {
                        ctx.refuse(Some(&owner), Refusal::DialogCap, None);
                        return Err(ApiError::TooManyDialogs);
                    }
                    call.dialogs.push(Dialog::new(tag.to_string(), None));
                }
                call.dialog_mut(tag).expect("present or just added").pending = Some(offer);
            }
        }
        self.reschedule(&key, ctx.cfg);
        Ok(())
    }

    /// The answer from the side `to_tag` to the offer of the side
    /// `from_tag`.
    pub fn api_answer(
        &mut self,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        media: &[Media],
        source: ApiSource,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), ApiError> {
        let origin = api_origin(source)?;
        let (key, from_is_caller) = self
            .api_lookup(call_id, from_tag, Some(to_tag))
            .ok_or(ApiError::UnknownCall)?;
        let owner = Owner::Sip(key.clone());
        let call = self.calls.get_mut(&key).expect("looked up");
        api_writable(call)?;
        let answerer_is_caller = !from_is_caller;
        let tag = if from_is_caller { to_tag } else { from_tag };
        if call.dialog_mut(tag).is_none() {
            // A new early dialog answering the initial offer.
            let Some((media, origin)) = call.initial_offer.clone().filter(|_| from_is_caller)
            else {
                return Err(ApiError::NoOffer);
            };
            if call.dialogs.len() >= ctx.cfg.max_dialogs_per_call {
                ctx.refuse(Some(&owner), Refusal::DialogCap, None);
                return Err(ApiError::TooManyDialogs);
            }
            let pending = Offer {
                txn: Txn {
                    cseq: call.initial_cseq,
                    method: SipMethod::Invite,
                },
                by_caller: true,
                in_response: false,
                media,
                origin,
                to: None,
                at: ctx.now,
            };
            call.dialogs
                .push(Dialog::new(tag.to_string(), Some(pending)));
        }
        let dialog = call.dialog_mut(tag).expect("present or just added");
        if let Some(offer) = dialog
            .pending
            .take_if(|p| p.by_caller != answerer_is_caller)
        {
            dialog.commit(&offer, media, origin);
            dialog.last = Some(Exchange {
                answer_txn: offer.txn,
                offer,
                answer_in_response: true,
                answer_origin: Some(origin),
            });
        } else if let Some(offer) = dialog
            .last
            .as_ref()
            .filter(|x| x.offer.by_caller != answerer_is_caller)
            .map(|x| x.offer.clone())
        {
            // The answer again (183 then 200, or a retransmission).
            dialog.commit(&offer, media, origin);
        } else {
            return Err(ApiError::NoOffer);
        }
        call.last_signal = ctx.now;
        if call.phase == Phase::Calling {
            call.phase = Phase::Confirmed {
                winner: tag.to_string(),
            };
        }
        call.reconcile(&owner, CloseCause::Renegotiated, true, ctx);
        self.reschedule(&key, ctx.cfg);
        Ok(())
    }

    /// Deletes the calls `call_id` names (all of them without `from_tag`),
    /// after `delay` (zero: at once). Naming one of several early dialogs
    /// (branches) drops only that dialog, at once.
    pub fn api_delete(
        &mut self,
        call_id: &str,
        from_tag: Option<&str>,
        to_tag: Option<&str>,
        delay: Duration,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), ApiError> {
        let targets: Vec<(CallKey, Option<String>)> = match from_tag {
            None => self
                .ids
                .get(call_id)
                .into_iter()
                .flatten()
                .map(|t| {
                    let key = CallKey {
                        call_id: call_id.to_string(),
                        caller_tag: t.clone(),
                    };
                    (key, None)
                })
                .collect(),
            Some(from) => self
                .api_lookup(call_id, from, to_tag)
                .map(|(key, from_is_caller)| {
                    let dialog = if from_is_caller { to_tag } else { Some(from) };
                    (key, dialog.map(str::to_string))
                })
                .into_iter()
                .collect(),
        };
        if targets.is_empty() {
            return Err(ApiError::UnknownCall);
        }
        let mut result = Err(ApiError::NotApiCall);
        for (key, dialog) in targets {
            let owner = Owner::Sip(key.clone());
            let call = self.calls.get_mut(&key).expect("indexed");
            if !call.api {
                continue;
            }
            result = Ok(());
            call.last_signal = ctx.now;
            let branch = dialog
                .filter(|t| call.dialogs.len() > 1 && call.dialogs.iter().any(|d| d.tag == *t));
            if let Some(tag) = branch {
                call.dialogs.retain(|d| d.tag != tag);
                call.reconcile(&owner, CloseCause::ForkLost, false, ctx);
                self.reschedule(&key, ctx.cfg);
            } else if delay.is_zero() {
                self.close(&key, CloseCause::Bye, ctx);
            } else {
                let at = after(ctx.now, delay);
                call.phase = match call.phase {
                    Phase::Ending { close_at } => Phase::Ending {
                        close_at: close_at.min(at),
                    },
                    _ => Phase::Ending { close_at: at },
                };
                self.reschedule(&key, ctx.cfg);
            }
        }
        result
    }

    /// The calls `call_id` names, as [`api_delete`](Self::api_delete) finds
    /// them.
    pub fn find(
        &self,
        call_id: &str,
        from_tag: Option<&str>,
        to_tag: Option<&str>,
    ) -> Vec<CallInfo> {
        let keys: Vec<CallKey> = match from_tag {
            None => self
                .ids
                .get(call_id)
                .into_iter()
                .flatten()
                .map(|t| CallKey {
                    call_id: call_id.to_string(),
                    caller_tag: t.clone(),
                })
                .collect(),
            Some(from) => self
                .api_lookup(call_id, from, to_tag)
                .map(|(k, _)| k)
                .into_iter()
                .collect(),
        };
        keys.iter().filter_map(|k| self.info(k)).collect()
    }

    /// Every tracked call.
    pub fn all(&self) -> Vec<CallInfo> {
        self.calls.keys().filter_map(|k| self.info(k)).collect()
    }

    /// Call-IDs of the tracked calls, each once.
    pub fn call_ids(&self) -> impl Iterator<Item = &str> {
        self.ids.keys().map(String::as_str)
    }

    fn info(&self, key: &CallKey) -> Option<CallInfo> {
        let call = self.calls.get(key)?;
        let installed = call.pairs.installed();
        let open = |((a, _), (b, _)): EndPair| {
            installed
                .iter()
                .any(|p| p.a == a && p.b == b)
                .then_some((a, b))
        };
        let expired = |((a, _), (b, _)): EndPair| {
            call.pairs
                .expired()
                .iter()
                .any(|p| p.a == a && p.b == b)
                .then_some((a, b))
        };
        let mut streams = Vec::new();
        for d in &call.dialogs {
            for (index, rtp_ends, rtcp_ends, hold) in d.stream_pairs() {
                let (rtp, rtcp) = (open(rtp_ends), rtcp_ends.and_then(open));
                let gone: Vec<_> = std::iter::once(expired(rtp_ends))
                    .chain(std::iter::once(rtcp_ends.and_then(expired)))
                    .flatten()
                    .collect();
                if rtp.is_some() || rtcp.is_some() || !gone.is_empty() {
                    streams.push(StreamInfo {
                        dialog: d.tag.clone(),
                        index,
                        rtp,
                        rtcp,
                        expired: gone,
                        hold,
                    });
                }
            }
        }
        Some(CallInfo {
            key: key.clone(),
            api: call.api,
            state: match call.phase {
                Phase::Calling => CallState::Calling,
                Phase::Confirmed { .. } => CallState::Confirmed,
                Phase::Ending { .. } => CallState::Ending,
            },
            created: call.created,
            last_signal: call.last_signal,
            streams,
        })
    }
}

/// Whether the API may change `call`.
fn api_writable(call: &Call) -> Result<(), ApiError> {
    if !call.api {
        Err(ApiError::NotApiCall)
    } else if matches!(call.phase, Phase::Ending { .. }) {
        Err(ApiError::Closing)
    } else {
        Ok(())
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
