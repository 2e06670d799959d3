//! The [`Admin`] handle: where the cluster is, how to reach it, and the plumbing every operation
//! shares (endpoint fallback, member lookup, SQL to a named member, progress).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgha_client::patroni::{ClusterView, Member, Reply, Role};
use pgha_client::reqwest::Method;
use pgha_client::{ClientBuilder, ClientConfig, Connector};
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::progress::{Progress, Sink};
use crate::rest;

/// How long the leader's REST API has to answer before an unsafe call goes elsewhere first.
const LEADER_PROBE: Duration = Duration::from_secs(2);

/// A handle on one Patroni cluster for administrative operations.
///
/// Built from the same configuration as a [`pgha_client::Client`] (Patroni URLs and basic auth,
/// HTTPS CA, database credentials and TLS); the database role should be a superuser or hold the
/// privileges each operation needs (`pg_monitor` for reports, `pg_checkpoint` for checkpoints…).
/// Every call is independent and bounded: Patroni requests by the Patroni timeout, connections
/// by the connect timeout, waits by [`wait_timeout`](Self::wait_timeout).
///
/// ```no_run
/// # async fn demo() -> pgha_admin::Result<()> {
/// use pgha_admin::Admin;
///
/// let admin = Admin::new(
///     pgha_client::Client::builder()
///         .patroni(["http://10.0.0.1:8008", "http://10.0.0.2:8008"])
///         .patroni_auth("patroni", "secret")
///         .user("postgres").password("secret").dbname("postgres"),
/// )?
/// .on_progress(|p| eprintln!("{p}"));
///
/// let status = admin.status().await?;
/// println!("leader: {:?}", status.leader);
/// let health = admin.check(&Default::default()).await;
/// std::process::exit(health.exit_code());
/// # }
/// ```
#[derive(Clone)]
pub struct Admin {
    connector: Connector,
    learned: Arc<Mutex<Vec<String>>>,
    /// The endpoint whose `/cluster` answered last: asked first next time, so that a member
    /// that stopped answering (a frozen host accepts connections, then never replies) costs one
    /// timeout, not one per request.
    answered: Arc<Mutex<Option<String>>>,
    progress: Option<Sink>,
    wait_timeout: Duration,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("connector", &self.connector)
            .field("wait_timeout", &self.wait_timeout)
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// An admin handle from a client builder's configuration. Nothing is contacted yet.
    pub fn new(builder: ClientBuilder) -> Result<Self> {
        Ok(Self {
            connector: builder.connector()?,
            learned: Arc::default(),
            answered: Arc::default(),
            progress: None,
            wait_timeout: Duration::from_secs(120),
        })
    }

    /// An admin handle from the serde configuration (TOML/JSON file, environment).
    pub fn from_config(config: ClientConfig) -> Result<Self> {
        Self::new(config.into_builder())
    }

