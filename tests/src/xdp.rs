//! The XDP program loaded for `BPF_PROG_TEST_RUN`, with its flow and counter
//! maps, as the XDP tests (`xdp_prog`, `xdp_property`) use it.
//!
//! Loading needs root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON); without it the
//! load panics with a message saying so. Nothing is attached to an interface.

use std::net::{IpAddr, SocketAddr};

use aya::{
    programs::{TestRunOptions, Xdp},
    Ebpf, EbpfLoader, TestRun,
};
use pinhole::maps::{CounterMap, FlowMap};
use pinhole_common::{
    Action, Config, Counter, FlowKey, FlowStats, Reason, CONFIG_GLOBAL, FAMILY_V4, FAMILY_V6,
    FLOWS_V4_MAP, FLOWS_V6_MAP, IPPROTO_UDP, PROGRAM_NAME,
};

/// `XDP_DROP`.
pub const XDP_DROP: u32 = 1;
/// `XDP_PASS`.
pub const XDP_PASS: u32 = 2;
/// The kernel refuses test frames shorter than an Ethernet header.
pub const ETH_HLEN: usize = 14;

/// The XDP action a reason maps to.
pub fn xdp_action(reason: Reason) -> u32 {
    match reason.action() {
        Action::Pass => XDP_PASS,
        Action::Drop => XDP_DROP,
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

/// One loaded copy of the program with its maps.
pub struct TestProg {
    pub ebpf: Ebpf,
    /// The daemon's own view of both flow maps, so the tests also check that
    /// it keys each family the way the program does.
    pub flows: FlowMap,
    pub counters: CounterMap,
}

impl TestProg {
    /// Loads the embedded object with `cfg` and room for `max_flows` flows
    /// per family, and the program into the kernel (verifier included).
    pub fn load(cfg: &Config, max_flows: u32) -> TestProg {
        let mut ebpf = EbpfLoader::new()
            .override_global(CONFIG_GLOBAL, cfg, true)
            .map_max_entries(FLOWS_V4_MAP, max_flows)
            .map_max_entries(FLOWS_V6_MAP, max_flows)
            .load(pinhole::ebpf::OBJECT)
            .unwrap_or_else(|e| {
                panic!(
                    "loading the pinhole eBPF object failed: {e}. These tests need root \
                     (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON); run them as root."
                )
            });
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .expect("object has the pinhole program")
            .try_into()
            .expect("pinhole is an XDP program");
        if let Err(e) = prog.load() {
            panic!("the verifier or the kernel refused the pinhole program (need root): {e}");
        }
        let flows = FlowMap::take(&mut ebpf).expect("both flow maps, with the map key layouts");
        let counters = CounterMap::take(&mut ebpf).expect("counters map with Counter layout");
        TestProg {
            ebpf,
            flows,
            counters,
        }
    }

    pub fn xdp(&self) -> &Xdp {
        self.ebpf
            .program(PROGRAM_NAME)
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
        self.xdp()
            .test_run(TestRunOptions {
                data_in: Some(frame),
                repeat: 1,
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN on a {}-byte frame: {e}", frame.len()))
            .return_value
    }
}
