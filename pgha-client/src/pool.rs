//! One deadpool-postgres pool per member, with generations: when a member stops being the
//! primary its pool is closed and replaced, so no connection opened to the old primary is
//! handed out again.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::topology::description::Address;

/// A member's pool and counters, shared by every snapshot that lists the member.
pub(crate) struct MemberHandle {
    pub(crate) address: Address,
    pub(crate) pool: Pool,
    /// Incremented each time the pool is replaced.
    pub(crate) generation: u64,
    pub(crate) counters: Arc<MemberCounters>,
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
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_max_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(settings.connect_timeout))
            .wait_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(Duration::from_secs(1)))
            .build()
            .map_err(|e| Error::config(format!("pool for {}: {e}", address.name)))?;
        Ok(Self {
            address,
            pool,
            generation,
            counters,
        })
    }

    /// Marks one operation in flight until the guard is dropped.
    pub(crate) fn track(self: &Arc<Self>) -> InFlight {
        self.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        self.counters.operations.fetch_add(1, Ordering::Relaxed);
        InFlight(self.counters.clone())
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
