//! libpq connection strings: `parse_url` (multi-host `postgresql://` URLs into a
//! [`ClientConfig`]), `parse_conninfo` (`key=value` strings, the same options), `parse_host_port`
//! and `redact_connection_string` (either form with its password hidden, for `Debug`).

use std::time::Duration;

use super::{ClientConfig, Secret};
use crate::error::Error;
use crate::intent::Intent;

/// A connection string, URL or `key=value`, with its password (in a URL's user info, or a
/// `password` option) replaced by `<redacted>`: safe to log or to show. The string is split
/// exactly as [`ClientBuilder::url`](crate::ClientBuilder::url) splits it, so what pgha would take
/// for a password is what is hidden; a string it cannot split is not shown at all.
///
/// A string that comes back changed held a password.
///
/// ```
/// use pgha_client::redact_connection_string;
///
/// assert_eq!(
///     redact_connection_string("postgresql://app:hunter2@db1,db2/shop?sslmode=require"),
///     "postgresql://app:<redacted>@db1,db2/shop?sslmode=require"
/// );
/// assert_eq!(
///     redact_connection_string("host=db1 user=app password='it\\'s secret'"),
///     "host=db1 user=app password=<redacted>"
/// );
/// assert_eq!(redact_connection_string("not a connection string"), "<not a connection string>");
/// ```
pub fn redact_connection_string(url: &str) -> String {
    let Some((scheme, rest)) = URL_SCHEMES
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme).map(|rest| (*scheme, rest)))
    else {
        return match conninfo_pairs(url) {
            Ok(pairs) => pairs
                .iter()
                .map(|(k, v)| {
                    if k == "password" {
                        format!("{k}=<redacted>")
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
            Err(_) => "<not a connection string>".to_owned(),
        };
    };
    let (rest, query) = rest.split_once('?').map_or((rest, None), |(r, q)| (r, Some(q)));
    let (authority, db) = rest.split_once('/').map_or((rest, None), |(a, d)| (a, Some(d)));
    let mut out = scheme.to_owned();
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => out.push_str(&format!("{user}:<redacted>@{hosts}")),
            None => out.push_str(authority),
        },
        None => out.push_str(authority),
    }
    if let Some(db) = db {
        out.push('/');
        out.push_str(db);
    }
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|kv| {
                // The key as the parser decodes it (`pass%77ord` is `password` too).
                let decoded = form_urlencoded::parse(kv.as_bytes()).next().map(|(k, _)| k);
                if decoded.is_some_and(|k| k == "password") {
                    format!("{}=<redacted>", kv.split('=').next().unwrap_or_default())
                } else {
                    kv.to_owned()
                }
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// The schemes of a URL connection string; anything else is read as `key=value` pairs.
pub(super) const URL_SCHEMES: [&str; 2] = ["postgresql://", "postgres://"];

/// A host with an optional `:port` (5432 without): a name, an address (`[…]` around an IPv6
/// one), or — starting with `/` — the directory of a Unix-domain socket, as libpq takes it.
pub(super) fn parse_host_port(s: &str) -> std::result::Result<(String, u16), String> {
    if s.starts_with('/') {
        // A directory may hold a `:`; only a number after the last one is a port.
        return Ok(match s.rsplit_once(':') {
            Some((dir, port)) if !dir.is_empty() => match port.parse::<u16>() {
                Ok(port) => (dir.to_owned(), port),
                Err(_) => (s.to_owned(), 5432),
            },
            _ => (s.to_owned(), 5432),
        });
    }
    if s.starts_with('@') {
        return Err(format!(
            "host {s:?}: abstract Unix-domain sockets are not supported; give a socket directory, a host name or an address"
        ));
    }
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
pub(super) fn parse_url(url: &str) -> std::result::Result<ClientConfig, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "URL component is not valid UTF-8 after percent-decoding".to_owned())
    };
    let rest = URL_SCHEMES
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
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
    let mut ports = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        apply(&mut config, &mut ports, &key, value.into_owned())?;
    }
    with_ports(&mut config, &ports)?;
    Ok(config)
}

