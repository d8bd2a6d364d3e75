//! `--forward xdp` end to end: the daemon on the router of the veth lab
//! forwards an open call's media itself (FIB lookup, TTL, MACs,
//! `bpf_redirect_map`), IPv4 and IPv6, native and skb mode.
//!
//! Each case sets up a SIP call through the router (inline signaling) and
//! checks, with exact counts:
//! - RTP both ways reaches the receiving sockets (so the IP and UDP
//!   checksums are right: the kernel drops bad ones) with TTL / hop limit
//!   64 − 1, and every packet is counted `forwarded`;
//! - unsolicited media is still dropped (`miss`);
//! - with the next hop's neighbour entry gone, media falls back to the stack
//!   (`fwd_no_neighbour`), which resolves it, and then goes fast again;
//! - a route change mid-call moves the media to a second link (`r-in2`) and
//!   its next hop, still forwarded by XDP.
//!
//! And `run --forward xdp` warns when NAT rules touch the media range.
//!
//! In native mode, veth's XDP transmit needs NAPI on the receiving veth, so
//! the hosts' veths get GRO, and the hosts compute UDP checksums in
//! software (a veth sender's checksum offload leaves them partial, which a
//! native redirect does not carry over) (see README "XDP forwarding").
//!
//! Needs root. Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test netns_forward`.

use std::{
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use pinhole_integration::{
    lab::{Host, Lab, Owner, BURST, TIMEOUT},
    sip_craft::{self, Dialog, Sdp, SipPeer, Transport},
    traffic, wait_for, Family, Topology, XdpMode,
};

type TestResult = anyhow::Result<()>;

const SIP_PORT: u16 = 5060;
/// The caller's (outside) and callee's (inside) RTP ports.
const A_PORT: u16 = 12000;
const B_PORT: u16 = 10000;
/// A stranger's port on the outside host.
const STRANGER_PORT: u16 = 14000;
/// What the senders' sockets start with (Linux's default TTL and hop
/// limit): one router hop later it is one less.
const SENT_TTL: u8 = 64;
/// The router's second inside link (route change).
const SECOND_LINK: &str = "r-in2";
const INSIDE_SECOND_IF: &str = "eth1";

/// The second link's addresses: (router, inside host, prefix length).
fn second_link(family: Family) -> (&'static str, &'static str, u8) {
    match family {
        Family::V4 => ("203.0.113.1", "203.0.113.2", 24),
        Family::V6 => ("2001:db8:3::1", "2001:db8:3::2", 64),
    }
}

/// A second veth pair router `r-in2` ↔ inside `eth1`, and, in native mode,
/// GRO on every host veth that receives redirected frames.
fn prepare(topo: &Topology, family: Family, mode: XdpMode) -> pinhole_integration::Result<()> {
    topo.router
        .add_veth(SECOND_LINK, &topo.inside, INSIDE_SECOND_IF)?;
    let (r, i, len) = second_link(family);
    topo.router.add_addr(SECOND_LINK, &format!("{r}/{len}"))?;
    topo.inside
        .add_addr(INSIDE_SECOND_IF, &format!("{i}/{len}"))?;
    // Media for the inside host's eth0 address arrives on eth1 after the
    // route change: no reverse-path filter may drop it.
    for dev in ["all", "default", INSIDE_SECOND_IF] {
        topo.inside
            .sysctl(&format!("net.ipv4.conf.{dev}.rp_filter"), "0")?;
    }
    if mode == XdpMode::Native {
        topo.outside.set_gro(Topology::OUTSIDE_IF, true)?;
        topo.inside.set_gro(Topology::INSIDE_IF, true)?;
        topo.inside.set_gro(INSIDE_SECOND_IF, true)?;
        // A veth sender leaves the UDP checksum to "hardware" (partial):
        // native XDP turns the frame into an xdp_frame, which loses that
        // note, and the receiver finds a bad checksum. The hosts compute
        // it in software, as a real NIC's wire frame carries it.
        topo.outside
            .exec("ethtool", &["-K", Topology::OUTSIDE_IF, "tx", "off"])?;
        topo.inside
            .exec("ethtool", &["-K", Topology::INSIDE_IF, "tx", "off"])?;
    }
    Ok(())
}

fn start(family: Family, mode: XdpMode) -> anyhow::Result<Lab> {
    Ok(Lab::prepared(
        mode,
        family,
        |t| prepare(t, family, mode),
        &[
            "--media-ports",
            "10000-20000",
            "--forward",
            "xdp",
            "--forward-iface",
            Topology::ROUTER_OUTSIDE_IF,
            "--forward-iface",
            Topology::ROUTER_INSIDE_IF,
            "--forward-iface",
            SECOND_LINK,
        ],
    )?)
}

/// INVITE/200/ACK between the SIP agents, RTP a ↔ b (RTCP muxed); waits
/// for the call's pinhole.
fn call(lab: &Lab, a: SocketAddr, b: SocketAddr) -> TestResult {
    let (caller, callee) = SipPeer::pair(
        Transport::Udp,
        &lab.topo.outside,
        lab.addr(Host::Outside, SIP_PORT),
        &lab.topo.inside,
        lab.addr(Host::Inside, SIP_PORT),
    )?;
    let dialog = Dialog::new("forward", caller.addr(), callee.addr());
    sip_craft::establish(
        &caller,
        &callee,
        &dialog,
        &Sdp::muxed(a),
        &Sdp::muxed(b),
        TIMEOUT,
    )?;
    wait_for("the call's pinhole", TIMEOUT, || {
        Ok((!lab.owned_pinholes(Owner::Sip(&dialog.call_id))?.is_empty()).then_some(()))
    })?;
    Ok(())
}

/// Asks the kernel for each datagram's TTL / hop limit on `sock`.
fn receive_ttl(sock: &UdpSocket, v6: bool) -> anyhow::Result<()> {
    let (level, opt) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVTTL)
    };
    let on: libc::c_int = 1;
    // SAFETY: a valid socket, option value and length.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            opt,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    anyhow::ensure!(rc == 0, "setsockopt: {}", std::io::Error::last_os_error());
    Ok(())
}

