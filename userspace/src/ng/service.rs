//! The ng request → reply logic, pure: the allow-list, the reply cache,
//! decoding, SDP parsing and reply encoding. What a command does to calls
//! and pinholes sits behind [`NgBackend`]; [`CallsBackend`] implements it
//! over [`Calls`] and a small [`Pinholes`] trait for the table and the flow
//! map, so the daemon only supplies the latter.
//!
//! Nothing here panics on input: every failure becomes `result: error` with
//! an `error-reason`, except datagrams without a cookie and from peers
//! outside the allow-list, which get no reply at all (counted).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use super::bencode::{Limits, Value};
use super::cache::{CacheConfig, ReplyCache};
use super::wire::{self, CallRef, Delete, Format, NgCommand, NgRequest, OfferAnswer};
use crate::calls::{media_of, ApiError, CallInfo, Calls, Intent, Media};
use crate::metrics::{SignalingCount, Snapshot};
use crate::signaling::sdp;

/// Largest request accepted by default, cookie included: eight times a
/// large WebRTC offer. Larger ones get `result: error`.
pub const DEFAULT_MAX_REQUEST: usize = 32 * 1024;

/// Receive buffer for the UDP listener: larger than any UDP payload, so
/// nothing is truncated and an oversized request is seen as such.
pub const RECV_BUFFER: usize = 65_536;

/// Largest reply sent (below the 65 507-byte UDP payload limit of IPv4).
pub const MAX_REPLY: usize = 65_000;

/// Service settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NgConfig {
    /// Only these networks may send requests; datagrams from elsewhere are
    /// dropped without reply. Default: loopback only.
    pub allow: Vec<IpNet>,
    /// Largest request accepted, cookie included.
    pub max_request: usize,
    pub cache: CacheConfig,
}

impl Default for NgConfig {
    fn default() -> Self {
        NgConfig {
            allow: vec![
                "127.0.0.0/8".parse().expect("valid network"),
                "::1/128".parse().expect("valid network"),
            ],
            max_request: DEFAULT_MAX_REQUEST,
            cache: CacheConfig::default(),
        }
    }
}

/// Packets and bytes of one flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub packets: u64,
    pub bytes: u64,
}

impl Totals {
    fn add(self, o: Totals) -> Totals {
        Totals {
            packets: self.packets.saturating_add(o.packets),
            bytes: self.bytes.saturating_add(o.bytes),
        }
    }

    fn value(self) -> Value {
        Value::dict([
            ("packets", Value::uint(self.packets)),
            ("bytes", Value::uint(self.bytes)),
        ])
    }
}

/// One open pair of a call, with its traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamStats {
    /// The caller's tag, and the callee's tag of the dialog.
    pub from_tag: String,
    pub to_tag: String,
    /// Index of the `m=` line, from 0.
    pub index: usize,
    pub rtcp: bool,
    /// The caller's end and the callee's end.
    pub a: SocketAddr,
    pub b: SocketAddr,
    pub a_to_b: Totals,
    pub b_to_a: Totals,
}

/// A call's (or several calls') streams and times, for `query` and `delete`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Unix seconds.
    pub created: u64,
    pub last_signal: u64,
    pub streams: Vec<StreamStats>,
}

/// Why a backend operation did not simply succeed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// No call matches: an error for `answer` and `query` (and `delete`
    /// with the `fatal` flag), a warning for `delete`.
    #[error("Unknown call-ID")]
    UnknownCall,
    /// Nothing was done, but nothing is wrong: `result: ok` with this
    /// `warning`.
    #[error("{0}")]
    Warning(String),
    /// `result: error` with this reason.
    #[error("{0}")]
    Failed(String),
}

/// rtpengine's `error-reason` when it has no port left for a call, which
/// Kamailio's and OpenSIPS's modules take as "try the next node".
pub const OUT_OF_PORTS: &str = "Ran out of ports";
/// rtpengine's `error-reason` at its session limit, which the modules
/// also fail over on.
pub const SESSION_LIMIT: &str = "Parallel session limit reached";

impl From<ApiError> for BackendError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::UnknownCall => BackendError::UnknownCall,
            ApiError::TableFull => BackendError::Failed(SESSION_LIMIT.into()),
            e if e.is_warning() => BackendError::Warning(e.to_string()),
            e => BackendError::Failed(e.to_string()),
        }
    }
}

