//! Serde models of `/cluster`, `/patroni` (and every health-check body) and `/history`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Patroni document could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed Patroni {document} document: {message}")]
pub struct ParseError {
    document: &'static str,
    message: String,
}

impl ParseError {
    /// Which document failed (`/cluster`, `/patroni`, `/history`, or `LSN`).
    pub fn document(&self) -> &'static str {
        self.document
    }
}

fn parse<T: for<'de> Deserialize<'de>>(document: &'static str, bytes: &[u8]) -> Result<T, ParseError> {
    serde_json::from_slice(bytes).map_err(|e| ParseError {
        document,
        message: e.to_string(),
    })
}

/// A WAL position (`pg_lsn`), printed by PostgreSQL and Patroni as `X/Y` in hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "String")]
pub struct Lsn(pub u64);

impl FromStr for Lsn {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError {
            document: "LSN",
            message: format!("{s:?} is not of the form X/Y (hex)"),
        };
        let (hi, lo) = s.split_once('/').ok_or_else(err)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| err())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| err())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl From<Lsn> for String {
    fn from(lsn: Lsn) -> Self {
        lsn.to_string()
    }
}

/// `"X/Y"` → `Some(Lsn)`; `"unknown"`, null or absent → `None`; anything else is an error.
fn opt_lsn<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Lsn>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "unknown" => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(de::Error::custom),
        Some(other) => Err(de::Error::custom(format!("expected an LSN string, got {other}"))),
    }
}

/// A byte count that Patroni may also report as `"unknown"` (→ `None`).
fn opt_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            // Patroni clamps lag at 0, but a float or a negative number must not panic or wrap.
            Ok(n.as_u64()
                .or_else(|| n.as_f64().filter(|f| *f >= 0.0 && f.is_finite()).map(|f| f as u64)))
        }
        Some(Value::String(s)) if s == "unknown" => Ok(None),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("bad byte count {s:?}"))),
        Some(other) => Err(de::Error::custom(format!("expected bytes or \"unknown\", got {other}"))),
    }
}

/// A port as a number or a numeric string.
fn opt_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("port {n} out of range"))),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("bad port {s:?}"))),
        Some(other) => Err(de::Error::custom(format!("expected a port, got {other}"))),
    }
}

/// `true`/`false`, also accepting Patroni's occasional strings (`"true"`) and absence (false).
fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Bool(b)) => b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("on"),
        _ => false,
    })
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this version of pgha does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The string Patroni uses.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($text => Self::$variant,)+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Self::from(String::deserialize(d)?.as_str()))
            }
        }
    };
}

string_enum! {
    /// A member's role in `/cluster` (3.x and 4.x), or a node's role in `/patroni`.
    ///
    /// `/cluster` never says `master`/`primary`: the primary is `leader`. `/patroni` says `master`
    /// on 3.x and `primary` on 4.x; both map to [`Role::Primary`].
    Role {
        /// Holds the leader lock (`/cluster`).
        Leader = "leader",
        /// A running primary as `/patroni` reports it (4.x; 3.x `master` also maps here).
        Primary = "primary",
        /// Leader of a standby cluster.
        StandbyLeader = "standby_leader",
        /// A synchronous standby (`synchronous_mode: on`).
        SyncStandby = "sync_standby",
        /// A quorum standby (`synchronous_mode: quorum`, 4.0+).
        QuorumStandby = "quorum_standby",
        /// An asynchronous replica.
        Replica = "replica",
        /// A node not yet initialized (`/patroni` while Postgres is down).
        Uninitialized = "uninitialized",
        /// Demoted (`/patroni`, transient).
        Demoted = "demoted",
        /// Promoted (`/patroni`, transient).
        Promoted = "promoted"
    }
}

impl Role {
    /// `master` (3.x) is the same role as `primary` (4.x).
    fn normalize(self) -> Self {
        match self {
            Self::Other(s) if s == "master" => Self::Primary,
            other => other,
        }
    }

