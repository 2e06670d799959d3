//! The pgha benchmark: failover side by side with the usual alternatives, steady-state overhead,
//! and pgvector workloads. See BENCHMARKS.md for the method and recorded results.
//!
//! ```text
//! cargo bench --bench failover                      # everything, 3 trials per fault (~10 min)
//! cargo bench --bench failover -- --json            # one JSON document on stdout
//! cargo bench --bench failover -- --quick           # smoke run (make test runs it, debug build)
//! cargo bench --bench failover -- --faults kill --trials 5 --skip-steady --skip-vector
//! cargo bench --bench failover -- --patroni http://h1:8008,… --dsn postgresql://u:p@h1,h2/db \
//!     [--haproxy-primary h:5000 --haproxy-replicas h:5001]     # existing cluster: switchover only
//! ```

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use pgha::client::vector::{Distance, IndexKind, SearchOptions, VectorTable};
use pgha::client::{Client, Intent, LagBound};
use pgha::harness::{self, Contender, Fault, PghaDriver, PoolDriver, RestInjector, RoundReport, WorkloadConfig};
use pgha::testkit::LocalCluster;
use pgvector::Vector;
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(about = "pgha benchmarks: failover side by side, steady-state overhead, pgvector")]
struct Args {
    /// Smoke mode: one short trial, small data (what `make test` runs).
    #[arg(long)]
    quick: bool,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    json: bool,
    /// Trials per fault.
    #[arg(long, default_value_t = 3)]
    trials: usize,
    /// Faults to inject: kill, switchover, freeze.
    #[arg(long, value_delimiter = ',', default_value = "kill,switchover,freeze")]
    faults: Vec<String>,
    /// Skip the steady-state overhead section.
    #[arg(long)]
    skip_steady: bool,
    /// Skip the pgvector section.
    #[arg(long)]
    skip_vector: bool,
    /// Skip the failover section.
    #[arg(long)]
    skip_failover: bool,
    /// Patroni REST URLs of an existing cluster (comma-separated).
    #[arg(long, env = "PGHA_PATRONI_URLS", value_delimiter = ',')]
    patroni: Vec<String>,
    /// libpq URL with credentials for an existing cluster.
    #[arg(long, env = "PGHA_DSN", hide_env_values = true)]
    dsn: Option<String>,
    /// Patroni basic-auth user (switchover on an existing cluster).
    #[arg(long, env = "PGHA_PATRONI_USER")]
    patroni_user: Option<String>,
    /// Patroni basic-auth password.
    #[arg(long, env = "PGHA_PATRONI_PASSWORD", hide_env_values = true)]
    patroni_password: Option<String>,
    /// HAProxy's primary port on an existing cluster (`host:port`).
    #[arg(long)]
    haproxy_primary: Option<String>,
    /// HAProxy's replicas port on an existing cluster (`host:port`).
    #[arg(long)]
    haproxy_replicas: Option<String>,
    /// Cargo passes `--bench` to bench targets.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Where the database is and how to reach it.
struct Target {
    client: Client,
    user: String,
    password: String,
    db: String,
    haproxy: Option<((String, u16), (String, u16))>,
    cluster: Option<LocalCluster>,
    rest: Option<RestInjector>,
    description: String,
}

fn pg_config(target: &Target, host: &str, port: u16) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host(host)
        .port(port)
        .user(&target.user)
        .password(&target.password)
        .dbname(&target.db)
        .application_name("pgha-bench")
        .connect_timeout(Duration::from_secs(1));
    c
}

fn host_port(s: &str) -> anyhow::Result<(String, u16)> {
    let (h, p) = s.rsplit_once(':').context("expected host:port")?;
    Ok((h.to_owned(), p.parse()?))
}

