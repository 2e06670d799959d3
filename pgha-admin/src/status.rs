//! Cluster status and timeline history (Patroni `/cluster`, `/patroni`, `/history`).

use pgha_client::patroni::{HistoryEntry, Member, NodeStatus, ScheduledSwitchover};
use pgha_client::reqwest::Method;
use serde::Serialize;

use crate::admin::Admin;
use crate::error::{Error, Result};
use crate::rest;

/// The cluster as Patroni describes it, typed (the same shape on Patroni 3.0 and 4.x).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ClusterStatus {
    /// The cluster (scope) name.
    pub scope: Option<String>,
    /// The Patroni version of the endpoint that answered.
    pub patroni_version: Option<String>,
    /// The REST endpoint that answered.
    pub source: String,
    /// The member holding the leader lock.
    pub leader: Option<String>,
    /// Maintenance mode (`pgha pause`).
    pub paused: bool,
    /// A scheduled switchover, if any.
    pub scheduled_switchover: Option<ScheduledSwitchover>,
    /// Every member with its role, state, timeline, lag (bytes) and pending restart.
    pub members: Vec<Member>,
}

impl Admin {
    /// The cluster's members, roles, states, timelines, lag, pending restarts, maintenance mode
    /// and scheduled switchover.
    pub async fn status(&self) -> Result<ClusterStatus> {
        let (source, view) = self.cluster_view().await?;
        // `/cluster` has no scope before Patroni 3.2 and never the version: ask `/patroni` too.
        let node = match rest::request(self.connector(), Method::GET, &source, "/patroni", None).await {
            Ok(reply) => NodeStatus::from_json(&reply.body).ok(),
            Err(e) => {
                tracing::debug!(error = %e, "GET /patroni");
                None
            }
        };
        Ok(ClusterStatus {
            scope: view
                .scope
                .clone()
                .or_else(|| node.as_ref().and_then(|n| n.patroni.scope.clone())),
            patroni_version: node.and_then(|n| n.patroni.version),
            source,
            leader: view.leader().map(|m| m.name.clone()),
            paused: view.pause,
            scheduled_switchover: view.scheduled_switchover.clone(),
            members: view.members,
        })
    }

    /// The timeline history: one entry per promotion (timeline, switch LSN, reason, time, new
    /// leader).
    pub async fn history(&self) -> Result<Vec<HistoryEntry>> {
        let (base, reply) = rest::get_any(self.connector(), &self.endpoints(), "/history").await?;
        HistoryEntry::list_from_json(&reply.body)
            .map_err(|e| Error::protocol(format!("GET {base}/history")).with_source(e))
    }
}
