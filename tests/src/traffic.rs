//! Tagged UDP test traffic.
//!
//! Every test datagram is [`PAYLOAD_LEN`] bytes: a magic, a kind (data or
//! marker) and a sequence number, so receivers count only test traffic. A
//! *marker* sent after a burst through a path known to be open tells the
//! receiver that everything sent before it has been delivered or dropped, so
//! "nothing arrived" needs no sleep.

use std::{
    collections::BTreeSet,
    io::ErrorKind,
    net::{SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use crate::{Error, Result};

/// UDP payload bytes of every test datagram.
pub const PAYLOAD_LEN: usize = 64;
const MAGIC: [u8; 4] = *b"PHt1";
const KIND_DATA: u8 = 0;
const KIND_MARKER: u8 = 1;

fn datagram(kind: u8, seq: u32) -> [u8; PAYLOAD_LEN] {
    let mut d = [0u8; PAYLOAD_LEN];
    d[..4].copy_from_slice(&MAGIC);
    d[4] = kind;
    d[5..9].copy_from_slice(&seq.to_be_bytes());
    d
}

fn kind_of(d: &[u8]) -> Option<u8> {
    (d.len() == PAYLOAD_LEN && d[..4] == MAGIC).then(|| d[4])
}

/// The payload of data datagram `seq`, for senders that build their own
/// packets (a tun device's writer).
pub fn data_payload(seq: u32) -> [u8; PAYLOAD_LEN] {
    datagram(KIND_DATA, seq)
}

/// The payload of a marker datagram, as [`data_payload`].
pub fn marker_payload() -> [u8; PAYLOAD_LEN] {
    datagram(KIND_MARKER, 0)
}

/// Sends `n` data datagrams from `sock` to `dst`.
pub fn send(sock: &UdpSocket, dst: SocketAddr, n: u32) -> Result<()> {
    for seq in 0..n {
        sock.send_to(&datagram(KIND_DATA, seq), dst)
            .map_err(Error::io(format!("sending to {dst}")))?;
    }
    Ok(())
}

/// Sends one marker datagram from `sock` to `dst`.
pub fn send_marker(sock: &UdpSocket, dst: SocketAddr) -> Result<()> {
    sock.send_to(&datagram(KIND_MARKER, 0), dst)
        .map(drop)
        .map_err(Error::io(format!("sending a marker to {dst}")))
}

/// An RTCP receiver report without report blocks (RFC 3550 §6.4.2) from
/// `ssrc`: what a receive-only client sends on its RTCP port.
pub fn rtcp_receiver_report(ssrc: u32) -> [u8; 8] {
    // V=2, P=0, RC=0; PT=201 (RR); length 1 (in 32-bit words minus one).
    let mut rr = [0x80, 201, 0, 1, 0, 0, 0, 0];
    rr[4..].copy_from_slice(&ssrc.to_be_bytes());
    rr
}

/// What a receiver got.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Received {
    /// Data datagrams.
    pub data: u32,
    /// Their sources.
    pub senders: BTreeSet<SocketAddr>,
}

/// Receives until `n` data datagrams arrived or `timeout` passed, whichever
/// is first. Compare [`Received::data`] with `n` to check for loss.
pub fn receive(sock: &UdpSocket, n: u32, timeout: Duration) -> Result<Received> {
    let mut got = Received::default();
    let deadline = Instant::now() + timeout;
    while got.data < n {
        match recv_one(sock, deadline)? {
            None => break,
            Some((Some(KIND_DATA), from)) => {
                got.data += 1;
                got.senders.insert(from);
            }
            Some(_) => {}
        }
    }
    Ok(got)
}

/// Receives until a marker arrives, counting the data datagrams before it.
/// Fails if no marker arrives within `timeout`.
pub fn receive_until_marker(sock: &UdpSocket, timeout: Duration) -> Result<Received> {
    let mut got = Received::default();
    let deadline = Instant::now() + timeout;
    loop {
        match recv_one(sock, deadline)? {
            None => {
                return Err(Error::Timeout {
                    what: format!(
                        "a marker on {:?} (got {} data datagrams)",
                        sock.local_addr().ok(),
                        got.data
                    ),
                    after: timeout,
                })
            }
            Some((Some(KIND_MARKER), _)) => return Ok(got),
            Some((Some(KIND_DATA), from)) => {
                got.data += 1;
                got.senders.insert(from);
            }
            Some(_) => {}
        }
    }
}

/// What a receiver of foreign traffic (e.g. sipp's RTP) got.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RawReceived {
    /// Datagrams of any content.
    pub datagrams: u32,
    /// Their sources.
    pub senders: BTreeSet<SocketAddr>,
}

/// Receives until `n` datagrams of any content arrived or `timeout` passed.
pub fn receive_raw(sock: &UdpSocket, n: u32, timeout: Duration) -> Result<RawReceived> {
    let mut got = RawReceived::default();
    let deadline = Instant::now() + timeout;
    while got.datagrams < n {
        match recv_one(sock, deadline)? {
            None => break,
            Some((_, from)) => {
                got.datagrams += 1;
                got.senders.insert(from);
            }
        }
    }
    Ok(got)
}

/// One datagram's kind (None: not test traffic) and source, or None at the deadline.
fn recv_one(sock: &UdpSocket, deadline: Instant) -> Result<Option<(Option<u8>, SocketAddr)>> {
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        sock.set_read_timeout(Some(left))
            .map_err(Error::io("setting a receive timeout"))?;
        match sock.recv_from(&mut buf) {
            Ok((len, from)) => return Ok(Some((kind_of(&buf[..len]), from))),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("receiving")(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagram_kinds() {
        assert_eq!(kind_of(&datagram(KIND_DATA, 7)), Some(KIND_DATA));
        assert_eq!(kind_of(&datagram(KIND_MARKER, 0)), Some(KIND_MARKER));
        let mut foreign = datagram(KIND_DATA, 1);
        foreign[0] = b'X';
        assert_eq!(kind_of(&foreign), None);
        assert_eq!(kind_of(&datagram(KIND_DATA, 1)[..10]), None);
        assert_eq!(kind_of(&[]), None);
    }

    #[test]
    fn receiver_report_layout() {
        let rr = rtcp_receiver_report(0x0102_0304);
        assert_eq!(rr[0] >> 6, 2, "version");
        assert_eq!(rr[0] & 0x1f, 0, "no report blocks");
        assert_eq!(rr[1], 201, "RR");
        let words = u16::from_be_bytes([rr[2], rr[3]]);
        assert_eq!((usize::from(words) + 1) * 4, rr.len());
        assert_eq!(rr[4..], [1, 2, 3, 4]);
        assert_eq!(kind_of(&rr), None, "not test traffic");
    }

    #[test]
    fn loopback_counts_data_and_stops_at_marker() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dst = rx.local_addr().unwrap();
        send(&tx, dst, 3).unwrap();
        tx.send_to(b"not test traffic", dst).unwrap();
        send_marker(&tx, dst).unwrap();
        send(&tx, dst, 2).unwrap();
        let got = receive_until_marker(&rx, Duration::from_secs(5)).unwrap();
        assert_eq!(got.data, 3);
        assert_eq!(got.senders, BTreeSet::from([tx.local_addr().unwrap()]));
        let rest = receive(&rx, 2, Duration::from_secs(5)).unwrap();
        assert_eq!(rest.data, 2);
        let none = receive(&rx, 1, Duration::from_millis(50)).unwrap();
        assert_eq!(none.data, 0);
        assert!(receive_until_marker(&rx, Duration::from_millis(50)).is_err());
    }
}
