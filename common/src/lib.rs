//! Types shared by the pinhole XDP program (`pinhole-ebpf`) and the userspace
//! controller (`pinhole`). This crate is the single definition of the kernel/user
//! ABI: every struct is `#[repr(C)]` with explicit padding and no `bool`, so its
//! layout is the same on both sides. With the `user` feature the types implement
//! `aya::Pod` and can be used as map keys and values.
#![no_std]

/// Name of the BPF `HASH` map of open IPv4 flows, [`FlowKeyV4`] → [`FlowStats`]
/// (one entry per direction of a pinhole).
pub const FLOWS_V4_MAP: &str = "PINHOLE_FLOWS4";
/// Name of the BPF `HASH` map of open IPv6 flows, [`FlowKeyV6`] → [`FlowStats`].
pub const FLOWS_V6_MAP: &str = "PINHOLE_FLOWS6";
/// Name of the per-CPU verdict counter array, indexed by [`Reason`].
pub const COUNTERS_MAP: &str = "PINHOLE_COUNTERS";
/// Name of the `.rodata` global holding the load-time [`Config`].
pub const CONFIG_GLOBAL: &str = "PINHOLE_CONFIG";
/// Name of the XDP filter program in the object, for links whose frames
/// start with an Ethernet header (Ethernet, veth, bridges, bonds, VLANs; it
/// also walks PPPoE sessions).
pub const PROGRAM_NAME: &str = "pinhole";
/// Name of the same filter for links without a link-layer header (tun,
/// WireGuard, PPP): its frames start at the IP header. Same maps, same
/// configuration; the loader attaches one or the other by link type.
pub const PROGRAM_L3_NAME: &str = "pinhole_l3";
/// Name of the empty XDP program used as the benchmark baseline.
pub const BASELINE_PROGRAM_NAME: &str = "pinhole_baseline";
/// Name of the drop floor: an XDP program that drops every frame (the lab
/// bench's cheapest drop). Never attached by the daemon.
pub const DROP_FLOOR_PROGRAM_NAME: &str = "pinhole_floor_drop";
/// Name of the forward floor: an XDP program that writes the destination
/// MAC of [`FLOOR_MAC_MAP`] and redirects every frame to the interface at
/// index 0 of [`FLOOR_TX_MAP`] (the lab bench's cheapest forward). Never
/// attached by the daemon.
pub const REDIRECT_FLOOR_PROGRAM_NAME: &str = "pinhole_floor_redirect";
/// Name of the one-entry `DEVMAP` of [`REDIRECT_FLOOR_PROGRAM_NAME`].
pub const FLOOR_TX_MAP: &str = "PINHOLE_FLOOR_TX";
/// Name of the one-entry `ARRAY` of `[u8; 8]` whose first six bytes are the
/// destination MAC [`REDIRECT_FLOOR_PROGRAM_NAME`] writes.
pub const FLOOR_MAC_MAP: &str = "PINHOLE_FLOOR_MAC";
/// The maps only the bench's floor programs use. The daemon never pins
/// them: a restart has nothing to keep in them.
pub const BENCH_ONLY_MAPS: [&str; 2] = [FLOOR_TX_MAP, FLOOR_MAC_MAP];
/// Name of the `DEVMAP_HASH` of the interfaces forwarded media may leave
/// by (`--forward xdp`): ifindex → that ifindex. A route whose egress is
/// not in it falls back to the stack ([`Reason::FwdEgressNotInDevmap`]).
pub const FORWARD_TX_MAP: &str = "PINHOLE_TX";
/// Capacity of [`FORWARD_TX_MAP`].
pub const MAX_FORWARD_IFACES: u32 = 64;

/// Default capacity of each of [`FLOWS_V4_MAP`] and [`FLOWS_V6_MAP`] (entries,
/// i.e. directions). Overridden at load.
pub const DEFAULT_MAX_FLOWS: u32 = 262_144;
/// How many media port ranges the program can hold.
pub const MAX_PORT_RANGES: usize = 8;
/// How many IPv6 extension headers (hop-by-hop, routing, destination options,
/// fragment, AH) the parser walks before it gives up with [`Reason::ExtHeaderLimit`].
pub const MAX_IPV6_EXT_HEADERS: usize = 6;
/// How many VLAN tags (802.1Q / 802.1ad) the parser strips.
pub const MAX_VLAN_TAGS: usize = 2;
/// How many protected destination prefixes ([`Config::media_prefixes`]) each
/// family can hold.
pub const MAX_MEDIA_PREFIXES: usize = 8;

/// Address family tag in [`FlowKey::family`].
pub const FAMILY_V4: u8 = 4;
/// Address family tag in [`FlowKey::family`].
pub const FAMILY_V6: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

/// Exact 5-tuple of one direction of a media flow, whatever its family: the
/// userspace identity of a flow (the pinhole table and the controller use it
/// everywhere). IPv4 addresses occupy the first four bytes of the 16-byte
/// address fields; the rest is zero. Ports are in host byte order.
///
/// It is not a map key: the kernel side keys IPv4 flows by [`FlowKeyV4`] and
/// IPv6 flows by [`FlowKeyV6`], in two maps, because hashing and comparing this
/// 40-byte key cost most of a hit. [`FlowKey::to_map_key`] translates.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub family: u8,
    pub proto: u8,
    pub _pad: [u8; 2],
    pub src_port: u16,
    pub dst_port: u16,
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
}

