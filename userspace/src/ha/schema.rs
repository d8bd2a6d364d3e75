//! What one node writes to Redis and publishes, and how a follower reads
//! it back: pure encode/decode with every foreign value checked.
//!
//! Keys, all under the prefix `pinhole:` and namespaced by node:
//!
//! | key | type | what |
//! |-----|------|------|
//! | `pinhole:{node}:alive` | string, TTL | the owner's heartbeat (unix ms); its expiry means the node is gone |
//! | `pinhole:{node}:pinholes` | hash, TTL | field = `a|b` of the pair, value = a [`Record`] as JSON |
//! | channel `pinhole:events` | pub/sub | one [`Event`] per change, as JSON |
//!
//! A peer's data is untrusted input: a message is at most
//! [`MAX_MESSAGE`] bytes, a node name [`MAX_NODE_LEN`] characters of
//! `[A-Za-z0-9._-]`, a record holds two unicast endpoints of one family
//! with non-zero ports, one of them inside the media port ranges, at most
//! [`MAX_OWNERS`] owners of at most [`MAX_OWNER_LEN`] bytes, none of them
//! an `ha:` tag, and an idle timeout of at most [`MAX_IDLE_SECS`].

use pinhole_common::PortRange;
use serde::{Deserialize, Serialize};

pub use crate::controller::foreign::{foreign_tag, Record, FOREIGN_TAG};
pub use crate::feed::EndKey;
use crate::{
    addr::{AddrError, Endpoint, Pair},
    controller::report::MAX_OWNER_LEN,
};

/// Key prefix of everything pinhole writes.
pub const PREFIX: &str = "pinhole:";
/// The pub/sub channel of changes.
pub const CHANNEL: &str = "pinhole:events";
/// Longest message or hash value read from a peer.
pub const MAX_MESSAGE: usize = 4096;
/// Longest node name.
pub const MAX_NODE_LEN: usize = 64;
/// Most owners one record may name.
pub const MAX_OWNERS: usize = 8;
/// Longest idle timeout a record may carry (a week).
pub const MAX_IDLE_SECS: u64 = 7 * 24 * 3600;

/// Why a peer's value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    #[error("message of {0} bytes exceeds {MAX_MESSAGE}")]
    TooLong(usize),
    #[error("not a valid message: {0}")]
    Json(String),
    #[error("bad node name `{0}`")]
    Node(String),
    #[error(transparent)]
    Addr(#[from] AddrError),
    #[error("port {0} is outside the media port ranges")]
    NotMedia(u16),
    #[error("bad owner: {0}")]
    Owner(String),
    #[error("idle timeout {0}s exceeds {MAX_IDLE_SECS}s")]
    Idle(u64),
    #[error("field `{got}` does not name the record's pair (`{want}`)")]
    Field { got: String, want: String },
    #[error("bad end key: {0}")]
    End(String),
}

/// Whether `name` is a valid node name.
pub fn valid_node(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NODE_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_node(name: &str) -> Result<(), SchemaError> {
    if valid_node(name) {
        Ok(())
    } else {
        Err(SchemaError::Node(name.chars().take(MAX_NODE_LEN).collect()))
    }
}

pub fn alive_key(node: &str) -> String {
    format!("{PREFIX}{node}:alive")
}

pub fn pinholes_key(node: &str) -> String {
    format!("{PREFIX}{node}:pinholes")
}

/// The node a `pinhole:{node}:pinholes` key names, if it is one.
pub fn node_of_pinholes_key(key: &str) -> Option<&str> {
    let node = key.strip_prefix(PREFIX)?.strip_suffix(":pinholes")?;
    valid_node(node).then_some(node)
}

impl Record {
    /// Checks a record read from a peer.
    pub fn validate(&self, media: &[PortRange]) -> Result<(), SchemaError> {
        // The pair, checked as the table checks an open.
        Pair::new(Endpoint::new(self.a)?, Endpoint::new(self.b)?, self.rtcp)?;
        let ports = [self.a.port(), self.b.port()];
        // A pinhole matters to the filter through the side whose port is a
        // media port (the other side's may be anything, as for a local
        // open); one with neither is no media pinhole.
        let is_media = |port: u16| media.iter().any(|r| (r.lo..=r.hi).contains(&port));
        if !media.is_empty() && !ports.into_iter().any(is_media) {
            return Err(SchemaError::NotMedia(ports[1]));
        }
        if self.idle_secs > MAX_IDLE_SECS {
            return Err(SchemaError::Idle(self.idle_secs));
        }
        if self.owners.is_empty() || self.owners.len() > MAX_OWNERS {
            return Err(SchemaError::Owner(format!(
                "{} owners (1 to {MAX_OWNERS})",
                self.owners.len()
            )));
        }
        for owner in self.owners.iter().flatten() {
            if owner.len() > MAX_OWNER_LEN
                || owner.starts_with(FOREIGN_TAG)
                || owner.chars().any(char::is_control)
            {
                return Err(SchemaError::Owner(owner.chars().take(64).collect()));
            }
        }
        Ok(())
    }

    /// Whether the call or session `end` names holds this pinhole.
    pub fn ended_by(&self, end: &EndKey) -> bool {
        self.owners.iter().flatten().any(|o| end.matches(o))
    }
}

impl EndKeyExt for EndKey {
    fn validate(&self) -> Result<(), SchemaError> {
        let s = match self {
            EndKey::Sip(id) => id,
            EndKey::Rtsp(tag) if tag.starts_with("rtsp:") => tag,
            EndKey::Rtsp(tag) => return Err(SchemaError::End(tag.chars().take(64).collect())),
        };
        if s.is_empty() || s.len() > MAX_OWNER_LEN || s.chars().any(char::is_control) {
            return Err(SchemaError::End(s.chars().take(64).collect()));
        }
        Ok(())
    }
}

trait EndKeyExt {
    fn validate(&self) -> Result<(), SchemaError>;
}

/// What a node publishes on [`CHANNEL`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// The pinhole of `field` is now `rec`.
    Set { field: String, rec: Record },
    /// The node no longer holds the pinhole of `field`.
    Del { field: String },
    /// A call or session ended on the node.
    End { end: EndKey },
    /// The node rewrote its whole state (after a (re)connect): read it.
    Sync,
}

