//! The operation history: every operation the workload ran, as it happened — who ran it, when
//! it was invoked and completed (microseconds since the run started), how it ended, what it
//! wrote or read, and where (member, timeline, WAL position). The checkers of `verdict` judge
//! it; `ChaosConfig::history` writes it out as JSON lines.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use pgha_client::patroni::Lsn;
use pgha_client::WalToken;
use serde::Serialize;

/// What an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    /// A unique insert into `chaos_writes` (not retried once COMMIT was sent).
    Insert,
    /// The heartbeat: `chaos_heartbeat` set to `value`, logged in `chaos_heartbeat_log`.
    Heartbeat,
    /// A lag-bounded read of the heartbeat on a standby; `read` is the sequence it saw.
    BoundedRead,
    /// A read of the heartbeat after the position of the same process's previous read
    /// (monotonic reads), that position as its token; `read` is the sequence it saw. A read
    /// without a token starts a new session.
    SessionRead,
    /// An insert into `chaos_ryw`, idempotent.
    RywWrite,
    /// A read after the token of the `RywWrite` of the same `value`; `read` is 1 if it saw it.
    RywRead,
}

impl OpKind {
    /// Whether the operation writes `value`.
    pub fn writes(self) -> bool {
        matches!(self, Self::Insert | Self::Heartbeat | Self::RywWrite)
    }
}

/// How an operation ended, as the application saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Acknowledged.
    Ok,
    /// A definite error: nothing was committed.
    Fail,
    /// The connection was lost after COMMIT was sent: committed or not.
    Unknown,
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op {
    /// The workload task that ran it.
    pub process: u32,
    /// What it did.
    pub kind: OpKind,
    /// The value written, or the key a read-your-writes read looks for (0 for heartbeat reads).
    pub value: i64,
    /// What a read returned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<i64>,
    /// When it was invoked, in microseconds since the run started.
    pub invoke_us: u64,
    /// When it completed.
    pub complete_us: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// The member it ran on (reads; writes when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Writes: the timeline of the node that ran the transaction, read before COMMIT. Reads:
    /// the timeline the member was on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u64>,
    /// Writes: the WAL position after the write, read before COMMIT. Reads: the position the
    /// member had replayed (or written, on a primary).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lsn: Option<Lsn>,
    /// Writes: the client's token, read after COMMIT. Reads: the token they ran after, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<WalToken>,
    /// The error the application saw, by kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Op {
    /// Whether the write's token was read on the node that committed it (same timeline as
    /// before COMMIT) rather than from a new primary after the connection broke.
    pub fn token_is_exact(&self) -> bool {
        matches!((self.token, self.timeline), (Some(t), Some(tl)) if t.timeline == tl)
    }
}

/// Microseconds from `start` to `at`.
pub fn micros_since(start: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(start).as_micros()).unwrap_or(u64::MAX)
}

/// Writes `ops` to `path`, one JSON object per line.
pub fn write_jsonl(path: &Path, ops: &[Op]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for op in ops {
        serde_json::to_writer(&mut out, op)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_is_one_json_line_without_empty_fields() {
        let op = Op {
            process: 1,
            kind: OpKind::Insert,
            value: 7,
            read: None,
            invoke_us: 10,
            complete_us: 20,
            outcome: Outcome::Ok,
            member: Some("node2".into()),
            timeline: Some(3),
            lsn: Some("0/3000".parse().expect("lsn")),
            token: Some("pgha1:3:0/3100".parse().expect("token")),
            error: None,
        };
        let dir = std::env::temp_dir().join(format!("pgha-history-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("h.jsonl");
        write_jsonl(&path, &[op.clone(), op]).expect("written");
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::remove_dir_all(&dir).ok();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            r#"{"process":1,"kind":"insert","value":7,"invoke_us":10,"complete_us":20,"outcome":"ok","member":"node2","timeline":3,"lsn":"0/3000","token":"pgha1:3:0/3100"}"#
        );
    }
}
