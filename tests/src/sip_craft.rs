//! Hand-written SIP over UDP or TCP, for tests that need full control of
//! every header: forged answers and BYEs from hosts that are not in the call,
//! floods of INVITEs, calls the test drives message by message.
//!
//! A [`SipPeer`] is a UDP socket on the SIP port of a lab host, or one end
//! of a TCP connection to the callee's SIP port ([`SipPeer::pair`]). The daemon
//! handles signaling inline (NFQUEUE) and issues its verdict only after the
//! call state and the flow map are updated, so a message *received* by the
//! peer it was sent to has been fully processed by the daemon: receiving is
//! the synchronisation, never a sleep.
//!
//! [`Dialog`] holds the identifiers of one call (Call-ID, the caller's and
//! the callee's tags, both signaling addresses, the transport) and writes
//! its messages; [`Sdp`] is the single audio stream a message offers or
//! answers, with its direction (hold) if any.

use std::{
    io::{ErrorKind, Read, Write},
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
    sync::Mutex,
    time::{Duration, Instant},
};

pub use crate::sipp::Transport;
use crate::{unique_id, wait_for, Error, Netns, Result};

/// The SIP port of every peer.
pub const SIP_PORT: u16 = 5060;

/// The direction attribute of a stream (RFC 4566 §6): anything but
/// `sendrecv` puts it on hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The attribute's name (`a=<name>`).
    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// One audio stream of an SDP body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sdp {
    /// Where this side receives RTP (`c=` address, `m=` port).
    pub media: SocketAddr,
    /// `a=rtcp-mux`: RTCP shares the RTP pair when both sides say so, so
    /// the call needs one pair (two flows) instead of two.
    pub rtcp_mux: bool,
    /// `a=<direction>`; none means `sendrecv` by default.
    pub direction: Option<Direction>,
}

impl Sdp {
    /// RTP on `media`, RTCP multiplexed onto it.
    pub fn muxed(media: SocketAddr) -> Sdp {
        Sdp {
            media,
            rtcp_mux: true,
            direction: None,
        }
    }

    /// RTP on `media`, RTCP on its own port, the next one.
    pub fn rtcp_apart(media: SocketAddr) -> Sdp {
        Sdp {
            rtcp_mux: false,
            ..Sdp::muxed(media)
        }
    }

    /// The same stream with `a=<direction>`.
    pub fn with_direction(self, direction: Direction) -> Sdp {
        Sdp {
            direction: Some(direction),
            ..self
        }
    }

    /// The SDP body.
    pub fn body(&self) -> String {
        let (net, ip) = match self.media.ip() {
            IpAddr::V4(v4) => ("IP4", v4.to_string()),
            IpAddr::V6(v6) => ("IP6", v6.to_string()),
        };
        let mux = if self.rtcp_mux { "a=rtcp-mux\r\n" } else { "" };
        let direction = self
            .direction
            .map(|d| format!("a={}\r\n", d.attribute()))
            .unwrap_or_default();
        format!(
            "v=0\r\no=- 1 1 IN {net} {ip}\r\ns=-\r\nc=IN {net} {ip}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n{mux}{direction}",
            self.media.port()
        )
    }
}

/// The identifiers and signaling addresses of one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialog {
    pub call_id: String,
    /// The caller's From-tag.
    pub caller_tag: String,
    /// The callee's To-tag (of its responses and later requests).
    pub callee_tag: String,
    /// The caller's signaling address.
    pub caller: SocketAddr,
    /// The callee's signaling address.
    pub callee: SocketAddr,
    /// The transport its Via headers name.
    pub transport: Transport,
}

impl Dialog {
    /// A call from `caller` to `callee` with identifiers unique to this
    /// process; `name` makes them readable in logs.
    pub fn new(name: &str, caller: SocketAddr, callee: SocketAddr) -> Dialog {
        let n = unique_id();
        let pid = std::process::id();
        Dialog {
            call_id: format!("{name}-{pid}-{n}@{}", host(caller.ip())),
            caller_tag: format!("a{pid}x{n}"),
            callee_tag: format!("b{pid}x{n}"),
            caller,
            callee,
            transport: Transport::Udp,
        }
    }

