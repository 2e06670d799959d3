//! The fault-injection run: a seeded, reproducible schedule of faults against a local cluster
//! while a pgha-client workload runs — unique inserts whose every acknowledgement is recorded
//! with its WAL position, lag-bounded reads of a heartbeat row, read-your-writes reads — and
//! invariants checked afterwards from the final state of the leader (see `RELIABILITY.md`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgha_client::patroni::Lsn;
use pgha_client::{Client, Intent, LagBound};
use pgha_testkit::{LocalCluster, PatroniFlavor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

pub mod history;
mod nemesis;
mod panics;
mod resources;
mod verdict;
mod workload;

pub use nemesis::ClusterView;
pub use resources::ResourceSample;

use history::{micros_since, OpKind, Outcome};
use verdict::{FinalState, Rules, Window};
use workload::{lock, Log, APPLICATION, DEADLINE};

/// A kind of fault the nemesis injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FaultKind {
    /// kill -9 of the leader's whole node (Patroni, postmaster, backends).
    KillLeader,
    /// kill -9 of the leader's postmaster only (Patroni restarts it in place).
    KillPostmaster,
    /// SIGSTOP of the leader's node past the TTL, then SIGCONT.
    FreezeLeader,
    /// etcd stopped for a few seconds, then started again.
    EtcdRestart,
    /// A switchover through the REST API.
    Switchover,
    /// A standby stopped cleanly and started again.
    RestartStandby,
    /// WAL replay stuck on a standby for a few seconds.
    PauseReplay,
    /// Every Patroni REST API blackholed for a few seconds.
    RestApiDown,
    /// The leader cut off from etcd and from its peers (not from clients) past the TTL.
    PartitionLeader,
    /// The leader's Patroni frozen while its PostgreSQL runs on: a zombie primary, still
    /// writable, no longer the leader once another member takes the key.
    ZombiePrimary,
    /// Every session of the workload terminated on every member (`pg_terminate_backend`), as an
    /// operator or a connection limit enforcer does.
    KillSessions,
    /// kill -9 of etcd's raft leader, held until another etcd member leads, then started again:
    /// Patroni's DCS client must move to a member that still has the quorum.
    KillEtcdLeader,
    /// SIGSTOP of etcd's raft leader, held until another etcd member leads, then SIGCONT: the
    /// frozen member keeps its sockets, so its clients wait on it until their timeouts.
    FreezeEtcdLeader,
    /// A second fault while the cluster heals from the first: kill -9 of the leader's node; once
    /// another member leads, the old one is started again and, while it rejoins, the new
    /// leader's postmaster is killed too (Patroni restarts it in place).
    SecondFaultWhileHealing,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 14] = [
        Self::KillLeader,
        Self::KillPostmaster,
        Self::FreezeLeader,
        Self::EtcdRestart,
        Self::Switchover,
        Self::RestartStandby,
        Self::PauseReplay,
        Self::RestApiDown,
        Self::PartitionLeader,
        Self::ZombiePrimary,
        Self::KillSessions,
        Self::KillEtcdLeader,
        Self::FreezeEtcdLeader,
        Self::SecondFaultWhileHealing,
    ];

    /// Faults meant to depose the leader: the nemesis holds them until another member leads,
    /// and a run in which one did not is a failed run.
    fn fails_over(self) -> bool {
        matches!(
            self,
            Self::KillLeader
                | Self::FreezeLeader
                | Self::PartitionLeader
                | Self::Switchover
                | Self::ZombiePrimary
                | Self::SecondFaultWhileHealing
        )
    }

    /// Kinds whose effect the nemesis confirms: a failover, etcd's leadership moved, sessions
    /// terminated. A fault of these kinds without its effect is a failed run.
    fn effect_is_checked(self) -> bool {
        self.fails_over() || self.moves_etcd_leader() || self == Self::KillSessions
    }

    /// Faults meant to move etcd's raft leadership: held until another etcd member leads.
    fn moves_etcd_leader(self) -> bool {
        matches!(self, Self::KillEtcdLeader | Self::FreezeEtcdLeader)
    }

    /// Faults during which asynchronous replication may lose acknowledged writes: the leader
    /// goes away without handing over, or may lose its key while the DCS does not answer it.
    fn may_lose_writes(self) -> bool {
        matches!(
            self,
            Self::KillLeader
                | Self::FreezeLeader
                | Self::EtcdRestart
                | Self::PartitionLeader
                | Self::ZombiePrimary
                | Self::KillEtcdLeader
                | Self::FreezeEtcdLeader
                | Self::SecondFaultWhileHealing
        )
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Seed of the schedule (which fault, on which standby, how long to wait between).
    pub seed: u64,
    /// How many faults (at least).
    pub faults: usize,
    /// Keep injecting faults until this much time has passed since the run started (the long
    /// mode); `None` stops after `faults`.
    pub duration: Option<Duration>,
    /// The kinds to draw from. The first `kinds.len()` faults go through every kind once, in a
    /// seeded order; the rest are drawn at random.
    pub kinds: Vec<FaultKind>,
    /// Read bound of the lag-bounded reads.
    pub read_bound: Duration,
    /// Where to write the operation history, as JSON lines (see [`history::Op`]).
    pub history: Option<std::path::PathBuf>,
    /// How often the process's memory and descriptors are sampled.
    pub sample_every: Duration,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            faults: FaultKind::ALL.len(),
            duration: None,
            kinds: FaultKind::ALL.to_vec(),
            read_bound: Duration::from_secs(2),
            history: None,
            sample_every: Duration::from_secs(10),
        }
    }
}

