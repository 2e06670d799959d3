//! Which failures may be retried, as a pure function of (error, phase, operation kind).
//!
//! | failure | read | write (`run`) | transaction, before COMMIT | transaction, during COMMIT |
//! |---|---|---|---|---|
//! | no connection (connect refused, pool timeout, `53300`, `57P03`) | retry | retry | retry | – |
//! | connection refused for good (`28P01`, `28000`, `3D000`, a certificate error) | error | error | error | – |
//! | `25006` read-only transaction (the node is a standby now) | error ³ | retry | retry | – |
//! | session lost (`57P01`, `57P02`, `08*`, closed socket, node demoted mid-attempt) | retry | **outcome unknown** ¹ | retry | **outcome unknown** ¹ |
//! | `40001` serialization failure, `40P01` deadlock | retry | error ² | retry | retry |
//! | anything else (constraint violation, syntax, `57014` statement timeout, …) | error | error | error | error |
//!
//! ¹ retried instead when the operation was declared idempotent.
//! ² the statement was rolled back, but earlier statements of the same `run` closure may have
//!   committed; retried when the operation was declared idempotent.
//! ³ reads run read-only (a standby; on the primary, a `READ ONLY` transaction or a session whose
//!   `default_transaction_read_only` is on): a write inside a read intent fails at once instead
//!   of being replayed.
//!
//! Recovery conflicts on standbys are reported as `40001`, so reads retry them, preferably on
//! another member.

use tokio_postgres::error::SqlState;

use crate::error::{causes, Error, Kind};

/// Where in an attempt a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Getting a connection: nothing was sent.
    Checkout,
    /// Running the caller's statements (inside a transaction: before COMMIT).
    Body,
    /// COMMIT was sent.
    Commit,
}

/// What kind of operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    /// Any intent but `Write`.
    Read,
    /// `run` with `Intent::Write`: autocommit statements.
    Write { idempotent: bool },
    /// `transaction`.
    Transaction { idempotent: bool },
}

/// What to do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Try again; `rediscover` asks the topology task for a refresh first.
    Retry { rediscover: bool },
    /// Return the error as it is.
    Fail,
    /// Return an outcome-unknown error.
    OutcomeUnknown,
}

/// The connection is gone: closed, a class 08 SQLSTATE, or an I/O failure talking to the
/// server. Decided by what the error is, never by its text: anything else without a SQLSTATE
/// (a parameter count or type mismatch, a conversion error, a wrong row count) was raised by
/// tokio-postgres on the client side, and the session is intact.
pub(crate) fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return code.code().starts_with("08");
    }
    io_failure(e)
}

/// An `std::io::Error` in the error's sources, other than the `InvalidInput`/`InvalidData` of
/// a message that could not be encoded (the session is intact then).
fn io_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    causes(e)
        .find_map(|cause| cause.downcast_ref::<std::io::Error>())
        .is_some_and(|io| {
            !matches!(
                io.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
            )
        })
}

/// A connection refused for a reason no retry can fix: the password or the role
/// (`28P01`, `28000`), a missing database (`3D000`), or the server's certificate. Such errors
/// surface at once with the server's message instead of being retried until the deadline.
pub(crate) fn is_permanent_connect_error(error: &Error) -> bool {
    if let Some(code) = error.code() {
        return [
            SqlState::INVALID_PASSWORD,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            SqlState::INVALID_CATALOG_NAME,
        ]
        .contains(code);
    }
    causes(error).any(|cause| {
        let inside_io = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        cause.downcast_ref::<rustls::Error>().or(inside_io).is_some()
    })
}

/// SQLSTATEs that mean the statement was rejected without running.
pub(crate) fn not_executed_sqlstate(code: &SqlState) -> bool {
    [
        SqlState::READ_ONLY_SQL_TRANSACTION,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
    ]
    .contains(code)
}

/// SQLSTATEs that end the session (the server is shutting down or crashed).
pub(crate) fn session_ending_sqlstate(code: &SqlState) -> bool {
    [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN].contains(code) || code.code().starts_with("08")
}

/// Serialization failure or deadlock: the transaction was rolled back and may be replayed.
pub(crate) fn is_transient_txn_sqlstate(code: &SqlState) -> bool {
    [SqlState::T_R_SERIALIZATION_FAILURE, SqlState::T_R_DEADLOCK_DETECTED].contains(code)
}

