//! HA (`--ha-redis`): two routers, A and B, share pinholes through Redis
//! while keepalived (VRRP) moves the hosts' gateway addresses between them
//! (see `ha_lab` for the topology).
//!
//! keepalived rather than route moves: it is what operators run, its
//! notify script exercises `pinhole ha promote`, and the switch (VIP moved,
//! gratuitous ARP) costs what it costs in production.
//!
//! Needs root, redis-server, keepalived, iptables. Run with `cargo xtask
//! test`, or `PINHOLE_BIN=… cargo test -p pinhole-integration --test
//! netns_ha`.

use std::{net::SocketAddr, time::Duration};

use pinhole_integration::{
    ha_lab::{sa, HaLab, Stream, INSIDE, OUTSIDE},
    sip_craft::{self, Dialog, Sdp, SipPeer},
    traffic, wait_for, Daemon, Pinhole,
};

type TestResult = anyhow::Result<()>;

const TIMEOUT: Duration = Duration::from_secs(10);
/// Media rate and length of a stream across a switch.
const PPS: u32 = 500;
const PACKETS: u32 = 2500;

fn media_out() -> SocketAddr {
    sa(OUTSIDE, 16000)
}

fn media_in() -> SocketAddr {
    sa(INSIDE, 12000)
}

/// The pinhole of the pair `a` ↔ `b` in `d`'s table, if any.
fn pinhole(d: &Daemon, a: SocketAddr, b: SocketAddr) -> anyhow::Result<Option<Pinhole>> {
    Ok(d.list()?
        .into_iter()
        .find(|p| (p.a == a && p.b == b) || (p.a == b && p.b == a)))
}

/// `stats --json` → `ha`.
fn ha_stats(d: &Daemon) -> anyhow::Result<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(&d.cli_ok(&["stats", "--json"])?)?;
    Ok(v["ha"].clone())
}

fn ha_number(d: &Daemon, key: &str) -> anyhow::Result<u64> {
    ha_stats(d)?[key]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("stats has no ha.{key}"))
}

/// Waits until `d` holds the pair and its state satisfies `ok`.
fn wait_pinhole(
    what: &str,
    d: &Daemon,
    a: SocketAddr,
    b: SocketAddr,
    ok: impl Fn(&Pinhole) -> bool,
) -> anyhow::Result<Pinhole> {
    Ok(wait_for(what, TIMEOUT, || {
        Ok(pinhole(d, a, b)
            .map_err(|e| pinhole_integration::Error::Setup(e.to_string()))?
            .filter(|p| ok(p)))
    })?)
}

fn wait_gone(what: &str, d: &Daemon, a: SocketAddr, b: SocketAddr) -> TestResult {
    wait_for(what, TIMEOUT, || {
        Ok(pinhole(d, a, b)
            .map_err(|e| pinhole_integration::Error::Setup(e.to_string()))?
            .is_none()
            .then_some(()))
    })?;
    Ok(())
}

/// SIP peers on the hosts and a call between them through the master.
struct Call {
    caller: SipPeer,
    callee: SipPeer,
    dialog: Dialog,
}

impl Call {
    fn establish(lab: &HaLab, name: &str, out_port: u16, in_port: u16) -> anyhow::Result<Call> {
        let caller = SipPeer::bind(&lab.outside, sa(OUTSIDE, 5060))?;
        let callee = SipPeer::bind(&lab.inside, sa(INSIDE, 5060))?;
        let dialog = Dialog::new(name, caller.addr(), callee.addr());
        sip_craft::establish(
            &caller,
            &callee,
            &dialog,
            &Sdp::muxed(sa(OUTSIDE, out_port)),
            &Sdp::muxed(sa(INSIDE, in_port)),
            TIMEOUT,
        )?;
        Ok(Call {
            caller,
            callee,
            dialog,
        })
    }

