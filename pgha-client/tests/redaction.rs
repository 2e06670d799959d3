//! Secrets never appear in Debug or Display output nor in logs, even at TRACE level and on the
//! error paths (failed connections, failed Patroni calls), which are where they usually leak.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgha_client::{Client, ClientConfig, Intent, SslMode};
use pgha_testkit::{HostilePatroni, Misbehaviour};

const DB_SECRET: &str = "db-S3cr3t-7f1c";
const REST_SECRET: &str = "rest-S3cr3t-9a2d";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_debug_display_and_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .finish();
    // Global: the topology task logs from other threads. That is why this test is a binary of
    // its own rather than a module of tests/it: no other test may install a subscriber first.
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber");

    let endpoint = HostilePatroni::start(Misbehaviour::MalformedJson)
        .await
        .expect("endpoint");
    let url = format!(
        "postgresql://app:{DB_SECRET}@127.0.0.1:1/app?patroni={}&sslmode=disable",
        endpoint.url()
    );
    let builder = Client::builder().url(&url).patroni_auth("patroni", REST_SECRET);
    let mut outputs = vec![format!("{builder:?}")];
    let config: ClientConfig = serde_json::from_value(serde_json::json!({
        "url": url, "patroni_password": REST_SECRET, "password": DB_SECRET
    }))
    .expect("config");
    outputs.push(format!("{config:?}"));
    outputs.push(format!("{:?}", builder.clone().connector().expect("connector")));

    let client = builder
        .ssl_mode(SslMode::Disable)
        .connect_timeout(Duration::from_millis(300))
        .connect()
        .await
        .expect("client");
    let err = client
        .op(Intent::Write)
        .deadline(Duration::from_secs(2))
        .run(async |c| Ok(c.query_one("SELECT 1", &[]).await?.get::<_, i32>(0)))
        .await
        .expect_err("nothing to connect to");
    outputs.push(format!("{err}"));
    outputs.push(format!("{err:?}"));
    outputs.push(format!("{client:?}"));
    outputs.push(format!("{:?}", client.metrics()));
    client.shutdown().await;

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(logs.len() > 1000, "TRACE logging captured nothing: {logs}");
    outputs.push(logs);
    for (i, text) in outputs.iter().enumerate() {
        for secret in [DB_SECRET, REST_SECRET] {
            assert!(!text.contains(secret), "output {i} leaks a secret:\n{text}");
        }
    }
}
