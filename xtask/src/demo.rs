//! `cargo xtask demo`: the README's headline command.
//!
//! Makes sure the toolchain and the test tools (sipp, iptables, iproute2 …)
//! are installed, builds `pinhole` and the `pinhole-demo` lab driver in
//! release mode, and runs the demo: a veth lab with a caller, a router
//! running pinhole and a callee, one real SIP call with RTP both ways while
//! unsolicited UDP hits the media range, and a short report. The lab lives in
//! the tests crate, so the demo and the integration tests share one harness.

use std::{ffi::OsString, process::Command};

use anyhow::{bail, Context, Result};

use crate::proc;

pub fn run(args: &[OsString]) -> Result<()> {
    let (pinhole, demo) = crate::build_lab_binaries("the demo", "pinhole-demo")?;
    let mut cmd = Command::new(&demo);
    cmd.args(args).env("PINHOLE_BIN", &pinhole);
    eprintln!("+ {}", proc::display(&cmd));
    // Ctrl-C reaches the demo too, which then cleans up its lab and exits:
    // wait for that instead of dying first.
    let _sigint = IgnoreInterrupt::new();
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", demo.display()))?;
    if !status.success() {
        bail!("the demo failed ({status})");
    }
    Ok(())
}

/// Ignores SIGINT while alive, restoring the previous disposition on drop.
struct IgnoreInterrupt(libc::sighandler_t);

impl IgnoreInterrupt {
    fn new() -> IgnoreInterrupt {
        // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
        IgnoreInterrupt(unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) })
    }
}

impl Drop for IgnoreInterrupt {
    fn drop(&mut self) {
        // SAFETY: restores the disposition signal() returned.
        unsafe { libc::signal(libc::SIGINT, self.0) };
    }
}
