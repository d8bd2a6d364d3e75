//! The NFQUEUE reader: a dedicated blocking thread that takes each queued
//! signaling packet, decodes it, hands it to the controller and waits until
//! the controller has applied its consequences, then lets the packet go on
//! (always ACCEPT: the daemon never drops signaling).

use std::{
    io,
    thread::{self, JoinHandle},
    time::Duration,
};

use nfq::{Queue, Verdict};
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

/// The running reader thread. It blocks in `recv` and ends with the process
/// (nfq 0.2 offers no way to interrupt a blocking receive); removing the
/// rules first means nothing more is queued to it.
#[derive(Debug)]
pub struct Reader {
    _thread: JoinHandle<()>,
    queue_num: u16,
}

impl Reader {
    pub fn queue_num(&self) -> u16 {
        self.queue_num
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

/// Opens and binds the queue (fail-open, bounded length) and starts the
/// reader thread.
pub fn start(opts: QueueOptions, sink: impl Sink) -> Result<Reader, CaptureError> {
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
    let thread = thread::Builder::new()
        .name(format!("nfqueue-{q}"))
        .spawn(move || run(queue, q, sink))
        .map_err(|e| open_error(q, "starting the reader thread", e))?;
    info!(
        queue = q,
        max_len = opts.max_len,
        "signaling queue bound (fail-open)"
    );
    Ok(Reader {
        _thread: thread,
        queue_num: q,
    })
}

fn run(mut queue: Queue, queue_num: u16, mut sink: impl Sink) {
    let mut recv_log = RateLimit::default();
    let mut verdict_log = RateLimit::default();
    let mut consecutive_errors = 0u32;
    let mut sink_alive = true;
    loop {
        let mut msg = match queue.recv() {
            Ok(m) => {
                consecutive_errors = 0;
                m
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                consecutive_errors += 1;
                if let Some(n) = recv_log.allow(monotonic_ns()) {
                    error!(
                        queue = queue_num,
                        suppressed = n,
                        "reading the signaling queue: {e}"
                    );
                }
                if consecutive_errors >= 100 {
                    // A persistent error: do not spin.
                    thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
        };
        let received_at = monotonic_ns();
        let packet = decode(msg.get_payload(), received_at);
        if sink_alive && !sink.deliver(packet) {
            sink_alive = false;
            warn!(
                queue = queue_num,
                "the controller is gone; passing signaling unobserved"
            );
        }
        msg.set_verdict(Verdict::Accept);
        if let Err(e) = queue.verdict(msg) {
            if let Some(n) = verdict_log.allow(monotonic_ns()) {
                error!(queue = queue_num, suppressed = n, "issuing a verdict: {e}");
            }
        }
    }
}
