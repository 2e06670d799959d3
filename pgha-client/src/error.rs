//! The one error type of pgha-client: opaque, with predicates instead of public variants.

use std::fmt;
use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::failure::{self, causes};

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from pgha-client or from the database.
///
/// Errors are opaque so that new kinds can be added without breaking callers: ask the predicates
/// ([`is_outcome_unknown`](Self::is_outcome_unknown), [`is_retryable`](Self::is_retryable),
/// [`is_timeout`](Self::is_timeout), [`is_no_member`](Self::is_no_member) …) and the accessors
/// ([`code`](Self::code), [`as_db_error`](Self::as_db_error), [`member`](Self::member)).
///
/// Inside [`Client::run`](crate::Client::run) closures, `?` converts `tokio_postgres::Error` into
/// this type; wrap your own errors with [`Error::user`] (they are never retried).
pub struct Error(Box<Inner>);

struct Inner {
    kind: Kind,
    member: Option<String>,
    message: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Invalid configuration or URL.
    Config,
    /// An error the database reported or a connection-level failure from tokio-postgres.
    Db,
    /// Could not get a connection to a member (connect failure, pool timeout).
    Connect,
    /// No member fits the intent (no primary known, no standby under the bound and no fallback).
    NoMember,
    /// The operation's deadline passed before it could succeed.
    Timeout,
    /// The connection was lost (or the node demoted) after COMMIT was sent: it may or may not
    /// have committed.
    OutcomeUnknown,
    /// The retry budget is exhausted (many operations are failing at once).
    BudgetExhausted,
    /// The client was shut down.
    Shutdown,
    /// An error raised by the caller's closure.
    User,
    /// A read-your-writes token names a write the cluster lost in a failover.
    WriteLost,
}

impl Kind {
    /// The kind's name in the `outcome` label of metrics and spans.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Db => "db",
            Self::Connect => "connect",
            Self::NoMember => "no_member",
            Self::Timeout => "timeout",
            Self::OutcomeUnknown => "outcome_unknown",
            Self::BudgetExhausted => "budget_exhausted",
            Self::Shutdown => "shutdown",
            Self::User => "user",
            Self::WriteLost => "write_lost",
        }
    }
}

impl Error {
    pub(crate) fn new(kind: Kind) -> Self {
        Self(Box::new(Inner {
            kind,
            member: None,
            message: None,
            source: None,
        }))
    }

    pub(crate) fn with_message(mut self, message: impl Into<String>) -> Self {
        self.0.message = Some(message.into());
        self
    }

    pub(crate) fn with_source(mut self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        self.0.source = Some(source.into());
        self
    }

    pub(crate) fn with_member(mut self, member: impl Into<String>) -> Self {
        self.0.member = Some(member.into());
        self
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(Kind::Config).with_message(message)
    }

    pub(crate) fn kind(&self) -> Kind {
        self.0.kind
    }

    pub(crate) fn into_kind(mut self, kind: Kind) -> Self {
        self.0.kind = kind;
        self
    }

    /// Wraps an application error raised inside a [`Client::run`](crate::Client::run) closure.
    /// Such errors are returned to the caller as they are and never retried.
    pub fn user(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::new(Kind::User).with_source(error)
    }

    /// The connection was lost, or the node stopped being the primary, after `COMMIT` (or an
    /// autocommit write) was sent: the write **may or may not** have been applied. pgha never
    /// reports this as success and never retries it unless the operation was declared
    /// idempotent. Check the data (for example by its unique key) before trying again.
    pub fn is_outcome_unknown(&self) -> bool {
        self.kind() == Kind::OutcomeUnknown
    }

    /// The operation ran out of time (its deadline passed while waiting for a usable member
    /// or retrying).
    pub fn is_timeout(&self) -> bool {
        self.kind() == Kind::Timeout
    }

    /// No member could serve the intent: no verified primary, or no standby under the lag
    /// bound while falling back to the primary is disabled.
    pub fn is_no_member(&self) -> bool {
        self.kind() == Kind::NoMember
    }

    /// The configuration (builder, URL or serde config) is invalid.
    pub fn is_config(&self) -> bool {
        self.kind() == Kind::Config
    }

    /// A connection to a member could not be established or checked out of its pool. When the
    /// server refused it for good (wrong password or role, missing database, certificate), the
    /// error is not [retryable](Self::is_retryable) and [`code`](Self::code) has the SQLSTATE.
    pub fn is_connect(&self) -> bool {
        self.kind() == Kind::Connect
    }

    /// The retry budget is exhausted: too many operations failed at once, so pgha stopped
    /// retrying to avoid a storm.
    pub fn is_budget_exhausted(&self) -> bool {
        self.kind() == Kind::BudgetExhausted
    }

