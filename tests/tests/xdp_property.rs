//! Property test of the XDP program: random frames and mutations of valid
//! ones (VLAN/QinQ, IPv4 options and fragments, IPv6 extension chains and
//! fragments, truncation, bit flips, rewritten length fields, random
//! lengths) through `BPF_PROG_TEST_RUN`, one run per frame, with a set of
//! flows open.
//!
//! An independent reference classifier, built on `etherparse`'s header
//! parsers, decides for every frame whether a receiving Linux host could
//! deliver it as UDP to a protected media port, and with which exact tuple.
//! It models the kernel, not the program: only 802.1Q/802.1ad tags are VLAN,
//! IP length fields bound the datagram, any number of IPv6 extension headers
//! in any order is walked, and it is laxer than the kernel wherever that can
//! only add frames to check (checksums, option contents, AH length). Checked:
//!
//! - safety: a frame the reference sees as UDP to a media port passes only
//!   when its exact tuple is open;
//! - accounting: the per-reason counter deltas add up to the frames (and
//!   bytes) sent, pass reasons to the passes and drop reasons to the drops;
//!   the open flows' statistics add up to the hits, and each flow counted at
//!   least the passed frames the reference attributes to it;
//! - liveness: an unmutated, well-formed frame passes unless the reference
//!   says it is UDP to a media port without an open pinhole.
//!
//! Seeded: the seed is printed, and `PINHOLE_PROPTEST_SEED=<n>` replays a
//! run; `PINHOLE_PROPTEST_FRAMES=<n>` changes the number of frames (at least
//! 200,000 by default; fewer replays the start of the same run).
//!
//! Needs root (CAP_BPF + CAP_NET_ADMIN). It never skips.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Instant,
};

use etherparse::{
    Ethernet2HeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice,
    Ipv6RawExtHeaderSlice, SingleVlanHeaderSlice, UdpHeaderSlice,
};
use pinhole_common::{
    Action, Config, FlowKey, FlowStats, FragmentPolicy, Reason, FAMILY_V4, FAMILY_V6, IPPROTO_UDP,
    MAX_IPV6_EXT_HEADERS, MAX_VLAN_TAGS,
};
use pinhole_integration::frames::{Ext, Frame, L4, TPID_8021AD, TPID_8021Q};
use pinhole_integration::xdp::{self, flow_key, TestProg, ETH_HLEN, XDP_DROP, XDP_PASS};

const DEFAULT_FRAMES: usize = 200_000;
/// The media ranges the program is loaded with.
const RANGES: [(u16, u16); 2] = [(10000, 20000), (30000, 30000)];
/// Open flows per family.
const OPEN_FLOWS: usize = 40;
/// Violations shown in the failure message.
const SHOWN: usize = 8;

fn config() -> Config {
    xdp::config(&RANGES, FragmentPolicy::Pass)
}

fn is_media_port(port: u16) -> bool {
    RANGES.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port))
}

/// splitmix64: small, fast and good enough to drive frame generation.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// The reference classifier: how a Linux receiver would read the frame.
mod reference {
    use super::*;

    /// UDP to a media port with this exact tuple, or anything else.
    pub fn media_tuple(frame: &[u8]) -> Option<FlowKey> {
        let eth = Ethernet2HeaderSlice::from_slice(frame).ok()?;
        let mut ethertype = eth.ether_type().0;
        let mut rest = &frame[eth.slice().len()..];
        // The kernel's VLAN code knows these two TPIDs (eth_type_vlan);
        // anything else (0x9100, …) has no protocol handler.
        while ethertype == TPID_8021Q || ethertype == TPID_8021AD {
            let tag = SingleVlanHeaderSlice::from_slice(rest).ok()?;
            ethertype = tag.ether_type().0;
            rest = &rest[tag.slice().len()..];
        }
        match ethertype {
            0x0800 => ipv4(rest),
            0x86dd => ipv6(rest),
            _ => None,
        }
    }

    fn ipv4(packet: &[u8]) -> Option<FlowKey> {
        // Version 4, IHL >= 5, the header inside the frame.
        let ip = Ipv4HeaderSlice::from_slice(packet).ok()?;
        let ihl = ip.slice().len();
        let total = usize::from(ip.total_len());
        // ip_rcv drops these, then trims the frame to the datagram.
        if total < ihl || total > packet.len() {
            return None;
        }
        if ip.protocol().0 != IPPROTO_UDP || ip.fragments_offset().value() != 0 {
            // Not UDP, or a later fragment: no UDP header in this frame.
            return None;
        }
        let udp = UdpHeaderSlice::from_slice(&packet[ihl..total]).ok()?;
        let (src, dst) = (ip.source(), ip.destination());
        media(
            SocketAddr::new(Ipv4Addr::from(src).into(), udp.source_port()),
            SocketAddr::new(Ipv4Addr::from(dst).into(), udp.destination_port()),
        )
    }

