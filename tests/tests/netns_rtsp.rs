//! RTSP end to end: a tiny RTSP server on the inside host (TCP 8554) and a
//! client on the outside host, with real UDP sockets behind the announced
//! ports, through the router running `pinhole` with inline signaling.
//!
//! SETUP (client_port a-b) → 200 (server_port c-d, Session;timeout=N) opens
//! the RTP pair a↔c and the RTCP pair b↔d, owned by the session; PLAY, RTP
//! server → client and RTCP both ways pass; off-path datagrams at the
//! server's ports are dropped with exact `miss` accounting; TEARDOWN, or the
//! session timeout without keep-alive, closes. Interleaved transport (media
//! inside the RTSP connection) opens nothing.
//!
//! Needs root and iptables. Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test netns_rtsp`.

use std::{
    collections::BTreeSet,
    net::{SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use pinhole_integration::{
    lab::{self, stream_flows, FlowKey, Host, Lab, Owner},
    rtsp_peer::{RtspClient, RtspServer, ServerConfig},
    wait_for, Family, SignalingStats,
};

/// The RTSP server's port (one of the daemon's default RTSP ports).
const RTSP_PORT: u16 = 8554;
/// The client's RTP port (RTCP is the next one).
const CLIENT_RTP: u16 = 16500;
/// The server's RTP port (RTCP is the next one).
const SERVER_RTP: u16 = 14000;
/// The off-path sender's source port, on the client's host.
const OFF_PATH_PORT: u16 = 16600;

type TestResult = anyhow::Result<()>;

/// The call layer's counters (`stats --json` → `signaling.detail`) each
/// case predicts exactly.
const DETAIL: [&str; 8] = [
    "calls.sessions_opened",
    "calls.calls_closed.teardown",
    "calls.calls_closed.session_timeout",
    "calls.pairs_opened",
    "calls.pairs_closed.teardown",
    "calls.pairs_closed.session_timeout",
    "calls.rtsp_interleaved",
    "apply_failed",
];

/// The call-layer counters of a session closed by `cause` (`teardown` or
/// `session_timeout`) after one UDP SETUP.
fn closed_by(cause: &str) -> Vec<(String, u64)> {
    let mut nonzero = lab::one_stream_closed_by(cause);
    nonzero.push(("calls.sessions_opened".to_owned(), 1));
    lab::expected_deltas(&DETAIL, &nonzero)
}

/// One session's world. Field order matters: the server thread and the
/// sockets go before the lab (daemon, then namespaces).
struct Case {
    server: RtspServer,
    client: RtspClient,
    client_rtp: UdpSocket,
    client_rtcp: UdpSocket,
    server_rtp: UdpSocket,
    server_rtcp: UdpSocket,
    intruder: UdpSocket,
    session: String,
    before: SignalingStats,
    lab: Lab,
}

impl Case {
    fn start(family: Family, timeout_secs: Option<u32>) -> anyhow::Result<Case> {
        let lab = Lab::new(family, &["--media-ports", "10000-20000"])?;
        let before = lab.signaling()?;
        let cfg = ServerConfig::unique(timeout_secs, SERVER_RTP);
        let session = cfg.session.clone();
        let server = RtspServer::start(
            &lab.topo.inside,
            SocketAddr::new(family.inside(), RTSP_PORT),
            cfg,
        )?;
        let client = RtspClient::connect(&lab.topo.outside, server.addr())?;
        Ok(Case {
            client_rtp: lab.udp(Host::Outside, CLIENT_RTP)?,
            client_rtcp: lab.udp(Host::Outside, CLIENT_RTP + 1)?,
            server_rtp: lab.udp(Host::Inside, SERVER_RTP)?,
            server_rtcp: lab.udp(Host::Inside, SERVER_RTP + 1)?,
            intruder: lab.udp(Host::Outside, OFF_PATH_PORT)?,
            server,
            client,
            session,
            before,
            lab,
        })
    }

    fn owner(&self) -> Owner<'_> {
        Owner::Rtsp(&self.session)
    }

    /// Client and server RTP endpoints.
    fn media(&self) -> anyhow::Result<(SocketAddr, SocketAddr)> {
        Ok((self.client_rtp.local_addr()?, self.server_rtp.local_addr()?))
    }

    /// Sends `method` and expects 200.
    fn request_ok(&mut self, method: &str, headers: &[(&str, &str)]) -> TestResult {
        self.client.request_ok(method, headers)?;
        Ok(())
    }

    /// SETUP with UDP transport on the client's ports; the session's
    /// pinholes appear.
    fn setup_udp(&mut self) -> TestResult {
        let transport = format!(
            "RTP/AVP;unicast;client_port={CLIENT_RTP}-{}",
            CLIENT_RTP + 1
        );
        self.request_ok("SETUP", &[("Transport", &transport)])?;
        assert_eq!(self.client.session(), Some(self.session.as_str()));
        let (c, s) = self.media()?;
        let want: BTreeSet<FlowKey> = stream_flows(c, s).into_iter().collect();
        self.lab
            .wait_flows(self.owner(), &want, "the SETUP's pinholes")?;
        Ok(())
    }

    /// RTP server → client and RTCP both ways pass, and the per-flow
    /// counters saw them.
    fn media_passes(&self) -> TestResult {
        let (c, s) = self.media()?;
        let before = lab::flow_packets(&self.lab.owned_pinholes(self.owner())?);
        self.lab.assert_passes(&self.server_rtp, &self.client_rtp)?;
        self.lab
            .assert_passes(&self.client_rtcp, &self.server_rtcp)?;
        self.lab
            .assert_passes(&self.server_rtcp, &self.client_rtcp)?;
        let n = u64::from(lab::BURST);
        let (c1, s1) = (lab::port_plus(c, 1), lab::port_plus(s, 1));
        for flow in [(s, c), (c1, s1), (s1, c1)] {
            self.lab
                .wait_packets(self.owner(), flow, before[&flow] + n)?;
        }
        Ok(())
    }

    /// From the client's host but another port, datagrams at the server's
    /// RTP and RTCP ports are dropped, exactly counted.
    fn off_path_dropped(&self) -> TestResult {
        let rtp = self.server_rtp.local_addr()?;
        self.lab.assert_off_path_dropped(
            &self.intruder,
            &[rtp],
            &self.server_rtcp,
            Host::Inside,
        )?;
        Ok(())
    }

    /// After the session: no pinholes, media dropped again, RTSP seen
    /// without parse errors, the call layer's counters as `expected`.
    fn assert_closed(&self, why: &str, expected: &[(String, u64)]) -> TestResult {
        self.lab.wait_gone(self.owner(), lab::TIMEOUT, why)?;
        self.lab
            .assert_dropped(&self.server_rtp, &self.client_rtp, Host::Outside)?;
        self.lab
            .assert_dropped(&self.client_rtcp, &self.server_rtcp, Host::Inside)?;
        let after = self.lab.signaling()?;
        assert!(
            after.rtsp_messages > self.before.rtsp_messages,
            "{why}: no RTSP seen"
        );
        assert_eq!(
            after.parse_errors, self.before.parse_errors,
            "{why}: parse errors"
        );
        assert_eq!(
            lab::detail_deltas(&self.before, &after, &DETAIL)?,
            expected,
            "{why}: call-layer counters"
        );
        Ok(())
    }
}

/// SETUP → PLAY → media → TEARDOWN closes the pinholes.
fn setup_play_teardown(family: Family) -> TestResult {
    let mut t = Case::start(family, Some(60))?;
    t.request_ok("OPTIONS", &[])?;
    t.setup_udp()?;
    t.request_ok("PLAY", &[("Range", "npt=0-")])?;
    t.media_passes()?;
    t.off_path_dropped()?;
    t.request_ok("TEARDOWN", &[])?;
    t.assert_closed("TEARDOWN", &closed_by("teardown"))?;
    let Case { server, .. } = t;
    let methods: Vec<String> = server
        .finish()?
        .iter()
        .filter_map(|m| m.method().map(str::to_owned))
        .collect();
    assert_eq!(methods, ["OPTIONS", "SETUP", "PLAY", "TEARDOWN"]);
    Ok(())
}

/// Without keep-alive, the session times out (`Session: id;timeout=N`) and
/// its pinholes close, not before N seconds after the last request.
fn session_timeout_closes(family: Family) -> TestResult {
    const TIMEOUT_SECS: u32 = 2;
    let mut t = Case::start(family, Some(TIMEOUT_SECS))?;
    t.setup_udp()?;
    let last_request = Instant::now();
    t.request_ok("PLAY", &[("Range", "npt=0-")])?;
    t.media_passes()?;
    t.off_path_dropped()?;
    // Nothing more on the RTSP connection, which stays open.
    t.lab.wait_gone(
        t.owner(),
        lab::TIMEOUT + Duration::from_secs(TIMEOUT_SECS.into()),
        "session timeout",
    )?;
    let lived = last_request.elapsed();
    assert!(
        lived >= Duration::from_secs(TIMEOUT_SECS.into()),
        "the session closed after {lived:?}, before its {TIMEOUT_SECS} s timeout"
    );
    t.assert_closed("session timeout", &closed_by("session_timeout"))
}

/// GET_PARAMETER keep-alives hold the session open past several timeouts;
/// once they stop, it times out.
fn keepalive_holds_session(family: Family) -> TestResult {
    const TIMEOUT_SECS: u64 = 3;
    let mut t = Case::start(family, Some(TIMEOUT_SECS as u32))?;
    t.setup_udp()?;
    t.request_ok("PLAY", &[("Range", "npt=0-")])?;
    let start = Instant::now();
    // Keep-alives paced at a third of the timeout, for two timeouts.
    while start.elapsed() < Duration::from_secs(2 * TIMEOUT_SECS) {
        std::thread::sleep(Duration::from_secs(1));
        t.request_ok("GET_PARAMETER", &[])?;
        anyhow::ensure!(
            !t.lab.owned_pinholes(t.owner())?.is_empty(),
            "the session closed after {:?} despite keep-alives",
            start.elapsed()
        );
    }
    t.media_passes()?;
    t.off_path_dropped()?;
    t.lab.wait_gone(
        t.owner(),
        lab::TIMEOUT + Duration::from_secs(TIMEOUT_SECS),
        "session timeout after the keep-alives stopped",
    )?;
    t.assert_closed("session timeout", &closed_by("session_timeout"))
}

/// TCP reassembly on the wire: a SETUP split across two segments (in the
/// middle of its Transport header) still opens the session's pinholes, and
/// PLAY and GET_PARAMETER pipelined in one segment are both followed.
fn split_and_pipelined_requests(family: Family) -> TestResult {
    let mut t = Case::start(family, Some(60))?;
    let transport = format!(
        "RTP/AVP;unicast;client_port={CLIENT_RTP}-{}",
        CLIENT_RTP + 1
    );
    let setup = t.client.encode("SETUP", &[("Transport", &transport)]);
    let cut = setup
        .windows(b"client_port".len())
        .position(|w| w == b"client_port")
        .expect("the SETUP names its client ports")
        + 4;
    let seen = t.lab.signaling()?.rtsp_messages;
    t.client.send_raw(&setup[..cut])?;
    // The first half alone is no message yet.
    assert_eq!(t.lab.signaling()?.rtsp_messages, seen);
    t.client.send_raw(&setup[cut..])?;
    let cseq = t.client.cseq();
    let resp = t.client.reply("SETUP", cseq)?;
    anyhow::ensure!(resp.status() == Some(200), "SETUP: {}", resp.start);
    let (c, s) = t.media()?;
    let want: BTreeSet<FlowKey> = stream_flows(c, s).into_iter().collect();
    t.lab
        .wait_flows(t.owner(), &want, "the split SETUP's pinholes")?;

    let mut both = t.client.encode("PLAY", &[("Range", "npt=0-")]);
    let play = t.client.cseq();
    both.extend(t.client.encode("GET_PARAMETER", &[]));
    t.client.send_raw(&both)?;
    for (method, cseq) in [("PLAY", play), ("GET_PARAMETER", play + 1)] {
        let resp = t.client.reply(method, cseq)?;
        anyhow::ensure!(resp.status() == Some(200), "{method}: {}", resp.start);
    }
    // SETUP, PLAY, GET_PARAMETER and their replies: six messages.
    wait_for("six RTSP messages", lab::TIMEOUT, || {
        Ok((t.lab.signaling()?.rtsp_messages >= seen + 6).then_some(()))
    })?;
    t.media_passes()?;
    t.off_path_dropped()?;
    t.request_ok("TEARDOWN", &[])?;
    t.assert_closed("TEARDOWN", &closed_by("teardown"))?;
    assert_eq!(t.lab.signaling()?.rtsp_messages, seen + 8);
    Ok(())
}

/// Interleaved transport: media rides the RTSP connection, no pinhole opens,
/// and UDP at the media range stays dropped.
fn interleaved_opens_nothing(family: Family) -> TestResult {
    let mut t = Case::start(family, Some(60))?;
    t.request_ok(
        "SETUP",
        &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
    )?;
    t.request_ok("PLAY", &[])?;
    // The SETUP, PLAY and their responses crossed the daemon.
    let seen = t.before.rtsp_messages;
    wait_for("the interleaved SETUP and PLAY", lab::TIMEOUT, || {
        Ok((t.lab.signaling()?.rtsp_messages >= seen + 4).then_some(()))
    })?;
    assert_eq!(t.lab.daemon.list()?, vec![]);
    assert_eq!(t.lab.daemon.stats()?.pinholes, 0);
    // Media passes inside the connection.
    for seq in 0..8u8 {
        t.server.send_interleaved(0, &[0x80, 8, 0, seq])?;
    }
    for seq in 0..8u8 {
        assert_eq!(t.client.read_interleaved()?, (0, vec![0x80, 8, 0, seq]));
    }
    // UDP to the media ports is unsolicited.
    t.off_path_dropped()?;
    t.lab
        .assert_dropped(&t.server_rtp, &t.client_rtp, Host::Outside)?;
    t.request_ok("TEARDOWN", &[])?;
    let after = t.lab.signaling()?;
    assert_eq!(after.parse_errors, t.before.parse_errors, "parse errors");
    assert_eq!(
        lab::detail_deltas(&t.before, &after, &DETAIL)?,
        lab::expected_deltas(&DETAIL, &[("calls.rtsp_interleaved", 1)]),
        "call-layer counters"
    );
    Ok(())
}

mod v4 {
    use super::*;

    #[test]
    fn setup_play_teardown() -> TestResult {
        super::setup_play_teardown(Family::V4)
    }

    #[test]
    fn session_timeout_closes() -> TestResult {
        super::session_timeout_closes(Family::V4)
    }

    #[test]
    fn keepalive_holds_session() -> TestResult {
        super::keepalive_holds_session(Family::V4)
    }

    #[test]
    fn interleaved_opens_nothing() -> TestResult {
        super::interleaved_opens_nothing(Family::V4)
    }

    #[test]
    fn split_and_pipelined_requests() -> TestResult {
        super::split_and_pipelined_requests(Family::V4)
    }
}

mod v6 {
    use super::*;

    #[test]
    fn setup_play_teardown() -> TestResult {
        super::setup_play_teardown(Family::V6)
    }

    #[test]
    fn interleaved_opens_nothing() -> TestResult {
        super::interleaved_opens_nothing(Family::V6)
    }
}
