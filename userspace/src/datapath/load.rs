//! Loading the XDP program with its configuration, its maps (reusing
//! pinned ones) and attaching it to the interfaces (taking over pinned
//! links), see [`Datapath`].

use std::{io, path::Path};

use aya::{programs::XdpMode as AyaXdpMode, Ebpf, EbpfLoader};
use pinhole_common::{
    Config, CONFIG_GLOBAL, FLOWS_V4_MAP, FLOWS_V6_MAP, PROGRAM_L3_NAME, PROGRAM_NAME,
};
use tracing::{error, info, warn};

mod attach;
mod object;
mod settings;

use attach::{adopt_link, attach_error, load_program, pin_link, program_mut, Attachment, Link};
use object::{map_mismatch, pinned_map_specs};
pub use settings::{build_config, parse_port_range, resolve_interfaces, MAX_FLOWS, MIN_FLOWS};

use crate::{
    datapath::error::LoadError,
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
mod tests;
