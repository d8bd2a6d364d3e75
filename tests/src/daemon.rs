//! The `pinhole` binary: locating it, running the daemon in a namespace, and
//! the CLI with its JSON output.

use std::{
    collections::BTreeMap,
    ffi::OsStr,
    fs::File,
    io::Read,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::OnceLock,
    time::{Duration, Instant, SystemTime},
};

use serde::Deserialize;

use crate::{wait_for, Error, Netns, Result, TempDir, POLL_INTERVAL};

/// How long a CLI command may take before the harness gives up on it.
const CLI_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the daemon may take to answer on its control socket.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the daemon may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The `pinhole` binary under test: `$PINHOLE_BIN`, else the newer of
/// `target/release/pinhole` and `target/debug/pinhole`.
pub fn pinhole_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("PINHOLE_BIN") {
            let bin = PathBuf::from(bin);
            assert!(
                bin.is_file(),
                "PINHOLE_BIN={} does not exist",
                bin.display()
            );
            return bin;
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let mtime = |p: &PathBuf| p.metadata().and_then(|m| m.modified()).ok();
        ["release", "debug"]
            .iter()
            .map(|profile| target.join(profile).join("pinhole"))
            .filter_map(|p| mtime(&p).map(|t| (t, p)))
            .max_by_key(|(t, _): &(SystemTime, PathBuf)| *t)
            .map(|(_, p)| p)
            .unwrap_or_else(|| {
                panic!(
                    "no pinhole binary: set PINHOLE_BIN, or build one with \
                     `cargo xtask build` (looked in {}/{{release,debug}})",
                    target.display()
                )
            })
    })
}

/// `pinhole args…` (not in any namespace: the control socket is a file).
pub fn pinhole_command<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(pinhole_bin());
    cmd.args(args);
    cmd
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct CliOutput {
    pub cmd: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// Stdout, or an error carrying stderr when the command failed.
    pub fn ok(self) -> Result<String> {
        if self.status.success() {
            Ok(self.stdout)
        } else {
            Err(Error::Command {
                cmd: self.cmd,
                status: self.status,
                stderr: self.stderr,
            })
        }
    }

    /// Stdout parsed as JSON, or an error when the command failed.
    pub fn json<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        let cmd = self.cmd.clone();
        let text = self.ok()?;
        serde_json::from_str(&text).map_err(|source| Error::Json { cmd, source, text })
    }

    /// The lines of stderr that start with `error: `.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect()
    }

    /// Checks the failure contract of a client command: non-zero exit and
    /// exactly one stderr line, which starts with `error: `. Returns the line.
    pub fn expect_client_error(&self) -> std::result::Result<&str, String> {
        self.expect_failed()?;
        let lines: Vec<&str> = self.stderr.lines().collect();
        match lines.as_slice() {
            [line] if line.starts_with("error: ") => Ok(line),
            _ => Err(format!(
                "`{}` should print exactly one `error: ` line, stderr was:\n{}",
                self.cmd, self.stderr
            )),
        }
    }

    /// Checks the failure contract of `pinhole run` (which may log before it
    /// fails): non-zero exit and exactly one line starting with `error: `.
    pub fn expect_daemon_error(&self) -> std::result::Result<&str, String> {
        self.expect_failed()?;
        match self.error_lines().as_slice() {
            [line] => Ok(line),
            _ => Err(format!(
                "`{}` should print exactly one `error: ` line, stderr was:\n{}",
                self.cmd, self.stderr
            )),
        }
    }

    fn expect_failed(&self) -> std::result::Result<(), String> {
        if self.status.success() {
            return Err(format!(
                "`{}` should have failed but exited 0; stdout:\n{}\nstderr:\n{}",
                self.cmd, self.stdout, self.stderr
            ));
        }
        if self.status.code().is_none() {
            return Err(format!(
                "`{}` was killed ({}) instead of exiting with an error; stderr:\n{}",
                self.cmd, self.status, self.stderr
            ));
        }
        Ok(())
    }
}

