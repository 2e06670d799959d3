//! pgha-client against real Patroni clusters started by pgha-testkit: every test under this
//! module starts one (`.config/nextest.toml` runs them at most two at a time; `make unit` skips them).

mod etcd;
mod hostile;
#[cfg(feature = "metrics")]
mod metrics;
mod spans;
mod synchronous;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use pgha_client::tokio_postgres::IsolationLevel;
use pgha_client::vector::{Distance, IndexKind, SearchOptions, VectorTable};
use pgha_client::{ChannelBinding, Client, ClientBuilder, Intent, LagBound, SslMode, TopologyEvent};
use pgha_testkit::{LocalCluster, ServerCertificate};
use pgvector::Vector;

fn init_tracing() {
    pgha_testkit::init_test_tracing("pgha_client=info,pgha_testkit=info");
}

/// Whether the cluster tests' clients watch etcd (`PGHA_TEST_DISCOVERY=etcd`) instead of polling
/// the Patroni REST APIs (the default; `make test-etcd` runs every cluster test this way).
fn watches_etcd() -> bool {
    std::env::var("PGHA_TEST_DISCOVERY").is_ok_and(|v| v == "etcd")
}

/// The source a healthy topology comes from in this run (see [`watches_etcd`]).
fn healthy_source() -> pgha_client::Source {
    if watches_etcd() {
        pgha_client::Source::Dcs
    } else {
        pgha_client::Source::Patroni
    }
}

fn builder_for(cluster: &LocalCluster) -> ClientBuilder {
    let creds = cluster.credentials();
    let mut b = Client::builder();
    if watches_etcd() {
        b = b
            .etcd(cluster.etcd_urls())
            .etcd_namespace(cluster.etcd_namespace())
            .patroni_scope(cluster.scope());
    }
    let mut b = b
        .patroni(cluster.patroni_urls())
        .user(creds.app.username.clone())
        .password(creds.app.password.expose())
        .dbname(cluster.database())
        .ssl_mode(SslMode::Disable)
        .application_name("pgha-client-tests");
    if let Some(rest) = creds.rest {
        b = b.patroni_auth(rest.username.clone(), rest.password.expose());
    }
    b
}

/// A 2-member cluster, its leader and standby, and a connected client.
async fn two_members() -> anyhow::Result<(LocalCluster, String, String, Client)> {
    init_tracing();
    let cluster = LocalCluster::builder().members(2).start().await?;
    let leader = cluster.leader().await?;
    let standby = cluster
        .member_names()
        .into_iter()
        .find(|m| *m != leader)
        .context("a standby")?;
    let client = builder_for(&cluster).connect().await?;
    Ok((cluster, leader, standby, client))
}

/// Which member served a query: its port, and whether it is a standby.
async fn whoami(conn: &pgha_client::Connection) -> pgha_client::Result<(u16, bool)> {
    let row = conn
        .query_one("SELECT current_setting('port')::int4, pg_is_in_recovery()", &[])
        .await?;
    let port: i32 = row.get(0);
    Ok((u16::try_from(port).unwrap_or(0), row.get(1)))
}

async fn port_map(cluster: &LocalCluster) -> anyhow::Result<BTreeMap<u16, String>> {
    let mut map = BTreeMap::new();
    for name in cluster.member_names() {
        map.insert(cluster.pg_port(&name)?, name);
    }
    Ok(map)
}

