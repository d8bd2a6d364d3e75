//! The XDP program against crafted frames, through `BPF_PROG_TEST_RUN`.
//!
//! Every case checks three things: the XDP action, that exactly one packet (and
//! the frame's bytes) was counted under the expected [`Reason`] and nothing
//! under any other, and for hits that the flow's own statistics moved.
//!
//! Needs root (CAP_BPF + CAP_NET_ADMIN). It never skips: without the
//! privileges it fails with a message saying so.

use std::{
    net::{Ipv6Addr, SocketAddr},
    ops::{Deref, DerefMut},
};

use aya::{programs::TestRunOptions, TestRun};
use pinhole::datapath::maps::Inserted;
use pinhole_common::{Config, FlowKey, FlowStats, FragmentPolicy, Reason, MAX_IPV6_EXT_HEADERS};
use pinhole_integration::frames::{
    arp, ipv6_no_next_header, Built, Ext, Frame, HeaderKind, L4, TPID_8021AD, TPID_8021Q,
};
use pinhole_integration::xdp::{
    self,
    endpoints::{a4, a6, b4, b6, c4, c6, port},
    flow_key as key, test_run, TestProg, ETH_HLEN, XDP_PASS,
};
/// How far `bpf_ktime_get_coarse_ns` may trail CLOCK_MONOTONIC: one tick
/// (10 ms at HZ=100, the slowest common setting), with margin.
const COARSE_CLOCK_LAG_NS: u64 = 20_000_000;

/// The media ranges every test program is loaded with.
const RANGES: [(u16, u16); 2] = [(10000, 20000), (30000, 30000)];

