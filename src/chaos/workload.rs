//! The workload: unique inserts, a heartbeat read under a lag bound and in sessions,
//! read-your-writes pairs — every operation recorded in the history for the checkers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgha_client::patroni::Lsn;
use pgha_client::{Client, Intent, LagBound, WalToken};
use tokio::task::JoinSet;

use super::history::{micros_since, Op, OpKind, Outcome};

/// What the workload did: the history, and tallies for the report.
#[derive(Debug, Default)]
pub(super) struct Log {
    pub(super) ops: Vec<Op>,
    pub(super) errors: BTreeMap<String, u64>,
    pub(super) longest: Duration,
}

pub(super) fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

/// The timeline and WAL position of the node a statement runs on: for a primary its insert
/// timeline and position, for a standby the timeline it receives (NULL while no WAL receiver
/// streams: PostgreSQL does not show the timeline of replay) and the position it has replayed.
macro_rules! position_columns {
    () => {
        "(CASE WHEN pg_is_in_recovery() \
           THEN (SELECT received_tli FROM pg_stat_wal_receiver) \
           ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8 END)::int8, \
         (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text"
    };
}
const INSERT: &str = concat!(
    "INSERT INTO chaos_writes (id, writer) VALUES ($1, $2) RETURNING ",
    position_columns!()
);
const HEARTBEAT: &str = concat!(
    "WITH beat AS (UPDATE chaos_heartbeat SET seq = $1 WHERE id = 1), \
          logged AS (INSERT INTO chaos_heartbeat_log (seq) VALUES ($1) ON CONFLICT DO NOTHING) \
     SELECT ",
    position_columns!()
);
const RYW_WRITE: &str = concat!(
    "WITH w AS (INSERT INTO chaos_ryw (n) VALUES ($1) ON CONFLICT DO NOTHING) SELECT ",
    position_columns!()
);
const HEARTBEAT_READ: &str = concat!(
    "SELECT seq, ",
    position_columns!(),
    " FROM chaos_heartbeat WHERE id = 1"
);
const RYW_READ: &str = concat!(
    "SELECT (SELECT count(*) FROM chaos_ryw WHERE n = $1), ",
    position_columns!()
);

/// The statement an operation of `kind` runs.
fn statement(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Insert => INSERT,
        OpKind::Heartbeat => HEARTBEAT,
        OpKind::RywWrite => RYW_WRITE,
        OpKind::BoundedRead | OpKind::SessionRead => HEARTBEAT_READ,
        OpKind::RywRead => RYW_READ,
    }
}

/// The position columns at `from` in `row`.
fn position(row: &tokio_postgres::Row, from: usize) -> Result<Position, tokio_postgres::Error> {
    let timeline: Option<i64> = row.try_get(from)?;
    let lsn: Option<String> = row.try_get(from + 1)?;
    Ok(Position {
        timeline: timeline.and_then(|t| u64::try_from(t).ok()),
        lsn: lsn.and_then(|l| l.parse().ok()),
    })
}

/// Where a statement ran: see `position_columns!`.
#[derive(Debug, Clone, Copy)]
struct Position {
    timeline: Option<u64>,
    lsn: Option<Lsn>,
}

impl Position {
    /// The position as a token, when both parts are known.
    fn token(self) -> Option<WalToken> {
        Some(WalToken {
            timeline: self.timeline?,
            lsn: self.lsn?,
        })
    }
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
    } else if e.is_write_lost() {
        "write-lost".into()
    } else if let Some(code) = e.code() {
        format!("sqlstate-{}", code.code())
    } else {
        "other".into()
    }
}

pub(super) const APPLICATION: &str = "pgha-chaos";
pub(super) const DEADLINE: Duration = Duration::from_secs(30);

/// Records the operations of one workload task.
#[derive(Clone)]
struct Recorder {
    log: Arc<Mutex<Log>>,
    start: Instant,
    process: u32,
}

/// What one operation returned, in the terms of the history.
struct Done {
    read: Option<i64>,
    member: Option<String>,
    position: Option<Position>,
    token: Option<WalToken>,
}

impl Recorder {
    fn record(&self, kind: OpKind, value: i64, invoked: Instant, result: Result<Done, &pgha_client::Error>) {
        let completed = Instant::now();
        let (outcome, done, error) = match result {
            Ok(done) => (Outcome::Ok, Some(done), None),
            Err(e) if e.is_outcome_unknown() => (Outcome::Unknown, None, Some(error_kind(e))),
            Err(e) => (Outcome::Fail, None, Some(error_kind(e))),
        };
        let done = done.unwrap_or(Done {
            read: None,
            member: None,
            position: None,
            token: None,
        });
        let mut l = lock(&self.log);
        l.longest = l.longest.max(completed - invoked);
        if let Some(kind) = &error {
            *l.errors.entry(kind.clone()).or_default() += 1;
        }
        l.ops.push(Op {
            process: self.process,
            kind,
            value,
            read: done.read,
            invoke_us: micros_since(self.start, invoked),
            complete_us: micros_since(self.start, completed),
            outcome,
            member: done.member,
            timeline: done.position.and_then(|p| p.timeline),
            lsn: done.position.and_then(|p| p.lsn),
            token: done.token,
            error,
        });
    }
}

