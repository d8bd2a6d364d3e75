//! The soak: calls at a steady rate through pinhole for minutes, with RTP
//! both ways on every call, and an account of what was lost, how the daemon
//! grew and what it left behind.
//!
//! The veth lab of the integration tests (caller namespace outside, router
//! running `pinhole run` with native XDP and inline SIP signaling, callee
//! namespace inside). sipp's caller places `--rate` calls per second for
//! `--secs` seconds (`tests/sipp/soak/`): each call is INVITE / 200 / ACK,
//! RTP both ways from fresh media ports in the filtered range for the hold
//! less one second, then BYE / 200 `--call-secs` after the ACK. At 100
//! calls/s and the default 5 s hold about 500 calls (1,000 RTP streams,
//! 40,000 packets/s through the router) are up at any time.
//!
//! Measured: calls attempted / completed / failed (sipp's statistics file);
//! RTP lost at call start and mid-call in each direction (an `AF_PACKET`
//! tap on each host, see `soak/capture.rs` and `soak/analysis.rs`); the
//! daemon's VmRSS every second and VmHWM at the end, flows, pinholes and
//! calls every second and after the last BYE plus the grace, the kernel's
//! flow and latch map entries at the end (`bpftool map dump`); the filter's
//! counters, and an unsolicited stream's drops.
//!
//! Writes a Markdown report (`--out`, default `bench/results/soak.md`) and
//! the JSON next to it. Exits 1 when a goal is missed (after writing them).
//! Needs root, sipp, nft and bpftool; `cargo xtask soak` sees to that.

#[path = "../soak/mod.rs"]
mod soak;

// The lab bench's /proc and interface readers; the soak uses a few.
#[expect(dead_code, reason = "the soak uses a few of the lab bench's readers")]
#[path = "../bench/sys.rs"]
mod sys;

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::Parser;
use pinhole_integration::{
    lab::Lab,
    pinhole_bin, require_root,
    sipp::{rtp_pcap, RTP_INTERVAL},
    wait_for, Daemon, Family, Netns, TempDir, Topology,
};

use soak::{
    analysis::{self, Setup},
    capture::{Capture, HostTally, Params, Streams, MARKER_PORT, UNSOLICITED_PORT},
    probe::{self, SippStats},
    report::{self, Curve, Report, Sample},
};

