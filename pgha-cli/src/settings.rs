//! Connection settings from the configuration file, the environment and flags (in that order of
//! precedence, flags last).

use std::path::{Path, PathBuf};

use pgha_admin::backup::{ContainerRunner, LocalRunner, PgBackRest, SshRunner};
use pgha_admin::pgha_client::{ClientConfig, Secret};
use pgha_admin::Result;

use crate::args::{BackrestArgs, Global};
pub(crate) use pgha_cli::settings_file::{self, usage, BackrestFile, FileSettings};

/// Reads the TOML file (see [`settings_file::parse`]).
pub(crate) fn load_file(path: &Path) -> Result<FileSettings> {
    let text = std::fs::read_to_string(path).map_err(|e| usage(format!("reading {}: {e}", path.display())))?;
    settings_file::parse(&text, &path.display().to_string())
}

/// The configuration file: the one named (`--config`, `PGHA_CONFIG`), else the first that
/// exists of the user's (`$XDG_CONFIG_HOME/pgha/pgha.toml`, `~/.config/pgha/pgha.toml`) and the
/// machine's (`/etc/pgha/pgha.toml`).
pub(crate) fn config_file(named: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = named {
        return Some(path.to_owned());
    }
    let env = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let user = env("XDG_CONFIG_HOME").or_else(|| env("HOME").map(|home| home.join(".config")));
    user.map(|dir| dir.join("pgha/pgha.toml"))
        .into_iter()
        .chain([PathBuf::from("/etc/pgha/pgha.toml")])
        .find(|p| p.is_file())
}

/// The client configuration: the Patroni configuration file (`--patroni-config`) first, then
/// pgha's own file, then the environment as a service reads it (`ClientConfig::from_env("PGHA")`:
/// every `PGHA_*` key, then libpq's `PG*`), then flags (clap has merged the flags with the
/// `PGHA_*` variables it shows in `--help`).
pub(crate) fn client_config(global: &Global, file: &FileSettings) -> Result<ClientConfig> {
    let env = ClientConfig::from_env("PGHA").map_err(|e| usage(e.to_string()))?;
    let mut base = file.client.clone();
    if let Some(path) = &global.patroni_config {
        let text = std::fs::read_to_string(path).map_err(|e| usage(format!("reading {}: {e}", path.display())))?;
        base = base.over(pgha_cli::patroni_config::parse(&text, &path.display().to_string())?);
    }
    let mut c = env.over(base);
    if global.dsn.is_some() {
        c.url = global.dsn.clone();
    }
    if !global.patroni.is_empty() {
        c.patroni = global
            .patroni
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
    }
    macro_rules! set {
        ($field:ident, $value:expr) => {
            if let Some(v) = $value {
                c.$field = Some(v);
            }
        };
    }
    set!(patroni_user, global.patroni_user.clone());
    set!(patroni_password, global.patroni_password.clone().map(Secret::new));
    set!(patroni_ca_file, global.patroni_ca.clone());
    set!(patroni_cert, global.patroni_cert.clone());
    set!(patroni_key, global.patroni_key.clone());
    set!(user, global.user.clone());
    set!(password, global.password.clone().map(Secret::new));
    set!(dbname, global.dbname.clone());
    set!(sslrootcert, global.sslrootcert.clone());
    set!(sslcert, global.sslcert.clone());
    set!(sslkey, global.sslkey.clone());
    let parse_err = |e: pgha_admin::pgha_client::Error| usage(e.to_string());
    if let Some(mode) = &global.sslmode {
        c.sslmode = Some(mode.parse().map_err(parse_err)?);
    }
    if let Some(binding) = &global.channel_binding {
        c.channel_binding = Some(binding.parse().map_err(parse_err)?);
    }
    if c.user.is_none() && c.url.is_none() {
        c.user = Some("postgres".into());
    }
    if c.patroni.is_empty() && c.hosts.is_empty() {
        return Err(usage(
            "no Patroni URL: pass --patroni http://host:8008 (or PGHA_PATRONI_URLS, or `patroni` in --config)".into(),
        ));
    }
    if c.application_name.is_none() {
        c.application_name = Some("pgha-cli".into());
    }
    Ok(c)
}

/// The pgBackRest handle from flags and the `[pgbackrest]` table.
pub(crate) fn pgbackrest(args: &BackrestArgs, file: &BackrestFile) -> Result<PgBackRest> {
    let stanza =
        args.stanza.clone().or_else(|| file.stanza.clone()).ok_or_else(|| {
            usage("no pgBackRest stanza: pass --stanza (or PGHA_STANZA, or [pgbackrest] stanza)".into())
        })?;
    let container = args.pgbackrest_container.clone().or_else(|| file.container.clone());
    let ssh = args.pgbackrest_ssh.clone().or_else(|| file.ssh.clone());
    let run_as = args.pgbackrest_user.clone().or_else(|| file.run_as.clone());
    let mut p = match (container, ssh) {
        (Some(c), _) => {
            let mut r = ContainerRunner::docker(c);
            if let Some(u) = run_as {
                r = r.user(u);
            }
            PgBackRest::new(r, stanza)
        }
        (None, Some(dest)) => PgBackRest::new(SshRunner::new(dest), stanza),
        (None, None) => {
            let mut r = LocalRunner::new();
            if let Some(b) = &file.binary {
                r = r.binary(b);
            }
            if let Some(u) = run_as {
                r = r.run_as(u);
            }
            PgBackRest::new(r, stanza)
        }
    };
    if let Some(c) = args.pgbackrest_config.clone().or_else(|| file.config.clone()) {
        p = p.config_file(c);
    }
    if let Some(repo) = args.repo.or(file.repo) {
        p = p.repo(repo);
    }
    Ok(p)
}
