//! Pre-answer latching end to end (`--pre-answer`, on by default): the
//! callee's media that starts before its answer has crossed the router.
//! The caller (outside) offers its media endpoint in an INVITE; until the
//! 200 OK the first packet from the callee's signaling address (any port)
//! to that endpoint latches the pair, and the answer then keeps exactly
//! what it justifies. The SIP is hand-written over UDP ([`sip_craft`]) so
//! the test controls every address; the daemon handles it inline (NFQUEUE)
//! and lets each message through only after its pinholes are in place, so a
//! delivered message is the synchronisation.
//!
//! - The callee's early packets pass (latched); an attacker on another
//!   inside address is dropped before the answer; after a 200 OK naming the
//!   same port media flows both ways and the pinhole stays, while another
//!   host and the callee from another port are dropped.
//! - Early packets from port b' with an answer naming b: after the answer
//!   b' is dropped and b passes.
//! - `--pre-answer off`: the early packet is a miss, dropped.
//!
//! Needs root and iptables. Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test netns_pre_answer`.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    time::Duration,
};

use pinhole_integration::{
    lab::{self, Host, Lab, Owner},
    sip_craft::{deliver, Dialog, Sdp, SipPeer, SIP_PORT},
    wait_for, Family, SignalingStats, Topology,
};

type TestResult = anyhow::Result<()>;

/// Bound on a delivered SIP message.
const SIP_TIMEOUT: Duration = Duration::from_secs(5);
/// The caller's media port (offered).
const CALLER_PORT: u16 = 16000;
/// The callee's media port (answered).
const CALLEE_PORT: u16 = 12000;
/// Another port of the callee's host.
const OTHER_PORT: u16 = 12002;

/// A second address on the inside host: not the callee's signaling address.
fn attacker_address(f: Family) -> IpAddr {
    match f {
        Family::V4 => Ipv4Addr::new(198, 51, 100, 3).into(),
        Family::V6 => Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 3).into(),
    }
}

/// A `signaling.detail` counter.
fn detail(s: &SignalingStats, path: &str) -> u64 {
    lab::detail(s, path).unwrap_or_else(|| panic!("no signaling.detail.{path}: {s:?}"))
}

fn addr(sock: &UdpSocket) -> SocketAddr {
    sock.local_addr().expect("bound socket")
}

/// The lab, both SIP peers and the media sockets, with the INVITE (the
/// caller's offer) delivered and the answer not yet sent.
struct Offered {
    lab: Lab,
    dialog: Dialog,
    caller_sip: SipPeer,
    callee_sip: SipPeer,
    caller: UdpSocket,
    callee: UdpSocket,
    /// The callee's host, another port.
    callee_other: UdpSocket,
    /// Another inside address.
    attacker: UdpSocket,
}

impl Offered {
    fn start(family: Family, daemon_args: &[&str]) -> anyhow::Result<Offered> {
        let mut args = vec!["--media-ports", "10000-20000", "--bye-grace", "0"];
        args.extend_from_slice(daemon_args);
        let lab = Lab::new(family, &args)?;
        let attacker_ip = attacker_address(family);
        lab.topo.inside.add_addr(
            Topology::INSIDE_IF,
            &format!("{attacker_ip}/{}", family.prefix_len()),
        )?;
        let (outside, inside) = (lab.ip(Host::Outside), lab.ip(Host::Inside));
        let caller_sip = SipPeer::bind(&lab.topo.outside, SocketAddr::new(outside, SIP_PORT))?;
        let callee_sip = SipPeer::bind(&lab.topo.inside, SocketAddr::new(inside, SIP_PORT))?;
        let caller = lab.udp(Host::Outside, CALLER_PORT)?;
        let callee = lab.udp(Host::Inside, CALLEE_PORT)?;
        let callee_other = lab.udp(Host::Inside, OTHER_PORT)?;
        let attacker = lab
            .topo
            .inside
            .udp_socket(SocketAddr::new(attacker_ip, CALLEE_PORT))?;
        let dialog = Dialog::new("early", caller_sip.addr(), callee_sip.addr());
        let offer = Sdp::muxed(addr(&caller));
        deliver(
            &caller_sip,
            &callee_sip,
            &dialog.invite(1, Some(&offer)),
            SIP_TIMEOUT,
        )?;
        Ok(Offered {
            lab,
            dialog,
            caller_sip,
            callee_sip,
            caller,
            callee,
            callee_other,
            attacker,
        })
    }

    fn owner(&self) -> Owner<'_> {
        Owner::Sip(&self.dialog.call_id)
    }

    /// The 200 OK answering with the callee's media at `port`, and the ACK.
    fn answer(&self, port: u16) -> anyhow::Result<()> {
        let answer = Sdp::muxed(SocketAddr::new(self.lab.ip(Host::Inside), port));
        deliver(
            &self.callee_sip,
            &self.caller_sip,
            &self.dialog.response(200, "OK", 1, "INVITE", Some(&answer)),
            SIP_TIMEOUT,
        )?;
        deliver(
            &self.caller_sip,
            &self.callee_sip,
            &self.dialog.ack(1),
            SIP_TIMEOUT,
        )?;
        Ok(())
    }

    /// `sock` (inside) sends a burst at the caller's media: all misses.
    fn dropped(&self, sock: &UdpSocket) -> anyhow::Result<()> {
        self.lab
            .assert_off_path_dropped(sock, &[], &self.caller, Host::Outside)?;
        Ok(())
    }

    /// Waits until the controller adopted `n` pre-answer latches.
    fn wait_latched(&self, n: u64) -> anyhow::Result<()> {
        wait_for("the pre-answer latch to be adopted", lab::TIMEOUT, || {
            let s = self.lab.signaling()?;
            Ok((detail(&s, "latching.counters.pre_answer.latched") == n).then_some(()))
        })?;
        Ok(())
    }

    fn bye(&self) -> anyhow::Result<()> {
        deliver(
            &self.caller_sip,
            &self.callee_sip,
            &self.dialog.bye(2),
            SIP_TIMEOUT,
        )?;
        self.lab.wait_gone(self.owner(), lab::TIMEOUT, "BYE")?;
        Ok(())
    }
}

