//! A small SIP user agent pair over UDP, for opening media paths the way a
//! real call does and for driving call setups at a fixed rate.
//!
//! The caller (UAC) lives on the outside host, the callee (UAS) on the
//! inside host, both on port 5060, so every message crosses the router:
//! pinhole's inline signaling (NFQUEUE) and the conntrack SIP helper see the
//! same INVITE with an SDP offer, 200 OK with an SDP answer, ACK, and (in the
//! load generator) BYE and its 200 OK.

use std::{
    collections::HashMap,
    io::ErrorKind,
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use super::stats::Samples;

/// The SIP port of both agents.
pub const SIP_PORT: u16 = 5060;

fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

fn sdp(media: SocketAddr, user: &str) -> String {
    let (ver, ip) = match media.ip() {
        IpAddr::V4(v4) => ("IP4", v4.to_string()),
        IpAddr::V6(v6) => ("IP6", v6.to_string()),
    };
    format!(
        "v=0\r\no={user} 1 1 IN {ver} {ip}\r\ns=-\r\nc=IN {ver} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n",
        port = media.port()
    )
}

/// One call's identity.
#[derive(Clone, Debug)]
pub struct Dialog {
    pub call_id: String,
    pub caller: SocketAddr,
    pub callee: SocketAddr,
    pub from_tag: String,
}

impl Dialog {
    fn request(&self, method: &str, cseq: u32, to_tag: Option<&str>, body: &str) -> String {
        let (c, e) = (host(self.caller.ip()), host(self.callee.ip()));
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let ctype = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_owned()
        };
        format!(
            "{method} sip:callee@{e}:{ep} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {c}:{cp};branch=z9hG4bK-{id}-{cseq}-{method}\r\n\
             From: <sip:caller@{c}:{cp}>;tag={ft}\r\n\
             To: <sip:callee@{e}:{ep}>{to_tag}\r\n\
             Call-ID: {id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:caller@{c}:{cp}>\r\n\
             Max-Forwards: 70\r\n\
             {ctype}Content-Length: {len}\r\n\r\n{body}",
            ep = self.callee.port(),
            cp = self.caller.port(),
            id = self.call_id,
            ft = self.from_tag,
            len = body.len(),
        )
    }

    /// The INVITE with the caller's media in its SDP offer.
    pub fn invite(&self, caller_media: SocketAddr) -> String {
        self.request("INVITE", 1, None, &sdp(caller_media, "caller"))
    }

    pub fn ack(&self, to_tag: &str) -> String {
        self.request("ACK", 1, Some(to_tag), "")
    }

    pub fn bye(&self, to_tag: &str) -> String {
        self.request("BYE", 2, Some(to_tag), "")
    }
}

/// The UAS's 200 OK to `request`, with an SDP answer when `media` is given.
fn ok_response(request: &Message<'_>, contact: SocketAddr, media: Option<SocketAddr>) -> String {
    let body = media.map(|m| sdp(m, "callee")).unwrap_or_default();
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    let to = request.header("To").unwrap_or("");
    let to = if to.contains(";tag=") {
        to.to_owned()
    } else {
        format!("{to};tag=uas-{}", request.call_id)
    };
    format!(
        "SIP/2.0 200 OK\r\n\
         Via: {via}\r\n\
         From: {from}\r\n\
         To: {to}\r\n\
         Call-ID: {id}\r\n\
         CSeq: {cseq}\r\n\
         Contact: <sip:callee@{contact_host}:{contact_port}>\r\n\
         {ctype}Content-Length: {len}\r\n\r\n{body}",
        via = request.header("Via").unwrap_or(""),
        from = request.header("From").unwrap_or(""),
        id = request.call_id,
        cseq = request.header("CSeq").unwrap_or(""),
        contact_host = host(contact.ip()),
        contact_port = contact.port(),
        len = body.len(),
    )
}

/// The little of a SIP message the agents look at.
#[derive(Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// `Some(method)` for requests.
    pub method: Option<&'a str>,
    /// `Some(code)` for responses.
    pub status: Option<u16>,
    pub call_id: &'a str,
    /// The method of the CSeq header.
    pub cseq_method: &'a str,
    head: &'a str,
}

