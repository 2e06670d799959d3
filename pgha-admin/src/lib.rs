//! # pgha-admin
//!
//! The operations runbook of a Patroni cluster (etcd, streaming replication, pgBackRest,
//! pgvector) as typed, tested library calls. The `pgha` command-line tool (crate `pgha-cli`) is a
//! thin layer over them that renders their reports as tables or JSON; this crate does not depend
//! on it or on its command-line dependencies.
//!
//! ```no_run
//! # async fn demo() -> pgha_admin::Result<()> {
//! use pgha_admin::{Admin, CheckOptions, SwitchoverRequest};
//!
//! let admin = Admin::new(
//!     pgha_client::Client::builder()
//!         .patroni(["https://10.0.0.1:8008", "https://10.0.0.2:8008", "https://10.0.0.3:8008"])
//!         .patroni_auth("patroni", "secret")
//!         .patroni_ca_file("/etc/pgha/ca.pem")
//!         .user("postgres").password("secret").dbname("postgres"),
//! )?
//! .on_progress(|p| eprintln!("{p}"));
//!
//! // The daily check: OK / WARNING / CRITICAL per check, a Nagios-style exit code.
//! let health = admin.check(&CheckOptions::default()).await;
//! if health.exit_code() != 0 {
//!     eprintln!("{health:#?}");
//! }
//!
//! // A switchover with pre-flight checks, returning once the new leader accepts writes.
//! let report = admin.switchover(&SwitchoverRequest::new(None)).await?;
//! println!("new leader: {:?} after {:.1} s", report.new_leader, report.elapsed_s);
//! # Ok(()) }
//! ```
//!
//! ## What is in it
//! | area | calls |
//! |---|---|
//! | cluster | [`Admin::status`], [`Admin::history`], [`Admin::check`] |
//! | leadership | [`Admin::plan_switchover`], [`Admin::switchover`] (optionally scheduled), [`Admin::cancel_switchover`], [`Admin::plan_failover`], [`Admin::failover`] |
//! | members | [`Admin::restart`] (member, role filter, pending only, scheduled), [`Admin::cancel_restart`], [`Admin::reload`], [`Admin::reinitialize`], [`Admin::restore_replica`] (from the backup repository, delta), [`Admin::rolling_restart`] |
//! | configuration | [`Admin::config`], [`Admin::patch_config`] (conflicts retried), [`Admin::set_parameters`] (checked against `pg_settings`), [`Admin::setting`], [`Admin::pause`], [`Admin::resume`] |
//! | replication | [`Admin::replication`] (lag in bytes and time, no false lag on an idle primary), [`Admin::slots`], [`Admin::drop_slot`], [`Admin::set_replay_paused`] |
//! | WAL | [`Admin::archiver`], [`Admin::wal_dir`], [`Admin::checkpoint`] |
//! | backups | [`backup::PgBackRest`] (stanza-create, check, backup, info, expire) through a [`backup::CommandRunner`] (local, container, SSH, yours); [`backup::S3Repository`], [`backup::GcsRepository`], [`backup::AzureRepository`] |
//! | recovery | [`pitr`]: [`Admin::plan_pitr`] and [`Admin::pitr`] restore the whole cluster to a time, LSN or restore point |
//! | DCS | [`Admin::remove_cluster`]: the cluster's keys deleted from etcd (`patronictl remove`) |
//! | maintenance | [`Admin::vacuum`], [`Admin::analyze`], [`Admin::reindex`], [`Admin::index_usage`], [`Admin::unused_indexes`], [`Admin::drop_index`], [`Admin::table_sizes`] |
//! | queries | [`Admin::slow_queries`] (`mean_exec_time` on 13+, `mean_time` before), [`Admin::explain`] |
//! | pgvector | [`Admin::create_vector_index`], [`Admin::vector_indexes`] |
//! | tuning | [`advise`], [`Admin::tuning_advice`], [`Admin::apply_tuning`] |
//!
//! Every call is bounded in time (Patroni requests by the Patroni timeout, a minute for unsafe
//! ones; connections by the connect timeout; waits by [`Admin::wait_timeout`]). Errors are
//! [`Error`]s with an [`ErrorKind`] and a documented process exit code ([`exit_codes`]). SQL
//! identifiers from input are validated and quoted. An unsafe REST call that may have reached
//! Patroni is never sent again to another member.
//!
//! ## Where the usual runbook is wrong
//! Patroni's `/leader` returns the node status (no `leader` key) — pgha reads `/cluster`; the
//! primary's role there is `leader` and replicas are `running`/`streaming`, never `in_sync`;
//! `pg_replication_slots` has no `retained_bytes` (pgha computes it from `restart_lsn`);
//! `CHECKPOINT FAST` is not valid SQL before PostgreSQL 19; plain `VACUUM` does not block writes
//! and cannot run on a standby (nor can `ANALYZE`); `now() - pg_last_xact_replay_timestamp()`
//! grows on an idle primary (pgha measures lag from WAL positions); `POST /reinitialize`
//! rebuilds a replica; `max_parallel_io_workers` does not exist (pgha only recommends parameters
//! the running server has); `pg_ctl promote` under Patroni causes a split brain (pgha uses
//! `/switchover` and `/failover`).
#![deny(missing_docs)]

mod admin;
pub mod backup;
mod dynamic_config;
mod error;
pub mod exit_codes;
mod health;
mod inventory;
mod maintenance;
mod monitoring;
pub mod pitr;
mod progress;
mod queries;
mod remove;
mod replica_restore;
mod replication;
mod rest;
mod restart;
mod sql;
mod status;
mod switchover;
mod tuning;
mod vector_index;
mod wal;

pub use admin::Admin;
pub use dynamic_config::{config_patch, ConfigEdit, ParameterChange};
pub use error::{Error, ErrorKind, Result};
pub use health::{Check, CheckOptions, HealthReport, Level, Metric, Unit};
pub use inventory::{postgres_version, MemberVersion, QueryResult, TopologyNode};
pub use maintenance::{IndexUsage, MaintenanceOutcome, TableSize, VacuumOptions};
pub use progress::Progress;
pub use queries::{parse_explain, ExplainReport, SlowQuery};
pub use remove::RemovedCluster;
pub use replica_restore::ReplicaRestore;
pub use replication::{ReplicationReport, ReplicationSlot, StandbyLag};
pub use restart::{MemberOutcome, RestartRequest, RoleFilter, RollingRestartReport, RollingStep};
pub use status::ClusterStatus;
pub use switchover::{parse_schedule, SwitchoverPlan, SwitchoverReport, SwitchoverRequest};
pub use tuning::{advise, Machine, Recommendation, Storage, TuningReport};
pub use vector_index::{VectorIndex, VectorIndexSpec};
pub use wal::{ArchiverStatus, WalDirStatus};

pub use pgha_client;

/// The README's examples, compiled as doctests so that they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
