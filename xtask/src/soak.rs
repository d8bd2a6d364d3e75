//! `cargo xtask soak`: the bounded soak (`pinhole-soak`). Calls at a steady
//! rate (default 100 calls/s for 10 minutes, 5 s each) through pinhole in
//! the veth lab, with RTP both ways on every call; reports calls completed,
//! RTP lost at call start and mid-call, the daemon's peak RSS and what is
//! left in its maps after the last BYE, in `bench/results/soak.md` and
//! `soak.json` (`target/soak-quick/` with `--quick`: 20 s at 20 calls/s).
//!
//! Not part of `cargo xtask test`: it takes minutes, and its loss figures
//! depend on what else the machine is doing.

use std::{ffi::OsString, path::PathBuf, process::Command};

use anyhow::Result;

use crate::{proc, root};

#[derive(clap::Args)]
pub struct Args {
    /// Smoke run: 20 s at 20 calls/s, 3 s calls; results go to
    /// target/soak-quick/.
    #[arg(long)]
    quick: bool,
    /// The Markdown report (the JSON goes next to it); default
    /// bench/results/soak.md, or target/soak-quick/soak.md with --quick.
    #[arg(long)]
    out: Option<PathBuf>,
    /// More arguments for `pinhole-soak` (try `-- --help`): --secs, --rate,
    /// --call-secs, --start-ms, --unsolicited-rate.
    #[arg(last = true)]
    soak_args: Vec<OsString>,
}

pub fn run(args: &Args) -> Result<()> {
    let (pinhole, soak) = crate::build_lab_binaries("the soak", "pinhole-soak")?;
    let out = args.out.clone().map_or_else(
        || {
            root().join(if args.quick {
                "target/soak-quick/soak.md"
            } else {
                "bench/results/soak.md"
            })
        },
        |p| if p.is_absolute() { p } else { root().join(p) },
    );
    let mut cmd = Command::new(soak);
    cmd.current_dir(root())
        .env("PINHOLE_BIN", &pinhole)
        .arg("--out")
        .arg(&out);
    if args.quick {
        cmd.arg("--quick");
    }
    cmd.args(&args.soak_args);
    proc::run(&mut cmd)
}