impl<'a> Message<'a> {
    pub fn parse(data: &'a [u8]) -> Option<Message<'a>> {
        let text = std::str::from_utf8(data).ok()?;
        let head = text.split("\r\n\r\n").next()?;
        let first = head.lines().next()?;
        let (method, status) = if let Some(rest) = first.strip_prefix("SIP/2.0 ") {
            (None, Some(rest.get(..3)?.parse().ok()?))
        } else {
            let (m, rest) = first.split_once(' ')?;
            if !rest.ends_with("SIP/2.0") {
                return None;
            }
            (Some(m), None)
        };
        let mut msg = Message {
            method,
            status,
            call_id: "",
            cseq_method: "",
            head,
        };
        msg.call_id = msg.header("Call-ID")?;
        msg.cseq_method = msg.header("CSeq")?.split_whitespace().nth(1)?;
        Some(msg)
    }

    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The tag parameter of the To header.
    pub fn to_tag(&self) -> Option<&'a str> {
        let to = self.header("To")?;
        let at = to.find(";tag=")? + 5;
        Some(to[at..].split(';').next().unwrap_or(""))
    }
}

fn recv<'b>(sock: &UdpSocket, buf: &'b mut [u8]) -> Result<Option<&'b [u8]>> {
    match sock.recv(buf) {
        Ok(n) => Ok(Some(&buf[..n])),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(None),
        Err(e) if e.kind() == ErrorKind::Interrupted => Ok(None),
        Err(e) => Err(e).context("receiving SIP"),
    }
}

/// One call set up synchronously: INVITE (offer `caller_media`), 200 OK
/// (answer `callee_media`), ACK. The call stays up (no BYE). `uac` and `uas`
/// are bound to the agents' SIP addresses.
pub fn establish(
    uac: &UdpSocket,
    uas: &UdpSocket,
    call_id: &str,
    caller_media: SocketAddr,
    callee_media: SocketAddr,
) -> Result<()> {
    let dialog = Dialog {
        call_id: call_id.to_owned(),
        caller: uac.local_addr()?,
        callee: uas.local_addr()?,
        from_tag: format!("uac-{call_id}"),
    };
    let timeout = Duration::from_secs(5);
    uac.set_read_timeout(Some(timeout))?;
    uas.set_read_timeout(Some(timeout))?;
    let mut buf = vec![0u8; 4096];
    uac.send_to(dialog.invite(caller_media).as_bytes(), dialog.callee)
        .context("sending the INVITE")?;
    let data = recv(uas, &mut buf)?.context("the INVITE did not reach the callee")?;
    let invite = Message::parse(data).context("the callee got a malformed INVITE")?;
    let ok = ok_response(&invite, dialog.callee, Some(callee_media));
    uas.send_to(ok.as_bytes(), dialog.caller)
        .context("sending the 200 OK")?;
    let data = recv(uac, &mut buf)?.context("the 200 OK did not reach the caller")?;
    let ok = Message::parse(data).context("the caller got a malformed 200 OK")?;
    if ok.status != Some(200) || ok.call_id != call_id {
        bail!("unexpected answer to the INVITE: {ok:?}");
    }
    let tag = ok.to_tag().context("the 200 OK has no To-tag")?.to_owned();
    uac.send_to(dialog.ack(&tag).as_bytes(), dialog.callee)
        .context("sending the ACK")?;
    Ok(())
}

/// A raw IPv4 socket that sends UDP datagrams from any source port (the
/// kernel adds the IP header), so one socket sends every call's first RTP
/// packet from that call's media port. It receives nothing (a classic BPF
/// filter drops every copy the kernel would queue to it).
#[derive(Debug)]
pub struct RawUdp(std::os::fd::OwnedFd);

