//! Command-line definitions.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;
use pinhole_common::PortRange;

pub use crate::config::parse_cidr;
use crate::{
    addr::Endpoint,
    config::{Fragments, LogFormat, RunOptions, SignalingMode},
    datapath::{
        forward::ForwardMode,
        load::{parse_port_range, XdpMode, MAX_FLOWS, MIN_FLOWS},
    },
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
    /// Control socket of the daemon [default: /run/pinhole/control.sock, or
    /// `control` in `run`'s configuration file].
    #[arg(long, global = true, value_name = "PATH")]
    pub control: Option<PathBuf>,

    #[command(subcommand)]
    pub command: CliCommand,
}

impl Cli {
    /// The control socket the client commands talk to.
    pub fn control_path(&self) -> PathBuf {
        self.control
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL))
    }
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Attach the filter to interfaces and serve the control socket until
    /// SIGINT/SIGTERM.
    Run(Box<RunArgs>),
    /// Open (or refresh) a symmetric pinhole between A and B.
    Open(OpenArgs),
    /// Close the pinhole between A and B (with its RTCP pair).
    Close(CloseArgs),
    /// List open pinholes with their traffic.
    List(OutputArgs),
    /// Show verdict counters and flow table usage.
    Stats(OutputArgs),
    /// List the calls (SIP, ng and RTSP) with their streams and traffic.
    Calls(OutputArgs),
    /// Validate a configuration file without touching the kernel: every
    /// error with its line, exit 2 on errors, a summary and exit 0 when valid.
    CheckConfig(CheckConfigArgs),
    /// Remove a filter left pinned (`run --keep-pinned`): detach it from
    /// every interface, unpin its program and maps and remove the state
    /// file. Refused while a daemon runs on the pin directory.
    Detach(DetachArgs),
    /// HA (run --ha-redis): `promote` adopts every pinhole this node holds
    /// for other nodes, e.g. from a keepalived notify script on MASTER.
    Ha(HaArgs),
}

#[derive(Debug, Args)]
pub struct HaArgs {
    #[command(subcommand)]
    pub command: HaCommand,
}

#[derive(Debug, Subcommand)]
pub enum HaCommand {
    /// Adopt every foreign pinhole now: they become this node's, with
    /// their owners' idle timeouts.
    Promote(OutputArgs),
}

#[derive(Debug, Args)]
pub struct DetachArgs {
    /// Read `pin_dir` and `state_file` from this configuration file (flags
    /// override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// bpffs directory of the pinned filter [default: /sys/fs/bpf/pinhole].
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,
    /// The daemon's state file [default: /run/pinhole/state.json].
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The TOML file, e.g. /etc/pinhole/pinhole.toml.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML configuration file (see examples/pinhole.toml); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Interface to filter (repeat for several). Required unless the
    /// configuration file names them.
    #[arg(long = "iface", value_name = "IF")]
    pub ifaces: Vec<String>,

    /// XDP attach mode [default: native].
    #[arg(long, value_enum)]
    pub xdp_mode: Option<XdpMode>,

