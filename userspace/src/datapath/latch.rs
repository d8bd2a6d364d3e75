//! Bounded latching (`--latching SECS`, NAT traversal): the kernel side's
//! handles.
//!
//! Behind NAT, the address a peer announces in its SDP is not the address
//! its packets come from. With latching on, a media stream whose remote end
//! is unverified (its SDP address differs from its signaling address) gets a
//! *half-open* pinhole instead of being refused: an entry in the family's
//! latch map keyed by (remote signaling address, local media address, local
//! port), any source port. The XDP program, on a miss only, looks the packet
//! up there; the first packet from that remote address within the window
//! claims the entry (deleting it, so exactly one CPU wins), inserts the exact
//! symmetric pair (packet source ↔ local media endpoint) into the flow map,
//! passes, and reports the claim through the event ring buffer. From then on
//! the pair is strict: any other source, or the same host from another port,
//! is a plain miss. The controller adopts the reported pair into its table
//! under the call that asked for it and removes entries whose window passed.
//!
//! Here: [`LatchKey`] (a half-open entry's identity), [`LatchMap`] (both
//! latch maps behind one API), [`Latched`] (a decoded [`LatchEvent`]) and
//! [`spawn_reader`], which sends the ring buffer's events on a channel (the
//! controller's end of it is `ControllerHandle::forward_latched`; the
//! datapath does not know the controller). The controller's side of
//! latching (adopting a latched pair into the table) is
//! `controller/latching.rs`.

use std::{
    fmt, io,
    net::{IpAddr, SocketAddr},
};

use aya::{
    maps::{MapData, MapError, RingBuf},
    Ebpf,
};
use pinhole_common::{
    LatchEvent, LatchKeyV4, LatchKeyV6, LatchValue, EVENTS_MAP, FAMILY_V4, FAMILY_V6,
    LATCH_FLOWS_FULL, LATCH_INSTALLED, LATCH_V4_MAP, LATCH_V6_MAP,
};
use tokio::{io::unix::AsyncFd, sync::mpsc, task::JoinHandle};
use tracing::{error, warn};

use crate::{
    datapath::error::{LoadError, StoreError},
    datapath::maps::{errno, take, FamilyKey, FamilyMaps, BPF_ANY},
};

/// A half-open entry: the first packet from `from` (any port) to `local`
/// completes it. Both addresses are of one family; IPv4-mapped IPv6
/// addresses are not used (the call layer canonicalises them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LatchKey {
    /// The remote's signaling address.
    pub from: IpAddr,
    /// The local media endpoint.
    pub local: SocketAddr,
}

/// A latch key in the map of its family.
pub type LatchMapKey = FamilyKey<LatchKeyV4, LatchKeyV6>;

impl LatchKey {
    /// The key in its family's map; `None` when the families differ.
    pub fn to_map_key(&self) -> Option<LatchMapKey> {
        match (self.from, self.local.ip()) {
            (IpAddr::V4(f), IpAddr::V4(l)) => Some(LatchMapKey::V4(LatchKeyV4::new(
                f.octets(),
                l.octets(),
                self.local.port(),
            ))),
            (IpAddr::V6(f), IpAddr::V6(l)) => Some(LatchMapKey::V6(LatchKeyV6::new(
                f.octets(),
                l.octets(),
                self.local.port(),
            ))),
            _ => None,
        }
    }
}

impl fmt::Display for LatchKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:* -> {}", self.from, self.local)
    }
}

/// A decoded [`LatchEvent`]: the program claimed the entry `key` for a
/// packet from `remote`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latched {
    pub cookie: u64,
    pub key: LatchKey,
    /// The packet's source: the remote's real media address.
    pub remote: SocketAddr,
    /// Whether both flows of the pair are in the flow map. When not (the
    /// map was full) the packet was dropped and the entry put back.
    pub installed: bool,
}

impl Latched {
    /// Decodes one event; `None` for an unknown family or status.
    pub fn from_event(ev: &LatchEvent) -> Option<Latched> {
        let (src, dst) = match ev.family {
            FAMILY_V4 => {
                let v4 = |a: &[u8; 16]| IpAddr::from([a[0], a[1], a[2], a[3]]);
                (v4(&ev.src), v4(&ev.dst))
            }
            FAMILY_V6 => (IpAddr::from(ev.src), IpAddr::from(ev.dst)),
            _ => return None,
        };
        let installed = match ev.status {
            LATCH_INSTALLED => true,
            LATCH_FLOWS_FULL => false,
            _ => return None,
        };
        Some(Latched {
            cookie: ev.cookie,
            key: LatchKey {
                from: src,
                local: SocketAddr::new(dst, u16::from_be(ev.dst_port)),
            },
            remote: SocketAddr::new(src, u16::from_be(ev.src_port)),
            installed,
        })
    }

