//! Switchover and failover: pre-flight checks, the request, and waiting until the new leader
//! accepts writes.

use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Utc};
use pgha_client::patroni::{ClusterView, Member, NodeStatus, Role};
use pgha_client::reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use crate::admin::Admin;
use crate::error::{Error, ErrorKind, Result};
use crate::rest::{self, ReplyExt};
use crate::sql::RowExt;

/// Parses a schedule as Patroni wants it: ISO 8601 / RFC 3339 **with a time zone**
/// (`2026-11-27T02:00:00+01:00`, `2026-11-27 01:00:00Z`), in the future.
///
/// ```
/// use pgha_admin::parse_schedule;
/// assert!(parse_schedule("2999-01-01T02:00:00+01:00").is_ok());
/// assert!(parse_schedule("2999-01-01T02:00:00").is_err()); // no time zone
/// assert!(parse_schedule("2001-01-01T02:00:00Z").is_err()); // in the past
/// assert!(parse_schedule("tomorrow").is_err());
/// ```
pub fn parse_schedule(s: &str) -> Result<DateTime<FixedOffset>> {
    let t = DateTime::parse_from_rfc3339(s.trim())
        .or_else(|_| DateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S%#z"))
        .map_err(|e| {
            Error::usage(format!(
                "schedule {s:?} is not an ISO 8601 time with a time zone, e.g. 2026-11-27T02:00:00+00:00 ({e})"
            ))
        })?;
    if t <= Utc::now() {
        return Err(Error::usage(format!("schedule {s:?} is in the past")));
    }
    Ok(t)
}

/// A switchover or failover request.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SwitchoverRequest {
    /// The member to promote. Optional for a switchover (Patroni picks the best one), required
    /// for a failover.
    pub candidate: Option<String>,
    /// Run it later (switchover only; see [`parse_schedule`]).
    pub scheduled_at: Option<DateTime<FixedOffset>>,
}

impl SwitchoverRequest {
    /// A request to promote `candidate` (or any eligible member when `None`) now.
    pub fn new(candidate: Option<&str>) -> Self {
        Self {
            candidate: candidate.map(str::to_owned),
            scheduled_at: None,
        }
    }

    /// Schedules the request.
    pub fn at(mut self, when: DateTime<FixedOffset>) -> Self {
        self.scheduled_at = Some(when);
        self
    }
}

/// What a switchover or failover will do, after its pre-flight checks passed.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SwitchoverPlan {
    /// `switchover` or `failover`.
    pub kind: &'static str,
    /// The current leader (none for a failover of a leaderless cluster).
    pub leader: Option<String>,
    /// The member to promote (`None`: Patroni picks among `eligible`).
    pub candidate: Option<String>,
    /// Members that passed the candidate checks.
    pub eligible: Vec<String>,
    /// When, if scheduled (RFC 3339).
    pub scheduled_at: Option<String>,
    /// Risks the operator should know about (possible data loss…).
    pub warnings: Vec<String>,
}

/// The outcome of a switchover or failover.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SwitchoverReport {
    /// The plan that was carried out.
    pub plan: SwitchoverPlan,
    /// The new leader (`None` when scheduled).
    pub new_leader: Option<String>,
    /// Patroni's answer.
    pub message: String,
    /// Seconds from the request until the new leader accepted writes.
    pub elapsed_s: f64,
}

