//! Property tests of the routing core: for arbitrary Patroni views, SQL probes, WAL histories
//! and requests, `build` then `select` never sends a write to a member that is not the verified,
//! unfenced leader, and never sends a bounded read to a standby past its bound.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rand::SeedableRng;

use super::description::{self, Address, Observations, PrimaryHistory, Probe, ProbeResult, Source, Topology};
use super::selection::{self, Request, Selection};
use crate::intent::{Balance, Intent, LagBound};
use crate::patroni::{ClusterView, Lsn};

#[derive(Debug, Clone)]
struct MemberCase {
    role: &'static str,
    state: &'static str,
    patroni_timeline: u64,
    noloadbalance: bool,
    /// `None`: the probe failed.
    probe: Option<(bool, u64, u64)>,
}

fn member() -> impl Strategy<Value = MemberCase> {
    (
        prop_oneof![Just("leader"), Just("replica"), Just("sync_standby")],
        prop_oneof![Just("running"), Just("streaming"), Just("stopped"), Just("starting")],
        1..4u64,
        any::<bool>(),
        proptest::option::weighted(0.85, (any::<bool>(), 1..4u64, 0..4_000_000u64)),
    )
        .prop_map(|(role, state, patroni_timeline, noloadbalance, probe)| MemberCase {
            role,
            state,
            patroni_timeline,
            noloadbalance,
            probe,
        })
}

fn intent() -> impl Strategy<Value = Intent> {
    prop_oneof![
        Just(Intent::Write),
        Just(Intent::Primary),
        Just(Intent::Standby),
        Just(Intent::PreferStandby),
        Just(Intent::Any)
    ]
}

fn view_json(members: &[MemberCase]) -> String {
    let list: Vec<String> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                r#"{{"name": "m{i}", "role": "{}", "state": "{}", "host": "10.0.0.{i}", "port": 5432, "timeline": {}, "lag": 0, "tags": {{"noloadbalance": {}}}}}"#,
                m.role, m.state, m.patroni_timeline, m.noloadbalance
            )
        })
        .collect();
    format!(r#"{{"members": [{}]}}"#, list.join(","))
}

