//! The bench lab: the harness's outside → router → inside [`Topology`], with
//! one of the filters under comparison active on the router.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::atomic::AtomicBool,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use aya::{
    maps::{Array, DevMap},
    programs::{Xdp, XdpMode as AyaXdpMode},
    Ebpf, EbpfLoader,
};
use pinhole_common::{
    BASELINE_PROGRAM_NAME, DROP_FLOOR_PROGRAM_NAME, FLOOR_MAC_MAP, FLOOR_TX_MAP,
    REDIRECT_FLOOR_PROGRAM_NAME,
};
use pinhole_integration::{Daemon, Family, Netns, Topology, XdpMode};
use serde::{Deserialize, Serialize};

use super::{nft, pingpong, sip, sys};

/// The media port range every filter protects.
pub const MEDIA_LO: u16 = 10_000;
pub const MEDIA_HI: u16 = 20_000;
/// The caller's and callee's RTP ports of the call each data-plane case opens.
pub const CALLER_RTP: u16 = 16_000;
pub const CALLEE_RTP: u16 = 12_000;

/// What sits on the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// pinhole, XDP in the driver (veth native mode).
    PinholeNative,
    /// pinhole, generic (skb) XDP.
    PinholeSkb,
    /// nftables with the conntrack SIP helper.
    Nft,
    /// Plain forwarding.
    Unfiltered,
    /// Reference for the media path: pinhole native without its signaling
    /// capture (no NFQUEUE rules; the call's pinhole opened by the CLI).
    PinholeNoSignaling,
    /// Reference for the media path: an empty XDP program (`XDP_PASS`) in
    /// native mode on both router interfaces, i.e. veth's XDP receive path
    /// without any filtering.
    XdpEmpty,
    /// Floor of the flood: an XDP program that drops every frame, native
    /// mode, on the router's outside interface (the cheapest drop there).
    FloorDrop,
    /// Floor of the media path: an XDP program that redirects every frame,
    /// unchanged, to the router's inside interface through a `DEVMAP` (no
    /// route lookup, no rewrite: the cheapest forward), native mode. The
    /// inside host's veth gets GRO for the time of the case: veth's
    /// `ndo_xdp_xmit` needs NAPI (XDP or GRO) on the receiving peer.
    FloorRedirectNative,
    /// As [`Filter::FloorRedirectNative`] in generic (skb) mode, which
    /// needs nothing of the peer.
    FloorRedirectSkb,
    /// pinhole native with `--forward xdp`: the program routes and
    /// redirects the call's media itself. The hosts' veths get GRO and
    /// software checksums for the case ([`NativeRedirectPeers`]).
    PinholeFwdNative,
    /// pinhole skb with `--forward xdp`.
    PinholeFwdSkb,
}

impl Filter {
    pub const ALL: [Filter; 4] = [
        Filter::PinholeNative,
        Filter::PinholeSkb,
        Filter::Nft,
        Filter::Unfiltered,
    ];

    /// References measured on the media path only.
    pub const MEDIA_REFERENCES: [Filter; 2] = [Filter::PinholeNoSignaling, Filter::XdpEmpty];

    /// pinhole with `--forward xdp`, measured in the media part only (the
    /// flood's drops do not depend on it).
    pub const MEDIA_FORWARD: [Filter; 2] = [Filter::PinholeFwdNative, Filter::PinholeFwdSkb];

    /// Floors measured in the flood part only.
    pub const FLOOD_FLOORS: [Filter; 1] = [Filter::FloorDrop];

    /// Floors measured in the media part only.
    pub const MEDIA_FLOORS: [Filter; 2] = [Filter::FloorRedirectNative, Filter::FloorRedirectSkb];

    /// A floor: it cannot carry a call (it does not look at what it drops
    /// or forwards), so its cases measure throughput only.
    pub fn is_floor(self) -> bool {
        Filter::FLOOD_FLOORS.contains(&self) || Filter::MEDIA_FLOORS.contains(&self)
    }

