//! What runs where: every member's Patroni and PostgreSQL versions, and a connection string for
//! a member or a role (`patronictl version` and `patronictl dsn`).

use pgha_client::patroni::{Member, NodeStatus, Role};
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

    /// A libpq connection string (`host=… port=…`) for `member`, or for a member of `role`
    /// (the leader; a running replica, the least lagging first), or for the leader when neither
    /// is given. It holds no credentials.
    pub async fn dsn(&self, member: Option<&str>, role: Option<RoleFilter>) -> Result<String> {
        let (_, view) = self.cluster_view().await?;
        let chosen: &Member = match (member, role) {
            (Some(name), _) => Self::find_member(&view, name)?,
            (None, Some(RoleFilter::Replica)) => view
                .members
                .iter()
                .filter(|m| m.role != Role::Leader && m.state.is_up())
                .min_by_key(|m| m.lag.unwrap_or(u64::MAX))
                .ok_or_else(|| Error::not_found("no running replica"))?,
            (None, _) => Self::require_leader(&view)?,
        };
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
