//! Interface churn: the attached interfaces going down and up, going away
//! and coming back while the daemon runs.
//!
//! A [`Watcher`] subscribes to the kernel's rtnetlink link notifications
//! (`RTNLGRP_LINK`) and reads the link list once at start (and again when
//! notifications were lost to a socket overrun); it sends them as typed
//! [`LinkEvent`]s over a bounded channel. A [`Tracker`] receives them in a
//! task of its own, which owns the attachments (the [`Datapath`]): nothing
//! here touches the packet path, the pinhole table or the maps, so pinholes
//! keep their state through any churn.
//!
//! What the tracker does, per configured interface name:
//! - down (not administratively up, or no carrier): logged; the XDP program
//!   stays attached (a bpf_link survives down/up, in native and skb mode,
//!   checked on veth with Linux 6.18), so nothing else is done;
//! - deleted (or moved to another network namespace): logged; its link,
//!   now defunct, is closed and unpinned;
//! - renamed away: the filter follows the name, so the link is detached
//!   from the renamed interface;
//! - a new interface with the name (another ifindex): the program is
//!   attached again in the configured mode (pinned in place of the old link
//!   with a pin directory). A failure is logged once and retried on the
//!   interface's next link change.
//!
//! The tracker publishes each interface's state ([`InterfaceStatus`]) on a
//! `watch` channel, for `pinhole stats` and the metrics.

use std::io;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_packet_route::{
    link::{LinkAttribute, LinkFlags, LinkMessage},
    RouteNetlinkMessage,
};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use tokio::{
    io::unix::AsyncFd,
    sync::{mpsc, watch},
    task::JoinHandle,
};
use tracing::{debug, error, info, warn};

use super::{
    error::LoadError,
    load::{Datapath, XdpMode},
};

/// One configured interface in `stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InterfaceStatus {
    pub name: String,
    /// `attached`; `absent` (no interface has the name now); `failed` (it
    /// is there but attaching failed, see `error`; retried on its next
    /// link change).
    pub state: String,
    /// The XDP mode: `native` or `skb`.
    pub mode: String,
    /// The interface's index; null when absent.
    pub ifindex: Option<u32>,
    /// Up administratively and with carrier; null when not known yet.
    pub up: Option<bool>,
    /// Times the program was attached again to a re-created interface.
    pub reattached: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The rtnetlink multicast group of link changes (`RTNLGRP_LINK`).
const RTNLGRP_LINK: u32 = 1;
/// Receive buffer asked for, so a burst of changes (many containers
/// starting at once) does not overrun the socket; an overrun is recovered
/// from by reading the link list again.
const RECV_BUFFER: usize = 1 << 20;
/// Events in flight between the watcher and the tracker.
const CHANNEL_DEPTH: usize = 256;
/// Notifications held back while a link dump is read; more and the dump
/// starts over (it will show their outcome).
const MAX_HELD: usize = 4096;

/// One network interface as a link notification or dump shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    /// Administratively up (`IFF_UP`) and with carrier (`IFF_LOWER_UP`).
    pub up: bool,
}

/// What the [`Watcher`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// Every interface of the namespace, at start and after lost
    /// notifications.
    Snapshot(Vec<LinkState>),
    /// An interface appeared or changed (`RTM_NEWLINK`).
    New(LinkState),
    /// An interface was deleted or left the namespace (`RTM_DELLINK`).
    Deleted(LinkState),
}

/// One netlink message, as far as link watching goes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Message {
    New(LinkState),
    Deleted(LinkState),
    /// The end of a dump.
    Done,
    /// An error reply (a negative errno).
    Error(i32),
    Other,
}

/// A [`Message`] with the header fields that tell a dump reply from a
/// notification.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Decoded {
    seq: u32,
    port: u32,
    flags: u16,
    msg: Message,
}

fn link_state(m: &LinkMessage) -> Option<LinkState> {
    let name = m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })?;
    let flags = m.header.flags;
    Some(LinkState {
        index: m.header.index,
        name,
        up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::LowerUp),
    })
}

