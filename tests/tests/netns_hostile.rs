//! Hostile signaling and hostile media, end to end through the router
//! running `pinhole` with inline signaling (NFQUEUE) and XDP on both router
//! interfaces.
//!
//! SIP here is written by hand ([`sip_craft`]) so that a test controls every
//! identifier a forger would have to know. Every SIP message is sent to a
//! socket the test owns and counted as received there: with inline
//! signaling the daemon's verdict, and with it the call state and the flow
//! map, comes before the delivery, so receiving is the synchronisation.
//!
//! Covered elsewhere, not repeated here (tests/tests/netns_sip.rs, `trust`):
//! signaling from outside `--trusted-signaling` opens nothing
//! (`untrusted_signaling_opens_nothing`, UDP/IPv4 and TCP/IPv6), and a
//! caller's own offer naming an address that is not its signaling address
//! is refused as `third_party_media` (`third_party_media_refused`). This
//! file adds the forger's side: an outside host that is in no call.
//!
//! Needs root and iptables. Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test netns_hostile`.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket},
    time::Duration,
};

use pinhole_integration::{
    flood::{self, RawSender, Tuples},
    lab::{self, detail_deltas, Host, Lab, Owner, TIMEOUT},
    sip_craft::{self, deliver, Dialog, Sdp, SipPeer, SIP_PORT},
    traffic, wait_for, Family, SignalingStats, Topology,
};

type TestResult = anyhow::Result<()>;

/// The forger: a second address on the outside host, in no call.
const ATTACKER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 66);
/// The third party a forged SDP names (an address on the outside host, so
/// the test can also send from it).
const THIRD_PARTY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
/// A second signaling peer on the outside host.
const OTHER_PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
/// The media port the forged SDP names on the third party.
const THIRD_PARTY_PORT: u16 = 30000;
/// Pinholes of a call stay this long after its BYE.
const BYE_GRACE_SECS: u64 = 1;

fn v4(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip), port)
}

/// Adds `ip`/32 to the outside host (the attacker or another peer).
fn add_outside_addr(lab: &Lab, ip: Ipv4Addr) -> anyhow::Result<()> {
    lab.topo
        .outside
        .add_addr(Topology::OUTSIDE_IF, &format!("{ip}/32"))?;
    Ok(())
}

/// A SIP peer on `host`'s own address.
fn sip_peer(lab: &Lab, host: Host) -> anyhow::Result<SipPeer> {
    Ok(SipPeer::bind(
        lab.ns(host),
        SocketAddr::new(lab.ip(host), SIP_PORT),
    )?)
}

/// INVITE (offer), 200 (answer), ACK, each delivered.
fn establish(
    caller: &SipPeer,
    callee: &SipPeer,
    d: &Dialog,
    offer: &Sdp,
    answer: &Sdp,
) -> anyhow::Result<()> {
    Ok(sip_craft::establish(
        caller, callee, d, offer, answer, TIMEOUT,
    )?)
}

/// The two flows of the pair `a` ↔ `b`.
fn pair(a: SocketAddr, b: SocketAddr) -> BTreeSet<lab::FlowKey> {
    BTreeSet::from([(a, b), (b, a)])
}

/// The change of `signaling.refused.<reason>`.
fn refused_delta(before: &SignalingStats, after: &SignalingStats, reason: &str) -> u64 {
    let get = |s: &SignalingStats| {
        s.refused.get(reason).copied().unwrap_or_else(|| {
            panic!(
                "`stats --json` has no signaling.refused.{reason}: {:?}",
                s.refused
            )
        })
    };
    get(after) - get(before)
}

/// The state (`calling`, `confirmed`, `ending`) of the call `call_id`.
fn call_state(lab: &Lab, call_id: &str) -> anyhow::Result<Option<String>> {
    Ok(lab
        .daemon
        .calls()?
        .into_iter()
        .find(|c| c.call_id == call_id)
        .map(|c| c.state))
}

