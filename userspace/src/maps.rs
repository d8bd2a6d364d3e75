//! Typed handles on the program's maps. Map names come only from
//! `pinhole_common`.

use aya::{
    maps::{HashMap, Map, MapData, MapError, PerCpuArray},
    Ebpf,
};
use pinhole_common::{
    Counter, FlowKey, FlowKeyV4, FlowKeyV6, FlowStats, MapKey, Reason, COUNTERS_MAP, FLOWS_V4_MAP,
    FLOWS_V6_MAP,
};

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

/// The open flows: two hash maps, [`FLOWS_V4_MAP`] keyed by [`FlowKeyV4`] and
/// [`FLOWS_V6_MAP`] keyed by [`FlowKeyV6`], behind one API in terms of the
/// family-independent [`FlowKey`]. Each key goes to the map of its family.
pub struct FlowMap {
    v4: HashMap<MapData, FlowKeyV4, FlowStats>,
    v6: HashMap<MapData, FlowKeyV6, FlowStats>,
}

/// The map key of `key`, or an error for a key the program could never match
/// (not UDP, unknown family, stray bytes after an IPv4 address).
fn map_key(op: &'static str, key: &FlowKey) -> Result<MapKey, StoreError> {
    key.to_map_key().ok_or_else(|| StoreError::Other {
        op,
        message: format!("no flow map holds {key:?}"),
    })
}

fn hash_map<K: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<HashMap<MapData, K, FlowStats>, LoadError> {
    HashMap::try_from(take(ebpf, name)?).map_err(|source| LoadError::MapType { name, source })
}

impl FlowMap {
    /// Takes both maps out of a loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, LoadError> {
        Ok(FlowMap {
            v4: hash_map(ebpf, FLOWS_V4_MAP)?,
            v6: hash_map(ebpf, FLOWS_V6_MAP)?,
        })
    }

    /// Adds `key` with zeroed stats unless it exists (`BPF_NOEXIST`), so a
    /// flow's counters are never reset behind the XDP program's back.
    pub fn insert_new(&mut self, key: &FlowKey) -> Result<Inserted, StoreError> {
        let zero = FlowStats::default();
        let r = match map_key("insert", key)? {
            MapKey::V4(k) => self.v4.insert(k, zero, BPF_NOEXIST),
            MapKey::V6(k) => self.v6.insert(k, zero, BPF_NOEXIST),
        };
        match r {
            Ok(()) => Ok(Inserted::New),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(Inserted::Existed),
            Err(e) => Err(map_err("insert", e)),
        }
    }

    /// Creates or overwrites `key` (`BPF_ANY`).
    pub fn insert(&mut self, key: &FlowKey, stats: FlowStats) -> Result<(), StoreError> {
        match map_key("insert", key)? {
            MapKey::V4(k) => self.v4.insert(k, stats, BPF_ANY),
            MapKey::V6(k) => self.v6.insert(k, stats, BPF_ANY),
        }
        .map_err(|e| map_err("insert", e))
    }

    /// Removes `key`. Returns whether it was there.
    pub fn remove(&mut self, key: &FlowKey) -> Result<bool, StoreError> {
        let r = match map_key("remove", key)? {
            MapKey::V4(k) => self.v4.remove(&k),
            MapKey::V6(k) => self.v6.remove(&k),
        };
        match r {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(map_err("remove", e)),
        }
    }

    /// The stats of `key`, `None` when absent.
    pub fn get(&self, key: &FlowKey) -> Result<Option<FlowStats>, StoreError> {
        let r = match map_key("lookup", key)? {
            MapKey::V4(k) => self.v4.get(&k, 0),
            MapKey::V6(k) => self.v6.get(&k, 0),
        };
        match r {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err("lookup", e)),
        }
    }

    /// Every entry, IPv4 first. Entries removed concurrently may be skipped.
    pub fn entries(&self) -> impl Iterator<Item = Result<(FlowKey, FlowStats), StoreError>> + '_ {
        let v4 = self.v4.iter().map(|r| r.map(|(k, v)| (k.to_flow_key(), v)));
        let v6 = self.v6.iter().map(|r| r.map(|(k, v)| (k.to_flow_key(), v)));
        v4.chain(v6).map(|r| r.map_err(|e| map_err("iterate", e)))
    }

    /// How many entries the maps hold (walks the keys: O(n) syscalls).
    pub fn len(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for k in self
            .v4
            .keys()
            .map(|k| k.map(drop))
            .chain(self.v6.keys().map(|k| k.map(drop)))
        {
            k.map_err(|e| map_err("iterate", e))?;
            n += 1;
        }
        Ok(n)
    }

    /// Whether both maps are empty.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        let first = |k: Option<Result<(), MapError>>| match k {
            None => Ok(true),
            Some(Ok(())) => Ok(false),
            Some(Err(e)) => Err(map_err("iterate", e)),
        };
        Ok(first(self.v4.keys().next().map(|k| k.map(drop)))?
            && first(self.v6.keys().next().map(|k| k.map(drop)))?)
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
