//! Progress of long operations, for a progress bar or a log.

use std::fmt;
use std::sync::Arc;

/// One step of a long operation (switchover, rolling restart, reinitialize, backup, PITR…).
///
/// Also logged with `tracing` at `INFO`, so a service using the library sees the steps in its logs
/// without registering a callback.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Progress {
    /// The operation, e.g. `"switchover"`.
    pub operation: &'static str,
    /// What is happening now, e.g. `"waiting for node2 to become writable"`.
    pub message: String,
    /// Steps done so far, when the operation has a known number of steps.
    pub step: Option<u32>,
    /// Total number of steps, when known.
    pub steps: Option<u32>,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.step, self.steps) {
            (Some(step), Some(steps)) => write!(f, "{} [{step}/{steps}]: {}", self.operation, self.message),
            _ => write!(f, "{}: {}", self.operation, self.message),
        }
    }
}

/// A progress callback.
pub(crate) type Sink = Arc<dyn Fn(&Progress) + Send + Sync>;
