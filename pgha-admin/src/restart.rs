//! Restart, reload, reinitialize, and the rolling restart (zero-downtime maintenance).

use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use pgha_client::patroni::{ClusterView, Member, Role};
use pgha_client::reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use crate::admin::Admin;
use crate::error::{Error, ErrorKind, Result};
use crate::rest::{self, ReplyExt};
use crate::sql::RowExt;
use crate::switchover::SwitchoverRequest;

/// Which members a restart applies to, by role (Patroni's `role` filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RoleFilter {
    /// Only the primary.
    Primary,
    /// Only replicas.
    Replica,
}

/// A restart request (`POST /restart`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RestartRequest {
    /// One member, or every member when `None`.
    pub member: Option<String>,
    /// Only members with this role.
    pub role: Option<RoleFilter>,
    /// Only members with a pending restart (a changed `postmaster` parameter).
    pub pending_only: bool,
    /// Run it later (ISO 8601 with a time zone).
    pub scheduled_at: Option<DateTime<FixedOffset>>,
}

/// What happened on one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MemberOutcome {
    /// The member.
    pub member: String,
    /// `done`, `scheduled` or `skipped` (its filter did not match).
    pub outcome: &'static str,
    /// Patroni's answer.
    pub message: String,
}

/// One step of a rolling restart.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RollingStep {
    /// What was done (`restart node2`, `switchover node1 -> node2`).
    pub action: String,
    /// Seconds until the member was back (streaming, or the new leader writable).
    pub elapsed_s: f64,
}

/// The outcome of a rolling restart.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RollingRestartReport {
    /// The steps, in order.
    pub steps: Vec<RollingStep>,
    /// The leader before and after.
    pub leader_before: String,
    /// The leader after the switchover.
    pub leader_after: String,
    /// Members still flagged `pending_restart` afterwards. A *decrease* of `max_connections`,
    /// `max_worker_processes`, `max_wal_senders`, `max_prepared_transactions` or
    /// `max_locks_per_transaction` ends here: a standby must keep values at least the
    /// primary's (Patroni starts replicas with the larger one), so the new value takes effect
    /// only when the leader restarts in place — a short outage to plan (`pgha restart <leader>`).
    pub still_pending: Vec<String>,
}

/// How long a rolling restart waits for a cluster in transition to become healthy.
const SETTLE: Duration = Duration::from_secs(30);

fn restart_body(req: &RestartRequest) -> Value {
    let mut body = json!({});
    if req.pending_only {
        body["restart_pending"] = json!(true);
    }
    if let Some(role) = req.role {
        // `primary` is accepted by Patroni 3.x and 4.x alike (4.x rejects `master`).
        body["role"] = json!(match role {
            RoleFilter::Primary => "primary",
            RoleFilter::Replica => "replica",
        });
    }
    if let Some(at) = req.scheduled_at {
        body["schedule"] = json!(at.to_rfc3339());
    }
    body
}

impl Admin {
    /// Restarts PostgreSQL on one member or every member (`POST /restart`), honouring the role
    /// and pending-restart filters; members whose filter does not match are reported `skipped`.
    pub async fn restart(&self, req: &RestartRequest) -> Result<Vec<MemberOutcome>> {
        let (_, view) = self.cluster_view().await?;
        let targets: Vec<&Member> = match &req.member {
            Some(name) => vec![Self::find_member(&view, name)?],
            None => view.members.iter().collect(),
        };
        let body = restart_body(req);
        let mut outcomes = Vec::new();
        for (i, member) in targets.iter().enumerate() {
            let step = Some((i as u32 + 1, targets.len() as u32));
            self.report("restart", format!("restarting {}", member.name), step);
            let reply = self.call_member(member, Method::POST, "/restart", Some(&body)).await?;
            let text = reply.text();
            let outcome = match reply.status {
                200 => "done",
                202 => "scheduled",
                503 if text.contains("conditions are not satisfied") && req.member.is_none() => "skipped",
                _ => {
                    return Err(rest::expect_success(&format!("restart {}", member.name), reply)
                        .err()
                        .unwrap_or_else(|| Error::patroni(0, "unexpected answer")))
                }
            };
            outcomes.push(MemberOutcome {
                member: member.name.clone(),
                outcome,
                message: text,
            });
        }
        Ok(outcomes)
    }

    /// Cancels a member's scheduled restart (`DELETE /restart`).
    pub async fn cancel_restart(&self, member: &str) -> Result<String> {
        let (_, view) = self.cluster_view().await?;
        let m = Self::find_member(&view, member)?;
        let reply = self.call_member(m, Method::DELETE, "/restart", None).await?;
        if reply.status == 404 {
            return Err(Error::not_found(format!("no restart is scheduled on {member}")));
        }
        Ok(rest::expect_success("DELETE /restart", reply)?.text())
    }

