//! Frame classification: Ethernet → up to two VLAN tags → IPv4 (IHL, options,
//! fragments) or IPv6 (extension headers, fragment header) → UDP → media port
//! check → exact 5-tuple lookup. Returns the [`Reason`] the packet is counted
//! under; [`Reason::action`] turns it into a verdict.

use pinhole_common::{
    Config, FlowKey, FragmentPolicy, Reason, FAMILY_V4, FAMILY_V6, IPPROTO_UDP,
    MAX_IPV6_EXT_HEADERS, MAX_VLAN_TAGS,
};

use core::mem::size_of;

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
    match l3(&mut c, cfg, lookup) {
        Ok(r) | Err(r) => r,
    }
}

#[inline(always)]
fn l3(c: &mut Cursor, cfg: &Config, lookup: impl FnOnce(&FlowKey) -> bool) -> Result<Reason, Reason> {
    // A runt frame without an EtherType cannot be IP.
    let Ok(eth) = c.take::<Ethernet>() else {
        return Ok(Reason::NotIp);
    };
    let mut ethertype = be16(eth.ethertype);
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        ethertype = be16(c.take::<VlanTag>()?.ethertype);
    }
    match ethertype {
        ETH_P_IPV4 => ipv4(c, cfg, lookup),
        ETH_P_IPV6 => ipv6(c, cfg, lookup),
        // A third tag: the kernel could still strip it and deliver IP, which
        // we cannot see. Fail closed.
        ETH_P_8021Q | ETH_P_8021AD => Err(Reason::Malformed),
        _ => Ok(Reason::NotIp),
    }
}

#[inline(always)]
fn ipv4(c: &mut Cursor, cfg: &Config, lookup: impl FnOnce(&FlowKey) -> bool) -> Result<Reason, Reason> {
    let frame_left = c.remaining();
    let ip = c.take::<Ipv4>()?;
    let ihl = (ip.version_ihl & 0x0f) as usize * 4;
    if ip.version_ihl >> 4 != 4 || ihl < 20 {
        return Err(Reason::Malformed);
    }
    let total = be16(ip.total_len) as usize;
    if total < ihl || total > frame_left {
        return Err(Reason::Malformed);
    }
    // Bytes after the datagram (Ethernet padding or other trailer).
    let trailer = frame_left - total;
    if ip.proto != IPPROTO_UDP {
        return Ok(Reason::NotUdp);
    }
    if be16(ip.frag) & 0x1fff != 0 {
        return Ok(fragment(cfg));
    }
    c.skip(ihl - 20)?;
    let mut key = FlowKey {
        family: FAMILY_V4,
        proto: IPPROTO_UDP,
        ..FlowKey::default()
    };
    key.src_addr[..4].copy_from_slice(&ip.src);
    key.dst_addr[..4].copy_from_slice(&ip.dst);
    udp(c, cfg, key, trailer, lookup)
}

#[inline(always)]
fn ipv6(c: &mut Cursor, cfg: &Config, lookup: impl FnOnce(&FlowKey) -> bool) -> Result<Reason, Reason> {
    let ip = c.take::<Ipv6>()?;
    if ip.version_class_flow[0] >> 4 != 6 {
        return Err(Reason::Malformed);
    }
    // A zero payload length announces a jumbogram, which cannot carry UDP
    // in a frame this program sees (it does not handle XDP fragments): the
    // UDP check below fails it.
    let payload_len = be16(ip.payload_len) as usize;
    let frame_left = c.remaining();
    if payload_len > frame_left {
        return Err(Reason::Malformed);
    }
    let trailer = frame_left - payload_len;
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
    if is_ext(next) {
        return Err(Reason::ExtHeaderLimit);
    }
    if next != IPPROTO_UDP {
        return Ok(Reason::NotUdp);
    }
    let mut key = FlowKey {
        family: FAMILY_V6,
        proto: IPPROTO_UDP,
        ..FlowKey::default()
    };
    key.src_addr = ip.src;
    key.dst_addr = ip.dst;
    udp(c, cfg, key, trailer, lookup)
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

/// Reads the UDP header, which must end inside the IP datagram: `trailer` is
/// how many bytes of the frame follow the datagram. Bytes past the datagram
/// are trimmed by the kernel before UDP sees them, and a first fragment too
/// short to hold the header would let the port arrive in a later fragment,
/// which carries no port to filter on (the tiny-fragment evasion).
#[inline(always)]
fn udp(
    c: &mut Cursor,
    cfg: &Config,
    mut key: FlowKey,
    trailer: usize,
    lookup: impl FnOnce(&FlowKey) -> bool,
) -> Result<Reason, Reason> {
    if c.remaining() < trailer + size_of::<Udp>() {
        return Err(Reason::Malformed);
    }
    let udp = c.take::<Udp>()?;
    let dst = be16(udp.dst);
    if !cfg.is_media_port(dst) {
        return Ok(Reason::NotMediaPort);
    }
    key.src_port = be16(udp.src);
    key.dst_port = dst;
    Ok(if lookup(&key) { Reason::Hit } else { Reason::Miss })
}
