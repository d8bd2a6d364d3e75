//! SIP end to end: real sipp calls from the outside host (caller) to the
//! inside host (callee) through the router running `pinhole` with inline
//! signaling (NFQUEUE) and XDP on both router interfaces.
//!
//! Every case checks the daemon's own view (`list --json`: the call's
//! pinholes, owned by `sip:<call-id>`, appear and vanish as the signaling
//! says) and packets: RTP passed both ways (per-flow counters), and an
//! off-path sender on the caller's host, blasting the callee's media ports
//! from another source port while the call is up, is dropped (the `miss`
//! counter rises by exactly what it sent, and the receiver got nothing).
//!
//! The scenarios (tests/sipp) wait for the test at `<recv request="INFO"/>`
//! (see `SipCall::trigger_caller`), so no step depends on a timer.
//!
//! Needs root, sipp and iptables. Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test netns_sip`.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use pinhole_integration::{
    sipp::{
        flow_packets, is_sip_owner, port_plus, stream_flows, CallSpec, Scenarios, SipCall,
        Transport,
    },
    traffic, wait_for, Daemon, Error, Family, Pinhole, SignalingStats, Topology, XdpMode,
};

/// Datagrams per burst of test traffic.
const N: u32 = 32;
/// Bound on waiting for pinholes, counters and datagrams.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a sipp agent finishing its scenario once nothing holds it.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Pinholes of a call stay this long after its BYE (`--bye-grace`).
const BYE_GRACE: Duration = Duration::from_secs(3);
/// RTP packets each way that show media flows.
const MIN_RTP: u64 = 5;
/// The off-path sender's source port, on the caller's host.
const OFF_PATH_PORT: u16 = 16010;
/// A second port the callee answers with (re-INVITE, forking).
const OTHER_CALLEE_PORT: u16 = 12100;

type TestResult = anyhow::Result<()>;
type FlowSet = BTreeSet<(SocketAddr, SocketAddr)>;

/// Which host a socket lives on.
#[derive(Clone, Copy, Debug)]
enum Host {
    Outside,
    Inside,
}

/// One test's world. Field order matters: the daemon stops before the
/// namespaces go away.
struct Lab {
    daemon: Daemon,
    topo: Topology,
    files: Scenarios,
    family: Family,
}

impl Lab {
    fn new(family: Family) -> anyhow::Result<Lab> {
        let topo = Topology::new()?;
        let grace = BYE_GRACE.as_secs().to_string();
        let daemon = topo.start_daemon(
            XdpMode::Native,
            &["--media-ports", "10000-20000", "--bye-grace", &grace],
        )?;
        Ok(Lab {
            daemon,
            topo,
            files: Scenarios::new()?,
            family,
        })
    }

    fn start(&self, spec: &CallSpec) -> anyhow::Result<SipCall> {
        Ok(SipCall::start(&self.topo, &self.files, spec)?)
    }

    fn signaling(&self) -> pinhole_integration::Result<SignalingStats> {
        self.daemon.stats()?.signaling.ok_or_else(|| {
            Error::Setup("`stats --json` has no `signaling` object; is inline signaling on?".into())
        })
    }

    /// Every pinhole, checking that each is owned by the call.
    fn call_pinholes(&self, call: &SipCall) -> pinhole_integration::Result<Vec<Pinhole>> {
        let list = self.daemon.list()?;
        for p in &list {
            if !is_sip_owner(p.owner.as_deref(), &call.call_id) {
                return Err(Error::Setup(format!(
                    "pinhole {} ↔ {} is owned by {:?}, not by sip:{}",
                    p.a, p.b, p.owner, call.call_id
                )));
            }
        }
        Ok(list)
    }

