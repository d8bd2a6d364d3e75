//! The object's maps as the ELF declares them, and whether a pinned map
//! still matches.

use std::path::Path;

use aya::maps::MapInfo;
use pinhole_common::BENCH_ONLY_MAPS;

use super::AYA_LOGS_MAP;
use crate::datapath::error::LoadError;

/// A map of the object, as the kernel will create it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct MapSpec {
    pub(super) name: String,
    pub(super) map_type: u32,
    pub(super) key_size: u32,
    pub(super) value_size: u32,
    pub(super) max_entries: u32,
    pub(super) flags: u32,
}

/// `BPF_MAP_TYPE_PERF_EVENT_ARRAY` and `BPF_MAP_TYPE_RINGBUF`.
pub(super) const PERF_EVENT_ARRAY: u32 = 4;
pub(super) const RINGBUF: u32 = 27;

/// A ring buffer's size as aya creates it: a power-of-two number of pages.
pub(super) fn ringbuf_size(bytes: u32, page: u32) -> u32 {
    if bytes == 0 || page == 0 {
        return bytes;
    }
    page.saturating_mul(bytes.div_ceil(page).next_power_of_two())
}

/// The object's maps that are pinned: those of its map sections (not its
/// globals, perf event arrays, the log ring buffer of tracing builds, nor
/// the maps of the bench's floor programs, [`BENCH_ONLY_MAPS`]),
/// as the kernel will create them (the loader's `max_entries` overrides
/// applied, ring buffers sized as aya sizes them).
pub(super) fn pinned_map_specs(
    object: &[u8],
    overrides: &[(&str, u32)],
) -> Result<Vec<MapSpec>, LoadError> {
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
                && !BENCH_ONLY_MAPS.contains(&name.as_str())
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
pub(super) fn map_mismatch(spec: &MapSpec, path: &Path) -> Option<String> {
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
