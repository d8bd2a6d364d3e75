//! Loading the XDP program with its configuration, its maps (reusing
//! pinned ones) and attaching it to the interfaces (taking over pinned
//! links), see [`Datapath`].

use std::{
    ffi::CString,
    io,
    path::{Path, PathBuf},
};

use aya::{
    maps::MapInfo,
    programs::{
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
        ProgramError, Xdp, XdpMode as AyaXdpMode,
    },
    Ebpf, EbpfLoader,
};
use pinhole_common::{
    Config, FragmentPolicy, PortRange, CONFIG_GLOBAL, FLOWS_V4_MAP, FLOWS_V6_MAP, MAX_PORT_RANGES,
    PROGRAM_L3_NAME, PROGRAM_NAME,
};
use tracing::{error, info, warn};

use crate::{
    datapath::error::{LoadError, SetupError},
    datapath::link_kind::{self, SYSFS_NET},
    datapath::maps::{CounterMap, FlowMap},
    datapath::pin::{PinDir, Pinned},
};

/// XDP attach mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// In the driver (fast; veth and most physical NICs).
    Native,
    /// Generic XDP in the network stack (works everywhere, slower).
    Skb,
}

impl From<XdpMode> for AyaXdpMode {
    fn from(m: XdpMode) -> Self {
        match m {
            XdpMode::Native => AyaXdpMode::Driver,
            XdpMode::Skb => AyaXdpMode::Skb,
        }
    }
}

/// Name of aya-log's ring buffer, present only when the program was built
/// with per-packet tracing.
const AYA_LOGS_MAP: &str = "AYA_LOGS";

/// Smallest useful flow capacity: one pinhole is two flows.
pub const MIN_FLOWS: u32 = 2;
/// Largest flow capacity accepted (the map is preallocated).
pub const MAX_FLOWS: u32 = 1 << 24;

/// Parses `LO-HI` (or a single `PORT`) into an inclusive port range.
pub fn parse_port_range(s: &str) -> Result<PortRange, SetupError> {
    let bad = || SetupError::BadRange(s.to_string());
    let port = |p: &str| -> Result<u16, SetupError> {
        let p = p.trim();
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            _ => Err(bad()),
        }
    };
    let (lo, hi) = match s.split_once('-') {
        Some((lo, hi)) => (port(lo)?, port(hi)?),
        None => {
            let p = port(s)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(bad());
    }
    Ok(PortRange { lo, hi })
}

fn show(r: &PortRange) -> String {
    format!("{}-{}", r.lo, r.hi)
}

/// Builds the program's load-time configuration. Refuses more than
/// [`MAX_PORT_RANGES`] ranges and overlapping ranges (almost certainly a typo).
pub fn build_config(ranges: &[PortRange], fragments: FragmentPolicy) -> Result<Config, SetupError> {
    if ranges.len() > MAX_PORT_RANGES {
        return Err(SetupError::TooManyRanges {
            given: ranges.len(),
            max: MAX_PORT_RANGES,
        });
    }
    let mut config = Config::EMPTY;
    for (i, r) in ranges.iter().enumerate() {
        if r.lo == 0 || r.lo > r.hi {
            return Err(SetupError::BadRange(show(r)));
        }
        if let Some(o) = ranges[..i].iter().find(|o| r.lo <= o.hi && o.lo <= r.hi) {
            return Err(SetupError::Overlap {
                a: show(o),
                b: show(r),
            });
        }
        config.ranges[i] = *r;
    }
    config.n_ranges = ranges.len() as u32;
    config.fragment_policy = fragments as u32;
    Ok(config)
}

/// Checks the interface list and resolves each name to its index, before
/// anything is loaded.
pub fn resolve_interfaces(names: &[String]) -> anyhow::Result<Vec<(String, u32)>> {
    if names.is_empty() {
        return Err(SetupError::NoInterface.into());
    }
    let mut out: Vec<(String, u32)> = Vec::with_capacity(names.len());
    for name in names {
        if out.iter().any(|(n, _)| n == name) {
            return Err(SetupError::DuplicateInterface(name.clone()).into());
        }
        let c =
            CString::new(name.as_str()).map_err(|_| SetupError::BadInterfaceName(name.clone()))?;
        if name.is_empty() {
            return Err(SetupError::BadInterfaceName(name.clone()).into());
        }
        // SAFETY: `c` is a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if index == 0 {
            return Err(LoadError::NoSuchInterface(name.clone()).into());
        }
        out.push((name.clone(), index));
    }
    Ok(out)
}

