//! Hand-written SIP over UDP, for tests that need full control of every
//! header: forged answers and BYEs from hosts that are not in the call,
//! floods of INVITEs, calls the test drives message by message.
//!
//! A [`SipPeer`] is a UDP socket on the SIP port of a lab host. The daemon
//! handles signaling inline (NFQUEUE) and issues its verdict only after the
//! call state and the flow map are updated, so a message *received* by the
//! peer it was sent to has been fully processed by the daemon: receiving is
//! the synchronisation, never a sleep.
//!
//! [`Dialog`] holds the identifiers of one call (Call-ID, the caller's and
//! the callee's tags, both signaling addresses) and writes its messages;
//! [`Sdp`] is the single audio stream a message offers or answers.

use std::{
    io::ErrorKind,
    net::{IpAddr, SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use crate::{unique_id, Error, Netns, Result};

/// The SIP port of every peer.
pub const SIP_PORT: u16 = 5060;

/// One audio stream of an SDP body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sdp {
    /// Where this side receives RTP (`c=` address, `m=` port).
    pub media: SocketAddr,
    /// `a=rtcp-mux`: RTCP shares the RTP pair when both sides say so, so
    /// the call needs one pair (two flows) instead of two.
    pub rtcp_mux: bool,
}

impl Sdp {
    /// RTP on `media`, RTCP multiplexed onto it.
    pub fn muxed(media: SocketAddr) -> Sdp {
        Sdp {
            media,
            rtcp_mux: true,
        }
    }

    /// The SDP body.
    pub fn body(&self) -> String {
        let (net, ip) = match self.media.ip() {
            IpAddr::V4(v4) => ("IP4", v4.to_string()),
            IpAddr::V6(v6) => ("IP6", v6.to_string()),
        };
        let mux = if self.rtcp_mux { "a=rtcp-mux\r\n" } else { "" };
        format!(
            "v=0\r\no=- 1 1 IN {net} {ip}\r\ns=-\r\nc=IN {net} {ip}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n{mux}",
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
        }
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
             Via: SIP/2.0/UDP {via};branch=z9hG4bK{tag}{cseq}{method}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:caller@{caller}>;tag={tag}\r\n\
             To: <sip:callee@{callee}>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:caller@{via}>\r\n\
             {ctype}Content-Length: {len}\r\n\r\n{body}",
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

/// A UDP socket on a lab host's SIP port.
#[derive(Debug)]
pub struct SipPeer {
    sock: UdpSocket,
    addr: SocketAddr,
}

impl SipPeer {
    /// Binds `addr` inside `ns`.
    pub fn bind(ns: &Netns, addr: SocketAddr) -> Result<SipPeer> {
        Ok(SipPeer {
            sock: ns.udp_socket(addr)?,
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `msg` to `to`.
    pub fn send(&self, to: SocketAddr, msg: &str) -> Result<()> {
        self.sock
            .send_to(msg.as_bytes(), to)
            .map(drop)
            .map_err(Error::io(format!("sending SIP {} → {to}", self.addr)))
    }

    /// Receives exactly `n` datagrams within `timeout`; returns their text
    /// and sources. Fails on fewer.
    pub fn receive(&self, n: usize, timeout: Duration) -> Result<Vec<(String, SocketAddr)>> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::with_capacity(n);
        let mut buf = vec![0u8; 65536];
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    what: format!("{n} SIP messages on {} (got {})", self.addr, got.len()),
                    after: timeout,
                });
            }
            self.sock
                .set_read_timeout(Some(left))
                .map_err(Error::io("setting a receive timeout"))?;
            match self.sock.recv_from(&mut buf) {
                Ok((len, from)) => {
                    got.push((String::from_utf8_lossy(&buf[..len]).into_owned(), from));
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(Error::io(format!("receiving on {}", self.addr))(e)),
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
        let answer = Sdp {
            media: "[2001:db8:2::2]:12000".parse().unwrap(),
            rtcp_mux: false,
        };
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
}
