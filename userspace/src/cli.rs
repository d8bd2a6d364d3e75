//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
use pinhole_common::{FragmentPolicy, PortRange, DEFAULT_MAX_FLOWS};

use crate::{
    addr::Endpoint,
    loader::{parse_port_range, MAX_FLOWS, MIN_FLOWS},
};

/// Default path of the control socket.
pub const DEFAULT_CONTROL: &str = "/run/pinhole/control.sock";

/// eBPF/XDP symmetric-pinhole firewall for RTP/RTCP media.
///
/// `pinhole run` attaches the filter and serves the control socket; the other
/// subcommands talk to a running daemon.
#[derive(Debug, Parser)]
#[command(name = "pinhole", version, about, long_about = None)]
pub struct Cli {
    /// Control socket of the daemon.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_CONTROL)]
    pub control: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach the filter to interfaces and serve the control socket until
    /// SIGINT/SIGTERM.
    Run(RunArgs),
    /// Open (or refresh) a symmetric pinhole between A and B.
    Open(OpenArgs),
    /// Close the pinhole between A and B (with its RTCP pair).
    Close(CloseArgs),
    /// List open pinholes with their traffic.
    List(OutputArgs),
    /// Show verdict counters and flow table usage.
    Stats(OutputArgs),
}

/// XDP attach mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum XdpModeArg {
    /// In the driver (fast; veth and most physical NICs).
    Native,
    /// Generic XDP in the network stack (works everywhere, slower).
    Skb,
}

impl From<XdpModeArg> for aya::programs::XdpMode {
    fn from(m: XdpModeArg) -> Self {
        match m {
            XdpModeArg::Native => aya::programs::XdpMode::Driver,
            XdpModeArg::Skb => aya::programs::XdpMode::Skb,
        }
    }
}

/// What to do with non-first UDP fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FragmentsArg {
    /// Pass them (the first fragment is filtered; without it nothing reassembles).
    Pass,
    /// Drop every non-first UDP fragment.
    Drop,
}

impl From<FragmentsArg> for FragmentPolicy {
    fn from(f: FragmentsArg) -> Self {
        match f {
            FragmentsArg::Pass => FragmentPolicy::Pass,
            FragmentsArg::Drop => FragmentPolicy::Drop,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Interface to filter (repeat for several).
    #[arg(long = "iface", value_name = "IF", required = true)]
    pub ifaces: Vec<String>,

    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Native)]
    pub xdp_mode: XdpModeArg,

    /// UDP destination ports to protect, LO-HI (repeat or comma-separate, at
    /// most 8). The default is the common RTP range; add e.g. 6970-7170 for
    /// RealAudio.
    #[arg(
        long = "media-ports",
        value_name = "LO-HI",
        value_delimiter = ',',
        default_value = "10000-20000",
        value_parser = parse_port_range
    )]
    pub media_ports: Vec<PortRange>,

    /// Flow table capacity in flows (a pinhole uses 2, 4 with RTCP).
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_MAX_FLOWS,
        value_parser = clap::value_parser!(u32).range(MIN_FLOWS as i64..=MAX_FLOWS as i64)
    )]
    pub max_pinholes: u32,

    /// Non-first UDP fragments: pass or drop.
    #[arg(long, value_enum, default_value_t = FragmentsArg::Pass)]
    pub fragments: FragmentsArg,

    /// Idle timeout in seconds for opens that give no --idle (0 = never).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub default_idle: u64,

    /// Observe signaling inline (NFQUEUE) and open pinholes from it, or only
    /// from the control API/CLI.
    #[arg(long, value_enum, default_value_t = SignalingArg::Inline)]
    pub signaling: SignalingArg,

    /// SIP ports (UDP and TCP), comma-separated or repeated.
    #[arg(long = "sip-ports", value_name = "LIST", value_delimiter = ',',
          default_value = "5060", value_parser = parse_port)]
    pub sip_ports: Vec<u16>,

    /// RTSP ports (TCP), comma-separated or repeated.
    #[arg(long = "rtsp-ports", value_name = "LIST", value_delimiter = ',',
          default_value = "554,7070,8554", value_parser = parse_port)]
    pub rtsp_ports: Vec<u16>,

    /// NFQUEUE number the signaling rules queue to.
    #[arg(long, value_name = "N", default_value_t = 4242)]
    pub queue_num: u16,

    /// Only signaling from or to these networks opens pinholes (default:
    /// any). Repeat or comma-separate.
    #[arg(long = "trusted-signaling", value_name = "CIDR", value_delimiter = ',',
          num_args = 1.., value_parser = parse_cidr)]
    pub trusted_signaling: Vec<IpNet>,

    /// Media relays (SBCs): media addresses in these networks may differ
    /// from the signaling peer's address (default: none).
    #[arg(long = "media-relay", value_name = "CIDR", value_delimiter = ',',
          num_args = 1.., value_parser = parse_cidr)]
    pub media_relay: Vec<IpNet>,

    /// Seconds a call's pinholes stay after its BYE (trailing RTCP).
    #[arg(long, value_name = "SECS", default_value_t = 2)]
    pub bye_grace: u64,

    /// A call closes this many seconds after its INVITE, BYE or not (0 = no limit).
    #[arg(long, value_name = "SECS", default_value_t = 14400)]
    pub max_call_lifetime: u64,

    /// Idle timeout of signaled pinholes in seconds (0 = never).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub call_idle: u64,

    /// Symmetric pairs (RTP and RTCP each count) one call or session may open.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pinholes_per_call: u32,

    /// Calls (and, separately, RTSP sessions) per signaling peer address.
    #[arg(long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_calls_per_peer: u32,
}

