//! The per-operation cost of pgha-client: point reads by primary key on the primary
//! (`Intent::Primary`) against a raw deadpool pool that checks out a connection per operation,
//! in interleaved rounds of one run (the order alternates every round), as ratios. See
//! BENCHMARKS.md ("Per-operation cost").
//!
//! ```text
//! cargo bench --bench hotpath                          # 6 rounds of 3 s per client, 4 tasks
//! cargo bench --bench hotpath -- --rounds 10 --round 5s --json
//!
//! # A profile of one client's operation path (instructions, not seconds: the machine's noise
//! # does not disturb it), against a cluster started once by `pgha-devcluster up`:
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect=hotpath::measured \
//!     target/release/deps/hotpath-… --attach /tmp/pgha-devcluster --only pgha --ops 20000
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use pgha::client::{Client, Intent};
use pgha::harness::{self, PoolDriver};
use pgha::testkit::LocalCluster;
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(about = "pgha-client's per-operation cost against a raw deadpool pool")]
struct Args {
    /// Interleaved rounds (each runs both clients once).
    #[arg(long, default_value_t = 6)]
    rounds: usize,
    /// How long each client runs in a round.
    #[arg(long, default_value = "3s", value_parser = pgha::client::parse_duration)]
    round: Duration,
    /// Concurrent tasks per client.
    #[arg(long, default_value_t = 4)]
    tasks: usize,
    /// pgha-client's pool size per member (default: `--tasks`, the raw pool's size).
    #[arg(long)]
    pgha_pool_size: Option<usize>,
    /// Use the cluster `pgha-devcluster up --state-dir DIR` started instead of starting one.
    #[arg(long, value_name = "DIR")]
    attach: Option<std::path::PathBuf>,
    /// Run only this client for `--ops` operations (after a warm-up), for a profiler.
    #[arg(long, value_enum, requires = "ops")]
    only: Option<Only>,
    /// With `--only`: how many operations to run, across all tasks.
    #[arg(long, requires = "only")]
    ops: Option<u64>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Accepted for `cargo bench`'s own flag.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Only {
    Pgha,
    Raw,
}

const READ: &str = "SELECT id, note FROM bench_hotpath WHERE id = $1";

#[derive(Clone)]
enum Contender {
    Pgha(Client),
    Raw(deadpool_postgres::Pool),
}

impl Contender {
    async fn read(&self, key: i64) -> anyhow::Result<()> {
        match self {
            Self::Pgha(c) => {
                c.run(Intent::Primary, async move |conn| {
                    let st = conn.prepare_cached(READ).await?;
                    Ok(conn.query(&st, &[&key]).await?.len())
                })
                .await?;
            }
            Self::Raw(p) => {
                let conn = p.get().await?;
                let st = conn.prepare_cached(READ).await?;
                conn.query(&st, &[&key]).await?;
            }
        }
        Ok(())
    }
}

