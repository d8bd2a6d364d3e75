//! The packet generator: prebuilt Ethernet/IPv4/UDP frames written to an
//! `AF_PACKET` socket with `sendmmsg`, as fast as the CPU allows, for a fixed
//! time.
//!
//! It runs as a separate process (`pinhole-labbench blast …`, started with
//! `ip netns exec` in the outside namespace and pinned to one CPU), and
//! samples its CPU figures right before its first and after its last send,
//! so they cover exactly the blast:
//!
//! - `/proc/stat` of its CPU: on veth, everything the router does with a
//!   frame (veth NAPI poll, XDP, generic XDP, netfilter, conntrack,
//!   forwarding, the inside host's receive) runs in NET_RX softirq on the
//!   sending CPU, which `/proc/stat` accounts as softirq even when it runs on
//!   the back of the generator's syscall; what the generator does in process
//!   context (building batches, `sendmmsg`, AF_PACKET, the veth transmit)
//!   is user/system time. The router's cost is the softirq (+ hardirq)
//!   delta, so the generator's own work is not in it. The kernel samples
//!   this at each tick (250 Hz).
//! - The sending thread's CPU time plus that CPU's `ksoftirqd` runtime
//!   (scheduler runtimes, exact): everything the sending CPU spent,
//!   generator and router together, whatever else runs on the machine.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure, Context, Result};
use pinhole_integration::{frames::Frame, Netns};
use serde::{Deserialize, Serialize};

use super::sys::{self, CpuSecs, CpuTimes};

/// Frames per `sendmmsg` call.
const BATCH: usize = 64;

/// What to send.
#[derive(Clone, Debug, PartialEq, clap::Args)]
pub struct BlastSpec {
    /// Interface to send on (in the namespace the process runs in).
    #[arg(long)]
    pub iface: String,
    /// Source MAC (the interface's own).
    #[arg(long)]
    pub src_mac: String,
    /// Destination MAC (the router's interface).
    #[arg(long)]
    pub dst_mac: String,
    /// Source IPv4 address and port.
    #[arg(long)]
    pub src: SocketAddrV4,
    /// Destination IPv4 address.
    #[arg(long)]
    pub dst: Ipv4Addr,
    /// First destination port; frames cycle over `ports` consecutive ports.
    #[arg(long)]
    pub dst_port: u16,
    /// Number of distinct destination ports.
    #[arg(long, default_value_t = 1)]
    pub ports: u16,
    /// Frame size in bytes (Ethernet header included, FCS excluded).
    #[arg(long, default_value_t = 64)]
    pub frame: usize,
    /// How long to send, in seconds.
    #[arg(long)]
    pub secs: f64,
    /// CPU to pin to.
    #[arg(long)]
    pub cpu: Option<usize>,
}

/// What the generator reports (one JSON line on stdout).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct BlastReport {
    /// Frames the kernel accepted.
    pub sent: u64,
    /// `sendmmsg` calls that failed (ENOBUFS and the like).
    pub errors: u64,
    /// Wall time of the send loop.
    pub secs: f64,
    /// CPU time of the sending thread (scheduler runtime, ns precision). It
    /// includes the softirq work the kernel ran on its back (this kernel
    /// does not account irq time separately from tasks).
    pub gen_cpu: f64,
    /// CPU time of `ksoftirqd` on the generator's CPU: softirq work that
    /// CPU deferred (also the router's).
    pub ksoftirqd_cpu: f64,
    /// `/proc/stat` of the generator's CPU during the send loop, by kind.
    pub cpu: CpuSecs,
    /// `/proc/stat` of all CPUs.
    pub cpu_all: CpuSecs,
}

impl BlastReport {
    pub fn pps(&self) -> f64 {
        self.sent as f64 / self.secs.max(1e-9)
    }

    /// Everything the sending CPU spent on the blast: the generator and the
    /// router work that ran on its back or in its ksoftirqd.
    pub fn sending_cpu(&self) -> f64 {
        self.gen_cpu + self.ksoftirqd_cpu
    }
}

/// Ethernet + IPv4 + UDP header bytes.
const HEADERS: usize = 14 + 20 + 8;

/// The frames to cycle over, with real MACs.
pub fn frames(spec: &BlastSpec) -> Result<Vec<Vec<u8>>> {
    ensure!(
        (HEADERS..=1514).contains(&spec.frame),
        "frame size {} is outside {HEADERS}..=1514",
        spec.frame
    );
    ensure!(spec.ports >= 1, "at least one destination port");
    let src_mac = sys::parse_mac(&spec.src_mac)?;
    let dst_mac = sys::parse_mac(&spec.dst_mac)?;
    (0..spec.ports)
        .map(|i| {
            let port = spec
                .dst_port
                .checked_add(i)
                .context("destination ports past 65535")?;
            let dst = SocketAddr::V4(SocketAddrV4::new(spec.dst, port));
            let mut f = Frame::udp(SocketAddr::V4(spec.src), dst)
                .payload(spec.frame - HEADERS)
                .build()
                .bytes;
            f[..6].copy_from_slice(&dst_mac);
            f[6..12].copy_from_slice(&src_mac);
            Ok(f)
        })
        .collect()
}