/// Heartbeat writer: bumps `seq` every 20 ms and records when each value was acknowledged.
struct Heartbeat {
    acks: Arc<Mutex<Vec<(i64, Instant)>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Heartbeat {
    async fn start(client: &Client) -> anyhow::Result<Self> {
        let ((), token) = client
            .op(Intent::Write)
            .run_with_token(async |c| {
                c.batch_execute(
                    "CREATE TABLE IF NOT EXISTS heartbeat (id int PRIMARY KEY, seq bigint NOT NULL); \
                     INSERT INTO heartbeat VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET seq = 0",
                )
                .await?;
                Ok(())
            })
            .await?;
        // A bounded read may legitimately miss a table created less than the bound ago.
        client.wait_for_standbys(token, Duration::from_secs(10)).await?;
        let acks = Arc::new(Mutex::new(vec![(0, Instant::now())]));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, a, s) = (client.clone(), acks.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut seq = 0_i64;
            while !s.load(Ordering::Relaxed) {
                seq += 1;
                c.op(Intent::Write)
                    .idempotent()
                    .run(async move |conn| {
                        Ok(conn
                            .execute("UPDATE heartbeat SET seq = $1 WHERE id = 1", &[&seq])
                            .await?)
                    })
                    .await?;
                a.lock().expect("lock").push((seq, Instant::now()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        });
        Ok(Self { acks, stop, task })
    }

    /// When the write after `seq` was acknowledged, if it was.
    fn ack_of_next(&self, seq: i64) -> Option<Instant> {
        let acks = self.acks.lock().expect("lock");
        acks.iter().find(|(s, _)| *s == seq + 1).map(|(_, t)| *t)
    }

    async fn stop(self) -> anyhow::Result<usize> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await??;
        Ok(self.acks.lock().expect("lock").len())
    }
}

/// Reads the heartbeat through `intent` with `bound`; fails the test if the value read is
/// missing a write acknowledged more than `bound` before the read started.
async fn bounded_read(client: &Client, hb: &Heartbeat, bound: Duration) -> anyhow::Result<(u16, bool)> {
    let started = Instant::now();
    let (seq, port, standby) = client
        .op(Intent::Standby)
        .max_lag(LagBound::time(bound))
        .run(async |c| {
            let (port, standby) = whoami(c).await?;
            let seq: i64 = c.query_one("SELECT seq FROM heartbeat WHERE id = 1", &[]).await?.get(0);
            Ok((seq, port, standby))
        })
        .await?;
    if let Some(next_ack) = hb.ack_of_next(seq) {
        ensure!(
            next_ack + bound >= started,
            "stale read: port {port} returned heartbeat {seq}, but {} was acknowledged {:?} before the read \
             started (bound {bound:?})",
            seq + 1,
            started - next_ack
        );
    }
    Ok((port, standby))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routes_by_intent_bounds_staleness_and_reads_your_writes() -> anyhow::Result<()> {
    init_tracing();
    let cluster = LocalCluster::builder().members(3).start().await?;
    let ports = port_map(&cluster).await?;
    let leader = cluster.leader().await?;
    let client = builder_for(&cluster)
        .lag_bound(LagBound::time(Duration::from_secs(1)))
        .connect()
        .await?;
    let mut events = client.events();
    let shown = format!("{client:?}");
    assert!(
        !shown.contains(cluster.credentials().app.password.expose()),
        "password in Debug: {shown}"
    );

    let topology = client.topology();
    assert_eq!(topology.primary().map(|m| m.name.as_str()), Some(leader.as_str()));
    assert_eq!(topology.standbys().count(), 2, "{topology:#?}");
    let health = client.health();
    assert!(health.is_ready(), "{health:?}");
    assert_eq!(health.primary.as_deref(), Some(leader.as_str()), "{health:?}");
    assert_eq!((health.members, health.standbys), (3, 2), "{health:?}");
    assert_eq!(health.source, healthy_source(), "{health:?}");
    assert!(health.refreshed_ago.is_some() && !health.shut_down, "{health:?}");

    // Writes always land on the leader; standby reads spread over both replicas.
    for _ in 0..20 {
        let (port, standby) = client.run(Intent::Write, async |c| whoami(c).await).await?;
        assert_eq!(ports[&port], leader);
        assert!(!standby);
    }
    let mut served = HashSet::new();
    for _ in 0..60 {
        let (port, standby) = client.run(Intent::Standby, async |c| whoami(c).await).await?;
        assert!(
            standby,
            "a Standby read ran on the primary while both standbys are fresh"
        );
        served.insert(ports[&port].clone());
    }
    assert_eq!(
        served.len(),
        2,
        "reads should be balanced over both standbys: {served:?}"
    );
    let (_, standby) = client.run(Intent::Primary, async |c| whoami(c).await).await?;
    assert!(!standby);

    // Held connections are chosen as operations are; on the primary, only Write may write.
    let held = client.get(Intent::Write).await?;
    let (port, standby) = whoami(&held).await?;
    assert!(ports[&port] == leader && !standby, "get(Write) on {port}");
    let read_only = async |c: &pgha_client::Connection| -> anyhow::Result<String> {
        Ok(c.query_one("SHOW default_transaction_read_only", &[]).await?.get(0))
    };
    assert_eq!(read_only(&held).await?, "off");
    drop(held);
    let held = client.get(Intent::Primary).await?;
    let (port, standby) = whoami(&held).await?;
    assert!(ports[&port] == leader && !standby, "get(Primary) on {port}");
    assert_eq!(read_only(&held).await?, "on", "a Primary checkout is read-only");
    let held = client.get(Intent::Standby).await?;
    assert!(whoami(&held).await?.1, "get(Standby) on a standby");
    drop(held);

    // Transaction options: isolation and DEFERRABLE as asked, READ ONLY from the intent.
    let settings = async |tx: &pgha_client::Transaction<'_>| -> pgha_client::Result<[String; 3]> {
        let row = tx
            .query_one(
                "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only'), \
                 current_setting('transaction_deferrable')",
                &[],
            )
            .await?;
        Ok([row.get(0), row.get(1), row.get(2)])
    };
    let got = client.transaction(async |tx| settings(tx).await).await?;
    assert_eq!(got, ["read committed", "off", "off"]);
    let got = client
        .op(Intent::Write)
        .isolation(IsolationLevel::RepeatableRead)
        .transaction(async |tx| settings(tx).await)
        .await?;
    assert_eq!(got, ["repeatable read", "off", "off"]);
    let got = client
        .op(Intent::Primary)
        .isolation(IsolationLevel::Serializable)
        .deferrable()
        .transaction(async |tx| settings(tx).await)
        .await?;
    assert_eq!(got, ["serializable", "on", "on"]);

    // Lag-bounded reads while the heartbeat writes; then replay stops on one standby.
    let hb = Heartbeat::start(&client).await?;
    let bound = Duration::from_secs(1);
    for _ in 0..50 {
        bounded_read(&client, &hb, bound).await?;
    }
    let paused = cluster
        .member_names()
        .into_iter()
        .find(|m| *m != leader)
        .context("a replica")?;
    cluster.pause_replay(&paused)?;
    let paused_at = Instant::now();
    // Within one refresh after the bound is exceeded, the paused standby gets no more reads.
    client
        .wait_for_topology(Duration::from_secs(10), |t| {
            t.member(&paused)
                .and_then(|m| m.staleness_at(Instant::now()))
                .is_some_and(|s| s > bound)
        })
        .await?;
    let excluded_after = paused_at.elapsed();
    let mut on_paused = 0;
    let mut reads = 0;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let (port, _) = bounded_read(&client, &hb, bound).await?;
        reads += 1;
        if ports[&port] == paused {
            on_paused += 1;
        }
    }
    assert_eq!(
        on_paused, 0,
        "{on_paused} of {reads} bounded reads went to the standby whose replay is stopped"
    );
    let excluded_event = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match events.recv().await {
                Ok(TopologyEvent::StandbyExcluded { name, reason }) if name == paused => return Ok(reason),
                Ok(_) => continue,
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .context("no StandbyExcluded event")??;
    println!("standby {paused} excluded {excluded_after:?} after replay stopped: {excluded_event:?}");

    cluster.resume_replay(&paused)?;
    client
        .wait_for_topology(Duration::from_secs(10), |t| {
            t.member(&paused)
                .and_then(|m| m.staleness_at(Instant::now()))
                .is_some_and(|s| s < bound / 2)
        })
        .await?;
    let mut back = false;
    for _ in 0..60 {
        let (port, _) = bounded_read(&client, &hb, bound).await?;
        back |= ports[&port] == paused;
    }
    assert!(back, "the standby did not get reads back after catching up");

    // Read-your-writes under load: every read with a token sees its write, and most run on
    // standbys (so the test proves something).
    let ((), token) = client
        .op(Intent::Write)
        .run_with_token(async |c| {
            c.batch_execute("CREATE TABLE IF NOT EXISTS ryw (id bigint PRIMARY KEY, payload text)")
                .await?;
            Ok(())
        })
        .await?;
    client.wait_for_standbys(token, Duration::from_secs(10)).await?;
    let on_standby = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for worker in 0..8_i64 {
        let (client, on_standby) = (client.clone(), on_standby.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..40_i64 {
                let id = worker * 1000 + i;
                let ((), token) = client
                    .op(Intent::Write)
                    .transaction_with_token(async move |tx| {
                        tx.execute("INSERT INTO ryw VALUES ($1, repeat('x', 200))", &[&id])
                            .await?;
                        Ok(())
                    })
                    .await?;
                let (found, standby) = client
                    .op(Intent::Standby)
                    .after(token)
                    .run(async move |c| {
                        let n: i64 = c
                            .query_one("SELECT count(*) FROM ryw WHERE id = $1", &[&id])
                            .await?
                            .get(0);
                        Ok((
                            n,
                            c.query_one("SELECT pg_is_in_recovery()", &[]).await?.get::<_, bool>(0),
                        ))
                    })
                    .await?;
                anyhow::ensure!(found == 1, "read with token {token} missed row {id}");
                if standby {
                    on_standby.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let standby_reads = on_standby.load(Ordering::Relaxed);
    println!("read-your-writes: {standby_reads} of 320 token reads ran on standbys");
    assert!(
        standby_reads > 0,
        "no token read ran on a standby: the test proves nothing"
    );

    // pgvector through the client: DDL and COPY on the primary, k-NN search on standbys.
    let table = VectorTable::new("public.embeddings", 8)?.distance(Distance::L2);
    table.ensure(&client, IndexKind::hnsw()).await?;
    let rows: Vec<(i64, Vector)> = (0..500)
        .map(|i| {
            // Distinct vectors: the first coordinate alone tells them apart.
            let v: Vec<f32> = (0..8)
                .map(|d| {
                    if d == 0 {
                        i as f32 / 500.0
                    } else {
                        ((i * 7 + d * 13) % 97) as f32 / 97.0
                    }
                })
                .collect();
            (i64::from(i), Vector::from(v))
        })
        .collect();
    assert_eq!(table.copy_in(&client, &rows).await?, 500);
    assert_eq!(table.insert(&client, &rows[..10]).await?, 0, "ON CONFLICT DO NOTHING");
    let ((), token) = client.op(Intent::Write).run_with_token(async |_| Ok(())).await?;
    let query = rows[42].1.clone();
    let hits = table
        .search(
            &client,
            &query,
            5,
            SearchOptions {
                intent: Intent::Standby,
                ef_search: Some(100),
                after: Some(token),
                ..SearchOptions::default()
            },
        )
        .await?;
    assert_eq!(hits.first().map(|h| h.id), Some(42), "{hits:?}");
    assert!(hits.first().is_some_and(|h| h.distance == 0.0));
    let wrong = table
        .search(&client, &Vector::from(vec![1.0; 3]), 5, SearchOptions::default())
        .await;
    assert!(
        wrong.is_err_and(|e| e.is_config()),
        "dimension mismatch must be a config error"
    );

    let served = hb.stop().await?;
    assert!(served > 50, "heartbeat wrote only {served} times");
    let metrics = client.metrics();
    assert_eq!(metrics.errors_surfaced, 0, "{metrics:#?}");
    println!("{}", serde_json::to_string_pretty(&metrics)?);
    client.shutdown().await;
    let after = client.run(Intent::Write, async |c| whoami(c).await).await;
    assert!(after.is_err_and(|e| e.is_shutdown()));
    let health = client.health();
    assert!(health.shut_down && !health.is_ready(), "after shutdown: {health:?}");
    cluster.shutdown();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interrupted_commit_is_outcome_unknown_and_interrupted_body_is_replayed() -> anyhow::Result<()> {
    init_tracing();
    let cluster = LocalCluster::builder().members(2).start().await?;
    let leader = cluster.leader().await?;
    let client = builder_for(&cluster).connect().await?;
    // A deferred constraint trigger that sleeps makes COMMIT itself take 3 s.
    client
        .run(Intent::Write, async |c| {
            c.batch_execute(
                "CREATE TABLE orders (id bigint PRIMARY KEY, slow_commit bool NOT NULL DEFAULT false);
                 CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS
                   $$ BEGIN IF NEW.slow_commit THEN PERFORM pg_sleep(3); END IF; RETURN NULL; END $$;
                 CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON orders
                   DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();",
            )
            .await?;
            Ok(())
        })
        .await?;
    let sql = |who: &'static str| {
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'pgha-client-tests' AND query LIKE '{who}%' AND pid <> pg_backend_pid()"
        )
    };
    // Terminates the first backend found running `prefix` (as the superuser, directly).
    let terminate = |prefix: &'static str| {
        let cluster = &cluster;
        let leader = leader.clone();
        let sql = sql(prefix);
        async move {
            pgha_testkit::wait_for("the statement to be running", Duration::from_secs(10), || async {
                let rows = cluster.superuser_query(&leader, &sql).await?;
                Ok((!rows.is_empty()).then_some(()))
            })
            .await
        }
    };

    // 1. Connection lost while COMMIT runs: outcome unknown (here it did not commit).
    let commit = client.transaction(async |tx| {
        tx.execute("INSERT INTO orders VALUES (1, true)", &[]).await?;
        Ok(())
    });
    let (result, killed) = tokio::join!(commit, terminate("COMMIT"));
    killed?;
    let err = result.expect_err("the COMMIT's connection was terminated");
    assert!(err.is_outcome_unknown(), "expected outcome unknown, got {err:?}");
    assert!(!err.is_retryable());

    // 2. Connection lost before COMMIT: the whole transaction is replayed, exactly once.
    let attempts = AtomicU64::new(0);
    let body = client.transaction(async |tx| {
        attempts.fetch_add(1, Ordering::SeqCst);
        tx.execute("INSERT INTO orders VALUES (2)", &[]).await?;
        tx.execute("SELECT pg_sleep(2)", &[]).await?;
        Ok(())
    });
    let (result, killed) = tokio::join!(body, terminate("SELECT pg_sleep"));
    killed?;
    result?;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "the transaction should have run twice"
    );

    // 3. The same COMMIT interruption on an operation declared idempotent is retried.
    let idem = client.op(Intent::Write).idempotent().transaction(async |tx| {
        tx.execute("INSERT INTO orders VALUES (3, true) ON CONFLICT DO NOTHING", &[])
            .await?;
        Ok(())
    });
    let (result, killed) = tokio::join!(idem, terminate("COMMIT"));
    killed?;
    result?;

    // 3b. An idempotent operation whose interrupted COMMIT is retried, and whose retries then
    // fail until the deadline, is outcome unknown — not a timeout: the first attempt may have
    // committed (found by the chaos run's `second-fault-while-healing`).
    let tries = AtomicU64::new(0);
    let idem_then_failing = client
        .op(Intent::Write)
        .idempotent()
        .deadline(Duration::from_secs(6))
        .transaction(async |tx| {
            if tries.fetch_add(1, Ordering::SeqCst) > 0 {
                tx.batch_execute("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$")
                    .await?;
            }
            tx.execute("INSERT INTO orders VALUES (5, true) ON CONFLICT DO NOTHING", &[])
                .await?;
            Ok(())
        });
    let (result, killed) = tokio::join!(idem_then_failing, terminate("COMMIT"));
    killed?;
    let err = result.expect_err("every retry fails");
    assert!(tries.load(Ordering::SeqCst) >= 2, "retried: {err:?}");
    assert!(err.is_outcome_unknown(), "expected outcome unknown, got {err:?}");
    assert!(
        err.to_string().contains("may have committed"),
        "the message says why: {err}"
    );

    // 4. An autocommit write whose session is lost mid-statement is outcome unknown too.
    let write = client.run(Intent::Write, async |c| {
        Ok(c.execute("INSERT INTO orders SELECT 4 FROM pg_sleep(2)", &[]).await?)
    });
    let (result, killed) = tokio::join!(write, terminate("INSERT INTO orders SELECT 4"));
    killed?;
    assert!(result.is_err_and(|e| e.is_outcome_unknown()));

    // 5. Application errors are returned as they are, never retried.
    let dup = client
        .transaction(async |tx| Ok(tx.execute("INSERT INTO orders VALUES (2)", &[]).await?))
        .await
        .expect_err("duplicate key");
    assert_eq!(
        dup.code(),
        Some(&pgha_client::tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );

    let ids: Vec<i64> = client
        .run(Intent::Primary, async |c| {
            Ok(c.query("SELECT id FROM orders ORDER BY id", &[])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
        .await?;
    assert_eq!(
        ids,
        vec![2, 3],
        "1, 4 and 5 were interrupted, 2 replayed once, 3 retried"
    );
    let m = client.metrics();
    assert_eq!(m.outcome_unknown, 3, "{m:#?}");
    client.shutdown().await;
    cluster.shutdown();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keeps_serving_through_sql_probes_when_every_patroni_api_is_down() -> anyhow::Result<()> {
    init_tracing();
    let cluster = LocalCluster::builder().members(3).start().await?;
    let leader = cluster.leader().await?;
    let ports = port_map(&cluster).await?;
    let client = builder_for(&cluster)
        .patroni_timeout(Duration::from_millis(500))
        .connect()
        .await?;
    for m in cluster.member_names() {
        cluster.block_rest_api(&m)?;
    }
    // Polling clients fall back to SQL probes; watching clients never needed the REST APIs.
    let without_rest = if watches_etcd() {
        pgha_client::Source::Dcs
    } else {
        pgha_client::Source::SqlProbe
    };
    client
        .wait_for_topology(Duration::from_secs(10), |t| t.source == without_rest)
        .await?;
    // A client started while every Patroni API hangs finds the primary from its seed hosts.
    let mut fresh = builder_for(&cluster).patroni_timeout(Duration::from_millis(500));
    for port in ports.keys() {
        fresh = fresh.seed_host("127.0.0.1", *port);
    }
    let fresh = fresh.connect().await?;
    for c in [&client, &fresh] {
        let topology = c.topology();
        assert_eq!(topology.source, without_rest);
        let health = c.health();
        assert!(health.is_ready() && health.source == without_rest, "{health:?}");
        for _ in 0..10 {
            let (port, standby) = c.run(Intent::Write, async |c| whoami(c).await).await?;
            assert!(!standby);
            assert_eq!(ports[&port], leader);
        }
        let (_, standby) = c
            .op(Intent::Standby)
            .max_lag(LagBound::time(Duration::from_secs(5)))
            .run(async |c| whoami(c).await)
            .await?;
        assert!(standby, "standbys keep serving reads without Patroni");
    }
    // A Unix-domain socket for a seed (libpq's `host=/dir`), and nothing else: found by SQL
    // alone, written to over the socket (no server address), reads served there too.
    let socket = Client::builder()
        .url(&format!(
            "host={} port={} user={} dbname={}",
            cluster.socket_dir(&leader)?.display(),
            cluster.pg_port(&leader)?,
            cluster.credentials().app.username,
            cluster.database()
        ))
        .application_name("pgha-client-tests")
        .connect()
        .await?;
    assert_eq!(socket.topology().source, pgha_client::Source::SqlProbe);
    for intent in [Intent::Write, Intent::PreferStandby] {
        let served = socket
            .run(intent, async |c| {
                let row = c
                    .query_one("SELECT inet_server_addr() IS NULL, pg_is_in_recovery()", &[])
                    .await?;
                Ok((row.get::<_, bool>(0), row.get::<_, bool>(1)))
            })
            .await?;
        assert_eq!(served, (true, false), "{intent:?} over the leader's socket");
    }
    socket.shutdown().await;
    // Found by SQL alone, a member is named by its address; etcd names it.
    let fresh_primary = fresh.topology().primary().map(|m| m.name.clone());
    let expected = if watches_etcd() {
        leader.clone()
    } else {
        format!("127.0.0.1:{}", cluster.pg_port(&leader)?)
    };
    assert_eq!(fresh_primary, Some(expected));
    for m in cluster.member_names() {
        cluster.restore_rest_api(&m)?;
    }
    client
        .wait_for_topology(Duration::from_secs(10), |t| t.source == healthy_source())
        .await?;
    fresh
        .wait_for_topology(Duration::from_secs(10), |t| {
            t.source == healthy_source() && t.primary().is_some_and(|p| p.name == leader)
        })
        .await?;
    assert_eq!(client.metrics().errors_surfaced, 0);
    assert_eq!(fresh.metrics().errors_surfaced, 0);
    cluster.shutdown();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_to_postgres_with_verify_full_and_https_to_patroni() -> anyhow::Result<()> {
    init_tracing();
    let cluster = LocalCluster::builder()
        .members(2)
        .tls(true)
        .client_certificates(true)
        .start()
        .await?;
    let ca = cluster.ca_file().context("a TLS cluster has a CA")?;
    let (cert, key) = cluster.client_cert_files().context("a client certificate")?;
    assert!(cluster.patroni_urls().iter().all(|u| u.starts_with("https://")));
    let leader = cluster.leader().await?;
    // The application role must present its certificate to PostgreSQL, and every client one to
    // Patroni's REST API (mutual TLS both ways; the testkit's cluster uses one certificate).
    let with_cert = |cluster: &LocalCluster| {
        builder_for(cluster)
            .ssl_client_cert(&cert, &key)
            .patroni_client_cert(&cert, &key)
    };

    // SCRAM bound to the TLS session (SCRAM-SHA-256-PLUS): with `require`, a connection
    // without it fails (the misuse test shows it failing without TLS).
    let client = with_cert(&cluster)
        .patroni_ca_file(&ca)
        .ssl_mode(SslMode::VerifyFull)
        .ssl_ca_file(&ca)
        .channel_binding(ChannelBinding::Require)
        .connect()
        .await?;
    assert_eq!(client.topology().source, healthy_source());
    assert_eq!(client.topology().primary().map(|m| m.name.clone()), Some(leader));
    let app = cluster.credentials().app.username;
    for intent in [Intent::Write, Intent::Standby] {
        let (ssl, client_dn): (bool, Option<String>) = client
            .run(intent, async |c| {
                let row = c
                    .query_one(
                        "SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                        &[],
                    )
                    .await?;
                Ok((row.get(0), row.get(1)))
            })
            .await?;
        assert!(ssl, "{intent:?} connection is not encrypted");
        assert_eq!(
            client_dn,
            Some(format!("/CN={app}")),
            "{intent:?}: the client certificate"
        );
    }
    client.shutdown().await;

    // Without its certificate the role is refused, at connect(), for good, and says why.
    let err = builder_for(&cluster)
        .patroni_client_cert(&cert, &key)
        .patroni_ca_file(&ca)
        .ssl_mode(SslMode::VerifyFull)
        .ssl_ca_file(&ca)
        .connect()
        .await
        .expect_err("no client certificate");
    assert!(err.is_connect() && !err.is_retryable(), "{err:?}");
    assert!(format!("{err}").contains("certificate"), "{err}");

    // libpq's modes: `prefer` and `require` encrypt without checking the certificate (a stock
    // server with a self-signed one works), `verify-ca` checks the chain.
    for (mode, ca_for_postgres) in [
        (SslMode::Prefer, None),
        (SslMode::Require, None),
        (SslMode::VerifyCa, Some(&ca)),
    ] {
        let mut b = with_cert(&cluster).patroni_ca_file(&ca).ssl_mode(mode);
        if let Some(ca) = ca_for_postgres {
            b = b.ssl_ca_file(ca);
        }
        let client = b.connect().await.with_context(|| format!("{mode:?}"))?;
        let ssl: bool = client
            .run(Intent::Write, async |c| {
                Ok(
                    c.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
                        .await?
                        .get(0),
                )
            })
            .await?;
        ensure!(ssl, "{mode:?}: not encrypted");
        client.shutdown().await;
    }

    // `verify-full` without the CA: the certificate is refused at connect(), at once, and the
    // reason is visible.
    let started = Instant::now();
    let err = with_cert(&cluster)
        .patroni_ca_file(&ca)
        .ssl_mode(SslMode::VerifyFull)
        .connect()
        .await
        .expect_err("an untrusted certificate must not be accepted");
    assert!(err.is_connect() && !err.is_retryable(), "{err:?}");
    let text = format!("{err}");
    assert!(text.contains("certificate") || text.contains("UnknownIssuer"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());

    // Without the Patroni CA, HTTPS to Patroni is refused too, and so is a client without a
    // certificate for Patroni: a polling client knows nothing. A client watching etcd does not
    // need Patroni's REST API at all.
    let to_postgres = || {
        builder_for(&cluster)
            .ssl_client_cert(&cert, &key)
            .ssl_mode(SslMode::VerifyFull)
            .ssl_ca_file(&ca)
    };
    for (what, attempt) in [
        (
            "no Patroni CA",
            to_postgres().patroni_client_cert(&cert, &key).connect().await,
        ),
        (
            "no Patroni client certificate",
            to_postgres().patroni_ca_file(&ca).connect().await,
        ),
    ] {
        if watches_etcd() {
            let client = attempt.with_context(|| what.to_owned())?;
            assert_eq!(client.topology().source, pgha_client::Source::Dcs, "{what}");
            client.shutdown().await;
        } else {
            assert!(attempt.is_err_and(|e| e.is_no_member()), "{what}");
        }
    }

    // The certificate itself is checked, not only its chain: PostgreSQL presenting an expired
    // one, or one for another host, is refused at connect(), at once, saying which; a good one
    // again is accepted.
    let verified = |cluster: &LocalCluster| {
        with_cert(cluster)
            .patroni_ca_file(&ca)
            .ssl_mode(SslMode::VerifyFull)
            .ssl_ca_file(&ca)
    };
    for (which, why) in [
        (ServerCertificate::Expired, &["expired"][..]),
        (
            ServerCertificate::ForHost("db.example.com".into()),
            &["notvalidforname", "not valid for name"][..],
        ),
    ] {
        cluster.present_server_certificate(which.clone()).await?;
        let started = Instant::now();
        let err = verified(&cluster)
            .connect()
            .await
            .expect_err("a bad server certificate must not be accepted");
        assert!(err.is_connect() && !err.is_retryable(), "{which:?}: {err:?}");
        let text = format!("{err}").to_lowercase();
        assert!(why.iter().any(|w| text.contains(w)), "{which:?}: {text}");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }
    cluster.present_server_certificate(ServerCertificate::Valid).await?;
    verified(&cluster).connect().await?.shutdown().await;
    cluster.shutdown();
    Ok(())
}

/// Misuse and misconfiguration get a clear, typed error at once — never a commit where none was
/// asked for, never an error for a write that committed, never 30 s of retries hiding the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn misuse_and_misconfiguration_fail_at_once_with_the_real_cause() -> anyhow::Result<()> {
    init_tracing();
    let cluster = LocalCluster::builder().members(2).start().await?;
    let client = builder_for(&cluster).connect().await?;
    let (_, created) = client
        .op(Intent::Write)
        .run_with_token(async |c| {
            Ok(
                c.batch_execute("CREATE TABLE IF NOT EXISTS misuse (id int PRIMARY KEY)")
                    .await?,
            )
        })
        .await?;
    // The standby must know the table before the reads below run there: they are to fail for
    // being writes, not for a table it has not replayed yet.
    client.wait_for_standbys(created, Duration::from_secs(30)).await?;
    let count = async |client: &Client| -> anyhow::Result<i64> {
        Ok(client
            .run(Intent::Primary, async |c| {
                Ok(c.query_one("SELECT count(*) FROM misuse", &[]).await?.get(0))
            })
            .await?)
    };

    // A client-side error (wrong parameter count) leaves the session intact: it is the caller's
    // error, not "outcome unknown" and not retried.
    let started = Instant::now();
    let e = client
        .run(Intent::Write, async |c| {
            Ok(c.execute("INSERT INTO misuse VALUES ($1)", &[]).await?)
        })
        .await
        .expect_err("parameter count mismatch");
    ensure!(
        !e.is_outcome_unknown() && !e.is_timeout(),
        "classified as a lost session: {e}"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(5),
        "retried for {:?}: {e}",
        started.elapsed()
    );

    // Writes inside read intents fail with 25006 and commit nothing, on the primary too.
    for intent in [Intent::Primary, Intent::Standby, Intent::PreferStandby, Intent::Any] {
        let e = client
            .op(intent)
            .transaction(async |tx| Ok(tx.execute("INSERT INTO misuse VALUES (1)", &[]).await?))
            .await
            .expect_err("a write in a read transaction");
        ensure!(
            e.code() == Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION),
            "{intent:?}: {e}"
        );
        let started = Instant::now();
        let e = client
            .run(intent, async |c| {
                Ok(c.execute("INSERT INTO misuse VALUES (2)", &[]).await?)
            })
            .await
            .expect_err("a write in a read run");
        ensure!(
            e.code() == Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION),
            "{intent:?}: {e}"
        );
        ensure!(
            started.elapsed() < Duration::from_secs(5),
            "{intent:?} retried a write: {e}"
        );
    }
    ensure!(count(&client).await? == 0, "a read intent committed a write");
    // The connections those reads used are clean: a read on the primary still works.
    client
        .run(Intent::Primary, async |c| Ok(c.execute("SELECT 1", &[]).await?))
        .await?;

    // A write that committed is reported as committed even when its position cannot be read
    // afterwards (here the token query fails on the only pooled connection): the token is
    // unknown and reads carrying it go to the primary.
    let one = builder_for(&cluster).pool_max_size(1).connect().await?;
    let ((), token) = one
        .op(Intent::Write)
        .run_with_token(async |c| {
            c.batch_execute(
                "CREATE SCHEMA IF NOT EXISTS notoken; \
                 CREATE OR REPLACE FUNCTION notoken.pg_current_wal_lsn() RETURNS pg_lsn LANGUAGE plpgsql \
                 AS $$BEGIN RAISE EXCEPTION 'no position for you'; END$$; \
                 INSERT INTO misuse VALUES (3); \
                 SET search_path = notoken, pg_catalog, public",
            )
            .await?;
            Ok(())
        })
        .await?;
    ensure!(token.is_unknown(), "{token}");
    ensure!(count(&client).await? == 1);
    let (_, standby) = client
        .op(Intent::Standby)
        .after(token)
        .run(async |c| whoami(c).await)
        .await?;
    ensure!(!standby, "a read after an unknown token must run on the primary");
    one.shutdown().await;

    // deadpool's pool settings. With pool_wait_timeout, an operation that finds every
    // connection of the pool in use fails at once and says so, instead of queueing until its
    // deadline; once a connection is free again, operations run.
    let full = builder_for(&cluster)
        .pool_max_size(1)
        .pool_wait_timeout(Duration::from_millis(200))
        .connect()
        .await?;
    let held = full.get(Intent::Write).await?;
    let started = Instant::now();
    let e = full
        .op(Intent::Write)
        .deadline(Duration::from_secs(30))
        .run(async |c| Ok(c.execute("SELECT 1", &[]).await?))
        .await
        .expect_err("the pool's only connection is held");
    ensure!(e.is_timeout() && format!("{e}").contains("pool_wait_timeout"), "{e}");
    ensure!(
        started.elapsed() < Duration::from_secs(15),
        "queued until the deadline ({:?}): {e}",
        started.elapsed()
    );
    drop(held);
    full.run(Intent::Write, async |c| Ok(c.execute("SELECT 1", &[]).await?))
        .await?;
    full.shutdown().await;

    // Recycling::Clean resets every session before reuse — what one operation set does not
    // reach the next — and pgha knows it: on the pool's one connection, a second read on the
    // primary in a row still runs read-only (the reset undid the first one's read-only mode).
    let clean = builder_for(&cluster)
        .pool_max_size(1)
        .pool_recycling(pgha_client::Recycling::Clean)
        .connect()
        .await?;
    clean
        .run(Intent::Write, async |c| {
            Ok(c.batch_execute("SET application_name = 'left-behind'").await?)
        })
        .await?;
    let name: String = clean
        .run(Intent::Write, async |c| {
            Ok(c.query_one("SHOW application_name", &[]).await?.get(0))
        })
        .await?;
    ensure!(name == "pgha-client-tests", "the session was not reset: {name}");
    for round in 0..3 {
        clean
            .run(Intent::Primary, async |c| Ok(c.execute("SELECT 1", &[]).await?))
            .await?;
        let e = clean
            .run(Intent::Primary, async |c| {
                Ok(c.execute("INSERT INTO misuse VALUES (10)", &[]).await?)
            })
            .await
            .expect_err("a write in a read");
        ensure!(
            e.code() == Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION),
            "round {round}: {e}"
        );
    }
    ensure!(count(&client).await? == 1, "a read on a Clean pool committed a write");
    clean.shutdown().await;

    // Too many connections (here: the role's connection limit) is not permanent, but an
    // operation that runs out of time says so instead of "no verified primary".
    let role = cluster.credentials().app.username.clone();
    let leader = cluster.leader().await?;
    cluster
        .superuser_query(&leader, &format!("ALTER ROLE {role} CONNECTION LIMIT 0"))
        .await?;
    let outcome = match builder_for(&cluster).connect().await {
        Ok(c) => {
            let r = c
                .op(Intent::Write)
                .deadline(Duration::from_secs(2))
                .run(async |c| Ok(c.execute("SELECT 1", &[]).await?))
                .await
                .map(drop);
            c.shutdown().await;
            r
        }
        Err(e) => Err(e),
    };
    cluster
        .superuser_query(&leader, &format!("ALTER ROLE {role} CONNECTION LIMIT -1"))
        .await?;
    let e = outcome.expect_err("no connection is allowed");
    ensure!(format!("{e}").contains("too many connections"), "{e}");

    // A wrong password or a missing database: connect() fails within the connect timeout with
    // the server's error, not a deadline 30 s later.
    for (what, builder, code) in [
        (
            "wrong password",
            builder_for(&cluster).password("not-the-password"),
            tokio_postgres::error::SqlState::INVALID_PASSWORD,
        ),
        (
            "missing database",
            builder_for(&cluster).dbname("no_such_database"),
            tokio_postgres::error::SqlState::INVALID_CATALOG_NAME,
        ),
    ] {
        let started = Instant::now();
        let e = builder
            .connect_timeout(Duration::from_secs(3))
            .connect()
            .await
            .expect_err(what);
        ensure!(e.is_connect() && !e.is_retryable(), "{what}: {e:?}");
        ensure!(e.code() == Some(&code), "{what}: {e}");
        ensure!(
            started.elapsed() < Duration::from_secs(3) + Duration::from_secs(2),
            "{what}: {:?}",
            started.elapsed()
        );
    }

    // channel_binding=require where the server offers no TLS (this cluster has none, and
    // `prefer` falls back to plain TCP): the password exchange cannot be bound, so no
    // connection is made, at once, and the error says why. (Over TLS it holds: the TLS test.)
    let started = Instant::now();
    let e = builder_for(&cluster)
        .ssl_mode(SslMode::Prefer)
        .channel_binding(ChannelBinding::Require)
        .connect_timeout(Duration::from_secs(3))
        .connect()
        .await
        .expect_err("no channel binding without TLS");
    ensure!(e.is_connect() && !e.is_retryable(), "{e:?}");
    ensure!(format!("{e}").contains("channel binding"), "{e}");
    ensure!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    client.shutdown().await;
    cluster.shutdown();
    Ok(())
}

/// Read-your-writes holds with `synchronous_commit = off` (the token covers the commit record,
/// not just the WAL written so far), and a token check on a frozen standby is bounded by the
/// operation's deadline and the member watch instead of hanging until the standby thaws.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_your_writes_covers_async_commits_and_never_hangs_on_a_frozen_standby() -> anyhow::Result<()> {
    let (cluster, leader, standby, client) = two_members().await?;
    let ((), token) = client
        .op(Intent::Write)
        .run_with_token(async |c| Ok(c.batch_execute("CREATE TABLE ryw (id int PRIMARY KEY)").await?))
        .await?;
    client.wait_for_standbys(token, Duration::from_secs(10)).await?;

    // The WAL writer wakes every 10 s: an asynchronous commit's record stays unwritten, above
    // the write pointer, and so unsent to the standby, for that long.
    cluster
        .superuser_query(&leader, "ALTER SYSTEM SET wal_writer_delay = '10s'")
        .await?;
    cluster.superuser_query(&leader, "SELECT pg_reload_conf()").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in 0..5_i32 {
        let ((), token) = client
            .op(Intent::Write)
            .transaction_with_token(async move |tx| {
                tx.batch_execute("SET LOCAL synchronous_commit = off").await?;
                tx.execute("INSERT INTO ryw VALUES ($1)", &[&id]).await?;
                Ok(())
            })
            .await?;
        let seen: i64 = client
            .op(Intent::Standby)
            .after(token)
            .run(async move |c| {
                Ok(c.query_one("SELECT count(*) FROM ryw WHERE id = $1", &[&id])
                    .await?
                    .get(0))
            })
            .await?;
        ensure!(seen == 1, "insert {id} not seen by a read carrying its token {token}");
    }
    cluster
        .superuser_query(&leader, "ALTER SYSTEM RESET wal_writer_delay")
        .await?;
    cluster.superuser_query(&leader, "SELECT pg_reload_conf()").await?;

    // Warm the standby's pool, freeze the standby, then read after a newer write: the token
    // check runs on a pooled connection to the frozen standby.
    for _ in 0..4 {
        let (_, on_standby) = client.run(Intent::Standby, async |c| whoami(c).await).await?;
        ensure!(on_standby, "the standby should serve reads before the freeze");
    }
    cluster.freeze_node(&standby)?;
    let outcome = async {
        let ((), token) = client
            .op(Intent::Write)
            .run_with_token(async |c| Ok(c.execute("INSERT INTO ryw VALUES (100)", &[]).await.map(drop)?))
            .await?;
        let started = Instant::now();
        let read = tokio::time::timeout(
            Duration::from_secs(30),
            client
                .op(Intent::Standby)
                .after(token)
                .deadline(Duration::from_secs(5))
                .run(async |c| {
                    Ok(c.query_one("SELECT count(*) FROM ryw WHERE id = 100", &[])
                        .await?
                        .get::<_, i64>(0))
                }),
        )
        .await;
        anyhow::Ok((read, started.elapsed()))
    }
    .await;
    cluster.thaw_node(&standby)?;
    let (read, took) = outcome?;
    let read = read.map_err(|_| anyhow::anyhow!("the read hung for 30 s on the frozen standby"))?;
    ensure!(
        took < Duration::from_secs(10),
        "the read took {took:?} with a 5 s deadline"
    );
    ensure!(read? == 1, "the read-your-writes read missed its write");

    // A connection that last served a read on the primary switches its session back before a
    // write; with the primary frozen that switch must not outlive the deadline either.
    let one = builder_for(&cluster).pool_max_size(1).connect().await?;
    one.run(Intent::Primary, async |c| whoami(c).await).await?;
    cluster.freeze_node(&leader)?;
    let started = Instant::now();
    let write = tokio::time::timeout(
        Duration::from_secs(15),
        one.op(Intent::Write)
            .deadline(Duration::from_secs(2))
            .run(async |c| Ok(c.execute("INSERT INTO ryw VALUES (200)", &[]).await?)),
    )
    .await;
    cluster.thaw_node(&leader)?;
    let took = started.elapsed();
    ensure!(write.is_ok(), "the write hung on the frozen primary for {took:?}");
    ensure!(
        took < Duration::from_secs(6),
        "the write took {took:?} with a 2 s deadline"
    );
    one.shutdown().await;
    client.shutdown().await;
    cluster.shutdown();
    Ok(())
}

/// An operation dropped by its caller, or abandoned at its deadline, is cancelled on the server:
/// the statement stops and its locks go, instead of running on with a busy connection back in
/// the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_and_abandoned_operations_are_cancelled_on_the_server() -> anyhow::Result<()> {
    init_tracing();
    let cluster = LocalCluster::builder().members(2).start().await?;
    let client = builder_for(&cluster).connect().await?;
    let sleepers = async |client: &Client| -> anyhow::Result<i64> {
        Ok(client
            .run(Intent::Primary, async |c| {
                Ok(c.query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(3600)%' \
                     AND pid <> pg_backend_pid()",
                    &[],
                )
                .await?
                .get(0))
            })
            .await?)
    };
    let lock_free = async |client: &Client| -> anyhow::Result<bool> {
        Ok(client
            .run(Intent::Write, async |c| {
                let got: bool = c.query_one("SELECT pg_try_advisory_lock(4242)", &[]).await?.get(0);
                if got {
                    c.execute("SELECT pg_advisory_unlock(4242)", &[]).await?;
                }
                Ok(got)
            })
            .await?)
    };
    let hold_and_sleep = async |c: &pgha_client::Transaction<'_>| -> pgha_client::Result<()> {
        c.execute("SELECT pg_advisory_xact_lock(4242)", &[]).await?;
        c.execute("SELECT pg_sleep(3600)", &[]).await?;
        Ok(())
    };

    // The caller gives up (its future is dropped) while the statement runs.
    let dropped = tokio::time::timeout(
        Duration::from_millis(800),
        client.op(Intent::Write).transaction(hold_and_sleep),
    )
    .await;
    ensure!(dropped.is_err(), "the sleep cannot have finished");
    let released = async |client: &Client| -> anyhow::Result<(i64, bool)> {
        let (mut n, mut free) = (1, false);
        for _ in 0..50 {
            (n, free) = (sleepers(client).await?, lock_free(client).await?);
            if n == 0 && free {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok((n, free))
    };
    let (n, free) = released(&client).await?;
    ensure!(
        n == 0 && free,
        "after a dropped operation: {n} statements still run, lock free: {free}"
    );

    // The operation's own deadline passes while the statement runs.
    let e = client
        .op(Intent::Write)
        .deadline(Duration::from_millis(800))
        .transaction(hold_and_sleep)
        .await
        .expect_err("the deadline passes first");
    ensure!(e.is_outcome_unknown() || e.is_timeout(), "{e}");
    let (n, free) = released(&client).await?;
    ensure!(
        n == 0 && free,
        "after an abandoned operation: {n} statements still run, lock free: {free}"
    );
    client.shutdown().await;
    cluster.shutdown();
    Ok(())
}

/// A read carrying the token of a write that an asynchronous failover lost fails with a typed
/// "write lost" error instead of silently missing the write on the new timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_of_a_write_lost_in_a_failover_is_a_typed_error() -> anyhow::Result<()> {
    let (cluster, leader, standby, client) = two_members().await?;
    let ((), kept) = client
        .op(Intent::Write)
        .run_with_token(async |c| {
            Ok(
                c.batch_execute("CREATE TABLE lost (id int PRIMARY KEY); INSERT INTO lost VALUES (1)")
                    .await?,
            )
        })
        .await?;
    client.wait_for_standbys(kept, Duration::from_secs(10)).await?;

    // The standby is cut off (its replication connection aborted); the leader acknowledges a
    // write and dies.
    cluster.partition_node(&standby)?;
    let written = client
        .op(Intent::Write)
        .run_with_token(async |c| Ok(c.execute("INSERT INTO lost VALUES (2)", &[]).await.map(drop)?))
        .await;
    cluster.kill_node(&leader)?;
    cluster.heal_partition()?;
    let ((), lost) = written?;
    // A checkout asked for while the leader is dead waits for the new primary.
    let held = client.op(Intent::Write).deadline(Duration::from_secs(60)).get().await?;
    let (port, in_recovery) = whoami(&held).await?;
    ensure!(
        !in_recovery && port == cluster.pg_port(&standby)?,
        "get(Write) after the kill: port {port}, in recovery {in_recovery}"
    );
    drop(held);
    client
        .wait_for_topology(Duration::from_secs(60), |t| {
            t.primary()
                .is_some_and(|p| p.name == standby && p.timeline > Some(lost.timeline))
                && t.timeline_end(lost.timeline).is_some()
        })
        .await?;

    for intent in [Intent::Standby, Intent::Primary] {
        let e = client
            .op(intent)
            .after(lost)
            .deadline(Duration::from_secs(10))
            .run(async |c| Ok(c.query_one("SELECT count(*) FROM lost", &[]).await?.get::<_, i64>(0)))
            .await
            .expect_err("the write is gone");
        ensure!(e.is_write_lost() && !e.is_retryable(), "{intent:?}: {e}");
        let e = client
            .op(intent)
            .after(lost)
            .deadline(Duration::from_secs(10))
            .get()
            .await
            .expect_err("the write is gone");
        ensure!(e.is_write_lost(), "get({intent:?}): {e}");
    }
    // The write before it survived: its token is satisfied on the new timeline.
    let n: i64 = client
        .op(Intent::Primary)
        .after(kept)
        .run(async |c| Ok(c.query_one("SELECT count(*) FROM lost", &[]).await?.get(0)))
        .await?;
    ensure!(n == 1, "{n} rows");
    client.shutdown().await;
    cluster.shutdown();
    Ok(())
}

/// Backends of `application_name` on every member (the query's own session excluded).
async fn backends_of(cluster: &LocalCluster, application_name: &str) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut out = BTreeMap::new();
    for m in cluster.member_names() {
        let rows = cluster
            .superuser_query(
                &m,
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{application_name}' \
                     AND pid <> pg_backend_pid()"
                ),
            )
            .await?;
        out.insert(m, rows[0].get::<_, i64>(0));
    }
    Ok(out)
}

