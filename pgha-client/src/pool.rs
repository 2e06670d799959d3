//! One deadpool-postgres pool per member, with generations: when a member stops being the
//! primary its pool is closed and replaced, so no connection opened to the old primary is
//! handed out again.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, QueueMode, Runtime};

use crate::address::Address;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::patroni::Lsn;

/// A member's pool and counters, shared by every snapshot that lists the member.
pub(crate) struct MemberHandle {
    pub(crate) address: Address,
    pub(crate) pool: Pool,
    /// Incremented each time the pool is replaced.
    pub(crate) generation: u64,
    pub(crate) counters: Arc<MemberCounters>,
    /// For CancelRequests of abandoned attempts.
    pub(crate) tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// Connections whose session default is `default_transaction_read_only = on` (they served
    /// a read on the primary last); every other connection is read-write, the server's default.
    /// Ids are never reused; connections pgha closes are forgotten (one the pool drops on a
    /// failed recycle leaves its id behind until the pool is replaced). Unused when recycling
    /// resets every session ([`Recycling::Clean`](crate::Recycling::Clean)).
    read_only_sessions: std::sync::Mutex<std::collections::HashSet<deadpool_postgres::ObjectId>>,
    /// On a synchronous primary: the timeline and position up to which the synchronous standbys
    /// have confirmed every commit, as the last confirmation (`op::confirm_synchronously`) found.
    confirmed: std::sync::Mutex<Option<(u64, Lsn)>>,
    /// This member's metric handles for the operation path (feature `metrics`).
    pub(crate) instruments: crate::telemetry::MemberInstruments,
    /// Whether every checkout finds the session at its defaults (read-write): the pool's
    /// recycling resets sessions.
    resets_sessions: bool,
}

/// Counters that survive pool replacement.
#[derive(Debug, Default)]
pub(crate) struct MemberCounters {
    pub(crate) in_flight: AtomicUsize,
    pub(crate) operations: AtomicU64,
}

