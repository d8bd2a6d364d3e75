//! RTSP tests: RFC 2326 / 7826 examples, Transport grammar, SETUP pairing, framing.

use super::fixtures::*;
use crate::signaling::rtsp::{
    self, parse_session, parse_transport_spec, Delivery, LowerTransport, Method, PortRange,
    RtspError, RtspFramer, StartLine, Version,
};
use crate::signaling::MessageError;

fn parse_ok(text: &str) -> rtsp::RtspMessage {
    let bytes = crlf(text);
    rtsp::parse(&bytes).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn rfc2326_setup_exchange() {
    let req = parse_ok(RTSP_SETUP_REQ);
    assert_eq!(
        req.start_line,
        StartLine::Request {
            method: Method::Setup,
            uri: "rtsp://example.com/foo/bar/baz.rm".into(),
            version: Version::V1_0
        }
    );
    assert_eq!(req.cseq, 302);
    assert_eq!(req.transport.len(), 1);
    let t = &req.transport[0];
    assert_eq!(
        (t.protocol.as_str(), t.profile.as_str(), t.lower),
        ("RTP", "AVP", LowerTransport::Udp)
    );
    assert_eq!(t.delivery, Some(Delivery::Unicast));
    assert_eq!(
        t.client_port,
        Some(PortRange {
            first: 4588,
            last: Some(4589)
        })
    );

    let resp = parse_ok(RTSP_SETUP_RESP);
    assert_eq!(resp.status_code(), Some(200));
    assert_eq!(resp.session.as_ref().unwrap().id, "47112344");
    assert_eq!(resp.session.as_ref().unwrap().timeout, None);
    assert_eq!(resp.header("date"), Some("23 Jan 1997 15:35:06 GMT"));

    let info = rtsp::setup_info(&req, &resp).unwrap();
    assert_eq!(
        (
            info.client_rtp,
            info.client_rtcp,
            info.server_rtp,
            info.server_rtcp
        ),
        (Some(4588), Some(4589), Some(6256), Some(6257))
    );
    assert!(!info.interleaved && !info.multicast);
    assert!(info.needs_pinhole());
    assert_eq!(info.source, None);
    assert_eq!(info.session.unwrap().id, "47112344");
}

#[test]
fn rfc2326_transport_alternatives() {
    let req = parse_ok(RTSP_TRANSPORT_ALTERNATIVES);
    assert_eq!(req.transport.len(), 2);
    let (a, b) = (&req.transport[0], &req.transport[1]);
    assert_eq!(a.delivery, Some(Delivery::Multicast));
    assert_eq!(a.ttl, Some(127));
    assert_eq!(a.mode.as_deref(), Some("PLAY"));
    assert_eq!(b.delivery, Some(Delivery::Unicast));
    assert_eq!(
        b.client_port.map(|p| (p.rtp(), p.rtcp())),
        Some((3456, Some(3457)))
    );
}

#[test]
fn rfc7826_setup_exchange() {
    let req = parse_ok(RTSP2_SETUP_REQ);
    assert!(matches!(
        req.start_line,
        StartLine::Request {
            version: Version::V2_0,
            ..
        }
    ));
    assert_eq!(req.transport.len(), 2);
    assert_eq!(req.transport[0].dest_addr.len(), 2);
    assert_eq!(req.transport[0].dest_addr[0].host, None);
    assert_eq!(req.transport[0].dest_addr[0].port, Some(3056));
    assert_eq!(req.transport[1].lower, LowerTransport::Tcp);
    assert_eq!(req.transport[1].interleaved, Some((0, Some(1))));

    let resp = parse_ok(RTSP2_SETUP_RESP);
    let session = resp.session.clone().unwrap();
    assert_eq!(
        (session.id.as_str(), session.timeout),
        ("OoOUPyUwt0VeY9fFRHuZ6L", Some(60))
    );
    assert_eq!(resp.transport[0].ssrc.as_deref(), Some("2A3F93ED"));
    let info = rtsp::setup_info(&req, &resp).unwrap();
    assert_eq!(
        (
            info.client_rtp,
            info.client_rtcp,
            info.server_rtp,
            info.server_rtcp
        ),
        (Some(3056), Some(3057), Some(6256), Some(6257))
    );
    assert_eq!(info.source, Some("198.51.100.241".parse().unwrap()));
    assert_eq!(info.destination, Some("192.0.2.53".parse().unwrap()));
    assert!(info.needs_pinhole());
}

#[test]
fn setup_variants_table() {
    type Expect = (
        Option<u16>,
        Option<u16>,
        Option<u16>,
        Option<u16>,
        bool,
        bool,
    );
    let cases: &[(&str, &str, &str, Expect)] = &[
        (
            "interleaved TCP",
            "RTP/AVP/TCP;interleaved=0-1",
            "RTP/AVP/TCP;interleaved=0-1",
            (None, None, None, None, true, false),
        ),
        (
            "interleaved without lower transport",
            "RTP/AVP;unicast;client_port=5000-5001",
            "RTP/AVP;interleaved=2-3",
            (Some(5000), Some(5001), None, None, true, false),
        ),
        (
            "response omits client_port",
            "RTP/AVP;unicast;client_port=5000-5001",
            "RTP/AVP;unicast;server_port=7000-7001;source=198.51.100.5",
            (Some(5000), Some(5001), Some(7000), Some(7001), false, false),
        ),
        (
            "single ports imply RTCP = RTP + 1",
            "RTP/AVP;unicast;client_port=5000",
            "RTP/AVP;unicast;client_port=5000;server_port=7000",
            (Some(5000), Some(5001), Some(7000), Some(7001), false, false),
        ),
        (
            "multicast",
            "RTP/AVP;multicast",
            "RTP/AVP;multicast;destination=224.2.0.1;port=3456-3457;ttl=16",
            (None, None, None, None, false, true),
        ),
        (
            "server chooses the second alternative",
            "RTP/AVP/TCP;interleaved=0-1, RTP/AVP/UDP;unicast;client_port=6000-6001",
            "RTP/AVP/UDP;unicast;server_port=8000-8001",
            (Some(6000), Some(6001), Some(8000), Some(8001), false, false),
        ),
        (
            "non-adjacent RTCP port",
            "RTP/AVP;unicast;client_port=5000-5003",
            "RTP/AVP;unicast;client_port=5000-5003;server_port=7000-7005",
            (Some(5000), Some(5003), Some(7000), Some(7005), false, false),
        ),
    ];
    for (name, req_t, resp_t, expected) in cases {
        let req = parse_ok(&format!(
            "SETUP rtsp://media.example.com/s/track1 RTSP/1.0\nCSeq: 7\nTransport: {req_t}\n\n"
        ));
        let resp = parse_ok(&format!(
            "RTSP/1.0 200 OK\nCSeq: 7\nSession: 12345678;timeout=60\nTransport: {resp_t}\n\n"
        ));
        let info = rtsp::setup_info(&req, &resp).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (
                info.client_rtp,
                info.client_rtcp,
                info.server_rtp,
                info.server_rtcp,
                info.interleaved,
                info.multicast
            ),
            *expected,
            "{name}"
        );
        assert_eq!(
            info.needs_pinhole(),
            !info.interleaved && (info.client_rtp.is_some() || info.server_rtp.is_some())
        );
        assert_eq!(info.session.as_ref().unwrap().timeout, Some(60), "{name}");
    }
    let resp = parse_ok(
        "RTSP/1.0 200 OK\nCSeq: 7\nTransport: RTP/AVP;unicast;client_port=5000-5001;server_port=7000-7001;source=198.51.100.5;destination=192.0.2.9\n\n",
    );
    let req = parse_ok(
        "SETUP rtsp://h/s RTSP/1.0\nCSeq: 7\nTransport: RTP/AVP;unicast;client_port=5000-5001\n\n",
    );
    let info = rtsp::setup_info(&req, &resp).unwrap();
    assert_eq!(info.source, Some("198.51.100.5".parse().unwrap()));
    assert_eq!(info.destination, Some("192.0.2.9".parse().unwrap()));
}