/// What the commands do, implemented by the daemon (see [`CallsBackend`]).
pub trait NgBackend {
    /// `offer`, with the SDP already parsed (`media`, in `m=` order).
    fn offer(&mut self, req: &OfferAnswer, media: &[Media]) -> Result<(), BackendError>;
    /// `answer` (`req.to_tag` is set).
    fn answer(&mut self, req: &OfferAnswer, media: &[Media]) -> Result<(), BackendError>;
    /// `delete`: the deleted call's streams, as `query` would report them.
    fn delete(&mut self, req: &Delete) -> Result<CallStats, BackendError>;
    /// `query`.
    fn query(&mut self, req: &CallRef) -> Result<CallStats, BackendError>;
    /// `list`: at most `limit` Call-IDs.
    fn list(&mut self, limit: usize) -> Vec<String>;
    /// `statistics`.
    fn statistics(&mut self) -> Snapshot;
}

/// Requests handled, for metrics and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NgCounters {
    /// By [`NgCommand`] (as [`NgCommand::ALL`]): `result: ok` or `pong`.
    pub ok: [u64; NgCommand::ALL.len()],
    /// By [`NgCommand`]: `result: error` from the command itself.
    pub errors: [u64; NgCommand::ALL.len()],
    /// Malformed, oversized or unknown requests (`result: error`).
    pub invalid: u64,
    /// Requests answered from the reply cache.
    pub retransmissions: u64,
    /// Datagrams without a cookie (no reply).
    pub no_cookie: u64,
    /// Datagrams from outside the allow-list (no reply).
    pub denied: u64,
}

impl NgCounters {
    /// The counters as `kind="ng"` signaling messages.
    pub fn signaling_counts(&self) -> Vec<SignalingCount> {
        let ng = |outcome, count| SignalingCount {
            kind: "ng",
            outcome,
            count,
        };
        vec![
            ng("ok", self.ok.iter().sum()),
            ng("error", self.errors.iter().sum()),
            ng("invalid", self.invalid),
            ng("retransmission", self.retransmissions),
            ng("no_cookie", self.no_cookie),
            ng("denied", self.denied),
        ]
    }
}

/// The ng service: one per listener.
#[derive(Debug)]
pub struct NgService {
    cfg: NgConfig,
    cache: ReplyCache,
    counters: NgCounters,
}

impl NgService {
    pub fn new(cfg: NgConfig) -> Self {
        NgService {
            cache: ReplyCache::new(cfg.cache),
            cfg,
            counters: NgCounters::default(),
        }
    }

    pub fn counters(&self) -> &NgCounters {
        &self.counters
    }

    /// The reply to one datagram from `peer`, or `None` when it gets none.
    /// `now`: monotonic nanoseconds, for the reply cache.
    pub fn handle(
        &mut self,
        backend: &mut dyn NgBackend,
        peer: SocketAddr,
        datagram: &[u8],
        now: u64,
    ) -> Option<Vec<u8>> {
        if !allowed(&self.cfg.allow, peer.ip()) {
            self.counters.denied += 1;
            return None;
        }
        let Ok((cookie, body)) = wire::split(datagram) else {
            self.counters.no_cookie += 1;
            return None;
        };
        if let Some(reply) = self.cache.get(peer, cookie, now) {
            self.counters.retransmissions += 1;
            return Some(reply.to_vec());
        }
        let format = wire::Format::of(body);
        let reply = if datagram.len() > self.cfg.max_request {
            self.counters.invalid += 1;
            wire::reply_error(&format!(
                "request of {} bytes exceeds the {}-byte limit",
                datagram.len(),
                self.cfg.max_request
            ))
        } else {
            let limits = Limits {
                max_input: self.cfg.max_request,
                ..Limits::default()
            };
            match wire::parse_request(body, limits) {
                Ok(req) => {
                    let command = req.command();
                    let room = MAX_REPLY - cookie.len() - 1;
                    let reply = execute(backend, req, room, format);
                    let is_error = reply.get("result").and_then(Value::as_str) == Some("error");
                    let counts = if is_error {
                        &mut self.counters.errors
                    } else {
                        &mut self.counters.ok
                    };
                    counts[command as usize] += 1;
                    reply
                }
                Err(e) => {
                    self.counters.invalid += 1;
                    wire::reply_error(&e.to_string())
                }
            }
        };
        let mut out = wire::frame_as(cookie, &reply, format);
        if out.len() > MAX_REPLY {
            out = wire::frame_as(
                cookie,
                &wire::reply_error("reply too large for a datagram"),
                format,
            );
        }
        self.cache.insert(peer, cookie, out.clone(), now);
        Some(out)
    }
}

/// The streams of an SDP body, or the reason it cannot be read.
fn parse_sdp(body: &[u8]) -> Result<Vec<Media>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "SDP is not valid UTF-8".to_string())?;
    let sd = sdp::parse(text).map_err(|e| format!("malformed SDP: {e}"))?;
    Ok(media_of(&sd))
}

