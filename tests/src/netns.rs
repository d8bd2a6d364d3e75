//! Network namespaces for tests.

use std::{
    ffi::OsStr,
    fs::File,
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    process::{Child, Command, Output, Stdio},
    sync::Mutex,
    time::Duration,
};

use crate::{daemon::display, require_root, unique_id, Error, Result};

/// `ip netns add` sets up /run/netns on first use; running that concurrently
/// from parallel tests can stack mounts, so additions are serialised.
static ADD_LOCK: Mutex<()> = Mutex::new(());

/// A named network namespace, `ph-<pid>-<n>`. Dropping it kills every process
/// still inside it and deletes it (which also destroys its veth ends).
#[derive(Debug)]
pub struct Netns {
    name: String,
    /// `/run/netns/<name>`, kept open for `setns`.
    handle: File,
}

impl Netns {
    /// Creates a namespace with its loopback up and IPv6 duplicate address
    /// detection off (addresses are usable at once).
    pub fn new() -> Result<Netns> {
        require_root()?;
        let name = format!("ph-{}-{}", std::process::id(), unique_id());
        {
            let _guard = ADD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            run(Command::new("ip").args(["netns", "add", &name]))?;
        }
        let path = format!("/run/netns/{name}");
        let handle = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = Command::new("ip").args(["netns", "del", &name]).output();
                return Err(Error::Io {
                    context: format!("opening {path}"),
                    source: e,
                });
            }
        };
        let ns = Netns { name, handle };
        ns.ip(&["link", "set", "lo", "up"])?;
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0")?;
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0")?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec <name> <program>`: add arguments and run or spawn it.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `program args…` in the namespace; fails unless it exits 0.
    /// Returns its stdout.
    pub fn exec<S: AsRef<OsStr>>(&self, program: &str, args: &[S]) -> Result<String> {
        run(self.command(program).args(args))
    }

    /// Starts `cmd` (usually from [`Netns::command`]). The child is killed when
    /// the returned guard or, at the latest, the namespace is dropped.
    pub fn spawn(&self, cmd: &mut Command) -> Result<NsChild> {
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            cmd: display(cmd),
            source,
        })?;
        Ok(NsChild(child))
    }

    /// `ip -n <name> args…`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec("sysctl", &["-qw", &format!("{key}={value}")])
            .map(drop)
    }

    /// Turns on IPv4 and IPv6 forwarding.
    pub fn enable_forwarding(&self) -> Result<()> {
        self.sysctl("net.ipv4.ip_forward", "1")?;
        self.sysctl("net.ipv6.conf.all.forwarding", "1")
    }

    /// Turns GRO on or off for `dev`. On a veth, GRO runs NAPI on the
    /// receiving end, which veth's XDP transmit (`ndo_xdp_xmit`, a native
    /// XDP redirect to the peer) needs: without XDP or GRO on the receiving
    /// veth, redirected frames are dropped.
    pub fn set_gro(&self, dev: &str, on: bool) -> Result<()> {
        self.exec(
            "ethtool",
            &["-K", dev, "gro", if on { "on" } else { "off" }],
        )
        .map(drop)
    }

    /// Creates a veth pair, `dev` here and `peer_dev` in `peer`, both up.
    /// The pair is created directly in the two namespaces.
    pub fn add_veth(&self, dev: &str, peer: &Netns, peer_dev: &str) -> Result<()> {
        self.ip(&[
            "link", "add", dev, "type", "veth", "peer", "name", peer_dev, "netns", &peer.name,
        ])?;
        self.ip(&["link", "set", dev, "up"])?;
        peer.ip(&["link", "set", peer_dev, "up"])?;
        Ok(())
    }

    /// Adds `cidr` (`192.0.2.1/24`, `2001:db8::1/64`) to `dev`; IPv6 addresses
    /// get `nodad` so they are usable at once.
    pub fn add_addr(&self, dev: &str, cidr: &str) -> Result<()> {
        let mut args = vec!["addr", "add", cidr, "dev", dev];
        if cidr.contains(':') {
            args.push("nodad");
        }
        self.ip(&args).map(drop)
    }

    /// Adds a route to `dest` (`default`, `198.51.100.0/24`, …) via `gateway`.
    pub fn add_route(&self, dest: &str, gateway: &str) -> Result<()> {
        let family = if gateway.contains(':') { "-6" } else { "-4" };
        self.ip(&[family, "route", "add", dest, "via", gateway])
            .map(drop)
    }

    /// Runs `f` on a fresh thread that has entered this namespace. Sockets
    /// created there stay in the namespace when used from any thread.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let fd = self.handle.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: `fd` is an open namespace file for the lifetime of
                // `self`; setns only changes this (short-lived) thread.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    return Err(Error::Io {
                        context: format!("setns into {}", self.name),
                        source: std::io::Error::last_os_error(),
                    });
                }
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// A UDP socket bound to `addr` inside the namespace.
    pub fn udp_socket(&self, addr: SocketAddr) -> Result<UdpSocket> {
        self.run_in(|| UdpSocket::bind(addr))?
            .map_err(Error::io(format!("binding UDP {addr} in {}", self.name)))
    }

    /// A TCP listener on `addr` inside the namespace.
    pub fn tcp_listener(&self, addr: SocketAddr) -> Result<TcpListener> {
        self.run_in(|| TcpListener::bind(addr))?
            .map_err(Error::io(format!(
                "listening on TCP {addr} in {}",
                self.name
            )))
    }

    /// A TCP connection from inside the namespace to `addr`.
    pub fn tcp_connect(&self, addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
        self.run_in(|| TcpStream::connect_timeout(&addr, timeout))?
            .map_err(Error::io(format!(
                "connecting to TCP {addr} from {}",
                self.name
            )))
    }

    /// Pids of the processes inside the namespace (`ip netns pids`).
    pub fn pids(&self) -> Result<Vec<i32>> {
        let out = run(Command::new("ip").args(["netns", "pids", &self.name]))?;
        Ok(out
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let me = std::process::id() as i32;
        if let Ok(pids) = self.pids() {
            for pid in pids.into_iter().filter(|&p| p != me) {
                // SAFETY: plain kill(2) on a pid we just listed.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .output();
    }
}

/// A process started in a namespace; killed and reaped on drop.
#[derive(Debug)]
pub struct NsChild(Child);

impl NsChild {
    pub fn child(&mut self) -> &mut Child {
        &mut self.0
    }

    /// Waits for the process to exit, for at most `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let pid = self.0.id();
        crate::wait_for(&format!("process {pid} to exit"), timeout, || {
            self.0
                .try_wait()
                .map_err(Error::io(format!("waiting for {pid}")))
        })
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Runs `cmd` with stdin closed; fails unless it exits 0. Returns stdout.
pub(crate) fn run(cmd: &mut Command) -> Result<String> {
    let out: Output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            cmd: display(cmd),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            cmd: display(cmd),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
