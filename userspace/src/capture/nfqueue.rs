//! The NFQUEUE reader: a dedicated blocking thread that takes each queued
//! signaling packet, decodes it, hands it to the controller and waits until
//! the controller has applied its consequences, then lets the packet go on
//! (always ACCEPT: the daemon never drops signaling).
//!
//! The thread is supervised, so that the daemon never keeps running blind:
//! when the reader panics (a bug on the packet path) or its socket fails
//! persistently ([`PERSISTENT_ERRORS`] receive errors in a row), the socket
//! is closed (the kernel then passes queued signaling on: `--queue-bypass`
//! and fail-open) and the queue is bound again on a fresh socket after a
//! backoff ([`RestartPolicy`]). Each restart is logged and counted
//! ([`Health::restarts`], `stats` and Prometheus). A reader that keeps
//! failing ([`RestartPolicy::max_restarts`] restarts, none of which ran for
//! [`RestartPolicy::healthy_after`]) is given up: the failure is reported
//! through [`Reader::failed`] and `pinhole run` exits non-zero, for systemd
//! (`Restart=on-failure`, dist/pinhole.service) to start it again.
//!
//! [`kernel_stats`] reads the kernel's own counters of the queue.

use std::{
    io,
    panic::{self, AssertUnwindSafe},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use nfq::{Queue, Verdict};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::{
    packet::{decode, PacketError, SignalingPacket},
    CaptureError,
};
use crate::clock::{monotonic_ns, RateLimit};

/// Default kernel queue length (packets waiting for the daemon); beyond it
/// the queue fails open and packets pass unobserved.
pub const DEFAULT_QUEUE_MAX_LEN: u32 = 4096;
/// Bytes of each packet copied to the daemon (a whole IP packet).
const COPY_RANGE: u16 = u16::MAX;
/// Receive errors in a row after which the socket is given up and the queue
/// bound again on a new one.
pub const PERSISTENT_ERRORS: u32 = 100;
/// The kernel's per-namespace queue table.
pub const PROC_PATH: &str = "/proc/net/netfilter/nfnetlink_queue";

/// Where decoded packets go. `deliver` must return only once the packet's
/// consequences (pinholes) are applied; the packet is released after it.
pub trait Sink: Send + 'static {
    /// Returns false when the receiver is gone (the packet is still accepted).
    fn deliver(&mut self, packet: Result<SignalingPacket, PacketError>) -> bool;
}

/// Queue settings.
#[derive(Clone, Copy, Debug)]
pub struct QueueOptions {
    pub queue_num: u16,
    pub max_len: u32,
}

/// When to restart a failed reader and when to give up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// The first backoff; each further restart in a row doubles it.
    pub backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// Restarts in a row after which the reader is given up.
    pub max_restarts: u32,
    /// A reader that ran this long was healthy: the count in a row starts
    /// again.
    pub healthy_after: Duration,
}

impl Default for RestartPolicy {
    /// 0.1 s, 0.2 s, … up to 5 s between attempts; given up after 8 failures
    /// in a row (about 20 s of trying), each within a minute of its start.
    fn default() -> Self {
        RestartPolicy {
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_restarts: 8,
            healthy_after: Duration::from_secs(60),
        }
    }
}

impl RestartPolicy {
    /// The wait before the `n`th restart in a row (1-based).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// What the reader reports while it runs, shared with the controller.
#[derive(Debug)]
pub struct Health {
    queue_num: u16,
    restarts: AtomicU64,
}

impl Health {
    pub fn new(queue_num: u16) -> Arc<Health> {
        Arc::new(Health {
            queue_num,
            restarts: AtomicU64::new(0),
        })
    }

    pub fn queue_num(&self) -> u16 {
        self.queue_num
    }

    /// Times the reader was restarted since the daemon started.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
}

/// The running reader thread. It blocks in `recv` and ends with the process
/// (nfq 0.2 offers no way to interrupt a blocking receive); removing the
/// rules first means nothing more is queued to it.
#[derive(Debug)]
pub struct Reader {
    _thread: JoinHandle<()>,
    queue_num: u16,
    failed: Option<oneshot::Receiver<String>>,
}

impl Reader {
    pub fn queue_num(&self) -> u16 {
        self.queue_num
    }

