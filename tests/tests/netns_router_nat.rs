//! NAT on the router that runs pinhole (README "NAT on the router"): the
//! three common setups, each with the daemon attached to the router's
//! outside interface only and the NAT rules in place before it starts.
//!
//! The router's outside address 192.0.2.1 plays the public address, the
//! inside network 198.51.100.0/24 the private one. XDP sees inbound media
//! addressed to 192.0.2.1 (before DNAT, before un-SNAT), while the queued
//! signaling names 198.51.100.2; `--nat 192.0.2.1=198.51.100.0/24` makes the
//! daemon read signaling as the outside sees it.
//!
//! - Masquerade, an inside caller announcing its private address, then one
//!   announcing its public address (as after STUN).
//! - A port-forwarded PBX inside (DNAT of 5060 and the media range) that
//!   announces the public address.
//! - Masquerade with the conntrack SIP helper (`nf_nat_sip` rewrites the
//!   SDP: checked on the outside).
//!
//! Each: the pinholes carry the public address, RTP passes both ways
//! ([`BURST`] datagrams each way, the inbound flow counts exactly
//! [`BURST`]), another outside port is dropped (`miss` rises by exactly
//! [`BURST`]), and BYE closes the call. Without `--nat`, each setup logs
//! the warning that says what to do, and (masquerade) the inbound media is
//! indeed dropped.
//!
//! IPv4 only: NAT66 is rare, and the translation is the same code for both
//! families (unit-tested in `capture::nat`). Needs root, nft and iptables.
//! Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test netns_router_nat`.

use std::{
    collections::BTreeSet,
    net::{IpAddr, SocketAddr, UdpSocket},
    time::Duration,
};

use pinhole_integration::{
    lab::{flow_packets, Host, Lab, Owner, BURST, TIMEOUT},
    sip_craft::{Dialog, Sdp, SipPeer, SIP_PORT},
    traffic, wait_for, Family, Topology,
};

type TestResult = anyhow::Result<()>;

/// Bound on a SIP message crossing the router.
const SIP_TIMEOUT: Duration = Duration::from_secs(5);
/// The inside UA's media port (kept by the NAT).
const INSIDE_PORT: u16 = 16000;
/// The outside UA's media port.
const OUTSIDE_PORT: u16 = 12000;
/// The table holding the router's NAT rules.
const TABLE: &str = "ph_rnat";
/// The inside network, as `--nat` and the rules name it.
const INSIDE_NET: &str = "198.51.100.0/24";

/// The router's public address.
fn public() -> IpAddr {
    Family::V4.router_outside()
}

/// The `--nat` value of the lab.
fn nat_arg() -> String {
    format!("{}={INSIDE_NET}", public())
}

/// The router's NAT setups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    /// Inside hosts masqueraded to the public address.
    Masquerade,
    /// Masquerade, and SIP and the media range forwarded to the inside host.
    PortForward,
    /// Masquerade and the conntrack SIP helper (`nf_nat_sip`).
    SipHelper,
}

impl Setup {
    /// The nft commands that configure it on the router.
    fn rules(self) -> Vec<String> {
        let mut r = vec![
            format!("add table ip {TABLE}"),
            format!("add chain ip {TABLE} post {{ type nat hook postrouting priority srcnat; }}"),
            format!(
                "add rule ip {TABLE} post oifname \"{}\" ip saddr {INSIDE_NET} masquerade",
                Topology::ROUTER_OUTSIDE_IF
            ),
        ];
        match self {
            Setup::Masquerade => {}
            Setup::PortForward => r.extend([
                format!("add chain ip {TABLE} pre {{ type nat hook prerouting priority dstnat; }}"),
                format!(
                    "add rule ip {TABLE} pre iifname \"{}\" udp dport {{ {SIP_PORT}, 10000-20000 }} dnat to {}",
                    Topology::ROUTER_OUTSIDE_IF,
                    Family::V4.inside()
                ),
            ]),
            Setup::SipHelper => r.extend([
                format!("add ct helper ip {TABLE} sip5060 {{ type \"sip\" protocol udp; }}"),
                format!("add chain ip {TABLE} helpers {{ type filter hook prerouting priority filter; }}"),
                format!("add rule ip {TABLE} helpers udp dport {SIP_PORT} ct helper set \"sip5060\""),
            ]),
        }
        r
    }

