//! The on-disk record of a cluster: ports, directories, credentials and the processes started.
//!
//! Written to `<base_dir>/state.json` whenever a process starts or stops, so that
//! `pgha-devcluster down` (another process) and the stale-run reaper can stop exactly what a cluster
//! started, by PID.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use nix::sys::signal::Signal;

use crate::process::{node_processes, postmaster, ProcRef};

pub(crate) const STATE_FILE: &str = "state.json";

/// A password that never shows in `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A fresh random alphanumeric password.
    pub(crate) fn random() -> Self {
        use rand::distr::{Alphanumeric, SampleString};
        Self(Alphanumeric.sample_string(&mut rand::rng(), 24))
    }

    /// The secret text. Only call this where the secret is really needed (a DSN, an auth header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A user name and password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password (redacted in `Debug`).
    pub password: Secret,
}

impl Credentials {
    pub(crate) fn new(username: &str) -> Self {
        Self {
            username: username.to_owned(),
            password: Secret::random(),
        }
    }
}

/// Every credential a cluster was bootstrapped with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterCredentials {
    /// PostgreSQL superuser (`postgres`).
    pub superuser: Credentials,
    /// Streaming replication user.
    pub replication: Credentials,
    /// The application role, owner of the application database.
    pub app: Credentials,
    /// HTTP basic auth for Patroni's unsafe REST endpoints (`None` when auth is off).
    pub rest: Option<Credentials>,
}

/// One member of the cluster's etcd (the DCS): `etcd0`, `etcd1`, …, each with its own ports, data
/// directory (`<base_dir>/<name>`) and log (`<base_dir>/<name>.log`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EtcdMember {
    /// `etcd<i>`; absent in the state files of testkits that ran a single etcd.
    #[serde(default = "first_etcd_name")]
    pub(crate) name: String,
    pub(crate) client_port: u16,
    pub(crate) peer_port: u16,
    pub(crate) proc: Option<ProcRef>,
}

fn first_etcd_name() -> String {
    "etcd0".to_owned()
}

impl EtcdMember {
    pub(crate) fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
    pub(crate) fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
    pub(crate) fn data_dir(&self, base_dir: &Path) -> PathBuf {
        base_dir.join(&self.name)
    }
    pub(crate) fn log_file(&self, base_dir: &Path) -> PathBuf {
        base_dir.join(format!("{}.log", self.name))
    }
}

/// Reads the etcd members as a list, or as the single object that testkits with one etcd wrote,
/// so that the stale-run reaper still stops clusters left behind by them.
fn etcd_members<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<EtcdMember>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<EtcdMember>),
        One(EtcdMember),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(members) => members,
        OneOrMany::One(member) => vec![member],
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MemberState {
    pub(crate) name: String,
    pub(crate) pg_port: u16,
    pub(crate) rest_port: u16,
    pub(crate) dir: PathBuf,
    pub(crate) patroni: Option<ProcRef>,
    /// The REST API serves HTTPS.
    #[serde(default)]
    pub(crate) https: bool,
}

impl MemberState {
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
    pub(crate) fn config_file(&self) -> PathBuf {
        self.dir.join("patroni.yml")
    }
    pub(crate) fn log_file(&self) -> PathBuf {
        self.dir.join("patroni.log")
    }
    pub(crate) fn api_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.rest_port)
    }
}

/// Timing settings written to the DCS at bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// Leader lease, seconds.
    pub ttl: u32,
    /// HA loop period, seconds.
    pub loop_wait: u32,
    /// DCS and PostgreSQL retry window, seconds.
    pub retry_timeout: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClusterState {
    pub(crate) scope: String,
    pub(crate) base_dir: PathBuf,
    /// The process that owns the cluster; `None` for a persistent (devcluster) cluster.
    pub(crate) owner: Option<ProcRef>,
    pub(crate) patroni_bin: PathBuf,
    pub(crate) patroni_version: String,
    pub(crate) timing: Timing,
    pub(crate) pgbackrest: bool,
    /// pgBackRest has a second repository, `repo2`; see
    /// [`LocalClusterBuilder::second_pgbackrest_repository`](crate::LocalClusterBuilder::second_pgbackrest_repository).
    #[serde(default)]
    pub(crate) second_repository: bool,
    /// Standbys also fetch WAL from the pgBackRest archive (`restore_command`); see
    /// [`LocalClusterBuilder::standby_restore_command`](crate::LocalClusterBuilder::standby_restore_command).
    #[serde(default)]
    pub(crate) standby_restore_command: bool,
    /// TLS on PostgreSQL and HTTPS on the REST API, with certificates under `tls/`.
    #[serde(default)]
    pub(crate) tls: bool,
    /// The application role must present a client certificate (TLS clusters only).
    #[serde(default)]
    pub(crate) client_certificates: bool,
    pub(crate) app_database: String,
    pub(crate) credentials: ClusterCredentials,
    /// The etcd members, in order (`etcd0` first).
    #[serde(deserialize_with = "etcd_members")]
    pub(crate) etcd: Vec<EtcdMember>,
    pub(crate) members: Vec<MemberState>,
    /// HAProxy in front of the cluster, when started ([`crate::LocalCluster::start_haproxy`]).
    #[serde(default)]
    pub(crate) haproxy: Option<ProcRef>,
}

