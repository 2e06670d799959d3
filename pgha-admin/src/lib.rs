//! # pgha-admin
//!
//! The operations runbook of a Patroni cluster (etcd, streaming replication, pgBackRest,
//! pgvector) as typed, tested library calls — and the `pgha` command-line tool, a thin layer
//! over them.
#![deny(missing_docs)]

mod admin;
pub mod backup;
mod dynamic_config;
mod error;
pub mod exit_codes;
mod health;
mod maintenance;
pub mod pitr;
mod progress;
mod queries;
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
pub use dynamic_config::ParameterChange;
pub use error::{Error, ErrorKind, Result};
pub use health::{Check, CheckOptions, HealthReport, Level};
pub use maintenance::{IndexUsage, MaintenanceOutcome, TableSize, VacuumOptions};
pub use progress::Progress;
pub use queries::{parse_explain, ExplainReport, SlowQuery};
pub use replication::{ReplicationReport, ReplicationSlot, StandbyLag};
pub use restart::{MemberOutcome, RestartRequest, RoleFilter, RollingRestartReport, RollingStep};
pub use status::ClusterStatus;
pub use switchover::{parse_schedule, SwitchoverPlan, SwitchoverReport, SwitchoverRequest};
pub use tuning::{advise, Machine, Recommendation, Storage, TuningReport};
pub use vector_index::{VectorIndex, VectorIndexSpec};
pub use wal::{ArchiverStatus, WalDirStatus};

pub use pgha_client;
