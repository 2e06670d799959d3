//! The health check: the runbook's daily check and cron script, done right. Observations are
//! gathered first (every failure to observe is itself an observation), then judged by a pure
//! function, so every verdict is unit-tested.

use std::path::Path;
use std::time::Duration;

use pgha_client::patroni::{ClusterView, Role};
use pgha_client::reqwest::Method;
use serde::Serialize;

use crate::admin::Admin;
use crate::exit_codes;
use crate::replication::ReplicationReport;
use crate::sql::RowExt;
use crate::wal::ArchiverStatus;

/// Thresholds of [`Admin::check`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CheckOptions {
    /// Replay lag (bytes) that makes a standby WARNING (default 16 MiB)…
    pub lag_bytes_warning: u64,
    /// …and CRITICAL (default 256 MiB).
    pub lag_bytes_critical: u64,
    /// Replay lag (time) that makes a standby WARNING (default 30 s)…
    pub lag_time_warning: Duration,
    /// …and CRITICAL (default 5 min).
    pub lag_time_critical: Duration,
    /// How many members the cluster should have; a member whose Patroni is down disappears from
    /// `/cluster` once its key expires, so only this can tell (default: the number of configured
    /// Patroni URLs when more than one, else not checked).
    pub expected_members: Option<usize>,
    /// Disk usage of a data directory that makes it WARNING (default 80 %)…
    pub disk_warning_pct: f64,
    /// …and CRITICAL (default 90 %).
    pub disk_critical_pct: f64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            lag_bytes_warning: 16 << 20,
            lag_bytes_critical: 256 << 20,
            lag_time_warning: Duration::from_secs(30),
            lag_time_critical: Duration::from_secs(300),
            expected_members: None,
            disk_warning_pct: 80.0,
            disk_critical_pct: 90.0,
        }
    }
}

/// A check's verdict, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// Fine.
    Ok,
    /// Degraded; needs attention soon.
    Warning,
    /// Broken or about to be.
    Critical,
    /// Could not be checked.
    Unknown,
}

impl Level {
    /// The level's name as Nagios (and the report's JSON) spell it: `OK`, `WARNING`,
    /// `CRITICAL`, `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// The Nagios-convention exit code (see [`crate::exit_codes`]).
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Ok => exit_codes::OK,
            Self::Warning => exit_codes::WARNING,
            Self::Critical => exit_codes::CRITICAL,
            Self::Unknown => exit_codes::UNKNOWN,
        }
    }
}

/// One check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Check {
    /// What was checked: `patroni`, `leader`, `member`, `streaming`, `lag`, `timeline`,
    /// `archiving`, `disk`, `maintenance`, `pending_restart`.
    pub name: &'static str,
    /// The member it is about, if any.
    pub member: Option<String>,
    /// The verdict.
    pub level: Level,
    /// What was seen.
    pub message: String,
}

/// The unit of a [`Metric`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A number of things (members, segments…).
    Count,
    /// Bytes.
    Bytes,
    /// Seconds.
    Seconds,
    /// Percent (0–100).
    Percent,
}

/// A measurement behind the checks, for performance data and monitoring systems (see
/// [`HealthReport::nagios`] and [`HealthReport::prometheus`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Metric {
    /// Name in snake case, its unit last (`replay_lag_bytes`).
    pub name: &'static str,
    /// What it measures, in a sentence.
    pub help: &'static str,
    /// The member it is about, if any.
    pub member: Option<String>,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: Unit,
    /// Above this value the check is WARNING…
    pub warning: Option<f64>,
    /// …and above this one CRITICAL.
    pub critical: Option<f64>,
    /// It counts up until PostgreSQL's statistics are reset (a Prometheus counter, Nagios unit
    /// `c`) rather than going up and down.
    pub counter: bool,
}

/// The result of [`Admin::check`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HealthReport {
    /// The worst level among the checks (UNKNOWN counts below CRITICAL: a cluster with one
    /// critical finding is critical even if another check could not run).
    pub level: Level,
    /// Every check.
    pub checks: Vec<Check>,
    /// The measurements behind the checks (what could be measured).
    pub metrics: Vec<Metric>,
}

