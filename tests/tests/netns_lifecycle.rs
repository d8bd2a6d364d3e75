//! Call lifecycle end to end (issue 9): a call that is still up never loses
//! its media, whatever the signaling did in between.
//!
//! * Silence longer than `--call-idle` expires the pinholes; a re-INVITE
//!   with the same SDP opens them again.
//! * `a=inactive` hold longer than `--call-idle`, with RTCP on its own port
//!   still flowing, keeps the RTP pinhole (`--hold-timeout`); the resume
//!   re-INVITE finds it with its counters intact.
//! * A daemon restarted without state in mid-call picks the call up from the
//!   next re-INVITE.
//! * RTSP: `PAUSE` longer than the idle timeout, then `PLAY`, flows again; a
//!   client that keeps its session alive with RTCP receiver reports only
//!   keeps its session and pinholes past the session timeout.
//!
//! SIP is written by hand ([`sip_craft`]) over UDP and TCP, IPv4 and IPv6,
//! and media is test traffic counted exactly (every burst arrives in full,
//! and the daemon's per-flow counter rises by exactly the burst). Every wait
//! is a bounded poll of the daemon (`list`/`calls --json`) or of a socket;
//! time passes on the daemon's clock (its `idle_secs`/`age_secs`), never on
//! a sleep.
//!
//! Needs root and iptables. Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test netns_lifecycle`.

