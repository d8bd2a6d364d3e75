//! SDP tests: RFC 3264 / 4317 offer-answer examples, RFC 3605 / 5761 RTCP
//! rules, multicast forms, and invalid descriptions.

use std::net::SocketAddr;

use super::fixtures::*;
use crate::signaling::sdp::{
    self, AddrType, ConnectionAddress, Direction, MediaDescription, MediaKind, SdpError,
    TransportFamily, MAX_MEDIA, MAX_SDP_LINES,
};

fn parse_ok(text: &str) -> sdp::SessionDescription {
    // Every fixture must parse identically with LF and CRLF line ends.
    let lf = sdp::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let crlf_text = text.replace('\n', "\r\n");
    assert_eq!(sdp::parse(&crlf_text).unwrap(), lf);
    lf
}

fn sa(s: &str) -> Option<SocketAddr> {
    Some(s.parse().unwrap())
}

/// Expected (kind, rtp, rtcp, direction, held, rejected) per stream.
type Row = (
    MediaKind,
    Option<SocketAddr>,
    Option<SocketAddr>,
    Direction,
    bool,
    bool,
);

fn summary(media: &[MediaDescription]) -> Vec<Row> {
    media
        .iter()
        .map(|m| {
            (
                m.kind.clone(),
                m.rtp,
                m.rtcp,
                m.direction,
                m.held,
                m.rejected,
            )
        })
        .collect()
}

