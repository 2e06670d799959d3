//! Replication: per-standby lag measured correctly, replication slots, WAL replay pause/resume.

use pgha_client::patroni::{ClusterView, Lsn, Member, Role};
use serde::Serialize;

use crate::admin::Admin;
use crate::error::{Error, Result};
use crate::sql::RowExt;

/// One standby's replication, measured from the leader's and the standby's own positions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StandbyLag {
    /// The member.
    pub member: String,
    /// Patroni's state for it.
    pub state: String,
    /// Listed as `streaming` in the leader's `pg_stat_replication`.
    pub streaming: bool,
    /// `sync`, `async`, `quorum`, `potential` (from `pg_stat_replication`).
    pub sync_state: Option<String>,
    /// WAL received (`pg_last_wal_receive_lsn()`).
    pub receive_lsn: Option<Lsn>,
    /// WAL replayed (`pg_last_wal_replay_lsn()`).
    pub replay_lsn: Option<Lsn>,
    /// Bytes of WAL the leader has written that the standby has not received.
    pub receive_lag_bytes: Option<u64>,
    /// Bytes of WAL the leader has written that the standby has not replayed: what a read on it
    /// misses.
    pub replay_lag_bytes: Option<u64>,
    /// Seconds the standby's data is behind: 0 when it has replayed everything the leader wrote
    /// (an idle primary causes no false lag), otherwise the time since the last transaction it
    /// replayed was committed.
    pub replay_lag_s: Option<f64>,
    /// Replay paused with `pg_wal_replay_pause()`.
    pub replay_paused: Option<bool>,
    /// Why it could not be measured, if it could not.
    pub error: Option<String>,
}

/// Replication as seen from the leader and each standby.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ReplicationReport {
    /// The leader.
    pub leader: String,
    /// The leader's current WAL position.
    pub leader_lsn: Lsn,
    /// One entry per other member.
    pub standbys: Vec<StandbyLag>,
}

/// A replication slot on the leader.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ReplicationSlot {
    /// Slot name.
    pub name: String,
    /// `physical` or `logical`.
    pub slot_type: String,
    /// A consumer is connected.
    pub active: bool,
    /// Oldest WAL the slot needs.
    pub restart_lsn: Option<Lsn>,
    /// WAL kept for it: `pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)`.
    pub retained_bytes: Option<i64>,
    /// `reserved`, `extended`, `unreserved`, `lost` (PostgreSQL 13+).
    pub wal_status: Option<String>,
    /// Bytes that can still be written before the slot is lost (13+, with max_slot_wal_keep_size).
    pub safe_wal_size: Option<i64>,
}

fn lsn_col(row: &tokio_postgres::Row, i: usize) -> Option<Lsn> {
    row.get::<_, Option<String>>(i).and_then(|s| s.parse().ok())
}

async fn measure_standby(admin: &Admin, member: &Member, leader_lsn: Lsn) -> Result<StandbyLag> {
    let db = admin.sql(member, None).await?;
    let row = db
        .query_one(
            "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, \
                    CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END, \
                    EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8",
            &[],
        )
        .await
        .map_err(|e| Error::db(format!("measuring {}", member.name), e))?;
    let receive_lsn = lsn_col(&row, 0);
    let replay_lsn = lsn_col(&row, 1);
    let behind = |lsn: Option<Lsn>| lsn.map(|l| leader_lsn.0.saturating_sub(l.0));
    let replay_lag_bytes = behind(replay_lsn);
    let since_last_replay: Option<f64> = row.col(3)?;
    Ok(StandbyLag {
        member: member.name.clone(),
        state: member.state.to_string(),
        streaming: false,
        sync_state: None,
        receive_lsn,
        replay_lsn,
        receive_lag_bytes: behind(receive_lsn),
        replay_lag_bytes,
        replay_lag_s: match replay_lag_bytes {
            Some(0) => Some(0.0),
            Some(_) => since_last_replay.map(|s| s.max(0.0)),
            None => None,
        },
        replay_paused: row.col(2)?,
        error: None,
    })
}

impl Admin {
    /// Every standby's lag in bytes (received and replayed) and in time, and whether it streams.
    pub async fn replication(&self) -> Result<ReplicationReport> {
        let (_, view) = self.cluster_view().await?;
        self.replication_in(&view).await
    }