    fn ipv6(packet: &[u8]) -> Option<FlowKey> {
        let ip = Ipv6HeaderSlice::from_slice(packet).ok()?;
        let start = ip.slice().len();
        let end = start + usize::from(ip.payload_length());
        if end > packet.len() {
            return None;
        }
        // The datagram ends where the payload length says (a zero length
        // announces a jumbogram, impossible in a frame this size).
        let datagram = &packet[start..end];
        let mut next = ip.next_header().0;
        let mut at = 0;
        // Any number of extension headers, in any order: every header is at
        // least 8 bytes, so the walk ends.
        loop {
            let rest = &datagram[at..];
            match next {
                // Hop-by-hop, routing, destination options.
                0 | 43 | 60 => {
                    let ext = Ipv6RawExtHeaderSlice::from_slice(rest).ok()?;
                    next = ext.next_header().0;
                    at += ext.slice().len();
                }
                // AH, read by hand: etherparse refuses a zero length field,
                // which the program accepts (an 8-byte header).
                51 => {
                    let len = (usize::from(*rest.get(1)?) + 2) * 4;
                    if rest.len() < len {
                        return None;
                    }
                    next = rest[0];
                    at += len;
                }
                44 => {
                    let frag = Ipv6FragmentHeaderSlice::from_slice(rest).ok()?;
                    if frag.fragment_offset().value() != 0 {
                        return None;
                    }
                    next = frag.next_header().0;
                    at += frag.slice().len();
                }
                IPPROTO_UDP => {
                    let udp = UdpHeaderSlice::from_slice(rest).ok()?;
                    let (src, dst) = (ip.source(), ip.destination());
                    return media(
                        SocketAddr::new(Ipv6Addr::from(src).into(), udp.source_port()),
                        SocketAddr::new(Ipv6Addr::from(dst).into(), udp.destination_port()),
                    );
                }
                _ => return None,
            }
        }
    }

    fn media(src: SocketAddr, dst: SocketAddr) -> Option<FlowKey> {
        is_media_port(dst.port()).then(|| flow_key(src, dst))
    }
}

/// Addresses from few hosts, so that random tuples often almost match.
fn host(rng: &mut Rng, v4: bool) -> IpAddr {
    if v4 {
        let net = rng.pick(&[[192, 0, 2], [198, 51, 100], [203, 0, 113]]);
        Ipv4Addr::new(net[0], net[1], net[2], 1 + rng.below(6) as u8).into()
    } else {
        Ipv6Addr::new(
            0x2001,
            0xdb8,
            rng.below(3) as u16,
            0,
            0,
            0,
            0,
            1 + rng.below(6) as u16,
        )
        .into()
    }
}

fn port(rng: &mut Rng) -> u16 {
    match rng.below(10) {
        0..=5 => 10000 + rng.below(10001) as u16,
        6 => rng.pick(&[9999, 10000, 20000, 20001, 29999, 30000, 30001]),
        7 => rng.pick(&[0, 53, 5060, 5061, 65535]),
        _ => rng.next() as u16,
    }
}

fn endpoint(rng: &mut Rng, v4: bool) -> SocketAddr {
    SocketAddr::new(host(rng, v4), port(rng))
}

/// The flows the program holds, both families.
fn open_flows(rng: &mut Rng) -> Vec<(SocketAddr, SocketAddr)> {
    let mut flows = HashSet::new();
    while flows.len() < 2 * OPEN_FLOWS {
        let v4 = flows.len() < OPEN_FLOWS;
        let src = endpoint(rng, v4);
        let mut dst = endpoint(rng, v4);
        dst.set_port(10000 + rng.below(10001) as u16);
        if src != dst {
            flows.insert((src, dst));
        }
    }
    let mut flows: Vec<_> = flows.into_iter().collect();
    flows.sort();
    flows
}

/// The tuple of a generated frame: an open flow, a near miss of one, or
/// anything.
fn tuple(rng: &mut Rng, open: &[(SocketAddr, SocketAddr)]) -> (SocketAddr, SocketAddr) {
    let (mut src, mut dst) = open[rng.below(open.len())];
    match rng.below(10) {
        0..=3 => {}
        4 => src.set_ip(host(rng, src.is_ipv4())),
        5 => src.set_port(port(rng)),
        6 => dst.set_ip(host(rng, dst.is_ipv4())),
        7 => dst.set_port(port(rng)),
        8 => (src, dst) = (dst, src),
        _ => {
            let v4 = rng.chance(50);
            (src, dst) = (endpoint(rng, v4), endpoint(rng, v4));
        }
    }
    (src, dst)
}

