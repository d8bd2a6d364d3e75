//! Bounded latching end to end: a SIP call whose caller is behind NAT. Its
//! SDP announces a private address (here 203.0.113.5, which nobody sends
//! from) while its packets come from its signaling address on the outside
//! host. The SIP is hand-written over UDP ([`sip_craft`]) so the test
//! controls every address; the daemon handles it inline (NFQUEUE) and lets
//! each message through only after the pinholes it implies are in place, so
//! a delivered message is the synchronisation.
//!
//! - `--latching 5`: an attacker on another outside address sending first is
//!   dropped (only the signaling address may latch); the caller's first
//!   packet latches the exact pair and media flows both ways; afterwards the
//!   same host from another port and the other host are dropped (no RTP
//!   Bleed); BYE closes the latched pinhole.
//! - `--latching 1` without media: the half-open entry expires, counted, and
//!   later media is dropped.
//! - Strict (the default): the call's media is refused as third-party media,
//!   counted, and dropped.
//!
//! Needs root and iptables. Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test netns_latch`.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    time::Duration,
};

use pinhole_integration::{
    lab::{self, Host, Lab, Owner, BURST},
    sip_craft::{deliver, Dialog, Sdp, SipPeer, SIP_PORT},
    wait_for, Family, SignalingStats, Topology,
};

type TestResult = anyhow::Result<()>;

/// Bound on a delivered SIP message.
const SIP_TIMEOUT: Duration = Duration::from_secs(5);
/// The caller's media port as its NAT maps it (inside the media range, so
/// the callee's replies to it are filtered too).
const NAT_PORT: u16 = 17000;
/// The port the caller announces behind its NAT.
const SDP_PORT: u16 = 16000;
/// The callee's media port.
const CALLEE_PORT: u16 = 12000;

/// The private address the caller announces: nobody sends from it.
fn sdp_address(f: Family) -> IpAddr {
    match f {
        Family::V4 => Ipv4Addr::new(203, 0, 113, 5).into(),
        Family::V6 => Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, 0, 5).into(),
    }
}

/// A second address on the outside host: an attacker that is not the
/// caller's signaling address.
fn attacker_address(f: Family) -> IpAddr {
    match f {
        Family::V4 => Ipv4Addr::new(192, 0, 2, 3).into(),
        Family::V6 => Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 3).into(),
    }
}

/// A `signaling.detail` counter.
fn detail(s: &SignalingStats, path: &str) -> u64 {
    lab::detail(s, path).unwrap_or_else(|| panic!("no signaling.detail.{path}: {s:?}"))
}

/// The lab, both SIP peers, the established call and the media sockets.
struct NatCall {
    lab: Lab,
    dialog: Dialog,
    caller_sip: SipPeer,
    callee_sip: SipPeer,
    /// The caller's media socket: its signaling address, the NAT's port.
    caller: UdpSocket,
    callee: UdpSocket,
    attacker: UdpSocket,
    /// The caller's signaling address, another port.
    same_host: UdpSocket,
}

impl NatCall {
    /// Starts the daemon with `daemon_args` and sets up the call: INVITE
    /// with the NAT'd offer, 200 with the callee's answer, ACK.
    fn start(family: Family, daemon_args: &[&str]) -> anyhow::Result<NatCall> {
        let mut args = vec!["--media-ports", "10000-20000", "--bye-grace", "0"];
        args.extend_from_slice(daemon_args);
        let lab = Lab::new(family, &args)?;
        let attacker_ip = attacker_address(family);
        lab.topo.outside.add_addr(
            Topology::OUTSIDE_IF,
            &format!("{attacker_ip}/{}", family.prefix_len()),
        )?;
        let (outside, inside) = (lab.ip(Host::Outside), lab.ip(Host::Inside));
        let caller_sip = SipPeer::bind(&lab.topo.outside, SocketAddr::new(outside, SIP_PORT))?;
        let callee_sip = SipPeer::bind(&lab.topo.inside, SocketAddr::new(inside, SIP_PORT))?;
        let caller = lab.udp(Host::Outside, NAT_PORT)?;
        let same_host = lab.udp(Host::Outside, NAT_PORT + 2)?;
        let callee = lab.udp(Host::Inside, CALLEE_PORT)?;
        let attacker = lab
            .topo
            .outside
            .udp_socket(SocketAddr::new(attacker_ip, NAT_PORT))?;

        let dialog = Dialog::new("nat", caller_sip.addr(), callee_sip.addr());
        let offer = Sdp::muxed(SocketAddr::new(sdp_address(family), SDP_PORT));
        let answer = Sdp::muxed(SocketAddr::new(inside, CALLEE_PORT));
        deliver(
            &caller_sip,
            &callee_sip,
            &dialog.invite(1, Some(&offer)),
            SIP_TIMEOUT,
        )?;
        deliver(
            &callee_sip,
            &caller_sip,
            &dialog.response(200, "OK", 1, "INVITE", Some(&answer)),
            SIP_TIMEOUT,
        )?;
        deliver(&caller_sip, &callee_sip, &dialog.ack(1), SIP_TIMEOUT)?;
        Ok(NatCall {
            lab,
            dialog,
            caller_sip,
            callee_sip,
            caller,
            callee,
            attacker,
            same_host,
        })
    }

