//! Patroni's keys in etcd (`/<namespace>/<scope>/…`) and what they say: the same document
//! Patroni's `GET /cluster` builds from them (`cluster_as_json` of Patroni 4.x, a superset of
//! 3.x's), parsed by the one `/cluster` parser, and the timeline history (`GET /history`).
//!
//! | key | value |
//! |---|---|
//! | `leader` | the leader's name (on the leader's lease) |
//! | `members/<name>` | member JSON: `conn_url`, `api_url`, `state`, `role`, `timeline`, `xlog_location`, … |
//! | `status` | `{"optime": <bytes>, …}` (legacy: `optime/leader`, a number) |
//! | `sync` | `{"leader": …, "sync_standby": "a,b"}` |
//! | `config` | dynamic configuration (`pause`, `synchronous_mode`, `standby_cluster`) |
//! | `failover` | `{"leader", "member", "scheduled_at"}`, `{}` once used |
//! | `history` | `[[timeline, switch_lsn, reason, timestamp, new_leader], …]` |

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::patroni::{ClusterView, HistoryEntry, Lsn, ParseError};

/// The keys of one Patroni cluster, by their name under the cluster's prefix
/// (`leader`, `members/node1`, …), as of `revision`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Keyspace {
    keys: BTreeMap<String, Vec<u8>>,
    pub(crate) revision: i64,
}

impl Keyspace {
    /// Sets `name` (a key with the prefix removed) to `value`.
    pub(crate) fn put(&mut self, name: String, value: Vec<u8>) {
        self.keys.insert(name, value);
    }

    /// Removes `name`.
    pub(crate) fn delete(&mut self, name: &str) {
        self.keys.remove(name);
    }

    /// The leader key's value: the name of the member holding the leader lock.
    pub(crate) fn leader(&self) -> Option<&str> {
        self.text("leader")
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.keys
            .get(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    fn json(&self, name: &str) -> Option<Value> {
        serde_json::from_slice(self.keys.get(name)?).ok()
    }

    /// Whether the cluster exists in the DCS (Patroni wrote its `initialize` key or any member).
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The cluster as Patroni's `GET /cluster` would describe it.
    pub(crate) fn view(&self, scope: &str) -> Result<ClusterView, ParseError> {
        ClusterView::from_json(self.cluster_document(scope).to_string().as_bytes())
    }

    /// The timeline history, if the `history` key holds one.
    pub(crate) fn history(&self) -> Option<Vec<HistoryEntry>> {
        HistoryEntry::list_from_json(self.keys.get("history")?).ok()
    }

    /// Patroni's `cluster_as_json`, from the keys.
    fn cluster_document(&self, scope: &str) -> Value {
        let config = self.json("config").unwrap_or(Value::Null);
        let leader = self.leader();
        let cluster_lsn = self
            .json("status")
            .and_then(|s| s.get("optime").and_then(Value::as_u64))
            .or_else(|| self.text("optime/leader").and_then(|s| s.parse().ok()))
            .unwrap_or(0);
        let synchronous = config.get("synchronous_mode");
        let sync_role = if synchronous.and_then(Value::as_str) == Some("quorum") {
            "quorum_standby"
        } else {
            "sync_standby"
        };
        let synchronous_on = synchronous.is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("quorum"));
        let sync_members: Vec<String> = self
            .json("sync")
            .and_then(|s| s.get("sync_standby").and_then(Value::as_str).map(str::to_owned))
            .map(|list| list.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default();
        let standby_cluster = config.get("standby_cluster").is_some_and(|v| v.is_object());

        let mut members = Vec::new();
        for (name, data) in self
            .keys
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("members/")?, v)))
        {
            if name.is_empty() || name.contains('/') {
                continue;
            }
            let Ok(Value::Object(data)) = serde_json::from_slice::<Value>(data) else {
                continue;
            };
            let is_leader = leader == Some(name);
            let role = if is_leader {
                if standby_cluster {
                    "standby_leader"
                } else {
                    "leader"
                }
            } else if synchronous_on && sync_members.iter().any(|m| m == name) {
                sync_role
            } else {
                "replica"
            };
            let field = |k: &str| data.get(k).cloned();
            let state = field("replication_state")
                .filter(|_| !is_leader)
                .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                .or_else(|| field("state"))
                .unwrap_or_else(|| json!(""));
            let mut member = Map::new();
            member.insert("name".into(), json!(name));
            member.insert("role".into(), json!(role));
            member.insert("state".into(), state);
            member.insert("api_url".into(), field("api_url").unwrap_or(Value::Null));
            if let Some((host, port)) = data.get("conn_url").and_then(Value::as_str).and_then(host_port) {
                member.insert("host".into(), json!(host));
                member.insert("port".into(), json!(port));
            }
            for k in [
                "timeline",
                "pending_restart",
                "pending_restart_reason",
                "scheduled_restart",
                "tags",
            ] {
                if let Some(v) = field(k) {
                    member.insert(k.into(), v);
                }
            }
            if !is_leader {
                for (lsn_field, source, lag_field) in [
                    ("receive_lsn", "receive_lsn", "receive_lag"),
                    ("replay_lsn", "replay_lsn", "replay_lag"),
                    ("lsn", "xlog_location", "lag"),
                ] {
                    match data.get(source).and_then(Value::as_u64).filter(|&l| l > 0) {
                        Some(lsn) => {
                            member.insert(lsn_field.into(), json!(Lsn(lsn).to_string()));
                            member.insert(lag_field.into(), json!(cluster_lsn.saturating_sub(lsn)));
                        }
                        // Patroni 3.x reports only `lag`; "unknown" is what it says without a position.
                        None if source == "xlog_location" => {
                            member.insert(lag_field.into(), json!("unknown"));
                        }
                        None => {}
                    }
                }
            }
            members.push(Value::Object(member));
        }
        let mut document = Map::new();
        document.insert("scope".into(), json!(scope));
        document.insert("members".into(), Value::Array(members));
        if config.get("pause").and_then(Value::as_bool) == Some(true) {
            document.insert("pause".into(), json!(true));
        }
        if let Some(failover) = self.json("failover") {
            if let Some(at) = failover.get("scheduled_at").filter(|v| v.is_string()) {
                let mut scheduled = Map::new();
                scheduled.insert("at".into(), at.clone());
                for (from, to) in [("leader", "from"), ("member", "to")] {
                    if let Some(v) = failover.get(from).filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
                        scheduled.insert(to.into(), v.clone());
                    }
                }
                document.insert("scheduled_switchover".into(), Value::Object(scheduled));
            }
        }
        Value::Object(document)
    }
}

