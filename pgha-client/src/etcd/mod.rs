//! Discovery pushed from the DCS: Patroni's keys in etcd v3, listed once and then watched.
//!
//! One watch stream per [`Client`](crate::Client) on `/<namespace>/<scope>/`, through etcd's gRPC
//! JSON gateway ([`gateway`]), feeding the same `/cluster` document Patroni's REST API would serve
//! ([`layout`]) to the topology task, which wakes on every change ([`watcher`]). A leader key is a
//! candidate, not a primary: the topology task routes writes to it only once its database
//! confirms it, as with every other source.
//!
//! The client only reads; [`Connector::dcs_remove_cluster`](crate::Connector::dcs_remove_cluster)
//! (`pgha remove`) is the one write, and needs write permission. The etcd role to grant it (with authentication on):
//!
//! ```text
//! etcdctl role add pgha-reader
//! etcdctl role grant-permission pgha-reader read --prefix=true /service/<scope>/
//! etcdctl user add pgha --new-user-password=…
//! etcdctl user grant-role pgha pgha-reader
//! ```

mod gateway;
mod layout;
mod watcher;

use std::sync::Arc;

use tokio::sync::watch;

pub(crate) use watcher::DcsState;

use crate::config::Settings;

/// The key prefix of a Patroni cluster: `/<namespace>/<scope>/`, repeated slashes collapsed, as
/// Patroni builds it.
pub(crate) fn cluster_prefix(namespace: &str, scope: &str) -> String {
    let joined = format!("/{namespace}/{scope}/");
    let mut out = String::with_capacity(joined.len());
    for c in joined.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// Starts watching the cluster's keys, if etcd endpoints are configured. `in_use` tells the watch
/// whether the client is in use: a dormant client's watch skips its liveness checks (the one
/// request it would otherwise send) and checks at once when the client wakes.
pub(crate) fn watch(
    settings: &Settings,
    in_use: watch::Receiver<bool>,
) -> crate::Result<Option<watch::Receiver<Arc<DcsState>>>> {
    if settings.etcd.is_none() {
        return Ok(None);
    }
    let etcd = configured(settings)?;
    let config = watcher::WatchConfig {
        gateway: etcd.gateway,
        endpoints: etcd.urls.to_vec(),
        prefix: etcd.prefix,
        scope: etcd.scope.to_owned(),
        in_use,
    };
    Ok(Some(watcher::spawn(config)))
}

/// What [`Connector::dcs_remove_cluster`](crate::Connector::dcs_remove_cluster) did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DcsRemoval {
    /// The cluster's keys are deleted.
    Removed {
        /// The cluster's key prefix, `/<namespace>/<scope>/`.
        prefix: String,
        /// The deleted keys, relative to the prefix (`leader`, `members/node1`…), sorted; empty
        /// when there were none.
        keys: Vec<String>,
        /// etcd's revision after the deletion.
        revision: i64,
        /// The etcd endpoint that carried it out.
        endpoint: String,
    },
    /// Nothing was deleted: the leader key did not name the expected leader.
    LeaderMismatch {
        /// The leader the key names (`None`: there is no leader key).
        leader: Option<String>,
    },
}

/// A Patroni cluster's keys in etcd, from
/// [`Connector::dcs_cluster_keys`](crate::Connector::dcs_cluster_keys).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DcsKeys {
    /// The cluster's key prefix, `/<namespace>/<scope>/`.
    pub prefix: String,
    /// The keys, relative to the prefix (`config`, `initialize`, `leader`, `members/node1`…),
    /// sorted.
    pub keys: Vec<String>,
    /// The member the leader key names, if there is one.
    pub leader: Option<String>,
    /// etcd's revision when they were read.
    pub revision: i64,
}

/// The etcd of a configuration: the gateway, the endpoints, the scope and its key prefix.
struct Configured<'a> {
    gateway: gateway::Gateway,
    urls: &'a [reqwest::Url],
    scope: &'a str,
    prefix: String,
}

/// `settings`' etcd, or a configuration error naming what is missing.
fn configured(settings: &Settings) -> crate::Result<Configured<'_>> {
    let etcd = settings
        .etcd
        .as_ref()
        .ok_or_else(|| crate::Error::config("no etcd endpoints are configured (etcd, PGHA_ETCD_URLS)"))?;
    let scope = settings
        .patroni_scope
        .as_deref()
        .ok_or_else(|| crate::Error::config("etcd needs patroni_scope (the key prefix is /<namespace>/<scope>/)"))?;
    // An empty scope, or one with a slash, would make the prefix another cluster's or the whole
    // namespace's: `pgha remove ""` would delete every cluster under /service/.
    if scope.trim().is_empty() || scope.contains('/') {
        return Err(crate::Error::config(format!(
            "patroni_scope {scope:?} is not a Patroni cluster name (empty, or with a '/')"
        )));
    }
    let http = crate::tls::etcd_http(settings)?;
    let credentials = etcd
        .user
        .clone()
        .map(|u| (u, etcd.password.clone().unwrap_or_default()));
    Ok(Configured {
        gateway: gateway::Gateway::new(http, credentials, settings.patroni_timeout),
        urls: &etcd.urls,
        scope,
        prefix: cluster_prefix(&etcd.namespace, scope),
    })
}