    /// [`replication`](Self::replication) for a view already fetched.
    pub(crate) async fn replication_in(&self, view: &ClusterView) -> Result<ReplicationReport> {
        let leader = Self::require_leader(view)?;
        let db = self.sql(leader, None).await?;
        let leader_lsn: Lsn = db
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(|e| Error::db(format!("reading the WAL position of {}", leader.name), e))?
            .get::<_, String>(0)
            .parse()
            .map_err(|e| Error::protocol(format!("pg_current_wal_lsn: {e}")))?;
        let senders = db
            .query(
                "SELECT application_name, state, sync_state FROM pg_stat_replication \
                 ORDER BY state = 'streaming' DESC",
                &[],
            )
            .await
            .map_err(|e| Error::db("reading pg_stat_replication", e))?;
        let standbys: Vec<&Member> = view.members.iter().filter(|m| m.role != Role::Leader).collect();
        let measured =
            futures_util::future::join_all(standbys.iter().map(|m| measure_standby(self, m, leader_lsn))).await;
        let mut out = Vec::new();
        for (member, result) in standbys.iter().zip(measured) {
            let mut lag = result.unwrap_or_else(|e| StandbyLag {
                member: member.name.clone(),
                state: member.state.to_string(),
                streaming: false,
                sync_state: None,
                receive_lsn: None,
                replay_lsn: None,
                receive_lag_bytes: None,
                replay_lag_bytes: None,
                replay_lag_s: None,
                replay_paused: None,
                error: Some(e.to_string()),
            });
            if let Some(row) = senders
                .iter()
                .find(|r| r.get::<_, Option<String>>(0).as_deref() == Some(&member.name))
            {
                lag.streaming = row.get::<_, Option<String>>(1).as_deref() == Some("streaming");
                lag.sync_state = row.col(2)?;
            }
            out.push(lag);
        }
        Ok(ReplicationReport {
            leader: leader.name.clone(),
            leader_lsn,
            standbys: out,
        })
    }

    /// Replication slots on the leader, with the WAL each one retains.
    pub async fn slots(&self) -> Result<Vec<ReplicationSlot>> {
        let (leader, db) = self.leader_sql(None).await?;
        let rows = db
            .query(
                "SELECT slot_name::text, slot_type, active, restart_lsn::text, \
                        pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8, \
                        wal_status, safe_wal_size \
                 FROM pg_replication_slots ORDER BY slot_name",
                &[],
            )
            .await
            .map_err(|e| Error::db(format!("reading pg_replication_slots on {}", leader.name), e))?;
        rows.iter()
            .map(|r| {
                Ok(ReplicationSlot {
                    name: r.col(0)?,
                    slot_type: r.col(1)?,
                    active: r.col(2)?,
                    restart_lsn: lsn_col(r, 3),
                    retained_bytes: r.col(4)?,
                    wal_status: r.col(5)?,
                    safe_wal_size: r.col(6)?,
                })
            })
            .collect::<Result<Vec<_>>>()
    }

    /// Drops a replication slot on the leader. Refuses an active slot (its consumer is
    /// connected) and an unknown one. Patroni recreates the slots of its own members (and the
    /// permanent slots of its configuration) on its next loop: dropping one only frees its WAL
    /// for a moment.
    pub async fn drop_slot(&self, name: &str) -> Result<ReplicationSlot> {
        let slot = self
            .slots()
            .await?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::not_found(format!("no replication slot {name:?}")))?;
        if slot.active {
            return Err(Error::precondition(format!(
                "slot {name:?} is active (its consumer is connected); stop the consumer first"
            )));
        }
        let (leader, db) = self.leader_sql(None).await?;
        db.execute("SELECT pg_drop_replication_slot($1)", &[&name])
            .await
            .map_err(|e| Error::db(format!("dropping slot {name:?} on {}", leader.name), e))?;
        Ok(slot)
    }

    /// Pauses (`true`) or resumes WAL replay on a replica. Patroni (PostgreSQL 14+) resumes a
    /// paused replay on its next loop, so this is refused unless the cluster is in maintenance
    /// mode ([`Admin::pause`]).
    pub async fn set_replay_paused(&self, member: &str, paused: bool) -> Result<()> {
        let (_, view) = self.cluster_view().await?;
        let m = Self::find_member(&view, member)?;
        if m.role == Role::Leader {
            return Err(Error::precondition(format!(
                "{member} is the leader; it replays no WAL"
            )));
        }
        if paused && !view.pause {
            return Err(Error::precondition(
                "Patroni would resume replay within one loop: put the cluster in maintenance mode first (pgha pause)",
            ));
        }
        let db = self.sql(m, None).await?;
        let sql = if paused {
            "SELECT pg_wal_replay_pause()"
        } else {
            "SELECT pg_wal_replay_resume()"
        };
        db.execute(sql, &[])
            .await
            .map_err(|e| Error::db(format!("{sql} on {member}"), e))?;
        Ok(())
    }
}
