//! [`Client`]: routes operations by intent and retries them across switchover and failover.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, Instrument};

use crate::config::{ClientBuilder, Settings};
use crate::error::{Error, Kind, Result};
use crate::events::TopologyEvent;
use crate::health::Health;
use crate::intent::Intent;
use crate::metrics::{Counters, MemberMetrics, Metrics};
use crate::op::Op;
use crate::retry::Budget;
use crate::token::WalToken;
use crate::topology::worker::{Command, Worker};
use crate::topology::{Snapshot, Topology};

/// A pooled connection, as deadpool-postgres hands it out (derefs to [`tokio_postgres::Client`]).
pub type Connection = deadpool_postgres::Client;

/// A transaction on a pooled connection (derefs to [`tokio_postgres::Transaction`]).
pub type Transaction<'a> = deadpool_postgres::Transaction<'a>;

/// A handle to a Patroni cluster: cheap to clone, `Send + Sync`, shared by every task.
///
/// One background task owns the topology (Patroni polling, SQL probes, pools); every operation
/// reads an immutable snapshot of it. The task stops when [`shutdown`](Self::shutdown) is called
/// or when the last clone of the client is dropped.
///
/// # Cancellation
/// Dropping an operation's future part-way is safe for the client (in-flight counters and pools
/// stay consistent; the running statement is cancelled on the server and its connection closed),
/// but like any database call it leaves the operation's outcome unknown to you: a transaction
/// dropped before its COMMIT was sent is rolled back; one dropped during COMMIT may or may not
/// have committed.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) settings: Settings,
    pub(crate) snapshots: watch::Receiver<Arc<Snapshot>>,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<TopologyEvent>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) budget: Budget,
    pub(crate) turn: AtomicUsize,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// At most one info-level fallback event per second (each one is also counted and logged
    /// at debug level).
    pub(crate) fallback_log: crate::retry::Every,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snapshot = self.inner.snapshots.borrow();
        f.debug_struct("Client")
            .field("settings", &self.inner.settings)
            .field("generation", &snapshot.topology.generation)
            .field("primary", &snapshot.topology.primary().map(|m| &m.name))
            .finish()
    }
}

