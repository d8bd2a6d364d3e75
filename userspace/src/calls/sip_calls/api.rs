//! The ng control API's side of SIP calls: offers, answers and deletes a
//! proxy hands over, on the same call state as observed signaling.

use std::{net::IpAddr, time::Duration};

use super::{Call, Dialog, EndPair, Exchange, Offer, PairSet, Phase, SipCalls, SipMethod, Txn};
use crate::calls::{
    after, ApiError, ApiSource, CallInfo, CallKey, CallState, CloseCause, Ctx, Media, Owner,
    Refusal, StreamInfo,
};

/// The "signaling peer" of media whose addresses the proxy vouches for (ng
/// `trust-address`): such an end skips the media-origin check
/// ([`Candidate::check`](crate::calls::pairs::Candidate::check)). No real signaling source is unspecified, and
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