/// Why `member` cannot be promoted by a switchover, or `None` if it can.
fn ineligibility(view: &ClusterView, member: &Member, max_lag: u64, synchronous: bool) -> Option<String> {
    if member.role == Role::Leader {
        return Some("it is the leader".into());
    }
    if !member.state.is_up() {
        return Some(format!("its state is {:?}", member.state.as_str()));
    }
    if member.tags.nofailover {
        return Some("it has the nofailover tag".into());
    }
    match member.lag {
        None => return Some("its replication lag is unknown".into()),
        Some(lag) if lag > max_lag => {
            return Some(format!("it lags {lag} bytes (maximum_lag_on_failover is {max_lag})"))
        }
        _ => {}
    }
    if synchronous && !matches!(member.role, Role::SyncStandby | Role::QuorumStandby) {
        return Some("synchronous_mode is on and it is not a synchronous standby".into());
    }
    let leader_tl = view.leader().and_then(|l| l.timeline);
    if let (Some(tl), Some(leader_tl)) = (member.timeline, leader_tl) {
        if tl != leader_tl {
            return Some(format!("it is on timeline {tl}, the leader on {leader_tl}"));
        }
    }
    None
}

fn config_u64(config: &Value, key: &str, default: u64) -> u64 {
    config.get(key).and_then(Value::as_u64).unwrap_or(default)
}

fn config_bool(config: &Value, key: &str) -> bool {
    match config.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "on" | "true" | "quorum"),
        _ => false,
    }
}

/// The pure pre-flight check of a switchover.
pub(crate) fn plan_switchover(view: &ClusterView, config: &Value, req: &SwitchoverRequest) -> Result<SwitchoverPlan> {
    let leader = Admin::require_leader(view)?;
    if view.pause && req.scheduled_at.is_some() {
        return Err(Error::precondition("a paused cluster cannot schedule a switchover"));
    }
    if view.pause && req.candidate.is_none() {
        return Err(Error::precondition("a paused cluster needs an explicit candidate"));
    }
    let max_lag = config_u64(config, "maximum_lag_on_failover", 1_048_576);
    let synchronous = config_bool(config, "synchronous_mode");
    let eligible: Vec<String> = view
        .members
        .iter()
        .filter(|m| ineligibility(view, m, max_lag, synchronous).is_none())
        .map(|m| m.name.clone())
        .collect();
    if let Some(name) = &req.candidate {
        let member = Admin::find_member(view, name)?;
        if let Some(why) = ineligibility(view, member, max_lag, synchronous) {
            return Err(Error::precondition(format!("{name} cannot take over: {why}")));
        }
    } else if eligible.is_empty() {
        let reasons: Vec<String> = view
            .members
            .iter()
            .filter(|m| m.role != Role::Leader)
            .filter_map(|m| ineligibility(view, m, max_lag, synchronous).map(|why| format!("{}: {why}", m.name)))
            .collect();
        return Err(Error::precondition(format!(
            "no member can take over ({})",
            if reasons.is_empty() {
                "the leader is the only member".into()
            } else {
                reasons.join("; ")
            }
        )));
    }
    Ok(SwitchoverPlan {
        kind: "switchover",
        leader: Some(leader.name.clone()),
        candidate: req.candidate.clone(),
        eligible,
        scheduled_at: req.scheduled_at.map(|t| t.to_rfc3339()),
        warnings: Vec::new(),
    })
}

/// The pure pre-flight check of a failover: the candidate must exist and be running; risks are
/// warnings, since a failover is the tool of last resort.
pub(crate) fn plan_failover(view: &ClusterView, req: &SwitchoverRequest) -> Result<SwitchoverPlan> {
    let name = req
        .candidate
        .as_deref()
        .ok_or_else(|| Error::usage("a failover needs a candidate (use a switchover to let Patroni choose)"))?;
    if req.scheduled_at.is_some() {
        return Err(Error::usage(
            "a failover cannot be scheduled; schedule a switchover instead",
        ));
    }
    let member = Admin::find_member(view, name)?;
    if member.role == Role::Leader {
        return Err(Error::precondition(format!("{name} is already the leader")));
    }
    if !member.state.is_up() {
        return Err(Error::precondition(format!(
            "{name} cannot take over: its state is {:?}",
            member.state.as_str()
        )));
    }
    let mut warnings = Vec::new();
    if let Some(leader) = view.leader() {
        warnings.push(format!(
            "{} is a running leader: a switchover would be safer (it checks lag and synchronous state)",
            leader.name
        ));
    }
    match member.lag {
        Some(0) => {}
        Some(lag) => warnings.push(format!(
            "{name} lags {lag} bytes: transactions not yet replicated to it will be lost"
        )),
        None => warnings.push(format!("{name}'s lag is unknown: recent transactions may be lost")),
    }
    if member.tags.nofailover {
        warnings.push(format!("{name} has the nofailover tag; Patroni will refuse it"));
    }
    Ok(SwitchoverPlan {
        kind: "failover",
        leader: view.leader().map(|l| l.name.clone()),
        candidate: Some(name.to_owned()),
        eligible: vec![name.to_owned()],
        scheduled_at: None,
        warnings,
    })
}

