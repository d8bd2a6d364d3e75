//! The controller: one task that owns the [`PinholeTable`], the flow store and
//! the call state, so table, map and calls change together and in one order.
//!
//! Everything else talks to it through a bounded channel of [`Command`]s, each
//! with a oneshot reply: the control socket, the signaling queue reader
//! (which waits for each packet's pinholes to be in the map before it lets
//! the packet go on), the ng listener (rtpengine's protocol, for SIP
//! proxies) and the metrics endpoint (which refreshes its numbers before
//! each scrape). A periodic tick expires idle pinholes; call timers (BYE
//! grace, delete delays, lifetimes) run at their deadline.

pub mod foreign;
mod latching;
pub mod report;
pub mod state_file;
pub mod table;

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use pinhole_common::{
    Counter, FlowKey, FlowStats, LatchValue, Reason, FAMILY_V4, FAMILY_V6, IPPROTO_UDP,
};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
    time::{Instant, MissedTickBehavior},
};
use tracing::{debug, error, info, warn};

use crate::{
    addr::AddrError,
    addr::{flow_endpoints, flow_key, Endpoint, Pair},
    calls::{CloseCause, Counters as CallCounters, Intent, Owner, Refusal},
    capture::{latency::Histogram, nfqueue::Sink, PacketError, SignalingPacket},
    clock::RateLimit,
    controller::report::{
        CallEntry, CallsReply, CloseReply, CounterInfo, FlowInfo, FlowUsage, InterfaceStatus,
        LatencyStats, ListReply, OpenParams, OpenReply, PinholeInfo, RefusedStats, SignalingStats,
        StatsReply, StreamEntry, MAX_OWNER_LEN,
    },
    controller::table::TableError,
    controller::table::{
        owner_name, MapOp, OpenOutcome, OpenRequest, Pinhole, PinholeId, PinholeTable,
    },
    datapath::error::StoreError,
    datapath::latch::{LatchKey, LatchMap, Latched},
    datapath::maps::{CounterMap, FlowMap, Inserted},
    feed::{Feed, FeedConfig},
    metrics::{Metrics, SignalingCount, Snapshot},
    ng::{call_stats, ApplyFailure, CallsBackend, NgConfig, NgService, Pinholes, Totals},
};

/// Why the controller refused or failed a command.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Addr(#[from] AddrError),
    #[error("owner tag longer than {max} bytes")]
    OwnerTooLong { max: usize },
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("HA is not enabled (--ha-redis) or its replicator stopped")]
    HaOff,
    #[error("owner tags starting with `ha:` are reserved for HA")]
    ReservedOwner,
    #[error("the controller has stopped")]
    Stopped,
}

mod persist;
mod reports;

pub use persist::RestoreReport;
pub use reports::{CallsJob, CopiedStats, FlowStatsMap, ListJob, StatsReader};

const NS_PER_SEC: u64 = 1_000_000_000;
/// Commands waiting for the controller before senders have to wait.
const CHANNEL_DEPTH: usize = 256;
/// Due pinholes one expiry step handles at most. Each costs its flows'
/// `last_seen` lookups or removals (syscalls), a log line and telling its
/// call; the bound keeps a mass expiry from holding signaling up.
pub const EXPIRY_BUDGET: usize = 128;
/// Waiting commands handled before each further step of a mass expiry.
const EXPIRY_YIELD_COMMANDS: usize = CHANNEL_DEPTH;
/// Longest a call-timer sleep is scheduled ahead (the periodic tick runs the
/// call timers too, so nothing is late by more than that anyway).
const MAX_TIMER_SLEEP: Duration = Duration::from_secs(3600);
/// Prefix of the owner tags of calls driven over the ng protocol.
pub const NG_OWNER_PREFIX: &str = "ng:";
/// Prefix of the owner tags of RTSP sessions.
const RTSP_OWNER_PREFIX: &str = "rtsp:";

pub use latching::{LatchCounters, PreAnswerCounters};

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
    /// thread ([`reports`]); it never changes the store.
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
    /// Ports, call policy and limits of the signaling feed.
    pub feed: FeedConfig,
    /// Whether signaling is observed (`inline`) or not (`off`); for `stats`.
    pub signaling_inline: bool,
    /// The ng service's settings when `--ng-listen` is on.
    pub ng: Option<NgConfig>,
    /// The registry `--metrics-listen` serves, fed by the controller.
    pub metrics: Option<Arc<Metrics>>,
    /// Writes the state file (`--state-file`), kept in step with the
    /// table and the calls.
    pub state_writer: Option<Arc<crate::controller::state_file::StateWriter>>,
    /// The attached interfaces' state, published by the link tracker
    /// ([`crate::datapath::links`]); for `stats` and the metrics.
    pub interfaces: Option<watch::Receiver<Vec<InterfaceStatus>>>,
    /// The signaling queue reader's health, with inline signaling.
    pub queue_health: Option<Arc<crate::capture::nfqueue::Health>>,
    /// The HA replicator's side (`--ha-redis`), see [`foreign`].
    pub ha: Option<Arc<foreign::HaLink>>,
}

impl ControllerConfig {
    pub fn new(capacity: usize, default_idle_secs: u64) -> Self {
        ControllerConfig {
            capacity,
            default_idle_secs,
            tick: Duration::from_secs(1),
            clock: Arc::new(crate::clock::monotonic_ns),
            feed: FeedConfig::default(),
            signaling_inline: false,
            ng: None,
            metrics: None,
            state_writer: None,
            interfaces: None,
            queue_health: None,
            ha: None,
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
    Calls {
        reply: Reply<CallsReply>,
    },
    /// A queued signaling packet (or why it could not be decoded); `done`
    /// fires once its pinholes are applied.
    Signaling {
        packet: Result<SignalingPacket, PacketError>,
        done: oneshot::Sender<()>,
    },
    /// An ng datagram from `peer`, received at `received_at` (monotonic
    /// ns); the reply to send back, if any.
    Ng {
        peer: SocketAddr,
        datagram: Vec<u8>,
        received_at: u64,
        reply: oneshot::Sender<Option<Vec<u8>>>,
    },
    /// Stores the current numbers in the metrics registry.
    RefreshMetrics {
        done: oneshot::Sender<()>,
    },
    /// Hands the current state to the state writer now; the reply is the
    /// snapshot's sequence number for [`crate::controller::state_file::StateWriter::wait`].
    SaveState {
        reply: oneshot::Sender<u64>,
    },
    /// Latches the XDP program made (read from its event ring buffer), in
    /// order; `done` fires once they are adopted.
    Latched {
        events: Vec<Latched>,
        done: oneshot::Sender<()>,
    },
    /// A change from the HA replicator, or `pinhole ha promote`.
    Ha {
        op: foreign::HaOp,
        reply: Reply<foreign::HaReply>,
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

    pub async fn calls(&self) -> Result<CallsReply, CommandError> {
        self.call(|reply| Command::Calls { reply }).await
    }

    /// Hands a signaling packet over and waits until it is applied.
    pub async fn signaling(
        &self,
        packet: Result<SignalingPacket, PacketError>,
    ) -> Result<(), CommandError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::Signaling { packet, done })
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)
    }

    /// Runs one ng request; the reply datagram, if it gets one.
    pub async fn ng(
        &self,
        peer: SocketAddr,
        datagram: Vec<u8>,
        received_at: u64,
    ) -> Result<Option<Vec<u8>>, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Ng {
                peer,
                datagram,
                received_at,
                reply,
            })
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)
    }

    /// Has the controller store its current numbers in the metrics registry.
    pub async fn refresh_metrics(&self) -> Result<(), CommandError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::RefreshMetrics { done })
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)
    }

    /// Has the controller save its state now (see [`Command::SaveState`]).
    pub async fn save_state(&self) -> Result<u64, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::SaveState { reply })
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)
    }

    /// Hands the XDP program's latch reports over and waits until they are
    /// applied.
    pub async fn latched(&self, events: Vec<Latched>) -> Result<(), CommandError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::Latched { events, done })
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)
    }

    /// Applies the latch reports arriving on `events` (from the datapath's
    /// ring reader) one batch at a time, each applied before the next is
    /// taken, until the sender or the controller is gone.
    pub fn forward_latched(self, mut events: mpsc::Receiver<Vec<Latched>>) -> JoinHandle<()> {
        tokio::spawn(async move {
            while let Some(batch) = events.recv().await {
                if self.latched(batch).await.is_err() {
                    return;
                }
            }
        })
    }

    /// A [`Sink`] for the queue reader thread (blocking, not for async code).
    pub fn sink(&self) -> QueueSink {
        QueueSink {
            tx: self.tx.clone(),
        }
    }
}

/// Delivers packets from the queue reader thread to the controller.
pub struct QueueSink {
    tx: mpsc::Sender<Command>,
}

impl Sink for QueueSink {
    fn deliver(&mut self, packet: Result<SignalingPacket, PacketError>) -> bool {
        let (done, rx) = oneshot::channel();
        if self
            .tx
            .blocking_send(Command::Signaling { packet, done })
            .is_err()
        {
            return false;
        }
        rx.blocking_recv().is_ok()
    }
}

/// Starts the controller task. It runs until every handle is dropped.
pub fn spawn<S: FlowStore>(
    store: S,
    config: ControllerConfig,
) -> (ControllerHandle, JoinHandle<()>) {
    start(Controller::new(store, config))
}

/// Starts the task of a controller built (and restored) beforehand.
pub fn start<S: FlowStore>(controller: Controller<S>) -> (ControllerHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let task = tokio::spawn(controller.run(rx));
    (ControllerHandle { tx }, task)
}

/// Counters of applying signaling intents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyCounters {
    /// Signaled opens refused because the flow table or map was full.
    pub map_full: u64,
    /// Signaled opens or closes that failed otherwise (bad endpoint, map
    /// error).
    pub failed: u64,
}

