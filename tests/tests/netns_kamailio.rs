//! A real SIP proxy driving pinhole over ng: Debian's Kamailio with its
//! stock `rtpengine` module, record-routing, on the router of the standard
//! topology, next to `pinhole run --signaling off --ng-listen 127.0.0.1:2223`.
//! sipp calls from the outside host (caller, sending everything to the
//! proxy's outside address) to the inside host (callee), with RTP both ways
//! straight between them through the router's XDP filter.
//!
//! With inline signaling off, every pinhole comes from what Kamailio's
//! module sends: offer on the INVITE, answer on the 183 or 200 with SDP,
//! delete on BYE, CANCEL and a final error (tests/src/kamailio.rs has the
//! configuration). Each case checks, over IPv4 and IPv6: the call's four
//! flows appear under the `ng:<call-id>` owner and carry RTP both ways;
//! RTCP passes both ways on the RTCP pair; an off-path sender is dropped
//! with exact `miss` accounting; when the call ends (caller's BYE, callee's
//! BYE, CANCEL, 486) its pinholes and its call vanish (bounded poll) and the
//! RTCP pair drops again; the ng requests all succeeded and the call layer
//! counted one call opened and closed with its two pairs. With a full flow
//! table, the offer's `Ran out of ports` makes the module look for another
//! node, and nothing opens. A caller behind NAT (a host behind the outside
//! host, masqueraded by nftables; its SDP names its private address) gets
//! its pairs with Kamailio's `SIP-source-address` (the NAT's address, the
//! SDP's ports) or `port-latching` (under `--latching`, latched from the
//! NAT's address), RTP and RTCP both ways, closed by its BYE.
//!
//! Needs root, kamailio, sipp, nft. Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test netns_kamailio`.

use std::{
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use pinhole_integration::{
    kamailio::{wait_ng, Kamailio},
    lab::{self, stream_flows, FlowCounts, Host, Lab, Owner},
    sipp::{CallSpec, Scenarios, SipCall, Transport, SIP_PORT},
    traffic, wait_for, Family, Netns, SignalingStats,
};

/// pinhole's ng listener, on the router's loopback.
const NG: &str = "127.0.0.1:2223";
/// Pinholes of a deleted call stay this long (`--bye-grace`, the default
/// `delete-delay`; Kamailio's module sends none).
const BYE_GRACE: Duration = Duration::from_secs(1);
/// Bound on a sipp agent finishing its scenario once nothing holds it.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// RTP packets each way that show media flows.
const MIN_RTP: u64 = 5;
/// The off-path sender's source port, on the caller's host.
const OFF_PATH_PORT: u16 = 16010;

type TestResult = anyhow::Result<()>;

/// The call layer's counters (`stats --json` → `signaling.detail`) each
/// case predicts exactly.
const DETAIL: [&str; 9] = [
    "calls.calls_closed.bye",
    "calls.calls_closed.cancel",
    "calls.calls_closed.failed",
    "calls.pairs_opened",
    "calls.pairs_closed.bye",
    "calls.pairs_closed.cancel",
    "calls.pairs_closed.failed",
    "apply_failed",
    "streams_refused",
];

/// One call through the proxy. Field order is drop order: sipp, then
/// Kamailio, then the daemon and the namespaces.
struct Case {
    call: SipCall,
    caller_rtcp: UdpSocket,
    callee_rtcp: UdpSocket,
    intruder: UdpSocket,
    before: SignalingStats,
    kamailio: Kamailio,
    _files: Scenarios,
    /// The caller's host when it is behind NAT.
    nat: Option<Netns>,
    lab: Lab,
}

/// How a case differs from the plain call.
#[derive(Clone, Copy, Default)]
struct Setup<'a> {
    /// Extra daemon arguments.
    daemon: &'a [&'a str],
    /// `rtpengine_manage()` flags.
    flags: &'a str,
    /// The caller sits behind a masquerading NAT on the outside host.
    nat: bool,
}