/// Media of the forged-answer cases: the caller is the inside host, so an
/// answer forged on the outside crosses the router on its way to it.
struct AnswerCase {
    lab: Lab,
    caller: SipPeer,
    callee: SipPeer,
    attacker: SipPeer,
    /// The caller's RTP socket and the callee's.
    caller_rtp: UdpSocket,
    callee_rtp: UdpSocket,
    /// A socket on the third party's address and port.
    third_party: UdpSocket,
    d: Dialog,
    offer: Sdp,
    answer: Sdp,
    forged_sdp: Sdp,
}

impl AnswerCase {
    fn new(name: &str) -> anyhow::Result<AnswerCase> {
        let lab = Lab::new(Family::V4, &["--media-ports", "10000-20000"])?;
        add_outside_addr(&lab, ATTACKER)?;
        add_outside_addr(&lab, THIRD_PARTY)?;
        let caller = sip_peer(&lab, Host::Inside)?;
        let callee = sip_peer(&lab, Host::Outside)?;
        let attacker = SipPeer::bind(&lab.topo.outside, v4(ATTACKER, SIP_PORT))?;
        let offer = Sdp::muxed(SocketAddr::new(lab.ip(Host::Inside), 12000));
        let answer = Sdp::muxed(SocketAddr::new(lab.ip(Host::Outside), 16000));
        let forged_sdp = Sdp::muxed(v4(THIRD_PARTY, THIRD_PARTY_PORT));
        let caller_rtp = lab.udp(Host::Inside, offer.media.port())?;
        let callee_rtp = lab.udp(Host::Outside, answer.media.port())?;
        let third_party = lab
            .topo
            .outside
            .udp_socket(v4(THIRD_PARTY, THIRD_PARTY_PORT))?;
        let d = Dialog::new(name, caller.addr(), callee.addr());
        Ok(AnswerCase {
            lab,
            caller,
            callee,
            attacker,
            caller_rtp,
            callee_rtp,
            third_party,
            d,
            offer,
            answer,
            forged_sdp,
        })
    }

    /// The attacker's 200 OK for the call, with `d`'s tags, naming the
    /// third party; delivered to the caller.
    fn forge_answer(&self, d: &Dialog) -> anyhow::Result<()> {
        let forged = d.response(200, "OK", 1, "INVITE", Some(&self.forged_sdp));
        deliver(&self.attacker, &self.caller, &forged, TIMEOUT)?;
        Ok(())
    }

    /// Nothing is open towards the third party: no flow names it, and its
    /// datagrams to the caller's media port are dropped and counted.
    fn third_party_shut_out(&self) -> anyhow::Result<()> {
        let tp = IpAddr::V4(THIRD_PARTY);
        for p in self.lab.daemon.list()? {
            for f in &p.flows {
                assert!(
                    f.src.ip() != tp && f.dst.ip() != tp,
                    "a flow names the third party: {} → {} ({:?})",
                    f.src,
                    f.dst,
                    p.owner
                );
            }
        }
        self.lab.assert_off_path_dropped(
            &self.third_party,
            &[self.offer.media],
            &self.caller_rtp,
            Host::Inside,
        )?;
        Ok(())
    }
}

