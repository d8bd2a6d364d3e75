//! Project tasks: `cargo xtask build|run|test|bench|demo|fuzz|soak`.
//!
//! Every task first makes sure the toolchain is installed (see [`toolchain`]),
//! so a fresh clone on a bare Debian 12 machine needs only rustup's cargo and
//! root to get going.

mod bench;
mod demo;
mod fuzz;
mod layers;
mod proc;
mod soak;
mod toolchain;

use std::{
    ffi::{OsStr, OsString},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use proc::Steps;
use toolchain::{ensure_test_tools, ensure_toolchain, DEBIAN_CARGO, DEBIAN_RUSTC};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "pinhole project tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the toolchain if needed, then build the `pinhole` binary
    /// (its build script builds and embeds the eBPF object).
    Build {
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Build `pinhole`, then run it with the given arguments
    /// (e.g. `cargo xtask run -- run --iface eth0`).
    Run {
        /// Build and run the release binary.
        #[arg(long)]
        release: bool,
        /// Arguments passed to `pinhole`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Everything CI checks, in order, stopping at the first failure: rustfmt,
    /// clippy (host and eBPF), the layer check, unit tests, a fuzz smoke run, BPF_PROG_TEST_RUN tests, network
    /// namespace integration tests and a benchmark smoke run. Needs root.
    Test,
    /// Only the layer check of `test`: the userspace library's top-level
    /// modules must not import each other in a circle (installs
    /// cargo-modules when missing).
    Layers,
    /// A real SIP call through pinhole in a veth lab, with a report (installs
    /// what is missing, builds in release mode; needs root).
    Demo {
        /// Arguments passed to `pinhole-demo` (try `-- --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Run every cargo-fuzz target in fuzz/ (or one) for a fixed time and
    /// print executions and crashes per target (installs cargo-fuzz and
    /// rustup's nightly if missing).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only this target (default: all of `cargo fuzz list`).
        #[arg(long)]
        target: Option<String>,
    },
    /// Benchmarks (needs root): the XDP program's per-packet cost
    /// (`pinhole-bench`), then pinhole against nftables + the conntrack SIP
    /// helper in a veth lab (`pinhole-labbench`); writes a Markdown table
    /// and a plot to bench/results/.
    Bench(bench::Args),
    /// The soak (needs root, ~11 minutes; not part of `test`): 100 calls/s
    /// for 10 minutes through pinhole with RTP both ways; RTP loss at call
    /// start and mid-call, peak daemon RSS, map entries left after the last
    /// BYE; writes bench/results/soak.md and soak.json.
    Soak(soak::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    setup_path();
    let result = match cli.task {
        Task::Build { release } => build(release).map(|bin| eprintln!("built {}", bin.display())),
        Task::Run { release, args } => run(release, &args),
        Task::Test => test(),
        Task::Layers => layers::check(),
        Task::Demo { args } => demo::run(&args),
        Task::Fuzz { seconds, target } => fuzz::run(seconds, target.as_deref()),
        Task::Bench(args) => bench::run(&args),
        Task::Soak(args) => soak::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent directory")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| root().join("target"))
}

/// The cargo that runs us (rustup's toolchain), for host builds.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// A host `cargo` command run from the workspace root.
fn cargo_cmd<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root()).args(args);
    cmd
}

/// Puts cargo's bin directory (bpf-linker) and the sbin directories
/// (bpftool, ethtool, nft, xdp-loader) on PATH for us and every child, after
/// what is already there.
fn setup_path() {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map(|home| home.join("bin"));
    let extra = cargo_bin
        .into_iter()
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from));
    let mut changed = false;
    for dir in extra {
        if !dirs.contains(&dir) {
            dirs.push(dir);
            changed = true;
        }
    }
    if changed {
        if let Ok(path) = std::env::join_paths(dirs) {
            // Single-threaded here: nothing else reads the environment yet.
            std::env::set_var("PATH", path);
        }
    }
}

fn build(release: bool) -> Result<PathBuf> {
    ensure_toolchain()?;
    build_pinhole(release)
}

/// Builds the `pinhole` binary and returns its path.
fn build_pinhole(release: bool) -> Result<PathBuf> {
    let mut cmd = cargo_cmd(["build", "-p", "pinhole", "--bin", "pinhole"]);
    if release {
        cmd.arg("--release");
    }
    proc::run(&mut cmd)?;
    let bin = target_dir()
        .join(if release { "release" } else { "debug" })
        .join("pinhole");
    anyhow::ensure!(bin.exists(), "the build did not produce {}", bin.display());
    Ok(bin)
}

