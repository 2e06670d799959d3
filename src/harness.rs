//! Failover measurement harness, shared by the failover demo, the benchmarks and the end-to-end
//! tests: a pgvector workload through pgha-client (inserts, k-NN searches on standbys, a
//! heartbeat that proves every read's staleness), an independent promotion probe, and the
//! report of what the application felt during one fault.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgha_client::vector::{Distance, IndexKind, VectorTable};
use pgha_client::{Client, Intent, LagBound};
use pgvector::Vector;
use serde::Serialize;
use tokio::task::JoinSet;

/// Dimension of the demo embeddings.
pub const DIMS: usize = 16;
const TABLE: &str = "pgha_demo_items";

/// What one fault round measured (`failover_demo --json` prints one per round).
#[derive(Debug, Clone, Serialize)]
pub struct RoundReport {
    /// The fault injected (`kill-9-leader`, `switchover`, `freeze-leader`, `none`).
    pub fault: String,
    /// Seconds from the fault to the first moment a new primary accepted writes, measured by a
    /// probe independent of pgha (`None` if no new primary appeared).
    pub promotion_s: Option<f64>,
    /// Longest time without an acknowledged write, in seconds.
    pub write_gap_s: f64,
    /// `write_gap_s - promotion_s`: what the client added on top of Patroni's promotion.
    pub gap_minus_promotion_s: Option<f64>,
    /// Errors returned to the application by pgha-client.
    pub errors_surfaced: u64,
    /// k-NN searches served by standbys.
    pub reads_standby: u64,
    /// k-NN searches served by the primary.
    pub reads_primary: u64,
    /// Reads that returned data staler than their bound (checked against the heartbeat).
    pub stale_reads: u64,
    /// Writes acknowledged.
    pub writes_acked: u64,
    /// Acknowledged writes missing on the primary after the fault.
    pub acked_writes_lost: u64,
    /// The first few errors, for the log.
    pub error_samples: Vec<String>,
    /// Old and new primary.
    pub primary_before: Option<String>,
    /// New primary.
    pub primary_after: Option<String>,
}

/// Workload settings.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Concurrent writers (closed loop).
    pub writers: usize,
    /// Concurrent readers (closed loop).
    pub readers: usize,
    /// Staleness bound of the reads.
    pub read_bound: Duration,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            writers: 2,
            readers: 2,
            read_bound: Duration::from_secs(2),
        }
    }
}

/// Creates the demo table (with an HNSW index) and the heartbeat row, and waits until the
/// standbys have replayed them (a read bounded at 2 s may otherwise legitimately not see a table
/// created a moment ago).
pub async fn prepare(client: &Client) -> pgha_client::Result<()> {
    VectorTable::new(TABLE, DIMS)?
        .distance(Distance::L2)
        .ensure(client, IndexKind::hnsw())
        .await?;
    let ((), token) = client
        .op(Intent::Write)
        .idempotent()
        .run_with_token(async |c| {
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS pgha_heartbeat (id int PRIMARY KEY, seq bigint NOT NULL);
                 INSERT INTO pgha_heartbeat VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
            )
            .await?;
            Ok(())
        })
        .await?;
    client.wait_for_standbys(token, Duration::from_secs(30)).await
}

/// A deterministic pseudo-random embedding for `id`.
pub fn embedding(id: i64) -> Vector {
    let mut x = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Vector::from(
        (0..DIMS)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 10_000) as f32 / 10_000.0
            })
            .collect::<Vec<f32>>(),
    )
}

#[derive(Debug, Default)]
struct Log {
    acks: Vec<(i64, Instant)>,
    heartbeat: Vec<(i64, Instant)>,
    errors: Vec<String>,
    reads_standby: u64,
    reads_primary: u64,
    stale_reads: u64,
}

/// A running workload; [`stop`](Self::stop) it to get its log.
#[derive(Debug)]
pub struct Workload {
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
}

fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

