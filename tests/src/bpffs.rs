//! A bpffs of a test's own under /run, for daemons run with `--pin-dir`
//! (the daemon's `ip netns exec` mount namespace has a /sys of its own, so
//! the conventional /sys/fs/bpf would not outlive it). Unmounted on drop,
//! which also frees whatever a failed test left pinned.

use std::{path::PathBuf, process::Command};

use crate::unique_id;

/// A mounted bpffs at `/run/ph-<pid>-<n>-bpffs`.
pub struct PinFs {
    root: PathBuf,
}

impl PinFs {
    /// Mounts a fresh bpffs; fails loudly without the privilege to.
    pub fn new() -> anyhow::Result<PinFs> {
        let root = PathBuf::from(format!(
            "/run/ph-{}-{}-bpffs",
            std::process::id(),
            unique_id()
        ));
        std::fs::create_dir_all(&root)?;
        let out = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&root)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "mounting a bpffs on {} failed (these tests need root): {}",
            root.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(PinFs { root })
    }

    /// The directory to give the daemon as `--pin-dir`.
    pub fn pin_dir(&self) -> PathBuf {
        self.root.join("pinhole")
    }

    /// Everything in the bpffs but the kernel's own `*.debug` files.
    pub fn leftovers(&self) -> anyhow::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(&self.root)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".debug") {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The pins in the pin directory, sorted.
    pub fn pins(&self) -> anyhow::Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(self.pin_dir())?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        names.sort();
        Ok(names)
    }
}

impl Drop for PinFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.root).output();
        let _ = std::fs::remove_dir(&self.root);
    }
}
