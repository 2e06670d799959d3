//! The DCS: an etcd cluster of 1, 3 (the default) or 5 members on loopback — starting it, its
//! health and raft leader, and its faults, for the whole of it or per member.
//!
//! Each member `etcd<i>` has its own client and peer port, data directory (`<base_dir>/etcd<i>`)
//! and log (`<base_dir>/etcd<i>.log`); `--initial-cluster` names all of them, so at first start
//! each member waits for a quorum of the others, and they are started together.
//!
//! Raft timing is shortened to match the testkit's shortened Patroni timing (see
//! `HEARTBEAT_MS`); pre-vote is on, as it is by default from etcd 3.5 on, so that a member
//! coming back from a freeze does not depose a healthy leader. Otherwise these are the flags of
//! etcd 3.4 (Debian's `etcd-server`).

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use super::{faults::signal_all, wait_for, LocalCluster};
use crate::error::{Error, Result};
use crate::process::{spawn_logged, ProcRef};
use crate::state::stop_etcd_in_turn;

/// etcd's heartbeat interval and election timeout (ms): half of etcd 3.4's defaults (100 ms and
/// 1 s), keeping their ratio.
///
/// Patroni's etcd3 client gives each etcd member about `retry_timeout` / 3 for a request, 1 s
/// with the testkit's `retry_timeout` of 3 s (production's default is 10 s). With etcd's default
/// election timeout of 1 s, which raft randomizes to 1–2 s, a killed raft leader is replaced
/// only after Patroni's requests to both survivors have timed out: Patroni 3.0.2 then reports
/// "demoting self because DCS is not accessible and I was a leader" and restarts its PostgreSQL
/// on a new timeline (2 of 8 tries on a 2-core machine). With 500 ms (randomized to 0.5–1 s) a
/// new raft leader answers within Patroni's second request, and the Patroni leader keeps its key
/// (none of 10 tries demoted).
const HEARTBEAT_MS: &str = "50";
const ELECTION_MS: &str = "500";

