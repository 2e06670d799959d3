//! Topology events that applications can subscribe to ([`Client::events`](crate::Client::events)).

use serde::Serialize;

use crate::topology::{Exclusion, Source};

/// Something changed in the cluster as pgha sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "event")]
#[non_exhaustive]
pub enum TopologyEvent {
    /// The verified primary changed (`to: None` while there is none, e.g. during a failover).
    LeaderChanged {
        /// Previous primary.
        from: Option<String>,
        /// New primary.
        to: Option<String>,
        /// Timeline of the new primary.
        timeline: Option<u64>,
    },
    /// A member appeared.
    MemberJoined {
        /// Member name.
        name: String,
    },
    /// A member disappeared.
    MemberLeft {
        /// Member name.
        name: String,
    },
    /// A standby stopped receiving reads under the client's default lag bound.
    StandbyExcluded {
        /// Member name.
        name: String,
        /// Why.
        reason: Exclusion,
    },
    /// A standby receives reads under the default lag bound again.
    StandbyIncluded {
        /// Member name.
        name: String,
    },
    /// Discovery switched between Patroni and direct SQL probing.
    SourceChanged {
        /// Before.
        from: Source,
        /// After.
        to: Source,
    },
    /// A member's pool was closed and replaced because the member stopped being the primary.
    PoolPurged {
        /// Member name.
        name: String,
        /// The new pool generation.
        generation: u64,
    },
}