    /// Re-reads the Patroni configuration file on one member or all (`POST /reload`).
    pub async fn reload(&self, member: Option<&str>) -> Result<Vec<MemberOutcome>> {
        let (_, view) = self.cluster_view().await?;
        let targets: Vec<&Member> = match member {
            Some(name) => vec![Self::find_member(&view, name)?],
            None => view.members.iter().collect(),
        };
        let mut outcomes = Vec::new();
        for m in targets {
            let reply = self.call_member(m, Method::POST, "/reload", None).await?;
            let reply = rest::expect_success(&format!("reload {}", m.name), reply)?;
            outcomes.push(MemberOutcome {
                member: m.name.clone(),
                outcome: "done",
                message: reply.text(),
            });
        }
        Ok(outcomes)
    }

    /// Rebuilds a replica's data directory from the leader (`POST /reinitialize`, forced) and
    /// waits until it streams again, reporting its state as it goes. Refused on the leader.
    pub async fn reinitialize(&self, member: &str) -> Result<MemberOutcome> {
        let (_, view) = self.cluster_view().await?;
        let m = Self::find_member(&view, member)?;
        if m.role == Role::Leader {
            return Err(Error::precondition(format!(
                "{member} is the leader; switch over first, then reinitialize it"
            )));
        }
        Self::require_leader(&view)?;
        self.report("reinitialize", format!("wiping and re-cloning {member}"), Some((1, 2)));
        let reply = self
            .call_member(m, Method::POST, "/reinitialize", Some(&json!({ "force": true })))
            .await?;
        let message = rest::expect_success(&format!("reinitialize {member}"), reply)?.text();
        self.wait_streaming("reinitialize", member).await?;
        self.report("reinitialize", format!("{member} streams again"), Some((2, 2)));
        Ok(MemberOutcome {
            member: member.to_owned(),
            outcome: "done",
            message,
        })
    }

