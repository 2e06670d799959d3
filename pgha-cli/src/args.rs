//! The command line: global connection flags and one subcommand per runbook procedure.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Operate a Patroni PostgreSQL cluster: status, health, switchover, restarts, replication,
/// WAL, pgBackRest backups and point-in-time recovery, maintenance and tuning.
///
/// Connection settings come from flags, environment variables (shown with each flag) or a TOML
/// file (--config). Data goes to stdout (--format json for scripts); progress and logs to
/// stderr. The exit code says what happened (listed below).
#[derive(Debug, Parser)]
#[command(name = "pgha", version, max_term_width = 100, after_help = pgha_admin::exit_codes::help_text())]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// Parses the command line, with the environment variables each flag names, as
    /// [`Parser::try_parse`] does — and refuses a secret given on the command line, where every
    /// local user can read it (`ps`, `/proc/<pid>/cmdline`) and shells keep it in their history:
    /// `--password`, `--patroni-password`, and a `--dsn` that holds a password. The environment
    /// variables and the configuration file carry secrets instead.
    pub(crate) fn parse_from_env() -> Result<Self, clap::Error> {
        Self::parse_checked(std::env::args_os())
    }

    /// [`Cli::parse_from_env`] with the given arguments (the first is the program's name).
    pub(crate) fn parse_checked<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{parser::ValueSource, CommandFactory, FromArgMatches};
        let matches = Self::command().try_get_matches_from(args)?;
        let cli = Self::from_arg_matches(&matches)?;
        let on_command_line = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        let refused = if on_command_line("password") {
            Some("--password: a password on the command line is visible to every local user; set PGHA_PASSWORD, `password` in the configuration file, or use ~/.pgpass")
        } else if on_command_line("patroni_password") {
            Some("--patroni-password: a password on the command line is visible to every local user; set PGHA_PATRONI_PASSWORD or `patroni_password` in the configuration file")
        } else if on_command_line("dsn")
            && cli.global.dsn.as_deref().is_some_and(|dsn| {
                let shown = pgha_client::redact_connection_string(dsn);
                shown != dsn && shown != "<not a connection string>"
            })
        {
            Some("--dsn holds a password, which on the command line is visible to every local user; pass the connection string in PGHA_DSN, or leave the password out and set PGHA_PASSWORD or use ~/.pgpass")
        } else {
            None
        };
        match refused {
            Some(why) => Err(Self::command().error(clap::error::ErrorKind::ValueValidation, why)),
            None => Ok(cli),
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Patroni REST API URLs (comma-separated); the other members are learned from /cluster.
    #[arg(long, global = true, env = "PGHA_PATRONI_URLS", value_delimiter = ',')]
    pub(crate) patroni: Vec<String>,
    /// Patroni basic-auth user (for switchover, restart, config…); sent with those actions, and
    /// with reads only to the --patroni URLs or over HTTPS. The password comes from
    /// PGHA_PATRONI_PASSWORD or the configuration file, never from the command line.
    #[arg(long, global = true, env = "PGHA_PATRONI_USER")]
    pub(crate) patroni_user: Option<String>,
    /// Patroni basic-auth password: from PGHA_PATRONI_PASSWORD or the configuration file.
    /// Refused on the command line (see [`Cli::parse_from_env`]), hence hidden.
    #[arg(long, global = true, env = "PGHA_PATRONI_PASSWORD", hide = true)]
    pub(crate) patroni_password: Option<String>,
    /// CA certificate for HTTPS to Patroni.
    #[arg(long, global = true, env = "PGHA_PATRONI_CA")]
    pub(crate) patroni_ca: Option<PathBuf>,
    /// Client certificate (PEM) for Patroni's REST API, when it asks for one
    /// (`restapi.verify_client`); with --patroni-key.
    #[arg(long, global = true, env = "PGHA_PATRONI_CERT")]
    pub(crate) patroni_cert: Option<PathBuf>,
    /// Private key (PEM) of --patroni-cert.
    #[arg(long, global = true, env = "PGHA_PATRONI_KEY")]
    pub(crate) patroni_key: Option<PathBuf>,
    /// Database connection URL or key=value string for credentials and options, e.g.
    /// postgresql://postgres@/postgres (hosts come from Patroni). One that holds a password is
    /// taken only from PGHA_DSN or the configuration file.
    #[arg(long, global = true, env = "PGHA_DSN", hide_env_values = true)]
    pub(crate) dsn: Option<String>,
    /// Database user (a superuser or a role with pg_monitor and the rights each command needs).
    /// The password comes from PGHA_PASSWORD, the configuration file or ~/.pgpass, never from the
    /// command line.
    #[arg(long, global = true, env = "PGHA_USER")]
    pub(crate) user: Option<String>,
    /// Database password: from PGHA_PASSWORD, the configuration file or ~/.pgpass. Refused on
    /// the command line (see [`Cli::parse_from_env`]), hence hidden.
    #[arg(long, global = true, env = "PGHA_PASSWORD", hide = true)]
    pub(crate) password: Option<String>,
    /// Database name.
    #[arg(long, global = true, env = "PGHA_DBNAME")]
    pub(crate) dbname: Option<String>,
    /// TLS to PostgreSQL: disable, prefer, require, verify-full.
    #[arg(long, global = true, env = "PGHA_SSLMODE")]
    pub(crate) sslmode: Option<String>,
    /// CA certificate for TLS to PostgreSQL.
    #[arg(long, global = true, env = "PGHA_SSLROOTCERT")]
    pub(crate) sslrootcert: Option<PathBuf>,
    /// Client certificate (PEM) for TLS to PostgreSQL (libpq's sslcert); with --sslkey.
    #[arg(long, global = true, env = "PGHA_SSLCERT")]
    pub(crate) sslcert: Option<PathBuf>,
    /// Private key (PEM) of --sslcert.
    #[arg(long, global = true, env = "PGHA_SSLKEY")]
    pub(crate) sslkey: Option<PathBuf>,
    /// SCRAM channel binding to the TLS connection: disable, prefer, require (libpq's
    /// channel_binding).
    #[arg(long, global = true, env = "PGHA_CHANNEL_BINDING")]
    pub(crate) channel_binding: Option<String>,
    /// TOML configuration file (pgha-client configuration keys, plus `pgbackrest` and `pitr`
    /// tables). Default: the first of $XDG_CONFIG_HOME/pgha/pgha.toml (~/.config/pgha/pgha.toml)
    /// and /etc/pgha/pgha.toml that exists.
    #[arg(long, global = true, env = "PGHA_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// A Patroni configuration file (as `patronictl -c`): this member's REST API address,
    /// credentials and certificates, the scope and the superuser; anything else overrides it.
    #[arg(long, short = 'c', global = true, env = "PGHA_PATRONI_CONFIG")]
    pub(crate) patroni_config: Option<PathBuf>,
    /// Output: pretty (tables for people), tsv (tab-separated rows with a header line: a list's
    /// items, or a report's one list, such as status's members), json or yaml (the whole report,
    /// for scripts); `check` also speaks prometheus (the text format, for node_exporter's
    /// textfile collector), and its pretty output is a Nagios plugin's.
    #[arg(long, short = 'f', global = true, value_enum, default_value_t = Format::Pretty, env = "PGHA_FORMAT")]
    pub(crate) format: Format,
    /// Do not ask for confirmation of destructive operations.
    #[arg(long, short = 'y', global = true)]
    pub(crate) yes: bool,
    /// Show what a destructive operation would do, and do nothing.
    #[arg(long, global = true)]
    pub(crate) dry_run: bool,
    /// How long to wait for the cluster to converge (e.g. 120s, 5m).
    #[arg(long, global = true, default_value = "120s", value_parser = pgha_client::parse_duration)]
    pub(crate) timeout: std::time::Duration,
    /// More logging on stderr (-v info, -vv debug).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    #[command(flatten)]
    pub(crate) pgbackrest: BackrestArgs,
}

