//! RTP accounting at the hosts' interfaces.
//!
//! One `AF_PACKET` socket per host (outside, inside) on its lab interface
//! sees every frame the host sends (before it leaves) and every frame the
//! router delivered to it. Each RTP packet to a media port is recorded under
//! its 5-tuple and RTP sequence number: on the sender's host as *sent*, on
//! the receiver's host as *received*. A packet the sender's tap saw and the
//! receiver's tap did not was lost between the two, i.e. on the router.
//!
//! sipp plays the same `rtp.pcap` for every call (sequence numbers 0, 1, …
//! and the same SSRC), and its media ports come round again every 2,500
//! calls, so a 5-tuple carries several streams over a long run. A tuple's
//! packets form one *run* until the tuple has been quiet for
//! [`Params::gap`]; [`crate::soak::analysis`] pairs received runs with
//! sent runs by time.

use std::{
    collections::HashMap,
    io,
    net::{Ipv4Addr, SocketAddrV4},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use pinhole_integration::Netns;
use serde::Serialize;

/// The unsolicited stream's source port: outside the media range, never in
/// any SDP, so no pinhole can ever match it.
pub const UNSOLICITED_PORT: u16 = 9999;
/// The end marker's destination port (discard; outside the media range):
/// a tap stops once a marker from the other host has reached it, as
/// everything that host sent before the marker has then been delivered or
/// dropped.
pub const MARKER_PORT: u16 = 9;
/// How long a tap waits for the end marker once told to stop.
const MARKER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of each frame the capture looks at (Ethernet, an IPv4 header with
/// options, UDP, the RTP fixed header's first 4 bytes fit).
const SNAP: usize = 128;
/// Frames per `recvmmsg`.
const BATCH: usize = 64;
/// Receive buffer of each capture socket (`SO_RCVBUFFORCE`): a few seconds
/// of the soak's media at 100 calls/s, should the reader fall behind.
const RCVBUF: libc::c_int = 256 << 20;

/// A UDP flow `src → dst` (the soak runs IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Tuple {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
}

impl Tuple {
    pub fn reversed(self) -> Tuple {
        Tuple {
            src: self.dst,
            dst: self.src,
        }
    }
}

/// What the capture keeps of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub tuple: Tuple,
    /// The RTP sequence number, when the payload is RTP version 2 with a
    /// whole fixed header.
    pub rtp_seq: Option<u16>,
}

/// Parses an Ethernet II / IPv4 / UDP frame; `None` for anything else
/// (other protocols, fragments, truncated or malformed headers).
pub fn parse_frame(frame: &[u8]) -> Option<Frame> {
    let eth = frame.get(..14)?;
    if eth[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 || ip.len() < ihl + 8 {
        return None;
    }
    // More fragments, or a fragment offset: not a whole datagram's head.
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 || ip[9] != 17 {
        return None;
    }
    let addr = |at: usize| Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]);
    let udp = &ip[ihl..];
    let port = |at: usize| u16::from_be_bytes([udp[at], udp[at + 1]]);
    let tuple = Tuple {
        src: SocketAddrV4::new(addr(12), port(0)),
        dst: SocketAddrV4::new(addr(16), port(2)),
    };
    let udp_len = usize::from(port(4));
    let rtp = &udp[8..];
    // The RTP fixed header is 12 bytes; the capture may hold less of it
    // (snap length), but the UDP length must cover it.
    let rtp_seq = (udp_len >= 8 + 12 && rtp.len() >= 4 && rtp[0] >> 6 == 2)
        .then(|| u16::from_be_bytes([rtp[2], rtp[3]]));
    Some(Frame { tuple, rtp_seq })
}

/// How runs are cut and how long a stream is.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    /// RTP packets each stream sends (sequence numbers `0..packets`).
    pub packets: u32,
    /// A tuple quiet for this long starts a new run with its next packet.
    pub gap: Duration,
    /// Destination ports of media (the range pinhole guards).
    pub media_ports: (u16, u16),
}

