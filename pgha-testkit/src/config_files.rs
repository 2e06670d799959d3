//! The configuration files a cluster runs with: one Patroni YAML per member and one pgBackRest
//! configuration for the stanza.
//!
//! Patroni's YAML is written as JSON (every JSON document is valid YAML), which keeps the
//! generator a plain `serde_json::Value`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::state::{ClusterState, MemberState};

pub(crate) const PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
pub(crate) const PGBACKREST_BIN: &str = "/usr/bin/pgbackrest";

/// Options that shape the dynamic (DCS) configuration at bootstrap.
#[derive(Debug, Clone, Default)]
pub(crate) struct DcsOptions {
    pub(crate) synchronous_mode: bool,
    pub(crate) synchronous_mode_strict: bool,
    pub(crate) parameters: BTreeMap<String, String>,
}

/// The PostgreSQL parameters every testkit cluster starts with (dynamic configuration).
fn base_parameters(state: &ClusterState) -> BTreeMap<String, String> {
    let mut p: BTreeMap<String, String> = [
        ("max_connections", "200"),
        ("shared_buffers", "64MB"),
        ("wal_level", "replica"),
        ("hot_standby", "on"),
        ("hot_standby_feedback", "on"),
        ("max_wal_senders", "10"),
        ("max_replication_slots", "10"),
        ("wal_log_hints", "on"),
        ("wal_keep_size", "128MB"),
        ("shared_preload_libraries", "pg_stat_statements"),
        ("track_io_timing", "on"),
        ("track_commit_timestamp", "off"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if state.pgbackrest {
        p.insert("archive_mode".into(), "on".into());
        p.insert("archive_timeout".into(), "60s".into());
    }
    p
}

/// The Patroni configuration of one member.
pub(crate) fn patroni_config(state: &ClusterState, member: &MemberState, dcs: &DcsOptions) -> Value {
    let creds = &state.credentials;
    let mut dcs_parameters = base_parameters(state);
    dcs_parameters.extend(dcs.parameters.clone());

    let data_dir = member.data_dir();
    let mut local_parameters = json!({
        "unix_socket_directories": member.dir,
        "logging_collector": "on",
        "log_directory": "log",
        "log_filename": "postgresql.log",
        "log_line_prefix": "%m [%p] %q%u@%d ",
    });
    let mut recovery_conf = json!({});
    if state.pgbackrest {
        let base = format!(
            "{PGBACKREST_BIN} --config={} --stanza={} --pg1-path={}",
            state.pgbackrest_config().display(),
            state.scope,
            data_dir.display()
        );
        local_parameters["archive_command"] = json!(format!("{base} archive-push %p"));
        if state.standby_restore_command {
            recovery_conf["restore_command"] = json!(format!("{base} archive-get %f \"%p\""));
        }
    }

    let mut restapi = json!({
        "listen": format!("127.0.0.1:{}", member.rest_port),
        "connect_address": format!("127.0.0.1:{}", member.rest_port),
    });
    let mut ctl = json!({});
    if state.tls {
        let tls = state.tls_dir();
        let (cert, key, ca) = (
            tls.join(crate::tls::SERVER_CERT_FILE),
            tls.join(crate::tls::SERVER_KEY_FILE),
            tls.join(crate::tls::CA_FILE),
        );
        local_parameters["ssl"] = json!("on");
        local_parameters["ssl_cert_file"] = json!(cert);
        local_parameters["ssl_key_file"] = json!(key);
        // Client certificates are checked against the cluster's CA.
        local_parameters["ssl_ca_file"] = json!(ca);
        restapi["certfile"] = json!(cert);
        restapi["keyfile"] = json!(key);
        // Patroni's own calls to other members' REST APIs verify them with this CA.
        ctl["cacert"] = json!(ca);
        if let Some((client_cert, client_key)) = state.client_cert_files() {
            // Every REST client presents a certificate signed by the cluster's CA, Patroni's own
            // calls to its peers too.
            restapi["verify_client"] = json!("required");
            restapi["cafile"] = json!(ca);
            ctl["certfile"] = json!(client_cert);
            ctl["keyfile"] = json!(client_key);
        }
    }
    if let Some(rest) = &creds.rest {
        restapi["authentication"] = json!({ "username": rest.username, "password": rest.password.expose() });
    }

    json!({
        "scope": state.scope,
        "namespace": crate::cluster::ETCD_NAMESPACE,
        "name": member.name,
        "log": { "level": "INFO" },
        "restapi": restapi,
        "ctl": ctl,
        // Every etcd member, as production lists its etcd cluster: Patroni fails over between
        // them when the one it talks to goes away.
        "etcd3": { "hosts": state.etcd.iter().map(|e| format!("127.0.0.1:{}", e.client_port)).collect::<Vec<_>>() },
        "bootstrap": {
            "dcs": {
                "ttl": state.timing.ttl,
                "loop_wait": state.timing.loop_wait,
                "retry_timeout": state.timing.retry_timeout,
                "maximum_lag_on_failover": crate::LocalCluster::MAXIMUM_LAG_ON_FAILOVER,
                "synchronous_mode": dcs.synchronous_mode,
                "synchronous_mode_strict": dcs.synchronous_mode_strict,
                "postgresql": {
                    "use_pg_rewind": true,
                    "use_slots": true,
                    "parameters": dcs_parameters,
                },
            },
            "initdb": [{ "encoding": "UTF8" }, { "locale": "C.UTF-8" }, "data-checksums"],
        },
        "postgresql": {
            "listen": format!("127.0.0.1:{}", member.pg_port),
            "connect_address": format!("127.0.0.1:{}", member.pg_port),
            "data_dir": data_dir,
            "bin_dir": PG_BIN_DIR,
            "pgpass": member.dir.join("pgpass"),
            "authentication": {
                "superuser": { "username": creds.superuser.username, "password": creds.superuser.password.expose() },
                "replication": { "username": creds.replication.username, "password": creds.replication.password.expose() },
            },
            "pg_hba": pg_hba(state),
            "parameters": local_parameters,
            "recovery_conf": recovery_conf,
            // A member whose pg_rewind fails, or whose timeline diverged, is re-cloned by Patroni
            // instead of being restarted on the unrepaired data for ever (Patroni 3.0.x).
            "remove_data_directory_on_rewind_failure": true,
            "remove_data_directory_on_diverged_timelines": true,
            "create_replica_methods": ["basebackup"],
            "basebackup": [{ "checkpoint": "fast" }],
        },
        "tags": { "nofailover": false, "noloadbalance": false, "clonefrom": false, "nosync": false },
    })
}

/// HAProxy in front of the cluster as Patroni's documentation sets it up (its `haproxy.cfg`
/// example): TCP mode, health checks against each member's REST API, `on-marked-down
/// shutdown-sessions` so clients of a demoted primary are cut off.
pub(crate) fn haproxy_config(state: &ClusterState, primary_port: u16, replicas_port: u16) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "global\n    maxconn 2000\n\ndefaults\n    mode tcp\n    retries 2\n    timeout connect 4s\n    \
         timeout client 30m\n    timeout server 30m\n    timeout check 5s\n"
    );
    let check = if state.tls { " check-ssl verify none" } else { "" };
    for (name, port, uri, balance) in [
        ("primary", primary_port, "/primary", ""),
        ("replicas", replicas_port, "/replica", "    balance roundrobin\n"),
    ] {
        let _ = writeln!(
            s,
            "listen {name}\n    bind 127.0.0.1:{port}\n{balance}    option httpchk OPTIONS {uri}"
        );
        let _ = writeln!(s, "    http-check expect status 200");
        let _ = writeln!(
            s,
            "    default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions"
        );
        for m in &state.members {
            let _ = writeln!(
                s,
                "    server {} 127.0.0.1:{} maxconn 200 check port {}{check}",
                m.name, m.pg_port, m.rest_port
            );
        }
        let _ = writeln!(s);
    }
    s
}

