//! The fault-injection run: a seeded, reproducible schedule of faults against a local cluster
//! while a pgha-client workload runs — unique inserts whose every acknowledgement is recorded
//! with its WAL position, lag-bounded reads of a heartbeat row, read-your-writes reads — and
//! invariants checked afterwards from the final state of the leader (see `RELIABILITY.md`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgha_client::patroni::Lsn;
use pgha_client::{Client, Intent, LagBound};
use pgha_testkit::LocalCluster;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::task::JoinSet;

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
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 9] = [
        Self::KillLeader,
        Self::KillPostmaster,
        Self::FreezeLeader,
        Self::EtcdRestart,
        Self::Switchover,
        Self::RestartStandby,
        Self::PauseReplay,
        Self::RestApiDown,
        Self::PartitionLeader,
    ];

    /// Faults during which asynchronous replication may lose acknowledged writes: the leader
    /// goes away without handing over.
    fn may_lose_writes(self) -> bool {
        matches!(
            self,
            Self::KillLeader | Self::FreezeLeader | Self::EtcdRestart | Self::PartitionLeader
        )
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Seed of the schedule (which fault, on which standby, how long to wait between).
    pub seed: u64,
    /// How many faults.
    pub faults: usize,
    /// The kinds to draw from. The first `kinds.len()` faults go through every kind once, in a
    /// seeded order; the rest are drawn at random.
    pub kinds: Vec<FaultKind>,
    /// Read bound of the lag-bounded reads.
    pub read_bound: Duration,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            faults: FaultKind::ALL.len(),
            kinds: FaultKind::ALL.to_vec(),
            read_bound: Duration::from_secs(2),
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
    /// Stale reads that started between this fault and the next.
    pub stale_reads: u64,
    /// Read-your-writes violations that started between this fault and the next.
    pub ryw_violations: u64,
}

/// The outcome of a run: what was done, what the application saw, and the invariants.
#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    /// The seed.
    pub seed: u64,
    /// `synchronous (strict)` or `asynchronous`.
    pub replication: String,
    /// Faults injected, by kind.
    pub faults_by_kind: BTreeMap<FaultKind, u32>,
    /// Every fault, in order.
    pub faults: Vec<FaultRecord>,
    /// Operations run (writes, heartbeats, reads, read-your-writes pairs).
    pub operations: u64,
    /// Inserts acknowledged as committed.
    pub writes_acked: u64,
    /// Inserts that ended in a definite error (not committed).
    pub writes_failed: u64,
    /// Inserts whose outcome is unknown (connection lost after COMMIT was sent).
    pub writes_outcome_unknown: u64,
    /// Acknowledged inserts missing at the end.
    pub acked_writes_lost: Vec<i64>,
    /// Lost writes that no fault of a losing kind explains (must be empty).
    pub unexplained_losses: Vec<i64>,
    /// Inserts present more than once.
    pub duplicates: Vec<i64>,
    /// Inserts reported as failed that committed anyway.
    pub failed_but_committed: Vec<i64>,
    /// Acknowledgements whose WAL position is past the end of their timeline in the final
    /// leader's history: acknowledged by a node whose history did not survive (a lost write must
    /// be one of these; the position is read after the commit, so a surviving write may be one
    /// too).
    pub acked_off_history: Vec<i64>,
    /// Bounded reads that missed a heartbeat acknowledged more than the bound before they
    /// started.
    pub stale_reads: u64,
    /// Read-your-writes reads that did not see their own write.
    pub ryw_violations: u64,
    /// Errors surfaced to the application, by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// The longest operation, in milliseconds.
    pub longest_operation_ms: u64,
    /// Operations that ran past their deadline (plus 5 s of slack).
    pub deadline_overruns: u64,
    /// Connections of the client left open per member after the run (pools: at most their size).
    pub connections_after: BTreeMap<String, i64>,
    /// Operations still in flight after the workload stopped.
    pub in_flight_after: usize,
    /// Background tasks that panicked.
    pub panics: u64,
    /// Every invariant that failed, in words. Empty means the run passed.
    pub violations: Vec<String>,
}

