//! Per-direction TCP stream reassembly and a bounded table of streams.
//!
//! A [`StreamReassembler`] turns the segments of one direction of a TCP
//! connection into the contiguous byte stream the application sent, ready for
//! [`crate::signaling::sip::SipFramer`] or [`crate::signaling::rtsp::RtspFramer`]:
//!
//! * a SYN fixes the initial sequence number; without one (capture started
//!   mid-connection) the first segment carrying data starts the stream;
//! * retransmitted and overlapping bytes already delivered are dropped;
//! * out-of-order segments are buffered, bounded by [`Limits`], and released
//!   once the gap is filled; a stream exceeding the limits is reset and
//!   reported as an error;
//! * sequence numbers wrap around modulo 2^32;
//! * FIN ends the stream once every byte before it was delivered; RST ends it at once.
//!
//! [`FlowTable`] keys streams by directional 4-tuple, caps their number and
//! evicts idle or closed ones. Time is passed in (`now`), never read.
//!
//! ```
//! use pinhole::signaling::reassembly::{Limits, Segment, StreamReassembler};
//! let mut r = StreamReassembler::new(Limits::default());
//! r.push(&Segment { syn: true, ..Segment::data(999, b"") }).unwrap();
//! assert!(r.push(&Segment::data(1005, b"world")).unwrap().is_empty()); // early: buffered
//! assert_eq!(r.push(&Segment::data(1000, b"hell")).unwrap(), b"hell");
//! // A retransmission overlapping delivered bytes fills the gap and releases "world".
//! assert_eq!(r.push(&Segment::data(1000, b"hello")).unwrap(), b"oworld");
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

/// Default bound on out-of-order bytes buffered per stream.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 256 * 1024;

/// Default bound on out-of-order segments buffered per stream.
pub const DEFAULT_MAX_BUFFERED_SEGMENTS: usize = 128;

/// Default distance ahead of the next expected byte beyond which a segment is
/// considered out of window and ignored.
pub const DEFAULT_MAX_WINDOW: u32 = 1 << 20;

/// Bounds applied to each stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest number of out-of-order bytes held.
    pub max_buffered_bytes: usize,
    /// Largest number of out-of-order segments held.
    pub max_buffered_segments: usize,
    /// Segments starting more than this many bytes after the next expected
    /// byte are ignored (counted as out of window).
    pub max_window: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            max_buffered_segments: DEFAULT_MAX_BUFFERED_SEGMENTS,
            max_window: DEFAULT_MAX_WINDOW,
        }
    }
}

/// One TCP segment of the direction being reassembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Sequence number of the segment (of the SYN itself when `syn`).
    pub seq: u32,
    /// TCP payload.
    pub payload: &'a [u8],
    /// SYN flag.
    pub syn: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
}

impl<'a> Segment<'a> {
    /// A plain data segment (no flags).
    pub fn data(seq: u32, payload: &'a [u8]) -> Self {
        Segment {
            seq,
            payload,
            syn: false,
            fin: false,
            rst: false,
        }
    }
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// FIN received and every byte before it delivered.
    Fin,
    /// RST received.
    Rst,
    /// Reset after exceeding a limit.
    Overflow,
}

/// Life-cycle of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamState {
    /// No usable segment seen yet.
    New,
    /// Delivering bytes.
    Open,
    /// Ended; later segments are ignored until a new SYN.
    Closed(CloseReason),
}

/// Counters of one stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Segments pushed.
    pub segments: u64,
    /// Bytes delivered in order.
    pub delivered_bytes: u64,
    /// Bytes dropped as already delivered (retransmissions, overlaps).
    pub duplicate_bytes: u64,
    /// Segments buffered because they arrived early.
    pub out_of_order_segments: u64,
    /// Segments ignored as outside the window.
    pub out_of_window_segments: u64,
    /// Segments ignored because the stream was closed.
    pub ignored_segments: u64,
    /// Resets because a limit was exceeded.
    pub errors: u64,
}

/// Errors from [`StreamReassembler::push`] and [`FlowTable`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassemblyError {
    /// Too much out-of-order data: the stream was reset.
    #[error(
        "out-of-order buffer limit exceeded ({segments} segments, {bytes} bytes): stream reset"
    )]
    BufferOverflow {
        /// Segments that would have been buffered.
        segments: usize,
        /// Bytes that would have been buffered.
        bytes: usize,
    },
    /// The flow table is full.
    #[error("flow table full ({max} streams)")]
    TableFull {
        /// The limit.
        max: usize,
    },
}

