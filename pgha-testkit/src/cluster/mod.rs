//! [`LocalCluster`]: a running etcd + Patroni + PostgreSQL cluster on loopback.
//!
//! This file holds the type, its accessors and its lifecycle after start (attach, detach,
//! shutdown, drop); bringing a cluster up is in `start`, and the other methods are grouped by
//! concern in `etcd` (the DCS, its health and faults), `sql`, `wait`, `faults`, `patroni`,
//! `backup` and `haproxy`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use crate::builder::LocalClusterBuilder;
use crate::config_files::DcsOptions;
use crate::error::{Error, Result};
use crate::process::{postmaster, OsUser, ProcRef};
use crate::rest;
use crate::state::{reap_stale, ClusterCredentials, ClusterState, MemberState, Timing};

mod backup;
mod etcd;
mod faults;
mod haproxy;
mod patroni;
mod sql;
mod start;
mod wait;

pub use backup::BackupType;
pub use etcd::ETCD_NAMESPACE;
pub use faults::ClientCut;
pub use haproxy::HaproxyPorts;
pub use wait::wait_for;

const APP_USER: &str = "pgha_app";
const APP_DATABASE: &str = "pgha";

/// Connection details of a cluster, as printed by `pgha-devcluster up --json`.
///
/// Contains passwords in clear: it is what a client needs to connect. `Debug` redacts them.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterInfo {
    /// Patroni scope.
    pub scope: String,
    /// Patroni version string, e.g. `3.0.2`.
    pub patroni_version: String,
    /// The cluster directory.
    pub base_dir: PathBuf,
    /// Client URL of every etcd member (`etcd0` first), as listed in Patroni's `etcd3.hosts`.
    pub etcd_urls: Vec<String>,
    /// Timing written to the DCS.
    pub timing: Timing,
    /// The application database.
    pub database: String,
    /// One entry per member.
    pub members: Vec<MemberAddress>,
    /// All credentials.
    pub credentials: ClusterCredentials,
    /// The pgBackRest configuration file, when pgBackRest is set up.
    pub pgbackrest_config: Option<PathBuf>,
    /// The CA certificate of a cluster built with TLS.
    pub ca_file: Option<PathBuf>,
}

/// How to reach one member.
#[derive(Debug, Clone, Serialize)]
pub struct MemberAddress {
    /// Member name.
    pub name: String,
    /// Patroni REST API base URL.
    pub api_url: String,
    /// PostgreSQL host.
    pub host: String,
    /// PostgreSQL port.
    pub port: u16,
    /// Data directory.
    pub data_dir: PathBuf,
}

/// A real local Patroni cluster: an etcd cluster (3 members by default, as in production) and N
/// Patroni-managed PostgreSQL 15 nodes on loopback, with pgvector, pg_stat_statements and a
/// pgBackRest stanza.
///
/// Everything it starts is stopped — by PID — on [`shutdown`](Self::shutdown) or on drop, even when
/// a test panics. Clusters left behind by a killed test process are reaped by the next start.
/// All methods take `&self`, so a cluster can be shared (for example in an `Arc`) between a
/// workload and the task that injects faults.
#[derive(Debug)]
pub struct LocalCluster {
    state: Mutex<ClusterState>,
    dcs: DcsOptions,
    user: OsUser,
    http: reqwest::Client,
    children: Mutex<HashMap<String, Child>>,
    teardown: Mutex<Teardown>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Teardown {
    /// Stop everything and remove the directory on drop.
    Owned,
    /// Stop everything on drop but keep the directory (a failed start, for its logs).
    KeepDir,
    /// Leave everything running (persistent cluster, or already shut down).
    Nothing,
}

fn default_root() -> PathBuf {
    std::env::var_os("PGHA_TESTKIT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/pgha-testkit"))
}

fn mkdir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| Error::Setup(format!("creating {}: {e}", path.display())))
}

/// Writes a file readable by its owner only.
pub(crate) fn write_file(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)))
        .map_err(|e| Error::Setup(format!("writing {}: {e}", path.display())))
}

/// Stops and removes every cluster under `$PGHA_TESTKIT_DIR` whose owning process is gone — the
/// leftovers of a run that was killed before it could clean up. [`LocalClusterBuilder::start`]
/// does this by itself; persistent clusters are never touched.
pub fn reap_stale_clusters() {
    reap_stale(&default_root());
}

impl LocalCluster {
    /// Patroni's `maximum_lag_on_failover` in the clusters the testkit starts, in bytes: a
    /// standby further behind the last leader position Patroni knows is not promoted.
    pub const MAXIMUM_LAG_ON_FAILOVER: u64 = 1_048_576;

    /// A builder with test-friendly defaults (3 members, 3 etcd members, fast timings, REST auth,
    /// pgBackRest).
    pub fn builder() -> LocalClusterBuilder {
        LocalClusterBuilder::default()
    }

