//! The [`RetryPolicy`], backoff with jitter and the client-wide retry budget.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::duration::duration;

/// Retry behaviour across failovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Total time an operation may take, retries and waiting for a new primary included
    /// (default 30 s). An attempt still running at the deadline is abandoned.
    #[serde(with = "duration")]
    pub deadline: Duration,
    /// First backoff after a failed attempt (default 10 ms); doubles each time, with jitter.
    #[serde(with = "duration")]
    pub initial_backoff: Duration,
    /// Longest backoff (default 250 ms). A new topology snapshot ends a backoff early.
    #[serde(with = "duration")]
    pub max_backoff: Duration,
    /// Retry budget for immediate retries (serialization failures, deadlocks, recovery
    /// conflicts; retries that wait for a new topology are paced by the refresh rate instead):
    /// at most this many in a burst across the whole client (default 100)…
    pub budget_burst: u32,
    /// …refilled at this many per second (default 20), so a dead cluster cannot cause a storm.
    pub budget_per_second: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(250),
            budget_burst: 100,
            budget_per_second: 20,
        }
    }
}

/// Exponential backoff with full jitter: a random duration in `[base/2, base]` where `base`
/// doubles from `initial` up to `max`.
pub(crate) fn backoff<R: Rng + ?Sized>(policy: &RetryPolicy, attempt: u32, rng: &mut R) -> Duration {
    let base = policy
        .initial_backoff
        .saturating_mul(1u32 << attempt.min(16))
        .min(policy.max_backoff);
    let half = base / 2;
    let jitter = Duration::try_from_secs_f64(rng.random::<f64>() * half.as_secs_f64()).unwrap_or(half);
    half.saturating_add(jitter.min(half))
}

/// A token bucket shared by every operation of a client: a retry takes a token; tokens refill
/// at a fixed rate up to the burst size.
#[derive(Debug)]
pub(crate) struct Budget {
    state: Mutex<(f64, Instant)>,
    burst: f64,
    per_second: f64,
}

impl Budget {
    pub(crate) fn new(policy: &RetryPolicy, now: Instant) -> Self {
        Self {
            state: Mutex::new((f64::from(policy.budget_burst), now)),
            burst: f64::from(policy.budget_burst),
            per_second: f64::from(policy.budget_per_second),
        }
    }

    /// Takes a token if one is left.
    pub(crate) fn try_take(&self, now: Instant) -> bool {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, at) = &mut *guard;
        let elapsed = now.saturating_duration_since(*at).as_secs_f64();
        *tokens = (*tokens + elapsed * self.per_second).min(self.burst);
        *at = now.max(*at);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Lets something happen at most once per period (for rate-limited log lines).
#[derive(Debug)]
pub(crate) struct Every {
    period: Duration,
    next: Mutex<Instant>,
}

impl Every {
    pub(crate) fn new(period: Duration, now: Instant) -> Self {
        Self {
            period,
            next: Mutex::new(now),
        }
    }

    /// True at most once per period.
    pub(crate) fn allow(&self, now: Instant) -> bool {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        if now >= *next {
            *next = crate::time::after(now, self.period);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 0..40 {
            let b = backoff(&policy, attempt, &mut rng);
            let base = policy
                .initial_backoff
                .saturating_mul(1 << attempt.min(16))
                .min(policy.max_backoff);
            assert!(b >= base / 2 && b <= base, "attempt {attempt}: {b:?} vs {base:?}");
        }
    }

    #[test]
    fn every_allows_once_per_period() {
        let t0 = Instant::now();
        let every = Every::new(Duration::from_secs(1), t0);
        assert!(every.allow(t0));
        assert!(!every.allow(t0 + Duration::from_millis(999)));
        assert!(every.allow(t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn budget_runs_out_and_refills() {
        let policy = RetryPolicy {
            budget_burst: 3,
            budget_per_second: 2,
            ..RetryPolicy::default()
        };
        let t0 = Instant::now();
        let budget = Budget::new(&policy, t0);
        assert!((0..3).all(|_| budget.try_take(t0)));
        assert!(!budget.try_take(t0));
        assert!(budget.try_take(t0 + Duration::from_millis(500)));
        assert!(!budget.try_take(t0 + Duration::from_millis(500)));
        let later = t0 + Duration::from_secs(100);
        assert_eq!(
            (0..10).filter(|_| budget.try_take(later)).count(),
            3,
            "capped at the burst"
        );
    }
}
