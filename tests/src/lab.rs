//! The signaling lab: a [`Topology`] with the daemon on its router, and the
//! checks the SIP and RTSP end-to-end tests (and the demo) share: waiting
//! for a call's or session's pinholes in `list --json`, per-flow packet
//! counts, traffic that must pass, and off-path traffic that must be dropped
//! with exact `miss` accounting.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use crate::{
    rtsp_peer::is_rtsp_owner,
    sipp::{is_ng_owner, is_sip_owner},
    traffic, wait_for, Daemon, Error, Family, Netns, Pinhole, Result, SignalingStats, Topology,
    XdpMode,
};

/// Datagrams per burst of test traffic.
pub const BURST: u32 = 32;
/// Bound on waiting for pinholes, counters and datagrams.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A flow `src → dst`.
pub type FlowKey = (SocketAddr, SocketAddr);
/// Flows with their packet counts.
pub type FlowCounts = BTreeMap<FlowKey, u64>;

/// Which host a socket lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    Outside,
    Inside,
}

/// Who must own every pinhole of a check.
#[derive(Clone, Copy, Debug)]
pub enum Owner<'a> {
    /// The SIP call with this Call-ID.
    Sip(&'a str),
    /// The RTSP session with this id.
    Rtsp(&'a str),
    /// The call with this Call-ID that a SIP proxy drives over the ng API.
    Ng(&'a str),
}

impl Owner<'_> {
    pub fn matches(&self, owner: Option<&str>) -> bool {
        match self {
            Owner::Sip(call_id) => is_sip_owner(owner, call_id),
            Owner::Rtsp(session) => is_rtsp_owner(owner, session),
            Owner::Ng(call_id) => is_ng_owner(owner, call_id),
        }
    }
}

impl std::fmt::Display for Owner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Sip(id) => write!(f, "sip:{id}"),
            Owner::Rtsp(id) => write!(f, "rtsp session {id}"),
            Owner::Ng(id) => write!(f, "ng:{id}"),
        }
    }
}

/// The flows of `pinholes` with their packet counts.
pub fn flow_packets<'a>(pinholes: impl IntoIterator<Item = &'a Pinhole>) -> FlowCounts {
    pinholes
        .into_iter()
        .flat_map(|p| p.flows.iter().map(|f| ((f.src, f.dst), f.packets)))
        .collect()
}

/// The four flows of a media stream between `a` and `b` (RTP) with RTCP on
/// the next ports: a→b, b→a, a+1→b+1, b+1→a+1.
pub fn stream_flows(a: SocketAddr, b: SocketAddr) -> [FlowKey; 4] {
    let (a1, b1) = (port_plus(a, 1), port_plus(b, 1));
    [(a, b), (b, a), (a1, b1), (b1, a1)]
}

/// A counter of the call layer's `signaling.detail` object by its path
/// (`"pairs_closed.bye"`, `"rtsp_interleaved"`); `None` when absent.
pub fn detail(stats: &SignalingStats, path: &str) -> Option<u64> {
    let mut v = stats.other.get("detail")?;
    for key in path.split('.') {
        v = v.get(key)?;
    }
    v.as_u64()
}

/// The changes of the call layer's counters at `paths` from `before` to
/// `after`, as `(path, delta)`, for comparing with expectations in one go.
pub fn detail_deltas(
    before: &SignalingStats,
    after: &SignalingStats,
    paths: &[&str],
) -> Result<Vec<(String, u64)>> {
    paths
        .iter()
        .map(|&path| {
            let get = |s: &SignalingStats| {
                detail(s, path).ok_or_else(|| {
                    Error::Setup(format!(
                        "`stats --json` has no signaling.detail.{path}: {:?}",
                        s.other.get("detail")
                    ))
                })
            };
            Ok((path.to_owned(), get(after)? - get(before)?))
        })
        .collect()
}

