//! pinhole on a link that is not Ethernet, and `--media-prefix`, end to end
//! in network namespaces.
//!
//! **tun.** The router's outside link is a tun device (ARPHRD_NONE, no
//! link-layer header), as a WireGuard or PPP link is: the test writes IP
//! packets into it, which the kernel receives on the device, runs through
//! skb-mode XDP (starting at the IP header) and forwards to the inside host
//! over a veth. This machine's kernel has tun but no WireGuard or PPP (and
//! modules cannot be loaded), so tun stands for all three: the program and
//! the link-type detection treat ARPHRD_NONE (tun, WireGuard) and ARPHRD_PPP
//! the same; PPPoE framing is covered under BPF_PROG_TEST_RUN (`xdp_links`).
//!
//! ```text
//!  test process ── ph-tun0 (router, XDP skb)   r-in ──────────── eth0 (inside)
//!   writes IP       192.0.2.1/24               198.51.100.1/24   198.51.100.2/24
//!   packets         2001:db8:1::1/64           2001:db8:2::1/64  2001:db8:2::2/64
//! ```
//!
//! **--media-prefix.** The standard topology: an inside client's DNS query
//! goes out from an ephemeral port inside the media range, and the server's
//! reply must come back. Without `--media-prefix` it is dropped as a miss;
//! with the media servers' network as the prefix it passes, counted as
//! `not_media_prefix`, while media to that network is still filtered.
//!
//! Needs root. Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test netns_links`.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use pinhole_integration::{
    lab::{self, Host, Lab},
    pinhole_bin, run_bounded, traffic,
    tun::Tun,
    Daemon, Family, Netns, XdpMode,
};

/// Datagrams per burst.
const N: u32 = lab::BURST;
/// The remote peer's media port, across the tunnel.
const A_PORT: u16 = 12000;
/// The inside endpoint's media port.
const B_PORT: u16 = 10000;
/// A UDP port outside the media range.
const NON_MEDIA_PORT: u16 = 5060;
/// Bound on waiting for datagrams, counters and processes.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The router's tun device.
const TUN: &str = "ph-tun0";
/// The router's veth towards the inside host.
const ROUTER_INSIDE_IF: &str = "r-in";

type TestResult = anyhow::Result<()>;

/// A stranger on the tunnel's subnet, in `family`.
fn stranger(family: Family) -> IpAddr {
    match family {
        Family::V4 => Ipv4Addr::new(192, 0, 2, 66).into(),
        Family::V6 => Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x66).into(),
    }
}

/// The router with a tun device as its outside link, and the inside host.
struct TunLab {
    router: Netns,
    inside: Netns,
    tun: Tun,
}

impl TunLab {
    fn new() -> anyhow::Result<TunLab> {
        let router = Netns::new()?;
        let inside = Netns::new()?;
        router.enable_forwarding()?;
        router.add_veth(ROUTER_INSIDE_IF, &inside, "eth0")?;
        let tun = Tun::create(&router, TUN)?;
        router.ip(&["link", "set", TUN, "up"])?;
        for f in Family::ALL {
            let cidr = |ip: IpAddr| format!("{ip}/{}", f.prefix_len());
            router.add_addr(TUN, &cidr(f.router_outside()))?;
            router.add_addr(ROUTER_INSIDE_IF, &cidr(f.router_inside()))?;
            inside.add_addr("eth0", &cidr(f.inside()))?;
            inside.add_route("default", &f.router_inside().to_string())?;
        }
        let lab = TunLab {
            router,
            inside,
            tun,
        };
        // Forwarding works before any filter (and the router has resolved
        // the inside host, so test traffic does not wait behind ND/ARP).
        for f in Family::ALL {
            let rx = lab.inside.udp_socket(SocketAddr::new(f.inside(), 7))?;
            let dst = rx.local_addr()?;
            lab.tun
                .send_marker(SocketAddr::new(f.outside(), 4000), dst)?;
            traffic::receive_until_marker(&rx, TIMEOUT)
                .map_err(|e| anyhow::anyhow!("the tun lab does not forward {f:?} traffic: {e}"))?;
        }
        Ok(lab)
    }

    fn start_daemon(&self) -> anyhow::Result<Daemon> {
        Ok(Daemon::start(
            &self.router,
            &["--iface", TUN, "--xdp-mode", "skb", "--signaling", "off"],
        )?)
    }
}