/// For the tasks that drive a veth lab (`demo`, `soak`): checks for root
/// (`why` says what needs it), installs the toolchain and the test tools,
/// and builds `pinhole` and the tests crate's binary `lab_bin` in release
/// mode. Returns their paths.
fn build_lab_binaries(why: &str, lab_bin: &str) -> Result<(PathBuf, PathBuf)> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        anyhow::bail!("{why} creates network namespaces and loads XDP programs: run it as root");
    }
    ensure_toolchain()?;
    ensure_test_tools()?;
    let pinhole = build_pinhole(true)?;
    proc::run(&mut cargo_cmd([
        "build",
        "--release",
        "-p",
        "pinhole-integration",
        "--bin",
        lab_bin,
    ]))?;
    Ok((pinhole, target_dir().join("release").join(lab_bin)))
}

fn run(release: bool, args: &[OsString]) -> Result<()> {
    let bin = build(release)?;
    let mut cmd = Command::new(&bin);
    cmd.args(args);
    eprintln!("+ {}", proc::display(&cmd));
    let err = cmd.exec();
    Err(err).with_context(|| format!("cannot execute {}", bin.display()))
}

fn test() -> Result<()> {
    let mut steps = Steps::default();
    steps.run("toolchain", ensure_toolchain)?;
    steps.run("test tools", ensure_test_tools)?;
    steps.run("rustfmt", || {
        proc::run(&mut cargo_cmd(["fmt", "--all", "--", "--check"]))
    })?;
    steps.run("clippy (host)", || {
        proc::run(&mut cargo_cmd([
            "clippy",
            "--workspace",
            "--exclude",
            "pinhole-ebpf",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    steps.run("clippy (eBPF, bpfel-unknown-none)", clippy_ebpf)?;
    steps.run("layers (no import circle, cargo-modules)", layers::check)?;
    steps.run("unit tests", || {
        proc::run(&mut cargo_cmd([
            "test",
            "--workspace",
            "--exclude",
            "pinhole-ebpf",
            "--lib",
            "--bins",
        ]))
    })?;
    steps.run("doc tests", || {
        proc::run(&mut cargo_cmd([
            "test",
            "--workspace",
            "--exclude",
            "pinhole-ebpf",
            "--doc",
        ]))
    })?;
    // Not fuzzing (that is `cargo xtask fuzz`): every target still builds
    // and runs clean from its corpus and regression inputs.
    steps.run("fuzz smoke run (10 s per target)", || fuzz::run(10, None))?;
    steps.run("XDP program tests (BPF_PROG_TEST_RUN)", || {
        proc::run(&mut cargo_cmd([
            "test",
            "-p",
            "pinhole-integration",
            "--test",
            "xdp_prog",
            "--test",
            "xdp_latch",
            "--test",
            "xdp_links",
            "--test",
            "xdp_forward",
        ]))
    })?;
    // Seeded: a failure prints the seed to replay (PINHOLE_PROPTEST_SEED).
    steps.run("XDP property test (random, mutated frames)", || {
        proc::run(&mut cargo_cmd([
            "test",
            "-p",
            "pinhole-integration",
            "--test",
            "xdp_property",
        ]))
    })?;
    let mut bin = PathBuf::new();
    steps.run("build pinhole (release)", || {
        bin = build_pinhole(true)?;
        Ok(())
    })?;
    steps.run("network namespace integration tests", || {
        proc::run(
            cargo_cmd([
                "test",
                "-p",
                "pinhole-integration",
                "--test",
                "netns*",
                "--test",
                "ng_api",
            ])
            .env("PINHOLE_BIN", &bin),
        )
    })?;
    steps.run("benchmark smoke run", || {
        proc::run(&mut cargo_cmd([
            "run",
            "--release",
            "-p",
            "pinhole-integration",
            "--bin",
            "pinhole-bench",
            "--",
            "--quick",
        ]))
    })?;
    steps.summary();
    eprintln!("\nall checks passed");
    Ok(())
}

/// Clippy on the eBPF crate for its real target, with Debian's toolchain.
///
/// The environment is cleared (rustup's and the outer cargo's variables must
/// not leak in), and /usr/bin goes first on PATH: cargo finds `cargo-clippy` on
/// PATH, and rustup's proxy in ~/.cargo/bin would run the stable clippy-driver,
/// which has no `core` for bpfel-unknown-none.
fn clippy_ebpf() -> Result<()> {
    let mut path = vec![PathBuf::from("/usr/bin")];
    if let Some(p) = std::env::var_os("PATH") {
        path.extend(std::env::split_paths(&p));
    }
    let mut cmd = proc::clean_command(DEBIAN_CARGO);
    cmd.current_dir(root())
        .env("PATH", std::env::join_paths(path)?)
        .env("RUSTC", DEBIAN_RUSTC)
        // aya-ebpf and our config() use asm_experimental_arch; scoped to the
        // two crates because `=1` would make aya-build ask for build-std.
        .env("RUSTC_BOOTSTRAP", "aya_ebpf,pinhole_ebpf")
        .args([
            "clippy",
            "-p",
            "pinhole-ebpf",
            "--target",
            "bpfel-unknown-none",
        ])
        .arg("--target-dir")
        .arg(target_dir().join("bpf"))
        .args(["--", "-D", "warnings"]);
    proc::run(&mut cmd)
}
