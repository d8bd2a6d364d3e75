//! End-to-end filter tests in network namespaces: the `pinhole` daemon guards a
//! router between an outside and an inside host (see `Topology`), with XDP on
//! both router interfaces. Every filter case runs for IPv4 and IPv6, in native
//! and SKB mode. Then the CLI's failure contract: bad input and runtime errors
//! exit non-zero with one `error: ` line and leave the daemon untouched.
//!
//! Needs root. Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test netns_filter`.

use std::{
    collections::BTreeSet,
    io::{Read, Write},
    net::SocketAddr,
    ops::{Deref, DerefMut},
    os::unix::fs::PermissionsExt,
    path::Path,
    time::Duration,
};

use pinhole_integration::{
    lab::{self, Host, Lab},
    pinhole_bin, run_bounded,
    traffic::{self, PAYLOAD_LEN},
    wait_for, CliOutput, Family, Netns, Pinhole, Topology, XdpMode,
};

/// Datagrams per burst.
const N: u32 = lab::BURST;
/// The outside endpoint's port; in the default media range, so the inside →
/// outside direction is filtered too.
const A_PORT: u16 = 12000;
/// The inside endpoint's port (media range).
const B_PORT: u16 = 10000;
/// A UDP port outside the media range (SIP).
const NON_MEDIA_PORT: u16 = 5060;
/// Bound on waiting for datagrams, counters and processes.
const TIMEOUT: Duration = Duration::from_secs(10);

type TestResult = anyhow::Result<()>;

/// One filter test's world: the lab with the daemon in the case's XDP mode,
/// and the media endpoints A (outside) and B (inside).
struct Case(Lab);

impl Deref for Case {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.0
    }
}

impl DerefMut for Case {
    fn deref_mut(&mut self) -> &mut Lab {
        &mut self.0
    }
}

impl Case {
    fn new(mode: XdpMode, family: Family, extra: &[&str]) -> anyhow::Result<Case> {
        Ok(Case(Lab::with_mode(mode, family, extra)?))
    }

    /// The outside media endpoint A.
    fn a(&self) -> SocketAddr {
        self.addr(Host::Outside, A_PORT)
    }

    /// The inside media endpoint B.
    fn b(&self) -> SocketAddr {
        self.addr(Host::Inside, B_PORT)
    }

    /// Frame bytes the XDP program counts for one test datagram.
    fn frame_len(&self) -> u64 {
        self.family.udp_overhead() + PAYLOAD_LEN as u64
    }
}

/// The pinhole between `a` and `b` in `list`, failing if there is not exactly one.
fn only_pinhole(list: &[Pinhole], a: SocketAddr, b: SocketAddr) -> anyhow::Result<Pinhole> {
    match list {
        [p] if p.a == a && p.b == b => Ok(p.clone()),
        _ => anyhow::bail!("expected exactly the pinhole {a} ↔ {b}, list is {list:#?}"),
    }
}

fn unsolicited_media_is_dropped(mode: XdpMode, family: Family) -> TestResult {
    let c = Case::new(mode, family, &[])?;
    let outside = c.udp(Host::Outside, A_PORT)?;
    let inside = c.udp(Host::Inside, B_PORT)?;
    c.assert_dropped_exactly(&outside, &inside, Host::Inside)?;
    // The inside interface is filtered as well.
    c.assert_dropped_exactly(&inside, &outside, Host::Outside)?;
    assert_eq!(c.daemon.counter("hit")?, 0);
    Ok(())
}

fn open_passes_both_directions(mode: XdpMode, family: Family) -> TestResult {
    let c = Case::new(mode, family, &[])?;
    let (a, b) = (c.a(), c.b());
    let outside = c.udp(Host::Outside, A_PORT)?;
    let inside = c.udp(Host::Inside, B_PORT)?;
    let hits = c.daemon.counter("hit")?;
    c.daemon.open(a, b, &[])?;

    c.assert_passes(&outside, &inside)?;
    c.assert_passes(&inside, &outside)?;

    assert_eq!(c.daemon.counter("hit")? - hits, 2 * u64::from(N));
    let p = only_pinhole(&c.daemon.list()?, a, b)?;
    assert!(!p.rtcp);
    assert_eq!(p.flows.len(), 2, "{p:#?}");
    for (src, dst) in [(a, b), (b, a)] {
        let f = p
            .flow(src, dst)
            .unwrap_or_else(|| panic!("no flow {src} → {dst} in {p:#?}"));
        assert_eq!(f.packets, u64::from(N), "{src} → {dst} packets");
        assert_eq!(f.bytes, u64::from(N) * c.frame_len(), "{src} → {dst} bytes");
    }
    assert_eq!(p.packets, 2 * u64::from(N));
    assert_eq!(p.bytes, 2 * u64::from(N) * c.frame_len());
    let stats = c.daemon.stats()?;
    assert_eq!((stats.pinholes, stats.flows.used), (1, 2));
    Ok(())
}

