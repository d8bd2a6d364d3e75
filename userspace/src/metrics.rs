//! Prometheus metrics (`--metrics-listen`): the exposition with the
//! official client crate `prometheus-client`, served over HTTP by hyper.
//!
//! The daemon owns the numbers (kernel counters, table and call state), so
//! [`Metrics`] takes them as plain values: [`Metrics::update_from`] stores a
//! [`Snapshot`] and every scrape encodes the latest one. Only the latency
//! histogram is fed event by event ([`Metrics::observe_setup_latency`]).
//! [`Metrics`] is `Send + Sync`; share it as `Arc<Metrics>` between the
//! controller and [`serve`].
//!
//! Families (OpenMetrics text; counters get `_total`):
//! - `pinhole_verdict_packets_total`, `pinhole_verdict_bytes_total`
//!   `{reason, action}`: XDP verdicts, every [`Reason`];
//! - `pinhole_pinholes_open`, `pinhole_calls_active`,
//!   `pinhole_rtsp_sessions_active`;
//! - `pinhole_flows_used`, `pinhole_flows_capacity`: the flow map;
//! - `pinhole_signaling_messages_total{kind, outcome}`;
//! - `pinhole_signaling_refusals_total{reason}`;
//! - `pinhole_setup_latency_seconds`: signaling packet received → flow map
//!   updated, buckets 10 µs to 100 ms;
//! - `pinhole_interface_attached{iface, mode}`: 1 while the program is
//!   attached to the configured interface, 0 while it is gone;
//! - `pinhole_latch_events_total{kind, event}`: half-open pinholes by what
//!   happened to them (`armed`, `latched`, `expired`, …): the latch map's
//!   entries (`kind="entry"`, NAT and pre-answer latching alike) and the
//!   provisional pairs of pre-answer latching (`kind="pre_answer"`);
//! - with inline signaling, `pinhole_signaling_queue_reader_restarts_total`
//!   and the kernel's counters of the queue
//!   (/proc/net/netfilter/nfnetlink_queue, see
//!   [`KernelQueueStats`](crate::capture::nfqueue::KernelQueueStats)):
//!   `pinhole_signaling_queue_bound` (0 while no reader is bound),
//!   `pinhole_signaling_queue_waiting`,
//!   `pinhole_signaling_queue_dropped_total{cause="queue_full"|"user"}`,
//!   `pinhole_signaling_queue_id_sequence`;
//! - with HA (`--ha-redis`, see [`HaNumbers`]): `pinhole_ha_connected`,
//!   `pinhole_ha_peers`, `pinhole_ha_foreign_pinholes`,
//!   `pinhole_ha_replication_lag_milliseconds{which="last"|"max"}`, and the
//!   counters `pinhole_ha_{adopted,published,applied,refused,errors,resyncs,ends_dropped}_total`.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use pinhole_common::{Counter, Reason};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Upper bounds of the latency histogram's buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 13] = [
    10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3,
];

/// Content type of the OpenMetrics text format, which Prometheus scrapes.
pub const CONTENT_TYPE_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Connections served at once; more wait for a slot.
pub const MAX_CONNECTIONS: usize = 32;

/// How long a client may take to send its request headers, and to finish a
/// connection.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Signaling messages of one kind with one outcome, cumulative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalingCount {
    /// `sip`, `rtsp`, `ng`, …
    pub kind: &'static str,
    /// `ok`, `parse_error`, `refused`, …
    pub outcome: &'static str,
    pub count: u64,
}

/// What the daemon knows at one moment, as plain numbers. Counters are
/// cumulative since the daemon (or the kernel map) started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// XDP verdict counters summed over CPUs, indexed by [`Reason`] (as
    /// [`Reason::ALL`]).
    pub verdicts: [Counter; Reason::COUNT as usize],
    pub pinholes_open: u64,
    pub calls_active: u64,
    pub rtsp_sessions_active: u64,
    /// Entries in the flow map, and its capacity.
    pub flows_used: u64,
    pub flows_capacity: u64,
    pub signaling: Vec<SignalingCount>,
    /// Refused calls, sessions or pairs by reason (`Refusal::name`).
    pub refusals: Vec<(&'static str, u64)>,
    /// Configured interfaces: name, XDP mode, whether the program is
    /// attached to it now.
    pub interfaces: Vec<(String, String, bool)>,
    /// Half-open pinhole events: kind (`entry`, `pre_answer`), event, count.
    pub latch_events: Vec<(&'static str, &'static str, u64)>,
    /// The signaling queue, with inline signaling.
    pub queue: Option<crate::capture::nfqueue::QueueStats>,
}

