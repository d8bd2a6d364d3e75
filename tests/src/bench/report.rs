//! The bench's report: a Markdown table (`README-table.md`) and one plot
//! (`lab.svg`), both from [`AllResults`], which is also saved whole as JSON.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{
    calls::CallSample,
    dataplane::{self, FloodSample, MediaSample},
    lab::Filter,
    latency::LatencySample,
    list_load::ListLoadSample,
    scale::ScaleSample,
    stats::{median, Samples},
};

pub const TABLE_FILE: &str = "README-table.md";
pub const PLOT_FILE: &str = "lab.svg";

/// Goals of the issue.
const FLOOD_GOAL: f64 = 3.0;
const SCALE_GOAL: f64 = 1.5;
/// Flood drop (native) against the drop floor (issue 11).
const FLOOD_FLOOR_GOAL: f64 = 0.9;
/// Media pass with `--forward xdp` against the peer, skb and native mode
/// (issue 11).
const FWD_SKB_GOAL: f64 = 1.4;
const FWD_NATIVE_GOAL: f64 = 1.05;

/// What the run ran on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub kernel: String,
    pub date: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Machine {
            cpu_model,
            cpus: super::sys::cpu_count(),
            kernel,
            date,
        }
    }
}

/// Everything one run measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AllResults {
    pub machine: Machine,
    pub command: String,
    pub quick: bool,
    pub wall_secs: f64,
    pub dataplane: Option<dataplane::Results>,
    pub calls: Option<Vec<CallSample>>,
    pub latency: Option<Vec<LatencySample>>,
    pub scale: Option<Vec<ScaleSample>>,
    /// Signaling while `list` runs in a loop (absent from older results).
    #[serde(default)]
    pub list_load: Option<ListLoadSample>,
    /// HA replication delay and resync (absent from older results).
    #[serde(default)]
    pub ha: Option<super::ha::HaResult>,
    /// `pinhole-bench`'s Markdown output.
    pub per_packet: Option<String>,
    /// Parts that failed, with why.
    #[serde(default)]
    pub errors: Vec<String>,
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "–".into(),
    }
}

fn ratio(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.2}×"),
        _ => "–".into(),
    }
}

/// Per-round values of `f` for `filter`, keyed by round.
fn by_round<T>(
    samples: &[T],
    filter: Filter,
    key: impl Fn(&T) -> (Filter, usize),
    f: impl Fn(&T) -> f64,
) -> BTreeMap<usize, f64> {
    samples
        .iter()
        .filter(|s| key(s).0 == filter)
        .map(|s| (key(s).1, f(s)))
        .collect()
}

/// Median over rounds of `a[round] / b[round]` (or `a - b` when `diff`).
fn paired(a: &BTreeMap<usize, f64>, b: &BTreeMap<usize, f64>, diff: bool) -> Option<f64> {
    let v: Vec<f64> = a
        .iter()
        .filter_map(|(r, x)| b.get(r).map(|y| if diff { x - y } else { x / y }))
        .collect();
    median(&v)
}

fn med(m: &BTreeMap<usize, f64>) -> Option<f64> {
    median(&m.values().copied().collect::<Vec<_>>())
}

fn min_max(m: &BTreeMap<usize, f64>) -> (f64, f64) {
    let s = Samples::new(m.values().copied().collect());
    (s.min().unwrap_or(0.0), s.max().unwrap_or(0.0))
}

fn flood_key(s: &FloodSample) -> (Filter, usize) {
    (s.filter, s.round)
}

fn media_key(s: &MediaSample) -> (Filter, usize) {
    (s.filter, s.round)
}

/// Summary numbers the goals and the plot use.
#[derive(Debug, Default)]
pub struct Summary {
    flood_ratio: Option<f64>,
    flood_wall_ratio: Option<f64>,
    flood_cpu_ratio: Option<f64>,
    flood_floor_ratio: Option<f64>,
    media_ratio: Option<f64>,
    media_floor_ratio: Option<f64>,
    /// Per filter: × nftables and × its floor, per CPU-second.
    media_ratios: BTreeMap<Filter, (Option<f64>, Option<f64>)>,
    media_added_p50: BTreeMap<Filter, Option<f64>>,
    max_lossless: BTreeMap<Filter, Option<u32>>,
    calls_run: bool,
    scale_ratio: Vec<(String, Option<f64>)>,
}

