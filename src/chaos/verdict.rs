//! The invariants, judged from what the workload recorded and what survived on the final
//! leader. Pure: unit-tested below with hand-made histories.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use pgha_client::patroni::Lsn;

use super::workload::{Ack, Log};
use super::FaultKind;

/// What survived, read from the final leader.
#[derive(Debug, Default)]
pub(super) struct FinalState {
    /// `chaos_writes`: id → number of rows.
    pub(super) write_counts: HashMap<i64, i64>,
    /// `chaos_heartbeat_log`: every heartbeat sequence number present.
    pub(super) heartbeats: HashSet<i64>,
    /// `chaos_ryw`: every read-your-writes key present.
    pub(super) ryw: HashSet<i64>,
    /// The final leader's timeline.
    pub(super) timeline: u64,
    /// The switch point of every earlier timeline in its history.
    pub(super) ends: HashMap<u64, Lsn>,
}

impl FinalState {
    /// Whether a position lies on the surviving history.
    fn on_history(&self, timeline: u64, lsn: Lsn) -> bool {
        timeline == self.timeline
            || (timeline < self.timeline && self.ends.get(&timeline).is_none_or(|end| lsn <= *end))
    }
}

/// One fault: its kind and when it began and ended (cluster healed).
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) kind: FaultKind,
    pub(super) began: Instant,
    pub(super) healed: Instant,
}

/// The judgement.
#[derive(Debug, Default)]
pub(super) struct Verdict {
    pub(super) acked_writes_lost: Vec<i64>,
    pub(super) acked_off_history: Vec<i64>,
    pub(super) lost_unplaced: Vec<i64>,
    pub(super) heartbeats_lost: u64,
    pub(super) ryw_writes_lost: u64,
    pub(super) unexplained_losses: Vec<String>,
    pub(super) duplicates: Vec<i64>,
    pub(super) failed_but_committed: Vec<i64>,
    /// Start of every stale read.
    pub(super) stale_at: Vec<Instant>,
    /// Where the first stale reads ran, and what they missed.
    pub(super) stale_samples: Vec<String>,
    /// Start of every read-your-writes read that missed a write that survived.
    pub(super) ryw_at: Vec<Instant>,
    /// Where the first of those reads ran, and with which token.
    pub(super) ryw_samples: Vec<String>,
    pub(super) violations: Vec<String>,
}

/// How many stale reads and read-your-writes misses the report describes.
const SAMPLES: usize = 5;

