//! Point-in-time recovery of a whole Patroni cluster from pgBackRest, as Patroni documents it:
//! stop every node, remove the cluster from the DCS, empty the data directories, let one node
//! bootstrap with a custom method that runs `pgbackrest restore` to the target and promotes,
//! then start the others, which re-clone from it.
//!
//! Starting and stopping nodes, emptying data directories, clearing the DCS and changing a
//! node's bootstrap method depend on how the cluster is deployed, so they go through the
//! [`NodeControl`] trait. `pgha-testkit`'s `LocalCluster` implements it; for other deployments:
//!
//! | method | systemd (over SSH) | containers |
//! |---|---|---|
//! | `stop_patroni` | `systemctl stop patroni` | `docker stop <node>` |
//! | `start_patroni` | `systemctl start patroni` | `docker start <node>` |
//! | `clear_data_dir` | `rm -rf <PGDATA>/*` (as postgres) | `docker run --rm -v <volume>:/d alpine sh -c 'rm -rf /d/*'` |
//! | `clear_dcs` | `patronictl -c patroni.yml remove <scope>` (or `etcdctl del --prefix /service/<scope>/`) | the same from any container with `patronictl` |
//! | `set_bootstrap` | edit `bootstrap.method` and `bootstrap.<name>` in `patroni.yml` | the same in the mounted configuration |
//!
//! The bootstrap command runs as the PostgreSQL OS user on the node, so it is a plain
//! `pgbackrest …` command line (see [`PitrPlan::bootstrap`]).

use std::future::Future;
use std::time::Instant;

use chrono::{DateTime, FixedOffset};
use pgha_client::patroni::{Lsn, Role};
use serde::Serialize;
use serde_json::{json, Value};

use crate::admin::Admin;
use crate::backup::{PgBackRest, StanzaInfo};
use crate::error::{Error, ErrorKind, Result};

/// The name of the custom bootstrap method pgha writes into the restored node's configuration.
pub const BOOTSTRAP_METHOD: &str = "pgha_pitr";

/// Deployment-specific operations PITR needs. Each call must finish (or fail) on its own; pgha
/// bounds the whole operation with [`Admin::wait_timeout`].
pub trait NodeControl: Send + Sync {
    /// Stops Patroni on `member` (which stops PostgreSQL cleanly); returns once it is stopped.
    fn stop_patroni(&self, member: &str) -> impl Future<Output = Result<()>> + Send;
    /// Starts Patroni on `member`; need not wait.
    fn start_patroni(&self, member: &str) -> impl Future<Output = Result<()>> + Send;
    /// Empties `member`'s data directory (Patroni bootstraps or clones only into an empty one).
    fn clear_data_dir(&self, member: &str) -> impl Future<Output = Result<()>> + Send;
    /// Removes every key of the cluster from the DCS (`patronictl remove <scope>`).
    fn clear_dcs(&self) -> impl Future<Output = Result<()>> + Send;
    /// Sets `bootstrap.method: pgha_pitr` and `bootstrap.pgha_pitr: <method>` in `member`'s
    /// Patroni configuration, or removes both when `method` is `None`.
    fn set_bootstrap(&self, member: &str, method: Option<&Value>) -> impl Future<Output = Result<()>> + Send;
    /// `member`'s data directory, when pgBackRest must be told (`--pg1-path`); `None` when the
    /// pgBackRest configuration on that node already points `pg1-path` at it.
    fn data_dir(&self, member: &str) -> Option<String>;
}

