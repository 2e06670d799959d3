//! The client cut off from one member while the cluster itself stays whole: one way (what the
//! client sends is dropped) and half-open (connections already open stay open, unanswered), as a
//! broken route between an application host and a database host looks. Patroni, replication and
//! etcd do not notice, so nothing fails over: what is tested is the client alone.

use std::time::{Duration, Instant};

use pgha::harness::{self, Workload, WorkloadConfig};
use pgha::testkit::{ClientCut, LocalCluster};

/// Whether a TCP connection to `127.0.0.1:port` is accepted within a second.
async fn reaches(port: u16) -> bool {
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
    matches!(tokio::time::timeout(Duration::from_secs(1), connect).await, Ok(Ok(_)))
}

/// Cut off from a standby (PostgreSQL and REST API), the client reads elsewhere and surfaces
/// nothing; cut off from the leader for 15 s, no write is acknowledged anywhere, the idempotent
/// writes wait within their deadline (30 s by default, longer than the cut) and complete once
/// the route is back — the application sees a pause, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_cut_off_from_a_standby_and_then_from_the_leader() -> anyhow::Result<()> {
    pgha::testkit::init_test_tracing("pgha_client=info,pgha_testkit=info");
    let cluster = LocalCluster::builder().members(3).start().await?;
    let client = harness::client_builder(&cluster).connect().await?;
    harness::prepare(&client).await?;
    let config = WorkloadConfig::default();
    let leader = cluster.leader().await?;
    let standby = cluster
        .member_names()
        .into_iter()
        .find(|m| *m != leader)
        .ok_or_else(|| anyhow::anyhow!("a standby"))?;

    // A standby out of reach: reads go to the other standby, nothing reaches the application.
    let workload = Workload::start_pgha(&client, &config).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fault_at = Instant::now();
    cluster.cut_client_from(&standby, ClientCut::Both)?;
    assert!(
        !reaches(cluster.pg_port(&standby)?).await,
        "the cut holds: {standby}'s PostgreSQL does not answer this process"
    );
    tokio::time::sleep(Duration::from_secs(12)).await;
    cluster.heal_client_cut()?;
    assert!(reaches(cluster.pg_port(&standby)?).await, "healed");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = workload
        .stop()
        .await
        .report_from(&client, "client cut off from a standby", fault_at, None)
        .await?;
    super::assert_unnoticed(&report);
    assert!(report.reads_standby > 0 && report.writes_acked > 100, "{report:?}");

    // The leader out of reach, the cluster unaware: no failover, so no write can succeed.
    let workload = Workload::start_pgha(&client, &config).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fault_at = Instant::now();
    cluster.cut_client_from(&leader, ClientCut::Both)?;
    let cut = Duration::from_secs(15);
    tokio::time::sleep(cut).await;
    cluster.heal_client_cut()?;
    let after = Duration::from_secs(10);
    tokio::time::sleep(after).await;
    let report = workload
        .stop()
        .await
        .report_from(&client, "client cut off from the leader", fault_at, None)
        .await?;
    super::assert_unnoticed(&report);
    // What the primary had answered before the cut arrives still (the cut is one way).
    let during = report.timeline.acks_between(Duration::from_secs(1), cut);
    assert_eq!(during, 0, "writes acknowledged while the primary was out of reach");
    let resumed = report
        .timeline
        .acks_between(cut + after - Duration::from_secs(3), cut + after);
    assert!(resumed > 0, "writes resume once the leader is reachable again");
    assert_eq!(cluster.leader().await?, leader, "the cluster never noticed");
    client.shutdown().await;
    cluster.shutdown();
    Ok(())
}
