//! RTSP sessions (RFC 2326, RFC 7826): SETUP request/response pairs become
//! RTP and RTCP pairs between client and server; TEARDOWN or a session
//! timeout without keep-alive closes them.
//!
//! A SETUP request is remembered by (client, server, CSeq) until its response
//! arrives. A 2xx response with a Session id adds the stream to the session
//! keyed by (server address, Session id): RTP pair client `client_port` RTP
//! ↔ server `server_port` RTP, and RTCP pair between the second ports.
//! Interleaved transport (media inside the RTSP TCP connection) opens nothing.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::pairs::{Candidate, PairSet};
use super::policy::canonical;
use super::{limit, CloseCause, Ctx, Owner, Refusal, SessionKey};

/// RTSP methods the session state distinguishes. Every request carrying a
/// Session id is a keep-alive for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtspMethod {
    Setup,
    Play,
    Pause,
    Teardown,
    /// OPTIONS, GET_PARAMETER, SET_PARAMETER, DESCRIBE, RECORD, …
    Other,
}

/// The start line of an RTSP message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtspStart {
    Request(RtspMethod),
    Response(u16),
}

/// `client_port=` / `server_port=`: RTP port and, when a range is given,
/// the RTCP port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortPair {
    pub rtp: u16,
    pub rtcp: Option<u16>,
}

/// The chosen (response) or first acceptable (request) transport
/// specification of a `Transport` header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtspTransport {
    /// `interleaved=` or a TCP lower transport: media rides the RTSP
    /// connection and needs no pinhole.
    pub interleaved: bool,
    pub client_port: Option<PortPair>,
    pub server_port: Option<PortPair>,
    /// `destination=`: where the client wants media sent (default: the
    /// client's signaling address).
    pub destination: Option<IpAddr>,
    /// `source=`: where the server sends media from (default: the server's
    /// signaling address).
    pub source: Option<IpAddr>,
}

/// One observed RTSP message, reduced to what the session state needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtspEvent {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub start: RtspStart,
    pub cseq: u32,
    /// Session id (without `;timeout=`).
    pub session: Option<String>,
    /// `Session: id;timeout=N` of a response.
    pub session_timeout: Option<Duration>,
    pub transport: Option<RtspTransport>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct SetupKey {
    client: SocketAddr,
    server: SocketAddr,
    cseq: u32,
}

#[derive(Clone, Copy, Debug)]
struct PendingSetup {
    transport: RtspTransport,
    at: u64,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Session {
    client_ip: IpAddr,
    timeout: Duration,
    last_refresh: u64,
    pairs: PairSet,
    /// Scheduled in `RtspSessions::timers` unless `u64::MAX` (not saved:
    /// the timers are rebuilt on restore).
    #[serde(skip, default = "super::never")]
    deadline: u64,
}

/// All tracked RTSP sessions and SETUPs awaiting their response.
#[derive(Debug, Default)]
pub(crate) struct RtspSessions {
    pending: HashMap<SetupKey, PendingSetup>,
    pending_order: VecDeque<(u64, SetupKey)>,
    sessions: HashMap<SessionKey, Session>,
    timers: BTreeSet<(u64, SessionKey)>,
    peers: HashMap<IpAddr, usize>,
}

impl RtspSessions {
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn on_event(&mut self, ev: &RtspEvent, ctx: &mut Ctx<'_>) {
        if !ctx.cfg.is_trusted(ev.src.ip(), ev.dst.ip()) {
            ctx.refuse(None, Refusal::UntrustedSignaling, None);
            return;
        }
        match ev.start {
            RtspStart::Request(method) => self.request(method, ev, ctx),
            RtspStart::Response(code) => self.response(code, ev, ctx),
        }
    }

    fn request(&mut self, method: RtspMethod, ev: &RtspEvent, ctx: &mut Ctx<'_>) {
        // Requests go client → server.
        let session = ev.session.as_ref().map(|id| SessionKey {
            server: ev.dst,
            session: id.clone(),
        });
        let known = session
            .as_ref()
            .filter(|k| {
                self.sessions
                    .get(k)
                    .is_some_and(|s| s.client_ip == ev.src.ip())
            })
            .cloned();
        if method == RtspMethod::Teardown {
            match known {
                Some(key) => self.close(&key, CloseCause::Teardown, ctx),
                None => ctx.counters.rtsp_unmatched += 1,
            }
            return;
        }
        if let Some(key) = &known {
            // Any request of the session keeps it alive (GET_PARAMETER,
            // OPTIONS, SET_PARAMETER, PLAY, PAUSE, a further SETUP).
            let s = self.sessions.get_mut(key).expect("known");
            s.last_refresh = ctx.now;
            if method == RtspMethod::Play {
                // Pairs that idled out during a PAUSE open again.
                s.pairs.reopen_expired(&Owner::Rtsp(key.clone()), ctx);
            }
            self.reschedule(key);
        }
        if method == RtspMethod::Setup {
            let Some(transport) = ev.transport else {
                return;
            };
            let key = SetupKey {
                client: ev.src,
                server: ev.dst,
                cseq: ev.cseq,
            };
            if !self.pending.contains_key(&key) {
                self.expire_pending(ctx.now, ctx.cfg.setup_timeout);
                if self.pending.len() >= ctx.cfg.max_calls {
                    ctx.refuse(None, Refusal::TableFull, None);
                    return;
                }
                self.pending_order.push_back((ctx.now, key));
            }
            let at = self.pending.get(&key).map_or(ctx.now, |p| p.at);
            self.pending.insert(key, PendingSetup { transport, at });
        } else if known.is_none() && session.is_some() {
            ctx.counters.rtsp_unmatched += 1;
        }
    }

