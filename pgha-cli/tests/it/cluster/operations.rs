//! Patroni operations through the `pgha` CLI on a real cluster: switchover (planned, scheduled,
//! cancelled), maintenance mode, restarts (scheduled, cancelled, pending-only), reload,
//! configuration patches, reinitialize, failover and the rolling restart.

use std::time::Duration;

use crate::common::{pgha, pgha_json, pgha_on_terminal};
use pgha_admin::exit_codes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_operations_change_the_cluster_as_asked() {
    let cluster = crate::common::cluster().await;
    let env = crate::common::env(&cluster);
    let leader = cluster.leader().await.expect("leader");
    let members = cluster.member_names();
    let others: Vec<String> = members.iter().filter(|m| **m != leader).cloned().collect();

    // Switchover: a dry run changes nothing; then to a named candidate.
    let plan = pgha_json(&env, &["--dry-run", "switchover", "--candidate", &others[0]]).await;
    assert_eq!(plan["leader"].as_str(), Some(leader.as_str()));
    assert_eq!(
        cluster.leader().await.expect("leader"),
        leader,
        "a dry run changes nothing"
    );
    // Without --yes: refused where there is no terminal to ask on, declined on one when the
    // answer is not yes — and nothing changes — then done when it is.
    let refused = pgha(&env, &["switchover", "--candidate", &others[0]]).await;
    assert_eq!(refused.code, exit_codes::PRECONDITION, "{refused:?}");
    assert!(refused.stderr.contains("refusing without --yes"), "{refused:?}");
    let question = format!("switch over from {leader} to {} now. Proceed? [y/N]", others[0]);
    let declined = pgha_on_terminal(&env, &["switchover", "--candidate", &others[0]], "n").await;
    assert_eq!(declined.code, exit_codes::PRECONDITION, "{declined:?}");
    assert!(declined.stderr.contains(&question), "{declined:?}");
    assert!(declined.stderr.contains("not confirmed"), "{declined:?}");
    assert_eq!(
        cluster.leader().await.expect("leader"),
        leader,
        "declined: nothing changes"
    );
    let confirmed = pgha_on_terminal(
        &env,
        &["--format", "json", "switchover", "--candidate", &others[0]],
        "y",
    )
    .await
    .ok();
    assert!(confirmed.stderr.contains(&question), "{confirmed:?}");
    let done = confirmed.json();
    assert_eq!(done["new_leader"].as_str(), Some(others[0].as_str()), "{done}");
    assert!(
        cluster.is_writable_primary(&others[0]).await.expect("SQL"),
        "the new leader accepts writes"
    );
    let leader = others[0].clone();
    for m in &members {
        cluster.wait_streaming_or_leader(m).await;
    }

    // A scheduled switchover shows in the status and can be cancelled.
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let scheduled = pgha_json(&env, &["--yes", "switchover", "--at", &at]).await;
    assert!(scheduled["new_leader"].is_null(), "{scheduled}");
    let status = pgha_json(&env, &["status"]).await;
    assert!(status["scheduled_switchover"]["at"].is_string(), "{status}");
    pgha(&env, &["cancel-switchover"]).await.ok();
    let status = pgha_json(&env, &["status"]).await;
    assert!(status["scheduled_switchover"].is_null(), "{status}");
    let r = pgha(&env, &["cancel-switchover"]).await;
    assert_eq!(r.code, exit_codes::NOT_FOUND, "{r:?}");

    // Maintenance mode (`PATCH /config {"pause": true}`, what patronictl pause sends).
    pgha(&env, &["pause"]).await.ok();
    assert_eq!(pgha_json(&env, &["status"]).await["paused"], true);
    let (code, _) = (pgha(&env, &["check"]).await.code, ());
    assert_eq!(code, exit_codes::WARNING, "maintenance mode is a warning");
    let r = pgha(&env, &["--yes", "switchover"]).await;
    assert_eq!(
        r.code,
        exit_codes::PRECONDITION,
        "paused: a candidate is required: {r:?}"
    );
    assert!(r.stderr.contains("candidate"), "{r:?}");
    pgha(&env, &["resume"]).await.ok();
    assert_eq!(pgha_json(&env, &["status"]).await["paused"], false);

    // Restarts: scheduled then cancelled; pending-only skips members with nothing pending.
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let scheduled = pgha_json(&env, &["restart", &others[1], "--at", &at]).await;
    assert_eq!(scheduled[0]["outcome"], "scheduled", "{scheduled}");
    pgha(&env, &["cancel-restart", &others[1]]).await.ok();
    let r = pgha(&env, &["cancel-restart", &others[1]]).await;
    assert_eq!(r.code, exit_codes::NOT_FOUND, "{r:?}");
    let would = pgha_json(&env, &["--dry-run", "restart", "--role", "replica"]).await;
    let mut would_restart: Vec<String> = would["would_restart"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect();
    would_restart.sort();
    let mut replicas: Vec<String> = members.iter().filter(|m| **m != leader).cloned().collect();
    replicas.sort();
    assert_eq!(would_restart, replicas, "the replicas, not the leader: {would}");
    let nothing_pending = pgha_json(&env, &["--dry-run", "restart", "--pending"]).await;
    assert_eq!(
        nothing_pending["would_restart"],
        serde_json::json!([]),
        "{nothing_pending}"
    );
    let r = pgha(&env, &["restart", "--pending"]).await;
    assert_eq!(r.code, exit_codes::PRECONDITION, "every member: confirmed first: {r:?}");
    assert!(
        r.stderr
            .contains("restart PostgreSQL on every member with a pending restart"),
        "{r:?}"
    );
    let skipped = pgha_json(&env, &["--yes", "restart", "--pending"]).await;
    assert!(
        skipped
            .as_array()
            .into_iter()
            .flatten()
            .all(|o| o["outcome"] == "skipped"),
        "nothing is pending: {skipped}"
    );
    let restarted = pgha_json(&env, &["restart", &others[1], "--role", "replica"]).await;
    assert_eq!(restarted[0]["outcome"], "done", "{restarted}");
    let reloaded = pgha_json(&env, &["reload"]).await;
    assert_eq!(reloaded.as_array().map(Vec::len), Some(3));

    // A restart-only parameter: the change is reported as needing a restart, the members show
    // pending_restart, and a pending-only rolling restart applies it everywhere with one
    // switchover. (An increase: replicas go first, and must never run below the primary.)
    let would = pgha_json(&env, &["--dry-run", "config", "set", "max_connections=250"]).await;
    assert_eq!(
        would["would_set"]["needs_restart"],
        serde_json::json!(["max_connections"])
    );
    let config = pgha_json(&env, &["config", "show"]).await;
    assert!(
        config["postgresql"]["parameters"]["max_connections"] != "250",
        "a dry run changes nothing: {config}"
    );
    // On a terminal the change is asked for: declined changes nothing, confirmed applies it.
    let declined = pgha_on_terminal(&env, &["config", "set", "max_connections=250"], "n").await;
    assert_eq!(declined.code, exit_codes::PRECONDITION, "{declined:?}");
    assert!(
        declined.stderr.contains("set max_connections=250 on every member")
            && declined.stderr.contains("not confirmed"),
        "{declined:?}"
    );
    let config = pgha_json(&env, &["config", "show"]).await;
    assert!(
        config["postgresql"]["parameters"]["max_connections"] != "250",
        "declined changes nothing: {config}"
    );
    let change = pgha_on_terminal(&env, &["--format", "json", "config", "set", "max_connections=250"], "y")
        .await
        .ok()
        .json();
    assert_eq!(change["needs_restart"], serde_json::json!(["max_connections"]));
    let mut pending = 0;
    for _ in 0..60 {
        let status = pgha_json(&env, &["status"]).await;
        pending = status["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["pending_restart"] == true)
            .count();
        if pending == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(pending, 3, "every member should show pending_restart");
    let dry = pgha(&env, &["--dry-run", "rolling-restart", "--pending"]).await.ok();
    assert!(dry.stdout.contains("would restart the replicas"), "{dry:?}");
    let r = pgha(&env, &["rolling-restart", "--pending"]).await;
    assert_eq!(r.code, exit_codes::PRECONDITION, "no --yes and no terminal: {r:?}");
    let rolled = pgha_json(&env, &["--yes", "rolling-restart", "--pending"]).await;
    assert_eq!(rolled["steps"].as_array().map(Vec::len), Some(4), "{rolled}");
    let leader_after = rolled["leader_after"].as_str().expect("leader after").to_owned();
    assert_ne!(leader_after, leader);
    let db = cluster
        .connect_superuser(&leader_after, "postgres")
        .await
        .expect("connect");
    let max: String = db.query_one("SHOW max_connections", &[]).await.expect("show").get(0);
    assert_eq!(max, "250");
    assert_eq!(rolled["still_pending"], serde_json::json!([]), "{rolled}");
    let status = pgha_json(&env, &["status"]).await;
    assert!(
        status["members"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|m| m["pending_restart"] != true),
        "{status}"
    );

    // Config patch with JSON, confirmed on a terminal.
    let patched = pgha_on_terminal(
        &env,
        &[
            "--format",
            "json",
            "config",
            "patch",
            r#"{"loop_wait": 2, "maximum_lag_on_failover": 2097152}"#,
        ],
        "y",
    )
    .await
    .ok();
    assert!(
        patched.stderr.contains("patch Patroni's dynamic configuration with")
            && patched.stderr.contains("Proceed? [y/N]"),
        "{patched:?}"
    );
    assert_eq!(patched.json()["maximum_lag_on_failover"], 2_097_152);

    // edit-config, with scripts for editors: a dry run shows the change and applies nothing;
    // an added key is applied, a deleted one removed; no change, a failing editor and YAML that
    // is not a mapping apply nothing; a change made while editing makes it edit again.
    let scripts = tempfile::tempdir().expect("a directory");
    let editor = |name: &str, body: &str| {
        let path = scripts.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).expect("script");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let mut with = env.clone();
        with.push(("EDITOR".into(), path.display().to_string()));
        with
    };
    let add = editor("add", "echo 'pgha_edited: 1' >> \"$1\"");
    let dry = pgha(&add, &["--format", "json", "--dry-run", "edit-config"]).await.ok();
    assert_eq!(
        dry.json()["would_patch"],
        serde_json::json!({"pgha_edited": 1}),
        "{dry:?}"
    );
    assert!(
        dry.stderr.contains("+pgha_edited: 1"),
        "the difference is shown: {dry:?}"
    );
    assert!(pgha_json(&env, &["config", "show"]).await["pgha_edited"].is_null());
    let r = pgha(&add, &["edit-config"]).await;
    assert_eq!(r.code, exit_codes::PRECONDITION, "no terminal, no --yes: {r:?}");
    let declined = pgha_on_terminal(&add, &["edit-config"], "n").await;
    assert_eq!(declined.code, exit_codes::PRECONDITION, "{declined:?}");
    assert!(pgha_json(&env, &["config", "show"]).await["pgha_edited"].is_null());
    let applied = pgha_on_terminal(&add, &["--format", "json", "edit-config"], "y")
        .await
        .ok();
    assert!(
        applied
            .stderr
            .contains("apply these changes to the dynamic configuration. Proceed? [y/N]"),
        "{applied:?}"
    );
    let applied = applied.json();
    assert_eq!(applied["pgha_edited"], 1, "{applied}");
    assert_eq!(
        applied["maximum_lag_on_failover"], 2_097_152,
        "the rest is kept: {applied}"
    );
    let unchanged = pgha(&editor("same", "true"), &["--format", "json", "--yes", "edit-config"])
        .await
        .ok();
    assert_eq!(unchanged.json()["result"], "no changes", "{unchanged:?}");
    let r = pgha(&editor("fails", "exit 3"), &["--yes", "edit-config"]).await;
    assert_eq!(r.code, exit_codes::USAGE, "{r:?}");
    let r = pgha(
        &editor("list", "echo '- just a list' > \"$1\""),
        &["--yes", "edit-config"],
    )
    .await;
    assert_eq!(r.code, exit_codes::USAGE, "{r:?}");
    // The editor changes the configuration behind edit-config's back (once), and waits until
    // Patroni's REST API shows the change (it answers from its view of the DCS).
    let pgha_bin = env!("CARGO_BIN_EXE_pgha");
    let race = editor(
        "race",
        &format!(
            "if [ ! -e \"$0.once\" ]; then\n\
               touch \"$0.once\"\n\
               {pgha_bin} --yes config patch '{{\"pgha_meanwhile\": 2}}' >/dev/null\n\
               for _ in $(seq 100); do {pgha_bin} -f json config show | grep -q pgha_meanwhile && break; sleep 0.1; done\n\
             fi\n\
             sed -i '/^pgha_edited:/d' \"$1\""
        ),
    );
    let raced = pgha(&race, &["--format", "json", "--yes", "edit-config"]).await.ok();
    assert!(raced.stderr.contains("changed while it was edited"), "{raced:?}");
    let after = raced.json();
    assert!(after["pgha_edited"].is_null(), "the deleted key is removed: {after}");
    assert_eq!(after["pgha_meanwhile"], 2, "the change made meanwhile is kept: {after}");

    // Reinitialize a replica: refused without --yes, done with it, streaming afterwards.
    let replica = members.iter().find(|m| **m != leader_after).expect("a replica").clone();
    let r = pgha(&env, &["reinitialize", &replica]).await;
    assert_eq!(r.code, exit_codes::PRECONDITION, "{r:?}");
    let r = pgha(&env, &["reinitialize", &leader_after, "--yes"]).await;
    assert_eq!(r.code, exit_codes::PRECONDITION, "never the leader: {r:?}");
    pgha(&env, &["reinitialize", &replica, "--yes"]).await.ok();
    assert!(cluster.is_streaming(&replica).await.expect("SQL"));

    // Failover: warnings in the plan; refused without --yes; done with it.
    let plan = pgha_json(&env, &["--dry-run", "failover", "--candidate", &replica]).await;
    assert!(plan["warnings"].as_array().is_some_and(|w| !w.is_empty()), "{plan}");
    let r = pgha(&env, &["failover", "--candidate", &replica]).await;
    assert_eq!(r.code, exit_codes::PRECONDITION, "{r:?}");
    let done = pgha_json(&env, &["failover", "--candidate", &replica, "--yes"]).await;
    assert_eq!(done["new_leader"].as_str(), Some(replica.as_str()), "{done}");

    // The new leader records the promotion in /history on one of its next loops.
    let mut history = serde_json::Value::Null;
    for _ in 0..40 {
        history = pgha_json(&env, &["history"]).await;
        if history.as_array().map_or(0, Vec::len) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        history.as_array().map_or(0, Vec::len) >= 3,
        "three promotions recorded: {history}"
    );
}

trait WaitExt {
    async fn wait_streaming_or_leader(&self, member: &str);
}

impl WaitExt for pgha_testkit::LocalCluster {
    async fn wait_streaming_or_leader(&self, member: &str) {
        if self.leader().await.ok().as_deref() == Some(member) {
            return;
        }
        self.wait_streaming(member, Duration::from_secs(90))
            .await
            .unwrap_or_else(|e| panic!("{member} does not stream: {e}"));
    }
}
