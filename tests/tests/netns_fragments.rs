//! Fragmented SIP over UDP, end to end through the router running `pinhole`
//! with inline signaling (NFQUEUE) and XDP on both router interfaces.
//!
//! An INVITE or a 200 OK whose SDP is 3,000 bytes (a video offer, a long
//! codec list) does not fit the 1,500-byte MTU of the lab's links, so the
//! sender's kernel sends it as IP fragments (IPv4 without DF, IPv6 with a
//! fragment header). Only the first fragment carries the UDP port the
//! signaling rules match: without reassembly ahead of the queue the daemon
//! sees a truncated message and opens nothing, and every RTP packet of the
//! call is dropped. Each case checks that the message did leave its sender
//! as fragments (the sender's `FragOKs` rises), that the daemon opened the
//! call's pair from it, and that [`RTP`] datagrams pass each way with the
//! pair's flows counting exactly them.
//!
//! The cases: a fragmented INVITE and a fragmented 200 OK, forwarded
//! (outside ↔ inside), on IPv4 and IPv6; and a fragmented INVITE to a SIP
//! endpoint on the router itself, whose 200 OK the router sends (local
//! input and output).
//!
//! Needs root and iptables. Run with `cargo xtask test`, or
//! `PINHOLE_BIN=… cargo test -p pinhole-integration --test netns_fragments`.

use std::{
    collections::BTreeSet,
    net::{SocketAddr, UdpSocket},
};

use pinhole_integration::{
    lab::{self, detail_deltas, Host, Lab, Owner, BURST, TIMEOUT},
    sip_craft::{deliver, pad_sdp, Dialog, Sdp, SipPeer, SIP_PORT},
    traffic, Error, Family, Netns,
};

type TestResult = anyhow::Result<()>;

/// Bytes of the big SDP body.
const SDP_LEN: usize = 3000;
/// RTP datagrams sent each way once the call is up.
const RTP: u32 = 236;
/// The caller's and the callee's media ports (inside `--media-ports`).
const CALLER_PORT: u16 = 16000;
const CALLEE_PORT: u16 = 12000;

/// Which message of the call setup is too big for the MTU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Big {
    Invite,
    Answer,
}

/// Where the callee runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Callee {
    /// The inside host: every message is forwarded by the router.
    Inside,
    /// The router itself: the INVITE is local input, the 200 OK local output.
    Router,
}

/// The kernel's count of datagrams `ns` sent as fragments in `family`
/// (`Ip: FragOKs` of /proc/net/snmp, `Ip6FragOKs` of /proc/net/snmp6).
fn frag_oks(ns: &Netns, family: Family) -> anyhow::Result<u64> {
    let (file, key) = match family {
        Family::V4 => ("/proc/net/snmp", "FragOKs"),
        Family::V6 => ("/proc/net/snmp6", "Ip6FragOKs"),
    };
    let text = ns.exec("cat", &[file])?;
    let value = match family {
        // Two lines: `Ip: Forwarding DefaultTTL …` then `Ip: 1 64 …`.
        Family::V4 => {
            let mut ip = text.lines().filter(|l| l.starts_with("Ip: "));
            let (names, values) = (ip.next(), ip.next());
            names.zip(values).and_then(|(n, v)| {
                let i = n.split_whitespace().position(|w| w == key)?;
                v.split_whitespace().nth(i).map(str::to_owned)
            })
        }
        Family::V6 => text.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(key)).then(|| w.next().map(str::to_owned))?
        }),
    };
    let value = value.ok_or_else(|| Error::Setup(format!("no {key} in {file}:\n{text}")))?;
    Ok(value.parse()?)
}

/// Sends [`RTP`] datagrams `tx → rx`, in bursts of at most [`BURST`] that
/// the receiver drains before the next (so its socket buffer never
/// overflows), and checks that all arrive.
fn rtp_passes(tx: &UdpSocket, rx: &UdpSocket, what: &str) -> TestResult {
    let dst = rx.local_addr()?;
    let (mut sent, mut got) = (0, 0);
    let mut senders = BTreeSet::new();
    while sent < RTP {
        let n = BURST.min(RTP - sent);
        traffic::send(tx, dst, n)?;
        sent += n;
        let r = traffic::receive(rx, n, TIMEOUT)?;
        got += r.data;
        senders.extend(r.senders);
        if r.data < n {
            break;
        }
    }
    anyhow::ensure!(
        got == RTP && senders == BTreeSet::from([tx.local_addr()?]),
        "{what}: {got} of {sent} RTP datagrams arrived, from {senders:?}"
    );
    Ok(())
}

