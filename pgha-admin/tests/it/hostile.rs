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

/// `/cluster` subtracts WAL positions the members wrote to the DCS at their last HA loop, so
/// right after a WAL switch it can show megabytes of lag for a standby that streams in step
/// (CI saw 11,886,752 bytes). The pre-flight check judges the lag on the members' live
/// positions, as Patroni does: a standby in step is taken, one really behind is refused with
/// its live figure. A real cluster cannot be held in that race on demand, hence the fakes: one
/// per member's REST API, and one serving the (stale) `/cluster` and `/config`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_preflight_judges_lag_on_live_positions_not_on_the_dcs_snapshot() {
    const LEADER_AT: u64 = 83_886_080;
    let member_api = |role: &str, xlog: String| {
        HostilePatroni::start(Misbehaviour::JsonByPath(vec![(
            "/patroni".into(),
            format!(r#"{{"state": "running", "role": "{role}", "timeline": 1, "xlog": {xlog}}}"#),
        )]))
    };
    let standby_at = |at: u64| {
        member_api(
            "replica",
            format!(r#"{{"received_location": {at}, "replayed_location": {at}}}"#),
        )
    };
    let a = member_api("primary", format!(r#"{{"location": {LEADER_AT}}}"#))
        .await
        .expect("endpoint");
    let b = standby_at(LEADER_AT).await.expect("endpoint");
    let c = standby_at(LEADER_AT - 5_000_000).await.expect("endpoint");
    let cluster = format!(
        r#"{{"members": [
            {{"name": "a", "role": "leader", "state": "running", "timeline": 1, "api_url": "{}/patroni"}},
            {{"name": "b", "role": "replica", "state": "streaming", "timeline": 1, "lag": 11886752, "api_url": "{}/patroni"}},
            {{"name": "c", "role": "replica", "state": "streaming", "timeline": 1, "lag": 0, "api_url": "{}/patroni"}}]}}"#,
        a.url(),
        b.url(),
        c.url()
    );
    let dcs_view = HostilePatroni::start(Misbehaviour::JsonByPath(vec![
        ("/cluster".into(), cluster),
        ("/config".into(), r#"{"maximum_lag_on_failover": 1048576}"#.into()),
    ]))
    .await
    .expect("endpoint");
    let admin = admin(&[&dcs_view]);
    let plan = admin
        .plan_switchover(&SwitchoverRequest::new(Some("b")))
        .await
        .expect("b streams in step with the leader: /cluster's 11886752 bytes are a stale figure");
    assert_eq!(plan.eligible, ["b"], "{plan:?}");
    let e = admin
        .plan_switchover(&SwitchoverRequest::new(Some("c")))
        .await
        .expect_err("c is 5000000 bytes behind the leader now, whatever /cluster says");
    assert_eq!(e.kind(), ErrorKind::Precondition, "{e}");
    assert!(e.to_string().contains("it lags 5000000 bytes"), "{e}");
    // A member whose REST API does not answer is judged on /cluster's figure.
    drop(b);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let e = admin
        .plan_switchover(&SwitchoverRequest::new(Some("b")))
        .await
        .expect_err("without its live position, b is judged on /cluster's figure");
    assert!(e.to_string().contains("it lags 11886752 bytes"), "{e}");
}

/// An unsafe call goes to the leader's API first, as patronictl sends it — unless that API does
/// not answer: a frozen leader (here an endpoint that accepts and never replies) stays named in
/// `/cluster` until its key expires, and a request sent there would be lost as "may have reached
/// Patroni".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_calls_go_to_the_leader_unless_it_does_not_answer() {
    let cluster_naming = |leader: &HostilePatroni| {
        format!(
            r#"{{"members": [{{"name": "a", "role": "leader", "state": "running", "timeline": 1, "api_url": "{}/patroni"}}]}}"#,
            leader.url()
        )
    };
    let answering_leader = HostilePatroni::start(Misbehaviour::JsonByPath(vec![
        ("/patroni".into(), r#"{"state": "running", "role": "primary"}"#.into()),
        ("/config".into(), r#"{"answered_by": "leader"}"#.into()),
    ]))
    .await
    .expect("endpoint");
    let frozen_leader = HostilePatroni::start(Misbehaviour::Hang).await.expect("endpoint");
    for (leader, expected) in [(&answering_leader, "leader"), (&frozen_leader, "configured endpoint")] {
        let configured = HostilePatroni::start(Misbehaviour::JsonByPath(vec![
            ("/cluster".into(), cluster_naming(leader)),
            ("/config".into(), r#"{"answered_by": "configured endpoint"}"#.into()),
        ]))
        .await
        .expect("endpoint");
        let started = Instant::now();
        let patched = admin(&[&configured])
            .patch_config(&serde_json::json!({ "loop_wait": 3 }))
            .await
            .unwrap_or_else(|e| panic!("PATCH /config with the leader at {}: {e}", leader.url()));
        assert_eq!(patched["answered_by"], expected, "{patched}");
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    }
}
