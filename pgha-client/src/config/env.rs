//! [`ClientConfig::from_env`]: the configuration from environment variables — `<PREFIX>_*`
//! (the names the `pgha` CLI reads with the prefix `PGHA`), then libpq's `PG*` for what those
//! leave unset.

use serde_json::{Map, Value};

use super::ClientConfig;
use crate::error::{Error, Result};
use crate::intent::Intent;

/// How a variable's text becomes a value of the serde form.
#[derive(Debug, Clone, Copy)]
enum Form {
    /// As it is (strings, durations such as `2s`, enums such as `verify-full`).
    Text,
    /// Comma-separated, blanks trimmed, empty items dropped.
    List,
    /// A whole number.
    Number,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
}

/// Every variable: its name after `<PREFIX>_`, the key path in [`ClientConfig`]'s serde form, and
/// its form. The names are the configuration keys in capitals, except where the `pgha` CLI
/// already had a name (`DSN`, `PATRONI_URLS`, `PATRONI_CA`) and for etcd's `ETCD_URLS` and
/// `ETCD_CA`, named like them.
const VARIABLES: &[(&str, &[&str], Form)] = &[
    ("DSN", &["url"], Form::Text),
    ("PATRONI_URLS", &["patroni"], Form::List),
    ("PATRONI_USER", &["patroni_user"], Form::Text),
    ("PATRONI_PASSWORD", &["patroni_password"], Form::Text),
    ("PATRONI_CA", &["patroni_ca_file"], Form::Text),
    ("PATRONI_CERT", &["patroni_cert"], Form::Text),
    ("PATRONI_KEY", &["patroni_key"], Form::Text),
    ("PATRONI_SCOPE", &["patroni_scope"], Form::Text),
    ("ETCD_URLS", &["etcd"], Form::List),
    ("ETCD_NAMESPACE", &["etcd_namespace"], Form::Text),
    ("ETCD_USER", &["etcd_user"], Form::Text),
    ("ETCD_PASSWORD", &["etcd_password"], Form::Text),
    ("ETCD_CA", &["etcd_ca_file"], Form::Text),
    ("HOSTS", &["hosts"], Form::List),
    ("USER", &["user"], Form::Text),
    ("PASSWORD", &["password"], Form::Text),
    ("DBNAME", &["dbname"], Form::Text),
    ("APPLICATION_NAME", &["application_name"], Form::Text),
    ("SSLMODE", &["sslmode"], Form::Text),
    ("SSLROOTCERT", &["sslrootcert"], Form::Text),
    ("SSLCERT", &["sslcert"], Form::Text),
    ("SSLKEY", &["sslkey"], Form::Text),
    ("CHANNEL_BINDING", &["channel_binding"], Form::Text),
    ("DEFAULT_INTENT", &["default_intent"], Form::Text),
    ("LAG_BOUND_TIME", &["lag_bound", "time"], Form::Text),
    ("LAG_BOUND_BYTES", &["lag_bound", "bytes"], Form::Number),
    ("FALLBACK_TO_PRIMARY", &["fallback_to_primary"], Form::Bool),
    ("BALANCE", &["balance"], Form::Text),
    ("REFRESH_INTERVAL", &["refresh_interval"], Form::Text),
    ("MIN_REFRESH_INTERVAL", &["min_refresh_interval"], Form::Text),
    ("PATRONI_TIMEOUT", &["patroni_timeout"], Form::Text),
    ("PROBE_TIMEOUT", &["probe_timeout"], Form::Text),
    ("CONNECT_TIMEOUT", &["connect_timeout"], Form::Text),
    ("POOL_MAX_SIZE", &["pool_max_size"], Form::Number),
    ("POOL_WAIT_TIMEOUT", &["pool_wait_timeout"], Form::Text),
    ("POOL_RECYCLE_TIMEOUT", &["pool_recycle_timeout"], Form::Text),
    ("POOL_RECYCLING", &["pool_recycling"], Form::Text),
    ("READ_YOUR_WRITES_WAIT", &["read_your_writes_wait"], Form::Text),
    ("TCP_USER_TIMEOUT", &["tcp_user_timeout"], Form::Text),
    ("IDLE_TIMEOUT", &["idle_timeout"], Form::Text),
    ("RETRY_DEADLINE", &["retry", "deadline"], Form::Text),
    ("RETRY_INITIAL_BACKOFF", &["retry", "initial_backoff"], Form::Text),
    ("RETRY_MAX_BACKOFF", &["retry", "max_backoff"], Form::Text),
    ("RETRY_BUDGET_BURST", &["retry", "budget_burst"], Form::Number),
    ("RETRY_BUDGET_PER_SECOND", &["retry", "budget_per_second"], Form::Number),
];

