//! The requests and results of table changes, and the flow map operations
//! they carry.

use pinhole_common::FlowKey;

use super::{OwnerTag, Pinhole, PinholeId};
use crate::addr::Pair;

/// One change to the flow map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapOp {
    Insert(FlowKey),
    Remove(FlowKey),
}

/// What to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenRequest {
    pub pair: Pair,
    /// Seconds without traffic after which the pinhole closes; 0 = never.
    pub idle_timeout_secs: u64,
    /// Who opens it; `None` for the operator.
    pub owner: OwnerTag,
}

/// Whether an open created a pinhole or updated an existing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenOutcome {
    /// A new pinhole.
    Opened,
    /// The pinhole existed; this owner's claim was added or updated.
    Refreshed,
}

/// A checked open that has not been applied yet: apply `ops` to the flow map,
/// then [`PinholeTable::commit`](super::PinholeTable::commit) the plan. Dropping it leaves the table as it
/// was, which is how a failed map update is rolled back.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "a plan does nothing until it is committed"]
pub struct OpenPlan {
    pub(super) generation: u64,
    pub(super) pinhole: Pinhole,
    pub(super) outcome: OpenOutcome,
    /// Inserts first, then removes (a re-open that drops RTCP removes flows).
    pub ops: Vec<MapOp>,
}

impl OpenPlan {
    pub fn id(&self) -> PinholeId {
        self.pinhole.id
    }

    pub fn outcome(&self) -> OpenOutcome {
        self.outcome
    }

    pub fn pinhole(&self) -> &Pinhole {
        &self.pinhole
    }
}

/// The result of [`PinholeTable::release`](super::PinholeTable::release).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// The pinhole after the release (as it was, when it closed).
    pub pinhole: Pinhole,
    /// True when the last owner left and the pinhole closed.
    pub closed: bool,
    /// Flow removals to apply (none while other owners need every flow).
    pub ops: Vec<MapOp>,
}

/// What one [`PinholeTable::expire_some`](super::PinholeTable::expire_some) call did.
#[derive(Debug, Default)]
pub struct Expiry {
    /// The pinholes that expired, with the flow removals to apply.
    pub expired: Vec<(Pinhole, Vec<MapOp>)>,
    /// Due pinholes whose traffic moved their deadline on.
    pub rescheduled: usize,
    /// True when the budget ran out with pinholes still due at `now`.
    pub more: bool,
}
