//! `--forward xdp` in BPF_PROG_TEST_RUN: every forwarding verdict.
//!
//! The program runs inside a namespace with routes and neighbours of its
//! own ([`FibLab`]): `bpf_fib_lookup` reads those of the ingress device's
//! namespace.
//!
//! For the redirect, the frame the program leaves is checked against an
//! independent computation: MACs from the neighbour table and `fout`,
//! TTL / hop limit one less, the IPv4 header checksum recomputed in full
//! (RFC 1071) rather than incrementally as the program does.

use std::net::{IpAddr, SocketAddr};

use pinhole_common::{FragmentPolicy, Reason};
use pinhole_integration::{
    frames::{ip_checksum, Ext, Frame},
    xdp::{
        config,
        endpoints::*,
        fib::{next_hop_mac, FibLab, NEXT_HOP_MAC},
        TestProg,
    },
};

fn lab() -> FibLab {
    FibLab::new().unwrap_or_else(|e| panic!("the FIB lab (needs root): {e}"))
}

/// The program with `--forward xdp`, `fout` its only egress, media ports
/// 10000-20000.
fn program(lab: &FibLab) -> TestProg {
    let mut cfg = config(&[(10000, 20000)], FragmentPolicy::Pass);
    cfg.forward = 1;
    let mut p = TestProg::load(&cfg, 1024);
    lab.set_egress(&mut p.ebpf).expect("filling the DEVMAP");
    p
}

fn run(lab: &FibLab, p: &TestProg, frame: &[u8]) -> (u32, Vec<u8>) {
    let (action, out, _) = lab.run(p.xdp(), frame, 1).expect("BPF_PROG_TEST_RUN");
    (action, out)
}

/// Runs `frame` in the lab and checks the action and that exactly this
/// packet was counted, under `want` only; returns the frame as the program
/// left it.
fn run_counted(lab: &FibLab, p: &TestProg, name: &str, frame: &[u8], want: Reason) -> Vec<u8> {
    let mut out = Vec::new();
    p.counted_by(name, frame, want, || {
        let (action, o) = run(lab, p, frame);
        out = o;
        action
    });
    out
}

fn addr(s: &str, port: u16) -> SocketAddr {
    SocketAddr::new(s.parse::<IpAddr>().expect("address"), port)
}

