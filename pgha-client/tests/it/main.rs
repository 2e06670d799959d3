//! pgha-client's integration tests, linked into one binary (as tokio-postgres does), so a 2-core
//! machine links one executable instead of one per file. The exception is `tests/redaction.rs`,
//! which must own the process's global tracing subscriber.
//!
//! Tests under [`cluster`] start real local Patroni clusters; the others need none and are part of
//! `make unit`. `.config/nextest.toml` tells them apart by that module path.

mod cluster;
mod hostile;
mod patroni_fixtures;