impl Admin {
    /// Checks a switchover without doing it: the leader exists, the candidate (or at least one
    /// member) is running, lags at most `maximum_lag_on_failover`, has no `nofailover` tag, is a
    /// synchronous standby in synchronous mode, and is on the leader's timeline.
    ///
    /// The lag is judged as Patroni judges it when it picks a candidate: on each member's live
    /// WAL position from its REST API (`GET /patroni`), not on `/cluster`'s figure, which
    /// subtracts positions each member wrote to the DCS at its last HA loop (every `loop_wait`)
    /// and so can show megabytes of lag for a member that streams in step — right after a WAL
    /// switch, say. A member whose REST API does not answer keeps `/cluster`'s figure.
    pub async fn plan_switchover(&self, req: &SwitchoverRequest) -> Result<SwitchoverPlan> {
        let (_, mut view) = self.cluster_view().await?;
        let config = self.config().await?;
        self.measure_lag_live(&mut view).await;
        plan_switchover(&view, &config, req)
    }

    async fn live_status(&self, member: &Member) -> Option<NodeStatus> {
        self.node_status(member)
            .await
            .inspect_err(|e| tracing::debug!(member = %member.name, "no live WAL position: {e}"))
            .ok()
    }

    /// Replaces each running standby's `lag` in `view` with the leader's current WAL position
    /// minus the standby's (the greater of received and replayed, as Patroni's candidate check
    /// takes it), both read from the members' REST APIs, the leader's first. The figure can
    /// understate the lag only by what a standby received between the two reads; Patroni's own
    /// check compares with the leader's position at its last HA loop, older still.
    async fn measure_lag_live(&self, view: &mut ClusterView) {
        let Some(leader) = view.leader().cloned() else {
            return;
        };
        let Some(leader_at) = self.live_status(&leader).await.and_then(|s| s.xlog.location) else {
            return;
        };
        for member in view.members.iter_mut() {
            if member.name == leader.name || !member.state.is_up() {
                continue;
            }
            let Some(status) = self.live_status(member).await else {
                continue;
            };
            let at = status.xlog.received_location.max(status.xlog.replayed_location);
            if let Some(at) = at {
                member.lag = Some(leader_at.saturating_sub(at));
            }
        }
    }

    /// Checks a failover without doing it.
    pub async fn plan_failover(&self, req: &SwitchoverRequest) -> Result<SwitchoverPlan> {
        let (_, view) = self.cluster_view().await?;
        plan_failover(&view, req)
    }

    /// A planned switchover: pre-flight checks, `POST /switchover`, then waits until the new
    /// leader accepts writes (unless scheduled). Progress is reported at each step.
    pub async fn switchover(&self, req: &SwitchoverRequest) -> Result<SwitchoverReport> {
        let plan = self.plan_switchover(req).await?;
        let mut body = json!({ "leader": plan.leader });
        if let Some(c) = &plan.candidate {
            body["candidate"] = json!(c);
        }
        if let Some(at) = &plan.scheduled_at {
            body["scheduled_at"] = json!(at);
        }
        self.execute(plan, "/switchover", body).await
    }

