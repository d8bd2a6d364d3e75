//! The ng control protocol (`--ng-listen`) end to end, driven by a real
//! outside client: Debian's `rtpengine-ng-client` (package
//! `rtpengine-utils`), as a SIP proxy's rtpengine module would. The daemon
//! guards the router of the standard topology; the client runs on the
//! router and talks to the listener over loopback. Offer and answer open
//! the call's pinholes (they appear in `list --json` with an `ng:` owner and
//! RTP passes), query reports the map's counters, delete closes them (they
//! vanish and RTP is dropped again). Hostile datagrams get `result: error`
//! and a retransmitted request runs once.
//!
//! Needs root and `rtpengine-ng-client`. Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test ng_api`.

use std::{
    net::{SocketAddr, UdpSocket},
    process::Command,
    time::Duration,
};

use pinhole_integration::{
    lab::{self, Host, Lab},
    run_bounded, wait_for, CliOutput, Family, Pinhole,
};

/// The ng listener's port on the router's loopback.
const NG_PORT: u16 = 2223;
/// The outside caller's RTP port and the inside callee's (both in the
/// default media range, so both directions are filtered).
const CALLER_PORT: u16 = 12000;
const CALLEE_PORT: u16 = 10000;
/// Datagrams per burst (the lab's).
const N: u32 = lab::BURST;
const TIMEOUT: Duration = Duration::from_secs(10);

type TestResult = anyhow::Result<()>;

/// The lab with the ng listener on, and the call's media endpoints.
struct Case {
    lab: Lab,
}

impl Case {
    fn new(family: Family) -> anyhow::Result<Case> {
        Case::with_args(family, &[])
    }

    /// [`Case::new`] with `extra` daemon arguments.
    fn with_args(family: Family, extra: &[&str]) -> anyhow::Result<Case> {
        let client = which("rtpengine-ng-client");
        anyhow::ensure!(
            client,
            "rtpengine-ng-client is missing: install Debian's rtpengine-utils \
             (cargo xtask test does)"
        );
        let listen = format!("127.0.0.1:{NG_PORT}");
        let mut args = vec!["--signaling", "off", "--ng-listen", &listen];
        args.extend_from_slice(extra);
        let lab = Lab::new(family, &args)?;
        Ok(Case { lab })
    }

    fn caller(&self) -> SocketAddr {
        self.lab.addr(Host::Outside, CALLER_PORT)
    }

    fn callee(&self) -> SocketAddr {
        self.lab.addr(Host::Inside, CALLEE_PORT)
    }

    /// `rtpengine-ng-client --proxy-address 127.0.0.1 --proxy-port P args…`
    /// on the router.
    fn ng_client<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> anyhow::Result<CliOutput> {
        let mut cmd = self.lab.topo.router.command("rtpengine-ng-client");
        cmd.args(["--proxy-address", "127.0.0.1", "--proxy-port"])
            .arg(NG_PORT.to_string())
            .args(args);
        Ok(run_bounded(&mut cmd, TIMEOUT)?)
    }

    /// Like [`ng_client`](Self::ng_client), failing unless it succeeds.
    fn ng_ok<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> anyhow::Result<String> {
        let out = self.ng_client(args)?;
        anyhow::ensure!(
            out.status.success(),
            "`{}` failed ({}):\n{}{}",
            out.cmd,
            out.status,
            out.stdout,
            out.stderr
        );
        Ok(out.stdout)
    }

    /// The SDP a side sends: one audio stream at `addr`.
    fn sdp(&self, addr: SocketAddr) -> String {
        let (net, ip) = match addr {
            SocketAddr::V4(a) => ("IP4", a.ip().to_string()),
            SocketAddr::V6(a) => ("IP6", a.ip().to_string()),
        };
        format!(
            "v=0\r\no=- 1 1 IN {net} {ip}\r\ns=-\r\nc=IN {net} {ip}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            addr.port()
        )
    }

    /// `--received-from FAMILY --received-from ADDRESS`: the SIP message
    /// came from `addr`'s host, as a proxy's module says (pinhole checks the
    /// SDP's addresses against it).
    fn received_from(addr: SocketAddr) -> [String; 4] {
        let family = if addr.is_ipv4() { "IP4" } else { "IP6" };
        let rf = "--received-from".to_string();
        [rf.clone(), family.into(), rf, addr.ip().to_string()]
    }

