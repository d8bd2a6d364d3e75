//! [`Core`]: the pinhole table and the flow store kept in step: open, close,
//! apply intents, expire.

use std::{
    net::SocketAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use pinhole_common::{Counter, FlowKey, LatchValue, Reason, LAST_SEEN_GRANULARITY_NS};
use tracing::{debug, error, info, warn};

use super::{
    latching::{ClaimKey, How, LatchHost, Latching, PRE_ANSWER_SUFFIX},
    CommandError, ControllerConfig, FlowStore, EXPIRY_BUDGET, NG_OWNER_PREFIX, NS_PER_SEC,
};
use crate::{
    addr::{flow_endpoints, flow_key, Endpoint, Pair},
    calls::{CloseCause, Counters as CallCounters, Intent, Owner, Refusal},
    clock::RateLimit,
    controller::report::{CloseReply, OpenParams, OpenReply, MAX_OWNER_LEN},
    controller::table::TableError,
    controller::table::{owner_name, MapOp, OpenOutcome, OpenRequest, PinholeId, PinholeTable},
    datapath::error::StoreError,
    datapath::latch::{LatchKey, Latched},
    datapath::maps::Inserted,
    metrics::{SignalingCount, Snapshot},
    ng::{ApplyFailure, Pinholes, Totals},
};

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
pub(super) enum Source {
    Observed,
    Ng,
}

/// What applying a batch of intents did.
#[derive(Debug, Default)]
pub(super) struct Applied {
    pub(super) opened: usize,
    /// Why opens failed, one entry per failed open.
    pub(super) failures: Vec<String>,
    /// Of those, failures because the table or the flow map is full.
    pub(super) full: usize,
}
/// The pinhole table, the flow store and what keeps them in step.
pub(super) struct Core<S> {
    pub(super) table: PinholeTable,
    pub(super) store: S,
    pub(super) config: ControllerConfig,
    /// Flows the table dropped but the store failed to remove; retried every
    /// tick so a closed pinhole cannot stay open in the kernel.
    pub(super) pending_removals: Vec<FlowKey>,
    pub(super) applied: ApplyCounters,
    pub(super) full_log: RateLimit,
    pub(super) fail_log: RateLimit,
    /// Half-open pinholes (bounded latching). Lent to its steps by
    /// [`Core::latching`], which hands them `self` as their [`LatchHost`].
    pub(super) latching: Latching,
}

/// The owner tag of a call's pinholes: `sip:…`/`rtsp:…` for observed
/// signaling, `ng:<call-id>;from-tag=…` for calls a proxy drives.
pub(super) fn owner_tag(owner: &Owner, source: Source) -> String {
    match (owner, source) {
        (Owner::Sip(k), Source::Ng) => {
            format!("{NG_OWNER_PREFIX}{};from-tag={}", k.call_id, k.caller_tag)
        }
        _ => owner.to_string(),
    }
}
pub(super) fn refusals(calls: &CallCounters, applied: &ApplyCounters) -> Vec<(&'static str, u64)> {
    let mut v: Vec<(&'static str, u64)> = Refusal::ALL
        .iter()
        .map(|r| (r.name(), calls.refused(*r)))
        .collect();
    v.push(("map_full", applied.map_full));
    v
}

/// Whether an open failed for want of room in the table or the flow map.
pub(super) fn is_full(e: &CommandError) -> bool {
    matches!(
        e,
        CommandError::Table(TableError::Full { .. })
            | CommandError::Store(StoreError::MapFull | StoreError::LatchMapFull)
    )
}

/// [`Pinholes`] for one ng request: the controller's table and map.
pub(super) struct NgPinholes<'a, S> {
    pub(super) core: &'a mut Core<S>,
    /// Pairs this request opened.
    pub(super) opened: usize,
    /// For `statistics`: counters the request cannot borrow meanwhile.
    pub(super) signaling: Vec<SignalingCount>,
    pub(super) refusals: Vec<(&'static str, u64)>,
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
    pub(super) fn now(&self) -> u64 {
        (self.config.clock)()
    }

    pub(super) fn open(&mut self, params: OpenParams) -> Result<OpenReply, CommandError> {
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
            .is_some_and(|o| o.starts_with(super::foreign::FOREIGN_TAG))
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
    pub(super) fn open_request(
        &mut self,
        req: OpenRequest,
    ) -> Result<(PinholeId, OpenOutcome), CommandError> {
        self.open_request_with(req, &[])
    }

    /// [`open_request`](Self::open_request) for a pair whose flows
    /// `installed` are in the map already (the XDP program latched them):
    /// finding them there is expected.
    pub(super) fn open_request_with(
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
    pub(super) fn apply(&mut self, intents: Vec<Intent>, source: Source) -> Applied {
        let mut out = Applied::default();
        // The calls layer opens an answer's pairs before it closes the
        // provisional ones, so that a latched pair the answer confirms keeps
        // its flows. A provisional pair that never latched holds only a
        // reservation in the table: release those first, so that the
        // answer can use their room when the table is full to the last flow.
        let (first, rest): (Vec<Intent>, Vec<Intent>) = intents.into_iter().partition(|i| {
            matches!(i, Intent::Close { owner, a, b, .. }
            if self.latching.is_waiting_pre_answer(&ClaimKey {
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
                    let how = How {
                        side,
                        from,
                        window,
                        idle: idle_timeout,
                        pre_answer,
                    };
                    match self.latching(|l, core| l.arm(core, &tag, a, b, how)) {
                        Ok(()) => out.opened += 1,
                        // No provisional pair is no refusal: the answer
                        // still opens what it justifies.
                        Err(e) if pre_answer => {
                            let now = self.now();
                            self.latching.pre_answer_unarmed(now, &tag, a, b, e);
                        }
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

    pub(super) fn open_signaled(
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

    pub(super) fn open_failed(
        &mut self,
        owner: &str,
        a: SocketAddr,
        b: SocketAddr,
        e: CommandError,
    ) {
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
    pub(super) fn close_signaled(
        &mut self,
        owner: &Owner,
        a: SocketAddr,
        b: SocketAddr,
        cause: CloseCause,
    ) {
        let claim = |source| ClaimKey {
            owner: owner_tag(owner, source),
            a,
            b,
        };
        // A latch claims under the tag of the request that armed it: an ng
        // call's under its `ng:` tag, while its closes may come from the
        // timers (observed) as well as from ng requests.
        if self.latching(|l, core| l.release(core, &claim(Source::Observed), cause))
            || self.latching(|l, core| l.release(core, &claim(Source::Ng), cause))
            || Latching::release_unknown_pre_answer(self, &claim(Source::Observed), cause)
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
    pub(super) fn retime_signaled(
        &mut self,
        owner: &Owner,
        a: SocketAddr,
        b: SocketAddr,
        idle: Duration,
    ) {
        let claim = ClaimKey {
            owner: owner_tag(owner, Source::Observed),
            a,
            b,
        };
        if self.latching(|l, core| l.retime(core, &claim, idle)) {
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
    pub(super) fn expire(&mut self) -> (Vec<(Owner, SocketAddr, SocketAddr)>, bool) {
        let now = self.now();
        let Core { table, store, .. } = self;
        let step = table.expire_some(now, EXPIRY_BUDGET, |k| last_seen(store, k, now));
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
    pub(super) fn expired_claim(
        &mut self,
        tag: &str,
        pair: &Pair,
    ) -> Option<(Owner, SocketAddr, SocketAddr)> {
        let (base, pre_answer) = match tag.strip_suffix(PRE_ANSWER_SUFFIX) {
            Some(base) => (base, true),
            None => (tag, false),
        };
        let (a, b) = match self.latching.forget_expired(base, pre_answer, pair) {
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
    pub(super) fn signaled_last_seen(
        &self,
        owner: &Owner,
        a: SocketAddr,
        b: SocketAddr,
    ) -> Option<u64> {
        let claim = ClaimKey {
            owner: owner_tag(owner, Source::Observed),
            a,
            b,
        };
        let (src, dst) = match self.latching.latched_pair(&claim) {
            Some(p) => (p.a(), p.b()),
            None => (Endpoint::new(a).ok()?, Endpoint::new(b).ok()?),
        };
        last_seen(&self.store, &flow_key(src, dst), self.now())
    }

    /// Runs one step of latching with `self` as its host. The latch state
    /// is taken out of `self` for the step, so the step may borrow the rest
    /// of `self` mutably; no [`LatchHost`] method reads it.
    pub(super) fn latching<R>(&mut self, step: impl FnOnce(&mut Latching, &mut Self) -> R) -> R {
        let mut latching = std::mem::take(&mut self.latching);
        let out = step(&mut latching, self);
        self.latching = latching;
        out
    }

    /// Adopts one report of the XDP program (see [`Latching::on_latched`]).
    pub(super) fn on_latched(&mut self, ev: Latched) {
        self.latching(|l, core| l.on_latched(core, ev));
    }

    /// Removes lapsed latch entries (see [`Latching::expire`]).
    pub(super) fn expire_latches(&mut self) {
        self.latching(|l, core| l.expire(core));
    }

    /// `signaling.detail.latching` of `stats --json`.
    pub(super) fn latch_stats(&self) -> serde_json::Value {
        self.latching.stats(self.table.reserved())
    }

    /// Retries removals that failed.
    pub(super) fn retry_removals(&mut self) {
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
    pub(super) fn flow_totals(&self, src: SocketAddr, dst: SocketAddr) -> Totals {
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
    pub(super) fn snapshot(
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
            latch_events: self.latching.counters().events(),
            queue: None,
        }
    }

    /// Applies removes; returns how many entries were removed or queued.
    pub(super) fn apply_removes(&mut self, ops: &[MapOp]) -> usize {
        let mut n = 0;
        for op in ops {
            if let MapOp::Remove(k) = op {
                self.remove_flow(k);
                n += 1;
            }
        }
        n
    }

    pub(super) fn remove_flow(&mut self, key: &FlowKey) {
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

impl<S: FlowStore> LatchHost for Core<S> {
    fn now(&self) -> u64 {
        Core::now(self)
    }

    fn table(&mut self) -> &mut PinholeTable {
        &mut self.table
    }

    fn arm_latch(&mut self, key: &LatchKey, value: LatchValue) -> Result<(), StoreError> {
        self.store.arm_latch(key, value)
    }

    fn disarm_latch(&mut self, key: &LatchKey) -> Result<bool, StoreError> {
        self.store.disarm_latch(key)
    }

    fn open_request_with(
        &mut self,
        req: OpenRequest,
        installed: &[FlowKey],
    ) -> Result<(PinholeId, OpenOutcome), CommandError> {
        Core::open_request_with(self, req, installed)
    }

    fn open_failed(&mut self, owner: &str, a: SocketAddr, b: SocketAddr, e: CommandError) {
        Core::open_failed(self, owner, a, b, e);
    }

    fn apply_removes(&mut self, ops: &[MapOp]) -> usize {
        Core::apply_removes(self, ops)
    }

    fn remove_flow(&mut self, key: &FlowKey) {
        Core::remove_flow(self, key);
    }

    fn latch_map_full(&mut self, key: &LatchKey, remote: SocketAddr, now: u64) {
        self.applied.map_full += 1;
        if let Some(n) = self.full_log.allow(now) {
            error!(%key, %remote, map_full_total = self.applied.map_full, suppressed = n,
                "LATCH REFUSED, flow map full (raise --max-pinholes)");
        }
    }
}

/// When `key` last carried a packet, at the latest: the XDP program stamps
/// `last_seen_ns` only when it lags by [`LAST_SEEN_GRANULARITY_NS`], so the
/// newest packet may be up to that much later than the stamp. Adding it means
/// idle expiry never fires early on a live flow; it may fire up to 1 s late.
/// The bound is clamped to `now`: no packet came later than now, and every
/// consumer (idle expiry, the call timers) compares it with now.
pub(super) fn last_seen<S: FlowStore>(store: &S, key: &FlowKey, now: u64) -> Option<u64> {
    match store.get(key) {
        Ok(Some(s)) if s.last_seen_ns != 0 => Some(
            s.last_seen_ns
                .saturating_add(LAST_SEEN_GRANULARITY_NS)
                .min(now),
        ),
        Ok(_) => None,
        Err(e) => {
            warn!(flow = %FlowDisplay(key), "reading flow stats failed: {e}");
            None
        }
    }
}

/// `src -> dst` for logs.
pub(super) struct FlowDisplay<'a>(pub(super) &'a FlowKey);

impl std::fmt::Display for FlowDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match flow_endpoints(self.0) {
            Some((s, d)) => write!(f, "{s} -> {d}"),
            None => write!(f, "{:?}", self.0),
        }
    }
}