/// A 3-member cluster, its leader, its members by port, and a client named `application_name`
/// (to count its backends) with an `idle_timeout` of 2 s.
async fn short_idle_client(
    application_name: &str,
) -> anyhow::Result<(LocalCluster, String, BTreeMap<u16, String>, Client)> {
    init_tracing();
    let cluster = LocalCluster::builder().members(3).pgbackrest(false).start().await?;
    let leader = cluster.leader().await?;
    let ports = port_map(&cluster).await?;
    let client = builder_for(&cluster)
        .application_name(application_name)
        .idle_timeout(Duration::from_secs(2))
        .connect()
        .await?;
    Ok((cluster, leader, ports, client))
}

/// A client holds only the connections its traffic needs: a pool that grew under a burst shrinks
/// to a hot few under light traffic (its pools hand out the connection used last, so the others
/// fall idle and close after `idle_timeout`); an idle client holds none and sends nothing (it
/// stops probing), and its next operation refreshes the topology first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_holds_only_the_connections_its_traffic_needs_and_wakes_when_idle() -> anyhow::Result<()> {
    let name = "pgha-idle-test";
    let (cluster, leader, ports, client) = short_idle_client(name).await?;
    // Connected, but no operation yet: the probes closed the connections they opened.
    let fresh = backends_of(&cluster, name).await?;
    assert!(
        fresh.values().all(|&n| n == 0),
        "a client that never ran an operation holds nothing: {fresh:?}"
    );
    client.run(Intent::Write, async |c| whoami(c).await).await?;
    client.run(Intent::Standby, async |c| whoami(c).await).await?;
    // In use: the write's and the read's connections stay in their pools (the probes' may not
    // have run yet since the client woke).
    let busy = backends_of(&cluster, name).await?;
    assert!(
        busy[&leader] >= 1 && busy.values().sum::<i64>() >= 2,
        "operations keep their pooled connections: {busy:?}"
    );
    // A burst of 8 concurrent writes opens (at least) 8 connections to the primary …
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let client = client.clone();
        burst.spawn(async move {
            client
                .run(Intent::Write, async |c| {
                    Ok(c.execute("SELECT pg_sleep(0.3)", &[]).await?)
                })
                .await
        });
    }
    while let Some(done) = burst.join_next().await {
        done??;
    }
    let after_burst = backends_of(&cluster, name).await?;
    assert!(after_burst[&leader] >= 8, "the burst's connections: {after_burst:?}");
    // … then one write at a time, 10 a second, for twice idle_timeout: the connections the
    // burst left close; what remains is the one in use and at most one the probes share.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        client.run(Intent::Write, async |c| whoami(c).await).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let quiet = backends_of(&cluster, name).await?;
    assert!(
        (1..=2).contains(&quiet[&leader]),
        "light traffic keeps a hot connection or two, not the burst's 8: {quiet:?}"
    );
    // Well past idle_timeout (probes stop after 2 s, their connections close 2 s later):
    // every connection closed, no refresh any more.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let idle = backends_of(&cluster, name).await?;
    assert!(
        idle.values().all(|&n| n == 0),
        "an idle client holds no connection: {idle:?}"
    );
    let refreshes = client.metrics().refreshes;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(client.metrics().refreshes, refreshes, "an idle client does not probe");
    assert_eq!(backends_of(&cluster, name).await?.values().sum::<i64>(), 0);

    // The next operation wakes it: one refresh, then the operation on the primary.
    let (port, standby) = client.run(Intent::Write, async |c| whoami(c).await).await?;
    assert!(!standby);
    assert_eq!(ports[&port], leader);
    assert!(client.metrics().refreshes > refreshes);
    assert_eq!(client.metrics().errors_surfaced, 0);
    cluster.shutdown();
    Ok(())
}

