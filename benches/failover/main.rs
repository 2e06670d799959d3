//! The pgha benchmark: failover side by side with the usual alternatives, steady-state overhead,
//! and pgvector workloads. See BENCHMARKS.md for the method and recorded results.
//!
//! ```text
//! cargo bench --bench failover                      # everything, 3 trials per fault (~10 min)
//! cargo bench --bench failover -- --json            # one JSON document on stdout
//! cargo bench --bench failover -- --quick           # smoke run (make test runs it, debug build)
//! cargo bench --bench failover -- --faults kill --trials 5 --skip-steady --skip-vector
//! PGHA_DSN=postgresql://u:p@h1,h2/db cargo bench --bench failover -- --patroni http://h1:8008,… \
//!     [--haproxy-primary h:5000 --haproxy-replicas h:5001]     # existing cluster: switchover only
//! ```

use anyhow::bail;
use clap::Parser;

mod failover;
mod report;
mod steady;
mod target;
mod vector;

use failover::{failover_section, FailoverRow};
use report::{machine, print_report, Report};
use steady::steady_section;
use target::target;
use vector::vector_section;

#[derive(Debug, Parser)]
#[command(about = "pgha benchmarks: failover side by side, steady-state overhead, pgvector")]
struct Args {
    /// Smoke mode: one short trial, small data (what `make test` runs).
    #[arg(long)]
    quick: bool,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    json: bool,
    /// Trials per fault.
    #[arg(long, default_value_t = 3)]
    trials: usize,
    /// Faults to inject: kill, switchover, freeze.
    #[arg(long, value_delimiter = ',', default_value = "kill,switchover,freeze")]
    faults: Vec<String>,
    /// Skip the steady-state overhead section.
    #[arg(long)]
    skip_steady: bool,
    /// Skip the pgvector section.
    #[arg(long)]
    skip_vector: bool,
    /// Skip the failover section.
    #[arg(long)]
    skip_failover: bool,
    /// Patroni REST URLs of an existing cluster (comma-separated).
    #[arg(long, env = "PGHA_PATRONI_URLS", value_delimiter = ',')]
    patroni: Vec<String>,
    /// libpq URL with credentials for an existing cluster.
    #[arg(long, env = "PGHA_DSN", hide_env_values = true)]
    dsn: Option<String>,
    /// Patroni basic-auth user (switchover on an existing cluster).
    #[arg(long, env = "PGHA_PATRONI_USER")]
    patroni_user: Option<String>,
    /// Patroni basic-auth password: from PGHA_PATRONI_PASSWORD only (a command line is visible to
    /// every local user).
    #[arg(skip = std::env::var("PGHA_PATRONI_PASSWORD").ok())]
    patroni_password: Option<String>,
    /// HAProxy's primary port on an existing cluster (`host:port`).
    #[arg(long)]
    haproxy_primary: Option<String>,
    /// HAProxy's replicas port on an existing cluster (`host:port`).
    #[arg(long)]
    haproxy_replicas: Option<String>,
    /// Draw each fault's first trial as an SVG: acknowledged writes per 100 ms of every client,
    /// the fault, the promotion and the errors.
    #[arg(long, value_name = "FILE")]
    plot: Option<std::path::PathBuf>,
    /// Cargo passes `--bench` to bench targets.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into()))
        .with_writer(std::io::stderr)
        .init();
    let matches = <Args as clap::CommandFactory>::command().get_matches();
    let args = <Args as clap::FromArgMatches>::from_arg_matches(&matches)?;
    let dsn_on_command_line = matches.value_source("dsn") == Some(clap::parser::ValueSource::CommandLine);
    pgha::harness::refuse_password_on_command_line(args.dsn.as_deref(), dsn_on_command_line)?;
    let target = target(&args).await?;
    let mut failed_trials = Vec::new();
    let failover = if args.skip_failover {
        Vec::new()
    } else {
        failover_section(&target, &args, &mut failed_trials).await?
    };
    let steady = if args.skip_steady {
        Vec::new()
    } else {
        steady_section(&target, &args).await?
    };
    let vector = if args.skip_vector {
        None
    } else {
        Some(vector_section(&target, &args).await?)
    };
    let report = Report {
        setup: target.description.clone(),
        quick: args.quick,
        machine: machine(),
        failover,
        failed_trials,
        steady,
        vector,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    target.client.shutdown().await;
    if let Some(cluster) = &target.cluster {
        cluster.shutdown();
    }
    // The smoke run checks what must hold whatever the timings.
    if args.quick {
        let pgha: Vec<&FailoverRow> = report.failover.iter().filter(|r| r.client == "pgha-client").collect();
        if !report.failed_trials.is_empty() || pgha.iter().any(|r| r.errors_surfaced > 0 || r.stale_reads > 0) {
            bail!("pgha-client surfaced errors or stale reads: {pgha:?}");
        }
    }
    Ok(())
}
