//! The watch task: list Patroni's keys, watch them from the next revision, and publish what they
//! say after every change; on any failure, another etcd member after a jittered backoff, resuming
//! from the last revision (or listing again after a compaction).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::Url;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::gateway::{Endpoint, Event, Gateway, RangeResponse};
use super::layout::Keyspace;
use crate::patroni::{ClusterView, HistoryEntry};

/// How often the member a watch is open on is asked for the leader key, as it has it (a
/// serializable read, answered locally: a linearizable one costs a raft round, and at a fleet's
/// scale that is most of etcd's work). A member that stopped answering (frozen, cut off) fails
/// the check; one whose stream silently stopped disagrees with what the watch delivered. A member
/// that lost its quorum is caught by require-leader, which cancels its streams.
const LIVENESS_INTERVAL: Duration = Duration::from_secs(10);

/// Reconnection backoff: from `FIRST` doubling up to `MAX`, each wait jittered to 50–100 %.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What the DCS says, as last seen.
#[derive(Debug, Clone)]
pub(crate) struct DcsState {
    /// The cluster as Patroni's `/cluster` would describe it; `None` before the first list, or
    /// when the prefix holds no cluster.
    pub(crate) view: Option<ClusterView>,
    /// The timeline history (the `history` key).
    pub(crate) history: Option<Vec<HistoryEntry>>,
    /// The etcd member the keys were read from.
    pub(crate) endpoint: Option<Url>,
    /// A watch is open and its member answered the last liveness check.
    pub(crate) live: bool,
    /// When `live` last changed.
    pub(crate) since: Instant,
    /// Why the watch is not live, or why the keys give no view.
    pub(crate) error: Option<String>,
}

impl DcsState {
    fn initial() -> Self {
        Self {
            view: None,
            history: None,
            endpoint: None,
            live: false,
            since: Instant::now(),
            error: Some("etcd not read yet".into()),
        }
    }
}

/// What the watch task needs.
#[derive(Debug)]
pub(crate) struct WatchConfig {
    pub(crate) gateway: Gateway,
    pub(crate) endpoints: Vec<Url>,
    /// `/<namespace>/<scope>/`.
    pub(crate) prefix: String,
    pub(crate) scope: String,
    /// Whether the client is in use (not dormant).
    pub(crate) in_use: watch::Receiver<bool>,
}

/// Starts the watch task; it ends when every receiver is gone.
pub(crate) fn spawn(config: WatchConfig) -> watch::Receiver<Arc<DcsState>> {
    let (tx, rx) = watch::channel(Arc::new(DcsState::initial()));
    tokio::spawn(run(config, tx));
    rx
}

/// The keys and the revision they are current at, or nothing (list again).
type Cache = Option<Keyspace>;

async fn run(config: WatchConfig, tx: watch::Sender<Arc<DcsState>>) {
    let n = config.endpoints.len();
    if n == 0 {
        return;
    }
    let mut next = rand::rng().random_range(0..n);
    let mut cache: Cache = None;
    let mut failures = 0u32;
    loop {
        let base = config.endpoints[next % n].clone();
        next = next.wrapping_add(1);
        let outcome = tokio::select! {
            outcome = session(&config, &base, &mut cache, &tx, &mut failures) => outcome,
            () = tx.closed() => return,
        };
        let reason = outcome.err().unwrap_or_default();
        warn!(endpoint = %base, reason, "etcd watch lost; trying the next etcd member");
        tx.send_modify(|state| {
            let state = Arc::make_mut(state);
            if state.live {
                state.since = Instant::now();
            }
            state.live = false;
            state.error = Some(format!("etcd {base}: {reason}"));
        });
        failures = failures.saturating_add(1);
        let wait = backoff(failures);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = tx.closed() => return,
        }
    }
}

/// The wait before the `failures`-th reconnection: doubling from `BACKOFF_FIRST`, capped at
/// `BACKOFF_MAX`, jittered to 50–100 % so that a fleet does not reconnect in step.
fn backoff(failures: u32) -> Duration {
    let exp = BACKOFF_FIRST.saturating_mul(1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX));
    let cap = exp.min(BACKOFF_MAX);
    cap.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// One connection to one member: list if needed, watch, apply, check liveness. Returns only on
