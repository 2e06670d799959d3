//! The few Patroni REST calls the testkit itself needs (status, switchover, failover).
//!
//! This is deliberately small and independent of `pgha-client`: the testkit is the reference
//! the client is tested against, so it must not share the client's parsing, nor the one HTTP path
//! to Patroni that pgha-client's discovery and pgha-admin share (`patroni::Api` behind
//! `Connector::patroni_send`). The tests observe the cluster through this module; were it that
//! code, a fault in it (a wrong URL, a credentials rule, a body limit, a timeout) would blind the
//! observer the same way it breaks the code under test, and no test would see it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::state::Credentials;

/// A member as reported by Patroni's `GET /cluster`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatroniMember {
    /// Member name.
    pub name: String,
    /// `leader`, `replica`, `sync_standby`, `quorum_standby` or `standby_leader`.
    pub role: String,
    /// `running`, `streaming`, `stopped`, …
    pub state: String,
    /// Timeline, when known.
    #[serde(default)]
    pub timeline: Option<u64>,
    /// Replication lag in bytes; `None` for the leader or when Patroni says `"unknown"`.
    #[serde(default, deserialize_with = "lag_bytes")]
    pub lag: Option<u64>,
    /// PostgreSQL port.
    #[serde(default)]
    pub port: Option<u16>,
}

fn lag_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64(),
        _ => None,
    })
}

#[derive(Debug, Deserialize)]
struct ClusterDoc {
    members: Vec<PatroniMember>,
}

/// The testkit's HTTP client for Patroni: trusting `ca_file`, presenting `identity` (a PEM
/// certificate and key) when Patroni asks for a client certificate.
pub(crate) fn http_client(
    ca_file: Option<&std::path::Path>,
    identity: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<reqwest::Client> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| Error::Setup(format!("reading {}: {e}", path.display())))
    };
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(2));
    if let Some(path) = ca_file {
        let cert = reqwest::Certificate::from_pem(&read(path)?)
            .map_err(|e| Error::Setup(format!("CA {}: {e}", path.display())))?;
        builder = builder.add_root_certificate(cert);
    }
    if let Some((cert, key)) = identity {
        let mut pem = read(cert)?;
        pem.extend(read(key)?);
        let identity = reqwest::Identity::from_pem(&pem)
            .map_err(|e| Error::Setup(format!("client certificate {}: {e}", cert.display())))?;
        builder = builder.identity(identity);
    }
    builder
        .build()
        .map_err(|e| Error::Setup(format!("building HTTP client: {e}")))
}

/// `GET {api_url}/cluster`.
pub(crate) async fn cluster(http: &reqwest::Client, api_url: &str) -> Result<Vec<PatroniMember>> {
    let url = format!("{api_url}/cluster");
    let rest_err = |message: String| Error::Rest {
        url: url.clone(),
        message,
    };
    let resp = http.get(&url).send().await.map_err(|e| rest_err(e.to_string()))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| rest_err(e.to_string()))?;
    if !status.is_success() {
        return Err(rest_err(format!("HTTP {status}: {body}")));
    }
    let doc: ClusterDoc = serde_json::from_str(&body).map_err(|e| rest_err(format!("bad JSON ({e}): {body}")))?;
    Ok(doc.members)
}

/// `POST {api_url}/{endpoint}` with a JSON body and basic auth; returns Patroni's text answer.
pub(crate) async fn post(
    http: &reqwest::Client,
    api_url: &str,
    endpoint: &str,
    body: &Value,
    auth: Option<&Credentials>,
    timeout: Duration,
) -> Result<String> {
    let url = format!("{api_url}/{endpoint}");
    let rest_err = |message: String| Error::Rest {
        url: url.clone(),
        message,
    };
    let mut req = http.post(&url).json(body).timeout(timeout);
    if let Some(c) = auth {
        req = req.basic_auth(&c.username, Some(c.password.expose()));
    }
    let resp = req.send().await.map_err(|e| rest_err(e.to_string()))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| rest_err(e.to_string()))?;
    if status.is_success() {
        Ok(text)
    } else {
        Err(rest_err(format!("HTTP {status}: {text}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_patroni_3_and_4_cluster_members() {
        let v3 = r#"{"members":[
            {"name":"node1","role":"leader","state":"running","api_url":"http://127.0.0.1:8008/patroni","host":"127.0.0.1","port":5432,"timeline":1},
            {"name":"node2","role":"replica","state":"streaming","host":"127.0.0.1","port":5433,"timeline":1,"lag":0},
            {"name":"node3","role":"replica","state":"stopped","lag":"unknown"}]}"#;
        let doc: ClusterDoc = serde_json::from_str(v3).expect("parses");
        assert_eq!(doc.members[0].role, "leader");
        assert_eq!(doc.members[0].lag, None);
        assert_eq!(doc.members[1].lag, Some(0));
        assert_eq!(doc.members[2].lag, None);
        assert_eq!(doc.members[2].timeline, None);
    }
}
