//! A tour of a real local Patroni cluster: members, roles and lag; a write on the leader read back
//! on the replicas; kill -9 of the leader and the promotion that follows; the old leader rejoining.
//!
//! ```text
//! cargo run --example cluster_tour            # 3 members, Debian's Patroni 3.0.2
//! PGHA_PATRONI=4 cargo run --example cluster_tour
//! ```
//! Run as root (it starts the cluster as the `postgres` OS user) after `scripts/install-deps.sh`;
//! `make demo` does both.

use std::time::{Duration, Instant};

use anyhow::Context;
use pgha::testkit::{LocalCluster, PatroniMember};

async fn print_members(cluster: &LocalCluster, title: &str) -> anyhow::Result<Vec<PatroniMember>> {
    let members = cluster.cluster_status().await?;
    println!("\n{title}");
    println!(
        "  {:<8} {:<14} {:<12} {:>8} {:>12}",
        "member", "role", "state", "timeline", "lag (bytes)"
    );
    for m in &members {
        let timeline = m.timeline.map_or_else(|| "-".to_owned(), |t| t.to_string());
        let lag = m.lag.map_or_else(|| "-".to_owned(), |l| l.to_string());
        println!(
            "  {:<8} {:<14} {:<12} {:>8} {:>12}",
            m.name, m.role, m.state, timeline, lag
        );
    }
    Ok(members)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();

    let started = Instant::now();
    let cluster = LocalCluster::builder()
        .members(3)
        .start()
        .await
        .context("starting the local cluster")?;
    let timing = cluster.timing();
    println!(
        "cluster {} up in {:.1}s — Patroni {}, ttl {}s, loop_wait {}s, retry_timeout {}s",
        cluster.scope(),
        started.elapsed().as_secs_f64(),
        cluster.patroni_version(),
        timing.ttl,
        timing.loop_wait,
        timing.retry_timeout
    );
    print_members(&cluster, "members:").await?;

    let leader = cluster.leader().await?;
    let client = cluster.connect(&leader).await?;
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS tour (id serial PRIMARY KEY, note text); INSERT INTO tour (note) VALUES ('written on the leader')")
        .await?;
    for member in cluster.member_names().into_iter().filter(|m| *m != leader) {
        let note: String = pgha::testkit::wait_for("the row on a replica", Duration::from_secs(30), || async {
            let c = cluster.connect(&member).await?;
            Ok(c.query_opt("SELECT note FROM tour LIMIT 1", &[])
                .await
                .ok()
                .flatten()
                .map(|r| r.get(0)))
        })
        .await?;
        println!("  {member} (replica) reads back: {note:?}");
    }

    println!("\nkill -9 of the leader {leader} (Patroni and PostgreSQL) …");
    let killed = Instant::now();
    cluster.kill_node(&leader)?;
    let new = cluster.wait_for_new_leader(&leader, Duration::from_secs(90)).await?;
    println!(
        "  {new} promoted and writable after {:.1}s (leader key ttl {}s + up to loop_wait {}s)",
        killed.elapsed().as_secs_f64(),
        timing.ttl,
        timing.loop_wait
    );
    print_members(&cluster, "members after the failover:").await?;

    cluster.start_node(&leader)?;
    cluster.wait_streaming(&leader, Duration::from_secs(90)).await?;
    print_members(&cluster, &format!("{leader} restarted and rejoined as a replica:")).await?;

    cluster.shutdown();
    println!("\ncluster stopped; every process it started is gone");
    Ok(())
}
