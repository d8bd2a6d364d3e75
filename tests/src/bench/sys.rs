//! What the lab bench reads from the kernel: CPU time by kind from
//! `/proc/stat`, interface counters and MACs, a process's resident memory and
//! the locked memory of its BPF maps, and CPU pinning.

use std::{fs, time::Duration};

use anyhow::{bail, Context, Result};
use pinhole_integration::Netns;

/// System-wide CPU time by kind, summed over CPUs (the `cpu` line of
/// `/proc/stat`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTimes {
    pub user: u64,
    pub system: u64,
    pub softirq: u64,
    pub irq: u64,
    /// Everything that is not idle or iowait.
    pub busy: u64,
}

/// Ticks per second of `/proc/stat` (USER_HZ).
fn user_hz() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

impl CpuTimes {
    /// All CPUs (`None`) or one.
    pub fn read(cpu: Option<usize>) -> Result<CpuTimes> {
        let text = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        CpuTimes::parse(&text, cpu)
    }

    /// Parses the aggregate `cpu` line, or the `cpuN` line of `cpu`.
    pub fn parse(text: &str, cpu: Option<usize>) -> Result<CpuTimes> {
        let prefix = match cpu {
            Some(n) => format!("cpu{n} "),
            None => "cpu ".to_owned(),
        };
        let line = text
            .lines()
            .find(|l| l.starts_with(&prefix))
            .with_context(|| format!("/proc/stat has no `{}` line", prefix.trim()))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().context("a /proc/stat field"))
            .collect::<Result<_>>()?;
        if v.len() < 7 {
            bail!("short `cpu` line in /proc/stat: {line}");
        }
        // user nice system idle iowait irq softirq steal guest guest_nice
        let (user, nice, system, irq, softirq) = (v[0], v[1], v[2], v[5], v[6]);
        let steal = v.get(7).copied().unwrap_or(0);
        Ok(CpuTimes {
            user: user + nice,
            system,
            softirq,
            irq,
            busy: user + nice + system + irq + softirq + steal,
        })
    }

    /// `self - earlier`, in seconds.
    pub fn since(&self, earlier: &CpuTimes) -> CpuSecs {
        let hz = user_hz();
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64 / hz;
        CpuSecs {
            softirq: d(self.softirq, earlier.softirq) + d(self.irq, earlier.irq),
            system: d(self.system, earlier.system),
            user: d(self.user, earlier.user),
            busy: d(self.busy, earlier.busy),
        }
    }
}

/// CPU seconds spent during an interval, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CpuSecs {
    /// Softirq and hardirq time: where veth receive, XDP, netfilter and
    /// forwarding run.
    pub softirq: f64,
    pub system: f64,
    pub user: f64,
    pub busy: f64,
}

/// Pins the calling thread to `cpu`.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("pinning to CPU {cpu}"));
        }
    }
    Ok(())
}

/// CPUs this process may run on.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// CPU time of the calling thread so far (the scheduler's runtime, in ns:
/// no tick sampling).
pub fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime writes the timespec we pass.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The pid of `ksoftirqd/<cpu>`, which runs the softirq work a CPU defers.
pub fn ksoftirqd(cpu: usize) -> Result<u32> {
    let want = format!("ksoftirqd/{cpu}");
    for entry in fs::read_dir("/proc").context("reading /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if fs::read_to_string(entry.path().join("comm")).is_ok_and(|c| c.trim() == want) {
            return Ok(pid);
        }
    }
    bail!("no {want} thread")
}

/// Time a task has run on a CPU (first field of `/proc/<pid>/schedstat`).
pub fn runtime(pid: u32) -> Result<Duration> {
    let text = fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .with_context(|| format!("reading /proc/{pid}/schedstat"))?;
    parse_schedstat(&text).with_context(|| format!("/proc/{pid}/schedstat: {text}"))
}

fn parse_schedstat(text: &str) -> Option<Duration> {
    text.split_whitespace()
        .next()?
        .parse()
        .ok()
        .map(Duration::from_nanos)
}

/// Packet counters of an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
}

/// `ip -j -s link show dev IF` in `ns`.
pub fn link_stats(ns: &Netns, dev: &str) -> Result<LinkStats> {
    let out = ns.ip(&["-j", "-s", "link", "show", "dev", dev])?;
    let v: serde_json::Value = serde_json::from_str(&out).context("`ip -j -s link` output")?;
    let s = &v[0]["stats64"];
    let n = |dir: &str, key: &str| s[dir][key].as_u64().unwrap_or(0);
    Ok(LinkStats {
        rx_packets: n("rx", "packets"),
        tx_packets: n("tx", "packets"),
        rx_dropped: n("rx", "dropped"),
        tx_dropped: n("tx", "dropped"),
    })
}

/// UDP datagrams a namespace received for a port nobody listens on
/// (`NoPorts` of `/proc/net/snmp`).
pub fn udp_no_ports(ns: &Netns) -> Result<u64> {
    let text = ns.exec("cat", &["/proc/net/snmp"])?;
    snmp_field(&text, "Udp:", "NoPorts").context("no Udp NoPorts in /proc/net/snmp")
}

/// A field of a `/proc/net/snmp` table: a header line and a value line,
/// both starting with `table`.
fn snmp_field(text: &str, table: &str, field: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with(table));
    let names = lines.next()?;
    let values = lines.next()?;
    let at = names.split_whitespace().position(|n| n == field)?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// The MAC address of `dev` in `ns`.
