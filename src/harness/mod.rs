//! Failover measurement harness, shared by the failover demo, the benchmarks and the end-to-end
//! tests: a pgvector workload through pgha-client (inserts, k-NN searches on standbys, a
//! heartbeat that proves every read's staleness), an independent promotion probe, and the
//! report of what the application felt during one fault.

use std::time::Duration;

use serde::Serialize;

mod data;
mod drivers;
mod faults;
mod plot;
mod probe;
mod round;
mod stats;
mod workload;

pub use data::{embedding, prepare, prepare_tables, vector_of};
pub use drivers::{BoxFuture, Contender, Driver, PghaDriver, PoolDriver, ReadSample};
pub use faults::{client_builder, client_builder_with, settle, Discovery, Fault, Injector, RestInjector};
pub use plot::failover_svg;
pub use probe::{dsn_credentials, probe_targets, refuse_password_on_command_line, PromotionProbe};
pub use round::{run_fault, run_round};
pub use stats::{percentile, sorted};
pub(crate) use workload::missed_surviving_heartbeat;
pub use workload::{count_lost, Workload, WorkloadLog};

/// Dimension of the demo embeddings.
pub const DIMS: usize = 16;
/// The table the demo workload writes to (created by [`prepare`]).
pub const TABLE: &str = "pgha_demo_items";

/// What one fault round measured (`failover_demo --json` prints one per round).
#[derive(Debug, Clone, Serialize)]
pub struct RoundReport {
    /// The client measured (`pgha-client`, or an alternative in the benchmarks).
    pub client: String,
    /// The fault injected (`kill-9-leader`, `switchover`, `freeze-leader`, `none`).
    pub fault: String,
    /// Seconds from the fault to the first moment a new primary accepted writes, measured by a
    /// probe independent of pgha (`None` if no new primary appeared).
    pub promotion_s: Option<f64>,
    /// Longest time without an acknowledged write, in seconds.
    pub write_gap_s: f64,
    /// `write_gap_s - promotion_s`: what the client added on top of Patroni's promotion.
    pub gap_minus_promotion_s: Option<f64>,
    /// Errors returned to the application by pgha-client.
    pub errors_surfaced: u64,
    /// k-NN searches served by standbys.
    pub reads_standby: u64,
    /// k-NN searches served by the primary.
    pub reads_primary: u64,
    /// Reads that returned data staler than their bound: they missed a heartbeat that survived
    /// the fault and was acknowledged more than the bound before they started.
    pub stale_reads: u64,
    /// Why each stale read was stale (the first few): the member that served it, its recovery
    /// state, timeline and replay position, and the heartbeat it missed.
    pub stale_samples: Vec<String>,
    /// Heartbeats acknowledged and then lost in the failover (asynchronous replication): reads
    /// that miss only those are not stale.
    pub heartbeats_lost: u64,
    /// Writes acknowledged.
    pub writes_acked: u64,
    /// Acknowledged writes missing on the primary after the fault.
    pub acked_writes_lost: u64,
    /// Operations still waiting for an answer when the round ended (abandoned).
    pub ops_stuck: u64,
    /// The first few errors, for the log.
    pub error_samples: Vec<String>,
    /// Old and new primary.
    pub primary_before: Option<String>,
    /// New primary.
    pub primary_after: Option<String>,
    /// What the application saw over time (for the failover picture).
    pub timeline: Timeline,
}

/// Acknowledged writes per 100 ms and the errors of one client through one fault, in seconds
/// from the fault (negative before it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    /// Where the first bin starts.
    pub start_s: f64,
    /// Writes acknowledged in each bin of [`Timeline::BIN`].
    pub acks: Vec<u32>,
    /// When each error reached the application.
    pub errors_s: Vec<f64>,
}

impl Timeline {
    /// The width of a bin.
    pub const BIN: Duration = Duration::from_millis(100);

    /// Writes acknowledged in the bins that lie wholly between `from` and `to` after the fault.
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = pgha::harness::Timeline { start_s: -0.2, acks: vec![1, 2, 3, 4], errors_s: vec![] };
    /// // Bins start at -0.2, -0.1, 0.0 and 0.1 s: the last two lie within 0..0.2 s.
    /// assert_eq!(t.acks_between(Duration::ZERO, Duration::from_millis(200)), 7);
    /// ```
    pub fn acks_between(&self, from: Duration, to: Duration) -> u64 {
        let bin = Self::BIN.as_secs_f64();
        // A little slack for the floating-point bin edges.
        let (from, to) = (from.as_secs_f64() - 1e-9, to.as_secs_f64() + 1e-9);
        self.acks
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                let t = self.start_s + *i as f64 * bin;
                t >= from && t + bin <= to
            })
            .map(|(_, n)| u64::from(*n))
            .sum()
    }
}

/// Workload settings.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Concurrent writers (closed loop).
    pub writers: usize,
    /// Concurrent readers (closed loop).
    pub readers: usize,
    /// Staleness bound of the reads.
    pub read_bound: Duration,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            writers: 2,
            readers: 2,
            read_bound: Duration::from_secs(2),
        }
    }
}