/// libpq's variables that fill a key no `<PREFIX>_*` variable set, when there is no `<PREFIX>_DSN`
/// (a connection string carries its own). `PGHOST`/`PGPORT`, `PGCONNECT_TIMEOUT` and
/// `PGTARGETSESSIONATTRS` are translated in [`libpq`].
const LIBPQ: &[(&str, &str)] = &[
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGDATABASE", "dbname"),
    ("PGAPPNAME", "application_name"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGCHANNELBINDING", "channel_binding"),
];

impl ClientConfig {
    /// The configuration from environment variables named `<prefix>_<KEY>`: with the prefix
    /// `PGHA`, the variables the `pgha` CLI reads, so one environment serves both.
    ///
    /// | variable | key |
    /// |---|---|
    /// | `PGHA_DSN` | `url` (a libpq connection string: a URL or `key=value` pairs) |
    /// | `PGHA_PATRONI_URLS`, `PGHA_ETCD_URLS`, `PGHA_HOSTS` | `patroni`, `etcd`, `hosts` (comma-separated) |
    /// | `PGHA_PATRONI_CA`, `PGHA_ETCD_CA` | `patroni_ca_file`, `etcd_ca_file` |
    /// | `PGHA_PATRONI_CERT`, `PGHA_PATRONI_KEY` | `patroni_cert`, `patroni_key` |
    /// | `PGHA_LAG_BOUND_TIME`, `PGHA_LAG_BOUND_BYTES` | `lag_bound.time`, `lag_bound.bytes` |
    /// | `PGHA_RETRY_DEADLINE`, `PGHA_RETRY_INITIAL_BACKOFF`, `PGHA_RETRY_MAX_BACKOFF`, `PGHA_RETRY_BUDGET_BURST`, `PGHA_RETRY_BUDGET_PER_SECOND` | the `retry` keys |
    /// | `PGHA_<KEY>` | every other key of [`ClientConfig`] in capitals: `PGHA_USER`, `PGHA_PASSWORD`, `PGHA_DBNAME`, `PGHA_SSLMODE`, `PGHA_PATRONI_SCOPE`, `PGHA_POOL_MAX_SIZE`, `PGHA_IDLE_TIMEOUT`… |
    ///
    /// Values are written as in a configuration file: durations with their unit (`2s`,
    /// `250ms`), `true`/`false`. Without `<prefix>_DSN`, libpq's variables fill the keys left
    /// unset: `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGAPPNAME`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`, `PGCHANNELBINDING`,
    /// `PGHOST`/`PGPORT` (seed hosts, socket directories among them; lists as libpq takes them), `PGCONNECT_TIMEOUT` (seconds)
    /// and `PGTARGETSESSIONATTRS` (the default intent). A password not given at all is looked up
    /// in `PGPASSFILE` or `~/.pgpass` for each member, as libpq does. Variables of the prefix
    /// that name no key (an application's own, the CLI's `PGHA_STANZA`…) are ignored; a value
    /// that does not parse is an error naming the variable.
    ///
    /// ```
    /// # fn main() -> pgha_client::Result<()> {
    /// // PGHA_PATRONI_URLS=http://10.0.0.1:8008,http://10.0.0.2:8008 PGHA_USER=app …
    /// let config = pgha_client::ClientConfig::from_env("PGHA")?;
    /// let builder = config.into_builder();
    /// # let _ = builder;
    /// # Ok(()) }
    /// ```
    pub fn from_env(prefix: &str) -> Result<Self> {
        from_vars(
            prefix,
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }
}

/// [`ClientConfig::from_env`] on the given variables.
pub(super) fn from_vars(prefix: &str, vars: impl IntoIterator<Item = (String, String)>) -> Result<ClientConfig> {
    let vars: std::collections::HashMap<String, String> = vars.into_iter().collect();
    let get = |name: &str| vars.get(name).map(String::as_str);
    let mut form = Map::new();
    for (suffix, path, kind) in VARIABLES {
        let name = format!("{prefix}_{suffix}");
        if let Some(text) = get(&name) {
            insert(&mut form, path, value(&name, text, *kind)?, &name)?;
        }
    }
    if get(&format!("{prefix}_DSN")).is_none() {
        for (name, key) in LIBPQ {
            if let (Some(text), false) = (get(name), form.contains_key(*key)) {
                insert(&mut form, &[key], Value::String(text.to_owned()), name)?;
            }
        }
        libpq(&get, &mut form)?;
    }
    serde_json::from_value(Value::Object(form)).map_err(|e| Error::config(format!("environment: {e}")))
}

/// `PGHOST`/`PGPORT`, `PGCONNECT_TIMEOUT` and `PGTARGETSESSIONATTRS`, where no `<PREFIX>_*`
/// variable set the key.
fn libpq<'a>(get: &impl Fn(&str) -> Option<&'a str>, form: &mut Map<String, Value>) -> Result<()> {
    if let (Some(hosts), false) = (get("PGHOST"), form.contains_key("hosts")) {
        let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
        let ports: Vec<&str> = get("PGPORT").map_or_else(Vec::new, |p| p.split(',').map(str::trim).collect());
        if ports.len() > 1 && ports.len() != hosts.len() {
            return Err(Error::config(format!(
                "PGPORT lists {} ports for {} hosts in PGHOST",
                ports.len(),
                hosts.len()
            )));
        }
        let mut seeds = Vec::with_capacity(hosts.len());
        for (i, host) in hosts.iter().enumerate() {
            // A socket directory is a seed like any host; an abstract socket (`@name`) is not
            // supported, and an empty entry means libpq's default, which pgha does not guess.
            if host.starts_with('@') || host.is_empty() {
                tracing::debug!(host, "PGHOST names an abstract or default socket: not a seed host");
                continue;
            }
            let port = ports.get(i).or(ports.first()).copied().unwrap_or("5432");
            seeds.push(Value::String(format!("{host}:{port}")));
        }
        if !seeds.is_empty() {
            form.insert("hosts".into(), Value::Array(seeds));
        }
    }
    if let (Some(text), false) = (get("PGCONNECT_TIMEOUT"), form.contains_key("connect_timeout")) {
        let seconds: i64 = text
            .trim()
            .parse()
            .map_err(|_| Error::config(format!("PGCONNECT_TIMEOUT={text:?}: not a whole number of seconds")))?;
        // libpq: zero or less waits for ever, which pgha does not; its own default applies then.
        if seconds > 0 {
            // libpq uses at least 2 s.
            form.insert("connect_timeout".into(), Value::String(format!("{}s", seconds.max(2))));
        }
    }
    if let (Some(text), false) = (get("PGTARGETSESSIONATTRS"), form.contains_key("default_intent")) {
        let intent = Intent::from_target_session_attrs(text.trim())
            .ok_or_else(|| Error::config(format!("PGTARGETSESSIONATTRS={text:?}: unknown value")))?;
        form.insert("default_intent".into(), Value::String(intent.label().into()));
    }
    Ok(())
}

fn value(name: &str, text: &str, form: Form) -> Result<Value> {
    let text = text.trim();
    Ok(match form {
        Form::Text => Value::String(text.to_owned()),
        Form::List => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        Form::Number => Value::from(
            text.parse::<u64>()
                .map_err(|_| Error::config(format!("{name}={text:?}: not a whole number")))?,
        ),
        Form::Bool => Value::Bool(match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(Error::config(format!("{name}={text:?}: not true or false"))),
        }),
    })
}