    /// UDP destination ports to protect, LO-HI (repeat or comma-separate, at
    /// most 8) [default: 10000-20000]. Add e.g. 6970-7170 for RealAudio.
    #[arg(
        long = "media-ports",
        value_name = "LO-HI",
        value_delimiter = ',',
        value_parser = parse_port_range
    )]
    pub media_ports: Vec<PortRange>,

    /// Flow table capacity in flows (a pinhole uses 2, 4 with RTCP)
    /// [default: 262144].
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(MIN_FLOWS as i64..=MAX_FLOWS as i64)
    )]
    pub max_pinholes: Option<u32>,

    /// Non-first UDP fragments: pass or drop [default: pass].
    #[arg(long, value_enum)]
    pub fragments: Option<Fragments>,

    /// Only UDP to a media port AND to these destination networks is
    /// filtered; media ports elsewhere pass (default: any destination).
    /// Repeat or comma-separate; at most 8 per family.
    #[arg(long = "media-prefix", value_name = "CIDR", value_delimiter = ',',
          num_args = 1.., value_parser = parse_cidr)]
    pub media_prefixes: Vec<IpNet>,

    /// Who forwards the media of open pinholes: `stack` (the kernel, as
    /// without pinhole) or `xdp` (the program routes and redirects it
    /// itself, bypassing netfilter, tc and tcpdump) [default: stack].
    #[arg(long, value_enum)]
    pub forward: Option<ForwardMode>,

    /// With --forward xdp: an interface forwarded media may leave by
    /// (repeat for several) [default: the --iface interfaces].
    #[arg(long = "forward-iface", value_name = "IF")]
    pub forward_ifaces: Vec<String>,

    /// Idle timeout in seconds for opens that give no --idle (0 = never)
    /// [default: 300].
    #[arg(long, value_name = "SECS")]
    pub default_idle: Option<u64>,

    /// Observe signaling inline (NFQUEUE) and open pinholes from it, or only
    /// from the control API/CLI and the ng protocol [default: inline].
    #[arg(long, value_enum)]
    pub signaling: Option<SignalingMode>,

    /// SIP ports (UDP and TCP), comma-separated or repeated [default: 5060].
    #[arg(long = "sip-ports", value_name = "LIST", value_delimiter = ',',
          value_parser = parse_port)]
    pub sip_ports: Vec<u16>,

    /// RTSP ports (TCP), comma-separated or repeated [default: 554,7070,8554].
    #[arg(long = "rtsp-ports", value_name = "LIST", value_delimiter = ',',
          value_parser = parse_port)]
    pub rtsp_ports: Vec<u16>,

    /// NFQUEUE number the signaling rules queue to [default: 4242].
    #[arg(long, value_name = "N")]
    pub queue_num: Option<u16>,

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

    /// Seconds a call's pinholes stay after its BYE [default: 2].
    #[arg(long, value_name = "SECS")]
    pub bye_grace: Option<u64>,

    /// A call closes this many seconds after its INVITE, BYE or not (0 = no
    /// limit) [default: 14400].
    #[arg(long, value_name = "SECS")]
    pub max_call_lifetime: Option<u64>,

    /// Idle timeout of signaled pinholes in seconds (0 = never) [default: 60].
    #[arg(long, value_name = "SECS")]
    pub call_idle: Option<u64>,

    /// Idle timeout in seconds of the pinholes of a stream the SDP puts on
    /// hold (sendonly, recvonly, inactive, c=0.0.0.0), 0 = never
    /// [default: 3600].
    #[arg(long, value_name = "SECS")]
    pub hold_timeout: Option<u64>,

    /// Symmetric pairs (RTP and RTCP each count) one call or session may
    /// open [default: 16].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pinholes_per_call: Option<u32>,

    /// Calls (and, separately, RTSP sessions) per signaling peer address
    /// [default: 256].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_calls_per_peer: Option<u32>,

    /// Media behind NAT: a stream whose remote end announced an address
    /// other than its signaling address opens half-open, and the first
    /// packet from that signaling address within SECS seconds latches the
    /// exact pair (0 = strict: refused as third-party media) [default: 0].
    #[arg(long, value_name = "SECS")]
    pub latching: Option<u64>,

    /// Pre-answer latching: while an offer waits for its answer, the first
    /// packet from the answerer's signaling address (any port) to an
    /// offered media endpoint opens that stream until the answer, which
    /// then opens exactly what it justifies; avoids losing the answerer's
    /// first packets to the race with its answer [default: on].
    #[arg(long, value_name = "on|off")]
    pub pre_answer: Option<crate::config::OnOff>,

    /// NAT on this router: read SIP as the outside sees it, the addresses
    /// of INSIDE_CIDR (packet source or destination, SDP media) as PUBLIC
    /// with the same ports (masquerade, port forwards, the conntrack SIP
    /// helper). Attach to the outside interface only. Repeat or
    /// comma-separate (default: none).
    #[arg(long = "nat", value_name = "PUBLIC=INSIDE_CIDR", value_delimiter = ',',
          num_args = 1..)]
    pub nat: Vec<crate::capture::nat::NatMap>,

    /// Serve rtpengine's ng control protocol on this UDP address (e.g.
    /// 127.0.0.1:2223), for SIP proxies (default: off).
    #[arg(long, value_name = "ADDR")]
    pub ng_listen: Option<SocketAddr>,

    /// Networks allowed to send ng requests; others get no reply. Repeat or
    /// comma-separate [default: 127.0.0.0/8,::1/128].
    #[arg(long = "ng-allow", value_name = "CIDR", value_delimiter = ',',
          num_args = 1.., value_parser = parse_cidr)]
    pub ng_allow: Vec<IpNet>,

    /// Serve Prometheus metrics at http://ADDR/metrics (e.g.
    /// 127.0.0.1:9464) (default: off).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// Log lines as human-readable text or as one JSON object per line
    /// [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,

    /// bpffs directory where the program, its maps and links are pinned;
    /// bpffs is mounted on /sys/fs/bpf if missing [default:
    /// /sys/fs/bpf/pinhole].
    #[arg(long, value_name = "DIR")]
    pub pin_dir: Option<PathBuf>,

    /// On SIGINT/SIGTERM leave the filter attached and its maps pinned,
    /// with the state file, so that the next `pinhole run` takes over with
    /// no gap (`pinhole detach` removes it all).
    #[arg(long)]
    pub keep_pinned: bool,

    /// The pinhole and call state, rewritten atomically as it changes and
    /// read when a pinned filter is taken over [default:
    /// /run/pinhole/state.json].
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,

    /// Share pinholes with the other routers of an HA pair through this
    /// Redis: redis://[USER:PASSWORD@]HOST[:PORT][/DB], rediss:// for TLS
    /// (default: off). Put a password in the configuration file rather than
    /// on the command line.
    #[arg(long, value_name = "URL")]
    pub ha_redis: Option<String>,

    /// This router's name among the nodes sharing the Redis (required with
    /// --ha-redis).
    #[arg(long, value_name = "NAME")]
    pub ha_node: Option<String>,

    /// Seconds this node's keys live unless refreshed; when they expire the
    /// other nodes adopt its pinholes [default: 10].
    #[arg(long, value_name = "SECS")]
    pub ha_ttl: Option<u64>,

    /// PEM CA bundle for a rediss:// server [default: the system's roots].
    #[arg(long, value_name = "FILE")]
    pub ha_ca_file: Option<PathBuf>,

    /// Most foreign pinholes installed from the other nodes [default: 65536].
    #[arg(long, value_name = "N")]
    pub ha_max_foreign: Option<u32>,
}

