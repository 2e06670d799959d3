//! The testkit's error type.

use std::time::Duration;

/// Anything that can go wrong while starting, driving or stopping a [`LocalCluster`](crate::LocalCluster).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The machine is not set up (missing binary or user) or a file could not be written.
    #[error("cluster setup failed: {0}")]
    Setup(String),
    /// A condition did not hold within its time limit.
    #[error("timed out after {timeout:?} waiting for {what}{}", last_error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    Timeout {
        /// What was being waited for.
        what: String,
        /// How long we waited.
        timeout: Duration,
        /// The last error seen while probing, if any.
        last_error: Option<String>,
    },
    /// A Patroni REST API call failed or answered with an error status.
    #[error("Patroni REST API {url}: {message}")]
    Rest {
        /// The URL called.
        url: String,
        /// What went wrong (status and body, or the transport error).
        message: String,
    },
    /// A SQL statement failed on a member.
    #[error("SQL on member {member}: {source}")]
    Sql {
        /// The member the statement ran on.
        member: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// An external command (pgBackRest, for example) exited unsuccessfully.
    #[error("`{command}` failed (exit code {code:?}): {output}")]
    Command {
        /// The command line, without secrets.
        command: String,
        /// Its exit code, if it exited normally.
        code: Option<i32>,
        /// What it printed on stderr (and stdout).
        output: String,
    },
    /// No member has this name.
    #[error("no member named {0:?} in this cluster")]
    UnknownMember(String),
    /// [`LocalClusterBuilder::etcd_members`](crate::LocalClusterBuilder::etcd_members) was given a
    /// count other than 1, 3 or 5.
    #[error("etcd_members must be 1, 3 or 5 (an odd quorum that tolerates 0, 1 or 2 lost members), got {0}")]
    EtcdMembers(usize),
    /// The operation needs a process that is not running.
    #[error("{0} is not running")]
    NotRunning(String),
}

/// Shorthand for results of testkit operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
