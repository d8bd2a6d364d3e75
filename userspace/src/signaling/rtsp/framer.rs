//! RTSP over TCP: splitting a reassembled stream into messages.

use super::RtspError;
use crate::signaling::message::{FramingRules, StreamFramer};

/// Splits a reassembled RTSP-over-TCP byte stream into messages.
///
/// Messages are delimited by the empty line plus `Content-Length` (absent
/// means no body). Interleaved binary frames (`$`, channel, 16-bit length,
/// data — RFC 2326 §10.12, RFC 7826 §14) between messages are skipped without
/// being buffered, and counted. Buffered data never exceeds
/// [`MAX_MESSAGE_SIZE`](crate::signaling::MAX_MESSAGE_SIZE); after an error the framer
/// is poisoned until [`RtspFramer::reset`].
#[derive(Debug)]
pub struct RtspFramer {
    inner: StreamFramer,
}

impl Default for RtspFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl RtspFramer {
    /// A framer at the start of a stream.
    pub fn new() -> Self {
        RtspFramer {
            inner: StreamFramer::new(FramingRules {
                require_content_length: false,
                interleaved: true,
                is_content_length,
            }),
        }
    }

    /// Appends stream bytes and returns the raw bytes of every message they
    /// complete, in order (pass each to [`parse`](super::parse)).
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, RtspError> {
        Ok(self.inner.push(data)?)
    }

    /// Bytes buffered towards the next, incomplete message.
    pub fn buffered(&self) -> &[u8] {
        self.inner.buffered()
    }

    /// Number of interleaved `$` frames skipped.
    pub fn interleaved_frames(&self) -> u64 {
        self.inner.interleaved_frames()
    }

    /// True after an error.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Discards buffered data and clears the poisoned state.
    pub fn reset(&mut self) {
        self.inner.reset();
    }
}

pub(super) fn is_content_length(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-length")
}
