//! The checkers: pure functions of the operation history, the fault windows and what survived
//! on the final leader, each unit-tested below with hand-made histories.
//!
//! - **sets**: for each kind of write, the acknowledged values missing at the end (lost),
//!   values present that no operation wrote (unexpected), values of outcome-unknown operations
//!   present (recovered) and of failed ones present (a violation);
//! - **placement**: where each lost write lies against the timeline switch points — past the
//!   end of its timeline (lost to a failover), on the surviving history (acknowledged without
//!   being committed: a violation), or, when its token came from a new primary, bounded by the
//!   next write the same node ran after it was acknowledged;
//! - **fencing**: no write acknowledged on timeline *t* that was invoked after a write on a
//!   later timeline had been acknowledged (a deposed primary taking writes);
//! - **staleness**: every lag-bounded read saw every surviving heartbeat acknowledged more
//!   than the bound before it started; **session reads** never went back; **read-your-writes**
//!   reads saw their write when it survived;
//! - **loss budget**: asynchronous replication loses at most `maximum_lag_on_failover` bytes
//!   of WAL per failover; synchronous replication loses nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use pgha_client::patroni::Lsn;

use super::history::{Op, OpKind, Outcome};
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

    /// Whether the value a write of `kind` wrote is present.
    fn has(&self, kind: OpKind, value: i64) -> bool {
        match kind {
            OpKind::Insert => self.write_counts.contains_key(&value),
            OpKind::Heartbeat => self.heartbeats.contains(&value),
            OpKind::RywWrite => self.ryw.contains(&value),
            _ => false,
        }
    }

    fn present(&self, kind: OpKind) -> Vec<i64> {
        match kind {
            OpKind::Insert => self.write_counts.keys().copied().collect(),
            OpKind::Heartbeat => self.heartbeats.iter().copied().collect(),
            OpKind::RywWrite => self.ryw.iter().copied().collect(),
            _ => Vec::new(),
        }
    }
}

/// One fault: its kind and when it began and ended (cluster healed), in microseconds since the
/// run started.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) kind: FaultKind,
    pub(super) began_us: u64,
    pub(super) healed_us: u64,
}

/// The outcome of the set checker for one kind of write.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct SetCheck {
    /// Acknowledged values.
    pub(super) acked: usize,
    /// Acknowledged values missing at the end.
    pub(super) lost: Vec<i64>,
    /// Values present that no operation wrote.
    pub(super) unexpected: Vec<i64>,
    /// Values of outcome-unknown operations that are present (committed after all).
    pub(super) recovered: Vec<i64>,
    /// Values of failed operations that are present (a definite error that committed).
    pub(super) failed_but_present: Vec<i64>,
}

/// The set checker: every value a `kind` operation attempted, against what is present.
pub(super) fn check_set(ops: &[Op], kind: OpKind, last: &FinalState) -> SetCheck {
    let mut check = SetCheck::default();
    let mut attempted = HashSet::new();
    for op in ops.iter().filter(|op| op.kind == kind) {
        attempted.insert(op.value);
        let present = last.has(kind, op.value);
        match op.outcome {
            Outcome::Ok => {
                check.acked += 1;
                if !present {
                    check.lost.push(op.value);
                }
            }
            Outcome::Unknown if present => check.recovered.push(op.value),
            Outcome::Fail if present => check.failed_but_present.push(op.value),
            Outcome::Unknown | Outcome::Fail => {}
        }
    }
    check.unexpected = last
        .present(kind)
        .into_iter()
        .filter(|v| !attempted.contains(v))
        .collect();
    for ids in [
        &mut check.lost,
        &mut check.unexpected,
        &mut check.recovered,
        &mut check.failed_but_present,
    ] {
        ids.sort_unstable();
        ids.dedup();
    }
    check
}

/// Where an acknowledged write lies relative to the surviving history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placement {
    /// On it: if it is missing, it was never committed there.
    On,
    /// Past the end of its timeline: acknowledged by a node whose history did not survive.
    Off,
    /// Its token came from a new primary (the connection broke right after COMMIT), its
    /// position before COMMIT is on the history and no later write of the same node bounds its
    /// commit: the commit record may lie either side of the switch point.
    Unplaced,
}