/// The netlink messages of one datagram. A message that does not decode is
/// reported and skipped; a header that does not fit ends the datagram.
fn decode(datagram: &[u8]) -> Vec<Result<Decoded, String>> {
    let mut out = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let len = match NetlinkBuffer::new_checked(rest) {
            Ok(b) => b.length() as usize,
            Err(e) => {
                out.push(Err(e.to_string()));
                break;
            }
        };
        let bytes = &rest[..len];
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
        let m = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
            Ok(m) => m,
            Err(e) => {
                out.push(Err(e.to_string()));
                continue;
            }
        };
        let msg = match &m.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                link_state(l).map_or(Message::Other, Message::New)
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
                link_state(l).map_or(Message::Other, Message::Deleted)
            }
            NetlinkPayload::Done(_) => Message::Done,
            NetlinkPayload::Error(e) if e.raw_code() != 0 => Message::Error(e.raw_code()),
            _ => Message::Other,
        };
        out.push(Ok(Decoded {
            seq: m.header.sequence_number,
            port: m.header.port_number,
            flags: m.header.flags,
            msg,
        }));
    }
    out
}

/// A `RTM_GETLINK` dump request.
fn dump_request(seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut m = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(LinkMessage::default())),
    );
    m.finalize();
    let mut buf = vec![0; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}

/// A link dump being read; notifications wait until it is complete.
struct Dump {
    seq: u32,
    links: Vec<LinkState>,
    held: Vec<LinkEvent>,
    interrupted: bool,
}

/// The link notification socket. See the module documentation.
pub struct Watcher {
    fd: AsyncFd<Socket>,
    port: u32,
    seq: u32,
}

