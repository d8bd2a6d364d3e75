//! The `tcp_reassembly` target's input: a byte stream and the segments that
//! carry it, in a flat format so that seeds can be written from the RFC
//! fixtures and every byte string is some script.
//!
//! Layout (little endian): a 16-byte header — ISN `u32`, flags `u8`
//! (bit 0 handshake, bit 1 hostile, bit 2 RTSP), max buffered segments `u8`,
//! max buffered bytes `u32`, max window `u32`, op count `u16` — then that
//! many 10-byte ops (kind `u8`, flags `u8`, `a: u16`, `b: u16`, `c: u32`),
//! then the stream: every remaining byte. Missing bytes read as zero.

/// One step of the script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `stream[start..start + len]` (clamped) at its sequence number.
    Data {
        start: u16,
        len: u16,
        fin: bool,
    },
    /// The SYN again.
    Syn,
    Rst,
    /// Hostile mode only: `stream[start..start + len]` at the sequence
    /// number of stream offset 0 plus `seq_delta`, with any flags.
    Raw {
        start: u16,
        len: u16,
        seq_delta: i32,
        syn: bool,
        fin: bool,
        rst: bool,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpScript {
    pub isn: u32,
    /// Start with a SYN; otherwise the capture starts mid-connection.
    pub handshake: bool,
    /// Allow [`Op::Raw`]; the stream checks are then off.
    pub hostile: bool,
    /// Frame the output as RTSP rather than SIP.
    pub rtsp: bool,
    pub max_segments: u8,
    pub max_bytes: u32,
    pub max_window: u32,
    pub ops: Vec<Op>,
    /// What the sender wrote.
    pub stream: Vec<u8>,
}

const HEADER: usize = 16;
const OP: usize = 10;

/// Reads little-endian fields, zero past the end.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.data.get(self.pos + i).copied().unwrap_or(0);
        }
        self.pos += N;
        out
    }
    fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }
}

impl TcpScript {
    pub fn decode(data: &[u8]) -> TcpScript {
        let mut r = Reader { data, pos: 0 };
        let isn = r.u32();
        let flags = r.u8();
        let max_segments = r.u8();
        let max_bytes = r.u32();
        let max_window = r.u32();
        let available = data.len().saturating_sub(HEADER) / OP;
        let n_ops = usize::from(r.u16()).min(available);
        let ops = (0..n_ops)
            .map(|_| {
                let (kind, f, a, b, c) = (r.u8(), r.u8(), r.u16(), r.u16(), r.u32());
                match kind % 4 {
                    0 => Op::Data {
                        start: a,
                        len: b,
                        fin: f & 1 != 0,
                    },
                    1 => Op::Syn,
                    2 => Op::Rst,
                    _ => Op::Raw {
                        start: a,
                        len: b,
                        seq_delta: c as i32,
                        syn: f & 1 != 0,
                        fin: f & 2 != 0,
                        rst: f & 4 != 0,
                    },
                }
            })
            .collect();
        let stream = data.get(r.pos..).unwrap_or_default().to_vec();
        TcpScript {
            isn,
            handshake: flags & 1 != 0,
            hostile: flags & 2 != 0,
            rtsp: flags & 4 != 0,
            max_segments,
            max_bytes,
            max_window,
            ops,
            stream,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + OP * self.ops.len() + self.stream.len());
        out.extend_from_slice(&self.isn.to_le_bytes());
        out.push(u8::from(self.handshake) | u8::from(self.hostile) << 1 | u8::from(self.rtsp) << 2);
        out.push(self.max_segments);
        out.extend_from_slice(&self.max_bytes.to_le_bytes());
        out.extend_from_slice(&self.max_window.to_le_bytes());
        let n = u16::try_from(self.ops.len()).expect("at most 65535 ops");
        out.extend_from_slice(&n.to_le_bytes());
        for op in &self.ops {
            let (kind, f, a, b, c) = match *op {
                Op::Data { start, len, fin } => (0u8, u8::from(fin), start, len, 0u32),
                Op::Syn => (1, 0, 0, 0, 0),
                Op::Rst => (2, 0, 0, 0, 0),
                Op::Raw {
                    start,
                    len,
                    seq_delta,
                    syn,
                    fin,
                    rst,
                } => (
                    3,
                    u8::from(syn) | u8::from(fin) << 1 | u8::from(rst) << 2,
                    start,
                    len,
                    seq_delta as u32,
                ),
            };
            out.push(kind);
            out.push(f);
            out.extend_from_slice(&a.to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
            out.extend_from_slice(&c.to_le_bytes());
        }
        out.extend_from_slice(&self.stream);
        out
    }
}