/// Who handed the intents over: observed signaling, or a proxy over the ng
/// protocol (whose pinholes carry `ng:` owner tags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Observed,
    Ng,
}

/// What applying a batch of intents did.
#[derive(Debug, Default)]
struct Applied {
    opened: usize,
    /// Why opens failed, one entry per failed open.
    failures: Vec<String>,
    /// Of those, failures because the table or the flow map is full.
    full: usize,
}

/// The state the controller task owns.
pub struct Controller<S> {
    core: Core<S>,
    feed: Feed,
    latency: Histogram,
    ng: Option<NgService>,
    metrics: Option<Arc<Metrics>>,
    persist: Option<persist::Persist>,
    /// The last expiry step ran out of budget with pinholes still due.
    expiry_backlog: bool,
    /// The longest step of the task's loop so far.
    longest_step: Duration,
}

/// The pinhole table, the flow store and what keeps them in step.
struct Core<S> {
    table: PinholeTable,
    store: S,
    config: ControllerConfig,
    /// Flows the table dropped but the store failed to remove; retried every
    /// tick so a closed pinhole cannot stay open in the kernel.
    pending_removals: Vec<FlowKey>,
    applied: ApplyCounters,
    full_log: RateLimit,
    fail_log: RateLimit,
    /// Half-open pinholes (bounded latching).
    latches: latching::Latches,
}

/// The owner tag of a call's pinholes: `sip:…`/`rtsp:…` for observed
/// signaling, `ng:<call-id>;from-tag=…` for calls a proxy drives.
fn owner_tag(owner: &Owner, source: Source) -> String {
    match (owner, source) {
        (Owner::Sip(k), Source::Ng) => {
            format!("{NG_OWNER_PREFIX}{};from-tag={}", k.call_id, k.caller_tag)
        }
        _ => owner.to_string(),
    }
}

impl<S: FlowStore> Controller<S> {
    pub fn new(store: S, config: ControllerConfig) -> Self {
        Controller {
            feed: Feed::new(config.feed.clone()),
            latency: Histogram::default(),
            ng: config.ng.clone().map(NgService::new),
            metrics: config.metrics.clone(),
            persist: config.state_writer.clone().map(persist::Persist::new),
            expiry_backlog: false,
            longest_step: Duration::ZERO,
            core: Core {
                table: PinholeTable::new(config.capacity),
                store,
                config,
                pending_removals: Vec::new(),
                applied: ApplyCounters::default(),
                full_log: RateLimit::default(),
                fail_log: RateLimit::default(),
                latches: latching::Latches::default(),
            },
        }
    }

    pub fn table(&self) -> &PinholeTable {
        &self.core.table
    }

    pub fn store(&self) -> &S {
        &self.core.store
    }

    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    pub fn applied(&self) -> &ApplyCounters {
        &self.core.applied
    }

    pub fn latency(&self) -> &Histogram {
        &self.latency
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(self.core.config.tick);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The deadline the timer last fired for: if running the timers did
        // not move it, leave it to the periodic tick instead of spinning.
        let mut fired: Option<u64> = None;
        loop {
            let deadline = self.feed.next_deadline().filter(|d| fired != Some(*d));
            let timer = deadline.map(|d| self.instant_of(d));
            let save = self.persist.as_ref().and_then(|p| p.due());
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.timed(|c| c.handle(cmd)),
                    None => break,
                },
                _ = tick.tick() => {
                    fired = None;
                    self.timed(Self::tick);
                }
                _ = tokio::time::sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => {
                    fired = deadline;
                    self.timed(Self::call_timers);
                }
                _ = tokio::time::sleep_until(save.unwrap_or_else(Instant::now)), if save.is_some() => {
                    self.timed(|c| {
                        c.save_state();
                    });
                }
                // The rest of a mass expiry, one budget per step, after the
                // commands that are waiting: signaling is never held up by
                // more than one step.
                _ = std::future::ready(()), if self.expiry_backlog => {
                    for _ in 0..EXPIRY_YIELD_COMMANDS {
                        match rx.try_recv() {
                            Ok(cmd) => self.timed(|c| c.handle(cmd)),
                            Err(_) => break,
                        }
                    }
                    self.timed(Self::expire_step);
                }
            }
            self.note_changes();
            self.note_ha();
        }
        debug!("controller stopped");
    }

    /// Runs one step of the task (a command, a tick, timers, a save, an
    /// expiry step) and keeps the longest one: nothing else runs on the
    /// task meanwhile, so it bounds how long a command can wait behind
    /// another.
    fn timed(&mut self, step: impl FnOnce(&mut Self)) {
        let started = std::time::Instant::now();
        step(self);
        self.longest_step = self.longest_step.max(started.elapsed());
    }

    /// The longest step the task took since start (see `stats`).
    pub fn longest_step(&self) -> Duration {
        self.longest_step
    }

    /// The runtime instant of a deadline on the controller's clock.
    fn instant_of(&self, deadline_ns: u64) -> Instant {
        let delay = Duration::from_nanos(deadline_ns.saturating_sub(self.now()));
        Instant::now() + delay.min(MAX_TIMER_SLEEP)
    }

    fn now(&self) -> u64 {
        self.core.now()
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
            // Built off this task from a snapshot (see `reports`).
            Command::List { reply } => match self.list_job() {
                Ok(job) => reports::off_task(move || job.build(), reply),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
            Command::Calls { reply } => match self.calls_job() {
                Ok(job) => reports::off_task(move || job.build(), reply),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Signaling { packet, done } => {
                self.on_signaling(packet);
                let _ = done.send(());
            }
            Command::Ng {
                peer,
                datagram,
                received_at,
                reply,
            } => {
                let _ = reply.send(self.on_ng(peer, &datagram, received_at));
            }
            Command::RefreshMetrics { done } => {
                self.refresh_metrics();
                let _ = done.send(());
            }
            Command::SaveState { reply } => {
                let _ = reply.send(self.save_state());
            }
            Command::Latched { events, done } => {
                self.on_latched(events);
                let _ = done.send(());
            }
            Command::Ha { op, reply } => self.on_ha(op, reply),
        }
    }

    /// Adopts the pairs the XDP program latched (or counts why it could
    /// not).
    pub fn on_latched(&mut self, events: Vec<Latched>) {
        for ev in events {
            self.core.on_latched(ev);
        }
    }

    /// Counters of bounded latching.
    pub fn latch_counters(&self) -> &LatchCounters {
        self.core.latches.counters()
    }

    /// Opens (or refreshes) a pinhole for the operator (or the owner the
    /// control request names).
    pub fn open(&mut self, params: OpenParams) -> Result<OpenReply, CommandError> {
        self.core.open(params)
    }

    /// Force-closes the pinhole joining `a` and `b`, whoever holds it (the
    /// operator overrides signaling; a call that later ends finds it gone).
    pub fn close(&mut self, a: Endpoint, b: Endpoint) -> Result<CloseReply, CommandError> {
        self.core.close(a, b)
    }

    /// Observes one signaling packet and applies what it implies; records
    /// the setup latency when it opened something.
    pub fn on_signaling(&mut self, packet: Result<SignalingPacket, PacketError>) {
        let now = self.now();
        match packet {
            Ok(pkt) => {
                let intents = self.feed.on_packet(&pkt, now);
                if self.core.apply(intents, Source::Observed).opened > 0 {
                    self.record_latency(pkt.received_at);
                }
            }
            Err(e) => self.feed.on_undecodable(&e, now),
        }
    }

    /// Answers one ng datagram (`None`: no reply, or ng is off). Offers,
    /// answers and deletes change the same call state and pinholes as
    /// observed signaling; the setup latency counts from `received_at`.
    pub fn on_ng(
        &mut self,
        peer: SocketAddr,
        datagram: &[u8],
        received_at: u64,
    ) -> Option<Vec<u8>> {
        let ng = self.ng.as_mut()?;
        let now = self.core.now();
        let mut signaling = self.feed.counters().signaling_counts();
        signaling.extend(ng.counters().signaling_counts());
        let refusals = refusals(self.feed.calls().counters(), &self.core.applied);
        let mut pinholes = NgPinholes {
            core: &mut self.core,
            opened: 0,
            signaling,
            refusals,
        };
        let mut backend = CallsBackend {
            calls: self.feed.calls_mut(),
            pinholes: &mut pinholes,
            now,
        };
        let reply = ng.handle(&mut backend, peer, datagram, now);
        if pinholes.opened > 0 {
            self.record_latency(received_at);
        }
        reply
    }

    fn record_latency(&mut self, received_at: u64) {
        let ns = self.now().saturating_sub(received_at);
        self.latency.record(ns);
        if let Some(m) = &self.metrics {
            m.observe_setup_latency(Duration::from_nanos(ns));
        }
    }

    /// Runs the call timers that are due. RTSP sessions see their media's
    /// last packets (a client that only sends RTCP stays up).
    pub fn call_timers(&mut self) {
        let now = self.now();
        let core = &self.core;
        let intents = self
            .feed
            .tick_with(now, &mut |owner, a, b| core.signaled_last_seen(owner, a, b));
        self.core.apply(intents, Source::Observed);
    }

    /// Expires idle pinholes (telling their calls), runs call timers,
    /// forgets idle TCP streams and retries failed removals.
    pub fn tick(&mut self) {
        self.expire_step();
        self.call_timers();
        self.core.expire_latches();
        self.core.retry_removals();
    }

    /// Expires at most [`EXPIRY_BUDGET`] due pinholes and tells their
    /// calls; [`expiry_backlog`](Self::expiry_backlog) says whether more
    /// are due. A mass expiry is thus spread over several steps with the
    /// commands that came meanwhile handled in between (see `run`).
    pub fn expire_step(&mut self) {
        let (told, more) = self.core.expire();
        self.expiry_backlog = more;
        for (owner, a, b) in told {
            if !self.feed.calls_mut().on_pair_expired(&owner, a, b) {
                debug!(%owner, %a, %b, "expired pinhole of no tracked call");
            }
        }
    }

    /// Whether the last expiry step left due pinholes.
    pub fn expiry_backlog(&self) -> bool {
        self.expiry_backlog
    }

    /// The pinholes with their traffic, built here (the command builds
    /// it off the task: [`list_job`](Self::list_job)).
    pub fn list(&self) -> Result<ListReply, CommandError> {
        self.list_job()?.build()
    }

    /// Verdict counters, table usage and signaling counters.
    pub fn stats(&self) -> Result<StatsReply, CommandError> {
        let totals = self.core.store.counters()?;
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
        let table = &self.core.table;
        Ok(StatsReply {
            counters,
            flows: FlowUsage {
                used: table.flows_used(),
                capacity: table.capacity(),
            },
            pinholes: table.len(),
            rejected_full: table.rejected_full(),
            expired: table.expired(),
            signaling: self.signaling_stats(),
            interfaces: self.interfaces(),
            longest_step_us: u64::try_from(self.longest_step.as_micros()).unwrap_or(u64::MAX),
            ha: self.core.config.ha.as_ref().map(|l| l.status()),
        })
    }

    /// The attached interfaces' state as last published.
    fn interfaces(&self) -> Vec<InterfaceStatus> {
        self.core
            .config
            .interfaces
            .as_ref()
            .map(|rx| rx.borrow().clone())
            .unwrap_or_default()
    }

    fn signaling_stats(&self) -> SignalingStats {
        let feed = self.feed.counters();
        let calls = self.feed.calls();
        let cc = calls.counters();
        let us = |ns: Option<u64>| ns.map_or(0.0, |v| (v as f64 / 100.0).round() / 10.0);
        let ng = self.ng.as_ref().map(|ng| {
            let c = ng.counters();
            serde_json::json!({
                "ok": c.ok.iter().sum::<u64>(),
                "errors": c.errors.iter().sum::<u64>(),
                "invalid": c.invalid,
                "retransmissions": c.retransmissions,
                "no_cookie": c.no_cookie,
                "denied": c.denied,
            })
        });
        SignalingStats {
            mode: if self.core.config.signaling_inline {
                "inline"
            } else {
                "off"
            }
            .into(),
            packets: feed.packets,
            sip_messages: feed.sip_messages,
            rtsp_messages: feed.rtsp_messages,
            parse_errors: feed.parse_errors,
            calls_active: (calls.active_calls() + calls.active_sessions()) as u64,
            calls_opened: cc.calls_opened + cc.sessions_opened,
            calls_closed: cc.calls_closed.iter().sum(),
            refused: RefusedStats {
                untrusted: cc.refused(Refusal::UntrustedSignaling),
                third_party_media: cc.refused(Refusal::ThirdPartyMedia),
                call_cap: cc.refused(Refusal::PerCallCap),
                peer_cap: cc.refused(Refusal::PerPeerCap),
                map_full: self.core.applied.map_full,
            },
            setup_latency_us: LatencyStats {
                count: self.latency.count(),
                p50: us(self.latency.quantile(0.5)),
                p99: us(self.latency.quantile(0.99)),
                max: us(Some(self.latency.max())),
            },
            tcp_streams: self.feed.tcp_streams() as u64,
            detail: serde_json::json!({
                "calls": cc,
                "streams_refused": feed.streams_refused,
                "ignored_packets": feed.ignored,
                "apply_failed": self.core.applied.failed,
                "latching": self.core.latch_stats(),
                "ng": ng,
            }),
            queue: self.queue_stats(),
        }
    }

    /// The signaling queue's numbers; the kernel's are read from /proc of
    /// this namespace (a few hundred bytes).
    fn queue_stats(&self) -> Option<crate::controller::report::QueueStats> {
        let health = self.core.config.queue_health.as_ref()?;
        let q = health.queue_num();
        let kernel = match crate::capture::nfqueue::kernel_stats(q) {
            Ok(k) => k,
            Err(e) => {
                tracing::debug!("reading {}: {e}", crate::capture::nfqueue::PROC_PATH);
                None
            }
        };
        Some(crate::controller::report::QueueStats {
            queue_num: q,
            reader_restarts: health.restarts(),
            kernel,
        })
    }

    /// Everything the metrics endpoint reports, as of now.
    pub fn snapshot(&self) -> Snapshot {
        let mut signaling = self.feed.counters().signaling_counts();
        if let Some(ng) = &self.ng {
            signaling.extend(ng.counters().signaling_counts());
        }
        let calls = self.feed.calls();
        Snapshot {
            calls_active: calls.active_calls() as u64,
            rtsp_sessions_active: calls.active_sessions() as u64,
            queue: self.queue_stats(),
            interfaces: self
                .interfaces()
                .into_iter()
                .map(|i| (i.name, i.mode, i.state == "attached"))
                .collect(),
            ..self
                .core
                .snapshot(signaling, refusals(calls.counters(), &self.core.applied))
        }
    }

    /// Stores [`snapshot`](Self::snapshot) in the metrics registry.
    pub fn refresh_metrics(&self) {
        if let Some(m) = &self.metrics {
            m.update_from(self.snapshot());
        }
    }

    /// The calls (SIP, ng, RTSP) with their streams and traffic, sorted by
    /// kind, call id and tag; built here (the command builds it off the
    /// task: [`calls_job`](Self::calls_job)).
    pub fn calls(&self) -> Result<CallsReply, CommandError> {
        self.calls_job()?.build()
    }
}