fn tun_media(family: Family) -> TestResult {
    let lab = TunLab::new()?;
    let daemon = lab.start_daemon()?;
    let stats = daemon.stats()?;
    let iface = stats.interface(TUN)?;
    assert_eq!(iface.state, "attached", "{iface:?}");

    let a = SocketAddr::new(family.outside(), A_PORT);
    let b = SocketAddr::new(family.inside(), B_PORT);
    let c = SocketAddr::new(stranger(family), A_PORT);
    let rx = lab.inside.udp_socket(b)?;
    let other = lab
        .inside
        .udp_socket(SocketAddr::new(family.inside(), NON_MEDIA_PORT))?;

    // Unsolicited media from the tunnel is dropped, every packet counted.
    let miss = daemon.counter("miss")?;
    lab.tun.send(a, b, N)?;
    lab.tun.send(c, b, N)?;
    let now = daemon.wait_counter("miss", miss + 2 * u64::from(N), TIMEOUT)?;
    assert_eq!(now - miss, 2 * u64::from(N), "miss for unsolicited media");

    // Not subject: UDP to a non-media port passes untouched.
    let not_media = daemon.counter("not_media_port")?;
    lab.tun.send(c, other.local_addr()?, N)?;
    let got = traffic::receive(&other, N, TIMEOUT)?;
    assert_eq!(got.data, N, "non-media datagrams through the tun");
    assert_eq!(daemon.counter("not_media_port")? - not_media, u64::from(N));

    // A pinhole: its media passes, counted on the flow; a marker through it
    // shows that none of the dropped packets arrived before.
    daemon.open(a, b, &[])?;
    let hits = daemon.counter("hit")?;
    lab.tun.send(a, b, N)?;
    lab.tun.send_marker(a, b)?;
    let got = traffic::receive_until_marker(&rx, TIMEOUT)?;
    assert_eq!(got.data, N, "pinholed datagrams through the tun");
    assert_eq!(got.senders, BTreeSet::from([a]));
    assert_eq!(daemon.counter("hit")? - hits, u64::from(N) + 1);
    let list = daemon.list()?;
    let flow = list
        .iter()
        .find_map(|p| p.flow(a, b))
        .unwrap_or_else(|| panic!("no flow {a} → {b} in {list:#?}"));
    assert_eq!(flow.packets, u64::from(N) + 1, "{a} → {b} packets");

    // The stranger is still dropped with the pinhole open.
    let miss = daemon.counter("miss")?;
    lab.tun.send(c, b, N)?;
    lab.tun.send_marker(a, b)?;
    let got = traffic::receive_until_marker(&rx, TIMEOUT)?;
    assert_eq!(got.data, 0, "stranger's datagrams arrived");
    assert_eq!(daemon.counter("miss")? - miss, u64::from(N));
    assert_eq!(daemon.counter("malformed")?, 0);
    Ok(())
}

#[test]
fn tun_v4() -> TestResult {
    tun_media(Family::V4)
}

#[test]
fn tun_v6() -> TestResult {
    tun_media(Family::V6)
}

/// Native XDP on a tun device: the kernel has none for TUN-mode devices
/// (nor for WireGuard or PPP). Refused before any attach, with what to do
/// instead.
#[test]
fn native_mode_on_tun_is_refused() -> TestResult {
    let lab = TunLab::new()?;
    let dir = std::env::temp_dir().join(format!("pinhole-links-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let control = dir.join("native.sock");
    let mut cmd = lab.router.command(pinhole_bin());
    cmd.args([
        "run",
        "--iface",
        TUN,
        "--xdp-mode",
        "native",
        "--signaling",
        "off",
    ])
    .arg("--control")
    .arg(&control);
    let out = run_bounded(&mut cmd, TIMEOUT)?;
    let _ = std::fs::remove_dir_all(&dir);
    let line = out.expect_daemon_error().map_err(|e| anyhow::anyhow!(e))?;
    assert!(
        line.contains(TUN) && line.contains("--xdp-mode skb"),
        "{line}"
    );
    // Nothing was left attached.
    let link = lab.router.ip(&["link", "show", TUN])?;
    assert!(!link.contains("xdp"), "{link}");
    Ok(())
}

/// An inside client's DNS query from an ephemeral port in the media range,
/// and the server's reply, with `args` for the daemon. Returns the reply
/// datagrams that arrived and the `miss` and `not_media_prefix` deltas.
fn dns_reply(family: Family, args: &[&str]) -> anyhow::Result<(u32, u64, u64)> {
    let lab = Lab::with_mode(XdpMode::Skb, family, args)?;
    let server = lab.udp(Host::Outside, 53)?;
    let client = lab.udp(Host::Inside, 12345)?;
    let (miss, outside) = (
        lab.daemon.counter("miss")?,
        lab.daemon.counter("not_media_prefix")?,
    );
    lab.assert_passes(&client, &server)?;
    traffic::send(&server, client.local_addr()?, N)?;
    lab.send_marker(&client, Host::Inside)?;
    let got = traffic::receive_until_marker(&client, TIMEOUT)?;
    Ok((
        got.data,
        lab.daemon.counter("miss")? - miss,
        lab.daemon.counter("not_media_prefix")? - outside,
    ))
}

fn media_prefix(family: Family) -> TestResult {
    // Without --media-prefix every destination is protected: the reply is
    // a miss.
    assert_eq!(dns_reply(family, &[])?, (0, u64::from(N), 0));

    // The media servers' network (the outside host's) as the prefix: the
    // reply to the client passes as not subject...
    let servers = format!("{}/{}", family.outside(), family.prefix_len());
    assert_eq!(
        dns_reply(family, &["--media-prefix", &servers])?,
        (N, 0, u64::from(N))
    );

    // ...while unsolicited media to the protected network is still dropped.
    let lab = Lab::with_mode(XdpMode::Skb, family, &["--media-prefix", &servers])?;
    let tx = lab.udp(Host::Inside, 12345)?;
    let rx = lab.udp(Host::Outside, B_PORT)?;
    lab.assert_dropped_exactly(&tx, &rx, Host::Outside)?;
    assert_eq!(lab.daemon.counter("not_media_prefix")?, 0);
    Ok(())
}

#[test]
fn media_prefix_v4() -> TestResult {
    media_prefix(Family::V4)
}

#[test]
fn media_prefix_v6() -> TestResult {
    media_prefix(Family::V6)
}
