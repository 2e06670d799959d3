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
mod progress;
mod replication;
mod rest;
mod restart;
mod status;
mod switchover;
mod wal;

pub use admin::Admin;
pub use dynamic_config::ParameterChange;
pub use error::{Error, ErrorKind, Result};
pub use health::{Check, CheckOptions, HealthReport, Level};
pub use progress::Progress;
pub use replication::{ReplicationReport, ReplicationSlot, StandbyLag};
pub use restart::{MemberOutcome, RestartRequest, RoleFilter, RollingRestartReport, RollingStep};
pub use status::ClusterStatus;
pub use switchover::{parse_schedule, SwitchoverPlan, SwitchoverReport, SwitchoverRequest};
pub use wal::{ArchiverStatus, WalDirStatus};

pub use pgha_client;
