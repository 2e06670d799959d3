//! The `pgha` CLI against a real cluster: reports, configuration, WAL, pgBackRest, maintenance,
//! queries, pgvector indexes, tuning — and bad input, which must give a typed error and the
//! documented exit code, never a panic.

use crate::common::{pgha, pgha_answering, pgha_json};
use pgha_admin::exit_codes;
use pgha_testkit::LocalCluster;
use serde_json::Value;

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .map(|a| a.iter().filter_map(|x| x[key].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_covers_the_runbook_against_a_real_cluster() {
    crate::common::init_tracing();
    // Two pgBackRest repositories, as a local one beside a remote one, so that --repo matters.
    let cluster = LocalCluster::builder()
        .members(3)
        .pgbackrest(true)
        .second_pgbackrest_repository(true)
        .start()
        .await
        .expect("cluster starts");
    let env = crate::common::env(&cluster);
    let leader = cluster.leader().await.expect("leader");

    // --- cluster status and history -----------------------------------------------------------
    let status = pgha_json(&env, &["status"]).await;
    assert_eq!(status["leader"].as_str(), Some(leader.as_str()));
    assert_eq!(status["members"].as_array().map(Vec::len), Some(3));
    assert_eq!(status["scope"].as_str(), Some(cluster.scope().as_str()));
    let human = pgha(&env, &["status"]).await.ok();
    assert!(
        human.stdout.contains(&leader) && human.stdout.contains("leader"),
        "{human:?}"
    );
    assert!(pgha_json(&env, &["history"]).await.is_array());

    // --- patronictl's verbs: list --watch, version, dsn ----------------------------------------
    let versions = pgha_json(&env, &["version"]).await;
    assert_eq!(versions["pgha"], env!("CARGO_PKG_VERSION"));
    let members = versions["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), 3, "{versions}");
    for m in &members {
        assert!(m["patroni"].as_str().is_some_and(|v| v.starts_with(['3', '4'])), "{m}");
        assert!(m["postgresql"].as_str().is_some_and(|v| v.starts_with("15.")), "{m}");
    }
    let creds = cluster.credentials();
    let auth = format!(
        "user={} password={} dbname=postgres",
        creds.superuser.username,
        creds.superuser.password.expose()
    );
    let a_replica = cluster
        .member_names()
        .into_iter()
        .find(|m| *m != leader)
        .expect("a replica");
    for (args, primary) in [
        (&["dsn"][..], true),
        (&["dsn", "--role", "replica"][..], false),
        (&["dsn", a_replica.as_str()][..], false),
        (&["dsn", leader.as_str()][..], true),
    ] {
        let dsn = pgha(&env, args).await.ok().stdout.trim().to_owned();
        assert!(
            dsn.starts_with("host=") && dsn.contains(" port=") && !dsn.contains("password"),
            "{dsn}"
        );
        // The string connects where it says.
        let (db, conn) = tokio_postgres::connect(&format!("{dsn} {auth}"), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("{dsn}: {e}"));
        tokio::spawn(conn);
        let recovery: bool = db
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .expect("SQL")
            .get(0);
        assert_eq!(recovery, !primary, "{args:?} gave {dsn}");
    }
    let r = pgha(&env, &["dsn", "no-such-member"]).await;
    assert_eq!(r.code, exit_codes::NOT_FOUND, "{r:?}");

    // topology: the leader, then each replica under it.
    let tree = pgha_json(&env, &["topology"]).await;
    let nodes = tree.as_array().cloned().unwrap_or_default();
    assert_eq!(nodes.len(), 3, "{tree}");
    assert_eq!(nodes[0]["name"].as_str(), Some(leader.as_str()), "{tree}");
    assert_eq!(nodes[0]["depth"], 0, "{tree}");
    for n in &nodes[1..] {
        assert_eq!(n["upstream"].as_str(), Some(leader.as_str()), "{tree}");
        assert_eq!(n["depth"], 1, "{tree}");
    }
    let drawn = pgha(&env, &["topology"]).await.ok().stdout;
    for n in &nodes[1..] {
        let replica = n["name"].as_str().unwrap_or("?");
        assert!(
            drawn.contains(&format!("+ {replica}")),
            "{replica} under the leader:\n{drawn}"
        );
    }
    // query: on the leader unless told otherwise, read-only unless --write, values as text.
    let q = pgha_json(
        &env,
        &["query", "SELECT pg_is_in_recovery() AS standby, NULL::text AS nothing"],
    )
    .await;
    assert_eq!(q["member"].as_str(), Some(leader.as_str()), "{q}");
    assert_eq!(q["rows"], serde_json::json!([{"standby": "f", "nothing": null}]), "{q}");
    let q = pgha_json(&env, &["query", "SELECT 1 AS x, 2 AS x"]).await;
    assert_eq!(q["rows"], serde_json::json!([{"x": "1", "x_2": "2"}]), "{q}");
    let q = pgha_json(
        &env,
        &["query", "--role", "replica", "SELECT pg_is_in_recovery() AS standby"],
    )
    .await;
    assert_eq!(q["rows"][0]["standby"], "t", "{q}");
    let q = pgha_json(
        &env,
        &["query", "--member", &a_replica, "SELECT pg_is_in_recovery() AS standby"],
    )
    .await;
    assert_eq!(q["member"].as_str(), Some(a_replica.as_str()), "{q}");
    assert_eq!(q["rows"][0]["standby"], "t", "{q}");
    let r = pgha(&env, &["query", "CREATE TABLE written_by_query (i int)"]).await;
    assert_eq!(r.code, exit_codes::DATABASE, "{r:?}");
    assert!(r.stderr.contains("read-only transaction"), "{r:?}");
    let w = pgha_json(
        &env,
        &[
            "query",
            "--write",
            "CREATE TABLE written_by_query (i int); INSERT INTO written_by_query VALUES (1), (2)",
        ],
    )
    .await;
    assert_eq!(w["rows_affected"], serde_json::json!([0, 2]), "{w}");
    // Every report in every format: tsv is a header and a line per member, yaml the document.
    let tsv = pgha(&env, &["-f", "tsv", "status"]).await.ok().stdout;
    let lines: Vec<Vec<&str>> = tsv.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 4, "a header and a line per member:\n{tsv}");
    let name = lines[0].iter().position(|c| *c == "name").expect("a name column");
    assert!(lines[0].contains(&"role"), "{tsv}");
    assert!(lines[1..].iter().any(|l| l[name] == leader), "{tsv}");
    assert!(
        lines.iter().all(|l| l.len() == lines[0].len()),
        "as many cells as columns:\n{tsv}"
    );
    let q = pgha(&env, &["--format", "tsv", "query", "SELECT 1 AS one, 'a\tb' AS two"])
        .await
        .ok()
        .stdout;
    assert_eq!(q.trim_end(), "one\ttwo\n1\ta\\tb", "{q}");
    let yaml = pgha(&env, &["--format", "yaml", "status"]).await.ok().stdout;
    assert!(yaml.contains(&format!("leader: {leader}")), "{yaml}");
    assert!(yaml.contains("members:") && !yaml.starts_with('{'), "{yaml}");
    let r = pgha(&env, &["--format", "yaml", "dsn", "no-such-member"]).await;
    assert_eq!(r.code, exit_codes::NOT_FOUND, "{r:?}");
    assert!(r.stdout.contains("kind: not-found"), "errors in YAML too: {r:?}");
    // `list --watch 1s` prints a round a second until interrupted, then exits 0.
    let watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgha"))
        .args(["list", "--watch", "1s"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("pgha list --watch");
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(watch.id().expect("running")).expect("a pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), watch.wait_with_output())
        .await
        .expect("pgha stops on Ctrl-C")
        .expect("output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    // Each round starts with the time it was taken.
    let rounds = text
        .lines()
        .filter(|l| l.len() >= 19 && l.as_bytes()[4] == b'-' && l[..4].chars().all(|c| c.is_ascii_digit()))
        .count();
    assert!(rounds >= 2 && text.contains(&leader), "{rounds} rounds: {text}");

    // --- replication and WAL -------------------------------------------------------------------
    let lag = pgha_json(&env, &["replication", "lag"]).await;
    assert_eq!(lag["standbys"].as_array().map(Vec::len), Some(2), "{lag}");
    assert!(
        lag["standbys"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|s| s["streaming"] == true),
        "{lag}"
    );
    let slots = pgha_json(&env, &["replication", "slots"]).await;
    assert_eq!(
        names(&slots, "name").len(),
        2,
        "Patroni keeps one slot per replica: {slots}"
    );
    let active = names(&slots, "name")[0].clone();
    let r = pgha(&env, &["replication", "drop-slot", &active, "--yes"]).await;
    assert_eq!(
        r.code,
        exit_codes::PRECONDITION,
        "an active slot must not be dropped: {r:?}"
    );
    let r = pgha(&env, &["replication", "drop-slot", "no_such_slot", "--yes"]).await;
    assert_eq!(r.code, exit_codes::NOT_FOUND, "{r:?}");
    let r = pgha(&env, &["replication", "pause-replay", &names(&slots, "name")[1]]).await;
    assert_eq!(
        r.code,
        exit_codes::PRECONDITION,
        "Patroni would undo it outside maintenance mode: {r:?}"
    );

    let archiver = pgha_json(&env, &["wal", "archiver"]).await;
    assert_eq!(archiver["archive_mode"], "on");
    let size = pgha_json(&env, &["wal", "size"]).await;
    assert!(size["size_bytes"].as_i64().unwrap_or(0) > 0, "{size}");
    pgha(&env, &["wal", "checkpoint"]).await.ok();
    let keep = pgha_json(&env, &["wal", "keep-size"]).await;
    assert_eq!(keep["wal_keep_size"], "128MB");
    let dry = pgha_json(&env, &["--dry-run", "wal", "keep-size", "256MB"]).await;
    assert!(dry["would_set"].is_object(), "{dry}");
    let r = pgha(&env, &["wal", "keep-size", "256MB"]).await;
    assert_eq!(r.code, exit_codes::PRECONDITION, "no --yes and no terminal: {r:?}");
    // On a terminal, declined: nothing changes.
    let declined = crate::common::pgha_on_terminal(&env, &["wal", "keep-size", "256MB"], "n").await;
    assert_eq!(declined.code, exit_codes::PRECONDITION, "{declined:?}");
    assert!(
        declined.stderr.contains("set wal_keep_size=256MB on every member"),
        "{declined:?}"
    );
    assert_eq!(
        pgha_json(&env, &["wal", "keep-size"]).await,
        keep,
        "declined, dry runs change nothing"
    );
    let set = pgha_json(&env, &["--yes", "wal", "keep-size", "256MB"]).await;
    assert_eq!(set["applied"]["wal_keep_size"], "256MB");
    assert_eq!(set["needs_restart"], serde_json::json!([]), "wal_keep_size reloads");
    let mut seen = String::new();
    for _ in 0..60 {
        seen = pgha_json(&env, &["config", "get", "wal_keep_size"]).await["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if seen == "256MB" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(seen, "256MB", "Patroni applies dynamic configuration on its next loop");
    let config = pgha_json(&env, &["config", "show"]).await;
    assert_eq!(config["postgresql"]["parameters"]["wal_keep_size"], "256MB", "{config}");
    let r = pgha(&env, &["config", "set", "max_parallel_io_workers=4"]).await;
    assert_eq!(
        r.code,
        exit_codes::USAGE,
        "the runbook's invented parameter is refused: {r:?}"
    );
    assert!(r.stderr.contains("max_parallel_io_workers"), "{r:?}");

    // --- pgBackRest ----------------------------------------------------------------------------
    // Two repositories, the second without a backup: info names the one that is not ok (the
    // stanza's own status says only "different across repos").
    let r = pgha(&env, &["backup", "info"]).await;
    assert_eq!(r.code, exit_codes::BACKUP, "{r:?}");
    assert!(r.stderr.contains("repository 2 status 2: no valid backups"), "{r:?}");
    assert!(r.stdout.contains("repo2"), "each repository's status is shown: {r:?}");
    // The first backup made slow enough to be seen running (gzip level 9, one process, 15 MB
    // more data), and watched from another `pgha` as an operator would.
    crate::common::superuser(&cluster)
        .await
        .batch_execute("CREATE TABLE ballast AS SELECT g, md5(g::text) AS t FROM generate_series(1, 150000) g")
        .await
        .expect("ballast");
    let config = cluster.info().pgbackrest_config.expect("pgBackRest is configured");
    let slow = config.with_file_name("slow-pgbackrest.conf");
    let text = std::fs::read_to_string(&config).expect("pgbackrest.conf");
    let slow_text = text.replace("compress-type=lz4\n", "").replacen(
        "[global]\n",
        "[global]\ncompress-type=gz\ncompress-level=9\nprocess-max=1\n",
        1,
    );
    std::fs::write(&slow, slow_text).expect("write");
    let mut slow_env = env.clone();
    slow_env.push(("PGHA_PGBACKREST_CONFIG".into(), slow.display().to_string()));
    let creating = tokio::spawn({
        let slow_env = slow_env.clone();
        async move { pgha_json(&slow_env, &["backup", "create", "--type", "full"]).await }
    });
    let mut seen_running = Vec::new();
    while !creating.is_finished() {
        let progress = pgha_json(&env, &["backup", "progress"]).await;
        if progress["running"] == true {
            seen_running.push(progress["percent"].clone());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let created = creating.await.expect("the backup task");
    assert_eq!(created["backup"]["type"], "full", "{created}");
    assert!(
        seen_running.iter().any(Value::is_number),
        "the running backup was never seen with its percentage: {seen_running:?}"
    );
    for percent in &seen_running {
        assert!(
            percent.is_null() || percent.as_f64().is_some_and(|p| (0.0..=100.0).contains(&p)),
            "{seen_running:?}"
        );
    }
    let after = pgha_json(&env, &["backup", "progress"]).await;
    assert_eq!(after["running"], false, "{after}");
    // --repo reaches the commands that take it: a backup to repository 2 shows there only.
    let count = |info: &Value| info["backup"].as_array().map_or(0, Vec::len);
    let in_repo1 = count(&pgha_json(&env, &["--repo", "1", "backup", "info"]).await);
    let empty = pgha(&env, &["--format", "json", "--repo", "2", "backup", "info"]).await;
    assert_eq!(
        empty.code,
        exit_codes::BACKUP,
        "repository 2 has no backup yet: {empty:?}"
    );
    assert_eq!(count(&empty.json()), 0, "{empty:?}");
    pgha(&env, &["--repo", "2", "backup", "create", "--type", "full"])
        .await
        .ok();
    let repo2 = pgha_json(&env, &["--repo", "2", "backup", "info"]).await;
    assert_eq!(count(&repo2), 1, "{repo2}");
    assert_eq!(repo2["backup"][0]["database"]["repo-key"], 2, "{repo2}");
    assert_eq!(
        count(&pgha_json(&env, &["--repo", "1", "backup", "info"]).await),
        in_repo1,
        "repository 1 is left alone"
    );
    let info = pgha_json(&env, &["backup", "info"]).await;
    assert_eq!(info["status"]["code"], 0, "{info}");
    assert!(!names(&info["backup"], "label").is_empty());
    pgha(&env, &["backup", "check"]).await.ok();
    pgha(&env, &["backup", "stanza-create"]).await.ok(); // idempotent on a valid stanza
    let diff = pgha_json(&env, &["backup", "create", "--type", "diff"]).await;
    assert_eq!(diff["backup"]["type"], "diff", "{diff}");
    // A second differential, and a configuration that keeps one: retention would expire the
    // first — a dry run must say so and expire nothing.
    pgha_json(&env, &["backup", "create", "--type", "diff"]).await;
    let keep_one = config.with_file_name("keep-one-diff-pgbackrest.conf");
    std::fs::write(
        &keep_one,
        text.replacen("[global]\n", "[global]\nrepo1-retention-diff=1\n", 1),
    )
    .expect("write");
    let mut keep_one_env = env.clone();
    keep_one_env.push(("PGHA_PGBACKREST_CONFIG".into(), keep_one.display().to_string()));
    let before = count(&pgha_json(&env, &["backup", "info"]).await);
    let plan = pgha_json(&keep_one_env, &["--dry-run", "backup", "expire"]).await;
    let first_diff = diff["backup"]["label"].as_str().expect("a label");
    assert!(
        plan["would_expire"]
            .as_array()
            .is_some_and(|lines| lines.iter().any(|l| l.as_str().is_some_and(|l| l.contains(first_diff)))),
        "{first_diff} would be expired: {plan}"
    );
    assert_eq!(
        count(&pgha_json(&env, &["backup", "info"]).await),
        before,
        "a dry run expires nothing"
    );
    pgha(&env, &["backup", "expire"]).await.ok();
    // verify reads the repository back; stanza-upgrade has nothing to do without an upgrade.
    let verified = pgha_json(&env, &["backup", "verify"]).await;
    assert!(
        verified["result"].as_str().is_some_and(|r| r.contains("checksum")),
        "{verified}"
    );
    pgha(&env, &["backup", "stanza-upgrade"]).await.ok();
    // --repo is not passed to the commands that do not take it (pgBackRest would refuse it).
    pgha(&env, &["--repo", "1", "backup", "check"]).await.ok();
    let verified = pgha_json(&env, &["--repo", "2", "backup", "verify"]).await;
    assert!(
        verified["result"].as_str().is_some_and(|r| r.contains("checksum")),
        "{verified}"
    );
    let r = pgha(&env, &["--repo", "3", "backup", "verify"]).await;
    assert_eq!(r.code, exit_codes::BACKUP, "repository 3 is not configured: {r:?}");
    let r = pgha(&env, &["--repo", "0", "backup", "info"]).await;
    assert_eq!(r.code, exit_codes::USAGE, "{r:?}");
    // S3, GCS and Azure: pgBackRest itself takes the files (its first complaint is the store it
    // cannot reach, not an option); secrets come from the environment only, never from argv.
    let stores: [(&[&str], (&str, &str)); 3] = [
        (
            &[
                "backup",
                "s3-config",
                "--bucket",
                "b",
                "--region",
                "eu-west-1",
                "--endpoint",
                "127.0.0.1:1",
                "--key",
                "AKIAX",
                "--path-style",
            ],
            ("PGHA_S3_KEY_SECRET", "s3cr3t"),
        ),
        (
            &[
                "backup",
                "gcs-config",
                "--bucket",
                "b",
                "--endpoint",
                "127.0.0.1:1",
                "--key-type",
                "token",
            ],
            ("PGHA_GCS_TOKEN", "t0ken"),
        ),
        (
            &[
                "--repo",
                "2",
                "backup",
                "azure-config",
                "--account",
                "acct",
                "--container",
                "c",
                "--endpoint",
                "127.0.0.1:1",
                "--path-style",
            ],
            ("PGHA_AZURE_KEY", "YXpLZXk="),
        ),
    ];
    let conf_dir = tempfile::tempdir().expect("a directory");
    for (i, (args, (var, key))) in stores.iter().enumerate() {
        let mut args = args.to_vec();
        args.extend(["--stanza", "s", "--pg-path", "/var/lib/postgresql/15/main"]);
        let r = pgha(&env, &args).await;
        assert_eq!(r.code, exit_codes::USAGE, "no key in {var}: {r:?}");
        let mut with_key = env.clone();
        with_key.push(((*var).to_owned(), (*key).to_owned()));
        let conf = pgha(&with_key, &args).await.ok().stdout;
        assert!(conf.lines().any(|l| l.ends_with(&format!("={key}"))), "{conf}");
        let file = conf_dir.path().join(format!("{i}.conf"));
        std::fs::write(&file, &conf).expect("write");
        let out = tokio::process::Command::new("pgbackrest")
            .args([
                &format!("--config={}", file.display()),
                "--stanza=s",
                "--log-level-console=error",
                "--io-timeout=1",
                "repo-ls",
            ])
            .output()
            .await
            .expect("pgbackrest runs");
        let code = out.status.code().unwrap_or(-1);
        let said = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            pgha_admin::backup::error_name(code),
            Some("host-connect"),
            "pgbackrest should take {conf} and fail only on the store it cannot reach: {code} {said}"
        );
    }
    let human = pgha(&env, &["backup", "info"]).await.ok();
    assert!(human.stdout.contains("full"), "{human:?}");
    let r = pgha(&env, &["--stanza", "no-such-stanza", "backup", "check"]).await;
    assert_eq!(r.code, exit_codes::BACKUP, "a pgBackRest error is exit 16: {r:?}");
    assert!(r.stderr.contains("pgbackrest check exited with"), "{r:?}");
    let r = pgha(&env, &["--stanza", "no-such-stanza", "backup", "info"]).await;
    assert_eq!(
        r.code,
        exit_codes::BACKUP,
        "info exits 0 on a missing stanza; pgha checks the status: {r:?}"
    );

    // --- maintenance ---------------------------------------------------------------------------
    let db = crate::common::superuser(&cluster).await;
    db.batch_execute(
        "CREATE TABLE items (id bigint PRIMARY KEY, name text, embedding vector(3)); \
         INSERT INTO items SELECT g, 'item ' || g, ARRAY[g, g * 2, g % 7]::real[]::vector FROM generate_series(1, 2000) g; \
         CREATE INDEX items_name_idx ON items (name); \
         DELETE FROM items WHERE id % 10 = 0;",
    )
    .await
    .expect("test table");
    let vacuumed = pgha_json(&env, &["vacuum", "items", "--analyze"]).await;
    assert_eq!(vacuumed["statement"], r#"VACUUM (ANALYZE) "items""#);
    assert_eq!(
        vacuumed["member"].as_str(),
        Some(leader.as_str()),
        "VACUUM runs on the leader"
    );
    // --dry-run holds even with --yes: VACUUM FULL would rewrite the table (a new relfilenode).
    let relfilenode = async || -> u32 {
        db.query_one("SELECT relfilenode FROM pg_class WHERE relname = 'items'", &[])
            .await
            .expect("pg_class")
            .get::<_, u32>(0)
    };
    let before = relfilenode().await;
    let dry = pgha(&env, &["--dry-run", "--yes", "vacuum", "items", "--full"])
        .await
        .ok();
    assert!(dry.stdout.contains("would VACUUM FULL items"), "{dry:?}");
    assert_eq!(relfilenode().await, before, "a dry run rewrites nothing");
    for attempt in [r#"items; DROP TABLE items; --"#, r#"items" ; DROP TABLE items; --"#] {
        let r = pgha(&env, &["vacuum", attempt]).await;
        assert_eq!(
            r.code,
            exit_codes::NOT_FOUND,
            "the injection is one quoted, unknown name: {r:?}"
        );
    }
    let rows: i64 = db
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .expect("items still exists")
        .get(0);
    assert_eq!(rows, 1800);
    pgha(&env, &["analyze", "items"]).await.ok();
    pgha(&env, &["analyze"]).await.ok();
    let reindexed = pgha_json(&env, &["reindex", "items_name_idx"]).await;
    assert_eq!(reindexed["statement"], r#"REINDEX INDEX CONCURRENTLY "items_name_idx""#);
    let unused = pgha_json(&env, &["indexes", "--unused"]).await;
    let unused = names(&unused, "index");
    assert!(unused.contains(&"items_name_idx".to_owned()), "{unused:?}");
    assert!(
        !unused.contains(&"items_pkey".to_owned()),
        "primary keys are never drop candidates"
    );
    let r = pgha(&env, &["drop-index", "items_pkey", "--yes"]).await;
    assert_eq!(r.code, exit_codes::PRECONDITION, "{r:?}");
    let r = pgha(&env, &["drop-index", "items_name_idx"]).await;
    assert_eq!(
        r.code,
        exit_codes::PRECONDITION,
        "no --yes and no terminal: refused: {r:?}"
    );
    let plan = pgha_json(&env, &["--dry-run", "drop-index", "items_name_idx"]).await;
    assert_eq!(plan["would_drop"]["index"], "items_name_idx");
    pgha(&env, &["drop-index", "items_name_idx", "--yes"]).await.ok();
    let all = names(&pgha_json(&env, &["indexes"]).await, "index");
    assert!(!all.contains(&"items_name_idx".to_owned()), "{all:?}");
    let tables = pgha_json(&env, &["tables", "--limit", "5"]).await;
    assert!(names(&tables, "table").contains(&"items".to_owned()), "{tables}");

    // --- queries -------------------------------------------------------------------------------
    for id in 1..50_i64 {
        db.query("SELECT name FROM items WHERE id = $1", &[&id])
            .await
            .expect("query");
    }
    let slow = pgha_json(&env, &["slow-queries", "--limit", "50"]).await;
    assert!(
        slow.as_array().into_iter().flatten().any(|q| q["query"]
            .as_str()
            .is_some_and(|t| t.contains("FROM items WHERE id"))
            && q["calls"].as_i64().unwrap_or(0) >= 49),
        "{slow}"
    );
    let plan = pgha_json(&env, &["explain", "SELECT name FROM items WHERE id = 42"]).await;
    assert_eq!(plan["uses_index"], true, "{plan}");
    assert_eq!(plan["indexes"][0], "items_pkey");
    let plan = pgha_json(&env, &["explain", "--analyze", "DELETE FROM items"]).await;
    assert!(plan["execution_ms"].as_f64().is_some(), "{plan}");
    let rows: i64 = db
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        rows, 1800,
        "EXPLAIN ANALYZE of a write runs in a rolled-back transaction"
    );
    let r = pgha(&env, &["explain", "SELECT 1; DROP TABLE items"]).await;
    assert_eq!(r.code, exit_codes::DATABASE, "one statement only: {r:?}");

    // --- pgvector indexes ----------------------------------------------------------------------
    let built = pgha_json(
        &env,
        &[
            "vector",
            "create-index",
            "items",
            "--m",
            "8",
            "--ef-construction",
            "32",
            "--distance",
            "cosine",
        ],
    )
    .await;
    assert!(
        built["statement"]
            .as_str()
            .is_some_and(|s| s.contains("USING hnsw") && s.contains("vector_cosine_ops")),
        "{built}"
    );
    let ivf = pgha_json(
        &env,
        &[
            "vector",
            "create-index",
            "items",
            "--ivfflat-lists",
            "10",
            "--name",
            "items_ivf",
        ],
    )
    .await;
    assert!(
        ivf["statement"].as_str().is_some_and(|s| s.contains("lists = 10")),
        "{ivf}"
    );
    let list = pgha_json(&env, &["vector", "list"]).await;
    let mut methods: Vec<String> = names(&list, "method");
    methods.sort();
    assert_eq!(methods, ["hnsw", "ivfflat"], "{list}");
    assert!(list
        .as_array()
        .into_iter()
        .flatten()
        .all(|i| i["valid"] == true && i["size_bytes"].as_i64() > Some(0)));
    pgha(&env, &["vector", "rebuild", "items_ivf"]).await.ok();
    let plan = pgha_json(
        &env,
        &[
            "explain",
            "SELECT id FROM items ORDER BY embedding <=> '[1,2,3]' LIMIT 5",
        ],
    )
    .await;
    assert_eq!(plan["uses_index"], true, "the k-NN query uses the HNSW index: {plan}");

    // --- tuning --------------------------------------------------------------------------------
    let advice = pgha_json(&env, &["tune", "--memory", "2GB", "--cpus", "2"]).await;
    let recs = &advice["recommendations"];
    let value = |n: &str| {
        recs.as_array()
            .into_iter()
            .flatten()
            .find(|r| r["name"] == n)
            .map(|r| (r["value"].clone(), r["needs_restart"].clone()))
    };
    assert_eq!(value("shared_buffers"), Some((Value::from("512MB"), Value::from(true))));
    assert_eq!(value("work_mem").map(|v| v.1), Some(Value::from(false)));
    assert!(value("max_parallel_io_workers").is_none());
    let dry = pgha_json(
        &env,
        &["--dry-run", "tune", "--memory", "2GB", "--cpus", "2", "--apply"],
    )
    .await;
    assert!(dry["applied"].is_null(), "a dry run applies nothing: {dry}");
    let refused = pgha(&env, &["tune", "--memory", "2GB", "--cpus", "2", "--apply"]).await;
    assert_eq!(refused.code, exit_codes::PRECONDITION, "{refused:?}");
    let declined =
        crate::common::pgha_on_terminal(&env, &["tune", "--memory", "2GB", "--cpus", "2", "--apply"], "n").await;
    assert_eq!(declined.code, exit_codes::PRECONDITION, "{declined:?}");
    assert!(declined.stderr.contains("Proceed? [y/N]"), "asked: {declined:?}");
    assert_ne!(
        pgha_json(&env, &["config", "show"]).await["postgresql"]["parameters"]["shared_buffers"],
        "512MB",
        "declined: nothing applied"
    );
    let applied = pgha_json(&env, &["--yes", "tune", "--memory", "2GB", "--cpus", "2", "--apply"]).await;
    assert_eq!(applied["applied"]["applied"]["random_page_cost"], "1.1", "{applied}");
    let config = pgha_json(&env, &["config", "show"]).await;
    assert_eq!(
        config["postgresql"]["parameters"]["shared_buffers"], "512MB",
        "{config}"
    );

    // --- bad input -----------------------------------------------------------------------------
    let r = pgha(&env, &["restart", "no-such-member"]).await;
    assert_eq!(r.code, exit_codes::NOT_FOUND, "{r:?}");
    assert!(r.stderr.contains("no member \"no-such-member\""), "{r:?}");
    let r = pgha(&env, &["switchover", "--at", "tomorrow"]).await;
    assert_eq!(r.code, exit_codes::USAGE, "{r:?}");
    let r = pgha(&env, &["switchover", "--at", "2999-01-01T02:00:00"]).await;
    assert_eq!(
        r.code,
        exit_codes::USAGE,
        "a schedule without a time zone is refused: {r:?}"
    );
    let r = pgha(&env, &["--patroni", "http://127.0.0.1:1", "--timeout", "5s", "status"]).await;
    assert_eq!(r.code, exit_codes::UNREACHABLE, "{r:?}");
    let r = pgha(&env, &["--format", "json", "--patroni", "http://127.0.0.1:1", "status"]).await;
    assert_eq!(
        r.json()["error"]["exit_code"],
        exit_codes::UNREACHABLE,
        "errors are JSON on stdout too"
    );
    let r = pgha(&env, &["--patroni", "not a url", "status"]).await;
    assert_eq!(r.code, exit_codes::USAGE, "{r:?}");
    let r = pgha(&env, &["no-such-command"]).await;
    assert_eq!(r.code, exit_codes::USAGE, "{r:?}");
    let r = pgha(&env, &["failover", "--candidate", "no-such-member", "--yes"]).await;
    assert_eq!(r.code, exit_codes::NOT_FOUND, "{r:?}");
    let r = pgha(&env, &["tune", "--memory", "lots", "--cpus", "2"]).await;
    assert_eq!(r.code, exit_codes::USAGE, "{r:?}");
    let r = pgha(&env, &["config", "patch", "[1, 2]"]).await;
    assert_eq!(r.code, exit_codes::USAGE, "{r:?}");
    let mut wrong = env.clone();
    wrong.retain(|(k, _)| k != "PGHA_PATRONI_PASSWORD");
    wrong.push(("PGHA_PATRONI_PASSWORD".into(), "wrong".into()));
    let r = pgha(&wrong, &["reload"]).await;
    assert_eq!(r.code, exit_codes::PATRONI, "{r:?}");
    assert!(r.stderr.contains("authentication failed"), "{r:?}");
    let secret = cluster.credentials().superuser.password.expose().to_owned();
    let r = pgha(&env, &["-vv", "--format", "json", "status"]).await.ok();
    assert!(
        !r.stderr.contains(&secret) && !r.stdout.contains(&secret),
        "the password leaked into the output"
    );

    // --- remove: the cluster's keys deleted from etcd, confirmed as patronictl confirms it -----
    // (last: the cluster is left without its DCS state.)
    let scope = cluster.scope();
    let r = pgha(&env, &["--yes", "remove", &scope]).await;
    assert_eq!(r.code, exit_codes::USAGE, "no etcd configured: {r:?}");
    assert!(r.stderr.contains("PGHA_ETCD_URLS"), "{r:?}");
    let mut etcd = env.clone();
    etcd.push(("PGHA_ETCD_URLS".into(), cluster.etcd_urls().join(",")));
    etcd.push(("PGHA_ETCD_NAMESPACE".into(), cluster.etcd_namespace().into()));
    let mut etcd_scoped = etcd.clone();
    etcd_scoped.push(("PGHA_PATRONI_SCOPE".into(), scope.clone()));
    for not_a_name in ["", "/"] {
        // The prefix would be the whole namespace's: every cluster in it.
        let r = pgha(&etcd, &["--yes", "remove", not_a_name]).await;
        assert_eq!(r.code, exit_codes::USAGE, "{not_a_name:?}: {r:?}");
    }
    let r = pgha(&etcd_scoped, &["--yes", "remove", "another-cluster"]).await;
    assert_eq!(r.code, exit_codes::USAGE, "not the configured cluster: {r:?}");
    // etcd from Patroni's own configuration file, as on a database host.
    let patroni_yml = cluster.patroni_config_file(&leader).expect("patroni.yml");
    let listed = pgha_json(
        &env,
        &["-c", &patroni_yml.display().to_string(), "--dry-run", "remove", &scope],
    )
    .await;
    let keys = |v: &Value| -> Vec<String> { names_of(&v["keys"]) };
    let before = keys(&listed);
    let leader = listed["leader"].as_str().expect("a leader key").to_owned();
    for key in ["config", "initialize", "leader", &format!("members/{leader}")] {
        assert!(before.iter().any(|k| k == key), "{key} in {listed}");
    }
    assert_eq!(listed["removed"], false);
    let r = pgha(&etcd, &["remove", &scope]).await;
    assert_eq!(r.code, exit_codes::PRECONDITION, "no --yes and no terminal: {r:?}");
    let r = pgha(&etcd, &["--yes", "remove", &scope]).await;
    assert_eq!(r.code, exit_codes::PRECONDITION, "a leader key, not named: {r:?}");
    assert!(r.stderr.contains(&format!("has a leader, {leader}")), "{r:?}");
    let r = pgha_answering(&etcd, &["remove", &scope], &["another-cluster"]).await;
    assert_eq!(r.code, exit_codes::PRECONDITION, "{r:?}");
    assert!(r.stderr.contains("not the cluster's"), "{r:?}");
    let r = pgha_answering(&etcd, &["remove", &scope], &[&scope, "Yes I am aware", "nobody"]).await;
    assert_eq!(r.code, exit_codes::PRECONDITION, "the wrong leader named: {r:?}");
    let still = pgha_json(&etcd, &["--dry-run", "remove", &scope]).await;
    let kept = keys(&still);
    assert!(
        before.iter().all(|k| kept.contains(k)),
        "nothing was deleted: {before:?} then {still}"
    );
    let r = pgha_answering(
        &etcd,
        &["--format", "json", "remove", &scope],
        &[&scope, "Yes I am aware", &leader],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("Type \"Yes I am aware\""), "{r:?}");
    let removed = r.json();
    assert_eq!(removed["removed"], true, "{removed}");
    let deleted = keys(&removed);
    for key in ["config", "initialize", "leader", &format!("members/{leader}")] {
        assert!(deleted.iter().any(|k| k == key), "{key} deleted: {removed}");
    }
}

fn names_of(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}