fn flood_section(out: &mut String, samples: &[FloodSample], sum: &mut Summary) {
    let rounds = samples.iter().map(|s| s.round).max().map_or(0, |r| r + 1);
    let _ = writeln!(
        out,
        "### 1. Flood drop: unsolicited 64-byte UDP into the media range\n\n\
         Medians of {rounds} interleaved rounds; ratios are medians of the per-round ratios \
         to the nftables peer. *offered*, *absorbed*: frames sent, and frames the filter \
         dropped (no filter: forwarded to the inside host), per second of wall time. *per \
         CPU-s*: absorbed frames per second of sending-CPU time (generator and router share \
         that CPU on veth): the rate with a CPU to themselves, unaffected by other load on \
         the machine. *router*: the router's softirq CPU per million frames received, the \
         generator's own work excluded (see Method). *probe*: a ping every 2 ms on the open \
         call's media path during the flood, on the generator's CPU. *× floor*: absorbed per \
         CPU-s against the *(floor)* row, an XDP program that drops every frame (native), \
         the cheapest drop on this path.\n\n\
         | filter | offered kpps | absorbed kpps | absorbed kpps per CPU-s | × nftables | × floor | router CPU ms/Mpkt | × less router CPU than nftables | sending CPU ms/Mpkt | probe loss |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let nft_pps = by_round(
        samples,
        Filter::Nft,
        flood_key,
        FloodSample::absorbed_per_cpu_s,
    );
    let nft_cpu = by_round(
        samples,
        Filter::Nft,
        flood_key,
        FloodSample::cpu_ms_per_mpkt,
    );
    let nft_wall = by_round(samples, Filter::Nft, flood_key, FloodSample::absorbed_pps);
    let floor = by_round(
        samples,
        Filter::FloorDrop,
        flood_key,
        FloodSample::absorbed_per_cpu_s,
    );
    for filter in Filter::ALL.into_iter().chain(Filter::FLOOD_FLOORS) {
        let offered = by_round(samples, filter, flood_key, |s| s.blast.pps());
        if offered.is_empty() {
            continue;
        }
        let wall = by_round(samples, filter, flood_key, FloodSample::absorbed_pps);
        let pps = by_round(samples, filter, flood_key, FloodSample::absorbed_per_cpu_s);
        let cpu = by_round(samples, filter, flood_key, FloodSample::cpu_ms_per_mpkt);
        let sending = by_round(samples, filter, flood_key, FloodSample::sending_ms_per_mpkt);
        let (sent, lost) = samples
            .iter()
            .filter(|s| s.filter == filter)
            .fold((0, 0), |(a, b), s| (a + s.probe.sent, b + s.probe.lost));
        let pps_ratio = paired(&pps, &nft_pps, false);
        let cpu_ratio = paired(&nft_cpu, &cpu, false);
        let floor_ratio = paired(&pps, &floor, false);
        if filter == Filter::PinholeNative {
            sum.flood_ratio = pps_ratio;
            sum.flood_floor_ratio = floor_ratio;
            sum.flood_cpu_ratio = cpu_ratio;
            sum.flood_wall_ratio = paired(&wall, &nft_wall, false);
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            filter.label(),
            fmt(med(&offered).map(|v| v / 1e3), 0),
            fmt(med(&wall).map(|v| v / 1e3), 0),
            fmt(med(&pps).map(|v| v / 1e3), 0),
            ratio(pps_ratio),
            ratio(floor_ratio),
            fmt(med(&cpu), 0),
            ratio(cpu_ratio),
            fmt(med(&sending), 0),
            if sent == 0 {
                "–".to_owned()
            } else {
                format!("{:.1} % of {sent}", lost as f64 * 100.0 / sent as f64)
            }
        );
    }
    out.push('\n');
}

fn media_section(out: &mut String, samples: &[MediaSample], sum: &mut Summary) {
    let rounds = samples.iter().map(|s| s.round).max().map_or(0, |r| r + 1);
    let _ = writeln!(
        out,
        "### 2. Media pass: 200-byte frames on an open call's RTP flow\n\n\
         Medians of {rounds} interleaved rounds. *delivered*: frames forwarded to the inside \
         host per second at the generator's full rate, of wall time and of sending-CPU time \
         (as in part 1). *RTT*: UDP ping-pong of 200-byte frames through the router, both \
         directions on the call's flow, no load; *added*: median over rounds of the \
         difference to no filter in the same round. The *(ref)* rows split pinhole's cost: \
         an empty XDP program in native mode is veth's XDP receive path alone; pinhole \
         without signaling capture adds the program; pinhole adds its NFQUEUE rules for \
         SIP/RTSP (iptables mangle, evaluated for every forwarded packet). The *(floor)* rows \
         write the inside host's MAC and redirect every frame to the inside interface through \
         a DEVMAP (no lookup, no TTL: the cheapest forward that the inside host still takes \
         as its own); *× floor* divides each XDP row by the floor of its \
         mode. A floor carries no call, so it has no RTT. The *--forward xdp* rows: pinhole \
         routes and redirects the call's media itself (FIB lookup, TTL, MACs, DEVMAP); in \
         native mode, and for the native floor, the hosts' veths get GRO and software \
         checksums (see README \"XDP forwarding\").\n\n\
         | filter | delivered kpps | delivered kpps per CPU-s | × nftables | × floor | router CPU ms/Mpkt | RTT p50 µs | RTT p99 µs | added p50 µs | added p99 µs |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let nft = by_round(
        samples,
        Filter::Nft,
        media_key,
        MediaSample::delivered_per_cpu_s,
    );
    let p = |q: f64| move |s: &MediaSample| s.rtt.rtt_us.quantile(q).unwrap_or(f64::NAN);
    let none50 = by_round(samples, Filter::Unfiltered, media_key, p(0.5));
    let none99 = by_round(samples, Filter::Unfiltered, media_key, p(0.99));
    let filters = Filter::ALL
        .into_iter()
        .chain(Filter::MEDIA_FORWARD)
        .chain(Filter::MEDIA_REFERENCES)
        .chain(Filter::MEDIA_FLOORS);
    for filter in filters {
        let wall = by_round(samples, filter, media_key, MediaSample::delivered_pps);
        if wall.is_empty() {
            continue;
        }
        let pps = by_round(samples, filter, media_key, MediaSample::delivered_per_cpu_s);
        let cpu = by_round(samples, filter, media_key, MediaSample::cpu_ms_per_mpkt);
        let p50 = by_round(samples, filter, media_key, p(0.5));
        let p99 = by_round(samples, filter, media_key, p(0.99));
        let r = paired(&pps, &nft, false);
        let floor_ratio = filter.media_floor().and_then(|f| {
            let floor = by_round(samples, f, media_key, MediaSample::delivered_per_cpu_s);
            paired(&pps, &floor, false)
        });
        let added50 = paired(&p50, &none50, true);
        if filter == Filter::PinholeNative {
            sum.media_ratio = r;
            sum.media_floor_ratio = floor_ratio;
        }
        sum.media_ratios.insert(filter, (r, floor_ratio));
        sum.media_added_p50.insert(filter, added50);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            filter.label(),
            fmt(med(&wall).map(|v| v / 1e3), 0),
            fmt(med(&pps).map(|v| v / 1e3), 0),
            ratio(r),
            ratio(floor_ratio),
            fmt(med(&cpu), 0),
            fmt(med(&p50), 1),
            fmt(med(&p99), 1),
            fmt(added50, 1),
            fmt(paired(&p99, &none99, true), 1),
        );
    }
    out.push('\n');
}