    /// The same call over `transport` (its Via headers).
    pub fn over(self, transport: Transport) -> Dialog {
        Dialog { transport, ..self }
    }

    /// The same call with another callee tag (a fork, or a forger's guess).
    pub fn with_callee_tag(&self, tag: &str) -> Dialog {
        Dialog {
            callee_tag: tag.to_owned(),
            ..self.clone()
        }
    }

    /// The same call with another caller tag (a forger's guess).
    pub fn with_caller_tag(&self, tag: &str) -> Dialog {
        Dialog {
            caller_tag: tag.to_owned(),
            ..self.clone()
        }
    }

    /// The initial INVITE (no To-tag) with CSeq `cseq`.
    pub fn invite(&self, cseq: u32, sdp: Option<&Sdp>) -> String {
        self.message(
            &format!("INVITE sip:callee@{} SIP/2.0", host(self.callee.ip())),
            self.caller,
            false,
            cseq,
            "INVITE",
            sdp,
        )
    }

    /// The callee's response `code reason` to the caller's `cseq method`
    /// (carries the callee's tag unless `code` is 100).
    pub fn response(
        &self,
        code: u16,
        reason: &str,
        cseq: u32,
        method: &str,
        sdp: Option<&Sdp>,
    ) -> String {
        self.message(
            &format!("SIP/2.0 {code} {reason}"),
            self.caller,
            code != 100,
            cseq,
            method,
            sdp,
        )
    }

    /// The caller's ACK of the 2xx to INVITE `cseq`.
    pub fn ack(&self, cseq: u32) -> String {
        self.in_dialog("ACK", cseq)
    }

    /// A BYE from the caller with CSeq `cseq`.
    pub fn bye(&self, cseq: u32) -> String {
        self.in_dialog("BYE", cseq)
    }

    /// A re-INVITE from the caller with CSeq `cseq` offering `sdp`.
    pub fn reinvite(&self, cseq: u32, sdp: &Sdp) -> String {
        self.request("INVITE", cseq, Some(sdp))
    }

    fn in_dialog(&self, method: &str, cseq: u32) -> String {
        self.request(method, cseq, None)
    }

    /// A request from the caller within the dialog.
    fn request(&self, method: &str, cseq: u32, sdp: Option<&Sdp>) -> String {
        self.message(
            &format!("{method} sip:callee@{} SIP/2.0", host(self.callee.ip())),
            self.caller,
            true,
            cseq,
            method,
            sdp,
        )
    }

    /// A message of this dialog in the caller → callee orientation of the
    /// From and To headers (requests from the caller, responses to them).
    fn message(
        &self,
        start: &str,
        via: SocketAddr,
        to_tag: bool,
        cseq: u32,
        method: &str,
        sdp: Option<&Sdp>,
    ) -> String {
        let to_tag = if to_tag {
            format!(";tag={}", self.callee_tag)
        } else {
            String::new()
        };
        let (ctype, body) = match sdp {
            Some(s) => ("Content-Type: application/sdp\r\n", s.body()),
            None => ("", String::new()),
        };
        format!(
            "{start}\r\n\
             Via: SIP/2.0/{transport} {via};branch=z9hG4bK{tag}{cseq}{method}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:caller@{caller}>;tag={tag}\r\n\
             To: <sip:callee@{callee}>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:caller@{via}>\r\n\
             {ctype}Content-Length: {len}\r\n\r\n{body}",
            transport = self.transport.via(),
            tag = self.caller_tag,
            caller = host(self.caller.ip()),
            callee = host(self.callee.ip()),
            call_id = self.call_id,
            len = body.len(),
        )
    }
}

/// `msg` with its SDP body grown to at least `len` bytes by attribute lines
/// no parser acts on (`a=x-pad:…`, as a long codec list or a video offer
/// would grow it), and its `Content-Length` fixed: a message bigger than a
/// 1,500-byte MTU crosses the router as IP fragments. `msg` must carry a
/// body and a `Content-Length` header, as [`Dialog`]'s messages with an SDP
/// do.
pub fn pad_sdp(msg: &str, len: usize) -> String {
    let (head, body) = msg
        .split_once("\r\n\r\n")
        .expect("a SIP message has an empty line before its body");
    assert!(!body.is_empty(), "pad_sdp needs a message with an SDP body");
    let mut body = body.to_owned();
    let mut n = 0;
    while body.len() < len {
        body.push_str(&format!("a=x-pad:{n:04} {}\r\n", "p".repeat(64)));
        n += 1;
    }
    let head: Vec<String> = head
        .split("\r\n")
        .map(|line| match line.split_once(':') {
            Some((name, _)) if name.eq_ignore_ascii_case("content-length") => {
                format!("Content-Length: {}", body.len())
            }
            _ => line.to_owned(),
        })
        .collect();
    format!("{}\r\n\r\n{body}", head.join("\r\n"))
}

