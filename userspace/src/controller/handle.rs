//! The controller's channel: its commands and the handle to send them.

use std::net::SocketAddr;

use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use super::{
    foreign::{HaOp, HaReply},
    CommandError, Controller, ControllerConfig, FlowStore, CHANNEL_DEPTH,
};
use crate::{
    addr::Endpoint,
    capture::{nfqueue::Sink, PacketError, SignalingPacket},
    controller::report::{CallsReply, CloseReply, ListReply, OpenParams, OpenReply, StatsReply},
    datapath::latch::Latched,
};

pub(super) type Reply<T> = oneshot::Sender<Result<T, CommandError>>;

/// A request to the controller.
pub enum ControllerCommand {
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
        op: HaOp,
        reply: Reply<HaReply>,
    },
}

/// A cheap, cloneable way to talk to the controller.
#[derive(Clone)]
pub struct ControllerHandle {
    pub(super) tx: mpsc::Sender<ControllerCommand>,
}

impl ControllerHandle {
    pub(super) async fn call<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> ControllerCommand,
    ) -> Result<T, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)?
    }

    pub async fn open(&self, params: OpenParams) -> Result<OpenReply, CommandError> {
        self.call(|reply| ControllerCommand::Open { params, reply })
            .await
    }

    pub async fn close(&self, a: Endpoint, b: Endpoint) -> Result<CloseReply, CommandError> {
        self.call(|reply| ControllerCommand::Close { a, b, reply })
            .await
    }

    pub async fn list(&self) -> Result<ListReply, CommandError> {
        self.call(|reply| ControllerCommand::List { reply }).await
    }

    pub async fn stats(&self) -> Result<StatsReply, CommandError> {
        self.call(|reply| ControllerCommand::Stats { reply }).await
    }

    pub async fn calls(&self) -> Result<CallsReply, CommandError> {
        self.call(|reply| ControllerCommand::Calls { reply }).await
    }

    /// Hands a signaling packet over and waits until it is applied.
    pub async fn signaling(
        &self,
        packet: Result<SignalingPacket, PacketError>,
    ) -> Result<(), CommandError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(ControllerCommand::Signaling { packet, done })
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
            .send(ControllerCommand::Ng {
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
            .send(ControllerCommand::RefreshMetrics { done })
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)
    }

    /// Has the controller save its state now (see [`ControllerCommand::SaveState`]).
    pub async fn save_state(&self) -> Result<u64, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(ControllerCommand::SaveState { reply })
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)
    }

    /// Runs one HA operation (see [`HaOp`]).
    pub async fn ha(&self, op: HaOp) -> Result<HaReply, CommandError> {
        self.call(|reply| ControllerCommand::Ha { op, reply }).await
    }

    /// Hands the XDP program's latch reports over and waits until they are
    /// applied.
    pub async fn latched(&self, events: Vec<Latched>) -> Result<(), CommandError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(ControllerCommand::Latched { events, done })
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
    tx: mpsc::Sender<ControllerCommand>,
}

impl Sink for QueueSink {
    fn deliver(&mut self, packet: Result<SignalingPacket, PacketError>) -> bool {
        let (done, rx) = oneshot::channel();
        if self
            .tx
            .blocking_send(ControllerCommand::Signaling { packet, done })
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