    /// The floor a media-pass row is divided by: the redirect floor of the
    /// same XDP mode; none for the filters without XDP.
    pub fn media_floor(self) -> Option<Filter> {
        match self {
            Filter::PinholeNative
            | Filter::PinholeNoSignaling
            | Filter::XdpEmpty
            | Filter::PinholeFwdNative
            | Filter::FloorRedirectNative => Some(Filter::FloorRedirectNative),
            Filter::PinholeSkb | Filter::PinholeFwdSkb | Filter::FloorRedirectSkb => {
                Some(Filter::FloorRedirectSkb)
            }
            Filter::Nft | Filter::Unfiltered | Filter::FloorDrop => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Filter::PinholeNative => "pinhole native",
            Filter::PinholeSkb => "pinhole skb",
            Filter::Nft => "nftables + SIP helper",
            Filter::Unfiltered => "no filter",
            Filter::PinholeNoSignaling => "(ref) pinhole native, signaling off",
            Filter::XdpEmpty => "(ref) empty XDP program, native",
            Filter::FloorDrop => "(floor) drop all, native",
            Filter::FloorRedirectNative => "(floor) redirect all, native",
            Filter::FloorRedirectSkb => "(floor) redirect all, skb",
            Filter::PinholeFwdNative => "pinhole native, --forward xdp",
            Filter::PinholeFwdSkb => "pinhole skb, --forward xdp",
        }
    }
}

/// The daemon flags of every pinhole case: the bench's media range, and a
/// per-peer call cap high enough that a load test from one caller address is
/// not refused by policy.
pub const DAEMON_ARGS: &[&str] = &[
    "--media-ports",
    "10000-20000",
    "--max-calls-per-peer",
    "1000000",
];

/// The lab: topology plus the MACs the generator needs.
pub struct BenchLab {
    pub topo: Topology,
    /// The outside host's MAC (the generator's source).
    pub outside_mac: [u8; 6],
    /// The router's outside MAC (the generator's destination).
    pub router_mac: [u8; 6],
}

/// A filter in place on the router; removed on drop.
pub enum Active<'a> {
    Pinhole {
        daemon: Box<Daemon>,
        _peers: Option<NativeRedirectPeers<'a>>,
    },
    Nft(nft::Peer<'a>),
    /// The object whose reference or floor program is attached (detached
    /// on drop), and the peers' settings while it needs them.
    Xdp {
        _object: Box<Ebpf>,
        _peers: Option<NativeRedirectPeers<'a>>,
    },
    Unfiltered,
}

impl BenchLab {
    pub fn new() -> Result<BenchLab> {
        let topo = Topology::new().context("building the veth lab")?;
        let outside_mac = sys::mac(&topo.outside, Topology::OUTSIDE_IF)?;
        let router_mac = sys::mac(&topo.router, Topology::ROUTER_OUTSIDE_IF)?;
        Ok(BenchLab {
            topo,
            outside_mac,
            router_mac,
        })
    }

