//! pgvector: insert rates (COPY, multi-row, row by row), k-NN QPS on standbys and primary, recall.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgha::client::vector::{Distance, IndexKind, SearchOptions, VectorTable};
use pgha::client::{Client, Intent};
use pgha::harness;
use pgvector::Vector;
use serde::Serialize;

use crate::target::Target;
use crate::Args;

#[derive(Debug, Serialize)]
pub(crate) struct VectorReport {
    pub(crate) rows: usize,
    pub(crate) dims: usize,
    pub(crate) copy_rows_per_s: f64,
    pub(crate) multi_row_insert_rows_per_s: f64,
    pub(crate) row_by_row_insert_rows_per_s: f64,
    pub(crate) copy_vs_row_by_row: f64,
    pub(crate) knn_qps_standbys: f64,
    pub(crate) knn_qps_primary_only: f64,
    pub(crate) recall_at_10: Vec<(u32, f64)>,
}

async fn knn_qps(
    client: &Client,
    table: &VectorTable,
    intent: Intent,
    duration: Duration,
    dims: usize,
) -> anyhow::Result<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for t in 0..4_u64 {
        let (client, table, stop) = (client.clone(), table.clone(), stop.clone());
        tasks.spawn(async move {
            let mut n = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let q = harness::vector_of(1_000_000 + t * 100_000 + n, dims);
                let opts = SearchOptions {
                    intent,
                    ..SearchOptions::default()
                };
                table.search(&client, &q, 10, opts).await?;
                n += 1;
            }
            anyhow::Ok(n)
        });
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

pub(crate) async fn vector_section(target: &Target, args: &Args) -> anyhow::Result<VectorReport> {
    let client = &target.client;
    let (rows, dims) = if args.quick { (300, 32) } else { (5000, 64) };
    let table = VectorTable::new("bench_vectors", dims)?.distance(Distance::L2);
    client
        .op(Intent::Write)
        .idempotent()
        .run(async |c| Ok(c.batch_execute("DROP TABLE IF EXISTS bench_vectors").await?))
        .await?;
    // Inserts are measured on a table without an index (bulk loads build the index after the
    // data, as pgvector recommends); the HNSW index is built once the data is in.
    table.ensure(client, IndexKind::None).await?;
    let data: Vec<(i64, Vector)> = (0..rows as i64)
        .map(|i| (i, harness::vector_of(i as u64, dims)))
        .collect();
    let truncate = async || {
        client
            .op(Intent::Write)
            .idempotent()
            .run(async |c| Ok(c.batch_execute("TRUNCATE bench_vectors").await?))
            .await
    };
    let rate = |n: usize, t: Instant| n as f64 / t.elapsed().as_secs_f64();

    // Row by row (a fifth of the rows: it is the slow one), multi-row INSERT, then COPY (which
    // leaves the table loaded for the searches).
    let slice = &data[..rows / 5];
    let t = Instant::now();
    for row in slice {
        table.insert(client, std::slice::from_ref(row)).await?;
    }
    let row_by_row = rate(slice.len(), t);
    truncate().await?;
    let t = Instant::now();
    for chunk in data.chunks(500) {
        table.insert(client, chunk).await?;
    }
    let multi_row = rate(rows, t);
    truncate().await?;
    let t = Instant::now();
    table.copy_in(client, &data).await?;
    let copy = rate(rows, t);

    table.ensure(client, IndexKind::hnsw()).await?;
    let ((), token) = client.op(Intent::Write).run_with_token(async |_| Ok(())).await?;
    client.wait_for_standbys(token, Duration::from_secs(60)).await?;
    let duration = if args.quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(5)
    };
    // Warm-up: connections to every member and the index in each one's cache.
    knn_qps(client, &table, Intent::Standby, duration / 2, dims).await?;
    knn_qps(client, &table, Intent::Primary, duration / 2, dims).await?;
    let on_standbys = knn_qps(client, &table, Intent::Standby, duration, dims).await?;
    let on_primary = knn_qps(client, &table, Intent::Primary, duration, dims).await?;

    let queries = if args.quick { 10 } else { 50 };
    let efs = [10_u32, 100];
    let mut hits = [0_usize; 2];
    for q in 0..queries {
        let v = harness::vector_of(9_000_000 + q, dims);
        // The exact answer does not depend on ef_search: one exact search per query.
        let exact: Vec<i64> = table
            .search(
                client,
                &v,
                10,
                SearchOptions {
                    intent: Intent::Primary,
                    exact: true,
                    ..SearchOptions::default()
                },
            )
            .await?
            .iter()
            .map(|n| n.id)
            .collect();
        for (ef, hits) in efs.iter().zip(&mut hits) {
            let approx = table
                .search(
                    client,
                    &v,
                    10,
                    SearchOptions {
                        intent: Intent::Primary,
                        ef_search: Some(*ef),
                        ..SearchOptions::default()
                    },
                )
                .await?;
            *hits += approx.iter().filter(|n| exact.contains(&n.id)).count();
        }
    }
    let recall = efs
        .iter()
        .zip(hits)
        .map(|(ef, hits)| (*ef, hits as f64 / (queries as f64 * 10.0)))
        .collect();
    Ok(VectorReport {
        rows,
        dims,
        copy_rows_per_s: copy,
        multi_row_insert_rows_per_s: multi_row,
        row_by_row_insert_rows_per_s: row_by_row,
        copy_vs_row_by_row: copy / row_by_row,
        knn_qps_standbys: on_standbys,
        knn_qps_primary_only: on_primary,
        recall_at_10: recall,
    })
}
