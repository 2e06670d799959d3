//! End to end against real clusters: failover under load, admin operations under load and
//! faults, etcd's quorum lost, the client cut off from a member, and the short fault-injection
//! runs.

mod admin_under_load;
mod axum_service;
mod chaos;
mod client_cut;
mod etcd_quorum;
mod failover;

/// The invariants a workload keeps whatever the fault: nothing acknowledged is lost, no bounded
/// read is stale, no operation is left hanging. Prints the report first.
fn assert_safe(report: &pgha::harness::RoundReport) {
    println!("{}", serde_json::to_string_pretty(report).unwrap_or_default());
    assert_eq!(report.acked_writes_lost, 0, "{report:?}");
    assert_eq!(report.stale_reads, 0, "{:?}", report.stale_samples);
    assert_eq!(report.ops_stuck, 0, "{report:?}");
}

/// [`assert_safe`], and no error reached the application: the fault was absorbed.
fn assert_unnoticed(report: &pgha::harness::RoundReport) {
    assert_safe(report);
    assert_eq!(
        report.errors_surfaced, 0,
        "errors reached the application: {:?}",
        report.error_samples
    );
}
