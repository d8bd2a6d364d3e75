//! Pinned state across daemon restarts, in network namespaces (the standard
//! topology, XDP on both router interfaces).
//!
//! * With `--keep-pinned`, RTP-like streams (500 datagrams/s in each
//!   direction, IPv4 and IPv6) keep flowing through their pinholes while the
//!   daemon is stopped and a new one started: every datagram sent arrives,
//!   counted exactly. The new daemon lists the same pinholes (ids, owners,
//!   counters that went on counting), a pinhole opened over the ng protocol
//!   still closes with its call, and an idle one still expires.
//! * Without it, the daemon's exit removes the filter (no XDP left on the
//!   interfaces, media passes unfiltered) and leaves nothing in the pin
//!   directory.
//! * `pinhole detach` removes a kept filter with no daemon running, and
//!   refuses while one runs; a state file of another format version is
//!   refused without touching the kept filter.
//!
//! `ip netns exec` gives the daemon a mount namespace of its own with a
//! fresh /sys, so /sys/fs/bpf there is not the host's: each test mounts a
//! bpffs of its own under /run (visible to both) and pins there.
//!
//! Needs root. Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test netns_restart`.

use std::{
    net::{SocketAddr, UdpSocket},
    path::PathBuf,
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use pinhole_integration::{
    bpffs::PinFs, pinhole_bin, run_bounded, traffic, unique_id, wait_for, CliOutput, Daemon,
    Family, Netns, TempDir, Topology, XdpMode,
};
use serde_json::Value;

/// Datagrams per second of each stream.
const PPS: u32 = 500;
/// Upper bound on a stream's length (it is stopped long before).
const MAX_STREAM: Duration = Duration::from_secs(60);
/// Datagrams each stream must deliver before the restart, and after it.
const BEFORE: u32 = 250;
const AFTER: u32 = 250;
/// Bound on waiting for datagrams, daemons and counters.
const TIMEOUT: Duration = Duration::from_secs(20);
/// Media ports: outside (caller) and inside (callee), in the default range.
const A_PORT: u16 = 12000;
const B_PORT: u16 = 10000;
/// The ng listener on the router's loopback.
const NG_PORT: u16 = 2223;

type TestResult = anyhow::Result<()>;

/// One test's world. Field order is drop order: daemon, then pins, then the
/// namespaces.
struct Case {
    daemon: Option<Daemon>,
    pins: PinFs,
    state: TempDir,
    topo: Topology,
    mode: XdpMode,
}

impl Case {
    fn new(mode: XdpMode) -> anyhow::Result<Case> {
        let topo = Topology::new()?;
        Ok(Case {
            daemon: None,
            pins: PinFs::new()?,
            state: TempDir::new()?,
            topo,
            mode,
        })
    }

    fn state_file(&self) -> PathBuf {
        self.state.path().join("state.json")
    }

    /// The `run` flags of every daemon of the case.
    fn args(&self, keep: bool) -> Vec<String> {
        let mut v: Vec<String> = [
            "--signaling",
            "off",
            "--ng-listen",
            &format!("127.0.0.1:{NG_PORT}"),
            "--pin-dir",
            &self.pins.pin_dir().to_string_lossy(),
            "--state-file",
            &self.state_file().to_string_lossy(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if keep {
            v.push("--keep-pinned".into());
        }
        v
    }

    fn start(&mut self, keep: bool) -> anyhow::Result<()> {
        let args = self.args(keep);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.daemon = Some(self.topo.start_daemon(self.mode, &args)?);
        Ok(())
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("a daemon runs")
    }

    /// Stops the daemon (SIGTERM) and checks it exited 0.
    fn stop(&mut self) -> TestResult {
        let daemon = self.daemon.take().expect("a daemon runs");
        let log = daemon.log();
        let status = daemon.stop()?;
        anyhow::ensure!(status.success(), "the daemon exited {status}; log:\n{log}");
        Ok(())
    }

    /// `pinhole run` with this case's flags, expected to fail before it is
    /// ready.
    fn run_failing(&self, keep: bool) -> anyhow::Result<CliOutput> {
        let control = self.state.path().join("failing.sock");
        let mut cmd = self.topo.router.command(pinhole_bin());
        cmd.arg("run")
            .arg("--control")
            .arg(&control)
            .args([
                "--iface",
                Topology::ROUTER_OUTSIDE_IF,
                "--iface",
                Topology::ROUTER_INSIDE_IF,
                "--xdp-mode",
                self.mode.arg(),
            ])
            .args(self.args(keep));
        Ok(run_bounded(&mut cmd, TIMEOUT)?)
    }

    /// `pinhole detach` for this case's pins and state file.
    fn detach(&self) -> anyhow::Result<CliOutput> {
        let mut cmd = Command::new(pinhole_bin());
        cmd.arg("detach")
            .arg("--pin-dir")
            .arg(self.pins.pin_dir())
            .arg("--state-file")
            .arg(self.state_file());
        Ok(run_bounded(&mut cmd, TIMEOUT)?)
    }

    /// The XDP program ids attached to the router's interfaces (none when
    /// detached), from `ip link`.
    fn xdp_on_router(&self) -> anyhow::Result<Vec<Option<u32>>> {
        [Topology::ROUTER_OUTSIDE_IF, Topology::ROUTER_INSIDE_IF]
            .iter()
            .map(|dev| {
                let out = self.topo.router.ip(&["-d", "link", "show", "dev", dev])?;
                Ok(xdp_prog_id(&out))
            })
            .collect()
    }

    fn endpoint(&self, family: Family, inside: bool, port: u16) -> SocketAddr {
        let ip = if inside {
            family.inside()
        } else {
            family.outside()
        };
        SocketAddr::new(ip, port)
    }

    /// A marker from the router to `rx` (the router's own traffic crosses
    /// no XDP ingress).
    fn marker(&self, family: Family, rx: SocketAddr) -> TestResult {
        let ip = if rx.ip() == family.inside() {
            family.router_inside()
        } else {
            family.router_outside()
        };
        let sock = self.topo.router.udp_socket(SocketAddr::new(ip, 0))?;
        traffic::send_marker(&sock, rx)?;
        Ok(())
    }

    /// One ng request from the router; the reply must say `result: ok`.
    /// `received_from`: where the proxy got the SDP (offers and answers).
    fn ng(
        &self,
        request: &[(&str, &str)],
        received_from: Option<SocketAddr>,
    ) -> anyhow::Result<String> {
        let sock = self
            .topo
            .router
            .udp_socket("127.0.0.1:0".parse().expect("an address"))?;
        sock.set_read_timeout(Some(TIMEOUT))?;
        let cookie = format!("c{}", unique_id());
        let mut datagram = format!("{cookie} d");
        for (k, v) in request {
            datagram.push_str(&format!("{}:{k}{}:{v}", k.len(), v.len()));
        }
        if let Some(from) = received_from {
            let (family, ip) = match from {
                SocketAddr::V4(a) => ("IP4", a.ip().to_string()),
                SocketAddr::V6(a) => ("IP6", a.ip().to_string()),
            };
            datagram.push_str(&format!("13:received-froml3:{family}{}:{ip}e", ip.len()));
        }
        datagram.push('e');
        sock.send_to(datagram.as_bytes(), ("127.0.0.1", NG_PORT))?;
        let mut buf = vec![0u8; 65536];
        let n = sock.recv(&mut buf)?;
        let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
        anyhow::ensure!(
            reply.starts_with(&format!("{cookie} ")) && reply.contains("6:result2:ok"),
            "ng {request:?} got {reply:?}"
        );
        Ok(reply)
    }
}

/// The program id of `ip -d link show` output's XDP attachment, if any.
fn xdp_prog_id(ip_link: &str) -> Option<u32> {
    let at = ip_link.find("prog/xdp id ")?;
    ip_link[at + "prog/xdp id ".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn sdp(addr: SocketAddr) -> String {
    let (net, ip) = match addr {
        SocketAddr::V4(a) => ("IP4", a.ip().to_string()),
        SocketAddr::V6(a) => ("IP6", a.ip().to_string()),
    };
    format!(
        "v=0\r\no=- 1 1 IN {net} {ip}\r\ns=-\r\nc=IN {net} {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0\r\n",
        addr.port()
    )
}

/// `list --json` as JSON values (with the ids and owners).
fn list(daemon: &Daemon) -> anyhow::Result<Vec<Value>> {
    let v: Value = daemon.cli(&["list", "--json"])?.json()?;
    Ok(v["pinholes"].as_array().cloned().unwrap_or_default())
}

/// The pinhole `a` ↔ `b` of a `list --json`.
fn find(list: &[Value], a: SocketAddr, b: SocketAddr) -> Option<Value> {
    list.iter()
        .find(|p| p["a"] == a.to_string() && p["b"] == b.to_string())
        .cloned()
}

/// Packets of the flow `src` → `dst` of a listed pinhole.
fn flow_packets(p: &Value, src: SocketAddr, dst: SocketAddr) -> u64 {
    p["flows"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["src"] == src.to_string() && f["dst"] == dst.to_string())
        .and_then(|f| f["packets"].as_u64())
        .unwrap_or(0)
}

/// A paced one-way stream of test datagrams and its receiver.
struct Stream {
    src: SocketAddr,
    dst: SocketAddr,
    stop: Arc<AtomicBool>,
    sender: JoinHandle<std::io::Result<u32>>,
    receiver: JoinHandle<std::io::Result<u32>>,
}

impl Stream {
    /// Sends [`PPS`] datagrams a second from `tx` to `rx` until stopped
    /// (at most [`MAX_STREAM`]); `rx` counts them until a marker arrives.
    fn start(tx: UdpSocket, rx: UdpSocket) -> anyhow::Result<Stream> {
        let (src, dst) = (tx.local_addr()?, rx.local_addr()?);
        let stop = Arc::new(AtomicBool::new(false));
        let interval = Duration::from_secs(1) / PPS;
        let stop_tx = stop.clone();
        let sender = std::thread::spawn(move || -> std::io::Result<u32> {
            let start = Instant::now();
            let mut sent = 0u32;
            while !stop_tx.load(Ordering::SeqCst) && start.elapsed() < MAX_STREAM {
                traffic::send(&tx, dst, 1).map_err(std::io::Error::other)?;
                sent += 1;
                let next = start + interval * sent;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            Ok(sent)
        });
        let receiver = std::thread::spawn(move || -> std::io::Result<u32> {
            // Counts data until the marker, which is sent once the filter
            // counted every datagram sent.
            let got = traffic::receive_until_marker(&rx, MAX_STREAM + TIMEOUT)
                .map_err(std::io::Error::other)?;
            Ok(got.data)
        });
        Ok(Stream {
            src,
            dst,
            stop,
            sender,
            receiver,
        })
    }

    fn ends(&self) -> (SocketAddr, SocketAddr) {
        (self.src, self.dst)
    }
}

/// Waits until `n` more datagrams of every stream passed the filter (by
/// the flows' counters in the map); returns the counts.
fn wait_flowing(daemon: &Daemon, streams: &[Stream], n: u64) -> anyhow::Result<Vec<u64>> {
    let ends: Vec<_> = streams.iter().map(Stream::ends).collect();
    let base = flow_counts(daemon, &ends)?;
    wait_for(
        &format!("{n} more datagrams in every stream"),
        TIMEOUT,
        || {
            let now = flow_counts(daemon, &ends)?;
            Ok(now
                .iter()
                .zip(&base)
                .all(|(now, base)| now >= &(base + n))
                .then_some(now))
        },
    )
    .map_err(Into::into)
}

/// Packets the filter counted for each flow `src` → `dst`.
fn flow_counts(
    daemon: &Daemon,
    ends: &[(SocketAddr, SocketAddr)],
) -> pinhole_integration::Result<Vec<u64>> {
    let pinholes = list(daemon).map_err(|e| pinhole_integration::Error::Setup(e.to_string()))?;
    Ok(ends
        .iter()
        .map(|(src, dst)| pinholes.iter().map(|p| flow_packets(p, *src, *dst)).sum())
        .collect())
}

/// Every map the filter uses (not the bench floors' maps), by its shared
/// name: a daemon with `--keep-pinned` pins them all so that a restart
/// loses no state.
const PINNED_MAPS: [&str; 7] = [
    pinhole_common::COUNTERS_MAP,
    pinhole_common::EVENTS_MAP,
    pinhole_common::FORWARD_TX_MAP,
    pinhole_common::FLOWS_V4_MAP,
    pinhole_common::FLOWS_V6_MAP,
    pinhole_common::LATCH_V4_MAP,
    pinhole_common::LATCH_V6_MAP,
];

/// What a daemon pins on the router's two interfaces in `mode`, sorted.
fn expected_pins(mode: XdpMode) -> Vec<String> {
    let mut pins: Vec<String> = ["r-in", "r-out"]
        .iter()
        .map(|i| format!("link_{}_{i}", mode.arg()))
        .chain(PINNED_MAPS.iter().map(|m| format!("map_{m}")))
        .chain(["prog".to_string()])
        .collect();
    pins.sort();
    pins
}

fn restart_with_keep_pinned_loses_nothing(mode: XdpMode) -> TestResult {
    let mut c = Case::new(mode)?;
    c.start(true)?;
    let fresh = c.pins.pins()?;
    assert_eq!(fresh, expected_pins(mode), "what a daemon pins");

    // A manual pinhole per family, with a stream each way.
    let mut streams = Vec::new();
    for f in Family::ALL {
        let (a, b) = (c.endpoint(f, false, A_PORT), c.endpoint(f, true, B_PORT));
        c.daemon().open(a, b, &[])?;
        let (ta, tb) = (c.topo.outside.udp_socket(a)?, c.topo.inside.udp_socket(b)?);
        let (ra, rb) = (ta.try_clone()?, tb.try_clone()?);
        streams.push(Stream::start(ta, rb)?);
        streams.push(Stream::start(tb, ra)?);
    }
    // A call opened over the ng protocol, and an idle manual pinhole.
    let (caller, callee) = (
        c.endpoint(Family::V4, false, A_PORT + 2),
        c.endpoint(Family::V4, true, B_PORT + 2),
    );
    c.ng(
        &[
            ("command", "offer"),
            ("call-id", "restart-call"),
            ("from-tag", "ft"),
            ("sdp", &sdp(caller)),
        ],
        Some(caller),
    )?;
    c.ng(
        &[
            ("command", "answer"),
            ("call-id", "restart-call"),
            ("from-tag", "ft"),
            ("to-tag", "tt"),
            ("sdp", &sdp(callee)),
        ],
        Some(callee),
    )?;
    let (idle_a, idle_b) = (
        c.endpoint(Family::V4, false, A_PORT + 4),
        c.endpoint(Family::V4, true, B_PORT + 4),
    );
    c.daemon().open(idle_a, idle_b, &["--idle", "3"])?;

    let before_stop = wait_flowing(c.daemon(), &streams, u64::from(BEFORE))?;
    let listed_before = list(c.daemon())?;
    // Two manual, the call's RTP and RTCP pairs, the idle one.
    assert_eq!(listed_before.len(), 5, "{listed_before:#?}");
    let progs_before = c.xdp_on_router()?;
    assert!(progs_before.iter().all(Option::is_some), "{progs_before:?}");

    // Stop: the filter stays, with its pins and the state file.
    c.stop()?;
    assert_eq!(
        c.xdp_on_router()?,
        progs_before,
        "the filter stays attached"
    );
    assert_eq!(c.pins.pins()?, fresh);
    assert!(c.state_file().is_file());

    // A new daemon takes over: the program is replaced on the same links.
    c.start(true)?;
    let progs_after = c.xdp_on_router()?;
    assert!(progs_after.iter().all(Option::is_some), "{progs_after:?}");
    assert_ne!(progs_after, progs_before, "the new daemon's program runs");
    assert_eq!(c.pins.pins()?, fresh);
    let listed_after = list(c.daemon())?;
    for p in &listed_before {
        let (a, b) = (p["a"].as_str().unwrap(), p["b"].as_str().unwrap());
        let q = find(&listed_after, a.parse()?, b.parse()?)
            .ok_or_else(|| anyhow::anyhow!("{a} <-> {b} is gone after the restart"))?;
        assert_eq!(q["id"], p["id"], "{a} <-> {b}: same id");
        assert_eq!(q["owners"], p["owners"], "{a} <-> {b}: same owners");
        assert!(
            q["packets"].as_u64() >= p["packets"].as_u64(),
            "{a} <-> {b}: counters went on: {p} then {q}"
        );
    }
    let after_start = wait_flowing(c.daemon(), &streams, u64::from(AFTER))?;
    assert!(after_start.iter().zip(&before_stop).all(|(x, y)| x > y));

    // Stop the streams, let every datagram arrive, then the markers.
    for s in &streams {
        s.stop.store(true, Ordering::SeqCst);
    }
    let mut sent_total = 0u64;
    for s in streams {
        let (src, dst) = s.ends();
        let sent = s.sender.join().expect("sender thread")?;
        sent_total += u64::from(sent);
        let daemon = c.daemon();
        let counted = wait_for(
            &format!("{src} → {dst}: the filter to count all {sent}"),
            TIMEOUT,
            || {
                let n = flow_counts(daemon, &[(src, dst)])?[0];
                Ok((n >= u64::from(sent)).then_some(n))
            },
        )?;
        assert_eq!(
            counted,
            u64::from(sent),
            "{src} → {dst}: counted more than sent"
        );
        let family = if dst.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        };
        c.marker(family, dst)?;
        let received = s.receiver.join().expect("receiver thread")?;
        println!("{src} → {dst}: sent {sent}, received {received} across the restart");
        assert_eq!(received, sent, "{src} → {dst}: datagrams lost");
    }
    // The verdict counters went on too: every datagram was a hit, none a
    // miss.
    let stats = c.daemon().stats()?;
    assert_eq!(stats.packets("hit")?, sent_total);
    assert_eq!(stats.packets("miss")?, 0);

    // The ng call is still known and its delete closes its pinhole.
    let calls = c.daemon().calls()?;
    assert!(
        calls
            .iter()
            .any(|call| call.call_id == "restart-call" && call.kind == "ng"),
        "{calls:#?}"
    );
    c.ng(
        &[
            ("command", "delete"),
            ("call-id", "restart-call"),
            ("from-tag", "ft"),
            ("delete-delay", "0"),
        ],
        None,
    )?;
    let left = list(c.daemon())?;
    assert!(find(&left, caller, callee).is_none(), "{left:#?}");
    assert_eq!(left.len(), 3, "the call's two pairs are closed: {left:#?}");
    // The idle pinhole expires (3 s without traffic, counted across the
    // restart).
    wait_for("the idle pinhole to expire", TIMEOUT, || {
        let l = list(c.daemon()).map_err(|e| pinhole_integration::Error::Setup(e.to_string()))?;
        Ok(find(&l, idle_a, idle_b).is_none().then_some(()))
    })?;
    assert_eq!(list(c.daemon())?.len(), 2);

    // Stopping without --keep-pinned now removes everything.
    c.stop()?;
    c.start(false)?;
    assert_eq!(list(c.daemon())?.len(), 2, "taken over once more");
    c.stop()?;
    assert_eq!(c.xdp_on_router()?, [None, None]);
    assert_eq!(c.pins.leftovers()?, Vec::<String>::new());
    assert!(!c.state_file().exists());
    Ok(())
}

#[test]
fn restart_with_keep_pinned_loses_nothing_native() -> TestResult {
    restart_with_keep_pinned_loses_nothing(XdpMode::Native)
}

#[test]
fn restart_with_keep_pinned_loses_nothing_skb() -> TestResult {
    restart_with_keep_pinned_loses_nothing(XdpMode::Skb)
}

/// Sends `n` datagrams `tx` → `rx` and returns how many arrived before a
/// marker from the router.
fn delivered(
    c: &Case,
    family: Family,
    tx: &UdpSocket,
    rx: &UdpSocket,
    n: u32,
) -> anyhow::Result<u32> {
    traffic::send(tx, rx.local_addr()?, n)?;
    // The datagrams cross the router before the marker, which it sends
    // after they were counted (or dropped) at its ingress.
    c.marker(family, rx.local_addr()?)?;
    Ok(traffic::receive_until_marker(rx, TIMEOUT)?.data)
}

#[test]
fn exit_without_keep_pinned_removes_the_filter() -> TestResult {
    let mut c = Case::new(XdpMode::Native)?;
    c.start(false)?;
    let f = Family::V4;
    let (a, b) = (c.endpoint(f, false, A_PORT), c.endpoint(f, true, B_PORT));
    let (ta, rb) = (c.topo.outside.udp_socket(a)?, c.topo.inside.udp_socket(b)?);
    // Filtered: unsolicited media is dropped.
    let miss = c.daemon().counter("miss")?;
    traffic::send(&ta, b, 8)?;
    c.daemon().wait_counter("miss", miss + 8, TIMEOUT)?;
    c.marker(f, b)?;
    assert_eq!(traffic::receive_until_marker(&rb, TIMEOUT)?.data, 0);
    c.daemon().open(a, b, &[])?;
    assert!(c.xdp_on_router()?.iter().all(Option::is_some));
    assert!(c.state_file().is_file());

    c.stop()?;
    assert_eq!(c.xdp_on_router()?, [None, None], "no XDP left");
    assert_eq!(c.pins.leftovers()?, Vec::<String>::new(), "nothing pinned");
    assert!(!c.state_file().exists(), "no state file");
    // Unfiltered now: what a filter would drop passes.
    let other = c.endpoint(f, false, A_PORT + 10);
    let tx = c.topo.outside.udp_socket(other)?;
    assert_eq!(delivered(&c, f, &tx, &rb, 8)?, 8);
    Ok(())
}

#[test]
fn detach_removes_a_kept_filter_and_refuses_while_a_daemon_runs() -> TestResult {
    let mut c = Case::new(XdpMode::Native)?;
    c.start(true)?;
    let f = Family::V6;
    let (a, b) = (c.endpoint(f, false, A_PORT), c.endpoint(f, true, B_PORT));
    c.daemon().open(a, b, &["--with-rtcp"])?;

    let busy = c.detach()?;
    let line = busy.expect_client_error().map_err(anyhow::Error::msg)?;
    assert!(
        line.contains("in use by a running pinhole daemon"),
        "{line}"
    );
    assert_eq!(busy.status.code(), Some(1));
    assert_eq!(list(c.daemon())?.len(), 1, "the daemon is untouched");

    c.stop()?;
    assert!(c.xdp_on_router()?.iter().all(Option::is_some));
    // Still filtering with no daemon: the pinhole passes, others drop.
    let (ta, rb) = (c.topo.outside.udp_socket(a)?, c.topo.inside.udp_socket(b)?);
    assert_eq!(delivered(&c, f, &ta, &rb, 8)?, 8);
    let stranger = c
        .topo
        .outside
        .udp_socket(c.endpoint(f, false, A_PORT + 10))?;
    assert_eq!(delivered(&c, f, &stranger, &rb, 8)?, 0);

    let out = c.detach()?;
    let text = out.ok()?;
    let mode = c.mode.arg();
    assert_eq!(
        text.trim(),
        format!(
            "detached from r-in ({mode}), r-out ({mode}); unpinned the program and {} maps from {}; \
             removed the state file {}",
            PINNED_MAPS.len(),
            c.pins.pin_dir().display(),
            c.state_file().display()
        )
    );
    assert_eq!(c.xdp_on_router()?, [None, None]);
    assert_eq!(c.pins.leftovers()?, Vec::<String>::new());
    assert!(!c.state_file().exists());
    assert_eq!(delivered(&c, f, &stranger, &rb, 8)?, 8, "unfiltered");
    // Again: nothing left to do, still a success.
    let again = c.detach()?.ok()?;
    assert!(again.starts_with("nothing pinned in "), "{again}");
    Ok(())
}

#[test]
fn a_state_file_of_another_version_is_refused_and_the_filter_kept() -> TestResult {
    let mut c = Case::new(XdpMode::Native)?;
    c.start(true)?;
    let f = Family::V4;
    let (a, b) = (c.endpoint(f, false, A_PORT), c.endpoint(f, true, B_PORT));
    c.daemon().open(a, b, &[])?;
    c.stop()?;
    let progs = c.xdp_on_router()?;
    let pins = c.pins.pins()?;

    let path = c.state_file();
    let text = std::fs::read_to_string(&path)?;
    let mut state: Value = serde_json::from_str(&text)?;
    state["version"] = Value::from(999);
    std::fs::write(&path, state.to_string())?;
    let out = c.run_failing(true)?;
    let line = out.expect_daemon_error().map_err(anyhow::Error::msg)?;
    assert!(
        line.contains("has format version 999") && line.contains("left in place"),
        "{line}"
    );
    assert_eq!(c.xdp_on_router()?, progs, "the kept filter is untouched");
    assert_eq!(c.pins.pins()?, pins);
    let (ta, rb) = (c.topo.outside.udp_socket(a)?, c.topo.inside.udp_socket(b)?);
    assert_eq!(
        delivered(&c, f, &ta, &rb, 8)?,
        8,
        "its pinhole still passes"
    );

    // With the file back, a daemon takes over.
    std::fs::write(&path, text)?;
    c.start(false)?;
    assert!(find(&list(c.daemon())?, a, b).is_some());
    c.stop()?;
    assert_eq!(c.pins.leftovers()?, Vec::<String>::new());
    Ok(())
}

#[test]
fn keep_pinned_on_a_private_bpffs_is_refused() -> TestResult {
    // Under `ip netns exec`, /sys/fs/bpf is not the host's: a bpffs the
    // daemon mounted there would die with it, so --keep-pinned is refused.
    let topo = Topology::new()?;
    let dir = format!("/sys/fs/bpf/ph-{}-{}", std::process::id(), unique_id());
    let state = TempDir::new()?;
    let mut cmd = topo.router.command(pinhole_bin());
    cmd.arg("run")
        .arg("--control")
        .arg(state.path().join("c.sock"))
        .args(["--iface", Topology::ROUTER_OUTSIDE_IF, "--signaling", "off"])
        .args(["--pin-dir", &dir, "--keep-pinned", "--state-file"])
        .arg(state.path().join("state.json"));
    let out = run_bounded(&mut cmd, TIMEOUT)?;
    let line = out.expect_daemon_error().map_err(anyhow::Error::msg)?;
    assert!(line.contains("mount namespace of its own"), "{line}");
    check_unattached(&topo.router)?;
    Ok(())
}

fn check_unattached(ns: &Netns) -> TestResult {
    let out = ns.ip(&["-d", "link", "show", "dev", Topology::ROUTER_OUTSIDE_IF])?;
    assert_eq!(xdp_prog_id(&out), None, "{out}");
    Ok(())
}

#[test]
fn xdp_prog_ids_are_read_from_ip_link() {
    let native = "3: r-out@if2: <BROADCAST> mtu 1500 xdp qdisc noqueue\n    link/ether 1a:2b brd ff\n    prog/xdp id 5012 name pinhole tag edf9 jited \n";
    let skb = "3: r-out@if2: <BROADCAST> mtu 1500 xdpgeneric qdisc noqueue\n    prog/xdp id 77 name pinhole\n";
    let cases: &[(&str, Option<u32>)] = &[
        (native, Some(5012)),
        (skb, Some(77)),
        ("3: r-out@if2: <BROADCAST> mtu 1500 qdisc noqueue\n", None),
        ("prog/xdp id x", None),
        ("", None),
    ];
    for (text, want) in cases {
        assert_eq!(xdp_prog_id(text), *want, "{text:?}");
    }
}