impl HealthReport {
    /// The process exit code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn exit_code(&self) -> i32 {
        self.level.exit_code()
    }
}

/// Disk usage of one member's data directory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DiskUsage {
    pub(crate) member: String,
    pub(crate) path: String,
    pub(crate) used_pct: f64,
}

/// Everything [`judge`] looks at.
#[derive(Debug, Default)]
pub(crate) struct Observations {
    pub(crate) view: Option<Result<ClusterView, String>>,
    pub(crate) endpoints_down: Vec<String>,
    pub(crate) replication: Option<Result<ReplicationReport, String>>,
    pub(crate) archiver: Option<Result<ArchiverStatus, String>>,
    pub(crate) disks: Vec<DiskUsage>,
}

pub(crate) fn check(name: &'static str, member: Option<&str>, level: Level, message: impl Into<String>) -> Check {
    Check {
        name,
        member: member.map(str::to_owned),
        level,
        message: message.into(),
    }
}

fn metric(name: &'static str, help: &'static str, member: Option<&str>, value: f64, unit: Unit) -> Metric {
    Metric {
        name,
        help,
        member: member.map(str::to_owned),
        value,
        unit,
        warning: None,
        critical: None,
        counter: false,
    }
}

/// Above a threshold, not at it — as a Nagios threshold `80` means "alert above 80", so that the
/// performance data and the verdict agree at the boundary.
fn graded(value: f64, warning: f64, critical: f64) -> Level {
    if value > critical {
        Level::Critical
    } else if value > warning {
        Level::Warning
    } else {
        Level::Ok
    }
}

