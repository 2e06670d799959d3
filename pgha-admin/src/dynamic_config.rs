//! Patroni's dynamic configuration (`/config`): read, patch with conflict retry, maintenance
//! mode, and PostgreSQL parameters validated against the running server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pgha_client::reqwest::Method;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::admin::Admin;
use crate::error::{Error, Result};
use crate::rest::{self, ReplyExt};
use crate::sql::RowExt;

/// Attempts of a `PATCH /config` that keeps meeting concurrent edits (HTTP 409).
const PATCH_ATTEMPTS: u32 = 5;

/// The result of changing PostgreSQL parameters through Patroni.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ParameterChange {
    /// Parameters written to the dynamic configuration, with their new values.
    pub applied: BTreeMap<String, String>,
    /// Those that take effect only after a restart (`context = postmaster`): Patroni flags the
    /// members `pending_restart`; use [`Admin::restart`] or [`Admin::rolling_restart`].
    pub needs_restart: Vec<String>,
}

/// The merge patch (RFC 7386, as Patroni's `PATCH /config` applies it) that turns `from` into
/// `to`: objects are compared key by key, a key `to` lacks becomes `null` (removed), anything
/// else that differs is replaced whole.
///
/// ```
/// use serde_json::json;
/// let from = json!({"ttl": 30, "postgresql": {"parameters": {"work_mem": "4MB", "jit": "on"}}});
/// let to = json!({"ttl": 30, "postgresql": {"parameters": {"work_mem": "8MB"}}, "loop_wait": 5});
/// assert_eq!(
///     pgha_admin::config_patch(&from, &to),
///     json!({"postgresql": {"parameters": {"work_mem": "8MB", "jit": null}}, "loop_wait": 5})
/// );
/// ```
pub fn config_patch(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let mut patch = Map::new();
            for (k, old) in a {
                match b.get(k) {
                    None => {
                        patch.insert(k.clone(), Value::Null);
                    }
                    Some(new) if new != old => {
                        patch.insert(k.clone(), config_patch(old, new));
                    }
                    Some(_) => {}
                }
            }
            for (k, new) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                patch.insert(k.clone(), new.clone());
            }
            Value::Object(patch)
        }
        _ => to.clone(),
    }
}

/// What [`Admin::edit_config`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigEdit {
    /// The change was applied; the new configuration.
    Applied(Value),
    /// Nothing was applied: the configuration is no longer the one the edit started from (someone
    /// changed it meanwhile); the current one, to edit again.
    Changed(Value),
}

impl Admin {
    /// Replaces the dynamic configuration `base` (as [`config`](Self::config) returned it) by
    /// `edited` — what `patronictl edit-config` does — as the merge patch of their difference
    /// ([`config_patch`]). If the configuration is no longer `base`, nothing is applied and the
    /// current one is returned to edit again. (Patroni's REST API offers no compare-and-set:
    /// between that check and the patch, a concurrent change to other keys is kept, one to the
    /// same keys is overwritten.)
    pub async fn edit_config(&self, base: &Value, edited: &Value) -> Result<ConfigEdit> {
        if !edited.is_object() {
            return Err(Error::usage("the configuration must be a mapping of keys to values"));
        }
        let current = self.config().await?;
        if current != *base {
            return Ok(ConfigEdit::Changed(current));
        }
        self.patch_config(&config_patch(base, edited))
            .await
            .map(ConfigEdit::Applied)
    }

    /// The dynamic configuration stored in the DCS (`GET /config`).
    pub async fn config(&self) -> Result<Value> {
        let (base, reply) = rest::get_any(self.connector(), &self.endpoints(), "/config").await?;
        reply.json(&format!("GET {base}/config"))
    }

    /// Deep-merges `patch` into the dynamic configuration (`PATCH /config`; a key set to `null` is
    /// removed) and returns the new configuration. A concurrent edit (HTTP 409) is retried.
    pub async fn patch_config(&self, patch: &Value) -> Result<Value> {
        if !patch.is_object() {
            return Err(Error::usage("a configuration patch must be a JSON object"));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let reply = self.call_any(Method::PATCH, "/config", Some(patch)).await?;
            if reply.status == 409 && attempt < PATCH_ATTEMPTS {
                tracing::info!(attempt, "PATCH /config met a concurrent change; retrying");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                continue;
            }
            let reply = rest::expect_success("PATCH /config", reply)?;
            return reply.json("PATCH /config");
        }
    }

