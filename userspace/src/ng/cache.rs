//! Replies by cookie, so that a retransmitted request gets the same reply
//! and its command runs once (rtpengine's peers retransmit after a timeout,
//! Kamailio's module every second by default).
//!
//! Pure: the caller passes `now` (nanoseconds of a monotonic clock). Entries
//! live for a TTL and the cache holds at most a number of entries and a
//! number of reply bytes; when full, the oldest entries go first. Entries are
//! keyed by the client's address and the cookie, so that two proxies that
//! happen to pick the same cookie never see each other's replies.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// Cache limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a reply is kept.
    pub ttl: Duration,
    /// Most replies kept.
    pub max_entries: usize,
    /// Most reply bytes kept (cookies included).
    pub max_bytes: usize,
}

impl Default for CacheConfig {
    /// 30 s (well beyond Kamailio's default 5 retransmissions, 1 s apart),
    /// 16 384 replies, 16 MiB.
    fn default() -> Self {
        CacheConfig {
            ttl: Duration::from_secs(30),
            max_entries: 16_384,
            max_bytes: 16 << 20,
        }
    }
}

type Key = (SocketAddr, Vec<u8>);

#[derive(Debug)]
struct Entry {
    reply: Vec<u8>,
    expires: u64,
    /// Insertion number, to tell this entry from an older one with the same
    /// key in `order`.
    seq: u64,
}

/// Replies by (client, cookie).
#[derive(Debug)]
pub struct ReplyCache {
    cfg: CacheConfig,
    map: HashMap<Key, Entry>,
    /// Keys in insertion order (expiry order too: the TTL is fixed).
    order: VecDeque<(u64, Key)>,
    bytes: usize,
    seq: u64,
}

impl ReplyCache {
    pub fn new(cfg: CacheConfig) -> Self {
        ReplyCache {
            cfg,
            map: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            seq: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Reply bytes held (cookies included).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The reply cached for this request, if it has not expired.
    pub fn get(&mut self, peer: SocketAddr, cookie: &[u8], now: u64) -> Option<&[u8]> {
        self.expire(now);
        self.map
            .get(&(peer, cookie.to_vec()))
            .map(|e| e.reply.as_slice())
    }

    /// Remembers `reply` for this request until `now + ttl`, evicting the
    /// oldest entries to stay within the limits. A reply larger than the
    /// whole byte budget is not kept.
    pub fn insert(&mut self, peer: SocketAddr, cookie: &[u8], reply: Vec<u8>, now: u64) {
        self.expire(now);
        let size = cookie.len() + reply.len();
        if self.cfg.max_entries == 0 || size > self.cfg.max_bytes {
            return;
        }
        let key = (peer, cookie.to_vec());
        self.remove(&key);
        while self.map.len() >= self.cfg.max_entries || self.bytes + size > self.cfg.max_bytes {
            if !self.pop_oldest() {
                break;
            }
        }
        let ttl = u64::try_from(self.cfg.ttl.as_nanos()).unwrap_or(u64::MAX);
        self.seq += 1;
        self.bytes += size;
        self.order.push_back((self.seq, key.clone()));
        self.map.insert(
            key,
            Entry {
                reply,
                expires: now.saturating_add(ttl),
                seq: self.seq,
            },
        );
    }

    fn remove(&mut self, key: &Key) {
        if let Some(e) = self.map.remove(key) {
            self.bytes -= key.1.len() + e.reply.len();
        }
    }

    /// Drops the oldest live entry (skipping stale queue slots); false when
    /// there is none.
    fn pop_oldest(&mut self) -> bool {
        while let Some((seq, key)) = self.order.pop_front() {
            if self.map.get(&key).is_some_and(|e| e.seq == seq) {
                self.remove(&key);
                return true;
            }
        }
        false
    }

    fn expire(&mut self, now: u64) {
        while let Some((seq, key)) = self.order.front() {
            match self.map.get(key) {
                Some(e) if e.seq == *seq => {
                    if e.expires > now {
                        break;
                    }
                    let key = key.clone();
                    self.remove(&key);
                }
                // A stale slot: the entry was replaced or evicted.
                _ => {}
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn cache(max_entries: usize, max_bytes: usize) -> ReplyCache {
        ReplyCache::new(CacheConfig {
            ttl: Duration::from_secs(30),
            max_entries,
            max_bytes,
        })
    }

    #[test]
    fn replies_live_for_the_ttl() {
        let mut c = cache(10, 1000);
        c.insert(peer(1), b"k1", b"r1".to_vec(), 0);
        c.insert(peer(1), b"k2", b"r2".to_vec(), 10 * S);
        // (peer, cookie, now, expected)
        type Case = (u16, &'static [u8], u64, Option<&'static [u8]>);
        let cases: [Case; 6] = [
            (1, b"k1", 0, Some(b"r1")),
            (1, b"k1", 30 * S - 1, Some(b"r1")),
            (2, b"k1", 30 * S - 1, None), // another client, same cookie
            (1, b"k3", 30 * S - 1, None),
            (1, b"k1", 30 * S, None),
            (1, b"k2", 39 * S, Some(b"r2")),
        ];
        for (port, cookie, now, want) in cases {
            assert_eq!(c.get(peer(port), cookie, now), want, "{port} {now}");
        }
        assert_eq!((c.len(), c.bytes()), (1, 4));
        assert_eq!(c.get(peer(1), b"k2", 40 * S), None);
        assert!(c.is_empty());
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn limits_evict_the_oldest() {
        // Entry limit.
        let mut c = cache(2, 1000);
        for (i, k) in [b"a", b"b", b"c"].iter().enumerate() {
            c.insert(peer(1), *k, b"r".to_vec(), i as u64);
        }
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(peer(1), b"a", 3), None);
        assert_eq!(c.get(peer(1), b"c", 3), Some(&b"r"[..]));
        // Byte limit: 3 entries of 1 + 4 bytes fit in 15, a fourth evicts one.
        let mut c = cache(100, 15);
        for (i, k) in [b"a", b"b", b"c", b"d"].iter().enumerate() {
            c.insert(peer(1), *k, b"rrrr".to_vec(), i as u64);
        }
        assert_eq!((c.len(), c.bytes()), (3, 15));
        assert_eq!(c.get(peer(1), b"a", 4), None);
        // Too big for the whole budget: not kept, nothing evicted.
        c.insert(peer(1), b"e", vec![0; 15], 5);
        assert_eq!((c.len(), c.get(peer(1), b"e", 5)), (3, None));
        // Replacing a key keeps one entry and accounts its new size.
        c.insert(peer(1), b"d", b"r".to_vec(), 6);
        assert_eq!((c.len(), c.bytes()), (3, 12));
        assert_eq!(c.get(peer(1), b"d", 6), Some(&b"r"[..]));
        // Nothing kept at all with no entries allowed.
        let mut c = cache(0, 1000);
        c.insert(peer(1), b"a", b"r".to_vec(), 0);
        assert!(c.is_empty());
    }

    #[test]
    fn replaced_entries_expire_on_their_own_time() {
        let mut c = cache(10, 1000);
        c.insert(peer(1), b"a", b"old".to_vec(), 0);
        c.insert(peer(1), b"a", b"new".to_vec(), 20 * S);
        // The stale queue slot of the first insert must not expire the new one.
        assert_eq!(c.get(peer(1), b"a", 31 * S), Some(&b"new"[..]));
        assert_eq!(c.get(peer(1), b"a", 50 * S), None);
        assert_eq!(c.bytes(), 0);
    }
}
