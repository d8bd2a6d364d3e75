//! Real SIP calls with sipp (Debian `sip-tester`) between the outside host
//! (caller) and the inside host (callee) of a [`Topology`].
//!
//! The scenarios live in `tests/sipp/` as pairs `uac_<name>.xml` (caller)
//! and `uas_<name>.xml` (callee). [`Scenarios`] copies them into a scratch
//! directory next to a generated `rtp.pcap` (PCMA RTP, see [`rtp_pcap`]),
//! which the caller plays from its media port to the port of the callee's
//! SDP; the callee runs with `-rtp_echo`, so RTP flows both ways.
//!
//! Calls do not run on timers: where a scenario must wait for the test it
//! has a `<recv request="INFO"/>`, and [`SipCall::trigger_caller`] /
//! [`SipCall::trigger_callee`] send that INFO (carrying the Call-ID) to the
//! sipp instance over the loopback of its own namespace, so the trigger never
//! crosses the router and the daemon never sees it.

use std::{
    fs::File,
    io::Write,
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use crate::{
    frames::ip_checksum, netns::NsChild, unique_id, wait_for, Error, Family, Netns, Result,
    TempDir, Topology,
};

/// The SIP port of both agents.
pub const SIP_PORT: u16 = 5060;
/// How long sipp may run at most (`-timeout`), a safety net behind the
/// harness's own bounded waits.
const SIPP_TIMEOUT_SECS: u32 = 120;
/// How long sipp may take to open its sockets.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// RTP packets in the generated `rtp.pcap`, one every [`RTP_INTERVAL`].
pub const RTP_PACKETS: u32 = 150;
/// Packet spacing of `rtp.pcap` (20 ms of PCMA at 8 kHz per packet).
pub const RTP_INTERVAL: Duration = Duration::from_millis(20);
/// RTP payload bytes per packet (20 ms of G.711).
pub const RTP_PAYLOAD_LEN: usize = 160;

/// Starts sipp in `ns` with `args`, working in `dir`, its output in
/// `dir/log`: for load generators (the lab bench, the soak) that manage
/// the process themselves.
pub fn spawn_logged(
    ns: &Netns,
    dir: &Path,
    log: &str,
    args: &[String],
) -> std::io::Result<std::process::Child> {
    let out = File::create(dir.join(log))?;
    ns.command("sipp")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
}

/// The directory of the scenario files in the source tree.
pub fn scenario_source_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/sipp"))
}

/// SIP transport of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub const ALL: [Transport; 2] = [Transport::Udp, Transport::Tcp];

    /// sipp's `-t` value: one socket for everything.
    fn sipp_arg(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }

    /// The Via transport token.
    pub fn via(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// `ss` protocol flag.
    fn ss_flag(self) -> &'static str {
        match self {
            Transport::Udp => "-u",
            Transport::Tcp => "-t",
        }
    }
}

/// A scratch copy of `tests/sipp/*.xml` with a generated `rtp.pcap` next to
/// them (sipp looks for pcaps next to the scenario) and room for logs.
#[derive(Debug)]
pub struct Scenarios {
    dir: TempDir,
}

impl Scenarios {
    /// With an `rtp.pcap` of [`RTP_PACKETS`] packets (3 s).
    pub fn new() -> Result<Scenarios> {
        Scenarios::with_rtp_packets(RTP_PACKETS)
    }

    /// With an `rtp.pcap` of `packets` packets, [`RTP_INTERVAL`] apart.
    pub fn with_rtp_packets(packets: u32) -> Result<Scenarios> {
        let dir = TempDir::new()?;
        let src = scenario_source_dir();
        let entries =
            std::fs::read_dir(src).map_err(Error::io(format!("reading {}", src.display())))?;
        let mut copied = 0;
        for entry in entries {
            let path = entry
                .map_err(Error::io(format!("reading {}", src.display())))?
                .path();
            if path.extension().is_some_and(|e| e == "xml") {
                let to = dir.path().join(path.file_name().expect("a file name"));
                std::fs::copy(&path, &to).map_err(Error::io(format!(
                    "copying {} to {}",
                    path.display(),
                    to.display()
                )))?;
                copied += 1;
            }
        }
        if copied == 0 {
            return Err(Error::Setup(format!(
                "no sipp scenarios in {}",
                src.display()
            )));
        }
        let pcap = dir.path().join("rtp.pcap");
        std::fs::write(&pcap, rtp_pcap(packets, RTP_INTERVAL))
            .map_err(Error::io(format!("writing {}", pcap.display())))?;
        Ok(Scenarios { dir })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The scenario file `<name>.xml`, which must exist.
    pub fn file(&self, name: &str) -> Result<PathBuf> {
        let path = self.dir.path().join(format!("{name}.xml"));
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::Setup(format!("no sipp scenario {}", path.display())))
        }
    }
}