    fn bye(&self) -> TestResult {
        sip_craft::deliver(&self.caller, &self.callee, &self.dialog.bye(2), TIMEOUT)?;
        let ok = self.dialog.response(200, "OK", 2, "BYE", None);
        sip_craft::deliver(&self.callee, &self.caller, &ok, TIMEOUT)?;
        Ok(())
    }
}

/// Both directions of the call's media at once, with `switch` run after
/// about a third of them; returns the datagrams lost (sent − received).
fn media_across(
    lab: &mut HaLab,
    switch: impl FnOnce(&mut HaLab) -> TestResult,
) -> anyhow::Result<u32> {
    let o = lab.outside.udp_socket(media_out())?;
    let i = lab.inside.udp_socket(media_in())?;
    let (o2, i2) = (o.try_clone()?, i.try_clone()?);
    let out_in = Stream::start(o, i, PACKETS, PPS)?;
    let in_out = Stream::start(i2, o2, PACKETS, PPS)?;
    // Let a third of the stream pass before the switch.
    wait_for("the stream to be under way", TIMEOUT, || {
        Ok((out_in.elapsed() >= Duration::from_secs(1) / PPS * (PACKETS / 3)).then_some(()))
    })?;
    switch(lab)?;
    let got = out_in.finish()? + in_out.finish()?;
    Ok(2 * PACKETS - got)
}

/// Failover during a call: B holds the call's flows before the switch,
/// media goes on through B with no more loss than the same switch costs
/// without any filter, and a BYE through B closes the call on both.
#[test]
fn failover_mid_call_keeps_media_and_bye_through_b_closes_on_both() -> TestResult {
    let mut lab = HaLab::new()?;
    lab.start_redis()?;
    lab.start_keepalived('a')?;
    lab.wait_master('a')?;
    lab.start_keepalived('b')?;
    lab.round_trip()?;

    // The switch itself, no filter on either router.
    let baseline = media_across(&mut lab, |lab| {
        lab.stop_keepalived('a')?;
        lab.wait_master('b')?;
        Ok(())
    })?;
    lab.start_keepalived('a')?;
    lab.wait_master('a')?;
    wait_for("forwarding through A again", TIMEOUT, || {
        Ok(lab.round_trip().ok())
    })?;

    lab.start_daemon('a', &[])?;
    lab.start_daemon('b', &[])?;
    // B's keepalived again, now with the notify script that promotes its
    // daemon (its control socket exists only now).
    lab.stop_keepalived('b')?;
    lab.start_keepalived('b')?;
    let call = Call::establish(&lab, "ha-failover", 16000, 12000)?;
    let (a, b) = (lab.a.daemon(), lab.b.daemon());
    let own = wait_pinhole("A's pinhole", a, media_out(), media_in(), |p| {
        p.owner.as_deref().is_some_and(|o| o.starts_with("sip:"))
    })?;
    // B's maps hold the call's flows before the switch.
    let foreign = wait_pinhole("B's foreign copy", b, media_out(), media_in(), |p| {
        p.owner.as_deref() == Some("ha:rtr-a") && p.flows.len() == 2
    })?;
    assert_eq!(
        foreign.idle_timeout_secs, 0,
        "foreign pinholes do not idle out"
    );
    assert_eq!(own.flows.len(), 2);

    let with_filter = media_across(&mut lab, |lab| {
        lab.stop_keepalived('a')?;
        lab.wait_master('b')?;
        Ok(())
    })?;
    let passed_b = pinhole(lab.b.daemon(), media_out(), media_in())?.map_or(0, |p| p.packets);
    eprintln!(
        "failover loss: {with_filter} of {} datagrams with pinhole on both routers, \
         {baseline} with no filter; B's pinhole passed {passed_b}",
        2 * PACKETS
    );
    assert!(
        passed_b >= u64::from(PACKETS),
        "media went on through B: {passed_b} packets on its pinhole"
    );
    // The same switch, timed by the same VRRP and gratuitous ARP: allow
    // the scatter of two runs of it, nothing that grows with the filter.
    let slack = baseline / 2 + 10;
    assert!(
        with_filter <= baseline + slack,
        "lost {with_filter} with the filter, {baseline} without"
    );
    // keepalived's notify script promoted B: the call is B's own now.
    let b = lab.b.daemon();
    wait_for("B's promotion", TIMEOUT, || {
        Ok((ha_number(b, "adopted")
            .map_err(|e| pinhole_integration::Error::Setup(e.to_string()))?
            >= 1)
            .then_some(()))
    })?;

    // A BYE through B closes the call on both routers.
    call.bye()?;
    wait_gone(
        "the pinhole to close on B",
        lab.b.daemon(),
        media_out(),
        media_in(),
    )?;
    wait_gone(
        "the pinhole to close on A",
        lab.a.daemon(),
        media_out(),
        media_in(),
    )?;
    let miss = lab.b.daemon().counter("miss")?;
    let o = lab.outside.udp_socket(media_out())?;
    let i = lab.inside.udp_socket(media_in())?;
    traffic::send(&o, media_in(), 20)?;
    lab.b.daemon().wait_counter("miss", miss + 20, TIMEOUT)?;
    assert_eq!(
        traffic::receive(&i, 20, Duration::from_millis(300))?.data,
        0
    );
    Ok(())
}

