//! `cargo xtask demo`: one real SIP call through pinhole, with a report.
//!
//! Builds the veth lab of the integration tests (caller namespace outside,
//! router running `pinhole` with XDP on both sides and inline signaling,
//! callee namespace inside), places one sipp call with RTP both ways while an
//! unsolicited UDP stream sweeps the media range from the caller's host, and
//! prints what pinhole saw: RTP passed each way (its per-flow counters),
//! unsolicited datagrams dropped (its `miss` counter), pinholes opened and
//! closed, and the signaling → map-update latency.
//!
//! Everything it creates is removed on exit, also on error or Ctrl-C (drop
//! guards; the namespaces take any leftover process with them).
//!
//! Needs root, sipp and iptables, and the `pinhole` binary (`PINHOLE_BIN`, or
//! the newest of target/{release,debug}/pinhole). `cargo xtask demo` sees to
//! all of that.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{SocketAddr, UdpSocket},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::Parser;
use pinhole_integration::{
    lab::{self, stream_flows, FlowKey, Host, Lab, Owner},
    pinhole_bin, require_root,
    sipp::{CallSpec, Scenarios, SipCall, Transport, RTP_INTERVAL},
    traffic, wait_for, Family, Pinhole, SignalingStats,
};

#[derive(Parser)]
#[command(
    name = "pinhole-demo",
    about = "One real SIP call through pinhole, with a report"
)]
struct Args {
    /// How long the call lasts, in seconds.
    #[arg(long, default_value_t = 5)]
    call_secs: u64,
    /// Unsolicited datagrams per second at the media range.
    #[arg(long, default_value_t = 500)]
    unsolicited_rate: u32,
    /// SIP over TCP instead of UDP.
    #[arg(long)]
    tcp: bool,
    /// IPv6 instead of IPv4.
    #[arg(long)]
    ipv6: bool,
}

/// The media port range pinhole guards.
const MEDIA_PORTS: (u16, u16) = (10000, 20000);
/// Pinholes of a call stay this long after its BYE.
const BYE_GRACE_SECS: u64 = 2;
/// Bound on sipp finishing once hung up.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Set by SIGINT/SIGTERM; every loop checks it and unwinds through the
/// drop guards.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn check_interrupt() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted; cleaning up");
    }
    Ok(())
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

fn main() {
    let args = Args::parse();
    install_signal_handlers();
    match run(&args) {
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

fn step(what: &str) {
    eprintln!("==> {what}");
}

/// The unsolicited stream: datagrams from the caller's host (another port
/// than its media) paced at `rate` per second until stopped. They go in turn
/// to the callee's RTP port (sipp's), to its RTCP port (the demo's receiver,
/// which tallies anything that leaks) and to a port sweeping the media range.
struct Unsolicited {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
    source: SocketAddr,
}

impl Unsolicited {
    fn start(sock: UdpSocket, callee_rtp: SocketAddr, rate: u32) -> Result<Unsolicited> {
        let source = sock.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || -> Result<()> {
                let span = u32::from(MEDIA_PORTS.1 - MEDIA_PORTS.0) + 1;
                let period = Duration::from_secs(1) / rate.max(1);
                let start = Instant::now();
                let mut n: u32 = 0;
                while !stop.load(Ordering::Relaxed) {
                    let port = match n % 3 {
                        0 => callee_rtp.port(),
                        1 => callee_rtp.port() + 1,
                        // A stride through the range, to spread the sweep.
                        _ => MEDIA_PORTS.0 + ((n / 3).wrapping_mul(997) % span) as u16,
                    };
                    traffic::send(&sock, SocketAddr::new(callee_rtp.ip(), port), 1)?;
                    sent.fetch_add(1, Ordering::Relaxed);
                    n = n.wrapping_add(1);
                    let due = start + period * n;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                Ok(())
            })
        };
        Ok(Unsolicited {
            stop,
            sent,
            thread: Some(thread),
            source,
        })
    }

    /// Stops the stream and returns how many datagrams it sent.
    fn finish(mut self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| anyhow::anyhow!("the unsolicited sender panicked"))??;
        }
        Ok(self.sent.load(Ordering::Relaxed))
    }
}

