//! The iptables/ip6tables rules that queue signaling to the daemon.
//!
//! A chain [`CHAIN`] in the `mangle` table holds one `-m multiport --ports
//! P1,P2,… -j NFQUEUE --queue-num N --queue-bypass` rule per protocol (UDP
//! and TCP for SIP ports, TCP for RTSP ports; source or destination port),
//! so every forwarded packet crosses the jump and two rules whatever the
//! number of signaling ports. It is jumped to from mangle `FORWARD`,
//! `INPUT` (`! -i lo`) and `OUTPUT` (`! -o lo`), in IPv4 and IPv6, whatever
//! the interface. `--queue-bypass` lets packets pass when no daemon listens
//! on the queue.
//!
//! The jumps are deliberately not scoped to the attached interfaces. XDP on
//! `eth0` sees the frames of every upper device stacked on it (a VLAN
//! `eth0.100`, a bridge `br0` or bond `bond0` with `eth0` as port), but the
//! stack reports routed signaling with the *upper* device as `-i`/`-o`: a
//! rule naming `eth0` never matches it, and every call routed over the upper
//! device lost its media (0 of 236 inbound RTP packets with the router's
//! address on a bridge over the attached port). Following upper devices by
//! name would have to track VLANs, bridges, bonds and teams created, renamed
//! and re-parented at run time; capturing everywhere is right under any
//! churn. What it changes: SIP/RTSP that never crosses an attached interface
//! is queued too (one userspace round trip, no verdict change: the daemon
//! accepts every packet), and may open pinholes whose media then never meets
//! the XDP program; they cost table entries under the same caps and expire
//! idle. Loopback is excluded: it is never attached and local proxies chat
//! on it. The XDP fast path is unchanged.
//!
//! A second chain, [`DEFRAG_CHAIN`], is jumped to from nowhere: its one rule
//! (`-m socket`, see [`DEFRAG_MATCHES`]) exists only so that the kernel
//! turns on IP defragmentation (`nf_defrag_ipv4`/`nf_defrag_ipv6`) in the
//! namespace while the rules are installed. A SIP message bigger than the
//! path MTU crosses as IP fragments; only the first carries the UDP port the
//! queue rules match, so without reassembly ahead of mangle the daemon would
//! see a truncated message (and nothing of later fragments). With it, every
//! mangle hook sees whole datagrams, forwarded or local, IPv4 and IPv6; the
//! output path fragments them again to the original fragment size.
//!
//! [`Rules::install`] first removes whatever a previous (crashed) run left
//! behind, then installs; dropping [`Rules`] removes everything again. The
//! chain names are fixed, so one daemon with inline signaling per network
//! namespace.

use std::{io, process::Command};

use tracing::{debug, info, warn};

use super::CaptureError;

/// The chain holding the queue rules.
pub const CHAIN: &str = "PINHOLE_SIG";
/// The chain, jumped to from nowhere, whose rule turns on defragmentation.
pub const DEFRAG_CHAIN: &str = "PINHOLE_DEFRAG";
const TABLE: &str = "mangle";
/// How many ports one `-m multiport` match takes (the kernel's
/// `XT_MULTI_PORTS`).
pub const MULTIPORT_MAX: usize = 15;

/// The matches that turn on defragmentation when a rule using them is
/// loaded, lightest first, with what they cost the router besides
/// reassembly. `xt_socket` enables `nf_defrag_ipv4`/`nf_defrag_ipv6` and
/// nothing else; `xt_conntrack`, the fallback for a kernel without
/// `xt_socket`, also turns connection tracking on in the namespace.
pub const DEFRAG_MATCHES: &[(&[&str], &str)] = &[
    (&["-m", "socket"], "defragmentation only"),
    (
        &["-m", "conntrack", "--ctstate", "INVALID"],
        "connection tracking is on in this namespace (xt_socket is unavailable)",
    ),
];

