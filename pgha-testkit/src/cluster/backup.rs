//! pgBackRest: running it against the cluster's stanza, taking backups, reading `info`.

use super::LocalCluster;
use crate::config_files::PGBACKREST_BIN;
use crate::error::{Error, Result};

/// A full backup or one relative to the last backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackupType {
    /// Full copy.
    Full,
    /// Changes since the last full backup.
    Diff,
    /// Changes since the last backup of any type.
    Incr,
}

impl LocalCluster {
    /// Runs `pgbackrest --config=<cluster config> --stanza=<scope> <args…>` as the cluster's OS user
    /// and returns its stdout. A non-zero exit is an [`Error::Command`] carrying pgBackRest's code.
    pub async fn pgbackrest(&self, args: &[&str]) -> Result<String> {
        let (config, scope) = {
            let state = self.lock_state();
            if !state.pgbackrest {
                return Err(Error::Setup("this cluster was built without pgBackRest".into()));
            }
            (state.pgbackrest_config(), state.scope.clone())
        };
        let mut cmd = self.user.command(PGBACKREST_BIN);
        cmd.arg(format!("--config={}", config.display()))
            .arg(format!("--stanza={scope}"))
            .args(args);
        let command = format!("pgbackrest {}", args.join(" "));
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .map_err(|e| Error::Setup(format!("{command}: {e}")))?
            .map_err(|e| Error::Setup(format!("{command}: {e}")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::Command {
                command,
                code: out.status.code(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stderr),
                    String::from_utf8_lossy(&out.stdout)
                ),
            })
        }
    }

    /// Takes a backup from the current primary.
    pub async fn backup(&self, kind: BackupType) -> Result<()> {
        let kind = match kind {
            BackupType::Full => "--type=full",
            BackupType::Diff => "--type=diff",
            BackupType::Incr => "--type=incr",
        };
        self.pgbackrest(&[kind, "backup"]).await.map(drop)
    }

    /// `pgbackrest info --output=json`, parsed.
    pub async fn backup_info(&self) -> Result<serde_json::Value> {
        let text = self.pgbackrest(&["--output=json", "info"]).await?;
        serde_json::from_str(&text).map_err(|e| Error::Setup(format!("pgbackrest info JSON: {e}: {text}")))
    }
}