/// Applies the invariants of RELIABILITY.md.
pub(super) fn judge(
    log: &Log,
    last: &FinalState,
    windows: &[Window],
    synchronous: bool,
    bound: Duration,
    start: Instant,
) -> Verdict {
    let mut v = Verdict::default();
    let in_loss_window = |at: Instant| {
        windows
            .iter()
            .any(|w| w.kind.may_lose_writes() && at + Duration::from_secs(1) >= w.began && at <= w.healed)
    };
    let since = |at: Instant| at.saturating_duration_since(start).as_secs_f64();

    // Inserts.
    v.duplicates = sorted(last.write_counts.iter().filter(|(_, n)| **n > 1).map(|(id, _)| *id));
    v.failed_but_committed = sorted(
        log.failed
            .iter()
            .copied()
            .filter(|id| last.write_counts.contains_key(id)),
    );
    let mut lost_on_history = Vec::new();
    for ack in &log.acked {
        let lost = !last.write_counts.contains_key(&ack.id);
        let placement = place(ack, last);
        if placement == Placement::Off {
            v.acked_off_history.push(ack.id);
        }
        if !lost {
            continue;
        }
        v.acked_writes_lost.push(ack.id);
        match placement {
            Placement::On => lost_on_history.push(format!(
                "{} (token {}, before COMMIT on timeline {} at {}, acknowledged at {:.1} s)",
                ack.id,
                ack.token,
                ack.before_commit.0,
                ack.before_commit.1,
                since(ack.at)
            )),
            Placement::Unknown => v.lost_unplaced.push(ack.id),
            Placement::Off => {}
        }
        if !in_loss_window(ack.at) {
            v.unexplained_losses.push(format!("write {}", ack.id));
        }
    }
    v.acked_writes_lost.sort_unstable();

    // Heartbeats: lost ones, and reads that missed a surviving one older than the bound.
    for (seq, at) in &log.heartbeat {
        if !last.heartbeats.contains(seq) {
            v.heartbeats_lost += 1;
            if !in_loss_window(*at) {
                v.unexplained_losses.push(format!("heartbeat {seq}"));
            }
        }
    }
    for (seen, started, ran) in &log.stale_candidates {
        let missed = crate::harness::missed_surviving_heartbeat(&log.heartbeat, *seen, *started, bound, |s| {
            last.heartbeats.contains(&s)
        });
        if let Some(missed) = missed {
            v.stale_at.push(*started);
            if v.stale_samples.len() < SAMPLES {
                v.stale_samples.push(format!(
                    "at {:.1} s saw heartbeat {seen}, missed {} (acknowledged at {:.1} s), on {ran}",
                    since(*started),
                    missed.0,
                    since(missed.1)
                ));
            }
        }
    }

    // Read-your-writes: a miss counts unless the write itself was lost.
    for (n, at) in &log.ryw_acked {
        if !last.ryw.contains(n) {
            v.ryw_writes_lost += 1;
            if !in_loss_window(*at) {
                v.unexplained_losses.push(format!("read-your-writes insert {n}"));
            }
        }
    }
    for (n, started, ran) in log.ryw_misses.iter().filter(|(n, ..)| last.ryw.contains(n)) {
        v.ryw_at.push(*started);
        if v.ryw_samples.len() < SAMPLES {
            v.ryw_samples
                .push(format!("at {:.1} s missed insert {n} on {ran}", since(*started)));
        }
    }

    let lost_total = v.acked_writes_lost.len() as u64 + v.heartbeats_lost + v.ryw_writes_lost;
    if synchronous && lost_total > 0 {
        v.violations.push(format!(
            "synchronous mode lost {} acknowledged writes ({} inserts {:?}, {} heartbeats, {} read-your-writes inserts)",
            lost_total,
            v.acked_writes_lost.len(),
            &v.acked_writes_lost[..v.acked_writes_lost.len().min(10)],
            v.heartbeats_lost,
            v.ryw_writes_lost
        ));
    }
    if !v.unexplained_losses.is_empty() {
        v.violations.push(format!(
            "{} acknowledged writes lost outside any leader-loss fault: {:?}",
            v.unexplained_losses.len(),
            &v.unexplained_losses[..v.unexplained_losses.len().min(10)]
        ));
    }
    if !v.duplicates.is_empty() {
        v.violations.push(format!("writes applied twice: {:?}", v.duplicates));
    }
    if !v.failed_but_committed.is_empty() {
        v.violations.push(format!(
            "writes reported as failed that committed: {:?}",
            v.failed_but_committed
        ));
    }
    // A write lost although its acknowledgement lies on the surviving history was not lost to
    // a failover: it was acknowledged without being committed there.
    if !lost_on_history.is_empty() {
        v.violations.push(format!(
            "writes lost although acknowledged on the surviving timeline history: {:?}",
            &lost_on_history[..lost_on_history.len().min(10)]
        ));
    }
    if !v.stale_at.is_empty() {
        v.violations
            .push(format!("{} reads beyond their bound", v.stale_at.len()));
    }
    if !v.ryw_at.is_empty() {
        v.violations.push(format!(
            "{} read-your-writes reads missed a write that survived",
            v.ryw_at.len()
        ));
    }
    v
}

/// Where an acknowledged insert lies relative to the surviving history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// On it: if it is missing, it was never committed there.
    On,
    /// Past the end of its timeline: acknowledged by a node whose history did not survive.
    Off,
    /// The token was read from a new primary (the connection broke right after COMMIT) and the
    /// position before COMMIT is on the history: the commit record may lie either side of the
    /// switch point.
    Unknown,
}

