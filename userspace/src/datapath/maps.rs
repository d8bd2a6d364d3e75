//! Typed handles on the program's maps. Map names come only from
//! `pinhole_common`.
//!
//! The flow maps and the latch maps ([`crate::datapath::latch::LatchMap`]) have one
//! shape: a hash map per address family, each with its own key layout and
//! the same value type. [`FamilyMaps`] is that pair; the typed handles turn
//! their keys into a [`FamilyKey`] and name their operations and errors.

use aya::{
    maps::{HashMap, Map, MapData, MapError, PerCpuArray},
    Ebpf,
};
use pinhole_common::{
    Counter, FlowKey, FlowKeyV4, FlowKeyV6, FlowStats, MapKey, Reason, COUNTERS_MAP, FLOWS_V4_MAP,
    FLOWS_V6_MAP,
};

use crate::datapath::error::{LoadError, StoreError};

pub mod batch;

/// `BPF_ANY`: create or update.
pub(crate) const BPF_ANY: u64 = 0;
/// `BPF_NOEXIST`: create only.
pub(crate) const BPF_NOEXIST: u64 = 1;

pub(crate) fn errno(err: &MapError) -> Option<i32> {
    match err {
        MapError::SyscallError(e) => e.io_error.raw_os_error(),
        MapError::IoError(e) => e.raw_os_error(),
        _ => None,
    }
}

/// Takes the map `name` out of a loaded object.
pub(crate) fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, LoadError> {
    ebpf.take_map(name)
        .ok_or(LoadError::Missing { what: "map", name })
}

/// A key in the map of its family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyKey<K4, K6> {
    V4(K4),
    V6(K6),
}

/// Two hash maps of `V`, one keyed by `K4` for IPv4 and one by `K6` for
/// IPv6, used as one. Errors are aya's; the typed handles say which
/// operation failed and what a full map means for them.
pub(crate) struct FamilyMaps<K4, K6, V> {
    pub(crate) v4: HashMap<MapData, K4, V>,
    pub(crate) v6: HashMap<MapData, K6, V>,
}

fn hash_map<K: aya::Pod, V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<HashMap<MapData, K, V>, LoadError> {
    HashMap::try_from(take(ebpf, name)?).map_err(|source| LoadError::MapType { name, source })
}

impl<K4: aya::Pod, K6: aya::Pod, V: aya::Pod> FamilyMaps<K4, K6, V> {
    /// Takes the maps named `v4` and `v6` out of a loaded object.
    pub(crate) fn take(
        ebpf: &mut Ebpf,
        v4: &'static str,
        v6: &'static str,
    ) -> Result<Self, LoadError> {
        Ok(FamilyMaps {
            v4: hash_map(ebpf, v4)?,
            v6: hash_map(ebpf, v6)?,
        })
    }

    /// Inserts `key` with `flags` ([`BPF_ANY`], [`BPF_NOEXIST`]).
    pub(crate) fn insert(
        &mut self,
        key: FamilyKey<K4, K6>,
        value: V,
        flags: u64,
    ) -> Result<(), MapError> {
        match key {
            FamilyKey::V4(k) => self.v4.insert(k, value, flags),
            FamilyKey::V6(k) => self.v6.insert(k, value, flags),
        }
    }

