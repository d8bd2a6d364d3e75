//! Exhaustion of the flow map, end to end: the router runs `pinhole` with a
//! tiny map (`--max-pinholes 8`, i.e. eight flows) and inline signaling;
//! hand-written SIP calls ([`sip_craft`]) from the outside host to the
//! inside host fill it.
//!
//! Each call offers and answers `a=rtcp-mux`, so it needs one symmetric
//! pair: two flows. Four calls fill the map. The fifth is refused and
//! counted (`signaling.refused.map_full`), nothing is evicted, the four
//! keep passing media both ways, and an operator's `open` fails loudly.
//! Once a call ends (BYE and its grace), its two flows are free again and a
//! new call gets them.
//!
//! Needs root and iptables. Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test netns_exhaustion`.

use std::{
    collections::BTreeSet,
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use pinhole_integration::{
    lab::{FlowKey, Host, Lab, Owner, TIMEOUT},
    sip_craft::{self, deliver, Dialog, Sdp, SipPeer, SIP_PORT},
    wait_for, Family, SignalingStats,
};

type TestResult = anyhow::Result<()>;

/// Flow map capacity (`--max-pinholes`, in flows).
const MAX_FLOWS: u64 = 8;
/// Calls that fit: one pair, two flows each.
const FITTING_CALLS: usize = (MAX_FLOWS / 2) as usize;
/// `--bye-grace`.
const BYE_GRACE: Duration = Duration::from_secs(1);

/// One call of the test: its dialog, media and the test's sockets on both
/// media ends.
struct Call {
    d: Dialog,
    offer: Sdp,
    answer: Sdp,
    caller_rtp: UdpSocket,
    callee_rtp: UdpSocket,
}

impl Call {
    /// The i-th call: caller RTP on 16000 + 2i, callee RTP on 12000 + 2i.
    fn new(lab: &Lab, caller: &SipPeer, callee: &SipPeer, i: u16) -> anyhow::Result<Call> {
        let offer = Sdp::muxed(SocketAddr::new(lab.ip(Host::Outside), 16000 + 2 * i));
        let answer = Sdp::muxed(SocketAddr::new(lab.ip(Host::Inside), 12000 + 2 * i));
        Ok(Call {
            d: Dialog::new(&format!("full{i}"), caller.addr(), callee.addr()),
            caller_rtp: lab.udp(Host::Outside, offer.media.port())?,
            callee_rtp: lab.udp(Host::Inside, answer.media.port())?,
            offer,
            answer,
        })
    }

    fn establish(&self, caller: &SipPeer, callee: &SipPeer) -> anyhow::Result<()> {
        let (d, o, a) = (&self.d, &self.offer, &self.answer);
        Ok(sip_craft::establish(caller, callee, d, o, a, TIMEOUT)?)
    }

    /// The call's pair.
    fn flows(&self) -> BTreeSet<FlowKey> {
        let (a, b) = (self.offer.media, self.answer.media);
        BTreeSet::from([(a, b), (b, a)])
    }

    /// Media passes both ways.
    fn passes(&self, lab: &Lab) -> anyhow::Result<()> {
        lab.assert_passes(&self.caller_rtp, &self.callee_rtp)?;
        lab.assert_passes(&self.callee_rtp, &self.caller_rtp)?;
        Ok(())
    }

    /// Media is dropped both ways.
    fn dropped(&self, lab: &Lab) -> anyhow::Result<()> {
        lab.assert_dropped(&self.caller_rtp, &self.callee_rtp, Host::Inside)?;
        lab.assert_dropped(&self.callee_rtp, &self.caller_rtp, Host::Outside)?;
        Ok(())
    }
}

/// The flows of every pinhole, by owner.
fn flows_by_owner(lab: &Lab, calls: &[&Call]) -> anyhow::Result<Vec<BTreeSet<FlowKey>>> {
    let list = lab.daemon.list()?;
    Ok(calls
        .iter()
        .map(|c| {
            let owner = Owner::Sip(&c.d.call_id);
            list.iter()
                .filter(|p| owner.matches(p.owner.as_deref()))
                .flat_map(|p| p.flows.iter().map(|f| (f.src, f.dst)))
                .collect()
        })
        .collect())
}

/// Exactly `open` of `calls` hold their pair, the others nothing, and the
/// map holds nothing else.
fn assert_open(lab: &Lab, calls: &[&Call], open: &[bool]) -> anyhow::Result<()> {
    let want: Vec<BTreeSet<FlowKey>> = calls
        .iter()
        .zip(open)
        .map(|(c, &o)| if o { c.flows() } else { BTreeSet::new() })
        .collect();
    assert_eq!(flows_by_owner(lab, calls)?, want, "pinholes per call");
    let n = open.iter().filter(|&&o| o).count() as u64;
    let stats = lab.daemon.stats()?;
    assert_eq!(
        (stats.pinholes, stats.flows.used, stats.flows.capacity),
        (n, 2 * n, MAX_FLOWS),
        "pinholes, flows used, capacity"
    );
    Ok(())
}

fn map_full(s: &SignalingStats) -> u64 {
    s.refused["map_full"]
}

/// With the map at capacity, a new call is refused and counted, nothing is
/// evicted, the established calls keep passing media, and an operator's
/// `open` fails with an error; after a call ends, its capacity returns and
/// a new call succeeds.
#[test]
fn full_map_refuses_new_calls_and_recovers_after_bye() -> TestResult {
    let (max, grace) = (MAX_FLOWS.to_string(), BYE_GRACE.as_secs().to_string());
    let lab = Lab::new(
        Family::V4,
        &[
            "--media-ports",
            "10000-20000",
            "--max-pinholes",
            &max,
            "--bye-grace",
            &grace,
        ],
    )?;
    let caller = SipPeer::bind(
        lab.ns(Host::Outside),
        SocketAddr::new(lab.ip(Host::Outside), SIP_PORT),
    )?;
    let callee = SipPeer::bind(
        lab.ns(Host::Inside),
        SocketAddr::new(lab.ip(Host::Inside), SIP_PORT),
    )?;
    let calls = (0..=FITTING_CALLS as u16 + 1)
        .map(|i| Call::new(&lab, &caller, &callee, i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (fitting, rest) = calls.split_at(FITTING_CALLS);
    let (refused, late) = (&rest[0], &rest[1]);
    let all: Vec<&Call> = calls.iter().collect();
    let before = lab.signaling()?;

    // Four calls fill the map.
    for c in fitting {
        c.establish(&caller, &callee)?;
    }
    let mut open = vec![true; FITTING_CALLS];
    open.extend([false, false]);
    assert_open(&lab, &all, &open)?;
    assert_eq!(map_full(&lab.signaling()?), map_full(&before));

    // The fifth is refused, counted, and its media dropped; nothing evicted.
    refused.establish(&caller, &callee)?;
    let after = lab.signaling()?;
    assert_eq!(map_full(&after) - map_full(&before), 1, "map_full");
    assert_eq!(after.calls_opened - before.calls_opened, 5);
    assert_eq!(after.calls_active, 5, "the refused call is still tracked");
    assert_open(&lab, &all, &open)?;
    refused.dropped(&lab)?;
    for c in fitting {
        c.passes(&lab)?;
    }

    // The operator cannot squeeze a pinhole in either.
    let out = lab.daemon.cli(&[
        "open".to_owned(),
        late.offer.media.to_string(),
        late.answer.media.to_string(),
    ])?;
    let line = out.expect_client_error().map_err(anyhow::Error::msg)?;
    assert_eq!(out.status.code(), Some(1), "`open` on a full map: {line}");
    assert_open(&lab, &all, &open)?;

    // The first call ends: after the grace its flows are free again.
    deliver(&caller, &callee, &fitting[0].d.bye(2), TIMEOUT)?;
    wait_for(
        "the first call's pinhole to close after its BYE",
        TIMEOUT + BYE_GRACE,
        || Ok((lab.daemon.stats()?.flows.used == MAX_FLOWS - 2).then_some(())),
    )?;
    open[0] = false;
    assert_open(&lab, &all, &open)?;
    fitting[0].dropped(&lab)?;

    // A new call gets them.
    late.establish(&caller, &callee)?;
    open[FITTING_CALLS + 1] = true;
    assert_open(&lab, &all, &open)?;
    late.passes(&lab)?;
    for c in &fitting[1..] {
        c.passes(&lab)?;
    }
    let end = lab.signaling()?;
    assert_eq!(map_full(&end) - map_full(&before), 1, "map_full at the end");
    assert_eq!(end.calls_active, 5);
    Ok(())
}