/// The pure verdict.
pub(crate) fn judge(obs: &Observations, opts: &CheckOptions) -> HealthReport {
    let mut checks = Vec::new();
    let mut metrics = Vec::new();
    let view = match &obs.view {
        Some(Ok(view)) => view,
        Some(Err(e)) => {
            checks.push(check(
                "patroni",
                None,
                Level::Critical,
                format!("no Patroni endpoint answered: {e}"),
            ));
            return finish(checks, metrics);
        }
        None => {
            checks.push(check("patroni", None, Level::Unknown, "not checked"));
            return finish(checks, metrics);
        }
    };
    for url in &obs.endpoints_down {
        checks.push(check("patroni", None, Level::Warning, format!("{url} does not answer")));
    }

    let leader = view.leader();
    metrics.push(metric(
        "members",
        "Members registered in the DCS.",
        None,
        view.members.len() as f64,
        Unit::Count,
    ));
    metrics.push(metric(
        "members_running",
        "Members whose PostgreSQL is up.",
        None,
        view.members.iter().filter(|m| m.state.is_up()).count() as f64,
        Unit::Count,
    ));
    metrics.push(metric(
        "leader",
        "1 when a member holds the leader key, else 0.",
        None,
        f64::from(u8::from(leader.is_some())),
        Unit::Count,
    ));
    if let Some(tl) = leader.and_then(|l| l.timeline) {
        metrics.push(metric(
            "timeline",
            "The leader's timeline.",
            None,
            tl as f64,
            Unit::Count,
        ));
    }
    match leader {
        Some(l) => checks.push(check(
            "leader",
            Some(&l.name),
            Level::Ok,
            format!("{} is the leader", l.name),
        )),
        None => checks.push(check(
            "leader",
            None,
            Level::Critical,
            "no leader: writes are impossible",
        )),
    }
    if view.pause {
        checks.push(check(
            "maintenance",
            None,
            Level::Warning,
            "maintenance mode: automatic failover is off",
        ));
    }
    if let Some(expected) = opts.expected_members {
        if view.members.len() < expected {
            checks.push(check(
                "member",
                None,
                Level::Critical,
                format!("{} of {expected} members registered in the DCS", view.members.len()),
            ));
        }
    }

    let standbys: Vec<_> = view.members.iter().filter(|m| m.role != Role::Leader).collect();
    let mut healthy_standbys = 0;
    for m in &view.members {
        if !m.state.is_up() {
            let level = if m.role == Role::Leader {
                Level::Critical
            } else {
                Level::Warning
            };
            checks.push(check(
                "member",
                Some(&m.name),
                level,
                format!("PostgreSQL is {}", m.state),
            ));
        }
        if m.pending_restart {
            checks.push(check(
                "pending_restart",
                Some(&m.name),
                Level::Warning,
                "a changed setting needs a restart",
            ));
        }
        if let (Some(l), Some(tl)) = (leader, m.timeline) {
            if m.role != Role::Leader && m.state.is_up() && l.timeline.is_some_and(|ltl| ltl != tl) {
                checks.push(check(
                    "timeline",
                    Some(&m.name),
                    Level::Critical,
                    format!("on timeline {tl}, the leader on {:?}: it cannot follow", l.timeline),
                ));
            }
        }
    }

    match &obs.replication {
        Some(Ok(report)) => {
            for s in &report.standbys {
                let member = Some(s.member.as_str());
                if let Some(e) = &s.error {
                    checks.push(check("lag", member, Level::Warning, format!("not measurable: {e}")));
                    continue;
                }
                if !s.streaming {
                    checks.push(check(
                        "streaming",
                        member,
                        Level::Warning,
                        "not streaming from the leader",
                    ));
                } else {
                    healthy_standbys += 1;
                }
                if s.replay_paused == Some(true) {
                    checks.push(check("lag", member, Level::Warning, "WAL replay is paused"));
                }
                let bytes = s.replay_lag_bytes.unwrap_or(0);
                let secs = s.replay_lag_s.unwrap_or(0.0);
                metrics.push(Metric {
                    warning: Some(opts.lag_bytes_warning as f64),
                    critical: Some(opts.lag_bytes_critical as f64),
                    ..metric(
                        "replay_lag_bytes",
                        "WAL the leader wrote that the standby has not replayed.",
                        member,
                        bytes as f64,
                        Unit::Bytes,
                    )
                });
                metrics.push(Metric {
                    warning: Some(opts.lag_time_warning.as_secs_f64()),
                    critical: Some(opts.lag_time_critical.as_secs_f64()),
                    ..metric(
                        "replay_lag_seconds",
                        "How far behind the standby's data is in time (0 once it replayed everything).",
                        member,
                        secs,
                        Unit::Seconds,
                    )
                });
                let level = graded(
                    bytes as f64,
                    opts.lag_bytes_warning as f64,
                    opts.lag_bytes_critical as f64,
                )
                .max(graded(
                    secs,
                    opts.lag_time_warning.as_secs_f64(),
                    opts.lag_time_critical.as_secs_f64(),
                ));
                checks.push(check(
                    "lag",
                    member,
                    level,
                    format!("replay lag {bytes} bytes, {secs:.1} s"),
                ));
            }
        }
        Some(Err(e)) => checks.push(check(
            "streaming",
            None,
            Level::Unknown,
            format!("replication not measurable: {e}"),
        )),
        None => {}
    }
    if obs.replication.as_ref().is_some_and(Result::is_ok) {
        metrics.push(metric(
            "streaming_standbys",
            "Standbys streaming from the leader.",
            None,
            f64::from(healthy_standbys),
            Unit::Count,
        ));
    }
    if leader.is_some()
        && !standbys.is_empty()
        && healthy_standbys == 0
        && obs.replication.as_ref().is_some_and(Result::is_ok)
    {
        checks.push(check(
            "streaming",
            None,
            Level::Critical,
            "no standby streams: no failover target",
        ));
    }

    if let Some(Ok(a)) = &obs.archiver {
        metrics.push(Metric {
            counter: true,
            ..metric(
                "archived_wal_segments",
                "WAL segments archived (pg_stat_archiver, since its last reset).",
                Some(&a.member),
                a.archived_count as f64,
                Unit::Count,
            )
        });
        metrics.push(Metric {
            counter: true,
            ..metric(
                "archive_failures",
                "Failed attempts to archive a WAL segment (pg_stat_archiver, since its last reset).",
                Some(&a.member),
                a.failed_count as f64,
                Unit::Count,
            )
        });
    }
    match &obs.archiver {
        Some(Ok(a)) if a.archive_mode == "off" => checks.push(check(
            "archiving",
            Some(&a.member),
            Level::Warning,
            "archive_mode is off: no PITR possible",
        )),
        Some(Ok(a)) if a.failing => checks.push(check(
            "archiving",
            Some(&a.member),
            Level::Critical,
            format!(
                "archiving fails: last failure {} at {:?}, {} failures in all",
                a.last_failed_wal.as_deref().unwrap_or("?"),
                a.last_failed_time,
                a.failed_count
            ),
        )),
        Some(Ok(a)) => checks.push(check(
            "archiving",
            Some(&a.member),
            Level::Ok,
            format!(
                "{} segments archived, last {}",
                a.archived_count,
                a.last_archived_wal.as_deref().unwrap_or("none yet")
            ),
        )),
        Some(Err(e)) => checks.push(check("archiving", None, Level::Unknown, format!("not measurable: {e}"))),
        None => {}
    }

    for d in &obs.disks {
        metrics.push(Metric {
            warning: Some(opts.disk_warning_pct),
            critical: Some(opts.disk_critical_pct),
            ..metric(
                "data_directory_used_percent",
                "How full the file system of the member's data directory is.",
                Some(&d.member),
                d.used_pct,
                Unit::Percent,
            )
        });
        checks.push(check(
            "disk",
            Some(&d.member),
            graded(d.used_pct, opts.disk_warning_pct, opts.disk_critical_pct),
            format!("{} is {:.0} % full", d.path, d.used_pct),
        ));
    }
    finish(checks, metrics)
}