fn render_error(e: BackendError, extra: Vec<(&str, Value)>) -> Value {
    match e {
        BackendError::Warning(w) => {
            let mut extra = extra;
            extra.push(("warning", Value::str(&w)));
            wire::reply_ok(extra)
        }
        e => wire::reply_error(&e.to_string()),
    }
}

/// Runs one request; `room`: bytes the reply may take in `format`.
fn execute(backend: &mut dyn NgBackend, req: NgRequest, room: usize, format: Format) -> Value {
    match req {
        NgRequest::Ping => wire::reply_pong(),
        NgRequest::Offer(oa) => offer_answer(backend, &oa, true),
        NgRequest::Answer(oa) => offer_answer(backend, &oa, false),
        NgRequest::Delete(d) => match backend.delete(&d) {
            Ok(stats) => wire::reply_ok(stats_entries(&stats)),
            Err(BackendError::UnknownCall) if !d.fatal => {
                wire::reply_warning("Call-ID not found or tags didn't match")
            }
            Err(e) => render_error(e, Vec::new()),
        },
        NgRequest::Query(c) => match backend.query(&c) {
            Ok(stats) => wire::reply_ok(stats_entries(&stats)),
            Err(e) => render_error(e, Vec::new()),
        },
        NgRequest::List { limit } => {
            let ids = backend.list(limit.min(u16::MAX.into()));
            // Stop before the reply outgrows a datagram.
            let empty = wire::reply_ok([("calls", Value::List(Vec::new()))]);
            let mut size = wire::frame_as(b"", &empty, format).len();
            let mut calls = Vec::new();
            for id in ids.into_iter().take(limit) {
                size = size.saturating_add(match format {
                    // `N:id`
                    Format::Bencode => id.len().to_string().len() + 1 + id.len(),
                    // `"id",`
                    Format::Json => serde_json::to_string(&id).map_or(usize::MAX, |j| j.len() + 1),
                });
                if size > room {
                    break;
                }
                calls.push(Value::str(&id));
            }
            wire::reply_ok([("calls", Value::List(calls))])
        }
        NgRequest::Statistics => {
            wire::reply_ok([("statistics", statistics(&backend.statistics()))])
        }
    }
}

/// `offer` or `answer`: the SDP goes back unchanged, pinhole filters and
/// does not relay; options that would need it changed are refused.
fn offer_answer(backend: &mut dyn NgBackend, oa: &OfferAnswer, offer: bool) -> Value {
    let media = match parse_sdp(&oa.sdp) {
        Ok(media) => media,
        Err(reason) => return wire::reply_error(&reason),
    };
    // parse_sdp checked that the SDP is UTF-8.
    let text = String::from_utf8_lossy(&oa.sdp);
    if let Some(reason) = oa.options.refusal(&text, &media) {
        return wire::reply_error(&reason);
    }
    let media = oa.options.apply(media);
    let r = if offer {
        backend.offer(oa, &media)
    } else {
        backend.answer(oa, &media)
    };
    let sdp = vec![("sdp", Value::Bytes(oa.sdp.clone()))];
    match r {
        Ok(()) => wire::reply_ok(sdp),
        Err(e) => render_error(e, sdp),
    }
}

/// `created`, `last signal`, `totals` (rtpengine's RTP/RTCP packets and
/// bytes, received from the ends) and pinhole's `streams`.
fn stats_entries(s: &CallStats) -> Vec<(&'static str, Value)> {
    let mut rtp = Totals::default();
    let mut rtcp = Totals::default();
    let mut streams = Vec::new();
    for st in &s.streams {
        let both = st.a_to_b.add(st.b_to_a);
        if st.rtcp {
            rtcp = rtcp.add(both);
        } else {
            rtp = rtp.add(both);
        }
        streams.push(Value::dict([
            ("from-tag", Value::str(&st.from_tag)),
            ("to-tag", Value::str(&st.to_tag)),
            ("index", Value::uint(st.index as u64 + 1)),
            ("type", Value::str(if st.rtcp { "RTCP" } else { "RTP" })),
            ("a", Value::str(&st.a.to_string())),
            ("b", Value::str(&st.b.to_string())),
            ("a-to-b", st.a_to_b.value()),
            ("b-to-a", st.b_to_a.value()),
            ("packets", Value::uint(both.packets)),
            ("bytes", Value::uint(both.bytes)),
        ]));
    }
    let with_errors = |t: Totals| {
        let mut v = t.value();
        if let Value::Dict(d) = &mut v {
            d.insert(b"errors".to_vec(), Value::Int(0));
        }
        v
    };
    vec![
        ("created", Value::uint(s.created)),
        ("last signal", Value::uint(s.last_signal)),
        (
            "totals",
            Value::dict([("RTP", with_errors(rtp)), ("RTCP", with_errors(rtcp))]),
        ),
        ("streams", Value::List(streams)),
    ]
}