fn stream_entry(
    index: usize,
    kind: &str,
    dialog: Option<String>,
    (a, b): (SocketAddr, SocketAddr),
    (a_to_b, b_to_a): (Totals, Totals),
    state: &str,
) -> StreamEntry {
    let info = |t: Totals| CounterInfo {
        packets: t.packets,
        bytes: t.bytes,
    };
    StreamEntry {
        index,
        kind: kind.into(),
        dialog,
        a,
        b,
        packets: a_to_b.packets.saturating_add(b_to_a.packets),
        bytes: a_to_b.bytes.saturating_add(b_to_a.bytes),
        a_to_b: info(a_to_b),
        b_to_a: info(b_to_a),
        state: state.into(),
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "split with the controller in phase B"
)]
fn call_entry(
    kind: &str,
    call_id: String,
    tag: String,
    owner: String,
    state: &str,
    age_secs: u64,
    last_signal_secs: Option<u64>,
    streams: Vec<StreamEntry>,
) -> CallEntry {
    CallEntry {
        kind: kind.into(),
        call_id,
        tag,
        owner,
        state: state.into(),
        age_secs,
        last_signal_secs,
        packets: streams.iter().map(|s| s.packets).sum(),
        bytes: streams.iter().map(|s| s.bytes).sum(),
        streams,
    }
}

/// Refusals by reason for metrics: the call layer's, and the map's.
fn refusals(calls: &CallCounters, applied: &ApplyCounters) -> Vec<(&'static str, u64)> {
    let mut v: Vec<(&'static str, u64)> = Refusal::ALL
        .iter()
        .map(|r| (r.name(), calls.refused(*r)))
        .collect();
    v.push(("map_full", applied.map_full));
    v
}

/// Whether an open failed for want of room in the table or the flow map.
fn is_full(e: &CommandError) -> bool {
    matches!(
        e,
        CommandError::Table(TableError::Full { .. })
            | CommandError::Store(StoreError::MapFull | StoreError::LatchMapFull)
    )
}

/// [`Pinholes`] for one ng request: the controller's table and map.
struct NgPinholes<'a, S> {
    core: &'a mut Core<S>,
    /// Pairs this request opened.
    opened: usize,
    /// For `statistics`: counters the request cannot borrow meanwhile.
    signaling: Vec<SignalingCount>,
    refusals: Vec<(&'static str, u64)>,
}

impl<S: FlowStore> Pinholes for NgPinholes<'_, S> {
    fn apply(&mut self, intents: Vec<Intent>) -> Result<(), ApplyFailure> {
        let r = self.core.apply(intents, Source::Ng);
        self.opened += r.opened;
        match r.failures.as_slice() {
            [] => Ok(()),
            [first, ..] => Err(ApplyFailure {
                full: r.full > 0,
                reason: format!(
                    "{} of {} media pairs not opened: {first}",
                    r.failures.len(),
                    r.failures.len() + r.opened
                ),
            }),
        }
    }

    fn free_flows(&self) -> usize {
        self.core.table.free()
    }

    fn flow_totals(&self, src: SocketAddr, dst: SocketAddr) -> Totals {
        self.core.flow_totals(src, dst)
    }

    fn snapshot(&self) -> Snapshot {
        self.core
            .snapshot(self.signaling.clone(), self.refusals.clone())
    }

    fn unix_secs(&self, mono_ns: u64) -> u64 {
        let ago = Duration::from_nanos(self.core.now().saturating_sub(mono_ns));
        SystemTime::now()
            .checked_sub(ago)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs())
    }
}

impl<S: FlowStore> Core<S> {
    fn now(&self) -> u64 {
        (self.config.clock)()
    }

