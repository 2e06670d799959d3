//! The fleet harness: what idle pgha-client instances cost a Patroni cluster. Each instance is
//! its own `Client` (its own topology task, discovery and pools), all in this process, against
//! one local 3-member cluster, connected one after the other and then left alone. For each
//! discovery mode (Patroni REST polling, etcd watch) and fleet size: the cluster's CPU (etcd,
//! Patroni and PostgreSQL with every backend), client backends per member, topology refreshes
//! and Patroni requests per second (counted by the clients), etcd watch streams, this process's
//! memory per instance, and how long the fleet took to start. With `--writes-every`, the
//! instances are in use instead: each runs one write that often (a fleet of services that only
//! write). See BENCHMARKS.md ("Fleets").
//!
//! ```text
//! cargo bench --bench fleet                                  # rest and etcd, 0/10/100/1000 instances
//! cargo bench --bench fleet -- --discovery etcd --instances 10,100 --window 30s --json
//! cargo bench --bench fleet -- --instances 100 --writes-every 1s --idle-timeout 5s
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use pgha::client::{Client, Intent};
use pgha::harness;
use pgha::testkit::LocalCluster;
use serde::Serialize;

#[derive(Debug, Parser)]
#[command(about = "What idle pgha-client instances cost a Patroni cluster")]
struct Args {
    /// Fleet sizes to measure, in order (0 is the cluster alone).
    #[arg(long, value_delimiter = ',', default_value = "0,10,100,1000")]
    instances: Vec<usize>,
    /// Discovery modes to measure, each with every fleet size.
    #[arg(long, value_delimiter = ',', default_value = "rest,etcd")]
    discovery: Vec<harness::Discovery>,
    /// How long to measure each fleet once it has settled.
    #[arg(long, default_value = "20s", value_parser = pgha::client::parse_duration)]
    window: Duration,
    /// Instead of idling, every instance runs one write (`Intent::Write`) this often: a fleet of
    /// services that only write, in use.
    #[arg(long, value_parser = pgha::client::parse_duration)]
    writes_every: Option<Duration>,
    /// The instances' `idle_timeout` (default: pgha-client's).
    #[arg(long, value_parser = pgha::client::parse_duration)]
    idle_timeout: Option<Duration>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Accepted for `cargo bench`'s own flag.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One fleet size, measured.
#[derive(Debug, Serialize)]
struct Row {
    discovery: harness::Discovery,
    instances: usize,
    /// Seconds to connect every instance, one after the other.
    start_s: f64,
    /// Cores the cluster's processes (and their children) used while the fleet idled.
    cluster_cores: f64,
    /// Client backends (`pg_stat_activity`) on each member, the measuring session excluded.
    backends_per_member: Vec<(String, i64)>,
    /// Topology refreshes per second, all instances together.
    refreshes_per_s: f64,
    /// Patroni REST requests per second, as the clients counted them.
    patroni_requests_per_s: f64,
    /// Watch streams open on the etcd cluster (`etcd_debugging_mvcc_watch_stream_total`).
    etcd_watch_streams: u64,
    /// Resident memory of this process per instance, in KiB (0 for the empty fleet).
    client_kib_per_instance: f64,
    /// Instances that found no primary within 60 s of starting.
    not_ready: usize,
    /// With `--writes-every`: writes that returned an error.
    failed_writes: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let cluster = LocalCluster::builder().members(3).pgbackrest(false).start().await?;
    cluster.wait_ready(Duration::from_secs(90)).await?;
    let mut rows = Vec::new();
    for &discovery in &args.discovery {
        for &n in &args.instances {
            rows.push(measure(&cluster, discovery, n, &args).await?);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "\n{:>9} {:>9} {:>8} {:>13} {:>20} {:>12} {:>14} {:>13} {:>12} {:>9} {:>13}",
            "discovery",
            "instances",
            "start s",
            "cluster cores",
            "backends per member",
            "refreshes/s",
            "Patroni req/s",
            "etcd streams",
            "KiB/instance",
            "not ready",
            "failed writes"
        );
        for r in &rows {
            let backends: Vec<String> = r.backends_per_member.iter().map(|(_, n)| n.to_string()).collect();
            println!(
                "{:>9} {:>9} {:>8.1} {:>13.3} {:>20} {:>12.1} {:>14.1} {:>13} {:>12.0} {:>9} {:>13}",
                format!("{:?}", r.discovery).to_lowercase(),
                r.instances,
                r.start_s,
                r.cluster_cores,
                backends.join("/"),
                r.refreshes_per_s,
                r.patroni_requests_per_s,
                r.etcd_watch_streams,
                r.client_kib_per_instance,
                r.not_ready,
                r.failed_writes
            );
        }
    }
    cluster.shutdown();
    Ok(())
}

async fn measure(cluster: &LocalCluster, discovery: harness::Discovery, n: usize, args: &Args) -> anyhow::Result<Row> {
    let window = args.window;
    let rss_before = rss_kib();
    let mut clients = Vec::with_capacity(n);
    let connecting = Instant::now();
    for _ in 0..n {
        let mut builder = harness::client_builder_with(cluster, discovery);
        if let Some(idle) = args.idle_timeout {
            builder = builder.idle_timeout(idle);
        }
        clients.push(builder.connect().await?);
    }
    let start_s = connecting.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut not_ready = 0;
    for client in &clients {
        let left = Duration::from_secs(60).saturating_sub(started.elapsed());
        if client.wait_for_topology(left, |t| t.primary().is_some()).await.is_err() {
            not_ready += 1;
        }
    }
    let mut writers = tokio::task::JoinSet::new();
    let stop = Arc::new(AtomicBool::new(false));
    if let Some(every) = args.writes_every {
        for (i, client) in clients.iter().enumerate() {
            let (client, stop) = (client.clone(), stop.clone());
            // Spread the instances' writes over the interval.
            let offset = every.mul_f64(i as f64 / n as f64);
            writers.spawn(async move {
                tokio::time::sleep(offset).await;
                let mut failed = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let write = client.run(Intent::Write, async |c| Ok(c.execute("SELECT 1", &[]).await?));
                    failed += u64::from(write.await.is_err());
                    tokio::time::sleep(every).await;
                }
                failed
            });
        }
    }
    // Let connection set-up and the first refreshes pass before measuring the idle cost; with
    // writes, also twice idle_timeout (standbys no longer probed, their connections closed).
    let settle = match args.writes_every {
        Some(_) => Duration::from_secs(5) + args.idle_timeout.unwrap_or(Duration::from_secs(30)) * 2,
        None => Duration::from_secs(5),
    };
    tokio::time::sleep(settle).await;
    let counted = |clients: &[Client]| {
        clients
            .iter()
            .map(|c| c.metrics())
            .fold((0, 0), |(r, p), m| (r + m.refreshes, p + m.patroni_requests))
    };
    let (cpu0, (refreshes0, requests0), t0) = (cluster_cpu_ticks(cluster), counted(&clients), Instant::now());
    tokio::time::sleep(window).await;
    let (cpu1, (refreshes1, requests1), elapsed) = (cluster_cpu_ticks(cluster), counted(&clients), t0.elapsed());
    let rss_after = rss_kib();
    let etcd_watch_streams = etcd_watch_streams(cluster).await;