/// HA replication's numbers (kept by the replicator, see `crate::ha`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HaNumbers {
    pub connected: bool,
    pub peers: u64,
    pub foreign_pinholes: u64,
    pub lag_ms_last: u64,
    pub lag_ms_max: u64,
    pub adopted: u64,
    pub published: u64,
    pub applied: u64,
    pub refused: u64,
    pub errors: u64,
    pub resyncs: u64,
    pub ends_dropped: u64,
}

/// The metrics registry. See the module documentation.
pub struct Metrics {
    registry: Registry,
    snapshot: Arc<Mutex<Snapshot>>,
    setup_latency: Histogram,
    ha: Arc<Mutex<Option<HaNumbers>>>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("pinhole");
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        registry.register_collector(Box::new(SnapshotCollector(snapshot.clone())));
        let ha = Arc::new(Mutex::new(None));
        registry.register_collector(Box::new(HaCollector(ha.clone())));
        let setup_latency = Histogram::new(LATENCY_BUCKETS);
        registry.register_with_unit(
            "setup_latency",
            "Signaling packet received to pinhole in the flow map",
            Unit::Seconds,
            setup_latency.clone(),
        );
        Metrics {
            registry,
            snapshot,
            setup_latency,
            ha,
        }
    }

    /// Replaces the HA numbers (absent from the exposition until set).
    pub fn update_ha(&self, numbers: HaNumbers) {
        *self.ha.lock().unwrap_or_else(|p| p.into_inner()) = Some(numbers);
    }

    /// Replaces the numbers the next scrapes report.
    pub fn update_from(&self, snapshot: Snapshot) {
        *lock(&self.snapshot) = snapshot;
    }

    /// Records one signaling → pinhole latency.
    pub fn observe_setup_latency(&self, latency: Duration) {
        self.setup_latency.observe(latency.as_secs_f64());
    }

    /// The exposition in OpenMetrics text format ([`CONTENT_TYPE_TEXT`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String only fails if an encoder does, and ours don't.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        out
    }
}

/// Encodes the HA numbers, when HA is on.
#[derive(Debug)]
struct HaCollector(Arc<Mutex<Option<HaNumbers>>>);

impl Collector for HaCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let Some(h) = *self.0.lock().unwrap_or_else(|p| p.into_inner()) else {
            return Ok(());
        };
        for (name, help, value) in [
            (
                "ha_connected",
                "Whether this node is connected to the HA Redis (1) or not (0)",
                u64::from(h.connected),
            ),
            (
                "ha_peers",
                "Other nodes whose pinholes are installed here",
                h.peers,
            ),
            (
                "ha_foreign_pinholes",
                "Pinholes installed here for other nodes",
                h.foreign_pinholes,
            ),
        ] {
            gauge(&mut encoder, name, help, value)?;
        }
        let mut family = encoder.encode_descriptor(
            "ha_replication_lag_milliseconds",
            "Publish (on its owner) to install (here) of peers' changes: the last one and the largest",
            None,
            MetricType::Gauge,
        )?;
        for (which, v) in [("last", h.lag_ms_last), ("max", h.lag_ms_max)] {
            ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
                .encode(family.encode_family(&[("which", which)])?)?;
        }
        for (name, help, value) in [
            (
                "ha_adopted",
                "Foreign pinholes adopted (promote, or their owner's keys expired)",
                h.adopted,
            ),
            (
                "ha_published",
                "Local pinhole changes written to Redis and published",
                h.published,
            ),
            ("ha_applied", "Peers' changes applied here", h.applied),
            (
                "ha_refused",
                "Peers' messages or records refused (invalid, or over the cap)",
                h.refused,
            ),
            ("ha_errors", "Redis errors and lost connections", h.errors),
            (
                "ha_resyncs",
                "Full resyncs (one per (re)connect)",
                h.resyncs,
            ),
            (
                "ha_ends_dropped",
                "Call ends not replicated because the queue was full",
                h.ends_dropped,
            ),
        ] {
            ConstCounter::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Counter,
            )?)?;
        }
        Ok(())
    }
}

