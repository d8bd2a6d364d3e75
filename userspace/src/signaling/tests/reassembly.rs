//! TCP reassembly tests, alone and feeding the SIP/RTSP framers.

use std::time::Duration;

use super::fixtures::*;
use super::Rng;
use crate::signaling::reassembly::{
    CloseReason, FlowTable, Limits, ReassemblyError, Segment, StreamKey, StreamReassembler,
    StreamState,
};
use crate::signaling::rtsp::RtspFramer;
use crate::signaling::sip::{self, SipFramer};

fn syn(seq: u32) -> Segment<'static> {
    Segment {
        syn: true,
        ..Segment::data(seq, b"")
    }
}

fn fin(seq: u32, payload: &[u8]) -> Segment<'_> {
    Segment {
        fin: true,
        ..Segment::data(seq, payload)
    }
}

fn rst(seq: u32) -> Segment<'static> {
    Segment {
        rst: true,
        ..Segment::data(seq, b"")
    }
}

/// Splits `data` into segments of `size` starting at sequence `first`.
fn segments(first: u32, data: &[u8], size: usize) -> Vec<(u32, Vec<u8>)> {
    data.chunks(size)
        .enumerate()
        .map(|(i, c)| (first.wrapping_add((i * size) as u32), c.to_vec()))
        .collect()
}

#[test]
fn in_order_with_syn_and_fin() {
    let mut r = StreamReassembler::new(Limits::default());
    assert_eq!(r.state(), StreamState::New);
    assert!(r.push(&syn(1000)).unwrap().is_empty());
    assert_eq!(r.state(), StreamState::Open);
    assert_eq!(r.push(&Segment::data(1001, b"abc")).unwrap(), b"abc");
    assert_eq!(r.push(&Segment::data(1004, b"def")).unwrap(), b"def");
    assert_eq!(r.push(&fin(1007, b"g")).unwrap(), b"g");
    assert_eq!(r.state(), StreamState::Closed(CloseReason::Fin));
    assert!(r.push(&Segment::data(1008, b"late")).unwrap().is_empty());
    assert_eq!(r.stats().ignored_segments, 1);
    assert_eq!(r.delivered(), 7);
    assert_eq!(r.stats().delivered_bytes, 7);
}

#[test]
fn scenario_table() {
    type Seg = (u32, &'static [u8], bool, bool, bool); // seq, payload, syn, fin, rst
    let cases: &[(&str, &[Seg], &[u8], StreamState)] = &[
        (
            "retransmission of the same segment",
            &[
                (9, b"", true, false, false),
                (10, b"hello", false, false, false),
                (10, b"hello", false, false, false),
            ],
            b"hello",
            StreamState::Open,
        ),
        (
            "partial overlap with delivered bytes",
            &[
                (9, b"", true, false, false),
                (10, b"hello", false, false, false),
                (13, b"lo world", false, false, false),
            ],
            b"hello world",
            StreamState::Open,
        ),
        (
            "out of order, reversed",
            &[
                (9, b"", true, false, false),
                (20, b"!", false, false, false),
                (15, b"world", false, false, false),
                (10, b"hello", false, false, false),
            ],
            b"helloworld!",
            StreamState::Open,
        ),
        (
            "overlapping out-of-order segments",
            &[
                (9, b"", true, false, false),
                (14, b"oworld", false, false, false),
                (12, b"llowo", false, false, false),
                (10, b"he", false, false, false),
            ],
            b"helloworld",
            StreamState::Open,
        ),
        (
            "mid-stream pickup without SYN",
            &[
                (5000, b"abc", false, false, false),
                (5003, b"def", false, false, false),
            ],
            b"abcdef",
            StreamState::Open,
        ),
        (
            "mid-stream pickup ignores older bytes",
            &[
                (5000, b"abc", false, false, false),
                (4990, b"0123456789", false, false, false),
                (5003, b"d", false, false, false),
            ],
            b"abcd",
            StreamState::Open,
        ),
        (
            "pure ACK before data does not start the stream",
            &[
                (7000, b"", false, false, false),
                (7100, b"x", false, false, false),
            ],
            b"x",
            StreamState::Open,
        ),
        (
            "data carried on the SYN",
            &[
                (99, b"tfo", true, false, false),
                (103, b"!", false, false, false),
            ],
            b"tfo!",
            StreamState::Open,
        ),
        (
            "retransmitted SYN is ignored",
            &[
                (99, b"", true, false, false),
                (100, b"ab", false, false, false),
                (99, b"", true, false, false),
                (102, b"c", false, false, false),
            ],
            b"abc",
            StreamState::Open,
        ),
        (
            "new SYN with another ISN restarts the stream",
            &[
                (99, b"", true, false, false),
                (100, b"old", false, false, false),
                (5000, b"", true, false, false),
                (5001, b"new", false, false, false),
            ],
            b"oldnew",
            StreamState::Open,
        ),
        (
            "RST closes and drops buffered data",
            &[
                (9, b"", true, false, false),
                (20, b"later", false, false, false),
                (10, b"", false, false, true),
                (10, b"0123456789", false, false, false),
            ],
            b"",
            StreamState::Closed(CloseReason::Rst),
        ),
        (
            "RST before anything is ignored",
            &[
                (10, b"", false, false, true),
                (10, b"ab", false, false, false),
            ],
            b"ab",
            StreamState::Open,
        ),
        (
            "FIN out of order waits for the gap",
            &[
                (9, b"", true, false, false),
                (13, b"d", false, true, false),
                (10, b"abc", false, false, false),
            ],
            b"abcd",
            StreamState::Closed(CloseReason::Fin),
        ),
        (
            "SYN after close reopens",
            &[
                (9, b"", true, false, false),
                (10, b"a", false, true, false),
                (500, b"", true, false, false),
                (501, b"b", false, false, false),
            ],
            b"ab",
            StreamState::Open,
        ),
        (
            "segment far beyond the window is ignored",
            &[
                (9, b"", true, false, false),
                (10 + (2 << 20), b"far", false, false, false),
                (10, b"near", false, false, false),
            ],
            b"near",
            StreamState::Open,
        ),
    ];
    for (name, segs, expected, state) in cases {
        let mut r = StreamReassembler::new(Limits::default());
        let mut out = Vec::new();
        for &(seq, payload, syn, fin, rst) in segs.iter() {
            out.extend(
                r.push(&Segment {
                    seq,
                    payload,
                    syn,
                    fin,
                    rst,
                })
                .unwrap_or_else(|e| panic!("{name}: {e}")),
            );
        }
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(expected),
            "{name}"
        );
        assert_eq!(r.state(), *state, "{name}");
        assert_eq!(r.buffered_bytes(), 0, "{name}");
    }
}

