//! Saturating time arithmetic: every `Instant + Duration` in pgha goes through here, so no
//! configured or per-call duration (up to `Duration::MAX`) can panic with an overflow.

use std::time::{Duration, Instant};

/// Far enough to mean "never" for a client, near enough never to overflow an `Instant`
/// (tokio uses the same horizon for its timers).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `t + d`, or a moment about 30 years after `t` when that would overflow.
pub(crate) fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d.min(FAR_FUTURE)).unwrap_or(t)
}

/// [`after`] for tokio's clock.
pub(crate) fn tokio_after(t: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    t.checked_add(d.min(FAR_FUTURE)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_any_duration_never_panics_and_keeps_order() {
        let now = Instant::now();
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ] {
            assert!(after(now, d) >= now);
            assert!(
                tokio_after(tokio::time::Instant::now(), d) >= tokio::time::Instant::now() - Duration::from_secs(1)
            );
        }
        assert_eq!(after(now, Duration::from_secs(1)), now + Duration::from_secs(1));
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(86_400 * 365));
    }
}
