//! Parts 1 and 2: flood drop and media pass, every filter in one lab,
//! interleaved (A B C D, A B C D, …).
//!
//! Each case of each round: put the filter on the router, set up a call
//! through it with the bench's SIP agents (pinhole's inline signaling or the
//! conntrack SIP helper opens the media path; no filter just forwards), then
//! - flood: the generator blasts 64-byte UDP frames from the outside host to
//!   64 media ports of the inside host that no call opened, while a probe
//!   pings the open call's media path every 2 ms on the generator's CPU;
//! - media pass: the generator blasts 200-byte frames on the open call's
//!   RTP flow (caller → callee);
//! - latency: a ping-pong of 200-byte frames on the same flow.

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::{Context, Result};
use pinhole_integration::Topology;
use serde::{Deserialize, Serialize};

use super::{
    blast::{self, BlastReport, BlastSpec},
    lab::{Active, BenchLab, Filter, CALLEE_RTP, CALLER_RTP},
    pingpong::{self, PingOpts, PingReport},
    sys::{self, LinkStats},
};

/// First destination port of the flood and how many it cycles over.
pub const FLOOD_PORT: u16 = 10_100;
pub const FLOOD_PORTS: u16 = 64;
/// The flood's source.
const FLOOD_SRC_PORT: u16 = 40_000;

#[derive(Clone, Debug)]
pub struct Config {
    pub rounds: usize,
    /// Seconds per blast.
    pub secs: f64,
    /// Pings of the latency measurement.
    pub pings: u64,
    pub flood: bool,
    pub media: bool,
    /// CPU the generator (and the flood probe) are pinned to.
    pub gen_cpu: Option<usize>,
    /// More `pinhole run` arguments.
    pub daemon_args: Vec<String>,
    /// Also measure the media path with [`Filter::MEDIA_REFERENCES`].
    pub references: bool,
}

/// One flood measurement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FloodSample {
    pub filter: Filter,
    pub round: usize,
    pub blast: BlastReport,
    /// Frames the router's outside interface received (XDP drops included).
    pub received: u64,
    /// Frames the filter dropped (pinhole `miss`, nftables drop counter) or,
    /// with no filter, forwarded to the inside host.
    pub absorbed: u64,
    /// The probe on the open call's media path during the flood.
    pub probe: PingReport,
}

impl FloodSample {
    /// Frames absorbed per second of wall time.
    pub fn absorbed_pps(&self) -> f64 {
        self.absorbed as f64 / self.blast.secs.max(1e-9)
    }

    /// Frames absorbed per second of sending-CPU time (generator and router
    /// on one CPU): the rate with that CPU to themselves.
    pub fn absorbed_per_cpu_s(&self) -> f64 {
        self.absorbed as f64 / self.blast.sending_cpu().max(1e-9)
    }

    /// Router softirq CPU milliseconds per million frames received.
    pub fn cpu_ms_per_mpkt(&self) -> f64 {
        self.blast.cpu.softirq * 1e3 / (self.received.max(1) as f64 / 1e6)
    }

    /// Sending-CPU milliseconds (generator + router) per million frames.
    pub fn sending_ms_per_mpkt(&self) -> f64 {
        self.blast.sending_cpu() * 1e3 / (self.received.max(1) as f64 / 1e6)
    }
}

/// One media-pass measurement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MediaSample {
    pub filter: Filter,
    pub round: usize,
    pub blast: BlastReport,
    /// Frames the router received from the generator.
    pub received: u64,
    /// Frames the router forwarded to the inside host.
    pub delivered: u64,
    /// Ping-pong on the same flow, no load.
    pub rtt: PingReport,
}

impl MediaSample {
    pub fn delivered_pps(&self) -> f64 {
        self.delivered as f64 / self.blast.secs.max(1e-9)
    }

    /// Frames delivered per second of sending-CPU time.
    pub fn delivered_per_cpu_s(&self) -> f64 {
        self.delivered as f64 / self.blast.sending_cpu().max(1e-9)
    }

