//! pgvector index operations: build HNSW/IVFFlat concurrently, rebuild, size and usage.

use std::time::Instant;

use pgha_client::vector::{Distance, IndexKind};
use serde::Serialize;

use crate::admin::Admin;
use crate::error::{Error, Result};
use crate::maintenance::{ident, MaintenanceOutcome};
use crate::sql::RowExt;

/// A pgvector index build.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VectorIndexSpec {
    /// The table (`name` or `schema.name`).
    pub table: String,
    /// The `vector` column (default `embedding`).
    pub column: String,
    /// HNSW or IVFFlat, with parameters.
    pub kind: IndexKind,
    /// Distance function (operator class).
    pub distance: Distance,
    /// Index name (default `<table>_<column>_<method>_idx`).
    pub name: Option<String>,
    /// `maintenance_work_mem` for the build (HNSW builds are much faster when the graph fits).
    pub maintenance_work_mem: Option<String>,
}

impl VectorIndexSpec {
    /// An HNSW index with pgvector's defaults on `table.embedding`, L2 distance.
    pub fn new(table: impl Into<String>) -> Self {
        Self {
            table: table.into(),
            column: "embedding".into(),
            kind: IndexKind::hnsw(),
            distance: Distance::L2,
            name: None,
            maintenance_work_mem: None,
        }
    }

    /// The `CREATE INDEX CONCURRENTLY` statement (identifiers quoted).
    pub fn sql(&self) -> Result<String> {
        let table = ident("table", &self.table)?;
        let column = ident("column", &self.column)?;
        let method = match self.kind {
            IndexKind::Hnsw { .. } => "hnsw",
            IndexKind::IvfFlat { .. } => "ivfflat",
            _ => return Err(Error::usage("choose HNSW or IVFFlat for a vector index")),
        };
        // An index lives in its table's schema: only its own name may be given.
        let name = match &self.name {
            Some(n) => ident("index", n)?.name().to_owned(),
            None => format!("{}_{}_{method}_idx", table.name(), column.name()),
        };
        let name = ident("index", &name)?;
        let using = self
            .kind
            .using_clause(&column, self.distance)
            .ok_or_else(|| Error::usage("choose HNSW or IVFFlat for a vector index"))?;
        Ok(format!("CREATE INDEX CONCURRENTLY {name} ON {table} {using}"))
    }
}

/// A pgvector index with its size and usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct VectorIndex {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Index.
    pub index: String,
    /// `hnsw` or `ivfflat`.
    pub method: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// Scans on the leader since the statistics were reset.
    pub scans: i64,
    /// Valid (a failed concurrent build leaves an invalid index behind).
    pub valid: bool,
    /// `CREATE INDEX` definition.
    pub definition: String,
}

impl Admin {
    /// Builds a pgvector index without blocking writes (`CREATE INDEX CONCURRENTLY`). If the
    /// build fails, PostgreSQL leaves an invalid index behind; the error says so.
    pub async fn create_vector_index(
        &self,
        spec: &VectorIndexSpec,
        dbname: Option<&str>,
    ) -> Result<MaintenanceOutcome> {
        let sql = spec.sql()?;
        let (leader, db) = self.leader_sql(dbname).await?;
        if let Some(mem) = &spec.maintenance_work_mem {
            db.execute("SELECT set_config('maintenance_work_mem', $1, false)", &[mem])
                .await
                .map_err(|e| Error::db("setting maintenance_work_mem", e))?;
        }
        self.report("vector-index", format!("{sql} on {}", leader.name), None);
        let started = Instant::now();
        if let Err(e) = db.batch_execute(&sql).await {
            return Err(Error::db(
                format!(
                    "{sql} on {} (a failed concurrent build leaves an INVALID index: see `pgha vector list`, \
                     drop it before retrying)",
                    leader.name
                ),
                e,
            ));
        }
        Ok(MaintenanceOutcome {
            member: leader.name,
            statement: sql,
            elapsed_s: started.elapsed().as_secs_f64(),
        })
    }

    /// Every HNSW and IVFFlat index with its size, scans and validity.
    pub async fn vector_indexes(&self, dbname: Option<&str>) -> Result<Vec<VectorIndex>> {
        let (leader, db) = self.leader_sql(dbname).await?;
        let rows = db
            .query(
                "SELECT s.schemaname::text, s.relname::text, s.indexrelname::text, am.amname::text, \
                        pg_relation_size(s.indexrelid), s.idx_scan, i.indisvalid, pg_get_indexdef(s.indexrelid) \
                 FROM pg_stat_user_indexes s \
                 JOIN pg_index i ON i.indexrelid = s.indexrelid \
                 JOIN pg_class c ON c.oid = s.indexrelid \
                 JOIN pg_am am ON am.oid = c.relam \
                 WHERE am.amname IN ('hnsw', 'ivfflat') \
                 ORDER BY 1, 2, 3",
                &[],
            )
            .await
            .map_err(|e| Error::db(format!("listing vector indexes on {}", leader.name), e))?;
        rows.iter()
            .map(|r| {
                Ok(VectorIndex {
                    schema: r.col(0)?,
                    table: r.col(1)?,
                    index: r.col(2)?,
                    method: r.col(3)?,
                    size_bytes: r.col(4)?,
                    scans: r.col(5)?,
                    valid: r.col(6)?,
                    definition: r.col(7)?,
                })
            })
            .collect::<Result<Vec<_>>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_ddl_is_quoted_and_parameterized() {
        let mut spec = VectorIndexSpec::new("app.items");
        assert_eq!(
            spec.sql().expect("valid"),
            r#"CREATE INDEX CONCURRENTLY "items_embedding_hnsw_idx" ON "app"."items" USING hnsw ("embedding" vector_l2_ops) WITH (m = 16, ef_construction = 64)"#
        );
        spec.kind = IndexKind::IvfFlat { lists: 100 };
        spec.distance = Distance::Cosine;
        spec.name = Some("items_ivf".into());
        assert_eq!(
            spec.sql().expect("valid"),
            r#"CREATE INDEX CONCURRENTLY "items_ivf" ON "app"."items" USING ivfflat ("embedding" vector_cosine_ops) WITH (lists = 100)"#
        );
        spec.kind = IndexKind::None;
        assert!(spec.sql().is_err());
        spec.kind = IndexKind::hnsw();
        spec.column = r#"embedding) WITH (m = 1); DROP TABLE items; --"#.into();
        assert!(spec
            .sql()
            .expect("quoted")
            .contains(r#""embedding) WITH (m = 1); DROP TABLE items; --""#));
    }
}
