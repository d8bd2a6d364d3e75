//! Interface churn in network namespaces: the router's outside interface
//! goes down and up, or is deleted and re-created, while the daemon runs
//! (the standard topology, XDP on both router interfaces, native and skb
//! mode, pinholes open for IPv4 and IPv6).
//!
//! * Down and up: the daemon logs both and stays up; the program stays
//!   attached (the same program id on the interface throughout), and
//!   afterwards the open pinholes pass media both ways and a stranger is
//!   dropped.
//! * Deleted and re-created (same name, new ifindex, the peer back in the
//!   outside namespace, addresses and routes again): the daemon logs it,
//!   reports the interface absent and then attached to the new ifindex
//!   (where `ip -d link` shows its program), keeps its pinholes (they pass,
//!   a stranger is dropped on the new interface), and a SIP call set up over
//!   the new interface opens its media (the signaling capture rules match
//!   the interface by name).
//! * With `--keep-pinned`: the re-created interface's link is pinned in
//!   place of the old one; a restarted daemon takes it over, and `pinhole
//!   detach` removes the filter afterwards.
//!
//! Every wait is a bounded poll of `pinhole stats --json` or of the daemon's
//! log. Needs root. Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test netns_churn`.

use std::{
    collections::BTreeSet,
    net::{SocketAddr, UdpSocket},
    process::Command,
    time::Duration,
};

use pinhole_integration::{
    bpffs::PinFs,
    pinhole_bin, run_bounded,
    sip_craft::{self, Dialog, Sdp, SipPeer, SIP_PORT},
    traffic, wait_for, Daemon, Family, InterfaceState, Netns, TempDir, Topology, XdpMode,
};

/// Datagrams per burst.
const N: u32 = 32;
/// Media ports: outside (A) and inside (B), in the default range.
const A_PORT: u16 = 12000;
const B_PORT: u16 = 10000;
/// A stranger's port on the outside host.
const STRANGER_PORT: u16 = 12002;
/// Bound on waiting for datagrams, counters, log lines and state.
const TIMEOUT: Duration = Duration::from_secs(10);
const OUT_IF: &str = Topology::ROUTER_OUTSIDE_IF;

type TestResult = anyhow::Result<()>;

/// The XDP program id `ip -d link show` reports on `dev` in `ns`.
fn xdp_prog_id(ns: &Netns, dev: &str) -> anyhow::Result<Option<u32>> {
    let out = ns.ip(&["-d", "link", "show", "dev", dev])?;
    Ok(out.find("prog/xdp id ").and_then(|at| {
        out[at + "prog/xdp id ".len()..]
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }))
}

/// The interface's state as the daemon reports it.
fn iface(daemon: &Daemon, name: &str) -> anyhow::Result<InterfaceState> {
    Ok(daemon.stats()?.interface(name)?.clone())
}

/// Waits until the daemon reports `name` in a state `ok` accepts.
fn wait_iface(
    daemon: &Daemon,
    name: &str,
    what: &str,
    ok: impl Fn(&InterfaceState) -> bool,
) -> anyhow::Result<InterfaceState> {
    let mut last = None;
    let r = wait_for(&format!("{name} {what}"), TIMEOUT, || {
        let s =
            iface(daemon, name).map_err(|e| pinhole_integration::Error::Setup(e.to_string()))?;
        let done = ok(&s);
        last = Some(s.clone());
        Ok(done.then_some(s))
    });
    r.map_err(|e| anyhow::anyhow!("{e}; last state {last:?}\nlog:\n{}", daemon.log()))
}

/// Waits until the daemon's log has a line containing `needle`.
fn wait_log(daemon: &Daemon, needle: &str) -> TestResult {
    wait_for(&format!("`{needle}` in the daemon log"), TIMEOUT, || {
        Ok(daemon.log().contains(needle).then_some(()))
    })
    .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", daemon.log()))
}

/// One pinhole per family between the outside and the inside host.
struct Streams {
    family: Family,
    outside: UdpSocket,
    inside: UdpSocket,
    stranger: UdpSocket,
}

impl Streams {
    fn a(&self) -> SocketAddr {
        SocketAddr::new(self.family.outside(), A_PORT)
    }

    fn b(&self) -> SocketAddr {
        SocketAddr::new(self.family.inside(), B_PORT)
    }
}

/// One test's world. Field order is drop order: the daemon stops before
/// the namespaces go away.
struct Case {
    daemon: Option<Daemon>,
    topo: Topology,
    streams: Vec<Streams>,
}