#[derive(Debug, Default)]
struct Log {
    acked: Vec<(i64, Instant, u64, Lsn)>,
    failed: Vec<i64>,
    unknown: Vec<i64>,
    heartbeat: Vec<(i64, Instant)>,
    stale: u64,
    stale_at: Vec<Instant>,
    ryw_violations: u64,
    ryw_at: Vec<Instant>,
    errors: BTreeMap<String, u64>,
    operations: u64,
    longest: Duration,
}

fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

fn error_kind(e: &pgha_client::Error) -> String {
    if e.is_outcome_unknown() {
        "outcome-unknown".into()
    } else if e.is_timeout() {
        "deadline".into()
    } else if e.is_no_member() {
        "no-member".into()
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_budget_exhausted() {
        "retry-budget".into()
    } else if let Some(code) = e.code() {
        format!("sqlstate-{}", code.code())
    } else {
        "other".into()
    }
}

const APPLICATION: &str = "pgha-chaos";
const DEADLINE: Duration = Duration::from_secs(30);

fn record(log: &Mutex<Log>, started: Instant, error: Option<&pgha_client::Error>) {
    let mut l = lock(log);
    l.operations += 1;
    l.longest = l.longest.max(started.elapsed());
    if let Some(e) = error {
        *l.errors.entry(error_kind(e)).or_default() += 1;
    }
}

fn spawn_workload(client: &Client, log: &Arc<Mutex<Log>>, stop: &Arc<AtomicBool>, bound: Duration) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let next_id = Arc::new(AtomicI64::new(1));
    for writer in 0..2 {
        let (client, log, stop, next_id) = (client.clone(), log.clone(), stop.clone(), next_id.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                let result = client
                    .op(Intent::Write)
                    .transaction_with_token(async move |tx| {
                        tx.execute("INSERT INTO chaos_writes (id, writer) VALUES ($1, $2)", &[&id, &writer])
                            .await?;
                        Ok(())
                    })
                    .await;
                record(&log, started, result.as_ref().err());
                match result {
                    Ok((_, token)) => lock(&log).acked.push((id, Instant::now(), token.timeline, token.lsn)),
                    Err(e) if e.is_outcome_unknown() => lock(&log).unknown.push(id),
                    Err(_) => lock(&log).failed.push(id),
                }
            }
        });
    }
    {
        let (client, log, stop) = (client.clone(), log.clone(), stop.clone());
        tasks.spawn(async move {
            let mut seq = 0_i64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let started = Instant::now();
                let result = client
                    .op(Intent::Write)
                    .idempotent()
                    .run(async move |c| {
                        c.execute("UPDATE chaos_heartbeat SET seq = $1 WHERE id = 1", &[&seq])
                            .await?;
                        Ok(())
                    })
                    .await;
                record(&log, started, result.as_ref().err());
                if result.is_ok() {
                    lock(&log).heartbeat.push((seq, Instant::now()));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
    for _ in 0..2 {
        let (client, log, stop) = (client.clone(), log.clone(), stop.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let result = client
                    .op(Intent::Standby)
                    .max_lag(LagBound::time(bound))
                    .run(async |c| {
                        Ok(c.query_one("SELECT seq FROM chaos_heartbeat WHERE id = 1", &[])
                            .await?
                            .get::<_, i64>(0))
                    })
                    .await;
                record(&log, started, result.as_ref().err());
                if let Ok(seen) = result {
                    let mut l = lock(&log);
                    // Stale: a heartbeat acknowledged more than `bound` before the read started
                    // is missing from what it saw.
                    let missing = l.heartbeat.iter().find(|(s, _)| *s == seen + 1);
                    if missing.is_some_and(|(_, acked)| *acked + bound < started) {
                        l.stale += 1;
                        l.stale_at.push(started);
                    }
                }
            }
        });
    }
    {
        let (client, log, stop) = (client.clone(), log.clone(), stop.clone());
        tasks.spawn(async move {
            let mut n = 0_i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let started = Instant::now();
                let written = client
                    .op(Intent::Write)
                    .idempotent()
                    .transaction_with_token(async move |tx| {
                        tx.execute("INSERT INTO chaos_ryw (n) VALUES ($1) ON CONFLICT DO NOTHING", &[&n])
                            .await?;
                        Ok(())
                    })
                    .await;
                record(&log, started, written.as_ref().err());
                let Ok((_, token)) = written else { continue };
                let started = Instant::now();
                let seen = client
                    .op(Intent::Standby)
                    .after(token)
                    .run(async move |c| {
                        Ok(
                            c.query_one("SELECT EXISTS (SELECT 1 FROM chaos_ryw WHERE n = $1)", &[&n])
                                .await?
                                .get::<_, bool>(0),
                        )
                    })
                    .await;
                record(&log, started, seen.as_ref().err());
                if matches!(seen, Ok(false)) {
                    let mut l = lock(&log);
                    l.ryw_violations += 1;
                    l.ryw_at.push(started);
                }
            }
        });
    }
    tasks
}