impl FlowKey {
    /// The key of the opposite direction (B:b→A:a for A:a→B:b).
    pub const fn reversed(&self) -> FlowKey {
        FlowKey {
            family: self.family,
            proto: self.proto,
            _pad: [0; 2],
            src_port: self.dst_port,
            dst_port: self.src_port,
            src_addr: self.dst_addr,
            dst_addr: self.src_addr,
        }
    }

    /// The key of this flow in its family's map, `None` when the family is
    /// neither [`FAMILY_V4`] nor [`FAMILY_V6`] or the protocol is not UDP
    /// (the only protocol the program filters), or when an IPv4 key has
    /// non-zero bytes past its 4-byte addresses (no map key could round-trip
    /// to it).
    pub fn to_map_key(&self) -> Option<MapKey> {
        if self.proto != IPPROTO_UDP {
            return None;
        }
        match self.family {
            FAMILY_V4 => self.to_v4().map(MapKey::V4),
            FAMILY_V6 => self.to_v6().map(MapKey::V6),
            _ => None,
        }
    }

    /// The [`FlowKeyV4`] of an IPv4 UDP flow, `None` otherwise.
    pub fn to_v4(&self) -> Option<FlowKeyV4> {
        if self.family != FAMILY_V4
            || self.proto != IPPROTO_UDP
            || !is_zero(&self.src_addr, 4)
            || !is_zero(&self.dst_addr, 4)
        {
            return None;
        }
        Some(FlowKeyV4::new(
            [
                self.src_addr[0],
                self.src_addr[1],
                self.src_addr[2],
                self.src_addr[3],
            ],
            self.src_port,
            [
                self.dst_addr[0],
                self.dst_addr[1],
                self.dst_addr[2],
                self.dst_addr[3],
            ],
            self.dst_port,
        ))
    }

    /// The [`FlowKeyV6`] of an IPv6 UDP flow, `None` otherwise.
    pub fn to_v6(&self) -> Option<FlowKeyV6> {
        if self.family != FAMILY_V6 || self.proto != IPPROTO_UDP {
            return None;
        }
        Some(FlowKeyV6::new(
            self.src_addr,
            self.src_port,
            self.dst_addr,
            self.dst_port,
        ))
    }
}

/// Whether `bytes[from..]` is all zero.
const fn is_zero(bytes: &[u8; 16], from: usize) -> bool {
    let mut i = from;
    while i < bytes.len() {
        if bytes[i] != 0 {
            return false;
        }
        i += 1;
    }
    true
}

/// Key of [`FLOWS_V4_MAP`]: one direction of an IPv4 UDP flow, 12 bytes.
///
/// The family is implied by the map and the protocol by the program (only UDP
/// is subject to filtering), so neither is stored. The layout is the wire's:
/// the IPv4 source and destination addresses followed by the UDP source and
/// destination ports, all in network byte order, so the XDP program builds the
/// key with plain loads and no byte swaps. Build it with [`FlowKeyV4::new`]
/// or [`FlowKey::to_v4`], which take host-order ports, and read it back with
/// [`FlowKeyV4::to_flow_key`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKeyV4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    /// Network byte order.
    pub src_port: u16,
    /// Network byte order.
    pub dst_port: u16,
}

impl FlowKeyV4 {
    /// The key of `src:src_port → dst:dst_port`, ports in host order.
    pub const fn new(src: [u8; 4], src_port: u16, dst: [u8; 4], dst_port: u16) -> FlowKeyV4 {
        FlowKeyV4 {
            src,
            dst,
            src_port: src_port.to_be(),
            dst_port: dst_port.to_be(),
        }
    }

    /// The family-independent identity of this flow.
    pub fn to_flow_key(&self) -> FlowKey {
        let mut key = FlowKey {
            family: FAMILY_V4,
            proto: IPPROTO_UDP,
            src_port: u16::from_be(self.src_port),
            dst_port: u16::from_be(self.dst_port),
            ..FlowKey::default()
        };
        key.src_addr[..4].copy_from_slice(&self.src);
        key.dst_addr[..4].copy_from_slice(&self.dst);
        key
    }
}

/// Key of [`FLOWS_V6_MAP`]: one direction of an IPv6 UDP flow, 36 bytes.
///
/// Family and protocol are implied as for [`FlowKeyV4`]. Addresses, then the
/// UDP source and destination ports, all in network byte order, as on the
/// wire.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKeyV6 {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Network byte order.
    pub src_port: u16,
    /// Network byte order.
    pub dst_port: u16,
}

impl FlowKeyV6 {
    /// The key of `src:src_port → dst:dst_port`, ports in host order.
    pub const fn new(src: [u8; 16], src_port: u16, dst: [u8; 16], dst_port: u16) -> FlowKeyV6 {
        FlowKeyV6 {
            src,
            dst,
            src_port: src_port.to_be(),
            dst_port: dst_port.to_be(),
        }
    }

    /// The family-independent identity of this flow.
    pub fn to_flow_key(&self) -> FlowKey {
        FlowKey {
            family: FAMILY_V6,
            proto: IPPROTO_UDP,
            _pad: [0; 2],
            src_port: u16::from_be(self.src_port),
            dst_port: u16::from_be(self.dst_port),
            src_addr: self.src,
            dst_addr: self.dst,
        }
    }
}

