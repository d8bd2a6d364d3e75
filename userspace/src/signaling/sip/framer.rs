//! TCP framing of SIP messages (Content-Length).

use super::{is_content_length, SipError};
use crate::signaling::message::{FramingRules, StreamFramer};

/// Splits a reassembled SIP-over-TCP byte stream into messages using
/// `Content-Length` (mandatory on streams, RFC 3261 §18.3).
///
/// CRLF keep-alives between messages (RFC 5626 §3.5.1) are skipped and
/// counted. Incomplete data is kept until more arrives; buffered data never
/// exceeds [`MAX_MESSAGE_SIZE`](crate::signaling::MAX_MESSAGE_SIZE). After an error
/// (oversized message, missing `Content-Length`, malformed header block) the
/// stream has lost message boundaries: the framer is poisoned and every later
/// [`SipFramer::push`] fails with [`MessageError::Poisoned`] until
/// [`SipFramer::reset`].
///
/// ```
/// use pinhole::signaling::sip::SipFramer;
/// let mut f = SipFramer::new();
/// assert!(f.push(b"\r\n\r\nOPTIONS sip:a@example.com SIP/2.0\r\nl: 3\r\n").unwrap().is_empty());
/// let msgs = f.push(b"\r\nabcOPT").unwrap();
/// assert_eq!(msgs.len(), 1);
/// assert!(msgs[0].ends_with(b"\r\n\r\nabc"));
/// assert_eq!(f.buffered(), b"OPT");
/// ```
#[derive(Debug)]
pub struct SipFramer {
    inner: StreamFramer,
}

impl Default for SipFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl SipFramer {
    /// A framer at the start of a stream.
    pub fn new() -> Self {
        SipFramer {
            inner: StreamFramer::new(FramingRules {
                require_content_length: true,
                interleaved: false,
                is_content_length,
            }),
        }
    }

    /// Appends stream bytes and returns the raw bytes of every message they
    /// complete, in order (pass each to [`parse`]).
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, SipError> {
        Ok(self.inner.push(data)?)
    }

    /// Bytes buffered towards the next, incomplete message (the leftovers).
    pub fn buffered(&self) -> &[u8] {
        self.inner.buffered()
    }

    /// Number of CRLF keep-alive runs skipped between messages.
    pub fn keepalives(&self) -> u64 {
        self.inner.keepalives()
    }

    /// True after an error: the stream must be dropped or the framer reset.
    pub fn is_poisoned(&self) -> bool {
        self.inner.is_poisoned()
    }

    /// Discards buffered data and clears the poisoned state.
    pub fn reset(&mut self) {
        self.inner.reset();
    }
}
