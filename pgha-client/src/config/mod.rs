//! Configuration: the [`ClientBuilder`] (infallible setters, one validating `build`), the serde
//! [`ClientConfig`] (TOML/env friendly) and libpq-style multi-host URLs.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::opt_duration;
use crate::error::{Error, Result};
use crate::intent::{Balance, Intent, LagBound};
use crate::retry::RetryPolicy;

/// A password or other secret: never printed by `Debug` or `Display`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself (only for handing it to a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// TLS to PostgreSQL, with libpq's `sslmode` meanings (pgha offers no `allow`: it is read as
/// `prefer`).
///
/// | mode | TLS | certificate checked |
/// |---|---|---|
/// | `disable` | never | – |
/// | `prefer` (default) | if the server offers it, else plain TCP | no |
/// | `require` | always | no; the chain, when `sslrootcert` is set (as libpq with a root certificate) |
/// | `verify-ca` | always | the chain, against `sslrootcert` (required) |
/// | `verify-full` | always | the chain (`sslrootcert`, else the WebPKI roots) and the host name |
///
/// Unlike libpq, a default `~/.postgresql/root.crt` is not read: name the CA with
/// `sslrootcert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS if the server offers it, without checking its certificate (default).
    #[default]
    Prefer,
    /// TLS required; the certificate is checked only against `sslrootcert`, when set.
    Require,
    /// TLS required, certificate chain verified (not the host name).
    VerifyCa,
    /// TLS required, certificate chain and host name verified.
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => Self::Disable,
            "prefer" | "allow" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => return Err(Error::config(format!("unknown sslmode {other:?}"))),
        })
    }
}