/// A pcap (Ethernet, IPv4, UDP) of `packets` PCMA RTP packets `interval`
/// apart, all to one port. sipp's `play_pcap_audio` keeps only the UDP
/// payload and the port offsets, and rewrites addresses and ports.
pub fn rtp_pcap(packets: u32, interval: Duration) -> Vec<u8> {
    const SRC: [u8; 4] = [203, 0, 113, 1];
    const DST: [u8; 4] = [203, 0, 113, 2];
    const PORT: u16 = 4000;
    const SSRC: u32 = 0x7068_6f6c; // "phol"
    let mut out = Vec::new();
    // Global header: magic, version 2.4, tz 0, sigfigs 0, snaplen, Ethernet.
    out.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let rtp_len = 12 + RTP_PAYLOAD_LEN;
    let udp_len = 8 + rtp_len;
    let ip_len = 20 + udp_len;
    let frame_len = 14 + ip_len;
    for i in 0..packets {
        let t = interval * i;
        out.extend_from_slice(&(1_000_000_000 + t.as_secs() as u32).to_le_bytes());
        out.extend_from_slice(&t.subsec_micros().to_le_bytes());
        out.extend_from_slice(&(frame_len as u32).to_le_bytes());
        out.extend_from_slice(&(frame_len as u32).to_le_bytes());
        // Ethernet: locally administered MACs, IPv4.
        out.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        // IPv4 header with a valid checksum.
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&(i as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&SRC);
        ip[16..20].copy_from_slice(&DST);
        let sum = ip_checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        out.extend_from_slice(&ip);
        // UDP (checksum 0: sipp computes its own).
        out.extend_from_slice(&PORT.to_be_bytes());
        out.extend_from_slice(&PORT.to_be_bytes());
        out.extend_from_slice(&(udp_len as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        // RTP: v2, PT 8 (PCMA), marker on the first packet.
        out.push(0x80);
        out.push(if i == 0 { 0x80 | 8 } else { 8 });
        out.extend_from_slice(&(i as u16).to_be_bytes());
        out.extend_from_slice(&(i * RTP_PAYLOAD_LEN as u32).to_be_bytes());
        out.extend_from_slice(&SSRC.to_be_bytes());
        // PCMA silence.
        out.extend(std::iter::repeat_n(0xd5, RTP_PAYLOAD_LEN));
    }
    out
}

/// One sipp process in a namespace, logging into the scenario directory.
#[derive(Debug)]
pub struct SippAgent {
    child: NsChild,
    /// `uac` or `uas` plus a unique number: the prefix of its log files.
    label: String,
    dir: PathBuf,
}

impl SippAgent {
    /// Starts `sipp -sf <scenario> args…` in `ns`, with logs of unexpected
    /// messages, of every message and of the final screen.
    fn start(ns: &Netns, files: &Scenarios, scenario: &str, args: &[String]) -> Result<SippAgent> {
        let label = format!("{scenario}-{}", unique_id());
        let dir = files.dir().to_owned();
        let log = |suffix: &str| dir.join(format!("{label}.{suffix}"));
        let out = File::create(log("out"))
            .map_err(Error::io(format!("creating {}", log("out").display())))?;
        let err = out.try_clone().map_err(Error::io("duplicating a log"))?;
        let mut cmd = ns.command("sipp");
        cmd.current_dir(&dir)
            .arg("-sf")
            .arg(files.file(scenario)?)
            .args(args)
            .args(["-nostdin", "-timeout"])
            .arg(format!("{SIPP_TIMEOUT_SECS}s"))
            .args(["-trace_err", "-error_file"])
            .arg(log("errors.log"))
            .args(["-trace_msg", "-message_file"])
            .arg(log("messages.log"))
            .args(["-trace_screen", "-screen_file"])
            .arg(log("screen.log"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = ns.spawn(&mut cmd)?;
        Ok(SippAgent { child, label, dir })
    }

    /// Waits for sipp to exit; fails unless it exits 0 (every call
    /// completed its scenario), with its logs in the error.
    pub fn wait(&mut self, timeout: Duration) -> Result<()> {
        let status = self
            .child
            .wait_timeout(timeout)
            .map_err(|e| Error::Setup(format!("{}: {e}\n{}", self.label, self.logs())))?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Setup(format!(
                "sipp {} exited with {status}\n{}",
                self.label,
                self.logs()
            )))
        }
    }

    /// True once sipp has exited (whatever its status).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.child().try_wait(), Ok(None))
    }

    /// The tails of the agent's logs, for error messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for suffix in ["errors.log", "out", "messages.log"] {
            let path = self.dir.join(format!("{}.{suffix}", self.label));
            let body = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = body.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            text.push_str(&format!(
                "---- {} (last {} lines) ----\n{}\n",
                path.display(),
                tail.len(),
                tail.join("\n")
            ));
        }
        text
    }
}

