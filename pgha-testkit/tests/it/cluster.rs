//! The testkit tested against the real thing: etcd, Patroni, PostgreSQL 15, pgvector, pgBackRest.

use std::time::{Duration, Instant};

use pgha_testkit::{wait_for, BackupType, LocalCluster, PatroniFlavor, ProcRef};
use pgvector::Vector;

const READY: Duration = Duration::from_secs(90);

async fn replicas(cluster: &LocalCluster) -> (String, Vec<String>) {
    let leader = cluster.leader().await.expect("leader");
    let others = cluster.member_names().into_iter().filter(|n| *n != leader).collect();
    (leader, others)
}

/// Waits until `sql` returns `expected` (first column of the first row, as text) on `member`.
async fn wait_for_value(cluster: &LocalCluster, member: &str, sql: &str, expected: &str) {
    wait_for(
        &format!("{sql} = {expected} on {member}"),
        Duration::from_secs(30),
        || async {
            let client = cluster.connect(member).await?;
            let rows = client
                .query(sql, &[])
                .await
                .map_err(|source| pgha_testkit::Error::Sql {
                    member: member.into(),
                    source,
                })?;
            Ok(rows
                .first()
                .and_then(|r| r.get::<_, Option<String>>(0))
                .filter(|v| v == expected)
                .map(drop))
        },
    )
    .await
    .expect("value replicated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_serve_pgvector_back_up_and_leave_nothing_behind() {
    let cluster = LocalCluster::builder()
        .members(3)
        .start()
        .await
        .expect("cluster starts");

    // One leader, two streaming replicas — by Patroni and by SQL.
    let status = cluster.cluster_status().await.expect("status");
    assert_eq!(status.len(), 3);
    assert_eq!(status.iter().filter(|m| m.role == "leader").count(), 1, "{status:?}");
    let (leader, standbys) = replicas(&cluster).await;
    assert!(cluster.is_writable_primary(&leader).await.expect("leader SQL"));
    for s in &standbys {
        assert!(
            cluster.is_streaming(s).await.expect("standby SQL"),
            "{s} is not streaming"
        );
        assert!(!cluster.is_writable_primary(s).await.expect("standby SQL"));
    }

    // A write on the leader is read back on both replicas; a write on a replica is refused.
    let app = cluster.connect(&leader).await.expect("connect leader");
    app.batch_execute("CREATE TABLE kv (k text PRIMARY KEY, v text); INSERT INTO kv VALUES ('hello', 'world')")
        .await
        .expect("write on leader");
    for s in &standbys {
        wait_for_value(&cluster, s, "SELECT v FROM kv WHERE k = 'hello'", "world").await;
        let err = cluster
            .connect(s)
            .await
            .expect("connect")
            .batch_execute("INSERT INTO kv VALUES ('x', 'y')")
            .await;
        let code = err.expect_err("standby must refuse writes").code().cloned();
        assert_eq!(code, Some(tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION));
    }

    // pgvector: CREATE EXTENSION in a fresh database, HNSW index, k-NN on leader and on a standby.
    let admin = cluster.connect_superuser(&leader, "postgres").await.expect("superuser");
    admin.batch_execute("CREATE DATABASE vectest").await.expect("create db");
    let db = cluster.connect_superuser(&leader, "vectest").await.expect("vectest");
    db.batch_execute(
        "CREATE EXTENSION vector;
         CREATE TABLE items (id int PRIMARY KEY, embedding vector(3));",
    )
    .await
    .expect("extension and table");
    for i in 0..200 {
        let v = Vector::from(vec![i as f32, (i % 7) as f32, 1.0]);
        db.execute("INSERT INTO items VALUES ($1, $2)", &[&i, &v])
            .await
            .expect("insert");
    }
    db.batch_execute("CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_l2_ops); ANALYZE items")
        .await
        .expect("hnsw");
    // 200 rows fit in one page, where a sequential scan is cheaper; make the planner show the index.
    db.batch_execute("SET enable_seqscan = off").await.expect("set");
    let knn = "SELECT id FROM items ORDER BY embedding <-> $1 LIMIT 3";
    let query = Vector::from(vec![100.0_f32, 2.0, 1.0]);
    let explain = db
        .query(&format!("EXPLAIN {knn}"), &[&query])
        .await
        .expect("explain")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        explain.contains("items_hnsw"),
        "k-NN does not use the HNSW index:\n{explain}"
    );
    let ids = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>();
    let on_leader = ids(db.query(knn, &[&query]).await.expect("knn on leader"));
    assert_eq!(
        on_leader[0], 100,
        "nearest neighbour of (100,2,1) is row 100: {on_leader:?}"
    );
    let standby = &standbys[0];
    let sdb = wait_for("vectest on the standby", Duration::from_secs(30), || async {
        let c = cluster.connect_superuser(standby, "vectest").await?;
        let n: i64 = c
            .query_one("SELECT count(*) FROM items", &[])
            .await
            .map_err(|source| pgha_testkit::Error::Sql {
                member: standby.clone(),
                source,
            })?
            .get(0);
        Ok((n == 200).then_some(c))
    })
    .await
    .expect("rows replicated");
    sdb.batch_execute("SET enable_seqscan = off").await.expect("set");
    assert_eq!(ids(sdb.query(knn, &[&query]).await.expect("knn on standby")), on_leader);

    // pgBackRest: check archives WAL; a full backup shows up in `info --output=json`.
    cluster.pgbackrest(&["check"]).await.expect("pgbackrest check");
    cluster.backup(BackupType::Full).await.expect("full backup");
    let info = cluster.backup_info().await.expect("info");
    let stanza = &info[0];
    assert_eq!(stanza["name"], cluster.scope().as_str());
    assert_eq!(stanza["status"]["code"], 0, "{stanza}");
    let backups = stanza["backup"].as_array().expect("backup list");
    assert!(backups.iter().any(|b| b["type"] == "full"), "{backups:?}");

    // HAProxy as Patroni's docs set it up: one port to the primary, one to the replicas.
    let haproxy = cluster.start_haproxy().await.expect("haproxy");
    let creds = cluster.credentials().app;
    let through = |port: u16| {
        let mut c = tokio_postgres::Config::new();
        c.host("127.0.0.1")
            .port(port)
            .user(&creds.username)
            .password(creds.password.expose())
            .dbname(cluster.database());
        c
    };
    for (port, expect_standby) in [(haproxy.primary, false), (haproxy.replicas, true)] {
        let (client, conn) = through(port)
            .connect(tokio_postgres::NoTls)
            .await
            .expect("through haproxy");
        tokio::spawn(conn);
        let standby: bool = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .expect("query")
            .get(0);
        assert_eq!(standby, expect_standby, "port {port}");
    }

    // Shutdown stops every process it started, by PID, and removes the directory.
    let procs = cluster.processes();
    assert!(
        procs.len() >= 10,
        "3 etcd members + 3 Patroni + 3 postmasters + haproxy, got {procs:?}"
    );
    shutdown_leaves_nothing(cluster, &procs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_leader_elects_a_new_one_and_the_old_node_rejoins() {
    let cluster = LocalCluster::builder()
        .members(3)
        .start()
        .await
        .expect("cluster starts");
    let old = cluster.leader().await.expect("leader");
    let timing = cluster.timing();
    let old_procs = (
        cluster.patroni_process(&old).expect("member").expect("patroni running"),
        cluster
            .postmaster_process(&old)
            .expect("member")
            .expect("postmaster running"),
    );

    let killed_at = Instant::now();
    cluster.kill_node(&old).expect("kill -9");
    assert!(
        !old_procs.0.is_alive() && !old_procs.1.is_alive(),
        "node processes survived kill -9"
    );
    // Patroni promotes once the leader key expires (ttl) and a replica runs its HA loop (loop_wait).
    let bound = Duration::from_secs(u64::from(timing.ttl + timing.loop_wait) + 15);
    let new = cluster
        .wait_for_new_leader(&old, bound)
        .await
        .expect("new leader within ttl + loop_wait + margin");
    let took = killed_at.elapsed();
    assert_ne!(new, old);
    eprintln!(
        "new leader {new} after {took:?} (ttl {}, loop_wait {})",
        timing.ttl, timing.loop_wait
    );

    cluster.start_node(&old).expect("restart old node");
    cluster
        .wait_streaming(&old, READY)
        .await
        .expect("old leader rejoins as a streaming replica");
    assert!(!cluster.is_writable_primary(&old).await.expect("sql"));
    assert_eq!(cluster.leader().await.expect("leader"), new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_api_switchover_replay_pause_freeze_and_etcd_loss() {
    let cluster = LocalCluster::builder()
        .members(3)
        .start()
        .await
        .expect("cluster starts");
    let (leader, standbys) = replicas(&cluster).await;

    // Switchover to a chosen candidate through the REST API (with basic auth).
    let target = standbys[0].clone();
    let answer = cluster.switchover(Some(&target)).await.expect("switchover");
    assert!(answer.contains(&target), "{answer}");
    let new = cluster.wait_for_new_leader(&leader, READY).await.expect("new leader");
    assert_eq!(new, target);
    cluster.wait_ready(READY).await.expect("all streaming after switchover");

    // Replay paused on a standby: WAL keeps arriving, replay stops (and Patroni cannot undo it).
    let standby = cluster
        .member_names()
        .into_iter()
        .find(|n| *n != new)
        .expect("a standby");
    let lsns = "SELECT pg_last_wal_replay_lsn()::text, \
                pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8";
    let replay_gap = |member: String| {
        let cluster = &cluster;
        async move {
            let rows = cluster.superuser_query(&member, lsns).await.expect("lsn query");
            (rows[0].get::<_, String>(0), rows[0].get::<_, f64>(1))
        }
    };
    cluster.pause_replay(&standby).expect("pause");
    let (replayed_before, _) = replay_gap(standby.clone()).await;
    let writer = cluster.connect(&new).await.expect("connect leader");
    writer
        .batch_execute("CREATE TABLE filler AS SELECT g FROM generate_series(1, 50000) g")
        .await
        .expect("write");
    // Longer than two HA loops: a replay paused with pg_wal_replay_pause() would be resumed by now.
    tokio::time::sleep(Duration::from_secs(u64::from(2 * cluster.timing().loop_wait) + 1)).await;
    let (replayed_after, gap) = replay_gap(standby.clone()).await;
    assert_eq!(replayed_before, replayed_after, "replay moved while paused");
    assert!(gap > 0.0, "WAL must keep arriving while replay is paused");
    cluster.resume_replay(&standby).expect("resume");
    wait_for("replay to catch up", READY, || async {
        let (_, gap) = replay_gap(standby.clone()).await;
        Ok((gap == 0.0).then_some(()))
    })
    .await
    .expect("caught up");

    // The whole DCS down (every etcd member): without failsafe mode, the leader demotes itself
    // (read-only) once the DCS is gone.
    cluster.stop_etcd().expect("stop etcd");
    assert_eq!(cluster.etcd_members_healthy().await, [false, false, false]);
    assert!(
        cluster.stop_etcd().is_err(),
        "stopping an etcd that is down is NotRunning"
    );
    wait_for("the leader to demote without DCS", READY, || async {
        Ok(matches!(cluster.is_writable_primary(&new).await, Ok(false)).then_some(()))
    })
    .await
    .expect("demotion");
    cluster.start_etcd_again().await.expect("etcd back");
    assert_eq!(cluster.etcd_members_healthy().await, [true, true, true]);
    let leader = cluster.wait_ready(READY).await.expect("cluster recovers with etcd");
    assert!(cluster.is_writable_primary(&leader).await.expect("sql"));

    // Freeze the leader past the TTL: the others elect a new leader. Thawed, Patroni settles on one
    // writable leader again. Nothing more is asserted: Patroni 3.0.2 with etcd3 has been seen to
    // let the thawed old leader take the lock back, leaving a replica that followed the interim
    // leader on a newer timeline unable to stream ("highest timeline N of the primary is behind
    // recovery timeline N+1") — the reliability suite examines exactly this case.
    cluster.freeze_node(&leader).expect("freeze");
    let during = cluster
        .wait_for_new_leader(&leader, READY)
        .await
        .expect("leader during freeze");
    cluster.thaw_node(&leader).expect("thaw");
    let after = wait_for("one writable leader after thaw", READY, || async {
        let status = cluster.cluster_status().await?;
        let leaders: Vec<_> = status.iter().filter(|m| m.role == "leader").collect();
        match leaders.as_slice() {
            [one] if cluster.is_writable_primary(&one.name).await? => Ok(Some(one.name.clone())),
            _ => Ok(None),
        }
    })
    .await
    .expect("leader after thaw");
    eprintln!("leader during freeze: {during}; after thaw: {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_4_cluster_starts_replicates_and_fails_over() {
    let cluster = LocalCluster::builder()
        .patroni(PatroniFlavor::V4)
        .members(3)
        .start()
        .await
        .expect("cluster starts");
    assert_eq!(cluster.patroni_major(), 4, "version {}", cluster.patroni_version());
    let status = cluster.cluster_status().await.expect("status");
    // Patroni 3.0.4+ reports the replication state of replicas.
    assert!(
        status
            .iter()
            .filter(|m| m.role != "leader")
            .all(|m| m.state == "streaming"),
        "{status:?}"
    );
    let (leader, standbys) = replicas(&cluster).await;
    let app = cluster.connect(&leader).await.expect("connect");
    app.batch_execute("CREATE TABLE t (v text); INSERT INTO t VALUES ('four')")
        .await
        .expect("write");
    for s in &standbys {
        wait_for_value(&cluster, s, "SELECT v FROM t", "four").await;
    }
    cluster.kill_node(&leader).expect("kill -9");
    let timing = cluster.timing();
    let bound = Duration::from_secs(u64::from(timing.ttl + timing.loop_wait) + 15);
    let new = cluster
        .wait_for_new_leader(&leader, bound)
        .await
        .expect("failover on Patroni 4");
    assert!(standbys.contains(&new));
}

/// Helper run in a child process by `a_killed_run_is_reaped_by_the_next_start`: starts a cluster,
/// prints its directory and aborts without running any destructor, like a crashed test.
#[tokio::test]
#[ignore = "helper: only run as a child process by the reaper test"]
async fn reaper_helper_start_and_abort() {
    if std::env::var_os("PGHA_REAPER_HELPER").is_none() {
        return;
    }
    let cluster = LocalCluster::builder()
        .members(1)
        .pgbackrest(false)
        .start()
        .await
        .expect("helper cluster");
    println!("CLUSTER_DIR={}", cluster.base_dir().display());
    std::process::abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_run_is_reaped_by_the_next_start() {
    // The helper's name as the test harness knows it: its module path without the crate's name.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let helper = format!("{module}::reaper_helper_start_and_abort");
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", &helper, "--ignored", "--nocapture"])
        .env("PGHA_REAPER_HELPER", "1")
        .output()
        .expect("run helper");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CLUSTER_DIR="))
        .unwrap_or_else(|| {
            panic!(
                "helper printed no dir: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let dir = std::path::PathBuf::from(dir);
    let orphan = LocalCluster::attach(&dir).expect("state left behind");
    let procs = orphan.processes();
    assert!(
        procs.len() >= 5,
        "3 etcd members, Patroni and a postmaster left running: {procs:?}"
    );
    drop(orphan); // an attached handle never stops anything

    assert!(procs.iter().all(ProcRef::is_alive));
    pgha_testkit::reap_stale_clusters();
    let alive: Vec<&ProcRef> = procs.iter().filter(|p| p.is_alive()).collect();
    assert!(alive.is_empty(), "reaper left {alive:?}");
    assert!(!dir.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_strict_mode_and_extra_parameters_reach_postgresql() {
    let cluster = LocalCluster::builder()
        .members(3)
        .pgbackrest(false)
        .synchronous_mode(true, true)
        .pg_parameter("work_mem", "8MB")
        .start()
        .await
        .expect("cluster starts");
    let leader = cluster.leader().await.expect("leader");
    // Patroni names a synchronous standby a loop or two after start.
    let sync = wait_for("a sync standby", READY, || async {
        let status = cluster.cluster_status().await?;
        Ok(status.into_iter().find(|m| m.role == "sync_standby").map(|m| m.name))
    })
    .await
    .expect("sync standby");
    assert_ne!(sync, leader);
    let rows = cluster
        .superuser_query(
            &leader,
            "SELECT current_setting('synchronous_standby_names'), current_setting('work_mem')",
        )
        .await
        .expect("settings");
    let names: String = rows[0].get(0);
    assert!(
        names.contains(&sync) || names.contains('*'),
        "synchronous_standby_names = {names:?}"
    );
    assert_eq!(rows[0].get::<_, String>(1), "8MB");
    // A commit on the leader is acknowledged by the synchronous standby.
    let app = cluster.connect(&leader).await.expect("connect");
    app.batch_execute("CREATE TABLE s (v int); INSERT INTO s VALUES (1)")
        .await
        .expect("sync commit");
    let state = cluster
        .superuser_query(
            &leader,
            "SELECT application_name, sync_state FROM pg_stat_replication WHERE sync_state = 'sync'",
        )
        .await
        .expect("pg_stat_replication");
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].get::<_, String>(0), sync);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_reaches_neither_etcd_nor_its_standbys_but_still_its_clients() {
    let cluster = LocalCluster::builder()
        .members(3)
        .start()
        .await
        .expect("cluster starts");
    let (old, standbys) = replicas(&cluster).await;
    let timing = cluster.timing();
    let leader = cluster.connect(&old).await.expect("connect");
    leader
        .batch_execute("CREATE TABLE cut (n int); INSERT INTO cut VALUES (0)")
        .await
        .expect("table");
    for s in &standbys {
        wait_for_value(&cluster, s, "SELECT count(*)::text FROM cut", "1").await;
    }

    cluster.partition_node(&old).expect("partition");
    // The client side is not cut: the leader still takes writes until it demotes itself.
    leader
        .batch_execute("INSERT INTO cut SELECT generate_series(1, 1000)")
        .await
        .expect("the cut-off leader still takes writes from its clients");
    let lsn_after: String = leader
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("the cut-off leader still answers its clients")
        .get(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // No WAL reached the standbys, not even over the replication connections opened before
    // the cut.
    for s in &standbys {
        let behind: bool = cluster
            .connect(s)
            .await
            .expect("connect")
            .query_one("SELECT pg_last_wal_receive_lsn() < $1::text::pg_lsn", &[&lsn_after])
            .await
            .expect("standby answers")
            .get(0);
        assert!(behind, "{s} received WAL from the partitioned leader");
    }

    let bound = Duration::from_secs(u64::from(timing.ttl + timing.loop_wait) + 30);
    let new = cluster
        .wait_for_new_leader(&old, bound)
        .await
        .expect("the others elect a new leader");
    assert_ne!(new, old);
    cluster.heal_partition().expect("heal");
    if cluster.wait_streaming(&old, READY).await.is_err() {
        cluster.reinitialize(&old).await.expect("reinitialize the old leader");
        cluster
            .wait_streaming(&old, READY)
            .await
            .expect("old leader streams again");
    }
    // The rows the cut-off leader took may still survive: it keeps archiving into the shared
    // pgBackRest repository, which the new leader restores from when it is promoted — as a
    // repository reachable from both sides of a real partition would.
    let kept: i64 = cluster
        .connect(&new)
        .await
        .expect("connect")
        .query_one("SELECT count(*) FROM cut", &[])
        .await
        .expect("count")
        .get(0);
    eprintln!("rows on the new timeline after the partition: {kept} of 1001");
    let rules = std::process::Command::new("iptables")
        .arg("-S")
        .output()
        .expect("iptables");
    let scope = cluster.scope();
    assert!(
        !String::from_utf8_lossy(&rules.stdout).contains(&scope),
        "firewall rules of {scope} left after the heal"
    );
}

/// The Patroni leader's member as Patroni reports it, with its timeline.
async fn leader_and_timeline(cluster: &LocalCluster) -> (String, Option<u64>) {
    let status = cluster.cluster_status().await.expect("status");
    let leader = status
        .into_iter()
        .find(|m| m.role == "leader")
        .unwrap_or_else(|| panic!("no leader"));
    (leader.name, leader.timeline)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_etcd_raft_leader_keeps_the_patroni_leader_and_etcd_members_come_back() {
    let cluster = LocalCluster::builder()
        .members(3)
        .pgbackrest(false)
        .start()
        .await
        .expect("cluster starts");
    let timing = cluster.timing();

    // Three etcd members by default, every one in Patroni's configuration and in the info.
    let urls = cluster.etcd_urls();
    assert_eq!(urls.len(), 3, "{urls:?}");
    assert_eq!(cluster.info().etcd_urls, urls);
    let config_file = cluster.base_dir().join("node1/patroni.yml");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_file).expect("patroni.yml")).expect("JSON");
    let hosts: Vec<String> = urls.iter().map(|u| u.replace("http://", "")).collect();
    assert_eq!(config["etcd3"]["hosts"], serde_json::json!(hosts));
    for i in 0..3 {
        assert!(cluster.base_dir().join(format!("etcd{i}.log")).exists(), "etcd{i}.log");
    }
    assert_eq!(cluster.etcd_members_healthy().await, [true, true, true]);

    let (leader, timeline) = leader_and_timeline(&cluster).await;
    let app = cluster.connect(&leader).await.expect("connect leader");
    app.batch_execute("CREATE TABLE beat (n int)").await.expect("table");

    // Kill the raft leader: the two others elect a new one, and Patroni, which lists all three,
    // keeps renewing its leader key through them.
    let raft = cluster.etcd_leader().await.expect("a raft leader");
    let killed = Instant::now();
    cluster.kill_etcd_member(raft).expect("kill the raft leader");
    assert!(
        cluster.kill_etcd_member(raft).is_err(),
        "a killed member is not running"
    );
    let new_raft = wait_for("a new raft leader", Duration::from_secs(30), || async {
        Ok(cluster.etcd_leader().await.filter(|&i| i != raft))
    })
    .await
    .expect("etcd elects a new raft leader");
    eprintln!(
        "raft leader etcd{raft} killed; etcd{new_raft} leads after {:?}",
        killed.elapsed()
    );
    let healthy = cluster.etcd_members_healthy().await;
    assert_eq!(healthy.iter().filter(|h| **h).count(), 2, "{healthy:?}");
    assert!(!healthy[raft], "{healthy:?}");

    // Longer than the leader key's TTL: a leader that could not renew its key would have lost it
    // (and a replica would have been promoted onto a new timeline). Meanwhile every write on the
    // leader succeeds.
    let hold = Duration::from_secs(u64::from(timing.ttl + 2 * timing.loop_wait) + 2);
    let mut writes = 0_i32;
    while killed.elapsed() < hold {
        writes += 1;
        app.execute("INSERT INTO beat VALUES ($1)", &[&writes])
            .await
            .unwrap_or_else(|e| panic!("write {writes} on {leader} with etcd{raft} down: {e}"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        leader_and_timeline(&cluster).await,
        (leader.clone(), timeline),
        "the Patroni leader or its timeline changed after the raft leader was killed"
    );
    assert!(cluster.is_writable_primary(&leader).await.expect("sql"));
    eprintln!("{writes} writes on {leader} over {hold:?} with etcd{raft} down");

    // Back on its data directory and ports, it rejoins as a follower.
    cluster
        .start_etcd_member(raft)
        .await
        .expect("the killed member starts again");
    assert_eq!(cluster.etcd_members_healthy().await, [true, true, true]);
    assert!(cluster.etcd_leader().await.is_some());

    // A follower frozen and thawed.
    let raft_now = cluster.etcd_leader().await;
    let follower = (0..3).find(|&i| Some(i) != raft_now).expect("a follower");
    cluster.freeze_etcd_member(follower).expect("freeze");
    let healthy = cluster.etcd_members_healthy().await;
    assert!(!healthy[follower], "a frozen member answers: {healthy:?}");
    assert_eq!(healthy.iter().filter(|h| **h).count(), 2, "{healthy:?}");
    cluster.thaw_etcd_member(follower).expect("thaw");
    wait_for("the thawed member to be healthy", Duration::from_secs(30), || async {
        Ok(cluster.etcd_members_healthy().await[follower].then_some(()))
    })
    .await
    .expect("healthy after thaw");
    assert!(
        cluster.freeze_etcd_member(7).is_err(),
        "there is no etcd7 in a 3-member etcd"
    );
    assert_eq!(leader_and_timeline(&cluster).await, (leader.clone(), timeline));

    // A member stopped cleanly: etcdctl (which is given every member) still clears the cluster's
    // keys through the others; started again, it is healthy.
    cluster.stop_etcd_member(follower).expect("stop a follower");
    assert!(!cluster.etcd_members_healthy().await[follower]);
    cluster.clear_dcs().expect("etcdctl del --prefix with a member down");
    cluster.start_etcd_member(follower).await.expect("start it again");
    assert_eq!(cluster.etcd_members_healthy().await, [true, true, true]);

    // Teardown stops every member by PID, a frozen one included.
    cluster.freeze_etcd_member(follower).expect("freeze before shutdown");
    let procs = cluster.processes();
    shutdown_leaves_nothing(cluster, &procs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_etcd_member_on_request() {
    let cluster = LocalCluster::builder()
        .members(1)
        .etcd_members(1)
        .pgbackrest(false)
        .start()
        .await
        .expect("cluster starts");
    assert_eq!(cluster.etcd_urls().len(), 1);
    assert_eq!(cluster.etcd_members_healthy().await, [true]);
    assert_eq!(cluster.etcd_leader().await, Some(0));
    let leader = cluster.leader().await.expect("leader");
    assert!(cluster.is_writable_primary(&leader).await.expect("sql"));
}

/// Shuts `cluster` down and checks that none of `procs` is alive and its directory is gone.
fn shutdown_leaves_nothing(cluster: LocalCluster, procs: &[ProcRef]) {
    let dir = cluster.base_dir();
    cluster.shutdown();
    let alive: Vec<&ProcRef> = procs.iter().filter(|p| p.is_alive()).collect();
    assert!(alive.is_empty(), "still alive after shutdown: {alive:?}");
    assert!(!dir.exists(), "{} not removed", dir.display());
}
