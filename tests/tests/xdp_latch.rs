//! Bounded latching in the XDP program, through `BPF_PROG_TEST_RUN`: a
//! half-open entry (remote signaling address, local media endpoint, any
//! source port) is claimed by the first packet from that address, which
//! installs the exact pair, passes and is reported through the event ring
//! buffer; after that the pair is strict. Expired entries drop, other
//! sources miss, a full flow map fails the latch without losing the entry,
//! and with latching off the entries are never looked at.
//!
//! Every case checks the verdict, the reason counters (exactly one packet
//! per run, under the expected reason), the flow map, the latch map and the
//! events.
//!
//! Needs root (CAP_BPF + CAP_NET_ADMIN). It never skips: without the
//! privileges it fails with a message saying so.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    ops::Deref,
    sync::Barrier,
};

use aya::maps::{MapData, RingBuf};
use pinhole::{
    addr::{flow_key, Endpoint},
    datapath::latch::{take_events, LatchKey, LatchMap, Latched},
};
use pinhole_common::{FlowKey, FlowStats, FragmentPolicy, LatchValue, Reason};
use pinhole_integration::{
    frames::Frame,
    xdp::{self, test_run, TestProg, XDP_PASS},
};

const SEC: u64 = 1_000_000_000;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// (label, remote signaling address, local media endpoint, stranger)
fn families() -> [(&'static str, IpAddr, SocketAddr, IpAddr); 2] {
    [
        (
            "v4",
            Ipv4Addr::new(192, 0, 2, 2).into(),
            sa("198.51.100.2:12000"),
            Ipv4Addr::new(192, 0, 2, 3).into(),
        ),
        (
            "v6",
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2).into(),
            sa("[2001:db8:2::2]:12000"),
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 3).into(),
        ),
    ]
}

fn key(src: SocketAddr, dst: SocketAddr) -> FlowKey {
    flow_key(Endpoint::new(src).unwrap(), Endpoint::new(dst).unwrap())
}

fn monotonic_ns() -> u64 {
    pinhole::clock::monotonic_ns()
}

fn frame(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    Frame::udp(src, dst).build().bytes
}

/// The program with its latch maps and event ring buffer.
struct Prog {
    prog: TestProg,
    latches: LatchMap,
    events: RingBuf<MapData>,
}

impl Deref for Prog {
    type Target = TestProg;
    fn deref(&self) -> &TestProg {
        &self.prog
    }
}

impl Prog {
    /// The program with media ports 10000-20000, latching on or off, and
    /// flow maps of `max_flows` entries.
    fn load(latching: bool, max_flows: u32) -> Prog {
        let mut cfg = xdp::config(&[(10000, 20000)], FragmentPolicy::Pass);
        cfg.latching = u32::from(latching);
        let mut prog = TestProg::load(&cfg, max_flows);
        let latches = LatchMap::take(&mut prog.ebpf).expect("latch maps");
        let events = take_events(&mut prog.ebpf).expect("event ring buffer");
        Prog {
            prog,
            latches,
            events,
        }
    }

    fn arm(&mut self, key: LatchKey, deadline_ns: u64, cookie: u64) -> LatchValue {
        let v = LatchValue {
            deadline_ns,
            cookie,
        };
        self.latches.arm(&key, v).expect("arming a latch");
        v
    }

    fn entry(&self, key: &LatchKey) -> Option<LatchValue> {
        self.latches.get(key).expect("latch lookup")
    }

    /// Every event waiting in the ring buffer.
    fn events(&mut self) -> Vec<Latched> {
        let mut out = Vec::new();
        while let Some(item) = self.events.next() {
            out.push(Latched::decode(&item).expect("a whole, known event"));
        }
        out
    }
}

