//! XDP forwarding of a hit (`--forward xdp`): the program routes the packet
//! itself instead of passing it to the stack.
//!
//! Only after [`crate::parse::classify`] found the packet's exact 5-tuple
//! open (a [`Reason::Hit`], already accounted to its flow) and only in the
//! Ethernet program. The frame is read again from the start (the verifier
//! needs its own bounds checks, and classification keeps no pointers), then:
//!
//! 1. anything the fast path would not re-create exactly goes to the stack
//!    under its own reason: a VLAN tag or PPPoE header ([`Reason::FwdEncap`]),
//!    IPv4 options ([`Reason::FwdIpOptions`]), IPv6 extension headers
//!    ([`Reason::FwdExtHeaders`]), TTL / hop limit ≤ 1 ([`Reason::FwdTtl`],
//!    so the stack sends the ICMP error);
//! 2. `bpf_fib_lookup` with the ingress ifindex and the packet's length
//!    (the kernel checks it against the egress MTU): no route, no
//!    neighbour, too big each fall back under their reason;
//! 3. `bpf_redirect_map` to the egress, which must be in [`PINHOLE_TX`], else
//!    [`Reason::FwdEgressNotInDevmap`] (the helper only records the target;
//!    the kernel transmits after the program returns `XDP_REDIRECT`);
//! 4. only then is the frame changed: TTL / hop limit decremented (the IPv4
//!    header checksum updated incrementally, RFC 1624, as the kernel's
//!    `ip_decrease_ttl`) and MACs from the lookup.
//!
//! Every fall-back leaves the frame untouched, so the stack sees exactly
//! what arrived.

use aya_ebpf::{
    bindings::{bpf_fib_lookup as FibParams, xdp_action},
    helpers::bpf_fib_lookup,
    macros::map,
    maps::DevMapHash,
    programs::XdpContext,
    EbpfContext,
};
use pinhole_common::{Reason, IPPROTO_UDP, MAX_FORWARD_IFACES};

use crate::cursor::Cursor;
use crate::headers::*;

/// The interfaces forwarded media may leave by, ifindex → ifindex. Filled
/// by the daemon (`--forward-iface`, default: the interfaces it attached to).
#[map(name = "PINHOLE_TX")]
static PINHOLE_TX: DevMapHash = DevMapHash::with_max_entries(MAX_FORWARD_IFACES, 0);

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

// bpf_fib_lookup's return codes (uapi `BPF_FIB_LKUP_RET_*`).
const FIB_SUCCESS: i64 = 0;
const FIB_NO_NEIGH: i64 = 7;
const FIB_FRAG_NEEDED: i64 = 8;

