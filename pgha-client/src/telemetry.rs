//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`): the
//! application installs the exporter (Prometheus, OpenTelemetry, StatsD…) and pgha records into
//! it. Every metric is named and described once, in [`METRICS`]; the crate documentation's
//! "Metrics" table lists the same names (a unit test keeps the two in step). Without the
//! feature every function here is empty and compiles to nothing.
#![cfg_attr(not(feature = "metrics"), allow(dead_code))]

use std::time::{Duration, Instant};

use crate::intent::Intent;
use crate::topology::{Snapshot, Source};

/// What a metric is, for `describe_*` and the documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    Counter,
    Gauge,
    Histogram,
}

/// One metric: name, type, labels, description.
#[derive(Debug)]
pub(crate) struct Metric {
    pub(crate) name: &'static str,
    pub(crate) kind: Type,
    /// Read by the test that checks the documentation's table.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) labels: &'static [&'static str],
    pub(crate) help: &'static str,
}

const OPERATIONS: &str = "pgha_operations_total";
const OPERATION_DURATION: &str = "pgha_operation_duration_seconds";
const ATTEMPTS: &str = "pgha_attempts_total";
const RETRIES: &str = "pgha_retries_total";
const FALLBACKS: &str = "pgha_fallbacks_total";
const PRIMARY_CHANGES: &str = "pgha_primary_changes_total";
const TOPOLOGY_EVENTS: &str = "pgha_topology_events_total";
const REFRESH_DURATION: &str = "pgha_topology_refresh_duration_seconds";
const PATRONI_REQUESTS: &str = "pgha_patroni_requests_total";
const MEMBER_PRIMARY: &str = "pgha_member_primary";
const MEMBER_USABLE: &str = "pgha_member_usable";
const MEMBER_STALENESS: &str = "pgha_member_staleness_seconds";
const MEMBER_LAG: &str = "pgha_member_lag_bytes";
const POOL_SIZE: &str = "pgha_pool_size";
const POOL_AVAILABLE: &str = "pgha_pool_available";
const POOL_WAITING: &str = "pgha_pool_waiting";

/// Every metric pgha records.
pub(crate) const METRICS: &[Metric] = &[
    Metric {
        name: OPERATIONS,
        kind: Type::Counter,
        labels: &["intent", "outcome", "member"],
        help: "Operations finished (run, transaction, get), by intent, outcome (`ok` or the error kind: \
               `outcome_unknown`, `timeout`, `no_member`, `connect`, `db`, `user`, `write_lost`, \
               `budget_exhausted`, `shutdown`, `config`) and the member of the last attempt",
    },
    Metric {
        name: OPERATION_DURATION,
        kind: Type::Histogram,
        labels: &["intent", "outcome"],
        help: "Time from the call to its result, retries and waits included, in seconds",
    },
    Metric {
        name: ATTEMPTS,
        kind: Type::Counter,
        labels: &["intent", "member"],
        help: "Attempts started on a member (an operation makes one, plus one per retry)",
    },
    Metric {
        name: RETRIES,
        kind: Type::Counter,
        labels: &["reason"],
        help: "Attempts retried, by what failed: `connect`, `read_only` (25006: the node is a standby \
               now), `not_accepting` (57P03, 53300), `session_lost`, `serialization_failure`, \
               `deadlock`, `other`",
    },
    Metric {
        name: FALLBACKS,
        kind: Type::Counter,
        labels: &["intent"],
        help: "Reads served by the primary because no standby was under the lag bound",
    },
    Metric {
        name: PRIMARY_CHANGES,
        kind: Type::Counter,
        labels: &[],
        help: "Changes of the verified primary to another member (failovers and switchovers seen)",
    },
    Metric {
        name: TOPOLOGY_EVENTS,
        kind: Type::Counter,
        labels: &["event"],
        help: "Topology events, by kind (`leader-changed`, `member-joined`, `member-left`, \
               `standby-excluded`, `standby-included`, `source-changed`, `pool-purged`)",
    },
    Metric {
        name: REFRESH_DURATION,
        kind: Type::Histogram,
        labels: &["source"],
        help: "Time one topology refresh took (discovery and SQL probes), by the source it used \
               (`dcs`, `patroni`, `sql-probe`), in seconds",
    },
    Metric {
        name: PATRONI_REQUESTS,
        kind: Type::Counter,
        labels: &[],
        help: "Requests sent to Patroni REST APIs (`/cluster` polls and `/history` reads)",
    },
    Metric {
        name: MEMBER_PRIMARY,
        kind: Type::Gauge,
        labels: &["member"],
        help: "1 for the verified primary, 0 for every other member",
    },
    Metric {
        name: MEMBER_USABLE,
        kind: Type::Gauge,
        labels: &["member"],
        help: "1 for the primary and the standbys in service, 0 for a member not used",
    },
    Metric {
        name: MEMBER_STALENESS,
        kind: Type::Gauge,
        labels: &["member"],
        help: "How stale a standby was at its last probe, in seconds (NaN when unknown)",
    },
    Metric {
        name: MEMBER_LAG,
        kind: Type::Gauge,
        labels: &["member"],
        help: "WAL bytes between the primary's last sampled position and a standby's replay \
               position (NaN when unknown)",
    },
    Metric {
        name: POOL_SIZE,
        kind: Type::Gauge,
        labels: &["member"],
        help: "Connections open in the member's pool",
    },
    Metric {
        name: POOL_AVAILABLE,
        kind: Type::Gauge,
        labels: &["member"],
        help: "Of those, idle in the pool",
    },
    Metric {
        name: POOL_WAITING,
        kind: Type::Gauge,
        labels: &["member"],
        help: "Checkouts waiting for a connection of the member's pool",
    },
];