/// Early media from the answered port latches, stays after the answer, and
/// nothing else gets in.
fn early_media_latches_and_the_answer_keeps_it(family: Family) -> TestResult {
    let t = Offered::start(family, &[])?;
    let s = t.lab.signaling()?;
    assert_eq!(detail(&s, "latching.counters.pre_answer.armed"), 1);
    assert_eq!(
        t.lab.daemon.list()?,
        vec![],
        "nothing open before the answer"
    );

    // Only the answerer's signaling address may latch.
    t.dropped(&t.attacker)?;
    assert_eq!(t.lab.daemon.counter("latched")?, 0);

    // The callee's packets before its answer: the first latches, all pass.
    t.lab.assert_passes(&t.callee, &t.caller)?;
    assert_eq!(t.lab.daemon.counter("latched")?, 1, "exactly one latch");
    t.wait_latched(1)?;
    // Strict once latched, even before the answer.
    t.dropped(&t.callee_other)?;

    t.answer(CALLEE_PORT)?;
    let (caller, callee) = (addr(&t.caller), addr(&t.callee));
    t.lab.wait_flows(
        t.owner(),
        &BTreeSet::from([(caller, callee), (callee, caller)]),
        "the answered pair",
    )?;
    let list = t.lab.owned_pinholes(t.owner())?;
    assert_eq!(list.len(), 1, "{list:?}");
    let s = t.lab.signaling()?;
    assert_eq!(detail(&s, "latching.counters.pre_answer.confirmed"), 1);
    assert_eq!(detail(&s, "latching.counters.pre_answer.superseded"), 0);
    assert_eq!(detail(&s, "latching.pending"), 0);

    t.lab.assert_passes(&t.callee, &t.caller)?;
    t.lab.assert_passes(&t.caller, &t.callee)?;
    t.dropped(&t.attacker)?;
    t.dropped(&t.callee_other)?;
    t.bye()?;
    Ok(())
}

/// Early media from b' with an answer naming b: b' is closed, b opens.
fn the_answer_supersedes_another_early_port(family: Family) -> TestResult {
    let t = Offered::start(family, &[])?;
    t.lab.assert_passes(&t.callee_other, &t.caller)?;
    t.wait_latched(1)?;
    // The latch made the early port's pair, and only that one.
    t.dropped(&t.callee)?;

    t.answer(CALLEE_PORT)?;
    let (caller, callee) = (addr(&t.caller), addr(&t.callee));
    t.lab.wait_flows(
        t.owner(),
        &BTreeSet::from([(caller, callee), (callee, caller)]),
        "only the answered pair",
    )?;
    let s = t.lab.signaling()?;
    assert_eq!(detail(&s, "latching.counters.pre_answer.superseded"), 1);
    t.lab
        .assert_dropped(&t.callee_other, &t.caller, Host::Outside)?;
    t.lab.assert_passes(&t.callee, &t.caller)?;
    t.lab.assert_passes(&t.caller, &t.callee)?;
    t.bye()?;
    Ok(())
}

/// `--pre-answer off`: the early packet is a miss; the answer opens.
fn off_drops_early_media(family: Family) -> TestResult {
    let t = Offered::start(family, &["--pre-answer", "off"])?;
    let s = t.lab.signaling()?;
    assert_eq!(detail(&s, "latching.counters.pre_answer.armed"), 0);
    t.dropped(&t.callee)?;
    assert_eq!(t.lab.daemon.counter("latched")?, 0);
    t.answer(CALLEE_PORT)?;
    t.lab.assert_passes(&t.callee, &t.caller)?;
    t.lab.assert_passes(&t.caller, &t.callee)?;
    t.bye()?;
    Ok(())
}

mod v4 {
    use super::*;

    #[test]
    fn early_media_latches_and_the_answer_keeps_it() -> TestResult {
        super::early_media_latches_and_the_answer_keeps_it(Family::V4)
    }

    #[test]
    fn the_answer_supersedes_another_early_port() -> TestResult {
        super::the_answer_supersedes_another_early_port(Family::V4)
    }

    #[test]
    fn off_drops_early_media() -> TestResult {
        super::off_drops_early_media(Family::V4)
    }
}

mod v6 {
    use super::*;

    #[test]
    fn early_media_latches_and_the_answer_keeps_it() -> TestResult {
        super::early_media_latches_and_the_answer_keeps_it(Family::V6)
    }

    #[test]
    fn the_answer_supersedes_another_early_port() -> TestResult {
        super::the_answer_supersedes_another_early_port(Family::V6)
    }

    #[test]
    fn off_drops_early_media() -> TestResult {
        super::off_drops_early_media(Family::V6)
    }
}