/// Reassembles one direction of a TCP connection. See the module docs.
#[derive(Debug, Clone)]
pub struct StreamReassembler {
    limits: Limits,
    state: StreamState,
    /// Sequence number of stream offset 0.
    base: u32,
    /// ISN when the stream began with a SYN.
    isn: Option<u32>,
    /// Offset of the next byte to deliver.
    next: u64,
    /// Offset just past the last byte, once FIN was seen.
    fin_at: Option<u64>,
    /// Out-of-order segments by stream offset.
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    stats: StreamStats,
}

impl StreamReassembler {
    /// A stream that has seen nothing yet.
    pub fn new(limits: Limits) -> Self {
        StreamReassembler {
            limits,
            state: StreamState::New,
            base: 0,
            isn: None,
            next: 0,
            fin_at: None,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            stats: StreamStats::default(),
        }
    }

    /// Current state.
    pub fn state(&self) -> StreamState {
        self.state
    }

    /// True once the stream ended (FIN, RST or overflow).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, StreamState::Closed(_))
    }

    /// Counters.
    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// Bytes delivered so far (stream offset of the next byte).
    pub fn delivered(&self) -> u64 {
        self.next
    }

    /// Out-of-order bytes currently buffered.
    pub fn buffered_bytes(&self) -> usize {
        self.pending_bytes
    }

    fn start(&mut self, base: u32, isn: Option<u32>) {
        self.state = StreamState::Open;
        self.base = base;
        self.isn = isn;
        self.next = 0;
        self.fin_at = None;
        self.pending.clear();
        self.pending_bytes = 0;
    }

    fn close(&mut self, reason: CloseReason) {
        self.state = StreamState::Closed(reason);
        self.pending.clear();
        self.pending_bytes = 0;
    }

    /// Feeds one segment and returns the bytes that became contiguous
    /// (possibly empty). Fails, resetting the stream, when buffering the
    /// segment would exceed [`Limits`].
    pub fn push(&mut self, seg: &Segment<'_>) -> Result<Vec<u8>, ReassemblyError> {
        self.stats.segments += 1;
        if seg.rst {
            if self.state != StreamState::New {
                self.close(CloseReason::Rst);
            }
            return Ok(Vec::new());
        }
        let mut data_seq = seg.seq;
        if seg.syn {
            data_seq = seg.seq.wrapping_add(1);
            let same_syn = self.state == StreamState::Open && self.isn == Some(seg.seq);
            if !same_syn {
                // New connection (or one reusing the 4-tuple).
                self.start(data_seq, Some(seg.seq));
            }
        }
        match self.state {
            StreamState::Closed(_) => {
                self.stats.ignored_segments += 1;
                return Ok(Vec::new());
            }
            StreamState::New => {
                if seg.payload.is_empty() && !seg.fin {
                    return Ok(Vec::new());
                }
                // Mid-stream pickup: this segment's first byte is offset 0.
                self.start(data_seq, None);
            }
            StreamState::Open => {}
        }

        let expected = self.base.wrapping_add(self.next as u32);
        let rel = i64::from(data_seq.wrapping_sub(expected) as i32);
        if rel > i64::from(self.limits.max_window) {
            self.stats.out_of_window_segments += 1;
            return Ok(Vec::new());
        }
        let len = seg.payload.len() as i64;
        let next = self.next as i64;
        let offset = next + rel;
        let end = offset + len;
        if seg.fin && end >= next && self.fin_at.is_none() {
            self.fin_at = Some(end as u64);
        }

        let mut out = Vec::new();
        if end <= next {
            self.stats.duplicate_bytes += seg.payload.len() as u64;
        } else if offset <= next {
            let skip = (next - offset) as usize;
            self.stats.duplicate_bytes += skip as u64;
            out.extend_from_slice(seg.payload.get(skip..).unwrap_or_default());
            self.next = end as u64;
            self.drain_pending(&mut out);
        } else {
            let segments = self.pending.len() + 1;
            let bytes = self.pending_bytes + seg.payload.len();
            if segments > self.limits.max_buffered_segments
                || bytes > self.limits.max_buffered_bytes
            {
                self.stats.errors += 1;
                self.close(CloseReason::Overflow);
                return Err(ReassemblyError::BufferOverflow { segments, bytes });
            }
            self.stats.out_of_order_segments += 1;
            let key = offset as u64;
            match self.pending.get(&key) {
                Some(existing) if existing.len() >= seg.payload.len() => {
                    self.stats.duplicate_bytes += seg.payload.len() as u64;
                }
                _ => {
                    if let Some(old) = self.pending.insert(key, seg.payload.to_vec()) {
                        self.pending_bytes -= old.len();
                    }
                    self.pending_bytes += seg.payload.len();
                }
            }
        }
        self.stats.delivered_bytes += out.len() as u64;
        if self.fin_at.is_some_and(|f| self.next >= f) {
            self.close(CloseReason::Fin);
        }
        Ok(out)
    }

    fn drain_pending(&mut self, out: &mut Vec<u8>) {
        while let Some(entry) = self.pending.first_entry() {
            let off = *entry.key();
            if off > self.next {
                break;
            }
            let data = entry.remove();
            self.pending_bytes -= data.len();
            let end = off + data.len() as u64;
            if end > self.next {
                let skip = (self.next - off) as usize;
                self.stats.duplicate_bytes += skip as u64;
                out.extend_from_slice(data.get(skip..).unwrap_or_default());
                self.next = end;
            } else {
                self.stats.duplicate_bytes += data.len() as u64;
            }
        }
    }
}