/// The validated settings a client runs with.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) patroni_urls: Vec<reqwest::Url>,
    pub(crate) patroni_user: Option<String>,
    pub(crate) patroni_password: Option<Secret>,
    pub(crate) patroni_ca_file: Option<PathBuf>,
    pub(crate) patroni_scope: Option<String>,
    pub(crate) seed_hosts: Vec<(String, u16)>,
    pub(crate) user: String,
    pub(crate) password: Option<Secret>,
    pub(crate) dbname: String,
    pub(crate) application_name: String,
    pub(crate) ssl_mode: SslMode,
    pub(crate) ssl_ca_file: Option<PathBuf>,
    pub(crate) default_intent: Intent,
    pub(crate) lag_bound: LagBound,
    pub(crate) fallback_to_primary: bool,
    pub(crate) balance: Balance,
    pub(crate) refresh_interval: Duration,
    pub(crate) min_refresh_interval: Duration,
    pub(crate) patroni_timeout: Duration,
    pub(crate) probe_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) pool_max_size: usize,
    pub(crate) read_your_writes_wait: Duration,
    pub(crate) tcp_user_timeout: Duration,
    pub(crate) retry: RetryPolicy,
}

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
    config: ClientConfig,
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

    /// Basic-auth credentials for the Patroni REST API.
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

    /// The Patroni cluster name (`scope`). Answers of endpoints that report another scope are
    /// ignored. Without it, the client adopts the scope most endpoints report in their first
    /// answers (Patroni before 3.2 reports none).
    pub fn patroni_scope(mut self, scope: impl Into<String>) -> Self {
        self.config.patroni_scope = Some(scope.into());
        self
    }

    /// PostgreSQL `host:port` pairs probed directly when no Patroni endpoint answers (before
    /// Patroni has ever answered, or when all of its APIs are down).
    pub fn seed_host(mut self, host: impl Into<String>, port: u16) -> Self {
        self.config.hosts.push(format!("{}:{port}", host.into()));
        self
    }

    /// Applies a libpq-style URL: `postgresql://user:password@h1:p1,h2:p2/db?options`, with
    /// options `target_session_attrs`, `sslmode`, `sslrootcert`, `application_name`,
    /// `connect_timeout` (seconds) and pgha's own `patroni` (comma-separated REST URLs) and
    /// `patroni_scope`.
    /// Hosts become seed hosts.
    pub fn url(mut self, url: &str) -> Self {
        match parse_url(url) {
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

    /// Database password.
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

    /// Maximum connections in each member's pool (default 16).
    pub fn pool_max_size(mut self, size: usize) -> Self {
        self.config.pool_max_size = Some(size);
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

/// The serde form of the configuration: every field optional, so it loads from TOML, JSON or
/// environment variables and fills a [`ClientBuilder`] (`url` first, then the other fields).
///
/// ```
/// let config: pgha_client::ClientConfig = serde_json::from_str(r#"{
///     "patroni": ["http://127.0.0.1:8008"],
///     "user": "app", "password": "secret", "dbname": "app",
///     "lag_bound": {"time": "2s"}, "refresh_interval": "250ms"
/// }"#)?;
/// assert!(!format!("{config:?}").contains("secret"));
/// let builder = config.into_builder();
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientConfig {
    /// libpq-style URL (see [`ClientBuilder::url`]).
    pub url: Option<String>,
    /// Patroni REST API base URLs.
    pub patroni: Vec<String>,
    /// Patroni basic-auth user.
    pub patroni_user: Option<String>,
    /// Patroni basic-auth password.
    pub patroni_password: Option<Secret>,
    /// CA for HTTPS to Patroni.
    pub patroni_ca_file: Option<PathBuf>,
    /// The Patroni cluster name (`scope`); answers of other clusters are ignored.
    pub patroni_scope: Option<String>,
    /// Seed PostgreSQL hosts as `host:port`.
    pub hosts: Vec<String>,
    /// Database user.
    pub user: Option<String>,
    /// Database password.
    pub password: Option<Secret>,
    /// Database name.
    pub dbname: Option<String>,
    /// `application_name`.
    pub application_name: Option<String>,
    /// TLS mode.
    pub sslmode: Option<SslMode>,
    /// CA for TLS to PostgreSQL.
    pub sslrootcert: Option<PathBuf>,
    /// Intent of `run_default`.
    pub default_intent: Option<Intent>,
    /// Default lag bound.
    pub lag_bound: Option<LagBound>,
    /// Fall back to the primary for standby reads.
    pub fallback_to_primary: Option<bool>,
    /// Standby balancing.
    pub balance: Option<Balance>,
    /// Refresh period.
    #[serde(with = "opt_duration")]
    pub refresh_interval: Option<Duration>,
    /// Minimum period of error-triggered refreshes.
    #[serde(with = "opt_duration")]
    pub min_refresh_interval: Option<Duration>,
    /// Patroni request timeout.
    #[serde(with = "opt_duration")]
    pub patroni_timeout: Option<Duration>,
    /// SQL probe timeout.
    #[serde(with = "opt_duration")]
    pub probe_timeout: Option<Duration>,
    /// Connect timeout.
    #[serde(with = "opt_duration")]
    pub connect_timeout: Option<Duration>,
    /// Pool size per member.
    pub pool_max_size: Option<usize>,
    /// Read-your-writes wait.
    #[serde(with = "opt_duration")]
    pub read_your_writes_wait: Option<Duration>,
    /// TCP user timeout (and keepalive pace) of every connection to a member.
    #[serde(with = "opt_duration")]
    pub tcp_user_timeout: Option<Duration>,
    /// Retry policy.
    pub retry: Option<RetryPolicy>,
}

/// Calls `$apply!` with every `Option` field of [`ClientConfig`] but `url`: the one list that
/// `Debug` and `merge` both go through, so a new field cannot be left out of either.
macro_rules! option_fields {
    ($apply:ident) => {
        $apply!(
            patroni_user,
            patroni_password,
            patroni_ca_file,
            patroni_scope,
            user,
            password,
            dbname,
            application_name,
            sslmode,
            sslrootcert,
            default_intent,
            lag_bound,
            fallback_to_primary,
            balance,
            refresh_interval,
            min_refresh_interval,
            patroni_timeout,
            probe_timeout,
            connect_timeout,
            pool_max_size,
            read_your_writes_wait,
            tcp_user_timeout,
            retry
        )
    };
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.url.as_deref().map(redact_url);
        let mut d = f.debug_struct("ClientConfig");
        d.field("url", &url);
        d.field("patroni", &self.patroni);
        d.field("hosts", &self.hosts);
        macro_rules! show {
            ($($name:ident),*) => { $( d.field(stringify!($name), &self.$name); )* };
        }
        option_fields!(show);
        d.finish()
    }
}

/// A connection URL with its password (in the user info or a `password=` option) replaced.
pub(crate) fn redact_url(url: &str) -> String {
    let (head, query) = url.split_once('?').unwrap_or((url, ""));
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, hosts)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:<redacted>@{hosts}"),
                    None => format!("{userinfo}@{hosts}"),
                },
                None => authority.to_owned(),
            };
            match path {
                Some(p) => format!("{scheme}://{authority}/{p}"),
                None => format!("{scheme}://{authority}"),
            }
        }
        None => "<not a URL>".to_owned(),
    };
    if !query.is_empty() {
        let params: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=<redacted>"),
                _ => kv.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

impl ClientConfig {
    /// A builder holding this configuration.
    pub fn into_builder(self) -> ClientBuilder {
        let mut builder = ClientBuilder::default();
        if let Some(url) = self.url.as_deref() {
            builder = builder.url(url);
        }
        builder.config.merge(ClientConfig { url: None, ..self });
        builder
    }

    /// Fields set in `other` override this one's; lists are appended.
    fn merge(&mut self, other: ClientConfig) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(url);
        option_fields!(take);
        self.patroni.extend(other.patroni);
        self.hosts.extend(other.hosts);
    }

    fn validate(self) -> Result<Settings> {
        let mut patroni_urls = Vec::new();
        for raw in &self.patroni {
            let url = reqwest::Url::parse(raw).map_err(|e| Error::config(format!("Patroni URL {raw:?}: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(Error::config(format!(
                    "Patroni URL {raw:?} must be http(s)://host[:port]"
                )));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(Error::config(
                    "put Patroni credentials in patroni_user/patroni_password, not in the URL",
                ));
            }
            patroni_urls.push(url);
        }
        let seed_hosts = self
            .hosts
            .iter()
            .map(|h| parse_host_port(h))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::config)?;
        if patroni_urls.is_empty() && seed_hosts.is_empty() {
            return Err(Error::config(
                "no Patroni URL and no seed host: nothing to discover the cluster from",
            ));
        }
        let user = self.user.ok_or_else(|| Error::config("no database user"))?;
        let retry = self.retry.unwrap_or_default();
        let refresh_interval = self.refresh_interval.unwrap_or(Duration::from_millis(500));
        let positive = |name: &str, d: Duration| {
            if d.is_zero() {
                Err(Error::config(format!("{name} must be greater than zero")))
            } else {
                Ok(d)
            }
        };
        // Below a millisecond a refresh loop would spin: refuse it rather than hot-loop.
        let at_least_a_millisecond = |name: &str, d: Duration| {
            if d < Duration::from_millis(1) {
                Err(Error::config(format!("{name} must be at least 1ms (got {d:?})")))
            } else {
                Ok(d)
            }
        };
        at_least_a_millisecond("refresh_interval", refresh_interval)?;
        let min_refresh_interval = at_least_a_millisecond(
            "min_refresh_interval",
            self.min_refresh_interval.unwrap_or(Duration::from_millis(200)),
        )?;
        positive("retry.deadline", retry.deadline)?;
        positive("retry.max_backoff", retry.max_backoff)?;
        if retry.initial_backoff > retry.max_backoff {
            return Err(Error::config("retry.initial_backoff is greater than retry.max_backoff"));
        }
        let lag_bound = self.lag_bound.unwrap_or(LagBound::time(Duration::from_secs(2)));
        if lag_bound.time.is_some_and(|t| t <= refresh_interval) {
            return Err(Error::config(format!(
                "lag_bound.time {:?} must be longer than refresh_interval {refresh_interval:?}, \
                 or no standby could ever qualify just before a refresh",
                lag_bound.time.unwrap_or_default()
            )));
        }
        let pool_max_size = self.pool_max_size.unwrap_or(16);
        if pool_max_size == 0 {
            return Err(Error::config("pool_max_size must be at least 1"));
        }
        Ok(Settings {
            patroni_urls,
            patroni_user: self.patroni_user,
            patroni_password: self.patroni_password,
            patroni_ca_file: self.patroni_ca_file,
            patroni_scope: self.patroni_scope,
            seed_hosts,
            dbname: self.dbname.unwrap_or_else(|| user.clone()),
            user,
            password: self.password,
            application_name: self.application_name.unwrap_or_else(|| "pgha".to_owned()),
            ssl_mode: self.sslmode.unwrap_or_default(),
            ssl_ca_file: self.sslrootcert,
            default_intent: self.default_intent.unwrap_or(Intent::Write),
            lag_bound,
            fallback_to_primary: self.fallback_to_primary.unwrap_or(true),
            balance: self.balance.unwrap_or_default(),
            refresh_interval,
            min_refresh_interval,
            patroni_timeout: positive(
                "patroni_timeout",
                self.patroni_timeout.unwrap_or(Duration::from_secs(1)),
            )?,
            probe_timeout: positive("probe_timeout", self.probe_timeout.unwrap_or(Duration::from_secs(1)))?,
            connect_timeout: positive(
                "connect_timeout",
                self.connect_timeout.unwrap_or(Duration::from_secs(2)),
            )?,
            pool_max_size,
            read_your_writes_wait: self.read_your_writes_wait.unwrap_or(Duration::from_millis(100)),
            tcp_user_timeout: at_least_a_millisecond(
                "tcp_user_timeout",
                self.tcp_user_timeout.unwrap_or(Duration::from_secs(10)),
            )?,
            retry,
        })
    }
}

