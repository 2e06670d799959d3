//! pgha-admin on a local cluster: an [`Admin`] handle and a pgBackRest handle with the cluster's
//! credentials, and `LocalCluster` as pgha-admin's [`NodeControl`], so point-in-time recovery of
//! a test cluster runs the same orchestration as a production one.

use pgha_admin::backup::{LocalRunner, PgBackRest};
use pgha_admin::pgha_client::{Client, SslMode};
use pgha_admin::pitr::NodeControl;
use pgha_admin::{Admin, Error as AdminError, ErrorKind};
use serde_json::Value;

use crate::config_files::PGBACKREST_BIN;
use crate::LocalCluster;

impl LocalCluster {
    /// A pgha-admin handle on this cluster: its Patroni URLs and REST credentials, the
    /// superuser, the application database, TLS with the cluster's CA when it has one.
    pub fn admin(&self) -> pgha_admin::Result<Admin> {
        let creds = self.credentials();
        let mut builder = Client::builder()
            .patroni(self.patroni_urls())
            .user(creds.superuser.username.clone())
            .password(creds.superuser.password.expose())
            .dbname(self.database())
            .application_name("pgha-admin");
        builder = match self.ca_file() {
            Some(ca) => builder
                .patroni_ca_file(&ca)
                .ssl_ca_file(&ca)
                .ssl_mode(SslMode::VerifyFull),
            None => builder.ssl_mode(SslMode::Disable),
        };
        if let Some(rest) = &creds.rest {
            builder = builder.patroni_auth(rest.username.clone(), rest.password.expose());
        }
        Admin::new(builder)
    }

    /// A pgBackRest handle on this cluster's stanza (run as the cluster's OS user), when the
    /// cluster was built with pgBackRest.
    pub fn pgbackrest_handle(&self) -> Option<PgBackRest> {
        let config = self.info().pgbackrest_config?;
        let mut runner = LocalRunner::new().binary(PGBACKREST_BIN);
        if let Some(user) = self.os_user_switch() {
            runner = runner.run_as(user);
        }
        Some(PgBackRest::new(runner, self.scope()).config_file(config.display().to_string()))
    }
}

fn node_error(what: &str, member: &str, e: crate::Error) -> AdminError {
    AdminError::new(ErrorKind::NodeControl, format!("{what} {member}")).with_source(e)
}

impl NodeControl for LocalCluster {
    async fn stop_patroni(&self, member: &str) -> pgha_admin::Result<()> {
        match self.stop_node(member) {
            // Already stopped is what was asked for.
            Ok(()) | Err(crate::Error::NotRunning(_)) => Ok(()),
            Err(e) => Err(node_error("stopping", member, e)),
        }
    }

    async fn start_patroni(&self, member: &str) -> pgha_admin::Result<()> {
        self.start_node(member).map_err(|e| node_error("starting", member, e))
    }

    async fn clear_data_dir(&self, member: &str) -> pgha_admin::Result<()> {
        LocalCluster::clear_data_dir(self, member).map_err(|e| node_error("emptying the data directory of", member, e))
    }

    async fn clear_dcs(&self) -> pgha_admin::Result<()> {
        LocalCluster::clear_dcs(self).map_err(|e| node_error("clearing the DCS of", &self.scope(), e))
    }

    async fn set_bootstrap(&self, member: &str, method: Option<&Value>) -> pgha_admin::Result<()> {
        self.set_bootstrap_method(member, pgha_admin::pitr::BOOTSTRAP_METHOD, method)
            .map_err(|e| node_error("setting the bootstrap method of", member, e))
    }

    fn data_dir(&self, member: &str) -> Option<String> {
        LocalCluster::data_dir(self, member)
            .ok()
            .map(|p| p.display().to_string())
    }
}
