//! The program's configuration: flow limits, media port ranges,
//! interface names.

use std::ffi::CString;

use pinhole_common::{Config, FragmentPolicy, PortRange, MAX_PORT_RANGES};

use crate::datapath::error::{LoadError, SetupError};

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

pub(super) fn show(r: &PortRange) -> String {
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
