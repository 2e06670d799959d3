//! The one way pgha reaches Patroni's REST API, for discovery and for [`Connector`] (pgha-admin):
//! one base-URL rule, one credentials rule, one body limit, one timeout policy, and a failure
//! that says whether the request may have reached Patroni.
//!
//! [`Connector`]: crate::Connector

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Url};
use serde_json::Value;

use crate::config::{Secret, Settings};
use crate::error::chain;

/// Larger answers are refused, not buffered: a real `/cluster` of even a hundred members, a long
/// `/history` or the dynamic configuration is far smaller.
pub(crate) const MAX_BODY: usize = 1 << 20;

/// The least time an unsafe call (`POST`, `PATCH`, `DELETE`…) is given: Patroni answers a
/// switchover only once it is done (up to 20 s with default settings) and a restart once
/// PostgreSQL is up again.
const UNSAFE_TIMEOUT: Duration = Duration::from_secs(60);

/// The base URL (`scheme://host:port/`) of a member's `api_url` (`…/patroni`), or `None` if it
/// is not an `http(s)` URL.
///
/// ```
/// use pgha_client::patroni::base_url;
///
/// let base = base_url("http://10.0.0.1:8008/patroni").expect("an http URL");
/// assert_eq!(base.as_str(), "http://10.0.0.1:8008/");
/// assert!(base_url("postgres://10.0.0.1:5432").is_none());
/// ```
pub fn base_url(api_url: &str) -> Option<Url> {
    let mut url = Url::parse(api_url).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    url.set_path("/");
    url.set_query(None);
    url.set_fragment(None);
    Some(url)
}

/// Whether the Patroni credentials may be sent with `method` to `base`: always to an endpoint
/// the user configured, and over HTTPS (verified against the configured CA); in clear text to
/// another address only with an unsafe method (`POST`, `PATCH`…). Those are operator actions on
/// a member the caller chose (a restart of the member at its advertised `api_url`, as
/// `patronictl` does); the reads that discovery sends to addresses learned from answers carry no
/// credentials in clear text.
pub(crate) fn may_send_credentials(method: &Method, base: &Url, configured: &[Url]) -> bool {
    !method.is_safe() || configured.contains(base) || base.scheme() == "https"
}

/// `base` joined with `path` (`/cluster` or `cluster`): a path in `base` is kept as a prefix.
fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path.trim_start_matches('/'));
    url.set_path(&joined);
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// One answer from Patroni's REST API, whatever its status; its body read up to 1 MiB.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body, at most 1 MiB.
    pub body: Vec<u8>,
    /// Whether the configured basic-auth credentials went with the request: they go with unsafe
    /// methods, and with safe ones only to a configured Patroni URL or over HTTPS (see
    /// [`Connector::patroni_send`]).
    ///
    /// [`Connector::patroni_send`]: crate::Connector::patroni_send
    pub credentials_sent: bool,
}

impl Reply {
    /// A reply as if `status` and `body` had been received without credentials (for tests and
    /// fakes).
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            body: body.into(),
            credentials_sent: false,
        }
    }

    /// Whether the status is `2xx`.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The reply if its status is `2xx`, else `HTTP <status> <reason>` (the status check of
    /// discovery, which needs no body of a refusal).
    pub(crate) fn success(self) -> Result<Self, String> {
        if self.is_success() {
            return Ok(self);
        }
        let reason = reqwest::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason());
        Err(match reason {
            Some(reason) => format!("HTTP {} {reason}", self.status),
            None => format!("HTTP {}", self.status),
        })
    }
}

/// Why a request to Patroni's REST API got no usable answer. Messages never contain the URL (the
/// caller knows it) nor the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// Nothing reached Patroni: the base is not an `http(s)` URL, or no connection could be made.
    /// The request can safely be sent to another endpoint.
    NotSent(String),
    /// The request may have been received, and acted on: the connection failed after it was
    /// sent, or no complete answer came in time. Check the cluster before sending it again.
    MaybeSent(String),
    /// Patroni answered with a body larger than 1 MiB, which was not read. The request was
    /// received.
    TooLarge,
}

