//! [`LocalCluster`]: a running etcd + Patroni + PostgreSQL cluster on loopback.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::Serialize;
use serde_json::json;
use tokio_postgres::NoTls;

use crate::builder::{LocalClusterBuilder, PatroniFlavor};
use crate::config_files::{self, DcsOptions, PGBACKREST_BIN};
use crate::error::{Error, Result};
use crate::ports::free_ports;
use crate::process::{children_of, cmdline, node_processes, postmaster, spawn_logged, OsUser, ProcRef};
use crate::rest::{self, MemberStatus};
use crate::state::{reap_stale, ClusterCredentials, ClusterState, Credentials, EtcdState, MemberState, Timing};

const APP_USER: &str = "pgha_app";
const ETCDCTL_BIN: &str = "/usr/bin/etcdctl";

/// The cgroup of one node's processes.
fn node_group(scope: &str, member: &str) -> String {
    format!("pgha-{scope}-{member}")
}
const APP_DATABASE: &str = "pgha";
const SQL_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// etcd client URL.
    pub etcd_url: String,
    /// Timing written to the DCS.
    pub timing: Timing,
    /// The application database.
    pub database: String,
    /// One entry per member.
    pub members: Vec<MemberInfo>,
    /// All credentials.
    pub credentials: ClusterCredentials,
    /// The pgBackRest configuration file, when pgBackRest is set up.
    pub pgbackrest_config: Option<PathBuf>,
    /// The CA certificate of a cluster built with TLS.
    pub ca_file: Option<PathBuf>,
}

/// HAProxy's ports (see [`LocalCluster::start_haproxy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HaproxyPorts {
    /// Routes to the primary.
    pub primary: u16,
    /// Routes to the replicas, round robin.
    pub replicas: u16,
}

/// How to reach one member.
#[derive(Debug, Clone, Serialize)]
pub struct MemberInfo {
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

/// A full backup or one relative to the last backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackupType {
    /// Full copy.
    Full,
    /// Changes since the last full backup.
    Diff,
    /// Changes since the last backup of any type.
    Incr,
}

/// A real local Patroni cluster: one etcd and N Patroni-managed PostgreSQL 15 nodes on loopback,
/// with pgvector, pg_stat_statements and a pgBackRest stanza.
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

fn random_suffix() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 8).to_lowercase()
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

/// The last `n` lines of a log file, for error messages.
fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