#[derive(Parser)]
#[command(
    name = "pinhole-soak",
    about = "Calls at a steady rate through pinhole with RTP both ways; loss, RSS and leftovers \
             (needs root)"
)]
struct Args {
    /// Seconds of placing calls.
    #[arg(long)]
    secs: Option<u64>,
    /// Calls per second.
    #[arg(long)]
    rate: Option<u32>,
    /// Hold time of each call, ACK to BYE, in seconds (RTP flows for all of
    /// it but the last second). Concurrent calls ≈ rate × this.
    #[arg(long)]
    call_secs: Option<u64>,
    /// Packets sent in a stream's first this many milliseconds count as
    /// lost "at call start", later ones as "mid-call".
    #[arg(long, default_value_t = 200)]
    start_ms: u64,
    /// Unsolicited datagrams per second at the callee's media range.
    #[arg(long, default_value_t = 50)]
    unsolicited_rate: u32,
    /// Smoke run: 20 s at 20 calls/s, 3 s calls (unless given); writes to
    /// target/soak-quick/soak.md unless --out is given.
    #[arg(long)]
    quick: bool,
    /// Markdown report; the JSON goes next to it (`.json`).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The range pinhole guards and sipp's media ports come from.
const MEDIA_PORTS: (u16, u16) = (10_000, 20_000);
/// Media ports sipp cycles through: `-mp + 4 × (call − 1) mod 10000`.
const SIPP_PORT_CYCLE: u64 = 2_500;
/// RTP stops this long before the BYE.
const MEDIA_TAIL: Duration = Duration::from_secs(1);
/// A tuple quiet this long starts a new stream.
const STREAM_GAP: Duration = Duration::from_secs(3);
/// The daemon's `--bye-grace` (its default).
const BYE_GRACE_SECS: u64 = 2;
/// The NFQUEUE the daemon's signaling rules use (its default).
const QUEUE_NUM: u16 = 4242;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted; cleaning up");
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    match main_inner(&args) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("error: goals missed (see the report)");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn step(what: &str) {
    eprintln!("==> {what}");
}

/// The settings after `--quick` and the defaults.
struct Plan {
    secs: u64,
    rate: u32,
    call_secs: u64,
    start_ms: u64,
    unsolicited_rate: u32,
    out: PathBuf,
    quick: bool,
}

impl Plan {
    fn of(a: &Args) -> Result<Plan> {
        let (secs, rate, call_secs) = if a.quick { (20, 20, 3) } else { (600, 100, 5) };
        let p = Plan {
            secs: a.secs.unwrap_or(secs),
            rate: a.rate.unwrap_or(rate),
            call_secs: a.call_secs.unwrap_or(call_secs),
            start_ms: a.start_ms,
            unsolicited_rate: a.unsolicited_rate,
            quick: a.quick,
            out: a.out.clone().unwrap_or_else(|| {
                PathBuf::from(if a.quick {
                    "target/soak-quick/soak.md"
                } else {
                    "bench/results/soak.md"
                })
            }),
        };
        if p.rate == 0 || p.secs == 0 {
            bail!("--rate and --secs must be positive");
        }
        if !(2..=600).contains(&p.call_secs) {
            bail!("--call-secs must be 2 to 600 (RTP stops a second before the BYE)");
        }
        // A media port comes round again after 2,500 calls; its previous
        // stream must be over (and quiet for the gap) by then.
        let reuse = SIPP_PORT_CYCLE as f64 / f64::from(p.rate);
        let need = (p.call_secs + STREAM_GAP.as_secs() + 5) as f64;
        if reuse < need {
            bail!(
                "at {} calls/s sipp reuses a media port after {reuse:.1} s, but a {} s call needs \
                 {need:.0} s to tell its streams apart: lower --rate or --call-secs",
                p.rate,
                p.call_secs
            );
        }
        if p.start_ms >= p.media().as_millis() as u64 {
            bail!("--start-ms must be shorter than the RTP of a call");
        }
        Ok(p)
    }

    fn media(&self) -> Duration {
        Duration::from_secs(self.call_secs) - MEDIA_TAIL
    }

    fn packets(&self) -> u32 {
        (self.media().as_millis() / RTP_INTERVAL.as_millis()) as u32
    }

    fn start_packets(&self) -> u32 {
        (u128::from(self.start_ms)).div_ceil(RTP_INTERVAL.as_millis()) as u32
    }

