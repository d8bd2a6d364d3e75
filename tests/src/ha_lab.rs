//! The HA topology: two routers between an outside and an inside host,
//! each segment a bridge in a namespace of its own, Redis in a management
//! namespace, and keepalived (VRRP) moving the hosts' gateway addresses.
//!
//! ```text
//!  outside 192.0.2.2 ── [sw-out br0] ──┬── A r-out 192.0.2.11   A r-in 198.51.100.11 ──┬── [sw-in br0] ── inside 198.51.100.2
//!  gw 192.0.2.1 (VIP)                  └── B r-out 192.0.2.12   B r-in 198.51.100.12 ──┘                 gw 198.51.100.1 (VIP)
//!                       A r-mgmt 203.0.113.11, B r-mgmt 203.0.113.12 ── [mgmt br0 203.0.113.5: redis-server]
//! ```
//!
//! IPv4 only: VRRP and the replication do not depend on the family (the
//! schema's unit tests cover IPv6 records).

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    bpffs::PinFs, daemon::pinhole_bin, netns::NsChild, traffic, wait_for, Daemon, Error, Netns,
    Result, TempDir,
};

pub const OUTSIDE: &str = "192.0.2.2";
pub const INSIDE: &str = "198.51.100.2";
pub const VIP_OUT: &str = "192.0.2.1";
pub const VIP_IN: &str = "198.51.100.1";
pub const REDIS: &str = "203.0.113.5";
pub const REDIS_PORT: u16 = 6379;
/// The ACL user pinhole authenticates as (the default user is off).
pub const REDIS_USER: &str = "pinhole";
pub const REDIS_PASSWORD: &str = "s3cret-for-tests";

/// One router of the pair.
pub struct Router {
    pub name: &'static str,
    pub ns: Netns,
    pub out_addr: &'static str,
    pub in_addr: &'static str,
    pub mgmt_addr: &'static str,
    pub pins: PinFs,
    pub daemon: Option<Daemon>,
    pub keepalived: Option<NsChild>,
    priority: u8,
}

impl Router {
    pub const OUT_IF: &'static str = "r-out";
    pub const IN_IF: &'static str = "r-in";
    pub const MGMT_IF: &'static str = "r-mgmt";

    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("the router's daemon runs")
    }

    /// Whether it holds the outside VIP now.
    pub fn holds_vip(&self) -> Result<bool> {
        let out = self.ns.ip(&["-4", "addr", "show", "dev", Self::OUT_IF])?;
        Ok(out.contains(&format!("{VIP_OUT}/")))
    }
}

/// The whole lab.
pub struct HaLab {
    pub outside: Netns,
    pub inside: Netns,
    pub sw_out: Netns,
    pub sw_in: Netns,
    pub mgmt: Netns,
    pub a: Router,
    pub b: Router,
    pub redis: Option<NsChild>,
    pub dir: TempDir,
}

fn bridge(ns: &Netns, ports: &[&str]) -> Result<()> {
    ns.ip(&["link", "add", "br0", "type", "bridge"])?;
    for p in ports {
        ns.ip(&["link", "set", p, "master", "br0"])?;
    }
    ns.ip(&["link", "set", "br0", "up"])?;
    Ok(())
}

impl HaLab {
    pub fn new() -> Result<HaLab> {
        let router = |name, out_addr, in_addr, mgmt_addr, priority| -> Result<Router> {
            let ns = Netns::new()?;
            ns.enable_forwarding()?;
            Ok(Router {
                name,
                ns,
                out_addr,
                in_addr,
                mgmt_addr,
                pins: PinFs::new().map_err(|e| Error::Setup(e.to_string()))?,
                daemon: None,
                keepalived: None,
                priority,
            })
        };
        let lab = HaLab {
            outside: Netns::new()?,
            inside: Netns::new()?,
            sw_out: Netns::new()?,
            sw_in: Netns::new()?,
            mgmt: Netns::new()?,
            a: router("rtr-a", "192.0.2.11", "198.51.100.11", "203.0.113.11", 200)?,
            b: router("rtr-b", "192.0.2.12", "198.51.100.12", "203.0.113.12", 100)?,
            redis: None,
            dir: TempDir::new()?,
        };
        lab.outside.add_veth("eth0", &lab.sw_out, "p-host")?;
        lab.inside.add_veth("eth0", &lab.sw_in, "p-host")?;
        for (r, tag) in [(&lab.a, "a"), (&lab.b, "b")] {
            r.ns.add_veth(Router::OUT_IF, &lab.sw_out, &format!("p-{tag}"))?;
            r.ns.add_veth(Router::IN_IF, &lab.sw_in, &format!("p-{tag}"))?;
            r.ns.add_veth(Router::MGMT_IF, &lab.mgmt, &format!("p-{tag}"))?;
            r.ns.add_addr(Router::OUT_IF, &format!("{}/24", r.out_addr))?;
            r.ns.add_addr(Router::IN_IF, &format!("{}/24", r.in_addr))?;
            r.ns.add_addr(Router::MGMT_IF, &format!("{}/24", r.mgmt_addr))?;
        }
        bridge(&lab.sw_out, &["p-host", "p-a", "p-b"])?;
        bridge(&lab.sw_in, &["p-host", "p-a", "p-b"])?;
        bridge(&lab.mgmt, &["p-a", "p-b"])?;
        lab.mgmt.add_addr("br0", &format!("{REDIS}/24"))?;
        lab.outside.add_addr("eth0", &format!("{OUTSIDE}/24"))?;
        lab.inside.add_addr("eth0", &format!("{INSIDE}/24"))?;
        lab.outside.add_route("default", VIP_OUT)?;
        lab.inside.add_route("default", VIP_IN)?;
        Ok(lab)
    }