    /// Maintenance mode on: Patroni stops automatic failover and leaves PostgreSQL alone (what
    /// `patronictl pause` does). Returns once every member reports it.
    pub async fn pause(&self) -> Result<()> {
        self.set_pause(true).await
    }

    /// Maintenance mode off (`patronictl resume`).
    pub async fn resume(&self) -> Result<()> {
        self.set_pause(false).await
    }

    async fn set_pause(&self, on: bool) -> Result<()> {
        let operation = if on { "pause" } else { "resume" };
        self.patch_config(&json!({ "pause": if on { json!(true) } else { Value::Null } }))
            .await?;
        self.report(operation, "waiting for the cluster to report it", None);
        let deadline = Instant::now() + self.wait_limit();
        loop {
            let (_, view) = self.cluster_view().await?;
            if view.pause == on {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::timeout(format!(
                    "{operation}: /cluster still says pause={} after {:?}",
                    view.pause,
                    self.wait_limit()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Checks PostgreSQL parameters against the running leader's `pg_settings` without changing
    /// anything: what [`set_parameters`](Self::set_parameters) would write and which of them
    /// would need a restart — for a dry run, or to confirm first. A name the server does not
    /// have (a typo, a parameter of another version) is a usage error.
    ///
    /// ```no_run
    /// # async fn demo(admin: pgha_admin::Admin) -> pgha_admin::Result<()> {
    /// let change = std::collections::BTreeMap::from([("max_connections".to_owned(), "300".to_owned())]);
    /// let plan = admin.check_parameters(&change).await?;
    /// assert_eq!(plan.needs_restart, ["max_connections"]);
    /// # Ok(()) }
    /// ```
    pub async fn check_parameters(&self, parameters: &BTreeMap<String, String>) -> Result<ParameterChange> {
        if parameters.is_empty() {
            return Err(Error::usage("no parameter to set"));
        }
        let (leader, db) = self.leader_sql(None).await?;
        let names: Vec<String> = parameters.keys().cloned().collect();
        let rows = db
            .query("SELECT name, context FROM pg_settings WHERE name = ANY($1)", &[&names])
            .await
            .map_err(|e| Error::db(format!("reading pg_settings on {}", leader.name), e))?;
        let contexts: BTreeMap<String, String> =
            rows.iter().map(|r| Ok((r.col(0)?, r.col(1)?))).collect::<Result<_>>()?;
        let unknown: Vec<&str> = names
            .iter()
            .filter(|n| !contexts.contains_key(*n))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(Error::usage(format!(
                "not a parameter of this PostgreSQL server: {}",
                unknown.join(", ")
            )));
        }
        Ok(ParameterChange {
            applied: parameters.clone(),
            needs_restart: contexts
                .into_iter()
                .filter(|(_, c)| c == "postmaster")
                .map(|(n, _)| n)
                .collect(),
        })
    }

    /// Sets PostgreSQL parameters cluster-wide through Patroni's dynamic configuration
    /// (`postgresql.parameters`). Each name is checked against the running server's
    /// `pg_settings` first ([`check_parameters`](Self::check_parameters)), so a typo or a
    /// parameter of another version is refused instead of being silently dropped by Patroni;
    /// the answer says which need a restart.
    pub async fn set_parameters(&self, parameters: &BTreeMap<String, String>) -> Result<ParameterChange> {
        let change = self.check_parameters(parameters).await?;
        let mut values = Map::new();
        for (k, v) in parameters {
            values.insert(k.clone(), json!(v));
        }
        self.patch_config(&json!({ "postgresql": { "parameters": values } }))
            .await?;
        Ok(change)
    }

    /// The current value of one setting on the leader (`SHOW`), e.g. `wal_keep_size`.
    pub async fn setting(&self, name: &str) -> Result<String> {
        let (leader, db) = self.leader_sql(None).await?;
        let row = db
            .query_opt(
                "SELECT current_setting(name) FROM pg_settings WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(|e| Error::db(format!("reading {name} on {}", leader.name), e))?;
        row.map(|r| r.col(0))
            .transpose()?
            .ok_or_else(|| Error::not_found(format!("no setting {name:?}")))
    }
}
