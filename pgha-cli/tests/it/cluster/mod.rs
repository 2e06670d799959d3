//! Every test under this module starts a real cluster (`.config/nextest.toml` runs them at most
//! two at a time; `make unit` skips them).

mod check;
mod cli;
mod compat;
mod operations;
mod pitr;
