//! A small builder for the Ethernet frames the XDP tests and the benchmark feed
//! to `BPF_PROG_TEST_RUN`: up to three VLAN tags, a PPPoE session, IPv4 with
//! options and fragments, IPv6 with extension headers, UDP/TCP/ICMP and a
//! payload. [`Built::ip_only`] is the same packet as a link without a
//! link-layer header (tun, WireGuard, PPP) hands it over.
//!
//! Every length field (IPv4 total length, IPv6 payload length, UDP length,
//! extension header lengths) is computed from what is actually emitted, and
//! checksums are filled in, so a built frame is valid unless a test breaks it on
//! purpose. [`Built::headers`] records where each header starts and ends, so a
//! test can truncate at (or one byte into) every header boundary, or patch a
//! single field.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// TPID of an 802.1Q (customer) VLAN tag.
pub const TPID_8021Q: u16 = 0x8100;
/// TPID of an 802.1ad (service, "QinQ" outer) VLAN tag.
pub const TPID_8021AD: u16 = 0x88a8;

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;
/// EtherType of PPPoE session frames.
pub const ETH_P_PPP_SES: u16 = 0x8864;
/// PPP protocol numbers.
pub const PPP_IPV4: u16 = 0x0021;
pub const PPP_IPV6: u16 = 0x0057;
/// PPP's Link Control Protocol, a non-IP protocol of every session.
pub const PPP_LCP: u16 = 0xc021;

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
const PROTO_HOPOPTS: u8 = 0;
const PROTO_ROUTING: u8 = 43;
const PROTO_FRAGMENT: u8 = 44;
const PROTO_AH: u8 = 51;
const PROTO_NONE: u8 = 59;
const PROTO_DSTOPTS: u8 = 60;

/// Source MAC (locally administered) of every built frame.
pub const SRC_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Destination MAC (locally administered) of every built frame.
pub const DST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

/// The transport part of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    Udp,
    Tcp,
    /// ICMP echo request (ICMPv6 over IPv6).
    Icmp,
    /// Raw IP protocol number with no transport header, e.g. 50 (ESP) or 59
    /// (IPv6 "no next header").
    Other(u8),
}

/// One IPv6 extension header. `len` is the raw 8-bit length field as it goes on
/// the wire: the header is `(len + 1) * 8` bytes for hop-by-hop, routing and
/// destination options, and `(len + 2) * 4` bytes for AH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ext {
    HopByHop {
        len: u8,
    },
    Routing {
        len: u8,
    },
    DestOpts {
        len: u8,
    },
    Ah {
        len: u8,
    },
    /// Fragment header; `offset` is in 8-byte units. A non-zero offset makes
    /// the frame a non-first fragment, which carries no transport header.
    Fragment {
        offset: u16,
        more: bool,
    },
}

impl Ext {
    fn proto(self) -> u8 {
        match self {
            Ext::HopByHop { .. } => PROTO_HOPOPTS,
            Ext::Routing { .. } => PROTO_ROUTING,
            Ext::DestOpts { .. } => PROTO_DSTOPTS,
            Ext::Ah { .. } => PROTO_AH,
            Ext::Fragment { .. } => PROTO_FRAGMENT,
        }
    }

    /// Wire size of the header.
    pub fn size(self) -> usize {
        match self {
            Ext::HopByHop { len } | Ext::Routing { len } | Ext::DestOpts { len } => {
                (len as usize + 1) * 8
            }
            Ext::Ah { len } => (len as usize + 2) * 4,
            Ext::Fragment { .. } => 8,
        }
    }

    fn emit(self, next: u8, out: &mut Vec<u8>) {
        let start = out.len();
        match self {
            Ext::HopByHop { len } | Ext::DestOpts { len } => {
                // PadN options (2 to 257 bytes each) fill the 6 + 8 * len
                // option bytes; no chunk leaves a single byte behind.
                out.extend_from_slice(&[next, len]);
                let mut left = 6 + 8 * len as usize;
                while left > 0 {
                    let mut n = left.min(257);
                    if left - n == 1 {
                        n -= 1;
                    }
                    out.extend_from_slice(&[1, (n - 2) as u8]);
                    out.resize(out.len() + n - 2, 0);
                    left -= n;
                }
            }
            Ext::Routing { len } => {
                // Type 253 (RFC 4727 experiment) with segments left 0: a node
                // ignores it and goes on to the next header.
                out.extend_from_slice(&[next, len, 253, 0]);
            }
            Ext::Ah { len } => {
                out.extend_from_slice(&[next, len, 0, 0]);
                out.extend_from_slice(&0x100u32.to_be_bytes()); // SPI
                out.extend_from_slice(&1u32.to_be_bytes()); // sequence number
            }
            Ext::Fragment { offset, more } => {
                let of = (offset << 3) | u16::from(more);
                out.extend_from_slice(&[next, 0]);
                out.extend_from_slice(&of.to_be_bytes());
                out.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            }
        }
        out.resize(start + self.size(), 0);
    }
}

