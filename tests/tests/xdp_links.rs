//! The XDP programs on links that are not plain Ethernet, and
//! `--media-prefix`, against crafted frames through `BPF_PROG_TEST_RUN`:
//!
//! - `pinhole_l3`, the program for links without a link-layer header (tun,
//!   WireGuard, PPP), on frames that start at the IP header;
//! - `pinhole` on PPPoE session frames (EtherType 0x8864, then PPP);
//! - both with the protected destinations scoped by `--media-prefix`.
//!
//! Every case checks the XDP action, that exactly one packet was counted
//! under the expected reason and nothing under any other, and that an open
//! flow's packet count moved on a hit and only then.
//!
//! Needs root (CAP_BPF + CAP_NET_ADMIN). It never skips: without the
//! privileges it fails with a message saying so.

use std::net::SocketAddr;

use ipnet::IpNet;
use pinhole::datapath::media_scope::apply_media_prefixes;
use pinhole_common::{Config, FlowKey, FragmentPolicy, Reason, PROGRAM_L3_NAME, PROGRAM_NAME};
use pinhole_integration::frames::{arp, Frame, HeaderKind, ETH_P_PPP_SES, PPP_LCP, TPID_8021Q};
use pinhole_integration::xdp::{
    self,
    endpoints::{a4, a6, b4, b6, c4, c6, port},
    flow_key as key, TestProg, ETH_HLEN,
};

/// The media ranges every test program is loaded with.
const RANGES: [(u16, u16); 1] = [(10000, 20000)];