/// Runs the blast in this process and returns its report.
pub fn run(spec: &BlastSpec) -> Result<BlastReport> {
    if let Some(cpu) = spec.cpu {
        sys::pin_to_cpu(cpu)?;
    }
    let frames = frames(spec)?;
    let sock = PacketSocket::open(&spec.iface)?;
    let duration = Duration::from_secs_f64(spec.secs);
    let mut iov: Vec<libc::iovec> = (0..BATCH)
        .map(|i| {
            let f = &frames[i % frames.len()];
            libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            }
        })
        .collect();
    // SAFETY: an all-zero mmsghdr is valid (no name, no control data).
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
        .map(|_| unsafe { std::mem::zeroed::<libc::mmsghdr>() })
        .collect();
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    let (mut sent, mut errors) = (0u64, 0u64);
    let cpu = spec.cpu.unwrap_or(0);
    let softirqd = sys::ksoftirqd(cpu)?;
    let softirqd_before = sys::runtime(softirqd)?;
    let all_before = CpuTimes::read(None)?;
    let stat_before = CpuTimes::read(Some(cpu))?;
    let cpu_before = sys::thread_cpu();
    let start = Instant::now();
    while start.elapsed() < duration {
        // SAFETY: msgs points at BATCH headers whose iovecs point into
        // `frames`, which outlives the call.
        let n = unsafe { libc::sendmmsg(sock.0, msgs.as_mut_ptr(), BATCH as u32, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR) => errors += 1,
                _ => return Err(e).context("sendmmsg"),
            }
        } else {
            sent += n as u64;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let gen_cpu = (sys::thread_cpu() - cpu_before).as_secs_f64();
    let stat_after = CpuTimes::read(Some(cpu))?;
    let all_after = CpuTimes::read(None)?;
    let ksoftirqd_cpu = (sys::runtime(softirqd)? - softirqd_before).as_secs_f64();
    Ok(BlastReport {
        sent,
        errors,
        secs,
        gen_cpu,
        ksoftirqd_cpu,
        cpu: stat_after.since(&stat_before),
        cpu_all: all_after.since(&all_before),
    })
}

/// An `AF_PACKET` raw socket bound to one interface, send-only (protocol 0
/// receives nothing), bypassing the qdisc layer.
struct PacketSocket(libc::c_int);

impl PacketSocket {
    fn open(iface: &str) -> Result<PacketSocket> {
        let name = std::ffi::CString::new(iface).context("interface name")?;
        // SAFETY: plain syscalls on values we own; errors are checked.
        unsafe {
            let index = libc::if_nametoindex(name.as_ptr());
            if index == 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("no interface {iface}"));
            }
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(std::io::Error::last_os_error()).context("AF_PACKET socket");
            }
            let sock = PacketSocket(fd);
            let one: libc::c_int = 1;
            if libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            ) != 0
            {
                return Err(std::io::Error::last_os_error()).context("PACKET_QDISC_BYPASS");
            }
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = index as i32;
            if libc::bind(
                fd,
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            ) != 0
            {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("binding to {iface}"));
            }
            Ok(sock)
        }
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.0) };
    }
}

/// Runs the generator as `<this binary> blast …` in `ns` and waits for its
/// report.
pub fn spawn(ns: &Netns, spec: &BlastSpec) -> Result<BlastReport> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let mut cmd: Command = ns.command(exe);
    cmd.arg("blast")
        .args(["--iface", &spec.iface])
        .args(["--src-mac", &spec.src_mac])
        .args(["--dst-mac", &spec.dst_mac])
        .args(["--src", &spec.src.to_string()])
        .args(["--dst", &spec.dst.to_string()])
        .args(["--dst-port", &spec.dst_port.to_string()])
        .args(["--ports", &spec.ports.to_string()])
        .args(["--frame", &spec.frame.to_string()])
        .args(["--secs", &spec.secs.to_string()]);
    if let Some(cpu) = spec.cpu {
        cmd.args(["--cpu", &cpu.to_string()]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .context("running the generator")?;
    if !out.status.success() {
        bail!(
            "the generator failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).with_context(|| format!("the generator's report: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(frame: usize, ports: u16) -> BlastSpec {
        BlastSpec {
            iface: "eth0".into(),
            src_mac: "02:00:00:00:00:0a".into(),
            dst_mac: "02:00:00:00:00:0b".into(),
            src: "192.0.2.2:40000".parse().unwrap(),
            dst: "198.51.100.2".parse().unwrap(),
            dst_port: 10100,
            ports,
            frame,
            secs: 1.0,
            cpu: None,
        }
    }

    #[test]
    fn frames_have_the_size_macs_and_ports_asked_for() {
        for (size, ports) in [(64, 1), (200, 4), (HEADERS, 2), (1514, 1)] {
            let f = frames(&spec(size, ports)).unwrap();
            assert_eq!(f.len(), usize::from(ports));
            for (i, frame) in f.iter().enumerate() {
                assert_eq!(frame.len(), size);
                assert_eq!(frame[..6], [2, 0, 0, 0, 0, 0x0b]);
                assert_eq!(frame[6..12], [2, 0, 0, 0, 0, 0x0a]);
                assert_eq!(frame[12..14], [0x08, 0x00]);
                let dport = u16::from_be_bytes([frame[36], frame[37]]);
                assert_eq!(dport, 10100 + i as u16);
                assert!(frame[22] > 1, "TTL must survive forwarding");
            }
        }
        for (size, ports) in [(HEADERS - 1, 1), (1515, 1), (64, 0)] {
            assert!(frames(&spec(size, ports)).is_err(), "{size} {ports}");
        }
        let mut wrap = spec(64, 2);
        wrap.dst_port = 65535;
        assert!(frames(&wrap).is_err());
    }
}