impl Failure {
    /// Whether the request certainly never reached Patroni ([`Failure::NotSent`]).
    pub fn is_not_sent(&self) -> bool {
        matches!(self, Self::NotSent(_))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSent(m) | Self::MaybeSent(m) => f.write_str(m),
            Self::TooLarge => write!(f, "answer larger than {MAX_BODY} bytes"),
        }
    }
}

impl std::error::Error for Failure {}

/// The HTTP client for Patroni with the rules above: shared (cheaply cloned) by the topology
/// worker, its discovery polls and a [`Connector`](crate::Connector).
#[derive(Clone)]
pub(crate) struct Api(Arc<Inner>);

struct Inner {
    http: reqwest::Client,
    configured: Vec<Url>,
    credentials: Option<(String, Option<Secret>)>,
    timeout: Duration,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("configured", &self.0.configured)
            .field("user", &self.0.credentials.as_ref().map(|(u, _)| u))
            .field("timeout", &self.0.timeout)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// The client for `settings`: its Patroni CA, timeout, credentials and configured URLs.
    pub(crate) fn new(settings: &Settings) -> crate::Result<Self> {
        Ok(Self(Arc::new(Inner {
            http: crate::tls::patroni_http(settings)?,
            configured: settings.patroni_urls.clone(),
            credentials: settings
                .patroni_user
                .clone()
                .map(|user| (user, settings.patroni_password.clone())),
            timeout: settings.patroni_timeout,
        })))
    }

    /// How long one request may take in all (connecting, sending, the whole answer): the Patroni
    /// timeout for safe methods (`GET`…), at least [`UNSAFE_TIMEOUT`] for the others.
    pub(crate) fn limit(&self, method: &Method) -> Duration {
        if method.is_safe() {
            self.0.timeout
        } else {
            self.0.timeout.max(UNSAFE_TIMEOUT)
        }
    }

    /// `GET base/path`.
    pub(crate) async fn get(&self, base: &Url, path: &str) -> Result<Reply, Failure> {
        self.send(Method::GET, base, path, None).await
    }

    /// `method base/path` with an optional JSON body: credentials by [`may_send_credentials`],
    /// no redirects, bounded by [`limit`](Self::limit), the body read up to [`MAX_BODY`].
    pub(crate) async fn send(
        &self,
        method: Method,
        base: &Url,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let limit = self.limit(&method);
        let credentials = self
            .0
            .credentials
            .as_ref()
            .filter(|_| may_send_credentials(&method, base, &self.0.configured));
        let mut request = self.0.http.request(method, endpoint(base, path)).timeout(limit);
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, password.as_ref().map(Secret::expose));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        tokio::time::timeout(limit, read(request, credentials.is_some()))
            .await
            .unwrap_or_else(|_| Err(Failure::MaybeSent(format!("no complete answer within {limit:?}"))))
    }

    /// [`send`](Self::send) to a base given as text (`http://host:8008`).
    pub(crate) async fn send_to(
        &self,
        method: Method,
        base: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, Failure> {
        let url = Url::parse(base)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| Failure::NotSent(format!("{base:?} is not an http(s) URL")))?;
        self.send(method, &url, path, body).await
    }
}

