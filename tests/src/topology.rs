//! The standard test topology:
//!
//! ```text
//!  outside                router (forwarding, XDP on both sides)          inside
//!  eth0 ──────────────── r-out            r-in ───────────────────────── eth0
//!  192.0.2.2/24          192.0.2.1/24     198.51.100.1/24                198.51.100.2/24
//!  2001:db8:1::2/64      2001:db8:1::1/64 2001:db8:2::1/64               2001:db8:2::2/64
//! ```
//!
//! Outside and inside route everything via the router.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use crate::{traffic, Daemon, Error, Netns, Result};

/// Address family of a test case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The outside host.
    pub fn outside(self) -> IpAddr {
        self.pick(Ipv4Addr::new(192, 0, 2, 2), 0x2001_0db8_0001_u128 << 80 | 2)
    }

    /// The router's address on the outside link.
    pub fn router_outside(self) -> IpAddr {
        self.pick(Ipv4Addr::new(192, 0, 2, 1), 0x2001_0db8_0001_u128 << 80 | 1)
    }

    /// The router's address on the inside link.
    pub fn router_inside(self) -> IpAddr {
        self.pick(
            Ipv4Addr::new(198, 51, 100, 1),
            0x2001_0db8_0002_u128 << 80 | 1,
        )
    }

    /// The inside host.
    pub fn inside(self) -> IpAddr {
        self.pick(
            Ipv4Addr::new(198, 51, 100, 2),
            0x2001_0db8_0002_u128 << 80 | 2,
        )
    }

    /// A host behind a masquerading NAT on the outside host
    /// ([`Topology::nat_behind_outside`]): its private address.
    pub fn nat_private(self) -> IpAddr {
        self.pick(
            Ipv4Addr::new(203, 0, 113, 10),
            0x2001_0db8_00ff_u128 << 80 | 0x10,
        )
    }

    /// The outside host's address on the NAT's private link.
    pub fn nat_gateway(self) -> IpAddr {
        self.pick(
            Ipv4Addr::new(203, 0, 113, 1),
            0x2001_0db8_00ff_u128 << 80 | 1,
        )
    }

    /// The NAT's private prefix.
    pub fn nat_prefix(self) -> String {
        match self {
            Family::V4 => "203.0.113.0/24".into(),
            Family::V6 => "2001:db8:ff::/64".into(),
        }
    }

    /// Prefix length of the link subnets.
    pub fn prefix_len(self) -> u8 {
        match self {
            Family::V4 => 24,
            Family::V6 => 64,
        }
    }

    /// Ethernet + IP + UDP header bytes in front of a UDP payload (the XDP
    /// program counts whole frames).
    pub fn udp_overhead(self) -> u64 {
        14 + 8
            + match self {
                Family::V4 => 20,
                Family::V6 => 40,
            }
    }

    fn pick(self, v4: Ipv4Addr, v6: u128) -> IpAddr {
        match self {
            Family::V4 => IpAddr::V4(v4),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(v6)),
        }
    }
}

/// How the daemon attaches XDP (`--xdp-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    Native,
    Skb,
}

impl XdpMode {
    pub const ALL: [XdpMode; 2] = [XdpMode::Native, XdpMode::Skb];

    pub fn arg(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Skb => "skb",
        }
    }
}

/// One of the router's addresses per family ([`Family::router_outside`]…).
type RouterAddr = fn(Family) -> IpAddr;

/// Three namespaces wired as in the module docs, both families configured and
/// reachable end to end.
#[derive(Debug)]
pub struct Topology {
    pub outside: Netns,
    pub router: Netns,
    pub inside: Netns,
}

