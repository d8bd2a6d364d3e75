//! The controller: one task that owns the [`PinholeTable`], the flow store and
//! the call state, so table, map and calls change together and in one order.
//!
//! Everything else talks to it through a bounded channel of [`ControllerCommand`]s, each
//! with a oneshot reply: the control socket, the signaling queue reader
//! (which waits for each packet's pinholes to be in the map before it lets
//! the packet go on), the ng listener (rtpengine's protocol, for SIP
//! proxies) and the metrics endpoint (which refreshes its numbers before
//! each scrape). A periodic tick expires idle pinholes; call timers (BYE
//! grace, delete delays, lifetimes) run at their deadline.
//!
//! Files, one concern each; each type is defined and implemented in one
//! file, and [`Controller`]'s methods are all here (the other files give
//! it types and free functions over the parts it lends them):
//! - `mod.rs`: [`Controller`], the task's state and its run loop;
//!   [`ControllerConfig`], [`CommandError`];
//! - `handle.rs`: the [`ControllerCommand`] enum, [`ControllerHandle`], the queue sink;
//! - `core.rs`: `Core`, the table and the flow store kept in step (open,
//!   close, apply intents, expire), and the table side of latching
//!   (`LatchHost`);
//! - `store.rs`: the [`FlowStore`] trait and [`KernelStore`]
//!   (`fake_store.rs`: the in-memory one, for the unit tests only);
//! - `table.rs`: the pure [`PinholeTable`];
//! - `latching.rs`: `Latching`, half-open pinholes (bounded latching,
//!   pre-answer), owned by `Core`;
//! - `foreign.rs`: HA's side (`--ha-redis`): the table snapshots handed
//!   to the replicator, foreign pinholes installed, adopted, ended;
//! - `persist.rs` (`Persister`: when to write, what; taking over a saved
//!   state) and `state_file.rs` (the file's format, its writer);
//! - `report.rs` (reply types) and `reports.rs` (`list`/`calls` jobs built
//!   off the task);
//! - `tests/`, `*/tests.rs`: the unit tests.

mod core;
#[cfg(test)]
mod fake_store;
pub mod foreign;
mod handle;
mod latching;
pub mod report;
pub mod state_file;
mod store;
pub mod table;
#[cfg(test)]
mod tests;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use pinhole_common::Reason;
use tokio::{
    sync::{mpsc, watch},
    time::{Instant, MissedTickBehavior},
};
use tracing::debug;