/// Receives up to `n` datagrams within `timeout`; returns each one's TTL /
/// hop limit (from the control message [`receive_ttl`] asked for).
fn ttls(sock: &UdpSocket, n: u32, timeout: Duration) -> anyhow::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    let mut cbuf = [0u64; 16];
    while out.len() < n as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left))?;
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; zero is a valid empty header.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        // SAFETY: msg points at live buffers of the sizes it states.
        let got = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
        if got < 0 {
            let e = std::io::Error::last_os_error();
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                break;
            }
            return Err(e.into());
        }
        let mut ttl = None;
        // SAFETY: walking the control messages recvmsg filled in.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                let (l, t) = ((*c).cmsg_level, (*c).cmsg_type);
                if (l == libc::IPPROTO_IP && t == libc::IP_TTL)
                    || (l == libc::IPPROTO_IPV6 && t == libc::IPV6_HOPLIMIT)
                {
                    let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                    ttl = u8::try_from(v).ok();
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        out.push(ttl.ok_or_else(|| anyhow::anyhow!("a datagram without its TTL"))?);
    }
    Ok(out)
}

/// [`BURST`] datagrams `tx → rx`: all arrive with TTL 63, and `counted`
/// (of the daemon's reasons) rises by exactly [`BURST`].
fn burst_arrives(
    lab: &Lab,
    tx: &UdpSocket,
    rx: &UdpSocket,
    counted: &str,
    what: &str,
) -> TestResult {
    let dst = rx.local_addr()?;
    let before = lab.daemon.counter(counted)?;
    traffic::send(tx, dst, BURST)?;
    let got = ttls(rx, BURST, TIMEOUT)?;
    assert_eq!(
        got,
        vec![SENT_TTL - 1; BURST as usize],
        "{what}: {} of {BURST} arrived, TTL / hop limit one less",
        got.len()
    );
    let after = lab
        .daemon
        .wait_counter(counted, before + u64::from(BURST), TIMEOUT)?;
    assert_eq!(
        after - before,
        u64::from(BURST),
        "{what}: `{counted}` count"
    );
    Ok(())
}

/// Waits until the router has a usable neighbour entry for `addr` on `dev`.
fn wait_neighbour(lab: &Lab, addr: &str, dev: &str) -> TestResult {
    wait_for(&format!("neighbour {addr} on {dev}"), TIMEOUT, || {
        let out = lab.topo.router.ip(&["neigh", "show", addr, "dev", dev])?;
        Ok(["REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT"]
            .iter()
            .any(|s| out.contains(s))
            .then_some(()))
    })?;
    Ok(())
}