/// Waits until something in `ns` listens on (`transport`) port `port`.
fn wait_bound(ns: &Netns, transport: Transport, port: u16) -> Result<()> {
    let filter = format!("sport = :{port}");
    wait_for(
        &format!("a {transport:?} socket on port {port} in {}", ns.name()),
        START_TIMEOUT,
        || {
            let out = ns.exec("ss", &["-Hln", transport.ss_flag(), &filter])?;
            Ok((!out.trim().is_empty()).then_some(()))
        },
    )
}

/// What a call looks like: the scenario pair, transport, family and media ports.
#[derive(Clone, Debug)]
pub struct CallSpec {
    /// `<name>` of `uac_<name>.xml` and `uas_<name>.xml`.
    pub scenario: String,
    pub family: Family,
    pub transport: Transport,
    /// The caller's media port (its SDP and the source of its RTP).
    pub caller_media_port: u16,
    /// The caller's media address when it is not its SIP address (a media
    /// relay, or a third party); it must be configured on the outside host.
    pub caller_media_ip: Option<IpAddr>,
    /// The callee's media port (its SDP; sipp echoes RTP there).
    pub callee_media_port: u16,
    /// `-key name value` for the caller's scenario.
    pub caller_keys: Vec<(String, String)>,
    /// `-key name value` for the callee's scenario.
    pub callee_keys: Vec<(String, String)>,
    /// A SIP proxy the caller sends everything to (`-rsa`), its
    /// Request-URI still naming the callee; `None`: straight to the callee.
    pub proxy: Option<SocketAddr>,
}

impl CallSpec {
    pub fn new(scenario: &str, family: Family, transport: Transport) -> CallSpec {
        CallSpec {
            scenario: scenario.to_owned(),
            family,
            transport,
            caller_media_port: 16000,
            caller_media_ip: None,
            callee_media_port: 12000,
            caller_keys: Vec::new(),
            callee_keys: Vec::new(),
            proxy: None,
        }
    }

    /// Calls through the proxy at `proxy` (see [`CallSpec::proxy`]).
    pub fn via_proxy(mut self, proxy: SocketAddr) -> CallSpec {
        self.proxy = Some(proxy);
        self
    }

    pub fn caller_key(mut self, key: &str, value: impl ToString) -> CallSpec {
        self.caller_keys.push((key.to_owned(), value.to_string()));
        self
    }

    pub fn callee_key(mut self, key: &str, value: impl ToString) -> CallSpec {
        self.callee_keys.push((key.to_owned(), value.to_string()));
        self
    }
}

/// One sipp call from the outside host to the inside host.
#[derive(Debug)]
pub struct SipCall {
    pub call_id: String,
    pub transport: Transport,
    /// The caller's SIP address.
    pub caller_sip: SocketAddr,
    /// The callee's SIP address.
    pub callee_sip: SocketAddr,
    /// The caller's RTP endpoint (its SDP).
    pub caller_media: SocketAddr,
    /// The callee's RTP endpoint (its first SDP).
    pub callee_media: SocketAddr,
    pub uac: SippAgent,
    pub uas: SippAgent,
    /// Trigger connections (TCP) stay open until the call is dropped.
    triggers: Vec<TcpStream>,
    cseq: u32,
}

impl SipCall {
    /// Starts the callee, waits for its sockets, then starts the caller.
    pub fn start(topo: &Topology, files: &Scenarios, spec: &CallSpec) -> Result<SipCall> {
        SipCall::start_from(topo, (&topo.outside, spec.family.outside()), files, spec)
    }

