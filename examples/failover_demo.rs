//! The failover demo: what an application using pgha-client feels when the leader dies.
//!
//! A pgvector workload runs through pgha-client — inserts on the primary, k-NN searches on
//! standbys under a 2 s staleness bound, a heartbeat that proves every read's staleness — while
//! the leader is killed with kill -9, and then, in a second round, switched over. For each round
//! it prints Patroni's promotion time (measured by a probe independent of pgha), the longest
//! write gap, the errors the application saw, where reads ran, and acknowledged writes lost.
//! The local cluster uses Patroni's synchronous mode unless `--async` is given; the demo exits
//! non-zero only when a promise of pgha is broken (an error, a stale read, a hung operation, or a
//! lost write in synchronous mode).
//!
//! ```text
//! cargo run --example failover_demo                     # a fresh local 3-node cluster (make demo)
//! cargo run --example failover_demo -- --async          # the same on asynchronous replication
//! cargo run --example failover_demo -- --json           # one JSON object per round
//! cargo run --example failover_demo -- --plot f.svg      # and the rounds drawn as an SVG
//! PGHA_DSN=postgresql://app:secret@10.0.0.1,10.0.0.2/app cargo run --example failover_demo -- \
//!     --patroni http://10.0.0.1:8008,http://10.0.0.2:8008 --fault switchover
//! cargo run --example failover_demo -- --patroni … --fault none --duration 60s
//! ```
//! Against an existing cluster the demo injects only what the REST API allows (a switchover,
//! with `--patroni-user` or `PGHA_PATRONI_USER` and `PGHA_PATRONI_PASSWORD`), or nothing
//! (`--fault none`: inject the fault yourself while it measures). Passwords come from the
//! environment only: a `--dsn` that holds one is refused, since every local user can read a
//! command line.

use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use pgha::client::{Client, ClientBuilder, LagBound};
use pgha::harness::{self, Fault, Injector, RestInjector, RoundReport, WorkloadConfig};
use pgha::testkit::LocalCluster;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FaultArg {
    /// kill -9 of the leader, then a switchover (local cluster only).
    All,
    /// kill -9 of the leader (local cluster only).
    Kill,
    /// A switchover through the REST API.
    Switchover,
    /// No fault: measure for --duration while someone else injects one.
    None,
}

#[derive(Debug, Parser)]
#[command(about = "What an application feels during a Patroni failover, through pgha-client")]
struct Args {
    /// Patroni REST URLs of an existing cluster (comma-separated); without it, a local cluster is started.
    #[arg(long, env = "PGHA_PATRONI_URLS", value_delimiter = ',')]
    patroni: Vec<String>,
    /// libpq URL with the database credentials (hosts are used as seeds), e.g.
    /// postgresql://app:secret@10.0.0.1,10.0.0.2/app.
    #[arg(long, env = "PGHA_DSN", hide_env_values = true)]
    dsn: Option<String>,
    /// Patroni basic-auth user (for the switchover).
    #[arg(long, env = "PGHA_PATRONI_USER")]
    patroni_user: Option<String>,
    /// Patroni basic-auth password: from PGHA_PATRONI_PASSWORD only (a command line is visible to
    /// every local user).
    #[arg(skip = std::env::var("PGHA_PATRONI_PASSWORD").ok())]
    patroni_password: Option<String>,
    /// Fault(s) to inject.
    #[arg(long, value_enum)]
    fault: Option<FaultArg>,
    /// How long `--fault none` measures (e.g. 60s, 2m).
    #[arg(long, default_value = "60s", value_parser = pgha::client::parse_duration)]
    duration: Duration,
    /// Members of the local cluster.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Asynchronous replication for the local cluster (the default is Patroni's synchronous
    /// mode, where an acknowledged write cannot be lost): acknowledged writes the old primary had
    /// not replicated are lost in a kill -9 failover — reported and explained, not a failure.
    #[arg(long = "async")]
    asynchronous: bool,
    /// Concurrent writers and readers.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Print one JSON object per round instead of a table.
    #[arg(long)]
    json: bool,
    /// Also draw the rounds as an SVG: acknowledged writes per 100 ms, the fault, the promotion
    /// and the errors.
    #[arg(long, value_name = "FILE")]
    plot: Option<std::path::PathBuf>,
}

fn print_table(reports: &[RoundReport], asynchronous: bool) {
    let secs = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}s"));
    println!(
        "\n{:<15} {:>10} {:>10} {:>12} {:>7} {:>9} {:>9} {:>6} {:>7} {:>5}",
        "fault", "promotion", "write gap", "gap-promo", "errors", "rd stby", "rd prim", "stale", "acked", "lost"
    );
    for r in reports {
        println!(
            "{:<15} {:>10} {:>10} {:>12} {:>7} {:>9} {:>9} {:>6} {:>7} {:>5}",
            r.fault,
            secs(r.promotion_s),
            secs(Some(r.write_gap_s)),
            secs(r.gap_minus_promotion_s),
            r.errors_surfaced,
            r.reads_standby,
            r.reads_primary,
            r.stale_reads,
            r.writes_acked,
            r.acked_writes_lost
        );
        for e in &r.error_samples {
            println!("    error: {e}");
        }
        for e in &r.stale_samples {
            println!("    stale: {e}");
        }
        if r.acked_writes_lost > 0 || r.heartbeats_lost > 0 {
            println!(
                "    lost: {} inserts and {} heartbeats acknowledged by {} were not on {} when it was promoted{}",
                r.acked_writes_lost,
                r.heartbeats_lost,
                r.primary_before.as_deref().unwrap_or("the old primary"),
                r.primary_after.as_deref().unwrap_or("the new primary"),
                if asynchronous {
                    " (asynchronous replication: a commit is acknowledged before a standby has it; \
                     reads that missed only these are not stale)"
                } else {
                    " — in synchronous mode this must not happen"
                }
            );
        }
    }
    println!(
        "\npromotion = fault until a new primary accepted writes (independent probe); write gap = longest time \
         without an acknowledged write;\nerrors = errors returned to the application; stale = reads older than \
         their 2 s bound (checked against the heartbeats that survived); lost = acknowledged writes missing afterwards."
    );
}