/// The pgBackRest configuration: a repository (or two) inside the cluster directory and every member as a
/// local `pgN` host, so `backup` and `check` find the current primary by themselves.
pub(crate) fn pgbackrest_config(state: &ClusterState) -> String {
    let dir = state.pgbackrest_dir();
    let mut s = String::new();
    let _ = writeln!(s, "[global]");
    let _ = writeln!(s, "repo1-path={}", dir.join("repo").display());
    let _ = writeln!(s, "repo1-retention-full=2");
    if state.second_repository {
        let _ = writeln!(s, "repo2-path={}", dir.join("repo2").display());
        let _ = writeln!(s, "repo2-retention-full=2");
    }
    let _ = writeln!(s, "log-path={}", dir.join("log").display());
    let _ = writeln!(s, "lock-path={}", dir.join("lock").display());
    let _ = writeln!(s, "spool-path={}", dir.join("spool").display());
    let _ = writeln!(s, "log-level-console=warn");
    let _ = writeln!(s, "log-level-file=info");
    let _ = writeln!(s, "start-fast=y");
    let _ = writeln!(s, "compress-type=lz4");
    let _ = writeln!(s, "archive-timeout=30");
    let _ = writeln!(s);
    let _ = writeln!(s, "[{}]", state.scope);
    for (i, m) in state.members.iter().enumerate() {
        let n = i + 1;
        let _ = writeln!(s, "pg{n}-path={}", m.data_dir().display());
        let _ = writeln!(s, "pg{n}-port={}", m.pg_port);
        let _ = writeln!(s, "pg{n}-socket-path={}", m.dir.display());
        let _ = writeln!(s, "pg{n}-user={}", state.credentials.superuser.username);
    }
    s
}

/// `pg_hba.conf`: password authentication on loopback; with client certificates, the
/// application role must also present one signed by the cluster's CA, for its name.
fn pg_hba(state: &ClusterState) -> Vec<String> {
    let creds = &state.credentials;
    let mut hba = vec![
        "local all all trust".to_owned(),
        format!(
            "host replication {} 127.0.0.1/32 scram-sha-256",
            creds.replication.username
        ),
    ];
    if state.client_certificates_required() {
        hba.push(format!(
            "hostssl all {} 127.0.0.1/32 scram-sha-256 clientcert=verify-full",
            creds.app.username
        ));
        hba.push(format!("host all {} 127.0.0.1/32 reject", creds.app.username));
    }
    hba.push("host all all 127.0.0.1/32 scram-sha-256".to_owned());
    hba
}
