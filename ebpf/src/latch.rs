//! Bounded latching on the miss path (only when [`Config::latching`] is
//! on; otherwise the verifier sees the branch as dead and removes it).
//!
//! A packet that misses the flow map looks for a half-open entry keyed by
//! its source address and destination address and port (its flow key with
//! the source port cleared). A live entry is *claimed* by deleting it:
//! `bpf_map_delete_elem` succeeds for exactly one caller, so of several CPUs
//! racing for one entry (the real peer and an attacker, or two ports of one
//! host) one wins and the others miss. The winner inserts the exact pair
//! (packet source ↔ destination) with `BPF_NOEXIST`, passes, and reports
//! the claim through the event ring buffer. The report is reserved before
//! the claim, so no claim goes unreported and the controller always learns
//! of the flows inserted here.
//!
//! [`Config::latching`]: pinhole_common::Config::latching

use aya_ebpf::{
    helpers::{bpf_ktime_get_coarse_ns, bpf_ktime_get_ns},
    macros::map,
    maps::{HashMap, RingBuf},
};
use pinhole_common::{
    FlowKeyV4, FlowKeyV6, FlowStats, LatchEvent, LatchKeyV4, LatchKeyV6, LatchValue, Reason,
    EVENTS_BYTES, FAMILY_V4, FAMILY_V6, LATCH_FLOWS_FULL, LATCH_INSTALLED, MAX_LATCHES,
};

use crate::parse::{KeyV4, KeyV6};

/// `BPF_NOEXIST`: create only.
const BPF_NOEXIST: u64 = 1;
/// `BPF_F_NO_PREALLOC`: entries are allocated when inserted, so the latch
/// maps cost memory only while half-open pinholes exist.
const BPF_F_NO_PREALLOC: u32 = 1;
/// `-EEXIST`, as the map update helper returns it.
const EEXIST: i32 = -17;

/// IPv4 half-open entries, written by the controller, claimed here.
#[map(name = "PINHOLE_LATCH4")]
static PINHOLE_LATCH4: HashMap<LatchKeyV4, LatchValue> =
    HashMap::with_max_entries(MAX_LATCHES, BPF_F_NO_PREALLOC);

/// IPv6 half-open entries.
#[map(name = "PINHOLE_LATCH6")]
static PINHOLE_LATCH6: HashMap<LatchKeyV6, LatchValue> =
    HashMap::with_max_entries(MAX_LATCHES, BPF_F_NO_PREALLOC);

/// One [`LatchEvent`] per claim.
#[map(name = "PINHOLE_EVENTS")]
static PINHOLE_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// The source port half of a ports word (memory order: source port, then
/// destination port) cleared.
const DST_PORT_ONLY: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);
/// The first four bytes of an address word (an IPv4 address), the rest
/// cleared.
const FIRST_FOUR: u64 = u64::from_ne_bytes([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);

/// `*r`, loaded from memory (volatile): the compiler may not reuse the
/// value it stored there. It would have to keep that value alive across
/// the flow lookup (in a callee-saved register or a spill), which is code
/// on the hit path too.
///
/// # Safety
/// `r` must be valid and aligned (a field of the parser's aligned image).
#[inline(always)]
unsafe fn reload<T: Copy>(r: &T) -> T {
    core::ptr::read_volatile(r)
}

/// The miss path of an IPv4 packet whose flow key is `key` (the parser's
/// aligned image) and length `len`.
///
/// Everything here is computed from the key's two words, read back from
/// memory, and the reverse key and the report only after the claim: the
/// hit path, which shares the code before the flow lookup, keeps no extra
/// value alive for this one.
#[inline(always)]
pub fn v4(flows: &HashMap<FlowKeyV4, FlowStats>, key: &KeyV4, len: u64) -> Reason {
    // SAFETY: reads of the live, aligned fields of `key`.
    let (addrs, ports) = unsafe { (reload(&key.addrs), reload(&key.ports)) };
    let latch_key = KeyV4 {
        addrs,
        ports: ports & DST_PORT_ONLY,
    };
    claim(
        &PINHOLE_LATCH4,
        latch_key.latch(),
        |first, zero| {
            // Swapping the halves swaps source and destination.
            let reverse = KeyV4 {
                addrs: addrs.rotate_left(32),
                ports: ports.rotate_left(16),
            };
            install(flows, key.get(), reverse.get(), first, zero)
        },
        |ev, cookie, status| {
            // SAFETY: `ev` points to a reserved, writable LatchEvent.
            unsafe {
                let q = write_header(ev, cookie, FAMILY_V4, status, ports);
                q.add(2).write(addrs & FIRST_FOUR);
                q.add(3).write(0);
                q.add(4).write(addrs.rotate_left(32) & FIRST_FOUR);
                q.add(5).write(0);
            }
        },
        len,
    )
}

/// The miss path of an IPv6 packet (see [`v4`]).
#[inline(always)]
pub fn v6(flows: &HashMap<FlowKeyV6, FlowStats>, key: &KeyV6, len: u64) -> Reason {
    // SAFETY: as in v4.
    let (a, ports) = unsafe {
        (
            [
                reload(&key.addrs[0]),
                reload(&key.addrs[1]),
                reload(&key.addrs[2]),
                reload(&key.addrs[3]),
            ],
            reload(&key.ports),
        )
    };
    let latch_key = KeyV6 {
        addrs: a,
        ports: ports & DST_PORT_ONLY,
    };
    claim(
        &PINHOLE_LATCH6,
        latch_key.latch(),
        |first, zero| {
            let reverse = KeyV6 {
                addrs: [a[2], a[3], a[0], a[1]],
                ports: ports.rotate_left(16),
            };
            install(flows, key.get(), reverse.get(), first, zero)
        },
        |ev, cookie, status| {
            // SAFETY: `ev` points to a reserved, writable LatchEvent.
            unsafe {
                let q = write_header(ev, cookie, FAMILY_V6, status, ports);
                for (i, w) in a.iter().enumerate() {
                    q.add(2 + i).write(*w);
                }
            }
        },
        len,
    )
}

/// Writes the first 16 bytes of an event (cookie, family, status, padding,
/// then the ports word in memory order, as in the flow key) and returns it
/// as words.
///
/// # Safety
/// `ev` must point to a writable LatchEvent.
#[inline(always)]
unsafe fn write_header(
    ev: *mut LatchEvent,
    cookie: u64,
    family: u8,
    status: u8,
    ports: u32,
) -> *mut u64 {
    let q = ev.cast::<u64>();
    q.write(cookie);
    let [p0, p1, p2, p3] = ports.to_ne_bytes();
    q.add(1)
        .write(u64::from_ne_bytes([family, status, 0, 0, p0, p1, p2, p3]));
    q
}

/// Inserts the pair `key`, `reverse`; the status of the report.
#[inline(always)]
fn install<K: 'static>(
    flows: &HashMap<K, FlowStats>,
    key: &K,
    reverse: &K,
    first: &FlowStats,
    zero: &FlowStats,
) -> u8 {
    // A flow that exists already (opened meanwhile) is fine as it is.
    match flows.insert(key, first, BPF_NOEXIST) {
        Err(e) if e != EEXIST => LATCH_FLOWS_FULL,
        forward => match flows.insert(reverse, zero, BPF_NOEXIST) {
            Ok(()) | Err(EEXIST) => LATCH_INSTALLED,
            Err(_) => {
                // Take out what this claim added: no half pair is left.
                if forward.is_ok() {
                    let _ = flows.remove(key);
                }
                LATCH_FLOWS_FULL
            }
        },
    }
}

