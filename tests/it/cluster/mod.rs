//! End to end against real clusters: failover under load, admin operations under load and faults,
//! etcd quorum loss, and the
//! short fault-injection runs.

mod admin_under_load;
mod axum_service;
mod chaos;
mod client_cut;
mod etcd_quorum;
mod failover;
