//! The replicator task: the only code that talks to Redis.
//!
//! One session per connection: connect and subscribe, resync (write this
//! node's full state, read every other node's and install it, adopt the
//! pinholes of nodes whose keys are gone), then follow: publish local
//! changes as the controller hands them over, apply the peers' events,
//! refresh the TTLs and watch the peers' heartbeats. When Redis fails, the
//! session ends; the task logs it once, keeps answering `ha promote` from
//! what it knows, and reconnects with backoff into a new resync.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures_util::StreamExt;
use redis::{aio::MultiplexedConnection, AsyncCommands};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
    time::timeout,
};
use tracing::{debug, info, warn};

use super::{
    diff::{self, Records},
    schema::{self, EndKey, Event, Op, Record},
    HaConfig, BACKOFF_MAX, BACKOFF_MIN, COMMAND_TIMEOUT, ENDS_DEPTH,
};
use crate::controller::{
    foreign::{HaLink, HaOp, HaReply},
    table::Pinholes,
    CommandError, ControllerHandle,
};

/// Writes per pipeline in a full write.
const CHUNK: usize = 2_000;
/// Most promote requests queued.
const PROMOTE_DEPTH: usize = 8;

type PromoteReply = oneshot::Sender<Result<HaReply, CommandError>>;

/// The receiving ends of an [`HaLink`], for [`spawn`].
pub struct Channels {
    table: watch::Receiver<Pinholes>,
    ends: mpsc::Receiver<EndKey>,
    promote: mpsc::Receiver<PromoteReply>,
}

/// The link to put in the controller's config, and its other ends.
pub fn link(node: &str, metrics: Option<Arc<crate::metrics::Metrics>>) -> (Arc<HaLink>, Channels) {
    let (table_tx, table) = watch::channel(Pinholes::default());
    let (ends_tx, ends) = mpsc::channel(ENDS_DEPTH);
    let (promote_tx, promote) = mpsc::channel(PROMOTE_DEPTH);
    (
        Arc::new(HaLink::new(table_tx, ends_tx, promote_tx, node, metrics)),
        Channels {
            table,
            ends,
            promote,
        },
    )
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the subscription ended")]
    SubscriptionLost,
    #[error("reading the CA file {path}: {err}")]
    CaFile { path: String, err: std::io::Error },
    #[error("the controller stopped")]
    Stopped,
}

/// Starts the replicator.
pub fn spawn(
    cfg: HaConfig,
    link: Arc<HaLink>,
    chans: Channels,
    controller: ControllerHandle,
) -> JoinHandle<()> {
    let r = Replicator {
        cfg,
        link,
        chans,
        controller,
        published: Pinholes::default(),
        foreign: HashMap::new(),
    };
    tokio::spawn(r.run())
}

struct Replicator {
    cfg: HaConfig,
    link: Arc<HaLink>,
    chans: Channels,
    controller: ControllerHandle,
    /// The table snapshot whose records Redis holds for this node.
    published: Pinholes,
    /// Peers' records installed here, by node.
    foreign: HashMap<String, Records>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn timed<T>(
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, SessionError> {
    timeout(COMMAND_TIMEOUT, f)
        .await
        .map_err(|_| SessionError::Timeout(COMMAND_TIMEOUT))?
        .map_err(SessionError::from)
}

impl Replicator {
    async fn run(mut self) {
        if self.cfg.url.starts_with("rediss://") {
            // redis-rs builds its rustls config from the process default.
            // ring rather than aws-lc-rs keeps cmake and a C++ toolchain
            // out of the build; Redis TLS needs no post-quantum key exchange.
            #[expect(deprecated, reason = "ring needs no cmake; see above")]
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut backoff = BACKOFF_MIN;
        let mut down_logged = false;
        loop {
            let result = self.session(&mut backoff, &mut down_logged).await;
            self.link.update(|s| s.connected = false);
            match result {
                Err(SessionError::Stopped) => break,
                Err(e) => {
                    self.link.update(|s| s.errors += 1);
                    if down_logged {
                        debug!("HA: redis still unreachable: {e}");
                    } else {
                        warn!(url = %self.cfg.redacted_url(), "HA: redis unreachable, filtering alone with the pinholes known here; reconnecting: {e}");
                        down_logged = true;
                    }
                }
                Ok(()) => {}
            }
            // Wait out the backoff, still answering promotes.
            let sleep = tokio::time::sleep(backoff);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    p = self.chans.promote.recv() => match p {
                        Some(reply) => { let r = self.promote().await; let _ = reply.send(r); }
                        None => return,
                    },
                }
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        debug!("HA replicator stopped");
    }

    fn client(&self) -> Result<redis::Client, SessionError> {
        match &self.cfg.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|err| SessionError::CaFile {
                    path: path.display().to_string(),
                    err,
                })?;
                Ok(redis::Client::build_with_tls(
                    self.cfg.url.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )?)
            }
            None => Ok(redis::Client::open(self.cfg.url.as_str())?),
        }
    }

