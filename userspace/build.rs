//! Builds the eBPF program (`pinhole-ebpf`) for `bpfel-unknown-none` and puts the
//! object in OUT_DIR, where `src/ebpf.rs` embeds it.
//!
//! rustup has no `rust-src` here, so `-Z build-std` is impossible; the BPF build
//! uses Debian's `rustc-web` (1.96) with its prebuilt BPF `core` and bpf-linker
//! (see ../shared/TOOLCHAIN.md). `cargo xtask build` installs both.
use std::{env, path::PathBuf, process::Command};

const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    for dir in [
        "ebpf/src",
        "ebpf/Cargo.toml",
        "common/src",
        "common/Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=PINHOLE_EBPF_FEATURES");

    for tool in [DEBIAN_CARGO, DEBIAN_RUSTC] {
        if !std::path::Path::new(tool).exists() {
            panic!(
                "{tool} is missing: the eBPF program needs Debian's rustc-web toolchain. \
                 Run `cargo xtask build` once; it installs what is missing."
            );
        }
    }
    let target_dir = root.join("target/bpf");
    let mut cmd = Command::new(DEBIAN_CARGO);
    // Start from a clean environment: the outer cargo (rustup's) sets RUSTC,
    // RUSTC_WRAPPER, CARGO_ENCODED_RUSTFLAGS, clippy's workspace wrapper, … which
    // must not leak into the BPF build.
    cmd.env_clear();
    for keep in [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "TERM",
        "http_proxy",
        "https_proxy",
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "no_proxy",
    ] {
        if let Some(v) = env::var_os(keep) {
            cmd.env(keep, v);
        }
    }
    cmd.current_dir(&root)
        .env("RUSTC", DEBIAN_RUSTC)
        // aya-ebpf uses asm_experimental_arch, and so does our config().
        // Scoped to those two crates: `=1` would make aya-build ask for build-std.
        .env("RUSTC_BOOTSTRAP", "aya_ebpf,pinhole_ebpf")
        .args(["build", "--quiet", "-p", "pinhole-ebpf", "--release"])
        .args(["--target", "bpfel-unknown-none", "--target-dir"])
        .arg(&target_dir);
    if let Ok(features) = env::var("PINHOLE_EBPF_FEATURES") {
        cmd.args(["--features", &features]);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("running {DEBIAN_CARGO}: {e}"));
    if !status.success() {
        panic!("building the eBPF program failed ({status}); see the errors above");
    }
    let obj = target_dir.join("bpfel-unknown-none/release/pinhole-ebpf");
    std::fs::copy(&obj, out.join("pinhole.bpf.o"))
        .unwrap_or_else(|e| panic!("copying {}: {e}", obj.display()));
}