#[derive(Debug, Args, Default)]
pub(crate) struct BackrestArgs {
    /// pgBackRest stanza.
    #[arg(long, global = true, env = "PGHA_STANZA")]
    pub(crate) stanza: Option<String>,
    /// pgBackRest configuration file.
    #[arg(long, global = true, env = "PGHA_PGBACKREST_CONFIG")]
    pub(crate) pgbackrest_config: Option<String>,
    /// Run pgbackrest locally as this OS user (via runuser; needs root).
    #[arg(long, global = true, env = "PGHA_PGBACKREST_USER")]
    pub(crate) pgbackrest_user: Option<String>,
    /// Run pgbackrest in this container (docker exec).
    #[arg(
        long,
        global = true,
        env = "PGHA_PGBACKREST_CONTAINER",
        conflicts_with = "pgbackrest_ssh"
    )]
    pub(crate) pgbackrest_container: Option<String>,
    /// Run pgbackrest over SSH at this destination (user@host).
    #[arg(long, global = true, env = "PGHA_PGBACKREST_SSH")]
    pub(crate) pgbackrest_ssh: Option<String>,
    /// The pgBackRest repository (1-256) for backup create, info, expire and verify.
    #[arg(long, global = true, env = "PGHA_PGBACKREST_REPO", value_parser = clap::value_parser!(u8).range(1..))]
    pub(crate) repo: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Tables for people (`human` and `auto` are older names for it).
    #[value(aliases = ["human", "auto"])]
    Pretty,
    /// Tab-separated rows with a header line.
    Tsv,
    /// The whole report as JSON.
    Json,
    /// The whole report as YAML.
    Yaml,
    /// The Prometheus text format (`check` only).
    Prometheus,
}

