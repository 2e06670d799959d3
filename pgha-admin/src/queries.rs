//! Query performance: slow queries from `pg_stat_statements` (version-aware) and EXPLAIN
//! (ANALYZE, FORMAT JSON) with "does it use an index?" answered.

use serde::Serialize;
use serde_json::Value;

use crate::admin::Admin;
use crate::error::{Error, Result};
use crate::sql::RowExt;

/// One statement from `pg_stat_statements`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SlowQuery {
    /// Normalized statement text.
    pub query: String,
    /// Executions.
    pub calls: i64,
    /// Mean execution time, ms (`mean_exec_time` on PostgreSQL 13+, `mean_time` before).
    pub mean_ms: f64,
    /// Total execution time, ms.
    pub total_ms: f64,
    /// Rows returned or affected.
    pub rows: i64,
    /// Fraction of shared-buffer reads served from cache (0–1).
    pub cache_hit_ratio: Option<f64>,
}

/// A parsed execution plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ExplainReport {
    /// Where it ran.
    pub member: String,
    /// Every plan node type, depth-first (`Limit`, `Index Scan`, …).
    pub node_types: Vec<String>,
    /// Indexes the plan reads.
    pub indexes: Vec<String>,
    /// The plan reads at least one index (Index Scan, Index Only Scan or Bitmap Index Scan).
    pub uses_index: bool,
    /// The planner's total cost.
    pub total_cost: Option<f64>,
    /// Measured execution time, ms (with ANALYZE).
    pub execution_ms: Option<f64>,
    /// The full JSON plan as PostgreSQL returned it.
    pub plan: Value,
}

/// Parses the output of `EXPLAIN (FORMAT JSON)` (an array holding one object with `Plan`).
///
/// ```
/// let plan = serde_json::json!([{"Plan": {"Node Type": "Limit", "Total Cost": 8.5, "Plans": [
///     {"Node Type": "Index Scan", "Index Name": "items_embedding_idx"}]}}]);
/// let report = pgha_admin::parse_explain("node1", plan)?;
/// assert!(report.uses_index);
/// assert_eq!(report.indexes, ["items_embedding_idx"]);
/// # Ok::<(), pgha_admin::Error>(())
/// ```
pub fn parse_explain(member: &str, plan: Value) -> Result<ExplainReport> {
    let top = plan
        .get(0)
        .and_then(|o| o.get("Plan"))
        .ok_or_else(|| Error::protocol("EXPLAIN output has no Plan"))?;
    let mut node_types = Vec::new();
    let mut indexes = Vec::new();
    let mut stack = vec![top];
    while let Some(node) = stack.pop() {
        if let Some(t) = node.get("Node Type").and_then(Value::as_str) {
            node_types.push(t.to_owned());
        }
        if let Some(i) = node.get("Index Name").and_then(Value::as_str) {
            indexes.push(i.to_owned());
        }
        if let Some(children) = node.get("Plans").and_then(Value::as_array) {
            stack.extend(children.iter().rev());
        }
    }
    let uses_index = node_types
        .iter()
        .any(|t| matches!(t.as_str(), "Index Scan" | "Index Only Scan" | "Bitmap Index Scan"));
    Ok(ExplainReport {
        member: member.to_owned(),
        total_cost: top.get("Total Cost").and_then(Value::as_f64),
        execution_ms: plan
            .get(0)
            .and_then(|o| o.get("Execution Time"))
            .and_then(Value::as_f64),
        node_types,
        indexes,
        uses_index,
        plan,
    })
}

