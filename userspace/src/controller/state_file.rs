//! The state file (`--state-file`, default `/run/pinhole/state.json`): what
//! a restarted daemon needs, besides the pinned maps, to take over from the
//! one before it: the pinhole table (ids, endpoints, owners and their
//! claims, times) and the call state (SIP calls with their dialogs and
//! negotiated media, RTSP sessions).
//!
//! The file is JSON with a `format` tag and a `version`. A daemon reads only
//! [`VERSION`]; any change to what the file holds, including the call
//! state's fields (which are serialized as they are), must bump it. Times
//! are CLOCK_MONOTONIC nanoseconds, the clock of the XDP program's
//! `last_seen_ns`, so the file carries the boot id and is refused in another
//! boot (neither it nor the pinned maps survive a reboot anyway in
//! `/run` and bpffs).
//!
//! Writes are atomic: a temporary file in the same directory, fsync, rename
//! over the file, fsync of the directory. A [`StateWriter`] thread does them
//! off the controller's task, keeping only the newest snapshot when writes
//! fall behind. It also serialises the snapshot
//! ([`StateWriter::submit_with`]): the controller only takes it, which is
//! O(1) for the table.

use std::{
    collections::BTreeMap,
    fs,
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::{info, warn};

use crate::{
    addr::Endpoint,
    calls::CallsSnapshot,
    controller::table::{Claim, OwnerTag, Pinhole},
};

/// The `format` tag of a state file.
pub const FORMAT: &str = "pinhole-state";
/// The version of the state format this build reads and writes.
pub const VERSION: u64 = 1;
/// Largest state file read (a full table of 16 M flows is far less).
pub const MAX_STATE_SIZE: u64 = 1 << 30;
/// Where the kernel tells the boot id.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// Failures reading, writing or removing the state file.
#[derive(Debug, Error)]
pub enum StateError {
    #[error("reading the state file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the state file {path} is {size} bytes, more than the {MAX_STATE_SIZE}-byte limit; \
         the pinned filter is left in place (`pinhole detach` removes it)"
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error(
        "{path} is not a pinhole state file ({detail}); the pinned filter is left in place: \
         point --state-file at the right file, or `pinhole detach` to start over"
    )]
    NotState { path: PathBuf, detail: String },
    #[error(
        "the state file {path} has format version {found}, this pinhole reads version {VERSION} \
         only; the pinned filter and its maps are left in place: run the pinhole that wrote it, \
         or `pinhole detach` to start over"
    )]
    Version { path: PathBuf, found: u64 },
    #[error(
        "the state file {path} was written in another boot (boot id {found}, now {now}); \
         its times mean nothing now; the pinned filter is left in place (`pinhole detach` \
         removes it and the file)"
    )]
    OtherBoot {
        path: PathBuf,
        found: String,
        now: String,
    },
    #[error(
        "the state file {path} is corrupt ({source}); the pinned filter is left in place \
         (`pinhole detach` removes it and the file)"
    )]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing the state file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("removing the state file {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the state file {path} was not written within {after:?}")]
    Timeout { path: PathBuf, after: Duration },
    #[error("the state writer for {path} has stopped")]
    Stopped { path: PathBuf },
}

/// One owner's claim on a saved pinhole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedClaim {
    /// `None`: the operator (`manual`); else e.g. `sip:<call-id>;from-tag=…`.
    pub owner: OwnerTag,
    /// 0 = never idle out.
    pub idle_timeout_secs: u64,
    pub rtcp: bool,
}

/// One saved pinhole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPinhole {
    pub id: u64,
    pub a: Endpoint,
    pub b: Endpoint,
    /// CLOCK_MONOTONIC ns of the first open.
    pub created_ns: u64,
    /// CLOCK_MONOTONIC ns of the latest activity known when saved (the
    /// flows' `last_seen_ns` in the map may be newer).
    pub active_ns: u64,
    pub claims: Vec<SavedClaim>,
}

impl SavedPinhole {
    pub fn of(p: &Pinhole) -> Self {
        SavedPinhole {
            id: p.id.0,
            a: p.pair.a(),
            b: p.pair.b(),
            created_ns: p.created_ns,
            active_ns: p.active_ns,
            claims: p
                .claims
                .iter()
                .map(|(owner, c)| SavedClaim {
                    owner: owner.clone(),
                    idle_timeout_secs: c.idle_timeout_secs,
                    rtcp: c.rtcp,
                })
                .collect(),
        }
    }