fn finish(checks: Vec<Check>, metrics: Vec<Metric>) -> HealthReport {
    let worst_known = checks.iter().map(|c| c.level).filter(|l| *l != Level::Unknown).max();
    let any_unknown = checks.iter().any(|c| c.level == Level::Unknown);
    let level = match worst_known {
        Some(Level::Critical) => Level::Critical,
        _ if any_unknown => Level::Unknown,
        Some(l) => l,
        None => Level::Unknown,
    };
    HealthReport { level, checks, metrics }
}

/// Disk usage of a local path, when the path exists on this machine.
fn local_disk_usage(path: &Path) -> Option<f64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let total = st.blocks() as f64 * st.fragment_size() as f64;
    let avail = st.blocks_available() as f64 * st.fragment_size() as f64;
    let free = st.blocks_free() as f64 * st.fragment_size() as f64;
    // As df computes it: used / (used + available to unprivileged users).
    let used = total - free;
    (used + avail > 0.0).then(|| 100.0 * used / (used + avail))
}

fn is_local(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1") || host.starts_with('/')
}

impl Admin {
    /// Runs every check and returns the report; never fails (what cannot be observed is
    /// reported as UNKNOWN or CRITICAL). Disk usage is measured for members whose data directory
    /// is on this machine.
    pub async fn check(&self, opts: &CheckOptions) -> HealthReport {
        let mut opts = opts.clone();
        let configured = self.connector().patroni_urls();
        if opts.expected_members.is_none() && configured.len() > 1 {
            opts.expected_members = Some(configured.len());
        }
        let mut obs = Observations::default();
        let view = self.cluster_view().await.map(|(_, v)| v).map_err(|e| e.to_string());
        obs.view = Some(view.clone());
        let Ok(view) = view else {
            return judge(&obs, &opts);
        };
        for url in configured {
            if let Err(e) = crate::rest::request(self.connector(), Method::GET, &url, "/liveness", None).await {
                tracing::debug!(error = %e, "liveness");
                obs.endpoints_down.push(url);
            }
        }
        if view.leader().is_some() {
            obs.replication = Some(self.replication_in(&view).await.map_err(|e| e.to_string()));
            obs.archiver = Some(self.archiver_in(&view).await.map_err(|e| e.to_string()));
        }
        for m in view.members.iter().filter(|m| m.state.is_up()) {
            if !m.host.as_deref().is_some_and(is_local) {
                continue;
            }
            let Ok(db) = self.sql(m, None).await else { continue };
            let Ok(row) = db.query_one("SELECT current_setting('data_directory')", &[]).await else {
                continue;
            };
            let Ok(path) = row.col::<String>(0) else { continue };
            if let Some(used_pct) = local_disk_usage(Path::new(&path)) {
                obs.disks.push(DiskUsage {
                    member: m.name.clone(),
                    path,
                    used_pct,
                });
            }
        }
        judge(&obs, &opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::StandbyLag;

    fn view(json: &str) -> ClusterView {
        ClusterView::from_json(json.as_bytes()).expect("fixture")
    }

    const THREE: &str = r#"{"members": [
        {"name": "a", "role": "leader", "state": "running", "timeline": 2},
        {"name": "b", "role": "replica", "state": "streaming", "timeline": 2, "lag": 0},
        {"name": "c", "role": "replica", "state": "streaming", "timeline": 2, "lag": 0}]}"#;

