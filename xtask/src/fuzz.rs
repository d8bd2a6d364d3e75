//! `cargo xtask fuzz`: runs the cargo-fuzz (libFuzzer) targets in `fuzz/`
//! for a fixed time each and prints executions and crashes per target.
//!
//! The fuzz crate is its own workspace (nightly and sanitizer flags must not
//! reach the main one); cargo-fuzz is installed with the stable toolchain when
//! missing, and nightly (which `-Z` coverage instrumentation needs) with
//! rustup. Targets are built without AddressSanitizer: the fuzzed modules
//! contain no `unsafe` code, so ASan finds nothing there and only costs a
//! third of the executions; overflow checks stay on (cargo-fuzz builds with
//! debug assertions).
//!
//! Each run starts from `fuzz/corpus/<target>` (seeds in git, plus whatever
//! earlier runs found) and replays `fuzz/regressions/<target>` (inputs that
//! once crashed). A crash stops that target's run; libFuzzer writes the input
//! to `fuzz/artifacts/<target>/`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, Context, Result};

use crate::proc::{self, probe};

/// The nightly toolchain the targets build with.
const NIGHTLY: &str = "nightly";

/// Per-input time limit: an input that takes longer is reported as a crash
/// (a parser that hangs is a denial of service).
const INPUT_TIMEOUT_SECS: u32 = 10;

/// What one target's run achieved.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub executions: u64,
    /// Seconds libFuzzer reports having run.
    pub seconds: u64,
    /// Crash, timeout, leak and OOM inputs written during the run.
    pub crashes: usize,
}

fn fuzz_dir() -> PathBuf {
    crate::root().join("fuzz")
}

/// `rustup run nightly cargo fuzz …` in `fuzz/`, with a clean environment
/// (the outer cargo's and rustup's variables must not pick the toolchain).
fn cargo_fuzz() -> Command {
    let mut cmd = proc::clean_command("rustup");
    cmd.current_dir(fuzz_dir())
        .args(["run", NIGHTLY, "cargo", "fuzz"]);
    if let Some(home) = std::env::var_os("RUSTUP_HOME") {
        cmd.env("RUSTUP_HOME", home);
    }
    cmd
}

/// Installs what fuzzing needs: rustup's nightly toolchain and cargo-fuzz.
fn ensure_tools() -> Result<()> {
    let nightly = probe(Command::new("rustup").args(["run", NIGHTLY, "rustc", "--version"]));
    match nightly {
        Some(v) => eprintln!("ok: {} present", v.trim()),
        None => {
            eprintln!("missing: rustup toolchain {NIGHTLY}");
            proc::run(Command::new("rustup").args([
                "toolchain",
                "install",
                NIGHTLY,
                "--profile",
                "minimal",
            ]))?;
        }
    }
    match probe(cargo_fuzz().arg("--version")) {
        Some(v) => eprintln!("ok: {} present", v.trim()),
        None => {
            eprintln!("missing: cargo-fuzz");
            proc::run(Command::new(crate::cargo()).args(["install", "cargo-fuzz", "--locked"]))?;
            probe(cargo_fuzz().arg("--version"))
                .context("cargo fuzz does not run after installing cargo-fuzz")?;
        }
    }
    Ok(())
}

/// The targets `cargo fuzz list` reports.
fn targets() -> Result<Vec<String>> {
    let out = probe(cargo_fuzz().arg("list")).context("`cargo fuzz list` failed")?;
    let list: Vec<String> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(!list.is_empty(), "`cargo fuzz list` lists no targets");
    Ok(list)
}

/// Files in `dir` whose names start like libFuzzer's artifacts.
fn artifacts(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                ["crash-", "timeout-", "leak-", "oom-", "slow-unit-"]
                    .iter()
                    .any(|prefix| n.starts_with(prefix))
            })
        })
        .collect();
    found.sort();
    found
}

/// Executions and seconds from libFuzzer's output: the final
/// `stat::number_of_executed_units`, else the `Done N runs in S second(s)`
/// line, else the last `#N …` status line.
pub fn parse_log(log: &str) -> (Option<u64>, Option<u64>) {
    let mut executions = None;
    let mut seconds = None;
    let mut last_status = None;
    for line in log.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
            executions = v.trim().parse().ok().or(executions);
        } else if let Some(rest) = line.strip_prefix("Done ") {
            let mut words = rest.split_whitespace();
            let runs = words.next().and_then(|w| w.parse().ok());
            if words.next() == Some("runs") && words.next() == Some("in") {
                executions = executions.or(runs);
                seconds = words.next().and_then(|w| w.parse().ok());
            }
        } else if let Some(rest) = line.strip_prefix('#') {
            if let Some(n) = rest.split_whitespace().next().and_then(|w| w.parse().ok()) {
                last_status = Some(n);
            }
        }
    }
    (executions.or(last_status), seconds)
}

