//! A running workload (writers, readers, heartbeat) and its log: write gaps, stale reads, losses.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgha_client::{Client, Intent};
use tokio::task::JoinSet;

use super::data::embedding;
use super::drivers::{Driver, ReadSample};
use super::{RoundReport, Timeline, WorkloadConfig};

/// The heartbeats acknowledged after `seen`; `heartbeats` are `(seq, acknowledged at)` in
/// sequence order (one writer, so acknowledgement times rise with the sequence).
pub(crate) fn heartbeats_after<T>(heartbeats: &[(i64, T)], seen: i64) -> &[(i64, T)] {
    &heartbeats[heartbeats.partition_point(|(s, _)| *s <= seen)..]
}

/// The rule for a stale read, shared by the demo, the benchmarks and the fault-injection
/// verdict: a read that saw heartbeat `seen` and started at `started` was stale if it missed a
/// heartbeat that `survived` and was acknowledged more than `bound` before it started. Returns
/// the first such heartbeat. (A heartbeat the failover lost is a lost write, not a reason to call
/// a read stale.) Times are `Instant`s with a `Duration` bound, or microseconds.
pub(crate) fn missed_surviving_heartbeat<T, B>(
    heartbeats: &[(i64, T)],
    seen: i64,
    started: T,
    bound: B,
    survived: impl Fn(i64) -> bool,
) -> Option<(i64, T)>
where
    T: Copy + PartialOrd + std::ops::Add<B, Output = T>,
    B: Copy,
{
    heartbeats_after(heartbeats, seen)
        .iter()
        .take_while(|(_, acked)| *acked + bound < started)
        .find(|(s, _)| survived(*s))
        .copied()
}

#[derive(Debug, Default)]
struct Log {
    acks: Vec<(i64, Instant)>,
    heartbeat: Vec<(i64, Instant)>,
    /// Errors returned to the application, with when.
    errors: Vec<(Instant, String)>,
    reads_standby: u64,
    reads_primary: u64,
    /// Reads that missed a heartbeat acknowledged more than the bound before they started:
    /// stale unless every such heartbeat was lost (judged once the survivors are known).
    suspects: Vec<Suspect>,
}

#[derive(Debug)]
struct Suspect {
    started: Instant,
    sample: ReadSample,
}

/// A running workload; [`stop`](Self::stop) it to get its log.
#[derive(Debug)]
pub struct Workload {
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
    table: String,
    name: String,
    row: i32,
    seq0: i64,
    bound: Duration,
    started: Instant,
}

fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

/// Pause after an error, so a client that fails fast does not spin.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

impl Workload {
    /// The workload through pgha-client itself ([`PghaDriver`](super::PghaDriver)) on
    /// [`TABLE`](super::TABLE) and heartbeat row 1 (create them with [`prepare`](super::prepare)).
    pub async fn start_pgha(client: &Client, config: &WorkloadConfig) -> pgha_client::Result<Self> {
        let driver: Arc<dyn Driver> = Arc::new(super::PghaDriver {
            client: client.clone(),
            read_bound: config.read_bound,
        });
        Self::start_driver(client, driver, super::TABLE, 1, config).await
    }

