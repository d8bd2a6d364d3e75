//! From observed signaling packets to pinhole intents: port classification,
//! TCP reassembly and framing, SIP/RTSP parsing and the call state.
//!
//! Pure state owned by the controller task: packets and the time come in,
//! [`Intent`]s go out. Anything that cannot be decoded or parsed is counted
//! (and logged at a rate limit) and opens nothing.

// Reads untrusted bytes: no panicking shortcuts (as in signaling/).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::{net::SocketAddr, time::Duration};

use tracing::{info, warn};

use crate::capture::{
    nat::NatView,
    packet::{PacketError, SignalingPacket, Transport},
};
use crate::{
    calls::{
        CallConfig, Calls, Intent, Owner, Refusal, RtspEvent, RtspMethod, RtspStart, SessionKey,
        SipEvent, SipMethod, SipStart,
    },
    clock::RateLimit,
    metrics::SignalingCount,
    signaling::{
        reassembly::{FlowTable, Limits, ReassemblyError, Segment, StreamKey},
        rtsp::{self, RtspFramer},
        sip::{self, SipFramer},
    },
};

/// Default ports (see the CLI).
pub const DEFAULT_SIP_PORTS: &[u16] = &[5060];
pub const DEFAULT_RTSP_PORTS: &[u16] = &[554, 7070, 8554];
/// TCP signaling streams tracked at once.
pub const DEFAULT_MAX_TCP_STREAMS: usize = 16_384;
/// A TCP signaling stream without segments for this long is forgotten.
pub const DEFAULT_TCP_IDLE: Duration = Duration::from_secs(30 * 60);

/// What the feed watches and how calls are policed.
#[derive(Clone, Debug)]
pub struct FeedConfig {
    pub sip_ports: Vec<u16>,
    pub rtsp_ports: Vec<u16>,
    pub calls: CallConfig,
    pub max_tcp_streams: usize,
    pub tcp_idle: Duration,
    /// `--nat`: SIP is read as the outside sees it (see [`super::nat`]).
    pub nat: NatView,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            sip_ports: DEFAULT_SIP_PORTS.to_vec(),
            rtsp_ports: DEFAULT_RTSP_PORTS.to_vec(),
            calls: CallConfig::default(),
            max_tcp_streams: DEFAULT_MAX_TCP_STREAMS,
            tcp_idle: DEFAULT_TCP_IDLE,
            nat: NatView::default(),
        }
    }
}

/// Counters of the feed (the call layer keeps its own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedCounters {
    /// Packets handed over by the queue (decodable or not).
    pub packets: u64,
    pub sip_messages: u64,
    pub rtsp_messages: u64,
    /// Undecodable packets, unparsable messages, broken TCP streams.
    pub parse_errors: u64,
    /// TCP streams not tracked because the stream table was full.
    pub streams_refused: u64,
    /// Packets on no configured signaling port (rules and config disagree).
    pub ignored: u64,
    /// The parse errors that are SIP's (unparsable messages, broken TCP
    /// streams on a SIP port), RTSP's, and packets the queue could not
    /// decode at all; they add up to `parse_errors`.
    pub sip_errors: u64,
    pub rtsp_errors: u64,
    pub undecodable: u64,
}

impl FeedCounters {
    /// The counters as signaling messages by kind (`sip`, `rtsp`, `packet`)
    /// and outcome, for metrics.
    pub fn signaling_counts(&self) -> Vec<SignalingCount> {
        let c = |kind, outcome, count| SignalingCount {
            kind,
            outcome,
            count,
        };
        vec![
            c("sip", "ok", self.sip_messages),
            c("sip", "parse_error", self.sip_errors),
            c("rtsp", "ok", self.rtsp_messages),
            c("rtsp", "parse_error", self.rtsp_errors),
            c("packet", "undecodable", self.undecodable),
            c("packet", "ignored", self.ignored),
        ]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Sip,
    Rtsp,
}

#[derive(Debug)]
enum Framer {
    Sip(SipFramer),
    Rtsp(RtspFramer),
}

impl Framer {
    fn new(proto: Proto) -> Self {
        match proto {
            Proto::Sip => Framer::Sip(SipFramer::new()),
            Proto::Rtsp => Framer::Rtsp(RtspFramer::new()),
        }
    }

    fn reset(&mut self) {
        match self {
            Framer::Sip(f) => f.reset(),
            Framer::Rtsp(f) => f.reset(),
        }
    }

    /// Complete messages in `data`; on error the framer is reset so that the
    /// stream can resynchronise on a later segment.
    fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let r = match self {
            Framer::Sip(f) => f.push(data).map_err(|e| e.to_string()),
            Framer::Rtsp(f) => f.push(data).map_err(|e| e.to_string()),
        };
        if r.is_err() {
            self.reset();
        }
        r
    }
}

