//! Patroni: its view of the cluster, switchover/failover/reinitialize, and member rebuild helpers.

use std::time::Duration;

use serde_json::json;

use super::{mkdir, write_file, LocalCluster};
use crate::error::{Error, Result};
use crate::process::postmaster;
use crate::rest::{self, PatroniMember};

const ETCDCTL_BIN: &str = "/usr/bin/etcdctl";

impl LocalCluster {
    // ----- Patroni views -----------------------------------------------------------------------

    /// `GET /cluster` from the first member that answers.
    pub async fn cluster_status(&self) -> Result<Vec<PatroniMember>> {
        let mut last = None;
        for url in self.patroni_urls() {
            match rest::cluster(&self.http, &url).await {
                Ok(members) => return Ok(members),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::NotRunning("Patroni".into())))
    }

    /// The current leader according to Patroni (`role: leader` in `/cluster`).
    pub async fn leader(&self) -> Result<String> {
        self.cluster_status()
            .await?
            .into_iter()
            .find(|m| m.role == "leader")
            .map(|m| m.name)
            .ok_or_else(|| Error::NotRunning("a leader".into()))
    }

    // ----- Patroni operations ------------------------------------------------------------------

    async fn post_to_leader(&self, endpoint: &str, body: serde_json::Value) -> Result<String> {
        let leader = self.leader().await.ok();
        let url = match &leader {
            Some(l) => self.api_url(l)?,
            None => self
                .patroni_urls()
                .into_iter()
                .next()
                .ok_or_else(|| Error::NotRunning("Patroni".into()))?,
        };
        let auth = self.credentials().rest;
        rest::post(
            &self.http,
            &url,
            endpoint,
            &body,
            auth.as_ref(),
            Duration::from_secs(60),
        )
        .await
    }

    /// `POST /switchover` from the current leader, to `candidate` or to any healthy replica.
    /// Returns Patroni's answer once it reports success (it waits for the new leader itself).
    pub async fn switchover(&self, candidate: Option<&str>) -> Result<String> {
        let leader = self.leader().await?;
        let mut body = json!({ "leader": leader });
        if let Some(c) = candidate {
            body["candidate"] = json!(c);
        }
        self.post_to_leader("switchover", body).await
    }

    /// `POST /reinitialize` on a replica: Patroni wipes its data directory and clones it again
    /// from the leader (the way out for a replica that can no longer follow, e.g. one left on a
    /// diverged timeline). Does not wait; see [`wait_streaming`](Self::wait_streaming).
    pub async fn reinitialize(&self, member: &str) -> Result<String> {
        let url = self.api_url(member)?;
        let auth = self.credentials().rest;
        rest::post(
            &self.http,
            &url,
            "reinitialize",
            &json!({ "force": true }),
            auth.as_ref(),
            Duration::from_secs(30),
        )
        .await
    }

    /// `POST /failover` to `candidate` (works without a leader).
    pub async fn failover(&self, candidate: &str) -> Result<String> {
        self.post_to_leader("failover", json!({ "candidate": candidate })).await
    }

    /// Empties a stopped member's data directory (leaving it in place, owned by the cluster's OS
    /// user, mode 0700), so Patroni bootstraps or re-clones it on its next start.
    pub fn clear_data_dir(&self, member: &str) -> Result<()> {
        let data_dir = self.lock_state().member(member)?.data_dir();
        if postmaster(&data_dir).is_some() {
            return Err(Error::Setup(format!(
                "PostgreSQL still runs on {member}; stop the node first"
            )));
        }
        if data_dir.exists() {
            std::fs::remove_dir_all(&data_dir)
                .map_err(|e| Error::Setup(format!("removing {}: {e}", data_dir.display())))?;
        }
        mkdir(&data_dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::Setup(format!("chmod {}: {e}", data_dir.display())))?;
        }
        self.user.own(&data_dir)
    }

    /// Removes every key of the cluster from etcd (what `patronictl remove <scope>` does), through
    /// whichever etcd members answer.
    pub fn clear_dcs(&self) -> Result<()> {
        let (endpoints, prefix) = {
            let state = self.lock_state();
            let endpoints: Vec<String> = state
                .etcd
                .iter()
                .map(|e| format!("127.0.0.1:{}", e.client_port))
                .collect();
            (endpoints.join(","), format!("/pgha/{}/", state.scope))
        };
        crate::process::run_to_completion(
            std::process::Command::new(ETCDCTL_BIN).env("ETCDCTL_API", "3").args([
                "--endpoints",
                &endpoints,
                "--command-timeout=10s",
                "del",
                "--prefix",
                &prefix,
            ]),
            &format!("etcdctl del --prefix {prefix}"),
            "",
        )
        .map(drop)
    }

    /// Sets `bootstrap.method` to `name` with `bootstrap.<name>` = `method` in a member's Patroni
    /// configuration, or restores the default (`initdb`) when `method` is `None`. Takes effect
    /// on the member's next bootstrap.
    pub fn set_bootstrap_method(&self, member: &str, name: &str, method: Option<&serde_json::Value>) -> Result<()> {
        let file = self.lock_state().member(member)?.config_file();
        let text =
            std::fs::read_to_string(&file).map_err(|e| Error::Setup(format!("reading {}: {e}", file.display())))?;
        let mut config: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::Setup(format!("{}: {e}", file.display())))?;
        let bootstrap = config
            .get_mut("bootstrap")
            .and_then(serde_json::Value::as_object_mut)
            .ok_or_else(|| Error::Setup(format!("{} has no bootstrap section", file.display())))?;
        match method {
            Some(m) => {
                bootstrap.insert("method".into(), serde_json::json!(name));
                bootstrap.insert(name.into(), m.clone());
            }
            None => {
                bootstrap.remove("method");
                bootstrap.remove(name);
            }
        }
        let text = serde_json::to_string_pretty(&config).map_err(|e| Error::Setup(e.to_string()))?;
        write_file(&file, &text)?;
        self.user.own(&file)
    }
}
