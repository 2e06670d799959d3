//! The process exit codes of the `pgha` CLI — a stable contract for scripts, cron and monitoring.
//!
//! `pgha check` follows the Nagios plugin convention (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN),
//! so it plugs into Nagios, Icinga, Sensu or a cron `|| alert` line unchanged. Every other
//! command exits 0 on success and with one of the codes ≥ 10 on failure; the code says which
//! kind of failure it was ([`ErrorKind`](crate::ErrorKind)).
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success; `check`: every check OK |
//! | 1 | `check`: at least one WARNING, no CRITICAL |
//! | 2 | `check`: at least one CRITICAL |
//! | 3 | `check`: the checks could not run |
//! | 10 | a pre-flight check refused the operation; nothing was changed |
//! | 11 | the named member, slot, index, table or backup does not exist |
//! | 12 | Patroni rejected or failed the request |
//! | 13 | no Patroni endpoint or database could be reached |
//! | 14 | started, but the cluster did not reach the expected state in time |
//! | 15 | the database reported an error |
//! | 16 | pgBackRest failed |
//! | 17 | a response could not be understood |
//! | 18 | a node-control command (PITR: stop/start a node, clear the DCS…) failed |
//! | 64 | bad input: flags, schedule, identifier, configuration file |

/// Success (and for `check`: every check OK).
pub const OK: i32 = 0;
/// `check`: at least one WARNING and no CRITICAL.
pub const WARNING: i32 = 1;
/// `check`: at least one CRITICAL.
pub const CRITICAL: i32 = 2;
/// `check`: the checks could not run at all.
pub const UNKNOWN: i32 = 3;
/// A pre-flight check refused the operation.
pub const PRECONDITION: i32 = 10;
/// The named object does not exist.
pub const NOT_FOUND: i32 = 11;
/// Patroni rejected or failed the request.
pub const PATRONI: i32 = 12;
/// Nothing could be reached.
pub const UNREACHABLE: i32 = 13;
/// The expected state was not reached in time.
pub const TIMEOUT: i32 = 14;
/// The database reported an error.
pub const DATABASE: i32 = 15;
/// pgBackRest failed.
pub const BACKUP: i32 = 16;
/// A response could not be understood.
pub const PROTOCOL: i32 = 17;
/// A node-control command failed.
pub const NODE_CONTROL: i32 = 18;
/// Bad input (`EX_USAGE` from sysexits.h).
pub const USAGE: i32 = 64;
