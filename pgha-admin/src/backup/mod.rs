//! pgBackRest: stanza-create, check, backup, info, expire, restore arguments — run locally or
//! through any [`CommandRunner`], with pgBackRest's exit codes mapped to typed errors.
//!
//! ```no_run
//! # async fn demo() -> pgha_admin::Result<()> {
//! use pgha_admin::backup::{BackupType, LocalRunner, PgBackRest};
//!
//! let pgbackrest = PgBackRest::new(LocalRunner::new().run_as("postgres"), "pg-ha");
//! pgbackrest.backup(BackupType::Full).await?;
//! let info = pgbackrest.info().await?;
//! if let Some(e) = info.status_error() { return Err(e); }
//! println!("latest: {}", info.latest().map_or("none", |b| b.label.as_str()));
//! # Ok(()) }
//! ```

mod azure;
mod gcs;
mod info;
mod repository;
mod runner;
mod s3;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use azure::{AzureKey, AzureRepository};
pub use gcs::{GcsKey, GcsRepository};
pub use info::{
    parse_info, running_percent, ArchiveInfo, BackupInfo, BackupProgress, BackupSizes, DatabaseRef, DbInfo, InfoStatus,
    RepoInfo, RepositorySizes, Span, StanzaInfo,
};
pub(crate) use runner::shell_quote;
pub use runner::{CommandRunner, ContainerRunner, LocalRunner, SshRunner};
pub use s3::{S3Repository, UriStyle};

use crate::error::{Error, ErrorKind, Result};

/// Backup type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum BackupType {
    /// Everything.
    Full,
    /// Changes since the last full backup.
    Diff,
    /// Changes since the last backup of any type (pgBackRest's default).
    Incr,
}

impl BackupType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Diff => "diff",
            Self::Incr => "incr",
        }
    }
}

/// The name of a pgBackRest error code (its process exit status), from pgBackRest's
/// `error.yaml`.
pub fn error_name(code: i32) -> Option<&'static str> {
    Some(match code {
        25 => "assert",
        27 => "config",
        28 => "file-invalid",
        29 => "format",
        31 => "option-invalid",
        32 => "option-invalid-value",
        37 => "option-required",
        38 => "pg-running",
        39 => "protocol",
        40 => "path-not-empty",
        44 => "archive-mismatch",
        45 => "archive-duplicate",
        46 => "version-not-supported",
        49 => "host-connect",
        50 => "lock-acquire",
        51 => "backup-mismatch",
        55 => "file-missing",
        56 => "db-connect",
        57 => "db-query",
        58 => "db-mismatch",
        62 => "stop",
        63 => "term",
        75 => "backup-set-invalid",
        82 => "archive-timeout",
        87 => "archive-disabled",
        95 => "crypto",
        103 => "repo-invalid",
        104 => "command",
        124 => "unhandled",
        125 => "unknown",
        _ => return None,
    })
}

/// The output of one pgBackRest command.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub(crate) stdout: String,
}

/// A pgBackRest stanza and the way to run `pgbackrest` for it.
#[derive(Clone)]
pub struct PgBackRest {
    runner: Arc<dyn CommandRunner>,
    stanza: String,
    config: Option<String>,
    extra: Vec<String>,
    repo: Option<u8>,
    timeout: Duration,
}

/// The commands that take `--repo` (pgBackRest refuses it elsewhere: `check` and the stanza
/// commands work on every repository).
const TAKES_REPO: &[&str] = &["backup", "info", "expire", "verify", "restore"];

