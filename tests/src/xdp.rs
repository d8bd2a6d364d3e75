//! The XDP program loaded for `BPF_PROG_TEST_RUN`, with its flow and counter
//! maps, as the XDP tests (`xdp_prog`, `xdp_property`, `xdp_latch`) and
//! `pinhole-bench` use it.
//!
//! Loading needs root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON); without it
//! [`load_object`] fails and [`TestProg::load`] panics, with a message saying
//! so. Nothing is attached to an interface.

use std::net::{IpAddr, SocketAddr};

use aya::{
    programs::{TestRunOptions, Xdp},
    Ebpf, EbpfLoader, TestRun,
};
use pinhole::{
    datapath::load::build_config,
    datapath::maps::{CounterMap, FlowMap},
};
use pinhole_common::{
    Action, Config, Counter, FlowKey, FlowStats, FragmentPolicy, PortRange, Reason, CONFIG_GLOBAL,
    FAMILY_V4, FAMILY_V6, FLOWS_V4_MAP, FLOWS_V6_MAP, IPPROTO_UDP, PROGRAM_NAME,
};

use crate::{Error, Result};

/// `XDP_DROP`.
pub const XDP_DROP: u32 = 1;
/// `XDP_PASS`.
pub const XDP_PASS: u32 = 2;
/// `XDP_REDIRECT`.
pub const XDP_REDIRECT: u32 = 4;
/// The kernel refuses test frames shorter than an Ethernet header.
pub const ETH_HLEN: usize = 14;

/// The XDP action a reason maps to.
pub fn xdp_action(reason: Reason) -> u32 {
    match reason.action() {
        Action::Pass => XDP_PASS,
        Action::Drop => XDP_DROP,
        Action::Redirect => XDP_REDIRECT,
    }
}

/// The flow key of UDP from `src` to `dst` (same family).
pub fn flow_key(src: SocketAddr, dst: SocketAddr) -> FlowKey {
    let mut k = FlowKey {
        proto: IPPROTO_UDP,
        src_port: src.port(),
        dst_port: dst.port(),
        ..FlowKey::default()
    };
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            k.family = FAMILY_V4;
            k.src_addr[..4].copy_from_slice(&s.octets());
            k.dst_addr[..4].copy_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            k.family = FAMILY_V6;
            k.src_addr = s.octets();
            k.dst_addr = d.octets();
        }
        _ => panic!("mixed families in {src} -> {dst}"),
    }
    k
}

/// The program's load-time configuration: media ports `ranges` (`(lo, hi)`,
/// inclusive) and the fragment policy, built as the daemon builds it.
/// Latching is off.
pub fn config(ranges: &[(u16, u16)], fragments: FragmentPolicy) -> Config {
    let ranges: Vec<PortRange> = ranges
        .iter()
        .map(|&(lo, hi)| PortRange { lo, hi })
        .collect();
    build_config(&ranges, fragments).unwrap_or_else(|e| panic!("media ranges {ranges:?}: {e}"))
}

/// Loads the embedded object with `cfg` and room for `max_flows` flows in
/// each family's flow map, then the XDP programs named `programs` into the
/// kernel (verifier included).
pub fn load_object(cfg: &Config, max_flows: u32, programs: &[&str]) -> Result<Ebpf> {
    let mut ebpf = EbpfLoader::new()
        .override_global(CONFIG_GLOBAL, cfg, true)
        .map_max_entries(FLOWS_V4_MAP, max_flows)
        .map_max_entries(FLOWS_V6_MAP, max_flows)
        .load(pinhole::datapath::ebpf::OBJECT)
        .map_err(|e| {
            Error::Setup(format!(
                "loading the pinhole eBPF object failed: {e}. This needs root \
                 (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON); run it as root."
            ))
        })?;
    for &name in programs {
        let prog: &mut Xdp = ebpf
            .program_mut(name)
            .ok_or_else(|| Error::Setup(format!("the object has no program {name}")))?
            .try_into()
            .map_err(|e| Error::Setup(format!("{name} is not an XDP program: {e}")))?;
        prog.load().map_err(|e| {
            Error::Setup(format!(
                "the verifier or the kernel refused the {name} program (need root): {e}"
            ))
        })?;
    }
    Ok(ebpf)
}