    fn offer(&self, call: &str) -> anyhow::Result<String> {
        self.ng_ok(&self.offer_args(call, self.caller(), self.caller(), &[]))
    }

    /// An offer of `media` in the SDP, received from `from`'s host, with
    /// `flags` (client options).
    fn offer_args(
        &self,
        call: &str,
        media: SocketAddr,
        from: SocketAddr,
        flags: &[&str],
    ) -> Vec<String> {
        let mut args: Vec<String> = ["--call-id", call, "--from-tag", "caller-tag"]
            .map(String::from)
            .into();
        args.extend(Self::received_from(from));
        args.extend(flags.iter().map(|f| f.to_string()));
        args.extend(["offer".into(), format!("--sdp={}", self.sdp(media))]);
        args
    }

    fn answer(&self, call: &str) -> anyhow::Result<String> {
        self.answer_with(call, &[])
    }

    /// The callee's answer, received from its host, with `flags`.
    fn answer_with(&self, call: &str, flags: &[&str]) -> anyhow::Result<String> {
        self.ng_ok(&self.answer_args(call, flags))
    }

    /// The client's arguments for [`answer_with`](Self::answer_with).
    fn answer_args(&self, call: &str, flags: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--call-id",
            call,
            "--from-tag",
            "caller-tag",
            "--to-tag",
            "callee-tag",
        ]
        .map(String::from)
        .into();
        args.extend(Self::received_from(self.callee()));
        args.extend(flags.iter().map(|f| f.to_string()));
        args.extend([
            "answer".into(),
            format!("--sdp={}", self.sdp(self.callee())),
        ]);
        args
    }

    /// The pinholes `call` holds, by their owner tag.
    fn pinholes_of(&self, call: &str) -> anyhow::Result<Vec<Pinhole>> {
        let owner = format!("ng:{call};from-tag=caller-tag");
        Ok(self
            .lab
            .daemon
            .list()?
            .into_iter()
            .filter(|p| p.owner.as_deref() == Some(owner.as_str()))
            .collect())
    }

    /// The caller's and the callee's media sockets.
    fn media_sockets(&self) -> anyhow::Result<(UdpSocket, UdpSocket)> {
        Ok((
            self.lab.udp(Host::Outside, CALLER_PORT)?,
            self.lab.udp(Host::Inside, CALLEE_PORT)?,
        ))
    }

    /// A burst each way between caller and callee all arrives.
    fn media_passes(&self) -> TestResult {
        let (caller, callee) = self.media_sockets()?;
        self.lab.assert_passes(&caller, &callee)?;
        self.lab.assert_passes(&callee, &caller)?;
        Ok(())
    }

    /// A burst caller → callee is dropped: the `miss` counter rises by at
    /// least the burst, and none arrives before a marker the router sends
    /// afterwards.
    fn media_dropped(&self) -> TestResult {
        let (caller, callee) = self.media_sockets()?;
        self.lab.assert_dropped(&caller, &callee, Host::Inside)?;
        Ok(())
    }
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The first `packets => 'N'` after `RTP => {` in the totals of a Data::Dumper
/// reply as `rtpengine-ng-client` prints it.
fn rtp_total_packets(dump: &str) -> Option<u64> {
    let totals = &dump[dump.find("totals =>")?..];
    let rtp = &totals[totals.find("RTP =>")?..];
    let line = rtp
        .lines()
        .find(|l| l.trim_start().starts_with("packets =>"))?;
    line.split('\'').nth(1)?.parse().ok()
}

