//! # pgha-testkit
//!
//! A **real** local Patroni cluster for tests, examples and benchmarks: an etcd cluster of three
//! members (as in production) and N Patroni-managed PostgreSQL 15 nodes on loopback, with
//! pgvector, pg_stat_statements and a pgBackRest stanza whose repository lives in the cluster
//! directory.
//!
//! ```no_run
//! # async fn demo() -> pgha_testkit::Result<()> {
//! use std::time::Duration;
//! use pgha_testkit::LocalCluster;
//!
//! let cluster = LocalCluster::builder().members(3).start().await?;
//! let old = cluster.leader().await?;
//! cluster.kill_node(&old)?;                       // kill -9 Patroni and PostgreSQL
//! let new = cluster.wait_for_new_leader(&old, Duration::from_secs(60)).await?;
//! cluster.start_node(&old)?;                      // it comes back as a replica
//! cluster.wait_streaming(&old, Duration::from_secs(60)).await?;
//! # let _ = new;
//! cluster.shutdown();                             // also happens on drop
//! # Ok(()) }
//! ```
//!
//! ## The DCS
//! etcd runs as 3 members by default (`etcd0`, `etcd1`, `etcd2`; 1 or 5 with
//! [`LocalClusterBuilder::etcd_members`]), each its own process with its own client and peer port,
//! data directory and log (`etcd0.log`, …) in the cluster directory; Patroni's `etcd3.hosts` lists
//! every member ([`LocalCluster::etcd_urls`]). Faults act on the whole DCS
//! ([`stop_etcd`](LocalCluster::stop_etcd), [`start_etcd_again`](LocalCluster::start_etcd_again))
//! or on one member ([`kill_etcd_member`](LocalCluster::kill_etcd_member),
//! [`stop_etcd_member`](LocalCluster::stop_etcd_member),
//! [`start_etcd_member`](LocalCluster::start_etcd_member),
//! [`freeze_etcd_member`](LocalCluster::freeze_etcd_member) /
//! [`thaw_etcd_member`](LocalCluster::thaw_etcd_member)), and
//! [`etcd_leader`](LocalCluster::etcd_leader) says which member is raft leader. etcd's raft timing
//! is halved (heartbeat 50 ms, election timeout 500 ms) to match the testkit's short Patroni
//! `retry_timeout` of 3 s: with etcd's defaults, Patroni could time out on every member while the
//! survivors of a killed raft leader elected a new one, and demote its leader.
//!
//! ## What it needs
//! Debian's `postgresql-15`, `patroni`, `etcd-server`, `pgbackrest` and a pgvector build, all
//! installed by `scripts/install-deps.sh`. PostgreSQL refuses to run as root: when the test process
//! is root, every cluster process runs as the `postgres` OS user, and cluster directories live
//! under `$PGHA_TESTKIT_DIR` (default `/tmp/pgha-testkit`), where that user can reach them.
//!
//! ## Processes and clean-up
//! Every process is started in its own process group and recorded (PID + start time) in
//! `<cluster dir>/state.json`. [`LocalCluster::shutdown`] — also run on drop, even while a test
//! panics — stops them by PID. A run that was killed outright leaves its state file behind with a
//! dead owner; the next [`LocalCluster::builder`]`.start()` stops what it recorded and removes it.
//! Ports are picked free at start, so parallel runs never collide.
//!
//! ## Features
//! | feature | adds |
//! |---|---|
//! | `admin` | `LocalCluster::admin()` and `pgbackrest_handle()` (pgha-admin handles on the cluster), and `LocalCluster` as pgha-admin's `NodeControl` for point-in-time recovery |
//! | `cli` | the `pgha-devcluster` binary |
//!
//! Without features the testkit depends on none of pgha's own crates, so a change in the code
//! under test never stops the testkit from building.
//!
//! ## Environment
//! | variable | meaning |
//! |---|---|
//! | `PGHA_PATRONI` | `3`/`debian` (default), `4` (the Patroni 4.x venv), or a path to a Patroni executable |
//! | `PGHA_CACHE_DIR` | where the Patroni 4.x venv lives (default `/var/cache/pgha`) |
//! | `PGHA_TESTKIT_DIR` | root of cluster directories (default `/tmp/pgha-testkit`) |
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "admin")]
mod admin;
mod builder;
mod cgroup;
mod cluster;
mod config_files;
mod error;
mod firewall;
mod hostile;
mod ports;
mod process;
mod rest;
mod state;
mod tls;

pub use builder::{LocalClusterBuilder, PatroniFlavor};
pub use cluster::{
    reap_stale_clusters, wait_for, BackupType, ClientCut, ClusterInfo, HaproxyPorts, LocalCluster, MemberAddress,
    ETCD_NAMESPACE,
};
pub use error::{Error, Result};
pub use hostile::{HostilePatroni, Misbehaviour};
pub use process::ProcRef;
pub use rest::PatroniMember;
pub use state::{ClusterCredentials, Credentials, Secret, Timing};
pub use tls::ServerCertificate;

/// Installs a `tracing` subscriber that writes to the test harness's captured output, filtered
/// by `RUST_LOG` or else by `default_filter` (e.g. `"pgha_client=info,pgha_testkit=info"`).
/// Later calls do nothing, so every test can call it first.
///
/// ```
/// pgha_testkit::init_test_tracing("pgha_testkit=info");
/// pgha_testkit::init_test_tracing("ignored: a subscriber is already installed");
/// ```
pub fn init_test_tracing(default_filter: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
        )
        .with_test_writer()
        .try_init();
}

/// The README's examples, compiled as doctests so that they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