/// Puts `value` at `path` in the serde form, after checking that it deserializes there alone, so
/// that an error names the variable. (Secrets are strings: any value is valid, so no error
/// repeats one.)
fn insert(form: &mut Map<String, Value>, path: &[&str], value: Value, name: &str) -> Result<()> {
    let mut alone = Map::new();
    put(&mut alone, path, value.clone());
    serde_json::from_value::<ClientConfig>(Value::Object(alone)).map_err(|e| Error::config(format!("{name}: {e}")))?;
    put(form, path, value);
    Ok(())
}

fn put(form: &mut Map<String, Value>, path: &[&str], value: Value) {
    match path {
        [] => {}
        [key] => {
            form.insert((*key).to_owned(), value);
        }
        [key, rest @ ..] => {
            let inner = form
                .entry((*key).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = inner {
                put(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn every_key_of_the_configuration_has_a_variable() {
        // One value per variable, each valid for its key.
        let sample = |suffix: &str| match suffix {
            "DSN" => "postgresql://u@h1:5432/d",
            "PATRONI_URLS" | "ETCD_URLS" => "http://a:1, http://b:2",
            "HOSTS" => "a:5432,b:5433",
            "SSLMODE" => "verify-full",
            "CHANNEL_BINDING" => "require",
            "DEFAULT_INTENT" => "prefer-standby",
            "BALANCE" => "round-robin",
            "POOL_RECYCLING" => "clean",
            "FALLBACK_TO_PRIMARY" => "false",
            "LAG_BOUND_BYTES" | "POOL_MAX_SIZE" | "RETRY_BUDGET_BURST" | "RETRY_BUDGET_PER_SECOND" => "7",
            s if s.ends_with("TIMEOUT")
                || s.ends_with("INTERVAL")
                || s.ends_with("TIME")
                || s.ends_with("WAIT")
                || s.ends_with("BACKOFF")
                || s.ends_with("DEADLINE") =>
            {
                "3s"
            }
            _ => "x",
        };
        let all: Vec<(String, String)> = VARIABLES
            .iter()
            .map(|(s, ..)| (format!("APP_{s}"), sample(s).to_owned()))
            .collect();
        let config = from_vars("APP", all).expect("every sample parses");
        let written = serde_json::to_value(&config).expect("serializes");
        for (key, value) in written.as_object().expect("an object") {
            let set = !(value.is_null() || value.as_array().is_some_and(Vec::is_empty));
            assert!(set, "no variable sets `{key}`");
        }
        assert_eq!(config.pool_max_size, Some(7));
        assert_eq!(config.pool_wait_timeout, Some(Duration::from_secs(3)));
        assert_eq!(config.pool_recycling, Some(crate::Recycling::Clean));
        assert_eq!(config.patroni, ["http://a:1", "http://b:2"]);
        assert_eq!(config.lag_bound.and_then(|b| b.time), Some(Duration::from_secs(3)));
        assert_eq!(config.retry.map(|r| r.budget_burst), Some(7));
        assert_eq!(config.fallback_to_primary, Some(false));
        assert_eq!(config.default_intent, Some(Intent::PreferStandby));
        assert_eq!(config.channel_binding, Some(crate::ChannelBinding::Require));
    }

    #[test]
    fn the_cli_names_and_libpq_fallbacks() {
        let config = from_vars(
            "PGHA",
            vars(&[
                ("PGHA_PATRONI_URLS", "http://n1:8008,http://n2:8008"),
                ("PGHA_USER", "app"),
                ("PGUSER", "postgres"),
                ("PGPASSWORD", "from-libpq"),
                ("PGDATABASE", "shop"),
                ("PGHOST", "db1,db2"),
                ("PGPORT", "5433,5434"),
                ("PGCONNECT_TIMEOUT", "1"),
                ("PGTARGETSESSIONATTRS", "read-only"),
                ("PGHA_LISTEN", "127.0.0.1:8080"),
                ("PGHA_STANZA", "main"),
            ]),
        )
        .expect("parses");
        assert_eq!(config.user.as_deref(), Some("app"), "PGHA_* wins over PG*");
        assert_eq!(config.password.as_ref().map(|p| p.expose()), Some("from-libpq"));
        assert_eq!(config.dbname.as_deref(), Some("shop"));
        assert_eq!(config.hosts, ["db1:5433", "db2:5434"]);
        assert_eq!(config.connect_timeout, Some(Duration::from_secs(2)), "libpq's minimum");
        assert_eq!(config.default_intent, Some(Intent::Standby));

        // A connection string carries its own settings: PG* do not add to it.
        let config = from_vars(
            "PGHA",
            vars(&[
                ("PGHA_DSN", "postgresql://app@h/db"),
                ("PGUSER", "postgres"),
                ("PGHOST", "other"),
            ]),
        )
        .expect("parses");
        assert_eq!(config.url.as_deref(), Some("postgresql://app@h/db"));
        assert_eq!((config.user, config.hosts.len()), (None, 0));
    }

    #[test]
    fn a_bad_value_is_an_error_naming_the_variable_and_never_a_password() {
        for (pairs, names) in [
            (vec![("PGHA_POOL_MAX_SIZE", "ten")], "PGHA_POOL_MAX_SIZE"),
            (vec![("PGHA_IDLE_TIMEOUT", "30")], "PGHA_IDLE_TIMEOUT"),
            (vec![("PGHA_SSLMODE", "sometimes")], "PGHA_SSLMODE"),
            (vec![("PGHA_FALLBACK_TO_PRIMARY", "maybe")], "PGHA_FALLBACK_TO_PRIMARY"),
            (vec![("PGHOST", "a,b,c"), ("PGPORT", "1,2")], "PGPORT"),
            (vec![("PGCONNECT_TIMEOUT", "soon")], "PGCONNECT_TIMEOUT"),
        ] {
            let e = from_vars("PGHA", vars(&pairs)).expect_err("refused");
            assert!(e.is_config() && e.to_string().contains(names), "{pairs:?}: {e}");
        }
        let config = from_vars("PGHA", vars(&[("PGHA_PASSWORD", "hunter2")])).expect("parses");
        assert!(!format!("{config:?}").contains("hunter2"));
        // A socket directory in PGHOST is a seed host; an abstract socket is skipped, no error.
        let config = from_vars(
            "PGHA",
            vars(&[("PGHOST", "/var/run/postgresql,@abstract,db1"), ("PGPORT", "5433")]),
        )
        .expect("parses");
        assert_eq!(config.hosts, ["/var/run/postgresql:5433", "db1:5433"]);
    }
}
