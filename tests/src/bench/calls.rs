//! Part 3: call setup through the router with sipp and RTP, at increasing
//! rates, pinhole (native, inline signaling) against the nftables peer.
//!
//! Each run gets a fresh lab (no conntrack entry, expectation or pinhole
//! survives from an earlier run) with one filter on the router. sipp's
//! caller (`tests/sipp/bench/uac_load.xml`) places `rate × secs` calls; each
//! offers a fresh media port, plays 5 RTP packets (20 ms apart) after the
//! ACK, and hangs up 300 ms later; the callee answers on a fresh port and
//! plays 5 packets back on the ACK. A call that fails, or any media packet
//! the filter drops, is a loss: the ramp for a filter stops at its first
//! lossy rate within a round.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use pinhole_integration::{sipp::rtp_pcap, wait_for, Family, Netns, TempDir};
use serde::{Deserialize, Serialize};

use super::{
    lab::{BenchLab, Filter},
    sys,
};

/// RTP packets per direction per call.
pub const RTP_PER_CALL: u32 = 5;
const RTP_INTERVAL: Duration = Duration::from_millis(20);
const MEDIA_BASE: u16 = 10_000;

#[derive(Clone, Debug)]
pub struct Config {
    pub rounds: usize,
    pub rates: Vec<u32>,
    /// Seconds of calls per rate.
    pub secs: f64,
    /// Filters, each with all calls on one SIP flow (`false`: sipp `-t u1`,
    /// as between two proxies) or a SIP flow of its own per call (`true`:
    /// `-t un`).
    pub cases: Vec<(Filter, bool)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallSample {
    pub filter: Filter,
    /// Each call from its own caller SIP port (sipp `-t un`) instead of all
    /// calls on one 5060 ↔ 5060 flow.
    #[serde(default)]
    pub flow_per_call: bool,
    pub round: usize,
    pub rate: u32,
    pub calls: u64,
    pub successful: u64,
    pub failed: u64,
    /// Media packets the filter dropped.
    pub media_dropped: u64,
    /// Media packets the calls sent (both directions).
    pub media_sent: u64,
    /// Media packets that reached the other host (its UDP `NoPorts`: sipp
    /// sends RTP from a raw socket and nobody listens on the media ports).
    pub media_delivered: u64,
    /// sipp's exit status (0: every call completed its scenario).
    pub exit_code: Option<i32>,
    /// Wall time of the caller's run.
    pub secs: f64,
    /// pinhole's `stats --json` → `signaling` after the run.
    #[serde(default)]
    pub signaling: Option<serde_json::Value>,
}

impl CallSample {
    pub fn lossless(&self) -> bool {
        self.failed == 0 && self.successful == self.calls && self.media_dropped == 0
    }
}

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp/bench")
}

/// A scratch copy of the bench scenarios with `rtp.pcap` next to them.
fn scratch() -> Result<TempDir> {
    let dir = TempDir::new()?;
    for name in ["uac_load.xml", "uas_load.xml"] {
        std::fs::copy(scenario_dir().join(name), dir.path().join(name))
            .with_context(|| format!("copying {name}"))?;
    }
    std::fs::write(
        dir.path().join("rtp.pcap"),
        rtp_pcap(RTP_PER_CALL, RTP_INTERVAL),
    )?;
    Ok(dir)
}

/// `Successful call` and `Failed call` (cumulative) from sipp's final
/// statistics screen.
pub fn parse_counts(screen: &str) -> Option<(u64, u64)> {
    let last = |name: &str| {
        screen
            .lines()
            .rfind(|l| l.contains(name))
            .and_then(|l| l.rsplit('|').next())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((last("Successful call")?, last("Failed call")?))
}

fn sipp(ns: &Netns, dir: &Path, log: &str, args: &[String]) -> Result<std::process::Child> {
    pinhole_integration::sipp::spawn_logged(ns, dir, log, args).context("starting sipp")
}

fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> Result<Option<i32>> {
    let status = wait_for("sipp to exit", timeout, || {
        child
            .try_wait()
            .map_err(|e| pinhole_integration::Error::Setup(e.to_string()))
    });
    match status {
        Ok(s) => Ok(s.code()),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e.into())
        }
    }
}

/// A case's label.
pub fn label(filter: Filter, flow_per_call: bool) -> String {
    if flow_per_call {
        format!("{}, a SIP flow per call", filter.label())
    } else {
        filter.label().to_owned()
    }
}