/// How pinholes are learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignalingArg {
    /// Queue SIP/RTSP through the daemon (iptables NFQUEUE) and follow calls.
    Inline,
    /// Only the control API/CLI opens pinholes.
    Off,
}

/// Parses a port 1-65535.
pub fn parse_port(s: &str) -> Result<u16, String> {
    let t = s.trim();
    match t.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) && t.bytes().all(|b| b.is_ascii_digit()) => Ok(p as u16),
        _ => Err(format!("invalid port `{s}`; expected 1-65535")),
    }
}

/// Parses `ADDR/PREFIX` (or a bare address, meaning that host).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    let bad = || {
        format!("invalid network `{s}`; expected ADDR/PREFIX such as 192.0.2.0/24 or 2001:db8::/32")
    };
    if t.contains('/') {
        t.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| bad())
    } else {
        t.parse::<std::net::IpAddr>()
            .map(IpNet::from)
            .map_err(|_| bad())
    }
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// First endpoint, ADDR:PORT or [IPv6]:PORT.
    #[arg(value_name = "A")]
    pub a: Endpoint,
    /// Second endpoint, same family as A.
    #[arg(value_name = "B")]
    pub b: Endpoint,
    /// Close after SECS without traffic (0 = never; default: the daemon's).
    #[arg(long, value_name = "SECS")]
    pub idle: Option<u64>,
    /// Also open the RTCP pair (A+1 <-> B+1).
    #[arg(long)]
    pub with_rtcp: bool,
}

