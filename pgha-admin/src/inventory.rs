//! What runs where: every member's Patroni and PostgreSQL versions, the replication tree, a
//! connection string for a member or a role, and SQL run on one (`patronictl version`,
//! `topology`, `dsn` and `query`).

use std::collections::BTreeSet;

use pgha_client::patroni::{ClusterView, Member, NodeStatus, Role};
use pgha_client::reqwest::Method;
use serde::Serialize;

use crate::admin::Admin;
use crate::restart::RoleFilter;
use crate::{Error, Result};

/// One member's versions, from its own REST API (`GET /patroni`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MemberVersion {
    /// The member.
    pub member: String,
    /// Its Patroni version.
    pub patroni: Option<String>,
    /// Its PostgreSQL version (`15.4`), from `server_version_num`.
    pub postgresql: Option<String>,
    /// Why it could not be asked, if it could not.
    pub error: Option<String>,
}

/// `server_version_num` as PostgreSQL writes its version: `150004` → `15.4`, `90624` → `9.6.24`.
///
/// ```
/// assert_eq!(pgha_admin::postgres_version(150004), "15.4");
/// assert_eq!(pgha_admin::postgres_version(90624), "9.6.24");
/// ```
pub fn postgres_version(num: u32) -> String {
    if num >= 100_000 {
        format!("{}.{}", num / 10_000, num % 10_000)
    } else {
        format!("{}.{}.{}", num / 10_000, num / 100 % 100, num % 100)
    }
}

impl Admin {
    /// Every member's Patroni and PostgreSQL versions, each asked on its own REST API; a member
    /// that does not answer is listed with the reason.
    pub async fn versions(&self) -> Result<Vec<MemberVersion>> {
        let (_, view) = self.cluster_view().await?;
        let mut out = Vec::new();
        for m in &view.members {
            out.push(match self.node_status(m).await {
                Ok(node) => MemberVersion {
                    member: m.name.clone(),
                    patroni: node.patroni.version,
                    postgresql: node.server_version.map(postgres_version),
                    error: None,
                },
                Err(error) => MemberVersion {
                    member: m.name.clone(),
                    patroni: None,
                    postgresql: None,
                    error: Some(error),
                },
            });
        }
        Ok(out)
    }

    /// A member's own status (`GET /patroni` on its REST API), or why there is none.
    pub(crate) async fn node_status(&self, member: &Member) -> std::result::Result<NodeStatus, String> {
        match self.call_member(member, Method::GET, "/patroni", None).await {
            Ok(reply) if reply.status == 200 => {
                NodeStatus::from_json(&reply.body).map_err(|e| format!("GET /patroni: {e}"))
            }
            Ok(reply) => Err(format!("GET /patroni answered {}", reply.status)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// `member`, or a member of `role` (the leader; a running replica, the least lagging
    /// first), or the leader when neither is given.
    fn choose<'v>(view: &'v ClusterView, member: Option<&str>, role: Option<RoleFilter>) -> Result<&'v Member> {
        match (member, role) {
            (Some(name), _) => Self::find_member(view, name),
            (None, Some(RoleFilter::Replica)) => view
                .members
                .iter()
                .filter(|m| m.role != Role::Leader && m.state.is_up())
                .min_by_key(|m| m.lag.unwrap_or(u64::MAX))
                .ok_or_else(|| Error::not_found("no running replica")),
            (None, _) => Self::require_leader(view),
        }
    }

    /// The replication tree (`patronictl topology`): the leader first, each member under the
    /// one it replicates from (its `replicatefrom` tag, else the leader), depth first, names in
    /// order; members the tree does not reach (no leader, a `replicatefrom` loop) come last.
    pub async fn topology(&self) -> Result<Vec<TopologyNode>> {
        let (_, view) = self.cluster_view().await?;
        Ok(replication_tree(&view))
    }

    /// Runs `sql` (one or more statements) on `member`, or on a member of `role`, or on the
    /// leader (`patronictl query`), in a read-only session unless `write`; returns every row of
    /// every statement, each value as PostgreSQL prints it. The read-only session keeps a slip
    /// from writing; it is no sandbox (`SET default_transaction_read_only = off` in `sql` lifts
    /// it, and functions such as `pg_terminate_backend` run in it).
    pub async fn query(
        &self,
        sql: &str,
        member: Option<&str>,
        role: Option<RoleFilter>,
        write: bool,
        dbname: Option<&str>,
    ) -> Result<QueryResult> {
        let (_, view) = self.cluster_view().await?;
        let chosen = Self::choose(&view, member, role)?;
        let db = self.sql(chosen, dbname).await?;
        let failed = |e| Error::db(format!("on {}", chosen.name), e);
        if !write {
            db.batch_execute("SET default_transaction_read_only = on")
                .await
                .map_err(failed)?;
        }
        let mut rows = Vec::new();
        let mut commands = Vec::new();
        for message in db.simple_query(sql).await.map_err(failed)? {
            match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    let mut values = serde_json::Map::new();
                    for (i, column) in row.columns().iter().enumerate() {
                        let value = row.get(i).map_or(serde_json::Value::Null, |v| v.into());
                        // A name seen before in this row (`SELECT a.id, b.id`) gets a suffix.
                        let mut name = column.name().to_owned();
                        let mut n = 1;
                        while values.contains_key(&name) {
                            n += 1;
                            name = format!("{}_{n}", column.name());
                        }
                        values.insert(name, value);
                    }
                    rows.push(serde_json::Value::Object(values));
                }
                tokio_postgres::SimpleQueryMessage::CommandComplete(n) => commands.push(n),
                _ => {}
            }
        }
        Ok(QueryResult {
            member: chosen.name.clone(),
            rows,
            rows_affected: commands,
        })
    }

    /// A libpq connection string (`host=… port=…`) for `member`, or for a member of `role`
    /// (the leader; a running replica, the least lagging first), or for the leader when neither
    /// is given. It holds no credentials.
    pub async fn dsn(&self, member: Option<&str>, role: Option<RoleFilter>) -> Result<String> {
        let (_, view) = self.cluster_view().await?;
        let chosen = Self::choose(&view, member, role)?;
        let host = chosen
            .host
            .as_deref()
            .ok_or_else(|| Error::not_found(format!("member {} has published no address", chosen.name)))?;
        let mut dsn = format!("host={host}");
        if let Some(port) = chosen.port {
            dsn.push_str(&format!(" port={port}"));
        }
        Ok(dsn)
    }
}

