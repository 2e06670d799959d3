//! The error type of pgha-admin and the process exit code each kind maps to.

use std::fmt;

use crate::exit_codes;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in the categories an operator acts on. Each maps to a documented process
/// exit code ([`ErrorKind::exit_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad input: a flag, a schedule, an identifier, a configuration file.
    Usage,
    /// The named member, slot, index, table or backup does not exist.
    NotFound,
    /// A pre-flight check refused the operation (unhealthy candidate, an active slot, a leader-only
    /// operation aimed at a replica, no confirmation…). Nothing was changed.
    Precondition,
    /// Patroni answered, and refused or failed the request.
    Patroni,
    /// No Patroni endpoint or database could be reached.
    Unreachable,
    /// The operation was started but the cluster did not reach the expected state in time.
    Timeout,
    /// The database reported an error.
    Database,
    /// pgBackRest failed (its own error code is in [`Error::pgbackrest_code`]).
    Backup,
    /// A response that could not be understood (malformed JSON, unexpected shape).
    Protocol,
    /// A node-control command (stop/start a node, clear the DCS…) failed.
    NodeControl,
}

impl ErrorKind {
    /// The process exit code of the `pgha` CLI for this kind (see [`crate::exit_codes`]).
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Usage => exit_codes::USAGE,
            Self::NotFound => exit_codes::NOT_FOUND,
            Self::Precondition => exit_codes::PRECONDITION,
            Self::Patroni => exit_codes::PATRONI,
            Self::Unreachable => exit_codes::UNREACHABLE,
            Self::Timeout => exit_codes::TIMEOUT,
            Self::Database => exit_codes::DATABASE,
            Self::Backup => exit_codes::BACKUP,
            Self::Protocol => exit_codes::PROTOCOL,
            Self::NodeControl => exit_codes::NODE_CONTROL,
        }
    }

    /// A stable, kebab-case name for machine-readable output (`pgha --format json` puts it in
    /// the error object's `kind`): `usage`, `not-found`, `precondition`, `patroni`,
    /// `unreachable`, `timeout`, `database`, `backup`, `protocol`, `node-control`.
    ///
    /// ```
    /// assert_eq!(pgha_admin::ErrorKind::NotFound.as_str(), "not-found");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Usage => "usage",
            Self::NotFound => "not-found",
            Self::Precondition => "precondition",
            Self::Patroni => "patroni",
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
            Self::Database => "database",
            Self::Backup => "backup",
            Self::Protocol => "protocol",
            Self::NodeControl => "node-control",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Usage => "invalid input",
            Self::NotFound => "not found",
            Self::Precondition => "refused by a pre-flight check",
            Self::Patroni => "Patroni rejected the request",
            Self::Unreachable => "unreachable",
            Self::Timeout => "timed out",
            Self::Database => "database error",
            Self::Backup => "pgBackRest failed",
            Self::Protocol => "unexpected response",
            Self::NodeControl => "node control failed",
        }
    }
}