/// Runs `cmd` to completion with stdin closed and output captured, killing it
/// after `timeout`.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<CliOutput> {
    let shown = display(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            cmd: shown.clone(),
            source,
        })?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    };
    let stdout = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let status = match wait_child(&mut child, timeout) {
        Ok(status) => status,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(match e {
                Error::Timeout { after, .. } => Error::Timeout {
                    what: format!("`{shown}` to finish"),
                    after,
                },
                other => other,
            });
        }
    };
    Ok(CliOutput {
        cmd: shown,
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

fn wait_child(child: &mut Child, timeout: Duration) -> Result<ExitStatus> {
    let pid = child.id();
    wait_for(&format!("process {pid} to exit"), timeout, || {
        child
            .try_wait()
            .map_err(Error::io(format!("waiting for process {pid}")))
    })
}

/// `program args…` with arguments quoted where needed, for messages.
pub(crate) fn display(cmd: &Command) -> String {
    let quote = |s: &OsStr| {
        let s = s.to_string_lossy();
        if !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@[]".contains(c))
        {
            s.into_owned()
        } else {
            format!("'{}'", s.replace('\'', r"'\''"))
        }
    };
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `pinhole run …` inside a namespace, with its own control socket.
///
/// Ready once `pinhole --control P stats --json` answers. Dropping it sends
/// SIGTERM and waits for the exit (SIGKILL after a bound). If the test is
/// panicking, the daemon's log is printed to help the diagnosis.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    control: PathBuf,
    log: PathBuf,
    netns: String,
    dir: TempDir,
}

impl Daemon {
    /// Starts `pinhole run --control <tmp>/control.sock args…` in `ns` and
    /// waits until it is ready.
    pub fn start<S: AsRef<OsStr>>(ns: &Netns, args: &[S]) -> Result<Daemon> {
        let dir = TempDir::new()?;
        let control = dir.path().join("control.sock");
        let log = dir.path().join("daemon.log");
        let log_file =
            File::create(&log).map_err(Error::io(format!("creating {}", log.display())))?;
        let log_err = log_file
            .try_clone()
            .map_err(Error::io("duplicating the log file"))?;
        let mut cmd = ns.command(pinhole_bin());
        cmd.arg("run")
            .arg("--control")
            .arg(&control)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        let shown = display(&cmd);
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            cmd: shown.clone(),
            source,
        })?;
        let mut daemon = Daemon {
            child: Some(child),
            control,
            log,
            netns: ns.name().to_owned(),
            dir,
        };
        daemon.wait_ready(&shown)?;
        Ok(daemon)
    }

    fn wait_ready(&mut self, shown: &str) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .expect("daemon is running")
                .try_wait()
                .map_err(Error::io("waiting for the daemon"))?
            {
                self.child = None;
                return Err(Error::Setup(format!(
                    "`{shown}` exited ({status}) before it was ready; its log:\n{}",
                    self.log()
                )));
            }
            if self.stats().is_ok() {
                return Ok(());
            }
            if start.elapsed() >= READY_TIMEOUT {
                return Err(Error::Setup(format!(
                    "`{shown}` did not answer on {} within {READY_TIMEOUT:?}; its log:\n{}",
                    self.control.display(),
                    self.log()
                )));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The control socket path.
    pub fn control(&self) -> &Path {
        &self.control
    }

    /// The namespace the daemon runs in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// A scratch directory that lives as long as the daemon.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The pid of the daemon process, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the daemon process has not exited.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Everything the daemon wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `pinhole --control <socket> args…`, bounded.
    pub fn cli<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<CliOutput> {
        let mut cmd = Command::new(pinhole_bin());
        cmd.arg("--control").arg(&self.control).args(args);
        run_bounded(&mut cmd, CLI_TIMEOUT)
    }

    /// [`Daemon::cli`], failing unless the command exits 0. Returns stdout.
    pub fn cli_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String> {
        self.cli(args)?.ok()
    }

    /// `stats --json`.
    pub fn stats(&self) -> Result<Stats> {
        self.cli(&["stats", "--json"])?.json()
    }

    /// `list --json`.
    pub fn list(&self) -> Result<Vec<Pinhole>> {
        Ok(self
            .cli(&["list", "--json"])?
            .json::<PinholeList>()?
            .pinholes)
    }

    /// `calls --json`.
    pub fn calls(&self) -> Result<Vec<Call>> {
        Ok(self.cli(&["calls", "--json"])?.json::<CallList>()?.calls)
    }

    /// `open a b [extra…]`.
    pub fn open(&self, a: SocketAddr, b: SocketAddr, extra: &[&str]) -> Result<String> {
        let mut args = vec!["open".to_owned(), a.to_string(), b.to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        self.cli_ok(&args)
    }

    /// `close a b`.
    pub fn close(&self, a: SocketAddr, b: SocketAddr) -> Result<String> {
        self.cli_ok(&["close".to_owned(), a.to_string(), b.to_string()])
    }

    /// Packets counted under `reason` (a `Reason::name()`).
    pub fn counter(&self, reason: &str) -> Result<u64> {
        self.stats()?.packets(reason)
    }

    /// Waits until the `reason` counter reaches `target`, then returns its value
    /// (which may exceed `target`: callers assert exact values themselves).
    pub fn wait_counter(&self, reason: &str, target: u64, timeout: Duration) -> Result<u64> {
        let mut last = 0;
        let res = wait_for(
            &format!("counter `{reason}` to reach {target}"),
            timeout,
            || {
                last = self.counter(reason)?;
                Ok((last >= target).then_some(last))
            },
        );
        res.map_err(|e| match e {
            Error::Timeout { what, after } => Error::Timeout {
                what: format!("{what} (last value {last})"),
                after,
            },
            other => other,
        })
    }

    /// Sends SIGTERM and waits for the exit. Returns the exit status.
    pub fn stop(mut self) -> Result<ExitStatus> {
        self.terminate()
    }

    /// Sends SIGTERM and waits for the exit; the daemon is stopped
    /// afterwards (a [`Lab`](crate::lab::Lab) replaces it in place).
    pub(crate) fn terminate(&mut self) -> Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            return Err(Error::Setup("the daemon has already exited".into()));
        };
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(status);
        }
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        match wait_child(&mut child, STOP_TIMEOUT) {
            Ok(status) => Ok(status),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(Error::Setup(format!(
                    "the daemon ignored SIGTERM ({e}); killed it. Its log:\n{}",
                    self.log()
                )))
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let result = if self.child.is_some() {
            self.terminate().map(Some)
        } else {
            Ok(None)
        };
        if std::thread::panicking() {
            eprintln!(
                "---- pinhole daemon log ({}) ----\n{}---- end of daemon log ----",
                self.netns,
                self.log()
            );
        } else if let Err(e) = result {
            eprintln!("stopping the pinhole daemon: {e}");
        }
    }
}

