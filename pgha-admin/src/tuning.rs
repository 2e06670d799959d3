//! Tuning advice from the machine's memory, CPUs and storage — only real parameters of the
//! running server, applied through Patroni's dynamic configuration.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::admin::Admin;
use crate::dynamic_config::ParameterChange;
use crate::error::{Error, Result};
use crate::sql::RowExt;

/// Storage class of the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Storage {
    /// SSD / NVMe / network block storage with fast random reads (default).
    #[default]
    Ssd,
    /// Spinning disks.
    Hdd,
}

/// The machine each member runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Machine {
    /// Memory available to PostgreSQL, bytes.
    pub memory_bytes: u64,
    /// CPU cores.
    pub cpus: u32,
    /// Storage class.
    pub storage: Storage,
    /// `max_connections` to plan `work_mem` for (default: the server's current value).
    pub max_connections: Option<u32>,
}

impl Machine {
    /// A machine with `memory_bytes` of memory, `cpus` cores and SSD storage.
    pub fn new(memory_bytes: u64, cpus: u32) -> Self {
        Self {
            memory_bytes,
            cpus,
            storage: Storage::Ssd,
            max_connections: None,
        }
    }

    /// Sets the storage class.
    pub fn storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }
}

/// One recommended setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Recommendation {
    /// Parameter name.
    pub name: String,
    /// Recommended value.
    pub value: String,
    /// Current value on the leader (`None` in [`advise`], which sees no server).
    pub current: Option<String>,
    /// Changing it needs a restart (`context = postmaster`).
    pub needs_restart: bool,
    /// Why.
    pub reason: String,
}

/// Memory in the largest unit PostgreSQL accepts that keeps it whole.
fn pg_memory(bytes: u64) -> String {
    const MB: u64 = 1 << 20;
    const GB: u64 = 1 << 30;
    if bytes >= GB && bytes.is_multiple_of(GB) {
        format!("{}GB", bytes / GB)
    } else {
        format!("{}MB", (bytes / MB).max(1))
    }
}

/// The pure advice for a machine (an OLTP/web workload, the common case for a Patroni
/// cluster), following the PostgreSQL documentation's guidance and common practice.
///
/// ```
/// use pgha_admin::{advise, Machine};
/// let advice = advise(&Machine::new(32 << 30, 8), 100);
/// let get = |n: &str| advice.iter().find(|r| r.name == n).map(|r| r.value.clone());
/// assert_eq!(get("shared_buffers").as_deref(), Some("8GB"));
/// assert_eq!(get("effective_cache_size").as_deref(), Some("24GB"));
/// assert!(advice.iter().all(|r| r.name != "max_parallel_io_workers")); // not a real parameter
/// ```
pub fn advise(machine: &Machine, max_connections: u32) -> Vec<Recommendation> {
    let mem = machine.memory_bytes;
    let cpus = machine.cpus.max(1);
    let shared_buffers = mem / 4;
    let per_gather = (cpus / 2).clamp(1, 4);
    // What is left after shared_buffers, shared by every connection's few sorts/hashes, each
    // possibly run by a gather's workers too.
    let work_mem =
        ((mem - shared_buffers) / (u64::from(max_connections.max(1)) * 3) / u64::from(per_gather)).max(4 << 20);
    let ssd = machine.storage == Storage::Ssd;
    let mut out = Vec::new();
    let mut add = |name: &str, value: String, reason: &str| {
        out.push(Recommendation {
            name: name.into(),
            value,
            current: None,
            needs_restart: false,
            reason: reason.into(),
        });
    };
    add(
        "shared_buffers",
        pg_memory(shared_buffers),
        "25 % of memory; the OS cache holds the rest",
    );
    add(
        "effective_cache_size",
        pg_memory(mem / 4 * 3),
        "75 % of memory: what the planner may assume is cached (allocates nothing)",
    );
    add(
        "maintenance_work_mem",
        pg_memory((mem / 16).min(2 << 30)),
        "1/16 of memory up to 2 GB: faster VACUUM, CREATE INDEX and HNSW builds",
    );
    add(
        "work_mem",
        pg_memory(work_mem),
        "per sort/hash node: (memory - shared_buffers) / (3 × max_connections) / parallel workers",
    );
    add(
        "wal_buffers",
        "16MB".into(),
        "one WAL segment; the automatic value caps here anyway",
    );
    add(
        "max_worker_processes",
        cpus.max(8).to_string(),
        "at least one per core (and never below the default 8)",
    );
    add("max_parallel_workers", cpus.to_string(), "one per core");
    add(
        "max_parallel_workers_per_gather",
        per_gather.to_string(),
        "half the cores, at most 4, so parallel queries leave room for others",
    );
    add(
        "max_parallel_maintenance_workers",
        per_gather.to_string(),
        "parallel index builds (including HNSW) and VACUUM",
    );
    add(
        "random_page_cost",
        if ssd { "1.1" } else { "4" }.into(),
        if ssd {
            "random reads cost almost as much as sequential ones on SSD"
        } else {
            "the default suits spinning disks"
        },
    );
    add(
        "effective_io_concurrency",
        if ssd { "200" } else { "2" }.into(),
        "concurrent I/O requests the storage can serve",
    );
    add(
        "checkpoint_completion_target",
        "0.9".into(),
        "spread checkpoint writes (the default since PostgreSQL 14)",
    );
    add("min_wal_size", "1GB".into(), "keep WAL segments for reuse");
    add(
        "max_wal_size",
        "4GB".into(),
        "fewer forced checkpoints under write bursts",
    );
    out
}