    // ----- locks -------------------------------------------------------------------------------

    fn lock_state(&self) -> MutexGuard<'_, ClusterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_children(&self) -> MutexGuard<'_, HashMap<String, Child>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_teardown(&self) -> MutexGuard<'_, Teardown> {
        self.teardown.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reap_child(&self, key: &str) {
        if let Some(mut child) = self.lock_children().remove(key) {
            let _ = child.wait();
        }
    }

    // ----- accessors ---------------------------------------------------------------------------

    /// The Patroni scope (also the pgBackRest stanza name).
    pub fn scope(&self) -> String {
        self.lock_state().scope.clone()
    }

    /// The Patroni version running this cluster, e.g. `3.0.2`.
    pub fn patroni_version(&self) -> String {
        self.lock_state().patroni_version.clone()
    }

    /// The Patroni major version (3 or 4).
    pub fn patroni_major(&self) -> u32 {
        self.patroni_version()
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0)
    }

    /// Timing settings written to the DCS.
    pub fn timing(&self) -> Timing {
        self.lock_state().timing
    }

    /// The cluster directory (configs, data directories, logs, pgBackRest repository).
    pub fn base_dir(&self) -> PathBuf {
        self.lock_state().base_dir.clone()
    }

    /// Member names (`node1`, `node2`, …).
    pub fn member_names(&self) -> Vec<String> {
        self.lock_state().members.iter().map(|m| m.name.clone()).collect()
    }

    /// Patroni REST API base URLs of all members.
    pub fn patroni_urls(&self) -> Vec<String> {
        self.lock_state().members.iter().map(MemberState::api_url).collect()
    }

    /// Patroni REST API base URL of one member.
    pub fn api_url(&self, member: &str) -> Result<String> {
        Ok(self.lock_state().member(member)?.api_url())
    }

    /// PostgreSQL port of one member.
    pub fn pg_port(&self, member: &str) -> Result<u16> {
        Ok(self.lock_state().member(member)?.pg_port)
    }

    /// All credentials (application role, superuser, replication, REST).
    pub fn credentials(&self) -> ClusterCredentials {
        self.lock_state().credentials.clone()
    }

    /// The application database name.
    pub fn database(&self) -> String {
        self.lock_state().app_database.clone()
    }

    /// A libpq key/value DSN for the application role on one member.
    pub fn dsn(&self, member: &str) -> Result<String> {
        let state = self.lock_state();
        let m = state.member(member)?;
        let app = &state.credentials.app;
        Ok(format!(
            "host=127.0.0.1 port={} user={} password={} dbname={}",
            m.pg_port,
            app.username,
            app.password.expose(),
            state.app_database
        ))
    }

    /// A libpq key/value DSN for the superuser on one member and database.
    pub fn superuser_dsn(&self, member: &str, dbname: &str) -> Result<String> {
        let state = self.lock_state();
        let m = state.member(member)?;
        let su = &state.credentials.superuser;
        Ok(format!(
            "host=127.0.0.1 port={} user={} password={} dbname={dbname}",
            m.pg_port,
            su.username,
            su.password.expose()
        ))
    }

    /// Connection details for everything in the cluster.
    pub fn info(&self) -> ClusterInfo {
        let state = self.lock_state();
        ClusterInfo {
            scope: state.scope.clone(),
            patroni_version: state.patroni_version.clone(),
            base_dir: state.base_dir.clone(),
            etcd_urls: state.etcd_urls(),
            timing: state.timing,
            database: state.app_database.clone(),
            members: state
                .members
                .iter()
                .map(|m| MemberAddress {
                    name: m.name.clone(),
                    api_url: m.api_url(),
                    host: "127.0.0.1".into(),
                    port: m.pg_port,
                    data_dir: m.data_dir(),
                })
                .collect(),
            credentials: state.credentials.clone(),
            pgbackrest_config: state.pgbackrest.then(|| state.pgbackrest_config()),
            ca_file: state.ca_file(),
        }
    }

    /// Every live process this cluster started (each etcd member, Patroni, HAProxy) or that runs
    /// on its data directories (postmasters).
    pub fn processes(&self) -> Vec<ProcRef> {
        self.lock_state().live_processes()
    }

    /// The PID record of a member's Patroni process, if running.
    pub fn patroni_process(&self, member: &str) -> Result<Option<ProcRef>> {
        Ok(self.lock_state().member(member)?.patroni.filter(ProcRef::is_alive))
    }

    /// The PID record of a member's postmaster, if running.
    pub fn postmaster_process(&self, member: &str) -> Result<Option<ProcRef>> {
        Ok(postmaster(&self.lock_state().member(member)?.data_dir()))
    }

    /// The OS user cluster processes run as, when it differs from the current one.
    #[cfg(feature = "admin")]
    pub(crate) fn os_user_switch(&self) -> Option<String> {
        self.user.switches().then(|| self.user.name.clone())
    }

    /// Whether the cluster was built with Patroni's `synchronous_mode`.
    pub fn is_synchronous(&self) -> bool {
        self.dcs.synchronous_mode
    }

    /// The directory of a member's Unix-domain socket (its `unix_socket_directories`), for a
    /// libpq `host=` that starts with `/`. The socket accepts every role without a password
    /// (`local all all trust`).
    pub fn socket_dir(&self, member: &str) -> Result<PathBuf> {
        Ok(self.lock_state().member(member)?.dir.clone())
    }

    /// A member's data directory.
    pub fn data_dir(&self, member: &str) -> Result<PathBuf> {
        Ok(self.lock_state().member(member)?.data_dir())
    }

    /// A member's Patroni configuration file (`patroni.yml`), as Patroni reads it — for tools
    /// that take one, as `patronictl -c` and `pgha --patroni-config` do.
    pub fn patroni_config_file(&self, member: &str) -> Result<PathBuf> {
        Ok(self.lock_state().member(member)?.config_file())
    }

    /// The application role's client certificate and key (PEM, signed by the cluster's CA, for
    /// the role's name), when the cluster was built with
    /// [`client_certificates`](crate::LocalClusterBuilder::client_certificates).
    pub fn client_cert_files(&self) -> Option<(PathBuf, PathBuf)> {
        self.lock_state().client_cert_files()
    }

    /// The CA certificate (PEM) that signed the cluster's server certificate, when the cluster
    /// was built with [`tls`](crate::LocalClusterBuilder::tls).
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.lock_state().ca_file()
    }

    // ----- lifecycle ---------------------------------------------------------------------------

    /// Reconnects to a persistent cluster started by another process (for example
    /// `pgha-devcluster up`) from its directory.
    pub fn attach(base_dir: impl AsRef<Path>) -> Result<Self> {
        let state = ClusterState::load(base_dir.as_ref())?;
        let (state_ca, identity) = (state.ca_file(), state.client_cert_files());
        Ok(Self {
            state: Mutex::new(state),
            dcs: DcsOptions::default(),
            user: OsUser::for_cluster()?,
            http: rest::http_client(state_ca.as_deref(), identity.as_ref())?,
            children: Mutex::new(HashMap::new()),
            teardown: Mutex::new(Teardown::Nothing),
        })
    }

    /// Re-reads the cluster's state file, after another process (such as `pgha-devcluster node
    /// start`) started or stopped members of this cluster, so that this handle knows every
    /// process it must stop.
    pub fn reload_state(&self) -> Result<()> {
        let base = self.lock_state().base_dir.clone();
        let fresh = ClusterState::load(&base)?;
        *self.lock_state() = fresh;
        Ok(())
    }

    /// Leaves the cluster running when this handle is dropped (it can be stopped later with
    /// [`attach`](Self::attach) and [`shutdown`](Self::shutdown)).
    pub fn detach(self) {
        let mut state = self.lock_state();
        state.owner = None;
        let _ = state.save();
        drop(state);
        *self.lock_teardown() = Teardown::Nothing;
    }

    /// Keeps the cluster directory (data and every log) when this handle is dropped; the
    /// processes are still stopped. For a run that failed and needs looking into.
    pub fn keep_logs(&self) {
        *self.lock_teardown() = Teardown::KeepDir;
    }

    /// Stops every process of the cluster (Patroni, then PostgreSQL, then every etcd member, frozen
    /// ones included), by PID, and removes the cluster directory. Idempotent; also runs on drop.
    pub fn shutdown(&self) {
        self.stop_everything(true);
    }

    fn stop_everything(&self, remove_dir: bool) {
        *self.lock_teardown() = Teardown::Nothing;
        let mut state = self.lock_state();
        state.stop_all(Duration::from_secs(15));
        for (_, mut child) in self.lock_children().drain() {
            let _ = child.wait();
        }
        if remove_dir {
            if let Err(e) = std::fs::remove_dir_all(&state.base_dir) {
                tracing::warn!(dir = %state.base_dir.display(), error = %e, "could not remove cluster dir");
            }
        } else {
            let _ = state.save();
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let teardown = *self.lock_teardown();
        match teardown {
            Teardown::Nothing => {}
            Teardown::KeepDir => self.stop_everything(false),
            Teardown::Owned if std::thread::panicking() => {
                let dir = self.base_dir();
                eprintln!("pgha-testkit: test panicked; cluster logs kept in {}", dir.display());
                self.stop_everything(false);
            }
            Teardown::Owned => self.stop_everything(true),
        }
    }
}