/// The cluster's keys relative to `prefix`, sorted, and the leader the leader key names.
fn keys_and_leader(prefix: &str, kvs: &[gateway::KeyValue]) -> (Vec<String>, Option<String>) {
    let mut leader = None;
    let mut keys: Vec<String> = kvs
        .iter()
        .map(|kv| {
            let key = String::from_utf8_lossy(&kv.key);
            let key = key.strip_prefix(prefix).unwrap_or(&key).to_owned();
            if key == "leader" {
                leader = Some(String::from_utf8_lossy(&kv.value).into_owned());
            }
            key
        })
        .collect();
    keys.sort();
    (keys, leader)
}

/// Runs `attempt` on each configured etcd endpoint until one answers.
async fn on_any_endpoint<T, F, Fut>(settings: &Settings, what: &str, attempt: F) -> crate::Result<T>
where
    F: Fn(gateway::Gateway, gateway::Endpoint, String) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let Configured {
        gateway, urls, prefix, ..
    } = configured(settings)?;
    let mut failures = Vec::new();
    for base in urls {
        let answer = match gateway.connect(base).await {
            Ok(endpoint) => attempt(gateway.clone(), endpoint, prefix.clone()).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(answer) => return Ok(answer),
            Err(e) => failures.push(format!("{base}: {e}")),
        }
    }
    Err(crate::Error::new(crate::error::Kind::Connect)
        .with_message(format!("no etcd endpoint {what} {prefix}: {}", failures.join("; "))))
}

/// The cluster's keys (relative to its prefix) and its leader, read linearizably.
pub(crate) async fn cluster_keys(settings: &Settings) -> crate::Result<DcsKeys> {
    on_any_endpoint(settings, "listed", |gateway, endpoint, prefix| async move {
        let listed = gateway.range_prefix(&endpoint, prefix.as_bytes()).await?;
        let (keys, leader) = keys_and_leader(&prefix, &listed.kvs);
        Ok(DcsKeys {
            prefix,
            keys,
            leader,
            revision: listed.header.revision,
        })
    })
    .await
}

/// Deletes every key of the cluster in one transaction, if the leader key names `leader`
/// (`None`: if there is no leader key), on the first etcd endpoint that answers.
pub(crate) async fn remove_cluster(settings: &Settings, leader: Option<&str>) -> crate::Result<DcsRemoval> {
    let Configured {
        gateway, urls, prefix, ..
    } = configured(settings)?;
    // Another endpoint only while nothing was sent: a transaction whose answer is lost may have
    // committed, and sending it again would delete keys written since, or report a mismatch
    // after everything was deleted.
    let mut failures = Vec::new();
    let mut connected = None;
    for base in urls {
        match gateway.connect(base).await {
            Ok(endpoint) => {
                connected = Some(endpoint);
                break;
            }
            Err(e) => failures.push(format!("{base}: {e}")),
        }
    }
    let Some(endpoint) = connected else {
        return Err(crate::Error::new(crate::error::Kind::Connect)
            .with_message(format!("no etcd endpoint answered: {}", failures.join("; "))));
    };
    let guard = format!("{prefix}leader");
    let answer = gateway
        .delete_prefix_if(
            &endpoint,
            prefix.as_bytes(),
            guard.as_bytes(),
            leader.map(str::as_bytes),
        )
        .await
        .map_err(|e| {
            crate::Error::new(crate::error::Kind::OutcomeUnknown).with_message(format!(
                "removing {prefix} on {}: {e} — the deletion may or may not have happened; list the keys to see",
                endpoint.base
            ))
        })?;
    let first = answer.responses.into_iter().next();
    if !answer.succeeded {
        let holder = first
            .and_then(|r| r.response_range)
            .and_then(|r| r.kvs.into_iter().next())
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
        return Ok(DcsRemoval::LeaderMismatch { leader: holder });
    }
    let deleted = first.and_then(|r| r.response_delete_range).map(|d| d.prev_kvs);
    let (keys, _) = keys_and_leader(&prefix, &deleted.unwrap_or_default());
    Ok(DcsRemoval::Removed {
        prefix,
        keys,
        revision: answer.header.revision,
        endpoint: endpoint.base.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_that_is_not_a_cluster_name_is_refused_before_anything_is_sent() {
        for scope in ["", " ", "/", "a/b", "//"] {
            let settings = crate::Client::builder()
                .etcd(["http://127.0.0.1:1"])
                .patroni_scope(scope)
                .settings();
            // Either the configuration itself or the etcd key prefix refuses it.
            let refused = settings.and_then(|s| configured(&s).map(|_| ()));
            assert!(refused.is_err_and(|e| e.is_config()), "{scope:?}");
        }
    }

    #[test]
    fn the_prefix_is_built_as_patroni_builds_it() {
        assert_eq!(cluster_prefix("/service", "demo"), "/service/demo/");
        assert_eq!(cluster_prefix("service", "demo"), "/service/demo/");
        assert_eq!(cluster_prefix("/service/", "demo"), "/service/demo/");
        assert_eq!(cluster_prefix("//a//b//", "demo"), "/a/b/demo/");
    }
}
