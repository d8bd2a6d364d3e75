//! Frame classification: Ethernet → up to two VLAN tags → (a PPPoE session
//! and its PPP protocol →) IPv4 (IHL, options, fragments) or IPv6 (extension
//! headers, fragment header) → UDP → media port check → (destination prefix
//! check, when `--media-prefix` is set →) exact 5-tuple lookup in the map of
//! the packet's family. On links without a link-layer header ([`Link::Ip`])
//! the walk starts at the IP header. Returns the [`Reason`] the packet is
//! counted under; [`Reason::action`] turns it into a verdict.
//!
//! Cost matters here: the flow key is only built once a packet is known to be
//! UDP to a media port, so traffic the filter does not protect pays for the
//! header walk and nothing else.

use core::mem::size_of;

use pinhole_common::{
    Config, FlowKeyV4, FlowKeyV6, FragmentPolicy, Reason, IPPROTO_UDP, MAX_IPV6_EXT_HEADERS,
    MAX_MEDIA_PREFIXES, MAX_PORT_RANGES, MAX_VLAN_TAGS,
};

use crate::cursor::{Cursor, Truncated};
use crate::headers::*;

impl From<Truncated> for Reason {
    #[inline(always)]
    fn from(_: Truncated) -> Reason {
        Reason::Malformed
    }
}

/// The open flows, one lookup per family. Each method returns the packet's
/// reason: [`Reason::Hit`] when the flow is open (and accounts the packet to
/// it), otherwise what the miss path decided ([`Reason::Miss`], or a latch
/// reason).
pub trait Flows {
    fn hit_v4(self, key: &KeyV4) -> Reason;
    fn hit_v6(self, key: &KeyV6) -> Reason;
}

/// What a frame starts with. Each XDP program is built for one (the argument
/// is a constant at every call site), so the Ethernet program carries no
/// test of it.
#[derive(Clone, Copy)]
pub enum Link {
    /// An Ethernet header (Ethernet, veth, bridges, bonds, VLAN devices).
    Ethernet,
    /// The IP header: links without a link-layer header (tun, WireGuard,
    /// PPP), as skb-mode XDP hands their frames over.
    Ip,
}

/// Classifies the frame in `ctx`, which starts as `link` says. `flows` is
/// asked once, and only for UDP to a protected media port, with the packet's
/// exact 5-tuple in its family's key.
#[inline(always)]
pub fn classify(
    ctx: &aya_ebpf::programs::XdpContext,
    link: Link,
    cfg: &Config,
    flows: impl Flows,
) -> Reason {
    let mut c = Cursor::new(ctx.data(), ctx.data_end());
    let walk = match link {
        Link::Ethernet => ethernet(&mut c, cfg, flows),
        Link::Ip => ip(&mut c, cfg, flows),
    };
    // Ok and Err both carry the reason; Err only ends the walk early (`?`).
    match walk {
        Ok(r) | Err(r) => r,
    }
}

/// A frame without a link-layer header: the IP version nibble says which
/// family, as it does for the kernel (tun without packet information, PPP
/// after the protocol field was pulled, WireGuard). Anything else is not IP
/// to the kernel either.
#[inline(always)]
fn ip(c: &mut Cursor, cfg: &Config, flows: impl Flows) -> Result<Reason, Reason> {
    // Two bytes, not one: LLVM turns a one-byte bound at the very start of
    // the packet (`data + 1 > data_end`) into a 32-bit `data >= data_end`,
    // which the verifier does not follow. No IP header is that short.
    let Ok([first, _]) = c.peek::<[u8; 2]>() else {
        return Ok(Reason::NotIp);
    };
    match *first >> 4 {
        4 => ipv4(c, cfg, flows),
        6 => ipv6(c, cfg, flows),
        _ => Ok(Reason::NotIp),
    }
}

#[inline(always)]
fn ethernet(c: &mut Cursor, cfg: &Config, flows: impl Flows) -> Result<Reason, Reason> {
    // A runt frame without an EtherType cannot be IP.
    let Ok(eth) = c.take::<Ethernet>() else {
        return Ok(Reason::NotIp);
    };
    let mut ethertype = be16(eth.ethertype);
    // IP is tested first: untagged IPv4 costs one comparison.
    let mut tags = 0;
    loop {
        match ethertype {
            ETH_P_IPV4 => return ipv4(c, cfg, flows),
            ETH_P_IPV6 => return ipv6(c, cfg, flows),
            ETH_P_8021Q | ETH_P_8021AD => {
                // A third tag: the kernel could still strip it and deliver
                // IP, which we cannot see. Fail closed.
                if tags == MAX_VLAN_TAGS {
                    return Err(Reason::Malformed);
                }
                tags += 1;
                ethertype = be16(c.take::<VlanTag>()?.ethertype);
            }
            // Tested after IP and VLAN: an IP frame never pays for it. The
            // IP walk is inlined a second time for it (the program grows
            // from 3.9 to 7.5 KB xlated); mapping the PPP protocol back to
            // an EtherType and going round this loop again would emit it
            // once, but LLVM then tests 0x8864 before IPv4 and the IPv4
            // path gets longer.
            ETH_P_PPP_SES => return pppoe(c, cfg, flows),
            _ => return Ok(Reason::NotIp),
        }
    }
}