/// A [`NodeControl`] made of shell command templates, run with `sh -c` — what `pgha pitr` uses
/// (the `[pitr]` table of its configuration file). In each template `{member}` becomes the member
/// name and, in `set_bootstrap`, `{method}` becomes the bootstrap method as JSON (or `null` to
/// remove it); both are shell-quoted. `data_dir` is a path template (`{member}` unquoted).
///
/// ```
/// let control: pgha_admin::pitr::CommandControl = toml::from_str(r#"
///     stop = "ssh {member} sudo systemctl stop patroni"
///     start = "ssh {member} sudo systemctl start patroni"
///     clear_data_dir = "ssh {member} sudo -u postgres find /var/lib/postgresql/15/main -mindepth 1 -delete"
///     clear_dcs = "etcdctl del --prefix /service/pg-ha/"
///     set_bootstrap = "ssh {member} sudo /usr/local/bin/patroni-set-bootstrap {method}"
/// "#).unwrap();
/// assert_eq!(control.expand(&control.stop, "db1", None), "ssh db1 sudo systemctl stop patroni");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CommandControl {
    /// Stops Patroni on `{member}` and returns when it is stopped.
    pub stop: String,
    /// Starts Patroni on `{member}`.
    pub start: String,
    /// Empties `{member}`'s data directory.
    pub clear_data_dir: String,
    /// Removes the cluster from the DCS.
    pub clear_dcs: String,
    /// Writes (`{method}` = JSON object) or removes (`{method}` = `null`) the bootstrap method
    /// `pgha_pitr` in `{member}`'s Patroni configuration.
    pub set_bootstrap: String,
    /// `{member}`'s data directory, when pgBackRest must be told (`--pg1-path`).
    #[serde(default)]
    pub data_dir: Option<String>,
    /// Longest one command may run, seconds (default 120).
    #[serde(default = "default_command_timeout")]
    pub timeout_s: u64,
}

fn default_command_timeout() -> u64 {
    120
}

impl CommandControl {
    /// A template with its placeholders filled in.
    ///
    /// One pass over the template: what a placeholder becomes is never read again, so a member
    /// named `{method}` stays that member's name. Placeholders must stand unquoted in the
    /// template (each becomes exactly one shell word).
    pub fn expand(&self, template: &str, member: &str, method: Option<&Value>) -> String {
        let method = method.map_or_else(|| "null".to_owned(), Value::to_string);
        let mut out = String::with_capacity(template.len() + member.len() + method.len());
        let mut rest = template;
        while let Some(at) = rest.find('{') {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("{member}") {
                out.push_str(&crate::backup::shell_quote(member));
                rest = after;
            } else if let Some(after) = tail.strip_prefix("{method}") {
                out.push_str(&crate::backup::shell_quote(&method));
                rest = after;
            } else {
                out.push('{');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
        out
    }

    async fn run(&self, what: &str, command: String) -> Result<()> {
        tracing::info!(%command, "{what}");
        let timeout = std::time::Duration::from_secs(self.timeout_s);
        let out = tokio::time::timeout(
            timeout,
            tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&command)
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::NodeControl,
                format!("{what}: `{command}` did not finish within {timeout:?}"),
            )
        })?
        .map_err(|e| Error::new(ErrorKind::NodeControl, format!("{what}: starting sh")).with_source(e))?;
        if out.status.success() {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::NodeControl,
            format!(
                "{what}: `{command}` exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ))
    }
}

impl NodeControl for CommandControl {
    async fn stop_patroni(&self, member: &str) -> Result<()> {
        self.run("stop", self.expand(&self.stop, member, None)).await
    }

    async fn start_patroni(&self, member: &str) -> Result<()> {
        self.run("start", self.expand(&self.start, member, None)).await
    }

    async fn clear_data_dir(&self, member: &str) -> Result<()> {
        self.run("clear data directory", self.expand(&self.clear_data_dir, member, None))
            .await
    }

    async fn clear_dcs(&self) -> Result<()> {
        self.run("clear DCS", self.clear_dcs.clone()).await
    }

    async fn set_bootstrap(&self, member: &str, method: Option<&Value>) -> Result<()> {
        self.run("set bootstrap", self.expand(&self.set_bootstrap, member, method))
            .await
    }

