//! Shared by the integration tests: a real cluster, and the `pgha` binary pointed at it.

use std::process::Stdio;
use std::time::Duration;

use pgha_testkit::LocalCluster;
use serde_json::Value;

pub(crate) fn init_tracing() {
    pgha_testkit::init_test_tracing("pgha_admin=info,pgha_testkit=info");
}

/// A 3-member cluster with pgBackRest.
pub(crate) async fn cluster() -> LocalCluster {
    init_tracing();
    LocalCluster::builder()
        .members(3)
        .pgbackrest(true)
        .start()
        .await
        .expect("cluster starts")
}

/// The `pgha` environment for a cluster (flags are tested separately; the environment is how
/// cron jobs usually configure it).
pub(crate) fn env(cluster: &LocalCluster) -> Vec<(String, String)> {
    let creds = cluster.credentials();
    let info = cluster.info();
    let mut env = vec![
        ("PGHA_PATRONI_URLS".to_owned(), cluster.patroni_urls().join(",")),
        ("PGHA_USER".into(), creds.superuser.username.clone()),
        ("PGHA_PASSWORD".into(), creds.superuser.password.expose().to_owned()),
        ("PGHA_DBNAME".into(), cluster.database()),
        ("PGHA_SSLMODE".into(), "disable".into()),
        ("PGHA_STANZA".into(), cluster.scope()),
    ];
    if let Some(rest) = &creds.rest {
        env.push(("PGHA_PATRONI_USER".into(), rest.username.clone()));
        env.push(("PGHA_PATRONI_PASSWORD".into(), rest.password.expose().to_owned()));
    }
    if let Some(config) = info.pgbackrest_config {
        env.push(("PGHA_PGBACKREST_CONFIG".into(), config.display().to_string()));
    }
    if nix::unistd::Uid::effective().is_root() {
        env.push(("PGHA_PGBACKREST_USER".into(), "postgres".into()));
    }
    env
}

/// What one `pgha` run produced.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    pub(crate) fn ok(self) -> Self {
        assert_eq!(self.code, 0, "pgha failed: {self:?}");
        self
    }
}

/// Runs `pgha <args>` with `env` (and nothing else from this process's environment but PATH),
/// stdin closed, bounded by 5 minutes.
pub(crate) async fn pgha(env: &[(String, String)], args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgha"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("pgha {args:?} did not finish in 5 minutes"))
        .expect("pgha runs");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("$ pgha {} -> {}\n{}", args.join(" "), run.code, run.stderr.trim_end());
    assert!(
        !run.stderr.contains("panicked") && run.code != 101,
        "pgha panicked: {run:?}"
    );
    run
}

/// `pgha --format json <args>`, which must succeed.
pub(crate) async fn pgha_json(env: &[(String, String)], args: &[&str]) -> Value {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    pgha(env, &all).await.ok().json()
}

/// A superuser connection to the leader's application database.
pub(crate) async fn superuser(cluster: &LocalCluster) -> tokio_postgres::Client {
    let leader = cluster.leader().await.expect("a leader");
    cluster
        .connect_superuser(&leader, &cluster.database())
        .await
        .expect("superuser connection")
}

/// Runs `pgha <args>` with `env` and its stdin on a pseudo-terminal, as an operator at a shell
/// does: waits for the confirmation question on stderr, types `answer` and Enter. Returns the
/// run (its stderr includes the question). Bounded by 5 minutes.
pub(crate) async fn pgha_on_terminal(env: &[(String, String)], args: &[&str], answer: &str) -> Run {
    pgha_answering(env, args, &[answer]).await
}

/// [`pgha_on_terminal`] for a conversation: each of `answers` is typed once the next question
/// (stderr ending in `[y/N] ` or `: `, without a newline) appears; stops typing when stderr ends.
pub(crate) async fn pgha_answering(env: &[(String, String)], args: &[&str], answers: &[&str]) -> Run {
    use std::io::{Read, Write};
    let env = env.to_vec();
    let shown = args.join(" ");
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let answers: Vec<String> = answers.iter().map(|a| format!("{a}\n")).collect();
    let run = tokio::task::spawn_blocking(move || {
        let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pgha"))
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::from(pty.slave))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pgha starts");
        let mut terminal = std::fs::File::from(pty.master);
        let mut stderr = child.stderr.take().expect("stderr");
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        'answers: for answer in &answers {
            // Until the next question or the end of stderr.
            let asked = seen.len();
            loop {
                let text = String::from_utf8_lossy(&seen[asked..]).into_owned();
                if text.ends_with("[y/N] ") || text.ends_with(": ") {
                    break;
                }
                match stderr.read(&mut chunk) {
                    Ok(0) | Err(_) => break 'answers,
                    Ok(n) => seen.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = terminal.write_all(answer.as_bytes());
        }
        let _ = stderr.read_to_end(&mut seen);
        let out = child.wait_with_output().expect("pgha ends");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&seen).into_owned(),
        }
    });
    let run = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("pgha on a terminal did not finish in 5 minutes")
        .expect("the terminal task");
    eprintln!(
        "$ pgha {shown} (on a terminal) -> {}\n{}",
        run.code,
        run.stderr.trim_end()
    );
    assert!(
        !run.stderr.contains("panicked") && run.code != 101,
        "pgha panicked: {run:?}"
    );
    run
}