    /// A fragment of the warning that names its rule.
    fn rule_in_warning(self) -> &'static str {
        match self {
            Setup::Masquerade => "ip saddr 198.51.100.0/24 masquerade",
            Setup::PortForward => "dnat to 198.51.100.2",
            Setup::SipHelper => "the conntrack SIP helper (`type \"sip\" protocol udp`)",
        }
    }

    /// Whether the inside UA places the call (else the outside one calls
    /// the forwarded PBX).
    fn inside_calls(self) -> bool {
        self != Setup::PortForward
    }
}

/// The lab for `setup` with `daemon_args`: the daemon on the outside
/// interface, the NAT rules installed before it starts.
fn lab(setup: Setup, daemon_args: &[&str]) -> anyhow::Result<Lab> {
    let mut args = vec!["--media-ports", "10000-20000", "--bye-grace", "0"];
    args.extend_from_slice(daemon_args);
    let lab = Lab::outside_only(
        Family::V4,
        |topo| {
            for cmd in setup.rules() {
                topo.router.exec("nft", &[cmd.as_str()])?;
            }
            Ok(())
        },
        &args,
    )?;
    Ok(lab)
}

/// Waits until the daemon's log contains every one of `needles`; returns
/// the log.
fn wait_log(lab: &Lab, needles: &[&str]) -> anyhow::Result<String> {
    let mut log = String::new();
    let found = wait_for("the NAT advice in the daemon's log", TIMEOUT, || {
        log = lab.daemon.log();
        Ok(needles.iter().all(|n| log.contains(n)).then_some(()))
    });
    found.map_err(|e| anyhow::anyhow!("{e}; wanted {needles:?} in:\n{log}"))?;
    Ok(log)
}

/// Sends `msg` from `tx` to `to` and receives it on `rx`, which must see it
/// come from `from` (where the NAT puts it); returns it as received (the SIP
/// helper rewrites it). Delivered means the daemon handled it.
fn pass(
    tx: &SipPeer,
    to: SocketAddr,
    rx: &SipPeer,
    from: SocketAddr,
    msg: &str,
) -> anyhow::Result<String> {
    tx.send(to, msg)?;
    let (got, src) = rx.receive(1, SIP_TIMEOUT)?.remove(0);
    let first = |m: &str| m.lines().next().unwrap_or_default().to_owned();
    anyhow::ensure!(
        src == from && first(&got) == first(msg),
        "{} → {to}: expected `{}` from {from} on {}, got from {src}:\n{got}",
        tx.addr(),
        first(msg),
        rx.addr()
    );
    Ok(got)
}

/// The two UAs of a call through the router and their media sockets.
struct Call {
    dialog: Dialog,
    inside_sip: SipPeer,
    outside_sip: SipPeer,
    inside: UdpSocket,
    outside: UdpSocket,
    /// The INVITE as the callee received it.
    invite: String,
}

impl Call {
    /// Sets up a call between the inside UA (announcing `inside_sdp`) and
    /// the outside UA, placed from the side `setup` says, with media on
    /// ports `INSIDE_PORT + shift` and `OUTSIDE_PORT + shift`.
    fn establish(lab: &Lab, setup: Setup, inside_sdp: IpAddr, shift: u16) -> anyhow::Result<Call> {
        let public_sip = SocketAddr::new(public(), SIP_PORT);
        let inside_sip = SipPeer::bind(&lab.topo.inside, lab.addr(Host::Inside, SIP_PORT + shift))?;
        // The outside UA on the SIP port, so that the rules queue both ways.
        let outside_sip = SipPeer::bind(&lab.topo.outside, lab.addr(Host::Outside, SIP_PORT))?;
        let inside = lab.udp(Host::Inside, INSIDE_PORT + shift)?;
        let outside = lab.udp(Host::Outside, OUTSIDE_PORT + shift)?;
        let inside_media = Sdp::muxed(SocketAddr::new(inside_sdp, INSIDE_PORT + shift));
        let outside_media = Sdp::muxed(lab.addr(Host::Outside, OUTSIDE_PORT + shift));
        // Masquerade keeps the SIP port, so the inside UA appears as
        // public:its port; a port forward only forwards 5060.
        let inside_seen = SocketAddr::new(public(), inside_sip.addr().port());
        let name = format!("{setup:?}").to_lowercase();
        if setup.inside_calls() {
            let dialog = Dialog::new(&name, inside_sip.addr(), outside_sip.addr());
            let invite = pass(
                &inside_sip,
                outside_sip.addr(),
                &outside_sip,
                inside_seen,
                &dialog.invite(1, Some(&inside_media)),
            )?;
            let ok = dialog.response(200, "OK", 1, "INVITE", Some(&outside_media));
            pass(
                &outside_sip,
                inside_seen,
                &inside_sip,
                outside_sip.addr(),
                &ok,
            )?;
            pass(
                &inside_sip,
                outside_sip.addr(),
                &outside_sip,
                inside_seen,
                &dialog.ack(1),
            )?;
            Ok(Call {
                dialog,
                inside_sip,
                outside_sip,
                inside,
                outside,
                invite,
            })
        } else {
            anyhow::ensure!(shift == 0, "the port forward only forwards {SIP_PORT}");
            let dialog = Dialog::new(&name, outside_sip.addr(), public_sip);
            let invite = pass(
                &outside_sip,
                public_sip,
                &inside_sip,
                outside_sip.addr(),
                &dialog.invite(1, Some(&outside_media)),
            )?;
            let ok = dialog.response(200, "OK", 1, "INVITE", Some(&inside_media));
            pass(
                &inside_sip,
                outside_sip.addr(),
                &outside_sip,
                public_sip,
                &ok,
            )?;
            pass(
                &outside_sip,
                public_sip,
                &inside_sip,
                outside_sip.addr(),
                &dialog.ack(1),
            )?;
            Ok(Call {
                dialog,
                inside_sip,
                outside_sip,
                inside,
                outside,
                invite,
            })
        }
    }