    /// A replica of any kind (async, sync or quorum standby).
    pub fn is_standby(&self) -> bool {
        matches!(self, Self::Replica | Self::SyncStandby | Self::QuorumStandby)
    }
}

string_enum! {
    /// A member's PostgreSQL state. Since Patroni 3.0.4, replicas that are up report their
    /// replication state (`streaming`, `in archive recovery`) instead of `running`.
    State {
        /// Up (primary, or a replica on Patroni before 3.0.4, or neither streaming nor archive recovery).
        Running = "running",
        /// Replica with a streaming WAL receiver (3.0.4+).
        Streaming = "streaming",
        /// Replica replaying from the archive (3.0.4+).
        InArchiveRecovery = "in archive recovery",
        /// Starting.
        Starting = "starting",
        /// Stopped.
        Stopped = "stopped",
        /// Stopping.
        Stopping = "stopping",
        /// Restarting.
        Restarting = "restarting",
        /// Being cloned from another member.
        CreatingReplica = "creating replica",
        /// Crashed.
        Crashed = "crashed",
        /// Failed to start.
        StartFailed = "start failed",
        /// Failed to restart.
        RestartFailed = "restart failed",
        /// Bootstrapping a new cluster.
        InitializingNewCluster = "initializing new cluster",
        /// `/patroni` only: running, but the status query failed.
        Unknown = "unknown"
    }
}

impl State {
    /// Up and able to serve queries (running, streaming, or in archive recovery).
    pub fn is_up(&self) -> bool {
        matches!(self, Self::Running | Self::Streaming | Self::InArchiveRecovery)
    }
}

/// Member tags (`nofailover`, `noloadbalance`, …); unknown tags are kept in `other`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Tags {
    /// Never promote this member.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub nofailover: bool,
    /// Keep read traffic away from this member.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub noloadbalance: bool,
    /// Never make this member a synchronous standby.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub nosync: bool,
    /// Preferred source for cloning replicas.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub clonefrom: bool,
    /// Does not stream (archive-only replica).
    #[serde(default, deserialize_with = "lenient_bool")]
    pub nostream: bool,
    /// Failover priority (3.2+).
    #[serde(default)]
    pub failover_priority: Option<i64>,
    /// Any other tag.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// One member in `GET /cluster`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Member {
    /// Member name.
    pub name: String,
    /// Role; the primary is [`Role::Leader`].
    pub role: Role,
    /// PostgreSQL (or replication) state.
    pub state: State,
    /// REST API URL of this member (ends in `/patroni`).
    #[serde(default)]
    pub api_url: Option<String>,
    /// PostgreSQL host, when known.
    #[serde(default)]
    pub host: Option<String>,
    /// PostgreSQL port, when known.
    #[serde(default, deserialize_with = "opt_port")]
    pub port: Option<u16>,
    /// Timeline, when known.
    #[serde(default)]
    pub timeline: Option<u64>,
    /// Bytes behind the leader's last reported position (≈ receive lag; up to `loop_wait` stale);
    /// `None` for the leader or when Patroni says `"unknown"`. It does **not** grow when only
    /// replay is stuck: use [`replay_lag`](Self::replay_lag) (4.1+) or measure with SQL.
    #[serde(default, deserialize_with = "opt_bytes")]
    pub lag: Option<u64>,
    /// Receive lag in bytes (4.1+).
    #[serde(default, deserialize_with = "opt_bytes")]
    pub receive_lag: Option<u64>,
    /// Replay lag in bytes (4.1+).
    #[serde(default, deserialize_with = "opt_bytes")]
    pub replay_lag: Option<u64>,
    /// Last received WAL position (4.1+).
    #[serde(default, deserialize_with = "opt_lsn")]
    pub receive_lsn: Option<Lsn>,
    /// Last replayed WAL position (4.1+).
    #[serde(default, deserialize_with = "opt_lsn")]
    pub replay_lsn: Option<Lsn>,
    /// The member's reported WAL position (4.1+).
    #[serde(default, deserialize_with = "opt_lsn")]
    pub lsn: Option<Lsn>,
    /// A parameter change waits for a restart.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub pending_restart: bool,
    /// Tags.
    #[serde(default)]
    pub tags: Tags,
}

