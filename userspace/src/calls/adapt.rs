//! Thin adapters from the parsers' messages ([`crate::signaling`]) to the
//! call-state events.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::signaling::rtsp::{self, LowerTransport, RtspMessage, TransportSpec};
use crate::signaling::sdp::{
    ConnectionAddress, Direction, MediaDescription, SessionDescription, TransportFamily,
};
use crate::signaling::sip::{self, SipError, SipMessage};

use super::{Media, PortPair, RtspEvent, RtspMethod, RtspStart, RtspTransport, SipEvent};
use super::{SipMethod, SipStart};

impl From<&sip::Method> for SipMethod {
    fn from(m: &sip::Method) -> Self {
        match m {
            sip::Method::Invite => SipMethod::Invite,
            sip::Method::Ack => SipMethod::Ack,
            sip::Method::Bye => SipMethod::Bye,
            sip::Method::Cancel => SipMethod::Cancel,
            sip::Method::Prack => SipMethod::Prack,
            sip::Method::Update => SipMethod::Update,
            _ => SipMethod::Other,
        }
    }
}

impl SipEvent {
    /// The event for `msg`, sent from `src` to `dst`. Fails when the message
    /// carries an SDP body that cannot be read: such a message must not be
    /// mistaken for one without SDP.
    pub fn from_message(
        msg: &SipMessage,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> Result<Self, SipError> {
        let start = match &msg.start_line {
            sip::StartLine::Request { method, .. } => SipStart::Request(method.into()),
            sip::StartLine::Response { code, .. } => SipStart::Response(*code),
        };
        Ok(SipEvent {
            src,
            dst,
            start,
            call_id: msg.call_id.clone(),
            from_tag: msg.from_tag().unwrap_or_default().to_string(),
            to_tag: msg.to_tag().map(str::to_string),
            cseq: msg.cseq.seq,
            cseq_method: (&msg.cseq.method).into(),
            sdp: msg.sdp()?.as_ref().map(media_of),
        })
    }
}

/// The streams of an SDP body, in `m=` order.
pub fn media_of(sdp: &SessionDescription) -> Vec<Media> {
    sdp.media().iter().map(|d| stream(sdp, d)).collect()
}

fn stream(sdp: &SessionDescription, d: &MediaDescription) -> Media {
    let none = Media {
        rtp: None,
        rtcp: None,
        rtcp_mux: false,
        hold: false,
        one_way: false,
    };
    let Some(section) = sdp.media_sections.get(d.index) else {
        return none;
    };
    // Media over TCP (MSRP, BFCP, TCP/RTP) needs no UDP pinhole.
    if d.rejected || d.transport == TransportFamily::Tcp {
        return none;
    }
    let conn = section.connections.first().or(sdp.connection.as_ref());
    if conn.is_some_and(|c| c.is_unspecified()) {
        return Media { hold: true, ..none };
    }
    let Some(rtp) = d.rtp else {
        return none;
    };
    // The parser resolves RTCP to the RTP endpoint under a=rtcp-mux; the
    // tracker wants the non-multiplexed fallback too, since multiplexing
    // only happens when both sides agree (RFC 5761 §5.1.1).
    let rtcp = if !d.rtcp_mux {
        d.rtcp
    } else if !section.is_rtp() {
        None
    } else {
        match &section.rtcp {
            Some(attr) => match &attr.address {
                None => Some(SocketAddr::new(rtp.ip(), attr.port)),
                Some(ConnectionAddress::Ip(ip)) => Some(SocketAddr::new(*ip, attr.port)),
                Some(_) => None,
            },
            None => rtp
                .port()
                .checked_add(1)
                .map(|p| SocketAddr::new(rtp.ip(), p)),
        }
    };
    Media {
        rtp: Some(rtp),
        rtcp,
        rtcp_mux: d.rtcp_mux,
        hold: false,
        one_way: d.direction != Direction::SendRecv,
    }
}

impl From<&rtsp::Method> for RtspMethod {
    fn from(m: &rtsp::Method) -> Self {
        match m {
            rtsp::Method::Setup => RtspMethod::Setup,
            rtsp::Method::Play => RtspMethod::Play,
            rtsp::Method::Pause => RtspMethod::Pause,
            rtsp::Method::Teardown => RtspMethod::Teardown,
            _ => RtspMethod::Other,
        }
    }
}

impl From<&TransportSpec> for RtspTransport {
    /// RTSP 1.0 `client_port`/`server_port`/`destination`/`source`, or RTSP
    /// 2.0 `dest_addr`/`src_addr` (RTP address first, then RTCP).
    fn from(t: &TransportSpec) -> Self {
        let addr_ports = |addrs: &[rtsp::TransportAddr]| {
            let rtp = addrs.first()?.port?;
            let rtcp = addrs.get(1).and_then(|a| a.port).or(rtp.checked_add(1));
            Some(PortPair { rtp, rtcp })
        };
        let range = |r: rtsp::PortRange| PortPair {
            rtp: r.rtp(),
            rtcp: r.rtcp(),
        };
        let ip = |s: &Option<String>| s.as_deref().and_then(|s| s.trim().parse::<IpAddr>().ok());
        RtspTransport {
            interleaved: t.lower == LowerTransport::Tcp || t.interleaved.is_some(),
            client_port: t
                .client_port
                .map(range)
                .or_else(|| addr_ports(&t.dest_addr)),
            server_port: t.server_port.map(range).or_else(|| addr_ports(&t.src_addr)),
            destination: ip(&t.destination).or_else(|| t.dest_addr.first().and_then(|a| a.ip())),
            source: ip(&t.source).or_else(|| t.src_addr.first().and_then(|a| a.ip())),
        }
    }
}

impl RtspEvent {
    /// The event for `msg`, sent from `src` to `dst`. A request's transport
    /// is its first UDP alternative (else its first); a response's is the one
    /// the server chose.
    pub fn from_message(msg: &RtspMessage, src: SocketAddr, dst: SocketAddr) -> Self {
        let start = match &msg.start_line {
            rtsp::StartLine::Request { method, .. } => RtspStart::Request(method.into()),
            rtsp::StartLine::Response { code, .. } => RtspStart::Response(*code),
        };
        let spec = match start {
            RtspStart::Request(_) => msg
                .transport
                .iter()
                .find(|t| t.lower == LowerTransport::Udp && t.interleaved.is_none())
                .or(msg.transport.first()),
            RtspStart::Response(_) => msg.transport.first(),
        };
        RtspEvent {
            src,
            dst,
            start,
            cseq: msg.cseq,
            session: msg.session.as_ref().map(|s| s.id.clone()),
            session_timeout: msg
                .session
                .as_ref()
                .and_then(|s| s.timeout)
                .map(|t| Duration::from_secs(t.into())),
            transport: spec.map(RtspTransport::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn media(rtp: &str, rtcp: Option<&str>, rtcp_mux: bool) -> Media {
        Media {
            rtp: Some(sa(rtp)),
            rtcp: rtcp.map(sa),
            rtcp_mux,
            hold: false,
            one_way: false,
        }
    }

    const NONE: Media = Media {
        rtp: None,
        rtcp: None,
        rtcp_mux: false,
        hold: false,
        one_way: false,
    };

    #[test]
    fn sdp_streams() {
        let head = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n";
        // (media sections, expected streams)
        let cases: Vec<(&str, Vec<Media>)> = vec![
            (
                "m=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n",
                vec![
                    media("192.0.2.10:4000", Some("192.0.2.10:4001"), false),
                    NONE,
                ],
            ),
            (
                "m=audio 4000 RTP/AVP 0\r\na=rtcp:4005\r\n",
                vec![media("192.0.2.10:4000", Some("192.0.2.10:4005"), false)],
            ),
            (
                "m=audio 4000 RTP/AVP 0\r\na=rtcp:4007 IN IP4 192.0.2.11\r\n",
                vec![media("192.0.2.10:4000", Some("192.0.2.11:4007"), false)],
            ),
            (
                "m=audio 4000 RTP/AVP 0\r\na=rtcp-mux\r\n",
                vec![media("192.0.2.10:4000", Some("192.0.2.10:4001"), true)],
            ),
            (
                "m=audio 4000 RTP/AVP 0\r\na=rtcp-mux\r\na=rtcp:4000\r\n",
                vec![media("192.0.2.10:4000", Some("192.0.2.10:4000"), true)],
            ),
            (
                "m=audio 4000 RTP/AVP 0\r\nc=IN IP6 2001:db8::10\r\n",
                vec![media(
                    "[2001:db8::10]:4000",
                    Some("[2001:db8::10]:4001"),
                    false,
                )],
            ),
            (
                "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n",
                vec![Media { hold: true, ..NONE }],
            ),
            (
                "m=audio 4000 RTP/AVP 0\r\na=sendonly\r\n",
                vec![Media {
                    one_way: true,
                    ..media("192.0.2.10:4000", Some("192.0.2.10:4001"), false)
                }],
            ),
            (
                "m=audio 4000 RTP/AVP 0\r\na=recvonly\r\n",
                vec![Media {
                    one_way: true,
                    ..media("192.0.2.10:4000", Some("192.0.2.10:4001"), false)
                }],
            ),
            (
                "a=inactive\r\nm=audio 4000 RTP/AVP 0\r\n",
                vec![Media {
                    one_way: true,
                    ..media("192.0.2.10:4000", Some("192.0.2.10:4001"), false)
                }],
            ),
            (
                "a=inactive\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n",
                vec![media("192.0.2.10:4000", Some("192.0.2.10:4001"), false)],
            ),
            ("m=message 2855 TCP/MSRP *\r\n", vec![NONE]),
            (
                "m=image 4010 udptl t38\r\n",
                vec![media("192.0.2.10:4010", None, false)],
            ),
        ];
        for (sections, want) in cases {
            let text = format!("{head}{sections}");
            let sdp = crate::signaling::sdp::parse(&text).unwrap();
            assert_eq!(media_of(&sdp), want, "{sections}");
        }
    }

    #[test]
    fn sip_message_to_event() {
        let text = "SIP/2.0 200 OK\r\n\
            Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n\
            From: <sip:a@example.com>;tag=1928301774\r\n\
            t: <sip:b@example.com>;tag=a6c85cf\r\n\
            i: a84b4c76e66710@pc33.example.com\r\n\
            CSeq: 314159 INVITE\r\n\
            c: application/sdp\r\n\
            l: 79\r\n\r\n\
            v=0\r\no=- 1 1 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0\r\n";
        let text = text.replace(
            "l: 79",
            &format!("l: {}", text.split("\r\n\r\n").nth(1).unwrap().len()),
        );
        let msg = sip::parse(text.as_bytes()).unwrap();
        let ev =
            SipEvent::from_message(&msg, sa("198.51.100.20:5060"), sa("192.0.2.10:5060")).unwrap();
        assert_eq!(
            ev,
            SipEvent {
                src: sa("198.51.100.20:5060"),
                dst: sa("192.0.2.10:5060"),
                start: SipStart::Response(200),
                call_id: "a84b4c76e66710@pc33.example.com".into(),
                from_tag: "1928301774".into(),
                to_tag: Some("a6c85cf".into()),
                cseq: 314159,
                cseq_method: SipMethod::Invite,
                sdp: Some(vec![media(
                    "198.51.100.20:10000",
                    Some("198.51.100.20:10001"),
                    false
                )]),
            }
        );
    }

    #[test]
    fn rtsp_messages_to_events() {
        let req = "SETUP rtsp://example.com/foo/bar/baz.rm RTSP/1.0\r\n\
            CSeq: 302\r\n\
            Transport: RTP/AVP/TCP;interleaved=0-1, RTP/AVP;unicast;client_port=4588-4589\r\n\r\n";
        let resp = "RTSP/1.0 200 OK\r\n\
            CSeq: 302\r\n\
            Session: 47112344;timeout=30\r\n\
            Transport: RTP/AVP;unicast;client_port=4588-4589;server_port=6256-6257;source=198.51.100.20\r\n\r\n";
        let (client, server) = (sa("192.0.2.10:40000"), sa("198.51.100.20:554"));
        let req = RtspEvent::from_message(&rtsp::parse(req.as_bytes()).unwrap(), client, server);
        let resp = RtspEvent::from_message(&rtsp::parse(resp.as_bytes()).unwrap(), server, client);
        let ports = |rtp, rtcp| {
            Some(PortPair {
                rtp,
                rtcp: Some(rtcp),
            })
        };
        assert_eq!(
            req,
            RtspEvent {
                src: client,
                dst: server,
                start: RtspStart::Request(RtspMethod::Setup),
                cseq: 302,
                session: None,
                session_timeout: None,
                transport: Some(RtspTransport {
                    client_port: ports(4588, 4589),
                    ..RtspTransport::default()
                }),
            }
        );
        assert_eq!(
            resp,
            RtspEvent {
                src: server,
                dst: client,
                start: RtspStart::Response(200),
                cseq: 302,
                session: Some("47112344".into()),
                session_timeout: Some(Duration::from_secs(30)),
                transport: Some(RtspTransport {
                    client_port: ports(4588, 4589),
                    server_port: ports(6256, 6257),
                    source: Some("198.51.100.20".parse().unwrap()),
                    ..RtspTransport::default()
                }),
            }
        );

        // Interleaved only, and RTSP 2.0 dest_addr/src_addr.
        let tcp = "SETUP rtsp://example.com/a RTSP/1.0\r\nCSeq: 3\r\n\
            Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n";
        let ev = RtspEvent::from_message(&rtsp::parse(tcp.as_bytes()).unwrap(), client, server);
        assert!(ev.transport.unwrap().interleaved);
        let v2 = "RTSP/2.0 200 OK\r\nCSeq: 4\r\nSession: abc\r\n\
            Transport: RTP/AVP;unicast;dest_addr=\"192.0.2.10:5000\"/\"192.0.2.10:5001\";src_addr=\"198.51.100.20:6000\"/\"198.51.100.20:6001\"\r\n\r\n";
        let ev = RtspEvent::from_message(&rtsp::parse(v2.as_bytes()).unwrap(), server, client);
        assert_eq!(
            ev.transport,
            Some(RtspTransport {
                client_port: ports(5000, 5001),
                server_port: ports(6000, 6001),
                destination: Some("192.0.2.10".parse().unwrap()),
                source: Some("198.51.100.20".parse().unwrap()),
                ..RtspTransport::default()
            })
        );
    }

    /// A SIP message with the given start line, dialog headers and SDP body.
    fn sip_msg(
        start: &str,
        tags: (&str, Option<&str>),
        cseq: &str,
        sdp: Option<&str>,
    ) -> SipMessage {
        let to = tags.1.map_or(String::new(), |t| format!(";tag={t}"));
        let body = sdp.unwrap_or("");
        let ctype = if sdp.is_some() {
            "Content-Type: application/sdp\r\n"
        } else {
            ""
        };
        let text = format!(
            "{start}\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1\r\n\
             From: <sip:alice@example.com>;tag={}\r\nTo: <sip:bob@example.com>{to}\r\n\
             Call-ID: flow-1@192.0.2.10\r\nCSeq: {cseq}\r\nMax-Forwards: 70\r\n\
             {ctype}Content-Length: {}\r\n\r\n{body}",
            tags.0,
            body.len()
        );
        sip::parse(text.as_bytes()).unwrap()
    }

    fn sdp_text(ip: &str, audio: u16, video: u16, attrs: &str) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {audio} RTP/AVP 0\r\n{attrs}m=video {video} RTP/AVP 31\r\n"
        )
    }

    #[test]
    fn parsed_messages_drive_a_call() {
        use crate::calls::{CallConfig, CallKey, Calls, CloseCause, Intent, Owner};

        let (alice, bob) = (sa("192.0.2.10:5060"), sa("198.51.100.20:5060"));
        let offer = sdp_text("192.0.2.10", 49170, 51372, "");
        let answer = sdp_text("198.51.100.20", 49174, 0, "");
        let hold = sdp_text("192.0.2.10", 49170, 51372, "a=sendonly\r\n");
        let held = sdp_text("198.51.100.20", 49174, 0, "a=recvonly\r\n");
        let owner = Owner::Sip(CallKey {
            call_id: "flow-1@192.0.2.10".into(),
            caller_tag: "a1".into(),
        });
        let open = |a: &str, b: &str| Intent::Open {
            owner: owner.clone(),
            a: sa(a),
            b: sa(b),
            idle_timeout: Duration::from_secs(300),
        };
        let close = |a: &str, b: &str| Intent::Close {
            owner: owner.clone(),
            a: sa(a),
            b: sa(b),
            cause: CloseCause::Bye,
        };
        // Hold keeps the pairs' flows; only their idle timeout changes.
        let retime = |a: &str, b: &str| Intent::Retime {
            owner: owner.clone(),
            a: sa(a),
            b: sa(b),
            idle_timeout: Duration::from_secs(3600),
        };
        // (message, sender, receiver, intents)
        let steps = [
            (
                sip_msg(
                    "INVITE sip:bob@example.com SIP/2.0",
                    ("a1", None),
                    "1 INVITE",
                    Some(&offer),
                ),
                alice,
                bob,
                vec![],
            ),
            (
                sip_msg("SIP/2.0 180 Ringing", ("a1", Some("b1")), "1 INVITE", None),
                bob,
                alice,
                vec![],
            ),
            (
                sip_msg(
                    "SIP/2.0 200 OK",
                    ("a1", Some("b1")),
                    "1 INVITE",
                    Some(&answer),
                ),
                bob,
                alice,
                vec![
                    open("192.0.2.10:49170", "198.51.100.20:49174"),
                    open("192.0.2.10:49171", "198.51.100.20:49175"),
                ],
            ),
            (
                sip_msg(
                    "ACK sip:bob@198.51.100.20 SIP/2.0",
                    ("a1", Some("b1")),
                    "1 ACK",
                    None,
                ),
                alice,
                bob,
                vec![],
            ),
            (
                sip_msg(
                    "INVITE sip:bob@198.51.100.20 SIP/2.0",
                    ("a1", Some("b1")),
                    "2 INVITE",
                    Some(&hold),
                ),
                alice,
                bob,
                vec![],
            ),
            (
                sip_msg(
                    "SIP/2.0 200 OK",
                    ("a1", Some("b1")),
                    "2 INVITE",
                    Some(&held),
                ),
                bob,
                alice,
                vec![
                    retime("192.0.2.10:49170", "198.51.100.20:49174"),
                    retime("192.0.2.10:49171", "198.51.100.20:49175"),
                ],
            ),
            (
                sip_msg(
                    "BYE sip:bob@198.51.100.20 SIP/2.0",
                    ("a1", Some("b1")),
                    "3 BYE",
                    None,
                ),
                alice,
                bob,
                vec![],
            ),
        ];
        let mut calls = Calls::new(CallConfig::default());
        for (i, (msg, src, dst, want)) in steps.into_iter().enumerate() {
            let ev = SipEvent::from_message(&msg, src, dst).unwrap();
            assert_eq!(calls.on_sip(&ev, i as u64), want, "step {i}");
        }
        assert_eq!(
            calls.tick(2_000_000_010),
            vec![
                close("192.0.2.10:49170", "198.51.100.20:49174"),
                close("192.0.2.10:49171", "198.51.100.20:49175"),
            ]
        );
    }
}
