//! The controller: one task that owns the [`PinholeTable`] and the flow store,
//! so table and map change together and in one order.
//!
//! Everything else talks to it through a bounded channel of [`Command`]s, each
//! with a oneshot reply. A periodic tick expires idle pinholes.

use std::{sync::Arc, time::Duration};

use pinhole_common::{Counter, FlowKey, FlowStats, Reason};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
    time::MissedTickBehavior,
};
use tracing::{debug, error, info, warn};

use crate::{
    addr::{flow_endpoints, Endpoint, Pair},
    error::{CommandError, StoreError, TableError},
    maps::{CounterMap, FlowMap, Inserted},
    proto::{
        CloseReply, CounterInfo, FlowInfo, FlowUsage, ListReply, OpenParams, OpenReply,
        PinholeInfo, StatsReply, MAX_OWNER_LEN,
    },
    table::{MapOp, OpenRequest, Pinhole, PinholeTable},
};

const NS_PER_SEC: u64 = 1_000_000_000;
/// Commands waiting for the controller before senders have to wait.
const CHANNEL_DEPTH: usize = 256;

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
}

/// The kernel's maps.
pub struct KernelStore {
    pub flows: FlowMap,
    pub counters: CounterMap,
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
}

/// A clock in CLOCK_MONOTONIC nanoseconds (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Controller settings.
#[derive(Clone)]
pub struct ControllerConfig {
    /// Capacity in flows (the flow map's `max_entries`).
    pub capacity: usize,
    /// Idle timeout of opens that give none; 0 = never.
    pub default_idle_secs: u64,
    /// How often idle pinholes are looked for.
    pub tick: Duration,
    pub clock: Clock,
}

impl ControllerConfig {
    pub fn new(capacity: usize, default_idle_secs: u64) -> Self {
        ControllerConfig {
            capacity,
            default_idle_secs,
            tick: Duration::from_secs(1),
            clock: Arc::new(crate::clock::monotonic_ns),
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, CommandError>>;

/// A request to the controller.
pub enum Command {
    Open {
        params: OpenParams,
        reply: Reply<OpenReply>,
    },
    Close {
        a: Endpoint,
        b: Endpoint,
        reply: Reply<CloseReply>,
    },
    List {
        reply: Reply<ListReply>,
    },
    Stats {
        reply: Reply<StatsReply>,
    },
}

/// A cheap, cloneable way to talk to the controller.
#[derive(Clone)]
pub struct ControllerHandle {
    tx: mpsc::Sender<Command>,
}

impl ControllerHandle {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)?
    }

    pub async fn open(&self, params: OpenParams) -> Result<OpenReply, CommandError> {
        self.call(|reply| Command::Open { params, reply }).await
    }

    pub async fn close(&self, a: Endpoint, b: Endpoint) -> Result<CloseReply, CommandError> {
        self.call(|reply| Command::Close { a, b, reply }).await
    }

    pub async fn list(&self) -> Result<ListReply, CommandError> {
        self.call(|reply| Command::List { reply }).await
    }

    pub async fn stats(&self) -> Result<StatsReply, CommandError> {
        self.call(|reply| Command::Stats { reply }).await
    }
}

/// Starts the controller task. It runs until every handle is dropped.
pub fn spawn<S: FlowStore>(
    store: S,
    config: ControllerConfig,
) -> (ControllerHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let controller = Controller::new(store, config);
    let task = tokio::spawn(controller.run(rx));
    (ControllerHandle { tx }, task)
}

/// The state the controller task owns.
pub struct Controller<S> {
    table: PinholeTable,
    store: S,
    config: ControllerConfig,
    /// Flows the table dropped but the store failed to remove; retried every
    /// tick so a closed pinhole cannot stay open in the kernel.
    pending_removals: Vec<FlowKey>,
}

impl<S: FlowStore> Controller<S> {
    pub fn new(store: S, config: ControllerConfig) -> Self {
        Controller {
            table: PinholeTable::new(config.capacity),
            store,
            config,
            pending_removals: Vec::new(),
        }
    }