/// What to load and where.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Interfaces by name and index (see [`resolve_interfaces`]).
    pub interfaces: Vec<(String, u32)>,
    pub mode: XdpMode,
    pub config: Config,
    /// Capacity of the flow maps, in flows (each family's map gets all of it).
    pub max_flows: u32,
}

/// How the program is attached to one interface.
enum Link {
    /// Pinned: stays attached after the process ends until the pin is
    /// removed. Holds the link's fd.
    Pinned { fd: FdLink, path: PathBuf },
    /// Not pinned (no pin directory, or a netlink attachment on a kernel
    /// without bpf_link): dropping it detaches.
    Owned(XdpLink),
}

/// One attachment.
struct Attachment {
    iface: String,
    link: Option<Link>,
}

impl Attachment {
    /// Lets go of the link: `keep` leaves a pinned one attached, else it is
    /// unpinned and detached.
    fn release(&mut self, keep: bool) {
        match self.link.take() {
            Some(Link::Pinned { fd, path }) if keep => {
                drop(fd);
                info!(iface = %self.iface, pin = %path.display(), "XDP program left attached (pinned)");
            }
            Some(Link::Pinned { fd, path }) => {
                if let Err(e) = std::fs::remove_file(&path) {
                    if e.kind() != io::ErrorKind::NotFound {
                        error!(iface = %self.iface, pin = %path.display(), "unpinning the XDP link failed, it stays attached: {e}");
                    }
                }
                drop(fd);
                info!(iface = %self.iface, "XDP program detached");
            }
            Some(Link::Owned(link)) => {
                drop(link);
                info!(iface = %self.iface, "XDP program detached");
            }
            None => {}
        }
    }
}

/// A pinned map that cannot be reused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapMismatch {
    pub name: String,
    /// What differs, e.g. `max_entries 1024, expected 262144`.
    pub detail: String,
}

/// What loading found in the pin directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Adoption {
    /// Pinned maps taken over (their entries are kept).
    pub maps: Vec<String>,
    /// Pinned maps that did not match the program's definitions and were
    /// replaced by new, empty ones.
    pub replaced: Vec<MapMismatch>,
    /// Pinned links whose program was swapped for the new one (no gap).
    pub links: Vec<String>,
}

impl Adoption {
    /// Whether a running filter's state was taken over.
    pub fn adopted(&self) -> bool {
        !self.maps.is_empty() || !self.links.is_empty()
    }
}

/// The loaded program, attached to every interface (after
/// [`Datapath::attach`]), its maps and links pinned when it has a pin
/// directory.
///
/// Dropping it without [`Datapath::release`] keeps what it adopted (a
/// daemon that fails after taking over a running filter leaves the filter
/// to the next one) and removes what it created.
pub struct Datapath {
    // Field order is drop order: detach before the object (and its program
    // fd) goes away.
    attachments: Vec<Attachment>,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    ebpf: Ebpf,
    pins: Option<PinDir>,
    adoption: Adoption,
    mode: XdpMode,
    interfaces: Vec<(String, u32)>,
    /// `--forward xdp`'s egress interfaces (name, ifindex) as in the
    /// DEVMAP; empty without forwarding.
    forward_egress: Vec<(String, u32)>,
    released: bool,
}

/// The errno of the first OS error in `err`'s chain.
fn errno(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if let Some(n) = io.raw_os_error() {
                return Some(n);
            }
        }
        if let Some(nl) = e.downcast_ref::<aya::sys::NetlinkError>() {
            if let Some(n) = nl.raw_os_error() {
                return Some(n);
            }
        }
        cur = e.source();
    }
    None
}

fn is_permission(err: &(dyn std::error::Error + 'static)) -> bool {
    matches!(errno(err), Some(libc::EPERM | libc::EACCES))
}

/// A map of the object, as the kernel will create it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MapSpec {
    name: String,
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
}

/// `BPF_MAP_TYPE_PERF_EVENT_ARRAY` and `BPF_MAP_TYPE_RINGBUF`.
const PERF_EVENT_ARRAY: u32 = 4;
const RINGBUF: u32 = 27;

