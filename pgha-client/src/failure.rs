//! What a failure reported by tokio-postgres means, independent of pgha's own [`Error`]: the
//! SQLSTATE classes the retry rules are written in, whether the connection itself is gone, and
//! whether a connection was refused for good. A leaf: `error.rs` ([`Error::is_retryable`]) and
//! `classify.rs` (the retry table of the crate documentation) both decide from here.
//!
//! [`Error`]: crate::Error
//! [`Error::is_retryable`]: crate::Error::is_retryable

use tokio_postgres::error::SqlState;

/// The SQLSTATE classes the retry rules distinguish. Each code is in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Rejected before running: `25006` read-only transaction (the node is a standby now),
    /// `57P03` cannot connect now, `53300` too many connections.
    NotExecuted,
    /// The session ended: `57P01` admin shutdown, `57P02` crash shutdown, class `08`.
    SessionEnded,
    /// Rolled back and safe to replay: `40001` serialization failure, `40P01` deadlock.
    TransientTransaction,
    /// A connection no retry will make: `28P01` wrong password, `28000` no such role or no
    /// `pg_hba.conf` entry, `3D000` no such database.
    RefusedForGood,
    /// Everything else: the caller's or the data's problem (constraint, syntax, `57014`…).
    Other,
}

/// The class of a SQLSTATE.
pub(crate) fn class(code: &SqlState) -> Class {
    match code {
        c if *c == SqlState::READ_ONLY_SQL_TRANSACTION
            || *c == SqlState::CANNOT_CONNECT_NOW
            || *c == SqlState::TOO_MANY_CONNECTIONS =>
        {
            Class::NotExecuted
        }
        c if *c == SqlState::ADMIN_SHUTDOWN || *c == SqlState::CRASH_SHUTDOWN || c.code().starts_with("08") => {
            Class::SessionEnded
        }
        c if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => {
            Class::TransientTransaction
        }
        c if *c == SqlState::INVALID_PASSWORD
            || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            || *c == SqlState::INVALID_CATALOG_NAME =>
        {
            Class::RefusedForGood
        }
        _ => Class::Other,
    }
}

/// The causes of an error, nearest first (`error.source()`, its source, …).
pub(crate) fn causes<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(error.source(), |e| e.source())
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

/// A connection refused for a reason no retry can fix: its SQLSTATE (`code`) is
/// [`Class::RefusedForGood`], the server's certificate was refused (a rustls error among the
/// causes of `error`), or tokio-postgres itself refused the authentication the server asked for
/// (`channel_binding=require` and no channel binding offered, a mechanism it does not speak).
/// Such errors surface at once with their message instead of being retried until the deadline.
pub(crate) fn is_refused_for_good(code: Option<&SqlState>, error: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(code) = code {
        return class(code) == Class::RefusedForGood;
    }
    std::iter::once(error).chain(causes(error)).any(|cause| {
        let inside_io = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        cause.downcast_ref::<rustls::Error>().or(inside_io).is_some()
            || cause
                .downcast_ref::<tokio_postgres::Error>()
                .is_some_and(is_client_side_authentication_refusal)
    })
}

/// tokio-postgres's own "authentication error" (its error kind is not public; this prefix is
/// how that kind displays): raised on the client, never by the server (the server's refusals
/// carry a SQLSTATE), so it will be raised again on every attempt.
fn is_client_side_authentication_refusal(e: &tokio_postgres::Error) -> bool {
    e.code().is_none() && !e.is_closed() && e.to_string().starts_with("authentication error")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each class once, with every code the retry table names for it.
    #[test]
    fn every_code_of_the_retry_table_is_in_its_class() {
        for (class_, codes) in [
            (Class::NotExecuted, &["25006", "57P03", "53300"][..]),
            (
                Class::SessionEnded,
                &["57P01", "57P02", "08000", "08006", "08003", "08P01"],
            ),
            (Class::TransientTransaction, &["40001", "40P01"]),
            (Class::RefusedForGood, &["28P01", "28000", "3D000"]),
            (Class::Other, &["23505", "42601", "57014", "25P02", "XX000"]),
        ] {
            for code in codes {
                assert_eq!(class(&SqlState::from_code(code)), class_, "{code}");
            }
        }
    }

    #[test]
    fn a_refused_connection_is_permanent_only_for_its_class_or_a_certificate() {
        let plain = std::io::Error::other("connection refused");
        assert!(is_refused_for_good(Some(&SqlState::INVALID_PASSWORD), &plain));
        assert!(!is_refused_for_good(Some(&SqlState::TOO_MANY_CONNECTIONS), &plain));
        assert!(!is_refused_for_good(None, &plain));
        // As tokio-postgres reports a TLS failure: an error whose source is an I/O error
        // carrying rustls's.
        #[derive(Debug)]
        struct Connect(std::io::Error);
        impl std::fmt::Display for Connect {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error connecting")
            }
        }
        impl std::error::Error for Connect {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let tls = Connect(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        assert!(is_refused_for_good(None, &tls));
        assert!(!is_refused_for_good(None, &Connect(plain)));
    }

    /// tokio-postgres against a server that answers the startup message with `reply` (then
    /// waits), or closes the connection if `reply` is empty, with `channel_binding=require`: the
    /// error it returns.
    async fn connect_to_a_server_that_says(reply: &'static [u8]) -> tokio_postgres::Error {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut startup = [0_u8; 256];
            let _ = socket.read(&mut startup).await;
            if reply.is_empty() {
                return; // the connection closes
            }
            socket.write_all(reply).await.expect("reply");
            let _ = socket.read(&mut startup).await;
        });
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user("u")
            .password("p")
            .channel_binding(tokio_postgres::config::ChannelBinding::Require)
            .connect_timeout(std::time::Duration::from_secs(5));
        let connecting = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            config.connect(tokio_postgres::NoTls),
        );
        let err = connecting
            .await
            .expect("an answer in time")
            .err()
            .expect("no connection");
        server.abort();
        err
    }

    #[tokio::test]
    async fn an_authentication_tokio_postgres_refuses_is_permanent_a_lost_connection_is_not() {
        // AuthenticationCleartextPassword: nothing to bind the password to.
        let refused = connect_to_a_server_that_says(b"R\0\0\0\x08\0\0\0\x03").await;
        let text = crate::error::chain(&refused);
        assert!(text.contains("channel binding"), "{text}");
        assert!(is_refused_for_good(None, &refused), "{refused}");
        // The server goes away instead of answering: retryable.
        let lost = connect_to_a_server_that_says(b"").await;
        assert!(!is_refused_for_good(None, &lost), "{lost}");
    }
}