    /// Waits until `member` is up, on the leader's timeline, and listed as `streaming` in the
    /// leader's `pg_stat_replication` (Patroni names each replica's connection after the member).
    pub(crate) async fn wait_streaming(&self, operation: &'static str, member: &str) -> Result<()> {
        let deadline = Instant::now() + self.wait_limit();
        let mut last_state = String::new();
        loop {
            let status = self.streaming_status(member).await;
            let state = match &status {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(state)) => state.clone(),
                Err(e) if matches!(e.kind(), ErrorKind::Unreachable | ErrorKind::Database) => e.to_string(),
                Err(_) => return status.map(|_| ()),
            };
            if state != last_state {
                self.report(operation, format!("{member}: {state}"), None);
                last_state = state;
            }
            if Instant::now() > deadline {
                return Err(Error::timeout(format!(
                    "{member} is not streaming after {:?} ({last_state})",
                    self.wait_limit()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// `Ok(Ok(()))` when streaming, `Ok(Err(state))` with what it is doing otherwise.
    async fn streaming_status(&self, member: &str) -> Result<std::result::Result<(), String>> {
        let (_, view) = self.cluster_view().await?;
        let Some(m) = view.member(member) else {
            return Ok(Err("not registered in the DCS (yet)".into()));
        };
        let Some(leader) = view.leader() else {
            return Ok(Err("the cluster has no leader".into()));
        };
        if !m.state.is_up() {
            return Ok(Err(format!("state {}", m.state)));
        }
        if m.timeline.is_some() && m.timeline != leader.timeline {
            return Ok(Err(format!(
                "on timeline {:?}, the leader on {:?}",
                m.timeline, leader.timeline
            )));
        }
        let db = self.sql(leader, None).await?;
        let row = db
            .query_opt(
                "SELECT state FROM pg_stat_replication WHERE application_name = $1 ORDER BY state = 'streaming' DESC LIMIT 1",
                &[&member],
            )
            .await
            .map_err(|e| Error::db("reading pg_stat_replication", e))?;
        Ok(match row.map(|r| r.col::<String>(0)).transpose()? {
            Some(s) if s == "streaming" => Ok(()),
            Some(s) => Err(format!("replication connection {s}")),
            None => Err("no replication connection to the leader yet".into()),
        })
    }

    /// Zero-downtime maintenance as one operation: restart each replica in turn (each back to
    /// streaming before the next), switch over to a replica, then restart the old leader. With
    /// `pending_only`, members without a pending restart are left alone (the switchover happens
    /// only if the leader needs its restart).
    pub async fn rolling_restart(&self, pending_only: bool) -> Result<RollingRestartReport> {
        // A member may be passing through a transient state (the old leader of a switchover
        // rejoining); give the cluster a little time to settle before refusing.
        let settle = Instant::now() + SETTLE.min(self.wait_limit());
        let view = loop {
            let (_, view) = self.cluster_view().await?;
            match check_all_streaming_in_view(&view) {
                Ok(()) => break view,
                Err(e) if Instant::now() > settle => return Err(e),
                Err(e) => {
                    self.report(
                        "rolling-restart",
                        format!("waiting for the cluster to settle: {e}"),
                        None,
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let leader = Self::require_leader(&view)?.name.clone();
        let needs = |m: &Member| !pending_only || m.pending_restart;
        let replicas: Vec<String> = view
            .members
            .iter()
            .filter(|m| m.role != Role::Leader && needs(m))
            .map(|m| m.name.clone())
            .collect();
        let leader_needs = view.leader().is_some_and(needs);
        let total = replicas.len() as u32 + if leader_needs { 2 } else { 0 };
        let mut steps = Vec::new();
        let mut n = 0;
        for name in &replicas {
            n += 1;
            let started = Instant::now();
            self.report(
                "rolling-restart",
                format!("restarting replica {name}"),
                Some((n, total)),
            );
            self.restart_one(name).await?;
            self.wait_streaming("rolling-restart", name).await?;
            steps.push(RollingStep {
                action: format!("restart {name}"),
                elapsed_s: started.elapsed().as_secs_f64(),
            });
        }
        let mut leader_after = leader.clone();
        if leader_needs {
            n += 1;
            let started = Instant::now();
            self.report(
                "rolling-restart",
                format!("switching over from {leader}"),
                Some((n, total)),
            );
            let report = self.switchover(&SwitchoverRequest::new(None)).await?;
            leader_after = report.new_leader.unwrap_or_default();
            steps.push(RollingStep {
                action: format!("switchover {leader} -> {leader_after}"),
                elapsed_s: started.elapsed().as_secs_f64(),
            });
            n += 1;
            let started = Instant::now();
            self.report(
                "rolling-restart",
                format!("restarting the old leader {leader}"),
                Some((n, total)),
            );
            // The demoted leader may already have been restarted by the switchover itself;
            // restart it anyway so it runs the new settings, once it is a streaming replica.
            self.wait_streaming("rolling-restart", &leader).await?;
            self.restart_one(&leader).await?;
            self.wait_streaming("rolling-restart", &leader).await?;
            steps.push(RollingStep {
                action: format!("restart {leader}"),
                elapsed_s: started.elapsed().as_secs_f64(),
            });
        }
        let (_, view) = self.cluster_view().await?;
        let still_pending: Vec<String> = view
            .members
            .iter()
            .filter(|m| m.pending_restart)
            .map(|m| m.name.clone())
            .collect();
        if !still_pending.is_empty() {
            self.report(
                "rolling-restart",
                format!(
                    "still pending a restart: {} (a decreased max_* setting needs the leader restarted in place)",
                    still_pending.join(", ")
                ),
                None,
            );
        }
        Ok(RollingRestartReport {
            steps,
            leader_before: leader,
            leader_after,
            still_pending,
        })
    }

    async fn restart_one(&self, member: &str) -> Result<()> {
        let req = RestartRequest {
            member: Some(member.to_owned()),
            ..RestartRequest::default()
        };
        self.restart(&req).await.map(drop)
    }
}

/// A rolling restart starts only from a healthy cluster: every replica up on the leader's
/// timeline (a member down would leave no standby while another restarts).
fn check_all_streaming_in_view(view: &ClusterView) -> Result<()> {
    let leader = Admin::require_leader(view)?;
    let unhealthy: Vec<String> = view
        .members
        .iter()
        .filter(|m| m.role != Role::Leader)
        .filter(|m| !m.state.is_up() || (m.timeline.is_some() && m.timeline != leader.timeline))
        .map(|m| format!("{} ({}, timeline {:?})", m.name, m.state, m.timeline))
        .collect();
    if unhealthy.is_empty() {
        Ok(())
    } else {
        Err(Error::precondition(format!(
            "not every replica is healthy, a rolling restart would leave no standby: {}",
            unhealthy.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_body_uses_names_both_patroni_majors_accept() {
        let req = RestartRequest {
            role: Some(RoleFilter::Primary),
            pending_only: true,
            ..RestartRequest::default()
        };
        assert_eq!(restart_body(&req), json!({"role": "primary", "restart_pending": true}));
        assert_eq!(restart_body(&RestartRequest::default()), json!({}));
    }

    #[test]
    fn rolling_restart_refuses_a_degraded_cluster() {
        let view = ClusterView::from_json(
            br#"{"members": [
            {"name": "a", "role": "leader", "state": "running", "timeline": 2},
            {"name": "b", "role": "replica", "state": "streaming", "timeline": 2, "lag": 0},
            {"name": "c", "role": "replica", "state": "stopped", "lag": "unknown"}]}"#,
        )
        .expect("fixture");
        let e = check_all_streaming_in_view(&view).expect_err("must be refused");
        assert_eq!(e.kind(), ErrorKind::Precondition);
        assert!(e.to_string().contains("c (stopped"), "{e}");
    }
}
