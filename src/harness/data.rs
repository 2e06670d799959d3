//! The demo tables (pgvector table, heartbeat rows) and the deterministic embeddings.

use std::time::Duration;

use pgha_client::vector::{Distance, IndexKind, VectorTable};
use pgha_client::{Client, Intent};
use pgvector::Vector;

use super::{DIMS, TABLE};

/// Creates the demo table (with an HNSW index) and heartbeat row 1, and waits until the
/// standbys have replayed them (a read bounded at 2 s may otherwise legitimately not see a table
/// created a moment ago).
pub async fn prepare(client: &Client) -> pgha_client::Result<()> {
    prepare_tables(client, &[(TABLE, 1)]).await
}

/// Creates each `(table, heartbeat row)`: a pgvector table with an HNSW index and a row in
/// `pgha_heartbeat`; waits until the standbys have replayed them.
pub async fn prepare_tables(client: &Client, tables: &[(&str, i32)]) -> pgha_client::Result<()> {
    for (table, _) in tables {
        VectorTable::new(table, DIMS)?
            .distance(Distance::L2)
            .ensure(client, IndexKind::hnsw())
            .await?;
    }
    let rows: Vec<i32> = tables.iter().map(|(_, row)| *row).collect();
    let ((), token) = client
        .op(Intent::Write)
        .idempotent()
        .run_with_token(async move |c| {
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS pgha_heartbeat (id int PRIMARY KEY, seq bigint NOT NULL); \
                 CREATE TABLE IF NOT EXISTS pgha_heartbeat_log (id int, seq bigint, PRIMARY KEY (id, seq))",
            )
            .await?;
            c.execute(
                "INSERT INTO pgha_heartbeat SELECT unnest($1::int4[]), 0 ON CONFLICT (id) DO NOTHING",
                &[&rows],
            )
            .await?;
            Ok(())
        })
        .await?;
    client.wait_for_standbys(token, Duration::from_secs(30)).await
}

/// A deterministic pseudo-random embedding for `id`.
pub fn embedding(id: i64) -> Vector {
    vector_of(id as u64, DIMS)
}

/// A deterministic pseudo-random vector of `dims` values in [0, 1), from `seed`.
pub fn vector_of(seed: u64, dims: usize) -> Vector {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Vector::from(
        (0..dims)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 10_000) as f32 / 10_000.0
            })
            .collect::<Vec<f32>>(),
    )
}
