//! Why an SDP is refused.

use super::AddrType;

/// Errors from [`parse`](super::parse). Line numbers are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Input larger than [`MAX_SDP_SIZE`](super::MAX_SDP_SIZE).
    #[error("SDP of {size} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Input size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// More lines than [`MAX_SDP_LINES`](super::MAX_SDP_LINES).
    #[error("SDP has more than {max} lines")]
    TooManyLines {
        /// The limit.
        max: usize,
    },
    /// More `m=` sections than [`MAX_MEDIA`](super::MAX_MEDIA).
    #[error("SDP has more than {max} m= sections")]
    TooManyMedia {
        /// The limit.
        max: usize,
    },
    /// The first line is not `v=`.
    #[error("SDP must start with v=0")]
    MissingVersion,
    /// `v=` is not 0.
    #[error("unsupported SDP version {0:?}")]
    UnsupportedVersion(String),
    /// A line is not `<letter>=<value>`.
    #[error("line {line}: expected `<type>=<value>`, got {text:?}")]
    MalformedLine {
        /// Line number.
        line: usize,
        /// The line (truncated).
        text: String,
    },
    /// A line type letter SDP does not define (RFC 4566 §5: reject the whole description).
    #[error("line {line}: unknown line type {kind:?}")]
    UnknownLineType {
        /// Line number.
        line: usize,
        /// The type letter.
        kind: char,
    },
    /// A field does not follow its grammar.
    #[error("line {line}: invalid {field}: {reason}")]
    InvalidField {
        /// Line number.
        line: usize,
        /// Line type or attribute (`"c="`, `"m="`, `"a=rtcp"`, …).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A port is not a decimal number in 0-65535 (or the port range overflows).
    #[error("line {line}: invalid port {value:?}")]
    InvalidPort {
        /// Line number.
        line: usize,
        /// The port text.
        value: String,
    },
    /// An address is neither a valid IP literal of the announced type nor a host name.
    #[error("line {line}: invalid {addr_type} address {value:?}")]
    InvalidAddress {
        /// Line number.
        line: usize,
        /// `IP4` or `IP6`.
        addr_type: AddrType,
        /// The address text.
        value: String,
    },
    /// An active (non-zero port) stream has no `c=` at media or session level.
    #[error("m= section {index} (line {line}) has a non-zero port but no c= line")]
    MissingConnection {
        /// Index of the section (0-based).
        index: usize,
        /// Line of its `m=`.
        line: usize,
    },
}
