//! VACUUM, ANALYZE, REINDEX, index usage, DROP INDEX, table sizes — always on the leader, with
//! every identifier validated and quoted.

use std::time::Instant;

use chrono::{DateTime, Utc};
use pgha_client::Ident;
use serde::Serialize;

use crate::admin::Admin;
use crate::error::{Error, Result};
use crate::sql::RowExt;

/// What [`Admin::vacuum`] does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VacuumOptions {
    /// One table (`name` or `schema.name`), or the whole database when `None`.
    pub table: Option<String>,
    /// Also update planner statistics (`ANALYZE`).
    pub analyze: bool,
    /// `VACUUM FULL`: rewrites the table under an ACCESS EXCLUSIVE lock — reads and writes wait.
    /// Plain VACUUM does not block them.
    pub full: bool,
    /// Skip the end-of-table truncation, the one step of a plain VACUUM that briefly takes an
    /// ACCESS EXCLUSIVE lock.
    pub no_truncate: bool,
}

/// A maintenance statement that ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MaintenanceOutcome {
    /// Where it ran (the leader).
    pub member: String,
    /// The statement, as sent.
    pub statement: String,
    /// How long it took.
    pub elapsed_s: f64,
}

/// One index and how much it is used.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct IndexUsage {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Index.
    pub index: String,
    /// Index scans since the statistics were reset (on the leader; standbys keep their own).
    pub scans: i64,
    /// Size in bytes.
    pub size_bytes: i64,
    /// Backs a unique constraint or is unique.
    pub unique: bool,
    /// Backs the primary key.
    pub primary: bool,
    /// Valid (a failed concurrent build leaves an invalid index).
    pub valid: bool,
    /// Access method (`btree`, `hnsw`, `ivfflat`, …).
    pub method: String,
}

/// One table's size and vacuum state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TableSize {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Table + indexes + TOAST, bytes.
    pub total_bytes: i64,
    /// Indexes, bytes.
    pub index_bytes: i64,
    /// Live rows (estimate).
    pub live_rows: i64,
    /// Dead rows (estimate): what VACUUM reclaims.
    pub dead_rows: i64,
    /// Last VACUUM (manual or auto).
    pub last_vacuum: Option<DateTime<Utc>>,
    /// Last ANALYZE (manual or auto).
    pub last_analyze: Option<DateTime<Utc>>,
}

/// Parses a user-supplied name into a quoted identifier, as a usage error if invalid.
pub(crate) fn ident(kind: &str, name: &str) -> Result<Ident> {
    Ident::parse(name).map_err(|e| Error::usage(format!("{kind} name: {e}")))
}

/// The VACUUM statement for `opts`.
pub(crate) fn vacuum_sql(opts: &VacuumOptions) -> Result<String> {
    let mut options = Vec::new();
    if opts.full {
        options.push("FULL");
    }
    if opts.analyze {
        options.push("ANALYZE");
    }
    if opts.no_truncate {
        options.push("TRUNCATE false");
    }
    let mut sql = String::from("VACUUM");
    if !options.is_empty() {
        sql.push_str(&format!(" ({})", options.join(", ")));
    }
    if let Some(t) = &opts.table {
        sql.push_str(&format!(" {}", ident("table", t)?));
    }
    Ok(sql)
}

impl Admin {
    async fn run_on_leader(&self, dbname: Option<&str>, sql: String) -> Result<MaintenanceOutcome> {
        let (leader, db) = self.leader_sql(dbname).await?;
        let started = Instant::now();
        self.report("maintenance", format!("{sql} on {}", leader.name), None);
        db.batch_execute(&sql)
            .await
            .map_err(|e| Error::db(format!("{sql} on {}", leader.name), e))?;
        Ok(MaintenanceOutcome {
            member: leader.name,
            statement: sql,
            elapsed_s: started.elapsed().as_secs_f64(),
        })
    }

    async fn require_relation(&self, dbname: Option<&str>, kind: &str, name: &Ident) -> Result<()> {
        let (leader, db) = self.leader_sql(dbname).await?;
        let found: Option<String> = db
            .query_one("SELECT to_regclass($1)::text", &[&name.to_string()])
            .await
            .map_err(|e| Error::db(format!("looking up {name} on {}", leader.name), e))?
            .get(0);
        match found {
            Some(_) => Ok(()),
            None => Err(Error::not_found(format!(
                "no {kind} {name} in database {}",
                dbname.unwrap_or(self.connector().dbname())
            ))),
        }
    }

    /// VACUUM (optionally ANALYZE, FULL) one table or the whole database, on the leader
    /// (VACUUM cannot run on a standby). The table name is quoted; a name that does not exist is
    /// [not found](crate::ErrorKind::NotFound).
    pub async fn vacuum(&self, opts: &VacuumOptions, dbname: Option<&str>) -> Result<MaintenanceOutcome> {
        let sql = vacuum_sql(opts)?;
        if let Some(t) = &opts.table {
            self.require_relation(dbname, "table", &ident("table", t)?).await?;
        }
        self.run_on_leader(dbname, sql).await
    }

    /// ANALYZE one table or the whole database, on the leader (the statistics replicate; a
    /// standby cannot run ANALYZE).
    pub async fn analyze(&self, table: Option<&str>, dbname: Option<&str>) -> Result<MaintenanceOutcome> {
        let sql = match table {
            Some(t) => {
                let t = ident("table", t)?;
                self.require_relation(dbname, "table", &t).await?;
                format!("ANALYZE {t}")
            }
            None => "ANALYZE".to_owned(),
        };
        self.run_on_leader(dbname, sql).await
    }