impl Client {
    /// A builder for a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    pub(crate) fn start(settings: Settings) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::config("pgha_client::Client must be built inside a Tokio runtime"))?;
        let now = Instant::now();
        let (publisher, snapshots) = watch::channel(Arc::new(Snapshot {
            dormant: false,
            standbys_unprobed: false,
            topology: Arc::new(Topology::empty(now)),
            handles: Vec::new(),
            closed: false,
        }));
        let (events, _) = broadcast::channel(256);
        let (commands, receiver) = mpsc::channel(64);
        let counters = Arc::new(Counters::default());
        crate::telemetry::describe();
        let worker = Worker::new(settings.clone(), publisher, events.clone(), counters.clone())?;
        let span = tracing::info_span!("pgha.topology");
        let handle = runtime.spawn(worker.run(receiver).instrument(span));
        Ok(Self {
            inner: Arc::new(Inner {
                budget: Budget::new(&settings.retry, now),
                settings,
                snapshots,
                commands,
                events,
                counters,
                turn: AtomicUsize::new(0),
                worker: Mutex::new(Some(handle)),
                fallback_log: crate::retry::Every::new(Duration::from_secs(1), now),
            }),
        })
    }

    pub(crate) async fn wait_for_first_refresh(&self) -> Result<()> {
        let mut rx = self.inner.snapshots.clone();
        let limit = self
            .inner
            .settings
            .connect_timeout
            .saturating_add(crate::topology::probe::round_bound(&self.inner.settings));
        // The channel's read guard ends with this block: held across the await below, it would
        // make `connect()`'s future not `Send`.
        let snapshot = {
            let waited = tokio::time::timeout(limit, rx.wait_for(|s| s.topology.generation > 0 || s.closed)).await;
            match waited {
                Ok(Ok(s)) if !s.closed => s.clone(),
                Ok(_) => return Err(Error::new(Kind::Shutdown)),
                Err(_) => return Err(Error::timeout("the first topology refresh", limit)),
            }
        };
        if snapshot.topology.members.is_empty() {
            let mut message = "neither Patroni nor any seed host answered: no member known".to_owned();
            for note in &snapshot.topology.notes {
                message.push_str("; ");
                message.push_str(note);
            }
            return Err(Error::new(Kind::NoMember).with_message(message));
        }
        self.refuse_unusable_configuration(&snapshot).await
    }

    /// After the first refresh found no usable member: connects once to each member to learn
    /// why, and fails with the server's own error (a typed, non-retryable connect error) when a
    /// member refuses the configuration for good — wrong password or role, missing database,
    /// certificate — instead of letting every operation retry until its deadline.
    async fn refuse_unusable_configuration(&self, snapshot: &Snapshot) -> Result<()> {
        let topology = &snapshot.topology;
        if topology.primary().is_some() || topology.standbys().next().is_some() {
            return Ok(());
        }
        let timeout = self.inner.settings.connect_timeout;
        for handle in snapshot.handles.iter().flatten() {
            let error = match tokio::time::timeout(timeout, handle.pool.get()).await {
                Ok(Err(e)) => Error::from(e).with_member(handle.address.name.clone()),
                Ok(Ok(_)) | Err(_) => continue,
            };
            if crate::failure::is_refused_for_good(error.code(), &error) {
                return Err(error);
            }
            debug!(error = %error, "no usable member after the first refresh");
        }
        Ok(())
    }

    /// The current topology snapshot (members, roles, timelines, staleness). A client idle for
    /// [`idle_timeout`](crate::ClientBuilder::idle_timeout) keeps its last snapshot until its next
    /// operation (or [`wait_for_topology`](Self::wait_for_topology)) refreshes it.
    pub fn topology(&self) -> Arc<Topology> {
        self.inner.snapshots.borrow().topology.clone()
    }

    /// Waits until a snapshot satisfies `condition` or `timeout` passes; returns the snapshot.
    pub async fn wait_for_topology(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&Topology) -> bool,
    ) -> Result<Arc<Topology>> {
        let mut rx = self.inner.snapshots.clone();
        // A waiter keeps the client refreshing (an idle client would stop), until it returns.
        let _awake = Waiter::new(&self.inner.counters);
        if rx.borrow().dormant || rx.borrow().standbys_unprobed {
            self.request_refresh("waiting for the topology of an idle client");
        }
        let found = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| s.closed || (!s.dormant && !s.standbys_unprobed && condition(&s.topology))),
        )
        .await;
        match found {
            Ok(Ok(s)) if !s.closed => Ok(s.topology.clone()),
            Ok(_) => Err(Error::new(Kind::Shutdown)),
            Err(_) => Err(Error::timeout("waiting for the topology", timeout)),
        }
    }

    /// Waits until every standby currently usable has replayed `token` (as seen by the
    /// topology probes), for example after a schema migration, so that lag-bounded reads
    /// everywhere see it. Standbys that are down or excluded are not waited for.
    pub async fn wait_for_standbys(&self, token: WalToken, timeout: Duration) -> Result<()> {
        self.wait_for_topology(timeout, |t| {
            t.standbys().all(|m| m.replay_lsn.is_some_and(|r| r >= token.lsn))
        })
        .await
        .map(drop)
    }

    /// Subscribes to topology events (leader changes, members joining and leaving, standbys
    /// excluded for lag…). A slow subscriber loses the oldest events (`RecvError::Lagged`).
    pub fn events(&self) -> broadcast::Receiver<TopologyEvent> {
        self.inner.events.subscribe()
    }

    /// The client's readiness, from its last topology snapshot: no I/O, cheap enough for every
    /// readiness probe. [`Health::is_ready`] is true once a verified primary is known.
    ///
    /// ```no_run
    /// # async fn demo(client: pgha_client::Client) {
    /// // A readiness endpoint: 200 once writes have a verified primary to go to.
    /// let status = if client.health().is_ready() { 200 } else { 503 };
    /// # let _ = status;
    /// # }
    /// ```
    pub fn health(&self) -> Health {
        let snapshot = self.inner.snapshots.borrow().clone();
        Health::of(&snapshot, &self.inner.settings.lag_bound, Instant::now())
    }

    /// A snapshot of the client's counters and of each member's load and lag.
    pub fn metrics(&self) -> Metrics {
        let snapshot = self.inner.snapshots.borrow().clone();
        let members = snapshot
            .topology
            .members
            .iter()
            .zip(&snapshot.handles)
            .map(|(m, h)| MemberMetrics {
                name: m.name.clone(),
                status: m.status.clone(),
                operations: h.as_ref().map_or(0, |h| h.counters.operations.load(Ordering::Relaxed)),
                in_flight: h.as_ref().map_or(0, |h| h.counters.in_flight.load(Ordering::Relaxed)),
                staleness_ms: m.staleness.map(|s| u64::try_from(s.as_millis()).unwrap_or(u64::MAX)),
                lag_bytes: m.lag_bytes,
                pool_generation: h.as_ref().map_or(0, |h| h.generation),
            })
            .collect();
        self.inner.counters.snapshot(members)
    }

    /// Stops the topology task and closes every pool. Operations in progress finish or fail;
    /// new ones fail with [`Error::is_shutdown`].
    pub async fn shutdown(&self) {
        let _ = self.inner.commands.send(Command::Shutdown).await;
        let handle = self.inner.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }

    /// Options for one operation: lag bound, read-your-writes token, idempotence, deadline.
    ///
    /// ```no_run
    /// # async fn demo(client: pgha_client::Client, token: pgha_client::WalToken) -> pgha_client::Result<()> {
    /// use std::time::Duration;
    /// use pgha_client::{Intent, LagBound};
    /// let n: i64 = client
    ///     .op(Intent::Standby)
    ///     .max_lag(LagBound::time(Duration::from_secs(1)))
    ///     .after(token)
    ///     .run(async |conn| Ok(conn.query_one("SELECT count(*) FROM items", &[]).await?.get(0)))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn op(&self, intent: Intent) -> Op<'_> {
        Op {
            client: self,
            intent,
            bound: None,
            token: None,
            idempotent: false,
            deadline: None,
            isolation: None,
            deferrable: false,
        }
    }

    /// A connection chosen by `intent`, held by you until dropped; what you run on it is not
    /// retried. See [`Op::get`].
    pub async fn get(&self, intent: Intent) -> Result<Connection> {
        self.op(intent).get().await
    }

    /// Runs `f` on a connection chosen by `intent`, retrying across failover (see
    /// [`Op::run`]).
    pub async fn run<T, F>(&self, intent: Intent, f: F) -> Result<T>
    where
        F: AsyncFnMut(&Connection) -> Result<T>,
    {
        self.op(intent).run(f).await
    }

    /// [`run`](Self::run) with the configured default intent (from the builder or the URL's
    /// `target_session_attrs`).
    pub async fn run_default<T, F>(&self, f: F) -> Result<T>
    where
        F: AsyncFnMut(&Connection) -> Result<T>,
    {
        self.op(self.inner.settings.default_intent).run(f).await
    }

    /// Runs `f` in a transaction on the primary, replaying the whole transaction across
    /// failover (see [`Op::transaction`]).
    pub async fn transaction<T, F>(&self, f: F) -> Result<T>
    where
        F: AsyncFnMut(&Transaction<'_>) -> Result<T>,
    {
        self.op(Intent::Write).transaction(f).await
    }

    pub(crate) fn request_refresh(&self, reason: &'static str) {
        let _ = self.inner.commands.try_send(Command::Refresh(reason));
    }
}

