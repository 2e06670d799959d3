//! `examples/axum_service.rs` as users run it: its own process, configured only from the
//! environment (the password from a `.pgpass` file), against a real cluster — not ready while the
//! cluster is down, ready once a primary is confirmed, storing and searching embeddings, serving
//! Prometheus metrics, and stopping cleanly on SIGTERM.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use pgha_testkit::LocalCluster;

/// The example's binary, built (or found up to date) by cargo now.
fn example() -> anyhow::Result<std::path::PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "-p", "pgha", "--example", "axum_service"])
        .status()
        .context("cargo build")?;
    ensure!(status.success(), "building the example failed");
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples/axum_service"))
        .context("target directory")?;
    ensure!(bin.exists(), "{} is missing", bin.display());
    Ok(bin)
}

/// GET or send `body` to `path`; the status and the body.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<serde_json::Value>,
) -> anyhow::Result<(u16, String)> {
    let mut request = http.request(method, url).timeout(Duration::from_secs(30));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}

/// Polls `/ready` until it answers `want` (or the service is not up yet and `want` is 503).
async fn wait_ready(http: &reqwest::Client, base: &str, want: u16, timeout: Duration) -> anyhow::Result<String> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < timeout {
        if let Ok((status, body)) = call(http, reqwest::Method::GET, format!("{base}/ready"), None).await {
            if status == want {
                return Ok(body);
            }
            last = format!("{status} {body}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("/ready did not answer {want} in {timeout:?}; last: {last}")
}

/// `pgha_operations_total` of successful writes on `leader`, from `/metrics` (0 before any).
async fn writes(http: &reqwest::Client, base: &str, leader: &str) -> anyhow::Result<f64> {
    let (status, metrics) = call(http, reqwest::Method::GET, format!("{base}/metrics"), None).await?;
    ensure!(status == 200, "GET /metrics: {status}");
    let line = metrics.lines().find(|l| {
        l.starts_with("pgha_operations_total{")
            && l.contains("intent=\"write\"")
            && l.contains("outcome=\"ok\"")
            && l.contains(&format!("member=\"{leader}\""))
    });
    match line {
        Some(l) => Ok(l.rsplit(' ').next().unwrap_or_default().parse()?),
        None => Ok(0.0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_example_is_ready_only_with_a_primary_and_serves_search_and_metrics() -> anyhow::Result<()> {
    pgha_testkit::init_test_tracing("pgha_testkit=info");
    let bin = example()?;
    let cluster = LocalCluster::builder().members(2).pgbackrest(false).start().await?;
    let app = cluster.credentials().app;
    let dir = tempfile::tempdir()?;
    let pgpass = dir.path().join("pgpass");
    let mut file = std::fs::File::create(&pgpass)?;
    writeln!(
        file,
        "*:*:{}:{}:{}",
        cluster.database(),
        app.username,
        app.password.expose()
    )?;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let base = format!("http://127.0.0.1:{port}");

    // The service starts while the cluster is down, and says it is not ready.
    let members = cluster.member_names();
    for m in &members {
        cluster.stop_node(m)?;
    }
    let mut service = tokio::process::Command::new(&bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PGHA_PATRONI_URLS", cluster.patroni_urls().join(","))
        .env("PGHA_USER", &app.username)
        .env("PGHA_DBNAME", cluster.database())
        .env("PGHA_SSLMODE", "disable")
        .env("PGHA_CONNECT_TIMEOUT", "2s")
        .env("PGPASSFILE", &pgpass)
        .env("PGHA_LISTEN", format!("127.0.0.1:{port}"))
        .env("APP_EMBEDDING_DIM", "3")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let http = reqwest::Client::new();
    wait_ready(&http, &base, 503, Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    wait_ready(&http, &base, 503, Duration::from_secs(5)).await?;

    // The cluster comes back: ready once a primary is confirmed.
    for m in &members {
        cluster.start_node(m)?;
    }
    let leader = cluster.wait_ready(Duration::from_secs(90)).await?;
    let health: serde_json::Value =
        serde_json::from_str(&wait_ready(&http, &base, 200, Duration::from_secs(90)).await?)?;
    ensure!(health["primary"] == leader.as_str(), "ready with the leader: {health}");

    let writes_before = writes(&http, &base, &leader).await?;
    for (id, embedding) in [(1, [1.0, 0.0, 0.0]), (2, [0.0, 1.0, 0.0]), (3, [0.0, 0.0, 1.0])] {
        let (status, body) = call(
            &http,
            reqwest::Method::PUT,
            format!("{base}/items/{id}"),
            Some(serde_json::json!({ "embedding": embedding })),
        )
        .await?;
        ensure!(status == 200, "PUT /items/{id}: {status} {body}");
    }
    // Searches read standbys under the lag bound (else the primary): the items arrive there.
    let started = Instant::now();
    let hits = loop {
        let (status, body) = call(
            &http,
            reqwest::Method::POST,
            format!("{base}/search"),
            Some(serde_json::json!({ "embedding": [0.9, 0.1, 0.0], "k": 2 })),
        )
        .await?;
        ensure!(status == 200, "POST /search: {status} {body}");
        let hits: serde_json::Value = serde_json::from_str(&body)?;
        if hits.as_array().is_some_and(|h| h.len() == 2) || started.elapsed() > Duration::from_secs(20) {
            break hits;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ensure!(hits[0]["id"] == 1 && hits[1]["id"] == 2, "nearest first: {hits}");
    let (status, body) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/search"),
        Some(serde_json::json!({ "embedding": [1.0, 0.0] })),
    )
    .await?;
    ensure!(
        status == 400,
        "a wrong dimension is the caller's mistake: {status} {body}"
    );

    ensure!(
        writes(&http, &base, &leader).await? == writes_before + 3.0,
        "the three inserts are counted"
    );
    let (_, metrics) = call(&http, reqwest::Method::GET, format!("{base}/metrics"), None).await?;
    ensure!(metrics.contains("pgha_member_primary{member=\""), "{metrics}");

    // SIGTERM: a graceful stop, exit status 0.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(service.id().context("pid")?)?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
    let status = tokio::time::timeout(Duration::from_secs(30), service.wait())
        .await
        .context("the service did not stop within 30 s of SIGTERM")??;
    ensure!(status.success(), "exit status {status}");
    cluster.shutdown();
    Ok(())
}
