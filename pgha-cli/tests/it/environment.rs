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
