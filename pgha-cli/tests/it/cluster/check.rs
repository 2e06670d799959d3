//! `pgha check` (and `Admin::check`) follow the cluster's real health: zero when healthy,
//! non-zero when a replica's replay is stuck past the threshold or a replica is down — as a
//! Nagios plugin's output with performance data, as JSON, and in the Prometheus text format.

use std::time::Duration;

use crate::common::pgha;
use pgha_admin::{exit_codes, CheckOptions, Level};
use serde_json::Value;

async fn check(env: &[(String, String)], extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--format", "json", "check"];
    args.extend_from_slice(extra);
    let r = pgha(env, &args).await;
    let json = r.json();
    (r.code, json)
}

fn level_of(report: &Value, name: &str, member: &str) -> Vec<String> {
    report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["name"] == name && c["member"] == member)
        .filter_map(|c| c["level"].as_str().map(str::to_owned))
        .collect()
}

/// Polls `pgha check` until it exits with `code` (the cluster converges on its own schedule).
async fn eventually(env: &[(String, String)], extra: &[&str], code: i32) -> Value {
    let mut last = Value::Null;
    for _ in 0..60 {
        let (c, report) = check(env, extra).await;
        if c == code {
            return report;
        }
        last = report;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("pgha check never exited {code}; last report: {last:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_exit_code_follows_cluster_health() {
    let cluster = crate::common::cluster().await;
    let env = crate::common::env(&cluster);
    let admin = cluster.admin().expect("admin");
    let leader = cluster.leader().await.expect("leader");
    let replica = cluster
        .member_names()
        .into_iter()
        .find(|m| *m != leader)
        .expect("a replica");

    let (code, report) = check(&env, &[]).await;
    assert_eq!(code, exit_codes::OK, "a healthy cluster: {report:#}");
    assert_eq!(admin.check(&CheckOptions::default()).await.level, Level::Ok);
    for name in ["leader", "archiving", "disk"] {
        assert!(
            report["checks"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["name"] == name),
            "{name} was not checked: {report:#}"
        );
    }
    let nagios = pgha(&env, &["check"]).await;
    assert_eq!(nagios.code, exit_codes::OK, "{nagios:?}");
    let first = nagios.stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("PGHA OK - leader {leader}, 2 standbys streaming | ")),
        "{nagios:?}"
    );
    assert!(
        first.contains(&format!("'replay_lag_bytes_{replica}'=")) && first.contains("B;16777216;268435456;0;"),
        "performance data with the thresholds: {first}"
    );

    // Replay stuck on one replica while the leader writes 8 MB: its replay lag passes the
    // threshold (Patroni's own `lag` stays 0: it measures received WAL).
    cluster.pause_replay(&replica).expect("pause replay");
    let db = crate::common::superuser(&cluster).await;
    db.batch_execute("CREATE TABLE filler AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 8000) g")
        .await
        .expect("write WAL");
    let thresholds = ["--lag-warning-bytes", "1000000", "--lag-critical-bytes", "1000000000"];
    let report = eventually(&env, &thresholds, exit_codes::WARNING).await;
    assert_eq!(level_of(&report, "lag", &replica), ["WARNING"], "{report:#}");
    // The same in the Prometheus text format: written (exit 0), the verdict inside.
    let mut args = vec!["--format", "prometheus", "check"];
    args.extend_from_slice(&thresholds);
    let prom = pgha(&env, &args).await;
    assert_eq!(prom.code, exit_codes::OK, "{prom:?}");
    assert!(
        prom.stdout
            .contains("# TYPE pgha_check_status gauge\npgha_check_status 1\n"),
        "{prom:?}"
    );
    let lag_sample = format!("pgha_replay_lag_bytes{{member=\"{replica}\"}} ");
    let lag: f64 = prom
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix(lag_sample.as_str()))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {lag_sample}: {prom:?}"));
    assert!(lag > 1_000_000.0, "{lag}");
    for line in prom.stdout.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("a sample is a series and a value");
        assert!(series.starts_with("pgha_") && value.parse::<f64>().is_ok(), "{line}");
    }
    let status = admin.status().await.expect("status");
    let patroni_lag = status.members.iter().find(|m| m.name == replica).and_then(|m| m.lag);
    println!("Patroni reports lag {patroni_lag:?} for the stuck replica; pgha measured {report:#}");
    cluster.resume_replay(&replica).expect("resume replay");
    eventually(&env, &thresholds, exit_codes::OK).await;

    // A replica down.
    cluster.stop_node(&replica).expect("stop replica");
    let (code, report) = check(&env, &[]).await;
    assert!(
        code == exit_codes::WARNING || code == exit_codes::CRITICAL,
        "a stopped replica must not pass: {code} {report:#}"
    );
    let human = pgha(&env, &["check"]).await;
    assert_eq!(human.code, code);
    assert!(human.stdout.contains(&replica), "{human:?}");
    cluster.start_node(&replica).expect("start replica");
    cluster
        .wait_streaming(&replica, Duration::from_secs(90))
        .await
        .expect("replica streams again");
    eventually(&env, &[], exit_codes::OK).await;

    // Disk thresholds from flags: any use at all is a warning.
    let (code, report) = check(&env, &["--disk-warning-pct", "0.001", "--disk-critical-pct", "99.999"]).await;
    assert_eq!(code, exit_codes::WARNING, "{report:#}");
    assert_eq!(level_of(&report, "disk", &leader), ["WARNING"], "{report:#}");
    let r = pgha(&env, &["--format", "prometheus", "status"]).await;
    assert_eq!(r.code, exit_codes::USAGE, "{r:?}");

    // The same metrics over HTTP: `pgha exporter`, scraped twice at once, stopped by SIGTERM.
    exporter_serves_the_check(&env, &leader).await;

    // Nothing reachable: CRITICAL, not a crash and not UNKNOWN.
    let r = pgha(&env, &["--patroni", "http://127.0.0.1:1", "check"]).await;
    assert_eq!(r.code, exit_codes::CRITICAL, "{r:?}");
}

