//! Writes the seed corpora, `fuzz/corpus/<target>/seed-*`, from the RFC
//! fixtures typed in `userspace/src/signaling/tests/fixtures.rs` (RFC 4475,
//! 3264, 4317, 3605, 2326, 7826), the ng requests of the ng tests, and call
//! flows. Run after changing a fixture:
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seed-corpus
//! ```
//!
//! Old `seed-*` files are replaced; what libFuzzer added is left alone.

use std::fs;
use std::path::Path;

use pinhole_fuzz::call_script::{CallScript, Step, Stream};
use pinhole_fuzz::ng::bencode::Value;
use pinhole_fuzz::tcp_script::{Op, TcpScript};

// The fixtures name the parsers as `super::super::sip`: mount them two levels
// below a module that has `sip` and `MessageError`, as in the unit tests.
pub use pinhole_fuzz::signaling::{sip, MessageError};
#[expect(dead_code, reason = "the seeds use only some fixtures")]
#[path = "rfc_fixtures.rs"]
mod tests;

use tests::fixtures::*;

type Seeds = Vec<(String, Vec<u8>)>;

fn named(name: &str, bytes: impl Into<Vec<u8>>) -> (String, Vec<u8>) {
    (name.to_string(), bytes.into())
}

fn sip_seeds() -> Seeds {
    let mut seeds = vec![
        named("wsinv", crlf(WSINV)),
        named("intmeth", intmeth()),
        named("esc01", esc01()),
        named("escnull", crlf(ESCNULL)),
        named("esc02", crlf(ESC02)),
        named("lwsdisp", crlf(LWSDISP)),
        named("longreq", longreq()),
        named("dblreq", crlf(DBLREQ)),
        named("semiuri", crlf(SEMIURI)),
        named("transports", crlf(TRANSPORTS)),
        named("mpart01", mpart01()),
        named("unreason", unreason()),
        named("noreason", crlf(NOREASON)),
        named("unkscm", crlf(UNKSCM)),
        named("novelsc", crlf(NOVELSC)),
        named("unksm2", crlf(UNKSM2)),
        named("cparam01", crlf(CPARAM01)),
        named("regescrt", crlf(REGESCRT)),
        named("zeromf", crlf(ZEROMF)),
        named("inv2543", inv2543()),
        named("multipart-invite", multipart_invite()),
    ];
    for (i, bad) in invalid_messages().into_iter().enumerate() {
        seeds.push(named(&format!("invalid-{i:02}"), bad.bytes));
    }
    // A TCP stream: keep-alives and several messages back to back.
    seeds.push(named("stream", sip_stream()));
    seeds
}

fn sip_stream() -> Vec<u8> {
    [
        b"\r\n\r\n".to_vec(),
        crlf(WSINV),
        multipart_invite(),
        b"\r\n".to_vec(),
        crlf(NOREASON),
        crlf(ZEROMF),
    ]
    .concat()
}

fn sdp_seeds() -> Seeds {
    let mut seeds: Seeds = [
        ("rfc3264-10-1-offer", RFC3264_10_1_OFFER),
        ("rfc3264-10-1-answer", RFC3264_10_1_ANSWER),
        ("rfc3264-10-1-reoffer", RFC3264_10_1_REOFFER),
        ("rfc3264-10-1-reanswer", RFC3264_10_1_REANSWER),
        ("rfc3264-10-2-offer", RFC3264_10_2_OFFER),
        ("rfc3264-10-2-answer", RFC3264_10_2_ANSWER),
        ("rfc3264-10-2-reoffer", RFC3264_10_2_REOFFER),
        ("hold-2543", HOLD_2543),
        ("rfc4317-2-1-offer", RFC4317_2_1_OFFER),
        ("rfc4317-2-1-answer", RFC4317_2_1_ANSWER),
        ("rfc4317-2-2-answer", RFC4317_2_2_ANSWER),
        ("rfc4317-2-4-offer", RFC4317_2_4_OFFER),
        ("rfc4317-hold-offer", RFC4317_HOLD_OFFER),
        ("rfc4317-hold-answer", RFC4317_HOLD_ANSWER),
        ("rfc4317-t38-offer", RFC4317_T38_OFFER),
        ("profiles", PROFILES),
        ("rtcp-attrs", RTCP_ATTRS),
        ("multicast", MULTICAST),
    ]
    .into_iter()
    .map(|(name, text)| named(name, crlf(text)))
    .collect();
    seeds.push(named("torture", torture_sdp("192.0.2.4")));
    seeds.push(named(
        "ipv6-mux",
        "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\n\
         m=audio 49170 RTP/AVP 0\r\na=rtcp-mux\r\na=rtcp:49171 IN IP6 2001:db8::2\r\n\
         m=video 0 RTP/AVP 31\r\nm=application 9 TCP/BFCP *\r\n",
    ));
    seeds
}

