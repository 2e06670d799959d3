//! The client process's resident memory and open file descriptors over a run, sampled while the
//! workload runs, and the leak check over them.
//!
//! The history is kept in memory until the run ends, so resident memory grows with it by design:
//! the check allows [`OP_BYTES`] per operation recorded between the samples it compares.

use serde::Serialize;

/// Memory one recorded operation may take, generously (the `Op` itself, its member name and the
/// history vector's spare capacity).
pub(super) const OP_BYTES: u64 = 1024;

/// Growth of resident memory beyond the history's that a run may show without being a leak.
const RSS_SLACK_KIB: u64 = 32 * 1024;

/// Growth in open file descriptors that a run may show without being a leak (a pool refilled to
/// its size on another member after a failover).
const FD_SLACK: u64 = 32;

/// Samples taken before this many seconds are warm-up (pools filling, TLS contexts loaded).
const WARM_UP_S: f64 = 60.0;

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ResourceSample {
    /// Seconds since the run started.
    pub at_s: f64,
    /// Resident memory of the process (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Open file descriptors of the process.
    pub fds: u64,
    /// Operations in the history so far.
    pub ops: u64,
}

/// Reads this process's resident memory and open descriptors; `None` off Linux.
pub(super) fn sample(at_s: f64, ops: u64) -> Option<ResourceSample> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    let fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(ResourceSample {
        at_s,
        rss_kib,
        fds,
        ops,
    })
}

/// Whether the samples show a leak: the last quarter of the run (after warm-up) stays above the
/// first quarter's peak by more than the slack — in descriptors, or in memory beyond what the
/// history recorded in between. `None` when there are too few samples to tell (fewer than 8
/// after warm-up) or no leak.
pub(super) fn leak(samples: &[ResourceSample]) -> Option<String> {
    let warm: Vec<&ResourceSample> = samples.iter().filter(|s| s.at_s >= WARM_UP_S).collect();
    if warm.len() < 8 {
        return None;
    }
    let quarter = warm.len() / 4;
    let (first, last) = (&warm[..quarter], &warm[warm.len() - quarter..]);
    let fd_peak = first.iter().map(|s| s.fds).max()?;
    let fd_floor = last.iter().map(|s| s.fds).min()?;
    let mut found = Vec::new();
    if fd_floor > fd_peak + FD_SLACK {
        found.push(format!(
            "open descriptors grew from at most {fd_peak} early in the run to at least {fd_floor} at its end"
        ));
    }
    let early = first.iter().max_by_key(|s| s.rss_kib)?;
    let late = last.iter().min_by_key(|s| s.rss_kib)?;
    let history_kib = late.ops.saturating_sub(early.ops) * OP_BYTES / 1024;
    if late.rss_kib > early.rss_kib + history_kib + RSS_SLACK_KIB {
        found.push(format!(
            "resident memory grew from at most {} KiB early in the run to at least {} KiB at its end, \
             more than the {history_kib} KiB the history took in between",
            early.rss_kib, late.rss_kib
        ));
    }
    (!found.is_empty()).then(|| found.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: impl Fn(u64) -> (u64, u64)) -> Vec<ResourceSample> {
        (0..40)
            .map(|i| {
                let (rss_kib, fds) = f(i);
                ResourceSample {
                    at_s: i as f64 * 10.0,
                    rss_kib,
                    fds,
                    ops: i * 1_000,
                }
            })
            .collect()
    }

    #[test]
    fn a_flat_run_is_no_leak() {
        assert_eq!(leak(&run(|i| (50_000 + (i % 3) * 1_000, 40 + i % 5))), None);
    }

    #[test]
    fn growth_the_history_explains_is_no_leak() {
        // 1,000 operations per sample at 512 bytes each.
        assert_eq!(leak(&run(|i| (50_000 + i * 500, 40))), None);
    }

    #[test]
    fn descriptors_that_keep_growing_are_a_leak() {
        let found = leak(&run(|i| (50_000, 40 + i * 3))).expect("a leak");
        assert!(found.contains("open descriptors"), "{found}");
    }

    #[test]
    fn memory_beyond_the_history_is_a_leak() {
        let found = leak(&run(|i| (50_000 + i * 4_000, 40))).expect("a leak");
        assert!(found.contains("resident memory"), "{found}");
    }

    #[test]
    fn a_spike_in_the_middle_or_a_short_run_is_no_leak() {
        assert_eq!(leak(&run(|i| (if i == 20 { 900_000 } else { 50_000 }, 40))), None);
        assert_eq!(leak(&run(|i| (50_000 + i * 100_000, 40 + i * 10))[..12]), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let s = sample(1.0, 7).expect("Linux /proc");
        assert!(s.rss_kib > 0 && s.fds >= 3, "{s:?}");
    }
}
