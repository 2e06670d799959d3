//! Direct access to one member, with the settings a [`Client`](crate::Client) would use.

use std::fmt;
use std::sync::Arc;

use reqwest::Method;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{ClientBuilder, Settings};
use crate::error::{Error, Kind, Result};
use crate::patroni::{Api, Failure, Reply};

/// Connections to a member chosen by the caller and requests to Patroni's REST API, built from
/// the same configuration as a [`Client`](crate::Client): credentials, TLS (CA, `sslmode`),
/// Patroni basic auth and CA, and timeouts. For tools that address a member by name, such as
/// `pgha-admin`; applications should use a `Client`, which routes for them.
///
/// Patroni is reached the way the client's own discovery reaches it (see
/// [`patroni_send`](Self::patroni_send)).
///
/// ```no_run
/// # async fn demo() -> pgha_client::Result<()> {
/// let connector = pgha_client::Client::builder()
///     .url("postgresql://admin:secret@/postgres?patroni=http://127.0.0.1:8008")
///     .connector()?;
/// let db = connector.connect("127.0.0.1", 5432, None).await?;
/// let in_recovery: bool = db.query_one("SELECT pg_is_in_recovery()", &[]).await
///     .map_err(pgha_client::Error::user)?.get(0);
/// # let _ = in_recovery; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Connector {
    settings: Arc<Settings>,
    tls: MakeRustlsConnect,
    patroni: Api,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("patroni", &self.patroni_urls())
            .field("user", &self.settings.user)
            .field("dbname", &self.settings.dbname)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Validates the configuration and returns a [`Connector`] instead of a client: nothing is
    /// started and nothing is contacted.
    pub fn connector(self) -> Result<Connector> {
        let settings = self.settings()?;
        Ok(Connector {
            tls: crate::tls::postgres_tls(&settings)?,
            patroni: Api::new(&settings)?,
            settings: Arc::new(settings),
        })
    }
}

impl Connector {
    /// The configured Patroni REST API base URLs, without a trailing slash.
    pub fn patroni_urls(&self) -> Vec<String> {
        self.settings
            .patroni_urls
            .iter()
            .map(|u| u.as_str().trim_end_matches('/').to_owned())
            .collect()
    }

    /// The configured seed PostgreSQL hosts (`host`, `port`).
    pub fn seed_hosts(&self) -> &[(String, u16)] {
        &self.settings.seed_hosts
    }

    /// The database user.
    pub fn user(&self) -> &str {
        &self.settings.user
    }

    /// The database name.
    pub fn dbname(&self) -> &str {
        &self.settings.dbname
    }