#[test]
fn first_packet_from_the_signaling_address_latches_then_the_pair_is_strict() {
    for (fam, remote, local, stranger) in families() {
        let mut p = Prog::load(true, 64);
        let lk = LatchKey {
            from: remote,
            local,
        };
        p.arm(lk, monotonic_ns() + 5 * SEC, 7);
        // The NAT's port is a media port too, so the reply is filtered.
        let nat = SocketAddr::new(remote, 17000);
        let f = frame(nat, local);

        let t0 = monotonic_ns();
        p.run_counted(&format!("{fam}: first packet"), &f, Reason::Latched);
        assert_eq!(p.entry(&lk), None, "{fam}: the half-open entry is gone");
        let fwd = p.stats(&key(nat, local)).expect("forward flow installed");
        assert_eq!(
            (fwd.packets, fwd.bytes),
            (1, f.len() as u64),
            "{fam}: the latching packet is the flow's first"
        );
        assert!(fwd.last_seen_ns + 20_000_000 >= t0, "{fam}: last_seen_ns");
        assert_eq!(
            p.stats(&key(local, nat)),
            Some(FlowStats::default()),
            "{fam}: reverse flow installed"
        );
        assert_eq!(
            p.events(),
            vec![Latched {
                cookie: 7,
                key: lk,
                remote: nat,
                installed: true,
            }],
            "{fam}: one report"
        );

        // Strict from now on.
        p.run_counted(&format!("{fam}: same source again"), &f, Reason::Hit);
        p.run_counted(&format!("{fam}: reply"), &frame(local, nat), Reason::Hit);
        p.run_counted(
            &format!("{fam}: same host, other port"),
            &frame(SocketAddr::new(remote, 17001), local),
            Reason::Miss,
        );
        p.run_counted(
            &format!("{fam}: another host"),
            &frame(SocketAddr::new(stranger, 17000), local),
            Reason::Miss,
        );
        assert_eq!(p.events(), vec![], "{fam}: strict packets report nothing");
        assert_eq!(p.stats(&key(SocketAddr::new(remote, 17001), local)), None);
    }
}

#[test]
fn only_the_signaling_address_may_latch() {
    for (fam, remote, local, stranger) in families() {
        let mut p = Prog::load(true, 64);
        let lk = LatchKey {
            from: remote,
            local,
        };
        let v = p.arm(lk, monotonic_ns() + 5 * SEC, 9);
        let attacker = SocketAddr::new(stranger, 40000);
        p.run_counted(
            &format!("{fam}: attacker first"),
            &frame(attacker, local),
            Reason::Miss,
        );
        // Another local port of the same host is another entry.
        p.run_counted(
            &format!("{fam}: remote to another local port"),
            &frame(
                SocketAddr::new(remote, 40000),
                SocketAddr::new(local.ip(), 12002),
            ),
            Reason::Miss,
        );
        assert_eq!(p.entry(&lk), Some(v), "{fam}: the entry is still armed");
        assert_eq!(p.stats(&key(attacker, local)), None);
        assert_eq!(p.events(), vec![]);
        let nat = SocketAddr::new(remote, 40000);
        p.run_counted(
            &format!("{fam}: then the remote"),
            &frame(nat, local),
            Reason::Latched,
        );
        assert_eq!(p.events().len(), 1);
        p.run_counted(
            &format!("{fam}: attacker after the latch"),
            &frame(attacker, local),
            Reason::Miss,
        );
    }
}

#[test]
fn an_expired_entry_drops_and_stays_for_the_controller() {
    for (fam, remote, local, _) in families() {
        let mut p = Prog::load(true, 64);
        let lk = LatchKey {
            from: remote,
            local,
        };
        let v = p.arm(lk, monotonic_ns() - 1, 3);
        let nat = SocketAddr::new(remote, 40000);
        p.run_counted(
            &format!("{fam}: after the window"),
            &frame(nat, local),
            Reason::LatchExpired,
        );
        assert_eq!(
            p.entry(&lk),
            Some(v),
            "{fam}: removing it is the controller's job"
        );
        assert_eq!(p.stats(&key(nat, local)), None);
        assert_eq!(p.events(), vec![]);
    }
}

#[test]
fn with_latching_off_entries_are_never_looked_at() {
    for (fam, remote, local, _) in families() {
        let mut p = Prog::load(false, 64);
        let lk = LatchKey {
            from: remote,
            local,
        };
        let v = p.arm(lk, monotonic_ns() + 5 * SEC, 1);
        let nat = SocketAddr::new(remote, 40000);
        p.run_counted(
            &format!("{fam}: latching off"),
            &frame(nat, local),
            Reason::Miss,
        );
        assert_eq!(p.entry(&lk), Some(v));
        assert_eq!(p.stats(&key(nat, local)), None);
        assert_eq!(p.events(), vec![]);
    }
}