use std::{
    collections::BTreeSet,
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use pinhole_integration::{
    lab::{self, flow_packets, stream_flows, FlowCounts, FlowKey, Host, Lab, Owner},
    rtsp_peer::{RtspClient, RtspServer, ServerConfig},
    sip_craft::{self, deliver, Dialog, Direction, Sdp, SipPeer, Transport, SIP_PORT},
    traffic, unique_id, wait_for, Family, Pinhole,
};

/// `--call-idle` of every case: short, so that silence outlasts it quickly.
const CALL_IDLE: u64 = 2;
/// `--hold-timeout` of the hold case: far longer than the hold lasts.
const HOLD_TIMEOUT: u64 = 30;
/// Media ports: the caller (RTSP client) outside, the callee (RTSP server)
/// inside; RTCP on the next port.
const OUTSIDE_RTP: u16 = 16000;
const INSIDE_RTP: u16 = 12000;
/// The RTSP server's port (a default RTSP port of the daemon).
const RTSP_PORT: u16 = 8554;
/// Bound on the idle expiry: the idle timeout, a controller tick and slack.
const EXPIRY: Duration = Duration::from_secs(CALL_IDLE + 1).saturating_add(lab::TIMEOUT);
/// Bound on the steps of a loop that waits for the daemon's clock to pass a
/// number of seconds (one step per second it shows).
const MAX_STEPS: u64 = 60;

type TestResult = anyhow::Result<()>;

/// The four sockets of one media stream: RTP and RTCP on the outside host
/// and on the inside host.
struct Media {
    out_rtp: UdpSocket,
    out_rtcp: UdpSocket,
    in_rtp: UdpSocket,
    in_rtcp: UdpSocket,
}

impl Media {
    fn bind(lab: &Lab) -> anyhow::Result<Media> {
        Ok(Media {
            out_rtp: lab.udp(Host::Outside, OUTSIDE_RTP)?,
            out_rtcp: lab.udp(Host::Outside, OUTSIDE_RTP + 1)?,
            in_rtp: lab.udp(Host::Inside, INSIDE_RTP)?,
            in_rtcp: lab.udp(Host::Inside, INSIDE_RTP + 1)?,
        })
    }

    /// The outside and inside RTP endpoints.
    fn rtp(&self) -> anyhow::Result<(SocketAddr, SocketAddr)> {
        Ok((self.out_rtp.local_addr()?, self.in_rtp.local_addr()?))
    }

    /// RTP outside → inside, inside → outside, then RTCP likewise.
    fn flows(&self) -> anyhow::Result<[FlowKey; 4]> {
        let (o, i) = self.rtp()?;
        Ok(stream_flows(o, i))
    }

    fn flow_set(&self) -> anyhow::Result<BTreeSet<FlowKey>> {
        Ok(self.flows()?.into_iter().collect())
    }

    /// (sender, receiver, receiver's host) of RTP and RTCP both ways, in
    /// the order of [`Media::flows`].
    fn directions(&self) -> [(&UdpSocket, &UdpSocket, Host); 4] {
        [
            (&self.out_rtp, &self.in_rtp, Host::Inside),
            (&self.in_rtp, &self.out_rtp, Host::Outside),
            (&self.out_rtcp, &self.in_rtcp, Host::Inside),
            (&self.in_rtcp, &self.out_rtcp, Host::Outside),
        ]
    }
}

/// The packets `owner`'s pinholes counted on each flow.
fn counts(lab: &Lab, owner: Owner<'_>) -> anyhow::Result<FlowCounts> {
    Ok(flow_packets(&lab.owned_pinholes(owner)?))
}

/// A burst `tx → rx` arrives in full, and the daemon counts exactly that
/// burst on the flow (a flow it did not have before counts from zero).
/// Returns the flow's count.
fn passes_counted(
    lab: &Lab,
    owner: Owner<'_>,
    tx: &UdpSocket,
    rx: &UdpSocket,
) -> anyhow::Result<u64> {
    let flow = (tx.local_addr()?, rx.local_addr()?);
    let before = counts(lab, owner)?.get(&flow).copied().unwrap_or(0);
    lab.assert_passes(tx, rx)?;
    let after = counts(lab, owner)?.get(&flow).copied().unwrap_or(0);
    anyhow::ensure!(
        after == before + u64::from(lab::BURST),
        "{} → {}: {} datagrams arrived but the flow counted {before} then {after}",
        flow.0,
        flow.1,
        lab::BURST
    );
    Ok(after)
}

/// `directions` all pass, exactly counted; returns the flows' counts.
fn all_pass(
    lab: &Lab,
    owner: Owner<'_>,
    directions: &[(&UdpSocket, &UdpSocket, Host)],
) -> anyhow::Result<Vec<u64>> {
    directions
        .iter()
        .map(|(tx, rx, _)| passes_counted(lab, owner, tx, rx))
        .collect()
}

/// `directions` are all dropped, each burst counted a miss exactly.
fn all_dropped(lab: &Lab, directions: &[(&UdpSocket, &UdpSocket, Host)]) -> TestResult {
    for (tx, rx, host) in directions {
        lab.assert_dropped_exactly(tx, rx, *host)?;
    }
    Ok(())
}

/// The pinhole of `owner` that carries `flow`.
fn pinhole_with(lab: &Lab, owner: Owner<'_>, flow: FlowKey) -> anyhow::Result<Option<Pinhole>> {
    Ok(lab
        .owned_pinholes(owner)?
        .into_iter()
        .find(|p| p.flow(flow.0, flow.1).is_some()))
}

/// Takes one step of a loop that lets the daemon's clock run: runs `step`
/// (which may send traffic and check the daemon), then polls `clock` (a
/// seconds value the daemon reports) until it moves on from what it was.
/// Stops when `clock` reaches `until`; returns the steps taken.
fn run_daemon_clock(
    what: &str,
    until: u64,
    mut clock: impl FnMut() -> anyhow::Result<u64>,
    mut step: impl FnMut(u64) -> TestResult,
) -> anyhow::Result<u64> {
    let mut steps = 0;
    loop {
        let now = clock()?;
        if now >= until {
            return Ok(steps);
        }
        anyhow::ensure!(
            steps < MAX_STEPS,
            "{what}: {steps} steps and the daemon's clock shows {now} s, not {until} s"
        );
        step(now)?;
        steps += 1;
        let mut last = Err(anyhow::anyhow!("never read"));
        let moved = wait_for(
            &format!("{what}: the clock past {now} s"),
            lab::TIMEOUT,
            || {
                last = clock();
                Ok(last.as_ref().map_or(true, |&t| t > now).then_some(()))
            },
        );
        moved?;
        last?;
    }
}

// ---------------------------------------------------------------- SIP ----

/// One hand-driven SIP call between the outside host (caller) and the
/// inside host (callee), RTCP on its own ports. Field order: peers and
/// sockets go before the lab (daemon, then namespaces).
struct SipCase {
    caller: SipPeer,
    callee: SipPeer,
    dialog: Dialog,
    offer: Sdp,
    answer: Sdp,
    /// The caller's last CSeq.
    cseq: u32,
    media: Media,
    lab: Lab,
}

impl SipCase {
    /// A lab with `--call-idle` [`CALL_IDLE`], no BYE grace and `extra`
    /// flags, and a call set up over `transport`: INVITE, 200 OK, ACK; its
    /// pinholes open.
    fn established(family: Family, transport: Transport, extra: &[&str]) -> anyhow::Result<Self> {
        let idle = CALL_IDLE.to_string();
        let mut args = vec![
            "--media-ports",
            "10000-20000",
            "--call-idle",
            &idle,
            "--bye-grace",
            "0",
        ];
        args.extend_from_slice(extra);
        let lab = Lab::new(family, &args)?;
        let (caller, callee) = SipPeer::pair(
            transport,
            &lab.topo.outside,
            lab.addr(Host::Outside, SIP_PORT),
            &lab.topo.inside,
            lab.addr(Host::Inside, SIP_PORT),
        )?;
        let dialog = Dialog::new("lifecycle", caller.addr(), callee.addr()).over(transport);
        let media = Media::bind(&lab)?;
        let (o, i) = media.rtp()?;
        let case = SipCase {
            offer: Sdp::rtcp_apart(o),
            answer: Sdp::rtcp_apart(i),
            caller,
            callee,
            dialog,
            cseq: 1,
            media,
            lab,
        };
        sip_craft::establish(
            &case.caller,
            &case.callee,
            &case.dialog,
            &case.offer,
            &case.answer,
            lab::TIMEOUT,
        )?;
        case.wait_open("the call's pinholes")?;
        Ok(case)
    }

    fn owner(&self) -> Owner<'_> {
        Owner::Sip(&self.dialog.call_id)
    }

    /// Waits until the call's pinholes carry exactly the stream's flows.
    fn wait_open(&self, what: &str) -> anyhow::Result<FlowCounts> {
        Ok(self
            .lab
            .wait_flows(self.owner(), &self.media.flow_set()?, what)?)
    }

    /// A re-INVITE offering `offer`, its 200 OK answering `answer`, the ACK.
    fn reinvite(&mut self, offer: &Sdp, answer: &Sdp) -> TestResult {
        self.cseq += 1;
        let (d, cseq) = (&self.dialog, self.cseq);
        let (caller, callee) = (&self.caller, &self.callee);
        deliver(caller, callee, &d.reinvite(cseq, offer), lab::TIMEOUT)?;
        let ok = d.response(200, "OK", cseq, "INVITE", Some(answer));
        deliver(callee, caller, &ok, lab::TIMEOUT)?;
        deliver(caller, callee, &d.ack(cseq), lab::TIMEOUT)?;
        Ok(())
    }

    /// RTP and RTCP both ways, exactly counted.
    fn media_flows(&self) -> anyhow::Result<Vec<u64>> {
        all_pass(&self.lab, self.owner(), &self.media.directions())
    }

    /// The call is listed by `calls --json` with its RTP and RTCP streams
    /// in `state` (`open`, `hold`, `expired`): the call layer agrees with
    /// the pinhole table.
    fn call_streams(&self, state: &str) -> TestResult {
        let calls = self.lab.daemon.calls()?;
        let call = calls
            .iter()
            .find(|c| c.call_id == self.dialog.call_id)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the call {} is gone from `calls`: {calls:#?}",
                    self.dialog.call_id
                )
            })?;
        let streams: Vec<(&str, Option<&str>)> = call
            .streams
            .iter()
            .map(|s| (s.kind.as_str(), s.state.as_deref()))
            .collect();
        assert_eq!(
            streams,
            [("rtp", Some(state)), ("rtcp", Some(state))],
            "the call's streams in `calls --json` (`None`: the daemon does not say)"
        );
        Ok(())
    }

    /// BYE and its 200 OK close the pinholes (no grace), and media drops.
    fn bye_closes(&mut self) -> TestResult {
        self.cseq += 1;
        let (d, cseq) = (&self.dialog, self.cseq);
        deliver(&self.caller, &self.callee, &d.bye(cseq), lab::TIMEOUT)?;
        let ok = d.response(200, "OK", cseq, "BYE", None);
        deliver(&self.callee, &self.caller, &ok, lab::TIMEOUT)?;
        self.lab.wait_gone(self.owner(), lab::TIMEOUT, "BYE")?;
        all_dropped(&self.lab, &self.media.directions()[..2])
    }
}

