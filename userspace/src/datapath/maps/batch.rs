//! Reading a whole BPF hash map in batches (`BPF_MAP_LOOKUP_BATCH`, Linux
//! 5.6), which aya 0.14 does not offer: one bpf(2) call copies up to a
//! chunk of entries instead of two calls (next key, lookup) per entry.
//!
//! The walk ([`walk`]) is written against [`LookupBatch`], so its chunking
//! and decoding are tested with a fake map; [`MapFdBatch`] is the raw
//! syscall on a map's file descriptor.
//!
//! The kernel walks a hash map bucket by bucket and returns whole buckets:
//! - the walk ends with `ENOENT` (the last entries may come with it);
//! - `ENOSPC` (a bucket holds more entries than the chunk; nothing was
//!   copied) or `E2BIG` make the walk retry the same position with a chunk
//!   twice as big, up to [`MAX_CHUNK`];
//! - a map that changes during the walk: an entry present from its start to
//!   its end is returned exactly once (it stays in its bucket, and each
//!   bucket is copied under its lock); one inserted or deleted meanwhile
//!   may or may not be. Callers that must see one instant take the set of
//!   keys they want from elsewhere (the controller's table snapshot) and
//!   use the map only for the counters.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd, OwnedFd},
};

/// `BPF_MAP_LOOKUP_BATCH` (include/uapi/linux/bpf.h).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Entries asked for per call at first.
pub const FIRST_CHUNK: u32 = 4096;
/// The largest chunk a walk grows to on `ENOSPC` (one bucket bigger than
/// this is an error, not a reason to allocate without bound).
pub const MAX_CHUNK: u32 = 1 << 20;
/// Bytes of the walk's position token: the kernel's hash maps use a u32
/// bucket index; 8 bytes leave room for map types with a bigger one.
const TOKEN_LEN: usize = 8;

/// Why a walk stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("BPF_MAP_LOOKUP_BATCH failed: {0}")]
    Syscall(#[source] io::Error),
    #[error("a hash bucket holds more than {MAX_CHUNK} entries")]
    BucketTooBig,
    #[error("the kernel returned {count} entries for a chunk of {chunk}")]
    BadCount { count: u32, chunk: u32 },
}

/// One `BPF_MAP_LOOKUP_BATCH` call: fills up to `*count` entries into
/// `keys`/`values` from position `in_batch` (`None`: the start), stores
/// the next position in `out_batch` and the number filled in `*count`
/// (also when it fails with `ENOENT`). Errors are errno values.
pub trait LookupBatch {
    fn key_size(&self) -> usize;
    fn value_size(&self) -> usize;
    fn lookup_batch(
        &self,
        in_batch: Option<&[u8; TOKEN_LEN]>,
        out_batch: &mut [u8; TOKEN_LEN],
        keys: &mut [u8],
        values: &mut [u8],
        count: &mut u32,
    ) -> Result<(), i32>;
}

/// Calls `f(key, value)` for every entry of the map, a chunk at a time;
/// returns how many entries it saw. See the module docs for what a map
/// that changes meanwhile gives.
pub fn walk(map: &impl LookupBatch, mut f: impl FnMut(&[u8], &[u8])) -> Result<usize, BatchError> {
    let (ks, vs) = (map.key_size(), map.value_size());
    let mut chunk = FIRST_CHUNK;
    let mut keys = vec![0u8; ks * chunk as usize];
    let mut values = vec![0u8; vs * chunk as usize];
    let mut position: Option<[u8; TOKEN_LEN]> = None;
    let mut next = [0u8; TOKEN_LEN];
    let mut seen = 0;
    loop {
        let mut count = chunk;
        let r = map.lookup_batch(
            position.as_ref(),
            &mut next,
            &mut keys,
            &mut values,
            &mut count,
        );
        let done = match r {
            Ok(()) => false,
            Err(libc::ENOENT) => true,
            Err(libc::ENOSPC | libc::E2BIG) if count == 0 => {
                if chunk >= MAX_CHUNK {
                    return Err(BatchError::BucketTooBig);
                }
                chunk = (chunk * 2).min(MAX_CHUNK);
                keys.resize(ks * chunk as usize, 0);
                values.resize(vs * chunk as usize, 0);
                continue;
            }
            Err(errno) => return Err(BatchError::Syscall(io::Error::from_raw_os_error(errno))),
        };
        if count > chunk {
            return Err(BatchError::BadCount { count, chunk });
        }
        for (k, v) in entries(&keys, &values, ks, vs, count as usize) {
            f(k, v);
        }
        seen += count as usize;
        if done {
            return Ok(seen);
        }
        position = Some(next);
    }
}