    /// Starts writers, readers and the heartbeat of `driver` on `table` and heartbeat `row`
    /// (create both with [`prepare_tables`](super::prepare_tables)). `client` is used only to
    /// find the first free id.
    pub async fn start_driver(
        client: &Client,
        driver: Arc<dyn Driver>,
        table: &str,
        row: i32,
        config: &WorkloadConfig,
    ) -> pgha_client::Result<Self> {
        let first_id: i64 = client
            .run(Intent::Primary, async |c| {
                Ok(
                    c.query_one(&format!("SELECT coalesce(max(id), 0) + 1 FROM {table}"), &[])
                        .await?
                        .get(0),
                )
            })
            .await?;
        let seq0: i64 = client
            .run(Intent::Primary, async move |c| {
                Ok(c.query_one("SELECT seq FROM pgha_heartbeat WHERE id = $1", &[&row])
                    .await?
                    .get(0))
            })
            .await?;
        let next_id = Arc::new(AtomicI64::new(first_id));
        let log = Arc::new(Mutex::new(Log::default()));
        let started = Instant::now();
        lock(&log).heartbeat.push((seq0, Instant::now()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();

        for _ in 0..config.writers {
            let (driver, log, stop, next_id, table) = (
                driver.clone(),
                log.clone(),
                stop.clone(),
                next_id.clone(),
                table.to_owned(),
            );
            tasks.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    let v = embedding(id);
                    let result = driver.write(&table, id, &v).await;
                    let failed = result.is_err();
                    match result {
                        Ok(()) => lock(&log).acks.push((id, Instant::now())),
                        Err(e) => lock(&log).errors.push((Instant::now(), format!("write {id}: {e}"))),
                    }
                    if failed {
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                }
            });
        }

        {
            let (driver, log, stop) = (driver.clone(), log.clone(), stop.clone());
            tasks.spawn(async move {
                let mut seq = seq0;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    match driver.heartbeat(row, seq).await {
                        Ok(()) => lock(&log).heartbeat.push((seq, Instant::now())),
                        Err(e) => {
                            // The value may or may not have been written: the next one supersedes it.
                            lock(&log)
                                .errors
                                .push((Instant::now(), format!("heartbeat {seq}: {e}")));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }

        for reader in 0..config.readers {
            let (driver, log, stop, table) = (driver.clone(), log.clone(), stop.clone(), table.to_owned());
            let bound = config.read_bound;
            tasks.spawn(async move {
                let mut n = reader as i64;
                while !stop.load(Ordering::Relaxed) {
                    n += 7;
                    let query = embedding(n);
                    let started = Instant::now();
                    let result = driver.read(&table, row, &query).await;
                    let failed = result.is_err();
                    {
                        let mut log = lock(&log);
                        match result {
                            Ok(sample) => {
                                if sample.standby {
                                    log.reads_standby += 1;
                                } else {
                                    log.reads_primary += 1;
                                }
                                // A suspect if the next heartbeat (the earliest acknowledged one
                                // it missed) was acknowledged more than `bound` before the read
                                // started; stale if a surviving one was (see `judge`).
                                if heartbeats_after(&log.heartbeat, sample.seq)
                                    .first()
                                    .is_some_and(|(_, acked)| *acked + bound < started)
                                {
                                    log.suspects.push(Suspect { started, sample });
                                }
                            }
                            Err(e) => log.errors.push((Instant::now(), format!("read: {e}"))),
                        }
                    }
                    if failed {
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                }
            });
        }
        Ok(Self {
            log,
            stop,
            tasks,
            table: table.to_owned(),
            name: driver.name().to_owned(),
            row,
            seq0,
            bound: config.read_bound,
            started,
        })
    }

    /// When this workload last acknowledged a write.
    pub fn last_ack(&self) -> Option<Instant> {
        lock(&self.log).acks.iter().map(|(_, t)| *t).max()
    }

    /// Stops the workload and returns what it saw. Operations still running 5 s after the stop
    /// (a client stuck on a frozen node, with no timeout of its own) are abandoned and counted.
    pub async fn stop(mut self) -> WorkloadLog {
        self.stop.store(true, Ordering::Relaxed);
        let ended = Instant::now();
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        let stuck = if drained.is_err() { self.tasks.len() as u64 } else { 0 };
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let log = std::mem::take(&mut *lock(&self.log));
        WorkloadLog {
            log,
            table: self.table,
            name: self.name,
            started: self.started,
            ended,
            stuck,
            row: self.row,
            seq0: self.seq0,
            bound: self.bound,
        }
    }
}

/// What a stopped workload saw.
#[derive(Debug)]
pub struct WorkloadLog {
    log: Log,
    table: String,
    name: String,
    started: Instant,
    ended: Instant,
    stuck: u64,
    row: i32,
    seq0: i64,
    bound: Duration,
}

impl WorkloadLog {
    /// Longest interval without an acknowledged write, counting the time from the last one to
    /// the end (a client that never recovered has a gap as long as the rest of the round).
    pub fn write_gap(&self) -> Duration {
        let mut times: Vec<Instant> = self.log.acks.iter().map(|(_, t)| *t).collect();
        times.sort();
        let inner = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
        let trailing = times
            .last()
            .map_or(Duration::ZERO, |t| self.ended.saturating_duration_since(*t));
        inner.max(trailing)
    }

    /// Acknowledged writes per [`Timeline::BIN`] and errors, on a clock whose zero is `fault_at`.
    pub fn timeline(&self, fault_at: Instant) -> Timeline {
        let since_fault = |t: Instant| {
            if t >= fault_at {
                t.duration_since(fault_at).as_secs_f64()
            } else {
                -fault_at.duration_since(t).as_secs_f64()
            }
        };
        let start_s = since_fault(self.started);
        let span = self.ended.saturating_duration_since(self.started);
        let bins = (span.as_secs_f64() / Timeline::BIN.as_secs_f64()).ceil() as usize;
        let mut acks = vec![0_u32; bins.max(1)];
        let last = acks.len() - 1;
        for (_, t) in &self.log.acks {
            let bin = (t.saturating_duration_since(self.started).as_secs_f64() / Timeline::BIN.as_secs_f64()) as usize;
            acks[bin.min(last)] += 1;
        }
        Timeline {
            start_s,
            acks,
            errors_s: self.log.errors.iter().map(|(t, _)| since_fault(*t)).collect(),
        }
    }

    /// Ids of acknowledged writes.
    pub fn acked_ids(&self) -> Vec<i64> {
        self.log.acks.iter().map(|(id, _)| *id).collect()
    }

    /// Judges the suspect reads against the heartbeats that survived (`surviving`, sorted): a
    /// read is stale if a surviving heartbeat after the one it saw was acknowledged more than
    /// the bound before it started. Returns (stale reads, their explanations, heartbeats lost).
    fn judge(&self, surviving: &[i64]) -> (u64, Vec<String>, u64) {
        let survived = |s: i64| s == self.seq0 || surviving.binary_search(&s).is_ok();
        let lost = self.log.heartbeat.iter().filter(|(s, _)| !survived(*s)).count() as u64;
        let mut stale = 0;
        let mut samples = Vec::new();
        for Suspect { started, sample } in &self.log.suspects {
            let missed = missed_surviving_heartbeat(&self.log.heartbeat, sample.seq, *started, self.bound, survived);
            if let Some((missed, acked)) = missed {
                stale += 1;
                if samples.len() < 5 {
                    samples.push(format!(
                        "read on {} ({}, timeline {}, at {}) saw heartbeat {} but missed {} acknowledged {:?} before it started (bound {:?})",
                        sample.member,
                        if sample.standby { "standby" } else { "primary" },
                        sample.timeline,
                        sample.lsn,
                        sample.seq,
                        missed,
                        started.saturating_duration_since(acked),
                        self.bound
                    ));
                }
            }
        }
        (stale, samples, lost)
    }

    /// Reads what survived on the primary (acknowledged inserts, heartbeats) and builds the
    /// report of `fault`.
    pub async fn report_from(
        &self,
        client: &Client,
        fault: &str,
        fault_at: Instant,
        promotion: Option<Duration>,
    ) -> pgha_client::Result<RoundReport> {
        let lost = count_lost(client, &self.table, &self.acked_ids()).await?;
        let surviving = surviving_heartbeats(client, self).await?;
        let mut report = self.report(fault, promotion, lost, &surviving);
        report.timeline = self.timeline(fault_at);
        Ok(report)
    }

    /// Builds the report: `lost` is the number of acknowledged writes missing afterwards,
    /// `surviving` the heartbeat values found in the log table afterwards (sorted).
    fn report(&self, fault: &str, promotion: Option<Duration>, lost: u64, surviving: &[i64]) -> RoundReport {
        let (stale_reads, stale_samples, heartbeats_lost) = self.judge(surviving);
        let gap = self.write_gap().as_secs_f64();
        let promotion_s = promotion.map(|p| p.as_secs_f64());
        RoundReport {
            client: self.name.clone(),
            fault: fault.to_owned(),
            promotion_s,
            write_gap_s: gap,
            gap_minus_promotion_s: promotion_s.map(|p| gap - p),
            errors_surfaced: self.log.errors.len() as u64,
            reads_standby: self.log.reads_standby,
            reads_primary: self.log.reads_primary,
            stale_reads,
            stale_samples,
            heartbeats_lost,
            writes_acked: self.log.acks.len() as u64,
            acked_writes_lost: lost,
            ops_stuck: self.stuck,
            error_samples: self.log.errors.iter().take(5).map(|(_, e)| e.clone()).collect(),
            primary_before: None,
            primary_after: None,
            timeline: Timeline::default(),
        }
    }
}

/// The heartbeat values of `row` that survived (are in the log table on the primary), sorted.
async fn surviving_heartbeats(client: &Client, log: &WorkloadLog) -> pgha_client::Result<Vec<i64>> {
    let (row, seq0) = (log.row, log.seq0);
    client
        .run(Intent::Primary, async move |c| {
            Ok(c.query(
                "SELECT seq FROM pgha_heartbeat_log WHERE id = $1 AND seq > $2 ORDER BY seq",
                &[&row, &seq0],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })
        .await
}

/// Counts acknowledged ids missing on the primary.
pub async fn count_lost(client: &Client, table: &str, acked: &[i64]) -> pgha_client::Result<u64> {
    let found: i64 = client
        .run(Intent::Primary, async |c| {
            Ok(
                c.query_one(&format!("SELECT count(*) FROM {table} WHERE id = ANY($1)"), &[&acked])
                    .await?
                    .get(0),
            )
        })
        .await?;
    Ok((acked.len() as u64).saturating_sub(u64::try_from(found).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::TABLE;

    fn sample(seq: i64) -> ReadSample {
        ReadSample {
            member: "node2".into(),
            standby: true,
            seq,
            timeline: 1,
            lsn: "0/5000000".into(),
        }
    }

    fn log_with(heartbeats: &[(i64, u64)], reads: &[(i64, u64)]) -> (WorkloadLog, Instant) {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let log = Log {
            heartbeat: heartbeats.iter().map(|&(s, ms)| (s, at(ms))).collect(),
            suspects: reads
                .iter()
                .map(|&(seen, ms)| Suspect {
                    started: at(ms),
                    sample: sample(seen),
                })
                .collect(),
            ..Log::default()
        };
        let log = WorkloadLog {
            log,
            table: TABLE.into(),
            name: "pgha-client".into(),
            started: t0,
            ended: at(10_000),
            stuck: 0,
            row: 1,
            seq0: 0,
            bound: Duration::from_secs(2),
        };
        (log, t0)
    }

    #[test]
    fn a_read_that_missed_only_lost_heartbeats_is_not_stale() {
        // Heartbeats 1-3 acknowledged by the old primary, 2 and 3 lost in the failover; the
        // read at 5 s saw 1: it missed only lost ones until 4, acknowledged at 4.5 s.
        let (log, _) = log_with(&[(0, 0), (1, 100), (2, 200), (3, 300), (4, 4_500)], &[(1, 5_000)]);
        assert_eq!(log.judge(&[1, 4]), (0, vec![], 2));
    }

    #[test]
    fn a_read_that_missed_a_surviving_heartbeat_beyond_the_bound_is_stale_and_explained() {
        let (log, _) = log_with(&[(0, 0), (1, 100), (2, 200), (3, 300)], &[(1, 5_000), (3, 5_000)]);
        let (stale, samples, lost) = log.judge(&[1, 2, 3]);
        assert_eq!((stale, lost), (1, 0));
        assert!(
            samples[0].contains("node2") && samples[0].contains("missed 2"),
            "{samples:?}"
        );
    }

    #[test]
    fn the_timeline_counts_acknowledgements_per_100_ms_from_the_fault() {
        let (mut log, t0) = log_with(&[(0, 0)], &[]);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        log.log.acks = vec![(1, at(0)), (2, at(50)), (3, at(150)), (4, at(9_999))];
        log.log.errors = vec![
            (at(1_500), "write 5: refused".into()),
            (at(500), "read: refused".into()),
        ];
        let t = log.timeline(at(1_000));
        assert!(
            (t.start_s + 1.0).abs() < 1e-9,
            "starts 1 s before the fault: {}",
            t.start_s
        );
        assert_eq!(t.acks.len(), 100, "10 s in bins of 100 ms");
        assert_eq!((t.acks[0], t.acks[1], t.acks[2], t.acks[99]), (2, 1, 0, 1));
        assert_eq!(t.acks.iter().sum::<u32>(), 4);
        let errors: Vec<i64> = t.errors_s.iter().map(|s| (s * 1000.0).round() as i64).collect();
        assert_eq!(errors, [500, -500]);
    }
}
