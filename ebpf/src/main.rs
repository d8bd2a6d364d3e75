//! The pinhole XDP program: drops UDP aimed at the media port ranges unless its
//! exact 5-tuple is an open pinhole. Everything else passes untouched.
//!
//! The entry point only classifies the frame ([`parse::classify`]), counts the
//! verdict reason and maps it to an XDP action through the single policy table
//! [`Reason::action`]. Parsing lives in [`parse`], bounds checks in [`cursor`],
//! bounded latching (the miss path, when configured) in [`latch`].
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// `config()` hides a pointer's provenance with an empty asm block, which
// needs inline asm on the BPF target.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

mod cursor;
mod forward;
mod headers;
mod latch;
mod parse;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{Array, DevMap, HashMap, PerCpuArray},
    programs::XdpContext,
};
use pinhole_common::{
    Config, Counter, FlowKeyV4, FlowKeyV6, FlowStats, Reason, DEFAULT_MAX_FLOWS,
    LAST_SEEN_GRANULARITY_NS,
};

/// Open IPv4 flows, one entry per direction. Capacity is set at load time.
/// A plain (preallocated) HASH, never LRU: eviction would silently cut a live
/// call. The families have a map each so that an IPv4 lookup hashes and
/// compares a 12-byte key rather than a 40-byte one.
#[map(name = "PINHOLE_FLOWS4")]
static PINHOLE_FLOWS4: HashMap<FlowKeyV4, FlowStats> =
    HashMap::with_max_entries(DEFAULT_MAX_FLOWS, 0);

/// Open IPv6 flows, as [`PINHOLE_FLOWS4`].
#[map(name = "PINHOLE_FLOWS6")]
static PINHOLE_FLOWS6: HashMap<FlowKeyV6, FlowStats> =
    HashMap::with_max_entries(DEFAULT_MAX_FLOWS, 0);

/// Per-CPU packet and byte counters, indexed by [`Reason`].
#[map(name = "PINHOLE_COUNTERS")]
static PINHOLE_COUNTERS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(Reason::COUNT, 0);

/// Load-time configuration, patched into `.rodata` by the loader
/// (`EbpfLoader::override_global`), so the verifier treats it as constant.
#[no_mangle]
static PINHOLE_CONFIG: Config = Config::EMPTY;

/// The filter for links whose frames start with an Ethernet header.
#[xdp]
pub fn pinhole(ctx: XdpContext) -> u32 {
    filter(&ctx, parse::Link::Ethernet)
}

/// The same filter for links without a link-layer header (tun, WireGuard,
/// PPP), whose frames start at the IP header. A program of its own rather
/// than a per-interface lookup: the Ethernet path stays exactly as it was.
#[xdp]
pub fn pinhole_l3(ctx: XdpContext) -> u32 {
    filter(&ctx, parse::Link::Ip)
}

#[inline(always)]
fn filter(ctx: &XdpContext, link: parse::Link) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    let mut reason = parse::classify(ctx, link, config(), Hit { len });
    // `--forward xdp` (a constant in frozen .rodata: with it off the
    // verifier removes this): a hit on an Ethernet link is routed here,
    // and counted as forwarded or under the reason it fell back to the
    // stack, instead of as a hit.
    if reason == Reason::Hit && config().forward != 0 && matches!(link, parse::Link::Ethernet) {
        reason = forward::forward(ctx);
    }
    count(reason, len);
    forward::action(reason)
}

/// An XDP program that does nothing but pass: the baseline the benchmark
/// divides by. It is never attached.
#[xdp]
pub fn pinhole_baseline(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The drop floor: an XDP program that drops every frame, the cheapest
/// drop on the path it is attached to. The lab bench divides pinhole's
/// flood-drop rate by its rate. It is never attached by the daemon.
#[xdp]
pub fn pinhole_floor_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}

/// The one interface [`pinhole_floor_redirect`] sends to, at index 0 (set
/// by the bench before it attaches the program).
#[map(name = "PINHOLE_FLOOR_TX")]
static PINHOLE_FLOOR_TX: DevMap = DevMap::with_max_entries(1, 0);

/// The destination MAC [`pinhole_floor_redirect`] writes (the first six
/// bytes of entry 0; set by the bench).
#[map(name = "PINHOLE_FLOOR_MAC")]
static PINHOLE_FLOOR_MAC: Array<[u8; 8]> = Array::with_max_entries(1, 0);