impl Drop for Unsolicited {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the demo measured.
struct Report {
    call_id: String,
    transport: Transport,
    family: Family,
    caller: SocketAddr,
    callee: SocketAddr,
    call_time: Duration,
    rtp_out: u64,
    rtp_back: u64,
    rtcp_out: u64,
    rtcp_back: u64,

    unsolicited_sent: u64,
    unsolicited_source: SocketAddr,
    miss_delta: u64,
    aimed_at_receiver: u64,
    pinholes_seen: BTreeSet<(SocketAddr, SocketAddr)>,
    pinholes_left: usize,
    before: SignalingStats,
    after: SignalingStats,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let family = match self.family {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        };
        let transport = match self.transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        };
        let d = |field: fn(&SignalingStats) -> u64| field(&self.after) - field(&self.before);
        let lat = self.after.setup_latency_us;
        let us = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.0} µs"));
        let closed = self.pinholes_seen.len() - self.pinholes_left;
        writeln!(f)?;
        writeln!(f, "pinhole demo report")?;
        writeln!(
            f,
            "  call              Call-ID {} over SIP/{transport}, {family}, up {:.1} s",
            self.call_id,
            self.call_time.as_secs_f64()
        )?;
        writeln!(
            f,
            "  RTP passed        caller → callee {:>6} packets  ({} → {})",
            self.rtp_out, self.caller, self.callee
        )?;
        writeln!(
            f,
            "                    callee → caller {:>6} packets  ({} → {})",
            self.rtp_back, self.callee, self.caller
        )?;
        writeln!(
            f,
            "  RTCP passed       caller → callee {:>6} packets, callee → caller {} \
             (the demo's own, 1/s: sipp sends none)",
            self.rtcp_out, self.rtcp_back
        )?;
        writeln!(
            f,
            "  unsolicited       {} datagrams from {}: to {} (RTP), to its RTCP port, \
             and across {}-{}",
            self.unsolicited_sent,
            self.unsolicited_source,
            self.callee,
            MEDIA_PORTS.0,
            MEDIA_PORTS.1
        )?;
        writeln!(
            f,
            "                    dropped {} (miss counter); {} were aimed at the callee's \
             RTCP socket: none arrived",
            self.miss_delta, self.aimed_at_receiver
        )?;
        writeln!(
            f,
            "  pinholes          opened {}, closed {} ({} left), as `list` showed them",
            self.pinholes_seen.len(),
            closed,
            self.pinholes_left
        )?;
        for (a, b) in &self.pinholes_seen {
            writeln!(f, "                      {a} ↔ {b}")?;
        }
        let opened = lab::detail(&self.after, "calls.pairs_opened")
            .zip(lab::detail(&self.before, "calls.pairs_opened"))
            .map(|(a, b)| a - b);
        let closed_by = closed_by_cause(&self.before, &self.after);
        if let Some(opened) = opened {
            let causes: Vec<String> = closed_by
                .iter()
                .map(|(c, n)| format!("{n} by {c}"))
                .collect();
            writeln!(
                f,
                "                    daemon's counters: {opened} pairs opened, closed {}",
                if causes.is_empty() {
                    "none".to_owned()
                } else {
                    causes.join(", ")
                }
            )?;
        }
        writeln!(
            f,
            "  signaling         {} SIP messages, {} parse errors, calls opened {} / closed {}",
            d(|s| s.sip_messages),
            d(|s| s.parse_errors),
            d(|s| s.calls_opened),
            d(|s| s.calls_closed)
        )?;
        writeln!(
            f,
            "  setup latency     p50 {}, p99 {} (signaling packet → map updated, {} samples)",
            us(lat.p50),
            us(lat.p99),
            lat.count
        )?;
        Ok(())
    }
}

