//! Floods of unsolicited UDP from raw frames.
//!
//! A [`RawSender`] is an `AF_PACKET` socket on one interface of a lab host
//! that sends whole Ethernet frames with `sendmmsg(2)`, bypassing the qdisc,
//! so a single thread reaches a rate at which every frame has its own 5-tuple
//! without configuring thousands of addresses or sockets. [`Tuples`] names
//! the i-th tuple of a flood; [`RawSender::flood`] builds one frame with
//! [`crate::frames`] and patches source address, ports and checksum per
//! frame.

use std::{
    io,
    mem::{size_of, zeroed},
    net::{Ipv4Addr, SocketAddr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

use crate::{
    frames::{ip_checksum, Frame, HeaderKind},
    Error, Netns, Result,
};

/// Frames per `sendmmsg` call.
pub const BATCH: usize = 256;
/// UDP payload bytes of each flood frame (an RTP header and a little more).
pub const PAYLOAD_LEN: usize = 18;
/// Lowest source port of a flood; ports below are never used.
const FIRST_SRC_PORT: u16 = 1024;

/// The tuples of an IPv4 flood: the i-th datagram comes from host
/// `src_hosts[i % n]` of `src_net` (a /24) on source port
/// `1024 + i / n` and goes to `dst` on port `dst_ports.0 + i % m`. The
/// source address and port together are unique for every i below
/// [`Tuples::capacity`], so every datagram is a distinct 5-tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuples {
    pub src_net: Ipv4Addr,
    /// Inclusive range of host numbers within `src_net`.
    pub src_hosts: (u8, u8),
    pub dst: Ipv4Addr,
    /// Inclusive destination port range.
    pub dst_ports: (u16, u16),
}

impl Tuples {
    fn hosts(&self) -> u64 {
        u64::from(self.src_hosts.1 - self.src_hosts.0) + 1
    }

    /// How many distinct tuples there are.
    pub fn capacity(&self) -> u64 {
        self.hosts() * u64::from(u16::MAX - FIRST_SRC_PORT + 1)
    }

    /// The source and destination of the i-th datagram.
    pub fn get(&self, i: u64) -> (SocketAddr, SocketAddr) {
        assert!(i < self.capacity(), "tuple {i} out of range");
        let hosts = self.hosts();
        let mut src = self.src_net.octets();
        src[3] = self.src_hosts.0 + (i % hosts) as u8;
        let src_port = FIRST_SRC_PORT + (i / hosts) as u16;
        let ports = u64::from(self.dst_ports.1 - self.dst_ports.0) + 1;
        let dst_port = self.dst_ports.0 + (i % ports) as u16;
        (
            SocketAddr::new(Ipv4Addr::from(src).into(), src_port),
            SocketAddr::new(self.dst.into(), dst_port),
        )
    }
}

/// What a flood did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FloodReport {
    /// Frames the kernel accepted for transmission.
    pub sent: u64,
    pub elapsed: Duration,
}

impl FloodReport {
    /// Frames per second.
    pub fn pps(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// An `AF_PACKET` socket that sends raw frames out of one interface.
#[derive(Debug)]
pub struct RawSender {
    fd: OwnedFd,
    /// Source MAC of the frames (the interface's own).
    src_mac: [u8; 6],
    /// Destination MAC (the neighbour's).
    dst_mac: [u8; 6],
}

impl RawSender {
    /// Opens a sender on `dev` in `ns`, addressing frames to `dst_mac`.
    /// The socket receives nothing (protocol 0) and bypasses the qdisc.
    pub fn open(ns: &Netns, dev: &str, dst_mac: [u8; 6]) -> Result<RawSender> {
        let src_mac = link_mac(ns, dev)?;
        let dev_c = std::ffi::CString::new(dev).expect("no NUL in a device name");
        let fd = ns
            .run_in(|| -> io::Result<OwnedFd> {
                // SAFETY: plain syscalls; the fd is owned right away and the
                // sockaddr is a zeroed, fully initialised sockaddr_ll.
                unsafe {
                    let raw = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
                    if raw < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    let fd = OwnedFd::from_raw_fd(raw);
                    let ifindex = libc::if_nametoindex(dev_c.as_ptr());
                    if ifindex == 0 {
                        return Err(io::Error::last_os_error());
                    }
                    let one: libc::c_int = 1;
                    if libc::setsockopt(
                        raw,
                        libc::SOL_PACKET,
                        libc::PACKET_QDISC_BYPASS,
                        (&one as *const libc::c_int).cast(),
                        size_of::<libc::c_int>() as libc::socklen_t,
                    ) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                    let mut sll: libc::sockaddr_ll = zeroed();
                    sll.sll_family = libc::AF_PACKET as u16;
                    sll.sll_ifindex = ifindex as i32;
                    if libc::bind(
                        raw,
                        (&sll as *const libc::sockaddr_ll).cast(),
                        size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                    ) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(fd)
                }
            })?
            .map_err(Error::io(format!(
                "opening an AF_PACKET socket on {dev} in {}",
                ns.name()
            )))?;
        Ok(RawSender {
            fd,
            src_mac,
            dst_mac,
        })
    }

    /// Sends the first `count` datagrams of `tuples`, [`BATCH`] frames per
    /// system call, and calls `between(batch)` after every batch (to
    /// interleave other traffic with the flood). Frames the kernel refuses
    /// with `ENOBUFS` are sent again; the flood gives up after `timeout`.
    pub fn flood(
        &self,
        tuples: &Tuples,
        count: u64,
        timeout: Duration,
        mut between: impl FnMut(u64) -> Result<()>,
    ) -> Result<FloodReport> {
        assert!(count <= tuples.capacity(), "more datagrams than tuples");
        let frames = Frames::new(*tuples, self.src_mac, self.dst_mac);
        let mut bufs = vec![frames.base.clone(); BATCH];
        let start = Instant::now();
        let mut sent = 0u64;
        let mut batch = 0u64;
        while sent < count {
            let n = BATCH.min((count - sent) as usize);
            for (k, buf) in bufs[..n].iter_mut().enumerate() {
                frames.write(buf, sent + k as u64);
            }
            let mut done = 0;
            while done < n {
                if start.elapsed() > timeout {
                    return Err(Error::Timeout {
                        what: format!("{count} flood frames (sent {})", sent + done as u64),
                        after: timeout,
                    });
                }
                match self.sendmmsg(&mut bufs[done..n]) {
                    Ok(k) => done += k,
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)) => {}
                    Err(e) => return Err(Error::io("sendmmsg on the flood socket")(e)),
                }
            }
            sent += n as u64;
            between(batch)?;
            batch += 1;
        }
        Ok(FloodReport {
            sent,
            elapsed: start.elapsed(),
        })
    }