    fn owner(&self) -> Owner<'_> {
        Owner::Sip(&self.dialog.call_id)
    }

    fn addr(sock: &UdpSocket) -> SocketAddr {
        sock.local_addr().expect("bound socket")
    }

    /// `sock` sends a burst at the callee's media port: all dropped as
    /// misses, none delivered.
    fn dropped(&self, sock: &UdpSocket) -> anyhow::Result<()> {
        self.lab
            .assert_off_path_dropped(sock, &[], &self.callee, Host::Inside)?;
        Ok(())
    }

    fn bye(&self) -> anyhow::Result<()> {
        deliver(
            &self.caller_sip,
            &self.callee_sip,
            &self.dialog.bye(2),
            SIP_TIMEOUT,
        )?;
        Ok(())
    }
}

/// With `--latching 5`: attacker first dropped, the caller latches, media
/// both ways, second sources dropped, BYE closes.
fn latches_the_signaling_address(family: Family) -> TestResult {
    let t = NatCall::start(family, &["--latching", "5"])?;
    let s = t.lab.signaling()?;
    assert_eq!(detail(&s, "latching.counters.armed"), 1, "one half-open");
    assert_eq!(detail(&s, "latching.pending"), 1);
    assert_eq!(s.refused.get("third_party_media"), Some(&0));
    assert_eq!(
        t.lab.daemon.list()?,
        vec![],
        "nothing open before the latch"
    );

    // Only the signaling address may latch: another outside host is dropped.
    t.dropped(&t.attacker)?;
    assert_eq!(t.lab.daemon.counter("latched")?, 0);

    // The caller's first packet latches; the burst passes, from the NAT port.
    t.lab.assert_passes(&t.caller, &t.callee)?;
    assert_eq!(t.lab.daemon.counter("latched")?, 1, "exactly one latch");
    let (caller, callee) = (NatCall::addr(&t.caller), NatCall::addr(&t.callee));
    // The controller adopts the pair when the program's report arrives.
    t.lab.wait_flows(
        t.owner(),
        &BTreeSet::from([(caller, callee), (callee, caller)]),
        "the latched pair in the table",
    )?;
    let list = t.lab.owned_pinholes(t.owner())?;
    assert_eq!(list.len(), 1, "{list:?}");
    let p = &list[0];
    assert_eq!(
        (p.a, p.b, p.rtcp),
        (caller, callee, false),
        "the exact pair"
    );
    assert_eq!(
        p.flow(caller, callee).map(|f| f.packets),
        Some(u64::from(BURST)),
        "every packet of the burst, the latching one included"
    );
    // And back, to the NAT's port.
    t.lab.assert_passes(&t.callee, &t.caller)?;
    let s = t.lab.signaling()?;
    assert_eq!(detail(&s, "latching.counters.latched"), 1);
    assert_eq!(detail(&s, "latching.pending"), 0);

    // Strict from now on: no RTP Bleed.
    t.dropped(&t.same_host)?;
    t.dropped(&t.attacker)?;
    t.lab.assert_passes(&t.caller, &t.callee)?;

    t.bye()?;
    t.lab.wait_gone(t.owner(), lab::TIMEOUT, "BYE")?;
    t.lab.assert_dropped(&t.caller, &t.callee, Host::Inside)?;
    assert_eq!(t.lab.daemon.counter("latched")?, 1);
    Ok(())
}

/// With `--latching 1` and no media: the entry expires and is counted;
/// the caller's late media is dropped.
fn unlatched_entry_expires(family: Family) -> TestResult {
    let t = NatCall::start(family, &["--latching", "1"])?;
    wait_for("the half-open pinhole to expire", lab::TIMEOUT, || {
        let s = t.lab.signaling()?;
        Ok((detail(&s, "latching.counters.expired") == 1).then_some(()))
    })?;
    let s = t.lab.signaling()?;
    assert_eq!(detail(&s, "latching.pending"), 0);
    t.dropped(&t.caller)?;
    assert_eq!(t.lab.daemon.counter("latched")?, 0);
    assert_eq!(t.lab.daemon.list()?, vec![]);
    t.bye()?;
    Ok(())
}

/// Strict (no `--latching`): the NAT'd media is third-party media, refused
/// and counted, and the caller's packets are dropped.
fn strict_refuses_nat_media(family: Family) -> TestResult {
    let t = NatCall::start(family, &[])?;
    let s = t.lab.signaling()?;
    assert_eq!(s.refused.get("third_party_media"), Some(&1), "{s:?}");
    assert_eq!(detail(&s, "latching.counters.armed"), 0);
    t.dropped(&t.caller)?;
    t.lab.assert_dropped(&t.callee, &t.caller, Host::Outside)?;
    assert_eq!(t.lab.daemon.counter("latched")?, 0);
    assert_eq!(t.lab.daemon.list()?, vec![]);
    t.bye()?;
    Ok(())
}

mod v4 {
    use super::*;

    #[test]
    fn latches_the_signaling_address() -> TestResult {
        super::latches_the_signaling_address(Family::V4)
    }

    #[test]
    fn unlatched_entry_expires() -> TestResult {
        super::unlatched_entry_expires(Family::V4)
    }

    #[test]
    fn strict_refuses_nat_media() -> TestResult {
        super::strict_refuses_nat_media(Family::V4)
    }
}

mod v6 {
    use super::*;

    #[test]
    fn latches_the_signaling_address() -> TestResult {
        super::latches_the_signaling_address(Family::V6)
    }
}