/// One fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// Kind.
    pub kind: FaultKind,
    /// The member it hit.
    pub target: String,
    /// Seconds since the start of the run.
    pub started_s: f64,
    /// Seconds until the cluster was whole again.
    pub healed_after_s: f64,
    /// Members that could not follow the new leader and were re-cloned to heal the cluster.
    pub recloned: Vec<String>,
    /// Patroni's view just before the fault.
    pub before: ClusterView,
    /// Patroni's view once the cluster was whole again.
    pub after: ClusterView,
    /// Whether another member led, or the timeline advanced, between `before` and `after`.
    pub failed_over: bool,
    /// Whether the fault's effect was confirmed (a failover, etcd's leadership moved, sessions
    /// terminated); `None` for kinds whose effect is not checked.
    pub effective: Option<bool>,
    /// Inserts acknowledged between this fault and the next that were lost.
    pub writes_lost: u64,
    /// Stale reads that started between this fault and the next.
    pub stale_reads: u64,
    /// Read-your-writes violations that started between this fault and the next.
    pub ryw_violations: u64,
}

/// Faults of one kind in a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindStats {
    /// Faults of this kind.
    pub count: u32,
    /// Faults whose effect was confirmed.
    pub effective: u32,
    /// Faults whose effect was checked and not seen (each is a violation).
    pub no_effect: u32,
    /// Faults after which another member led or the timeline advanced.
    pub failed_over: u32,
    /// Seconds from injection until the cluster was whole again: median, 95th percentile and
    /// maximum (nearest rank, as the benchmarks' [`crate::harness::percentile`]).
    pub heal_p50_s: f64,
    /// See `heal_p50_s`.
    pub heal_p95_s: f64,
    /// See `heal_p50_s`.
    pub heal_max_s: f64,
    /// Acknowledged inserts lost, counted against the fault before them.
    pub writes_lost: u64,
    /// Stale reads, counted against the fault before them.
    pub stale_reads: u64,
    /// Read-your-writes misses, counted against the fault before them.
    pub ryw_violations: u64,
}