/// Places an acknowledged write. A write whose token was read on the node that committed it
/// is placed by the token. Otherwise its commit record lies after its position before COMMIT
/// and before the position of any write the same node (the same timeline: one node writes a
/// timeline) ran after it was acknowledged.
pub(super) fn place(op: &Op, ops: &[Op], last: &FinalState) -> Placement {
    let (Some(timeline), Some(before)) = (op.timeline, op.lsn) else {
        return Placement::Unplaced;
    };
    if op.token_is_exact() {
        let token = op.token.map_or(before, |t| t.lsn);
        return if last.on_history(timeline, token) {
            Placement::On
        } else {
            Placement::Off
        };
    }
    if !last.on_history(timeline, before) {
        return Placement::Off;
    }
    let next = ops
        .iter()
        .filter(|w| w.kind.writes() && w.timeline == Some(timeline) && w.invoke_us > op.complete_us)
        .filter_map(|w| w.lsn)
        .min();
    match next {
        Some(bound) if last.on_history(timeline, bound) => Placement::On,
        _ => Placement::Unplaced,
    }
}

/// The fencing check: writes acknowledged on a timeline although they were invoked after a
/// write on a later timeline had been acknowledged.
pub(super) fn deposed_acks(ops: &[Op]) -> Vec<&Op> {
    let mut first_ack: BTreeMap<u64, u64> = BTreeMap::new();
    for op in ops.iter().filter(|op| op.kind.writes() && op.outcome == Outcome::Ok) {
        if let Some(tl) = op.timeline {
            let at = first_ack.entry(tl).or_insert(op.complete_us);
            *at = (*at).min(op.complete_us);
        }
    }
    ops.iter()
        .filter(|op| op.kind.writes() && op.outcome == Outcome::Ok)
        .filter(|op| {
            op.timeline
                .is_some_and(|tl| first_ack.range(tl + 1..).any(|(_, later)| *later < op.invoke_us))
        })
        .collect()
}

/// The staleness checker: every lag-bounded read that missed a surviving heartbeat
/// acknowledged more than `bound_us` before it started, with the first heartbeat it missed.
pub(super) fn stale_reads<'a>(ops: &'a [Op], last: &FinalState, bound_us: u64) -> Vec<(&'a Op, (i64, u64))> {
    let heartbeats = acked_heartbeats(ops);
    ops.iter()
        .filter(|op| op.kind == OpKind::BoundedRead && op.outcome == Outcome::Ok)
        .filter_map(|op| {
            let seen = op.read?;
            crate::harness::missed_surviving_heartbeat(&heartbeats, seen, op.invoke_us, bound_us, |s| {
                last.heartbeats.contains(&s)
            })
            .map(|missed| (op, missed))
        })
        .collect()
}

/// The session checker: a session read that ran after the position of the same process's
/// previous read (it carries a token) and saw an older heartbeat than that read, when that one
/// survived.
pub(super) fn session_reads_back<'a>(ops: &'a [Op], last: &FinalState) -> Vec<(&'a Op, i64)> {
    let mut previous: HashMap<u32, i64> = HashMap::new();
    let mut back = Vec::new();
    let mut reads: Vec<&Op> = ops
        .iter()
        .filter(|op| op.kind == OpKind::SessionRead && op.outcome == Outcome::Ok)
        .collect();
    reads.sort_by_key(|op| op.invoke_us);
    for op in reads {
        let Some(seen) = op.read else { continue };
        if let (Some(before), Some(_)) = (previous.get(&op.process).copied(), op.token) {
            if seen < before && last.heartbeats.contains(&before) {
                back.push((op, before));
            }
        }
        previous.insert(op.process, seen);
    }
    back
}

/// Read-your-writes reads that did not see their write although it survived.
pub(super) fn ryw_misses<'a>(ops: &'a [Op], last: &FinalState) -> Vec<&'a Op> {
    ops.iter()
        .filter(|op| op.kind == OpKind::RywRead && op.outcome == Outcome::Ok && op.read == Some(0))
        .filter(|op| last.ryw.contains(&op.value))
        .collect()
}

/// The asynchronous loss budget: per timeline that ended, how far past its switch point the
/// lost acknowledged writes reached, in bytes of WAL.
pub(super) fn loss_bytes(lost: &[&Op], last: &FinalState) -> BTreeMap<u64, u64> {
    let mut bytes = BTreeMap::new();
    for op in lost {
        let (Some(tl), Some(lsn)) = (op.timeline, op.lsn) else {
            continue;
        };
        if let Some(end) = last.ends.get(&tl) {
            let past = lsn.0.saturating_sub(end.0);
            let entry = bytes.entry(tl).or_insert(0);
            *entry = (*entry).max(past);
        }
    }
    bytes
}

