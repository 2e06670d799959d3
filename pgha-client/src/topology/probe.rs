//! SQL probes: one query per member per refresh, on a dedicated monitoring connection.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::description::{Address, Probe, ProbeResult};
use crate::config::Settings;
use crate::patroni::Lsn;

/// Works on primaries and standbys with an unprivileged role: functions that fail on one kind of
/// node are guarded by `CASE`; `received_tli` is NULL without `pg_read_all_stats`.
///
/// The primary's position is its write pointer, not its insert pointer: WAL inserted but not yet
/// written (the WAL writer's next round, or the page header after a record that ended on a page
/// boundary) cannot have reached a standby, and sampling it made fresh standbys look stale — on
/// an idle primary, for ever. Commits with `synchronous_commit = on` are written before they are
/// acknowledged; an asynchronous commit is counted from when its WAL is written, at most three
/// `wal_writer_delay`s later. Read-your-writes tokens, which must cover the commit record, use
/// the insert pointer.
const PROBE_SQL: &str = "SELECT pg_is_in_recovery(), \
    CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END, \
    CASE WHEN pg_is_in_recovery() THEN NULL \
         ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8 END, \
    pg_last_wal_replay_lsn()::text, \
    (SELECT received_tli::int8 FROM pg_stat_wal_receiver), \
    (SELECT timeline_id::int8 FROM pg_control_checkpoint()), \
    (SELECT system_identifier::text FROM pg_control_system()), \
    CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END";

struct Conn {
    client: tokio_postgres::Client,
    task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Monitoring connections, one per member, owned by the topology task.
pub(crate) struct Prober {
    conns: HashMap<Address, Conn>,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober").field("members", &self.conns.len()).finish()
    }
}

impl Prober {
    pub(crate) fn new(tls: tokio_postgres_rustls::MakeRustlsConnect) -> Self {
        Self {
            conns: HashMap::new(),
            tls,
        }
    }

    /// Probes every address concurrently, each bounded by `settings.probe_timeout`.
    pub(crate) async fn probe_all(
        &mut self,
        settings: &Settings,
        addresses: &[Address],
    ) -> HashMap<String, ProbeResult> {
        self.conns.retain(|a, _| addresses.contains(a));
        let mut set = tokio::task::JoinSet::new();
        for address in addresses {
            let existing = self.conns.remove(address);
            let address = address.clone();
            let settings = settings.clone();
            let tls = self.tls.clone();
            set.spawn(async move {
                let timeout = settings.probe_timeout;
                let outcome = tokio::time::timeout(timeout, probe_one(&settings, &address, existing, tls)).await;
                let outcome = outcome.unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")));
                (address, outcome)
            });
        }
        let mut results = HashMap::new();
        while let Some(joined) = set.join_next().await {
            let Ok((address, outcome)) = joined else { continue };
            match outcome {
                Ok((probe, conn)) => {
                    self.conns.insert(address.clone(), conn);
                    results.insert(address.name, ProbeResult::Ok(probe));
                }
                Err(error) => {
                    results.insert(address.name, ProbeResult::Failed(error));
                }
            }
        }
        results
    }
}

async fn connect(
    settings: &Settings,
    address: &Address,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
) -> Result<Conn, String> {
    let config = crate::tls::postgres_config(settings, &address.host, address.port, "monitor");
    let (client, connection) = config.connect(tls).await.map_err(|e| crate::error::chain(&e))?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Conn { client, task })
}

async fn probe_one(
    settings: &Settings,
    address: &Address,
    existing: Option<Conn>,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
) -> Result<(Probe, Conn), String> {
    let conn = match existing {
        Some(conn) if !conn.client.is_closed() => conn,
        _ => connect(settings, address, tls).await?,
    };
    let sent_at = Instant::now();
    let row = conn
        .client
        .query_one(PROBE_SQL, &[])
        .await
        .map_err(|e| crate::error::chain(&e))?;
    let received_at = Instant::now();
    let lsn = |i: usize| -> Result<Option<Lsn>, String> {
        row.try_get::<_, Option<String>>(i)
            .map_err(|e| e.to_string())?
            .map(|s| s.parse::<Lsn>().map_err(|e| e.to_string()))
            .transpose()
    };
    let int = |i: usize| -> Result<Option<u64>, String> {
        Ok(row
            .try_get::<_, Option<i64>>(i)
            .map_err(|e| e.to_string())?
            .and_then(|v| u64::try_from(v).ok()))
    };
    let in_recovery: bool = row.try_get(0).map_err(|e| e.to_string())?;
    let timeline = if in_recovery { int(4)?.max(int(5)?) } else { int(2)? };
    let probe = Probe {
        in_recovery,
        current_lsn: lsn(1)?,
        timeline,
        replay_lsn: lsn(3)?,
        replay_paused: row.try_get(7).map_err(|e| e.to_string())?,
        system_identifier: row.try_get(6).map_err(|e| e.to_string())?,
        sent_at,
        received_at,
    };
    Ok((probe, conn))
}

/// How long a probe round may take at most (used to size waits).
pub(crate) fn round_bound(settings: &Settings) -> Duration {
    settings.probe_timeout.saturating_add(settings.patroni_timeout)
}
