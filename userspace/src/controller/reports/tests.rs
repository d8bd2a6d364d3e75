use std::collections::BTreeSet;

use tokio::sync::oneshot;

use super::*;
use crate::controller::{
    report::OpenParams, Controller, ControllerCommand, ControllerConfig, FakeStore,
};

fn ep(s: &str) -> Endpoint {
    s.parse().unwrap()
}

fn pair(i: u32) -> (Endpoint, Endpoint) {
    (
        ep(&format!("192.0.2.1:{}", 2000 + i)),
        ep(&format!("198.51.100.2:{}", 10000 + i)),
    )
}

fn open(c: &mut Controller<FakeStore>, i: u32) {
    let (a, b) = pair(i);
    c.open(OpenParams {
        a,
        b,
        rtcp: false,
        idle_secs: Some(0),
        owner: None,
    })
    .unwrap();
}

fn ids(list: &ListReply) -> BTreeSet<u64> {
    list.pinholes.iter().map(|p| p.id).collect()
}

/// A list taken while opens and closes go on shows the table of the
/// instant it was asked for: none of the later opens, all of the
/// pinholes closed since, each once and with its flows' counters.
#[test]
fn a_list_sees_the_table_of_its_instant() {
    let mut c = Controller::new(FakeStore::new(4096), ControllerConfig::new(4096, 30));
    for i in 0..500 {
        open(&mut c, i);
    }
    let k = flow_key(pair(7).0, pair(7).1);
    c.core.store.flows.get_mut(&k).unwrap().packets = 42;
    let before = ids(&c.list().unwrap());
    let job = c.list_job().unwrap();
    // Interleave: close every third, open new ones, reopen a closed pair.
    for i in (0..500).step_by(3) {
        let (a, b) = pair(i);
        c.close(a, b).unwrap();
        open(&mut c, 1000 + i);
    }
    open(&mut c, 3);
    let old = job.build().unwrap();
    assert_eq!(ids(&old), before);
    assert_eq!(old.pinholes.len(), 500, "each pinhole once");
    let seven = old.pinholes.iter().find(|p| p.a == pair(7).0).unwrap();
    assert_eq!(seven.packets, 42);
    // A new list sees the changes.
    let now = c.list().unwrap();
    assert_eq!(now.pinholes.len(), 500 - 167 + 167 + 1);
    assert!(ids(&now).iter().all(|id| *id > 500 || before.contains(id)));
    assert!(!now.pinholes.iter().any(|p| p.a == pair(0).0));
}

/// The list built off the task is the one built in place, field for
/// field (the JSON the CLI prints does not change).
#[tokio::test]
async fn the_command_replies_as_the_direct_list() {
    let mut c = Controller::new(FakeStore::new(64), ControllerConfig::new(64, 30));
    for i in 0..10 {
        open(&mut c, i);
    }
    let direct = serde_json::to_string(&c.list().unwrap()).unwrap();
    let (reply, rx) = oneshot::channel();
    c.handle(ControllerCommand::List { reply });
    let via = serde_json::to_string(&rx.await.unwrap().unwrap()).unwrap();
    assert_eq!(direct, via);
    let (reply, rx) = oneshot::channel();
    c.handle(ControllerCommand::Calls { reply });
    assert!(rx.await.unwrap().unwrap().calls.is_empty());
}
