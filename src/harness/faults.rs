//! Faults and their injectors (local cluster, REST API), settling a cluster, its client builder.

use std::time::Duration;

use anyhow::{bail, Context};
use pgha_client::Client;

/// A fault a round can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 of the leader's Patroni and PostgreSQL (local clusters).
    KillLeader,
    /// A switchover through the Patroni REST API.
    Switchover,
    /// SIGSTOP of the leader's Patroni and PostgreSQL until a new leader is elected (local
    /// clusters); it is continued (SIGCONT) after the round.
    FreezeLeader,
    /// Nothing: someone else injects the fault; the round only measures for this long.
    None(Duration),
}

impl Fault {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::KillLeader => "kill-9-leader",
            Self::Switchover => "switchover",
            Self::FreezeLeader => "freeze-leader",
            Self::None(_) => "none",
        }
    }
}

/// Injects faults into a cluster and undoes them.
pub trait Injector {
    /// Injects `fault` against the current leader `leader`.
    fn inject(&self, fault: Fault, leader: &str) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
    /// Brings the cluster back to full strength after `fault` (for example restarts a killed node).
    fn recover(&self, fault: Fault, old_leader: &str) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
}

impl Injector for pgha_testkit::LocalCluster {
    async fn inject(&self, fault: Fault, leader: &str) -> anyhow::Result<()> {
        match fault {
            Fault::KillLeader => self.kill_node(leader)?,
            Fault::FreezeLeader => self.freeze_node(leader)?,
            Fault::Switchover => {
                self.switchover(None).await?;
            }
            Fault::None(_) => {}
        }
        Ok(())
    }

    async fn recover(&self, fault: Fault, old_leader: &str) -> anyhow::Result<()> {
        match fault {
            Fault::KillLeader => self.start_node(old_leader)?,
            Fault::FreezeLeader => self.thaw_node(old_leader)?,
            _ => {}
        }
        if matches!(fault, Fault::None(_)) {
            return Ok(());
        }
        settle(self).await.map(drop)
    }
}

/// Waits until the cluster is back to one leader and every replica streaming. A thawed leader
/// may even take the lock back (Patroni 3.0.2), so this waits for the whole cluster, not for one
/// member; Patroni 3.0.2 can also leave a member unable to follow (a diverged timeline pg_rewind
/// does not fix): those are re-cloned, as an operator would. Returns the members re-cloned.
pub async fn settle(cluster: &pgha_testkit::LocalCluster) -> anyhow::Result<Vec<String>> {
    let mut recloned = Vec::new();
    if let Err(e) = cluster.wait_ready(Duration::from_secs(90)).await {
        let leader = cluster.leader().await?;
        for member in cluster.member_names().into_iter().filter(|m| *m != leader) {
            if !cluster.is_streaming(&member).await.unwrap_or(false) {
                tracing::warn!(member, error = %e, "member does not stream: reinitializing it");
                cluster.reinitialize(&member).await?;
                recloned.push(member);
            }
        }
        cluster.wait_ready(Duration::from_secs(180)).await?;
    }
    Ok(recloned)
}

/// A client builder for a local cluster: its Patroni URLs and REST credentials, the application
/// role and database, TLS with the cluster's CA when it has one.
pub fn client_builder(cluster: &pgha_testkit::LocalCluster) -> pgha_client::ClientBuilder {
    let creds = cluster.credentials();
    let mut builder = Client::builder()
        .patroni(cluster.patroni_urls())
        .user(creds.app.username.clone())
        .password(creds.app.password.expose())
        .dbname(cluster.database());
    builder = match cluster.ca_file() {
        Some(ca) => builder
            .patroni_ca_file(&ca)
            .ssl_ca_file(&ca)
            .ssl_mode(pgha_client::SslMode::VerifyFull),
        None => builder.ssl_mode(pgha_client::SslMode::Disable),
    };
    if let Some(rest) = &creds.rest {
        builder = builder.patroni_auth(rest.username.clone(), rest.password.expose());
    }
    builder
}

/// How a pgha client learns the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Discovery {
    /// Polling the Patroni REST APIs.
    Rest,
    /// Watching Patroni's keys in etcd (the REST APIs as the fallback).
    Etcd,
}

impl std::str::FromStr for Discovery {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rest" => Ok(Self::Rest),
            "etcd" => Ok(Self::Etcd),
            other => Err(format!("unknown discovery {other:?} (rest or etcd)")),
        }
    }
}

/// [`client_builder`] with `discovery`.
pub fn client_builder_with(cluster: &pgha_testkit::LocalCluster, discovery: Discovery) -> pgha_client::ClientBuilder {
    let builder = client_builder(cluster);
    match discovery {
        Discovery::Rest => builder,
        Discovery::Etcd => builder
            .etcd(cluster.etcd_urls())
            .etcd_namespace(cluster.etcd_namespace())
            .patroni_scope(cluster.scope()),
    }
}

/// Faults on a cluster pgha did not start: only what the REST API allows, through pgha-admin.
#[derive(Debug)]
pub struct RestInjector {
    admin: pgha_admin::Admin,
}

impl RestInjector {
    /// Switchovers with pgha-admin on the cluster `builder` describes: its Patroni URLs and basic
    /// auth, and its database credentials (to see the new leader accept writes).
    pub fn new(builder: pgha_client::ClientBuilder) -> anyhow::Result<Self> {
        let admin = pgha_admin::Admin::new(builder)?.wait_timeout(Duration::from_secs(90));
        Ok(Self { admin })
    }
}

impl Injector for RestInjector {
    async fn inject(&self, fault: Fault, leader: &str) -> anyhow::Result<()> {
        match fault {
            Fault::Switchover => {
                // Pre-flight checks, `POST /switchover` naming the leader, then the wait until
                // the new leader accepts writes.
                let report = self
                    .admin
                    .switchover(&pgha_admin::SwitchoverRequest::new(None))
                    .await
                    .context("switchover")?;
                if report.plan.leader.as_deref() != Some(leader) {
                    tracing::warn!(
                        expected = leader,
                        switched_from = ?report.plan.leader,
                        "Patroni named another leader than the client did"
                    );
                }
                Ok(())
            }
            Fault::KillLeader | Fault::FreezeLeader => bail!("{} needs a local cluster (omit --patroni)", fault.name()),
            Fault::None(_) => Ok(()),
        }
    }

    async fn recover(&self, _fault: Fault, _old_leader: &str) -> anyhow::Result<()> {
        Ok(())
    }
}
