//! Tests for the signaling parsers: RFC example fixtures, hostile input, and
//! TCP reassembly feeding the framers.

mod fixtures;
mod hostile;
mod reassembly;
mod rtsp;
mod sdp;
mod sip;

/// Deterministic xorshift64* generator for shuffles and mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