/// Redis killed mid-call: calls go on and new calls open locally; Redis
/// back: state converges, with no stale foreign pinhole of a call that
/// ended meanwhile.
#[test]
fn redis_down_then_back_converges_without_stale_pinholes() -> TestResult {
    let mut lab = HaLab::new()?;
    lab.start_redis()?;
    lab.start_keepalived('a')?;
    lab.wait_master('a')?;
    lab.round_trip()?;
    lab.start_daemon('a', &[])?;
    lab.start_daemon('b', &[])?;
    let first = Call::establish(&lab, "ha-first", 16000, 12000)?;
    wait_pinhole(
        "B's copy of the first call",
        lab.b.daemon(),
        media_out(),
        media_in(),
        |p| p.owner.as_deref() == Some("ha:rtr-a"),
    )?;

    lab.kill_redis()?;
    for d in [lab.a.daemon(), lab.b.daemon()] {
        wait_for("HA to notice redis is gone", TIMEOUT, || {
            Ok(
                (ha_stats(d).map_err(|e| pinhole_integration::Error::Setup(e.to_string()))?
                    ["connected"]
                    == false)
                    .then_some(()),
            )
        })?;
    }
    // The first call's media goes on.
    let lost = media_across(&mut lab, |_| Ok(()))?;
    assert_eq!(lost, 0, "media of a call through A while redis is down");
    // It ends, and a second call opens, on A alone.
    first.bye()?;
    wait_gone(
        "the first call to close on A",
        lab.a.daemon(),
        media_out(),
        media_in(),
    )?;
    drop(first);
    let second = Call::establish(&lab, "ha-second", 16002, 12002)?;
    let (out2, in2) = (sa(OUTSIDE, 16002), sa(INSIDE, 12002));
    wait_pinhole("the second call on A", lab.a.daemon(), out2, in2, |_| true)?;
    let o = lab.outside.udp_socket(out2)?;
    let i = lab.inside.udp_socket(in2)?;
    traffic::send(&o, in2, 50)?;
    assert_eq!(traffic::receive(&i, 50, TIMEOUT)?.data, 50);
    // B, cut off, still holds the first call's copy.
    assert!(pinhole(lab.b.daemon(), media_out(), media_in())?.is_some());

    lab.start_redis()?;
    let b = lab.b.daemon();
    wait_pinhole("B to learn the second call", b, out2, in2, |p| {
        p.owner.as_deref() == Some("ha:rtr-a")
    })?;
    wait_gone(
        "B to drop the first call's stale copy",
        b,
        media_out(),
        media_in(),
    )?;
    assert!(ha_number(b, "resyncs")? >= 2, "one resync per connection");

    second.bye()?;
    wait_gone("the second call to close on B", lab.b.daemon(), out2, in2)?;
    wait_for("no foreign pinholes on B", TIMEOUT, || {
        Ok((ha_number(lab.b.daemon(), "foreign_pinholes")
            .map_err(|e| pinhole_integration::Error::Setup(e.to_string()))?
            == 0)
            .then_some(()))
    })?;
    assert!(lab.b.daemon().list()?.is_empty());
    Ok(())
}