impl Watcher {
    /// Opens a rtnetlink socket in the current network namespace,
    /// subscribed to link changes.
    pub fn open() -> io::Result<Watcher> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        let addr = socket.bind_auto()?;
        socket.add_membership(RTNLGRP_LINK)?;
        if let Err(e) = socket.set_rx_buf_sz(RECV_BUFFER) {
            debug!("link watch: keeping the default receive buffer: {e}");
        }
        socket.set_non_blocking(true)?;
        // SAFETY: the socket owns its fd, which stays open and unchanged
        // until the socket (owned by the AsyncFd) is dropped.
        let fd = unsafe { AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)?;
        Ok(Watcher {
            fd,
            port: addr.port_number(),
            seq: 0,
        })
    }

    /// Starts a link dump; `None` (logged) if the request cannot be sent.
    fn start_dump(&mut self) -> Option<Dump> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let request = dump_request(self.seq);
        match self
            .fd
            .get_ref()
            .send_to(&request, &SocketAddr::new(0, 0), 0)
        {
            Ok(_) => Some(Dump {
                seq: self.seq,
                links: Vec::new(),
                held: Vec::new(),
                interrupted: false,
            }),
            Err(e) => {
                warn!("link watch: asking for the interface list failed: {e}");
                None
            }
        }
    }

    /// One datagram.
    async fn recv(&self) -> io::Result<Vec<u8>> {
        loop {
            let mut guard = self.fd.readable().await?;
            if let Ok(r) = guard.try_io(|fd| fd.get_ref().recv_from_full()) {
                return r.map(|(buf, _)| buf);
            }
        }
    }

    /// Reads the link list, then link changes, and sends them to `tx`
    /// until the receiver goes away (or reading fails, logged).
    pub async fn run(mut self, tx: mpsc::Sender<LinkEvent>) {
        let mut dump = self.start_dump();
        loop {
            let datagram = match self.recv().await {
                Ok(d) => d,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    warn!("link watch: notifications were lost (socket overrun); reading the interface list again");
                    dump = self.start_dump();
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    error!(
                        "link watch: reading link notifications failed: {e}; interface changes \
                         are no longer followed"
                    );
                    return;
                }
            };
            for d in decode(&datagram) {
                let d = match d {
                    Ok(d) => d,
                    Err(e) => {
                        debug!("link watch: skipping an undecodable message: {e}");
                        continue;
                    }
                };
                let reply = d.seq != 0 && d.port == self.port;
                let event = match (d.msg, dump.as_mut()) {
                    (msg, Some(current)) if reply && d.seq == current.seq => {
                        current.interrupted |= d.flags & NLM_F_DUMP_INTR != 0;
                        match msg {
                            Message::New(l) => current.links.push(l),
                            Message::Done if current.interrupted => {
                                debug!("link watch: the interface list changed while read; reading it again");
                                let held = std::mem::take(&mut current.held);
                                dump = self.start_dump();
                                match dump.as_mut() {
                                    Some(d) => d.held = held,
                                    None => {
                                        for ev in held {
                                            if !send(&tx, ev).await {
                                                return;
                                            }
                                        }
                                    }
                                }
                            }
                            Message::Done => {
                                let done = dump.take().expect("a dump is being read");
                                if !send(&tx, LinkEvent::Snapshot(done.links)).await {
                                    return;
                                }
                                for ev in done.held {
                                    if !send(&tx, ev).await {
                                        return;
                                    }
                                }
                            }
                            Message::Error(code) => {
                                warn!(
                                    "link watch: the interface list could not be read: {}",
                                    io::Error::from_raw_os_error(-code)
                                );
                                let done = dump.take().expect("a dump is being read");
                                for ev in done.held {
                                    if !send(&tx, ev).await {
                                        return;
                                    }
                                }
                            }
                            Message::Deleted(_) | Message::Other => {}
                        }
                        continue;
                    }
                    (_, _) if reply => continue,
                    (Message::New(l), _) => LinkEvent::New(l),
                    (Message::Deleted(l), _) => LinkEvent::Deleted(l),
                    _ => continue,
                };
                match dump.as_mut() {
                    Some(current) if current.held.len() >= MAX_HELD => {
                        debug!("link watch: too many changes while the interface list is read; reading it again");
                        dump = self.start_dump();
                    }
                    Some(current) => current.held.push(event),
                    None => {
                        if !send(&tx, event).await {
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Sends one event; false once the tracker is gone.
async fn send(tx: &mpsc::Sender<LinkEvent>, ev: LinkEvent) -> bool {
    tx.send(ev).await.is_ok()
}

/// Attaching and letting go of one interface's XDP link, for the
/// [`Tracker`] (implemented by [`Datapath`]).
pub trait Attach {
    /// Attaches the program to `iface`, now at `ifindex`, in the configured
    /// mode, replacing the link it had.
    fn attach(&mut self, iface: &str, ifindex: u32) -> Result<(), LoadError>;
    /// Lets go of the link of `iface` (its interface was deleted or
    /// renamed): closed and unpinned.
    fn release(&mut self, iface: &str);
}

impl Attach for Datapath {
    fn attach(&mut self, iface: &str, ifindex: u32) -> Result<(), LoadError> {
        self.reattach(iface, ifindex)
    }

    fn release(&mut self, iface: &str) {
        self.drop_link(iface);
    }
}

/// What the tracker knows of one configured interface.
#[derive(Clone, Debug)]
struct Iface {
    name: String,
    /// The index of the interface the program is attached to.
    attached: Option<u32>,
    /// The index of the interface with this name, when one is known.
    present: Option<u32>,
    /// As last seen; `None` before the first report.
    up: Option<bool>,
    reattached: u64,
    /// Why the last attach failed, while it has not succeeded since.
    error: Option<String>,
}

/// Follows the configured interfaces and keeps the program attached to
/// them. See the module documentation.
pub struct Tracker<A> {
    attach: A,
    mode: XdpMode,
    ifaces: Vec<Iface>,
}

impl<A: Attach> Tracker<A> {
    /// `interfaces`: the configured names with the index each is attached
    /// to now.
    pub fn new(attach: A, mode: XdpMode, interfaces: &[(String, u32)]) -> Self {
        let ifaces = interfaces
            .iter()
            .map(|(name, index)| Iface {
                name: name.clone(),
                attached: Some(*index),
                present: Some(*index),
                up: None,
                reattached: 0,
                error: None,
            })
            .collect();
        Tracker {
            attach,
            mode,
            ifaces,
        }
    }

    /// Hands the attachments back.
    pub fn into_inner(self) -> A {
        self.attach
    }

    /// Applies one event.
    pub fn on_event(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::New(link) => self.on_new(&link),
            LinkEvent::Deleted(link) => self.on_deleted(&link),
            LinkEvent::Snapshot(links) => {
                for i in 0..self.ifaces.len() {
                    if let Some(index) = self.ifaces[i].attached {
                        if !links.iter().any(|l| l.index == index) {
                            let name = self.ifaces[i].name.clone();
                            self.on_deleted(&LinkState {
                                index,
                                name,
                                up: false,
                            });
                        }
                    }
                }
                for link in &links {
                    self.on_new(link);
                }
                for iface in &mut self.ifaces {
                    if iface.attached.is_none()
                        && iface
                            .present
                            .is_some_and(|p| !links.iter().any(|l| l.index == p))
                    {
                        iface.present = None;
                        iface.up = None;
                    }
                }
            }
        }
    }

    fn on_new(&mut self, link: &LinkState) {
        let mode = crate::datapath::pin::mode_name(self.mode);
        for iface in &mut self.ifaces {
            if iface.attached == Some(link.index) && iface.name != link.name {
                warn!(iface = %iface.name, renamed_to = %link.name, ifindex = link.index,
                    "iface {} renamed to {}; the filter follows the name {0}: detached from {1}",
                    iface.name, link.name);
                self.attach.release(&iface.name);
                iface.attached = None;
                iface.present = None;
                iface.up = None;
            }
        }
        let Some(iface) = self.ifaces.iter_mut().find(|i| i.name == link.name) else {
            return;
        };
        iface.present = Some(link.index);
        if iface.attached == Some(link.index) {
            match (iface.up, link.up) {
                (Some(true) | None, false) => warn!(iface = %iface.name, ifindex = link.index,
                    "iface {} down; XDP stays attached", iface.name),
                (Some(false), true) => info!(iface = %iface.name, ifindex = link.index,
                    "iface {} up", iface.name),
                _ => {}
            }
            iface.up = Some(link.up);
            return;
        }
        iface.up = Some(link.up);
        if iface.attached.take().is_some() {
            // The interface this one replaces went away unreported.
            self.attach.release(&iface.name);
        }
        match self.attach.attach(&iface.name, link.index) {
            Ok(()) => {
                info!(iface = %iface.name, ifindex = link.index, mode,
                    "iface {} re-attached", iface.name);
                iface.attached = Some(link.index);
                iface.reattached += 1;
                iface.error = None;
            }
            Err(e) => {
                let e = e.to_string();
                if iface.error.as_ref() != Some(&e) {
                    error!(iface = %iface.name, ifindex = link.index, mode,
                        "iface {}: re-attaching failed: {e}; retrying on its next link change",
                        iface.name);
                } else {
                    debug!(iface = %iface.name, "re-attaching failed again: {e}");
                }
                iface.error = Some(e);
            }
        }
    }

    fn on_deleted(&mut self, link: &LinkState) {
        if let Some(iface) = self
            .ifaces
            .iter_mut()
            .find(|i| i.attached == Some(link.index))
        {
            warn!(iface = %iface.name, ifindex = link.index,
                "iface {} deleted; its XDP link is gone, re-attaching when it returns", iface.name);
            self.attach.release(&iface.name);
            iface.attached = None;
            iface.present = None;
            iface.up = None;
        } else if let Some(iface) = self
            .ifaces
            .iter_mut()
            .find(|i| i.present == Some(link.index))
        {
            info!(iface = %iface.name, ifindex = link.index, "iface {} deleted", iface.name);
            iface.present = None;
            iface.up = None;
        }
    }

    /// Each configured interface's state, in the configured order.
    pub fn status(&self) -> Vec<InterfaceStatus> {
        self.ifaces
            .iter()
            .map(|i| InterfaceStatus {
                name: i.name.clone(),
                state: match (i.attached, i.present) {
                    (Some(_), _) => "attached",
                    (None, Some(_)) => "failed",
                    (None, None) => "absent",
                }
                .into(),
                mode: crate::datapath::pin::mode_name(self.mode).into(),
                ifindex: i.attached.or(i.present),
                up: i.up,
                reattached: i.reattached,
                error: if i.attached.is_none() {
                    i.error.clone()
                } else {
                    None
                },
            })
            .collect()
    }
}

/// The running link watch: the watcher's task and the tracker's, which
/// owns the [`Datapath`] until [`LinkTask::stop`].
pub struct LinkTask {
    watcher: JoinHandle<()>,
    tracker: JoinHandle<Datapath>,
}

impl LinkTask {
    /// Starts following link changes for `datapath`'s interfaces (attached
    /// in `mode`), publishing their state on `status`.
    pub fn start(
        watcher: Watcher,
        datapath: Datapath,
        mode: XdpMode,
        status: watch::Sender<Vec<InterfaceStatus>>,
    ) -> LinkTask {
        let (tx, mut rx) = mpsc::channel(CHANNEL_DEPTH);
        let interfaces = datapath.attached_interfaces();
        let mut tracker = Tracker::new(datapath, mode, &interfaces);
        status.send_replace(tracker.status());
        let tracker = tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                tracker.on_event(ev);
                status.send_if_modified(|s| {
                    let now = tracker.status();
                    let changed = *s != now;
                    *s = now;
                    changed
                });
            }
            tracker.into_inner()
        });
        let watcher = tokio::spawn(watcher.run(tx));
        LinkTask { watcher, tracker }
    }

    /// Stops following and hands the datapath back (`None` if the tracker
    /// failed; the datapath was dropped then, see its `Drop`).
    pub async fn stop(self) -> Option<Datapath> {
        self.watcher.abort();
        let _ = self.watcher.await;
        match self.tracker.await {
            Ok(d) => Some(d),
            Err(e) => {
                error!("the link tracker failed: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