/// Which header a byte range of a built frame belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderKind {
    Ethernet,
    Vlan,
    /// The PPPoE session header (6 bytes) and the PPP protocol field (2).
    Pppoe,
    Ipv4,
    Ipv4Options,
    Ipv6,
    Ext(Ext),
    Udp,
    Tcp,
    Icmp,
    Payload,
}

/// Where one header lies in a built frame: `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: HeaderKind,
    pub start: usize,
    pub end: usize,
}

/// A built frame and its header layout.
#[derive(Clone, Debug)]
pub struct Built {
    pub bytes: Vec<u8>,
    pub headers: Vec<Header>,
}

impl Built {
    /// The first header of `kind`'s variant (fields of `Ext` are ignored).
    pub fn header(&self, kind: HeaderKind) -> Option<Header> {
        self.headers
            .iter()
            .copied()
            .find(|h| std::mem::discriminant(&h.kind) == std::mem::discriminant(&kind))
    }

    /// Offset of the IP header (after Ethernet and VLAN tags).
    pub fn l3_offset(&self) -> usize {
        self.headers
            .iter()
            .find(|h| matches!(h.kind, HeaderKind::Ipv4 | HeaderKind::Ipv6))
            .map(|h| h.start)
            .expect("frame has no IP header")
    }

    /// The packet from its IP header on: the frame as a link without a
    /// link-layer header (tun, WireGuard, PPP) delivers it.
    pub fn ip_only(&self) -> Vec<u8> {
        self.bytes[self.l3_offset()..].to_vec()
    }

    /// The first `len` bytes of the frame, with no length field fixed up.
    pub fn truncated(&self, len: usize) -> Vec<u8> {
        truncate(&self.bytes, len)
    }

    /// Sets the IPv4 TTL (its header checksum recomputed) or the IPv6 hop
    /// limit.
    pub fn set_ttl(&mut self, ttl: u8) {
        let l3 = self.l3_offset();
        if self.header(HeaderKind::Ipv4).is_some() {
            let ihl = usize::from(self.bytes[l3] & 0x0f) * 4;
            self.bytes[l3 + 8] = ttl;
            self.set_be16(l3 + 10, 0);
            let sum = ip_checksum(&self.bytes[l3..l3 + ihl]);
            self.set_be16(l3 + 10, sum);
        } else {
            self.bytes[l3 + 7] = ttl;
        }
    }

    /// Overwrites two bytes at `offset` with `value` in network byte order.
    pub fn set_be16(&mut self, offset: usize, value: u16) {
        self.bytes[offset..offset + 2].copy_from_slice(&value.to_be_bytes());
    }
}

impl From<Built> for Vec<u8> {
    fn from(b: Built) -> Vec<u8> {
        b.bytes
    }
}

/// The first `len` bytes of `frame` (all of it if `len` is larger).
pub fn truncate(frame: &[u8], len: usize) -> Vec<u8> {
    frame[..len.min(frame.len())].to_vec()
}

/// A frame description. Start from [`Frame::udp`], [`Frame::tcp`] or
/// [`Frame::icmp`], adjust it with the builder methods, then [`Frame::build`].
#[derive(Clone, Debug)]
pub struct Frame {
    src: SocketAddr,
    dst: SocketAddr,
    tags: Vec<(u16, u16)>,
    pppoe: Option<u16>,
    l4: L4,
    ipv4_options: Vec<u8>,
    ipv4_fragment: (u16, bool),
    ext: Vec<Ext>,
    payload: usize,
    /// The payload's bytes, when not the default pattern.
    data: Option<Vec<u8>>,
}

impl Frame {
    /// UDP from `src` to `dst` with a 32-byte payload. The family comes from
    /// the addresses, which must agree.
    pub fn udp(src: SocketAddr, dst: SocketAddr) -> Frame {
        assert_eq!(src.is_ipv4(), dst.is_ipv4(), "mixed address families");
        Frame {
            src,
            dst,
            tags: Vec::new(),
            pppoe: None,
            l4: L4::Udp,
            ipv4_options: Vec::new(),
            ipv4_fragment: (0, false),
            ext: Vec::new(),
            payload: 32,
            data: None,
        }
    }

