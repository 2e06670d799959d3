//! Patroni discovery: `GET /cluster` on every known endpoint at once, with timeouts, a body
//! size limit and no redirects.

use std::time::Duration;

use reqwest::Url;
use tokio::task::JoinSet;

use crate::config::Settings;
use crate::patroni::ClusterView;

/// Larger answers are refused: a real `/cluster` of even a hundred members is far smaller.
const MAX_BODY: usize = 1 << 20;

/// After the first good answer, wait this long for the others before using what arrived.
const GRACE: Duration = Duration::from_millis(50);

/// What one poll of the Patroni endpoints returned.
#[derive(Debug, Default)]
pub(crate) struct Poll {
    pub(crate) views: Vec<(Url, ClusterView)>,
    pub(crate) errors: Vec<(Url, String)>,
}

/// The base URL (`scheme://host:port/`) of a member's `api_url` (`…/patroni`).
pub(crate) fn base_url(api_url: &str) -> Option<Url> {
    let mut url = Url::parse(api_url).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    url.set_path("/");
    url.set_query(None);
    url.set_fragment(None);
    Some(url)
}

async fn fetch(http: reqwest::Client, settings: &Settings, base: &Url) -> Result<ClusterView, String> {
    let url = base.join("cluster").map_err(|e| e.to_string())?;
    let mut request = http.get(url);
    if let Some(user) = &settings.patroni_user {
        request = request.basic_auth(user, settings.patroni_password.as_ref().map(|p| p.expose()));
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| crate::error::chain(&e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    if response.content_length().is_some_and(|n| n > MAX_BODY as u64) {
        return Err(format!("answer larger than {MAX_BODY} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.without_url().to_string())? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("answer larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    ClusterView::from_json(&body).map_err(|e| e.to_string())
}

/// Polls every endpoint concurrently. Returns once all answered, or `GRACE` after the first good
/// answer, or at the Patroni timeout.
pub(crate) async fn poll(http: &reqwest::Client, settings: &Settings, endpoints: &[Url]) -> Poll {
    let mut set = JoinSet::new();
    for base in endpoints {
        let (http, settings, base) = (http.clone(), settings.clone(), base.clone());
        set.spawn(async move {
            let timeout = settings.patroni_timeout;
            let result = tokio::time::timeout(timeout, fetch(http, &settings, &base))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")));
            (base, result)
        });
    }
    let mut poll = Poll::default();
    let hard_deadline = tokio::time::Instant::now() + settings.patroni_timeout + GRACE;
    let mut deadline = hard_deadline;
    loop {
        let next = tokio::time::timeout_at(deadline, set.join_next()).await;
        match next {
            Ok(Some(Ok((base, Ok(view))))) => {
                poll.views.push((base, view));
                deadline = deadline.min(tokio::time::Instant::now() + GRACE);
            }
            Ok(Some(Ok((base, Err(e))))) => poll.errors.push((base, e)),
            Ok(Some(Err(_))) => {}
            Ok(None) => break,
            Err(_) => {
                set.abort_all();
                break;
            }
        }
    }
    poll
}

/// Chooses one view among the answers: scopes other than `expected_scope` are ignored; then the
/// view whose leader is on the highest timeline wins (a stale endpoint may still name the old
/// leader), then the one listing the most members.
pub(crate) fn best_view<'a>(views: &'a [(Url, ClusterView)], expected_scope: Option<&str>) -> Option<&'a ClusterView> {
    views
        .iter()
        .map(|(_, v)| v)
        .filter(|v| match (expected_scope, v.scope.as_deref()) {
            (Some(expected), Some(scope)) => expected == scope,
            _ => true,
        })
        .max_by_key(|v| {
            (
                v.leader().and_then(|l| l.timeline),
                v.leader().is_some(),
                v.members.len(),
            )
        })
}
