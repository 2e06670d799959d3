//! The nemesis: injects one fault, holds it until it has had its effect, heals the cluster, and
//! records what Patroni showed before and after.

use std::time::Duration;

use anyhow::Context;
use pgha_testkit::{wait_for, LocalCluster};
use rand::rngs::StdRng;
use rand::Rng;
use serde::Serialize;

use super::FaultKind;

/// How long a fault meant to cause a failover is held, past the TTL, waiting for one.
const FAILOVER_WAIT: Duration = Duration::from_secs(60);

/// How long a fault on etcd's raft leader is held waiting for another member to lead (etcd's
/// election timeout is 1 s by default), and how long etcd has to be healthy again afterwards.
const ETCD_ELECTION_WAIT: Duration = Duration::from_secs(30);

/// The cluster as Patroni showed it, before or after a fault.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterView {
    /// The leader Patroni named, if any.
    pub leader: Option<String>,
    /// The leader's timeline.
    pub timeline: Option<u64>,
    /// Every member as `name role state timeline`, or why Patroni could not be asked.
    pub members: Vec<String>,
    /// etcd's raft leader (`etcd0`…), if one answered.
    pub etcd_leader: Option<String>,
}

impl ClusterView {
    async fn read(cluster: &LocalCluster) -> Self {
        let etcd_leader = cluster.etcd_leader().await.map(etcd_name);
        match cluster.cluster_status().await {
            Ok(status) => {
                let leader = status.iter().find(|m| m.role == "leader");
                Self {
                    leader: leader.map(|m| m.name.clone()),
                    timeline: leader.and_then(|m| m.timeline),
                    members: status
                        .iter()
                        .map(|m| {
                            let tl = m.timeline.map_or_else(|| "-".to_owned(), |t| t.to_string());
                            format!("{} {} {} {tl}", m.name, m.role, m.state)
                        })
                        .collect(),
                    etcd_leader,
                }
            }
            Err(e) => Self {
                members: vec![format!("Patroni unavailable: {e}")],
                etcd_leader,
                ..Self::default()
            },
        }
    }

    /// Whether `after` has another leader or a later timeline than `self`.
    pub fn failed_over_to(&self, after: &ClusterView) -> bool {
        after.leader.is_some()
            && (after.leader != self.leader || after.timeline.unwrap_or(0) > self.timeline.unwrap_or(0))
    }
}

/// One fault as the nemesis injected it.
pub(super) struct Injected {
    /// The member it hit (`all` for cluster-wide faults).
    pub target: String,
    /// Members re-cloned to heal the cluster.
    pub recloned: Vec<String>,
    /// Patroni's view just before the fault.
    pub before: ClusterView,
    /// Patroni's view once the cluster was whole again.
    pub after: ClusterView,
    /// Why a fault meant to cause a failover (or another checked effect) did not, if it did not.
    pub no_effect: Option<String>,
    /// Whether the fault's effect was confirmed; `None` for kinds whose effect is not checked.
    pub effective: Option<bool>,
}

fn etcd_name(i: usize) -> String {
    format!("etcd{i}")
}

/// Waits, while a fault holds etcd member `i`, until another etcd member leads; on timeout says
/// so.
async fn hold_until_etcd_leader_moves(cluster: &LocalCluster, i: usize) -> Result<(), String> {
    let moved = wait_for("another etcd member to lead", ETCD_ELECTION_WAIT, || async {
        Ok(cluster.etcd_leader().await.filter(|j| *j != i))
    })
    .await;
    match moved {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "{e} (leader: {:?})",
            cluster.etcd_leader().await.map(etcd_name)
        )),
    }
}

/// Waits until every etcd member answers healthy (a thawed member catches up from the leader).
async fn wait_etcd_healthy(cluster: &LocalCluster) -> anyhow::Result<()> {
    let healthy = wait_for(
        "every etcd member healthy after the fault",
        ETCD_ELECTION_WAIT,
        || async { Ok(cluster.etcd_members_healthy().await.iter().all(|h| *h).then_some(())) },
    )
    .await;
    healthy.map_err(|e| anyhow::anyhow!("{e}"))
}

