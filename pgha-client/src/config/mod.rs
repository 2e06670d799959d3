//! Configuration: the serde [`ClientConfig`] (TOML/env friendly, every field optional), its
//! validation into the [`Settings`] a client runs with, and the submodules for the
//! [`ClientBuilder`], libpq connection strings, [`Secret`] and [`SslMode`].

mod builder;
mod env;
pub(crate) mod pgpass;
mod recycling;
mod secret;
mod ssl_mode;
mod url;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::builder::ClientBuilder;
pub use self::recycling::Recycling;
pub use self::secret::Secret;
pub use self::ssl_mode::{ChannelBinding, SslMode};
use self::url::parse_host_port;
pub use self::url::redact_connection_string;
use crate::duration::opt_duration;
use crate::error::{Error, Result};
use crate::intent::{Balance, Intent, LagBound};
use crate::retry::RetryPolicy;

/// The validated settings a client runs with.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) patroni_urls: Vec<reqwest::Url>,
    pub(crate) patroni_user: Option<String>,
    pub(crate) patroni_password: Option<Secret>,
    pub(crate) patroni_ca_file: Option<PathBuf>,
    /// Client certificate chain and key (PEM) for Patroni's REST API.
    pub(crate) patroni_client_cert: Option<(PathBuf, PathBuf)>,
    pub(crate) patroni_scope: Option<String>,
    pub(crate) etcd: Option<EtcdSettings>,
    pub(crate) seed_hosts: Vec<(String, u16)>,
    pub(crate) user: String,
    pub(crate) password: Option<Secret>,
    pub(crate) dbname: String,
    pub(crate) application_name: String,
    pub(crate) ssl_mode: SslMode,
    pub(crate) ssl_ca_file: Option<PathBuf>,
    /// Client certificate chain and key (PEM) for PostgreSQL.
    pub(crate) ssl_client_cert: Option<(PathBuf, PathBuf)>,
    pub(crate) channel_binding: ChannelBinding,
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
    pub(crate) pool_wait_timeout: Option<Duration>,
    pub(crate) pool_recycle_timeout: Option<Duration>,
    pub(crate) pool_recycling: Recycling,
    pub(crate) read_your_writes_wait: Duration,
    pub(crate) tcp_user_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) retry: RetryPolicy,
}

/// Where Patroni's keys are read from when discovery watches etcd.
#[derive(Debug, Clone)]
pub(crate) struct EtcdSettings {
    pub(crate) urls: Vec<reqwest::Url>,
    pub(crate) namespace: String,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) ca_file: Option<PathBuf>,
}

/// How long a pooled connection may sit unused, and a client without operations keeps probing.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Patroni's default namespace (`namespace` in its configuration).
pub(crate) const DEFAULT_ETCD_NAMESPACE: &str = "/service";

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
    /// libpq connection string, a URL or `key=value` pairs (see [`ClientBuilder::url`]).
    /// Serialized with its password redacted, as [`Secret`]s are.
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: Option<String>,
    /// Patroni REST API base URLs.
    pub patroni: Vec<String>,
    /// Patroni basic-auth user.
    pub patroni_user: Option<String>,
    /// Patroni basic-auth password.
    pub patroni_password: Option<Secret>,
    /// CA for HTTPS to Patroni.
    pub patroni_ca_file: Option<PathBuf>,
    /// Client certificate (PEM, the chain) for Patroni's REST API; with `patroni_key`.
    pub patroni_cert: Option<PathBuf>,
    /// The Patroni client certificate's private key (PEM); with `patroni_cert`.
    pub patroni_key: Option<PathBuf>,
    /// The Patroni cluster name (`scope`); answers of other clusters are ignored. Required with `etcd`.
    pub patroni_scope: Option<String>,
    /// etcd client URLs (`http://host:2379`): discovery watches Patroni's keys there.
    pub etcd: Vec<String>,
    /// Patroni's `namespace` in etcd (default `/service`).
    pub etcd_namespace: Option<String>,
    /// etcd user (read access to the cluster's prefix is enough).
    pub etcd_user: Option<String>,
    /// etcd password.
    pub etcd_password: Option<Secret>,
    /// CA for HTTPS to etcd.
    pub etcd_ca_file: Option<PathBuf>,
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
    /// Client certificate (PEM, the chain) for PostgreSQL; with `sslkey`.
    pub sslcert: Option<PathBuf>,
    /// The client certificate's private key (PEM); with `sslcert`.
    pub sslkey: Option<PathBuf>,
    /// SCRAM channel binding (`require` needs TLS).
    pub channel_binding: Option<ChannelBinding>,
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
    /// How long an operation waits for a connection of a member's pool when all are in use.
    #[serde(with = "opt_duration")]
    pub pool_wait_timeout: Option<Duration>,
    /// How long a connection's check before reuse may take.
    #[serde(with = "opt_duration")]
    pub pool_recycle_timeout: Option<Duration>,
    /// How a connection is checked before reuse.
    pub pool_recycling: Option<Recycling>,
    /// Read-your-writes wait.
    #[serde(with = "opt_duration")]
    pub read_your_writes_wait: Option<Duration>,
    /// TCP user timeout (and keepalive pace) of every connection to a member.
    #[serde(with = "opt_duration")]
    pub tcp_user_timeout: Option<Duration>,
    /// Idle time after which pooled connections close and the client stops probing.
    #[serde(with = "opt_duration")]
    pub idle_timeout: Option<Duration>,
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
            patroni_cert,
            patroni_key,
            patroni_scope,
            etcd_namespace,
            etcd_user,
            etcd_password,
            etcd_ca_file,
            user,
            password,
            dbname,
            application_name,
            sslmode,
            sslrootcert,
            sslcert,
            sslkey,
            channel_binding,
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
            pool_wait_timeout,
            pool_recycle_timeout,
            pool_recycling,
            read_your_writes_wait,
            tcp_user_timeout,
            idle_timeout,
            retry
        )
    };
}