/// Routes and redirects the hit in `ctx`; returns [`Reason::Forwarded`]
/// (the caller answers `XDP_REDIRECT`) or the reason it fell back to the
/// stack.
#[inline(always)]
pub fn forward(ctx: &XdpContext) -> Reason {
    let mut c = Cursor::new(ctx.data(), ctx.data_end());
    let Ok(eth) = c.take::<Ethernet>() else {
        return Reason::Malformed;
    };
    let mut fib: FibParams = unsafe { core::mem::zeroed() };
    fib.ifindex = ctx.ingress_ifindex() as u32;
    fib.l4_protocol = IPPROTO_UDP;
    let ttl: *mut u8;
    let mut v4: Option<*mut [u8; 2]> = None;
    match be16(eth.ethertype) {
        ETH_P_IPV4 => {
            let Ok(ip) = c.take::<Ipv4>() else {
                return Reason::Malformed;
            };
            if ip.version_ihl != 0x45 {
                return Reason::FwdIpOptions;
            }
            if ip.ttl <= 1 {
                return Reason::FwdTtl;
            }
            fib.family = AF_INET;
            fib.__bindgen_anon_1.tot_len = be16(ip.total_len);
            fib.__bindgen_anon_2.tos = ip.tos;
            fib.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(ip.src);
            fib.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(ip.dst);
            ttl = core::ptr::addr_of!(ip.ttl) as *mut u8;
            v4 = Some(core::ptr::addr_of!(ip.check) as *mut [u8; 2]);
        }
        ETH_P_IPV6 => {
            let Ok(ip) = c.take::<Ipv6>() else {
                return Reason::Malformed;
            };
            if ip.next_header != IPPROTO_UDP {
                return Reason::FwdExtHeaders;
            }
            if ip.hop_limit <= 1 {
                return Reason::FwdTtl;
            }
            fib.family = AF_INET6;
            fib.__bindgen_anon_1.tot_len = be16(ip.payload_len) + 40;
            // Traffic class and flow label, as the kernel's xdp_fwd does.
            fib.__bindgen_anon_2.flowinfo =
                u32::from_ne_bytes(ip.version_class_flow) & u32::to_be(0x0fff_ffff);
            fib.__bindgen_anon_3.ipv6_src = words32(&ip.src);
            fib.__bindgen_anon_4.ipv6_dst = words32(&ip.dst);
            ttl = core::ptr::addr_of!(ip.hop_limit) as *mut u8;
        }
        ETH_P_8021Q | ETH_P_8021AD | ETH_P_PPP_SES => return Reason::FwdEncap,
        // classify() only reports a hit for IP.
        _ => return Reason::Malformed,
    }
    let Ok(udp) = c.peek::<Udp>() else {
        return Reason::Malformed;
    };
    fib.sport = u16::from_ne_bytes(udp.src);
    fib.dport = u16::from_ne_bytes(udp.dst);
    // SAFETY: fib is a bpf_fib_lookup on the stack, its size passed along.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.as_ptr(),
            &mut fib,
            core::mem::size_of::<FibParams>() as i32,
            0,
        )
    };
    match rc {
        FIB_SUCCESS => {}
        FIB_NO_NEIGH => return Reason::FwdNoNeighbour,
        FIB_FRAG_NEEDED => return Reason::FwdOverMtu,
        _ => return Reason::FwdNoRoute,
    }
    // bpf_redirect_map only looks the egress up and notes it for after the
    // program returns, so it doubles as the membership check, before the
    // frame is touched.
    if PINHOLE_TX.redirect(fib.ifindex, 0).is_err() {
        return Reason::FwdEgressNotInDevmap;
    }
    // From here on the frame is changed: nothing may fall back any more.
    // SAFETY: ttl, the checksum and the Ethernet header lie inside the
    // packet (taken through the cursor above).
    unsafe {
        *ttl -= 1;
        if let Some(check) = v4 {
            *check = ttl_decremented_checksum(*check);
        }
        let eth = eth as *const Ethernet as *mut Ethernet;
        (*eth).dst = fib.dmac;
        (*eth).src = fib.smac;
    }
    Reason::Forwarded
}

/// The IPv4 header checksum after the TTL dropped by one, updated
/// incrementally as the kernel's `ip_decrease_ttl` does: the TTL is the
/// high byte of its 16-bit word, so the sum grows by 0x0100 (one's
/// complement, end-around carry).
#[inline(always)]
pub fn ttl_decremented_checksum(check: [u8; 2]) -> [u8; 2] {
    let sum = u16::from_be_bytes(check) as u32 + 0x0100;
    let folded = sum + u32::from(sum >= 0xffff);
    (folded as u16).to_be_bytes()
}

/// A 16-byte address as the four words `bpf_fib_lookup` takes (memory
/// order).
#[inline(always)]
fn words32(a: &[u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_ne_bytes([a[4], a[5], a[6], a[7]]),
        u32::from_ne_bytes([a[8], a[9], a[10], a[11]]),
        u32::from_ne_bytes([a[12], a[13], a[14], a[15]]),
    ]
}

/// The XDP action of `reason` (`XDP_REDIRECT` needs the redirect above to
/// have been set up, which only [`forward`] does).
#[inline(always)]
pub fn action(reason: Reason) -> u32 {
    match reason.action() {
        pinhole_common::Action::Pass => xdp_action::XDP_PASS,
        pinhole_common::Action::Drop => xdp_action::XDP_DROP,
        pinhole_common::Action::Redirect => xdp_action::XDP_REDIRECT,
    }
}