impl KindStats {
    /// The statistics of every kind among `faults`.
    pub fn of(faults: &[FaultRecord]) -> BTreeMap<FaultKind, KindStats> {
        let mut heals: BTreeMap<FaultKind, Vec<f64>> = BTreeMap::new();
        let mut stats: BTreeMap<FaultKind, KindStats> = BTreeMap::new();
        for f in faults {
            let k = stats.entry(f.kind).or_default();
            k.count += 1;
            k.effective += u32::from(f.effective == Some(true));
            k.no_effect += u32::from(f.effective == Some(false));
            k.failed_over += u32::from(f.failed_over);
            k.writes_lost += f.writes_lost;
            k.stale_reads += f.stale_reads;
            k.ryw_violations += f.ryw_violations;
            heals.entry(f.kind).or_default().push(f.healed_after_s);
        }
        for (kind, h) in heals {
            let h = crate::harness::sorted(h);
            let at = |p| crate::harness::percentile(&h, p);
            if let Some(k) = stats.get_mut(&kind) {
                (k.heal_p50_s, k.heal_p95_s, k.heal_max_s) = (at(50.0), at(95.0), at(100.0));
            }
        }
        stats
    }
}

/// The outcome of a run: what was done, what the application saw, and the invariants.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    /// The seed.
    pub seed: u64,
    /// `synchronous (strict)` or `asynchronous`.
    pub replication: String,
    /// Faults injected, by kind: how many, how many confirmed effective, how long they took to
    /// heal, and what the application saw during them.
    pub by_kind: BTreeMap<FaultKind, KindStats>,
    /// Every fault, in order.
    pub faults: Vec<FaultRecord>,
    /// Operations in the history (writes, heartbeats, reads, read-your-writes pairs).
    pub operations: u64,
    /// Inserts acknowledged as committed.
    pub writes_acked: u64,
    /// Inserts that ended in a definite error (not committed).
    pub writes_failed: u64,
    /// Inserts whose outcome is unknown (connection lost after COMMIT was sent).
    pub writes_outcome_unknown: u64,
    /// Operations of unknown outcome (of any kind of write) found committed at the end.
    pub unknown_recovered: u64,
    /// Acknowledged inserts missing at the end.
    pub acked_writes_lost: Vec<i64>,
    /// Lost writes (of any kind) whose token was read from a new primary and whose commit no
    /// later write of the same node bounds: the commit may lie either side of the switch point.
    /// They count as losses of their fault.
    pub acked_writes_unplaced: Vec<i64>,
    /// Heartbeat updates acknowledged but missing at the end.
    pub heartbeats_lost: u64,
    /// Read-your-writes inserts acknowledged but missing at the end.
    pub ryw_writes_lost: u64,
    /// Lost writes (of any table) that no fault of a losing kind explains (must be empty).
    pub unexplained_losses: Vec<String>,
    /// Per timeline that ended in a failover, how many bytes of WAL past its switch point the
    /// lost writes reached (must stay within `maximum_lag_on_failover`).
    pub loss_bytes: BTreeMap<u64, u64>,
    /// Inserts present more than once.
    pub duplicates: Vec<i64>,
    /// Inserts reported as failed that committed anyway.
    pub failed_but_committed: Vec<i64>,
    /// Acknowledged inserts whose commit lies past the end of their timeline in the final
    /// leader's history: acknowledged by a node whose history did not survive.
    pub acked_off_history: Vec<i64>,
    /// Writes acknowledged on a timeline after a later timeline had taken writes (must be
    /// empty).
    pub deposed_acks: Vec<String>,
    /// Bounded reads that missed a surviving heartbeat acknowledged more than the bound before
    /// they started.
    pub stale_reads: u64,
    /// Session reads that saw an older heartbeat than the read before them (which survived).
    pub session_reads_back: u64,
    /// Read-your-writes reads that did not see their own write although it survived.
    pub ryw_violations: u64,
    /// The first stale reads: when, what they missed, and where they ran.
    pub stale_samples: Vec<String>,
    /// The first session reads that went back.
    pub session_samples: Vec<String>,
    /// The first read-your-writes misses: when, where they ran, and their token.
    pub ryw_samples: Vec<String>,
    /// Errors surfaced to the application, by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// The longest operation, in milliseconds.
    pub longest_operation_ms: u64,
    /// Operations that ran past their deadline (plus 5 s of slack).
    pub deadline_overruns: u64,
    /// Connections of the client left open per member after the run (pools: at most their size).
    pub connections_after: BTreeMap<String, i64>,
    /// A checksum of the workload's tables on every member at the end (all equal).
    pub checksums: BTreeMap<String, String>,
    /// Operations still in flight after the workload stopped.
    pub in_flight_after: usize,
    /// Panics anywhere in the process during the run (workload tasks and pgha's own).
    pub panics: u64,
    /// The process's resident memory and open descriptors, sampled every
    /// [`ChaosConfig::sample_every`] while the workload ran.
    pub resources: Vec<ResourceSample>,
    /// Every invariant that failed, in words. Empty means the run passed.
    pub violations: Vec<String>,
}