impl Workload {
    /// Starts writers, readers and the heartbeat. Ids start above any already in the table.
    pub async fn start(client: &Client, config: &WorkloadConfig) -> pgha_client::Result<Self> {
        let first_id: i64 = client
            .run(Intent::Primary, async |c| {
                Ok(
                    c.query_one(&format!("SELECT coalesce(max(id), 0) + 1 FROM {TABLE}"), &[])
                        .await?
                        .get(0),
                )
            })
            .await?;
        let next_id = Arc::new(AtomicI64::new(first_id));
        let log = Arc::new(Mutex::new(Log::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();

        for _ in 0..config.writers {
            let (client, log, stop, next_id) = (client.clone(), log.clone(), stop.clone(), next_id.clone());
            tasks.spawn(async move {
                let sql = format!("INSERT INTO {TABLE} (id, embedding) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING");
                while !stop.load(Ordering::Relaxed) {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    let v = embedding(id);
                    // Owned captures: a `move` async closure that borrows locals cannot be
                    // proven `Send` by today's compiler (see the pgha-client crate docs).
                    let sql = sql.clone();
                    let result = client
                        .op(Intent::Write)
                        .idempotent()
                        .transaction(async move |tx| Ok(tx.execute(&sql, &[&id, &v]).await?))
                        .await;
                    let mut log = lock(&log);
                    match result {
                        Ok(_) => log.acks.push((id, Instant::now())),
                        Err(e) => log.errors.push(format!("write {id}: {e}")),
                    }
                }
            });
        }

        {
            let (client, log, stop) = (client.clone(), log.clone(), stop.clone());
            tasks.spawn(async move {
                let mut seq: i64 = client
                    .run(Intent::Primary, async |c| {
                        Ok(c.query_one("SELECT seq FROM pgha_heartbeat WHERE id = 1", &[])
                            .await?
                            .get(0))
                    })
                    .await
                    .unwrap_or(0);
                lock(&log).heartbeat.push((seq, Instant::now()));
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let result = client
                        .op(Intent::Write)
                        .idempotent()
                        .run(async move |c| {
                            Ok(c.execute("UPDATE pgha_heartbeat SET seq = $1 WHERE id = 1", &[&seq])
                                .await?)
                        })
                        .await;
                    match result {
                        Ok(_) => lock(&log).heartbeat.push((seq, Instant::now())),
                        Err(e) => lock(&log).errors.push(format!("heartbeat {seq}: {e}")),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }

        for reader in 0..config.readers {
            let (client, log, stop) = (client.clone(), log.clone(), stop.clone());
            let bound = config.read_bound;
            tasks.spawn(async move {
                let sql = format!("SELECT id FROM {TABLE} ORDER BY embedding <-> $1 LIMIT 10");
                let mut n = reader as i64;
                while !stop.load(Ordering::Relaxed) {
                    n += 7;
                    let query = embedding(n);
                    let sql = sql.clone();
                    let started = Instant::now();
                    let result = client
                        .op(Intent::Standby)
                        .max_lag(LagBound::time(bound))
                        .transaction(async move |tx| {
                            let row = tx
                                .query_one(
                                    "SELECT pg_is_in_recovery(), (SELECT seq FROM pgha_heartbeat WHERE id = 1)",
                                    &[],
                                )
                                .await?;
                            tx.query(&sql, &[&query]).await?;
                            Ok((row.get::<_, bool>(0), row.get::<_, i64>(1)))
                        })
                        .await;
                    let mut log = lock(&log);
                    match result {
                        Ok((standby, seq)) => {
                            if standby {
                                log.reads_standby += 1;
                            } else {
                                log.reads_primary += 1;
                            }
                            // Stale if a heartbeat acknowledged more than `bound` before the read
                            // started is missing from what it saw.
                            let missing = log.heartbeat.iter().find(|(s, _)| *s == seq + 1);
                            if missing.is_some_and(|(_, acked)| *acked + bound < started) {
                                log.stale_reads += 1;
                            }
                        }
                        Err(e) => log.errors.push(format!("read: {e}")),
                    }
                }
            });
        }
        Ok(Self { log, stop, tasks })
    }

    /// Stops the workload and returns what it saw.
    pub async fn stop(mut self) -> WorkloadLog {
        self.stop.store(true, Ordering::Relaxed);
        while self.tasks.join_next().await.is_some() {}
        let log = std::mem::take(&mut *lock(&self.log));
        WorkloadLog(log)
    }
}

/// What a stopped workload saw.
#[derive(Debug)]
pub struct WorkloadLog(Log);

impl WorkloadLog {
    /// Longest interval between consecutive acknowledged writes.
    pub fn write_gap(&self) -> Duration {
        let mut times: Vec<Instant> = self.0.acks.iter().map(|(_, t)| *t).collect();
        times.sort();
        times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
    }

    /// Ids of acknowledged writes.
    pub fn acked_ids(&self) -> Vec<i64> {
        self.0.acks.iter().map(|(id, _)| *id).collect()
    }

    /// Builds the report; `lost` is the number of acknowledged writes missing afterwards.
    pub fn report(&self, fault: &str, promotion: Option<Duration>, lost: u64) -> RoundReport {
        let gap = self.write_gap().as_secs_f64();
        let promotion_s = promotion.map(|p| p.as_secs_f64());
        RoundReport {
            fault: fault.to_owned(),
            promotion_s,
            write_gap_s: gap,
            gap_minus_promotion_s: promotion_s.map(|p| gap - p),
            errors_surfaced: self.0.errors.len() as u64,
            reads_standby: self.0.reads_standby,
            reads_primary: self.0.reads_primary,
            stale_reads: self.0.stale_reads,
            writes_acked: self.0.acks.len() as u64,
            acked_writes_lost: lost,
            error_samples: self.0.errors.iter().take(5).cloned().collect(),
            primary_before: None,
            primary_after: None,
        }
    }
}

/// Counts acknowledged ids missing on the primary.
pub async fn count_lost(client: &Client, acked: &[i64]) -> pgha_client::Result<u64> {
    let found: i64 = client
        .run(Intent::Primary, async |c| {
            Ok(
                c.query_one(&format!("SELECT count(*) FROM {TABLE} WHERE id = ANY($1)"), &[&acked])
                    .await?
                    .get(0),
            )
        })
        .await?;
    Ok((acked.len() as u64).saturating_sub(u64::try_from(found).unwrap_or(0)))
}

/// Watches every member directly (plain tokio-postgres, independent of pgha-client) and
/// records when each first answered `pg_is_in_recovery() = false`.
#[derive(Debug)]
pub struct PromotionProbe {
    first_writable: Arc<Mutex<BTreeMap<String, Instant>>>,
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
}

impl PromotionProbe {
    /// Starts polling every 20 ms. `members` are `(name, tokio-postgres config)`.
    pub fn start(members: Vec<(String, tokio_postgres::Config)>) -> Self {
        let first_writable = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        for (name, mut config) in members {
            config.connect_timeout(Duration::from_millis(500));
            let (first, stop) = (first_writable.clone(), stop.clone());
            tasks.spawn(async move {
                let mut conn: Option<tokio_postgres::Client> = None;
                while !stop.load(Ordering::Relaxed) {
                    if conn.as_ref().is_none_or(|c| c.is_closed()) {
                        conn = match tokio::time::timeout(
                            Duration::from_millis(500),
                            config.connect(tokio_postgres::NoTls),
                        )
                        .await
                        {
                            Ok(Ok((client, connection))) => {
                                tokio::spawn(connection);
                                Some(client)
                            }
                            _ => None,
                        };
                    }
                    if let Some(c) = &conn {
                        let answer = tokio::time::timeout(
                            Duration::from_millis(500),
                            c.query_one("SELECT pg_is_in_recovery()", &[]),
                        )
                        .await;
                        match answer {
                            Ok(Ok(row)) if !row.get::<_, bool>(0) => {
                                first
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .entry(name.clone())
                                    .or_insert_with(Instant::now);
                            }
                            Ok(Ok(_)) => {}
                            _ => conn = None,
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
        Self {
            first_writable,
            stop,
            tasks,
        }
    }

    /// Clears what was recorded (call right before injecting the fault).
    pub fn reset(&self) {
        self.first_writable.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// When a member other than `old` was first seen writable after the last reset.
    pub fn new_primary_since(&self, old: Option<&str>) -> Option<(String, Instant)> {
        self.first_writable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(name, _)| Some(name.as_str()) != old)
            .min_by_key(|(_, t)| **t)
            .map(|(n, t)| (n.clone(), *t))
    }

    /// Stops the probe.
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// A fault a round can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 of the leader's Patroni and PostgreSQL (local clusters).
    KillLeader,
    /// A switchover through the Patroni REST API.
    Switchover,
    /// Nothing: someone else injects the fault; the round only measures for this long.
    None(Duration),
}

impl Fault {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::KillLeader => "kill-9-leader",
            Self::Switchover => "switchover",
            Self::None(_) => "none",
        }
    }
}

/// Injects faults into a cluster and undoes them.
pub trait Injector {
    /// Injects `fault` against the current leader `leader`.
    fn inject(&self, fault: Fault, leader: &str) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
    /// Brings the cluster back to full strength after `fault` (for example restarts a killed node).
    fn recover(&self, fault: Fault, old_leader: &str) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
}

impl Injector for pgha_testkit::LocalCluster {
    async fn inject(&self, fault: Fault, leader: &str) -> anyhow::Result<()> {
        match fault {
            Fault::KillLeader => self.kill_node(leader)?,
            Fault::Switchover => {
                self.switchover(None).await?;
            }
            Fault::None(_) => {}
        }
        Ok(())
    }

    async fn recover(&self, fault: Fault, old_leader: &str) -> anyhow::Result<()> {
        if fault == Fault::KillLeader {
            self.start_node(old_leader)?;
        }
        if fault != Fault::None(Duration::ZERO) {
            self.wait_streaming(old_leader, Duration::from_secs(120)).await?;
        }
        Ok(())
    }
}

/// A client builder for a local cluster: its Patroni URLs and REST credentials, the application
/// role and database, TLS with the cluster's CA when it has one.
pub fn client_builder(cluster: &pgha_testkit::LocalCluster) -> pgha_client::ClientBuilder {
    let creds = cluster.credentials();
    let mut builder = Client::builder()
        .patroni(cluster.patroni_urls())
        .user(creds.app.username.clone())
        .password(creds.app.password.expose())
        .dbname(cluster.database());
    builder = match cluster.ca_file() {
        Some(ca) => builder
            .patroni_ca_file(&ca)
            .ssl_ca_file(&ca)
            .ssl_mode(pgha_client::SslMode::VerifyFull),
        None => builder.ssl_mode(pgha_client::SslMode::Disable),
    };
    if let Some(rest) = &creds.rest {
        builder = builder.patroni_auth(rest.username.clone(), rest.password.expose());
    }
    builder
}

/// How to reach each member directly for the promotion probe.
pub fn probe_targets(
    client: &Client,
    user: &str,
    password: &str,
    dbname: &str,
) -> Vec<(String, tokio_postgres::Config)> {
    client
        .topology()
        .members
        .iter()
        .map(|m| {
            let mut c = tokio_postgres::Config::new();
            c.host(&m.host)
                .port(m.port)
                .user(user)
                .password(password)
                .dbname(dbname)
                .application_name("pgha-promotion-probe");
            (m.name.clone(), c)
        })
        .collect()
}

/// Runs one round: steady workload, the fault, the failover, steady again; then checks every
/// acknowledged write is on the primary.
pub async fn run_round<I: Injector>(
    client: &Client,
    injector: &I,
    fault: Fault,
    config: &WorkloadConfig,
    probe_targets: Vec<(String, tokio_postgres::Config)>,
) -> anyhow::Result<RoundReport> {
    let before = client.topology().primary().map(|m| m.name.clone());
    let leader = before
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no primary before the fault"))?;
    let probe = PromotionProbe::start(probe_targets);
    let workload = Workload::start(client, config).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    probe.reset();
    let fault_at = Instant::now();
    let inject = injector.inject(fault, &leader);
    match fault {
        Fault::None(duration) => {
            inject.await?;
            tokio::time::sleep(duration).await;
        }
        _ => {
            // A switchover call returns only once Patroni is done: the workload runs meanwhile.
            inject.await?;
            client
                .wait_for_topology(Duration::from_secs(90), |t| {
                    t.primary().is_some_and(|p| p.name != leader)
                })
                .await?;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }
    let log = workload.stop().await;
    let promotion = probe
        .new_primary_since(Some(&leader))
        .map(|(_, t)| t.saturating_duration_since(fault_at));
    probe.stop().await;
    let lost = count_lost(client, &log.acked_ids()).await?;
    let mut report = log.report(fault.name(), promotion, lost);
    report.primary_before = before;
    report.primary_after = client.topology().primary().map(|m| m.name.clone());
    injector.recover(fault, &leader).await?;
    Ok(report)
}
