//! Failover across a fleet: how long after a new primary becomes writable every one of N
//! pgha-client instances writes again. Each instance is its own `Client` (its own topology task,
//! discovery and pools), all in this process, against one local 3-member cluster, and writes at
//! a fixed rate: one task per instance inserts a row `(instance, seq)` every 1/rate s through
//! `Intent::Write`, declared idempotent (`ON CONFLICT DO NOTHING`), recording when each write
//! started, when it was answered, and the member that acknowledged it (or the error).
//!
//! For each discovery mode (Patroni REST polling, etcd watch), fault (kill -9 of the leader's
//! node, switchover) and round: a new fleet starts and writes for 5 s, the harness's
//! `PromotionProbe` watches every member, the fault is injected, and the fleet writes until every
//! instance has had a write acknowledged by the new primary (at most 60 s), then 3 s more; the
//! fleet is shut down and the cluster brought back to full strength before the next round.
//!
//! Per instance, with `fault` the moment the injector was called and `writable` the moment the
//! probe first saw the new primary out of recovery (polled every 20 ms):
//! - *gap*: from the instance's last acknowledged write before its first one on the new primary
//!   to that first one (the time it could not write; on a switchover the old primary keeps
//!   acknowledging writes after the call, until Patroni demotes it);
//! - *gap − promotion*, with *promotion* = `writable − fault`, as in the failover bench (see
//!   BENCHMARKS.md, "Failover, side by side"). It equals *resume − writable* plus how long before
//!   the fault the instance's last write was acknowledged, which at 10 writes/s adds 0–0.1 s on a
//!   kill -9 and is negative on a switchover;
//! - *resume − writable*: from `writable` to the instance's first write acknowledged by the new
//!   primary, free of the write schedule (±20 ms, the probe's period).
//!
//! Reported per discovery mode and fault, instances of every round together: p50 / p99 / max of
//! both, instances that never wrote on the new primary, the promotion time, writes that returned
//! an error and the clients' own `errors_surfaced`, writes acknowledged, and acknowledged writes
//! missing on the new primary afterwards (asynchronous replication can lose some on kill -9).
//! See BENCHMARKS.md ("Failover across a fleet").
//!
//! ```text
//! cargo bench --bench fleet_failover                        # 200 instances, rest and etcd, kill9 and switchover
//! cargo bench --bench fleet_failover -- --instances 100 --rate 10 --discovery etcd --faults kill9 --rounds 3 --json
//! ```

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use pgha::client::{Client, Intent};
use pgha::harness::{self, Discovery, Fault, Injector, PromotionProbe};
use pgha::testkit::LocalCluster;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

#[derive(Debug, Parser)]
#[command(about = "Failover across a fleet of pgha-client instances writing at a fixed rate")]
struct Args {
    /// Instances in the fleet, each its own `Client`.
    #[arg(long, default_value_t = 200)]
    instances: usize,
    /// Writes per second per instance.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Discovery modes to measure, each through every fault.
    #[arg(long, value_delimiter = ',', default_value = "rest,etcd")]
    discovery: Vec<Discovery>,
    /// Faults to inject: kill9 (kill -9 of the leader's Patroni and PostgreSQL), switchover.
    #[arg(long, value_delimiter = ',', default_value = "kill9,switchover", value_parser = parse_fault)]
    faults: Vec<Fault>,
    /// Rounds per fault and discovery mode, each with a new fleet.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Accepted for `cargo bench`'s own flag.
    #[arg(long, hide = true)]
    bench: bool,
}

fn parse_fault(s: &str) -> Result<Fault, String> {
    match s {
        "kill9" => Ok(Fault::KillLeader),
        "switchover" => Ok(Fault::Switchover),
        other => Err(format!("unknown fault {other:?} (kill9 or switchover)")),
    }
}

