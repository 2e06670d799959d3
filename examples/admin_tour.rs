//! pgha-admin as a library on a real local cluster: status, the health check, a switchover with
//! progress reported through a channel, a replica rebuilt, replication lag, a backup and the
//! timeline history.
//!
//! ```text
//! cargo run --example admin_tour
//! ```
//! Run as root (it starts the cluster as the `postgres` OS user) after `scripts/install-deps.sh`.

use pgha::admin::backup::BackupType;
use pgha::admin::{CheckOptions, Progress, SwitchoverRequest};
use pgha::testkit::LocalCluster;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cluster = LocalCluster::builder().members(3).pgbackrest(true).start().await?;

    // Progress of long operations arrives on a channel; a task prints it.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let printer = tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            println!("  … {p}");
        }
    });
    let admin = cluster.admin()?.on_progress(move |p| {
        let _ = tx.send(p.clone());
    });

    let status = admin.status().await?;
    println!(
        "cluster {:?}, Patroni {:?}, leader {:?}",
        status.scope, status.patroni_version, status.leader
    );
    for m in &status.members {
        println!(
            "  {:<6} {:<8} {:<10} timeline {:?} lag {:?}",
            m.name, m.role, m.state, m.timeline, m.lag
        );
    }

    let health = admin.check(&CheckOptions::default()).await;
    println!("\nhealth: {:?} (exit code {})", health.level, health.exit_code());
    for c in &health.checks {
        println!(
            "  {:?} {} {}: {}",
            c.level,
            c.name,
            c.member.as_deref().unwrap_or(""),
            c.message
        );
    }

    println!("\nswitchover:");
    let report = admin.switchover(&SwitchoverRequest::new(None)).await?;
    println!(
        "  {:?} → {:?} in {:.1} s",
        report.plan.leader, report.new_leader, report.elapsed_s
    );

    let old = report.plan.leader.clone().unwrap_or_default();
    println!("\nreinitialize {old} (wipe and re-clone from the new leader):");
    admin.reinitialize(&old).await?;

    let lag = admin.replication().await?;
    println!("\nreplication from {} at {}:", lag.leader, lag.leader_lsn);
    for s in &lag.standbys {
        println!(
            "  {:<6} streaming {} replay lag {:?} bytes / {:?} s",
            s.member, s.streaming, s.replay_lag_bytes, s.replay_lag_s
        );
    }

    let pgbackrest = cluster
        .pgbackrest_handle()
        .ok_or_else(|| anyhow::anyhow!("no pgBackRest"))?;
    pgbackrest.backup(BackupType::Full).await?;
    let info = pgbackrest.info().await?;
    println!(
        "\nbackups: {} (status {}: {})",
        info.backup
            .iter()
            .map(|b| b.label.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        info.status.code,
        info.status.message
    );

    println!("\nhistory:");
    for h in admin.history().await? {
        println!(
            "  timeline {} ended at {} ({}), new leader {:?}",
            h.timeline, h.switch_lsn, h.reason, h.new_leader
        );
    }
    drop(admin);
    let _ = printer.await;
    cluster.shutdown();
    Ok(())
}