#[test]
fn offer_answer_examples_table() {
    use Direction::*;
    use MediaKind::*;
    let cases: Vec<(&str, &str, Vec<Row>)> = vec![
        (
            "RFC 3264 10.1 re-offer",
            RFC3264_10_1_REOFFER,
            vec![
                (
                    Audio,
                    sa("198.51.100.20:65422"),
                    sa("198.51.100.20:65423"),
                    SendRecv,
                    false,
                    false,
                ),
                (Video, None, None, SendRecv, false, true),
                (
                    Video,
                    sa("198.51.100.20:53000"),
                    sa("198.51.100.20:53001"),
                    SendRecv,
                    false,
                    false,
                ),
                (
                    Audio,
                    sa("198.51.100.20:51434"),
                    sa("198.51.100.20:51435"),
                    RecvOnly,
                    false,
                    false,
                ),
            ],
        ),
        (
            "RFC 3264 10.1 re-answer",
            RFC3264_10_1_REANSWER,
            vec![
                (
                    Audio,
                    sa("192.0.2.10:49170"),
                    sa("192.0.2.10:49171"),
                    SendRecv,
                    false,
                    false,
                ),
                (Video, None, None, SendRecv, false, true),
                (
                    Video,
                    sa("192.0.2.10:53000"),
                    sa("192.0.2.10:53001"),
                    SendRecv,
                    false,
                    false,
                ),
                (
                    Audio,
                    sa("192.0.2.10:53122"),
                    sa("192.0.2.10:53123"),
                    SendOnly,
                    true,
                    false,
                ),
            ],
        ),
        (
            "RFC 3264 10.2 offer",
            RFC3264_10_2_OFFER,
            vec![(
                Audio,
                sa("192.0.2.10:62986"),
                sa("192.0.2.10:62987"),
                Inactive,
                true,
                false,
            )],
        ),
        (
            "RFC 3264 10.2 answer",
            RFC3264_10_2_ANSWER,
            vec![(
                Audio,
                sa("198.51.100.20:54344"),
                sa("198.51.100.20:54345"),
                Inactive,
                true,
                false,
            )],
        ),
        (
            "RFC 3264 10.2 re-offer",
            RFC3264_10_2_REOFFER,
            vec![(
                Audio,
                sa("192.0.2.10:62986"),
                sa("192.0.2.10:62987"),
                SendRecv,
                false,
                false,
            )],
        ),
        (
            "RFC 2543 hold",
            HOLD_2543,
            vec![(Audio, None, None, SendRecv, true, false)],
        ),
        (
            "RFC 4317 2.1 offer",
            RFC4317_2_1_OFFER,
            vec![
                (
                    Audio,
                    sa("192.0.2.101:49170"),
                    sa("192.0.2.101:49171"),
                    SendRecv,
                    false,
                    false,
                ),
                (
                    Video,
                    sa("192.0.2.101:51372"),
                    sa("192.0.2.101:51373"),
                    SendRecv,
                    false,
                    false,
                ),
            ],
        ),
        (
            "RFC 4317 2.1 answer",
            RFC4317_2_1_ANSWER,
            vec![
                (
                    Audio,
                    sa("198.51.100.102:49174"),
                    sa("198.51.100.102:49175"),
                    SendRecv,
                    false,
                    false,
                ),
                (
                    Video,
                    sa("198.51.100.102:49170"),
                    sa("198.51.100.102:49171"),
                    SendRecv,
                    false,
                    false,
                ),
            ],
        ),
        (
            "RFC 4317 2.2 answer",
            RFC4317_2_2_ANSWER,
            vec![
                (
                    Audio,
                    sa("198.51.100.102:49172"),
                    sa("198.51.100.102:49173"),
                    SendRecv,
                    false,
                    false,
                ),
                (Video, None, None, SendRecv, false, true),
            ],
        ),
        (
            "RFC 4317 2.4 two audio streams",
            RFC4317_2_4_OFFER,
            vec![
                (
                    Audio,
                    sa("192.0.2.101:49170"),
                    sa("192.0.2.101:49171"),
                    SendRecv,
                    false,
                    false,
                ),
                (
                    Audio,
                    sa("192.0.2.101:49172"),
                    sa("192.0.2.101:49173"),
                    SendOnly,
                    true,
                    false,
                ),
            ],
        ),
        (
            "RFC 4317 hold offer",
            RFC4317_HOLD_OFFER,
            vec![(
                Audio,
                sa("192.0.2.101:49170"),
                sa("192.0.2.101:49171"),
                SendOnly,
                true,
                false,
            )],
        ),
        (
            "RFC 4317 hold answer",
            RFC4317_HOLD_ANSWER,
            vec![(
                Audio,
                sa("198.51.100.102:49172"),
                sa("198.51.100.102:49173"),
                RecvOnly,
                false,
                false,
            )],
        ),
        (
            "RFC 4317 T.38",
            RFC4317_T38_OFFER,
            // udptl is not RTP: no RTCP port.
            vec![
                (Audio, None, None, SendRecv, false, true),
                (Image, sa("192.0.2.101:49172"), None, SendRecv, false, false),
            ],
        ),
        (
            "profiles",
            PROFILES,
            vec![
                (
                    Audio,
                    sa("[2001:db8::1]:5004"),
                    sa("[2001:db8::1]:5005"),
                    RecvOnly,
                    false,
                    false,
                ),
                (
                    Video,
                    sa("192.0.2.77:5006"),
                    sa("192.0.2.77:5007"),
                    SendRecv,
                    false,
                    false,
                ),
                (Audio, None, None, RecvOnly, true, false),
                (Message, sa("192.0.2.78:2855"), None, RecvOnly, false, false),
            ],
        ),
        (
            "RFC 3605 / 5761 rtcp attributes",
            RTCP_ATTRS,
            vec![
                (
                    Audio,
                    sa("192.0.2.30:49170"),
                    sa("192.0.2.30:53020"),
                    SendRecv,
                    false,
                    false,
                ),
                (
                    Audio,
                    sa("192.0.2.30:49180"),
                    sa("192.0.2.44:53020"),
                    SendRecv,
                    false,
                    false,
                ),
                (
                    Audio,
                    sa("192.0.2.30:49190"),
                    sa("[2001:db8::abcd]:53020"),
                    SendRecv,
                    false,
                    false,
                ),
                (
                    Audio,
                    sa("192.0.2.30:49200"),
                    sa("192.0.2.30:49200"),
                    SendRecv,
                    false,
                    false,
                ),
                (
                    Video,
                    sa("192.0.2.30:49170"),
                    sa("192.0.2.30:49171"),
                    SendRecv,
                    false,
                    false,
                ),
                (Audio, sa("192.0.2.30:65535"), None, SendRecv, false, false),
            ],
        ),
        (
            "RFC 4566 multicast",
            MULTICAST,
            vec![
                (
                    Audio,
                    sa("224.2.17.12:49170"),
                    sa("224.2.17.12:49171"),
                    RecvOnly,
                    false,
                    false,
                ),
                (
                    Video,
                    sa("224.2.1.1:51372"),
                    sa("224.2.1.1:51373"),
                    RecvOnly,
                    false,
                    false,
                ),
                (
                    Video,
                    sa("[ff15::101]:51374"),
                    sa("[ff15::101]:51375"),
                    RecvOnly,
                    false,
                    false,
                ),
            ],
        ),
    ];
    for (name, text, expected) in cases {
        let sd = parse_ok(text);
        let media = sd.media();
        assert_eq!(summary(&media), expected, "{name}");
        for (i, m) in media.iter().enumerate() {
            assert_eq!(m.index, i, "{name}");
        }
    }
}