/// `stats --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Stats {
    pub counters: BTreeMap<String, CounterValue>,
    pub flows: FlowUsage,
    pub pinholes: u64,
    /// The signaling layer's counters (absent with `--signaling off` builds
    /// that do not report them).
    #[serde(default)]
    pub signaling: Option<SignalingStats>,
    /// The configured interfaces' attach state.
    #[serde(default)]
    pub interfaces: Vec<InterfaceState>,
    /// The controller task's longest step since start (absent from daemons
    /// that do not report it).
    #[serde(default)]
    pub longest_step_us: Option<u64>,
}

/// `stats --json` → `interfaces[]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct InterfaceState {
    pub name: String,
    /// `attached`, `absent` or `failed`.
    pub state: String,
    pub mode: String,
    pub ifindex: Option<u32>,
    pub up: Option<bool>,
    pub reattached: u64,
    #[serde(default)]
    pub error: Option<String>,
}

impl Stats {
    /// The state of interface `name`; an error if the daemon does not report it.
    pub fn interface(&self, name: &str) -> Result<&InterfaceState> {
        self.interfaces
            .iter()
            .find(|i| i.name == name)
            .ok_or_else(|| {
                Error::Setup(format!(
                    "stats has no interface `{name}` (has {:?})",
                    self.interfaces
                ))
            })
    }

    /// Packets counted under `reason`; an error if the daemon does not report it.
    pub fn packets(&self, reason: &str) -> Result<u64> {
        self.counters.get(reason).map(|c| c.packets).ok_or_else(|| {
            Error::Setup(format!(
                "stats has no counter `{reason}` (has {:?})",
                self.counters.keys().collect::<Vec<_>>()
            ))
        })
    }
}

/// `stats --json` → `signaling`: what the daemon learned from the wire.
#[derive(Debug, Clone, Deserialize)]
pub struct SignalingStats {
    pub sip_messages: u64,
    pub rtsp_messages: u64,
    pub parse_errors: u64,
    pub calls_active: u64,
    pub calls_opened: u64,
    pub calls_closed: u64,
    /// Refusals by reason.
    #[serde(default)]
    pub refused: BTreeMap<String, u64>,
    pub setup_latency_us: LatencySummary,
    /// Anything else the daemon reports (e.g. per-pair counters).
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Signaling packet received → map updated, in microseconds.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    #[serde(default)]
    pub p50: Option<f64>,
    #[serde(default)]
    pub p99: Option<f64>,
}

