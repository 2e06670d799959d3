//! Counters and a serializable snapshot of them ([`Client::metrics`](crate::Client::metrics)).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::topology::MemberStatus;

/// Client-wide counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) operations: AtomicU64,
    /// Operations whose intent may run on a standby (not a metric: standbys are probed only
    /// while there are such operations).
    pub(crate) standby_operations: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
    pub(crate) failovers_seen: AtomicU64,
    pub(crate) outcome_unknown: AtomicU64,
    pub(crate) errors_surfaced: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) patroni_unreachable: AtomicU64,
    pub(crate) patroni_requests: AtomicU64,
    /// Callers inside `wait_for_topology` now (not a metric: it keeps the client awake).
    pub(crate) waiters: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A point-in-time copy of the client's metrics.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Metrics {
    /// Operations started (`run`/`transaction` calls).
    pub operations: u64,
    /// Attempts retried after a retryable failure.
    pub retries: u64,
    /// Standby reads served by the primary because no standby was under the bound.
    pub fallbacks: u64,
    /// Changes of the verified primary observed.
    pub failovers_seen: u64,
    /// Operations that ended as outcome-unknown.
    pub outcome_unknown: u64,
    /// Operations that returned an error to the caller.
    pub errors_surfaced: u64,
    /// Topology refreshes done.
    pub refreshes: u64,
    /// Refreshes in which no Patroni endpoint answered.
    pub patroni_unreachable: u64,
    /// Requests sent to Patroni REST APIs (`/cluster` polls and `/history` reads).
    pub patroni_requests: u64,
    /// Per member.
    pub members: Vec<MemberMetrics>,
}

/// Metrics of one member.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MemberMetrics {
    /// Member name.
    pub name: String,
    /// Current status.
    pub status: MemberStatus,
    /// Operations routed to it.
    pub operations: u64,
    /// Operations in flight on it.
    pub in_flight: usize,
    /// Staleness at the last probe, in milliseconds.
    pub staleness_ms: Option<u64>,
    /// WAL bytes behind the primary at the last probe.
    pub lag_bytes: Option<u64>,
    /// Pool generation (increments on each purge).
    pub pool_generation: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self, members: Vec<MemberMetrics>) -> Metrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Metrics {
            operations: get(&self.operations),
            retries: get(&self.retries),
            fallbacks: get(&self.fallbacks),
            failovers_seen: get(&self.failovers_seen),
            outcome_unknown: get(&self.outcome_unknown),
            errors_surfaced: get(&self.errors_surfaced),
            refreshes: get(&self.refreshes),
            patroni_requests: get(&self.patroni_requests),
            patroni_unreachable: get(&self.patroni_unreachable),
            members,
        }
    }
}