use crate::{
    addr::AddrError,
    addr::Endpoint,
    calls::Refusal,
    capture::{latency::Histogram, PacketError, SignalingPacket},
    clock::RateLimit,
    controller::report::{
        CallsReply, CloseReply, CounterInfo, FlowUsage, InterfaceStatus, LatencyStats, ListReply,
        OpenParams, OpenReply, RefusedStats, SignalingStats, StatsReply,
    },
    controller::state_file::State,
    controller::table::PinholeTable,
    controller::table::TableError,
    datapath::error::StoreError,
    datapath::latch::Latched,
    feed::{Feed, FeedConfig},
    metrics::{Metrics, Snapshot},
    ng::{CallsBackend, NgConfig, NgService},
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
use persist::{Fingerprint, Persister, StateSnapshot};
pub use reports::{CallsJob, CopiedStats, FlowStatsMap, ListJob, StatsReader};

pub use self::core::ApplyCounters;
use self::core::{refusals, Core, NgPinholes, Source};
#[cfg(test)]
pub use fake_store::FakeStore;
pub use handle::{spawn, start, ControllerCommand, ControllerHandle, QueueSink};
pub use store::{FlowStore, KernelStore};

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

/// The state the controller task owns.
pub struct Controller<S> {
    core: Core<S>,
    feed: Feed,
    latency: Histogram,
    ng: Option<NgService>,
    metrics: Option<Arc<Metrics>>,
    persist: Option<Persister>,
    /// The last expiry step ran out of budget with pinholes still due.
    expiry_backlog: bool,
    /// The longest step of the task's loop so far.
    longest_step: Duration,
}

impl<S: FlowStore> Controller<S> {
    pub fn new(store: S, config: ControllerConfig) -> Self {
        Controller {
            feed: Feed::new(config.feed.clone()),
            latency: Histogram::default(),
            ng: config.ng.clone().map(NgService::new),
            metrics: config.metrics.clone(),
            persist: config.state_writer.clone().map(Persister::new),
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
                latching: latching::Latching::default(),
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

    async fn run(mut self, mut rx: mpsc::Receiver<ControllerCommand>) {
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
            foreign::note(&self.core, &mut self.feed);
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
    pub fn handle(&mut self, cmd: ControllerCommand) {
        match cmd {
            ControllerCommand::Open { params, reply } => {
                let _ = reply.send(self.open(params));
            }
            ControllerCommand::Close { a, b, reply } => {
                let _ = reply.send(self.close(a, b));
            }
            // Built off this task from a snapshot (see `reports`).
            ControllerCommand::List { reply } => match self.list_job() {
                Ok(job) => reports::off_task(move || job.build(), reply),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            ControllerCommand::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
            ControllerCommand::Calls { reply } => match self.calls_job() {
                Ok(job) => reports::off_task(move || job.build(), reply),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            ControllerCommand::Signaling { packet, done } => {
                self.on_signaling(packet);
                let _ = done.send(());
            }
            ControllerCommand::Ng {
                peer,
                datagram,
                received_at,
                reply,
            } => {
                let _ = reply.send(self.on_ng(peer, &datagram, received_at));
            }
            ControllerCommand::RefreshMetrics { done } => {
                self.refresh_metrics();
                let _ = done.send(());
            }
            ControllerCommand::SaveState { reply } => {
                let _ = reply.send(self.save_state());
            }
            ControllerCommand::Latched { events, done } => {
                self.on_latched(events);
                let _ = done.send(());
            }
            ControllerCommand::Ha { op, reply } => self.on_ha(op, reply),
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
        self.core.latching.counters()
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
    fn queue_stats(&self) -> Option<crate::capture::nfqueue::QueueStats> {
        let health = self.core.config.queue_health.as_ref()?;
        let q = health.queue_num();
        let kernel = match crate::capture::nfqueue::kernel_stats(q) {
            Ok(k) => k,
            Err(e) => {
                tracing::debug!("reading {}: {e}", crate::capture::nfqueue::PROC_PATH);
                None
            }
        };
        Some(crate::capture::nfqueue::QueueStats {
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

    /// Takes what `list` needs (O(1) in the table size); the job builds
    /// the reply anywhere.
    pub fn list_job(&self) -> Result<ListJob, CommandError> {
        ListJob::take(&self.core)
    }

    /// Takes what `calls` needs (O(calls), no map access).
    pub fn calls_job(&self) -> Result<CallsJob, CommandError> {
        CallsJob::take(&self.core, self.feed.calls())
    }

    /// Runs one HA operation (see [`foreign::on_op`]).
    pub(super) fn on_ha(&mut self, op: foreign::HaOp, reply: handle::Reply<foreign::HaReply>) {
        foreign::on_op(&mut self.core, &mut self.feed, op, reply);
    }

    /// The fingerprint of what the state file keeps.
    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.core.table, &self.feed, self.ng.as_ref())
    }

    /// Schedules a state file write when the state changed since the last
    /// snapshot (see [`persist`]).
    pub(super) fn note_changes(&mut self) {
        if self.persist.is_none() {
            return;
        }
        let fp = self.fingerprint();
        if let Some(p) = &mut self.persist {
            p.note(fp);
        }
    }

    /// The state as the state file keeps it.
    pub fn state(&self) -> State {
        StateSnapshot::take(&self.core.table, self.feed.calls()).into_state()
    }

    /// Hands a snapshot to the state file's writer; returns its sequence
    /// number (0 when there is no state file).
    pub(super) fn save_state(&mut self) -> u64 {
        if self.persist.is_none() {
            return 0;
        }
        let fp = self.fingerprint();
        let snapshot = StateSnapshot::take(&self.core.table, self.feed.calls());
        self.persist.as_mut().map_or(0, |p| p.save(fp, snapshot))
    }

    /// Takes over the state an earlier daemon saved: its calls and
    /// sessions, its pinholes with their ids, owners and times; then brings
    /// the flow store in line with the table (`persist.rs`) and schedules
    /// writing the merged state back (it may differ from the file).
    pub fn restore(&mut self, state: State) -> RestoreReport {
        let report = persist::restore(&mut self.core, self.feed.calls_mut(), state);
        self.note_changes();
        report
    }
}