/// One published change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub node: String,
    /// When it was published (unix ms on the publisher's clock): the
    /// replication lag is measured from it.
    pub at_ms: u64,
    #[serde(flatten)]
    pub op: Op,
}

impl Event {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("plain data")
    }

    /// Parses and checks a message from a peer.
    pub fn decode(raw: &[u8], media: &[PortRange]) -> Result<Event, SchemaError> {
        if raw.len() > MAX_MESSAGE {
            return Err(SchemaError::TooLong(raw.len()));
        }
        let ev: Event =
            serde_json::from_slice(raw).map_err(|e| SchemaError::Json(e.to_string()))?;
        check_node(&ev.node)?;
        match &ev.op {
            Op::Set { field, rec } => check_record(field, rec, media)?,
            Op::Del { field } if field.len() > 2 * MAX_NODE_LEN + 128 => {
                return Err(SchemaError::Json("field too long".into()))
            }
            Op::Del { .. } => {}
            Op::End { end } => end.validate()?,
            Op::Sync => {}
        }
        Ok(ev)
    }
}

fn check_record(field: &str, rec: &Record, media: &[PortRange]) -> Result<(), SchemaError> {
    rec.validate(media)?;
    let want = rec.field();
    if field != want {
        return Err(SchemaError::Field {
            got: field.chars().take(128).collect(),
            want,
        });
    }
    Ok(())
}

/// Encodes a record as a hash value.
pub fn encode_record(rec: &Record) -> String {
    serde_json::to_string(rec).expect("plain data")
}