    fn calls(&self) -> u64 {
        self.secs * u64::from(self.rate)
    }
}

fn main_inner(args: &Args) -> Result<bool> {
    let plan = Plan::of(args)?;
    let mut report = run(&plan)?;
    report.compute_goals();
    let md = report.markdown();
    if let Some(dir) = plan.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let json = plan.out.with_extension("json");
    std::fs::write(&plan.out, &md).with_context(|| format!("writing {}", plan.out.display()))?;
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    println!("{md}");
    eprintln!("wrote {} and {}", plan.out.display(), json.display());
    Ok(report.goals_met())
}

fn read(path: impl AsRef<Path>) -> Result<String> {
    let p = path.as_ref();
    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
}

fn loadavg() -> Result<[f64; 3]> {
    probe::loadavg(&read("/proc/loadavg")?).context("parsing /proc/loadavg")
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Media reaching a host is dropped in nftables, after its tap has seen it
/// and before sipp's raw sockets get a copy each (Linux hands every
/// datagram to an address to every raw UDP socket bound to it, and sipp
/// 3.6 opens one per playing stream: ~500 per host here).
fn drop_media_at(ns: &Netns) -> Result<()> {
    let range = format!("{}-{}", MEDIA_PORTS.0, MEDIA_PORTS.1);
    ns.exec("nft", &["add", "table", "inet", "soak"])?;
    ns.exec(
        "nft",
        &[
            "add",
            "chain",
            "inet",
            "soak",
            "pre",
            "{ type filter hook prerouting priority raw ; }",
        ],
    )?;
    ns.exec(
        "nft",
        &[
            "add", "rule", "inet", "soak", "pre", "udp", "dport", &range, "counter", "drop",
        ],
    )?;
    Ok(())
}

fn host_media_dropped(ns: &Netns) -> Result<u64> {
    let text = ns.exec("nft", &["list", "chain", "inet", "soak", "pre"])?;
    probe::nft_counter_packets(&text).context("no counter in the soak's nftables chain")
}

/// `stats --json` as a JSON value.
fn stats(daemon: &Daemon) -> Result<serde_json::Value> {
    let text = daemon.cli_ok(&["stats", "--json"])?;
    serde_json::from_str(&text).context("parsing `stats --json`")
}

fn at(v: &serde_json::Value, path: &str) -> u64 {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
}

fn proc_status_kib(pid: u32, key: &str) -> Result<u64> {
    probe::status_kib(&read(format!("/proc/{pid}/status"))?, key)
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

fn cpu_secs(pid: u32) -> Result<f64> {
    let ticks = probe::stat_cpu_ticks(&read(format!("/proc/{pid}/stat"))?)
        .with_context(|| format!("parsing /proc/{pid}/stat"))?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Ok(ticks as f64 / hz as f64)
}

/// Entries of the daemon's flow and latch maps, by name.
fn map_entries(pid: u32) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for m in sys::bpf_maps(pid)? {
        let id = m.id.to_string();
        let show: serde_json::Value = serde_json::from_str(&output(
            Command::new("bpftool").args(["-j", "map", "show", "id", &id]),
        )?)
        .context("parsing `bpftool map show`")?;
        let name = show["name"].as_str().unwrap_or("").to_owned();
        let wanted = [
            pinhole_common::FLOWS_V4_MAP,
            pinhole_common::FLOWS_V6_MAP,
            pinhole_common::LATCH_V4_MAP,
            pinhole_common::LATCH_V6_MAP,
        ];
        if !wanted.contains(&name.as_str()) {
            continue;
        }
        let dump: serde_json::Value = serde_json::from_str(&output(
            Command::new("bpftool").args(["-j", "map", "dump", "id", &id]),
        )?)
        .context("parsing `bpftool map dump`")?;
        let n = dump.as_array().map_or(0, |a| a.len() as u64);
        out.insert(name, n);
    }
    if !out.contains_key(pinhole_common::FLOWS_V4_MAP) {
        bail!(
            "the daemon (pid {pid}) holds no {} map",
            pinhole_common::FLOWS_V4_MAP
        );
    }
    Ok(out)
}

fn sipp_version() -> String {
    Command::new("sipp")
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                let v = l.trim().strip_prefix("SIPp ")?;
                Some(format!("sipp {}", v.trim_end_matches('.')))
            })
        })
        .unwrap_or_else(|| "sipp".to_owned())
}

/// What the daemon was built from: `PINHOLE_SOAK_BUILD` when set (a build
/// from elsewhere), else this checkout's commit, marked when the daemon's
/// sources have uncommitted changes.
fn pinhole_build() -> String {
    if let Ok(b) = std::env::var("PINHOLE_SOAK_BUILD") {
        return b;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "(unknown build)".to_owned();
    };
    match git(&["status", "--porcelain", "--", "userspace", "ebpf", "common"]) {
        Some(s) if s.is_empty() => format!("at {commit}"),
        _ => format!("at {commit} with uncommitted changes in userspace/, ebpf/ or common/"),
    }
}

/// sipp in `ns`, logging into `dir`.
fn sipp(ns: &Netns, dir: &Path, log: &str, args: &[String]) -> Result<std::process::Child> {
    pinhole_integration::sipp::spawn_logged(ns, dir, log, args).context("starting sipp")
}

