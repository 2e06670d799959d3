//! Discovery pushed from the DCS: Patroni's keys in etcd v3, listed once and then watched.
//!
//! One watch stream per [`Client`](crate::Client) on `/<namespace>/<scope>/`, through etcd's gRPC
//! JSON gateway ([`gateway`]), feeding the same `/cluster` document Patroni's REST API would serve
//! ([`layout`]) to the topology task, which wakes on every change ([`watcher`]). A leader key is a
//! candidate, not a primary: the topology task routes writes to it only once its database
//! confirms it, as with every other source.
//!
//! The client only reads. The etcd role to grant it (with authentication on):
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
    let Some(etcd) = &settings.etcd else {
        return Ok(None);
    };
    let scope = settings
        .patroni_scope
        .clone()
        .ok_or_else(|| crate::Error::config("etcd needs patroni_scope (the key prefix is /<namespace>/<scope>/)"))?;
    let http = crate::tls::etcd_http(settings)?;
    let credentials = etcd
        .user
        .clone()
        .map(|u| (u, etcd.password.clone().unwrap_or_default()));
    let config = watcher::WatchConfig {
        gateway: gateway::Gateway::new(http, credentials, settings.patroni_timeout),
        endpoints: etcd.urls.clone(),
        prefix: cluster_prefix(&etcd.namespace, &scope),
        scope,
        in_use,
    };
    Ok(Some(watcher::spawn(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_is_built_as_patroni_builds_it() {
        assert_eq!(cluster_prefix("/service", "demo"), "/service/demo/");
        assert_eq!(cluster_prefix("service", "demo"), "/service/demo/");
        assert_eq!(cluster_prefix("/service/", "demo"), "/service/demo/");
        assert_eq!(cluster_prefix("//a//b//", "demo"), "/a/b/demo/");
    }
}