fn place(ack: &Ack, last: &FinalState) -> Placement {
    if ack.token_is_exact() {
        if last.on_history(ack.token.timeline, ack.token.lsn) {
            Placement::On
        } else {
            Placement::Off
        }
    } else if last.on_history(ack.before_commit.0, ack.before_commit.1) {
        Placement::Unknown
    } else {
        Placement::Off
    }
}

fn sorted(ids: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut ids: Vec<i64> = ids.collect();
    ids.sort_unstable();
    ids
}

#[cfg(test)]
mod tests {
    use pgha_client::WalToken;

    use super::*;

    fn lsn(s: &str) -> Lsn {
        s.parse().expect("lsn")
    }

    fn ack(id: i64, at: Instant, token: (u64, &str), before: (u64, &str)) -> Ack {
        Ack {
            id,
            at,
            token: WalToken {
                timeline: token.0,
                lsn: lsn(token.1),
            },
            before_commit: (before.0, lsn(before.1)),
        }
    }

    /// Timeline 2 is current; timeline 1 ended at 0/3000.
    fn after_failover(writes: &[i64]) -> FinalState {
        FinalState {
            write_counts: writes.iter().map(|id| (*id, 1)).collect(),
            timeline: 2,
            ends: HashMap::from([(1, lsn("0/3000"))]),
            ..FinalState::default()
        }
    }

    fn window(kind: FaultKind, t0: Instant, from: u64, to: u64) -> Window {
        Window {
            kind,
            began: t0 + Duration::from_secs(from),
            healed: t0 + Duration::from_secs(to),
        }
    }

    const BOUND: Duration = Duration::from_secs(2);

    #[test]
    fn a_write_lost_past_the_switch_point_in_a_leader_loss_window_is_allowed_asynchronously() {
        let t0 = Instant::now();
        let log = Log {
            acked: vec![
                ack(1, t0 + Duration::from_secs(11), (1, "0/2000"), (1, "0/1F00")),
                ack(2, t0 + Duration::from_secs(12), (1, "0/4000"), (1, "0/3F00")),
            ],
            ..Log::default()
        };
        let windows = [window(FaultKind::KillLeader, t0, 10, 30)];
        let v = judge(&log, &after_failover(&[1]), &windows, false, BOUND, t0);
        assert_eq!(v.acked_writes_lost, vec![2]);
        assert_eq!(v.acked_off_history, vec![2]);
        assert!(v.violations.is_empty(), "{:?}", v.violations);

        let v = judge(&log, &after_failover(&[1]), &windows, true, BOUND, t0);
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(v.violations[0].contains("synchronous mode lost 1"));
    }

    #[test]
    fn a_loss_outside_any_leader_loss_window_is_a_violation() {
        let t0 = Instant::now();
        let log = Log {
            acked: vec![ack(2, t0 + Duration::from_secs(50), (1, "0/4000"), (1, "0/3F00"))],
            ..Log::default()
        };
        let windows = [
            window(FaultKind::KillLeader, t0, 10, 30),
            window(FaultKind::Switchover, t0, 45, 55),
        ];
        let v = judge(&log, &after_failover(&[]), &windows, false, BOUND, t0);
        assert_eq!(v.unexplained_losses, vec!["write 2".to_owned()]);
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
    }

    #[test]
    fn a_write_lost_below_the_switch_point_is_a_violation_even_in_a_loss_window() {
        let t0 = Instant::now();
        let log = Log {
            acked: vec![ack(1, t0 + Duration::from_secs(11), (1, "0/2000"), (1, "0/1F00"))],
            ..Log::default()
        };
        let windows = [window(FaultKind::KillLeader, t0, 10, 30)];
        let v = judge(&log, &after_failover(&[]), &windows, false, BOUND, t0);
        assert!(v.acked_off_history.is_empty());
        assert!(
            v.violations
                .iter()
                .any(|m| m.contains("on the surviving timeline history")),
            "{:?}",
            v.violations
        );
    }

