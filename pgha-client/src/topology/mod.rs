//! Topology: pure descriptions and selection, and the one task that owns the mutable state.

pub(crate) mod description;
pub(crate) mod discovery;
pub(crate) mod probe;
pub(crate) mod selection;
pub(crate) mod worker;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod spec;

pub use description::{MemberInfo, MemberStatus, Source, Topology};
pub use selection::Exclusion;

use std::sync::Arc;

use crate::pool::MemberHandle;

/// What operations read: the public topology plus each member's pool (index-aligned).
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) topology: Arc<Topology>,
    pub(crate) handles: Vec<Option<Arc<MemberHandle>>>,
    /// Set once the client is shut down.
    pub(crate) closed: bool,
    /// The client has been idle (see `idle_timeout`): the topology is no longer refreshed, so an
    /// operation must ask for a refresh and use the next snapshot.
    pub(crate) dormant: bool,
    /// No operation that may read from a standby ran for `idle_timeout`: only the members that
    /// may be the primary were probed, the standbys are "not probed", so such an operation must
    /// ask for a refresh and use the next snapshot.
    pub(crate) standbys_unprobed: bool,
}
