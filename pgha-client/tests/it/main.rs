//! pgha-client's integration tests, linked into one binary (as tokio-postgres does): each module
//! here was a test binary of its own, and a 2-core machine links one executable instead of four.
//!
//! Tests under [`cluster`] start real local Patroni clusters; the others need none and are part of
//! `make unit`. `.config/nextest.toml` tells them apart by that module path.

mod cluster;
mod hostile;
mod patroni_fixtures;
mod redaction;