/// A flow's key in the map of its family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapKey {
    V4(FlowKeyV4),
    V6(FlowKeyV6),
}

impl MapKey {
    /// The family-independent identity of this flow.
    pub fn to_flow_key(&self) -> FlowKey {
        match self {
            MapKey::V4(k) => k.to_flow_key(),
            MapKey::V6(k) => k.to_flow_key(),
        }
    }
}

/// How far the clock must move past a flow's stored `last_seen_ns` before a
/// hit stamps it again (1 s). Stamping on every packet cost a store per hit;
/// with this, `last_seen_ns` lags a flow's newest packet by less than 1 s,
/// and idle expiry may therefore fire up to 1 s early.
pub const LAST_SEEN_GRANULARITY_NS: u64 = 1_000_000_000;

/// Per-flow statistics, the value of [`FLOWS_V4_MAP`] and [`FLOWS_V6_MAP`].
/// The XDP program adds to `packets` and `bytes` (plain adds: one flow, one
/// CPU; a collision can lose one count, see docs/architecture.md) and stamps
/// `last_seen_ns` (`bpf_ktime_get_coarse_ns`, CLOCK_MONOTONIC) on a hit when
/// the clock moved by at least [`LAST_SEEN_GRANULARITY_NS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub packets: u64,
    pub bytes: u64,
    pub last_seen_ns: u64,
}

/// Name of the BPF `HASH` map of IPv4 half-open latches, [`LatchKeyV4`] →
/// [`LatchValue`] (bounded latching, see [`Config::latching`]).
pub const LATCH_V4_MAP: &str = "PINHOLE_LATCH4";
/// Name of the BPF `HASH` map of IPv6 half-open latches, [`LatchKeyV6`] →
/// [`LatchValue`].
pub const LATCH_V6_MAP: &str = "PINHOLE_LATCH6";
/// Name of the BPF ring buffer through which the program reports each latch
/// it completes (or fails to complete) as a [`LatchEvent`].
pub const EVENTS_MAP: &str = "PINHOLE_EVENTS";
/// Capacity of each latch map, in half-open entries.
pub const MAX_LATCHES: u32 = 16_384;
/// Size of [`EVENTS_MAP`] in bytes (a power-of-two multiple of the page
/// size): about 1300 undelivered events.
pub const EVENTS_BYTES: u32 = 64 * 1024;

/// Key of [`LATCH_V4_MAP`]: a half-open pinhole that the first packet from
/// `src` (any source port) to `dst:dst_port` completes. 12 bytes, the layout
/// of [`FlowKeyV4`] with the source port always zero, so the program builds
/// it from a packet's flow key by clearing one field. Network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LatchKeyV4 {
    /// The remote's signaling address: the only source that may latch.
    pub src: [u8; 4],
    /// The local media address.
    pub dst: [u8; 4],
    /// Always zero: any source port.
    pub any_port: u16,
    /// The local media port, network byte order.
    pub dst_port: u16,
}

impl LatchKeyV4 {
    /// The half-open entry for packets from `src` to `dst:dst_port` (host
    /// order).
    pub const fn new(src: [u8; 4], dst: [u8; 4], dst_port: u16) -> LatchKeyV4 {
        LatchKeyV4 {
            src,
            dst,
            any_port: 0,
            dst_port: dst_port.to_be(),
        }
    }

    /// The entry a packet with flow key `key` would complete.
    #[inline(always)]
    pub const fn of(key: &FlowKeyV4) -> LatchKeyV4 {
        LatchKeyV4 {
            src: key.src,
            dst: key.dst,
            any_port: 0,
            dst_port: key.dst_port,
        }
    }
}

/// Key of [`LATCH_V6_MAP`]: as [`LatchKeyV4`] for IPv6, 36 bytes, the layout
/// of [`FlowKeyV6`] with the source port zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LatchKeyV6 {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Always zero: any source port.
    pub any_port: u16,
    /// Network byte order.
    pub dst_port: u16,
}

impl LatchKeyV6 {
    /// The half-open entry for packets from `src` to `dst:dst_port` (host
    /// order).
    pub const fn new(src: [u8; 16], dst: [u8; 16], dst_port: u16) -> LatchKeyV6 {
        LatchKeyV6 {
            src,
            dst,
            any_port: 0,
            dst_port: dst_port.to_be(),
        }
    }

    /// The entry a packet with flow key `key` would complete.
    #[inline(always)]
    pub const fn of(key: &FlowKeyV6) -> LatchKeyV6 {
        LatchKeyV6 {
            src: key.src,
            dst: key.dst,
            any_port: 0,
            dst_port: key.dst_port,
        }
    }
}

/// Value of both latch maps.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatchValue {
    /// CLOCK_MONOTONIC nanoseconds after which the entry no longer latches
    /// (packets that match it are dropped as [`Reason::LatchExpired`] until
    /// the controller removes it).
    pub deadline_ns: u64,
    /// Chosen by the controller; echoed in the [`LatchEvent`].
    pub cookie: u64,
}

/// [`LatchEvent::status`]: the exact pair is in the flow map.
pub const LATCH_INSTALLED: u8 = 0;
/// [`LatchEvent::status`]: the flow map refused the pair (full). The packet
/// was dropped and the half-open entry put back, so a later packet retries.
pub const LATCH_FLOWS_FULL: u8 = 1;