#[derive(Debug, Args)]
pub struct CloseArgs {
    #[arg(value_name = "A")]
    pub a: Endpoint,
    #[arg(value_name = "B")]
    pub b: Endpoint,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Renders a clap error as one line (`error: …`), dropping the usage block.
pub fn one_line_clap_error(err: &clap::Error) -> String {
    let text = err.to_string();
    let text = text
        .split("\nUsage:")
        .next()
        .unwrap_or_default()
        .split("\nFor more information")
        .next()
        .unwrap_or_default();
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.starts_with("error:") {
        line
    } else {
        format!("error: {line}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pinhole").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_defaults_match_the_contract() {
        let cli = parse(&["run", "--iface", "eth0"]).unwrap();
        assert_eq!(cli.control, PathBuf::from(DEFAULT_CONTROL));
        let Command::Run(r) = cli.command else {
            panic!()
        };
        assert_eq!(r.ifaces, vec!["eth0"]);
        assert_eq!(r.xdp_mode, XdpModeArg::Native);
        assert_eq!(
            r.media_ports,
            vec![PortRange {
                lo: 10000,
                hi: 20000
            }]
        );
        assert_eq!(r.max_pinholes, 262_144);
        assert_eq!(r.fragments, FragmentsArg::Pass);
        assert_eq!(r.default_idle, 300);
        // Signaling (issue 3 contract).
        assert_eq!(r.signaling, SignalingArg::Inline);
        assert_eq!(r.sip_ports, vec![5060]);
        assert_eq!(r.rtsp_ports, vec![554, 7070, 8554]);
        assert_eq!(r.queue_num, 4242);
        assert!(r.trusted_signaling.is_empty() && r.media_relay.is_empty());
        assert_eq!(
            (r.bye_grace, r.max_call_lifetime, r.call_idle),
            (2, 14400, 60)
        );
        assert_eq!((r.max_pinholes_per_call, r.max_calls_per_peer), (16, 256));
    }

    #[test]
    fn signaling_options_parse() {
        let cli = parse(&[
            "run",
            "--iface",
            "a",
            "--signaling",
            "off",
            "--sip-ports",
            "5060,5080",
            "--sip-ports",
            "5090",
            "--rtsp-ports",
            "554",
            "--queue-num",
            "7",
            "--trusted-signaling",
            "192.0.2.0/24",
            "2001:db8::/32",
            "--trusted-signaling",
            "203.0.113.7,198.51.100.9/24",
            "--media-relay",
            "203.0.113.0/28",
            "--bye-grace",
            "0",
            "--max-call-lifetime",
            "0",
            "--call-idle",
            "5",
            "--max-pinholes-per-call",
            "4",
            "--max-calls-per-peer",
            "1",
        ])
        .unwrap();
        let Command::Run(r) = cli.command else {
            panic!()
        };
        assert_eq!(r.signaling, SignalingArg::Off);
        assert_eq!(r.sip_ports, vec![5060, 5080, 5090]);
        assert_eq!(r.rtsp_ports, vec![554]);
        assert_eq!(r.queue_num, 7);
        let nets: Vec<String> = r
            .trusted_signaling
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            nets,
            [
                "192.0.2.0/24",
                "2001:db8::/32",
                "203.0.113.7/32",
                "198.51.100.0/24"
            ]
        );
        assert_eq!(r.media_relay[0].to_string(), "203.0.113.0/28");
        assert_eq!((r.bye_grace, r.max_call_lifetime, r.call_idle), (0, 0, 5));
        assert_eq!((r.max_pinholes_per_call, r.max_calls_per_peer), (4, 1));
    }

    #[test]
    fn run_options_parse() {
        let cli = parse(&[
            "run",
            "--iface",
            "a",
            "--iface",
            "b",
            "--xdp-mode",
            "skb",
            "--media-ports",
            "10000-20000,6970-7170",
            "--media-ports",
            "5004",
            "--control",
            "/tmp/x.sock",
            "--max-pinholes",
            "2",
            "--fragments",
            "drop",
            "--default-idle",
            "0",
        ])
        .unwrap();
        assert_eq!(cli.control, PathBuf::from("/tmp/x.sock"));
        let Command::Run(r) = cli.command else {
            panic!()
        };
        assert_eq!(r.ifaces, vec!["a", "b"]);
        assert_eq!(r.media_ports.len(), 3);
        assert_eq!((r.max_pinholes, r.default_idle), (2, 0));
        assert_eq!(r.fragments, FragmentsArg::Drop);
    }

    #[test]
    fn client_commands_parse_with_control_anywhere() {
        for args in [
            &[
                "--control",
                "/tmp/p",
                "open",
                "192.0.2.1:4000",
                "198.51.100.2:10000",
            ][..],
            &[
                "open",
                "192.0.2.1:4000",
                "198.51.100.2:10000",
                "--control",
                "/tmp/p",
            ][..],
        ] {
            let cli = parse(args).unwrap();
            assert_eq!(cli.control, PathBuf::from("/tmp/p"));
        }
        let cli = parse(&[
            "open",
            "[2001:db8::1]:5",
            "[2001:db8::2]:6",
            "--idle",
            "30",
            "--with-rtcp",
        ])
        .unwrap();
        let Command::Open(o) = cli.command else {
            panic!()
        };
        assert_eq!((o.idle, o.with_rtcp), (Some(30), true));
        assert!(matches!(
            parse(&["list", "--json"]).unwrap().command,
            Command::List(OutputArgs { json: true })
        ));
        assert!(matches!(
            parse(&["stats"]).unwrap().command,
            Command::Stats(OutputArgs { json: false })
        ));
    }

    #[test]
    fn usage_errors_render_on_one_line() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["open", "192.0.2.1:70000", "198.51.100.2:1"],
                "port 70000 out of range (1-65535)",
            ),
            (
                &["open", "192.0.2.1:1"],
                "required arguments were not provided",
            ),
            (&["run"], "--iface"),
            (
                &["run", "--iface", "x", "--max-pinholes", "1"],
                "--max-pinholes",
            ),
            (
                &["run", "--iface", "x", "--media-ports", "20-10"],
                "invalid port range `20-10`",
            ),
            (&["run", "--iface", "x", "--xdp-mode", "hw"], "--xdp-mode"),
            (
                &["open", "192.0.2.1:1", "198.51.100.2:1", "--idle", "-1"],
                "'-1'",
            ),
            (
                &["open", "192.0.2.1:1", "198.51.100.2:1", "--idle", "x"],
                "--idle",
            ),
            (&["frobnicate"], "unrecognized subcommand"),
            (
                &["run", "--iface", "x", "--trusted-signaling", "192.0.2.0/33"],
                "invalid network `192.0.2.0/33`",
            ),
            (
                &["run", "--iface", "x", "--media-relay", "example.com"],
                "invalid network `example.com`",
            ),
            (
                &[
                    "run",
                    "--iface",
                    "x",
                    "--trusted-signaling",
                    "192.0.2.0/24,",
                ],
                "invalid network ``",
            ),
            (
                &["run", "--iface", "x", "--sip-ports", "0"],
                "invalid port `0`",
            ),
            (
                &["run", "--iface", "x", "--rtsp-ports", "554,x"],
                "invalid port `x`",
            ),
            (
                &["run", "--iface", "x", "--queue-num", "65536"],
                "--queue-num",
            ),
            (
                &["run", "--iface", "x", "--signaling", "sniff"],
                "--signaling",
            ),
            (
                &["run", "--iface", "x", "--max-pinholes-per-call", "0"],
                "--max-pinholes-per-call",
            ),
        ];
        for (args, want) in cases {
            let err = parse(args).unwrap_err();
            let line = one_line_clap_error(&err);
            assert!(line.starts_with("error: "), "{line}");
            assert!(!line.contains('\n'), "{line}");
            assert!(line.contains(want), "{args:?}: {line}");
        }
    }
}
