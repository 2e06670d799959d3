//! The workload: unique inserts, a heartbeat and its lag-bounded readers, read-your-writes
//! pairs — every outcome recorded for the verdict.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgha_client::patroni::Lsn;
use pgha_client::{Client, Intent, LagBound, WalToken};
use tokio::task::JoinSet;

/// An acknowledged insert: where the client's token places it, and where the transaction
/// itself stood before COMMIT (timeline of the node that ran it, position after the insert).
#[derive(Debug, Clone, Copy)]
pub(super) struct Ack {
    pub(super) id: i64,
    pub(super) at: Instant,
    pub(super) token: WalToken,
    pub(super) before_commit: (u64, Lsn),
}

impl Ack {
    /// Whether the token was read on the committing node (same timeline) rather than from a
    /// new primary after the connection was lost right after COMMIT.
    pub(super) fn token_is_exact(&self) -> bool {
        self.token.timeline == self.before_commit.0
    }
}

#[derive(Debug, Default)]
pub(super) struct Log {
    pub(super) acked: Vec<Ack>,
    pub(super) failed: Vec<i64>,
    pub(super) unknown: Vec<i64>,
    /// Heartbeats acknowledged, in order.
    pub(super) heartbeat: Vec<(i64, Instant)>,
    /// Bounded reads that missed a heartbeat acknowledged more than the bound before they
    /// started: `(seen, started, where it ran)`; stale unless every such heartbeat was lost.
    pub(super) stale_candidates: Vec<(i64, Instant, String)>,
    /// Read-your-writes inserts acknowledged.
    pub(super) ryw_acked: Vec<(i64, Instant)>,
    /// Read-your-writes reads that did not see their write: `(n, started, where it ran)`; a
    /// violation unless it was lost.
    pub(super) ryw_misses: Vec<(i64, Instant, String)>,
    pub(super) errors: BTreeMap<String, u64>,
    pub(super) operations: u64,
    pub(super) longest: Duration,
}

impl Log {
    /// The heartbeats acknowledged after `seen`, in order (they are recorded in sequence order).
    pub(super) fn heartbeats_after(&self, seen: i64) -> &[(i64, Instant)] {
        crate::harness::heartbeats_after(&self.heartbeat, seen)
    }
}

/// Columns 1–4 of a read, after the value it reads: where it ran, to explain a violation.
/// `received_tli` is NULL without `pg_read_all_stats` or when no WAL receiver runs.
macro_rules! where_it_ran_columns {
    () => {
        "pg_is_in_recovery(), \
         (SELECT timeline_id FROM pg_control_checkpoint())::int8, \
         (SELECT received_tli FROM pg_stat_wal_receiver)::int8, \
         (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text"
    };
}
const HEARTBEAT_READ: &str = concat!(
    "SELECT seq, ",
    where_it_ran_columns!(),
    " FROM chaos_heartbeat WHERE id = 1"
);
const RYW_READ: &str = concat!(
    "SELECT EXISTS (SELECT 1 FROM chaos_ryw WHERE n = $1), ",
    where_it_ran_columns!()
);

/// `member (standby, checkpoint timeline 3, receiving timeline 4, replay 0/5A3B2C8)`, from the
/// `where_it_ran_columns!` of `row`.
fn where_it_ran(member: &str, row: &tokio_postgres::Row) -> Result<String, tokio_postgres::Error> {
    let standby: bool = row.try_get(1)?;
    let checkpoint: Option<i64> = row.try_get(2)?;
    let receiving: Option<i64> = row.try_get(3)?;
    let lsn: Option<String> = row.try_get(4)?;
    let show = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    Ok(format!(
        "{member} ({}, checkpoint timeline {}, receiving timeline {}, {} {})",
        if standby { "standby" } else { "primary" },
        show(checkpoint),
        show(receiving),
        if standby { "replay" } else { "at" },
        lsn.as_deref().unwrap_or("-")
    ))
}

pub(super) fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

