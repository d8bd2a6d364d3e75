//! The peer: the kernel's own answer to the same job, nftables with the
//! conntrack SIP helper, configured in the router namespace.
//!
//! SIP on UDP 5060 gets the `sip` helper (`ct helper set`), which reads the
//! SDP of INVITEs and answers and creates expectations for the media; packets
//! of established or expected (related) connections are accepted; other UDP
//! to the media range is dropped and counted. Checked against nftables 1.0.6.

use anyhow::{Context, Result};
use pinhole_integration::Netns;

/// The bench's table (family `inet`: IPv4 and IPv6).
pub const TABLE: &str = "phbench";
/// The named counter of the drop rule.
pub const DROP_COUNTER: &str = "media_drop";

/// The ruleset for media ports `lo..=hi`.
pub fn ruleset(lo: u16, hi: u16) -> String {
    format!(
        "table inet {TABLE} {{
  ct helper sip5060 {{
    type \"sip\" protocol udp
    l3proto inet
  }}
  counter {DROP_COUNTER} {{ }}
  chain prerouting {{
    type filter hook prerouting priority filter; policy accept;
    udp dport 5060 ct helper set \"sip5060\"
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
    udp dport {lo}-{hi} counter name \"{DROP_COUNTER}\" drop
  }}
}}
"
    )
}

/// The peer's table in a namespace; deleted on drop.
#[derive(Debug)]
pub struct Peer<'a> {
    ns: &'a Netns,
}

impl<'a> Peer<'a> {
    /// Loads the ruleset into `ns`.
    pub fn load(ns: &'a Netns, lo: u16, hi: u16) -> Result<Peer<'a>> {
        let mut child = ns
            .command("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("starting nft")?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().context("nft's stdin")?;
            stdin
                .write_all(ruleset(lo, hi).as_bytes())
                .context("writing the ruleset to nft")?;
        }
        let out = child.wait_with_output().context("waiting for nft")?;
        anyhow::ensure!(
            out.status.success(),
            "nft -f refused the peer's ruleset: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(Peer { ns })
    }

    /// Packets dropped by the media rule so far.
    pub fn dropped(&self) -> Result<u64> {
        let out = self.ns.exec(
            "nft",
            &["-j", "list", "counter", "inet", TABLE, DROP_COUNTER],
        )?;
        counter_packets(&out)
    }
}

impl Drop for Peer<'_> {
    fn drop(&mut self) {
        let _ = self.ns.exec("nft", &["delete", "table", "inet", TABLE]);
    }
}

/// `packets` of the one counter in `nft -j list counter …` output.
fn counter_packets(json: &str) -> Result<u64> {
    let v: serde_json::Value = serde_json::from_str(json).context("nft's JSON")?;
    v["nftables"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find_map(|i| i.get("counter").and_then(|c| c["packets"].as_u64()))
        })
        .with_context(|| format!("no counter in nft's output: {json}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_names_the_range_and_counter() {
        let r = ruleset(10000, 20000);
        assert!(r.contains("udp dport 10000-20000 counter name \"media_drop\" drop"));
        assert!(r.contains("type \"sip\" protocol udp"));
        assert!(r.contains("ct state established,related accept"));
    }

    #[test]
    fn counter_json() {
        let ok = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"counter": {"family": "inet", "name": "media_drop", "table": "phbench",
             "handle": 4, "packets": 12, "bytes": 768}}]}"#;
        assert_eq!(counter_packets(ok).unwrap(), 12);
        for bad in ["", "{}", r#"{"nftables": [{"metainfo": {}}]}"#] {
            assert!(counter_packets(bad).is_err(), "{bad:?}");
        }
    }
}