impl Type {
    /// The type's name in the documentation.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// An intent's slot in a [`MemberInstruments`] array.
fn slot(intent: Intent) -> usize {
    match intent {
        Intent::Write => 0,
        Intent::Primary => 1,
        Intent::Standby => 2,
        Intent::PreferStandby => 3,
        Intent::Any => 4,
    }
}

const INTENTS: [Intent; 5] = [
    Intent::Write,
    Intent::Primary,
    Intent::Standby,
    Intent::PreferStandby,
    Intent::Any,
];

/// A member's metric handles for the operation path, registered once when its pool is made: a
/// successful operation and an attempt cost an increment each, no label built, no allocation.
/// (Handles registered before the application installs its recorder stay no-ops: install it
/// before building the client.)
#[derive(Debug)]
pub(crate) struct MemberInstruments {
    #[cfg(feature = "metrics")]
    ok: [(metrics::Counter, metrics::Histogram); 5],
    #[cfg(feature = "metrics")]
    attempts: [metrics::Counter; 5],
}

impl MemberInstruments {
    #[cfg(feature = "metrics")]
    pub(crate) fn new(member: &str) -> Self {
        use metrics::{counter, histogram};
        Self {
            ok: INTENTS.map(|i| {
                (
                    counter!(OPERATIONS, "intent" => i.label(), "outcome" => "ok", "member" => member.to_owned()),
                    histogram!(OPERATION_DURATION, "intent" => i.label(), "outcome" => "ok"),
                )
            }),
            attempts: INTENTS.map(|i| counter!(ATTEMPTS, "intent" => i.label(), "member" => member.to_owned())),
        }
    }

    #[cfg(not(feature = "metrics"))]
    pub(crate) fn new(_: &str) -> Self {
        Self {}
    }
}

#[cfg(feature = "metrics")]
mod record {
    use super::*;
    use metrics::{counter, gauge, histogram};

    /// An operation that began at `started` succeeded on `member` now.
    pub(crate) fn succeeded(member: &MemberInstruments, intent: Intent, started: Instant) {
        let (count, duration) = &member.ok[slot(intent)];
        count.increment(1);
        duration.record(started.elapsed().as_secs_f64());
    }

    /// Registers every description with the installed recorder.
    pub(crate) fn describe() {
        use metrics::Unit;
        for m in METRICS {
            let unit = if m.name.ends_with("_seconds") {
                Unit::Seconds
            } else if m.name.ends_with("_bytes") {
                Unit::Bytes
            } else {
                Unit::Count
            };
            match m.kind {
                Type::Counter => metrics::describe_counter!(m.name, unit, m.help),
                Type::Gauge => metrics::describe_gauge!(m.name, unit, m.help),
                Type::Histogram => metrics::describe_histogram!(m.name, unit, m.help),
            }
        }
    }

    /// An operation that began at `started` failed now (with `outcome`, on `member`).
    pub(crate) fn operation(intent: Intent, outcome: &'static str, member: Option<&str>, started: Instant) {
        let elapsed = started.elapsed();
        let member = member.unwrap_or("").to_owned();
        counter!(OPERATIONS, "intent" => intent.label(), "outcome" => outcome, "member" => member).increment(1);
        histogram!(OPERATION_DURATION, "intent" => intent.label(), "outcome" => outcome).record(elapsed.as_secs_f64());
    }