    #[test]
    fn a_token_read_from_the_new_primary_does_not_place_a_lost_write_on_the_history() {
        let t0 = Instant::now();
        // Committed on timeline 1 just before the switch point; the token came from timeline 2.
        let log = Log {
            acked: vec![
                ack(1, t0 + Duration::from_secs(11), (2, "0/5000"), (1, "0/2F00")),
                ack(2, t0 + Duration::from_secs(11), (2, "0/5000"), (1, "0/3F00")),
            ],
            ..Log::default()
        };
        let windows = [window(FaultKind::PartitionLeader, t0, 10, 30)];
        let v = judge(&log, &after_failover(&[]), &windows, false, BOUND, t0);
        assert_eq!(v.lost_unplaced, vec![1]);
        assert_eq!(v.acked_off_history, vec![2]);
        assert!(v.violations.is_empty(), "{:?}", v.violations);
    }

    #[test]
    fn a_read_that_misses_only_lost_heartbeats_is_not_stale() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let log = Log {
            heartbeat: vec![(1, at(1)), (2, at(2)), (3, at(3)), (4, at(20))],
            // Saw 2 at 10 s: heartbeat 3 (acknowledged at 3 s) is missing.
            stale_candidates: vec![(2, at(10), "node1".into())],
            ..Log::default()
        };
        let windows = [window(FaultKind::PartitionLeader, t0, 2, 15)];
        let mut survived = after_failover(&[]);
        survived.heartbeats = HashSet::from([1, 2, 4]);
        let v = judge(&log, &survived, &windows, false, BOUND, t0);
        assert!(v.stale_at.is_empty());
        assert_eq!(v.heartbeats_lost, 1);
        assert!(v.violations.is_empty(), "{:?}", v.violations);

        survived.heartbeats.insert(3);
        let v = judge(&log, &survived, &windows, false, BOUND, t0);
        assert_eq!(v.stale_at, vec![at(10)]);
        assert_eq!(v.stale_samples.len(), 1);
        assert!(
            v.stale_samples[0].contains("missed 3") && v.stale_samples[0].contains("node1"),
            "{:?}",
            v.stale_samples
        );
        assert!(v.violations.iter().any(|m| m.contains("1 reads beyond their bound")));
    }

    #[test]
    fn a_read_your_writes_miss_counts_only_when_the_write_survived() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let log = Log {
            ryw_acked: vec![(1, at(11)), (2, at(40))],
            ryw_misses: vec![(1, at(12), "node1".into()), (2, at(41), "node2".into())],
            ..Log::default()
        };
        let windows = [window(FaultKind::FreezeLeader, t0, 10, 30)];
        let mut survived = after_failover(&[]);
        survived.ryw = HashSet::from([2]);
        let v = judge(&log, &survived, &windows, false, BOUND, t0);
        assert_eq!(v.ryw_writes_lost, 1);
        assert_eq!(v.ryw_at, vec![at(41)]);
        assert!(
            v.ryw_samples.len() == 1 && v.ryw_samples[0].contains("node2"),
            "{:?}",
            v.ryw_samples
        );
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(v.violations[0].contains("missed a write that survived"));
    }

    #[test]
    fn duplicates_and_failures_that_committed_are_violations() {
        let t0 = Instant::now();
        let log = Log {
            acked: vec![ack(1, t0, (2, "0/4000"), (2, "0/3F00"))],
            failed: vec![2],
            ..Log::default()
        };
        let mut last = after_failover(&[2]);
        last.write_counts.insert(1, 2);
        let v = judge(&log, &last, &[], false, BOUND, t0);
        assert_eq!(v.duplicates, vec![1]);
        assert_eq!(v.failed_but_committed, vec![2]);
        assert_eq!(v.violations.len(), 2, "{:?}", v.violations);
    }
}