/// A 200 OK forged by an outside host for a call still ringing, with a new
/// To-tag and an SDP naming a third party: the third party gets nothing
/// (refused as `third_party_media`, its datagrams dropped).
///
/// The forged 2xx is the first one the daemon sees, so it confirms the
/// call as the forger's dialog; the callee's real 200 that follows is a
/// second fork's 2xx, which the daemon leaves to the caller to BYE
/// (RFC 3261 §13.2.2.4) and ignores (`sip_unmatched`). The caller's user
/// agent, which also took the first 2xx, is in the same position. Forging
/// this needs the Call-ID and the caller's tag, which only a host that sees
/// the INVITE has: the documented cost is that such a host can deny the
/// call its media, never open a pinhole to someone else.
#[test]
fn forged_answer_while_ringing_opens_nothing_for_a_third_party() -> TestResult {
    let t = AnswerCase::new("race")?;
    let before = t.lab.signaling()?;
    deliver(
        &t.caller,
        &t.callee,
        &t.d.invite(1, Some(&t.offer)),
        TIMEOUT,
    )?;
    t.forge_answer(&t.d.with_callee_tag("forged"))?;
    let after = t.lab.signaling()?;
    assert_eq!(refused_delta(&before, &after, "third_party_media"), 1);
    assert_eq!(t.lab.daemon.list()?, vec![], "pinholes after the forgery");
    assert_eq!(t.lab.daemon.stats()?.flows.used, 0);
    t.third_party_shut_out()?;

    // The real answer arrives second.
    let real = t.d.response(200, "OK", 1, "INVITE", Some(&t.answer));
    deliver(&t.callee, &t.caller, &real, TIMEOUT)?;
    deliver(&t.caller, &t.callee, &t.d.ack(1), TIMEOUT)?;
    let end = t.lab.signaling()?;
    assert_eq!(
        detail_deltas(
            &before,
            &end,
            &["calls.sip_unmatched", "calls.pairs_opened"]
        )?,
        [
            ("calls.sip_unmatched".to_owned(), 2),
            ("calls.pairs_opened".to_owned(), 0)
        ],
        "the real 200 and its ACK belong to a dialog the daemon does not follow"
    );
    assert_eq!(refused_delta(&before, &end, "third_party_media"), 1);
    assert_eq!(t.lab.daemon.stats()?.flows.used, 0);
    t.third_party_shut_out()?;
    t.lab
        .assert_dropped(&t.callee_rtp, &t.caller_rtp, Host::Inside)?;
    Ok(())
}

/// A 200 OK forged by an outside host for an established call, looking
/// like a retransmission of the callee's answer (same tags) but naming a
/// third party: the third party gets nothing, and the call's own pinhole
/// is untouched. A retransmitted 2xx carries the same answer (RFC 3261
/// §13.3.1.4, RFC 6337 §3.1), and the user agents do not read its SDP, so
/// letting it move the media would only let a forger cut a call's media
/// without either party noticing.
#[test]
fn forged_answer_repeat_leaves_the_established_call_alone() -> TestResult {
    let t = AnswerCase::new("repeat")?;
    establish(&t.caller, &t.callee, &t.d, &t.offer, &t.answer)?;
    let owner = Owner::Sip(&t.d.call_id);
    let want = pair(t.offer.media, t.answer.media);
    t.lab.wait_flows(owner, &want, "the call's pinhole")?;
    t.lab.assert_passes(&t.caller_rtp, &t.callee_rtp)?;

    let before = t.lab.signaling()?;
    t.forge_answer(&t.d)?;
    let after = t.lab.signaling()?;
    assert_eq!(
        detail_deltas(
            &before,
            &after,
            &["calls.pairs_opened", "calls.pairs_closed.renegotiated"]
        )?,
        [
            ("calls.pairs_opened".to_owned(), 0),
            ("calls.pairs_closed.renegotiated".to_owned(), 0)
        ],
        "the forged repeat changed the call's pairs"
    );
    t.lab
        .wait_flows(owner, &want, "the call's pinhole, unchanged")?;
    t.third_party_shut_out()?;
    t.lab.assert_passes(&t.caller_rtp, &t.callee_rtp)?;
    t.lab.assert_passes(&t.callee_rtp, &t.caller_rtp)?;
    Ok(())
}