/// Runs `target` for `seconds`, its output in `log`.
fn run_target(target: &str, seconds: u64, log: &Path) -> Result<Outcome> {
    let dir = fuzz_dir();
    let artifact_dir = dir.join("artifacts").join(target);
    let before = artifacts(&artifact_dir);
    let corpus = dir.join("corpus").join(target);
    fs::create_dir_all(&corpus)?;
    let mut cmd = cargo_fuzz();
    cmd.args(["run", "--sanitizer", "none", target])
        .arg(&corpus);
    let regressions = dir.join("regressions").join(target);
    if regressions.is_dir() {
        cmd.arg(&regressions);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg("-print_final_stats=1");
    let file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    eprintln!("+ {}  (output in {})", proc::display(&cmd), log.display());
    let started = Instant::now();
    let status = cmd
        .stdout(file.try_clone()?)
        .stderr(file)
        .stdin(Stdio::null())
        .status()
        .context("cannot start `cargo fuzz run`")?;
    let text = fs::read_to_string(log).unwrap_or_default();
    let (executions, reported) = parse_log(&text);
    let crashes = artifacts(&artifact_dir)
        .into_iter()
        .filter(|p| !before.contains(p))
        .inspect(|p| eprintln!("{target}: crash input written to {}", p.display()))
        .count();
    if !status.success() && crashes == 0 {
        show_tail(&text);
        bail!(
            "`cargo fuzz run {target}` failed ({status}) without a crash input; see {}",
            log.display()
        );
    }
    if crashes > 0 {
        show_tail(&text);
    }
    Ok(Outcome {
        executions: executions.unwrap_or(0),
        seconds: reported.unwrap_or_else(|| started.elapsed().as_secs()),
        crashes,
    })
}

fn show_tail(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines[lines.len().saturating_sub(40)..] {
        eprintln!("  | {line}");
    }
}

/// The summary table.
pub fn table(rows: &[(String, Outcome)]) -> String {
    let width = rows.iter().map(|(t, _)| t.len()).max().unwrap_or(0).max(6);
    let mut out = format!(
        "{:<width$}  {:>12}  {:>7}  {:>8}  {:>7}\n",
        "target", "executions", "seconds", "exec/s", "crashes"
    );
    for (target, o) in rows {
        let rate = o.executions / o.seconds.max(1);
        out.push_str(&format!(
            "{target:<width$}  {:>12}  {:>7}  {rate:>8}  {:>7}\n",
            o.executions, o.seconds, o.crashes
        ));
    }
    out
}

/// Builds the targets, then fuzzes each (or `only`) for `seconds`.
pub fn run(seconds: u64, only: Option<&str>) -> Result<()> {
    anyhow::ensure!(seconds > 0, "--seconds must be at least 1");
    ensure_tools()?;
    let all = targets()?;
    let chosen: Vec<String> = match only {
        Some(t) if all.iter().any(|a| a == t) => vec![t.to_owned()],
        Some(t) => bail!("no fuzz target `{t}`; targets: {}", all.join(", ")),
        None => all,
    };
    // Build first, so that the fuzzing time is fuzzing.
    // `cargo fuzz build` takes one target, or none for all.
    let mut build = cargo_fuzz();
    build.args(["build", "--sanitizer", "none"]);
    if let [one] = chosen.as_slice() {
        build.arg(one);
    }
    proc::run(&mut build)?;
    let logs = crate::target_dir().join("fuzz-logs");
    fs::create_dir_all(&logs)?;
    let mut rows = Vec::new();
    for target in &chosen {
        let outcome = run_target(target, seconds, &logs.join(format!("{target}.log")))?;
        eprintln!(
            "{target}: {} executions in {} s, {} crash(es)",
            outcome.executions, outcome.seconds, outcome.crashes
        );
        rows.push((target.clone(), outcome));
    }
    print!("{}", table(&rows));
    let crashed: Vec<&str> = rows
        .iter()
        .filter(|(_, o)| o.crashes > 0)
        .map(|(t, _)| t.as_str())
        .collect();
    if !crashed.is_empty() {
        bail!(
            "crashes in {} (inputs under fuzz/artifacts/; reproduce with \
             `cd fuzz && cargo +nightly fuzz run -s none <target> <input>`)",
            crashed.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzer_logs() {
        let final_stats = "INFO: Seed: 1\n#430\tINITED cov: 1987 ft: 5870 corp: 358/34Kb exec/s: 0 rss: 54Mb\n\
             #117724\tDONE   cov: 2546 ft: 9462 corp: 1332/951Kb lim: 3466 exec/s: 2559 rss: 474Mb\n\
             Done 117724 runs in 46 second(s)\n\
             stat::number_of_executed_units: 117725\n\
             stat::average_exec_per_sec:     2559\n";
        let cases = [
            (final_stats, (Some(117_725), Some(46))),
            ("#5 DONE cov: 1\nDone 5 runs in 0 second(s)\n", (Some(5), Some(0))),
            // A crash: no DONE line, the last status line counts.
            (
                "#1024\tpulse  cov: 10\n#2048\tNEW    cov: 11\n==1== ERROR: libFuzzer: deadly signal\n",
                (Some(2048), None),
            ),
            ("", (None, None)),
            ("Done lots of runs\n#x DONE\n", (None, None)),
        ];
        for (log, want) in cases {
            assert_eq!(parse_log(log), want, "log {log:?}");
        }
    }

    #[test]
    fn table_has_a_row_per_target() {
        let rows = vec![
            (
                "sip".to_owned(),
                Outcome {
                    executions: 1000,
                    seconds: 10,
                    crashes: 0,
                },
            ),
            (
                "tcp_reassembly".to_owned(),
                Outcome {
                    executions: 7,
                    seconds: 0,
                    crashes: 1,
                },
            ),
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(
            lines[0].starts_with("target") && lines[0].ends_with("crashes"),
            "{t}"
        );
        assert!(
            lines[1].starts_with("sip ") && lines[1].contains(" 100 "),
            "{t}"
        );
        assert!(
            lines[2].starts_with("tcp_reassembly") && lines[2].ends_with(" 1"),
            "{t}"
        );
    }
}
