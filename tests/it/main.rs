//! The umbrella crate's end-to-end tests, linked into one binary (as tokio-postgres does).
//!
//! Every test here starts real local Patroni clusters, so all of them sit under [`cluster`]
//! (`.config/nextest.toml` runs them at most two at a time; `make unit` skips them).

mod cluster;
