//! `patronictl remove`: a cluster's state wiped from the DCS, before a restore or after the
//! cluster is decommissioned.

use pgha_client::{DcsKeys, DcsRemoval};
use serde::Serialize;

use crate::{Admin, Error, Result};

/// What [`Admin::remove_cluster`] deleted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemovedCluster {
    /// The cluster's scope.
    pub scope: String,
    /// Its key prefix in etcd, `/<namespace>/<scope>/`.
    pub prefix: String,
    /// The deleted keys, relative to the prefix (`initialize`, `leader`, `members/node1`…);
    /// empty when the cluster had none.
    pub keys: Vec<String>,
    /// etcd's revision after the deletion.
    pub revision: i64,
    /// The etcd endpoint that carried it out.
    pub endpoint: String,
}

impl Admin {
    /// The keys [`remove_cluster`](Self::remove_cluster) would delete, and the leader it would
    /// ask for: the cluster's keys in etcd, read linearizably. `scope` as there.
    pub async fn cluster_keys(&self, scope: &str) -> Result<DcsKeys> {
        self.check_scope(scope)?;
        self.connector()
            .dcs_cluster_keys()
            .await
            .map_err(|e| Error::from(e).prefixed(format!("listing {scope} in etcd")))
    }

    /// `scope` is the configured one.
    fn check_scope(&self, scope: &str) -> Result<()> {
        let configured = self
            .connector()
            .patroni_scope()
            .ok_or_else(|| Error::usage("no cluster scope is configured").with_settings(&["patroni_scope"]))?;
        if scope == configured {
            Ok(())
        } else {
            Err(Error::usage(format!(
                "{scope:?} is not the configured cluster ({configured:?}): nothing removed"
            )))
        }
    }

    /// Deletes every key of the cluster from etcd in one transaction — `patronictl remove`.
    ///
    /// `scope` is the cluster's name as the operator typed it and must be the configured
    /// [`patroni_scope`](pgha_client::ClientBuilder::patroni_scope). When the cluster has a leader
    /// key, `leader` must name its holder (patronictl asks for it): otherwise nothing is deleted
    /// and a [precondition](crate::ErrorKind::Precondition) error names the leader. The check and
    /// the deletion are one etcd transaction, so a leader elected in between stops it too.
    ///
    /// Needs [`etcd`](pgha_client::ClientBuilder::etcd) endpoints and an etcd user with write
    /// permission on the prefix. **Destructive**: meant for a stopped cluster — running members
    /// write their keys again and a running leader loses its lock.
    ///
    /// ```no_run
    /// # async fn demo() -> pgha_admin::Result<()> {
    /// let admin = pgha_admin::Admin::new(
    ///     pgha_client::Client::builder().etcd(["http://10.0.0.1:2379"]).patroni_scope("pg-ha"),
    /// )?;
    /// let removed = admin.remove_cluster("pg-ha", None).await?;
    /// println!("{} keys deleted under {}", removed.keys.len(), removed.prefix);
    /// # Ok(()) }
    /// ```
    pub async fn remove_cluster(&self, scope: &str, leader: Option<&str>) -> Result<RemovedCluster> {
        self.check_scope(scope)?;
        let answer = self
            .connector()
            .dcs_remove_cluster(leader)
            .await
            .map_err(|e| Error::from(e).prefixed(format!("removing {scope} from etcd")))?;
        match answer {
            DcsRemoval::Removed {
                prefix,
                keys,
                revision,
                endpoint,
            } => {
                self.report("remove", format!("{} keys deleted under {prefix}", keys.len()), None);
                Ok(RemovedCluster {
                    scope: scope.to_owned(),
                    prefix,
                    keys,
                    revision,
                    endpoint,
                })
            }
            DcsRemoval::LeaderMismatch { leader: Some(holder) } => Err(Error::precondition(format!(
                "{scope} has a leader, {holder}: name it to remove a cluster with a leader (nothing removed)"
            ))),
            DcsRemoval::LeaderMismatch { leader: None } => Err(Error::precondition(format!(
                "{scope} has no leader, but one was named (nothing removed)"
            ))),
            _ => Err(Error::protocol(format!(
                "removing {scope}: an answer this version does not know"
            ))),
        }
    }
}
