//! The configuration file (`--config`, TOML): pgha-client's configuration keys at the top level,
//! plus `[pgbackrest]` and `[pitr]` tables.

use pgha_admin::pgha_client::ClientConfig;
use pgha_admin::pitr::CommandControl;
use pgha_admin::{Error, ErrorKind, Result};

/// Everything the configuration file may hold.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct FileSettings {
    /// The top-level keys: pgha-client's [`ClientConfig`].
    pub client: ClientConfig,
    /// The `[pgbackrest]` table.
    pub pgbackrest: BackrestFile,
    /// The `[pitr]` table: how `pgha pitr` stops, starts and rebuilds members.
    pub pitr: Option<CommandControl>,
}

/// The `[pgbackrest]` table.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BackrestFile {
    /// The stanza (`--stanza`).
    pub stanza: Option<String>,
    /// pgBackRest's configuration file (`--config`).
    pub config: Option<String>,
    /// The OS user pgBackRest runs as.
    pub run_as: Option<String>,
    /// Run pgBackRest in this container (`docker exec`).
    pub container: Option<String>,
    /// Run pgBackRest over SSH on this destination.
    pub ssh: Option<String>,
    /// The pgBackRest binary.
    pub binary: Option<String>,
    /// The repository for backup create, info, expire and verify (`--repo`).
    pub repo: Option<u8>,
}

/// A usage error (exit code 64) with this message.
pub fn usage(message: String) -> Error {
    Error::new(ErrorKind::Usage, message)
}

/// A TOML syntax error by line and column. Not toml's own rendering: it quotes the offending
/// line, which may be the one holding a password.
fn syntax_error(origin: &str, text: &str, e: &toml::de::Error) -> Error {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            usage(format!("{origin}:{line}:{column}: {message}"))
        }
        None => usage(format!("{origin}: {message}")),
    }
}

/// Parses the file's `text`; `origin` (its path) prefixes every error message.
///
/// ```
/// let file = pgha_cli::settings_file::parse(
///     "patroni = [\"http://db1:8008\"]\n[pgbackrest]\nstanza = \"main\"\n",
///     "pgha.toml",
/// )
/// .unwrap();
/// assert_eq!(file.client.patroni, ["http://db1:8008"]);
/// assert_eq!(file.pgbackrest.stanza.as_deref(), Some("main"));
/// assert!(pgha_cli::settings_file::parse("[pitr]\nstop = 1\n", "pgha.toml").is_err());
/// // A syntax error names the place, not the line (which may hold a password).
/// let e = pgha_cli::settings_file::parse("password = \"hunter2\"\npassword = \"hunter2\"\n", "pgha.toml")
///     .unwrap_err();
/// assert!(e.to_string().contains("pgha.toml:2:1: duplicate key"), "{e}");
/// assert!(!e.to_string().contains("hunter2"));
/// ```
pub fn parse(text: &str, origin: &str) -> Result<FileSettings> {
    let mut table: toml::Table = text.parse().map_err(|e| syntax_error(origin, text, &e))?;
    let pgbackrest = match table.remove("pgbackrest") {
        Some(v) => v.try_into().map_err(|e| usage(format!("{origin} [pgbackrest]: {e}")))?,
        None => BackrestFile::default(),
    };
    let pitr = match table.remove("pitr") {
        Some(v) => Some(v.try_into().map_err(|e| usage(format!("{origin} [pitr]: {e}")))?),
        None => None,
    };
    let client: ClientConfig = toml::Value::Table(table)
        .try_into()
        .map_err(|e| usage(format!("{origin}: {e}")))?;
    Ok(FileSettings {
        client,
        pgbackrest,
        pitr,
    })
}