    /// TCP (a SYN) from `src` to `dst`.
    pub fn tcp(src: SocketAddr, dst: SocketAddr) -> Frame {
        Frame::udp(src, dst).l4(L4::Tcp)
    }

    /// ICMP (ICMPv6 for IPv6) echo request between the addresses of `src`
    /// and `dst` (ports unused).
    pub fn icmp(src: SocketAddr, dst: SocketAddr) -> Frame {
        Frame::udp(src, dst).l4(L4::Icmp)
    }

    /// Replaces the transport.
    pub fn l4(mut self, l4: L4) -> Frame {
        self.l4 = l4;
        self
    }

    /// Adds a VLAN tag with TPID `tpid` and VLAN id `vid`, outermost first.
    pub fn vlan(mut self, tpid: u16, vid: u16) -> Frame {
        self.tags.push((tpid, vid & 0x0fff));
        self
    }

    /// Carries the IP packet in a PPPoE session `session` (after any VLAN
    /// tags), with the PPP protocol of its family.
    pub fn pppoe(mut self, session: u16) -> Frame {
        self.pppoe = Some(session);
        self
    }

    /// IPv4 options; padded with End-of-Options to a multiple of 4 bytes
    /// (at most 40).
    pub fn ipv4_options(mut self, options: &[u8]) -> Frame {
        assert!(self.src.is_ipv4(), "IPv4 options on an IPv6 frame");
        let mut o = options.to_vec();
        o.resize(options.len().div_ceil(4) * 4, 0);
        assert!(o.len() <= 40, "IPv4 options exceed 40 bytes");
        self.ipv4_options = o;
        self
    }

    /// Makes the IPv4 packet a fragment: `offset` in 8-byte units, `more` the
    /// MF flag. A non-zero offset drops the transport header.
    pub fn ipv4_fragment(mut self, offset: u16, more: bool) -> Frame {
        assert!(self.src.is_ipv4(), "IPv4 fragment on an IPv6 frame");
        self.ipv4_fragment = (offset & 0x1fff, more);
        self
    }

    /// Appends an IPv6 extension header to the chain.
    pub fn ext(mut self, ext: Ext) -> Frame {
        assert!(self.src.is_ipv6(), "IPv6 extension header on an IPv4 frame");
        self.ext.push(ext);
        self
    }

    /// Sets the payload size after the transport header.
    pub fn payload(mut self, len: usize) -> Frame {
        self.payload = len;
        self.data = None;
        self
    }

    /// Sets the payload after the transport header to `data`.
    pub fn data(mut self, data: &[u8]) -> Frame {
        self.payload = data.len();
        self.data = Some(data.to_vec());
        self
    }

    fn non_first_fragment(&self) -> bool {
        self.ipv4_fragment.0 != 0
            || self
                .ext
                .iter()
                .any(|e| matches!(e, Ext::Fragment { offset, .. } if *offset != 0))
    }

    fn proto(&self) -> u8 {
        match (self.l4, self.src.is_ipv4()) {
            (L4::Udp, _) => PROTO_UDP,
            (L4::Tcp, _) => PROTO_TCP,
            (L4::Icmp, true) => PROTO_ICMP,
            (L4::Icmp, false) => PROTO_ICMPV6,
            (L4::Other(p), _) => p,
        }
    }