fn forwarded_call(family: Family, mode: XdpMode) -> TestResult {
    let lab = start(family, mode)?;
    let v6 = family == Family::V6;
    let a = lab.addr(Host::Outside, A_PORT);
    let b = lab.addr(Host::Inside, B_PORT);
    let a_sock = lab.udp(Host::Outside, A_PORT)?;
    let b_sock = lab.udp(Host::Inside, B_PORT)?;
    receive_ttl(&a_sock, v6)?;
    receive_ttl(&b_sock, v6)?;
    call(&lab, a, b)?;

    // Both ways, forwarded by XDP.
    burst_arrives(&lab, &a_sock, &b_sock, "forwarded", "caller → callee")?;
    burst_arrives(&lab, &b_sock, &a_sock, "forwarded", "callee → caller")?;

    // Unsolicited media is still dropped, and nothing of it forwarded.
    let fwd = lab.daemon.counter("forwarded")?;
    let stranger = lab.udp(Host::Outside, STRANGER_PORT)?;
    lab.assert_dropped_exactly(&stranger, &b_sock, Host::Inside)?;
    assert_eq!(
        lab.daemon.counter("forwarded")?,
        fwd,
        "a miss is not forwarded"
    );

    // No neighbour for the callee: the stack forwards (and resolves it)...
    let inside = lab.ip(Host::Inside).to_string();
    lab.topo
        .router
        .ip(&["neigh", "flush", "dev", Topology::ROUTER_INSIDE_IF])?;
    let (fallback, fwd) = (
        lab.daemon.counter("fwd_no_neighbour")?,
        lab.daemon.counter("forwarded")?,
    );
    traffic::send(&a_sock, b, BURST)?;
    let got = ttls(&b_sock, BURST, TIMEOUT)?;
    assert_eq!(
        got.len(),
        BURST as usize,
        "all arrive without a neighbour entry"
    );
    assert!(got.iter().all(|&t| t == SENT_TTL - 1), "TTL {got:?}");
    let fell_back = lab.daemon.counter("fwd_no_neighbour")? - fallback;
    let went_fast = lab.daemon.counter("forwarded")? - fwd;
    assert!(fell_back >= 1, "the first packet falls back to the stack");
    assert_eq!(fell_back + went_fast, u64::from(BURST), "each counted once");
    // ...then media goes fast again.
    wait_neighbour(&lab, &inside, Topology::ROUTER_INSIDE_IF)?;
    burst_arrives(&lab, &a_sock, &b_sock, "forwarded", "neighbour resolved")?;

    // A route change mid-call moves the media to the second link.
    let (_, next_hop, _) = second_link(family);
    let host = if v6 {
        format!("{inside}/128")
    } else {
        format!("{inside}/32")
    };
    lab.topo.router.ip(&[
        "route",
        "replace",
        &host,
        "via",
        next_hop,
        "dev",
        SECOND_LINK,
    ])?;
    let tx_count = |dev: &str| -> anyhow::Result<u64> {
        let out = lab
            .topo
            .router
            .ip(&["-j", "-s", "link", "show", "dev", dev])?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        Ok(v[0]["stats64"]["tx"]["packets"].as_u64().unwrap_or(0))
    };
    // The new next hop is not resolved yet: the first packets take the
    // stack, which resolves it.
    traffic::send(&a_sock, b, BURST)?;
    let got = ttls(&b_sock, BURST, TIMEOUT)?;
    assert_eq!(got.len(), BURST as usize, "all arrive over the new route");
    wait_neighbour(&lab, next_hop, SECOND_LINK)?;
    let (second0, first0) = (
        tx_count(SECOND_LINK)?,
        tx_count(Topology::ROUTER_INSIDE_IF)?,
    );
    burst_arrives(
        &lab,
        &a_sock,
        &b_sock,
        "forwarded",
        "after the route change",
    )?;
    let second = tx_count(SECOND_LINK)? - second0;
    let first = tx_count(Topology::ROUTER_INSIDE_IF)? - first0;
    assert!(
        second >= u64::from(BURST),
        "the media leaves by {SECOND_LINK}: {second} frames"
    );
    assert!(
        first < u64::from(BURST),
        "and no longer by the first link: {first} frames"
    );
    // The other direction is unchanged and still fast.
    burst_arrives(
        &lab,
        &b_sock,
        &a_sock,
        "forwarded",
        "callee → caller, after",
    )?;
    Ok(())
}

#[test]
fn forwarded_call_v4_skb() -> TestResult {
    forwarded_call(Family::V4, XdpMode::Skb)
}

#[test]
fn forwarded_call_v6_skb() -> TestResult {
    forwarded_call(Family::V6, XdpMode::Skb)
}

#[test]
fn forwarded_call_v4_native() -> TestResult {
    forwarded_call(Family::V4, XdpMode::Native)
}

#[test]
fn forwarded_call_v6_native() -> TestResult {
    forwarded_call(Family::V6, XdpMode::Native)
}

/// A lab whose router masquerades out of its outside interface, the
/// daemon started with `args`.
fn masquerading(args: &[&str]) -> anyhow::Result<Lab> {
    Ok(Lab::prepared(
        XdpMode::Skb,
        Family::V4,
        |t| {
            t.router.exec(
                "nft",
                &["add table ip pnat; \
                   add chain ip pnat post { type nat hook postrouting priority srcnat; }; \
                   add rule ip pnat post oifname \"r-out\" masquerade"],
            )?;
            Ok(())
        },
        args,
    )?)
}

const NAT_WARNING: &str = "--forward xdp: NAT rules can touch the media range";

/// A masquerade on the outside interface would not apply to forwarded
/// media: `run --forward xdp` says so at start (before it is ready, so the
/// log has it once the daemon is up), naming the rule.
#[test]
fn nat_on_the_media_range_warns() -> TestResult {
    let lab = masquerading(&["--forward", "xdp"])?;
    let log = lab.daemon.log();
    let warning = log
        .lines()
        .find(|l| l.contains(NAT_WARNING))
        .unwrap_or_else(|| panic!("no forward NAT warning in:\n{log}"));
    assert!(
        warning.contains("masquerade"),
        "the warning names the rule: {warning}"
    );
    // The same router without forwarding: no such warning.
    let plain = masquerading(&[])?;
    assert!(
        !plain.daemon.log().contains(NAT_WARNING),
        "a forward warning without --forward xdp"
    );
    Ok(())
}