/// A forged BYE from an off-path host (in no call, not on the signaling
/// path).
///
/// Decision (docs/security.md, "Forged BYE"): the daemon honours a BYE by
/// the dialog's identifiers, Call-ID, the caller's From-tag and the
/// callee's To-tag, exactly as the user agents do (RFC 3261 §12.2.2), and
/// not by its source address. A BYE with someone else's Call-ID but
/// guessed tags is ignored and counted (`calls.sip_unmatched`): the call
/// stays confirmed and its media keeps passing. A BYE with the full dialog
/// identifier ends the call after `--bye-grace` from whatever source,
/// because the callee it is addressed to ends the call on it too.
#[test]
fn forged_bye_needs_the_dialog_identifiers() -> TestResult {
    let grace = BYE_GRACE_SECS.to_string();
    let lab = Lab::new(
        Family::V4,
        &["--media-ports", "10000-20000", "--bye-grace", &grace],
    )?;
    add_outside_addr(&lab, ATTACKER)?;
    let caller = sip_peer(&lab, Host::Outside)?;
    let callee = sip_peer(&lab, Host::Inside)?;
    let attacker = SipPeer::bind(&lab.topo.outside, v4(ATTACKER, SIP_PORT))?;
    let offer = Sdp::muxed(SocketAddr::new(lab.ip(Host::Outside), 16000));
    let answer = Sdp::muxed(SocketAddr::new(lab.ip(Host::Inside), 12000));
    let caller_rtp = lab.udp(Host::Outside, offer.media.port())?;
    let callee_rtp = lab.udp(Host::Inside, answer.media.port())?;
    let d = Dialog::new("bye", caller.addr(), callee.addr());
    establish(&caller, &callee, &d, &offer, &answer)?;
    let owner = Owner::Sip(&d.call_id);
    let want = pair(offer.media, answer.media);
    lab.wait_flows(owner, &want, "the call's pinhole")?;

    // Someone else's Call-ID with guessed tags, then with the real caller
    // tag and a guessed callee tag: both reach the callee, neither ends
    // the call.
    let guesses = [
        d.with_caller_tag("guess1").with_callee_tag("guess2"),
        d.with_callee_tag("guess3"),
    ];
    for (i, forged) in guesses.iter().enumerate() {
        let before = lab.signaling()?;
        deliver(&attacker, &callee, &forged.bye(2), TIMEOUT)?;
        let after = lab.signaling()?;
        assert_eq!(
            detail_deltas(
                &before,
                &after,
                &["calls.sip_unmatched", "calls.calls_closed.bye"]
            )?,
            [
                ("calls.sip_unmatched".to_owned(), 1),
                ("calls.calls_closed.bye".to_owned(), 0)
            ],
            "guess {i}"
        );
        assert_eq!(
            call_state(&lab, &d.call_id)?.as_deref(),
            Some("confirmed"),
            "guess {i}"
        );
        lab.wait_flows(owner, &want, "the call's pinhole after a guessed BYE")?;
        lab.assert_passes(&caller_rtp, &callee_rtp)?;
        lab.assert_passes(&callee_rtp, &caller_rtp)?;
    }

    // The full dialog identifier, from the off-path host: the call ends
    // after the grace, like the callee's side of it.
    let before = lab.signaling()?;
    deliver(&attacker, &callee, &d.bye(2), TIMEOUT)?;
    assert_eq!(call_state(&lab, &d.call_id)?.as_deref(), Some("ending"));
    lab.wait_gone(
        owner,
        TIMEOUT + Duration::from_secs(BYE_GRACE_SECS),
        "a BYE with the dialog's identifiers",
    )?;
    let after = lab.signaling()?;
    assert_eq!(
        detail_deltas(
            &before,
            &after,
            &[
                "calls.sip_unmatched",
                "calls.calls_closed.bye",
                "calls.pairs_closed.bye"
            ]
        )?,
        [
            ("calls.sip_unmatched".to_owned(), 0),
            ("calls.calls_closed.bye".to_owned(), 1),
            ("calls.pairs_closed.bye".to_owned(), 1)
        ]
    );
    lab.assert_dropped(&caller_rtp, &callee_rtp, Host::Inside)?;
    // The caller's own BYE afterwards finds no call.
    deliver(&caller, &callee, &d.bye(2), TIMEOUT)?;
    let end = lab.signaling()?;
    assert_eq!(
        detail_deltas(&after, &end, &["calls.sip_unmatched"])?,
        [("calls.sip_unmatched".to_owned(), 1)]
    );
    assert_eq!(end.calls_active, 0);
    Ok(())
}

/// The per-peer cap in the INVITE flood.
const PEER_CAP: u64 = 20;
/// INVITEs (each answered 200) of the flood, each with its own Call-ID.
const INVITE_FLOOD: u64 = 200;
/// INVITEs in flight at once (fits the callee's socket buffer).
const WINDOW: u64 = 25;

/// The i-th flood call's offer and answer.
fn flood_media(lab: &Lab, caller_ip: IpAddr, i: u64) -> (Sdp, Sdp) {
    let i = i as u16;
    (
        Sdp::muxed(SocketAddr::new(caller_ip, 16000 + 2 * i)),
        Sdp::muxed(SocketAddr::new(lab.ip(Host::Inside), 12000 + 2 * i)),
    )
}

