//! [`LocalClusterBuilder`]: how a cluster is configured before it starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cluster::LocalCluster;
use crate::config_files::DcsOptions;
use crate::error::{Error, Result};
use crate::state::Timing;

/// Which Patroni runs the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatroniFlavor {
    /// Debian's packaged Patroni (`/usr/bin/patroni`, 3.0.2 on bookworm).
    Debian,
    /// Patroni 4.1.x from the venv that `scripts/install-deps.sh` creates
    /// (`$PGHA_CACHE_DIR/patroni4`, default `/var/cache/pgha/patroni4`).
    V4,
    /// Any Patroni executable.
    Binary(PathBuf),
}

impl PatroniFlavor {
    /// The flavor named by `PGHA_PATRONI`: unset, empty, `3` or `debian` → [`Debian`](Self::Debian);
    /// `4` → [`V4`](Self::V4); anything else is taken as the path of a Patroni executable.
    pub fn from_env() -> Self {
        match std::env::var("PGHA_PATRONI").unwrap_or_default().trim() {
            "" | "3" | "debian" => Self::Debian,
            "4" => Self::V4,
            path => Self::Binary(PathBuf::from(path)),
        }
    }

    /// The executable to run.
    pub fn binary(&self) -> PathBuf {
        match self {
            Self::Debian => PathBuf::from("/usr/bin/patroni"),
            Self::V4 => {
                let cache = std::env::var_os("PGHA_CACHE_DIR").unwrap_or_else(|| "/var/cache/pgha".into());
                Path::new(&cache).join("patroni4/bin/patroni")
            }
            Self::Binary(p) => p.clone(),
        }
    }
}

/// Configures and starts a [`LocalCluster`].
///
/// ```no_run
/// # async fn demo() -> pgha_testkit::Result<()> {
/// use pgha_testkit::LocalCluster;
///
/// let cluster = LocalCluster::builder().members(3).start().await?;
/// let leader = cluster.leader().await?;
/// println!("leader is {leader}; connect with {}", cluster.dsn(&leader)?);
/// cluster.shutdown();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct LocalClusterBuilder {
    pub(crate) members: usize,
    pub(crate) etcd_members: usize,
    pub(crate) patroni: PatroniFlavor,
    pub(crate) timing: Option<Timing>,
    pub(crate) dcs: DcsOptions,
    pub(crate) rest_auth: bool,
    pub(crate) pgbackrest: bool,
    pub(crate) second_repository: bool,
    pub(crate) standby_restore_command: bool,
    pub(crate) tls: bool,
    pub(crate) client_certificates: bool,
    pub(crate) scope: Option<String>,
    pub(crate) base_dir: Option<PathBuf>,
    pub(crate) persistent: bool,
    pub(crate) start_timeout: Duration,
}

impl Default for LocalClusterBuilder {
    fn default() -> Self {
        Self {
            members: 3,
            etcd_members: 3,
            patroni: PatroniFlavor::from_env(),
            timing: None,
            dcs: DcsOptions::default(),
            rest_auth: true,
            pgbackrest: true,
            second_repository: false,
            standby_restore_command: false,
            tls: false,
            client_certificates: false,
            scope: None,
            base_dir: None,
            persistent: false,
            start_timeout: Duration::from_secs(120),
        }
    }
}

impl LocalClusterBuilder {
    /// Number of Patroni members (1–9, default 3).
    pub fn members(mut self, n: usize) -> Self {
        self.members = n;
        self
    }

    /// Number of etcd members in the DCS: 1, 3 (the default, as in production) or 5. Any other
    /// count makes [`start`](Self::start) fail with [`Error::EtcdMembers`] before anything starts.
    ///
    /// Each member is its own `etcd` process with its own ports, data directory and log
    /// (`etcd0.log`, …); Patroni's `etcd3.hosts` lists them all. A single member is enough for
    /// tests that never touch the DCS and want to start a little lighter.
    pub fn etcd_members(mut self, n: usize) -> Self {
        self.etcd_members = n;
        self
    }

    /// Which Patroni to run (default: [`PatroniFlavor::from_env`]).
    pub fn patroni(mut self, flavor: PatroniFlavor) -> Self {
        self.patroni = flavor;
        self
    }

    /// Leader lease, loop period and retry window in seconds.
    ///
    /// Defaults: 10/2/3 on Patroni before 3.2, 20/2/3 from 3.2 on (which raises `ttl` to at least 20).
    pub fn timing(mut self, ttl: u32, loop_wait: u32, retry_timeout: u32) -> Self {
        self.timing = Some(Timing {
            ttl,
            loop_wait,
            retry_timeout,
        });
        self
    }

    /// Turns on Patroni's `synchronous_mode` (and `synchronous_mode_strict` when `strict`).
    pub fn synchronous_mode(mut self, on: bool, strict: bool) -> Self {
        self.dcs.synchronous_mode = on;
        self.dcs.synchronous_mode_strict = on && strict;
        self
    }