    /// Waits until the call's pinholes carry exactly the flows `want`, then
    /// returns their packet counts.
    fn wait_flows(
        &self,
        call: &SipCall,
        want: &FlowSet,
        what: &str,
    ) -> anyhow::Result<BTreeMap<(SocketAddr, SocketAddr), u64>> {
        let mut last = BTreeMap::new();
        let got = wait_for(what, TIMEOUT, || {
            let flows = flow_packets(&self.call_pinholes(call)?);
            let keys: FlowSet = flows.keys().copied().collect();
            if &keys == want {
                return Ok(Some(flows));
            }
            last = flows;
            Ok(None)
        });
        got.map_err(|e| {
            anyhow::anyhow!(
                "{e}\nwanted flows {want:#?}\nlast seen {last:#?}\n{}",
                call.logs()
            )
        })
    }

    /// Waits until the flow `src → dst` has passed at least `n` packets.
    fn wait_packets(
        &self,
        call: &SipCall,
        (src, dst): (SocketAddr, SocketAddr),
        n: u64,
    ) -> anyhow::Result<u64> {
        let mut last = None;
        let got = wait_for(&format!("{n} packets {src} → {dst}"), TIMEOUT, || {
            let flows = flow_packets(&self.call_pinholes(call)?);
            last = flows.get(&(src, dst)).copied();
            Ok(last.filter(|&p| p >= n))
        });
        got.map_err(|e| anyhow::anyhow!("{e} (last count {last:?})\n{}", call.logs()))
    }

    /// Waits until no pinhole is left.
    fn wait_gone(&self, call: &SipCall, why: &str) -> anyhow::Result<()> {
        wait_for(
            &format!("the pinholes of {} to close ({why})", call.call_id),
            TIMEOUT + BYE_GRACE,
            || Ok(self.call_pinholes(call)?.is_empty().then_some(())),
        )?;
        let stats = self.daemon.stats()?;
        assert_eq!((stats.pinholes, stats.flows.used), (0, 0), "{why}");
        Ok(())
    }

    fn udp(&self, host: Host, addr: SocketAddr) -> anyhow::Result<UdpSocket> {
        let ns = match host {
            Host::Outside => &self.topo.outside,
            Host::Inside => &self.topo.inside,
        };
        Ok(ns.udp_socket(addr)?)
    }

    /// Sends a marker to `rx` (on `host`) from the router, whose own traffic
    /// crosses no XDP ingress: everything sent to `rx` before it has been
    /// delivered or dropped once it arrives.
    fn send_marker(&self, rx: &UdpSocket, host: Host) -> TestResult {
        let router_ip = match host {
            Host::Outside => self.family.router_outside(),
            Host::Inside => self.family.router_inside(),
        };
        let sock = self.topo.router.udp_socket(SocketAddr::new(router_ip, 0))?;
        traffic::send_marker(&sock, rx.local_addr()?)?;
        Ok(())
    }

    /// The off-path check: from the caller's host but another source port,
    /// [`N`] datagrams at the callee's RTP port (sipp's) and [`N`] at its
    /// RTCP port (`callee_rtcp`, the test's socket). The `miss` counter rises
    /// by exactly 2N and the RTCP socket receives none of them.
    fn assert_off_path_dropped(
        &self,
        callee_rtp: SocketAddr,
        callee_rtcp: &UdpSocket,
    ) -> TestResult {
        let intruder = self.udp(
            Host::Outside,
            SocketAddr::new(self.family.outside(), OFF_PATH_PORT),
        )?;
        let before = self.daemon.counter("miss")?;
        traffic::send(&intruder, callee_rtp, N)?;
        traffic::send(&intruder, callee_rtcp.local_addr()?, N)?;
        let want = before + 2 * u64::from(N);
        self.daemon.wait_counter("miss", want, TIMEOUT)?;
        self.send_marker(callee_rtcp, Host::Inside)?;
        let got = traffic::receive_until_marker(callee_rtcp, TIMEOUT)?;
        assert_eq!(got.data, 0, "off-path datagrams reached the callee");
        assert_eq!(
            self.daemon.counter("miss")?,
            want,
            "the miss counter must rise by exactly the {} off-path datagrams",
            2 * N
        );
        Ok(())
    }