/// One record of [`EVENTS_MAP`]: the program claimed a half-open entry for
/// the packet `src:src_port → dst:dst_port` and installed (or could not
/// install) the flows of that exact pair in both directions.
///
/// A record is reserved in the ring buffer *before* the entry is claimed,
/// so every claim is reported: the controller never loses track of flows
/// the program inserted.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatchEvent {
    /// [`LatchValue::cookie`] of the claimed entry.
    pub cookie: u64,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// [`LATCH_INSTALLED`] or [`LATCH_FLOWS_FULL`].
    pub status: u8,
    pub _pad: [u8; 2],
    /// Network byte order.
    pub src_port: u16,
    /// Network byte order.
    pub dst_port: u16,
    /// The packet's source (IPv4 in the first four bytes, rest zero).
    pub src: [u8; 16],
    /// The packet's destination, the local media address.
    pub dst: [u8; 16],
}

/// One inclusive range of UDP destination ports that the filter protects.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

/// What the program does with a non-first fragment of a UDP datagram, which
/// carries no port. See [`Config::fragment_policy`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragmentPolicy {
    /// Pass non-first fragments (default). Safe because the first fragment, which
    /// carries the UDP header, is filtered like any datagram: when it is dropped
    /// the kernel can never reassemble the datagram and discards the rest.
    Pass = 0,
    /// Drop every non-first UDP fragment, whatever its destination.
    Drop = 1,
}

/// An IPv4 destination prefix: `dst & mask == net`, all in network byte order
/// (`net` is already masked).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrefixV4 {
    pub net: [u8; 4],
    pub mask: [u8; 4],
}

/// An IPv6 destination prefix, as [`PrefixV4`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrefixV6 {
    pub net: [u8; 16],
    pub mask: [u8; 16],
}

impl PrefixV4 {
    /// True when `addr` lies in the prefix.
    #[inline(always)]
    pub fn contains(&self, addr: [u8; 4]) -> bool {
        u32::from_ne_bytes(addr) & u32::from_ne_bytes(self.mask) == u32::from_ne_bytes(self.net)
    }
}

impl PrefixV6 {
    /// True when `addr` lies in the prefix.
    #[inline(always)]
    pub fn contains(&self, addr: [u8; 16]) -> bool {
        u128::from_ne_bytes(addr) & u128::from_ne_bytes(self.mask) == u128::from_ne_bytes(self.net)
    }
}

/// Load-time configuration, written into the program's `.rodata` before load,
/// so the verifier sees constants and the fast path reads no map for it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub ranges: [PortRange; MAX_PORT_RANGES],
    /// How many entries of `ranges` are in use.
    pub n_ranges: u32,
    /// A [`FragmentPolicy`] as `u32`.
    pub fragment_policy: u32,
    /// Non-zero: bounded latching is on. A packet to a media port that
    /// misses the flow map is looked up in the latch maps
    /// ([`LATCH_V4_MAP`], [`LATCH_V6_MAP`]) by (source address, destination
    /// address and port); a live entry is claimed and turned into the
    /// exact pair. Zero: the latch maps are never read, and the verifier
    /// removes that code.
    pub latching: u32,
    /// Non-zero: only UDP to a media port *and* to a destination inside
    /// `prefixes4[..n_prefixes4]` / `prefixes6[..n_prefixes6]` is subject to
    /// filtering; UDP to a media port elsewhere passes as
    /// [`Reason::NotMediaPrefix`]. A family with no prefix is then not
    /// protected at all. Zero (the default): every destination is
    /// protected, and the verifier removes the prefix checks.
    pub media_prefixes: u32,
    /// How many entries of `prefixes4` are in use.
    pub n_prefixes4: u32,
    /// How many entries of `prefixes6` are in use.
    pub n_prefixes6: u32,
    pub prefixes4: [PrefixV4; MAX_MEDIA_PREFIXES],
    pub prefixes6: [PrefixV6; MAX_MEDIA_PREFIXES],
    /// Non-zero (`--forward xdp`): a hit on the Ethernet program is routed
    /// by the program itself (FIB lookup, TTL, MACs) and redirected to its
    /// egress in [`FORWARD_TX_MAP`], or passed to the stack under a
    /// `Fwd*` reason when the fast path cannot forward it correctly. Zero
    /// (the default, `--forward stack`): a hit passes to the stack, and
    /// the verifier removes the forwarding code.
    pub forward: u32,
    /// Explicit tail padding (the struct stays a multiple of 4 bytes).
    pub _pad: u32,
}

impl Config {
    /// A configuration that protects nothing: every packet is `NotSubject`.
    pub const EMPTY: Config = Config {
        ranges: [PortRange { lo: 0, hi: 0 }; MAX_PORT_RANGES],
        n_ranges: 0,
        fragment_policy: FragmentPolicy::Pass as u32,
        latching: 0,
        media_prefixes: 0,
        n_prefixes4: 0,
        n_prefixes6: 0,
        prefixes4: [PrefixV4 {
            net: [0; 4],
            mask: [0; 4],
        }; MAX_MEDIA_PREFIXES],
        prefixes6: [PrefixV6 {
            net: [0; 16],
            mask: [0; 16],
        }; MAX_MEDIA_PREFIXES],
        forward: 0,
        _pad: 0,
    };

