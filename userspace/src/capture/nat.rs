//! NAT on the router itself: what pinhole sees when the router that runs it
//! also masquerades, port-forwards, or runs the conntrack SIP helper.
//!
//! The XDP program sees media as it arrives on the outside interface,
//! *before* the router's DNAT and before a masqueraded connection is
//! un-SNATed: addressed to the router's public address. The signaling rules
//! ([`super::rules`]) queue from mangle `FORWARD`/`INPUT`/`OUTPUT`, where
//! forwarded packets carry the *inside* addresses (after DNAT on the way in,
//! before SNAT on the way out), and the SDP is as the inside UA wrote it
//! (the SIP helper's `nf_nat_sip` rewrites it later, in `POSTROUTING`).
//! Pinholes built from that view name inside addresses that inbound media
//! never carries at XDP, so the media is dropped.
//!
//! Two parts:
//! - [`NatView`] (`--nat PUBLIC=INSIDE_CIDR`): the call layer sees every
//!   signaling message as the outside sees it: an address inside
//!   `INSIDE_CIDR`, as the packet's source or destination or as an SDP media
//!   address, becomes `PUBLIC` with the same port. That is exactly what
//!   masquerade/SNAT (which keeps a port when it is free), a port forward
//!   that keeps the ports, and `nf_nat_sip` (which keeps the media port when
//!   it is free) put on the wire. Pure; applied by the feed.
//! - Detection: at start the daemon reads the ruleset (`nft list ruleset`,
//!   `iptables-save`, `ip6tables-save`), finds masquerade/SNAT/DNAT/redirect
//!   rules that can touch the attached interfaces and the SIP ports or media
//!   range, and SIP conntrack helpers, and warns with what to do
//!   ([`advice`]). The parsers are pure and line based: they look for the
//!   statements that matter and treat what they cannot read as "could
//!   match" (a false warning costs a log line; a missed one costs calls).

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    process::Command,
    str::FromStr,
};

use ipnet::IpNet;
use pinhole_common::PortRange;
use thiserror::Error;

use crate::calls::SipEvent;

/// At most this many `--nat` mappings.
pub const MAX_NAT_MAPS: usize = 16;

/// One `--nat PUBLIC=INSIDE_CIDR` mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NatMap {
    /// The address the outside sees (the router's public address).
    pub public: IpAddr,
    /// The inside addresses that appear as `public`.
    pub inside: IpNet,
}

/// A `--nat` value that does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NatMapError {
    #[error("`{0}`: expected PUBLIC=INSIDE_CIDR, e.g. 192.0.2.1=198.51.100.0/24")]
    Form(String),
    #[error("`{0}`: not an IP address")]
    Public(String),
    #[error("`{0}`: not a CIDR network (or a single address)")]
    Inside(String),
    #[error("`{0}`: the public address and the inside network are of different families")]
    Family(String),
    #[error("`{0}`: the public address is inside the inside network")]
    PublicInside(String),
}

impl FromStr for NatMap {
    type Err = NatMapError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (public, inside) = s
            .split_once('=')
            .ok_or_else(|| NatMapError::Form(s.to_owned()))?;
        let public: IpAddr = public
            .trim()
            .parse()
            .map_err(|_| NatMapError::Public(public.trim().to_owned()))?;
        let inside = inside.trim();
        let inside: IpNet = inside
            .parse()
            .or_else(|_| inside.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| NatMapError::Inside(inside.to_owned()))?;
        if public.is_ipv4() != inside.addr().is_ipv4() {
            return Err(NatMapError::Family(s.to_owned()));
        }
        if inside.contains(&public) {
            return Err(NatMapError::PublicInside(s.to_owned()));
        }
        Ok(NatMap {
            public,
            inside: inside.trunc(),
        })
    }
}

impl fmt::Display for NatMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.public, self.inside)
    }
}

impl<'de> serde::Deserialize<'de> for NatMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of `--nat` mappings that is refused (checked with the settings).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum NatMapsError {
    #[error("{0} mappings; at most {MAX_NAT_MAPS}")]
    TooMany(usize),
    #[error("{a} and {b} overlap: an inside address must map to one public address")]
    Overlap { a: NatMap, b: NatMap },
}