/// Counts a `wait_for_topology` caller while it waits.
struct Waiter<'a>(&'a crate::metrics::Counters);

impl<'a> Waiter<'a> {
    fn new(counters: &'a crate::metrics::Counters) -> Self {
        counters.waiters.fetch_add(1, Ordering::Relaxed);
        Self(counters)
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

#[allow(dead_code)]
fn _assert_impls() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    send_sync_clone::<Client>();
    fn send<T: Send>(_: &T) {}
    // Every public future can run in a spawned task.
    send(&Client::builder().connect());
    let client: Option<Client> = None;
    if let Some(c) = client {
        send(&c.get(Intent::Write));
        send(&c.wait_for_topology(Duration::from_secs(1), |_| true));
        send(&c.shutdown());
        send(&c.run(Intent::Write, async |conn| Ok(conn.execute("SELECT 1", &[]).await?)));
        send(&c.transaction(async |tx| Ok(tx.execute("SELECT 1", &[]).await?)));
        #[cfg(feature = "pgvector")]
        if let Ok(t) = crate::vector::VectorTable::new("t", 3) {
            let rows = [(1_i64, pgvector::Vector::from(vec![0.0; 3]))];
            let q = pgvector::Vector::from(vec![0.0; 3]);
            send(&t.search(&c, &q, 10, crate::vector::SearchOptions::default()));
            send(&t.copy_in(&c, &rows));
            send(&t.insert(&c, &rows));
            send(&t.ensure(&c, crate::vector::IndexKind::hnsw()));
        }
    }
}