/// Silence longer than `--call-idle` expires the call's pinholes while the
/// call stays up; a re-INVITE with the same SDP and its 200 OK open them
/// again and media resumes both ways.
fn silence_then_reinvite(family: Family, transport: Transport) -> TestResult {
    let mut t = SipCase::established(family, transport, &[])?;
    let before = t.media_flows()?;
    assert_eq!(before, [u64::from(lab::BURST); 4], "first media");

    // Silence: nothing flows until the daemon expires both pairs.
    t.lab
        .wait_gone(t.owner(), EXPIRY, "idle expiry during the silence")?;
    t.call_streams("expired")?;
    // The resumed media before any signaling: dropped.
    all_dropped(&t.lab, &t.media.directions())?;

    let (offer, answer) = (t.offer, t.answer);
    t.reinvite(&offer, &answer)?;
    // The daemon handled the ACK before it let it through: media at once.
    let after = t.media_flows()?;
    t.wait_open("the pinholes reopened by the re-INVITE")?;
    t.call_streams("open")?;
    assert_eq!(
        after,
        [u64::from(lab::BURST); 4],
        "media after the re-INVITE, counted on fresh pinholes"
    );
    t.bye_closes()
}

/// An `a=inactive` hold longer than `--call-idle`, RTCP still flowing on
/// its own pair: the RTP pinhole stays (with the hold timeout) and never
/// closes; the resume re-INVITE finds it with its counters intact and media
/// goes on counting where it stopped.
fn hold_then_resume(family: Family, transport: Transport) -> TestResult {
    let hold = HOLD_TIMEOUT.to_string();
    let mut t = SipCase::established(family, transport, &["--hold-timeout", &hold])?;
    t.media_flows()?;
    let [rtp_out, rtp_in, rtcp_out, rtcp_in] = t.media.flows()?;

    let (offer, answer) = (t.offer, t.answer);
    t.reinvite(
        &offer.with_direction(Direction::Inactive),
        &answer.with_direction(Direction::Inactive),
    )?;
    let held = t.wait_open("the same pinholes on hold")?;
    t.call_streams("hold")?;
    for flow in [rtp_out, rtcp_out] {
        let p = pinhole_with(&t.lab, t.owner(), flow)?
            .ok_or_else(|| anyhow::anyhow!("no pinhole for {flow:?} on hold"))?;
        assert_eq!(
            p.idle_timeout_secs, HOLD_TIMEOUT,
            "the held pair {} ↔ {} idles out after the hold timeout",
            p.a, p.b
        );
    }

    // On hold for longer than the idle timeout (the RTP pinhole's own idle
    // clock says so), an RTCP receiver report each way every second.
    let rtp_idle = || -> anyhow::Result<u64> {
        let p = pinhole_with(&t.lab, t.owner(), rtp_out)?
            .ok_or_else(|| anyhow::anyhow!("the RTP pinhole closed while the call was on hold"))?;
        Ok(p.idle_secs)
    };
    let ssrc = unique_id();
    let mut reports = 0u64;
    run_daemon_clock("the hold", 2 * CALL_IDLE, rtp_idle, |_| {
        for (tx, rx) in [
            (&t.media.out_rtcp, &t.media.in_rtcp),
            (&t.media.in_rtcp, &t.media.out_rtcp),
        ] {
            tx.send_to(&traffic::rtcp_receiver_report(ssrc), rx.local_addr()?)?;
            let got = traffic::receive_raw(rx, 1, lab::TIMEOUT)?;
            anyhow::ensure!(got.datagrams == 1, "an RTCP report was lost on hold");
        }
        reports += 1;
        Ok(())
    })?;
    let during = counts(&t.lab, t.owner())?;
    assert!(
        reports >= CALL_IDLE,
        "{reports} RTCP reports during the hold"
    );
    for (flow, sent) in [
        (rtp_out, 0),
        (rtp_in, 0),
        (rtcp_out, reports),
        (rtcp_in, reports),
    ] {
        assert_eq!(
            during.get(&flow),
            Some(&(held[&flow] + sent)),
            "{flow:?} during the hold (before {held:?})"
        );
    }

    t.reinvite(
        &offer.with_direction(Direction::SendRecv),
        &answer.with_direction(Direction::SendRecv),
    )?;
    let resumed = t.wait_open("the same pinholes after the resume")?;
    assert_eq!(resumed, during, "the resume re-opened a pinhole");
    t.call_streams("open")?;
    let p = pinhole_with(&t.lab, t.owner(), rtp_out)?
        .ok_or_else(|| anyhow::anyhow!("no RTP pinhole after the resume"))?;
    assert_eq!(p.idle_timeout_secs, CALL_IDLE, "the idle timeout is back");
    let after = t.media_flows()?;
    let burst = u64::from(lab::BURST);
    assert_eq!(
        after,
        [
            during[&rtp_out] + burst,
            during[&rtp_in] + burst,
            during[&rtcp_out] + burst,
            during[&rtcp_in] + burst
        ],
        "media after the resume counts on from before the hold"
    );
    t.bye_closes()
}

