//! Part 4: pinhole at scale. For each size, a fresh daemon (signaling off,
//! map capacity: the default 262,144 flows, or every flow of the size plus
//! 5 % when that is larger) gets that many pinholes through its control
//! socket; the bench reads the kernel memory of its BPF maps (`memlock` in
//! `/proc/<pid>/fdinfo`) and its resident memory before and after.
//! Per-packet cost at each size comes from the BPF_PROG_TEST_RUN bench.

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};

use super::{
    control,
    lab::{BenchLab, Filter},
    sys::{self, MapMemory},
};

const DEFAULT_CAPACITY: u64 = 262_144;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScaleSample {
    pub pinholes: u32,
    /// Flow map capacity the daemon was started with.
    pub capacity: u64,
    /// Flows in use after the installation (2 per pinhole).
    pub flows: u64,
    pub install_secs: f64,
    pub rss_before: u64,
    pub rss_after: u64,
    pub maps: Vec<MapMemory>,
}

impl ScaleSample {
    pub fn map_bytes(&self) -> u64 {
        self.maps.iter().map(|m| m.memlock).sum()
    }

    pub fn per_sec(&self) -> f64 {
        f64::from(self.pinholes) / self.install_secs.max(1e-9)
    }
}

/// The capacity the bench gives a daemon that must hold `pinholes`.
pub fn capacity_for(pinholes: u32) -> u64 {
    let flows = u64::from(pinholes) * 2;
    DEFAULT_CAPACITY.max(flows + flows / 20)
}

pub fn run(sizes: &[u32], progress: &mut dyn FnMut(&str)) -> Result<Vec<ScaleSample>> {
    let mut out = Vec::new();
    for &n in sizes {
        let lab = BenchLab::new()?;
        let capacity = capacity_for(n).to_string();
        let active = lab.start(
            Filter::PinholeNative,
            &["--signaling", "off", "--max-pinholes", &capacity],
        )?;
        let daemon = active.daemon().context("pinhole runs")?;
        let pid = daemon.pid().context("the daemon's pid")?;
        let rss_before = sys::rss_bytes(pid)?;
        let install = control::open_many(daemon.control(), 0, n)
            .with_context(|| format!("installing {n} pinholes"))?;
        let stats = daemon.stats()?;
        ensure!(
            stats.pinholes == u64::from(n),
            "the daemon reports {} pinholes, not {n}",
            stats.pinholes
        );
        let s = ScaleSample {
            pinholes: n,
            capacity: capacity_for(n),
            flows: stats.flows.used,
            install_secs: install.as_secs_f64(),
            rss_before,
            rss_after: sys::rss_bytes(pid)?,
            maps: sys::bpf_maps(pid)?,
        };
        progress(&format!(
            "{n:>8} pinholes: installed in {:.2} s ({:.0}/s), maps {:.1} MiB, daemon RSS {:.1} → {:.1} MiB",
            s.install_secs,
            s.per_sec(),
            s.map_bytes() as f64 / 1048576.0,
            s.rss_before as f64 / 1048576.0,
            s.rss_after as f64 / 1048576.0,
        ));
        out.push(s);
    }
    Ok(out)
}
