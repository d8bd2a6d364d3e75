//! `cargo xtask bench`: the per-packet bench (`pinhole-bench`,
//! BPF_PROG_TEST_RUN) and the lab bench (`pinhole-labbench`: pinhole against
//! nftables with the conntrack SIP helper in a veth lab), one after the
//! other, writing `per-packet.md`, `README-table.md`, `lab.svg` and
//! `lab-results.json` to `bench/results/` (`target/bench-quick/` with
//! `--quick`).

use std::{
    ffi::OsString,
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{bail, Context, Result};

use crate::{build_pinhole, cargo_cmd, proc, root, toolchain};

#[derive(clap::Args)]
pub struct Args {
    /// Short smoke run (about a minute); results go to target/bench-quick.
    #[arg(long)]
    quick: bool,
    /// Only the per-packet bench (BPF_PROG_TEST_RUN).
    #[arg(long, conflicts_with = "lab_only")]
    per_packet_only: bool,
    /// Only the lab bench (it folds in the output directory's per-packet.md
    /// when there is one).
    #[arg(long)]
    lab_only: bool,
    /// Lab parts to run: flood, media, calls, scale, latency (comma-separated;
    /// default all).
    #[arg(long)]
    parts: Option<String>,
    /// Output directory (default bench/results, or target/bench-quick).
    #[arg(long)]
    out: Option<PathBuf>,
    /// More arguments for `pinhole-labbench` (try `-- --help`).
    #[arg(last = true)]
    lab_args: Vec<OsString>,
}

fn bench_bin(name: &str) -> Command {
    cargo_cmd([
        "run",
        "--release",
        "-p",
        "pinhole-integration",
        "--bin",
        name,
        "--",
    ])
}

pub fn run(args: &Args) -> Result<()> {
    toolchain::ensure_toolchain()?;
    toolchain::ensure_test_tools()?;
    let out = args.out.clone().unwrap_or_else(|| {
        root().join(if args.quick {
            "target/bench-quick"
        } else {
            "bench/results"
        })
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let per_packet = out.join("per-packet.md");
    if !args.lab_only {
        let mut cmd = bench_bin("pinhole-bench");
        if args.quick {
            cmd.arg("--quick");
        }
        let line = proc::display(&cmd);
        eprintln!("+ {line}");
        let output = cmd
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot start `{line}`"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        print!("{text}");
        if !output.status.success() {
            bail!("`{line}` failed ({})", output.status);
        }
        std::fs::write(&per_packet, text.as_bytes())
            .with_context(|| format!("writing {}", per_packet.display()))?;
        eprintln!("wrote {}", per_packet.display());
    }
    if !args.per_packet_only {
        // The lab bench runs the daemon: the release binary, freshly built.
        let pinhole = build_pinhole(true)?;
        let mut cmd = bench_bin("pinhole-labbench");
        cmd.arg("--out").arg(&out).env("PINHOLE_BIN", &pinhole);
        if per_packet.exists() {
            cmd.arg("--per-packet").arg(&per_packet);
        }
        if args.quick {
            cmd.arg("--quick");
        }
        if let Some(parts) = &args.parts {
            cmd.args(["--parts", parts]);
        }
        cmd.args(&args.lab_args);
        proc::run(&mut cmd)?;
    }
    Ok(())
}