/// Advice checked against the running server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TuningReport {
    /// The machine the advice is for.
    pub machine: Machine,
    /// `server_version_num` of the leader.
    pub server_version_num: i32,
    /// Recommendations for parameters this server has, with current values.
    pub recommendations: Vec<Recommendation>,
    /// Recommended parameters this server does not know (left out).
    pub skipped: Vec<String>,
}

impl TuningReport {
    /// The recommendations whose value differs from the current one.
    pub fn changes(&self) -> BTreeMap<String, String> {
        self.recommendations
            .iter()
            .filter(|r| r.current.as_deref() != Some(r.value.as_str()))
            .map(|r| (r.name.clone(), r.value.clone()))
            .collect()
    }
}

impl Admin {
    /// Tuning advice for `machine`, keeping only parameters the leader's PostgreSQL version has,
    /// with their current values and whether a change needs a restart.
    pub async fn tuning_advice(&self, machine: &Machine) -> Result<TuningReport> {
        if machine.memory_bytes < (256 << 20) {
            return Err(Error::usage("give at least 256 MB of memory"));
        }
        let (leader, db) = self.leader_sql(None).await?;
        let row = db
            .query_one(
                "SELECT current_setting('server_version_num')::int, current_setting('max_connections')::int",
                &[],
            )
            .await
            .map_err(|e| Error::db(format!("reading settings on {}", leader.name), e))?;
        let (version, server_connections): (i32, i32) = (row.col(0)?, row.col(1)?);
        let connections = machine
            .max_connections
            .unwrap_or(u32::try_from(server_connections).unwrap_or(100));
        let advice = advise(machine, connections);
        let names: Vec<String> = advice.iter().map(|r| r.name.clone()).collect();
        let rows = db
            .query(
                "SELECT name, current_setting(name), context FROM pg_settings WHERE name = ANY($1)",
                &[&names],
            )
            .await
            .map_err(|e| Error::db("reading pg_settings", e))?;
        let known: BTreeMap<String, (String, String)> = rows
            .iter()
            .map(|r| Ok((r.col(0)?, (r.col(1)?, r.col(2)?))))
            .collect::<Result<_>>()?;
        let mut recommendations = Vec::new();
        let mut skipped = Vec::new();
        for mut r in advice {
            match known.get(&r.name) {
                Some((current, context)) => {
                    r.current = Some(current.clone());
                    r.needs_restart = context == "postmaster";
                    recommendations.push(r);
                }
                None => skipped.push(r.name),
            }
        }
        Ok(TuningReport {
            machine: *machine,
            server_version_num: version,
            recommendations,
            skipped,
        })
    }

    /// Writes the report's changed values to the dynamic configuration (cluster-wide); the
    /// answer lists which need a restart ([`Admin::rolling_restart`] with `pending_only`).
    pub async fn apply_tuning(&self, report: &TuningReport) -> Result<ParameterChange> {
        let changes = report.changes();
        if changes.is_empty() {
            return Ok(ParameterChange {
                applied: BTreeMap::new(),
                needs_restart: Vec::new(),
            });
        }
        self.set_parameters(&changes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(advice: &[Recommendation], name: &str) -> String {
        advice
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.value.clone())
            .unwrap_or_default()
    }

    #[test]
    fn small_machine_gets_sane_floors() {
        let a = advise(&Machine::new(1 << 30, 1).storage(Storage::Hdd), 100);
        assert_eq!(value(&a, "shared_buffers"), "256MB");
        assert_eq!(value(&a, "work_mem"), "4MB");
        assert_eq!(value(&a, "max_parallel_workers_per_gather"), "1");
        assert_eq!(value(&a, "max_worker_processes"), "8");
        assert_eq!(value(&a, "random_page_cost"), "4");
    }

    #[test]
    fn large_machine_caps_maintenance_memory_and_gather_workers() {
        let a = advise(&Machine::new(256 << 30, 32), 200);
        assert_eq!(value(&a, "maintenance_work_mem"), "2GB");
        assert_eq!(value(&a, "max_parallel_workers_per_gather"), "4");
        assert_eq!(value(&a, "shared_buffers"), "64GB");
    }

    #[test]
    fn memory_units_are_whole() {
        assert_eq!(pg_memory(3 << 30), "3GB");
        assert_eq!(pg_memory((3 << 30) + (1 << 20)), "3073MB");
        assert_eq!(pg_memory(100), "1MB");
    }
}
