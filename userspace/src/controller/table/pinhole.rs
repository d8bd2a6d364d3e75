//! One open pinhole: its endpoints, its owners' claims, its flows and idle
//! deadline.

use std::collections::BTreeMap;

use pinhole_common::FlowKey;

use crate::addr::Pair;

pub(super) const NS_PER_SEC: u64 = 1_000_000_000;

/// Who holds a pinhole: `None` is the operator (CLI or control API without
/// owner), `Some(tag)` a signaling owner such as `sip:<call-id>;from-tag=…`.
pub type OwnerTag = Option<String>;

/// How an owner tag is shown: `manual` for the operator.
pub fn owner_name(owner: &OwnerTag) -> &str {
    owner.as_deref().unwrap_or(MANUAL_OWNER)
}

/// The name of the operator's owner tag.
pub const MANUAL_OWNER: &str = "manual";

/// Identifies a pinhole for as long as the daemon runs. Never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct PinholeId(pub u64);

impl std::fmt::Display for PinholeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What one owner asked for on a pinhole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// 0 = never idle out.
    pub idle_timeout_secs: u64,
    /// Wants the RTCP pair (A+1 ↔ B+1) too.
    pub rtcp: bool,
}

/// An open pinhole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pinhole {
    pub id: PinholeId,
    /// The endpoints in the orientation of the first open; `rtcp` is set when
    /// any owner wants RTCP.
    pub pair: Pair,
    /// The effective idle timeout: 0 (never) when any owner says never, else
    /// the longest one.
    pub idle_timeout_secs: u64,
    /// Owners and what each asked for, never empty. `None` (manual) sorts
    /// first.
    pub claims: BTreeMap<OwnerTag, Claim>,
    /// When it was first opened.
    pub created_ns: u64,
    /// The latest activity known: the last (re-)open or the newest
    /// `last_seen_ns` of its flows seen so far. Idle time counts from here.
    pub active_ns: u64,
    /// Its flows, in [`Pair::flows`] order.
    pub flows: Vec<FlowKey>,
}

impl Pinhole {
    /// The idle timeout in nanoseconds, `None` when it never expires.
    pub fn idle_timeout_ns(&self) -> Option<u64> {
        (self.idle_timeout_secs != 0).then(|| self.idle_timeout_secs.saturating_mul(NS_PER_SEC))
    }

    /// When it idles out unless its flows saw traffic after `active_ns`:
    /// `active_ns + timeout` (saturating); `None` when it never expires.
    pub fn deadline_ns(&self) -> Option<u64> {
        self.idle_timeout_ns()
            .map(|t| self.active_ns.saturating_add(t))
    }

    /// Whether its known activity makes it idle at `now_ns`.
    pub(super) fn idle_at(&self, now_ns: u64) -> bool {
        self.idle_timeout_ns()
            .is_some_and(|timeout| now_ns.saturating_sub(self.active_ns) >= timeout)
    }

    /// The latest activity, given the flows' `last_seen_ns`.
    pub fn last_active_ns(&self, mut last_seen: impl FnMut(&FlowKey) -> Option<u64>) -> u64 {
        self.flows
            .iter()
            .filter_map(&mut last_seen)
            .fold(self.active_ns, u64::max)
    }

    /// The owners' names (`manual` first when the operator holds it).
    pub fn owner_names(&self) -> impl Iterator<Item = &str> {
        self.claims.keys().map(owner_name)
    }

    /// Whether `owner` holds this pinhole.
    pub fn is_held_by(&self, owner: &OwnerTag) -> bool {
        self.claims.contains_key(owner)
    }
}

/// The effective RTCP choice and idle timeout of a set of claims.
pub(super) fn effective(claims: &BTreeMap<OwnerTag, Claim>) -> (bool, u64) {
    let rtcp = claims.values().any(|c| c.rtcp);
    let idle = if claims.values().any(|c| c.idle_timeout_secs == 0) {
        0
    } else {
        claims
            .values()
            .map(|c| c.idle_timeout_secs)
            .max()
            .unwrap_or(0)
    };
    (rtcp, idle)
}