/// failure.
async fn session(
    config: &WatchConfig,
    base: &Url,
    cache: &mut Cache,
    tx: &watch::Sender<Arc<DcsState>>,
    failures: &mut u32,
) -> Result<(), String> {
    let gateway = &config.gateway;
    let mut in_use = config.in_use.clone();
    let endpoint = gateway.connect(base).await?;
    let prefix = config.prefix.as_bytes();
    loop {
        let keyspace = match cache.take() {
            Some(k) => k,
            None => {
                let listed = gateway.range_prefix(&endpoint, prefix).await?;
                debug!(endpoint = %base, revision = listed.header.revision, keys = listed.kvs.len(), "etcd keys listed");
                keyspace_of(listed, prefix)
            }
        };
        let revision = keyspace.revision;
        *cache = Some(keyspace);
        let mut stream = gateway.watch(&endpoint, prefix, revision + 1).await?;
        let mut liveness = tokio::time::interval_at(
            tokio::time::Instant::now() + jittered(LIVENESS_INTERVAL),
            LIVENESS_INTERVAL,
        );
        let mut suspect = false;
        loop {
            tokio::select! {
                message = stream.next() => {
                    let message = message?;
                    if message.canceled {
                        if message.compact_revision > 0 {
                            info!(endpoint = %base, compact_revision = message.compact_revision, "etcd history compacted past the watch: listing again");
                            *cache = None;
                            break;
                        }
                        return Err(format!("watch canceled: {}", non_empty(&message.cancel_reason, "no reason given (the member may have lost its leader)")));
                    }
                    let Some(keys) = cache.as_mut() else { break };
                    if message.created {
                        *failures = 0;
                        publish(config, keys, &endpoint, true, tx);
                        continue;
                    }
                    let mut changed = false;
                    for event in message.events {
                        changed |= apply(keys, prefix, event);
                    }
                    if changed {
                        publish(config, keys, &endpoint, true, tx);
                    } else if message.header.revision > keys.revision {
                        // A progress notification: every event up to here has been delivered.
                        keys.revision = message.header.revision;
                    }
                }
                woke = in_use.changed() => {
                    if woke.is_err() || !*in_use.borrow_and_update() {
                        if woke.is_err() {
                            // The client is gone; the task ends when its receiver is dropped.
                            std::future::pending::<()>().await;
                        }
                        continue;
                    }
                    // The client woke: check now, before it routes on what the watch says.
                    liveness.reset_immediately();
                }
                _ = liveness.tick() => {
                    if !*in_use.borrow() {
                        continue;
                    }
                    let Some(keys) = cache.as_ref() else { break };
                    let answer = gateway.get_local(&endpoint, format!("{}leader", config.prefix).as_bytes()).await
                        .map_err(|e| format!("liveness check: {e}"))?;
                    if agrees(keys, &answer) {
                        suspect = false;
                    } else if suspect {
                        // Twice in a row, LIVENESS_INTERVAL apart: events are not arriving.
                        *cache = None;
                        return Err("the watch fell behind the leader key: listing again".into());
                    } else {
                        suspect = true;
                    }
                }
            }
        }
    }
}

fn non_empty<'a>(s: &'a str, otherwise: &'a str) -> &'a str {
    if s.is_empty() {
        otherwise
    } else {
        s
    }
}

