//! Loading the XDP program with its configuration and attaching it to the
//! interfaces. Dropping the [`Datapath`] detaches it everywhere.

use std::{ffi::CString, io};

use aya::{
    programs::{ProgramError, Xdp, XdpMode},
    Ebpf, EbpfLoader,
};
use pinhole_common::{
    Config, FragmentPolicy, PortRange, CONFIG_GLOBAL, FLOWS_V4_MAP, FLOWS_V6_MAP, MAX_PORT_RANGES,
    PROGRAM_NAME,
};
use tracing::{error, info, warn};

use crate::{
    error::{ConfigError, LoadError},
    maps::{CounterMap, FlowMap},
};

/// Name of aya-log's ring buffer, present only when the program was built
/// with per-packet tracing.
const AYA_LOGS_MAP: &str = "AYA_LOGS";

/// Smallest useful flow capacity: one pinhole is two flows.
pub const MIN_FLOWS: u32 = 2;
/// Largest flow capacity accepted (the map is preallocated).
pub const MAX_FLOWS: u32 = 1 << 24;

/// Parses `LO-HI` (or a single `PORT`) into an inclusive port range.
pub fn parse_port_range(s: &str) -> Result<PortRange, ConfigError> {
    let bad = || ConfigError::BadRange(s.to_string());
    let port = |p: &str| -> Result<u16, ConfigError> {
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
pub fn build_config(
    ranges: &[PortRange],
    fragments: FragmentPolicy,
) -> Result<Config, ConfigError> {
    if ranges.len() > MAX_PORT_RANGES {
        return Err(ConfigError::TooManyRanges {
            given: ranges.len(),
            max: MAX_PORT_RANGES,
        });
    }
    let mut config = Config::EMPTY;
    for (i, r) in ranges.iter().enumerate() {
        if r.lo == 0 || r.lo > r.hi {
            return Err(ConfigError::BadRange(show(r)));
        }
        if let Some(o) = ranges[..i].iter().find(|o| r.lo <= o.hi && o.lo <= r.hi) {
            return Err(ConfigError::Overlap {
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
        return Err(ConfigError::NoInterface.into());
    }
    let mut out: Vec<(String, u32)> = Vec::with_capacity(names.len());
    for name in names {
        if out.iter().any(|(n, _)| n == name) {
            return Err(ConfigError::DuplicateInterface(name.clone()).into());
        }
        let c =
            CString::new(name.as_str()).map_err(|_| ConfigError::BadInterfaceName(name.clone()))?;
        if name.is_empty() {
            return Err(ConfigError::BadInterfaceName(name.clone()).into());
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

/// One attachment; detaches (and says so) when dropped.
struct Attachment {
    iface: String,
    link: Option<aya::programs::xdp::XdpLink>,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            drop(link);
            info!(iface = %self.iface, "XDP program detached");
        }
    }
}

/// The loaded program, attached to every interface.
pub struct Datapath {
    // Field order is drop order: detach before the object (and its program
    // fd) goes away.
    attachments: Vec<Attachment>,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    ebpf: Ebpf,
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
    /// Loads the program and attaches it to every interface. On failure
    /// everything attached so far is detached again.
    pub fn load(opts: &LoadOptions) -> Result<Self, LoadError> {
        let mut ebpf = EbpfLoader::new()
            .override_global(CONFIG_GLOBAL, &opts.config, true)
            // Each family's map can take every flow: the pinhole table
            // enforces the total.
            .map_max_entries(FLOWS_V4_MAP, opts.max_flows)
            .map_max_entries(FLOWS_V6_MAP, opts.max_flows)
            .load(crate::ebpf::OBJECT)
            .map_err(|e| {
                if is_permission(&e) {
                    LoadError::PermissionDenied
                } else {
                    LoadError::Object(e)
                }
            })?;

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

        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or(LoadError::Missing {
                what: "program",
                name: PROGRAM_NAME,
            })?
            .try_into()
            .map_err(LoadError::Program)?;
        program.load().map_err(|e| match e {
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
        })?;

        let mut attachments: Vec<Attachment> = Vec::with_capacity(opts.interfaces.len());
        for (iface, index) in &opts.interfaces {
            let id = program
                .attach_to_if_index(*index, opts.mode)
                .map_err(|e| attach_error(iface, opts.mode, e))?;
            // Owning the link makes its drop the detach (bpf_link or netlink).
            let link = program.take_link(id).map_err(LoadError::Program)?;
            attachments.push(Attachment {
                iface: iface.clone(),
                link: Some(link),
            });
            info!(iface = %iface, ifindex = index, mode = ?opts.mode, "XDP program attached");
        }
        Ok(Datapath {
            attachments,
            logger,
            ebpf,
        })
    }

    /// Takes the flow and counter maps (once).
    pub fn take_maps(&mut self) -> Result<(FlowMap, CounterMap), LoadError> {
        Ok((
            FlowMap::take(&mut self.ebpf)?,
            CounterMap::take(&mut self.ebpf)?,
        ))
    }

    /// Takes the eBPF log reader, if the program logs.
    pub fn take_logger(&mut self) -> Option<aya_log::EbpfLogger<&'static dyn log::Log>> {
        self.logger.take()
    }

    /// Names of the interfaces the program is attached to.
    pub fn interfaces(&self) -> impl Iterator<Item = &str> {
        self.attachments.iter().map(|a| a.iface.as_str())
    }
}

fn attach_error(iface: &str, mode: XdpMode, e: ProgramError) -> LoadError {
    match errno(&e) {
        Some(libc::EBUSY | libc::EEXIST) => LoadError::AlreadyAttached(iface.to_string()),
        Some(libc::EOPNOTSUPP) if mode == XdpMode::Driver => {
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
                Err(ConfigError::BadRange(s.to_string())),
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
            Err(ConfigError::TooManyRanges { given: 9, max: 8 })
        );
        assert!(build_config(&nine[..8], FragmentPolicy::Pass).is_ok());
        assert_eq!(
            build_config(&[r(10, 20), r(20, 30)], FragmentPolicy::Pass),
            Err(ConfigError::Overlap {
                a: "10-20".into(),
                b: "20-30".into()
            })
        );
        assert_eq!(
            build_config(&[r(10, 20), r(30, 40), r(1, 100)], FragmentPolicy::Pass),
            Err(ConfigError::Overlap {
                a: "10-20".into(),
                b: "1-100".into()
            })
        );
        assert_eq!(
            build_config(&[r(0, 5)], FragmentPolicy::Pass),
            Err(ConfigError::BadRange("0-5".into()))
        );
        assert_eq!(
            build_config(&[r(9, 5)], FragmentPolicy::Pass),
            Err(ConfigError::BadRange("9-5".into()))
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
            attach_error("ph0", XdpMode::Driver, e),
            LoadError::AlreadyAttached(i) if i == "ph0"
        ));
        let e = ProgramError::SyscallError(aya::sys::SyscallError {
            call: "bpf_link_create",
            io_error: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        });
        assert!(matches!(
            attach_error("ph0", XdpMode::Driver, e),
            LoadError::NativeUnsupported(_)
        ));
        let e = ProgramError::SyscallError(aya::sys::SyscallError {
            call: "bpf_link_create",
            io_error: io::Error::from_raw_os_error(libc::EPERM),
        });
        assert!(is_permission(&e));
    }
}
