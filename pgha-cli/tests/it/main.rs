//! The `pgha` CLI's integration tests, linked into one binary (as tokio-postgres does).
//!
//! Every test here lives under [`cluster`]: it starts a real local Patroni cluster and drives it
//! through the `pgha` binary (and, to set up or check, through pgha-admin and the testkit), as
//! operators and cron jobs do. `.config/nextest.toml` finds them by that module path.

mod cluster;
mod common;
