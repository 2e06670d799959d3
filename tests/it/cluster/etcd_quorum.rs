//! etcd's quorum lost and regained under a pgha-client workload, with Patroni's `failsafe_mode`
//! off (the default: the leader demotes itself) and on (the leader runs on while it reaches every
//! member).

use std::time::{Duration, Instant};

use pgha::harness::{self, Workload, WorkloadConfig};
use pgha::testkit::{wait_for, LocalCluster};

/// Two of the three etcd members killed, one left running: etcd has no quorum, so Patroni can
/// neither renew nor read its leader key.
fn lose_quorum(cluster: &LocalCluster) -> anyhow::Result<()> {
    for i in [0, 1] {
        cluster.kill_etcd_member(i)?;
    }
    Ok(())
}

async fn regain_quorum(cluster: &LocalCluster) -> anyhow::Result<()> {
    cluster.start_etcd_again().await?;
    cluster.wait_ready(Duration::from_secs(120)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_quorum_lost_and_regained_with_failsafe_mode_off_and_on() -> anyhow::Result<()> {
    pgha::testkit::init_test_tracing("pgha_client=info,pgha_testkit=info");
    let cluster = LocalCluster::builder().members(3).start().await?;
    let client = harness::client_builder(&cluster).connect().await?;
    harness::prepare(&client).await?;
    let admin = cluster.admin()?;
    let config = WorkloadConfig::default();

    // failsafe_mode off: the leader cannot renew its key, so it demotes itself ("demoting self
    // because DCS is not accessible and I was a leader"); writes stop until etcd is back.
    let leader = cluster.leader().await?;
    let workload = Workload::start_pgha(&client, &config).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fault_at = Instant::now();
    lose_quorum(&cluster)?;
    // Errors count as "not yet": Patroni demotes a primary by restarting it as a standby.
    wait_for(
        "the leader to demote itself (failsafe_mode off)",
        Duration::from_secs(60),
        || async { Ok((!cluster.is_writable_primary(&leader).await?).then_some(())) },
    )
    .await?;
    let demoted_after = fault_at.elapsed();
    println!("failsafe_mode off: {leader} demoted {demoted_after:?} after the quorum loss");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let regained_at = fault_at.elapsed();
    regain_quorum(&cluster).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = workload
        .stop()
        .await
        .report_from(&client, "etcd quorum lost, failsafe_mode off", fault_at, None)
        .await?;
    super::assert_safe(&report);
    assert!(report.writes_acked > 100, "{report:?}");
    assert_eq!(
        report.timeline.acks_between(demoted_after, regained_at),
        0,
        "no write is acknowledged from the demotion until etcd is back"
    );

    // failsafe_mode on: the leader reaches every member's REST API (POST /failsafe), so it runs
    // on as a primary, and the workload does not notice.
    admin
        .patch_config(&serde_json::json!({ "failsafe_mode": true }))
        .await?;
    let leader = cluster.leader().await?;
    let failsafe = format!("{}/failsafe", cluster.api_url(&leader)?);
    let http = reqwest::Client::new();
    // The leader writes the `failsafe` key (every member's API) once it has taken the change.
    wait_for(
        "the failsafe key naming every member",
        Duration::from_secs(30),
        || async {
            let members = match http.get(&failsafe).timeout(Duration::from_secs(5)).send().await {
                Ok(r) if r.status().is_success() => r.json::<serde_json::Value>().await.ok(),
                _ => None,
            };
            Ok(members
                .filter(|m| m.as_object().is_some_and(|m| m.len() == 3))
                .map(|_| ()))
        },
    )
    .await?;
    let workload = Workload::start_pgha(&client, &config).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fault_at = Instant::now();
    lose_quorum(&cluster)?;
    // Past the point where it demoted itself without failsafe_mode, and past the TTL.
    let hold = demoted_after.max(Duration::from_secs(25)) + Duration::from_secs(5);
    tokio::time::sleep(hold).await;
    assert!(
        cluster.is_writable_primary(&leader).await?,
        "{leader} is still a primary with failsafe_mode on and every member reachable"
    );
    let status: serde_json::Value = http
        .get(format!("{}/patroni", cluster.api_url(&leader)?))
        .timeout(Duration::from_secs(5))
        .send()
        .await?
        .json()
        .await?;
    println!("failsafe_mode on, etcd without quorum: {leader}'s /patroni: {status}");
    assert_eq!(status["failsafe_mode_is_active"], true, "{status}");
    regain_quorum(&cluster).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = workload
        .stop()
        .await
        .report_from(&client, "etcd quorum lost, failsafe_mode on", fault_at, None)
        .await?;
    super::assert_unnoticed(&report);
    let late = report.timeline.acks_between(hold - Duration::from_secs(5), hold);
    assert!(
        late > 0,
        "writes go on through the outage with failsafe_mode on: {late} in its last 5 s"
    );
    assert_eq!(cluster.leader().await?, leader, "the leader kept its role");
    client.shutdown().await;
    cluster.shutdown();
    Ok(())
}