fn ext(rng: &mut Rng) -> Ext {
    let len = rng.below(4) as u8;
    match rng.below(6) {
        0 => Ext::HopByHop { len },
        1 => Ext::Routing { len },
        2 => Ext::DestOpts { len },
        3 => Ext::Ah { len: len * 2 },
        _ => Ext::Fragment {
            offset: if rng.chance(60) {
                0
            } else {
                1 + rng.below(100) as u16
            },
            more: rng.chance(50),
        },
    }
}

/// A well-formed frame and whether the program must classify it exactly
/// (at most [`MAX_VLAN_TAGS`] VLAN tags and [`MAX_IPV6_EXT_HEADERS`]
/// extension headers: beyond those the program fails closed).
fn valid_frame(rng: &mut Rng, open: &[(SocketAddr, SocketAddr)]) -> (Vec<u8>, bool) {
    let (src, dst) = tuple(rng, open);
    let l4 = match rng.below(20) {
        0 => L4::Tcp,
        1 => L4::Icmp,
        2 => L4::Other(rng.pick(&[50, 59, 132, 0, 43, 44, 60, 255])),
        _ => L4::Udp,
    };
    let mut f = Frame::udp(src, dst).l4(l4);
    // Over IPv6, an extension header number with no such header behind it
    // makes the payload bytes a bogus chain: anything may come of it.
    let mut exact = src.is_ipv4() || !matches!(l4, L4::Other(0 | 43 | 44 | 51 | 60));
    let tags = match rng.below(20) {
        0..=11 => 0,
        12..=15 => 1,
        16..=18 => 2,
        _ => 3,
    };
    for _ in 0..tags {
        // 0x9100, the pre-standard QinQ TPID, is no VLAN to Linux (nor to
        // the program): such a frame is not IP.
        let tpid = match rng.below(10) {
            0 => 0x9100,
            1..=5 => TPID_8021Q,
            _ => TPID_8021AD,
        };
        f = f.vlan(tpid, rng.below(4096) as u16);
    }
    exact &= tags <= MAX_VLAN_TAGS;
    if src.is_ipv4() {
        if rng.chance(20) {
            let options: Vec<u8> = (0..1 + rng.below(40)).map(|_| rng.byte()).collect();
            f = f.ipv4_options(&options);
        }
        if rng.chance(15) {
            let offset = if rng.chance(50) {
                0
            } else {
                rng.below(8192) as u16
            };
            f = f.ipv4_fragment(offset, rng.chance(50));
        }
    } else if rng.chance(35) {
        let n = 1 + rng.below(MAX_IPV6_EXT_HEADERS + 2);
        exact &= n <= MAX_IPV6_EXT_HEADERS;
        for _ in 0..n {
            f = f.ext(ext(rng));
        }
    }
    let payload = match rng.below(10) {
        0 => 0,
        1 => rng.below(1400),
        _ => rng.below(160),
    };
    (f.payload(payload).build().bytes, exact)
}

/// Where the IP header starts, skipping any VLAN-looking tags.
fn l3_offset(frame: &[u8]) -> usize {
    let mut at = 12;
    while at + 4 <= frame.len()
        && matches!(
            u16::from_be_bytes([frame[at], frame[at + 1]]),
            TPID_8021Q | TPID_8021AD | 0x9100
        )
    {
        at += 4;
    }
    at + 2
}

const INTERESTING: [u8; 14] = [
    0x00, 0x01, 0x04, 0x05, 0x06, 0x08, 0x0f, 0x11, 0x2c, 0x3b, 0x45, 0x60, 0x7f, 0xff,
];

