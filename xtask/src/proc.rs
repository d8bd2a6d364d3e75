//! Running external commands: echo what runs, fail with the command line and
//! exit status, and time named steps.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

/// Variables kept when a command must not inherit the caller's environment
/// (rustup's and the outer cargo's variables would leak into Debian's cargo).
const KEPT_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "CARGO_HOME",
    "TERM",
    "CI",
    "CARGO_TERM_COLOR",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// `program args…` with the explicitly set environment in front, for echoing.
pub fn display(cmd: &Command) -> String {
    let mut out = String::new();
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => out.push_str(&format!("{}={} ", key.to_string_lossy(), quote(v))),
            None => out.push_str(&format!("-u {} ", key.to_string_lossy())),
        }
    }
    out.push_str(&quote(cmd.get_program()));
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&quote(arg));
    }
    out
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%*".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `cmd`, echoing it first; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = display(cmd);
    eprintln!("+ {line}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout, or `None` when it cannot be
/// started or exits non-zero. For probing tools.
pub fn probe(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A command whose environment holds only [`KEPT_ENV`].
pub fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    for key in KEPT_ENV {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd
}

/// The first executable called `name` on `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Named, timed steps that stop at the first failure and end with a summary.
#[derive(Default)]
pub struct Steps {
    done: Vec<(String, Duration)>,
}

impl Steps {
    pub fn run(&mut self, name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
        eprintln!("\n==> {name}");
        let start = Instant::now();
        let result = f();
        let took = start.elapsed();
        match result {
            Ok(()) => {
                eprintln!("<== {name}: ok ({})", secs(took));
                self.done.push((name.to_owned(), took));
                Ok(())
            }
            Err(e) => {
                self.summary();
                eprintln!("\n*** FAILED: {name} after {}", secs(took));
                Err(e.context(format!("step `{name}` failed")))
            }
        }
    }

    pub fn summary(&self) {
        if self.done.is_empty() {
            return;
        }
        eprintln!("\nsteps:");
        let width = self.done.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, took) in &self.done {
            eprintln!("  ok  {name:<width$}  {:>8}", secs(*took));
        }
        let total: Duration = self.done.iter().map(|(_, d)| *d).sum();
        eprintln!("  total {:>w$}", secs(total), w = width + 6);
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        for (input, expected) in [
            ("plain", "plain"),
            ("a/b-c_d.e=f:g,h+i", "a/b-c_d.e=f:g,h+i"),
            ("", "''"),
            ("two words", "'two words'"),
            ("it's", r"'it'\''s'"),
            ("$HOME", "'$HOME'"),
            ("netns*", "netns*"),
        ] {
            assert_eq!(quote(OsStr::new(input)), expected, "input {input:?}");
        }
    }

    #[test]
    fn display_shows_env_and_args() {
        let mut cmd = Command::new("cargo");
        cmd.env("RUSTC", "/usr/bin/rustc")
            .env_remove("RUSTUP_TOOLCHAIN")
            .args(["clippy", "--", "-D warnings"]);
        let shown = display(&cmd);
        assert!(shown.contains("RUSTC=/usr/bin/rustc "), "{shown}");
        assert!(shown.contains("-u RUSTUP_TOOLCHAIN "), "{shown}");
        assert!(shown.ends_with("cargo clippy -- '-D warnings'"), "{shown}");
    }
}
