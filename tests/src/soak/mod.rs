//! The soak (`pinhole-soak`, `cargo xtask soak`): calls at a steady rate
//! through the router for minutes, with RTP both ways on every call, and an
//! account of what was lost, what the daemon grew to and what it left.

pub mod analysis;
pub mod capture;
pub mod probe;
pub mod report;
