//! The retry executor behind [`Op`]: the per-call options, the retry loop (`execute`), one
//! attempt on one member (`attempt_on`), watching for the member being lost, read-your-writes
//! checks and WAL tokens.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_postgres::IsolationLevel;
use tracing::{debug, info, warn, Instrument};

use crate::classify::{classify, retry_reason, OpKind, Phase, Verdict};
use crate::client::{Client, Connection, Transaction};
use crate::error::{Error, Kind, Result};
use crate::intent::{Intent, LagBound};
use crate::metrics::bump;
use crate::patroni::Lsn;
use crate::pool::{Busy, MemberHandle};
use crate::retry::backoff;
use crate::telemetry;
use crate::token::WalToken;
use crate::topology::selection::{select, Request, Selection};
use crate::topology::{Snapshot, Topology};

/// Attempts still running after this start watching for their member being lost.
const FAST_ATTEMPT: Duration = Duration::from_millis(20);

const PHASE_CHECKOUT: u8 = 0;
const PHASE_BODY: u8 = 1;
const PHASE_COMMIT: u8 = 2;

fn phase_of(cell: &AtomicU8) -> Phase {
    match cell.load(Ordering::SeqCst) {
        PHASE_CHECKOUT => Phase::Checkout,
        PHASE_BODY => Phase::Body,
        _ => Phase::Commit,
    }
}

/// One operation's options; see [`Client::op`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Op<'a> {
    pub(crate) client: &'a Client,
    pub(crate) intent: Intent,
    pub(crate) bound: Option<LagBound>,
    pub(crate) token: Option<WalToken>,
    pub(crate) idempotent: bool,
    pub(crate) deadline: Option<Duration>,
    pub(crate) isolation: Option<IsolationLevel>,
    pub(crate) deferrable: bool,
}

/// How an attempt ended when it did not return.
enum Aborted {
    /// A different member became the primary (or the member became unusable) mid-attempt.
    MemberLost,
    /// The operation's deadline passed.
    Deadline,
    /// The client was shut down.
    Shutdown,
}

impl Aborted {
    /// The error for an abort while preparing `what`, before any statement of the caller's was
    /// sent (so the outcome is known: nothing happened).
    fn before_body(self, what: &str) -> Error {
        match self {
            Self::Shutdown => Error::new(Kind::Shutdown),
            Self::Deadline => Error::new(Kind::Timeout).with_message(format!("the deadline passed while {what}")),
            Self::MemberLost => {
                Error::new(Kind::Connect).with_message(format!("the member stopped being usable while {what}"))
            }
        }
    }
}