    pub(crate) fn attempt(member: &MemberInstruments, intent: Intent) {
        member.attempts[slot(intent)].increment(1);
    }

    pub(crate) fn retry(reason: &'static str) {
        counter!(RETRIES, "reason" => reason).increment(1);
    }

    pub(crate) fn fallback(intent: Intent) {
        counter!(FALLBACKS, "intent" => intent.label()).increment(1);
    }

    pub(crate) fn primary_changed() {
        counter!(PRIMARY_CHANGES).increment(1);
    }

    pub(crate) fn topology_event(kind: &'static str) {
        counter!(TOPOLOGY_EVENTS, "event" => kind).increment(1);
    }

    pub(crate) fn patroni_requests(n: u64) {
        counter!(PATRONI_REQUESTS).increment(n);
    }

    pub(crate) fn refreshed(source: Source, elapsed: Duration) {
        histogram!(REFRESH_DURATION, "source" => source.label()).record(elapsed.as_secs_f64());
    }

    /// Each member's role, staleness, lag and pool status, from the current snapshot.
    pub(crate) fn members(snapshot: &Snapshot) {
        let topology = &snapshot.topology;
        for (i, m) in topology.members.iter().enumerate() {
            let name = m.name.clone();
            let flag = |b: bool| if b { 1.0 } else { 0.0 };
            gauge!(MEMBER_PRIMARY, "member" => name.clone()).set(flag(topology.primary == Some(i)));
            gauge!(MEMBER_USABLE, "member" => name.clone()).set(flag(m.is_primary() || m.is_standby()));
            gauge!(MEMBER_STALENESS, "member" => name.clone()).set(m.staleness.map_or(f64::NAN, |s| s.as_secs_f64()));
            #[allow(clippy::cast_precision_loss, reason = "a gauge is an f64; lag in bytes fits well")]
            gauge!(MEMBER_LAG, "member" => name.clone()).set(m.lag_bytes.map_or(f64::NAN, |b| b as f64));
            let status = snapshot
                .handles
                .get(i)
                .and_then(Option::as_ref)
                .map(|h| h.pool.status());
            #[allow(clippy::cast_precision_loss, reason = "pool sizes are small")]
            let (size, available, waiting) = status.map_or((0.0, 0.0, 0.0), |s| {
                (s.size as f64, s.available as f64, s.waiting as f64)
            });
            gauge!(POOL_SIZE, "member" => name.clone()).set(size);
            gauge!(POOL_AVAILABLE, "member" => name.clone()).set(available);
            gauge!(POOL_WAITING, "member" => name).set(waiting);
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod record {
    use super::*;

    pub(crate) fn describe() {}
    pub(crate) fn succeeded(_: &MemberInstruments, _: Intent, _: Instant) {}
    pub(crate) fn operation(_: Intent, _: &'static str, _: Option<&str>, _: Instant) {}
    pub(crate) fn attempt(_: &MemberInstruments, _: Intent) {}
    pub(crate) fn retry(_: &'static str) {}
    pub(crate) fn fallback(_: Intent) {}
    pub(crate) fn primary_changed() {}
    pub(crate) fn topology_event(_: &'static str) {}
    pub(crate) fn patroni_requests(_: u64) {}
    pub(crate) fn refreshed(_: Source, _: Duration) {}
    pub(crate) fn members(_: &Snapshot) {}
}

pub(crate) use record::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crate_documentation_lists_every_metric_as_described() {
        let docs = include_str!("lib.rs");
        for m in METRICS {
            let labels = if m.labels.is_empty() {
                "–".to_owned()
            } else {
                m.labels.join(", ")
            };
            let row = format!("| `{}` | {} | {} | {} |", m.name, m.kind.as_str(), labels, m.help);
            assert!(docs.contains(&row), "lib.rs has no row {row:?}");
        }
        let rows = docs.lines().filter(|l| l.starts_with("//! | `pgha_")).count();
        assert_eq!(rows, METRICS.len(), "the table lists a metric pgha does not record");
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        for m in METRICS {
            assert!(m.name.starts_with("pgha_"), "{}", m.name);
            assert_eq!(m.kind == Type::Counter, m.name.ends_with("_total"), "{}", m.name);
            assert!(m.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{}", m.name);
        }
    }
}