impl fmt::Debug for PgBackRest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBackRest")
            .field("runner", &self.runner)
            .field("stanza", &self.stanza)
            .field("config", &self.config)
            .field("repo", &self.repo)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl PgBackRest {
    /// The stanza `stanza`, run through `runner`.
    pub fn new(runner: impl CommandRunner + 'static, stanza: impl Into<String>) -> Self {
        Self {
            runner: Arc::new(runner),
            stanza: stanza.into(),
            config: None,
            extra: Vec::new(),
            repo: None,
            timeout: Duration::from_secs(3600),
        }
    }

    /// A non-default configuration file (`--config=`).
    pub fn config_file(mut self, path: impl Into<String>) -> Self {
        self.config = Some(path.into());
        self
    }

    /// An extra option passed to every command (e.g. `--repo=1`, `--log-level-console=info`).
    pub fn option(mut self, option: impl Into<String>) -> Self {
        self.extra.push(option.into());
        self
    }

    /// The repository to use (`--repo=`, 1–256) for the commands that take one (backup, info,
    /// expire, verify, restore); the others work on every repository. Default: pgBackRest's
    /// (repository 1 for a backup, all of them for info).
    ///
    /// ```
    /// use pgha_admin::backup::{LocalRunner, PgBackRest};
    /// let p = PgBackRest::new(LocalRunner::new(), "pg-ha").repo(2);
    /// assert!(p.args("backup", &[]).contains(&"--repo=2".to_owned()));
    /// assert!(!p.args("check", &[]).iter().any(|a| a.starts_with("--repo")));
    /// ```
    pub fn repo(mut self, repo: u8) -> Self {
        self.repo = Some(repo);
        self
    }

    /// Longest a command may run before it is killed (default 1 h).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The stanza name.
    pub fn stanza(&self) -> &str {
        &self.stanza
    }

    /// pgBackRest's arguments for `command` with `options` (global options first).
    pub fn args(&self, command: &str, options: &[String]) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(c) = &self.config {
            args.push(format!("--config={c}"));
        }
        args.push(format!("--stanza={}", self.stanza));
        args.extend(self.extra.iter().cloned());
        if let Some(repo) = self.repo.filter(|_| TAKES_REPO.contains(&command)) {
            args.push(format!("--repo={repo}"));
        }
        args.extend(options.iter().cloned());
        args.push(command.to_owned());
        args
    }

    /// The full command line `command` would run.
    pub fn argv(&self, command: &str, options: &[String]) -> Vec<String> {
        self.runner.argv(&self.args(command, options))
    }

    pub(crate) async fn run(&self, command: &str, options: &[String]) -> Result<Output> {
        let argv = self.argv(command, options);
        let Some((program, rest)) = argv.split_first() else {
            return Err(Error::usage("the command runner built an empty command line"));
        };
        tracing::info!(command, stanza = %self.stanza, "pgbackrest");
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(rest).stdin(std::process::Stdio::null()).kill_on_drop(true);
        let out = tokio::time::timeout(self.timeout, cmd.output())
            .await
            .map_err(|_| {
                Error::timeout(format!(
                    "pgbackrest {command} did not finish within {:?} (killed)",
                    self.timeout
                ))
            })?
            .map_err(|e| Error::new(ErrorKind::Backup, format!("starting {program}")).with_source(e))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(Output { stdout });
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        // pgBackRest prints "ERROR: [056]: …" lines; keep the last few lines of either stream.
        let detail: Vec<&str> = stderr
            .lines()
            .chain(stdout.lines())
            .filter(|l| !l.trim().is_empty())
            .collect();
        let tail = detail[detail.len().saturating_sub(4)..].join(" | ");
        let code = out.status.code();
        let name = code.and_then(error_name).map(|n| format!(" ({n})")).unwrap_or_default();
        Err(Error::backup(
            code,
            format!(
                "pgbackrest {command} exited with {}{name}: {tail}",
                code.map_or_else(|| "a signal".to_owned(), |c| c.to_string())
            ),
        ))
    }

    /// `stanza-create` (once per stanza, on every repository).
    pub async fn stanza_create(&self) -> Result<()> {
        self.run("stanza-create", &[]).await.map(drop)
    }

    /// `check`: switches WAL and waits until the segment is archived, proving that archiving
    /// works end to end.
    pub async fn check(&self) -> Result<()> {
        self.run("check", &[]).await.map(drop)
    }

    /// A backup of the given type (expire runs after it, per the retention settings).
    pub async fn backup(&self, kind: BackupType) -> Result<()> {
        self.run("backup", &[format!("--type={}", kind.as_str())])
            .await
            .map(drop)
    }

    /// [`backup`](Self::backup), calling `on_progress` every `every` while it runs with how far
    /// it is ([`backup_progress`](Self::backup_progress); a poll that fails or takes longer than
    /// `every` is skipped; `every` is at least 100 ms).
    pub async fn backup_watched(
        &self,
        kind: BackupType,
        every: Duration,
        on_progress: impl Fn(BackupProgress),
    ) -> Result<()> {
        // A zero period would make the interval panic, a tiny one poll without pause.
        let every = every.max(Duration::from_millis(100));
        let backup = self.backup(kind);
        tokio::pin!(backup);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                done = &mut backup => return done,
                _ = tick.tick() => {
                    // Bounded: the backup's end is not noticed while a poll runs.
                    if let Ok(Ok(Some(progress))) = tokio::time::timeout(every, self.backup_progress()).await {
                        on_progress(progress);
                    }
                }
            }
        }
    }

    /// The backup of the stanza running now (on the host `pgbackrest` runs on, where its lock
    /// is), and how far it is; `None` when none is running. Two `info` runs: the JSON for the
    /// lock, the text for the percentage (pgBackRest 2.45 reports it there only).
    pub async fn backup_progress(&self) -> Result<Option<BackupProgress>> {
        if !self.info().await?.backup_running() {
            return Ok(None);
        }
        let text = self.run("info", &[]).await?.stdout;
        Ok(Some(BackupProgress {
            percent: running_percent(&text),
        }))
    }

    /// `verify`: reads every backup and archived WAL segment in the repository and checks it
    /// against its checksum; a missing or corrupt file fails with the files pgBackRest named.
    pub async fn verify(&self) -> Result<()> {
        self.run("verify", &[]).await.map(drop)
    }

    /// `stanza-upgrade`: after a PostgreSQL major upgrade, records the new version and system
    /// identifier in every repository (nothing to do, and no error, when they are current).
    pub async fn stanza_upgrade(&self) -> Result<()> {
        self.run("stanza-upgrade", &[]).await.map(drop)
    }

    /// `expire`: applies the retention settings now.
    pub async fn expire(&self) -> Result<()> {
        self.run("expire", &[]).await.map(drop)
    }

    /// What [`expire`](Self::expire) would remove, changing nothing (`expire --dry-run`): pgBackRest's
    /// `[DRY-RUN]` lines, without their log prefix; empty when retention removes nothing.
    pub async fn expire_plan(&self) -> Result<Vec<String>> {
        let options = ["--dry-run".to_owned(), "--log-level-console=info".to_owned()];
        let out = self.run("expire", &options).await?;
        Ok(out
            .stdout
            .lines()
            .filter_map(|l| l.split_once("[DRY-RUN] ").map(|(_, what)| what.trim().to_owned()))
            .collect())
    }

    /// `info --output=json` for this stanza, typed. The stanza's status is *not* turned into an
    /// error here (a stanza without backups is a state worth showing): call
    /// [`StanzaInfo::status_error`].
    pub async fn info(&self) -> Result<StanzaInfo> {
        let out = self.run("info", &["--output=json".into()]).await?;
        parse_info(&out.stdout)?
            .into_iter()
            .find(|s| s.name == self.stanza)
            .ok_or_else(|| Error::not_found(format!("pgbackrest info lists no stanza {:?}", self.stanza)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_options_come_before_the_command() {
        let p = PgBackRest::new(LocalRunner::new(), "pg-ha")
            .config_file("/etc/pgbackrest/pgbackrest.conf")
            .option("--repo=1");
        assert_eq!(
            p.argv("backup", &["--type=full".into()]).join(" "),
            "pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=pg-ha --repo=1 --type=full backup"
        );
    }

    #[test]
    fn exit_codes_have_names() {
        assert_eq!(error_name(56), Some("db-connect"));
        assert_eq!(error_name(82), Some("archive-timeout"));
        assert_eq!(error_name(1), None);
    }

    #[tokio::test]
    async fn a_failing_command_is_a_typed_error_with_its_code() {
        // `false` stands in for a pgbackrest that fails: exit status 1, no output.
        #[derive(Debug)]
        struct Fails;
        impl CommandRunner for Fails {
            fn argv(&self, _: &[String]) -> Vec<String> {
                vec![
                    "sh".into(),
                    "-c".into(),
                    "echo 'ERROR: [056]: unable to connect' >&2; exit 56".into(),
                ]
            }
        }
        let e = PgBackRest::new(Fails, "x").check().await.expect_err("must be refused");
        assert_eq!(e.kind(), ErrorKind::Backup);
        assert_eq!(e.pgbackrest_code(), Some(56));
        assert!(
            e.to_string().contains("db-connect") && e.to_string().contains("unable to connect"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_hanging_command_is_killed_at_the_timeout() {
        #[derive(Debug)]
        struct Hangs;
        impl CommandRunner for Hangs {
            fn argv(&self, _: &[String]) -> Vec<String> {
                vec!["sleep".into(), "30".into()]
            }
        }
        let e = PgBackRest::new(Hangs, "x")
            .timeout(Duration::from_millis(200))
            .check()
            .await
            .expect_err("must be refused");
        assert_eq!(e.kind(), ErrorKind::Timeout);
    }
}
