//! The pin directory (`--pin-dir`, default `/sys/fs/bpf/pinhole`): the XDP
//! program, its maps and one link per interface, pinned on bpffs so that
//! the filter outlives the daemon (`--keep-pinned`) and a restarted daemon
//! adopts it without a gap.
//!
//! ```text
//! /sys/fs/bpf/pinhole/
//!   prog                      the XDP program (for bpftool)
//!   map_<NAME>                each map of the program, by its name
//!   link_<native|skb>_<IF>    the XDP link on interface IF, in that mode
//! ```
//!
//! bpffs reserves names with a dot, so a `.` in a name (e.g. the VLAN
//! interface `eth0.100`) is written `%2e`, and `%` itself `%25`.
//!
//! Removing a link's pin detaches the program from that interface once no
//! process holds the link open. A daemon holds an exclusive `flock` on the
//! directory while it runs, so two daemons never share one, and `pinhole
//! detach` refuses to pull the filter from under a running daemon.

use std::{
    ffi::CString,
    fs, io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::DirBuilderExt},
    },
    path::{Path, PathBuf},
};

use thiserror::Error;
use tracing::{info, warn};

use super::load::XdpMode;

/// `statfs(2)` magic of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// Where bpffs is mounted by convention, and the only place the daemon
/// mounts it.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";
/// The program's pin name.
pub const PROG_PIN: &str = "prog";
const MAP_PREFIX: &str = "map_";
const LINK_PREFIX: &str = "link_";

/// `name` with the characters bpffs does not take in names escaped.
fn escape(name: &str) -> String {
    name.replace('%', "%25").replace('.', "%2e")
}

/// The name [`escape`] was given; `None` for a malformed escape.
fn unescape(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("%25") => out.push('%'),
            Some("%2e") => out.push('.'),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// Failures around the pin directory.
#[derive(Debug, Error)]
pub enum PinDirError {
    #[error(
        "{path} is not on a bpffs (mount one: `mount -t bpf bpf {path}`, or pick a --pin-dir \
         under {BPFFS_ROOT})"
    )]
    NotBpffs { path: PathBuf },
    #[error("mounting bpffs on {BPFFS_ROOT}: {source} (mount it first: `mount -t bpf bpf {BPFFS_ROOT}`)")]
    Mount {
        #[source]
        source: io::Error,
    },
    #[error(
        "the pin directory {path} is in use by a running pinhole daemon; stop it first \
         (or give this one another --pin-dir)"
    )]
    Busy { path: PathBuf },
    #[error("the pin directory must be an absolute path, not `{0}`")]
    Relative(PathBuf),
    #[error(
        "no bpffs is visible at {path} and this process runs in a mount namespace of its own \
         (ip netns exec?): a bpffs mounted here would vanish with it, and --keep-pinned with \
         it; mount bpffs where both the host and this namespace see it and pass a --pin-dir \
         on it, or enter only the network namespace (nsenter --net=…)"
    )]
    PrivateMount { path: PathBuf },
    #[error(
        "the pin directory {0} is the root of a bpffs, shared with other programs; \
         pick a directory of its own (e.g. {BPFFS_ROOT}/pinhole)"
    )]
    FsRoot(PathBuf),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PinDirError + 'a {
    move |source| PinDirError::Io {
        what,
        path: path.into(),
        source,
    }
}

/// Whether `path` lies on a bpffs.
pub fn is_bpffs(path: &Path) -> io::Result<bool> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: an all-zero statfs is a valid value of a plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `st` a writable statfs.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

/// The nearest ancestor of `path` (itself included) that exists.
fn existing_ancestor(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
}

/// Whether this process has a mount namespace of its own, as under `ip
/// netns exec` or a sandboxing unit: not PID 1's or, when PID 1's cannot
/// be read, not its parent's. A bpffs mounted there dies with the
/// namespace, pins and all.
pub fn private_mount_ns() -> bool {
    use std::os::unix::fs::MetadataExt;
    let ns = |pid: &str| {
        fs::metadata(format!("/proc/{pid}/ns/mnt"))
            .ok()
            .map(|m| (m.dev(), m.ino()))
    };
    let Some(me) = ns("self") else {
        return false;
    };
    ns("1")
        .or_else(|| ns(&std::os::unix::process::parent_id().to_string()))
        .is_some_and(|other| other != me)
}