fn calls_section(out: &mut String, samples: &[CallSample], sum: &mut Summary) {
    let rounds = samples.iter().map(|s| s.round).max().map_or(0, |r| r + 1);
    let _ = writeln!(
        out,
        "### 3. Call setup with RTP (sipp), increasing rate\n\n\
         {rounds} round(s); each rate runs for a few seconds in a fresh lab. Each call: \
         INVITE/200/ACK, 5 RTP packets each way from the ACK on, BYE; every call on fresh \
         media ports. A filter's ramp stops at its first rate with a failed call or a media \
         packet dropped by the filter (its drop counter). *media delivered*: media packets \
         that reached the other host, counted as UDP to a port nobody listens on (sipp keeps \
         a socket on the first call's media port, so that call's 10 packets are not \
         counted).\n\n\
         | filter | calls/s | rounds lossless | calls | failed | media dropped | media delivered |\n\
         |---|---:|---:|---:|---:|---:|---:|"
    );
    let mut keys: Vec<(Filter, bool, u32)> = samples
        .iter()
        .map(|s| (s.filter, s.flow_per_call, s.rate))
        .collect();
    keys.sort();
    keys.dedup();
    for (filter, per_call, rate) in &keys {
        let runs: Vec<&CallSample> = samples
            .iter()
            .filter(|s| s.filter == *filter && s.flow_per_call == *per_call && s.rate == *rate)
            .collect();
        let ok = runs.iter().filter(|s| s.lossless()).count();
        let _ = writeln!(
            out,
            "| {} | {} | {ok} of {} | {} | {} | {} of {} | {} |",
            calls_label(*filter, *per_call),
            rate,
            runs.len(),
            runs.iter().map(|s| s.calls).sum::<u64>(),
            runs.iter()
                .map(|s| s.failed + (s.calls - s.successful.min(s.calls)))
                .sum::<u64>(),
            runs.iter().map(|s| s.media_dropped).sum::<u64>(),
            runs.iter().map(|s| s.media_sent).sum::<u64>(),
            runs.iter().map(|s| s.media_delivered).sum::<u64>(),
        );
    }
    sum.calls_run = !samples.is_empty();
    // The highest rate lossless in every round that ran it, below the first
    // rate that lost in any round.
    let best = |filter: Filter, per_call: bool| {
        let mut best = None;
        let mut rates: Vec<u32> = keys
            .iter()
            .filter(|k| k.0 == filter && k.1 == per_call)
            .map(|k| k.2)
            .collect();
        rates.sort();
        for rate in rates {
            let all_ok = samples
                .iter()
                .filter(|s| s.filter == filter && s.flow_per_call == per_call && s.rate == rate)
                .all(CallSample::lossless);
            if !all_ok {
                break;
            }
            best = Some(rate);
        }
        best
    };
    for filter in [Filter::PinholeNative, Filter::Nft, Filter::Unfiltered] {
        sum.max_lossless.insert(filter, best(filter, false));
    }
    let tested = keys.iter().map(|k| k.2).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "\nHighest lossless rate (of those tested, up to {tested} calls/s), all calls on one SIP \
         flow: pinhole {}, nftables {}, no filter {} (the control: a rate no filter passes \
         cleanly is within what sipp and the lab can drive).",
        show_rate(sum.max_lossless[&Filter::PinholeNative]),
        show_rate(sum.max_lossless[&Filter::Nft]),
        show_rate(sum.max_lossless[&Filter::Unfiltered]),
    );
    if keys.iter().any(|k| k.1) {
        let _ = writeln!(
            out,
            "With a SIP flow per call: nftables {}.",
            show_rate(best(Filter::Nft, true))
        );
    }
    let _ = writeln!(
        out,
        "\nWhere the peer loses media it loses whole calls (a diagnostic run that collected \
         the dropped tuples in an nftables set found both directions of single calls' ports): \
         the conntrack SIP helper keeps media expectations per signaling connection, and \
         every INVITE and BYE on that connection flushes them (`process_invite_request`, \
         `process_bye_request` in `nf_conntrack_sip.c`). With every call on one 5060 ↔ 5060 \
         flow, as between two proxies, a call whose media has not started when the next \
         INVITE or BYE passes has no expectation left. pinhole keeps per-call state.\n"
    );
}

