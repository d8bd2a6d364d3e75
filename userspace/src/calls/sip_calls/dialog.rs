//! One dialog of a SIP call: its offers, the last completed exchange and the
//! media it negotiated, and how offered media become endpoints and
//! provisional pairs.

use std::net::{IpAddr, SocketAddr};

use super::{Media, SipEvent, SipMethod, SipStart};
use crate::calls::{pairs::Candidate, policy::canonical, CallConfig, Side};

/// A transaction as far as offer/answer goes: CSeq number and method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Txn {
    pub(super) cseq: u32,
    pub(super) method: SipMethod,
}

/// An SDP offer.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Offer {
    pub(super) txn: Txn,
    pub(super) by_caller: bool,
    /// Carried by a response (INVITE without SDP): answered by ACK or PRACK.
    pub(super) in_response: bool,
    pub(super) media: Vec<Media>,
    /// IP source of the message that carried it.
    pub(super) origin: IpAddr,
    /// IP destination of the message that carried it: where the answer
    /// will come from (the answerer or its next hop). `None` for offers of
    /// the control API and in state written before this field existed.
    #[serde(default)]
    pub(super) to: Option<IpAddr>,
    pub(super) at: u64,
}

/// The last completed offer/answer exchange of a dialog, kept to recognise
/// repeats of its messages.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Exchange {
    pub(super) offer: Offer,
    pub(super) answer_txn: Txn,
    pub(super) answer_in_response: bool,
    /// Who sent the answer. Only that peer may repeat it with other media: a
    /// copy from elsewhere carries the dialog's identifiers, not its origin.
    /// `None` only in state written before this field existed.
    #[serde(default)]
    pub(super) answer_origin: Option<IpAddr>,
}

/// One side's receive endpoints for one stream, with the signaling peer that
/// announced them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) struct Endpoint {
    pub(super) rtp: Option<SocketAddr>,
    pub(super) rtcp: Option<SocketAddr>,
    pub(super) rtcp_mux: bool,
    pub(super) origin: IpAddr,
    /// This side put the stream on hold ([`Media::hold`] or
    /// [`Media::one_way`]).
    #[serde(default)]
    pub(super) held: bool,
}

/// The media a dialog negotiated, per side, stream by stream.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Negotiated {
    pub(super) caller: Vec<Endpoint>,
    pub(super) callee: Vec<Endpoint>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Dialog {
    /// The callee's tag (To-tag of responses to the caller).
    pub(super) tag: String,
    pub(super) active: Option<Negotiated>,
    pub(super) pending: Option<Offer>,
    pub(super) last: Option<Exchange>,
}

impl Dialog {
    pub(super) fn new(tag: String, pending: Option<Offer>) -> Self {
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
    pub(super) fn offer_answer(&mut self, ev: &SipEvent, sender_is_caller: bool, now: u64) -> bool {
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
    pub(super) fn commit(&mut self, offer: &Offer, answer: &[Media], answer_origin: IpAddr) {
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
    /// [`VOUCHED`](api::VOUCHED) skips the media-origin check.
    pub(super) fn candidates(&self, cfg: &CallConfig, out: &mut Vec<Candidate>) {
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
    pub(super) fn pre_answer_candidates(&self, cfg: &CallConfig, out: &mut Vec<Candidate>) {
        if let Some(p) = &self.pending {
            let offerer = if p.by_caller { Side::A } else { Side::B };
            offer_candidates(cfg, offerer, &p.media, p.origin, p.to, out);
        }
    }

    /// Per negotiated stream (m-line index): the RTP pair and, unless both
    /// sides multiplex, the RTCP pair, each end with its announcing peer,
    /// and whether either side holds the stream.
    pub(super) fn stream_pairs(&self) -> Vec<(usize, EndPair, Option<EndPair>, bool)> {
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
pub(super) fn offer_candidates(
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
pub(super) type EndPair = ((SocketAddr, IpAddr), (SocketAddr, IpAddr));

/// One side's new media, with held streams (`c=0.0.0.0`) keeping their
/// previous endpoint.
pub(super) fn resolve(media: &[Media], origin: IpAddr, prev: &[Endpoint]) -> Vec<Endpoint> {
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
