//! # pgha-client
//!
//! Patroni-aware PostgreSQL access for async Rust services. This crate is being built; see the
//! project README for its status. Today it provides nothing beyond this documentation.
#![deny(missing_docs)]
