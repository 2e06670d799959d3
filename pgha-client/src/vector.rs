//! pgvector workloads: table and index DDL, binary `COPY` bulk insert and k-NN search routed
//! to standbys under the lag bound.
//!
//! ```no_run
//! # async fn demo(client: pgha_client::Client) -> pgha_client::Result<()> {
//! use pgha_client::vector::{Distance, IndexKind, SearchOptions, VectorTable};
//! use pgvector::Vector;
//!
//! let table = VectorTable::new("items", 3)?.distance(Distance::Cosine);
//! table.ensure(&client, IndexKind::hnsw()).await?;
//! table.copy_in(&client, &[(1, Vector::from(vec![1.0, 0.0, 0.0])), (2, Vector::from(vec![0.0, 1.0, 0.0]))]).await?;
//! let hits = table.search(&client, &Vector::from(vec![0.9, 0.1, 0.0]), 10, SearchOptions::default()).await?;
//! # Ok(()) }
//! ```

use pgvector::Vector;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Kind as TypeKind, Type};

use crate::error::{Error, Result};
use crate::ident::Ident;
use crate::intent::{Intent, LagBound};
use crate::{Client, WalToken};

/// Distance function (and the matching operator and index operator class).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Distance {
    /// Euclidean distance, `<->`, `vector_l2_ops` (default).
    #[default]
    L2,
    /// Cosine distance, `<=>`, `vector_cosine_ops`.
    Cosine,
    /// Negative inner product, `<#>`, `vector_ip_ops`.
    InnerProduct,
}

impl Distance {
    /// The SQL distance operator (`<->`, `<=>`, `<#>`).
    pub fn operator(self) -> &'static str {
        match self {
            Self::L2 => "<->",
            Self::Cosine => "<=>",
            Self::InnerProduct => "<#>",
        }
    }

    /// The index operator class (`vector_l2_ops`, …).
    pub fn opclass(self) -> &'static str {
        match self {
            Self::L2 => "vector_l2_ops",
            Self::Cosine => "vector_cosine_ops",
            Self::InnerProduct => "vector_ip_ops",
        }
    }
}

/// An approximate-nearest-neighbour index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexKind {
    /// HNSW with `m` and `ef_construction`.
    Hnsw {
        /// Connections per layer (pgvector default 16).
        m: u32,
        /// Candidate list size while building (pgvector default 64).
        ef_construction: u32,
    },
    /// IVFFlat with `lists` lists (build it after loading data).
    IvfFlat {
        /// Number of lists.
        lists: u32,
    },
    /// No index: exact search.
    None,
}

impl IndexKind {
    /// The `USING … (column opclass) WITH (…)` part of `CREATE INDEX` for this kind, or `None`
    /// for [`IndexKind::None`].
    ///
    /// ```
    /// use pgha_client::{Ident, vector::{Distance, IndexKind}};
    /// let column = Ident::parse("embedding")?;
    /// assert_eq!(
    ///     IndexKind::hnsw().using_clause(&column, Distance::Cosine).as_deref(),
    ///     Some(r#"USING hnsw ("embedding" vector_cosine_ops) WITH (m = 16, ef_construction = 64)"#)
    /// );
    /// # Ok::<(), pgha_client::Error>(())
    /// ```
    pub fn using_clause(self, column: &Ident, distance: Distance) -> Option<String> {
        let ops = distance.opclass();
        match self {
            Self::Hnsw { m, ef_construction } => Some(format!(
                "USING hnsw ({column} {ops}) WITH (m = {m}, ef_construction = {ef_construction})"
            )),
            Self::IvfFlat { lists } => Some(format!("USING ivfflat ({column} {ops}) WITH (lists = {lists})")),
            Self::None => None,
        }
    }

    /// HNSW with pgvector's defaults (m = 16, ef_construction = 64).
    pub fn hnsw() -> Self {
        Self::Hnsw {
            m: 16,
            ef_construction: 64,
        }
    }
}

/// Options of a k-NN search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchOptions {
    /// Where the search runs (default: a standby under the lag bound, else the primary).
    pub intent: Intent,
    /// Lag bound override.
    pub max_lag: Option<LagBound>,
    /// `hnsw.ef_search` for this search (pgvector default 40); higher = better recall, slower.
    pub ef_search: Option<u32>,
    /// Read-your-writes token.
    pub after: Option<WalToken>,
    /// Disable index scans to get the exact answer (for recall measurements).
    pub exact: bool,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            intent: Intent::PreferStandby,
            max_lag: None,
            ef_search: None,
            after: None,
            exact: false,
        }
    }
}

/// One search hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    /// Row id.
    pub id: i64,
    /// Distance to the query vector.
    pub distance: f64,
}

/// A table `(id bigint primary key, embedding vector(dims))`.
#[derive(Debug, Clone)]
pub struct VectorTable {
    table: Ident,
    dims: usize,
    distance: Distance,
}

impl VectorTable {
    /// Names the table (`name` or `schema.name`, quoted safely) and its dimension (1–16000).
    pub fn new(table: &str, dims: usize) -> Result<Self> {
        if dims == 0 || dims > 16_000 {
            return Err(Error::config(format!("vector dimension {dims} is outside 1..=16000")));
        }
        Ok(Self {
            table: Ident::parse(table)?,
            dims,
            distance: Distance::default(),
        })
    }