/// Waits for `child` for at most `timeout` (SIGINT ends the wait); kills
/// it then. `None` when it had to be killed.
fn wait_child(child: &mut std::process::Child, timeout: Duration) -> Result<Option<i32>> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status.code().unwrap_or(-1)));
        }
        if INTERRUPTED.load(Ordering::SeqCst) || start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            interrupted()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills the sipp processes if the soak unwinds early.
struct Reap(Vec<std::process::Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        for c in &mut self.0 {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// Sets `flag` when dropped, so every thread of the scope stops on an
/// early return too.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The unsolicited stream: from the caller's host, port 9999 (in no SDP),
/// to even ports striding through the callee's media range, paced.
fn unsolicited(sock: &UdpSocket, to: Ipv4Addr, rate: u32, stop: &AtomicBool) -> Result<u64> {
    if rate == 0 {
        return Ok(0);
    }
    let span = u32::from(MEDIA_PORTS.1 - MEDIA_PORTS.0) / 2;
    let period = Duration::from_secs(1) / rate;
    let start = Instant::now();
    let mut n: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        let port = MEDIA_PORTS.0 + 2 * (n.wrapping_mul(997) % span) as u16;
        sock.send_to(b"unsolicited", SocketAddrV4::new(to, port))
            .context("sending the unsolicited stream")?;
        n = n.wrapping_add(1);
        if let Some(wait) = (start + period * n).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok(u64::from(n))
}

fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => unreachable!("the soak runs IPv4"),
    }
}