/// What [`ensure_bpffs`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bpffs {
    /// A bpffs was there already.
    Found,
    /// This process mounted one on [`BPFFS_ROOT`]; `private` when in a
    /// mount namespace of its own, where it lasts only as long as the
    /// namespace (see [`private_mount_ns`]).
    Mounted { private: bool },
}

/// Makes sure `dir` can be on bpffs: when it is not, and it lies under
/// [`BPFFS_ROOT`] where nothing is mounted yet, mounts bpffs there
/// (needs CAP_SYS_ADMIN).
pub fn ensure_bpffs(dir: &Path) -> Result<Bpffs, PinDirError> {
    if !dir.is_absolute() {
        return Err(PinDirError::Relative(dir.into()));
    }
    let anchor = existing_ancestor(dir);
    if is_bpffs(anchor).map_err(io_err("checking the filesystem of", anchor))? {
        return Ok(Bpffs::Found);
    }
    let root = Path::new(BPFFS_ROOT);
    if !dir.starts_with(root) || !root.is_dir() {
        return Err(PinDirError::NotBpffs {
            path: anchor.into(),
        });
    }
    let src = CString::new("bpf").expect("no NUL");
    let target = CString::new(BPFFS_ROOT).expect("no NUL");
    let data = CString::new("mode=0700").expect("no NUL");
    // SAFETY: valid C strings; bpffs takes a plain option string.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            src.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(PinDirError::Mount {
            source: io::Error::last_os_error(),
        });
    }
    if !is_bpffs(existing_ancestor(dir)).map_err(io_err("checking the filesystem of", dir))? {
        return Err(PinDirError::NotBpffs { path: dir.into() });
    }
    Ok(Bpffs::Mounted {
        private: private_mount_ns(),
    })
}

/// The name of an attach mode in pin names.
pub fn mode_name(mode: XdpMode) -> &'static str {
    match mode {
        XdpMode::Skb => "skb",
        XdpMode::Native => "native",
    }
}

fn mode_of(name: &str) -> Option<XdpMode> {
    match name {
        "skb" => Some(XdpMode::Skb),
        "native" => Some(XdpMode::Native),
        _ => None,
    }
}

/// One file in the pin directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pinned {
    Prog,
    Map {
        name: String,
    },
    Link {
        mode: XdpMode,
        iface: String,
    },
    /// Not ours (or of an unknown layout): removed by `pinhole detach` only.
    Other {
        name: String,
    },
}

impl Pinned {
    /// What the pin named `name` is.
    pub fn parse(name: &str) -> Pinned {
        let other = || Pinned::Other { name: name.into() };
        if name == PROG_PIN {
            return Pinned::Prog;
        }
        if let Some(map) = name.strip_prefix(MAP_PREFIX).and_then(unescape) {
            return if map.is_empty() {
                other()
            } else {
                Pinned::Map { name: map }
            };
        }
        if let Some(rest) = name.strip_prefix(LINK_PREFIX) {
            if let Some((mode, iface)) = rest.split_once('_') {
                if let (Some(mode), Some(iface)) = (mode_of(mode), unescape(iface)) {
                    if !iface.is_empty() {
                        return Pinned::Link { mode, iface };
                    }
                }
            }
        }
        other()
    }

    /// The pin's file name.
    pub fn file_name(&self) -> String {
        match self {
            Pinned::Prog => PROG_PIN.into(),
            Pinned::Map { name } => format!("{MAP_PREFIX}{}", escape(name)),
            Pinned::Link { mode, iface } => {
                format!("{LINK_PREFIX}{}_{}", mode_name(*mode), escape(iface))
            }
            Pinned::Other { name } => name.clone(),
        }
    }
}

/// The pin directory, locked for this process.
#[derive(Debug)]
pub struct PinDir {
    path: PathBuf,
    /// The directory, `flock`ed (released when closed).
    _lock: OwnedFd,
}