    fn open(&mut self, params: OpenParams) -> Result<OpenReply, CommandError> {
        if params
            .owner
            .as_ref()
            .is_some_and(|o| o.len() > MAX_OWNER_LEN)
        {
            return Err(CommandError::OwnerTooLong { max: MAX_OWNER_LEN });
        }
        if params
            .owner
            .as_ref()
            .is_some_and(|o| o.starts_with(foreign::FOREIGN_TAG))
        {
            return Err(CommandError::ReservedOwner);
        }
        let pair = Pair::new(params.a, params.b, params.rtcp)?;
        let idle_timeout_secs = params.idle_secs.unwrap_or(self.config.default_idle_secs);
        let (id, outcome) = self.open_request(OpenRequest {
            pair,
            idle_timeout_secs,
            owner: params.owner,
        })?;
        let p = self.table.get(id).expect("just committed");
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

    /// Adds a claim to the table and the map together. When the store
    /// refuses an insert, the flows this open already inserted are removed
    /// again and the table is left unchanged.
    fn open_request(&mut self, req: OpenRequest) -> Result<(PinholeId, OpenOutcome), CommandError> {
        self.open_request_with(req, &[])
    }

    /// [`open_request`](Self::open_request) for a pair whose flows
    /// `installed` are in the map already (the XDP program latched them):
    /// finding them there is expected.
    fn open_request_with(
        &mut self,
        req: OpenRequest,
        installed: &[FlowKey],
    ) -> Result<(PinholeId, OpenOutcome), CommandError> {
        let pair = req.pair;
        let who = req.owner.clone();
        let now = self.now();
        let plan = match self.table.plan_open(req, now) {
            Ok(plan) => plan,
            Err(e) => {
                if let TableError::Full { .. } = e {
                    if let Some(n) = self.full_log.allow(now) {
                        warn!(a = %pair.a(), b = %pair.b(), rejected_total = self.table.rejected_full(), suppressed = n, "open refused: {e}");
                    }
                }
                return Err(e.into());
            }
        };

        // Flows this open put in the map (rolled back on failure), and the
        // flows it found there already (never rolled back: a flow the XDP
        // program latched whose report is not adopted yet, or one whose
        // removal is pending, is not this open's to delete).
        let mut inserted: Vec<FlowKey> = Vec::new();
        let mut found: Vec<FlowKey> = Vec::new();
        for op in &plan.ops {
            let MapOp::Insert(key) = op else { continue };
            match self.store.insert(key) {
                Ok(Inserted::New) => inserted.push(*key),
                Ok(Inserted::Existed) => {
                    if !self.pending_removals.contains(key) && !installed.contains(key) {
                        warn!(flow = %FlowDisplay(key), "flow was already in the map");
                    }
                    found.push(*key);
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
        self.pending_removals
            .retain(|k| !inserted.contains(k) && !found.contains(k));
        for k in &removes {
            self.remove_flow(k);
        }
        let p = self.table.get(id).expect("just committed");
        info!(
            id = %id, a = %p.pair.a(), b = %p.pair.b(), rtcp = p.pair.rtcp(),
            idle_timeout_secs = p.idle_timeout_secs, owners = p.claims.len(),
            "pinhole {} by {}", match outcome { OpenOutcome::Opened => "opened", OpenOutcome::Refreshed => "claimed" },
            owner_name(&who)
        );
        Ok((id, outcome))
    }

    /// Force-closes the pinhole joining `a` and `b`, whoever holds it (the
    /// operator overrides signaling; a call that later ends finds it gone).
    pub fn close(&mut self, a: Endpoint, b: Endpoint) -> Result<CloseReply, CommandError> {
        let (p, ops) = self.table.close(a, b)?;
        let removed = self.apply_removes(&ops);
        let owners: Vec<&str> = p.owner_names().collect();
        info!(id = %p.id, a = %p.pair.a(), b = %p.pair.b(), flows_removed = removed, owners = ?owners, "pinhole closed");
        Ok(CloseReply {
            id: p.id.0,
            a: p.pair.a(),
            b: p.pair.b(),
            rtcp: p.pair.rtcp(),
            flows_removed: removed,
        })
    }

    /// Executes intents from `source`.
    fn apply(&mut self, intents: Vec<Intent>, source: Source) -> Applied {
        let mut out = Applied::default();
        // The calls layer opens an answer's pairs before it closes the
        // provisional ones, so that a latched pair the answer confirms keeps
        // its flows. A provisional pair that never latched holds only a
        // reservation in the table: release those first, so that the
        // answer can use their room when the table is full to the last flow.
        let (first, rest): (Vec<Intent>, Vec<Intent>) = intents.into_iter().partition(|i| {
            matches!(i, Intent::Close { owner, a, b, .. }
            if self.is_waiting_pre_answer(&latching::ClaimKey {
                owner: owner_tag(owner, Source::Observed),
                a: *a,
                b: *b,
            }))
        });
        for intent in first.into_iter().chain(rest) {
            match intent {
                Intent::Open {
                    owner,
                    a,
                    b,
                    idle_timeout,
                } => {
                    let tag = owner_tag(&owner, source);
                    match self.open_signaled(&tag, a, b, idle_timeout) {
                        Ok(()) => out.opened += 1,
                        Err(e) => {
                            out.full += usize::from(is_full(&e));
                            out.failures.push(e.to_string());
                            self.open_failed(&tag, a, b, e);
                        }
                    }
                }
                Intent::Latch {
                    owner,
                    a,
                    b,
                    side,
                    from,
                    window,
                    idle_timeout,
                    pre_answer,
                } => {
                    let tag = owner_tag(&owner, source);
                    let how = latching::How {
                        side,
                        from,
                        window,
                        idle: idle_timeout,
                        pre_answer,
                    };
                    match self.latch_signaled(&tag, a, b, how) {
                        Ok(()) => out.opened += 1,
                        // No provisional pair is no refusal: the answer
                        // still opens what it justifies.
                        Err(e) if pre_answer => self.pre_answer_unarmed(&tag, a, b, e),
                        Err(e) => {
                            out.full += usize::from(is_full(&e));
                            out.failures.push(e.to_string());
                            self.open_failed(&tag, a, b, e);
                        }
                    }
                }
                Intent::Close { owner, a, b, cause } => self.close_signaled(&owner, a, b, cause),
                Intent::Retime {
                    owner,
                    a,
                    b,
                    idle_timeout,
                } => self.retime_signaled(&owner, a, b, idle_timeout),
                // Counted and logged by the feed.
                Intent::Refused { .. } => {}
            }
        }
        out
    }

    fn open_signaled(
        &mut self,
        owner: &str,
        a: SocketAddr,
        b: SocketAddr,
        idle: Duration,
    ) -> Result<(), CommandError> {
        let pair = Pair::new(Endpoint::new(a)?, Endpoint::new(b)?, false)?;
        // Round up: a sub-second timeout must not become "never".
        let idle_timeout_secs = idle.as_secs() + u64::from(idle.subsec_nanos() > 0);
        self.open_request(OpenRequest {
            pair,
            idle_timeout_secs,
            owner: Some(owner.to_string()),
        })?;
        Ok(())
    }

    fn open_failed(&mut self, owner: &str, a: SocketAddr, b: SocketAddr, e: CommandError) {
        let now = self.now();
        if is_full(&e) {
            self.applied.map_full += 1;
            // The table already logged a TableError::Full refusal.
            if let Some(n) = self.full_log.allow(now) {
                error!(%owner, %a, %b, map_full_total = self.applied.map_full, suppressed = n,
                    "SIGNALED PINHOLE REFUSED, flow map full (raise --max-pinholes): {e}");
            }
        } else {
            self.applied.failed += 1;
            if let Some(n) = self.fail_log.allow(now) {
                warn!(%owner, %a, %b, suppressed = n, "signaled pinhole not opened: {e}");
            }
        }
    }

    /// Releases `owner`'s claim; the pinhole carries the owner's `sip:` or,
    /// for a call a proxy drives, its `ng:` tag.
    fn close_signaled(&mut self, owner: &Owner, a: SocketAddr, b: SocketAddr, cause: CloseCause) {
        let claim = |source| latching::ClaimKey {
            owner: owner_tag(owner, source),
            a,
            b,
        };
        // A latch claims under the tag of the request that armed it: an ng
        // call's under its `ng:` tag, while its closes may come from the
        // timers (observed) as well as from ng requests.
        if self.latch_release(&claim(Source::Observed), cause)
            || self.latch_release(&claim(Source::Ng), cause)
            || self.pre_answer_release_unknown(&claim(Source::Observed), cause)
        {
            return;
        }
        let (Ok(ea), Ok(eb)) = (Endpoint::new(a), Endpoint::new(b)) else {
            return;
        };
        let ng = Some(owner_tag(owner, Source::Ng));
        let tag = match self.table.find(ea, eb) {
            Some(p) if p.is_held_by(&ng) => ng,
            _ => Some(owner_tag(owner, Source::Observed)),
        };
        match self.table.release(ea, eb, &tag) {
            Ok(r) => {
                let removed = self.apply_removes(&r.ops);
                info!(id = %r.pinhole.id, %a, %b, owner = tag.as_deref(), cause = cause.name(), closed = r.closed,
                    flows_removed = removed, "pinhole released");
            }
            // Expired or force-closed earlier, or never opened (map full).
            Err(e) => debug!(
                owner = tag.as_deref(),
                cause = cause.name(),
                "signaled close: {e}"
            ),
        }
    }

    /// Changes the idle timeout of `owner`'s pair `a` ↔ `b` in place (a
    /// stream going on or off hold): a re-claim by the same owner, which
    /// keeps the pinhole's flows in the map (no remove, no insert).
    fn retime_signaled(&mut self, owner: &Owner, a: SocketAddr, b: SocketAddr, idle: Duration) {
        let claim = latching::ClaimKey {
            owner: owner_tag(owner, Source::Observed),
            a,
            b,
        };
        if self.latch_retime(&claim, idle) {
            return;
        }
        let (Ok(ea), Ok(eb)) = (Endpoint::new(a), Endpoint::new(b)) else {
            return;
        };
        let ng = Some(owner_tag(owner, Source::Ng));
        let tag = match self.table.find(ea, eb) {
            Some(p) if p.is_held_by(&ng) => ng,
            Some(p) if p.is_held_by(&Some(claim.owner.clone())) => Some(claim.owner),
            // Expired or force-closed: the call was told, nothing to keep.
            _ => {
                debug!(%owner, %a, %b, "retime of a pair the table does not hold");
                return;
            }
        };
        let Some(tag) = tag else { return };
        if let Err(e) = self.open_signaled(&tag, a, b, idle) {
            warn!(%owner, %a, %b, "changing the idle timeout failed: {e}");
        }
    }

    /// Closes pinholes idle past their timeout, at most [`EXPIRY_BUDGET`]
    /// due ones. Returns, for each signaling owner of each, the owner and
    /// the pair as it signaled it (for a latched pair, the signaled one,
    /// not the latched one), so that its call can be told; and whether due
    /// pinholes are left for another step.
    fn expire(&mut self) -> (Vec<(Owner, SocketAddr, SocketAddr)>, bool) {
        let now = self.now();
        let Core { table, store, .. } = self;
        let step = table.expire_some(now, EXPIRY_BUDGET, |k| last_seen(store, k));
        let mut told = Vec::new();
        for (p, ops) in step.expired {
            self.apply_removes(&ops);
            let idle = now.saturating_sub(p.active_ns) / NS_PER_SEC;
            info!(id = %p.id, a = %p.pair.a(), b = %p.pair.b(), idle_secs = idle, "pinhole expired");
            for tag in p.claims.keys().flatten() {
                told.extend(self.expired_claim(tag, &p.pair));
            }
        }
        (told, step.more)
    }

    /// The owner and signaled pair of the claim `tag` on the expired
    /// pinhole `pair`; `None` for a claim no call layer made.
    fn expired_claim(&mut self, tag: &str, pair: &Pair) -> Option<(Owner, SocketAddr, SocketAddr)> {
        let (base, pre_answer) = match tag.strip_suffix(latching::PRE_ANSWER_SUFFIX) {
            Some(base) => (base, true),
            None => (tag, false),
        };
        let (a, b) = match self.latch_expired(base, pre_answer, pair) {
            Some(claim) => (claim.a, claim.b),
            None if pre_answer => return None,
            None => (pair.a().addr(), pair.b().addr()),
        };
        let owner = match base.strip_prefix(NG_OWNER_PREFIX) {
            Some(rest) => Owner::parse(&format!("sip:{rest}")),
            None => Owner::parse(base),
        }?;
        Some((owner, a, b))
    }

    /// When the flow `a → b` of a pair `owner` signaled last carried a
    /// packet: of the latched pair when it latched.
    fn signaled_last_seen(&self, owner: &Owner, a: SocketAddr, b: SocketAddr) -> Option<u64> {
        let claim = latching::ClaimKey {
            owner: owner_tag(owner, Source::Observed),
            a,
            b,
        };
        let (src, dst) = match self.latches.latched_pair(&claim) {
            Some(p) => (p.a(), p.b()),
            None => (Endpoint::new(a).ok()?, Endpoint::new(b).ok()?),
        };
        last_seen(&self.store, &flow_key(src, dst))
    }

    /// Retries removals that failed.
    fn retry_removals(&mut self) {
        if !self.pending_removals.is_empty() {
            let pending = std::mem::take(&mut self.pending_removals);
            for k in pending {
                if self.table.refcount(&k) == 0 {
                    self.remove_flow(&k);
                }
            }
        }
    }

    /// Packets and bytes of the flow `src` → `dst` (zero if it has none).
    fn flow_totals(&self, src: SocketAddr, dst: SocketAddr) -> Totals {
        let (Ok(s), Ok(d)) = (Endpoint::new(src), Endpoint::new(dst)) else {
            return Totals::default();
        };
        match self.store.get(&flow_key(s, d)) {
            Ok(Some(st)) => Totals {
                packets: st.packets,
                bytes: st.bytes,
            },
            Ok(None) => Totals::default(),
            Err(e) => {
                warn!(%src, %dst, "reading flow stats failed: {e}");
                Totals::default()
            }
        }
    }

    /// The metrics numbers the table and the map know, with the given
    /// signaling counts and refusals.
    fn snapshot(
        &self,
        signaling: Vec<SignalingCount>,
        refusals: Vec<(&'static str, u64)>,
    ) -> Snapshot {
        let verdicts = self.store.counters().unwrap_or_else(|e| {
            warn!("reading the verdict counters failed: {e}");
            [Counter::default(); Reason::COUNT as usize]
        });
        Snapshot {
            verdicts,
            pinholes_open: self.table.len() as u64,
            calls_active: 0,
            rtsp_sessions_active: 0,
            flows_used: self.table.flows_used() as u64,
            flows_capacity: self.table.capacity() as u64,
            signaling,
            refusals,
            interfaces: Vec::new(),
            latch_events: self.latches.counters().events(),
            queue: None,
        }
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
/// to make inserts or removes fail, and settable counters. Compiled for the
/// library's own tests only (the tests crate drives the real daemon).
#[cfg(test)]
#[derive(Debug, Default)]
pub struct FakeStore {
    pub flows: std::collections::HashMap<FlowKey, FlowStats>,
    pub capacity: usize,
    /// Fail the insert after this many more successful inserts.
    pub fail_inserts_after: Option<usize>,
    pub fail_removes: bool,
    pub counters: [Counter; Reason::COUNT as usize],
    /// The latch maps.
    pub latches: std::collections::HashMap<LatchKey, LatchValue>,
    /// Arming fails (latch map full) when this many entries are armed.
    pub latch_capacity: Option<usize>,
    /// Successful inserts of new flows and removes of present ones, so
    /// tests can assert that a change left the map alone.
    pub inserts: usize,
    pub removes: usize,
}

#[cfg(test)]
impl FakeStore {
    pub fn new(capacity: usize) -> Self {
        FakeStore {
            capacity,
            ..Default::default()
        }
    }
}

#[cfg(test)]
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

#[cfg(test)]
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

#[cfg(test)]
#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::{
        addr::flow_key,
        api::{server::remote_kind, wire::RemoteKind},
    };

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
            (1, crate::controller::table::OpenOutcome::Opened, 2, 30)
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
        assert_eq!(remote_kind(&err), RemoteKind::Runtime);
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
            assert_eq!(remote_kind(&err), RemoteKind::BadRequest, "{p:?}: {err}");
        }
        let mut long = params("192.0.2.1:4000", "198.51.100.2:10000", false, None);
        long.owner = Some("x".repeat(MAX_OWNER_LEN + 1));
        assert_eq!(
            remote_kind(&c.open(long).unwrap_err()),
            RemoteKind::BadRequest
        );
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
        c.core.store.fail_inserts_after = Some(2);
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

    /// A flow already in the map when an open starts (latched by the XDP
    /// program, its report not adopted yet) is not the open's to delete
    /// when the open fails half-way: only what the open itself inserted is
    /// rolled back.
    #[test]
    fn rollback_keeps_flows_that_were_in_the_map_before() {
        let fx = fixture(64, 30);
        let mut store = FakeStore::new(64);
        let (a, b) = (ep("192.0.2.1:4000"), ep("198.51.100.2:10000"));
        let latched = [flow_key(a, b), flow_key(b, a)];
        for k in &latched {
            store.flows.insert(*k, FlowStats::default());
        }
        // The RTP flows exist; the first RTCP insert fails.
        store.fail_inserts_after = Some(0);
        let mut c = Controller::new(store, fx.config);
        let err = c.open(params("192.0.2.1:4000", "198.51.100.2:10000", true, None));
        assert!(matches!(err, Err(CommandError::Store(_))), "{err:?}");
        assert!(c.table().is_empty());
        for k in &latched {
            assert!(
                c.store().flows.contains_key(k),
                "a flow that existed before the open was deleted by its rollback"
            );
        }
        assert_eq!(c.store().flows.len(), 2);
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
    fn a_mass_expiry_is_spread_over_bounded_steps() {
        let n = 3 * EXPIRY_BUDGET + 5;
        let fx = fixture(4 * n, 10);
        let mut c = Controller::new(FakeStore::new(4 * n), fx.config);
        for i in 0..n {
            let a = format!("192.0.2.{}:{}", 1 + i / 1000, 4000 + 2 * (i % 1000));
            c.open(params(&a, "198.51.100.2:10000", false, None))
                .unwrap();
        }
        fx.now.fetch_add(10 * S, Ordering::SeqCst);
        c.tick();
        assert!(c.expiry_backlog());
        assert_eq!(c.table().expired(), EXPIRY_BUDGET as u64);
        // Commands between steps see the table as it is then.
        c.open(params(
            "192.0.2.200:4000",
            "198.51.100.9:10000",
            false,
            None,
        ))
        .unwrap();
        let mut steps = 1;
        while c.expiry_backlog() {
            c.expire_step();
            steps += 1;
            assert!(steps <= 10, "expiry does not end");
        }
        assert_eq!(steps, 4);
        assert_eq!(c.table().expired(), n as u64);
        assert_eq!(c.table().len(), 1, "the pinhole opened meanwhile stays");
        assert_consistent(&c);
    }

    #[test]
    fn failed_removals_are_retried_on_tick() {
        let fx = fixture(64, 30);
        let mut c = Controller::new(FakeStore::new(64), fx.config);
        c.open(params("192.0.2.1:4000", "198.51.100.2:10000", false, None))
            .unwrap();
        c.core.store.fail_removes = true;
        c.close(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"))
            .unwrap();
        assert_eq!(c.store().flows.len(), 2, "removal failed");
        c.tick();
        assert_eq!(c.store().flows.len(), 2, "still failing");
        c.core.store.fail_removes = false;
        c.tick();
        assert!(c.store().flows.is_empty(), "retried on tick");
        assert!(c.core.pending_removals.is_empty());

        // A pending flow that is reopened before the retry is kept.
        c.open(params("192.0.2.1:4000", "198.51.100.2:10000", false, None))
            .unwrap();
        c.core.store.fail_removes = true;
        c.close(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"))
            .unwrap();
        c.core.store.fail_removes = false;
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
        *c.core.store.flows.get_mut(&k).unwrap() = FlowStats {
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

    // ---- signaling -------------------------------------------------------

    use crate::capture::{TcpInfo, Transport};

    const ALICE: &str = "192.0.2.10:5060";
    const BOB: &str = "198.51.100.20:5060";

    fn sdp(ip: &str, port: u16) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0\r\n"
        )
    }

    /// A SIP message of call `call`: start line, From/To tags, CSeq, body.
    fn sip(
        start: &str,
        call: &str,
        to_tag: Option<&str>,
        cseq: &str,
        body: Option<&str>,
    ) -> String {
        let to = to_tag.map_or(String::new(), |t| format!(";tag={t}"));
        let body = body.unwrap_or("");
        let ctype = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{start}\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{cseq_n}\r\n\
             From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>{to}\r\n\
             Call-ID: {call}\r\nCSeq: {cseq}\r\nMax-Forwards: 70\r\n\
             {ctype}Content-Length: {}\r\n\r\n{body}",
            body.len(),
            cseq_n = cseq.split(' ').next().unwrap(),
        )
    }

    fn invite(call: &str, port: u16) -> String {
        sip(
            "INVITE sip:bob@example.com SIP/2.0",
            call,
            None,
            "1 INVITE",
            Some(&sdp("192.0.2.10", port)),
        )
    }

    fn ok200(call: &str, port: u16) -> String {
        sip(
            "SIP/2.0 200 OK",
            call,
            Some("b1"),
            "1 INVITE",
            Some(&sdp("198.51.100.20", port)),
        )
    }

    fn bye(call: &str) -> String {
        sip(
            "BYE sip:bob@198.51.100.20 SIP/2.0",
            call,
            Some("b1"),
            "2 BYE",
            None,
        )
    }

    fn udp(src: &str, dst: &str, text: &str, at: u64) -> SignalingPacket {
        SignalingPacket {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            transport: Transport::Udp,
            payload: text.as_bytes().to_vec(),
            received_at: at,
        }
    }

    fn tcp(src: &str, dst: &str, seq: u32, syn: bool, payload: &[u8]) -> SignalingPacket {
        SignalingPacket {
            transport: Transport::Tcp(TcpInfo {
                seq,
                syn,
                ..TcpInfo::default()
            }),
            payload: payload.to_vec(),
            ..udp(src, dst, "", 0)
        }
    }

    /// (a, b, owners) of every pinhole, sorted.
    fn pinholes(c: &Controller<FakeStore>) -> Vec<(String, String, Vec<String>)> {
        let mut v: Vec<_> = c
            .table()
            .iter()
            .map(|p| {
                (
                    p.pair.a().to_string(),
                    p.pair.b().to_string(),
                    p.owner_names().map(str::to_string).collect(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn owners(call: &str) -> Vec<String> {
        vec![format!("sip:{call};from-tag=a1")]
    }

    fn signaling_fixture(capacity: usize) -> (Fixture, Controller<FakeStore>) {
        let mut fx = fixture(capacity, 300);
        fx.config.feed.calls.idle_timeout = Duration::from_secs(60);
        fx.config.signaling_inline = true;
        let c = Controller::new(FakeStore::new(capacity), fx.config.clone());
        (fx, c)
    }

    /// A re-INVITE (CSeq `n`) of call `call` from Alice with `attr` in its
    /// SDP, and Bob's 200 with `answer_attr`.
    fn reinvite(call: &str, n: u32, attr: &str, answer_attr: &str) -> [String; 2] {
        let body = |ip: &str, port: u16, a: &str| format!("{}{a}", sdp(ip, port));
        let cseq = format!("{n} INVITE");
        [
            sip(
                "INVITE sip:bob@198.51.100.20 SIP/2.0",
                call,
                Some("b1"),
                &cseq,
                Some(&body("192.0.2.10", 10000, attr)),
            ),
            sip(
                "SIP/2.0 200 OK",
                call,
                Some("b1"),
                &cseq,
                Some(&body("198.51.100.20", 20000, answer_attr)),
            ),
        ]
    }

    #[test]
    fn hold_retimes_in_place_and_expiry_reopens_on_the_next_reinvite() {
        let (fx, mut c) = signaling_fixture(64);
        let now = || fx.now.load(Ordering::SeqCst);
        let advance = |secs: u64| fx.now.fetch_add(secs * S, Ordering::SeqCst);
        let call = "call-hold@192.0.2.10";
        let exchange = |c: &mut Controller<FakeStore>, [req, resp]: [String; 2]| {
            c.on_signaling(Ok(udp(ALICE, BOB, &req, now())));
            c.on_signaling(Ok(udp(BOB, ALICE, &resp, now())));
        };
        let idle = |c: &Controller<FakeStore>| -> Vec<u64> {
            c.table().iter().map(|p| p.idle_timeout_secs).collect()
        };
        c.on_signaling(Ok(udp(ALICE, BOB, &invite(call, 10000), now())));
        c.on_signaling(Ok(udp(BOB, ALICE, &ok200(call, 20000), now())));
        assert_eq!(idle(&c), [60, 60]);
        let (ins, rem) = (c.store().inserts, c.store().removes);
        assert_eq!((ins, rem), (4, 0));

        // On hold: the hold timeout, the same flows (no remove, no insert).
        exchange(
            &mut c,
            reinvite(call, 2, "a=sendonly\r\n", "a=recvonly\r\n"),
        );
        assert_eq!(idle(&c), [3600, 3600]);
        assert_eq!((c.store().inserts, c.store().removes), (ins, rem));
        // Silent for 10 minutes: still open.
        advance(600);
        c.tick();
        assert_eq!(c.table().len(), 2);
        // Resume with the same SDP: back to the idle timeout, still in place.
        exchange(&mut c, reinvite(call, 3, "", ""));
        assert_eq!(idle(&c), [60, 60]);
        assert_eq!((c.store().inserts, c.store().removes), (ins, rem));

        // Silence past the idle timeout: expired, and the call knows.
        advance(61);
        c.tick();
        assert_eq!(c.table().len(), 0);
        assert_eq!(c.store().flows.len(), 0);
        let counters = c.feed().calls().counters();
        assert_eq!(counters.pairs_expired_sip, 2);
        let listed = c.calls().unwrap();
        let states: Vec<&str> = listed.calls[0]
            .streams
            .iter()
            .map(|s| s.state.as_str())
            .collect();
        assert_eq!(states, ["expired", "expired"]);
        // A re-INVITE with the same SDP opens both pairs again.
        exchange(&mut c, reinvite(call, 4, "", ""));
        assert_eq!(idle(&c), [60, 60]);
        assert_eq!(c.store().flows.len(), 4);
        assert_eq!(c.feed().calls().counters().pairs_reopened, 2);
        let listed = c.calls().unwrap();
        assert!(listed.calls[0].streams.iter().all(|s| s.state == "open"));
        assert_consistent(&c);
    }

    #[test]
    fn sip_call_over_udp_opens_the_answered_pairs_and_bye_grace_closes_them() {
        let (fx, mut c) = signaling_fixture(64);
        let now = || fx.now.load(Ordering::SeqCst);
        let call = "call-1@192.0.2.10";
        c.on_signaling(Ok(udp(ALICE, BOB, &invite(call, 10000), now())));
        assert!(c.table().is_empty(), "an offer alone opens nothing");
        // The answer arrived 5 µs before the controller handled it.
        c.on_signaling(Ok(udp(BOB, ALICE, &ok200(call, 20000), now() - 5_000)));
        let want = vec![
            (
                "192.0.2.10:10000".into(),
                "198.51.100.20:20000".into(),
                owners(call),
            ),
            (
                "192.0.2.10:10001".into(),
                "198.51.100.20:20001".into(),
                owners(call),
            ),
        ];
        assert_eq!(pinholes(&c), want);
        assert_eq!(c.store().flows.len(), 4);
        assert!(
            c.table().iter().all(|p| p.idle_timeout_secs == 60),
            "--call-idle"
        );
        assert_consistent(&c);
        let st = c.stats().unwrap().signaling;
        assert_eq!(st.setup_latency_us.count, 1);
        assert!((st.setup_latency_us.p50 - 5.0).abs() < 0.5, "{st:?}");
        let list = c.list().unwrap();
        assert_eq!(list.pinholes[0].owner, owners(call)[0]);

        // ACK and BYE: the pinholes stay for the BYE grace (2 s).
        c.on_signaling(Ok(udp(
            ALICE,
            BOB,
            &sip(
                "ACK sip:bob@198.51.100.20 SIP/2.0",
                call,
                Some("b1"),
                "1 ACK",
                None,
            ),
            now(),
        )));
        c.on_signaling(Ok(udp(ALICE, BOB, &bye(call), now())));
        fx.now.fetch_add(S, Ordering::SeqCst);
        c.tick();
        assert_eq!(c.table().len(), 2, "still in the BYE grace");
        let deadline = c.feed().next_deadline().unwrap();
        fx.now.store(deadline, Ordering::SeqCst);
        c.call_timers();
        assert!(c.table().is_empty(), "closed after the grace");
        assert!(c.store().flows.is_empty());

        let st = c.stats().unwrap().signaling;
        assert_eq!(
            (
                st.mode.as_str(),
                st.packets,
                st.sip_messages,
                st.parse_errors
            ),
            ("inline", 4, 4, 0)
        );
        assert_eq!(
            (st.calls_opened, st.calls_closed, st.calls_active),
            (1, 1, 0)
        );
        assert_eq!(
            st.setup_latency_us.count, 1,
            "only packets that opened count"
        );
    }

    #[test]
    fn tcp_segmented_out_of_order_and_coalesced_messages_work() {
        let (_fx, mut c) = signaling_fixture(64);
        let call = "tcp-1@192.0.2.10";
        let (client, server) = ("192.0.2.10:40000", "198.51.100.20:5060");
        let inv = invite(call, 10000);
        let inv = inv.as_bytes();
        let (isn, sisn) = (1000u32, 7000u32);
        c.on_signaling(Ok(tcp(client, server, isn, true, b"")));
        c.on_signaling(Ok(tcp(server, client, sisn, true, b"")));
        // The INVITE in three segments: last first, then the first, then a
        // retransmission of the first overlapping the middle one.
        let (p1, p2, p3) = (&inv[..50], &inv[50..120], &inv[120..]);
        c.on_signaling(Ok(tcp(client, server, isn + 1 + 120, false, p3)));
        c.on_signaling(Ok(tcp(client, server, isn + 1, false, p1)));
        assert_eq!(c.feed().counters().sip_messages, 0, "incomplete");
        c.on_signaling(Ok(tcp(client, server, isn + 1, false, &inv[..120])));
        assert_eq!(
            c.feed().counters().sip_messages,
            1,
            "{:?}",
            c.feed().counters()
        );
        assert_eq!(p2.len(), 70);
        // 180 Ringing and 200 OK in one segment.
        let mut both = sip("SIP/2.0 180 Ringing", call, Some("b1"), "1 INVITE", None).into_bytes();
        both.extend_from_slice(ok200(call, 20000).as_bytes());
        c.on_signaling(Ok(tcp(server, client, sisn + 1, false, &both)));
        assert_eq!(c.feed().counters().sip_messages, 3);
        assert_eq!(c.feed().counters().parse_errors, 0);
        assert_eq!(c.table().len(), 2);
        assert_eq!(c.feed().tcp_streams(), 2);
        assert_consistent(&c);
    }

    #[test]
    fn unparsable_signaling_is_counted_and_opens_nothing() {
        let (_fx, mut c) = signaling_fixture(64);
        let call = "bad-1@192.0.2.10";
        let bad_sdp = invite(call, 10000).replace("m=audio 10000 RTP/AVP 0", "m=audio x RTP/AVP 0");
        let no_call_id = ok200(call, 20000).replace("Call-ID", "X-Call");
        let packets: Vec<Result<SignalingPacket, PacketError>> = vec![
            Err(PacketError::Fragment),
            Err(PacketError::Malformed("truncated".into())),
            Ok(udp(ALICE, BOB, "garbage\r\n\r\n", 0)),
            Ok(udp(ALICE, BOB, &invite(call, 10000)[..100], 0)),
            Ok(udp(ALICE, BOB, &bad_sdp, 0)),
            Ok(udp(BOB, ALICE, &no_call_id, 0)),
            Ok(udp(
                ALICE,
                BOB,
                "\u{0}\u{1}\u{2}\u{3}\u{4}\u{5}\u{6}\u{7}",
                0,
            )),
        ];
        let n = packets.len() as u64;
        for p in packets {
            c.on_signaling(p);
        }
        let st = c.stats().unwrap().signaling;
        assert_eq!((st.packets, st.parse_errors, st.sip_messages), (n, n, 0));
        assert!(c.table().is_empty());
        assert!(c.store().flows.is_empty());
        assert_eq!(st.setup_latency_us.count, 0);
    }

    #[test]
    fn map_full_refuses_signaled_pinholes_and_counts_them() {
        // Room for one pair (2 flows): RTP opens, RTCP is refused.
        let (_fx, mut c) = signaling_fixture(2);
        let call = "full-1@192.0.2.10";
        c.on_signaling(Ok(udp(ALICE, BOB, &invite(call, 10000), 0)));
        c.on_signaling(Ok(udp(BOB, ALICE, &ok200(call, 20000), 0)));
        assert_eq!(c.table().len(), 1);
        let st = c.stats().unwrap();
        assert_eq!(st.signaling.refused.map_full, 1);
        assert_eq!(st.rejected_full, 1);
        assert_eq!(c.store().flows.len(), 2, "nothing evicted");
        // The call ends: its open pair closes, the refused one is not an error.
        c.on_signaling(Ok(udp(ALICE, BOB, &bye(call), 0)));
        let now = c.feed().next_deadline().unwrap();
        c.core.config.clock = Arc::new(move || now);
        c.call_timers();
        assert!(c.table().is_empty());
        assert_eq!(c.applied().failed, 0);
        assert_consistent(&c);
    }

    #[test]
    fn a_pair_shared_by_two_calls_and_the_operator_survives_one_close() {
        let (fx, mut c) = signaling_fixture(64);
        let (c1, c2) = ("share-1@192.0.2.10", "share-2@192.0.2.10");
        for call in [c1, c2] {
            c.on_signaling(Ok(udp(ALICE, BOB, &invite(call, 10000), 0)));
            c.on_signaling(Ok(udp(BOB, ALICE, &ok200(call, 20000), 0)));
        }
        // The operator also opened the RTP pair.
        c.open(params(
            "192.0.2.10:10000",
            "198.51.100.20:20000",
            false,
            Some(0),
        ))
        .unwrap();
        let mut both = owners(c1);
        both.extend(owners(c2));
        let mut all = vec!["manual".to_string()];
        all.extend(both.clone());
        assert_eq!(
            pinholes(&c),
            vec![
                ("192.0.2.10:10000".into(), "198.51.100.20:20000".into(), all),
                (
                    "192.0.2.10:10001".into(),
                    "198.51.100.20:20001".into(),
                    both
                ),
            ]
        );
        assert_eq!(c.store().flows.len(), 4);

        let end = |c: &mut Controller<FakeStore>, call: &str| {
            c.on_signaling(Ok(udp(ALICE, BOB, &bye(call), 0)));
            fx.now
                .store(c.feed().next_deadline().unwrap(), Ordering::SeqCst);
            c.call_timers();
        };
        end(&mut c, c1);
        assert_eq!(c.table().len(), 2, "call 2 still holds both pairs");
        assert_eq!(c.store().flows.len(), 4);
        end(&mut c, c2);
        assert_eq!(
            pinholes(&c),
            vec![(
                "192.0.2.10:10000".into(),
                "198.51.100.20:20000".into(),
                vec!["manual".to_string()]
            )],
            "the operator's pinhole outlives both calls"
        );
        assert_eq!(c.store().flows.len(), 2);
        assert_consistent(&c);
    }

    #[tokio::test]
    async fn the_queue_sink_returns_after_the_pinholes_are_in_the_map() {
        let mut fx = fixture(64, 300);
        fx.config.tick = Duration::from_secs(3600);
        let (handle, task) = spawn(FakeStore::new(64), fx.config.clone());
        let call = "sink-1@192.0.2.10";
        let mut sink = handle.sink();
        let (inv, ok) = (invite(call, 10000), ok200(call, 20000));
        // A blocking thread, like the queue reader.
        let delivered = tokio::task::spawn_blocking(move || {
            let a = sink.deliver(Ok(udp(ALICE, BOB, &inv, 0)));
            let b = sink.deliver(Ok(udp(BOB, ALICE, &ok, 0)));
            (a, b, sink)
        })
        .await
        .unwrap();
        assert!(delivered.0 && delivered.1);
        // No waiting: delivery returned only after the map was updated.
        let list = handle.list().await.unwrap();
        assert_eq!(list.pinholes.len(), 2);
        assert!(list.pinholes.iter().all(|p| p.owner == owners(call)[0]));
        let stats = handle.stats().await.unwrap();
        assert_eq!(stats.signaling.setup_latency_us.count, 1);
        assert_eq!(stats.flows.used, 4);

        // With the controller gone, delivery reports it instead of hanging.
        let mut sink = delivered.2;
        task.abort();
        let _ = task.await;
        let gone = tokio::task::spawn_blocking(move || sink.deliver(Err(PacketError::NotIp)))
            .await
            .unwrap();
        assert!(!gone);
    }

    #[tokio::test]
    async fn call_timers_run_in_the_task() {
        let fx = fixture(64, 300);
        let (handle, _task) = spawn(FakeStore::new(64), fx.config.clone());
        let call = "timer-1@192.0.2.10";
        for p in [
            udp(ALICE, BOB, &invite(call, 10000), 0),
            udp(BOB, ALICE, &ok200(call, 20000), 0),
            udp(ALICE, BOB, &bye(call), 0),
        ] {
            handle.signaling(Ok(p)).await.unwrap();
        }
        assert_eq!(handle.stats().await.unwrap().pinholes, 2);
        // Past the 2 s grace on the controller's clock: the next timer or
        // tick closes the call.
        fx.now.fetch_add(3 * S, Ordering::SeqCst);
        let mut waited = 0;
        while handle.stats().await.unwrap().pinholes != 0 {
            waited += 1;
            assert!(waited < 500, "BYE grace never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(handle.stats().await.unwrap().signaling.calls_closed, 1);
    }

    // ---- ng, calls, metrics ----------------------------------------------

    use crate::ng::bencode::{self, Value};

    /// One ng request through the controller; the decoded reply.
    fn ng(c: &mut Controller<FakeStore>, cookie: &str, req: Value) -> Value {
        let mut datagram = format!("{cookie} ").into_bytes();
        datagram.extend(req.encode());
        let at = c.now();
        let reply = c
            .on_ng("127.0.0.1:40000".parse().unwrap(), &datagram, at)
            .expect("a reply");
        let body = reply
            .strip_prefix(format!("{cookie} ").as_bytes())
            .expect("the cookie is echoed");
        bencode::decode(body).unwrap()
    }

    fn offer_answer(cmd: &str, call: &str, to_tag: Option<&str>, sdp: &str) -> Value {
        let mut entries = vec![
            ("command", Value::str(cmd)),
            ("call-id", Value::str(call)),
            ("from-tag", Value::str("ft")),
            ("sdp", Value::str(sdp)),
            // The SDP's addresses are the test's own (ng/ tests received-from).
            ("flags", Value::List(vec![Value::str("trust-address")])),
        ];
        if let Some(t) = to_tag {
            entries.push(("to-tag", Value::str(t)));
        }
        Value::dict(entries)
    }

    fn ng_fixture() -> (Fixture, Controller<FakeStore>) {
        let mut fx = fixture(64, 300);
        fx.config.ng = Some(crate::ng::NgConfig::default());
        fx.config.metrics = Some(Arc::new(Metrics::new()));
        let c = Controller::new(FakeStore::new(64), fx.config.clone());
        (fx, c)
    }

    #[test]
    fn ng_offer_answer_query_delete_drive_pinholes_with_ng_owner_tags() {
        let (fx, mut c) = ng_fixture();
        let call = "ng-1@proxy";
        let owner = format!("ng:{call};from-tag=ft");
        let r = ng(&mut c, "1", Value::dict([("command", Value::str("ping"))]));
        assert_eq!(r.get("result").and_then(Value::as_str), Some("pong"));

        let r = ng(
            &mut c,
            "2",
            offer_answer("offer", call, None, &sdp("192.0.2.10", 10000)),
        );
        assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
        assert!(c.table().is_empty(), "an offer alone opens nothing");
        let r = ng(
            &mut c,
            "3",
            offer_answer("answer", call, Some("tt"), &sdp("198.51.100.20", 20000)),
        );
        assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
        assert_eq!(
            r.get("sdp").and_then(Value::as_str),
            Some(sdp("198.51.100.20", 20000).as_str()),
            "the SDP comes back unchanged"
        );
        let want = vec![
            (
                "192.0.2.10:10000".to_string(),
                "198.51.100.20:20000".to_string(),
                vec![owner.clone()],
            ),
            (
                "192.0.2.10:10001".to_string(),
                "198.51.100.20:20001".to_string(),
                vec![owner.clone()],
            ),
        ];
        assert_eq!(pinholes(&c), want);
        assert_eq!(c.store().flows.len(), 4);
        assert_consistent(&c);
        assert_eq!(c.latency().count(), 1, "the answer's setup latency");

        // Traffic on the RTP pair shows in query and in `calls`.
        let k = flow_key(ep("192.0.2.10:10000"), ep("198.51.100.20:20000"));
        c.core.store.flows.get_mut(&k).unwrap().packets = 7;
        c.core.store.flows.get_mut(&k).unwrap().bytes = 700;
        let q = ng(
            &mut c,
            "4",
            Value::dict([
                ("command", Value::str("query")),
                ("call-id", Value::str(call)),
            ]),
        );
        let rtp = q.get("totals").and_then(|t| t.get("RTP")).unwrap();
        assert_eq!(rtp.get("packets").and_then(Value::as_int), Some(7), "{q:?}");
        let calls = c.calls().unwrap();
        assert_eq!(calls.calls.len(), 1);
        let e = &calls.calls[0];
        assert_eq!(
            (
                e.kind.as_str(),
                e.call_id.as_str(),
                e.tag.as_str(),
                e.owner.as_str()
            ),
            ("ng", call, "ft", owner.as_str())
        );
        assert_eq!(
            (e.state.as_str(), e.packets, e.bytes),
            ("confirmed", 7, 700)
        );
        assert_eq!(e.streams.len(), 2);
        assert_eq!(
            (
                e.streams[0].kind.as_str(),
                e.streams[0].a_to_b.packets,
                e.streams[1].kind.as_str()
            ),
            ("rtp", 7, "rtcp")
        );
        let l = ng(&mut c, "5", Value::dict([("command", Value::str("list"))]));
        assert_eq!(
            l.get("calls").and_then(Value::as_list).map(|v| v.len()),
            Some(1)
        );

        // Metrics: scraped numbers come from the controller.
        c.refresh_metrics();
        let text = c.metrics.as_ref().unwrap().encode();
        for line in [
            "pinhole_pinholes_open 2",
            "pinhole_calls_active 1",
            "pinhole_flows_used 4",
            "pinhole_flows_capacity 64",
            "pinhole_signaling_messages_total{kind=\"ng\",outcome=\"ok\"} 5",
            "pinhole_setup_latency_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }

        // A retransmitted delete runs once; delete-delay 0 closes at once.
        let del = Value::dict([
            ("command", Value::str("delete")),
            ("call-id", Value::str(call)),
            ("from-tag", Value::str("ft")),
            ("delete-delay", Value::Int(0)),
        ]);
        let r = ng(&mut c, "6", del.clone());
        assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
        assert!(c.table().is_empty());
        assert!(c.store().flows.is_empty());
        assert_eq!(ng(&mut c, "6", del), r, "the cached reply");
        let r = ng(
            &mut c,
            "7",
            Value::dict([
                ("command", Value::str("query")),
                ("call-id", Value::str(call)),
            ]),
        );
        assert_eq!(r.get("result").and_then(Value::as_str), Some("error"));
        let _ = fx;
    }

    #[test]
    fn ng_delete_delay_and_observed_calls_keep_their_own_tags() {
        let (fx, mut c) = ng_fixture();
        c.core.config.signaling_inline = true;
        // An observed SIP call and an ng call on the same pair share it.
        let sip_call = "obs-1@192.0.2.10";
        c.on_signaling(Ok(udp(ALICE, BOB, &invite(sip_call, 10000), 0)));
        c.on_signaling(Ok(udp(BOB, ALICE, &ok200(sip_call, 20000), 0)));
        let call = "ng-2@proxy";
        ng(
            &mut c,
            "1",
            offer_answer("offer", call, None, &sdp("192.0.2.10", 10000)),
        );
        ng(
            &mut c,
            "2",
            offer_answer("answer", call, Some("tt"), &sdp("198.51.100.20", 20000)),
        );
        assert_eq!(c.table().len(), 2);
        assert!(c.table().iter().all(|p| p.owner_names().count() == 2));
        let kinds: Vec<String> = c
            .calls()
            .unwrap()
            .calls
            .iter()
            .map(|e| e.kind.clone())
            .collect();
        assert_eq!(kinds, ["ng", "sip"]);

        // delete with a 5 s delay: still open, then closed by the timer;
        // the observed call keeps the pairs.
        let r = ng(
            &mut c,
            "3",
            Value::dict([
                ("command", Value::str("delete")),
                ("call-id", Value::str(call)),
                ("delete-delay", Value::Int(5)),
            ]),
        );
        assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
        assert!(c.table().iter().all(|p| p.owner_names().count() == 2));
        fx.now.fetch_add(5 * S, Ordering::SeqCst);
        c.call_timers();
        assert_eq!(
            pinholes(&c)[0].2,
            owners(sip_call),
            "only the ng claim went"
        );
        assert_eq!(c.table().len(), 2);
        assert_consistent(&c);
    }

    #[test]
    fn ng_errors_and_ng_off() {
        let (_fx, mut c) = ng_fixture();
        for (i, (req, reason)) in [
            (
                Value::dict([("command", Value::str("frobnicate"))]),
                "frobnicate",
            ),
            (
                offer_answer("answer", "nope", Some("tt"), &sdp("198.51.100.20", 20000)),
                "nknown call",
            ),
            (offer_answer("offer", "x", None, "not sdp"), "SDP"),
        ]
        .into_iter()
        .enumerate()
        {
            let r = ng(&mut c, &format!("e{i}"), req);
            assert_eq!(
                r.get("result").and_then(Value::as_str),
                Some("error"),
                "{r:?}"
            );
            let why = r.get("error-reason").and_then(Value::as_str).unwrap();
            assert!(why.contains(reason), "{why}");
        }
        let at = c.now();
        let r = c
            .on_ng("127.0.0.1:1".parse().unwrap(), b"c1 d3:foo", at)
            .unwrap();
        assert!(
            r.starts_with(b"c1 d12:error-reason") && r.ends_with(b"6:result5:errore"),
            "{}",
            String::from_utf8_lossy(&r)
        );
        // Outside the allow-list: no reply.
        assert!(c
            .on_ng("192.0.2.9:1".parse().unwrap(), b"c2 d7:command4:pinge", at)
            .is_none());
        // Without --ng-listen there is no ng service.
        let fx = fixture(4, 30);
        let mut off = Controller::new(FakeStore::new(4), fx.config);
        assert!(off
            .on_ng("127.0.0.1:1".parse().unwrap(), b"c d7:command4:pinge", 0)
            .is_none());
    }

    #[test]
    fn rtsp_sessions_show_in_calls_from_their_pinholes() {
        let fx = fixture(64, 30);
        let mut c = Controller::new(FakeStore::new(64), fx.config);
        let owner = "rtsp:198.51.100.20:554;session=12345678";
        c.open(OpenParams {
            owner: Some(owner.into()),
            ..params("192.0.2.10:5000", "198.51.100.20:6970", false, None)
        })
        .unwrap();
        let calls = c.calls().unwrap().calls;
        assert_eq!(calls.len(), 1);
        let e = &calls[0];
        assert_eq!(
            (
                e.kind.as_str(),
                e.call_id.as_str(),
                e.tag.as_str(),
                e.owner.as_str()
            ),
            ("rtsp", "12345678", "198.51.100.20:554", owner)
        );
        assert_eq!(e.streams.len(), 1);
        assert_eq!(e.streams[0].a.to_string(), "192.0.2.10:5000");
        assert!(e.last_signal_secs.is_none());
    }
}
