//! Makes sure the tools the build and the tests need are installed, installing
//! what is missing. Every check is idempotent and says what it found.
//!
//! The eBPF program is built with Debian's `rustc-web` (its prebuilt `core` for
//! `bpfel-unknown-none` is the only one available: rustup has no `rust-src`
//! here) and `bpf-linker` built against Debian's LLVM 22. Host crates use
//! rustup's stable toolchain.

use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{bail, Context, Result};

use crate::proc::{self, find_in_path, probe};

pub const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
pub const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_CLIPPY: &str = "/usr/bin/cargo-clippy";
const BPF_CORE_DIR: &str = "/usr/lib/rustlib/bpfel-unknown-none";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// The oldest Debian rustc-web that builds the eBPF crate.
const MIN_RUSTC: (u32, u32) = (1, 96);
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Debian packages of the eBPF toolchain.
const TOOLCHAIN_PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "libstd-rust-web-dev-bpf",
    "llvm-22-dev",
    "rust-web-clippy",
];

/// Tools the integration tests, demo and benchmark run, with their packages.
const TEST_TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("setpriv", "util-linux"),
    ("sipp", "sip-tester"),
    ("iptables", "iptables"),
    ("nft", "nftables"),
    ("ethtool", "ethtool"),
    ("bpftool", "bpftool"),
    ("xdp-loader", "xdp-tools"),
    // The ng protocol test drives the daemon with rtpengine's own client.
    ("rtpengine-ng-client", "rtpengine-utils"),
    // The real-proxy test runs Kamailio with its rtpengine module (shipped in
    // the main package) in a test namespace. Installing it on a systemd host
    // enables the packaged service; the tests never use it.
    ("kamailio", "kamailio"),
    // The HA test (netns_ha) and the lab bench's HA part start their own
    // Redis and keepalived (VRRP) in test namespaces.
    ("redis-server", "redis-server"),
    ("redis-cli", "redis-tools"),
    ("keepalived", "keepalived"),
];

/// Installs the eBPF toolchain when any part of it is missing.
pub fn ensure_toolchain() -> Result<()> {
    let mut missing = Vec::new();
    match debian_rustc_version() {
        Ok(v) if v >= MIN_RUSTC => ok(&format!(
            "Debian rustc-web {}.{} ({DEBIAN_RUSTC})",
            v.0, v.1
        )),
        Ok(v) => missing.push(format!(
            "{DEBIAN_RUSTC} is {}.{}, need Debian rustc-web >= {}.{}",
            v.0, v.1, MIN_RUSTC.0, MIN_RUSTC.1
        )),
        Err(why) => missing.push(why),
    }
    for (path, what) in [
        (DEBIAN_CARGO, "Debian cargo-web"),
        (BPF_CORE_DIR, "prebuilt BPF core (libstd-rust-web-dev-bpf)"),
        (DEBIAN_CLIPPY, "Debian clippy (rust-web-clippy)"),
    ] {
        if Path::new(path).exists() {
            ok(&format!("{what} ({path})"));
        } else {
            missing.push(format!("{what}: {path} is missing"));
        }
    }
    if !missing.is_empty() {
        for m in &missing {
            eprintln!("missing: {m}");
        }
        apt_install("the eBPF toolchain", TOOLCHAIN_PACKAGES)?;
        match debian_rustc_version() {
            Ok(v) if v >= MIN_RUSTC => {}
            Ok(v) => bail!(
                "after installing rustc-web, {DEBIAN_RUSTC} is {}.{}; need >= {}.{}",
                v.0,
                v.1,
                MIN_RUSTC.0,
                MIN_RUSTC.1
            ),
            Err(why) => bail!("after installing rustc-web: {why}"),
        }
        for path in [DEBIAN_CARGO, BPF_CORE_DIR, DEBIAN_CLIPPY] {
            if !Path::new(path).exists() {
                bail!("{path} is still missing after installing {TOOLCHAIN_PACKAGES:?}");
            }
        }
    }
    ensure_bpf_linker()
}