    /// A manual failover to `req.candidate`, which works without a leader. Check
    /// [`plan_failover`](Self::plan_failover)'s warnings first: a lagging candidate loses data.
    pub async fn failover(&self, req: &SwitchoverRequest) -> Result<SwitchoverReport> {
        let plan = self.plan_failover(req).await?;
        let body = json!({ "candidate": plan.candidate });
        self.execute(plan, "/failover", body).await
    }

    /// Cancels a scheduled switchover (`DELETE /switchover`).
    pub async fn cancel_switchover(&self) -> Result<String> {
        let reply = self.call_any(Method::DELETE, "/switchover", None).await?;
        if reply.status == 404 {
            return Err(Error::not_found("no switchover is scheduled"));
        }
        Ok(rest::expect_success("DELETE /switchover", reply)?.text())
    }

    async fn execute(&self, plan: SwitchoverPlan, path: &str, body: Value) -> Result<SwitchoverReport> {
        let kind = plan.kind;
        let started = Instant::now();
        let target = plan.candidate.clone().unwrap_or_else(|| "any eligible member".into());
        self.report(kind, format!("asking Patroni to promote {target}"), Some((1, 3)));
        let reply = self.call_any(Method::POST, path, Some(&body)).await?;
        let message = rest::expect_success(&format!("POST {path}"), reply)?.text();
        if plan.scheduled_at.is_some() {
            return Ok(SwitchoverReport {
                plan,
                new_leader: None,
                message,
                elapsed_s: started.elapsed().as_secs_f64(),
            });
        }
        self.report(kind, format!("Patroni: {message}"), Some((2, 3)));
        let old = plan.leader.clone();
        let new_leader = self
            .wait_for_writable_leader(kind, |leader| match &plan.candidate {
                Some(c) => leader == c,
                None => Some(leader) != old.as_deref(),
            })
            .await?;
        self.report(
            kind,
            format!("{new_leader} is the leader and accepts writes"),
            Some((3, 3)),
        );
        Ok(SwitchoverReport {
            plan,
            new_leader: Some(new_leader),
            message,
            elapsed_s: started.elapsed().as_secs_f64(),
        })
    }

