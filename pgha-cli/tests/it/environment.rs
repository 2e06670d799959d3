//! The `pgha` binary reads the environment as a service's `ClientConfig::from_env("PGHA")` does
//! (no cluster needed: a bad value is refused before anything is contacted).

use pgha_admin::exit_codes;

use crate::common::pgha;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_key_of_the_environment_reaches_the_cli() {
    let base = [("PGHA_PATRONI_URLS".to_owned(), "http://127.0.0.1:9".to_owned())];
    // Keys the CLI has no flag for, each refused with the variable's name.
    for (name, value) in [
        ("PGHA_POOL_MAX_SIZE", "ten"),
        ("PGHA_IDLE_TIMEOUT", "30"),
        ("PGHA_FALLBACK_TO_PRIMARY", "maybe"),
    ] {
        let mut env = base.to_vec();
        env.push((name.to_owned(), value.to_owned()));
        let run = pgha(&env, &["status"]).await;
        assert_eq!(run.code, exit_codes::USAGE, "{name}={value}: {run:?}");
        assert!(run.stderr.contains(name), "the error names {name}: {run:?}");
    }
    // A list the CLI has no flag for reaches the client's own validation.
    let mut env = base.to_vec();
    env.push(("PGHA_ETCD_URLS".to_owned(), "not a url".to_owned()));
    let run = pgha(&env, &["status"]).await;
    assert_eq!(run.code, exit_codes::USAGE, "{run:?}");
    assert!(run.stderr.contains("etcd URL \"not a url\""), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_client_certificate_or_an_unknown_channel_binding_is_a_usage_error() {
    let base = [("PGHA_PATRONI_URLS".to_owned(), "http://127.0.0.1:9".to_owned())];
    for (args, says) in [
        (
            &["--patroni-cert", "/etc/pgha/rest.crt", "status"][..],
            "patroni_cert and patroni_key go together",
        ),
        (
            &["--sslkey", "/etc/pgha/pg.key", "status"][..],
            "sslcert and sslkey go together",
        ),
        (&["--channel-binding", "always", "status"][..], "channel_binding"),
    ] {
        let run = pgha(&base, args).await;
        assert_eq!(run.code, exit_codes::USAGE, "{args:?}: {run:?}");
        assert!(run.stderr.contains(says), "{args:?}: {run:?}");
    }
    // The same from the environment.
    let mut env = base.to_vec();
    env.push(("PGHA_PATRONI_KEY".to_owned(), "/etc/pgha/rest.key".to_owned()));
    let run = pgha(&env, &["status"]).await;
    assert_eq!(run.code, exit_codes::USAGE, "{run:?}");
    assert!(
        run.stderr.contains("patroni_cert and patroni_key go together"),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_file_is_found_where_operators_put_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = dir.path().join("home");
    let xdg = dir.path().join("xdg");
    let write = |path: &std::path::Path, port: u16| {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, format!("patroni = [\"http://127.0.0.1:{port}\"]\n")).expect("write");
    };
    let home_env = [("HOME".to_owned(), home.display().to_string())];
    // Nothing anywhere (this machine has no /etc/pgha/pgha.toml): no Patroni URL.
    let none = pgha(&home_env, &["--timeout", "2s", "status"]).await;
    assert_eq!(none.code, exit_codes::USAGE, "{none:?}");
    assert!(none.stderr.contains("no Patroni URL"), "{none:?}");
    // ~/.config/pgha/pgha.toml is read: its (closed) port is the one tried.
    write(&home.join(".config/pgha/pgha.toml"), 9);
    let from_home = pgha(&home_env, &["--timeout", "2s", "status"]).await;
    assert_eq!(from_home.code, exit_codes::UNREACHABLE, "{from_home:?}");
    assert!(from_home.stderr.contains("127.0.0.1:9"), "{from_home:?}");
    // $XDG_CONFIG_HOME wins over ~/.config; --config over both.
    write(&xdg.join("pgha/pgha.toml"), 7);
    let mut xdg_env = home_env.to_vec();
    xdg_env.push(("XDG_CONFIG_HOME".to_owned(), xdg.display().to_string()));
    let from_xdg = pgha(&xdg_env, &["--timeout", "2s", "status"]).await;
    assert!(from_xdg.stderr.contains("127.0.0.1:7"), "{from_xdg:?}");
    let named = dir.path().join("named.toml");
    write(&named, 5);
    let from_named = pgha(
        &xdg_env,
        &["--config", &named.display().to_string(), "--timeout", "2s", "status"],
    )
    .await;
    assert!(from_named.stderr.contains("127.0.0.1:5"), "{from_named:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patroni_configuration_file_that_is_not_one_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("patroni.yml");
    std::fs::write(&path, "restapi: [unclosed\n  password: hunter2\n").expect("write");
    let run = pgha(&[], &["--patroni-config", &path.display().to_string(), "status"]).await;
    assert_eq!(run.code, exit_codes::USAGE, "{run:?}");
    assert!(
        run.stderr.contains("not YAML") && !run.stderr.contains("hunter2"),
        "{run:?}"
    );
    let missing = pgha(&[], &["-c", "/nonexistent/patroni.yml", "status"]).await;
    assert_eq!(missing.code, exit_codes::USAGE, "{missing:?}");
    assert!(missing.stderr.contains("/nonexistent/patroni.yml"), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_what_stopped_it_as_nagios_unknown() {
    let run = pgha(&[], &["--patroni-config", "/nonexistent/patroni.yml", "check"]).await;
    assert_eq!(run.code, exit_codes::UNKNOWN, "{run:?}");
    assert!(
        run.stdout.starts_with("PGHA UNKNOWN - ") && run.stdout.contains("/nonexistent/patroni.yml"),
        "{run:?}"
    );
    // Other commands keep their own exit codes.
    let status = pgha(&[], &["--patroni-config", "/nonexistent/patroni.yml", "status"]).await;
    assert_eq!(status.code, exit_codes::USAGE, "{status:?}");
}