    /// True when UDP to a media port at IPv4 address `dst` is subject to
    /// filtering (see [`Config::media_prefixes`]).
    pub fn protects_v4(&self, dst: [u8; 4]) -> bool {
        self.media_prefixes == 0
            || self.prefixes4[..(self.n_prefixes4 as usize).min(MAX_MEDIA_PREFIXES)]
                .iter()
                .any(|p| p.contains(dst))
    }

    /// As [`Config::protects_v4`] for IPv6.
    pub fn protects_v6(&self, dst: [u8; 16]) -> bool {
        self.media_prefixes == 0
            || self.prefixes6[..(self.n_prefixes6 as usize).min(MAX_MEDIA_PREFIXES)]
                .iter()
                .any(|p| p.contains(dst))
    }

    /// True when `port` lies in one of the configured ranges.
    #[inline(always)]
    pub fn is_media_port(&self, port: u16) -> bool {
        let mut i = 0;
        while i < MAX_PORT_RANGES {
            if i as u32 >= self.n_ranges {
                return false;
            }
            let r = self.ranges[i];
            if port >= r.lo && port <= r.hi {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// Per-reason counter value in [`COUNTERS_MAP`] (one per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// The XDP action a [`Reason`] maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pass,
    Drop,
    /// Sent to another interface by `bpf_redirect_map` (`--forward xdp`).
    Redirect,
}

impl Action {
    /// Stable name used in CLI output and metrics labels.
    pub const fn name(self) -> &'static str {
        match self {
            Action::Pass => "pass",
            Action::Drop => "drop",
            Action::Redirect => "redirect",
        }
    }
}

/// Why the program decided what it did. Every packet is counted under exactly one
/// reason; the discriminant is the index into [`COUNTERS_MAP`].
///
/// Policy: the filter is *fail-open for traffic it does not protect* (anything
/// that is provably not UDP to a media port passes untouched) and *fail-closed
/// for traffic it cannot classify* (a frame that claims to be IP but whose
/// headers are truncated or inconsistent, or whose IPv6 extension chain is too
/// long to reach the transport header, is dropped: it might be aimed at a media
/// port and the kernel would reject a malformed one anyway).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Not IPv4/IPv6 (ARP, LLDP, …), or an Ethernet frame too short to carry an
    /// EtherType; a PPPoE session frame whose PPP protocol is not IPv4/IPv6
    /// (LCP, IPCP, …); on a link without a link-layer header, a frame whose
    /// version nibble is neither 4 nor 6. Pass.
    NotIp = 0,
    /// IP but not UDP (TCP, ICMP, ESP, …). Pass.
    NotUdp = 1,
    /// UDP whose destination port is outside every media range (SIP on 5060,
    /// DNS, …). Pass.
    NotMediaPort = 2,
    /// UDP to a media port whose exact 5-tuple is open. Pass, counted per flow.
    Hit = 3,
    /// UDP to a media port with no open pinhole. Drop.
    Miss = 4,
    /// A non-first UDP fragment under [`FragmentPolicy::Pass`]. Pass.
    FragmentPass = 5,
    /// A non-first UDP fragment under [`FragmentPolicy::Drop`]. Drop.
    FragmentDrop = 6,
    /// Truncated or inconsistent headers (VLAN, IPv4 IHL/length, IPv6, extension
    /// header, UDP). Drop.
    Malformed = 7,
    /// More IPv6 extension headers than [`MAX_IPV6_EXT_HEADERS`]. Drop.
    ExtHeaderLimit = 8,
    /// A miss that claimed a live half-open entry (bounded latching): the
    /// packet's exact pair was installed and reported. Pass, counted in the
    /// new flow.
    Latched = 9,
    /// A miss that matched a half-open entry whose window has passed (the
    /// controller removes it shortly). Drop.
    LatchExpired = 10,
    /// A miss that matched a live half-open entry but could not complete it:
    /// the flow map is full (the entry is put back and the failure
    /// reported) or the event ring buffer is (the entry is left alone).
    /// Drop.
    LatchFailed = 11,
    /// UDP to a media port whose destination is outside every
    /// `--media-prefix` (only when that list is set): not protected. Pass.
    NotMediaPrefix = 12,
    /// A hit the program routed and redirected itself (`--forward xdp`):
    /// TTL or hop limit decremented, MACs from the FIB and neighbour
    /// tables. Counted per flow like [`Reason::Hit`]. Redirect.
    Forwarded = 13,
    /// `--forward xdp`, a hit with no usable route (no route, unreachable,
    /// blackhole, prohibited, forwarding off on the ingress). Pass: the
    /// stack answers it as it would without XDP.
    FwdNoRoute = 14,
    /// `--forward xdp`, a hit whose next hop has no resolved neighbour
    /// entry. Pass: the stack resolves it (ARP/ND), and later packets go
    /// fast.
    FwdNoNeighbour = 15,
    /// `--forward xdp`, a hit routed out of an interface that is not in
    /// [`FORWARD_TX_MAP`]. Pass.
    FwdEgressNotInDevmap = 16,
    /// `--forward xdp`, a hit larger than the egress MTU. Pass: the stack
    /// fragments it or answers with ICMP.
    FwdOverMtu = 17,
    /// `--forward xdp`, a hit whose TTL / hop limit is ≤ 1. Pass: the
    /// stack sends the ICMP time-exceeded.
    FwdTtl = 18,
    /// `--forward xdp`, a hit in a VLAN-tagged or PPPoE frame, which the
    /// fast path does not re-encapsulate. Pass.
    FwdEncap = 19,
    /// `--forward xdp`, a hit in an IPv4 packet with options. Pass.
    FwdIpOptions = 20,
    /// `--forward xdp`, a hit in an IPv6 packet with extension headers.
    /// Pass.
    FwdExtHeaders = 21,
}

impl Reason {
    /// Number of reasons, i.e. the size of [`COUNTERS_MAP`].
    pub const COUNT: u32 = 22;
    /// Every reason, in index order.
    pub const ALL: [Reason; Reason::COUNT as usize] = [
        Reason::NotIp,
        Reason::NotUdp,
        Reason::NotMediaPort,
        Reason::Hit,
        Reason::Miss,
        Reason::FragmentPass,
        Reason::FragmentDrop,
        Reason::Malformed,
        Reason::ExtHeaderLimit,
        Reason::Latched,
        Reason::LatchExpired,
        Reason::LatchFailed,
        Reason::NotMediaPrefix,
        Reason::Forwarded,
        Reason::FwdNoRoute,
        Reason::FwdNoNeighbour,
        Reason::FwdEgressNotInDevmap,
        Reason::FwdOverMtu,
        Reason::FwdTtl,
        Reason::FwdEncap,
        Reason::FwdIpOptions,
        Reason::FwdExtHeaders,
    ];

