use super::pinhole::NS_PER_SEC;
use super::*;
use crate::addr::flow_key;

const S: u64 = NS_PER_SEC;

fn ep(s: &str) -> Endpoint {
    s.parse().unwrap()
}

fn req(a: &str, b: &str, rtcp: bool, idle: u64) -> OpenRequest {
    OpenRequest {
        pair: Pair::new(ep(a), ep(b), rtcp).unwrap(),
        idle_timeout_secs: idle,
        owner: None,
    }
}

fn inserts(ops: &[MapOp]) -> usize {
    ops.iter().filter(|o| matches!(o, MapOp::Insert(_))).count()
}

fn removes(ops: &[MapOp]) -> usize {
    ops.iter().filter(|o| matches!(o, MapOp::Remove(_))).count()
}

/// The flows the table says the map holds, checked against the refcounts
/// recomputed from scratch.
fn check_invariants(t: &PinholeTable) {
    let mut want: HashMap<FlowKey, u32> = HashMap::new();
    for p in t.iter() {
        for f in &p.flows {
            *want.entry(*f).or_default() += 1;
        }
        assert_eq!(t.find(p.pair.a(), p.pair.b()).map(|q| q.id), Some(p.id));
    }
    assert_eq!(want, t.refs);
    assert_eq!(t.by_pair.len(), t.pinholes.len());
    let deadlines: BTreeSet<(u64, PinholeId)> = t
        .iter()
        .filter_map(|p| p.deadline_ns().map(|d| (d, p.id)))
        .collect();
    assert_eq!(deadlines, t.deadlines, "the deadline index is out of step");
    assert!(t.flows_used() <= t.capacity());
}

#[test]
fn open_and_close_produce_matching_ops() {
    let mut t = PinholeTable::new(100);
    let (id, outcome, ops) = t
        .open(req("192.0.2.1:4000", "198.51.100.2:10000", true, 30), 5)
        .unwrap();
    assert_eq!(outcome, OpenOutcome::Opened);
    assert_eq!(id, PinholeId(1));
    assert_eq!((inserts(&ops), removes(&ops)), (4, 0));
    assert_eq!(t.flows_used(), 4);
    check_invariants(&t);

    // Close by the reversed orientation.
    let (p, ops) = t
        .close(ep("198.51.100.2:10000"), ep("192.0.2.1:4000"))
        .unwrap();
    assert_eq!(p.id, id);
    assert_eq!((inserts(&ops), removes(&ops)), (0, 4));
    assert!(t.is_empty());
    assert_eq!(t.flows_used(), 0);
    check_invariants(&t);
}

#[test]
fn reopen_is_idempotent_and_refreshes() {
    let mut t = PinholeTable::new(100);
    let r = req("192.0.2.1:4000", "198.51.100.2:10000", false, 30);
    let (id, _, _) = t.open(r.clone(), 10 * S).unwrap();
    // Same pair and owner, other orientation, new timeout, later.
    let r2 = req("198.51.100.2:10000", "192.0.2.1:4000", false, 60);
    let (id2, outcome, ops) = t.open(r2, 20 * S).unwrap();
    assert_eq!((id2, outcome), (id, OpenOutcome::Refreshed));
    assert!(ops.is_empty(), "no duplicate flows: {ops:?}");
    let p = t.get(id).unwrap();
    assert_eq!(p.idle_timeout_secs, 60);
    assert_eq!(p.created_ns, 10 * S);
    assert_eq!(p.active_ns, 20 * S);
    assert_eq!(p.owner_names().collect::<Vec<_>>(), ["manual"]);
    assert_eq!(p.pair.a(), ep("192.0.2.1:4000"), "orientation kept");
    assert_eq!(t.len(), 1);
    assert_eq!(t.flows_used(), 2);
    check_invariants(&t);

    // Upgrading to RTCP inserts only the RTCP flows; downgrading removes them.
    let (_, _, ops) = t
        .open(
            req("192.0.2.1:4000", "198.51.100.2:10000", true, 60),
            21 * S,
        )
        .unwrap();
    assert_eq!((inserts(&ops), removes(&ops)), (2, 0));
    assert_eq!(t.flows_used(), 4);
    let (_, _, ops) = t
        .open(
            req("192.0.2.1:4000", "198.51.100.2:10000", false, 60),
            22 * S,
        )
        .unwrap();
    assert_eq!((inserts(&ops), removes(&ops)), (0, 2));
    assert_eq!(t.flows_used(), 2);
    check_invariants(&t);
    // Ids are not reused after a refresh.
    let (id3, _, _) = t
        .open(
            req("192.0.2.1:4002", "198.51.100.2:10002", false, 60),
            23 * S,
        )
        .unwrap();
    assert_eq!(id3, PinholeId(2));
}