fn rtsp_stream() -> Vec<u8> {
    let teardown =
        "TEARDOWN rtsp://example.com/foo/bar/baz.rm RTSP/1.0\nCSeq: 303\nSession: 47112344\n\n";
    [
        crlf(RTSP_SETUP_REQ),
        crlf(RTSP_SETUP_RESP),
        // An interleaved RTP packet on channel 0.
        vec![b'$', 0, 0, 4, 0x80, 0, 0, 1],
        crlf(teardown),
    ]
    .concat()
}

fn rtsp_seeds() -> Seeds {
    vec![
        named("setup-req", crlf(RTSP_SETUP_REQ)),
        named("setup-resp", crlf(RTSP_SETUP_RESP)),
        named("transport-alternatives", crlf(RTSP_TRANSPORT_ALTERNATIVES)),
        named("rtsp2-setup-req", crlf(RTSP2_SETUP_REQ)),
        named("rtsp2-setup-resp", crlf(RTSP2_SETUP_RESP)),
        // Request and response together, for setup_info.
        named(
            "setup-exchange",
            [crlf(RTSP_SETUP_REQ), crlf(RTSP_SETUP_RESP)].concat(),
        ),
        named(
            "rtsp2-setup-exchange",
            [crlf(RTSP2_SETUP_REQ), crlf(RTSP2_SETUP_RESP)].concat(),
        ),
        named("stream-interleaved", rtsp_stream()),
    ]
}

/// `stream` cut into `n`-byte segments, in the order `order` gives.
fn segments(stream: &[u8], n: usize, order: impl Fn(Vec<Op>) -> Vec<Op>) -> Vec<Op> {
    let ops = (0..stream.len())
        .step_by(n)
        .map(|start| Op::Data {
            start: start as u16,
            len: n as u16,
            fin: start + n >= stream.len(),
        })
        .collect();
    order(ops)
}

fn tcp_seeds() -> Seeds {
    let sip = sip_stream();
    let rtsp = rtsp_stream();
    let base = TcpScript {
        isn: 1000,
        handshake: true,
        max_segments: 127,
        max_bytes: 256 * 1024,
        max_window: 1 << 20,
        ..TcpScript::default()
    };
    let scripts = [
        (
            "sip-in-order",
            TcpScript {
                ops: segments(&sip, 536, |o| o),
                stream: sip.clone(),
                ..base.clone()
            },
        ),
        (
            "sip-reversed-wrapping",
            TcpScript {
                isn: u32::MAX - 700,
                ops: segments(&sip, 300, |mut o| {
                    o.reverse();
                    o
                }),
                stream: sip.clone(),
                ..base.clone()
            },
        ),
        (
            "sip-overlapping-midstream",
            TcpScript {
                handshake: false,
                ops: [
                    segments(&sip, 200, |o| o.into_iter().step_by(2).collect()),
                    segments(&sip, 333, |o| o),
                    vec![Op::Syn, Op::Rst],
                ]
                .concat(),
                stream: sip.clone(),
                ..base.clone()
            },
        ),
        (
            "sip-tight-limits",
            TcpScript {
                max_segments: 2,
                max_bytes: 1000,
                max_window: 4096,
                ops: segments(&sip, 100, |mut o| {
                    o.rotate_left(3);
                    o
                }),
                stream: sip.clone(),
                ..base.clone()
            },
        ),
        (
            "rtsp-in-order",
            TcpScript {
                rtsp: true,
                ops: segments(&rtsp, 64, |o| o),
                stream: rtsp.clone(),
                ..base.clone()
            },
        ),
        (
            "rtsp-hostile",
            TcpScript {
                rtsp: true,
                hostile: true,
                ops: vec![
                    Op::Raw {
                        start: 0,
                        len: 100,
                        seq_delta: 0,
                        syn: false,
                        fin: false,
                        rst: false,
                    },
                    Op::Raw {
                        start: 50,
                        len: 200,
                        seq_delta: 40,
                        syn: false,
                        fin: true,
                        rst: false,
                    },
                    Op::Raw {
                        start: 0,
                        len: 10,
                        seq_delta: -5,
                        syn: true,
                        fin: false,
                        rst: false,
                    },
                ],
                stream: rtsp.clone(),
                ..base.clone()
            },
        ),
    ];
    scripts
        .into_iter()
        .map(|(name, script)| named(name, script.encode()))
        .collect()
}

