//! SQL on a member: connections as the cluster's roles and the queries the testkit checks with.

use std::time::Duration;

use tokio_postgres::NoTls;

use super::LocalCluster;
use crate::error::{Error, Result};
use crate::state::Credentials;

const SQL_TIMEOUT: Duration = Duration::from_secs(10);

impl LocalCluster {
    /// Connects to a member as `user` (with its password) to `dbname`.
    pub async fn connect_as(&self, member: &str, user: &Credentials, dbname: &str) -> Result<tokio_postgres::Client> {
        let port = self.pg_port(member)?;
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(port)
            .user(&user.username)
            .password(user.password.expose())
            .dbname(dbname)
            .application_name("pgha-testkit")
            .connect_timeout(Duration::from_secs(3));
        let (client, connection) = tokio::time::timeout(SQL_TIMEOUT, config.connect(NoTls))
            .await
            .map_err(|_| Error::Timeout {
                what: format!("connecting to {member}"),
                timeout: SQL_TIMEOUT,
                last_error: None,
            })?
            .map_err(|source| Error::Sql {
                member: member.to_owned(),
                source,
            })?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Connects to a member's application database as the application role.
    pub async fn connect(&self, member: &str) -> Result<tokio_postgres::Client> {
        let creds = self.credentials().app;
        self.connect_as(member, &creds, &self.database()).await
    }

    /// Connects to a member as the superuser, to `dbname`.
    pub async fn connect_superuser(&self, member: &str, dbname: &str) -> Result<tokio_postgres::Client> {
        let creds = self.credentials().superuser;
        self.connect_as(member, &creds, dbname).await
    }

    pub(super) async fn sql(
        &self,
        member: &str,
        client: &tokio_postgres::Client,
        sql: &str,
    ) -> Result<Vec<tokio_postgres::Row>> {
        tokio::time::timeout(SQL_TIMEOUT, client.query(sql, &[]))
            .await
            .map_err(|_| Error::Timeout {
                what: format!("`{sql}` on {member}"),
                timeout: SQL_TIMEOUT,
                last_error: None,
            })?
            .map_err(|source| Error::Sql {
                member: member.to_owned(),
                source,
            })
    }

    /// Runs one statement as the superuser on `member` (database `postgres`) and returns its rows.
    pub async fn superuser_query(&self, member: &str, sql: &str) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.connect_superuser(member, "postgres").await?;
        self.sql(member, &client, sql).await
    }

    /// True if the member answers SQL and is a primary (`pg_is_in_recovery()` is false).
    pub async fn is_writable_primary(&self, member: &str) -> Result<bool> {
        let rows = self.superuser_query(member, "SELECT pg_is_in_recovery()").await?;
        Ok(!rows[0].get::<_, bool>(0))
    }

    /// True if the member is in recovery and its WAL receiver is streaming.
    pub async fn is_streaming(&self, member: &str) -> Result<bool> {
        let rows = self
            .superuser_query(
                member,
                "SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver) = 'streaming'",
            )
            .await?;
        Ok(rows[0].get::<_, bool>(0) && rows[0].get::<_, Option<bool>>(1).unwrap_or(false))
    }
}