impl std::fmt::Debug for MemberHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberHandle")
            .field("member", &self.address.name)
            .field("generation", &self.generation)
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl MemberHandle {
    pub(crate) fn new(
        settings: &Settings,
        tls: &tokio_postgres_rustls::MakeRustlsConnect,
        address: Address,
        generation: u64,
        counters: Arc<MemberCounters>,
    ) -> Result<Self> {
        let config = crate::tls::postgres_config(settings, &address.host, address.port, "");
        let manager = Manager::from_config(
            config,
            tls.clone(),
            ManagerConfig {
                recycling_method: settings.pool_recycling.method(),
            },
        );
        // Creating a connection is bounded by connect_timeout. Every checkout is already bounded
        // by its caller (the operation's deadline, the probe timeout), and the default recycling
        // is a flag check (`RecyclingMethod::Fast`): the wait and recycle timeouts, two timers
        // per checkout, are there only when asked for.
        // Last in, first out: the connection used last is used next, so a pool that grew under a
        // burst serves light traffic from a few hot connections (and backends) and the rest fall
        // idle and are closed after `idle_timeout`; first in, first out would rotate through all
        // of them and keep every one open.
        let pool = Pool::builder(manager)
            .max_size(settings.pool_max_size)
            .queue_mode(QueueMode::Lifo)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(settings.connect_timeout))
            .wait_timeout(settings.pool_wait_timeout)
            .recycle_timeout(settings.pool_recycle_timeout)
            .build()
            .map_err(|e| Error::config(format!("pool for {}: {e}", address.name)))?;
        Ok(Self {
            instruments: crate::telemetry::MemberInstruments::new(&address.name),
            address,
            pool,
            generation,
            counters,
            tls: tls.clone(),
            read_only_sessions: std::sync::Mutex::default(),
            confirmed: std::sync::Mutex::default(),
            resets_sessions: settings.pool_recycling.resets_sessions(),
        })
    }

    /// Whether the synchronous standbys are known to have confirmed every commit up to `lsn` on
    /// `timeline` of this (primary) member.
    pub(crate) fn confirmed_up_to(&self, timeline: u64, lsn: Lsn) -> bool {
        let confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        confirmed.is_some_and(|(tl, at)| tl == timeline && lsn <= at)
    }

    /// Records that every commit up to `lsn` on `timeline` is confirmed.
    pub(crate) fn record_confirmed(&self, timeline: u64, lsn: Lsn) {
        let mut confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        match *confirmed {
            Some((tl, at)) if tl == timeline && at >= lsn => {}
            _ => *confirmed = Some((timeline, lsn)),
        }
    }

    /// Whether `conn`'s session is not in the mode asked for (read-only when `on`).
    pub(crate) fn session_needs_switch(&self, conn: &deadpool_postgres::Object, on: bool) -> bool {
        if self.resets_sessions {
            return on;
        }
        self.sessions().contains(&deadpool_postgres::Object::id(conn)) != on
    }

    /// Makes `conn`'s session read-only (`on`) or read-write, with one statement when it is
    /// not in that mode already.
    pub(crate) async fn set_session_read_only(&self, conn: &deadpool_postgres::Object, on: bool) -> Result<()> {
        if !self.session_needs_switch(conn, on) {
            return Ok(());
        }
        let id = deadpool_postgres::Object::id(conn);
        conn.batch_execute(if on {
            "SET default_transaction_read_only = on"
        } else {
            "SET default_transaction_read_only = off"
        })
        .await?;
        if self.resets_sessions {
            // The next checkout's recycle resets it: nothing to remember.
        } else if on {
            self.sessions().insert(id);
        } else {
            self.sessions().remove(&id);
        }
        Ok(())
    }

    /// Forgets a connection that is being closed.
    fn forget(&self, conn: &deadpool_postgres::Object) {
        self.sessions().remove(&deadpool_postgres::Object::id(conn));
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<deadpool_postgres::ObjectId>> {
        self.read_only_sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks one operation in flight until the guard is dropped.
    pub(crate) fn track(self: &Arc<Self>) -> InFlight {
        self.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        self.counters.operations.fetch_add(1, Ordering::Relaxed);
        InFlight(self.counters.clone())
    }
}

/// A checked-out connection while an attempt runs on it. Unless [`release`](Self::release)d —
/// the attempt was abandoned (deadline, member lost) or its future dropped — the server is sent
/// a CancelRequest, so the statement stops and its locks go, and the connection is closed
/// instead of going back to the pool busy.
pub(crate) struct Busy {
    conn: Option<deadpool_postgres::Object>,
    handle: Arc<MemberHandle>,
}

impl Busy {
    pub(crate) fn new(conn: deadpool_postgres::Object, handle: &Arc<MemberHandle>) -> Self {
        Self {
            conn: Some(conn),
            handle: handle.clone(),
        }
    }

    /// The member the connection is to.
    pub(crate) fn handle(&self) -> &MemberHandle {
        &self.handle
    }

    /// The connection, while the attempt runs.
    pub(crate) fn conn(&mut self) -> Option<&mut deadpool_postgres::Object> {
        self.conn.as_mut()
    }

    /// The attempt ended normally: the connection goes back to the pool, or is closed when
    /// `discard` (its session is broken or read-only now). Returns the member it was on.
    pub(crate) fn release(mut self, discard: bool) -> Arc<MemberHandle> {
        if let Some(conn) = self.conn.take() {
            if discard {
                self.handle.forget(&conn);
                drop(deadpool_postgres::Object::take(conn));
            }
        }
        self.handle.clone()
    }

    /// The attempt ended normally and its connection is handed to the caller, who returns it to
    /// the pool by dropping it.
    pub(crate) fn detach(mut self) -> Option<deadpool_postgres::Object> {
        self.conn.take()
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        let token = conn.cancel_token();
        self.handle.forget(&conn);
        drop(deadpool_postgres::Object::take(conn));
        // Outside a runtime (it is shutting down) nothing can be sent; the server notices the
        // closed socket when it next writes to it.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (tls, member) = (self.handle.tls.clone(), self.handle.address.name.clone());
        runtime.spawn(async move {
            match tokio::time::timeout(Duration::from_secs(5), token.cancel_query(tls)).await {
                Ok(Ok(())) => tracing::debug!(member, "abandoned statement cancelled on the server"),
                Ok(Err(e)) => tracing::debug!(member, error = %e, "CancelRequest failed"),
                Err(_) => tracing::debug!(member, "CancelRequest timed out"),
            }
        });
    }
}

/// Decrements the in-flight count on drop (so cancelled operations are counted out too).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<MemberCounters>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Client, Recycling};

    fn handle(builder: crate::ClientBuilder) -> MemberHandle {
        let settings = builder
            .patroni(["http://127.0.0.1:1"])
            .user("app")
            .settings()
            .expect("settings");
        let tls = crate::tls::postgres_tls(&settings).expect("tls");
        let address = Address {
            name: "m1".into(),
            host: "127.0.0.1".into(),
            port: 1,
            api_url: None,
        };
        MemberHandle::new(&settings, &tls, address, 0, Arc::default()).expect("a pool")
    }

    #[tokio::test]
    async fn deadpools_settings_reach_each_members_pool() {
        let default = handle(Client::builder());
        let t = default.pool.timeouts();
        assert_eq!(
            (t.wait, t.create, t.recycle),
            (None, Some(Duration::from_secs(2)), None)
        );
        assert_eq!(default.pool.status().max_size, 16);
        assert!(!default.resets_sessions);

        let set = handle(
            Client::builder()
                .pool_max_size(3)
                .pool_wait_timeout(Duration::from_millis(50))
                .pool_recycle_timeout(Duration::from_millis(700))
                .connect_timeout(Duration::from_secs(4))
                .pool_recycling(Recycling::Clean),
        );
        let t = set.pool.timeouts();
        assert_eq!(
            (t.wait, t.create, t.recycle),
            (
                Some(Duration::from_millis(50)),
                Some(Duration::from_secs(4)),
                Some(Duration::from_millis(700))
            )
        );
        assert_eq!(set.pool.status().max_size, 3);
        assert!(
            set.resets_sessions,
            "a Clean pool's sessions are reset on every checkout"
        );
    }

    #[test]
    fn a_zero_pool_timeout_is_refused() {
        for b in [
            Client::builder().pool_wait_timeout(Duration::ZERO),
            Client::builder().pool_recycle_timeout(Duration::ZERO),
        ] {
            let e = b
                .patroni(["http://127.0.0.1:1"])
                .user("app")
                .settings()
                .expect_err("zero");
            assert!(e.to_string().contains("pool_"), "{e}");
        }
    }

    #[test]
    fn a_full_pool_is_a_timeout_that_pgha_does_not_retry() {
        let e = Error::from(deadpool_postgres::PoolError::Timeout(
            deadpool_postgres::TimeoutType::Wait,
        ));
        assert!(e.is_timeout(), "{e:?}");
        assert!(e.to_string().contains("pool_wait_timeout"), "{e}");
        let verdict = crate::classify::classify(&e, crate::classify::Phase::Checkout, crate::classify::OpKind::Read);
        assert!(matches!(verdict, crate::classify::Verdict::Fail), "{verdict:?}");
    }
}