/// A ring buffer's size as aya creates it: a power-of-two number of pages.
fn ringbuf_size(bytes: u32, page: u32) -> u32 {
    if bytes == 0 || page == 0 {
        return bytes;
    }
    page.saturating_mul(bytes.div_ceil(page).next_power_of_two())
}

/// The object's maps that are pinned: those of its map sections (not its
/// globals, perf event arrays, nor the log ring buffer of tracing builds),
/// as the kernel will create them (the loader's `max_entries` overrides
/// applied, ring buffers sized as aya sizes them).
fn pinned_map_specs(object: &[u8], overrides: &[(&str, u32)]) -> Result<Vec<MapSpec>, LoadError> {
    use aya_obj::EbpfSectionKind;
    let obj = aya_obj::Object::parse(object).map_err(|e| LoadError::ObjectMaps(e.to_string()))?;
    // SAFETY: sysconf has no preconditions.
    let page = u32::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let mut specs: Vec<MapSpec> = obj
        .maps
        .iter()
        .filter(|(name, m)| {
            matches!(
                m.section_kind(),
                EbpfSectionKind::Maps | EbpfSectionKind::BtfMaps
            ) && name.as_str() != AYA_LOGS_MAP
                && m.map_type() != PERF_EVENT_ARRAY
        })
        .map(|(name, m)| {
            let max_entries = overrides
                .iter()
                .find(|(n, _)| n == name)
                .map_or(m.max_entries(), |(_, v)| *v);
            let ringbuf = m.map_type() == RINGBUF;
            MapSpec {
                name: name.clone(),
                map_type: m.map_type(),
                key_size: m.key_size(),
                value_size: if ringbuf { 0 } else { m.value_size() },
                max_entries: if ringbuf {
                    ringbuf_size(max_entries, page)
                } else {
                    max_entries
                },
                flags: m.map_flags(),
            }
        })
        .collect();
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(specs)
}

/// How a pinned map differs from `spec`, `None` when it can be reused.
fn map_mismatch(spec: &MapSpec, path: &Path) -> Option<String> {
    let info = match MapInfo::from_pin(path) {
        Ok(i) => i,
        Err(e) => return Some(format!("unreadable: {e}")),
    };
    let map_type = info.map_type().map(|t| t as u32).unwrap_or(u32::MAX);
    let fields = [
        ("type", map_type, spec.map_type),
        ("key_size", info.key_size(), spec.key_size),
        ("value_size", info.value_size(), spec.value_size),
        ("max_entries", info.max_entries(), spec.max_entries),
        ("flags", info.map_flags(), spec.flags),
    ];
    let diffs: Vec<String> = fields
        .iter()
        .filter(|(_, got, want)| got != want)
        .map(|(what, got, want)| format!("{what} {got}, expected {want}"))
        .collect();
    (!diffs.is_empty()).then(|| diffs.join(", "))
}

