//! Bringing a cluster up: directories, ports and configuration files, the etcd members, the
//! Patroni members, the application role and database, waiting until every replica streams.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use super::{default_root, mkdir, write_file, LocalCluster, Teardown, APP_DATABASE, APP_USER};
use crate::builder::{LocalClusterBuilder, PatroniFlavor};
use crate::config_files;
use crate::error::{Error, Result};
use crate::ports::free_ports;
use crate::process::{OsUser, ProcRef};
use crate::rest;
use crate::state::{reap_stale, ClusterCredentials, ClusterState, Credentials, EtcdMember, MemberState, Timing};

fn random_suffix() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 8).to_lowercase()
}

/// What a failure message shows of a log file: its last `n` lines, preceded by the last `n`
/// earlier lines that report an error (a process that failed early, such as a postmaster that
/// could not bind its port, is otherwise hidden behind the traceback of whoever noticed).
fn log_excerpt(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail_start = lines.len().saturating_sub(n);
    let notable: Vec<&str> = lines[..tail_start]
        .iter()
        .copied()
        .filter(|l| reports_error(l))
        .collect();
    let mut out = Vec::new();
    if !notable.is_empty() {
        out.push("[earlier errors]");
        out.extend_from_slice(&notable[notable.len().saturating_sub(n)..]);
        out.push("[last lines]");
    }
    out.extend_from_slice(&lines[tail_start..]);
    out.join("\n")
}

/// Whether a log line of etcd, Patroni or PostgreSQL reports an error.
fn reports_error(line: &str) -> bool {
    ["FATAL", "ERROR", "PANIC", "could not", "Exception", "error:"]
        .iter()
        .any(|w| line.contains(w))
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

impl LocalCluster {
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

        // A client and a peer port per etcd member, then a PostgreSQL and a REST port per node.
        let ports = free_ports(2 * b.etcd_members + 2 * b.members)?;
        let (etcd_ports, node_ports) = ports.split_at(2 * b.etcd_members);
        let etcd = (0..b.etcd_members)
            .map(|i| EtcdMember {
                name: format!("etcd{i}"),
                client_port: etcd_ports[2 * i],
                peer_port: etcd_ports[2 * i + 1],
                proc: None,
            })
            .collect();
        let members = (0..b.members)
            .map(|i| MemberState {
                name: format!("node{}", i + 1),
                pg_port: node_ports[2 * i],
                rest_port: node_ports[2 * i + 1],
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
            second_repository: b.second_repository,
            standby_restore_command: b.standby_restore_command,
            tls: b.tls,
            client_certificates: b.client_certificates,
            app_database: APP_DATABASE.to_owned(),
            credentials: ClusterCredentials {
                superuser: Credentials::new("postgres"),
                replication: Credentials::new("replicator"),
                app: Credentials::new(APP_USER),
                rest: b.rest_auth.then(|| Credentials::new("pgha")),
            },
            etcd,
            members,
            haproxy: None,
        };

        let cluster = Self {
            state: Mutex::new(state),
            dcs: b.dcs.clone(),
            user,
            http: rest::http_client(None, None)?,
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
        let (ca, identity) = {
            let state = self.lock_state();
            (state.ca_file(), state.client_cert_files())
        };
        if ca.is_some() {
            self.http = rest::http_client(ca.as_deref(), identity.as_ref())?;
        }
        self.start_etcd_again().await?;
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
        if state.tls {
            crate::tls::generate(&state.tls_dir(), &state.credentials.app.username)?;
        }
        if state.pgbackrest {
            let dir = state.pgbackrest_dir();
            for sub in ["repo", "log", "lock", "spool"] {
                mkdir(&dir.join(sub))?;
            }
            if state.second_repository {
                mkdir(&dir.join("repo2"))?;
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
        let mut out = String::new();
        for e in &state.etcd {
            out.push_str(&format!(
                "--- {}.log ---\n{}\n",
                e.name,
                log_excerpt(&e.log_file(&state.base_dir), 10)
            ));
        }
        for m in &state.members {
            out.push_str(&format!(
                "--- {}/patroni.log ---\n{}\n",
                m.name,
                log_excerpt(&m.log_file(), 15)
            ));
            let pg_log = m.data_dir().join("log/postgresql.log");
            out.push_str(&format!(
                "--- {}/postgresql.log ---\n{}\n",
                m.name,
                log_excerpt(&pg_log, 10)
            ));
        }
        out
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

    #[test]
    fn log_excerpt_shows_early_errors_before_the_tail() {
        let dir = std::env::temp_dir().join(format!("pgha-log-excerpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("test dir");
        let log = dir.join("patroni.log");
        let mut text = String::from("LOG:  starting\nFATAL:  could not bind IPv4 address\n");
        for i in 0..30 {
            text.push_str(&format!("traceback line {i}\n"));
        }
        std::fs::write(&log, &text).expect("write log");
        let shown = log_excerpt(&log, 5);
        std::fs::remove_dir_all(&dir).expect("remove test dir");
        assert!(shown.contains("FATAL:  could not bind"), "{shown}");
        assert!(!shown.contains("LOG:  starting"), "{shown}");
        assert!(shown.ends_with("traceback line 29"), "{shown}");
        assert!(!shown.contains("traceback line 24"), "{shown}");
        assert_eq!(log_excerpt(&dir.join("missing.log"), 5), "");
    }
}