/// `(seq, acknowledged at)` of every acknowledged heartbeat, in sequence order.
fn acked_heartbeats(ops: &[Op]) -> Vec<(i64, u64)> {
    let mut beats: Vec<(i64, u64)> = ops
        .iter()
        .filter(|op| op.kind == OpKind::Heartbeat && op.outcome == Outcome::Ok)
        .map(|op| (op.value, op.complete_us))
        .collect();
    beats.sort_unstable();
    beats
}

/// The judgement.
#[derive(Debug, Default)]
pub(super) struct Verdict {
    pub(super) inserts: SetCheck,
    pub(super) heartbeats: SetCheck,
    pub(super) ryw_writes: SetCheck,
    pub(super) acked_off_history: Vec<i64>,
    pub(super) lost_unplaced: Vec<i64>,
    pub(super) unexplained_losses: Vec<String>,
    pub(super) duplicates: Vec<i64>,
    /// Acknowledgements from a deposed primary, described.
    pub(super) deposed_acks: Vec<String>,
    /// Per ended timeline, bytes of WAL past its switch point that lost writes reached.
    pub(super) loss_bytes: BTreeMap<u64, u64>,
    /// When every lost acknowledged write (of any kind) was acknowledged.
    pub(super) lost_at: Vec<u64>,
    /// Invoke time of every stale read.
    pub(super) stale_at: Vec<u64>,
    pub(super) stale_samples: Vec<String>,
    /// Invoke time of every session read that went back.
    pub(super) session_back_at: Vec<u64>,
    pub(super) session_samples: Vec<String>,
    /// Invoke time of every read-your-writes read that missed a write that survived.
    pub(super) ryw_at: Vec<u64>,
    pub(super) ryw_samples: Vec<String>,
    pub(super) violations: Vec<String>,
}

/// What the checkers need besides the history.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rules {
    /// Synchronous (strict) replication: nothing acknowledged may be lost.
    pub(super) synchronous: bool,
    /// Bound of the lag-bounded reads, in microseconds.
    pub(super) bound_us: u64,
    /// Patroni's `maximum_lag_on_failover`, in bytes.
    pub(super) loss_budget: u64,
}

/// How many samples of each kind of violation the report describes.
const SAMPLES: usize = 5;

fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

fn where_it_ran(op: &Op) -> String {
    let show = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    format!(
        "{} (timeline {}, at {})",
        op.member.as_deref().unwrap_or("-"),
        show(op.timeline.map(|t| t.to_string())),
        show(op.lsn.map(|l| l.to_string()))
    )
}