/// The lab with Redis, A as VRRP master, both daemons with HA (and
/// `extra` flags), and B's keepalived with its promote script.
fn ha_lab(extra: &[&str]) -> anyhow::Result<HaLab> {
    let mut lab = HaLab::new()?;
    lab.start_redis()?;
    lab.start_keepalived('a')?;
    lab.wait_master('a')?;
    lab.round_trip()?;
    lab.start_daemon('a', extra)?;
    lab.start_daemon('b', extra)?;
    lab.start_keepalived('b')?;
    Ok(lab)
}

/// Sends `n` datagrams `from` → `to` and expects all of them.
fn passes(lab: &HaLab, from: SocketAddr, to: SocketAddr, n: u32) -> TestResult {
    let (tx, rx) = if from.ip().to_string() == OUTSIDE {
        (lab.outside.udp_socket(from)?, lab.inside.udp_socket(to)?)
    } else {
        (lab.inside.udp_socket(from)?, lab.outside.udp_socket(to)?)
    };
    traffic::send(&tx, to, n)?;
    let got = traffic::receive(&rx, n, TIMEOUT)?.data;
    anyhow::ensure!(got == n, "{got} of {n} datagrams {from} → {to} arrived");
    Ok(())
}

/// An RTSP session set up through A replicates (RTP and RTCP pairs), its
/// media passes through B after the switch, and its TEARDOWN through B
/// closes it on both.
#[test]
fn rtsp_session_replicates_and_teardown_through_b_closes_on_both() -> TestResult {
    use pinhole_integration::rtsp_peer::{RtspClient, RtspServer, ServerConfig};
    let mut lab = ha_lab(&[])?;
    let server = RtspServer::start(
        &lab.inside,
        sa(INSIDE, 554),
        ServerConfig::unique(None, 12000),
    )?;
    let mut client = RtspClient::connect(&lab.outside, server.addr())?;
    client.request_ok(
        "SETUP",
        &[("Transport", "RTP/AVP;unicast;client_port=16000-16001")],
    )?;
    let (c_rtp, s_rtp) = (sa(OUTSIDE, 16000), sa(INSIDE, 12000));
    let (c_rtcp, s_rtcp) = (sa(OUTSIDE, 16001), sa(INSIDE, 12001));
    for (c, s) in [(c_rtp, s_rtp), (c_rtcp, s_rtcp)] {
        wait_pinhole("A's RTSP pinhole", lab.a.daemon(), c, s, |p| {
            p.owner.as_deref().is_some_and(|o| o.starts_with("rtsp:"))
        })?;
        wait_pinhole("B's copy of the RTSP pinhole", lab.b.daemon(), c, s, |p| {
            p.owner.as_deref() == Some("ha:rtr-a") && p.flows.len() == 2
        })?;
    }
    lab.stop_keepalived('a')?;
    lab.wait_master('b')?;
    passes(&lab, s_rtp, c_rtp, 50)?;
    passes(&lab, c_rtcp, s_rtcp, 20)?;
    let on_b = pinhole(lab.b.daemon(), c_rtp, s_rtp)?.map_or(0, |p| p.packets);
    assert!(on_b >= 50, "the RTP went through B's pinhole: {on_b}");

    client.request_ok("TEARDOWN", &[])?;
    for (c, s) in [(c_rtp, s_rtp), (c_rtcp, s_rtcp)] {
        wait_gone("the RTSP pinhole to close on B", lab.b.daemon(), c, s)?;
        wait_gone("the RTSP pinhole to close on A", lab.a.daemon(), c, s)?;
    }
    drop(client);
    server.finish()?;
    Ok(())
}