    fn standby(name: &str, bytes: u64, secs: f64) -> StandbyLag {
        StandbyLag {
            member: name.into(),
            state: "streaming".into(),
            streaming: true,
            sync_state: Some("async".into()),
            receive_lsn: None,
            replay_lsn: None,
            receive_lag_bytes: Some(0),
            replay_lag_bytes: Some(bytes),
            replay_lag_s: Some(secs),
            replay_paused: Some(false),
            error: None,
        }
    }

    fn healthy() -> Observations {
        Observations {
            view: Some(Ok(view(THREE))),
            replication: Some(Ok(ReplicationReport {
                leader: "a".into(),
                leader_lsn: pgha_client::patroni::Lsn(100),
                standbys: vec![standby("b", 0, 0.0), standby("c", 0, 0.0)],
            })),
            archiver: Some(Ok(ArchiverStatus {
                member: "a".into(),
                archive_mode: "on".into(),
                archived_count: 3,
                last_archived_wal: Some("000000020000000000000003".into()),
                last_archived_time: None,
                failed_count: 0,
                last_failed_wal: None,
                last_failed_time: None,
                failing: false,
            })),
            ..Observations::default()
        }
    }

    fn levels(report: &HealthReport, name: &str) -> Vec<Level> {
        report
            .checks
            .iter()
            .filter(|c| c.name == name)
            .map(|c| c.level)
            .collect()
    }

    #[test]
    fn a_healthy_cluster_is_ok() {
        let report = judge(&healthy(), &CheckOptions::default());
        assert_eq!(report.level, Level::Ok, "{report:#?}");
        assert_eq!(report.exit_code(), 0);
    }

    #[test]
    fn the_measurements_behind_the_checks_come_with_their_thresholds() {
        let mut obs = healthy();
        obs.disks.push(DiskUsage {
            member: "a".into(),
            path: "/data".into(),
            used_pct: 85.0,
        });
        let report = judge(&obs, &CheckOptions::default());
        let value = |name: &str, member: Option<&str>| {
            report
                .metrics
                .iter()
                .find(|m| m.name == name && m.member.as_deref() == member)
                .map(|m| (m.value, m.warning, m.critical))
        };
        assert_eq!(value("members", None), Some((3.0, None, None)));
        assert_eq!(value("members_running", None), Some((3.0, None, None)));
        assert_eq!(value("leader", None), Some((1.0, None, None)));
        assert_eq!(value("timeline", None), Some((2.0, None, None)));
        assert_eq!(value("streaming_standbys", None), Some((2.0, None, None)));
        assert_eq!(
            value("replay_lag_bytes", Some("b")),
            Some((0.0, Some(16_777_216.0), Some(268_435_456.0)))
        );
        assert_eq!(
            value("replay_lag_seconds", Some("c")),
            Some((0.0, Some(30.0), Some(300.0)))
        );
        assert_eq!(
            value("data_directory_used_percent", Some("a")),
            Some((85.0, Some(80.0), Some(90.0)))
        );
        assert_eq!(report.level, Level::Warning, "85 % full is a warning");
        // Patroni unreachable: nothing measured, nothing made up.
        let down = Observations {
            view: Some(Err("refused".into())),
            ..Observations::default()
        };
        assert!(judge(&down, &CheckOptions::default()).metrics.is_empty());
    }