    /// Decodes a ring buffer record; `None` when it is not a whole event.
    pub fn decode(bytes: &[u8]) -> Option<Latched> {
        if bytes.len() < std::mem::size_of::<LatchEvent>() {
            return None;
        }
        // SAFETY: the slice holds at least size_of::<LatchEvent>() bytes and
        // LatchEvent is plain integers (any bit pattern is valid); the read
        // tolerates any alignment.
        let ev = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<LatchEvent>()) };
        Latched::from_event(&ev)
    }

    /// The event the program writes for this claim (for fakes and tests).
    pub fn to_event(&self) -> LatchEvent {
        let mut ev = LatchEvent {
            cookie: self.cookie,
            status: if self.installed {
                LATCH_INSTALLED
            } else {
                LATCH_FLOWS_FULL
            },
            src_port: self.remote.port().to_be(),
            dst_port: self.key.local.port().to_be(),
            ..LatchEvent::default()
        };
        let mut put = |ip: IpAddr, out: &mut [u8; 16]| match ip {
            IpAddr::V4(v4) => {
                ev.family = FAMILY_V4;
                out[..4].copy_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                ev.family = FAMILY_V6;
                *out = v6.octets();
            }
        };
        let (mut src, mut dst) = ([0; 16], [0; 16]);
        put(self.remote.ip(), &mut src);
        put(self.key.local.ip(), &mut dst);
        ev.src = src;
        ev.dst = dst;
        ev
    }
}

fn store_err(op: &'static str, e: MapError) -> StoreError {
    if errno(&e) == Some(libc::E2BIG) {
        StoreError::LatchMapFull
    } else {
        StoreError::Map { op, source: e }
    }
}

/// Both latch maps ([`LATCH_V4_MAP`], [`LATCH_V6_MAP`]) behind one API.
pub struct LatchMap {
    maps: FamilyMaps<LatchKeyV4, LatchKeyV6, LatchValue>,
}

/// The map key of `key`, or an error when its addresses are of two families.
fn map_key(op: &'static str, key: &LatchKey) -> Result<LatchMapKey, StoreError> {
    key.to_map_key().ok_or_else(|| StoreError::Other {
        op,
        message: format!("no latch map holds {key} (mixed families)"),
    })
}

impl LatchMap {
    /// Takes both maps out of a loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, LoadError> {
        Ok(LatchMap {
            maps: FamilyMaps::take(ebpf, LATCH_V4_MAP, LATCH_V6_MAP)?,
        })
    }

    /// Creates or replaces the entry `key`.
    pub fn arm(&mut self, key: &LatchKey, value: LatchValue) -> Result<(), StoreError> {
        let k = map_key("arm", key)?;
        self.maps
            .insert(k, value, BPF_ANY)
            .map_err(|e| store_err("latch arm", e))
    }

    /// Removes the entry `key`; `Ok(false)` when it was not there (the
    /// program claimed it, or it was never armed).
    pub fn disarm(&mut self, key: &LatchKey) -> Result<bool, StoreError> {
        let k = map_key("disarm", key)?;
        self.maps
            .remove(k)
            .map_err(|e| store_err("latch disarm", e))
    }

    /// The entry `key`, `None` when absent.
    pub fn get(&self, key: &LatchKey) -> Result<Option<LatchValue>, StoreError> {
        let k = map_key("lookup", key)?;
        self.maps.get(k).map_err(|e| store_err("latch lookup", e))
    }

    /// How many entries both maps hold (walks the keys).
    pub fn len(&self) -> Result<usize, StoreError> {
        self.maps.len().map_err(|e| store_err("latch iterate", e))
    }

    /// Whether both maps are empty.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        self.maps
            .is_empty()
            .map_err(|e| store_err("latch iterate", e))
    }

    /// Removes every entry; returns how many there were.
    pub fn clear(&mut self) -> Result<usize, StoreError> {
        let v4: Vec<LatchKeyV4> = self
            .maps
            .v4
            .keys()
            .collect::<Result<_, _>>()
            .map_err(|e| store_err("latch iterate", e))?;
        let v6: Vec<LatchKeyV6> = self
            .maps
            .v6
            .keys()
            .collect::<Result<_, _>>()
            .map_err(|e| store_err("latch iterate", e))?;
        let n = v4.len() + v6.len();
        let keys = v4
            .into_iter()
            .map(FamilyKey::V4)
            .chain(v6.into_iter().map(FamilyKey::V6));
        for k in keys {
            // Gone already (claimed by the program) is fine.
            self.maps
                .remove(k)
                .map_err(|e| store_err("latch clear", e))?;
        }
        Ok(n)
    }
}