    /// The verdict policy, in one place.
    #[inline(always)]
    pub const fn action(self) -> Action {
        match self {
            Reason::NotIp
            | Reason::NotUdp
            | Reason::NotMediaPort
            | Reason::Hit
            | Reason::FragmentPass
            | Reason::Latched
            | Reason::NotMediaPrefix
            | Reason::FwdNoRoute
            | Reason::FwdNoNeighbour
            | Reason::FwdEgressNotInDevmap
            | Reason::FwdOverMtu
            | Reason::FwdTtl
            | Reason::FwdEncap
            | Reason::FwdIpOptions
            | Reason::FwdExtHeaders => Action::Pass,
            Reason::Forwarded => Action::Redirect,
            Reason::Miss
            | Reason::FragmentDrop
            | Reason::Malformed
            | Reason::ExtHeaderLimit
            | Reason::LatchExpired
            | Reason::LatchFailed => Action::Drop,
        }
    }

    /// Stable snake_case name used in CLI output, JSON and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Reason::NotIp => "not_ip",
            Reason::NotUdp => "not_udp",
            Reason::NotMediaPort => "not_media_port",
            Reason::Hit => "hit",
            Reason::Miss => "miss",
            Reason::FragmentPass => "fragment_pass",
            Reason::FragmentDrop => "fragment_drop",
            Reason::Malformed => "malformed",
            Reason::ExtHeaderLimit => "ext_header_limit",
            Reason::Latched => "latched",
            Reason::LatchExpired => "latch_expired",
            Reason::LatchFailed => "latch_failed",
            Reason::NotMediaPrefix => "not_media_prefix",
            Reason::Forwarded => "forwarded",
            Reason::FwdNoRoute => "fwd_no_route",
            Reason::FwdNoNeighbour => "fwd_no_neighbour",
            Reason::FwdEgressNotInDevmap => "fwd_egress_not_in_devmap",
            Reason::FwdOverMtu => "fwd_over_mtu",
            Reason::FwdTtl => "fwd_ttl",
            Reason::FwdEncap => "fwd_vlan_or_pppoe",
            Reason::FwdIpOptions => "fwd_ipv4_options",
            Reason::FwdExtHeaders => "fwd_ipv6_ext_headers",
        }
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)], contain only integers and arrays of
    // integers, and have no implicit padding (checked by the size asserts below).
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowKeyV4 {}
    unsafe impl aya::Pod for super::FlowKeyV6 {}
    unsafe impl aya::Pod for super::FlowStats {}
    unsafe impl aya::Pod for super::Counter {}
    unsafe impl aya::Pod for super::PortRange {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::PrefixV4 {}
    unsafe impl aya::Pod for super::PrefixV6 {}
    unsafe impl aya::Pod for super::LatchKeyV4 {}
    unsafe impl aya::Pod for super::LatchKeyV6 {}
    unsafe impl aya::Pod for super::LatchValue {}
    unsafe impl aya::Pod for super::LatchEvent {}
}

// Layout is ABI: fail the build if a field change introduces implicit padding.
const _: () = assert!(core::mem::size_of::<FlowKey>() == 40);
const _: () = assert!(core::mem::size_of::<FlowKeyV4>() == 12);
const _: () = assert!(core::mem::size_of::<FlowKeyV6>() == 36);
const _: () = assert!(core::mem::size_of::<FlowStats>() == 24);
const _: () = assert!(core::mem::size_of::<Counter>() == 16);
const _: () = assert!(core::mem::size_of::<PortRange>() == 4);
const _: () = assert!(core::mem::size_of::<PrefixV4>() == 8);
const _: () = assert!(core::mem::size_of::<PrefixV6>() == 32);
const _: () =
    assert!(core::mem::size_of::<Config>() == 4 * MAX_PORT_RANGES + 32 + 40 * MAX_MEDIA_PREFIXES);
