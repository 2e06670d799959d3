//! Where the benchmark runs: a local cluster or an existing one, and how to reach its members.

use std::time::Duration;

use anyhow::Context;
use pgha::client::{Client, LagBound};
use pgha::harness::{self, RestInjector};
use pgha::testkit::LocalCluster;

use crate::Args;

/// Where the database is and how to reach it.
pub(crate) struct Target {
    pub(crate) client: Client,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) db: String,
    pub(crate) haproxy: Option<((String, u16), (String, u16))>,
    pub(crate) cluster: Option<LocalCluster>,
    pub(crate) rest: Option<RestInjector>,
    pub(crate) description: String,
}

pub(crate) fn pg_config(target: &Target, host: &str, port: u16) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host(host)
        .port(port)
        .user(&target.user)
        .password(&target.password)
        .dbname(&target.db)
        .application_name("pgha-bench")
        .connect_timeout(Duration::from_secs(1));
    c
}

fn host_port(s: &str) -> anyhow::Result<(String, u16)> {
    let (h, p) = s.rsplit_once(':').context("expected host:port")?;
    Ok((h.to_owned(), p.parse()?))
}

pub(crate) async fn target(args: &Args) -> anyhow::Result<Target> {
    let bound = LagBound::time(Duration::from_secs(2));
    if args.patroni.is_empty() {
        let cluster = LocalCluster::builder().members(3).start().await?;
        let ports = cluster.start_haproxy().await?;
        let client = harness::client_builder(&cluster).lag_bound(bound).connect().await?;
        let creds = cluster.credentials().app;
        let t = cluster.timing();
        Ok(Target {
            client,
            user: creds.username.clone(),
            password: creds.password.expose().to_owned(),
            db: cluster.database(),
            haproxy: Some((
                ("127.0.0.1".into(), ports.primary),
                ("127.0.0.1".into(), ports.replicas),
            )),
            description: format!(
                "local 3-node cluster, Patroni {} (ttl {} s, loop_wait {} s, retry_timeout {} s), PostgreSQL 15, \
                 asynchronous replication, HAProxy 2.6 as in Patroni's docs",
                cluster.patroni_version(),
                t.ttl,
                t.loop_wait,
                t.retry_timeout
            ),
            cluster: Some(cluster),
            rest: None,
        })
    } else {
        let dsn = args.dsn.as_deref().context("--dsn is required with --patroni")?;
        let (user, password, db) = harness::dsn_credentials(dsn)?;
        let auth = args.patroni_user.clone().zip(args.patroni_password.clone());
        let mut builder = Client::builder()
            .url(dsn)
            .patroni(args.patroni.clone())
            .lag_bound(bound);
        if let Some((u, p)) = &auth {
            builder = builder.patroni_auth(u.clone(), p.as_str());
        }
        let client = builder.clone().connect().await?;
        let haproxy = match (&args.haproxy_primary, &args.haproxy_replicas) {
            (Some(p), Some(r)) => Some((host_port(p)?, host_port(r)?)),
            _ => None,
        };
        Ok(Target {
            rest: Some(RestInjector::new(builder)?),
            client,
            user,
            password,
            db,
            haproxy,
            cluster: None,
            description: format!("existing cluster at {}", args.patroni.join(",")),
        })
    }
}
