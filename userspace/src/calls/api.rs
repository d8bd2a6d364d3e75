//! Calls driven by a SIP proxy over the control API (rtpengine's ng
//! protocol), and read-only views of the tracked SIP calls.
//!
//! A proxy hands over each SDP with the Call-ID and the SIP tags instead of
//! the daemon observing the messages. The API listener's own allow-list
//! replaces `trusted_signaling`; the signaling source address is what the
//! proxy says it received the SIP message from ([`ApiSource`], ng
//! `received-from`), and with it the same rules as for observed signaling
//! apply: the media-origin check (`media_relay`, latching under
//! [`CallConfig::latching`](super::CallConfig::latching)) and the per-peer
//! cap, counted per that address. Only a proxy that says it vouches for the
//! SDP's addresses (ng `trust-address`, [`ApiSource::vouched`]) skips the
//! media-origin check. Every other limit (calls, pairs per call, dialogs per
//! call, lifetime, setup timeout) applies. A call belongs to whoever created it:
//! observed signaling for an API call is ignored (counted as unmatched), and
//! API offers, answers and deletes for an observed call are refused with
//! [`ApiError::NotApiCall`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{CallConfig, CallKey, Calls, Ctx, Intent, Media};

/// Where an SDP handed over by the API comes from, as the proxy tells it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApiSource {
    /// The signaling peer the proxy received the SIP message carrying the
    /// SDP from (ng `received-from`). The media must come from it (or from
    /// a `media_relay` network, or latch from it under
    /// [`CallConfig::latching`]), and a new call counts against its
    /// per-peer cap.
    pub peer: Option<IpAddr>,
    /// The proxy vouches for the SDP's addresses (ng `trust-address`): no
    /// media-origin check. Without it, `peer` is required.
    pub vouched: bool,
    /// The proxy asks for latching (ng `port-latching`): an end that fails
    /// the origin check latches from `peer`. Refused when latching is off,
    /// rather than answered with pinholes that cannot work.
    pub latching: bool,
}

/// Why an API operation did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("unknown call-id or tags")]
    UnknownCall,
    #[error("no offer to answer in this dialog")]
    NoOffer,
    #[error("too many calls")]
    TableFull,
    #[error("too many calls from {0} (per-peer cap)")]
    PerPeerCap(IpAddr),
    /// Neither `received-from` nor `trust-address`: nobody says where the
    /// SDP came from, so its addresses cannot be checked.
    #[error("no received-from: cannot check the media addresses (send received-from, or trust-address to vouch for them)")]
    NoSource,
    #[error("port-latching asked for, but latching is off (pinhole run --latching)")]
    LatchingOff,
    /// A media address that is neither the signaling peer's nor in a
    /// media-relay network, and cannot latch.
    #[error("media address {media} is not received-from {peer} nor in a --media-relay network (third-party media; see trust-address, SIP-source-address, port-latching)")]
    ThirdPartyMedia { media: IpAddr, peer: IpAddr },
    #[error("too many branches (early dialogs) in this call")]
    TooManyDialogs,
    #[error("call is followed from observed signaling, not from this API")]
    NotApiCall,
    #[error("call is being deleted")]
    Closing,
}

impl ApiError {
    /// Whether a proxy should get a warning rather than an error: the call
    /// is fine, the request just had nothing to do.
    pub fn is_warning(self) -> bool {
        matches!(self, ApiError::NotApiCall | ApiError::Closing)
    }
}

/// Where a call stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    /// Offered, not answered (SIP: no 2xx yet).
    Calling,
    /// Answered at least once.
    Confirmed,
    /// BYE seen or deleted; closes after its grace or delay.
    Ending,
}

impl CallState {
    pub fn name(self) -> &'static str {
        match self {
            CallState::Calling => "calling",
            CallState::Confirmed => "confirmed",
            CallState::Ending => "ending",
        }
    }
}

/// A tracked SIP call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallInfo {
    pub key: CallKey,
    /// Driven by the control API rather than observed signaling.
    pub api: bool,
    pub state: CallState,
    /// When the call started being tracked (`now` of that event).
    pub created: u64,
    /// Last signaling message or API operation.
    pub last_signal: u64,
    /// The negotiated streams that have an open pair.
    pub streams: Vec<StreamInfo>,
}

/// One negotiated media stream of one dialog, with its open pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    /// The callee's tag of the dialog.
    pub dialog: String,
    /// Index of the `m=` line, from 0.
    pub index: usize,
    /// The RTP pair (caller's end, callee's end), if open.
    pub rtp: Option<(SocketAddr, SocketAddr)>,
    /// The RTCP pair, if open (absent when both sides multiplex).
    pub rtcp: Option<(SocketAddr, SocketAddr)>,
    /// Its pairs that idled out of the pinhole table (closed now; the next
    /// offer/answer naming them opens them again).
    pub expired: Vec<(SocketAddr, SocketAddr)>,
    /// Either side holds the stream: its pairs use the hold timeout.
    pub hold: bool,
}

