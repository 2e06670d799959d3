//! The fault-injection run from the command line: a seeded schedule of faults against a local
//! cluster under a pgha-client workload, then the invariants (see RELIABILITY.md).
//!
//! ```text
//! cargo run --release --example chaos -- --faults 60 --seed 7                 # asynchronous
//! cargo run --release --example chaos -- --faults 60 --seed 7 --synchronous   # synchronous_mode_strict
//! cargo run --release --example chaos -- --long 2h --seed 7                    # faults for two hours
//! cargo run --release --example chaos -- --seed 7 --history ops.jsonl         # keep the history
//! ```
//! Runs on Patroni 4.x unless `PGHA_PATRONI` names another. Prints the report as JSON on stdout;
//! exits 1 if an invariant failed.

use clap::Parser;
use pgha::chaos::{self, ChaosConfig};

#[derive(Parser)]
struct Args {
    /// Seed of the schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of faults (at least).
    #[arg(long, default_value_t = pgha::chaos::FaultKind::ALL.len())]
    faults: usize,
    /// Long mode: keep injecting faults for this long (`90m`, `2h`).
    #[arg(long, value_parser = pgha::client::parse_duration)]
    long: Option<std::time::Duration>,
    /// Patroni synchronous_mode with synchronous_mode_strict.
    #[arg(long)]
    synchronous: bool,
    /// Only these fault kinds (comma-separated: kill-leader, kill-postmaster, freeze-leader,
    /// etcd-restart, switchover, restart-standby, pause-replay, rest-api-down, partition-leader,
    /// zombie-primary, kill-sessions, kill-etcd-leader, freeze-etcd-leader,
    /// second-fault-while-healing).
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    /// Write the operation history to FILE as JSON lines (one operation per line).
    #[arg(long, value_name = "FILE")]
    history: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "pgha=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let cluster = chaos::cluster_builder(args.synchronous).start().await?;
    let mut config = ChaosConfig {
        seed: args.seed,
        faults: args.faults,
        duration: args.long,
        history: args.history.clone(),
        ..ChaosConfig::default()
    };
    if !args.kinds.is_empty() {
        config.kinds = args
            .kinds
            .iter()
            .map(|k| serde_json::from_value(serde_json::Value::String(k.clone())))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("--kinds: {e}"))?;
    }
    let report = match chaos::run(&cluster, &config).await {
        Ok(report) => report,
        Err(e) => {
            cluster.keep_logs();
            eprintln!("the run stopped; cluster logs kept in {}", cluster.base_dir().display());
            return Err(e);
        }
    };
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !report.violations.is_empty() {
        cluster.keep_logs();
        eprintln!(
            "invariants failed: {:#?}\ncluster logs kept in {}",
            report.violations,
            cluster.base_dir().display()
        );
        drop(cluster);
        std::process::exit(1);
    }
    cluster.shutdown();
    Ok(())
}
