//! etcd v3 through its gRPC JSON gateway: the version probe, authentication, a range over a
//! prefix and a streaming watch — what Patroni's own etcd3 client uses, over the HTTP client
//! pgha already has (no protoc, no gRPC stack).
//!
//! The gateway speaks JSON with base64 keys and values and 64-bit integers as strings; a watch is
//! one long `POST /v3/watch` whose response is a stream of newline-separated JSON objects
//! (`{"result": {...}}` or `{"error": {...}}`). A canceled watch does not end that stream (Patroni
//! fixed the same trap in 4.0.7), so the caller drops it itself.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use reqwest::Url;
use serde::{Deserialize, Deserializer};

use crate::config::Secret;

/// A range answer or one watch message larger than this is refused: Patroni's keys for one
/// cluster are a few KiB.
const MAX_MESSAGE: usize = 4 << 20;

/// An etcd endpoint ready for requests: its API path prefix and, with authentication, a token.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) base: Url,
    api: &'static str,
    token: Option<Secret>,
}

/// The gateway client: one HTTP client for every endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Gateway {
    http: reqwest::Client,
    credentials: Option<(String, Secret)>,
    timeout: Duration,
}

/// The header of every answer.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct ResponseHeader {
    #[serde(default, deserialize_with = "int64")]
    pub(crate) revision: i64,
}

/// One key and its value at `mod_revision`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct KeyValue {
    #[serde(deserialize_with = "bytes")]
    pub(crate) key: Vec<u8>,
    #[serde(default, deserialize_with = "bytes")]
    pub(crate) value: Vec<u8>,
    #[serde(default, deserialize_with = "int64")]
    pub(crate) mod_revision: i64,
}

/// A range answer: the keys and the store's revision when they were read.
#[derive(Debug, Deserialize)]
pub(crate) struct RangeResponse {
    #[serde(default)]
    pub(crate) header: ResponseHeader,
    #[serde(default)]
    pub(crate) kvs: Vec<KeyValue>,
}

/// A transaction's answer: whether its comparison held, and the answer of each operation it
/// then ran (etcd leaves `succeeded` out when it is false).
#[derive(Debug, Deserialize)]
pub(crate) struct TxnResponse {
    #[serde(default)]
    pub(crate) header: ResponseHeader,
    #[serde(default)]
    pub(crate) succeeded: bool,
    #[serde(default)]
    pub(crate) responses: Vec<TxnOpResponse>,
}

/// The answer of one operation of a transaction.
#[derive(Debug, Deserialize)]
pub(crate) struct TxnOpResponse {
    /// A deletion's deleted keys, with their last values (`prev_kv`).
    #[serde(default)]
    pub(crate) response_delete_range: Option<DeleteRangeResponse>,
    /// A read's keys.
    #[serde(default)]
    pub(crate) response_range: Option<RangeResponse>,
}

/// The keys a deletion deleted.
#[derive(Debug, Deserialize)]
pub(crate) struct DeleteRangeResponse {
    #[serde(default)]
    pub(crate) prev_kvs: Vec<KeyValue>,
}

/// A change of one key.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// Created or overwritten.
    Put(KeyValue),
    /// Deleted (a lease expiring deletes its keys too).
    Delete(KeyValue),
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            // PUT is the enum's zero value, which the gateway leaves out.
            #[serde(rename = "type", default)]
            kind: Option<String>,
            kv: KeyValue,
        }
        let raw = Raw::deserialize(d)?;
        match raw.kind.as_deref() {
            None | Some("PUT") => Ok(Event::Put(raw.kv)),
            Some("DELETE") => Ok(Event::Delete(raw.kv)),
            Some(other) => Err(serde::de::Error::custom(format!("unknown event type {other:?}"))),
        }
    }
}

/// One message of a watch stream.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WatchResponse {
    #[serde(default)]
    pub(crate) header: ResponseHeader,
    #[serde(default)]
    pub(crate) created: bool,
    #[serde(default)]
    pub(crate) canceled: bool,
    #[serde(default, deserialize_with = "int64")]
    pub(crate) compact_revision: i64,
    #[serde(default)]
    pub(crate) cancel_reason: String,
    #[serde(default)]
    pub(crate) events: Vec<Event>,
}

#[derive(Debug, Deserialize)]
struct StreamMessage {
    result: Option<WatchResponse>,
    error: Option<GatewayError>,
}

#[derive(Debug, Deserialize)]
struct GatewayError {
    #[serde(default)]
    message: String,
}

fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Text(String),
        Number(i64),
    }
    match Int::deserialize(d)? {
        Int::Number(n) => Ok(n),
        Int::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(d)?;
    B64.decode(text).map_err(serde::de::Error::custom)
}