impl Case {
    /// The topology with the daemon on the router (`extra` run flags), and
    /// one open pinhole per family, checked to pass.
    fn new(mode: XdpMode, extra: &[&str]) -> anyhow::Result<Case> {
        let topo = Topology::new()?;
        // IPv6 addresses survive the interface going down, as IPv4 ones do.
        topo.router
            .sysctl(&format!("net.ipv6.conf.{OUT_IF}.keep_addr_on_down"), "1")?;
        let daemon = topo.start_daemon(mode, extra)?;
        let mut streams = Vec::new();
        for family in Family::ALL {
            let s = Streams {
                family,
                outside: topo
                    .outside
                    .udp_socket(SocketAddr::new(family.outside(), A_PORT))?,
                inside: topo
                    .inside
                    .udp_socket(SocketAddr::new(family.inside(), B_PORT))?,
                stranger: topo
                    .outside
                    .udp_socket(SocketAddr::new(family.outside(), STRANGER_PORT))?,
            };
            daemon.open(s.a(), s.b(), &["--idle", "0"])?;
            streams.push(s);
        }
        let c = Case {
            daemon: Some(daemon),
            topo,
            streams,
        };
        c.assert_filtering("before any churn")?;
        Ok(c)
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("a daemon runs")
    }

    /// Every pinhole passes N datagrams each way, and N datagrams from a
    /// stranger to the inside endpoint are dropped (counted as misses,
    /// none received before a marker sent after them).
    fn assert_filtering(&self, when: &str) -> TestResult {
        let d = self.daemon();
        for s in &self.streams {
            for (tx, rx) in [(&s.outside, &s.inside), (&s.inside, &s.outside)] {
                let (src, dst) = (tx.local_addr()?, rx.local_addr()?);
                traffic::send(tx, dst, N)?;
                let got = traffic::receive(rx, N, TIMEOUT)?;
                anyhow::ensure!(
                    got.data == N && got.senders == BTreeSet::from([src]),
                    "{when}: {src} → {dst} through the pinhole: {got:?} of {N}"
                );
            }
            let before = d.counter("miss")?;
            traffic::send(&s.stranger, s.b(), N)?;
            d.wait_counter("miss", before + u64::from(N), TIMEOUT)?;
            let marker = self
                .topo
                .router
                .udp_socket(SocketAddr::new(s.family.router_inside(), 0))?;
            traffic::send_marker(&marker, s.b())?;
            let got = traffic::receive_until_marker(&s.inside, TIMEOUT)?;
            anyhow::ensure!(
                got.data == 0,
                "{when}: {} datagrams of a stranger got through to {}",
                got.data,
                s.b()
            );
            anyhow::ensure!(
                d.counter("miss")? == before + u64::from(N),
                "{when}: the miss counter must rise by exactly {N}"
            );
        }
        let list = d.list()?;
        anyhow::ensure!(
            list.len() == self.streams.len(),
            "{when}: the pinholes are {list:#?}"
        );
        Ok(())
    }

    fn assert_running(&mut self) -> TestResult {
        let d = self.daemon.as_mut().expect("a daemon runs");
        anyhow::ensure!(d.is_running(), "the daemon exited; log:\n{}", d.log());
        Ok(())
    }
}

fn down_up_keeps_the_filter(mode: XdpMode) -> TestResult {
    let mut c = Case::new(mode, &[])?;
    let prog = xdp_prog_id(&c.topo.router, OUT_IF)?
        .ok_or_else(|| anyhow::anyhow!("no XDP program on {OUT_IF}"))?;
    let before = wait_iface(c.daemon(), OUT_IF, "attached and up", |s| {
        s.state == "attached" && s.up == Some(true)
    })?;
    assert_eq!(before.mode, mode.arg());

    c.topo.router.ip(&["link", "set", OUT_IF, "down"])?;
    wait_log(
        c.daemon(),
        &format!("iface {OUT_IF} down; XDP stays attached"),
    )?;
    wait_iface(c.daemon(), OUT_IF, "down", |s| s.up == Some(false))?;
    assert_eq!(
        xdp_prog_id(&c.topo.router, OUT_IF)?,
        Some(prog),
        "the program stays attached while the interface is down"
    );

    c.topo.router.ip(&["link", "set", OUT_IF, "up"])?;
    wait_log(c.daemon(), &format!("iface {OUT_IF} up"))?;
    let after = wait_iface(c.daemon(), OUT_IF, "up", |s| s.up == Some(true))?;
    assert_eq!(
        (after.state.as_str(), after.ifindex, after.reattached),
        ("attached", before.ifindex, 0),
        "{after:?}"
    );
    assert_eq!(xdp_prog_id(&c.topo.router, OUT_IF)?, Some(prog));

    c.topo.check_forwarding()?;
    c.assert_filtering("after down and up")?;
    c.assert_running()?;
    let log = c.daemon().log();
    assert!(!log.contains(" ERROR "), "errors logged:\n{log}");
    Ok(())
}

