//! The promotion probe (every member watched directly, not via pgha-client) and its targets.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use pgha_client::Client;
use tokio::task::JoinSet;

/// Watches every member directly (plain tokio-postgres, independent of pgha-client) and
/// records when each first answered `pg_is_in_recovery() = false`.
#[derive(Debug)]
pub struct PromotionProbe {
    first_writable: Arc<Mutex<BTreeMap<String, Instant>>>,
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
}

impl PromotionProbe {
    /// Starts polling every 20 ms. `members` are `(name, tokio-postgres config)`.
    pub fn start(members: Vec<(String, tokio_postgres::Config)>) -> Self {
        let first_writable = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        for (name, mut config) in members {
            config.connect_timeout(Duration::from_millis(500));
            let (first, stop) = (first_writable.clone(), stop.clone());
            tasks.spawn(async move {
                let mut conn: Option<tokio_postgres::Client> = None;
                while !stop.load(Ordering::Relaxed) {
                    if conn.as_ref().is_none_or(|c| c.is_closed()) {
                        conn = match tokio::time::timeout(
                            Duration::from_millis(500),
                            config.connect(tokio_postgres::NoTls),
                        )
                        .await
                        {
                            Ok(Ok((client, connection))) => {
                                tokio::spawn(connection);
                                Some(client)
                            }
                            _ => None,
                        };
                    }
                    if let Some(c) = &conn {
                        let answer = tokio::time::timeout(
                            Duration::from_millis(500),
                            c.query_one("SELECT pg_is_in_recovery()", &[]),
                        )
                        .await;
                        match answer {
                            Ok(Ok(row)) if !row.get::<_, bool>(0) => {
                                first
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .entry(name.clone())
                                    .or_insert_with(Instant::now);
                            }
                            Ok(Ok(_)) => {}
                            _ => conn = None,
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
        Self {
            first_writable,
            stop,
            tasks,
        }
    }

    /// Clears what was recorded (call right before injecting the fault).
    pub fn reset(&self) {
        self.first_writable.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// When a member other than `old` was first seen writable after the last reset.
    pub fn new_primary_since(&self, old: Option<&str>) -> Option<(String, Instant)> {
        self.first_writable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(name, _)| Some(name.as_str()) != old)
            .min_by_key(|(_, t)| **t)
            .map(|(n, t)| (n.clone(), *t))
    }

    /// Stops the probe.
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Refuses a `--dsn` that holds a password when it was given on the command line, where every
/// local user can read it (`ps`, `/proc/<pid>/cmdline`): the tools take such a URL from `PGHA_DSN`.
pub fn refuse_password_on_command_line(dsn: Option<&str>, on_command_line: bool) -> anyhow::Result<()> {
    let holds_password = dsn.is_some_and(|dsn| pgha_client::redact_connection_string(dsn) != dsn);
    if on_command_line && holds_password {
        anyhow::bail!(
            "--dsn holds a password, which every local user can read on a command line: pass the URL in PGHA_DSN"
        );
    }
    Ok(())
}

/// The credentials of a libpq URL (user, password, database — the user name when absent), for
/// the tools that reach an existing cluster's members directly.
pub fn dsn_credentials(dsn: &str) -> anyhow::Result<(String, String, String)> {
    let parsed: tokio_postgres::Config = dsn.parse().context("--dsn is not a valid libpq URL")?;
    let user = parsed.get_user().context("--dsn has no user")?.to_owned();
    let password = parsed
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let db = parsed.get_dbname().unwrap_or(&user).to_owned();
    Ok((user, password, db))
}

/// How to reach each member directly for the promotion probe.
pub fn probe_targets(
    client: &Client,
    user: &str,
    password: &str,
    dbname: &str,
) -> Vec<(String, tokio_postgres::Config)> {
    client
        .topology()
        .members
        .iter()
        .map(|m| {
            let mut c = tokio_postgres::Config::new();
            c.host(&m.host)
                .port(m.port)
                .user(user)
                .password(password)
                .dbname(dbname)
                .application_name("pgha-promotion-probe");
            (m.name.clone(), c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::refuse_password_on_command_line;

    #[test]
    fn a_dsn_with_a_password_is_refused_only_from_the_command_line() {
        for dsn in ["postgresql://app:hunter2@h/app", "host=h user=app password=hunter2"] {
            let e = refuse_password_on_command_line(Some(dsn), true).expect_err(dsn);
            assert!(
                e.to_string().contains("PGHA_DSN") && !e.to_string().contains("hunter2"),
                "{e}"
            );
            refuse_password_on_command_line(Some(dsn), false).expect("from PGHA_DSN");
        }
        refuse_password_on_command_line(Some("postgresql://app@h/app"), true).expect("no password");
        refuse_password_on_command_line(None, true).expect("no --dsn");
    }
}