/// Sends `request` and reads the answer, refusing a body larger than [`MAX_BODY`] before reading
/// it when its length is announced, and as soon as it grows past it otherwise.
async fn read(request: reqwest::RequestBuilder, credentials_sent: bool) -> Result<Reply, Failure> {
    let mut response = request.send().await.map_err(|e| {
        let connect = e.is_connect();
        let text = chain(&e.without_url());
        if connect {
            Failure::NotSent(text)
        } else {
            Failure::MaybeSent(text)
        }
    })?;
    let status = response.status().as_u16();
    if response.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(Failure::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Failure::MaybeSent(format!("reading the answer: {}", chain(&e.without_url()))))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(Failure::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Reply {
        status,
        body,
        credentials_sent,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn credentials_go_to_configured_endpoints_over_https_and_with_unsafe_methods_only() {
        let url = |s: &str| Url::parse(s).expect("url");
        let configured = [url("http://10.0.0.1:8008/")];
        assert!(may_send_credentials(&Method::GET, &configured[0], &configured));
        assert!(!may_send_credentials(
            &Method::GET,
            &url("http://10.0.0.2:8008/"),
            &configured
        ));
        assert!(!may_send_credentials(
            &Method::GET,
            &url("http://evil.example:8008/"),
            &configured
        ));
        assert!(may_send_credentials(
            &Method::GET,
            &url("https://10.0.0.2:8008/"),
            &configured
        ));
        assert!(may_send_credentials(
            &Method::POST,
            &url("http://10.0.0.2:8008/"),
            &configured
        ));
        assert!(may_send_credentials(
            &Method::PATCH,
            &url("http://10.0.0.2:8008/"),
            &configured
        ));
    }

    #[test]
    fn bases_and_paths() {
        let base = base_url("https://h:8008/patroni?x#y").expect("url");
        assert_eq!(base.as_str(), "https://h:8008/");
        assert_eq!(
            base_url("http://127.0.0.1:8008").expect("url").as_str(),
            "http://127.0.0.1:8008/"
        );
        assert!(base_url("ftp://h/patroni").is_none());
        assert!(base_url("not a url").is_none());
        assert_eq!(endpoint(&base, "cluster").as_str(), "https://h:8008/cluster");
        assert_eq!(endpoint(&base, "/cluster").as_str(), "https://h:8008/cluster");
        let prefixed = Url::parse("http://proxy/a/").expect("url");
        assert_eq!(endpoint(&prefixed, "/history").as_str(), "http://proxy/a/history");
        let prefixed = Url::parse("http://proxy/a").expect("url");
        assert_eq!(endpoint(&prefixed, "history").as_str(), "http://proxy/a/history");
    }

    #[test]
    fn the_status_check_names_the_status() {
        assert!(Reply::new(200, "{}").success().is_ok());
        assert_eq!(
            Reply::new(503, "").success().expect_err("refused"),
            "HTTP 503 Service Unavailable"
        );
        assert_eq!(Reply::new(599, "").success().expect_err("refused"), "HTTP 599");
    }

    /// A one-request-per-connection HTTP server on loopback answering `answer` to everything and
    /// keeping each request's head.
    async fn server(answer: Vec<u8>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (answer, seen) = (answer.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    if let Ok(mut s) = seen.lock() {
                        s.push(String::from_utf8_lossy(&head).into_owned());
                    }
                    // The peer may hang up once it has seen enough.
                    let _ = stream.write_all(&answer).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        (url, heads)
    }

    /// An `Api` with `configured` and a never-contacted TEST-NET endpoint as the Patroni URLs.
    fn api(configured: &[&str], user: Option<&str>) -> Api {
        let mut builder = crate::Client::builder()
            .patroni(configured.iter().map(|s| (*s).to_owned()))
            .patroni(["http://192.0.2.1:8008"])
            .user("nobody")
            .patroni_timeout(Duration::from_secs(2));
        if let Some(user) = user {
            builder = builder.patroni_auth(user, "sesame");
        }
        Api::new(&builder.settings().expect("settings")).expect("api")
    }

    fn answer(head: &str, body: &[u8]) -> Vec<u8> {
        let mut a = head.replace('\n', "\r\n").into_bytes();
        a.extend_from_slice(body);
        a
    }

    #[tokio::test]
    async fn bodies_up_to_the_limit_are_read_larger_ones_refused() {
        let exact = vec![b'x'; MAX_BODY];
        let (url, _) = server(answer(
            &format!("HTTP/1.1 200 OK\nContent-Length: {MAX_BODY}\nConnection: close\n\n"),
            &exact,
        ))
        .await;
        let reply = api(&[&url], None).send_to(Method::GET, &url, "/cluster", None).await;
        assert_eq!(reply.map(|r| r.body.len()), Ok(MAX_BODY));

        // Announced too large: refused without reading it.
        let (url, _) = server(answer(
            "HTTP/1.1 200 OK\nContent-Length: 67108864\nConnection: close\n\n",
            b"xx",
        ))
        .await;
        let failure = api(&[&url], None).send_to(Method::GET, &url, "/cluster", None).await;
        assert_eq!(failure, Err(Failure::TooLarge));

        // Not announced (read until close): refused once it grows past the limit.
        let (url, _) = server(answer(
            "HTTP/1.1 200 OK\nConnection: close\n\n",
            &vec![b'x'; MAX_BODY + 1],
        ))
        .await;
        let failure = api(&[&url], None).send_to(Method::GET, &url, "/cluster", None).await;
        assert_eq!(failure, Err(Failure::TooLarge));
        assert_eq!(Failure::TooLarge.to_string(), "answer larger than 1048576 bytes");
    }

    #[tokio::test]
    async fn credentials_go_only_where_the_rule_allows() {
        let ok = answer("HTTP/1.1 200 OK\nContent-Length: 2\nConnection: close\n\n", b"{}");
        let (configured, configured_heads) = server(ok.clone()).await;
        let (learned, learned_heads) = server(ok).await;
        let api = api(&[&configured], Some("patroni"));
        let has_auth = |heads: &Mutex<Vec<String>>| {
            let heads = heads.lock().expect("heads");
            heads
                .iter()
                .map(|h| h.to_ascii_lowercase().contains("authorization: basic"))
                .collect::<Vec<_>>()
        };
        for method in [Method::GET, Method::POST] {
            let reply = api.send_to(method, &configured, "/restart", None).await.expect("reply");
            assert!(reply.credentials_sent);
        }
        assert_eq!(has_auth(&configured_heads), [true, true]);
        // A learned plain-HTTP endpoint: none with a read, sent with an action on it.
        let read = api
            .send_to(Method::GET, &learned, "/cluster", None)
            .await
            .expect("reply");
        assert!(
            !read.credentials_sent,
            "a read of a learned plain-HTTP endpoint carries none"
        );
        let restart = api
            .send_to(Method::POST, &learned, "/restart", Some(&serde_json::json!({})))
            .await
            .expect("reply");
        assert!(restart.credentials_sent, "an unsafe request carries them");
        assert_eq!(has_auth(&learned_heads), [false, true]);
    }

    #[tokio::test]
    async fn failures_say_whether_the_request_may_have_been_sent() {
        let api = api(&[], None);
        // Nothing listens on port 1.
        let failure = api
            .send_to(Method::POST, "http://127.0.0.1:1", "/switchover", None)
            .await
            .expect_err("refused");
        assert!(failure.is_not_sent(), "{failure:?}");
        let failure = api
            .send_to(Method::GET, "file:///etc/passwd", "/cluster", None)
            .await
            .expect_err("not http");
        assert!(failure.is_not_sent(), "{failure:?}");
        // Accepted, then no answer: it may have been received.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let started = std::time::Instant::now();
        let failure = api
            .send_to(Method::GET, &url, "/cluster", None)
            .await
            .expect_err("no answer");
        assert!(matches!(failure, Failure::MaybeSent(_)), "{failure:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        hold.abort();
    }

    #[test]
    fn unsafe_calls_get_the_time_patroni_needs() {
        let api = api(&[], None);
        assert_eq!(api.limit(&Method::GET), Duration::from_secs(2));
        assert_eq!(api.limit(&Method::POST), UNSAFE_TIMEOUT);
    }
}
