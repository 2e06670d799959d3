//! Only hostile Patroni endpoints, no cluster at all: the client starts, reports no member and
//! keeps every deadline.

use std::time::Duration;

use pgha_client::{Client, Intent, SslMode};
use pgha_testkit::{HostilePatroni, Misbehaviour};

pub(crate) fn init_tracing() {
    pgha_testkit::init_test_tracing("pgha_client=warn");
}

/// A `/cluster` answer naming `leader` (host, port) as the leader on timeline 99 — what a
/// confused or malicious endpoint could send to steer writes.
pub(crate) fn cluster_json(scope: Option<&str>, members: &[(&str, &str, u16)]) -> String {
    let scope = scope.map(|s| format!(r#""scope": "{s}","#)).unwrap_or_default();
    let members: Vec<String> = members
        .iter()
        .map(|(name, role, port)| {
            format!(
                r#"{{"name": "{name}", "role": "{role}", "state": "running", "host": "127.0.0.1", "port": {port}, "timeline": 99, "lag": 0}}"#
            )
        })
        .collect();
    format!(r#"{{{scope} "members": [{}]}}"#, members.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_hostile_endpoints_give_a_typed_error_in_bounded_time() {
    init_tracing();
    // No real cluster at all: the "leader" some endpoints name is a closed port.
    let mut endpoints = Vec::new();
    for m in [
        Misbehaviour::MalformedJson,
        Misbehaviour::EndlessBody,
        Misbehaviour::Hang,
        Misbehaviour::Redirect("http://127.0.0.1:1/cluster".into()),
        Misbehaviour::Json(cluster_json(None, &[("ghost", "leader", 1)])),
    ] {
        endpoints.push(HostilePatroni::start(m).await.expect("endpoint"));
    }
    let client = Client::builder()
        .patroni(endpoints.iter().map(|h| h.url().to_owned()))
        .user("nobody")
        .password("x")
        .ssl_mode(SslMode::Disable)
        .connect()
        .await
        .expect("the client starts: discovery failures are not fatal");
    let started = std::time::Instant::now();
    let err = client
        .op(Intent::Write)
        .deadline(Duration::from_secs(3))
        .run(async |c| Ok(c.query_one("SELECT 1", &[]).await?.get::<_, i32>(0)))
        .await
        .expect_err("there is no primary");
    assert!(err.is_no_member() || err.is_timeout(), "{err}");
    // The deadline holds even though every endpoint misbehaves (generous bound: a hang would be
    // minutes, not seconds).
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert!(client.topology().primary().is_none());
    client.shutdown().await;
}
