//! HTTP to the Patroni REST API: bounded bodies, basic auth on unsafe calls, endpoint fallback.

use std::time::Duration;

use pgha_client::Connector;
use reqwest::Method;
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};

/// Patroni answers are small; anything larger than this is refused, not buffered.
const MAX_BODY: usize = 4 << 20;

/// One answer from Patroni.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// The body as text (unsafe endpoints answer in plain text), trimmed and bounded for messages.
    pub(crate) fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if text.chars().count() > 500 {
            format!("{}…", text.chars().take(500).collect::<String>())
        } else {
            text.to_owned()
        }
    }

    pub(crate) fn json(&self, what: &str) -> Result<Value> {
        serde_json::from_slice(&self.body).map_err(|e| Error::protocol(format!("Patroni {what}: {e}")))
    }
}

/// The base URL of a member's REST API from its `api_url` (`http://h:8008/patroni`).
pub(crate) fn base_of(api_url: &str) -> String {
    api_url
        .trim_end_matches('/')
        .trim_end_matches("/patroni")
        .trim_end_matches('/')
        .to_owned()
}

/// Why a request failed: before anything reached Patroni (safe to send elsewhere), or after
/// (Patroni may have acted on it).
#[derive(Debug)]
pub(crate) enum Failure {
    /// The connection could not be made; nothing was sent.
    NotSent(Error),
    /// The request may have been received.
    MaybeSent(Error),
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        match f {
            Failure::NotSent(e) => e,
            Failure::MaybeSent(e) => {
                e.prefixed("the request may have reached Patroni; check the cluster before retrying")
            }
        }
    }
}

/// Sends one request to `base + path` and reads the body up to [`MAX_BODY`].
pub(crate) async fn request(
    connector: &Connector,
    method: Method,
    base: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Reply> {
    send(connector, method, base, path, body).await.map_err(Error::from)
}

/// Like [`request`], telling whether a failed request may have been received.
pub(crate) async fn send(
    connector: &Connector,
    method: Method,
    base: &str,
    path: &str,
    body: Option<&Value>,
) -> std::result::Result<Reply, Failure> {
    let url = format!("{base}{path}");
    // GETs are bounded by the Patroni timeout (connect and each read) and twice that in all (a
    // body that never ends). Unsafe calls get a minute: Patroni answers a switchover only once
    // it is done (up to 20 s with default settings) and a restart once PostgreSQL is up again.
    let limit = if method == Method::GET {
        connector.patroni_timeout() * 2
    } else {
        Duration::from_secs(60)
    };
    let mut req = connector.http().request(method.clone(), &url).timeout(limit);
    if method != Method::GET {
        if let Some((user, password)) = connector.patroni_auth() {
            req = req.basic_auth(user, password.map(|p| p.expose()));
        }
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    let exchange = async {
        let mut resp = req.send().await.map_err(|e| {
            let connect = e.is_connect();
            let err = Error::new(ErrorKind::Unreachable, format!("{method} {url}")).with_source(e);
            if connect {
                Failure::NotSent(err)
            } else {
                Failure::MaybeSent(err)
            }
        })?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            Failure::MaybeSent(
                Error::new(ErrorKind::Unreachable, format!("{method} {url}: reading the body")).with_source(e),
            )
        })? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(Failure::MaybeSent(Error::protocol(format!(
                    "{method} {url}: body larger than {MAX_BODY} bytes"
                ))));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply { status, body })
    };
    tokio::time::timeout(limit, exchange).await.map_err(|_| {
        Failure::MaybeSent(Error::new(
            ErrorKind::Unreachable,
            format!("{method} {url}: no complete answer within {limit:?}"),
        ))
    })?
}

/// `GET path` on each endpoint in turn; the first `200` wins. The error names every failure.
pub(crate) async fn get_any(connector: &Connector, endpoints: &[String], path: &str) -> Result<(String, Reply)> {
    let mut failures = Vec::new();
    for base in endpoints {
        match request(connector, Method::GET, base, path, None).await {
            Ok(reply) if reply.status == 200 => return Ok((base.clone(), reply)),
            Ok(reply) => failures.push(format!("{base}: HTTP {} {}", reply.status, reply.text())),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if failures.is_empty() {
        return Err(Error::usage("no Patroni URL configured (`patroni`)").with_settings(&["patroni"]));
    }
    Err(Error::new(
        ErrorKind::Unreachable,
        format!("GET {path}: no Patroni endpoint answered: {}", failures.join("; ")),
    ))
}

/// Turns a non-2xx answer to an unsafe call into an [`ErrorKind::Patroni`] error.
pub(crate) fn expect_success(what: &str, reply: Reply) -> Result<Reply> {
    match reply.status {
        200..=299 => Ok(reply),
        401 => Err(Error::patroni(
            401,
            format!(
                "{what}: authentication failed ({}); set `patroni_user` and `patroni_password`",
                reply.text()
            ),
        )
        .with_settings(&["patroni_user", "patroni_password"])),
        403 => Err(Error::patroni(
            403,
            format!(
                "{what}: access denied by the REST API allowlist or client-certificate rules ({})",
                reply.text()
            ),
        )),
        status => Err(Error::patroni(
            status,
            format!("{what}: HTTP {status}: {}", reply.text()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_drops_the_patroni_suffix() {
        assert_eq!(base_of("http://127.0.0.1:8008/patroni"), "http://127.0.0.1:8008");
        assert_eq!(base_of("https://h:8008/"), "https://h:8008");
    }

    #[test]
    fn error_statuses_become_typed_errors() {
        let reply = |status, body: &str| Reply {
            status,
            body: body.as_bytes().to_vec(),
        };
        let e = expect_success(
            "switchover",
            reply(412, "candidate name does not match with sync_standby"),
        )
        .expect_err("must be refused");
        assert_eq!((e.kind(), e.http_status()), (ErrorKind::Patroni, Some(412)));
        assert!(e.to_string().contains("sync_standby"), "{e}");
        let e = expect_success("restart", reply(401, "not authenticated")).expect_err("must be refused");
        assert!(e.to_string().contains("`patroni_user`"), "{e}");
        assert_eq!(e.settings(), ["patroni_user", "patroni_password"]);
        assert!(expect_success("reload", reply(202, "reload scheduled")).is_ok());
    }

    #[test]
    fn long_bodies_are_cut_on_a_char_boundary() {
        let reply = Reply {
            status: 500,
            body: "é".repeat(600).into_bytes(),
        };
        assert_eq!(reply.text().chars().count(), 501);
    }
}