    fn response(&mut self, code: u16, ev: &RtspEvent, ctx: &mut Ctx<'_>) {
        // Responses go server → client.
        let (server, client) = (ev.src, ev.dst);
        if let (Some(id), Some(timeout)) = (&ev.session, ev.session_timeout) {
            let key = SessionKey {
                server,
                session: id.clone(),
            };
            if let Some(s) = self.sessions.get_mut(&key) {
                s.timeout = effective_timeout(timeout, ctx.cfg.rtsp_session_timeout);
                self.reschedule(&key);
            }
        }
        let setup = SetupKey {
            client,
            server,
            cseq: ev.cseq,
        };
        let Some(req) = self.pending.remove(&setup) else {
            return;
        };
        self.trim_pending_front();
        if !(200..300).contains(&code) {
            return;
        }
        let transport = ev.transport.unwrap_or(req.transport);
        if transport.interleaved {
            ctx.counters.rtsp_interleaved += 1;
            return;
        }
        let client_port = transport.client_port.or(req.transport.client_port);
        let (Some(id), Some(cp), Some(sp)) = (&ev.session, client_port, transport.server_port)
        else {
            ctx.refuse(None, Refusal::IncompleteSetup, None);
            return;
        };
        let key = SessionKey {
            server,
            session: id.clone(),
        };
        let owner = Owner::Rtsp(key.clone());
        let client_media = transport
            .destination
            .or(req.transport.destination)
            .unwrap_or(client.ip());
        let server_media = transport.source.unwrap_or(server.ip());

        if !self.sessions.contains_key(&key) {
            if self.sessions.len() >= ctx.cfg.max_calls {
                ctx.refuse(Some(&owner), Refusal::TableFull, None);
                return;
            }
            let peer = client.ip();
            if self.peers.get(&peer).copied().unwrap_or(0) >= ctx.cfg.max_calls_per_peer {
                ctx.refuse(Some(&owner), Refusal::PerPeerCap, None);
                return;
            }
            *self.peers.entry(peer).or_insert(0) += 1;
            ctx.counters.sessions_opened += 1;
            self.sessions.insert(
                key.clone(),
                Session {
                    client_ip: peer,
                    timeout: effective_timeout(
                        ev.session_timeout.unwrap_or_default(),
                        ctx.cfg.rtsp_session_timeout,
                    ),
                    last_refresh: ctx.now,
                    pairs: PairSet::default(),
                    deadline: u64::MAX,
                },
            );
        }
        let session = self.sessions.get_mut(&key).expect("present or just added");
        session.last_refresh = ctx.now;

        let mut candidates: Vec<Candidate> = session
            .pairs
            .installed()
            .iter()
            .chain(session.pairs.expired())
            .map(|p| Candidate {
                pair: *p,
                verdict: Ok(()),
                hold: false,
            })
            .collect();
        let endpoint = |ip: IpAddr, port: u16| canonical(SocketAddr::new(ip, port));
        candidates.push(Candidate::check(
            ctx.cfg,
            endpoint(client_media, cp.rtp),
            client.ip(),
            endpoint(server_media, sp.rtp),
            server.ip(),
        ));
        if let (Some(c), Some(s)) = (cp.rtcp, sp.rtcp) {
            candidates.push(Candidate::check(
                ctx.cfg,
                endpoint(client_media, c),
                client.ip(),
                endpoint(server_media, s),
                server.ip(),
            ));
        }
        session.pairs.reconcile(
            &owner,
            &candidates,
            ctx.cfg.max_pairs_per_call,
            CloseCause::Teardown,
            false,
            ctx,
        );
        self.reschedule(&key);
    }

    pub(crate) fn has(&self, key: &SessionKey) -> bool {
        self.sessions.contains_key(key)
    }

    /// Ends the session as a TEARDOWN would (another node saw it).
    pub(crate) fn end(&mut self, key: &SessionKey, ctx: &mut Ctx<'_>) {
        self.close(key, CloseCause::Teardown, ctx);
    }

    fn close(&mut self, key: &SessionKey, cause: CloseCause, ctx: &mut Ctx<'_>) {
        let Some(mut s) = self.sessions.remove(key) else {
            return;
        };
        if s.deadline != u64::MAX {
            self.timers.remove(&(s.deadline, key.clone()));
        }
        s.pairs.close_all(&Owner::Rtsp(key.clone()), cause, ctx);
        ctx.counters.calls_closed[cause as usize] += 1;
        if let Some(n) = self.peers.get_mut(&s.client_ip) {
            *n -= 1;
            if *n == 0 {
                self.peers.remove(&s.client_ip);
            }
        }
    }

