//! SIP parser tests: RFC 4475 torture messages, compact forms, bodies, framing.

use super::fixtures::*;
use crate::signaling::sdp::{Direction, MediaKind};
use crate::signaling::sip::{
    self, header_name_matches, parse_name_addr, parse_via, MediaType, Method, SipError, SipFramer,
    StartLine,
};
use crate::signaling::MessageError;

fn parse_ok(bytes: &[u8]) -> sip::SipMessage {
    match sip::parse(bytes) {
        Ok(m) => m,
        Err(e) => panic!("parse failed: {e}\n{}", String::from_utf8_lossy(bytes)),
    }
}

#[test]
fn rfc4475_wsinv_short_tortuous_invite() {
    let m = parse_ok(&crlf(WSINV));
    assert_eq!(
        m.start_line,
        StartLine::Request {
            method: Method::Invite,
            uri: "sip:vivekg@chair-dnrc.example.com;unknownparam".into()
        }
    );
    assert_eq!(m.call_id, "wsinv.ndaksdj@192.0.2.1");
    assert_eq!((m.cseq.seq, &m.cseq.method), (9, &Method::Invite));
    assert_eq!(m.max_forwards, Some(68));
    assert_eq!(m.content_length, Some(150));
    assert_eq!(m.body.len(), 150);
    assert_eq!(m.from.display_name.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(m.from.uri, "sip:jdrosen@example.com");
    assert_eq!(m.from_tag(), Some("98asjd8"));
    assert_eq!(m.to.uri, "sip:vivekg@chair-dnrc.example.com");
    assert_eq!(m.to_tag(), Some("1918181833n"));
    assert_eq!(m.via.len(), 3);
    assert_eq!(
        (
            m.via[0].transport.as_str(),
            m.via[0].host.as_str(),
            m.via[0].branch()
        ),
        ("UDP", "192.0.2.2", Some("390skdjuw"))
    );
    assert_eq!(
        (
            m.via[1].transport.as_str(),
            m.via[1].host.as_str(),
            m.via[1].branch()
        ),
        ("TCP", "spindle.example.com", Some("z9hG4bK9ikj8"))
    );
    assert_eq!(m.via[2].host, "192.168.255.111");
    assert_eq!(m.via[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(m.contact.len(), 1);
    let c = &m.contact[0];
    assert_eq!(c.display_name.as_deref(), Some("Quoted string \"\""));
    assert_eq!(c.param("newparam"), Some(Some("newvalue")));
    assert_eq!(c.param("secondparam"), Some(None));
    assert_eq!(c.param("q"), Some(Some("0.33")));
    assert_eq!(m.header("Subject"), Some(""));
    assert_eq!(m.header("s"), Some(""));
    assert_eq!(
        m.header("newfangledheader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(m.header("UnknownHeaderWithUnusualValue"), Some(";;,,;;,;"));
    assert!(m.content_type.as_ref().is_some_and(MediaType::is_sdp));
    let sdp = m.sdp().unwrap().expect("SDP body");
    let media = sdp.media();
    assert_eq!(media.len(), 2);
    assert_eq!(media[0].kind, MediaKind::Audio);
    assert_eq!(media[0].rtp, Some("192.0.2.4:49217".parse().unwrap()));
    assert_eq!(media[1].kind, MediaKind::Video);
    assert_eq!(media[1].rtcp, Some("192.0.2.4:3228".parse().unwrap()));
}

#[test]
fn rfc4475_intmeth_wide_range_of_valid_characters() {
    let m = parse_ok(&intmeth());
    assert_eq!(m.method(), Some(&Method::Other(INTMETH_METHOD.into())));
    assert_eq!(m.cseq.method, Method::Other(INTMETH_METHOD.into()));
    assert_eq!(m.cseq.seq, 139122385);
    assert_eq!(m.max_forwards, Some(255));
    assert_eq!(
        m.to.display_name.as_deref(),
        Some("BEL:\x07 NUL:\x00 DEL:\x7f")
    );
    assert_eq!(
        m.to.uri,
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com"
    );
    assert_eq!(
        m.from.display_name.as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(m.from_tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        m.from.param("fromParam''~+*_!.-%"),
        Some(Some("работающий"))
    );
    assert_eq!(m.call_id, "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
    assert_eq!(m.via[0].branch(), Some("z9hG4bK-.!%66*_+`'~"));
    assert_eq!(
        m.header("extensionHeader-!.%*+_`'~"),
        Some("\u{feff}大停電")
    );
    assert!(m.body.is_empty());
}

#[test]
fn rfc4475_valid_messages_table() {
    type Check = fn(&sip::SipMessage);
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        ("3.1.1.3 esc01", esc01(), |m| {
            assert_eq!(m.call_id, "esc01.239409asdfakjkn23onasd0-3234");
            assert_eq!(m.to.uri, "sip:%75se%72@example.com");
            assert!(m.content_type.as_ref().unwrap().is_sdp());
            assert_eq!(
                m.contact[0].uri,
                "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31"
            );
            assert_eq!(m.body.len(), 150);
        }),
        ("3.1.1.4 escnull", crlf(ESCNULL), |m| {
            assert_eq!(m.method(), Some(&Method::Register));
            assert_eq!(m.contact.len(), 2);
            assert_eq!(m.contact[1].uri, "sip:%00%00@host5.example.com");
            assert_eq!(m.content_length, Some(0));
        }),
        ("3.1.1.5 esc02", crlf(ESC02), |m| {
            assert_eq!(m.method(), Some(&Method::Other("RE%47IST%45R".into())));
            assert_eq!(m.to.display_name.as_deref(), Some("%Z%45"));
            // "C%6Fntact" is an unknown header, not Contact.
            assert_eq!(m.contact.len(), 2);
            assert_eq!(
                m.header("C%6Fntact"),
                Some("<sip:alias2@host2.example.com>")
            );
        }),
        ("3.1.1.6 lwsdisp", crlf(LWSDISP), |m| {
            assert_eq!(m.from.display_name.as_deref(), Some("caller"));
            assert_eq!(m.from.uri, "sip:caller@example.com");
            assert_eq!(m.from_tag(), Some("323"));
        }),
        ("3.1.1.7 longreq", longreq(), |m| {
            assert_eq!(m.via.len(), 34);
            assert_eq!(m.via[0].host, "sip33.example.com");
            assert_eq!(m.via[33].received(), Some("192.0.2.5".parse().unwrap()));
            assert!(m.via[33].branch().unwrap().len() > 200);
            assert!(m
                .to
                .display_name
                .as_ref()
                .unwrap()
                .contains("extremeextreme"));
            assert_eq!(m.to.uri.split(';').count(), 4);
            assert!(m.from_tag().unwrap().starts_with("12982982"));
            assert_eq!(m.body.len(), 150);
            assert_eq!(m.sdp().unwrap().unwrap().media().len(), 2);
        }),
        ("3.1.1.9 semiuri", crlf(SEMIURI), |m| {
            assert_eq!(
                m.start_line,
                StartLine::Request {
                    method: Method::Options,
                    uri: "sip:user;par=u%40example.net@example.com".into()
                }
            );
            assert_eq!(
                m.header("accept"),
                Some("application/sdp, application/pkcs7-mime, multipart/mixed, multipart/signed, message/sip, message/sipfrag")
            );
        }),
        ("3.1.1.10 transports", crlf(TRANSPORTS), |m| {
            let t: Vec<&str> = m.via.iter().map(|v| v.transport.as_str()).collect();
            assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
            assert_eq!(m.call_id, "transports.kijh4akdnaqjkwendsasfdj");
        }),
        ("3.1.1.11 mpart01", mpart01(), |m| {
            let parts = m.body_parts().unwrap();
            assert_eq!(parts.len(), 2);
            assert_eq!(parts[0].body, b"Hello");
            assert_eq!(parts[0].content_type.as_ref().unwrap().subtype, "plain");
            assert_eq!(parts[1].body.len(), 22);
            assert_eq!(parts[1].body[14], 0xff);
            assert_eq!(m.sdp_body().unwrap(), None);
            assert_eq!(m.sdp().unwrap(), None);
        }),
        ("3.1.1.12 unreason", unreason(), |m| {
            let StartLine::Response { code, reason } = &m.start_line else {
                panic!("not a response")
            };
            assert_eq!(*code, 200);
            assert!(reason.starts_with("= 2**3 * 5**2 но сто"));
            assert!(reason.ends_with("простое"));
            assert_eq!(m.body.len(), 154);
        }),
        ("3.1.1.13 noreason", crlf(NOREASON), |m| {
            assert_eq!(
                m.start_line,
                StartLine::Response {
                    code: 100,
                    reason: String::new()
                }
            );
            assert_eq!(m.to_tag(), Some("902jndnke3"));
        }),
        ("unkscm", crlf(UNKSCM), |m| {
            assert!(
                matches!(&m.start_line, StartLine::Request { uri, .. } if uri == "nobodyKnowsThisScheme:totallyopaquecontent")
            );
        }),
        ("novelsc", crlf(NOVELSC), |m| {
            assert!(
                matches!(&m.start_line, StartLine::Request { uri, .. } if uri == "soap.beep://192.0.2.103:3002")
            );
        }),
        ("unksm2", crlf(UNKSM2), |m| {
            assert_eq!(m.to.uri, "isbn:2983792873");
            assert_eq!(m.from.uri, "http://www.example.com");
            assert_eq!(m.contact[0].uri, "name:John_Smith");
            assert_eq!(m.via[0].port, Some(5060));
        }),
        ("cparam01", crlf(CPARAM01), |m| {
            assert_eq!(m.contact[0].uri, "sip:+19725552222@gw1.example.net");
            assert_eq!(m.contact[0].param("unknownparam"), Some(None));
        }),
        ("regescrt", crlf(REGESCRT), |m| {
            assert_eq!(
                m.contact[0].uri,
                "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
            );
        }),
        ("zeromf", crlf(ZEROMF), |m| {
            assert_eq!(m.max_forwards, Some(0))
        }),
        ("inv2543", inv2543(), |m| {
            assert_eq!(m.content_length, None);
            assert_eq!(m.via[0].branch(), None);
            assert_eq!(m.max_forwards, None);
            let sdp = m.sdp().unwrap().unwrap();
            assert_eq!(sdp.media()[0].rtp, Some("192.0.2.5:49217".parse().unwrap()));
        }),
    ];
    for (name, bytes, check) in cases {
        let m = match sip::parse(&bytes) {
            Ok(m) => m,
            Err(e) => panic!("{name}: {e}"),
        };
        check(&m);
    }
}

#[test]
fn rfc4475_dblreq_trailing_octets_ignored() {
    let bytes = crlf(DBLREQ);
    let m = parse_ok(&bytes);
    assert_eq!(m.method(), Some(&Method::Register));
    assert_eq!(m.call_id, "dblreq.0ha0isndaksdj99sdfafnl3lk233412");
    assert!(m.body.is_empty());
    assert_eq!(m.contact[0].uri, "sip:j.user@host.example.com");
}

#[test]
fn rfc4475_invalid_messages_are_rejected() {
    let cases = invalid_messages();
    assert!(cases.len() >= 30);
    for case in cases {
        match sip::parse(&case.bytes) {
            Ok(m) => panic!("{}: accepted: {m:?}", case.name),
            Err(e) => assert!((case.expect)(&e), "{}: unexpected error {e:?}", case.name),
        }
    }
}

#[test]
fn errors_are_descriptive() {
    for case in invalid_messages() {
        let e = sip::parse(&case.bytes).unwrap_err();
        let text = e.to_string();
        assert!(text.len() > 10, "{}: terse error {text:?}", case.name);
    }
}

#[test]
fn compact_forms_table() {
    let cases = [
        ("i", "Call-ID"),
        ("f", "From"),
        ("t", "To"),
        ("v", "Via"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("m", "Contact"),
        ("k", "Supported"),
        ("s", "Subject"),
        ("e", "Content-Encoding"),
        ("o", "Event"),
        ("r", "Refer-To"),
        ("x", "Session-Expires"),
        ("u", "Allow-Events"),
        ("b", "Referred-By"),
        ("I", "call-id"),
        ("CALL-ID", "call-id"),
    ];
    for (compact, full) in cases {
        assert!(header_name_matches(compact, full), "{compact} vs {full}");
        assert!(header_name_matches(full, compact), "{full} vs {compact}");
    }
    for (a, b) in [
        ("i", "From"),
        ("t", "Via"),
        ("x", "l"),
        ("Via", "Viaa"),
        ("q", "q-x"),
    ] {
        assert!(!header_name_matches(a, b), "{a} must not match {b}");
    }
}

#[test]
fn all_compact_message() {
    let m = parse_ok(&crlf(
        "INVITE sip:bob@example.com SIP/2.0\n\
         v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnashds8;rport\n\
         f: Alice <sip:alice@example.com>;tag=1928301774\n\
         t: Bob <sip:bob@example.com>\n\
         i: a84b4c76e66710@192.0.2.1\n\
         CSeq: 314159 INVITE\n\
         m: <sip:alice@192.0.2.1>\n\
         k: 100rel, timer\n\
         s: lunch\n\
         e: identity\n\
         c: application/sdp\n\
         l: 106\n\n\
         v=0\no=alice 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 49170 RTP/AVP 0\na=rtcp:49999\n",
    ));
    assert_eq!(m.call_id, "a84b4c76e66710@192.0.2.1");
    assert_eq!(m.from.display_name.as_deref(), Some("Alice"));
    assert_eq!(m.from_tag(), Some("1928301774"));
    assert_eq!(m.to_tag(), None);
    assert_eq!(m.via[0].port, Some(5060));
    assert_eq!(m.via[0].param("rport"), Some(None));
    assert_eq!(m.via[0].rport(), None);
    assert_eq!(m.header("Supported"), Some("100rel, timer"));
    assert_eq!(m.header("subject"), Some("lunch"));
    assert_eq!(m.content_encoding.as_deref(), Some("identity"));
    assert_eq!(m.content_length, Some(106));
    let media = m.sdp().unwrap().unwrap().media();
    assert_eq!(media[0].rtcp, Some("192.0.2.1:49999".parse().unwrap()));
}

#[test]
fn multiple_header_lines_and_values() {
    let m = parse_ok(&crlf(
        "SIP/2.0 200 OK\n\
         Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;received=198.51.100.7;rport=40000, SIP/2.0/TCP [2001:db8::9]:5061;branch=z9hG4bK2\n\
         Via: SIP/2.0/WSS edge.example.com;branch=z9hG4bK3\n\
         To: \"Bob, B.\" <sip:bob@example.com>;tag=a6c85cf\n\
         From: <sip:alice@example.com>;tag=1928301774\n\
         Call-ID: a84b4c76e66710\n\
         CSeq: 1 INVITE\n\
         Contact: <sip:bob@192.0.2.4>;q=0.7, \"Bob, mobile\" <sip:bob@198.51.100.4;transport=tcp>;q=0.1\n\
         Contact: sip:bob@203.0.113.4\n\
         Record-Route: <sip:p1.example.com;lr>\n\
         Record-Route: <sip:p2.example.com;lr>\n\
         Content-Length: 0\n\n",
    ));
    assert_eq!(m.status_code(), Some(200));
    assert!(!m.is_request());
    assert_eq!(m.via.len(), 3);
    assert_eq!(m.via[0].received(), Some("198.51.100.7".parse().unwrap()));
    assert_eq!(m.via[0].rport(), Some(40000));
    assert_eq!(m.via[1].host, "[2001:db8::9]");
    assert_eq!(m.via[1].host_ip(), Some("2001:db8::9".parse().unwrap()));
    assert_eq!(m.via[1].port, Some(5061));
    assert_eq!(m.via[2].transport, "WSS");
    assert_eq!(m.to.display_name.as_deref(), Some("Bob, B."));
    assert_eq!(m.contact.len(), 3);
    assert_eq!(m.contact[1].display_name.as_deref(), Some("Bob, mobile"));
    assert_eq!(m.contact[1].uri, "sip:bob@198.51.100.4;transport=tcp");
    assert_eq!(m.contact[2].uri, "sip:bob@203.0.113.4");
    let rr: Vec<&str> = m.header_values("record-route").collect();
    assert_eq!(rr, ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]);
}

#[test]
fn contact_wildcard_and_bare_lf_lines() {
    let m = parse_ok(
        b"REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\n\
          To: <sip:a@example.com>\nFrom: <sip:a@example.com>;tag=1\nCall-ID: x\nCSeq: 2 REGISTER\n\
          Contact: *\nExpires: 0\nContent-Length: 0\n\n",
    );
    assert!(m.contact_wildcard);
    assert!(m.contact.is_empty());
}

#[test]
fn leading_crlf_before_start_line_is_ignored() {
    let mut bytes = b"\r\n\r\n".to_vec();
    bytes.extend_from_slice(&crlf(ZEROMF));
    assert_eq!(parse_ok(&bytes).call_id, "zeromf.jfasdlfnm2o2l43r5u0asdfas");
}

#[test]
fn name_addr_table() {
    type Expect = (Option<&'static str>, &'static str, Option<&'static str>);
    let ok: &[(&str, Expect)] = &[
        ("<sip:a@example.com>", (None, "sip:a@example.com", None)),
        (
            "sip:a@example.com;tag=x",
            (None, "sip:a@example.com", Some("x")),
        ),
        (
            "\"A B\" <sip:a@example.com>;tag=y",
            (Some("A B"), "sip:a@example.com", Some("y")),
        ),
        (
            "A B <sip:a@example.com> ; tag = z",
            (Some("A B"), "sip:a@example.com", Some("z")),
        ),
        (
            "\"\" <sip:a@example.com>",
            (Some(""), "sip:a@example.com", None),
        ),
        ("\"q\\\\\" <tel:+1555>", (Some("q\\"), "tel:+1555", None)),
        (
            "<sip:a@example.com;transport=tcp?x=y>;tag=t",
            (None, "sip:a@example.com;transport=tcp?x=y", Some("t")),
        ),
        (
            "\"Ünïcödé\" <sips:a@[2001:db8::1]:5061>",
            (Some("Ünïcödé"), "sips:a@[2001:db8::1]:5061", None),
        ),
        ("<urn:service:sos>", (None, "urn:service:sos", None)),
        (
            "sip:a@example.com;tag=\"quoted;tag\"",
            (None, "sip:a@example.com", Some("quoted;tag")),
        ),
    ];
    for (input, (display, uri, tag)) in ok {
        let na = parse_name_addr(input, "To").unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(na.display_name.as_deref(), *display, "{input}");
        assert_eq!(na.uri, *uri, "{input}");
        assert_eq!(na.tag(), *tag, "{input}");
    }
    let bad = [
        "",
        "\"unterminated <sip:a@example.com>",
        "\"A\" sip:a@example.com",
        "<sip:a@example.com",
        "<>",
        "< sip:a@example.com>",
        "<sip:a@example.com >",
        "A, B <sip:a@example.com>",
        "sip:a@example.com?x=y",
        "sip:a@example.com,sip:b@example.com",
        "nocolon",
        "1sip:a@example.com",
        "<sip:a@example.com> junk",
        "<sip:a@example.com>;;",
        "<sip:a@example.com>;=x",
        "<sip:a@example.com>;tag=",
        "<sip:a@example.com>;tag=a b",
        "<sip:a@example.com>;tag=\"open",
        "<sip:a @example.com>",
        "sip:",
    ];
    for input in bad {
        assert!(parse_name_addr(input, "To").is_err(), "accepted {input:?}");
    }
}

/// Input, transport, host, port, branch.
type ViaRow = (
    &'static str,
    &'static str,
    &'static str,
    Option<u16>,
    Option<&'static str>,
);

#[test]
fn via_table() {
    let ok: &[ViaRow] = &[
        ("SIP/2.0/UDP 192.0.2.1", "UDP", "192.0.2.1", None, None),
        (
            "SIP/2.0/TCP h.example.com:5060;branch=z9hG4bKx",
            "TCP",
            "h.example.com",
            Some(5060),
            Some("z9hG4bKx"),
        ),
        (
            "SIP / 2.0 / TLS   h.example.com : 5061 ; branch = b",
            "TLS",
            "h.example.com",
            Some(5061),
            Some("b"),
        ),
        (
            "SIP/2.0/UDP [2001:db8::1]:5060;branch=b",
            "UDP",
            "[2001:db8::1]",
            Some(5060),
            Some("b"),
        ),
        (
            "SIP/2.0/UDP [2001:db8::1]",
            "UDP",
            "[2001:db8::1]",
            None,
            None,
        ),
        (
            "SIP/2.0/SCTP host_1.example.com;maddr=224.2.0.1;ttl=16",
            "SCTP",
            "host_1.example.com",
            None,
            None,
        ),
    ];
    for (input, transport, host, port, branch) in ok {
        let v = parse_via(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(
            (v.transport.as_str(), v.host.as_str(), v.port, v.branch()),
            (*transport, *host, *port, *branch),
            "{input}"
        );
        assert_eq!((v.protocol.as_str(), v.version.as_str()), ("SIP", "2.0"));
    }
    let bad = [
        "",
        "SIP/2.0",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP ",
        "SIP/2.0UDP h.example.com",
        "SIP//UDP h.example.com",
        "SIP/2.0/UDPh.example.com",
        "SIP/2.0/UDP h.example.com:",
        "SIP/2.0/UDP h.example.com:99999",
        "SIP/2.0/UDP h.example.com:50a",
        "SIP/2.0/UDP [2001:db8::1",
        "SIP/2.0/UDP [not-an-ip]",
        "SIP/2.0/UDP h.example.com x",
        "SIP/2.0/UDP h.exa mple.com",
        "SIP/2.0/UDP h.example.com;;",
        "SIP/2.0/UDP h<>.example.com",
    ];
    for input in bad {
        assert!(parse_via(input).is_err(), "accepted {input:?}");
    }
}

#[test]
fn content_type_table() {
    let ct = MediaType::parse("Application/SDP").unwrap();
    assert!(ct.is_sdp());
    assert_eq!(ct.to_string(), "application/sdp");
    let ct = MediaType::parse("multipart/mixed ; boundary=\"a b\" ; x=1").unwrap();
    assert!(ct.is_multipart());
    assert_eq!(ct.param("BOUNDARY"), Some("a b"));
    assert_eq!(ct.param("x"), Some("1"));
    for bad in [
        "",
        "application",
        "application/",
        "/sdp",
        "app lication/sdp",
        "a/b;;",
        "a/b c",
    ] {
        assert!(MediaType::parse(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn method_round_trip() {
    for m in [
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "UPDATE",
        "INFO",
        "SUBSCRIBE",
        "NOTIFY",
        "REFER",
        "MESSAGE",
        "PUBLISH",
        "FOO",
        "invite",
    ] {
        assert_eq!(Method::from_token(m).as_str(), m);
        assert_eq!(Method::from_token(m).to_string(), m);
    }
    assert_eq!(Method::from_token("invite"), Method::Other("invite".into()));
}

#[test]
fn multipart_sdp_is_found() {
    let m = parse_ok(&multipart_invite());
    let parts = m.body_parts().unwrap();
    assert_eq!(parts.len(), 2);
    assert!(parts[0].content_type.as_ref().unwrap().is_sdp());
    let isup = parts[1].content_type.as_ref().unwrap();
    assert_eq!(
        (isup.kind.as_str(), isup.subtype.as_str()),
        ("application", "isup")
    );
    assert_eq!(isup.param("version"), Some("nxv3"));
    assert_eq!(parts[1].body.len(), 19);
    assert_eq!(parts[1].headers.len(), 2);
    let sdp = m.sdp_body().unwrap().unwrap();
    assert!(sdp.starts_with(b"v=0\r\n") && sdp.ends_with(b"a=rtcp-mux\r\n"));
    let media = m.sdp().unwrap().unwrap().media();
    assert_eq!(media[0].rtp, Some("192.0.2.10:20000".parse().unwrap()));
    assert_eq!(media[0].rtcp, media[0].rtp);
    assert!(media[0].rtcp_mux);
}

fn with_body(content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut msg = format!(
        "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
         To: <sip:b@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: mp@x\r\n\
         CSeq: 1 INVITE\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    msg.extend_from_slice(body);
    msg
}

#[test]
fn multipart_variants() {
    let sdp = "v=0\r\nc=IN IP4 192.0.2.9\r\nm=audio 4000 RTP/AVP 0\r\n";
    // Nested multipart/alternative inside multipart/mixed, LF-only delimiters, part without headers.
    let body = format!(
        "--outer\nContent-Type: multipart/alternative; boundary=inner\n\n\
         --inner\n\nplain text without headers\n--inner\nContent-Type: application/sdp\n\n{sdp}\n--inner--\n\
         --outer--\n"
    );
    let m = parse_ok(&with_body(
        "multipart/mixed;boundary=outer",
        body.as_bytes(),
    ));
    let parts = m.body_parts().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].content_type, None);
    assert_eq!(parts[0].body, b"plain text without headers");
    let media = m.sdp().unwrap().unwrap().media();
    assert_eq!(media[0].rtp, Some("192.0.2.9:4000".parse().unwrap()));

    // A plain application/sdp body is one part.
    let m = parse_ok(&with_body("application/sdp", sdp.as_bytes()));
    assert_eq!(m.body_parts().unwrap().len(), 1);
    assert!(m.sdp().unwrap().is_some());

    // Non-SDP body: no SDP.
    let m = parse_ok(&with_body("text/plain", b"hi"));
    assert_eq!(m.sdp().unwrap(), None);

    let long = "x".repeat(71);
    let bad: Vec<(String, String)> = vec![
        (
            "multipart/mixed".into(),
            format!("--b\r\n\r\n{sdp}\r\n--b--\r\n"),
        ),
        (
            "multipart/mixed;boundary=b".into(),
            format!("no delimiter here {sdp}"),
        ),
        (
            "multipart/mixed;boundary=b".into(),
            format!("--b\r\n\r\n{sdp}"),
        ),
        (
            "multipart/mixed;boundary=b".into(),
            format!("--bjunk\r\n\r\n{sdp}\r\n--b--"),
        ),
        (
            "multipart/mixed;boundary=b".into(),
            "--b\r\nContent-Type: application/sdp\r\n".to_string(),
        ),
        (
            "multipart/mixed;boundary=b".into(),
            "--b\r\nContent-Type application/sdp\r\n\r\nx\r\n--b--".to_string(),
        ),
        (
            format!("multipart/mixed;boundary={long}"),
            format!("--{long}\r\n\r\nx\r\n--{long}--"),
        ),
    ];
    for (ct, body) in bad {
        let m = parse_ok(&with_body(&ct, body.as_bytes()));
        assert!(
            matches!(m.sdp_body(), Err(SipError::InvalidMultipart(_))),
            "{ct} {body:?}: {:?}",
            m.sdp_body()
        );
    }
}

#[test]
fn multipart_limits() {
    let mut body = String::new();
    for _ in 0..40 {
        body.push_str("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n");
    }
    body.push_str("--b--\r\n");
    let m = parse_ok(&with_body("multipart/mixed;boundary=b", body.as_bytes()));
    assert!(matches!(m.body_parts(), Err(SipError::InvalidMultipart(e)) if e.contains("parts")));

    // Four levels of nesting.
    let mut body = "v=0\r\n".to_string();
    for depth in (0..4).rev() {
        body = format!(
            "--b{depth}\r\nContent-Type: {}\r\n\r\n{body}\r\n--b{depth}--",
            if depth == 3 {
                "application/sdp".to_string()
            } else {
                format!("multipart/mixed;boundary=b{}", depth + 1)
            }
        );
    }
    let m = parse_ok(&with_body("multipart/mixed;boundary=b0", body.as_bytes()));
    assert!(matches!(m.body_parts(), Err(SipError::InvalidMultipart(e)) if e.contains("nested")));
}

#[test]
fn content_encoding_blocks_sdp() {
    let mut msg = with_body("application/sdp", b"\x1f\x8b\x08\x00");
    let at = msg.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    msg.splice(at..at, b"e: gzip\r\n".iter().copied());
    let m = parse_ok(&msg);
    assert_eq!(
        m.sdp_body(),
        Err(SipError::UnsupportedContentEncoding("gzip".into()))
    );
}

#[test]
fn sdp_errors_surface_through_sip() {
    let m = parse_ok(&with_body(
        "application/sdp",
        b"v=0\r\nm=audio 70000 RTP/AVP 0\r\n",
    ));
    assert!(matches!(m.sdp(), Err(SipError::Sdp(_))));
    let m = parse_ok(&with_body("application/sdp", b"v=0\r\ns=\xff\xfe\r\n"));
    assert_eq!(m.sdp(), Err(SipError::SdpNotUtf8));
}

#[test]
fn framer_splits_stream_by_content_length() {
    let msgs = [crlf(WSINV), esc01(), crlf(ZEROMF), mpart01(), unreason()];
    let mut stream = Vec::new();
    for m in &msgs {
        stream.extend_from_slice(b"\r\n\r\n"); // RFC 5626 keep-alive ping
        stream.extend_from_slice(m);
    }
    stream.extend_from_slice(b"\r\n"); // pong
    stream.extend_from_slice(b"OPTIONS sip:partial");
    // Feed the stream in chunks of every size from 1 to 97 bytes.
    for chunk in [1usize, 2, 3, 7, 13, 64, 97, stream.len()] {
        let mut f = SipFramer::new();
        let mut out = Vec::new();
        for piece in stream.chunks(chunk) {
            out.extend(f.push(piece).unwrap());
        }
        assert_eq!(out, msgs.to_vec(), "chunk {chunk}");
        assert_eq!(f.buffered(), b"OPTIONS sip:partial", "chunk {chunk}");
        assert!(f.keepalives() >= 6, "chunk {chunk}");
        for m in &out {
            sip::parse(m).unwrap();
        }
    }
}

#[test]
fn framer_errors_poison_until_reset() {
    // Missing Content-Length on a stream.
    let mut f = SipFramer::new();
    let e = f
        .push(b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n")
        .unwrap_err();
    assert_eq!(e, SipError::Message(MessageError::MissingContentLength));
    assert!(f.is_poisoned());
    assert_eq!(f.push(b"x"), Err(SipError::Message(MessageError::Poisoned)));
    f.reset();
    assert!(!f.is_poisoned());
    let ok = crlf(ZEROMF);
    assert_eq!(f.push(&ok).unwrap(), vec![ok.clone()]);

    // Announced body larger than the limit fails at once, without waiting for it.
    let mut f = SipFramer::new();
    let e = f
        .push(b"INVITE sip:a@example.com SIP/2.0\r\nContent-Length: 70000\r\n\r\nv=0")
        .unwrap_err();
    assert!(matches!(
        e,
        SipError::Message(MessageError::TooLarge { size, .. }) if size > 70000
    ));

    // Endless header section.
    let mut f = SipFramer::new();
    let mut err = None;
    for _ in 0..2000 {
        match f.push(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n") {
            Ok(v) => assert!(v.is_empty()),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    assert!(matches!(
        err,
        Some(SipError::Message(MessageError::TooLarge { .. }))
    ));
    assert!(f.buffered().is_empty());

    // Duplicate Content-Length values cannot be framed.
    let mut f = SipFramer::new();
    assert!(matches!(
        f.push(b"OPTIONS sip:a SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab"),
        Err(SipError::Message(MessageError::DuplicateContentLength(2)))
    ));
}

#[test]
fn framer_accepts_a_message_of_exactly_the_limit() {
    let head = "OPTIONS sip:a@example.com SIP/2.0\r\nContent-Length: ";
    let fixed = head.len() + 5 + 4;
    let body_len = crate::signaling::MAX_MESSAGE_SIZE - fixed;
    let mut msg = format!("{head}{body_len:05}\r\n\r\n").into_bytes();
    msg.resize(crate::signaling::MAX_MESSAGE_SIZE, b'x');
    let mut f = SipFramer::new();
    let mut stream = msg.clone();
    stream.extend_from_slice(&msg);
    let out = f.push(&stream).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].len(), crate::signaling::MAX_MESSAGE_SIZE);
    let mut too_big = msg.clone();
    too_big.push(b'x');
    assert!(sip::parse(&too_big).is_err());
}

#[test]
fn hold_offer_in_sip() {
    let m = parse_ok(&with_body(
        "application/sdp",
        HOLD_2543.replace('\n', "\r\n").as_bytes(),
    ));
    let media = m.sdp().unwrap().unwrap().media();
    assert!(media[0].held);
    assert_eq!(media[0].rtp, None);
    assert_eq!(media[0].direction, Direction::SendRecv);
}

#[test]
fn start_line_table() {
    // The rest of a minimal valid message; CSeq is set per case to match the method.
    let rest = |method: &str| {
        format!(
            "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\nTo: <sip:a@example.com>\r\n\
             From: <sip:b@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 {method}\r\nl: 0\r\n\r\n"
        )
    };
    let ok = [
        ("INVITE sip:bob@biloxi.example.com SIP/2.0", "INVITE"),
        (
            "ACK sips:bob@[2001:db8::1]:5061;transport=tls SIP/2.0",
            "ACK",
        ),
        ("BYE sip:192.0.2.4 SIP/2.0", "BYE"),
        ("OPTIONS tel:+1-201-555-0123 sip/2.0", "OPTIONS"),
        ("REGISTER sip:registrar.example.com;lr SIP/2.0", "REGISTER"),
        (
            "INFO urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6 SIP/2.0",
            "INFO",
        ),
        ("MESSAGE sip:user?x=1@example.com SIP/2.0", "MESSAGE"),
    ];
    for (line, method) in ok {
        let msg = format!("{line}\r\n{}", rest(method));
        let m = sip::parse(msg.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(m.method().unwrap().as_str(), method);
    }
    let status_ok = [
        ("SIP/2.0 100 Trying", 100, "Trying"),
        ("SIP/2.0 183 Session Progress", 183, "Session Progress"),
        ("SIP/2.0 200 OK", 200, "OK"),
        ("SIP/2.0 699 Whatever it is", 699, "Whatever it is"),
        ("SIP/2.0 200", 200, ""),
        ("sip/2.0 486 Busy Here", 486, "Busy Here"),
    ];
    for (line, code, reason) in status_ok {
        let m = parse_ok(format!("{line}\r\n{}", rest("INVITE")).as_bytes());
        assert_eq!(
            m.start_line,
            StartLine::Response {
                code,
                reason: reason.into()
            },
            "{line}"
        );
    }
    type Pred = fn(&SipError) -> bool;
    let bad: &[(&str, Pred)] = &[
        ("INVITE", |e| matches!(e, SipError::InvalidRequestLine(_))),
        ("INVITE sip:a@b", |e| {
            matches!(e, SipError::InvalidRequestLine(_))
        }),
        ("INVITE sip:a@b SIP/2.0 extra", |e| {
            matches!(e, SipError::InvalidRequestLine(_))
        }),
        (" INVITE sip:a@b SIP/2.0", |e| {
            matches!(e, SipError::InvalidRequestLine(_))
        }),
        ("INVITE\tsip:a@b\tSIP/2.0", |e| {
            matches!(e, SipError::InvalidRequestLine(_))
        }),
        ("INVITE sip:a@b HTTP/1.1", |e| {
            matches!(e, SipError::InvalidRequestLine(_))
        }),
        ("INVITE sip:a@b SIP/2.1", |e| {
            matches!(e, SipError::UnsupportedVersion(_))
        }),
        ("INV(ITE sip:a@b SIP/2.0", |e| {
            matches!(e, SipError::InvalidMethod(_))
        }),
        ("INVITE sip: SIP/2.0", |e| {
            matches!(e, SipError::InvalidRequestUri { .. })
        }),
        ("INVITE sip:a@ SIP/2.0", |e| {
            matches!(e, SipError::InvalidRequestUri { .. })
        }),
        ("INVITE sip:user@example.com?? SIP/2.0", |e| {
            matches!(e, SipError::InvalidRequestUri { .. })
        }),
        ("INVITE a@b SIP/2.0", |e| {
            matches!(e, SipError::InvalidRequestUri { .. })
        }),
        ("INVITE 1sip:a@b SIP/2.0", |e| {
            matches!(e, SipError::InvalidRequestUri { .. })
        }),
        ("INVITE \"sip:a@b\" SIP/2.0", |e| {
            matches!(e, SipError::InvalidRequestUri { .. })
        }),
        ("SIP/2.0", |e| matches!(e, SipError::InvalidStatusLine(_))),
        ("SIP/2.0 20 OK", |e| {
            matches!(e, SipError::InvalidStatusLine(_))
        }),
        ("SIP/2.0 2000 OK", |e| {
            matches!(e, SipError::InvalidStatusLine(_))
        }),
        ("SIP/2.0 700 Too high", |e| {
            matches!(e, SipError::InvalidStatusLine(_))
        }),
        ("SIP/2.0 +20 OK", |e| {
            matches!(e, SipError::InvalidStatusLine(_))
        }),
        ("SIP/2.0  200 OK", |e| {
            matches!(e, SipError::InvalidStatusLine(_))
        }),
        ("SIP/1.0 200 OK", |e| {
            matches!(e, SipError::UnsupportedVersion(_))
        }),
    ];
    for (line, pred) in bad {
        let msg = format!("{line}\r\n{}", rest("INVITE"));
        match sip::parse(msg.as_bytes()) {
            Ok(m) => panic!("{line:?} accepted: {:?}", m.start_line),
            Err(e) => assert!(pred(&e), "{line:?}: {e:?}"),
        }
    }
}

#[test]
fn ack_and_cancel_keep_their_own_cseq_method() {
    for method in ["ACK", "CANCEL", "BYE", "PRACK", "UPDATE"] {
        let msg = format!(
            "{method} sip:b@192.0.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             To: <sip:b@example.com>;tag=2\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: c\r\n\
             CSeq: 7 {method}\r\nl: 0\r\n\r\n"
        );
        let m = parse_ok(msg.as_bytes());
        assert_eq!(m.cseq.method, Method::from_token(method));
        let wrong = msg.replace(&format!("CSeq: 7 {method}"), "CSeq: 7 INVITE");
        assert!(matches!(
            sip::parse(wrong.as_bytes()),
            Err(SipError::CSeqMethodMismatch { .. })
        ));
    }
}