    /// `GET base + path` on a Patroni REST API: [`patroni_send`](Self::patroni_send) without a
    /// body.
    ///
    /// ```no_run
    /// # async fn demo(connector: pgha_client::Connector) {
    /// use pgha_client::patroni::ClusterView;
    ///
    /// for base in connector.patroni_urls() {
    ///     match connector.patroni_get(&base, "/cluster").await {
    ///         Ok(reply) if reply.status == 200 => {
    ///             let view = ClusterView::from_json(&reply.body);
    ///             println!("{base}: {view:?}");
    ///             break;
    ///         }
    ///         Ok(reply) => eprintln!("{base}: HTTP {}", reply.status),
    ///         Err(failure) => eprintln!("{base}: {failure}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn patroni_get(&self, base: &str, path: &str) -> std::result::Result<Reply, Failure> {
        self.patroni_send(Method::GET, base, path, None).await
    }

    /// `method base + path` on a Patroni REST API (`base` is `http(s)://host:port`, as in
    /// [`patroni_urls`](Self::patroni_urls) or from
    /// [`patroni::base_url`](crate::patroni::base_url); `path` is `/cluster`, `/switchover`…),
    /// with `body` as JSON. The answer is returned whatever its status, its body read up to
    /// 1 MiB (a larger one is [`Failure::TooLarge`]).
    ///
    /// - **Credentials**: the configured basic auth goes with every unsafe method (`POST`,
    ///   `PATCH`…: an action on the member the caller chose, as `patronictl` does), and with safe
    ///   ones to a configured Patroni URL or over HTTPS (verified against the configured CA) —
    ///   never in clear text with a read of an address learned from an answer.
    ///   [`Reply::credentials_sent`] says whether it went.
    /// - **Time**: safe methods (`GET`…) are bounded by the Patroni timeout, connecting and the
    ///   whole answer included; unsafe ones by at least 60 s, since Patroni answers a switchover
    ///   once it is done and a restart once PostgreSQL is up.
    /// - **Redirects** are not followed (the `3xx` is the reply).
    /// - **Failures** say whether the request may have reached Patroni: only after a
    ///   [`Failure::NotSent`] may an unsafe request be sent to another endpoint.
    ///
    /// ```no_run
    /// # async fn demo(connector: pgha_client::Connector) -> Result<(), String> {
    /// use pgha_client::patroni::Failure;
    /// use pgha_client::reqwest::Method;
    ///
    /// let body = serde_json::json!({ "leader": "node1" });
    /// for base in connector.patroni_urls() {
    ///     match connector.patroni_send(Method::POST, &base, "/switchover", Some(&body)).await {
    ///         Ok(reply) if reply.is_success() => return Ok(()),
    ///         Ok(reply) => return Err(format!("HTTP {}", reply.status)),
    ///         // Nothing left: safe to try the next endpoint.
    ///         Err(Failure::NotSent(why)) => eprintln!("{base}: {why}"),
    ///         // It may have been received: never send it twice.
    ///         Err(failure) => return Err(failure.to_string()),
    ///     }
    /// }
    /// Err("no Patroni endpoint could be reached".into())
    /// # }
    /// ```
    pub async fn patroni_send(
        &self,
        method: Method,
        base: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> std::result::Result<Reply, Failure> {
        self.patroni.send_to(method, base, path, body).await
    }

    /// Opens one connection to `host:port` (to `dbname`, or the configured database), bounded by
    /// the connect timeout. The connection's I/O runs on a spawned task that ends when the
    /// returned client is dropped.
    pub async fn connect(&self, host: &str, port: u16, dbname: Option<&str>) -> Result<tokio_postgres::Client> {
        let mut config = crate::tls::postgres_config(&self.settings, host, port, "admin");
        if let Some(db) = dbname {
            config.dbname(db);
        }
        let timeout = self.settings.connect_timeout;
        let connecting = config.connect(self.tls.clone());
        let (client, connection) = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| Error::timeout(&format!("connecting to {host}:{port}"), timeout))?
            .map_err(|e| {
                Error::new(Kind::Connect)
                    .with_message(format!("connecting to {host}:{port}"))
                    .with_source(e)
            })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "admin connection closed");
            }
        });
        Ok(client)
    }

    /// Deletes every key of the Patroni cluster in etcd (`/<namespace>/<scope>/`) in one
    /// transaction, if the leader key names `leader` (`None`: if there is no leader key) —
    /// `patronictl remove`, which asks for the leader's name when there is one. Sent once, to
    /// the first configured etcd endpoint that connects: when its answer is lost the error is
    /// [outcome unknown](crate::Error::is_outcome_unknown) (list the keys to see). The scope must
    /// be a cluster name (not empty, no `/`). Needs [`etcd`](crate::ClientBuilder::etcd)
    /// endpoints, the scope, and an etcd user with write permission on the prefix.
    ///
    /// **Destructive**: meant for a stopped cluster (before a restore, after decommissioning).
    /// Running Patroni members write their keys again, and a running leader loses its lock.
    ///
    /// ```no_run
    /// # async fn demo() -> pgha_client::Result<()> {
    /// use pgha_client::DcsRemoval;
    ///
    /// let connector = pgha_client::Client::builder()
    ///     .etcd(["http://10.0.0.1:2379"])
    ///     .patroni_scope("pg-ha")
    ///     .connector()?;
    /// match connector.dcs_remove_cluster(None).await? {
    ///     DcsRemoval::Removed { keys, prefix, .. } => println!("{} keys deleted under {prefix}", keys.len()),
    ///     DcsRemoval::LeaderMismatch { leader } => println!("{leader:?} holds the leader key: nothing deleted"),
    ///     _ => {}
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn dcs_remove_cluster(&self, leader: Option<&str>) -> Result<crate::DcsRemoval> {
        crate::etcd::remove_cluster(&self.settings, leader).await
    }

    /// The Patroni cluster's keys in etcd and the leader its leader key names, read
    /// linearizably from the first configured etcd endpoint that answers (what
    /// [`dcs_remove_cluster`](Self::dcs_remove_cluster) would delete). Needs read permission.
    pub async fn dcs_cluster_keys(&self) -> Result<crate::DcsKeys> {
        crate::etcd::cluster_keys(&self.settings).await
    }

    /// The configured Patroni scope (`patroni_scope`), if any.
    pub fn patroni_scope(&self) -> Option<&str> {
        self.settings.patroni_scope.as_deref()
    }
}
