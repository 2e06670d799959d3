//! A member's address, shared by the topology (which learns it) and the pools (which connect to
//! it). A leaf, so that neither module needs the other for it.

/// A member's address as pgha knows it between refreshes (from Patroni or the seed hosts).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Address {
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) api_url: Option<String>,
}
