//! Discovery from etcd (`ClientBuilder::etcd`): Patroni's keys listed and watched, against the
//! testkit's real etcd.

use std::time::Duration;

use pgha_client::{Client, ClientBuilder, Intent, Source, SslMode, TopologyEvent};
use pgha_testkit::LocalCluster;

use super::{init_tracing, port_map, whoami};

/// A client that knows only etcd (no Patroni URL, no seed host).
fn etcd_only(cluster: &LocalCluster) -> ClientBuilder {
    let creds = cluster.credentials();
    Client::builder()
        .etcd(cluster.etcd_urls())
        .patroni_scope(cluster.scope())
        .etcd_namespace(cluster.etcd_namespace())
        .user(creds.app.username.clone())
        .password(creds.app.password.expose())
        .dbname(cluster.database())
        .ssl_mode(SslMode::Disable)
        .application_name("pgha-client-tests")
}

/// Switches over to a standby and waits until `client` routes to it, from the watch; returns
/// the new primary.
async fn switch_over_and_follow(cluster: &LocalCluster, client: &Client) -> anyhow::Result<String> {
    let leader = cluster.leader().await?;
    let candidate = cluster
        .member_names()
        .into_iter()
        .find(|m| *m != leader)
        .expect("a standby");
    cluster.switchover(Some(&candidate)).await?;
    let topology = client
        .wait_for_topology(Duration::from_secs(30), |t| {
            t.primary().is_some_and(|p| p.name == candidate)
        })
        .await?;
    assert_eq!(topology.source, Source::Dcs, "the change came from the watch");
    Ok(candidate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_discovery_routes_and_follows_a_switchover() -> anyhow::Result<()> {
    init_tracing();
    let cluster = LocalCluster::builder().members(3).pgbackrest(false).start().await?;
    let leader = cluster.leader().await?;
    let ports = port_map(&cluster).await?;
    let client = etcd_only(&cluster).connect().await?;
    let topology = client
        .wait_for_topology(Duration::from_secs(10), |t| {
            t.primary().is_some() && t.standbys().count() == 2
        })
        .await?;
    assert_eq!(topology.source, Source::Dcs);
    assert_eq!(topology.primary().map(|m| m.name.clone()), Some(leader.clone()));
    let (port, standby) = client.run(Intent::Write, async |c| whoami(c).await).await?;
    assert!(!standby);
    assert_eq!(ports[&port], leader);
    let (port, standby) = client.run(Intent::Standby, async |c| whoami(c).await).await?;
    assert!(standby);
    assert_ne!(ports[&port], leader);

    let mut events = client.events();
    let candidate = switch_over_and_follow(&cluster, &client).await?;
    let (port, standby) = client.run(Intent::Write, async |c| whoami(c).await).await?;
    assert!(!standby);
    assert_eq!(ports[&port], candidate);
    let mut saw_change = false;
    while let Ok(event) = events.try_recv() {
        if let TopologyEvent::LeaderChanged { to: Some(to), .. } = &event {
            saw_change |= *to == candidate;
        }
    }
    assert!(saw_change, "a LeaderChanged event names the new primary");
    assert_eq!(client.metrics().errors_surfaced, 0);
    cluster.shutdown();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreachable_etcd_falls_back_to_patroni_and_a_stopped_one_is_watched_again() -> anyhow::Result<()> {
    init_tracing();
    let cluster = LocalCluster::builder().members(2).pgbackrest(false).start().await?;
    let leader = cluster.leader().await?;
    let with_rest = |b: ClientBuilder| {
        let b = b.patroni(cluster.patroni_urls());
        match cluster.credentials().rest {
            Some(rest) => b.patroni_auth(rest.username.clone(), rest.password.expose()),
            None => b,
        }
    };

    // etcd unreachable from the start (nothing listens there): the REST APIs serve.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?;
    let dead_url = format!("http://{}", dead.local_addr()?);
    drop(dead);
    let client = with_rest(
        Client::builder()
            .etcd([dead_url])
            .patroni_scope(cluster.scope())
            .user(cluster.credentials().app.username.clone())
            .password(cluster.credentials().app.password.expose())
            .dbname(cluster.database())
            .ssl_mode(SslMode::Disable),
    )
    .connect()
    .await?;
    let topology = client
        .wait_for_topology(Duration::from_secs(10), |t| t.primary().is_some())
        .await?;
    assert_eq!(topology.source, Source::Patroni);
    assert_eq!(topology.primary().map(|m| m.name.clone()), Some(leader));

    // etcd stopped under a watching client: it leaves the watch (Patroni's `/cluster` needs etcd
    // too, so SQL probes of the known members serve), and returns to it once etcd is back.
    let client = with_rest(etcd_only(&cluster)).connect().await?;
    client
        .wait_for_topology(Duration::from_secs(10), |t| {
            t.source == Source::Dcs && t.primary().is_some()
        })
        .await?;
    let mut events = client.events();
    cluster.stop_etcd()?;
    client
        .wait_for_topology(Duration::from_secs(20), |t| t.source != Source::Dcs)
        .await?;
    cluster.start_etcd_again().await?;
    // Without its DCS the leader demoted itself; once etcd is back a leader is elected again.
    client
        .wait_for_topology(Duration::from_secs(60), |t| {
            t.source == Source::Dcs && t.primary().is_some()
        })
        .await?;
    let (_, standby) = client.run(Intent::Write, async |c| whoami(c).await).await?;
    assert!(!standby);
    let mut sources = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let TopologyEvent::SourceChanged { from, to } = event {
            sources.push((from, to));
        }
    }
    assert!(
        sources.first().is_some_and(|(from, _)| *from == Source::Dcs),
        "{sources:?}"
    );
    assert!(sources.last().is_some_and(|(_, to)| *to == Source::Dcs), "{sources:?}");
    cluster.shutdown();
    Ok(())
}

/// Each etcd member in turn killed under write load (one of them is the member the client's watch
/// is on): the watch moves to another member, no operation fails, and a switchover afterwards is
/// still followed from the watch. (The writes are idempotent: a non-idempotent write in flight
/// when the switchover stops the old primary is rightly outcome-unknown.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_watch_survives_the_loss_of_any_etcd_member_under_load() -> anyhow::Result<()> {
    init_tracing();
    let cluster = LocalCluster::builder().members(3).pgbackrest(false).start().await?;
    assert_eq!(cluster.etcd_urls().len(), 3);
    let client = etcd_only(&cluster).connect().await?;
    client
        .run(Intent::Write, async |c| {
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS etcd_load (id bigint PRIMARY KEY, at timestamptz DEFAULT now())",
            )
            .await?;
            Ok(())
        })
        .await?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, Vec::new());
            let mut id = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                id += 1;
                // Idempotent: a write interrupted by the switchover is replayed, not reported as
                // outcome-unknown.
                let insert = client.op(Intent::Write).idempotent().run(async move |c| {
                    let row = id;
                    Ok(
                        c.execute("INSERT INTO etcd_load (id) VALUES ($1) ON CONFLICT DO NOTHING", &[&row])
                            .await?,
                    )
                });
                match insert.await {
                    Ok(_) => ok += 1,
                    Err(e) => failed.push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (ok, failed)
        })
    };
    for i in 0..3 {
        cluster.kill_etcd_member(i)?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        client
            .wait_for_topology(Duration::from_secs(10), |t| {
                t.source == Source::Dcs && t.primary().is_some()
            })
            .await?;
        cluster.start_etcd_member(i).await?;
    }
    switch_over_and_follow(&cluster, &client).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = writer.await?;
    assert!(ok > 100, "writes went on: {ok}");
    assert!(failed.is_empty(), "{} writes failed: {failed:?}", failed.len());
    assert_eq!(client.metrics().errors_surfaced, 0);
    cluster.shutdown();
    Ok(())
}