/// Claims the entry `latch_key` of `latches`: `install` puts the pair in
/// the flow map (given the stats of the packet's own flow and of the
/// reverse one) and `report` writes the event.
#[inline(always)]
fn claim<L: 'static>(
    latches: &HashMap<L, LatchValue>,
    latch_key: &L,
    install: impl FnOnce(&FlowStats, &FlowStats) -> u8,
    report: impl FnOnce(*mut LatchEvent, u64, u8),
    len: u64,
) -> Reason {
    let Some(entry) = latches.get_ptr(latch_key) else {
        return Reason::Miss;
    };
    // Copied out before the claim: a deleted element may be reused.
    // SAFETY: the pointer is a live map value for this RCU section.
    let value = unsafe { core::ptr::read_volatile(entry) };
    // SAFETY: the helper has no preconditions.
    if unsafe { bpf_ktime_get_ns() } > value.deadline_ns {
        return Reason::LatchExpired;
    }
    let Some(mut event) = PINHOLE_EVENTS.reserve::<LatchEvent>(0) else {
        return Reason::LatchFailed;
    };
    if latches.remove(latch_key).is_err() {
        // Another CPU claimed it first (or the controller removed it).
        event.discard(0);
        return Reason::Miss;
    }
    let first = FlowStats {
        packets: 1,
        bytes: len,
        // SAFETY: the helper has no preconditions.
        last_seen_ns: unsafe { bpf_ktime_get_coarse_ns() },
    };
    let zero = FlowStats {
        packets: 0,
        bytes: 0,
        last_seen_ns: 0,
    };
    let status = install(&first, &zero);
    if status != LATCH_INSTALLED {
        // Put the entry back so that a later packet retries (unless the
        // controller armed it again meanwhile).
        let _ = latches.insert(latch_key, value, BPF_NOEXIST);
    }
    report(event.as_mut_ptr(), value.cookie, status);
    event.submit(0);
    if status == LATCH_INSTALLED {
        Reason::Latched
    } else {
        Reason::LatchFailed
    }
}

impl KeyV4 {
    /// This image as a latch key (the caller cleared the source port).
    #[inline(always)]
    fn latch(&self) -> &LatchKeyV4 {
        // SAFETY: LatchKeyV4 has FlowKeyV4's layout (asserted in
        // pinhole-common), which this image matches (asserted in parse).
        unsafe { &*(self as *const KeyV4 as *const LatchKeyV4) }
    }
}

impl KeyV6 {
    /// This image as a latch key (the caller cleared the source port).
    #[inline(always)]
    fn latch(&self) -> &LatchKeyV6 {
        // SAFETY: as for KeyV4::latch.
        unsafe { &*(self as *const KeyV6 as *const LatchKeyV6) }
    }
}