    /// [`N`] datagrams `tx → rx` (on `rx_host`) are dropped: none arrive
    /// before a marker, and `miss` rises by at least N (media of the call
    /// itself may still be in flight towards a closed pair).
    fn assert_dropped(&self, tx: &UdpSocket, rx: &UdpSocket, rx_host: Host) -> TestResult {
        let before = self.daemon.counter("miss")?;
        traffic::send(tx, rx.local_addr()?, N)?;
        self.daemon
            .wait_counter("miss", before + u64::from(N), TIMEOUT)?;
        self.send_marker(rx, rx_host)?;
        let got = traffic::receive_until_marker(rx, TIMEOUT)?;
        assert_eq!(
            got.data,
            0,
            "{} → {}: datagrams passed a closed pinhole",
            tx.local_addr()?,
            rx.local_addr()?
        );
        Ok(())
    }

    /// [`N`] datagrams `tx → rx` all arrive.
    fn assert_passes(&self, tx: &UdpSocket, rx: &UdpSocket) -> TestResult {
        let (src, dst) = (tx.local_addr()?, rx.local_addr()?);
        traffic::send(tx, dst, N)?;
        let got = traffic::receive(rx, N, TIMEOUT)?;
        assert_eq!(got.data, N, "{src} → {dst}: datagrams lost");
        Ok(())
    }

    /// The test's sockets on the RTCP ports of the call's first stream.
    fn rtcp_sockets(&self, call: &SipCall) -> anyhow::Result<(UdpSocket, UdpSocket)> {
        Ok((
            self.udp(Host::Outside, port_plus(call.caller_media, 1))?,
            self.udp(Host::Inside, port_plus(call.callee_media, 1))?,
        ))
    }

    /// After the call: its pinholes are gone, the RTCP pair drops again, and
    /// the signaling counters saw exactly one call open and close, without
    /// parse errors.
    fn assert_closed(
        &self,
        call: &SipCall,
        before: &SignalingStats,
        rtcp: &(UdpSocket, UdpSocket),
        why: &str,
    ) -> TestResult {
        self.wait_gone(call, why)?;
        self.assert_dropped(&rtcp.1, &rtcp.0, Host::Outside)?;
        let after = self.signaling()?;
        assert_eq!(
            after.calls_opened - before.calls_opened,
            1,
            "{why}: calls opened"
        );
        let closed = wait_for("the call to be counted closed", TIMEOUT, || {
            let s = self.signaling()?;
            Ok((s.calls_closed > before.calls_closed).then_some(s))
        })?;
        assert_eq!(
            closed.calls_closed - before.calls_closed,
            1,
            "{why}: calls closed"
        );
        assert_eq!(closed.calls_active, 0, "{why}: calls active");
        assert!(
            closed.sip_messages > before.sip_messages,
            "{why}: no SIP seen"
        );
        assert_eq!(
            closed.parse_errors, before.parse_errors,
            "{why}: parse errors"
        );
        Ok(())
    }
}

fn set(flows: impl IntoIterator<Item = (SocketAddr, SocketAddr)>) -> FlowSet {
    flows.into_iter().collect()
}

/// INVITE/100/180/200/ACK, RTP both ways, BYE/200: the pinholes stay for
/// the BYE grace, then close.
fn plain_call(family: Family, transport: Transport) -> TestResult {
    let lab = Lab::new(family)?;
    let before = lab.signaling()?;
    let mut call = lab.start(&CallSpec::new("call", family, transport))?;
    let rtcp = lab.rtcp_sockets(&call)?;
    let (c, e) = (call.caller_media, call.callee_media);

    lab.wait_flows(&call, &set(stream_flows(c, e)), "the call's pinholes")?;
    lab.wait_packets(&call, (c, e), MIN_RTP)?;
    lab.wait_packets(&call, (e, c), MIN_RTP)?;
    lab.assert_off_path_dropped(e, &rtcp.1)?;
    // RTCP passes both ways on the RTCP pair.
    lab.assert_passes(&rtcp.0, &rtcp.1)?;
    lab.assert_passes(&rtcp.1, &rtcp.0)?;
    assert_eq!(lab.signaling()?.calls_active, 1);

    call.trigger_caller(&lab.topo)?; // BYE
    call.uac.wait(CALL_TIMEOUT)?;
    let bye_done = Instant::now();
    let still_open = !lab.call_pinholes(&call)?.is_empty();
    if bye_done.elapsed() < BYE_GRACE / 2 {
        assert!(still_open, "pinholes must stay for the BYE grace");
    }
    call.uas.wait(CALL_TIMEOUT)?;
    lab.assert_closed(&call, &before, &rtcp, "BYE")
}

