//! The `pgha` CLI's integration tests, linked into one binary (as tokio-postgres does).
//!
//! The tests under [`cluster`] start a real local Patroni cluster and drive it through the `pgha`
//! binary (and, to set up or check, through pgha-admin and the testkit), as operators and cron
//! jobs do; `.config/nextest.toml` finds them by that module path. The others need no cluster.

mod cluster;
mod common;
mod environment;
mod generated;