/// Waits (at most [`ETCD_ELECTION_WAIT`]) until `member`'s Patroni accepts connections on its
/// REST port: it has started again.
async fn wait_patroni_listening(cluster: &LocalCluster, member: &str) {
    let Some((host, port)) = cluster
        .api_url(member)
        .ok()
        .and_then(|u| reqwest::Url::parse(&u).ok())
        .and_then(|u| Some((u.host_str()?.to_owned(), u.port_or_known_default()?)))
    else {
        return;
    };
    // Not listening in time: the second fault comes anyway, still during the healing.
    let _ = wait_for("the old leader's Patroni to listen", ETCD_ELECTION_WAIT, || async {
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        Ok(tokio::time::timeout(Duration::from_secs(1), connect)
            .await
            .ok()
            .and_then(Result::ok)
            .map(drop))
    })
    .await;
}

async fn pick_replica(cluster: &LocalCluster, rng: &mut StdRng) -> anyhow::Result<String> {
    let leader = cluster.leader().await?;
    let replicas: Vec<String> = cluster.member_names().into_iter().filter(|m| *m != leader).collect();
    anyhow::ensure!(!replicas.is_empty(), "no replica");
    Ok(replicas[rng.random_range(0..replicas.len())].clone())
}

/// The leader, once its PostgreSQL runs: a leader may be between a stop and a start of its
/// PostgreSQL for a moment (Patroni restarting it after a demotion), and a fault that needs its
/// postmaster waits for one rather than failing the run.
async fn leader_with_postgres(cluster: &LocalCluster) -> anyhow::Result<String> {
    Ok(
        wait_for("a leader whose PostgreSQL runs", Duration::from_secs(60), || async {
            let leader = cluster.leader().await?;
            Ok(cluster.postmaster_process(&leader)?.map(|_| leader))
        })
        .await?,
    )
}

/// Waits, while a fault holds, until a member other than `target` leads and takes writes; on
/// timeout says so with Patroni's view at that moment.
async fn hold_until_new_leader(cluster: &LocalCluster, target: &str, ttl: Duration) -> Result<(), String> {
    match cluster.wait_for_new_leader(target, ttl + FAILOVER_WAIT).await {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "no other member led while the fault held: {e}; Patroni then: {:?}",
            ClusterView::read(cluster).await
        )),
    }
}