    /// Calls `f` for every progress step of long operations.
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// How long operations wait for the cluster to converge (a new leader writable, a replica
    /// streaming again…) before giving up with a [timeout](ErrorKind::Timeout) (default 120 s).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    pub(crate) fn wait_limit(&self) -> Duration {
        self.wait_timeout
    }

    pub(crate) fn connector(&self) -> &Connector {
        &self.connector
    }

    pub(crate) fn report(&self, operation: &'static str, message: impl Into<String>, step: Option<(u32, u32)>) {
        let progress = Progress {
            operation,
            message: message.into(),
            step: step.map(|s| s.0),
            steps: step.map(|s| s.1),
        };
        tracing::info!(operation, "{}", progress.message);
        if let Some(sink) = &self.progress {
            sink(&progress);
        }
    }

    /// The endpoint that answered last, then the configured ones, then the ones learned from
    /// `/cluster`.
    pub(crate) fn endpoints(&self) -> Vec<String> {
        let answered = self.answered.lock().ok().and_then(|a| a.clone());
        let learned = self.learned.lock().map(|l| l.clone()).unwrap_or_default();
        let mut all: Vec<String> = Vec::new();
        for url in answered.into_iter().chain(self.connector.patroni_urls()).chain(learned) {
            if !all.contains(&url) {
                all.push(url);
            }
        }
        all
    }

    /// `GET /cluster` from the first endpoint that answers; remembers the members' endpoints.
    pub(crate) async fn cluster_view(&self) -> Result<(String, ClusterView)> {
        let (base, reply) = rest::get_any(&self.connector, &self.endpoints(), "/cluster").await?;
        let view = ClusterView::from_json(&reply.body)
            .map_err(|e| Error::protocol(format!("GET {base}/cluster")).with_source(e))?;
        let leaders: Vec<&str> = view
            .members
            .iter()
            .filter(|m| matches!(m.role, Role::Leader | Role::StandbyLeader))
            .map(|m| m.name.as_str())
            .collect();
        if leaders.len() > 1 {
            // A real Patroni never says this; acting on it could demote the wrong node.
            return Err(Error::protocol(format!(
                "GET {base}/cluster names {} leaders at once ({}): refusing to act on it",
                leaders.len(),
                leaders.join(", ")
            )));
        }
        let urls: Vec<String> = view
            .members
            .iter()
            .filter_map(|m| m.api_url.as_deref().and_then(rest::base_of))
            .collect();
        if let Ok(mut learned) = self.learned.lock() {
            *learned = urls;
        }
        if let Ok(mut answered) = self.answered.lock() {
            *answered = Some(base.clone());
        }
        Ok((base, view))
    }

    /// The member called `name`, or a [not found](ErrorKind::NotFound) error listing the members.
    pub(crate) fn find_member<'v>(view: &'v ClusterView, name: &str) -> Result<&'v Member> {
        view.member(name).ok_or_else(|| {
            let names: Vec<&str> = view.members.iter().map(|m| m.name.as_str()).collect();
            Error::not_found(format!(
                "no member {name:?} in the cluster (members: {})",
                names.join(", ")
            ))
        })
    }

    /// The current leader, or a [precondition](ErrorKind::Precondition) error.
    pub(crate) fn require_leader(view: &ClusterView) -> Result<&Member> {
        view.leader()
            .ok_or_else(|| Error::precondition("the cluster has no leader right now"))
    }

    /// A connection to `member`'s database (or `dbname`).
    pub(crate) async fn sql(&self, member: &Member, dbname: Option<&str>) -> Result<tokio_postgres::Client> {
        let (host, port) = match (&member.host, member.port) {
            (Some(h), Some(p)) => (h.as_str(), p),
            _ => {
                return Err(Error::new(
                    ErrorKind::Unreachable,
                    format!("member {} has published no PostgreSQL address", member.name),
                ))
            }
        };
        self.connector
            .connect(host, port, dbname)
            .await
            .map_err(|e| Error::from(e).prefixed(format!("member {}", member.name)))
    }

    /// A connection to the leader's database.
    pub(crate) async fn leader_sql(&self, dbname: Option<&str>) -> Result<(Member, tokio_postgres::Client)> {
        let (_, view) = self.cluster_view().await?;
        let leader = Self::require_leader(&view)?.clone();
        let client = self.sql(&leader, dbname).await?;
        Ok((leader, client))
    }

    /// A connection to the named member, or the leader when `member` is `None`.
    pub(crate) async fn member_sql(
        &self,
        member: Option<&str>,
        dbname: Option<&str>,
    ) -> Result<(Member, tokio_postgres::Client)> {
        match member {
            None => self.leader_sql(dbname).await,
            Some(name) => {
                let (_, view) = self.cluster_view().await?;
                let m = Self::find_member(&view, name)?.clone();
                let client = self.sql(&m, dbname).await?;
                Ok((m, client))
            }
        }
    }

    /// An unsafe call on one member's own REST API (restart, reinitialize, reload).
    pub(crate) async fn call_member(
        &self,
        member: &Member,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply> {
        let base = member.api_url.as_deref().and_then(rest::base_of).ok_or_else(|| {
            Error::new(
                ErrorKind::Unreachable,
                format!("member {} has published no usable REST API address", member.name),
            )
        })?;
        rest::request(&self.connector, method, &base, path, body)
            .await
            .map_err(|e| e.prefixed(format!("member {}", member.name)))
    }

    /// An unsafe call on any reachable endpoint (switchover, failover, config: Patroni writes
    /// them to the DCS, so any member can take them). Only an endpoint that could not be
    /// connected to is skipped; once a request may have been received, its answer (or its
    /// failure) is final — it is never sent twice. So the endpoint tried first matters: a host
    /// that is frozen accepts the connection and never answers. First comes the leader's API, as
    /// patronictl sends these, if it answers a `GET /patroni` within [`LEADER_PROBE`] (`/cluster`
    /// keeps naming a frozen leader until its key expires); else the endpoint whose `/cluster`
    /// answered just before.
    pub(crate) async fn call_any(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Reply> {
        let leader = match self.cluster_view().await {
            Ok((_, view)) => view.leader().and_then(|m| m.api_url.as_deref()).and_then(rest::base_of),
            Err(e) => {
                tracing::debug!("{method} {path}: no /cluster to find the leader's API by: {e}");
                None
            }
        };
        let mut endpoints = self.endpoints();
        if let Some(leader) = leader {
            let probe = self.connector.patroni_send(Method::GET, &leader, "/patroni", None);
            match tokio::time::timeout(LEADER_PROBE, probe).await {
                Ok(Ok(reply)) if reply.status == 200 => {
                    endpoints.retain(|b| rest::base_of(b).as_ref() != Some(&leader));
                    endpoints.insert(0, leader);
                }
                _ => {
                    tracing::debug!("{method} {path}: the leader's API {leader} does not answer; not sent there first")
                }
            }
        }
        let mut failures = Vec::new();
        for base in endpoints {
            match self.connector.patroni_send(method.clone(), &base, path, body).await {
                Ok(reply) => return Ok(reply),
                Err(f) if f.is_not_sent() => failures.push(rest::failure(&method, &base, path, f).to_string()),
                Err(f) => return Err(rest::failure(&method, &base, path, f)),
            }
        }
        Err(Error::new(
            ErrorKind::Unreachable,
            format!("{method} {path}: no Patroni endpoint answered: {}", failures.join("; ")),
        ))
    }
}

#[allow(dead_code)]
fn _assert_impls() {
    fn is<T: Send + Sync + Clone + 'static>() {}
    is::<Admin>();
}