fn ng_seeds() -> Seeds {
    let s = |v: &str| Value::str(v);
    let caller_sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
                      m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n";
    let callee_sdp = "v=0\r\no=- 2 2 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\n\
                      t=0 0\r\nm=audio 10000 RTP/AVP 0\r\n";
    let requests = [
        ("ping", Value::dict([("command", s("ping"))])),
        ("statistics", Value::dict([("command", s("statistics"))])),
        (
            "offer",
            Value::dict([
                ("command", s("offer")),
                ("call-id", s("c1@example.com")),
                ("from-tag", s("f1")),
                ("via-branch", s("z9hG4bK1")),
                ("sdp", s(caller_sdp)),
                (
                    "flags",
                    Value::List(vec![s("trust address"), s("symmetric")]),
                ),
                ("replace", Value::List(vec![s("origin")])),
            ]),
        ),
        (
            "answer",
            Value::dict([
                ("command", s("answer")),
                ("call-id", s("c1@example.com")),
                ("from-tag", s("f1")),
                ("to-tag", s("t1")),
                ("sdp", s(callee_sdp)),
            ]),
        ),
        (
            "delete",
            Value::dict([
                ("command", s("delete")),
                ("call-id", s("c1@example.com")),
                ("from-tag", s("f1")),
                ("delete-delay", Value::uint(0)),
            ]),
        ),
        (
            "query",
            Value::dict([("command", s("query")), ("call-id", s("c1@example.com"))]),
        ),
        (
            "list",
            Value::dict([("command", s("list")), ("limit", Value::Int(-1))]),
        ),
    ];
    let mut seeds: Seeds = requests
        .into_iter()
        .map(|(name, v)| named(name, [b"5323_1 ".as_slice(), &v.encode()].concat()))
        .collect();
    seeds.push(named(
        "offer-json",
        r#"j1 {"command":"offer","call-id":"j1","from-tag":"f","sdp":"v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n","flags":["trust address"],"n":-3,"b":true}"#,
    ));
    for (i, bad) in [
        &b"c d7:command4:ping"[..],
        b"c d999999999:xe",
        b"c d-1:xe",
        b"c d7:command4:ping1:ni01ee",
        b"c d7:command4:ping1:n01:ee",
        b"c d7:command4:pinge junk",
        b"c lli-0eee",
        b"c d1:bd1:ad1:ad1:aleeeee",
    ]
    .into_iter()
    .enumerate()
    {
        seeds.push(named(&format!("malformed-{i}"), bad));
    }
    seeds
}

/// `a=rtcp`-less audio stream on `port` (index into PORTS) at `conn`.
fn audio(port: u8, conn: u8) -> Stream {
    Stream {
        port,
        conn,
        ..Stream::default()
    }
}

const NO_CONN: u8 = 15;
const NO_TAG: u8 = 0xff;

fn request(method: u8, from: u8, to: u8, to_tag: u8, cseq: u8) -> Step {
    Step {
        wait_10ms: 10,
        from,
        to,
        start: method,
        call: 0,
        from_tag: 0,
        to_tag,
        cseq,
        session_conn: NO_CONN,
        ..Step::default()
    }
}

fn response(code: u16, from: u8, to: u8, to_tag: u8, cseq: u8, method: u8) -> Step {
    Step {
        start: 7,
        status: code - 100,
        cseq_method: method,
        ..request(0, from, to, to_tag, cseq)
    }
}

fn with_sdp(step: Step, streams: Vec<Stream>) -> Step {
    Step {
        sdp: true,
        streams,
        ..step
    }
}