/// Refuses, before anything changes, an SDP whose addresses the call could
/// not use under `source`: no source at all, latching asked for while off,
/// or an end that fails the media-origin check and cannot latch (the same
/// [`CallConfig::media_allowed`] and [`CallConfig::latch`] as observed
/// signaling; the pairs are checked again when they open). Rejected
/// (port 0) and held (`c=0.0.0.0`) streams name no address.
pub fn check_source(cfg: &CallConfig, media: &[Media], source: ApiSource) -> Result<(), ApiError> {
    if source.latching && cfg.latching.is_zero() {
        return Err(ApiError::LatchingOff);
    }
    if source.vouched {
        return Ok(());
    }
    let peer = source.peer.ok_or(ApiError::NoSource)?;
    let ends = media
        .iter()
        .filter(|m| !m.hold)
        .flat_map(|m| m.rtp.into_iter().chain(m.rtcp.filter(|_| !m.rtcp_mux)));
    for end in ends.filter(|a| a.port() != 0 && !a.ip().is_unspecified()) {
        let latches = || cfg.latch(super::Side::A, peer, end).is_some();
        if !cfg.media_allowed(end.ip(), peer) && !latches() {
            return Err(ApiError::ThirdPartyMedia {
                media: end.ip(),
                peer,
            });
        }
    }
    Ok(())
}

impl Calls {
    fn api<F>(&mut self, now: u64, f: F) -> Result<Vec<Intent>, ApiError>
    where
        F: FnOnce(&mut super::SipCalls, &mut Ctx<'_>) -> Result<(), ApiError>,
    {
        let mut out = Vec::new();
        let mut ctx = Ctx {
            cfg: &self.cfg,
            counters: &mut self.counters,
            out: &mut out,
            now,
        };
        f(&mut self.sip, &mut ctx)?;
        Ok(out)
    }

    /// An SDP offer sent by the side `from_tag` (ng `offer`). Without
    /// `to_tag` it is the call's initial offer: the call is created (keyed
    /// by `call_id` and `from_tag`) or, if already offered, updated. With
    /// `to_tag` it is a re-offer within that dialog, from either side. Opens
    /// nothing yet: pairs open when the answer comes.
    pub fn on_api_offer(
        &mut self,
        call_id: &str,
        from_tag: &str,
        to_tag: Option<&str>,
        media: &[Media],
        source: ApiSource,
        now: u64,
    ) -> Result<Vec<Intent>, ApiError> {
        check_source(&self.cfg, media, source)?;
        self.api(now, |sip, ctx| {
            sip.api_offer(call_id, from_tag, to_tag, media, source, ctx)
        })
    }

    /// The SDP answer of the side `to_tag` to the last offer of the side
    /// `from_tag` (ng `answer`). Opens the pairs the exchange justifies and
    /// closes those it replaces. Answering the initial offer again from
    /// another `to_tag` adds a branch (forking); answering again from the
    /// same one (183, then 200) updates it.
    pub fn on_api_answer(
        &mut self,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        media: &[Media],
        source: ApiSource,
        now: u64,
    ) -> Result<Vec<Intent>, ApiError> {
        check_source(&self.cfg, media, source)?;
        self.api(now, |sip, ctx| {
            sip.api_answer(call_id, from_tag, to_tag, media, source, ctx)
        })
    }

    /// Deletes a call (ng `delete`): every call with `call_id` when
    /// `from_tag` is absent, else the one the tags name. Its pairs close
    /// after `delay` (default: the BYE grace), at once for zero; closing is
    /// counted under [`CloseCause::Bye`](super::CloseCause::Bye). When the
    /// tags name one of several branches, only that branch closes, at once
    /// ([`CloseCause::ForkLost`](super::CloseCause::ForkLost)).
    pub fn on_api_delete(
        &mut self,
        call_id: &str,
        from_tag: Option<&str>,
        to_tag: Option<&str>,
        delay: Option<Duration>,
        now: u64,
    ) -> Result<Vec<Intent>, ApiError> {
        let delay = delay.unwrap_or(self.cfg.bye_grace);
        self.api(now, |sip, ctx| {
            sip.api_delete(call_id, from_tag, to_tag, delay, ctx)
        })
    }

    /// The SIP calls `call_id` names (all with that Call-ID when `from_tag`
    /// is absent), API-driven or observed.
    pub fn find_sip_calls(
        &self,
        call_id: &str,
        from_tag: Option<&str>,
        to_tag: Option<&str>,
    ) -> Vec<CallInfo> {
        self.sip.find(call_id, from_tag, to_tag)
    }

    /// Every tracked SIP call, in no particular order.
    pub fn sip_calls(&self) -> Vec<CallInfo> {
        self.sip.all()
    }

    /// The Call-IDs of the tracked SIP calls, each once, in no particular
    /// order.
    pub fn sip_call_ids(&self) -> impl Iterator<Item = &str> {
        self.sip.call_ids()
    }
}