/// A set of RTP sequence numbers below a bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeqSet {
    bits: Vec<u64>,
    len: u32,
}

impl SeqSet {
    pub fn new(len: u32) -> SeqSet {
        SeqSet {
            bits: vec![0; (len as usize).div_ceil(64)],
            len,
        }
    }

    /// Adds `seq`; false when it is out of range or already there.
    pub fn insert(&mut self, seq: u16) -> bool {
        let s = u32::from(seq);
        if s >= self.len {
            return false;
        }
        let (word, bit) = ((s / 64) as usize, s % 64);
        let new = self.bits[word] & (1 << bit) == 0;
        self.bits[word] |= 1 << bit;
        new
    }

    pub fn contains(&self, seq: u32) -> bool {
        seq < self.len && self.bits[(seq / 64) as usize] & (1 << (seq % 64)) != 0
    }

    pub fn union_with(&mut self, other: &SeqSet) {
        for (a, b) in self.bits.iter_mut().zip(&other.bits) {
            *a |= b;
        }
    }

    pub fn count(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// The packets of one tuple between two quiet gaps.
#[derive(Clone, Debug)]
pub struct Run {
    /// Nanoseconds since the soak's clock started, of the first and last
    /// packet (when the capture read them).
    pub first_ns: u64,
    pub last_ns: u64,
    pub seqs: SeqSet,
    /// Packets seen, duplicates included.
    pub packets: u64,
    /// Packets whose sequence number was beyond the stream's length.
    pub out_of_range: u64,
}

/// Runs by tuple.
#[derive(Clone, Debug, Default)]
pub struct Streams {
    pub runs: HashMap<Tuple, Vec<Run>>,
}

impl Streams {
    pub fn record(&mut self, tuple: Tuple, seq: u16, now_ns: u64, p: &Params) {
        let runs = self.runs.entry(tuple).or_default();
        let gap = p.gap.as_nanos() as u64;
        let fresh = match runs.last() {
            Some(r) => now_ns.saturating_sub(r.last_ns) > gap,
            None => true,
        };
        if fresh {
            runs.push(Run {
                first_ns: now_ns,
                last_ns: now_ns,
                seqs: SeqSet::new(p.packets),
                packets: 0,
                out_of_range: 0,
            });
        }
        let run = runs.last_mut().expect("a run was just ensured");
        run.last_ns = now_ns;
        run.packets += 1;
        if u32::from(seq) >= p.packets {
            run.out_of_range += 1;
        } else {
            run.seqs.insert(seq);
        }
    }

    /// Adds `other`'s tuples (disjoint from ours: each host records only
    /// what it sent, or only what it received).
    pub fn merge(&mut self, other: Streams) {
        for (t, mut runs) in other.runs {
            self.runs.entry(t).or_default().append(&mut runs);
        }
    }
}

/// What one host's tap saw.
#[derive(Clone, Debug, Default)]
pub struct HostTally {
    /// RTP this host sent to a media port, by tuple.
    pub sent: Streams,
    /// RTP the router delivered to this host's media ports, by tuple.
    pub received: Streams,
    /// Datagrams from [`UNSOLICITED_PORT`] this host sent / received.
    pub unsolicited_sent: u64,
    pub unsolicited_received: u64,
    /// UDP to a media port that is not RTP (and not the unsolicited stream).
    pub other_media_udp: u64,
    /// End markers received.
    pub markers: u64,
    /// Frames read from the socket.
    pub frames: u64,
    /// The socket's `PACKET_STATISTICS`: frames the kernel queued to it and
    /// frames it dropped because the reader fell behind (the tally is then
    /// incomplete).
    pub kernel_packets: u64,
    pub kernel_drops: u64,
}

impl HostTally {
    fn add(&mut self, host: Ipv4Addr, f: Frame, now_ns: u64, p: &Params) {
        let outgoing = *f.tuple.src.ip() == host;
        let incoming = *f.tuple.dst.ip() == host;
        if incoming && f.tuple.dst.port() == MARKER_PORT {
            self.markers += 1;
            return;
        }
        let (lo, hi) = p.media_ports;
        if !(lo..=hi).contains(&f.tuple.dst.port()) {
            return;
        }
        if f.tuple.src.port() == UNSOLICITED_PORT {
            if outgoing {
                self.unsolicited_sent += 1;
            } else if incoming {
                self.unsolicited_received += 1;
            }
            return;
        }
        match f.rtp_seq {
            Some(seq) if outgoing => self.sent.record(f.tuple, seq, now_ns, p),
            Some(seq) if incoming => self.received.record(f.tuple, seq, now_ns, p),
            _ => self.other_media_udp += 1,
        }
    }
}

/// An `AF_PACKET` socket on one host's interface.
pub struct Capture {
    fd: OwnedFd,
    host: Ipv4Addr,
}

fn last_os_error(what: &str) -> anyhow::Error {
    anyhow::Error::new(io::Error::last_os_error()).context(what.to_owned())
}

impl Capture {
    /// Opens the socket inside `ns`, bound to `dev`, for the host whose
    /// address is `host`.
    pub fn open(ns: &Netns, dev: &str, host: Ipv4Addr) -> Result<Capture> {
        let name = std::ffi::CString::new(dev).context("interface name")?;
        let fd = ns.run_in(|| -> Result<OwnedFd> {
            let proto = (libc::ETH_P_ALL as u16).to_be();
            // SAFETY: plain socket(2); the fd is checked, then owned.
            let raw = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                    libc::c_int::from(proto),
                )
            };
            if raw < 0 {
                return Err(last_os_error("opening an AF_PACKET socket"));
            }
            // SAFETY: `raw` is a fresh descriptor nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: a NUL-terminated name.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            if ifindex == 0 {
                return Err(last_os_error("looking up the capture interface"));
            }
            // SAFETY: zeroed sockaddr_ll is valid; the fields set are plain data.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex as i32;
            // SAFETY: `sll` is a valid sockaddr_ll of the given length.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    std::ptr::addr_of!(sll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if rc != 0 {
                return Err(last_os_error("binding the AF_PACKET socket"));
            }
            set_int(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                RCVBUF,
            )
            .context("SO_RCVBUFFORCE")?;
            // Frames queued before the bind came from every interface:
            // start from a clean count.
            packet_stats(fd.as_raw_fd())?;
            Ok(fd)
        })??;
        Ok(Capture { fd, host })
    }

    /// Reads frames until `stop` is set and an end marker (UDP to
    /// [`MARKER_PORT`]) has arrived; times are nanoseconds since `clock`.
    pub fn run(self, stop: &AtomicBool, clock: Instant, p: &Params) -> Result<HostTally> {
        let fd = self.fd.as_raw_fd();
        let mut tally = HostTally::default();
        let mut bufs = vec![[0u8; SNAP]; BATCH];
        let mut stop_seen: Option<Instant> = None;
        loop {
            if stop_seen.is_none() && stop.load(Ordering::Relaxed) {
                stop_seen = Some(Instant::now());
            }
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, 100) };
            if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return Err(last_os_error("poll on the capture socket"));
            }
            let mut drained = false;
            while !drained {
                let n = recv_batch(fd, &mut bufs)?;
                let now_ns = clock.elapsed().as_nanos() as u64;
                for (buf, len) in bufs.iter().zip(&n) {
                    tally.frames += 1;
                    if let Some(f) = parse_frame(&buf[..*len]) {
                        tally.add(self.host, f, now_ns, p);
                    }
                }
                drained = n.len() < BATCH;
            }
            if let Some(at) = stop_seen {
                if tally.markers > 0 {
                    break;
                }
                if at.elapsed() > MARKER_TIMEOUT {
                    bail!(
                        "the tap for {} got no end marker within {MARKER_TIMEOUT:?}",
                        self.host
                    );
                }
            }
        }
        let (packets, drops) = packet_stats(fd)?;
        tally.kernel_packets = packets;
        tally.kernel_drops = drops;
        Ok(tally)
    }
}