    /// Resolves with the reason once the reader is given up (never while it
    /// runs or restarts). Can be taken once.
    pub fn failed(&mut self) -> Option<oneshot::Receiver<String>> {
        self.failed.take()
    }
}

fn open_error(queue_num: u16, what: &'static str, e: io::Error) -> CaptureError {
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => CaptureError::QueuePermission,
        Some(libc::EBUSY) => CaptureError::QueueBusy { queue_num },
        _ => CaptureError::Queue {
            queue_num,
            what,
            source: e,
        },
    }
}

/// Opens and binds the queue (fail-open, bounded length).
fn open(opts: QueueOptions) -> Result<Queue, CaptureError> {
    let q = opts.queue_num;
    let mut queue = Queue::open().map_err(|e| open_error(q, "opening the netlink socket", e))?;
    queue
        .bind(q)
        .map_err(|e| open_error(q, "binding the queue", e))?;
    queue
        .set_copy_range(q, COPY_RANGE)
        .map_err(|e| open_error(q, "setting the copy range", e))?;
    queue
        .set_fail_open(q, true)
        .map_err(|e| open_error(q, "enabling fail-open", e))?;
    queue
        .set_queue_max_len(q, opts.max_len)
        .map_err(|e| open_error(q, "setting the queue length", e))?;
    Ok(queue)
}

/// What the reader loop needs from a bound queue: [`nfq::Queue`] in the
/// daemon, a scripted queue in the supervisor's tests.
pub trait QueueIo {
    type Msg;
    fn recv(&mut self) -> io::Result<Self::Msg>;
    fn payload(msg: &Self::Msg) -> &[u8];
    fn accept(&mut self, msg: Self::Msg) -> io::Result<()>;
}

impl QueueIo for Queue {
    type Msg = nfq::Message;

    fn recv(&mut self) -> io::Result<nfq::Message> {
        Queue::recv(self)
    }

    fn payload(msg: &nfq::Message) -> &[u8] {
        msg.get_payload()
    }

    fn accept(&mut self, mut msg: nfq::Message) -> io::Result<()> {
        msg.set_verdict(Verdict::Accept);
        self.verdict(msg)
    }
}

/// Binds the queue (an error here fails the start) and starts the
/// supervised reader thread.
pub fn start(
    opts: QueueOptions,
    sink: impl Sink,
    health: Arc<Health>,
    policy: RestartPolicy,
) -> Result<Reader, CaptureError> {
    let q = opts.queue_num;
    let first = open(opts)?;
    let (failed_tx, failed_rx) = oneshot::channel();
    let thread = thread::Builder::new()
        .name(format!("nfqueue-{q}"))
        .spawn(move || {
            let reason = supervise(first, || open(opts), q, sink, &health, policy);
            let _ = failed_tx.send(reason);
        })
        .map_err(|e| open_error(q, "starting the reader thread", e))?;
    info!(
        queue = q,
        max_len = opts.max_len,
        "signaling queue bound (fail-open)"
    );
    Ok(Reader {
        _thread: thread,
        queue_num: q,
        failed: Some(failed_rx),
    })
}