#[test]
fn a_hit_is_routed_rewritten_and_redirected() {
    let lab = lab();
    let mut p = program(&lab);
    for (src, dst) in [(a4(), b4()), (a6(), b6())] {
        p.open(src, dst);
        let built = Frame::udp(src, dst).payload(160).build();
        let l3 = built.l3_offset();
        let out = run_counted(&lab, &p, "hit", &built.bytes, Reason::Forwarded);
        assert_eq!(out.len(), built.bytes.len(), "{dst}: length unchanged");
        assert_eq!(out[0..6], NEXT_HOP_MAC, "{dst}: destination MAC");
        assert_eq!(out[6..12], lab.fout_mac, "{dst}: source MAC");
        let mut want = built.bytes.clone();
        want[0..6].copy_from_slice(&NEXT_HOP_MAC);
        want[6..12].copy_from_slice(&lab.fout_mac);
        if src.is_ipv4() {
            let ihl = l3 + 20;
            assert_eq!(out[l3 + 8], built.bytes[l3 + 8] - 1, "TTL");
            // The checksum recomputed in full over the new header.
            want[l3 + 8] -= 1;
            want[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
            let sum = ip_checksum(&want[l3..ihl]);
            want[l3 + 10..l3 + 12].copy_from_slice(&sum.to_be_bytes());
            assert_eq!(ip_checksum(&out[l3..ihl]), 0, "the header sums to zero");
        } else {
            assert_eq!(out[l3 + 7], built.bytes[l3 + 7] - 1, "hop limit");
            want[l3 + 7] -= 1;
        }
        assert_eq!(out, want, "{dst}: the whole frame");
        let stats = p.stats(&pinhole_integration::xdp::flow_key(src, dst));
        assert_eq!(
            stats.map(|s| (s.packets, s.bytes)),
            Some((1, built.bytes.len() as u64)),
            "{dst}: the flow counts the forwarded packet"
        );
    }
}

#[test]
fn every_case_the_fast_path_cannot_do_falls_back_to_the_stack_untouched() {
    let lab = lab();
    let mut p = program(&lab);
    let a_b = (a4(), b4());
    let unresolved = addr("203.0.113.9", 10000);
    let blackholed = addr("203.0.113.200", 10000);
    let not_egress = addr("192.0.2.50", 10000);
    for (src, dst) in [
        a_b,
        (a4(), unresolved),
        (a4(), blackholed),
        (a4(), not_egress),
    ] {
        p.open(src, dst);
    }
    p.open(a6(), b6());
    let mut ttl1 = Frame::udp(a4(), b4()).build();
    ttl1.set_ttl(1);
    let mut hop1 = Frame::udp(a6(), b6()).build();
    hop1.set_ttl(1);
    let cases: Vec<(&str, Vec<u8>, Reason)> = vec![
        (
            "no neighbour",
            Frame::udp(a4(), unresolved).build().bytes,
            Reason::FwdNoNeighbour,
        ),
        (
            "no route (blackhole)",
            Frame::udp(a4(), blackholed).build().bytes,
            Reason::FwdNoRoute,
        ),
        (
            "egress not in the devmap",
            Frame::udp(a4(), not_egress).build().bytes,
            Reason::FwdEgressNotInDevmap,
        ),
        (
            "over the egress MTU",
            Frame::udp(a4(), b4()).payload(1600).build().bytes,
            Reason::FwdOverMtu,
        ),
        ("TTL 1", ttl1.bytes, Reason::FwdTtl),
        ("hop limit 1", hop1.bytes, Reason::FwdTtl),
        (
            "VLAN tag",
            Frame::udp(a4(), b4()).vlan(0x8100, 7).build().bytes,
            Reason::FwdEncap,
        ),
        (
            "PPPoE",
            Frame::udp(a4(), b4()).pppoe(3).build().bytes,
            Reason::FwdEncap,
        ),
        (
            "IPv4 options",
            Frame::udp(a4(), b4())
                .ipv4_options(&[1, 1, 1, 1])
                .build()
                .bytes,
            Reason::FwdIpOptions,
        ),
        (
            "IPv6 extension header",
            Frame::udp(a6(), b6())
                .ext(Ext::DestOpts { len: 0 })
                .build()
                .bytes,
            Reason::FwdExtHeaders,
        ),
    ];
    for (name, frame, want) in cases {
        let out = run_counted(&lab, &p, name, &frame, want);
        assert_eq!(out, frame, "{name}: the stack gets the frame as it arrived");
    }
    // And a miss is still a drop, forwarding or not.
    let stranger = Frame::udp(c4(), b4()).build().bytes;
    run_counted(&lab, &p, "miss", &stranger, Reason::Miss);
}

#[test]
fn a_neighbour_resolved_later_turns_the_fallback_into_a_redirect() {
    let lab = lab();
    let mut p = program(&lab);
    let dst = addr("203.0.113.9", 10000);
    p.open(a4(), dst);
    let frame = Frame::udp(a4(), dst).build().bytes;
    run_counted(&lab, &p, "before", &frame, Reason::FwdNoNeighbour);
    let mac = next_hop_mac();
    lab.ns
        .ip(&[
            "neigh",
            "replace",
            "198.51.100.3",
            "lladdr",
            &mac,
            "nud",
            "reachable",
            "dev",
            "fout",
        ])
        .expect("the neighbour resolves");
    let out = run_counted(&lab, &p, "after", &frame, Reason::Forwarded);
    assert_eq!(out[0..6], NEXT_HOP_MAC);
    // A route change moves the next flow's packets: the /25 now goes out
    // fin, which is not an egress.
    lab.ns
        .ip(&["route", "replace", "203.0.113.0/25", "dev", "fin"])
        .expect("route change");
    lab.ns
        .ip(&[
            "neigh",
            "replace",
            "203.0.113.9",
            "lladdr",
            &mac,
            "nud",
            "permanent",
            "dev",
            "fin",
        ])
        .expect("neighbour on fin");
    run_counted(&lab, &p, "rerouted", &frame, Reason::FwdEgressNotInDevmap);
}
