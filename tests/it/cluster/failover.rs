//! End to end: pgha-client through real failovers (kill -9 of the leader, switchover) on Patroni
//! 3.0.2 and 4.x, with the pgvector workload of the failover demo. Asserts what the application
//! must never see — errors from retryable operations, reads beyond their bound, writes that did
//! not move to the new leader — and prints the timings (which are measured, not asserted: see
//! BENCHMARKS.md).

use std::time::Duration;

use pgha::client::LagBound;
use pgha::harness::{self, Fault, RoundReport, WorkloadConfig};
use pgha::testkit::{LocalCluster, PatroniFlavor};

fn init_tracing() {
    pgha::testkit::init_test_tracing("pgha_client=info,pgha_testkit=info");
}

async fn round(flavor: PatroniFlavor, fault: Fault) -> anyhow::Result<RoundReport> {
    init_tracing();
    let cluster = LocalCluster::builder().members(3).patroni(flavor).start().await?;
    let creds = cluster.credentials();
    let client = harness::client_builder(&cluster)
        .lag_bound(LagBound::time(Duration::from_secs(2)))
        .connect()
        .await?;
    let mut events = client.events();
    harness::prepare(&client).await?;
    let config = WorkloadConfig::default();
    let targets = harness::probe_targets(
        &client,
        &creds.app.username,
        creds.app.password.expose(),
        &cluster.database(),
    );
    let report = harness::run_round(&client, &cluster, fault, &config, targets).await?;
    println!(
        "{} (Patroni {}): {}",
        fault.name(),
        cluster.patroni_version(),
        serde_json::to_string_pretty(&report)?
    );

    assert_eq!(
        report.errors_surfaced, 0,
        "errors reached the application: {:?}",
        report.error_samples
    );
    assert_eq!(report.stale_reads, 0, "reads beyond their bound");
    assert!(
        report.writes_acked > 0 && report.reads_standby > 0,
        "the workload did not run: {report:?}"
    );
    assert_ne!(
        report.primary_before, report.primary_after,
        "the primary did not change"
    );
    assert_eq!(
        report.primary_after.as_deref(),
        Some(cluster.leader().await?.as_str()),
        "the client's primary is not Patroni's leader"
    );
    let mut leader_changes = Vec::new();
    loop {
        match events.try_recv() {
            Ok(pgha::client::TopologyEvent::LeaderChanged { to: Some(to), .. }) => leader_changes.push(to),
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => break,
        }
    }
    assert_eq!(
        leader_changes.last(),
        report.primary_after.as_ref(),
        "LeaderChanged events: {leader_changes:?}"
    );
    let metrics = client.metrics();
    assert!(metrics.failovers_seen >= 1, "{metrics:?}");
    assert!(
        metrics.members.iter().any(|m| m.pool_generation > 1),
        "the old primary's pool was not purged"
    );
    client.shutdown().await;
    cluster.shutdown();
    Ok(report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_leader_surfaces_no_errors() -> anyhow::Result<()> {
    round(PatroniFlavor::Debian, Fault::KillLeader).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switchover_surfaces_no_errors_and_loses_nothing() -> anyhow::Result<()> {
    let report = round(PatroniFlavor::Debian, Fault::Switchover).await?;
    // A switchover waits for the candidate to catch up: nothing acknowledged may be lost.
    assert_eq!(report.acked_writes_lost, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_leader_on_patroni_4() -> anyhow::Result<()> {
    round(PatroniFlavor::V4, Fault::KillLeader).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switchover_on_patroni_4() -> anyhow::Result<()> {
    let report = round(PatroniFlavor::V4, Fault::Switchover).await?;
    assert_eq!(report.acked_writes_lost, 0);
    Ok(())
}