    /// Puts `filter` on the router. pinhole runs with inline signaling (the
    /// default) plus [`DAEMON_ARGS`] and `extra`.
    pub fn start(&self, filter: Filter, extra: &[&str]) -> Result<Active<'_>> {
        let mut args = DAEMON_ARGS.to_vec();
        let mode = match filter {
            Filter::PinholeNative => XdpMode::Native,
            Filter::PinholeSkb => XdpMode::Skb,
            Filter::PinholeNoSignaling => {
                args.extend_from_slice(&["--signaling", "off"]);
                XdpMode::Native
            }
            Filter::PinholeFwdNative => {
                args.extend_from_slice(&["--forward", "xdp"]);
                XdpMode::Native
            }
            Filter::PinholeFwdSkb => {
                args.extend_from_slice(&["--forward", "xdp"]);
                XdpMode::Skb
            }
            Filter::XdpEmpty => {
                return self.attach_reference(
                    BASELINE_PROGRAM_NAME,
                    AyaXdpMode::Driver,
                    &[Topology::ROUTER_OUTSIDE_IF, Topology::ROUTER_INSIDE_IF],
                )
            }
            Filter::FloorDrop => {
                return self.attach_reference(
                    DROP_FLOOR_PROGRAM_NAME,
                    AyaXdpMode::Driver,
                    &[Topology::ROUTER_OUTSIDE_IF],
                )
            }
            Filter::FloorRedirectNative => {
                return self.attach_reference(
                    REDIRECT_FLOOR_PROGRAM_NAME,
                    AyaXdpMode::Driver,
                    &[Topology::ROUTER_OUTSIDE_IF],
                )
            }
            Filter::FloorRedirectSkb => {
                return self.attach_reference(
                    REDIRECT_FLOOR_PROGRAM_NAME,
                    AyaXdpMode::Skb,
                    &[Topology::ROUTER_OUTSIDE_IF],
                )
            }
            Filter::Nft => {
                return Ok(Active::Nft(nft::Peer::load(
                    &self.topo.router,
                    MEDIA_LO,
                    MEDIA_HI,
                )?))
            }
            Filter::Unfiltered => return Ok(Active::Unfiltered),
        };
        args.extend_from_slice(extra);
        let peers = match filter {
            Filter::PinholeFwdNative => Some(NativeRedirectPeers::on(&self.topo)?),
            _ => None,
        };
        let daemon = self
            .topo
            .start_daemon(mode, &args)
            .context("starting pinhole")?;
        Ok(Active::Pinhole {
            daemon: Box::new(daemon),
            _peers: peers,
        })
    }

    /// Loads pinhole's object and attaches its program `name` in `mode` to
    /// the router's `ifaces`. The redirect floor's `DEVMAP` gets the router's
    /// inside interface; in native mode the hosts' veths are set up for it
    /// while the program is attached ([`NativeRedirectPeers`]).
    fn attach_reference(
        &self,
        name: &str,
        mode: AyaXdpMode,
        ifaces: &[&str],
    ) -> Result<Active<'_>> {
        let mut ebpf = EbpfLoader::new()
            .load(pinhole::datapath::ebpf::OBJECT)
            .context("loading pinhole's eBPF object")?;
        let mut peers = None;
        if name == REDIRECT_FLOOR_PROGRAM_NAME {
            let ifindex = self.router_ifindex(Topology::ROUTER_INSIDE_IF)?;
            let mut tx = DevMap::try_from(
                ebpf.map_mut(FLOOR_TX_MAP)
                    .with_context(|| format!("no map {FLOOR_TX_MAP}"))?,
            )?;
            // The kernel resolves a DEVMAP's ifindex in the namespace of
            // the process that writes it: write it from the router's.
            self.topo
                .router
                .run_in(|| tx.set(0, ifindex, None, 0))?
                .context("putting the inside interface in the floor's DEVMAP")?;
            // The inside host's MAC: it takes the frames as its own, as it
            // does forwarded ones.
            let inside = sys::mac(&self.topo.inside, Topology::INSIDE_IF)?;
            let mut mac = [0u8; 8];
            mac[..6].copy_from_slice(&inside);
            let mut macs: Array<_, [u8; 8]> = Array::try_from(
                ebpf.map_mut(FLOOR_MAC_MAP)
                    .with_context(|| format!("no map {FLOOR_MAC_MAP}"))?,
            )?;
            macs.set(0, mac, 0)
                .context("setting the floor's destination MAC")?;
            if mode == AyaXdpMode::Driver {
                peers = Some(NativeRedirectPeers::on(&self.topo)?);
            }
        }
        let prog: &mut Xdp = ebpf
            .program_mut(name)
            .with_context(|| format!("no program {name}"))?
            .try_into()?;
        prog.load()?;
        self.topo.router.run_in(|| -> Result<()> {
            for iface in ifaces {
                prog.attach(iface, mode)
                    .with_context(|| format!("attaching {name} to {iface}"))?;
            }
            Ok(())
        })??;
        Ok(Active::Xdp {
            _object: Box::new(ebpf),
            _peers: peers,
        })
    }

    /// The index of the router's interface `dev`.
    pub fn router_ifindex(&self, dev: &str) -> Result<u32> {
        let out = self.topo.router.ip(&["-j", "link", "show", "dev", dev])?;
        let v: serde_json::Value = serde_json::from_str(&out).context("`ip -j link` output")?;
        v[0]["ifindex"]
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .with_context(|| format!("no ifindex for {dev}"))
    }

    pub fn ip(&self, outside: bool) -> IpAddr {
        if outside {
            Family::V4.outside()
        } else {
            Family::V4.inside()
        }
    }

    /// A UDP socket on the outside (`true`) or inside host.
    pub fn udp(&self, outside: bool, port: u16) -> Result<UdpSocket> {
        let ns = if outside {
            &self.topo.outside
        } else {
            &self.topo.inside
        };
        Ok(ns.udp_socket(SocketAddr::new(self.ip(outside), port))?)
    }

    /// Sets up a call through the router (INVITE/200/ACK between the SIP
    /// agents on 5060) whose media is caller `CALLER_RTP` ↔ callee
    /// `CALLEE_RTP`, then checks the media path with a few pings. A pinhole
    /// daemon that opened nothing from the call (`--signaling off`) gets the
    /// pinhole through its CLI instead.
    pub fn open_call(&self, active: &Active<'_>, call_id: &str) -> Result<()> {
        let uac = self.udp(true, sip::SIP_PORT)?;
        let uas = self.udp(false, sip::SIP_PORT)?;
        sip::establish(
            &uac,
            &uas,
            call_id,
            SocketAddr::new(self.ip(true), CALLER_RTP),
            SocketAddr::new(self.ip(false), CALLEE_RTP),
        )?;
        if let Some(d) = active.daemon() {
            if d.stats()?.pinholes == 0 {
                d.open(
                    SocketAddr::new(self.ip(true), CALLER_RTP),
                    SocketAddr::new(self.ip(false), CALLEE_RTP),
                    &["--with-rtcp"],
                )?;
            }
        }
        let (pinger, echo) = self.media_sockets()?;
        let stop = AtomicBool::new(false);
        let report = std::thread::scope(|s| {
            let e = s.spawn(|| pingpong::echo(&echo, &stop));
            let r = pingpong::ping(
                &pinger,
                &pingpong::PingOpts {
                    payload: 158,
                    count: 10,
                    timeout: Duration::from_millis(500),
                    ..Default::default()
                },
            );
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let echoed = e.join().expect("echo thread");
            r.and_then(|r| echoed.map(|()| r))
        })?;
        if report.lost != 0 {
            bail!(
                "the media path of call {call_id} is not open: {} of {} pings lost",
                report.lost,
                report.sent
            );
        }
        Ok(())
    }

    /// The pinger (outside, `CALLER_RTP`, connected to the callee's RTP
    /// address) and the echo socket (inside, `CALLEE_RTP`).
    pub fn media_sockets(&self) -> Result<(UdpSocket, UdpSocket)> {
        let pinger = self.udp(true, CALLER_RTP)?;
        pinger.connect(SocketAddr::new(self.ip(false), CALLEE_RTP))?;
        let echo = self.udp(false, CALLEE_RTP)?;
        Ok((pinger, echo))
    }
}

