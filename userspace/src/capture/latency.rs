//! A fixed-size log-linear latency histogram: constant memory however many
//! values it records, quantiles within 1/16 (6.25 %) of the true value.

/// Sub-buckets per power of two (2^SUB_BITS).
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Values below `SUB` get a bucket each; each power of two above has `SUB`.
const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

/// Counts of nanosecond values in log-linear buckets.
#[derive(Clone, Debug)]
pub struct Histogram {
    buckets: Box<[u64; BUCKETS]>,
    count: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: Box::new([0; BUCKETS]),
            count: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let sub = (v >> (exp - SUB_BITS)) as usize & (SUB - 1);
    SUB + (exp - SUB_BITS) as usize * SUB + sub
}

/// The smallest value of bucket `i` and the first value after it.
fn bounds(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, i as u64 + 1);
    }
    let exp = (i - SUB) / SUB + SUB_BITS as usize;
    let sub = ((i - SUB) % SUB) as u64;
    let width = 1u64 << (exp - SUB_BITS as usize);
    let lo = (1u64 << exp) + sub * width;
    (lo, lo.saturating_add(width))
}

impl Histogram {
    pub fn record(&mut self, value_ns: u64) {
        self.buckets[index(value_ns)] += 1;
        self.count += 1;
        self.max = self.max.max(value_ns);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the middle of the bucket holding
    /// the ⌈q·count⌉-th smallest value, capped at the maximum seen. `None`
    /// when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (lo, hi) = bounds(i);
                return Some((lo + (hi - lo) / 2).min(self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_whole_range() {
        let mut expected_lo = 0;
        for i in 0..BUCKETS {
            let (lo, hi) = bounds(i);
            assert_eq!(lo, expected_lo, "bucket {i}");
            assert!(hi > lo);
            assert_eq!(index(lo), i);
            assert_eq!(index(hi - 1), i);
            expected_lo = hi;
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_a_sixteenth() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for v in 1..=10_000u64 {
            h.record(v * 1_000); // 1 µs .. 10 ms
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max(), 10_000_000);
        for (q, exact) in [(0.5, 5_000_000u64), (0.99, 9_900_000), (0.0, 1_000)] {
            let got = h.quantile(q).unwrap() as f64;
            let err = (got - exact as f64).abs() / exact as f64;
            assert!(err <= 1.0 / 16.0, "q {q}: {got} vs {exact}");
        }
        assert_eq!(h.quantile(1.0), Some(10_000_000));
        let mut one = Histogram::default();
        one.record(3);
        assert_eq!((one.quantile(0.5), one.quantile(0.99)), (Some(3), Some(3)));
    }
}