/// rtpengine's `currentstatistics` and `totalstatistics` where pinhole has
/// an equivalent, and pinhole's own numbers under `pinhole`.
fn statistics(s: &Snapshot) -> Value {
    use pinhole_common::Reason;
    let sessions = s.calls_active + s.rtsp_sessions_active;
    let verdicts = Value::Dict(
        Reason::ALL
            .iter()
            .zip(&s.verdicts)
            .map(|(r, c)| {
                let v = Totals {
                    packets: c.packets,
                    bytes: c.bytes,
                }
                .value();
                (r.name().as_bytes().to_vec(), v)
            })
            .collect(),
    );
    let mut signaling = std::collections::BTreeMap::<Vec<u8>, Value>::new();
    for m in &s.signaling {
        let kind = signaling
            .entry(m.kind.as_bytes().to_vec())
            .or_insert_with(|| Value::dict([]));
        if let Value::Dict(d) = kind {
            d.insert(m.outcome.as_bytes().to_vec(), Value::uint(m.count));
        }
    }
    let refusals = Value::dict(s.refusals.iter().map(|(r, n)| (*r, Value::uint(*n))));
    let hit = &s.verdicts[Reason::Hit as usize];
    Value::dict([
        (
            "currentstatistics",
            Value::dict([
                ("sessionsown", Value::uint(sessions)),
                ("sessionsforeign", Value::Int(0)),
                ("sessionstotal", Value::uint(sessions)),
            ]),
        ),
        (
            "totalstatistics",
            Value::dict([("relayedpackets", Value::uint(hit.packets))]),
        ),
        (
            "pinhole",
            Value::dict([
                ("verdicts", verdicts),
                ("pinholes", Value::uint(s.pinholes_open)),
                ("calls", Value::uint(s.calls_active)),
                ("rtsp-sessions", Value::uint(s.rtsp_sessions_active)),
                (
                    "flows",
                    Value::dict([
                        ("used", Value::uint(s.flows_used)),
                        ("capacity", Value::uint(s.flows_capacity)),
                    ]),
                ),
                ("signaling", Value::Dict(signaling)),
                ("refusals", refusals),
            ]),
        ),
    ])
}

/// What [`CallsBackend`] needs from the daemon besides the call state.
pub trait Pinholes {
    /// Carries out the call state's intents against the pinhole table and
    /// the flow map, as for observed signaling. Returns why some could not
    /// be carried out.
    fn apply(&mut self, intents: Vec<Intent>) -> Result<(), ApplyFailure>;
    /// Flows the table can still take (each pair takes two).
    fn free_flows(&self) -> usize;
    /// Packets and bytes of the flow `src` → `dst` so far (zero if none).
    fn flow_totals(&self, src: SocketAddr, dst: SocketAddr) -> Totals;
    /// The global numbers for `statistics`.
    fn snapshot(&self) -> Snapshot;
    /// Unix seconds for a timestamp of the call state (monotonic ns).
    fn unix_secs(&self, mono_ns: u64) -> u64;
}

/// Why [`Pinholes::apply`] did not carry everything out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyFailure {
    /// Some open failed because the table or the flow map is full: the
    /// proxy gets [`OUT_OF_PORTS`], so it tries its next node.
    pub full: bool,
    /// What failed, for a failure that is not `full` (the reply's
    /// `warning`: the call itself stands).
    pub reason: String,
}

/// [`NgBackend`] over the call state and a [`Pinholes`] implementation;
/// built per request (`now`: monotonic nanoseconds, the call state's clock).
pub struct CallsBackend<'a, P: Pinholes> {
    pub calls: &'a mut Calls,
    pub pinholes: &'a mut P,
    pub now: u64,
}

impl<P: Pinholes> CallsBackend<'_, P> {
    fn applied(&mut self, r: Result<Vec<Intent>, ApiError>) -> Result<(), BackendError> {
        let intents = r?;
        match self.pinholes.apply(intents) {
            Ok(()) => Ok(()),
            Err(f) if f.full => Err(BackendError::Failed(OUT_OF_PORTS.into())),
            Err(f) => Err(BackendError::Warning(f.reason)),
        }
    }

    fn stats(&self, found: &[CallInfo]) -> CallStats {
        call_stats(
            found,
            |s, d| self.pinholes.flow_totals(s, d),
            |t| self.pinholes.unix_secs(t),
        )
    }
}

