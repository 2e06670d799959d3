//! HAProxy in front of the cluster, routing by Patroni's REST health checks.

use std::time::Duration;

use serde::Serialize;

use super::{wait_for, write_file, LocalCluster};
use crate::config_files;
use crate::error::{Error, Result};
use crate::ports::free_ports;
use crate::process::spawn_logged;

/// HAProxy's ports (see [`LocalCluster::start_haproxy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HaproxyPorts {
    /// Routes to the primary.
    pub primary: u16,
    /// Routes to the replicas, round robin.
    pub replicas: u16,
}

impl LocalCluster {
    /// Starts HAProxy in front of the cluster the way Patroni's documentation sets it up: one
    /// port for the primary (health check `GET /primary` on each member's REST API) and one for
    /// the replicas (`GET /replica`, round robin), with `inter 3s fall 3 rise 2
    /// on-marked-down shutdown-sessions`. Returns once the primary port serves PostgreSQL.
    /// Stopped with the cluster.
    pub async fn start_haproxy(&self) -> Result<HaproxyPorts> {
        if self.lock_state().haproxy.is_some_and(|p| p.is_alive()) {
            return Err(Error::Setup("HAProxy is already running for this cluster".into()));
        }
        let ports = free_ports(2)?;
        let ports = HaproxyPorts {
            primary: ports[0],
            replicas: ports[1],
        };
        let (config_path, log, text) = {
            let state = self.lock_state();
            let text = config_files::haproxy_config(&state, ports.primary, ports.replicas);
            (
                state.base_dir.join("haproxy.cfg"),
                state.base_dir.join("haproxy.log"),
                text,
            )
        };
        write_file(&config_path, &text)?;
        self.user.own(&config_path)?;
        let mut cmd = self.user.command("haproxy");
        cmd.arg("-db").arg("-f").arg(&config_path);
        let (child, proc) = spawn_logged(cmd, &log, "haproxy")?;
        self.lock_children().insert("haproxy".into(), child);
        {
            let mut state = self.lock_state();
            state.haproxy = Some(proc);
            state.save()?;
        }
        // HAProxy starts every server as up; the documented `fall 3` x `inter 3s` takes up to
        // ~9 s to take the primary out of the replicas' pool. Wait until both ports route right.
        let leader = self.leader().await?;
        let leader_port = self.pg_port(&leader)?.to_string();
        for (port, want_leader, what) in [
            (ports.primary, true, "HAProxy's primary port to reach the leader"),
            (ports.replicas, false, "HAProxy's replicas port to reach only replicas"),
        ] {
            wait_for(what, Duration::from_secs(60), || async {
                if !proc.is_alive() {
                    return Err(Error::NotRunning(format!("haproxy (see {})", log.display())));
                }
                // Several connections in a row, so round robin shows every server in the pool.
                for _ in 0..4 {
                    match self.port_through_haproxy(port).await {
                        Some(p) if (p == leader_port) == want_leader => {}
                        _ => return Ok(None),
                    }
                }
                Ok(Some(()))
            })
            .await?;
        }
        Ok(ports)
    }

    /// The PostgreSQL port of the server HAProxy's `port` routes a new connection to.
    async fn port_through_haproxy(&self, port: u16) -> Option<String> {
        let creds = self.credentials().app;
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user(&creds.username)
            .password(creds.password.expose())
            .dbname(self.database())
            .connect_timeout(Duration::from_secs(1));
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.ok()?;
        tokio::spawn(conn);
        client.query_one("SHOW port", &[]).await.ok().map(|r| r.get(0))
    }
}