/// A PPPoE session frame: the session header, then the PPP protocol field,
/// then (for IPv4 and IPv6) the datagram. The kernel's PPPoE receive path
/// trims the frame to the session's `length` and PPP accepts a compressed
/// (one-byte, odd) protocol field, so both are honoured: nothing the kernel
/// would hand to IP escapes the walk. Bytes past `length` (Ethernet padding)
/// are still visible to the IP checks, which can only make them stricter
/// than the kernel's, never looser.
#[inline(always)]
fn pppoe(c: &mut Cursor, cfg: &Config, flows: impl Flows) -> Result<Reason, Reason> {
    let h = c.take::<PppoeSession>()?;
    // A session frame the kernel would drop (length past the frame) or that
    // no session sends: fail closed.
    if h.ver_type != PPPOE_VER_TYPE || h.code != 0 || be16(h.length) as usize > c.remaining() {
        return Err(Reason::Malformed);
    }
    let hi = *c.take::<u8>()?;
    let proto = if hi & 1 != 0 {
        hi as u16
    } else {
        u16::from_be_bytes([hi, *c.take::<u8>()?])
    };
    match proto {
        PPP_IPV4 => ipv4(c, cfg, flows),
        PPP_IPV6 => ipv6(c, cfg, flows),
        _ => Ok(Reason::NotIp),
    }
}

#[inline(always)]
fn ipv4(c: &mut Cursor, cfg: &Config, flows: impl Flows) -> Result<Reason, Reason> {
    let frame_left = c.remaining();
    let ip = c.take::<Ipv4>()?;
    // Nearly every packet is version 4 with no options (0x45): one compare.
    let ihl = if ip.version_ihl == 0x45 {
        size_of::<Ipv4>()
    } else {
        let ihl = (ip.version_ihl & 0x0f) as usize * 4;
        if ip.version_ihl >> 4 != 4 || ihl < size_of::<Ipv4>() {
            return Err(Reason::Malformed);
        }
        c.skip(ihl - size_of::<Ipv4>())?;
        ihl
    };
    let total = be16(ip.total_len) as usize;
    if total < ihl || total > frame_left {
        return Err(Reason::Malformed);
    }
    if ip.proto != IPPROTO_UDP {
        return Ok(Reason::NotUdp);
    }
    if be16(ip.frag) & 0x1fff != 0 {
        return Ok(fragment(cfg));
    }
    // The UDP header must end inside the datagram (see `udp`).
    if total < ihl + size_of::<Udp>() {
        return Err(Reason::Malformed);
    }
    let ports = udp(c, cfg)?;
    let key = KeyV4::new(ip, ports);
    // From the key's words, not the packet: reading the address again made
    // LLVM build the key byte by byte (slower for every media packet).
    if !protects_v4(cfg, key.dst()) {
        return Ok(Reason::NotMediaPrefix);
    }
    Ok(flows.hit_v4(&key))
}

