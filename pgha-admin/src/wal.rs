//! WAL: archiver status, `pg_wal` size, checkpoints, `wal_keep_size`.

use chrono::{DateTime, Utc};
use pgha_client::patroni::ClusterView;
use serde::Serialize;

use crate::admin::Admin;
use crate::error::{Error, Result};
use crate::sql::RowExt;

/// `pg_stat_archiver` on the leader, with a verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ArchiverStatus {
    /// The member (the leader).
    pub member: String,
    /// `archive_mode` (`off` means nothing is archived and PITR is impossible).
    pub archive_mode: String,
    /// Segments archived since the statistics were reset.
    pub archived_count: i64,
    /// The last segment archived.
    pub last_archived_wal: Option<String>,
    /// When.
    pub last_archived_time: Option<DateTime<Utc>>,
    /// Failed attempts since the statistics were reset.
    pub failed_count: i64,
    /// The last segment that failed.
    pub last_failed_wal: Option<String>,
    /// When.
    pub last_failed_time: Option<DateTime<Utc>>,
    /// The last attempt failed (a failure more recent than the last success): archiving is
    /// broken now, not just at some point in the past.
    pub failing: bool,
}

/// The WAL directory of one member.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct WalDirStatus {
    /// The member.
    pub member: String,
    /// Files in `pg_wal`.
    pub segments: i64,
    /// Their total size in bytes.
    pub size_bytes: i64,
    /// `wal_keep_size`.
    pub wal_keep_size: String,
    /// `max_wal_size`.
    pub max_wal_size: String,
    /// `max_slot_wal_keep_size` (-1 = unlimited: a stale slot can fill the disk).
    pub max_slot_wal_keep_size: String,
}

impl Admin {
    /// The leader's archiver statistics and whether archiving is failing now.
    pub async fn archiver(&self) -> Result<ArchiverStatus> {
        let (_, view) = self.cluster_view().await?;
        self.archiver_in(&view).await
    }

    /// [`archiver`](Self::archiver) for a view already fetched.
    pub(crate) async fn archiver_in(&self, view: &ClusterView) -> Result<ArchiverStatus> {
        let leader = Self::require_leader(view)?.clone();
        let db = self.sql(&leader, None).await?;
        let row = db
            .query_one(
                "SELECT current_setting('archive_mode'), archived_count, last_archived_wal, last_archived_time, \
                        failed_count, last_failed_wal, last_failed_time \
                 FROM pg_stat_archiver",
                &[],
            )
            .await
            .map_err(|e| Error::db(format!("reading pg_stat_archiver on {}", leader.name), e))?;
        let last_archived_time: Option<DateTime<Utc>> = row.col(3)?;
        let last_failed_time: Option<DateTime<Utc>> = row.col(6)?;
        Ok(ArchiverStatus {
            member: leader.name,
            archive_mode: row.col(0)?,
            archived_count: row.col(1)?,
            last_archived_wal: row.col(2)?,
            last_archived_time,
            failed_count: row.col(4)?,
            last_failed_wal: row.col(5)?,
            last_failed_time,
            failing: match (last_failed_time, last_archived_time) {
                (Some(failed), Some(archived)) => failed > archived,
                (Some(_), None) => true,
                _ => false,
            },
        })
    }

    /// The size of `pg_wal` on a member (the leader by default) and the settings that bound it.
    pub async fn wal_dir(&self, member: Option<&str>) -> Result<WalDirStatus> {
        let (m, db) = self.member_sql(member, None).await?;
        let row = db
            .query_one(
                "SELECT count(*), coalesce(sum(size), 0)::int8, current_setting('wal_keep_size'), \
                        current_setting('max_wal_size'), current_setting('max_slot_wal_keep_size') \
                 FROM pg_ls_waldir()",
                &[],
            )
            .await
            .map_err(|e| Error::db(format!("reading pg_wal on {}", m.name), e))?;
        Ok(WalDirStatus {
            member: m.name,
            segments: row.col(0)?,
            size_bytes: row.col(1)?,
            wal_keep_size: row.col(2)?,
            max_wal_size: row.col(3)?,
            max_slot_wal_keep_size: row.col(4)?,
        })
    }

    /// Runs `CHECKPOINT` on a member (the leader by default; on a standby it is a restartpoint).
    /// PostgreSQL 13–18 take no options (`CHECKPOINT FAST` is not valid SQL); it is always
    /// immediate. Needs a superuser or `pg_checkpoint` (15+).
    pub async fn checkpoint(&self, member: Option<&str>) -> Result<String> {
        let (m, db) = self.member_sql(member, None).await?;
        db.batch_execute("CHECKPOINT")
            .await
            .map_err(|e| Error::db(format!("CHECKPOINT on {}", m.name), e))?;
        Ok(m.name)
    }
}