/// How long starting etcd members may take until every one of them is healthy.
const ETCD_START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long one member may take to answer a status or health request before it counts as down
/// (a frozen member never answers).
const ETCD_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// A `uint64` of etcd's JSON gateway, which writes them as strings.
fn gateway_u64(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// From `POST /v3/maintenance/status`: `Some(raft_term)` when the member that answered is the
/// raft leader (its `header.member_id` is the `leader` it reports), `None` otherwise.
fn leads(status: &Value) -> Option<u64> {
    let me = gateway_u64(status.pointer("/header/member_id")?)?;
    let leader = gateway_u64(status.get("leader")?)?;
    (me == leader && leader != 0).then(|| status.pointer("/header/raft_term").and_then(gateway_u64).unwrap_or(0))
}

/// Patroni's `namespace` in the testkit's clusters: their keys are under
/// `/pgha/<scope>/` in etcd (Patroni's own default is `/service/`).
pub const ETCD_NAMESPACE: &str = "/pgha/";

impl LocalCluster {
    /// Patroni's `namespace` ([`ETCD_NAMESPACE`]): the cluster's keys are under
    /// `<namespace><scope>/` in etcd.
    pub fn etcd_namespace(&self) -> &'static str {
        ETCD_NAMESPACE
    }

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
                .arg("--pre-vote=true")
                .args(["--heartbeat-interval", HEARTBEAT_MS, "--election-timeout", ELECTION_MS]);
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

    /// The etcd member that is raft leader, by its index (`0` for `etcd0`): the member whose
    /// `POST /v3/maintenance/status` reports itself as leader (the highest raft term wins should
    /// two claim it). `None` while there is none, or when no leader answers (stopped, killed or
    /// frozen).
    pub async fn etcd_leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for i in self.etcd_indices() {
            let Ok(url) = self
                .lock_state()
                .etcd_member(i)
                .map(|m| format!("{}/v3/maintenance/status", m.client_url()))
            else {
                continue;
            };
            let resp = self
                .http
                .post(&url)
                .json(&serde_json::json!({}))
                .timeout(ETCD_REQUEST_TIMEOUT)
                .send()
                .await;
            let Ok(resp) = resp else { continue };
            let Ok(status) = resp.json::<Value>().await else {
                continue;
            };
            if let Some(term) = leads(&status) {
                if best.is_none_or(|(t, _)| term > t) {
                    best = Some((term, i));
                }
            }
        }
        best.map(|(_, i)| i)
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

    // ----- one member --------------------------------------------------------------------------

    fn take_etcd_proc(&self, i: usize) -> Result<(String, ProcRef)> {
        let mut state = self.lock_state();
        let m = state.etcd_member_mut(i)?;
        let name = m.name.clone();
        match m.proc.take().filter(ProcRef::is_alive) {
            Some(p) => Ok((name, p)),
            None => {
                state.save()?;
                Err(Error::NotRunning(name))
            }
        }
    }

    /// Kills etcd member `i` (`0` for `etcd0`) with SIGKILL, as a crash or power loss would. With
    /// a quorum left the others carry on (electing a new raft leader if it led); Patroni moves
    /// to another member. Bring it back with [`start_etcd_member`](Self::start_etcd_member).
    pub fn kill_etcd_member(&self, i: usize) -> Result<()> {
        let (name, proc) = self.take_etcd_proc(i)?;
        proc.signal_group(Signal::SIGKILL);
        proc.wait_gone(Duration::from_secs(10));
        self.reap_child(&name);
        self.lock_state().save()
    }

    /// Stops etcd member `i` cleanly: SIGTERM (a raft leader hands leadership over first), SIGKILL
    /// after 10 s; a frozen member is continued first. Bring it back with
    /// [`start_etcd_member`](Self::start_etcd_member).
    pub fn stop_etcd_member(&self, i: usize) -> Result<()> {
        let (name, proc) = self.take_etcd_proc(i)?;
        proc.signal_group(Signal::SIGCONT);
        proc.terminate(Duration::from_secs(10));
        self.reap_child(&name);
        self.lock_state().save()
    }

    /// Starts etcd member `i` again, on the same data directory and ports, and waits until it is
    /// healthy (which needs a quorum of members up). Does nothing but wait when it runs already;
    /// a frozen member never becomes healthy until thawed.
    pub async fn start_etcd_member(&self, i: usize) -> Result<()> {
        self.start_etcd_members(&[i]).await
    }

    fn signal_etcd_member(&self, i: usize, sig: Signal) -> Result<()> {
        let (name, proc) = {
            let state = self.lock_state();
            let m = state.etcd_member(i)?;
            (m.name.clone(), m.proc.filter(ProcRef::is_alive))
        };
        signal_all(&proc.into_iter().collect::<Vec<_>>(), sig, &name)
    }

    /// Freezes etcd member `i` (SIGSTOP), as a stalled host would: it keeps its sockets but
    /// answers nothing, so clients and peers wait on it until they time out. A frozen raft leader
    /// is replaced after the election timeout. Undo with [`thaw_etcd_member`](Self::thaw_etcd_member);
    /// teardown continues frozen members before stopping them.
    pub fn freeze_etcd_member(&self, i: usize) -> Result<()> {
        self.signal_etcd_member(i, Signal::SIGSTOP)
    }

    /// Continues a frozen etcd member (SIGCONT); it catches up from the raft leader.
    pub fn thaw_etcd_member(&self, i: usize) -> Result<()> {
        self.signal_etcd_member(i, Signal::SIGCONT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_is_the_member_that_names_itself() {
        // As etcd 3.4's JSON gateway writes a status: uint64 as strings.
        let status = |me: &str, leader: &str| {
            serde_json::json!({
                "header": { "cluster_id": "1", "member_id": me, "revision": "5", "raft_term": "3" },
                "version": "3.4.23",
                "leader": leader,
                "raftIndex": "9",
            })
        };
        assert_eq!(leads(&status("10501334649042878790", "10501334649042878790")), Some(3));
        assert_eq!(leads(&status("10501334649042878790", "42")), None);
        assert_eq!(leads(&status("0", "0")), None, "no leader yet");
        assert_eq!(
            leads(&serde_json::json!({ "error": "etcdserver: request timed out" })),
            None
        );
        assert_eq!(gateway_u64(&serde_json::json!(7)), Some(7));
    }
}
