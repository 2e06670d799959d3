//! Patroni 4.x (whose REST API differs from 3.0's: `role: primary`, `scope` in /cluster,
//! `replay_lag`…) behind HTTPS with basic auth and client certificates (`verify_client:
//! required`), and PostgreSQL with TLS verified against the cluster's CA: the same commands work
//! with `--patroni-cert`/`--patroni-key`, and without the CA or the certificate they fail with a
//! clear error.

use crate::common::{pgha, pgha_json};
use pgha_admin::exit_codes;
use pgha_testkit::{LocalCluster, PatroniFlavor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_4_over_https_with_tls_to_postgres() {
    crate::common::init_tracing();
    let cluster = LocalCluster::builder()
        .members(3)
        .patroni(PatroniFlavor::V4)
        .tls(true)
        .client_certificates(true)
        .start()
        .await
        .expect("cluster");
    let ca = cluster.ca_file().expect("a CA").display().to_string();
    assert!(cluster.patroni_urls().iter().all(|u| u.starts_with("https://")));
    let mut env: Vec<(String, String)> = crate::common::env(&cluster)
        .into_iter()
        .filter(|(k, _)| k != "PGHA_SSLMODE")
        .collect();
    let without_ca = env.clone();
    let (cert, key) = cluster.client_cert_files().expect("a client certificate");
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    env.extend([
        ("PGHA_PATRONI_CA".to_owned(), ca.clone()),
        ("PGHA_SSLMODE".into(), "verify-full".into()),
        ("PGHA_SSLROOTCERT".into(), ca),
    ]);

    // Without a client certificate Patroni refuses the TLS handshake: unreachable, said so.
    let refused = pgha(&env, &["status"]).await;
    assert_eq!(refused.code, exit_codes::UNREACHABLE, "{refused:?}");
    assert!(refused.stderr.to_lowercase().contains("certificate"), "{refused:?}");
    // With it on the command line; every later command takes it from the environment.
    let status = pgha_json(&env, &["--patroni-cert", &cert, "--patroni-key", &key, "status"]).await;
    env.extend([
        ("PGHA_PATRONI_CERT".to_owned(), cert),
        ("PGHA_PATRONI_KEY".to_owned(), key),
    ]);
    assert!(
        status["patroni_version"].as_str().is_some_and(|v| v.starts_with('4')),
        "{status}"
    );
    let leader = status["leader"].as_str().expect("leader").to_owned();
    assert_eq!(pgha(&env, &["check"]).await.code, exit_codes::OK);
    let lag = pgha_json(&env, &["replication", "lag"]).await;
    assert!(
        lag["standbys"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|s| s["streaming"] == true),
        "{lag}"
    );

    pgha(&env, &["pause"]).await.ok();
    // In maintenance mode replay may be paused by hand (Patroni would undo it otherwise).
    let replica = status["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["name"].as_str())
        .find(|n| *n != leader)
        .expect("a replica")
        .to_owned();
    pgha(&env, &["replication", "pause-replay", &replica]).await.ok();
    let lag = pgha_json(&env, &["replication", "lag"]).await;
    let paused = lag["standbys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["member"] == replica.as_str())
        .map(|s| s["replay_paused"].clone());
    assert_eq!(paused, Some(serde_json::json!(true)), "{lag}");
    pgha(&env, &["replication", "resume-replay", &replica]).await.ok();
    pgha(&env, &["resume"]).await.ok();

    let switched = pgha_json(&env, &["--yes", "switchover"]).await;
    assert_ne!(switched["new_leader"].as_str(), Some(leader.as_str()), "{switched}");
    cluster
        .wait_streaming(&leader, std::time::Duration::from_secs(90))
        .await
        .expect("the old leader rejoins as a replica");
    // Confirmed on a terminal, as an operator would.
    let restarted = crate::common::pgha_on_terminal(&env, &["--format", "json", "restart", "--role", "replica"], "y")
        .await
        .ok();
    assert!(
        restarted
            .stderr
            .contains("restart PostgreSQL on every replica. Proceed? [y/N]"),
        "{restarted:?}"
    );
    let restarted = restarted.json();
    let outcomes: Vec<&str> = restarted
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["outcome"].as_str())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "done").count(), 2, "{restarted}");
    assert_eq!(
        outcomes.iter().filter(|o| **o == "skipped").count(),
        1,
        "the leader is filtered out: {restarted}"
    );

    // Everything Patroni-side from one member's Patroni configuration file, as `patronictl -c`
    // takes it: REST address, credentials, CA and client certificate, the superuser (TLS to
    // PostgreSQL stays the client's own setting).
    let patroni_yml = cluster.patroni_config_file(&leader).expect("patroni.yml");
    let ca = cluster.ca_file().expect("a CA").display().to_string();
    let only_tls = [
        ("PGHA_SSLMODE".to_owned(), "verify-full".to_owned()),
        ("PGHA_SSLROOTCERT".to_owned(), ca),
    ];
    let from_file = pgha_json(&only_tls, &["-c", &patroni_yml.display().to_string(), "status"]).await;
    assert_eq!(from_file["members"].as_array().map(Vec::len), Some(3), "{from_file}");
    let lag = pgha_json(
        &only_tls,
        &[
            "--patroni-config",
            &patroni_yml.display().to_string(),
            "replication",
            "lag",
        ],
    )
    .await;
    assert_eq!(
        lag["standbys"].as_array().map(Vec::len),
        Some(2),
        "SQL as the superuser too: {lag}"
    );

    // Without the CA: a certificate error, as an "unreachable" exit code, not a hang or a panic.
    let r = pgha(&without_ca, &["status"]).await;
    assert_eq!(r.code, exit_codes::UNREACHABLE, "{r:?}");
    assert!(
        r.stderr.contains("certificate") || r.stderr.contains("UnknownIssuer"),
        "{r:?}"
    );
}