impl PinDir {
    /// Opens (creating it, 0700, with bpffs mounted if needed) and locks the
    /// pin directory for a daemon. `keep`: the pins must outlive the
    /// process, so a bpffs that would not (mounted here in a private mount
    /// namespace) is refused.
    pub fn create(path: &Path, keep: bool) -> Result<PinDir, PinDirError> {
        match ensure_bpffs(path)? {
            Bpffs::Mounted { private: true } if keep => {
                return Err(PinDirError::PrivateMount { path: path.into() })
            }
            Bpffs::Mounted { private: true } => warn!(
                "no bpffs was visible, so one was mounted on {BPFFS_ROOT} in this process's \
                 own mount namespace: the pins go with the process"
            ),
            Bpffs::Mounted { private: false } => {
                info!("mounted bpffs on {BPFFS_ROOT}")
            }
            Bpffs::Found => {}
        }
        if !path.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(io_err("creating the pin directory", path))?;
        }
        check_own_dir(path)?;
        Self::lock(path)
    }

    /// Opens and locks an existing pin directory; `None` when there is none.
    pub fn open(path: &Path) -> Result<Option<PinDir>, PinDirError> {
        if !path.is_absolute() {
            return Err(PinDirError::Relative(path.into()));
        }
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {
                check_own_dir(path)?;
                Self::lock(path).map(Some)
            }
            Ok(_) => Err(PinDirError::Io {
                what: "opening the pin directory",
                path: path.into(),
                source: io::Error::from_raw_os_error(libc::ENOTDIR),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("opening the pin directory", path)(e)),
        }
    }

    fn lock(path: &Path) -> Result<PinDir, PinDirError> {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|e| PinDirError::Io {
            what: "opening the pin directory",
            path: path.into(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })?;
        // SAFETY: a valid C string; the fd is checked and then owned.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io_err("opening the pin directory", path)(
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `fd` was just opened and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: flock on an open fd.
        if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                PinDirError::Busy { path: path.into() }
            } else {
                io_err("locking the pin directory", path)(e)
            });
        }
        Ok(PinDir {
            path: path.into(),
            _lock: fd,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of a pin.
    pub fn pin_path(&self, pin: &Pinned) -> PathBuf {
        self.path.join(pin.file_name())
    }

    /// What is pinned, sorted by file name.
    pub fn entries(&self) -> Result<Vec<Pinned>, PinDirError> {
        let read = io_err("reading the pin directory", &self.path);
        let mut names: Vec<String> = Vec::new();
        for e in fs::read_dir(&self.path).map_err(read)? {
            let e = e.map_err(io_err("reading the pin directory", &self.path))?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names.iter().map(|n| Pinned::parse(n)).collect())
    }

    /// Removes one pin (a missing one is fine). Removing a link's pin
    /// detaches it unless a process still holds it.
    pub fn remove(&self, pin: &Pinned) -> Result<(), PinDirError> {
        let path = self.pin_path(pin);
        let result = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
            Ok(_) => fs::remove_file(&path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        result.map_err(|source| PinDirError::Io {
            what: "removing the pin",
            path,
            source,
        })
    }

    /// Removes every pin of ours, links first (so the program stops
    /// filtering before its maps go), then the directory itself unless
    /// something else was left in it. Returns what was removed.
    pub fn clear(self) -> Result<Vec<Pinned>, PinDirError> {
        let mut pins = self.entries()?;
        pins.retain(|p| !matches!(p, Pinned::Other { .. }));
        pins.sort_by_key(|p| match p {
            Pinned::Link { .. } => 0,
            Pinned::Prog => 1,
            _ => 2,
        });
        for p in &pins {
            self.remove(p)?;
        }
        match fs::remove_dir(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
                warn!(pin_dir = %self.path.display(), "files that are not pinhole's are left in the pin directory");
            }
            Err(source) => {
                return Err(PinDirError::Io {
                    what: "removing the pin directory",
                    path: self.path.clone(),
                    source,
                })
            }
        }
        Ok(pins)
    }
}

/// Refuses a pin directory that is not on bpffs or is a bpffs's root.
fn check_own_dir(path: &Path) -> Result<(), PinDirError> {
    if !is_bpffs(path).map_err(io_err("checking the filesystem of", path))? {
        return Err(PinDirError::NotBpffs { path: path.into() });
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    if !is_bpffs(parent).map_err(io_err("checking the filesystem of", parent))? {
        return Err(PinDirError::FsRoot(path.into()));
    }
    Ok(())
}

/// `bpf(2)`.
fn sys_bpf(cmd: libc::c_int, attr: &mut [u64], size: usize) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a zeroed buffer of at least `size` bytes laid out as
    // the command expects.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), size) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

const BPF_OBJ_GET: libc::c_int = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;

/// Opens a pinned object (`BPF_OBJ_GET`).
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // union bpf_attr { __u64 pathname; __u32 bpf_fd; __u32 file_flags; … }
    let mut attr = [0u64; 4];
    attr[0] = c.as_ptr() as u64;
    let fd = sys_bpf(BPF_OBJ_GET, &mut attr, 16)?;
    // SAFETY: the kernel returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// What the kernel tells about a pinned XDP link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// `BPF_LINK_TYPE_*` (6 = XDP).
    pub link_type: u32,
    pub id: u32,
    pub prog_id: u32,
    /// The interface, 0 once it went away (the link is then defunct).
    pub ifindex: u32,
}

/// `BPF_LINK_TYPE_XDP`.
pub const BPF_LINK_TYPE_XDP: u32 = 6;

/// The info of the link pinned at `path`.
pub fn link_info(path: &Path) -> io::Result<LinkInfo> {
    let fd = obj_get(path)?;
    // struct bpf_link_info { __u32 type, id, prog_id; union (8-aligned,
    // at offset 16) { …; struct { __u32 ifindex; } xdp; … } }
    let mut info = [0u64; 16];
    let mut attr = [0u64; 2];
    attr[0] = fd.as_raw_fd() as u32 as u64 | ((std::mem::size_of_val(&info) as u64) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr, 16)?;
    let lo = |w: u64| w as u32;
    let hi = |w: u64| (w >> 32) as u32;
    Ok(LinkInfo {
        link_type: lo(info[0]),
        id: hi(info[0]),
        prog_id: lo(info[1]),
        ifindex: lo(info[2]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_names_round_trip_and_strangers_are_other() {
        let cases: &[(&str, Pinned)] = &[
            ("prog", Pinned::Prog),
            (
                "map_PINHOLE_FLOWS4",
                Pinned::Map {
                    name: "PINHOLE_FLOWS4".into(),
                },
            ),
            (
                "link_native_r-out",
                Pinned::Link {
                    mode: XdpMode::Native,
                    iface: "r-out".into(),
                },
            ),
            (
                "link_skb_eth0%2e100",
                Pinned::Link {
                    mode: XdpMode::Skb,
                    iface: "eth0.100".into(),
                },
            ),
            (
                "link_native_a_b%25c",
                Pinned::Link {
                    mode: XdpMode::Native,
                    iface: "a_b%c".into(),
                },
            ),
        ];
        for (name, want) in cases {
            assert_eq!(&Pinned::parse(name), want, "{name}");
            assert_eq!(want.file_name(), *name);
        }
        for name in [
            "map_",
            "map_a%zz",
            "link_native_",
            "link_turbo_eth0",
            "link_native",
            "link_skb_eth%2",
            "progs",
            "tc_link",
            "",
        ] {
            assert_eq!(
                Pinned::parse(name),
                Pinned::Other { name: name.into() },
                "{name:?}"
            );
        }
    }

    #[test]
    fn only_bpffs_under_the_root_is_mounted() {
        // A relative path, and a directory that is not on bpffs and not
        // under /sys/fs/bpf, are refused without mounting anything.
        assert!(matches!(
            ensure_bpffs(Path::new("bpf/pinhole")),
            Err(PinDirError::Relative(_))
        ));
        let tmp = std::env::temp_dir().join("pinhole-not-bpffs");
        assert!(matches!(
            ensure_bpffs(&tmp),
            Err(PinDirError::NotBpffs { .. })
        ));
        assert!(!is_bpffs(&std::env::temp_dir()).unwrap());
        assert!(PinDir::open(Path::new("relative")).is_err());
        assert!(PinDir::open(&tmp.join("missing")).unwrap().is_none());
    }

    #[test]
    fn one_holder_at_a_time_and_clear_leaves_strangers() {
        // Not on bpffs: the lock and the listing work all the same.
        let dir = std::env::temp_dir().join(format!("pinhole-pinlock-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert!(matches!(
            PinDir::open(&dir).unwrap_err(),
            PinDirError::NotBpffs { .. }
        ));
        let held = PinDir::lock(&dir).unwrap();
        let err = PinDir::lock(&dir).unwrap_err();
        assert!(matches!(err, PinDirError::Busy { .. }), "{err}");
        assert!(err.to_string().contains("running pinhole daemon"), "{err}");
        drop(held);
        let again = PinDir::lock(&dir).unwrap();
        fs::write(dir.join("map_X"), b"").unwrap();
        fs::write(dir.join("stray"), b"").unwrap();
        assert_eq!(
            again.entries().unwrap(),
            [
                Pinned::Map { name: "X".into() },
                Pinned::Other {
                    name: "stray".into()
                }
            ]
        );
        assert_eq!(again.clear().unwrap(), [Pinned::Map { name: "X".into() }]);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "the stranger stays");
        fs::remove_dir_all(&dir).unwrap();
    }
}