    /// [`SipCall::start`] with the caller on `caller` (a namespace and its
    /// address), e.g. a host behind NAT.
    pub fn start_from(
        topo: &Topology,
        (caller_ns, caller_ip): (&Netns, IpAddr),
        files: &Scenarios,
        spec: &CallSpec,
    ) -> Result<SipCall> {
        let callee_ip = spec.family.inside();
        let call_id_prefix = format!("ph-{}-{}", std::process::id(), unique_id());
        let keys = |keys: &[(String, String)]| {
            keys.iter()
                .flat_map(|(k, v)| ["-key".to_owned(), k.clone(), v.clone()])
                .collect::<Vec<_>>()
        };
        let caller_media_ip = spec.caller_media_ip.unwrap_or(caller_ip);
        let common = |ip: IpAddr, media_ip: IpAddr, media_port: u16| {
            vec![
                "-t".to_owned(),
                spec.transport.sipp_arg().to_owned(),
                "-i".to_owned(),
                ip.to_string(),
                "-p".to_owned(),
                SIP_PORT.to_string(),
                "-mi".to_owned(),
                media_ip.to_string(),
                "-mp".to_owned(),
                media_port.to_string(),
                "-m".to_owned(),
                "1".to_owned(),
            ]
        };
        let mut uas_args = common(callee_ip, callee_ip, spec.callee_media_port);
        uas_args.push("-rtp_echo".to_owned());
        uas_args.extend(keys(&spec.callee_keys));
        let mut uas = SippAgent::start(
            &topo.inside,
            files,
            &format!("uas_{}", spec.scenario),
            &uas_args,
        )?;
        let ready = wait_bound(&topo.inside, spec.transport, SIP_PORT)
            .and_then(|()| wait_bound(&topo.inside, Transport::Udp, spec.callee_media_port));
        if let Err(e) = ready {
            return Err(Error::Setup(format!("{e}\n{}", uas.logs())));
        }
        if uas.has_exited() {
            return Err(Error::Setup(format!(
                "the callee's sipp exited at once\n{}",
                uas.logs()
            )));
        }

        let callee_sip = SocketAddr::new(callee_ip, SIP_PORT);
        let mut uac_args = vec![callee_sip.to_string()];
        uac_args.extend(common(caller_ip, caller_media_ip, spec.caller_media_port));
        uac_args.extend(["-cid_str".to_owned(), format!("{call_id_prefix}-%u")]);
        if let Some(proxy) = spec.proxy {
            uac_args.extend(["-rsa".to_owned(), proxy.to_string()]);
        }
        uac_args.extend(keys(&spec.caller_keys));
        let uac = SippAgent::start(
            caller_ns,
            files,
            &format!("uac_{}", spec.scenario),
            &uac_args,
        )?;
        Ok(SipCall {
            call_id: format!("{call_id_prefix}-1"),
            transport: spec.transport,
            caller_sip: SocketAddr::new(caller_ip, SIP_PORT),
            callee_sip,
            caller_media: SocketAddr::new(caller_media_ip, spec.caller_media_port),
            callee_media: SocketAddr::new(callee_ip, spec.callee_media_port),
            uac,
            uas,
            triggers: Vec::new(),
            cseq: 0,
        })
    }

    /// Lets the caller's scenario past its next `<recv request="INFO"/>`.
    pub fn trigger_caller(&mut self, topo: &Topology) -> Result<()> {
        let to = self.caller_sip;
        self.trigger(&topo.outside, to)
    }

    /// Lets the callee's scenario past its next `<recv request="INFO"/>`.
    pub fn trigger_callee(&mut self, topo: &Topology) -> Result<()> {
        let to = self.callee_sip;
        self.trigger(&topo.inside, to)
    }

    fn trigger(&mut self, ns: &Netns, to: SocketAddr) -> Result<()> {
        self.cseq += 1;
        let host = match to.ip() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        let message = format!(
            "INFO sip:trigger@{host} SIP/2.0\r\n\
             Via: SIP/2.0/{via} {host}:9;branch=z9hG4bK-trigger-{cseq}\r\n\
             From: <sip:test@{host}>;tag=trigger\r\n\
             To: <sip:sipp@{host}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} INFO\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n",
            via = self.transport.via(),
            cseq = self.cseq,
            call_id = self.call_id,
        );
        let what = format!("sending the trigger INFO to {to}");
        match self.transport {
            Transport::Udp => {
                // Any local address: the caller may sit behind the
                // outside host (a NAT), which reaches it directly.
                let any: IpAddr = match to {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
                };
                let sock: UdpSocket = ns.udp_socket(SocketAddr::new(any, 0))?;
                sock.send_to(message.as_bytes(), to)
                    .map_err(Error::io(what))?;
            }
            Transport::Tcp => {
                let mut stream = ns.tcp_connect(to, START_TIMEOUT)?;
                stream
                    .write_all(message.as_bytes())
                    .map_err(Error::io(what))?;
                self.triggers.push(stream);
            }
        }
        Ok(())
    }

