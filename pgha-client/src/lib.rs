//! # pgha-client
//!
//! Patroni-aware PostgreSQL access for async Rust services. Give it the Patroni REST endpoints
//! and database credentials; from then on writes reach the verified primary, reads reach
//! standbys that are fresh enough, and switchovers and failovers pass without errors reaching
//! the application.
//!
//! ```no_run
//! use std::time::Duration;
//! use pgha_client::{Client, Intent, LagBound};
//!
//! # async fn demo() -> pgha_client::Result<()> {
//! let client = Client::builder()
//!     .patroni(["http://10.0.0.1:8008", "http://10.0.0.2:8008"])
//!     .user("app").password("secret").dbname("app")
//!     .connect()
//!     .await?;
//!
//! // A transaction on the primary, replayed as a whole if a failover interrupts it.
//! let (_, token) = client
//!     .op(Intent::Write)
//!     .transaction_with_token(async |tx| {
//!         tx.execute("INSERT INTO orders (id, total) VALUES ($1, $2)", &[&42_i64, &9.5_f64]).await?;
//!         Ok(())
//!     })
//!     .await?;
//!
//! // A read on a standby at most 1 s stale that is guaranteed to see the insert above.
//! let total: f64 = client
//!     .op(Intent::Standby)
//!     .max_lag(LagBound::time(Duration::from_secs(1)))
//!     .after(token)
//!     .run(async |conn| Ok(conn.query_one("SELECT total FROM orders WHERE id = $1", &[&42_i64]).await?.get(0)))
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! ## How it works
//! - **Discovery.** One background task learns the members from Patroni, in one of two ways:
//!   - **From etcd** ([`etcd`](ClientBuilder::etcd) with [`patroni_scope`](ClientBuilder::patroni_scope)):
//!     Patroni's keys under `/<namespace>/<scope>/` are listed once and then watched (one stream
//!     per client, through etcd's JSON gateway), so a leader change reaches the client as soon as
//!     etcd records it. The watch resumes on another etcd member after a jittered backoff; while
//!     it is down for more than 3 s, the Patroni REST APIs are polled instead (the configured ones,
//!     or those the members' keys name), then the known members are probed directly — each switch
//!     a [`TopologyEvent::SourceChanged`].
//!   - **From the REST API** ([`patroni`](ClientBuilder::patroni)): `GET /cluster` on one endpoint
//!     per refresh while all is well (picked at random among those that answered), on every
//!     endpoint at once as soon as anything is wrong (learning the other members' endpoints from
//!     the answers).
//!
//!   Every member is then probed with one SQL query on a connection of its own pool:
//!   `pg_is_in_recovery()`, the WAL position and the timeline. A member is the primary only if
//!   Patroni calls it the leader **and** its database agrees, and it is on the highest timeline
//!   seen (fencing). When neither etcd nor any Patroni endpoint answers, the known members are
//!   probed directly and the one out of recovery on the highest timeline is used. Answers of
//!   another cluster (a scope other than the configured
//!   [`patroni_scope`](ClientBuilder::patroni_scope), or than the one most endpoints report) and
//!   answers naming two leaders are ignored; a malformed, huge or hanging answer costs at most
//!   the Patroni timeout and 1 MiB. Refreshes happen every `refresh_interval` (500 ms), at once
//!   when etcd reports a change, and at once (rate-limited to `min_refresh_interval`, 200 ms)
//!   when an operation fails in a way that suggests the topology changed.
//! - **Idle clients cost nothing.** A client without an operation for
//!   [`idle_timeout`](ClientBuilder::idle_timeout) (30 s) — or one that never ran any — closes its
//!   pooled connections and stops probing and polling (an etcd watch stays open); its next
//!   operation refreshes the topology first, so nothing is routed on an old view. Likewise, after
//!   `idle_timeout` without an operation that may read from a standby only the members that may
//!   be the primary are probed (a client that only writes holds nothing on the standbys); the
//!   next such read probes the standbys first.
//! - **Routing** is a pure function of the snapshot, the [`Intent`], the [`LagBound`] and the
//!   time; see [`Intent`] for the table. Standby staleness is measured by pgha from WAL
//!   positions, so an idle primary never makes standbys look stale.
//! - **Pools.** One deadpool-postgres pool per member, handing out the connection used last (so
//!   a pool grown by a burst shrinks back after `idle_timeout`). When a member stops being the
//!   primary, its pool is closed and replaced, so no connection to a demoted primary is reused.
//! - **Retries.** [`Op::run`] and [`Op::transaction`] retry what is safe to retry until the
//!   deadline, with backoff and jitter under a client-wide budget (table below). A write
//!   interrupted after COMMIT was sent is reported as [outcome unknown](Error::is_outcome_unknown),
//!   never as success, and never replayed unless declared [idempotent](Op::idempotent).
//!
//! ## What is retried
//! | failure | read | write (`run`) | transaction, before COMMIT | transaction, during COMMIT |
//! |---|---|---|---|---|
//! | no connection (refused, pool timeout, `53300`, `57P03`) | retry | retry | retry | – |
//! | connection refused for good (`28P01`, `28000`, `3D000`, a certificate error) | error | error | error | – |
//! | `25006` read-only transaction (the node is a standby now) | error ³ | retry | retry | – |
//! | session lost (`57P01`, `57P02`, `08*`, closed socket, node demoted mid-attempt) | retry | **outcome unknown** ¹ | retry | **outcome unknown** ¹ |
//! | `40001` serialization failure, `40P01` deadlock | retry | error ² | retry | retry |
//! | anything else (constraint violation, syntax, `57014` statement timeout…) | error | error | error | error |
//!
//! ¹ retried instead when the operation is declared [idempotent](Op::idempotent).
//! ² that statement was rolled back, but earlier statements of the same `run` closure may have
//!   committed; retried when declared idempotent. Recovery conflicts on standbys are reported as
//!   `40001`, so reads retry them, on another member when there is one.
//! ³ every intent but `Write` runs read-only — on a standby, or on the primary with the
//!   session's `default_transaction_read_only` on (switched with one statement only when a
//!   connection last served the other kind) and read transactions as `READ ONLY` — so a write in
//!   a read intent fails at once with `25006` instead of being replayed.
//!
//! A retry after a failure that suggests the topology changed waits for a fresh topology
//! (refreshes are rate-limited to one per `min_refresh_interval`, 200 ms), so such retries are
//! paced by the refresh rate; while there is no primary (a failover in progress), writes wait for
//! one. The client-wide retry budget ([`RetryPolicy::budget_burst`]) caps the immediate retries
//! (serialization failures, deadlocks, recovery conflicts), which could otherwise storm.
//!
//! ## Closures, `Send` and cancellation
//! Operations take async closures (`async |conn| …`), called once per attempt. A closure that runs
//! in a spawned task must own what it captures — write `async move |conn| …` and clone what it
//! needs: today's compiler cannot prove `Send` for the future of an async closure that borrows a
//! local ("implementation of `Send` is not general enough"); owned captures, borrowed inside the
//! closure body, are fine.
//!
//! Dropping an operation's future is safe for the client, but leaves the operation's outcome
//! unknown to you, as with any database call. Each operation is bounded by its deadline
//! ([`RetryPolicy::deadline`], 30 s by default, per call with [`Op::deadline`]). An attempt still
//! running at the deadline, or whose future is dropped, is cancelled on the server (a
//! CancelRequest: the statement stops and its locks go) and its connection closed, never handed
//! back to the pool busy. Connections drop a member that stops acknowledging data after
//! [`tcp_user_timeout`](ClientBuilder::tcp_user_timeout) (10 s).
//!
//! ## Code that must hold a connection
//! [`Client::get`] hands out a pooled connection chosen by intent — a
//! `deadpool_postgres::Client`, as `pool.get()` returns — for session state: advisory locks,
//! `LISTEN`, cursors, libraries that take a client. Getting it waits and tries again like an
//! operation (nothing of yours has run); what you run on it is **not** retried. Transactions take
//! an isolation level and DEFERRABLE ([`Op::isolation`], [`Op::deferrable`]); READ ONLY follows
//! the intent.
//!
//! ## Readiness
//! [`Client::health`] reads the last topology snapshot, with no I/O: the verified primary and its
//! timeline, where the topology came from (etcd, a Patroni REST API or SQL probing), how many
//! standbys are under the lag bound, the age of the last refresh. [`Health::is_ready`] — the
//! client runs and knows a verified primary — is what a readiness probe should answer.
//!
//! ## Read-your-writes and lost writes
//! A [`WalToken`] is the primary's WAL insert position after the commit (it covers the commit
//! record even with `synchronous_commit = off`), with its timeline. A read that carries it runs
//! on a member that has replayed it (checked on the session when the snapshot cannot tell),
//! within the operation's deadline. Tokens are judged against the cluster's timeline history
//! (Patroni's `/history`): a token of a write that an asynchronous failover lost fails the read
//! with [`Error::is_write_lost`] instead of silently missing the write. A write that committed but
//! whose position could not be read returns [`WalToken::UNKNOWN`], which sends reads to the
//! primary.
//!
//! ## Metrics
//! With the `metrics` feature, pgha records through the [`metrics`](https://docs.rs/metrics)
//! facade: install the exporter you use (Prometheus with `metrics-exporter-prometheus`,
//! OpenTelemetry, StatsD…) **before** building the client, and pgha's metrics appear in it.
//! Without the feature nothing is recorded and the facade is not compiled in;
//! [`Client::metrics`] (counters) and [`Client::health`] work either way.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `pgha_operations_total` | counter | intent, outcome, member | Operations finished (run, transaction, get), by intent, outcome (`ok` or the error kind: `outcome_unknown`, `timeout`, `no_member`, `connect`, `db`, `user`, `write_lost`, `budget_exhausted`, `shutdown`, `config`) and the member of the last attempt |
//! | `pgha_operation_duration_seconds` | histogram | intent, outcome | Time from the call to its result, retries and waits included, in seconds |
//! | `pgha_attempts_total` | counter | intent, member | Attempts started on a member (an operation makes one, plus one per retry) |
//! | `pgha_retries_total` | counter | reason | Attempts retried, by what failed: `connect`, `read_only` (25006: the node is a standby now), `not_accepting` (57P03, 53300), `session_lost`, `serialization_failure`, `deadlock`, `other` |
//! | `pgha_fallbacks_total` | counter | intent | Reads served by the primary because no standby was under the lag bound |
//! | `pgha_primary_changes_total` | counter | – | Changes of the verified primary to another member (failovers and switchovers seen) |
//! | `pgha_topology_events_total` | counter | event | Topology events, by kind (`leader-changed`, `member-joined`, `member-left`, `standby-excluded`, `standby-included`, `source-changed`, `pool-purged`) |
//! | `pgha_topology_refresh_duration_seconds` | histogram | source | Time one topology refresh took (discovery and SQL probes), by the source it used (`dcs`, `patroni`, `sql-probe`), in seconds |
//! | `pgha_patroni_requests_total` | counter | – | Requests sent to Patroni REST APIs (`/cluster` polls and `/history` reads) |
//! | `pgha_member_primary` | gauge | member | 1 for the verified primary, 0 for every other member |
//! | `pgha_member_usable` | gauge | member | 1 for the primary and the standbys in service, 0 for a member not used |
//! | `pgha_member_staleness_seconds` | gauge | member | How stale a standby was at its last probe, in seconds (NaN when unknown) |
//! | `pgha_member_lag_bytes` | gauge | member | WAL bytes between the primary's last sampled position and a standby's replay position (NaN when unknown) |
//! | `pgha_pool_size` | gauge | member | Connections open in the member's pool |
//! | `pgha_pool_available` | gauge | member | Of those, idle in the pool |
//! | `pgha_pool_waiting` | gauge | member | Checkouts waiting for a connection of the member's pool |
//!
//! Every operation is also a span, `pgha.op` at INFO level, with OpenTelemetry's database client
//! attributes (`db.system.name` = `postgresql`, `db.namespace`) and `pgha.intent`,
//! `pgha.attempts`, `pgha.member` and `pgha.outcome`; each attempt inside it is a `pgha.attempt`
//! span with `server.address`, `server.port`, `pgha.member`, `pgha.attempt` and, when it failed,
//! `error.type`. The topology task runs in a `pgha.topology` span.
//!
//! ## Features
//! | feature | default | what |
//! |---|---|---|
//! | `pgvector` | yes | [`vector`]: pgvector tables, HNSW/IVFFlat indexes, binary COPY, k-NN search |
//! | `metrics` | no | metrics through the `metrics` facade (see [Metrics](#metrics)) |
//!
//! The crates your code names are re-exported: [`tokio_postgres`], [`deadpool_postgres`],
//! [`reqwest`] (for the [`Method`](reqwest::Method) of [`Connector::patroni_send`]) and (with
//! `pgvector`) [`pgvector`].
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod address;
mod classify;
mod client;
mod config;
mod connector;
mod duration;
mod error;
mod etcd;
mod events;
mod failure;
mod health;
mod ident;
mod intent;
mod metrics;
mod op;
pub mod patroni;
mod pool;
mod retry;
mod telemetry;
mod time;
mod tls;
mod token;
mod topology;
#[cfg(feature = "pgvector")]
pub mod vector;

pub use client::{Client, Connection, Transaction};
pub use config::{redact_connection_string, ChannelBinding, ClientBuilder, ClientConfig, Recycling, Secret, SslMode};
pub use connector::Connector;
pub use duration::parse_duration;
pub use error::{Error, Result};
pub use etcd::{DcsKeys, DcsRemoval};
pub use events::TopologyEvent;
pub use health::Health;
pub use ident::Ident;
pub use intent::{Balance, Intent, LagBound};
pub use metrics::{MemberMetrics, Metrics};
pub use op::Op;
pub use retry::RetryPolicy;
pub use token::{TokenParseError, WalToken};
pub use topology::{Exclusion, MemberInfo, MemberStatus, Source, Topology};

pub use deadpool_postgres;
#[cfg(feature = "pgvector")]
pub use pgvector;
/// The HTTP library of Patroni requests ([`Connector::patroni_send`] takes its `Method`).
pub use reqwest;
pub use tokio_postgres;

/// The README's examples, compiled as doctests so that they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