async fn patroni_version(bin: &Path) -> Result<String> {
    let out = tokio::process::Command::new(bin)
        .arg("--version")
        .output()
        .await
        .map_err(|e| {
            Error::Setup(format!(
                "running {} --version: {e} (run scripts/install-deps.sh)",
                bin.display()
            ))
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .last()
        .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .ok_or_else(|| Error::Setup(format!("unexpected `{} --version` output: {text:?}", bin.display())))
}

/// Fast timings for tests, respecting the minimum `ttl` of 20 s that Patroni enforces from 3.2 on.
fn default_timing(version: &str) -> Timing {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let ttl = if (major, minor) >= (3, 2) { 20 } else { 10 };
    Timing {
        ttl,
        loop_wait: 2,
        retry_timeout: 3,
    }
}

/// Stops and removes every cluster under `$PGHA_TESTKIT_DIR` whose owning process is gone — the
/// leftovers of a run that was killed before it could clean up. [`LocalClusterBuilder::start`]
/// does this by itself; persistent clusters are never touched.
pub fn reap_stale_clusters() {
    reap_stale(&default_root());
}

/// Polls `probe` every 200 ms until it returns `Ok(Some(_))` or `timeout` passes.
///
/// Errors from the probe count as "not yet"; the last one is reported on timeout.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining.max(Duration::from_millis(1)), probe()).await {
            Ok(Ok(Some(v))) => return Ok(v),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => last_error = Some(e.to_string()),
            // The deadline cut the probe short: keep the last real error, if there was one.
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                timeout,
                last_error,
            });
        }
        tokio::time::sleep(Duration::from_millis(200).min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

impl LocalCluster {
    /// A builder with test-friendly defaults (3 members, fast timings, REST auth, pgBackRest).
    pub fn builder() -> LocalClusterBuilder {
        LocalClusterBuilder::default()
    }

    pub(crate) async fn start(b: LocalClusterBuilder) -> Result<Self> {
        let user = OsUser::for_cluster()?;
        let patroni_bin = b.patroni.binary();
        if !patroni_bin.exists() {
            let hint = if b.patroni == PatroniFlavor::V4 {
                " (run scripts/install-deps.sh)"
            } else {
                ""
            };
            return Err(Error::Setup(format!(
                "Patroni not found at {}{hint}",
                patroni_bin.display()
            )));
        }
        let patroni_version = patroni_version(&patroni_bin).await?;
        let timing = b.timing.unwrap_or_else(|| default_timing(&patroni_version));

        let scope = b.scope.clone().unwrap_or_else(|| format!("pgha-{}", random_suffix()));
        let base_dir = match &b.base_dir {
            Some(dir) => dir.clone(),
            None => {
                let root = default_root();
                mkdir(&root)?;
                reap_stale(&root);
                root.join(&scope)
            }
        };
        if base_dir.join(crate::state::STATE_FILE).exists() {
            return Err(Error::Setup(format!(
                "{} already holds a cluster; stop it first (pgha-devcluster down) or pick another directory",
                base_dir.display()
            )));
        }
        mkdir(&base_dir)?;

        let ports = free_ports(2 + 2 * b.members)?;
        let members = (0..b.members)
            .map(|i| MemberState {
                name: format!("node{}", i + 1),
                pg_port: ports[2 + 2 * i],
                rest_port: ports[3 + 2 * i],
                dir: base_dir.join(format!("node{}", i + 1)),
                patroni: None,
                https: b.tls,
            })
            .collect::<Vec<_>>();
        let state = ClusterState {
            scope,
            base_dir: base_dir.clone(),
            owner: if b.persistent {
                None
            } else {
                ProcRef::of(std::process::id() as i32)
            },
            patroni_bin,
            patroni_version,
            timing,
            pgbackrest: b.pgbackrest,
            standby_restore_command: b.standby_restore_command,
            tls: b.tls,
            app_database: APP_DATABASE.to_owned(),
            credentials: ClusterCredentials {
                superuser: Credentials::new("postgres"),
                replication: Credentials::new("replicator"),
                app: Credentials::new(APP_USER),
                rest: b.rest_auth.then(|| Credentials::new("pgha")),
            },
            etcd: EtcdState {
                client_port: ports[0],
                peer_port: ports[1],
                proc: None,
            },
            members,
            haproxy: None,
        };

        let cluster = Self {
            state: Mutex::new(state),
            dcs: b.dcs.clone(),
            user,
            http: rest::http_client(None)?,
            children: Mutex::new(HashMap::new()),
            teardown: Mutex::new(if b.persistent {
                Teardown::Nothing
            } else {
                Teardown::Owned
            }),
        };
        let mut cluster = cluster;
        match cluster.bring_up(b.start_timeout).await {
            Ok(()) => Ok(cluster),
            Err(e) => {
                *cluster.lock_teardown() = Teardown::KeepDir;
                let dir = base_dir.display();
                let logs = cluster.log_summary();
                drop(cluster);
                Err(Error::Setup(format!(
                    "cluster failed to start: {e}\n(logs kept in {dir})\n{logs}"
                )))
            }
        }
    }

    async fn bring_up(&mut self, timeout: Duration) -> Result<()> {
        self.write_files()?;
        let ca = self.lock_state().ca_file();
        if ca.is_some() {
            self.http = rest::http_client(ca.as_deref())?;
        }
        self.start_etcd().await?;
        let names = self.member_names();
        for name in &names {
            self.start_node(name)?;
        }
        self.wait_ready(timeout).await?;
        self.bootstrap_app().await?;
        if self.lock_state().pgbackrest {
            self.pgbackrest(&["stanza-create"]).await?;
            // Segments completed before the stanza existed failed to archive, and the archiver
            // backs off for a minute after three failures. `check` switches WAL (which wakes the
            // archiver) and waits until the segment is archived, so the cluster starts with
            // working archiving.
            self.pgbackrest(&["check"]).await?;
        }
        tracing::info!(scope = %self.scope(), "local cluster ready");
        Ok(())
    }

    fn write_files(&self) -> Result<()> {
        let state = self.lock_state();
        mkdir(&state.base_dir.join("etcd"))?;
        if state.tls {
            crate::tls::generate(&state.tls_dir())?;
        }
        if state.pgbackrest {
            let dir = state.pgbackrest_dir();
            for sub in ["repo", "log", "lock", "spool"] {
                mkdir(&dir.join(sub))?;
            }
            write_file(&state.pgbackrest_config(), &config_files::pgbackrest_config(&state))?;
        }
        for m in &state.members {
            mkdir(&m.dir)?;
            let config = config_files::patroni_config(&state, m, &self.dcs);
            let text = serde_json::to_string_pretty(&config).map_err(|e| Error::Setup(e.to_string()))?;
            write_file(&m.config_file(), &text)?;
        }
        state.save()?;
        self.user.own(&state.base_dir)
    }

    /// A summary of the last log lines of every process, for failure messages.
    fn log_summary(&self) -> String {
        let state = self.lock_state();
        let mut out = format!("--- etcd.log ---\n{}\n", log_tail(&state.base_dir.join("etcd.log"), 10));
        for m in &state.members {
            out.push_str(&format!(
                "--- {}/patroni.log ---\n{}\n",
                m.name,
                log_tail(&m.log_file(), 15)
            ));
            let pg_log = m.data_dir().join("log/postgresql.log");
            out.push_str(&format!(
                "--- {}/postgresql.log ---\n{}\n",
                m.name,
                log_tail(&pg_log, 10)
            ));
        }
        out
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
            etcd_url: state.etcd_url(),
            timing: state.timing,
            database: state.app_database.clone(),
            members: state
                .members
                .iter()
                .map(|m| MemberInfo {
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

    /// Every live process this cluster started (etcd, Patroni) or that runs on its data
    /// directories (postmasters).
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

    // ----- Patroni views -----------------------------------------------------------------------

    /// `GET /cluster` from the first member that answers.
    pub async fn cluster_status(&self) -> Result<Vec<MemberStatus>> {
        let mut last = None;
        for url in self.patroni_urls() {
            match rest::cluster(&self.http, &url).await {
                Ok(members) => return Ok(members),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::NotRunning("Patroni".into())))
    }

    /// The current leader according to Patroni (`role: leader` in `/cluster`).
    pub async fn leader(&self) -> Result<String> {
        self.cluster_status()
            .await?
            .into_iter()
            .find(|m| m.role == "leader")
            .map(|m| m.name)
            .ok_or_else(|| Error::NotRunning("a leader".into()))
    }

    // ----- SQL ---------------------------------------------------------------------------------

    /// Connects to a member as `user` (with its password) to `dbname`.
    pub async fn connect_as(&self, member: &str, user: &Credentials, dbname: &str) -> Result<tokio_postgres::Client> {
        let port = self.pg_port(member)?;
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user(&user.username)
            .password(user.password.expose())
            .dbname(dbname)
            .application_name("pgha-testkit")
            .connect_timeout(Duration::from_secs(3));
        let (client, connection) = tokio::time::timeout(SQL_TIMEOUT, config.connect(NoTls))
            .await
            .map_err(|_| Error::Timeout {
                what: format!("connecting to {member}"),
                timeout: SQL_TIMEOUT,
                last_error: None,
            })?
            .map_err(|source| Error::Sql {
                member: member.to_owned(),
                source,
            })?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Connects to a member's application database as the application role.
    pub async fn connect(&self, member: &str) -> Result<tokio_postgres::Client> {
        let creds = self.credentials().app;
        self.connect_as(member, &creds, &self.database()).await
    }

    /// Connects to a member as the superuser, to `dbname`.
    pub async fn connect_superuser(&self, member: &str, dbname: &str) -> Result<tokio_postgres::Client> {
        let creds = self.credentials().superuser;
        self.connect_as(member, &creds, dbname).await
    }

    async fn sql(&self, member: &str, client: &tokio_postgres::Client, sql: &str) -> Result<Vec<tokio_postgres::Row>> {
        tokio::time::timeout(SQL_TIMEOUT, client.query(sql, &[]))
            .await
            .map_err(|_| Error::Timeout {
                what: format!("`{sql}` on {member}"),
                timeout: SQL_TIMEOUT,
                last_error: None,
            })?
            .map_err(|source| Error::Sql {
                member: member.to_owned(),
                source,
            })
    }

    /// Runs one statement as the superuser on `member` (database `postgres`) and returns its rows.
    pub async fn superuser_query(&self, member: &str, sql: &str) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.connect_superuser(member, "postgres").await?;
        self.sql(member, &client, sql).await
    }

    /// True if the member answers SQL and is a primary (`pg_is_in_recovery()` is false).
    pub async fn is_writable_primary(&self, member: &str) -> Result<bool> {
        let rows = self.superuser_query(member, "SELECT pg_is_in_recovery()").await?;
        Ok(!rows[0].get::<_, bool>(0))
    }

    /// True if the member is in recovery and its WAL receiver is streaming.
    pub async fn is_streaming(&self, member: &str) -> Result<bool> {
        let rows = self
            .superuser_query(
                member,
                "SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver) = 'streaming'",
            )
            .await?;
        Ok(rows[0].get::<_, bool>(0) && rows[0].get::<_, Option<bool>>(1).unwrap_or(false))
    }

    // ----- waiting -----------------------------------------------------------------------------

    /// Waits until Patroni reports a leader, every member whose Patroni runs is known to it, the
    /// leader is a writable primary and every other running member streams (checked with SQL)
    /// on the leader's timeline.
    /// Returns the leader's name.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<String> {
        wait_for("a leader and streaming replicas", timeout, || async {
            let status = self.cluster_status().await?;
            let Some(leader) = status.iter().find(|m| m.role == "leader" && m.state == "running") else {
                return Ok(None);
            };
            if !self.is_writable_primary(&leader.name).await? {
                return Ok(None);
            }
            let running: Vec<String> = {
                let state = self.lock_state();
                state
                    .members
                    .iter()
                    .filter(|m| m.patroni.is_some_and(|p| p.is_alive()))
                    .map(|m| m.name.clone())
                    .collect()
            };
            for name in running.iter().filter(|n| **n != leader.name) {
                if !self.follows_leader(&status, name).await? {
                    return Ok(None);
                }
            }
            Ok(Some(leader.name.clone()))
        })
        .await
    }

    /// Waits until a member other than `old` is the Patroni leader and accepts writes; returns it.
    pub async fn wait_for_new_leader(&self, old: &str, timeout: Duration) -> Result<String> {
        wait_for("a new writable leader", timeout, || async {
            let leader = self.leader().await?;
            if leader != old && self.is_writable_primary(&leader).await? {
                Ok(Some(leader))
            } else {
                Ok(None)
            }
        })
        .await
    }

    /// Waits until `member` is a streaming replica by SQL (`pg_is_in_recovery()`, WAL receiver
    /// streaming) and Patroni agrees: `/cluster` lists it as running or streaming on the leader's
    /// timeline.
    pub async fn wait_streaming(&self, member: &str, timeout: Duration) -> Result<()> {
        wait_for(&format!("{member} to stream"), timeout, || async {
            let status = self.cluster_status().await?;
            Ok(self.follows_leader(&status, member).await?.then_some(()))
        })
        .await
    }

    /// Whether `member` streams (checked with SQL) and Patroni shows it running on the leader's
    /// timeline.
    async fn follows_leader(&self, status: &[MemberStatus], member: &str) -> Result<bool> {
        let leader_tl = status.iter().find(|m| m.role == "leader").and_then(|m| m.timeline);
        let known = status
            .iter()
            .find(|m| m.name == member)
            .is_some_and(|m| matches!(m.state.as_str(), "running" | "streaming") && m.timeline == leader_tl);
        Ok(known && self.is_streaming(member).await?)
    }

    async fn bootstrap_app(&self) -> Result<()> {
        let leader = self.leader().await?;
        let (app, db) = (self.credentials().app, self.database());
        let client = self.connect_superuser(&leader, "postgres").await?;
        // Passwords are random alphanumerics, so they need no escaping in a literal.
        let create_role = format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{u}') THEN \
             CREATE ROLE {u} LOGIN PASSWORD '{p}'; END IF; END $$",
            u = app.username,
            p = app.password.expose()
        );
        self.sql(&leader, &client, &create_role).await?;
        let exists = self
            .sql(
                &leader,
                &client,
                &format!("SELECT 1 FROM pg_database WHERE datname = '{db}'"),
            )
            .await?;
        if exists.is_empty() {
            self.sql(
                &leader,
                &client,
                &format!("CREATE DATABASE {db} OWNER {}", app.username),
            )
            .await?;
        }
        let client = self.connect_superuser(&leader, &db).await?;
        for ext in ["vector", "pg_stat_statements"] {
            self.sql(&leader, &client, &format!("CREATE EXTENSION IF NOT EXISTS {ext}"))
                .await?;
        }
        Ok(())
    }

    // ----- processes ---------------------------------------------------------------------------

    async fn start_etcd(&self) -> Result<()> {
        let (mut cmd, log) = {
            let state = self.lock_state();
            let peer = format!("http://127.0.0.1:{}", state.etcd.peer_port);
            let mut cmd = self.user.command("etcd");
            cmd.args(["--name", "etcd0", "--data-dir"])
                .arg(state.base_dir.join("etcd"))
                .args([
                    "--listen-client-urls",
                    &state.etcd_url(),
                    "--advertise-client-urls",
                    &state.etcd_url(),
                ])
                .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
                .args([
                    "--initial-cluster",
                    &format!("etcd0={peer}"),
                    "--initial-cluster-state",
                    "new",
                ])
                .args(["--initial-cluster-token", &state.scope]);
            (cmd, state.base_dir.join("etcd.log"))
        };
        cmd.env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH);
        let (child, proc) = spawn_logged(cmd, &log, "etcd")?;
        self.lock_children().insert("etcd".into(), child);
        let url = {
            let mut state = self.lock_state();
            state.etcd.proc = Some(proc);
            state.save()?;
            format!("{}/health", state.etcd_url())
        };
        wait_for("etcd to become healthy", Duration::from_secs(30), || async {
            if !proc.is_alive() {
                return Err(Error::NotRunning(format!("etcd (see {})", log.display())));
            }
            let resp = self.http.get(&url).send().await.map_err(|e| Error::Rest {
                url: url.clone(),
                message: e.to_string(),
            })?;
            Ok(resp.status().is_success().then_some(()))
        })
        .await
    }

    /// Stops etcd (SIGTERM, then SIGKILL after 10 s). Patroni loses its DCS.
    pub fn stop_etcd(&self) -> Result<()> {
        let proc = self.lock_state().etcd.proc.take();
        let proc = proc.ok_or_else(|| Error::NotRunning("etcd".into()))?;
        proc.terminate(Duration::from_secs(10));
        self.reap_child("etcd");
        self.lock_state().save()
    }

    /// Starts etcd again on the same data directory and ports, and waits until it is healthy.
    pub async fn start_etcd_again(&self) -> Result<()> {
        if self.lock_state().etcd.proc.is_some_and(|p| p.is_alive()) {
            return Ok(());
        }
        self.start_etcd().await
    }

    /// Starts a member's Patroni (which starts its PostgreSQL). Does not wait.
    pub fn start_node(&self, member: &str) -> Result<()> {
        let mut state = self.lock_state();
        let bin = state.patroni_bin.clone();
        let group = node_group(&state.scope, member);
        let m = state.member_mut(member)?;
        if m.patroni.is_some_and(|p| p.is_alive()) {
            return Ok(());
        }
        let mut cmd = self.user.command(&bin);
        cmd.arg(m.config_file()).current_dir(&m.dir);
        let (child, proc) = spawn_logged(cmd, &m.log_file(), &format!("patroni {member}"))?;
        // Each node in a cgroup of its own from the start (PostgreSQL inherits it), so that its
        // sockets — even long-lived ones — can be told apart by `partition_node`. Best effort:
        // without root or cgroup v2 only partitions are unavailable.
        if let Err(e) = crate::cgroup::enter(&group, &[proc.pid]) {
            tracing::debug!(member, error = %e, "node not placed in a cgroup");
        }
        m.patroni = Some(proc);
        state.save()?;
        drop(state);
        self.lock_children().insert(member.to_owned(), child);
        Ok(())
    }

    /// Stops a member cleanly: SIGTERM to Patroni, which shuts PostgreSQL down and releases the
    /// leader key if it holds it. SIGKILL after 30 s.
    pub fn stop_node(&self, member: &str) -> Result<()> {
        let (patroni, data_dir) = {
            let mut state = self.lock_state();
            let m = state.member_mut(member)?;
            (m.patroni.take(), m.data_dir())
        };
        let patroni = patroni.ok_or_else(|| Error::NotRunning(format!("Patroni on {member}")))?;
        patroni.signal_group(Signal::SIGCONT);
        patroni.terminate(Duration::from_secs(30));
        if let Some(pm) = postmaster(&data_dir) {
            pm.terminate(Duration::from_secs(10));
        }
        self.reap_child(member);
        self.lock_state().save()
    }

    /// Kills a whole node with SIGKILL: its Patroni and its postmaster (with all backends), as a
    /// power loss would. The leader key stays in etcd until its TTL runs out.
    pub fn kill_node(&self, member: &str) -> Result<()> {
        let (patroni, data_dir) = {
            let mut state = self.lock_state();
            let m = state.member_mut(member)?;
            (m.patroni.take(), m.data_dir())
        };
        let procs = node_processes(patroni, &data_dir);
        if procs.is_empty() {
            return Err(Error::NotRunning(format!("node {member}")));
        }
        for p in &procs {
            p.signal_group(Signal::SIGKILL);
        }
        for p in &procs {
            p.wait_gone(Duration::from_secs(10));
        }
        self.reap_child(member);
        self.lock_state().save()
    }

    /// Kills only a member's postmaster (SIGKILL); Patroni stays up and restarts it in place.
    pub fn kill_postmaster(&self, member: &str) -> Result<()> {
        let data_dir = self.lock_state().member(member)?.data_dir();
        let pm = postmaster(&data_dir).ok_or_else(|| Error::NotRunning(format!("PostgreSQL on {member}")))?;
        pm.signal(Signal::SIGKILL);
        pm.wait_gone(Duration::from_secs(10));
        Ok(())
    }

    fn signal_node(&self, member: &str, sig: Signal) -> Result<()> {
        let (patroni, data_dir) = {
            let state = self.lock_state();
            let m = state.member(member)?;
            (m.patroni, m.data_dir())
        };
        let procs = node_processes(patroni, &data_dir);
        if procs.is_empty() {
            return Err(Error::NotRunning(format!("node {member}")));
        }
        for p in &procs {
            p.signal_group(sig);
        }
        Ok(())
    }

    /// Freezes a node: SIGSTOP to its Patroni, its postmaster and every PostgreSQL backend.
    /// Past the TTL, the other members elect a new leader. Undo with [`thaw_node`](Self::thaw_node).
    pub fn freeze_node(&self, member: &str) -> Result<()> {
        self.signal_node(member, Signal::SIGSTOP)
    }

    /// Continues a frozen node (SIGCONT).
    pub fn thaw_node(&self, member: &str) -> Result<()> {
        self.signal_node(member, Signal::SIGCONT)
    }

    /// The startup (recovery) process of a standby: the one that replays WAL.
    fn startup_process(&self, member: &str) -> Result<ProcRef> {
        let data_dir = self.lock_state().member(member)?.data_dir();
        let pm = postmaster(&data_dir).ok_or_else(|| Error::NotRunning(format!("PostgreSQL on {member}")))?;
        children_of(&pm)
            .into_iter()
            // PostgreSQL titles it "postgres: <cluster_name>: startup recovering <segment>".
            .find(|p| cmdline(p).contains(": startup "))
            .ok_or_else(|| Error::NotRunning(format!("a startup (recovery) process on {member}: is it a standby?")))
    }

    /// Stops WAL replay on a standby while it keeps receiving WAL, so its replay lag grows.
    ///
    /// `pg_wal_replay_pause()` is no use here: on PostgreSQL 14+ Patroni resumes a paused replay in
    /// its next HA loop (unless the cluster is in maintenance mode). So the testkit freezes the
    /// standby's startup process (SIGSTOP), which replays WAL; the WAL receiver keeps streaming,
    /// queries keep working, and `pg_last_wal_replay_lsn()` stops moving — a replay stuck as by a
    /// long recovery conflict. Undo with [`resume_replay`](Self::resume_replay).
    pub fn pause_replay(&self, member: &str) -> Result<()> {
        self.startup_process(member)?.signal(Signal::SIGSTOP);
        Ok(())
    }

    /// Resumes WAL replay stopped by [`pause_replay`](Self::pause_replay).
    pub fn resume_replay(&self, member: &str) -> Result<()> {
        self.startup_process(member)?.signal(Signal::SIGCONT);
        Ok(())
    }

    fn rest_port(&self, member: &str) -> Result<u16> {
        Ok(self.lock_state().member(member)?.rest_port)
    }

    /// Makes a member's Patroni REST API unreachable (iptables drops packets to its port, so
    /// requests hang until they time out) while Patroni and PostgreSQL keep running. Needs root.
    /// Undone by [`restore_rest_api`](Self::restore_rest_api) and by teardown.
    pub fn block_rest_api(&self, member: &str) -> Result<()> {
        crate::firewall::drop_port(&self.scope(), self.rest_port(member)?)
    }

    /// Cuts `member` off from etcd and from its peers (both ways), as a network partition would,
    /// while clients can still reach it: each node's processes go into a cgroup of their own,
    /// iptables drops the traffic between them by cgroup, and the connections already open
    /// between them are aborted (`ss -K`). Needs root and cgroup v2. Undone by
    /// [`heal_partition`](Self::heal_partition) and by teardown.
    pub fn partition_node(&self, member: &str) -> Result<()> {
        let (scope, etcd_port, nodes) = {
            let state = self.lock_state();
            let nodes: Vec<(String, Vec<i32>, u16, u16)> = state
                .members
                .iter()
                .map(|m| {
                    let pids = node_processes(m.patroni.filter(|p| p.is_alive()), &m.data_dir())
                        .iter()
                        .map(|p| p.pid)
                        .collect();
                    (m.name.clone(), pids, m.pg_port, m.rest_port)
                })
                .collect();
            (state.scope.clone(), state.etcd.client_port, nodes)
        };
        let me = nodes
            .iter()
            .find(|n| n.0 == member)
            .ok_or_else(|| Error::UnknownMember(member.to_owned()))?;
        let group = |name: &str| node_group(&scope, name);
        // Processes started before the groups existed (or whose group was lost) join now; their
        // already open sockets keep the group they were created in.
        for (name, pids, _, _) in &nodes {
            crate::cgroup::enter(&group(name), pids)?;
        }
        let mut cut_off_from = vec![etcd_port];
        for (name, _, pg, rest) in nodes.iter().filter(|n| n.0 != member) {
            cut_off_from.extend([*pg, *rest]);
            crate::firewall::cut_from_cgroup(&scope, &group(name), &[me.2, me.3])?;
        }
        crate::firewall::cut_from_cgroup(&scope, &group(member), &cut_off_from)
    }

    /// Undoes [`partition_node`](Self::partition_node).
    pub fn heal_partition(&self) -> Result<()> {
        crate::firewall::remove_cgroup_rules(&self.scope())
    }

    /// Undoes [`block_rest_api`](Self::block_rest_api).
    pub fn restore_rest_api(&self, member: &str) -> Result<()> {
        crate::firewall::allow_port(&self.scope(), self.rest_port(member)?)
    }

    // ----- Patroni operations ------------------------------------------------------------------

    async fn post_to_leader(&self, endpoint: &str, body: serde_json::Value) -> Result<String> {
        let leader = self.leader().await.ok();
        let url = match &leader {
            Some(l) => self.api_url(l)?,
            None => self
                .patroni_urls()
                .into_iter()
                .next()
                .ok_or_else(|| Error::NotRunning("Patroni".into()))?,
        };
        let auth = self.credentials().rest;
        rest::post(
            &self.http,
            &url,
            endpoint,
            &body,
            auth.as_ref(),
            Duration::from_secs(60),
        )
        .await
    }

    /// `POST /switchover` from the current leader, to `candidate` or to any healthy replica.
    /// Returns Patroni's answer once it reports success (it waits for the new leader itself).
    pub async fn switchover(&self, candidate: Option<&str>) -> Result<String> {
        let leader = self.leader().await?;
        let mut body = json!({ "leader": leader });
        if let Some(c) = candidate {
            body["candidate"] = json!(c);
        }
        self.post_to_leader("switchover", body).await
    }

    /// `POST /reinitialize` on a replica: Patroni wipes its data directory and clones it again
    /// from the leader (the way out for a replica that can no longer follow, e.g. one left on a
    /// diverged timeline). Does not wait; see [`wait_streaming`](Self::wait_streaming).
    pub async fn reinitialize(&self, member: &str) -> Result<String> {
        let url = self.api_url(member)?;
        let auth = self.credentials().rest;
        rest::post(
            &self.http,
            &url,
            "reinitialize",
            &json!({ "force": true }),
            auth.as_ref(),
            Duration::from_secs(30),
        )
        .await
    }

    /// `POST /failover` to `candidate` (works without a leader).
    pub async fn failover(&self, candidate: &str) -> Result<String> {
        self.post_to_leader("failover", json!({ "candidate": candidate })).await
    }

    // ----- pgBackRest --------------------------------------------------------------------------

    /// Starts HAProxy in front of the cluster the way Patroni's documentation sets it up: one
    /// port for the primary (health check `GET /primary` on each member's REST API) and one for
    /// the replicas (`GET /replica`, round robin), with `inter 3s fall 3 rise 2
    /// on-marked-down shutdown-sessions`. Returns once the primary port serves PostgreSQL.
    /// Stopped with the cluster.
    pub async fn start_haproxy(&self) -> Result<HaproxyPorts> {
        if self.lock_state().haproxy.is_some_and(|p| p.is_alive()) {
            return Err(Error::Setup("HAProxy is already running for this cluster".into()));
        }
        let ports = free_ports(2)?;
        let ports = HaproxyPorts {
            primary: ports[0],
            replicas: ports[1],
        };
        let (config_path, log, text) = {
            let state = self.lock_state();
            let text = config_files::haproxy_config(&state, ports.primary, ports.replicas);
            (
                state.base_dir.join("haproxy.cfg"),
                state.base_dir.join("haproxy.log"),
                text,
            )
        };
        write_file(&config_path, &text)?;
        self.user.own(&config_path)?;
        let mut cmd = self.user.command("haproxy");
        cmd.arg("-db").arg("-f").arg(&config_path);
        let (child, proc) = spawn_logged(cmd, &log, "haproxy")?;
        self.lock_children().insert("haproxy".into(), child);
        {
            let mut state = self.lock_state();
            state.haproxy = Some(proc);
            state.save()?;
        }
        // HAProxy starts every server as up; the documented `fall 3` x `inter 3s` takes up to
        // ~9 s to take the primary out of the replicas' pool. Wait until both ports route right.
        let leader = self.leader().await?;
        let leader_port = self.pg_port(&leader)?.to_string();
        for (port, want_leader, what) in [
            (ports.primary, true, "HAProxy's primary port to reach the leader"),
            (ports.replicas, false, "HAProxy's replicas port to reach only replicas"),
        ] {
            wait_for(what, Duration::from_secs(60), || async {
                if !proc.is_alive() {
                    return Err(Error::NotRunning(format!("haproxy (see {})", log.display())));
                }
                // Several connections in a row, so round robin shows every server in the pool.
                for _ in 0..4 {
                    match self.port_through_haproxy(port).await {
                        Some(p) if (p == leader_port) == want_leader => {}
                        _ => return Ok(None),
                    }
                }
                Ok(Some(()))
            })
            .await?;
        }
        Ok(ports)
    }

    /// The PostgreSQL port of the server HAProxy's `port` routes a new connection to.
    async fn port_through_haproxy(&self, port: u16) -> Option<String> {
        let creds = self.credentials().app;
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user(&creds.username)
            .password(creds.password.expose())
            .dbname(self.database())
            .connect_timeout(Duration::from_secs(1));
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.ok()?;
        tokio::spawn(conn);
        client.query_one("SHOW port", &[]).await.ok().map(|r| r.get(0))
    }

    /// Empties a stopped member's data directory (leaving it in place, owned by the cluster's OS
    /// user, mode 0700), so Patroni bootstraps or re-clones it on its next start.
    pub fn clear_data_dir(&self, member: &str) -> Result<()> {
        let data_dir = self.lock_state().member(member)?.data_dir();
        if postmaster(&data_dir).is_some() {
            return Err(Error::Setup(format!(
                "PostgreSQL still runs on {member}; stop the node first"
            )));
        }
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir)
                .map_err(|e| Error::Setup(format!("removing {}: {e}", data_dir.display())))?;
        }
        mkdir(&data_dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::Setup(format!("chmod {}: {e}", data_dir.display())))?;
        }
        self.user.own(&data_dir)
    }

    /// Removes every key of the cluster from etcd (what `patronictl remove <scope>` does).
    pub fn clear_dcs(&self) -> Result<()> {
        let (endpoint, prefix) = {
            let state = self.lock_state();
            (
                format!("127.0.0.1:{}", state.etcd.client_port),
                format!("/pgha/{}/", state.scope),
            )
        };
        crate::process::run_to_completion(
            std::process::Command::new(ETCDCTL_BIN).env("ETCDCTL_API", "3").args([
                "--endpoints",
                &endpoint,
                "--command-timeout=10s",
                "del",
                "--prefix",
                &prefix,
            ]),
            &format!("etcdctl del --prefix {prefix}"),
            "",
        )
        .map(drop)
    }

    /// Sets `bootstrap.method` to `name` with `bootstrap.<name>` = `method` in a member's Patroni
    /// configuration, or restores the default (`initdb`) when `method` is `None`. Takes effect
    /// on the member's next bootstrap.
    pub fn set_bootstrap_method(&self, member: &str, name: &str, method: Option<&serde_json::Value>) -> Result<()> {
        let file = self.lock_state().member(member)?.config_file();
        let text =
            std::fs::read_to_string(&file).map_err(|e| Error::Setup(format!("reading {}: {e}", file.display())))?;
        let mut config: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::Setup(format!("{}: {e}", file.display())))?;
        let bootstrap = config
            .get_mut("bootstrap")
            .and_then(serde_json::Value::as_object_mut)
            .ok_or_else(|| Error::Setup(format!("{} has no bootstrap section", file.display())))?;
        match method {
            Some(m) => {
                bootstrap.insert("method".into(), serde_json::json!(name));
                bootstrap.insert(name.into(), m.clone());
            }
            None => {
                bootstrap.remove("method");
                bootstrap.remove(name);
            }
        }
        let text = serde_json::to_string_pretty(&config).map_err(|e| Error::Setup(e.to_string()))?;
        write_file(&file, &text)?;
        self.user.own(&file)
    }

    /// The OS user cluster processes run as, when it differs from the current one.
    pub(crate) fn os_user_switch(&self) -> Option<String> {
        self.user.switches().then(|| self.user.name.clone())
    }

    /// Whether the cluster was built with Patroni's `synchronous_mode`.
    pub fn is_synchronous(&self) -> bool {
        self.dcs.synchronous_mode
    }

    /// A member's data directory.
    pub fn data_dir(&self, member: &str) -> Result<PathBuf> {
        Ok(self.lock_state().member(member)?.data_dir())
    }

    /// The CA certificate (PEM) that signed the cluster's server certificate, when the cluster
    /// was built with [`tls`](crate::LocalClusterBuilder::tls).
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.lock_state().ca_file()
    }

    /// Runs `pgbackrest --config=<cluster config> --stanza=<scope> <args…>` as the cluster's OS user
    /// and returns its stdout. A non-zero exit is an [`Error::Command`] carrying pgBackRest's code.
    pub async fn pgbackrest(&self, args: &[&str]) -> Result<String> {
        let (config, scope) = {
            let state = self.lock_state();
            if !state.pgbackrest {
                return Err(Error::Setup("this cluster was built without pgBackRest".into()));
            }
            (state.pgbackrest_config(), state.scope.clone())
        };
        let mut cmd = self.user.command(PGBACKREST_BIN);
        cmd.arg(format!("--config={}", config.display()))
            .arg(format!("--stanza={scope}"))
            .args(args);
        let command = format!("pgbackrest {}", args.join(" "));
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .map_err(|e| Error::Setup(format!("{command}: {e}")))?
            .map_err(|e| Error::Setup(format!("{command}: {e}")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::Command {
                command,
                code: out.status.code(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stderr),
                    String::from_utf8_lossy(&out.stdout)
                ),
            })
        }
    }

    /// Takes a backup from the current primary.
    pub async fn backup(&self, kind: BackupType) -> Result<()> {
        let kind = match kind {
            BackupType::Full => "--type=full",
            BackupType::Diff => "--type=diff",
            BackupType::Incr => "--type=incr",
        };
        self.pgbackrest(&[kind, "backup"]).await.map(drop)
    }

    /// `pgbackrest info --output=json`, parsed.
    pub async fn backup_info(&self) -> Result<serde_json::Value> {
        let text = self.pgbackrest(&["--output=json", "info"]).await?;
        serde_json::from_str(&text).map_err(|e| Error::Setup(format!("pgbackrest info JSON: {e}: {text}")))
    }

    // ----- lifecycle ---------------------------------------------------------------------------

    /// Reconnects to a persistent cluster started by another process (for example
    /// `pgha-devcluster up`) from its directory.
    pub fn attach(base_dir: impl AsRef<Path>) -> Result<Self> {
        let state = ClusterState::load(base_dir.as_ref())?;
        let state_ca = state.ca_file();
        Ok(Self {
            state: Mutex::new(state),
            dcs: DcsOptions::default(),
            user: OsUser::for_cluster()?,
            http: rest::http_client(state_ca.as_deref())?,
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

    /// Stops every process of the cluster (Patroni, then PostgreSQL, then etcd), by PID, and removes
    /// the cluster directory. Idempotent; also runs on drop.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timing_respects_patroni_minimums() {
        assert_eq!(default_timing("3.0.2").ttl, 10);
        assert_eq!(default_timing("3.2.0").ttl, 20);
        assert_eq!(default_timing("4.1.5").ttl, 20);
        for v in ["3.0.2", "4.1.5"] {
            let t = default_timing(v);
            assert!(t.loop_wait + 2 * t.retry_timeout <= t.ttl, "{v}: {t:?}");
        }
    }

    #[tokio::test]
    async fn wait_for_reports_the_last_error_on_timeout() {
        let mut calls = 0;
        let err = wait_for::<(), _, _>("nothing", Duration::from_millis(300), || {
            calls += 1;
            let n = calls;
            async move { Err(Error::NotRunning(format!("attempt {n}"))) }
        })
        .await
        .expect_err("must time out");
        let text = err.to_string();
        assert!(text.contains("nothing") && text.contains("attempt"), "{text}");
    }

    #[tokio::test]
    async fn wait_for_returns_the_first_value() {
        let mut calls = 0;
        let v = wait_for("third call", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move { Ok((n >= 3).then_some(n)) }
        })
        .await
        .expect("value");
        assert_eq!(v, 3);
    }
}