fn error_kind(e: &pgha_client::Error) -> String {
    if e.is_outcome_unknown() {
        "outcome-unknown".into()
    } else if e.is_timeout() {
        "deadline".into()
    } else if e.is_no_member() {
        "no-member".into()
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_budget_exhausted() {
        "retry-budget".into()
    } else if let Some(code) = e.code() {
        format!("sqlstate-{}", code.code())
    } else {
        "other".into()
    }
}

pub(super) const APPLICATION: &str = "pgha-chaos";
pub(super) const DEADLINE: Duration = Duration::from_secs(30);

fn record(log: &Mutex<Log>, started: Instant, error: Option<&pgha_client::Error>) {
    let mut l = lock(log);
    l.operations += 1;
    l.longest = l.longest.max(started.elapsed());
    if let Some(e) = error {
        *l.errors.entry(error_kind(e)).or_default() += 1;
    }
}

pub(super) fn spawn_workload(
    client: &Client,
    log: &Arc<Mutex<Log>>,
    stop: &Arc<AtomicBool>,
    bound: Duration,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let next_id = Arc::new(AtomicI64::new(1));
    for writer in 0..2 {
        let (client, log, stop, next_id) = (client.clone(), log.clone(), stop.clone(), next_id.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                let result = client
                    .op(Intent::Write)
                    .transaction_with_token(async move |tx| {
                        let row = tx
                            .query_one(
                                "INSERT INTO chaos_writes (id, writer) VALUES ($1, $2) \
                                 RETURNING pg_current_wal_lsn()::text, \
                                 ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8",
                                &[&id, &writer],
                            )
                            .await?;
                        let lsn: String = row.try_get(0)?;
                        let timeline: i64 = row.try_get(1)?;
                        Ok((u64::try_from(timeline).unwrap_or(0), lsn))
                    })
                    .await;
                record(&log, started, result.as_ref().err());
                match result {
                    Ok(((timeline, lsn), token)) => lock(&log).acked.push(Ack {
                        id,
                        at: Instant::now(),
                        token,
                        before_commit: (timeline, lsn.parse().unwrap_or(token.lsn)),
                    }),
                    Err(e) if e.is_outcome_unknown() => lock(&log).unknown.push(id),
                    Err(_) => lock(&log).failed.push(id),
                }
            }
        });
    }
    {
        let (client, log, stop) = (client.clone(), log.clone(), stop.clone());
        tasks.spawn(async move {
            let mut seq = 0_i64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let started = Instant::now();
                let result = client
                    .op(Intent::Write)
                    .idempotent()
                    .transaction(async move |tx| {
                        tx.execute("UPDATE chaos_heartbeat SET seq = $1 WHERE id = 1", &[&seq])
                            .await?;
                        tx.execute(
                            "INSERT INTO chaos_heartbeat_log (seq) VALUES ($1) ON CONFLICT DO NOTHING",
                            &[&seq],
                        )
                        .await?;
                        Ok(())
                    })
                    .await;
                record(&log, started, result.as_ref().err());
                if result.is_ok() {
                    lock(&log).heartbeat.push((seq, Instant::now()));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    for _ in 0..2 {
        let (client, log, stop) = (client.clone(), log.clone(), stop.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let result = client
                    .op(Intent::Standby)
                    .max_lag(LagBound::time(bound))
                    .run_with_member(async |c| Ok(c.query_one(HEARTBEAT_READ, &[]).await?))
                    .await;
                record(&log, started, result.as_ref().err());
                if let Ok((row, member)) = result {
                    let seen: i64 = row.get(0);
                    let mut l = lock(&log);
                    // A heartbeat acknowledged more than `bound` before the read started is
                    // missing from what it saw: stale, unless that heartbeat was lost (decided
                    // at the end, from what survived).
                    let missing = l.heartbeats_after(seen).first().filter(|(s, _)| *s == seen + 1);
                    if missing.is_some_and(|(_, acked)| *acked + bound < started) {
                        let at = where_it_ran(&member, &row).unwrap_or_else(|e| format!("{member} ({e})"));
                        l.stale_candidates.push((seen, started, at));
                    }
                }
            }
        });
    }
    {
        let (client, log, stop) = (client.clone(), log.clone(), stop.clone());
        tasks.spawn(async move {
            let mut n = 0_i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let started = Instant::now();
                let written = client
                    .op(Intent::Write)
                    .idempotent()
                    .transaction_with_token(async move |tx| {
                        tx.execute("INSERT INTO chaos_ryw (n) VALUES ($1) ON CONFLICT DO NOTHING", &[&n])
                            .await?;
                        Ok(())
                    })
                    .await;
                record(&log, started, written.as_ref().err());
                let Ok((_, token)) = written else { continue };
                lock(&log).ryw_acked.push((n, Instant::now()));
                let started = Instant::now();
                let seen = client
                    .op(Intent::Standby)
                    .after(token)
                    .run_with_member(async move |c| Ok(c.query_one(RYW_READ, &[&n]).await?))
                    .await;
                record(&log, started, seen.as_ref().err());
                if let Ok((row, member)) = seen {
                    if !row.get::<_, bool>(0) {
                        let at = where_it_ran(&member, &row).unwrap_or_else(|e| format!("{member} ({e})"));
                        lock(&log).ryw_misses.push((n, started, format!("{at}, token {token}")));
                    }
                }
            }
        });
    }
    tasks
}
