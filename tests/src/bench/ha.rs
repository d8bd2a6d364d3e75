//! Part 7: HA replication (`--ha-redis`) in the HA lab (two routers, Redis
//! in a management namespace; see `ha_lab`), signaling off, pinholes opened
//! on A through its control socket:
//!
//! - replication delay: pinholes opened on A at a fixed rate, one request
//!   each at its time on one control connection; the delay of each is from
//!   writing its `open` to A to its flow appearing in B's flow map (read
//!   from B's pinned map, polled every 100 µs);
//! - resync: A holds N pinholes; B's daemon is started afresh and the time
//!   from its control socket answering to all N installed in B's map is the
//!   time a (re)connecting node takes to read and install a peer's state.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use pinhole::{
    addr::{flow_key, Endpoint},
    api::wire::{Request, Response},
    controller::report::OpenParams,
};
use pinhole_common::{FlowKeyV4, FlowStats};
use serde::{Deserialize, Serialize};

use super::{control, stats::Samples};
use pinhole_integration::ha_lab::HaLab;

#[derive(Clone, Debug)]
pub struct Config {
    /// Opens per second on A.
    pub rate: u32,
    pub secs: f64,
    /// Pinholes A holds for the resync.
    pub resync_pinholes: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HaResult {
    pub rate: u32,
    pub opened: u32,
    /// Seconds from `open` on A to the flow in B's map, per pinhole.
    pub delay_secs: Samples,
    pub resync_pinholes: u32,
    /// Seconds from B's daemon ready to all pinholes in its map.
    pub resync_secs: f64,
    /// A's resync after a Redis restart (its log: write its N pinholes,
    /// read B's state), ms.
    #[serde(default)]
    pub own_write_ms: Option<u64>,
}

fn flows_map(lab: &HaLab, which: char) -> Result<BpfHashMap<MapData, FlowKeyV4, FlowStats>> {
    let path = lab.router(which).pins.pin_dir().join("map_PINHOLE_FLOWS4");
    let data = MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
    Ok(BpfHashMap::try_from(Map::HashMap(data))?)
}

fn key(i: u32) -> Result<(OpenParams, FlowKeyV4)> {
    let (a, b) = control::synthetic(i);
    let (a, b) = (Endpoint::new(a)?, Endpoint::new(b)?);
    Ok((
        OpenParams {
            a,
            b,
            rtcp: false,
            idle_secs: Some(0),
            owner: None,
        },
        flow_key(a, b)
            .to_v4()
            .context("synthetic pinholes are IPv4")?,
    ))
}

fn daemon_flags(pinholes: u32) -> Vec<String> {
    let flows = (2 * pinholes + 1024).max(65_536).to_string();
    [
        "--signaling",
        "off",
        "--max-pinholes",
        &flows,
        "--ha-max-foreign",
        &flows,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub fn run(cfg: &Config, progress: &mut dyn FnMut(&str)) -> Result<HaResult> {
    let mut lab = HaLab::new()?;
    lab.start_redis()?;
    let flags = daemon_flags(cfg.resync_pinholes);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    lab.start_daemon('a', &flags)?;
    lab.start_daemon('b', &flags)?;
    let b_map = flows_map(&lab, 'b')?;

    // Replication delay at a fixed rate.
    let n = (cfg.rate as f64 * cfg.secs) as u32;
    progress(&format!("ha: {n} opens on A at {}/s", cfg.rate));
    let stream = UnixStream::connect(lab.a.daemon().control())?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let interval = Duration::from_secs(1) / cfg.rate;
    let start = Instant::now();
    let mut pending: VecDeque<(Instant, FlowKeyV4)> = VecDeque::new();
    let mut delays = Vec::with_capacity(n as usize);
    let mut line = String::new();
    let mut sent = 0;
    let deadline = start + interval * n + Duration::from_secs(10);
    while delays.len() < n as usize {
        let now = Instant::now();
        if now > deadline {
            bail!(
                "{} of {n} pinholes never reached B",
                n as usize - delays.len()
            );
        }
        if sent < n && now >= start + interval * sent {
            let (params, k) = key(sent)?;
            serde_json::to_writer(&mut writer, &Request::Open(params))?;
            writer.write_all(b"\n")?;
            let t0 = Instant::now();
            line.clear();
            reader.read_line(&mut line)?;
            let resp: Response = serde_json::from_str(&line)?;
            if !resp.ok {
                bail!("open #{sent} refused: {:?}", resp.error);
            }
            pending.push_back((t0, k));
            sent += 1;
        }
        while let Some((t0, k)) = pending.front().copied() {
            if b_map.get(&k, 0).is_ok() {
                delays.push(t0.elapsed().as_secs_f64());
                pending.pop_front();
            } else {
                break;
            }
        }
        // Polling B's map, not waiting for the system under test.
        std::thread::sleep(Duration::from_micros(100));
    }
    let delay_secs = Samples::new(delays);
    progress(&format!(
        "ha: delay p50 {:.2} ms, p99 {:.2} ms",
        delay_secs.quantile(0.5).unwrap_or(0.0) * 1e3,
        delay_secs.quantile(0.99).unwrap_or(0.0) * 1e3
    ));

    // Resync: A holds N, B starts afresh and reads them all.
    progress(&format!("ha: {} pinholes on A", cfg.resync_pinholes));
    control::open_many(lab.a.daemon().control(), n, cfg.resync_pinholes)?;
    let b = lab.b.daemon.take().expect("B runs");
    let status = b.stop()?;
    if !status.success() {
        bail!("B exited {status}");
    }
    drop(b_map);
    let total = cfg.resync_pinholes as usize;
    lab.start_daemon('b', &flags)?;
    let ready = Instant::now();
    let b_map = flows_map(&lab, 'b')?;
    loop {
        let have = b_map.keys().count();
        if have >= total {
            break;
        }
        if ready.elapsed() > Duration::from_secs(600) {
            bail!("B holds {have} of {total} flows after 600 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let resync_secs = ready.elapsed().as_secs_f64();
    progress(&format!(
        "ha: resync of {total} pinholes in {resync_secs:.2} s"
    ));
    // Redis restarted: A writes its whole state again on reconnect.
    lab.kill_redis()?;
    lab.start_redis()?;
    let resyncs = |lab: &HaLab| -> Vec<u64> {
        lab.a
            .daemon()
            .log()
            .lines()
            .filter(|l| l.contains("HA: resync done"))
            .filter_map(|l| {
                l.split(" ms=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    };
    let waited = Instant::now();
    while resyncs(&lab).len() < 2 && waited.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let own_write_ms = resyncs(&lab).get(1).copied();
    progress(&format!(
        "ha: A's resync after a Redis restart: {own_write_ms:?} ms"
    ));
    Ok(HaResult {
        rate: cfg.rate,
        opened: n,
        delay_secs,
        resync_pinholes: cfg.resync_pinholes,
        resync_secs,
        own_write_ms,
    })
}

/// The part's results as the Markdown of `bench/results/ha.md`.
pub fn markdown(r: &HaResult) -> String {
    let ms = |q: f64| {
        r.delay_secs
            .quantile(q)
            .map_or("–".into(), |s| format!("{:.2}", s * 1e3))
    };
    format!(
        "# HA replication (`pinhole-labbench --parts ha`)\n\n\
         Two routers and Redis in the HA lab (tests/src/ha_lab.rs), `--signaling off`, release \
         build. Pinholes opened on A through its control socket; delay = `open` written to A → \
         its flow in B's flow map (B's pinned map polled every 100 µs).\n\n\
         | measure | value |\n|---|---:|\n\
         | opens at {} /s | {} |\n\
         | delay p50 | {} ms |\n\
         | delay p99 | {} ms |\n\
         | delay max | {} ms |\n\
         | resync: B started afresh → all {} of A's pinholes in B's map | {:.2} s |\n\
         | A's resync after a Redis restart (write its {} + read B's), its log | {} ms |\n",
        r.rate,
        r.opened,
        ms(0.5),
        ms(0.99),
        ms(1.0),
        r.resync_pinholes,
        r.resync_secs,
        r.resync_pinholes,
        r.own_write_ms.map_or("–".into(), |v| v.to_string()),
    )
}
