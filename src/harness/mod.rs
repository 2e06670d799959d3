//! Failover measurement harness, shared by the failover demo, the benchmarks and the end-to-end
//! tests: a pgvector workload through pgha-client (inserts, k-NN searches on standbys, a
//! heartbeat that proves every read's staleness), an independent promotion probe, and the
//! report of what the application felt during one fault.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pgha_client::vector::{Distance, IndexKind, VectorTable};
use pgha_client::{Client, Intent, LagBound};
use pgvector::Vector;
use serde::Serialize;
use tokio::task::JoinSet;

/// Dimension of the demo embeddings.
pub const DIMS: usize = 16;
/// The table the demo workload writes to (created by [`prepare`]).
pub const TABLE: &str = "pgha_demo_items";

/// What one fault round measured (`failover_demo --json` prints one per round).
#[derive(Debug, Clone, Serialize)]
pub struct RoundReport {
    /// The client measured (`pgha-client`, or an alternative in the benchmarks).
    pub client: String,
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
    /// Reads that returned data staler than their bound: they missed a heartbeat that survived
    /// the fault and was acknowledged more than the bound before they started.
    pub stale_reads: u64,
    /// Why each stale read was stale (the first few): the member that served it, its recovery
    /// state, timeline and replay position, and the heartbeat it missed.
    pub stale_samples: Vec<String>,
    /// Heartbeats acknowledged and then lost in the failover (asynchronous replication): reads
    /// that miss only those are not stale.
    pub heartbeats_lost: u64,
    /// Writes acknowledged.
    pub writes_acked: u64,
    /// Acknowledged writes missing on the primary after the fault.
    pub acked_writes_lost: u64,
    /// Operations still waiting for an answer when the round ended (abandoned).
    pub ops_stuck: u64,
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

/// Creates the demo table (with an HNSW index) and heartbeat row 1, and waits until the
/// standbys have replayed them (a read bounded at 2 s may otherwise legitimately not see a table
/// created a moment ago).
pub async fn prepare(client: &Client) -> pgha_client::Result<()> {
    prepare_tables(client, &[(TABLE, 1)]).await
}

/// Creates each `(table, heartbeat row)`: a pgvector table with an HNSW index and a row in
/// `pgha_heartbeat`; waits until the standbys have replayed them.
pub async fn prepare_tables(client: &Client, tables: &[(&str, i32)]) -> pgha_client::Result<()> {
    for (table, _) in tables {
        VectorTable::new(table, DIMS)?
            .distance(Distance::L2)
            .ensure(client, IndexKind::hnsw())
            .await?;
    }
    let rows: Vec<i32> = tables.iter().map(|(_, row)| *row).collect();
    let ((), token) = client
        .op(Intent::Write)
        .idempotent()
        .run_with_token(async move |c| {
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS pgha_heartbeat (id int PRIMARY KEY, seq bigint NOT NULL); \
                 CREATE TABLE IF NOT EXISTS pgha_heartbeat_log (id int, seq bigint, PRIMARY KEY (id, seq))",
            )
            .await?;
            c.execute(
                "INSERT INTO pgha_heartbeat SELECT unnest($1::int4[]), 0 ON CONFLICT (id) DO NOTHING",
                &[&rows],
            )
            .await?;
            Ok(())
        })
        .await?;
    client.wait_for_standbys(token, Duration::from_secs(30)).await
}

/// A deterministic pseudo-random embedding for `id`.
pub fn embedding(id: i64) -> Vector {
    vector_of(id as u64, DIMS)
}

/// A deterministic pseudo-random vector of `dims` values in [0, 1), from `seed`.
pub fn vector_of(seed: u64, dims: usize) -> Vector {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Vector::from(
        (0..dims)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 10_000) as f32 / 10_000.0
            })
            .collect::<Vec<f32>>(),
    )
}