/// The signaling observer: see the module docs.
#[derive(Debug)]
pub struct Feed {
    sip_ports: Vec<u16>,
    rtsp_ports: Vec<u16>,
    tcp_idle: Duration,
    nat: NatView,
    calls: Calls,
    streams: FlowTable<Framer>,
    counters: FeedCounters,
    parse_log: RateLimit,
    refusal_log: RateLimit,
    stream_log: RateLimit,
    /// Calls and sessions that ended here, for HA (`None`: not recorded).
    ends: Option<Vec<EndKey>>,
}

/// Most ends buffered between two [`Feed::take_ends`].
pub const MAX_ENDS: usize = 1024;

/// A call or session whose end (BYE, CANCEL, TEARDOWN) a node saw: with
/// HA every node closes what it holds of it (see `crate::ha`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndKey {
    /// A SIP Call-ID: observed (`sip:`) and ng (`ng:`) calls with it.
    Sip(String),
    /// An RTSP session's owner tag, `rtsp:<server>;session=<id>`.
    Rtsp(String),
}

impl EndKey {
    /// Whether the pinhole owner tag `tag` belongs to this call or session.
    pub fn matches(&self, tag: &str) -> bool {
        match self {
            EndKey::Sip(call_id) => ["sip:", "ng:"].iter().any(|p| {
                tag.strip_prefix(p)
                    .and_then(|rest| rest.rsplit_once(";from-tag="))
                    .is_some_and(|(id, _)| id == call_id)
            }),
            EndKey::Rtsp(owner) => tag == owner,
        }
    }
}

/// STUN (RFC 5389) magic cookie: SIP outbound keep-alives on the SIP port.
const STUN_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// Whether a UDP payload is a keep-alive rather than a SIP message: blank
/// (RFC 5626 CRLF keep-alive, RFC 3261 §7.5 allows empty lines) or STUN.
fn is_keepalive(payload: &[u8]) -> bool {
    payload.iter().all(u8::is_ascii_whitespace)
        || matches!(payload, [first, _, _, _, c0, c1, c2, c3, ..]
            if payload.len() >= 20 && first & 0xc0 == 0 && [*c0, *c1, *c2, *c3] == STUN_COOKIE)
}

impl Feed {
    pub fn new(cfg: FeedConfig) -> Self {
        Feed {
            sip_ports: cfg.sip_ports,
            rtsp_ports: cfg.rtsp_ports,
            tcp_idle: cfg.tcp_idle,
            nat: cfg.nat,
            calls: Calls::new(cfg.calls),
            streams: FlowTable::new(cfg.max_tcp_streams, Limits::default()),
            counters: FeedCounters::default(),
            parse_log: RateLimit::default(),
            refusal_log: RateLimit::default(),
            stream_log: RateLimit::default(),
            ends: None,
        }
    }

    /// Starts recording the ends of calls and sessions (HA is on).
    pub fn record_ends(&mut self) {
        self.ends.get_or_insert_with(Vec::new);
    }

