//! Properties the fuzz targets assert, beyond "does not panic".

use std::net::SocketAddr;

use crate::signaling::rtsp::{self, RtspFramer};
use crate::signaling::sdp::{self, SessionDescription};
use crate::signaling::sip::{self, SipFramer};
use crate::signaling::MAX_MESSAGE_SIZE;

/// Cuts `data` into pieces of 1 to 64 bytes (and some empty ones), chosen by
/// a small generator seeded with `seed`: the same input always splits the
/// same way, so a crash reproduces.
pub fn chunks(data: &[u8], seed: u64) -> Vec<&[u8]> {
    let mut state = seed | 1;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = (state % 65) as usize;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// A seed derived from the input itself (FNV-1a), for [`chunks`].
pub fn seed_of(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The stream framers, for the checks that hold for both.
pub trait Framer {
    fn fresh() -> Self;
    /// `push`, with the error reduced to "failed".
    fn feed(&mut self, data: &[u8]) -> Option<Vec<Vec<u8>>>;
    fn pending(&self) -> &[u8];
    fn poisoned(&self) -> bool;
}

impl Framer for SipFramer {
    fn fresh() -> Self {
        SipFramer::new()
    }
    fn feed(&mut self, data: &[u8]) -> Option<Vec<Vec<u8>>> {
        self.push(data).ok()
    }
    fn pending(&self) -> &[u8] {
        self.buffered()
    }
    fn poisoned(&self) -> bool {
        self.is_poisoned()
    }
}

impl Framer for RtspFramer {
    fn fresh() -> Self {
        RtspFramer::new()
    }
    fn feed(&mut self, data: &[u8]) -> Option<Vec<Vec<u8>>> {
        self.push(data).ok()
    }
    fn pending(&self) -> &[u8] {
        self.buffered()
    }
    fn poisoned(&self) -> bool {
        self.is_poisoned()
    }
}

/// What a framer made of a whole stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Framed {
    pub messages: Vec<Vec<u8>>,
    /// The stream lost its message boundaries (the framer is poisoned).
    pub failed: bool,
    pub buffered: Vec<u8>,
}

/// Feeds `pieces` to a fresh framer in order, stopping at the first error,
/// and checks the memory bound after every push.
pub fn frame_pieces<'a, F: Framer>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Framed {
    let mut framer = F::fresh();
    let mut messages = Vec::new();
    let mut failed = false;
    for piece in pieces {
        match framer.feed(piece) {
            Some(msgs) => messages.extend(msgs),
            None => {
                failed = true;
                break;
            }
        }
        assert!(
            framer.pending().len() <= MAX_MESSAGE_SIZE,
            "framer buffers {} bytes, more than {MAX_MESSAGE_SIZE}",
            framer.pending().len()
        );
    }
    assert_eq!(failed, framer.poisoned(), "an error must poison the framer");
    for m in &messages {
        assert!(!m.is_empty(), "empty message framed");
        assert!(
            m.len() <= MAX_MESSAGE_SIZE,
            "framed message of {} bytes",
            m.len()
        );
    }
    Framed {
        messages,
        failed,
        buffered: framer.pending().to_vec(),
    }
}

/// Framing must not depend on how the stream was cut into segments: `data`
/// pushed at once and pushed in the pieces of [`chunks`] give the same
/// messages, the same leftovers and fail alike. Returns the messages when the
/// stream did not fail.
pub fn framing_is_chunking_invariant<F: Framer>(data: &[u8], seed: u64) -> Framed {
    let whole = frame_pieces::<F>([data]);
    let pieces = frame_pieces::<F>(chunks(data, seed));
    assert_eq!(
        whole.failed, pieces.failed,
        "whole stream failed: {}, in pieces: {}",
        whole.failed, pieces.failed
    );
    if !whole.failed {
        assert_eq!(whole.messages, pieces.messages, "framed differently");
        assert_eq!(whole.buffered, pieces.buffered, "different leftovers");
    }
    whole
}

/// Parses one SIP message and checks what the parser promises about it.
pub fn sip_message(data: &[u8]) -> Option<sip::SipMessage> {
    let msg = sip::parse(data).ok()?;
    if let Some(n) = msg.content_length {
        assert_eq!(msg.body.len(), n, "body length differs from Content-Length");
    }
    assert!(msg.body.len() <= data.len());
    let _ = (
        msg.from_tag(),
        msg.to_tag(),
        msg.method(),
        msg.status_code(),
    );
    for v in &msg.via {
        let _ = (v.branch(), v.received(), v.rport(), v.host_ip());
    }
    if let Ok(parts) = msg.body_parts() {
        for part in parts {
            assert!(part.body.len() <= msg.body.len());
        }
    }
    if let Ok(Some(sdp)) = msg.sdp() {
        sdp_media(&sdp);
    }
    Some(msg)
}

/// Parses one RTSP message and checks what the parser promises about it.
pub fn rtsp_message(data: &[u8]) -> Option<rtsp::RtspMessage> {
    let msg = rtsp::parse(data).ok()?;
    if let Some(n) = msg.content_length {
        assert_eq!(msg.body.len(), n, "body length differs from Content-Length");
    }
    assert!(msg.transport.len() <= rtsp::MAX_TRANSPORT_SPECS);
    let _ = (msg.method(), msg.status_code(), msg.header("transport"));
    Some(msg)
}

/// The derived per-stream view agrees with the sections it derives from.
pub fn sdp_media(sdp: &SessionDescription) {
    assert!(sdp.media_sections.len() <= sdp::MAX_MEDIA);
    let media = sdp.media();
    assert_eq!(media.len(), sdp.media_sections.len());
    for (i, d) in media.iter().enumerate() {
        let section = &sdp.media_sections[i];
        assert_eq!(d.index, i);
        assert_eq!(d.rejected, section.port == 0);
        if d.rejected {
            assert!(
                d.rtp.is_none() && !d.held,
                "rejected stream with media: {d:?}"
            );
        }
        if let Some(rtp) = d.rtp {
            assert_eq!(rtp.port(), section.port);
            let conn = section
                .connections
                .first()
                .or(sdp.connection.as_ref())
                .and_then(|c| c.ip());
            assert_eq!(Some(rtp.ip()), conn, "RTP address is not the c= address");
            assert!(!rtp.ip().is_unspecified());
        }
        if d.rtcp.is_some() || d.rtcp_without_mux.is_some() {
            assert!(d.rtp.is_some(), "RTCP without RTP: {d:?}");
        }
        if d.rtcp_mux && section.is_rtp() {
            assert_eq!(d.rtcp, d.rtp, "rtcp-mux: RTCP must share the RTP endpoint");
        } else {
            assert_eq!(d.rtcp, d.rtcp_without_mux);
        }
        check_unspecified(d.rtcp_without_mux);
    }
    for m in crate::calls::media_of(sdp) {
        if m.hold {
            assert!(m.rtp.is_none() && m.rtcp.is_none());
        }
        if m.rtcp.is_some() {
            assert!(m.rtp.is_some(), "adapter: RTCP without RTP: {m:?}");
        }
        check_unspecified(m.rtp);
    }
}

fn check_unspecified(addr: Option<SocketAddr>) {
    if let Some(a) = addr {
        assert!(!a.ip().is_unspecified(), "unspecified media address {a}");
    }
}