impl Op<'_> {
    /// Overrides the client's lag bound for this read.
    pub fn max_lag(mut self, bound: LagBound) -> Self {
        self.bound = Some(bound);
        self
    }

    /// Read-your-writes: run on a member that has replayed `token` (or on the primary).
    ///
    /// On a synchronous primary (`synchronous_standby_names` set) the operation runs once the
    /// synchronous standbys have confirmed the token's position: until then the primary hides
    /// commits waiting for them that a standby may already have shown. pgha confirms with one
    /// transactional `pg_logical_emit_message` (PUBLIC may execute it by default) committed with
    /// `synchronous_commit = remote_apply`, once per position and primary; with a synchronous
    /// standby cut off, the operation waits until its deadline.
    pub fn after(mut self, token: WalToken) -> Self {
        self.token = Some(match self.token {
            Some(t) => t.max(token),
            None => token,
        });
        self
    }

    /// Declares the operation idempotent: running it twice has the same effect as once (for
    /// example an insert with a client-generated key and `ON CONFLICT DO NOTHING`). It is then
    /// retried even when a failure left its outcome unknown; should no retry succeed, the error
    /// is [outcome unknown](Error::is_outcome_unknown), since that attempt may have committed.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Overrides the retry deadline for this operation.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The isolation level of [`transaction`](Self::transaction)s (the server's default,
    /// normally READ COMMITTED, unless set). Serialization failures (`40001`) and deadlocks roll
    /// the transaction back and run it again, so `Serializable` needs no retry loop of yours.
    ///
    /// Whether a transaction is READ ONLY follows the intent: every intent but
    /// [`Intent::Write`] runs read-only, on a standby or on the primary
    /// ([`Intent::Primary`] for a read-only transaction that must see the latest commit).
    ///
    /// ```no_run
    /// # async fn demo(client: pgha_client::Client) -> pgha_client::Result<()> {
    /// use pgha_client::{Intent, tokio_postgres::IsolationLevel};
    /// client
    ///     .op(Intent::Write)
    ///     .isolation(IsolationLevel::Serializable)
    ///     .transaction(async |tx| {
    ///         let n: i64 = tx.query_one("SELECT count(*) FROM seats WHERE taken", &[]).await?.get(0);
    ///         if n < 100 {
    ///             tx.execute("UPDATE seats SET taken = true WHERE id = (SELECT min(id) FROM seats WHERE NOT taken)", &[]).await?;
    ///         }
    ///         Ok(())
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn isolation(mut self, level: IsolationLevel) -> Self {
        self.isolation = Some(level);
        self
    }

    /// Makes [`transaction`](Self::transaction)s DEFERRABLE. PostgreSQL honours it only for a
    /// SERIALIZABLE READ ONLY transaction (a read intent with
    /// [`isolation`](Self::isolation)`(Serializable)`), which then waits for a snapshot that
    /// can neither fail with a serialization error nor cause one — for long reports on the
    /// primary.
    pub fn deferrable(mut self) -> Self {
        self.deferrable = true;
        self
    }

    /// A connection chosen by the intent, checked out of its member's pool and handed to you, for
    /// code that must hold a connection (a session-level advisory lock, `LISTEN`, a cursor, a
    /// library that takes a `&Client`). Drop it to return it to the pool.
    ///
    /// Choosing the member follows the same rules as [`run`](Self::run) (lag bound,
    /// read-your-writes token, fallback to the primary), and so does getting the connection:
    /// while there is no usable member or no connection can be opened, `get` waits and tries
    /// again until the deadline — nothing of yours has run. **What you do with the connection is
    /// not retried**: if its member fails over while you hold it, your statements fail with the
    /// server's or the connection's error (a write on a demoted primary with `25006`). On the
    /// primary, a connection for any intent but [`Intent::Write`] is read-only
    /// (`default_transaction_read_only`); do not change that setting on it.
    ///
    /// ```no_run
    /// # async fn demo(client: pgha_client::Client) -> pgha_client::Result<()> {
    /// use pgha_client::Intent;
    /// let conn = client.get(Intent::Write).await?;
    /// conn.execute("SELECT pg_advisory_lock(42)", &[]).await?;
    /// // … work that must hold the lock on this session …
    /// conn.execute("SELECT pg_advisory_unlock(42)", &[]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn get(self) -> Result<Connection> {
        let (_, busy) = self
            .execute(OpKind::Read, async |_: &mut Connection, _: &AtomicU8| Ok(()))
            .await?;
        busy.detach()
            .ok_or_else(|| Error::new(Kind::Connect).with_message("no connection"))
    }

    /// Runs `f` with a connection chosen by the intent; statements autocommit.
    ///
    /// Failures where nothing ran (no connection, `25006` on a node that just became a
    /// standby…) are retried until the deadline. Reads are always safe to retry. A write whose
    /// session was lost part-way may have committed: it fails with
    /// [`Error::is_outcome_unknown`] unless declared [`idempotent`](Self::idempotent) — use
    /// [`transaction`](Self::transaction) for writes that should be replayed safely. An
    /// idempotent write is run again instead, and should no later attempt succeed, the error is
    /// outcome unknown too (the cause that ended the retries as its source).
    pub async fn run<T, F>(self, f: F) -> Result<T>
    where
        F: AsyncFnMut(&Connection) -> Result<T>,
    {
        self.run_on(f).await.map(|(v, _)| v)
    }

    /// Like [`run`](Self::run), and returns the name of the member whose answer it is (the one
    /// the last, successful attempt ran on) — for logs, metrics and investigations.
    ///
    /// ```no_run
    /// # async fn demo(client: pgha_client::Client) -> pgha_client::Result<()> {
    /// use pgha_client::Intent;
    /// let (n, member): (i64, String) = client
    ///     .op(Intent::Standby)
    ///     .run_with_member(async |conn| Ok(conn.query_one("SELECT count(*) FROM items", &[]).await?.get(0)))
    ///     .await?;
    /// println!("{n} items, read on {member}");
    /// # Ok(()) }
    /// ```
    pub async fn run_with_member<T, F>(self, f: F) -> Result<(T, String)>
    where
        F: AsyncFnMut(&Connection) -> Result<T>,
    {
        let (value, served) = self.run_on(f).await?;
        Ok((value, served.address.name.clone()))
    }

    /// `run`, and the member whose answer it is.
    async fn run_on<T, F>(self, mut f: F) -> Result<(T, Arc<MemberHandle>)>
    where
        F: AsyncFnMut(&Connection) -> Result<T>,
    {
        let kind = self.op_kind(OpKind::Write {
            idempotent: self.idempotent,
        });
        let (value, busy) = self
            .execute(kind, async move |conn: &mut Connection, _phase: &AtomicU8| {
                f(conn).await
            })
            .await?;
        Ok((value, busy.release(false)))
    }

    /// Like [`transaction`](Self::transaction), and returns the name of the member it committed
    /// on (see [`run_with_member`](Self::run_with_member)).
    pub async fn transaction_with_member<T, F>(self, f: F) -> Result<(T, String)>
    where
        F: AsyncFnMut(&Transaction<'_>) -> Result<T>,
    {
        let ((value, _), served) = self.transaction_inner(f, false).await?;
        Ok((value, served.address.name.clone()))
    }

    /// How long the operation may take: its own deadline, else the client's.
    fn budget(&self) -> Duration {
        self.deadline.unwrap_or(self.client.inner.settings.retry.deadline)
    }

    /// `write` for [`Intent::Write`], [`OpKind::Read`] for every other intent.
    fn op_kind(&self, write: OpKind) -> OpKind {
        if self.intent.is_write() {
            write
        } else {
            OpKind::Read
        }
    }

    /// Like [`run`](Self::run) on the primary, and returns a [`WalToken`] taken right after
    /// the statements committed, for read-your-writes reads elsewhere ([`WalToken::UNKNOWN`] if
    /// the write committed but no position could be read before the deadline).
    pub async fn run_with_token<T, F>(self, mut f: F) -> Result<(T, WalToken)>
    where
        F: AsyncFnMut(&Connection) -> Result<T>,
    {
        let op = Op {
            intent: Intent::Write,
            ..self
        };
        let kind = OpKind::Write {
            idempotent: op.idempotent,
        };
        let started = Instant::now();
        let ((value, token), busy) = op
            .execute(kind, async move |conn: &mut Connection, _phase: &AtomicU8| {
                let value = f(conn).await?;
                Ok((value, wal_token(conn).await.ok()))
            })
            .await?;
        busy.release(false);
        Ok((value, op.token_or_fetch(token, started).await))
    }

    /// Runs `f` inside a transaction (BEGIN … COMMIT) on a member chosen by the intent
    /// (`Intent::Write` for writes; a read intent gives a consistent multi-statement read,
    /// possibly on a standby). Any failure before
    /// COMMIT is sent — connection lost, node demoted, serialization failure, deadlock — rolls
    /// the transaction back, and the whole closure is run again (on the new primary if there
    /// is one) until the deadline. A failure after COMMIT was sent is
    /// [outcome unknown](Error::is_outcome_unknown) unless the operation is idempotent; an
    /// idempotent one is run again, and is outcome unknown if no later attempt succeeds.
    pub async fn transaction<T, F>(self, f: F) -> Result<T>
    where
        F: AsyncFnMut(&Transaction<'_>) -> Result<T>,
    {
        self.transaction_inner(f, false).await.map(|((v, _), _)| v)
    }

    /// [`transaction`](Self::transaction) on the primary, returning a [`WalToken`] taken
    /// after COMMIT ([`WalToken::UNKNOWN`] if no position could be read before the deadline).
    pub async fn transaction_with_token<T, F>(self, f: F) -> Result<(T, WalToken)>
    where
        F: AsyncFnMut(&Transaction<'_>) -> Result<T>,
    {
        let op = Op {
            intent: Intent::Write,
            ..self
        };
        let again = op.clone();
        let started = Instant::now();
        let ((value, token), _) = op.transaction_inner(f, true).await?;
        Ok((value, again.token_or_fetch(token, started).await))
    }

    #[allow(clippy::type_complexity)]
    async fn transaction_inner<T, F>(
        self,
        mut f: F,
        with_token: bool,
    ) -> Result<((T, Option<WalToken>), Arc<MemberHandle>)>
    where
        F: AsyncFnMut(&Transaction<'_>) -> Result<T>,
    {
        let op = self;
        let kind = op.op_kind(OpKind::Transaction {
            idempotent: op.idempotent,
        });
        let read_only = !op.intent.is_write();
        let (isolation, deferrable) = (op.isolation, op.deferrable);
        let (value, busy) = op
            .execute(kind, async move |conn: &mut Connection, phase: &AtomicU8| {
                let mut begin = conn.build_transaction().read_only(read_only).deferrable(deferrable);
                if let Some(level) = isolation {
                    begin = begin.isolation_level(level);
                }
                let tx = begin.start().await?;
                let value = f(&tx).await?;
                phase.store(PHASE_COMMIT, Ordering::SeqCst);
                tx.commit().await?;
                let token = if with_token { wal_token(conn).await.ok() } else { None };
                Ok((value, token))
            })
            .await?;
        Ok((value, busy.release(false)))
    }

    /// The token read after the commit, or — if that query failed after a successful commit —
    /// one read from the primary now (any later position is also a valid token), within what is
    /// left of the operation's deadline. The write committed: if no position can be read,
    /// [`WalToken::UNKNOWN`] (reads carrying it go to the primary), never an error that would
    /// invite the caller to write again.
    async fn token_or_fetch(&self, token: Option<WalToken>, started: Instant) -> WalToken {
        if let Some(t) = token {
            return t;
        }
        let left = self.budget().saturating_sub(started.elapsed());
        if left.is_zero() {
            return WalToken::UNKNOWN;
        }
        match self
            .client
            .op(Intent::Primary)
            .deadline(left)
            .run(async |conn| wal_token(conn).await)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "the write committed but its position could not be read: token unknown");
                WalToken::UNKNOWN
            }
        }
    }

    /// The retry loop shared by `run`, `transaction` and `get`, in the operation's span. Returns
    /// the connection of the successful attempt, for the caller to release (or hand out).
    async fn execute<T, F>(&self, kind: OpKind, attempt: F) -> Result<(T, Busy)>
    where
        F: AsyncFnMut(&mut Connection, &AtomicU8) -> Result<T>,
    {
        let inner = &self.client.inner;
        let started = Instant::now();
        bump(&inner.counters.operations);
        if self.intent.allows_standby() {
            bump(&inner.counters.standby_operations);
        }
        // OpenTelemetry's database client conventions; one `pgha.attempt` span per attempt inside.
        let span = tracing::info_span!(
            "pgha.op",
            otel.kind = "client",
            db.system.name = "postgresql",
            db.namespace = %inner.settings.dbname,
            pgha.intent = self.intent.label(),
            pgha.attempts = tracing::field::Empty,
            pgha.member = tracing::field::Empty,
            pgha.outcome = tracing::field::Empty,
        );
        let mut attempts: u32 = 0;
        let mut in_doubt: Option<String> = None;
        // Instrumenting moves the operation's whole state (kilobytes) into the span's wrapper:
        // only when the span is recorded. The loop's future is awaited where it is made.
        let result = if span.is_disabled() {
            self.retry_loop(kind, attempt, &mut attempts, &mut in_doubt, started)
                .await
        } else {
            self.retry_loop(kind, attempt, &mut attempts, &mut in_doubt, started)
                .instrument(span.clone())
                .await
        };
        // An idempotent operation retries an attempt that may have committed; if no later
        // attempt succeeds, the caller must still learn that the write may have happened.
        let result = result.map_err(|e| match in_doubt {
            Some(member) if !e.is_outcome_unknown() => {
                bump(&inner.counters.outcome_unknown);
                Error::new(Kind::OutcomeUnknown)
                    .with_message(format!(
                        "an attempt on {member} may have committed before its session was lost, \
                         and no retry succeeded"
                    ))
                    .with_member(member)
                    .with_source(e)
            }
            _ => e,
        });
        let (outcome, member) = match &result {
            Ok((_, busy)) => {
                telemetry::succeeded(&busy.handle().instruments, self.intent, started);
                ("ok", Some(busy.handle().address.name.as_str()))
            }
            Err(e) => {
                let (outcome, member) = (e.kind().label(), e.member());
                telemetry::operation(self.intent, outcome, member, started);
                (outcome, member)
            }
        };
        span.record("pgha.attempts", attempts);
        span.record("pgha.outcome", outcome);
        if let Some(member) = member {
            span.record("pgha.member", member);
        }
        if let Err(e) = &result {
            bump(&inner.counters.errors_surfaced);
            debug!(error = %e, attempts, "operation failed");
        }
        result
    }

    async fn retry_loop<T, F>(
        &self,
        kind: OpKind,
        mut attempt: F,
        attempts: &mut u32,
        in_doubt: &mut Option<String>,
        started: Instant,
    ) -> Result<(T, Busy)>
    where
        F: AsyncFnMut(&mut Connection, &AtomicU8) -> Result<T>,
    {
        let inner = &self.client.inner;
        let settings = &inner.settings;
        let deadline = crate::time::after(started, self.budget());
        let mut rx = inner.snapshots.clone();
        let mut avoid: Option<String> = None;
        let mut last_error: Option<Error> = None;
        let mut force_primary = false;
        {
            loop {
                let now = Instant::now();
                if now >= deadline {
                    let mut e = Error::timeout("the operation", deadline - started);
                    if let Some(last) = last_error.take() {
                        e = e.with_source(last);
                    }
                    return Err(e);
                }
                let snapshot = rx.borrow_and_update().clone();
                if snapshot.closed {
                    return Err(Error::new(Kind::Shutdown));
                }
                if snapshot.dormant {
                    // An idle client stopped probing: nothing is routed on its old view.
                    self.client.request_refresh("an operation on an idle client");
                    Box::pin(wait_for_change(&mut rx, deadline)).await;
                    continue;
                }
                let intent = if force_primary { Intent::Primary } else { self.intent };
                if snapshot.standbys_unprobed && intent.allows_standby() {
                    // Only the primary has been probed lately: no standby's staleness is known.
                    self.client.request_refresh("a read that may use a standby");
                    Box::pin(wait_for_change(&mut rx, deadline)).await;
                    continue;
                }
                let selection = {
                    let request = Request {
                        intent,
                        bound: self.bound.unwrap_or(settings.lag_bound),
                        token: self.token,
                        fallback_to_primary: settings.fallback_to_primary,
                        balance: settings.balance,
                        avoid: avoid.as_deref(),
                    };
                    let load = |i: usize| {
                        snapshot
                            .handles
                            .get(i)
                            .and_then(Option::as_ref)
                            .map_or(usize::MAX, |h| h.counters.in_flight.load(Ordering::Relaxed))
                    };
                    let turn = inner.turn.fetch_add(1, Ordering::Relaxed);
                    select(&snapshot.topology, &request, now, &load, turn, &mut rand::rng())
                };
                let (index, verify_token) = match selection {
                    Selection::Member {
                        index,
                        fallback,
                        verify_token,
                    } => {
                        if fallback.is_some() {
                            bump(&inner.counters.fallbacks);
                            telemetry::fallback(self.intent);
                            let total = inner.counters.fallbacks.load(Ordering::Relaxed);
                            if inner.fallback_log.allow(Instant::now()) {
                                info!(
                                    intent = ?self.intent,
                                    fallbacks_so_far = total,
                                    "no standby under the lag bound: reading from the primary"
                                );
                            } else {
                                debug!(intent = ?self.intent, "no standby under the lag bound: reading from the primary");
                            }
                        }
                        (index, verify_token)
                    }
                    Selection::Wait(why) => {
                        if snapshot.topology.generation > 0 {
                            self.client.request_refresh(why);
                            last_error =
                                Some(Error::new(Kind::NoMember).with_message(waiting_because(why, &snapshot.topology)));
                        }
                        Box::pin(wait_for_change(&mut rx, deadline)).await;
                        continue;
                    }
                    Selection::NoMember(why) => return Err(Error::new(Kind::NoMember).with_message(why)),
                    Selection::WriteLost { timeline, lsn, switch } => {
                        return Err(Error::new(Kind::WriteLost).with_message(format!(
                            "the write of token pgha1:{timeline}:{lsn} was lost: timeline {timeline} ended at {switch} \
                             in a failover (asynchronous replication)"
                        )))
                    }
                };
                let Some(handle) = snapshot.handles.get(index).cloned().flatten() else {
                    Box::pin(wait_for_change(&mut rx, deadline)).await;
                    continue;
                };
                *attempts += 1;
                telemetry::attempt(&handle.instruments, self.intent);
                let phase = AtomicU8::new(PHASE_CHECKOUT);
                let on_primary = snapshot.topology.primary == Some(index);
                let token_check = match self.token {
                    Some(token) if verify_token => TokenCheck::Replayed(token),
                    Some(token) if on_primary && !token.is_unknown() => {
                        let member = &snapshot.topology.members[index];
                        match member.timeline {
                            Some(timeline) if member.synchronous => TokenCheck::Confirmed(token, timeline),
                            _ => TokenCheck::None,
                        }
                    }
                    _ => TokenCheck::None,
                };
                let span = tracing::info_span!(
                    "pgha.attempt",
                    server.address = %handle.address.host,
                    server.port = handle.address.port,
                    pgha.member = %handle.address.name,
                    pgha.attempt = *attempts,
                    error.type = tracing::field::Empty,
                );
                // As in `execute`: the attempt's future is instrumented only when the span is on.
                let outcome = if span.is_disabled() {
                    self.attempt_on(&handle, deadline, token_check, &phase, on_primary, &mut attempt)
                        .await
                } else {
                    self.attempt_on(&handle, deadline, token_check, &phase, on_primary, &mut attempt)
                        .instrument(span.clone())
                        .await
                };
                if let Err(e) = &outcome {
                    span.record("error.type", e.kind().label());
                }
                let error = match outcome {
                    Ok(Some(done)) => return Ok(done),
                    Ok(None) => {
                        debug!(
                            member = %handle.address.name,
                            "standby did not replay the token in time: reading from the primary"
                        );
                        force_primary = true;
                        continue;
                    }
                    Err(e) => e.with_member(handle.address.name.clone()),
                };
                let member = &handle.address.name;
                let phase = phase_of(&phase);
                match classify(&error, phase, kind) {
                    Verdict::Fail => return Err(error),
                    Verdict::OutcomeUnknown => {
                        bump(&inner.counters.outcome_unknown);
                        return Err(error.into_kind(Kind::OutcomeUnknown));
                    }
                    Verdict::Retry { rediscover } => {
                        if classify(&error, phase, kind.without_idempotence()) == Verdict::OutcomeUnknown {
                            *in_doubt = Some(member.clone());
                        }
                        // Retries that wait for a fresh topology are paced by the refresh rate;
                        // the budget caps the immediate ones (serialization failures, deadlocks,
                        // recovery conflicts), which could otherwise storm.
                        if !rediscover && !inner.budget.try_take(Instant::now()) {
                            warn!(member, error = %error, "retry budget exhausted");
                            return Err(Error::new(Kind::BudgetExhausted).with_source(error));
                        }
                        bump(&inner.counters.retries);
                        telemetry::retry(retry_reason(&error));
                        debug!(member, attempt = attempts, error = %error, "retrying");
                        let used = snapshot.topology.generation;
                        if rediscover {
                            self.client.request_refresh("operation failed on a member");
                        }
                        avoid = Some(member.clone());
                        last_error = Some(error);
                        let pause = backoff(&settings.retry, attempts.saturating_sub(1), &mut rand::rng());
                        let least = if rediscover {
                            settings.min_refresh_interval.saturating_mul(2)
                        } else {
                            Duration::ZERO
                        };
                        let until = deadline.min(crate::time::after(Instant::now(), pause.max(least)));
                        Box::pin(wait_for_generation(&mut rx, used, rediscover, pause, until)).await;
                    }
                }
            }
        }
    }

    /// One attempt on one member: its value and its connection, still checked out. `Ok(None)`
    /// means a read-your-writes check did not pass in time (try the primary).
    async fn attempt_on<T, F>(
        &self,
        handle: &Arc<MemberHandle>,
        deadline: Instant,
        token_check: TokenCheck,
        phase: &AtomicU8,
        on_primary: bool,
        attempt: &mut F,
    ) -> Result<Option<(T, Busy)>>
    where
        F: AsyncFnMut(&mut Connection, &AtomicU8) -> Result<T>,
    {
        let inner = &self.client.inner;
        let _in_flight = handle.track();
        let needs_primary = !self.intent.allows_standby();
        let checkout = tokio::time::timeout_at(deadline.into(), handle.pool.get()).await;
        let mut busy = match checkout {
            Ok(Ok(conn)) => crate::pool::Busy::new(conn, handle),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                return Err(Error::new(Kind::Timeout).with_message("the deadline passed while waiting for a connection"))
            }
        };
        let Some(conn) = busy.conn() else {
            return Err(Error::new(Kind::Connect).with_message("no connection"));
        };
        // The slow paths below watch for the member being lost on a receiver of their own
        // (cloned when needed: most attempts never need one).
        let name = handle.address.name.as_str();
        let read_only = !self.intent.is_write();
        if on_primary && handle.session_needs_switch(conn, read_only) {
            // Every intent but Write runs read-only on the primary too (standbys are read-only
            // by nature), so a write in a read fails at once with 25006 instead of committing
            // where a replay could duplicate it. The session default is switched only when this
            // connection last served the other kind, before anything of the caller's is sent,
            // under the same deadline and member watch as the attempt (a frozen primary still
            // acknowledges at the TCP level).
            let switched = Box::pin(watched(
                handle.set_session_read_only(conn, read_only),
                &mut inner.snapshots.clone(),
                name,
                needs_primary,
                deadline,
            ))
            .await;
            match switched {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    busy.release(true);
                    return Err(e);
                }
                // `busy` is dropped unreleased: cancelled on the server, connection closed.
                Err(aborted) => return Err(aborted.before_body("preparing the session")),
            }
        }
        // Nothing of the caller's has been sent until the token checks pass: a session lost
        // during them is retried like one lost while getting the connection.
        match token_check {
            TokenCheck::None => {}
            TokenCheck::Replayed(token) => {
                // Under the same deadline and member watch as the attempt itself: a frozen or
                // partitioned standby must not hold the read.
                let wait = inner.settings.read_your_writes_wait;
                let check = replayed(
                    conn,
                    token.lsn,
                    wait.min(deadline.saturating_duration_since(Instant::now())),
                );
                let mut rx = inner.snapshots.clone();
                match Box::pin(watched(check, &mut rx, name, needs_primary, deadline)).await {
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) => {
                        busy.release(false);
                        return Ok(None);
                    }
                    Ok(Err(e)) => {
                        busy.release(discard_after(&e));
                        return Err(e);
                    }
                    // `busy` is dropped unreleased: the check is cancelled on the server.
                    Err(aborted) => return Err(aborted.before_body("checking the read-your-writes token")),
                }
            }
            TokenCheck::Confirmed(token, timeline) if !handle.confirmed_up_to(timeline, token.lsn) => {
                // Until then the primary may hide commits a standby already showed (and so the
                // token covers). Watched as the primary: the wait ends when it is deposed.
                let mut rx = inner.snapshots.clone();
                match Box::pin(watched(confirm_synchronously(conn), &mut rx, name, true, deadline)).await {
                    Ok(Ok(Some(at))) => handle.record_confirmed(timeline, at),
                    Ok(Ok(None)) => {
                        busy.release(false);
                        // Demoted since the last refresh: retried once the topology says so.
                        return Err(Error::new(Kind::Connect)
                            .with_message("the primary is in recovery: it was demoted since the last refresh"));
                    }
                    Ok(Err(e)) => {
                        // Rare enough that the connection is not worth keeping.
                        busy.release(true);
                        return Err(e);
                    }
                    // `busy` is dropped unreleased: the wait is cancelled on the server.
                    Err(aborted) => {
                        return Err(aborted.before_body("waiting for the synchronous standbys to confirm the token"))
                    }
                }
            }
            TokenCheck::Confirmed(..) => {}
        }
        phase.store(PHASE_BODY, Ordering::SeqCst);
        // Most attempts finish quickly: only the slow ones subscribe to topology changes (which
        // costs a registration on the snapshot channel) to be abandoned when their member is lost.
        let outcome = {
            let mut work = std::pin::pin!(attempt(conn, phase));
            match tokio::time::timeout(FAST_ATTEMPT, &mut work).await {
                Ok(r) => Ok(r),
                Err(_) => {
                    let mut rx = inner.snapshots.clone();
                    Box::pin(watched(&mut work, &mut rx, name, needs_primary, deadline)).await
                }
            }
        };
        match outcome {
            Ok(Ok(value)) => Ok(Some((value, busy))),
            Ok(Err(e)) => {
                busy.release(discard_after(&e));
                Err(e)
            }
            // The attempt was abandoned mid-flight: `busy` is dropped unreleased, so the statement
            // is cancelled on the server and the connection closed.
            Err(aborted) => Err(match aborted {
                Aborted::MemberLost => Error::new(Kind::OutcomeUnknown)
                    .with_message("the member stopped being usable while the operation ran"),
                Aborted::Deadline => {
                    Error::new(Kind::OutcomeUnknown).with_message("the deadline passed while the operation ran")
                }
                Aborted::Shutdown => Error::new(Kind::Shutdown),
            }),
        }
    }
}