/// Host and port of a member's `conn_url` (`postgres://host:port/dbname`; port 5432 when absent),
/// as Patroni's `conn_kwargs` reads it.
fn host_port(conn_url: &str) -> Option<(String, u16)> {
    let url = reqwest::Url::parse(conn_url).ok()?;
    let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    Some((host.to_owned(), url.port().unwrap_or(5432)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patroni::{Role, State};

    fn keyspace(keys: &[(&str, &str)]) -> Keyspace {
        let mut k = Keyspace::default();
        for (name, value) in keys {
            k.put((*name).to_owned(), value.as_bytes().to_vec());
        }
        k
    }

    // Values as Patroni 3.0.2 wrote them on this machine's test cluster.
    const NODE1: &str = r#"{"conn_url":"postgres://127.0.0.1:24001/postgres","api_url":"http://127.0.0.1:24002/patroni","state":"running","role":"master","version":"3.0.2","xlog_location":50331968,"timeline":2}"#;
    const NODE2: &str = r#"{"conn_url":"postgres://127.0.0.1:24003/postgres","api_url":"http://127.0.0.1:24004/patroni","state":"running","role":"replica","version":"3.0.2","xlog_location":50331000,"timeline":2}"#;
    // Patroni 4.1 adds replication_state, receive_lsn and replay_lsn.
    const NODE3: &str = r#"{"conn_url":"postgres://[::1]/postgres","api_url":"http://[::1]:8008/patroni","state":"running","role":"replica","version":"4.1.5","xlog_location":50331968,"replication_state":"streaming","receive_lsn":50331968,"replay_lsn":50331900,"timeline":2,"tags":{"nofailover":true}}"#;

    #[test]
    fn the_view_is_what_patroni_cluster_would_say() {
        let k = keyspace(&[
            ("leader", "node1"),
            ("members/node1", NODE1),
            ("members/node2", NODE2),
            ("members/node3", NODE3),
            ("status", r#"{"optime":50331968,"slots":{}}"#),
            ("sync", r#"{"leader":"node1","sync_standby":"node2"}"#),
            ("config", r#"{"ttl":10,"synchronous_mode":true}"#),
            ("initialize", "7300000000000000000"),
        ]);
        let view = k.view("demo").expect("view");
        assert_eq!(view.scope.as_deref(), Some("demo"));
        let leader = view.leader().expect("leader");
        assert_eq!(
            (leader.name.as_str(), leader.host.as_deref(), leader.port),
            ("node1", Some("127.0.0.1"), Some(24001))
        );
        assert_eq!(leader.timeline, Some(2));
        assert_eq!(leader.lag, None);
        let node2 = view.member("node2").expect("node2");
        assert_eq!(node2.role, Role::SyncStandby);
        assert_eq!(node2.lag, Some(968));
        assert_eq!(node2.api_url.as_deref(), Some("http://127.0.0.1:24004/patroni"));
        let node3 = view.member("node3").expect("node3");
        assert_eq!(node3.role, Role::Replica);
        assert_eq!(node3.state, State::Streaming);
        assert_eq!((node3.host.as_deref(), node3.port), (Some("::1"), Some(5432)));
        assert_eq!(node3.replay_lag, Some(68));
        assert_eq!(node3.replay_lsn, Some(Lsn(50331900)));
        assert!(node3.tags.nofailover);
    }

    #[test]
    fn without_a_leader_key_nobody_leads_and_sync_needs_synchronous_mode() {
        let k = keyspace(&[
            ("members/node1", NODE1),
            ("members/node2", NODE2),
            ("sync", r#"{"leader":"node1","sync_standby":"node2"}"#),
        ]);
        let view = k.view("demo").expect("view");
        assert!(
            view.leader().is_none(),
            "a member's own role key is not the leader lock"
        );
        assert!(view.members.iter().all(|m| m.role == Role::Replica));
        // Without a status key the lag is measured against 0, as Patroni does.
        assert_eq!(view.member("node1").and_then(|m| m.lag), Some(0));
    }

    #[test]
    fn pause_scheduled_switchover_standby_cluster_and_history() {
        let k = keyspace(&[
            ("leader", "node1"),
            ("members/node1", NODE1),
            ("config", r#"{"pause":true,"standby_cluster":{"host":"10.0.0.9"}}"#),
            (
                "failover",
                r#"{"leader":"node1","member":"node2","scheduled_at":"2026-12-01T10:00:00+00:00"}"#,
            ),
            (
                "history",
                r#"[[1,25165984,"no recovery target specified","2026-12-01T05:00:00+00:00","node1"]]"#,
            ),
        ]);
        let view = k.view("demo").expect("view");
        assert!(view.pause);
        assert_eq!(view.members[0].role, Role::StandbyLeader);
        let s = view.scheduled_switchover.expect("scheduled");
        assert_eq!((s.from.as_deref(), s.to.as_deref()), (Some("node1"), Some("node2")));
        let history = k.history().expect("history");
        assert_eq!((history[0].timeline, history[0].switch_lsn), (1, 25165984));
        // A used failover key is `{}`: nothing scheduled.
        let used = keyspace(&[("failover", "{}")]);
        assert!(used.view("demo").expect("view").scheduled_switchover.is_none());
    }

    #[test]
    fn hostile_values_are_skipped_never_a_panic() {
        let k = keyspace(&[
            ("leader", "\u{0}"),
            ("members/bad", "not json"),
            ("members/array", "[1,2]"),
            ("members/", "{}"),
            ("members/x/y", NODE1),
            (
                "members/noconn",
                r#"{"state":"running","conn_url":"::::","xlog_location":-5}"#,
            ),
            ("status", r#"{"optime":"lots"}"#),
            ("config", "[]"),
            ("sync", r#"{"sync_standby":7}"#),
            ("failover", r#"{"scheduled_at":5}"#),
            ("history", r#"{"no":"list"}"#),
        ]);
        let view = k.view("demo").expect("a view, even of garbage");
        assert_eq!(view.members.len(), 1);
        assert_eq!(view.members[0].name, "noconn");
        assert_eq!(view.members[0].host, None);
        assert!(k.history().is_none());
    }
}