/// The built-in chains that jump to [`CHAIN`], with the match each jump
/// uses (loopback is never attached, so never queued).
const HOOKS: &[(&str, &[&str])] = &[
    ("FORWARD", &[]),
    ("INPUT", &["!", "-i", "lo"]),
    ("OUTPUT", &["!", "-o", "lo"]),
];

/// What to queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    pub sip_ports: Vec<u16>,
    pub rtsp_ports: Vec<u16>,
    pub queue_num: u16,
}

impl RuleSpec {
    /// The `(protocol, ports)` of every rule of [`CHAIN`]: UDP and TCP for
    /// SIP ports, TCP for RTSP ports, each port once per protocol, at most
    /// [`MULTIPORT_MAX`] ports per rule.
    pub fn port_groups(&self) -> Vec<(&'static str, Vec<u16>)> {
        let mut udp: Vec<u16> = Vec::new();
        let mut tcp: Vec<u16> = Vec::new();
        for &p in &self.sip_ports {
            udp.push(p);
            tcp.push(p);
        }
        tcp.extend(&self.rtsp_ports);
        let mut out = Vec::new();
        for (proto, mut ports) in [("udp", udp), ("tcp", tcp)] {
            ports.sort_unstable();
            ports.dedup();
            for chunk in ports.chunks(MULTIPORT_MAX) {
                out.push((proto, chunk.to_vec()));
            }
        }
        out
    }

    /// The arguments (after `-w -t mangle`) of every rule of [`CHAIN`]: one
    /// `-m multiport --ports` rule per protocol, which matches a packet
    /// whose source *or* destination port is listed. A media packet crosses
    /// the jump and two rules whose first test (`-p`, a native protocol
    /// compare under iptables-nft) fails or whose port list misses, instead
    /// of one rule per protocol, port and direction.
    pub fn chain_rules(&self) -> Vec<Vec<String>> {
        self.port_groups()
            .into_iter()
            .map(|(proto, ports)| {
                let ports = ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                let queue = self.queue_num.to_string();
                [
                    "-A",
                    CHAIN,
                    "-p",
                    proto,
                    "-m",
                    "multiport",
                    "--ports",
                    &ports,
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    &queue,
                    "--queue-bypass",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect()
            })
            .collect()
    }

    /// The arguments (after `-w -t mangle`) inserting each jump to [`CHAIN`].
    /// They do not depend on the spec: see the module documentation for
    /// why they are not scoped to the attached interfaces.
    pub fn jumps(&self) -> Vec<Vec<String>> {
        HOOKS
            .iter()
            .map(|(hook, matches)| {
                ["-I", hook, "1"]
                    .iter()
                    .chain(matches.iter())
                    .chain(["-j", CHAIN].iter())
                    .map(|s| s.to_string())
                    .collect()
            })
            .collect()
    }
}

/// Runs iptables or ip6tables, optionally behind a prefix (tests use
/// `ip netns exec NS`).
#[derive(Clone, Debug)]
pub struct Runner {
    prefix: Vec<String>,
    program: &'static str,
}

impl Runner {
    pub fn iptables(prefix: &[String]) -> Self {
        Runner {
            prefix: prefix.to_vec(),
            program: "iptables",
        }
    }

    pub fn ip6tables(prefix: &[String]) -> Self {
        Runner {
            prefix: prefix.to_vec(),
            program: "ip6tables",
        }
    }

    pub fn program(&self) -> &'static str {
        self.program
    }