impl Topology {
    /// The outside host's interface.
    pub const OUTSIDE_IF: &'static str = "eth0";
    /// The router's interface towards the outside host.
    pub const ROUTER_OUTSIDE_IF: &'static str = "r-out";
    /// The router's interface towards the inside host.
    pub const ROUTER_INSIDE_IF: &'static str = "r-in";
    /// The inside host's interface.
    pub const INSIDE_IF: &'static str = "eth0";
    /// The outside host's interface towards a host behind its NAT.
    pub const NAT_IF: &'static str = "nat0";
    /// The bridges of [`Topology::bridge_router_links`] (outside, inside),
    /// in the router.
    pub const BRIDGES: [&'static str; 2] = ["br0", "br1"];

    /// Builds the topology and checks, with a UDP round trip per family between
    /// outside and inside, that forwarding works (which also resolves every
    /// neighbour on the path, so later test traffic is not queued behind ARP/ND).
    pub fn new() -> Result<Topology> {
        let t = Topology {
            outside: Netns::new()?,
            router: Netns::new()?,
            inside: Netns::new()?,
        };
        t.router.enable_forwarding()?;
        t.outside
            .add_veth(Self::OUTSIDE_IF, &t.router, Self::ROUTER_OUTSIDE_IF)?;
        t.router
            .add_veth(Self::ROUTER_INSIDE_IF, &t.inside, Self::INSIDE_IF)?;
        for f in Family::ALL {
            let cidr = |ip: IpAddr| format!("{ip}/{}", f.prefix_len());
            t.outside.add_addr(Self::OUTSIDE_IF, &cidr(f.outside()))?;
            t.router
                .add_addr(Self::ROUTER_OUTSIDE_IF, &cidr(f.router_outside()))?;
            t.router
                .add_addr(Self::ROUTER_INSIDE_IF, &cidr(f.router_inside()))?;
            t.inside.add_addr(Self::INSIDE_IF, &cidr(f.inside()))?;
            t.outside
                .add_route("default", &f.router_outside().to_string())?;
            t.inside
                .add_route("default", &f.router_inside().to_string())?;
        }
        for f in Family::ALL {
            t.round_trip(f)?;
        }
        Ok(t)
    }

    /// One datagram outside → inside and one back, on a port outside any
    /// plausible media range.
    fn round_trip(&self, f: Family) -> Result<()> {
        let timeout = Duration::from_secs(5);
        let outside = self.outside.udp_socket(SocketAddr::new(f.outside(), 0))?;
        let inside = self.inside.udp_socket(SocketAddr::new(f.inside(), 7))?;
        let ends = [(&outside, &inside), (&inside, &outside)];
        for (tx, rx) in ends {
            let dst = rx.local_addr().map_err(Error::io("local address"))?;
            traffic::send_marker(tx, dst)?;
            traffic::receive_until_marker(rx, timeout).map_err(|e| {
                Error::Setup(format!("the topology does not forward {f:?} traffic: {e}"))
            })?;
        }
        Ok(())
    }

    /// Checks with a UDP round trip per family that outside and inside reach
    /// each other (resolving the neighbours on the path again).
    pub fn check_forwarding(&self) -> Result<()> {
        for f in Family::ALL {
            self.round_trip(f)?;
        }
        Ok(())
    }

    /// Wires the router's outside veth again after it was deleted (its
    /// peer, the outside host's interface, went with it), as
    /// [`Topology::new`] does: same names, the peer in the outside
    /// namespace, the addresses and the outside host's default routes; then
    /// checks forwarding. The new interface gets a new ifindex.
    pub fn rewire_router_outside(&self) -> Result<()> {
        self.router
            .add_veth(Self::ROUTER_OUTSIDE_IF, &self.outside, Self::OUTSIDE_IF)?;
        for f in Family::ALL {
            let cidr = |ip: IpAddr| format!("{ip}/{}", f.prefix_len());
            self.outside
                .add_addr(Self::OUTSIDE_IF, &cidr(f.outside()))?;
            self.router
                .add_addr(Self::ROUTER_OUTSIDE_IF, &cidr(f.router_outside()))?;
            self.outside
                .add_route("default", &f.router_outside().to_string())?;
        }
        self.check_forwarding()
    }

    /// Makes each router veth a port of a new bridge ([`Self::BRIDGES`])
    /// that holds the router's addresses of that link (moved from the
    /// veth), as on a router whose addresses live on bridges over its NICs;
    /// then checks forwarding. XDP stays on the ports, which see frames
    /// before the bridge; the stack routes signaling with the bridges, never
    /// an attached name, as `-i`/`-o`.
    pub fn bridge_router_links(&self) -> Result<()> {
        let links: [(&str, &str, RouterAddr); 2] = [
            (
                Self::ROUTER_OUTSIDE_IF,
                Self::BRIDGES[0],
                Family::router_outside,
            ),
            (
                Self::ROUTER_INSIDE_IF,
                Self::BRIDGES[1],
                Family::router_inside,
            ),
        ];
        for (port, br, addr) in links {
            self.router.ip(&["link", "add", br, "type", "bridge"])?;
            // The port's MAC, so the hosts' neighbour entries stay right.
            let mac = self
                .router
                .exec("cat", &[&format!("/sys/class/net/{port}/address")])?;
            self.router
                .ip(&["link", "set", br, "address", mac.trim()])?;
            self.router
                .ip(&["addr", "flush", "dev", port, "scope", "global"])?;
            self.router.ip(&["link", "set", port, "master", br])?;
            self.router.ip(&["link", "set", br, "up"])?;
            for f in Family::ALL {
                self.router
                    .add_addr(br, &format!("{}/{}", addr(f), f.prefix_len()))?;
            }
        }
        self.check_forwarding()
    }

    /// A host behind the outside host, which masquerades it (nftables)
    /// to its own address when it sends out towards the router: a UA
    /// behind NAT. Private addresses [`Family::nat_private`] on a veth
    /// (`eth0` there, [`Self::NAT_IF`] on the outside host), default route
    /// via [`Family::nat_gateway`]. The router gets a route to the private
    /// prefixes via the outside host, only so that tests can reach the
    /// NAT'd host's sockets directly (markers, drop checks); everything the
    /// host sends leaves masqueraded. Checked with a round trip per family
    /// to the inside host, whose reply arrives through the NAT.
    pub fn nat_behind_outside(&self) -> Result<Netns> {
        let host = Netns::new()?;
        self.outside.enable_forwarding()?;
        self.outside.add_veth(Self::NAT_IF, &host, "eth0")?;
        for f in Family::ALL {
            let cidr = |ip: IpAddr| format!("{ip}/{}", f.prefix_len());
            self.outside
                .add_addr(Self::NAT_IF, &cidr(f.nat_gateway()))?;
            host.add_addr("eth0", &cidr(f.nat_private()))?;
            host.add_route("default", &f.nat_gateway().to_string())?;
            self.router
                .add_route(&f.nat_prefix(), &f.outside().to_string())?;
        }
        let nft = |args: &[&str]| self.outside.exec("nft", args).map(drop);
        nft(&["add", "table", "inet", "ph_nat"])?;
        nft(&["add chain inet ph_nat post { type nat hook postrouting priority srcnat; }"])?;
        for (l3, f) in [("ip", Family::V4), ("ip6", Family::V6)] {
            let prefix = f.nat_prefix();
            nft(&[&format!(
                "add rule inet ph_nat post oifname {} {l3} saddr {prefix} masquerade",
                Self::OUTSIDE_IF
            )])?;
        }
        let timeout = Duration::from_secs(5);
        for f in Family::ALL {
            let tx = host.udp_socket(SocketAddr::new(f.nat_private(), 0))?;
            let rx = self.inside.udp_socket(SocketAddr::new(f.inside(), 7))?;
            let dst = rx.local_addr().map_err(Error::io("local address"))?;
            traffic::send_marker(&tx, dst)?;
            traffic::receive_until_marker(&rx, timeout).map_err(|e| {
                Error::Setup(format!(
                    "the NAT'd host does not reach the inside ({f:?}): {e}"
                ))
            })?;
        }
        Ok(host)
    }

    /// Starts `pinhole run` in the router namespace on both router interfaces
    /// in `mode`, with `extra` arguments.
    pub fn start_daemon(&self, mode: XdpMode, extra: &[&str]) -> Result<Daemon> {
        self.start_daemon_on(
            &[Self::ROUTER_OUTSIDE_IF, Self::ROUTER_INSIDE_IF],
            mode,
            extra,
        )
    }

    /// Starts `pinhole run` in the router namespace on `ifaces` in `mode`,
    /// with `extra` arguments.
    pub fn start_daemon_on(
        &self,
        ifaces: &[&str],
        mode: XdpMode,
        extra: &[&str],
    ) -> Result<Daemon> {
        let mut args = Vec::new();
        for iface in ifaces {
            args.extend(["--iface", iface]);
        }
        args.extend(["--xdp-mode", mode.arg()]);
        args.extend_from_slice(extra);
        Daemon::start(&self.router, &args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_documentation_ranges() {
        for f in Family::ALL {
            for ip in [
                f.outside(),
                f.router_outside(),
                f.router_inside(),
                f.inside(),
            ] {
                let doc = match ip {
                    IpAddr::V4(v4) => {
                        let o = v4.octets();
                        matches!(
                            (o[0], o[1], o[2]),
                            (192, 0, 2) | (198, 51, 100) | (203, 0, 113)
                        )
                    }
                    IpAddr::V6(v6) => v6.segments()[..2] == [0x2001, 0x0db8],
                };
                assert!(doc, "{ip} is not a documentation address");
                assert_eq!(ip.is_ipv4(), f == Family::V4, "{ip} for {f:?}");
            }
        }
        assert_eq!(Family::V6.inside().to_string(), "2001:db8:2::2");
        assert_eq!(Family::V6.router_outside().to_string(), "2001:db8:1::1");
    }
}