    /// Serialises the frame.
    pub fn build(&self) -> Built {
        let mut out = Vec::new();
        let mut headers = Vec::new();
        let mut mark = |kind, start, end: usize| headers.push(Header { kind, start, end });

        out.extend_from_slice(&DST_MAC);
        out.extend_from_slice(&SRC_MAC);
        let mut types: Vec<u16> = self.tags.iter().map(|t| t.0).collect();
        types.push(match (self.pppoe, self.src.is_ipv4()) {
            (Some(_), _) => ETH_P_PPP_SES,
            (None, true) => ETH_P_IPV4,
            (None, false) => ETH_P_IPV6,
        });
        out.extend_from_slice(&types[0].to_be_bytes());
        mark(HeaderKind::Ethernet, 0, out.len());
        for (i, (_, vid)) in self.tags.iter().enumerate() {
            let s = out.len();
            out.extend_from_slice(&vid.to_be_bytes());
            out.extend_from_slice(&types[i + 1].to_be_bytes());
            mark(HeaderKind::Vlan, s, out.len());
        }
        // The session length is patched in once the IP packet is known.
        let pppoe_at = self.pppoe.map(|session| {
            let s = out.len();
            out.extend_from_slice(&[0x11, 0x00]);
            out.extend_from_slice(&session.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
            let proto = if self.src.is_ipv4() {
                PPP_IPV4
            } else {
                PPP_IPV6
            };
            out.extend_from_slice(&proto.to_be_bytes());
            mark(HeaderKind::Pppoe, s, out.len());
            s
        });

        // Transport header and payload first, so IP lengths can be computed.
        let (l4, l4_kind) = self.transport();
        let l3 = out.len();
        match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let ihl = 20 + self.ipv4_options.len();
                let total = ihl + l4.len();
                let total = u16::try_from(total).expect("IPv4 datagram over 64 KiB");
                let (off, more) = self.ipv4_fragment;
                let frag = off | if more { 0x2000 } else { 0 };
                let mut ip = vec![0x40 | (ihl / 4) as u8, 0];
                ip.extend_from_slice(&total.to_be_bytes());
                ip.extend_from_slice(&0x4321u16.to_be_bytes());
                ip.extend_from_slice(&frag.to_be_bytes());
                ip.extend_from_slice(&[64, self.proto(), 0, 0]);
                ip.extend_from_slice(&s.octets());
                ip.extend_from_slice(&d.octets());
                ip.extend_from_slice(&self.ipv4_options);
                let sum = checksum(0, &ip);
                ip[10..12].copy_from_slice(&sum.to_be_bytes());
                out.extend_from_slice(&ip);
                mark(HeaderKind::Ipv4, l3, l3 + 20);
                if !self.ipv4_options.is_empty() {
                    mark(HeaderKind::Ipv4Options, l3 + 20, l3 + ihl);
                }
                let l4 = self.with_checksum(l4, pseudo_v4(s, d, self.proto()));
                self.push_l4(&mut out, &l4, l4_kind, &mut mark);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let ext_len: usize = self.ext.iter().map(|e| e.size()).sum();
                let payload_len =
                    u16::try_from(ext_len + l4.len()).expect("IPv6 payload over 64 KiB");
                let first = self.ext.first().map_or(self.proto(), |e| e.proto());
                out.extend_from_slice(&0x6000_0000u32.to_be_bytes());
                out.extend_from_slice(&payload_len.to_be_bytes());
                out.extend_from_slice(&[first, 64]);
                out.extend_from_slice(&s.octets());
                out.extend_from_slice(&d.octets());
                mark(HeaderKind::Ipv6, l3, l3 + 40);
                for (i, e) in self.ext.iter().enumerate() {
                    let next = self.ext.get(i + 1).map_or(self.proto(), |n| n.proto());
                    let st = out.len();
                    e.emit(next, &mut out);
                    mark(HeaderKind::Ext(*e), st, out.len());
                }
                let l4 = self.with_checksum(l4, pseudo_v6(s, d, self.proto()));
                self.push_l4(&mut out, &l4, l4_kind, &mut mark);
            }
            _ => unreachable!("families checked in Frame::udp"),
        }
        if let Some(at) = pppoe_at {
            let len = u16::try_from(out.len() - at - 6).expect("PPPoE payload over 64 KiB");
            out[at + 4..at + 6].copy_from_slice(&len.to_be_bytes());
        }
        Built {
            bytes: out,
            headers,
        }
    }

    fn push_l4(
        &self,
        out: &mut Vec<u8>,
        l4: &[u8],
        kind: Option<(HeaderKind, usize)>,
        mark: &mut impl FnMut(HeaderKind, usize, usize),
    ) {
        let st = out.len();
        out.extend_from_slice(l4);
        let hdr = match kind {
            Some((k, n)) => {
                mark(k, st, st + n);
                n
            }
            None => 0,
        };
        if self.payload > 0 {
            mark(HeaderKind::Payload, st + hdr, out.len());
        }
    }

    /// The transport header plus payload, with zero checksum, and the kind and
    /// size of the header (none for a non-first fragment or `L4::Other`).
    fn transport(&self) -> (Vec<u8>, Option<(HeaderKind, usize)>) {
        let payload: Vec<u8> = match &self.data {
            Some(d) => d.clone(),
            None => (0..self.payload).map(|i| (i % 251) as u8).collect(),
        };
        if self.non_first_fragment() {
            return (payload, None);
        }
        let mut t = Vec::new();
        let kind = match self.l4 {
            L4::Udp => {
                let len = u16::try_from(8 + payload.len()).expect("UDP datagram over 64 KiB");
                t.extend_from_slice(&self.src.port().to_be_bytes());
                t.extend_from_slice(&self.dst.port().to_be_bytes());
                t.extend_from_slice(&len.to_be_bytes());
                t.extend_from_slice(&[0, 0]);
                Some((HeaderKind::Udp, 8))
            }
            L4::Tcp => {
                t.extend_from_slice(&self.src.port().to_be_bytes());
                t.extend_from_slice(&self.dst.port().to_be_bytes());
                t.extend_from_slice(&1u32.to_be_bytes()); // seq
                t.extend_from_slice(&0u32.to_be_bytes()); // ack
                t.extend_from_slice(&[0x50, 0x02]); // data offset 5, SYN
                t.extend_from_slice(&65535u16.to_be_bytes());
                t.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
                Some((HeaderKind::Tcp, 20))
            }
            L4::Icmp => {
                let ty = if self.src.is_ipv4() { 8 } else { 128 };
                t.extend_from_slice(&[ty, 0, 0, 0, 0x12, 0x34, 0, 1]);
                Some((HeaderKind::Icmp, 8))
            }
            L4::Other(_) => None,
        };
        t.extend_from_slice(&payload);
        (t, kind)
    }

    /// Fills the transport checksum (ICMPv4 has no pseudo-header).
    fn with_checksum(&self, mut l4: Vec<u8>, pseudo: u32) -> Vec<u8> {
        if self.non_first_fragment() {
            return l4;
        }
        let at = match self.l4 {
            L4::Udp => 6,
            L4::Tcp => 16,
            L4::Icmp => 2,
            L4::Other(_) => return l4,
        };
        let pseudo = if self.l4 == L4::Icmp && self.src.is_ipv4() {
            0
        } else {
            pseudo + l4.len() as u32
        };
        let mut sum = checksum(pseudo, &l4);
        if sum == 0 && self.l4 == L4::Udp {
            sum = 0xffff;
        }
        l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        l4
    }
}