    /// Removes `key`; `Ok(false)` when it was not there.
    pub(crate) fn remove(&mut self, key: FamilyKey<K4, K6>) -> Result<bool, MapError> {
        let r = match key {
            FamilyKey::V4(k) => self.v4.remove(&k),
            FamilyKey::V6(k) => self.v6.remove(&k),
        };
        match r {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The value of `key`, `None` when absent.
    pub(crate) fn get(&self, key: FamilyKey<K4, K6>) -> Result<Option<V>, MapError> {
        let r = match key {
            FamilyKey::V4(k) => self.v4.get(&k, 0),
            FamilyKey::V6(k) => self.v6.get(&k, 0),
        };
        match r {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// How many entries both maps hold (walks the keys: O(n) syscalls).
    pub(crate) fn len(&self) -> Result<usize, MapError> {
        let mut n = 0;
        for k in self
            .v4
            .keys()
            .map(|k| k.map(drop))
            .chain(self.v6.keys().map(|k| k.map(drop)))
        {
            k?;
            n += 1;
        }
        Ok(n)
    }

    /// Whether both maps are empty (reads at most one key of each).
    pub(crate) fn is_empty(&self) -> Result<bool, MapError> {
        let first = |k: Option<Result<(), MapError>>| match k {
            None => Ok(true),
            Some(Ok(())) => Ok(false),
            Some(Err(e)) => Err(e),
        };
        Ok(first(self.v4.keys().next().map(|k| k.map(drop)))?
            && first(self.v6.keys().next().map(|k| k.map(drop)))?)
    }
}

/// Result of [`FlowMap::insert_new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The key was added with zeroed stats.
    New,
    /// The key was already there; its stats were left alone.
    Existed,
}

/// The open flows: two hash maps, [`FLOWS_V4_MAP`] keyed by [`FlowKeyV4`] and
/// [`FLOWS_V6_MAP`] keyed by [`FlowKeyV6`], behind one API in terms of the
/// family-independent [`FlowKey`]. Each key goes to the map of its family.
pub struct FlowMap {
    maps: FamilyMaps<FlowKeyV4, FlowKeyV6, FlowStats>,
}

/// The map key of `key`, or an error for a key the program could never match
/// (not UDP, unknown family, stray bytes after an IPv4 address).
fn map_key(op: &'static str, key: &FlowKey) -> Result<FamilyKey<FlowKeyV4, FlowKeyV6>, StoreError> {
    match key.to_map_key() {
        Some(MapKey::V4(k)) => Ok(FamilyKey::V4(k)),
        Some(MapKey::V6(k)) => Ok(FamilyKey::V6(k)),
        None => Err(StoreError::Other {
            op,
            message: format!("no flow map holds {key:?}"),
        }),
    }
}

impl FlowMap {
    /// Takes both maps out of a loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, LoadError> {
        Ok(FlowMap {
            maps: FamilyMaps::take(ebpf, FLOWS_V4_MAP, FLOWS_V6_MAP)?,
        })
    }

    /// Adds `key` with zeroed stats unless it exists (`BPF_NOEXIST`), so a
    /// flow's counters are never reset behind the XDP program's back.
    pub fn insert_new(&mut self, key: &FlowKey) -> Result<Inserted, StoreError> {
        let k = map_key("insert", key)?;
        match self.maps.insert(k, FlowStats::default(), BPF_NOEXIST) {
            Ok(()) => Ok(Inserted::New),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(Inserted::Existed),
            Err(e) => Err(map_err("insert", e)),
        }
    }

    /// Creates or overwrites `key` (`BPF_ANY`).
    pub fn insert(&mut self, key: &FlowKey, stats: FlowStats) -> Result<(), StoreError> {
        let k = map_key("insert", key)?;
        self.maps
            .insert(k, stats, BPF_ANY)
            .map_err(|e| map_err("insert", e))
    }

    /// Removes `key`. Returns whether it was there.
    pub fn remove(&mut self, key: &FlowKey) -> Result<bool, StoreError> {
        let k = map_key("remove", key)?;
        self.maps.remove(k).map_err(|e| map_err("remove", e))
    }

    /// The stats of `key`, `None` when absent.
    pub fn get(&self, key: &FlowKey) -> Result<Option<FlowStats>, StoreError> {
        let k = map_key("lookup", key)?;
        self.maps.get(k).map_err(|e| map_err("lookup", e))
    }

    /// Every entry, IPv4 first. Entries removed concurrently may be skipped.
    pub fn entries(&self) -> impl Iterator<Item = Result<(FlowKey, FlowStats), StoreError>> + '_ {
        let v4 = self
            .maps
            .v4
            .iter()
            .map(|r| r.map(|(k, v)| (k.to_flow_key(), v)));
        let v6 = self
            .maps
            .v6
            .iter()
            .map(|r| r.map(|(k, v)| (k.to_flow_key(), v)));
        v4.chain(v6).map(|r| r.map_err(|e| map_err("iterate", e)))
    }

    /// A reader of both maps for another thread (duplicates their file
    /// descriptors).
    pub fn reader(&self) -> Result<FlowReader, StoreError> {
        let dup = |fd: std::os::fd::BorrowedFd<'_>, ks, vs| {
            batch::MapFdBatch::new(fd, ks, vs).map_err(|e| StoreError::Other {
                op: "dup",
                message: e.to_string(),
            })
        };
        use std::{mem::size_of, os::fd::AsFd};
        Ok(FlowReader {
            v4: dup(
                aya::maps::IterableMap::map(&self.maps.v4).fd().as_fd(),
                size_of::<FlowKeyV4>(),
                size_of::<FlowStats>(),
            )?,
            v6: dup(
                aya::maps::IterableMap::map(&self.maps.v6).fd().as_fd(),
                size_of::<FlowKeyV6>(),
                size_of::<FlowStats>(),
            )?,
        })
    }

    /// How many entries the maps hold (walks the keys: O(n) syscalls).
    pub fn len(&self) -> Result<usize, StoreError> {
        self.maps.len().map_err(|e| map_err("iterate", e))
    }

    /// Whether both maps are empty.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        self.maps.is_empty().map_err(|e| map_err("iterate", e))
    }
}

/// Both flow maps read in batches ([`batch`]), from any thread.
#[derive(Debug)]
pub struct FlowReader {
    v4: batch::MapFdBatch,
    v6: batch::MapFdBatch,
}

impl FlowReader {
    /// Every flow's stats: two `BPF_MAP_LOOKUP_BATCH` walks of up to
    /// [`batch::FIRST_CHUNK`] entries a call instead of two syscalls per
    /// entry.
    pub fn read_all(&self) -> Result<std::collections::HashMap<FlowKey, FlowStats>, StoreError> {
        let mut out = std::collections::HashMap::new();
        let err = |e: batch::BatchError| StoreError::Other {
            op: "batch lookup",
            message: e.to_string(),
        };
        batch::walk(&self.v4, |k, v| {
            if let (Some(k), Some(v)) = (batch::decode::<FlowKeyV4>(k), batch::decode(v)) {
                out.insert(k.to_flow_key(), v);
            }
        })
        .map_err(err)?;
        batch::walk(&self.v6, |k, v| {
            if let (Some(k), Some(v)) = (batch::decode::<FlowKeyV6>(k), batch::decode(v)) {
                out.insert(k.to_flow_key(), v);
            }
        })
        .map_err(err)?;
        Ok(out)
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
