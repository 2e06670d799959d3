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

impl TopologyEvent {
    /// The event's kind, as its serialized `event` tag (`leader-changed`, `pool-purged`…): the
    /// `event` label of `pgha_topology_events_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::LeaderChanged { .. } => "leader-changed",
            Self::MemberJoined { .. } => "member-joined",
            Self::MemberLeft { .. } => "member-left",
            Self::StandbyExcluded { .. } => "standby-excluded",
            Self::StandbyIncluded { .. } => "standby-included",
            Self::SourceChanged { .. } => "source-changed",
            Self::PoolPurged { .. } => "pool-purged",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::Intent;
    use crate::topology::Exclusion;

    /// Labels are the serialized names, so metrics, logs and JSON say the same thing.
    #[test]
    fn labels_are_the_serialized_names() {
        let events = [
            TopologyEvent::LeaderChanged {
                from: None,
                to: None,
                timeline: None,
            },
            TopologyEvent::MemberJoined { name: "a".into() },
            TopologyEvent::MemberLeft { name: "a".into() },
            TopologyEvent::StandbyExcluded {
                name: "a".into(),
                reason: Exclusion::LagUnknown,
            },
            TopologyEvent::StandbyIncluded { name: "a".into() },
            TopologyEvent::SourceChanged {
                from: Source::Patroni,
                to: Source::Dcs,
            },
            TopologyEvent::PoolPurged {
                name: "a".into(),
                generation: 2,
            },
        ];
        for e in events {
            assert_eq!(serde_json::to_value(&e).expect("serializes")["event"], e.kind());
        }
        for i in [
            Intent::Write,
            Intent::Primary,
            Intent::Standby,
            Intent::PreferStandby,
            Intent::Any,
        ] {
            assert_eq!(serde_json::to_value(i).expect("serializes"), i.label());
        }
        for s in [Source::Unknown, Source::Patroni, Source::Dcs, Source::SqlProbe] {
            assert_eq!(serde_json::to_value(s).expect("serializes"), s.label());
        }
    }
}
