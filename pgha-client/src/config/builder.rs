//! [`ClientBuilder`]: infallible setters over a [`ClientConfig`], validated at once by `build`.

use std::path::PathBuf;
use std::time::Duration;

use super::url::{parse_conninfo, parse_url};
use super::{ChannelBinding, ClientConfig, Secret, Settings, SslMode};
use crate::error::{Error, Result};
use crate::intent::{Balance, Intent, LagBound};
use crate::retry::RetryPolicy;

/// Builds a [`Client`](crate::Client). Setters never fail; [`build`](Self::build) and
/// [`connect`](Self::connect) validate everything at once.
///
/// ```no_run
/// # async fn demo() -> pgha_client::Result<()> {
/// use std::time::Duration;
/// use pgha_client::{Client, LagBound};
///
/// let client = Client::builder()
///     .patroni(["http://10.0.0.1:8008", "http://10.0.0.2:8008", "http://10.0.0.3:8008"])
///     .user("app")
///     .password("secret")
///     .dbname("app")
///     .lag_bound(LagBound::time(Duration::from_secs(2)))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use]
#[derive(Debug, Clone, Default)]
pub struct ClientBuilder {
    pub(super) config: ClientConfig,
    errors: Vec<String>,
}

impl ClientBuilder {
    /// Patroni REST API base URLs (`http://host:8008`); more members are learned from `/cluster`.
    pub fn patroni<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.patroni.extend(urls.into_iter().map(Into::into));
        self
    }

    /// Basic-auth credentials for the Patroni REST API. They go with every unsafe request (a
    /// switchover, a restart: an operator's action on a member, as with `patronictl`), and with
    /// reads only to the configured [`patroni`](Self::patroni) URLs or over HTTPS — discovery's
    /// reads of members learned from `/cluster` carry none in clear text.
    pub fn patroni_auth(mut self, user: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.config.patroni_user = Some(user.into());
        self.config.patroni_password = Some(password.into());
        self
    }

    /// A PEM CA certificate to trust for HTTPS to Patroni.
    pub fn patroni_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.patroni_ca_file = Some(path.into());
        self
    }

    /// A client certificate for Patroni's REST API (mutual TLS, Patroni's
    /// `restapi.verify_client`): the PEM chain and its PEM private key, presented to every
    /// Patroni endpoint over HTTPS. A file that cannot be read or parsed is a configuration
    /// error at [`connect`](Self::connect).
    pub fn patroni_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.config.patroni_cert = Some(cert.into());
        self.config.patroni_key = Some(key.into());
        self
    }

    /// The Patroni cluster name (`scope`). Answers of endpoints that report another scope are
    /// ignored. Without it, the client adopts the scope most endpoints report in their first
    /// answers (Patroni before 3.2 reports none).
    pub fn patroni_scope(mut self, scope: impl Into<String>) -> Self {
        self.config.patroni_scope = Some(scope.into());
        self
    }

    /// etcd client URLs (`http://host:2379`) of the etcd cluster Patroni uses as its DCS:
    /// discovery lists Patroni's keys under `/<namespace>/<scope>/` and then watches them, so a
    /// leader change reaches the client as soon as etcd records it, with one stream per client
    /// instead of polling every Patroni REST API. Needs [`patroni_scope`](Self::patroni_scope).
    /// Patroni URLs, if also given, are the fallback while etcd is unreachable (then direct SQL
    /// probes of the known members).
    ///
    /// ```no_run
    /// # async fn demo() -> pgha_client::Result<()> {
    /// let client = pgha_client::Client::builder()
    ///     .etcd(["http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379"])
    ///     .patroni_scope("orders")
    ///     .user("app")
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn etcd<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.etcd.extend(urls.into_iter().map(Into::into));
        self
    }

    /// Patroni's `namespace` in etcd (default `/service`).
    pub fn etcd_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config.etcd_namespace = Some(namespace.into());
        self
    }

    /// How long a pooled connection may sit unused before it is closed, and how long a client
    /// without any operation keeps probing its members (default 30 s). An idle client holds no
    /// connection and sends no query: with [`etcd`](Self::etcd) it only keeps its watch, with
    /// Patroni URLs it stops polling. Its next operation first refreshes the topology (one
    /// probe round, a few milliseconds on a LAN), so nothing is routed on an old view.
    ///
    /// Likewise for the standbys: after `idle_timeout` without an operation whose
    /// [`Intent`](crate::Intent) may run on a standby, only the members that may be the primary
    /// are probed (every member again as soon as they do not confirm one), so a client that
    /// only writes holds no connection to a standby. Its next such read first probes the
    /// standbys again, so its staleness bound holds as always.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = Some(timeout);
        self
    }

    /// Credentials for etcd's authentication (a user with read access to the cluster's prefix).
    pub fn etcd_auth(mut self, user: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.config.etcd_user = Some(user.into());
        self.config.etcd_password = Some(password.into());
        self
    }

    /// A PEM CA certificate to trust for HTTPS to etcd.
    pub fn etcd_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.etcd_ca_file = Some(path.into());
        self
    }

    /// PostgreSQL `host:port` pairs probed directly when no Patroni endpoint answers (before
    /// Patroni has ever answered, or when all of its APIs are down). A host that starts with `/`
    /// is the directory of a Unix-domain socket (the port names the socket file,
    /// `.s.PGSQL.<port>`).
    pub fn seed_host(mut self, host: impl Into<String>, port: u16) -> Self {
        self.config.hosts.push(format!("{}:{port}", host.into()));
        self
    }

    /// Applies a libpq connection string: a URL, `postgresql://user:password@h1:p1,h2:p2/db?options`,
    /// or `key=value` pairs, `host=h1,h2 port=5432 dbname=db user=u password='…' options…`.
    /// Options: `target_session_attrs`, `sslmode`, `sslrootcert`, `application_name`,
    /// `connect_timeout` (seconds), `tcp_user_timeout` (ms), `host`, `port`, `user`, `password`,
    /// `dbname`, and pgha's own `patroni` (comma-separated REST URLs), `patroni_scope`, `etcd`
    /// and `etcd_namespace`. Hosts become seed hosts; a host that starts with `/` is the
    /// directory of a Unix-domain socket (`host=/var/run/postgresql`, or percent-encoded in a URL,
    /// `postgresql://%2Fvar%2Frun%2Fpostgresql/app`), reached without TLS, as libpq does.
    ///
    /// ```
    /// let builder = pgha_client::Client::builder()
    ///     .url("host=db1,db2 port=5432 dbname=app user=app target_session_attrs=read-write patroni=http://db1:8008");
    /// # let _ = builder;
    /// ```
    pub fn url(mut self, url: &str) -> Self {
        let parsed = if super::url::URL_SCHEMES.iter().any(|s| url.starts_with(s)) {
            parse_url(url)
        } else {
            parse_conninfo(url)
        };
        match parsed {
            Ok(parsed) => self.config.merge(parsed),
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// Database user.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.config.user = Some(user.into());
        self
    }

    /// Database password. Without one, the password file (`PGPASSFILE`, else `~/.pgpass`, mode
    /// 0600) is looked up for each member's host, port, database and user, as libpq does.
    pub fn password(mut self, password: impl Into<Secret>) -> Self {
        self.config.password = Some(password.into());
        self
    }

    /// Database name (default: the user name).
    pub fn dbname(mut self, dbname: impl Into<String>) -> Self {
        self.config.dbname = Some(dbname.into());
        self
    }

    /// `application_name` of every connection (default `pgha`).
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.config.application_name = Some(name.into());
        self
    }

    /// TLS mode to PostgreSQL.
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.config.sslmode = Some(mode);
        self
    }

    /// A PEM CA certificate to verify PostgreSQL servers with (instead of the WebPKI roots).
    pub fn ssl_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.sslrootcert = Some(path.into());
        self
    }

    /// A client certificate for PostgreSQL (libpq's `sslcert` and `sslkey`): the PEM chain and
    /// its PEM private key, sent when a server asks for one (`clientcert=verify-full` or `cert`
    /// authentication in `pg_hba.conf`).
    pub fn ssl_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.config.sslcert = Some(cert.into());
        self.config.sslkey = Some(key.into());
        self
    }

    /// SCRAM channel binding (libpq's `channel_binding`; default `prefer`). `require` makes a
    /// connection whose authentication is not bound to its TLS session fail; it cannot hold
    /// with [`SslMode::Disable`] (a configuration error).
    pub fn channel_binding(mut self, mode: ChannelBinding) -> Self {
        self.config.channel_binding = Some(mode);
        self
    }

    /// The intent of [`Client::run_default`](crate::Client::run_default) (default `Write`).
    pub fn default_intent(mut self, intent: Intent) -> Self {
        self.config.default_intent = Some(intent);
        self
    }

    /// Default staleness bound for standby reads (default 2 s); each call can override it.
    pub fn lag_bound(mut self, bound: LagBound) -> Self {
        self.config.lag_bound = Some(bound);
        self
    }

    /// Whether `Standby` reads fall back to the primary when no standby is under the bound
    /// (default true; a tracing event says so each time).
    pub fn fallback_to_primary(mut self, yes: bool) -> Self {
        self.config.fallback_to_primary = Some(yes);
        self
    }

    /// How standbys are balanced.
    pub fn balance(mut self, balance: Balance) -> Self {
        self.config.balance = Some(balance);
        self
    }

    /// How often the topology is refreshed when nothing happens (default 500 ms). Every refresh
    /// polls Patroni and probes each member with one SQL query.
    pub fn refresh_interval(mut self, every: Duration) -> Self {
        self.config.refresh_interval = Some(every);
        self
    }

    /// Minimum time between two refreshes triggered by errors (default 200 ms).
    pub fn min_refresh_interval(mut self, every: Duration) -> Self {
        self.config.min_refresh_interval = Some(every);
        self
    }

    /// Timeout of one Patroni REST request (default 1 s).
    pub fn patroni_timeout(mut self, timeout: Duration) -> Self {
        self.config.patroni_timeout = Some(timeout);
        self
    }

    /// Timeout of one SQL probe, connection included (default 1 s).
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.config.probe_timeout = Some(timeout);
        self
    }

    /// Timeout to open one PostgreSQL connection (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = Some(timeout);
        self
    }

    /// Maximum connections in each member's pool (default 16; deadpool's `max_size`).
    pub fn pool_max_size(mut self, size: usize) -> Self {
        self.config.pool_max_size = Some(size);
        self
    }

    /// How long an operation waits for a connection of a member's pool when all
    /// [`pool_max_size`](Self::pool_max_size) are in use (deadpool's `timeouts.wait`). Unset
    /// (the default), it waits until its deadline. Past it the operation fails at once, not
    /// retried: [`Error::is_timeout`](crate::Error::is_timeout), saying the pool was full —
    /// a service that would rather shed load than queue it sets this.
    ///
    /// deadpool's other timeouts: `timeouts.create` is [`connect_timeout`](Self::connect_timeout),
    /// `timeouts.recycle` is [`pool_recycle_timeout`](Self::pool_recycle_timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// use pgha_client::{Client, Recycling};
    /// let builder = Client::builder()
    ///     .patroni(["http://10.0.0.1:8008"])
    ///     .pool_max_size(8)
    ///     .pool_wait_timeout(Duration::from_millis(50))
    ///     .pool_recycling(Recycling::Verified)
    ///     .pool_recycle_timeout(Duration::from_millis(500));
    /// # let _ = builder;
    /// ```
    pub fn pool_wait_timeout(mut self, timeout: Duration) -> Self {
        self.config.pool_wait_timeout = Some(timeout);
        self
    }

    /// How long the check of a pooled connection before reuse may take (deadpool's
    /// `timeouts.recycle`); a connection whose check takes longer is closed and another one
    /// used or opened. Unset by default: the [`Fast`](crate::Recycling::Fast) check sends
    /// nothing, and the operation's deadline bounds the others.
    pub fn pool_recycle_timeout(mut self, timeout: Duration) -> Self {
        self.config.pool_recycle_timeout = Some(timeout);
        self
    }

    /// How a pooled connection is checked before reuse (deadpool's `recycling_method`;
    /// default [`Recycling::Fast`](crate::Recycling::Fast)).
    pub fn pool_recycling(mut self, recycling: crate::Recycling) -> Self {
        self.config.pool_recycling = Some(recycling);
        self
    }

    /// How long a read carrying a [`WalToken`](crate::WalToken) waits for a standby to replay it
    /// before running on the primary (default 100 ms).
    pub fn read_your_writes_wait(mut self, wait: Duration) -> Self {
        self.config.read_your_writes_wait = Some(wait);
        self
    }

    /// How long data sent to a member may stay unacknowledged before the connection is
    /// dropped (`TCP_USER_TIMEOUT`, default 10 s; keepalives probe idle connections at the same
    /// pace), so a partitioned member cannot hold a query for longer. A frozen server still
    /// acknowledges at the TCP level: the operation's deadline covers that case.
    pub fn tcp_user_timeout(mut self, timeout: Duration) -> Self {
        self.config.tcp_user_timeout = Some(timeout);
        self
    }

    /// Retry policy (deadline, backoff, budget).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = Some(policy);
        self
    }

    /// Validates the settings and starts the client; operations wait for the first topology.
    /// Must be called inside a Tokio runtime.
    pub fn build(self) -> Result<crate::Client> {
        let settings = self.settings()?;
        crate::Client::start(settings)
    }

    /// Like [`build`](Self::build), then waits (up to the connect timeout plus the Patroni
    /// timeout) for the first topology refresh.
    pub async fn connect(self) -> Result<crate::Client> {
        let client = self.build()?;
        client.wait_for_first_refresh().await?;
        Ok(client)
    }

    pub(crate) fn settings(self) -> Result<Settings> {
        if let Some(first) = self.errors.into_iter().next() {
            return Err(Error::config(first));
        }
        self.config.validate()
    }
}