fn close_drops_again(mode: XdpMode, family: Family) -> TestResult {
    let c = Case::new(mode, family, &[])?;
    let (a, b) = (c.a(), c.b());
    let outside = c.udp(Host::Outside, A_PORT)?;
    let inside = c.udp(Host::Inside, B_PORT)?;
    c.daemon.open(a, b, &[])?;
    c.assert_passes(&outside, &inside)?;
    c.assert_passes(&inside, &outside)?;

    c.daemon.close(a, b)?;
    assert_eq!(c.daemon.list()?, vec![]);
    let stats = c.daemon.stats()?;
    assert_eq!((stats.pinholes, stats.flows.used), (0, 0));
    c.assert_dropped_exactly(&outside, &inside, Host::Inside)?;
    c.assert_dropped_exactly(&inside, &outside, Host::Outside)?;
    Ok(())
}

fn idle_pinhole_expires(mode: XdpMode, family: Family) -> TestResult {
    let c = Case::new(mode, family, &[])?;
    let (a, b) = (c.a(), c.b());
    let outside = c.udp(Host::Outside, A_PORT)?;
    let inside = c.udp(Host::Inside, B_PORT)?;
    c.daemon.open(a, b, &["--idle", "1"])?;
    assert_eq!(only_pinhole(&c.daemon.list()?, a, b)?.idle_timeout_secs, 1);
    c.assert_passes(&outside, &inside)?;

    wait_for(
        "the idle pinhole to expire",
        Duration::from_secs(15),
        || Ok(c.daemon.list()?.is_empty().then_some(())),
    )?;
    let stats = c.daemon.stats()?;
    assert_eq!((stats.pinholes, stats.flows.used), (0, 0));
    c.assert_dropped_exactly(&outside, &inside, Host::Inside)?;
    Ok(())
}

fn rtcp_pair_follows_pinhole(mode: XdpMode, family: Family) -> TestResult {
    let c = Case::new(mode, family, &[])?;
    let (a, b) = (c.a(), c.b());
    let (a_rtcp, b_rtcp) = (
        c.addr(Host::Outside, A_PORT + 1),
        c.addr(Host::Inside, B_PORT + 1),
    );
    let outside = c.udp(Host::Outside, A_PORT)?;
    let inside = c.udp(Host::Inside, B_PORT)?;
    let outside_rtcp = c.udp(Host::Outside, A_PORT + 1)?;
    let inside_rtcp = c.udp(Host::Inside, B_PORT + 1)?;
    c.daemon.open(a, b, &["--with-rtcp"])?;

    let p = only_pinhole(&c.daemon.list()?, a, b)?;
    assert!(p.rtcp, "{p:#?}");
    let flows: BTreeSet<_> = p.flows.iter().map(|f| (f.src, f.dst)).collect();
    let expected = BTreeSet::from([(a, b), (b, a), (a_rtcp, b_rtcp), (b_rtcp, a_rtcp)]);
    assert_eq!(flows, expected);
    c.assert_passes(&outside, &inside)?;
    c.assert_passes(&outside_rtcp, &inside_rtcp)?;
    c.assert_passes(&inside_rtcp, &outside_rtcp)?;
    // RTP port to RTCP port is not part of the pinhole.
    c.assert_dropped_exactly(&outside, &inside_rtcp, Host::Inside)?;

    // Closing the RTP pair closes the RTCP pair too.
    c.daemon.close(a, b)?;
    assert_eq!(c.daemon.stats()?.flows.used, 0);
    c.assert_dropped_exactly(&outside_rtcp, &inside_rtcp, Host::Inside)?;
    Ok(())
}

fn non_media_udp_and_tcp_pass(mode: XdpMode, family: Family) -> TestResult {
    let c = Case::new(mode, family, &[])?;
    let before = c.daemon.stats()?;

    // UDP to a port outside the media range passes both ways without a pinhole.
    let outside = c.udp(Host::Outside, NON_MEDIA_PORT)?;
    let inside = c.udp(Host::Inside, NON_MEDIA_PORT)?;
    c.assert_passes(&outside, &inside)?;
    c.assert_passes(&inside, &outside)?;

    // TCP passes, even to a port number in the media range.
    let listener = c.topo.inside.tcp_listener(c.b())?;
    let mut client = c.topo.outside.tcp_connect(c.b(), TIMEOUT)?;
    let (mut server, _) = listener.accept()?;
    for s in [&client, &server] {
        s.set_read_timeout(Some(TIMEOUT))?;
    }
    client.write_all(b"ping")?;
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf)?;
    assert_eq!(&buf, b"ping");
    server.write_all(b"pong")?;
    client.read_exact(&mut buf)?;
    assert_eq!(&buf, b"pong");

    let after = c.daemon.stats()?;
    let delta = |reason: &str| -> anyhow::Result<u64> {
        Ok(after.packets(reason)? - before.packets(reason)?)
    };
    assert_eq!(delta("not_media_port")?, 2 * u64::from(N));
    // SYN, SYN-ACK, ACK and two data segments at least.
    assert!(
        delta("not_udp")? >= 5,
        "not_udp rose by {}",
        delta("not_udp")?
    );
    assert_eq!(delta("miss")?, 0);
    assert_eq!(delta("hit")?, 0);
    Ok(())
}