    /// `REINDEX INDEX CONCURRENTLY`: rebuilds an index without blocking writes.
    pub async fn reindex(&self, index: &str, dbname: Option<&str>) -> Result<MaintenanceOutcome> {
        let i = ident("index", index)?;
        self.require_relation(dbname, "index", &i).await?;
        self.run_on_leader(dbname, format!("REINDEX INDEX CONCURRENTLY {i}"))
            .await
    }

    /// Every user index with its scan count, size and kind.
    pub async fn index_usage(&self, dbname: Option<&str>) -> Result<Vec<IndexUsage>> {
        let (leader, db) = self.leader_sql(dbname).await?;
        let rows = db
            .query(
                "SELECT s.schemaname::text, s.relname::text, s.indexrelname::text, s.idx_scan, \
                        pg_relation_size(s.indexrelid), i.indisunique, i.indisprimary, i.indisvalid, am.amname::text \
                 FROM pg_stat_user_indexes s \
                 JOIN pg_index i ON i.indexrelid = s.indexrelid \
                 JOIN pg_class c ON c.oid = s.indexrelid \
                 JOIN pg_am am ON am.oid = c.relam \
                 ORDER BY s.idx_scan, pg_relation_size(s.indexrelid) DESC",
                &[],
            )
            .await
            .map_err(|e| Error::db(format!("reading index statistics on {}", leader.name), e))?;
        rows.iter()
            .map(|r| {
                Ok(IndexUsage {
                    schema: r.col(0)?,
                    table: r.col(1)?,
                    index: r.col(2)?,
                    scans: r.col(3)?,
                    size_bytes: r.col(4)?,
                    unique: r.col(5)?,
                    primary: r.col(6)?,
                    valid: r.col(7)?,
                    method: r.col(8)?,
                })
            })
            .collect::<Result<Vec<_>>>()
    }

    /// Indexes never scanned since the statistics were reset, excluding unique and primary-key
    /// indexes (they enforce constraints even when no query reads them). Scans on standbys are
    /// not counted here: check them before dropping an index used only by reads routed there.
    pub async fn unused_indexes(&self, dbname: Option<&str>) -> Result<Vec<IndexUsage>> {
        Ok(self
            .index_usage(dbname)
            .await?
            .into_iter()
            .filter(|i| i.scans == 0 && !i.unique && !i.primary)
            .collect())
    }

    /// `DROP INDEX CONCURRENTLY` (no write blocking). Refuses indexes that back a unique or
    /// primary-key constraint.
    pub async fn drop_index(&self, index: &str, dbname: Option<&str>) -> Result<MaintenanceOutcome> {
        let i = ident("index", index)?;
        self.require_relation(dbname, "index", &i).await?;
        let (_, db) = self.leader_sql(dbname).await?;
        let row = db
            .query_one(
                "SELECT indisunique OR indisprimary FROM pg_index WHERE indexrelid = to_regclass($1)",
                &[&i.to_string()],
            )
            .await
            .map_err(|e| Error::db(format!("looking up index {i}"), e))?;
        if row.col::<bool>(0)? {
            return Err(Error::precondition(format!(
                "{i} enforces a unique or primary-key constraint; drop the constraint instead"
            )));
        }
        self.run_on_leader(dbname, format!("DROP INDEX CONCURRENTLY {i}")).await
    }

    /// The largest tables (up to `limit`) with their index size, live/dead rows and last
    /// vacuum/analyze.
    pub async fn table_sizes(&self, limit: i64, dbname: Option<&str>) -> Result<Vec<TableSize>> {
        let (leader, db) = self.leader_sql(dbname).await?;
        let rows = db
            .query(
                "SELECT schemaname::text, relname::text, pg_total_relation_size(relid), pg_indexes_size(relid), \
                        n_live_tup, n_dead_tup, greatest(last_vacuum, last_autovacuum), \
                        greatest(last_analyze, last_autoanalyze) \
                 FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC LIMIT $1",
                &[&limit],
            )
            .await
            .map_err(|e| Error::db(format!("reading table sizes on {}", leader.name), e))?;
        rows.iter()
            .map(|r| {
                Ok(TableSize {
                    schema: r.col(0)?,
                    table: r.col(1)?,
                    total_bytes: r.col(2)?,
                    index_bytes: r.col(3)?,
                    live_rows: r.col(4)?,
                    dead_rows: r.col(5)?,
                    last_vacuum: r.col(6)?,
                    last_analyze: r.col(7)?,
                })
            })
            .collect::<Result<Vec<_>>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vacuum_statements_quote_the_table() {
        let sql = |table: Option<&str>, analyze, full| {
            vacuum_sql(&VacuumOptions {
                table: table.map(str::to_owned),
                analyze,
                full,
                no_truncate: false,
            })
        };
        assert_eq!(sql(None, false, false).expect("valid"), "VACUUM");
        assert_eq!(
            sql(Some("items"), true, false).expect("valid"),
            r#"VACUUM (ANALYZE) "items""#
        );
        assert_eq!(
            sql(Some("app.items"), true, true).expect("valid"),
            r#"VACUUM (FULL, ANALYZE) "app"."items""#
        );
        // An injection attempt becomes one (odd, nonexistent) quoted name.
        assert_eq!(
            sql(Some(r#"items; DROP TABLE items; --"#), false, false).expect("quoted"),
            r#"VACUUM "items; DROP TABLE items; --""#
        );
        assert_eq!(
            sql(Some(r#"x" ; DROP TABLE t; --"#), false, false).expect("quoted"),
            r#"VACUUM "x"" ; DROP TABLE t; --""#
        );
        assert!(sql(Some(""), false, false).is_err());
        assert!(sql(Some("a\0b"), false, false).is_err());
    }
}