    /// The ends seen since the last call; at most [`MAX_ENDS`] (more are
    /// dropped: their calls close on the other nodes by idle timeout).
    pub fn take_ends(&mut self) -> Vec<EndKey> {
        self.ends.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn note_end(&mut self, end: EndKey) {
        if let Some(ends) = self.ends.as_mut().filter(|e| e.len() < MAX_ENDS) {
            ends.push(end);
        }
    }

    pub fn counters(&self) -> &FeedCounters {
        &self.counters
    }

    pub fn calls(&self) -> &Calls {
        &self.calls
    }

    /// The call state, for calls driven over the control API (ng).
    pub fn calls_mut(&mut self) -> &mut Calls {
        &mut self.calls
    }

    /// TCP streams tracked now.
    pub fn tcp_streams(&self) -> usize {
        self.streams.len()
    }

    /// A packet the queue could not decode: counted, nothing else.
    pub fn on_undecodable(&mut self, err: &PacketError, now: u64) {
        self.counters.packets += 1;
        self.counters.undecodable += 1;
        self.parse_error("packet", None, &err.to_string(), now);
    }

    /// One observed packet; returns what the call state wants done.
    pub fn on_packet(&mut self, pkt: &SignalingPacket, now: u64) -> Vec<Intent> {
        self.counters.packets += 1;
        let Some(proto) = self.classify(pkt) else {
            self.counters.ignored += 1;
            return Vec::new();
        };
        let mut out = Vec::new();
        match pkt.transport {
            Transport::Udp => {
                if !is_keepalive(&pkt.payload) {
                    self.on_message(proto, &pkt.payload, pkt.src, pkt.dst, now, &mut out);
                }
            }
            Transport::Tcp(tcp) => {
                let seg = Segment {
                    seq: tcp.seq,
                    payload: &pkt.payload,
                    syn: tcp.syn,
                    fin: tcp.fin,
                    rst: tcp.rst,
                };
                for msg in self.on_segment(proto, pkt.src, pkt.dst, &seg, now) {
                    self.on_message(proto, &msg, pkt.src, pkt.dst, now, &mut out);
                }
            }
        }
        self.log_refusals(&out, now);
        out
    }

    /// Runs the call timers due at `now` and forgets idle or closed streams.
    pub fn tick(&mut self, now: u64) -> Vec<Intent> {
        self.tick_with(now, &mut |_, _, _| None)
    }

    /// [`tick`](Self::tick), with the media activity
    /// [`Calls::tick_with_activity`] takes.
    pub fn tick_with(
        &mut self,
        now: u64,
        last_seen: &mut dyn FnMut(&Owner, SocketAddr, SocketAddr) -> Option<u64>,
    ) -> Vec<Intent> {
        self.streams
            .evict_idle(Duration::from_nanos(now), self.tcp_idle);
        let out = self.calls.tick_with_activity(now, last_seen);
        self.log_refusals(&out, now);
        out
    }

    /// When [`tick`](Self::tick) next has call timers to run.
    pub fn next_deadline(&self) -> Option<u64> {
        self.calls.next_deadline()
    }

    /// SIP when either port is a SIP port (UDP or TCP), RTSP for TCP on an
    /// RTSP port.
    fn classify(&self, pkt: &SignalingPacket) -> Option<Proto> {
        let on = |ports: &[u16]| ports.contains(&pkt.src.port()) || ports.contains(&pkt.dst.port());
        if on(&self.sip_ports) {
            Some(Proto::Sip)
        } else if matches!(pkt.transport, Transport::Tcp(_)) && on(&self.rtsp_ports) {
            Some(Proto::Rtsp)
        } else {
            None
        }
    }

    /// Feeds a segment to its stream; returns the messages it completes.
    fn on_segment(
        &mut self,
        proto: Proto,
        src: SocketAddr,
        dst: SocketAddr,
        seg: &Segment<'_>,
        now: u64,
    ) -> Vec<Vec<u8>> {
        let key = StreamKey { src, dst };
        let entry = match self
            .streams
            .get_or_insert_with(key, Duration::from_nanos(now), || Framer::new(proto))
        {
            Ok(e) => e,
            Err(e) => {
                self.counters.streams_refused += 1;
                if let Some(n) = self.stream_log.allow(now) {
                    warn!(%src, %dst, suppressed = n, "TCP signaling not followed: {e}");
                }
                return Vec::new();
            }
        };
        if seg.syn {
            // A new connection on this 4-tuple starts a new message stream.
            entry.value = Framer::new(proto);
        }
        let result: Result<Vec<Vec<u8>>, String> = match entry.reassembler.push(seg) {
            Ok(bytes) if bytes.is_empty() => Ok(Vec::new()),
            Ok(bytes) => entry.value.push(&bytes),
            Err(e @ ReassemblyError::BufferOverflow { .. }) => {
                entry.value.reset();
                Err(e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(msgs) => msgs,
            Err(e) => {
                self.count_error(proto);
                self.parse_error("TCP stream", Some((src, dst)), &e, now);
                Vec::new()
            }
        }
    }

    fn on_message(
        &mut self,
        proto: Proto,
        bytes: &[u8],
        src: SocketAddr,
        dst: SocketAddr,
        now: u64,
        out: &mut Vec<Intent>,
    ) {
        match proto {
            Proto::Sip => {
                let event = sip::parse(bytes).and_then(|m| SipEvent::from_message(&m, src, dst));
                match event {
                    Ok(mut ev) => {
                        self.nat.apply(&mut ev);
                        self.counters.sip_messages += 1;
                        out.extend(self.calls.on_sip(&ev, now));
                        if matches!(
                            ev.start,
                            SipStart::Request(SipMethod::Bye | SipMethod::Cancel)
                        ) && self.calls.config().is_trusted(src.ip(), dst.ip())
                        {
                            self.note_end(EndKey::Sip(ev.call_id.clone()));
                        }
                    }
                    Err(e) => {
                        self.count_error(Proto::Sip);
                        self.parse_error("SIP", Some((src, dst)), &e.to_string(), now)
                    }
                }
            }
            Proto::Rtsp => match rtsp::parse(bytes) {
                Ok(m) => {
                    self.counters.rtsp_messages += 1;
                    let ev = RtspEvent::from_message(&m, src, dst);
                    out.extend(self.calls.on_rtsp(&ev, now));
                    if let (RtspStart::Request(RtspMethod::Teardown), Some(session)) =
                        (ev.start, &ev.session)
                    {
                        let owner = Owner::Rtsp(SessionKey {
                            server: dst,
                            session: session.clone(),
                        });
                        self.note_end(EndKey::Rtsp(owner.to_string()));
                    }
                }
                Err(e) => {
                    self.count_error(Proto::Rtsp);
                    self.parse_error("RTSP", Some((src, dst)), &e.to_string(), now)
                }
            },
        }
    }

    fn count_error(&mut self, proto: Proto) {
        match proto {
            Proto::Sip => self.counters.sip_errors += 1,
            Proto::Rtsp => self.counters.rtsp_errors += 1,
        }
    }

    fn parse_error(
        &mut self,
        what: &str,
        flow: Option<(SocketAddr, SocketAddr)>,
        err: &str,
        now: u64,
    ) {
        self.counters.parse_errors += 1;
        if let Some(n) = self.parse_log.allow(now) {
            let total = self.counters.parse_errors;
            match flow {
                Some((src, dst)) => {
                    warn!(%src, %dst, suppressed = n, parse_errors = total, "unparsable {what} signaling ignored: {err}")
                }
                None => {
                    warn!(
                        suppressed = n,
                        parse_errors = total,
                        "undecodable signaling {what} ignored: {err}"
                    )
                }
            }
        }
    }

    fn log_refusals(&mut self, intents: &[Intent], now: u64) {
        for i in intents {
            if let Intent::Refused {
                owner,
                reason,
                pair,
            } = i
            {
                if let Some(n) = self.refusal_log.allow(now) {
                    let owner = owner.as_ref().map(ToString::to_string);
                    let pair = pair.map(|(a, b)| format!("{a} <-> {b}"));
                    let level_warn = matches!(
                        reason,
                        Refusal::TableFull | Refusal::PerPeerCap | Refusal::UntrustedSignaling
                    );
                    if level_warn {
                        warn!(
                            owner,
                            pair,
                            suppressed = n,
                            "signaling refused: {}",
                            reason.name()
                        );
                    } else {
                        info!(
                            owner,
                            pair,
                            suppressed = n,
                            "signaling refused: {}",
                            reason.name()
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests build known packets and fail loudly"
)]
mod tests {
    use super::*;
    use crate::capture::packet::TcpInfo;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn udp(src: &str, dst: &str, payload: &[u8]) -> SignalingPacket {
        SignalingPacket {
            src: sa(src),
            dst: sa(dst),
            transport: Transport::Udp,
            payload: payload.to_vec(),
            received_at: 0,
        }
    }

    #[test]
    fn keepalives_are_not_messages() {
        let mut stun = vec![0u8; 20];
        stun[1] = 1;
        stun[4..8].copy_from_slice(&STUN_COOKIE);
        let cases: &[(&[u8], bool)] = &[
            (b"", true),
            (b"\r\n\r\n", true),
            (b"\r\n", true),
            (&stun, true),
            (b"INVITE sip:a SIP/2.0\r\n", false),
            (&[0u8; 20], false),
        ];
        for (p, want) in cases {
            assert_eq!(is_keepalive(p), *want, "{p:?}");
        }
        let mut f = Feed::new(FeedConfig::default());
        for (p, _) in cases.iter().filter(|(_, k)| *k) {
            assert!(f
                .on_packet(&udp("192.0.2.1:5060", "198.51.100.2:5060", p), 0)
                .is_empty());
        }
        assert_eq!(f.counters().parse_errors, 0);
    }

    #[test]
    fn classification_by_port_and_transport() {
        let mut f = Feed::new(FeedConfig {
            sip_ports: vec![5060, 5080],
            rtsp_ports: vec![554],
            ..FeedConfig::default()
        });
        let tcp = |src: &str, dst: &str| SignalingPacket {
            transport: Transport::Tcp(TcpInfo::default()),
            ..udp(src, dst, b"")
        };
        // (packet, expected classification)
        let cases = [
            (
                udp("192.0.2.1:5060", "198.51.100.2:40000", b""),
                Some(Proto::Sip),
            ),
            (
                udp("192.0.2.1:40000", "198.51.100.2:5080", b""),
                Some(Proto::Sip),
            ),
            (
                tcp("192.0.2.1:40000", "198.51.100.2:5080"),
                Some(Proto::Sip),
            ),
            (
                tcp("192.0.2.1:554", "198.51.100.2:40000"),
                Some(Proto::Rtsp),
            ),
            (udp("192.0.2.1:554", "198.51.100.2:40000", b""), None),
            (udp("192.0.2.1:40000", "198.51.100.2:40001", b""), None),
        ];
        for (p, want) in &cases {
            assert_eq!(f.classify(p), *want, "{} -> {}", p.src, p.dst);
        }
        f.on_packet(&udp("192.0.2.1:40000", "198.51.100.2:40001", b"x"), 0);
        assert_eq!(f.counters().ignored, 1);
    }
}