/// An IP address as the host part of a SIP URI (IPv6 in brackets).
pub fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The value of header `name` (full form) in a SIP message, if present.
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split("\r\n")
        .take_while(|l| !l.is_empty())
        .skip(1)
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
}

/// How long [`SipPeer::pair`] waits for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one SIP message read from a TCP stream.
const MAX_TCP_MESSAGE: usize = 64 * 1024;

/// A lab host's SIP endpoint: a UDP socket on its SIP port, or one end of a
/// TCP connection (messages go to, and come from, the other end only).
#[derive(Debug)]
pub struct SipPeer {
    io: PeerIo,
    addr: SocketAddr,
}

#[derive(Debug)]
enum PeerIo {
    Udp(UdpSocket),
    Tcp {
        stream: TcpStream,
        peer: SocketAddr,
        /// Bytes read past the last whole message.
        pending: Mutex<Vec<u8>>,
    },
}

impl SipPeer {
    /// Binds `addr` inside `ns`.
    pub fn bind(ns: &Netns, addr: SocketAddr) -> Result<SipPeer> {
        Ok(SipPeer {
            io: PeerIo::Udp(ns.udp_socket(addr)?),
            addr,
        })
    }

    /// A caller in `caller_ns` and a callee on `callee` in `callee_ns`,
    /// talking over `transport`. UDP binds `caller` and `callee`; TCP has the
    /// callee listen on `callee` and the caller connect to it from an
    /// ephemeral port of `caller`'s address.
    pub fn pair(
        transport: Transport,
        caller_ns: &Netns,
        caller: SocketAddr,
        callee_ns: &Netns,
        callee: SocketAddr,
    ) -> Result<(SipPeer, SipPeer)> {
        if transport == Transport::Udp {
            return Ok((
                SipPeer::bind(caller_ns, caller)?,
                SipPeer::bind(callee_ns, callee)?,
            ));
        }
        let listener = callee_ns.tcp_listener(callee)?;
        listener
            .set_nonblocking(true)
            .map_err(Error::io("making the SIP listener non-blocking"))?;
        let out = caller_ns.tcp_connect(callee, CONNECT_TIMEOUT)?;
        let (accepted, from) = wait_for(
            &format!("the SIP connection to {callee}"),
            CONNECT_TIMEOUT,
            || match listener.accept() {
                Ok(conn) => Ok(Some(conn)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(None),
                Err(e) => Err(Error::io(format!("accepting on {callee}"))(e)),
            },
        )?;
        let local = out
            .local_addr()
            .map_err(Error::io("the SIP connection's address"))?;
        if local.ip() != caller.ip() {
            return Err(Error::Setup(format!(
                "the SIP connection to {callee} left from {local}, not from {}",
                caller.ip()
            )));
        }
        let tcp = |stream: TcpStream, addr: SocketAddr, peer: SocketAddr| -> Result<SipPeer> {
            stream
                .set_nonblocking(false)
                .and_then(|()| stream.set_nodelay(true))
                .map_err(Error::io(format!("setting up the SIP connection {addr}")))?;
            Ok(SipPeer {
                io: PeerIo::Tcp {
                    stream,
                    peer,
                    pending: Mutex::new(Vec::new()),
                },
                addr,
            })
        };
        Ok((tcp(out, local, callee)?, tcp(accepted, callee, from)?))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `msg` to `to` (over TCP, `to` must be the other end).
    pub fn send(&self, to: SocketAddr, msg: &str) -> Result<()> {
        let what = || format!("sending SIP {} → {to}", self.addr);
        match &self.io {
            PeerIo::Udp(sock) => sock
                .send_to(msg.as_bytes(), to)
                .map(drop)
                .map_err(Error::io(what())),
            PeerIo::Tcp { peer, .. } if *peer != to => Err(Error::Setup(format!(
                "{}: the TCP connection leads to {peer}",
                what()
            ))),
            PeerIo::Tcp { stream, .. } => (&*stream)
                .write_all(msg.as_bytes())
                .map_err(Error::io(what())),
        }
    }

    /// Receives exactly `n` messages within `timeout`; returns their text
    /// and sources. Fails on fewer.
    pub fn receive(&self, n: usize, timeout: Duration) -> Result<Vec<(String, SocketAddr)>> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::with_capacity(n);
        let mut buf = vec![0u8; 65536];
        while got.len() < n {
            if let PeerIo::Tcp { peer, pending, .. } = &self.io {
                let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(len) = tcp_message_len(&pending)? {
                    let msg: Vec<u8> = pending.drain(..len).collect();
                    got.push((String::from_utf8_lossy(&msg).into_owned(), *peer));
                    continue;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    what: format!("{n} SIP messages on {} (got {})", self.addr, got.len()),
                    after: timeout,
                });
            }
            let what = || format!("receiving on {}", self.addr);
            let read = match &self.io {
                PeerIo::Udp(sock) => sock
                    .set_read_timeout(Some(left))
                    .and_then(|()| sock.recv_from(&mut buf))
                    .map(|(len, from)| {
                        got.push((String::from_utf8_lossy(&buf[..len]).into_owned(), from));
                    }),
                PeerIo::Tcp {
                    stream, pending, ..
                } => stream
                    .set_read_timeout(Some(left))
                    .and_then(|()| (&*stream).read(&mut buf))
                    .and_then(|len| {
                        if len == 0 {
                            return Err(std::io::Error::new(
                                ErrorKind::UnexpectedEof,
                                "the SIP connection was closed",
                            ));
                        }
                        let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
                        pending.extend_from_slice(&buf[..len]);
                        if pending.len() > MAX_TCP_MESSAGE {
                            return Err(std::io::Error::other(format!(
                                "over {MAX_TCP_MESSAGE} bytes without a whole SIP message"
                            )));
                        }
                        Ok(())
                    }),
            };
            match read {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(Error::io(what())(e)),
            }
        }
        Ok(got)
    }