const _: () = assert!(core::mem::size_of::<LatchKeyV4>() == 12);
const _: () = assert!(core::mem::size_of::<LatchKeyV6>() == 36);
const _: () = assert!(core::mem::size_of::<LatchValue>() == 16);
const _: () = assert!(core::mem::size_of::<LatchEvent>() == 48);
const _: () = assert!(core::mem::align_of::<LatchEvent>() == 8);
// A latch key is its flow key with the source port cleared: same layout.
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(LatchKeyV4, src) == offset_of!(FlowKeyV4, src));
    assert!(offset_of!(LatchKeyV4, dst) == offset_of!(FlowKeyV4, dst));
    assert!(offset_of!(LatchKeyV4, any_port) == offset_of!(FlowKeyV4, src_port));
    assert!(offset_of!(LatchKeyV4, dst_port) == offset_of!(FlowKeyV4, dst_port));
    assert!(offset_of!(LatchKeyV6, src) == offset_of!(FlowKeyV6, src));
    assert!(offset_of!(LatchKeyV6, dst) == offset_of!(FlowKeyV6, dst));
    assert!(offset_of!(LatchKeyV6, any_port) == offset_of!(FlowKeyV6, src_port));
    assert!(offset_of!(LatchKeyV6, dst_port) == offset_of!(FlowKeyV6, dst_port));
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_swaps_endpoints() {
        let k = FlowKey {
            family: FAMILY_V4,
            proto: IPPROTO_UDP,
            _pad: [0; 2],
            src_port: 1,
            dst_port: 2,
            src_addr: [1; 16],
            dst_addr: [2; 16],
        };
        let r = k.reversed();
        assert_eq!((r.src_port, r.dst_port), (2, 1));
        assert_eq!((r.src_addr, r.dst_addr), ([2; 16], [1; 16]));
        assert_eq!(r.reversed(), k);
    }

    fn v4(src: [u8; 4], src_port: u16, dst: [u8; 4], dst_port: u16) -> FlowKey {
        let mut k = FlowKey {
            family: FAMILY_V4,
            proto: IPPROTO_UDP,
            src_port,
            dst_port,
            ..FlowKey::default()
        };
        k.src_addr[..4].copy_from_slice(&src);
        k.dst_addr[..4].copy_from_slice(&dst);
        k
    }

    #[test]
    fn map_keys_have_the_wire_layout() {
        // 192.0.2.1:4000 -> 198.51.100.2:10000 as the IPv4 source/destination
        // fields followed by the UDP ports, all big-endian.
        let k = v4([192, 0, 2, 1], 4000, [198, 51, 100, 2], 10000)
            .to_v4()
            .unwrap();
        // SAFETY: FlowKeyV4 is 12 bytes of plain integers without padding.
        let bytes: [u8; 12] = unsafe { core::mem::transmute(k) };
        assert_eq!(
            bytes,
            [192, 0, 2, 1, 198, 51, 100, 2, 0x0f, 0xa0, 0x27, 0x10]
        );

        let mut src = [0; 16];
        src[0] = 0x20;
        src[15] = 1;
        let dst = [0xff; 16];
        let k = FlowKeyV6::new(src, 4000, dst, 10000);
        // SAFETY: FlowKeyV6 is 36 bytes of plain integers without padding.
        let bytes: [u8; 36] = unsafe { core::mem::transmute(k) };
        assert_eq!(bytes[..16], src);
        assert_eq!(bytes[16..32], dst);
        assert_eq!(bytes[32..], [0x0f, 0xa0, 0x27, 0x10]);
    }

    #[test]
    fn map_key_round_trips_and_rejects_what_no_map_holds() {
        let k4 = v4([192, 0, 2, 1], 4000, [198, 51, 100, 2], 65535);
        let k6 = FlowKey {
            family: FAMILY_V6,
            proto: IPPROTO_UDP,
            _pad: [0; 2],
            src_port: 1,
            dst_port: 10000,
            src_addr: [0x20; 16],
            dst_addr: [0x30; 16],
        };
        for k in [k4, k6, k4.reversed(), k6.reversed()] {
            let m = k.to_map_key().unwrap_or_else(|| panic!("{k:?}"));
            assert_eq!(m.to_flow_key(), k);
        }
        assert!(matches!(k4.to_map_key(), Some(MapKey::V4(_))));
        assert!(matches!(k6.to_map_key(), Some(MapKey::V6(_))));
        assert_eq!(k4.to_v6(), None);
        assert_eq!(k6.to_v4(), None);

        let mut stray = k4;
        stray.dst_addr[4] = 1;
        let mut stray_src = k4;
        stray_src.src_addr[15] = 1;
        let rejected = [
            FlowKey { proto: 6, ..k4 },
            FlowKey { proto: 6, ..k6 },
            FlowKey { family: 0, ..k4 },
            FlowKey { family: 9, ..k6 },
            stray,
            stray_src,
        ];
        for k in rejected {
            assert_eq!(k.to_map_key(), None, "{k:?}");
        }
    }

    #[test]
    fn media_port_ranges_are_inclusive_and_bounded_by_n_ranges() {
        let mut c = Config::EMPTY;
        c.ranges[0] = PortRange {
            lo: 10000,
            hi: 20000,
        };
        c.ranges[1] = PortRange { lo: 6970, hi: 7170 };
        c.ranges[2] = PortRange { lo: 1, hi: 65535 };
        c.n_ranges = 2;
        let table = [
            (9999, false),
            (10000, true),
            (20000, true),
            (20001, false),
            (6969, false),
            (6970, true),
            (7170, true),
            (7171, false),
            (5060, false), // range 2 is not in use
        ];
        for (port, want) in table {
            assert_eq!(c.is_media_port(port), want, "port {port}");
        }
        assert!(!Config::EMPTY.is_media_port(10000));
    }

    #[test]
    fn media_prefixes_scope_protection_by_destination() {
        let mut c = Config::EMPTY;
        // Off: every destination of both families is protected.
        assert!(c.protects_v4([203, 0, 113, 9]));
        assert!(c.protects_v6([0x20; 16]));
        c.media_prefixes = 1;
        c.prefixes4[0] = PrefixV4 {
            net: [198, 51, 100, 0],
            mask: [255, 255, 255, 0],
        };
        c.prefixes4[1] = PrefixV4 {
            net: [192, 0, 2, 128],
            mask: [255, 255, 255, 128],
        };
        // An unused slot must not count, even when it would match.
        c.prefixes4[2] = PrefixV4::default();
        c.n_prefixes4 = 2;
        let mut net6 = [0; 16];
        net6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        let mut mask6 = [0; 16];
        mask6[..6].copy_from_slice(&[0xff; 6]);
        c.prefixes6[0] = PrefixV6 {
            net: net6,
            mask: mask6,
        };
        c.n_prefixes6 = 1;
        let v4 = [
            ([198, 51, 100, 0], true),
            ([198, 51, 100, 255], true),
            ([198, 51, 101, 1], false),
            ([192, 0, 2, 127], false),
            ([192, 0, 2, 128], true),
            ([192, 0, 2, 255], true),
            ([203, 0, 113, 9], false),
        ];
        for (a, want) in v4 {
            assert_eq!(c.protects_v4(a), want, "{a:?}");
        }
        let mut inside = net6;
        inside[15] = 1;
        let mut outside = net6;
        outside[5] = 1; // 2001:db8:1::/48, outside 2001:db8::/48
        assert!(c.protects_v6(inside));
        assert!(!c.protects_v6(outside));
        // A family without prefixes is not protected once the list is on.
        c.n_prefixes6 = 0;
        assert!(!c.protects_v6(inside));
        // A hostile count cannot index past the arrays (slot 2, all zero,
        // is /0 and now counts).
        c.n_prefixes4 = u32::MAX;
        assert!(c.protects_v4([198, 51, 100, 7]));
        assert!(c.protects_v4([203, 0, 113, 9]));
    }

    #[test]
    fn reason_indices_are_dense() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        assert_eq!(Reason::ALL.len(), Reason::COUNT as usize);
        for (i, a) in Reason::ALL.iter().enumerate() {
            for b in &Reason::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }

    #[test]
    fn latch_keys_are_flow_keys_without_the_source_port() {
        let f = FlowKeyV4::new([192, 0, 2, 2], 40000, [198, 51, 100, 2], 12000);
        let l = LatchKeyV4::of(&f);
        assert_eq!(l, LatchKeyV4::new([192, 0, 2, 2], [198, 51, 100, 2], 12000));
        // SAFETY: both are 12 bytes of plain integers without padding.
        let fb = unsafe { core::mem::transmute::<FlowKeyV4, [u8; 12]>(f) };
        // SAFETY: as above.
        let lb = unsafe { core::mem::transmute::<LatchKeyV4, [u8; 12]>(l) };
        assert_eq!(lb[..8], fb[..8]);
        assert_eq!(lb[8..10], [0, 0]);
        assert_eq!(lb[10..], fb[10..]);

        let f6 = FlowKeyV6::new([0x20; 16], 40000, [0x30; 16], 12000);
        let l6 = LatchKeyV6::of(&f6);
        assert_eq!(l6, LatchKeyV6::new([0x20; 16], [0x30; 16], 12000));
        assert_eq!(l6.any_port, 0);
    }

    #[test]
    fn latching_passes_and_its_failures_drop() {
        let table = [
            (Reason::Latched, Action::Pass, "latched"),
            (Reason::LatchExpired, Action::Drop, "latch_expired"),
            (Reason::LatchFailed, Action::Drop, "latch_failed"),
        ];
        for (r, action, name) in table {
            assert_eq!((r.action(), r.name()), (action, name));
        }
        assert_eq!(Config::EMPTY.latching, 0);
    }

    #[test]
    fn forwarding_redirects_and_its_fallbacks_pass() {
        assert_eq!(Reason::Forwarded.action(), Action::Redirect);
        let fallbacks = [
            Reason::FwdNoRoute,
            Reason::FwdNoNeighbour,
            Reason::FwdEgressNotInDevmap,
            Reason::FwdOverMtu,
            Reason::FwdTtl,
            Reason::FwdEncap,
            Reason::FwdIpOptions,
            Reason::FwdExtHeaders,
        ];
        for r in fallbacks {
            assert_eq!(r.action(), Action::Pass, "{r:?}");
            assert!(r.name().starts_with("fwd_"), "{r:?}");
        }
        assert_eq!(Config::EMPTY.forward, 0);
    }
}