    /// Runs `PROGRAM -w -t mangle ARGS…`; `Ok(Err(stderr))` when it ran and
    /// failed.
    fn run(&self, args: &[String]) -> Result<Result<String, String>, CaptureError> {
        let mut cmd = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(self.program);
                c
            }
            None => Command::new(self.program),
        };
        cmd.args(["-w", "-t", TABLE]).args(args);
        let out = cmd.output().map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => CaptureError::IptablesMissing {
                program: self.program,
            },
            _ => CaptureError::Iptables {
                program: self.program,
                args: args.join(" "),
                message: source.to_string(),
            },
        })?;
        if out.status.success() {
            Ok(Ok(String::from_utf8_lossy(&out.stdout).into_owned()))
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            Ok(Err(err.split_whitespace().collect::<Vec<_>>().join(" ")))
        }
    }

    /// Like [`run`](Self::run) but a failure is an error.
    fn must(&self, args: &[String]) -> Result<String, CaptureError> {
        self.run(args)?.map_err(|message| CaptureError::Iptables {
            program: self.program,
            args: args.join(" "),
            message,
        })
    }

    /// Removes every jump to [`CHAIN`] and the chain itself, if present.
    /// Returns how many rules and chains were removed.
    pub fn cleanup(&self) -> Result<usize, CaptureError> {
        let mut removed = 0;
        for (hook, _) in HOOKS {
            let listing = self.must(&strings(&["-S", hook]))?;
            for line in listing.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                let jumps_to_us = words.windows(2).any(|w| w == ["-j", CHAIN]);
                if words.first() == Some(&"-A") && jumps_to_us {
                    let mut args = strings(&["-D"]);
                    args.extend(words[1..].iter().map(|s| s.to_string()));
                    // Gone already (another cleanup) is fine.
                    if let Err(e) = self.run(&args)? {
                        debug!(program = self.program, "deleting `{line}`: {e}");
                    } else {
                        removed += 1;
                    }
                }
            }
        }
        for chain in [CHAIN, DEFRAG_CHAIN] {
            if self.run(&strings(&["-S", chain]))?.is_ok() {
                self.must(&strings(&["-F", chain]))?;
                self.must(&strings(&["-X", chain]))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Creates [`DEFRAG_CHAIN`] with the first of [`DEFRAG_MATCHES`] the
    /// kernel accepts; returns what it costs, or `None` (logged) when none
    /// works: fragmented signaling is then not reassembled.
    fn enable_defrag(&self) -> Result<Option<&'static str>, CaptureError> {
        self.must(&strings(&["-N", DEFRAG_CHAIN]))?;
        for (matches, cost) in DEFRAG_MATCHES {
            let mut rule = strings(&["-A", DEFRAG_CHAIN]);
            rule.extend(strings(matches));
            rule.extend(strings(&["-j", "RETURN"]));
            match self.run(&rule)? {
                Ok(_) => return Ok(Some(cost)),
                Err(e) => debug!(program = self.program, "`{}`: {e}", rule.join(" ")),
            }
        }
        Ok(None)
    }

    /// Cleans up, then creates the chain, its rules and the jumps. On failure
    /// whatever was installed is removed again.
    pub fn install(&self, spec: &RuleSpec) -> Result<(), CaptureError> {
        let stale = self.cleanup()?;
        if stale > 0 {
            info!(
                program = self.program,
                removed = stale,
                "removed signaling rules left by a previous run"
            );
        }
        let result = (|| {
            // Before the queue rules: no message is queued in pieces.
            match self.enable_defrag()? {
                Some(cost) => info!(
                    program = self.program,
                    chain = DEFRAG_CHAIN,
                    "IP defragmentation ahead of the signaling queue: {cost}"
                ),
                None => warn!(
                    program = self.program,
                    "neither xt_socket nor xt_conntrack is available: SIP over UDP that arrives \
                     as IP fragments is not reassembled, and its calls get no pinholes"
                ),
            }
            self.must(&strings(&["-N", CHAIN]))?;
            for rule in spec.chain_rules() {
                // Every chain rule targets NFQUEUE: a failure here means the
                // target (xt_NFQUEUE through nft_compat) is missing.
                self.run(&rule)?
                    .map_err(|message| CaptureError::NfqueueUnavailable {
                        program: self.program,
                        message,
                    })?;
            }
            for jump in spec.jumps() {
                self.must(&jump)?;
            }
            Ok(())
        })();
        if result.is_err() {
            if let Err(e) = self.cleanup() {
                warn!(
                    program = self.program,
                    "removing partial signaling rules: {e}"
                );
            }
        }
        result
    }

    /// The jumps and chain rules present now, as `-S` prints them.
    pub fn listing(&self) -> Result<Vec<String>, CaptureError> {
        let mut out = Vec::new();
        for (hook, _) in HOOKS {
            out.extend(
                self.must(&strings(&["-S", hook]))?
                    .lines()
                    .filter(|l| l.contains(CHAIN))
                    .map(str::to_string),
            );
        }
        for chain in [CHAIN, DEFRAG_CHAIN] {
            if let Ok(text) = self.run(&strings(&["-S", chain]))? {
                out.extend(text.lines().map(str::to_string));
            }
        }
        Ok(out)
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Installed rules for IPv4 and IPv6; removed on drop.
#[derive(Debug)]
pub struct Rules {
    runners: Vec<Runner>,
}

impl Rules {
    /// Installs the rules with `iptables` and `ip6tables` (after `prefix`).
    pub fn install(spec: &RuleSpec, prefix: &[String]) -> Result<Rules, CaptureError> {
        let mut rules = Rules {
            runners: Vec::new(),
        };
        for runner in [Runner::iptables(prefix), Runner::ip6tables(prefix)] {
            runner.install(spec)?;
            rules.runners.push(runner);
        }
        info!(
            chain = CHAIN,
            queue = spec.queue_num,
            rules_per_family = spec.chain_rules().len() + spec.jumps().len(),
            "signaling queue rules installed"
        );
        Ok(rules)
    }
}

impl Drop for Rules {
    fn drop(&mut self) {
        for r in self.runners.drain(..) {
            match r.cleanup() {
                Ok(_) => info!(program = r.program(), "signaling queue rules removed"),
                Err(e) => warn!(
                    program = r.program(),
                    "removing signaling queue rules failed: {e}"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RuleSpec {
        RuleSpec {
            sip_ports: vec![5060],
            rtsp_ports: vec![554, 5060],
            queue_num: 4242,
        }
    }

    #[test]
    fn one_multiport_rule_per_protocol_for_both_directions() {
        let rules: Vec<String> = spec().chain_rules().iter().map(|r| r.join(" ")).collect();
        let q = "-j NFQUEUE --queue-num 4242 --queue-bypass";
        let want: Vec<String> = [
            "-p udp -m multiport --ports 5060",
            // An RTSP port that is also a SIP port is listed once.
            "-p tcp -m multiport --ports 554,5060",
        ]
        .iter()
        .map(|m| format!("-A {CHAIN} {m} {q}"))
        .collect();
        assert_eq!(rules, want);
    }

    #[test]
    fn port_groups_table() {
        let many: Vec<u16> = (5060..5060 + 16).collect();
        // (SIP ports, RTSP ports, the groups wanted)
        type Case = (Vec<u16>, Vec<u16>, Vec<(&'static str, Vec<u16>)>);
        let cases: Vec<Case> = vec![
            (vec![], vec![], vec![]),
            (
                vec![5060],
                vec![],
                vec![("udp", vec![5060]), ("tcp", vec![5060])],
            ),
            (vec![], vec![554, 7070], vec![("tcp", vec![554, 7070])]),
            (
                vec![5080, 5060, 5060],
                vec![5060],
                vec![("udp", vec![5060, 5080]), ("tcp", vec![5060, 5080])],
            ),
            // More than a multiport match takes: split, nothing lost.
            (
                many.clone(),
                vec![],
                vec![
                    ("udp", many[..15].to_vec()),
                    ("udp", many[15..].to_vec()),
                    ("tcp", many[..15].to_vec()),
                    ("tcp", many[15..].to_vec()),
                ],
            ),
        ];
        for (sip, rtsp, want) in cases {
            let spec = RuleSpec {
                sip_ports: sip.clone(),
                rtsp_ports: rtsp.clone(),
                queue_num: 1,
            };
            assert_eq!(spec.port_groups(), want, "sip {sip:?} rtsp {rtsp:?}");
        }
    }

    #[test]
    fn jumps_cover_every_interface_but_loopback() {
        // Not scoped by name: signaling routed over a VLAN, bridge or bond
        // stacked on an attached port carries the upper device's name.
        let jumps: Vec<String> = spec().jumps().iter().map(|r| r.join(" ")).collect();
        let want = [
            "-I FORWARD 1 -j PINHOLE_SIG",
            "-I INPUT 1 ! -i lo -j PINHOLE_SIG",
            "-I OUTPUT 1 ! -o lo -j PINHOLE_SIG",
        ];
        assert_eq!(jumps, want);
    }

    #[test]
    fn a_missing_program_is_a_clear_error() {
        let r = Runner {
            prefix: vec![],
            program: "pinhole-no-such-iptables",
        };
        let err = r.cleanup().unwrap_err();
        assert!(matches!(err, CaptureError::IptablesMissing { .. }), "{err}");
        assert!(err.to_string().contains("package `iptables`"), "{err}");
    }

    /// A network namespace for the test, deleted on drop.
    struct Netns(String);

    impl Netns {
        fn new(tag: &str) -> Netns {
            let name = format!("ph-{}-{tag}", std::process::id());
            let st = Command::new("ip").args(["netns", "add", &name]).status();
            assert!(
                st.is_ok_and(|s| s.success()),
                "`ip netns add {name}` failed: these tests need root and iproute2"
            );
            let st = Command::new("ip")
                .args([
                    "-n", &name, "link", "add", "ph-a", "type", "veth", "peer", "name", "ph-b",
                ])
                .status();
            assert!(st.is_ok_and(|s| s.success()), "creating veth in {name}");
            Netns(name)
        }

        fn prefix(&self) -> Vec<String> {
            strings(&["ip", "netns", "exec", &self.0])
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }

    #[test]
    fn install_remove_and_stale_cleanup_in_a_netns() {
        let ns = Netns::new("rules");
        let prefix = ns.prefix();
        let spec = RuleSpec {
            sip_ports: vec![5060],
            rtsp_ports: vec![554],
            queue_num: 4242,
        };
        let per_family = spec.chain_rules().len() + spec.jumps().len();
        let rules = Rules::install(&spec, &prefix).unwrap();
        for r in [Runner::iptables(&prefix), Runner::ip6tables(&prefix)] {
            let listing = r.listing().unwrap();
            // `-S CHAIN` also prints `-N CHAIN`; the defrag chain is
            // `-N` and its one rule.
            assert_eq!(listing.len(), per_family + 1 + 2, "{listing:#?}");
            assert!(listing.iter().any(|l| l.contains("--ports 5060")
                && l.contains("--queue-num 4242")
                && l.contains("--queue-bypass")));
            assert!(
                listing.contains(&format!("-A {DEFRAG_CHAIN} -m socket -j RETURN")),
                "defragmentation through xt_socket, not conntrack: {listing:#?}"
            );
            assert!(
                !listing
                    .iter()
                    .any(|l| l.contains(&format!("-j {DEFRAG_CHAIN}"))),
                "nothing jumps to the defrag chain: {listing:#?}"
            );
        }
        drop(rules);
        for r in [Runner::iptables(&prefix), Runner::ip6tables(&prefix)] {
            assert!(r.listing().unwrap().is_empty(), "removed on drop");
        }

        // A crashed run leaves its rules behind: the next install replaces
        // them instead of stacking a second set, and works twice in a row.
        let leaked = Rules::install(&spec, &prefix).unwrap();
        std::mem::forget(leaked);
        let again = Rules::install(&spec, &prefix).unwrap();
        let r = Runner::iptables(&prefix);
        let jumps = r
            .listing()
            .unwrap()
            .into_iter()
            .filter(|l| l.ends_with(&format!("-j {CHAIN}")))
            .count();
        assert_eq!(
            jumps, 3,
            "only the new run's jumps (FORWARD, INPUT, OUTPUT)"
        );
        drop(again);
        assert_eq!(r.cleanup().unwrap(), 0, "nothing left to clean");
        assert!(r.listing().unwrap().is_empty());
    }
}