/// A client under test: how it writes, bumps its heartbeat and reads. pgha-client is one; the
/// benchmarks add plain deadpool, libpq-style multi-host and HAProxy (see [`PoolDriver`]).
pub trait Driver: Send + Sync {
    /// Short name for reports.
    fn name(&self) -> &str;
    /// Inserts row `id` into `table`.
    fn write<'a>(&'a self, table: &'a str, id: i64, v: &'a Vector) -> BoxFuture<'a, Result<(), String>>;
    /// Sets heartbeat row `row` to `seq`.
    fn heartbeat(&self, row: i32, seq: i64) -> BoxFuture<'_, Result<(), String>>;
    /// A k-NN search on `table` plus the heartbeat `row`; returns (ran on a standby, heartbeat).
    fn read<'a>(&'a self, table: &'a str, row: i32, query: &'a Vector) -> BoxFuture<'a, Result<ReadSample, String>>;
}

/// What a read saw, and where: enough to explain a read judged stale.
#[derive(Debug, Clone)]
pub struct ReadSample {
    /// The member that served it (Patroni name for pgha-client, `port NNNN` otherwise).
    pub member: String,
    /// `pg_is_in_recovery()` there.
    pub standby: bool,
    /// The heartbeat value it saw.
    pub seq: i64,
    /// The timeline of the member's last checkpoint.
    pub timeline: i64,
    /// Its replay position (a standby) or current WAL position (a primary).
    pub lsn: String,
}

impl ReadSample {
    fn from_row(row: &tokio_postgres::Row, member: Option<String>) -> Result<Self, tokio_postgres::Error> {
        let port: i32 = row.try_get(4)?;
        Ok(Self {
            member: member.unwrap_or_else(|| format!("port {port}")),
            standby: row.try_get(0)?,
            seq: row.try_get(1)?,
            timeline: row.try_get(2)?,
            lsn: row.try_get(3)?,
        })
    }
}

/// The heartbeats acknowledged after `seen`; `heartbeats` are `(seq, acknowledged at)` in
/// sequence order (one writer, so acknowledgement times rise with the sequence).
pub(crate) fn heartbeats_after(heartbeats: &[(i64, Instant)], seen: i64) -> &[(i64, Instant)] {
    &heartbeats[heartbeats.partition_point(|(s, _)| *s <= seen)..]
}

/// The rule for a stale read, shared by the demo, the benchmarks and the fault-injection
/// verdict: a read that saw heartbeat `seen` and started at `started` was stale if it missed a
/// heartbeat that `survived` and was acknowledged more than `bound` before it started. Returns
/// the first such heartbeat. (A heartbeat the failover lost is a lost write, not a reason to call
/// a read stale.)
pub(crate) fn missed_surviving_heartbeat(
    heartbeats: &[(i64, Instant)],
    seen: i64,
    started: Instant,
    bound: Duration,
    survived: impl Fn(i64) -> bool,
) -> Option<(i64, Instant)> {
    heartbeats_after(heartbeats, seen)
        .iter()
        .take_while(|(_, acked)| *acked + bound < started)
        .find(|(s, _)| survived(*s))
        .copied()
}

/// A client under test in a round: its driver, its table and its heartbeat row.
pub type Contender = (Arc<dyn Driver>, String, i32);

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