    /// One connection's life; returns when it fails.
    async fn session(
        &mut self,
        backoff: &mut Duration,
        down_logged: &mut bool,
    ) -> Result<(), SessionError> {
        let client = self.client()?;
        let mut con = timed(client.get_multiplexed_async_connection()).await?;
        let mut pubsub = timed(client.get_async_pubsub()).await?;
        timed(pubsub.subscribe(schema::CHANNEL)).await?;
        let mut messages = pubsub.into_on_message();
        // Subscribed before the resync: nothing published meanwhile is missed.
        self.resync(&mut con).await?;
        self.link.update(|s| {
            s.connected = true;
            s.resyncs += 1;
        });
        if *down_logged {
            info!("HA: redis reachable again, state resynced");
        } else {
            info!(url = %self.cfg.redacted_url(), node = %self.cfg.node, "HA: connected, state resynced");
        }
        *down_logged = false;
        *backoff = BACKOFF_MIN;
        let beat = self.cfg.ttl / 3;
        let mut heartbeat = tokio::time::interval(beat.max(Duration::from_millis(100)));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = self.chans.table.changed() => {
                    changed.map_err(|_| SessionError::Stopped)?;
                    let table = self.chans.table.borrow_and_update().clone();
                    self.publish_changes(&mut con, table).await?;
                }
                end = self.chans.ends.recv() => {
                    let end = end.ok_or(SessionError::Stopped)?;
                    self.on_local_end(&mut con, end).await?;
                }
                msg = messages.next() => {
                    let msg = msg.ok_or(SessionError::SubscriptionLost)?;
                    self.on_message(&mut con, msg.get_payload_bytes()).await?;
                }
                _ = heartbeat.tick() => self.heartbeat(&mut con).await?,
                p = self.chans.promote.recv() => {
                    let reply = p.ok_or(SessionError::Stopped)?;
                    let r = self.promote().await;
                    let _ = reply.send(r);
                }
            }
        }
    }

    async fn op(&self, op: HaOp) -> Result<HaReply, SessionError> {
        match self.controller.ha(op).await {
            Ok(r) => Ok(r),
            Err(CommandError::Stopped) => Err(SessionError::Stopped),
            Err(e) => {
                debug!("HA: {e}");
                Ok(HaReply { done: 0, failed: 1 })
            }
        }
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.cfg.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    fn event(&self, op: Op) -> String {
        Event {
            node: self.cfg.node.clone(),
            at_ms: now_ms(),
            op,
        }
        .encode()
    }

    /// Writes this node's whole state, then reads every other node's.
    async fn resync(&mut self, con: &mut MultiplexedConnection) -> Result<(), SessionError> {
        let started = std::time::Instant::now();
        let table = self.chans.table.borrow_and_update().clone();
        let own = diff::records(&table);
        let key = schema::pinholes_key(&self.cfg.node);
        let tmp = format!("{key}:sync");
        // Built under a temporary key and renamed: a peer never reads a
        // half-written state.
        let mut pipe = redis::pipe();
        pipe.del(&tmp).ignore();
        for chunk in own.values().collect::<Vec<_>>().chunks(CHUNK) {
            let items: Vec<(String, String)> = chunk
                .iter()
                .map(|r| (r.field(), schema::encode_record(r)))
                .collect();
            pipe.hset_multiple(&tmp, &items).ignore();
        }
        if own.is_empty() {
            pipe.del(&key).ignore();
        } else {
            pipe.rename(&tmp, &key).ignore();
            pipe.pexpire(&key, self.ttl_ms() as i64).ignore();
        }
        pipe.set_options(
            schema::alive_key(&self.cfg.node),
            now_ms(),
            redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(self.ttl_ms())),
        )
        .ignore();
        pipe.publish(schema::CHANNEL, self.event(Op::Sync)).ignore();
        timed(pipe.query_async::<()>(con)).await?;
        self.published = table;

        // Every node with a state in Redis, and the ones installed here.
        let mut nodes: Vec<String> = Vec::new();
        let mut iter: redis::AsyncIter<String> =
            timed(con.scan_match(format!("{}*:pinholes", schema::PREFIX))).await?;
        while let Some(k) = iter.next_item().await {
            let k = k?;
            if let Some(n) = schema::node_of_pinholes_key(&k) {
                if n != self.cfg.node && !nodes.iter().any(|x| x == n) {
                    nodes.push(n.to_string());
                }
            }
            if nodes.len() > 1024 {
                break;
            }
        }
        drop(iter);
        for n in self.foreign.keys() {
            if !nodes.contains(n) {
                nodes.push(n.clone());
            }
        }
        for node in nodes {
            self.resync_node(con, &node).await?;
        }
        info!(
            own = own.len(),
            peers = self.foreign.len(),
            ms = started.elapsed().as_millis() as u64,
            "HA: resync done"
        );
        Ok(())
    }

    /// Brings `node`'s foreign pinholes here in line with its state in
    /// Redis; a node whose heartbeat is gone is adopted.
    async fn resync_node(
        &mut self,
        con: &mut MultiplexedConnection,
        node: &str,
    ) -> Result<(), SessionError> {
        let alive: bool = timed(con.exists(schema::alive_key(node))).await?;
        if !alive {
            return self.adopt_node(node).await.map(|_| ());
        }
        let raw: BTreeMap<String, Vec<u8>> = timed(con.hgetall(schema::pinholes_key(node))).await?;
        let mut remote = Records::new();
        let mut refused = 0;
        for (field, value) in &raw {
            match schema::decode_record(field, value, &self.cfg.media_ports) {
                Ok(r) => {
                    remote.insert(field.clone(), r);
                }
                Err(e) => {
                    refused += 1;
                    debug!(%node, "HA: refused a record: {e}");
                }
            }
        }
        let installed = self.foreign.get(node).cloned().unwrap_or_default();
        let plan = diff::resync(&installed, &remote);
        for rec in plan.remove {
            self.remove(node, &rec).await?;
        }
        for rec in plan.install {
            self.install(node, rec).await?;
        }
        self.link.update(|s| s.refused += refused);
        self.count_foreign();
        Ok(())
    }

    fn count_foreign(&self) {
        let n: usize = self.foreign.values().map(BTreeMap::len).sum();
        let peers = self.foreign.values().filter(|r| !r.is_empty()).count();
        self.link.update(|s| {
            s.foreign_pinholes = n as u64;
            s.peers = peers as u64;
        });
    }

    async fn install(&mut self, node: &str, rec: Record) -> Result<bool, SessionError> {
        let total: usize = self.foreign.values().map(BTreeMap::len).sum();
        let known = self
            .foreign
            .get(node)
            .is_some_and(|r| r.contains_key(&rec.field()));
        if !known && total >= self.cfg.max_foreign {
            self.link.update(|s| s.refused += 1);
            return Ok(false);
        }
        let r = self
            .op(HaOp::Install {
                node: node.to_string(),
                rec: rec.clone(),
            })
            .await?;
        if r.done > 0 {
            self.foreign
                .entry(node.to_string())
                .or_default()
                .insert(rec.field(), rec);
            Ok(true)
        } else {
            self.link.update(|s| s.refused += 1);
            Ok(false)
        }
    }

    async fn remove(&mut self, node: &str, rec: &Record) -> Result<(), SessionError> {
        self.op(HaOp::Remove {
            node: node.to_string(),
            a: rec.a,
            b: rec.b,
        })
        .await?;
        if let Some(recs) = self.foreign.get_mut(node) {
            recs.remove(&rec.field());
        }
        Ok(())
    }

    async fn adopt_node(&mut self, node: &str) -> Result<HaReply, SessionError> {
        let Some(recs) = self.foreign.remove(node) else {
            return Ok(HaReply::default());
        };
        if recs.is_empty() {
            return Ok(HaReply::default());
        }
        let recs: Vec<Record> = recs.into_values().collect();
        info!(%node, pinholes = recs.len(), "HA: adopting a node's pinholes");
        let r = self
            .op(HaOp::Adopt {
                node: node.to_string(),
                recs,
            })
            .await?;
        self.link.update(|s| s.adopted += r.done as u64);
        self.count_foreign();
        Ok(r)
    }

    /// `pinhole ha promote`: adopt everything foreign now.
    async fn promote(&mut self) -> Result<HaReply, CommandError> {
        let mut total = HaReply::default();
        let nodes: Vec<String> = self.foreign.keys().cloned().collect();
        for node in nodes {
            match self.adopt_node(&node).await {
                Ok(r) => {
                    total.done += r.done;
                    total.failed += r.failed;
                }
                Err(_) => return Err(CommandError::Stopped),
            }
        }
        info!(adopted = total.done, failed = total.failed, "HA: promoted");
        Ok(total)
    }

    /// Writes and publishes what changed in the table.
    async fn publish_changes(
        &mut self,
        con: &mut MultiplexedConnection,
        table: Pinholes,
    ) -> Result<(), SessionError> {
        let changes = diff::changes(&self.published, &table);
        if changes.is_empty() {
            self.published = table;
            return Ok(());
        }
        let key = schema::pinholes_key(&self.cfg.node);
        let mut pipe = redis::pipe();
        for (field, rec) in &changes {
            match rec {
                Some(r) => {
                    pipe.hset(&key, field, schema::encode_record(r)).ignore();
                    pipe.publish(
                        schema::CHANNEL,
                        self.event(Op::Set {
                            field: field.clone(),
                            rec: r.clone(),
                        }),
                    )
                    .ignore();
                }
                None => {
                    pipe.hdel(&key, field).ignore();
                    pipe.publish(
                        schema::CHANNEL,
                        self.event(Op::Del {
                            field: field.clone(),
                        }),
                    )
                    .ignore();
                }
            }
        }
        pipe.pexpire(&key, self.ttl_ms() as i64).ignore();
        timed(pipe.query_async::<()>(con)).await?;
        self.published = table;
        let n = changes.len() as u64;
        self.link.update(|s| s.published += n);
        Ok(())
    }

    /// A call ended here: tell the others, drop its foreign copies, and
    /// release claims of it no local call holds (adopted pinholes).
    async fn on_local_end(
        &mut self,
        con: &mut MultiplexedConnection,
        end: EndKey,
    ) -> Result<(), SessionError> {
        timed(con.publish::<_, _, ()>(schema::CHANNEL, self.event(Op::End { end: end.clone() })))
            .await?;
        self.end_foreign(&end).await?;
        self.op(HaOp::End {
            end,
            seen_here: true,
        })
        .await?;
        Ok(())
    }

    async fn end_foreign(&mut self, end: &EndKey) -> Result<(), SessionError> {
        let hits: Vec<(String, Record)> = self
            .foreign
            .iter()
            .flat_map(|(n, recs)| {
                recs.values()
                    .filter(|r| r.ended_by(end))
                    .map(move |r| (n.clone(), r.clone()))
            })
            .collect();
        for (node, rec) in hits {
            self.remove(&node, &rec).await?;
        }
        self.count_foreign();
        Ok(())
    }

    async fn on_message(
        &mut self,
        con: &mut MultiplexedConnection,
        raw: &[u8],
    ) -> Result<(), SessionError> {
        let ev = match Event::decode(raw, &self.cfg.media_ports) {
            Ok(ev) => ev,
            Err(e) => {
                self.link.update(|s| s.refused += 1);
                debug!("HA: refused a message: {e}");
                return Ok(());
            }
        };
        if ev.node == self.cfg.node {
            return Ok(());
        }
        match ev.op {
            Op::Set { rec, .. } => {
                if self.install(&ev.node, rec).await? {
                    let lag = now_ms().saturating_sub(ev.at_ms);
                    self.link.update(|s| {
                        s.applied += 1;
                        s.lag_ms_last = lag;
                        s.lag_ms_max = s.lag_ms_max.max(lag);
                    });
                }
            }
            Op::Del { field } => {
                let rec = self
                    .foreign
                    .get(&ev.node)
                    .and_then(|r| r.get(&field))
                    .cloned();
                if let Some(rec) = rec {
                    self.remove(&ev.node, &rec).await?;
                    self.link.update(|s| s.applied += 1);
                }
            }
            Op::End { end } => {
                self.end_foreign(&end).await?;
                self.op(HaOp::End {
                    end,
                    seen_here: false,
                })
                .await?;
                self.link.update(|s| s.applied += 1);
            }
            Op::Sync => self.resync_node(con, &ev.node).await?,
        }
        self.count_foreign();
        Ok(())
    }

    /// Refreshes this node's TTLs; adopts the pinholes of peers whose
    /// heartbeat expired.
    async fn heartbeat(&mut self, con: &mut MultiplexedConnection) -> Result<(), SessionError> {
        let mut pipe = redis::pipe();
        pipe.set_options(
            schema::alive_key(&self.cfg.node),
            now_ms(),
            redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(self.ttl_ms())),
        )
        .ignore();
        pipe.pexpire(schema::pinholes_key(&self.cfg.node), self.ttl_ms() as i64)
            .ignore();
        timed(pipe.query_async::<()>(con)).await?;
        let nodes: Vec<String> = self.foreign.keys().cloned().collect();
        for node in nodes {
            let alive: bool = timed(con.exists(schema::alive_key(&node))).await?;
            if !alive {
                warn!(%node, "HA: node's keys expired, adopting its pinholes");
                self.adopt_node(&node).await?;
            }
        }
        Ok(())
    }
}
