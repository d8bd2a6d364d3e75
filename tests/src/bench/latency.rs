//! Part 5: signaling → pinhole latency at fixed call-setup rates, driven by
//! the bench's SIP generator ([`super::sip::load`]).
//!
//! Each run gets a fresh lab and daemon, so the daemon's
//! `signaling.setup_latency_us` (signaling packet taken from the queue →
//! flow map updated) covers that run only. The same generator runs against
//! the nftables peer and plain forwarding too, for what a caller sees
//! (INVITE sent → 200 OK received, both through the router) and for the
//! first-RTP race: each callee sends its first RTP packet right after its
//! 200 OK, each caller as soon as the 200 OK arrives; the filter's drop
//! counter says how many of those first packets it dropped.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{
    lab::{BenchLab, Filter},
    sip::{self, LoadReport, RawUdp},
};

#[derive(Clone, Debug)]
pub struct Config {
    pub rounds: usize,
    pub rates: Vec<u32>,
    pub secs: f64,
    pub filters: Vec<Filter>,
}

/// `signaling.setup_latency_us` of `stats --json`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct DaemonLatency {
    pub count: u64,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LatencySample {
    pub filter: Filter,
    pub round: usize,
    pub load: LoadReport,
    /// The daemon's own histogram (pinhole only).
    pub daemon: Option<DaemonLatency>,
    /// First RTP packets (two per call) the filter dropped.
    pub first_rtp_dropped: u64,
}

fn one(filter: Filter, rate: u32, round: usize, secs: f64) -> Result<LatencySample> {
    let lab = BenchLab::new()?;
    let active = lab.start(filter, &["--bye-grace", "1"])?;
    let uac = lab.udp(true, sip::SIP_PORT)?;
    let uas = lab.udp(false, sip::SIP_PORT)?;
    let caller_rtp = lab.topo.outside.run_in(RawUdp::open)??;
    let callee_rtp = lab.topo.inside.run_in(RawUdp::open)??;
    let run_id = format!("lat-{}-{round}-{rate}", std::process::id());
    let spec = sip::LoadSpec {
        run_id: &run_id,
        rate: f64::from(rate),
        secs,
        media_base: super::lab::MEDIA_LO,
        media_span: 5_000,
    };
    let load = sip::load(&uac, &uas, &spec, Some((&caller_rtp, &callee_rtp)))?;
    let daemon = match active.daemon() {
        Some(d) => {
            let l = d
                .stats()?
                .signaling
                .context("the daemon reports no signaling stats")?
                .setup_latency_us;
            Some(DaemonLatency {
                count: l.count,
                p50: l.p50,
                p99: l.p99,
            })
        }
        None => None,
    };
    Ok(LatencySample {
        filter,
        round,
        load,
        daemon,
        first_rtp_dropped: active.dropped()?,
    })
}

pub fn run(cfg: &Config, progress: &mut dyn FnMut(&str)) -> Result<Vec<LatencySample>> {
    let mut out = Vec::new();
    for round in 0..cfg.rounds {
        for &rate in &cfg.rates {
            for &filter in &cfg.filters {
                let s = one(filter, rate, round, cfg.secs)
                    .with_context(|| format!("signaling at {rate} cps, {}", filter.label()))?;
                let d = s.daemon.as_ref();
                progress(&format!(
                    "round {} {:<22} {:>5} cps: {}/{} answered, INVITE→200 p50 {:.0} µs p99 {:.0} µs, \
                     daemon p50 {} p99 {} µs, first RTP dropped {}/{}, pacer lag {:.1} ms",
                    round + 1,
                    s.filter.label(),
                    rate,
                    s.load.answered,
                    s.load.calls,
                    s.load.setup_rtt_us.quantile(0.5).unwrap_or(f64::NAN),
                    s.load.setup_rtt_us.quantile(0.99).unwrap_or(f64::NAN),
                    d.and_then(|d| d.p50).map_or("-".into(), |v| format!("{v:.0}")),
                    d.and_then(|d| d.p99).map_or("-".into(), |v| format!("{v:.0}")),
                    s.first_rtp_dropped,
                    2 * s.load.calls,
                    s.load.max_lag_ms,
                ));
                out.push(s);
            }
        }
    }
    Ok(out)
}
