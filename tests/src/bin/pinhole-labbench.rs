//! The lab bench: pinhole against the kernel's own answer (nftables with the
//! conntrack SIP helper) and plain forwarding, side by side in one outside →
//! router → inside veth lab, interleaved in one run:
//!
//! 1. flood drop: unsolicited 64-byte UDP into the media range;
//! 2. media pass: 200-byte frames on an open call's media flow, and the
//!    round-trip time through the router;
//! 3. call setup: sipp calls with RTP at increasing rates, until media is lost;
//! 4. scale: 1k, 100k and 1M pinholes (map memory, daemon RSS, install time;
//!    per-packet cost from `pinhole-bench`);
//! 5. signaling → pinhole latency at 50, 200 and 1000 call setups/s;
//! 6. list-load: signaling → pinhole latency at 200 call setups/s while
//!    `list` of 1M pinholes runs in a loop (`--parts list-load` alone).
//!
//! Writes `README-table.md`, `lab.svg` and `lab-results.json` (every sample)
//! to the output directory. Needs root. `cargo xtask bench` runs it after
//! `pinhole-bench`.

#[path = "../bench/mod.rs"]
mod bench;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::Instant,
};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use bench::{blast, calls, dataplane, lab::Filter, latency, list_load, report, scale};

#[derive(Parser)]
#[command(about = "pinhole vs nftables + SIP helper vs no filter, in a veth lab (needs root)")]
struct Args {
    #[command(subcommand)]
    cmd: Option<Sub>,
    /// Short smoke run (about a minute): one round, short runs, small sizes.
    /// Writes to target/bench-quick unless --out is given.
    #[arg(long)]
    quick: bool,
    /// Parts to run (default: all).
    #[arg(long, value_delimiter = ',')]
    parts: Option<Vec<Part>>,
    /// Interleaved rounds of the data-plane, call-setup and latency parts.
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds per blast (flood, media pass).
    #[arg(long)]
    secs: Option<f64>,
    /// Call-setup rates (calls/s) of the sipp ramp.
    #[arg(long, value_delimiter = ',')]
    call_rates: Option<Vec<u32>>,
    /// Call-setup rates of the signaling-latency part.
    #[arg(long, value_delimiter = ',')]
    latency_rates: Option<Vec<u32>>,
    /// Pinhole counts of the scale part.
    #[arg(long, value_delimiter = ',')]
    scale: Option<Vec<u32>>,
    /// Pinholes the daemon holds in the list-load part (default 1M; 20k
    /// with --quick).
    #[arg(long)]
    list_pinholes: Option<u32>,
    /// Call-setup rate of the list-load part (default 200).
    #[arg(long)]
    list_rate: Option<u32>,
    /// CPU the generator is pinned to (default: the last one).
    #[arg(long)]
    cpu: Option<usize>,
    /// More `pinhole run` arguments for the flood and media parts (e.g.
    /// `--daemon-arg=--signaling --daemon-arg=off`), for experiments.
    #[arg(long, allow_hyphen_values = true)]
    daemon_arg: Vec<String>,
    /// Skip the reference cases of the media part (pinhole without
    /// signaling capture, an empty XDP program).
    #[arg(long)]
    no_references: bool,
    /// Markdown output of `pinhole-bench` to fold into the report.
    #[arg(long)]
    per_packet: Option<PathBuf>,
    /// Output directory (default: bench/results, or target/bench-quick with --quick).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Sub {
    /// The packet generator (run by the bench itself in the outside namespace).
    #[command(hide = true)]
    Blast(blast::BlastSpec),
    /// Rewrites the report (table and plot) from a lab-results.json.
    Report {
        /// The results file.
        results: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    Flood,
    Media,
    Calls,
    Scale,
    Latency,
    ListLoad,
    Ha,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

fn run(args: Args) -> Result<()> {
    match args.cmd {
        Some(Sub::Blast(spec)) => {
            let r = blast::run(&spec)?;
            println!("{}", serde_json::to_string(&r)?);
            return Ok(());
        }
        Some(Sub::Report { ref results }) => {
            let text = std::fs::read_to_string(results)
                .with_context(|| format!("reading {}", results.display()))?;
            let all: report::AllResults = serde_json::from_str(&text)?;
            let dir = results.parent().unwrap_or(Path::new("."));
            return report::write(&all, dir);
        }
        None => {}
    }
    pinhole_integration::require_root()?;
    let quick = args.quick;
    let parts = args.parts.clone().unwrap_or_else(|| {
        vec![
            Part::Flood,
            Part::Media,
            Part::Calls,
            Part::Scale,
            Part::Latency,
            Part::ListLoad,
            Part::Ha,
        ]
    });
    let has = |p: Part| parts.contains(&p);
    let out = args.out.clone().unwrap_or_else(|| {
        workspace().join(if quick {
            "target/bench-quick"
        } else {
            "bench/results"
        })
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let rounds = args.rounds.unwrap_or(if quick { 1 } else { 5 });
    let gen_cpu = Some(args.cpu.unwrap_or(bench::sys::cpu_count() - 1));
    let started = Instant::now();
    let mut progress = |line: &str| {
        eprintln!("[{:>6.1} s] {line}", started.elapsed().as_secs_f64());
    };
    let mut all = report::AllResults {
        machine: report::Machine::detect(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        quick,
        ..Default::default()
    };
    if let Some(path) = &args.per_packet {
        all.per_packet = Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        );
    }
    // A part that fails is reported and the others still run: a long run
    // keeps what it measured.
    let failed = |part: &str, e: anyhow::Error| {
        eprintln!("error: {part} part: {e:#}");
        format!("{part}: {e:#}")
    };
    let mut errors = Vec::new();
    if has(Part::Flood) || has(Part::Media) {
        let cfg = dataplane::Config {
            rounds,
            secs: args.secs.unwrap_or(if quick { 0.5 } else { 2.0 }),
            pings: if quick { 300 } else { 2000 },
            flood: has(Part::Flood),
            media: has(Part::Media),
            gen_cpu,
            daemon_args: args.daemon_arg.clone(),
            references: !args.no_references,
        };
        match dataplane::run(&cfg, &mut progress) {
            Ok(r) => all.dataplane = Some(r),
            Err(e) => errors.push(failed("flood/media", e)),
        }
    }
    if has(Part::Scale) {
        let sizes = args.scale.clone().unwrap_or_else(|| {
            if quick {
                vec![1_000, 20_000]
            } else {
                vec![1_000, 100_000, 1_000_000]
            }
        });
        match scale::run(&sizes, &mut progress) {
            Ok(r) => all.scale = Some(r),
            Err(e) => errors.push(failed("scale", e)),
        }
    }
    if has(Part::Latency) {
        let cfg = latency::Config {
            rounds: if quick { 1 } else { rounds.min(3) },
            rates: args.latency_rates.clone().unwrap_or_else(|| {
                if quick {
                    vec![50, 200]
                } else {
                    vec![50, 200, 1000]
                }
            }),
            secs: if quick { 0.5 } else { 2.0 },
            filters: vec![Filter::PinholeNative, Filter::Nft, Filter::Unfiltered],
        };
        match latency::run(&cfg, &mut progress) {
            Ok(r) => all.latency = Some(r),
            Err(e) => errors.push(failed("latency", e)),
        }
    }
    if has(Part::ListLoad) {
        let cfg = list_load::Config {
            pinholes: args
                .list_pinholes
                .unwrap_or(if quick { 20_000 } else { 1_000_000 }),
            rate: args.list_rate.unwrap_or(200),
            secs: if quick { 2.0 } else { 20.0 },
        };
        match list_load::run(&cfg, &mut progress) {
            Ok(r) => all.list_load = Some(r),
            Err(e) => errors.push(failed("list-load", e)),
        }
    }
    if has(Part::Ha) {
        let cfg = bench::ha::Config {
            rate: 200,
            secs: if quick { 2.0 } else { 10.0 },
            resync_pinholes: if quick { 10_000 } else { 100_000 },
        };
        match bench::ha::run(&cfg, &mut progress) {
            Ok(r) => {
                let md = bench::ha::markdown(&r);
                std::fs::write(out.join("ha.md"), md)?;
                std::fs::write(out.join("ha.json"), serde_json::to_string_pretty(&r)?)?;
                all.ha = Some(r);
            }
            Err(e) => errors.push(failed("ha", e)),
        }
    }
    if has(Part::Calls) {
        let cfg = calls::Config {
            rounds: if quick { 1 } else { rounds.min(3) },
            rates: args.call_rates.clone().unwrap_or_else(|| {
                if quick {
                    vec![20, 100]
                } else {
                    vec![20, 50, 100, 200, 400, 800]
                }
            }),
            secs: if quick { 1.0 } else { 2.0 },
            cases: vec![
                (Filter::PinholeNative, false),
                (Filter::Nft, false),
                (Filter::Nft, true),
                (Filter::Unfiltered, false),
            ],
        };
        match calls::run(&cfg, &mut progress) {
            Ok(r) => all.calls = Some(r),
            Err(e) => errors.push(failed("call-setup", e)),
        }
    }
    all.errors = errors;
    all.wall_secs = started.elapsed().as_secs_f64();
    let json = out.join("lab-results.json");
    std::fs::write(&json, serde_json::to_string_pretty(&all)?)
        .with_context(|| format!("writing {}", json.display()))?;
    report::write(&all, &out)?;
    eprintln!(
        "wrote {}, {} and {} ({:.0} s)",
        out.join(report::TABLE_FILE).display(),
        out.join(report::PLOT_FILE).display(),
        json.display(),
        all.wall_secs
    );
    if !all.errors.is_empty() {
        anyhow::bail!(
            "{} part(s) failed: {}",
            all.errors.len(),
            all.errors.join("; ")
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