fn lock(m: &Mutex<Snapshot>) -> std::sync::MutexGuard<'_, Snapshot> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Encodes the latest [`Snapshot`] at scrape time.
#[derive(Debug)]
struct SnapshotCollector(Arc<Mutex<Snapshot>>);

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), fmt::Error> {
    let g = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    g.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let s = lock(&self.0).clone();

        for (name, help, value) in [
            (
                "verdict_packets",
                "Packets by XDP verdict reason",
                (|c: &Counter| c.packets) as fn(&Counter) -> u64,
            ),
            ("verdict_bytes", "Bytes by XDP verdict reason", |c| c.bytes),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (reason, c) in Reason::ALL.iter().zip(&s.verdicts) {
                let labels = [
                    ("reason", reason.name()),
                    ("action", reason.action().name()),
                ];
                ConstCounter::new(value(c)).encode(family.encode_family(&labels)?)?;
            }
        }

        gauge(
            &mut encoder,
            "pinholes_open",
            "Open pinholes (symmetric pairs)",
            s.pinholes_open,
        )?;
        gauge(
            &mut encoder,
            "calls_active",
            "SIP calls tracked",
            s.calls_active,
        )?;
        gauge(
            &mut encoder,
            "rtsp_sessions_active",
            "RTSP sessions tracked",
            s.rtsp_sessions_active,
        )?;
        gauge(
            &mut encoder,
            "flows_used",
            "Entries in the flow map",
            s.flows_used,
        )?;
        gauge(
            &mut encoder,
            "flows_capacity",
            "Capacity of the flow map",
            s.flows_capacity,
        )?;

        let mut family = encoder.encode_descriptor(
            "signaling_messages",
            "Signaling messages by kind and outcome",
            None,
            MetricType::Counter,
        )?;
        for m in &s.signaling {
            let labels = [("kind", m.kind), ("outcome", m.outcome)];
            ConstCounter::new(m.count).encode(family.encode_family(&labels)?)?;
        }

        let mut family = encoder.encode_descriptor(
            "signaling_refusals",
            "Refused calls, sessions or pairs by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, count) in &s.refusals {
            let labels = [("reason", *reason)];
            ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
        }

        let mut family = encoder.encode_descriptor(
            "interface_attached",
            "Whether the XDP program is attached to the configured interface (1) or not (0: \
             the interface is gone, or attaching to it failed)",
            None,
            MetricType::Gauge,
        )?;
        for (iface, mode, attached) in &s.interfaces {
            let labels = [("iface", iface.as_str()), ("mode", mode.as_str())];
            ConstGauge::new(i64::from(*attached)).encode(family.encode_family(&labels)?)?;
        }

        let mut family = encoder.encode_descriptor(
            "latch_events",
            "Half-open pinholes (NAT latching, pre-answer latching) by what happened to them",
            None,
            MetricType::Counter,
        )?;
        for (kind, event, count) in &s.latch_events {
            let labels = [("kind", *kind), ("event", *event)];
            ConstCounter::new(*count).encode(family.encode_family(&labels)?)?;
        }

        if let Some(q) = &s.queue {
            ConstCounter::new(q.reader_restarts).encode(encoder.encode_descriptor(
                "signaling_queue_reader_restarts",
                "Restarts of the signaling queue reader after a panic or a failed socket",
                None,
                MetricType::Counter,
            )?)?;
            let k = q.kernel.unwrap_or_default();
            gauge(
                &mut encoder,
                "signaling_queue_bound",
                "Whether a reader is bound to the signaling queue (1) or not (0: signaling \
                 passes unobserved)",
                u64::from(q.kernel.is_some()),
            )?;
            gauge(
                &mut encoder,
                "signaling_queue_waiting",
                "Signaling packets waiting in the kernel queue for a verdict",
                u64::from(k.queue_total),
            )?;
            let mut family = encoder.encode_descriptor(
                "signaling_queue_dropped",
                "Packets the kernel counted as dropped by the signaling queue (queue full, or \
                 not delivered to the reader; fail-open bypasses are not counted by the kernel)",
                None,
                MetricType::Counter,
            )?;
            for (cause, n) in [("queue_full", k.queue_dropped), ("user", k.user_dropped)] {
                ConstCounter::new(u64::from(n))
                    .encode(family.encode_family(&[("cause", cause)])?)?;
            }
            gauge(
                &mut encoder,
                "signaling_queue_id_sequence",
                "Id of the last packet the kernel handed to the reader (restarts at 0 with each bind)",
                u64::from(k.id_sequence),
            )?;
        }
        Ok(())
    }
}