/// The forward floor: writes the destination MAC from
/// [`PINHOLE_FLOOR_MAC`] (so the receiving host takes the frame as its own
/// and does the same work as for a forwarded one) and redirects every frame
/// to the interface in [`PINHOLE_FLOOR_TX`]; no route lookup, no TTL, no
/// other rewrite: the cheapest forward on the path. Frames go to
/// `XDP_PASS` while the map is empty. The lab bench divides pinhole's
/// media-pass rate by its rate. It is never attached by the daemon.
#[xdp]
pub fn pinhole_floor_redirect(ctx: XdpContext) -> u32 {
    let mut c = cursor::Cursor::new(ctx.data(), ctx.data_end());
    if let (Ok(eth), Some(mac)) = (c.take::<headers::Ethernet>(), PINHOLE_FLOOR_MAC.get(0)) {
        // SAFETY: the Ethernet header lies inside the packet (taken above).
        unsafe {
            let eth = eth as *const headers::Ethernet as *mut headers::Ethernet;
            (*eth).dst = [mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]];
        }
    }
    PINHOLE_FLOOR_TX
        .redirect(0, xdp_action::XDP_PASS as u64)
        .unwrap_or(xdp_action::XDP_PASS)
}

#[inline(always)]
fn config() -> &'static Config {
    // The compiler must not fold the placeholder value, so the address goes
    // through an empty asm block: the compiler can no longer see which
    // object it points to, yet no instruction is emitted for it. The loader
    // freezes .rodata, so the verifier reads the real values as constants.
    let mut cfg: *const Config = &PINHOLE_CONFIG;
    #[cfg(target_arch = "bpf")]
    // SAFETY: the asm is empty; it only hides the pointer's provenance.
    unsafe {
        core::arch::asm!(
            "/* {0} */",
            inout(reg) cfg,
            options(pure, readonly, nostack, preserves_flags)
        );
    }
    #[cfg(not(target_arch = "bpf"))]
    {
        cfg = core::hint::black_box(cfg);
    }
    // SAFETY: cfg still points to PINHOLE_CONFIG, which lives forever.
    unsafe { &*cfg }
}

/// The flow lookups, for a packet of `len` bytes.
struct Hit {
    len: u64,
}

impl parse::Flows for Hit {
    #[inline(always)]
    fn hit_v4(self, key: &parse::KeyV4) -> Reason {
        match PINHOLE_FLOWS4.get_ptr_mut(key.get()) {
            Some(stats) => account(stats, self.len),
            None if config().latching != 0 => latch::v4(&PINHOLE_FLOWS4, key, self.len),
            None => Reason::Miss,
        }
    }

    #[inline(always)]
    fn hit_v6(self, key: &parse::KeyV6) -> Reason {
        match PINHOLE_FLOWS6.get_ptr_mut(key.get()) {
            Some(stats) => account(stats, self.len),
            None if config().latching != 0 => latch::v6(&PINHOLE_FLOWS6, key, self.len),
            None => Reason::Miss,
        }
    }
}

/// On a hit (`stats` is the flow's entry) adds the packet to the flow's
/// stats. The lookup behind `stats` is the only map lookup a media packet
/// costs; only a miss, with latching on, looks further ([`latch`]).
///
/// The adds are plain loads and stores, not atomic instructions: one
/// direction of one media stream is one 5-tuple, which RSS (and RPS, and
/// veth's per-flow queue choice) keeps on one CPU, so its entry has one
/// writer. A `lock xadd` costs each hit about 5 ns for an exclusion that
/// the common case does not need. The documented cost: if two CPUs update
/// the same flow at the same instant (a stream whose packets are spread
/// over several queues), one of the two updates can be lost, so the flow's
/// counters may read low by at most one packet per such collision; the
/// verdict, `last_seen` and the per-CPU verdict counters are unaffected.
/// docs/architecture.md "Map layout" documents both races.
///
/// No lock is held between the lookup and the adds either: if the
/// controller deletes this flow and inserts another that reuses the same
/// element in that window, this packet is counted on the new flow (at most
/// one packet per CPU per reuse).
#[inline(always)]
fn account(stats: *mut FlowStats, len: u64) -> Reason {
    unsafe {
        (*stats).packets = (*stats).packets.wrapping_add(1);
        (*stats).bytes = (*stats).bytes.wrapping_add(len);
        // Stamp only when the clock moved by at least LAST_SEEN_GRANULARITY_NS:
        // a media flow then writes the field about once a second instead of
        // on every packet (read, compare, rarely write). Expiry reads it with
        // that granularity, i.e. a flow may look idle up to 1 s early.
        let seen = core::ptr::addr_of_mut!((*stats).last_seen_ns);
        let now = aya_ebpf::helpers::bpf_ktime_get_coarse_ns();
        if now.wrapping_sub(core::ptr::read_volatile(seen)) >= LAST_SEEN_GRANULARITY_NS {
            core::ptr::write_volatile(seen, now);
        }
    }
    Reason::Hit
}

#[inline(always)]
fn count(reason: Reason, len: u64) {
    if let Some(c) = PINHOLE_COUNTERS.get_ptr_mut(reason as u32) {
        // Per-CPU slot: no other CPU writes it, plain adds are enough.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        }
    }
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(target_arch = "bpf")]
#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {}