/// Installs the packages of [`TEST_TOOLS`] whose tools are missing.
pub fn ensure_test_tools() -> Result<()> {
    let mut packages = Vec::new();
    for (tool, package) in TEST_TOOLS {
        match find_in_path(tool) {
            Some(path) => ok(&format!("{tool} ({})", path.display())),
            None => {
                eprintln!("missing: {tool} (package {package})");
                packages.push(*package);
            }
        }
    }
    if packages.is_empty() {
        return Ok(());
    }
    apt_install("test tools", &packages)?;
    for (tool, package) in TEST_TOOLS {
        if find_in_path(tool).is_none() {
            bail!("{tool} is still missing after installing {package}");
        }
    }
    Ok(())
}

fn ok(what: &str) {
    eprintln!("ok: {what} present");
}

/// `(major, minor)` of Debian's rustc, after checking it comes from the
/// `rustc-web` package (rustup's proxies must not stand in for it).
fn debian_rustc_version() -> Result<(u32, u32), String> {
    if !Path::new(DEBIAN_RUSTC).exists() {
        return Err(format!("{DEBIAN_RUSTC} is missing"));
    }
    if !package_installed("rustc-web") {
        return Err(format!(
            "{DEBIAN_RUSTC} does not come from Debian's rustc-web package"
        ));
    }
    let out = probe(Command::new(DEBIAN_RUSTC).arg("--version"))
        .ok_or_else(|| format!("`{DEBIAN_RUSTC} --version` failed"))?;
    parse_rustc_version(&out)
        .ok_or_else(|| format!("cannot parse `{DEBIAN_RUSTC} --version` output {out:?}"))
}

/// `(1, 96)` from `rustc 1.96.0 (ac68faa20 2026-05-25) (built from a source tarball)`.
fn parse_rustc_version(text: &str) -> Option<(u32, u32)> {
    let version = text
        .trim()
        .strip_prefix("rustc ")?
        .split_whitespace()
        .next()?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    // The patch part may carry a pre-release suffix ("0-beta.3"); only require it to exist.
    parts.next()?;
    Some((major, minor))
}

/// The version `bpf-linker --version` reports (`bpf-linker 0.13.0`).
fn parse_bpf_linker_version(text: &str) -> Option<&str> {
    let mut words = text.split_whitespace();
    (words.next()? == "bpf-linker").then_some(())?;
    words.next()
}

fn package_installed(package: &str) -> bool {
    probe(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Abbrev}", package]))
        .is_some_and(|status| status.starts_with("ii"))
}

fn ensure_bpf_linker() -> Result<()> {
    let current = find_in_path("bpf-linker").and_then(|path| {
        let out = probe(Command::new(&path).arg("--version"))?;
        Some((path, parse_bpf_linker_version(&out)?.to_owned()))
    });
    match current {
        Some((path, v)) if v == BPF_LINKER_VERSION => {
            ok(&format!("bpf-linker {v} ({})", path.display()));
            return Ok(());
        }
        Some((path, v)) => eprintln!(
            "bpf-linker at {} is {v}, need {BPF_LINKER_VERSION}",
            path.display()
        ),
        None => eprintln!("missing: bpf-linker {BPF_LINKER_VERSION} on PATH"),
    }
    if !Path::new(LLVM_PREFIX).join("bin/llvm-config").exists() || !package_installed("llvm-22-dev")
    {
        apt_install("LLVM 22 for bpf-linker", &["llvm-22-dev"])?;
    }
    eprintln!("installing bpf-linker {BPF_LINKER_VERSION} (built against {LLVM_PREFIX}) …");
    // /usr/bin/llvm-config is an older LLVM; LLVM_PREFIX points the build at 22.
    proc::run(
        Command::new(crate::cargo())
            .env("LLVM_PREFIX", LLVM_PREFIX)
            .args(["install", "--locked"])
            .arg(format!("bpf-linker@{BPF_LINKER_VERSION}"))
            .args(["--no-default-features", "--features", "llvm-22"]),
    )?;
    let path = find_in_path("bpf-linker")
        .context("bpf-linker is not on PATH after `cargo install` (is ~/.cargo/bin on PATH?)")?;
    let out = probe(Command::new(&path).arg("--version")).unwrap_or_default();
    match parse_bpf_linker_version(&out) {
        Some(v) if v == BPF_LINKER_VERSION => Ok(()),
        _ => bail!(
            "{} reports {:?} after installing {BPF_LINKER_VERSION}",
            path.display(),
            out.trim()
        ),
    }
}

