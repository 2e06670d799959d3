//! Which failures may be retried, as a pure function of (error, phase, operation kind): the
//! table "Retries" of the crate documentation (`lib.rs`), which is its one statement. The
//! SQLSTATE classes it is written in are in [`crate::failure`].

use tokio_postgres::error::SqlState;

use crate::error::{Error, Kind};
use crate::failure::{class, is_connection_error, is_refused_for_good, Class};

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

impl OpKind {
    /// The same operation, not declared idempotent: an attempt that would have been outcome
    /// unknown as such may have committed, even though the idempotent operation retries it.
    pub(crate) fn without_idempotence(self) -> Self {
        match self {
            Self::Read => Self::Read,
            Self::Write { .. } => Self::Write { idempotent: false },
            Self::Transaction { .. } => Self::Transaction { idempotent: false },
        }
    }
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

/// What failed, for the `reason` label of `pgha_retries_total`, in the terms of the retry table.
pub(crate) fn retry_reason(error: &Error) -> &'static str {
    match error.kind() {
        Kind::Connect => "connect",
        Kind::OutcomeUnknown => "session_lost",
        Kind::Db => match error.as_postgres() {
            Some(pg) => match pg.code() {
                Some(code) if code == &SqlState::READ_ONLY_SQL_TRANSACTION => "read_only",
                Some(code) if code == &SqlState::T_R_DEADLOCK_DETECTED => "deadlock",
                Some(code) => match class(code) {
                    Class::NotExecuted => "not_accepting",
                    Class::SessionEnded => "session_lost",
                    Class::TransientTransaction => "serialization_failure",
                    Class::RefusedForGood | Class::Other => "other",
                },
                None if is_connection_error(pg) => "session_lost",
                None => "other",
            },
            None => "other",
        },
        _ => "other",
    }
}

/// The retry table of the crate documentation ("What is retried" in `lib.rs`), as code.
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
        Kind::Connect if is_refused_for_good(error.code(), error) => Verdict::Fail,
        Kind::Connect => retry(true),
        Kind::OutcomeUnknown => session_lost(),
        Kind::Db => {
            let Some(pg) = error.as_postgres() else {
                return Verdict::Fail;
            };
            let Some(code) = pg.code() else {
                return if is_connection_error(pg) {
                    session_lost()
                } else {
                    Verdict::Fail
                };
            };
            match class(code) {
                // A read intent runs read-only (on a standby, or in a read-only transaction or
                // session on the primary): a write in it is the caller's mistake, not a role change.
                Class::NotExecuted if code == &SqlState::READ_ONLY_SQL_TRANSACTION && op == OpKind::Read => {
                    Verdict::Fail
                }
                Class::NotExecuted => retry(code == &SqlState::READ_ONLY_SQL_TRANSACTION),
                Class::SessionEnded => session_lost(),
                Class::TransientTransaction => match op {
                    OpKind::Transaction { .. } | OpKind::Read => retry(false),
                    OpKind::Write { idempotent: true } => retry(false),
                    OpKind::Write { idempotent: false } => Verdict::Fail,
                },
                Class::RefusedForGood | Class::Other => Verdict::Fail,
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
    fn an_idempotent_retry_is_in_doubt_exactly_where_the_plain_operation_is_outcome_unknown() {
        use OpKind::*;
        use Phase::*;
        for (phase, op, in_doubt) in [
            (Commit, Transaction { idempotent: true }, true),
            (Body, Transaction { idempotent: true }, false),
            (Body, Write { idempotent: true }, true),
            (Checkout, Write { idempotent: true }, false),
            (Body, Read, false),
        ] {
            assert_eq!(
                classify(&lost(), phase, op.without_idempotence()) == Verdict::OutcomeUnknown,
                in_doubt,
                "{phase:?} {op:?}"
            );
        }
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
}