impl Admin {
    /// The `limit` statements with the highest mean execution time, from `pg_stat_statements`
    /// on a member (the leader by default; each member has its own statistics).
    pub async fn slow_queries(&self, limit: i64, member: Option<&str>, dbname: Option<&str>) -> Result<Vec<SlowQuery>> {
        let (m, db) = self.member_sql(member, dbname).await?;
        let row = db
            .query_one(
                "SELECT current_setting('server_version_num')::int, \
                        EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')",
                &[],
            )
            .await
            .map_err(|e| Error::db(format!("checking pg_stat_statements on {}", m.name), e))?;
        let (version, installed): (i32, bool) = (row.col(0)?, row.col(1)?);
        if !installed {
            return Err(Error::precondition(format!(
                "pg_stat_statements is not installed in this database on {}: add it to \
                 shared_preload_libraries and run CREATE EXTENSION pg_stat_statements",
                m.name
            )));
        }
        // PostgreSQL 13 (pg_stat_statements 1.8) renamed mean_time/total_time to *_exec_time.
        let (mean, total) = if version >= 130_000 {
            ("mean_exec_time", "total_exec_time")
        } else {
            ("mean_time", "total_time")
        };
        let sql = format!(
            "SELECT query, calls, {mean}, {total}, rows, \
                    CASE WHEN shared_blks_hit + shared_blks_read > 0 \
                         THEN shared_blks_hit::float8 / (shared_blks_hit + shared_blks_read) END \
             FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             ORDER BY {mean} DESC LIMIT $1"
        );
        let rows = db
            .query(&sql, &[&limit])
            .await
            .map_err(|e| Error::db(format!("reading pg_stat_statements on {}", m.name), e))?;
        rows.iter()
            .map(|r| {
                Ok(SlowQuery {
                    query: r.col::<Option<String>>(0)?.unwrap_or_default(),
                    calls: r.col(1)?,
                    mean_ms: r.col(2)?,
                    total_ms: r.col(3)?,
                    rows: r.col(4)?,
                    cache_hit_ratio: r.col(5)?,
                })
            })
            .collect::<Result<Vec<_>>>()
    }

    /// `EXPLAIN (FORMAT JSON)` of one statement — with `analyze`, `EXPLAIN (ANALYZE, BUFFERS)`,
    /// which runs it inside a transaction that is rolled back, so a write has no effect. Runs on
    /// `member` (the leader by default). One statement only: the extended protocol refuses more.
    pub async fn explain(
        &self,
        sql: &str,
        analyze: bool,
        member: Option<&str>,
        dbname: Option<&str>,
    ) -> Result<ExplainReport> {
        let (m, mut db) = self.member_sql(member, dbname).await?;
        let options = if analyze {
            "ANALYZE, BUFFERS, FORMAT JSON"
        } else {
            "FORMAT JSON"
        };
        let tx = db
            .transaction()
            .await
            .map_err(|e| Error::db(format!("BEGIN on {}", m.name), e))?;
        let row = tx
            .query_one(&format!("EXPLAIN ({options}) {sql}"), &[])
            .await
            .map_err(|e| Error::db(format!("EXPLAIN on {}", m.name), e))?;
        // With FORMAT JSON the one column is of type json.
        let plan: Value = row.col(0)?;
        tx.rollback()
            .await
            .map_err(|e| Error::db(format!("ROLLBACK on {}", m.name), e))?;
        parse_explain(&m.name, plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sequential_scans_are_not_index_use() {
        let r = parse_explain(
            "a",
            json!([{"Plan": {"Node Type": "Limit", "Plans": [{"Node Type": "Sort", "Plans": [
                {"Node Type": "Seq Scan", "Relation Name": "items"}]}]}, "Execution Time": 12.5}]),
        )
        .expect("valid plan");
        assert!(!r.uses_index);
        assert_eq!(r.node_types, ["Limit", "Sort", "Seq Scan"]);
        assert_eq!(r.execution_ms, Some(12.5));
    }

    #[test]
    fn bitmap_scans_count_and_garbage_is_an_error() {
        let r = parse_explain(
            "a",
            json!([{"Plan": {"Node Type": "Bitmap Heap Scan", "Plans": [
                {"Node Type": "Bitmap Index Scan", "Index Name": "i"}]}}]),
        )
        .expect("valid plan");
        assert!(r.uses_index);
        assert!(parse_explain("a", json!({"x": 1})).is_err());
        assert!(parse_explain("a", json!([])).is_err());
    }
}
