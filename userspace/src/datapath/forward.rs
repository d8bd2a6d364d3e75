//! `--forward xdp`: which interfaces the program may redirect forwarded
//! media to (the `DEVMAP_HASH` [`FORWARD_TX_MAP`]).
//!
//! The program routes a hit itself (FIB lookup, TTL, MACs; see the eBPF
//! crate's `forward.rs`) and redirects it only to an egress in this map;
//! any other egress falls back to the stack (`fwd_egress_not_in_devmap`).
//! The map is rewritten at every start, so a pinned copy from an earlier
//! daemon never names interfaces this one was not given.

use aya::{
    maps::{DevMapHash, MapData},
    Ebpf,
};
use pinhole_common::{FORWARD_TX_MAP, MAX_FORWARD_IFACES};

use super::error::LoadError;

/// How a hit reaches its next hop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    /// The kernel's stack forwards it (netfilter, tc, packet sockets see
    /// it): the default.
    #[default]
    Stack,
    /// The XDP program forwards it itself (`bpf_fib_lookup` +
    /// `bpf_redirect_map`), bypassing the stack.
    Xdp,
}

/// Makes the forward map hold exactly `ifaces` (name, ifindex). The kernel
/// resolves each ifindex in the caller's network namespace.
pub fn set_egress(ebpf: &mut Ebpf, ifaces: &[(String, u32)]) -> Result<(), LoadError> {
    if ifaces.len() > MAX_FORWARD_IFACES as usize {
        return Err(LoadError::ForwardIfaces(format!(
            "{} forward interfaces, at most {MAX_FORWARD_IFACES}",
            ifaces.len()
        )));
    }
    let map = ebpf.map_mut(FORWARD_TX_MAP).ok_or(LoadError::Missing {
        what: "map",
        name: FORWARD_TX_MAP,
    })?;
    let mut tx: DevMapHash<&mut MapData> =
        DevMapHash::try_from(map).map_err(|source| LoadError::MapType {
            name: FORWARD_TX_MAP,
            source,
        })?;
    let stale: Vec<u32> = tx.keys().filter_map(Result::ok).collect();
    for k in stale {
        // Already gone is as good as removed.
        let _ = tx.remove(k);
    }
    for (name, ifindex) in ifaces {
        tx.insert(*ifindex, *ifindex, None, 0)
            .map_err(|e| LoadError::ForwardIfaces(format!("{name} (ifindex {ifindex}): {e}")))?;
    }
    Ok(())
}