fn calls_label(filter: Filter, per_call: bool) -> String {
    super::calls::label(filter, per_call)
}

fn show_rate(r: Option<u32>) -> String {
    r.map_or("none".into(), |r| format!("{r} calls/s"))
}

fn latency_section(out: &mut String, samples: &[LatencySample]) {
    let rounds = samples.iter().map(|s| s.round).max().map_or(0, |r| r + 1);
    let _ = writeln!(
        out,
        "### 5. Signaling → pinhole latency\n\n\
         The bench's SIP generator: calls at a fixed rate (INVITE/200/ACK/BYE through the \
         router), {rounds} round(s), a fresh lab and daemon per run. *daemon*: pinhole's own \
         histogram, signaling packet taken from the queue → flow map updated (median over \
         rounds of each run's p50/p99). *INVITE→200*: what the caller sees, both messages \
         through the router. *first RTP dropped*: each callee sends one RTP packet right after \
         its 200 OK and each caller one as soon as the 200 arrives; how many of those the \
         filter dropped.\n\n\
         | calls/s | filter | answered | daemon p50 µs | daemon p99 µs | INVITE→200 p50 µs | INVITE→200 p99 µs | first RTP dropped |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|"
    );
    let mut keys: Vec<(u32, Filter)> = samples
        .iter()
        .map(|s| (s.load.rate as u32, s.filter))
        .collect();
    keys.sort();
    keys.dedup();
    for (rate, filter) in keys {
        let runs: Vec<&LatencySample> = samples
            .iter()
            .filter(|s| s.filter == filter && s.load.rate as u32 == rate)
            .collect();
        let m = |f: &dyn Fn(&LatencySample) -> Option<f64>| {
            median(&runs.iter().filter_map(|s| f(s)).collect::<Vec<_>>())
        };
        let calls: u64 = runs.iter().map(|s| s.load.calls).sum();
        let _ = writeln!(
            out,
            "| {rate} | {} | {} of {calls} | {} | {} | {} | {} | {} of {} |",
            filter.label(),
            runs.iter().map(|s| s.load.answered).sum::<u64>(),
            fmt(m(&|s| s.daemon.and_then(|d| d.p50)), 0),
            fmt(m(&|s| s.daemon.and_then(|d| d.p99)), 0),
            fmt(m(&|s| s.load.setup_rtt_us.quantile(0.5)), 0),
            fmt(m(&|s| s.load.setup_rtt_us.quantile(0.99)), 0),
            runs.iter().map(|s| s.first_rtp_dropped).sum::<u64>(),
            2 * calls,
        );
    }
    out.push('\n');
}

fn list_load_section(out: &mut String, s: &ListLoadSample) {
    let us = |v: Option<f64>| fmt(v, 0);
    let _ = writeln!(
        out,
        "### 6. Signaling while `list --json` runs in a loop\n\n\
         A daemon holding {} pinholes (installed through the control socket) answers `list` \
         (what `pinhole list --json` asks) in a loop on one control connection while the SIP \
         generator of part 5 sets up calls at {:.0}/s for {:.0} s. Columns as in part 5; \
         *lists*: replies read while the calls ran, median seconds and size of one; \
         *longest step*: the controller task's longest uninterrupted step since start \
         (`stats`), the install included.\n\n\
         | pinholes | calls/s | answered | daemon p50 µs | daemon p99 µs | INVITE→200 p50 µs | INVITE→200 p99 µs | first RTP dropped | lists | s per list | MB per list | longest step µs |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {} | {:.0} | {} of {} | {} | {} | {} | {} | {} of {} | {} | {} | {:.0} | {} |\n",
        s.pinholes,
        s.load.rate,
        s.load.calls as f64 / s.load.rate.max(1.0),
        s.pinholes,
        s.load.rate,
        s.load.answered,
        s.load.calls,
        us(s.daemon.p50),
        us(s.daemon.p99),
        us(s.load.setup_rtt_us.quantile(0.5)),
        us(s.load.setup_rtt_us.quantile(0.99)),
        s.first_rtp_dropped,
        2 * s.load.calls,
        s.list_secs.0.len(),
        fmt(s.list_secs.quantile(0.5), 2),
        s.list_bytes.iter().copied().max().unwrap_or(0) as f64 / 1e6,
        s.longest_step_us.map_or("-".into(), |v| v.to_string()),
    );
}

/// `hit (pass)` ns/pkt by family and pinhole count from `pinhole-bench`'s
/// table.
pub fn per_packet_hits(markdown: &str) -> BTreeMap<(String, u64), f64> {
    let mut out = BTreeMap::new();
    for line in markdown.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells.len() < 4 || !cells[0].starts_with("hit") {
            continue;
        }
        let (Some(n), Ok(ns)) = (parse_count(cells[2]), cells[3].parse::<f64>()) else {
            continue;
        };
        out.insert((cells[1].to_owned(), n), ns);
    }
    out
}

