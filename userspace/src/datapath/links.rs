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
mod tests {
    use super::*;

    /// Records what the tracker asked for; fails attaches to `refuse`.
    #[derive(Default)]
    struct Fake {
        calls: Vec<String>,
        refuse: Option<u32>,
    }

    impl Attach for Fake {
        fn attach(&mut self, iface: &str, ifindex: u32) -> Result<(), LoadError> {
            self.calls.push(format!("attach {iface} {ifindex}"));
            if self.refuse == Some(ifindex) {
                return Err(LoadError::NoSuchInterface(iface.into()));
            }
            Ok(())
        }

        fn release(&mut self, iface: &str) {
            self.calls.push(format!("release {iface}"));
        }
    }

    fn link(index: u32, name: &str, up: bool) -> LinkState {
        LinkState {
            index,
            name: name.into(),
            up,
        }
    }

    fn tracker() -> Tracker<Fake> {
        Tracker::new(
            Fake::default(),
            XdpMode::Native,
            &[("r-out".into(), 5), ("r-in".into(), 6)],
        )
    }

    /// (state, ifindex, up, reattached) of `r-out`.
    fn out(t: &Tracker<Fake>) -> (String, Option<u32>, Option<bool>, u64) {
        let s = &t.status()[0];
        assert_eq!((s.name.as_str(), s.mode.as_str()), ("r-out", "native"));
        (s.state.clone(), s.ifindex, s.up, s.reattached)
    }

    #[test]
    fn churn_sequences() {
        use LinkEvent::*;
        let attached = |i, up| ("attached".to_string(), Some(i), up, 0);
        type Want = (String, Option<u32>, Option<bool>, u64);
        let cases: Vec<(&str, Vec<LinkEvent>, &[&str], Want)> = vec![
            (
                "down and up: nothing to do",
                vec![
                    New(link(5, "r-out", true)),
                    New(link(5, "r-out", false)),
                    New(link(5, "r-out", true)),
                ],
                &[],
                attached(5, Some(true)),
            ),
            (
                "deleted: the link is let go",
                vec![
                    New(link(5, "r-out", false)),
                    Deleted(link(5, "r-out", false)),
                ],
                &["release r-out"],
                ("absent".into(), None, None, 0),
            ),
            (
                "re-created under another index: attached again",
                vec![
                    Deleted(link(5, "r-out", false)),
                    New(link(9, "r-out", false)),
                ],
                &["release r-out", "attach r-out 9"],
                ("attached".into(), Some(9), Some(false), 1),
            ),
            (
                "re-created with the deletion missed",
                vec![New(link(9, "r-out", true))],
                &["release r-out", "attach r-out 9"],
                ("attached".into(), Some(9), Some(true), 1),
            ),
            (
                "a failed attach is retried on the next change",
                vec![
                    Deleted(link(5, "r-out", false)),
                    New(link(13, "r-out", false)),
                    New(link(13, "r-out", true)),
                    Deleted(link(13, "r-out", true)),
                    New(link(14, "r-out", true)),
                ],
                &[
                    "release r-out",
                    "attach r-out 13",
                    "attach r-out 13",
                    "attach r-out 14",
                ],
                ("attached".into(), Some(14), Some(true), 1),
            ),
            (
                "renamed away: detached, and attached to the next of that name",
                vec![New(link(5, "wan0", true)), New(link(11, "r-out", true))],
                &["release r-out", "attach r-out 11"],
                ("attached".into(), Some(11), Some(true), 1),
            ),
            (
                "other interfaces are ignored",
                vec![
                    New(link(7, "eth9", true)),
                    Deleted(link(7, "eth9", true)),
                    Deleted(link(16, "r-in-not", false)),
                ],
                &[],
                attached(5, None),
            ),
            (
                "snapshot: unchanged",
                vec![Snapshot(vec![
                    link(1, "lo", true),
                    link(5, "r-out", true),
                    link(6, "r-in", true),
                ])],
                &[],
                attached(5, Some(true)),
            ),
            (
                "snapshot: gone, then back under another index",
                vec![
                    Snapshot(vec![link(6, "r-in", true)]),
                    Snapshot(vec![link(6, "r-in", true), link(8, "r-out", true)]),
                ],
                &["release r-out", "attach r-out 8"],
                ("attached".into(), Some(8), Some(true), 1),
            ),
        ];
        for (what, events, calls, want) in cases {
            let mut t = tracker();
            if what.contains("failed") {
                t.attach.refuse = Some(13);
            }
            for ev in events {
                t.on_event(ev);
            }
            assert_eq!(t.attach.calls, calls, "{what}");
            assert_eq!(out(&t), want, "{what}");
            // The other interface is never touched.
            let r_in = &t.status()[1];
            assert_eq!(
                (r_in.state.as_str(), r_in.ifindex),
                ("attached", Some(6)),
                "{what}"
            );
        }
    }

    #[test]
    fn a_failed_attach_shows_in_the_status_until_it_succeeds() {
        let mut t = tracker();
        t.attach.refuse = Some(13);
        t.on_event(LinkEvent::Deleted(link(5, "r-out", true)));
        t.on_event(LinkEvent::New(link(13, "r-out", true)));
        let s = &t.status()[0];
        assert_eq!((s.state.as_str(), s.ifindex), ("failed", Some(13)));
        assert_eq!(s.error.as_deref(), Some("no such interface: r-out"));
        t.on_event(LinkEvent::Snapshot(vec![link(6, "r-in", true)]));
        let s = &t.status()[0];
        assert_eq!((s.state.as_str(), s.ifindex), ("absent", None));
        t.attach.refuse = None;
        t.on_event(LinkEvent::New(link(15, "r-out", true)));
        let s = &t.status()[0];
        assert_eq!(
            (s.state.as_str(), s.ifindex, s.error.as_deref()),
            ("attached", Some(15), None)
        );
    }

