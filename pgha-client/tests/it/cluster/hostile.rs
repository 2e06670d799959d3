//! Hostile Patroni endpoints next to a real cluster: malformed JSON, a huge body, an endless
//! body, a stalled body, a hanging answer, a redirect, another cluster's scope naming a replica
//! as leader, and two leaders at once. The client must ignore them (with a warning), keep
//! refreshing, buffer no more than its limit, and never route a write anywhere but the real
//! leader.

use std::time::Duration;

use pgha_client::{Client, ClientBuilder, Intent, SslMode};
use pgha_testkit::{HostilePatroni, LocalCluster, Misbehaviour};

use crate::hostile::cluster_json;

async fn hostile_endpoints(cluster: &LocalCluster) -> Vec<HostilePatroni> {
    let leader = cluster.leader().await.expect("leader");
    let replica = cluster
        .member_names()
        .into_iter()
        .find(|m| *m != leader)
        .expect("a replica");
    let (leader_port, replica_port) = (
        cluster.pg_port(&leader).expect("port"),
        cluster.pg_port(&replica).expect("port"),
    );
    let real = cluster.patroni_urls()[0].clone();
    let mut endpoints = Vec::new();
    for m in [
        Misbehaviour::MalformedJson,
        Misbehaviour::HugeBody,
        Misbehaviour::EndlessBody,
        Misbehaviour::StalledBody,
        Misbehaviour::Hang,
        Misbehaviour::Redirect(format!("{real}/cluster")),
        Misbehaviour::Json(cluster_json(
            Some("someone-else"),
            &[("intruder", "leader", replica_port)],
        )),
        Misbehaviour::Json(cluster_json(
            None,
            &[(&leader, "leader", leader_port), (&replica, "leader", replica_port)],
        )),
    ] {
        endpoints.push(HostilePatroni::start(m).await.expect("hostile endpoint"));
    }
    endpoints
}

fn builder(cluster: &LocalCluster, urls: Vec<String>) -> ClientBuilder {
    let creds = cluster.credentials();
    Client::builder()
        .patroni(urls)
        .user(creds.app.username.clone())
        .password(creds.app.password.expose())
        .dbname(cluster.database())
        .ssl_mode(SslMode::Disable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_endpoints_never_steer_a_write() {
    crate::hostile::init_tracing();
    let cluster = LocalCluster::builder().members(3).start().await.expect("cluster");
    let leader = cluster.leader().await.expect("leader");
    let leader_port = i32::from(cluster.pg_port(&leader).expect("port"));
    let hostile = hostile_endpoints(&cluster).await;

    // Hostile endpoints first in the list, so they answer first.
    let mut urls: Vec<String> = hostile.iter().map(|h| h.url().to_owned()).collect();
    urls.extend(cluster.patroni_urls());
    let client = builder(&cluster, urls).connect().await.expect("connect");
    client
        .wait_for_topology(Duration::from_secs(30), |t| t.primary().is_some())
        .await
        .expect("the real leader is found");
    assert_eq!(
        client.topology().primary().map(|m| m.name.clone()),
        Some(leader.clone())
    );

    let refreshes_before = client.metrics().refreshes;
    for _ in 0..50 {
        let (port, writable): (i32, bool) = client
            .op(Intent::Write)
            .run(async |c| {
                let row = c
                    .query_one("SELECT current_setting('port')::int4, NOT pg_is_in_recovery()", &[])
                    .await?;
                Ok((row.get(0), row.get(1)))
            })
            .await
            .expect("write routed");
        assert_eq!(
            (port, writable),
            (leader_port, true),
            "a write went elsewhere than the real leader"
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let refreshes = client.metrics().refreshes - refreshes_before;
    assert!(
        refreshes >= 2,
        "refreshes must go on while endpoints hang or stream forever ({refreshes} in 3 s)"
    );
    for h in &hostile {
        // The client stops at 1 MiB; the kernel's socket buffers absorb a few MiB more.
        assert!(
            h.most_bytes_per_connection() < 16 << 20,
            "{} fed {} bytes to one request: the client kept reading past its limit",
            h.url(),
            h.most_bytes_per_connection()
        );
    }
    let streamed = hostile
        .iter()
        .map(HostilePatroni::most_bytes_per_connection)
        .max()
        .unwrap_or(0);
    assert!(
        streamed > 1 << 20,
        "the endless and huge bodies did reach the client ({streamed} bytes)"
    );
    client.shutdown().await;
}