fn insert_sql(table: &str) -> String {
    format!("INSERT INTO {table} (id, embedding) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
}

fn knn_sql(table: &str) -> String {
    format!("SELECT id FROM {table} ORDER BY embedding <-> $1 LIMIT 10")
}

const HEARTBEAT_READ: &str = "SELECT pg_is_in_recovery(), (SELECT seq FROM pgha_heartbeat WHERE id = $1), \
    (SELECT timeline_id::int8 FROM pg_control_checkpoint()), \
    CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text, \
    current_setting('port')::int4";
/// One statement, so every client writes the heartbeat and its log entry atomically: the log
/// says afterwards which acknowledged heartbeats survived the fault.
const HEARTBEAT_WRITE: &str = "WITH bumped AS (UPDATE pgha_heartbeat SET seq = $2 WHERE id = $1 RETURNING id, seq) \
    INSERT INTO pgha_heartbeat_log (id, seq) SELECT id, seq FROM bumped ON CONFLICT DO NOTHING";

/// pgha-client as a [`Driver`]: idempotent insert transactions on the primary, reads on
/// standbys under `read_bound` (falling back to the primary).
#[derive(Debug, Clone)]
pub struct PghaDriver {
    /// The client.
    pub client: Client,
    /// Staleness bound of the reads.
    pub read_bound: Duration,
}

impl Driver for PghaDriver {
    fn name(&self) -> &str {
        "pgha-client"
    }

    fn write<'a>(&'a self, table: &'a str, id: i64, v: &'a Vector) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let (sql, v) = (insert_sql(table), v.clone());
            self.client
                .op(Intent::Write)
                .idempotent()
                .transaction(async move |tx| Ok(tx.execute(&sql, &[&id, &v]).await?))
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }

    fn heartbeat(&self, row: i32, seq: i64) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.client
                .op(Intent::Write)
                .idempotent()
                .run(async move |c| Ok(c.execute(HEARTBEAT_WRITE, &[&row, &seq]).await?))
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }

    fn read<'a>(&'a self, table: &'a str, row: i32, query: &'a Vector) -> BoxFuture<'a, Result<ReadSample, String>> {
        Box::pin(async move {
            let (sql, query) = (knn_sql(table), query.clone());
            let (hb, member) = self
                .client
                .op(Intent::Standby)
                .max_lag(LagBound::time(self.read_bound))
                .transaction_with_member(async move |tx| {
                    let hb = tx.query_one(HEARTBEAT_READ, &[&row]).await?;
                    tx.query(&sql, &[&query]).await?;
                    Ok(hb)
                })
                .await
                .map_err(|e| e.to_string())?;
            ReadSample::from_row(&hb, Some(member)).map_err(err)
        })
    }
}

/// A client made of plain deadpool-postgres pools: writes through `writes`, reads through
/// `reads`; every error reaches the application (there is no retry layer).
pub struct PoolDriver {
    /// Name for reports.
    pub name: String,
    /// Pool used for writes and the heartbeat.
    pub writes: deadpool_postgres::Pool,
    /// Pool used for reads.
    pub reads: deadpool_postgres::Pool,
}

impl std::fmt::Debug for PoolDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolDriver").field("name", &self.name).finish()
    }
}

impl PoolDriver {
    /// A deadpool pool (fast recycling, 1 s connect and wait timeouts) over `config`.
    pub fn pool(config: tokio_postgres::Config, size: usize) -> anyhow::Result<deadpool_postgres::Pool> {
        let manager = deadpool_postgres::Manager::from_config(
            config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        Ok(deadpool_postgres::Pool::builder(manager)
            .max_size(size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(1)))
            .wait_timeout(Some(Duration::from_secs(1)))
            .build()?)
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Driver for PoolDriver {
    fn name(&self) -> &str {
        &self.name
    }

    fn write<'a>(&'a self, table: &'a str, id: i64, v: &'a Vector) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let conn = self.writes.get().await.map_err(err)?;
            conn.execute(&insert_sql(table), &[&id, v]).await.map(drop).map_err(err)
        })
    }

    fn heartbeat(&self, row: i32, seq: i64) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let conn = self.writes.get().await.map_err(err)?;
            conn.execute(HEARTBEAT_WRITE, &[&row, &seq])
                .await
                .map(drop)
                .map_err(err)
        })
    }

    fn read<'a>(&'a self, table: &'a str, row: i32, query: &'a Vector) -> BoxFuture<'a, Result<ReadSample, String>> {
        Box::pin(async move {
            let conn = self.reads.get().await.map_err(err)?;
            let hb = conn.query_one(HEARTBEAT_READ, &[&row]).await.map_err(err)?;
            conn.query(&knn_sql(table), &[query]).await.map_err(err)?;
            ReadSample::from_row(&hb, None).map_err(err)
        })
    }
}

#[derive(Debug, Default)]
struct Log {
    acks: Vec<(i64, Instant)>,
    heartbeat: Vec<(i64, Instant)>,
    errors: Vec<String>,
    reads_standby: u64,
    reads_primary: u64,
    /// Reads that missed a heartbeat acknowledged more than the bound before they started:
    /// stale unless every such heartbeat was lost (judged once the survivors are known).
    suspects: Vec<Suspect>,
}