/// Parses and checks one field of a peer's pinholes hash.
pub fn decode_record(field: &str, raw: &[u8], media: &[PortRange]) -> Result<Record, SchemaError> {
    if raw.len() > MAX_MESSAGE {
        return Err(SchemaError::TooLong(raw.len()));
    }
    let rec: Record = serde_json::from_slice(raw).map_err(|e| SchemaError::Json(e.to_string()))?;
    check_record(field, &rec, media)?;
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEDIA: &[PortRange] = &[PortRange {
        lo: 10_000,
        hi: 20_000,
    }];

    fn rec() -> Record {
        Record {
            a: "192.0.2.10:10000".parse().unwrap(),
            b: "198.51.100.20:12000".parse().unwrap(),
            rtcp: false,
            idle_secs: 60,
            owners: vec![Some("sip:c1@192.0.2.10;from-tag=ft".into())],
        }
    }

    fn set(rec: Record) -> Event {
        Event {
            node: "rtr-a".into(),
            at_ms: 1,
            op: Op::Set {
                field: rec.field(),
                rec,
            },
        }
    }

    #[test]
    fn events_round_trip() {
        for ev in [
            set(rec()),
            Event {
                node: "rtr-b".into(),
                at_ms: 2,
                op: Op::Del {
                    field: rec().field(),
                },
            },
            Event {
                node: "b".into(),
                at_ms: 3,
                op: Op::End {
                    end: EndKey::Sip("c1@192.0.2.10".into()),
                },
            },
        ] {
            assert_eq!(Event::decode(ev.encode().as_bytes(), MEDIA).unwrap(), ev);
        }
        let r = rec();
        assert_eq!(
            decode_record(&r.field(), encode_record(&r).as_bytes(), MEDIA).unwrap(),
            r
        );
    }

    /// Each row: a change to a valid event and the error it must give.
    #[test]
    fn hostile_events_are_refused() {
        type Mutate = fn(&mut Event);
        let rows: Vec<(&str, Mutate)> = vec![
            ("node empty", |e| e.node.clear()),
            ("node with colon", |e| e.node = "a:b".into()),
            ("node too long", |e| e.node = "a".repeat(65)),
            ("multicast", |e| {
                set_rec(e, |r| r.a = "224.0.0.1:10000".parse().unwrap())
            }),
            ("unspecified", |e| {
                set_rec(e, |r| r.b = "0.0.0.0:10000".parse().unwrap())
            }),
            ("port 0", |e| set_rec(e, |r| r.a.set_port(0))),
            ("not media", |e| {
                set_rec(e, |r| {
                    r.a.set_port(5060);
                    r.b.set_port(5061);
                })
            }),
            ("family mix", |e| {
                set_rec(e, |r| r.b = "[2001:db8::1]:10000".parse().unwrap())
            }),
            ("no owner", |e| set_rec(e, |r| r.owners.clear())),
            ("too many owners", |e| {
                set_rec(e, |r| r.owners = vec![None; 9])
            }),
            ("ha owner", |e| {
                set_rec(e, |r| r.owners = vec![Some("ha:x".into())])
            }),
            ("long owner", |e| {
                set_rec(e, |r| r.owners = vec![Some("s".repeat(257))])
            }),
            ("control char", |e| {
                set_rec(e, |r| r.owners = vec![Some("sip:\n".into())])
            }),
            ("idle", |e| set_rec(e, |r| r.idle_secs = u64::MAX)),
            ("field mismatch", |e| {
                if let Op::Set { field, .. } = &mut e.op {
                    *field = "192.0.2.99:10000|198.51.100.20:12000".into();
                }
            }),
            ("end not rtsp", |e| {
                e.op = Op::End {
                    end: EndKey::Rtsp("sip:x".into()),
                }
            }),
            ("end empty", |e| {
                e.op = Op::End {
                    end: EndKey::Sip(String::new()),
                }
            }),
        ];
        for (name, mutate) in rows {
            let mut ev = set(rec());
            mutate(&mut ev);
            assert!(
                Event::decode(ev.encode().as_bytes(), MEDIA).is_err(),
                "{name} accepted"
            );
        }
        for raw in [
            &b""[..],
            b"{",
            b"null",
            b"{\"node\":\"a\",\"at_ms\":1,\"op\":\"nuke\"}",
            b"{\"node\":\"a\",\"at_ms\":-1,\"op\":\"del\",\"field\":\"x\"}",
            b"{\"node\":\"a\",\"at_ms\":1,\"op\":\"set\",\"field\":\"x\",\"rec\":{\"a\":\"x\"}}",
        ] {
            assert!(Event::decode(raw, MEDIA).is_err(), "{raw:?}");
        }
        let big = vec![b' '; MAX_MESSAGE + 1];
        assert_eq!(
            Event::decode(&big, MEDIA),
            Err(SchemaError::TooLong(MAX_MESSAGE + 1))
        );
    }

    fn set_rec(e: &mut Event, f: impl FnOnce(&mut Record)) {
        if let Op::Set { field, rec } = &mut e.op {
            f(rec);
            *field = rec.field();
        }
    }

    #[test]
    fn end_keys_match_sip_ng_and_rtsp_owners() {
        let sip = EndKey::Sip("c1@x".into());
        assert!(sip.matches("sip:c1@x;from-tag=a"));
        assert!(sip.matches("ng:c1@x;from-tag=b"));
        assert!(!sip.matches("sip:c1@xy;from-tag=a"));
        assert!(!sip.matches("sip:c1@x"));
        assert!(!sip.matches("rtsp:c1@x;from-tag=a"));
        let rtsp = EndKey::Rtsp("rtsp:192.0.2.1:554;session=s1".into());
        assert!(rtsp.matches("rtsp:192.0.2.1:554;session=s1"));
        assert!(!rtsp.matches("rtsp:192.0.2.1:554;session=s11"));
        assert!(rec().ended_by(&EndKey::Sip("c1@192.0.2.10".into())));
    }

    #[test]
    fn node_names_and_keys() {
        assert!(valid_node("rtr-a.dc1_2"));
        for bad in ["", "a b", "a:b", "a*", "é"] {
            assert!(!valid_node(bad), "{bad}");
        }
        assert_eq!(node_of_pinholes_key(&pinholes_key("rtr-a")), Some("rtr-a"));
        assert_eq!(node_of_pinholes_key("pinhole:a:b:pinholes"), None);
        assert_eq!(node_of_pinholes_key("pinhole:a:alive"), None);
    }
}