impl Case {
    /// The lab with the ng listener, Kamailio on the router's two addresses
    /// of `family`, and the sipp call `scenario` through it, as `setup` says
    /// (extra daemon arguments, Kamailio's flags, a NAT'd caller).
    fn start_with(scenario: &str, family: Family, setup: Setup<'_>) -> anyhow::Result<Case> {
        let grace = BYE_GRACE.as_secs().to_string();
        let mut args = vec![
            "--signaling",
            "off",
            "--ng-listen",
            NG,
            "--media-ports",
            "10000-20000",
            "--bye-grace",
            &grace,
        ];
        args.extend_from_slice(setup.daemon);
        let lab = Lab::new(family, &args)?;
        let nat = setup
            .nat
            .then(|| lab.topo.nat_behind_outside())
            .transpose()?;
        let ng: SocketAddr = NG.parse()?;
        wait_ng(&lab.topo.router, ng)?;
        let proxy = SocketAddr::new(family.router_outside(), SIP_PORT);
        let listen = [proxy, SocketAddr::new(family.router_inside(), SIP_PORT)];
        let kamailio = Kamailio::start_with(&lab.topo.router, &listen, ng, setup.flags)?;
        let files = Scenarios::new()?;
        let spec = CallSpec::new(scenario, family, Transport::Udp).via_proxy(proxy);
        let before = lab.signaling()?;
        let caller = match &nat {
            Some(host) => (host, family.nat_private()),
            None => (&lab.topo.outside, family.outside()),
        };
        let caller_rtcp = caller
            .0
            .udp_socket(SocketAddr::new(caller.1, spec.caller_media_port + 1))?;
        let callee_rtcp = lab.udp(Host::Inside, spec.callee_media_port + 1)?;
        let intruder = lab.udp(Host::Outside, OFF_PATH_PORT)?;
        let call = SipCall::start_from(&lab.topo, caller, &files, &spec)?;
        Ok(Case {
            call,
            caller_rtcp,
            callee_rtcp,
            intruder,
            before,
            kamailio,
            _files: files,
            nat,
            lab,
        })
    }

    /// The caller's RTP endpoint as the router sees it: behind the NAT,
    /// its SDP's port on the outside host's address (the masquerade keeps
    /// ports); else its SDP's.
    fn caller_seen(&self) -> SocketAddr {
        let media = self.call.caller_media;
        match self.nat {
            Some(_) => SocketAddr::new(self.lab.family.outside(), media.port()),
            None => media,
        }
    }

    fn owner(&self) -> Owner<'_> {
        Owner::Ng(&self.call.call_id)
    }

    /// Adds the sipp agents' and Kamailio's logs to a failure.
    fn ctx<T>(&self, r: pinhole_integration::Result<T>) -> anyhow::Result<T> {
        r.map_err(|e| {
            anyhow::anyhow!(
                "{e}\n{}---- Kamailio ----\n{}",
                self.call.logs(),
                self.kamailio.log()
            )
        })
    }

    /// The call's four flows under its ng owner, RTP both ways, RTCP both
    /// ways, an off-path sender dropped; returns the flows' packet counts.
    fn established(&self, what: &str) -> anyhow::Result<FlowCounts> {
        let (c, e) = (self.caller_seen(), self.call.callee_media);
        let [_, _, rtcp_c_e, rtcp_e_c] = stream_flows(c, e);
        // RTP first: sipp's media opens (or latches) the RTP pair; the RTCP
        // pair is open (or armed) by then.
        self.ctx(self.lab.wait_packets(self.owner(), (c, e), MIN_RTP))?;
        self.ctx(self.lab.wait_packets(self.owner(), (e, c), MIN_RTP))?;
        // RTCP each way, to where each end is seen (through the NAT).
        passes_as(&self.caller_rtcp, rtcp_c_e, &self.callee_rtcp)?;
        passes_as(&self.callee_rtcp, rtcp_e_c, &self.caller_rtcp)?;
        let want = stream_flows(c, e).into_iter().collect();
        self.ctx(self.lab.wait_flows(self.owner(), &want, what))?;
        self.lab
            .assert_off_path_dropped(&self.intruder, &[e], &self.callee_rtcp, Host::Inside)?;
        let calls = self.lab.daemon.calls()?;
        anyhow::ensure!(
            calls.len() == 1 && calls[0].kind == "ng" && calls[0].call_id == self.call.call_id,
            "{what}: one ng call expected, got {calls:?}"
        );
        let flows = self.ctx(
            self.lab
                .owned_pinholes(self.owner())
                .map(|p| lab::flow_packets(&p)),
        )?;
        eprintln!("{what}: {flows:?}");
        Ok(flows)
    }

    /// After the call: no pinhole, no call, the RTCP pair drops again, the
    /// ng requests all succeeded, and the call layer counted one call with
    /// one stream, closed by the proxy's delete.
    fn assert_closed(&self, why: &str) -> TestResult {
        self.ctx(
            self.lab
                .wait_gone(self.owner(), lab::TIMEOUT + BYE_GRACE, why),
        )?;
        self.ctx(wait_for("the call to be forgotten", lab::TIMEOUT, || {
            Ok(self.lab.daemon.calls()?.is_empty().then_some(()))
        }))?;
        self.lab
            .assert_dropped_exactly(&self.callee_rtcp, &self.caller_rtcp, Host::Outside)?;
        let (before, after) = (&self.before, self.lab.signaling()?);
        assert_eq!(
            (
                after.calls_opened - before.calls_opened,
                after.calls_closed - before.calls_closed,
                after.calls_active
            ),
            (1, 1, 0),
            "{why}: calls opened, closed, active"
        );
        assert_eq!(
            lab::detail_deltas(before, &after, &DETAIL)?,
            lab::expected_deltas(&DETAIL, &lab::one_stream_closed_by("bye")),
            "{why}: call-layer counters"
        );
        let ng = |s: &SignalingStats, key: &str| lab::detail(s, &format!("ng.{key}"));
        assert_eq!(
            ng(&after, "errors"),
            ng(before, "errors"),
            "{why}: ng errors"
        );
        assert_eq!(
            ng(&after, "invalid"),
            ng(before, "invalid"),
            "{why}: invalid ng requests"
        );
        // At least the offer, the answer and the delete.
        let ok = ng(&after, "ok").unwrap_or(0) - ng(before, "ok").unwrap_or(0);
        assert!(ok >= 3, "{why}: {ok} ng requests succeeded");
        Ok(())
    }
}