    /// Waits for both agents to finish their scenarios successfully.
    pub fn wait(&mut self, timeout: Duration) -> Result<()> {
        self.uac.wait(timeout)?;
        self.uas.wait(timeout)
    }

    /// Both agents' logs, for failure messages.
    pub fn logs(&self) -> String {
        format!("{}{}", self.uac.logs(), self.uas.logs())
    }
}

/// Whether a pinhole's `owner` names the SIP call `call_id`: `sip:<call-id>`,
/// optionally followed by `;parameters` (e.g. the caller's From-tag).
pub fn is_sip_owner(owner: Option<&str>, call_id: &str) -> bool {
    is_call_owner(owner, "sip:", call_id)
}

/// Whether a pinhole's `owner` names the call `call_id` a SIP proxy drives
/// over the ng API: `ng:<call-id>`, optionally followed by `;parameters`.
pub fn is_ng_owner(owner: Option<&str>, call_id: &str) -> bool {
    is_call_owner(owner, "ng:", call_id)
}

fn is_call_owner(owner: Option<&str>, scheme: &str, call_id: &str) -> bool {
    owner
        .and_then(|o| o.strip_prefix(scheme))
        .and_then(|rest| rest.strip_prefix(call_id))
        .is_some_and(|tail| tail.is_empty() || tail.starts_with(';'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_layout() {
        let pcap = rtp_pcap(3, Duration::from_millis(20));
        let frame = 14 + 20 + 8 + 12 + RTP_PAYLOAD_LEN;
        assert_eq!(pcap.len(), 24 + 3 * (16 + frame));
        assert_eq!(&pcap[..4], &0xa1b2_c3d4_u32.to_le_bytes());
        // Second record: timestamp 20 ms after the first.
        let rec = 24 + 16 + frame;
        let usec = u32::from_le_bytes(pcap[rec + 4..rec + 8].try_into().unwrap());
        assert_eq!(usec, 20_000);
        // IPv4 header checksum verifies to zero.
        let ip = &pcap[24 + 16 + 14..24 + 16 + 14 + 20];
        assert_eq!(ip_checksum(ip), 0);
        // RTP: version 2, PT 8, sequence 1 in the second packet.
        let rtp = rec + 16 + 14 + 20 + 8;
        assert_eq!(pcap[rtp], 0x80);
        assert_eq!(pcap[rtp + 1] & 0x7f, 8);
        assert_eq!(u16::from_be_bytes([pcap[rtp + 2], pcap[rtp + 3]]), 1);
    }

    #[test]
    fn scenarios_come_in_pairs() {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(scenario_source_dir()).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if let Some(stem) = name.strip_suffix(".xml") {
                names.push(stem.to_owned());
            }
        }
        assert!(!names.is_empty());
        for name in &names {
            let (role, rest) = name.split_once('_').expect("uac_/uas_ prefix");
            let other = match role {
                "uac" => format!("uas_{rest}"),
                "uas" => format!("uac_{rest}"),
                _ => panic!("{name}: scenario names start with uac_ or uas_"),
            };
            assert!(names.contains(&other), "{name} has no {other}");
        }
    }

    #[test]
    fn sip_owners() {
        for (owner, ok) in [
            (Some("sip:ph-1-2-1"), true),
            (Some("sip:ph-1-2-1;from-tag=99SIPpTag001"), true),
            (Some("sip:ph-1-2-10"), false),
            (Some("sip:ph-1-2"), false),
            (Some("rtsp:ph-1-2-1"), false),
            (Some("manual"), false),
            (Some("SIP:ph-1-2-1"), false),
            (None, false),
        ] {
            assert_eq!(is_sip_owner(owner, "ph-1-2-1"), ok, "{owner:?}");
        }
        for (owner, ok) in [
            (Some("ng:ph-1-2-1;from-tag=99SIPpTag001"), true),
            (Some("ng:ph-1-2-1"), true),
            (Some("ng:ph-1-2-10"), false),
            (Some("sip:ph-1-2-1"), false),
            (None, false),
        ] {
            assert_eq!(is_ng_owner(owner, "ph-1-2-1"), ok, "{owner:?}");
        }
    }
}