    /// Sets the distance function used by the index and by searches.
    pub fn distance(mut self, distance: Distance) -> Self {
        self.distance = distance;
        self
    }

    /// The table identifier.
    pub fn table(&self) -> &Ident {
        &self.table
    }

    /// Creates the extension, the table and the index if missing (on the primary).
    pub async fn ensure(&self, client: &Client, index: IndexKind) -> Result<()> {
        let table = &self.table;
        let index_name = self.table.with_suffix("_embedding_idx");
        let index_name = Ident::parse(index_name.name())?;
        let ddl = format!(
            "CREATE EXTENSION IF NOT EXISTS vector; \
             CREATE TABLE IF NOT EXISTS {table} (id bigint PRIMARY KEY, embedding vector({dims}) NOT NULL);",
            dims = self.dims
        );
        let column = Ident::parse("embedding")?;
        let index_ddl = index
            .using_clause(&column, self.distance)
            .map(|using| format!("CREATE INDEX IF NOT EXISTS {index_name} ON {table} {using}"));
        client
            .op(Intent::Write)
            .idempotent()
            .run(async move |conn| {
                conn.batch_execute(&ddl).await?;
                if let Some(sql) = &index_ddl {
                    conn.batch_execute(sql).await?;
                }
                Ok(())
            })
            .await
    }

    fn check(&self, v: &Vector) -> Result<()> {
        let n = v.as_slice().len();
        if n != self.dims {
            return Err(Error::config(format!(
                "vector has {n} dimensions, table {} has {}",
                self.table, self.dims
            )));
        }
        Ok(())
    }

    /// Bulk insert through binary `COPY` in one transaction (replayed as a whole across
    /// failover; ids must be new). Returns the rows written.
    pub async fn copy_in(&self, client: &Client, rows: &[(i64, Vector)]) -> Result<u64> {
        rows.iter().try_for_each(|(_, v)| self.check(v))?;
        let sql = format!("COPY {} (id, embedding) FROM STDIN (FORMAT BINARY)", self.table);
        // Owned by the closure (which runs again on a retry), so the future is `Send`.
        let rows: std::sync::Arc<[(i64, Vector)]> = rows.into();
        client
            .transaction(async move |tx| {
                let oid: u32 = tx.query_one("SELECT 'vector'::regtype::oid", &[]).await?.get(0);
                let vector_type = Type::new("vector".into(), oid, TypeKind::Simple, "public".into());
                let sink = tx.copy_in(&sql).await?;
                let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &[Type::INT8, vector_type]));
                for (id, v) in rows.iter() {
                    writer.as_mut().write(&[id, v]).await?;
                }
                Ok(writer.finish().await?)
            })
            .await
    }

    /// Multi-row `INSERT … ON CONFLICT (id) DO NOTHING` (idempotent, so retried even when a
    /// failover leaves its outcome unknown). Returns the rows inserted.
    pub async fn insert(&self, client: &Client, rows: &[(i64, Vector)]) -> Result<u64> {
        rows.iter().try_for_each(|(_, v)| self.check(v))?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut sql = format!("INSERT INTO {} (id, embedding) VALUES ", self.table);
        for i in 0..rows.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2));
        }
        sql.push_str(" ON CONFLICT (id) DO NOTHING");
        let rows: std::sync::Arc<[(i64, Vector)]> = rows.into();
        client
            .op(Intent::Write)
            .idempotent()
            .run(async move |conn| {
                let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = rows
                    .iter()
                    .flat_map(|(id, v)| [id as &(dyn tokio_postgres::types::ToSql + Sync), v])
                    .collect();
                Ok(conn.execute(&sql, &params).await?)
            })
            .await
    }

    /// The `k` nearest rows to `query`, by the table's distance.
    ///
    /// The returned future is `Send`: searches can run in spawned tasks.
    pub async fn search(
        &self,
        client: &Client,
        query: &Vector,
        k: usize,
        opts: SearchOptions,
    ) -> Result<Vec<Neighbor>> {
        self.check(query)?;
        let limit = i64::try_from(k).map_err(|_| Error::config("k is too large"))?;
        let sql = format!(
            "SELECT id, (embedding {op} $1)::float8 FROM {table} ORDER BY embedding {op} $1 LIMIT $2",
            op = self.distance.operator(),
            table = self.table
        );
        let mut op = client.op(opts.intent);
        if let Some(bound) = opts.max_lag {
            op = op.max_lag(bound);
        }
        if let Some(token) = opts.after {
            op = op.after(token);
        }
        let query = query.clone();
        op.transaction(async move |tx| {
            if let Some(ef) = opts.ef_search {
                tx.execute("SELECT set_config('hnsw.ef_search', $1, true)", &[&ef.to_string()])
                    .await?;
            }
            if opts.exact {
                tx.batch_execute("SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off")
                    .await?;
            }
            let rows = tx.query(&sql, &[&query, &limit]).await?;
            rows.iter()
                .map(|r| {
                    Ok(Neighbor {
                        id: r.try_get(0)?,
                        distance: r.try_get(1)?,
                    })
                })
                .collect()
        })
        .await
    }
}