    /// One `sendmmsg` of `frames`; how many the kernel took.
    fn sendmmsg(&self, frames: &mut [Vec<u8>]) -> io::Result<usize> {
        let mut iovs: Vec<libc::iovec> = frames
            .iter_mut()
            .map(|f| libc::iovec {
                iov_base: f.as_mut_ptr().cast(),
                iov_len: f.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                // SAFETY: an all-zero msghdr is valid (no name, no control).
                let mut m: libc::mmsghdr = unsafe { zeroed() };
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        // SAFETY: `msgs` points at `iovs`, which point at `frames`; all live
        // across the call.
        let n = unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                msgs.len() as libc::c_uint,
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// The frames of a flood: a template built by [`crate::frames`] and, since
/// only the source host changes the IPv4 header, one header checksum per
/// source host.
struct Frames {
    tuples: Tuples,
    base: Vec<u8>,
    ip: usize,
    udp: usize,
    /// Source address and header checksum, by source host index.
    hosts: Vec<([u8; 4], [u8; 2])>,
}

impl Frames {
    fn new(tuples: Tuples, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Frames {
        let (src, dst) = tuples.get(0);
        let template = Frame::udp(src, dst).payload(PAYLOAD_LEN).build();
        let ip = template
            .header(HeaderKind::Ipv4)
            .expect("an IPv4 frame")
            .start;
        let udp = template.header(HeaderKind::Udp).expect("a UDP frame").start;
        let mut base = template.bytes;
        base[..6].copy_from_slice(&dst_mac);
        base[6..12].copy_from_slice(&src_mac);
        base[udp + 6..udp + 8].copy_from_slice(&[0, 0]); // no UDP checksum
        let hosts = (0..tuples.hosts())
            .map(|h| {
                let (s, d) = tuples.get(h);
                let mut f = base.clone();
                patch(&mut f, ip, udp, s, d);
                let mut addr = [0; 4];
                addr.copy_from_slice(&f[ip + 12..ip + 16]);
                (addr, [f[ip + 10], f[ip + 11]])
            })
            .collect();
        Frames {
            tuples,
            base,
            ip,
            udp,
            hosts,
        }
    }

    /// Turns `buf` (a copy of `base`) into the i-th frame.
    fn write(&self, buf: &mut [u8], i: u64) {
        let (ip, udp) = (self.ip, self.udp);
        let (s, d) = self.tuples.get(i);
        let (addr, sum) = &self.hosts[(i % self.tuples.hosts()) as usize];
        buf[ip + 12..ip + 16].copy_from_slice(addr);
        buf[ip + 10..ip + 12].copy_from_slice(sum);
        buf[udp..udp + 2].copy_from_slice(&s.port().to_be_bytes());
        buf[udp + 2..udp + 4].copy_from_slice(&d.port().to_be_bytes());
    }
}

/// Writes source address, ports and the IPv4 header checksum of `frame`.
fn patch(frame: &mut [u8], ip: usize, udp: usize, src: SocketAddr, dst: SocketAddr) {
    let (SocketAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else {
        unreachable!("IPv4 tuples only");
    };
    frame[ip + 12..ip + 16].copy_from_slice(&src.ip().octets());
    frame[ip + 16..ip + 20].copy_from_slice(&dst.ip().octets());
    frame[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
    let ihl = usize::from(frame[ip] & 0x0f) * 4;
    let sum = ip_checksum(&frame[ip..ip + ihl]);
    frame[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
    frame[udp..udp + 2].copy_from_slice(&src.port().to_be_bytes());
    frame[udp + 2..udp + 4].copy_from_slice(&dst.port().to_be_bytes());
}

/// The MAC address of `dev` in `ns`.
pub fn link_mac(ns: &Netns, dev: &str) -> Result<[u8; 6]> {
    let out = ns.ip(&["-o", "link", "show", "dev", dev])?;
    let mac = out
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .ok_or_else(|| Error::Setup(format!("no link/ether address in: {out}")))?;
    parse_mac(mac).ok_or_else(|| Error::Setup(format!("bad MAC address {mac:?} of {dev}")))
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The resident set size of process `pid` (`VmRSS` of /proc/PID/status), in KiB.
pub fn vm_rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(Error::io(format!("reading {path}")))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::Setup(format!("no VmRSS in {path}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const TUPLES: Tuples = Tuples {
        src_net: Ipv4Addr::new(192, 0, 2, 0),
        src_hosts: (10, 249),
        dst: Ipv4Addr::new(198, 51, 100, 2),
        dst_ports: (10000, 20000),
    };

    #[test]
    fn tuples_are_distinct_and_in_range() {
        let n = 200_000;
        let mut seen = HashSet::new();
        for i in 0..n {
            let (s, d) = TUPLES.get(i);
            let SocketAddr::V4(s4) = s else { panic!() };
            let o = s4.ip().octets();
            assert_eq!(o[..3], [192, 0, 2]);
            assert!((10..=249).contains(&o[3]), "{s}");
            assert!(s.port() >= FIRST_SRC_PORT);
            assert!((10000..=20000).contains(&d.port()), "{d}");
            assert!(seen.insert((s, d)), "tuple {i} repeats");
        }
        assert_eq!(TUPLES.capacity(), 240 * 64512);
        let (s, _) = TUPLES.get(TUPLES.capacity() - 1);
        assert_eq!(s, "192.0.2.249:65535".parse().unwrap());
    }

    #[test]
    fn patched_frames_are_valid() {
        let (s0, d0) = TUPLES.get(0);
        let built = Frame::udp(s0, d0).payload(PAYLOAD_LEN).build();
        let ip = built.header(HeaderKind::Ipv4).unwrap().start;
        let udp = built.header(HeaderKind::Udp).unwrap().start;
        let mut f = built.bytes.clone();
        let (s, d) = TUPLES.get(123_457);
        patch(&mut f, ip, udp, s, d);
        // A correct header checksums to zero.
        assert_eq!(ip_checksum(&f[ip..ip + 20]), 0);
        assert_eq!(f[ip + 12..ip + 16], [192, 0, 2, 10 + (123_457 % 240) as u8]);
        assert_eq!(u16::from_be_bytes([f[udp], f[udp + 1]]), s.port());
        assert_eq!(u16::from_be_bytes([f[udp + 2], f[udp + 3]]), d.port());
        // The template built by `frames` is a valid packet to begin with.
        assert_eq!(ip_checksum(&built.bytes[ip..ip + 20]), 0);
    }

    #[test]
    fn flood_frames_equal_fully_patched_ones() {
        let (src_mac, dst_mac) = ([2, 0, 0, 0, 0, 0xaa], [2, 0, 0, 0, 0, 0xbb]);
        let frames = Frames::new(TUPLES, src_mac, dst_mac);
        for i in [0, 1, 239, 240, 241, 123_457, 999_999, TUPLES.capacity() - 1] {
            let mut fast = frames.base.clone();
            frames.write(&mut fast, i);
            let mut full = frames.base.clone();
            let (s, d) = TUPLES.get(i);
            patch(&mut full, frames.ip, frames.udp, s, d);
            assert_eq!(fast, full, "frame {i}");
            assert_eq!(
                ip_checksum(&fast[frames.ip..frames.ip + 20]),
                0,
                "frame {i}"
            );
            assert_eq!((&fast[..6], &fast[6..12]), (&dst_mac[..], &src_mac[..]));
        }
    }

    #[test]
    fn macs_and_rss() {
        assert_eq!(
            parse_mac("02:00:0a:ff:00:01"),
            Some([2, 0, 0x0a, 0xff, 0, 1])
        );
        for bad in ["", "02:00", "02:00:0a:ff:00:01:02", "zz:00:0a:ff:00:01"] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        assert!(vm_rss_kib(std::process::id()).unwrap() > 0);
    }
}
