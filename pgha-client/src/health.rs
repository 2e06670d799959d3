//! [`Health`]: what a readiness check needs to know, read from the client's last topology
//! snapshot ([`Client::health`](crate::Client::health)) without any I/O.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::intent::LagBound;
use crate::topology::selection::check_standby;
use crate::topology::{Snapshot, Source};

/// A client's readiness, from its last topology snapshot. Cheap: no I/O, no lock held.
///
/// ```no_run
/// # fn demo(client: &pgha_client::Client) {
/// let health = client.health();
/// if health.is_ready() {
///     // 200: writes have a verified primary to go to.
/// } else {
///     eprintln!("not ready: {health:?}");
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// The verified primary at the last refresh: Patroni's leader whose database confirmed it is
    /// out of recovery, on the highest timeline seen (or, while Patroni is unreachable, the
    /// member probing found out of recovery on the highest timeline).
    pub primary: Option<String>,
    /// That primary's timeline.
    pub timeline: Option<u64>,
    /// Where the last topology came from: etcd (`Dcs`), a Patroni REST API (`Patroni`), or
    /// probing the members directly (`SqlProbe`).
    pub source: Source,
    /// Members known.
    pub members: usize,
    /// Standbys in service (before any lag bound).
    pub standbys: usize,
    /// Of those, the ones under the client's lag bound
    /// ([`ClientBuilder::lag_bound`](crate::ClientBuilder::lag_bound)) now.
    pub standbys_within_bound: usize,
    /// The standbys are being probed. `false` once no operation that may read from a standby
    /// ran for `idle_timeout`: then only the members that may be the primary are probed, the
    /// standbys count as out of service, and the next such read probes them first.
    pub standbys_probed: bool,
    /// How long ago the last topology was built; `None` before the first refresh.
    #[serde(with = "crate::duration::opt_duration")]
    pub refreshed_ago: Option<Duration>,
    /// The client is idle (no operation for `idle_timeout`): its topology is not refreshed until
    /// the next operation, which refreshes it before anything is routed.
    pub idle: bool,
    /// The client was shut down.
    pub shut_down: bool,
}

impl Health {
    /// Reads `snapshot` at `now`, judging standbys against `bound`.
    pub(crate) fn of(snapshot: &Snapshot, bound: &LagBound, now: Instant) -> Self {
        let topology = &snapshot.topology;
        let primary = topology.primary();
        Self {
            primary: primary.map(|m| m.name.clone()),
            timeline: primary.and_then(|m| m.timeline),
            source: topology.source,
            members: topology.members.len(),
            standbys: topology.standbys().count(),
            standbys_within_bound: topology
                .standbys()
                .filter(|m| check_standby(m, bound, now).is_ok())
                .count(),
            standbys_probed: !snapshot.standbys_unprobed,
            refreshed_ago: (topology.generation > 0).then(|| now.saturating_duration_since(topology.observed_at)),
            idle: snapshot.dormant,
            shut_down: snapshot.closed,
        }
    }

    /// Ready to serve writes: the client runs and its last refresh found a verified primary.
    ///
    /// An idle client is ready on what it last saw, as its next operation refreshes the
    /// topology before routing; reads on standbys depend on
    /// [`standbys_within_bound`](Self::standbys_within_bound), which a service that only reads
    /// from standbys may want to require as well.
    pub fn is_ready(&self) -> bool {
        !self.shut_down && self.primary.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::topology::{MemberInfo, MemberStatus, Topology};

    fn member(name: &str, status: MemberStatus, staleness: Option<Duration>, now: Instant) -> MemberInfo {
        MemberInfo {
            name: name.to_owned(),
            host: "127.0.0.1".to_owned(),
            port: 5432,
            api_url: None,
            patroni_role: None,
            patroni_state: None,
            timeline: Some(3),
            noloadbalance: false,
            in_recovery: Some(status != MemberStatus::Primary),
            current_lsn: None,
            replay_lsn: None,
            replay_paused: false,
            synchronous: false,
            lag_bytes: Some(0),
            staleness,
            status,
            observed_at: now,
        }
    }

    fn snapshot(members: Vec<MemberInfo>, primary: Option<usize>, now: Instant) -> Snapshot {
        let mut topology = Topology::empty(now);
        topology.generation = 7;
        topology.source = Source::Dcs;
        topology.members = members;
        topology.primary = primary;
        Snapshot {
            topology: Arc::new(topology),
            handles: Vec::new(),
            closed: false,
            dormant: false,
            standbys_unprobed: false,
        }
    }

    #[test]
    fn ready_means_a_verified_primary_on_a_running_client() {
        let now = Instant::now();
        let bound = LagBound::time(Duration::from_secs(2));
        let members = vec![
            member("node1", MemberStatus::Primary, None, now),
            member("node2", MemberStatus::Standby, Some(Duration::from_millis(100)), now),
            member("node3", MemberStatus::Standby, Some(Duration::from_secs(5)), now),
        ];
        let later = now + Duration::from_millis(300);
        let health = Health::of(&snapshot(members.clone(), Some(0), now), &bound, later);
        assert_eq!(
            health,
            Health {
                primary: Some("node1".into()),
                timeline: Some(3),
                source: Source::Dcs,
                members: 3,
                standbys: 2,
                standbys_within_bound: 1,
                standbys_probed: true,
                refreshed_ago: Some(Duration::from_millis(300)),
                idle: false,
                shut_down: false,
            }
        );
        assert!(health.is_ready());

        let mut closed = snapshot(members.clone(), Some(0), now);
        closed.closed = true;
        assert!(
            !Health::of(&closed, &bound, now).is_ready(),
            "a client shut down is not ready"
        );

        let mut no_primary = members;
        no_primary[0].status = MemberStatus::Unusable("in recovery".into());
        let health = Health::of(&snapshot(no_primary, None, now), &bound, now);
        assert!(!health.is_ready(), "no verified primary: {health:?}");
        assert_eq!(health.standbys_within_bound, 1);
    }

    #[test]
    fn nothing_observed_yet_is_not_ready_and_has_no_refresh_age() {
        let now = Instant::now();
        let empty = Snapshot {
            topology: Arc::new(Topology::empty(now)),
            handles: Vec::new(),
            closed: false,
            dormant: false,
            standbys_unprobed: false,
        };
        let health = Health::of(&empty, &LagBound::time(Duration::from_secs(2)), now);
        assert!(!health.is_ready());
        assert_eq!(health.refreshed_ago, None);
        assert_eq!(health.source, Source::Unknown);
    }

    #[test]
    fn serializes_durations_readably() {
        let now = Instant::now();
        let members = vec![member("node1", MemberStatus::Primary, None, now)];
        let health = Health::of(
            &snapshot(members, Some(0), now),
            &LagBound::default(),
            now + Duration::from_millis(1500),
        );
        let json = serde_json::to_value(&health).expect("serializes");
        assert_eq!(json["refreshed_ago"], "1500ms");
        assert_eq!(json["source"], "dcs");
        assert_eq!(json["primary"], "node1");
    }
}