/// One verdict counter, summed over CPUs.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct CounterValue {
    pub packets: u64,
    pub bytes: u64,
}

/// Flow map occupancy.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct FlowUsage {
    pub used: u64,
    pub capacity: u64,
}

/// `list --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct PinholeList {
    pub pinholes: Vec<Pinhole>,
}

/// One pinhole of `list --json`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Pinhole {
    pub a: SocketAddr,
    pub b: SocketAddr,
    pub rtcp: bool,
    pub idle_timeout_secs: u64,
    pub idle_secs: u64,
    pub age_secs: u64,
    pub packets: u64,
    pub bytes: u64,
    /// `manual`, `sip:<call-id>…` or `rtsp:…`.
    #[serde(default)]
    pub owner: Option<String>,
    pub flows: Vec<Flow>,
}

impl Pinhole {
    /// The flow `src → dst`, if the pinhole has it.
    pub fn flow(&self, src: SocketAddr, dst: SocketAddr) -> Option<&Flow> {
        self.flows.iter().find(|f| f.src == src && f.dst == dst)
    }
}

/// `calls --json`.
#[derive(Debug, Clone, Deserialize)]
pub struct CallList {
    pub calls: Vec<Call>,
}

/// One call of `calls --json`: SIP, ng (driven by a proxy) or RTSP.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Call {
    /// `sip`, `ng` or `rtsp`.
    pub kind: String,
    pub call_id: String,
    /// SIP: the caller's From-tag; RTSP: the server.
    pub tag: String,
    /// The owner tag of its pinholes in `list --json`.
    pub owner: String,
    pub state: String,
    pub age_secs: u64,
    pub packets: u64,
    pub bytes: u64,
    pub streams: Vec<CallStream>,
}

/// One media pair of a call.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct CallStream {
    pub index: usize,
    /// `rtp`, `rtcp` or `media`.
    #[serde(rename = "type")]
    pub kind: String,
    pub a: SocketAddr,
    pub b: SocketAddr,
    pub a_to_b: CounterValue,
    pub b_to_a: CounterValue,
    pub packets: u64,
    pub bytes: u64,
    /// `open`, `hold` or `expired` (idled out; the next offer/answer opens
    /// it again). Daemons before issue 9 do not say.
    #[serde(default)]
    pub state: Option<String>,
}