async fn run_rounds<I: Injector>(
    client: &Client,
    injector: &I,
    faults: &[Fault],
    config: &WorkloadConfig,
    targets: impl Fn() -> Vec<(String, tokio_postgres::Config)>,
    json: bool,
) -> anyhow::Result<Vec<RoundReport>> {
    harness::prepare(client).await?;
    let mut reports = Vec::new();
    for &fault in faults {
        if !json {
            eprintln!("round: {} …", fault.name());
        }
        let report = harness::run_round(client, injector, fault, config, targets()).await?;
        if json {
            println!("{}", serde_json::to_string(&report)?);
        }
        reports.push(report);
    }
    Ok(reports)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // deadpool-postgres logs every connection a failover breaks; pgha handles them.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,deadpool.postgres=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let matches = <Args as clap::CommandFactory>::command().get_matches();
    let args = <Args as clap::FromArgMatches>::from_arg_matches(&matches)?;
    let dsn_on_command_line = matches.value_source("dsn") == Some(clap::parser::ValueSource::CommandLine);
    harness::refuse_password_on_command_line(args.dsn.as_deref(), dsn_on_command_line)?;
    let config = WorkloadConfig {
        writers: args.concurrency,
        readers: args.concurrency,
        read_bound: Duration::from_secs(2),
    };
    let base = |b: ClientBuilder| {
        b.lag_bound(LagBound::time(config.read_bound))
            .application_name("pgha-failover-demo")
    };

    let reports = if args.patroni.is_empty() {
        let faults = match args.fault.unwrap_or(FaultArg::All) {
            FaultArg::All => vec![Fault::KillLeader, Fault::Switchover],
            FaultArg::Kill => vec![Fault::KillLeader],
            FaultArg::Switchover => vec![Fault::Switchover],
            FaultArg::None => vec![Fault::None(args.duration)],
        };
        let cluster = LocalCluster::builder()
            .members(args.members)
            .synchronous_mode(!args.asynchronous, false)
            .start()
            .await?;
        let t = cluster.timing();
        if !args.json {
            eprintln!(
                "local cluster {}: Patroni {}, {} members, {} replication, ttl {}s loop_wait {}s retry_timeout {}s",
                cluster.scope(),
                cluster.patroni_version(),
                args.members,
                if args.asynchronous {
                    "asynchronous"
                } else {
                    "synchronous"
                },
                t.ttl,
                t.loop_wait,
                t.retry_timeout
            );
        }
        let creds = cluster.credentials();
        let client = base(harness::client_builder(&cluster)).connect().await?;
        let (user, password, db) = (
            creds.app.username.clone(),
            creds.app.password.expose().to_owned(),
            cluster.database(),
        );
        let targets = || harness::probe_targets(&client, &user, &password, &db);
        let reports = run_rounds(&client, &cluster, &faults, &config, targets, args.json).await?;
        client.shutdown().await;
        cluster.shutdown();
        reports
    } else {
        let dsn = args
            .dsn
            .as_deref()
            .context("--dsn (or PGHA_DSN) is required with --patroni")?;
        let (user, password, db) = harness::dsn_credentials(dsn)?;
        let faults = match args.fault.unwrap_or(FaultArg::Switchover) {
            FaultArg::Switchover => vec![Fault::Switchover],
            FaultArg::None => vec![Fault::None(args.duration)],
            FaultArg::Kill | FaultArg::All => bail!("against an existing cluster only --fault switchover or none"),
        };
        let mut builder = Client::builder().url(dsn).patroni(args.patroni.clone());
        let auth = args.patroni_user.clone().zip(args.patroni_password.clone());
        if let Some((u, p)) = &auth {
            builder = builder.patroni_auth(u.clone(), p.as_str());
        }
        let builder = base(builder);
        let client = builder.clone().connect().await?;
        let injector = RestInjector::new(builder)?;
        let targets = || harness::probe_targets(&client, &user, &password, &db);
        let reports = run_rounds(&client, &injector, &faults, &config, targets, args.json).await?;
        client.shutdown().await;
        reports
    };
    if !args.json {
        print_table(&reports, args.asynchronous);
    }
    if let Some(path) = &args.plot {
        let rounds: Vec<(String, Vec<RoundReport>)> =
            reports.iter().map(|r| (r.fault.clone(), vec![r.clone()])).collect();
        harness::failover_svg(path, &rounds)?;
        eprintln!("failover picture: {}", path.display());
    }
    // Non-zero only when a promise is broken: an error reached the application, a read was
    // staler than its bound, an operation hung, or (synchronous replication, the local
    // cluster's default) an acknowledged write was lost.
    let synchronous_cluster = args.patroni.is_empty() && !args.asynchronous;
    if reports.iter().any(|r| {
        r.errors_surfaced > 0
            || r.stale_reads > 0
            || r.ops_stuck > 0
            || (synchronous_cluster && r.acked_writes_lost > 0)
    }) {
        std::process::exit(1);
    }
    Ok(())
}
