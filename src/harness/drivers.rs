//! The clients under test: the [`Driver`] trait, pgha-client and deadpool pools, their SQL.

use std::sync::Arc;
use std::time::Duration;

use pgha_client::{Client, Intent, LagBound};
use pgvector::Vector;

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
