//! The spans an application's tracing (an OpenTelemetry bridge, say) receives from pgha-client,
//! against a real cluster: one `pgha.op` per operation and one `pgha.attempt` per attempt inside
//! it, at INFO level, with OpenTelemetry's database attributes. A layer of the test's own records
//! every span as a subscriber sees it. (Each nextest test is its own process, so the global
//! subscriber is this test's.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pgha_client::Intent;
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::two_members;

/// A span as the subscriber saw it by the time it closed.
#[derive(Debug, Clone)]
struct Seen {
    name: &'static str,
    level: Level,
    parent: Option<&'static str>,
    fields: BTreeMap<String, String>,
}

/// Records every span of pgha's targets: opened, fields recorded later, closed.
#[derive(Clone, Default)]
struct Recorder {
    open: Arc<Mutex<BTreeMap<u64, Seen>>>,
    closed: Arc<Mutex<Vec<Seen>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let meta = attrs.metadata();
        if !meta.target().starts_with("pgha_client") {
            return;
        }
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = ctx.span(id).and_then(|s| s.parent()).map(|p| p.name());
        let seen = Seen {
            name: meta.name(),
            level: *meta.level(),
            parent,
            fields,
        };
        self.open.lock().expect("not poisoned").insert(id.into_u64(), seen);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(seen) = self.open.lock().expect("not poisoned").get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        if let Some(seen) = self.open.lock().expect("not poisoned").remove(&id.into_u64()) {
            self.closed.lock().expect("not poisoned").push(seen);
        }
    }
}

impl Recorder {
    /// The spans closed so far, oldest first.
    fn closed(&self) -> Vec<Seen> {
        self.closed.lock().expect("not poisoned").clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operations_and_attempts_are_spans_with_opentelemetry_database_attributes() -> anyhow::Result<()> {
    let recorder = Recorder::default();
    // As in production: INFO and above (the layer sees what the filter lets through).
    let filter = tracing_subscriber::filter::LevelFilter::INFO;
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(recorder.clone().with_filter(filter)))?;
    let (cluster, leader, standby, client) = two_members().await?;
    let database = cluster.database();
    let field = |s: &Seen, k: &str| s.fields.get(k).cloned().unwrap_or_default();

    client
        .run(Intent::Write, async |c| Ok(c.execute("SELECT 1", &[]).await?))
        .await?;
    let failed = client
        .run(Intent::Write, async |c| Ok(c.execute("SELECT 1/0", &[]).await?))
        .await;
    assert!(failed.is_err(), "division by zero");
    client
        .wait_for_topology(std::time::Duration::from_secs(10), |t| t.standbys().count() == 1)
        .await?;
    client
        .run(Intent::Standby, async |c| Ok(c.execute("SELECT 1", &[]).await?))
        .await?;

    let closed = recorder.closed();
    let ops: Vec<&Seen> = closed.iter().filter(|s| s.name == "pgha.op").collect();
    let attempts: Vec<&Seen> = closed.iter().filter(|s| s.name == "pgha.attempt").collect();
    assert_eq!(ops.len(), 3, "one span per operation: {ops:#?}");
    assert_eq!(attempts.len(), 3, "one span per attempt: {attempts:#?}");
    let expected = [
        ("write", "ok", &leader),
        ("write", "db", &leader),
        ("standby", "ok", &standby),
    ];
    for ((op, attempt), (intent, outcome, member)) in ops.iter().zip(&attempts).zip(expected) {
        assert_eq!(op.level, Level::INFO, "{op:?}");
        assert_eq!(
            op.parent, None,
            "an operation is the caller's span's child, not pgha's: {op:?}"
        );
        assert_eq!(field(op, "otel.kind"), "client", "{op:?}");
        assert_eq!(field(op, "db.system.name"), "postgresql", "{op:?}");
        assert_eq!(field(op, "db.namespace"), database, "{op:?}");
        assert_eq!(field(op, "pgha.intent"), intent, "{op:?}");
        assert_eq!(field(op, "pgha.outcome"), outcome, "{op:?}");
        assert_eq!(&field(op, "pgha.member"), member, "{op:?}");
        assert_eq!(field(op, "pgha.attempts"), "1", "{op:?}");

        assert_eq!(attempt.level, Level::INFO, "{attempt:?}");
        assert_eq!(attempt.parent, Some("pgha.op"), "{attempt:?}");
        assert_eq!(field(attempt, "server.address"), "127.0.0.1", "{attempt:?}");
        assert_eq!(
            field(attempt, "server.port"),
            cluster.pg_port(member)?.to_string(),
            "{attempt:?}"
        );
        assert_eq!(&field(attempt, "pgha.member"), member, "{attempt:?}");
        assert_eq!(field(attempt, "pgha.attempt"), "1", "{attempt:?}");
        let error = attempt.fields.get("error.type").map(String::as_str);
        assert_eq!(error, (outcome != "ok").then_some(outcome), "{attempt:?}");
    }
    client.shutdown().await;
    cluster.shutdown();
    Ok(())
}