/// Runs `xdp` on `frame` `repeat` times (one `BPF_PROG_TEST_RUN`) and
/// returns the XDP action.
pub fn test_run(xdp: &Xdp, frame: &[u8], repeat: u32) -> u32 {
    xdp.test_run(TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on a {}-byte frame: {e}", frame.len()))
    .return_value
}

/// One loaded copy of the program with its maps.
pub struct TestProg {
    pub ebpf: Ebpf,
    /// The XDP program [`TestProg::run`] runs: [`PROGRAM_NAME`] (Ethernet
    /// frames) or [`pinhole_common::PROGRAM_L3_NAME`] (frames starting at the IP header).
    pub program: &'static str,
    /// The daemon's own view of both flow maps, so the tests also check that
    /// it keys each family the way the program does.
    pub flows: FlowMap,
    pub counters: CounterMap,
}

impl TestProg {
    /// Loads the embedded object with `cfg` and room for `max_flows` flows
    /// per family, and the program into the kernel (verifier included).
    /// The other maps (latching, events) stay in `ebpf` for the caller to take.
    pub fn load(cfg: &Config, max_flows: u32) -> TestProg {
        TestProg::load_program(cfg, max_flows, PROGRAM_NAME)
    }

    /// As [`TestProg::load`], with `program` (one of the object's XDP
    /// programs) as the one [`TestProg::run`] runs.
    pub fn load_program(cfg: &Config, max_flows: u32, program: &'static str) -> TestProg {
        let mut ebpf = load_object(cfg, max_flows, &[program]).unwrap_or_else(|e| panic!("{e}"));
        let flows = FlowMap::take(&mut ebpf).expect("both flow maps, with the map key layouts");
        let counters = CounterMap::take(&mut ebpf).expect("counters map with Counter layout");
        TestProg {
            ebpf,
            program,
            flows,
            counters,
        }
    }

    pub fn xdp(&self) -> &Xdp {
        self.ebpf
            .program(self.program)
            .expect("pinhole program")
            .try_into()
            .expect("XDP program")
    }

    /// Opens (or resets the statistics of) the flow `src -> dst`.
    pub fn open(&mut self, src: SocketAddr, dst: SocketAddr) {
        self.flows
            .insert(&flow_key(src, dst), FlowStats::default())
            .unwrap_or_else(|e| panic!("inserting flow {src} -> {dst}: {e}"));
    }

    pub fn stats(&self, k: &FlowKey) -> Option<FlowStats> {
        self.flows
            .get(k)
            .unwrap_or_else(|e| panic!("reading flow {k:?}: {e}"))
    }

    /// Every reason's counter, summed over CPUs, indexed by [`Reason`].
    pub fn counters(&self) -> Vec<Counter> {
        self.counters
            .totals()
            .unwrap_or_else(|e| panic!("reading the counters: {e}"))
            .to_vec()
    }

    /// Runs the program once on `frame` and returns the XDP action.
    pub fn run(&self, frame: &[u8]) -> u32 {
        test_run(self.xdp(), frame, 1)
    }

    /// Runs the program once on `frame` (case `name`) and checks that it
    /// returned `want`'s action and counted exactly this packet, under
    /// `want` and no other reason.
    pub fn run_counted(&self, name: &str, frame: &[u8], want: Reason) {
        self.counted_by(name, frame, want, || self.run(frame));
    }

    /// As [`TestProg::run_counted`], with `run` running the program on
    /// `frame` (once) and returning its action.
    pub fn counted_by(&self, name: &str, frame: &[u8], want: Reason, run: impl FnOnce() -> u32) {
        let before = self.counters();
        let action = run();
        let after = self.counters();
        let moved: Vec<&str> = Reason::ALL
            .iter()
            .filter(|r| after[**r as usize] != before[**r as usize])
            .map(|r| r.name())
            .collect();
        assert_eq!(
            action,
            xdp_action(want),
            "{name}: action (counted under {moved:?}, expected {})",
            want.name()
        );
        for r in Reason::ALL {
            let (b, a) = (before[r as usize], after[r as usize]);
            let delta = (a.packets - b.packets, a.bytes - b.bytes);
            let expected = if r == want {
                (1, frame.len() as u64)
            } else {
                (0, 0)
            };
            assert_eq!(
                delta,
                expected,
                "{name}: {} counter delta (counted under {moved:?})",
                r.name()
            );
        }
    }
}

/// The endpoints the XDP program tests share: documentation addresses, A
/// and B both on media ports (so the reverse direction of an open flow is
/// itself subject to filtering), C a stranger; B's and C's networks differ
/// (the `--media-prefix` cases protect B's).
pub mod endpoints {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

    pub fn a4() -> SocketAddr {
        SocketAddr::new(Ipv4Addr::new(192, 0, 2, 1).into(), 12000)
    }
    pub fn b4() -> SocketAddr {
        SocketAddr::new(Ipv4Addr::new(198, 51, 100, 2).into(), 10000)
    }
    pub fn c4() -> SocketAddr {
        SocketAddr::new(Ipv4Addr::new(203, 0, 113, 3).into(), 12000)
    }
    pub fn a6() -> SocketAddr {
        SocketAddr::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(), 12000)
    }
    pub fn b6() -> SocketAddr {
        SocketAddr::new(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2).into(), 10000)
    }
    pub fn c6() -> SocketAddr {
        SocketAddr::new(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 3).into(), 12000)
    }

    pub fn port(mut s: SocketAddr, p: u16) -> SocketAddr {
        s.set_port(p);
        s
    }
}