    fn owner(&self) -> Owner<'_> {
        Owner::Sip(&self.dialog.call_id)
    }

    fn inside_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.inside.local_addr()?)
    }

    fn outside_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.outside.local_addr()?)
    }

    /// Where the outside sends the inside UA's media: public:its port.
    fn inside_public(&self) -> anyhow::Result<SocketAddr> {
        Ok(SocketAddr::new(public(), self.inside_addr()?.port()))
    }

    /// BYE from the caller, delivered through the router.
    fn bye(&self, setup: Setup) -> anyhow::Result<()> {
        let bye = self.dialog.bye(2);
        if setup.inside_calls() {
            let seen = SocketAddr::new(public(), self.inside_sip.addr().port());
            pass(
                &self.inside_sip,
                self.outside_sip.addr(),
                &self.outside_sip,
                seen,
                &bye,
            )?;
        } else {
            let public_sip = SocketAddr::new(public(), SIP_PORT);
            pass(
                &self.outside_sip,
                public_sip,
                &self.inside_sip,
                self.outside_sip.addr(),
                &bye,
            )?;
        }
        Ok(())
    }
}

/// [`BURST`] datagrams `tx → dst` arrive on `rx`, all from `from`.
fn burst_arrives(tx: &UdpSocket, dst: SocketAddr, rx: &UdpSocket, from: SocketAddr) -> TestResult {
    traffic::send(tx, dst, BURST)?;
    let got = traffic::receive(rx, BURST, TIMEOUT)?;
    anyhow::ensure!(
        got.data == BURST && got.senders == BTreeSet::from([from]),
        "{dst}: {} of {BURST} datagrams arrived, from {:?} (wanted {from})",
        got.data,
        got.senders
    );
    Ok(())
}

/// [`BURST`] datagrams `tx → dst` are dropped by XDP: `miss` rises by
/// exactly [`BURST`] and `rx` (inside) gets none before a marker.
fn burst_dropped(lab: &Lab, tx: &UdpSocket, dst: SocketAddr, rx: &UdpSocket) -> TestResult {
    let before = lab.daemon.counter("miss")?;
    traffic::send(tx, dst, BURST)?;
    lab.daemon
        .wait_counter("miss", before + u64::from(BURST), TIMEOUT)?;
    lab.send_marker(rx, Host::Inside)?;
    let got = traffic::receive_until_marker(rx, TIMEOUT)?;
    anyhow::ensure!(got.data == 0, "{} datagrams to {dst} passed", got.data);
    let after = lab.daemon.counter("miss")?;
    anyhow::ensure!(
        after == before + u64::from(BURST),
        "miss rose by {} for {BURST} datagrams to {dst}",
        after - before
    );
    Ok(())
}