/// One to four random changes to `frame`.
fn mutate(rng: &mut Rng, frame: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let l3 = l3_offset(frame).min(frame.len());
        // Most changes land in the headers.
        let headers = frame.len().min(l3 + 120);
        let at = |rng: &mut Rng, len: usize| rng.below(len.max(1));
        match rng.below(11) {
            0 => {
                let len = ETH_HLEN + rng.below(frame.len() - ETH_HLEN + 1);
                frame.truncate(len);
            }
            1 | 2 => {
                for _ in 0..1 + rng.below(3) {
                    let i = at(rng, headers);
                    frame[i] ^= 1 << rng.below(8);
                }
            }
            3 => {
                let i = at(rng, headers);
                frame[i] = rng.pick(&INTERESTING);
            }
            4 => {
                // An IP length field: IPv4 total length or IPv6 payload
                // length (both read as one of the two), nudged or random.
                let i = l3 + rng.pick(&[2, 4]);
                if i + 2 <= frame.len() {
                    let old = u16::from_be_bytes([frame[i], frame[i + 1]]);
                    let new = match rng.below(3) {
                        0 => old.wrapping_add(1 + rng.below(16) as u16),
                        1 => old.wrapping_sub(1 + rng.below(16) as u16),
                        _ => rng.next() as u16,
                    };
                    frame[i..i + 2].copy_from_slice(&new.to_be_bytes());
                }
            }
            5 => {
                // IPv4 version/IHL, or the first IPv6 extension's length.
                let i = if rng.chance(50) { l3 } else { l3 + 41 };
                if i < frame.len() {
                    frame[i] = rng.byte();
                }
            }
            6 => {
                let n = 1 + rng.below(64);
                frame.extend((0..n).map(|_| rng.byte()));
            }
            7 => {
                let i = at(rng, frame.len());
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                frame.splice(i..i, bytes);
            }
            8 => {
                let i = at(rng, frame.len());
                let n = (1 + rng.below(8)).min(frame.len() - i);
                frame.drain(i..i + n);
            }
            9 => {
                // An EtherType or TPID.
                let i = if rng.chance(50) { 12 } else { l3 - 2 };
                let t: u16 = rng.pick(&[0x0800, 0x86dd, 0x8100, 0x88a8, 0x9100, 0x0806, 0x8847]);
                frame[i..i + 2].copy_from_slice(&t.to_be_bytes());
            }
            _ => {
                // IPv4 flags and fragment offset, or IPv6 next header.
                let i = l3 + rng.pick(&[6, 7, 9]);
                if i < frame.len() {
                    frame[i] = rng.pick(&INTERESTING);
                }
            }
        }
        if frame.len() < ETH_HLEN {
            frame.resize(ETH_HLEN, 0);
        }
    }
}

/// Random bytes, mostly with an IP EtherType and a plausible first IP byte
/// so that some reach the transport header.
fn random_frame(rng: &mut Rng) -> Vec<u8> {
    let len = if rng.chance(90) {
        ETH_HLEN + rng.below(120)
    } else {
        ETH_HLEN + rng.below(1600)
    };
    let mut f: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
    if rng.chance(80) {
        let v4 = rng.chance(50);
        let t: u16 = if v4 { 0x0800 } else { 0x86dd };
        f[12..14].copy_from_slice(&t.to_be_bytes());
        if len > ETH_HLEN && rng.chance(70) {
            f[ETH_HLEN] = if v4 { 0x45 } else { 0x60 };
        }
    }
    f
}