/// Parses a libpq `key=value` connection string (`host=h1,h2 port=5432 dbname=app
/// user=app password='it\\'s' target_session_attrs=read-write`), with the options of [`parse_url`].
///
/// tokio-postgres's own parser is not used: it refuses libpq options pgha honours
/// (`sslrootcert`, `target_session_attrs=prefer-standby`) and pgha's own (`patroni`, `etcd`).
pub(super) fn parse_conninfo(conninfo: &str) -> std::result::Result<ClientConfig, String> {
    let mut config = ClientConfig::default();
    let mut ports = Vec::new();
    for (key, value) in conninfo_pairs(conninfo)? {
        apply(&mut config, &mut ports, &key, value)?;
    }
    with_ports(&mut config, &ports)?;
    Ok(config)
}

/// `key=value` pairs separated by blanks; a value may be single-quoted, with `\'` and `\\`
/// escapes, as libpq reads them.
fn conninfo_pairs(s: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            // Not the text itself: an unquoted password with a blank in it ends up here.
            return Err(format!(
                "connection string: missing \"=\" after option {} (quote values that hold blanks)",
                pairs.len() + 1
            ));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.push(chars.next().ok_or("connection string: \\ at the end")?),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("connection string: unterminated quoted value of {key:?}")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(chars.next().ok_or("connection string: \\ at the end")?);
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// Gives the hosts named without a port the `port` option's: one port for all, or one per host.
fn with_ports(config: &mut ClientConfig, ports: &[String]) -> std::result::Result<(), String> {
    if ports.is_empty() {
        return Ok(());
    }
    if ports.len() > 1 && ports.len() != config.hosts.len() {
        return Err(format!("{} ports for {} hosts", ports.len(), config.hosts.len()));
    }
    for (i, host) in config.hosts.iter_mut().enumerate() {
        let port = &ports[if ports.len() == 1 { 0 } else { i }];
        port.parse::<u16>().map_err(|_| format!("invalid port {port:?}"))?;
        // A socket directory never carries its port in the host: it always gets the option's.
        if host.starts_with('/') || !host.contains(':') || host.ends_with(']') {
            *host = format!("{host}:{port}");
        }
    }
    Ok(())
}

/// One option of a URL's query or a connection string.
fn apply(
    config: &mut ClientConfig,
    ports: &mut Vec<String>,
    key: &str,
    value: String,
) -> std::result::Result<(), String> {
    {
        match key {
            "target_session_attrs" => {
                config.default_intent = Some(
                    Intent::from_target_session_attrs(&value)
                        .ok_or_else(|| format!("unknown target_session_attrs {value:?}"))?,
                );
            }
            "sslmode" => config.sslmode = Some(value.parse().map_err(|e: Error| e.to_string())?),
            "sslrootcert" => config.sslrootcert = Some(value.into()),
            "sslcert" => config.sslcert = Some(value.into()),
            "sslkey" => config.sslkey = Some(value.into()),
            "channel_binding" => {
                config.channel_binding = Some(value.parse().map_err(|e: Error| e.to_string())?);
            }
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
            "patroni_cert" => config.patroni_cert = Some(value.into()),
            "patroni_key" => config.patroni_key = Some(value.into()),
            "etcd" => config.etcd.extend(value.split(',').map(str::to_owned)),
            "etcd_namespace" => config.etcd_namespace = Some(value),
            "user" => config.user = Some(value),
            "password" => config.password = Some(Secret(value)),
            "dbname" => config.dbname = Some(value),
            "host" => {
                for host in value.split(',').filter(|h| !h.is_empty()) {
                    parse_host_port(host)?;
                    config.hosts.push(host.to_owned());
                }
            }
            "port" => ports.extend(value.split(',').map(str::to_owned)),
            "load_balance_hosts" => {}
            other => return Err(format!("unknown connection option {other:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientBuilder, Settings, SslMode};
    use crate::error::Result;

    fn settings(b: ClientBuilder) -> Result<Settings> {
        b.settings()
    }

    #[test]
    fn urls_are_redacted_in_debug() {
        assert_eq!(
            redact_connection_string("postgresql://app:p%40ss@db1:5433,db2/shop?sslmode=disable&password=x"),
            "postgresql://app:<redacted>@db1:5433,db2/shop?sslmode=disable&password=<redacted>"
        );
        assert_eq!(redact_connection_string("postgres://app@db1"), "postgres://app@db1");
        assert_eq!(redact_connection_string("garbage:secret"), "<not a connection string>");
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
        assert_is_the_sample(&s);
    }

    /// What both sample connection strings, URL and `key=value`, say.
    fn assert_is_the_sample(s: &Settings) {
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
    fn a_key_value_connection_string_maps_onto_the_same_settings() {
        let s = settings(ClientBuilder::default().url(
            "host=db1,db2,[::1] port=5433,5432,5434 dbname=shop user = app password='p@ss' \
             target_session_attrs=prefer-standby sslmode=disable patroni=http://db1:8008,http://db2:8008 \
             application_name=api connect_timeout=3",
        ))
        .expect("valid connection string");
        assert_is_the_sample(&s);
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
        let quoted =
            settings(ClientBuilder::default().url("host=a user=u password='it\\'s \\\\ spaced'")).expect("valid");
        assert_eq!(quoted.password.as_ref().map(Secret::expose), Some("it's \\ spaced"));
        let one_port = settings(ClientBuilder::default().url("host=a,b port=6000 user=u")).expect("valid");
        assert_eq!(one_port.seed_hosts, vec![("a".into(), 6000), ("b".into(), 6000)]);

        for (bad, why) in [
            ("host=@pgsocket user=u", "abstract Unix-domain sockets"),
            ("host=a,b,c port=1,2", "2 ports for 3 hosts"),
            ("user", "missing \"=\""),
            ("password='open", "unterminated"),
            ("hostaddr=10.0.0.1", "unknown connection option"),
        ] {
            let e = settings(ClientBuilder::default().url(bad)).expect_err(bad);
            assert!(e.is_config() && e.to_string().contains(why), "{bad}: {e}");
        }
        let shown = redact_connection_string("host=db1 user=app password='it\\'s secret'");
        assert_eq!(shown, "host=db1 user=app password=<redacted>");
        // An unquoted password with a blank: the error names the option, not the text after it.
        let e = settings(ClientBuilder::default().url("host=db1 password=open sesame")).expect_err("no =");
        assert!(!e.to_string().contains("sesame"), "{e}");
    }

    /// What the parsers would take for a password is hidden: a key they percent-decode to
    /// `password`, and a string that only looks like a URL (it once showed as it was).
    #[test]
    fn redaction_splits_as_the_parsers_do() {
        let url = "postgresql://app@db1/app?pass%77ord=hunter2&sslmode=disable";
        assert_eq!(
            settings(ClientBuilder::default().url(url)).expect("valid").password,
            Some(Secret::new("hunter2"))
        );
        assert_eq!(
            redact_connection_string(url),
            "postgresql://app@db1/app?pass%77ord=<redacted>&sslmode=disable"
        );
        let not_a_url = "{\"patroni\": [\"http://h:8008\"]}&password=hunter2";
        assert_eq!(redact_connection_string(not_a_url), "<not a connection string>");
        let config = ClientConfig {
            url: Some("postgresql://u:hunter2@h/db".into()),
            ..ClientConfig::default()
        };
        let written = serde_json::to_string(&config).expect("serializes");
        assert!(written.contains("postgresql://u:<redacted>@h/db"), "{written}");
    }

    /// A host that starts with `/` is a socket directory, as libpq reads it, in either form; its
    /// port is the `port` option's (or 5432), whatever `:` the directory holds.
    #[test]
    fn unix_socket_directories_are_hosts() {
        for (conninfo, seeds) in [
            ("host=/var/run/postgresql user=u", vec![("/var/run/postgresql", 5432)]),
            (
                "host=/run/pg,db2 port=5433 user=u",
                vec![("/run/pg", 5433), ("db2", 5433)],
            ),
            (
                "host=/tmp/a:b,x port=6000,6001 user=u",
                vec![("/tmp/a:b", 6000), ("x", 6001)],
            ),
            (
                "postgresql://u@%2Fvar%2Frun%2Fpostgresql/app",
                vec![("/var/run/postgresql", 5432)],
            ),
            (
                "postgresql://u@%2Frun%2Fpg:5434,db2/app",
                vec![("/run/pg", 5434), ("db2", 5432)],
            ),
            (
                "postgresql:///app?user=u&host=/run/pg&port=5435",
                vec![("/run/pg", 5435)],
            ),
        ] {
            let s = settings(ClientBuilder::default().url(conninfo)).expect(conninfo);
            let want: Vec<(String, u16)> = seeds.into_iter().map(|(h, p)| (h.to_owned(), p)).collect();
            assert_eq!(s.seed_hosts, want, "{conninfo}");
        }
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
}
