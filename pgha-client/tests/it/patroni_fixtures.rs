//! The Patroni model against responses recorded from real Patroni 3.0.2 and 4.1.5 clusters
//! (`scripts/record-patroni-fixtures.sh`), asynchronous and synchronous.

use std::path::{Path, PathBuf};

use pgha_client::patroni::{ClusterView, HistoryEntry, NodeStatus, Role, State};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/patroni")
}

fn read(label: &str, file: &str) -> Vec<u8> {
    let path = fixtures().join(label).join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cluster(label: &str, file: &str) -> ClusterView {
    ClusterView::from_json(&read(label, file)).unwrap_or_else(|e| panic!("{label}/{file}: {e}"))
}

const LABELS: [&str; 4] = ["3.0.2", "3.0.2-sync", "4.1.5", "4.1.5-sync"];

#[test]
fn every_recorded_document_parses() {
    let mut parsed = 0;
    for label in LABELS {
        for entry in std::fs::read_dir(fixtures().join(label)).expect("fixture dir") {
            let path = entry.expect("entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_owned();
            let bytes = std::fs::read(&path).expect("read");
            let ok = if name.starts_with("cluster_") {
                ClusterView::from_json(&bytes).map(drop)
            } else if name.starts_with("patroni_") {
                NodeStatus::from_json(&bytes).map(drop)
            } else if name == "history.json" {
                HistoryEntry::list_from_json(&bytes).map(drop)
            } else {
                continue;
            };
            ok.unwrap_or_else(|e| panic!("{label}/{name}: {e}"));
            parsed += 1;
        }
    }
    assert!(parsed >= 32, "only {parsed} documents found");
}

#[test]
fn healthy_cluster_has_one_leader_and_version_specific_replica_states() {
    for label in LABELS {
        let view = cluster(label, "cluster_healthy.json");
        assert_eq!(view.members.len(), 3, "{label}");
        let leader = view.leader().expect("leader");
        assert_eq!(leader.state, State::Running);
        assert_eq!(leader.lag, None, "the leader has no lag");
        assert!(leader.port.is_some() && leader.api_url.as_deref().is_some_and(|u| u.ends_with("/patroni")));
        let v4 = label.starts_with('4');
        for m in view.members.iter().filter(|m| m.role != Role::Leader) {
            assert!(m.role.is_standby(), "{label}: {:?}", m.role);
            // 3.0.0–3.0.3 report replicas as `running`; 3.0.4+ as `streaming`.
            assert_eq!(m.state, if v4 { State::Streaming } else { State::Running }, "{label}");
            assert_eq!(m.lag, Some(0), "{label}");
            assert_eq!(m.timeline, leader.timeline);
            // receive/replay LSNs only exist from 4.1 on.
            assert_eq!(m.replay_lsn.is_some(), v4, "{label}");
        }
        // `scope` appears in /cluster from 3.2 on.
        assert_eq!(view.scope.is_some(), v4, "{label}");
        let syncs = view.members.iter().filter(|m| m.role == Role::SyncStandby).count();
        assert_eq!(syncs, usize::from(label.ends_with("-sync")), "{label}");
    }
}

#[test]
fn patroni_lag_does_not_show_a_stuck_replay_but_4_1_replay_lag_does() {
    for label in LABELS {
        let view = cluster(label, "cluster_replay_paused.json");
        let standbys: Vec<_> = view.members.iter().filter(|m| m.role.is_standby()).collect();
        // `lag` is receive-based: a standby that receives but does not replay looks caught up.
        assert!(standbys.iter().all(|m| m.lag == Some(0)), "{label}: {standbys:?}");
        if label.starts_with('4') {
            let stuck = standbys.iter().filter(|m| m.replay_lag.unwrap_or(0) > 0).count();
            assert_eq!(stuck, 1, "{label}: replay_lag shows the stuck standby");
            let m = standbys.iter().find(|m| m.replay_lag.unwrap_or(0) > 0).expect("stuck");
            assert!(m.replay_lsn < m.receive_lsn, "{label}");
        }
        let node = NodeStatus::from_json(&read(label, "patroni_replica_replay_paused.json")).expect("parses");
        let (rx, replayed) = (node.xlog.received_location, node.xlog.replayed_location);
        assert!(rx > replayed, "{label}: received {rx:?} replayed {replayed:?}");
        // It was stopped, not paused with pg_wal_replay_pause(): Patroni would resume that.
        assert!(!node.xlog.paused);
    }
}

#[test]
fn node_status_role_is_primary_on_3_x_master_and_4_x_primary() {
    for label in LABELS {
        let primary = NodeStatus::from_json(&read(label, "patroni_primary.json")).expect("parses");
        assert_eq!(primary.role, Role::Primary, "{label}");
        assert!(primary.xlog.location.is_some());
        assert_eq!(primary.server_version.map(|v| v / 10000), Some(15));
        let version = primary.patroni.version.as_deref().expect("version");
        assert_eq!(version, label.trim_end_matches("-sync"));
        // `name` inside `patroni` appears in 3.2.
        assert_eq!(primary.patroni.name.is_some(), label.starts_with('4'));
        let replica = NodeStatus::from_json(&read(label, "patroni_replica.json")).expect("parses");
        assert_eq!(replica.role, Role::Replica);
        assert!(replica.xlog.received_location.is_some() && replica.xlog.location.is_none());
    }
    // The raw 3.x document really says "master".
    let raw: serde_json::Value = serde_json::from_slice(&read("3.0.2", "patroni_primary.json")).expect("json");
    assert_eq!(raw["role"], "master");
}

#[test]
fn history_records_the_switchover_and_sync_mode_refuses_an_async_candidate() {
    for label in LABELS {
        let history = HistoryEntry::list_from_json(&read(label, "history.json")).expect("parses");
        let answer = String::from_utf8(read(label, "switchover_response.txt")).expect("utf-8");
        let after = cluster(label, "cluster_after_switchover.json");
        if label.ends_with("-sync") {
            // The recorder asks for a switchover to an asynchronous replica: in synchronous mode
            // Patroni refuses (HTTP 412), so nothing changes.
            assert_eq!(
                answer.trim(),
                "candidate name does not match with sync_standby",
                "{label}"
            );
            assert!(history.is_empty(), "{label}");
            assert_eq!(after.leader().and_then(|m| m.timeline), Some(1), "{label}");
            continue;
        }
        assert!(answer.starts_with("Successfully switched over to"), "{label}: {answer}");
        let last = history.last().expect("one switch");
        assert_eq!(last.timeline, 1);
        assert!(last.switch_lsn > 0);
        assert_eq!(
            last.new_leader.as_deref(),
            after.leader().map(|m| m.name.as_str()),
            "{label}"
        );
        assert_eq!(after.leader().and_then(|m| m.timeline), Some(2), "{label}");
    }
}

#[test]
fn unsafe_endpoints_need_basic_auth() {
    for label in LABELS {
        assert_eq!(
            String::from_utf8(read(label, "unauth_status.txt"))
                .expect("utf-8")
                .trim(),
            "401"
        );
    }
}

#[test]
fn a_member_caught_mid_switchover_is_stopped_with_unknown_lag() {
    let view = cluster("3.0.2", "cluster_after_switchover_early.json");
    let stopped = view
        .members
        .iter()
        .find(|m| m.state == State::Stopped)
        .expect("old leader stopped");
    assert_eq!(stopped.lag, None, "\"unknown\" lag parses as None");
    assert_eq!(stopped.timeline, None);
    assert!(!stopped.state.is_up());
}