/// Applies every checker and turns what fails into violations.
pub(super) fn judge(ops: &[Op], last: &FinalState, windows: &[Window], rules: Rules) -> Verdict {
    let mut v = Verdict {
        inserts: check_set(ops, OpKind::Insert, last),
        heartbeats: check_set(ops, OpKind::Heartbeat, last),
        ryw_writes: check_set(ops, OpKind::RywWrite, last),
        ..Verdict::default()
    };
    let in_loss_window = |at: u64| {
        windows
            .iter()
            .any(|w| w.kind.may_lose_writes() && at + 1_000_000 >= w.began_us && at <= w.healed_us)
    };
    v.duplicates = last
        .write_counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    v.duplicates.sort_unstable();

    // Every acknowledged write: placed; the lost ones explained.
    let mut lost_on_history = Vec::new();
    let mut lost = Vec::new();
    for op in ops.iter().filter(|op| op.kind.writes() && op.outcome == Outcome::Ok) {
        let placement = place(op, ops, last);
        if op.kind == OpKind::Insert && placement == Placement::Off {
            v.acked_off_history.push(op.value);
        }
        if last.has(op.kind, op.value) {
            continue;
        }
        lost.push(op);
        v.lost_at.push(op.complete_us);
        let what = format!("{:?} {}", op.kind, op.value);
        match placement {
            Placement::On => lost_on_history.push(format!(
                "{what} (token {}, before COMMIT on {}, acknowledged at {:.1} s)",
                op.token.map_or_else(|| "-".to_owned(), |t| t.to_string()),
                where_it_ran(op),
                seconds(op.complete_us)
            )),
            Placement::Unplaced => v.lost_unplaced.push(op.value),
            Placement::Off => {}
        }
        if !in_loss_window(op.complete_us) {
            v.unexplained_losses.push(what);
        }
    }
    v.acked_off_history.sort_unstable();
    v.loss_bytes = loss_bytes(&lost, last);

    for op in deposed_acks(ops) {
        v.deposed_acks.push(format!(
            "{:?} {} invoked at {:.3} s, acknowledged on {}",
            op.kind,
            op.value,
            seconds(op.invoke_us),
            where_it_ran(op)
        ));
    }
    for (op, (missed, acked)) in stale_reads(ops, last, rules.bound_us) {
        v.stale_at.push(op.invoke_us);
        if v.stale_samples.len() < SAMPLES {
            v.stale_samples.push(format!(
                "at {:.1} s saw heartbeat {}, missed {missed} (acknowledged at {:.1} s), on {}",
                seconds(op.invoke_us),
                op.read.unwrap_or(0),
                seconds(acked),
                where_it_ran(op)
            ));
        }
    }
    for (op, before) in session_reads_back(ops, last) {
        v.session_back_at.push(op.invoke_us);
        if v.session_samples.len() < SAMPLES {
            v.session_samples.push(format!(
                "at {:.1} s saw heartbeat {} after {before}, on {}",
                seconds(op.invoke_us),
                op.read.unwrap_or(0),
                where_it_ran(op)
            ));
        }
    }
    for op in ryw_misses(ops, last) {
        v.ryw_at.push(op.invoke_us);
        if v.ryw_samples.len() < SAMPLES {
            v.ryw_samples.push(format!(
                "at {:.1} s missed insert {} on {}",
                seconds(op.invoke_us),
                op.value,
                where_it_ran(op)
            ));
        }
    }
    violations(&mut v, &lost_on_history, rules);
    v
}

fn first<T: std::fmt::Debug>(items: &[T]) -> &[T] {
    &items[..items.len().min(10)]
}

fn violations(v: &mut Verdict, lost_on_history: &[String], rules: Rules) {
    let mut out = Vec::new();
    let lost_total = v.inserts.lost.len() + v.heartbeats.lost.len() + v.ryw_writes.lost.len();
    if rules.synchronous && lost_total > 0 {
        out.push(format!(
            "synchronous mode lost {lost_total} acknowledged writes ({} inserts {:?}, {} heartbeats, {} read-your-writes inserts)",
            v.inserts.lost.len(),
            first(&v.inserts.lost),
            v.heartbeats.lost.len(),
            v.ryw_writes.lost.len()
        ));
    }
    if !v.unexplained_losses.is_empty() {
        out.push(format!(
            "{} acknowledged writes lost outside any leader-loss fault: {:?}",
            v.unexplained_losses.len(),
            first(&v.unexplained_losses)
        ));
    }
    for (name, set) in [
        ("inserts", &v.inserts),
        ("heartbeats", &v.heartbeats),
        ("read-your-writes inserts", &v.ryw_writes),
    ] {
        if !set.unexpected.is_empty() {
            out.push(format!(
                "{name} present that no operation wrote: {:?}",
                first(&set.unexpected)
            ));
        }
        if !set.failed_but_present.is_empty() {
            out.push(format!(
                "{name} reported as failed that committed: {:?}",
                first(&set.failed_but_present)
            ));
        }
    }
    if !v.duplicates.is_empty() {
        out.push(format!("writes applied twice: {:?}", first(&v.duplicates)));
    }
    // A write lost although it lies on the surviving history was not lost to a failover: it
    // was acknowledged without being committed there.
    if !lost_on_history.is_empty() {
        out.push(format!(
            "writes lost although acknowledged on the surviving timeline history: {:?}",
            first(lost_on_history)
        ));
    }
    if !v.deposed_acks.is_empty() {
        out.push(format!(
            "{} writes acknowledged by a deposed primary (after a later timeline took writes): {:?}",
            v.deposed_acks.len(),
            first(&v.deposed_acks)
        ));
    }
    for (tl, bytes) in &v.loss_bytes {
        if *bytes > rules.loss_budget {
            out.push(format!(
                "the failover from timeline {tl} lost writes {bytes} bytes past its switch point, more than maximum_lag_on_failover ({})",
                rules.loss_budget
            ));
        }
    }
    if !v.stale_at.is_empty() {
        out.push(format!("{} reads beyond their bound", v.stale_at.len()));
    }
    if !v.session_back_at.is_empty() {
        out.push(format!(
            "{} session reads saw an older heartbeat than the read before them",
            v.session_back_at.len()
        ));
    }
    if !v.ryw_at.is_empty() {
        out.push(format!(
            "{} read-your-writes reads missed a write that survived",
            v.ryw_at.len()
        ));
    }
    v.violations = out;
}

