//! One replica rebuilt from the pgBackRest repository instead of from the leader:
//! `pgbackrest restore --type=standby --delta` under a stopped Patroni. Delta compares each file
//! with the backup by checksum and copies only those that differ, so a replica whose data is
//! mostly intact is rebuilt from the repository without a base backup read from the leader.

use std::time::Instant;

use pgha_client::patroni::Role;
use serde::Serialize;

use crate::admin::Admin;
use crate::backup::PgBackRest;
use crate::error::{Error, Result};
use crate::pitr::NodeControl;

const OPERATION: &str = "restore-replica";

/// What [`Admin::restore_replica`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ReplicaRestore {
    /// The member restored.
    pub member: String,
    /// The backup restored from (the newest in the repository).
    pub backup_label: String,
    /// The `pgbackrest restore` command line run.
    pub command: Vec<String>,
    /// Seconds the restore itself took.
    pub restore_s: f64,
    /// Seconds from stopping Patroni to the member streaming again.
    pub elapsed_s: f64,
}

impl Admin {
    /// Rebuilds replica `member` from the newest backup: stops its Patroni, runs `pgbackrest
    /// restore --type=standby --delta` into its data directory, starts Patroni, and waits until
    /// the member streams from the leader on the leader's timeline (it first replays the
    /// archived WAL since the backup).
    ///
    /// `pgbackrest` **must run on `member`'s host** (a [`LocalRunner`](crate::backup::LocalRunner)
    /// there, or an [`SshRunner`](crate::backup::SshRunner) to it): the restore writes the
    /// member's data directory, given as `--pg1-path` when [`NodeControl::data_dir`] names it —
    /// on another host, the same path would be another member's. The `pgha` CLI checks the
    /// runner's host against the member's address before it calls this.
    /// Only `stop_patroni`, `start_patroni` and `data_dir` of `control` are used.
    ///
    /// Refused for the leader, without a leader, in a paused cluster (Patroni stopped there
    /// leaves PostgreSQL running), and without a backup. If the restore fails,
    /// Patroni on `member` is left stopped (its data directory may be incomplete) and the error
    /// says so: run it again, or `reinitialize` the member from the leader.
    pub async fn restore_replica(
        &self,
        control: &impl NodeControl,
        pgbackrest: &PgBackRest,
        member: &str,
    ) -> Result<ReplicaRestore> {
        let (_, view) = self.cluster_view().await?;
        let m = Self::find_member(&view, member)?;
        if matches!(m.role, Role::Leader | Role::StandbyLeader) {
            return Err(Error::precondition(format!(
                "{member} is the leader; switch over first, then restore it as a replica"
            )));
        }
        Self::require_leader(&view)?;
        if view.pause {
            return Err(Error::precondition(
                "the cluster is paused: a stopped Patroni would leave PostgreSQL running; resume it first",
            ));
        }
        let info = pgbackrest.info().await?;
        let backup_label = info
            .latest()
            .map(|b| b.label.clone())
            .ok_or_else(|| Error::precondition(format!("stanza {} has no backup to restore", info.name)))?;
        // That backup, not whichever is newest when the restore starts.
        let mut options = vec![
            "--type=standby".to_owned(),
            "--delta".to_owned(),
            format!("--set={backup_label}"),
        ];
        if let Some(dir) = control.data_dir(member) {
            options.push(format!("--pg1-path={dir}"));
        }
        let command = pgbackrest.argv("restore", &options);
        let started = Instant::now();
        self.report(OPERATION, format!("stopping Patroni on {member}"), Some((1, 4)));
        control.stop_patroni(member).await?;
        self.report(
            OPERATION,
            format!("restoring {member} from backup {backup_label} (delta)"),
            Some((2, 4)),
        );
        let restoring = Instant::now();
        pgbackrest.run("restore", &options).await.map_err(|e| {
            e.prefixed(format!(
                "Patroni on {member} is left stopped and its data directory may be incomplete \
                 (run this again, or reinitialize {member} from the leader)"
            ))
        })?;
        let restore_s = restoring.elapsed().as_secs_f64();
        self.report(OPERATION, format!("starting Patroni on {member}"), Some((3, 4)));
        control.start_patroni(member).await?;
        self.wait_streaming(OPERATION, member).await?;
        self.report(OPERATION, format!("{member} streams again"), Some((4, 4)));
        Ok(ReplicaRestore {
            member: member.to_owned(),
            backup_label,
            command,
            restore_s,
            elapsed_s: started.elapsed().as_secs_f64(),
        })
    }
}