/// Refuses more than [`MAX_NAT_MAPS`] mappings or two whose inside
/// networks overlap.
pub fn check_maps(maps: &[NatMap]) -> Result<(), NatMapsError> {
    if maps.len() > MAX_NAT_MAPS {
        return Err(NatMapsError::TooMany(maps.len()));
    }
    for (i, a) in maps.iter().enumerate() {
        for b in &maps[..i] {
            if a.inside.contains(&b.inside.network()) || b.inside.contains(&a.inside.network()) {
                return Err(NatMapsError::Overlap { a: *a, b: *b });
            }
        }
    }
    Ok(())
}

/// Signaling as the outside sees it through the router's NAT (see the
/// module docs). Empty: no translation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatView {
    maps: Vec<NatMap>,
}

impl NatView {
    pub fn new(maps: Vec<NatMap>) -> Self {
        NatView { maps }
    }

    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// `addr` as the outside sees it: the public address of the mapping
    /// whose inside network holds it, same port; else unchanged.
    pub fn outside(&self, addr: SocketAddr) -> SocketAddr {
        match self.maps.iter().find(|m| m.inside.contains(&addr.ip())) {
            Some(m) => SocketAddr::new(m.public, addr.port()),
            None => addr,
        }
    }

    /// Rewrites a SIP event's addresses (packet source and destination,
    /// every SDP media address) as the outside sees them.
    pub fn apply(&self, ev: &mut SipEvent) {
        if self.maps.is_empty() {
            return;
        }
        ev.src = self.outside(ev.src);
        ev.dst = self.outside(ev.dst);
        for m in ev.sdp.iter_mut().flatten() {
            m.rtp = m.rtp.map(|a| self.outside(a));
            m.rtcp = m.rtcp.map(|a| self.outside(a));
        }
    }
}

/// What a NAT-related rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NatKind {
    /// `masquerade`: source NAT to the outgoing interface's address.
    Masquerade,
    /// `snat to ADDR`.
    Snat,
    /// `dnat to ADDR`: a port forward.
    Dnat,
    /// `redirect`: destination NAT to the router itself.
    Redirect,
    /// A conntrack SIP helper (`ct helper` of type `sip`, or
    /// `-j CT --helper sip`): with NAT, `nf_nat_sip` rewrites SIP and SDP.
    SipHelper,
}

impl NatKind {
    fn is_source_nat(self) -> bool {
        matches!(self, NatKind::Masquerade | NatKind::Snat)
    }
}

/// An interface match of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IfaceMatch {
    /// No interface match (or one this parser cannot read).
    Any,
    /// `oifname "eth0"` / `-o eth0`; a trailing `*` or `+` is a wildcard.
    Is(String),
    /// `oifname != "eth0"` / `! -o eth0`.
    Not(String),
}

impl IfaceMatch {
    fn matches(&self, iface: &str) -> bool {
        let is = |pat: &str| match pat.strip_suffix(['*', '+']) {
            Some(prefix) => iface.starts_with(prefix),
            None => iface == pat,
        };
        match self {
            IfaceMatch::Any => true,
            IfaceMatch::Is(p) => is(p),
            IfaceMatch::Not(p) => !is(p),
        }
    }
}

/// Destination ports a rule is limited to, as inclusive ranges (`None`:
/// any port).
pub type Ports = Option<Vec<(u16, u16)>>;

/// What identifies a rule across listings (see [`NatRule::identity`]).
type Identity = (NatKind, IfaceMatch, Ports, Option<String>);

/// Parses one tool's listing.
type Parser = fn(&str) -> Vec<NatRule>;

/// A NAT-related rule found in the ruleset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatRule {
    pub kind: NatKind,
    /// The outgoing interface for source NAT, the incoming one for DNAT and
    /// redirect; [`IfaceMatch::Any`] for helpers.
    pub iface: IfaceMatch,
    /// Destination ports the rule is limited to (`None`: any port).
    pub dports: Ports,
    /// The `to` address of SNAT/DNAT, as written.
    pub to: Option<String>,
    /// The rule as listed, trimmed.
    pub rule: String,
}

impl NatRule {
    /// What identifies a rule across listings: iptables-nft rules show up
    /// in both `nft list ruleset` and `iptables-save`.
    fn identity(&self) -> Identity {
        (
            self.kind,
            self.iface.clone(),
            self.dports.clone(),
            self.to.clone(),
        )
    }
}

