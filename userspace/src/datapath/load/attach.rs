//! Loading the programs and attaching them: links made, adopted from pins,
//! pinned, and why an attach failed.

use std::{
    io,
    path::{Path, PathBuf},
};

use aya::{
    programs::{
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
        ProgramError, Xdp, XdpMode as AyaXdpMode,
    },
    Ebpf,
};
use tracing::{error, info};

use super::{errno, is_permission};
use crate::datapath::error::LoadError;

/// How the program is attached to one interface.
pub(super) enum Link {
    /// Pinned: stays attached after the process ends until the pin is
    /// removed. Holds the link's fd.
    Pinned { fd: FdLink, path: PathBuf },
    /// Not pinned (no pin directory, or a netlink attachment on a kernel
    /// without bpf_link): dropping it detaches.
    Owned(XdpLink),
}

/// One attachment.
pub(super) struct Attachment {
    pub(super) iface: String,
    pub(super) link: Option<Link>,
}

impl Attachment {
    /// Lets go of the link: `keep` leaves a pinned one attached, else it is
    /// unpinned and detached.
    pub(super) fn release(&mut self, keep: bool) {
        match self.link.take() {
            Some(Link::Pinned { fd, path }) if keep => {
                drop(fd);
                info!(iface = %self.iface, pin = %path.display(), "XDP program left attached (pinned)");
            }
            Some(Link::Pinned { fd, path }) => {
                if let Err(e) = std::fs::remove_file(&path) {
                    if e.kind() != io::ErrorKind::NotFound {
                        error!(iface = %self.iface, pin = %path.display(), "unpinning the XDP link failed, it stays attached: {e}");
                    }
                }
                drop(fd);
                info!(iface = %self.iface, "XDP program detached");
            }
            Some(Link::Owned(link)) => {
                drop(link);
                info!(iface = %self.iface, "XDP program detached");
            }
            None => {}
        }
    }
}

pub(super) fn program_mut<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut Xdp, LoadError> {
    ebpf.program_mut(name)
        .ok_or(LoadError::Missing {
            what: "program",
            name,
        })?
        .try_into()
        .map_err(LoadError::Program)
}

/// Loads the XDP program `name` into the kernel (verifier included).
pub(super) fn load_program(ebpf: &mut Ebpf, name: &'static str) -> Result<(), LoadError> {
    program_mut(ebpf, name)?.load().map_err(|e| match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            if matches!(io_error.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
                LoadError::PermissionDenied
            } else {
                error!("verifier log:\n{verifier_log}");
                LoadError::Verifier { errno: io_error }
            }
        }
        e if is_permission(&e) => LoadError::PermissionDenied,
        e => LoadError::Program(e),
    })
}

/// Swaps the program of the link pinned at `path` for `program`, if the
/// link is an XDP link still attached to `ifindex`; `None` when it is not
/// (defunct, or another interface now has that name).
pub(super) fn adopt_link(
    program: &mut Xdp,
    path: &Path,
    ifindex: u32,
) -> Result<Option<FdLink>, LoadError> {
    let adopt = |message: String| LoadError::Adopt {
        path: path.into(),
        message,
    };
    let info = crate::datapath::pin::link_info(path).map_err(|e| adopt(e.to_string()))?;
    if info.link_type != crate::datapath::pin::BPF_LINK_TYPE_XDP || info.ifindex != ifindex {
        return Ok(None);
    }
    let pinned = PinnedLink::from_pin(path).map_err(|e| adopt(e.to_string()))?;
    let link = XdpLink::try_from(FdLink::from(pinned)).map_err(|e| adopt(e.to_string()))?;
    let id = program
        .attach_to_link(link)
        .map_err(|e| adopt(format!("replacing its program: {e}")))?;
    let link = program.take_link(id).map_err(LoadError::Program)?;
    FdLink::try_from(link)
        .map(Some)
        .map_err(|e| adopt(e.to_string()))
}

/// Pins a new link. A netlink attachment (kernels before 5.9, without XDP
/// bpf_link) cannot be pinned: refused.
pub(super) fn pin_link(link: XdpLink, path: PathBuf, iface: &str) -> Result<Link, LoadError> {
    match FdLink::try_from(link) {
        Ok(fd) => {
            let pinned = fd.pin(&path).map_err(|e| LoadError::Pin {
                what: format!("the XDP link of {iface}"),
                path: path.clone(),
                message: e.to_string(),
            })?;
            Ok(Link::Pinned {
                fd: pinned.into(),
                path,
            })
        }
        Err(e) => Err(LoadError::Pin {
            what: format!("the XDP link of {iface}"),
            path,
            message: format!("{e} (a netlink attachment: this kernel lacks XDP bpf_link)"),
        }),
    }
}

pub(super) fn attach_error(iface: &str, mode: AyaXdpMode, e: ProgramError) -> LoadError {
    match errno(&e) {
        Some(libc::EBUSY | libc::EEXIST) => LoadError::AlreadyAttached(iface.to_string()),
        Some(libc::EOPNOTSUPP) if mode == AyaXdpMode::Driver => {
            LoadError::NativeUnsupported(iface.to_string())
        }
        Some(libc::EPERM | libc::EACCES) => LoadError::PermissionDenied,
        Some(libc::ENODEV) => LoadError::NoSuchInterface(iface.to_string()),
        _ => LoadError::Attach {
            iface: iface.to_string(),
            source: e,
        },
    }
}