    pub fn table(&self) -> &PinholeTable {
        &self.table
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(self.config.tick);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                _ = tick.tick() => self.tick(),
            }
        }
        debug!("controller stopped");
    }

    fn now(&self) -> u64 {
        (self.config.clock)()
    }

    /// Runs one command and sends its reply (a client that went away is not
    /// an error).
    pub fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Open { params, reply } => {
                let _ = reply.send(self.open(params));
            }
            Command::Close { a, b, reply } => {
                let _ = reply.send(self.close(a, b));
            }
            Command::List { reply } => {
                let _ = reply.send(self.list());
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
        }
    }

    /// Opens (or refreshes) a pinhole. When the store refuses an insert, the
    /// flows this open already inserted are removed again and the table is
    /// left unchanged.
    pub fn open(&mut self, params: OpenParams) -> Result<OpenReply, CommandError> {
        if params
            .owner
            .as_ref()
            .is_some_and(|o| o.len() > MAX_OWNER_LEN)
        {
            return Err(CommandError::OwnerTooLong { max: MAX_OWNER_LEN });
        }
        let pair = Pair::new(params.a, params.b, params.rtcp)?;
        let idle_timeout_secs = params.idle_secs.unwrap_or(self.config.default_idle_secs);
        let req = OpenRequest {
            pair,
            idle_timeout_secs,
            owner: params.owner,
        };
        let now = self.now();
        let plan = match self.table.plan_open(req, now) {
            Ok(plan) => plan,
            Err(e) => {
                if let TableError::Full { .. } = e {
                    warn!(a = %pair.a(), b = %pair.b(), rejected_total = self.table.rejected_full(), "open refused: {e}");
                }
                return Err(e.into());
            }
        };

        let mut inserted: Vec<FlowKey> = Vec::new();
        for op in &plan.ops {
            let MapOp::Insert(key) = op else { continue };
            match self.store.insert(key) {
                Ok(Inserted::New) => inserted.push(*key),
                Ok(Inserted::Existed) => {
                    if !self.pending_removals.contains(key) {
                        warn!(flow = %FlowDisplay(key), "flow was already in the map");
                    }
                    inserted.push(*key);
                }
                Err(e) => {
                    error!(a = %pair.a(), b = %pair.b(), "open failed, rolling back: {e}");
                    for k in inserted.iter().rev() {
                        self.remove_flow(k);
                    }
                    return Err(e.into());
                }
            }
        }
        let removes: Vec<FlowKey> = plan
            .ops
            .iter()
            .filter_map(|op| match op {
                MapOp::Remove(k) => Some(*k),
                MapOp::Insert(_) => None,
            })
            .collect();
        let (id, outcome) = self.table.commit(plan)?;
        self.pending_removals.retain(|k| !inserted.contains(k));
        for k in &removes {
            self.remove_flow(k);
        }
        let p = self.table.get(id).expect("just committed");
        info!(
            id = %id, a = %p.pair.a(), b = %p.pair.b(), rtcp = p.pair.rtcp(),
            idle_timeout_secs = p.idle_timeout_secs, owner = p.owner.as_deref(),
            "pinhole {}", match outcome { crate::table::OpenOutcome::Opened => "opened", crate::table::OpenOutcome::Refreshed => "refreshed" }
        );
        Ok(OpenReply {
            id: id.0,
            outcome,
            a: p.pair.a(),
            b: p.pair.b(),
            rtcp: p.pair.rtcp(),
            idle_timeout_secs: p.idle_timeout_secs,
            flows: p.flows.len(),
        })
    }

    /// Closes the pinhole joining `a` and `b`.
    pub fn close(&mut self, a: Endpoint, b: Endpoint) -> Result<CloseReply, CommandError> {
        let (p, ops) = self.table.close(a, b)?;
        let removed = self.apply_removes(&ops);
        info!(id = %p.id, a = %p.pair.a(), b = %p.pair.b(), flows_removed = removed, "pinhole closed");
        Ok(CloseReply {
            id: p.id.0,
            a: p.pair.a(),
            b: p.pair.b(),
            rtcp: p.pair.rtcp(),
            flows_removed: removed,
        })
    }

    /// Expires idle pinholes and retries failed removals.
    pub fn tick(&mut self) {
        let now = self.now();
        let Controller { table, store, .. } = self;
        let expired = table.expire(now, |k| last_seen(store, k));
        for (p, ops) in expired {
            self.apply_removes(&ops);
            let idle = now.saturating_sub(p.active_ns) / NS_PER_SEC;
            info!(id = %p.id, a = %p.pair.a(), b = %p.pair.b(), idle_secs = idle, "pinhole expired");
        }
        if !self.pending_removals.is_empty() {
            let pending = std::mem::take(&mut self.pending_removals);
            for k in pending {
                if self.table.refcount(&k) == 0 {
                    self.remove_flow(&k);
                }
            }
        }
    }

    /// The pinholes with their traffic.
    pub fn list(&self) -> Result<ListReply, CommandError> {
        let now = self.now();
        let mut pinholes = Vec::with_capacity(self.table.len());
        for p in self.table.iter() {
            pinholes.push(self.describe(p, now)?);
        }
        Ok(ListReply { pinholes })
    }

    fn describe(&self, p: &Pinhole, now: u64) -> Result<PinholeInfo, CommandError> {
        let mut flows = Vec::with_capacity(p.flows.len());
        let mut active = p.active_ns;
        let (mut packets, mut bytes) = (0u64, 0u64);
        for k in &p.flows {
            let stats = self.store.get(k)?.unwrap_or_default();
            if stats.last_seen_ns != 0 {
                active = active.max(stats.last_seen_ns);
            }
            packets = packets.wrapping_add(stats.packets);
            bytes = bytes.wrapping_add(stats.bytes);
            let (src, dst) = flow_endpoints(k).expect("the table only holds valid keys");
            flows.push(FlowInfo {
                src,
                dst,
                packets: stats.packets,
                bytes: stats.bytes,
            });
        }
        Ok(PinholeInfo {
            id: p.id.0,
            a: p.pair.a(),
            b: p.pair.b(),
            rtcp: p.pair.rtcp(),
            idle_timeout_secs: p.idle_timeout_secs,
            idle_secs: now.saturating_sub(active) / NS_PER_SEC,
            age_secs: now.saturating_sub(p.created_ns) / NS_PER_SEC,
            packets,
            bytes,
            owner: p.owner.clone(),
            flows,
        })
    }

    /// Verdict counters and table usage.
    pub fn stats(&self) -> Result<StatsReply, CommandError> {
        let totals = self.store.counters()?;
        let counters = Reason::ALL
            .iter()
            .map(|r| {
                let c = totals[*r as usize];
                (
                    r.name().to_string(),
                    CounterInfo {
                        packets: c.packets,
                        bytes: c.bytes,
                    },
                )
            })
            .collect();
        Ok(StatsReply {
            counters,
            flows: FlowUsage {
                used: self.table.flows_used(),
                capacity: self.table.capacity(),
            },
            pinholes: self.table.len(),
            rejected_full: self.table.rejected_full(),
            expired: self.table.expired(),
        })
    }

    /// Applies removes; returns how many entries were removed or queued.
    fn apply_removes(&mut self, ops: &[MapOp]) -> usize {
        let mut n = 0;
        for op in ops {
            if let MapOp::Remove(k) = op {
                self.remove_flow(k);
                n += 1;
            }
        }
        n
    }

    fn remove_flow(&mut self, key: &FlowKey) {
        match self.store.remove(key) {
            Ok(true) => {}
            Ok(false) => warn!(flow = %FlowDisplay(key), "flow was already gone from the map"),
            Err(e) => {
                error!(flow = %FlowDisplay(key), "removing flow failed, will retry: {e}");
                if !self.pending_removals.contains(key) {
                    self.pending_removals.push(*key);
                }
            }
        }
    }
}

