//! The `metrics` feature against a real cluster and a real exporter: what a Prometheus scrape of
//! an application using pgha-client shows after writes, reads, a failed statement and a
//! switchover. (Each nextest test is its own process, so the global recorder is this test's.)

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use pgha_client::Intent;

use super::{healthy_source, two_members};

/// The value of the sample of `name` whose labels include every one of `labels`, in the
/// Prometheus text format.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (set, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        let all = labels
            .iter()
            .all(|(k, v)| set.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
        all.then(|| value.trim().parse().ok()).flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_prometheus_scrape_shows_operations_members_pools_and_failovers() -> anyhow::Result<()> {
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    let (cluster, leader, standby, client) = two_members().await?;
    for _ in 0..5 {
        client
            .run(Intent::Write, async |c| Ok(c.execute("SELECT 1", &[]).await?))
            .await?;
    }
    let failed = client
        .run(Intent::Write, async |c| Ok(c.execute("SELECT 1/0", &[]).await?))
        .await;
    assert!(failed.is_err(), "division by zero");
    client
        .wait_for_topology(Duration::from_secs(10), |t| t.standbys().count() == 1)
        .await?;
    for _ in 0..3 {
        client
            .run(Intent::Standby, async |c| Ok(c.execute("SELECT 1", &[]).await?))
            .await?;
    }
    // Gauges are set on the topology task's next tick.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let text = prometheus.render();
    println!("{text}");

    let ops = |text: &str, intent, outcome, member| {
        sample(
            text,
            "pgha_operations_total",
            &[("intent", intent), ("outcome", outcome), ("member", member)],
        )
    };
    assert_eq!(ops(&text, "write", "ok", &leader), Some(5.0));
    assert_eq!(ops(&text, "write", "db", &leader), Some(1.0), "the failed statement");
    assert_eq!(ops(&text, "standby", "ok", &standby), Some(3.0));
    assert_eq!(
        sample(
            &text,
            "pgha_attempts_total",
            &[("intent", "write"), ("member", &leader)]
        ),
        Some(6.0)
    );
    assert_eq!(
        sample(
            &text,
            "pgha_operation_duration_seconds_count",
            &[("intent", "write"), ("outcome", "ok")]
        ),
        Some(5.0)
    );
    assert_eq!(sample(&text, "pgha_member_primary", &[("member", &leader)]), Some(1.0));
    assert_eq!(sample(&text, "pgha_member_primary", &[("member", &standby)]), Some(0.0));
    assert_eq!(sample(&text, "pgha_member_usable", &[("member", &standby)]), Some(1.0));
    assert!(
        sample(&text, "pgha_pool_size", &[("member", &leader)]).is_some_and(|n| n >= 1.0),
        "the leader's pool holds the connection the writes used"
    );
    let staleness = sample(&text, "pgha_member_staleness_seconds", &[("member", &standby)]);
    assert!(
        staleness.is_some_and(|s| (0.0..5.0).contains(&s)),
        "staleness {staleness:?}"
    );
    let refreshes = sample(
        &text,
        "pgha_topology_refresh_duration_seconds_count",
        &[("source", healthy_source().label())],
    );
    assert!(refreshes.is_some_and(|n| n >= 1.0), "refreshes {refreshes:?}");
    assert!(
        text.contains("# HELP pgha_operations_total Operations finished"),
        "described"
    );

    cluster.switchover(Some(&standby)).await?;
    client
        .wait_for_topology(Duration::from_secs(30), |t| {
            t.primary().is_some_and(|p| p.name == standby)
        })
        .await?;
    client
        .run(Intent::Write, async |c| Ok(c.execute("SELECT 1", &[]).await?))
        .await?;
    let text = prometheus.render();
    assert_eq!(sample(&text, "pgha_primary_changes_total", &[]), Some(1.0), "{text}");
    let leader_changes = sample(&text, "pgha_topology_events_total", &[("event", "leader-changed")]);
    assert!(
        leader_changes.is_some_and(|n| n >= 2.0),
        "first primary and the switchover: {leader_changes:?}"
    );
    assert_eq!(
        ops(&text, "write", "ok", &standby),
        Some(1.0),
        "the write after the switchover"
    );
    client.shutdown().await;
    cluster.shutdown();
    Ok(())
}