    /// Receives one message and checks that it is `want` (byte for byte)
    /// from `from`: the daemon let it through after handling it.
    pub fn expect(&self, want: &str, from: SocketAddr, timeout: Duration) -> Result<()> {
        let (msg, src) = self.receive(1, timeout)?.remove(0);
        if msg != want || src != from {
            return Err(Error::Setup(format!(
                "{} expected from {from}:\n{want}\ngot from {src}:\n{msg}",
                self.addr
            )));
        }
        Ok(())
    }
}

/// The length of the first whole SIP message at the start of a TCP byte
/// stream (head, empty line, `Content-Length` bytes of body), or `None`
/// while it is incomplete. A stream message must say its length (RFC 3261
/// §18.3): a missing or unreadable `Content-Length` is an error.
fn tcp_message_len(stream: &[u8]) -> Result<Option<usize>> {
    let Some(head_end) = stream.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&stream[..head_end + 4])
        .map_err(|_| Error::Setup("a SIP message head over TCP is not UTF-8".into()))?;
    let length = header(head, "content-length")
        .or_else(|| header(head, "l"))
        .ok_or_else(|| {
            Error::Setup(format!(
                "a SIP message over TCP without Content-Length:\n{head}"
            ))
        })?;
    let body: usize = length
        .parse()
        .map_err(|_| Error::Setup(format!("bad Content-Length {length:?} over TCP")))?;
    let total = (head_end + 4)
        .checked_add(body)
        .filter(|&t| t <= MAX_TCP_MESSAGE)
        .ok_or_else(|| Error::Setup(format!("Content-Length {body} over TCP is too big")))?;
    Ok((stream.len() >= total).then_some(total))
}

/// Sends `msg` from `tx` to `rx` and waits until `rx` has it.
pub fn deliver(tx: &SipPeer, rx: &SipPeer, msg: &str, timeout: Duration) -> Result<()> {
    tx.send(rx.addr(), msg)?;
    rx.expect(msg, tx.addr(), timeout)
}

