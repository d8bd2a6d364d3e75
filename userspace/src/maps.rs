//! Typed handles on the program's maps. Map names come only from
//! `pinhole_common`.

use aya::{
    maps::{HashMap, Map, MapData, MapError, PerCpuArray},
    Ebpf,
};
use pinhole_common::{Counter, FlowKey, FlowStats, Reason, COUNTERS_MAP, FLOWS_MAP};

use crate::error::{LoadError, StoreError};

/// `BPF_ANY`: create or update.
const BPF_ANY: u64 = 0;
/// `BPF_NOEXIST`: create only.
const BPF_NOEXIST: u64 = 1;

fn errno(err: &MapError) -> Option<i32> {
    match err {
        MapError::SyscallError(e) => e.io_error.raw_os_error(),
        MapError::IoError(e) => e.raw_os_error(),
        _ => None,
    }
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, LoadError> {
    ebpf.take_map(name)
        .ok_or(LoadError::Missing { what: "map", name })
}

/// Result of [`FlowMap::insert_new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The key was added with zeroed stats.
    New,
    /// The key was already there; its stats were left alone.
    Existed,
}

/// The open-flow hash map ([`FLOWS_MAP`]).
pub struct FlowMap {
    map: HashMap<MapData, FlowKey, FlowStats>,
}

impl FlowMap {
    /// Takes the map out of a loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, LoadError> {
        let map = take(ebpf, FLOWS_MAP)?;
        let map = HashMap::try_from(map).map_err(|source| LoadError::MapType {
            name: FLOWS_MAP,
            source,
        })?;
        Ok(FlowMap { map })
    }

    /// Adds `key` with zeroed stats unless it exists (`BPF_NOEXIST`), so a
    /// flow's counters are never reset behind the XDP program's back.
    pub fn insert_new(&mut self, key: &FlowKey) -> Result<Inserted, StoreError> {
        match self.map.insert(key, FlowStats::default(), BPF_NOEXIST) {
            Ok(()) => Ok(Inserted::New),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(Inserted::Existed),
            Err(e) => Err(map_err("insert", e)),
        }
    }

    /// Creates or overwrites `key` (`BPF_ANY`).
    pub fn insert(&mut self, key: &FlowKey, stats: FlowStats) -> Result<(), StoreError> {
        self.map
            .insert(key, stats, BPF_ANY)
            .map_err(|e| map_err("insert", e))
    }

    /// Removes `key`. Returns whether it was there.
    pub fn remove(&mut self, key: &FlowKey) -> Result<bool, StoreError> {
        match self.map.remove(key) {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(map_err("remove", e)),
        }
    }

    /// The stats of `key`, `None` when absent.
    pub fn get(&self, key: &FlowKey) -> Result<Option<FlowStats>, StoreError> {
        match self.map.get(key, 0) {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err("lookup", e)),
        }
    }

    /// Every entry. Entries removed concurrently may be skipped.
    pub fn entries(&self) -> impl Iterator<Item = Result<(FlowKey, FlowStats), StoreError>> + '_ {
        self.map
            .iter()
            .map(|r| r.map_err(|e| map_err("iterate", e)))
    }

    /// How many entries the map holds (walks the keys: O(n) syscalls).
    pub fn len(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for k in self.map.keys() {
            k.map_err(|e| map_err("iterate", e))?;
            n += 1;
        }
        Ok(n)
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        match self.map.keys().next() {
            None => Ok(true),
            Some(Ok(_)) => Ok(false),
            Some(Err(e)) => Err(map_err("iterate", e)),
        }
    }
}

fn map_err(op: &'static str, source: MapError) -> StoreError {
    if errno(&source) == Some(libc::E2BIG) {
        StoreError::MapFull
    } else {
        StoreError::Map { op, source }
    }
}

/// The per-CPU verdict counters ([`COUNTERS_MAP`]).
pub struct CounterMap {
    map: PerCpuArray<MapData, Counter>,
}

impl CounterMap {
    /// Takes the map out of a loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, LoadError> {
        let map = take(ebpf, COUNTERS_MAP)?;
        let map = PerCpuArray::try_from(map).map_err(|source| LoadError::MapType {
            name: COUNTERS_MAP,
            source,
        })?;
        Ok(CounterMap { map })
    }

    /// The counters summed over all CPUs, indexed by [`Reason`].
    pub fn totals(&self) -> Result<[Counter; Reason::COUNT as usize], StoreError> {
        let mut out = [Counter::default(); Reason::COUNT as usize];
        for reason in Reason::ALL {
            let per_cpu = self
                .map
                .get(&(reason as u32), 0)
                .map_err(|e| map_err("counter lookup", e))?;
            out[reason as usize] = sum(per_cpu.iter());
        }
        Ok(out)
    }
}

/// Adds per-CPU counters (wrapping, like the kernel's).
pub fn sum<'a>(values: impl IntoIterator<Item = &'a Counter>) -> Counter {
    values
        .into_iter()
        .fold(Counter::default(), |acc, c| Counter {
            packets: acc.packets.wrapping_add(c.packets),
            bytes: acc.bytes.wrapping_add(c.bytes),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_per_cpu_counters() {
        let cpus = [
            Counter {
                packets: 1,
                bytes: 100,
            },
            Counter {
                packets: 2,
                bytes: 200,
            },
            Counter {
                packets: u64::MAX,
                bytes: 0,
            },
        ];
        assert_eq!(
            sum(&cpus),
            Counter {
                packets: 2,
                bytes: 300
            }
        );
        assert_eq!(sum(&[]), Counter::default());
    }

    #[test]
    fn e2big_means_full() {
        let full = MapError::SyscallError(aya::sys::SyscallError {
            call: "bpf_map_update_elem",
            io_error: std::io::Error::from_raw_os_error(libc::E2BIG),
        });
        assert!(matches!(map_err("insert", full), StoreError::MapFull));
        let other = MapError::SyscallError(aya::sys::SyscallError {
            call: "bpf_map_update_elem",
            io_error: std::io::Error::from_raw_os_error(libc::EPERM),
        });
        assert!(matches!(
            map_err("insert", other),
            StoreError::Map { op: "insert", .. }
        ));
    }
}