    /// The claims by owner (a repeated owner: the last one wins).
    pub fn claims(&self) -> BTreeMap<OwnerTag, Claim> {
        self.claims
            .iter()
            .map(|c| {
                (
                    c.owner.clone(),
                    Claim {
                        idle_timeout_secs: c.idle_timeout_secs,
                        rtcp: c.rtcp,
                    },
                )
            })
            .collect()
    }
}

/// The state file's content.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] when written by this build.
    pub version: u64,
    /// The boot it was written in (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// Who wrote it and when (for operators).
    pub pid: u32,
    pub written_unix_secs: u64,
    /// The id the writer's next new pinhole would have got.
    pub next_id: u64,
    pub pinholes: Vec<SavedPinhole>,
    pub calls: CallsSnapshot,
}

impl State {
    /// A state of this build, boot and process.
    pub fn new(next_id: u64, pinholes: Vec<SavedPinhole>, calls: CallsSnapshot) -> Self {
        State {
            format: FORMAT.into(),
            version: VERSION,
            boot_id: boot_id(),
            pid: std::process::id(),
            written_unix_secs: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            next_id,
            pinholes,
            calls,
        }
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).expect("the state serializes");
        v.push(b'\n');
        v
    }

    /// Parses a state file's bytes, refusing another format, version or
    /// boot (`boot` is the current boot id).
    pub fn parse(path: &Path, bytes: &[u8], boot: &str) -> Result<State, StateError> {
        #[derive(Deserialize)]
        struct Header {
            format: Option<String>,
            version: Option<serde_json::Value>,
            boot_id: Option<String>,
        }
        let not_state = |detail: String| StateError::NotState {
            path: path.into(),
            detail,
        };
        let header: Header = serde_json::from_slice(bytes)
            .map_err(|e| not_state(format!("not a JSON object: {e}")))?;
        match header.format.as_deref() {
            Some(FORMAT) => {}
            Some(other) => return Err(not_state(format!("format `{other}`"))),
            None => return Err(not_state("no `format`".into())),
        }
        let found = match header.version {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            _ => None,
        }
        .ok_or_else(|| not_state("no numeric `version`".into()))?;
        if found != VERSION {
            return Err(StateError::Version {
                path: path.into(),
                found,
            });
        }
        let found_boot = header.boot_id.unwrap_or_default();
        if found_boot != boot {
            return Err(StateError::OtherBoot {
                path: path.into(),
                found: found_boot,
                now: boot.into(),
            });
        }
        serde_json::from_slice(bytes).map_err(|source| StateError::Corrupt {
            path: path.into(),
            source,
        })
    }
}

/// The current boot id (empty when the kernel does not tell).
pub fn boot_id() -> String {
    fs::read_to_string(BOOT_ID_PATH)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Reads the state file at `path`; `None` when there is none.
pub fn load(path: &Path) -> Result<Option<State>, StateError> {
    let read = |source| StateError::Read {
        path: path.into(),
        source,
    };
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read(e)),
    };
    if !meta.is_file() {
        return Err(StateError::NotState {
            path: path.into(),
            detail: "not a regular file".into(),
        });
    }
    if meta.len() > MAX_STATE_SIZE {
        return Err(StateError::TooLarge {
            path: path.into(),
            size: meta.len(),
        });
    }
    let bytes = fs::read(path).map_err(read)?;
    State::parse(path, &bytes, &boot_id()).map(Some)
}

/// Removes the state file (and a temporary file a crash left next to it).
/// Returns whether the file was there.
pub fn remove(path: &Path) -> Result<bool, StateError> {
    let _ = fs::remove_file(temp_path(path));
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StateError::Remove {
            path: path.into(),
            source,
        }),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Replaces the file at `path` with `bytes` atomically: readers see the old