    fn data_dir(&self, member: &str) -> Option<String> {
        self.data_dir.as_ref().map(|t| t.replace("{member}", member))
    }
}

/// Where to recover to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "target", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RecoveryTarget {
    /// A point in time (with time zone).
    Time(DateTime<FixedOffset>),
    /// A WAL position.
    Lsn(Lsn),
    /// A restore point made with `pg_create_restore_point()`.
    RestorePoint(String),
    /// The end of the archive: everything that was archived (the runbook's "all nodes lost").
    Latest,
}

impl RecoveryTarget {
    /// Parses a time as `2026-11-26 14:29:00+00`, `2026-11-26T14:29:00Z`… (a time zone is
    /// required: a PITR to the wrong hour is a disaster).
    pub fn time(s: &str) -> Result<Self> {
        let s = s.trim();
        let t = DateTime::parse_from_rfc3339(s)
            .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z"))
            .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%#z"))
            .map_err(|_| {
                Error::usage(format!(
                    "recovery time {s:?} needs a date, a time and a time zone, e.g. 2026-11-26 14:29:00+00"
                ))
            })?;
        Ok(Self::Time(t))
    }

    /// Parses an LSN (`X/Y`).
    pub fn lsn(s: &str) -> Result<Self> {
        s.trim()
            .parse()
            .map(Self::Lsn)
            .map_err(|e| Error::usage(format!("recovery LSN {s:?}: {e}")))
    }

    /// A named restore point (1–63 bytes, one line).
    pub fn restore_point(name: &str) -> Result<Self> {
        if name.is_empty() || name.len() > 63 || name.contains(['\n', '\r', '\0']) {
            return Err(Error::usage("a restore point name is 1-63 bytes on one line"));
        }
        Ok(Self::RestorePoint(name.to_owned()))
    }

    fn pgbackrest_options(&self) -> Vec<String> {
        match self {
            Self::Time(t) => vec![
                "--type=time".into(),
                format!("--target={}", t.format("%Y-%m-%d %H:%M:%S%.6f%:z")),
            ],
            Self::Lsn(l) => vec!["--type=lsn".into(), format!("--target={l}")],
            Self::RestorePoint(n) => vec!["--type=name".into(), format!("--target={n}")],
            Self::Latest => Vec::new(),
        }
    }
}

impl std::fmt::Display for RecoveryTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Time(t) => write!(f, "time {}", t.to_rfc3339()),
            Self::Lsn(l) => write!(f, "LSN {l}"),
            Self::RestorePoint(n) => write!(f, "restore point {n:?}"),
            Self::Latest => f.write_str("the end of the archive"),
        }
    }
}

/// What a PITR will do.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PitrPlan {
    /// The target.
    pub target: RecoveryTarget,
    /// The member restored first (it becomes the leader).
    pub restore_member: String,
    /// The other members (re-cloned from it).
    pub other_members: Vec<String>,
    /// The backup the restore starts from (pgBackRest picks the newest one that ended before a
    /// time or LSN target).
    pub backup_label: Option<String>,
    /// The custom bootstrap method written into the restored member's configuration.
    pub bootstrap: Value,
    /// The steps, in order.
    pub steps: Vec<String>,
}

/// The outcome of a PITR.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PitrReport {
    /// The plan carried out.
    pub plan: PitrPlan,
    /// The new leader.
    pub leader: String,
    /// Its timeline after the promotion.
    pub timeline: Option<u64>,
    /// How long it took.
    pub elapsed_s: f64,
}