/// Directional 4-tuple identifying one half of a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
}

impl StreamKey {
    /// The opposite direction.
    pub fn reversed(&self) -> StreamKey {
        StreamKey {
            src: self.dst,
            dst: self.src,
        }
    }
}

/// A stream in a [`FlowTable`]: its reassembler and the caller's per-stream state.
#[derive(Debug)]
pub struct FlowEntry<V> {
    /// The reassembler.
    pub reassembler: StreamReassembler,
    /// Caller state (typically a framer).
    pub value: V,
    /// Last time the stream was touched through [`FlowTable::get_or_insert_with`].
    pub last_seen: Duration,
}

/// Bounded map of streams by [`StreamKey`]. Time is an arbitrary monotonic
/// [`Duration`] supplied by the caller.
#[derive(Debug)]
pub struct FlowTable<V> {
    streams: HashMap<StreamKey, FlowEntry<V>>,
    max_streams: usize,
    limits: Limits,
    rejected: u64,
}

impl<V> FlowTable<V> {
    /// A table holding at most `max_streams` streams, each with `limits`.
    pub fn new(max_streams: usize, limits: Limits) -> Self {
        FlowTable {
            streams: HashMap::new(),
            max_streams,
            limits,
            rejected: 0,
        }
    }

    /// Number of streams.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// True when there are no streams.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Number of streams refused because the table was full.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// The stream for `key`, if tracked.
    pub fn get_mut(&mut self, key: &StreamKey) -> Option<&mut FlowEntry<V>> {
        self.streams.get_mut(key)
    }

    /// The stream for `key`, created with `make` if new; `last_seen` is set
    /// to `now`. Fails when a new stream would exceed the table size.
    pub fn get_or_insert_with(
        &mut self,
        key: StreamKey,
        now: Duration,
        make: impl FnOnce() -> V,
    ) -> Result<&mut FlowEntry<V>, ReassemblyError> {
        if !self.streams.contains_key(&key) && self.streams.len() >= self.max_streams {
            self.rejected += 1;
            return Err(ReassemblyError::TableFull {
                max: self.max_streams,
            });
        }
        let limits = self.limits;
        let entry = self.streams.entry(key).or_insert_with(|| FlowEntry {
            reassembler: StreamReassembler::new(limits),
            value: make(),
            last_seen: now,
        });
        entry.last_seen = now;
        Ok(entry)
    }

    /// Stops tracking `key`.
    pub fn remove(&mut self, key: &StreamKey) -> Option<FlowEntry<V>> {
        self.streams.remove(key)
    }

    /// Removes streams that are closed or were last seen more than `idle`
    /// before `now`; returns their keys.
    pub fn evict_idle(&mut self, now: Duration, idle: Duration) -> Vec<StreamKey> {
        let mut evicted = Vec::new();
        self.streams.retain(|k, e| {
            let stale = now.saturating_sub(e.last_seen) > idle || e.reassembler.is_closed();
            if stale {
                evicted.push(*k);
            }
            !stale
        });
        evicted
    }
}