/// One call from the outside host to `callee` in `family`, with the `big`
/// message carrying a [`SDP_LEN`]-byte SDP.
fn fragmented_call(family: Family, big: Big, callee_at: Callee) -> TestResult {
    let lab = Lab::new(family, &["--media-ports", "10000-20000"])?;
    let (callee_ns, callee_ip) = match callee_at {
        Callee::Inside => (lab.ns(Host::Inside), lab.ip(Host::Inside)),
        Callee::Router => (&lab.topo.router, family.router_outside()),
    };
    let caller = SipPeer::bind(lab.ns(Host::Outside), lab.addr(Host::Outside, SIP_PORT))?;
    let callee = SipPeer::bind(callee_ns, SocketAddr::new(callee_ip, SIP_PORT))?;
    let offer = Sdp::muxed(lab.addr(Host::Outside, CALLER_PORT));
    let answer = Sdp::muxed(SocketAddr::new(callee_ip, CALLEE_PORT));
    let caller_rtp = lab.udp(Host::Outside, CALLER_PORT)?;
    let callee_rtp = callee_ns.udp_socket(answer.media)?;
    let d = Dialog::new("frag", caller.addr(), callee.addr());

    let mut invite = d.invite(1, Some(&offer));
    let mut ok = d.response(200, "OK", 1, "INVITE", Some(&answer));
    let sender = match big {
        Big::Invite => {
            invite = pad_sdp(&invite, SDP_LEN);
            lab.ns(Host::Outside)
        }
        Big::Answer => {
            ok = pad_sdp(&ok, SDP_LEN);
            callee_ns
        }
    };
    let big_len = invite.len().max(ok.len());
    let frags_before = frag_oks(sender, family)?;
    let before = lab.signaling()?;
    // The daemon issues its verdict after applying what a message implies:
    // once the 200 OK is delivered, the pair is open.
    deliver(&caller, &callee, &invite, TIMEOUT)?;
    deliver(&callee, &caller, &ok, TIMEOUT)?;
    deliver(&caller, &callee, &d.ack(1), TIMEOUT)?;
    let fragmented = frag_oks(sender, family)? - frags_before;
    assert_eq!(
        fragmented, 1,
        "the {big:?} ({} bytes) should have left its sender as fragments",
        big_len
    );
    let after = lab.signaling()?;
    assert_eq!(
        detail_deltas(&before, &after, &["calls.pairs_opened"])?,
        [("calls.pairs_opened".to_owned(), 1)],
        "the daemon opened the call's one (muxed) pair from the {big:?}"
    );

    let owner = Owner::Sip(&d.call_id);
    let (a, b) = (offer.media, answer.media);
    let want = BTreeSet::from([(a, b), (b, a)]);
    lab.wait_flows(owner, &want, "the call's pair")?;
    rtp_passes(&caller_rtp, &callee_rtp, "caller → callee")?;
    rtp_passes(&callee_rtp, &caller_rtp, "callee → caller")?;
    let flows = lab::flow_packets(&lab.owned_pinholes(owner)?);
    // XDP filters what the router receives: the caller's media on r-out,
    // and the callee's on r-in when the callee is the inside host; the
    // router's own output crosses no XDP ingress.
    let want_counts = match callee_at {
        Callee::Inside => vec![((a, b), u64::from(RTP)), ((b, a), u64::from(RTP))],
        Callee::Router => vec![((a, b), u64::from(RTP)), ((b, a), 0)],
    };
    let got: Vec<_> = want_counts.iter().map(|(k, _)| (*k, flows[k])).collect();
    assert_eq!(got, want_counts, "per-flow packet counts");
    // The queue's own numbers: bound, nothing lost, no reader restart; the
    // kernel handed the reader at least the three messages of the setup.
    let queue = lab
        .signaling()?
        .other
        .get("queue")
        .cloned()
        .ok_or_else(|| Error::Setup("`stats --json` has no signaling.queue".into()))?;
    let kernel = &queue["kernel"];
    assert_eq!(queue["reader_restarts"], 0, "{queue}");
    assert_eq!(
        (&kernel["queue_dropped"], &kernel["user_dropped"]),
        (&0.into(), &0.into()),
        "{queue}"
    );
    assert!(kernel["id_sequence"].as_u64() >= Some(3), "{queue}");
    // Reassembly ahead of the queue does not turn connection tracking on.
    let tracked = lab
        .topo
        .router
        .exec("cat", &["/proc/sys/net/netfilter/nf_conntrack_count"])?;
    assert_eq!(tracked.trim(), "0", "conntrack entries on the router");
    Ok(())
}

#[test]
fn fragmented_invite_ipv4() -> TestResult {
    fragmented_call(Family::V4, Big::Invite, Callee::Inside)
}

#[test]
fn fragmented_answer_ipv4() -> TestResult {
    fragmented_call(Family::V4, Big::Answer, Callee::Inside)
}

#[test]
fn fragmented_invite_ipv6() -> TestResult {
    fragmented_call(Family::V6, Big::Invite, Callee::Inside)
}

#[test]
fn fragmented_answer_ipv6() -> TestResult {
    fragmented_call(Family::V6, Big::Answer, Callee::Inside)
}

#[test]
fn fragmented_invite_to_the_router_ipv4() -> TestResult {
    fragmented_call(Family::V4, Big::Invite, Callee::Router)
}

#[test]
fn fragmented_invite_to_the_router_ipv6() -> TestResult {
    fragmented_call(Family::V6, Big::Invite, Callee::Router)
}