    let mut backends = Vec::new();
    for member in cluster.member_names() {
        let rows = cluster
            .superuser_query(
                &member,
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            )
            .await?;
        backends.push((member, rows.first().map_or(0, |r| r.get::<_, i64>(0))));
    }
    stop.store(true, Ordering::Relaxed);
    let mut failed_writes = 0;
    while let Some(failed) = writers.join_next().await {
        failed_writes += failed?;
    }
    for client in clients {
        client.shutdown().await;
    }

    let secs = elapsed.as_secs_f64();
    Ok(Row {
        discovery,
        instances: n,
        start_s,
        cluster_cores: (cpu1.saturating_sub(cpu0)) as f64 / CLOCK_TICKS_PER_SECOND / secs,
        backends_per_member: backends,
        refreshes_per_s: (refreshes1 - refreshes0) as f64 / secs,
        patroni_requests_per_s: (requests1 - requests0) as f64 / secs,
        etcd_watch_streams,
        client_kib_per_instance: if n == 0 {
            0.0
        } else {
            rss_after.saturating_sub(rss_before) as f64 / n as f64
        },
        not_ready,
        failed_writes,
    })
}

/// Watch streams open on every etcd member together, from etcd's own metrics.
async fn etcd_watch_streams(cluster: &LocalCluster) -> u64 {
    let http = reqwest::Client::new();
    let mut total = 0;
    for url in cluster.etcd_urls() {
        let Ok(response) = http.get(format!("{url}/metrics")).send().await else {
            continue;
        };
        let Ok(text) = response.text().await else { continue };
        total += text
            .lines()
            .filter_map(|l| l.strip_prefix("etcd_debugging_mvcc_watch_stream_total "))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .sum::<u64>();
    }
    total
}

/// CPU time (user + system, in clock ticks) of the cluster's processes and all their
/// descendants (PostgreSQL backends, Patroni's helpers) that are running now.
fn cluster_cpu_ticks(cluster: &LocalCluster) -> u64 {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let mut ticks: HashMap<i32, u64> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name (which may contain spaces), from field 3 on.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        children.entry(field(4) as i32).or_default().push(pid);
        ticks.insert(pid, field(14) + field(15));
    }
    let mut stack: Vec<i32> = cluster.processes().iter().map(|p| p.pid).collect();
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    while let Some(pid) = stack.pop() {
        if seen.insert(pid) {
            total += ticks.get(&pid).copied().unwrap_or(0);
            stack.extend(children.get(&pid).into_iter().flatten());
        }
    }
    total
}

/// `/proc/<pid>/stat` counts CPU time in USER_HZ ticks, 100 on every Linux architecture this runs on.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}