/// A client that only writes leaves the standbys alone: once `idle_timeout` passed without an
/// operation that may read from a standby, only the primary is probed, so the client holds no
/// connection to a standby and sends it nothing. Its next standby read probes the standbys again
/// first and runs on one of them (not on the primary as a fallback).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_only_writes_leaves_the_standbys_alone_until_it_reads() -> anyhow::Result<()> {
    let name = "pgha-write-only-test";
    let (cluster, leader, ports, client) = short_idle_client(name).await?;
    let (port, standby) = client.run(Intent::Standby, async |c| whoami(c).await).await?;
    ensure!(
        standby && ports[&port] != leader,
        "a standby read at first: {}",
        ports[&port]
    );
    // Writes only, 10 a second, for three times idle_timeout.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        client.run(Intent::Write, async |c| whoami(c).await).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Probes keep their pooled connection once the client has run an operation, so a standby
    // still probed would hold one.
    let held = backends_of(&cluster, name).await?;
    ensure!(held[&leader] >= 1, "the writes' connection: {held:?}");
    ensure!(
        held.iter().all(|(member, &n)| member == &leader || n == 0),
        "a client that only writes holds nothing on the standbys: {held:?}"
    );
    let topology = client.topology();
    ensure!(
        topology.standbys().count() == 0,
        "standbys unprobed, none usable: {topology:?}"
    );

    let fallbacks = client.metrics().fallbacks;
    let (port, standby) = client.run(Intent::Standby, async |c| whoami(c).await).await?;
    ensure!(
        standby && ports[&port] != leader,
        "the next standby read runs on a standby: {}",
        ports[&port]
    );
    ensure!(
        client.metrics().fallbacks == fallbacks,
        "not on the primary as a fallback"
    );
    ensure!(client.topology().standbys().count() == 2, "both standbys probed again");
    assert_eq!(client.metrics().errors_surfaced, 0);
    client.shutdown().await;
    cluster.shutdown();
    Ok(())
}