pub fn mac(ns: &Netns, dev: &str) -> Result<[u8; 6]> {
    let out = ns.ip(&["-j", "link", "show", "dev", dev])?;
    let v: serde_json::Value = serde_json::from_str(&out).context("`ip -j link` output")?;
    let text = v[0]["address"]
        .as_str()
        .with_context(|| format!("no MAC for {dev}"))?;
    parse_mac(text)
}

pub fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("MAC {text}"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("MAC {text} is not 6 bytes"))
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Resident set size of process `pid`, in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status_kb(&status, "VmRSS:")
        .map(|kb| kb * 1024)
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

fn status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// One BPF map held open by a process.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MapMemory {
    pub id: u64,
    pub map_type: u64,
    pub max_entries: u64,
    /// `memlock` of its fdinfo: the kernel's estimate of the map's memory.
    pub memlock: u64,
}

/// The BPF maps process `pid` holds, from `/proc/<pid>/fdinfo` (each map
/// once, however many fds point at it).
pub fn bpf_maps(pid: u32) -> Result<Vec<MapMemory>> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut maps: Vec<MapMemory> = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let Ok(entry) = entry else { continue };
        let Ok(text) = fs::read_to_string(entry.path()) else {
            continue;
        };
        if let Some(m) = parse_map_fdinfo(&text) {
            if !maps.iter().any(|x| x.id == m.id) {
                maps.push(m);
            }
        }
    }
    maps.sort_by_key(|m| m.id);
    Ok(maps)
}

fn parse_map_fdinfo(text: &str) -> Option<MapMemory> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(MapMemory {
        id: field("map_id:")?,
        map_type: field("map_type:")?,
        max_entries: field("max_entries:")?,
        memlock: field("memlock:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_cpu_line() {
        let text = "cpu  100 5 40 1000 7 2 30 3 0 0\ncpu0 50 0 20 500 3 1 15 1 0 0\n\
                    cpu1 50 5 20 500 4 1 15 2 0 0\nintr 1\n";
        let t = CpuTimes::parse(text, None).unwrap();
        assert_eq!(
            (t.user, t.system, t.softirq, t.irq, t.busy),
            (105, 40, 30, 2, 180)
        );
        let c1 = CpuTimes::parse(text, Some(1)).unwrap();
        assert_eq!((c1.user, c1.softirq, c1.busy), (55, 15, 93));
        assert!(CpuTimes::parse(text, Some(2)).is_err());
        for bad in [
            "",
            "cpu0 1 2 3 4 5 6 7\n",
            "cpu  1 2 3\n",
            "cpu  a b c d e f g\n",
        ] {
            assert!(CpuTimes::parse(bad, None).is_err(), "{bad:?}");
        }
        let later = CpuTimes {
            softirq: t.softirq + 100,
            ..t
        };
        let d = later.since(&t);
        assert!(d.softirq > 0.0 && d.user == 0.0);
    }

    #[test]
    fn map_fdinfo() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1\nmap_type:\t1\n\
                    key_size:\t40\nvalue_size:\t24\nmax_entries:\t262144\nmap_flags:\t0x0\n\
                    map_extra:\t0x0\nmemlock:\t27262976\nmap_id:\t42\nfrozen:\t0\n";
        assert_eq!(
            parse_map_fdinfo(text),
            Some(MapMemory {
                id: 42,
                map_type: 1,
                max_entries: 262144,
                memlock: 27262976
            })
        );
        // A program's or a socket's fdinfo is not a map.
        assert_eq!(
            parse_map_fdinfo("pos:\t0\nflags:\t02\nprog_type:\t6\n"),
            None
        );
        assert_eq!(parse_map_fdinfo(""), None);
    }

    #[test]
    fn snmp() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Udp: InDatagrams NoPorts InErrors\nUdp: 12 345 0\n";
        assert_eq!(snmp_field(text, "Udp:", "NoPorts"), Some(345));
        assert_eq!(snmp_field(text, "Udp:", "InDatagrams"), Some(12));
        assert_eq!(snmp_field(text, "Udp:", "Nope"), None);
        assert_eq!(snmp_field(text, "Tcp:", "NoPorts"), None);
        assert_eq!(snmp_field("Udp: NoPorts\n", "Udp:", "NoPorts"), None);
    }

    #[test]
    fn schedstat() {
        assert_eq!(
            parse_schedstat("2272465482 24379636476 59286\n"),
            Some(Duration::from_nanos(2_272_465_482))
        );
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("x 1 2"), None);
        assert!(runtime(std::process::id()).unwrap() > Duration::ZERO);
        assert!(thread_cpu() > Duration::ZERO);
    }

    #[test]
    fn status_and_mac() {
        let status = "Name:\tpinhole\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\n";
        assert_eq!(status_kb(status, "VmRSS:"), Some(5120));
        assert_eq!(status_kb(status, "VmSwap:"), None);
        let mac = parse_mac("02:00:5e:10:00:ff").unwrap();
        assert_eq!(format_mac(&mac), "02:00:5e:10:00:ff");
        for bad in ["", "02:00", "zz:00:00:00:00:00", "02:00:00:00:00:00:00"] {
            assert!(parse_mac(bad).is_err(), "{bad:?}");
        }
    }
}