/// A certificate and its key, which go together: both or neither.
fn both_or_neither(
    (cert_name, cert): (&str, Option<PathBuf>),
    (key_name, key): (&str, Option<PathBuf>),
) -> Result<Option<(PathBuf, PathBuf)>, Error> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => Ok(None),
        _ => Err(Error::config(format!(
            "{cert_name} and {key_name} go together: give both or neither"
        ))),
    }
}

fn serialize_redacted_url<S: serde::Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    url.as_deref().map(redact_connection_string).serialize(s)
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.url.as_deref().map(redact_connection_string);
        let mut d = f.debug_struct("ClientConfig");
        d.field("url", &url);
        d.field("patroni", &self.patroni);
        d.field("etcd", &self.etcd);
        d.field("hosts", &self.hosts);
        macro_rules! show {
            ($($name:ident),*) => { $( d.field(stringify!($name), &self.$name); )* };
        }
        option_fields!(show);
        d.finish()
    }
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

    /// This configuration over `base`: each key set here, else `base`'s; a list set here
    /// replaces `base`'s. For layers, such as the environment over a configuration file:
    ///
    /// ```no_run
    /// # fn demo() -> pgha_client::Result<()> {
    /// use pgha_client::ClientConfig;
    /// let file: ClientConfig = serde_json::from_str(&std::fs::read_to_string("pgha.json").unwrap()).unwrap();
    /// let config = ClientConfig::from_env("PGHA")?.over(file);
    /// # let _ = config;
    /// # Ok(()) }
    /// ```
    pub fn over(self, base: ClientConfig) -> ClientConfig {
        let mut out = base;
        macro_rules! take {
            ($($f:ident),*) => { $( if self.$f.is_some() { out.$f = self.$f; } )* };
        }
        take!(url);
        option_fields!(take);
        for (mine, theirs) in [
            (self.patroni, &mut out.patroni),
            (self.etcd, &mut out.etcd),
            (self.hosts, &mut out.hosts),
        ] {
            if !mine.is_empty() {
                *theirs = mine;
            }
        }
        out
    }

    /// Fields set in `other` override this one's; lists are appended.
    fn merge(&mut self, other: ClientConfig) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(url);
        option_fields!(take);
        self.patroni.extend(other.patroni);
        self.etcd.extend(other.etcd);
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
        let mut etcd_urls = Vec::new();
        for raw in &self.etcd {
            let url = reqwest::Url::parse(raw).map_err(|e| Error::config(format!("etcd URL {raw:?}: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || url.path() != "/" {
                return Err(Error::config(format!("etcd URL {raw:?} must be http(s)://host[:port]")));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(Error::config(
                    "put etcd credentials in etcd_user/etcd_password, not in the URL",
                ));
            }
            etcd_urls.push(url);
        }
        let etcd = if etcd_urls.is_empty() {
            None
        } else {
            if self.patroni_scope.is_none() {
                return Err(Error::config(
                    "etcd needs patroni_scope: Patroni's keys are under /<namespace>/<scope>/",
                ));
            }
            if self.etcd_user.is_some() != self.etcd_password.is_some() {
                return Err(Error::config("etcd_user and etcd_password go together"));
            }
            Some(EtcdSettings {
                urls: etcd_urls,
                namespace: self.etcd_namespace.unwrap_or_else(|| DEFAULT_ETCD_NAMESPACE.to_owned()),
                user: self.etcd_user,
                password: self.etcd_password,
                ca_file: self.etcd_ca_file,
            })
        };
        let seed_hosts = self
            .hosts
            .iter()
            .map(|h| parse_host_port(h))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::config)?;
        if patroni_urls.is_empty() && seed_hosts.is_empty() && etcd.is_none() {
            return Err(Error::config(
                "no etcd URL, no Patroni URL and no seed host: nothing to discover the cluster from",
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
        let ssl_mode = self.sslmode.unwrap_or_default();
        let channel_binding = self.channel_binding.unwrap_or_default();
        if channel_binding == ChannelBinding::Require && ssl_mode == SslMode::Disable {
            return Err(Error::config(
                "channel_binding=require needs TLS: it cannot hold with sslmode=disable",
            ));
        }
        if pool_max_size == 0 {
            return Err(Error::config("pool_max_size must be at least 1"));
        }
        Ok(Settings {
            patroni_urls,
            patroni_user: self.patroni_user,
            patroni_password: self.patroni_password,
            patroni_ca_file: self.patroni_ca_file,
            patroni_client_cert: both_or_neither(
                ("patroni_cert", self.patroni_cert),
                ("patroni_key", self.patroni_key),
            )?,
            patroni_scope: self.patroni_scope,
            etcd,
            seed_hosts,
            dbname: self.dbname.unwrap_or_else(|| user.clone()),
            user,
            password: self.password,
            application_name: self.application_name.unwrap_or_else(|| "pgha".to_owned()),
            ssl_mode,
            channel_binding,
            ssl_ca_file: self.sslrootcert,
            ssl_client_cert: both_or_neither(("sslcert", self.sslcert), ("sslkey", self.sslkey))?,
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
            pool_wait_timeout: self
                .pool_wait_timeout
                .map(|t| positive("pool_wait_timeout", t))
                .transpose()?,
            pool_recycle_timeout: self
                .pool_recycle_timeout
                .map(|t| positive("pool_recycle_timeout", t))
                .transpose()?,
            pool_recycling: self.pool_recycling.unwrap_or_default(),
            read_your_writes_wait: self.read_your_writes_wait.unwrap_or(Duration::from_millis(100)),
            tcp_user_timeout: at_least_a_millisecond(
                "tcp_user_timeout",
                self.tcp_user_timeout.unwrap_or(Duration::from_secs(10)),
            )?,
            idle_timeout: at_least_a_millisecond("idle_timeout", self.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT))?,
            retry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::parse_duration;

    fn settings(b: ClientBuilder) -> Result<Settings> {
        b.settings()
    }

    #[test]
    fn bad_input_is_a_config_error_never_a_panic() {
        for url in [
            "mysql://u@h/d",
            "postgres://u@h:notaport/d",
            "postgres://u@h/d?target_session_attrs=primaryish",
            "postgres://u@h/d?sslmode=sometimes",
            "postgres://u@h/d?channel_binding=always",
            "postgres://u@h/d?patroni=https://h:8008&patroni_cert=/etc/pgha/client.crt",
            "postgres://u@h/d?sslkey=/etc/pgha/client.key",
            "postgres://u@h/d?sslmode=disable&channel_binding=require",
            "postgres://u@h/d?frobnicate=1",
            "postgres://u@h/d?connect_timeout=soon",
            "postgres://u@h:99999/d",
            "postgres://u@%FF/d",
        ] {
            let err = settings(ClientBuilder::default().url(url)).expect_err(url);
            assert!(err.is_config(), "{url}: {err}");
        }
        let unbound =
            settings(ClientBuilder::default().url("postgres://u@h/d?sslmode=disable&channel_binding=require"))
                .expect_err("channel binding without TLS");
        assert!(
            unbound.to_string().contains("channel_binding=require needs TLS"),
            "{unbound}"
        );
        let bound = settings(ClientBuilder::default().url("host=h user=u sslmode=verify-full channel_binding=require"))
            .expect("channel binding over TLS");
        assert_eq!(bound.channel_binding, ChannelBinding::Require);
        assert_eq!(
            settings(ClientBuilder::default().url("postgres://u@h/d"))
                .map(|s| s.channel_binding)
                .ok(),
            Some(ChannelBinding::Prefer)
        );
        let half = settings(ClientBuilder::default().url("postgres://u@h/d?sslkey=/k")).expect_err("key alone");
        assert!(half.to_string().contains("sslcert and sslkey go together"), "{half}");
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
    fn etcd_discovery_is_configured_the_same_way_in_every_form() {
        let from_builder = ClientBuilder::default()
            .user("u")
            .etcd(["http://e1:2379", "https://e2:2379"])
            .patroni_scope("orders")
            .etcd_auth("reader", "s3cret")
            .settings()
            .expect("valid");
        let from_url = ClientBuilder::default()
            .url("postgres://u@/db?etcd=http://e1:2379,https://e2:2379&patroni_scope=orders&etcd_namespace=/pg")
            .settings()
            .expect("valid");
        let from_json = serde_json::from_str::<ClientConfig>(
            r#"{"user": "u", "etcd": ["http://e1:2379"], "patroni_scope": "orders", "etcd_namespace": "pg"}"#,
        )
        .expect("valid config")
        .into_builder()
        .settings()
        .expect("valid settings");
        for s in [&from_builder, &from_url, &from_json] {
            let etcd = s.etcd.as_ref().expect("etcd configured");
            assert_eq!(etcd.urls[0].as_str(), "http://e1:2379/");
            assert!(s.patroni_urls.is_empty() && s.seed_hosts.is_empty());
        }
        assert_eq!(
            from_builder.etcd.as_ref().map(|e| e.namespace.as_str()),
            Some("/service")
        );
        assert_eq!(from_url.etcd.as_ref().map(|e| e.namespace.as_str()), Some("/pg"));
        assert!(!format!("{from_builder:?}").contains("s3cret"));

        let refused = |b: ClientBuilder, needle: &str| {
            let err = b.user("u").settings().expect_err(needle);
            assert!(err.is_config() && err.to_string().contains(needle), "{err}");
        };
        refused(ClientBuilder::default().etcd(["http://e1:2379"]), "patroni_scope");
        refused(
            ClientBuilder::default().etcd(["e1:2379"]).patroni_scope("s"),
            "etcd URL",
        );
        refused(
            ClientBuilder::default().etcd(["http://e1:2379/v3"]).patroni_scope("s"),
            "etcd URL",
        );
        refused(
            ClientBuilder::default()
                .etcd(["http://root:pw@e1:2379"])
                .patroni_scope("s"),
            "etcd_user",
        );
        let mut half = ClientBuilder::default().etcd(["http://e1:2379"]).patroni_scope("s");
        half.config.etcd_user = Some("reader".into());
        refused(half, "etcd_password");
        refused(ClientBuilder::default(), "nothing to discover");
    }

    #[test]
    fn serde_config_reads_durations_and_bounds() {
        let c: ClientConfig = serde_json::from_str(
            r#"{"url": "postgres://u:pw@h1,h2/db", "refresh_interval": "250ms", "probe_timeout": "800ms",
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

    /// One rule for every duration: a bare number is refused, as a number or as a string, with
    /// a message that asks for the unit.
    #[test]
    fn a_duration_without_a_unit_is_refused() {
        for json in [r#"{"probe_timeout": 800}"#, r#"{"probe_timeout": "800"}"#] {
            let err = serde_json::from_str::<ClientConfig>(json).expect_err(json).to_string();
            assert!(err.contains("800ms") && err.contains("800s"), "{json}: {err}");
        }
        let err = serde_json::from_str::<ClientConfig>(r#"{"retry": {"deadline": 30}}"#).expect_err("bare");
        assert!(err.to_string().contains("30s"), "{err}");
        assert!(parse_duration("60").is_err());
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
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
            ("idle_timeout", Client::builder().idle_timeout(Duration::from_nanos(10))),
        ] {
            let e = builder.seed_host("h", 5432).user("u").settings().expect_err(name);
            assert!(e.is_config() && e.to_string().contains(name), "{e}");
        }
    }
}
