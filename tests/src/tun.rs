//! A tun device (IFF_TUN, no packet information) in a test namespace, and its
//! writer: every [`Tun::inject`] is one IP packet *received* on the device,
//! as if it came out of a WireGuard or PPP link, so skb-mode XDP on the
//! device sees it starting at the IP header. The device lives as long as the
//! [`Tun`] (the kernel removes a non-persistent tun when its file closes).

use std::{
    fs::{File, OpenOptions},
    io::Write,
    net::SocketAddr,
    os::fd::AsRawFd,
};

use crate::{frames::Frame, traffic, Error, Netns, Result};

/// `TUNSETIFF`, `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// `struct ifreq` as TUNSETIFF reads it: the name, the flags, padding.
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// An open tun device.
pub struct Tun {
    file: File,
    name: String,
}

impl Tun {
    /// Creates the tun device `name` in `ns` (down, no address).
    pub fn create(ns: &Netns, name: &str) -> Result<Tun> {
        if name.len() >= libc::IFNAMSIZ {
            return Err(Error::Setup(format!("tun name {name} is too long")));
        }
        let file = ns
            .run_in(|| -> std::io::Result<File> {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/net/tun")?;
                let mut req = IfReq {
                    name: [0; libc::IFNAMSIZ],
                    flags: IFF_TUN | IFF_NO_PI,
                    _pad: [0; 22],
                };
                for (d, s) in req.name.iter_mut().zip(name.bytes()) {
                    *d = s as libc::c_char;
                }
                // SAFETY: `req` is a valid, writable ifreq for the whole call and
                // the fd is open.
                if unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req) } != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(file)
            })?
            .map_err(Error::io(format!(
                "creating tun device {name} in {} (needs /dev/net/tun and CAP_NET_ADMIN)",
                ns.name()
            )))?;
        Ok(Tun {
            file,
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Hands `packet` (an IP packet) to the kernel as received on the device.
    pub fn inject(&self, packet: &[u8]) -> Result<()> {
        let n = (&self.file)
            .write(packet)
            .map_err(Error::io(format!("writing a packet to {}", self.name)))?;
        if n != packet.len() {
            return Err(Error::Setup(format!(
                "{}: wrote {n} of {} bytes",
                self.name,
                packet.len()
            )));
        }
        Ok(())
    }

    /// Injects `n` test data datagrams (see [`traffic`]) `src → dst`.
    pub fn send(&self, src: SocketAddr, dst: SocketAddr, n: u32) -> Result<()> {
        for seq in 0..n {
            let packet = Frame::udp(src, dst)
                .data(&traffic::data_payload(seq))
                .build();
            self.inject(&packet.ip_only())?;
        }
        Ok(())
    }

    /// Injects one test marker datagram `src → dst`.
    pub fn send_marker(&self, src: SocketAddr, dst: SocketAddr) -> Result<()> {
        let packet = Frame::udp(src, dst)
            .data(&traffic::marker_payload())
            .build();
        self.inject(&packet.ip_only())
    }
}