fn parse_count(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1_000),
        'M' => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn scale_section(
    out: &mut String,
    samples: Option<&[ScaleSample]>,
    per_packet: Option<&str>,
    sum: &mut Summary,
) {
    let hits = per_packet.map(per_packet_hits).unwrap_or_default();
    let families: Vec<String> = {
        let mut f: Vec<String> = hits.keys().map(|k| k.0.clone()).collect();
        f.dedup();
        f
    };
    let mut sizes: Vec<u64> = samples
        .unwrap_or_default()
        .iter()
        .map(|s| u64::from(s.pinholes))
        .chain(hits.keys().map(|k| k.1))
        .collect();
    sizes.sort();
    sizes.dedup();
    let _ = writeln!(
        out,
        "### 4. Scale\n\n\
         *hit ns/pkt*: `pinhole-bench` (BPF_PROG_TEST_RUN, a hit on an open pinhole, median \
         thread CPU ns per run), ratio to the same family at the smallest size. *maps*: \
         `memlock` of every BPF map the daemon holds (`/proc/<pid>/fdinfo`); the flow maps \
         are preallocated hash maps, so this follows their capacity, not their fill. \
         *install*: opens written back to back on one control-socket connection; the daemon \
         makes one BPF_MAP_UPDATE_ELEM per flow (aya 0.14 has no batched update).\n"
    );
    let mut header =
        "| pinholes | flow capacity per family | maps MiB | daemon RSS MiB | install s | pinholes/s |"
            .to_owned();
    let mut rule = "|---:|---:|---:|---:|---:|---:|".to_owned();
    for f in &families {
        header.push_str(&format!(" {f} hit ns/pkt | × {} |", human(sizes[0])));
        rule.push_str("---:|---:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for &n in &sizes {
        let s = samples
            .unwrap_or_default()
            .iter()
            .find(|s| u64::from(s.pinholes) == n);
        let mut row = format!(
            "| {} | {} | {} | {} | {} | {} |",
            human(n),
            s.map_or("–".into(), |s| s.capacity.to_string()),
            fmt(s.map(|s| s.map_bytes() as f64 / 1048576.0), 1),
            fmt(s.map(|s| s.rss_after as f64 / 1048576.0), 1),
            fmt(s.map(|s| s.install_secs), 2),
            fmt(s.map(ScaleSample::per_sec), 0),
        );
        for f in &families {
            let ns = hits.get(&(f.clone(), n)).copied();
            let base = hits.get(&(f.clone(), sizes[0])).copied();
            let r = ns.zip(base).map(|(a, b)| a / b);
            row.push_str(&format!(" {} | {} |", fmt(ns, 1), ratio(r)));
            if n == 1_000_000 && sizes[0] == 1_000 {
                sum.scale_ratio.push((f.clone(), r));
            }
        }
        let _ = writeln!(out, "{row}");
    }
    if let Some(samples) = samples {
        for s in samples {
            let _ = writeln!(
                out,
                "\n- {} pinholes: {} flows; daemon RSS {:.1} MiB before the opens; maps: {}",
                human(u64::from(s.pinholes)),
                s.flows,
                s.rss_before as f64 / 1048576.0,
                s.maps
                    .iter()
                    .map(|m| format!(
                        "#{} type {} max {} → {:.1} MiB",
                        m.id,
                        m.map_type,
                        m.max_entries,
                        m.memlock as f64 / 1048576.0
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    out.push('\n');
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

fn goals_section(out: &mut String, sum: &Summary) {
    let _ = writeln!(
        out,
        "### Goals\n\n| goal | measured | verdict |\n|---|---|---|"
    );
    let _ = writeln!(
        out,
        "| flood drop ≥ {FLOOD_GOAL}× the nftables peer (native) | {} packets per CPU-second ({} per wall second); {} less router CPU per packet | {} |",
        ratio(sum.flood_ratio),
        ratio(sum.flood_wall_ratio),
        ratio(sum.flood_cpu_ratio),
        verdict(sum.flood_ratio.map(|r| r >= FLOOD_GOAL))
    );
    let _ = writeln!(
        out,
        "| flood drop ≥ {FLOOD_FLOOR_GOAL}× the drop floor (native) | {} packets per CPU-second | {} |",
        ratio(sum.flood_floor_ratio),
        verdict(sum.flood_floor_ratio.map(|r| r >= FLOOD_FLOOR_GOAL))
    );
    let added = |f: Filter| sum.media_added_p50.get(&f).copied().flatten();
    let media_met = sum.media_ratio.map(|r| {
        r >= 1.0
            && match (added(Filter::PinholeNative), added(Filter::Nft)) {
                (Some(a), Some(b)) => a <= b,
                _ => true,
            }
    });
    let _ = writeln!(
        out,
        "| media pass no worse than the peer | {} packets per CPU-second ({} of the redirect floor); added RTT p50 {} µs vs {} µs | {} |",
        ratio(sum.media_ratio),
        ratio(sum.media_floor_ratio),
        fmt(added(Filter::PinholeNative), 1),
        fmt(added(Filter::Nft), 1),
        verdict(media_met)
    );
    // Issue 11's media targets, against the peer per CPU-second.
    for (filter, goal) in [
        (Filter::PinholeFwdSkb, FWD_SKB_GOAL),
        (Filter::PinholeFwdNative, FWD_NATIVE_GOAL),
        (Filter::PinholeSkb, 1.0),
    ] {
        let (r, floor) = sum
            .media_ratios
            .get(&filter)
            .copied()
            .unwrap_or((None, None));
        let _ = writeln!(
            out,
            "| media pass, {} ≥ {goal}× the peer | {} packets per CPU-second ({} of its floor) | {} |",
            filter.label(),
            ratio(r),
            ratio(floor),
            verdict(r.map(|r| r >= goal))
        );
    }
    let (p, n) = (
        sum.max_lossless
            .get(&Filter::PinholeNative)
            .copied()
            .flatten(),
        sum.max_lossless.get(&Filter::Nft).copied().flatten(),
    );
    let show = |r: Option<u32>| r.map_or("none".into(), |r| format!("{r}"));
    let _ = writeln!(
        out,
        "| call setup rate ≥ the peer's, zero loss | highest lossless calls/s: pinhole {}, nftables {} | {} |",
        show(p),
        show(n),
        verdict(sum.calls_run.then(|| p.unwrap_or(0) >= n.unwrap_or(0) && p.is_some()))
    );
    let scale: Vec<String> = sum
        .scale_ratio
        .iter()
        .map(|(f, r)| format!("{f} {}", ratio(*r)))
        .collect();
    let scale_met = (!sum.scale_ratio.is_empty()).then(|| {
        sum.scale_ratio
            .iter()
            .all(|(_, r)| r.is_some_and(|r| r <= SCALE_GOAL))
    });
    let _ = writeln!(
        out,
        "| 1M pinholes: per-packet cost ≤ {SCALE_GOAL}× of 1k | {} | {} |\n",
        if scale.is_empty() {
            "–".to_owned()
        } else {
            scale.join(", ")
        },
        verdict(scale_met)
    );
}

/// The Markdown report.
pub fn markdown(all: &AllResults) -> (String, Summary) {
    let mut sum = Summary::default();
    let mut out = String::new();
    let m = &all.machine;
    let _ = writeln!(
        out,
        "## Lab bench: pinhole vs nftables + conntrack SIP helper\n\n\
         {} on {} ({} vCPUs), kernel {}, {}. Lab: three network namespaces, outside → router → \
         inside, over veth pairs; the router forwards, with one filter at a time: pinhole \
         (XDP on both router interfaces, native or skb mode, inline SIP signaling), the \
         nftables peer (`ct helper` \"sip\" on UDP 5060, `ct state established,related accept`, \
         drop other UDP to 10000-20000), or nothing. Generator: an AF_PACKET `sendmmsg` \
         process pinned to one CPU in the outside namespace.{}\n",
        m.date,
        m.cpu_model,
        m.cpus,
        m.kernel,
        format_args!("{:.0} s wall", all.wall_secs),
        if all.quick {
            " **Quick smoke run: too short to quote.**"
        } else {
            ""
        }
    );
    if let Some(dp) = &all.dataplane {
        if !dp.flood.is_empty() {
            flood_section(&mut out, &dp.flood, &mut sum);
        }
        if !dp.media.is_empty() {
            media_section(&mut out, &dp.media, &mut sum);
        }
    }
    if let Some(c) = &all.calls {
        calls_section(&mut out, c, &mut sum);
    }
    if all.scale.is_some() || all.per_packet.is_some() {
        scale_section(
            &mut out,
            all.scale.as_deref(),
            all.per_packet.as_deref(),
            &mut sum,
        );
    }
    if let Some(l) = &all.latency {
        latency_section(&mut out, l);
    }
    if let Some(l) = &all.list_load {
        list_load_section(&mut out, l);
    }
    goals_section(&mut out, &sum);
    if !all.errors.is_empty() {
        let _ = writeln!(out, "### Parts that failed\n");
        for e in &all.errors {
            let _ = writeln!(out, "- {}", e.replace('\n', " "));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "### Method\n\n\
         - **Interleaving.** Every round runs every filter once (A B C D, A B C D, …) in the \
         same lab; the tables give medians and per-round ratios from this one session \
         (run-to-run spread on this machine is 2–29 %).\n\
         - **Keeping the generator's cost out.** The generator is its own process, pinned \
         to one CPU. What it does in process context (building batches, `sendmmsg`, \
         AF_PACKET, the veth transmit that queues each frame for the router) is user/system \
         time. Everything the router does with a frame (veth NAPI poll, XDP, generic XDP, \
         netfilter, conntrack, forwarding, and the inside host's receive) runs in NET_RX \
         softirq on that same CPU, which `/proc/stat` accounts as softirq time even when it \
         runs on the back of the generator's syscall. *Router CPU* is the softirq + hardirq \
         delta of the generator's CPU line in `/proc/stat` between its first and last send, \
         so the generator's own work is not in it. The generator's getrusage cannot simply be \
         subtracted from a total: this kernel has no IRQ time accounting, so softirq work \
         done on the back of its syscalls is charged to its system time as well. (The kernel \
         samples at each tick, 250 Hz; other processes on this shared machine add a little \
         softirq time.)\n\
         - **Packets per second.** On veth the router's work runs on the sending CPU, beside \
         the generator (native XDP too: veth runs XDP in its receive poll on the sender's \
         CPU), so a blast measures generator + filter on one CPU. The wall-clock rate also \
         depends on whatever else the shared machine runs; *per CPU-s* divides by the \
         sending CPU's exact runtime instead (the generator thread's plus that CPU's \
         ksoftirqd's, from the scheduler), which is the rate the two would reach with the \
         CPU to themselves. veth \"native\" mode copies each frame before XDP sees it; on a \
         NIC, native XDP drops before any allocation.\n\
         - **pinhole** runs with inline signaling (its default: SIP through NFQUEUE), so the \
         media path of every case is opened by a real INVITE/200 exchange, as is the \
         nftables peer's (conntrack expectation). The bench raises `--max-calls-per-peer` \
         (all load comes from one caller address).\n\
         - **Per-packet cost** (`pinhole-bench`) is BPF_PROG_TEST_RUN, no generator at all.\n\n\
         Reproduce (root, Debian 12): `cargo xtask bench` (full, about 10 min) or \
         `cargo xtask bench --quick` (smoke, about 1 min); the raw samples are in \
         `lab-results.json`, and `pinhole-labbench report lab-results.json` redraws table and \
         plot from them. This run: `{}`.\n",
        all.command
    );
    if let Some(pp) = &all.per_packet {
        let _ = writeln!(out, "### Per-packet cost (BPF_PROG_TEST_RUN)\n");
        for line in pp.lines() {
            // Demote the bench's own headings under this section.
            let line = match line.strip_prefix('#') {
                Some(rest) if line.starts_with("# ") || line.starts_with("## ") => {
                    format!("####{rest}")
                }
                _ => line.to_owned(),
            };
            let _ = writeln!(out, "{line}");
        }
    }
    (out, sum)
}

/// Bars of one panel: label, median, min, max.
type Bars = Vec<(Filter, f64, f64, f64)>;

fn bars<T>(
    samples: &[T],
    key: impl Fn(&T) -> (Filter, usize) + Copy,
    f: impl Fn(&T) -> f64 + Copy,
) -> Bars {
    Filter::ALL
        .into_iter()
        .chain(Filter::MEDIA_FORWARD)
        .chain(Filter::MEDIA_REFERENCES)
        .chain(Filter::FLOOD_FLOORS)
        .chain(Filter::MEDIA_FLOORS)
        .filter_map(|filter| {
            let m = by_round(samples, filter, key, f);
            let (lo, hi) = min_max(&m);
            med(&m).map(|v| (filter, v, lo, hi))
        })
        .collect()
}

fn color(f: Filter) -> plotters::style::RGBColor {
    use plotters::style::RGBColor;
    match f {
        Filter::PinholeNative => RGBColor(0x1b, 0x7a, 0x3e),
        Filter::PinholeSkb => RGBColor(0x6d, 0xb8, 0x7c),
        Filter::Nft => RGBColor(0xd9, 0x6c, 0x1e),
        Filter::Unfiltered => RGBColor(0x9a, 0x9a, 0x9a),
        Filter::PinholeNoSignaling => RGBColor(0x3f, 0x9a, 0x5c),
        Filter::XdpEmpty => RGBColor(0x6f, 0x6f, 0x9f),
        Filter::FloorDrop | Filter::FloorRedirectNative | Filter::FloorRedirectSkb => {
            RGBColor(0x4a, 0x4a, 0x4a)
        }
        Filter::PinholeFwdNative => RGBColor(0x0b, 0x4f, 0x27),
        Filter::PinholeFwdSkb => RGBColor(0x2e, 0x8b, 0x57),
    }
}

/// The plot: flood absorbed, flood CPU per packet and media delivered, one
/// bar per filter (median, whiskers min–max over rounds).
pub fn plot(all: &AllResults, path: &Path) -> Result<bool> {
    use plotters::{
        prelude::*,
        style::text_anchor::{HPos, Pos, VPos},
    };
    let Some(dp) = &all.dataplane else {
        return Ok(false);
    };
    let panels: Vec<(&str, &str, Bars)> = [
        (
            "Flood drop, 64 B: absorbed",
            "kpps per CPU-second (higher is better)",
            bars(&dp.flood, flood_key, |s| s.absorbed_per_cpu_s() / 1e3),
        ),
        (
            "Flood drop: router CPU per packet",
            "softirq ms per M packets (lower is better)",
            bars(&dp.flood, flood_key, FloodSample::cpu_ms_per_mpkt),
        ),
        (
            "Media pass, 200 B: delivered",
            "kpps per CPU-second (higher is better)",
            bars(&dp.media, media_key, |s| s.delivered_per_cpu_s() / 1e3),
        ),
    ]
    .into_iter()
    .filter(|p| !p.2.is_empty())
    .collect();
    if panels.is_empty() {
        return Ok(false);
    }
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        // Room for the labels of the widest panel's bars.
        let most = panels.iter().map(|p| p.2.len()).max().unwrap_or(1) as u32;
        let width = (70 * most + 80).max(420);
        let root = SVGBackend::new(path, (width * panels.len() as u32, 440)).into_drawing_area();
        root.fill(&WHITE)?;
        let (title, body) = root.split_vertically(36);
        title.draw_text(
            &format!(
                "pinhole vs nftables + SIP helper, veth lab, {} vCPUs, kernel {} (medians, min–max)",
                all.machine.cpus, all.machine.kernel
            ),
            &("sans-serif", 16).into_font().color(&BLACK),
            (10, 10),
        )?;
        let areas = body.split_evenly((1, panels.len()));
        for (area, (caption, ylabel, data)) in areas.iter().zip(&panels) {
            let top = data.iter().map(|b| b.3.max(b.1)).fold(0.0, f64::max) * 1.15;
            let n = data.len();
            let mut chart = ChartBuilder::on(area)
                .caption(*caption, ("sans-serif", 15))
                .margin(12)
                .x_label_area_size(52)
                .y_label_area_size(56)
                .build_cartesian_2d((0..n as i32 - 1).into_segmented(), 0.0..top.max(1e-9))?;
            let labels: Vec<&str> = data.iter().map(|b| short(b.0)).collect();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .light_line_style(TRANSPARENT)
                .y_labels(6)
                .y_label_formatter(&|v| format!("{v:.0}"))
                .y_desc(*ylabel)
                .x_labels(n)
                .x_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => labels
                        .get(*i as usize)
                        .map_or(String::new(), |s| s.to_string()),
                    SegmentValue::Last => String::new(),
                })
                .draw()?;
            chart.draw_series(data.iter().enumerate().map(|(i, b)| {
                let i = i as i32;
                let mut r = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), b.1),
                    ],
                    color(b.0).filled(),
                );
                r.set_margin(0, 0, 14, 14);
                r
            }))?;
            chart.draw_series(data.iter().enumerate().map(|(i, b)| {
                PathElement::new(
                    vec![
                        (SegmentValue::CenterOf(i as i32), b.2),
                        (SegmentValue::CenterOf(i as i32), b.3),
                    ],
                    BLACK.stroke_width(2),
                )
            }))?;
            chart.draw_series(data.iter().enumerate().map(|(i, b)| {
                Text::new(
                    format!("{:.0}", b.1),
                    (SegmentValue::CenterOf(i as i32), b.3.max(b.1) + top * 0.02),
                    ("sans-serif", 13)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Bottom)),
                )
            }))?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
    Ok(true)
}

fn short(f: Filter) -> &'static str {
    match f {
        Filter::PinholeNative => "pinhole native",
        Filter::PinholeSkb => "pinhole skb",
        Filter::Nft => "nftables",
        Filter::Unfiltered => "no filter",
        Filter::PinholeNoSignaling => "pinhole, no sig.",
        Filter::XdpEmpty => "empty XDP",
        Filter::FloorDrop => "drop floor",
        Filter::FloorRedirectNative => "redirect floor",
        Filter::FloorRedirectSkb => "redirect floor skb",
        Filter::PinholeFwdNative => "fwd xdp native",
        Filter::PinholeFwdSkb => "fwd xdp skb",
    }
}