/// A restarted with `--keep-pinned` while B is master: media through B
/// never stops, A comes back with the call, and B keeps it.
#[test]
fn a_restarted_with_keep_pinned_while_b_is_active_loses_nothing() -> TestResult {
    let mut lab = ha_lab(&["--keep-pinned"])?;
    let _call = Call::establish(&lab, "ha-restart", 16000, 12000)?;
    wait_pinhole("B's copy", lab.b.daemon(), media_out(), media_in(), |p| {
        p.owner.as_deref() == Some("ha:rtr-a")
    })?;
    lab.stop_keepalived('a')?;
    lab.wait_master('b')?;
    let lost = media_across(&mut lab, |lab| {
        let a = lab.a.daemon.take().expect("A runs");
        let status = a.stop()?;
        anyhow::ensure!(status.success(), "A exited {status}");
        lab.start_daemon('a', &["--keep-pinned"])?;
        Ok(())
    })?;
    assert_eq!(lost, 0, "datagrams lost while A restarted");
    let a_has = wait_pinhole(
        "A's restored pinhole",
        lab.a.daemon(),
        media_out(),
        media_in(),
        // A's own claim and B's (B was promoted, the call is B's too
        // now); `list` shows the first owner.
        |p| p.flows.len() == 2,
    )?;
    assert_eq!(a_has.flows.len(), 2, "A's pinhole kept its map entries");
    let calls = lab.a.daemon().calls()?;
    assert_eq!(calls.len(), 1, "A took its call over: {calls:?}");
    wait_for("A to resync", TIMEOUT, || {
        Ok((ha_number(lab.a.daemon(), "resyncs")
            .map_err(|e| pinhole_integration::Error::Setup(e.to_string()))?
            >= 1)
            .then_some(()))
    })?;
    let b_has = pinhole(lab.b.daemon(), media_out(), media_in())?
        .ok_or_else(|| anyhow::anyhow!("B lost the call"))?;
    assert!(
        b_has.packets >= u64::from(PACKETS),
        "B carried the media: {}",
        b_has.packets
    );
    passes(&lab, media_out(), media_in(), 50)?;
    passes(&lab, media_in(), media_out(), 50)?;
    Ok(())
}

/// A stream latched in XDP on A (the caller's SDP names an address nobody
/// sends from, its media comes from its signaling address) replicates as
/// the latched pair, and passes through B after the switch.
#[test]
fn a_latched_stream_replicates_and_passes_through_b() -> TestResult {
    let mut lab = ha_lab(&["--latching", "5"])?;
    let caller = SipPeer::bind(&lab.outside, sa(OUTSIDE, 5060))?;
    let callee = SipPeer::bind(&lab.inside, sa(INSIDE, 5060))?;
    let dialog = Dialog::new("ha-latch", caller.addr(), callee.addr());
    sip_craft::establish(
        &caller,
        &callee,
        &dialog,
        &Sdp::muxed(sa("192.0.2.77", 16000)),
        &Sdp::muxed(media_in()),
        TIMEOUT,
    )?;
    let latched = sa(OUTSIDE, 17000);
    // The caller's first packet latches the pair on A.
    passes(&lab, latched, media_in(), 20)?;
    wait_pinhole(
        "A's latched pinhole",
        lab.a.daemon(),
        latched,
        media_in(),
        |p| p.flows.len() == 2,
    )?;
    wait_pinhole(
        "B's copy of the latched pair",
        lab.b.daemon(),
        latched,
        media_in(),
        |p| p.owner.as_deref() == Some("ha:rtr-a") && p.flows.len() == 2,
    )?;
    lab.stop_keepalived('a')?;
    lab.wait_master('b')?;
    passes(&lab, latched, media_in(), 50)?;
    passes(&lab, media_in(), latched, 50)?;
    let on_b = pinhole(lab.b.daemon(), latched, media_in())?.map_or(0, |p| p.packets);
    assert!(
        on_b >= 100,
        "the latched pair's media went through B: {on_b}"
    );
    Ok(())
}