impl RawUdp {
    /// Opens the socket in the calling thread's network namespace.
    pub fn open() -> Result<RawUdp> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscalls; the fd is owned right after creation.
        unsafe {
            let fd = libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_UDP,
            );
            if fd < 0 {
                return Err(std::io::Error::last_os_error()).context("raw UDP socket");
            }
            let sock = RawUdp(std::os::fd::OwnedFd::from_raw_fd(fd));
            let mut drop_all = [libc::sock_filter {
                code: 0x06, // BPF_RET | BPF_K
                jt: 0,
                jf: 0,
                k: 0,
            }];
            let prog = libc::sock_fprog {
                len: 1,
                filter: drop_all.as_mut_ptr(),
            };
            if libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                &prog as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::sock_fprog>() as u32,
            ) != 0
            {
                return Err(std::io::Error::last_os_error()).context("SO_ATTACH_FILTER");
            }
            Ok(sock)
        }
    }

    /// Sends `payload` in a UDP datagram from `src_port` to `dst` (checksum
    /// 0: none, valid for IPv4).
    pub fn send(&self, src_port: u16, dst: SocketAddr, payload: &[u8]) -> Result<()> {
        use std::os::fd::AsRawFd;
        let SocketAddr::V4(dst) = dst else {
            bail!("raw UDP is IPv4 only here");
        };
        let mut dgram = Vec::with_capacity(8 + payload.len());
        dgram.extend_from_slice(&src_port.to_be_bytes());
        dgram.extend_from_slice(&dst.port().to_be_bytes());
        dgram.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        dgram.extend_from_slice(&[0, 0]);
        dgram.extend_from_slice(payload);
        // SAFETY: a zeroed sockaddr_in is valid; sendto reads `dgram` and `to`.
        let sent = unsafe {
            let mut to: libc::sockaddr_in = std::mem::zeroed();
            to.sin_family = libc::AF_INET as libc::sa_family_t;
            to.sin_addr.s_addr = u32::from(*dst.ip()).to_be();
            libc::sendto(
                self.0.as_raw_fd(),
                dgram.as_ptr() as *const libc::c_void,
                dgram.len(),
                0,
                &to as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        if sent < 0 {
            return Err(std::io::Error::last_os_error()).context("sending raw UDP");
        }
        Ok(())
    }
}

/// An RTP packet (PCMA, 20 ms) for call `i`.
fn rtp_packet(i: u64) -> [u8; 172] {
    let mut p = [0xd5u8; 172];
    p[0] = 0x80;
    p[1] = 0x80 | 8;
    p[2..4].copy_from_slice(&0u16.to_be_bytes());
    p[4..8].copy_from_slice(&0u32.to_be_bytes());
    p[8..12].copy_from_slice(&(i as u32).to_be_bytes());
    p
}

/// Result of a run of the load generator.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LoadReport {
    pub rate: f64,
    pub calls: u64,
    /// INVITEs answered with 200 OK.
    pub answered: u64,
    /// Calls whose BYE was answered too.
    pub completed: u64,
    /// INVITE sent → 200 OK received at the caller, in microseconds.
    pub setup_rtt_us: Samples,
    /// How late the pacer was at its worst (a rate the generator itself
    /// cannot hold shows here).
    pub max_lag_ms: f64,
}

/// What [`load`] drives.
#[derive(Clone, Copy, Debug)]
pub struct LoadSpec<'a> {
    /// Call-IDs are `<run_id>-<n>`.
    pub run_id: &'a str,
    /// Calls per second.
    pub rate: f64,
    pub secs: f64,
    /// Media ports: see [`media_ports`].
    pub media_base: u16,
    pub media_span: u16,
}

/// Media ports of call `i`: caller and callee, both even, cycling through
/// `base..base+2*span`.
pub fn media_ports(i: u64, base: u16, span: u16) -> (u16, u16) {
    let off = (i % u64::from(span)) as u16 * 2;
    (base + off, base + off)
}

