//! `pgha`: the workspace umbrella. Re-exports the member crates so the top-level `examples/`,
//! `benches/` and `tests/` can use all of them.
#![deny(missing_docs)]

pub mod chaos;
pub mod harness;

pub use pgha_admin as admin;
pub use pgha_client as client;
pub use pgha_testkit as testkit;
