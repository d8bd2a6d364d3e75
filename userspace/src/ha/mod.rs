//! HA: pinhole state shared between routers through Redis (`--ha-redis`,
//! `--ha-node`).
//!
//! Every node writes the pinholes it owns (its local claims: signaled
//! calls, ng calls, RTSP sessions, pairs latched in XDP, manual opens) to a
//! Redis hash namespaced by its name, with a TTL it refreshes, and publishes
//! each change on one pub/sub channel ([`schema`]). Every node installs the
//! others' pinholes in its own table and maps as *foreign* claims that do
//! not idle out ([`crate::controller::foreign`]), so traffic that moves to
//! it passes from the first packet. A call's end seen on any node is
//! published and closes the call everywhere. A node adopts foreign
//! pinholes on `pinhole ha promote` (a keepalived notify script) or when
//! their owner's keys expire.
//!
//! The [`replicator`] task does all the talking to Redis; the controller
//! never waits on it. Pub/sub plus a full read on every (re)connect needs
//! no server configuration (keyspace notifications would).

pub mod diff;
pub mod replicator;
pub mod schema;

use std::{path::PathBuf, time::Duration};

use pinhole_common::PortRange;

/// Default TTL of a node's keys; the heartbeat refreshes them every third
/// of it.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
/// Reconnect backoff: first and longest wait.
pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long one Redis command may take before the connection counts as
/// lost.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// Ends of calls queued for the replicator.
pub const ENDS_DEPTH: usize = 4096;

/// `--ha-*` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaConfig {
    /// `redis://[user:password@]host:port/db` or `rediss://…` (TLS).
    pub url: String,
    /// This node's name, unique among the nodes sharing the Redis.
    pub node: String,
    /// TTL of this node's keys.
    pub ttl: Duration,
    /// PEM CA bundle for `rediss://` (default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// Most foreign pinholes installed (beyond them peers' records are
    /// refused and counted); the flow table's capacity caps them too.
    pub max_foreign: usize,
    /// The media port ranges: a peer's pair outside them is refused.
    pub media_ports: Vec<PortRange>,
}

impl HaConfig {
    /// The URL with any password replaced, for logs.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }
}

/// `scheme://user:secret@host` → `scheme://user:***@host`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((auth, host)) => match auth.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://***@{host}"),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        for (url, shown) in [
            ("redis://192.0.2.5:6379/0", "redis://192.0.2.5:6379/0"),
            (
                "redis://pinhole:s3cr3t@192.0.2.5:6379/0",
                "redis://pinhole:***@192.0.2.5:6379/0",
            ),
            ("rediss://:s3cr3t@192.0.2.5", "rediss://:***@192.0.2.5"),
            ("rediss://token@192.0.2.5", "rediss://***@192.0.2.5"),
            ("nonsense", "nonsense"),
        ] {
            assert_eq!(super::redact(url), shown);
        }
    }
}