/// The pairs the call layer closed between `before` and `after`, by cause
/// (`signaling.detail.calls.pairs_closed`), without the zeros.
fn closed_by_cause(before: &SignalingStats, after: &SignalingStats) -> BTreeMap<String, u64> {
    let causes = |s: &SignalingStats| -> BTreeMap<String, u64> {
        s.other
            .get("detail")
            .and_then(|d| d.get("calls"))
            .and_then(|c| c.get("pairs_closed"))
            .and_then(|p| p.as_object())
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let old = causes(before);
    causes(after)
        .into_iter()
        .map(|(k, v)| {
            let d = v - old.get(&k).copied().unwrap_or(0);
            (k, d)
        })
        .filter(|(_, d)| *d > 0)
        .collect()
}

fn run(args: &Args) -> Result<Report> {
    require_root()?;
    let family = if args.ipv6 { Family::V6 } else { Family::V4 };
    let transport = if args.tcp {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    eprintln!("pinhole binary: {}", pinhole_bin().display());

    step("creating the lab: caller ↔ router (pinhole, XDP on both sides) ↔ callee");
    let ports = format!("{}-{}", MEDIA_PORTS.0, MEDIA_PORTS.1);
    let grace = BYE_GRACE_SECS.to_string();
    let lab = Lab::new(family, &["--media-ports", &ports, "--bye-grace", &grace])
        .context("creating the lab")?;
    eprintln!(
        "    namespaces: caller {} ({}), router {}, callee {} ({})",
        lab.topo.outside.name(),
        family.outside(),
        lab.topo.router.name(),
        lab.topo.inside.name(),
        family.inside()
    );
    check_interrupt()?;

    // RTP for the whole call and a little more.
    let rtp_packets =
        (Duration::from_secs(args.call_secs + 1).as_millis() / RTP_INTERVAL.as_millis()) as u32;
    let files = Scenarios::with_rtp_packets(rtp_packets)?;
    let spec = CallSpec::new("call", family, transport);
    // The RTCP ports (sipp leaves them free): the demo exchanges RTCP-sized
    // datagrams on them, and the callee's also tallies any unsolicited
    // datagram that leaks through.
    let caller_rtcp = lab.udp(Host::Outside, spec.caller_media_port + 1)?;
    let callee_rtcp = lab.udp(Host::Inside, spec.callee_media_port + 1)?;
    let before = lab.signaling()?;
    let miss_before = lab.daemon.counter("miss")?;

    step(&format!(
        "unsolicited UDP at {}:{ports}, {} datagrams/s",
        family.inside(),
        args.unsolicited_rate
    ));
    let unsolicited = Unsolicited::start(
        lab.udp(Host::Outside, 0)?,
        SocketAddr::new(family.inside(), spec.callee_media_port),
        args.unsolicited_rate,
    )?;

    step(&format!(
        "placing a SIP call with sipp over {}: {} → {}",
        match transport {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        },
        family.outside(),
        family.inside()
    ));
    let mut call = SipCall::start(&lab.topo, &files, &spec)?;
    let call_id = call.call_id.clone();
    let owner = Owner::Sip(&call_id);
    let (c, e) = (call.caller_media, call.callee_media);
    let want: BTreeSet<FlowKey> = stream_flows(c, e).into_iter().collect();
    lab.wait_flows(owner, &want, "the call's pinholes")
        .map_err(|err| anyhow::anyhow!("{err}\n{}", call.logs()))?;
    let up = Instant::now();
    eprintln!("    call {} is up; pinholes open:", call.call_id);

    let mut seen: BTreeSet<(SocketAddr, SocketAddr)> = BTreeSet::new();
    let mut last: BTreeMap<FlowKey, u64> = BTreeMap::new();
    let mut observe = |list: &[Pinhole]| {
        for p in list {
            if seen.insert((p.a, p.b)) {
                eprintln!(
                    "      {} ↔ {}  ({})",
                    p.a,
                    p.b,
                    p.owner.as_deref().unwrap_or("?")
                );
            }
        }
        for (k, v) in lab::flow_packets(list) {
            last.insert(k, v);
        }
    };
    // The call runs for its length; meanwhile the counters are sampled (the
    // last sample before the pinholes close is the report's).
    // RTCP goes once a second each way, as RTCP would.
    let (caller_rtcp_addr, callee_rtcp_addr) =
        (caller_rtcp.local_addr()?, callee_rtcp.local_addr()?);
    let mut rtcp_sent: u32 = 0;
    while up.elapsed() < Duration::from_secs(args.call_secs) {
        check_interrupt()?;
        if up.elapsed() >= Duration::from_secs(rtcp_sent.into()) {
            traffic::send(&caller_rtcp, callee_rtcp_addr, 1)?;
            traffic::send(&callee_rtcp, caller_rtcp_addr, 1)?;
            rtcp_sent += 1;
        }
        observe(&lab.owned_pinholes(owner)?);
        std::thread::sleep(Duration::from_millis(250));
    }

    step("hanging up (BYE)");
    call.trigger_caller(&lab.topo)?;
    call.uac.wait(CALL_TIMEOUT)?;
    let call_time = up.elapsed();
    call.uas.wait(CALL_TIMEOUT)?;
    let mut left = usize::MAX;
    wait_for(
        "the call's pinholes to close",
        Duration::from_secs(BYE_GRACE_SECS) + lab::TIMEOUT,
        || {
            if INTERRUPTED.load(Ordering::SeqCst) {
                return Err(pinhole_integration::Error::Setup("interrupted".into()));
            }
            let list = lab.owned_pinholes(owner)?;
            observe(&list);
            left = list.len();
            Ok(list.is_empty().then_some(()))
        },
    )?;
    eprintln!("    pinholes closed after the {BYE_GRACE_SECS} s BYE grace");

    step("stopping the unsolicited stream and counting");
    let unsolicited_source = unsolicited.source;
    let sent = unsolicited.finish()?;
    let miss = lab
        .daemon
        .wait_counter("miss", miss_before + sent, lab::TIMEOUT)?;
    // Markers from the router close both RTCP receivers' tallies.
    lab.send_marker(&callee_rtcp, Host::Inside)?;
    lab.send_marker(&caller_rtcp, Host::Outside)?;
    let at_callee = traffic::receive_until_marker(&callee_rtcp, lab::TIMEOUT)?;
    let at_caller = traffic::receive_until_marker(&caller_rtcp, lab::TIMEOUT)?;
    // The callee's RTCP socket must have heard only the caller's RTCP port.
    let leaked = at_callee.senders.iter().any(|s| *s != caller_rtcp_addr);
    if leaked {
        bail!(
            "unsolicited datagrams reached the callee: senders {:?}",
            at_callee.senders
        );
    }
    if (at_callee.data, at_caller.data) != (rtcp_sent, rtcp_sent) {
        bail!(
            "RTCP lost: sent {rtcp_sent} each way, received {} at the callee and {} at the caller",
            at_callee.data,
            at_caller.data
        );
    }
    let after = lab.signaling()?;
    let (c1, e1) = (lab::port_plus(c, 1), lab::port_plus(e, 1));
    Ok(Report {
        call_id,
        transport,
        family,
        caller: c,
        callee: e,
        call_time,
        rtp_out: last.get(&(c, e)).copied().unwrap_or(0),
        rtp_back: last.get(&(e, c)).copied().unwrap_or(0),
        rtcp_out: last.get(&(c1, e1)).copied().unwrap_or(0),
        rtcp_back: last.get(&(e1, c1)).copied().unwrap_or(0),
        aimed_at_receiver: (sent + 1) / 3,
        unsolicited_sent: sent,
        unsolicited_source,
        miss_delta: miss - miss_before,
        pinholes_seen: seen,
        pinholes_left: left,
        before,
        after,
    })
}
