//! The soak's results (written as JSON) and their Markdown rendering.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use super::{
    analysis::{Accounting, Direction},
    probe::QueueStats,
};

#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub secs: u64,
    pub rate: u32,
    /// ACK to BYE.
    pub call_secs: u64,
    /// RTP each way per call (the hold less [`Config::media_tail_ms`]).
    pub media_ms: u64,
    pub media_tail_ms: u64,
    pub rtp_interval_ms: u64,
    pub rtp_packets_per_stream: u32,
    pub start_ms: u64,
    pub start_packets: u32,
    pub unsolicited_rate: u32,
    pub bye_grace_secs: u64,
    pub daemon_args: Vec<String>,
    pub sipp: String,
    pub command: String,
    /// What `pinhole` was built from (commit, and whether the daemon's
    /// sources had uncommitted changes).
    pub pinhole_build: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub kernel: String,
    pub load_before: [f64; 3],
    pub load_after: [f64; 3],
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Calls {
    /// `-m`: calls the caller was told to place.
    pub attempted: u64,
    pub created: u64,
    pub successful: u64,
    pub failed: u64,
    pub failed_by_reason: BTreeMap<String, u64>,
    pub retransmissions: u64,
    /// sipp's own concurrency (the caller's `CurrentCall`), max over its
    /// periodic samples.
    pub peak_concurrent: u64,
    pub callee_successful: u64,
    pub callee_failed: u64,
    /// The caller's sipp exit status (0: every call completed).
    pub caller_exit: Option<i32>,
    /// From the first INVITE to the caller's exit.
    pub secs: f64,
}

/// One second of the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    /// Seconds since the first call was placed.
    pub t: f64,
    pub rss_kib: u64,
    pub flows: u64,
    pub pinholes: u64,
    pub calls_active: u64,
    pub hit: u64,
    pub miss: u64,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Curve {
    pub first: u64,
    pub min: u64,
    pub max: u64,
    pub last: u64,
}