#[test]
fn counters() {
    let mut r = StreamReassembler::new(Limits::default());
    r.push(&syn(0)).unwrap();
    r.push(&Segment::data(6, b"world")).unwrap();
    assert_eq!(r.buffered_bytes(), 5);
    r.push(&Segment::data(1, b"hell")).unwrap();
    r.push(&Segment::data(1, b"hello")).unwrap();
    r.push(&Segment::data(1, b"hello")).unwrap();
    r.push(&Segment::data(1u32.wrapping_add(3 << 20), b"x"))
        .unwrap();
    let s = r.stats();
    assert_eq!(s.segments, 6);
    assert_eq!(s.delivered_bytes, 10);
    assert_eq!(s.out_of_order_segments, 1);
    assert_eq!(s.duplicate_bytes, 4 + 5);
    assert_eq!(s.out_of_window_segments, 1);
    assert_eq!(s.errors, 0);
}

#[test]
fn sequence_wraparound() {
    let data: Vec<u8> = (0..200u8).collect();
    let isn = u32::MAX - 50;
    let segs = segments(isn.wrapping_add(1), &data, 30);
    // In order.
    let mut r = StreamReassembler::new(Limits::default());
    r.push(&syn(isn)).unwrap();
    let mut out = Vec::new();
    for (seq, p) in &segs {
        out.extend(r.push(&Segment::data(*seq, p)).unwrap());
    }
    assert_eq!(out, data);
    // Reversed, across the wrap, and without a SYN for a mid-stream pickup before the wrap.
    let mut r = StreamReassembler::new(Limits::default());
    let mut out = r.push(&Segment::data(segs[0].0, &segs[0].1)).unwrap();
    for (seq, p) in segs[1..].iter().rev() {
        out.extend(r.push(&Segment::data(*seq, p)).unwrap());
    }
    assert_eq!(out, data);
    // Retransmission of a pre-wrap segment after the wrap is a duplicate.
    assert!(r
        .push(&Segment::data(segs[0].0, &segs[0].1))
        .unwrap()
        .is_empty());
}