fn config(policy: FragmentPolicy) -> Config {
    xdp::config(&RANGES, policy)
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The program loaded with [`config`], plus the per-case check.
struct Prog(TestProg);

impl Deref for Prog {
    type Target = TestProg;
    fn deref(&self) -> &TestProg {
        &self.0
    }
}

impl DerefMut for Prog {
    fn deref_mut(&mut self) -> &mut TestProg {
        &mut self.0
    }
}

impl Prog {
    fn load(policy: FragmentPolicy) -> Prog {
        Prog(TestProg::load(&config(policy), 1024))
    }

    /// Runs `frame` once and checks the action, the counters and, for hits,
    /// the stats of `flow` (the flow the frame belongs to).
    fn check(&mut self, name: &str, frame: &[u8], want: Reason, flow: Option<FlowKey>) {
        let flow_before = flow.and_then(|k| self.stats(&k));
        let t0 = monotonic_ns();
        self.run_counted(name, frame, want);
        let t1 = monotonic_ns();

        if let Some(k) = flow {
            let before = flow_before.unwrap_or_else(|| panic!("{name}: flow not open"));
            let now = self.stats(&k).expect("flow still open");
            if want == Reason::Hit {
                assert_eq!(now.packets, before.packets + 1, "{name}: flow packets");
                assert_eq!(
                    now.bytes,
                    before.bytes + frame.len() as u64,
                    "{name}: flow bytes"
                );
                // The coarse clock lags CLOCK_MONOTONIC by at most a tick.
                let earliest = t0
                    .saturating_sub(COARSE_CLOCK_LAG_NS)
                    .max(before.last_seen_ns + 1);
                assert!(
                    (earliest..=t1).contains(&now.last_seen_ns),
                    "{name}: last_seen_ns {} not in [{earliest}, {t1}] (was {})",
                    now.last_seen_ns,
                    before.last_seen_ns
                );
            } else {
                assert_eq!(now, before, "{name}: flow stats changed without a hit");
            }
        }
    }
}

struct Case {
    name: String,
    frame: Vec<u8>,
    want: Reason,
    /// The open flow this frame belongs to, if any: its stats must move on a
    /// hit and stay put otherwise.
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

fn hit(
    name: impl Into<String>,
    frame: impl Into<Vec<u8>>,
    src: SocketAddr,
    dst: SocketAddr,
) -> Case {
    Case {
        flow: Some(key(src, dst)),
        ..case(name, frame, Reason::Hit)
    }
}

/// Runs a table on a fresh program with `open` flows; each hit starts from
/// zeroed flow stats so `last_seen_ns` must move.
fn run_table(policy: FragmentPolicy, open: &[(SocketAddr, SocketAddr)], cases: Vec<Case>) {
    let mut p = Prog::load(policy);
    for (s, d) in open {
        p.open(*s, *d);
    }
    assert!(!cases.is_empty());
    for c in cases {
        if let Some(k) = c.flow {
            p.flows
                .insert(&k, FlowStats::default())
                .expect("reset flow stats");
        }
        p.check(&c.name, &c.frame, c.want, c.flow);
    }
}

/// Both families, as (label, A, B, C): A->B is open, C is a stranger.
fn families() -> [(&'static str, SocketAddr, SocketAddr, SocketAddr); 2] {
    [("v4", a4(), b4(), c4()), ("v6", a6(), b6(), c6())]
}

#[test]
fn classification_table() {
    let mut open = Vec::new();
    let mut cases = vec![
        case("arp", arp(), Reason::NotIp),
        case(
            "arp in 802.1Q",
            {
                let mut f = arp();
                f.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
                f
            },
            Reason::NotIp,
        ),
        // The smallest frame BPF_PROG_TEST_RUN accepts: an EtherType and nothing else.
        case(
            "bare ethernet header, unknown type",
            {
                let mut f = arp();
                f.truncate(ETH_HLEN);
                f
            },
            Reason::NotIp,
        ),
        case(
            "bare ethernet header, type IPv4",
            Frame::udp(a4(), b4()).build().truncated(ETH_HLEN),
            Reason::Malformed,
        ),
        case(
            "bare ethernet header, type IPv6",
            Frame::udp(a6(), b6()).build().truncated(ETH_HLEN),
            Reason::Malformed,
        ),
        case(
            "ipv6 no next header",
            ipv6_no_next_header(
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
            ),
            Reason::NotUdp,
        ),
    ];
    for (fam, a, b, c) in families() {
        open.push((a, b));
        for (lo, hi) in RANGES {
            for p in [lo, hi] {
                open.push((a, port(b, p)));
            }
        }
        cases.extend([
            hit(format!("{fam} hit"), Frame::udp(a, b).build(), a, b),
            hit(
                format!("{fam} hit, empty payload"),
                Frame::udp(a, b).payload(0).build(),
                a,
                b,
            ),
            hit(
                format!("{fam} hit, 1400-byte payload"),
                Frame::udp(a, b).payload(1400).build(),
                a,
                b,
            ),
            hit(
                format!("{fam} hit, ethernet padding after the datagram"),
                {
                    // Minimum-size padding for IPv4 (18 bytes to reach 60),
                    // and a 6-byte trailer for IPv6, which needs none.
                    let mut f = Frame::udp(a, b).payload(0).build().bytes;
                    f.resize(f.len().max(54) + 6, 0xa5);
                    f
                },
                a,
                b,
            ),
            case(
                format!("{fam} miss, unknown source"),
                Frame::udp(c, b).build(),
                Reason::Miss,
            ),
            case(
                format!("{fam} miss, other source port"),
                Frame::udp(port(a, 12002), b).build(),
                Reason::Miss,
            ),
            case(
                format!("{fam} miss, other destination address"),
                Frame::udp(a, SocketAddr::new(c.ip(), b.port())).build(),
                Reason::Miss,
            ),
            case(
                format!("{fam} miss, other destination port"),
                Frame::udp(a, port(b, 10002)).build(),
                Reason::Miss,
            ),
            case(
                format!("{fam} miss, reverse direction not open"),
                Frame::udp(b, a).build(),
                Reason::Miss,
            ),
            case(
                format!("{fam} tcp to a media port"),
                Frame::tcp(c, b).build(),
                Reason::NotUdp,
            ),
            case(
                format!("{fam} icmp"),
                Frame::icmp(c, b).build(),
                Reason::NotUdp,
            ),
            case(
                format!("{fam} esp"),
                Frame::udp(c, b).l4(L4::Other(50)).build(),
                Reason::NotUdp,
            ),
            case(
                format!("{fam} udp to sip 5060"),
                Frame::udp(c, port(b, 5060)).build(),
                Reason::NotMediaPort,
            ),
            case(
                format!("{fam} udp to port 0"),
                Frame::udp(c, port(b, 0)).build(),
                Reason::NotMediaPort,
            ),
            case(
                format!("{fam} udp to port 65535"),
                Frame::udp(c, port(b, 65535)).build(),
                Reason::NotMediaPort,
            ),
            // VLAN: 802.1Q, 802.1ad, QinQ (802.1ad over 802.1Q), and a third tag.
            hit(
                format!("{fam} 802.1Q hit"),
                Frame::udp(a, b).vlan(TPID_8021Q, 10).build(),
                a,
                b,
            ),
            case(
                format!("{fam} 802.1Q miss"),
                Frame::udp(c, b).vlan(TPID_8021Q, 10).build(),
                Reason::Miss,
            ),
            hit(
                format!("{fam} 802.1ad hit"),
                Frame::udp(a, b).vlan(TPID_8021AD, 10).build(),
                a,
                b,
            ),
            hit(
                format!("{fam} QinQ hit"),
                Frame::udp(a, b)
                    .vlan(TPID_8021AD, 10)
                    .vlan(TPID_8021Q, 20)
                    .build(),
                a,
                b,
            ),
            case(
                format!("{fam} QinQ miss"),
                Frame::udp(c, b)
                    .vlan(TPID_8021AD, 10)
                    .vlan(TPID_8021Q, 20)
                    .build(),
                Reason::Miss,
            ),
            case(
                format!("{fam} QinQ not subject"),
                Frame::udp(c, port(b, 5060))
                    .vlan(TPID_8021AD, 10)
                    .vlan(TPID_8021Q, 20)
                    .build(),
                Reason::NotMediaPort,
            ),
            case(
                format!("{fam} double 802.1Q tcp"),
                Frame::tcp(c, b)
                    .vlan(TPID_8021Q, 10)
                    .vlan(TPID_8021Q, 20)
                    .build(),
                Reason::NotUdp,
            ),
            case(
                format!("{fam} three tags"),
                Frame::udp(a, b)
                    .vlan(TPID_8021AD, 1)
                    .vlan(TPID_8021Q, 2)
                    .vlan(TPID_8021Q, 3)
                    .build(),
                Reason::Malformed,
            ),
            case(
                format!("{fam} three tags, not even UDP"),
                Frame::tcp(a, b)
                    .vlan(TPID_8021Q, 1)
                    .vlan(TPID_8021Q, 2)
                    .vlan(TPID_8021Q, 3)
                    .build(),
                Reason::Malformed,
            ),
        ]);
        // Both edges of every range, from the open source (hit inside) and
        // from a stranger (miss inside); outside is never subject.
        for (lo, hi) in RANGES {
            for (p, inside) in [(lo - 1, false), (lo, true), (hi, true), (hi + 1, false)] {
                let dst = port(b, p);
                if inside {
                    cases.push(hit(
                        format!("{fam} hit at range edge {p}"),
                        Frame::udp(a, dst).build(),
                        a,
                        dst,
                    ));
                    cases.push(case(
                        format!("{fam} miss at range edge {p}"),
                        Frame::udp(c, dst).build(),
                        Reason::Miss,
                    ));
                } else {
                    cases.push(case(
                        format!("{fam} outside range edge {p}"),
                        Frame::udp(a, dst).build(),
                        Reason::NotMediaPort,
                    ));
                }
            }
        }
    }
    run_table(FragmentPolicy::Pass, &open, cases);
}

#[test]
fn ipv4_header_checks() {
    let (a, b, c) = (a4(), b4(), c4());
    let l3 = ETH_HLEN;
    let with = |f: Built, patch: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = f.bytes;
        patch(&mut bytes);
        bytes
    };
    let total = |f: &Built| u16::from_be_bytes([f.bytes[l3 + 2], f.bytes[l3 + 3]]);
    let plain = Frame::udp(a, b).build();
    let full_total = total(&plain);
    let cases = vec![
        hit(
            "options: 4 bytes (IHL 6)",
            Frame::udp(a, b).ipv4_options(&[1, 1, 1, 1]).build(),
            a,
            b,
        ),
        hit(
            "options: router alert",
            Frame::udp(a, b).ipv4_options(&[0x94, 4, 0, 0]).build(),
            a,
            b,
        ),
        hit(
            "options: 40 bytes (IHL 15)",
            Frame::udp(a, b).ipv4_options(&[1; 40]).build(),
            a,
            b,
        ),
        case(
            "options, miss",
            Frame::udp(c, b).ipv4_options(&[1; 12]).build(),
            Reason::Miss,
        ),
        case(
            "options, not subject",
            Frame::udp(c, port(b, 5060)).ipv4_options(&[1; 12]).build(),
            Reason::NotMediaPort,
        ),
        case(
            "IHL 0",
            with(plain.clone(), &|f| f[l3] = 0x40),
            Reason::Malformed,
        ),
        case(
            "IHL 4",
            with(plain.clone(), &|f| f[l3] = 0x44),
            Reason::Malformed,
        ),
        case(
            "IHL 15 without the options",
            with(plain.clone(), &|f| f[l3] = 0x4f),
            Reason::Malformed,
        ),
        case(
            "version 6 under EtherType IPv4",
            with(plain.clone(), &|f| f[l3] = 0x65),
            Reason::Malformed,
        ),
        case(
            "version 0",
            with(plain.clone(), &|f| f[l3] = 0x05),
            Reason::Malformed,
        ),
        case(
            "total length one past the frame",
            with(plain.clone(), &|f| {
                f[l3 + 2..l3 + 4].copy_from_slice(&(full_total + 1).to_be_bytes())
            }),
            Reason::Malformed,
        ),
        case(
            "total length 65535",
            with(plain.clone(), &|f| {
                f[l3 + 2..l3 + 4].copy_from_slice(&[0xff, 0xff])
            }),
            Reason::Malformed,
        ),
        case(
            "total length below IHL",
            with(plain.clone(), &|f| {
                f[l3 + 2..l3 + 4].copy_from_slice(&19u16.to_be_bytes())
            }),
            Reason::Malformed,
        ),
        case(
            "total length 0",
            with(plain.clone(), &|f| {
                f[l3 + 2..l3 + 4].copy_from_slice(&[0, 0])
            }),
            Reason::Malformed,
        ),
        // The datagram ends inside the UDP header; the rest of the header
        // sits in the frame's trailer, which the kernel trims away.
        case(
            "udp header outside the datagram",
            with(plain.clone(), &|f| {
                f[l3 + 2..l3 + 4].copy_from_slice(&24u16.to_be_bytes())
            }),
            Reason::Malformed,
        ),
        case(
            "udp header outside the datagram, options",
            {
                let f = Frame::udp(a, b).ipv4_options(&[1; 8]).payload(0).build();
                with(f, &|f| {
                    f[l3 + 2..l3 + 4].copy_from_slice(&28u16.to_be_bytes())
                })
            },
            Reason::Malformed,
        ),
        // Tiny-fragment evasion: a first fragment whose UDP header is only in
        // the Ethernet padding (here claiming SIP), followed by a second
        // fragment carrying the real header at offset 8.
        case(
            "first fragment with no udp header, port in padding",
            {
                let mut f = Frame::udp(c, port(b, 5060))
                    .ipv4_fragment(0, true)
                    .payload(0)
                    .build()
                    .bytes;
                f[l3 + 2..l3 + 4].copy_from_slice(&20u16.to_be_bytes());
                f.resize(60, 0);
                f
            },
            Reason::Malformed,
        ),
        case(
            "tcp, total length past the frame",
            {
                let f = Frame::tcp(c, b).build();
                let t = total(&f) + 1;
                with(f, &|f| f[l3 + 2..l3 + 4].copy_from_slice(&t.to_be_bytes()))
            },
            Reason::Malformed,
        ),
        // Fragments.
        hit(
            "first fragment (MF, offset 0) hit",
            Frame::udp(a, b).ipv4_fragment(0, true).build(),
            a,
            b,
        ),
        case(
            "first fragment miss",
            Frame::udp(c, b).ipv4_fragment(0, true).build(),
            Reason::Miss,
        ),
        case(
            "first fragment not subject",
            Frame::udp(c, port(b, 5060)).ipv4_fragment(0, true).build(),
            Reason::NotMediaPort,
        ),
        hit(
            "DF-like plain datagram (MF clear, offset 0)",
            Frame::udp(a, b).ipv4_fragment(0, false).build(),
            a,
            b,
        ),
        case(
            "tcp non-first fragment",
            Frame::tcp(c, b).ipv4_fragment(1, true).build(),
            Reason::NotUdp,
        ),
        // Non-first UDP fragments carry no port: this table runs under the
        // Pass policy; fragment_policies covers Drop.
        case(
            "non-first fragment, middle",
            Frame::udp(c, b).ipv4_fragment(1, true).build(),
            Reason::FragmentPass,
        ),
        case(
            "non-first fragment, last",
            Frame::udp(c, b).ipv4_fragment(185, false).build(),
            Reason::FragmentPass,
        ),
        case(
            "non-first fragment, max offset",
            Frame::udp(c, b).ipv4_fragment(0x1fff, false).build(),
            Reason::FragmentPass,
        ),
    ];
    run_table(FragmentPolicy::Pass, &[(a, b)], cases);
}

#[test]
fn ipv6_header_checks() {
    let (a, b, c) = (a6(), b6(), c6());
    let l3 = ETH_HLEN;
    let chain = |f: Frame, exts: &[Ext]| exts.iter().fold(f, |f, e| f.ext(*e));
    let hbh = Ext::HopByHop { len: 0 };
    let dst = Ext::DestOpts { len: 1 };
    let rt = Ext::Routing { len: 2 };
    let ah = Ext::Ah { len: 4 };
    let first = Ext::Fragment {
        offset: 0,
        more: true,
    };
    let later = Ext::Fragment {
        offset: 3,
        more: true,
    };
    let max_chain = [hbh, dst, rt, ah, first, dst];
    assert_eq!(max_chain.len(), MAX_IPV6_EXT_HEADERS);
    let over_chain = [hbh, dst, rt, ah, first, dst, dst];
    let with = |f: Built, patch: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = f.bytes;
        patch(&mut bytes);
        bytes
    };
    let plain = Frame::udp(a, b).build();
    let payload_len = u16::from_be_bytes([plain.bytes[l3 + 4], plain.bytes[l3 + 5]]);
    let cases = vec![
        hit(
            "hbh+dstopts+routing hit",
            chain(Frame::udp(a, b), &[hbh, dst, rt]).build(),
            a,
            b,
        ),
        case(
            "hbh+dstopts+routing miss",
            chain(Frame::udp(c, b), &[hbh, dst, rt]).build(),
            Reason::Miss,
        ),
        case(
            "hbh+dstopts+routing not subject",
            chain(Frame::udp(c, port(b, 5060)), &[hbh, dst, rt]).build(),
            Reason::NotMediaPort,
        ),
        case(
            "hbh+dstopts+routing tcp",
            chain(Frame::tcp(c, b), &[hbh, dst, rt]).build(),
            Reason::NotUdp,
        ),
        case(
            "hbh+dstopts icmpv6",
            chain(Frame::icmp(c, b), &[hbh, dst]).build(),
            Reason::NotUdp,
        ),
        hit("AH hit", chain(Frame::udp(a, b), &[ah]).build(), a, b),
        hit(
            "large hop-by-hop (2 KiB) hit",
            chain(Frame::udp(a, b), &[Ext::HopByHop { len: 255 }]).build(),
            a,
            b,
        ),
        hit(
            format!("{MAX_IPV6_EXT_HEADERS} headers (the limit) hit"),
            chain(Frame::udp(a, b), &max_chain).build(),
            a,
            b,
        ),
        case(
            format!("{MAX_IPV6_EXT_HEADERS} headers miss"),
            chain(Frame::udp(c, b), &max_chain).build(),
            Reason::Miss,
        ),
        case(
            format!("{} headers", MAX_IPV6_EXT_HEADERS + 1),
            chain(Frame::udp(a, b), &over_chain).build(),
            Reason::ExtHeaderLimit,
        ),
        case(
            format!("{} headers, tcp behind them", MAX_IPV6_EXT_HEADERS + 1),
            chain(Frame::tcp(a, b), &over_chain).build(),
            Reason::ExtHeaderLimit,
        ),
        case(
            "no next header behind an option header",
            chain(Frame::udp(c, b).l4(L4::Other(59)).payload(0), &[dst]).build(),
            Reason::NotUdp,
        ),
        // Fragments.
        hit(
            "first fragment hit",
            chain(Frame::udp(a, b), &[first]).build(),
            a,
            b,
        ),
        hit(
            "first fragment behind hbh hit",
            chain(Frame::udp(a, b), &[hbh, first, dst]).build(),
            a,
            b,
        ),
        case(
            "first fragment miss",
            chain(Frame::udp(c, b), &[first]).build(),
            Reason::Miss,
        ),
        case(
            "first fragment not subject",
            chain(Frame::udp(c, port(b, 5060)), &[first]).build(),
            Reason::NotMediaPort,
        ),
        case(
            "first fragment with the udp header outside the payload",
            {
                let f = chain(Frame::udp(c, port(b, 5060)), &[first])
                    .payload(0)
                    .build();
                with(f, &|f| {
                    f[l3 + 4..l3 + 6].copy_from_slice(&8u16.to_be_bytes());
                })
            },
            Reason::Malformed,
        ),
        case(
            "non-first fragment",
            chain(Frame::udp(c, b), &[later]).build(),
            Reason::FragmentPass,
        ),
        case(
            "non-first fragment behind hbh",
            chain(Frame::udp(c, b), &[hbh, later]).build(),
            Reason::FragmentPass,
        ),
        case(
            "non-first fragment, last",
            chain(
                Frame::udp(c, b),
                &[Ext::Fragment {
                    offset: 9,
                    more: false,
                }],
            )
            .build(),
            Reason::FragmentPass,
        ),
        case(
            "non-first fragment of tcp",
            chain(Frame::tcp(c, b), &[later]).build(),
            Reason::NotUdp,
        ),
        case(
            "non-first fragment, dstopts next",
            chain(Frame::udp(c, b), &[later, dst]).build(),
            Reason::FragmentPass,
        ),
        // Inconsistent headers.
        case(
            "payload length one past the frame",
            with(plain.clone(), &|f| {
                f[l3 + 4..l3 + 6].copy_from_slice(&(payload_len + 1).to_be_bytes())
            }),
            Reason::Malformed,
        ),
        case(
            "payload length 65535",
            with(plain.clone(), &|f| {
                f[l3 + 4..l3 + 6].copy_from_slice(&[0xff, 0xff])
            }),
            Reason::Malformed,
        ),
        case(
            "udp header outside the payload",
            with(plain.clone(), &|f| {
                f[l3 + 4..l3 + 6].copy_from_slice(&4u16.to_be_bytes())
            }),
            Reason::Malformed,
        ),
        case(
            "version 4 under EtherType IPv6",
            with(plain.clone(), &|f| f[l3] = 0x40),
            Reason::Malformed,
        ),
        case(
            "hop-by-hop length past the frame",
            {
                let f = chain(Frame::udp(a, b), &[hbh]).build();
                with(f, &|f| f[l3 + 40 + 1] = 200)
            },
            Reason::Malformed,
        ),
        case(
            "AH length past the frame",
            {
                let f = chain(Frame::udp(a, b), &[ah]).build();
                with(f, &|f| f[l3 + 40 + 1] = 200)
            },
            Reason::Malformed,
        ),
    ];
    run_table(FragmentPolicy::Pass, &[(a, b)], cases);
}

#[test]
fn fragment_policies() {
    let v4_later = |s, d| Frame::udp(s, d).ipv4_fragment(2, true).build();
    let v6_later = |s, d| {
        Frame::udp(s, d)
            .ext(Ext::Fragment {
                offset: 2,
                more: false,
            })
            .build()
    };
    for (policy, want) in [
        (FragmentPolicy::Pass, Reason::FragmentPass),
        (FragmentPolicy::Drop, Reason::FragmentDrop),
    ] {
        let cases = vec![
            case(
                format!("{policy:?}: v4 non-first"),
                v4_later(c4(), b4()),
                want,
            ),
            case(
                format!("{policy:?}: v4 non-first to sip"),
                v4_later(c4(), port(b4(), 5060)),
                want,
            ),
            case(
                format!("{policy:?}: v6 non-first"),
                v6_later(c6(), b6()),
                want,
            ),
            case(
                format!("{policy:?}: v6 non-first behind hbh"),
                {
                    Frame::udp(c6(), b6())
                        .ext(Ext::HopByHop { len: 0 })
                        .ext(Ext::Fragment {
                            offset: 2,
                            more: true,
                        })
                        .build()
                },
                want,
            ),
            // The policy touches nothing but non-first UDP fragments.
            hit(
                format!("{policy:?}: v4 first fragment hit"),
                Frame::udp(a4(), b4()).ipv4_fragment(0, true).build(),
                a4(),
                b4(),
            ),
            case(
                format!("{policy:?}: v4 first fragment miss"),
                Frame::udp(c4(), b4()).ipv4_fragment(0, true).build(),
                Reason::Miss,
            ),
            hit(
                format!("{policy:?}: v6 first fragment hit"),
                Frame::udp(a6(), b6())
                    .ext(Ext::Fragment {
                        offset: 0,
                        more: true,
                    })
                    .build(),
                a6(),
                b6(),
            ),
            case(
                format!("{policy:?}: v4 non-first tcp"),
                Frame::tcp(c4(), b4()).ipv4_fragment(2, true).build(),
                Reason::NotUdp,
            ),
            case(
                format!("{policy:?}: v6 non-first tcp"),
                Frame::tcp(c6(), b6())
                    .ext(Ext::Fragment {
                        offset: 2,
                        more: true,
                    })
                    .build(),
                Reason::NotUdp,
            ),
        ];
        run_table(policy, &[(a4(), b4()), (a6(), b6())], cases);
    }
}

/// Cuts valid frames at every length from the Ethernet header to the end,
/// which covers every header boundary and one byte into every header, in
/// three ways:
/// - raw: the IP length fields still claim the whole datagram;
/// - fixed: the IP length fields are rewritten to match the cut frame;
/// - trailer: the IP length fields are rewritten as in "fixed", but the cut-off
///   bytes stay in the frame as a trailer outside the datagram.
#[test]
fn truncation_at_every_length() {
    let (a, b) = (a4(), b4());
    let (a6, b6) = (a6(), b6());
    let frames = [
        ("v4", Frame::udp(a, b).payload(4).build(), (a, b)),
        (
            "v4 802.1Q options",
            Frame::udp(a, b)
                .vlan(TPID_8021Q, 5)
                .ipv4_options(&[1; 8])
                .payload(4)
                .build(),
            (a, b),
        ),
        ("v6", Frame::udp(a6, b6).payload(4).build(), (a6, b6)),
        (
            "v6 QinQ ext chain",
            Frame::udp(a6, b6)
                .vlan(TPID_8021AD, 5)
                .vlan(TPID_8021Q, 6)
                .ext(Ext::HopByHop { len: 0 })
                .ext(Ext::DestOpts { len: 1 })
                .ext(Ext::Routing { len: 0 })
                .ext(Ext::Ah { len: 2 })
                .ext(Ext::Fragment {
                    offset: 0,
                    more: true,
                })
                .payload(4)
                .build(),
            (a6, b6),
        ),
    ];
    let mut p = Prog::load(FragmentPolicy::Pass);
    for (_, _, (s, d)) in &frames {
        p.open(*s, *d);
    }
    for (name, built, (s, d)) in &frames {
        let k = key(*s, *d);
        let full = built.bytes.len();
        let l3 = built.l3_offset();
        let v4 = built.header(HeaderKind::Ipv4).is_some();
        let udp_end = built.header(HeaderKind::Udp).expect("udp header").end;
        for len in ETH_HLEN..=full {
            let raw = built.truncated(len);
            let want_raw = if len == full {
                Reason::Hit
            } else {
                Reason::Malformed
            };
            p.flows.insert(&k, FlowStats::default()).unwrap();
            p.check(
                &format!("{name}: raw cut at {len}/{full}"),
                &raw,
                want_raw,
                Some(k),
            );

            // Rewrite the length field when the cut leaves it in the frame.
            let (len_at, hdr) = if v4 { (l3 + 2, 0) } else { (l3 + 4, 40) };
            if len < len_at + 2 {
                continue;
            }
            let claimed = (len - l3).saturating_sub(hdr) as u16;
            let want = if len >= udp_end {
                Reason::Hit
            } else {
                Reason::Malformed
            };
            let mut fixed = raw.clone();
            fixed[len_at..len_at + 2].copy_from_slice(&claimed.to_be_bytes());
            if v4 && len >= l3 + 12 {
                // A stale header checksum does not matter to the program, but
                // keep the frame as valid as the cut allows.
                fixed[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
            }
            p.flows.insert(&k, FlowStats::default()).unwrap();
            p.check(
                &format!("{name}: fixed cut at {len}/{full}"),
                &fixed,
                want,
                Some(k),
            );

            let mut trailer = built.bytes.clone();
            trailer[..len].copy_from_slice(&fixed);
            p.flows.insert(&k, FlowStats::default()).unwrap();
            p.check(
                &format!("{name}: trailer cut at {len}/{full}"),
                &trailer,
                want,
                Some(k),
            );
        }
    }
}

/// BPF_PROG_TEST_RUN (like every driver) refuses frames shorter than an
/// Ethernet header, so the program's "runt frame" path cannot be reached from
/// here; this pins that assumption down.
#[test]
fn frames_shorter_than_ethernet_never_reach_the_program() {
    let p = Prog::load(FragmentPolicy::Pass);
    let frame = arp();
    for len in 0..ETH_HLEN {
        let before = p.counters();
        let r = p.xdp().test_run(TestRunOptions {
            data_in: Some(&frame[..len]),
            repeat: 1,
            ..Default::default()
        });
        assert!(
            r.is_err(),
            "the kernel ran the program on a {len}-byte frame"
        );
        assert_eq!(before, p.counters(), "{len}-byte frame was counted");
    }
}

/// With `repeat`, every run is counted, so the counters are exact per run.
#[test]
fn repeat_counts_every_run() {
    let mut p = Prog::load(FragmentPolicy::Pass);
    p.open(a4(), b4());
    let frame = Frame::udp(a4(), b4()).build().bytes;
    let before = p.counters()[Reason::Hit as usize];
    assert_eq!(test_run(p.xdp(), &frame, 1000), XDP_PASS);
    let after = p.counters()[Reason::Hit as usize];
    assert_eq!(after.packets - before.packets, 1000);
    assert_eq!(after.bytes - before.bytes, 1000 * frame.len() as u64);
    let s = p.stats(&key(a4(), b4())).unwrap();
    assert_eq!((s.packets, s.bytes), (1000, 1000 * frame.len() as u64));
}

/// The daemon's [`FlowMap`] keeps each family in its own kernel map behind
/// one API: what it inserts the program hits, what it removes the program
/// misses, and its iteration sees both maps.
#[test]
fn flow_map_serves_both_families() {
    let mut p = Prog::load(FragmentPolicy::Pass);
    let flows = [(a4(), b4()), (b4(), a4()), (a6(), b6()), (b6(), a6())];
    assert!(p.flows.is_empty().unwrap());
    for (s, d) in flows {
        assert_eq!(p.flows.insert_new(&key(s, d)).unwrap(), Inserted::New);
    }
    assert_eq!(p.flows.len().unwrap(), flows.len());
    assert!(!p.flows.is_empty().unwrap());

    for (s, d) in flows {
        let frame = Frame::udp(s, d).build().bytes;
        p.check(
            &format!("{s} -> {d} open"),
            &frame,
            Reason::Hit,
            Some(key(s, d)),
        );
        // An existing flow keeps its counters.
        assert_eq!(p.flows.insert_new(&key(s, d)).unwrap(), Inserted::Existed);
        assert_eq!(p.stats(&key(s, d)).unwrap().packets, 1, "{s} -> {d}");
    }
    let mut seen: Vec<(FlowKey, u64)> = p
        .flows
        .entries()
        .map(|e| e.map(|(k, v)| (k, v.packets)))
        .collect::<Result<_, _>>()
        .unwrap();
    seen.sort();
    let mut want: Vec<(FlowKey, u64)> = flows.iter().map(|(s, d)| (key(*s, *d), 1)).collect();
    want.sort();
    assert_eq!(seen, want);

    // Close one direction per family; the other stays open.
    for (s, d) in [(a4(), b4()), (a6(), b6())] {
        assert!(p.flows.remove(&key(s, d)).unwrap());
        assert!(!p.flows.remove(&key(s, d)).unwrap());
        assert_eq!(p.stats(&key(s, d)), None);
        let frame = Frame::udp(s, d).build().bytes;
        p.check(&format!("{s} -> {d} closed"), &frame, Reason::Miss, None);
        // Zeroed stats, so the stamp must move within this coarse-clock tick.
        p.flows.insert(&key(d, s), FlowStats::default()).unwrap();
        let frame = Frame::udp(d, s).build().bytes;
        p.check(
            &format!("{d} -> {s} still open"),
            &frame,
            Reason::Hit,
            Some(key(d, s)),
        );
    }
    assert_eq!(p.flows.len().unwrap(), 2);

    // A key no map can hold is refused, not silently stored elsewhere.
    let tcp = FlowKey {
        proto: 6,
        ..key(a4(), b4())
    };
    assert!(p.flows.insert_new(&tcp).is_err());
    assert_eq!(p.flows.len().unwrap(), 2);
}