    fn reschedule(&mut self, key: &SessionKey) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        let next = limit(s.last_refresh, s.timeout);
        if next == s.deadline {
            return;
        }
        if s.deadline != u64::MAX {
            self.timers.remove(&(s.deadline, key.clone()));
        }
        s.deadline = next;
        if next != u64::MAX {
            self.timers.insert((next, key.clone()));
        }
    }

    fn expire_pending(&mut self, now: u64, setup_timeout: Duration) {
        while let Some(&(at, key)) = self.pending_order.front() {
            if limit(at, setup_timeout) > now {
                break;
            }
            self.pending_order.pop_front();
            if self.pending.get(&key).is_some_and(|p| p.at == at) {
                self.pending.remove(&key);
            }
        }
        self.trim_pending_front();
        // Entries whose SETUP was answered linger in the order queue; drop
        // them once the queue outgrows the live set.
        if self.pending_order.len() > 2 * self.pending.len() + 64 {
            let pending = &self.pending;
            self.pending_order
                .retain(|(at, key)| pending.get(key).is_some_and(|p| p.at == *at));
        }
    }

    /// Drops answered SETUPs from the front of the expiry queue, so that its
    /// front is the oldest SETUP still waiting.
    fn trim_pending_front(&mut self) {
        while let Some((at, key)) = self.pending_order.front() {
            if self.pending.get(key).is_some_and(|p| p.at == *at) {
                break;
            }
            self.pending_order.pop_front();
        }
    }

    /// The table closed the pair `a` ↔ `b` of the session `key` for
    /// idleness; returns whether the session held it.
    pub fn on_pair_expired(&mut self, key: &SessionKey, a: SocketAddr, b: SocketAddr) -> bool {
        self.sessions
            .get_mut(key)
            .is_some_and(|s| s.pairs.expire(a, b))
    }

    /// Closes the sessions whose timeout passed without a request, unless
    /// the client's media kept flowing: `last_seen(owner, client end,
    /// server end)` of its open pairs (RTCP receiver reports on the RTCP
    /// pair, typically) counts as a keep-alive, as servers do (RFC 2326
    /// §12.37, RFC 7826 §18.56: RTCP refreshes the session). `last_seen`
    /// is never later than now (the controller clamps the datapath's
    /// coarse stamp).
    pub fn tick(
        &mut self,
        ctx: &mut Ctx<'_>,
        last_seen: &mut dyn FnMut(&Owner, SocketAddr, SocketAddr) -> Option<u64>,
    ) {
        self.expire_pending(ctx.now, ctx.cfg.setup_timeout);
        while let Some((t, key)) = self.timers.pop_first() {
            if t > ctx.now {
                self.timers.insert((t, key));
                break;
            }
            let Some(s) = self.sessions.get_mut(&key) else {
                continue;
            };
            s.deadline = u64::MAX;
            let owner = Owner::Rtsp(key.clone());
            let media = s
                .pairs
                .installed()
                .iter()
                .filter_map(|p| last_seen(&owner, p.a, p.b))
                .max()
                .filter(|&t| t > s.last_refresh);
            if let Some(t) = media {
                s.last_refresh = t;
                if limit(t, s.timeout) > ctx.now {
                    ctx.counters.rtsp_media_keepalive += 1;
                    self.reschedule(&key);
                    continue;
                }
            }
            self.close(&key, CloseCause::SessionTimeout, ctx);
        }
    }

    pub fn next_deadline(&self, setup_timeout: Duration) -> Option<u64> {
        let session = self.timers.first().map(|(t, _)| *t);
        let pending = self
            .pending_order
            .front()
            .map(|(at, _)| limit(*at, setup_timeout))
            .filter(|t| *t != u64::MAX);
        match (session, pending) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The server's timeout, or the default when it names none (or zero).
fn effective_timeout(server: Duration, default: Duration) -> Duration {
    if server.is_zero() {
        default
    } else {
        server
    }
}

/// The sessions as the state file keeps them (SETUPs awaiting their
/// response are not kept: a restart in between loses that stream).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct RtspSnapshot {
    sessions: Vec<(SessionKey, Session)>,
}

impl RtspSessions {
    pub fn snapshot(&self) -> RtspSnapshot {
        let mut sessions: Vec<(SessionKey, Session)> = self
            .sessions
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        sessions.sort_by(|x, y| x.0.cmp(&y.0));
        RtspSnapshot { sessions }
    }

    /// Replaces every session with the snapshot's, rebuilding the timers
    /// and the per-peer counts.
    pub fn restore(&mut self, snapshot: RtspSnapshot) {
        *self = RtspSessions::default();
        for (key, mut s) in snapshot.sessions {
            s.deadline = u64::MAX;
            *self.peers.entry(s.client_ip).or_insert(0) += 1;
            self.sessions.insert(key.clone(), s);
            self.reschedule(&key);
        }
    }
}