/// Picks the newest backup that ended before the target (what pgBackRest 2.45 restores from).
fn backup_for(info: &StanzaInfo, target: &RecoveryTarget) -> Result<Option<String>> {
    let mut usable = info.backup.iter().rev().filter(|b| b.error != Some(true));
    let chosen = match target {
        RecoveryTarget::Time(t) => usable.find(|b| b.timestamp.stop < t.timestamp()),
        RecoveryTarget::Lsn(l) => usable.find(|b| {
            b.lsn
                .as_ref()
                .and_then(|s| s.stop.as_deref())
                .and_then(|s| s.parse::<Lsn>().ok())
                .is_some_and(|stop| stop <= *l)
        }),
        RecoveryTarget::RestorePoint(_) | RecoveryTarget::Latest => {
            return match usable.next() {
                Some(b) => Ok(Some(b.label.clone())),
                None => Err(Error::precondition(format!(
                    "stanza {} has no usable backup",
                    info.name
                ))),
            }
        }
    };
    match chosen {
        Some(b) => Ok(Some(b.label.clone())),
        None => Err(Error::precondition(format!(
            "no backup of stanza {} ended before the target; the earliest point you can recover to is the end of the first backup",
            info.name
        ))),
    }
}

/// The pure plan.
pub(crate) fn plan(
    members: &[String],
    restore_member: &str,
    target: RecoveryTarget,
    info: &StanzaInfo,
    restore_command: String,
) -> Result<PitrPlan> {
    if let Some(e) = info.status_error() {
        return Err(e.prefixed("the backup repository is not usable"));
    }
    let backup_label = backup_for(info, &target)?;
    let other_members: Vec<String> = members.iter().filter(|m| *m != restore_member).cloned().collect();
    let bootstrap = json!({
        "command": restore_command,
        "keep_existing_recovery_conf": true,
        "no_params": true,
    });
    let steps = vec![
        "archive the current WAL segment (pgbackrest check) so the target is in the archive".into(),
        format!(
            "stop Patroni on {} then {restore_member}",
            if other_members.is_empty() {
                "no replica".into()
            } else {
                other_members.join(", ")
            }
        ),
        "remove the cluster from the DCS".into(),
        format!("empty the data directories of {}", members.join(", ")),
        format!("set bootstrap.method {BOOTSTRAP_METHOD} on {restore_member}: {restore_command}"),
        format!("start {restore_member}: it restores, replays to the target, promotes and takes the leader lock"),
        format!("remove the bootstrap method from {restore_member}"),
        format!(
            "start {} and wait until each streams on the new timeline",
            other_members.join(", ")
        ),
    ];
    Ok(PitrPlan {
        target,
        restore_member: restore_member.to_owned(),
        other_members,
        backup_label,
        bootstrap,
        steps,
    })
}

impl Admin {
    /// Plans a PITR: checks the backup repository, finds the backup the restore starts from, and
    /// lists the steps. Changes nothing.
    pub async fn plan_pitr(
        &self,
        control: &impl NodeControl,
        pgbackrest: &PgBackRest,
        target: RecoveryTarget,
        restore_member: Option<&str>,
    ) -> Result<PitrPlan> {
        let (_, view) = self.cluster_view().await?;
        let restore_member = match restore_member {
            Some(m) => Self::find_member(&view, m)?.name.clone(),
            None => Self::require_leader(&view)?.name.clone(),
        };
        let members: Vec<String> = view.members.iter().map(|m| m.name.clone()).collect();
        let info = pgbackrest.info().await?;
        let mut options = vec!["--delta".to_owned()];
        if let Some(dir) = control.data_dir(&restore_member) {
            options.push(format!("--pg1-path={dir}"));
        }
        options.extend(target.pgbackrest_options());
        if target != RecoveryTarget::Latest {
            // Without a target PostgreSQL promotes at the end of the archive by itself.
            options.push("--target-action=promote".into());
        }
        let args = pgbackrest.args("restore", &options);
        let command = std::iter::once("pgbackrest".to_owned())
            .chain(args)
            .map(|a| crate::backup::shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" ");
        plan(&members, &restore_member, target, &info, command)
    }