    /// A netlink message of `ty` with a link message of `index`/`name`.
    fn message(ty: RouteNetlinkMessage, seq: u32, port: u32, flags: u16) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        header.port_number = port;
        header.flags = flags;
        let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(ty));
        m.finalize();
        let mut buf = vec![0; m.buffer_len()];
        m.serialize(&mut buf);
        buf
    }

    fn link_message(index: u32, name: Option<&str>, flags: LinkFlags) -> LinkMessage {
        let mut l = LinkMessage::default();
        l.header.index = index;
        l.header.flags = flags;
        if let Some(n) = name {
            l.attributes.push(LinkAttribute::IfName(n.into()));
        }
        l
    }

    #[test]
    fn datagrams_decode_and_hostile_ones_do_not_panic() {
        let up = LinkFlags::Up | LinkFlags::LowerUp;
        let new = message(
            RouteNetlinkMessage::NewLink(link_message(5, Some("r-out"), up)),
            0,
            0,
            0,
        );
        let del = message(
            RouteNetlinkMessage::DelLink(link_message(9, Some("eth0.100"), LinkFlags::Up)),
            0,
            0,
            0,
        );
        let reply = message(
            RouteNetlinkMessage::NewLink(link_message(1, Some("lo"), up)),
            7,
            4242,
            NLM_F_DUMP_INTR,
        );
        let nameless = message(
            RouteNetlinkMessage::NewLink(link_message(3, None, up)),
            0,
            0,
            0,
        );
        let mut done = NetlinkMessage::<RouteNetlinkMessage>::new(
            NetlinkHeader::default(),
            NetlinkPayload::Done(Default::default()),
        );
        done.header.sequence_number = 7;
        done.finalize();
        let mut done_bytes = vec![0; done.buffer_len()];
        done.serialize(&mut done_bytes);

        let ok = |seq, port, flags, msg| {
            Ok::<_, String>(Decoded {
                seq,
                port,
                flags,
                msg,
            })
        };
        let both = [new.clone(), del.clone()].concat();
        type Case = (&'static str, Vec<u8>, Vec<Result<Decoded, String>>);
        let cases: Vec<Case> = vec![
            (
                "new link, up",
                new.clone(),
                vec![ok(0, 0, 0, Message::New(link(5, "r-out", true)))],
            ),
            (
                "deleted link, no carrier",
                del.clone(),
                vec![ok(0, 0, 0, Message::Deleted(link(9, "eth0.100", false)))],
            ),
            (
                "two messages in one datagram",
                both.clone(),
                vec![
                    ok(0, 0, 0, Message::New(link(5, "r-out", true))),
                    ok(0, 0, 0, Message::Deleted(link(9, "eth0.100", false))),
                ],
            ),
            (
                "a dump reply and its end",
                [reply.clone(), done_bytes.clone()].concat(),
                vec![
                    ok(7, 4242, NLM_F_DUMP_INTR, Message::New(link(1, "lo", true))),
                    ok(7, 0, 0, Message::Done),
                ],
            ),
            (
                "a link without a name is not one of ours",
                nameless,
                vec![ok(0, 0, 0, Message::Other)],
            ),
            ("empty", Vec::new(), Vec::new()),
        ];
        for (what, bytes, want) in cases {
            let got = decode(&bytes);
            assert_eq!(got, want, "{what}");
        }

        // Hostile and broken datagrams: errors, never a panic or a loop.
        let mut too_long = new.clone();
        too_long[0..4].copy_from_slice(&(new.len() as u32 + 64).to_ne_bytes());
        let mut too_short = new.clone();
        too_short[0..4].copy_from_slice(&8u32.to_ne_bytes());
        let mut zero = new.clone();
        zero[0..4].copy_from_slice(&0u32.to_ne_bytes());
        let mut bad_attr = new.clone();
        // The first attribute's length (after the 16-byte netlink and
        // 16-byte link headers) claims more than there is.
        bad_attr[32..34].copy_from_slice(&0xfff0u16.to_ne_bytes());
        let hostile: Vec<(&str, Vec<u8>, usize)> = vec![
            ("truncated header", new[..10].to_vec(), 1),
            ("length beyond the datagram", too_long, 1),
            ("length shorter than a header", too_short, 1),
            ("zero length", zero, 1),
            ("attribute overrunning the message", bad_attr, 1),
            (
                "a good message then garbage",
                [new.clone(), vec![0xff; 7]].concat(),
                2,
            ),
            ("garbage", vec![0xa5; 300], 1),
        ];
        for (what, bytes, n) in hostile {
            let got = decode(&bytes);
            assert_eq!(got.len(), n, "{what}: {got:?}");
            assert!(got.last().unwrap().is_err(), "{what}: {got:?}");
        }
        // Every prefix of a good datagram.
        for cut in 0..both.len() {
            let _ = decode(&both[..cut]);
        }
    }

    #[test]
    fn the_dump_request_is_a_getlink_dump() {
        let bytes = dump_request(3);
        let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).unwrap();
        assert_eq!(m.header.sequence_number, 3);
        assert_eq!(m.header.flags, NLM_F_REQUEST | NLM_F_DUMP);
        assert!(matches!(
            m.payload,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(_))
        ));
    }
}