/// The streams and times of `calls` (merged), with traffic from `flow`.
pub fn call_stats(
    calls: &[CallInfo],
    flow: impl Fn(SocketAddr, SocketAddr) -> Totals,
    unix_secs: impl Fn(u64) -> u64,
) -> CallStats {
    let mut out = CallStats::default();
    let (Some(created), Some(last)) = (
        calls.iter().map(|c| c.created).min(),
        calls.iter().map(|c| c.last_signal).max(),
    ) else {
        return out;
    };
    out.created = unix_secs(created);
    out.last_signal = unix_secs(last);
    for c in calls {
        for s in &c.streams {
            for (pair, rtcp) in [(s.rtp, false), (s.rtcp, true)] {
                if let Some((a, b)) = pair {
                    out.streams.push(StreamStats {
                        from_tag: c.key.caller_tag.clone(),
                        to_tag: s.dialog.clone(),
                        index: s.index,
                        rtcp,
                        a,
                        b,
                        a_to_b: flow(a, b),
                        b_to_a: flow(b, a),
                    });
                }
            }
        }
    }
    out
}

impl<P: Pinholes> NgBackend for CallsBackend<'_, P> {
    fn offer(&mut self, req: &OfferAnswer, media: &[Media]) -> Result<(), BackendError> {
        // rtpengine allocates a new call's ports on the offer, and says so
        // when it cannot: the proxy then offers the call to its next node.
        // The pairs open on the answer; a table without room for them now
        // will not have it then.
        let new = self
            .calls
            .find_sip_calls(&req.call_id, Some(&req.from_tag), req.to_tag.as_deref())
            .is_empty();
        if new && self.pinholes.free_flows() < flows_needed(media) {
            return Err(BackendError::Failed(OUT_OF_PORTS.into()));
        }
        let r = self.calls.on_api_offer(
            &req.call_id,
            &req.from_tag,
            req.to_tag.as_deref(),
            media,
            req.options.source(),
            self.now,
        );
        self.applied(r)
    }

    fn answer(&mut self, req: &OfferAnswer, media: &[Media]) -> Result<(), BackendError> {
        let to_tag = req.to_tag.as_deref().ok_or(BackendError::UnknownCall)?;
        let r = self.calls.on_api_answer(
            &req.call_id,
            &req.from_tag,
            to_tag,
            media,
            req.options.source(),
            self.now,
        );
        self.applied(r)
    }

    fn delete(&mut self, req: &Delete) -> Result<CallStats, BackendError> {
        let c = &req.call;
        let found =
            self.calls
                .find_sip_calls(&c.call_id, c.from_tag.as_deref(), c.to_tag.as_deref());
        let stats = self.stats(&found);
        let r = self.calls.on_api_delete(
            &c.call_id,
            c.from_tag.as_deref(),
            c.to_tag.as_deref(),
            req.delete_delay.map(Duration::from_secs),
            self.now,
        );
        self.applied(r).map(|()| stats)
    }

    fn query(&mut self, req: &CallRef) -> Result<CallStats, BackendError> {
        let found =
            self.calls
                .find_sip_calls(&req.call_id, req.from_tag.as_deref(), req.to_tag.as_deref());
        if found.is_empty() {
            return Err(BackendError::UnknownCall);
        }
        Ok(self.stats(&found))
    }

    fn list(&mut self, limit: usize) -> Vec<String> {
        self.calls
            .sip_call_ids()
            .take(limit)
            .map(str::to_string)
            .collect()
    }

    fn statistics(&mut self) -> Snapshot {
        let mut s = self.pinholes.snapshot();
        s.calls_active = self.calls.active_calls() as u64;
        s.rtsp_sessions_active = self.calls.active_sessions() as u64;
        s
    }
}

/// Flows the pairs of `media` take once answered: two per RTP pair, two per
/// RTCP pair unless the offer multiplexes (held and rejected streams none).
pub fn flows_needed(media: &[Media]) -> usize {
    media
        .iter()
        .filter(|m| {
            !m.hold
                && m.rtp
                    .is_some_and(|a| a.port() != 0 && !a.ip().is_unspecified())
        })
        .map(|m| if m.rtcp_mux || m.rtcp.is_none() { 2 } else { 4 })
        .sum()
}

/// Whether `ip` is in one of `nets` (IPv4-mapped IPv6 counts as IPv4).
pub fn allowed(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    nets.iter().any(|n| n.contains(&ip))
}
