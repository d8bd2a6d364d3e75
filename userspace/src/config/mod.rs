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
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use pinhole_common::{PortRange, DEFAULT_MAX_FLOWS};
use serde::de::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

mod diagnostics;
mod validate;
mod values;

pub use diagnostics::{render, render_one, ConfigError, Key, Location, Problem, SettingName};
use validate::validate;
pub use validate::BadSetting;
pub use values::{parse_cidr, Fragments, LogFormat, OnOff, SignalingMode};
use values::{Nets, Ports};

use crate::calls::CallConfig;
use crate::capture::nat::NatMap;
use crate::datapath::forward::ForwardMode;
use crate::datapath::load::XdpMode;
use crate::ng::NgConfig;

/// An invalid configuration (file or flags): bad input (exit 2). Every
/// problem found is kept, typed, in the order the user should read them.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file at `path` could not be read or parsed. Shown as
    /// `PATH:LINE:COL: message` (`PATH: message` for the file as a whole),
    /// joined by `; `.
    #[error("invalid configuration: {}", render(path, problems).replace('\n', "; "))]
    File {
        path: PathBuf,
        problems: Vec<ConfigError>,
    },
    /// The settings (the file, if any, with the flags over it) are invalid.
    /// A problem in the file is shown as `PATH:LINE:COL: message`, the
    /// others name their flag or key; joined by `; `.
    #[error("invalid configuration: {}", invalid_line(file.as_deref(), problems))]
    Invalid {
        file: Option<PathBuf>,
        problems: Vec<ConfigError>,
    },
}

impl SettingsError {
    /// Every problem.
    pub fn problems(&self) -> &[ConfigError] {
        match self {
            SettingsError::File { problems, .. } | SettingsError::Invalid { problems, .. } => {
                problems
            }
        }
    }

    /// One line per problem, each naming the file when there is one, for
    /// `pinhole check-config`: `PATH:LINE:COL: message` or `PATH: message`.
    pub fn lines(&self) -> Vec<String> {
        let path = match self {
            SettingsError::File { path, .. } => Some(path.as_path()),
            SettingsError::Invalid { file, .. } => file.as_deref(),
        };
        self.problems()
            .iter()
            .map(|e| match path {
                Some(path) => render_one(path, e),
                None => e.to_string(),
            })
            .collect()
    }
}