/// One client for one round: operations per second and the median latency in microseconds.
async fn run_round(client: &Contender, tasks: usize, length: Duration) -> anyhow::Result<(f64, f64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut set = tokio::task::JoinSet::new();
    let started = Instant::now();
    for t in 0..tasks {
        let (client, stop) = (client.clone(), stop.clone());
        set.spawn(async move {
            let mut latencies = Vec::new();
            let mut key = t as i64;
            while !stop.load(Ordering::Relaxed) {
                key = key % 1000 + 1;
                let at = Instant::now();
                client.read(key).await?;
                latencies.push(at.elapsed().as_secs_f64() * 1e6);
            }
            anyhow::Ok(latencies)
        });
    }
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    while let Some(done) = set.join_next().await {
        latencies.extend(done??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let p50 = latencies.get(latencies.len() / 2).copied().unwrap_or(0.0);
    Ok((latencies.len() as f64 / elapsed, p50))
}

/// One client for exactly `ops` operations shared by `tasks` tasks (for a profiler: the same
/// work whatever the machine's speed).
async fn run_count(client: &Contender, tasks: usize, ops: u64) -> anyhow::Result<()> {
    let left = Arc::new(std::sync::atomic::AtomicU64::new(ops));
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let (client, left) = (client.clone(), left.clone());
        set.spawn(async move {
            let mut key = t as i64;
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                key = key % 1000 + 1;
                client.read(key).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    Ok(())
}

/// The measured operations, on a runtime of their own in this function's thread, so that a
/// profiler can count exactly them (`valgrind --tool=callgrind --collect-atstart=no
/// --toggle-collect=hotpath::measured`): not the set-up, the warm-up, nor pgha's background
/// topology work, which runs on the main runtime (as do the connections' I/O tasks, for both
/// clients).
#[inline(never)]
fn measured(client: &Contender, tasks: usize, ops: u64) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run_count(client, tasks, ops))
}

#[derive(Debug, Serialize)]
struct Round {
    raw_ops_per_s: f64,
    pgha_ops_per_s: f64,
    ratio: f64,
    raw_p50_us: f64,
    pgha_p50_us: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let cluster = match &args.attach {
        Some(dir) => LocalCluster::attach(dir)?,
        None => LocalCluster::builder().members(3).pgbackrest(false).start().await?,
    };
    // Both pools hold as many connections as there are tasks: a pool larger than the load rotates
    // operations over more connections (and backends) than it needs, which costs both sides
    // locality and measures the pool size, not the operation path.
    let client = harness::client_builder(&cluster)
        .pool_max_size(args.pgha_pool_size.unwrap_or(args.tasks))
        .connect()
        .await?;
    client
        .op(Intent::Write)
        .idempotent()
        .run(async |c| {
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS bench_hotpath (id bigint PRIMARY KEY, note text);
                 INSERT INTO bench_hotpath SELECT g, 'note ' || g FROM generate_series(1, 1000) g
                 ON CONFLICT DO NOTHING",
            )
            .await?;
            Ok(())
        })
        .await?;
    let leader = cluster.leader().await?;
    let creds = cluster.credentials();
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(cluster.pg_port(&leader)?)
        .user(&creds.app.username)
        .password(creds.app.password.expose())
        .dbname(cluster.database());
    let contenders = [
        Contender::Raw(PoolDriver::pool(config, args.tasks)?),
        Contender::Pgha(client.clone()),
    ];
    if let (Some(only), Some(ops)) = (args.only, args.ops) {
        let contender = &contenders[match only {
            Only::Raw => 0,
            Only::Pgha => 1,
        }];
        run_count(contender, args.tasks, 1000).await?;
        let at = Instant::now();
        let (contender, tasks) = (contender.clone(), args.tasks);
        tokio::task::spawn_blocking(move || measured(&contender, tasks, ops)).await??;
        println!("{only:?}: {ops} operations in {:.2} s", at.elapsed().as_secs_f64());
        client.shutdown().await;
        return Ok(());
    }
    // Warm up both: connections, prepared statements, caches.
    for c in &contenders {
        run_round(c, args.tasks, Duration::from_secs(1)).await?;
    }
    let mut rounds = Vec::new();
    for r in 0..args.rounds {
        let mut results = [(0.0, 0.0); 2];
        let order: [usize; 2] = if r % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            results[i] = run_round(&contenders[i], args.tasks, args.round).await?;
        }
        let ((raw, raw_p50), (pgha, pgha_p50)) = (results[0], results[1]);
        rounds.push(Round {
            raw_ops_per_s: raw,
            pgha_ops_per_s: pgha,
            ratio: pgha / raw,
            raw_p50_us: raw_p50,
            pgha_p50_us: pgha_p50,
        });
    }
    let ratio = median(rounds.iter().map(|r| r.ratio).collect());
    let raw_p50 = median(rounds.iter().map(|r| r.raw_p50_us).collect());
    let pgha_p50 = median(rounds.iter().map(|r| r.pgha_p50_us).collect());
    if args.json {
        let doc = serde_json::json!({
            "median_ratio": ratio, "median_raw_p50_us": raw_p50, "median_pgha_p50_us": pgha_p50, "rounds": rounds,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "\n{:>5} {:>10} {:>10} {:>7} {:>9} {:>9}",
            "round", "raw op/s", "pgha op/s", "ratio", "raw p50", "pgha p50"
        );
        for (i, r) in rounds.iter().enumerate() {
            println!(
                "{:>5} {:>10.0} {:>10.0} {:>7.3} {:>7.0}µs {:>7.0}µs",
                i + 1,
                r.raw_ops_per_s,
                r.pgha_ops_per_s,
                r.ratio,
                r.raw_p50_us,
                r.pgha_p50_us
            );
        }
        println!("median ratio {ratio:.3}; median p50 {raw_p50:.0} µs raw, {pgha_p50:.0} µs pgha-client");
    }
    client.shutdown().await;
    if args.attach.is_none() {
        cluster.shutdown();
    }
    Ok(())
}