/// Set once `apt-get update` has run in this process.
static APT_UPDATED: AtomicBool = AtomicBool::new(false);

fn apt_install(what: &str, packages: &[&str]) -> Result<()> {
    eprintln!("installing {what} ({}) …", packages.join(" "));
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "installing {what} needs root: run `sudo apt-get install {}` or rerun as root",
            packages.join(" ")
        );
    }
    let apt = |cmd: &mut Command| {
        cmd.env("DEBIAN_FRONTEND", "noninteractive")
            .args(["-o", "DPkg::Lock::Timeout=600"]);
    };
    if !APT_UPDATED.swap(true, Ordering::SeqCst) {
        let mut update = Command::new("apt-get");
        apt(&mut update);
        proc::run(update.arg("update"))?;
    }
    let _no_services = NoServiceStart::install()?;
    let mut install = Command::new("apt-get");
    apt(&mut install);
    proc::run(
        install
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages),
    )
}

/// Debian's switch that keeps packages from starting their services at
/// install time (invoke-rc.d asks `/usr/sbin/policy-rc.d`; exit 101 means
/// "not allowed"). The test tools include servers (kamailio) whose packages
/// would otherwise start and enable a host-wide service on a systemd machine;
/// the tests start their own copies inside their namespaces. Removed again
/// on drop, and an existing policy of the machine's is left alone.
struct NoServiceStart(Option<&'static Path>);

impl NoServiceStart {
    const PATH: &'static str = "/usr/sbin/policy-rc.d";

    fn install() -> Result<Self> {
        let path = Path::new(Self::PATH);
        if path.exists() {
            return Ok(NoServiceStart(None));
        }
        std::fs::write(
            path,
            "#!/bin/sh\n# written by cargo xtask during apt-get install\nexit 101\n",
        )
        .with_context(|| format!("writing {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("making {} executable", path.display()))?;
        Ok(NoServiceStart(Some(path)))
    }
}

impl Drop for NoServiceStart {
    fn drop(&mut self) {
        if let Some(path) = self.0 {
            if let Err(e) = std::fs::remove_file(path) {
                eprintln!("warning: could not remove {}: {e}", path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustc_versions() {
        for (input, expected) in [
            (
                "rustc 1.96.0 (ac68faa20 2026-05-25) (built from a source tarball)\n",
                Some((1, 96)),
            ),
            ("rustc 1.95.0 (59807616e1 2026-04-14)", Some((1, 95))),
            ("rustc 1.97.0-nightly (abc 2026-06-01)", Some((1, 97))),
            ("rustc 2.0.1", Some((2, 0))),
            ("rustc 1.96", None),
            ("rustc", None),
            ("", None),
            ("cargo 1.96.0", None),
            ("rustc x.96.0", None),
            ("rustc 1.-1.0", None),
            ("rustc 1.99999999999.0", None),
        ] {
            assert_eq!(parse_rustc_version(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn minimum_is_inclusive() {
        assert!((1, 96) >= MIN_RUSTC);
        assert!((1, 100) >= MIN_RUSTC);
        assert!((2, 0) >= MIN_RUSTC);
        assert!((1, 95) < MIN_RUSTC);
    }

    #[test]
    fn bpf_linker_versions() {
        for (input, expected) in [
            ("bpf-linker 0.13.0\n", Some("0.13.0")),
            ("bpf-linker 0.9.15", Some("0.9.15")),
            ("bpf-linker", None),
            ("", None),
            ("ld.lld 0.13.0", None),
        ] {
            assert_eq!(parse_bpf_linker_version(input), expected, "input {input:?}");
        }
    }
}