/// The table every instance writes to: one row per write.
const TABLE: &str = "pgha_fleet_writes";
/// One write (the table is `TABLE`).
/// Idempotent (the row's key is the instance and its sequence number), as the failover bench's
/// writes are: a write interrupted by the failover is replayed instead of reported as
/// outcome-unknown.
const INSERT: &str = "INSERT INTO pgha_fleet_writes (instance, seq) VALUES ($1, $2) ON CONFLICT DO NOTHING";
/// How long the fleet writes before the fault.
const STEADY: Duration = Duration::from_secs(5);
/// How long after the fault every instance has to write on the new primary.
const RESUME_LIMIT: Duration = Duration::from_secs(60);
/// How long the fleet keeps writing once every instance has resumed.
const AFTER: Duration = Duration::from_secs(3);
/// How long a new fleet has to see a primary.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// How long writes still running at the stop may take before they are abandoned.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Error messages kept per round for the report.
const ERROR_SAMPLES: usize = 5;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.instances == 0 || args.rounds == 0 {
        bail!("--instances and --rounds must be at least 1");
    }
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be a positive number of writes per second");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    // Each instance holds a write connection on the primary and, while active, a probe
    // connection on every member: room for two per instance everywhere, and never below the
    // testkit's default of 200.
    let max_connections = (args.instances * 2 + 50).max(200);
    let cluster = LocalCluster::builder()
        .members(3)
        .pgbackrest(false)
        .pg_parameter("max_connections", max_connections.to_string())
        .start()
        .await?;
    let result = measure_all(&cluster, &args, max_connections).await;
    cluster.shutdown();
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

/// Every round of every discovery mode and fault, then the rows that pool them.
async fn measure_all(cluster: &LocalCluster, args: &Args, max_connections: usize) -> anyhow::Result<Report> {
    cluster.wait_ready(Duration::from_secs(90)).await?;
    // The bench's own client: the table, the probe's targets, the rows that survived.
    let admin = harness::client_builder(cluster).connect().await?;
    let measured = measure_rounds(cluster, &admin, args).await;
    admin.shutdown().await;
    let (rounds, failed_rounds) = measured?;

    let mut rows = Vec::new();
    for &discovery in &args.discovery {
        for &fault in &args.faults {
            let mine: Vec<&Round> = rounds
                .iter()
                .filter(|r| r.discovery == discovery && r.fault == fault.name())
                .collect();
            rows.push(Row::pool(discovery, fault, args.instances, &mine));
        }
    }
    let t = cluster.timing();
    Ok(Report {
        setup: format!(
            "local 3-member cluster, Patroni {} (ttl {} s, loop_wait {} s, retry_timeout {} s), 3-member etcd, \
             max_connections {max_connections}; {} instances writing {} rows/s each",
            cluster.patroni_version(),
            t.ttl,
            t.loop_wait,
            t.retry_timeout,
            args.instances,
            args.rate
        ),
        rows,
        rounds,
        failed_rounds,
    })
}

/// Runs every round; a round that fails is recorded (and the next one starts from a settled
/// cluster) rather than ending the run.
async fn measure_rounds(
    cluster: &LocalCluster,
    admin: &Client,
    args: &Args,
) -> anyhow::Result<(Vec<Round>, Vec<String>)> {
    admin
        .run(Intent::Write, async |c| {
            Ok(c.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (instance int NOT NULL, seq bigint NOT NULL, \
                 PRIMARY KEY (instance, seq))"
            ))
            .await?)
        })
        .await?;
    let period = Duration::from_secs_f64(1.0 / args.rate);
    let (mut rounds, mut failed) = (Vec::new(), Vec::new());
    for &discovery in &args.discovery {
        for &fault in &args.faults {
            for round in 1..=args.rounds {
                let what = format!(
                    "{} {} round {round}/{}",
                    discovery_name(discovery),
                    fault.name(),
                    args.rounds
                );
                if !args.json {
                    eprintln!("fleet-failover: {what} …");
                }
                match run_round(cluster, admin, discovery, fault, args.instances, period).await {
                    Ok(r) => rounds.push(Round { round, ..r }),
                    Err(e) => {
                        eprintln!("fleet-failover: {what} failed: {e:#}");
                        failed.push(format!("{what}: {e:#}"));
                    }
                }
            }
        }
    }
    Ok((rounds, failed))
}