#[test]
fn setup_info_rejects_mismatched_pairs() {
    let req = parse_ok(RTSP_SETUP_REQ);
    let resp = parse_ok(RTSP_SETUP_RESP);
    let play = parse_ok("PLAY rtsp://example.com/foo RTSP/1.0\nCSeq: 302\nSession: 47112344\n\n");
    let not_found = parse_ok("RTSP/1.0 454 Session Not Found\nCSeq: 302\n\n");
    let other_cseq = parse_ok(&RTSP_SETUP_RESP.replace("CSeq: 302", "CSeq: 303"));
    let no_transport = parse_ok("RTSP/1.0 200 OK\nCSeq: 302\nSession: 1\n\n");
    let cases = [
        ("request not SETUP", &play, &resp),
        ("response is a request", &req, &req),
        ("error status", &req, &not_found),
        ("CSeq mismatch", &req, &other_cseq),
    ];
    for (name, a, b) in cases {
        assert!(
            matches!(rtsp::setup_info(a, b), Err(RtspError::NotSetupExchange(_))),
            "{name}"
        );
    }
    assert_eq!(
        rtsp::setup_info(&req, &no_transport),
        Err(RtspError::MissingHeader("Transport"))
    );
}

#[test]
fn methods_and_responses() {
    let cases: &[(&str, Method)] = &[
        ("OPTIONS * RTSP/1.0", Method::Options),
        ("DESCRIBE rtsp://h/s RTSP/1.0", Method::Describe),
        ("PLAY rtsp://h/s RTSP/1.0", Method::Play),
        ("PAUSE rtsp://h/s RTSP/1.0", Method::Pause),
        ("TEARDOWN rtsp://h/s RTSP/1.0", Method::Teardown),
        ("GET_PARAMETER rtsp://h/s RTSP/1.0", Method::GetParameter),
        ("SET_PARAMETER rtsp://h/s RTSP/2.0", Method::SetParameter),
        ("ANNOUNCE rtsp://h/s RTSP/1.0", Method::Announce),
        ("RECORD rtsp://h/s RTSP/1.0", Method::Record),
        ("REDIRECT rtsp://h/s RTSP/1.0", Method::Redirect),
        ("PLAY_NOTIFY rtsp://h/s RTSP/2.0", Method::PlayNotify),
        (
            "X_CUSTOM rtspu://h/s RTSP/1.0",
            Method::Other("X_CUSTOM".into()),
        ),
    ];
    for (line, method) in cases {
        let m = parse_ok(&format!("{line}\nCSeq: 1\nSession: abc\n\n"));
        assert_eq!(m.method(), Some(method), "{line}");
        assert_eq!(m.status_code(), None);
        assert_eq!(Method::from_token(method.as_str()), *method);
        assert_eq!(method.to_string(), method.as_str());
    }
    let m = parse_ok(
        "RTSP/1.0 200 OK\nCSeq: 2\nContent-Type: application/sdp\nContent-Length: 4\n\nv=0\n",
    );
    assert_eq!(m.body, b"v=0\r");
    assert_eq!(m.content_type.as_deref(), Some("application/sdp"));
    let m = parse_ok("RTSP/2.0 461 Unsupported Transport\nCSeq: 3\n\n");
    assert!(matches!(
        m.start_line,
        StartLine::Response {
            version: Version::V2_0,
            code: 461,
            ..
        }
    ));
    assert_eq!(m.method(), None);
}

