//! Patroni REST API documents, parsed tolerantly across Patroni 3.0.x–4.1.x.
//!
//! Patroni's JSON changed between versions (see the table in each type's docs): `/patroni` says
//! `role: master` on 3.x and `primary` on 4.x; `/cluster` gained `scope` (3.2), replica `state`
//! values `streaming`/`in archive recovery` (3.0.4), the `quorum_standby` role (4.0) and
//! `receive_lag`/`replay_lag` with LSNs (4.1). Unknown fields are ignored, unknown enum values are
//! kept as `Other(..)`, and `lag` may be a number or `"unknown"`. A document whose shape is wrong
//! (no `members` list, a port that is not a number…) is a [`ParseError`], never a panic.
//!
//! ```
//! use pgha_client::patroni::{ClusterView, Role};
//!
//! let view = ClusterView::from_json(br#"{"members": [
//!     {"name": "a", "role": "leader", "state": "running", "host": "10.0.0.1", "port": 5432, "timeline": 3},
//!     {"name": "b", "role": "replica", "state": "streaming", "host": "10.0.0.2", "port": 5432,
//!      "timeline": 3, "lag": "unknown"}]}"#)?;
//! assert_eq!(view.leader().map(|m| m.name.as_str()), Some("a"));
//! assert_eq!(view.members[1].role, Role::Replica);
//! assert_eq!(view.members[1].lag, None);
//! # Ok::<(), pgha_client::patroni::ParseError>(())
//! ```
//!
//! The REST API itself is reached one way, by discovery and by
//! [`Connector::patroni_send`](crate::Connector::patroni_send): no redirects, bodies up to 1 MiB,
//! the Patroni timeout on every safe request (at least a minute for unsafe ones), the basic-auth
//! credentials with unsafe requests and otherwise only to a configured URL or over HTTPS, and a
//! [`Failure`] that tells a request
//! that never left from one Patroni may have acted on.

mod http;
mod model;

pub(crate) use http::Api;
pub use http::{base_url, Failure, Reply};

pub use model::{
    ClusterView, HistoryEntry, Lsn, Member, NodeStatus, NodeXlog, ParseError, PatroniInfo, Role, ScheduledSwitchover,
    State, Tags,
};