/// One round: a new fleet writes through `fault`; returns what every instance saw.
async fn run_round(
    cluster: &LocalCluster,
    admin: &Client,
    discovery: Discovery,
    fault: Fault,
    n: usize,
    period: Duration,
) -> anyhow::Result<Round> {
    harness::settle(cluster).await?;
    let leader = cluster.leader().await?;
    admin
        .run(Intent::Write, async |c| {
            Ok(c.batch_execute(&format!("TRUNCATE {TABLE}")).await?)
        })
        .await?;
    let creds = cluster.credentials().app;
    let targets = harness::probe_targets(admin, &creds.username, creds.password.expose(), &cluster.database());

    let mut fleet = Fleet::connect(cluster, discovery, n).await?;
    fleet.start_writing(period)?;
    let probe = PromotionProbe::start(targets);
    tokio::time::sleep(STEADY).await;

    probe.reset();
    let fault_at = Instant::now();
    let injected = cluster.inject(fault, &leader).await;
    if injected.is_ok() {
        // Until every instance has written on the new primary (which the probe names).
        let give_up = fault_at + RESUME_LIMIT;
        loop {
            let new_primary = probe.new_primary_since(Some(&leader));
            if new_primary.is_some_and(|(name, _)| fleet.resumed_on(&name, fault_at) == n) || Instant::now() >= give_up
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(AFTER).await;
    }
    let logs = fleet.stop_writing().await;
    let errors_surfaced = fleet.shutdown().await;
    let promoted = probe.new_primary_since(Some(&leader));
    probe.stop().await;
    let lost = match &injected {
        Ok(()) => acked_lost(admin, &logs).await,
        Err(_) => Ok(0),
    };
    // Restarts a killed node and waits for a leader and streaming replicas; tried even when the
    // injection failed part-way.
    let recovered = cluster.recover(fault, &leader).await;
    injected.with_context(|| format!("injecting {}", fault.name()))?;
    let acked_lost = lost.context("counting acknowledged writes lost")?;
    recovered.context("bringing the cluster back to full strength")?;
    let failover = Failover {
        fault,
        primary_before: leader,
        fault_at,
        promoted,
    };
    Ok(Round::measure(discovery, &failover, &logs, errors_surfaced, acked_lost))
}

/// What happened to the cluster in a round.
#[derive(Debug)]
struct Failover {
    fault: Fault,
    /// The leader the fault was aimed at.
    primary_before: String,
    /// When the injector was called.
    fault_at: Instant,
    /// The member the probe first saw writable after the fault, and when.
    promoted: Option<(String, Instant)>,
}

/// One write of one instance.
#[derive(Debug)]
struct WriteRecord {
    /// When the write was started.
    started: Instant,
    /// When it returned, acknowledged or not.
    answered: Instant,
    /// The row written.
    seq: i64,
    /// The member that acknowledged it, or the error returned.
    outcome: Result<String, String>,
}

impl WriteRecord {
    fn acknowledged_by(&self, member: &str) -> bool {
        self.outcome.as_deref() == Ok(member)
    }
}

/// One instance's writes, in order (its writes run one after the other).
type WriteLog = Arc<Mutex<Vec<WriteRecord>>>;

fn lock(log: &Mutex<Vec<WriteRecord>>) -> MutexGuard<'_, Vec<WriteRecord>> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

/// N clients and their writers.
#[derive(Debug)]
struct Fleet {
    clients: Vec<Client>,
    logs: Vec<WriteLog>,
    stop: Arc<AtomicBool>,
    writers: JoinSet<()>,
}

impl Fleet {
    /// Connects `n` clients one after the other and waits until each has a primary; on failure
    /// the clients already connected are shut down.
    async fn connect(cluster: &LocalCluster, discovery: Discovery, n: usize) -> anyhow::Result<Self> {
        let mut clients = Vec::with_capacity(n);
        let connected = async {
            for _ in 0..n {
                clients.push(harness::client_builder_with(cluster, discovery).connect().await?);
            }
            let started = Instant::now();
            for (i, client) in clients.iter().enumerate() {
                let left = READY_LIMIT.saturating_sub(started.elapsed());
                client
                    .wait_for_topology(left, |t| t.primary().is_some())
                    .await
                    .with_context(|| format!("instance {i} found no primary"))?;
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = connected {
            for client in &clients {
                client.shutdown().await;
            }
            return Err(e);
        }
        Ok(Self {
            logs: clients.iter().map(|_| WriteLog::default()).collect(),
            clients,
            stop: Arc::new(AtomicBool::new(false)),
            writers: JoinSet::new(),
        })
    }

    /// Starts one writer per instance, every `period`, their first writes spread over one period.
    /// Instance ids are the fleet's indexes.
    fn start_writing(&mut self, period: Duration) -> anyhow::Result<()> {
        let start = tokio::time::Instant::now();
        let n = self.clients.len();
        for (i, (client, log)) in self.clients.iter().zip(&self.logs).enumerate() {
            let instance = i32::try_from(i)?;
            let first = start + period.mul_f64(i as f64 / n as f64);
            let (client, log, stop) = (client.clone(), log.clone(), self.stop.clone());
            self.writers
                .spawn(write_at_rate(client, instance, first, period, stop, log));
        }
        Ok(())
    }

    /// Instances whose writes since `since` include one acknowledged by `member`.
    fn resumed_on(&self, member: &str, since: Instant) -> usize {
        self.logs
            .iter()
            .filter(|log| {
                lock(log)
                    .iter()
                    .rev()
                    .take_while(|w| w.answered >= since)
                    .any(|w| w.acknowledged_by(member))
            })
            .count()
    }

    /// Stops the writers (those still waiting for an answer `STOP_GRACE` later are abandoned)
    /// and returns every instance's writes.
    async fn stop_writing(&mut self) -> Vec<Vec<WriteRecord>> {
        self.stop.store(true, Ordering::Relaxed);
        let drained =
            tokio::time::timeout(STOP_GRACE, async { while self.writers.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            eprintln!(
                "fleet-failover: {} writers still waiting {STOP_GRACE:?} after the stop: abandoned",
                self.writers.len()
            );
            self.writers.abort_all();
            while self.writers.join_next().await.is_some() {}
        }
        self.logs.iter().map(|log| std::mem::take(&mut *lock(log))).collect()
    }

    /// Shuts every client down; returns their `errors_surfaced`, summed.
    async fn shutdown(self) -> u64 {
        let errors = self.clients.iter().map(|c| c.metrics().errors_surfaced).sum();
        for client in &self.clients {
            client.shutdown().await;
        }
        errors
    }
}

/// One instance's writer: inserts `(instance, seq)` every `period` from `first` until `stop`. A
/// write slower than the period delays the next one (no burst to catch up).
async fn write_at_rate(
    client: Client,
    instance: i32,
    first: tokio::time::Instant,
    period: Duration,
    stop: Arc<AtomicBool>,
    log: WriteLog,
) {
    let mut ticks = tokio::time::interval_at(first, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seq: i64 = 0;
    loop {
        ticks.tick().await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        seq += 1;
        let started = Instant::now();
        // `client.op(Intent::Write).idempotent().run(…)`, also naming the member that
        // acknowledged the write.
        let result = client
            .op(Intent::Write)
            .idempotent()
            .run_with_member(async move |c| Ok(c.execute(INSERT, &[&instance, &seq]).await?))
            .await;
        lock(&log).push(WriteRecord {
            started,
            answered: Instant::now(),
            seq,
            outcome: result.map(|(_, member)| member).map_err(|e| e.to_string()),
        });
    }
}

/// Acknowledged writes whose row is missing from the table on the primary now.
async fn acked_lost(admin: &Client, logs: &[Vec<WriteRecord>]) -> anyhow::Result<u64> {
    let found: HashSet<(i32, i64)> = admin
        .run(Intent::Primary, async |c| {
            Ok(c.query(&format!("SELECT instance, seq FROM {TABLE}"), &[])
                .await?
                .iter()
                .map(|r| (r.get::<_, i32>(0), r.get::<_, i64>(1)))
                .collect())
        })
        .await?;
    let mut lost = 0;
    for (i, log) in logs.iter().enumerate() {
        let instance = i32::try_from(i)?;
        lost += log
            .iter()
            .filter(|w| w.outcome.is_ok() && !found.contains(&(instance, w.seq)))
            .count() as u64;
    }
    Ok(lost)
}

/// Seconds from `from` to `to`, negative when `to` came first.
fn seconds(from: Instant, to: Instant) -> f64 {
    match to.checked_duration_since(from) {
        Some(d) => d.as_secs_f64(),
        None => -from.duration_since(to).as_secs_f64(),
    }
}

/// How one instance came through the fault: (last acknowledgement before its first one by the
/// new primary, that first one); `None` if the new primary never acknowledged its writes (or
/// nothing did before).
fn resumption(log: &[WriteRecord], new_primary: &str, fault_at: Instant) -> Option<(Instant, Instant)> {
    let first_new = log
        .iter()
        .position(|w| w.answered >= fault_at && w.acknowledged_by(new_primary))?;
    let last_before = log[..first_new].iter().rev().find(|w| w.outcome.is_ok())?;
    Some((last_before.answered, log[first_new].answered))
}

/// p50, p99 and max of a set of values, in seconds.
#[derive(Debug, Clone, Copy, Serialize)]
struct Spread {
    p50: f64,
    p99: f64,
    max: f64,
}

impl Spread {
    /// `None` for no values.
    fn of(values: Vec<f64>) -> Option<Self> {
        let v = harness::sorted(values);
        let max = *v.last()?;
        Some(Self {
            p50: harness::percentile(&v, 50.0),
            p99: harness::percentile(&v, 99.0),
            max,
        })
    }
}

/// One round, measured.
#[derive(Debug, Serialize)]
struct Round {
    discovery: Discovery,
    fault: &'static str,
    round: usize,
    primary_before: String,
    /// The member the probe first saw writable after the fault.
    primary_after: Option<String>,
    /// Seconds from the fault to `primary_after` answering `pg_is_in_recovery() = false`.
    promotion_s: Option<f64>,
    instances: usize,
    /// Instances that had a write acknowledged by `primary_after` within 60 s of the fault.
    resumed: usize,
    gap_minus_promotion_s: Option<Spread>,
    resume_after_writable_s: Option<Spread>,
    /// Writes that returned an error, all instances together.
    write_errors: u64,
    /// The clients' own `Metrics::errors_surfaced`, summed.
    errors_surfaced: u64,
    writes_acked: u64,
    /// Acknowledged writes missing on the primary after the round.
    acked_lost: u64,
    /// Per instance, its longest write (start to answer): how long pgha held a write across the
    /// failover before it was acknowledged or failed.
    slowest_write_s: Option<Spread>,
    /// The first few distinct errors.
    error_samples: Vec<String>,
    /// Per resumed instance: gap − promotion, in seconds (pooled into the rows).
    #[serde(skip)]
    gap_minus_promotion: Vec<f64>,
    /// Per resumed instance: resume − writable, in seconds (pooled into the rows).
    #[serde(skip)]
    resume_after_writable: Vec<f64>,
    /// Per instance: its longest write, in seconds (pooled into the rows).
    #[serde(skip)]
    slowest_write: Vec<f64>,
}

impl Round {
    /// The round's numbers from every instance's writes (`logs`, by instance) through `failover`.
    fn measure(
        discovery: Discovery,
        failover: &Failover,
        logs: &[Vec<WriteRecord>],
        errors_surfaced: u64,
        acked_lost: u64,
    ) -> Self {
        let fault_at = failover.fault_at;
        let mut gap_minus_promotion = Vec::new();
        let mut resume_after_writable = Vec::new();
        if let Some((new_primary, writable)) = &failover.promoted {
            let promotion = seconds(fault_at, *writable);
            for log in logs {
                if let Some((last_before, first_new)) = resumption(log, new_primary, fault_at) {
                    gap_minus_promotion.push(seconds(last_before, first_new) - promotion);
                    resume_after_writable.push(seconds(*writable, first_new));
                }
            }
        }
        let slowest_write: Vec<f64> = logs
            .iter()
            .filter_map(|log| {
                log.iter()
                    .map(|w| seconds(w.started, w.answered))
                    .max_by(f64::total_cmp)
            })
            .collect();
        let writes = logs.iter().flatten();
        let mut error_samples: Vec<String> = Vec::new();
        for e in writes.clone().filter_map(|w| w.outcome.as_ref().err()) {
            if error_samples.len() < ERROR_SAMPLES && !error_samples.contains(e) {
                error_samples.push(e.clone());
            }
        }
        Self {
            discovery,
            fault: failover.fault.name(),
            round: 0, // numbered by `measure_rounds`
            primary_before: failover.primary_before.clone(),
            promotion_s: failover.promoted.as_ref().map(|(_, t)| seconds(fault_at, *t)),
            primary_after: failover.promoted.as_ref().map(|(name, _)| name.clone()),
            instances: logs.len(),
            resumed: gap_minus_promotion.len(),
            gap_minus_promotion_s: Spread::of(gap_minus_promotion.clone()),
            resume_after_writable_s: Spread::of(resume_after_writable.clone()),
            write_errors: writes.clone().filter(|w| w.outcome.is_err()).count() as u64,
            errors_surfaced,
            writes_acked: writes.filter(|w| w.outcome.is_ok()).count() as u64,
            acked_lost,
            slowest_write_s: Spread::of(slowest_write.clone()),
            error_samples,
            gap_minus_promotion,
            resume_after_writable,
            slowest_write,
        }
    }
}

/// One discovery mode and fault: its rounds, instances of every round pooled.
#[derive(Debug, Serialize)]
struct Row {
    discovery: Discovery,
    fault: &'static str,
    /// Rounds completed (failed ones are listed in `failed_rounds`).
    rounds: usize,
    instances: usize,
    /// Instance-rounds that wrote on the new primary within 60 s of the fault, of
    /// `rounds × instances`.
    resumed: usize,
    /// Promotion time over the rounds, in seconds.
    promotion_s: Option<Spread>,
    /// Gap − promotion over every resumed instance of every round, in seconds.
    gap_minus_promotion_s: Option<Spread>,
    /// Resume − writable over every resumed instance of every round, in seconds.
    resume_after_writable_s: Option<Spread>,
    write_errors: u64,
    errors_surfaced: u64,
    writes_acked: u64,
    acked_lost: u64,
    /// Each instance's longest write, over every instance of every round, in seconds.
    slowest_write_s: Option<Spread>,
}

impl Row {
    fn pool(discovery: Discovery, fault: Fault, instances: usize, rounds: &[&Round]) -> Self {
        let all = |f: fn(&Round) -> &Vec<f64>| rounds.iter().flat_map(|r| f(r).iter().copied()).collect();
        let sum = |f: fn(&Round) -> u64| rounds.iter().map(|r| f(r)).sum();
        Self {
            discovery,
            fault: fault.name(),
            rounds: rounds.len(),
            instances,
            resumed: rounds.iter().map(|r| r.resumed).sum(),
            promotion_s: Spread::of(rounds.iter().filter_map(|r| r.promotion_s).collect()),
            gap_minus_promotion_s: Spread::of(all(|r| &r.gap_minus_promotion)),
            resume_after_writable_s: Spread::of(all(|r| &r.resume_after_writable)),
            write_errors: sum(|r| r.write_errors),
            errors_surfaced: sum(|r| r.errors_surfaced),
            writes_acked: sum(|r| r.writes_acked),
            acked_lost: sum(|r| r.acked_lost),
            slowest_write_s: Spread::of(all(|r| &r.slowest_write)),
        }
    }
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Report {
    setup: String,
    rows: Vec<Row>,
    rounds: Vec<Round>,
    /// Rounds that could not complete, and why.
    failed_rounds: Vec<String>,
}

fn discovery_name(d: Discovery) -> &'static str {
    match d {
        Discovery::Rest => "rest",
        Discovery::Etcd => "etcd",
    }
}

fn print_report(report: &Report) {
    let spread = |s: Option<Spread>| match s {
        Some(s) => format!("{:.2} / {:.2} / {:.2}", s.p50, s.p99, s.max),
        None => "-".to_owned(),
    };
    println!("\n{}\n", report.setup);
    println!(
        "{:>9} {:<14} {:>6} {:>9} {:>9} {:>11} {:>26} {:>30} {:>12} {:>15} {:>7} {:>5}",
        "discovery",
        "fault",
        "rounds",
        "instances",
        "resumed",
        "promotion s",
        "gap-promo p50/p99/max s",
        "resume-writable p50/p99/max s",
        "write errors",
        "errors surfaced",
        "acked",
        "lost"
    );
    for r in &report.rows {
        println!(
            "{:>9} {:<14} {:>6} {:>9} {:>9} {:>11} {:>26} {:>30} {:>12} {:>15} {:>7} {:>5}",
            discovery_name(r.discovery),
            r.fault,
            r.rounds,
            r.instances,
            format!("{}/{}", r.resumed, r.rounds * r.instances),
            r.promotion_s
                .map_or_else(|| "-".to_owned(), |p| format!("{:.2}", p.p50)),
            spread(r.gap_minus_promotion_s),
            spread(r.resume_after_writable_s),
            r.write_errors,
            r.errors_surfaced,
            r.writes_acked,
            r.acked_lost
        );
    }
    for f in &report.failed_rounds {
        println!("failed round: {f}");
    }
}