fn recreated_interface_is_attached_again(mode: XdpMode) -> TestResult {
    let mut c = Case::new(mode, &[])?;
    let old = iface(c.daemon(), OUT_IF)?;
    let prog = xdp_prog_id(&c.topo.router, Topology::ROUTER_INSIDE_IF)?
        .ok_or_else(|| anyhow::anyhow!("no XDP program on the inside interface"))?;

    c.topo.router.ip(&["link", "del", OUT_IF])?;
    wait_log(
        c.daemon(),
        &format!("iface {OUT_IF} deleted; its XDP link is gone"),
    )?;
    let gone = wait_iface(c.daemon(), OUT_IF, "absent", |s| s.state == "absent")?;
    assert_eq!(gone.ifindex, None);
    c.assert_running()?;
    // The pinholes stay, with their counters.
    assert_eq!(c.daemon().list()?.len(), c.streams.len());

    c.topo.rewire_router_outside()?;
    let new = wait_iface(c.daemon(), OUT_IF, "attached again", |s| {
        s.state == "attached" && s.reattached == 1
    })?;
    assert_ne!(new.ifindex, old.ifindex, "a re-created interface");
    assert_eq!(new.mode, mode.arg());
    wait_log(c.daemon(), &format!("iface {OUT_IF} re-attached"))?;
    assert_eq!(
        xdp_prog_id(&c.topo.router, OUT_IF)?,
        Some(prog),
        "the daemon's program (the one on the inside interface) is on the new interface"
    );
    let link = c.topo.router.ip(&["-d", "link", "show", "dev", OUT_IF])?;
    let attr = if mode == XdpMode::Native {
        " xdp "
    } else {
        " xdpgeneric "
    };
    assert!(link.contains(attr), "{mode:?} attachment expected:\n{link}");
    assert!(
        link.starts_with(&format!("{}:", new.ifindex.unwrap())),
        "{link}"
    );

    c.assert_filtering("after the interface was re-created")?;

    // Signaling over the new interface is still captured: a call opens
    // its media.
    let caller = SipPeer::bind(
        &c.topo.outside,
        SocketAddr::new(Family::V4.outside(), SIP_PORT),
    )?;
    let callee = SipPeer::bind(
        &c.topo.inside,
        SocketAddr::new(Family::V4.inside(), SIP_PORT),
    )?;
    let offer = Sdp::muxed(SocketAddr::new(Family::V4.outside(), 16000));
    let answer = Sdp::muxed(SocketAddr::new(Family::V4.inside(), 16010));
    let dialog = Dialog::new("churn", caller.addr(), callee.addr());
    sip_craft::establish(&caller, &callee, &dialog, &offer, &answer, TIMEOUT)?;
    let calls = c.daemon().calls()?;
    assert!(
        calls.iter().any(|call| call.call_id == dialog.call_id),
        "the call over the re-created interface is followed: {calls:#?}"
    );
    let a = c.topo.outside.udp_socket(offer.media)?;
    let b = c.topo.inside.udp_socket(answer.media)?;
    traffic::send(&a, answer.media, N)?;
    assert_eq!(
        traffic::receive(&b, N, TIMEOUT)?.data,
        N,
        "the call's media"
    );

    c.assert_running()?;
    let log = c.daemon().log();
    assert!(!log.contains(" ERROR "), "errors logged:\n{log}");
    Ok(())
}

/// The (link id, program id) of the XDP link pinned at `pin`, from
/// bpftool (which does not show an XDP link's interface).
fn pinned_link(pin: &std::path::Path) -> anyhow::Result<(u64, u64)> {
    let mut cmd = Command::new("bpftool");
    cmd.args(["-j", "link", "show", "pinned"]).arg(pin);
    let out = run_bounded(&mut cmd, TIMEOUT)?.ok()?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    match (v["type"].as_str(), v["id"].as_u64(), v["prog_id"].as_u64()) {
        (Some("xdp"), Some(id), Some(prog)) => Ok((id, prog)),
        _ => anyhow::bail!("not an XDP link: {out}"),
    }
}

