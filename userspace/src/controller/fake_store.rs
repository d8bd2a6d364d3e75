//! An in-memory [`FlowStore`] for the library's own tests.

use std::{collections::HashMap, net::SocketAddr};

use pinhole_common::{Counter, FlowKey, FlowStats, LatchValue, Reason};

use super::{CopiedStats, FlowStore, StatsReader};
use crate::{
    addr::{flow_key, Endpoint},
    datapath::{
        error::StoreError,
        latch::{LatchKey, Latched},
        maps::Inserted,
    },
};

/// An in-memory [`FlowStore`] for tests: a hash map with a capacity, a switch
/// to make inserts or removes fail, and settable counters. Compiled for the
/// library's own tests only (the tests crate drives the real daemon).
#[derive(Debug, Default)]
pub struct FakeStore {
    pub flows: HashMap<FlowKey, FlowStats>,
    pub capacity: usize,
    /// Fail the insert after this many more successful inserts.
    pub fail_inserts_after: Option<usize>,
    pub fail_removes: bool,
    pub counters: [Counter; Reason::COUNT as usize],
    /// The latch maps.
    pub latches: HashMap<LatchKey, LatchValue>,
    /// Arming fails (latch map full) when this many entries are armed.
    pub latch_capacity: Option<usize>,
    /// Successful inserts of new flows and removes of present ones, so
    /// tests can assert that a change left the map alone.
    pub inserts: usize,
    pub removes: usize,
}

impl FakeStore {
    pub fn new(capacity: usize) -> Self {
        FakeStore {
            capacity,
            ..Default::default()
        }
    }
}

impl FlowStore for FakeStore {
    fn insert(&mut self, key: &FlowKey) -> Result<Inserted, StoreError> {
        if self.flows.contains_key(key) {
            return Ok(Inserted::Existed);
        }
        if let Some(n) = self.fail_inserts_after.as_mut() {
            if *n == 0 {
                return Err(StoreError::Other {
                    op: "insert",
                    message: "injected failure".into(),
                });
            }
            *n -= 1;
        }
        if self.flows.len() >= self.capacity {
            return Err(StoreError::MapFull);
        }
        self.flows.insert(*key, FlowStats::default());
        self.inserts += 1;
        Ok(Inserted::New)
    }

    fn remove(&mut self, key: &FlowKey) -> Result<bool, StoreError> {
        if self.fail_removes {
            return Err(StoreError::Other {
                op: "remove",
                message: "injected failure".into(),
            });
        }
        let removed = self.flows.remove(key).is_some();
        self.removes += usize::from(removed);
        Ok(removed)
    }

    fn get(&self, key: &FlowKey) -> Result<Option<FlowStats>, StoreError> {
        Ok(self.flows.get(key).copied())
    }

    fn counters(&self) -> Result<[Counter; Reason::COUNT as usize], StoreError> {
        Ok(self.counters)
    }

    fn keys(&self) -> Result<Vec<FlowKey>, StoreError> {
        Ok(self.flows.keys().copied().collect())
    }

    fn arm_latch(&mut self, key: &LatchKey, value: LatchValue) -> Result<(), StoreError> {
        if self
            .latch_capacity
            .is_some_and(|cap| self.latches.len() >= cap && !self.latches.contains_key(key))
        {
            return Err(StoreError::LatchMapFull);
        }
        self.latches.insert(*key, value);
        Ok(())
    }

    fn disarm_latch(&mut self, key: &LatchKey) -> Result<bool, StoreError> {
        Ok(self.latches.remove(key).is_some())
    }

    fn reader(&self) -> Result<Box<dyn StatsReader>, StoreError> {
        Ok(Box::new(CopiedStats(self.flows.clone())))
    }
}

impl FakeStore {
    /// What the XDP program does with a packet `src → dst` that misses the
    /// flow map at `now`: claims a live half-open entry for (`src` address,
    /// `dst`) and installs the pair (its report is returned), or reports
    /// that the flow map is full (putting the entry back); `None` when no
    /// live entry matches (the packet is dropped).
    pub fn kernel_latch(&mut self, src: SocketAddr, dst: SocketAddr, now: u64) -> Option<Latched> {
        let key = LatchKey {
            from: src.ip(),
            local: dst,
        };
        let value = *self.latches.get(&key)?;
        if now > value.deadline_ns {
            return None;
        }
        self.latches.remove(&key);
        let (s, d) = (Endpoint::new(src).ok()?, Endpoint::new(dst).ok()?);
        let mut installed = true;
        let mut added = Vec::new();
        for k in [flow_key(s, d), flow_key(d, s)] {
            if self.flows.contains_key(&k) {
                continue;
            }
            if self.flows.len() >= self.capacity {
                installed = false;
                break;
            }
            self.flows.insert(k, FlowStats::default());
            added.push(k);
        }
        if !installed {
            for k in added {
                self.flows.remove(&k);
            }
            self.latches.insert(key, value);
        }
        Some(Latched {
            cookie: value.cookie,
            key,
            remote: src,
            installed,
        })
    }
}
