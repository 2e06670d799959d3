//! A small HTTP service that stores and searches pgvector embeddings through pgha-client — the
//! shape to copy into a real service.
//!
//! - **Configured from the environment only**: `ClientConfig::from_env("PGHA")` reads the same
//!   `PGHA_*` variables as the `pgha` CLI (`PGHA_PATRONI_URLS` or `PGHA_ETCD_URLS` with
//!   `PGHA_PATRONI_SCOPE`, `PGHA_USER`, `PGHA_PASSWORD`, `PGHA_DBNAME`, `PGHA_SSLMODE`…) and
//!   libpq's `PG*` and `~/.pgpass` for what those leave out. `PGHA_LISTEN` (default
//!   `127.0.0.1:8080`) is where it listens; `APP_EMBEDDING_DIM` (default 384) the dimension.
//! - **`GET /ready`**: 200 once a primary is confirmed, 503 otherwise (also while the database is
//!   not reachable yet: the service starts without it and connects in the background), with
//!   the client's [`Health`](pgha_client::Health) as JSON.
//! - **`GET /metrics`**: Prometheus text — pgha-client's `pgha_*` metrics (feature `metrics`).
//! - **`PUT /items/{id}`** `{"embedding": [..]}` stores an embedding (idempotent: retried
//!   across failover); **`POST /search`** `{"embedding": [..], "k": 5}` returns the nearest
//!   items, from a standby under the lag bound when there is one.
//! - **Graceful shutdown** on SIGTERM or Ctrl-C: requests in flight finish, then the client
//!   closes its pools.
//!
//! ```sh
//! PGHA_PATRONI_URLS=http://10.0.0.1:8008,http://10.0.0.2:8008 PGHA_USER=app PGHA_PASSWORD=… \
//!   PGHA_DBNAME=app cargo run --example axum_service
//! curl -X PUT localhost:8080/items/1 -H 'content-type: application/json' -d '{"embedding": [0.1, …]}'
//! ```

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use pgha_client::vector::{IndexKind, SearchOptions, VectorTable};
use pgha_client::{Client, ClientConfig};
use pgvector::Vector;
use serde::{Deserialize, Serialize};

struct App {
    /// Set once the first connection succeeded.
    client: OnceLock<Client>,
    table: VectorTable,
    prometheus: PrometheusHandle,
}

#[derive(Deserialize)]
struct Item {
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct Search {
    embedding: Vec<f32>,
    #[serde(default = "default_k")]
    k: usize,
}

fn default_k() -> usize {
    5
}

#[derive(Serialize)]
struct Hit {
    id: i64,
    distance: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // The recorder first: pgha-client registers its metrics with whatever is installed when the
    // client is built.
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    let config = ClientConfig::from_env("PGHA")?;
    let listen = std::env::var("PGHA_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let dims = match std::env::var("APP_EMBEDDING_DIM") {
        Ok(d) => d.parse()?,
        Err(_) => 384,
    };
    let app = Arc::new(App {
        client: OnceLock::new(),
        table: VectorTable::new("items", dims)?,
        prometheus,
    });
    tokio::spawn(connect(app.clone(), config));

    let router = Router::new()
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/items/{id}", put(store))
        .route("/search", post(search))
        .with_state(app.clone());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    if let Some(client) = app.client.get() {
        client.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Connects (and creates the table) in the background, trying again every 2 s until it works,
/// so that the service is up — and says it is not ready — while the database is not.
async fn connect(app: Arc<App>, config: ClientConfig) {
    loop {
        let attempt = async {
            let client = config.clone().into_builder().connect().await?;
            app.table.ensure(&client, IndexKind::hnsw()).await?;
            Ok::<_, pgha_client::Error>(client)
        };
        match attempt.await {
            Ok(client) => {
                let _ = app.client.set(client);
                tracing::info!("connected");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot use the database yet; trying again in 2 s");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    match app.client.get() {
        Some(client) => {
            let health = client.health();
            let status = if health.is_ready() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, Json(health)).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "not connected yet").into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.prometheus.render(),
    )
        .into_response()
}

async fn store(State(app): State<Arc<App>>, Path(id): Path<i64>, Json(item): Json<Item>) -> Response {
    let Some(client) = app.client.get() else {
        return not_connected();
    };
    match app.table.insert(client, &[(id, Vector::from(item.embedding))]).await {
        Ok(inserted) => (StatusCode::OK, Json(serde_json::json!({ "inserted": inserted }))).into_response(),
        Err(e) => failure(&e),
    }
}

async fn search(State(app): State<Arc<App>>, Json(query): Json<Search>) -> Response {
    let Some(client) = app.client.get() else {
        return not_connected();
    };
    let embedding = Vector::from(query.embedding);
    match app
        .table
        .search(client, &embedding, query.k, SearchOptions::default())
        .await
    {
        Ok(hits) => Json(
            hits.iter()
                .map(|n| Hit {
                    id: n.id,
                    distance: n.distance,
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => failure(&e),
    }
}

fn not_connected() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "not connected yet").into_response()
}

/// An operation's error as an HTTP answer: the caller's mistake (a wrong dimension) is a 400;
/// no usable member within the deadline is a 503; a write whose outcome is unknown is a 500 that
/// says so (the client should check before writing again).
fn failure(e: &pgha_client::Error) -> Response {
    let status = if e.is_config() {
        StatusCode::BAD_REQUEST
    } else if e.is_timeout() || e.is_no_member() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    tracing::warn!(error = %e, %status, "request failed");
    (status, e.to_string()).into_response()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down: finishing the requests in flight");
}