/// The call's pinholes are the public pair; media passes both ways (the
/// side the NAT needs first sends first), the inbound flow counts exactly
/// [`BURST`] (XDP sees no egress); another outside port is dropped; BYE
/// closes it all.
fn media_through_nat(lab: &Lab, setup: Setup, call: &Call) -> TestResult {
    let (inside, outside, inside_public) = (
        call.inside_addr()?,
        call.outside_addr()?,
        call.inside_public()?,
    );
    let want = BTreeSet::from([(outside, inside_public), (inside_public, outside)]);
    let counts = lab.wait_flows(call.owner(), &want, "the call's public pair")?;
    anyhow::ensure!(counts.values().all(|&n| n == 0), "{counts:?}");
    // Masquerade only lets the outside in after the inside sent; the port
    // forward lets the outside in first.
    let inbound = || burst_arrives(&call.outside, inside_public, &call.inside, outside);
    let outbound = || burst_arrives(&call.inside, outside, &call.outside, inside_public);
    if setup.inside_calls() {
        outbound()?;
        inbound()?;
    } else {
        inbound()?;
        outbound()?;
    }
    lab.wait_packets(call.owner(), (outside, inside_public), u64::from(BURST))?;
    let counts = flow_packets(&lab.owned_pinholes(call.owner())?);
    let want_counts = [
        ((outside, inside_public), u64::from(BURST)),
        ((inside_public, outside), 0),
    ];
    anyhow::ensure!(
        counts == want_counts.into_iter().collect(),
        "flow counts {counts:?}, wanted {want_counts:?} (inside {inside})"
    );
    // The same outside host from another port: no pinhole.
    let stray = lab.udp(Host::Outside, outside.port() + 2)?;
    burst_dropped(lab, &stray, inside_public, &call.inside)?;
    call.bye(setup)?;
    lab.wait_gone(call.owner(), TIMEOUT, "BYE")?;
    Ok(())
}

#[test]
fn masquerade_private_and_stun_sdp() -> TestResult {
    let nat = nat_arg();
    let lab = lab(Setup::Masquerade, &["--nat", &nat])?;
    wait_log(
        &lab,
        &[
            "NAT on this router",
            "signaling is read as the outside sees it",
            &nat,
        ],
    )?;
    // The phone announces its private address…
    let call = Call::establish(&lab, Setup::Masquerade, Family::V4.inside(), 0)?;
    media_through_nat(&lab, Setup::Masquerade, &call)?;
    drop(call);
    // …or the public one it learnt by STUN (another SIP and media port).
    let call = Call::establish(&lab, Setup::Masquerade, public(), 10)?;
    media_through_nat(&lab, Setup::Masquerade, &call)
}

#[test]
fn port_forwarded_pbx() -> TestResult {
    let nat = nat_arg();
    let lab = lab(Setup::PortForward, &["--nat", &nat])?;
    wait_log(&lab, &["NAT on this router", "dnat to 198.51.100.2", &nat])?;
    // The PBX announces the public address (its "external address").
    let call = Call::establish(&lab, Setup::PortForward, public(), 0)?;
    media_through_nat(&lab, Setup::PortForward, &call)
}

#[test]
fn sip_helper_with_masquerade() -> TestResult {
    let nat = nat_arg();
    let lab = lab(Setup::SipHelper, &["--nat", &nat])?;
    wait_log(&lab, &["NAT on this router", "conntrack SIP helper", &nat])?;
    let call = Call::establish(&lab, Setup::SipHelper, Family::V4.inside(), 0)?;
    // nf_nat_sip rewrote the private SDP on its way out, keeping the port.
    let c_line = format!("c=IN IP4 {}", public());
    let m_line = format!("m=audio {INSIDE_PORT} ");
    anyhow::ensure!(
        call.invite.contains(&c_line) && call.invite.contains(&m_line),
        "the SIP helper did not rewrite the SDP to {c_line}, {m_line}:\n{}",
        call.invite
    );
    media_through_nat(&lab, Setup::SipHelper, &call)
}

#[test]
fn without_nat_flag_each_setup_warns_and_media_is_dropped() -> TestResult {
    for setup in [Setup::Masquerade, Setup::PortForward, Setup::SipHelper] {
        let lab = lab(setup, &[])?;
        let log = wait_log(
            &lab,
            &[
                "WARN",
                "NAT on this router",
                "lose their inbound media",
                "Run with --nat PUBLIC=INSIDE_CIDR",
                setup.rule_in_warning(),
            ],
        )?;
        anyhow::ensure!(
            log.matches("NAT on this router").count() == 1,
            "{setup:?}: one warning expected:\n{log}"
        );
        if setup == Setup::Masquerade {
            // What the warning says: the pinholes name the private address,
            // inbound media comes to the public one and is dropped.
            let call = Call::establish(&lab, setup, Family::V4.inside(), 0)?;
            let (inside, outside) = (call.inside_addr()?, call.outside_addr()?);
            let want = BTreeSet::from([(outside, inside), (inside, outside)]);
            lab.wait_flows(call.owner(), &want, "the call's private pair")?;
            let inside_public = call.inside_public()?;
            burst_arrives(&call.inside, outside, &call.outside, inside_public)?;
            burst_dropped(&lab, &call.outside, inside_public, &call.inside)?;
        }
    }
    Ok(())
}