fn offer_answer_query_delete(family: Family) -> TestResult {
    let case = Case::new(family)?;
    let call = format!("ng-{family:?}@proxy.example.com");

    let pong = case.ng_ok(&["ping"])?;
    assert!(pong.contains("result => 'pong'"), "{pong}");
    assert!(case.lab.daemon.list()?.is_empty());
    case.media_dropped()?;

    // The offer changes nothing in the map; the SDP comes back unchanged.
    let offered = case.offer(&call)?;
    let sdp = case.sdp(case.caller());
    let new_sdp = offered
        .split("New SDP:")
        .nth(1)
        .unwrap_or_else(|| panic!("no New SDP in:\n{offered}"));
    for line in sdp.split("\r\n").filter(|l| !l.is_empty()) {
        assert!(new_sdp.contains(line), "`{line}` missing in:\n{offered}");
    }
    assert!(case.lab.daemon.list()?.is_empty(), "an offer opens nothing");

    // The answer opens RTP and RTCP between the two ends.
    case.answer(&call)?;
    let mut pinholes = case.pinholes_of(&call)?;
    pinholes.sort_by_key(|p| p.a.port());
    let ends: Vec<(SocketAddr, SocketAddr)> = pinholes.iter().map(|p| (p.a, p.b)).collect();
    let next = |a: SocketAddr| SocketAddr::new(a.ip(), a.port() + 1);
    assert_eq!(
        ends,
        vec![
            (case.caller(), case.callee()),
            (next(case.caller()), next(case.callee()))
        ]
    );
    assert_eq!(case.lab.daemon.stats()?.flows.used, 4, "4 flows in the map");

    case.media_passes()?;

    // query: the map's counters of the call's streams.
    let q = case.ng_ok(&["--call-id", &call, "query"])?;
    assert_eq!(rtp_total_packets(&q), Some(2 * u64::from(N)), "{q}");
    let calls = case.lab.daemon.calls()?;
    assert_eq!(calls.len(), 1, "{calls:?}");
    let c = &calls[0];
    assert_eq!(
        (c.kind.as_str(), c.call_id.as_str(), c.tag.as_str()),
        ("ng", call.as_str(), "caller-tag")
    );
    assert_eq!(
        (c.state.as_str(), c.packets),
        ("confirmed", 2 * u64::from(N))
    );
    let rtp = &c.streams[0];
    assert_eq!(
        (rtp.kind.as_str(), rtp.a, rtp.b),
        ("rtp", case.caller(), case.callee())
    );
    assert_eq!(
        (rtp.a_to_b.packets, rtp.b_to_a.packets),
        (u64::from(N), u64::from(N))
    );
    let listed = case.ng_ok(&["list"])?;
    assert!(listed.contains(&format!("'{call}'")), "{listed}");

    // delete (no delay): the pinholes vanish from the map, media is dropped.
    case.ng_ok(&[
        "--call-id",
        &call,
        "--from-tag",
        "caller-tag",
        "--delete-delay",
        "0",
        "delete",
    ])?;
    assert!(case.lab.daemon.list()?.is_empty());
    assert_eq!(
        case.lab.daemon.stats()?.flows.used,
        0,
        "flows left in the map"
    );
    assert!(case.lab.daemon.calls()?.is_empty());
    case.media_dropped()?;

    // Querying a deleted call is an error the client reports.
    let gone = case.ng_client(&["--call-id", &call, "query"])?;
    assert!(!gone.status.success());
    assert!(gone.stderr.contains("Unknown call-ID"), "{}", gone.stderr);
    Ok(())
}

#[test]
fn offer_answer_query_delete_ipv4() -> TestResult {
    offer_answer_query_delete(Family::V4)
}

#[test]
fn offer_answer_query_delete_ipv6() -> TestResult {
    offer_answer_query_delete(Family::V6)
}

#[test]
fn delete_delay_keeps_the_pinholes_until_it_passes() -> TestResult {
    let case = Case::new(Family::V4)?;
    let call = "delayed@proxy.example.com";
    case.offer(call)?;
    case.answer(call)?;
    assert_eq!(case.pinholes_of(call)?.len(), 2);
    case.ng_ok(&["--call-id", call, "--delete-delay", "1", "delete"])?;
    // Still open right after the delete…
    assert_eq!(case.pinholes_of(call)?.len(), 2, "closed before the delay");
    assert_eq!(case.lab.daemon.calls()?[0].state, "ending");
    case.media_passes()?;
    // … and gone once the delay has passed.
    wait_for("the delayed delete", TIMEOUT, || {
        Ok(case.lab.daemon.list()?.is_empty().then_some(()))
    })?;
    assert_eq!(case.lab.daemon.stats()?.flows.used, 0);
    case.media_dropped()?;
    Ok(())
}

