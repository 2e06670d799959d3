//! pgha-admin's switchover and rolling restart while a pgha-client workload runs: the
//! application must see no error, no read past its bound and no lost acknowledged write.

use std::sync::Arc;
use std::time::Duration;

use pgha::admin::SwitchoverRequest;
use pgha::harness::{self, Driver, PghaDriver, Workload, WorkloadConfig};
use pgha::testkit::LocalCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_and_rolling_restart_under_load_surface_no_errors() {
    pgha::testkit::init_test_tracing("pgha_admin=info,pgha_testkit=info");
    let cluster = LocalCluster::builder().members(3).start().await.expect("cluster");
    let client = harness::client_builder(&cluster).connect().await.expect("client");
    harness::prepare(&client).await.expect("tables");
    let admin = cluster.admin().expect("admin");
    let config = WorkloadConfig::default();
    let driver: Arc<dyn Driver> = Arc::new(PghaDriver {
        client: client.clone(),
        read_bound: config.read_bound,
    });
    let workload = Workload::start_driver(&client, driver, harness::TABLE, 1, &config)
        .await
        .expect("workload");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let before = cluster.leader().await.expect("leader");
    let switchover_at = std::time::Instant::now();
    let switchover = admin
        .switchover(&SwitchoverRequest::new(None))
        .await
        .expect("switchover");
    let after = switchover.new_leader.clone().expect("a new leader");
    assert_ne!(after, before);
    println!("switchover {before} -> {after} in {:.1} s", switchover.elapsed_s);

    let rolling = admin.rolling_restart(false).await.expect("rolling restart");
    println!(
        "rolling restart: {}",
        serde_json::to_string_pretty(&rolling).unwrap_or_default()
    );
    let actions: Vec<&str> = rolling.steps.iter().map(|s| s.action.as_str()).collect();
    assert_eq!(
        actions.len(),
        4,
        "two replicas, the switchover, the old leader: {actions:?}"
    );
    assert!(
        actions[2].starts_with(&format!("switchover {after} -> ")),
        "{actions:?}"
    );
    assert_eq!(actions[3], format!("restart {after}"));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let log = workload.stop().await;
    let report = log
        .report_from(&client, "switchover + rolling restart", switchover_at, None)
        .await
        .expect("what survived");
    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    assert_eq!(
        report.errors_surfaced, 0,
        "errors reached the application: {:?}",
        report.error_samples
    );
    assert_eq!(report.stale_reads, 0);
    assert_eq!(report.acked_writes_lost, 0);
    assert_eq!(report.ops_stuck, 0);
    assert!(report.writes_acked > 100 && report.reads_standby > 0, "{report:?}");
    client.shutdown().await;
}