/// A scheduled switchover in `/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScheduledSwitchover {
    /// When (ISO 8601 with time zone).
    pub at: String,
    /// From this member.
    #[serde(default)]
    pub from: Option<String>,
    /// To this member.
    #[serde(default)]
    pub to: Option<String>,
}

/// `GET /cluster`: the DCS view of the cluster, answered by any member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClusterView {
    /// Members, sorted by name.
    pub members: Vec<Member>,
    /// Maintenance mode (`patronictl pause`).
    #[serde(default, deserialize_with = "lenient_bool")]
    pub pause: bool,
    /// A scheduled switchover, if any.
    #[serde(default)]
    pub scheduled_switchover: Option<ScheduledSwitchover>,
    /// The cluster scope (3.2+; absent on 3.0.x).
    #[serde(default)]
    pub scope: Option<String>,
}

impl ClusterView {
    /// Parses a `/cluster` body.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ParseError> {
        parse("/cluster", bytes)
    }

    /// The member holding the leader lock (`leader`, or `standby_leader` in a standby cluster).
    ///
    /// If a (broken) document lists several, the one on the highest timeline wins.
    pub fn leader(&self) -> Option<&Member> {
        self.members
            .iter()
            .filter(|m| matches!(m.role, Role::Leader | Role::StandbyLeader))
            .max_by_key(|m| m.timeline.unwrap_or(0))
    }

    /// Looks a member up by name.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }
}

/// The `xlog` object of `/patroni`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeXlog {
    /// Primary: current WAL position (bytes).
    #[serde(default)]
    pub location: Option<u64>,
    /// Replica: last received position (bytes).
    #[serde(default)]
    pub received_location: Option<u64>,
    /// Replica: last replayed position (bytes).
    #[serde(default)]
    pub replayed_location: Option<u64>,
    /// Replica: commit time of the last replayed transaction (primary clock), if any.
    #[serde(default)]
    pub replayed_timestamp: Option<String>,
    /// Replica: replay paused with `pg_wal_replay_pause()`.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub paused: bool,
}

/// The `patroni` object of `/patroni`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PatroniInfo {
    /// Patroni version, e.g. `3.0.2`.
    #[serde(default)]
    pub version: Option<String>,
    /// Scope.
    #[serde(default)]
    pub scope: Option<String>,
    /// Member name (3.2+).
    #[serde(default)]
    pub name: Option<String>,
}

/// `GET /patroni` — also the body of every `GET` health check (`/primary`, `/replica`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NodeStatus {
    /// PostgreSQL state.
    pub state: State,
    /// Role: [`Role::Primary`] for a running primary (3.x `master`, 4.x `primary`).
    #[serde(deserialize_with = "role_normalized")]
    pub role: Role,
    /// `server_version_num`, e.g. 150020.
    #[serde(default)]
    pub server_version: Option<u32>,
    /// WAL positions.
    #[serde(default)]
    pub xlog: NodeXlog,
    /// Timeline.
    #[serde(default)]
    pub timeline: Option<u64>,
    /// `streaming` / `in archive recovery` (3.0.4+, replicas).
    #[serde(default)]
    pub replication_state: Option<String>,
    /// No leader key, or no DCS view.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub cluster_unlocked: bool,
    /// Maintenance mode.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub pause: bool,
    /// Last contact with the DCS (epoch seconds).
    #[serde(default)]
    pub dcs_last_seen: Option<u64>,
    /// `pg_control` system identifier (as a string: it exceeds 2^53).
    #[serde(default)]
    pub database_system_identifier: Option<String>,
    /// A parameter change waits for a restart.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub pending_restart: bool,
    /// Patroni's own version, scope and name.
    #[serde(default)]
    pub patroni: PatroniInfo,
    /// Tags.
    #[serde(default)]
    pub tags: Tags,
}

