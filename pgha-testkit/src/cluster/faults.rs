//! Fault injection: nodes stopped, started, killed or frozen, replay paused, REST blocked,
//! partitions, a bad server certificate. etcd's faults are in `etcd`.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::LocalCluster;
use crate::error::{Error, Result};
use crate::process::{children_of, cmdline, node_processes, postmaster, spawn_logged, ProcRef};

/// What [`LocalCluster::cut_client_from`] cuts the clients off from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCut {
    /// The member's PostgreSQL port.
    Postgres,
    /// The member's Patroni REST API port.
    RestApi,
    /// Both.
    Both,
}

/// The cgroup of one node's processes.
fn node_group(scope: &str, member: &str) -> String {
    format!("pgha-{scope}-{member}")
}

/// Sends `sig` to each process's group (how a node or an etcd member is frozen and thawed);
/// [`Error::NotRunning`] naming `what` when there is no process.
pub(super) fn signal_all(procs: &[ProcRef], sig: Signal, what: &str) -> Result<()> {
    if procs.is_empty() {
        return Err(Error::NotRunning(what.to_owned()));
    }
    for p in procs {
        p.signal_group(sig);
    }
    Ok(())
}

impl LocalCluster {
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
        signal_all(&node_processes(patroni, &data_dir), sig, &format!("node {member}"))
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

    /// Freezes a member's Patroni alone (SIGSTOP to its process, not to its PostgreSQL). On the
    /// leader this makes a zombie: past the TTL the others elect a new leader while the old
    /// PostgreSQL runs on as a primary that nothing manages any more, taking whatever writes
    /// still reach it. Undo with [`thaw_patroni`](Self::thaw_patroni): Patroni then finds it lost
    /// the leader key and demotes it.
    pub fn freeze_patroni(&self, member: &str) -> Result<()> {
        self.signal_patroni(member, Signal::SIGSTOP)
    }

    /// Continues a frozen Patroni (SIGCONT).
    pub fn thaw_patroni(&self, member: &str) -> Result<()> {
        self.signal_patroni(member, Signal::SIGCONT)
    }

    fn signal_patroni(&self, member: &str, sig: Signal) -> Result<()> {
        let patroni = self.lock_state().member(member)?.patroni.filter(|p| p.is_alive());
        match patroni {
            Some(p) if p.signal(sig) => Ok(()),
            _ => Err(Error::NotRunning(format!("Patroni on {member}"))),
        }
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

    /// Cuts `member` off from every etcd member and from its peers (both ways), as a network partition would,
    /// while clients can still reach it: each node's processes go into a cgroup of their own,
    /// iptables drops the traffic between them by cgroup, and the connections already open
    /// between them are aborted (`ss -K`). Needs root and cgroup v2. Undone by
    /// [`heal_partition`](Self::heal_partition) and by teardown.
    pub fn partition_node(&self, member: &str) -> Result<()> {
        let (scope, etcd_ports, nodes) = {
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
            let etcd_ports: Vec<u16> = state.etcd.iter().map(|e| e.client_port).collect();
            (state.scope.clone(), etcd_ports, nodes)
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
        let mut cut_off_from = etcd_ports;
        for (name, _, pg, rest) in nodes.iter().filter(|n| n.0 != member) {
            cut_off_from.extend([*pg, *rest]);
            crate::firewall::cut_from_cgroup(&scope, &group(name), &[me.2, me.3])?;
        }
        crate::firewall::cut_from_cgroup(&scope, &group(member), &cut_off_from)
    }

    /// Cuts the clients of this machine's user off from `member` — from its PostgreSQL, its
    /// Patroni REST API, or both (`what`) — one way and without closing anything: iptables drops
    /// what processes of the current user send to those ports, so connections already open go
    /// half-open (requests vanish, nothing answers) and new ones hang, as behind a broken route.
    /// The cluster itself runs as another user (see [`LocalCluster::builder`]) and is not
    /// affected: Patroni, replication and etcd carry on. Needs root; refused otherwise, since
    /// the cluster's processes would be cut too. IPv4 loopback only, where the testkit listens.
    /// The testkit's own helpers in this process that reach the member over TCP (SQL, REST) are
    /// cut from it as well; its Unix socket ([`socket_dir`](Self::socket_dir)) is not.
    /// Undone by [`heal_client_cut`](Self::heal_client_cut) and by teardown.
    pub fn cut_client_from(&self, member: &str, what: ClientCut) -> Result<()> {
        let uid = nix::unistd::geteuid();
        if !uid.is_root() {
            return Err(Error::Setup(
                "cutting clients off needs root, so that the cluster runs as another user".into(),
            ));
        }
        let (pg, rest) = {
            let state = self.lock_state();
            let m = state.member(member)?;
            (m.pg_port, m.rest_port)
        };
        let ports = match what {
            ClientCut::Postgres => vec![pg],
            ClientCut::RestApi => vec![rest],
            ClientCut::Both => vec![pg, rest],
        };
        crate::firewall::drop_from_user(&self.scope(), uid.as_raw(), &ports)
    }

    /// Undoes every [`cut_client_from`](Self::cut_client_from).
    pub fn heal_client_cut(&self) -> Result<()> {
        crate::firewall::remove_user_rules(&self.scope())
    }

    /// Undoes [`partition_node`](Self::partition_node).
    pub fn heal_partition(&self) -> Result<()> {
        crate::firewall::remove_cgroup_rules(&self.scope())
    }

    /// Undoes [`block_rest_api`](Self::block_rest_api).
    pub fn restore_rest_api(&self, member: &str) -> Result<()> {
        crate::firewall::allow_port(&self.scope(), self.rest_port(member)?)
    }

    /// Makes every running PostgreSQL present `which` (signed by the cluster's CA) to new
    /// connections: the certificate files are replaced and the configuration reloaded, and this
    /// returns once each server has reloaded. Patroni's REST API keeps the certificate it has.
    /// [`ServerCertificate::Valid`](crate::ServerCertificate::Valid) puts a good one back.
    ///
    /// Only for clusters built with [`tls`](crate::LocalClusterBuilder::tls).
    pub async fn present_server_certificate(&self, which: crate::ServerCertificate) -> Result<()> {
        let (dir, tls) = {
            let state = self.lock_state();
            (state.tls_dir(), state.tls)
        };
        if !tls {
            return Err(Error::Setup("the cluster was built without TLS".into()));
        }
        crate::tls::reissue_server(&dir, &which)?;
        self.user.own(&dir)?;
        for member in self.member_names() {
            let Ok(before) = self.conf_load_time(&member).await else {
                continue; // not running: it reads the new files when it starts
            };
            self.superuser_query(&member, "SELECT pg_reload_conf()").await?;
            // A new backend is forked after the postmaster has handled the reload (SSL context
            // included) once it reports a later load time.
            let what = format!("{member} to reload its certificate");
            super::wait::wait_for(&what, Duration::from_secs(10), || async {
                Ok((self.conf_load_time(&member).await? != before).then_some(()))
            })
            .await?;
        }
        Ok(())
    }

    /// When `member`'s configuration was last loaded, as a new backend sees it.
    async fn conf_load_time(&self, member: &str) -> Result<String> {
        let rows = self.superuser_query(member, "SELECT pg_conf_load_time()::text").await?;
        Ok(rows[0].get(0))
    }
}
