//! What an operation needs from the cluster: [`Intent`], [`LagBound`] and [`Balance`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where an operation may run.
///
/// | intent | runs on | when nothing fits |
/// |---|---|---|
/// | [`Write`](Self::Write) | the verified primary | waits for one (failover), up to the deadline |
/// | [`Primary`](Self::Primary) | the verified primary (reads that must see every commit) | waits, like `Write` |
/// | [`Standby`](Self::Standby) | a standby under the lag bound | the primary if `fallback_to_primary` (default), else an error |
/// | [`PreferStandby`](Self::PreferStandby) | a standby under the lag bound | always the primary |
/// | [`Any`](Self::Any) | the primary or a standby under the lag bound | waits, like `Write` |
///
/// libpq's `target_session_attrs` map onto intents: `read-write` and `primary` → `Write`,
/// `read-only` and `standby` → `Standby`, `prefer-standby` → `PreferStandby`, `any` → `Any`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Intent {
    /// Writes (and reads that are part of a write): the primary only.
    Write,
    /// Reads that must run on the primary.
    Primary,
    /// Reads from a standby whose staleness is under the lag bound.
    Standby,
    /// Reads from a standby under the bound if there is one, else from the primary.
    PreferStandby,
    /// Reads from any member: the primary or a standby under the bound.
    Any,
}

impl Intent {
    /// The intent's name, as in serialized configuration (`write`, `prefer-standby`…): the
    /// `intent` label of metrics and spans.
    pub fn label(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Primary => "primary",
            Self::Standby => "standby",
            Self::PreferStandby => "prefer-standby",
            Self::Any => "any",
        }
    }

    /// True for intents that may run on a standby.
    pub fn allows_standby(self) -> bool {
        matches!(self, Self::Standby | Self::PreferStandby | Self::Any)
    }

    /// True for [`Intent::Write`].
    pub fn is_write(self) -> bool {
        self == Self::Write
    }

    /// Parses a libpq `target_session_attrs` value.
    pub fn from_target_session_attrs(value: &str) -> Option<Self> {
        Some(match value {
            "read-write" | "primary" => Self::Write,
            "read-only" | "standby" => Self::Standby,
            "prefer-standby" => Self::PreferStandby,
            "any" => Self::Any,
            _ => return None,
        })
    }
}

/// How stale a standby may be for a read, in time and/or bytes of WAL; both must hold when
/// both are set.
///
/// Staleness is measured by pgha itself, never by `now() - pg_last_xact_replay_timestamp()`
/// (which reports false lag whenever the primary is idle): pgha samples the primary's
/// `pg_current_wal_lsn()` and each standby's `pg_last_wal_replay_lsn()`, and a standby is as
/// stale as the time since the primary was last seen at a position the standby has not yet
/// replayed. Between samples the estimate grows with the age of the sample, so the bound holds
/// at the moment a read is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct LagBound {
    /// Maximum staleness in time.
    #[serde(
        default,
        with = "crate::duration::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub time: Option<Duration>,
    /// Maximum WAL bytes not yet replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

impl LagBound {
    /// A bound in time only.
    pub fn time(max: Duration) -> Self {
        Self {
            time: Some(max),
            bytes: None,
        }
    }

    /// A bound in WAL bytes only.
    pub fn bytes(max: u64) -> Self {
        Self {
            time: None,
            bytes: Some(max),
        }
    }

    /// Adds a byte bound to this bound.
    pub fn and_bytes(mut self, max: u64) -> Self {
        self.bytes = Some(max);
        self
    }
}

/// How a standby is chosen among the eligible ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Balance {
    /// Uniformly at random.
    Random,
    /// In turn.
    RoundRobin,
    /// Power of two choices: two at random, the one with fewer operations in flight (default).
    #[default]
    LeastOutstanding,
}