/// [`lab::BURST`] datagrams from `tx` to `dst` of `(src, dst)` all arrive
/// at `rx`, from `src` (`tx` as the far end sees it: through a NAT, its
/// mapping).
fn passes_as(tx: &UdpSocket, (src, dst): (SocketAddr, SocketAddr), rx: &UdpSocket) -> TestResult {
    traffic::send(tx, dst, lab::BURST)?;
    let got = traffic::receive(rx, lab::BURST, lab::TIMEOUT)?;
    anyhow::ensure!(
        got.data == lab::BURST && got.senders == std::collections::BTreeSet::from([src]),
        "{src} → {dst}: {} of {} datagrams arrived, from {:?}",
        got.data,
        lab::BURST,
        got.senders
    );
    Ok(())
}

/// Who ends a call, by the test's trigger.
#[derive(Clone, Copy, Debug)]
enum Side {
    Caller,
    Callee,
}

/// Runs `scenario` through the proxy: the call's media is established
/// (`what`), then `side` ends it (`why`) and everything is closed.
fn run(scenario: &str, family: Family, what: &str, side: Side, why: &str) -> TestResult {
    run_with(scenario, family, Setup::default(), what, side, why)
}

/// [`run`] as `setup` says.
fn run_with(
    scenario: &str,
    family: Family,
    setup: Setup<'_>,
    what: &str,
    side: Side,
    why: &str,
) -> TestResult {
    let mut t = Case::start_with(scenario, family, setup)?;
    t.established(what)?;
    match side {
        Side::Caller => t.call.trigger_caller(&t.lab.topo)?,
        Side::Callee => t.call.trigger_callee(&t.lab.topo)?,
    }
    if let Err(e) = t.call.wait(CALL_TIMEOUT) {
        anyhow::bail!("{e}\n---- Kamailio ----\n{}", t.kamailio.log());
    }
    t.assert_closed(why)
}

/// INVITE, 180, 200, ACK (along the recorded route), RTP; the caller's BYE
/// makes Kamailio delete the call.
fn caller_hangs_up(family: Family) -> TestResult {
    let what = "the call's pinholes (answer on the 200)";
    run("call", family, what, Side::Caller, "the caller's BYE")
}

/// As [`caller_hangs_up`], but the callee sends the BYE (along the route it
/// recorded from the INVITE).
fn callee_hangs_up(family: Family) -> TestResult {
    let what = "the call's pinholes (answer on the 200)";
    run("callee_bye", family, what, Side::Callee, "the callee's BYE")
}

/// 180, 183 with SDP (answer: early media both ways), then the caller's
/// CANCEL: Kamailio deletes on the CANCEL and again on the 487.
fn cancel_before_answer(family: Family) -> TestResult {
    let what = "early-media pinholes (answer on the 183)";
    run("cancel", family, what, Side::Caller, "CANCEL")
}

/// 183 with SDP (early media), then 486 Busy Here: Kamailio's failure
/// route deletes.
fn busy(family: Family) -> TestResult {
    let what = "early-media pinholes (answer on the 183)";
    run("failed", family, what, Side::Callee, "486")
}

#[test]
fn caller_hangs_up_ipv4() -> TestResult {
    caller_hangs_up(Family::V4)
}