/// An ARP request (who-has 192.0.2.2 tell 192.0.2.1): the non-IP frame.
pub fn arp() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&Ipv4Addr::new(192, 0, 2, 1).octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&Ipv4Addr::new(192, 0, 2, 2).octets());
    f
}

/// An IPv6 packet whose next header is "no next header" (59).
pub fn ipv6_no_next_header(src: Ipv6Addr, dst: Ipv6Addr) -> Built {
    Frame::udp(
        SocketAddr::new(src.into(), 0),
        SocketAddr::new(dst.into(), 0),
    )
    .l4(L4::Other(PROTO_NONE))
    .payload(0)
    .build()
}

fn pseudo_v4(s: Ipv4Addr, d: Ipv4Addr, proto: u8) -> u32 {
    let mut b = Vec::with_capacity(12);
    b.extend_from_slice(&s.octets());
    b.extend_from_slice(&d.octets());
    b.extend_from_slice(&[0, proto]);
    sum_words(0, &b)
}

fn pseudo_v6(s: Ipv6Addr, d: Ipv6Addr, proto: u8) -> u32 {
    let mut b = Vec::with_capacity(34);
    b.extend_from_slice(&s.octets());
    b.extend_from_slice(&d.octets());
    b.extend_from_slice(&[0, proto]);
    sum_words(0, &b)
}

fn sum_words(mut acc: u32, data: &[u8]) -> u32 {
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        acc += u32::from(w);
    }
    acc
}

/// The Internet checksum (RFC 1071) of `data`, as an IPv4 header carries
/// it; zero over a header whose checksum is right.
pub fn ip_checksum(data: &[u8]) -> u16 {
    checksum(0, data)
}

