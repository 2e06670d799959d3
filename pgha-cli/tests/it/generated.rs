//! `pgha completions <shell>` and `pgha man`: generated from the command line's definition,
//! printed without any configuration or cluster.

use std::io::Read;
use std::process::{Command, Stdio};

use pgha_admin::exit_codes;

use crate::common::pgha;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_load_in_bash_and_know_every_subcommand_and_flag() {
    let bash = pgha(&[], &["completions", "bash"]).await.ok();
    for word in [
        "switchover",
        "rolling-restart",
        "completions",
        "--patroni-cert",
        "--dry-run",
    ] {
        assert!(bash.stdout.contains(word), "{word} missing from the bash completions");
    }
    // The script is valid bash and registers a completion for `pgha`.
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("pgha.bash");
    std::fs::write(&script, &bash.stdout).expect("write");
    let loaded = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p pgha", script.display()))
        .output()
        .expect("bash runs");
    assert!(loaded.status.success(), "{loaded:?}");
    assert!(String::from_utf8_lossy(&loaded.stdout).contains("_pgha"), "{loaded:?}");

    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let run = pgha(&[], &["completions", shell]).await.ok();
        assert!(run.stdout.contains("switchover"), "{shell}: {run:?}");
    }
    let unknown = pgha(&[], &["completions", "tcsh"]).await;
    assert_eq!(unknown.code, exit_codes::USAGE, "{unknown:?}");
    assert!(unknown.stderr.contains("possible values"), "{unknown:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manual_page_is_roff_and_a_closed_pipe_is_no_error() {
    let man = pgha(&[], &["man"]).await.ok();
    assert!(
        man.stdout.contains(".TH pgha 1"),
        "{}",
        &man.stdout[..man.stdout.len().min(400)]
    );
    assert!(
        man.stdout.contains("switchover") && man.stdout.contains("\\-\\-patroni"),
        "subcommands and flags"
    );
    // `pgha completions bash | head -c 10`: the reader goes away early, before the script
    // (270 kB, more than a pipe holds) is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgha"))
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pgha starts");
    let mut first = [0u8; 10];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("read");
    let out = child.wait_with_output().expect("pgha ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
