//! The configuration file (`pinhole run --config FILE`, `pinhole
//! check-config FILE`): TOML covering every `run` flag plus the listeners,
//! the log format and the pinned state.
//!
//! Settings come in layers: [`RunOptions`] holds every setting as an
//! `Option`, once from the file ([`load`]/[`parse`]) and once from the
//! flags (built by the CLI). [`resolve`] merges them (**flags override the
//! file**, field by field; a list given as a flag replaces the file's list),
//! fills the defaults of [`RunSettings::default`] (the one place they are
//! written down) and validates the result without touching the kernel.
//! Every error is reported, each with the line and column of the offending
//! key or value when it comes from the file.
//!
//! The file is strict: an unknown section or key is an error, like serde's
//! `deny_unknown_fields`, but reported for every key rather than the first
//! (each key is decoded on its own, with serde, from toml's spanned tree).
//! See `examples/pinhole.toml` for the complete, commented file.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use pinhole_common::{
    FragmentPolicy, PortRange, DEFAULT_MAX_FLOWS, MAX_MEDIA_PREFIXES, MAX_PORT_RANGES,
};
use serde::de::{self, Deserialize, Deserializer};
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::calls::CallConfig;
use crate::capture::nat::{check_maps, NatMap};
use crate::datapath::load::XdpMode;
use crate::datapath::load::{parse_port_range, MAX_FLOWS, MIN_FLOWS};
use crate::ng::NgConfig;

/// An invalid `pinhole run` setting (file or flags): bad input (exit 2).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SettingsError {
    #[error("--max-pinholes {given} out of range ({min}-{max} flows)")]
    Capacity { given: u64, min: u64, max: u64 },
    #[error("port {0} is both a --sip-ports and an --rtsp-ports port")]
    SignalingPortTwice(u16),
    #[error(
        "signaling port {port} lies in media port range {range}; XDP would drop its UDP packets"
    )]
    SignalingPortInMedia { port: u16, range: String },
    /// The configuration file or the flags, with every problem found.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Where the systemd unit and the docs put the file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/pinhole/pinhole.toml";

/// Largest config file read (a complete one is a few KiB).
pub const MAX_FILE_SIZE: u64 = 1 << 20;
/// Longest latching window (`--latching`): latching is bounded.
pub const MAX_LATCHING_SECS: u64 = 300;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

/// Non-first UDP fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Fragments {
    Pass,
    Drop,
}

impl From<Fragments> for FragmentPolicy {
    fn from(f: Fragments) -> Self {
        match f {
            Fragments::Pass => FragmentPolicy::Pass,
            Fragments::Drop => FragmentPolicy::Drop,
        }
    }
}

/// How pinholes are learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SignalingMode {
    /// Queue SIP/RTSP through the daemon (iptables NFQUEUE) and follow calls.
    Inline,
    /// Only the control socket, the CLI and the ng protocol open pinholes.
    Off,
}

/// An on/off setting (`--pre-answer on|off`, `pre_answer = "on"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    On,
    Off,
}

impl From<OnOff> for bool {
    fn from(v: OnOff) -> bool {
        v == OnOff::On
    }
}

/// Log output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A media port range in the file: `"LO-HI"`, `"PORT"` or `PORT`.
struct PortSpec(PortRange);

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = PortSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port range \"LO-HI\" or a port")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PortSpec, E> {
                parse_port_range(s).map(PortSpec).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PortSpec, E> {
                match u16::try_from(n) {
                    Ok(p) if p > 0 => Ok(PortSpec(PortRange { lo: p, hi: p })),
                    _ => Err(E::custom(format!("invalid port {n}; expected 1-65535"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

struct Ports(Vec<PortRange>);

impl<'de> Deserialize<'de> for Ports {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<PortSpec>::deserialize(d)?;
        Ok(Ports(v.into_iter().map(|p| p.0).collect()))
    }
}

impl From<Ports> for Vec<PortRange> {
    fn from(p: Ports) -> Self {
        p.0
    }
}

/// Parses `ADDR/PREFIX` (host bits cleared) or a bare address (that host).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    let bad = || {
        format!("invalid network `{s}`; expected ADDR/PREFIX such as 192.0.2.0/24 or 2001:db8::/32")
    };
    if t.contains('/') {
        t.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| bad())
    } else {
        t.parse::<IpAddr>().map(IpNet::from).map_err(|_| bad())
    }
}

struct Nets(Vec<IpNet>);

impl<'de> Deserialize<'de> for Nets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.iter()
            .map(|s| parse_cidr(s))
            .collect::<Result<_, _>>()
            .map(Nets)
            .map_err(de::Error::custom)
    }
}

impl From<Nets> for Vec<IpNet> {
    fn from(n: Nets) -> Self {
        n.0
    }
}

/// A position in the file, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub col: usize,
}

impl Location {
    /// The position of byte `offset` in `text`.
    fn of(text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            line,
            col: before[line_start..].chars().count() + 1,
        }
    }
}

