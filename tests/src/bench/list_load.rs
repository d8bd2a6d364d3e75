//! Part 6: signaling while big reports run. A daemon holding many synthetic
//! pinholes (installed through its control socket, as in the scale part)
//! answers `list` requests in a loop on one control connection (the request
//! `pinhole list --json` sends; the bench reads each reply and throws it
//! away) while the SIP generator of the latency part sets up calls at a
//! fixed rate. The daemon's setup-latency histogram and what the caller sees
//! (INVITE → 200 OK through the router) say whether the reports held
//! signaling up.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{
    control,
    lab::{BenchLab, Filter},
    latency::DaemonLatency,
    scale::capacity_for,
    sip::{self, LoadReport, RawUdp},
    stats::Samples,
};

#[derive(Clone, Debug)]
pub struct Config {
    pub pinholes: u32,
    pub rate: u32,
    pub secs: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ListLoadSample {
    pub pinholes: u32,
    pub load: LoadReport,
    /// The daemon's own histogram over the run.
    pub daemon: DaemonLatency,
    /// First RTP packets (two per call) the daemon dropped.
    pub first_rtp_dropped: u64,
    /// `list` replies read while the calls ran (and the one in flight when
    /// they ended), each one's seconds and bytes.
    pub list_secs: Samples,
    pub list_bytes: Vec<u64>,
    /// The controller's longest step since start (`stats`), install included.
    #[serde(default)]
    pub longest_step_us: Option<u64>,
}

/// Sends `list` requests on one connection until `stop`, timing each reply.
fn list_loop(control: &Path, stop: &AtomicBool) -> Result<(Vec<f64>, Vec<u64>)> {
    let stream = UnixStream::connect(control)
        .with_context(|| format!("connecting to {}", control.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let (mut secs, mut sizes) = (Vec::new(), Vec::new());
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        writer.write_all(b"{\"cmd\":\"list\"}\n")?;
        let mut bytes = 0u64;
        // One reply is one line; read it through without keeping it.
        loop {
            let buf = reader.fill_buf().context("reading a list reply")?;
            if buf.is_empty() {
                bail!("the daemon closed the control connection");
            }
            match buf.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    if !buf.starts_with(b"{\"ok\":true") && bytes == 0 {
                        bail!(
                            "list failed: {}",
                            String::from_utf8_lossy(&buf[..end.min(200)])
                        );
                    }
                    bytes += end as u64 + 1;
                    reader.consume(end + 1);
                    break;
                }
                None => {
                    let n = buf.len();
                    bytes += n as u64;
                    reader.consume(n);
                }
            }
        }
        secs.push(started.elapsed().as_secs_f64());
        sizes.push(bytes);
    }
    Ok((secs, sizes))
}

pub fn run(cfg: &Config, progress: &mut dyn FnMut(&str)) -> Result<ListLoadSample> {
    let lab = BenchLab::new()?;
    let capacity = capacity_for(cfg.pinholes).to_string();
    let active = lab.start(
        Filter::PinholeNative,
        &["--bye-grace", "1", "--max-pinholes", &capacity],
    )?;
    let daemon = active.daemon().context("pinhole runs")?;
    let install = control::open_many(daemon.control(), 0, cfg.pinholes)
        .with_context(|| format!("installing {} pinholes", cfg.pinholes))?;
    progress(&format!(
        "{} pinholes installed in {:.2} s",
        cfg.pinholes,
        install.as_secs_f64()
    ));
    let uac = lab.udp(true, sip::SIP_PORT)?;
    let uas = lab.udp(false, sip::SIP_PORT)?;
    let caller_rtp = lab.topo.outside.run_in(RawUdp::open)??;
    let callee_rtp = lab.topo.inside.run_in(RawUdp::open)??;
    let run_id = format!("list-{}-{}", std::process::id(), cfg.rate);
    let spec = sip::LoadSpec {
        run_id: &run_id,
        rate: f64::from(cfg.rate),
        secs: cfg.secs,
        media_base: super::lab::MEDIA_LO,
        media_span: 5_000,
    };
    let stop = AtomicBool::new(false);
    let (load, lists) = std::thread::scope(|s| {
        let lister = s.spawn(|| list_loop(daemon.control(), &stop));
        let load = sip::load(&uac, &uas, &spec, Some((&caller_rtp, &callee_rtp)));
        stop.store(true, Ordering::Relaxed);
        (load, lister.join().expect("list thread"))
    });
    let load = load?;
    let (list_secs, list_bytes) = lists?;
    if list_secs.is_empty() {
        bail!("no list reply came back while the calls ran");
    }
    // A report still being built can hold the daemon's answer up (that is
    // what this part measures): ask a bounded number of times.
    let stats = (0..6)
        .find_map(|_| daemon.stats().ok())
        .context("the daemon did not answer stats within a minute")?;
    let l = stats
        .signaling
        .context("the daemon reports no signaling stats")?
        .setup_latency_us;
    let sample = ListLoadSample {
        pinholes: cfg.pinholes,
        load,
        daemon: DaemonLatency {
            count: l.count,
            p50: l.p50,
            p99: l.p99,
        },
        first_rtp_dropped: active.dropped()?,
        list_secs: Samples::new(list_secs),
        list_bytes,
        longest_step_us: stats.longest_step_us,
    };
    progress(&format!(
        "{} pinholes, {} cps: {}/{} answered, daemon p50 {} p99 {} µs, INVITE→200 p50 {:.0} µs \
         p99 {:.0} µs, first RTP dropped {}/{}, {} lists (median {:.2} s, {:.0} MB each), \
         controller's longest step {} µs",
        cfg.pinholes,
        cfg.rate,
        sample.load.answered,
        sample.load.calls,
        sample.daemon.p50.map_or("-".into(), |v| format!("{v:.0}")),
        sample.daemon.p99.map_or("-".into(), |v| format!("{v:.0}")),
        sample.load.setup_rtt_us.quantile(0.5).unwrap_or(f64::NAN),
        sample.load.setup_rtt_us.quantile(0.99).unwrap_or(f64::NAN),
        sample.first_rtp_dropped,
        2 * sample.load.calls,
        sample.list_secs.0.len(),
        sample.list_secs.quantile(0.5).unwrap_or(f64::NAN),
        sample.list_bytes.iter().copied().max().unwrap_or(0) as f64 / 1e6,
        sample.longest_step_us.map_or("-".into(), |v| v.to_string()),
    ));
    Ok(sample)
}