impl Datapath {
    /// Loads the program and its maps without attaching anything.
    ///
    /// With a pin directory, every map pinned there that matches the
    /// program's definition (type, key and value sizes, capacity, flags) is
    /// reused, entries and all; a mismatched one (e.g. another
    /// `--max-pinholes`) is replaced by a new, empty map, and pins of maps
    /// the program no longer has are removed. Every map ends up pinned.
    pub fn load(opts: &LoadOptions, pins: Option<PinDir>) -> Result<Self, LoadError> {
        // Every `max_entries` override belongs here, not on the loader
        // alone: pinned maps are checked against these sizes, and a map
        // that differs is replaced (emptied) on every restart.
        let overrides = [
            // Each family's map can take every flow: the pinhole table
            // enforces the total.
            (FLOWS_V4_MAP, opts.max_flows),
            (FLOWS_V6_MAP, opts.max_flows),
        ];
        let mut adoption = Adoption::default();
        let mut fresh: Vec<String> = Vec::new();
        let specs = match &pins {
            Some(_) => pinned_map_specs(crate::datapath::ebpf::OBJECT, &overrides)?,
            None => Vec::new(),
        };
        let mut loader = EbpfLoader::new();
        loader.override_global(CONFIG_GLOBAL, &opts.config, true);
        for (name, max) in overrides {
            loader.map_max_entries(name, max);
        }
        if let Some(pins) = &pins {
            for spec in &specs {
                let path = pins.pin_path(&Pinned::Map {
                    name: spec.name.clone(),
                });
                if !path.exists() {
                    fresh.push(spec.name.clone());
                    continue;
                }
                match map_mismatch(spec, &path) {
                    None => {
                        loader.map_pin_path(spec.name.as_str(), path);
                        adoption.maps.push(spec.name.clone());
                    }
                    Some(detail) => {
                        warn!(map = %spec.name, pin = %path.display(), %detail,
                            "the pinned map does not match the program; replacing it with a new, empty one");
                        adoption.replaced.push(MapMismatch {
                            name: spec.name.clone(),
                            detail,
                        });
                        fresh.push(spec.name.clone());
                    }
                }
            }
        }
        let mut ebpf = loader.load(crate::datapath::ebpf::OBJECT).map_err(|e| {
            if is_permission(&e) {
                LoadError::PermissionDenied
            } else {
                LoadError::Object(e)
            }
        })?;

        if let Some(pins) = &pins {
            for name in &fresh {
                let pin = Pinned::Map { name: name.clone() };
                let path = pins.pin_path(&pin);
                pins.remove(&pin)?;
                let map = ebpf.map(name).ok_or_else(|| LoadError::Pin {
                    what: format!("map {name}"),
                    path: path.clone(),
                    message: "the loaded object lacks it".into(),
                })?;
                map.pin(&path).map_err(|e| LoadError::Pin {
                    what: format!("map {name}"),
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            }
            for pin in pins.entries()? {
                if let Pinned::Map { name } = &pin {
                    if !specs.iter().any(|s| &s.name == name) {
                        info!(map = %name, "removing the pin of a map the program no longer has");
                        pins.remove(&pin)?;
                    }
                }
            }
        }

        // Only a tracing build of the program has the log ring buffer.
        let logger = if ebpf.map(AYA_LOGS_MAP).is_some() {
            match aya_log::EbpfLogger::init(&mut ebpf) {
                Ok(l) => {
                    warn!(
                        "the XDP program was built with per-packet tracing; expect it to be slow"
                    );
                    Some(l)
                }
                Err(e) => {
                    warn!("eBPF logging unavailable: {e}");
                    None
                }
            }
        } else {
            None
        };

        // Both programs: which one an interface gets depends on its link
        // type (see link_kind), known only at attach, and re-attach may
        // meet a re-created interface of another type.
        for name in [PROGRAM_NAME, PROGRAM_L3_NAME] {
            load_program(&mut ebpf, name)?;
        }
        Ok(Datapath {
            attachments: Vec::new(),
            logger,
            ebpf,
            pins,
            adoption,
            mode: opts.mode,
            interfaces: opts.interfaces.clone(),
            forward_egress: Vec::new(),
            released: false,
        })
    }

    /// Attaches the program to every interface. With a pin directory, a
    /// link already pinned for the interface in the same mode gets the new
    /// program atomically (`BPF_LINK_UPDATE`: the old program filters until
    /// the new one does), other interfaces get a new pinned link, and links
    /// pinned for interfaces not in the list (or in the other mode) are
    /// removed. Finally the program itself is pinned (for bpftool).
    pub fn attach(&mut self) -> Result<(), LoadError> {
        let Datapath {
            attachments,
            ebpf,
            pins,
            adoption,
            mode,
            interfaces,
            ..
        } = self;
        let aya_mode: AyaXdpMode = (*mode).into();
        let pinned: Vec<Pinned> = match pins {
            Some(p) => p.entries()?,
            None => Vec::new(),
        };
        for (iface, index) in interfaces.iter() {
            let kind = link_kind::detect(Path::new(SYSFS_NET), iface, *mode)?;
            let program = program_mut(ebpf, kind.program())?;
            let want = Pinned::Link {
                mode: *mode,
                iface: iface.clone(),
            };
            if let Some(pins) = pins.as_ref() {
                // A link in the other mode cannot coexist with ours: the
                // one gap a restart can have (logged).
                for other in pinned.iter().filter(
                    |p| matches!(p, Pinned::Link { iface: i, mode: m } if i == iface && m != mode),
                ) {
                    warn!(iface = %iface, pin = %pins.pin_path(other).display(),
                        "a link pinned in the other XDP mode is removed: the interface is unfiltered until the new one is attached");
                    pins.remove(other)?;
                }
                let path = pins.pin_path(&want);
                if pinned.contains(&want) {
                    match adopt_link(program, &path, *index) {
                        Ok(Some(fd)) => {
                            info!(iface = %iface, ifindex = index, mode = ?mode, pin = %path.display(),
                                "pinned XDP link taken over, program replaced atomically");
                            adoption.links.push(iface.clone());
                            attachments.push(Attachment {
                                iface: iface.clone(),
                                link: Some(Link::Pinned { fd, path }),
                            });
                            continue;
                        }
                        Ok(None) => {
                            warn!(iface = %iface, pin = %path.display(),
                                "the pinned link is defunct or on another interface; replacing it");
                            pins.remove(&want)?;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            let id = program
                .attach_to_if_index(*index, aya_mode)
                .map_err(|e| attach_error(iface, aya_mode, e))?;
            let link = program.take_link(id).map_err(LoadError::Program)?;
            let link = match pins.as_ref() {
                Some(pins) => pin_link(link, pins.pin_path(&want), iface)?,
                None => Link::Owned(link),
            };
            attachments.push(Attachment {
                iface: iface.clone(),
                link: Some(link),
            });
            info!(iface = %iface, ifindex = index, mode = ?mode, link = ?kind, "XDP program attached");
        }
        if let Some(pins) = pins.as_ref() {
            for stale in pinned.iter().filter(|p| match p {
                Pinned::Link { iface, .. } => !interfaces.iter().any(|(i, _)| i == iface),
                _ => false,
            }) {
                info!(pin = %pins.pin_path(stale).display(), "removing the pinned link of an interface no longer filtered");
                pins.remove(stale)?;
            }
            let path = pins.pin_path(&Pinned::Prog);
            pins.remove(&Pinned::Prog)?;
            program_mut(ebpf, PROGRAM_NAME)?
                .pin(&path)
                .map_err(|e| LoadError::Pin {
                    what: "the XDP program".into(),
                    path,
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// Attaches the program to `iface`, which (re)appeared at `ifindex`,
    /// in the configured mode, after letting go of the link it had (see
    /// [`Datapath::drop_link`]). With a pin directory the new link is
    /// pinned in the old one's place.
    pub fn reattach(&mut self, iface: &str, ifindex: u32) -> Result<(), LoadError> {
        self.drop_link(iface);
        let Datapath {
            attachments,
            ebpf,
            pins,
            mode,
            interfaces,
            forward_egress,
            ..
        } = self;
        // The type is read again: a re-created interface may be another one.
        let kind = link_kind::detect(Path::new(SYSFS_NET), iface, *mode)?;
        let program = program_mut(ebpf, kind.program())?;
        let aya_mode: AyaXdpMode = (*mode).into();
        let want = Pinned::Link {
            mode: *mode,
            iface: iface.to_string(),
        };
        if let Some(pins) = pins.as_ref() {
            pins.remove(&want)?;
        }
        let id = program
            .attach_to_if_index(ifindex, aya_mode)
            .map_err(|e| attach_error(iface, aya_mode, e))?;
        let link = program.take_link(id).map_err(LoadError::Program)?;
        let link = match pins.as_ref() {
            Some(pins) => pin_link(link, pins.pin_path(&want), iface)?,
            None => Link::Owned(link),
        };
        match attachments.iter_mut().find(|a| a.iface == iface) {
            Some(a) => a.link = Some(link),
            None => attachments.push(Attachment {
                iface: iface.to_string(),
                link: Some(link),
            }),
        }
        if let Some(entry) = interfaces.iter_mut().find(|(name, _)| name == iface) {
            entry.1 = ifindex;
        }
        // A re-created egress of --forward xdp: the kernel removed the old
        // index from the DEVMAP with the old interface; add the new one.
        if let Some(entry) = forward_egress.iter_mut().find(|(name, _)| name == iface) {
            entry.1 = ifindex;
            crate::datapath::forward::set_egress(ebpf, forward_egress)?;
        }
        Ok(())
    }

    /// Lets go of the link of `iface`, whose interface was deleted (the
    /// link is defunct) or renamed (it is detached from it): unpinned and
    /// closed. False when it had none.
    pub fn drop_link(&mut self, iface: &str) -> bool {
        let Some(a) = self.attachments.iter_mut().find(|a| a.iface == iface) else {
            return false;
        };
        match a.link.take() {
            Some(Link::Pinned { fd, path }) => {
                if let Err(e) = std::fs::remove_file(&path) {
                    if e.kind() != io::ErrorKind::NotFound {
                        error!(iface = %iface, pin = %path.display(), "unpinning the XDP link failed: {e}");
                    }
                }
                drop(fd);
                true
            }
            Some(Link::Owned(link)) => {
                drop(link);
                true
            }
            None => false,
        }
    }

    /// The interfaces with the index each was last attached to.
    pub fn attached_interfaces(&self) -> Vec<(String, u32)> {
        self.interfaces.clone()
    }

    /// What was taken over from the pin directory.
    pub fn adoption(&self) -> &Adoption {
        &self.adoption
    }

    /// The pin directory, if the program is pinned.
    pub fn pin_dir(&self) -> Option<&Path> {
        self.pins.as_ref().map(PinDir::path)
    }

    /// Ends the datapath: `keep` leaves the program attached and its maps
    /// pinned for a later daemon; otherwise every interface is detached and
    /// the pin directory removed.
    pub fn release(mut self, keep: bool) -> Result<(), LoadError> {
        self.released = true;
        for a in &mut self.attachments {
            a.release(keep);
        }
        if keep {
            if let Some(pins) = &self.pins {
                info!(pin_dir = %pins.path().display(), "filter and maps left pinned");
            }
            return Ok(());
        }
        if let Some(pins) = self.pins.take() {
            let path = pins.path().to_path_buf();
            pins.clear()?;
            info!(pin_dir = %path.display(), "pins removed");
        }
        Ok(())
    }

    /// Takes the flow and counter maps (once).
    pub fn take_maps(&mut self) -> Result<(FlowMap, CounterMap), LoadError> {
        Ok((
            FlowMap::take(&mut self.ebpf)?,
            CounterMap::take(&mut self.ebpf)?,
        ))
    }

    /// Takes the latch maps and the latch event ring buffer (once; for
    /// `--latching`).
    pub fn take_latch_maps(
        &mut self,
    ) -> Result<
        (
            crate::datapath::latch::LatchMap,
            aya::maps::RingBuf<aya::maps::MapData>,
        ),
        LoadError,
    > {
        Ok((
            crate::datapath::latch::LatchMap::take(&mut self.ebpf)?,
            crate::datapath::latch::take_events(&mut self.ebpf)?,
        ))
    }

    /// Makes `ifaces` the interfaces `--forward xdp` may redirect to (see
    /// [`crate::datapath::forward`]).
    /// An egress that is also filtered follows its interface when it is
    /// re-created ([`Datapath::reattach`]).
    pub fn set_forward_egress(&mut self, ifaces: &[(String, u32)]) -> Result<(), LoadError> {
        crate::datapath::forward::set_egress(&mut self.ebpf, ifaces)?;
        self.forward_egress = ifaces.to_vec();
        Ok(())
    }

    /// Takes the eBPF log reader, if the program logs.
    pub fn take_logger(&mut self) -> Option<aya_log::EbpfLogger<&'static dyn log::Log>> {
        self.logger.take()
    }

    /// Names of the interfaces the program is (to be) attached to.
    pub fn interfaces(&self) -> impl Iterator<Item = &str> {
        self.interfaces.iter().map(|(i, _)| i.as_str())
    }
}

impl Drop for Datapath {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Not released: a failure. Keep a filter that was taken over (and
        // the maps with it), remove one this daemon created.
        let keep = self.adoption.adopted();
        for a in &mut self.attachments {
            a.release(keep);
        }
        if !keep {
            if let Some(pins) = self.pins.take() {
                if let Err(e) = pins.clear() {
                    error!("removing the pins: {e}");
                }
            }
        }
    }
}

fn program_mut<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, LoadError> {
    ebpf.program_mut(name)
        .ok_or(LoadError::Missing {
            what: "program",
            name,
        })?
        .try_into()
        .map_err(LoadError::Program)
}

/// Loads the XDP program `name` into the kernel (verifier included).
fn load_program(ebpf: &mut Ebpf, name: &'static str) -> Result<(), LoadError> {
    program_mut(ebpf, name)?.load().map_err(|e| match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            if matches!(io_error.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
                LoadError::PermissionDenied
            } else {
                error!("verifier log:\n{verifier_log}");
                LoadError::Verifier { errno: io_error }
            }
        }
        e if is_permission(&e) => LoadError::PermissionDenied,
        e => LoadError::Program(e),
    })
}

/// Swaps the program of the link pinned at `path` for `program`, if the
/// link is an XDP link still attached to `ifindex`; `None` when it is not
/// (defunct, or another interface now has that name).
fn adopt_link(program: &mut Xdp, path: &Path, ifindex: u32) -> Result<Option<FdLink>, LoadError> {
    let adopt = |message: String| LoadError::Adopt {
        path: path.into(),
        message,
    };
    let info = crate::datapath::pin::link_info(path).map_err(|e| adopt(e.to_string()))?;
    if info.link_type != crate::datapath::pin::BPF_LINK_TYPE_XDP || info.ifindex != ifindex {
        return Ok(None);
    }
    let pinned = PinnedLink::from_pin(path).map_err(|e| adopt(e.to_string()))?;
    let link = XdpLink::try_from(FdLink::from(pinned)).map_err(|e| adopt(e.to_string()))?;
    let id = program
        .attach_to_link(link)
        .map_err(|e| adopt(format!("replacing its program: {e}")))?;
    let link = program.take_link(id).map_err(LoadError::Program)?;
    FdLink::try_from(link)
        .map(Some)
        .map_err(|e| adopt(e.to_string()))
}

/// Pins a new link. A netlink attachment (kernels before 5.9, without XDP
/// bpf_link) cannot be pinned: refused.
fn pin_link(link: XdpLink, path: PathBuf, iface: &str) -> Result<Link, LoadError> {
    match FdLink::try_from(link) {
        Ok(fd) => {
            let pinned = fd.pin(&path).map_err(|e| LoadError::Pin {
                what: format!("the XDP link of {iface}"),
                path: path.clone(),
                message: e.to_string(),
            })?;
            Ok(Link::Pinned {
                fd: pinned.into(),
                path,
            })
        }
        Err(e) => Err(LoadError::Pin {
            what: format!("the XDP link of {iface}"),
            path,
            message: format!("{e} (a netlink attachment: this kernel lacks XDP bpf_link)"),
        }),
    }
}

fn attach_error(iface: &str, mode: AyaXdpMode, e: ProgramError) -> LoadError {
    match errno(&e) {
        Some(libc::EBUSY | libc::EEXIST) => LoadError::AlreadyAttached(iface.to_string()),
        Some(libc::EOPNOTSUPP) if mode == AyaXdpMode::Driver => {
            LoadError::NativeUnsupported(iface.to_string())
        }
        Some(libc::EPERM | libc::EACCES) => LoadError::PermissionDenied,
        Some(libc::ENODEV) => LoadError::NoSuchInterface(iface.to_string()),
        _ => LoadError::Attach {
            iface: iface.to_string(),
            source: e,
        },
    }
}

/// Forwards the program's log records (tracing builds only) to the `log`
/// logger until the task is dropped.
pub fn spawn_log_pump(
    logger: aya_log::EbpfLogger<&'static dyn log::Log>,
) -> io::Result<tokio::task::JoinHandle<()>> {
    // SAFETY: the logger owns the ring buffer map fd, which stays open and
    // unchanged until the logger (owned by the AsyncFd) is dropped.
    let mut fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.into_parts().1)?;
    Ok(tokio::spawn(async move {
        loop {
            let mut guard = match fd.readable_mut().await {
                Ok(g) => g,
                Err(e) => {
                    warn!("eBPF log reader stopped: {e}");
                    return;
                }
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_maps_are_the_programs_own() {
        let specs =
            pinned_map_specs(crate::datapath::ebpf::OBJECT, &[(FLOWS_V4_MAP, 1024)]).unwrap();
        let v4 = specs.iter().find(|s| s.name == FLOWS_V4_MAP).unwrap();
        assert_eq!((v4.max_entries, v4.key_size), (1024, 12));
        assert!(specs.iter().any(|s| s.name == FLOWS_V6_MAP));
        assert!(specs.iter().any(|s| s.name == pinhole_common::COUNTERS_MAP));
        assert!(
            specs.iter().all(|s| !s.name.starts_with('.')),
            "no globals: {specs:?}"
        );
        for (bytes, want) in [
            (0, 0),
            (1, 4096),
            (4096, 4096),
            (4097, 8192),
            (12288, 16384),
        ] {
            assert_eq!(ringbuf_size(bytes, 4096), want, "{bytes}");
        }
    }

    #[test]
    fn port_range_parsing_table() {
        let ok = [
            ("10000-20000", (10000, 20000)),
            ("6970-7170", (6970, 7170)),
            ("5004", (5004, 5004)),
            ("1-65535", (1, 65535)),
            ("7-7", (7, 7)),
            (" 10 - 20 ", (10, 20)),
        ];
        for (s, (lo, hi)) in ok {
            assert_eq!(parse_port_range(s), Ok(PortRange { lo, hi }), "{s:?}");
        }
        let bad = [
            "",
            "-",
            "0-10",
            "10-0",
            "20-10",
            "1-65536",
            "70000",
            "a-b",
            "10-",
            "-10",
            "1-2-3",
            "+1-2",
            "1--2",
            "١-٢",
            "99999999999999999999-1",
        ];
        for s in bad {
            assert_eq!(
                parse_port_range(s),
                Err(SetupError::BadRange(s.to_string())),
                "{s:?}"
            );
        }
    }

    #[test]
    fn config_building_table() {
        let r = |lo, hi| PortRange { lo, hi };
        let c = build_config(&[r(10000, 20000), r(6970, 7170)], FragmentPolicy::Drop).unwrap();
        assert_eq!(c.n_ranges, 2);
        assert_eq!(c.fragment_policy, FragmentPolicy::Drop as u32);
        assert!(c.is_media_port(7000) && c.is_media_port(20000) && !c.is_media_port(5060));

        let nine: Vec<PortRange> = (0..9).map(|i| r(100 * i + 1, 100 * i + 50)).collect();
        assert_eq!(
            build_config(&nine, FragmentPolicy::Pass),
            Err(SetupError::TooManyRanges { given: 9, max: 8 })
        );
        assert!(build_config(&nine[..8], FragmentPolicy::Pass).is_ok());
        assert_eq!(
            build_config(&[r(10, 20), r(20, 30)], FragmentPolicy::Pass),
            Err(SetupError::Overlap {
                a: "10-20".into(),
                b: "20-30".into()
            })
        );
        assert_eq!(
            build_config(&[r(10, 20), r(30, 40), r(1, 100)], FragmentPolicy::Pass),
            Err(SetupError::Overlap {
                a: "10-20".into(),
                b: "1-100".into()
            })
        );
        assert_eq!(
            build_config(&[r(0, 5)], FragmentPolicy::Pass),
            Err(SetupError::BadRange("0-5".into()))
        );
        assert_eq!(
            build_config(&[r(9, 5)], FragmentPolicy::Pass),
            Err(SetupError::BadRange("9-5".into()))
        );
        let empty = build_config(&[], FragmentPolicy::Pass).unwrap();
        assert_eq!(empty.n_ranges, 0);
    }

    #[test]
    fn interface_resolution_rejects_bad_lists() {
        let err = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            resolve_interfaces(&names).unwrap_err().to_string()
        };
        assert_eq!(err(&[]), "no --iface given");
        assert_eq!(err(&["lo", "lo"]), "interface `lo` given twice");
        assert_eq!(err(&["a\0b"]), "invalid interface name `a\0b`");
        assert_eq!(err(&[""]), "invalid interface name ``");
        assert_eq!(err(&["ph-no-such-if"]), "no such interface: ph-no-such-if");
        assert_eq!(
            err(&["a-very-long-interface-name"]),
            "no such interface: a-very-long-interface-name"
        );
        let lo = resolve_interfaces(&["lo".to_string()]).unwrap();
        assert_eq!(lo[0].0, "lo");
        assert!(lo[0].1 > 0);
    }

    #[test]
    fn errno_walks_the_chain() {
        let e = ProgramError::SyscallError(aya::sys::SyscallError {
            call: "bpf_link_create",
            io_error: io::Error::from_raw_os_error(libc::EBUSY),
        });
        assert_eq!(errno(&e), Some(libc::EBUSY));
        assert!(matches!(
            attach_error("ph0", AyaXdpMode::Driver, e),
            LoadError::AlreadyAttached(i) if i == "ph0"
        ));
        let e = ProgramError::SyscallError(aya::sys::SyscallError {
            call: "bpf_link_create",
            io_error: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        });
        assert!(matches!(
            attach_error("ph0", AyaXdpMode::Driver, e),
            LoadError::NativeUnsupported(_)
        ));
        let e = ProgramError::SyscallError(aya::sys::SyscallError {
            call: "bpf_link_create",
            io_error: io::Error::from_raw_os_error(libc::EPERM),
        });
        assert!(is_permission(&e));
    }
}
