//! The DCS: an etcd cluster of 1, 3 (the default) or 5 members on loopback — starting it, its
//! health, and stopping and starting all of it.
//!
//! Each member `etcd<i>` has its own client and peer port, data directory (`<base_dir>/etcd<i>`)
//! and log (`<base_dir>/etcd<i>.log`); `--initial-cluster` names all of them, so at first start
//! each member waits for a quorum of the others, and they are started together.
//!
//! Pre-vote is on, as it is by default from etcd 3.5 on, so that a member coming back from a
//! freeze does not depose a healthy leader. Otherwise these are the flags and the default timing
//! of etcd 3.4 (Debian's `etcd-server`).

use std::time::Duration;

use serde_json::Value;

use super::{wait_for, LocalCluster};
use crate::error::{Error, Result};
use crate::process::{spawn_logged, ProcRef};
use crate::state::stop_etcd_in_turn;

/// How long starting etcd members may take until every one of them is healthy.
const ETCD_START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one member may take to answer a health request before it counts as down
/// (a frozen member never answers).
const ETCD_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

impl LocalCluster {
    /// Client URLs of every etcd member (`http://127.0.0.1:<port>`), in member order (`etcd0`
    /// first). Patroni's `etcd3.hosts` lists the same members.
    pub fn etcd_urls(&self) -> Vec<String> {
        self.lock_state().etcd_urls()
    }

    /// Starts those of the etcd members `which` that are not running and waits until each of them
    /// is healthy (`GET /health`, which needs a raft leader, so a quorum of members up).
    pub(super) async fn start_etcd_members(&self, which: &[usize]) -> Result<()> {
        for &i in which {
            self.spawn_etcd_member(i)?;
        }
        let names: Vec<String> = which.iter().map(|i| format!("etcd{i}")).collect();
        wait_for(
            &format!("{} to become healthy", names.join(", ")),
            ETCD_START_TIMEOUT,
            || async {
                for &i in which {
                    let (proc, log) = {
                        let state = self.lock_state();
                        let m = state.etcd_member(i)?;
                        (m.proc, m.log_file(&state.base_dir))
                    };
                    if !proc.is_some_and(|p| p.is_alive()) {
                        return Err(Error::NotRunning(format!("etcd{i} (see {})", log.display())));
                    }
                    if !self.etcd_member_healthy(i).await? {
                        return Ok(None);
                    }
                }
                Ok(Some(()))
            },
        )
        .await
    }

    /// Starts member `i` on its data directory and ports, unless it runs already. Does not wait.
    fn spawn_etcd_member(&self, i: usize) -> Result<()> {
        let (cmd, name, log) = {
            let state = self.lock_state();
            let me = state.etcd_member(i)?;
            if me.proc.is_some_and(|p| p.is_alive()) {
                return Ok(());
            }
            let initial_cluster: Vec<String> = state
                .etcd
                .iter()
                .map(|m| format!("{}={}", m.name, m.peer_url()))
                .collect();
            let (client, peer) = (me.client_url(), me.peer_url());
            let mut cmd = self.user.command("etcd");
            cmd.args(["--name", &me.name, "--data-dir"])
                .arg(me.data_dir(&state.base_dir))
                .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
                // Read at the first start only; a restarted member finds its cluster in its WAL.
                .args([
                    "--initial-cluster",
                    &initial_cluster.join(","),
                    "--initial-cluster-state",
                    "new",
                ])
                .args(["--initial-cluster-token", &state.scope])
                .arg("--pre-vote=true");
            cmd.env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH);
            (cmd, me.name.clone(), me.log_file(&state.base_dir))
        };
        let (child, proc) = spawn_logged(cmd, &log, &name)?;
        self.lock_children().insert(name, child);
        let mut state = self.lock_state();
        state.etcd_member_mut(i)?.proc = Some(proc);
        state.save()
    }

    fn etcd_indices(&self) -> Vec<usize> {
        (0..self.lock_state().etcd.len()).collect()
    }

    /// Whether member `i` answers `GET /health` with `{"health":"true"}` (etcd 3.4 answers 503
    /// without a raft leader). `Err` when it cannot be reached.
    async fn etcd_member_healthy(&self, i: usize) -> Result<bool> {
        let url = format!("{}/health", self.lock_state().etcd_member(i)?.client_url());
        let rest_err = |e: reqwest::Error| Error::Rest {
            url: url.clone(),
            message: e.to_string(),
        };
        let resp = self
            .http
            .get(&url)
            .timeout(ETCD_REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(rest_err)?;
        if !resp.status().is_success() {
            return Ok(false);
        }
        let body: Value = resp.json().await.map_err(rest_err)?;
        Ok(body.get("health").and_then(Value::as_str) == Some("true"))
    }

    /// Whether each etcd member (in member order) answers its `/health` endpoint as healthy: it
    /// runs, is not frozen and sees a raft leader.
    pub async fn etcd_members_healthy(&self) -> Vec<bool> {
        let mut healthy = Vec::new();
        for i in self.etcd_indices() {
            healthy.push(matches!(self.etcd_member_healthy(i).await, Ok(true)));
        }
        healthy
    }

    // ----- the whole DCS -----------------------------------------------------------------------

    /// Stops every etcd member (SIGTERM, then SIGKILL after 10 s), one after the other so that
    /// no raft leader waits on a handover to a member that is stopping too: Patroni loses its
    /// DCS. Frozen members are continued first. [`Error::NotRunning`] when no member runs.
    pub fn stop_etcd(&self) -> Result<()> {
        let procs: Vec<(String, ProcRef)> = {
            let mut state = self.lock_state();
            state
                .etcd
                .iter_mut()
                .filter_map(|m| Some((m.name.clone(), m.proc.take().filter(ProcRef::is_alive)?)))
                .collect()
        };
        if procs.is_empty() {
            self.lock_state().save()?;
            return Err(Error::NotRunning("etcd".into()));
        }
        stop_etcd_in_turn(
            &procs.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
            Duration::from_secs(10),
        );
        for (name, _) in &procs {
            self.reap_child(name);
        }
        self.lock_state().save()
    }

    /// Starts every etcd member that is not running, on its data directory and ports, and waits
    /// until every member is healthy.
    pub async fn start_etcd_again(&self) -> Result<()> {
        self.start_etcd_members(&self.etcd_indices()).await
    }
}
