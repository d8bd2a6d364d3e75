//! The lab bench: pinhole against its peer (nftables with the conntrack SIP
//! helper) and plain forwarding, side by side in one outside → router →
//! inside veth lab, in one run. See `pinhole-labbench --help`.

pub mod blast;
pub mod calls;
pub mod control;
pub mod dataplane;
pub mod ha;
pub mod lab;
pub mod latency;
pub mod list_load;
pub mod nft;
pub mod pingpong;
pub mod report;
pub mod scale;
pub mod sip;
pub mod stats;
pub mod sys;