    pub fn redis_url(&self) -> String {
        format!("redis://{REDIS_USER}:{REDIS_PASSWORD}@{REDIS}:{REDIS_PORT}/0")
    }

    /// Starts redis-server in the management namespace (no persistence, an
    /// ACL user for pinhole, the default user off) and waits for PONG.
    pub fn start_redis(&mut self) -> Result<()> {
        let mut cmd = self.mgmt.command("redis-server");
        cmd.args([
            "--bind",
            REDIS,
            "--port",
            &REDIS_PORT.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
            "--dir",
        ])
        .arg(self.dir.path())
        .args([
            "--user",
            "default",
            "off",
            "--user",
            REDIS_USER,
            "on",
            &format!(">{REDIS_PASSWORD}"),
            "~pinhole:*",
            "&pinhole:*",
            "+@all",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        self.redis = Some(self.mgmt.spawn(&mut cmd)?);
        wait_for("redis to answer PING", Duration::from_secs(10), || {
            Ok(self
                .redis_cli(&["PING"])
                .ok()
                .filter(|o| o.trim() == "PONG")
                .map(drop))
        })
    }

    /// `redis-cli` as pinhole's user; stdout.
    pub fn redis_cli(&self, args: &[&str]) -> Result<String> {
        let mut full = vec![
            "-h",
            REDIS,
            "-p",
            "6379",
            "--user",
            REDIS_USER,
            "--pass",
            REDIS_PASSWORD,
            "--no-auth-warning",
        ];
        full.extend_from_slice(args);
        self.mgmt.exec("redis-cli", &full)
    }

    /// Kills redis-server (SIGKILL: a crash, nothing saved).
    pub fn kill_redis(&mut self) -> Result<()> {
        if let Some(mut r) = self.redis.take() {
            r.child().kill().map_err(Error::io("killing redis"))?;
            r.wait_timeout(Duration::from_secs(5))?;
        }
        Ok(())
    }

    /// The keepalived configuration of `r`: one VRRP instance per segment
    /// in a sync group, the notify script promoting pinhole on MASTER.
    fn keepalived_conf(&self, r: &Router) -> String {
        let control = r
            .daemon
            .as_ref()
            .map(|d| d.control().display().to_string())
            .unwrap_or_default();
        let notify = if control.is_empty() {
            String::new()
        } else {
            format!(
                "    notify_master \"{} --control {control} ha promote\"\n",
                pinhole_bin().display()
            )
        };
        let instance = |name: &str, iface: &str, vrid: u8, vip: &str| {
            format!(
                "vrrp_instance {name} {{\n    state BACKUP\n    interface {iface}\n    \
                 virtual_router_id {vrid}\n    priority {}\n    advert_int 1\n    \
                 virtual_ipaddress {{\n        {vip}/24\n    }}\n}}\n",
                r.priority
            )
        };
        format!(
            "global_defs {{\n    router_id {}\n    enable_script_security\n    script_user root\n    \
             vrrp_garp_master_repeat 3\n    vrrp_garp_master_refresh 0\n}}\n\
             vrrp_sync_group PINHOLE {{\n    group {{\n        OUT\n        IN\n    }}\n{notify}}}\n{}{}",
            r.name,
            instance("OUT", Router::OUT_IF, 51, VIP_OUT),
            instance("IN", Router::IN_IF, 52, VIP_IN),
        )
    }

    /// Starts keepalived on router `which` ('a' or 'b').
    pub fn start_keepalived(&mut self, which: char) -> Result<()> {
        let r = if which == 'a' { &self.a } else { &self.b };
        let dir = self.dir.path().join(format!("keepalived-{}", r.name));
        std::fs::create_dir_all(&dir).map_err(Error::io("creating keepalived's dir"))?;
        let conf = dir.join("keepalived.conf");
        std::fs::write(&conf, self.keepalived_conf(r))
            .map_err(Error::io("writing keepalived.conf"))?;
        let p = |f: &str| -> PathBuf { dir.join(f) };
        let mut cmd = r.ns.command("keepalived");
        cmd.args(["--dont-fork", "--vrrp", "--log-console", "--use-file"])
            .arg(&conf)
            .arg("--pid")
            .arg(p("keepalived.pid"))
            .arg("--vrrp_pid")
            .arg(p("vrrp.pid"))
            .arg("--checkers_pid")
            .arg(p("checkers.pid"))
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::File::create(p("keepalived.log"))
                    .map_err(Error::io("creating keepalived.log"))?,
            );
        let child = r.ns.spawn(&mut cmd)?;
        let r = if which == 'a' {
            &mut self.a
        } else {
            &mut self.b
        };
        r.keepalived = Some(child);
        Ok(())
    }

    /// Stops router `which`'s keepalived with SIGTERM: it gives up its
    /// addresses with a priority-0 advertisement, so the other router takes
    /// over at once, as on a planned switch or a node shutdown.
    pub fn stop_keepalived(&mut self, which: char) -> Result<()> {
        let r = if which == 'a' {
            &mut self.a
        } else {
            &mut self.b
        };
        if let Some(mut k) = r.keepalived.take() {
            let pid = k.child().id() as i32;
            // SAFETY: kill(2) on a child we own.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            k.wait_timeout(Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// Waits until router `which` holds the VIPs and the hosts reach each
    /// other through it.
    pub fn wait_master(&self, which: char) -> Result<()> {
        let r = if which == 'a' { &self.a } else { &self.b };
        wait_for(
            &format!("{} to become VRRP master", r.name),
            Duration::from_secs(15),
            || Ok(r.holds_vip()?.then_some(())),
        )?;
        Ok(())
    }

    /// The `run` flags of router `r`'s daemon.
    pub fn daemon_args(&self, r: &Router, extra: &[&str]) -> Vec<String> {
        let state = self.dir.path().join(format!("{}.state.json", r.name));
        let mut v: Vec<String> = [
            "--iface",
            Router::OUT_IF,
            "--iface",
            Router::IN_IF,
            "--pin-dir",
            &r.pins.pin_dir().to_string_lossy(),
            "--state-file",
            &state.to_string_lossy(),
            "--ha-redis",
            &self.redis_url(),
            "--ha-node",
            r.name,
            "--ha-ttl",
            "3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    /// Starts router `which`'s daemon with HA and `extra` flags.
    pub fn start_daemon(&mut self, which: char, extra: &[&str]) -> Result<()> {
        let r = if which == 'a' { &self.a } else { &self.b };
        let args = self.daemon_args(r, extra);
        let d = Daemon::start(&r.ns, &args)?;
        let r = if which == 'a' {
            &mut self.a
        } else {
            &mut self.b
        };
        r.daemon = Some(d);
        Ok(())
    }

    pub fn router(&self, which: char) -> &Router {
        if which == 'a' {
            &self.a
        } else {
            &self.b
        }
    }

    /// A UDP round trip outside ↔ inside through whichever router is
    /// master (resolves the neighbours on the path).
    pub fn round_trip(&self) -> Result<()> {
        let o = self.outside.udp_socket(sa(OUTSIDE, 0))?;
        let i = self.inside.udp_socket(sa(INSIDE, 7))?;
        for (tx, rx) in [(&o, &i), (&i, &o)] {
            let dst = rx.local_addr().map_err(Error::io("local address"))?;
            traffic::send_marker(tx, dst)?;
            traffic::receive_until_marker(rx, Duration::from_secs(5))?;
        }
        Ok(())
    }
}

pub fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse::<IpAddr>().expect("a literal"), port)
}

/// A paced one-way stream: `total` data datagrams at `pps`, numbered, from
/// a sender thread; the receiver counts what arrives.
pub struct Stream {
    sender: Option<JoinHandle<Result<()>>>,
    receiver: Option<JoinHandle<Result<u32>>>,
    stop: Arc<AtomicBool>,
    started: Instant,
    pub total: u32,
}

impl Stream {
    /// Starts sending from `tx` to `rx`'s address; `rx` counts until the
    /// marker sent after the last datagram (the path is stable by then).
    pub fn start(tx: UdpSocket, rx: UdpSocket, total: u32, pps: u32) -> Result<Stream> {
        let dst = rx.local_addr().map_err(Error::io("local address"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let interval = Duration::from_secs(1) / pps;
        let deadline = interval * total + Duration::from_secs(10);
        let receiver = std::thread::spawn(move || -> Result<u32> {
            traffic::receive_until_marker(&rx, deadline).map(|r| r.data)
        });
        let s = stop.clone();
        let sender = std::thread::spawn(move || -> Result<()> {
            let start = Instant::now();
            for seq in 0..total {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let due = start + interval * seq;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    // Pacing a sender, not synchronising with the system
                    // under test.
                    std::thread::sleep(wait);
                }
                tx.send_to(&traffic::data_payload(seq), dst)
                    .map_err(Error::io(format!("sending to {dst}")))?;
            }
            traffic::send_marker(&tx, dst)
        });
        Ok(Stream {
            sender: Some(sender),
            receiver: Some(receiver),
            stop,
            started: Instant::now(),
            total,
        })
    }

    /// Time since the stream started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits for the sender to finish and returns what the receiver got
    /// (it waits at most its deadline for late datagrams).
    pub fn finish(mut self) -> Result<u32> {
        let join = |h: JoinHandle<Result<u32>>| {
            h.join()
                .map_err(|_| Error::Setup("a stream thread panicked".into()))?
        };
        if let Some(s) = self.sender.take() {
            s.join()
                .map_err(|_| Error::Setup("the sender panicked".into()))??;
        }
        join(self.receiver.take().expect("once"))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
