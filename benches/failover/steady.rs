//! Steady-state overhead: point reads and single-row inserts via pgha-client, raw deadpool, HAProxy.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use pgha::client::{Client, Intent};
use pgha::harness::{percentile, sorted, PoolDriver};
use serde::Serialize;

use crate::target::{pg_config, Target};
use crate::Args;

#[derive(Debug, Serialize)]
pub(crate) struct SteadyRow {
    pub(crate) workload: String,
    pub(crate) client: String,
    pub(crate) ops_per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) throughput_vs_raw: f64,
}

enum SteadyClient {
    Pgha(Client),
    Pool(deadpool_postgres::Pool),
}

async fn one_op(client: &SteadyClient, write: bool, id: i64) -> anyhow::Result<()> {
    const READ: &str = "SELECT id, note FROM bench_steady WHERE id = $1";
    const WRITE: &str = "INSERT INTO bench_steady_w (note) VALUES ($1)";
    let key = id % 1000 + 1;
    match client {
        SteadyClient::Pgha(c) => {
            if write {
                c.run(Intent::Write, async move |conn| {
                    let st = conn.prepare_cached(WRITE).await?;
                    Ok(conn.execute(&st, &[&"x"]).await?)
                })
                .await?;
            } else {
                c.run(Intent::Primary, async move |conn| {
                    let st = conn.prepare_cached(READ).await?;
                    Ok(conn.query(&st, &[&key]).await?.len())
                })
                .await?;
            }
        }
        SteadyClient::Pool(p) => {
            let conn = p.get().await?;
            if write {
                let st = conn.prepare_cached(WRITE).await?;
                conn.execute(&st, &[&"x"]).await?;
            } else {
                let st = conn.prepare_cached(READ).await?;
                conn.query(&st, &[&key]).await?;
            }
        }
    }
    Ok(())
}

async fn measure(
    client: Arc<SteadyClient>,
    write: bool,
    duration: Duration,
    concurrency: usize,
) -> anyhow::Result<(f64, Vec<f64>)> {
    // Warm up (connections, prepared statements).
    for i in 0..(concurrency as i64 * 4) {
        one_op(&client, write, i).await?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicI64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..concurrency {
        let (client, stop, counter) = (client.clone(), stop.clone(), counter.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let id = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                one_op(&client, write, id).await?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        });
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    while let Some(r) = tasks.join_next().await {
        latencies.extend(r??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok((latencies.len() as f64 / elapsed, sorted(latencies)))
}

pub(crate) async fn steady_section(target: &Target, args: &Args) -> anyhow::Result<Vec<SteadyRow>> {
    target
        .client
        .op(Intent::Write)
        .idempotent()
        .run(async |c| {
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS bench_steady (id bigint PRIMARY KEY, note text);
                 INSERT INTO bench_steady SELECT g, 'note ' || g FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING;
                 CREATE TABLE IF NOT EXISTS bench_steady_w (id bigserial PRIMARY KEY, note text)",
            )
            .await?;
            Ok(())
        })
        .await?;
    let concurrency = 4;
    let duration = if args.quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    let primary = target.client.topology().primary().cloned().context("no primary")?;
    let raw = PoolDriver::pool(pg_config(target, &primary.host, primary.port), concurrency)?;
    let mut clients: Vec<(&str, Arc<SteadyClient>)> = vec![
        ("raw deadpool (primary)", Arc::new(SteadyClient::Pool(raw))),
        ("pgha-client", Arc::new(SteadyClient::Pgha(target.client.clone()))),
    ];
    if let Some(((h, p), _)) = &target.haproxy {
        clients.push((
            "HAProxy (primary port)",
            Arc::new(SteadyClient::Pool(PoolDriver::pool(
                pg_config(target, h, *p),
                concurrency,
            )?)),
        ));
    }
    let mut rows = Vec::new();
    for (workload, write) in [("point read on the primary", false), ("single-row insert", true)] {
        let mut results = Vec::new();
        // Two passes in alternating order, so no client always runs first or last.
        for pass in 0..2 {
            let order: Vec<usize> = if pass == 0 {
                (0..clients.len()).collect()
            } else {
                (0..clients.len()).rev().collect()
            };
            for i in order {
                if !args.json {
                    eprintln!("steady: {workload} via {} (pass {})", clients[i].0, pass + 1);
                }
                let (ops, lat) = measure(clients[i].1.clone(), write, duration, concurrency).await?;
                results.push((i, ops, lat));
            }
        }
        let mut per_client: Vec<(f64, Vec<f64>)> = vec![(0.0, Vec::new()); clients.len()];
        for (i, ops, lat) in results {
            per_client[i].0 += ops / 2.0;
            per_client[i].1.extend(lat);
        }
        let raw_ops = per_client[0].0;
        for (i, (ops, lat)) in per_client.into_iter().enumerate() {
            let lat = sorted(lat);
            rows.push(SteadyRow {
                workload: workload.to_owned(),
                client: clients[i].0.to_owned(),
                ops_per_s: ops,
                p50_ms: percentile(&lat, 50.0),
                p99_ms: percentile(&lat, 99.0),
                throughput_vs_raw: ops / raw_ops,
            });
        }
    }
    Ok(rows)
}