/// What a test predicts for the call-layer counters at `paths`, in the form
/// [`detail_deltas`] returns: the deltas in `nonzero`, zero for every other
/// path. Panics when `nonzero` names a path outside `paths` (a typo in the
/// test would otherwise go unchecked).
pub fn expected_deltas<P: AsRef<str>>(paths: &[&str], nonzero: &[(P, u64)]) -> Vec<(String, u64)> {
    for (path, _) in nonzero {
        let path = path.as_ref();
        assert!(paths.contains(&path), "{path} is not among {paths:?}");
    }
    paths
        .iter()
        .map(|&path| {
            let n = nonzero
                .iter()
                .find(|(p, _)| p.as_ref() == path)
                .map_or(0, |(_, n)| *n);
            (path.to_owned(), n)
        })
        .collect()
}

/// The nonzero call-layer deltas of one SIP call or RTSP session with one
/// media stream (an RTP and an RTCP pair) that `cause` closed
/// (`"bye"`, `"teardown"`, …), for [`expected_deltas`].
pub fn one_stream_closed_by(cause: &str) -> Vec<(String, u64)> {
    vec![
        (format!("calls.calls_closed.{cause}"), 1),
        ("calls.pairs_opened".to_owned(), 2),
        (format!("calls.pairs_closed.{cause}"), 2),
    ]
}

/// A socket address with the port moved by `delta` (RTCP is RTP + 1).
pub fn port_plus(addr: SocketAddr, delta: u16) -> SocketAddr {
    SocketAddr::new(addr.ip(), addr.port() + delta)
}

/// A topology with `pinhole run` on its router (XDP on both router
/// interfaces). Field order matters: the daemon stops before the namespaces
/// go away.
#[derive(Debug)]
pub struct Lab {
    pub daemon: Daemon,
    pub topo: Topology,
    pub family: Family,
    /// How the daemon was started, for [`Lab::restart_daemon`].
    mode: XdpMode,
    args: Vec<String>,
    /// The router interfaces the daemon is attached to.
    ifaces: &'static [&'static str],
}

/// Both router interfaces (the default).
const BOTH_IFACES: &[&str] = &[Topology::ROUTER_OUTSIDE_IF, Topology::ROUTER_INSIDE_IF];
/// The router's outside interface only.
const OUTSIDE_IFACE: &[&str] = &[Topology::ROUTER_OUTSIDE_IF];

impl Lab {
    /// Builds the topology and starts the daemon with `daemon_args`, native
    /// XDP.
    pub fn new(family: Family, daemon_args: &[&str]) -> Result<Lab> {
        Lab::with_mode(XdpMode::Native, family, daemon_args)
    }

    /// [`Lab::new`] with the XDP attach `mode`.
    pub fn with_mode(mode: XdpMode, family: Family, daemon_args: &[&str]) -> Result<Lab> {
        Lab::build(mode, family, BOTH_IFACES, |_| Ok(()), daemon_args)
    }

    /// [`Lab::with_mode`] with `prepare` run on the topology before the
    /// daemon starts (extra links, routes).
    pub fn prepared(
        mode: XdpMode,
        family: Family,
        prepare: impl FnOnce(&Topology) -> Result<()>,
        daemon_args: &[&str],
    ) -> Result<Lab> {
        Lab::build(mode, family, BOTH_IFACES, prepare, daemon_args)
    }

    /// A router that NATs (see `tests/tests/netns_router_nat.rs`):
    /// `prepare` configures the router (its NAT rules) before the daemon
    /// starts, which then attaches to the router's outside interface only,
    /// native XDP.
    pub fn outside_only(
        family: Family,
        prepare: impl FnOnce(&Topology) -> Result<()>,
        daemon_args: &[&str],
    ) -> Result<Lab> {
        Lab::build(XdpMode::Native, family, OUTSIDE_IFACE, prepare, daemon_args)
    }