/// 2,000 cases, or `PROPTEST_CASES` (an explicit `cases` would otherwise override it).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn writes_reach_only_the_verified_leader_and_reads_respect_their_bound(
        members in proptest::collection::vec(member(), 1..5),
        patroni_answers in any::<bool>(),
        max_timeline_seen in 0..4u64,
        max_timeline_primary in proptest::option::of(0..5usize),
        samples in proptest::collection::vec((0..2_000u64, 0..4_000_000u64), 0..6),
        intent in intent(),
        time_bound_ms in proptest::option::of(50..5_000u64),
        bytes_bound in proptest::option::of(0..2_000_000u64),
        fallback in any::<bool>(),
        seed in any::<u64>(),
        turn in 0..10usize,
    ) {
        let base = Instant::now();
        let now = base + Duration::from_secs(5);
        let view = ClusterView::from_json(view_json(&members).as_bytes()).expect("generated view parses");
        let leaders = view.members.iter().filter(|m| m.role == crate::patroni::Role::Leader).count();
        let addresses: Vec<Address> = (0..members.len())
            .map(|i| Address { name: format!("m{i}"), host: format!("10.0.0.{i}"), port: 5432, api_url: None })
            .collect();
        let mut probes = BTreeMap::new();
        for (i, m) in members.iter().enumerate() {
            let result = match m.probe {
                None => ProbeResult::Failed("refused".into()),
                Some((in_recovery, timeline, lsn)) => ProbeResult::Ok(Probe {
                    in_recovery,
                    current_lsn: (!in_recovery).then_some(Lsn(lsn)),
                    timeline: Some(timeline),
                    replay_lsn: in_recovery.then_some(Lsn(lsn)),
                    replay_paused: false,
                    synchronous: false,
                    system_identifier: Some("1".into()),
                    sent_at: now - Duration::from_millis(3),
                    received_at: now - Duration::from_millis(1),
                }),
            };
            probes.insert(format!("m{i}"), result);
        }
        let mut history = PrimaryHistory::default();
        let mut sorted = samples.clone();
        sorted.sort_unstable();
        for (ms, lsn) in sorted {
            history.push(base + Duration::from_millis(ms), 0, Lsn(lsn));
        }
        let mut previous = Topology::empty(base);
        previous.max_timeline_seen = max_timeline_seen;
        previous.max_timeline_primary = max_timeline_primary.map(|i| format!("m{i}"));
        // The fence on `max_timeline_seen` may be lifted only if every member answers from a
        // lower timeline and the member that was primary on it is among them, or has left the
        // cluster (Patroni answered without it).
        let may_lift = max_timeline_primary.is_some_and(|i| i < members.len() || patroni_answers)
            && members.iter().all(|m| m.probe.is_some_and(|p| p.1 < max_timeline_seen));
        let obs = Observations {
            view: patroni_answers.then_some(&view),
            view_source: Source::Patroni,
            addresses: &addresses,
            probes: &probes,
            now,
        };
        let topology = description::build(&obs, &previous, &mut history);

        let bound = LagBound { time: time_bound_ms.map(Duration::from_millis), bytes: bytes_bound };
        let req = Request {
            intent,
            bound,
            token: None,
            fallback_to_primary: fallback,
            balance: Balance::Random,
            avoid: None,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let selection = selection::select(&topology, &req, now, &|_| 0, turn, &mut rng);

        let out_of_recovery_timelines: Vec<u64> = members
            .iter()
            .filter_map(|m| m.probe.filter(|p| !p.0).map(|p| p.1))
            .collect();
        if let Selection::Member { index, fallback: fell_back, .. } = selection {
            let chosen = &topology.members[index];
            let probe = members[index].probe;
            let is_primary_pick = matches!(intent, Intent::Write | Intent::Primary) || fell_back.is_some()
                || topology.primary == Some(index);
            if is_primary_pick {
                // The database says it is a primary…
                prop_assert_eq!(probe.map(|p| p.0), Some(false), "chosen primary {} is in recovery", chosen.name);
                let tl = probe.map_or(0, |p| p.1);
                // …not fenced by a higher timeline seen before or now…
                prop_assert!(tl >= max_timeline_seen || may_lift, "primary on timeline {} below {} seen before", tl, max_timeline_seen);
                prop_assert!(out_of_recovery_timelines.iter().all(|&t| t <= tl), "primary fenced by a higher timeline");
                // …and it is Patroni's leader when Patroni answered.
                if patroni_answers {
                    prop_assert_eq!(leaders, 1);
                    let leader = view.leader().map(|l| l.name.clone());
                    prop_assert_eq!(leader.as_deref(), Some(chosen.name.as_str()));
                } else {
                    // Without Patroni, only an unambiguous primary: no other member out of
                    // recovery on the same timeline.
                    prop_assert_eq!(out_of_recovery_timelines.iter().filter(|&&t| t == tl).count(), 1);
                }
            } else {
                // A standby read: within the bound, routable.
                prop_assert!(matches!(intent, Intent::Standby | Intent::PreferStandby | Intent::Any));
                prop_assert!(chosen.is_standby());
                prop_assert!(!members[index].noloadbalance || !patroni_answers);
                if let Some(max) = bound.time {
                    let staleness = chosen.staleness_at(now);
                    prop_assert!(staleness.is_some_and(|s| s <= max), "read {:?} stale, bound {:?}", staleness, max);
                }
                if let Some(max) = bound.bytes {
                    prop_assert!(chosen.lag_bytes.is_some_and(|l| l <= max), "read {:?} bytes behind, bound {}", chosen.lag_bytes, max);
                }
            }
            if intent == Intent::Standby && !fallback {
                prop_assert!(fell_back.is_none(), "a standby-only read fell back to the primary");
            }
        }
    }
}