/// The Patroni the runs use: 4.x unless `PGHA_PATRONI` says otherwise. On Debian's 3.0.2 a
/// leader frozen past the TTL can take the leader key back on its old timeline after the thaw,
/// which pgha fences but which only an operator can heal (RELIABILITY.md).
pub fn patroni_flavor() -> PatroniFlavor {
    match std::env::var("PGHA_PATRONI") {
        Ok(_) => PatroniFlavor::from_env(),
        Err(_) => PatroniFlavor::V4,
    }
}

/// The cluster of the fault-injection runs: 3 members on [`patroni_flavor`], synchronous
/// (strict) or not, and standbys that also restore WAL from the shared pgBackRest archive — the
/// archive stays reachable from both sides of a partition, as RELIABILITY.md describes (the
/// testkit's default is streaming only; see `LocalClusterBuilder::standby_restore_command`).
pub fn cluster_builder(synchronous: bool) -> pgha_testkit::LocalClusterBuilder {
    LocalCluster::builder()
        .members(3)
        .patroni(patroni_flavor())
        .synchronous_mode(synchronous, synchronous)
        .standby_restore_command(true)
}

/// The switch point of every timeline in the final leader's history: a position on timeline
/// `tl` past its switch point never became part of the surviving history.
async fn timeline_ends(client: &Client) -> anyhow::Result<(u64, HashMap<u64, Lsn>)> {
    let (current, text): (i64, Option<String>) = client
        .run(Intent::Primary, async |c| {
            let row = c
                .query_one(
                    "SELECT tli, CASE WHEN tli > 1 \
                       THEN pg_read_file('pg_wal/' || lpad(upper(to_hex(tli)), 8, '0') || '.history') END \
                     FROM (SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int8 AS tli) t",
                    &[],
                )
                .await?;
            Ok((row.try_get(0)?, row.try_get(1)?))
        })
        .await?;
    let mut ends = HashMap::new();
    for line in text.unwrap_or_default().lines() {
        let mut parts = line.split_whitespace();
        if let (Some(tl), Some(lsn)) = (parts.next(), parts.next()) {
            if let (Ok(tl), Ok(lsn)) = (tl.parse::<u64>(), lsn.parse::<Lsn>()) {
                ends.insert(tl, lsn);
            }
        }
    }
    Ok((u64::try_from(current).unwrap_or(0), ends))
}