/// The end of the range holding every key that starts with `prefix` (the prefix with its last
/// byte incremented, as etcd's clients compute it).
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    // Only 0xFF bytes (or nothing): every key from `prefix` on.
    vec![0]
}

/// The gateway's path prefix for an etcd cluster version (`/version`'s `etcdcluster`): `/v3` from
/// 3.4 on, `/v3beta` on 3.3; earlier versions (whose watch Patroni does not use either) are refused.
fn api_prefix(cluster_version: &str) -> Result<&'static str, String> {
    let mut parts = cluster_version.split('.').map(str::parse::<u32>);
    match (parts.next(), parts.next()) {
        (Some(Ok(3)), Some(Ok(minor))) if minor >= 4 => Ok("/v3"),
        (Some(Ok(3)), Some(Ok(3))) => Ok("/v3beta"),
        (Some(Ok(major)), Some(Ok(_))) if major > 3 => Ok("/v3"),
        _ => Err(format!(
            "etcd cluster version {cluster_version:?} is not supported (3.3 or later is needed)"
        )),
    }
}

impl Gateway {
    /// `http` must not have a total timeout (a watch lasts as long as it is healthy): every
    /// request other than the watch stream is bounded by `timeout` here.
    pub(crate) fn new(http: reqwest::Client, credentials: Option<(String, Secret)>, timeout: Duration) -> Self {
        Self {
            http,
            credentials,
            timeout,
        }
    }

    /// Reads the cluster version, picks the API prefix, and authenticates when credentials are set.
    pub(crate) async fn connect(&self, base: &Url) -> Result<Endpoint, String> {
        #[derive(Deserialize)]
        struct Version {
            #[serde(default)]
            etcdcluster: String,
        }
        let url = base.join("version").map_err(|e| e.to_string())?;
        let body = self.send(self.http.get(url)).await?;
        let version: Version = serde_json::from_slice(&body).map_err(|e| format!("/version: {e}"))?;
        // A member that has not joined a cluster yet reports "not_decided".
        let api = api_prefix(&version.etcdcluster)?;
        let mut endpoint = Endpoint {
            base: base.clone(),
            api,
            token: None,
        };
        if let Some((name, password)) = &self.credentials {
            #[derive(Deserialize)]
            struct Token {
                token: Secret,
            }
            let body = serde_json::json!({ "name": name, "password": password.expose() });
            let answer = self.post(&endpoint, "auth/authenticate", &body).await?;
            let token: Token =
                serde_json::from_slice(&answer).map_err(|e| format!("etcd authentication answer: {e}"))?;
            endpoint.token = Some(token.token);
        }
        Ok(endpoint)
    }

    /// Every key under `prefix`, read linearizably (through the etcd leader: a member cut off from
    /// its quorum cannot answer it).
    pub(crate) async fn range_prefix(&self, endpoint: &Endpoint, prefix: &[u8]) -> Result<RangeResponse, String> {
        let body = serde_json::json!({
            "key": B64.encode(prefix),
            "range_end": B64.encode(prefix_end(prefix)),
        });
        let answer = self.post(endpoint, "kv/range", &body).await?;
        serde_json::from_slice(&answer).map_err(|e| format!("etcd range answer: {e}"))
    }

    /// Deletes every key under `prefix` in one transaction if `guard` holds `value` (`None`: if
    /// `guard` does not exist) — what `patronictl remove` does, without its window between the
    /// check and the deletion. Needs write permission on the prefix.
    pub(crate) async fn delete_prefix_if(
        &self,
        endpoint: &Endpoint,
        prefix: &[u8],
        guard: &[u8],
        value: Option<&[u8]>,
    ) -> Result<TxnResponse, String> {
        let compare = match value {
            Some(v) => serde_json::json!({
                "key": B64.encode(guard), "target": "VALUE", "result": "EQUAL", "value": B64.encode(v),
            }),
            None => serde_json::json!({
                "key": B64.encode(guard), "target": "CREATE", "result": "EQUAL", "create_revision": "0",
            }),
        };
        let body = serde_json::json!({
            "compare": [compare],
            "success": [{ "request_delete_range": {
                "key": B64.encode(prefix),
                "range_end": B64.encode(prefix_end(prefix)),
                "prev_kv": true,
            }}],
            "failure": [{ "request_range": { "key": B64.encode(guard) } }],
        });
        let answer = self.post(endpoint, "kv/txn", &body).await?;
        serde_json::from_slice(&answer).map_err(|e| format!("etcd txn answer: {e}"))
    }

    /// One key as this member has it (a serializable read: answered locally, without a round
    /// through the raft leader).
    pub(crate) async fn get_local(&self, endpoint: &Endpoint, key: &[u8]) -> Result<RangeResponse, String> {
        let body = serde_json::json!({ "key": B64.encode(key), "serializable": true });
        let answer = self.post(endpoint, "kv/range", &body).await?;
        serde_json::from_slice(&answer).map_err(|e| format!("etcd range answer: {e}"))
    }