    fn build(
        mode: XdpMode,
        family: Family,
        ifaces: &'static [&'static str],
        prepare: impl FnOnce(&Topology) -> Result<()>,
        daemon_args: &[&str],
    ) -> Result<Lab> {
        let topo = Topology::new()?;
        prepare(&topo)?;
        let daemon = topo.start_daemon_on(ifaces, mode, daemon_args)?;
        Ok(Lab {
            daemon,
            topo,
            family,
            mode,
            args: daemon_args.iter().map(|a| a.to_string()).collect(),
            ifaces,
        })
    }

    /// Stops the daemon (SIGTERM; it must exit 0) and starts a new one with
    /// the same arguments: whatever it does not save or pin is lost.
    pub fn restart_daemon(&mut self) -> Result<()> {
        let log = self.daemon.log();
        let status = self.daemon.terminate()?;
        if !status.success() {
            return Err(Error::Setup(format!(
                "the daemon exited {status} on SIGTERM; its log:\n{log}"
            )));
        }
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.daemon = self.topo.start_daemon_on(self.ifaces, self.mode, &args)?;
        Ok(())
    }

    pub fn ns(&self, host: Host) -> &Netns {
        match host {
            Host::Outside => &self.topo.outside,
            Host::Inside => &self.topo.inside,
        }
    }

    /// The host's address in the lab's family.
    pub fn ip(&self, host: Host) -> std::net::IpAddr {
        match host {
            Host::Outside => self.family.outside(),
            Host::Inside => self.family.inside(),
        }
    }

    /// The host's address in the lab's family with `port`.
    pub fn addr(&self, host: Host, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip(host), port)
    }

    /// A UDP socket on `host` bound to `port`.
    pub fn udp(&self, host: Host, port: u16) -> Result<UdpSocket> {
        self.ns(host).udp_socket(self.addr(host, port))
    }

    /// `stats --json` → `signaling`.
    pub fn signaling(&self) -> Result<SignalingStats> {
        self.daemon.stats()?.signaling.ok_or_else(|| {
            Error::Setup("`stats --json` has no `signaling` object; is inline signaling on?".into())
        })
    }

    /// Every pinhole; an error if one is not `owner`'s.
    pub fn owned_pinholes(&self, owner: Owner<'_>) -> Result<Vec<Pinhole>> {
        let list = self.daemon.list()?;
        if let Some(p) = list.iter().find(|p| !owner.matches(p.owner.as_deref())) {
            return Err(Error::Setup(format!(
                "pinhole {} ↔ {} is owned by {:?}, not by {owner}",
                p.a, p.b, p.owner
            )));
        }
        Ok(list)
    }

    /// Waits until `owner`'s pinholes carry exactly the flows `want`, then
    /// returns their packet counts.
    pub fn wait_flows(
        &self,
        owner: Owner<'_>,
        want: &BTreeSet<FlowKey>,
        what: &str,
    ) -> Result<FlowCounts> {
        let mut last = FlowCounts::new();
        let got = wait_for(what, TIMEOUT, || {
            let flows = flow_packets(&self.owned_pinholes(owner)?);
            if flows.keys().eq(want.iter()) {
                return Ok(Some(flows));
            }
            last = flows;
            Ok(None)
        });
        got.map_err(|e| Error::Setup(format!("{e}\nwanted flows {want:#?}\nlast seen {last:#?}")))
    }

    /// Waits until the flow `src → dst` of `owner` has passed at least `n`
    /// packets; returns the count.
    pub fn wait_packets(&self, owner: Owner<'_>, (src, dst): FlowKey, n: u64) -> Result<u64> {
        let mut last = None;
        let got = wait_for(&format!("{n} packets {src} → {dst}"), TIMEOUT, || {
            last = flow_packets(&self.owned_pinholes(owner)?)
                .get(&(src, dst))
                .copied();
            Ok(last.filter(|&p| p >= n))
        });
        got.map_err(|e| Error::Setup(format!("{e} (last count {last:?})")))
    }

    /// Waits until no pinhole is left (all were `owner`'s), within `timeout`.
    pub fn wait_gone(&self, owner: Owner<'_>, timeout: Duration, why: &str) -> Result<()> {
        wait_for(
            &format!("the pinholes of {owner} to close ({why})"),
            timeout,
            || Ok(self.owned_pinholes(owner)?.is_empty().then_some(())),
        )?;
        let stats = self.daemon.stats()?;
        if (stats.pinholes, stats.flows.used) != (0, 0) {
            return Err(Error::Setup(format!(
                "{why}: list is empty but stats count {} pinholes and {} flows",
                stats.pinholes, stats.flows.used
            )));
        }
        Ok(())
    }

    /// Sends a marker to `rx` (on `host`) from the router, whose own traffic
    /// crosses no XDP ingress: everything sent to `rx` before it has been
    /// delivered or dropped once it arrives.
    pub fn send_marker(&self, rx: &UdpSocket, host: Host) -> Result<()> {
        let router_ip = match host {
            Host::Outside => self.family.router_outside(),
            Host::Inside => self.family.router_inside(),
        };
        let sock = self.topo.router.udp_socket(SocketAddr::new(router_ip, 0))?;
        traffic::send_marker(&sock, rx.local_addr().map_err(Error::io("local address"))?)
    }

    /// The off-path check: `intruder` sends [`BURST`] datagrams to each of
    /// `targets` plus the test-owned socket `rx` (on `rx_host`). The `miss`
    /// counter rises by exactly what was sent, and `rx` receives none of it.
    /// Returns the number of datagrams sent.
    pub fn assert_off_path_dropped(
        &self,
        intruder: &UdpSocket,
        targets: &[SocketAddr],
        rx: &UdpSocket,
        rx_host: Host,
    ) -> Result<u64> {
        let rx_addr = rx.local_addr().map_err(Error::io("local address"))?;
        let before = self.daemon.counter("miss")?;
        for &dst in targets.iter().chain([&rx_addr]) {
            traffic::send(intruder, dst, BURST)?;
        }
        let sent = (targets.len() as u64 + 1) * u64::from(BURST);
        self.daemon.wait_counter("miss", before + sent, TIMEOUT)?;
        self.send_marker(rx, rx_host)?;
        let got = traffic::receive_until_marker(rx, TIMEOUT)?;
        if got.data != 0 {
            return Err(Error::Setup(format!(
                "{} off-path datagrams reached {rx_addr}",
                got.data
            )));
        }
        let after = self.daemon.counter("miss")?;
        if after != before + sent {
            return Err(Error::Setup(format!(
                "the miss counter rose by {} for {sent} off-path datagrams",
                after - before
            )));
        }
        Ok(sent)
    }

    /// [`BURST`] datagrams `tx → rx` (on `rx_host`) are dropped: none arrive
    /// before a marker, and `miss` rises by at least [`BURST`] (media of a
    /// call may still be in flight towards a just-closed pair).
    pub fn assert_dropped(&self, tx: &UdpSocket, rx: &UdpSocket, rx_host: Host) -> Result<()> {
        let (src, dst) = (
            tx.local_addr().map_err(Error::io("local address"))?,
            rx.local_addr().map_err(Error::io("local address"))?,
        );
        let before = self.daemon.counter("miss")?;
        traffic::send(tx, dst, BURST)?;
        self.daemon
            .wait_counter("miss", before + u64::from(BURST), TIMEOUT)?;
        self.send_marker(rx, rx_host)?;
        let got = traffic::receive_until_marker(rx, TIMEOUT)?;
        if got.data != 0 {
            return Err(Error::Setup(format!(
                "{src} → {dst}: {} datagrams passed a closed pinhole",
                got.data
            )));
        }
        Ok(())
    }

    /// [`Lab::assert_dropped`] when nothing else is in flight: `miss` rises
    /// by exactly [`BURST`].
    pub fn assert_dropped_exactly(
        &self,
        tx: &UdpSocket,
        rx: &UdpSocket,
        rx_host: Host,
    ) -> Result<()> {
        let before = self.daemon.counter("miss")?;
        self.assert_dropped(tx, rx, rx_host)?;
        let after = self.daemon.counter("miss")?;
        if after != before + u64::from(BURST) {
            return Err(Error::Setup(format!(
                "the miss counter rose by {} for {BURST} dropped datagrams",
                after - before
            )));
        }
        Ok(())
    }

    /// [`BURST`] datagrams `tx → rx` all arrive, from `tx`.
    pub fn assert_passes(&self, tx: &UdpSocket, rx: &UdpSocket) -> Result<()> {
        let (src, dst) = (
            tx.local_addr().map_err(Error::io("local address"))?,
            rx.local_addr().map_err(Error::io("local address"))?,
        );
        traffic::send(tx, dst, BURST)?;
        let got = traffic::receive(rx, BURST, TIMEOUT)?;
        if got.data != BURST || got.senders != BTreeSet::from([src]) {
            return Err(Error::Setup(format!(
                "{src} → {dst}: {} of {BURST} datagrams arrived, from {:?}",
                got.data, got.senders
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_flow_set() {
        let a: SocketAddr = "192.0.2.2:16000".parse().unwrap();
        let b: SocketAddr = "198.51.100.2:12000".parse().unwrap();
        let f = stream_flows(a, b);
        assert_eq!(f[0], (a, b));
        assert_eq!(f[1], (b, a));
        assert_eq!(f[2].0.port(), 16001);
        assert_eq!(f[3], (port_plus(b, 1), port_plus(a, 1)));
        let v6: SocketAddr = "[2001:db8:1::2]:16000".parse().unwrap();
        assert_eq!(port_plus(v6, 1).to_string(), "[2001:db8:1::2]:16001");
    }

    #[test]
    fn detail_paths() {
        let stats = |detail: &str| -> SignalingStats {
            serde_json::from_str(&format!(
                r#"{{"sip_messages":0,"rtsp_messages":0,"parse_errors":0,"calls_active":0,
                   "calls_opened":0,"calls_closed":0,"setup_latency_us":{{"count":0}},
                   "detail":{detail}}}"#
            ))
            .unwrap()
        };
        let before = stats(r#"{"pairs_closed":{"bye":1},"rtsp_interleaved":0}"#);
        let after = stats(r#"{"pairs_closed":{"bye":3},"rtsp_interleaved":1}"#);
        assert_eq!(detail(&after, "pairs_closed.bye"), Some(3));
        assert_eq!(detail(&after, "pairs_closed.cancel"), None);
        assert_eq!(detail(&after, "pairs_closed"), None);
        assert_eq!(
            detail_deltas(&before, &after, &["pairs_closed.bye", "rtsp_interleaved"]).unwrap(),
            [
                ("pairs_closed.bye".to_owned(), 2),
                ("rtsp_interleaved".to_owned(), 1)
            ]
        );
        assert!(detail_deltas(&before, &after, &["nope"]).is_err());
    }

    #[test]
    fn expected_detail() {
        let paths = [
            "calls.pairs_opened",
            "calls.calls_closed.bye",
            "apply_failed",
        ];
        assert_eq!(
            expected_deltas(&paths, &[("calls.pairs_opened", 4)]),
            [
                ("calls.pairs_opened".to_owned(), 4),
                ("calls.calls_closed.bye".to_owned(), 0),
                ("apply_failed".to_owned(), 0)
            ]
        );
        let paths = [
            "calls.calls_closed.bye",
            "calls.pairs_opened",
            "calls.pairs_closed.bye",
        ];
        assert_eq!(
            expected_deltas(&paths, &one_stream_closed_by("bye")),
            [
                ("calls.calls_closed.bye".to_owned(), 1),
                ("calls.pairs_opened".to_owned(), 2),
                ("calls.pairs_closed.bye".to_owned(), 2)
            ]
        );
    }

    #[test]
    #[should_panic(expected = "calls.pairs_opend is not among")]
    fn expected_detail_refuses_unknown_paths() {
        expected_deltas(&["calls.pairs_opened"], &[("calls.pairs_opend", 1)]);
    }

    #[test]
    fn owners() {
        assert!(Owner::Sip("c1").matches(Some("sip:c1;from-tag=x")));
        assert!(!Owner::Sip("c1").matches(Some("rtsp:c1")));
        assert!(Owner::Rtsp("s1").matches(Some("rtsp:s1")));
        assert!(!Owner::Rtsp("s1").matches(None));
        assert_eq!(Owner::Sip("c1").to_string(), "sip:c1");
        assert!(Owner::Ng("c1").matches(Some("ng:c1;from-tag=x")));
        assert!(!Owner::Ng("c1").matches(Some("sip:c1;from-tag=x")));
        assert_eq!(Owner::Ng("c1").to_string(), "ng:c1");
    }
}