/// Why an operation waits, with what each unusable member's last probe said (too many
/// connections, refused, TLS…), so that a deadline error names the real cause.
fn waiting_because(why: &str, topology: &Topology) -> String {
    let reasons: Vec<String> = topology
        .members
        .iter()
        .filter_map(|m| match &m.status {
            crate::topology::MemberStatus::Unusable(reason) => Some(format!("{}: {reason}", m.name)),
            _ => None,
        })
        .take(5)
        .collect();
    if reasons.is_empty() {
        why.to_owned()
    } else {
        format!("{why} ({})", reasons.join("; "))
    }
}

/// Whether a connection must not go back to the pool after `e`: its session is gone, or the node
/// is read-only now (a demoted primary).
fn discard_after(e: &Error) -> bool {
    e.as_postgres().is_some_and(crate::failure::is_connection_error)
        || e.code() == Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION)
}

/// Runs `work` until it finishes, `member` can no longer serve the attempt (see
/// [`member_lost`]) or the deadline passes — whichever comes first.
async fn watched<T>(
    work: impl std::future::Future<Output = T>,
    rx: &mut watch::Receiver<Arc<Snapshot>>,
    member: &str,
    needs_primary: bool,
    deadline: Instant,
) -> std::result::Result<T, Aborted> {
    tokio::select! {
        r = work => Ok(r),
        a = member_lost(rx, member, needs_primary) => Err(a),
        () = tokio::time::sleep_until(deadline.into()) => Err(Aborted::Deadline),
    }
}