/// Injects one fault and heals the cluster.
pub(super) async fn inject(cluster: &LocalCluster, kind: FaultKind, rng: &mut StdRng) -> anyhow::Result<Injected> {
    let ttl = Duration::from_secs(u64::from(cluster.timing().ttl));
    let etcd_leader = if kind.moves_etcd_leader() {
        Some(
            cluster
                .etcd_leader()
                .await
                .context("etcd has no leader before the fault")?,
        )
    } else {
        None
    };
    let target = match kind {
        FaultKind::RestartStandby | FaultKind::PauseReplay => pick_replica(cluster, rng).await?,
        FaultKind::EtcdRestart | FaultKind::RestApiDown | FaultKind::KillSessions => "all".to_owned(),
        FaultKind::KillPostmaster => leader_with_postgres(cluster).await?,
        _ if etcd_leader.is_some() => etcd_leader.map(etcd_name).unwrap_or_default(),
        _ => cluster.leader().await?,
    };
    let before = ClusterView::read(cluster).await;
    // A fault meant to depose the leader (of the cluster or of etcd) is held until another
    // member leads (or the wait ends).
    let mut promoted = Ok(());
    match kind {
        FaultKind::KillEtcdLeader | FaultKind::FreezeEtcdLeader => {
            let i = etcd_leader.unwrap_or_default();
            if kind == FaultKind::KillEtcdLeader {
                cluster.kill_etcd_member(i)?;
            } else {
                cluster.freeze_etcd_member(i)?;
            }
            promoted = hold_until_etcd_leader_moves(cluster, i).await;
            if kind == FaultKind::KillEtcdLeader {
                cluster.start_etcd_member(i).await?;
            } else {
                cluster.thaw_etcd_member(i)?;
            }
            wait_etcd_healthy(cluster).await?;
        }
        FaultKind::KillLeader => {
            cluster.kill_node(&target)?;
            promoted = hold_until_new_leader(cluster, &target, ttl).await;
            cluster.start_node(&target)?;
        }
        FaultKind::SecondFaultWhileHealing => {
            cluster.kill_node(&target)?;
            promoted = hold_until_new_leader(cluster, &target, ttl).await;
            cluster.start_node(&target)?;
            if promoted.is_ok() {
                // Once the old leader's Patroni is up again, that is while it rejoins (pg_rewind
                // or a clone come after its REST server starts).
                wait_patroni_listening(cluster, &target).await;
                cluster.kill_postmaster(&leader_with_postgres(cluster).await?)?;
            }
        }
        FaultKind::KillPostmaster => cluster.kill_postmaster(&target)?,
        FaultKind::FreezeLeader => {
            cluster.freeze_node(&target)?;
            promoted = hold_until_new_leader(cluster, &target, ttl).await;
            cluster.thaw_node(&target)?;
        }
        FaultKind::EtcdRestart => {
            cluster.stop_etcd()?;
            tokio::time::sleep(Duration::from_secs(4)).await;
            cluster.start_etcd_again().await?;
            // Patroni's leader reacts to the outage (past retry_timeout it demotes itself, then
            // takes its key back) in the HA loops after etcd returns: let two loops run before
            // the cluster is judged whole, or it is judged in the middle of that reaction.
            tokio::time::sleep(Duration::from_secs(2 * u64::from(cluster.timing().loop_wait) + 1)).await;
        }
        FaultKind::Switchover => {
            // In synchronous mode Patroni refuses (412) until a synchronous standby is
            // registered again after the previous fault: wait for one rather than give up.
            let mut attempt = 0;
            loop {
                match cluster.switchover(None).await {
                    Ok(_) => break,
                    Err(e) if attempt < 30 && e.to_string().contains("412") => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        FaultKind::RestartStandby => {
            cluster.stop_node(&target)?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            cluster.start_node(&target)?;
        }
        FaultKind::PauseReplay => {
            cluster.pause_replay(&target)?;
            tokio::time::sleep(Duration::from_secs(4)).await;
            cluster.resume_replay(&target)?;
        }
        FaultKind::PartitionLeader => {
            cluster.partition_node(&target)?;
            promoted = hold_until_new_leader(cluster, &target, ttl).await;
            cluster.heal_partition()?;
        }
        FaultKind::KillSessions => {
            let sql = format!(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name LIKE '{}%'",
                super::workload::APPLICATION
            );
            let mut terminated = 0;
            for member in cluster.member_names() {
                let rows = cluster.superuser_query(&member, &sql).await?;
                terminated += rows.first().and_then(|r| r.try_get::<_, i64>(0).ok()).unwrap_or(0);
            }
            if terminated == 0 {
                promoted = Err("no session of the workload was terminated".to_owned());
            }
        }
        FaultKind::ZombiePrimary => {
            cluster.freeze_patroni(&target)?;
            promoted = hold_until_new_leader(cluster, &target, ttl).await;
            cluster.thaw_patroni(&target)?;
        }
        FaultKind::RestApiDown => {
            let members = cluster.member_names();
            for m in &members {
                cluster.block_rest_api(m)?;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            for m in &members {
                cluster.restore_rest_api(m)?;
            }
        }
    }
    let recloned = crate::harness::settle(cluster).await?;
    let after = ClusterView::read(cluster).await;
    let no_effect = match promoted {
        Err(why) => Some(why),
        Ok(_) if kind.fails_over() && !before.failed_over_to(&after) => Some(format!(
            "the leader and timeline did not change: before {before:?}, after {after:?}"
        )),
        Ok(_) => None,
    };
    let effective = match &no_effect {
        Some(_) => Some(false),
        None if kind.effect_is_checked() => Some(true),
        None => None,
    };
    Ok(Injected {
        target,
        recloned,
        before,
        after,
        no_effect,
        effective,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(leader: Option<&str>, timeline: Option<u64>) -> ClusterView {
        ClusterView {
            leader: leader.map(str::to_owned),
            timeline,
            members: Vec::new(),
            etcd_leader: None,
        }
    }

    #[test]
    fn a_failover_is_another_leader_or_a_later_timeline() {
        let before = view(Some("m1"), Some(3));
        assert!(before.failed_over_to(&view(Some("m2"), Some(4))));
        // The old leader back on a new timeline (it lost the key and won it again).
        assert!(before.failed_over_to(&view(Some("m1"), Some(4))));
        assert!(!before.failed_over_to(&view(Some("m1"), Some(3))));
        // No leader after the fault is not a failover, whatever the view before.
        assert!(!before.failed_over_to(&view(None, None)));
        assert!(view(None, None).failed_over_to(&view(Some("m1"), Some(3))));
    }
}