/// The daemon restarts without state (no `--state-file`, no
/// `--keep-pinned`) in mid-call: the new one knows nothing and drops the
/// media; the next re-INVITE opens the call like a new one, and its BYE
/// closes it.
fn restart_then_reinvite(family: Family, transport: Transport) -> TestResult {
    let mut t = SipCase::established(family, transport, &[])?;
    t.media_flows()?;

    t.lab.restart_daemon()?;
    assert_eq!(t.lab.daemon.list()?, vec![], "the new daemon has no state");
    assert_eq!(
        t.lab.daemon.calls()?,
        vec![],
        "the new daemon knows no call"
    );
    all_dropped(&t.lab, &t.media.directions())?;

    let (offer, answer) = (t.offer, t.answer);
    t.reinvite(&offer, &answer)?;
    let after = t.media_flows()?;
    t.wait_open("the pinholes opened by the re-INVITE after the restart")?;
    t.call_streams("open")?;
    assert_eq!(after, [u64::from(lab::BURST); 4], "media after the restart");
    t.bye_closes()
}

// --------------------------------------------------------------- RTSP ----

/// One RTSP session: a server on the inside host, a client outside, UDP
/// transport on the [`Media`] ports. Field order: server thread and sockets
/// before the lab.
struct RtspCase {
    server: RtspServer,
    client: RtspClient,
    session: String,
    media: Media,
    lab: Lab,
}

