//! The clock of the XDP program's `last_seen_ns`, and log lines rate-limited
//! on it.

/// At most one log line per this interval per kind of problem.
const LOG_INTERVAL_NS: u64 = 1_000_000_000;

/// Nanoseconds of CLOCK_MONOTONIC. `bpf_ktime_get_coarse_ns` reads the same
/// clock (at tick granularity), so the two can be compared directly.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) cannot fail");
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Logs at most once per interval, remembering how many were suppressed.
#[derive(Debug, Default)]
pub struct RateLimit {
    next_ns: u64,
    suppressed: u64,
}

impl RateLimit {
    /// `Some(suppressed since the last line)` when a line may be logged now.
    pub fn allow(&mut self, now_ns: u64) -> Option<u64> {
        if now_ns >= self.next_ns {
            self.next_ns = now_ns.saturating_add(LOG_INTERVAL_NS);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_allows_one_line_per_interval() {
        let mut r = RateLimit::default();
        assert_eq!(r.allow(5), Some(0));
        assert_eq!(r.allow(6), None);
        assert_eq!(r.allow(LOG_INTERVAL_NS), None);
        assert_eq!(r.allow(LOG_INTERVAL_NS + 5), Some(2));
        assert_eq!(r.allow(LOG_INTERVAL_NS + 6), None);
    }

    #[test]
    fn monotonic_clock_does_not_go_back() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a, "{a} {b}");
    }
}