/// One `recvmmsg` into `bufs`; the lengths of the frames read (none when
/// nothing is queued).
fn recv_batch(fd: libc::c_int, bufs: &mut [[u8; SNAP]]) -> Result<Vec<usize>> {
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: SNAP,
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: a zeroed msghdr is valid; the iovec outlives the call.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_iov = iov;
            h.msg_iovlen = 1;
            libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            }
        })
        .collect();
    // SAFETY: `msgs` points at `msgs.len()` headers whose buffers live in
    // `bufs` for the duration of the call.
    let n = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            msgs.len() as u32,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(Vec::new()),
            _ => Err(anyhow::Error::new(e).context("recvmmsg on the capture socket")),
        };
    }
    Ok(msgs[..n as usize]
        .iter()
        .map(|m| (m.msg_len as usize).min(SNAP))
        .collect())
}

fn set_int(fd: libc::c_int, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> Result<()> {
    // SAFETY: an int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            std::ptr::addr_of!(v).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if rc != 0 {
        bail!(io::Error::last_os_error());
    }
    Ok(())
}

/// `PACKET_STATISTICS` (frames queued, frames dropped) since the last call.
fn packet_stats(fd: libc::c_int) -> Result<(u64, u64)> {
    let mut st = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = std::mem::size_of::<libc::tpacket_stats>() as u32;
    // SAFETY: `st` is a tpacket_stats and `len` its size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            std::ptr::addr_of_mut!(st).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(last_os_error("PACKET_STATISTICS"));
    }
    Ok((u64::from(st.tp_packets), u64::from(st.tp_drops)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet/IPv4/UDP frame with `payload`.
    fn frame(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        let total = 20 + 8 + payload.len();
        f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0]);
        f.extend_from_slice(&[64, 17, 0, 0]);
        f.extend_from_slice(&src.ip().octets());
        f.extend_from_slice(&dst.ip().octets());
        f.extend_from_slice(&src.port().to_be_bytes());
        f.extend_from_slice(&dst.port().to_be_bytes());
        f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        f
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 8];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&[0xd5; 160]);
        p
    }

    fn addr(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    #[test]
    fn frames_parse_or_are_refused() {
        let (a, b) = (addr("192.0.2.2:10004"), addr("198.51.100.2:10008"));
        let good = frame(a, b, &rtp(7));
        assert_eq!(
            parse_frame(&good),
            Some(Frame {
                tuple: Tuple { src: a, dst: b },
                rtp_seq: Some(7)
            })
        );
        // A truncated capture still has the sequence number.
        assert_eq!(
            parse_frame(&good[..14 + 20 + 8 + 4]).unwrap().rtp_seq,
            Some(7)
        );
        // Not RTP: version 0, or a datagram shorter than the RTP header.
        let mut v0 = rtp(7);
        v0[0] = 0;
        assert_eq!(parse_frame(&frame(a, b, &v0)).unwrap().rtp_seq, None);
        assert_eq!(
            parse_frame(&frame(a, b, &[0x80, 8, 0, 1])).unwrap().rtp_seq,
            None
        );

        let mut ipv6 = good.clone();
        ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        let mut tcp = good.clone();
        tcp[14 + 9] = 6;
        let mut fragment = good.clone();
        fragment[14 + 6] = 0x20; // more fragments
        let mut later_fragment = good.clone();
        later_fragment[14 + 7] = 0x10; // offset
        let mut short_ihl = good.clone();
        short_ihl[14] = 0x44;
        let mut long_ihl = good.clone();
        long_ihl[14] = 0x4f;
        let mut version6 = good.clone();
        version6[14] = 0x65;
        for (name, f) in [
            ("empty", &[][..]),
            ("ethernet only", &good[..14]),
            ("half an IP header", &good[..24]),
            ("no UDP header", &good[..14 + 20 + 4]),
            ("IPv6 ethertype", &ipv6[..]),
            ("TCP", &tcp[..]),
            ("first fragment", &fragment[..]),
            ("later fragment", &later_fragment[..]),
            ("IHL 4", &short_ihl[..]),
            ("IHL past the frame", &long_ihl[..14 + 20 + 8 + 4]),
            ("IP version 6 in an IPv4 frame", &version6[..]),
        ] {
            assert_eq!(parse_frame(f), None, "{name}");
        }
    }

    #[test]
    fn seq_sets() {
        let mut s = SeqSet::new(130);
        assert_eq!(s.count(), 0);
        assert!(s.insert(129) && s.insert(3) && !s.insert(3) && !s.insert(130));
        assert_eq!(s.count(), 2);
        assert!(s.contains(129) && !s.contains(130) && !s.contains(4));
        let mut t = SeqSet::new(130);
        t.insert(64);
        t.union_with(&s);
        assert_eq!(t.count(), 3);
    }

    #[test]
    fn runs_split_on_quiet_gaps() {
        let p = Params {
            packets: 10,
            gap: Duration::from_secs(3),
            media_ports: (10_000, 20_000),
        };
        let t = Tuple {
            src: addr("192.0.2.2:10000"),
            dst: addr("198.51.100.2:10000"),
        };
        let mut s = Streams::default();
        let sec = 1_000_000_000;
        for (seq, at) in [(0, 0), (1, sec), (9, 4 * sec), (12, 4 * sec), (0, 8 * sec)] {
            s.record(t, seq, at, &p);
        }
        let runs = &s.runs[&t];
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].packets, runs[0].out_of_range), (4, 1));
        assert_eq!(runs[0].seqs.count(), 3);
        assert_eq!(runs[1].first_ns, 8 * sec);
        assert!(runs[1].seqs.contains(0) && runs[1].seqs.count() == 1);
    }

    #[test]
    fn tally_sorts_by_direction() {
        let p = Params {
            packets: 10,
            gap: Duration::from_secs(3),
            media_ports: (10_000, 20_000),
        };
        let me: Ipv4Addr = "192.0.2.2".parse().unwrap();
        let out = Tuple {
            src: addr("192.0.2.2:10000"),
            dst: addr("198.51.100.2:10004"),
        };
        let mut t = HostTally::default();
        let f = |tuple, rtp_seq| Frame { tuple, rtp_seq };
        t.add(me, f(out, Some(1)), 0, &p);
        t.add(me, f(out.reversed(), Some(1)), 0, &p);
        t.add(me, f(out.reversed(), None), 0, &p);
        let unsolicited = Tuple {
            src: SocketAddrV4::new(me, UNSOLICITED_PORT),
            dst: addr("198.51.100.2:12000"),
        };
        t.add(me, f(unsolicited, None), 0, &p);
        // Not to a media port: SIP.
        let sip = Tuple {
            src: addr("192.0.2.2:5060"),
            dst: addr("198.51.100.2:5060"),
        };
        t.add(me, f(sip, Some(1)), 0, &p);
        let marker = Tuple {
            src: addr("198.51.100.2:40000"),
            dst: SocketAddrV4::new(me, MARKER_PORT),
        };
        t.add(me, f(marker, None), 0, &p);
        t.add(me, f(marker.reversed(), None), 0, &p);
        assert_eq!(t.markers, 1);
        assert_eq!(t.sent.runs.len(), 1);
        assert_eq!(t.received.runs.len(), 1);
        assert_eq!((t.unsolicited_sent, t.other_media_udp), (1, 1));
    }
}