#[inline(always)]
fn ipv6(c: &mut Cursor, cfg: &Config, flows: impl Flows) -> Result<Reason, Reason> {
    let ip = c.take::<Ipv6>()?;
    if ip.version_class_flow[0] >> 4 != 6 {
        return Err(Reason::Malformed);
    }
    // A zero payload length announces a jumbogram, which cannot carry UDP in
    // a frame this program sees (it does not handle XDP fragments): the UDP
    // check fails it.
    let payload_len = be16(ip.payload_len) as usize;
    let frame_left = c.remaining();
    if payload_len > frame_left {
        return Err(Reason::Malformed);
    }
    let mut next = ip.next_header;
    let mut hops = 0;
    while hops < MAX_IPV6_EXT_HEADERS {
        match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let ext = c.take::<Ipv6ExtPrefix>()?;
                next = ext.next_header;
                c.skip(ext.len as usize * 8 + 6)?;
            }
            IPPROTO_AH => {
                let ext = c.take::<Ipv6ExtPrefix>()?;
                next = ext.next_header;
                c.skip(ext.len as usize * 4 + 6)?;
            }
            IPPROTO_FRAGMENT => {
                let frag = c.take::<Ipv6Fragment>()?;
                next = frag.next_header;
                if be16(frag.offset_flags) & 0xfff8 != 0 {
                    // A non-first fragment: what follows is the middle of a
                    // datagram. Only UDP (or headers that may precede it) can
                    // be aimed at a media port.
                    return Ok(if next == IPPROTO_UDP || is_ext(next) {
                        fragment(cfg)
                    } else {
                        Reason::NotUdp
                    });
                }
            }
            _ => break,
        }
        hops += 1;
    }
    if next != IPPROTO_UDP {
        return Ok(if is_ext(next) {
            Reason::ExtHeaderLimit
        } else {
            Reason::NotUdp
        });
    }
    // The UDP header must end inside the datagram (see `udp`): `trailer` is
    // how many bytes of the frame follow it.
    let trailer = frame_left - payload_len;
    if c.remaining() < trailer + size_of::<Udp>() {
        return Err(Reason::Malformed);
    }
    let ports = udp(c, cfg)?;
    let key = KeyV6::new(ip, ports);
    // From the key's words, as for IPv4.
    if !protects_v6(cfg, [key.addrs[2], key.addrs[3]]) {
        return Ok(Reason::NotMediaPrefix);
    }
    Ok(flows.hit_v6(&key))
}

#[inline(always)]
fn is_ext(next: u8) -> bool {
    matches!(
        next,
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_FRAGMENT | IPPROTO_AH
    )
}

#[inline(always)]
fn fragment(cfg: &Config) -> Reason {
    if cfg.fragment_policy == FragmentPolicy::Drop as u32 {
        Reason::FragmentDrop
    } else {
        Reason::FragmentPass
    }
}

/// Reads the UDP header and, when its destination is a media port, returns
/// its source and destination ports as one word in memory (network) order:
/// the last four bytes of both flow keys, taken with one load and no byte
/// swap. Otherwise ends classification with `NotMediaPort`.
///
/// Callers first check that the header ends inside the IP datagram, not just
/// inside the frame: the kernel trims bytes past the datagram before UDP sees
/// them, and a first fragment too short to hold the header would let the
/// port arrive in a later fragment, which carries no port to filter on (the
/// tiny-fragment evasion).
#[inline(always)]
fn udp(c: &mut Cursor, cfg: &Config) -> Result<u32, Reason> {
    let udp = c.take::<Udp>()?;
    let ports = u32::from_ne_bytes([udp.src[0], udp.src[1], udp.dst[0], udp.dst[1]]);
    let [_, _, d0, d1] = ports.to_ne_bytes();
    if !is_media_port(cfg, u16::from_be_bytes([d0, d1])) {
        return Err(Reason::NotMediaPort);
    }
    Ok(ports)
}

/// A [`FlowKeyV4`] built on the stack as one 64-bit and one 32-bit store.
/// Field by field, LLVM (with misaligned access allowed, see
/// .cargo/config.toml) merges stores into misaligned stack writes, which the
/// verifier rejects; the 8-byte alignment rules that out.
#[repr(C, align(8))]
pub struct KeyV4 {
    /// Source then destination address, as on the wire.
    pub addrs: u64,
    /// Source then destination port, as on the wire.
    pub ports: u32,
}

impl KeyV4 {
    #[inline(always)]
    fn new(ip: &Ipv4, ports: u32) -> KeyV4 {
        let a = ip.src;
        let b = ip.dst;
        KeyV4 {
            addrs: u64::from_ne_bytes([a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]),
            ports,
        }
    }

    /// The destination address as a word in memory order (as
    /// `u32::from_ne_bytes` of its bytes).
    #[inline(always)]
    fn dst(&self) -> u32 {
        let b = self.addrs.to_ne_bytes();
        u32::from_ne_bytes([b[4], b[5], b[6], b[7]])
    }

    #[inline(always)]
    pub fn get(&self) -> &FlowKeyV4 {
        // SAFETY: the first 12 bytes of KeyV4 are FlowKeyV4's fields in order
        // (offsets asserted below), FlowKeyV4 is plain integers without
        // padding, and KeyV4 is at least as aligned.
        unsafe { &*(self as *const KeyV4 as *const FlowKeyV4) }
    }
}

/// A [`FlowKeyV6`] built on the stack as four 64-bit and one 32-bit store
/// (see [`KeyV4`] for why).
#[repr(C, align(8))]
pub struct KeyV6 {
    /// Source then destination address, as on the wire.
    pub addrs: [u64; 4],
    /// Source then destination port, as on the wire.
    pub ports: u32,
}