#[test]
fn capacity_edges() {
    // (capacity, opens as (a_port, b_port, rtcp), expected result per open)
    type Case = (
        usize,
        &'static [(u16, u16, bool)],
        &'static [Result<usize, usize>],
    );
    // Ok(flows_used after) / Err(needed)
    let cases: &[Case] = &[
        (0, &[(4000, 10000, false)], &[Err(2)]),
        (1, &[(4000, 10000, false)], &[Err(2)]),
        (
            2,
            &[(4000, 10000, false), (4002, 10002, false)],
            &[Ok(2), Err(2)],
        ),
        (3, &[(4000, 10000, true)], &[Err(4)]),
        (
            4,
            &[(4000, 10000, true), (4000, 10000, true)],
            &[Ok(4), Ok(4)],
        ),
        // Shares the RTCP flows of the first pinhole: only 0 new flows.
        (
            4,
            &[(4000, 10000, true), (4001, 10001, false)],
            &[Ok(4), Ok(4)],
        ),
        // Full table, but a re-open needs nothing new.
        (
            2,
            &[(4000, 10000, false), (4000, 10000, false)],
            &[Ok(2), Ok(2)],
        ),
        // Full table: upgrading to RTCP needs 2 more.
        (
            2,
            &[(4000, 10000, false), (4000, 10000, true)],
            &[Ok(2), Err(2)],
        ),
    ];
    for (capacity, opens, want) in cases {
        let mut t = PinholeTable::new(*capacity);
        let mut rejected = 0;
        for ((a, b, rtcp), want) in opens.iter().zip(want.iter()) {
            let r = req(
                &format!("192.0.2.1:{a}"),
                &format!("198.51.100.2:{b}"),
                *rtcp,
                0,
            );
            let before = (t.len(), t.flows_used());
            match (t.open(r, 0), want) {
                (Ok(_), Ok(used)) => assert_eq!(t.flows_used(), *used),
                (
                    Err(TableError::Full {
                        needed,
                        free,
                        capacity: c,
                    }),
                    Err(n),
                ) => {
                    rejected += 1;
                    assert_eq!(needed, *n);
                    assert_eq!(c, *capacity);
                    assert_eq!(free, capacity - before.1);
                    assert_eq!(
                        (t.len(), t.flows_used()),
                        before,
                        "refusal changed the table"
                    );
                }
                (got, want) => panic!("cap {capacity} {a}->{b}: got {got:?}, want {want:?}"),
            }
            check_invariants(&t);
        }
        assert_eq!(t.rejected_full(), rejected);
    }
}

