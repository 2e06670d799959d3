//! `pgha exporter --listen ADDR`: the metrics of `pgha check --format prometheus`, served over
//! HTTP for Prometheus to scrape: one check per scrape, one check at a time (a scrape that
//! comes during another waits for it), each bounded by `--scrape-timeout` with its wait. Stops cleanly on SIGTERM or
//! Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pgha_admin::{Admin, CheckOptions, Error, ErrorKind, Result};
use tokio::sync::Mutex;

/// The Prometheus text exposition format, version 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Exporter {
    admin: Admin,
    options: CheckOptions,
    /// Longest one scrape may take, its wait for a check in progress included.
    timeout: Duration,
    /// One check at a time: a scrape that arrives during one waits for it, then runs its own.
    running: Mutex<()>,
}

/// Serves `/metrics` on `listen` until SIGTERM or Ctrl-C; says where it listens on stderr.
pub(crate) async fn serve(admin: Admin, options: CheckOptions, listen: SocketAddr, timeout: Duration) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Error::new(ErrorKind::Usage, format!("listening on {listen}")).with_source(e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::new(ErrorKind::Usage, "the listening address").with_source(e))?;
    eprintln!("pgha: exporter listening on http://{bound}/metrics");
    let state = Arc::new(Exporter {
        admin,
        options,
        timeout,
        running: Mutex::new(()),
    });
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/", get(|| async { "pgha exporter: the metrics are at /metrics\n" }))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(stopped())
        .await
        .map_err(|e| Error::new(ErrorKind::Unreachable, "serving metrics").with_source(e))?;
    eprintln!("pgha: exporter stopped");
    Ok(())
}

async fn metrics(State(exporter): State<Arc<Exporter>>) -> Response {
    // The wait for a check in progress counts too: Prometheus gives up on a scrape after its
    // own timeout, and queued scrapes must not pile up behind a slow check.
    let scrape = async {
        let _one_at_a_time = exporter.running.lock().await;
        exporter.admin.check(&exporter.options).await
    };
    match tokio::time::timeout(exporter.timeout, scrape).await {
        Ok(report) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], report.prometheus(&[])).into_response(),
        Err(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            format!("the check did not finish within {:?}\n", exporter.timeout),
        )
            .into_response(),
    }
}

/// Resolves on SIGTERM or SIGINT (or at once if neither can be listened for).
async fn stopped() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
