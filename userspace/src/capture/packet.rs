//! Decoding a queued L3 packet (what NFQUEUE hands over: the IP header
//! onwards) into a typed [`SignalingPacket`], with `etherparse`.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{IpAddr, SocketAddr};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use thiserror::Error;

/// The transport of a signaling packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp(TcpInfo),
}

/// What TCP reassembly needs from the header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfo {
    pub seq: u32,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
}

/// One observed signaling packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalingPacket {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    /// The UDP or TCP payload.
    pub payload: Vec<u8>,
    /// When it was taken off the queue (CLOCK_MONOTONIC ns).
    pub received_at: u64,
}

/// Why a queued packet could not be decoded. It is passed on unchanged.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PacketError {
    #[error("malformed packet: {0}")]
    Malformed(String),
    #[error("not an IP packet")]
    NotIp,
    #[error("IP fragment (signaling is only read from unfragmented packets)")]
    Fragment,
    #[error("IP protocol {0} is neither UDP nor TCP")]
    NotUdpTcp(u8),
}

/// Decodes an IPv4 or IPv6 packet carrying UDP or TCP.
pub fn decode(l3: &[u8], received_at: u64) -> Result<SignalingPacket, PacketError> {
    let sliced = SlicedPacket::from_ip(l3).map_err(|e| PacketError::Malformed(e.to_string()))?;
    let (src_ip, dst_ip, fragmented, proto): (IpAddr, IpAddr, bool, u8) = match &sliced.net {
        Some(NetSlice::Ipv4(v4)) => {
            let h = v4.header();
            (
                h.source_addr().into(),
                h.destination_addr().into(),
                v4.is_payload_fragmented(),
                v4.payload_ip_number().0,
            )
        }
        Some(NetSlice::Ipv6(v6)) => {
            let h = v6.header();
            (
                h.source_addr().into(),
                h.destination_addr().into(),
                v6.is_payload_fragmented(),
                v6.payload().ip_number.0,
            )
        }
        Some(NetSlice::Arp(_)) | None => return Err(PacketError::NotIp),
    };
    if fragmented {
        return Err(PacketError::Fragment);
    }
    let (src_port, dst_port, transport, payload) = match &sliced.transport {
        Some(TransportSlice::Udp(u)) => (
            u.source_port(),
            u.destination_port(),
            Transport::Udp,
            u.payload(),
        ),
        Some(TransportSlice::Tcp(t)) => (
            t.source_port(),
            t.destination_port(),
            Transport::Tcp(TcpInfo {
                seq: t.sequence_number(),
                syn: t.syn(),
                fin: t.fin(),
                rst: t.rst(),
            }),
            t.payload(),
        ),
        _ => return Err(PacketError::NotUdpTcp(proto)),
    };
    Ok(SignalingPacket {
        src: SocketAddr::new(src_ip, src_port),
        dst: SocketAddr::new(dst_ip, dst_port),
        transport,
        payload: payload.to_vec(),
        received_at,
    })
}

#[cfg(test)]
#[expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests build known-good packets and fail loudly"
)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn v4_udp(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4([192, 0, 2, 1], [198, 51, 100, 2], 64).udp(5060, 5062);
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn v6_tcp(payload: &[u8], syn: bool) -> Vec<u8> {
        let src = "2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let dst = "2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        let mut b = PacketBuilder::ipv6(src, dst, 64).tcp(40000, 554, 0xffff_fff0, 1024);
        if syn {
            b = b.syn();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    #[test]
    fn decodes_udp_and_tcp_over_both_families() {
        let p = decode(&v4_udp(b"INVITE"), 7).unwrap();
        assert_eq!(p.src, "192.0.2.1:5060".parse().unwrap());
        assert_eq!(p.dst, "198.51.100.2:5062".parse().unwrap());
        assert_eq!(p.transport, Transport::Udp);
        assert_eq!((p.payload.as_slice(), p.received_at), (&b"INVITE"[..], 7));

        let p = decode(&v6_tcp(b"SETUP", true), 9).unwrap();
        assert_eq!(p.src, "[2001:db8::1]:40000".parse().unwrap());
        assert_eq!(p.dst, "[2001:db8::2]:554".parse().unwrap());
        assert_eq!(
            p.transport,
            Transport::Tcp(TcpInfo {
                seq: 0xffff_fff0,
                syn: true,
                fin: false,
                rst: false
            })
        );
        assert_eq!(p.payload, b"SETUP");
    }

    #[test]
    fn hostile_and_foreign_packets_are_errors_not_panics() {
        let good = v4_udp(b"hello");
        let mut frag = good.clone();
        frag[6] |= 0x20; // More Fragments
        let mut icmp = good.clone();
        icmp[9] = 1;
        let mut bad_version = good.clone();
        bad_version[0] = 0x75;
        let mut short_total = good.clone();
        short_total[2..4].copy_from_slice(&10u16.to_be_bytes());
        type Check = fn(&PacketError) -> bool;
        let cases: Vec<(&str, Vec<u8>, Check)> = vec![
            ("empty", vec![], |e| matches!(e, PacketError::Malformed(_))),
            ("truncated header", good[..12].to_vec(), |e| {
                matches!(e, PacketError::Malformed(_))
            }),
            ("truncated udp", good[..24].to_vec(), |e| {
                matches!(e, PacketError::Malformed(_))
            }),
            ("fragment", frag, |e| *e == PacketError::Fragment),
            ("icmp", icmp, |e| matches!(e, PacketError::NotUdpTcp(1))),
            ("version 7", bad_version, |e| {
                matches!(e, PacketError::Malformed(_))
            }),
            ("total length below header", short_total, |e| {
                matches!(e, PacketError::Malformed(_))
            }),
            ("garbage", vec![0xff; 64], |e| {
                matches!(e, PacketError::Malformed(_))
            }),
        ];
        for (name, bytes, want) in cases {
            match decode(&bytes, 0) {
                Err(e) => assert!(want(&e), "{name}: {e:?}"),
                Ok(p) => panic!("{name}: decoded {p:?}"),
            }
        }
        // Every prefix of valid packets decodes or fails cleanly.
        for pkt in [v4_udp(b"INVITE sip:x SIP/2.0"), v6_tcp(b"OPTIONS", false)] {
            for n in 0..pkt.len() {
                let _ = decode(&pkt[..n], 0);
            }
        }
    }
}