    /// Opens a watch of every key under `prefix` from `start_revision` (inclusive), with progress
    /// notifications, on a member that has a leader (`require leader`: a member that loses its
    /// leader cancels the stream instead of going silent).
    pub(crate) async fn watch(
        &self,
        endpoint: &Endpoint,
        prefix: &[u8],
        start_revision: i64,
    ) -> Result<WatchStream, String> {
        let body = serde_json::json!({
            "create_request": {
                "key": B64.encode(prefix),
                "range_end": B64.encode(prefix_end(prefix)),
                "start_revision": start_revision.to_string(),
                "progress_notify": true,
            }
        });
        let request = self
            .request(endpoint, "watch")?
            .header("Grpc-Metadata-hasleader", "true")
            .json(&body);
        let response = tokio::time::timeout(self.timeout, request.send())
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
            .map_err(|e| crate::error::chain(&e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("watch: HTTP {}", response.status()));
        }
        Ok(WatchStream {
            response,
            buffer: Vec::new(),
        })
    }

    fn request(&self, endpoint: &Endpoint, path: &str) -> Result<reqwest::RequestBuilder, String> {
        let url = endpoint
            .base
            .join(&format!("{}/{path}", endpoint.api))
            .map_err(|e| e.to_string())?;
        let mut request = self.http.post(url);
        if let Some(token) = &endpoint.token {
            request = request.header(reqwest::header::AUTHORIZATION, token.expose());
        }
        Ok(request)
    }

    async fn post(&self, endpoint: &Endpoint, path: &str, body: &serde_json::Value) -> Result<Vec<u8>, String> {
        let request = self.request(endpoint, path)?.json(body);
        self.send(request).await
    }