    /// Waits until a leader satisfying `accept` is out of recovery (checked in its database).
    pub(crate) async fn wait_for_writable_leader(
        &self,
        operation: &'static str,
        accept: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + self.wait_limit();
        let mut last: String;
        loop {
            match self.cluster_view().await {
                Ok((_, view)) => match view.leader() {
                    Some(leader) if accept(&leader.name) => match self.is_writable(leader).await {
                        Ok(true) => return Ok(leader.name.clone()),
                        Ok(false) => last = format!("{} holds the lock but is still in recovery", leader.name),
                        Err(e) => last = e.to_string(),
                    },
                    Some(leader) => last = format!("the leader is still {}", leader.name),
                    None => last = "no leader".into(),
                },
                Err(e) if e.kind() == ErrorKind::Unreachable => last = e.to_string(),
                Err(e) => return Err(e),
            }
            if Instant::now() > deadline {
                return Err(Error::timeout(format!(
                    "{operation}: no writable new leader after {:?} ({last})",
                    self.wait_limit()
                )));
            }
            tracing::debug!(operation, "{last}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn is_writable(&self, member: &Member) -> Result<bool> {
        let db = self.sql(member, None).await?;
        let row = db
            .query_one("SELECT NOT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| Error::db(format!("checking {}", member.name), e))?;
        row.col(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(json: &str) -> ClusterView {
        ClusterView::from_json(json.as_bytes()).expect("fixture")
    }

    const HEALTHY: &str = r#"{"members": [
        {"name": "a", "role": "leader", "state": "running", "timeline": 2, "host": "h", "port": 1},
        {"name": "b", "role": "replica", "state": "streaming", "timeline": 2, "lag": 0, "host": "h", "port": 2},
        {"name": "c", "role": "replica", "state": "running", "timeline": 2, "lag": 5000000, "host": "h", "port": 3},
        {"name": "d", "role": "replica", "state": "stopped", "timeline": 2, "lag": "unknown"},
        {"name": "e", "role": "replica", "state": "streaming", "timeline": 2, "lag": 0, "tags": {"nofailover": true}}
    ]}"#;

    #[test]
    fn switchover_preflight_names_the_reason_a_candidate_is_refused() {
        let v = view(HEALTHY);
        let config = json!({});
        let refused = |c: &str| {
            let e = plan_switchover(&v, &config, &SwitchoverRequest::new(Some(c))).expect_err("must be refused");
            assert_eq!(e.kind(), ErrorKind::Precondition, "{e}");
            e.to_string()
        };
        assert!(refused("a").contains("is the leader"));
        assert!(refused("c").contains("lags 5000000 bytes"));
        assert!(refused("d").contains("stopped"));
        assert!(refused("e").contains("nofailover"));
        let e = plan_switchover(&v, &config, &SwitchoverRequest::new(Some("zz"))).expect_err("must be refused");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let plan = plan_switchover(&v, &config, &SwitchoverRequest::new(None)).expect("b qualifies");
        assert_eq!(plan.eligible, ["b"]);
        assert_eq!(plan.leader.as_deref(), Some("a"));
        // A larger maximum_lag_on_failover admits c.
        let plan = plan_switchover(
            &v,
            &json!({"maximum_lag_on_failover": 10_000_000}),
            &SwitchoverRequest::new(None),
        )
        .expect("b and c qualify");
        assert_eq!(plan.eligible, ["b", "c"]);
    }

    #[test]
    fn synchronous_mode_requires_a_sync_standby() {
        let v = view(
            r#"{"members": [
            {"name": "a", "role": "leader", "state": "running", "timeline": 1},
            {"name": "b", "role": "sync_standby", "state": "streaming", "timeline": 1, "lag": 0},
            {"name": "c", "role": "replica", "state": "streaming", "timeline": 1, "lag": 0}]}"#,
        );
        let config = json!({"synchronous_mode": true});
        let e = plan_switchover(&v, &config, &SwitchoverRequest::new(Some("c"))).expect_err("must be refused");
        assert!(e.to_string().contains("not a synchronous standby"), "{e}");
        assert!(plan_switchover(&v, &config, &SwitchoverRequest::new(Some("b"))).is_ok());
    }

    #[test]
    fn leaderless_or_paused_clusters_are_refused_as_patroni_would() {
        let v = view(r#"{"members": [{"name": "b", "role": "replica", "state": "streaming", "lag": 0}]}"#);
        let e = plan_switchover(&v, &json!({}), &SwitchoverRequest::new(None)).expect_err("must be refused");
        assert!(e.to_string().contains("no leader"), "{e}");
        let mut paused = view(HEALTHY);
        paused.pause = true;
        let e = plan_switchover(&paused, &json!({}), &SwitchoverRequest::new(None)).expect_err("must be refused");
        assert!(e.to_string().contains("explicit candidate"), "{e}");
    }

    #[test]
    fn failover_needs_a_running_candidate_and_warns_about_loss() {
        let v = view(HEALTHY);
        assert_eq!(
            plan_failover(&v, &SwitchoverRequest::new(None))
                .expect_err("must be refused")
                .kind(),
            ErrorKind::Usage
        );
        assert_eq!(
            plan_failover(&v, &SwitchoverRequest::new(Some("d")))
                .expect_err("must be refused")
                .kind(),
            ErrorKind::Precondition
        );
        let plan = plan_failover(&v, &SwitchoverRequest::new(Some("c"))).expect("c is running");
        assert!(
            plan.warnings.iter().any(|w| w.contains("will be lost")),
            "{:?}",
            plan.warnings
        );
        assert!(plan.warnings.iter().any(|w| w.contains("switchover would be safer")));
    }
}
