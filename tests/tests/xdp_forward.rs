//! `--forward xdp` in BPF_PROG_TEST_RUN: every forwarding verdict.
//!
//! `bpf_fib_lookup` reads the routes and neighbours of the network
//! namespace of the frame's ingress device, and a test run's ingress is the
//! device named in its context, looked up in the caller's namespace. So the
//! test builds a namespace of its own (a veth pair: `fin` the ingress,
//! `fout` the egress in the program's DEVMAP, routes and permanent
//! neighbours) and runs the program from inside it.
//!
//! For the redirect, the frame the program leaves is checked against an
//! independent computation: MACs from the neighbour table and `fout`,
//! TTL / hop limit one less, the IPv4 header checksum recomputed in full
//! (RFC 1071) rather than incrementally as the program does.

use std::net::{IpAddr, SocketAddr};

use aya::programs::TestRunOptions;
use aya::TestRun;
use pinhole::datapath::forward::set_egress;
use pinhole_common::{FragmentPolicy, Reason};
use pinhole_integration::{
    frames::{ip_checksum, Ext, Frame},
    xdp::{config, endpoints::*, xdp_action, TestProg},
    Netns,
};

/// The next hop's MAC, a permanent neighbour of `fout`.
const NEXT_HOP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x42];

/// The namespace, with the interface indexes the tests need.
struct Lab {
    ns: Netns,
    fin: u32,
    fout: u32,
    fout_mac: [u8; 6],
}

/// `ip -j link show dev DEV` in `ns`.
fn link(ns: &Netns, dev: &str) -> serde_json::Value {
    let out = ns
        .ip(&["-j", "link", "show", "dev", dev])
        .unwrap_or_else(|e| panic!("ip link show {dev}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j output");
    v[0].clone()
}

fn ifindex(ns: &Netns, dev: &str) -> u32 {
    link(ns, dev)["ifindex"].as_u64().expect("ifindex") as u32
}

fn mac_of(ns: &Netns, dev: &str) -> [u8; 6] {
    let text = link(ns, dev)["address"].as_str().expect("MAC").to_owned();
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("MAC byte"))
        .collect();
    bytes.try_into().expect("6-byte MAC")
}

/// `fin` (192.0.2.254/24, 2001:db8::fe/64) and `fout` (198.51.100.254/24,
/// 2001:db8:1::fe/64), a veth pair in one namespace with forwarding on.
/// B (198.51.100.2, 2001:db8:1::2) is a permanent neighbour on `fout`;
/// 203.0.113.0/25 goes via 198.51.100.3, which has no neighbour entry;
/// 203.0.113.128/25 is a blackhole; 192.0.2.50 is a neighbour on `fin`,
/// which is not in the DEVMAP.
fn lab() -> Lab {
    let ns = Netns::new().expect("a network namespace (needs root)");
    ns.enable_forwarding().expect("forwarding");
    ns.ip(&["link", "add", "fin", "type", "veth", "peer", "name", "fout"])
        .expect("veth pair");
    for dev in ["fin", "fout"] {
        ns.ip(&["link", "set", dev, "up"]).expect("link up");
    }
    for (dev, cidr) in [
        ("fin", "192.0.2.254/24"),
        ("fout", "198.51.100.254/24"),
        ("fin", "2001:db8::fe/64"),
        ("fout", "2001:db8:1::fe/64"),
    ] {
        ns.ip(&["addr", "add", cidr, "dev", dev, "nodad"])
            .unwrap_or_else(|e| panic!("address {cidr}: {e}"));
    }
    let mac = NEXT_HOP_MAC.map(|b| format!("{b:02x}")).join(":");
    for (addr, dev) in [
        ("198.51.100.2", "fout"),
        ("2001:db8:1::2", "fout"),
        ("192.0.2.50", "fin"),
    ] {
        ns.ip(&[
            "neigh",
            "replace",
            addr,
            "lladdr",
            &mac,
            "nud",
            "permanent",
            "dev",
            dev,
        ])
        .unwrap_or_else(|e| panic!("neighbour {addr}: {e}"));
    }
    ns.ip(&["route", "add", "203.0.113.0/25", "via", "198.51.100.3"])
        .expect("route via an unresolved next hop");
    ns.ip(&["route", "add", "blackhole", "203.0.113.128/25"])
        .expect("blackhole route");
    let fin = ifindex(&ns, "fin");
    let fout = ifindex(&ns, "fout");
    let fout_mac = mac_of(&ns, "fout");
    Lab {
        ns,
        fin,
        fout,
        fout_mac,
    }
}

/// The program with `--forward xdp`, `fout` its only egress, media ports
/// 10000-20000.
fn program(lab: &Lab) -> TestProg {
    let mut cfg = config(&[(10000, 20000)], FragmentPolicy::Pass);
    cfg.forward = 1;
    let mut p = TestProg::load(&cfg, 1024);
    let egress = vec![("fout".to_owned(), lab.fout)];
    lab.ns
        .run_in(|| set_egress(&mut p.ebpf, &egress))
        .expect("entering the namespace")
        .expect("filling the DEVMAP");
    p
}

/// Runs the program once on `frame`, arriving on `fin`, from inside the
/// namespace; returns the action and the frame as the program left it.
fn run(lab: &Lab, p: &TestProg, frame: &[u8]) -> (u32, Vec<u8>) {
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
    // rx_queue_index, egress_ifindex.
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&lab.fin.to_ne_bytes());
    let mut out = vec![0u8; frame.len() + 256];
    let r = lab
        .ns
        .run_in(|| {
            p.xdp().test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                ctx_in: Some(&ctx),
                ..Default::default()
            })
        })
        .expect("entering the namespace")
        .expect("BPF_PROG_TEST_RUN");
    out.truncate(r.data_size_out as usize);
    (r.return_value, out)
}

/// Runs `frame` and checks the action and that exactly this packet was
/// counted, under `want` only.
fn run_counted(lab: &Lab, p: &TestProg, name: &str, frame: &[u8], want: Reason) -> Vec<u8> {
    let before = p.counters();
    let (action, out) = run(lab, p, frame);
    let after = p.counters();
    let moved: Vec<&str> = Reason::ALL
        .iter()
        .filter(|r| after[**r as usize] != before[**r as usize])
        .map(|r| r.name())
        .collect();
    assert_eq!(
        action,
        xdp_action(want),
        "{name}: action (counted {moved:?})"
    );
    assert_eq!(moved, [want.name()], "{name}: counted under");
    let d = after[want as usize].packets - before[want as usize].packets;
    assert_eq!(d, 1, "{name}: one packet counted");
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
    let l3 = ttl1.l3_offset();
    ttl1.bytes[l3 + 8] = 1;
    ttl1.set_be16(l3 + 10, 0);
    let sum = ip_checksum(&ttl1.bytes[l3..l3 + 20]);
    ttl1.set_be16(l3 + 10, sum);
    let mut hop1 = Frame::udp(a6(), b6()).build();
    let l3_6 = hop1.l3_offset();
    hop1.bytes[l3_6 + 7] = 1;
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
    let mac = NEXT_HOP_MAC.map(|b| format!("{b:02x}")).join(":");
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