/// An error from an administrative operation: a [kind](Self::kind), a message that says what was
/// being done, and the underlying cause. Messages never contain passwords.
pub struct Error {
    kind: ErrorKind,
    message: String,
    http_status: Option<u16>,
    pgbackrest_code: Option<i32>,
    settings: &'static [&'static str],
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// An error of `kind` saying what was being done — for [`NodeControl`](crate::pitr::NodeControl)
    /// and [`CommandRunner`](crate::backup::CommandRunner) implementations and tools built on
    /// this crate.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            http_status: None,
            pgbackrest_code: None,
            settings: &[],
            source: None,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub(crate) fn precondition(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Precondition, message)
    }

    pub(crate) fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, message)
    }

    pub(crate) fn patroni(status: u16, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorKind::Patroni, message);
        e.http_status = Some(status);
        e
    }

    pub(crate) fn backup(code: Option<i32>, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorKind::Backup, message);
        e.pgbackrest_code = code;
        e
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Names the configuration keys whose values would fix this error.
    pub(crate) fn with_settings(mut self, keys: &'static [&'static str]) -> Self {
        self.settings = keys;
        self
    }

    /// Puts `context` in front of the message.
    pub(crate) fn prefixed(mut self, context: impl Into<String>) -> Self {
        let context = context.into();
        self.message = if self.message.is_empty() {
            context
        } else {
            format!("{context}: {}", self.message)
        };
        self
    }

    /// A database error while doing `what`.
    pub(crate) fn db(what: impl fmt::Display, e: tokio_postgres::Error) -> Self {
        let kind = if e.as_db_error().is_some() {
            ErrorKind::Database
        } else {
            ErrorKind::Unreachable
        };
        Self::new(kind, what.to_string()).with_source(e)
    }

    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        self.kind.exit_code()
    }

    /// The HTTP status Patroni answered with, for [`ErrorKind::Patroni`].
    pub fn http_status(&self) -> Option<u16> {
        self.http_status
    }

    /// pgBackRest's own error code (its exit status), for [`ErrorKind::Backup`].
    pub fn pgbackrest_code(&self) -> Option<i32> {
        self.pgbackrest_code
    }

    /// The configuration keys (as in [`ClientConfig`](pgha_client::ClientConfig), e.g.
    /// `patroni_user`) whose values would fix this error; empty when none would. Messages name
    /// these keys; the `pgha` CLI adds the flags and environment variables that set them.
    pub fn settings(&self) -> &[&'static str] {
        self.settings
    }

    /// The SQLSTATE of a database error.
    pub fn sqlstate(&self) -> Option<&str> {
        let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = next {
            if let Some(pg) = e.downcast_ref::<tokio_postgres::Error>() {
                return pg.code().map(|c| c.code());
            }
            next = e.source();
        }
        None
    }
}

impl From<pgha_client::Error> for Error {
    fn from(e: pgha_client::Error) -> Self {
        let kind = if e.is_config() {
            ErrorKind::Usage
        } else if e.is_timeout() || e.is_connect() || e.is_outcome_unknown() {
            ErrorKind::Unreachable
        } else {
            ErrorKind::Database
        };
        Self::new(kind, "").with_source(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.describe())?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = next {
            let text = match e
                .downcast_ref::<tokio_postgres::Error>()
                .and_then(|pg| pg.as_db_error())
            {
                Some(db) => db.to_string(),
                None => e.to_string(),
            };
            if !self.message.contains(&text) {
                write!(f, ": {text}")?;
            }
            next = e.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("http_status", &self.http_status)
            .field("pgbackrest_code", &self.pgbackrest_code)
            .field("settings", &self.settings)
            .field("source", &self.source)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [ErrorKind; 10] = [
        ErrorKind::Usage,
        ErrorKind::NotFound,
        ErrorKind::Precondition,
        ErrorKind::Patroni,
        ErrorKind::Unreachable,
        ErrorKind::Timeout,
        ErrorKind::Database,
        ErrorKind::Backup,
        ErrorKind::Protocol,
        ErrorKind::NodeControl,
    ];

    #[test]
    fn every_kind_has_a_distinct_documented_exit_code_of_10_or_more() {
        let codes: std::collections::HashSet<i32> = KINDS.iter().map(|k| k.exit_code()).collect();
        assert_eq!(codes.len(), KINDS.len());
        for code in codes {
            assert!(code >= 10, "{code} is reserved for check");
            assert!(
                exit_codes::TABLE.iter().any(|(c, _)| *c == code),
                "{code} is not in TABLE"
            );
        }
    }

    #[test]
    fn every_kind_has_a_distinct_kebab_case_name() {
        let names: std::collections::HashSet<&str> = KINDS.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), KINDS.len());
        for name in names {
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{name}"
            );
        }
    }

    #[test]
    fn display_names_the_kind_the_message_and_the_cause() {
        let e = Error::patroni(412, "switchover to node2").with_source(std::io::Error::other("candidate lags"));
        assert_eq!(
            e.to_string(),
            "Patroni rejected the request: switchover to node2: candidate lags"
        );
        assert_eq!(e.http_status(), Some(412));
        assert_eq!(e.exit_code(), exit_codes::PATRONI);
    }
}