impl RtspCase {
    /// A lab with `daemon_args`, a server whose sessions time out after
    /// `timeout_secs`, SETUP (the session's pinholes open) and PLAY.
    fn playing(family: Family, daemon_args: &[&str], timeout_secs: u32) -> anyhow::Result<Self> {
        let mut args = vec!["--media-ports", "10000-20000"];
        args.extend_from_slice(daemon_args);
        let lab = Lab::new(family, &args)?;
        let cfg = ServerConfig::unique(Some(timeout_secs), INSIDE_RTP);
        let session = cfg.session.clone();
        let server = RtspServer::start(
            &lab.topo.inside,
            SocketAddr::new(family.inside(), RTSP_PORT),
            cfg,
        )?;
        let client = RtspClient::connect(&lab.topo.outside, server.addr())?;
        let mut t = RtspCase {
            media: Media::bind(&lab)?,
            server,
            client,
            session,
            lab,
        };
        let transport = format!(
            "RTP/AVP;unicast;client_port={OUTSIDE_RTP}-{}",
            OUTSIDE_RTP + 1
        );
        t.request_ok("SETUP", &[("Transport", &transport)])?;
        anyhow::ensure!(t.client.session() == Some(t.session.as_str()));
        t.wait_open("the SETUP's pinholes")?;
        t.request_ok("PLAY", &[("Range", "npt=0-")])?;
        Ok(t)
    }