fn parse_host_port(s: &str) -> std::result::Result<(String, u16), String> {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !h.ends_with(':') => {
            (h, p.parse::<u16>().map_err(|_| format!("invalid port in host {s:?}"))?)
        }
        _ => (s, 5432),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', '@', ',', ' ']) {
        return Err(format!("invalid host {s:?}"));
    }
    Ok((host.to_owned(), port))
}

/// Parses `postgres[ql]://[user[:password]@][host[:port][,host[:port]…]][/dbname][?k=v&…]`.
fn parse_url(url: &str) -> std::result::Result<ClientConfig, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "URL component is not valid UTF-8 after percent-decoding".to_owned())
    };
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .ok_or_else(|| "URL must start with postgresql:// or postgres://".to_owned())?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let mut config = ClientConfig::default();
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            config.user = Some(decode(user)?);
        }
        if let Some(p) = password {
            config.password = Some(Secret(decode(p)?));
        }
    }
    for host in hosts.split(',').filter(|h| !h.is_empty()) {
        let host = decode(host)?;
        parse_host_port(&host)?;
        config.hosts.push(host);
    }
    if !db.is_empty() {
        config.dbname = Some(decode(db)?);
    }
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = value.into_owned();
        match &*key {
            "target_session_attrs" => {
                config.default_intent = Some(
                    Intent::from_target_session_attrs(&value)
                        .ok_or_else(|| format!("unknown target_session_attrs {value:?}"))?,
                );
            }
            "sslmode" => config.sslmode = Some(value.parse().map_err(|e: Error| e.to_string())?),
            "sslrootcert" => config.sslrootcert = Some(value.into()),
            "application_name" => config.application_name = Some(value),
            "connect_timeout" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|_| format!("connect_timeout {value:?} is not seconds"))?;
                config.connect_timeout = Some(Duration::from_secs(secs.max(1)));
            }
            // libpq's meaning: milliseconds (0, the system default, is not offered here).
            "tcp_user_timeout" => {
                let ms: u64 = value
                    .parse()
                    .map_err(|_| format!("tcp_user_timeout {value:?} is not milliseconds"))?;
                config.tcp_user_timeout = Some(Duration::from_millis(ms));
            }
            "patroni" => config.patroni.extend(value.split(',').map(str::to_owned)),
            "patroni_scope" => config.patroni_scope = Some(value),
            "user" => config.user = Some(value),
            "password" => config.password = Some(Secret(value)),
            "dbname" => config.dbname = Some(value),
            "host" => config.hosts.extend(value.split(',').map(str::to_owned)),
            "load_balance_hosts" => {}
            other => return Err(format!("unknown URL option {other:?}")),
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::parse_duration;

    fn settings(b: ClientBuilder) -> Result<Settings> {
        b.settings()
    }

    #[test]
    fn urls_are_redacted_in_debug() {
        assert_eq!(
            redact_url("postgresql://app:p%40ss@db1:5433,db2/shop?sslmode=disable&password=x"),
            "postgresql://app:<redacted>@db1:5433,db2/shop?sslmode=disable&password=<redacted>"
        );
        assert_eq!(redact_url("postgres://app@db1"), "postgres://app@db1");
        assert_eq!(redact_url("garbage:secret"), "<not a URL>");
        let config = ClientConfig {
            url: Some("postgresql://u:hunter2@h/db".into()),
            ..ClientConfig::default()
        };
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(!format!("{:?}", config.into_builder()).contains("hunter2"));
    }

    #[test]
    fn multi_host_url_maps_onto_settings() {
        let s = settings(ClientBuilder::default().url(
            "postgresql://app:p%40ss@db1:5433,db2,[::1]:5434/shop?target_session_attrs=prefer-standby&sslmode=disable\
             &patroni=http://db1:8008,http://db2:8008&application_name=api",
        ))
        .expect("valid URL");
        assert_eq!(s.user, "app");
        assert_eq!(s.password.as_ref().map(Secret::expose), Some("p@ss"));
        assert_eq!(s.dbname, "shop");
        assert_eq!(
            s.seed_hosts,
            vec![("db1".into(), 5433), ("db2".into(), 5432), ("::1".into(), 5434)]
        );
        assert_eq!(s.default_intent, Intent::PreferStandby);
        assert_eq!(s.ssl_mode, SslMode::Disable);
        assert_eq!(s.patroni_urls.len(), 2);
        assert_eq!(s.application_name, "api");
    }

    #[test]
    fn target_session_attrs_values_map_onto_intents() {
        for (attrs, intent) in [
            ("read-write", Intent::Write),
            ("primary", Intent::Write),
            ("read-only", Intent::Standby),
            ("standby", Intent::Standby),
            ("prefer-standby", Intent::PreferStandby),
            ("any", Intent::Any),
        ] {
            let s = settings(ClientBuilder::default().url(&format!("postgres://u@h/d?target_session_attrs={attrs}")))
                .expect("valid");
            assert_eq!(s.default_intent, intent, "{attrs}");
        }
    }

    #[test]
    fn bad_input_is_a_config_error_never_a_panic() {
        for url in [
            "mysql://u@h/d",
            "postgres://u@h:notaport/d",
            "postgres://u@h/d?target_session_attrs=primaryish",
            "postgres://u@h/d?sslmode=sometimes",
            "postgres://u@h/d?frobnicate=1",
            "postgres://u@h/d?connect_timeout=soon",
            "postgres://u@h:99999/d",
            "postgres://u@%FF/d",
        ] {
            let err = settings(ClientBuilder::default().url(url)).expect_err(url);
            assert!(err.is_config(), "{url}: {err}");
        }
        let no_user = settings(ClientBuilder::default().patroni(["http://h:8008"])).expect_err("no user");
        assert!(no_user.to_string().contains("user"), "{no_user}");
        let nothing = settings(ClientBuilder::default().user("u")).expect_err("no source");
        assert!(nothing.is_config());
        let bad_patroni = settings(ClientBuilder::default().user("u").patroni(["ftp://h"])).expect_err("scheme");
        assert!(bad_patroni.to_string().contains("http"), "{bad_patroni}");
        let creds = settings(ClientBuilder::default().user("u").patroni(["http://a:b@h:8008"])).expect_err("creds");
        assert!(!creds.to_string().contains(":b@"), "secret echoed: {creds}");
        let tight = settings(
            ClientBuilder::default()
                .user("u")
                .patroni(["http://h:8008"])
                .lag_bound(LagBound::time(Duration::from_millis(100))),
        )
        .expect_err("bound below refresh");
        assert!(tight.to_string().contains("refresh_interval"), "{tight}");
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let builder = ClientBuilder::default()
            .url("postgres://app:hunter2@h/d")
            .patroni_auth("pgha", "sesame");
        let s = builder.clone().settings().expect("valid");
        for text in [format!("{builder:?}"), format!("{s:?}")] {
            assert!(!text.contains("hunter2") && !text.contains("sesame"), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
    }

    #[test]
    fn serde_config_reads_durations_and_bounds() {
        let c: ClientConfig = serde_json::from_str(
            r#"{"url": "postgres://u:pw@h1,h2/db", "refresh_interval": "250ms", "probe_timeout": 800,
                "lag_bound": {"time": "1.5s", "bytes": 1048576}, "balance": "round-robin",
                "retry": {"deadline": "10s"}}"#,
        )
        .expect("valid config");
        let s = c.into_builder().settings().expect("valid settings");
        assert_eq!(s.refresh_interval, Duration::from_millis(250));
        assert_eq!(s.probe_timeout, Duration::from_millis(800));
        assert_eq!(
            s.lag_bound,
            LagBound::time(Duration::from_millis(1500)).and_bytes(1 << 20)
        );
        assert_eq!(s.balance, Balance::RoundRobin);
        assert_eq!(s.retry.deadline, Duration::from_secs(10));
        assert_eq!(s.retry.max_backoff, RetryPolicy::default().max_backoff);
        assert_eq!(s.seed_hosts.len(), 2);
        let unknown = serde_json::from_str::<ClientConfig>(r#"{"refresh_intervall": "1s"}"#);
        assert!(unknown.is_err(), "typos must be rejected");
        assert!(parse_duration("3 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}

/// No duration, however extreme, panics: each configuration value and a per-call deadline,
/// from zero to `Duration::MAX`, either fails validation with a typed error or gives a client
/// whose operations and topology task run without overflow.
#[cfg(test)]
mod extreme_durations {
    use std::time::Duration;

    use proptest::prelude::*;

    use crate::{Client, Intent, RetryPolicy};

    fn duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            1 => Just(Duration::ZERO),
            1 => Just(Duration::from_nanos(1)),
            2 => Just(Duration::from_millis(1)),
            4 => Just(Duration::from_secs(u64::MAX)),
            4 => Just(Duration::MAX),
            4 => (1..10_000u64).prop_map(Duration::from_millis),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn no_duration_panics(
            refresh in duration(), min_refresh in duration(), patroni in duration(), probe in duration(),
            connect in duration(), ryw in duration(), deadline in duration(), initial in duration(),
            max_backoff in duration(), per_call in duration(),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let built = Client::builder()
                    // Nothing listens on port 1: the client retries until its deadline.
                    .seed_host("127.0.0.1", 1)
                    .user("u")
                    .refresh_interval(refresh)
                    .min_refresh_interval(min_refresh)
                    .patroni_timeout(patroni)
                    .probe_timeout(probe)
                    .connect_timeout(connect)
                    .read_your_writes_wait(ryw)
                    .lag_bound(crate::LagBound::bytes(1))
                    .retry(RetryPolicy { deadline, initial_backoff: initial, max_backoff, ..RetryPolicy::default() })
                    .build();
                let Ok(client) = built else { return };
                for op in [client.op(Intent::Write), client.op(Intent::Write).deadline(per_call)] {
                    let _ = tokio::time::timeout(
                        Duration::from_millis(30),
                        op.run(async |c| Ok(c.execute("SELECT 1", &[]).await?)),
                    )
                    .await;
                }
                client.shutdown().await;
            });
        }
    }

    #[test]
    fn a_zero_refresh_interval_is_refused_not_spun_on() {
        for (name, builder) in [
            (
                "min_refresh_interval",
                Client::builder().min_refresh_interval(Duration::ZERO),
            ),
            (
                "refresh_interval",
                Client::builder().refresh_interval(Duration::from_nanos(10)),
            ),
        ] {
            let e = builder.seed_host("h", 5432).user("u").settings().expect_err(name);
            assert!(e.is_config() && e.to_string().contains(name), "{e}");
        }
    }
}
