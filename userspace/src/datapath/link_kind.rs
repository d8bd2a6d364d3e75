//! What an interface's frames start with, and so which of the object's two
//! XDP programs filters it: [`PROGRAM_NAME`] for frames with an Ethernet
//! header (it also walks PPPoE sessions), [`PROGRAM_L3_NAME`] for links
//! without a link-layer header, whose frames skb-mode XDP hands over starting
//! at the IP header.
//!
//! The kind comes from the interface's ARPHRD type
//! (`/sys/class/net/IF/type`), read at every attach and re-attach: an
//! interface re-created under the same name may be of another type. Types
//! the program cannot parse are refused, never attached to: parsed as
//! Ethernet, an IP frame would pass as `not_ip`.

use std::path::Path;

use pinhole_common::{PROGRAM_L3_NAME, PROGRAM_NAME};

use crate::datapath::error::LoadError;
use crate::datapath::load::XdpMode;

/// `ARPHRD_ETHER`: Ethernet, and everything that looks like it (veth,
/// bridges, bonds, VLAN and macvlan devices).
pub const ARPHRD_ETHER: u16 = 1;
/// `ARPHRD_PPP`: ppp0 and friends; ppp_generic pulls the protocol field and
/// resets the MAC header at the IP header.
pub const ARPHRD_PPP: u16 = 512;
/// `ARPHRD_NONE`: tun (IFF_TUN) and WireGuard, no link-layer header.
pub const ARPHRD_NONE: u16 = 0xfffe;

/// What an interface's frames start with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// An Ethernet header.
    Ethernet,
    /// The IP header (no link-layer header).
    Ip,
}

impl LinkKind {
    /// The kind of an ARPHRD type, `None` for a type the program cannot
    /// parse (loopback, IP-in-IP and GRE tunnels, InfiniBand, CAN, …).
    pub fn of_arphrd(arphrd: u16) -> Option<LinkKind> {
        match arphrd {
            ARPHRD_ETHER => Some(LinkKind::Ethernet),
            ARPHRD_NONE | ARPHRD_PPP => Some(LinkKind::Ip),
            _ => None,
        }
    }

    /// The XDP program for this kind.
    pub fn program(self) -> &'static str {
        match self {
            LinkKind::Ethernet => PROGRAM_NAME,
            LinkKind::Ip => PROGRAM_L3_NAME,
        }
    }

    /// Whether `mode` can filter this kind of link. Native mode on a link
    /// without a link-layer header cannot: tun (in TUN mode), WireGuard and
    /// PPP implement no native XDP, and the kernel refuses the attach
    /// (EOPNOTSUPP, measured on tun). Refused here first, with the link
    /// type in the message, rather than as a generic attach failure; and a
    /// driver that did offer it would hand over frames in a framing nobody
    /// verified.
    pub fn check_mode(self, iface: &str, mode: XdpMode) -> Result<(), LoadError> {
        match (self, mode) {
            (LinkKind::Ip, XdpMode::Native) => Err(LoadError::NativeOnL3(iface.to_string())),
            _ => Ok(()),
        }
    }
}

/// The link kind of `iface`, from `sysfs` (normally `/sys/class/net`),
/// checked against `mode`: the one place attach and re-attach decide which
/// program an interface gets.
pub fn detect(sysfs: &Path, iface: &str, mode: XdpMode) -> Result<LinkKind, LoadError> {
    let path = sysfs.join(iface).join("type");
    let text = std::fs::read_to_string(&path).map_err(|e| LoadError::LinkType {
        iface: iface.to_string(),
        message: format!("reading {}: {e}", path.display()),
    })?;
    let arphrd: u16 = text.trim().parse().map_err(|_| LoadError::LinkType {
        iface: iface.to_string(),
        message: format!(
            "{} holds `{}`, not a link type",
            path.display(),
            text.trim()
        ),
    })?;
    let kind = LinkKind::of_arphrd(arphrd).ok_or_else(|| LoadError::UnsupportedLink {
        iface: iface.to_string(),
        arphrd,
    })?;
    kind.check_mode(iface, mode)?;
    Ok(kind)
}

/// Where the kernel lists the interfaces of the current network namespace.
pub const SYSFS_NET: &str = "/sys/class/net";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arphrd_types_map_to_programs_or_are_refused() {
        let table = [
            (ARPHRD_ETHER, Some(PROGRAM_NAME)),
            (ARPHRD_NONE, Some(PROGRAM_L3_NAME)),
            (ARPHRD_PPP, Some(PROGRAM_L3_NAME)),
            (772, None),   // loopback
            (768, None),   // IP-in-IP tunnel
            (778, None),   // GRE
            (32, None),    // InfiniBand
            (280, None),   // CAN
            (0, None),     // NET/ROM
            (65535, None), // ARPHRD_VOID
        ];
        for (arphrd, want) in table {
            assert_eq!(
                LinkKind::of_arphrd(arphrd).map(LinkKind::program),
                want,
                "ARPHRD {arphrd}"
            );
        }
    }

    /// A fake sysfs with one `type` file per interface, removed on drop.
    struct FakeSysfs(std::path::PathBuf);

    impl FakeSysfs {
        fn new(entries: &[(&str, &str)]) -> FakeSysfs {
            let dir = std::env::temp_dir().join(format!("pinhole-sysfs-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            for (iface, ty) in entries {
                std::fs::create_dir_all(dir.join(iface)).expect("iface dir");
                std::fs::write(dir.join(iface).join("type"), ty).expect("type file");
            }
            FakeSysfs(dir)
        }
    }

    impl Drop for FakeSysfs {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn detection_reads_sysfs_and_refuses_what_it_cannot_filter() {
        let dir = FakeSysfs::new(&[
            ("eth0", "1\n"),
            ("wg0", "65534\n"),
            ("ppp0", "512\n"),
            ("gre0", "778\n"),
            ("junk0", "ethernet\n"),
            ("big0", "70000\n"),
        ]);
        let d = |iface, mode| detect(&dir.0, iface, mode).map_err(|e| e.to_string());
        assert_eq!(d("eth0", XdpMode::Native), Ok(LinkKind::Ethernet));
        assert_eq!(d("eth0", XdpMode::Skb), Ok(LinkKind::Ethernet));
        assert_eq!(d("wg0", XdpMode::Skb), Ok(LinkKind::Ip));
        assert_eq!(d("ppp0", XdpMode::Skb), Ok(LinkKind::Ip));
        let refused = [
            ("wg0", XdpMode::Native, "--xdp-mode skb"),
            ("ppp0", XdpMode::Native, "--xdp-mode skb"),
            ("gre0", XdpMode::Skb, "link type 778"),
            ("junk0", XdpMode::Skb, "not a link type"),
            ("big0", XdpMode::Skb, "not a link type"),
            ("gone0", XdpMode::Skb, "reading"),
        ];
        for (iface, mode, needle) in refused {
            let e = d(iface, mode).expect_err(iface);
            assert!(e.contains(iface) && e.contains(needle), "{iface}: {e}");
        }
    }
}