/// Runs the reader on `queue`, and after each failure on a queue from
/// `reopen` after the policy's backoff, until the policy gives up; returns
/// why. A failed `reopen` counts as a failure too.
pub fn supervise<Q: QueueIo, S: Sink>(
    queue: Q,
    mut reopen: impl FnMut() -> Result<Q, CaptureError>,
    queue_num: u16,
    mut sink: S,
    health: &Health,
    policy: RestartPolicy,
) -> String {
    let mut queue = Some(queue);
    let mut in_a_row = 0u32;
    loop {
        let started = Instant::now();
        let why = match queue.take() {
            Some(mut q) => {
                let outcome =
                    panic::catch_unwind(AssertUnwindSafe(|| run(&mut q, queue_num, &mut sink)));
                // Closing the socket unbinds the queue: until the next bind
                // the kernel passes signaling on (--queue-bypass).
                drop(q);
                match outcome {
                    Ok(e) => format!("the signaling queue failed persistently: {e}"),
                    Err(p) => format!("the signaling queue reader panicked: {}", panic_text(&p)),
                }
            }
            None => match reopen() {
                Ok(q) => {
                    queue = Some(q);
                    info!(queue = queue_num, "signaling queue bound again");
                    continue;
                }
                Err(e) => format!("binding the signaling queue again: {e}"),
            },
        };
        if started.elapsed() >= policy.healthy_after {
            in_a_row = 0;
        }
        in_a_row += 1;
        if in_a_row > policy.max_restarts {
            error!(
                queue = queue_num,
                restarts = health.restarts(),
                "{why}; giving up after {} restarts in a row",
                policy.max_restarts
            );
            return format!(
                "{why} (given up after {} restarts in a row)",
                policy.max_restarts
            );
        }
        let delay = policy.delay(in_a_row);
        health.restarts.fetch_add(1, Ordering::Relaxed);
        error!(
            queue = queue_num,
            restarts = health.restarts(),
            retry_in_ms = delay.as_millis() as u64,
            "{why}; signaling passes unobserved until the queue is bound again"
        );
        thread::sleep(delay);
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> &str {
    p.downcast_ref::<&str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Takes packets off `queue` until it fails [`PERSISTENT_ERRORS`] times in
/// a row; returns the last error. A panic in `sink` unwinds out of it.
fn run<Q: QueueIo>(queue: &mut Q, queue_num: u16, sink: &mut impl Sink) -> io::Error {
    let mut recv_log = RateLimit::default();
    let mut verdict_log = RateLimit::default();
    let mut consecutive_errors = 0u32;
    let mut sink_alive = true;
    loop {
        let msg = match queue.recv() {
            Ok(m) => {
                consecutive_errors = 0;
                m
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // ENOBUFS: the socket overflowed and the kernel passed the
                // packets it could not deliver (fail-open); the socket
                // itself is fine.
                if e.raw_os_error() != Some(libc::ENOBUFS) {
                    consecutive_errors += 1;
                }
                if consecutive_errors >= PERSISTENT_ERRORS {
                    return e;
                }
                if let Some(n) = recv_log.allow(monotonic_ns()) {
                    error!(
                        queue = queue_num,
                        suppressed = n,
                        "reading the signaling queue: {e}"
                    );
                }
                continue;
            }
        };
        let received_at = monotonic_ns();
        let packet = decode(Q::payload(&msg), received_at);
        if sink_alive && !sink.deliver(packet) {
            sink_alive = false;
            warn!(
                queue = queue_num,
                "the controller is gone; passing signaling unobserved"
            );
        }
        if let Err(e) = queue.accept(msg) {
            if let Some(n) = verdict_log.allow(monotonic_ns()) {
                error!(queue = queue_num, suppressed = n, "issuing a verdict: {e}");
            }
        }
    }
}

/// The signaling queue: the reader's restarts and the kernel's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    pub queue_num: u16,
    /// Times the reader thread was restarted after a failure.
    pub reader_restarts: u64,
    /// The kernel's row in /proc/net/netfilter/nfnetlink_queue; absent
    /// while the queue is not bound.
    pub kernel: Option<KernelQueueStats>,
}

/// The kernel's row for one queue in [`PROC_PATH`] (per network
/// namespace). Its format (net/netfilter/nfnetlink_queue.c, `seq_show`):
/// `queue_number peer_portid queue_total copy_mode copy_range
/// queue_dropped queue_user_dropped id_sequence 1`.
///
/// What the kernel counts, for a queue bound fail-open as the daemon binds
/// it: `queue_dropped` counts packets dropped because the queue was full
/// and `queue_user_dropped` packets whose message could not be sent to the
/// daemon (its socket buffer full), both *only without* fail-open. With
/// fail-open both cases accept the packet unobserved and count it nowhere,
/// and neither do packets bypassed (`--queue-bypass`) while no daemon is
/// bound. `id_sequence` is the id of the last packet handed to the socket
/// (it starts at 0 with each bind), so `id_sequence` minus the packets the
/// daemon took off the queue since its last bind is what the socket lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelQueueStats {
    pub queue_num: u16,
    /// The netlink port id of the bound socket.
    pub peer_portid: u32,
    /// Packets waiting for a verdict now.
    pub queue_total: u32,
    pub copy_mode: u8,
    pub copy_range: u32,
    pub queue_dropped: u32,
    pub user_dropped: u32,
    pub id_sequence: u32,
}

impl KernelQueueStats {
    /// Parses one line of [`PROC_PATH`]; `None` for anything that is not
    /// nine unsigned columns.
    pub fn parse_line(line: &str) -> Option<KernelQueueStats> {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let [q, portid, total, mode, range, dropped, user, seq, _one] = cols[..] else {
            return None;
        };
        Some(KernelQueueStats {
            queue_num: q.parse().ok()?,
            peer_portid: portid.parse().ok()?,
            queue_total: total.parse().ok()?,
            copy_mode: mode.parse().ok()?,
            copy_range: range.parse().ok()?,
            queue_dropped: dropped.parse().ok()?,
            user_dropped: user.parse().ok()?,
            id_sequence: seq.parse().ok()?,
        })
    }

    /// The row of `queue_num` in the text of [`PROC_PATH`]; malformed lines
    /// are skipped.
    pub fn find(text: &str, queue_num: u16) -> Option<KernelQueueStats> {
        text.lines()
            .filter_map(KernelQueueStats::parse_line)
            .find(|s| s.queue_num == queue_num)
    }
}

/// The kernel's row for `queue_num` in this namespace; `None` when the
/// queue is not bound (no reader, or between restarts).
pub fn kernel_stats(queue_num: u16) -> io::Result<Option<KernelQueueStats>> {
    let text = std::fs::read_to_string(PROC_PATH)?;
    Ok(KernelQueueStats::find(&text, queue_num))
}

#[cfg(test)]
mod tests {
    use std::{collections::VecDeque, sync::Mutex};

    use super::*;

    #[test]
    fn proc_lines() {
        let full = KernelQueueStats {
            queue_num: 4242,
            peer_portid: 3_456_789,
            queue_total: 2,
            copy_mode: 2,
            copy_range: 65535,
            queue_dropped: 7,
            user_dropped: 9,
            id_sequence: 123_456,
        };
        let cases: &[(&str, Option<KernelQueueStats>)] = &[
            // As the kernel prints it ("%5u %6u %5u %1u %5u %5u %5u %8u %2d").
            (
                " 4242 3456789     2 2 65535     7     9   123456  1",
                Some(full),
            ),
            ("4242 3456789 2 2 65535 7 9 123456 1\n", Some(full)),
            (
                "    0      0     0 0     0     0     0        0  1",
                Some(KernelQueueStats::default()),
            ),
            // Hostile or foreign lines.
            ("", None),
            ("   ", None),
            ("4242 3456789 2 2 65535 7 9 123456", None),
            ("4242 3456789 2 2 65535 7 9 123456 1 1", None),
            ("65536 1 2 2 65535 7 9 123456 1", None),
            ("4242 -1 2 2 65535 7 9 123456 1", None),
            ("4242 1 2 2 65535 7 9 4294967296 1", None),
            ("4242 1 2 256 65535 7 9 1 1", None),
            ("q 1 2 2 65535 7 9 1 1", None),
            ("4242 1 2 2 65535 7 9 0x10 1", None),
            ("\u{0}\u{0}\u{0}", None),
            ("4242 1 2 2 65535 7 9 12345678901234567890 1", None),
        ];
        for (line, want) in cases {
            assert_eq!(KernelQueueStats::parse_line(line), *want, "{line:?}");
        }
        let text = "    1   100     0 2 65535     0     0       10  1\n\
                    garbage\n\
                    4242 3456789 2 2 65535 7 9 123456 1\n";
        assert_eq!(KernelQueueStats::find(text, 4242), Some(full));
        assert_eq!(
            KernelQueueStats::find(text, 1).map(|s| s.id_sequence),
            Some(10)
        );
        assert_eq!(KernelQueueStats::find(text, 2), None);
        assert_eq!(KernelQueueStats::find("", 4242), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RestartPolicy::default();
        let ms: Vec<u128> = (1..=8).map(|n| p.delay(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(p.delay(u32::MAX), p.max_backoff);
    }

    /// One scripted event of a [`Script`] queue.
    enum Step {
        Packet,
        Error(i32),
    }

    /// A queue that replays its steps, then fails with EBADF (a dead
    /// socket); counts its accepted packets.
    struct Script {
        steps: VecDeque<Step>,
        accepted: Arc<AtomicU64>,
    }

    impl QueueIo for Script {
        type Msg = Vec<u8>;

        fn recv(&mut self) -> io::Result<Vec<u8>> {
            match self.steps.pop_front() {
                // Not an IP packet: decoded as an error, delivered anyway.
                Some(Step::Packet) => Ok(vec![0x45]),
                Some(Step::Error(e)) => Err(io::Error::from_raw_os_error(e)),
                None => Err(io::Error::from_raw_os_error(libc::EBADF)),
            }
        }

        fn payload(msg: &Vec<u8>) -> &[u8] {
            msg
        }

        fn accept(&mut self, _: Vec<u8>) -> io::Result<()> {
            self.accepted.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    /// Counts deliveries; panics on the deliveries listed.
    struct PanickySink {
        delivered: Arc<Mutex<u32>>,
        panic_on: Vec<u32>,
    }

    impl Sink for PanickySink {
        fn deliver(&mut self, _: Result<SignalingPacket, PacketError>) -> bool {
            let n = {
                let mut d = self.delivered.lock().unwrap();
                *d += 1;
                *d
            };
            if self.panic_on.contains(&n) {
                panic!("injected sink failure on packet {n}");
            }
            true
        }
    }

    fn quick(max_restarts: u32) -> RestartPolicy {
        RestartPolicy {
            backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            max_restarts,
            healthy_after: Duration::from_secs(3600),
        }
    }

    #[test]
    fn a_panicking_reader_is_restarted_and_keeps_reading() {
        let accepted = Arc::new(AtomicU64::new(0));
        let delivered = Arc::new(Mutex::new(0));
        let script = |steps: Vec<Step>| Script {
            steps: steps.into(),
            accepted: accepted.clone(),
        };
        // First socket: the second packet panics the sink. Second socket:
        // three packets, then it dies for good; no more sockets.
        let mut sockets =
            VecDeque::from([script((0..3).map(|_| Step::Packet).collect::<Vec<_>>())]);
        let first = script(vec![Step::Packet, Step::Packet, Step::Packet]);
        let sink = PanickySink {
            delivered: delivered.clone(),
            panic_on: vec![2],
        };
        let health = Health::new(7);
        let mut reopened = 0;
        let why = supervise(
            first,
            || {
                reopened += 1;
                sockets
                    .pop_front()
                    .ok_or(CaptureError::QueueBusy { queue_num: 7 })
            },
            7,
            sink,
            &health,
            quick(3),
        );
        // The packet whose delivery panicked gets no verdict (the kernel
        // drops it when the old socket closes), nor does the rest of the
        // first socket's queue: 1 accepted there, 3 on the second socket.
        assert_eq!(
            *delivered.lock().unwrap(),
            5,
            "2 on the first socket, 3 on the second"
        );
        assert_eq!(accepted.load(Ordering::Relaxed), 4);
        // Restarts: the panic, the second socket's death, then two failed
        // binds; the fourth failure in a row gives up.
        assert_eq!(health.restarts(), 3);
        assert_eq!(reopened, 3);
        assert!(why.contains("given up after 3 restarts"), "{why}");
    }

    #[test]
    fn transient_errors_do_not_restart_persistent_ones_do() {
        let accepted = Arc::new(AtomicU64::new(0));
        let mut steps = vec![Step::Error(libc::EINTR), Step::Packet];
        // ENOBUFS (the socket overflowed) any number of times is not a
        // failure of the socket.
        steps.extend((0..PERSISTENT_ERRORS * 2).map(|_| Step::Error(libc::ENOBUFS)));
        steps.push(Step::Packet);
        steps.extend((0..PERSISTENT_ERRORS - 1).map(|_| Step::Error(libc::EIO)));
        steps.push(Step::Packet);
        let first = Script {
            steps: steps.into(),
            accepted: accepted.clone(),
        };
        let health = Health::new(7);
        let why = supervise(
            first,
            || Err(CaptureError::QueueBusy { queue_num: 7 }),
            7,
            PanickySink {
                delivered: Arc::new(Mutex::new(0)),
                panic_on: vec![],
            },
            &health,
            quick(0),
        );
        // 99 EIO then a packet reset the count; the script's end (EBADF x100)
        // is the persistent failure.
        assert_eq!(accepted.load(Ordering::Relaxed), 3);
        assert_eq!(health.restarts(), 0, "given up at once with max_restarts 0");
        assert!(why.contains("failed persistently"), "{why}");
        assert!(
            why.contains(&io::Error::from_raw_os_error(libc::EBADF).to_string()),
            "{why}"
        );
    }
}