#[test]
fn randomized_reordering_and_duplication() {
    let payload: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for seed in 1..=40u64 {
        let mut rng = Rng::new(seed);
        let isn = rng.next_u64() as u32;
        let size = 1 + rng.below(700);
        let mut segs = segments(isn.wrapping_add(1), &payload, size);
        // Duplicate a few segments and add overlapping re-segmented copies.
        for _ in 0..5 {
            let i = rng.below(segs.len());
            segs.push(segs[i].clone());
            let start = rng.below(payload.len());
            let len = 1 + rng.below(900).min(payload.len() - start - 1);
            let end = (start + len).min(payload.len());
            segs.push((
                isn.wrapping_add(1).wrapping_add(start as u32),
                payload[start..end].to_vec(),
            ));
        }
        // Local shuffle: each segment moves at most a few places (bounded reordering).
        for i in 0..segs.len() {
            let j = (i + rng.below(6)).min(segs.len() - 1);
            segs.swap(i, j);
        }
        // Reordering is bounded but unbounded in the tail: allow a deep buffer here.
        let mut r = StreamReassembler::new(Limits {
            max_buffered_segments: 100_000,
            max_buffered_bytes: 1 << 20,
            ..Limits::default()
        });
        let mut out = r.push(&syn(isn)).unwrap();
        for (seq, p) in &segs {
            out.extend(
                r.push(&Segment::data(*seq, p))
                    .unwrap_or_else(|e| panic!("seed {seed}: {e}")),
            );
        }
        // Segments that never arrived (all do here) would leave gaps; every byte must come once.
        assert_eq!(out.len(), payload.len(), "seed {seed}");
        assert_eq!(out, payload, "seed {seed}");
        assert_eq!(r.buffered_bytes(), 0);
    }
}

#[test]
fn overflow_resets_the_stream() {
    let limits = Limits {
        max_buffered_bytes: 1000,
        max_buffered_segments: 4,
        max_window: 1 << 20,
    };
    // Too many segments.
    let mut r = StreamReassembler::new(limits);
    r.push(&syn(0)).unwrap();
    for i in 0..4u32 {
        r.push(&Segment::data(100 + i * 10, b"x")).unwrap();
    }
    let e = r.push(&Segment::data(200, b"x")).unwrap_err();
    assert_eq!(
        e,
        ReassemblyError::BufferOverflow {
            segments: 5,
            bytes: 5
        }
    );
    assert_eq!(r.state(), StreamState::Closed(CloseReason::Overflow));
    assert_eq!(r.stats().errors, 1);
    assert_eq!(r.buffered_bytes(), 0);
    assert!(r.push(&Segment::data(1, b"a")).unwrap().is_empty());
    // Too many bytes.
    let mut r = StreamReassembler::new(limits);
    r.push(&syn(0)).unwrap();
    r.push(&Segment::data(100, &[0; 600])).unwrap();
    assert!(matches!(
        r.push(&Segment::data(800, &[0; 600])),
        Err(ReassemblyError::BufferOverflow { bytes: 1200, .. })
    ));
    // Default limits: 256 KiB of out-of-order data is the ceiling.
    let mut r = StreamReassembler::new(Limits::default());
    r.push(&syn(0)).unwrap();
    let chunk = vec![7u8; 4096];
    let mut result = Ok(Vec::new());
    for i in 0..100u32 {
        result = r.push(&Segment::data(2 + i * 4096, &chunk));
        if result.is_err() {
            break;
        }
        assert!(r.buffered_bytes() <= 256 * 1024);
    }
    assert!(result.is_err());
}

#[test]
fn one_sip_message_split_across_segments() {
    let msg = crlf(WSINV);
    for size in [1, 10, 100, 536, 1460] {
        let mut r = StreamReassembler::new(Limits::default());
        let mut f = SipFramer::new();
        let mut got = Vec::new();
        r.push(&syn(77)).unwrap();
        for (seq, p) in segments(78, &msg, size) {
            let bytes = r.push(&Segment::data(seq, &p)).unwrap();
            got.extend(f.push(&bytes).unwrap());
        }
        assert_eq!(got, vec![msg.clone()], "segment size {size}");
        assert_eq!(
            sip::parse(&got[0]).unwrap().call_id,
            "wsinv.ndaksdj@192.0.2.1"
        );
    }
}

#[test]
fn several_sip_messages_in_one_segment_out_of_order_and_retransmitted() {
    let msgs = [crlf(ZEROMF), crlf(NOREASON), esc01(), crlf(TRANSPORTS)];
    let stream: Vec<u8> = msgs.iter().flat_map(|m| m.iter().copied()).collect();
    // One segment with everything.
    let mut r = StreamReassembler::new(Limits::default());
    let mut f = SipFramer::new();
    r.push(&syn(1)).unwrap();
    let out = f
        .push(&r.push(&Segment::data(2, &stream)).unwrap())
        .unwrap();
    assert_eq!(out, msgs.to_vec());

    // Segments of 300 bytes delivered out of order with retransmissions.
    let segs = segments(2, &stream, 300);
    let mut order: Vec<usize> = (0..segs.len()).collect();
    order.swap(0, 2);
    order.swap(3, 4);
    order.insert(3, 1);
    order.push(0);
    let mut r = StreamReassembler::new(Limits::default());
    let mut f = SipFramer::new();
    r.push(&syn(1)).unwrap();
    let mut out = Vec::new();
    for i in order {
        let (seq, p) = &segs[i];
        out.extend(f.push(&r.push(&Segment::data(*seq, p)).unwrap()).unwrap());
    }
    assert_eq!(out, msgs.to_vec());
    for m in &out {
        sip::parse(m).unwrap();
    }
}