fn last_seen<S: FlowStore>(store: &S, key: &FlowKey) -> Option<u64> {
    match store.get(key) {
        Ok(Some(s)) if s.last_seen_ns != 0 => Some(s.last_seen_ns),
        Ok(_) => None,
        Err(e) => {
            warn!(flow = %FlowDisplay(key), "reading flow stats failed: {e}");
            None
        }
    }
}

/// `src -> dst` for logs.
struct FlowDisplay<'a>(&'a FlowKey);

impl std::fmt::Display for FlowDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match flow_endpoints(self.0) {
            Some((s, d)) => write!(f, "{s} -> {d}"),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// An in-memory [`FlowStore`] for tests: a hash map with a capacity, a switch
/// to make inserts or removes fail, and settable counters.
#[derive(Debug, Default)]
pub struct FakeStore {
    pub flows: std::collections::HashMap<FlowKey, FlowStats>,
    pub capacity: usize,
    /// Fail the insert after this many more successful inserts.
    pub fail_inserts_after: Option<usize>,
    pub fail_removes: bool,
    pub counters: [Counter; Reason::COUNT as usize],
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
        Ok(Inserted::New)
    }

    fn remove(&mut self, key: &FlowKey) -> Result<bool, StoreError> {
        if self.fail_removes {
            return Err(StoreError::Other {
                op: "remove",
                message: "injected failure".into(),
            });
        }
        Ok(self.flows.remove(key).is_some())
    }