#[test]
fn rfc3264_10_1_with_host_names() {
    let offer = parse_ok(RFC3264_10_1_OFFER);
    assert_eq!(offer.session_name.as_deref(), Some(""));
    let origin = offer.origin.as_ref().unwrap();
    assert_eq!(
        (
            origin.username.as_str(),
            origin.session_id.as_str(),
            origin.address.as_str()
        ),
        ("alice", "2890844526", "host.anywhere.com")
    );
    assert_eq!(
        offer.connection.as_ref().unwrap().address,
        ConnectionAddress::Fqdn("host.anywhere.com".into())
    );
    let media = offer.media();
    assert_eq!(media.len(), 3);
    for m in &media {
        // Host names are not resolved: no endpoint, but the name is reported.
        assert_eq!(m.rtp, None);
        assert_eq!(m.unresolved_host.as_deref(), Some("host.anywhere.com"));
        assert!(!m.rejected && !m.held);
    }
    assert_eq!(offer.media_sections[1].formats, ["31"]);
    assert_eq!(
        offer.media_sections[2].attribute("rtpmap"),
        Some(Some("32 MPV/90000"))
    );

    let answer = parse_ok(RFC3264_10_1_ANSWER);
    let media = answer.media();
    assert_eq!(
        media.iter().map(|m| m.rejected).collect::<Vec<_>>(),
        [false, true, false]
    );
    assert_eq!(media[1].unresolved_host, None);
    assert_eq!(answer.media_sections[0].port, 49920);
}

#[test]
fn rtcp_without_mux_fallback() {
    let sd = parse_ok(RTCP_ATTRS);
    let media = sd.media();
    // rtcp-mux stream: multiplexed RTCP on the RTP port, RTP+1 if mux is refused.
    assert_eq!(media[3].rtcp, sa("192.0.2.30:49200"));
    assert_eq!(media[3].rtcp_without_mux, sa("192.0.2.30:49201"));
    for m in media.iter().filter(|m| !m.rtcp_mux) {
        assert_eq!(m.rtcp, m.rtcp_without_mux);
    }
    // rtcp-mux together with a=rtcp (RFC 5761 §5.1.3 recommends both).
    let sd = parse_ok("v=0\nc=IN IP4 192.0.2.5\nm=audio 5000 RTP/AVP 0\na=rtcp:5001\na=rtcp-mux\n");
    let m = &sd.media()[0];
    assert_eq!(
        (m.rtcp, m.rtcp_without_mux),
        (sa("192.0.2.5:5000"), sa("192.0.2.5:5001"))
    );
    // Not RTP: neither.
    let sd = parse_ok("v=0\nc=IN IP4 192.0.2.5\nm=image 5000 udptl t38\na=rtcp-mux\n");
    let m = &sd.media()[0];
    assert_eq!((m.rtcp, m.rtcp_without_mux), (None, None));
}

#[test]
fn port_count_and_transport_family() {
    let sd = parse_ok(RTCP_ATTRS);
    assert_eq!(sd.media_sections[4].port_count, 2);
    assert_eq!(sd.media()[4].port_count, 2);
    assert!(sd.media()[3].rtcp_mux);
    let sd = parse_ok(PROFILES);
    let fam: Vec<TransportFamily> = sd.media().iter().map(|m| m.transport).collect();
    assert_eq!(
        fam,
        [
            TransportFamily::Udp,
            TransportFamily::Udp,
            TransportFamily::Udp,
            TransportFamily::Tcp
        ]
    );
    assert_eq!(sd.media()[2].proto, "UDP/TLS/RTP/SAVPF");
    assert_eq!(sd.direction(), Direction::RecvOnly);
    assert_eq!(sd.attribute("recvonly"), Some(None));
}