/// The hosts' veths set up for native XDP redirects for as long as this
/// lives (back to veth's defaults on drop):
/// - GRO on: veth delivers frames redirected to its peer by native XDP
///   (`ndo_xdp_xmit`) only when the receiving end runs NAPI, which XDP or
///   GRO there turns on;
/// - transmit checksum offload off: a veth sender leaves UDP checksums
///   partial for "hardware" to finish, a native redirect turns the frame
///   into an `xdp_frame` without that state, and the receiver drops it as
///   corrupt. The bench's generator builds whole frames itself; this is for
///   the SIP agents' and ping-pong's sockets.
pub struct NativeRedirectPeers<'a> {
    hosts: [(&'a Netns, &'static str); 2],
}

impl<'a> NativeRedirectPeers<'a> {
    pub fn on(topo: &'a Topology) -> Result<NativeRedirectPeers<'a>> {
        let peers = NativeRedirectPeers {
            hosts: [
                (&topo.outside, Topology::OUTSIDE_IF),
                (&topo.inside, Topology::INSIDE_IF),
            ],
        };
        for (ns, dev) in peers.hosts {
            ns.set_gro(dev, true)
                .context("turning GRO on for a host's veth")?;
            ns.exec("ethtool", &["-K", dev, "tx", "off"])
                .context("turning checksum offload off for a host's veth")?;
        }
        Ok(peers)
    }
}

impl Drop for NativeRedirectPeers<'_> {
    fn drop(&mut self) {
        for (ns, dev) in self.hosts {
            let gro = ns.set_gro(dev, false);
            let tx = ns.exec("ethtool", &["-K", dev, "tx", "on"]);
            if let Err(e) = gro.and(tx.map(drop)) {
                eprintln!("warning: restoring a host's veth settings: {e:#}");
            }
        }
    }
}

impl Active<'_> {
    /// Media packets the filter has dropped so far (0 without a filter).
    pub fn dropped(&self) -> Result<u64> {
        match self {
            Active::Pinhole { daemon, .. } => Ok(daemon.counter("miss")?),
            Active::Nft(p) => p.dropped(),
            Active::Xdp { .. } | Active::Unfiltered => Ok(0),
        }
    }

    pub fn daemon(&self) -> Option<&Daemon> {
        match self {
            Active::Pinhole { daemon, .. } => Some(daemon),
            _ => None,
        }
    }
}
