//! Waiting for the cluster: [`wait_for`] and the `LocalCluster::wait_*` methods built on it.

use std::future::Future;
use std::time::{Duration, Instant};

use super::LocalCluster;
use crate::error::{Error, Result};
use crate::rest::{self, PatroniMember};

/// Polls `probe` every 200 ms until it returns `Ok(Some(_))` or `timeout` passes.
///
/// Errors from the probe count as "not yet"; the last one is reported on timeout.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining.max(Duration::from_millis(1)), probe()).await {
            Ok(Ok(Some(v))) => return Ok(v),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => last_error = Some(e.to_string()),
            // The deadline cut the probe short: keep the last real error, if there was one.
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                timeout,
                last_error,
            });
        }
        tokio::time::sleep(Duration::from_millis(200).min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

impl LocalCluster {
    /// Waits until Patroni reports a leader, every member whose Patroni runs is known to it, the
    /// leader is a writable primary and every other running member streams (checked with SQL)
    /// on the leader's timeline; in synchronous mode, also until Patroni names a synchronous
    /// standby (when a standby runs at all), so that losing the leader next can fail over.
    /// Returns the leader's name.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<String> {
        wait_for("a leader and streaming replicas", timeout, || async {
            let status = self.cluster_status().await?;
            let Some(leader) = status.iter().find(|m| m.role == "leader" && m.state == "running") else {
                return Ok(None);
            };
            if !self.is_writable_primary(&leader.name).await? {
                return Ok(None);
            }
            let running: Vec<String> = {
                let state = self.lock_state();
                state
                    .members
                    .iter()
                    .filter(|m| m.patroni.is_some_and(|p| p.is_alive()))
                    .map(|m| m.name.clone())
                    .collect()
            };
            let followers: Vec<&String> = running.iter().filter(|n| **n != leader.name).collect();
            for name in &followers {
                if !self.follows_leader(&status, name).await? {
                    return Ok(None);
                }
            }
            // In synchronous mode only a member Patroni lists as synchronous may take over from
            // the leader: until it names one, a leader lost is a cluster without a leader.
            if self.is_synchronous() && !followers.is_empty() && !has_synchronous_standby(&status) {
                return Ok(None);
            }
            Ok(Some(leader.name.clone()))
        })
        .await
    }

    /// Waits until a member other than `old` is the Patroni leader and accepts writes; returns it.
    ///
    /// Every member's REST API is asked, not only the first that answers: a member cut off from
    /// the DCS may still show `old` as the leader.
    pub async fn wait_for_new_leader(&self, old: &str, timeout: Duration) -> Result<String> {
        wait_for("a new writable leader", timeout, || async {
            let mut last = Err(Error::NotRunning("a leader".into()));
            for url in self.patroni_urls() {
                let status = match rest::cluster(&self.http, &url).await {
                    Ok(status) => status,
                    Err(e) => {
                        last = Err(e);
                        continue;
                    }
                };
                if let Some(leader) = status.into_iter().find(|m| m.role == "leader" && m.name != old) {
                    if self.is_writable_primary(&leader.name).await.unwrap_or(false) {
                        return Ok(Some(leader.name));
                    }
                }
                last = Ok(None);
            }
            last
        })
        .await
    }

    /// Waits until `member` is a streaming replica by SQL (`pg_is_in_recovery()`, WAL receiver
    /// streaming) and Patroni agrees: `/cluster` lists it as running or streaming on the leader's
    /// timeline.
    pub async fn wait_streaming(&self, member: &str, timeout: Duration) -> Result<()> {
        wait_for(&format!("{member} to stream"), timeout, || async {
            let status = self.cluster_status().await?;
            Ok(self.follows_leader(&status, member).await?.then_some(()))
        })
        .await
    }

    /// Whether `member` streams (checked with SQL) and Patroni shows it running on the leader's
    /// timeline.
    async fn follows_leader(&self, status: &[PatroniMember], member: &str) -> Result<bool> {
        let leader_tl = status.iter().find(|m| m.role == "leader").and_then(|m| m.timeline);
        let known = status
            .iter()
            .find(|m| m.name == member)
            .is_some_and(|m| matches!(m.state.as_str(), "running" | "streaming") && m.timeline == leader_tl);
        Ok(known && self.is_streaming(member).await?)
    }
}

/// Whether Patroni names a running synchronous (or quorum) standby.
fn has_synchronous_standby(status: &[PatroniMember]) -> bool {
    status.iter().any(|m| {
        matches!(m.role.as_str(), "sync_standby" | "quorum_standby")
            && matches!(m.state.as_str(), "running" | "streaming")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, role: &str, state: &str) -> PatroniMember {
        PatroniMember {
            name: name.into(),
            role: role.into(),
            state: state.into(),
            timeline: Some(2),
            lag: None,
            port: None,
        }
    }

    #[test]
    fn a_synchronous_standby_counts_only_while_it_runs() {
        let leader = member("m1", "leader", "running");
        let sync = |state| {
            vec![
                leader.clone(),
                member("m2", "sync_standby", state),
                member("m3", "replica", "streaming"),
            ]
        };
        assert!(has_synchronous_standby(&sync("streaming")));
        assert!(has_synchronous_standby(&sync("running")));
        assert!(!has_synchronous_standby(&sync("stopped")));
        let none = vec![
            leader.clone(),
            member("m2", "replica", "streaming"),
            member("m3", "replica", "streaming"),
        ];
        assert!(!has_synchronous_standby(&none));
        assert!(has_synchronous_standby(&[
            leader,
            member("m2", "quorum_standby", "streaming")
        ]));
    }

    #[tokio::test]
    async fn wait_for_reports_the_last_error_on_timeout() {
        let mut calls = 0;
        let err = wait_for::<(), _, _>("nothing", Duration::from_millis(300), || {
            calls += 1;
            let n = calls;
            async move { Err(Error::NotRunning(format!("attempt {n}"))) }
        })
        .await
        .expect_err("must time out");
        let text = err.to_string();
        assert!(text.contains("nothing") && text.contains("attempt"), "{text}");
    }

    #[tokio::test]
    async fn wait_for_returns_the_first_value() {
        let mut calls = 0;
        let v = wait_for("third call", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move { Ok((n >= 3).then_some(n)) }
        })
        .await
        .expect("value");
        assert_eq!(v, 3);
    }
}
