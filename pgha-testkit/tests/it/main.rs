//! pgha-testkit's integration tests, in the one-binary-per-crate layout the workspace uses.
//!
//! Every test here starts a real cluster, so all of them sit under [`cluster`]
//! (`.config/nextest.toml` runs them at most two at a time; `make unit` skips them).

mod cluster;
