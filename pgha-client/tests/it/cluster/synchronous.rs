//! Tokens on a synchronous primary: a commit there shows on a standby that replayed it before it
//! shows on the primary (it stays invisible until the synchronous standbys confirm it), so a
//! token a standby's read reached is not reached on the primary until they have.

use std::time::Duration;

use anyhow::{ensure, Context};
use pgha_client::{Intent, WalToken};
use pgha_testkit::LocalCluster;

use super::{builder_for, init_tracing};

/// A read carrying the position a standby showed, run on the primary while the synchronous
/// standby is frozen and a commit waits for it, waits for the confirmation or fails at its
/// deadline: it never sees less than the standby showed. (Before, it ran at once and missed the
/// row the standby had shown — a session's reads went back, as the strict chaos runs found.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_s_token_on_a_synchronous_primary_waits_for_the_synchronous_standbys() -> anyhow::Result<()> {
    init_tracing();
    let cluster = LocalCluster::builder()
        .members(3)
        .synchronous_mode(true, true)
        .start()
        .await?;
    let leader = cluster.leader().await?;
    let client = builder_for(&cluster).connect().await?;
    let ((), token) = client
        .op(Intent::Write)
        .run_with_token(async |c| Ok(c.batch_execute("CREATE TABLE shown (n int)").await?))
        .await?;
    client.wait_for_standbys(token, Duration::from_secs(10)).await?;
    // Patroni names one synchronous standby (synchronous_standby_names = 'nodeN'): the other
    // is asynchronous once PostgreSQL has reloaded that.
    let (synchronous, asynchronous) = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let rows = cluster
                .superuser_query(&leader, "SELECT application_name, sync_state FROM pg_stat_replication")
                .await?;
            let named = |wanted: &str| {
                rows.iter()
                    .find(|r| r.get::<_, String>(1) == wanted)
                    .map(|r| r.get::<_, String>(0))
            };
            if let (2, Some(s), Some(a)) = (rows.len(), named("sync"), named("async")) {
                return anyhow::Ok((s, a));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .context("one synchronous and one asynchronous standby")??;
    // The client has seen the synchronous primary; warm its pool there.
    client
        .run(Intent::Primary, async |c| Ok(c.batch_execute("SELECT 1").await?))
        .await?;

    cluster.freeze_node(&synchronous)?;
    let outcome = async {
        // A commit that waits for the frozen synchronous standby.
        let writer = cluster.connect(&leader).await?;
        let waiting = tokio::spawn(async move { writer.batch_execute("INSERT INTO shown VALUES (1)").await });
        // The asynchronous standby replays it and shows it.
        let on_standby = cluster.connect(&asynchronous).await?;
        let shown_at = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let row = on_standby
                    .query_one("SELECT count(*), pg_last_wal_replay_lsn()::text FROM shown", &[])
                    .await?;
                if row.get::<_, i64>(0) == 1 {
                    // The same timeline as the table's creation: nothing failed over.
                    return anyhow::Ok(format!("pgha1:{}:{}", token.timeline, row.get::<_, String>(1)));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .context("the asynchronous standby never showed the row")??;
        let token: WalToken = shown_at.parse()?;
        let on_primary: i64 = cluster
            .connect(&leader)
            .await?
            .query_one("SELECT count(*) FROM shown", &[])
            .await?
            .get(0);
        ensure!(
            on_primary == 0,
            "the premise: the primary hides the waiting commit ({on_primary} rows)"
        );
        let read = client
            .op(Intent::Primary)
            .after(token)
            .deadline(Duration::from_secs(2))
            .run(async |c| Ok(c.query_one("SELECT count(*) FROM shown", &[]).await?.get::<_, i64>(0)))
            .await;
        anyhow::Ok((waiting, token, read))
    }
    .await;
    cluster.thaw_node(&synchronous)?;
    let (waiting, token, read) = outcome?;
    match read {
        // Patroni may have named the other standby synchronous meanwhile, releasing the commit.
        Ok(seen) => ensure!(
            seen == 1,
            "the read at {token} on the primary saw {seen} rows: it went back"
        ),
        Err(e) => ensure!(
            e.is_timeout() && e.to_string().contains("synchronous standbys to confirm the token"),
            "waiting for the confirmation should end at the deadline: {e}"
        ),
    }
    waiting.await??;
    // Once confirmed, the same read runs on the primary and sees the row.
    let seen = client
        .op(Intent::Primary)
        .after(token)
        .run(async |c| Ok(c.query_one("SELECT count(*) FROM shown", &[]).await?.get::<_, i64>(0)))
        .await?;
    ensure!(seen == 1, "after the confirmation the read saw {seen} rows");
    client.shutdown().await;
    cluster.shutdown();
    Ok(())
}
