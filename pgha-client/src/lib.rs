//! # pgha-client
//!
//! Patroni-aware PostgreSQL access for async Rust services: topology from the Patroni REST API,
//! verified against the database; writes to the primary, reads to standbys under a lag bound;
//! retries across switchover and failover.
//!
//! **Status:** being built. Available today: [`patroni`], a tolerant model of Patroni's REST
//! API documents (3.0.x through 4.1.x), shared with `pgha-admin` and tested against responses
//! recorded from real Patroni 3.0.2 and 4.1.5 clusters.
#![deny(missing_docs)]

pub mod patroni;
