//! One measured round: workloads and the promotion probe through a fault, then the reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgha_client::Client;

use super::drivers::{Contender, Driver, PghaDriver};
use super::faults::{Fault, Injector};
use super::probe::PromotionProbe;
use super::workload::Workload;
use super::{RoundReport, WorkloadConfig, TABLE};

/// Runs one round: steady workload, the fault, the failover, steady again; then checks every
/// acknowledged write is on the primary.
pub async fn run_round<I: Injector>(
    client: &Client,
    injector: &I,
    fault: Fault,
    config: &WorkloadConfig,
    probe_targets: Vec<(String, tokio_postgres::Config)>,
) -> anyhow::Result<RoundReport> {
    let driver: Arc<dyn Driver> = Arc::new(PghaDriver {
        client: client.clone(),
        read_bound: config.read_bound,
    });
    let mut reports = run_fault(
        client,
        injector,
        fault,
        config,
        probe_targets,
        &[(driver, TABLE.to_owned(), 1)],
        Duration::from_secs(3),
    )
    .await?;
    reports.pop().ok_or_else(|| anyhow::anyhow!("no report"))
}

/// Runs every `(driver, table, heartbeat row)` side by side through one fault. After pgha sees
/// the new primary, waits until every client has written again (at most 30 s: a client pinned
/// to the old primary never does) and then `settle` more.
pub async fn run_fault<I: Injector>(
    client: &Client,
    injector: &I,
    fault: Fault,
    config: &WorkloadConfig,
    probe_targets: Vec<(String, tokio_postgres::Config)>,
    drivers: &[Contender],
    settle: Duration,
) -> anyhow::Result<Vec<RoundReport>> {
    let before = client.topology().primary().map(|m| m.name.clone());
    let leader = before
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no primary before the fault"))?;
    let probe = PromotionProbe::start(probe_targets);
    let mut workloads = Vec::new();
    for (driver, table, row) in drivers {
        workloads.push(Workload::start_driver(client, driver.clone(), table, *row, config).await?);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    probe.reset();
    let fault_at = Instant::now();
    match fault {
        Fault::None(duration) => {
            injector.inject(fault, &leader).await?;
            tokio::time::sleep(duration).await;
        }
        _ => {
            // A switchover call returns only once Patroni is done: the workloads run meanwhile.
            injector.inject(fault, &leader).await?;
            client
                .wait_for_topology(Duration::from_secs(90), |t| {
                    t.primary().is_some_and(|p| p.name != leader)
                })
                .await?;
            let seen = Instant::now();
            let give_up = seen + Duration::from_secs(30);
            while Instant::now() < give_up && !workloads.iter().all(|w| w.last_ack().is_some_and(|t| t > seen)) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(settle).await;
        }
    }
    let mut logs = Vec::new();
    for w in workloads {
        logs.push(w.stop().await);
    }
    let promotion = probe
        .new_primary_since(Some(&leader))
        .map(|(_, t)| t.saturating_duration_since(fault_at));
    probe.stop().await;
    let after = client.topology().primary().map(|m| m.name.clone());
    let mut reports = Vec::new();
    for log in &logs {
        let mut report = log.report_from(client, fault.name(), fault_at, promotion).await?;
        report.primary_before = before.clone();
        report.primary_after = after.clone();
        reports.push(report);
    }
    injector.recover(fault, &leader).await?;
    Ok(reports)
}