/// 183 with SDP opens the pinholes before the answer; RTP flows early; the
/// 200 keeps them; BYE closes.
fn early_media(family: Family, transport: Transport) -> TestResult {
    let lab = Lab::new(family)?;
    let before = lab.signaling()?;
    let mut call = lab.start(&CallSpec::new("early", family, transport))?;
    let rtcp = lab.rtcp_sockets(&call)?;
    let (c, e) = (call.caller_media, call.callee_media);
    let want = set(stream_flows(c, e));

    lab.wait_flows(&call, &want, "early-media pinholes (183)")?;
    lab.wait_packets(&call, (c, e), MIN_RTP)?;
    let early_back = lab.wait_packets(&call, (e, c), MIN_RTP)?;
    lab.assert_off_path_dropped(e, &rtcp.1)?;

    call.trigger_callee(&lab.topo)?; // 200 OK
                                     // After the ACK the caller plays RTP again: more packets, same pinholes.
    lab.wait_packets(&call, (e, c), early_back + MIN_RTP)?;
    lab.wait_flows(&call, &want, "the same pinholes after the 200")?;
    lab.assert_off_path_dropped(e, &rtcp.1)?;

    call.trigger_caller(&lab.topo)?; // BYE
    call.wait(CALL_TIMEOUT)?;
    lab.assert_closed(&call, &before, &rtcp, "BYE after early media")
}

/// A re-INVITE whose answer moves the callee to another port: the new
/// pinholes open and the old ones close once the answer lands.
fn reinvite_changes_port(family: Family, transport: Transport) -> TestResult {
    let lab = Lab::new(family)?;
    let before = lab.signaling()?;
    let spec = CallSpec::new("reinvite", family, transport)
        .caller_key("offer_dir", "sendrecv")
        .callee_key("answer_port", OTHER_CALLEE_PORT)
        .callee_key("answer_dir", "sendrecv");
    let mut call = lab.start(&spec)?;
    let rtcp = lab.rtcp_sockets(&call)?;
    let (c, e) = (call.caller_media, call.callee_media);
    let e2 = SocketAddr::new(e.ip(), OTHER_CALLEE_PORT);
    let new_rtp = lab.udp(Host::Inside, e2)?;
    let new_rtcp = lab.udp(Host::Inside, port_plus(e2, 1))?;

    lab.wait_flows(&call, &set(stream_flows(c, e)), "the first offer/answer")?;
    lab.wait_packets(&call, (c, e), MIN_RTP)?;
    lab.wait_packets(&call, (e, c), MIN_RTP)?;
    lab.assert_off_path_dropped(e, &rtcp.1)?;

    call.trigger_caller(&lab.topo)?; // re-INVITE
    lab.wait_flows(&call, &set(stream_flows(c, e2)), "the re-INVITE's pinholes")?;
    // The caller's RTP now reaches the new port, from the caller's port.
    let got = traffic::receive_raw(&new_rtp, MIN_RTP as u32, TIMEOUT)?;
    assert_eq!(got.datagrams, MIN_RTP as u32, "RTP to the new port");
    assert_eq!(got.senders, BTreeSet::from([c]), "RTP sources");
    // And the new port's media goes back to the caller (sipp's socket, so
    // the daemon's flow counter is the witness).
    let back = lab.wait_packets(&call, (e2, c), 0)?;
    traffic::send(&new_rtp, c, N)?;
    lab.wait_packets(&call, (e2, c), back + u64::from(N))?;
    // The old RTCP pair is closed, the new one passes.
    lab.assert_dropped(&rtcp.1, &rtcp.0, Host::Outside)?;
    lab.assert_passes(&new_rtcp, &rtcp.0)?;
    lab.assert_passes(&rtcp.0, &new_rtcp)?;
    lab.assert_off_path_dropped(e2, &new_rtcp)?;

    call.trigger_caller(&lab.topo)?; // BYE
    call.wait(CALL_TIMEOUT)?;
    lab.assert_closed(&call, &before, &rtcp, "BYE after re-INVITE")
}