fn one(
    (filter, flow_per_call): (Filter, bool),
    rate: u32,
    round: usize,
    secs: f64,
) -> Result<CallSample> {
    let lab = BenchLab::new()?;
    let active = lab.start(filter, &[])?;
    let dir = scratch()?;
    let calls = ((f64::from(rate) * secs).round() as u64).max(1);
    let (caller, callee) = (Family::V4.outside(), Family::V4.inside());
    let common = |ip: std::net::IpAddr, transport: &str| {
        vec![
            "-t".to_owned(),
            transport.to_owned(),
            "-i".to_owned(),
            ip.to_string(),
            "-p".to_owned(),
            "5060".to_owned(),
            "-mi".to_owned(),
            ip.to_string(),
            "-mp".to_owned(),
            MEDIA_BASE.to_string(),
            "-m".to_owned(),
            calls.to_string(),
            // No throttling by sipp's own limit on simultaneous calls.
            "-l".to_owned(),
            "100000".to_owned(),
            // One socket per call with `-t un`: stay below the fd limit.
            "-max_socket".to_owned(),
            "4096".to_owned(),
            // A call whose next message does not come in 3 s fails then,
            // not after SIP's 32 s transaction timeout.
            "-recv_timeout".to_owned(),
            "3000".to_owned(),
            "-nostdin".to_owned(),
            "-timeout".to_owned(),
            format!("{}s", (calls as f64 / f64::from(rate)) as u64 + 30),
        ]
    };
    let mut uas_args = vec!["-sf".to_owned(), "uas_load.xml".to_owned()];
    uas_args.extend(common(callee, "u1"));
    let no_ports = || -> Result<u64> {
        Ok(sys::udp_no_ports(&lab.topo.outside)? + sys::udp_no_ports(&lab.topo.inside)?)
    };
    let delivered_before = no_ports()?;
    let mut uas = sipp(&lab.topo.inside, dir.path(), "uas.log", &uas_args)?;
    wait_for("sipp's callee to listen", Duration::from_secs(10), || {
        let out = lab.topo.inside.exec("ss", &["-Hlnu", "sport = :5060"])?;
        Ok((!out.trim().is_empty()).then_some(()))
    })?;
    let mut uac_args = vec![
        format!("{callee}:5060"),
        "-sf".to_owned(),
        "uac_load.xml".to_owned(),
        "-r".to_owned(),
        rate.to_string(),
    ];
    uac_args.extend(common(caller, if flow_per_call { "un" } else { "u1" }));
    let start = Instant::now();
    let mut uac = sipp(&lab.topo.outside, dir.path(), "uac.log", &uac_args)?;
    let limit = Duration::from_secs_f64(calls as f64 / f64::from(rate) + 40.0);
    let exit_code = wait_exit(&mut uac, limit)?;
    let wall = start.elapsed().as_secs_f64();
    let _ = wait_exit(&mut uas, Duration::from_secs(5));
    let screen = std::fs::read_to_string(dir.path().join("uac.log")).unwrap_or_default();
    let Some((successful, failed)) = parse_counts(&screen) else {
        bail!(
            "no call statistics in sipp's output (exit {exit_code:?}):\n{}",
            screen.lines().rev().take(30).collect::<Vec<_>>().join("\n")
        );
    };
    let media_dropped = active.dropped()?;
    let signaling = match active.daemon() {
        Some(d) => d
            .cli_ok(&["stats", "--json"])
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("signaling").cloned()),
        None => None,
    };
    let media_delivered = no_ports()? - delivered_before;
    Ok(CallSample {
        filter,
        flow_per_call,
        round,
        rate,
        calls,
        successful,
        failed,
        media_dropped,
        media_sent: successful * 2 * u64::from(RTP_PER_CALL),
        media_delivered,
        exit_code,
        secs: wall,
        signaling,
    })
}

pub fn run(cfg: &Config, progress: &mut dyn FnMut(&str)) -> Result<Vec<CallSample>> {
    let mut out = Vec::new();
    for round in 0..cfg.rounds {
        let mut stopped: Vec<(Filter, bool)> = Vec::new();
        for &rate in &cfg.rates {
            for &case in &cfg.cases {
                if stopped.contains(&case) {
                    continue;
                }
                let name = label(case.0, case.1);
                let s = one(case, rate, round, cfg.secs)
                    .with_context(|| format!("call setup at {rate} cps, {name}"))?;
                progress(&format!(
                    "round {} {:<22} {:>4} cps: {}/{} calls ok, {} failed, {} of {} media packets \
                     dropped, {} delivered",
                    round + 1,
                    name,
                    rate,
                    s.successful,
                    s.calls,
                    s.failed,
                    s.media_dropped,
                    s.media_sent,
                    s.media_delivered
                ));
                if !s.lossless() {
                    stopped.push(case);
                }
                out.push(s);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipp_screen_counts() {
        let screen = "  Successful call        |        0                  |        0\n\
                      junk\n\
                      \x1b[2J  Successful call        |       12                  |       40\n\
                      \x20 Failed call            |        1                  |        3\n";
        assert_eq!(parse_counts(screen), Some((40, 3)));
        assert_eq!(parse_counts(""), None);
        assert_eq!(
            parse_counts("  Successful call | 1 | x\n  Failed call | 0 | 0\n"),
            None
        );
    }

    #[test]
    fn bench_scenarios_exist() {
        for name in ["uac_load.xml", "uas_load.xml"] {
            let text = std::fs::read_to_string(scenario_dir().join(name)).unwrap();
            assert!(text.contains("[auto_media_port]"), "{name}");
            assert!(text.contains("play_pcap_audio=\"rtp.pcap\""), "{name}");
        }
    }
}