/// 200 INVITEs with distinct Call-IDs from one peer, each answered 200 by
/// the callee: the first `--max-calls-per-peer` (20) become calls with
/// pinholes, the other 180 are refused and counted as `peer_cap` (and their
/// answers, matching no call, as `sip_unmatched`). Another peer is not
/// affected, and once the first peer's calls end, it may call again.
#[test]
fn invite_flood_hits_the_per_peer_cap() -> TestResult {
    let cap = PEER_CAP.to_string();
    let lab = Lab::new(
        Family::V4,
        &[
            "--media-ports",
            "10000-20000",
            "--max-calls-per-peer",
            &cap,
            "--bye-grace",
            "0",
        ],
    )?;
    add_outside_addr(&lab, OTHER_PEER)?;
    let caller = sip_peer(&lab, Host::Outside)?;
    let callee = sip_peer(&lab, Host::Inside)?;
    let caller_ip = lab.ip(Host::Outside);
    let dialogs: Vec<Dialog> = (0..INVITE_FLOOD)
        .map(|i| Dialog::new(&format!("flood{i}"), caller.addr(), callee.addr()))
        .collect();
    let before = lab.signaling()?;
    for w in 0..INVITE_FLOOD / WINDOW {
        let calls = (w * WINDOW..(w + 1) * WINDOW).map(|i| (i, &dialogs[i as usize]));
        let invites: Vec<String> = calls
            .clone()
            .map(|(i, d)| d.invite(1, Some(&flood_media(&lab, caller_ip, i).0)))
            .collect();
        for m in &invites {
            caller.send(callee.addr(), m)?;
        }
        let got: Vec<String> = callee
            .receive(invites.len(), TIMEOUT)?
            .into_iter()
            .map(|(m, _)| m)
            .collect();
        assert_eq!(got, invites, "INVITEs of window {w}");
        let answers: Vec<String> = calls
            .map(|(i, d)| {
                let answer = flood_media(&lab, caller_ip, i).1;
                d.response(200, "OK", 1, "INVITE", Some(&answer))
            })
            .collect();
        for m in &answers {
            callee.send(caller.addr(), m)?;
        }
        assert_eq!(caller.receive(answers.len(), TIMEOUT)?.len(), answers.len());
    }
    let after = lab.signaling()?;
    let refused = INVITE_FLOOD - PEER_CAP;
    assert_eq!(after.calls_opened - before.calls_opened, PEER_CAP);
    assert_eq!(after.calls_active, PEER_CAP);
    assert_eq!(refused_delta(&before, &after, "peer_cap"), refused);
    assert_eq!(
        detail_deltas(
            &before,
            &after,
            &[
                "calls.refused.per_peer_cap",
                "calls.sip_unmatched",
                "calls.pairs_opened"
            ]
        )?,
        [
            ("calls.refused.per_peer_cap".to_owned(), refused),
            ("calls.sip_unmatched".to_owned(), refused),
            ("calls.pairs_opened".to_owned(), PEER_CAP)
        ]
    );
    // The pinholes are exactly those of the first PEER_CAP calls.
    let stats = lab.daemon.stats()?;
    assert_eq!((stats.pinholes, stats.flows.used), (PEER_CAP, 2 * PEER_CAP));
    let owners: BTreeSet<String> = lab
        .daemon
        .list()?
        .into_iter()
        .filter_map(|p| p.owner)
        .collect();
    let first: BTreeSet<String> = dialogs[..PEER_CAP as usize]
        .iter()
        .map(|d| {
            owners
                .iter()
                .find(|o| Owner::Sip(&d.call_id).matches(Some(o)))
                .cloned()
                .unwrap_or_else(|| panic!("no pinhole for {}", d.call_id))
        })
        .collect();
    assert_eq!(owners, first, "pinhole owners");

    // Another peer is not capped by the first one's flood.
    let other = SipPeer::bind(&lab.topo.outside, v4(OTHER_PEER, SIP_PORT))?;
    let d = Dialog::new("other-peer", other.addr(), callee.addr());
    let (offer, answer) = flood_media(&lab, OTHER_PEER.into(), INVITE_FLOOD);
    establish(&other, &callee, &d, &offer, &answer)?;
    lab.wait_flows_of(&d.call_id, &pair(offer.media, answer.media))?;

    // The first peer's calls end; it may call again.
    for d in &dialogs[..PEER_CAP as usize] {
        deliver(&caller, &callee, &d.bye(2), TIMEOUT)?;
    }
    let d = Dialog::new("after-bye", caller.addr(), callee.addr());
    let (offer, answer) = flood_media(&lab, caller_ip, INVITE_FLOOD + 1);
    establish(&caller, &callee, &d, &offer, &answer)?;
    let end = lab.signaling()?;
    assert_eq!(end.calls_active, 2);
    assert_eq!(end.calls_opened - before.calls_opened, PEER_CAP + 2);
    assert_eq!(refused_delta(&before, &end, "peer_cap"), refused);
    let stats = lab.daemon.stats()?;
    assert_eq!((stats.pinholes, stats.flows.used), (2, 4));
    lab.wait_flows_of(&d.call_id, &pair(offer.media, answer.media))?;
    Ok(())
}

