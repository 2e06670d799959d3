//! # pgha-admin
//!
//! The PostgreSQL / Patroni / pgBackRest operations runbook as typed APIs and the `pgha` CLI.
//! This crate is being built; see the project README for its status. Today it provides nothing
//! beyond this documentation.
#![deny(missing_docs)]