/// One member in the replication tree ([`Admin::topology`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TopologyNode {
    /// 0 for the leader, 1 for a member that replicates from it, and so on.
    pub depth: usize,
    /// The member it replicates from (`None` for the leader, and for a member of a cluster
    /// without one).
    pub upstream: Option<String>,
    /// The member, as `/cluster` has it.
    #[serde(flatten)]
    pub member: Member,
}

/// The rows of [`Admin::query`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct QueryResult {
    /// Where it ran.
    pub member: String,
    /// Every row of every statement: column name → value as text (`null` for NULL); a column
    /// name repeated in a row gets `_2`, `_3`….
    pub rows: Vec<serde_json::Value>,
    /// Rows each statement affected or returned, in order.
    pub rows_affected: Vec<u64>,
}

/// The member `m` replicates from: the member its `replicatefrom` tag names, else the leader.
fn upstream_of<'v>(view: &'v ClusterView, m: &Member) -> Option<&'v str> {
    if matches!(m.role, Role::Leader | Role::StandbyLeader) {
        return None;
    }
    let tagged = m.tags.other.get("replicatefrom").and_then(|v| v.as_str());
    match tagged.and_then(|t| view.member(t)).filter(|t| t.name != m.name) {
        Some(t) => Some(t.name.as_str()),
        None => view.leader().map(|l| l.name.as_str()),
    }
}

/// The replication tree of `view`, depth first (see [`Admin::topology`]).
pub(crate) fn replication_tree(view: &ClusterView) -> Vec<TopologyNode> {
    let mut names: Vec<&Member> = view.members.iter().collect();
    names.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::new();
    let mut placed = BTreeSet::new();
    // Depth first from each root, with an explicit stack (children pushed in reverse order).
    let mut stack: Vec<(&Member, usize)> = names
        .iter()
        .rev()
        .filter(|m| upstream_of(view, m).is_none())
        .map(|m| (*m, 0))
        .collect();
    loop {
        while let Some((m, depth)) = stack.pop() {
            if !placed.insert(m.name.clone()) {
                continue;
            }
            out.push(TopologyNode {
                depth,
                upstream: upstream_of(view, m).map(str::to_owned),
                member: m.clone(),
            });
            for child in names.iter().rev() {
                if upstream_of(view, child) == Some(m.name.as_str()) && !placed.contains(&child.name) {
                    stack.push((child, depth + 1));
                }
            }
        }
        // What no root reached (a replicatefrom loop): start again from the first of it.
        match names.iter().find(|m| !placed.contains(&m.name)) {
            Some(m) => stack.push((m, 0)),
            None => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(json: &str) -> Vec<(usize, String, Option<String>)> {
        let view = ClusterView::from_json(json.as_bytes()).expect("fixture");
        replication_tree(&view)
            .into_iter()
            .map(|n| (n.depth, n.member.name, n.upstream))
            .collect()
    }

    #[test]
    fn the_tree_follows_replicatefrom_and_survives_loops() {
        let cascading = tree(
            r#"{"members": [
            {"name": "c", "role": "replica", "state": "streaming", "tags": {"replicatefrom": "b"}},
            {"name": "b", "role": "replica", "state": "streaming"},
            {"name": "d", "role": "replica", "state": "streaming", "tags": {"replicatefrom": "nobody"}},
            {"name": "a", "role": "leader", "state": "running"}]}"#,
        );
        let s = |x: &str| Some(x.to_owned());
        assert_eq!(
            cascading,
            [
                (0, "a".to_owned(), None),
                (1, "b".to_owned(), s("a")),
                (2, "c".to_owned(), s("b")),
                (1, "d".to_owned(), s("a")),
            ]
        );
        // No leader, and two members naming each other: everyone is listed once.
        let looped = tree(
            r#"{"members": [
            {"name": "x", "role": "replica", "state": "running", "tags": {"replicatefrom": "y"}},
            {"name": "y", "role": "replica", "state": "running", "tags": {"replicatefrom": "x"}},
            {"name": "z", "role": "replica", "state": "running"}]}"#,
        );
        let names: Vec<&str> = looped.iter().map(|(_, n, _)| n.as_str()).collect();
        assert_eq!(names, ["z", "x", "y"], "{looped:?}");
        assert_eq!(looped[1], (0, "x".to_owned(), s("y")));
        assert_eq!(looped[2], (1, "y".to_owned(), s("x")));
    }
}