async fn target(args: &Args) -> anyhow::Result<Target> {
    let bound = LagBound::time(Duration::from_secs(2));
    if args.patroni.is_empty() {
        let cluster = LocalCluster::builder().members(3).start().await?;
        let ports = cluster.start_haproxy().await?;
        let client = harness::client_builder(&cluster).lag_bound(bound).connect().await?;
        let creds = cluster.credentials().app;
        let t = cluster.timing();
        Ok(Target {
            client,
            user: creds.username.clone(),
            password: creds.password.expose().to_owned(),
            db: cluster.database(),
            haproxy: Some((
                ("127.0.0.1".into(), ports.primary),
                ("127.0.0.1".into(), ports.replicas),
            )),
            description: format!(
                "local 3-node cluster, Patroni {} (ttl {} s, loop_wait {} s, retry_timeout {} s), PostgreSQL 15, \
                 asynchronous replication, HAProxy 2.6 as in Patroni's docs",
                cluster.patroni_version(),
                t.ttl,
                t.loop_wait,
                t.retry_timeout
            ),
            cluster: Some(cluster),
            rest: None,
        })
    } else {
        let dsn = args.dsn.as_deref().context("--dsn is required with --patroni")?;
        let (user, password, db) = harness::dsn_credentials(dsn)?;
        let auth = args.patroni_user.clone().zip(args.patroni_password.clone());
        let mut builder = Client::builder()
            .url(dsn)
            .patroni(args.patroni.clone())
            .lag_bound(bound);
        if let Some((u, p)) = &auth {
            builder = builder.patroni_auth(u.clone(), p.as_str());
        }
        let client = builder.connect().await?;
        let haproxy = match (&args.haproxy_primary, &args.haproxy_replicas) {
            (Some(p), Some(r)) => Some((host_port(p)?, host_port(r)?)),
            _ => None,
        };
        Ok(Target {
            rest: Some(RestInjector::new(client.clone(), auth)),
            client,
            user,
            password,
            db,
            haproxy,
            cluster: None,
            description: format!("existing cluster at {}", args.patroni.join(",")),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Failover side by side

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
struct FailoverRow {
    fault: String,
    client: String,
    trials: usize,
    promotion_p50_s: Option<f64>,
    write_gap_p50_s: f64,
    write_gap_p95_s: f64,
    write_gap_max_s: f64,
    gap_minus_promotion_p50_s: Option<f64>,
    gap_minus_promotion_p95_s: Option<f64>,
    errors_surfaced: u64,
    stale_reads: u64,
    acked_writes_lost: u64,
    ops_stuck: u64,
    reads_standby: u64,
    reads_primary: u64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
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

async fn failover_section(
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
                Ok(reports) => all.extend(reports),
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
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Steady-state overhead

#[derive(Debug, Serialize)]
struct SteadyRow {
    workload: String,
    client: String,
    ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    throughput_vs_raw: f64,
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

async fn steady_section(target: &Target, args: &Args) -> anyhow::Result<Vec<SteadyRow>> {
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

// ---------------------------------------------------------------------------------------------
// pgvector

#[derive(Debug, Serialize)]
struct VectorReport {
    rows: usize,
    dims: usize,
    copy_rows_per_s: f64,
    multi_row_insert_rows_per_s: f64,
    row_by_row_insert_rows_per_s: f64,
    copy_vs_row_by_row: f64,
    knn_qps_standbys: f64,
    knn_qps_primary_only: f64,
    recall_at_10: Vec<(u32, f64)>,
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

async fn vector_section(target: &Target, args: &Args) -> anyhow::Result<VectorReport> {
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

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct Report {
    setup: String,
    quick: bool,
    machine: String,
    failover: Vec<FailoverRow>,
    /// Trials that could not complete (and why).
    failed_trials: Vec<String>,
    steady: Vec<SteadyRow>,
    vector: Option<VectorReport>,
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

fn print_report(r: &Report) {
    println!("{}\n{}\n", r.setup, r.machine);
    if !r.failover.is_empty() {
        println!(
            "{:<14} {:<28} {:>6} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10} {:>6} {:>6} {:>5}",
            "fault",
            "client",
            "trials",
            "promo p50",
            "gap p50",
            "gap p95",
            "gap max",
            "-promo p50",
            "-promo p95",
            "errors",
            "stale",
            "lost"
        );
        for f in &r.failover {
            println!(
                "{:<14} {:<28} {:>6} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>10} {:>10} {:>6} {:>6} {:>5} {:>5}",
                f.fault,
                f.client,
                f.trials,
                opt(f.promotion_p50_s),
                f.write_gap_p50_s,
                f.write_gap_p95_s,
                f.write_gap_max_s,
                opt(f.gap_minus_promotion_p50_s),
                opt(f.gap_minus_promotion_p95_s),
                f.errors_surfaced,
                f.stale_reads,
                f.acked_writes_lost,
                f.ops_stuck
            );
        }
        println!();
    }
    for f in &r.failed_trials {
        println!("failed trial: {f}");
    }
    if !r.steady.is_empty() {
        println!(
            "{:<26} {:<24} {:>10} {:>8} {:>8} {:>8}",
            "workload", "client", "ops/s", "p50 ms", "p99 ms", "vs raw"
        );
        for s in &r.steady {
            println!(
                "{:<26} {:<24} {:>10.0} {:>8.3} {:>8.3} {:>8.3}",
                s.workload, s.client, s.ops_per_s, s.p50_ms, s.p99_ms, s.throughput_vs_raw
            );
        }
        println!();
    }
    if let Some(v) = &r.vector {
        println!(
            "pgvector ({} rows x {} dims; inserts into a table without index, searches with HNSW m=16 \
             ef_construction=64):",
            v.rows, v.dims
        );
        println!(
            "  insert rows/s: COPY {:.0}, multi-row INSERT {:.0}, row-by-row INSERT {:.0} (COPY = {:.1}x row-by-row)",
            v.copy_rows_per_s, v.multi_row_insert_rows_per_s, v.row_by_row_insert_rows_per_s, v.copy_vs_row_by_row
        );
        println!(
            "  k-NN QPS (4 concurrent): standbys {:.0}, primary only {:.0}",
            v.knn_qps_standbys, v.knn_qps_primary_only
        );
        for (ef, recall) in &v.recall_at_10 {
            println!("  recall@10 at hnsw.ef_search={ef}: {recall:.3}");
        }
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(str::to_owned))
        .unwrap_or_default();
    format!(
        "machine: {cpus} CPUs, {}",
        mem.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let target = target(&args).await?;
    let mut failed_trials = Vec::new();
    let failover = if args.skip_failover {
        Vec::new()
    } else {
        failover_section(&target, &args, &mut failed_trials).await?
    };
    let steady = if args.skip_steady {
        Vec::new()
    } else {
        steady_section(&target, &args).await?
    };
    let vector = if args.skip_vector {
        None
    } else {
        Some(vector_section(&target, &args).await?)
    };
    let report = Report {
        setup: target.description.clone(),
        quick: args.quick,
        machine: machine(),
        failover,
        failed_trials,
        steady,
        vector,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    target.client.shutdown().await;
    if let Some(cluster) = &target.cluster {
        cluster.shutdown();
    }
    // The smoke run checks what must hold whatever the timings.
    if args.quick {
        let pgha: Vec<&FailoverRow> = report.failover.iter().filter(|r| r.client == "pgha-client").collect();
        if !report.failed_trials.is_empty() || pgha.iter().any(|r| r.errors_surfaced > 0 || r.stale_reads > 0) {
            bail!("pgha-client surfaced errors or stale reads: {pgha:?}");
        }
    }
    Ok(())
}
