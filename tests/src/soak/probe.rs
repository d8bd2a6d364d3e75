//! What the soak reads besides the taps: sipp's statistics file, the
//! daemon's `/proc` entries, the NFQUEUE statistics, nftables counters, the
//! load average. Parsers are pure functions of the text.

use std::collections::BTreeMap;

use serde::Serialize;

/// sipp's `-trace_stat` file: `;`-separated, a header line, then one line
/// per period (cumulative columns end in `(C)`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SippStats {
    /// The last line's numeric columns by name.
    pub last: BTreeMap<String, f64>,
    /// `CurrentCall` of every line (the concurrency curve, one per period).
    pub current_calls: Vec<u64>,
}

impl SippStats {
    pub fn parse(text: &str) -> Option<SippStats> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines.next()?.split(';').map(str::trim).collect();
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(';').collect()).collect();
        let at = |name: &str| header.iter().position(|h| *h == name);
        let current = at("CurrentCall")?;
        let current_calls = rows
            .iter()
            .filter_map(|r| r.get(current)?.trim().parse().ok())
            .collect();
        let last = rows
            .last()?
            .iter()
            .zip(&header)
            .filter_map(|(v, h)| Some(((*h).to_owned(), v.trim().parse::<f64>().ok()?)))
            .collect();
        Some(SippStats {
            last,
            current_calls,
        })
    }

    /// A cumulative counter (`name(C)`), or a plain column.
    pub fn get(&self, name: &str) -> u64 {
        self.last
            .get(&format!("{name}(C)"))
            .or_else(|| self.last.get(name))
            .map_or(0, |v| *v as u64)
    }

    /// Every non-zero cumulative `Failed…` counter but the total.
    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.last
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_suffix("(C)")?.strip_prefix("Failed")?;
                (!name.starts_with("Call") && *v > 0.0).then(|| (name.to_owned(), *v as u64))
            })
            .collect()
    }
}

/// A `Key:   123 kB` field of `/proc/<pid>/status`, in KiB.
pub fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// User plus system CPU ticks of `/proc/<pid>/stat` (fields 14 and 15,
/// counted after the parenthesised command name, which may hold spaces).
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The three load averages of `/proc/loadavg`.
pub fn loadavg(text: &str) -> Option<[f64; 3]> {
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    v.try_into().ok()
}

/// A queue's line of `/proc/net/netfilter/nfnetlink_queue`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Packets waiting at the time of reading.
    pub waiting: u64,
    /// Dropped by the kernel because the queue was full (with fail-open
    /// they pass unobserved instead and are not counted here).
    pub queue_dropped: u64,
    /// Dropped because the daemon's netlink socket buffer overflowed.
    pub user_dropped: u64,
}

/// Fields: queue, portid, waiting, copy mode, copy range, queue dropped,
/// user dropped, last id, 1.
pub fn nfqueue_stats(text: &str, queue: u16) -> Option<QueueStats> {
    text.lines().find_map(|l| {
        let f: Vec<u64> = l
            .split_whitespace()
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        (f.len() >= 7 && f[0] == u64::from(queue)).then(|| QueueStats {
            waiting: f[2],
            queue_dropped: f[5],
            user_dropped: f[6],
        })
    })
}

/// The packets of the first `counter packets N bytes M` in nft's output.
pub fn nft_counter_packets(text: &str) -> Option<u64> {
    let rest = &text[text.find("counter packets ")? + "counter packets ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipp_stat_file() {
        let text = "StartTime;CurrentTime;TotalCallCreated;CurrentCall;SuccessfulCall(P);\
                    SuccessfulCall(C);FailedCall(C);FailedTimeoutOnRecv(C);FailedMaxUDPRetrans(C);\
                    Retransmissions(C);ResponseTime1(C);\n\
                    2026-11-22\t03:25:06.5;x;0;0;0;0;0;0;0;0;00:00:00:000000;\n\
                    2026-11-22\t03:25:11.5;x;500;480;0;20;0;0;0;3;00:00:00:000400;\n\
                    \n\
                    2026-11-22\t03:25:16.5;x;1000;495;5;505;2;2;0;7;00:00:00:000400;\n";
        let s = SippStats::parse(text).unwrap();
        assert_eq!(s.current_calls, vec![0, 480, 495]);
        assert_eq!(s.get("TotalCallCreated"), 1000);
        assert_eq!(s.get("SuccessfulCall"), 505);
        assert_eq!(s.get("FailedCall"), 2);
        assert_eq!(s.get("Retransmissions"), 7);
        assert_eq!(s.get("NoSuchColumn"), 0);
        assert_eq!(
            s.failures(),
            BTreeMap::from([("TimeoutOnRecv".to_owned(), 2)])
        );
        for bad in ["", "StartTime;TotalCallCreated\n1;2\n", "CurrentCall\n"] {
            assert_eq!(SippStats::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn proc_fields() {
        let status = "Name:\tpinhole\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmHWM"), Some(20480));
        assert_eq!(status_kib(status, "VmRSS"), Some(10240));
        assert_eq!(status_kib(status, "VmSwap"), None);
        assert_eq!(status_kib("VmRSSX:\t1 kB\n", "VmRSS"), None);
        let stat = "4242 (pin hole) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 8 0 1";
        assert_eq!(stat_cpu_ticks(stat), Some(300));
        assert_eq!(stat_cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(stat_cpu_ticks("no parenthesis"), None);
        assert_eq!(
            loadavg("0.40 1.32 3.11 2/300 4242\n"),
            Some([0.4, 1.32, 3.11])
        );
        assert_eq!(loadavg("0.40 x 3.11"), None);
        assert_eq!(loadavg("0.40"), None);
    }

    #[test]
    fn nfqueue_and_nft() {
        let text = "    1   1234     0 2 65535     0     0        5  1\n\
                    4242  99 3 2 65535 7 11 123456 1\n";
        assert_eq!(
            nfqueue_stats(text, 4242),
            Some(QueueStats {
                waiting: 3,
                queue_dropped: 7,
                user_dropped: 11
            })
        );
        assert_eq!(nfqueue_stats(text, 7), None);
        assert_eq!(nfqueue_stats("4242 1 2\n", 4242), None);
        assert_eq!(nfqueue_stats("", 4242), None);
        let nft =
            "table inet soak {\n\tchain pre {\n\t\ttype filter hook prerouting priority raw; \
                   policy accept;\n\t\tudp dport 10000-20000 counter packets 81234 bytes 1 drop\n";
        assert_eq!(nft_counter_packets(nft), Some(81234));
        assert_eq!(nft_counter_packets("counter packets x"), None);
        assert_eq!(nft_counter_packets(""), None);
    }
}