/// Drives `rate` call setups per second for `secs` seconds: each call is
/// INVITE, 200 OK, ACK, then at once BYE and 200 OK. `uac` and `uas` are
/// bound to the agents' SIP addresses; media addresses use the agents' IPs
/// and [`media_ports`]. With `rtp` (raw sockets on the caller's and the
/// callee's host), each side also sends its first RTP packet as a phone
/// does: the callee right after sending its 200 OK, the caller as soon as
/// the 200 OK arrives (before its ACK).
pub fn load(
    uac: &UdpSocket,
    uas: &UdpSocket,
    spec: &LoadSpec<'_>,
    rtp: Option<(&RawUdp, &RawUdp)>,
) -> Result<LoadReport> {
    let LoadSpec {
        run_id,
        rate,
        secs,
        media_base,
        media_span,
    } = *spec;
    let calls = (rate * secs).round().max(1.0) as u64;
    let caller = uac.local_addr()?;
    let callee = uas.local_addr()?;
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let sent_at: Vec<AtomicU64> = (0..calls).map(|_| AtomicU64::new(0)).collect();
    let rtts = Mutex::new(Vec::with_capacity(calls as usize));
    let answered = AtomicU64::new(0);
    let completed = AtomicU64::new(0);
    let dialogs: Arc<Mutex<HashMap<String, Dialog>>> = Arc::default();
    uac.set_read_timeout(Some(Duration::from_millis(50)))?;
    uas.set_read_timeout(Some(Duration::from_millis(50)))?;
    let prefix = format!("{run_id}-");
    let index_of = |call_id: &str| -> Option<usize> {
        call_id
            .strip_prefix(&prefix)
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|&i| i < calls as usize)
    };
    let max_lag = std::thread::scope(|s| -> Result<f64> {
        // The callee: answer INVITEs with SDP, BYEs without.
        let uas_thread = s.spawn(|| -> Result<()> {
            let mut buf = vec![0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                let Some(data) = recv(uas, &mut buf)? else {
                    continue;
                };
                let Some(msg) = Message::parse(data) else {
                    continue;
                };
                let Some(i) = index_of(msg.call_id) else {
                    continue;
                };
                let reply = match msg.method {
                    Some("INVITE") => {
                        let (_, b) = media_ports(i as u64, media_base, media_span);
                        let media = SocketAddr::new(callee.ip(), b);
                        Some(ok_response(&msg, callee, Some(media)))
                    }
                    Some("BYE") => Some(ok_response(&msg, callee, None)),
                    _ => None,
                };
                if let Some(r) = reply {
                    uas.send_to(r.as_bytes(), caller).context("callee reply")?;
                    if let (Some("INVITE"), Some((_, callee_rtp))) = (msg.method, rtp) {
                        let (a, b) = media_ports(i as u64, media_base, media_span);
                        callee_rtp.send(
                            b,
                            SocketAddr::new(caller.ip(), a),
                            &rtp_packet(i as u64),
                        )?;
                    }
                }
            }
            Ok(())
        });
        // The caller's receive side: ACK and BYE on 200 to INVITE.
        let uac_thread = s.spawn(|| -> Result<()> {
            let mut buf = vec![0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                let Some(data) = recv(uac, &mut buf)? else {
                    continue;
                };
                let now = start.elapsed().as_nanos() as u64;
                let Some(msg) = Message::parse(data) else {
                    continue;
                };
                let Some(i) = index_of(msg.call_id) else {
                    continue;
                };
                if msg.status != Some(200) {
                    continue;
                }
                match msg.cseq_method {
                    "INVITE" => {
                        let sent = sent_at[i].load(Ordering::Acquire);
                        rtts.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(now.saturating_sub(sent) as f64 / 1000.0);
                        answered.fetch_add(1, Ordering::Relaxed);
                        let dialog = dialogs
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(msg.call_id);
                        if let Some((caller_rtp, _)) = rtp {
                            let (a, b) = media_ports(i as u64, media_base, media_span);
                            caller_rtp.send(
                                a,
                                SocketAddr::new(callee.ip(), b),
                                &rtp_packet(i as u64),
                            )?;
                        }
                        if let (Some(d), Some(tag)) = (dialog, msg.to_tag()) {
                            uac.send_to(d.ack(tag).as_bytes(), callee).context("ACK")?;
                            uac.send_to(d.bye(tag).as_bytes(), callee).context("BYE")?;
                        }
                    }
                    "BYE" => {
                        completed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            Ok(())
        });
        // The pacer.
        let mut max_lag = Duration::ZERO;
        let pace = Duration::from_secs_f64(1.0 / rate);
        let mut result = Ok(());
        for i in 0..calls {
            let due = pace.mul_f64(i as f64);
            let now = start.elapsed();
            if due > now {
                std::thread::sleep(due - now);
            } else {
                max_lag = max_lag.max(now - due);
            }
            let call_id = format!("{prefix}{i}");
            let dialog = Dialog {
                call_id: call_id.clone(),
                caller,
                callee,
                from_tag: format!("t{i}"),
            };
            let (a, _) = media_ports(i, media_base, media_span);
            let invite = dialog.invite(SocketAddr::new(caller.ip(), a));
            dialogs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(call_id, dialog.clone());
            sent_at[i as usize].store(start.elapsed().as_nanos() as u64, Ordering::Release);
            if let Err(e) = uac.send_to(invite.as_bytes(), callee) {
                result = Err(e).context("sending an INVITE");
                break;
            }
        }
        // Drain: wait (bounded) for the last answers.
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && completed.load(Ordering::Relaxed) < calls {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        let uas_result = uas_thread.join().expect("callee thread");
        let uac_result = uac_thread.join().expect("caller thread");
        result.and(uas_result).and(uac_result)?;
        Ok(max_lag.as_secs_f64() * 1000.0)
    })?;
    let rtts = rtts.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(LoadReport {
        rate,
        calls,
        answered: answered.into_inner(),
        completed: completed.into_inner(),
        setup_rtt_us: Samples::new(rtts),
        max_lag_ms: max_lag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialog() -> Dialog {
        Dialog {
            call_id: "bench-1-7".into(),
            caller: "192.0.2.2:5060".parse().unwrap(),
            callee: "198.51.100.2:5060".parse().unwrap(),
            from_tag: "t7".into(),
        }
    }

    #[test]
    fn messages_parse_back() {
        let d = dialog();
        let invite = d.invite("192.0.2.2:16000".parse().unwrap());
        let m = Message::parse(invite.as_bytes()).unwrap();
        assert_eq!(
            (m.method, m.status, m.call_id, m.cseq_method),
            (Some("INVITE"), None, "bench-1-7", "INVITE")
        );
        let body = invite.split("\r\n\r\n").nth(1).unwrap();
        assert!(body.contains("c=IN IP4 192.0.2.2\r\n"));
        assert!(body.contains("m=audio 16000 RTP/AVP 8\r\n"));
        let len: usize = m.header("content-length").unwrap().parse().unwrap();
        assert_eq!(len, body.len());

        let ok = ok_response(&m, d.callee, Some("198.51.100.2:12000".parse().unwrap()));
        let r = Message::parse(ok.as_bytes()).unwrap();
        assert_eq!((r.status, r.cseq_method), (Some(200), "INVITE"));
        assert_eq!(r.to_tag(), Some("uas-bench-1-7"));
        assert!(ok.ends_with("m=audio 12000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"));

        let bye = d.bye("uas-bench-1-7");
        let b = Message::parse(bye.as_bytes()).unwrap();
        assert_eq!(b.to_tag(), Some("uas-bench-1-7"));
        let ok_bye = ok_response(&b, d.callee, None);
        let r = Message::parse(ok_bye.as_bytes()).unwrap();
        assert_eq!((r.status, r.cseq_method), (Some(200), "BYE"));
        assert!(ok_bye.ends_with("Content-Length: 0\r\n\r\n"));
        // The callee keeps the To-tag it was given.
        assert_eq!(r.to_tag(), Some("uas-bench-1-7"));
    }

    #[test]
    fn hostile_input_is_not_a_message() {
        for bad in [
            &b""[..],
            b"\xff\xfe",
            b"INVITE sip:x SIP/2.0\r\n\r\n",
            b"SIP/2.0 2\r\nCall-ID: a\r\nCSeq: 1 INVITE\r\n\r\n",
            b"INVITE sip:x HTTP/1.1\r\nCall-ID: a\r\nCSeq: 1 INVITE\r\n\r\n",
            b"INVITE sip:x SIP/2.0\r\nCall-ID: a\r\nCSeq: 1\r\n\r\n",
            b"hello",
        ] {
            assert!(Message::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn ipv6_hosts_and_media() {
        let d = Dialog {
            caller: "[2001:db8:1::2]:5060".parse().unwrap(),
            callee: "[2001:db8:2::2]:5060".parse().unwrap(),
            ..dialog()
        };
        let invite = d.invite("[2001:db8:1::2]:16000".parse().unwrap());
        assert!(invite.starts_with("INVITE sip:callee@[2001:db8:2::2]:5060 SIP/2.0\r\n"));
        assert!(invite.contains("c=IN IP6 2001:db8:1::2\r\n"));
    }

    #[test]
    fn load_over_loopback_completes_every_call() {
        let uac = UdpSocket::bind("127.0.0.1:0").unwrap();
        let uas = UdpSocket::bind("127.0.0.1:0").unwrap();
        let spec = LoadSpec {
            run_id: "unit",
            rate: 400.0,
            secs: 0.1,
            media_base: 10_000,
            media_span: 100,
        };
        let r = load(&uac, &uas, &spec, None).unwrap();
        assert_eq!((r.calls, r.answered, r.completed), (40, 40, 40));
        assert_eq!(r.setup_rtt_us.0.len(), 40);
        assert!(r.setup_rtt_us.min().unwrap() > 0.0);
    }

    #[test]
    fn establish_over_loopback() {
        let uac = UdpSocket::bind("127.0.0.1:0").unwrap();
        let uas = UdpSocket::bind("127.0.0.1:0").unwrap();
        establish(
            &uac,
            &uas,
            "unit-1",
            "127.0.0.1:16000".parse().unwrap(),
            "127.0.0.1:12000".parse().unwrap(),
        )
        .unwrap();
        // The ACK reached the callee.
        let mut buf = [0u8; 2048];
        let n = uas.recv(&mut buf).unwrap();
        let ack = Message::parse(&buf[..n]).unwrap();
        assert_eq!((ack.method, ack.cseq_method), (Some("ACK"), "ACK"));
        assert_eq!(ack.to_tag(), Some("uas-unit-1"));
    }

    #[test]
    fn media_ports_cycle() {
        assert_eq!(media_ports(0, 10000, 100), (10000, 10000));
        assert_eq!(media_ports(3, 10000, 100), (10006, 10006));
        assert_eq!(media_ports(100, 10000, 100), (10000, 10000));
    }
}
