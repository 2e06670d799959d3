//! SQL probes: one query per member per refresh, on a connection of the member's own pool.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::description::{Probe, ProbeResult};
use crate::config::Settings;
use crate::patroni::Lsn;
use crate::pool::{Busy, MemberHandle};

/// Works on primaries and standbys with an unprivileged role: functions that fail on one kind of
/// node are guarded by `CASE`; `received_tli` is NULL without `pg_read_all_stats`. Every function
/// and view is schema-qualified: the probe runs on pooled connections, whose `search_path` an
/// application may have changed (a schema listed before `pg_catalog` could shadow them).
///
/// The primary's position is its write pointer, not its insert pointer: WAL inserted but not yet
/// written (the WAL writer's next round, or the page header after a record that ended on a page
/// boundary) cannot have reached a standby, and sampling it made fresh standbys look stale — on
/// an idle primary, for ever. Commits with `synchronous_commit = on` are written before they are
/// acknowledged; an asynchronous commit is counted from when its WAL is written, at most three
/// `wal_writer_delay`s later. Read-your-writes tokens, which must cover the commit record, use
/// the insert pointer.
///
/// A primary is synchronous when `synchronous_standby_names` is set: its commits then wait for
/// the synchronous standbys, and stay invisible on it meanwhile while a standby that replayed
/// them already shows them (see `op::confirm_synchronously`).
const PROBE_SQL: &str = "SELECT pg_catalog.pg_is_in_recovery(), \
    CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_current_wal_lsn()::text END, \
    CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL \
         ELSE ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int8 END, \
    pg_catalog.pg_last_wal_replay_lsn()::text, \
    (SELECT received_tli::int8 FROM pg_catalog.pg_stat_wal_receiver), \
    (SELECT timeline_id::int8 FROM pg_catalog.pg_control_checkpoint()), \
    (SELECT system_identifier::text FROM pg_catalog.pg_control_system()), \
    CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END, \
    NOT pg_catalog.pg_is_in_recovery() AND pg_catalog.current_setting('synchronous_standby_names') <> ''";

/// Probes every member concurrently, each on a connection of its own pool (no connection is
/// opened for probing alone) and bounded by `settings.probe_timeout`. A probe abandoned at its
/// timeout cancels its statement and closes that connection, like an abandoned operation. Unless
/// `keep`, the connection is closed after the probe: a client that has not run an operation yet
/// keeps no connection (a fleet starting up would otherwise hold one per instance per member
/// until `idle_timeout`).
pub(crate) async fn probe_all(
    settings: &Settings,
    members: &[Arc<MemberHandle>],
    keep: bool,
) -> HashMap<String, ProbeResult> {
    let mut set = tokio::task::JoinSet::new();
    for handle in members {
        let handle = handle.clone();
        let timeout = settings.probe_timeout;
        set.spawn(async move {
            let outcome = tokio::time::timeout(timeout, probe_one(&handle, keep)).await;
            let outcome = outcome.unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")));
            (handle.address.name.clone(), outcome)
        });
    }
    let mut results = HashMap::new();
    while let Some(joined) = set.join_next().await {
        let Ok((name, outcome)) = joined else { continue };
        results.insert(
            name,
            match outcome {
                Ok(probe) => ProbeResult::Ok(probe),
                Err(error) => ProbeResult::Failed(error),
            },
        );
    }
    results
}

async fn probe_one(handle: &Arc<MemberHandle>, keep: bool) -> Result<Probe, String> {
    let conn = handle.pool.get().await.map_err(|e| crate::error::chain(&e))?;
    let mut busy = Busy::new(conn, handle);
    let conn = busy.conn().ok_or("no connection")?;
    let statement = conn
        .prepare_cached(PROBE_SQL)
        .await
        .map_err(|e| crate::error::chain(&e))?;
    let sent_at = Instant::now();
    let row = conn
        .query_one(&statement, &[])
        .await
        .map_err(|e| crate::error::chain(&e))?;
    let received_at = Instant::now();
    busy.release(!keep);
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
    Ok(Probe {
        in_recovery,
        current_lsn: lsn(1)?,
        timeline,
        replay_lsn: lsn(3)?,
        replay_paused: row.try_get(7).map_err(|e| e.to_string())?,
        synchronous: row.try_get(8).map_err(|e| e.to_string())?,
        system_identifier: row.try_get(6).map_err(|e| e.to_string())?,
        sent_at,
        received_at,
    })
}

/// How long a probe round may take at most (used to size waits).
pub(crate) fn round_bound(settings: &Settings) -> Duration {
    settings.probe_timeout.saturating_add(settings.patroni_timeout)
}
