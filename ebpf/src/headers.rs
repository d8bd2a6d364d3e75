//! Wire headers as byte arrays (alignment 1), so reads need no alignment and
//! multi-byte fields are converted explicitly from network byte order.

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Ethernet {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ethertype: [u8; 2],
}

/// The 4 bytes of an 802.1Q / 802.1ad tag after the outer EtherType.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct VlanTag {
    pub tci: [u8; 2],
    pub ethertype: [u8; 2],
}

/// A PPPoE session header (RFC 2516), after the Ethernet (and VLAN) header
/// of EtherType 0x8864. The PPP protocol field follows.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct PppoeSession {
    /// Version and type, 0x11.
    pub ver_type: u8,
    /// 0x00 for session data.
    pub code: u8,
    pub session_id: [u8; 2],
    /// Bytes after this header: the PPP protocol field and its payload.
    pub length: [u8; 2],
}

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Ipv4 {
    pub version_ihl: u8,
    pub tos: u8,
    pub total_len: [u8; 2],
    pub id: [u8; 2],
    pub frag: [u8; 2],
    pub ttl: u8,
    pub proto: u8,
    pub check: [u8; 2],
    pub src: [u8; 4],
    pub dst: [u8; 4],
}

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Ipv6 {
    pub version_class_flow: [u8; 4],
    pub payload_len: [u8; 2],
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

/// The first two bytes shared by hop-by-hop, routing, destination-options and
/// AH headers.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Ipv6ExtPrefix {
    pub next_header: u8,
    pub len: u8,
}

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Ipv6Fragment {
    pub next_header: u8,
    pub reserved: u8,
    /// Offset in 8-byte units (13 bits), 2 reserved bits, M flag.
    pub offset_flags: [u8; 2],
    pub id: [u8; 4],
}

#[derive(Clone, Copy)]
#[repr(C)]
pub struct Udp {
    pub src: [u8; 2],
    pub dst: [u8; 2],
    pub len: [u8; 2],
    pub check: [u8; 2],
}

pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
pub const ETH_P_PPP_SES: u16 = 0x8864;

/// PPPoE version 1, type 1.
pub const PPPOE_VER_TYPE: u8 = 0x11;
/// PPP protocol numbers of IPv4 and IPv6 datagrams.
pub const PPP_IPV4: u16 = 0x0021;
pub const PPP_IPV6: u16 = 0x0057;

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_AH: u8 = 51;
pub const IPPROTO_DSTOPTS: u8 = 60;

#[inline(always)]
pub fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}