/// In steady state one Patroni endpoint is polled per refresh, not all of them; when it stops
/// answering every endpoint is polled again, and another one becomes the steady one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn steady_state_polls_one_patroni_endpoint_and_moves_on_when_it_fails() -> anyhow::Result<()> {
    init_tracing();
    let cluster = LocalCluster::builder().members(3).pgbackrest(false).start().await?;
    let client = builder_for(&cluster)
        .patroni_timeout(Duration::from_millis(500))
        .connect()
        .await?;
    let busy = async |client: &Client, for_how_long: Duration| -> anyhow::Result<(u64, u64)> {
        let before = client.metrics();
        let until = Instant::now() + for_how_long;
        while Instant::now() < until {
            client.run(Intent::Write, async |c| whoami(c).await).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let after = client.metrics();
        Ok((
            after.refreshes - before.refreshes,
            after.patroni_requests - before.patroni_requests,
        ))
    };
    busy(&client, Duration::from_secs(1)).await?;
    let (refreshes, requests) = busy(&client, Duration::from_secs(4)).await?;
    assert!(refreshes >= 4, "an active client keeps refreshing: {refreshes}");
    assert!(
        requests <= refreshes + 2,
        "one endpoint per steady refresh: {requests} requests for {refreshes} refreshes (3 endpoints)"
    );
    for m in cluster.member_names().into_iter().take(1) {
        cluster.block_rest_api(&m)?;
    }
    busy(&client, Duration::from_secs(3)).await?;
    let (refreshes, requests) = busy(&client, Duration::from_secs(4)).await?;
    assert!(
        requests <= refreshes + 4,
        "with one API down the others are polled, one at a time: {requests} requests, {refreshes} refreshes"
    );
    assert_eq!(client.metrics().errors_surfaced, 0);
    cluster.shutdown();
    Ok(())
}