#[derive(Debug)]
struct Suspect {
    started: Instant,
    sample: ReadSample,
}

/// A running workload; [`stop`](Self::stop) it to get its log.
#[derive(Debug)]
pub struct Workload {
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
    table: String,
    name: String,
    row: i32,
    seq0: i64,
    bound: Duration,
}

fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

/// Pause after an error, so a client that fails fast does not spin.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

impl Workload {
    /// Starts writers, readers and the heartbeat of `driver` on `table` and heartbeat `row`
    /// (create both with [`prepare_tables`]). `client` is used only to find the first free id.
    pub async fn start_driver(
        client: &Client,
        driver: Arc<dyn Driver>,
        table: &str,
        row: i32,
        config: &WorkloadConfig,
    ) -> pgha_client::Result<Self> {
        let first_id: i64 = client
            .run(Intent::Primary, async |c| {
                Ok(
                    c.query_one(&format!("SELECT coalesce(max(id), 0) + 1 FROM {table}"), &[])
                        .await?
                        .get(0),
                )
            })
            .await?;
        let seq0: i64 = client
            .run(Intent::Primary, async move |c| {
                Ok(c.query_one("SELECT seq FROM pgha_heartbeat WHERE id = $1", &[&row])
                    .await?
                    .get(0))
            })
            .await?;
        let next_id = Arc::new(AtomicI64::new(first_id));
        let log = Arc::new(Mutex::new(Log::default()));
        lock(&log).heartbeat.push((seq0, Instant::now()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();

        for _ in 0..config.writers {
            let (driver, log, stop, next_id, table) = (
                driver.clone(),
                log.clone(),
                stop.clone(),
                next_id.clone(),
                table.to_owned(),
            );
            tasks.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    let v = embedding(id);
                    let result = driver.write(&table, id, &v).await;
                    let failed = result.is_err();
                    match result {
                        Ok(()) => lock(&log).acks.push((id, Instant::now())),
                        Err(e) => lock(&log).errors.push(format!("write {id}: {e}")),
                    }
                    if failed {
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                }
            });
        }

        {
            let (driver, log, stop) = (driver.clone(), log.clone(), stop.clone());
            tasks.spawn(async move {
                let mut seq = seq0;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    match driver.heartbeat(row, seq).await {
                        Ok(()) => lock(&log).heartbeat.push((seq, Instant::now())),
                        Err(e) => {
                            // The value may or may not have been written: the next one supersedes it.
                            lock(&log).errors.push(format!("heartbeat {seq}: {e}"));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }

        for reader in 0..config.readers {
            let (driver, log, stop, table) = (driver.clone(), log.clone(), stop.clone(), table.to_owned());
            let bound = config.read_bound;
            tasks.spawn(async move {
                let mut n = reader as i64;
                while !stop.load(Ordering::Relaxed) {
                    n += 7;
                    let query = embedding(n);
                    let started = Instant::now();
                    let result = driver.read(&table, row, &query).await;
                    let failed = result.is_err();
                    {
                        let mut log = lock(&log);
                        match result {
                            Ok(sample) => {
                                if sample.standby {
                                    log.reads_standby += 1;
                                } else {
                                    log.reads_primary += 1;
                                }
                                // A suspect if the next heartbeat (the earliest acknowledged one
                                // it missed) was acknowledged more than `bound` before the read
                                // started; stale if a surviving one was (see `judge`).
                                if heartbeats_after(&log.heartbeat, sample.seq)
                                    .first()
                                    .is_some_and(|(_, acked)| *acked + bound < started)
                                {
                                    log.suspects.push(Suspect { started, sample });
                                }
                            }
                            Err(e) => log.errors.push(format!("read: {e}")),
                        }
                    }
                    if failed {
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                }
            });
        }
        Ok(Self {
            log,
            stop,
            tasks,
            table: table.to_owned(),
            name: driver.name().to_owned(),
            row,
            seq0,
            bound: config.read_bound,
        })
    }

    /// When this workload last acknowledged a write.
    pub fn last_ack(&self) -> Option<Instant> {
        lock(&self.log).acks.iter().map(|(_, t)| *t).max()
    }

    /// Stops the workload and returns what it saw. Operations still running 5 s after the stop
    /// (a client stuck on a frozen node, with no timeout of its own) are abandoned and counted.
    pub async fn stop(mut self) -> WorkloadLog {
        self.stop.store(true, Ordering::Relaxed);
        let ended = Instant::now();
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        let stuck = if drained.is_err() { self.tasks.len() as u64 } else { 0 };
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let log = std::mem::take(&mut *lock(&self.log));
        WorkloadLog {
            log,
            table: self.table,
            name: self.name,
            ended,
            stuck,
            row: self.row,
            seq0: self.seq0,
            bound: self.bound,
        }
    }
}

/// What a stopped workload saw.
#[derive(Debug)]
pub struct WorkloadLog {
    log: Log,
    table: String,
    name: String,
    ended: Instant,
    stuck: u64,
    row: i32,
    seq0: i64,
    bound: Duration,
}

impl WorkloadLog {
    /// Longest interval without an acknowledged write, counting the time from the last one to
    /// the end (a client that never recovered has a gap as long as the rest of the round).
    pub fn write_gap(&self) -> Duration {
        let mut times: Vec<Instant> = self.log.acks.iter().map(|(_, t)| *t).collect();
        times.sort();
        let inner = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
        let trailing = times
            .last()
            .map_or(Duration::ZERO, |t| self.ended.saturating_duration_since(*t));
        inner.max(trailing)
    }

    /// Ids of acknowledged writes.
    pub fn acked_ids(&self) -> Vec<i64> {
        self.log.acks.iter().map(|(id, _)| *id).collect()
    }

    /// Judges the suspect reads against the heartbeats that survived (`surviving`, sorted): a
    /// read is stale if a surviving heartbeat after the one it saw was acknowledged more than
    /// the bound before it started. Returns (stale reads, their explanations, heartbeats lost).
    fn judge(&self, surviving: &[i64]) -> (u64, Vec<String>, u64) {
        let survived = |s: i64| s == self.seq0 || surviving.binary_search(&s).is_ok();
        let lost = self.log.heartbeat.iter().filter(|(s, _)| !survived(*s)).count() as u64;
        let mut stale = 0;
        let mut samples = Vec::new();
        for Suspect { started, sample } in &self.log.suspects {
            let missed = missed_surviving_heartbeat(&self.log.heartbeat, sample.seq, *started, self.bound, survived);
            if let Some((missed, acked)) = missed {
                stale += 1;
                if samples.len() < 5 {
                    samples.push(format!(
                        "read on {} ({}, timeline {}, at {}) saw heartbeat {} but missed {} acknowledged {:?} before it started (bound {:?})",
                        sample.member,
                        if sample.standby { "standby" } else { "primary" },
                        sample.timeline,
                        sample.lsn,
                        sample.seq,
                        missed,
                        started.saturating_duration_since(acked),
                        self.bound
                    ));
                }
            }
        }
        (stale, samples, lost)
    }

    /// Reads what survived on the primary (acknowledged inserts, heartbeats) and builds the
    /// report of `fault`.
    pub async fn report_from(
        &self,
        client: &Client,
        fault: &str,
        promotion: Option<Duration>,
    ) -> pgha_client::Result<RoundReport> {
        let lost = count_lost(client, &self.table, &self.acked_ids()).await?;
        let surviving = surviving_heartbeats(client, self).await?;
        Ok(self.report(fault, promotion, lost, &surviving))
    }

    /// Builds the report: `lost` is the number of acknowledged writes missing afterwards,
    /// `surviving` the heartbeat values found in the log table afterwards (sorted).
    fn report(&self, fault: &str, promotion: Option<Duration>, lost: u64, surviving: &[i64]) -> RoundReport {
        let (stale_reads, stale_samples, heartbeats_lost) = self.judge(surviving);
        let gap = self.write_gap().as_secs_f64();
        let promotion_s = promotion.map(|p| p.as_secs_f64());
        RoundReport {
            client: self.name.clone(),
            fault: fault.to_owned(),
            promotion_s,
            write_gap_s: gap,
            gap_minus_promotion_s: promotion_s.map(|p| gap - p),
            errors_surfaced: self.log.errors.len() as u64,
            reads_standby: self.log.reads_standby,
            reads_primary: self.log.reads_primary,
            stale_reads,
            stale_samples,
            heartbeats_lost,
            writes_acked: self.log.acks.len() as u64,
            acked_writes_lost: lost,
            ops_stuck: self.stuck,
            error_samples: self.log.errors.iter().take(5).cloned().collect(),
            primary_before: None,
            primary_after: None,
        }
    }
}

/// The heartbeat values of `row` that survived (are in the log table on the primary), sorted.
async fn surviving_heartbeats(client: &Client, log: &WorkloadLog) -> pgha_client::Result<Vec<i64>> {
    let (row, seq0) = (log.row, log.seq0);
    client
        .run(Intent::Primary, async move |c| {
            Ok(c.query(
                "SELECT seq FROM pgha_heartbeat_log WHERE id = $1 AND seq > $2 ORDER BY seq",
                &[&row, &seq0],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
        .await
}

/// Counts acknowledged ids missing on the primary.
pub async fn count_lost(client: &Client, table: &str, acked: &[i64]) -> pgha_client::Result<u64> {
    let found: i64 = client
        .run(Intent::Primary, async |c| {
            Ok(
                c.query_one(&format!("SELECT count(*) FROM {table} WHERE id = ANY($1)"), &[&acked])
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
    /// SIGSTOP of the leader's Patroni and PostgreSQL until a new leader is elected (local
    /// clusters); it is continued (SIGCONT) after the round.
    FreezeLeader,
    /// Nothing: someone else injects the fault; the round only measures for this long.
    None(Duration),
}

impl Fault {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::KillLeader => "kill-9-leader",
            Self::Switchover => "switchover",
            Self::FreezeLeader => "freeze-leader",
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
            Fault::FreezeLeader => self.freeze_node(leader)?,
            Fault::Switchover => {
                self.switchover(None).await?;
            }
            Fault::None(_) => {}
        }
        Ok(())
    }

    async fn recover(&self, fault: Fault, old_leader: &str) -> anyhow::Result<()> {
        match fault {
            Fault::KillLeader => self.start_node(old_leader)?,
            Fault::FreezeLeader => self.thaw_node(old_leader)?,
            _ => {}
        }
        if matches!(fault, Fault::None(_)) {
            return Ok(());
        }
        settle(self).await.map(drop)
    }
}

/// Waits until the cluster is back to one leader and every replica streaming. A thawed leader
/// may even take the lock back (Patroni 3.0.2), so this waits for the whole cluster, not for one
/// member; Patroni 3.0.2 can also leave a member unable to follow (a diverged timeline pg_rewind
/// does not fix): those are re-cloned, as an operator would. Returns the members re-cloned.
pub async fn settle(cluster: &pgha_testkit::LocalCluster) -> anyhow::Result<Vec<String>> {
    let mut recloned = Vec::new();
    if let Err(e) = cluster.wait_ready(Duration::from_secs(90)).await {
        let leader = cluster.leader().await?;
        for member in cluster.member_names().into_iter().filter(|m| *m != leader) {
            if !cluster.is_streaming(&member).await.unwrap_or(false) {
                tracing::warn!(member, error = %e, "member does not stream: reinitializing it");
                cluster.reinitialize(&member).await?;
                recloned.push(member);
            }
        }
        cluster.wait_ready(Duration::from_secs(180)).await?;
    }
    Ok(recloned)
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

/// Faults on a cluster pgha did not start: only what the REST API allows.
#[derive(Debug)]
pub struct RestInjector {
    http: reqwest::Client,
    client: Client,
    auth: Option<(String, String)>,
}

impl RestInjector {
    /// Switchovers through the REST API of `client`'s cluster, with optional basic auth.
    pub fn new(client: Client, auth: Option<(String, String)>) -> Self {
        Self {
            http: reqwest::Client::new(),
            client,
            auth,
        }
    }
}

impl Injector for RestInjector {
    async fn inject(&self, fault: Fault, leader: &str) -> anyhow::Result<()> {
        match fault {
            Fault::Switchover => {
                let topology = self.client.topology();
                let url = topology
                    .member(leader)
                    .and_then(|m| m.api_url.clone())
                    .context("the leader's Patroni URL is unknown")?;
                let url = url.trim_end_matches("/patroni").to_owned() + "/switchover";
                let mut request = self
                    .http
                    .post(&url)
                    .json(&serde_json::json!({ "leader": leader }))
                    .timeout(Duration::from_secs(60));
                if let Some((user, password)) = &self.auth {
                    request = request.basic_auth(user, Some(password));
                }
                let response = request.send().await.context("POST /switchover")?;
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                if !status.is_success() {
                    bail!("switchover refused: HTTP {status}: {text}");
                }
                Ok(())
            }
            Fault::KillLeader | Fault::FreezeLeader => bail!("{} needs a local cluster (omit --patroni)", fault.name()),
            Fault::None(_) => Ok(()),
        }
    }

    async fn recover(&self, _fault: Fault, _old_leader: &str) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The credentials of a libpq URL (user, password, database — the user name when absent), for
/// the tools that reach an existing cluster's members directly.
pub fn dsn_credentials(dsn: &str) -> anyhow::Result<(String, String, String)> {
    let parsed: tokio_postgres::Config = dsn.parse().context("--dsn is not a valid libpq URL")?;
    let user = parsed.get_user().context("--dsn has no user")?.to_owned();
    let password = parsed
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let db = parsed.get_dbname().unwrap_or(&user).to_owned();
    Ok((user, password, db))
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
        let mut report = log.report_from(client, fault.name(), promotion).await?;
        report.primary_before = before.clone();
        report.primary_after = after.clone();
        reports.push(report);
    }
    injector.recover(fault, &leader).await?;
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: i64) -> ReadSample {
        ReadSample {
            member: "node2".into(),
            standby: true,
            seq,
            timeline: 1,
            lsn: "0/5000000".into(),
        }
    }

    fn log_with(heartbeats: &[(i64, u64)], reads: &[(i64, u64)]) -> (WorkloadLog, Instant) {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let log = Log {
            heartbeat: heartbeats.iter().map(|&(s, ms)| (s, at(ms))).collect(),
            suspects: reads
                .iter()
                .map(|&(seen, ms)| Suspect {
                    started: at(ms),
                    sample: sample(seen),
                })
                .collect(),
            ..Log::default()
        };
        let log = WorkloadLog {
            log,
            table: TABLE.into(),
            name: "pgha-client".into(),
            ended: at(10_000),
            stuck: 0,
            row: 1,
            seq0: 0,
            bound: Duration::from_secs(2),
        };
        (log, t0)
    }

    #[test]
    fn a_read_that_missed_only_lost_heartbeats_is_not_stale() {
        // Heartbeats 1-3 acknowledged by the old primary, 2 and 3 lost in the failover; the
        // read at 5 s saw 1: it missed only lost ones until 4, acknowledged at 4.5 s.
        let (log, _) = log_with(&[(0, 0), (1, 100), (2, 200), (3, 300), (4, 4_500)], &[(1, 5_000)]);
        assert_eq!(log.judge(&[1, 4]), (0, vec![], 2));
    }

    #[test]
    fn a_read_that_missed_a_surviving_heartbeat_beyond_the_bound_is_stale_and_explained() {
        let (log, _) = log_with(&[(0, 0), (1, 100), (2, 200), (3, 300)], &[(1, 5_000), (3, 5_000)]);
        let (stale, samples, lost) = log.judge(&[1, 2, 3]);
        assert_eq!((stale, lost), (1, 0));
        assert!(
            samples[0].contains("node2") && samples[0].contains("missed 2"),
            "{samples:?}"
        );
    }
}