/// Hold (re-INVITE with a=sendonly, answer a=recvonly): the pinholes stay,
/// RTP and RTCP keep passing.
fn hold_keeps_media(family: Family, transport: Transport) -> TestResult {
    let lab = Lab::new(family)?;
    let before = lab.signaling()?;
    let spec = CallSpec::new("reinvite", family, transport)
        .caller_key("offer_dir", "sendonly")
        .callee_key("answer_port", 12000)
        .callee_key("answer_dir", "recvonly");
    let mut call = lab.start(&spec)?;
    let rtcp = lab.rtcp_sockets(&call)?;
    let (c, e) = (call.caller_media, call.callee_media);
    let want = set(stream_flows(c, e));

    lab.wait_flows(&call, &want, "the call's pinholes")?;
    lab.wait_packets(&call, (c, e), MIN_RTP)?;
    lab.wait_packets(&call, (e, c), MIN_RTP)?;

    let seen = lab.signaling()?.sip_messages;
    call.trigger_caller(&lab.topo)?; // re-INVITE: hold
                                     // The re-INVITE, its 200 and the ACK crossed the daemon.
    wait_for("the hold re-INVITE, 200 and ACK", TIMEOUT, || {
        Ok((lab.signaling()?.sip_messages >= seen + 3).then_some(()))
    })?;
    let flows = lab.wait_flows(&call, &want, "the same pinholes on hold")?;
    // RTP keeps flowing (the caller plays again after the ACK) …
    lab.wait_packets(&call, (c, e), flows[&(c, e)] + MIN_RTP)?;
    lab.wait_packets(&call, (e, c), flows[&(e, c)] + MIN_RTP)?;
    // … and so does RTCP, both ways.
    lab.assert_passes(&rtcp.0, &rtcp.1)?;
    lab.assert_passes(&rtcp.1, &rtcp.0)?;
    lab.assert_off_path_dropped(e, &rtcp.1)?;

    call.trigger_caller(&lab.topo)?; // BYE
    call.wait(CALL_TIMEOUT)?;
    lab.assert_closed(&call, &before, &rtcp, "BYE after hold")
}

/// CANCEL after 180 and a 183 with early media: the pinholes close.
fn cancel_closes(family: Family, transport: Transport) -> TestResult {
    let lab = Lab::new(family)?;
    let before = lab.signaling()?;
    let mut call = lab.start(&CallSpec::new("cancel", family, transport))?;
    let rtcp = lab.rtcp_sockets(&call)?;
    let (c, e) = (call.caller_media, call.callee_media);

    lab.wait_flows(&call, &set(stream_flows(c, e)), "early-media pinholes")?;
    lab.wait_packets(&call, (c, e), MIN_RTP)?;
    lab.wait_packets(&call, (e, c), MIN_RTP)?;
    lab.assert_off_path_dropped(e, &rtcp.1)?;

    call.trigger_caller(&lab.topo)?; // CANCEL
    call.wait(CALL_TIMEOUT)?;
    lab.assert_closed(&call, &before, &rtcp, "CANCEL")
}

