//! Why an RTSP message or exchange is refused.

use crate::signaling::MessageError;

/// Errors from [`parse`](super::parse), [`setup_info`](super::setup_info) and
/// [`RtspFramer`](super::RtspFramer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtspError {
    /// Size limit, header block or framing error.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// The Request-Line is malformed.
    #[error("invalid request line {0:?}: expected `METHOD SP URI SP RTSP/1.0`")]
    InvalidRequestLine(String),
    /// The Status-Line is malformed.
    #[error("invalid status line {0:?}: expected `RTSP/1.0 SP 3-digit-code SP reason`")]
    InvalidStatusLine(String),
    /// A version other than RTSP/1.0 or RTSP/2.0.
    #[error("unsupported RTSP version {0:?}")]
    UnsupportedVersion(String),
    /// A mandatory header is absent.
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    /// A single-valued header appears more than once.
    #[error("header {name} must appear once but appears {count} times")]
    DuplicateHeader {
        /// Canonical name.
        name: &'static str,
        /// Occurrences.
        count: usize,
    },
    /// A header value does not follow its grammar.
    #[error("invalid {name} header: {reason}")]
    InvalidHeader {
        /// Canonical name.
        name: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// [`setup_info`](super::setup_info) was given something other than a SETUP request and its 2xx response.
    #[error("not a SETUP exchange: {0}")]
    NotSetupExchange(String),
}

pub(super) fn invalid(name: &'static str, reason: impl Into<String>) -> RtspError {
    RtspError::InvalidHeader {
        name,
        reason: reason.into(),
    }
}