/// Splits a line into words, dropping double quotes and splitting off
/// braces and commas (`{ 5060, 10000-20000 }`).
fn words(line: &str) -> Vec<String> {
    line.replace(['{', '}', ','], " ")
        .split_whitespace()
        .map(|w| w.trim_matches('"').to_owned())
        .collect()
}

/// A port, or a range `a-b` (nft) / `a:b` (iptables).
fn port_range(w: &str) -> Option<(u16, u16)> {
    match w.split_once(['-', ':']) {
        Some((a, b)) => {
            let (a, b) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b).then_some((a, b))
        }
        None => w.parse().ok().map(|p| (p, p)),
    }
}

/// The ports listed from `words[i]` on (a set, a range or one port).
fn ports_from(words: &[String], i: usize) -> Vec<(u16, u16)> {
    words[i.min(words.len())..]
        .iter()
        .map_while(|w| port_range(w))
        .collect()
}

/// NAT rules and SIP helpers in `nft list ruleset` output. `xt target`
/// rules (iptables-nft) are left to [`parse_iptables_save`], which shows
/// their arguments.
pub fn parse_nft(text: &str) -> Vec<NatRule> {
    let mut out = Vec::new();
    // Inside a `ct helper NAME {` block.
    let mut in_helper = false;
    for line in text.lines() {
        let t = line.trim();
        let w = words(t);
        if w.first().map(String::as_str) == Some("ct")
            && w.get(1).map(String::as_str) == Some("helper")
            && t.ends_with('{')
        {
            in_helper = true;
            continue;
        }
        if in_helper {
            if t.starts_with('}') {
                in_helper = false;
            } else if w.first().map(String::as_str) == Some("type")
                && w.get(1).is_some_and(|h| h.eq_ignore_ascii_case("sip"))
            {
                out.push(NatRule {
                    kind: NatKind::SipHelper,
                    iface: IfaceMatch::Any,
                    dports: None,
                    to: None,
                    rule: t.to_owned(),
                });
            }
            continue;
        }
        let Some((kind, at)) = w.iter().enumerate().find_map(|(i, x)| {
            let k = match x.as_str() {
                "masquerade" => NatKind::Masquerade,
                "snat" => NatKind::Snat,
                "dnat" => NatKind::Dnat,
                "redirect" => NatKind::Redirect,
                _ => return None,
            };
            Some((k, i))
        }) else {
            continue;
        };
        let iface_kw = if kind.is_source_nat() {
            ["oifname", "oif"]
        } else {
            ["iifname", "iif"]
        };
        let mut iface = IfaceMatch::Any;
        let mut dports: Option<Vec<(u16, u16)>> = None;
        for (i, x) in w[..at].iter().enumerate() {
            if iface_kw.contains(&x.as_str()) {
                iface = match w.get(i + 1).map(String::as_str) {
                    Some("!=") => w
                        .get(i + 2)
                        .map_or(IfaceMatch::Any, |n| IfaceMatch::Not(n.clone())),
                    Some("==") => w
                        .get(i + 2)
                        .map_or(IfaceMatch::Any, |n| IfaceMatch::Is(n.clone())),
                    Some(n) => IfaceMatch::Is(n.to_owned()),
                    None => IfaceMatch::Any,
                };
            } else if x == "dport" && w.get(i + 1).map(String::as_str) != Some("!=") {
                let p = ports_from(&w, i + 1);
                if !p.is_empty() {
                    dports.get_or_insert_with(Vec::new).extend(p);
                }
            }
        }
        let to = w[at..]
            .iter()
            .position(|x| x == "to")
            .and_then(|i| w.get(at + i + 1))
            .cloned();
        out.push(NatRule {
            kind,
            iface,
            dports,
            to,
            rule: t.to_owned(),
        });
    }
    out
}