impl Curve {
    pub fn of(values: impl IntoIterator<Item = u64>) -> Curve {
        let mut it = values.into_iter();
        let Some(first) = it.next() else {
            return Curve::default();
        };
        let mut c = Curve {
            first,
            min: first,
            max: first,
            last: first,
        };
        for v in it {
            c.min = c.min.min(v);
            c.max = c.max.max(v);
            c.last = v;
        }
        c
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Daemon {
    pub rss_kib: Curve,
    /// `VmHWM` at the end: the peak resident set over the whole run.
    pub hwm_kib: u64,
    pub cpu_secs: f64,
    pub flows_max: u64,
    pub pinholes_max: u64,
    pub calls_active_max: u64,
    /// After the last call's BYE and the grace: `stats` and the kernel maps.
    pub flows_end: u64,
    pub pinholes_end: u64,
    pub calls_active_end: u64,
    /// Entries of the daemon's hash maps by name (`bpftool map dump`).
    pub map_entries_end: BTreeMap<String, u64>,
    /// Seconds from the caller's exit until `stats` showed no pinhole.
    pub drain_secs: f64,
    /// Filter counters at the end (packets), non-zero only.
    pub counters: BTreeMap<String, u64>,
    pub signaling: serde_json::Value,
    pub nfqueue: QueueStats,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Unsolicited {
    /// Datagrams the sender sent (from port 9999 to the callee's media range).
    pub sent: u64,
    /// Seen leaving the caller's host (its tap).
    pub seen_leaving: u64,
    /// Delivered to the callee's host (its tap): must be 0.
    pub delivered: u64,
}

/// Whether the taps saw everything (else loss figures are upper bounds).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Health {
    pub frames: BTreeMap<String, u64>,
    pub kernel_drops: BTreeMap<String, u64>,
    pub other_media_udp: u64,
    /// Media the hosts' nftables rule dropped after the tap (so sipp's raw
    /// sockets are spared copies): equals what the taps received.
    pub host_media_dropped: BTreeMap<String, u64>,
    /// rx/tx drops of the lab's four interfaces, non-zero only.
    pub link_drops: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Goal {
    pub name: String,
    pub value: String,
    pub met: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub config: Config,
    pub machine: Machine,
    pub started: String,
    pub wall_secs: f64,
    pub calls: Calls,
    pub media: Accounting,
    pub unsolicited: Unsolicited,
    pub daemon: Daemon,
    pub health: Health,
    pub goals: Vec<Goal>,
    pub samples: Vec<Sample>,
    pub sipp_current_calls: Vec<u64>,
}

impl Report {
    pub fn goals_met(&self) -> bool {
        self.goals.iter().all(|g| g.met)
    }

    pub fn compute_goals(&mut self) {
        let c = &self.calls;
        let m = &self.media;
        let (out, back) = (&m.caller_to_callee, &m.callee_to_caller);
        let d = &self.daemon;
        let maps: u64 = d.map_entries_end.values().sum();
        let goal = |name: &str, value: String, met: bool| Goal {
            name: name.to_owned(),
            value,
            met,
        };
        self.goals = vec![
            goal(
                "every call completes",
                format!("{} of {}", c.successful, c.attempted),
                c.failed == 0 && c.successful == c.attempted,
            ),
            goal(
                "RTP on every call, both ways",
                format!(
                    "{} streams caller → callee, {} back, for {} calls",
                    out.streams, back.streams, c.successful
                ),
                out.streams >= c.successful
                    && back.streams >= c.successful
                    && out.streams_short + back.streams_short == 0,
            ),
            goal(
                "no RTP lost at call start",
                (out.lost_start + back.lost_start).to_string(),
                out.lost_start + back.lost_start == 0,
            ),
            goal(
                "no RTP lost mid-call",
                (out.lost_mid + back.lost_mid).to_string(),
                out.lost_mid + back.lost_mid == 0,
            ),
            goal(
                "nothing left after the last BYE",
                format!(
                    "{} pinholes, {} flows, {} map entries, {} calls",
                    d.pinholes_end, d.flows_end, maps, d.calls_active_end
                ),
                d.pinholes_end + d.flows_end + maps + d.calls_active_end == 0,
            ),
            goal(
                "no unsolicited datagram delivered",
                format!(
                    "{} of {}",
                    self.unsolicited.delivered, self.unsolicited.sent
                ),
                self.unsolicited.delivered == 0,
            ),
            goal(
                "the taps saw everything (measurement valid)",
                format!(
                    "{} frames dropped by the taps, {} received unseen, {} unmatched",
                    self.health.kernel_drops.values().sum::<u64>(),
                    out.received_unseen + back.received_unseen,
                    m.unmatched_received
                ),
                self.health.kernel_drops.values().all(|v| *v == 0)
                    && out.received_unseen + back.received_unseen == 0
                    && m.unmatched_received == 0,
            ),
        ];
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        self.write_markdown(&mut s)
            .expect("formatting into a String cannot fail");
        s
    }

    fn write_markdown(&self, s: &mut String) -> std::fmt::Result {
        let c = &self.config;
        let m = &self.machine;
        let load = |l: [f64; 3]| format!("{:.2} / {:.2} / {:.2}", l[0], l[1], l[2]);
        writeln!(s, "# pinhole soak: {} s at {} calls/s\n", c.secs, c.rate)?;
        writeln!(
            s,
            "`{}`, started {} (UTC), wall time {:.0} s, pinhole {}. Kernel {}, {} CPUs; load \
             average (1 / 5 / 15 min) {} before, {} after.\n",
            c.command,
            self.started,
            self.wall_secs,
            c.pinhole_build,
            m.kernel,
            m.cpus,
            load(m.load_before),
            load(m.load_after)
        )?;
        writeln!(
            s,
            "Lab: caller (sipp UAC) → router (`pinhole run` with native XDP on both interfaces and \
             inline SIP signaling) → callee (sipp UAS), veth pairs in network namespaces, IPv4, \
             SIP over UDP ({}). Each call: INVITE with SDP, 200 with SDP, ACK, then PCMA RTP \
             both ways ({} ms packets, {} per stream = {} ms, from the caller's and the \
             callee's fresh media ports in the filtered range 10000-20000), held {} s from the \
             ACK, BYE, 200. Daemon flags: `{}`. An unsolicited stream of {} datagrams/s from \
             the caller's host sweeps the callee's media range throughout.\n",
            c.sipp,
            c.rtp_interval_ms,
            c.rtp_packets_per_stream,
            c.media_ms,
            c.call_secs,
            c.daemon_args.join(" "),
            c.unsolicited_rate
        )?;
        writeln!(s, "| goal | measured | |\n|---|---|---|")?;
        for g in &self.goals {
            writeln!(
                s,
                "| {} | {} | {} |",
                g.name,
                g.value,
                if g.met { "met" } else { "**missed**" }
            )?;
        }

        let k = &self.calls;
        writeln!(s, "\n## Calls (sipp)\n")?;
        writeln!(
            s,
            "| attempted | created | successful | failed | retransmissions | peak concurrent | \
             callee successful / failed | caller's sipp ran |\n|---:|---:|---:|---:|---:|---:|---:|---:|"
        )?;
        writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} / {} | {:.1} s |",
            k.attempted,
            k.created,
            k.successful,
            k.failed,
            k.retransmissions,
            k.peak_concurrent,
            k.callee_successful,
            k.callee_failed,
            k.secs
        )?;
        if !k.failed_by_reason.is_empty() {
            let reasons: Vec<String> = k
                .failed_by_reason
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            writeln!(s, "\nFailures by sipp's reason: {}.", reasons.join(", "))?;
        }

        let a = &self.media;
        writeln!(s, "\n## RTP\n")?;
        writeln!(
            s,
            "| direction | streams | sent | received | lost at start | lost mid-call | \
             streams with start loss | with mid-call loss | with nothing received | \
             worst stream |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        )?;
        for (name, d) in [
            ("caller → callee", &a.caller_to_callee),
            ("callee → caller", &a.callee_to_caller),
        ] {
            write_direction(s, name, d)?;
        }
        writeln!(
            s,
            "\nCalls (the two streams of a call paired by their reversed 5-tuples): {} paired, \
             {} with loss at start, {} with mid-call loss; {} streams unpaired.\n",
            a.calls, a.calls_lost_start, a.calls_lost_mid, a.unpaired_streams
        )?;
        writeln!(
            s,
            "How loss is counted: an `AF_PACKET` tap on each host's interface records every RTP \
             packet by 5-tuple and RTP sequence number, on the sender's host as it leaves and \
             on the receiver's host as the router delivers it. A packet the sender's tap saw \
             and the receiver's did not is lost. It is lost *at call start* if it is one of \
             the stream's first {} packets (its first {} ms: the window where it races the \
             pinhole's installation), *mid-call* otherwise. sipp reuses its media ports every \
             2,500 calls, so a tuple's packets are cut into streams at quiet gaps of 3 s and \
             paired by time. The hosts drop media in nftables *after* the tap, so that sipp's \
             raw sockets are not handed a copy of every datagram.",
            c.start_packets, c.start_ms
        )?;
        if !a.lossy_streams.is_empty() {
            writeln!(
                s,
                "\nFirst lossy streams (seconds after the first INVITE; lost sequence numbers):\n"
            )?;
            writeln!(
                s,
                "| start | src → dst | sent | received | lost |\n|---:|---|---:|---:|---|"
            )?;
            for l in a.lossy_streams.iter().take(20) {
                writeln!(
                    s,
                    "| {:.1} s | {} → {} | {} | {} | {} |",
                    l.start_secs, l.src, l.dst, l.sent, l.received, l.missing
                )?;
            }
        }

        let d = &self.daemon;
        let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
        writeln!(s, "\n## Daemon\n")?;
        writeln!(s, "| | |\n|---|---|")?;
        writeln!(
            s,
            "| VmRSS, sampled every second: first / min / max / last | {} / {} / {} / {} |",
            mib(d.rss_kib.first),
            mib(d.rss_kib.min),
            mib(d.rss_kib.max),
            mib(d.rss_kib.last)
        )?;
        writeln!(
            s,
            "| VmHWM at the end (peak RSS since start, including loading the eBPF object) | {} |",
            mib(d.hwm_kib)
        )?;
        writeln!(s, "| CPU time | {:.1} s |", d.cpu_secs)?;
        writeln!(
            s,
            "| max during the run: flows / pinholes / calls | {} / {} / {} |",
            d.flows_max, d.pinholes_max, d.calls_active_max
        )?;
        let maps: Vec<String> = d
            .map_entries_end
            .iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        writeln!(
            s,
            "| at the end (last BYE + {} s grace): flows / pinholes / calls | {} / {} / {} \
             (reached {:.1} s after the caller's exit) |",
            c.bye_grace_secs, d.flows_end, d.pinholes_end, d.calls_active_end, d.drain_secs
        )?;
        writeln!(
            s,
            "| kernel map entries at the end (`bpftool map dump`) | {} |",
            maps.join(", ")
        )?;
        let counters: Vec<String> = d.counters.iter().map(|(n, v)| format!("{n} {v}")).collect();
        writeln!(s, "| filter counters (packets) | {} |", counters.join(", "))?;
        writeln!(
            s,
            "| unsolicited | {} sent, {} seen leaving the caller's host, {} delivered |",
            self.unsolicited.sent, self.unsolicited.seen_leaving, self.unsolicited.delivered
        )?;
        writeln!(
            s,
            "| signaling queue | {} dropped by the kernel, {} by the daemon's socket |",
            d.nfqueue.queue_dropped, d.nfqueue.user_dropped
        )?;
        if let Some(lat) = d.signaling.get("setup_latency_us") {
            let f = |k: &str| lat.get(k).and_then(|v| v.as_f64());
            if let (Some(p50), Some(p99)) = (f("p50"), f("p99")) {
                writeln!(
                    s,
                    "| signaling → pinhole latency | p50 {p50:.0} µs, p99 {p99:.0} µs, max {} \
                     ({} samples) |",
                    f("max").map_or("n/a".to_owned(), |v| format!("{v:.0} µs")),
                    f("count").unwrap_or(0.0)
                )?;
            }
        }
        if let Some(refused) = d.signaling.get("refused").and_then(|r| r.as_object()) {
            let nonzero: Vec<String> = refused
                .iter()
                .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            writeln!(
                s,
                "| signaling refusals | {} |",
                if nonzero.is_empty() {
                    "none".to_owned()
                } else {
                    nonzero.join(", ")
                }
            )?;
        }

        let h = &self.health;
        let kv = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(s, "\n## Measurement\n")?;
        writeln!(
            s,
            "Tap frames read: {}; dropped by the taps' sockets: {}. Media dropped by the \
             hosts' nftables rule after the tap: {}. Interface drops: {}. Received packets the \
             sender's tap never saw: {}; received packets no sent stream matched: {}.",
            kv(&h.frames),
            kv(&h.kernel_drops),
            kv(&h.host_media_dropped),
            if h.link_drops.is_empty() {
                "none".to_owned()
            } else {
                kv(&h.link_drops)
            },
            a.caller_to_callee.received_unseen + a.callee_to_caller.received_unseen,
            a.unmatched_received
        )?;
        if a.loss_by_minute
            .iter()
            .any(|m| m.lost_start + m.lost_mid > 0)
        {
            writeln!(s, "\nLoss by the minute the stream started in:\n")?;
            writeln!(
                s,
                "| minute | streams | lost at start | lost mid-call |\n|---:|---:|---:|---:|"
            )?;
            for l in &a.loss_by_minute {
                writeln!(
                    s,
                    "| {} | {} | {} | {} |",
                    l.minute, l.streams, l.lost_start, l.lost_mid
                )?;
            }
        }
        writeln!(
            s,
            "\nEvery per-second sample (RSS, flows, pinholes, calls, hit, miss) is in the JSON \
             next to this file."
        )
    }
}

fn write_direction(s: &mut String, name: &str, d: &Direction) -> std::fmt::Result {
    writeln!(
        s,
        "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        d.streams,
        d.sent,
        d.received,
        d.lost_start,
        d.lost_mid,
        d.streams_lost_start,
        d.streams_lost_mid,
        d.streams_lost_all,
        d.worst_stream_loss
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves() {
        let c = Curve::of([5, 3, 9, 4]);
        assert_eq!((c.first, c.min, c.max, c.last), (5, 3, 9, 4));
        let e = Curve::of([]);
        assert_eq!((e.first, e.max), (0, 0));
    }
}
