//! The fault-injection run, short: every fault kind once, in a seeded order, in asynchronous and
//! in synchronous (strict) mode, with every invariant checked (see RELIABILITY.md). Longer runs:
//! `cargo run --release --example chaos -- --faults 60 --seed N [--synchronous]`, or
//! `PGHA_CHAOS_FAULTS=60 PGHA_CHAOS_SEED=N` for these tests; `PGHA_CHAOS_HISTORY=DIR` writes each
//! run's operation history there as JSON lines.
//!
//! These runs use Patroni 4.x: on Debian's Patroni 3.0.2 a leader frozen past the TTL can take
//! the leader key back on its old timeline after the thaw, which pgha fences (it never writes
//! to a primary below a timeline it has seen, until no member is on that timeline any more) but
//! which only an operator can heal — see RELIABILITY.md. `PGHA_PATRONI=3` runs them on 3.0.2
//! anyway.

use pgha::chaos::{self, ChaosConfig, FaultKind};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn run(synchronous: bool, seed: u64) {
    pgha::testkit::init_test_tracing("pgha::chaos=info");
    let cluster = chaos::cluster_builder(synchronous).start().await.expect("cluster");
    let config = ChaosConfig {
        seed: env_or("PGHA_CHAOS_SEED", seed),
        faults: env_or("PGHA_CHAOS_FAULTS", 0)
            .try_into()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or(FaultKind::ALL.len()),
        history: std::env::var_os("PGHA_CHAOS_HISTORY").map(|dir| {
            std::path::PathBuf::from(dir).join(format!("chaos-{}.jsonl", if synchronous { "sync" } else { "async" }))
        }),
        ..ChaosConfig::default()
    };
    let report = chaos::run(&cluster, &config).await.expect("the run completes");
    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    assert_eq!(report.faults.len(), config.faults);
    assert!(report.writes_acked > 100, "the workload ran: {report:?}");
    assert!(
        report.violations.is_empty(),
        "invariants failed: {:#?}",
        report.violations
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_kind_asynchronous_replication() {
    run(false, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_kind_synchronous_strict_replication() {
    run(true, 2).await;
}
