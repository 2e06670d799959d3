//! Patroni's REST API for pgha-admin. Requests go through [`Connector::patroni_send`], the one
//! HTTP path to Patroni that pgha-client's discovery uses too (body limit, credentials rule,
//! timeouts, redirects, whether a failed request may have been received); this module maps its
//! answers and failures onto [`ErrorKind`] and tries the endpoints in turn for reads.

use pgha_client::patroni::{Failure, Reply};
use pgha_client::reqwest::Method;
use pgha_client::Connector;
use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};

/// What pgha-admin reads from a [`Reply`].
pub(crate) trait ReplyExt {
    /// The body as text (unsafe endpoints answer in plain text), trimmed and bounded for messages.
    fn text(&self) -> String;
    /// The body as JSON, or a [`Protocol`](ErrorKind::Protocol) error about `what`.
    fn json(&self, what: &str) -> Result<Value>;
}

impl ReplyExt for Reply {
    fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if text.chars().count() > 500 {
            format!("{}…", text.chars().take(500).collect::<String>())
        } else {
            text.to_owned()
        }
    }

    fn json(&self, what: &str) -> Result<Value> {
        serde_json::from_slice(&self.body).map_err(|e| Error::protocol(format!("Patroni {what}: {e}")))
    }
}

/// The base URL (`http://h:8008`) of a member's REST API from its `api_url`
/// (`http://h:8008/patroni`), or `None` if that is not an `http(s)` URL.
pub(crate) fn base_of(api_url: &str) -> Option<String> {
    pgha_client::patroni::base_url(api_url).map(|u| u.as_str().trim_end_matches('/').to_owned())
}

/// A failed request as an [`Error`]: [`Unreachable`](ErrorKind::Unreachable), or
/// [`Protocol`](ErrorKind::Protocol) for an answer too large to read; an unsafe call that may
/// have been received says so.
pub(crate) fn failure(method: &Method, base: &str, path: &str, failure: Failure) -> Error {
    let what = format!("{method} {base}{path}: {failure}");
    let maybe_received = !failure.is_not_sent() && !method.is_safe();
    let error = match failure {
        Failure::TooLarge => Error::protocol(what),
        _ => Error::new(ErrorKind::Unreachable, what),
    };
    if maybe_received {
        error.prefixed("the request may have reached Patroni; check the cluster before retrying")
    } else {
        error
    }
}

/// Sends one request to `base + path`; every status is an answer.
pub(crate) async fn request(
    connector: &Connector,
    method: Method,
    base: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Reply> {
    connector
        .patroni_send(method.clone(), base, path, body)
        .await
        .map_err(|f| failure(&method, base, path, f))
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
        401 if reply.credentials_sent => Err(Error::patroni(
            401,
            format!(
                "{what}: authentication failed ({}); set `patroni_user` and `patroni_password`",
                reply.text()
            ),
        )
        .with_settings(&["patroni_user", "patroni_password"])),
        401 => Err(Error::patroni(
            401,
            format!(
                "{what}: authentication required ({}) and no credentials were sent: set `patroni_user` and \
                 `patroni_password` (reads send them only to the configured `patroni` URLs and over \
                 HTTPS: list this member's REST API URL in `patroni`, or use HTTPS)",
                reply.text()
            ),
        )
        .with_settings(&["patroni_user", "patroni_password", "patroni"])),
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
        assert_eq!(
            base_of("http://127.0.0.1:8008/patroni").as_deref(),
            Some("http://127.0.0.1:8008")
        );
        assert_eq!(base_of("https://h:8008/").as_deref(), Some("https://h:8008"));
        assert_eq!(base_of("h:8008"), None);
    }

    #[test]
    fn error_statuses_become_typed_errors() {
        let reply = |status, body: &str| {
            let mut reply = Reply::new(status, body);
            reply.credentials_sent = true;
            reply
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
        // Credentials withheld from a learned plain-HTTP endpoint: the message says why.
        let e = expect_success("restart m3", Reply::new(401, "no auth header received")).expect_err("refused");
        assert!(e.to_string().contains("no credentials were sent"), "{e}");
        assert_eq!(e.settings(), ["patroni_user", "patroni_password", "patroni"]);
    }

    #[test]
    fn failures_map_onto_kinds_and_unsafe_calls_warn_they_may_have_been_received() {
        let e = failure(&Method::GET, "http://h:8008", "/cluster", Failure::TooLarge);
        assert_eq!(e.kind(), ErrorKind::Protocol);
        let e = failure(
            &Method::GET,
            "http://h:8008",
            "/cluster",
            Failure::MaybeSent("timed out".into()),
        );
        assert_eq!(e.kind(), ErrorKind::Unreachable);
        assert!(!e.to_string().contains("may have reached"), "{e}");
        let e = failure(
            &Method::POST,
            "http://h:8008",
            "/switchover",
            Failure::MaybeSent("timed out".into()),
        );
        assert_eq!(e.kind(), ErrorKind::Unreachable);
        assert!(e.to_string().contains("may have reached Patroni"), "{e}");
        assert!(e.to_string().contains("POST http://h:8008/switchover"), "{e}");
        let e = failure(
            &Method::POST,
            "http://h:8008",
            "/switchover",
            Failure::NotSent("connection refused".into()),
        );
        assert!(!e.to_string().contains("may have reached"), "{e}");
    }

    #[test]
    fn long_bodies_are_cut_on_a_char_boundary() {
        let reply = Reply::new(500, "é".repeat(600));
        assert_eq!(reply.text().chars().count(), 501);
    }
}
