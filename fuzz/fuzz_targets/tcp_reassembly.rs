//! TCP reassembly: a script of segments (out of order, duplicated,
//! overlapping, with SYN/FIN/RST, sequence numbers wrapping) into one
//! `StreamReassembler`, its output into the SIP or RTSP framer.
//!
//! In the consistent mode every segment carries the bytes the sender really
//! wrote at its sequence number, so the reassembled output must always be a
//! prefix of what was sent, and once the whole stream is pushed again it must
//! all come out; the framer must frame the output the same whether it gets it
//! as reassembled or in one piece. In the hostile mode segments carry
//! anything anywhere, and only the bounds are checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pinhole_fuzz::check::{self, Framer};
use pinhole_fuzz::signaling::reassembly::{Limits, Segment, StreamReassembler, StreamState};
use pinhole_fuzz::signaling::rtsp::RtspFramer;
use pinhole_fuzz::signaling::sip::SipFramer;
use pinhole_fuzz::tcp_script::{Op, TcpScript};

/// What the receiver should have seen of the current connection.
struct Model {
    /// Stream offset of the first byte the reassembler delivers.
    base: Option<usize>,
    /// Whether the current stream began with our SYN (a retransmitted SYN
    /// then changes nothing).
    from_syn: bool,
    delivered: Vec<u8>,
    /// The output as it came, piece by piece, for the framer check.
    pieces: Vec<Vec<u8>>,
}

impl Model {
    fn restart(&mut self, base: Option<usize>, from_syn: bool) {
        self.base = base;
        self.from_syn = from_syn;
        self.delivered.clear();
        self.pieces.clear();
    }
}

fuzz_target!(|data: &[u8]| run(TcpScript::decode(data)));

fn run(input: TcpScript) {
    let limits = Limits {
        max_buffered_segments: usize::from(input.max_segments) + 1,
        max_buffered_bytes: (input.max_bytes % (512 * 1024)) as usize + 1,
        max_window: input.max_window % (1 << 21),
    };
    let stream = &input.stream;
    let data_seq = |off: usize| input.isn.wrapping_add(1).wrapping_add(off as u32);
    let mut r = StreamReassembler::new(limits);
    let mut model = Model {
        base: None,
        from_syn: false,
        delivered: Vec::new(),
        pieces: Vec::new(),
    };
    let mut total_out = 0u64;

    let mut push = |r: &mut StreamReassembler, seg: Segment<'_>| {
        let before = r.state();
        let out = r.push(&seg).unwrap_or_default();
        assert!(r.buffered_bytes() <= limits.max_buffered_bytes);
        if r.is_closed() {
            assert_eq!(r.buffered_bytes(), 0, "a closed stream holds data");
        }
        total_out += out.len() as u64;
        assert_eq!(r.stats().delivered_bytes, total_out);
        if !out.is_empty() {
            assert_ne!(r.state(), StreamState::New);
        }
        (before, out)
    };

    if input.handshake {
        push(
            &mut r,
            Segment {
                syn: true,
                ..Segment::data(input.isn, b"")
            },
        );
        model.restart(Some(0), true);
    }
    for op in &input.ops {
        let slice = |start: u16, len: u16| {
            let start = usize::from(start).min(stream.len());
            let end = start.saturating_add(usize::from(len)).min(stream.len());
            (start, &stream[start..end])
        };
        let (seg, starts_at) = match *op {
            Op::Data { start, len, fin } => {
                let (start, payload) = slice(start, len);
                let seg = Segment {
                    fin,
                    ..Segment::data(data_seq(start), payload)
                };
                (seg, Some(start))
            }
            Op::Syn => (
                Segment {
                    syn: true,
                    ..Segment::data(input.isn, b"")
                },
                None,
            ),
            Op::Rst => (
                Segment {
                    rst: true,
                    ..Segment::data(data_seq(0), b"")
                },
                None,
            ),
            Op::Raw {
                start,
                len,
                seq_delta,
                syn,
                fin,
                rst,
            } => {
                if !input.hostile {
                    continue;
                }
                let seg = Segment {
                    seq: data_seq(0).wrapping_add(seq_delta as u32),
                    payload: slice(start, len).1,
                    syn,
                    fin,
                    rst,
                };
                (seg, None)
            }
        };
        let (before, out) = push(&mut r, seg);
        if input.hostile {
            model.pieces.push(out);
            continue;
        }
        // Follow the connection's life the way the reassembler documents it.
        if seg.syn && !(before == StreamState::Open && model.from_syn) {
            model.restart(Some(0), true);
        } else if before == StreamState::New && (!seg.payload.is_empty() || seg.fin) && !seg.rst {
            model.restart(starts_at, false);
        }
        if !out.is_empty() {
            let base = model.base.expect("output before the stream started");
            let at = base + model.delivered.len();
            assert!(
                stream.get(at..at + out.len()) == Some(&out[..]),
                "delivered bytes are not the stream's next bytes (offset {at})"
            );
            model.delivered.extend_from_slice(&out);
            model.pieces.push(out);
        }
    }
    if !input.hostile && r.state() == StreamState::Open {
        // Everything again in one segment: the rest must come out now.
        let base = model.base.expect("open stream without start");
        let (_, out) = push(&mut r, Segment::data(data_seq(base), &stream[base..]));
        model.delivered.extend_from_slice(&out);
        model.pieces.push(out);
        assert_eq!(
            model.delivered,
            stream[base..],
            "stream not fully reassembled"
        );
    }

    let pieces = model.pieces.iter().map(Vec::as_slice);
    if input.rtsp {
        frame::<RtspFramer>(pieces, input.hostile);
    } else {
        frame::<SipFramer>(pieces, input.hostile);
    }
}

/// Frames the reassembled output as it came; in the consistent mode it must
/// frame as the whole output at once does.
fn frame<'a, F: Framer>(pieces: impl Iterator<Item = &'a [u8]> + Clone, hostile: bool) {
    let framed = check::frame_pieces::<F>(pieces.clone());
    if !hostile {
        let whole: Vec<u8> = pieces.flatten().copied().collect();
        let at_once = check::frame_pieces::<F>([whole.as_slice()]);
        assert_eq!(framed.failed, at_once.failed);
        if !framed.failed {
            assert_eq!(framed, at_once, "framing depends on segmentation");
        }
    }
}
