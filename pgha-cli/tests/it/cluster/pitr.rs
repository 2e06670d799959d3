//! Point-in-time recovery of the whole cluster, end to end, twice: through the library (with
//! `LocalCluster` as the `NodeControl`) and through `pgha pitr` (with shell command templates
//! that call `pgha-devcluster node …`). Each time: rows inserted, the time noted, rows deleted,
//! PITR to the noted time, the rows are back and every member streams on the new timeline. Then
//! the "all nodes lost" restore: everything archived comes back.

use std::path::PathBuf;
use std::time::Duration;

use crate::common::pgha;
use pgha_admin::pitr::RecoveryTarget;
use pgha_testkit::LocalCluster;

async fn count(cluster: &LocalCluster) -> i64 {
    crate::common::superuser(cluster)
        .await
        .query_one("SELECT count(*) FROM precious", &[])
        .await
        .expect("count")
        .get(0)
}

/// Inserts `n` more rows, notes the time, then deletes everything; returns the noted time.
async fn insert_note_delete(cluster: &LocalCluster, n: i64) -> String {
    let db = crate::common::superuser(cluster).await;
    db.execute(
        "INSERT INTO precious SELECT (SELECT coalesce(max(id), 0) FROM precious) + g FROM generate_series(1, $1::int8) g",
        &[&n],
    )
    .await
    .expect("insert");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let noted: String = db.query_one("SELECT now()::text", &[]).await.expect("now").get(0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    db.execute("DELETE FROM precious", &[]).await.expect("the accident");
    noted
}

async fn assert_recovered(cluster: &LocalCluster, rows: i64, timeline_before: u64) {
    assert_eq!(count(cluster).await, rows, "the deleted rows are back");
    let status = cluster.admin().expect("admin").status().await.expect("status");
    let leader = status
        .members
        .iter()
        .find(|m| Some(&m.name) == status.leader.as_ref())
        .expect("a leader");
    let timeline = leader.timeline.expect("leader timeline");
    assert!(
        timeline > timeline_before,
        "a new timeline after the promotion: {timeline} vs {timeline_before}"
    );
    for m in &status.members {
        if m.name != leader.name {
            assert!(cluster.is_streaming(&m.name).await.expect("SQL"), "{} streams", m.name);
            assert_eq!(m.timeline, Some(timeline), "{} follows the new timeline", m.name);
        }
    }
}

async fn leader_timeline(cluster: &LocalCluster) -> u64 {
    let status = cluster.admin().expect("admin").status().await.expect("status");
    status
        .members
        .iter()
        .find(|m| Some(&m.name) == status.leader.as_ref())
        .and_then(|m| m.timeline)
        .expect("leader timeline")
}

/// `pgha-devcluster`, built next to this test binary by the same cargo invocation (or now).
fn devcluster() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("pgha-devcluster"))
        .expect("target directory");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "pgha-testkit", "--features=cli", "--bin=pgha-devcluster"])
            .status()
            .expect("cargo build");
        assert!(status.success(), "building pgha-devcluster failed");
    }
    assert!(bin.exists(), "{} is missing", bin.display());
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pitr_brings_deleted_rows_back_through_the_api_and_the_cli() {
    let cluster = crate::common::cluster().await;
    let admin = cluster.admin().expect("admin");
    let pgbackrest = cluster.pgbackrest_handle().expect("pgBackRest");
    crate::common::superuser(&cluster)
        .await
        .batch_execute("CREATE TABLE precious (id bigint PRIMARY KEY)")
        .await
        .expect("table");
    pgbackrest
        .backup(pgha_admin::backup::BackupType::Full)
        .await
        .expect("backup");

    // --- through the library --------------------------------------------------------------------
    let noted = insert_note_delete(&cluster, 100).await;
    assert_eq!(count(&cluster).await, 0);
    let before = leader_timeline(&cluster).await;
    let target = RecoveryTarget::time(&noted).expect("target");
    let plan = admin
        .plan_pitr(&cluster, &pgbackrest, target, None)
        .await
        .expect("plan");
    println!("{}", serde_json::to_string_pretty(&plan).unwrap_or_default());
    assert_eq!(plan.other_members.len(), 2);
    assert!(plan.backup_label.is_some());
    let report = admin.pitr(&cluster, &pgbackrest, &plan).await.expect("PITR");
    println!(
        "PITR through the library: {:.1} s, timeline {:?}",
        report.elapsed_s, report.timeline
    );
    assert_recovered(&cluster, 100, before).await;

    // Recovering to before the first backup is refused up front, with nothing changed.
    let r = admin
        .plan_pitr(
            &cluster,
            &pgbackrest,
            RecoveryTarget::time("2001-01-01 00:00:00+00").expect("t"),
            None,
        )
        .await
        .expect_err("no backup that old");
    assert_eq!(r.kind(), pgha_admin::ErrorKind::Precondition, "{r}");

    // --- through the CLI ------------------------------------------------------------------------
    pgbackrest
        .backup(pgha_admin::backup::BackupType::Incr)
        .await
        .expect("backup");
    let noted = insert_note_delete(&cluster, 50).await;
    let before = leader_timeline(&cluster).await;
    let dev = devcluster();
    let base = cluster.base_dir();
    let node = |action: &str| format!("{} --state-dir {} node {action}", dev.display(), base.display());
    let config = format!(
        "[pitr]\nstop = \"{}\"\nstart = \"{}\"\nclear_data_dir = \"{}\"\nclear_dcs = \"{}\"\nset_bootstrap = \"{}\"\ndata_dir = \"{}/{{member}}/data\"\n",
        node("stop {member}"),
        node("start {member}"),
        node("clear-data {member}"),
        node("clear-dcs"),
        node("set-bootstrap {member} {method}"),
        base.display()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("pgha.toml");
    std::fs::write(&file, config).expect("config file");
    let mut env = crate::common::env(&cluster);
    env.push(("PGHA_CONFIG".into(), file.display().to_string()));

    let dry = pgha(&env, &["--format", "json", "--dry-run", "pitr", "--time", &noted])
        .await
        .ok()
        .json();
    assert_eq!(dry["steps"].as_array().map(Vec::len), Some(8), "{dry}");
    assert_eq!(count(&cluster).await, 0, "a dry run changes nothing");
    let r = pgha(&env, &["pitr", "--time", &noted]).await;
    assert_eq!(
        r.code,
        pgha_admin::exit_codes::PRECONDITION,
        "no --yes, no terminal: {r:?}"
    );
    let r = pgha(&env, &["pitr", "--time", "2026-11-26 12:00:00"]).await;
    assert_eq!(r.code, pgha_admin::exit_codes::USAGE, "a time without a zone: {r:?}");
    let r = pgha(&env, &["--format", "json", "pitr", "--time", &noted, "--yes"]).await;
    // The CLI started Patroni processes through pgha-devcluster: learn them, so that this
    // test's teardown stops them.
    cluster.reload_state().expect("reload state");
    let report = r.ok().json();
    println!("PITR through the CLI: {report:#}");
    assert_recovered(&cluster, 150, before).await;

    // --- every node lost: restore everything that was archived ---------------------------------
    let dry = pgha(&env, &["--format", "json", "--dry-run", "pitr", "--latest"])
        .await
        .ok()
        .json();
    assert_eq!(dry["target"]["type"], "latest", "{dry}");
    crate::common::superuser(&cluster)
        .await
        .execute(
            "INSERT INTO precious SELECT 1000 + g FROM generate_series(1, 10) g",
            &[],
        )
        .await
        .expect("insert");
    let before = leader_timeline(&cluster).await;
    let plan = admin
        .plan_pitr(&cluster, &pgbackrest, RecoveryTarget::Latest, None)
        .await
        .expect("plan");
    admin
        .pitr(&cluster, &pgbackrest, &plan)
        .await
        .expect("restore everything");
    assert_recovered(&cluster, 160, before).await;

    // --- one replica rebuilt from the repository (--type=standby --delta) ----------------------
    let leader_db = crate::common::superuser(&cluster).await;
    let insert = "INSERT INTO precious SELECT (SELECT max(id) FROM precious) + g FROM generate_series(1, 10) g";
    leader_db.execute(insert, &[]).await.expect("insert");
    pgbackrest
        .backup(pgha_admin::backup::BackupType::Incr)
        .await
        .expect("backup");
    let label = pgbackrest
        .info()
        .await
        .expect("info")
        .latest()
        .expect("a backup")
        .label
        .clone();
    // Written after the backup: the restored replica must replay it.
    leader_db.execute(insert, &[]).await.expect("insert");
    let leader = cluster.leader().await.expect("leader");
    let replica = cluster
        .member_names()
        .into_iter()
        .find(|m| *m != leader)
        .expect("a replica");
    let args = ["reinitialize", replica.as_str(), "--from-backup"];
    let r = pgha(&env, &[&["--dry-run"][..], &args].concat()).await.ok();
    assert!(r.stdout.contains("would stop"), "{r:?}");
    let r = pgha(&env, &args).await;
    assert_eq!(
        r.code,
        pgha_admin::exit_codes::PRECONDITION,
        "no --yes, no terminal: {r:?}"
    );
    let r = pgha(&env, &["reinitialize", leader.as_str(), "--from-backup", "--yes"]).await;
    assert_eq!(r.code, pgha_admin::exit_codes::PRECONDITION, "not the leader: {r:?}");
    let r = pgha(&env, &[&["--format", "json", "--yes"][..], &args].concat()).await;
    cluster.reload_state().expect("reload state");
    let restored = r.ok().json();
    println!("replica restored from backup: {restored:#}");
    assert_eq!(restored["backup_label"], label.as_str(), "{restored}");
    let command = restored["command"].to_string();
    assert!(
        command.contains("--type=standby") && command.contains("--delta"),
        "{restored}"
    );
    assert!(cluster.is_streaming(&replica).await.expect("SQL"), "{replica} streams");
    let rows = |db: tokio_postgres::Client| async move {
        db.query_one("SELECT count(*) FROM precious", &[])
            .await
            .expect("count")
            .get::<_, i64>(0)
    };
    let mut on_replica = 0;
    for _ in 0..60 {
        let db = cluster
            .connect_superuser(&replica, &cluster.database())
            .await
            .expect("replica connection");
        on_replica = rows(db).await;
        if on_replica == 180 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        on_replica, 180,
        "the restored replica has every row, also those written after the backup"
    );
}