/// Both families, as (label, A, B, C).
fn families() -> [(&'static str, SocketAddr, SocketAddr, SocketAddr); 2] {
    [("v4", a4(), b4(), c4()), ("v6", a6(), b6(), c6())]
}

fn config(prefixes: &[&str]) -> Config {
    let mut cfg = xdp::config(&RANGES, FragmentPolicy::Pass);
    let nets: Vec<IpNet> = prefixes
        .iter()
        .map(|p| p.parse().expect("prefix"))
        .collect();
    apply_media_prefixes(&mut cfg, &nets).expect("prefixes fit");
    cfg
}

/// `program` loaded with `cfg`, A -> B open in both families.
fn load(cfg: &Config, program: &'static str) -> TestProg {
    let mut p = TestProg::load_program(cfg, 1024, program);
    for (_, a, b, _) in families() {
        p.open(a, b);
    }
    p
}

struct Case {
    name: String,
    frame: Vec<u8>,
    want: Reason,
    /// The open flow the frame belongs to: its packet count moves by one on
    /// a hit and stays put otherwise.
    flow: Option<FlowKey>,
}

fn case(name: impl Into<String>, frame: impl Into<Vec<u8>>, want: Reason) -> Case {
    Case {
        name: name.into(),
        frame: frame.into(),
        want,
        flow: None,
    }
}

fn on_flow(c: Case, src: SocketAddr, dst: SocketAddr) -> Case {
    Case {
        flow: Some(key(src, dst)),
        ..c
    }
}

fn run_table(p: &TestProg, cases: Vec<Case>) {
    assert!(!cases.is_empty());
    for c in cases {
        assert!(
            c.frame.len() >= ETH_HLEN,
            "{}: BPF_PROG_TEST_RUN needs {ETH_HLEN} bytes",
            c.name
        );
        let before = c.flow.map(|k| p.stats(&k).expect("flow open"));
        p.run_counted(&c.name, &c.frame, c.want);
        if let (Some(k), Some(before)) = (c.flow, before) {
            let now = p.stats(&k).expect("flow still open");
            let hits = u64::from(c.want == Reason::Hit);
            assert_eq!(
                now.packets,
                before.packets + hits,
                "{}: flow packets",
                c.name
            );
        }
    }
}

#[test]
fn l3_program_parses_from_the_ip_header() {
    let p = load(&config(&[]), PROGRAM_L3_NAME);
    let mut cases = Vec::new();
    for (fam, a, b, c) in families() {
        let ip = |f: Frame| f.build().ip_only();
        cases.extend([
            on_flow(
                case(format!("{fam} hit"), ip(Frame::udp(a, b)), Reason::Hit),
                a,
                b,
            ),
            on_flow(
                case(
                    format!("{fam} hit, 1400-byte payload"),
                    ip(Frame::udp(a, b).payload(1400)),
                    Reason::Hit,
                ),
                a,
                b,
            ),
            case(format!("{fam} miss"), ip(Frame::udp(c, b)), Reason::Miss),
            on_flow(
                case(
                    format!("{fam} miss, reverse direction"),
                    ip(Frame::udp(b, a)),
                    Reason::Miss,
                ),
                a,
                b,
            ),
            case(
                format!("{fam} udp to sip 5060"),
                ip(Frame::udp(c, port(b, 5060))),
                Reason::NotMediaPort,
            ),
            case(format!("{fam} tcp"), ip(Frame::tcp(c, b)), Reason::NotUdp),
            case(format!("{fam} icmp"), ip(Frame::icmp(c, b)), Reason::NotUdp),
            case(
                format!("{fam} header cut short"),
                Frame::udp(c, b).build().ip_only()[..ETH_HLEN + 2].to_vec(),
                Reason::Malformed,
            ),
            case(
                format!("{fam} udp header cut short"),
                {
                    let f = Frame::udp(c, b).build();
                    let udp = f.header(HeaderKind::Udp).expect("udp");
                    f.bytes[f.l3_offset()..udp.start + 4].to_vec()
                },
                Reason::Malformed,
            ),
        ]);
    }
    cases.extend([
        // An Ethernet frame on an L3 link: its first nibble (of the MAC) is
        // no IP version, and the kernel would not take it as IP either.
        case(
            "ethernet frame",
            Frame::udp(c4(), b4()).build(),
            Reason::NotIp,
        ),
        case("arp", arp(), Reason::NotIp),
        case(
            "version nibble 5",
            {
                let mut f = Frame::udp(c4(), b4()).build().ip_only();
                f[0] = 0x55;
                f
            },
            Reason::NotIp,
        ),
        // Version 4 with an IHL below 5: the IPv4 checks reject it.
        case(
            "ipv4, ihl 4",
            {
                let mut f = Frame::udp(c4(), b4()).build().ip_only();
                f[0] = 0x44;
                f
            },
            Reason::Malformed,
        ),
    ]);
    run_table(&p, cases);
}

#[test]
fn ethernet_program_passes_l3_frames_which_is_why_l3_links_get_their_own() {
    // The bug the L3 program fixes: on a tun or WireGuard device the
    // Ethernet program reads an IP packet's addresses as MACs and its
    // source address as the EtherType, so media to an unopened port passes.
    let p = load(&config(&[]), PROGRAM_NAME);
    run_table(
        &p,
        vec![
            case(
                "v4 unsolicited media, parsed as ethernet",
                Frame::udp(c4(), b4()).build().ip_only(),
                Reason::NotIp,
            ),
            case(
                "v6 unsolicited media, parsed as ethernet",
                Frame::udp(c6(), b6()).build().ip_only(),
                Reason::NotIp,
            ),
        ],
    );
}

/// `frame` (PPPoE) with its 2-byte PPP protocol field compressed to one
/// byte (PFC, RFC 1661), the session length fixed up.
fn compress_ppp_protocol(f: &pinhole_integration::frames::Built) -> Vec<u8> {
    let h = f.header(HeaderKind::Pppoe).expect("pppoe header");
    let mut b = f.bytes.clone();
    assert_eq!(b[h.end - 2], 0, "a compressible protocol");
    b.remove(h.end - 2);
    let len = u16::from_be_bytes([b[h.start + 4], b[h.start + 5]]) - 1;
    b[h.start + 4..h.start + 6].copy_from_slice(&len.to_be_bytes());
    b
}

#[test]
fn pppoe_sessions_are_walked_to_ip() {
    let p = load(&config(&[]), PROGRAM_NAME);
    let mut cases = Vec::new();
    for (fam, a, b, c) in families() {
        let hit = |name: &str, frame: Vec<u8>| {
            on_flow(case(format!("{fam} {name}"), frame, Reason::Hit), a, b)
        };
        let f = Frame::udp(a, b).pppoe(7).build();
        let pppoe = f.header(HeaderKind::Pppoe).expect("pppoe header");
        cases.extend([
            hit("pppoe hit", f.bytes.clone()),
            hit(
                "pppoe in 802.1Q hit",
                Frame::udp(a, b).vlan(TPID_8021Q, 7).pppoe(7).build().bytes,
            ),
            hit(
                "pppoe hit, compressed PPP protocol",
                compress_ppp_protocol(&f),
            ),
            hit("pppoe hit, ethernet padding after the session", {
                let mut b = Frame::udp(a, b).pppoe(7).payload(0).build().bytes;
                b.resize(b.len().max(60) + 4, 0);
                b
            }),
            case(
                format!("{fam} pppoe miss"),
                Frame::udp(c, b).pppoe(7).build(),
                Reason::Miss,
            ),
            case(
                format!("{fam} pppoe miss, compressed PPP protocol"),
                compress_ppp_protocol(&Frame::udp(c, b).pppoe(7).build()),
                Reason::Miss,
            ),
            case(
                format!("{fam} pppoe udp to sip 5060"),
                Frame::udp(c, port(b, 5060)).pppoe(7).build(),
                Reason::NotMediaPort,
            ),
            case(
                format!("{fam} pppoe tcp"),
                Frame::tcp(c, b).pppoe(7).build(),
                Reason::NotUdp,
            ),
            case(
                format!("{fam} pppoe, PPP LCP"),
                {
                    let mut g = f.clone();
                    g.set_be16(pppoe.end - 2, PPP_LCP);
                    g.bytes
                },
                Reason::NotIp,
            ),
            case(
                format!("{fam} pppoe, PPP IPCP"),
                {
                    let mut g = f.clone();
                    g.set_be16(pppoe.end - 2, 0x8021);
                    g.bytes
                },
                Reason::NotIp,
            ),
            case(
                format!("{fam} pppoe, the other family's PPP protocol"),
                {
                    // An IPv4 packet labelled IPv6 (or the reverse): the
                    // version check of the labelled family rejects it.
                    let mut g = f.clone();
                    let other = if a.is_ipv4() { 0x0057 } else { 0x0021 };
                    g.set_be16(pppoe.end - 2, other);
                    g.bytes
                },
                Reason::Malformed,
            ),
            case(
                format!("{fam} pppoe, cut inside the session header"),
                f.truncated(pppoe.start + 3),
                Reason::Malformed,
            ),
            case(
                format!("{fam} pppoe, cut before the PPP protocol"),
                f.truncated(pppoe.start + 6),
                Reason::Malformed,
            ),
            case(
                format!("{fam} pppoe, cut inside the PPP protocol"),
                f.truncated(pppoe.start + 7),
                Reason::Malformed,
            ),
            case(
                format!("{fam} pppoe, cut inside the IP header"),
                f.truncated(pppoe.end + 10),
                Reason::Malformed,
            ),
            case(
                format!("{fam} pppoe, session length past the frame"),
                {
                    let mut g = f.clone();
                    let len = (g.bytes.len() - pppoe.start - 6 + 1) as u16;
                    g.set_be16(pppoe.start + 4, len);
                    g.bytes
                },
                Reason::Malformed,
            ),
            case(
                format!("{fam} pppoe, version 2"),
                {
                    let mut g = f.clone();
                    g.bytes[pppoe.start] = 0x21;
                    g.bytes
                },
                Reason::Malformed,
            ),
            case(
                format!("{fam} pppoe, discovery code in a session frame"),
                {
                    let mut g = f.clone();
                    g.bytes[pppoe.start + 1] = 0x09; // PADI
                    g.bytes
                },
                Reason::Malformed,
            ),
        ]);
    }
    cases.push(case(
        "pppoe discovery (0x8863)",
        {
            let mut g = Frame::udp(c4(), b4()).pppoe(0).build();
            g.set_be16(12, ETH_P_PPP_SES - 1);
            g.bytes
        },
        Reason::NotIp,
    ));
    run_table(&p, cases);
}

#[test]
fn media_prefixes_scope_the_protected_destinations() {
    // B's networks are protected, C's are not.
    let cfg = config(&["198.51.100.0/24", "2001:db8:1::/48"]);
    for program in [PROGRAM_NAME, PROGRAM_L3_NAME] {
        let p = load(&cfg, program);
        let frame = |f: Frame| {
            let b = f.build();
            if program == PROGRAM_NAME {
                b.bytes
            } else {
                b.ip_only()
            }
        };
        let mut cases = Vec::new();
        for (fam, a, b, c) in families() {
            let name = |what: &str| format!("{program} {fam} {what}");
            cases.extend([
                on_flow(
                    case(name("inside, hit"), frame(Frame::udp(a, b)), Reason::Hit),
                    a,
                    b,
                ),
                case(name("inside, miss"), frame(Frame::udp(c, b)), Reason::Miss),
                case(
                    name("inside, udp to sip 5060"),
                    frame(Frame::udp(c, port(b, 5060))),
                    Reason::NotMediaPort,
                ),
                // A reply to a client in C's network on an ephemeral port
                // inside the media range: not protected, passes.
                case(
                    name("outside, media port"),
                    frame(Frame::udp(b, c)),
                    Reason::NotMediaPrefix,
                ),
                case(
                    name("outside, media port, from the open flow's source"),
                    frame(Frame::udp(a, SocketAddr::new(c.ip(), b.port()))),
                    Reason::NotMediaPrefix,
                ),
                case(
                    name("outside, non-media port"),
                    frame(Frame::udp(b, port(c, 5060))),
                    Reason::NotMediaPort,
                ),
            ]);
        }
        run_table(&p, cases);
    }

    // Prefixes of one family only: the other family is not protected at all.
    let p = load(&config(&["198.51.100.0/24"]), PROGRAM_NAME);
    run_table(
        &p,
        vec![
            case(
                "v4 only: v4 inside",
                Frame::udp(c4(), b4()).build(),
                Reason::Miss,
            ),
            case(
                "v4 only: v6 anywhere",
                Frame::udp(c6(), b6()).build(),
                Reason::NotMediaPrefix,
            ),
        ],
    );

    // Without prefixes, the same outside packets are subject to filtering.
    let p = load(&config(&[]), PROGRAM_NAME);
    run_table(
        &p,
        vec![
            case(
                "no prefixes: v4 outside",
                Frame::udp(b4(), c4()).build(),
                Reason::Miss,
            ),
            case(
                "no prefixes: v6 outside",
                Frame::udp(b6(), c6()).build(),
                Reason::Miss,
            ),
        ],
    );
}