impl KeyV6 {
    #[inline(always)]
    fn new(ip: &Ipv6, ports: u32) -> KeyV6 {
        let [s0, s1] = words(&ip.src);
        let [d0, d1] = words(&ip.dst);
        KeyV6 {
            addrs: [s0, s1, d0, d1],
            ports,
        }
    }

    #[inline(always)]
    pub fn get(&self) -> &FlowKeyV6 {
        // SAFETY: as for KeyV4::get.
        unsafe { &*(self as *const KeyV6 as *const FlowKeyV6) }
    }
}

// The stack images must match the map keys byte for byte.
const _: () = {
    use core::mem::{align_of, offset_of};
    assert!(offset_of!(FlowKeyV4, src) == offset_of!(KeyV4, addrs));
    assert!(offset_of!(FlowKeyV4, dst) == offset_of!(KeyV4, addrs) + 4);
    assert!(offset_of!(FlowKeyV4, src_port) == offset_of!(KeyV4, ports));
    assert!(offset_of!(FlowKeyV4, dst_port) == offset_of!(KeyV4, ports) + 2);
    assert!(size_of::<FlowKeyV4>() == offset_of!(KeyV4, ports) + 4);
    assert!(align_of::<FlowKeyV4>() <= align_of::<KeyV4>());
    assert!(offset_of!(FlowKeyV6, src) == offset_of!(KeyV6, addrs));
    assert!(offset_of!(FlowKeyV6, dst) == offset_of!(KeyV6, addrs) + 16);
    assert!(offset_of!(FlowKeyV6, src_port) == offset_of!(KeyV6, ports));
    assert!(offset_of!(FlowKeyV6, dst_port) == offset_of!(KeyV6, ports) + 2);
    assert!(size_of::<FlowKeyV6>() == offset_of!(KeyV6, ports) + 4);
    assert!(align_of::<FlowKeyV6>() <= align_of::<KeyV6>());
};

/// A 16-byte address as two words in memory order.
#[inline(always)]
fn words(addr: &[u8; 16]) -> [u64; 2] {
    let mut lo = [0; 8];
    let mut hi = [0; 8];
    lo.copy_from_slice(&addr[..8]);
    hi.copy_from_slice(&addr[8..]);
    [u64::from_ne_bytes(lo), u64::from_ne_bytes(hi)]
}

/// [`Config::is_media_port`], unrolled by hand: range `i` is checked only
/// when `i < n_ranges`, and as `n_ranges` comes from frozen `.rodata` the
/// verifier knows it, so it never walks into the checks of unused ranges and
/// removes them as dead code. (LLVM keeps the loop form as a real loop.)
#[inline(always)]
fn is_media_port(cfg: &Config, port: u16) -> bool {
    macro_rules! check {
        ($($i:literal)*) => {$(
            if cfg.n_ranges <= $i {
                return false;
            }
            let r = cfg.ranges[$i];
            if port >= r.lo && port <= r.hi {
                return true;
            }
        )*};
    }
    const _: () = assert!(MAX_PORT_RANGES == 8);
    check!(0 1 2 3 4 5 6 7);
    false
}

/// [`Config::protects_v4`] for the destination `dst` (a word in memory
/// order), unrolled like [`is_media_port`]: with
/// `media_prefixes` zero in frozen `.rodata` the verifier removes all of it,
/// and otherwise it walks only the prefixes in use.
#[inline(always)]
fn protects_v4(cfg: &Config, dst: u32) -> bool {
    if cfg.media_prefixes == 0 {
        return true;
    }
    macro_rules! check {
        ($($i:literal)*) => {$(
            if cfg.n_prefixes4 <= $i {
                return false;
            }
            let p = &cfg.prefixes4[$i];
            if dst & u32::from_ne_bytes(p.mask) == u32::from_ne_bytes(p.net) {
                return true;
            }
        )*};
    }
    const _: () = assert!(MAX_MEDIA_PREFIXES == 8);
    check!(0 1 2 3 4 5 6 7);
    false
}

/// [`Config::protects_v6`], as [`protects_v4`], on the destination as two
/// 64-bit words in memory order.
#[inline(always)]
fn protects_v6(cfg: &Config, [d0, d1]: [u64; 2]) -> bool {
    if cfg.media_prefixes == 0 {
        return true;
    }
    macro_rules! check {
        ($($i:literal)*) => {$(
            if cfg.n_prefixes6 <= $i {
                return false;
            }
            let p = &cfg.prefixes6[$i];
            let [n0, n1] = words(&p.net);
            let [m0, m1] = words(&p.mask);
            if d0 & m0 == n0 && d1 & m1 == n1 {
                return true;
            }
        )*};
    }
    check!(0 1 2 3 4 5 6 7);
    false
}