    /// Adds or overrides a PostgreSQL parameter in the bootstrap dynamic configuration.
    pub fn pg_parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.dcs.parameters.insert(name.into(), value.into());
        self
    }

    /// Whether Patroni's unsafe REST endpoints require basic auth (default: on, like production).
    pub fn rest_auth(mut self, on: bool) -> Self {
        self.rest_auth = on;
        self
    }

    /// Whether to set up pgBackRest (stanza, WAL archiving, backups). Default: on.
    pub fn pgbackrest(mut self, on: bool) -> Self {
        self.pgbackrest = on;
        self
    }

    /// Whether pgBackRest gets a second repository (`repo2`, another directory of the cluster's)
    /// beside `repo1`, as a production setup with a local and a remote one: the stanza is
    /// created and WAL archived in both, backups go to `repo1` unless `--repo=2` is given.
    /// Default: off.
    pub fn second_pgbackrest_repository(mut self, on: bool) -> Self {
        self.second_repository = on;
        self
    }

    /// Whether standbys also fetch WAL from the shared pgBackRest archive (`restore_command`)
    /// besides streaming (with [`pgbackrest`](Self::pgbackrest) on; without it there is no
    /// archive). Default: off — standbys stream, and replication slots keep the WAL they need.
    ///
    /// Why off: after a kill -9 of the leader, Patroni (2.1.5 and later, PR #2384) archives the
    /// old primary's `.ready` segments before pg_rewind, among them its last timeline's final
    /// segment with WAL the new primary never had (the new primary archives only a `.partial`
    /// of it). A standby waiting at the switch point with `recovery_target_timeline = latest`
    /// can restore that segment before it notices the new timeline's history, replay past the
    /// fork, and stream no more ("requested starting point … is not in this server's history")
    /// until it is re-cloned. Seen in the failover demo on Patroni 3.0.2; see RELIABILITY.md.
    pub fn standby_restore_command(mut self, on: bool) -> Self {
        self.standby_restore_command = on;
        self
    }

    /// TLS everywhere: PostgreSQL with `ssl = on` and Patroni's REST API on HTTPS, both with a
    /// server certificate for `127.0.0.1` and `localhost` signed by a CA generated for this
    /// cluster ([`LocalCluster::ca_file`](crate::LocalCluster::ca_file)). Default: off.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// With [`tls`](Self::tls): PostgreSQL asks the application role for a client certificate
    /// signed by the cluster's CA (`hostssl … scram-sha-256 clientcert=verify-full` for that
    /// role; the superuser and replication roles, which Patroni uses, are unaffected), and the
    /// cluster has one for it ([`LocalCluster::client_cert_files`](crate::LocalCluster::client_cert_files)).
    /// Patroni's REST API then asks every client for a certificate signed by that CA too
    /// (`restapi.verify_client: required`); Patroni's calls to its peers and the testkit's
    /// present the same one. Default: off.
    pub fn client_certificates(mut self, on: bool) -> Self {
        self.client_certificates = on;
        self
    }

    /// The Patroni scope (cluster name, also the pgBackRest stanza). Default: `pgha-<random>`.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Where the cluster lives. Default: a fresh directory under `$PGHA_TESTKIT_DIR`
    /// (default `/tmp/pgha-testkit`). Must be reachable by the `postgres` user when running as root.
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    /// A persistent cluster outlives this process (no owner recorded, no teardown on drop);
    /// stop it with [`LocalCluster::attach`] + [`LocalCluster::shutdown`]. Default: off.
    pub fn persistent(mut self, on: bool) -> Self {
        self.persistent = on;
        self
    }

    /// How long [`start`](Self::start) waits for a leader and streaming replicas (default 120 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Starts the etcd members and the Patroni members and returns once a leader is elected and every replica
    /// streams (checked with SQL on each node), the application role and database exist, and the
    /// pgBackRest stanza is created.
    ///
    /// On failure everything already started is stopped; the cluster directory is kept for its logs
    /// (its path is in the error) and removed by the next run's stale-cluster reaper.
    pub async fn start(self) -> Result<LocalCluster> {
        if !(1..=9).contains(&self.members) {
            return Err(Error::Setup(format!(
                "members must be between 1 and 9, got {}",
                self.members
            )));
        }
        if ![1, 3, 5].contains(&self.etcd_members) {
            return Err(Error::EtcdMembers(self.etcd_members));
        }
        if let Some(s) = &self.scope {
            if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(Error::Setup(format!(
                    "scope must be non-empty [A-Za-z0-9_-], got {s:?}"
                )));
            }
        }
        LocalCluster::start(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn etcd_member_counts_other_than_one_three_or_five_are_refused_before_anything_starts() {
        assert_eq!(LocalClusterBuilder::default().etcd_members, 3);
        for n in [0, 2, 4, 6, 7] {
            let dir = std::env::temp_dir().join(format!("pgha-etcd-members-{}-{n}", std::process::id()));
            let err = LocalCluster::builder()
                .etcd_members(n)
                .base_dir(&dir)
                .start()
                .await
                .expect_err("refused");
            assert!(matches!(err, Error::EtcdMembers(m) if m == n), "{n}: {err}");
            assert!(err.to_string().contains("1, 3 or 5"), "{err}");
            assert!(!dir.exists(), "{n}: {} created", dir.display());
        }
    }
}