    #[test]
    fn unreachable_patroni_is_critical() {
        let obs = Observations {
            view: Some(Err("connection refused".into())),
            ..Observations::default()
        };
        assert_eq!(judge(&obs, &CheckOptions::default()).exit_code(), exit_codes::CRITICAL);
    }

    #[test]
    fn lag_is_graded_by_bytes_and_time() {
        let mut obs = healthy();
        if let Some(Ok(r)) = &mut obs.replication {
            r.standbys = vec![standby("b", 20 << 20, 0.5), standby("c", 0, 400.0)];
        }
        let report = judge(&obs, &CheckOptions::default());
        assert_eq!(levels(&report, "lag"), [Level::Warning, Level::Critical]);
        assert_eq!(report.level, Level::Critical);
        // At a threshold is not above it (a Nagios threshold `16777216` alerts above it).
        if let Some(Ok(r)) = &mut obs.replication {
            r.standbys = vec![standby("b", 16 << 20, 30.0), standby("c", 256 << 20, 0.0)];
        }
        let report = judge(&obs, &CheckOptions::default());
        assert_eq!(levels(&report, "lag"), [Level::Ok, Level::Warning]);
    }

    #[test]
    fn a_stopped_replica_warns_and_a_missing_member_is_critical() {
        let mut obs = healthy();
        obs.view = Some(Ok(view(
            r#"{"members": [
            {"name": "a", "role": "leader", "state": "running", "timeline": 2},
            {"name": "b", "role": "replica", "state": "stopped", "lag": "unknown"}]}"#,
        )));
        if let Some(Ok(r)) = &mut obs.replication {
            r.standbys = vec![StandbyLag {
                streaming: false,
                error: Some("connection refused".into()),
                ..standby("b", 0, 0.0)
            }];
        }
        let opts = CheckOptions {
            expected_members: Some(3),
            ..CheckOptions::default()
        };
        let report = judge(&obs, &opts);
        assert_eq!(
            levels(&report, "member"),
            [Level::Critical, Level::Warning],
            "{report:#?}"
        );
        assert_eq!(report.exit_code(), exit_codes::CRITICAL);
    }

    #[test]
    fn paused_replay_no_leader_and_failing_archiver_are_reported() {
        let mut obs = healthy();
        if let Some(Ok(r)) = &mut obs.replication {
            r.standbys[0].replay_paused = Some(true);
        }
        if let Some(Ok(a)) = &mut obs.archiver {
            a.failing = true;
        }
        let report = judge(&obs, &CheckOptions::default());
        assert!(levels(&report, "lag").contains(&Level::Warning));
        assert_eq!(levels(&report, "archiving"), [Level::Critical]);

        let obs = Observations {
            view: Some(Ok(view(
                r#"{"members": [{"name": "b", "role": "replica", "state": "running"}]}"#,
            ))),
            ..Observations::default()
        };
        assert_eq!(
            levels(&judge(&obs, &CheckOptions::default()), "leader"),
            [Level::Critical]
        );
    }

    #[test]
    fn no_streaming_standby_means_no_failover_target() {
        let mut obs = healthy();
        if let Some(Ok(r)) = &mut obs.replication {
            for s in &mut r.standbys {
                s.streaming = false;
            }
        }
        let report = judge(&obs, &CheckOptions::default());
        assert!(levels(&report, "streaming").contains(&Level::Critical), "{report:#?}");
    }

    #[test]
    fn unknown_does_not_hide_a_critical_finding() {
        let mut obs = healthy();
        obs.archiver = Some(Err("permission denied".into()));
        assert_eq!(judge(&obs, &CheckOptions::default()).level, Level::Unknown);
        obs.view = Some(Ok(view(
            r#"{"members": [{"name": "b", "role": "replica", "state": "running"}]}"#,
        )));
        assert_eq!(judge(&obs, &CheckOptions::default()).level, Level::Critical);
    }
}