/// Runs the schedule on `cluster` (which must have been built by the caller, in the replication
/// mode to test) and checks the invariants. The client must connect as a role that can read
/// `pg_wal` history files (the testkit's superuser).
pub async fn run(cluster: &LocalCluster, config: &ChaosConfig) -> anyhow::Result<ChaosReport> {
    anyhow::ensure!(!config.kinds.is_empty(), "no fault kinds");
    let creds = cluster.credentials();
    let client = crate::harness::client_builder(cluster)
        .user(creds.superuser.username.clone())
        .password(creds.superuser.password.expose())
        .application_name(APPLICATION)
        .lag_bound(LagBound::time(config.read_bound))
        .connect()
        .await?;
    client
        .op(Intent::Write)
        .idempotent()
        .run(async |c| {
            c.batch_execute(
                "DROP TABLE IF EXISTS chaos_writes, chaos_heartbeat, chaos_heartbeat_log, chaos_ryw; \
                 CREATE TABLE chaos_writes (id bigint NOT NULL, writer int NOT NULL); \
                 CREATE TABLE chaos_heartbeat (id int PRIMARY KEY, seq bigint NOT NULL); \
                 CREATE TABLE chaos_heartbeat_log (seq bigint PRIMARY KEY); \
                 INSERT INTO chaos_heartbeat VALUES (1, 0); \
                 CREATE TABLE chaos_ryw (n bigint PRIMARY KEY);",
            )
            .await?;
            Ok(())
        })
        .await?;
    let token = client.op(Intent::Write).run_with_token(async |_| Ok(())).await?.1;
    client.wait_for_standbys(token, Duration::from_secs(30)).await?;

    let log = Arc::new(Mutex::new(Log::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let panic_counter = panics::PanicCounter::install();
    let start = Instant::now();
    let mut tasks = workload::spawn_workload(&client, &log, &stop, config.read_bound, start);
    let sampler = tokio::spawn({
        let (log, stop, every) = (log.clone(), stop.clone(), config.sample_every);
        async move {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let ops = lock(&log).ops.len() as u64;
                samples.extend(resources::sample(start.elapsed().as_secs_f64(), ops));
                let next = Instant::now() + every;
                while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            samples
        }
    });
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut order = config.kinds.clone();
    // Every kind once, in a seeded order, then at random.
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let mut faults = Vec::new();
    let mut windows: Vec<Window> = Vec::new();
    let mut no_effect = Vec::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut i = 0;
    while i < config.faults || config.duration.is_some_and(|d| start.elapsed() < d) {
        let kind = order
            .get(i)
            .copied()
            .unwrap_or_else(|| config.kinds[rng.random_range(0..config.kinds.len())]);
        let began = Instant::now();
        tracing::info!(n = i + 1, ?kind, "chaos: injecting");
        let injected = nemesis::inject(cluster, kind, &mut rng).await?;
        let healed = Instant::now();
        windows.push(Window {
            kind,
            began_us: micros_since(start, began),
            healed_us: micros_since(start, healed),
        });
        if let Some(why) = &injected.no_effect {
            tracing::warn!(
                n = i + 1,
                ?kind,
                target = injected.target,
                why,
                "chaos: the fault had no effect"
            );
            no_effect.push(format!(
                "fault {} ({kind:?} on {}) had no effect: {why}",
                i + 1,
                injected.target
            ));
        }
        faults.push(FaultRecord {
            kind,
            failed_over: injected.before.failed_over_to(&injected.after),
            effective: injected.effective,
            target: injected.target,
            started_s: began.duration_since(start).as_secs_f64(),
            healed_after_s: healed.duration_since(began).as_secs_f64(),
            recloned: injected.recloned,
            before: injected.before,
            after: injected.after,
            writes_lost: 0,
            stale_reads: 0,
            ryw_violations: 0,
        });
        tokio::time::sleep(Duration::from_millis(rng.random_range(1_000..3_000))).await;
        i += 1;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let drained = tokio::time::timeout(DEADLINE + Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let resources = sampler.await.unwrap_or_default();
    let mut violations = no_effect;
    violations.extend(resources::leak(&resources).map(|l| format!("the client leaks: {l}")));
    if drained.is_err() {
        violations.push("workload tasks did not stop within the deadline".into());
        tasks.abort_all();
    }
    crate::harness::settle(cluster).await?;
    let in_flight_after: usize = client.metrics().members.iter().map(|m| m.in_flight).sum();

    // The final state, from the leader; every member's copy of it.
    let last = final_state(&client).await?;
    let checksums = checksums(cluster, &client).await?;
    let mut connections_after = BTreeMap::new();
    for m in cluster.member_names() {
        let db = cluster.connect_superuser(&m, "postgres").await?;
        let n: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1",
                &[&format!("{APPLICATION}%")],
            )
            .await?
            .get(0);
        connections_after.insert(m, n);
    }

    let log = std::mem::take(&mut *lock(&log));
    if let Some(path) = &config.history {
        history::write_jsonl(path, &log.ops)
            .map_err(|e| anyhow::anyhow!("writing the history to {}: {e}", path.display()))?;
    }
    let synchronous = cluster.is_synchronous();
    let rules = Rules {
        synchronous,
        bound_us: u64::try_from(config.read_bound.as_micros()).unwrap_or(u64::MAX),
        loss_budget: LocalCluster::MAXIMUM_LAG_ON_FAILOVER,
    };
    let verdict = verdict::judge(&log.ops, &last, &windows, rules);
    violations.extend(verdict.violations.iter().cloned());
    for (i, f) in faults.iter_mut().enumerate() {
        let (from, to) = (windows[i].began_us, windows.get(i + 1).map(|w| w.began_us));
        let within = |t: &&u64| **t >= from && to.is_none_or(|to| **t < to);
        f.writes_lost = verdict.lost_at.iter().filter(within).count() as u64;
        f.stale_reads = verdict.stale_at.iter().filter(within).count() as u64;
        f.ryw_violations = verdict.ryw_at.iter().filter(within).count() as u64;
    }
    let deadline_overruns = u64::from(log.longest > DEADLINE + Duration::from_secs(5));
    if deadline_overruns > 0 {
        violations.push(format!("an operation took {:?}, past its deadline", log.longest));
    }
    if in_flight_after > 0 {
        violations.push(format!(
            "{in_flight_after} operations still in flight after the workload stopped"
        ));
    }
    for (m, n) in &connections_after {
        // One pool (16 at most) plus the monitoring connection per member.
        if *n > 17 {
            violations.push(format!("{n} client connections left on {m}"));
        }
    }
    let distinct: std::collections::BTreeSet<&String> = checksums.values().collect();
    if distinct.len() > 1 {
        violations.push(format!("the members' tables differ at the end: {checksums:?}"));
    }
    let panics = panic_counter.count();
    drop(panic_counter);
    if panics > 0 {
        violations.push(format!("{panics} panics during the run"));
    }
    client.shutdown().await;
    let inserts = |outcome| {
        log.ops
            .iter()
            .filter(|op| op.kind == OpKind::Insert && op.outcome == outcome)
            .count() as u64
    };
    Ok(ChaosReport {
        seed: config.seed,
        replication: if synchronous {
            "synchronous (strict)"
        } else {
            "asynchronous"
        }
        .into(),
        by_kind: KindStats::of(&faults),
        faults,
        operations: log.ops.len() as u64,
        writes_acked: inserts(Outcome::Ok),
        writes_failed: inserts(Outcome::Fail),
        writes_outcome_unknown: inserts(Outcome::Unknown),
        unknown_recovered: (verdict.inserts.recovered.len()
            + verdict.heartbeats.recovered.len()
            + verdict.ryw_writes.recovered.len()) as u64,
        heartbeats_lost: verdict.heartbeats.lost.len() as u64,
        ryw_writes_lost: verdict.ryw_writes.lost.len() as u64,
        failed_but_committed: verdict.inserts.failed_but_present,
        acked_writes_lost: verdict.inserts.lost,
        acked_writes_unplaced: verdict.lost_unplaced,
        unexplained_losses: verdict.unexplained_losses,
        loss_bytes: verdict.loss_bytes,
        duplicates: verdict.duplicates,
        acked_off_history: verdict.acked_off_history,
        deposed_acks: verdict.deposed_acks,
        stale_reads: verdict.stale_at.len() as u64,
        session_reads_back: verdict.session_back_at.len() as u64,
        ryw_violations: verdict.ryw_at.len() as u64,
        stale_samples: verdict.stale_samples,
        session_samples: verdict.session_samples,
        ryw_samples: verdict.ryw_samples,
        errors_by_kind: log.errors,
        longest_operation_ms: u64::try_from(log.longest.as_millis()).unwrap_or(u64::MAX),
        deadline_overruns,
        connections_after,
        checksums,
        in_flight_after,
        panics,
        resources,
        violations,
    })
}

/// A checksum of the workload's tables on every member, once every standby has replayed the
/// leader's position.
async fn checksums(cluster: &LocalCluster, client: &Client) -> anyhow::Result<BTreeMap<String, String>> {
    let token = client.op(Intent::Write).run_with_token(async |_| Ok(())).await?.1;
    client.wait_for_standbys(token, Duration::from_secs(60)).await?;
    let mut sums = BTreeMap::new();
    for m in cluster.member_names() {
        let db = cluster.connect_superuser(&m, &cluster.database()).await?;
        let sum: String = db
            .query_one(
                "SELECT md5(concat_ws('|', \
                   (SELECT string_agg(id || ':' || writer, ',' ORDER BY id, writer) FROM chaos_writes), \
                   (SELECT string_agg(seq::text, ',' ORDER BY seq) FROM chaos_heartbeat_log), \
                   (SELECT string_agg(n::text, ',' ORDER BY n) FROM chaos_ryw), \
                   (SELECT seq::text FROM chaos_heartbeat WHERE id = 1)))",
                &[],
            )
            .await?
            .get(0);
        sums.insert(m, sum);
    }
    Ok(sums)
}

/// What survived, read from the leader after the run.
async fn final_state(client: &Client) -> anyhow::Result<FinalState> {
    let (write_counts, heartbeats, ryw) = client
        .run(Intent::Primary, async |c| {
            let ids = |rows: Vec<tokio_postgres::Row>| -> Result<Vec<i64>, tokio_postgres::Error> {
                rows.iter().map(|r| r.try_get(0)).collect()
            };
            let write_counts = c
                .query("SELECT id, count(*) FROM chaos_writes GROUP BY id", &[])
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<HashMap<i64, i64>, tokio_postgres::Error>>()?;
            let heartbeats = ids(c.query("SELECT seq FROM chaos_heartbeat_log", &[]).await?)?;
            let ryw = ids(c.query("SELECT n FROM chaos_ryw", &[]).await?)?;
            Ok((write_counts, heartbeats, ryw))
        })
        .await?;
    let (timeline, ends) = timeline_ends(client).await?;
    Ok(FinalState {
        write_counts,
        heartbeats: heartbeats.into_iter().collect(),
        ryw: ryw.into_iter().collect(),
        timeline,
        ends,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(kind: FaultKind, healed_after_s: f64, effective: Option<bool>) -> FaultRecord {
        FaultRecord {
            kind,
            target: "m1".into(),
            started_s: 0.0,
            healed_after_s,
            recloned: Vec::new(),
            before: ClusterView::default(),
            after: ClusterView::default(),
            failed_over: effective == Some(true),
            effective,
            writes_lost: 1,
            stale_reads: 0,
            ryw_violations: 2,
        }
    }

    #[test]
    fn kind_stats_count_effects_and_take_nearest_rank_percentiles_of_heal_times() {
        let mut faults: Vec<FaultRecord> = (1..=20)
            .map(|i| fault(FaultKind::KillLeader, f64::from(21 - i), Some(i != 3)))
            .collect();
        faults.push(fault(FaultKind::PauseReplay, 4.0, None));
        let stats = KindStats::of(&faults);
        let kill = &stats[&FaultKind::KillLeader];
        assert_eq!(
            (kill.count, kill.effective, kill.no_effect, kill.failed_over),
            (20, 19, 1, 19)
        );
        // 1…20 s: nearest rank of 50 % is the 11th value (round(0.5 × 19) = 10, from 0).
        assert_eq!((kill.heal_p50_s, kill.heal_p95_s, kill.heal_max_s), (11.0, 19.0, 20.0));
        assert_eq!((kill.writes_lost, kill.ryw_violations), (20, 40));
        let pause = &stats[&FaultKind::PauseReplay];
        assert_eq!((pause.count, pause.effective, pause.no_effect), (1, 0, 0));
        assert_eq!((pause.heal_p50_s, pause.heal_p95_s, pause.heal_max_s), (4.0, 4.0, 4.0));
        assert_eq!(stats.len(), 2);
    }

    #[test]
    fn every_kind_has_a_kebab_case_name_and_the_checked_ones_say_so() {
        for kind in FaultKind::ALL {
            let name = serde_json::to_value(kind).expect("serializes");
            let back: FaultKind = serde_json::from_value(name.clone()).expect("parses back");
            assert_eq!(back, kind, "{name}");
        }
        assert!(FaultKind::KillEtcdLeader.effect_is_checked() && FaultKind::KillSessions.effect_is_checked());
        assert!(!FaultKind::PauseReplay.effect_is_checked());
    }
}