fn run(plan: &Plan) -> Result<Report> {
    require_root()?;
    for tool in ["sipp", "nft", "bpftool"] {
        output(Command::new("sh").args(["-c", &format!("command -v {tool}")]))
            .with_context(|| format!("{tool} is needed (`cargo xtask soak` installs it)"))?;
    }
    let load_before = loadavg()?;
    let started = output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M"]))?
        .trim()
        .to_owned();
    let wall = Instant::now();
    eprintln!("pinhole binary: {}", pinhole_bin().display());
    let packets = plan.packets();
    eprintln!(
        "soak: {} s at {} calls/s ({} calls), {} s calls with {} RTP packets each way, ~{} \
         concurrent",
        plan.secs,
        plan.rate,
        plan.calls(),
        plan.call_secs,
        packets,
        u64::from(plan.rate) * plan.call_secs
    );

    step("creating the lab: caller ↔ router (pinhole) ↔ callee");
    let state = TempDir::new()?;
    let state_file = state.path().join("state.json");
    let ports = format!("{}-{}", MEDIA_PORTS.0, MEDIA_PORTS.1);
    let grace = BYE_GRACE_SECS.to_string();
    let daemon_args: Vec<String> = [
        "--media-ports",
        &ports,
        "--bye-grace",
        &grace,
        // One caller address places every call: the per-peer cap (a
        // policy against floods) would refuse most of them.
        "--max-calls-per-peer",
        "1000000",
        "--state-file",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([state_file.display().to_string()])
    .collect();
    let arg_refs: Vec<&str> = daemon_args.iter().map(String::as_str).collect();
    let lab = Lab::new(Family::V4, &arg_refs).context("creating the lab")?;
    let pid = lab.daemon.pid().context("the daemon has no pid")?;
    let (caller, callee) = (v4(Family::V4.outside()), v4(Family::V4.inside()));
    drop_media_at(&lab.topo.outside)?;
    drop_media_at(&lab.topo.inside)?;
    interrupted()?;

    let dir = TempDir::new()?;
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp/soak");
    for name in ["uac_soak.xml", "uas_soak.xml"] {
        std::fs::copy(scenarios.join(name), dir.path().join(name))
            .with_context(|| format!("copying {name}"))?;
    }
    std::fs::write(dir.path().join("rtp.pcap"), rtp_pcap(packets, RTP_INTERVAL))?;

    let params = Params {
        packets,
        gap: STREAM_GAP,
        media_ports: MEDIA_PORTS,
    };
    let tap_out = Capture::open(&lab.topo.outside, Topology::OUTSIDE_IF, caller)?;
    let tap_in = Capture::open(&lab.topo.inside, Topology::INSIDE_IF, callee)?;
    let intruder = lab
        .topo
        .outside
        .udp_socket(SocketAddr::new(caller.into(), UNSOLICITED_PORT))?;
    let marker_out = lab
        .topo
        .outside
        .udp_socket(SocketAddr::new(caller.into(), 0))?;
    let marker_in = lab
        .topo
        .inside
        .udp_socket(SocketAddr::new(callee.into(), 0))?;

    let clock = Instant::now();
    let calls_began_ns = AtomicU64::new(0);
    let stop_taps = AtomicBool::new(false);
    let stop_load = AtomicBool::new(false);
    let samples: Mutex<Vec<Sample>> = Mutex::new(Vec::new());
    let calls = plan.calls();
    let hold_ms = plan.call_secs * 1000;
    let common = |ip: Ipv4Addr| -> Vec<String> {
        [
            "-t",
            "u1",
            "-i",
            &ip.to_string(),
            "-p",
            "5060",
            "-mi",
            &ip.to_string(),
            "-mp",
            &MEDIA_PORTS.0.to_string(),
            "-m",
            &calls.to_string(),
            // No throttling by sipp's own cap on simultaneous calls (20
            // times the expected concurrency, and fds to spare under the
            // open-file limit for the raw socket of each playing stream).
            "-l",
            "10000",
            // The callee waits a whole hold for the BYE.
            "-recv_timeout",
            &((plan.call_secs + 10) * 1000).to_string(),
            "-timeout",
            &format!("{}s", plan.secs + plan.call_secs + 60),
            "-nostdin",
            "-trace_stat",
            "-fd",
            "5",
            "-trace_err",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    let (tallies, sipp_out, end) = std::thread::scope(|s| -> Result<_> {
        let _stop_taps = StopOnDrop(&stop_taps);
        let _stop_load = StopOnDrop(&stop_load);
        let taps = [
            s.spawn(|| tap_out.run(&stop_taps, clock, &params)),
            s.spawn(|| tap_in.run(&stop_taps, clock, &params)),
        ];
        let intruder_thread =
            s.spawn(|| unsolicited(&intruder, callee, plan.unsolicited_rate, &stop_load));
        let sampler = s.spawn(|| -> Result<()> {
            let mut next = Instant::now();
            let mut n = 0u64;
            while !stop_load.load(Ordering::Relaxed) {
                let v = stats(&lab.daemon)?;
                let began = calls_began_ns.load(Ordering::Relaxed);
                let sample = Sample {
                    t: (clock.elapsed().as_nanos() as u64).saturating_sub(began) as f64 / 1e9,
                    rss_kib: proc_status_kib(pid, "VmRSS")?,
                    flows: at(&v, "flows.used"),
                    pinholes: at(&v, "pinholes"),
                    calls_active: at(&v, "signaling.calls_active"),
                    hit: at(&v, "counters.hit.packets"),
                    miss: at(&v, "counters.miss.packets"),
                };
                if n.is_multiple_of(10) {
                    eprintln!(
                        "    t={:>4.0} s  RSS {:.1} MiB  flows {}  pinholes {}  calls {}  hit {}  \
                         miss {}",
                        sample.t,
                        sample.rss_kib as f64 / 1024.0,
                        sample.flows,
                        sample.pinholes,
                        sample.calls_active,
                        sample.hit,
                        sample.miss
                    );
                }
                samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(sample);
                n += 1;
                next += Duration::from_secs(1);
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            Ok(())
        });

        step(&format!(
            "sipp: {calls} calls at {} calls/s, {} s each, RTP both ways",
            plan.rate, plan.call_secs
        ));
        let mut uas_args: Vec<String> = [
            "-sf",
            "uas_soak.xml",
            "-stf",
            "uas.csv",
            "-error_file",
            "uas.err",
        ]
        .map(String::from)
        .to_vec();
        uas_args.extend(common(callee));
        let mut reap = Reap(vec![sipp(
            &lab.topo.inside,
            dir.path(),
            "uas.log",
            &uas_args,
        )?]);
        wait_for("sipp's callee to listen", Duration::from_secs(10), || {
            let out = lab.topo.inside.exec("ss", &["-Hlnu", "sport = :5060"])?;
            Ok((!out.trim().is_empty()).then_some(()))
        })?;
        let mut uac_args = vec![
            format!("{callee}:5060"),
            "-sf".into(),
            "uac_soak.xml".into(),
            "-r".into(),
            plan.rate.to_string(),
            "-d".into(),
            hold_ms.to_string(),
            "-stf".into(),
            "uac.csv".into(),
            "-error_file".into(),
            "uac.err".into(),
        ];
        uac_args.extend(common(caller));
        calls_began_ns.store(clock.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let placing = Instant::now();
        reap.0
            .push(sipp(&lab.topo.outside, dir.path(), "uac.log", &uac_args)?);
        let bound = Duration::from_secs(plan.secs + plan.call_secs + 90);
        let caller_exit = wait_child(&mut reap.0[1], bound)?;
        let placing_secs = placing.elapsed().as_secs_f64();
        // The callee finishes with the last BYE; it waits longer only for
        // calls that never reached it.
        let callee_bound = Duration::from_secs(plan.call_secs + 15);
        wait_child(&mut reap.0[0], callee_bound)?;

        step("waiting for the last pinholes to close (BYE grace)");
        let drained = Instant::now();
        let drain_bound = Duration::from_secs(BYE_GRACE_SECS + 30);
        let mut last = serde_json::Value::Null;
        let done = wait_for("no pinhole left", drain_bound, || {
            interrupted().map_err(|e| pinhole_integration::Error::Setup(e.to_string()))?;
            last =
                stats(&lab.daemon).map_err(|e| pinhole_integration::Error::Setup(e.to_string()))?;
            Ok((at(&last, "pinholes")
                + at(&last, "flows.used")
                + at(&last, "signaling.calls_active")
                == 0)
                .then_some(()))
        });
        let drain_secs = drained.elapsed().as_secs_f64();
        if let Err(e) = done {
            eprintln!("    {e}: the report shows what is left");
        }
        stop_load.store(true, Ordering::SeqCst);
        let unsolicited_sent = intruder_thread
            .join()
            .map_err(|_| anyhow::anyhow!("the unsolicited sender panicked"))??;
        sampler
            .join()
            .map_err(|_| anyhow::anyhow!("the sampler panicked"))??;

        // End markers both ways until both taps have seen theirs.
        stop_taps.store(true, Ordering::SeqCst);
        let marker_to = |ip: Ipv4Addr| SocketAddr::new(ip.into(), MARKER_PORT);
        while !taps.iter().all(|t| t.is_finished()) {
            marker_out.send_to(b"end", marker_to(callee))?;
            marker_in.send_to(b"end", marker_to(caller))?;
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut tallies = Vec::new();
        for t in taps {
            tallies.push(t.join().map_err(|_| anyhow::anyhow!("a tap panicked"))??);
        }
        Ok((
            tallies,
            (caller_exit, placing_secs),
            (last, drain_secs, unsolicited_sent),
        ))
    })?;
    let (caller_exit, placing_secs) = sipp_out;
    let (end_stats, drain_secs, unsolicited_sent) = end;
    let [out_tally, in_tally]: [HostTally; 2] = tallies
        .try_into()
        .map_err(|_| anyhow::anyhow!("two taps"))?;

    step("collecting the figures");
    let hwm_kib = proc_status_kib(pid, "VmHWM")?;
    let cpu = cpu_secs(pid)?;
    let map_entries_end = map_entries(pid)?;
    let final_stats = stats(&lab.daemon)?;
    let nfqueue = probe::nfqueue_stats(
        &lab.topo
            .router
            .exec("cat", &["/proc/net/netfilter/nfnetlink_queue"])?,
        QUEUE_NUM,
    )
    .unwrap_or_default();
    let mut link_drops = BTreeMap::new();
    for (ns, dev, name) in [
        (&lab.topo.outside, Topology::OUTSIDE_IF, "caller eth0"),
        (
            &lab.topo.router,
            Topology::ROUTER_OUTSIDE_IF,
            "router r-out",
        ),
        (&lab.topo.router, Topology::ROUTER_INSIDE_IF, "router r-in"),
        (&lab.topo.inside, Topology::INSIDE_IF, "callee eth0"),
    ] {
        let l = sys::link_stats(ns, dev)?;
        for (what, v) in [("rx_dropped", l.rx_dropped), ("tx_dropped", l.tx_dropped)] {
            if v > 0 {
                link_drops.insert(format!("{name} {what}"), v);
            }
        }
    }
    let host_media = BTreeMap::from([
        ("caller".to_owned(), host_media_dropped(&lab.topo.outside)?),
        ("callee".to_owned(), host_media_dropped(&lab.topo.inside)?),
    ]);
    let uac = SippStats::parse(&read(dir.path().join("uac.csv")).unwrap_or_default())
        .context("sipp's caller wrote no statistics (uac.csv)")?;
    let uas =
        SippStats::parse(&read(dir.path().join("uas.csv")).unwrap_or_default()).unwrap_or_default();
    for f in ["uac.err", "uas.err"] {
        if let Ok(text) = read(dir.path().join(f)) {
            let lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                eprintln!(
                    "    sipp {f}: {} lines; the last:\n{}",
                    lines.len(),
                    lines[lines.len().saturating_sub(10)..].join("\n")
                );
            }
        }
    }

    let mut sent = Streams::default();
    sent.merge(out_tally.sent.clone());
    sent.merge(in_tally.sent.clone());
    let mut received = Streams::default();
    received.merge(out_tally.received.clone());
    received.merge(in_tally.received.clone());
    let media = analysis::account(
        &sent,
        &received,
        &Setup {
            packets,
            start_packets: plan.start_packets(),
            slack: Duration::from_secs(1),
            pair_window: Duration::from_secs(3),
            caller,
            calls_began_ns: calls_began_ns.load(Ordering::Relaxed),
        },
    );

    let samples = samples.into_inner().unwrap_or_else(|e| e.into_inner());
    let counters: BTreeMap<String, u64> = final_stats["counters"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v["packets"].as_u64()?)))
                .filter(|(_, v)| *v > 0)
                .collect()
        })
        .unwrap_or_default();
    let daemon = report::Daemon {
        rss_kib: Curve::of(samples.iter().map(|s| s.rss_kib)),
        hwm_kib,
        cpu_secs: cpu,
        flows_max: samples.iter().map(|s| s.flows).max().unwrap_or(0),
        pinholes_max: samples.iter().map(|s| s.pinholes).max().unwrap_or(0),
        calls_active_max: samples.iter().map(|s| s.calls_active).max().unwrap_or(0),
        flows_end: at(&end_stats, "flows.used"),
        pinholes_end: at(&end_stats, "pinholes"),
        calls_active_end: at(&end_stats, "signaling.calls_active"),
        map_entries_end,
        drain_secs,
        counters,
        signaling: final_stats["signaling"].clone(),
        nfqueue,
    };
    let command = if (plan.secs, plan.rate, plan.call_secs) == (600, 100, 5) {
        "cargo xtask soak".to_owned()
    } else if plan.quick && (plan.secs, plan.rate, plan.call_secs) == (20, 20, 3) {
        "cargo xtask soak --quick".to_owned()
    } else {
        format!(
            "cargo xtask soak -- --secs {} --rate {} --call-secs {}",
            plan.secs, plan.rate, plan.call_secs
        )
    };
    Ok(Report {
        config: report::Config {
            secs: plan.secs,
            rate: plan.rate,
            call_secs: plan.call_secs,
            media_ms: plan.media().as_millis() as u64,
            media_tail_ms: MEDIA_TAIL.as_millis() as u64,
            rtp_interval_ms: RTP_INTERVAL.as_millis() as u64,
            rtp_packets_per_stream: packets,
            start_ms: plan.start_ms,
            start_packets: plan.start_packets(),
            unsolicited_rate: plan.unsolicited_rate,
            bye_grace_secs: BYE_GRACE_SECS,
            daemon_args: daemon_args
                .iter()
                .map(|a| {
                    if a.ends_with("state.json") {
                        "<tmp>/state.json".to_owned()
                    } else {
                        a.clone()
                    }
                })
                .collect(),
            sipp: sipp_version(),
            command,
            pinhole_build: pinhole_build(),
        },
        machine: report::Machine {
            cpus: sys::cpu_count(),
            kernel: read("/proc/sys/kernel/osrelease")?.trim().to_owned(),
            load_before,
            load_after: loadavg()?,
        },
        started,
        wall_secs: wall.elapsed().as_secs_f64(),
        calls: report::Calls {
            attempted: calls,
            created: uac.get("TotalCallCreated"),
            successful: uac.get("SuccessfulCall"),
            failed: uac.get("FailedCall"),
            failed_by_reason: uac.failures(),
            retransmissions: uac.get("Retransmissions"),
            peak_concurrent: uac.current_calls.iter().copied().max().unwrap_or(0),
            callee_successful: uas.get("SuccessfulCall"),
            callee_failed: uas.get("FailedCall"),
            caller_exit,
            secs: placing_secs,
        },
        media,
        unsolicited: report::Unsolicited {
            sent: unsolicited_sent,
            seen_leaving: out_tally.unsolicited_sent,
            delivered: in_tally.unsolicited_received,
        },
        daemon,
        health: report::Health {
            frames: BTreeMap::from([
                ("caller".to_owned(), out_tally.frames),
                ("callee".to_owned(), in_tally.frames),
            ]),
            kernel_drops: BTreeMap::from([
                ("caller".to_owned(), out_tally.kernel_drops),
                ("callee".to_owned(), in_tally.kernel_drops),
            ]),
            other_media_udp: out_tally.other_media_udp + in_tally.other_media_udp,
            host_media_dropped: host_media,
            link_drops,
        },
        goals: Vec::new(),
        samples,
        sipp_current_calls: uac.current_calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        Args::parse_from(std::iter::once("pinhole-soak").chain(extra.iter().copied()))
    }

    #[test]
    fn plans() {
        let p = Plan::of(&args(&[])).unwrap();
        assert_eq!(
            (p.secs, p.rate, p.call_secs, p.calls()),
            (600, 100, 5, 60_000)
        );
        assert_eq!((p.packets(), p.start_packets()), (200, 10));
        assert_eq!(p.out, PathBuf::from("bench/results/soak.md"));
        let q = Plan::of(&args(&["--quick"])).unwrap();
        assert_eq!((q.secs, q.rate, q.call_secs, q.packets()), (20, 20, 3, 100));
        assert_eq!(q.out, PathBuf::from("target/soak-quick/soak.md"));
        let q = Plan::of(&args(&["--quick", "--rate", "50", "--start-ms", "30"])).unwrap();
        assert_eq!((q.rate, q.start_packets()), (50, 2));
        for bad in [
            &["--rate", "0"][..],
            &["--secs", "0"],
            &["--call-secs", "1"],
            &["--call-secs", "601"],
            // Ports come round after 2,500 calls: 10 s at 250 calls/s.
            &["--rate", "250"],
            &["--call-secs", "3", "--start-ms", "2000"],
        ] {
            assert!(Plan::of(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