    fn get(&self, key: &FlowKey) -> Result<Option<FlowStats>, StoreError> {
        Ok(self.flows.get(key).copied())
    }

    fn counters(&self) -> Result<[Counter; Reason::COUNT as usize], StoreError> {
        Ok(self.counters)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::{addr::flow_key, error::RemoteKind};

    const S: u64 = NS_PER_SEC;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    fn params(a: &str, b: &str, rtcp: bool, idle: Option<u64>) -> OpenParams {
        OpenParams {
            a: ep(a),
            b: ep(b),
            rtcp,
            idle_secs: idle,
            owner: None,
        }
    }

    struct Fixture {
        now: Arc<AtomicU64>,
        config: ControllerConfig,
    }

    fn fixture(capacity: usize, default_idle: u64) -> Fixture {
        let now = Arc::new(AtomicU64::new(1_000 * S));
        let clock_now = now.clone();
        let mut config = ControllerConfig::new(capacity, default_idle);
        config.clock = Arc::new(move || clock_now.load(Ordering::SeqCst));
        config.tick = Duration::from_millis(10);
        Fixture { now, config }
    }

    /// Map and table agree: the store holds exactly the table's flows.
    fn assert_consistent(c: &Controller<FakeStore>) {
        let mut want: Vec<FlowKey> = c.table().iter().flat_map(|p| p.flows.clone()).collect();
        want.sort();
        want.dedup();
        let mut have: Vec<FlowKey> = c.store().flows.keys().copied().collect();
        have.sort();
        assert_eq!(have, want);
    }

    #[tokio::test]
    async fn open_list_expire_close_through_the_task() {
        let fx = fixture(64, 30);
        let (handle, task) = spawn(FakeStore::new(64), fx.config.clone());

        let r = handle
            .open(params("192.0.2.1:4000", "198.51.100.2:10000", false, None))
            .await
            .unwrap();
        assert_eq!(
            (r.id, r.outcome, r.flows, r.idle_timeout_secs),
            (1, crate::table::OpenOutcome::Opened, 2, 30)
        );
        let r2 = handle
            .open(params(
                "[2001:db8::1]:4000",
                "[2001:db8::2]:10000",
                true,
                Some(5),
            ))
            .await
            .unwrap();
        assert_eq!((r2.id, r2.flows), (2, 4));

        let list = handle.list().await.unwrap();
        assert_eq!(list.pinholes.len(), 2);
        assert_eq!(list.pinholes[0].a.to_string(), "192.0.2.1:4000");
        assert_eq!(list.pinholes[0].flows[0].src.to_string(), "192.0.2.1:4000");
        assert_eq!(
            list.pinholes[0].flows[0].dst.to_string(),
            "198.51.100.2:10000"
        );
        assert_eq!(list.pinholes[1].flows.len(), 4);
        let stats = handle.stats().await.unwrap();
        assert_eq!(
            (stats.flows.used, stats.flows.capacity, stats.pinholes),
            (6, 64, 2)
        );
        assert_eq!(stats.counters.len(), Reason::COUNT as usize);
        assert!(stats.counters.contains_key("ext_header_limit"));

        // 5 s later the IPv6 pinhole (idle 5) expires on a tick; the other stays.
        fx.now.fetch_add(5 * S, Ordering::SeqCst);
        let mut waited = 0;
        loop {
            let s = handle.stats().await.unwrap();
            if s.expired == 1 {
                assert_eq!((s.pinholes, s.flows.used), (1, 2));
                break;
            }
            waited += 1;
            assert!(waited < 500, "expiry tick never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let c = handle
            .close(ep("198.51.100.2:10000"), ep("192.0.2.1:4000"))
            .await
            .unwrap();
        assert_eq!((c.id, c.flows_removed), (1, 2));
        let err = handle
            .close(ep("198.51.100.2:10000"), ep("192.0.2.1:4000"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), RemoteKind::Runtime);
        assert!(handle.list().await.unwrap().pinholes.is_empty());

        drop(handle);
        task.await.unwrap();
    }

    #[test]
    fn bad_requests_are_classified() {
        let fx = fixture(64, 30);
        let mut c = Controller::new(FakeStore::new(64), fx.config);
        let cases = [
            params("192.0.2.1:4000", "[2001:db8::2]:10000", false, None),
            params("192.0.2.1:4000", "192.0.2.1:4000", false, None),
            params("192.0.2.1:65535", "198.51.100.2:10000", true, None),
        ];
        for p in cases {
            let err = c.open(p.clone()).unwrap_err();
            assert_eq!(err.kind(), RemoteKind::BadRequest, "{p:?}: {err}");
        }
        let mut long = params("192.0.2.1:4000", "198.51.100.2:10000", false, None);
        long.owner = Some("x".repeat(MAX_OWNER_LEN + 1));
        assert_eq!(c.open(long).unwrap_err().kind(), RemoteKind::BadRequest);
        assert!(c.table().is_empty());
        assert_consistent(&c);
    }

    #[test]
    fn full_table_is_refused_loudly_and_counted() {
        let fx = fixture(2, 30);
        let mut c = Controller::new(FakeStore::new(2), fx.config);
        c.open(params("192.0.2.1:4000", "198.51.100.2:10000", false, None))
            .unwrap();
        let err = c
            .open(params("192.0.2.1:4002", "198.51.100.2:10002", false, None))
            .unwrap_err();
        assert!(
            matches!(
                err,
                CommandError::Table(TableError::Full {
                    needed: 2,
                    free: 0,
                    capacity: 2
                })
            ),
            "{err}"
        );
        assert_eq!(c.stats().unwrap().rejected_full, 1);
        // The first pinhole is untouched.
        assert_eq!(c.list().unwrap().pinholes.len(), 1);
        assert_consistent(&c);
    }

    #[test]
    fn failed_insert_rolls_back_the_open() {
        let fx = fixture(64, 30);
        let mut store = FakeStore::new(64);
        // The 3rd insert (first RTCP flow) fails.
        store.fail_inserts_after = Some(2);
        let mut c = Controller::new(store, fx.config);
        let err = c
            .open(params("192.0.2.1:4000", "198.51.100.2:10000", true, None))
            .unwrap_err();
        assert!(matches!(err, CommandError::Store(_)), "{err}");
        assert!(c.table().is_empty());
        assert!(
            c.store().flows.is_empty(),
            "inserted flows were removed again"
        );

        // A failure while upgrading an existing pinhole leaves it as it was.
        c.store.fail_inserts_after = Some(2);
        c.open(params("192.0.2.1:4000", "198.51.100.2:10000", false, None))
            .unwrap();
        let err = c
            .open(params("192.0.2.1:4000", "198.51.100.2:10000", true, None))
            .unwrap_err();
        assert!(matches!(err, CommandError::Store(_)));
        let p = c.table().iter().next().unwrap();
        assert!(!p.pair.rtcp());
        assert_eq!(c.store().flows.len(), 2);
        assert_consistent(&c);
    }

    #[test]
    fn kernel_map_full_is_an_error_not_a_panic() {
        // The table allows 4 flows but the store only holds 3.
        let fx = fixture(4, 30);
        let mut c = Controller::new(FakeStore::new(3), fx.config);
        let err = c
            .open(params("192.0.2.1:4000", "198.51.100.2:10000", true, None))
            .unwrap_err();
        assert!(
            matches!(err, CommandError::Store(StoreError::MapFull)),
            "{err}"
        );
        assert!(c.table().is_empty());
        assert_consistent(&c);
    }

    #[test]
    fn failed_removals_are_retried_on_tick() {
        let fx = fixture(64, 30);
        let mut c = Controller::new(FakeStore::new(64), fx.config);
        c.open(params("192.0.2.1:4000", "198.51.100.2:10000", false, None))
            .unwrap();
        c.store.fail_removes = true;
        c.close(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"))
            .unwrap();
        assert_eq!(c.store().flows.len(), 2, "removal failed");
        c.tick();
        assert_eq!(c.store().flows.len(), 2, "still failing");
        c.store.fail_removes = false;
        c.tick();
        assert!(c.store().flows.is_empty(), "retried on tick");
        assert!(c.pending_removals.is_empty());

        // A pending flow that is reopened before the retry is kept.
        c.open(params("192.0.2.1:4000", "198.51.100.2:10000", false, None))
            .unwrap();
        c.store.fail_removes = true;
        c.close(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"))
            .unwrap();
        c.store.fail_removes = false;
        c.open(params("192.0.2.1:4000", "198.51.100.2:10000", false, None))
            .unwrap();
        c.tick();
        assert_eq!(c.store().flows.len(), 2);
        assert_consistent(&c);
    }

    #[test]
    fn traffic_keeps_a_pinhole_alive_and_shows_in_list() {
        let fx = fixture(64, 10);
        let mut c = Controller::new(FakeStore::new(64), fx.config);
        c.open(params("192.0.2.1:4000", "198.51.100.2:10000", false, None))
            .unwrap();
        let t0 = fx.now.load(Ordering::SeqCst);
        // Traffic A->B at t0+8.
        let k = flow_key(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"));
        *c.store.flows.get_mut(&k).unwrap() = FlowStats {
            packets: 3,
            bytes: 300,
            last_seen_ns: t0 + 8 * S,
        };
        fx.now.store(t0 + 12 * S, Ordering::SeqCst);
        c.tick();
        assert_eq!(c.table().len(), 1, "traffic at +8 s keeps it open at +12 s");
        let l = c.list().unwrap();
        let p = &l.pinholes[0];
        assert_eq!(
            (p.packets, p.bytes, p.idle_secs, p.age_secs),
            (3, 300, 4, 12)
        );
        assert_eq!((p.flows[0].packets, p.flows[1].packets), (3, 0));
        fx.now.store(t0 + 18 * S, Ordering::SeqCst);
        c.tick();
        assert!(c.table().is_empty());
        assert_eq!(c.stats().unwrap().expired, 1);
        assert_consistent(&c);
    }

    #[tokio::test]
    async fn stopped_controller_is_reported() {
        let fx = fixture(4, 30);
        let (handle, task) = spawn(FakeStore::new(4), fx.config);
        task.abort();
        let _ = task.await;
        let err = handle.list().await.unwrap_err();
        assert!(matches!(err, CommandError::Stopped));
    }
}