    /// Sends `request` and reads its body, within the timeout and the size limit.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, String> {
        let exchange = async {
            let mut response = request
                .send()
                .await
                .map_err(|e| crate::error::chain(&e.without_url()))?;
            let status = response.status();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| e.without_url().to_string())? {
                if body.len() + chunk.len() > MAX_MESSAGE {
                    return Err(format!("answer larger than {MAX_MESSAGE} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            if !status.is_success() {
                let detail = serde_json::from_slice::<GatewayError>(&body)
                    .map(|e| e.message)
                    .unwrap_or_default();
                return Err(format!("HTTP {status} {detail}").trim_end().to_owned());
            }
            Ok(body)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }
}

/// An open watch: messages in the order etcd sent them.
#[derive(Debug)]
pub(crate) struct WatchStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl WatchStream {
    /// The next message; `Err` when the stream failed or ended (it never ends while healthy).
    pub(crate) async fn next(&mut self) -> Result<WatchResponse, String> {
        loop {
            if let Some(message) = take_message(&mut self.buffer)? {
                return Ok(message);
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => {
                    if self.buffer.len() + chunk.len() > MAX_MESSAGE {
                        return Err(format!("watch message larger than {MAX_MESSAGE} bytes"));
                    }
                    self.buffer.extend_from_slice(&chunk);
                }
                Ok(None) => return Err("the watch stream ended".into()),
                Err(e) => return Err(crate::error::chain(&e.without_url())),
            }
        }
    }
}

/// Takes the first complete (newline-terminated) message out of `buffer`, if there is one.
fn take_message(buffer: &mut Vec<u8>) -> Result<Option<WatchResponse>, String> {
    loop {
        let Some(end) = buffer.iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let line: Vec<u8> = buffer.drain(..=end).collect();
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let message: StreamMessage =
            serde_json::from_slice(&line).map_err(|e| format!("unreadable watch message: {e}"))?;
        return match (message.result, message.error) {
            (_, Some(error)) => Err(format!("watch error: {}", error.message)),
            (Some(result), None) => Ok(Some(result)),
            (None, None) => Err("watch message with neither result nor error".into()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_that_can_be() {
        assert_eq!(prefix_end(b"/service/a/"), b"/service/a0".to_vec());
        assert_eq!(prefix_end(&[b'a', 0xFF]), b"b".to_vec());
        assert_eq!(prefix_end(&[0xFF, 0xFF]), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn the_api_prefix_follows_the_cluster_version() {
        assert_eq!(api_prefix("3.4.0"), Ok("/v3"));
        assert_eq!(api_prefix("3.6.0"), Ok("/v3"));
        assert_eq!(api_prefix("3.3.0"), Ok("/v3beta"));
        assert!(api_prefix("3.2.0").is_err());
        assert!(api_prefix("not_decided").is_err());
        assert!(api_prefix("").is_err());
    }

    // Messages as etcd 3.4.23's gateway sent them (recorded on this machine).
    const CREATED: &str =
        r#"{"result":{"header":{"cluster_id":"1","member_id":"2","revision":"2","raft_term":"2"},"created":true}}"#;
    const PUT: &str = r#"{"result":{"header":{"revision":"2"},"events":[{"kv":{"key":"L3NlcnZpY2UveC9sZWFkZXI=","create_revision":"2","mod_revision":"2","version":"1","value":"bm9kZTE="}}]}}"#;
    const DELETE: &str = r#"{"result":{"header":{"revision":"3"},"events":[{"type":"DELETE","kv":{"key":"L3NlcnZpY2UveC9sZWFkZXI=","mod_revision":"3"}}]}}"#;
    const COMPACTED: &str =
        r#"{"result":{"header":{"cluster_id":"1","raft_term":"2"},"canceled":true,"compact_revision":"3"}}"#;

    #[test]
    fn stream_messages_are_split_on_newlines_and_parsed() {
        let mut buffer = format!("{CREATED}\n{PUT}\n{DELETE}\n{COMPACTED}\n{{\"resu").into_bytes();
        let created = take_message(&mut buffer).expect("ok").expect("message");
        assert!(created.created && created.events.is_empty());
        assert_eq!(created.header.revision, 2);
        let put = take_message(&mut buffer).expect("ok").expect("message");
        match &put.events[..] {
            [Event::Put(kv)] => {
                assert_eq!(kv.key, b"/service/x/leader");
                assert_eq!(kv.value, b"node1");
                assert_eq!(kv.mod_revision, 2);
            }
            other => panic!("{other:?}"),
        }
        let delete = take_message(&mut buffer).expect("ok").expect("message");
        assert!(matches!(&delete.events[..], [Event::Delete(kv)] if kv.mod_revision == 3 && kv.value.is_empty()));
        let compacted = take_message(&mut buffer).expect("ok").expect("message");
        assert!(compacted.canceled);
        assert_eq!(compacted.compact_revision, 3);
        // An incomplete message waits for more bytes.
        assert!(take_message(&mut buffer).expect("ok").is_none());
        assert_eq!(buffer, b"{\"resu");
    }

    #[test]
    fn transaction_answers_are_read_whether_the_comparison_held_or_not() {
        // As etcd 3.4.23's gateway answered (recorded on this machine): `succeeded` is left out
        // when false.
        let held = r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"4","raft_term":"2"},"succeeded":true,"responses":[{"response_delete_range":{"header":{"revision":"4"},"deleted":"2","prev_kvs":[{"key":"L3NlcnZpY2UveC9jb25maWc=","create_revision":"3","mod_revision":"3","version":"1","value":"e30="},{"key":"L3NlcnZpY2UveC9sZWFkZXI=","create_revision":"2","mod_revision":"2","version":"1","value":"bm9kZTE="}]}}]}"#;
        let txn: TxnResponse = serde_json::from_str(held).expect("parses");
        assert!(txn.succeeded);
        assert_eq!(txn.header.revision, 4);
        let deleted = txn.responses[0].response_delete_range.as_ref().expect("deletion");
        assert_eq!(deleted.prev_kvs[0].key, b"/service/x/config");
        assert_eq!(deleted.prev_kvs[0].value, b"{}");
        assert_eq!(deleted.prev_kvs[1].key, b"/service/x/leader");
        let failed = r#"{"header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"3","raft_term":"2"},"responses":[{"response_range":{"header":{"revision":"3"},"kvs":[{"key":"L3NlcnZpY2UveC9sZWFkZXI=","create_revision":"2","mod_revision":"2","version":"1","value":"bm9kZTE="}],"count":"1"}}]}"#;
        let txn: TxnResponse = serde_json::from_str(failed).expect("parses");
        assert!(!txn.succeeded);
        let read = txn.responses[0].response_range.as_ref().expect("read");
        assert_eq!(read.kvs[0].value, b"node1");
    }

    #[test]
    fn hostile_messages_are_errors_not_panics() {
        for bad in [
            "{\"error\":{\"grpc_code\":14,\"message\":\"etcdserver: no leader\"}}\n",
            "not json\n",
            "{}\n",
            "{\"result\":{\"events\":[{\"type\":\"EXPLODE\",\"kv\":{\"key\":\"\"}}]}}\n",
            "{\"result\":{\"events\":[{\"kv\":{\"key\":\"!!not base64\"}}]}}\n",
            "{\"result\":{\"header\":{\"revision\":\"-x\"}}}\n",
        ] {
            let mut buffer = bad.as_bytes().to_vec();
            assert!(take_message(&mut buffer).is_err(), "{bad}");
        }
        let mut buffer = b"\n \n".to_vec();
        assert!(take_message(&mut buffer).expect("blank lines").is_none());
    }
}