fn invalid_line(file: Option<&Path>, problems: &[ConfigError]) -> String {
    problems
        .iter()
        .map(|e| match file {
            Some(path) if e.at.is_some() => render_one(path, e),
            _ => e.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Where the systemd unit and the docs put the file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/pinhole/pinhole.toml";

/// Largest config file read (a complete one is a few KiB).
pub const MAX_FILE_SIZE: u64 = 1 << 20;
/// Longest latching window (`--latching`): latching is bounded.
pub const MAX_LATCHING_SECS: u64 = 300;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

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
    /// Who forwards open media: the stack or the XDP program.
    forward: ForwardMode, wire ForwardMode, file ("forward", "mode"), flag "--forward";
    /// Interfaces XDP-forwarded media may leave by.
    forward_ifaces: Vec<String>, wire Vec<String>, file ("forward", "interfaces"), flag "--forward-iface";
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
    /// Who forwards a hit: `stack` (the default) or `xdp` (the program
    /// routes and redirects it itself; see docs/deployments.md, "XDP forwarding").
    pub forward: ForwardMode,
    /// With `--forward xdp`, the interfaces forwarded media may leave by.
    /// Empty (the default) = the filtered interfaces.
    pub forward_ifaces: Vec<String>,
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
            forward: ForwardMode::Stack,
            forward_ifaces: Vec::new(),
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
    /// The file's path, when it was read from one ([`load`]).
    path: Option<PathBuf>,
}

/// Reads and parses the file at `path` (at most [`MAX_FILE_SIZE`] bytes).
pub fn load(path: &Path) -> Result<ConfigFile, SettingsError> {
    let fail = |at: Option<Location>, problem: Problem| SettingsError::File {
        path: path.to_owned(),
        problems: vec![ConfigError::at(at, problem)],
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(None, Problem::Read(e)))?;
    if !meta.is_file() {
        return Err(fail(None, Problem::NotAFile));
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(fail(
            None,
            Problem::TooLarge {
                size: meta.len(),
                limit: MAX_FILE_SIZE,
            },
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(None, Problem::Read(e)))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let loc = Location::of(
            &String::from_utf8_lossy(e.as_bytes()),
            e.utf8_error().valid_up_to(),
        );
        fail(Some(loc), Problem::NotUtf8(e.utf8_error()))
    })?;
    let mut file = parse(&text).map_err(|problems| SettingsError::File {
        path: path.to_owned(),
        problems,
    })?;
    file.path = Some(path.to_owned());
    Ok(file)
}

/// Parses a config file's text. Reports every syntax error, unknown
/// section or key, and value of the wrong type or form.
pub fn parse(text: &str) -> Result<ConfigFile, Vec<ConfigError>> {
    let (root, syntax) = DeTable::parse_recoverable(text);
    let at = |span: Option<Range<usize>>| span.map(|s| Location::of(text, s.start));
    let mut errors: Vec<ConfigError> = syntax
        .iter()
        .map(|e| ConfigError::at(at(e.span()), Problem::Syntax(e.clone())))
        .collect();
    if !errors.is_empty() {
        errors.sort_by_key(ConfigError::position);
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
        let where_ = || Key {
            section: section.to_owned(),
            name: name.to_owned(),
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
                    Problem::UnknownKey {
                        key: where_(),
                        expected: known,
                    },
                ));
            }
            Some(Err(e)) => errors.push(ConfigError::at(
                at(e.span().or(Some(value.span()))),
                Problem::BadValue {
                    key: where_(),
                    source: e,
                },
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
                Problem::NotATable {
                    section: name.to_owned(),
                },
            )),
            DeValue::Table(_) => {
                let mut sections: Vec<&str> = KEYS.iter().map(|k| k.0).collect();
                sections.retain(|s| !s.is_empty());
                sections.dedup();
                errors.push(ConfigError::at(
                    at(Some(key.span())),
                    Problem::UnknownSection {
                        section: name.to_owned(),
                        expected: sections,
                    },
                ));
            }
            _ => field("", key, value, &mut errors),
        }
    }
    errors.sort_by_key(ConfigError::position);
    if errors.is_empty() {
        Ok(file)
    } else {
        Err(errors)
    }
}

/// Reads, parses and validates the file at `path` as `pinhole run` would
/// with no flags, without touching the kernel (`pinhole check-config`).
pub fn check(path: &Path) -> Result<RunSettings, SettingsError> {
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
pub fn resolve(file: Option<ConfigFile>, flags: RunOptions) -> Result<RunSettings, SettingsError> {
    let file = file.unwrap_or_default();
    let from_flags = flags.set_fields();
    let locate = |field: &'static str| -> (Option<Location>, SettingName) {
        let (section, key, _, flag) = KEYS
            .iter()
            .find(|k| k.2 == field)
            .copied()
            .expect("a declared field");
        if from_flags.contains(&field) {
            return (None, SettingName::Flag(flag));
        }
        let key = Key {
            section: section.to_owned(),
            name: key.to_owned(),
        };
        match file.locations.get(field) {
            Some(loc) => (Some(*loc), SettingName::Key(key)),
            // Neither the file nor a flag set it: name both.
            None => (None, SettingName::FlagOrKey { flag, key }),
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
        forward: o.forward.unwrap_or(d.forward),
        forward_ifaces: o.forward_ifaces.unwrap_or(d.forward_ifaces),
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
    // Problems in the file first, by position; then the others.
    errors.sort_by_key(|e| (e.at.is_none(), e.position()));
    if errors.is_empty() {
        Ok(s)
    } else {
        Err(SettingsError::Invalid {
            file: file.path,
            problems: errors,
        })
    }
}

#[cfg(test)]
mod tests;
