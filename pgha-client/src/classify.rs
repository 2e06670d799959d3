//! Which failures may be retried, as a pure function of (error, phase, operation kind).
//!
//! | failure | read | write (`run`) | transaction, before COMMIT | transaction, during COMMIT |
//! |---|---|---|---|---|
//! | no connection (connect refused, pool timeout, `53300`, `57P03`) | retry | retry | retry | – |
//! | `25006` read-only transaction (the node is a standby now) | retry | retry | retry | – |
//! | session lost (`57P01`, `57P02`, `08*`, closed socket, node demoted mid-attempt) | retry | **outcome unknown** ¹ | retry | **outcome unknown** ¹ |
//! | `40001` serialization failure, `40P01` deadlock | retry | error ² | retry | retry |
//! | anything else (constraint violation, syntax, `57014` statement timeout, …) | error | error | error | error |
//!
//! ¹ retried instead when the operation was declared idempotent.
//! ² the statement was rolled back, but earlier statements of the same `run` closure may have
//!   committed; retried when the operation was declared idempotent.
//!
//! Recovery conflicts on standbys are reported as `40001`, so reads retry them, preferably on
//! another member.

use tokio_postgres::error::SqlState;

use crate::error::{Error, Kind};

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

/// The connection is gone: closed, an I/O error, or a class 08 SQLSTATE.
pub(crate) fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return code.code().starts_with("08");
    }
    // No SQLSTATE: an I/O error, a protocol error or an error while connecting.
    e.as_db_error().is_none() && !is_client_side_error(e)
}

/// Errors tokio-postgres raises without talking to the server (type conversion, wrong row
/// count): not connection problems.
fn is_client_side_error(e: &tokio_postgres::Error) -> bool {
    let text = e.to_string();
    text.starts_with("error serializing")
        || text.starts_with("error deserializing")
        || text.starts_with("invalid column")
        || text.starts_with("query returned an unexpected number of rows")
        || text.starts_with("unexpected number of rows")
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
        Kind::Connect => retry(true),
        Kind::OutcomeUnknown => session_lost(),
        Kind::Db => {
            let Some(pg) = error.as_postgres() else {
                return Verdict::Fail;
            };
            match pg.code() {
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
        Kind::Config | Kind::NoMember | Kind::Timeout | Kind::BudgetExhausted | Kind::Shutdown | Kind::User => {
            Verdict::Fail
        }
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