/// A write of `value` (and `writer`, for inserts) whose statement returns its position before
/// COMMIT: recorded with its token. Inserts are not idempotent; the other writes are.
async fn write(client: &Client, rec: &Recorder, kind: OpKind, value: i64, writer: Option<i32>) -> Option<WalToken> {
    let invoked = Instant::now();
    let mut op = client.op(Intent::Write);
    if kind != OpKind::Insert {
        op = op.idempotent();
    }
    let result = op
        .transaction_with_token(async move |tx| {
            let row = match writer {
                Some(writer) => tx.query_one(statement(kind), &[&value, &writer]).await?,
                None => tx.query_one(statement(kind), &[&value]).await?,
            };
            Ok(position(&row, 0)?)
        })
        .await;
    let token = result.as_ref().ok().map(|(_, t)| *t);
    rec.record(
        kind,
        value,
        invoked,
        result.as_ref().map(|(at, token)| Done {
            read: None,
            member: None,
            position: Some(*at),
            token: Some(*token),
        }),
    );
    token
}

/// A read of one number and the position columns after it, on a standby under `bound` and
/// after `after`, if given (recorded as the read's token); returns where the read stood, as a
/// token, when both parts of it are known.
async fn read(
    client: &Client,
    rec: &Recorder,
    kind: OpKind,
    value: i64,
    after: Option<WalToken>,
    bound: Duration,
) -> Option<WalToken> {
    let invoked = Instant::now();
    let mut op = client.op(Intent::Standby).max_lag(LagBound::time(bound));
    if let Some(token) = after {
        op = op.after(token);
    }
    let result = op
        .run_with_member(async move |c| {
            let row = if kind == OpKind::RywRead {
                c.query_one(statement(kind), &[&value]).await?
            } else {
                c.query_one(statement(kind), &[]).await?
            };
            let seen: i64 = row.try_get(0)?;
            Ok((seen, position(&row, 1)?))
        })
        .await;
    let out = result.as_ref().ok().and_then(|((_, at), _)| at.token());
    rec.record(
        kind,
        value,
        invoked,
        result.as_ref().map(|((seen, at), member)| Done {
            read: Some(*seen),
            member: Some(member.clone()),
            position: Some(*at),
            token: after,
        }),
    );
    out
}

pub(super) fn spawn_workload(
    client: &Client,
    log: &Arc<Mutex<Log>>,
    stop: &Arc<AtomicBool>,
    bound: Duration,
    start: Instant,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let recorder = |process| Recorder {
        log: log.clone(),
        start,
        process,
    };
    let next_id = Arc::new(AtomicI64::new(1));
    for writer in 0..2_i32 {
        let (client, rec, stop, next_id) = (
            client.clone(),
            recorder(writer.unsigned_abs()),
            stop.clone(),
            next_id.clone(),
        );
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                write(&client, &rec, OpKind::Insert, id, Some(writer)).await;
            }
        });
    }
    {
        let (client, rec, stop) = (client.clone(), recorder(2), stop.clone());
        tasks.spawn(async move {
            let mut seq = 0_i64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                write(&client, &rec, OpKind::Heartbeat, seq, None).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    for process in 3..5 {
        let (client, rec, stop) = (client.clone(), recorder(process), stop.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                read(&client, &rec, OpKind::BoundedRead, 0, None, bound).await;
            }
        });
    }
    {
        // Session reads: each after the position the previous one had reached. An error (a
        // position a failover discarded, say), or a standby whose timeline is not shown (no WAL
        // receiver), starts a new session: the next read carries no token.
        let (client, rec, stop) = (client.clone(), recorder(5), stop.clone());
        tasks.spawn(async move {
            let mut after = None;
            while !stop.load(Ordering::Relaxed) {
                after = read(&client, &rec, OpKind::SessionRead, 0, after, bound).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }
    {
        let (client, rec, stop) = (client.clone(), recorder(6), stop.clone());
        tasks.spawn(async move {
            let mut n = 0_i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let Some(token) = write(&client, &rec, OpKind::RywWrite, n, None).await else {
                    continue;
                };
                read(&client, &rec, OpKind::RywRead, n, Some(token), bound).await;
            }
        });
    }
    tasks
}