/// Probes run on pooled connections, whose sessions an application may configure: a
/// `search_path` (here the role's, as `ALTER ROLE … SET` gives every session) that puts a schema
/// shadowing `pg_catalog`'s functions first must not change what the probe sees — here a primary
/// that would claim to be in recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_search_path_cannot_fool_the_probe() -> anyhow::Result<()> {
    init_tracing();
    let cluster = LocalCluster::builder().members(2).pgbackrest(false).start().await?;
    let leader = cluster.leader().await?;
    let role = cluster.credentials().app.username.clone();
    let db = cluster.database();
    let admin = cluster.connect_superuser(&leader, &db).await?;
    admin
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS shadow; \
             CREATE OR REPLACE FUNCTION shadow.pg_is_in_recovery() RETURNS bool LANGUAGE sql AS 'SELECT true'; \
             GRANT USAGE ON SCHEMA shadow TO {role}; \
             ALTER ROLE {role} SET search_path = shadow, pg_catalog, public"
        ))
        .await?;
    let client = builder_for(&cluster).connect().await?;
    let standby: bool = client
        .op(Intent::Write)
        .deadline(Duration::from_secs(5))
        .run(async |c| Ok(c.query_one("SELECT pg_catalog.pg_is_in_recovery()", &[]).await?.get(0)))
        .await?;
    assert!(!standby, "the write ran on the primary");
    let topology = client.topology();
    assert_eq!(
        topology.primary().map(|m| m.name.clone()),
        Some(leader),
        "the probe was fooled: {:?}",
        topology.notes
    );
    assert_eq!(client.metrics().errors_surfaced, 0);
    cluster.shutdown();
    Ok(())
}