#[test]
fn multicast_connection_details() {
    let sd = parse_ok(MULTICAST);
    let c = sd.connection.as_ref().unwrap();
    assert_eq!(
        (c.addr_type, c.ttl, c.count),
        (AddrType::Ip4, Some(127), None)
    );
    let c = &sd.media_sections[1].connections[0];
    assert_eq!((c.ttl, c.count), (Some(127), Some(3)));
    let c = &sd.media_sections[2].connections[0];
    assert_eq!(
        (c.addr_type, c.ttl, c.count),
        (AddrType::Ip6, None, Some(3))
    );
}

#[test]
fn media_level_direction_overrides_session_level_and_last_wins() {
    let sd = parse_ok(
        "v=0\nc=IN IP4 192.0.2.1\na=inactive\nm=audio 1000 RTP/AVP 0\na=sendonly\na=recvonly\nm=audio 1002 RTP/AVP 0\n",
    );
    let media = sd.media();
    assert_eq!(media[0].direction, Direction::RecvOnly);
    assert_eq!(media[1].direction, Direction::Inactive);
    assert!(media[1].held);
}

#[test]
fn tolerated_variations() {
    let cases = [
        ("trailing blank lines", "v=0\nc=IN IP4 192.0.2.1\nm=audio 1000 RTP/AVP 0\n\n\n"),
        ("no final newline", "v=0\nc=IN IP4 192.0.2.1\nm=audio 1000 RTP/AVP 0"),
        ("trailing spaces", "v=0  \nc=IN IP4 192.0.2.1 \nm=audio 1000 RTP/AVP 0   \n"),
        ("tab separated", "v=0\nc=IN\tIP4\t192.0.2.1\nm=audio\t1000\tRTP/AVP\t0\n"),
        ("no o= s= t=", "v=0\nm=audio 0 RTP/AVP 0\n"),
        ("m= without formats", "v=0\nc=IN IP4 192.0.2.1\nm=audio 1000 RTP/AVP\n"),
        ("all optional lines", "v=0\no=- 1 1 IN IP4 h.example.com\ns=x\ni=info\nu=http://x\ne=a@b\np=+1 555\nc=IN IP4 192.0.2.1\nb=AS:64\nt=0 0\nr=7d 1h 0 25h\nz=2882844526 -1h\nk=prompt\nm=audio 1000 RTP/AVP 0\ni=media\nb=TIAS:64000\nk=clear:x\n"),
        ("trickle ICE placeholder", "v=0\nc=IN IP4 0.0.0.0\nm=audio 9 UDP/TLS/RTP/SAVPF 111\na=rtcp:9 IN IP4 0.0.0.0\n"),
        ("fqdn ending in dot", "v=0\nc=IN IP4 media.example.com.\nm=audio 1000 RTP/AVP 0\n"),
        ("only media-level c=", "v=0\nm=audio 1000 RTP/AVP 0\nc=IN IP4 192.0.2.1\n"),
    ];
    for (name, text) in cases {
        if let Err(e) = sdp::parse(text) {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn invalid_descriptions_table() {
    type Pred = fn(&SdpError) -> bool;
    let cases: Vec<(&str, String, Pred)> = vec![
        ("empty", String::new(), |e| matches!(e, SdpError::MissingVersion)),
        ("no v=", "o=- 1 1 IN IP4 192.0.2.1\n".into(), |e| matches!(e, SdpError::MissingVersion)),
        ("v=1", "v=1\n".into(), |e| matches!(e, SdpError::UnsupportedVersion(_))),
        ("repeated v=", "v=0\nv=0\n".into(), |e| matches!(e, SdpError::InvalidField { field: "v=", .. })),
        ("unknown type", "v=0\nx=proprietary\n".into(), |e| matches!(e, SdpError::UnknownLineType { kind: 'x', line: 2 })),
        ("space before =", "v=0\nm =video 3227 RTP/AVP 31\n".into(), |e| matches!(e, SdpError::MalformedLine { line: 2, .. })),
        ("upper-case type", "v=0\nA=foo\n".into(), |e| matches!(e, SdpError::MalformedLine { .. })),
        ("single char line", "v=0\nm\n".into(), |e| matches!(e, SdpError::MalformedLine { .. })),
        ("non-ASCII type", "v=0\né=x\n".into(), |e| matches!(e, SdpError::MalformedLine { .. })),
        ("short o=", "v=0\no=alice 1 1\n".into(), |e| matches!(e, SdpError::InvalidField { field: "o=", .. })),
        ("port > 65535", "v=0\nc=IN IP4 192.0.2.1\nm=audio 70000 RTP/AVP 0\n".into(), |e| matches!(e, SdpError::InvalidPort { line: 3, .. })),
        ("negative port", "v=0\nc=IN IP4 192.0.2.1\nm=audio -1 RTP/AVP 0\n".into(), |e| matches!(e, SdpError::InvalidPort { .. })),
        ("port with letters", "v=0\nc=IN IP4 192.0.2.1\nm=audio 49a RTP/AVP 0\n".into(), |e| matches!(e, SdpError::InvalidPort { .. })),
        ("huge port", "v=0\nc=IN IP4 192.0.2.1\nm=audio 99999999999999999999 RTP/AVP 0\n".into(), |e| matches!(e, SdpError::InvalidPort { .. })),
        ("port count 0", "v=0\nc=IN IP4 192.0.2.1\nm=video 49170/0 RTP/AVP 31\n".into(), |e| matches!(e, SdpError::InvalidPort { .. })),
        ("port range overflow", "v=0\nc=IN IP4 192.0.2.1\nm=video 65534/2 RTP/AVP 31\n".into(), |e| matches!(e, SdpError::InvalidPort { .. })),
        ("empty port count", "v=0\nc=IN IP4 192.0.2.1\nm=video 49170/ RTP/AVP 31\n".into(), |e| matches!(e, SdpError::InvalidPort { .. })),
        ("m= too short", "v=0\nc=IN IP4 192.0.2.1\nm=audio 49170\n".into(), |e| matches!(e, SdpError::InvalidField { field: "m=", .. })),
        ("bad proto", "v=0\nc=IN IP4 192.0.2.1\nm=audio 49170 RTP//AVP 0\n".into(), |e| matches!(e, SdpError::InvalidField { field: "m=", .. })),
        ("too many formats", format!("v=0\nc=IN IP4 192.0.2.1\nm=audio 49170 RTP/AVP{}\n", " 0".repeat(200)), |e| matches!(e, SdpError::InvalidField { field: "m=", .. })),
        ("missing c=", "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\nm=audio 49170 RTP/AVP 0\n".into(), |e| matches!(e, SdpError::MissingConnection { index: 0, line: 5 })),
        ("missing c= on second stream", "v=0\nm=audio 49170 RTP/AVP 0\nc=IN IP4 192.0.2.1\nm=video 0 RTP/AVP 31\nm=video 5000 RTP/AVP 31\n".into(), |e| matches!(e, SdpError::MissingConnection { index: 2, .. })),
        ("bad IPv4", "v=0\nc=IN IP4 192.0.2.300\nm=audio 1000 RTP/AVP 0\n".into(), |e| matches!(e, SdpError::InvalidAddress { addr_type: AddrType::Ip4, .. })),
        ("IPv6 literal as IP4", "v=0\nc=IN IP4 2001:db8::1\nm=audio 1000 RTP/AVP 0\n".into(), |e| matches!(e, SdpError::InvalidAddress { .. })),
        ("IPv4 literal as IP6", "v=0\nc=IN IP6 192.0.2.1\nm=audio 1000 RTP/AVP 0\n".into(), |e| matches!(e, SdpError::InvalidAddress { .. })),
        ("garbage address", "v=0\nc=IN IP4 bad..host\nm=audio 1000 RTP/AVP 0\n".into(), |e| matches!(e, SdpError::InvalidAddress { .. })),
        ("address with NUL", "v=0\nc=IN IP4 192.0.2.1\0\nm=audio 1000 RTP/AVP 0\n".into(), |e| matches!(e, SdpError::InvalidAddress { .. })),
        ("c= missing address", "v=0\nc=IN IP4\n".into(), |e| matches!(e, SdpError::InvalidField { field: "c=", .. })),
        ("c= bad nettype", "v=0\nc=ATM NSAP 47.0005\n".into(), |e| matches!(e, SdpError::InvalidField { field: "c=", .. })),
        ("c= bad addrtype", "v=0\nc=IN IP5 192.0.2.1\n".into(), |e| matches!(e, SdpError::InvalidField { field: "c=", .. })),
        ("c= bad ttl", "v=0\nc=IN IP4 224.2.1.1/abc\n".into(), |e| matches!(e, SdpError::InvalidField { field: "c=", .. })),
        ("c= ttl > 255", "v=0\nc=IN IP4 224.2.1.1/300\n".into(), |e| matches!(e, SdpError::InvalidField { field: "c=", .. })),
        ("c= count 0", "v=0\nc=IN IP4 224.2.1.1/127/0\n".into(), |e| matches!(e, SdpError::InvalidField { field: "c=", .. })),
        ("c= IP6 with ttl", "v=0\nc=IN IP6 ff15::1/3/4\n".into(), |e| matches!(e, SdpError::InvalidField { field: "c=", .. })),
        ("c= too many suffixes", "v=0\nc=IN IP4 224.2.1.1/1/2/3\n".into(), |e| matches!(e, SdpError::InvalidField { field: "c=", .. })),
        ("a=rtcp port 0", "v=0\nc=IN IP4 192.0.2.1\nm=audio 1000 RTP/AVP 0\na=rtcp:0\n".into(), |e| matches!(e, SdpError::InvalidPort { line: 4, .. })),
        ("a=rtcp port too big", "v=0\nc=IN IP4 192.0.2.1\nm=audio 1000 RTP/AVP 0\na=rtcp:70000\n".into(), |e| matches!(e, SdpError::InvalidPort { .. })),
        ("a=rtcp no port", "v=0\nc=IN IP4 192.0.2.1\nm=audio 1000 RTP/AVP 0\na=rtcp\n".into(), |e| matches!(e, SdpError::InvalidField { field: "a=rtcp", .. })),
        ("a=rtcp partial address", "v=0\nc=IN IP4 192.0.2.1\nm=audio 1000 RTP/AVP 0\na=rtcp:5000 IN IP4\n".into(), |e| matches!(e, SdpError::InvalidField { field: "a=rtcp", .. })),
        ("a=rtcp bad address", "v=0\nc=IN IP4 192.0.2.1\nm=audio 1000 RTP/AVP 0\na=rtcp:5000 IN IP4 1.2.3.4.5\n".into(), |e| matches!(e, SdpError::InvalidAddress { .. })),
        ("a=rtcp bad nettype", "v=0\nc=IN IP4 192.0.2.1\nm=audio 1000 RTP/AVP 0\na=rtcp:5000 XX IP4 192.0.2.1\n".into(), |e| matches!(e, SdpError::InvalidField { field: "a=rtcp", .. })),
        ("bad attribute name", "v=0\na=bad name:x\n".into(), |e| matches!(e, SdpError::InvalidField { field: "a=", .. })),
        ("empty attribute", "v=0\na=\n".into(), |e| matches!(e, SdpError::InvalidField { field: "a=", .. })),
        ("too many m=", format!("v=0\nc=IN IP4 192.0.2.1\n{}", "m=audio 1000 RTP/AVP 0\n".repeat(MAX_MEDIA + 1)), |e| matches!(e, SdpError::TooManyMedia { .. })),
        ("too many lines", format!("v=0\n{}", "a=x\n".repeat(MAX_SDP_LINES)), |e| matches!(e, SdpError::TooManyLines { .. })),
        ("too many blank lines", format!("v=0\n{}", "\n".repeat(MAX_SDP_LINES + 1)), |e| matches!(e, SdpError::TooManyLines { .. })),
        ("too large", format!("v=0\ns={}\n", "x".repeat(70_000)), |e| matches!(e, SdpError::TooLarge { .. })),
    ];
    for (name, text, pred) in cases {
        match sdp::parse(&text) {
            Ok(sd) => panic!("{name}: accepted {sd:?}"),
            Err(e) => {
                assert!(pred(&e), "{name}: unexpected {e:?}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
}

#[test]
fn limits_are_inclusive() {
    let at_limit = format!(
        "v=0\nc=IN IP4 192.0.2.1\n{}",
        "m=audio 1000 RTP/AVP 0\n".repeat(MAX_MEDIA)
    );
    assert_eq!(sdp::parse(&at_limit).unwrap().media().len(), MAX_MEDIA);
    let lines = format!("v=0{}", "\na=x".repeat(MAX_SDP_LINES - 1));
    assert_eq!(
        sdp::parse(&lines).unwrap().attributes.len(),
        MAX_SDP_LINES - 1
    );
}