/// 486 Busy Here after early media: the pinholes close.
fn failed_call_closes(family: Family, transport: Transport) -> TestResult {
    let lab = Lab::new(family)?;
    let before = lab.signaling()?;
    let mut call = lab.start(&CallSpec::new("failed", family, transport))?;
    let rtcp = lab.rtcp_sockets(&call)?;
    let (c, e) = (call.caller_media, call.callee_media);

    lab.wait_flows(&call, &set(stream_flows(c, e)), "early-media pinholes")?;
    lab.wait_packets(&call, (c, e), MIN_RTP)?;
    lab.wait_packets(&call, (e, c), MIN_RTP)?;
    lab.assert_off_path_dropped(e, &rtcp.1)?;

    call.trigger_callee(&lab.topo)?; // 486
    call.wait(CALL_TIMEOUT)?;
    lab.assert_closed(&call, &before, &rtcp, "486")
}

/// Two early dialogs (distinct To-tags, different ports) each open
/// pinholes; when one answers, the other's close.
fn forking_loser_closes(family: Family, transport: Transport) -> TestResult {
    let lab = Lab::new(family)?;
    let before = lab.signaling()?;
    let spec = CallSpec::new("fork", family, transport).callee_key("fork_port", OTHER_CALLEE_PORT);
    let mut call = lab.start(&spec)?;
    let rtcp = lab.rtcp_sockets(&call)?;
    let (c, e) = (call.caller_media, call.callee_media);
    let loser = SocketAddr::new(e.ip(), OTHER_CALLEE_PORT);
    let loser_rtp = lab.udp(Host::Inside, loser)?;
    let loser_rtcp = lab.udp(Host::Inside, port_plus(loser, 1))?;

    let both = set(stream_flows(c, e).into_iter().chain(stream_flows(c, loser)));
    lab.wait_flows(&call, &both, "both forks' pinholes")?;
    // Early media goes to the last 183's port, the loser's.
    let got = traffic::receive_raw(&loser_rtp, MIN_RTP as u32, TIMEOUT)?;
    assert_eq!(
        got.datagrams, MIN_RTP as u32,
        "early RTP to the second fork"
    );
    assert_eq!(got.senders, BTreeSet::from([c]), "early RTP sources");
    lab.assert_passes(&loser_rtcp, &rtcp.0)?;
    lab.assert_off_path_dropped(e, &rtcp.1)?;

    call.trigger_callee(&lab.topo)?; // the first fork answers
    lab.wait_flows(
        &call,
        &set(stream_flows(c, e)),
        "only the winner's pinholes",
    )?;
    // The caller now sends to the winner, which echoes.
    lab.wait_packets(&call, (c, e), MIN_RTP)?;
    lab.wait_packets(&call, (e, c), MIN_RTP)?;
    lab.assert_dropped(&loser_rtcp, &rtcp.0, Host::Outside)?;
    lab.assert_passes(&rtcp.1, &rtcp.0)?;

    call.trigger_caller(&lab.topo)?; // BYE
    call.wait(CALL_TIMEOUT)?;
    lab.assert_closed(&call, &before, &rtcp, "BYE after forking")
}

/// One test per case for a transport and family.
macro_rules! sip_cases {
    ($family:expr, $transport:expr, [$($case:ident),* $(,)?]) => {
        use super::*;
        $(
            #[test]
            fn $case() -> TestResult {
                super::$case($family, $transport)
            }
        )*
    };
}

mod udp_v4 {
    sip_cases!(
        Family::V4,
        Transport::Udp,
        [
            plain_call,
            early_media,
            reinvite_changes_port,
            hold_keeps_media,
            cancel_closes,
            failed_call_closes,
            forking_loser_closes,
        ]
    );
}

mod tcp_v4 {
    sip_cases!(
        Family::V4,
        Transport::Tcp,
        [
            plain_call,
            early_media,
            reinvite_changes_port,
            hold_keeps_media,
            cancel_closes,
            failed_call_closes,
            forking_loser_closes,
        ]
    );
}

mod udp_v6 {
    sip_cases!(Family::V6, Transport::Udp, [plain_call, early_media]);
}

mod tcp_v6 {
    sip_cases!(Family::V6, Transport::Tcp, [plain_call]);
}
