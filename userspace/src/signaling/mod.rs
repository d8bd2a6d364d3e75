//! Pure parsers for the signaling protocols that announce RTP media, and the
//! TCP stream reassembly needed to read them off the wire.
//!
//! Nothing here touches the kernel, sockets or an async runtime: every
//! function takes bytes (and, for time-dependent helpers, a `now`) and returns
//! values, so the controller can feed it packets however it captures them.
//!
//! * [`sip`]: SIP messages (RFC 3261) incl. compact header forms, folding,
//!   multipart bodies (RFC 2046), and [`sip::SipFramer`] for TCP streams.
//! * [`sdp`]: session descriptions (RFC 4566 / 3264 / 3605 / 5761) with a
//!   derived per-stream view of RTP/RTCP endpoints ([`sdp::SessionDescription::media`]).
//! * [`rtsp`]: RTSP 1.0 / 2.0 (RFC 2326 / 7826) messages, `Transport`/`Session`
//!   headers, SETUP request/response pairing, and [`rtsp::RtspFramer`].
//! * [`reassembly`]: per-direction TCP reassembly and a bounded flow table.
//!
//! Signaling is attacker-controlled input. Every parser is bounded
//! ([`MAX_MESSAGE_SIZE`], [`MAX_HEADERS`], [`sdp::MAX_SDP_LINES`],
//! [`sdp::MAX_MEDIA`], reassembly [`reassembly::Limits`]), returns typed errors
//! instead of panicking, and never allocates more than a small multiple of its
//! input or its configured limits.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod message;
pub mod reassembly;
pub mod rtsp;
pub mod sdp;
pub mod sip;

#[cfg(test)]
#[expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests parse known fixtures and fail loudly"
)]
mod tests;

pub use message::{
    Header, MessageError, Param, MAX_HEADERS, MAX_LIST_ITEMS, MAX_MESSAGE_SIZE, MAX_PARAMS,
};