/// One problem with the configuration. `line` and `col` are 1-based
/// positions in the file, or 0 when the problem is not in the file (a flag,
/// a default, or the file as a whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl ConfigError {
    fn at(loc: Option<Location>, message: impl Into<String>) -> Self {
        let loc = loc.unwrap_or(Location { line: 0, col: 0 });
        ConfigError {
            line: loc.line,
            col: loc.col,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(
                f,
                "line {}, column {}: {}",
                self.line, self.col, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Renders errors one per line as `PATH:LINE:COL: message` (or `PATH:
/// message` without a position), for `check-config` and `run --config`.
pub fn render(path: &Path, errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| {
            if e.line == 0 {
                format!("{}: {}", path.display(), e.message)
            } else {
                format!("{}:{}:{}: {}", path.display(), e.line, e.col, e.message)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Declares every setting once: its type in [`RunOptions`] and
/// [`RunSettings`], the wire type it is decoded from, its place in the file
/// (section, key) and its flag.
macro_rules! settings {
    ($(
        $(#[$doc:meta])*
        $field:ident: $ty:ty, wire $wire:ty, file ($section:literal, $key:literal), flag $flag:literal;
    )*) => {
        /// Every `run` setting, each unset (`None`) unless this layer (the
        /// file or the flags) sets it. See [`RunSettings`] for meanings and
        /// defaults.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct RunOptions {
            $( $(#[$doc])* pub $field: Option<$ty>, )*
        }

        impl RunOptions {
            /// `self` (the file) with every setting `flags` sets replaced.
            pub fn merge(self, flags: RunOptions) -> RunOptions {
                RunOptions { $( $field: flags.$field.or(self.$field), )* }
            }

            /// The settings set in this layer, by field name.
            fn set_fields(&self) -> Vec<&'static str> {
                let mut v = Vec::new();
                $( if self.$field.is_some() { v.push(stringify!($field)); } )*
                v
            }
        }

        /// Every known (section, key), with its field and flag.
        const KEYS: &[(&str, &str, &str, &str)] = &[
            $( ($section, $key, stringify!($field), $flag), )*
        ];

        /// Decodes the value of (section, key) into `o`; `None` for an
        /// unknown key.
        fn set_field(
            o: &mut RunOptions,
            section: &str,
            key: &str,
            v: Spanned<DeValue<'_>>,
        ) -> Option<Result<(), toml::de::Error>> {
            match (section, key) {
                $( ($section, $key) => Some(
                    <$wire>::deserialize(ValueDeserializer::from(v))
                        .map(|x| o.$field = Some(x.into())),
                ), )*
                _ => None,
            }
        }
    };
}

settings! {
    /// Control socket path.
    control: PathBuf, wire PathBuf, file ("", "control"), flag "--control";
    /// Log format.
    log_format: LogFormat, wire LogFormat, file ("", "log_format"), flag "--log-format";
    /// Interfaces to filter.
    interfaces: Vec<String>, wire Vec<String>, file ("filter", "interfaces"), flag "--iface";
    /// XDP attach mode.
    xdp_mode: XdpMode, wire XdpMode, file ("filter", "xdp_mode"), flag "--xdp-mode";
    /// UDP destination port ranges the filter protects.
    media_ports: Vec<PortRange>, wire Ports, file ("filter", "media_ports"), flag "--media-ports";
    /// Flow map capacity in flows.
    max_pinholes: u32, wire u32, file ("filter", "max_pinholes"), flag "--max-pinholes";
    /// Non-first UDP fragments.
    fragments: Fragments, wire Fragments, file ("filter", "fragments"), flag "--fragments";
    /// Destination networks the media ranges protect.
    media_prefixes: Vec<IpNet>, wire Nets, file ("filter", "media_prefixes"), flag "--media-prefix";
    /// Idle timeout of opens without one, seconds.
    default_idle: u64, wire u64, file ("filter", "default_idle"), flag "--default-idle";
    /// How pinholes are learned.
    signaling: SignalingMode, wire SignalingMode, file ("signaling", "mode"), flag "--signaling";
    /// SIP ports (UDP and TCP).
    sip_ports: Vec<u16>, wire Vec<u16>, file ("signaling", "sip_ports"), flag "--sip-ports";
    /// RTSP ports (TCP).
    rtsp_ports: Vec<u16>, wire Vec<u16>, file ("signaling", "rtsp_ports"), flag "--rtsp-ports";
    /// NFQUEUE number.
    queue_num: u16, wire u16, file ("signaling", "queue_num"), flag "--queue-num";
    /// Networks whose signaling may open pinholes.
    trusted_signaling: Vec<IpNet>, wire Nets, file ("signaling", "trusted_signaling"), flag "--trusted-signaling";
    /// Media relay networks.
    media_relay: Vec<IpNet>, wire Nets, file ("signaling", "media_relay"), flag "--media-relay";
    /// Seconds a call's pinholes stay after its BYE.
    bye_grace: u64, wire u64, file ("signaling", "bye_grace"), flag "--bye-grace";
    /// Longest call, seconds.
    max_call_lifetime: u64, wire u64, file ("signaling", "max_call_lifetime"), flag "--max-call-lifetime";
    /// Idle timeout of signaled pinholes, seconds.
    call_idle: u64, wire u64, file ("signaling", "call_idle"), flag "--call-idle";
    /// Idle timeout of the pinholes of a held stream, seconds.
    hold_timeout: u64, wire u64, file ("signaling", "hold_timeout"), flag "--hold-timeout";
    /// Pairs per call or session.
    max_pinholes_per_call: u32, wire u32, file ("signaling", "max_pinholes_per_call"), flag "--max-pinholes-per-call";
    /// Calls (and RTSP sessions) per signaling peer.
    max_calls_per_peer: u32, wire u32, file ("signaling", "max_calls_per_peer"), flag "--max-calls-per-peer";
    /// Latching window for media behind NAT, seconds; 0 = strict.
    latching: u64, wire u64, file ("signaling", "latching"), flag "--latching";
    /// Pre-answer latching of the answerer's early media.
    pre_answer: bool, wire OnOff, file ("signaling", "pre_answer"), flag "--pre-answer";
    /// NAT on the router: inside networks and the public address they appear as.
    nat: Vec<NatMap>, wire Vec<NatMap>, file ("signaling", "nat"), flag "--nat";
    /// ng listener address.
    ng_listen: SocketAddr, wire SocketAddr, file ("ng", "listen"), flag "--ng-listen";
    /// Networks allowed to use the ng listener.
    ng_allow: Vec<IpNet>, wire Nets, file ("ng", "allow"), flag "--ng-allow";
    /// Metrics listener address.
    metrics_listen: SocketAddr, wire SocketAddr, file ("metrics", "listen"), flag "--metrics-listen";
    /// bpffs directory of the pinned link and maps.
    pin_dir: PathBuf, wire PathBuf, file ("state", "pin_dir"), flag "--pin-dir";
    /// Leave the filter in place on exit.
    keep_pinned: bool, wire bool, file ("state", "keep_pinned"), flag "--keep-pinned";
    /// Call table state file.
    state_file: PathBuf, wire PathBuf, file ("state", "state_file"), flag "--state-file";
    /// Redis URL of HA replication.
    ha_redis: String, wire String, file ("ha", "redis"), flag "--ha-redis";
    /// This node's name for HA.
    ha_node: String, wire String, file ("ha", "node"), flag "--ha-node";
    /// TTL of this node's HA keys, seconds.
    ha_ttl: u64, wire u64, file ("ha", "ttl"), flag "--ha-ttl";
    /// CA bundle for rediss://.
    ha_ca_file: PathBuf, wire PathBuf, file ("ha", "ca_file"), flag "--ha-ca-file";
    /// Most foreign pinholes.
    ha_max_foreign: u32, wire u32, file ("ha", "max_foreign"), flag "--ha-max-foreign";
}

/// Every `run` setting, resolved. [`RunSettings::default`] holds the
/// defaults (documented per field) except `interfaces`, which has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSettings {
    /// Control socket. Default `/run/pinhole/control.sock`.
    pub control: PathBuf,
    /// Default `text`.
    pub log_format: LogFormat,
    /// Required; no default.
    pub interfaces: Vec<String>,
    /// Default `native`.
    pub xdp_mode: XdpMode,
    /// Default `10000-20000`; at most 8 ranges, none overlapping.
    pub media_ports: Vec<PortRange>,
    /// Flow map capacity in flows (a pinhole uses 2, 4 with RTCP). Default
    /// 262144.
    pub max_pinholes: u32,
    /// Default `pass`.
    pub fragments: Fragments,
    /// Destination networks the media ranges protect; UDP to a media port
    /// elsewhere passes as `not_media_prefix`. Empty (the default) = every
    /// destination. At most 8 per family.
    pub media_prefixes: Vec<IpNet>,
    /// Seconds; 0 = never. Default 300.
    pub default_idle: u64,
    /// Default `inline`.
    pub signaling: SignalingMode,
    /// Default `[5060]`.
    pub sip_ports: Vec<u16>,
    /// Default `[554, 7070, 8554]`.
    pub rtsp_ports: Vec<u16>,
    /// Default 4242.
    pub queue_num: u16,
    /// Empty (the default) = any.
    pub trusted_signaling: Vec<IpNet>,
    /// Default none.
    pub media_relay: Vec<IpNet>,
    /// Seconds. Default 2.
    pub bye_grace: u64,
    /// Seconds; 0 = no limit. Default 14400.
    pub max_call_lifetime: u64,
    /// Seconds; 0 = never. Default 60.
    pub call_idle: u64,
    /// Seconds; 0 = never. Default 3600.
    pub hold_timeout: u64,
    /// Default 16.
    pub max_pinholes_per_call: u32,
    /// Default 256.
    pub max_calls_per_peer: u32,
    /// Seconds a half-open pinhole for media behind NAT waits for the first
    /// packet from the remote's signaling address (at most
    /// [`MAX_LATCHING_SECS`]); 0 = strict: such media is refused as
    /// third-party. Default 0.
    pub latching: u64,
    /// Pre-answer latching ([`CallConfig::pre_answer`]): while an offer
    /// waits for its answer, the first packet from the answerer's
    /// signaling address (any port) to an offered media endpoint opens
    /// that stream's pair, until the answer replaces it with what the
    /// answer justifies. Default on: it accepts no more than the
    /// direct-media rule accepts after the answer (the answerer's media
    /// from its signaling address), only the port is not known yet, and
    /// only until the answer; without it the answerer's first packets,
    /// sent right after its answer, race the answer's processing and are
    /// dropped.
    pub pre_answer: bool,
    /// NAT on the router itself ([`crate::capture::nat`]): SIP signaling is
    /// read as the outside sees it, each inside network's addresses as its
    /// public address with the same ports. Default none; at most
    /// [`crate::capture::nat::MAX_NAT_MAPS`], not overlapping.
    pub nat: Vec<NatMap>,
    /// ng protocol listener (UDP). Default: off.
    pub ng_listen: Option<SocketAddr>,
    /// Who may use the ng listener. Default loopback (`127.0.0.0/8`,
    /// `::1/128`).
    pub ng_allow: Vec<IpNet>,
    /// Prometheus listener (HTTP). Default: off.
    pub metrics_listen: Option<SocketAddr>,
    /// bpffs directory of the pinned link and maps. Default
    /// `/sys/fs/bpf/pinhole`.
    pub pin_dir: PathBuf,
    /// Leave the filter and maps pinned on exit. Default false.
    pub keep_pinned: bool,
    /// Call table state, rewritten atomically, read on start when the maps
    /// are adopted. Default `/run/pinhole/state.json` (like the pinned
    /// maps, it does not survive a reboot).
    pub state_file: PathBuf,
    /// HA replication through Redis ([`crate::ha`]):
    /// `redis://[user:password@]host[:port][/db]` or `rediss://…` (TLS).
    /// Default: off.
    pub ha_redis: Option<String>,
    /// This node's name among the nodes sharing the Redis: 1-64 of
    /// `A-Za-z0-9._-`. Required with `ha_redis`.
    pub ha_node: Option<String>,
    /// Seconds this node's keys live unless refreshed (every third of it);
    /// when they expire the other nodes adopt its pinholes. 2-3600.
    /// Default 10.
    pub ha_ttl: u64,
    /// PEM CA bundle that signs the Redis server's certificate
    /// (`rediss://`). Default: the system's roots.
    pub ha_ca_file: Option<PathBuf>,
    /// Most foreign pinholes installed from other nodes. Default 65536.
    pub ha_max_foreign: u32,
}

impl RunSettings {
    /// The HA replicator's settings, when `ha_redis` is set.
    pub fn ha_config(&self) -> Option<crate::ha::HaConfig> {
        Some(crate::ha::HaConfig {
            url: self.ha_redis.clone()?,
            node: self.ha_node.clone()?,
            ttl: Duration::from_secs(self.ha_ttl),
            ca_file: self.ha_ca_file.clone(),
            max_foreign: self.ha_max_foreign as usize,
            media_ports: self.media_ports.clone(),
        })
    }
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            control: PathBuf::from("/run/pinhole/control.sock"),
            log_format: LogFormat::Text,
            interfaces: Vec::new(),
            xdp_mode: XdpMode::Native,
            media_ports: vec![PortRange {
                lo: 10000,
                hi: 20000,
            }],
            max_pinholes: DEFAULT_MAX_FLOWS,
            fragments: Fragments::Pass,
            media_prefixes: Vec::new(),
            default_idle: 300,
            signaling: SignalingMode::Inline,
            sip_ports: vec![5060],
            rtsp_ports: vec![554, 7070, 8554],
            queue_num: 4242,
            trusted_signaling: Vec::new(),
            media_relay: Vec::new(),
            bye_grace: 2,
            max_call_lifetime: 14400,
            call_idle: 60,
            hold_timeout: 3600,
            max_pinholes_per_call: 16,
            max_calls_per_peer: 256,
            latching: 0,
            pre_answer: true,
            nat: Vec::new(),
            ng_listen: None,
            ng_allow: NgConfig::default().allow,
            metrics_listen: None,
            pin_dir: PathBuf::from("/sys/fs/bpf/pinhole"),
            keep_pinned: false,
            state_file: PathBuf::from("/run/pinhole/state.json"),
            ha_redis: None,
            ha_node: None,
            ha_ttl: 10,
            ha_ca_file: None,
            ha_max_foreign: 65536,
        }
    }
}

impl RunSettings {
    /// The call state's configuration (other fields at their defaults).
    pub fn call_config(&self) -> CallConfig {
        let d = CallConfig::default();
        CallConfig {
            trusted_signaling: if self.trusted_signaling.is_empty() {
                d.trusted_signaling.clone()
            } else {
                self.trusted_signaling.clone()
            },
            media_relay: self.media_relay.clone(),
            max_pairs_per_call: self.max_pinholes_per_call as usize,
            max_calls_per_peer: self.max_calls_per_peer as usize,
            bye_grace: Duration::from_secs(self.bye_grace),
            max_lifetime: Duration::from_secs(self.max_call_lifetime),
            idle_timeout: Duration::from_secs(self.call_idle),
            hold_timeout: Duration::from_secs(self.hold_timeout),
            latching: Duration::from_secs(self.latching),
            pre_answer: self.pre_answer,
            ..d
        }
    }

    /// The ng service's configuration.
    pub fn ng_config(&self) -> NgConfig {
        NgConfig {
            allow: self.ng_allow.clone(),
            ..NgConfig::default()
        }
    }
}

/// A parsed config file: its settings and where each was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigFile {
    pub options: RunOptions,
    locations: HashMap<&'static str, Location>,
}

/// Reads and parses the file at `path` (at most [`MAX_FILE_SIZE`] bytes).
pub fn load(path: &Path) -> Result<ConfigFile, Vec<ConfigError>> {
    let fail = |m: String| vec![ConfigError::at(None, m)];
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(fail(format!(
            "file of {} bytes exceeds the {MAX_FILE_SIZE}-byte limit",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let loc = Location::of(
            &String::from_utf8_lossy(e.as_bytes()),
            e.utf8_error().valid_up_to(),
        );
        vec![ConfigError::at(Some(loc), "not valid UTF-8")]
    })?;
    parse(&text)
}

/// Parses a config file's text. Reports every syntax error, unknown
/// section or key, and value of the wrong type or form.
pub fn parse(text: &str) -> Result<ConfigFile, Vec<ConfigError>> {
    let (root, syntax) = DeTable::parse_recoverable(text);
    let at = |span: Option<Range<usize>>| span.map(|s| Location::of(text, s.start));
    let mut errors: Vec<ConfigError> = syntax
        .iter()
        .map(|e| ConfigError::at(at(e.span()), e.message().trim()))
        .collect();
    if !errors.is_empty() {
        errors.sort_by_key(|e| (e.line, e.col));
        // What the parser recovered is not what the author meant: keys
        // after a broken line may be missing or misplaced, so checking it
        // would only report follow-up errors.
        return Err(errors);
    }
    let mut file = ConfigFile::default();
    let mut field = |section: &str,
                     key: &Spanned<std::borrow::Cow<'_, str>>,
                     value: &Spanned<DeValue<'_>>,
                     errors: &mut Vec<ConfigError>| {
        let name = key.get_ref().as_ref();
        let where_ = if section.is_empty() {
            format!("`{name}`")
        } else {
            format!("`{name}` in [{section}]")
        };
        match set_field(&mut file.options, section, name, value.clone()) {
            None => {
                let known: Vec<&str> = KEYS
                    .iter()
                    .filter(|k| k.0 == section)
                    .map(|k| k.1)
                    .collect();
                errors.push(ConfigError::at(
                    at(Some(key.span())),
                    format!("unknown key {where_}; expected one of {}", known.join(", ")),
                ));
            }
            Some(Err(e)) => errors.push(ConfigError::at(
                at(e.span().or(Some(value.span()))),
                format!("{where_}: {}", e.message().trim()),
            )),
            Some(Ok(())) => {
                let f = KEYS
                    .iter()
                    .find(|k| k.0 == section && k.1 == name)
                    .map(|k| k.2)
                    .expect("set_field knows it");
                if let Some(loc) = at(Some(value.span())) {
                    file.locations.insert(f, loc);
                }
            }
        }
    };
    for (key, value) in root.get_ref().iter() {
        let name = key.get_ref().as_ref();
        let is_section = KEYS.iter().any(|k| k.0 == name);
        match value.get_ref() {
            DeValue::Table(table) if is_section => {
                for (k, v) in table.iter() {
                    field(name, k, v, &mut errors);
                }
            }
            _ if is_section => errors.push(ConfigError::at(
                at(Some(value.span())),
                format!("[{name}] must be a table"),
            )),
            DeValue::Table(_) => {
                let mut sections: Vec<&str> = KEYS.iter().map(|k| k.0).collect();
                sections.retain(|s| !s.is_empty());
                sections.dedup();
                errors.push(ConfigError::at(
                    at(Some(key.span())),
                    format!(
                        "unknown section [{name}]; expected one of {}",
                        sections.join(", ")
                    ),
                ));
            }
            _ => field("", key, value, &mut errors),
        }
    }
    errors.sort_by_key(|e| (e.line, e.col));
    if errors.is_empty() {
        Ok(file)
    } else {
        Err(errors)
    }
}

/// Reads, parses and validates the file at `path` as `pinhole run` would
/// with no flags, without touching the kernel (`pinhole check-config`).
pub fn check(path: &Path) -> Result<RunSettings, Vec<ConfigError>> {
    resolve(Some(load(path)?), RunOptions::default())
}

/// One line describing valid settings, for `pinhole check-config`.
pub fn summary(path: &Path, s: &RunSettings) -> String {
    let ranges: Vec<String> = s
        .media_ports
        .iter()
        .map(|r| format!("{}-{}", r.lo, r.hi))
        .collect();
    let listener = |a: Option<SocketAddr>| a.map_or_else(|| "off".to_string(), |a| a.to_string());
    let signaling = match s.signaling {
        SignalingMode::Inline => format!(
            "inline (SIP {}, RTSP {})",
            join(&s.sip_ports),
            join(&s.rtsp_ports)
        ),
        SignalingMode::Off => "off".into(),
    };
    format!(
        "{}: ok: interfaces {}; media ports {}; {} flows; signaling {}; ng {}; metrics {}; control {}",
        path.display(),
        s.interfaces.join(","),
        ranges.join(","),
        s.max_pinholes,
        signaling,
        listener(s.ng_listen),
        listener(s.metrics_listen),
        s.control.display()
    )
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Merges the file (if any) and the flags (flags win), fills the defaults
/// and validates. Errors point into the file for settings it made.
pub fn resolve(
    file: Option<ConfigFile>,
    flags: RunOptions,
) -> Result<RunSettings, Vec<ConfigError>> {
    let file = file.unwrap_or_default();
    let from_flags = flags.set_fields();
    let locate = |field: &'static str| -> (Option<Location>, String) {
        let (_, key, _, flag) = KEYS
            .iter()
            .find(|k| k.2 == field)
            .copied()
            .expect("a declared field");
        if from_flags.contains(&field) {
            (None, flag.to_string())
        } else {
            let section = KEYS.iter().find(|k| k.2 == field).map_or("", |k| k.0);
            let name = if section.is_empty() {
                format!("`{key}`")
            } else {
                format!("`{key}` in [{section}]")
            };
            match file.locations.get(field) {
                Some(loc) => (Some(*loc), name),
                // Neither the file nor a flag set it: name both.
                None => (None, format!("{flag} or {name}")),
            }
        }
    };
    let o = file.options.clone().merge(flags);
    let d = RunSettings::default();
    let s = RunSettings {
        control: o.control.unwrap_or(d.control),
        log_format: o.log_format.unwrap_or(d.log_format),
        interfaces: o.interfaces.unwrap_or(d.interfaces),
        xdp_mode: o.xdp_mode.unwrap_or(d.xdp_mode),
        media_ports: o.media_ports.unwrap_or(d.media_ports),
        max_pinholes: o.max_pinholes.unwrap_or(d.max_pinholes),
        fragments: o.fragments.unwrap_or(d.fragments),
        media_prefixes: o.media_prefixes.unwrap_or(d.media_prefixes),
        default_idle: o.default_idle.unwrap_or(d.default_idle),
        signaling: o.signaling.unwrap_or(d.signaling),
        sip_ports: o.sip_ports.unwrap_or(d.sip_ports),
        rtsp_ports: o.rtsp_ports.unwrap_or(d.rtsp_ports),
        queue_num: o.queue_num.unwrap_or(d.queue_num),
        trusted_signaling: o.trusted_signaling.unwrap_or(d.trusted_signaling),
        media_relay: o.media_relay.unwrap_or(d.media_relay),
        bye_grace: o.bye_grace.unwrap_or(d.bye_grace),
        max_call_lifetime: o.max_call_lifetime.unwrap_or(d.max_call_lifetime),
        call_idle: o.call_idle.unwrap_or(d.call_idle),
        hold_timeout: o.hold_timeout.unwrap_or(d.hold_timeout),
        max_pinholes_per_call: o.max_pinholes_per_call.unwrap_or(d.max_pinholes_per_call),
        max_calls_per_peer: o.max_calls_per_peer.unwrap_or(d.max_calls_per_peer),
        latching: o.latching.unwrap_or(d.latching),
        pre_answer: o.pre_answer.unwrap_or(d.pre_answer),
        nat: o.nat.unwrap_or(d.nat),
        ng_listen: o.ng_listen.or(d.ng_listen),
        ng_allow: o.ng_allow.unwrap_or(d.ng_allow),
        metrics_listen: o.metrics_listen.or(d.metrics_listen),
        pin_dir: o.pin_dir.unwrap_or(d.pin_dir),
        keep_pinned: o.keep_pinned.unwrap_or(d.keep_pinned),
        state_file: o.state_file.unwrap_or(d.state_file),
        ha_redis: o.ha_redis.or(d.ha_redis),
        ha_node: o.ha_node.or(d.ha_node),
        ha_ttl: o.ha_ttl.unwrap_or(d.ha_ttl),
        ha_ca_file: o.ha_ca_file.or(d.ha_ca_file),
        ha_max_foreign: o.ha_max_foreign.unwrap_or(d.ha_max_foreign),
    };
    let mut errors = Vec::new();
    validate(&s, &locate, &mut errors);
    errors.sort_by_key(|e| (e.line == 0, e.line, e.col));
    if errors.is_empty() {
        Ok(s)
    } else {
        Err(errors)
    }
}

type Locate<'a> = dyn Fn(&'static str) -> (Option<Location>, String) + 'a;

/// Semantic checks: ranges, overlaps, caps, names, paths.
fn validate(s: &RunSettings, locate: &Locate<'_>, errors: &mut Vec<ConfigError>) {
    let mut err = |field: &'static str, msg: String| {
        let (loc, name) = locate(field);
        errors.push(ConfigError::at(loc, format!("{name}: {msg}")));
    };

    if s.interfaces.is_empty() {
        err("interfaces", "no interface to filter".into());
    }
    for (i, name) in s.interfaces.iter().enumerate() {
        let bad = name.is_empty()
            || name.len() > MAX_IFNAME
            || name == "."
            || name == ".."
            || name
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace());
        if bad {
            err(
                "interfaces",
                format!("invalid interface name `{name}` (1-{MAX_IFNAME} characters, no `/`, `:` or spaces)"),
            );
        } else if s.interfaces[..i].contains(name) {
            err("interfaces", format!("interface `{name}` listed twice"));
        }
    }

    let show = |r: &PortRange| format!("{}-{}", r.lo, r.hi);
    if s.media_ports.is_empty() {
        err("media_ports", "no media port range".into());
    }
    if s.media_ports.len() > MAX_PORT_RANGES {
        err(
            "media_ports",
            format!(
                "{} ranges; the filter holds at most {MAX_PORT_RANGES}",
                s.media_ports.len()
            ),
        );
    }
    for (i, r) in s.media_ports.iter().enumerate() {
        if let Some(o) = s.media_ports[..i]
            .iter()
            .find(|o| r.lo <= o.hi && o.lo <= r.hi)
        {
            err(
                "media_ports",
                format!("ranges {} and {} overlap", show(o), show(r)),
            );
        }
    }

    for (family, v4) in [(4, true), (6, false)] {
        let given = s
            .media_prefixes
            .iter()
            .filter(|n| n.addr().is_ipv4() == v4)
            .count();
        if given > MAX_MEDIA_PREFIXES {
            err(
                "media_prefixes",
                format!("{given} IPv{family} networks; the filter holds at most {MAX_MEDIA_PREFIXES} per family"),
            );
        }
    }

    if !(MIN_FLOWS..=MAX_FLOWS).contains(&s.max_pinholes) {
        err(
            "max_pinholes",
            format!(
                "{} out of range ({MIN_FLOWS}-{MAX_FLOWS} flows)",
                s.max_pinholes
            ),
        );
    }

    for (field, ports) in [("sip_ports", &s.sip_ports), ("rtsp_ports", &s.rtsp_ports)] {
        for (i, p) in ports.iter().enumerate() {
            if *p == 0 {
                err(field, "invalid port 0; expected 1-65535".into());
            } else if ports[..i].contains(p) {
                err(field, format!("port {p} listed twice"));
            }
        }
    }
    for (i, p) in s.sip_ports.iter().enumerate() {
        if s.sip_ports[..i].contains(p) {
            continue;
        }
        if s.rtsp_ports.contains(p) {
            err(
                "rtsp_ports",
                format!("port {p} is both a SIP and an RTSP port"),
            );
        }
        // SIP over UDP to a protected port would be dropped by the filter.
        if let Some(r) = s.media_ports.iter().find(|r| (r.lo..=r.hi).contains(p)) {
            err(
                "sip_ports",
                format!(
                    "SIP port {p} lies in media port range {}; the filter would drop its UDP packets",
                    show(r)
                ),
            );
        }
    }

    if s.max_pinholes_per_call == 0 {
        err("max_pinholes_per_call", "must be at least 1".into());
    }
    if s.max_calls_per_peer == 0 {
        err("max_calls_per_peer", "must be at least 1".into());
    }
    if s.latching > MAX_LATCHING_SECS {
        err(
            "latching",
            format!(
                "{} s is not bounded latching; at most {MAX_LATCHING_SECS} s (0 = strict)",
                s.latching
            ),
        );
    }

    if let Err(e) = check_maps(&s.nat) {
        err("nat", e);
    }

    for field in ["ng_listen", "metrics_listen"] {
        let addr = if field == "ng_listen" {
            s.ng_listen
        } else {
            s.metrics_listen
        };
        if addr.is_some_and(|a| a.port() == 0) {
            err(field, "port 0; clients need a fixed port".into());
        }
    }
    if let Some(url) = &s.ha_redis {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            err(
                "ha_redis",
                format!(
                    "`{}` is not a redis:// or rediss:// URL",
                    crate::ha::redact(url)
                ),
            );
        }
        match &s.ha_node {
            None => err("ha_node", "required with HA (--ha-redis)".into()),
            Some(n) if !crate::ha::schema::valid_node(n) => {
                err("ha_node", format!("`{n}`: 1-64 characters of A-Za-z0-9._-"))
            }
            Some(_) => {}
        }
        if !(2..=3600).contains(&s.ha_ttl) {
            err("ha_ttl", format!("{} s; 2 to 3600", s.ha_ttl));
        }
        if s.ha_max_foreign == 0 {
            err(
                "ha_max_foreign",
                "0: no foreign pinhole could be installed".into(),
            );
        }
    }
    if s.ng_listen.is_some() && s.ng_allow.is_empty() {
        err(
            "ng_allow",
            "empty: no client could use the ng listener".into(),
        );
    }

    for (field, path) in [
        ("control", &s.control),
        ("pin_dir", &s.pin_dir),
        ("state_file", &s.state_file),
    ] {
        if !path.is_absolute() {
            err(
                field,
                format!("`{}` is not an absolute path", path.display()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../examples/pinhole.toml");

    fn errors(text: &str) -> Vec<(usize, usize, String)> {
        let r = parse(text).and_then(|f| resolve(Some(f), RunOptions::default()));
        r.expect_err("errors")
            .into_iter()
            .map(|e| (e.line, e.col, e.message))
            .collect()
    }

    #[test]
    fn the_example_resolves_to_the_defaults() {
        let file = parse(EXAMPLE).expect("the example parses");
        let s = resolve(Some(file), RunOptions::default()).expect("the example is valid");
        // The example sets every key; apart from the interfaces and the
        // listeners it enables, every value is the default.
        let want = RunSettings {
            interfaces: vec!["eth0".into()],
            ng_listen: Some("127.0.0.1:2223".parse().unwrap()),
            metrics_listen: Some("127.0.0.1:9464".parse().unwrap()),
            ..RunSettings::default()
        };
        assert_eq!(s, want);
        // And it mentions every key there is.
        for (section, key, _, _) in KEYS {
            let needle = format!("\n{key} =");
            let alt = format!("\n# {key} =");
            assert!(
                EXAMPLE.contains(&needle) || EXAMPLE.contains(&alt),
                "example lacks {section}.{key}"
            );
        }
    }

    #[test]
    fn a_full_file_parses() {
        let text = r#"
control = "/tmp/p.sock"
log_format = "json"

[filter]
interfaces = ["veth0", "veth1"]
xdp_mode = "skb"
media_ports = ["10000-20000", 5004, "6970-7170"]
max_pinholes = 1024
fragments = "drop"
media_prefixes = ["198.51.100.0/24", "2001:db8:1::/48"]
default_idle = 0

[signaling]
mode = "off"
sip_ports = [5060, 5080]
rtsp_ports = [554]
queue_num = 7
trusted_signaling = ["192.0.2.0/24", "2001:db8::1", "198.51.100.9/24"]
media_relay = ["203.0.113.0/28"]
bye_grace = 0
max_call_lifetime = 0
call_idle = 5
hold_timeout = 900
max_pinholes_per_call = 4
max_calls_per_peer = 1

[ng]
listen = "[::1]:2223"
allow = ["::1/128", "192.0.2.7"]

[metrics]
listen = "0.0.0.0:9464"

[state]
pin_dir = "/sys/fs/bpf/ph-test"
keep_pinned = true
state_file = "/tmp/ph-state.json"
"#;
        let s = resolve(Some(parse(text).unwrap()), RunOptions::default()).unwrap();
        assert_eq!(s.control, PathBuf::from("/tmp/p.sock"));
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.interfaces, ["veth0", "veth1"]);
        assert_eq!(s.xdp_mode, XdpMode::Skb);
        assert_eq!(
            s.media_prefixes,
            [
                "198.51.100.0/24".parse::<IpNet>().unwrap(),
                "2001:db8:1::/48".parse().unwrap()
            ]
        );
        assert_eq!(
            s.media_ports,
            [
                PortRange {
                    lo: 10000,
                    hi: 20000
                },
                PortRange { lo: 5004, hi: 5004 },
                PortRange { lo: 6970, hi: 7170 }
            ]
        );
        assert_eq!((s.max_pinholes, s.default_idle), (1024, 0));
        assert_eq!(s.fragments, Fragments::Drop);
        assert_eq!(s.signaling, SignalingMode::Off);
        assert_eq!(
            (&s.sip_ports[..], &s.rtsp_ports[..]),
            (&[5060, 5080][..], &[554][..])
        );
        assert_eq!(s.queue_num, 7);
        let nets: Vec<String> = s
            .trusted_signaling
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, ["192.0.2.0/24", "2001:db8::1/128", "198.51.100.0/24"]);
        assert_eq!(s.media_relay[0].to_string(), "203.0.113.0/28");
        assert_eq!((s.bye_grace, s.max_call_lifetime, s.call_idle), (0, 0, 5));
        assert_eq!(s.hold_timeout, 900);
        assert_eq!((s.max_pinholes_per_call, s.max_calls_per_peer), (4, 1));
        assert_eq!(s.ng_listen, Some("[::1]:2223".parse().unwrap()));
        assert_eq!(s.ng_allow.len(), 2);
        assert_eq!(s.metrics_listen, Some("0.0.0.0:9464".parse().unwrap()));
        assert_eq!(s.pin_dir, PathBuf::from("/sys/fs/bpf/ph-test"));
        assert!(s.keep_pinned);
        assert_eq!(s.state_file, PathBuf::from("/tmp/ph-state.json"));
        // Conversions for the daemon.
        let calls = s.call_config();
        assert_eq!(calls.max_pairs_per_call, 4);
        assert_eq!(calls.idle_timeout, Duration::from_secs(5));
        assert_eq!(calls.trusted_signaling.len(), 3);
        assert_eq!(s.ng_config().allow, s.ng_allow);
        assert_eq!(
            aya::programs::XdpMode::from(s.xdp_mode),
            aya::programs::XdpMode::Skb
        );
        assert_eq!(FragmentPolicy::from(s.fragments), FragmentPolicy::Drop);
        // No trusted networks: any.
        let any = RunSettings::default().call_config();
        assert_eq!(
            any.trusted_signaling,
            CallConfig::default().trusted_signaling
        );
    }

    #[test]
    fn flags_override_the_file() {
        let file = parse(
            "log_format = \"json\"\n[filter]\ninterfaces = [\"eth0\"]\nmedia_ports = [\"10000-20000\"]\nmax_pinholes = 0\n",
        )
        .unwrap();
        // The file's max_pinholes is invalid, but the flag replaces it.
        let flags = RunOptions {
            interfaces: Some(vec!["eth1".into(), "eth2".into()]),
            max_pinholes: Some(4096),
            keep_pinned: Some(true),
            ..RunOptions::default()
        };
        let s = resolve(Some(file.clone()), flags).unwrap();
        assert_eq!(s.interfaces, ["eth1", "eth2"]);
        assert_eq!(s.max_pinholes, 4096);
        assert_eq!(s.log_format, LogFormat::Json);
        assert!(s.keep_pinned);
        // Without the flag the file's value stands, and is refused at its line.
        let e = resolve(Some(file), RunOptions::default()).unwrap_err();
        assert_eq!(
            e,
            vec![ConfigError {
                line: 5,
                col: 16,
                message: "`max_pinholes` in [filter]: 0 out of range (2-16777216 flows)".into()
            }]
        );
        // A bad value from a flag names the flag, without a position.
        let e = resolve(
            None,
            RunOptions {
                interfaces: Some(vec!["eth0".into()]),
                sip_ports: Some(vec![10000]),
                ..RunOptions::default()
            },
        )
        .unwrap_err();
        assert_eq!(e[0].line, 0);
        assert_eq!(
            e[0].message,
            "--sip-ports: SIP port 10000 lies in media port range 10000-20000; the filter would drop its UDP packets"
        );
        assert_eq!(e[0].to_string(), e[0].message);
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        // (file, [(line, col, message fragment)])
        type Want = Vec<(usize, usize, &'static str)>;
        let cases: Vec<(&str, Want)> = vec![
            (
                "[filter]\ninterfaces = [\"eth0\"]\nmax_pinhole = 5\nxdp_mode = \"hw\"\n[signalling]\nmode = \"inline\"\n",
                vec![
                    (3, 1, "unknown key `max_pinhole` in [filter]; expected one of interfaces, xdp_mode"),
                    (4, 12, "`xdp_mode` in [filter]: unknown variant `hw`, expected `native` or `skb`"),
                    (5, 2, "unknown section [signalling]; expected one of filter, signaling, ng, metrics, state"),
                ],
            ),
            (
                "[filter]\ninterfaces = [\"eth0\"]\nmax_pinholes = -1\ndefault_idle = \"300\"\nmedia_ports = [\"20-10\", 70000]\n",
                vec![
                    (3, 16, "`max_pinholes` in [filter]: invalid value: integer `-1`, expected u32"),
                    (4, 16, "`default_idle` in [filter]: invalid type: string \"300\", expected u64"),
                    (5, 16, "`media_ports` in [filter]: invalid port range `20-10`"),
                ],
            ),
            (
                "[filter]\ninterfaces = [\"eth0\"]\nmedia_ports = [70000]\n[signaling]\ntrusted_signaling = [\"192.0.2.0/33\"]\nsip_ports = [70000]\n",
                vec![
                    (3, 16, "invalid port 70000; expected 1-65535"),
                    (5, 21, "invalid network `192.0.2.0/33`"),
                    (6, 14, "`sip_ports` in [signaling]: invalid value: integer `70000`, expected u16"),
                ],
            ),
            (
                // Syntax errors: all of them.
                "[filter]\ninterfaces = [\"eth0\"]\nxdp_mode = native\nmax_pinholes = 1__0\n[ng\n",
                vec![
                    (3, 12, "invalid float"),
                    (4, 17, "`_` may only go between digits"),
                    (5, 4, "unclosed table"),
                ],
            ),
            (
                "filter = 3\n[ng]\nlisten = \"localhost:2223\"\n[metrics]\nlisten = \"127.0.0.1\"\n",
                vec![
                    (1, 10, "[filter] must be a table"),
                    (3, 10, "`listen` in [ng]: invalid socket address syntax"),
                    (5, 10, "`listen` in [metrics]: invalid socket address syntax"),
                ],
            ),
            (
                // Semantic errors, each at its key's value.
                "control = \"run/p.sock\"\n[filter]\ninterfaces = [\"eth0\", \"eth0\", \"a/b\", \"averyveryverylongname\"]\nmedia_ports = [\"10000-20000\", \"15000-15001\", 1, 2, 3, 4, 5, 6, 7]\n[signaling]\nsip_ports = [5060, 5060]\nrtsp_ports = [5060, 0]\nmax_pinholes_per_call = 0\nmax_calls_per_peer = 0\n[ng]\nlisten = \"127.0.0.1:0\"\nallow = []\n[state]\npin_dir = \"bpf\"\n",
                vec![
                    (1, 11, "`control`: `run/p.sock` is not an absolute path"),
                    (3, 14, "interface `eth0` listed twice"),
                    (3, 14, "invalid interface name `a/b`"),
                    (3, 14, "invalid interface name `averyveryverylongname`"),
                    (4, 15, "9 ranges; the filter holds at most 8"),
                    (4, 15, "ranges 10000-20000 and 15000-15001 overlap"),
                    (6, 13, "port 5060 listed twice"),
                    (7, 14, "invalid port 0"),
                    (7, 14, "port 5060 is both a SIP and an RTSP port"),
                    (8, 25, "`max_pinholes_per_call` in [signaling]: must be at least 1"),
                    (9, 22, "must be at least 1"),
                    (11, 10, "`listen` in [ng]: port 0"),
                    (12, 9, "`allow` in [ng]: empty: no client could use the ng listener"),
                    (14, 11, "`pin_dir` in [state]: `bpf` is not an absolute path"),
                ],
            ),
            (
                // --nat values: malformed, and overlapping inside networks.
                "[filter]\ninterfaces = [\"eth0\"]\n[signaling]\nnat = [\"192.0.2.1\"]\n",
                vec![(4, 7, "expected PUBLIC=INSIDE_CIDR")],
            ),
            (
                "[filter]\ninterfaces = [\"eth0\"]\n[signaling]\nnat = [\"192.0.2.1=198.51.100.0/24\", \"192.0.2.2=198.51.100.9\"]\n",
                vec![(4, 7, "`nat` in [signaling]: 192.0.2.2=198.51.100.9/32 and 192.0.2.1=198.51.100.0/24 overlap")],
            ),
            (
                "[filter]\nxdp_mode = \"skb\"\n",
                vec![(
                    0,
                    0,
                    "--iface or `interfaces` in [filter]: no interface to filter",
                )],
            ),
        ];
        for (text, want) in cases {
            let got = errors(text);
            assert_eq!(got.len(), want.len(), "{text}\n{got:#?}");
            for ((line, col, msg), (wl, wc, wm)) in got.iter().zip(&want) {
                assert_eq!((line, col), (wl, wc), "{msg}");
                assert!(msg.contains(wm), "`{msg}` lacks `{wm}`");
            }
        }
    }

    #[test]
    fn locations_and_rendering() {
        let cases = [
            ("abc", 0, (1, 1)),
            ("abc", 2, (1, 3)),
            ("a\nbc", 2, (2, 1)),
            ("a\nbc", 3, (2, 2)),
            ("é\nx", 1, (1, 1)),
            ("é\nx", 2, (1, 2)),
            ("ab", 99, (1, 3)),
        ];
        for (text, offset, (line, col)) in cases {
            assert_eq!(
                Location::of(text, offset),
                Location { line, col },
                "{text:?} {offset}"
            );
        }
        let errs = [
            ConfigError {
                line: 3,
                col: 7,
                message: "bad".into(),
            },
            ConfigError {
                line: 0,
                col: 0,
                message: "worse".into(),
            },
        ];
        assert_eq!(
            render(Path::new("/etc/p.toml"), &errs),
            "/etc/p.toml:3:7: bad\n/etc/p.toml: worse"
        );
        assert_eq!(errs[0].to_string(), "line 3, column 7: bad");
    }

    #[test]
    fn check_reads_files() {
        let dir = std::env::temp_dir().join(format!("pinhole-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, EXAMPLE).unwrap();
        let s = check(&good).unwrap();
        assert_eq!(s.interfaces, ["eth0"]);
        assert_eq!(
            summary(&good, &s),
            format!(
                "{}: ok: interfaces eth0; media ports 10000-20000; 262144 flows; signaling inline \
                 (SIP 5060, RTSP 554,7070,8554); ng 127.0.0.1:2223; metrics 127.0.0.1:9464; \
                 control /run/pinhole/control.sock",
                good.display()
            )
        );
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, b"[filter]\ninterfaces = [\"e\xff\"]\n").unwrap();
        let e = check(&bad).unwrap_err();
        assert_eq!(
            (e[0].line, e[0].col, e[0].message.as_str()),
            (2, 17, "not valid UTF-8")
        );
        let e = check(&dir.join("missing.toml")).unwrap_err();
        assert!(e[0].message.starts_with("cannot read: "), "{e:?}");
        let e = check(&dir).unwrap_err();
        assert_eq!(e[0].message, "not a regular file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