/// One test per case for a mode and family; the case list is written once.
macro_rules! filter_cases {
    ($mode:expr, $family:expr) => {
        use super::*;

        #[test]
        fn unsolicited_media_is_dropped() -> TestResult {
            super::unsolicited_media_is_dropped($mode, $family)
        }

        #[test]
        fn open_passes_both_directions() -> TestResult {
            super::open_passes_both_directions($mode, $family)
        }

        #[test]
        fn close_drops_again() -> TestResult {
            super::close_drops_again($mode, $family)
        }

        #[test]
        fn idle_pinhole_expires() -> TestResult {
            super::idle_pinhole_expires($mode, $family)
        }

        #[test]
        fn rtcp_pair_follows_pinhole() -> TestResult {
            super::rtcp_pair_follows_pinhole($mode, $family)
        }

        #[test]
        fn non_media_udp_and_tcp_pass() -> TestResult {
            super::non_media_udp_and_tcp_pass($mode, $family)
        }
    };
}

mod native_v4 {
    filter_cases!(XdpMode::Native, Family::V4);
}
mod native_v6 {
    filter_cases!(XdpMode::Native, Family::V6);
}
mod skb_v4 {
    filter_cases!(XdpMode::Skb, Family::V4);
}
mod skb_v6 {
    filter_cases!(XdpMode::Skb, Family::V6);
}

/// Without the daemon, media UDP flows freely: the harness itself does not
/// filter, so the drops above are the daemon's doing.
#[test]
fn without_daemon_media_passes() -> TestResult {
    let topo = Topology::new()?;
    for family in Family::ALL {
        let a = SocketAddr::new(family.outside(), A_PORT);
        let b = SocketAddr::new(family.inside(), B_PORT);
        let outside = topo.outside.udp_socket(a)?;
        let inside = topo.inside.udp_socket(b)?;
        traffic::send(&outside, b, N)?;
        assert_eq!(traffic::receive(&inside, N, TIMEOUT)?.data, N, "{family:?}");
    }
    Ok(())
}

/// What `list` says about a pinhole, minus the fields that change with time
/// and traffic.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    a: SocketAddr,
    b: SocketAddr,
    rtcp: bool,
    idle_timeout_secs: u64,
    flows: BTreeSet<(SocketAddr, SocketAddr)>,
}

fn shape(list: &[Pinhole]) -> Vec<Shape> {
    list.iter()
        .map(|p| Shape {
            a: p.a,
            b: p.b,
            rtcp: p.rtcp,
            idle_timeout_secs: p.idle_timeout_secs,
            flows: p.flows.iter().map(|f| (f.src, f.dst)).collect(),
        })
        .collect()
}

/// Runs `argv` (a `pinhole run …` command line) in `ns`, bounded: it must
/// fail, not serve.
fn run_failing(ns: &Netns, argv: &[String]) -> anyhow::Result<CliOutput> {
    let mut cmd = ns.command(&argv[0]);
    cmd.args(&argv[1..]);
    Ok(run_bounded(&mut cmd, TIMEOUT)?)
}