    fn owner(&self) -> Owner<'_> {
        Owner::Rtsp(&self.session)
    }

    fn request_ok(&mut self, method: &str, headers: &[(&str, &str)]) -> TestResult {
        self.client.request_ok(method, headers)?;
        Ok(())
    }

    fn wait_open(&self, what: &str) -> anyhow::Result<FlowCounts> {
        Ok(self
            .lab
            .wait_flows(self.owner(), &self.media.flow_set()?, what)?)
    }

    /// RTP server → client and RTCP both ways, exactly counted.
    fn media_flows(&self) -> anyhow::Result<Vec<u64>> {
        let [_, rtp, rtcp_out, rtcp_in] = self.media.directions();
        all_pass(&self.lab, self.owner(), &[rtp, rtcp_out, rtcp_in])
    }

    /// The session's age on the daemon's clock (`calls --json`).
    fn age(&self) -> anyhow::Result<u64> {
        let calls = self.lab.daemon.calls()?;
        calls
            .iter()
            .find(|c| self.owner().matches(Some(&c.owner)))
            .map(|c| c.age_secs)
            .ok_or_else(|| anyhow::anyhow!("the session is closed (gone from `calls`: {calls:#?})"))
    }

    /// TEARDOWN closes the pinholes; RTP drops again. Returns the methods
    /// the server answered.
    fn teardown_closes(mut self) -> anyhow::Result<Vec<String>> {
        self.request_ok("TEARDOWN", &[])?;
        self.lab.wait_gone(self.owner(), lab::TIMEOUT, "TEARDOWN")?;
        all_dropped(&self.lab, &self.media.directions()[1..2])?;
        let RtspCase { server, .. } = self;
        Ok(server
            .finish()?
            .iter()
            .filter_map(|m| m.method().map(str::to_owned))
            .collect())
    }
}

/// `PAUSE` longer than `--call-idle`: the idle pinholes expire while the
/// session lives on (its timeout is long); `PLAY` opens them again and
/// media flows.
fn pause_then_play(family: Family) -> TestResult {
    let idle = CALL_IDLE.to_string();
    let mut t = RtspCase::playing(family, &["--call-idle", &idle], 60)?;
    assert_eq!(t.media_flows()?, [u64::from(lab::BURST); 3], "first media");

    t.request_ok("PAUSE", &[])?;
    t.lab
        .wait_gone(t.owner(), EXPIRY, "idle expiry during the PAUSE")?;
    all_dropped(&t.lab, &t.media.directions()[1..])?;

    t.request_ok("PLAY", &[("Range", "npt=5-")])?;
    assert_eq!(
        t.media_flows()?,
        [u64::from(lab::BURST); 3],
        "media after PLAY, counted on fresh pinholes"
    );
    t.wait_open("the pinholes reopened by PLAY")?;
    let methods = t.teardown_closes()?;
    assert_eq!(methods, ["SETUP", "PLAY", "PAUSE", "PLAY", "TEARDOWN"]);
    Ok(())
}

