//! The nemesis: injects one fault, waits it out, heals the cluster.

use std::time::Duration;

use pgha_testkit::LocalCluster;
use rand::rngs::StdRng;
use rand::Rng;

use super::FaultKind;

async fn pick_replica(cluster: &LocalCluster, rng: &mut StdRng) -> anyhow::Result<String> {
    let leader = cluster.leader().await?;
    let replicas: Vec<String> = cluster.member_names().into_iter().filter(|m| *m != leader).collect();
    anyhow::ensure!(!replicas.is_empty(), "no replica");
    Ok(replicas[rng.random_range(0..replicas.len())].clone())
}

/// Injects one fault and heals the cluster; returns the member it hit and the members re-cloned.
pub(super) async fn inject(
    cluster: &LocalCluster,
    kind: FaultKind,
    rng: &mut StdRng,
) -> anyhow::Result<(String, Vec<String>)> {
    let ttl = Duration::from_secs(u64::from(cluster.timing().ttl));
    let target = match kind {
        FaultKind::RestartStandby | FaultKind::PauseReplay => pick_replica(cluster, rng).await?,
        FaultKind::EtcdRestart | FaultKind::RestApiDown => "all".to_owned(),
        _ => cluster.leader().await?,
    };
    match kind {
        FaultKind::KillLeader => {
            cluster.kill_node(&target)?;
            cluster.wait_for_new_leader(&target, Duration::from_secs(90)).await?;
            cluster.start_node(&target)?;
        }
        FaultKind::KillPostmaster => cluster.kill_postmaster(&target)?,
        FaultKind::FreezeLeader => {
            cluster.freeze_node(&target)?;
            tokio::time::sleep(ttl + Duration::from_secs(3)).await;
            cluster.thaw_node(&target)?;
        }
        FaultKind::EtcdRestart => {
            cluster.stop_etcd()?;
            tokio::time::sleep(Duration::from_secs(4)).await;
            cluster.start_etcd_again().await?;
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
            tokio::time::sleep(ttl + Duration::from_secs(5)).await;
            cluster.heal_partition()?;
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
    Ok((target, recloned))
}