/// NAT rules and SIP helpers in `iptables-save`/`ip6tables-save` output.
pub fn parse_iptables_save(text: &str) -> Vec<NatRule> {
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if !t.starts_with("-A ") {
            continue;
        }
        let w: Vec<String> = t.split_whitespace().map(str::to_owned).collect();
        let arg = |flag: &str| {
            w.iter()
                .position(|x| x == flag)
                .and_then(|i| w.get(i + 1))
                .cloned()
        };
        let Some(target) = arg("-j") else { continue };
        let kind = match target.as_str() {
            "MASQUERADE" => NatKind::Masquerade,
            "SNAT" => NatKind::Snat,
            "DNAT" => NatKind::Dnat,
            "REDIRECT" => NatKind::Redirect,
            "CT" if arg("--helper").is_some_and(|h| h.eq_ignore_ascii_case("sip")) => {
                NatKind::SipHelper
            }
            _ => continue,
        };
        let flag = if kind.is_source_nat() { "-o" } else { "-i" };
        let iface = match w.iter().position(|x| x == flag) {
            Some(i) => match w.get(i + 1) {
                Some(n) if i > 0 && w[i - 1] == "!" => IfaceMatch::Not(n.clone()),
                Some(n) => IfaceMatch::Is(n.clone()),
                None => IfaceMatch::Any,
            },
            None => IfaceMatch::Any,
        };
        let mut dports: Option<Vec<(u16, u16)>> = None;
        for (i, x) in w.iter().enumerate() {
            let negated = i > 0 && w[i - 1] == "!";
            if (x == "--dport" || x == "--dports" || x == "--destination-port") && !negated {
                let p: Vec<(u16, u16)> = w
                    .get(i + 1)
                    .map(|v| v.split(',').filter_map(port_range).collect())
                    .unwrap_or_default();
                if !p.is_empty() {
                    dports.get_or_insert_with(Vec::new).extend(p);
                }
            }
        }
        let to = arg("--to-source")
            .or_else(|| arg("--to-destination"))
            .or_else(|| arg("--to-ports"));
        out.push(NatRule {
            kind,
            iface: if kind == NatKind::SipHelper {
                IfaceMatch::Any
            } else {
                iface
            },
            dports,
            to,
            rule: t.to_owned(),
        });
    }
    out
}

/// What the daemon watches, for judging which rules matter.
#[derive(Clone, Debug, Default)]
pub struct Watched<'a> {
    pub interfaces: &'a [String],
    pub sip_ports: &'a [u16],
    pub media_ports: &'a [PortRange],
}

/// Whether `rule` can change the addresses of signaling or media crossing
/// an attached interface.
pub fn relevant(rule: &NatRule, w: &Watched<'_>) -> bool {
    let on_iface = w.interfaces.iter().any(|i| rule.iface.matches(i));
    let ports = match &rule.dports {
        None => true,
        Some(ps) => ps.iter().any(|&(lo, hi)| {
            w.sip_ports.iter().any(|p| (lo..=hi).contains(p))
                || w.media_ports.iter().any(|r| lo <= r.hi && r.lo <= hi)
        }),
    };
    on_iface && ports
}

/// The relevant rules of several listings, each once.
pub fn findings(listings: &[Vec<NatRule>], w: &Watched<'_>) -> Vec<NatRule> {
    let mut out: Vec<NatRule> = Vec::new();
    for r in listings.iter().flatten() {
        if relevant(r, w) && !out.iter().any(|o| o.identity() == r.identity()) {
            out.push(r.clone());
        }
    }
    out
}

/// How loud a piece of advice is.
/// The NAT rules (helpers aside) of `listings` that can touch media on
/// `interfaces` in `media_ports`: with `--forward xdp` such media skips
/// them (XDP redirects it before netfilter), so the daemon warns.
pub fn media_nat(
    listings: &[Vec<NatRule>],
    interfaces: &[String],
    media_ports: &[PortRange],
) -> Vec<NatRule> {
    let w = Watched {
        interfaces,
        sip_ports: &[],
        media_ports,
    };
    findings(listings, &w)
        .into_iter()
        .filter(|r| r.kind != NatKind::SipHelper)
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
}