/// A client that sends nothing on the RTSP connection after PLAY, only RTCP
/// receiver reports on its RTCP pair: the session and its pinholes outlive
/// twice the session timeout and media still flows; once the reports stop,
/// the session times out.
fn rtcp_keeps_session(family: Family) -> TestResult {
    const SESSION_TIMEOUT: u64 = 3;
    let t = RtspCase::playing(family, &[], SESSION_TIMEOUT as u32)?;
    t.media_flows()?;
    let [_, _, rtcp_out, _] = t.media.flows()?;
    let before = counts(&t.lab, t.owner())?;

    let start = t.age()?;
    let ssrc = unique_id();
    let flows = t.media.flow_set()?;
    let reports = run_daemon_clock(
        "RTCP-only keep-alive",
        start + 2 * SESSION_TIMEOUT + 1,
        || t.age(),
        |age| {
            let now: BTreeSet<FlowKey> = counts(&t.lab, t.owner())?.into_keys().collect();
            anyhow::ensure!(
                now == flows,
                "the session's pinholes changed {} s into RTCP-only keep-alive: {now:?}",
                age - start
            );
            let (tx, rx) = (&t.media.out_rtcp, &t.media.in_rtcp);
            tx.send_to(&traffic::rtcp_receiver_report(ssrc), rx.local_addr()?)?;
            let got = traffic::receive_raw(rx, 1, lab::TIMEOUT)?;
            anyhow::ensure!(got.datagrams == 1, "a receiver report was lost");
            Ok(())
        },
    )?;
    let during = counts(&t.lab, t.owner())?;
    assert_eq!(
        during[&rtcp_out],
        before[&rtcp_out] + reports,
        "every receiver report counted on the RTCP pair"
    );
    let [_, rtp, _, _] = t.media.directions();
    let n = passes_counted(&t.lab, t.owner(), rtp.0, rtp.1)?;
    assert_eq!(n, during[&t.media.flows()?[1]] + u64::from(lab::BURST));

    // Without the reports, the session times out.
    t.lab.wait_gone(
        t.owner(),
        lab::TIMEOUT + Duration::from_secs(SESSION_TIMEOUT),
        "session timeout once the RTCP reports stopped",
    )?;
    all_dropped(&t.lab, &[rtp])
}

macro_rules! sip_cases {
    ($($name:ident),*) => {
        $(mod $name {
            use super::*;

            #[test]
            fn v4_udp() -> TestResult {
                super::$name(Family::V4, Transport::Udp)
            }

            #[test]
            fn v4_tcp() -> TestResult {
                super::$name(Family::V4, Transport::Tcp)
            }

            #[test]
            fn v6_udp() -> TestResult {
                super::$name(Family::V6, Transport::Udp)
            }

            #[test]
            fn v6_tcp() -> TestResult {
                super::$name(Family::V6, Transport::Tcp)
            }
        })*
    };
}

sip_cases!(
    silence_then_reinvite,
    hold_then_resume,
    restart_then_reinvite
);

macro_rules! rtsp_cases {
    ($($name:ident),*) => {
        $(mod $name {
            use super::*;

            #[test]
            fn v4() -> TestResult {
                super::$name(Family::V4)
            }

            #[test]
            fn v6() -> TestResult {
                super::$name(Family::V6)
            }
        })*
    };
}

rtsp_cases!(pause_then_play, rtcp_keeps_session);