fn role_normalized<'de, D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
    Role::deserialize(d).map(Role::normalize)
}

impl NodeStatus {
    /// Parses a `/patroni` (or health-check) body.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ParseError> {
        parse("/patroni", bytes)
    }
}

/// One timeline switch in `GET /history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HistoryEntry {
    /// The timeline that ended.
    pub timeline: u64,
    /// WAL position (bytes) where it ended.
    pub switch_lsn: u64,
    /// PostgreSQL's reason text.
    pub reason: String,
    /// When (ISO 8601), absent on old entries.
    pub timestamp: Option<String>,
    /// The new leader, absent on old entries.
    pub new_leader: Option<String>,
}

impl<'de> Deserialize<'de> for HistoryEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<Value>::deserialize(d)?;
        let num = |i: usize| items.get(i).and_then(Value::as_u64);
        let text = |i: usize| items.get(i).and_then(Value::as_str).map(str::to_owned);
        Ok(Self {
            timeline: num(0).ok_or_else(|| de::Error::custom("history entry without a timeline"))?,
            switch_lsn: num(1).ok_or_else(|| de::Error::custom("history entry without a switch LSN"))?,
            reason: text(2).unwrap_or_default(),
            timestamp: text(3),
            new_leader: text(4),
        })
    }
}

impl HistoryEntry {
    /// Parses a `/history` body.
    pub fn list_from_json(bytes: &[u8]) -> Result<Vec<Self>, ParseError> {
        parse("/history", bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trips_and_rejects_garbage() {
        let lsn: Lsn = "0/49B9860".parse().expect("lsn");
        assert_eq!(lsn.0, 0x49B9860);
        assert_eq!(lsn.to_string(), "0/49B9860");
        let big: Lsn = "1A/FF".parse().expect("lsn");
        assert_eq!(big.0, (0x1A << 32) | 0xFF);
        for bad in ["", "12", "x/1", "1/", "/1", "1/2/3", "100000000/0"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn lag_accepts_numbers_unknown_and_rejects_objects() {
        let m = |lag: &str| {
            ClusterView::from_json(
                format!(r#"{{"members":[{{"name":"a","role":"replica","state":"running","lag":{lag}}}]}}"#).as_bytes(),
            )
        };
        assert_eq!(m("17").expect("number").members[0].lag, Some(17));
        assert_eq!(m("\"unknown\"").expect("unknown").members[0].lag, None);
        assert_eq!(m("null").expect("null").members[0].lag, None);
        assert_eq!(m("-5").expect("negative").members[0].lag, None);
        assert!(m("{}").is_err());
    }

    #[test]
    fn unknown_roles_and_states_are_kept() {
        let v = ClusterView::from_json(br#"{"members":[{"name":"a","role":"witness","state":"dreaming"}]}"#)
            .expect("parses");
        assert_eq!(v.members[0].role, Role::Other("witness".into()));
        assert_eq!(v.members[0].state.as_str(), "dreaming");
        assert!(v.leader().is_none());
    }

    #[test]
    fn malformed_documents_are_typed_errors() {
        for bad in [
            &b""[..],
            b"[]",
            b"{}",
            b"{\"members\": 3}",
            b"{\"members\":[{\"name\":1}]}",
            b"\xff",
        ] {
            let err = ClusterView::from_json(bad).expect_err("must fail");
            assert_eq!(err.document(), "/cluster");
        }
        let err =
            ClusterView::from_json(br#"{"members":[{"name":"a","role":"leader","state":"running","port":70000}]}"#)
                .expect_err("port out of range");
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn master_and_primary_are_the_same_role() {
        for role in ["master", "primary"] {
            let s = NodeStatus::from_json(format!(r#"{{"state":"running","role":"{role}"}}"#).as_bytes()).expect("ok");
            assert_eq!(s.role, Role::Primary);
        }
    }
}