/// Writes the table and the plot into `dir`.
pub fn write(all: &AllResults, dir: &Path) -> Result<()> {
    let (mut md, _) = markdown(all);
    let plot_path = dir.join(PLOT_FILE);
    if plot(all, &plot_path)? {
        md = md.replacen(
            "### 1.",
            &format!("![pinhole vs nftables, veth lab]({PLOT_FILE})\n\n### 1."),
            1,
        );
    }
    let table = dir.join(TABLE_FILE);
    std::fs::write(&table, md).with_context(|| format!("writing {}", table.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_packet_table_rows() {
        let md = "# pinhole XDP benchmark\n\n| case | family | pinholes | ns/pkt | ratio to empty | kernel ns/pkt |\n\
                  |---|---|---:|---:|---:|---:|\n\
                  | empty program | IPv4 | 1k | 20.1 | 1.00x | 20 |\n\
                  | hit (pass) | IPv4 | 1k | 60.5 | 3.01x | 60 |\n\
                  | hit (pass) | IPv6 | 1M | 90.0 | 4.00x | 90 |\n\
                  | hit (pass) | IPv4 | lots | 1.0 | 1x | 1 |\n";
        let hits = per_packet_hits(md);
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[&("IPv4".to_owned(), 1_000)], 60.5);
        assert_eq!(hits[&("IPv6".to_owned(), 1_000_000)], 90.0);
        for (s, n) in [
            ("1k", Some(1000)),
            ("100k", Some(100_000)),
            ("1M", Some(1_000_000)),
            ("7", Some(7)),
            ("", None),
            ("k", None),
            ("x", None),
        ] {
            assert_eq!(parse_count(s), n, "{s:?}");
        }
    }

    #[test]
    fn paired_ratios_use_the_same_round() {
        let a = BTreeMap::from([(0, 300.0), (1, 330.0), (2, 100.0)]);
        let b = BTreeMap::from([(0, 100.0), (1, 110.0)]);
        assert_eq!(paired(&a, &b, false), Some(3.0));
        assert_eq!(paired(&a, &b, true), Some(210.0));
        assert_eq!(paired(&a, &BTreeMap::new(), false), None);
    }

    #[test]
    fn empty_results_still_make_a_report() {
        let all = AllResults::default();
        let (md, sum) = markdown(&all);
        assert!(md.contains("### Goals"));
        assert!(md.contains("not measured"));
        assert!(sum.flood_ratio.is_none());
        let dir = pinhole_integration::TempDir::new().unwrap();
        write(&all, dir.path()).unwrap();
        assert!(dir.path().join(TABLE_FILE).exists());
        assert!(!dir.path().join(PLOT_FILE).exists());
    }
}