    /// Carries out a [plan](Self::plan_pitr) and verifies the result: the restored member is the
    /// writable leader on a new timeline and every other member streams from it.
    ///
    /// **Destructive**: every member's data directory is emptied. The backup repository is the
    /// only source of the restored data.
    pub async fn pitr(
        &self,
        control: &impl NodeControl,
        pgbackrest: &PgBackRest,
        plan: &PitrPlan,
    ) -> Result<PitrReport> {
        let started = Instant::now();
        let total = plan.steps.len() as u32;
        let step = |n: u32| Some((n, total));
        let restore = plan.restore_member.as_str();
        let (_, view) = self.cluster_view().await?;
        let timeline_before = view.leader().and_then(|l| l.timeline);

        self.report("pitr", &plan.steps[0], step(1));
        if view.leader().is_some() {
            if let Err(e) = pgbackrest.check().await {
                return Err(e.prefixed("archiving the current WAL failed; nothing was changed"));
            }
        }

        self.report("pitr", &plan.steps[1], step(2));
        let mut order: Vec<&str> = plan.other_members.iter().map(String::as_str).collect();
        order.push(restore);
        for m in &order {
            control.stop_patroni(m).await?;
        }

        self.report("pitr", &plan.steps[2], step(3));
        control.clear_dcs().await?;

        self.report("pitr", &plan.steps[3], step(4));
        for m in &order {
            control.clear_data_dir(m).await?;
        }

        self.report("pitr", &plan.steps[4], step(5));
        control.set_bootstrap(restore, Some(&plan.bootstrap)).await?;

        self.report("pitr", &plan.steps[5], step(6));
        control.start_patroni(restore).await?;
        let leader = self.wait_for_writable_leader("pitr", |l| l == restore).await;
        // Never leave the restore method behind: a later re-bootstrap of this node would restore
        // again instead of cloning.
        self.report("pitr", &plan.steps[6], step(7));
        control.set_bootstrap(restore, None).await?;
        let leader = leader?;

        self.report("pitr", &plan.steps[7], step(8));
        for m in &plan.other_members {
            control.start_patroni(m).await?;
        }
        for m in &plan.other_members {
            self.wait_streaming("pitr", m).await?;
        }
        let (_, view) = self.cluster_view().await?;
        let timeline = view.leader().and_then(|l| l.timeline);
        if let (Some(before), Some(after)) = (timeline_before, timeline) {
            if after <= before {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!("the restored leader is on timeline {after}, not past the old {before}: did it promote?"),
                ));
            }
        }
        if view.leader().map(|l| &l.role) != Some(&Role::Leader) {
            return Err(Error::timeout("the cluster lost its leader right after the PITR"));
        }
        Ok(PitrReport {
            plan: plan.clone(),
            leader,
            timeline,
            elapsed_s: started.elapsed().as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = include_str!("../tests/fixtures/pgbackrest-info-2.45.json");

    fn info() -> StanzaInfo {
        crate::backup::parse_info(INFO).expect("fixture").remove(0)
    }

    #[tokio::test]
    async fn command_control_quotes_placeholders_and_reports_failures() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("log");
        let log = log.display();
        let control = CommandControl {
            stop: format!("echo stop {{member}} >> {log}"),
            start: format!("echo start {{member}} >> {log}"),
            clear_data_dir: "exit 3".into(),
            clear_dcs: format!("echo dcs >> {log}"),
            set_bootstrap: format!("printf '%s\\n' {{method}} >> {log}"),
            data_dir: Some("/data/{member}".into()),
            timeout_s: 5,
        };
        control.stop_patroni("n1; touch /tmp/pwned").await.expect("stop");
        control
            .set_bootstrap("n1", Some(&json!({"command": "pgbackrest 'x'"})))
            .await
            .expect("set");
        control.set_bootstrap("n1", None).await.expect("unset");
        control.clear_dcs().await.expect("dcs");
        let text = std::fs::read_to_string(dir.path().join("log")).expect("log");
        assert_eq!(
            text,
            "stop n1; touch /tmp/pwned\n{\"command\":\"pgbackrest 'x'\"}\nnull\ndcs\n"
        );
        let e = control.clear_data_dir("n1").await.expect_err("exit 3");
        assert_eq!(e.kind(), ErrorKind::NodeControl);
        assert_eq!(control.data_dir("n2").as_deref(), Some("/data/n2"));
    }

    /// Each placeholder becomes exactly one word for the real `sh`, whatever the member is named
    /// (a member named `{method}` once took the method's place, its quotes broken by it).
    #[test]
    fn every_placeholder_is_one_shell_word_whatever_the_member_is_named() {
        let control = CommandControl {
            stop: String::new(),
            start: String::new(),
            clear_data_dir: String::new(),
            clear_dcs: String::new(),
            set_bootstrap: "printf '<%s>' {member} {method} -{member}-".into(),
            data_dir: None,
            timeout_s: 5,
        };
        let method = json!({"command": "restore --set='x' \"$HOME\" `id`", "n": "{member}"});
        for member in [
            "n1", "{method}", "{member}", "a b", "it's", "$(id)", "", "-x", "{", "{method",
        ] {
            let command = control.expand(&control.set_bootstrap, member, Some(&method));
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&command)
                .output()
                .expect("sh runs");
            assert!(out.status.success(), "{command}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                format!("<{member}><{method}><-{member}->"),
                "{command}"
            );
        }
    }

    #[test]
    fn targets_parse_strictly() {
        assert!(RecoveryTarget::time("2026-11-26 14:29:00+00").is_ok());
        assert!(RecoveryTarget::time("2026-11-26T14:29:00.5Z").is_ok());
        assert!(RecoveryTarget::time("2026-11-26 14:29:00").is_err(), "no time zone");
        assert!(RecoveryTarget::time("yesterday").is_err());
        assert!(RecoveryTarget::lsn("0/5000100").is_ok());
        assert!(RecoveryTarget::lsn("5000100").is_err());
        assert!(RecoveryTarget::restore_point("").is_err());
        let t = RecoveryTarget::time("2026-11-26 14:29:00.25+01:00").expect("valid");
        assert_eq!(t.pgbackrest_options()[1], "--target=2026-11-26 14:29:00.250000+01:00");
    }

    #[test]
    fn the_backup_must_end_before_the_target() {
        let info = info();
        let first = &info.backup[0];
        let before_first = DateTime::from_timestamp(first.timestamp.stop - 10, 0)
            .expect("time")
            .fixed_offset();
        let e = backup_for(&info, &RecoveryTarget::Time(before_first)).expect_err("too early");
        assert_eq!(e.kind(), ErrorKind::Precondition);
        let later = DateTime::from_timestamp(info.backup.last().expect("a backup").timestamp.stop + 60, 0)
            .expect("time")
            .fixed_offset();
        assert_eq!(
            backup_for(&info, &RecoveryTarget::Time(later)).expect("covered"),
            Some(info.backup.last().expect("a backup").label.clone())
        );
    }

    #[test]
    fn plan_lists_every_member_and_the_restore_command() {
        let info = info();
        let later = DateTime::from_timestamp(info.backup[0].timestamp.stop + 1, 0)
            .expect("time")
            .fixed_offset();
        let members = vec!["n1".to_owned(), "n2".to_owned(), "n3".to_owned()];
        let p = plan(
            &members,
            "n2",
            RecoveryTarget::Time(later),
            &info,
            "pgbackrest restore".into(),
        )
        .expect("plan");
        assert_eq!(p.other_members, ["n1", "n3"]);
        assert_eq!(p.bootstrap["no_params"], json!(true));
        assert_eq!(p.backup_label.as_deref(), Some(info.backup[0].label.as_str()));
        assert!(p.steps[1].contains("n1, n3 then n2"), "{:?}", p.steps);
    }
}
