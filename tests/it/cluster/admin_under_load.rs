//! pgha-admin's switchover and rolling restart while a pgha-client workload runs: the
//! application must see no error, no read past its bound and no lost acknowledged write.

use std::time::Duration;

use pgha::admin::{ErrorKind, SwitchoverRequest};
use pgha::harness::{self, Workload, WorkloadConfig};
use pgha::testkit::{wait_for, LocalCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_and_rolling_restart_under_load_surface_no_errors() {
    pgha::testkit::init_test_tracing("pgha_admin=info,pgha_testkit=info");
    let cluster = LocalCluster::builder().members(3).start().await.expect("cluster");
    let client = harness::client_builder(&cluster).connect().await.expect("client");
    harness::prepare(&client).await.expect("tables");
    let admin = cluster.admin().expect("admin");
    let config = WorkloadConfig::default();
    let workload = Workload::start_pgha(&client, &config).await.expect("workload");
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
    super::assert_unnoticed(&report);
    assert!(report.writes_acked > 100 && report.reads_standby > 0, "{report:?}");
    client.shutdown().await;
}

/// The runbook's operations while part of the cluster is broken, under a pgha-client workload:
/// with etcd's raft leader killed (two of three etcd members left), switchover and reinitialize
/// complete; with a standby frozen (Patroni and PostgreSQL stopped mid-flight, as a stalled host),
/// a rolling restart either restarts what answers or stops with a typed error that names the
/// frozen member, and a switchover goes to the other standby — none hangs. Through all of it the
/// workload loses no acknowledged write, reads nothing beyond its bound and surfaces no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_operations_with_an_etcd_member_down_or_a_standby_frozen() -> anyhow::Result<()> {
    use anyhow::Context;
    // A hang guard, not a performance bound: every operation below waits 120 s at most itself.
    const GUARD: Duration = Duration::from_secs(300);
    pgha::testkit::init_test_tracing("pgha_admin=info,pgha_testkit=info");
    let cluster = LocalCluster::builder().members(3).start().await?;
    let client = harness::client_builder(&cluster).connect().await?;
    harness::prepare(&client).await?;
    let admin = cluster.admin()?;
    let config = WorkloadConfig::default();
    let workload = Workload::start_pgha(&client, &config).await?;
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // An etcd member down: the raft leader, so that etcd elects another one meanwhile.
    let etcd_leader = cluster.etcd_leader().await.context("etcd has a leader")?;
    cluster.kill_etcd_member(etcd_leader)?;
    // Down, not mid-election: while etcd elects, Patroni's writes fail ("failed to write
    // switchover key into DCS", a typed Patroni error) — the chaos run's kill-etcd-leader covers
    // that moment; here two etcd members serve.
    wait_for("etcd to elect another leader", Duration::from_secs(30), || async {
        Ok(cluster.etcd_leader().await.filter(|l| *l != etcd_leader))
    })
    .await?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    let before = cluster.leader().await?;
    let switchover = tokio::time::timeout(GUARD, admin.switchover(&SwitchoverRequest::new(None))).await??;
    let after = switchover.new_leader.clone().context("a new leader")?;
    assert_ne!(
        after, before,
        "the switchover moved the leader with etcd member {etcd_leader} down"
    );
    // Not the old leader, which may still be rejoining when the switchover returns.
    let standby = cluster
        .member_names()
        .into_iter()
        .find(|m| *m != after && *m != before)
        .context("a standby")?;
    let reinit = tokio::time::timeout(GUARD, admin.reinitialize(&standby)).await??;
    assert_eq!(reinit.outcome, "done", "{reinit:?}");
    cluster.start_etcd_member(etcd_leader).await?;
    cluster.wait_ready(Duration::from_secs(60)).await?;

    // A standby frozen.
    let leader = cluster.leader().await?;
    let frozen = cluster
        .member_names()
        .into_iter()
        .find(|m| *m != leader)
        .context("a standby")?;
    cluster.freeze_node(&frozen)?;
    // First the rolling restart, which meets the frozen member: a replica in every view, so it
    // cannot complete; it stops with a typed error naming that member — the request was sent,
    // so "may have reached Patroni" — or refuses before it starts, and it never restarts the
    // leader (replicas go first).
    let leader_started = postmaster_started(&cluster, &leader).await?;
    let e = tokio::time::timeout(GUARD, admin.rolling_restart(false))
        .await?
        .expect_err("a rolling restart cannot restart a frozen replica");
    println!("rolling restart with {frozen} frozen: {} ({:?})", e, e.kind());
    assert!(
        matches!(e.kind(), ErrorKind::Unreachable | ErrorKind::Precondition) && e.to_string().contains(&frozen),
        "an unreachable member or a refusal, naming {frozen}: {e}"
    );
    assert_eq!(
        postmaster_started(&cluster, &leader).await?,
        leader_started,
        "the leader was not restarted"
    );
    // Then a switchover: to the standby that answers (or refused, naming the frozen one).
    match tokio::time::timeout(GUARD, admin.switchover(&SwitchoverRequest::new(None))).await? {
        Ok(report) => {
            let new = report.new_leader.context("a new leader")?;
            println!("switchover with {frozen} frozen: {leader} -> {new}");
            assert!(
                new != leader && new != frozen,
                "switchover {leader} -> {new} with {frozen} frozen"
            );
        }
        Err(e) => assert!(e.to_string().contains(&frozen), "a refusal names {frozen}: {e}"),
    }
    cluster.thaw_node(&frozen)?;
    cluster.wait_ready(Duration::from_secs(120)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let log = workload.stop().await;
    let report = log
        .report_from(&client, "admin operations under faults", started, None)
        .await?;
    super::assert_unnoticed(&report);
    assert!(report.writes_acked > 100, "{report:?}");
    client.shutdown().await;
    cluster.shutdown();
    Ok(())
}

/// When `member`'s PostgreSQL started (`pg_postmaster_start_time()`): it changes on a restart.
async fn postmaster_started(cluster: &LocalCluster, member: &str) -> anyhow::Result<String> {
    let rows = cluster
        .superuser_query(member, "SELECT pg_postmaster_start_time()::text")
        .await?;
    Ok(rows[0].get(0))
}
