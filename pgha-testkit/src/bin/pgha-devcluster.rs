//! `pgha-devcluster`: a long-lived local Patroni cluster for development.
//!
//! ```text
//! pgha-devcluster up [--members 3] [--etcd-members 3] [--patroni 3|4|PATH] [--json]
//!                                                                  start it, print how to connect
//! pgha-devcluster status [--json]                                  list members, roles, lag
//! pgha-devcluster down [--json]                                    stop everything it started
//! pgha-devcluster reap                                             clean up after killed test runs
//! pgha-devcluster node stop|start|clear-data|set-bootstrap|clear-dcs …  node control for scripts
//! ```
//! The cluster lives in `--state-dir` (default `$PGHA_DEVCLUSTER_DIR`, else `/tmp/pgha-devcluster`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pgha_testkit::{LocalCluster, PatroniFlavor};

#[derive(Parser)]
#[command(
    name = "pgha-devcluster",
    version,
    about = "A long-lived local Patroni cluster (etcd + Patroni + PostgreSQL 15)"
)]
struct Cli {
    /// Directory that holds the cluster.
    #[arg(
        long,
        global = true,
        env = "PGHA_DEVCLUSTER_DIR",
        default_value = "/tmp/pgha-devcluster"
    )]
    state_dir: PathBuf,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a cluster and print how to connect to it.
    Up {
        /// Number of members.
        #[arg(long, default_value_t = 3)]
        members: usize,
        /// Number of etcd members: 1, 3 or 5.
        #[arg(long, default_value_t = 3)]
        etcd_members: usize,
        /// Patroni to run: `3` (Debian's), `4` (the 4.x venv) or a path.
        #[arg(long, env = "PGHA_PATRONI", default_value = "3")]
        patroni: String,
        /// Turn on Patroni's synchronous_mode.
        #[arg(long)]
        synchronous_mode: bool,
        /// With --synchronous-mode: synchronous_mode_strict.
        #[arg(long, requires = "synchronous_mode")]
        strict: bool,
        /// TLS on PostgreSQL and HTTPS on the REST API, with a CA generated for the cluster.
        #[arg(long)]
        tls: bool,
        /// WAL archiving and a pgBackRest repository (stanza = the scope), for `pgha backup …`.
        #[arg(long)]
        pgbackrest: bool,
    },
    /// Show the members, their roles and lag.
    Status,
    /// Stop everything the cluster started and remove its directory.
    Down,
    /// Stop and remove test clusters (under `$PGHA_TESTKIT_DIR`) left behind by killed test runs.
    Reap,
    /// Control one node, for scripts (e.g. the `[pitr]` commands of `pgha`).
    #[command(subcommand)]
    Node(NodeAction),
}

#[derive(Subcommand)]
enum NodeAction {
    /// Stop a member's Patroni (and PostgreSQL) cleanly.
    Stop { member: String },
    /// Start a member's Patroni.
    Start { member: String },
    /// Empty a stopped member's data directory.
    ClearData { member: String },
    /// Set (JSON object) or remove (`null`) the member's `pgha_pitr` bootstrap method.
    SetBootstrap { member: String, method: String },
    /// Remove the cluster's keys from etcd.
    ClearDcs,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgha-devcluster: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Up {
            members,
            etcd_members,
            patroni,
            synchronous_mode,
            strict,
            tls,
            pgbackrest,
        } => {
            let flavor = match patroni.as_str() {
                "3" | "debian" => PatroniFlavor::Debian,
                "4" => PatroniFlavor::V4,
                path => PatroniFlavor::Binary(path.into()),
            };
            eprintln!(
                "starting a {members}-member cluster ({etcd_members} etcd members) in {} …",
                cli.state_dir.display()
            );
            let cluster = LocalCluster::builder()
                .members(members)
                .etcd_members(etcd_members)
                .patroni(flavor)
                .base_dir(&cli.state_dir)
                .persistent(true)
                .synchronous_mode(synchronous_mode, strict)
                .tls(tls)
                .pgbackrest(pgbackrest)
                .start()
                .await?;
            let info = cluster.info();
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                let c = &info.credentials;
                println!("cluster {} is up (Patroni {})", info.scope, info.patroni_version);
                println!(
                    "patroni urls: {}",
                    info.members
                        .iter()
                        .map(|m| m.api_url.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                );
                println!("etcd urls: {}", info.etcd_urls.join(","));
                for m in &info.members {
                    println!(
                        "  {:<6} postgresql://{}:{}@{}:{}/{}",
                        m.name,
                        c.app.username,
                        c.app.password.expose(),
                        m.host,
                        m.port,
                        info.database
                    );
                }
                if let Some(rest) = &c.rest {
                    println!(
                        "REST auth (unsafe endpoints): {}:{}",
                        rest.username,
                        rest.password.expose()
                    );
                }
                println!("superuser: {}:{}", c.superuser.username, c.superuser.password.expose());
                if let Some(config) = &info.pgbackrest_config {
                    println!("pgbackrest: --config={} --stanza={}", config.display(), info.scope);
                }
                println!("stop it with: pgha-devcluster down");
            }
            cluster.detach();
        }
        Command::Status => {
            let cluster = LocalCluster::attach(&cli.state_dir)?;
            let members = cluster.cluster_status().await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&members)?);
            } else {
                println!("cluster {} (Patroni {})", cluster.scope(), cluster.patroni_version());
                println!(
                    "{:<8} {:<14} {:<12} {:>8} {:>10}",
                    "member", "role", "state", "timeline", "lag bytes"
                );
                for m in members {
                    let tl = m.timeline.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
                    let lag = m.lag.map(|l| l.to_string()).unwrap_or_else(|| "-".into());
                    println!("{:<8} {:<14} {:<12} {:>8} {:>10}", m.name, m.role, m.state, tl, lag);
                }
            }
        }
        Command::Down => {
            let cluster = LocalCluster::attach(&cli.state_dir)?;
            let procs = cluster.processes();
            cluster.shutdown();
            let left: Vec<_> = procs.iter().filter(|p| p.is_alive()).collect();
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({ "stopped": procs.len(), "still_running": left.len() })
                );
            } else {
                println!("stopped {} processes", procs.len());
            }
            if !left.is_empty() {
                return Err(format!("{} processes are still running: {left:?}", left.len()).into());
            }
        }
        Command::Reap => pgha_testkit::reap_stale_clusters(),
        Command::Node(action) => {
            let cluster = LocalCluster::attach(&cli.state_dir)?;
            match action {
                NodeAction::Stop { member } => cluster.stop_node(&member)?,
                NodeAction::Start { member } => cluster.start_node(&member)?,
                NodeAction::ClearData { member } => cluster.clear_data_dir(&member)?,
                NodeAction::SetBootstrap { member, method } => {
                    let method: serde_json::Value = serde_json::from_str(&method)?;
                    let method = (!method.is_null()).then_some(&method);
                    cluster.set_bootstrap_method(&member, "pgha_pitr", method)?;
                }
                NodeAction::ClearDcs => cluster.clear_dcs()?,
            }
            // `attach` never tears down; the cluster's owner (a test, or nobody) is unchanged.
        }
    }
    Ok(())
}
