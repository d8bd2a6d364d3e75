//! Frame classification: Ethernet → up to two VLAN tags → IPv4 (IHL, options,
//! fragments) or IPv6 (extension headers, fragment header) → UDP → media port
//! check → exact 5-tuple lookup. Returns the [`Reason`] the packet is counted
//! under; [`Reason::action`] turns it into a verdict.
//!
//! Cost matters here: the flow key is only built once a packet is known to be
//! UDP to a media port, so traffic the filter does not protect pays for the
//! header walk and nothing else.

use core::mem::size_of;

use pinhole_common::{
    Config, FlowKey, FragmentPolicy, Reason, FAMILY_V4, FAMILY_V6, IPPROTO_UDP,
    MAX_IPV6_EXT_HEADERS, MAX_PORT_RANGES, MAX_VLAN_TAGS,
};

use crate::cursor::{Cursor, Truncated};
use crate::headers::*;

impl From<Truncated> for Reason {
    #[inline(always)]
    fn from(_: Truncated) -> Reason {
        Reason::Malformed
    }
}

/// Classifies the frame in `ctx`. `lookup` is called once, and only for UDP to a
/// media port, with the packet's exact 5-tuple; it returns whether that flow is open.
#[inline(always)]
pub fn classify(
    ctx: &aya_ebpf::programs::XdpContext,
    cfg: &Config,
    lookup: impl FnOnce(&FlowKey) -> bool,
) -> Reason {
    let mut c = Cursor::new(ctx.data(), ctx.data_end());
    // Ok and Err both carry the reason; Err only ends the walk early (`?`).
    match l3(&mut c, cfg, lookup) {
        Ok(r) | Err(r) => r,
    }
}

#[inline(always)]
fn l3(
    c: &mut Cursor,
    cfg: &Config,
    lookup: impl FnOnce(&FlowKey) -> bool,
) -> Result<Reason, Reason> {
    // A runt frame without an EtherType cannot be IP.
    let Ok(eth) = c.take::<Ethernet>() else {
        return Ok(Reason::NotIp);
    };
    let mut ethertype = be16(eth.ethertype);
    // IP is tested first: untagged IPv4 costs one comparison.
    let mut tags = 0;
    loop {
        match ethertype {
            ETH_P_IPV4 => return ipv4(c, cfg, lookup),
            ETH_P_IPV6 => return ipv6(c, cfg, lookup),
            ETH_P_8021Q | ETH_P_8021AD => {
                // A third tag: the kernel could still strip it and deliver
                // IP, which we cannot see. Fail closed.
                if tags == MAX_VLAN_TAGS {
                    return Err(Reason::Malformed);
                }
                tags += 1;
                ethertype = be16(c.take::<VlanTag>()?.ethertype);
            }
            _ => return Ok(Reason::NotIp),
        }
    }
}

#[inline(always)]
fn ipv4(
    c: &mut Cursor,
    cfg: &Config,
    lookup: impl FnOnce(&FlowKey) -> bool,
) -> Result<Reason, Reason> {
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
    let (src_port, dst_port) = udp(c, cfg)?;
    // An IPv4 address fills the first 4 bytes of its 16-byte key field.
    let src = u32::from_ne_bytes(ip.src) as u64;
    let dst = u32::from_ne_bytes(ip.dst) as u64;
    let key = Key::new(FAMILY_V4, src_port, dst_port, [src, 0], [dst, 0]);
    Ok(verdict(lookup, key.get()))
}

#[inline(always)]
fn ipv6(
    c: &mut Cursor,
    cfg: &Config,
    lookup: impl FnOnce(&FlowKey) -> bool,
) -> Result<Reason, Reason> {
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
    let (src_port, dst_port) = udp(c, cfg)?;
    let key = Key::new(
        FAMILY_V6,
        src_port,
        dst_port,
        words(&ip.src),
        words(&ip.dst),
    );
    Ok(verdict(lookup, key.get()))
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

/// Reads the UDP header and returns its (source, destination) ports when the
/// destination is a media port; otherwise ends classification with
/// `NotMediaPort`.
///
/// Callers first check that the header ends inside the IP datagram, not just
/// inside the frame: the kernel trims bytes past the datagram before UDP sees
/// them, and a first fragment too short to hold the header would let the
/// port arrive in a later fragment, which carries no port to filter on (the
/// tiny-fragment evasion).
#[inline(always)]
fn udp(c: &mut Cursor, cfg: &Config) -> Result<(u16, u16), Reason> {
    let udp = c.take::<Udp>()?;
    let dst = be16(udp.dst);
    if !is_media_port(cfg, dst) {
        return Err(Reason::NotMediaPort);
    }
    Ok((be16(udp.src), dst))
}

/// A [`FlowKey`] built as the five 64-bit words it occupies, so that filling
/// it costs five aligned stores. Built field by field, LLVM emits `memset`
/// calls for the zero parts of IPv4 keys, and (with misaligned access allowed,
/// see .cargo/config.toml) it merges stores into misaligned stack writes,
/// which the verifier rejects. The 8-byte alignment rules out both.
#[repr(C, align(8))]
union Key {
    key: FlowKey,
    words: [u64; 5],
}

// Word 0 packs family, proto, padding and the ports in memory order, which
// is only right on a little-endian target (bpfel).
const _: () = assert!(cfg!(target_endian = "little"));
const _: () = assert!(size_of::<FlowKey>() == size_of::<[u64; 5]>());

impl Key {
    #[inline(always)]
    fn new(family: u8, src_port: u16, dst_port: u16, src: [u64; 2], dst: [u64; 2]) -> Key {
        // FlowKey: family @0, proto @1, _pad @2..4, src_port @4, dst_port @6,
        // src_addr @8..24, dst_addr @24..40.
        let head = family as u64
            | (IPPROTO_UDP as u64) << 8
            | (src_port as u64) << 32
            | (dst_port as u64) << 48;
        Key {
            words: [head, src[0], src[1], dst[0], dst[1]],
        }
    }

    #[inline(always)]
    fn get(&self) -> &FlowKey {
        // SAFETY: FlowKey is plain integers without padding (size asserted
        // above), so every bit pattern of the words is a valid FlowKey.
        unsafe { &self.key }
    }
}

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

#[inline(always)]
fn verdict(lookup: impl FnOnce(&FlowKey) -> bool, key: &FlowKey) -> Reason {
    if lookup(key) {
        Reason::Hit
    } else {
        Reason::Miss
    }
}
