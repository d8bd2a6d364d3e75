//! Refusals of the pinhole table.

use std::net::SocketAddr;

/// Refusals of the pinhole table. None of them changes the table.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TableError {
    #[error(
        "flow table full: the pinhole needs {needed} new flows but only {free} of {capacity} \
         are free (close pinholes or raise --max-pinholes)"
    )]
    Full {
        needed: usize,
        free: usize,
        capacity: usize,
    },
    #[error("no pinhole {a} <-> {b}")]
    NotFound { a: SocketAddr, b: SocketAddr },
    #[error("the open plan is stale: the table changed since it was made")]
    StalePlan,
    #[error("pinhole {id} ({a} <-> {b}) cannot be restored: {why}")]
    Restore {
        id: u64,
        a: SocketAddr,
        b: SocketAddr,
        why: String,
    },
}