/// Serves `GET /metrics` (and `HEAD`) on `listener` until the task is
/// dropped; any other path gets 404, another method on `/metrics` 405.
/// `refresh` runs before each `GET /metrics` is encoded, so the owner of
/// the numbers can [`update_from`](Metrics::update_from) first. Returns only
/// if accepting fails for good.
pub async fn serve<R, F>(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    refresh: R,
) -> std::io::Result<()>
where
    R: Fn() -> F + Clone + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) if is_transient(&e) => {
                // Out of descriptors or a connection reset before accept:
                // back off a little instead of spinning.
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let metrics = metrics.clone();
        let refresh = refresh.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req: Request<Incoming>| {
                let metrics = metrics.clone();
                let refresh = refresh.clone();
                async move {
                    if req.method() == Method::GET && req.uri().path() == "/metrics" {
                        refresh().await;
                    }
                    Ok::<_, Infallible>(respond(&metrics, &req))
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            match tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "metrics: connection error"),
                Err(_) => tracing::debug!(%peer, "metrics: connection timed out"),
            }
        });
    }
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

fn respond(metrics: &Metrics, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *r.status_mut() = status;
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if req.uri().path() != "/metrics" {
        return text(StatusCode::NOT_FOUND, "not found; try /metrics\n");
    }
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(metrics.encode())
    };
    let mut r = Response::new(Full::new(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn snapshot() -> Snapshot {
        let mut verdicts = [Counter::default(); Reason::COUNT as usize];
        verdicts[Reason::Hit as usize] = Counter {
            packets: 12,
            bytes: 1234,
        };
        verdicts[Reason::Miss as usize] = Counter {
            packets: 3,
            bytes: 180,
        };
        Snapshot {
            verdicts,
            pinholes_open: 2,
            calls_active: 1,
            rtsp_sessions_active: 0,
            flows_used: 4,
            flows_capacity: 262_144,
            signaling: vec![
                SignalingCount {
                    kind: "sip",
                    outcome: "ok",
                    count: 7,
                },
                SignalingCount {
                    kind: "sip",
                    outcome: "parse_error",
                    count: 1,
                },
            ],
            refusals: vec![("untrusted_signaling", 5)],
            interfaces: vec![
                ("r-out".into(), "native".into(), true),
                ("r-in".into(), "native".into(), false),
            ],
            latch_events: vec![("entry", "latched", 3), ("pre_answer", "confirmed", 2)],
            queue: Some(crate::capture::nfqueue::QueueStats {
                queue_num: 4242,
                reader_restarts: 2,
                kernel: Some(crate::capture::nfqueue::KernelQueueStats {
                    queue_num: 4242,
                    queue_total: 5,
                    queue_dropped: 6,
                    user_dropped: 7,
                    id_sequence: 88,
                    ..Default::default()
                }),
            }),
        }
    }

    #[test]
    fn encodes_every_family_with_its_values() {
        let m = Metrics::new();
        m.update_from(snapshot());
        m.observe_setup_latency(Duration::from_micros(40));
        m.observe_setup_latency(Duration::from_millis(3));
        m.observe_setup_latency(Duration::from_secs(1));
        let text = m.encode();
        let want = [
            "# TYPE pinhole_verdict_packets counter",
            "pinhole_verdict_packets_total{reason=\"hit\",action=\"pass\"} 12",
            "pinhole_verdict_packets_total{reason=\"miss\",action=\"drop\"} 3",
            "pinhole_verdict_packets_total{reason=\"ext_header_limit\",action=\"drop\"} 0",
            "pinhole_verdict_bytes_total{reason=\"hit\",action=\"pass\"} 1234",
            "pinhole_verdict_bytes_total{reason=\"miss\",action=\"drop\"} 180",
            "# TYPE pinhole_pinholes_open gauge",
            "pinhole_pinholes_open 2",
            "pinhole_calls_active 1",
            "pinhole_rtsp_sessions_active 0",
            "pinhole_flows_used 4",
            "pinhole_flows_capacity 262144",
            "pinhole_signaling_messages_total{kind=\"sip\",outcome=\"ok\"} 7",
            "pinhole_signaling_messages_total{kind=\"sip\",outcome=\"parse_error\"} 1",
            "pinhole_signaling_refusals_total{reason=\"untrusted_signaling\"} 5",
            "# TYPE pinhole_interface_attached gauge",
            "pinhole_interface_attached{iface=\"r-out\",mode=\"native\"} 1",
            "pinhole_interface_attached{iface=\"r-in\",mode=\"native\"} 0",
            "# TYPE pinhole_latch_events counter",
            "pinhole_latch_events_total{kind=\"entry\",event=\"latched\"} 3",
            "pinhole_latch_events_total{kind=\"pre_answer\",event=\"confirmed\"} 2",
            "# TYPE pinhole_signaling_queue_reader_restarts counter",
            "pinhole_signaling_queue_reader_restarts_total 2",
            "pinhole_signaling_queue_bound 1",
            "pinhole_signaling_queue_waiting 5",
            "pinhole_signaling_queue_dropped_total{cause=\"queue_full\"} 6",
            "pinhole_signaling_queue_dropped_total{cause=\"user\"} 7",
            "pinhole_signaling_queue_id_sequence 88",
            "# TYPE pinhole_setup_latency_seconds histogram",
            "# UNIT pinhole_setup_latency_seconds seconds",
            "pinhole_setup_latency_seconds_bucket{le=\"0.00001\"} 0",
            "pinhole_setup_latency_seconds_bucket{le=\"0.00005\"} 1",
            "pinhole_setup_latency_seconds_bucket{le=\"0.0025\"} 1",
            "pinhole_setup_latency_seconds_bucket{le=\"0.005\"} 2",
            "pinhole_setup_latency_seconds_bucket{le=\"0.1\"} 2",
            "pinhole_setup_latency_seconds_bucket{le=\"+Inf\"} 3",
            "pinhole_setup_latency_seconds_count 3",
            "# EOF",
        ];
        let lines: Vec<&str> = text.lines().collect();
        for w in want {
            assert!(lines.contains(&w), "missing `{w}` in:\n{text}");
        }
        // A later snapshot replaces the earlier one.
        m.update_from(Snapshot {
            pinholes_open: 5,
            ..snapshot()
        });
        assert!(m.encode().lines().any(|l| l == "pinhole_pinholes_open 5"));
    }

    async fn get(addr: std::net::SocketAddr, request: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        // Each scrape refreshes first: the numbers grow with every GET.
        let scrapes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let refresh = {
            let (metrics, scrapes) = (metrics.clone(), scrapes.clone());
            move || {
                let n = scrapes.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                metrics.update_from(Snapshot {
                    pinholes_open: n,
                    ..snapshot()
                });
                async {}
            }
        };
        let server = tokio::spawn(serve(listener, metrics.clone(), refresh));

        let ok = get(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains(&format!("content-type: {CONTENT_TYPE_TEXT}\r\n")),
            "{ok}"
        );
        assert!(ok.contains("\npinhole_flows_capacity 262144\n"), "{ok}");
        assert!(ok.contains("\npinhole_pinholes_open 1\n"), "{ok}");
        assert!(ok.ends_with("# EOF\n"), "{ok}");
        let again = get(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(again.contains("\npinhole_pinholes_open 2\n"), "{again}");

        // (request line, expected status line)
        let cases = [
            ("GET / HTTP/1.1", "HTTP/1.1 404 Not Found"),
            ("GET /metrics/x HTTP/1.1", "HTTP/1.1 404 Not Found"),
            ("POST /metrics HTTP/1.1", "HTTP/1.1 405 Method Not Allowed"),
            ("HEAD /metrics HTTP/1.1", "HTTP/1.1 200 OK"),
        ];
        for (line, want) in cases {
            let r = get(
                addr,
                &format!("{line}\r\nHost: x\r\nConnection: close\r\n\r\n"),
            )
            .await;
            assert!(r.starts_with(want), "{line}: {r}");
        }
        server.abort();
    }
}