#[test]
fn cli_errors_leave_daemon_untouched() -> TestResult {
    let mut c = Case::new(XdpMode::Native, Family::V4, &[])?;
    let (a, b) = (c.a(), c.b());
    let (a6, b6) = (
        SocketAddr::new(Family::V6.outside(), A_PORT),
        SocketAddr::new(Family::V6.inside(), B_PORT),
    );
    c.daemon.open(a, b, &[])?;
    c.daemon.open(a6, b6, &[])?;
    let before = shape(&c.daemon.list()?);
    assert_eq!(before.len(), 2);

    // Bad input: exit 2, one `error: ` line, nothing changes.
    for args in [
        &["open", "192.0.2.300:12000", "198.51.100.2:10000"][..],
        &["open", "192.0.2.2", "198.51.100.2:10000"],
        &["open", "192.0.2.2:", "198.51.100.2:10000"],
        &["open", "[2001:db8:1::2:12000", "[2001:db8:2::2]:10000"],
        &["open", "198.51.100.2:10000", "example.invalid:10000"],
        &["open", "192.0.2.2:12000", "[2001:db8:2::2]:10000"],
        &["open", "[2001:db8:1::2]:12000", "198.51.100.2:10000"],
        &["open", "192.0.2.2:70000", "198.51.100.2:10000"],
        &["open", "192.0.2.2:12000", "198.51.100.2:65536"],
        &["close", "192.0.2.2:70000", "198.51.100.2:10000"],
        &["close", "192.0.2.2:12000", "[2001:db8:2::2]:10000"],
    ] {
        let out = c.daemon.cli(args)?;
        if let Err(why) = out.expect_client_error() {
            panic!("{why}");
        }
        assert_eq!(
            out.status.code(),
            Some(2),
            "`{}`: bad input exits 2; stderr: {}",
            out.cmd,
            out.stderr
        );
        assert_eq!(shape(&c.daemon.list()?), before, "after `{}`", out.cmd);
    }

    // Runtime failures of a second `pinhole run`.
    let scratch = c.daemon.dir().join("scratch");
    std::fs::create_dir(&scratch)?;
    std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o1777))?;
    let control = |name: &str| scratch.join(name).to_str().unwrap().to_owned();
    // A copy the unprivileged user can surely execute, wherever the build is.
    let bin_copy = scratch.join("pinhole");
    std::fs::copy(pinhole_bin(), &bin_copy)?;
    std::fs::set_permissions(&bin_copy, std::fs::Permissions::from_mode(0o755))?;
    let pinhole = pinhole_bin().to_str().unwrap().to_owned();
    let argv = |prefix: &[&str], args: &[&str]| -> Vec<String> {
        prefix.iter().chain(args).map(|s| s.to_string()).collect()
    };
    let unprivileged = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        bin_copy.to_str().unwrap(),
    ];
    let out_if = Topology::ROUTER_OUTSIDE_IF;
    for (what, argv) in [
        (
            "unknown interface",
            argv(
                &[&pinhole, "run"],
                &["--iface", "ph-nosuch0", "--control", &control("1.sock")],
            ),
        ),
        (
            "second daemon on the same interface",
            argv(
                &[&pinhole, "run"],
                &["--iface", out_if, "--control", &control("2.sock")],
            ),
        ),
        (
            "inverted media port range",
            argv(
                &[&pinhole, "run"],
                &[
                    "--iface",
                    out_if,
                    "--media-ports",
                    "20000-10000",
                    "--control",
                    &control("3.sock"),
                ],
            ),
        ),
        (
            "no privileges",
            argv(
                &unprivileged,
                &["run", "--iface", out_if, "--control", &control("4.sock")],
            ),
        ),
    ] {
        let out = run_failing(&c.topo.router, &argv)?;
        if let Err(why) = out.expect_daemon_error() {
            panic!("{what}: {why}");
        }
        assert!(
            c.daemon.is_running(),
            "{what}: the daemon must keep running"
        );
        assert_eq!(shape(&c.daemon.list()?), before, "{what}: pinholes changed");
    }

    // The first daemon still filters, and its pinhole still passes traffic.
    let outside = c.udp(Host::Outside, A_PORT)?;
    let inside = c.udp(Host::Inside, B_PORT)?;
    c.assert_passes(&outside, &inside)?;
    c.assert_passes(&inside, &outside)?;
    let stranger = c.udp(Host::Outside, A_PORT + 2)?;
    c.assert_dropped_exactly(&stranger, &inside, Host::Inside)?;

    // SIGTERM: orderly exit 0, socket removed.
    let control_path = c.daemon.control().to_owned();
    let Lab { daemon, topo, .. } = c.0;
    let status = daemon.stop()?;
    assert!(status.success(), "SIGTERM should exit 0, got {status}");
    assert!(
        !Path::new(&control_path).exists(),
        "control socket left behind"
    );
    drop(topo);
    Ok(())
}

#[test]
fn full_map_refuses_and_keeps_first_pinhole() -> TestResult {
    let c = Case::new(XdpMode::Native, Family::V4, &["--max-pinholes", "2"])?;
    let (a, b) = (c.a(), c.b());
    c.daemon.open(a, b, &[])?;
    let second = c
        .daemon
        .cli(&["open", "192.0.2.2:12002", "198.51.100.2:10002"])?;
    if let Err(why) = second.expect_client_error() {
        panic!("{why}");
    }
    only_pinhole(&c.daemon.list()?, a, b)?;
    let stats = c.daemon.stats()?;
    assert_eq!((stats.flows.used, stats.flows.capacity), (2, 2));
    assert_eq!(stats.pinholes, 1);

    let outside = c.udp(Host::Outside, A_PORT)?;
    let inside = c.udp(Host::Inside, B_PORT)?;
    c.assert_passes(&outside, &inside)?;
    c.assert_passes(&inside, &outside)?;
    Ok(())
}