impl RunArgs {
    /// The settings these flags set (everything else: unset), with the
    /// global `--control` when given.
    pub fn options(&self, control: Option<&Path>) -> RunOptions {
        RunOptions {
            control: control.map(Path::to_path_buf),
            log_format: self.log_format,
            interfaces: list(&self.ifaces),
            xdp_mode: self.xdp_mode,
            media_ports: list(&self.media_ports),
            max_pinholes: self.max_pinholes,
            fragments: self.fragments,
            media_prefixes: list(&self.media_prefixes),
            forward: self.forward,
            forward_ifaces: list(&self.forward_ifaces),
            default_idle: self.default_idle,
            signaling: self.signaling,
            sip_ports: list(&self.sip_ports),
            rtsp_ports: list(&self.rtsp_ports),
            queue_num: self.queue_num,
            trusted_signaling: list(&self.trusted_signaling),
            media_relay: list(&self.media_relay),
            bye_grace: self.bye_grace,
            max_call_lifetime: self.max_call_lifetime,
            call_idle: self.call_idle,
            hold_timeout: self.hold_timeout,
            max_pinholes_per_call: self.max_pinholes_per_call,
            max_calls_per_peer: self.max_calls_per_peer,
            latching: self.latching,
            pre_answer: self.pre_answer.map(bool::from),
            nat: list(&self.nat),
            ng_listen: self.ng_listen,
            ng_allow: list(&self.ng_allow),
            metrics_listen: self.metrics_listen,
            pin_dir: self.pin_dir.clone(),
            keep_pinned: self.keep_pinned.then_some(true),
            state_file: self.state_file.clone(),
            ha_redis: self.ha_redis.clone(),
            ha_node: self.ha_node.clone(),
            ha_ttl: self.ha_ttl,
            ha_ca_file: self.ha_ca_file.clone(),
            ha_max_foreign: self.ha_max_foreign,
        }
    }
}

/// A list flag: set when given at least once.
fn list<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

/// Parses a port 1-65535.
pub fn parse_port(s: &str) -> Result<u16, String> {
    let t = s.trim();
    match t.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) && t.bytes().all(|b| b.is_ascii_digit()) => Ok(p as u16),
        _ => Err(format!("invalid port `{s}`; expected 1-65535")),
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
mod tests;