/// One direction of a pinhole.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Flow {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub packets: u64,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn output(code: i32, stderr: &str) -> CliOutput {
        CliOutput {
            cmd: "pinhole open".into(),
            status: ExitStatus::from_raw(code << 8),
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn client_error_contract() {
        for (code, stderr, ok) in [
            (2, "error: bad address\n", true),
            (1, "error: map full", true),
            (0, "error: exit 0 is not a failure\n", false),
            (2, "", false),
            (2, "error: one\nerror: two\n", false),
            (2, "Error: wrong case\n", false),
            (2, "warning: x\nerror: y\n", false),
            (2, "\nerror: leading blank line\n", false),
        ] {
            assert_eq!(
                output(code, stderr).expect_client_error().is_ok(),
                ok,
                "code {code} stderr {stderr:?}"
            );
        }
    }

    #[test]
    fn daemon_error_contract() {
        for (code, stderr, ok) in [
            (1, "INFO loading\nerror: no such interface\n", true),
            (1, "error: x", true),
            (1, "INFO loading\n", false),
            (1, "error: a\nerror: b\n", false),
            (0, "error: x\n", false),
        ] {
            assert_eq!(
                output(code, stderr).expect_daemon_error().is_ok(),
                ok,
                "code {code} stderr {stderr:?}"
            );
        }
        // Killed by a signal is not an orderly error exit.
        let killed = CliOutput {
            status: ExitStatus::from_raw(libc::SIGKILL),
            ..output(0, "error: x\n")
        };
        assert!(killed.expect_daemon_error().is_err());
    }

    #[test]
    fn parses_contract_json() {
        let stats: Stats = serde_json::from_str(
            r#"{"counters":{"not_ip":{"packets":1,"bytes":60},"hit":{"packets":5,"bytes":500}},
                "flows":{"used":4,"capacity":262144},"pinholes":2}"#,
        )
        .unwrap();
        assert_eq!(stats.packets("hit").unwrap(), 5);
        assert!(stats.packets("nope").is_err());
        assert_eq!(
            stats.flows,
            FlowUsage {
                used: 4,
                capacity: 262144
            }
        );
        let list: PinholeList = serde_json::from_str(
            r#"{"pinholes":[{"a":"192.0.2.1:4000","b":"[2001:db8::2]:10000","rtcp":false,
                "idle_timeout_secs":300,"idle_secs":3,"age_secs":5,"packets":12,"bytes":1234,
                "flows":[{"src":"192.0.2.1:4000","dst":"198.51.100.2:10000","packets":6,"bytes":600}]}]}"#,
        )
        .unwrap();
        let p = &list.pinholes[0];
        assert_eq!(p.b, "[2001:db8::2]:10000".parse().unwrap());
        let f = p
            .flow(
                "192.0.2.1:4000".parse().unwrap(),
                "198.51.100.2:10000".parse().unwrap(),
            )
            .unwrap();
        assert_eq!((f.packets, f.bytes), (6, 600));
    }

    #[test]
    fn parses_signaling_json() {
        let stats: Stats = serde_json::from_str(
            r#"{"counters":{},"flows":{"used":4,"capacity":8},"pinholes":2,
                "signaling":{"sip_messages":7,"rtsp_messages":0,"parse_errors":1,"calls_active":1,
                "calls_opened":1,"calls_closed":0,"refused":{"untrusted":0,"map_full":2},
                "setup_latency_us":{"count":2,"p50":41.5,"p99":90},"pairs_opened":2}}"#,
        )
        .unwrap();
        let sig = stats.signaling.unwrap();
        assert_eq!(
            (sig.sip_messages, sig.parse_errors, sig.calls_active),
            (7, 1, 1)
        );
        assert_eq!(sig.refused["map_full"], 2);
        assert_eq!(sig.setup_latency_us.p50, Some(41.5));
        assert_eq!(sig.setup_latency_us.p99, Some(90.0));
        assert_eq!(sig.other["pairs_opened"], 2);
        // Without samples the percentiles may be null or absent.
        let empty: LatencySummary = serde_json::from_str(r#"{"count":0,"p50":null}"#).unwrap();
        assert_eq!((empty.count, empty.p50, empty.p99), (0, None, None));
        // Older daemons without signaling still parse.
        let plain: Stats =
            serde_json::from_str(r#"{"counters":{},"flows":{"used":0,"capacity":8},"pinholes":0}"#)
                .unwrap();
        assert!(plain.signaling.is_none());
    }

    #[test]
    fn parses_calls_json() {
        let list: CallList = serde_json::from_str(
            r#"{"calls":[{"kind":"ng","call_id":"c1","tag":"ft","owner":"ng:c1;from-tag=ft",
                "state":"confirmed","age_secs":3,"last_signal_secs":1,"packets":32,"bytes":2048,
                "streams":[{"index":0,"type":"rtp","dialog":"tt","a":"192.0.2.2:12000",
                "b":"[2001:db8::2]:10000","a_to_b":{"packets":16,"bytes":1024},
                "b_to_a":{"packets":16,"bytes":1024},"packets":32,"bytes":2048}]}]}"#,
        )
        .unwrap();
        let c = &list.calls[0];
        assert_eq!((c.kind.as_str(), c.packets, c.streams.len()), ("ng", 32, 1));
        let s = &c.streams[0];
        assert_eq!(s.kind, "rtp");
        assert_eq!(s.b, "[2001:db8::2]:10000".parse().unwrap());
        assert_eq!((s.a_to_b.packets, s.b_to_a.bytes), (16, 1024));
        assert!(serde_json::from_str::<CallList>(r#"{"calls":[{"kind":"ng"}]}"#).is_err());
    }

    #[test]
    fn display_quotes() {
        let mut cmd = Command::new("pinhole");
        cmd.args(["open", "[2001:db8::1]:4000", "two words", ""]);
        assert_eq!(
            display(&cmd),
            "pinhole open [2001:db8::1]:4000 'two words' ''"
        );
    }
}