/// Sends `datagram` to the listener from the router; the reply, if one
/// comes within a short bound.
fn raw(sock: &UdpSocket, datagram: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
    sock.send_to(datagram, ("127.0.0.1", NG_PORT))?;
    let mut buf = vec![0u8; 65536];
    // A signal to the test process (another test's child exiting) may
    // interrupt the wait; wait again, a bounded number of times.
    for _ in 0..16 {
        match sock.recv(&mut buf) {
            Ok(n) => return Ok(Some(buf[..n].to_vec())),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("waiting for an ng reply was interrupted 16 times")
}

#[test]
fn hostile_requests_get_errors_and_retransmissions_run_once() -> TestResult {
    let case = Case::new(Family::V4)?;
    // An unknown command through the real client.
    let bad = case.ng_client(&["frobnicate"])?;
    assert!(!bad.status.success());
    assert!(
        bad.stderr.contains("unknown command `frobnicate`"),
        "{}",
        bad.stderr
    );

    let sock = case
        .lab
        .topo
        .router
        .udp_socket("127.0.0.1:0".parse().unwrap())?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    // (datagram, expected reply prefix or None for no reply)
    let big = {
        let mut d = b"big d7:command4:ping3:pad40000:".to_vec();
        d.extend(std::iter::repeat_n(b'x', 40_000));
        d.push(b'e');
        d
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"c1 d7:command4:ping".to_vec(), "malformed bencode"),
        (b"c2 li1ee".to_vec(), "dictionary"),
        (b"c3 d3:foo3:bare".to_vec(), "command"),
        (b"c4 {\"command\":".to_vec(), "JSON"),
        (big, "exceeds"),
    ];
    for (datagram, reason) in cases {
        let cookie = datagram.split(|b| *b == b' ').next().unwrap().to_vec();
        let reply = raw(&sock, &datagram)?.expect("an error reply");
        let text = String::from_utf8_lossy(&reply).into_owned();
        assert!(reply.starts_with(&[&cookie[..], b" "].concat()), "{text}");
        assert!(
            text.contains("5:error") || text.contains("\"error\""),
            "{text}"
        );
        assert!(text.contains(reason), "`{reason}` not in {text}");
    }
    // No cookie: no reply. The listener is still there afterwards.
    assert_eq!(raw(&sock, b"nocookie")?, None);
    let pong = raw(&sock, b"p1 d7:command4:pinge")?.expect("pong");
    assert_eq!(pong, b"p1 d6:result4:ponge");

    // A retransmitted offer gets the same reply and runs once.
    let sdp = case.sdp(case.caller());
    let offer = format!(
        "r1 d7:command5:offer7:call-id4:re-18:from-tag2:ft3:sdp{}:{sdp}5:flagsl13:trust-addressee",
        sdp.len()
    );
    let first = raw(&sock, offer.as_bytes())?.expect("a reply");
    let again = raw(&sock, offer.as_bytes())?.expect("a reply");
    assert_eq!(first, again);
    assert!(String::from_utf8_lossy(&first).contains("6:result2:ok"));
    let stats: serde_json::Value =
        serde_json::from_str(&case.lab.daemon.cli_ok(&["stats", "--json"])?)?;
    let ng = &stats["signaling"]["detail"]["ng"];
    assert_eq!(ng["retransmissions"], 1, "{ng}");
    // The five above and the unknown command.
    assert_eq!(ng["invalid"], 6, "{ng}");
    assert_eq!(ng["no_cookie"], 1, "{ng}");
    Ok(())
}

/// The measured bug: an offer whose SDP names a third party on the
/// caller's network while `received-from` names the caller let the third
/// party's media through (20 of 20). Now the offer gets `result: error`
/// naming the address, nothing is tracked, and a burst from the third party
/// to the callee is dropped, every datagram counted as a `miss`. The same
/// offer with `trust-address` (the proxy vouching) is accepted and the
/// burst passes: the check is what stops it.
fn third_party_sdp_is_refused(family: Family) -> TestResult {
    let case = Case::new(family)?;
    let third_ip: std::net::IpAddr = match family {
        Family::V4 => "192.0.2.66".parse()?,
        Family::V6 => "2001:db8:1::66".parse()?,
    };
    let cidr = format!("{third_ip}/{}", family.prefix_len());
    case.lab.ns(Host::Outside).add_addr("eth0", &cidr)?;
    let third = SocketAddr::new(third_ip, CALLER_PORT);
    let third_sock = case.lab.ns(Host::Outside).udp_socket(third)?;
    let callee = case.lab.udp(Host::Inside, CALLEE_PORT)?;

    let out = case.ng_client(&case.offer_args("tp-1", third, case.caller(), &[]))?;
    let why = format!(
        "media address {third_ip} is not received-from {}",
        case.caller().ip()
    );
    // The client prints the error-reason on stderr and exits non-zero.
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(!out.status.success() && said.contains(&why), "{said}");
    assert!(
        case.lab.daemon.calls()?.is_empty(),
        "a refused offer is not tracked"
    );
    // The callee answers as if nothing happened: the proxy's answer fails too.
    let answer = case.ng_client(&case.answer_args("tp-1", &[]))?;

    let said = format!("{}{}", answer.stdout, answer.stderr);
    assert!(said.contains("Unknown call-ID"), "{said}");
    assert!(case.lab.daemon.list()?.is_empty(), "no pinhole");
    case.lab
        .assert_dropped_exactly(&third_sock, &callee, Host::Inside)?;

    // Vouched for: the same SDP opens, and the third party's burst passes.
    case.ng_ok(&case.offer_args("tp-2", third, case.caller(), &["--trust-address"]))?;
    case.answer_with("tp-2", &["--trust-address"])?;

    case.lab.assert_passes(&third_sock, &callee)?;
    Ok(())
}

#[test]
fn third_party_sdp_is_refused_ipv4() -> TestResult {
    third_party_sdp_is_refused(Family::V4)
}

#[test]
fn third_party_sdp_is_refused_ipv6() -> TestResult {
    third_party_sdp_is_refused(Family::V6)
}

/// The private address a caller behind NAT announces (documentation
/// range, routed nowhere: nobody sends from it).
fn private_address(f: Family) -> std::net::IpAddr {
    match f {
        Family::V4 => "203.0.113.5".parse().expect("an address"),
        Family::V6 => "2001:db8:ff::5".parse().expect("an address"),
    }
}

/// A caller behind NAT on the outside host: its SDP names a private
/// address, its packets come from its host (received-from). Two NAT
/// flags, the way a proxy passes them for such a UA:
/// - `SIP-source-address`: the pinhole is the host's address with the SDP's
///   port (a port-preserving NAT); a burst passes each way;
/// - `port-latching` (with `--latching 5`): the host's first packet, from
///   another port (the NAT's mapping), latches the exact pair; bursts pass
///   both ways, one latch counted, and the same host from a third port is
///   then dropped.
fn nated_caller(family: Family) -> TestResult {
    let case = Case::with_args(family, &["--latching", "5"])?;
    let private = SocketAddr::new(private_address(family), CALLER_PORT);

    case.ng_ok(&case.offer_args("nat-1", private, case.caller(), &["--SIP-source-address"]))?;
    case.answer_with("nat-1", &[])?;
    case.media_passes()?;
    case.ng_ok(&[
        "--call-id",
        "nat-1",
        "--from-tag",
        "caller-tag",
        "--delete-delay",
        "0",
        "delete",
    ])?;
    wait_for("nat-1's pinholes to close", TIMEOUT, || {
        Ok(case.lab.daemon.list()?.is_empty().then_some(()))
    })?;

    let nat_port = CALLER_PORT + 100;
    case.ng_ok(&case.offer_args("nat-2", private, case.caller(), &["--port-latching"]))?;
    case.answer_with("nat-2", &[])?;
    let mapped = case.lab.udp(Host::Outside, nat_port)?;
    let other_port = case.lab.udp(Host::Outside, nat_port + 2)?;
    let callee = case.lab.udp(Host::Inside, CALLEE_PORT)?;
    assert_eq!(case.lab.daemon.counter("latched")?, 0);
    case.lab.assert_passes(&mapped, &callee)?;
    case.lab.assert_passes(&callee, &mapped)?;
    assert_eq!(case.lab.daemon.counter("latched")?, 1, "exactly one latch");
    case.lab
        .assert_off_path_dropped(&other_port, &[], &callee, Host::Inside)?;
    Ok(())
}

#[test]
fn nated_caller_ipv4() -> TestResult {
    nated_caller(Family::V4)
}

#[test]
fn nated_caller_ipv6() -> TestResult {
    nated_caller(Family::V6)
}