#[test]
fn rtsp_stream_with_interleaved_media_through_reassembly() {
    let setup = crlf(RTSP_SETUP_REQ);
    let mut rtp = vec![b'$', 0, 0, 12];
    rtp.extend_from_slice(&[0x80, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
    let teardown = crlf(
        "TEARDOWN rtsp://example.com/foo/bar/baz.rm RTSP/1.0\nCSeq: 303\nSession: 47112344\n\n",
    );
    let stream = [setup.clone(), rtp.clone(), rtp, teardown.clone()].concat();
    let isn = u32::MAX - 10; // wraps inside the stream
    let mut r = StreamReassembler::new(Limits::default());
    let mut f = RtspFramer::new();
    r.push(&syn(isn)).unwrap();
    let mut out = Vec::new();
    let segs = segments(isn.wrapping_add(1), &stream, 17);
    for (seq, p) in segs.iter().rev().skip(1).rev() {
        out.extend(f.push(&r.push(&Segment::data(*seq, p)).unwrap()).unwrap());
    }
    let (seq, p) = segs.last().unwrap();
    out.extend(f.push(&r.push(&fin(*seq, p)).unwrap()).unwrap());
    assert_eq!(out, vec![setup, teardown]);
    assert_eq!(f.interleaved_frames(), 2);
    assert!(r.is_closed());
}

fn key(a: &str, b: &str) -> StreamKey {
    StreamKey {
        src: a.parse().unwrap(),
        dst: b.parse().unwrap(),
    }
}

#[test]
fn flow_table_bounds_and_eviction() {
    let mut t: FlowTable<SipFramer> = FlowTable::new(3, Limits::default());
    assert!(t.is_empty());
    let k1 = key("192.0.2.1:5060", "198.51.100.1:5060");
    let k2 = k1.reversed();
    let k3 = key("[2001:db8::1]:5060", "[2001:db8::2]:5060");
    let k4 = key("203.0.113.9:40000", "198.51.100.1:5060");
    assert_eq!(k2.src, k1.dst);
    assert_eq!(k2.reversed(), k1);
    for (k, now) in [(k1, 0), (k2, 10), (k3, 20)] {
        t.get_or_insert_with(k, Duration::from_secs(now), SipFramer::new)
            .unwrap();
    }
    assert_eq!(t.len(), 3);
    assert_eq!(
        t.get_or_insert_with(k4, Duration::from_secs(21), SipFramer::new)
            .unwrap_err(),
        ReassemblyError::TableFull { max: 3 }
    );
    assert_eq!(t.rejected(), 1);
    // Existing streams are still reachable when full, and get refreshed.
    let e = t
        .get_or_insert_with(k1, Duration::from_secs(30), SipFramer::new)
        .unwrap();
    assert_eq!(e.last_seen, Duration::from_secs(30));
    let bytes = e
        .reassembler
        .push(&Segment::data(1, &crlf(ZEROMF)))
        .unwrap();
    assert_eq!(e.value.push(&bytes).unwrap().len(), 1);
    // Close k3 with RST: evicted regardless of age.
    t.get_mut(&k3).unwrap().reassembler.push(&syn(5)).unwrap();
    t.get_mut(&k3).unwrap().reassembler.push(&rst(6)).unwrap();
    // At t=45 with 30 s idle: k2 (last seen 10) is idle, k1 (30) is not, k3 is closed.
    let mut evicted = t.evict_idle(Duration::from_secs(45), Duration::from_secs(30));
    evicted.sort_by_key(|k| k.src.to_string());
    let mut expected = vec![k2, k3];
    expected.sort_by_key(|k| k.src.to_string());
    assert_eq!(evicted, expected);
    assert_eq!(t.len(), 1);
    assert!(t.get_mut(&k1).is_some());
    // Room again.
    t.get_or_insert_with(k4, Duration::from_secs(46), SipFramer::new)
        .unwrap();
    assert!(t.remove(&k4).is_some());
    assert!(t.remove(&k4).is_none());
    // A clock that goes backwards does not evict.
    assert!(t
        .evict_idle(Duration::from_secs(0), Duration::from_secs(1))
        .is_empty());
}