/// A call set up from `caller` to `callee`: INVITE with `offer`, 200 OK
/// with `answer`, ACK, each delivered before the next is sent.
pub fn establish(
    caller: &SipPeer,
    callee: &SipPeer,
    d: &Dialog,
    offer: &Sdp,
    answer: &Sdp,
    timeout: Duration,
) -> Result<()> {
    deliver(caller, callee, &d.invite(1, Some(offer)), timeout)?;
    let ok = d.response(200, "OK", 1, "INVITE", Some(answer));
    deliver(callee, caller, &ok, timeout)?;
    deliver(caller, callee, &d.ack(1), timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialog() -> Dialog {
        Dialog::new(
            "t",
            "192.0.2.2:5060".parse().unwrap(),
            "[2001:db8:2::2]:5060".parse().unwrap(),
        )
    }

    #[test]
    fn messages_parse_as_the_daemon_parses_them() {
        use pinhole::calls::{SipEvent, SipMethod, SipStart};
        let d = dialog();
        let offer = Sdp::muxed("192.0.2.2:16000".parse().unwrap());
        let answer = Sdp::rtcp_apart("[2001:db8:2::2]:12000".parse().unwrap());
        let invite = SipStart::Request(SipMethod::Invite);
        // (message, start, cseq, CSeq method, with To-tag, SDP)
        let cases = [
            (
                d.invite(1, Some(&offer)),
                invite,
                1,
                SipMethod::Invite,
                false,
                Some(offer),
            ),
            (
                d.response(100, "Trying", 1, "INVITE", None),
                SipStart::Response(100),
                1,
                SipMethod::Invite,
                false,
                None,
            ),
            (
                d.response(200, "OK", 1, "INVITE", Some(&answer)),
                SipStart::Response(200),
                1,
                SipMethod::Invite,
                true,
                Some(answer),
            ),
            (
                d.ack(1),
                SipStart::Request(SipMethod::Ack),
                1,
                SipMethod::Ack,
                true,
                None,
            ),
            (
                d.bye(2),
                SipStart::Request(SipMethod::Bye),
                2,
                SipMethod::Bye,
                true,
                None,
            ),
            (
                d.reinvite(3, &offer),
                invite,
                3,
                SipMethod::Invite,
                true,
                Some(offer),
            ),
        ];
        for (text, start, cseq, method, to_tag, sdp) in cases {
            let msg = pinhole::signaling::sip::parse(text.as_bytes())
                .unwrap_or_else(|e| panic!("{e}:\n{text}"));
            let ev = SipEvent::from_message(&msg, d.caller, d.callee)
                .unwrap_or_else(|e| panic!("{e}:\n{text}"));
            assert_eq!(ev.start, start, "{text}");
            assert_eq!(ev.call_id, d.call_id, "{text}");
            assert_eq!(ev.from_tag, d.caller_tag, "{text}");
            assert_eq!(ev.to_tag, to_tag.then(|| d.callee_tag.clone()), "{text}");
            assert_eq!((ev.cseq, ev.cseq_method), (cseq, method), "{text}");
            let media: Option<Vec<_>> = ev
                .sdp
                .map(|m| m.iter().map(|m| (m.rtp, m.rtcp_mux)).collect());
            let want = sdp.map(|s| vec![(Some(s.media), s.rtcp_mux)]);
            assert_eq!(media, want, "{text}");
            assert_eq!(header(&text, "call-id"), Some(d.call_id.as_str()));
        }
    }

    #[test]
    fn padded_sdp_parses_to_the_same_media() {
        let d = dialog();
        let offer = Sdp::muxed("192.0.2.2:16000".parse().unwrap());
        for msg in [
            d.invite(1, Some(&offer)),
            d.response(200, "OK", 1, "INVITE", Some(&offer)),
        ] {
            let padded = pad_sdp(&msg, 3000);
            assert!(padded.len() > 3000, "{}", padded.len());
            let parsed = pinhole::signaling::sip::parse(padded.as_bytes())
                .unwrap_or_else(|e| panic!("{e}:\n{padded}"));
            let ev = pinhole::calls::SipEvent::from_message(&parsed, d.caller, d.callee)
                .unwrap_or_else(|e| panic!("{e}:\n{padded}"));
            let media: Vec<_> = ev.sdp.unwrap().iter().map(|m| m.rtp).collect();
            assert_eq!(media, [Some(offer.media)]);
            let body = padded.split_once("\r\n\r\n").unwrap().1;
            assert_eq!(
                header(&padded, "content-length"),
                Some(&*body.len().to_string())
            );
            assert!(body.starts_with(&offer.body()));
        }
    }

    #[test]
    fn identifiers_are_unique_and_tags_replaceable() {
        let (a, b) = (dialog(), dialog());
        assert_ne!(a.call_id, b.call_id);
        assert_ne!(a.caller_tag, b.caller_tag);
        let forged = a.with_callee_tag("x").with_caller_tag("y");
        assert_eq!(
            (forged.call_id.as_str(), forged.caller_tag.as_str()),
            (a.call_id.as_str(), "y")
        );
        assert!(forged
            .bye(2)
            .contains("To: <sip:callee@[2001:db8:2::2]>;tag=x\r\n"));
        assert_eq!(host("2001:db8::1".parse().unwrap()), "[2001:db8::1]");
    }

    #[test]
    fn directions_and_transport_are_written() {
        let d = dialog().over(Transport::Tcp);
        let held =
            Sdp::rtcp_apart("192.0.2.2:16000".parse().unwrap()).with_direction(Direction::Inactive);
        let text = d.reinvite(2, &held);
        assert!(
            text.contains("\r\nVia: SIP/2.0/TCP 192.0.2.2:5060;"),
            "{text}"
        );
        assert!(
            text.ends_with("a=rtpmap:0 PCMU/8000\r\na=inactive\r\n"),
            "{text}"
        );
        let plain = Sdp::muxed("192.0.2.2:16000".parse().unwrap());
        assert!(!plain.body().contains("a=inactive"));
        assert!(dialog().invite(1, None).contains("Via: SIP/2.0/UDP "));
        for (dir, attr) in [
            (Direction::SendRecv, "sendrecv"),
            (Direction::SendOnly, "sendonly"),
            (Direction::RecvOnly, "recvonly"),
            (Direction::Inactive, "inactive"),
        ] {
            assert!(plain
                .with_direction(dir)
                .body()
                .ends_with(&format!("a={attr}\r\n")));
        }
    }

    #[test]
    fn tcp_messages_are_framed_by_content_length() {
        let d = dialog();
        let invite = d.invite(1, Some(&Sdp::muxed("192.0.2.2:16000".parse().unwrap())));
        let bye = d.bye(2);
        let both = format!("{invite}{bye}");
        let n = invite.len();
        let big = format!("BYE x SIP/2.0\r\nContent-Length: {MAX_TCP_MESSAGE}\r\n\r\n");
        // (stream, Ok(length) or Err(part of the message))
        type Want = Result<Option<usize>, &'static str>;
        let cases: &[(&[u8], Want)] = &[
            (b"", Ok(None)),
            (invite.as_bytes(), Ok(Some(n))),
            (both.as_bytes(), Ok(Some(n))),
            (&invite.as_bytes()[..n - 1], Ok(None)),
            (&invite.as_bytes()[..20], Ok(None)),
            (b"ACK x SIP/2.0\r\nl: 2\r\n\r\nab+", Ok(Some(25))),
            (
                b"ACK x SIP/2.0\r\nVia: x\r\n\r\n",
                Err("without Content-Length"),
            ),
            (
                b"ACK x SIP/2.0\r\nContent-Length: -1\r\n\r\n",
                Err("bad Content-Length"),
            ),
            (
                b"ACK x SIP/2.0\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                Err("bad Content-Length"),
            ),
            (big.as_bytes(), Err("too big")),
            (
                b"ACK \xff SIP/2.0\r\nContent-Length: 0\r\n\r\n",
                Err("not UTF-8"),
            ),
        ];
        for (stream, want) in cases {
            let got = tcp_message_len(stream).map_err(|e| e.to_string());
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{stream:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{got} for {stream:?}"),
                (got, want) => panic!("{got:?}, wanted {want:?} for {stream:?}"),
            }
        }
        assert_eq!(tcp_message_len(bye.as_bytes()).unwrap(), Some(bye.len()));
    }
}