#[test]
fn a_full_flow_map_fails_the_latch_and_puts_the_entry_back() {
    for (fam, remote, local, stranger) in families() {
        // Two entries: (none free) or (one free: the forward flow goes in,
        // the reverse does not, and the forward one is taken out again).
        for prefill in [2u16, 1] {
            let mut p = Prog::load(true, 2);
            for i in 0..prefill {
                let other = SocketAddr::new(stranger, 30000 + i);
                p.prog
                    .flows
                    .insert(&key(other, local), FlowStats::default())
                    .expect("prefill");
            }
            let lk = LatchKey {
                from: remote,
                local,
            };
            let v = p.arm(lk, monotonic_ns() + 5 * SEC, 11);
            let nat = SocketAddr::new(remote, 40000);
            let name = format!("{fam}: {prefill} of 2 flows used");
            p.run_counted(&name, &frame(nat, local), Reason::LatchFailed);
            assert_eq!(p.entry(&lk), Some(v), "{name}: entry put back");
            assert_eq!(p.stats(&key(nat, local)), None, "{name}: forward flow");
            assert_eq!(p.stats(&key(local, nat)), None, "{name}: reverse flow");
            assert_eq!(
                p.events(),
                vec![Latched {
                    cookie: 11,
                    key: lk,
                    remote: nat,
                    installed: false,
                }],
                "{name}: the failure is reported"
            );
            // Room again: the next packet latches.
            for i in 0..prefill {
                let other = SocketAddr::new(stranger, 30000 + i);
                p.prog.flows.remove(&key(other, local)).expect("free");
            }
            p.run_counted(
                &format!("{name}, freed"),
                &frame(nat, local),
                Reason::Latched,
            );
        }
    }
}

#[test]
fn repeated_runs_latch_once() {
    let (_, remote, local, _) = families()[0];
    let mut p = Prog::load(true, 64);
    let lk = LatchKey {
        from: remote,
        local,
    };
    p.arm(lk, monotonic_ns() + 5 * SEC, 5);
    let before = p.counters();
    let nat = SocketAddr::new(remote, 40000);
    assert_eq!(test_run(p.xdp(), &frame(nat, local), 1000), XDP_PASS);
    let after = p.counters();
    let delta = |r: Reason| after[r as usize].packets - before[r as usize].packets;
    assert_eq!((delta(Reason::Latched), delta(Reason::Hit)), (1, 999));
    assert_eq!(p.events().len(), 1);
}

/// Two CPUs race for one entry with different source ports, many times:
/// every round exactly one wins and installs its pair, the other misses,
/// and exactly one report is written.
#[test]
fn racing_sources_latch_exactly_one() {
    const ROUNDS: u16 = 300;
    let (_, remote, local, _) = families()[0];
    let mut p = Prog::load(true, 4 * u32::from(ROUNDS) + 16);
    let before = p.counters();
    for round in 0..ROUNDS {
        // A fresh local port per round, so earlier winners do not hit.
        let local = SocketAddr::new(local.ip(), 12000 + round);
        let lk = LatchKey {
            from: remote,
            local,
        };
        p.arm(lk, monotonic_ns() + 5 * SEC, u64::from(round));
        let frames = [
            frame(SocketAddr::new(remote, 40000), local),
            frame(SocketAddr::new(remote, 50000), local),
        ];
        let barrier = Barrier::new(2);
        let xdp = p.xdp();
        let actions: Vec<u32> = std::thread::scope(|s| {
            let handles: Vec<_> = frames
                .iter()
                .map(|f| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        test_run(xdp, f, 1)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let passed = actions.iter().filter(|a| **a == XDP_PASS).count();
        assert_eq!(passed, 1, "round {round}: actions {actions:?}");
        let events = p.events();
        assert_eq!(events.len(), 1, "round {round}: {events:?}");
        let winner = events[0].remote;
        let loser = if winner.port() == 40000 { 50000 } else { 40000 };
        assert!(p.stats(&key(winner, local)).is_some(), "round {round}");
        assert_eq!(
            p.stats(&key(SocketAddr::new(remote, loser), local)),
            None,
            "round {round}: the loser got nothing"
        );
        assert_eq!(p.entry(&lk), None);
    }
    let after = p.counters();
    let delta = |r: Reason| after[r as usize].packets - before[r as usize].packets;
    let rounds = u64::from(ROUNDS);
    assert_eq!(
        (delta(Reason::Latched), delta(Reason::Miss)),
        (rounds, rounds)
    );
}