/// The line to log about NAT on this router, given the relevant rules and
/// the `--nat` mappings: a warning saying what to do when NAT rules are
/// there and `--nat` is not, a note that `--nat` covers them otherwise.
pub fn advice(found: &[NatRule], maps: &[NatMap], interfaces: &[String]) -> Vec<(Level, String)> {
    let mut out = Vec::new();
    if !maps.is_empty() && interfaces.len() > 1 {
        out.push((
            Level::Warn,
            format!(
                "--nat with {} interfaces ({}): pinholes carry the public addresses, so media arriving on an inside interface matches none; attach to the outside interface only",
                interfaces.len(),
                interfaces.join(",")
            ),
        ));
    }
    let nat: Vec<&NatRule> = found
        .iter()
        .filter(|r| r.kind != NatKind::SipHelper)
        .collect();
    let helper = found.iter().find(|r| r.kind == NatKind::SipHelper);
    if nat.is_empty() {
        if let Some(h) = helper {
            out.push((
                Level::Info,
                format!(
                    "the conntrack SIP helper is configured (`{}`) but no NAT touches the attached interfaces: it does not change addresses, pinhole needs nothing more",
                    h.rule
                ),
            ));
        }
        if !maps.is_empty() {
            out.push((
                Level::Warn,
                format!(
                    "--nat {} given but no masquerade, SNAT or DNAT rule of this namespace touches the attached interfaces and the SIP or media ports: check that the NAT happens on this router",
                    join(maps)
                ),
            ));
        }
        return out;
    }
    let rules = nat
        .iter()
        .map(|r| format!("`{}`", r.rule))
        .collect::<Vec<_>>()
        .join(", ");
    let helper_note = helper.map_or(String::new(), |h| {
        format!(
            "; the conntrack SIP helper (`{}`) rewrites the SDP after pinhole reads it and keeps the media port when it is free, which is what --nat predicts",
            h.rule
        )
    });
    if maps.is_empty() {
        out.push((
            Level::Warn,
            format!(
                "NAT on this router ({rules}): XDP sees inbound media addressed to the router's public address while the signaling it reads names the inside addresses, so calls through this NAT lose their inbound media. Run with --nat PUBLIC=INSIDE_CIDR (the router's address on the outside interface = the inside network or the forwarded host, e.g. --nat 192.0.2.1=198.51.100.0/24), attached to the outside interface only; see docs/deployments.md \"NAT on the router\"{helper_note}"
            ),
        ));
    } else {
        out.push((
            Level::Info,
            format!(
                "NAT on this router ({rules}): signaling is read as the outside sees it, --nat {}{helper_note}",
                join(maps)
            ),
        ));
    }
    out
}

fn join(maps: &[NatMap]) -> String {
    maps.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads this namespace's ruleset with whichever of `nft`, `iptables-save`
/// and `ip6tables-save` are installed and answer; returns the NAT rules of
/// each listing and the listings that failed (tool, reason).
pub fn read_ruleset() -> (Vec<Vec<NatRule>>, Vec<(&'static str, String)>) {
    let mut listings = Vec::new();
    let mut failed = Vec::new();
    let tools: [(&'static str, &[&str], Parser); 3] = [
        ("nft", &["list", "ruleset"], parse_nft),
        ("iptables-save", &[], parse_iptables_save),
        ("ip6tables-save", &[], parse_iptables_save),
    ];
    for (tool, args, parse) in tools {
        match Command::new(tool).args(args).output() {
            Ok(o) if o.status.success() => {
                listings.push(parse(&String::from_utf8_lossy(&o.stdout)));
            }
            Ok(o) => failed.push((
                tool,
                format!(
                    "{}: {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            )),
            Err(e) => failed.push((tool, e.to_string())),
        }
    }
    (listings, failed)
}

/// Reads the ruleset and logs [`advice`] for it (the start-up check of
/// `pinhole run` with inline signaling). A ruleset that cannot be read at
/// all is said once at INFO: pinhole then cannot tell whether NAT is there.
pub fn check_router(w: &Watched<'_>, maps: &[NatMap]) {
    let (listings, failed) = read_ruleset();
    for (tool, why) in &failed {
        tracing::debug!(tool, "reading the ruleset for NAT rules failed: {why}");
    }
    if listings.is_empty() {
        tracing::info!(
            "could not read the ruleset (nft, iptables-save, ip6tables-save) to look for NAT on this router; if it masquerades or forwards ports, see --nat"
        );
    }
    let found = findings(&listings, w);
    for (level, line) in advice(&found, maps, w.interfaces) {
        match level {
            Level::Info => tracing::info!("{line}"),
            Level::Warn => tracing::warn!("{line}"),
        }
    }
}

#[cfg(test)]
mod tests;