/// Extension of [`Lab`] for labs with more than one call.
trait LabExt {
    /// Waits until the pinholes of `call_id` carry exactly `want`.
    fn wait_flows_of(&self, call_id: &str, want: &BTreeSet<lab::FlowKey>) -> anyhow::Result<()>;
}

impl LabExt for Lab {
    fn wait_flows_of(&self, call_id: &str, want: &BTreeSet<lab::FlowKey>) -> anyhow::Result<()> {
        let owner = Owner::Sip(call_id);
        wait_for(&format!("the pinholes of {call_id}"), TIMEOUT, || {
            let flows: BTreeSet<lab::FlowKey> = self
                .daemon
                .list()?
                .iter()
                .filter(|p| owner.matches(p.owner.as_deref()))
                .flat_map(|p| p.flows.iter().map(|f| (f.src, f.dst)))
                .collect();
            Ok((&flows == want).then_some(()))
        })?;
        Ok(())
    }
}

/// Datagrams of the unsolicited flood, each with its own 5-tuple.
const FLOOD_TUPLES: u64 = 1_000_000;
/// Bound on sending the flood.
const FLOOD_TIMEOUT: Duration = Duration::from_secs(60);
/// How much the daemon's resident set may grow across the flood. The flood
/// never reaches userspace (XDP drops it); what the daemon does meanwhile is
/// answer a few `stats` and `list` requests.
const RSS_TOLERANCE_KIB: u64 = 512;
/// The established stream's endpoints.
const STREAM_OUTSIDE_PORT: u16 = 14000;
const STREAM_INSIDE_PORT: u16 = 10000;