/// Starts `pgha exporter` (with the disk thresholds that make any use a warning), scrapes it
/// twice at once, and stops it with SIGTERM, which must end it cleanly.
async fn exporter_serves_the_check(env: &[(String, String)], leader: &str) {
    use tokio::io::AsyncBufReadExt;
    let mut exporter = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgha"))
        .args([
            "exporter",
            "--listen",
            "127.0.0.1:0",
            "--disk-warning-pct",
            "0.001",
            "--disk-critical-pct",
            "99.999",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("pgha exporter starts");
    let mut stderr = tokio::io::BufReader::new(exporter.stderr.take().expect("stderr")).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = stderr.next_line().await.expect("stderr") {
            if let Some(url) = line.strip_prefix("pgha: exporter listening on ") {
                return url.to_owned();
            }
        }
        panic!("the exporter ended without listening");
    })
    .await
    .expect("the exporter says where it listens");
    let http = pgha_admin::pgha_client::reqwest::Client::new();
    let scrape = || async {
        let r = http
            .get(&url)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .expect("scrape");
        let kind = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (r.status().as_u16(), kind, r.text().await.expect("body"))
    };
    let (a, b) = tokio::join!(scrape(), scrape());
    for (status, kind, body) in [a, b] {
        assert_eq!(status, 200, "{body}");
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        assert!(
            body.contains("# TYPE pgha_check_status gauge\npgha_check_status 1\n"),
            "{body}"
        );
        assert!(body.contains(&format!("member=\"{leader}\"")), "{body}");
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(exporter.id().expect("a pid")).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = tokio::time::timeout(Duration::from_secs(30), exporter.wait())
        .await
        .expect("the exporter stops on SIGTERM")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}