/// Resolves when `member` can no longer serve the attempt: another member became the verified
/// primary (for primary intents), the member became unusable (for reads), or the client shut
/// down. Never resolves otherwise.
async fn member_lost(rx: &mut watch::Receiver<Arc<Snapshot>>, member: &str, needs_primary: bool) -> Aborted {
    loop {
        if rx.changed().await.is_err() {
            return Aborted::Shutdown;
        }
        let snapshot = rx.borrow_and_update().clone();
        if snapshot.closed {
            return Aborted::Shutdown;
        }
        let topology = &snapshot.topology;
        let lost = if needs_primary {
            topology.primary().is_some_and(|p| p.name != member)
        } else {
            topology
                .member(member)
                .is_none_or(|m| !(m.is_standby() || m.is_primary()))
        };
        if lost {
            return Aborted::MemberLost;
        }
    }
}

async fn wait_for_change(rx: &mut watch::Receiver<Arc<Snapshot>>, deadline: Instant) {
    let _ = tokio::time::timeout_at(deadline.into(), rx.changed()).await;
}

/// After a failure: wait for a snapshot newer than `used` if a refresh was requested (but at
/// least `min_pause`), else just the backoff.
async fn wait_for_generation(
    rx: &mut watch::Receiver<Arc<Snapshot>>,
    used: u64,
    rediscover: bool,
    min_pause: Duration,
    until: Instant,
) {
    let pause_end = crate::time::tokio_after(tokio::time::Instant::now(), min_pause);
    if rediscover {
        let _ = tokio::time::timeout_at(until.into(), rx.wait_for(|s| s.closed || s.topology.generation > used)).await;
    }
    tokio::time::sleep_until(pause_end.min(until.into())).await;
}