/// Forces a receive buffer of `bytes` (the stream's datagrams wait there
/// until the flood is over).
fn force_rcvbuf(sock: &UdpSocket, bytes: i32) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt on an open socket with a valid int option.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    anyhow::ensure!(
        rc == 0,
        "SO_RCVBUFFORCE: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// One million distinct unsolicited tuples (sources all over 192.0.2.0/24,
/// every destination port of the media range on the inside host) hit the
/// router's outside interface while a pinhole opened with `open` carries a
/// steady stream both ways, one datagram each way after every batch of
/// [`flood::BATCH`] flood frames.
///
/// Everything unsolicited is dropped and counted (`miss` rises by exactly
/// one million), the flow map does not grow, the daemon's resident set
/// stays within [`RSS_TOLERANCE_KIB`], and the stream loses nothing: every
/// datagram arrives and the pinhole's per-flow counters match.
#[test]
fn unsolicited_tuple_flood_is_dropped_without_growth_or_loss() -> TestResult {
    let lab = Lab::new(Family::V4, &["--media-ports", "10000-20000"])?;
    let daemon_pid = lab.daemon.pid().expect("the daemon runs");
    let comm = std::fs::read_to_string(format!("/proc/{daemon_pid}/comm"))?;
    anyhow::ensure!(
        comm.trim() == "pinhole",
        "pid {daemon_pid} is {comm:?}, not the daemon"
    );
    let outside = SocketAddr::new(lab.ip(Host::Outside), STREAM_OUTSIDE_PORT);
    let inside = SocketAddr::new(lab.ip(Host::Inside), STREAM_INSIDE_PORT);
    lab.daemon.open(outside, inside, &[])?;
    let out_sock = lab.udp(Host::Outside, outside.port())?;
    let in_sock = lab.udp(Host::Inside, inside.port())?;
    force_rcvbuf(&out_sock, 32 << 20)?;
    force_rcvbuf(&in_sock, 32 << 20)?;
    lab.assert_passes(&out_sock, &in_sock)?;
    lab.assert_passes(&in_sock, &out_sock)?;

    let router_mac = flood::link_mac(&lab.topo.router, Topology::ROUTER_OUTSIDE_IF)?;
    let sender = RawSender::open(&lab.topo.outside, Topology::OUTSIDE_IF, router_mac)?;
    let tuples = Tuples {
        src_net: Ipv4Addr::new(192, 0, 2, 0),
        src_hosts: (10, 249),
        dst: match lab.ip(Host::Inside) {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => unreachable!("an IPv4 lab"),
        },
        dst_ports: (10000, 20000),
    };

    let stats0 = lab.daemon.stats()?;
    let flows0 = lab.daemon.list()?;
    let rss0 = flood::vm_rss_kib(daemon_pid)?;
    let mut stream_sent = 0u32;
    let report = sender.flood(&tuples, FLOOD_TUPLES, FLOOD_TIMEOUT, |_| {
        traffic::send(&out_sock, inside, 1)?;
        traffic::send(&in_sock, outside, 1)?;
        stream_sent += 1;
        Ok(())
    })?;
    assert_eq!(report.sent, FLOOD_TUPLES);
    let miss = lab
        .daemon
        .wait_counter("miss", stats0.packets("miss")? + FLOOD_TUPLES, TIMEOUT)?;
    let inbound = traffic::receive(&in_sock, stream_sent, TIMEOUT)?;
    let outbound = traffic::receive(&out_sock, stream_sent, TIMEOUT)?;
    let stats1 = lab.daemon.stats()?;
    let flows1 = lab.daemon.list()?;
    let rss1 = flood::vm_rss_kib(daemon_pid)?;
    eprintln!(
        "flood: {} tuples in {:.2?} ({:.0} pps); stream {stream_sent} datagrams each way, \
         received {} in / {} out; flows.used {} → {}; daemon VmRSS {rss0} → {rss1} KiB",
        report.sent,
        report.elapsed,
        report.pps(),
        inbound.data,
        outbound.data,
        stats0.flows.used,
        stats1.flows.used,
    );

    assert_eq!(miss - stats0.packets("miss")?, FLOOD_TUPLES, "miss counter");
    assert_eq!(
        (inbound.data, outbound.data),
        (stream_sent, stream_sent),
        "stream datagrams lost during the flood"
    );
    assert_eq!(inbound.senders, BTreeSet::from([outside]));
    assert_eq!(outbound.senders, BTreeSet::from([inside]));
    assert_eq!(stats1.flows, stats0.flows, "flow map usage");
    assert_eq!((stats1.pinholes, stats1.flows.used), (1, 2));
    assert_eq!(
        stats1.packets("hit")? - stats0.packets("hit")?,
        2 * u64::from(stream_sent),
        "hits: the stream, nothing else"
    );
    let [p0] = &flows0[..] else {
        panic!("one pinhole before the flood: {flows0:?}")
    };
    let [p1] = &flows1[..] else {
        panic!("one pinhole after the flood: {flows1:?}")
    };
    for (src, dst) in [(outside, inside), (inside, outside)] {
        let count = |p: &pinhole_integration::Pinhole| p.flow(src, dst).map(|f| f.packets);
        assert_eq!(
            count(p1).zip(count(p0)).map(|(a, b)| a - b),
            Some(u64::from(stream_sent)),
            "flow {src} → {dst}"
        );
    }
    assert!(
        rss1 <= rss0 + RSS_TOLERANCE_KIB,
        "daemon VmRSS grew from {rss0} to {rss1} KiB"
    );
    Ok(())
}