#[test]
fn overlapping_pinholes_share_flows_by_refcount() {
    let mut t = PinholeTable::new(100);
    // P1 with RTCP: 4000<->10000 and 4001<->10001.
    let (p1, _, ops1) = t
        .open(req("192.0.2.1:4000", "198.51.100.2:10000", true, 0), 0)
        .unwrap();
    assert_eq!(inserts(&ops1), 4);
    // P2 is exactly P1's RTCP pair.
    let (_p2, _, ops2) = t
        .open(req("192.0.2.1:4001", "198.51.100.2:10001", false, 0), 0)
        .unwrap();
    assert!(ops2.is_empty(), "shared flows are not inserted twice");
    let shared = flow_key(ep("192.0.2.1:4001"), ep("198.51.100.2:10001"));
    assert_eq!(t.refcount(&shared), 2);
    check_invariants(&t);

    // Closing P1 keeps the shared flows for P2.
    let (p, ops) = t
        .close(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"))
        .unwrap();
    assert_eq!(p.id, p1);
    assert_eq!(removes(&ops), 2);
    assert!(!ops.contains(&MapOp::Remove(shared)));
    assert_eq!(t.refcount(&shared), 1);
    check_invariants(&t);

    // Closing P2 removes them.
    let (_, ops) = t
        .close(ep("192.0.2.1:4001"), ep("198.51.100.2:10001"))
        .unwrap();
    assert!(ops.contains(&MapOp::Remove(shared)));
    assert_eq!(t.flows_used(), 0);
    check_invariants(&t);
}

#[test]
fn close_unknown_is_an_error_and_changes_nothing() {
    let mut t = PinholeTable::new(10);
    t.open(req("192.0.2.1:4000", "198.51.100.2:10000", false, 0), 0)
        .unwrap();
    let unknown = [
        ("192.0.2.1:4000", "198.51.100.2:10002"),
        ("192.0.2.1:4001", "198.51.100.2:10001"), // not an RTCP pair of anything
        ("[2001:db8::1]:4000", "[2001:db8::2]:10000"),
    ];
    for (a, b) in unknown {
        let err = t.close(ep(a), ep(b)).unwrap_err();
        assert_eq!(
            err,
            TableError::NotFound {
                a: ep(a).addr(),
                b: ep(b).addr()
            }
        );
        assert_eq!((t.len(), t.flows_used()), (1, 2));
    }
    // Closing twice: the second one fails.
    t.close(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"))
        .unwrap();
    assert!(t
        .close(ep("192.0.2.1:4000"), ep("198.51.100.2:10000"))
        .is_err());
}

#[test]
fn expiry_boundaries() {
    // (timeout s, opened at s, flow last_seen s (None = no traffic), now s, expired?)
    let cases: &[(u64, u64, Option<u64>, u64, bool)] = &[
        (10, 0, None, 9, false),
        (10, 0, None, 10, true), // idle == timeout expires
        (10, 0, None, 11, true),
        (10, 0, Some(5), 14, false),
        (10, 0, Some(5), 15, true),
        (10, 5, Some(1), 14, false), // traffic before (re)open does not age it
        (10, 5, Some(1), 15, true),
        (0, 0, None, u64::MAX / S, false),        // 0 = never
        (u64::MAX, 0, None, u64::MAX / S, false), // saturating timeout
        (10, 100, None, 50, false),               // clock before open: not idle
        (10, 0, Some(200), 100, false),           // last_seen ahead of now: not idle
    ];
    for &(timeout, opened, seen, now, want) in cases {
        let mut t = PinholeTable::new(10);
        t.open(
            req("192.0.2.1:4000", "198.51.100.2:10000", false, timeout),
            opened * S,
        )
        .unwrap();
        let out = t.expire(now * S, |_| seen.map(|s| s * S));
        assert_eq!(
            out.len() == 1,
            want,
            "timeout {timeout} opened {opened} seen {seen:?} now {now}"
        );
        assert_eq!(t.expired(), out.len() as u64);
        if want {
            assert_eq!(removes(&out[0].1), 2);
            assert!(t.is_empty());
        }
        check_invariants(&t);
    }
}

#[test]
fn expire_skips_lookups_for_recently_active_pinholes() {
    let mut t = PinholeTable::new(10);
    t.open(req("192.0.2.1:4000", "198.51.100.2:10000", false, 10), 0)
        .unwrap();
    let mut lookups = 0;
    assert!(t
        .expire(9 * S, |_| {
            lookups += 1;
            None
        })
        .is_empty());
    assert_eq!(lookups, 0);
    // Due by the cached activity; traffic at 8 s keeps it alive and is cached.
    assert!(t
        .expire(10 * S, |_| {
            lookups += 1;
            Some(8 * S)
        })
        .is_empty());
    assert_eq!(lookups, 2);
    assert!(t
        .expire(17 * S, |_| {
            lookups += 1;
            Some(8 * S)
        })
        .is_empty());
    assert_eq!(lookups, 2);
    assert_eq!(t.expire(18 * S, |_| Some(8 * S)).len(), 1);
}

#[test]
fn expire_with_shared_flows_keeps_the_survivor_intact() {
    let mut t = PinholeTable::new(10);
    t.open(req("192.0.2.1:4000", "198.51.100.2:10000", true, 10), 0)
        .unwrap();
    t.open(req("192.0.2.1:4001", "198.51.100.2:10001", false, 0), 0)
        .unwrap();
    let out = t.expire(10 * S, |_| None);
    assert_eq!(out.len(), 1);
    assert_eq!(removes(&out[0].1), 2, "the shared RTCP flows stay");
    assert_eq!(t.flows_used(), 2);
    check_invariants(&t);
}

#[test]
fn stale_plans_are_refused() {
    let mut t = PinholeTable::new(10);
    let plan = t
        .plan_open(req("192.0.2.1:4000", "198.51.100.2:10000", false, 0), 0)
        .unwrap();
    t.open(req("192.0.2.1:4002", "198.51.100.2:10002", false, 0), 0)
        .unwrap();
    assert_eq!(t.commit(plan), Err(TableError::StalePlan));
    assert_eq!(t.len(), 1);
    check_invariants(&t);
    // A dropped plan leaves no trace.
    let plan = t
        .plan_open(req("192.0.2.1:4004", "198.51.100.2:10004", false, 0), 0)
        .unwrap();
    drop(plan);
    assert_eq!((t.len(), t.flows_used()), (1, 2));
}

fn owned(a: &str, b: &str, rtcp: bool, idle: u64, owner: Option<&str>) -> OpenRequest {
    OpenRequest {
        owner: owner.map(str::to_string),
        ..req(a, b, rtcp, idle)
    }
}

fn tag(s: &str) -> OwnerTag {
    Some(s.to_string())
}

#[test]
fn release_owned_releases_only_that_owner() {
    let mut t = PinholeTable::new(10);
    for (port, owner) in [(4000, Some("call-a")), (4002, Some("call-b")), (4004, None)] {
        t.open(
            owned(
                &format!("192.0.2.1:{port}"),
                "198.51.100.2:10000",
                false,
                0,
                owner,
            ),
            0,
        )
        .unwrap();
    }
    let released = t.release_owned(&tag("call-a"));
    assert_eq!(released.len(), 1);
    assert!(released[0].closed);
    assert_eq!(removes(&released[0].ops), 2);
    assert_eq!(released[0].pinhole.pair.a().port(), 4000);
    assert!(t.release_owned(&tag("call-a")).is_empty());
    assert_eq!(t.len(), 2);
    check_invariants(&t);
}

#[test]
fn a_shared_pair_survives_until_its_last_owner_releases_it() {
    let a = "192.0.2.1:4000";
    let b = "198.51.100.2:10000";
    // (step, owner, expected (pinholes, flows, owners) after it)
    // Opens: call-1 (rtcp, idle 60), manual (no rtcp, idle 300), call-2
    // (no rtcp, idle 0 = never).
    let mut t = PinholeTable::new(16);
    let (id, o, ops) = t.open(owned(a, b, true, 60, Some("sip:1")), 0).unwrap();
    assert_eq!((o, inserts(&ops)), (OpenOutcome::Opened, 4));
    let (id2, o, ops) = t.open(owned(b, a, false, 300, None), S).unwrap();
    assert_eq!((id2, o), (id, OpenOutcome::Refreshed));
    assert!(ops.is_empty(), "RTCP stays while sip:1 wants it: {ops:?}");
    let p = t.get(id).unwrap();
    assert!(p.pair.rtcp());
    assert_eq!(p.idle_timeout_secs, 300, "the longest timeout wins");
    assert_eq!(p.owner_names().collect::<Vec<_>>(), ["manual", "sip:1"]);
    let (_, _, ops) = t.open(owned(a, b, false, 0, Some("sip:2")), 2 * S).unwrap();
    assert!(ops.is_empty());
    assert_eq!(t.get(id).unwrap().idle_timeout_secs, 0, "never wins");
    check_invariants(&t);

    // An owner that does not hold it cannot release it.
    assert!(matches!(
        t.release(ep(a), ep(b), &tag("sip:3")),
        Err(TableError::NotFound { .. })
    ));
    // sip:1 leaves: its RTCP flows go, the RTP pair stays for the others.
    let r = t.release(ep(b), ep(a), &tag("sip:1")).unwrap();
    assert!(!r.closed);
    assert_eq!((inserts(&r.ops), removes(&r.ops)), (0, 2));
    assert!(!r.pinhole.pair.rtcp());
    assert_eq!(r.pinhole.pair.a(), ep(a), "orientation kept");
    assert_eq!(r.pinhole.id, id);
    assert_eq!(t.flows_used(), 2);
    check_invariants(&t);
    // Releasing twice fails.
    assert!(t.release(ep(a), ep(b), &tag("sip:1")).is_err());
    // The operator leaves: still open for sip:2, idle now 0 (sip:2's).
    let r = t.release(ep(a), ep(b), &None).unwrap();
    assert!(!r.closed && r.ops.is_empty());
    assert_eq!(r.pinhole.owner_names().collect::<Vec<_>>(), ["sip:2"]);
    // The last owner leaves: closed, flows removed.
    let r = t.release(ep(a), ep(b), &tag("sip:2")).unwrap();
    assert!(r.closed);
    assert_eq!(removes(&r.ops), 2);
    assert!(t.is_empty());
    assert_eq!(t.flows_used(), 0);
    check_invariants(&t);
}

#[test]
fn force_close_and_expiry_drop_every_owner() {
    let a = "192.0.2.1:4000";
    let b = "198.51.100.2:10000";
    let mut t = PinholeTable::new(16);
    t.open(owned(a, b, false, 10, Some("sip:1")), 0).unwrap();
    t.open(owned(a, b, true, 10, Some("rtsp:2")), 0).unwrap();
    let (p, ops) = t.close(ep(a), ep(b)).unwrap();
    assert_eq!(p.claims.len(), 2);
    assert_eq!(removes(&ops), 4);
    assert!(t.is_empty());

    t.open(owned(a, b, false, 10, Some("sip:1")), 0).unwrap();
    t.open(owned(a, b, false, 20, Some("sip:2")), 0).unwrap();
    assert!(t.expire(10 * S, |_| None).is_empty(), "20 s is the timeout");
    let out = t.expire(20 * S, |_| None);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.claims.len(), 2);
    assert!(t.is_empty());
    check_invariants(&t);
}

#[test]
fn a_failed_owner_open_on_a_full_table_leaves_the_other_owner_intact() {
    let a = "192.0.2.1:4000";
    let b = "198.51.100.2:10000";
    let mut t = PinholeTable::new(2);
    t.open(owned(a, b, false, 0, Some("sip:1")), 0).unwrap();
    // sip:2 wants RTCP too: 2 more flows do not fit.
    let err = t.open(owned(a, b, true, 0, Some("sip:2")), 0).unwrap_err();
    assert!(matches!(err, TableError::Full { needed: 2, .. }));
    let p = t.iter().next().unwrap();
    assert_eq!(p.owner_names().collect::<Vec<_>>(), ["sip:1"]);
    assert!(!p.pair.rtcp());
    // Without RTCP it shares the existing flows and fits.
    t.open(owned(a, b, false, 0, Some("sip:2")), 0).unwrap();
    assert_eq!(t.iter().next().unwrap().claims.len(), 2);
    assert_eq!(t.flows_used(), 2);
    check_invariants(&t);
}

#[test]
fn restore_rebuilds_refcounts_and_keeps_ids_unique() {
    let claim = |idle, rtcp| Claim {
        idle_timeout_secs: idle,
        rtcp,
    };
    let manual = |idle, rtcp| BTreeMap::from([(None, claim(idle, rtcp))]);
    let mut t = PinholeTable::new(6);
    // With RTCP (4 flows), then a pinhole on its RTCP ports (shares 2).
    let id = t
        .restore(
            PinholeId(7),
            (ep("192.0.2.1:4000"), ep("198.51.100.2:10000")),
            manual(30, true),
            (5 * S, 9 * S),
            3,
        )
        .unwrap();
    assert_eq!(id, PinholeId(7));
    let two_owners = BTreeMap::from([
        (None, claim(0, false)),
        (Some("sip:c;from-tag=t".to_string()), claim(60, false)),
    ]);
    t.restore(
        PinholeId(3),
        (ep("192.0.2.1:4001"), ep("198.51.100.2:10001")),
        two_owners,
        (6 * S, 6 * S),
        3,
    )
    .unwrap();
    assert_eq!((t.len(), t.flows_used()), (2, 4));
    let p = t.get(PinholeId(7)).unwrap();
    assert_eq!((p.idle_timeout_secs, p.pair.rtcp()), (30, true));
    assert_eq!((p.created_ns, p.active_ns), (5 * S, 9 * S));
    // Any owner saying "never" makes the pinhole never idle out.
    assert_eq!(t.get(PinholeId(3)).unwrap().idle_timeout_secs, 0);
    check_invariants(&t);

    // Refusals leave the table as it was.
    type Case = (u64, &'static str, &'static str, bool, &'static str);
    let cases: &[Case] = &[
        (
            7,
            "192.0.2.9:4000",
            "198.51.100.9:10000",
            false,
            "its id is taken",
        ),
        (
            0,
            "192.0.2.9:4000",
            "198.51.100.9:10000",
            false,
            "its id is taken",
        ),
        (
            8,
            "198.51.100.2:10000",
            "192.0.2.1:4000",
            false,
            "same endpoints",
        ),
        (8, "192.0.2.9:65535", "198.51.100.9:10000", true, "RTCP"),
        (
            8,
            "192.0.2.9:4000",
            "198.51.100.9:10000",
            true,
            "flow table full",
        ),
    ];
    for (id, a, b, rtcp, want) in cases {
        let before = (t.len(), t.flows_used(), t.generation());
        let err = t
            .restore(PinholeId(*id), (ep(a), ep(b)), manual(30, *rtcp), (S, S), 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{id} {a} {b}: {err}");
        assert_eq!((t.len(), t.flows_used(), t.generation()), before);
    }
    let err = t
        .restore(
            PinholeId(9),
            (ep("192.0.2.9:4000"), ep("198.51.100.9:10000")),
            BTreeMap::new(),
            (S, S),
            1,
        )
        .unwrap_err();
    assert!(err.to_string().contains("no owner"), "{err}");

    // New pinholes continue after the highest id and the saved counter.
    assert_eq!(t.next_id(), 8);
    let (id, _, _) = t
        .open(
            req("192.0.2.9:4000", "198.51.100.9:10000", false, 30),
            10 * S,
        )
        .unwrap();
    assert_eq!(id, PinholeId(8));
    // Now full: a restore that does not fit is refused.
    let err = t
        .restore(
            PinholeId(2),
            (ep("192.0.2.8:4000"), ep("198.51.100.8:10000")),
            manual(1, false),
            (S, S),
            50,
        )
        .unwrap_err();
    assert!(err.to_string().contains("flow table full"), "{err}");
    let mut u = PinholeTable::new(10);
    u.restore(
        PinholeId(2),
        (ep("192.0.2.8:4000"), ep("198.51.100.8:10000")),
        manual(1, false),
        (S, S),
        50,
    )
    .unwrap();
    assert_eq!(u.next_id(), 50);
    check_invariants(&u);
}

/// The deadline of the pinhole joining `a` and `b`, as the index has it.
fn indexed(t: &PinholeTable, a: &str, b: &str) -> Option<u64> {
    let id = t.find(ep(a), ep(b)).unwrap().id;
    let found: Vec<u64> = t
        .deadlines
        .iter()
        .filter(|(_, i)| *i == id)
        .map(|(d, _)| *d)
        .collect();
    assert!(found.len() <= 1, "{id} is indexed twice: {found:?}");
    found.first().copied()
}

#[test]
fn the_deadline_index_follows_opens_retimes_releases_and_closes() {
    let (a, b) = ("192.0.2.1:4000", "198.51.100.2:10000");
    let mut t = PinholeTable::new(100);
    t.open(owned(a, b, false, 30, Some("sip:1")), S).unwrap();
    assert_eq!(indexed(&t, a, b), Some(31 * S));
    // A refresh restarts the idle time: the deadline moves.
    t.open(owned(a, b, false, 30, Some("sip:1")), 10 * S)
        .unwrap();
    assert_eq!(indexed(&t, a, b), Some(40 * S));
    // A retime to a longer timeout moves it too.
    t.open(owned(a, b, false, 60, Some("sip:1")), 10 * S)
        .unwrap();
    assert_eq!(indexed(&t, a, b), Some(70 * S));
    // A second owner saying "never": out of the index.
    t.open(owned(a, b, false, 0, None), 12 * S).unwrap();
    assert_eq!(indexed(&t, a, b), None);
    check_invariants(&t);
    // It leaves: back in, with the other owner's timeout.
    t.release(ep(a), ep(b), &None).unwrap();
    assert_eq!(indexed(&t, a, b), Some(72 * S));
    check_invariants(&t);
    // A stale plan changes nothing, a failed one neither.
    let plan = t.plan_open(owned(a, b, false, 5, None), 20 * S).unwrap();
    t.open(
        req("192.0.2.1:4002", "198.51.100.2:10002", false, 7),
        20 * S,
    )
    .unwrap();
    assert!(t.commit(plan).is_err());
    assert_eq!(indexed(&t, a, b), Some(72 * S));
    check_invariants(&t);
    t.close(ep(a), ep(b)).unwrap();
    assert_eq!(t.deadlines.len(), 1);
    check_invariants(&t);
    t.release(ep("192.0.2.1:4002"), ep("198.51.100.2:10002"), &None)
        .unwrap();
    assert!(t.deadlines.is_empty());
    assert_eq!(t.next_deadline(), None);
}

#[test]
fn restored_pinholes_are_indexed_at_their_saved_activity() {
    let manual = |idle| {
        BTreeMap::from([(
            None,
            Claim {
                idle_timeout_secs: idle,
                rtcp: false,
            },
        )])
    };
    let mut t = PinholeTable::new(10);
    let (a, b) = ("192.0.2.1:4000", "198.51.100.2:10000");
    t.restore(PinholeId(4), (ep(a), ep(b)), manual(30), (S, 9 * S), 1)
        .unwrap();
    t.restore(
        PinholeId(5),
        (ep("192.0.2.1:4002"), ep("198.51.100.2:10002")),
        manual(0),
        (S, S),
        1,
    )
    .unwrap();
    assert_eq!(indexed(&t, a, b), Some(39 * S));
    assert_eq!(t.next_deadline(), Some(39 * S));
    check_invariants(&t);
    assert!(t.expire(38 * S, |_| None).is_empty());
    assert_eq!(t.expire(39 * S, |_| None)[0].0.id, PinholeId(4));
    check_invariants(&t);
}

#[test]
fn expiry_is_bounded_per_call_and_reschedules_active_pinholes() {
    let mut t = PinholeTable::new(1000);
    // 10 pinholes with 10 s, opened at 0..9 s; the even ones see traffic
    // at 25 s.
    for i in 0..10u64 {
        t.open(
            req(
                &format!("192.0.2.1:{}", 4000 + 2 * i),
                &format!("198.51.100.2:{}", 10000 + 2 * i),
                false,
                10,
            ),
            i * S,
        )
        .unwrap();
    }
    let never = req("192.0.2.9:4000", "198.51.100.9:10000", false, 0);
    t.open(never, 0).unwrap();
    let seen = |k: &FlowKey| k.src_port.is_multiple_of(4).then_some(25 * S);
    let mut lookups = 0;
    let mut expired = Vec::new();
    let mut rescheduled = 0;
    // At 30 s all ten are due: four calls of at most 3.
    let mut calls = 0;
    loop {
        calls += 1;
        let step = t.expire_some(30 * S, 3, |k| {
            lookups += 1;
            seen(k)
        });
        assert!(step.expired.len() + step.rescheduled <= 3);
        expired.extend(step.expired.into_iter().map(|(p, _)| p.id.0));
        rescheduled += step.rescheduled;
        check_invariants(&t);
        if !step.more {
            break;
        }
        assert!(calls < 10, "expiry does not end");
    }
    assert_eq!(calls, 4);
    // Earliest deadline first; the odd (quiet) ones went.
    assert_eq!(expired, vec![2, 4, 6, 8, 10]);
    assert_eq!((rescheduled, t.len(), t.expired()), (5, 6, 5));
    assert_eq!(lookups, 20, "two flows of each due pinhole, once");
    // The active ones idle out 10 s after their traffic.
    assert_eq!(t.next_deadline(), Some(35 * S));
    let step = t.expire_some(35 * S, 100, |_| Some(25 * S));
    assert_eq!((step.expired.len(), step.more), (5, false));
    assert_eq!(t.len(), 1, "the pinhole that never expires stays");
    check_invariants(&t);
    // Budget 0 does nothing but says what is left.
    assert!(!t.expire_some(u64::MAX, 0, |_| None).more);
}

#[test]
fn a_saturated_deadline_is_handled_once_and_kept() {
    let mut t = PinholeTable::new(10);
    t.open(
        req("192.0.2.1:4000", "198.51.100.2:10000", false, u64::MAX),
        5,
    )
    .unwrap();
    assert_eq!(t.next_deadline(), Some(u64::MAX));
    let step = t.expire_some(u64::MAX, usize::MAX, |_| None);
    assert_eq!(
        (step.expired.len(), step.rescheduled, step.more),
        (0, 1, false)
    );
    assert_eq!(t.len(), 1);
    check_invariants(&t);
}

#[test]
fn expiry_leaves_a_snapshot_as_it_was() {
    let mut t = PinholeTable::new(10);
    t.open(req("192.0.2.1:4000", "198.51.100.2:10000", false, 10), 0)
        .unwrap();
    t.open(req("192.0.2.1:4002", "198.51.100.2:10002", false, 10), 0)
        .unwrap();
    let before = t.snapshot();
    let out = t.expire(10 * S, |k| (k.src_port == 4002).then_some(5 * S));
    assert_eq!(out.len(), 1);
    assert_eq!(before.len(), 2);
    assert!(before.values().all(|p| p.active_ns == 0));
    assert_eq!(t.iter().next().unwrap().active_ns, 5 * S);
    check_invariants(&t);
}