/// A network namespace for `--forward xdp` under `BPF_PROG_TEST_RUN`.
///
/// `bpf_fib_lookup` reads the routes and neighbours of the namespace of the
/// frame's ingress device, and a test run's ingress is the device named in
/// its context, looked up in the caller's namespace. So the lab is a
/// namespace of its own (a veth pair: `fin` the ingress, `fout` the egress
/// the program's DEVMAP holds, routes and permanent neighbours), and
/// [`FibLab::run`] runs the program from inside it.
pub mod fib {
    use aya::{
        programs::{TestRunOptions, Xdp},
        Ebpf, TestRun,
    };
    use pinhole::datapath::forward::set_egress;

    use crate::{Error, Netns, Result};

    /// The next hop's MAC, a permanent neighbour of `fout`.
    pub const NEXT_HOP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x42];

    /// The namespace, with the interface indexes and the egress's MAC.
    pub struct FibLab {
        pub ns: Netns,
        pub fin: u32,
        pub fout: u32,
        pub fout_mac: [u8; 6],
    }

    /// `ip -j link show dev DEV` in `ns`.
    fn link(ns: &Netns, dev: &str) -> Result<serde_json::Value> {
        let out = ns.ip(&["-j", "link", "show", "dev", dev])?;
        let v: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| Error::Setup(format!("`ip -j link show {dev}`: {e}")))?;
        Ok(v[0].clone())
    }

    fn ifindex(ns: &Netns, dev: &str) -> Result<u32> {
        link(ns, dev)?["ifindex"]
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| Error::Setup(format!("no ifindex for {dev}")))
    }

    fn mac(ns: &Netns, dev: &str) -> Result<[u8; 6]> {
        let v = link(ns, dev)?;
        let text = v["address"]
            .as_str()
            .ok_or_else(|| Error::Setup(format!("no MAC for {dev}")))?;
        let bytes: Vec<u8> = text
            .split(':')
            .map(|b| u8::from_str_radix(b, 16))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Setup(format!("MAC {text}: {e}")))?;
        bytes
            .try_into()
            .map_err(|_| Error::Setup(format!("MAC {text} is not 6 bytes")))
    }

    /// `NEXT_HOP_MAC` as `ip neigh` takes it.
    pub fn next_hop_mac() -> String {
        NEXT_HOP_MAC.map(|b| format!("{b:02x}")).join(":")
    }

    impl FibLab {
        /// `fin` (192.0.2.254/24, 2001:db8::fe/64) and `fout`
        /// (198.51.100.254/24, 2001:db8:1::fe/64), a veth pair in one
        /// namespace with forwarding on. 198.51.100.2 and 2001:db8:1::2 are
        /// permanent neighbours on `fout`; 203.0.113.0/25 goes via
        /// 198.51.100.3, which has no neighbour entry; 203.0.113.128/25 is a
        /// blackhole; 192.0.2.50 is a neighbour on `fin`, which is not an
        /// egress.
        pub fn new() -> Result<FibLab> {
            let ns = Netns::new()?;
            ns.enable_forwarding()?;
            ns.ip(&["link", "add", "fin", "type", "veth", "peer", "name", "fout"])?;
            for dev in ["fin", "fout"] {
                ns.ip(&["link", "set", dev, "up"])?;
            }
            for (dev, cidr) in [
                ("fin", "192.0.2.254/24"),
                ("fout", "198.51.100.254/24"),
                ("fin", "2001:db8::fe/64"),
                ("fout", "2001:db8:1::fe/64"),
            ] {
                ns.add_addr(dev, cidr)?;
            }
            let mac_text = next_hop_mac();
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
                    &mac_text,
                    "nud",
                    "permanent",
                    "dev",
                    dev,
                ])?;
            }
            ns.ip(&["route", "add", "203.0.113.0/25", "via", "198.51.100.3"])?;
            ns.ip(&["route", "add", "blackhole", "203.0.113.128/25"])?;
            Ok(FibLab {
                fin: ifindex(&ns, "fin")?,
                fout: ifindex(&ns, "fout")?,
                fout_mac: mac(&ns, "fout")?,
                ns,
            })
        }

        /// Makes `fout` the only egress in the DEVMAP of `ebpf`, writing it
        /// from inside the namespace (where the kernel resolves ifindexes).
        pub fn set_egress(&self, ebpf: &mut Ebpf) -> Result<()> {
            let egress = vec![("fout".to_owned(), self.fout)];
            self.ns
                .run_in(|| set_egress(ebpf, &egress))?
                .map_err(|e| Error::Setup(format!("filling the DEVMAP: {e}")))
        }

        /// Runs `xdp` `repeat` times on `frame` arriving on `fin`, from
        /// inside the namespace; returns the action, the frame as the last
        /// run left it, and the kernel's mean ns per run.
        pub fn run(&self, xdp: &Xdp, frame: &[u8], repeat: u32) -> Result<(u32, Vec<u8>, u64)> {
            // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
            // rx_queue_index, egress_ifindex.
            let mut ctx = [0u8; 24];
            ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
            ctx[12..16].copy_from_slice(&self.fin.to_ne_bytes());
            let mut out = vec![0u8; frame.len() + 256];
            let r = self
                .ns
                .run_in(|| {
                    xdp.test_run(TestRunOptions {
                        data_in: Some(frame),
                        data_out: Some(&mut out),
                        ctx_in: Some(&ctx),
                        repeat,
                        ..Default::default()
                    })
                })?
                .map_err(|e| Error::Setup(format!("BPF_PROG_TEST_RUN: {e}")))?;
            out.truncate(r.data_size_out as usize);
            Ok((r.return_value, out, r.duration.as_nanos() as u64))
        }
    }
}
