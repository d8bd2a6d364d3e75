//! Where the flows live: the [`FlowStore`] trait and the kernel's maps.

use pinhole_common::{Counter, FlowKey, FlowStats, LatchValue, Reason};

use super::StatsReader;
use crate::{
    datapath::error::StoreError,
    datapath::latch::{LatchKey, LatchMap},
    datapath::maps::{CounterMap, FlowMap, Inserted},
};

/// Where the flows live: the kernel map, or a fake in tests.
pub trait FlowStore: Send + 'static {
    /// Adds `key` with zeroed stats, leaving an existing entry alone.
    fn insert(&mut self, key: &FlowKey) -> Result<Inserted, StoreError>;
    /// Removes `key`; `Ok(false)` when it was not there.
    fn remove(&mut self, key: &FlowKey) -> Result<bool, StoreError>;
    /// The stats of `key`, `None` when absent.
    fn get(&self, key: &FlowKey) -> Result<Option<FlowStats>, StoreError>;
    /// The verdict counters summed over CPUs, indexed by [`Reason`].
    fn counters(&self) -> Result<[Counter; Reason::COUNT as usize], StoreError>;
    /// Every key in the store.
    fn keys(&self) -> Result<Vec<FlowKey>, StoreError>;
    /// Arms the half-open entry `key` (creates or replaces it).
    fn arm_latch(&mut self, key: &LatchKey, value: LatchValue) -> Result<(), StoreError>;
    /// Removes the half-open entry `key`; `Ok(false)` when it was not there
    /// (the XDP program claimed it).
    fn disarm_latch(&mut self, key: &LatchKey) -> Result<bool, StoreError>;
    /// A reader of every flow's counters for a report built on another
    /// thread ([`super::reports`]); it never changes the store.
    fn reader(&self) -> Result<Box<dyn StatsReader>, StoreError>;
}

/// The kernel's maps.
pub struct KernelStore {
    pub flows: FlowMap,
    pub counters: CounterMap,
    /// The latch maps, when latching is on.
    pub latches: Option<LatchMap>,
}

impl KernelStore {
    fn latch_map(&mut self, op: &'static str) -> Result<&mut LatchMap, StoreError> {
        self.latches.as_mut().ok_or(StoreError::Other {
            op,
            message: "latching is off (--latching 0)".into(),
        })
    }
}

impl FlowStore for KernelStore {
    fn insert(&mut self, key: &FlowKey) -> Result<Inserted, StoreError> {
        self.flows.insert_new(key)
    }

    fn remove(&mut self, key: &FlowKey) -> Result<bool, StoreError> {
        self.flows.remove(key)
    }

    fn get(&self, key: &FlowKey) -> Result<Option<FlowStats>, StoreError> {
        self.flows.get(key)
    }

    fn counters(&self) -> Result<[Counter; Reason::COUNT as usize], StoreError> {
        self.counters.totals()
    }

    fn keys(&self) -> Result<Vec<FlowKey>, StoreError> {
        self.flows.entries().map(|e| e.map(|(k, _)| k)).collect()
    }

    fn arm_latch(&mut self, key: &LatchKey, value: LatchValue) -> Result<(), StoreError> {
        self.latch_map("latch arm")?.arm(key, value)
    }

    fn disarm_latch(&mut self, key: &LatchKey) -> Result<bool, StoreError> {
        self.latch_map("latch disarm")?.disarm(key)
    }

    fn reader(&self) -> Result<Box<dyn StatsReader>, StoreError> {
        Ok(Box::new(self.flows.reader()?))
    }
}
