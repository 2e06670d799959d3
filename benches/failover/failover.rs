//! Failover side by side: the contending clients, their rounds through each fault, the summary rows.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use pgha::harness::{self, percentile, sorted, Contender, Fault, PghaDriver, PoolDriver, RoundReport, WorkloadConfig};
use serde::Serialize;

use crate::target::{pg_config, Target};
use crate::Args;

const CLIENTS: [(&str, i32); 4] = [
    ("bench_pgha", 11),
    ("bench_deadpool", 12),
    ("bench_multihost", 13),
    ("bench_haproxy", 14),
];

fn drivers(target: &Target, config: &WorkloadConfig) -> anyhow::Result<Vec<Contender>> {
    let size = config.writers + config.readers + 1;
    let topology = target.client.topology();
    let primary = topology.primary().context("no primary")?;
    let mut out: Vec<Contender> = Vec::new();
    let table = |i: usize| (CLIENTS[i].0.to_owned(), CLIENTS[i].1);
    let (t, r) = table(0);
    out.push((
        Arc::new(PghaDriver {
            client: target.client.clone(),
            read_bound: config.read_bound,
        }),
        t,
        r,
    ));
    // What many services do: one pool pointed at the primary they started with.
    let pool = PoolDriver::pool(pg_config(target, &primary.host, primary.port), size)?;
    let (t, r) = table(1);
    out.push((
        Arc::new(PoolDriver {
            name: "deadpool (initial primary)".into(),
            writes: pool.clone(),
            reads: pool,
        }),
        t,
        r,
    ));
    // libpq style: every host, target_session_attrs=read-write, a new connection after an error.
    let mut multi = tokio_postgres::Config::new();
    for m in &topology.members {
        multi.host(&m.host).port(m.port);
    }
    multi
        .user(&target.user)
        .password(&target.password)
        .dbname(&target.db)
        .connect_timeout(Duration::from_secs(1))
        .target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
    let pool = PoolDriver::pool(multi, size)?;
    let (t, r) = table(2);
    out.push((
        Arc::new(PoolDriver {
            name: "multi-host read-write".into(),
            writes: pool.clone(),
            reads: pool,
        }),
        t,
        r,
    ));
    if let Some(((ph, pp), (rh, rp))) = &target.haproxy {
        let (t, r) = table(3);
        out.push((
            Arc::new(PoolDriver {
                name: "HAProxy + Patroni checks".into(),
                writes: PoolDriver::pool(pg_config(target, ph, *pp), size)?,
                reads: PoolDriver::pool(pg_config(target, rh, *rp), size)?,
            }),
            t,
            r,
        ));
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub(crate) struct FailoverRow {
    pub(crate) fault: String,
    pub(crate) client: String,
    pub(crate) trials: usize,
    pub(crate) promotion_p50_s: Option<f64>,
    pub(crate) write_gap_p50_s: f64,
    pub(crate) write_gap_p95_s: f64,
    pub(crate) write_gap_max_s: f64,
    pub(crate) gap_minus_promotion_p50_s: Option<f64>,
    pub(crate) gap_minus_promotion_p95_s: Option<f64>,
    pub(crate) errors_surfaced: u64,
    pub(crate) stale_reads: u64,
    pub(crate) acked_writes_lost: u64,
    pub(crate) ops_stuck: u64,
    pub(crate) reads_standby: u64,
    pub(crate) reads_primary: u64,
}

fn summarize(fault: &str, client: &str, reports: &[&RoundReport]) -> FailoverRow {
    let gaps = sorted(reports.iter().map(|r| r.write_gap_s).collect());
    let promotions = sorted(reports.iter().filter_map(|r| r.promotion_s).collect());
    let over = sorted(reports.iter().filter_map(|r| r.gap_minus_promotion_s).collect());
    let sum = |f: fn(&RoundReport) -> u64| reports.iter().map(|r| f(r)).sum();
    FailoverRow {
        fault: fault.to_owned(),
        client: client.to_owned(),
        trials: reports.len(),
        promotion_p50_s: (!promotions.is_empty()).then(|| percentile(&promotions, 50.0)),
        write_gap_p50_s: percentile(&gaps, 50.0),
        write_gap_p95_s: percentile(&gaps, 95.0),
        write_gap_max_s: gaps.last().copied().unwrap_or(f64::NAN),
        gap_minus_promotion_p50_s: (!over.is_empty()).then(|| percentile(&over, 50.0)),
        gap_minus_promotion_p95_s: (!over.is_empty()).then(|| percentile(&over, 95.0)),
        errors_surfaced: sum(|r| r.errors_surfaced),
        stale_reads: sum(|r| r.stale_reads),
        acked_writes_lost: sum(|r| r.acked_writes_lost),
        ops_stuck: sum(|r| r.ops_stuck),
        reads_standby: sum(|r| r.reads_standby),
        reads_primary: sum(|r| r.reads_primary),
    }
}

pub(crate) async fn failover_section(
    target: &Target,
    args: &Args,
    failures: &mut Vec<String>,
) -> anyhow::Result<Vec<FailoverRow>> {
    let tables: Vec<(&str, i32)> = CLIENTS.to_vec();
    harness::prepare_tables(&target.client, &tables).await?;
    let config = WorkloadConfig {
        writers: 1,
        readers: 1,
        read_bound: Duration::from_secs(2),
    };
    let faults: Vec<Fault> = if args.quick {
        vec![Fault::Switchover]
    } else {
        args.faults
            .iter()
            .map(|f| match f.as_str() {
                "kill" => Ok(Fault::KillLeader),
                "switchover" => Ok(Fault::Switchover),
                "freeze" => Ok(Fault::FreezeLeader),
                other => Err(anyhow::anyhow!("unknown fault {other:?} (kill, switchover, freeze)")),
            })
            .collect::<anyhow::Result<_>>()?
    };
    let trials = if args.quick { 1 } else { args.trials.max(1) };
    let mut rows = Vec::new();
    let mut pictured: Vec<(String, Vec<RoundReport>)> = Vec::new();
    for fault in faults {
        let mut all: Vec<RoundReport> = Vec::new();
        for trial in 1..=trials {
            if !args.json {
                eprintln!("failover: {} trial {trial}/{trials} …", fault.name());
            }
            // Start each trial from a settled cluster, as pgha sees it.
            let settled = target
                .client
                .wait_for_topology(Duration::from_secs(120), |t| {
                    t.primary().is_some() && t.members.iter().all(|m| m.is_primary() || m.is_standby())
                })
                .await;
            let drivers = match settled
                .map_err(anyhow::Error::from)
                .and_then(|_| drivers(target, &config))
            {
                Ok(d) => d,
                Err(e) => {
                    failures.push(format!("{} trial {trial}: cluster not settled: {e:#}", fault.name()));
                    continue;
                }
            };
            let probe = harness::probe_targets(&target.client, &target.user, &target.password, &target.db);
            let settle = Duration::from_secs(2);
            let reports = match (&target.cluster, &target.rest) {
                (Some(cluster), _) => {
                    harness::run_fault(&target.client, cluster, fault, &config, probe, &drivers, settle).await
                }
                (None, Some(rest)) => {
                    harness::run_fault(&target.client, rest, fault, &config, probe, &drivers, settle).await
                }
                (None, None) => bail!("no way to inject faults"),
            };
            match reports {
                Ok(reports) => {
                    if !pictured.iter().any(|(f, _)| f == fault.name()) {
                        pictured.push((fault.name().to_owned(), reports.clone()));
                    }
                    all.extend(reports);
                }
                Err(e) => {
                    // Recorded and reported; the next trial starts from whatever state is left.
                    let what = format!("{} trial {trial}: {e:#}", fault.name());
                    eprintln!("failover: {what}");
                    failures.push(what);
                }
            }
        }
        let mut clients: Vec<String> = Vec::new();
        for r in &all {
            if !clients.contains(&r.client) {
                clients.push(r.client.clone());
            }
        }
        for c in clients {
            let mine: Vec<&RoundReport> = all.iter().filter(|r| r.client == c).collect();
            rows.push(summarize(fault.name(), &c, &mine));
        }
    }
    if let Some(path) = &args.plot {
        harness::failover_svg(path, &pictured)?;
        eprintln!("failover picture: {}", path.display());
    }
    Ok(rows)
}