#[test]
fn caller_hangs_up_ipv6() -> TestResult {
    caller_hangs_up(Family::V6)
}

#[test]
fn callee_hangs_up_ipv4() -> TestResult {
    callee_hangs_up(Family::V4)
}

#[test]
fn callee_hangs_up_ipv6() -> TestResult {
    callee_hangs_up(Family::V6)
}

#[test]
fn cancel_before_answer_ipv4() -> TestResult {
    cancel_before_answer(Family::V4)
}

#[test]
fn cancel_before_answer_ipv6() -> TestResult {
    cancel_before_answer(Family::V6)
}

#[test]
fn busy_ipv4() -> TestResult {
    busy(Family::V4)
}

#[test]
fn busy_ipv6() -> TestResult {
    busy(Family::V6)
}

/// A full flow table (`--max-pinholes 2`: no room for the call's RTP and
/// RTCP pairs) answers the offer with rtpengine's own `Ran out of ports`,
/// which Kamailio's module takes as "try the next node" (it warns
/// `proxy udp:127.0.0.1:2223: Ran out of ports`, looks for a new node and,
/// with no other configured, finds none): pinhole counted the failed offer,
/// tracked no call, opened nothing, and the call's media is dropped.
fn full_table(family: Family) -> TestResult {
    let setup = Setup {
        daemon: &["--max-pinholes", "2"],
        ..Setup::default()
    };
    let mut t = Case::start_with("call", family, setup)?;
    let log = wait_for(
        "Kamailio to report pinhole's Ran out of ports",
        lab::TIMEOUT,
        || {
            let log = t.kamailio.log();
            Ok(log
                .contains(&format!("proxy udp:{NG}: Ran out of ports"))
                .then_some(log))
        },
    );
    let log = t.ctx(log)?;
    // Kamailio 5.6 warns with the reason and selects a new node (here
    // there is none), where any other error reason fails the call at once.
    assert!(
        log.contains("failed to select new for") && log.contains("no available proxies"),
        "the module did not look for another node:\n{log}"
    );
    let after = t.lab.signaling()?;
    let ng = |s: &SignalingStats, key: &str| lab::detail(s, &format!("ng.{key}")).unwrap_or(0);
    assert!(
        ng(&after, "errors") > ng(&t.before, "errors"),
        "the offer's error is counted"
    );
    assert_eq!(
        after.calls_opened - t.before.calls_opened,
        0,
        "calls opened"
    );
    assert!(t.lab.owned_pinholes(t.owner())?.is_empty(), "no pinhole");
    assert!(t.lab.daemon.calls()?.is_empty(), "no call tracked");
    // sipp's RTP is dropped too, so at least a burst's worth of misses.
    t.lab
        .assert_dropped(&t.caller_rtcp, &t.callee_rtcp, Host::Inside)?;
    t.call.trigger_caller(&t.lab.topo)?;
    if let Err(e) = t.call.wait(CALL_TIMEOUT) {
        anyhow::bail!("{e}\n---- Kamailio ----\n{}", t.kamailio.log());
    }
    Ok(())
}

#[test]
fn full_table_ipv4() -> TestResult {
    full_table(Family::V4)
}

#[test]
fn full_table_ipv6() -> TestResult {
    full_table(Family::V6)
}

/// A caller behind NAT (a host behind the outside host, masqueraded to the
/// outside host's address): its SDP names its private address, its SIP and
/// media come from the outside host's. Kamailio passes `flags`; the call's
/// RTP and RTCP pairs open between the NAT's mapping and the callee, RTP and
/// RTCP pass both ways (counted), and the caller's BYE closes them.
fn nat_caller(family: Family, daemon: &[&str], flags: &str) -> TestResult {
    let setup = Setup {
        daemon,
        flags,
        nat: true,
    };
    let what = "the NAT'd caller's pinholes";
    run_with(
        "call",
        family,
        setup,
        what,
        Side::Caller,
        "the caller's BYE",
    )
}

#[test]
fn nat_caller_sip_source_address_ipv4() -> TestResult {
    nat_caller(Family::V4, &[], "SIP-source-address")
}

#[test]
fn nat_caller_sip_source_address_ipv6() -> TestResult {
    nat_caller(Family::V6, &[], "SIP-source-address")
}

#[test]
fn nat_caller_port_latching_ipv4() -> TestResult {
    nat_caller(Family::V4, &["--latching", "5"], "port-latching")
}

#[test]
fn nat_caller_port_latching_ipv6() -> TestResult {
    nat_caller(Family::V6, &["--latching", "5"], "port-latching")
}