/// or the new content, never a mix, even across a crash or power loss.
/// Creates the directory (0750) if needed; the file is 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let fail = |source| StateError::Write {
        path: path.into(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .map_err(fail)?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

/// Builds the bytes of one snapshot, on the writer thread.
type Job = Box<dyn FnOnce() -> Vec<u8> + Send>;

#[derive(Default)]
struct Slot {
    /// The newest snapshot not written yet, with its sequence number.
    next: Option<(u64, Job)>,
    /// How long the newest snapshot took to serialise.
    build_cost: Duration,
    /// Sequence numbers handed out and finished (written or failed).
    submitted: u64,
    done: u64,
    /// The error of the newest finished write, if it failed.
    error: Option<String>,
    stop: bool,
}

struct Shared {
    path: PathBuf,
    slot: Mutex<Slot>,
    cv: Condvar,
}

/// Writes snapshots of the state to the state file on its own thread, the
/// newest first: a snapshot submitted while an older one waits replaces it.
pub struct StateWriter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl StateWriter {
    /// Starts the writer thread for `path`.
    pub fn start(path: &Path) -> io::Result<StateWriter> {
        let shared = Arc::new(Shared {
            path: path.into(),
            slot: Mutex::new(Slot::default()),
            cv: Condvar::new(),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("pinhole-state".into())
            .spawn(move || write_loop(&worker))?;
        Ok(StateWriter {
            shared,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Queues `bytes` for writing; returns its sequence number.
    pub fn submit(&self, bytes: Vec<u8>) -> u64 {
        self.submit_with(move || bytes)
    }

    /// Queues a snapshot whose bytes `build` makes on the writer thread;
    /// returns its sequence number. Snapshots are written in the order
    /// submitted; one still waiting when a newer one comes is dropped
    /// unbuilt.
    pub fn submit_with(&self, build: impl FnOnce() -> Vec<u8> + Send + 'static) -> u64 {
        let mut slot = self.shared.slot.lock().expect("state writer lock");
        slot.submitted += 1;
        let seq = slot.submitted;
        slot.next = Some((seq, Box::new(build)));
        self.shared.cv.notify_all();
        seq
    }

    /// How long the newest snapshot written took to build (serialise).
    pub fn build_cost(&self) -> Duration {
        self.shared
            .slot
            .lock()
            .expect("state writer lock")
            .build_cost
    }

    /// Waits until the snapshot `seq` (or a newer one) is written, for at
    /// most `timeout`. Fails if that write failed.
    pub fn wait(&self, seq: u64, timeout: Duration) -> Result<(), StateError> {
        let deadline = Instant::now() + timeout;
        let mut slot = self.shared.slot.lock().expect("state writer lock");
        while slot.done < seq {
            if slot.stop {
                return Err(StateError::Stopped {
                    path: self.shared.path.clone(),
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StateError::Timeout {
                    path: self.shared.path.clone(),
                    after: timeout,
                });
            }
            slot = self
                .shared
                .cv
                .wait_timeout(slot, left)
                .expect("state writer lock")
                .0;
        }
        match &slot.error {
            Some(e) => Err(StateError::Write {
                path: self.shared.path.clone(),
                source: io::Error::other(e.clone()),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for StateWriter {
    fn drop(&mut self) {
        self.shared.slot.lock().expect("state writer lock").stop = true;
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_loop(shared: &Shared) {
    let mut failing = false;
    loop {
        let (seq, build) = {
            let mut slot = shared.slot.lock().expect("state writer lock");
            loop {
                if let Some(next) = slot.next.take() {
                    break next;
                }
                if slot.stop {
                    return;
                }
                slot = shared.cv.wait(slot).expect("state writer lock");
            }
        };
        let started = Instant::now();
        let bytes = build();
        let build_cost = started.elapsed();
        let result = write_atomic(&shared.path, &bytes);
        drop(bytes);
        match &result {
            Err(e) if !failing => {
                warn!("{e}; a restarted daemon would find older state");
                failing = true;
            }
            Ok(()) if failing => {
                info!(path = %shared.path.display(), "state file written again");
                failing = false;
            }
            _ => {}
        }
        let mut slot = shared.slot.lock().expect("state writer lock");
        slot.done = slot.done.max(seq);
        slot.build_cost = build_cost;
        slot.error = result.err().map(|e| e.to_string());
        shared.cv.notify_all();
    }
}

#[cfg(test)]
mod tests;