/// What an attempt checks of its member before it runs the caller's statements, for an
/// operation that carries a token.
#[derive(Debug, Clone, Copy)]
enum TokenCheck {
    /// Nothing: no token, or a member known to have it.
    None,
    /// A standby last seen below the token: it must have replayed it.
    Replayed(WalToken),
    /// A synchronous primary on the timeline given: its synchronous standbys must have
    /// confirmed the token's position.
    Confirmed(WalToken, u64),
}

/// On a synchronous primary, a commit is visible to other sessions only once its synchronous
/// standbys have confirmed it, while a standby shows it as soon as it replayed it: with a
/// synchronous standby cut off, a read on the primary can see less than a read on another
/// standby saw before it. A token reached on the primary therefore means: every commit up to
/// it has been released.
///
/// This writes a transactional logical message (no table, no lock; an unprivileged role in a
/// read-only session may) and commits it synchronously: the commit returns once the synchronous
/// standbys, as PostgreSQL counts them (priority or quorum), have confirmed it, which releases
/// every commit waiting at or below it. It waits as the session's own default would
/// (`remote_apply` if that is the default, `on` otherwise: a `remote_apply` wait covers the
/// flush and write waits too, a flush wait covers `on` and `remote_write`). One implicit
/// transaction, so an error leaves the session idle; read committed, so a serializable
/// deferrable session default does not wait for a safe snapshot; no statement timeout, since a
/// wait cut short by a cancel still commits and would be taken for a confirmation (the
/// operation's deadline bounds it on this side). Returns the message's position, below which
/// every commit is released (a woken commit becomes visible to new snapshots moments after its
/// release; PostgreSQL offers nothing stricter), or `None` if the member is in recovery.
/// Logical decoding consumers that ask for messages see one with the prefix `pgha`.
async fn confirm_synchronously(conn: &Connection) -> Result<Option<Lsn>> {
    const SQL: &str = "SET LOCAL transaction_isolation = 'read committed'; \
        SET LOCAL statement_timeout = 0; \
        SELECT pg_catalog.set_config('synchronous_commit', \
            CASE pg_catalog.current_setting('synchronous_commit') WHEN 'remote_apply' THEN 'remote_apply' ELSE 'on' END, \
            true); \
        SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL \
            ELSE pg_catalog.pg_logical_emit_message(true, 'pgha', '')::text END";
    let messages = conn.simple_query(SQL).await?;
    // The last row is the message's position (the one before is set_config's).
    let at = messages.iter().rev().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0)),
        _ => None,
    });
    match at {
        Some(Some(s)) => s
            .parse::<Lsn>()
            .map(Some)
            .map_err(|e| Error::new(Kind::Db).with_message(format!("pg_logical_emit_message returned {s:?}: {e}"))),
        Some(None) => Ok(None),
        None => Err(Error::new(Kind::Db).with_message("pg_logical_emit_message returned no row")),
    }
}