fn jittered(d: Duration) -> Duration {
    d.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// The keyspace of a list answer.
fn keyspace_of(listed: RangeResponse, prefix: &[u8]) -> Keyspace {
    let mut keys = Keyspace::default();
    for kv in listed.kvs {
        if let Some(name) = name_of(&kv.key, prefix) {
            keys.put(name, kv.value);
        }
    }
    keys.revision = listed.header.revision;
    keys
}

/// A key's name under the cluster prefix, if it is under it and UTF-8.
fn name_of(key: &[u8], prefix: &[u8]) -> Option<String> {
    let rest = key.strip_prefix(prefix)?;
    String::from_utf8(rest.to_vec()).ok()
}

/// Applies one event; returns whether it changed a key (events at or below the cache's revision
/// were already applied by the list).
fn apply(keys: &mut Keyspace, prefix: &[u8], event: Event) -> bool {
    let (kv, put) = match event {
        Event::Put(kv) => (kv, true),
        Event::Delete(kv) => (kv, false),
    };
    if kv.mod_revision <= keys.revision {
        return false;
    }
    keys.revision = kv.mod_revision;
    let Some(name) = name_of(&kv.key, prefix) else {
        return false;
    };
    if put {
        keys.put(name, kv.value);
    } else {
        keys.delete(&name);
    }
    true
}

/// Whether a read of the leader key agrees with the cache: same value, or a change
/// newer than the cache (its event may still be on its way — the next check decides).
fn agrees(keys: &Keyspace, answer: &RangeResponse) -> bool {
    match answer.kvs.first() {
        Some(kv) if kv.mod_revision > keys.revision => false,
        Some(kv) => keys.leader().map(str::as_bytes) == Some(kv.value.as_slice()),
        None => keys.leader().is_none(),
    }
}

fn publish(config: &WatchConfig, keys: &Keyspace, endpoint: &Endpoint, live: bool, tx: &watch::Sender<Arc<DcsState>>) {
    let (view, error) = if keys.is_empty() {
        (
            None,
            Some(format!(
                "no Patroni cluster under {} in etcd (check patroni_scope and etcd_namespace)",
                config.prefix
            )),
        )
    } else {
        match keys.view(&config.scope) {
            Ok(view) => (Some(view), None),
            Err(e) => (None, Some(format!("Patroni's keys in etcd: {e}"))),
        }
    };
    tx.send_modify(|state| {
        let state = Arc::make_mut(state);
        if state.live != live {
            state.since = Instant::now();
        }
        state.live = live;
        state.view = view;
        state.history = keys.history();
        state.endpoint = Some(endpoint.base.clone());
        state.error = error;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::gateway::KeyValue;

    fn kv(key: &str, value: &str, mod_revision: i64) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            mod_revision,
        }
    }

    #[test]
    fn events_apply_once_in_revision_order_and_only_under_the_prefix() {
        let prefix = b"/service/demo/";
        let mut keys = keyspace_of(
            RangeResponse {
                header: Default::default(),
                kvs: vec![kv("/service/demo/leader", "node1", 5)],
            },
            prefix,
        );
        keys.revision = 7;
        // Already in the list: ignored.
        assert!(!apply(
            &mut keys,
            prefix,
            Event::Put(kv("/service/demo/leader", "old", 6))
        ));
        assert_eq!(keys.leader(), Some("node1"));
        assert!(apply(
            &mut keys,
            prefix,
            Event::Delete(kv("/service/demo/leader", "", 8))
        ));
        assert_eq!(keys.leader(), None);
        assert!(apply(
            &mut keys,
            prefix,
            Event::Put(kv("/service/demo/leader", "node2", 9))
        ));
        assert_eq!(keys.leader(), Some("node2"));
        // Another cluster's key (a prefix of ours with more after it is not ours).
        assert!(!apply(
            &mut keys,
            prefix,
            Event::Put(kv("/service/demo2/leader", "x", 10))
        ));
        assert_eq!(keys.revision, 10);
        assert_eq!(keys.leader(), Some("node2"));
    }

    #[test]
    fn the_liveness_check_compares_the_leader_key() {
        let mut keys = Keyspace::default();
        keys.put("leader".into(), b"node1".to_vec());
        keys.revision = 10;
        let answer = |kvs: Vec<KeyValue>| RangeResponse {
            header: Default::default(),
            kvs,
        };
        assert!(agrees(&keys, &answer(vec![kv("/p/leader", "node1", 4)])));
        assert!(!agrees(&keys, &answer(vec![kv("/p/leader", "node2", 4)])));
        assert!(
            !agrees(&keys, &answer(vec![kv("/p/leader", "node1", 11)])),
            "a newer write not seen yet"
        );
        assert!(!agrees(&keys, &answer(vec![])));
        keys.delete("leader");
        assert!(agrees(&keys, &answer(vec![])));
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter_and_never_overflows() {
        for failures in [0, 1, 2, 5, 10, 31, 32, 1000, u32::MAX] {
            let wait = backoff(failures);
            assert!(wait <= BACKOFF_MAX, "{failures}: {wait:?}");
            assert!(wait >= BACKOFF_FIRST / 2, "{failures}: {wait:?}");
        }
        assert!(backoff(1) <= BACKOFF_FIRST);
        assert!(backoff(20) >= BACKOFF_MAX / 2);
    }
}