fn recreated_interface_with_kept_pins(mode: XdpMode) -> TestResult {
    let pins = PinFs::new()?;
    let state = TempDir::new()?;
    let state_file = state.path().join("state.json");
    let pin_dir = pins.pin_dir();
    let args_owned = [
        "--signaling".to_string(),
        "off".into(),
        "--keep-pinned".into(),
        "--pin-dir".into(),
        pin_dir.to_string_lossy().into_owned(),
        "--state-file".into(),
        state_file.to_string_lossy().into_owned(),
    ];
    let args: Vec<&str> = args_owned.iter().map(String::as_str).collect();
    let mut c = Case::new(mode, &args)?;
    let link_pin = pin_dir.join(format!("link_{}_{OUT_IF}", mode.arg()));
    let prog = u64::from(
        xdp_prog_id(&c.topo.router, OUT_IF)?
            .ok_or_else(|| anyhow::anyhow!("no XDP program on {OUT_IF}"))?,
    );
    let (old_link, pinned_prog) = pinned_link(&link_pin)?;
    assert_eq!(pinned_prog, prog, "the pinned link is the one on {OUT_IF}");

    c.topo.router.ip(&["link", "del", OUT_IF])?;
    wait_iface(c.daemon(), OUT_IF, "absent", |s| s.state == "absent")?;
    anyhow::ensure!(
        !link_pin.exists(),
        "the defunct link's pin {} is removed",
        link_pin.display()
    );
    c.topo.rewire_router_outside()?;
    let new = wait_iface(c.daemon(), OUT_IF, "attached again", |s| {
        s.state == "attached" && s.reattached == 1
    })?;
    let (new_link, pinned_prog) = pinned_link(&link_pin)?;
    assert!(
        new_link != old_link && pinned_prog == prog,
        "a new link of the same program is pinned in place of the old one: \
         link {old_link} → {new_link}, program {prog} → {pinned_prog}"
    );
    c.assert_filtering("after the interface was re-created")?;

    // A restart keeps the filter and takes the new link over.
    let daemon = c.daemon.take().expect("a daemon runs");
    let log = daemon.log();
    let status = daemon.stop()?;
    anyhow::ensure!(status.success(), "the daemon exited {status}; log:\n{log}");
    let prog = xdp_prog_id(&c.topo.router, OUT_IF)?;
    anyhow::ensure!(prog.is_some(), "kept pinned: the filter stays on {OUT_IF}");
    c.daemon = Some(c.topo.start_daemon(mode, &args)?);
    // Taken over only if the pinned link is attached to the interface of
    // that name now (the loader compares the link's ifindex).
    wait_log(
        c.daemon(),
        "pinned XDP link taken over, program replaced atomically iface=r-out",
    )?;
    let log = c.daemon().log();
    assert!(!log.contains("defunct"), "{log}");
    assert_eq!(
        iface(c.daemon(), OUT_IF)?.ifindex,
        new.ifindex,
        "the restarted daemon is attached to the re-created interface"
    );
    c.assert_filtering("after a restart")?;

    // Shutdown and detach still work.
    let daemon = c.daemon.take().expect("a daemon runs");
    let log = daemon.log();
    let status = daemon.stop()?;
    anyhow::ensure!(status.success(), "the daemon exited {status}; log:\n{log}");
    let mut cmd = Command::new(pinhole_bin());
    cmd.arg("detach")
        .arg("--pin-dir")
        .arg(&pin_dir)
        .arg("--state-file")
        .arg(&state_file);
    let out = run_bounded(&mut cmd, TIMEOUT)?.ok()?;
    let want = format!(
        "detached from {} ({m}), {OUT_IF} ({m})",
        Topology::ROUTER_INSIDE_IF,
        m = mode.arg()
    );
    assert!(out.contains(&want), "`pinhole detach` said: {out}");
    assert_eq!(xdp_prog_id(&c.topo.router, OUT_IF)?, None);
    assert_eq!(
        xdp_prog_id(&c.topo.router, Topology::ROUTER_INSIDE_IF)?,
        None
    );
    Ok(())
}

macro_rules! churn_cases {
    ($mode:expr) => {
        use super::*;

        #[test]
        fn down_up_keeps_the_filter() -> TestResult {
            super::down_up_keeps_the_filter($mode)
        }

        #[test]
        fn recreated_interface_is_attached_again() -> TestResult {
            super::recreated_interface_is_attached_again($mode)
        }

        #[test]
        fn recreated_interface_with_kept_pins() -> TestResult {
            super::recreated_interface_with_kept_pins($mode)
        }
    };
}

mod native {
    churn_cases!(XdpMode::Native);
}
mod skb {
    churn_cases!(XdpMode::Skb);
}