#[derive(Debug)]
struct Violation {
    index: usize,
    origin: &'static str,
    what: String,
    frame: Vec<u8>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn random_and_mutated_frames_never_pass_to_a_closed_media_port() {
    let seed = std::env::var("PINHOLE_PROPTEST_SEED")
        .ok()
        .map(|s| s.parse().expect("PINHOLE_PROPTEST_SEED is a u64"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos() as u64
        });
    let frames: usize = std::env::var("PINHOLE_PROPTEST_FRAMES")
        .ok()
        .map(|s| s.parse().expect("PINHOLE_PROPTEST_FRAMES is a count"))
        .unwrap_or(DEFAULT_FRAMES);
    eprintln!(
        "xdp_property: seed {seed} (replay with PINHOLE_PROPTEST_SEED={seed}), {frames} frames"
    );
    let mut rng = Rng(seed);

    let mut prog = TestProg::load(&config(), 1024);
    let open = open_flows(&mut rng);
    for (src, dst) in &open {
        prog.open(*src, *dst);
    }
    let open_keys: HashSet<FlowKey> = open.iter().map(|(s, d)| flow_key(*s, *d)).collect();
    let before = prog.counters();

    let mut violations = Vec::new();
    let mut passed_to: HashMap<FlowKey, u64> = HashMap::new();
    let (mut passes, mut drops, mut bytes) = (0u64, 0u64, 0u64);
    let mut by_origin: HashMap<&'static str, usize> = HashMap::new();
    let (mut media_frames, mut exact_frames) = (0usize, 0usize);
    let started = Instant::now();
    for index in 0..frames {
        let (frame, origin, exact) = match rng.below(10) {
            0..=2 => {
                let (f, exact) = valid_frame(&mut rng, &open);
                (f, "valid", exact)
            }
            3..=8 => {
                let (mut f, _) = valid_frame(&mut rng, &open);
                mutate(&mut rng, &mut f);
                (f, "mutated", false)
            }
            _ => (random_frame(&mut rng), "random", false),
        };
        *by_origin.entry(origin).or_default() += 1;
        let verdict = prog.run(&frame);
        bytes += frame.len() as u64;
        match verdict {
            XDP_PASS => passes += 1,
            XDP_DROP => drops += 1,
            other => violations.push(Violation {
                index,
                origin,
                what: format!("XDP action {other}"),
                frame: frame.clone(),
            }),
        }
        let media = reference::media_tuple(&frame);
        media_frames += usize::from(media.is_some());
        if let (Some(key), XDP_PASS) = (media, verdict) {
            if open_keys.contains(&key) {
                *passed_to.entry(key).or_default() += 1;
            } else {
                violations.push(Violation {
                    index,
                    origin,
                    what: format!("passed UDP to a media port with no open pinhole: {key:?}"),
                    frame: frame.clone(),
                });
            }
        }
        if exact {
            exact_frames += 1;
            let closed_media = media.is_some_and(|k| !open_keys.contains(&k));
            let want = if closed_media { XDP_DROP } else { XDP_PASS };
            if verdict != want {
                violations.push(Violation {
                    index,
                    origin,
                    what: format!("well-formed frame got action {verdict}, expected {want}"),
                    frame,
                });
            }
        }
    }
    let elapsed = started.elapsed();
    let after = prog.counters();

    let mut report = format!(
        "seed {seed}: {frames} frames in {:.2} s ({:.0}/s): {passes} passed, {drops} dropped; \
         {media_frames} UDP to a media port per the reference, {exact_frames} checked exactly; \
         origins {by_origin:?}\n",
        elapsed.as_secs_f64(),
        frames as f64 / elapsed.as_secs_f64()
    );
    let (mut sum_packets, mut sum_bytes, mut pass_packets, mut drop_packets) = (0, 0, 0, 0);
    for r in Reason::ALL {
        let (b, a) = (before[r as usize], after[r as usize]);
        let (dp, db) = (a.packets - b.packets, a.bytes - b.bytes);
        report.push_str(&format!("  {:<16} {dp:>8}\n", r.name()));
        sum_packets += dp;
        sum_bytes += db;
        match r.action() {
            Action::Pass => pass_packets += dp,
            Action::Drop => drop_packets += dp,
            // This run has forwarding off.
            Action::Redirect => assert_eq!(dp, 0, "{} without --forward xdp", r.name()),
        }
    }
    eprint!("{report}");
    assert_eq!(
        sum_packets, frames as u64,
        "counter deltas vs frames sent\n{report}"
    );
    assert_eq!(
        sum_bytes, bytes,
        "counter byte deltas vs bytes sent\n{report}"
    );
    assert_eq!(
        pass_packets, passes,
        "pass-reason counters vs XDP_PASS\n{report}"
    );
    assert_eq!(
        drop_packets, drops,
        "drop-reason counters vs XDP_DROP\n{report}"
    );

    let hits = after[Reason::Hit as usize].packets - before[Reason::Hit as usize].packets;
    let mut flow_packets = 0;
    for key in &open_keys {
        let stats: FlowStats = prog.stats(key).expect("open flow still in the map");
        flow_packets += stats.packets;
        let passed = passed_to.get(key).copied().unwrap_or(0);
        assert!(
            stats.packets >= passed,
            "flow {key:?} counted {} packets, but {passed} frames the reference attributes \
             to it passed (seed {seed})",
            stats.packets
        );
    }
    assert_eq!(
        flow_packets, hits,
        "flow statistics vs hit counter\n{report}"
    );
    assert!(
        media_frames >= frames / 10 && exact_frames >= frames / 10,
        "the generator reached too few interesting frames\n{report}"
    );

    if !violations.is_empty() {
        let shown: Vec<String> = violations
            .iter()
            .take(SHOWN)
            .map(|v| {
                format!(
                    "  #{} ({}): {}\n    {}",
                    v.index,
                    v.origin,
                    v.what,
                    hex(&v.frame)
                )
            })
            .collect();
        panic!(
            "{} violation(s) with seed {seed} (replay with PINHOLE_PROPTEST_SEED={seed}):\n{}\n{report}",
            violations.len(),
            shown.join("\n")
        );
    }
    // Both families were open.
    assert!(open_keys.iter().any(|k| k.family == FAMILY_V4));
    assert!(open_keys.iter().any(|k| k.family == FAMILY_V6));
}
