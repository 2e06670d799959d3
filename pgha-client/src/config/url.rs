//! libpq-style connection URLs: `parse_url` (multi-host `postgresql://` URLs into a
//! [`ClientConfig`]), `parse_host_port` and `redact_url` (a URL with its password hidden, for `Debug`).

use std::time::Duration;

use super::{ClientConfig, Secret};
use crate::error::Error;
use crate::intent::Intent;

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

pub(super) fn parse_host_port(s: &str) -> std::result::Result<(String, u16), String> {
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
            "etcd" => config.etcd.extend(value.split(',').map(str::to_owned)),
            "etcd_namespace" => config.etcd_namespace = Some(value),
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
    use crate::config::{ClientBuilder, Settings, SslMode};
    use crate::error::Result;

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
}