    pub fn cpu_ms_per_mpkt(&self) -> f64 {
        self.blast.cpu.softirq * 1e3 / (self.delivered.max(1) as f64 / 1e6)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Results {
    pub flood: Vec<FloodSample>,
    pub media: Vec<MediaSample>,
}

fn spec(
    lab: &BenchLab,
    cfg: &Config,
    dst_port: u16,
    ports: u16,
    src_port: u16,
    frame: usize,
) -> BlastSpec {
    let ip = |outside: bool| match lab.ip(outside) {
        std::net::IpAddr::V4(v4) => v4,
        std::net::IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    };
    BlastSpec {
        iface: Topology::OUTSIDE_IF.to_owned(),
        src_mac: sys::format_mac(&lab.outside_mac),
        dst_mac: sys::format_mac(&lab.router_mac),
        src: SocketAddrV4::new(ip(true), src_port),
        dst: ip(false),
        dst_port,
        ports,
        frame,
        secs: cfg.secs,
        cpu: cfg.gen_cpu,
    }
}

fn pin(cpu: Option<usize>) -> Result<()> {
    cpu.map_or(Ok(()), sys::pin_to_cpu)
}

fn links(lab: &BenchLab) -> Result<(LinkStats, LinkStats)> {
    Ok((
        sys::link_stats(&lab.topo.router, Topology::ROUTER_OUTSIDE_IF)?,
        sys::link_stats(&lab.topo.router, Topology::ROUTER_INSIDE_IF)?,
    ))
}

fn flood(
    lab: &BenchLab,
    active: &Active<'_>,
    cfg: &Config,
    filter: Filter,
    round: usize,
) -> Result<FloodSample> {
    let (pinger, echo) = lab.media_sockets()?;
    let dropped0 = active.dropped()?;
    let (out0, in0) = links(lab)?;
    let stop = AtomicBool::new(false);
    let (blast, probe) = std::thread::scope(|s| -> Result<(BlastReport, PingReport)> {
        // A floor drops the probe too: nothing to measure there.
        if filter.is_floor() {
            let blast = blast::spawn(
                &lab.topo.outside,
                &spec(lab, cfg, FLOOD_PORT, FLOOD_PORTS, FLOOD_SRC_PORT, 64),
            );
            return Ok((blast?, PingReport::default()));
        }
        let e = s.spawn(|| {
            pin(cfg.gen_cpu)?;
            pingpong::echo(&echo, &stop)
        });
        let p = s.spawn(|| {
            pin(cfg.gen_cpu)?;
            pingpong::ping(
                &pinger,
                &PingOpts {
                    count: u64::MAX,
                    timeout: Duration::from_millis(20),
                    interval: Duration::from_millis(2),
                    stop: Some(&stop),
                    ..Default::default()
                },
            )
        });
        let blast = blast::spawn(
            &lab.topo.outside,
            &spec(lab, cfg, FLOOD_PORT, FLOOD_PORTS, FLOOD_SRC_PORT, 64),
        );
        stop.store(true, Ordering::Relaxed);
        let probe = p.join().expect("probe thread");
        e.join().expect("echo thread")?;
        Ok((blast?, probe?))
    })?;
    let (out1, in1) = links(lab)?;
    let received = out1.rx_packets - out0.rx_packets;
    let absorbed = match active {
        // Every frame the drop floor's interface received, it dropped.
        Active::Xdp { .. } if filter == Filter::FloorDrop => received,
        Active::Unfiltered | Active::Xdp { .. } => in1.tx_packets - in0.tx_packets,
        _ => active.dropped()? - dropped0,
    };
    Ok(FloodSample {
        filter,
        round,
        blast,
        received,
        absorbed,
        probe,
    })
}

fn media(lab: &BenchLab, cfg: &Config, filter: Filter, round: usize) -> Result<MediaSample> {
    let (out0, in0) = links(lab)?;
    let blast = blast::spawn(
        &lab.topo.outside,
        &spec(lab, cfg, CALLEE_RTP, 1, CALLER_RTP, 200),
    )?;
    let (out1, in1) = links(lab)?;
    let rtt = if filter.is_floor() {
        // No round trip through a program that forwards one way, blindly.
        PingReport::default()
    } else {
        rtt(lab, cfg)?
    };
    Ok(MediaSample {
        filter,
        round,
        blast,
        received: out1.rx_packets - out0.rx_packets,
        delivered: in1.tx_packets - in0.tx_packets,
        rtt,
    })
}

/// Ping-pong on the call's media flow, without load.
fn rtt(lab: &BenchLab, cfg: &Config) -> Result<PingReport> {
    let (pinger, echo) = lab.media_sockets()?;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| -> Result<PingReport> {
        let e = s.spawn(|| pingpong::echo(&echo, &stop));
        let r = pingpong::ping(
            &pinger,
            &PingOpts {
                count: cfg.pings,
                timeout: Duration::from_millis(100),
                ..Default::default()
            },
        );
        stop.store(true, Ordering::Relaxed);
        e.join().expect("echo thread")?;
        r
    })
}

/// Runs the rounds; `progress` gets a line per measurement.
pub fn run(cfg: &Config, progress: &mut dyn FnMut(&str)) -> Result<Results> {
    let lab = BenchLab::new()?;
    let mut results = Results::default();
    let mut filters = Filter::ALL.to_vec();
    if cfg.media {
        filters.extend(Filter::MEDIA_FORWARD);
    }
    if cfg.media && cfg.references {
        filters.extend(Filter::MEDIA_REFERENCES);
    }
    if cfg.flood && cfg.references {
        filters.extend(Filter::FLOOD_FLOORS);
    }
    if cfg.media && cfg.references {
        filters.extend(Filter::MEDIA_FLOORS);
    }
    for round in 0..cfg.rounds {
        for &filter in &filters {
            let media_only = Filter::MEDIA_REFERENCES.contains(&filter)
                || Filter::MEDIA_FLOORS.contains(&filter)
                || Filter::MEDIA_FORWARD.contains(&filter);
            let flood_only = Filter::FLOOD_FLOORS.contains(&filter);
            let extra: Vec<&str> = cfg.daemon_args.iter().map(String::as_str).collect();
            let active = lab
                .start(filter, &extra)
                .with_context(|| format!("starting {}", filter.label()))?;
            // A floor drops or forwards blindly: no call to set up, and the
            // media path's round trip does not exist through it.
            if !filter.is_floor() {
                let call_id = format!("dp-{}-{round}-{filter:?}", std::process::id());
                lab.open_call(&active, &call_id).with_context(|| {
                    format!("{}: opening the call's media path", filter.label())
                })?;
            }
            if cfg.flood && !media_only {
                let f = flood(&lab, &active, cfg, filter, round)
                    .with_context(|| format!("flood, {}", filter.label()))?;
                progress(&format!(
                    "round {} {:<22} flood: offered {:>5.0} kpps, absorbed {:>5.0} kpps \
                     ({:>5.0} per CPU-s), sending CPU {:>5.0} ns/pkt, router {:>5.0} ns/pkt, \
                     probe {}/{} lost",
                    round + 1,
                    filter.label(),
                    f.blast.pps() / 1e3,
                    f.absorbed_pps() / 1e3,
                    f.absorbed_per_cpu_s() / 1e3,
                    f.sending_ms_per_mpkt(),
                    f.cpu_ms_per_mpkt(),
                    f.probe.lost,
                    f.probe.sent
                ));
                results.flood.push(f);
            }
            if cfg.media && !flood_only {
                let m = media(&lab, cfg, filter, round)
                    .with_context(|| format!("media pass, {}", filter.label()))?;
                progress(&format!(
                    "round {} {:<22} media: delivered {:>5.0} kpps ({:>5.0} per CPU-s), \
                     router {:>5.0} ns/pkt, RTT p50 {:.1} µs p99 {:.1} µs",
                    round + 1,
                    filter.label(),
                    m.delivered_pps() / 1e3,
                    m.delivered_per_cpu_s() / 1e3,
                    m.cpu_ms_per_mpkt(),
                    m.rtt.rtt_us.quantile(0.5).unwrap_or(f64::NAN),
                    m.rtt.rtt_us.quantile(0.99).unwrap_or(f64::NAN),
                ));
                results.media.push(m);
            }
            drop(active);
        }
    }
    Ok(results)
}
