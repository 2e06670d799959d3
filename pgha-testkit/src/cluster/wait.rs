//! Waiting for the cluster: [`wait_for`] and the `LocalCluster::wait_*` methods built on it.

use std::future::Future;
use std::time::{Duration, Instant};

use super::LocalCluster;
use crate::error::{Error, Result};
use crate::rest::PatroniMember;

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
    /// on the leader's timeline.
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
            for name in running.iter().filter(|n| **n != leader.name) {
                if !self.follows_leader(&status, name).await? {
                    return Ok(None);
                }
            }
            Ok(Some(leader.name.clone()))
        })
        .await
    }

    /// Waits until a member other than `old` is the Patroni leader and accepts writes; returns it.
    pub async fn wait_for_new_leader(&self, old: &str, timeout: Duration) -> Result<String> {
        wait_for("a new writable leader", timeout, || async {
            let leader = self.leader().await?;
            if leader != old && self.is_writable_primary(&leader).await? {
                Ok(Some(leader))
            } else {
                Ok(None)
            }
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

#[cfg(test)]
mod tests {
    use super::*;

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