#[cfg(test)]
mod tests {
    use pgha_client::WalToken;

    use super::*;

    fn lsn(s: &str) -> Lsn {
        s.parse().expect("lsn")
    }

    const S: u64 = 1_000_000;

    /// A write of `kind` and `value`, invoked at `at` seconds and acknowledged 10 ms later,
    /// before COMMIT on `before` (timeline, position), its token `token`.
    fn write(kind: OpKind, value: i64, at: u64, before: (u64, &str), token: (u64, &str)) -> Op {
        Op {
            process: 0,
            kind,
            value,
            read: None,
            invoke_us: at * S,
            complete_us: at * S + 10_000,
            outcome: Outcome::Ok,
            member: Some("node1".into()),
            timeline: Some(before.0),
            lsn: Some(lsn(before.1)),
            token: Some(WalToken {
                timeline: token.0,
                lsn: lsn(token.1),
            }),
            error: None,
        }
    }

    fn insert(value: i64, at: u64, before: (u64, &str), token: (u64, &str)) -> Op {
        write(OpKind::Insert, value, at, before, token)
    }

    fn ended(op: Op, outcome: Outcome) -> Op {
        Op { outcome, ..op }
    }

    fn read(kind: OpKind, process: u32, value: i64, seen: i64, at_ms: u64) -> Op {
        Op {
            process,
            kind,
            value,
            read: Some(seen),
            invoke_us: at_ms * 1_000,
            complete_us: at_ms * 1_000 + 5_000,
            outcome: Outcome::Ok,
            member: Some("node2".into()),
            timeline: Some(2),
            lsn: Some(lsn("0/5000")),
            token: None,
            error: None,
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

    fn window(kind: FaultKind, from: u64, to: u64) -> Window {
        Window {
            kind,
            began_us: from * S,
            healed_us: to * S,
        }
    }

    fn rules(synchronous: bool) -> Rules {
        Rules {
            synchronous,
            bound_us: 2 * S,
            loss_budget: 1 << 20,
        }
    }

    #[test]
    fn the_set_checker_finds_lost_unexpected_recovered_and_failed_but_present() {
        let ops = [
            insert(1, 1, (1, "0/1000"), (1, "0/1100")),
            insert(2, 2, (1, "0/1200"), (1, "0/1300")),
            ended(insert(3, 3, (1, "0/1400"), (1, "0/1500")), Outcome::Unknown),
            ended(insert(4, 4, (1, "0/1600"), (1, "0/1700")), Outcome::Unknown),
            ended(insert(5, 5, (1, "0/1800"), (1, "0/1900")), Outcome::Fail),
        ];
        // 2 lost, 3 recovered, 4 not, 5 failed but present, 9 never written.
        let last = after_failover(&[1, 3, 5, 9]);
        let check = check_set(&ops, OpKind::Insert, &last);
        assert_eq!(
            check,
            SetCheck {
                acked: 2,
                lost: vec![2],
                unexpected: vec![9],
                recovered: vec![3],
                failed_but_present: vec![5],
            }
        );
        let v = judge(&ops, &last, &[window(FaultKind::KillLeader, 1, 10)], rules(false));
        assert!(
            v.violations.iter().any(|m| m.contains("no operation wrote: [9]")),
            "{:?}",
            v.violations
        );
        assert!(
            v.violations.iter().any(|m| m.contains("failed that committed: [5]")),
            "{:?}",
            v.violations
        );
    }

    #[test]
    fn a_write_lost_past_the_switch_point_in_a_leader_loss_window_is_allowed_asynchronously() {
        let ops = [
            insert(1, 11, (1, "0/1F00"), (1, "0/2000")),
            insert(2, 12, (1, "0/3F00"), (1, "0/4000")),
        ];
        let windows = [window(FaultKind::KillLeader, 10, 30)];
        let v = judge(&ops, &after_failover(&[1]), &windows, rules(false));
        assert_eq!(v.inserts.lost, vec![2]);
        assert_eq!(v.acked_off_history, vec![2]);
        assert_eq!(v.loss_bytes, BTreeMap::from([(1, 0xF00)]));
        assert!(v.violations.is_empty(), "{:?}", v.violations);

        let v = judge(&ops, &after_failover(&[1]), &windows, rules(true));
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(v.violations[0].contains("synchronous mode lost 1"));
    }

    #[test]
    fn losses_past_the_budget_are_a_violation() {
        let ops = [insert(2, 12, (1, "0/203000"), (1, "0/203100"))];
        let windows = [window(FaultKind::KillLeader, 10, 30)];
        let v = judge(&ops, &after_failover(&[]), &windows, rules(false));
        assert_eq!(v.loss_bytes, BTreeMap::from([(1, 0x200000)]));
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(v.violations[0].contains("more than maximum_lag_on_failover"));
    }

    #[test]
    fn a_loss_outside_any_leader_loss_window_is_a_violation() {
        let ops = [insert(2, 50, (1, "0/3F00"), (1, "0/4000"))];
        let windows = [
            window(FaultKind::KillLeader, 10, 30),
            window(FaultKind::Switchover, 45, 55),
        ];
        let v = judge(&ops, &after_failover(&[]), &windows, rules(false));
        assert_eq!(v.unexplained_losses, vec!["Insert 2".to_owned()]);
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
    }

    #[test]
    fn a_write_lost_below_the_switch_point_is_a_violation_even_in_a_loss_window() {
        let ops = [insert(1, 11, (1, "0/1F00"), (1, "0/2000"))];
        let windows = [window(FaultKind::KillLeader, 10, 30)];
        let v = judge(&ops, &after_failover(&[]), &windows, rules(false));
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
    fn a_token_from_the_new_primary_is_placed_by_the_next_write_of_the_same_node() {
        // Both committed on timeline 1 before the switch point at 0/3000 as far as their
        // position before COMMIT shows; their tokens came from timeline 2.
        let unbounded = insert(1, 11, (1, "0/2F00"), (2, "0/5000"));
        let bounded = insert(2, 11, (1, "0/2E00"), (2, "0/5000"));
        let off = insert(3, 11, (1, "0/3F00"), (2, "0/5000"));
        // A heartbeat the same node ran after 2 was acknowledged, below the switch point: 2's
        // commit lies before it, on the history.
        let mut next = write(OpKind::Heartbeat, 7, 11, (1, "0/2F80"), (1, "0/2F90"));
        next.invoke_us = bounded.complete_us + 1;
        // 1 was acknowledged after that heartbeat started: it bounds nothing for 1.
        let mut unbounded = unbounded;
        unbounded.complete_us = next.invoke_us + 1;
        let ops = [unbounded, bounded, off, next];
        let mut last = after_failover(&[]);
        last.heartbeats.insert(7);
        assert_eq!(place(&ops[0], &ops, &last), Placement::Unplaced);
        assert_eq!(place(&ops[1], &ops, &last), Placement::On);
        assert_eq!(place(&ops[2], &ops, &last), Placement::Off);

        let windows = [window(FaultKind::PartitionLeader, 10, 30)];
        let v = judge(&ops, &last, &windows, rules(false));
        assert_eq!(v.lost_unplaced, vec![1]);
        assert_eq!(v.acked_off_history, vec![3]);
        assert!(
            v.violations
                .iter()
                .any(|m| m.contains("surviving timeline history") && m.contains("Insert 2")),
            "{:?}",
            v.violations
        );
    }

    #[test]
    fn a_deposed_primary_acknowledging_after_the_new_one_took_writes_is_caught() {
        let new = insert(1, 20, (2, "0/5000"), (2, "0/5100"));
        // Invoked before the first acknowledgement on timeline 2: a write in flight at the
        // failover, which the old primary may still acknowledge.
        let in_flight = insert(2, 19, (1, "0/2000"), (1, "0/2100"));
        let mut late = insert(3, 20, (1, "0/2200"), (1, "0/2300"));
        late.invoke_us = new.complete_us + 1;
        let ops = [new, in_flight, late];
        let deposed: Vec<i64> = deposed_acks(&ops).iter().map(|op| op.value).collect();
        assert_eq!(deposed, vec![3]);
        let v = judge(&ops, &after_failover(&[1, 2, 3]), &[], rules(false));
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(v.violations[0].contains("deposed primary"));
    }

    #[test]
    fn every_bounded_read_is_judged_even_when_the_next_heartbeat_failed() {
        let hb = |seq, at_ms: u64| Op {
            invoke_us: at_ms * 1_000 - 5_000,
            complete_us: at_ms * 1_000,
            ..write(OpKind::Heartbeat, seq, 0, (2, "0/4000"), (2, "0/4100"))
        };
        let ops = [
            hb(1, 1_000),
            ended(hb(2, 2_000), Outcome::Fail),
            hb(3, 3_000),
            // Saw 1 at 10 s: heartbeat 3, acknowledged at 3 s, surviving, is missing.
            read(OpKind::BoundedRead, 5, 0, 1, 10_000),
            // Saw 1 at 4 s: 3 was acknowledged less than the bound before.
            read(OpKind::BoundedRead, 5, 0, 1, 4_000),
        ];
        let mut last = after_failover(&[]);
        last.heartbeats = HashSet::from([1, 3]);
        let stale = stale_reads(&ops, &last, 2 * S);
        assert_eq!(stale.len(), 1);
        assert_eq!((stale[0].0.invoke_us, stale[0].1), (10 * S, (3, 3 * S)));

        // A read that misses only heartbeats the failover lost is not stale.
        last.heartbeats.remove(&3);
        assert!(stale_reads(&ops, &last, 2 * S).is_empty());
    }

    fn after(op: Op, token: &str) -> Op {
        Op {
            token: Some(token.parse().expect("token")),
            ..op
        }
    }

    #[test]
    fn a_session_read_that_goes_back_is_caught_unless_what_it_saw_before_was_lost() {
        let ops = [
            read(OpKind::SessionRead, 1, 0, 5, 1_000),
            after(read(OpKind::SessionRead, 1, 0, 4, 2_000), "pgha1:2:0/5000"),
            // Another process's reads are another session.
            after(read(OpKind::SessionRead, 2, 0, 3, 1_500), "pgha1:2:0/4000"),
            // A read without a token starts a new session.
            read(OpKind::SessionRead, 1, 0, 2, 3_000),
        ];
        let mut last = after_failover(&[]);
        last.heartbeats = HashSet::from([3, 4, 5]);
        let back = session_reads_back(&ops, &last);
        assert_eq!(back.len(), 1);
        assert_eq!((back[0].0.invoke_us, back[0].1), (2 * S, 5));
        let v = judge(&ops, &last, &[], rules(false));
        assert!(
            v.violations.iter().any(|m| m.contains("1 session reads")),
            "{:?}",
            v.violations
        );

        last.heartbeats.remove(&5);
        assert!(session_reads_back(&ops, &last).is_empty());
    }

    #[test]
    fn a_read_your_writes_miss_counts_only_when_the_write_survived() {
        let ops = [
            write(OpKind::RywWrite, 1, 11, (1, "0/3F00"), (1, "0/4000")),
            write(OpKind::RywWrite, 2, 40, (2, "0/5000"), (2, "0/5100")),
            read(OpKind::RywRead, 6, 1, 0, 12_000),
            read(OpKind::RywRead, 6, 2, 0, 41_000),
        ];
        let windows = [window(FaultKind::FreezeLeader, 10, 30)];
        let mut last = after_failover(&[]);
        last.ryw = HashSet::from([2]);
        let v = judge(&ops, &last, &windows, rules(false));
        assert_eq!(v.ryw_writes.lost, vec![1]);
        assert_eq!(v.ryw_at, vec![41 * S]);
        assert!(
            v.ryw_samples.len() == 1 && v.ryw_samples[0].contains("node2"),
            "{:?}",
            v.ryw_samples
        );
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(v.violations[0].contains("missed a write that survived"));
    }

    #[test]
    fn duplicates_are_violations() {
        let ops = [insert(1, 1, (2, "0/3F00"), (2, "0/4000"))];
        let mut last = after_failover(&[]);
        last.write_counts.insert(1, 2);
        let v = judge(&ops, &last, &[], rules(false));
        assert_eq!(v.duplicates, vec![1]);
        assert_eq!(v.violations, vec!["writes applied twice: [1]".to_owned()]);
    }
}