#[test]
fn session_header_table() {
    let ok: &[(&str, &str, Option<u32>)] = &[
        ("47112344", "47112344", None),
        ("12345678;timeout=60", "12345678", Some(60)),
        ("abc ; timeout = 30", "abc", Some(30)),
        ("x$-_.+;other=1;timeout=5", "x$-_.+", Some(5)),
    ];
    for (v, id, timeout) in ok {
        let s = parse_session(v).unwrap_or_else(|e| panic!("{v}: {e}"));
        assert_eq!((s.id.as_str(), s.timeout), (*id, *timeout), "{v}");
    }
    for bad in [
        "",
        ";timeout=5",
        "a b",
        "x;timeout=",
        "x;timeout=abc",
        "x;timeout=99999999999",
        "x;timeout",
    ] {
        assert!(parse_session(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn transport_spec_table() {
    let t = parse_transport_spec(
        "RTP/SAVPF/UDP;unicast;client_port=4000-4001;server_port=5000-5001;ssrc=1234ABCD;mode=\"PLAY,RECORD\";append;layers=2;setup=active",
    )
    .unwrap();
    assert_eq!(t.profile, "SAVPF");
    assert_eq!(t.mode.as_deref(), Some("PLAY,RECORD"));
    assert_eq!(t.params.len(), 3);
    assert_eq!(t.params[1].name, "layers");

    let t = parse_transport_spec("rtp/avp/tcp;Interleaved=4").unwrap();
    assert_eq!(t.lower, LowerTransport::Tcp);
    assert_eq!(t.interleaved, Some((4, None)));

    let t = parse_transport_spec(
        "RTP/AVP;unicast;dest_addr=\"[2001:db8::5]:4000\"/\"[2001:db8::5]:4001\"",
    )
    .unwrap();
    assert_eq!(t.dest_addr[0].ip(), Some("2001:db8::5".parse().unwrap()));
    assert_eq!(t.dest_addr[1].port, Some(4001));
    let t =
        parse_transport_spec("RTP/AVP;unicast;dest_addr=192.0.2.1:4000/192.0.2.1:4001").unwrap();
    assert_eq!(t.dest_addr.len(), 2);
    let t = parse_transport_spec("RTP/AVP;unicast;src_addr=\"media.example.com:9000\"").unwrap();
    assert_eq!(t.src_addr[0].host.as_deref(), Some("media.example.com"));
    assert_eq!(t.src_addr[0].ip(), None);

    let bad = [
        "",
        "RTP",
        "RTP/AVP/SCTP",
        "RTP/AVP/UDP/X",
        "RTP/ /UDP",
        "RTP/AVP;client_port=70000-70001",
        "RTP/AVP;client_port=5001-5000",
        "RTP/AVP;client_port=abc",
        "RTP/AVP;client_port",
        "RTP/AVP;server_port=-1",
        "RTP/AVP;interleaved=300",
        "RTP/AVP;interleaved=1-999",
        "RTP/AVP;interleaved",
        "RTP/AVP;ttl=256",
        "RTP/AVP;mode=\"PLAY",
        "RTP/AVP;dest_addr=\"192.0.2.1:99999\"",
        "RTP/AVP;dest_addr=\"a b:1\"",
        "RTP/AVP;dest_addr=",
        "RTP/AVP;dest_addr=\":1\"x",
        "RTP/AVP;bad param=1",
    ];
    for b in bad {
        assert!(parse_transport_spec(b).is_err(), "accepted {b:?}");
    }
}

#[test]
fn invalid_messages_table() {
    type Pred = fn(&RtspError) -> bool;
    let cases: &[(&str, &str, Pred)] = &[
        (
            "RTSP/3.0 request",
            "PLAY rtsp://h/s RTSP/3.0\nCSeq: 1\n\n",
            |e| matches!(e, RtspError::UnsupportedVersion(_)),
        ),
        ("RTSP/3.0 response", "RTSP/3.0 200 OK\nCSeq: 1\n\n", |e| {
            matches!(e, RtspError::UnsupportedVersion(_))
        }),
        ("HTTP request", "GET / HTTP/1.1\nCSeq: 1\n\n", |e| {
            matches!(e, RtspError::InvalidRequestLine(_))
        }),
        ("missing URI", "PLAY RTSP/1.0\nCSeq: 1\n\n", |e| {
            matches!(e, RtspError::InvalidRequestLine(_))
        }),
        ("relative URI", "PLAY /s RTSP/1.0\nCSeq: 1\n\n", |e| {
            matches!(e, RtspError::InvalidRequestLine(_))
        }),
        ("bad status code", "RTSP/1.0 2000 OK\nCSeq: 1\n\n", |e| {
            matches!(e, RtspError::InvalidStatusLine(_))
        }),
        ("status 600", "RTSP/1.0 600 Odd\nCSeq: 1\n\n", |e| {
            matches!(e, RtspError::InvalidStatusLine(_))
        }),
        (
            "missing CSeq",
            "PLAY rtsp://h/s RTSP/1.0\nSession: 1\n\n",
            |e| matches!(e, RtspError::MissingHeader("CSeq")),
        ),
        (
            "CSeq not numeric",
            "PLAY rtsp://h/s RTSP/1.0\nCSeq: abc\n\n",
            |e| matches!(e, RtspError::InvalidHeader { name: "CSeq", .. }),
        ),
        (
            "CSeq too big",
            "PLAY rtsp://h/s RTSP/1.0\nCSeq: 4294967296\n\n",
            |e| matches!(e, RtspError::InvalidHeader { name: "CSeq", .. }),
        ),
        (
            "duplicate CSeq",
            "PLAY rtsp://h/s RTSP/1.0\nCSeq: 1\ncseq: 2\n\n",
            |e| {
                matches!(
                    e,
                    RtspError::DuplicateHeader {
                        name: "CSeq",
                        count: 2
                    }
                )
            },
        ),
        (
            "bad Session",
            "PLAY rtsp://h/s RTSP/1.0\nCSeq: 1\nSession: ;timeout=1\n\n",
            |e| {
                matches!(
                    e,
                    RtspError::InvalidHeader {
                        name: "Session",
                        ..
                    }
                )
            },
        ),
        (
            "bad Transport",
            "SETUP rtsp://h/s RTSP/1.0\nCSeq: 1\nTransport: RTP/AVP;client_port=1-99999\n\n",
            |e| {
                matches!(
                    e,
                    RtspError::InvalidHeader {
                        name: "Transport",
                        ..
                    }
                )
            },
        ),
        (
            "body shorter than Content-Length",
            "RTSP/1.0 200 OK\nCSeq: 1\nContent-Length: 10\n\nv=0\n",
            |e| {
                matches!(
                    e,
                    RtspError::Message(MessageError::ContentLengthExceedsMessage { .. })
                )
            },
        ),
        (
            "unterminated headers",
            "PLAY rtsp://h/s RTSP/1.0\nCSeq: 1\n",
            |e| matches!(e, RtspError::Message(MessageError::UnterminatedHeaders)),
        ),
    ];
    for (name, text, pred) in cases {
        match rtsp::parse(&crlf(text)) {
            Ok(m) => panic!("{name}: accepted {m:?}"),
            Err(e) => assert!(pred(&e), "{name}: unexpected {e:?}"),
        }
    }
    let many = format!(
        "SETUP rtsp://h/s RTSP/1.0\r\nCSeq: 1\r\nTransport: {}\r\n\r\n",
        vec!["RTP/AVP"; 17].join(",")
    );
    assert!(rtsp::parse(many.as_bytes()).is_err());
}

fn interleaved(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![b'$', channel];
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn framer_skips_interleaved_frames() {
    let describe = b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: 47\r\n\r\nv=0\r\nc=IN IP4 0.0.0.0\r\nm=video 0 RTP/AVP 96\r\n\r\n".to_vec();
    assert_eq!(
        describe.len() - describe.windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4,
        47
    );
    let play = crlf("PLAY rtsp://h/s RTSP/1.0\nCSeq: 3\nSession: 1\n\n");
    let get = crlf("GET_PARAMETER rtsp://h/s RTSP/1.0\nCSeq: 4\nSession: 1\n\n");
    // An RTP packet whose payload looks like an RTSP message and contains '$'.
    let rtp = interleaved(0, b"$\x00\x00\x10RTSP/1.0 200 OK\r\nCSeq: 9\r\n\r\n");
    let big = interleaved(1, &vec![0xAB; 65535]);
    let mut stream = Vec::new();
    stream.extend_from_slice(&describe);
    stream.extend_from_slice(&rtp);
    stream.extend_from_slice(&play);
    stream.extend_from_slice(&big);
    stream.extend_from_slice(&rtp);
    stream.extend_from_slice(&get);
    stream.extend_from_slice(&interleaved(1, b""));
    for chunk in [1usize, 3, 4, 5, 100, 1400, 70_000, stream.len()] {
        let mut f = RtspFramer::new();
        let mut out = Vec::new();
        for piece in stream.chunks(chunk) {
            out.extend(
                f.push(piece)
                    .unwrap_or_else(|e| panic!("chunk {chunk}: {e}")),
            );
            assert!(f.buffered().len() <= crate::signaling::MAX_MESSAGE_SIZE);
        }
        assert_eq!(
            out,
            vec![describe.clone(), play.clone(), get.clone()],
            "chunk {chunk}"
        );
        assert_eq!(f.interleaved_frames(), 4, "chunk {chunk}");
        assert!(f.buffered().is_empty());
        let sdp_resp = rtsp::parse(&out[0]).unwrap();
        assert_eq!(sdp_resp.body.len(), 47);
    }
}

#[test]
fn framer_errors() {
    let mut f = RtspFramer::new();
    let e = f
        .push(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 100000\r\n\r\n")
        .unwrap_err();
    assert!(matches!(
        e,
        RtspError::Message(MessageError::TooLarge { .. })
    ));
    assert!(f.is_poisoned());
    assert!(matches!(
        f.push(b"x"),
        Err(RtspError::Message(MessageError::Poisoned))
    ));
    f.reset();
    assert_eq!(
        f.push(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
            .unwrap()
            .len(),
        1
    );

    let mut f = RtspFramer::new();
    assert!(f
        .push(b"RTSP/1.0 200 OK\r\nContent-Length: x\r\n\r\n")
        .is_err());
}
