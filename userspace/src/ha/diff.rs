//! Pure comparisons: what changed in the local table since the last
//! publish, and what a follower must install or remove to match a peer's
//! full state after a (re)connect.

use std::collections::BTreeMap;

use imbl::ordmap::DiffItem;

use super::schema::Record;
use crate::controller::table::{Pinhole, Pinholes};

/// Records by hash field.
pub type Records = BTreeMap<String, Record>;

/// Every record this node replicates from a table snapshot.
pub fn records(table: &Pinholes) -> Records {
    table
        .values()
        .filter_map(Record::of)
        .map(|r| (r.field(), r))
        .collect()
}

/// What changed between two snapshots of the table, by field: `Some` to
/// write, `None` to delete. The diff skips the structure both share, so a
/// change costs O(changed · log n), not O(n). A pair closed and opened
/// again under a new id is one write.
pub fn changes(old: &Pinholes, new: &Pinholes) -> BTreeMap<String, Option<Record>> {
    let mut out: BTreeMap<String, Option<Record>> = BTreeMap::new();
    let gone = |p: &Pinhole, out: &mut BTreeMap<String, Option<Record>>| {
        if let Some(r) = Record::of(p) {
            out.entry(r.field()).or_insert(None);
        }
    };
    for item in old.diff(new) {
        match item {
            DiffItem::Add(_, p) => {
                if let Some(r) = Record::of(p) {
                    out.insert(r.field(), Some(r));
                }
            }
            DiffItem::Update {
                old: (_, before),
                new: (_, after),
            } => {
                let (b, a) = (Record::of(before), Record::of(after));
                if b == a {
                    continue;
                }
                match a {
                    Some(r) => {
                        out.insert(r.field(), Some(r));
                    }
                    None => gone(before, &mut out),
                }
            }
            DiffItem::Remove(_, p) => gone(p, &mut out),
        }
    }
    out
}

/// What a follower does to go from the records it installed for a node to
/// the node's full state.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resync {
    /// New or changed records.
    pub install: Vec<Record>,
    /// Records the node no longer has.
    pub remove: Vec<Record>,
}

pub fn resync(installed: &Records, remote: &Records) -> Resync {
    let mut out = Resync::default();
    for (field, rec) in remote {
        if installed.get(field) != Some(rec) {
            out.install.push(rec.clone());
        }
    }
    for (field, rec) in installed {
        if !remote.contains_key(field) {
            out.remove.push(rec.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        addr::{Endpoint, Pair},
        controller::table::{OpenRequest, PinholeTable},
    };

    fn open(t: &mut PinholeTable, a: &str, b: &str, owner: Option<&str>, idle: u64) {
        let pair = Pair::new(
            Endpoint::new(a.parse().unwrap()).unwrap(),
            Endpoint::new(b.parse().unwrap()).unwrap(),
            false,
        )
        .unwrap();
        let plan = t
            .plan_open(
                OpenRequest {
                    pair,
                    idle_timeout_secs: idle,
                    owner: owner.map(str::to_string),
                },
                1,
            )
            .unwrap();
        t.commit(plan).unwrap();
    }

    fn ep(s: &str) -> Endpoint {
        Endpoint::new(s.parse().unwrap()).unwrap()
    }

    #[test]
    fn changes_publish_local_claims_and_skip_foreign_ones() {
        let mut t = PinholeTable::new(64);
        let empty = t.snapshot();
        open(
            &mut t,
            "192.0.2.1:10000",
            "198.51.100.2:10000",
            Some("sip:c;from-tag=f"),
            30,
        );
        open(
            &mut t,
            "192.0.2.1:10002",
            "198.51.100.2:10002",
            Some("ha:rtr-b"),
            0,
        );
        let s1 = t.snapshot();
        let c = changes(&empty, &s1);
        assert_eq!(c.len(), 1, "the foreign pinhole is not ours: {c:?}");
        let r = c["192.0.2.1:10000|198.51.100.2:10000"].as_ref().unwrap();
        assert_eq!((r.idle_secs, r.owners.len()), (30, 1));
        assert_eq!(records(&s1).len(), 1);

        // A local claim on the foreign pinhole makes it ours too; a manual
        // claim without timeout makes it never idle out.
        open(&mut t, "192.0.2.1:10002", "198.51.100.2:10002", None, 0);
        let s2 = t.snapshot();
        let c = changes(&s1, &s2);
        let r = c["192.0.2.1:10002|198.51.100.2:10002"].as_ref().unwrap();
        assert_eq!((r.idle_secs, r.owners.clone()), (0, vec![None]));

        // Nothing changed: nothing to write.
        assert!(changes(&s2, &t.snapshot()).is_empty());

        // Closing one and releasing the local claim of the other: two deletes.
        t.close(ep("192.0.2.1:10000"), ep("198.51.100.2:10000"))
            .unwrap();
        t.release(ep("192.0.2.1:10002"), ep("198.51.100.2:10002"), &None)
            .unwrap();
        let c = changes(&s2, &t.snapshot());
        assert_eq!(c.len(), 2);
        assert!(c.values().all(Option::is_none));
    }

    #[test]
    fn a_pair_closed_and_reopened_is_one_write() {
        let mut t = PinholeTable::new(64);
        open(
            &mut t,
            "192.0.2.1:10000",
            "198.51.100.2:10000",
            Some("sip:a;from-tag=f"),
            30,
        );
        let s1 = t.snapshot();
        t.close(ep("192.0.2.1:10000"), ep("198.51.100.2:10000"))
            .unwrap();
        open(
            &mut t,
            "192.0.2.1:10000",
            "198.51.100.2:10000",
            Some("sip:b;from-tag=f"),
            30,
        );
        let c = changes(&s1, &t.snapshot());
        assert_eq!(c.len(), 1);
        let r = c.values().next().unwrap().as_ref().unwrap();
        assert_eq!(r.owners, vec![Some("sip:b;from-tag=f".to_string())]);
    }

    #[test]
    fn resync_installs_changes_and_removes_what_is_gone() {
        let rec = |port: u16, idle| Record {
            a: format!("192.0.2.1:{port}").parse().unwrap(),
            b: "198.51.100.2:10000".parse().unwrap(),
            rtcp: false,
            idle_secs: idle,
            owners: vec![None],
        };
        let map = |rs: Vec<Record>| rs.into_iter().map(|r| (r.field(), r)).collect::<Records>();
        let installed = map(vec![rec(10000, 30), rec(10002, 30), rec(10004, 30)]);
        let remote = map(vec![rec(10000, 30), rec(10002, 60), rec(10006, 30)]);
        let r = resync(&installed, &remote);
        assert_eq!(r.install, vec![rec(10002, 60), rec(10006, 30)]);
        assert_eq!(r.remove, vec![rec(10004, 30)]);
        assert_eq!(resync(&remote, &remote), Resync::default());
        assert_eq!(resync(&installed, &Records::new()).remove.len(), 3);
    }
}