/// The first `count` (key, value) pairs of a chunk's buffers.
fn entries<'a>(
    keys: &'a [u8],
    values: &'a [u8],
    key_size: usize,
    value_size: usize,
    count: usize,
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    keys.chunks_exact(key_size)
        .zip(values.chunks_exact(value_size))
        .take(count)
}

/// Reads a `T` from the start of `bytes` (`None` when too short).
pub fn decode<T: aya::Pod>(bytes: &[u8]) -> Option<T> {
    (bytes.len() >= std::mem::size_of::<T>())
        // SAFETY: `T: Pod` is valid for any bytes, and the length is checked.
        .then(|| unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// [`LookupBatch`] on a map's own file descriptor (a duplicate, so the
/// reader can live on another thread than the map's owner).
#[derive(Debug)]
pub struct MapFdBatch {
    fd: OwnedFd,
    key_size: usize,
    value_size: usize,
}

impl MapFdBatch {
    pub fn new(fd: BorrowedFd<'_>, key_size: usize, value_size: usize) -> io::Result<Self> {
        Ok(MapFdBatch {
            fd: fd.try_clone_to_owned()?,
            key_size,
            value_size,
        })
    }
}

/// `attr.batch` of bpf(2) (struct bpf_attr, BPF_MAP_*_BATCH commands).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

impl LookupBatch for MapFdBatch {
    fn key_size(&self) -> usize {
        self.key_size
    }

    fn value_size(&self) -> usize {
        self.value_size
    }

    fn lookup_batch(
        &self,
        in_batch: Option<&[u8; TOKEN_LEN]>,
        out_batch: &mut [u8; TOKEN_LEN],
        keys: &mut [u8],
        values: &mut [u8],
        count: &mut u32,
    ) -> Result<(), i32> {
        let room = (keys.len() / self.key_size.max(1)).min(values.len() / self.value_size.max(1));
        if *count as usize > room {
            return Err(libc::EINVAL);
        }
        let mut attr = BatchAttr {
            in_batch: in_batch.map_or(0, |b| b.as_ptr() as u64),
            out_batch: out_batch.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: *count,
            map_fd: self.fd.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: attr points at buffers that hold `count` keys and values
        // (checked above) and a token of TOKEN_LEN bytes, all live for the
        // call; the kernel writes no more than that.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>() as u32,
            )
        };
        *count = attr.count;
        if rc < 0 {
            Err(io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// A hash map as the kernel walks it: buckets of (u32 key, u64 value),
    /// whole buckets per call, ENOSPC when the first bucket does not fit,
    /// ENOENT with the last entries.
    struct FakeMap {
        buckets: Vec<Vec<(u32, u64)>>,
        calls: Cell<usize>,
        /// Fail every call with this errno.
        fail: Option<i32>,
    }

    impl FakeMap {
        fn new(buckets: Vec<Vec<(u32, u64)>>) -> Self {
            FakeMap {
                buckets,
                calls: Cell::new(0),
                fail: None,
            }
        }
    }

    impl LookupBatch for FakeMap {
        fn key_size(&self) -> usize {
            4
        }
        fn value_size(&self) -> usize {
            8
        }
        fn lookup_batch(
            &self,
            in_batch: Option<&[u8; TOKEN_LEN]>,
            out_batch: &mut [u8; TOKEN_LEN],
            keys: &mut [u8],
            values: &mut [u8],
            count: &mut u32,
        ) -> Result<(), i32> {
            self.calls.set(self.calls.get() + 1);
            if let Some(e) = self.fail {
                *count = 0;
                return Err(e);
            }
            let mut bucket =
                in_batch.map_or(0, |b| u32::from_ne_bytes(b[..4].try_into().unwrap())) as usize;
            let max = *count as usize;
            let mut n = 0;
            while bucket < self.buckets.len() {
                let b = &self.buckets[bucket];
                if n + b.len() > max {
                    if n == 0 {
                        *count = 0;
                        return Err(libc::ENOSPC);
                    }
                    break;
                }
                for (k, v) in b {
                    keys[n * 4..n * 4 + 4].copy_from_slice(&k.to_ne_bytes());
                    values[n * 8..n * 8 + 8].copy_from_slice(&v.to_ne_bytes());
                    n += 1;
                }
                bucket += 1;
            }
            *count = n as u32;
            out_batch[..4].copy_from_slice(&(bucket as u32).to_ne_bytes());
            if bucket >= self.buckets.len() {
                Err(libc::ENOENT)
            } else {
                Ok(())
            }
        }
    }

    fn collect(map: &FakeMap) -> Result<Vec<(u32, u64)>, BatchError> {
        let mut out = Vec::new();
        let n = walk(map, |k, v| {
            out.push((decode::<u32>(k).unwrap(), decode::<u64>(v).unwrap()))
        })?;
        assert_eq!(n, out.len());
        Ok(out)
    }

    fn spread(entries: u32, per_bucket: usize) -> Vec<Vec<(u32, u64)>> {
        let all: Vec<(u32, u64)> = (0..entries).map(|k| (k, u64::from(k) * 10)).collect();
        all.chunks(per_bucket.max(1)).map(<[_]>::to_vec).collect()
    }

    #[test]
    fn walks_every_entry_once_across_chunks() {
        // (entries, entries per bucket, calls expected)
        let cases = [
            (0, 1, 1),
            (1, 1, 1),
            (FIRST_CHUNK - 1, 1, 1),
            (FIRST_CHUNK, 1, 1),
            (FIRST_CHUNK + 1, 1, 2),
            (3 * FIRST_CHUNK + 7, 3, 4),
        ];
        for (n, per_bucket, calls) in cases {
            let map = FakeMap::new(spread(n, per_bucket));
            let got = collect(&map).unwrap();
            let want: Vec<(u32, u64)> = (0..n).map(|k| (k, u64::from(k) * 10)).collect();
            assert_eq!(got, want, "{n} entries, {per_bucket} per bucket");
            assert_eq!(
                map.calls.get(),
                calls,
                "{n} entries, {per_bucket} per bucket"
            );
        }
    }

    #[test]
    fn a_bucket_bigger_than_the_chunk_grows_it() {
        let mut buckets = spread(10, 2);
        buckets.push((100..100 + 3 * FIRST_CHUNK).map(|k| (k, 1)).collect());
        let map = FakeMap::new(buckets);
        let got = collect(&map).unwrap();
        assert_eq!(got.len(), 10 + 3 * FIRST_CHUNK as usize);
        // 10 entries, then ENOSPC at 4096 and 8192, then the big bucket.
        assert_eq!(map.calls.get(), 4);
    }

    #[test]
    fn a_bucket_beyond_the_largest_chunk_is_an_error() {
        let map = FakeMap::new(vec![(0..MAX_CHUNK + 1).map(|k| (k, 0)).collect()]);
        assert!(matches!(collect(&map), Err(BatchError::BucketTooBig)));
    }

    #[test]
    fn other_errors_stop_the_walk() {
        for errno in [libc::EINVAL, libc::EPERM, libc::EFAULT] {
            let mut map = FakeMap::new(spread(10, 1));
            map.fail = Some(errno);
            match collect(&map) {
                Err(BatchError::Syscall(e)) => assert_eq!(e.raw_os_error(), Some(errno)),
                other => panic!("{errno}: {other:?}"),
            }
        }
    }

    /// A kernel (or a fake) that claims more entries than it was given
    /// room for must not make the walk read past its buffers.
    #[test]
    fn a_count_beyond_the_chunk_is_refused() {
        struct Liar;
        impl LookupBatch for Liar {
            fn key_size(&self) -> usize {
                4
            }
            fn value_size(&self) -> usize {
                8
            }
            fn lookup_batch(
                &self,
                _: Option<&[u8; TOKEN_LEN]>,
                _: &mut [u8; TOKEN_LEN],
                _: &mut [u8],
                _: &mut [u8],
                count: &mut u32,
            ) -> Result<(), i32> {
                *count += 1;
                Err(libc::ENOENT)
            }
        }
        assert!(matches!(
            walk(&Liar, |_, _| {}),
            Err(BatchError::BadCount { .. })
        ));
    }

    #[test]
    fn decoding_checks_the_length() {
        assert_eq!(decode::<u32>(&7u32.to_ne_bytes()), Some(7));
        assert_eq!(decode::<u64>(&[1, 2, 3]), None);
        assert_eq!(decode::<u32>(&[]), None);
        // Unaligned input is fine.
        let bytes = [0u8, 1, 0, 0, 0];
        assert_eq!(
            decode::<u32>(&bytes[1..]),
            Some(u32::from_ne_bytes([1, 0, 0, 0]))
        );
    }
}