/// The Internet checksum of `data` on top of the partial sum `acc`.
fn checksum(acc: u32, data: &[u8]) -> u16 {
    let mut s = sum_words(acc, data);
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::new(Ipv4Addr::from(a).into(), port)
    }

    fn v6(last: u16, port: u16) -> SocketAddr {
        SocketAddr::new(
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last).into(),
            port,
        )
    }

    #[test]
    fn ipv4_udp_lengths_and_checksums() {
        let b = Frame::udp(v4([192, 0, 2, 1], 4000), v4([198, 51, 100, 2], 10000))
            .vlan(TPID_8021AD, 100)
            .vlan(TPID_8021Q, 200)
            .ipv4_options(&[1, 1, 1])
            .payload(10)
            .build();
        let f = &b.bytes;
        assert_eq!(&f[12..14], &TPID_8021AD.to_be_bytes());
        assert_eq!(&f[16..18], &TPID_8021Q.to_be_bytes());
        assert_eq!(&f[20..22], &ETH_P_IPV4.to_be_bytes());
        let l3 = b.l3_offset();
        assert_eq!(l3, 22);
        assert_eq!(f[l3], 0x46, "IHL 6 for 4 bytes of options");
        let total = u16::from_be_bytes([f[l3 + 2], f[l3 + 3]]) as usize;
        assert_eq!(total, 24 + 8 + 10);
        assert_eq!(f.len(), l3 + total);
        assert_eq!(checksum(0, &f[l3..l3 + 24]), 0, "IPv4 header checksum");
        let udp = b.header(HeaderKind::Udp).unwrap();
        assert_eq!(udp.start, l3 + 24);
        assert_eq!(u16::from_be_bytes([f[udp.start + 4], f[udp.start + 5]]), 18);
        let pseudo = pseudo_v4([192, 0, 2, 1].into(), [198, 51, 100, 2].into(), 17) + 18;
        assert_eq!(checksum(pseudo, &f[udp.start..]), 0, "UDP checksum");
    }

    #[test]
    fn ipv6_extension_chain_is_linked_and_sized() {
        let exts = [
            Ext::HopByHop { len: 0 },
            Ext::DestOpts { len: 1 },
            Ext::Routing { len: 0 },
            Ext::Ah { len: 4 },
            Ext::Fragment {
                offset: 0,
                more: true,
            },
        ];
        let mut fr = Frame::udp(v6(1, 4000), v6(2, 10000)).payload(5);
        for e in exts {
            fr = fr.ext(e);
        }
        let b = fr.build();
        let f = &b.bytes;
        let l3 = b.l3_offset();
        assert_eq!(f[l3 + 6], PROTO_HOPOPTS);
        let mut at = l3 + 40;
        let chain = [
            PROTO_DSTOPTS,
            PROTO_ROUTING,
            PROTO_AH,
            PROTO_FRAGMENT,
            PROTO_UDP,
        ];
        for (e, next) in exts.iter().zip(chain) {
            assert_eq!(f[at], next, "next header after {e:?}");
            at += e.size();
        }
        assert_eq!(at, b.header(HeaderKind::Udp).unwrap().start);
        let payload_len = u16::from_be_bytes([f[l3 + 4], f[l3 + 5]]) as usize;
        assert_eq!(payload_len, f.len() - l3 - 40);
        assert_eq!(payload_len, 8 + 16 + 8 + 24 + 8 + 8 + 5);
    }

    #[test]
    fn large_option_headers_are_padded_with_valid_options() {
        for len in [0u8, 1, 31, 32, 33, 255] {
            let b = Frame::udp(v6(1, 1), v6(2, 2))
                .ext(Ext::HopByHop { len })
                .build();
            let h = b.header(HeaderKind::Ext(Ext::HopByHop { len })).unwrap();
            assert_eq!(h.end - h.start, (len as usize + 1) * 8);
            // Walk the options: each PadN's length must land exactly on the end.
            let mut at = h.start + 2;
            while at < h.end {
                assert_eq!(b.bytes[at], 1, "PadN at {at} (len {len})");
                at += 2 + b.bytes[at + 1] as usize;
            }
            assert_eq!(at, h.end, "options overrun the header (len {len})");
        }
    }

    #[test]
    fn non_first_fragments_carry_no_transport_header() {
        let b = Frame::udp(v4([192, 0, 2, 1], 1), v4([192, 0, 2, 2], 2))
            .ipv4_fragment(3, false)
            .payload(16)
            .build();
        assert!(b.header(HeaderKind::Udp).is_none());
        assert_eq!(b.bytes.len(), 14 + 20 + 16);
        assert_eq!(&b.bytes[14 + 6..14 + 8], &3u16.to_be_bytes());
        let b = Frame::udp(v6(1, 1), v6(2, 2))
            .ext(Ext::Fragment {
                offset: 2,
                more: true,
            })
            .payload(16)
            .build();
        assert!(b.header(HeaderKind::Udp).is_none());
        assert_eq!(&b.bytes[14 + 40 + 2..14 + 40 + 4], &[0, 17]);
    }

    #[test]
    fn truncate_clamps() {
        let f = arp();
        assert_eq!(f.len(), 42);
        assert_eq!(truncate(&f, 13).len(), 13);
        assert_eq!(truncate(&f, 100), f);
    }
}