impl Format {
    /// Whether the report itself is printed (a machine format), rather than text for people.
    pub(crate) fn is_data(self) -> bool {
        matches!(self, Self::Tsv | Self::Json | Self::Yaml)
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Members, roles, states, timelines, lag, pending restarts, maintenance mode (`list`, as
    /// patronictl calls it).
    #[command(visible_alias = "list")]
    Status {
        /// Print it again every INTERVAL (e.g. 2s) until interrupted (Ctrl-C).
        #[arg(long, short = 'w', value_name = "INTERVAL", value_parser = pgha_client::parse_duration)]
        watch: Option<std::time::Duration>,
    },
    /// pgha's version and every member's Patroni and PostgreSQL versions.
    Version,
    /// A libpq connection string (host and port, no credentials) for a member or a role.
    Dsn {
        /// Member (default: the leader, or a member of --role).
        member: Option<String>,
        /// A member of this role: primary, or the least lagging running replica.
        #[arg(long, conflicts_with = "member")]
        role: Option<RoleArg>,
    },
    /// Edit Patroni's dynamic configuration in $VISUAL or $EDITOR (default vi) as YAML, see the
    /// difference, confirm, apply (patronictl's `edit-config`); edited again if it changed
    /// meanwhile. With --dry-run, shows the difference only.
    EditConfig,
    /// Delete every key of the cluster from etcd (patronictl's `remove`), for a stopped cluster:
    /// before a restore, after decommissioning. On a terminal, asks for the cluster's name,
    /// "Yes I am aware", and the leader's name if it has one; otherwise needs --yes (and
    /// --leader when there is a leader key). With --dry-run, lists the keys only. Needs etcd
    /// (PGHA_ETCD_URLS, `etcd` in the configuration file, or etcd3 in --patroni-config) and
    /// write permission there.
    Remove {
        /// The cluster's name (Patroni's scope).
        scope: String,
        /// The member the leader key names, when there is one.
        #[arg(long)]
        leader: Option<String>,
    },
    /// The replication tree: the leader, and each member under the one it replicates from
    /// (patronictl's `topology`).
    Topology,
    /// Run SQL on a member or a role and print the rows (patronictl's `query`); read-only
    /// unless --write.
    Query {
        /// The statement(s); values are printed as PostgreSQL prints them.
        sql: String,
        /// Member (default: the leader, or a member of --role).
        #[arg(long, short = 'm')]
        member: Option<String>,
        /// A member of this role: primary, or the least lagging running replica.
        #[arg(long, conflicts_with = "member")]
        role: Option<RoleArg>,
        /// Allow writes (the session is read-only otherwise).
        #[arg(long)]
        write: bool,
    },
    /// Health check for cron and monitoring: a Nagios plugin's output (summary line with
    /// performance data; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), JSON, or with
    /// --format prometheus the Prometheus text format (exit 0 whatever the verdict, which is
    /// pgha_check_status).
    Check(CheckArgs),
    /// Serve the metrics of `check --format prometheus` over HTTP at /metrics, one check per
    /// scrape, until SIGTERM or Ctrl-C.
    Exporter {
        /// Address to listen on (port 0: any free port; the address is printed on stderr). No
        /// authentication: listen on a private address.
        #[arg(long, default_value = "127.0.0.1:9638")]
        listen: std::net::SocketAddr,
        /// Longest one scrape may take (keep it under Prometheus's scrape_timeout, 10s by default).
        #[arg(long, default_value = "9s", value_parser = pgha_client::parse_duration)]
        scrape_timeout: std::time::Duration,
        #[command(flatten)]
        check: CheckArgs,
    },
    /// Timeline history (one line per promotion).
    History,
    /// Planned switchover: pre-flight checks, then wait until the new leader accepts writes.
    Switchover {
        /// Member to promote (default: Patroni picks the healthiest).
        #[arg(long)]
        candidate: Option<String>,
        /// Schedule it (ISO 8601 with time zone, e.g. 2026-11-27T02:00:00+00:00).
        #[arg(long)]
        at: Option<String>,
    },
    /// Manual failover to a candidate (works without a leader; may lose data: confirms first).
    Failover {
        /// Member to promote.
        #[arg(long)]
        candidate: String,
    },
    /// Cancel a scheduled switchover.
    CancelSwitchover,
    /// Restart PostgreSQL on one member or all.
    Restart {
        /// Member (default: every member matching the filters).
        member: Option<String>,
        /// Only members with this role.
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        /// Only members with a pending restart.
        #[arg(long)]
        pending: bool,
        /// Schedule it (ISO 8601 with time zone).
        #[arg(long)]
        at: Option<String>,
    },
    /// Cancel a member's scheduled restart.
    CancelRestart {
        /// Member.
        member: String,
    },
    /// Re-read the Patroni configuration file (one member or all).
    Reload {
        /// Member (default: all).
        member: Option<String>,
    },
    /// Wipe a replica and re-clone it from the leader, then wait until it streams (confirms first).
    Reinitialize {
        /// The replica.
        member: String,
        /// Restore it from the newest backup instead (pgbackrest restore --type=standby
        /// --delta: only the files that differ are copied), through the [pitr] node control's
        /// stop, start and data_dir; pgbackrest must run on the member's host.
        #[arg(long)]
        from_backup: bool,
    },
    /// Zero-downtime restart: replicas one by one, switchover, then the old leader.
    RollingRestart {
        /// Only members with a pending restart.
        #[arg(long)]
        pending: bool,
    },
    /// Maintenance mode on: no automatic failover.
    Pause,
    /// Maintenance mode off.
    Resume,
    /// Patroni's dynamic configuration and PostgreSQL parameters.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Replication lag, slots, WAL replay.
    #[command(subcommand)]
    Replication(ReplicationCmd),
    /// WAL archiving, pg_wal size, checkpoints.
    #[command(subcommand)]
    Wal(WalCmd),
    /// pgBackRest backups.
    #[command(subcommand)]
    Backup(BackupCmd),
    /// Point-in-time recovery of the whole cluster from pgBackRest (confirms first).
    Pitr(PitrArgs),
    /// VACUUM a table or the database (on the leader).
    Vacuum {
        /// Table (default: the whole database).
        table: Option<String>,
        /// Also ANALYZE.
        #[arg(long)]
        analyze: bool,
        /// VACUUM FULL (blocks reads and writes on the table; confirms first).
        #[arg(long)]
        full: bool,
        /// Skip the end-of-table truncation (its brief exclusive lock).
        #[arg(long)]
        no_truncate: bool,
    },
    /// ANALYZE a table or the database (on the leader).
    Analyze {
        /// Table (default: the whole database).
        table: Option<String>,
    },
    /// REINDEX INDEX CONCURRENTLY.
    Reindex {
        /// Index.
        index: String,
    },
    /// Index usage (scans, size); --unused lists drop candidates.
    Indexes {
        /// Only never-scanned, non-unique, non-primary-key indexes.
        #[arg(long)]
        unused: bool,
    },
    /// DROP INDEX CONCURRENTLY (confirms first).
    DropIndex {
        /// Index.
        index: String,
    },
    /// The largest tables with index size, dead rows and last vacuum.
    Tables {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Slowest statements from pg_stat_statements.
    SlowQueries {
        /// How many.
        #[arg(long, default_value_t = 10)]
        limit: i64,
        /// Member (default: the leader).
        #[arg(long)]
        member: Option<String>,
    },
    /// EXPLAIN a statement (with --analyze it runs, inside a rolled-back transaction).
    Explain {
        /// The statement.
        sql: String,
        /// EXPLAIN ANALYZE.
        #[arg(long)]
        analyze: bool,
        /// Member (default: the leader).
        #[arg(long)]
        member: Option<String>,
    },
    /// pgvector indexes.
    #[command(subcommand)]
    Vector(VectorCmd),
    /// Tuning advice for the machine (only parameters this server has); --apply writes it.
    Tune(TuneArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell), e.g.
    /// `pgha completions bash > /etc/bash_completion.d/pgha`. Needs no cluster.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `pgha man > /usr/share/man/man1/pgha.1`. Needs no
    /// cluster.
    Man,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Replay lag in bytes that is WARNING.
    #[arg(long, default_value_t = 16 << 20)]
    pub(crate) lag_warning_bytes: u64,
    /// Replay lag in bytes that is CRITICAL.
    #[arg(long, default_value_t = 256 << 20)]
    pub(crate) lag_critical_bytes: u64,
    /// Replay lag in time that is WARNING.
    #[arg(long, default_value = "30s", value_parser = pgha_client::parse_duration)]
    pub(crate) lag_warning: std::time::Duration,
    /// Replay lag in time that is CRITICAL.
    #[arg(long, default_value = "300s", value_parser = pgha_client::parse_duration)]
    pub(crate) lag_critical: std::time::Duration,
    /// Expected number of members (default: the number of --patroni URLs when more than one).
    #[arg(long)]
    pub(crate) expect_members: Option<usize>,
    /// Data directory file system use (percent) that is WARNING (members on this machine).
    #[arg(long, default_value_t = 80.0)]
    pub(crate) disk_warning_pct: f64,
    /// Data directory file system use (percent) that is CRITICAL.
    #[arg(long, default_value_t = 90.0)]
    pub(crate) disk_critical_pct: f64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RoleArg {
    Primary,
    Replica,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCmd {
    /// Show the dynamic configuration.
    Show,
    /// Set PostgreSQL parameters cluster-wide (NAME=VALUE…), checked against the server.
    Set {
        /// NAME=VALUE pairs.
        #[arg(required = true)]
        parameters: Vec<String>,
    },
    /// Merge a JSON object into the dynamic configuration (null removes a key).
    Patch {
        /// JSON object.
        json: String,
    },
    /// Show one setting's current value on the leader.
    Get {
        /// Setting name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReplicationCmd {
    /// Per-standby lag in bytes and time, streaming state.
    Lag,
    /// Replication slots and the WAL they retain.
    Slots,
    /// Drop an inactive replication slot (confirms first).
    DropSlot {
        /// Slot name.
        name: String,
    },
    /// Pause WAL replay on a replica (needs maintenance mode).
    PauseReplay {
        /// The replica.
        member: String,
    },
    /// Resume WAL replay on a replica.
    ResumeReplay {
        /// The replica.
        member: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum WalCmd {
    /// pg_stat_archiver on the leader, with a verdict.
    Archiver,
    /// pg_wal size and the settings that bound it.
    Size {
        /// Member (default: the leader).
        #[arg(long)]
        member: Option<String>,
    },
    /// CHECKPOINT (immediate).
    Checkpoint {
        /// Member (default: the leader).
        #[arg(long)]
        member: Option<String>,
    },
    /// Show wal_keep_size, or set it cluster-wide through Patroni.
    KeepSize {
        /// New value, e.g. 2GB.
        value: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BackupCmd {
    /// Take a backup; says how far it is every 5 s while it runs (on stderr).
    Create {
        /// full, diff or incr.
        #[arg(long = "type", value_enum, default_value_t = BackupTypeArg::Incr)]
        kind: BackupTypeArg,
    },
    /// Backups and archive range (exit 16 if the stanza status is not ok).
    Info,
    /// Whether a backup is running (on the host pgbackrest runs on) and how far it is.
    Progress,
    /// pgbackrest check: archiving works end to end.
    Check,
    /// Create the stanza.
    StanzaCreate,
    /// After a PostgreSQL major upgrade: record the new version in every repository.
    StanzaUpgrade,
    /// Check every backup and archived WAL segment in the repository against its checksum.
    Verify,
    /// Apply retention now.
    Expire,
    /// Print a pgbackrest.conf for an S3 repository; the secret key comes from PGHA_S3_KEY_SECRET
    /// (never from the command line).
    S3Config(S3Args),
    /// Print a pgbackrest.conf for a Google Cloud Storage repository.
    GcsConfig(GcsArgs),
    /// Print a pgbackrest.conf for an Azure Blob Storage repository; the key comes from
    /// PGHA_AZURE_KEY (never from the command line).
    AzureConfig(AzureArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum BackupTypeArg {
    Full,
    Diff,
    Incr,
}

#[derive(Debug, Args)]
pub(crate) struct S3Args {
    /// Bucket.
    #[arg(long)]
    pub(crate) bucket: String,
    /// Region.
    #[arg(long)]
    pub(crate) region: String,
    /// Endpoint host or host:port (HTTPS).
    #[arg(long)]
    pub(crate) endpoint: String,
    /// Access key ID (omit to use the instance role); its secret comes from PGHA_S3_KEY_SECRET
    /// (never from the command line).
    #[arg(long, env = "PGHA_S3_KEY")]
    pub(crate) key: Option<String>,
    /// Path-style URIs (MinIO).
    #[arg(long)]
    pub(crate) path_style: bool,
    #[command(flatten)]
    pub(crate) repository: RepositoryArgs,
}

/// What every repository configuration takes (`--repo` is the global flag).
#[derive(Debug, Args)]
pub(crate) struct RepositoryArgs {
    /// Path in the bucket or container.
    #[arg(long, default_value = "/pgbackrest")]
    pub(crate) path: String,
    /// Full backups to keep.
    #[arg(long, default_value_t = 2)]
    pub(crate) retention_full: u32,
    /// Data directories, one per node (pg1-path, pg2-path…).
    #[arg(long = "pg-path", required = true)]
    pub(crate) pg_paths: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct GcsArgs {
    /// Bucket.
    #[arg(long)]
    pub(crate) bucket: String,
    /// Endpoint host or host:port (default storage.googleapis.com).
    #[arg(long)]
    pub(crate) endpoint: Option<String>,
    /// auto (the instance's service account), service (a key file, --key-file) or token
    /// (from PGHA_GCS_TOKEN; for tests against a fake GCS).
    #[arg(long, value_enum, default_value_t = GcsKeyArg::Service)]
    pub(crate) key_type: GcsKeyArg,
    /// The service account key file on the host that runs pgBackRest (with --key-type service).
    #[arg(long)]
    pub(crate) key_file: Option<String>,
    #[command(flatten)]
    pub(crate) repository: RepositoryArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum GcsKeyArg {
    Auto,
    Service,
    Token,
}

#[derive(Debug, Args)]
pub(crate) struct AzureArgs {
    /// Storage account.
    #[arg(long)]
    pub(crate) account: String,
    /// Container.
    #[arg(long)]
    pub(crate) container: String,
    /// Endpoint host or host:port (default blob.core.windows.net).
    #[arg(long)]
    pub(crate) endpoint: Option<String>,
    /// PGHA_AZURE_KEY is a shared access signature, not the account's shared key.
    #[arg(long)]
    pub(crate) sas: bool,
    /// The account in the path, not the host name (an IP address or Azurite as the endpoint).
    #[arg(long)]
    pub(crate) path_style: bool,
    #[command(flatten)]
    pub(crate) repository: RepositoryArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PitrArgs {
    /// Recover to this time (ISO 8601 with time zone, e.g. "2026-11-26 14:29:00+00").
    #[arg(long, group = "target")]
    pub(crate) time: Option<String>,
    /// Recover to this LSN (X/Y).
    #[arg(long, group = "target")]
    pub(crate) lsn: Option<String>,
    /// Recover to this named restore point.
    #[arg(long, group = "target")]
    pub(crate) restore_point: Option<String>,
    /// Recover everything that was archived (after losing every node).
    #[arg(long, group = "target")]
    pub(crate) latest: bool,
    /// The member to restore first (default: the current leader).
    #[arg(long)]
    pub(crate) member: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum VectorCmd {
    /// Build an HNSW (default) or IVFFlat index concurrently.
    CreateIndex {
        /// Table.
        table: String,
        /// vector column.
        #[arg(long, default_value = "embedding")]
        column: String,
        /// Index name.
        #[arg(long)]
        name: Option<String>,
        /// Build IVFFlat with this many lists instead of HNSW.
        #[arg(long)]
        ivfflat_lists: Option<u32>,
        /// HNSW m.
        #[arg(long, default_value_t = 16)]
        m: u32,
        /// HNSW ef_construction.
        #[arg(long, default_value_t = 64)]
        ef_construction: u32,
        /// l2, cosine or ip.
        #[arg(long, value_enum, default_value_t = DistanceArg::L2)]
        distance: DistanceArg,
        /// maintenance_work_mem for the build, e.g. 1GB.
        #[arg(long)]
        maintenance_work_mem: Option<String>,
    },
    /// pgvector indexes with size, scans and validity.
    List,
    /// REINDEX INDEX CONCURRENTLY.
    Rebuild {
        /// Index.
        index: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum DistanceArg {
    L2,
    Cosine,
    Ip,
}

#[derive(Debug, Args)]
pub(crate) struct TuneArgs {
    /// Memory for PostgreSQL, e.g. 32GB, 512MB.
    #[arg(long)]
    pub(crate) memory: String,
    /// CPU cores.
    #[arg(long)]
    pub(crate) cpus: u32,
    /// Storage: ssd or hdd.
    #[arg(long, value_enum, default_value_t = StorageArg::Ssd)]
    pub(crate) storage: StorageArg,
    /// Plan work_mem for this many connections (default: max_connections).
    #[arg(long)]
    pub(crate) max_connections: Option<u32>,
    /// Write the changed values to Patroni's dynamic configuration.
    #[arg(long)]
    pub(crate) apply: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum StorageArg {
    Ssd,
    Hdd,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_lists_every_exit_code() {
        let help = Cli::command().render_long_help().to_string();
        // One line per row of TABLE, after the heading.
        let rows = pgha_admin::exit_codes::help_text();
        assert_eq!(rows.lines().count(), pgha_admin::exit_codes::TABLE.len() + 1);
        for line in rows.lines() {
            assert!(help.contains(line.trim()), "--help lacks {line:?}:\n{help}");
        }
    }

    #[test]
    fn check_s_default_thresholds_are_the_library_s() {
        let cli = Cli::try_parse_from(["pgha", "check"]).expect("parses");
        let Command::Check(a) = cli.command else {
            panic!("not check")
        };
        let d = pgha_admin::CheckOptions::default();
        assert_eq!(
            (a.lag_warning_bytes, a.lag_critical_bytes, a.lag_warning, a.lag_critical),
            (
                d.lag_bytes_warning,
                d.lag_bytes_critical,
                d.lag_time_warning,
                d.lag_time_critical
            )
        );
        assert_eq!(
            (a.disk_warning_pct, a.disk_critical_pct),
            (d.disk_warning_pct, d.disk_critical_pct)
        );
    }

    #[test]
    fn global_flags_parse_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "pgha",
            "status",
            "--patroni",
            "http://a:8008,http://b:8008",
            "--timeout",
            "90s",
        ])
        .expect("parses");
        assert_eq!(cli.global.patroni, ["http://a:8008", "http://b:8008"]);
        assert_eq!(cli.global.timeout, std::time::Duration::from_secs(90));
        assert!(matches!(cli.command, Command::Status { watch: None }));
    }

    #[test]
    fn list_watch_takes_patronictl_s_short_flag() {
        for args in [["pgha", "list", "-w", "2s"], ["pgha", "status", "--watch", "2s"]] {
            let cli = Cli::try_parse_from(args).expect("parses");
            assert!(
                matches!(cli.command, Command::Status { watch: Some(w) } if w == std::time::Duration::from_secs(2)),
                "{args:?}"
            );
        }
    }

    /// A secret on the command line is refused, with the way to give it instead, and without
    /// the secret in the message; the same secrets from the environment are taken.
    #[test]
    fn secrets_are_refused_on_the_command_line() {
        for (args, names) in [
            (&["pgha", "status", "--password", "hunter2"][..], "PGHA_PASSWORD"),
            (
                &["pgha", "--patroni-password=hunter2", "status"],
                "PGHA_PATRONI_PASSWORD",
            ),
            (
                &["pgha", "status", "--dsn", "postgresql://app:hunter2@/app"],
                "PGHA_DSN",
            ),
            (&["pgha", "status", "--dsn", "user=app password=hunter2"], "PGHA_DSN"),
        ] {
            let err = Cli::parse_checked(args).expect_err("refused");
            let shown = err.to_string();
            assert!(err.use_stderr(), "{args:?}");
            assert!(shown.contains(names) && !shown.contains("hunter2"), "{args:?}: {shown}");
        }
        let cli = Cli::parse_checked(["pgha", "status", "--dsn", "postgresql://app@/app?sslmode=require"])
            .expect("a DSN without a password is fine on the command line");
        assert_eq!(cli.global.dsn.as_deref(), Some("postgresql://app@/app?sslmode=require"));
        let help = Cli::command().render_long_help().to_string();
        assert!(!help.contains("--password"), "{help}");
    }

    #[test]
    fn bad_input_is_a_usage_error_not_a_panic() {
        for args in [
            &["pgha", "status", "--timeout", "soon"][..],
            // A duration needs its unit (one rule for every duration pgha reads).
            &["pgha", "status", "--timeout", "60"],
            &["pgha", "no-such-command"],
            &["pgha", "failover"],
        ] {
            let err = Cli::try_parse_from(args).expect_err("refused");
            // main exits with exit_codes::USAGE for every error clap prints on stderr.
            assert!(err.use_stderr(), "{args:?}: {err}");
        }
    }
}