/// Polls `pg_last_wal_replay_lsn()` on a standby session until it reaches `lsn` or `wait`
/// passes.
async fn replayed(conn: &Connection, lsn: Lsn, wait: Duration) -> Result<bool> {
    let until = crate::time::after(Instant::now(), wait);
    let target = lsn.to_string();
    loop {
        let row = conn
            .query_one(
                "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, true)",
                &[&target],
            )
            .await?;
        if row.try_get::<_, bool>(0)? {
            return Ok(true);
        }
        if Instant::now() >= until {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The position and timeline of the primary's WAL, for a token. `pg_current_wal_insert_lsn()`,
/// not the write pointer: with `synchronous_commit = off` a commit is acknowledged before its
/// record is written, so the write pointer can lie below it.
async fn wal_token(conn: &Connection) -> Result<WalToken> {
    let row = conn
        .query_one(
            "SELECT pg_current_wal_insert_lsn()::text, \
             ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8",
            &[],
        )
        .await?;
    let lsn: String = row.try_get(0)?;
    let timeline: i64 = row.try_get(1)?;
    Ok(WalToken {
        timeline: u64::try_from(timeline).unwrap_or(0),
        lsn: lsn
            .parse()
            .map_err(|e| Error::new(Kind::Db).with_message(format!("unexpected LSN from the server: {e}")))?,
    })
}
