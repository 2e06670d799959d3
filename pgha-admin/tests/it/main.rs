//! pgha-admin's integration tests, linked into one binary (as tokio-postgres does) instead of six.
//!
//! Tests under [`cluster`] start real local Patroni clusters and drive them through the library
//! and the `pgha` binary; the others need none and are part of `make unit`.
//! `.config/nextest.toml` tells them apart by that module path.

mod cluster;
mod common;
mod hostile;