fn call_seeds() -> Seeds {
    // Hosts 0 (192.0.2.1) and 1 (198.51.100.2); IPv6 hosts 3 and 4.
    let (invite, ack, bye, cancel) = (0, 1, 2, 3);
    let basic = |a: u8, b: u8, ma: u8, mb: u8| {
        vec![
            with_sdp(request(invite, a, b, NO_TAG, 1), vec![audio(2, ma)]),
            response(100, b, a, NO_TAG, 1, invite),
            response(180, b, a, 1, 1, invite),
            with_sdp(response(200, b, a, 1, 1, invite), vec![audio(5, mb)]),
            request(ack, a, b, 1, 1),
            request(bye, a, b, 1, 2),
            response(200, b, a, 1, 2, bye),
        ]
    };
    let mut hold = basic(0, 1, 0, 1);
    hold.truncate(5);
    hold.extend([
        with_sdp(request(invite, 0, 1, 1, 3), vec![audio(2, 7)]),
        with_sdp(response(200, 1, 0, 1, 3, invite), vec![audio(5, 1)]),
        request(ack, 0, 1, 1, 3),
    ]);
    let cancelled = vec![
        with_sdp(request(invite, 0, 1, NO_TAG, 1), vec![audio(2, 0)]),
        with_sdp(response(183, 1, 0, 1, 1, invite), vec![audio(5, 1)]),
        request(cancel, 0, 1, NO_TAG, 1),
        response(487, 1, 0, 1, 1, invite),
    ];
    let forked = vec![
        with_sdp(request(invite, 0, 1, NO_TAG, 1), vec![audio(2, 0)]),
        with_sdp(response(183, 1, 0, 1, 1, invite), vec![audio(5, 1)]),
        with_sdp(response(183, 1, 0, 2, 1, invite), vec![audio(4, 1)]),
        with_sdp(response(200, 1, 0, 2, 1, invite), vec![audio(4, 1)]),
        request(ack, 0, 1, 2, 1),
    ];
    let late_offer = vec![
        request(invite, 0, 1, NO_TAG, 1),
        with_sdp(response(200, 1, 0, 1, 1, invite), vec![audio(5, 1)]),
        with_sdp(request(ack, 0, 1, 1, 1), vec![audio(2, 0)]),
    ];
    let third_party = vec![
        with_sdp(request(invite, 0, 1, NO_TAG, 1), vec![audio(2, 5)]),
        with_sdp(response(200, 1, 0, 1, 1, invite), vec![audio(5, 1)]),
    ];
    // 203.0.113.200 is in the media-relay network (when configured).
    let relayed = vec![
        with_sdp(request(invite, 0, 1, NO_TAG, 1), vec![audio(2, 6)]),
        with_sdp(response(200, 1, 0, 1, 1, invite), vec![audio(5, 1)]),
    ];
    let muxed = vec![
        with_sdp(
            request(invite, 0, 1, NO_TAG, 1),
            vec![
                Stream {
                    rtcp_mux: true,
                    ..audio(2, 0)
                },
                Stream {
                    rtcp: 1,
                    rtcp_at: 6,
                    ..audio(4, 0)
                },
            ],
        ),
        with_sdp(
            response(200, 1, 0, 1, 1, invite),
            vec![
                Stream {
                    rtcp_mux: true,
                    ..audio(5, 1)
                },
                Stream {
                    rtcp: 2,
                    rtcp_at: 6,
                    ..audio(4, 1)
                },
            ],
        ),
    ];
    let scripts = [
        ("basic", false, false, basic(0, 1, 0, 1)),
        ("basic-ipv6", false, false, basic(3, 4, 3, 4)),
        ("untrusted", true, false, basic(1, 2, 1, 2)),
        ("hold", false, false, hold),
        ("cancelled", false, false, cancelled),
        ("forked", false, false, forked),
        ("late-offer", false, false, late_offer),
        ("third-party", false, false, third_party),
        ("media-relay", false, true, relayed),
        ("rtcp-mux-and-attr", false, false, muxed),
    ];
    scripts
        .into_iter()
        .map(|(name, narrow_trust, relay, steps)| {
            let script = CallScript {
                narrow_trust,
                relay,
                steps,
            };
            named(name, script.encode())
        })
        .collect()
}

fn write(dir: &Path, seeds: Seeds) -> std::io::Result<usize> {
    fs::create_dir_all(dir)?;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
        {
            fs::remove_file(path)?;
        }
    }
    let n = seeds.len();
    for (name, bytes) in seeds {
        fs::write(dir.join(format!("seed-{name}")), bytes)?;
    }
    Ok(n)
}

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let sip = sip_seeds();
    // SDP bodies of the SIP fixtures are SDP seeds too.
    let mut sdp = sdp_seeds();
    for (name, bytes) in &sip {
        let Ok(msg) = sip::parse(bytes) else {
            continue;
        };
        if let Ok(Some(body)) = msg.sdp_body() {
            sdp.push(named(&format!("from-sip-{name}"), body));
        }
    }
    for (target, seeds) in [
        ("sip", sip),
        ("sdp", sdp),
        ("rtsp", rtsp_seeds()),
        ("tcp_reassembly", tcp_seeds()),
        ("ng", ng_seeds()),
        ("calls", call_seeds()),
    ] {
        let n = write(&corpus.join(target), seeds)?;
        println!("{target}: {n} seeds");
    }
    Ok(())
}