    /// The client was shut down.
    pub fn is_shutdown(&self) -> bool {
        self.kind() == Kind::Shutdown
    }

    /// The read carried a [`WalToken`](crate::WalToken) of a write that the cluster lost: it
    /// was acknowledged by a primary whose timeline ended, in a failover, before that position
    /// (asynchronous replication). The read did not run; the write must be made again.
    pub fn is_write_lost(&self) -> bool {
        self.kind() == Kind::WriteLost
    }

    /// The error came from the caller's closure via [`Error::user`].
    pub fn is_user(&self) -> bool {
        self.kind() == Kind::User
    }

    /// Whether trying the operation again later could succeed: connection failures, failover
    /// in progress, timeouts, serialization failures and deadlocks. Never true for
    /// [`is_outcome_unknown`](Self::is_outcome_unknown) errors.
    pub fn is_retryable(&self) -> bool {
        match self.kind() {
            Kind::Connect => !failure::is_refused_for_good(self.code(), self),
            Kind::NoMember | Kind::Timeout | Kind::BudgetExhausted => true,
            Kind::Db => self.as_postgres().is_some_and(|e| {
                failure::is_connection_error(e)
                    || e.code().is_some_and(|c| {
                        matches!(
                            failure::class(c),
                            failure::Class::NotExecuted | failure::Class::TransientTransaction
                        )
                    })
            }),
            Kind::Config | Kind::OutcomeUnknown | Kind::Shutdown | Kind::User | Kind::WriteLost => false,
        }
    }

    /// The SQLSTATE, if the database reported one.
    pub fn code(&self) -> Option<&SqlState> {
        self.as_postgres().and_then(|e| e.code())
    }

    /// The database's error with all its fields, if the database reported one.
    pub fn as_db_error(&self) -> Option<&tokio_postgres::error::DbError> {
        self.as_postgres().and_then(|e| e.as_db_error())
    }

    /// The underlying tokio-postgres error, if any.
    pub fn as_postgres(&self) -> Option<&tokio_postgres::Error> {
        self.0
            .source
            .as_deref()
            .and_then(|s| s.downcast_ref::<tokio_postgres::Error>())
    }

    /// The member (Patroni name) the error happened on, if known.
    pub fn member(&self) -> Option<&str> {
        self.0.member.as_deref()
    }

    pub(crate) fn timeout(what: &str, after: Duration) -> Self {
        Self::new(Kind::Timeout).with_message(format!("{what} did not finish within {after:?}"))
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::new(Kind::Db).with_source(e)
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(pg) => Self::new(Kind::Connect).with_source(pg),
            // Every connection of the pool stayed in use for pool_wait_timeout: the client is
            // saturated, which no other member or retry would help with.
            deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => Self::new(Kind::Timeout)
                .with_message("every connection of the member's pool stayed in use for pool_wait_timeout"),
            other => Self::new(Kind::Connect).with_source(other),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind() {
            Kind::Config => "invalid configuration",
            Kind::Db => "database error",
            Kind::Connect => "could not connect",
            Kind::NoMember => "no cluster member can serve this request",
            Kind::Timeout => "deadline exceeded",
            Kind::OutcomeUnknown => "outcome unknown: the write may or may not have taken effect",
            Kind::BudgetExhausted => "retry budget exhausted",
            Kind::Shutdown => "the client was shut down",
            Kind::User => "application error",
            Kind::WriteLost => "write lost",
        };
        f.write_str(what)?;
        if let Some(member) = &self.0.member {
            write!(f, " (member {member})")?;
        }
        if let Some(message) = &self.0.message {
            write!(f, ": {message}")?;
        }
        if let Some(db) = self.as_db_error() {
            write!(f, ": {db}")?;
        } else if let Some(source) = &self.0.source {
            write!(f, ": {}", chain(source.as_ref()))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.0.kind)
            .field("member", &self.0.member)
            .field("message", &self.0.message)
            .field("source", &self.0.source)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// An error and its causes, `: `-separated (tokio-postgres and reqwest keep the interesting
/// part — "invalid peer certificate: UnknownIssuer", "connection refused" — in the sources).
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    for e in causes(error) {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_follow_the_kind() {
        let e = Error::new(Kind::OutcomeUnknown).with_member("node1");
        assert!(e.is_outcome_unknown());
        assert!(!e.is_retryable());
        assert_eq!(e.member(), Some("node1"));
        assert!(e.to_string().contains("member node1"), "{e}");

        let e = Error::user(std::io::Error::other("boom"));
        assert!(e.is_user() && !e.is_retryable());
        assert!(e.to_string().ends_with("boom"));

        assert!(Error::timeout("waiting", Duration::from_secs(1)).is_retryable());
        assert!(Error::config("bad").is_config());
    }
}
