//! pgha-admin against hostile Patroni endpoints (no cluster): every call ends in bounded time
//! with a typed error, and `check` reports CRITICAL instead of failing.

use std::time::{Duration, Instant};

use pgha_admin::{Admin, CheckOptions, ErrorKind, Level, SwitchoverRequest};
use pgha_testkit::{HostilePatroni, Misbehaviour};

fn admin(urls: &[&HostilePatroni]) -> Admin {
    Admin::new(
        pgha_admin::pgha_client::Client::builder()
            .patroni(urls.iter().map(|h| h.url().to_owned()))
            .user("postgres")
            .password("x"),
    )
    .expect("admin")
    .wait_timeout(Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_endpoints_give_typed_errors_in_bounded_time() {
    let cases = [
        (Misbehaviour::MalformedJson, ErrorKind::Protocol),
        (Misbehaviour::HugeBody, ErrorKind::Protocol),
        (Misbehaviour::EndlessBody, ErrorKind::Protocol),
        (Misbehaviour::StalledBody, ErrorKind::Unreachable),
        (Misbehaviour::Hang, ErrorKind::Unreachable),
        (
            Misbehaviour::Redirect("http://127.0.0.1:1/cluster".into()),
            ErrorKind::Unreachable,
        ),
        (
            Misbehaviour::Json(r#"{"members": [{"name": "a", "role": "leader", "port": "not a port"}]}"#.into()),
            ErrorKind::Protocol,
        ),
    ];
    for (m, kind) in cases {
        let endpoint = HostilePatroni::start(m.clone()).await.expect("endpoint");
        let admin = admin(&[&endpoint]);
        let started = Instant::now();
        let e = admin.status().await.expect_err("a hostile answer is not a status");
        // A GET is bounded by twice the Patroni timeout (1 s by default) per endpoint.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{m:?} took {:?}",
            started.elapsed()
        );
        // The failure of the only endpoint: an Unreachable wrapping the cause, or the cause.
        assert!(
            e.kind() == kind || e.kind() == ErrorKind::Unreachable,
            "{m:?}: expected {kind:?}, got {e}"
        );
        assert!(endpoint.most_bytes_per_connection() < 16 << 20, "{m:?}: unbounded read");
        let report = admin.check(&CheckOptions::default()).await;
        assert_eq!(report.level, Level::Critical, "{m:?}: {report:?}");
        let e = admin
            .switchover(&SwitchoverRequest::new(None))
            .await
            .expect_err("no switchover against a hostile endpoint");
        assert!(
            matches!(e.kind(), ErrorKind::Unreachable | ErrorKind::Protocol),
            "{m:?}: {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_leaders_are_not_a_switchover_source() {
    let endpoint = HostilePatroni::start(Misbehaviour::Json(
        r#"{"members": [{"name": "a", "role": "leader", "state": "running", "timeline": 3},
                        {"name": "b", "role": "leader", "state": "running", "timeline": 3}]}"#
            .into(),
    ))
    .await
    .expect("endpoint");
    let admin = admin(&[&endpoint]);
    let e = admin
        .switchover(&SwitchoverRequest::new(Some("b")))
        .await
        .expect_err("refused before anything is sent");
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert!(e.to_string().contains("2 leaders"), "{e}");
    assert_eq!(admin.check(&CheckOptions::default()).await.level, Level::Critical);
}