/// The classification table above.
pub(crate) fn classify(error: &Error, phase: Phase, op: OpKind) -> Verdict {
    let retry = |rediscover| Verdict::Retry { rediscover };
    let idempotent = match op {
        OpKind::Read => true,
        OpKind::Write { idempotent } | OpKind::Transaction { idempotent } => idempotent,
    };
    let session_lost = || match (op, phase) {
        (_, Phase::Checkout) | (OpKind::Read, _) | (OpKind::Transaction { .. }, Phase::Body) => retry(true),
        _ if idempotent => retry(true),
        _ => Verdict::OutcomeUnknown,
    };
    match error.kind() {
        Kind::Connect if is_permanent_connect_error(error) => Verdict::Fail,
        Kind::Connect => retry(true),
        Kind::OutcomeUnknown => session_lost(),
        Kind::Db => {
            let Some(pg) = error.as_postgres() else {
                return Verdict::Fail;
            };
            match pg.code() {
                // A read intent runs read-only (on a standby, or in a read-only transaction or
                // session on the primary): a write in it is the caller's mistake, not a role change.
                Some(code) if code == &SqlState::READ_ONLY_SQL_TRANSACTION && op == OpKind::Read => Verdict::Fail,
                Some(code) if not_executed_sqlstate(code) => retry(code == &SqlState::READ_ONLY_SQL_TRANSACTION),
                Some(code) if session_ending_sqlstate(code) => session_lost(),
                Some(code) if is_transient_txn_sqlstate(code) => match op {
                    OpKind::Transaction { .. } | OpKind::Read => retry(false),
                    OpKind::Write { idempotent: true } => retry(false),
                    OpKind::Write { idempotent: false } => Verdict::Fail,
                },
                Some(_) => Verdict::Fail,
                None if is_connection_error(pg) => session_lost(),
                None => Verdict::Fail,
            }
        }
        Kind::Config
        | Kind::NoMember
        | Kind::Timeout
        | Kind::BudgetExhausted
        | Kind::Shutdown
        | Kind::User
        | Kind::WriteLost => Verdict::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> Error {
        Error::new(Kind::OutcomeUnknown)
    }

    #[test]
    fn session_loss_is_retried_only_where_nothing_can_have_committed() {
        use OpKind::*;
        use Phase::*;
        let retry = Verdict::Retry { rediscover: true };
        for (phase, op, expected) in [
            (Checkout, Write { idempotent: false }, retry),
            (Body, Read, retry),
            (Body, Transaction { idempotent: false }, retry),
            (Commit, Transaction { idempotent: false }, Verdict::OutcomeUnknown),
            (Commit, Transaction { idempotent: true }, retry),
            (Body, Write { idempotent: false }, Verdict::OutcomeUnknown),
            (Body, Write { idempotent: true }, retry),
        ] {
            assert_eq!(classify(&lost(), phase, op), expected, "{phase:?} {op:?}");
        }
    }

    #[test]
    fn connect_failures_always_retry_and_user_errors_never() {
        let connect = Error::new(Kind::Connect);
        let user = Error::user(std::io::Error::other("nope"));
        for op in [
            OpKind::Read,
            OpKind::Write { idempotent: false },
            OpKind::Transaction { idempotent: false },
        ] {
            assert_eq!(
                classify(&connect, Phase::Checkout, op),
                Verdict::Retry { rediscover: true }
            );
            assert_eq!(classify(&user, Phase::Body, op), Verdict::Fail);
        }
    }

    #[test]
    fn sqlstate_tables_are_disjoint() {
        for code in [
            SqlState::READ_ONLY_SQL_TRANSACTION,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::CONNECTION_FAILURE,
            SqlState::UNIQUE_VIOLATION,
        ] {
            let hits = [
                not_executed_sqlstate(&code),
                session_ending_sqlstate(&code),
                is_transient_txn_sqlstate(&code),
            ]
            .iter()
            .filter(|&&b| b)
            .count();
            assert!(hits <= 1, "{code:?} is in {hits} tables");
            assert_eq!(hits == 0, code == SqlState::UNIQUE_VIOLATION, "{code:?}");
        }
    }
}