/// Takes the event ring buffer ([`EVENTS_MAP`]) out of a loaded object.
pub fn take_events(ebpf: &mut Ebpf) -> Result<RingBuf<MapData>, LoadError> {
    RingBuf::try_from(take(ebpf, EVENTS_MAP)?).map_err(|source| LoadError::MapType {
        name: EVENTS_MAP,
        source,
    })
}

/// Most events handed to the controller in one command.
const BATCH: usize = 256;

/// Reads the ring buffer whenever it is readable and sends the events on
/// `events`, in order, in batches of at most `BATCH`, until the receiver
/// is gone. A full channel holds the reader back (the ring then fills and
/// the program counts what it could not report).
pub fn spawn_reader(
    ring: RingBuf<MapData>,
    events_tx: mpsc::Sender<Vec<Latched>>,
) -> io::Result<JoinHandle<()>> {
    // SAFETY: the ring buffer owns its map fd, which stays open and
    // unchanged until the ring (owned by the AsyncFd) is dropped.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    Ok(tokio::spawn(async move {
        loop {
            let mut guard = match fd.readable_mut().await {
                Ok(g) => g,
                Err(e) => {
                    error!("latch event reader stopped: {e}");
                    return;
                }
            };
            // Drain in batches; the ring frees each record as it is read.
            loop {
                let mut events = Vec::new();
                let ring = guard.get_inner_mut();
                while events.len() < BATCH {
                    let Some(item) = ring.next() else { break };
                    match Latched::decode(&item) {
                        Some(ev) => events.push(ev),
                        None => warn!(len = item.len(), "undecodable latch event ignored"),
                    }
                }
                if events.is_empty() {
                    break;
                }
                let more = events.len() == BATCH;
                if events_tx.send(events).await.is_err() {
                    return;
                }
                if !more {
                    break;
                }
            }
            guard.clear_ready();
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn keys_go_to_their_family_map_in_wire_order() {
        let k = LatchKey {
            from: "192.0.2.2".parse().unwrap(),
            local: sa("198.51.100.2:12000"),
        };
        let Some(LatchMapKey::V4(m)) = k.to_map_key() else {
            panic!("v4 key");
        };
        assert_eq!(
            (m.src, m.dst, m.any_port, m.dst_port),
            ([192, 0, 2, 2], [198, 51, 100, 2], 0, 12000u16.to_be())
        );
        let k6 = LatchKey {
            from: "2001:db8:1::2".parse().unwrap(),
            local: sa("[2001:db8:2::2]:12000"),
        };
        assert!(matches!(k6.to_map_key(), Some(LatchMapKey::V6(_))));
        let mixed = LatchKey {
            from: "2001:db8:1::2".parse().unwrap(),
            local: sa("198.51.100.2:12000"),
        };
        assert_eq!(mixed.to_map_key(), None);
        assert_eq!(k.to_string(), "192.0.2.2:* -> 198.51.100.2:12000");
    }

    #[test]
    fn events_round_trip_and_bad_ones_are_refused() {
        let cases = [
            ("192.0.2.2:40000", "198.51.100.2:12000", true),
            ("[2001:db8:1::2]:40000", "[2001:db8:2::2]:12001", false),
        ];
        for (remote, local, installed) in cases {
            let l = Latched {
                cookie: 77,
                key: LatchKey {
                    from: sa(remote).ip(),
                    local: sa(local),
                },
                remote: sa(remote),
                installed,
            };
            let ev = l.to_event();
            assert_eq!(Latched::from_event(&ev), Some(l));
            // SAFETY: LatchEvent is plain integers without padding.
            let bytes: [u8; std::mem::size_of::<LatchEvent>()] = unsafe { std::mem::transmute(ev) };
            assert_eq!(Latched::decode(&bytes), Some(l));
            assert_eq!(Latched::decode(&bytes[..bytes.len() - 1]), None);
            assert_eq!(Latched::from_event(&LatchEvent { family: 5, ..ev }), None);
            assert_eq!(Latched::from_event(&LatchEvent { status: 9, ..ev }), None);
        }
    }
}