async fn pick_replica(cluster: &LocalCluster, rng: &mut StdRng) -> anyhow::Result<String> {
    let leader = cluster.leader().await?;
    let replicas: Vec<String> = cluster.member_names().into_iter().filter(|m| *m != leader).collect();
    anyhow::ensure!(!replicas.is_empty(), "no replica");
    Ok(replicas[rng.random_range(0..replicas.len())].clone())
}

/// Injects one fault and heals the cluster; returns the member it hit and the members re-cloned.
async fn inject(cluster: &LocalCluster, kind: FaultKind, rng: &mut StdRng) -> anyhow::Result<(String, Vec<String>)> {
    let ttl = Duration::from_secs(u64::from(cluster.timing().ttl));
    let target = match kind {
        FaultKind::RestartStandby | FaultKind::PauseReplay => pick_replica(cluster, rng).await?,
        FaultKind::EtcdRestart | FaultKind::RestApiDown => "all".to_owned(),
        _ => cluster.leader().await?,
    };
    match kind {
        FaultKind::KillLeader => {
            cluster.kill_node(&target)?;
            cluster.wait_for_new_leader(&target, Duration::from_secs(90)).await?;
            cluster.start_node(&target)?;
        }
        FaultKind::KillPostmaster => cluster.kill_postmaster(&target)?,
        FaultKind::FreezeLeader => {
            cluster.freeze_node(&target)?;
            tokio::time::sleep(ttl + Duration::from_secs(3)).await;
            cluster.thaw_node(&target)?;
        }
        FaultKind::EtcdRestart => {
            cluster.stop_etcd()?;
            tokio::time::sleep(Duration::from_secs(4)).await;
            cluster.start_etcd_again().await?;
        }
        FaultKind::Switchover => {
            // In synchronous mode Patroni refuses (412) until a synchronous standby is
            // registered again after the previous fault: wait for one rather than give up.
            let mut attempt = 0;
            loop {
                match cluster.switchover(None).await {
                    Ok(_) => break,
                    Err(e) if attempt < 30 && e.to_string().contains("412") => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        FaultKind::RestartStandby => {
            cluster.stop_node(&target)?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            cluster.start_node(&target)?;
        }
        FaultKind::PauseReplay => {
            cluster.pause_replay(&target)?;
            tokio::time::sleep(Duration::from_secs(4)).await;
            cluster.resume_replay(&target)?;
        }
        FaultKind::PartitionLeader => {
            cluster.partition_node(&target)?;
            tokio::time::sleep(ttl + Duration::from_secs(5)).await;
            cluster.heal_partition()?;
        }
        FaultKind::RestApiDown => {
            let members = cluster.member_names();
            for m in &members {
                cluster.block_rest_api(m)?;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
            for m in &members {
                cluster.restore_rest_api(m)?;
            }
        }
    }
    let recloned = crate::harness::settle(cluster).await?;
    Ok((target, recloned))
}

/// The switch point of every timeline in the final leader's history: a position on timeline
/// `tl` past its switch point never became part of the surviving history.
async fn timeline_ends(client: &Client) -> anyhow::Result<(u64, HashMap<u64, Lsn>)> {
    let (current, text): (i64, Option<String>) = client
        .run(Intent::Primary, async |c| {
            let row = c
                .query_one(
                    "SELECT timeline_id::int8, \
                            CASE WHEN timeline_id > 1 THEN pg_read_file('pg_wal/' || lpad(upper(to_hex(timeline_id)), 8, '0') || '.history') END \
                     FROM pg_control_checkpoint()",
                    &[],
                )
                .await?;
            Ok((row.get(0), row.get(1)))
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
                "DROP TABLE IF EXISTS chaos_writes, chaos_heartbeat, chaos_ryw; \
                 CREATE TABLE chaos_writes (id bigint NOT NULL, writer int NOT NULL); \
                 CREATE TABLE chaos_heartbeat (id int PRIMARY KEY, seq bigint NOT NULL); \
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
    let mut tasks = spawn_workload(&client, &log, &stop, config.read_bound);
    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut order = config.kinds.clone();
    // Every kind once, in a seeded order, then at random.
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let mut faults = Vec::new();
    let mut windows: Vec<(FaultKind, Instant, Instant)> = Vec::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..config.faults {
        let kind = order
            .get(i)
            .copied()
            .unwrap_or_else(|| config.kinds[rng.random_range(0..config.kinds.len())]);
        let began = Instant::now();
        tracing::info!(n = i + 1, ?kind, "chaos: injecting");
        let (target, recloned) = inject(cluster, kind, &mut rng).await?;
        let healed = Instant::now();
        windows.push((kind, began, healed));
        faults.push(FaultRecord {
            kind,
            target,
            started_s: began.duration_since(start).as_secs_f64(),
            healed_after_s: healed.duration_since(began).as_secs_f64(),
            recloned,
            stale_reads: 0,
            ryw_violations: 0,
        });
        tokio::time::sleep(Duration::from_millis(rng.random_range(1_000..3_000))).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut panics = 0;
    let drained = tokio::time::timeout(DEADLINE + Duration::from_secs(10), async {
        while let Some(joined) = tasks.join_next().await {
            if joined.as_ref().err().is_some_and(|e| e.is_panic()) {
                panics += 1;
            }
        }
    })
    .await;
    let mut violations = Vec::new();
    if drained.is_err() {
        violations.push("workload tasks did not stop within the deadline".into());
        tasks.abort_all();
    }
    crate::harness::settle(cluster).await?;
    let in_flight_after: usize = client.metrics().members.iter().map(|m| m.in_flight).sum();

    // The final state, from the leader.
    let counts: HashMap<i64, i64> = client
        .run(Intent::Primary, async |c| {
            Ok(c.query("SELECT id, count(*) FROM chaos_writes GROUP BY id", &[])
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })
        .await?;
    let (current_tl, ends) = timeline_ends(&client).await?;
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
    let starts: Vec<Instant> = windows.iter().map(|w| w.1).collect();
    for (i, f) in faults.iter_mut().enumerate() {
        let (from, to) = (starts[i], starts.get(i + 1).copied());
        let within = |t: &&Instant| **t >= from && to.is_none_or(|to| **t < to);
        f.stale_reads = log.stale_at.iter().filter(within).count() as u64;
        f.ryw_violations = log.ryw_at.iter().filter(within).count() as u64;
    }
    let duplicates: Vec<i64> = counts.iter().filter(|(_, n)| **n > 1).map(|(id, _)| *id).collect();
    let mut acked_writes_lost: Vec<i64> = log
        .acked
        .iter()
        .map(|a| a.0)
        .filter(|id| !counts.contains_key(id))
        .collect();
    acked_writes_lost.sort_unstable();
    let failed_but_committed: Vec<i64> = log
        .failed
        .iter()
        .copied()
        .filter(|id| counts.contains_key(id))
        .collect();
    let acked_off_history: Vec<i64> = log
        .acked
        .iter()
        .filter(|(_, _, tl, lsn)| *tl > current_tl || ends.get(tl).is_some_and(|end| lsn > end))
        .map(|a| a.0)
        .collect();
    let lost_set: HashSet<i64> = acked_writes_lost.iter().copied().collect();
    let unexplained_losses: Vec<i64> = log
        .acked
        .iter()
        .filter(|(id, at, _, _)| {
            lost_set.contains(id)
                && !windows.iter().any(|(kind, began, healed)| {
                    kind.may_lose_writes() && *at + Duration::from_secs(1) >= *began && *at <= *healed
                })
        })
        .map(|a| a.0)
        .collect();
    let synchronous = cluster.is_synchronous();
    let deadline_overruns = u64::from(log.longest > DEADLINE + Duration::from_secs(5));

    if synchronous && !acked_writes_lost.is_empty() {
        violations.push(format!(
            "synchronous mode lost {} acknowledged writes: {:?}",
            acked_writes_lost.len(),
            &acked_writes_lost[..acked_writes_lost.len().min(10)]
        ));
    }
    if !unexplained_losses.is_empty() {
        violations.push(format!(
            "{} acknowledged writes lost outside any leader-loss fault: {:?}",
            unexplained_losses.len(),
            &unexplained_losses[..unexplained_losses.len().min(10)]
        ));
    }
    if !duplicates.is_empty() {
        violations.push(format!("writes applied twice: {duplicates:?}"));
    }
    if !failed_but_committed.is_empty() {
        violations.push(format!(
            "writes reported as failed that committed: {failed_but_committed:?}"
        ));
    }
    // A write lost although its acknowledgement lies on the surviving history was not lost to a
    // failover: it was acknowledged without being committed there.
    let off: HashSet<i64> = acked_off_history.iter().copied().collect();
    let lost_on_history: Vec<i64> = acked_writes_lost
        .iter()
        .copied()
        .filter(|id| !off.contains(id))
        .collect();
    if !lost_on_history.is_empty() {
        violations.push(format!(
            "writes lost although acknowledged on the surviving timeline history: {:?}",
            &lost_on_history[..lost_on_history.len().min(10)]
        ));
    }
    if log.stale > 0 {
        violations.push(format!("{} reads beyond their bound", log.stale));
    }
    if log.ryw_violations > 0 {
        violations.push(format!(
            "{} read-your-writes reads missed their write",
            log.ryw_violations
        ));
    }
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
    if panics > 0 {
        violations.push(format!("{panics} workload tasks panicked"));
    }
    let mut faults_by_kind = BTreeMap::new();
    for f in &faults {
        *faults_by_kind.entry(f.kind).or_default() += 1;
    }
    client.shutdown().await;
    Ok(ChaosReport {
        seed: config.seed,
        replication: if synchronous {
            "synchronous (strict)"
        } else {
            "asynchronous"
        }
        .into(),
        faults_by_kind,
        faults,
        operations: log.operations,
        writes_acked: log.acked.len() as u64,
        writes_failed: log.failed.len() as u64,
        writes_outcome_unknown: log.unknown.len() as u64,
        acked_writes_lost,
        unexplained_losses,
        duplicates,
        failed_but_committed,
        acked_off_history,
        stale_reads: log.stale,
        ryw_violations: log.ryw_violations,
        errors_by_kind: log.errors,
        longest_operation_ms: u64::try_from(log.longest.as_millis()).unwrap_or(u64::MAX),
        deadline_overruns,
        connections_after,
        in_flight_after,
        panics,
        violations,
    })
}