impl ClusterState {
    pub(crate) fn load(base_dir: &Path) -> Result<Self> {
        let path = base_dir.join(STATE_FILE);
        let text =
            std::fs::read_to_string(&path).map_err(|e| Error::Setup(format!("reading {}: {e}", path.display())))?;
        serde_json::from_str(&text).map_err(|e| Error::Setup(format!("parsing {}: {e}", path.display())))
    }

    /// Writes the state atomically (write to a temp file, then rename).
    pub(crate) fn save(&self) -> Result<()> {
        let path = self.base_dir.join(STATE_FILE);
        let tmp = self.base_dir.join(format!("{STATE_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Setup(format!("encoding state: {e}")))?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::Setup(format!("writing {}: {e}", path.display())))
    }

    pub(crate) fn tls_dir(&self) -> PathBuf {
        self.base_dir.join("tls")
    }

    /// The application role must present a client certificate.
    pub(crate) fn client_certificates_required(&self) -> bool {
        self.tls && self.client_certificates
    }

    /// The application role's client certificate and key, when the cluster asks for one.
    pub(crate) fn client_cert_files(&self) -> Option<(PathBuf, PathBuf)> {
        self.client_certificates_required().then(|| {
            let dir = self.tls_dir();
            (
                dir.join(crate::tls::CLIENT_CERT_FILE),
                dir.join(crate::tls::CLIENT_KEY_FILE),
            )
        })
    }

    /// The CA certificate that signed the cluster's server certificate, when TLS is on.
    pub(crate) fn ca_file(&self) -> Option<PathBuf> {
        self.tls.then(|| self.tls_dir().join(crate::tls::CA_FILE))
    }

    pub(crate) fn pgbackrest_dir(&self) -> PathBuf {
        self.base_dir.join("pgbackrest")
    }

    pub(crate) fn pgbackrest_config(&self) -> PathBuf {
        self.pgbackrest_dir().join("pgbackrest.conf")
    }

    /// The client URL of every etcd member.
    pub(crate) fn etcd_urls(&self) -> Vec<String> {
        self.etcd.iter().map(EtcdMember::client_url).collect()
    }

    pub(crate) fn etcd_member(&self, i: usize) -> Result<&EtcdMember> {
        self.etcd.get(i).ok_or_else(|| Error::UnknownMember(format!("etcd{i}")))
    }

    pub(crate) fn etcd_member_mut(&mut self, i: usize) -> Result<&mut EtcdMember> {
        self.etcd
            .get_mut(i)
            .ok_or_else(|| Error::UnknownMember(format!("etcd{i}")))
    }

    pub(crate) fn member(&self, name: &str) -> Result<&MemberState> {
        self.members
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| Error::UnknownMember(name.to_owned()))
    }

    pub(crate) fn member_mut(&mut self, name: &str) -> Result<&mut MemberState> {
        self.members
            .iter_mut()
            .find(|m| m.name == name)
            .ok_or_else(|| Error::UnknownMember(name.to_owned()))
    }

    /// Every live process this cluster started or that runs in its data directories.
    pub(crate) fn live_processes(&self) -> Vec<ProcRef> {
        let mut procs: Vec<ProcRef> = self.members.iter().filter_map(|m| m.patroni).collect();
        procs.extend(self.members.iter().filter_map(|m| postmaster(&m.data_dir())));
        procs.extend(self.etcd.iter().filter_map(|e| e.proc));
        procs.extend(self.haproxy);
        procs.retain(ProcRef::is_alive);
        procs
    }

    /// Stops everything: Patroni first (it stops PostgreSQL cleanly), then any postmaster left,
    /// then every etcd member. Frozen processes are continued first; SIGKILL after `grace`; any PostgreSQL
    /// backend still alive at the end is killed too.
    pub(crate) fn stop_all(&mut self, grace: Duration) {
        crate::firewall::remove_rules(&self.scope);
        // Back to the root group first, so that the groups can be removed however this ends.
        crate::cgroup::remove_all(&format!("pgha-{}-", self.scope));
        if let Some(haproxy) = self.haproxy.take() {
            haproxy.terminate(grace);
        }
        let everything: Vec<ProcRef> = self
            .members
            .iter()
            .flat_map(|m| node_processes(m.patroni, &m.data_dir()))
            .chain(self.etcd.iter().filter_map(|e| e.proc))
            .collect();
        for p in &everything {
            p.signal(Signal::SIGCONT);
        }
        let patronis: Vec<ProcRef> = self.members.iter_mut().filter_map(|m| m.patroni.take()).collect();
        for p in &patronis {
            p.signal_group(Signal::SIGTERM);
        }
        for p in &patronis {
            p.terminate(grace);
        }
        for m in &self.members {
            if let Some(pm) = postmaster(&m.data_dir()) {
                pm.terminate(grace);
            }
        }
        let etcds: Vec<ProcRef> = self.etcd.iter_mut().filter_map(|e| e.proc.take()).collect();
        stop_etcd_in_turn(&etcds, grace);
        for p in &everything {
            if p.signal(Signal::SIGKILL) {
                p.wait_gone(Duration::from_secs(5));
            }
        }
        // Once everything is gone the groups are empty and can always be removed.
        crate::cgroup::remove_all(&format!("pgha-{}-", self.scope));
    }
}

/// Stops etcd members (SIGCONT, then SIGTERM; SIGKILL after `grace`) one after the other.
///
/// A raft leader that gets SIGTERM first hands its leadership to a connected follower and waits
/// until that one leads, for up to 7 s (etcd 3.4's request timeout). Signalled all at once, the
/// leader would hand over to a follower that is itself stopping and wait out the whole 7 s.
/// Given a moment each (a handover takes about a heartbeat), a leader hands over to a member that
/// stays up, and the last one, whose peers are gone, skips the handover.
pub(crate) fn stop_etcd_in_turn(procs: &[ProcRef], grace: Duration) {
    for p in procs {
        p.signal_group(Signal::SIGCONT);
        p.signal_group(Signal::SIGTERM);
        p.wait_gone(Duration::from_millis(500));
    }
    for p in procs {
        p.terminate(grace);
    }
}

/// Stops and removes clusters under `root` whose owning process is gone (a crashed or killed
/// earlier run). Persistent clusters (no owner) are left alone.
pub(crate) fn reap_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Ok(mut state) = ClusterState::load(&dir) else {
            continue;
        };
        match state.owner {
            Some(owner) if !owner.is_alive() => {
                tracing::warn!(dir = %dir.display(), "reaping a cluster left behind by a dead process");
                state.stop_all(Duration::from_secs(5));
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not remove stale cluster dir");
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = Credentials::new("app");
        let shown = format!("{c:?}");
        assert!(shown.contains("app"));
        assert!(!shown.contains(c.password.expose()), "password leaked: {shown}");
        assert_eq!(c.password.expose().len(), 24);
    }

    #[test]
    fn etcd_members_are_read_as_a_list_or_as_the_single_etcd_of_earlier_state_files() {
        let proc = r#"{"pid": 42, "start_ticks": 7}"#;
        let old: Vec<EtcdMember> = etcd_members(&mut serde_json::Deserializer::from_str(&format!(
            r#"{{"client_port": 1, "peer_port": 2, "proc": {proc}}}"#
        )))
        .expect("single object");
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].name, "etcd0");
        assert_eq!(old[0].proc.map(|p| p.pid), Some(42));
        let many: Vec<EtcdMember> = etcd_members(&mut serde_json::Deserializer::from_str(
            r#"[{"name": "etcd0", "client_port": 1, "peer_port": 2, "proc": null},
                {"name": "etcd1", "client_port": 3, "peer_port": 4, "proc": null}]"#,
        ))
        .expect("list");
        assert_eq!(
            many.iter()
                .map(|m| (m.name.as_str(), m.client_port))
                .collect::<Vec<_>>(),
            [("etcd0", 1), ("etcd1", 3)]
        );
    }
}
