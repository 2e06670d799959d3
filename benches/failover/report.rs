//! The report: its JSON shape, the tables printed, the machine description.

use serde::Serialize;

use crate::failover::FailoverRow;
use crate::steady::SteadyRow;
use crate::vector::VectorReport;

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) setup: String,
    pub(crate) quick: bool,
    pub(crate) machine: String,
    pub(crate) failover: Vec<FailoverRow>,
    /// Trials that could not complete (and why).
    pub(crate) failed_trials: Vec<String>,
    pub(crate) steady: Vec<SteadyRow>,
    pub(crate) vector: Option<VectorReport>,
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

pub(crate) fn print_report(r: &Report) {
    println!("{}\n{}\n", r.setup, r.machine);
    if !r.failover.is_empty() {
        println!(
            "{:<14} {:<28} {:>6} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10} {:>6} {:>6} {:>5}",
            "fault",
            "client",
            "trials",
            "promo p50",
            "gap p50",
            "gap p95",
            "gap max",
            "-promo p50",
            "-promo p95",
            "errors",
            "stale",
            "lost"
        );
        for f in &r.failover {
            println!(
                "{:<14} {:<28} {:>6} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>10} {:>10} {:>6} {:>6} {:>5} {:>5}",
                f.fault,
                f.client,
                f.trials,
                opt(f.promotion_p50_s),
                f.write_gap_p50_s,
                f.write_gap_p95_s,
                f.write_gap_max_s,
                opt(f.gap_minus_promotion_p50_s),
                opt(f.gap_minus_promotion_p95_s),
                f.errors_surfaced,
                f.stale_reads,
                f.acked_writes_lost,
                f.ops_stuck
            );
        }
        println!();
    }
    for f in &r.failed_trials {
        println!("failed trial: {f}");
    }
    if !r.steady.is_empty() {
        println!(
            "{:<26} {:<24} {:>10} {:>8} {:>8} {:>8}",
            "workload", "client", "ops/s", "p50 ms", "p99 ms", "vs raw"
        );
        for s in &r.steady {
            println!(
                "{:<26} {:<24} {:>10.0} {:>8.3} {:>8.3} {:>8.3}",
                s.workload, s.client, s.ops_per_s, s.p50_ms, s.p99_ms, s.throughput_vs_raw
            );
        }
        println!();
    }
    if let Some(v) = &r.vector {
        println!(
            "pgvector ({} rows x {} dims; inserts into a table without index, searches with HNSW m=16 \
             ef_construction=64):",
            v.rows, v.dims
        );
        println!(
            "  insert rows/s: COPY {:.0}, multi-row INSERT {:.0}, row-by-row INSERT {:.0} (COPY = {:.1}x row-by-row)",
            v.copy_rows_per_s, v.multi_row_insert_rows_per_s, v.row_by_row_insert_rows_per_s, v.copy_vs_row_by_row
        );
        println!(
            "  k-NN QPS (4 concurrent): standbys {:.0}, primary only {:.0}",
            v.knn_qps_standbys, v.knn_qps_primary_only
        );
        for (ef, recall) in &v.recall_at_10 {
            println!("  recall@10 at hnsw.ef_search={ef}: {recall:.3}");
        }
    }
}

pub(crate) fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(str::to_owned))
        .unwrap_or_default();
    format!(
        "machine: {cpus} CPUs, {}",
        mem.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
    )
}
