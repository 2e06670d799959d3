//! Patroni discovery: `GET /cluster` on every known endpoint at once, through the one HTTP path
//! to Patroni ([`patroni::Api`](crate::patroni::Api): timeouts, a body size limit, no redirects,
//! the credentials rule).

use std::time::Duration;

use reqwest::Url;
use tokio::task::JoinSet;

use crate::patroni::{Api, ClusterView, HistoryEntry};

/// After the first good answer, wait this long for the others before using what arrived.
const GRACE: Duration = Duration::from_millis(50);

/// What one poll of the Patroni endpoints returned.
#[derive(Debug, Default)]
pub(crate) struct Poll {
    pub(crate) views: Vec<(Url, ClusterView)>,
    pub(crate) errors: Vec<(Url, String)>,
}

/// `GET base/path`, a `2xx` status required.
async fn get(api: &Api, base: &Url, path: &str) -> Result<Vec<u8>, String> {
    let reply = api.get(base, path).await.map_err(|e| e.to_string())?;
    Ok(reply.success()?.body)
}

async fn fetch(api: &Api, base: &Url) -> Result<ClusterView, String> {
    let body = get(api, base, "cluster").await?;
    ClusterView::from_json(&body).map_err(|e| e.to_string())
}

/// The cluster's timeline history (`GET /history`) from `base`, bounded by the Patroni timeout.
pub(crate) async fn history(api: &Api, base: &Url) -> Option<Vec<HistoryEntry>> {
    match get(api, base, "history").await {
        Ok(body) => HistoryEntry::list_from_json(&body)
            .inspect_err(|e| tracing::debug!(endpoint = %base, error = %e, "unusable /history"))
            .ok(),
        Err(e) => {
            tracing::debug!(endpoint = %base, error = e, "/history did not answer");
            None
        }
    }
}

/// Polls every endpoint concurrently. Returns once all answered, or `GRACE` after the first good
/// answer, or at the Patroni timeout (which bounds every request).
pub(crate) async fn poll(api: &Api, endpoints: &[Url]) -> Poll {
    let mut set = JoinSet::new();
    for base in endpoints {
        let (api, base) = (api.clone(), base.clone());
        set.spawn(async move {
            let result = fetch(&api, &base).await;
            (base, result)
        });
    }
    let mut poll = Poll::default();
    let hard_deadline = crate::time::tokio_after(
        tokio::time::Instant::now(),
        api.limit(&reqwest::Method::GET).saturating_add(GRACE),
    );
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

/// Which cluster the client belongs to, as far as the answers tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScopeRule {
    /// Not decided yet: the endpoints that answered disagree and nothing is configured.
    Unknown,
    /// This scope (configured, or reported by most endpoints).
    Named(String),
    /// Most endpoints report no scope (Patroni before 3.2).
    Unscoped,
}

/// The scope the answering configured endpoints report most, if it is reported by more of them
/// than any other scope (views without a scope count as one group of their own) and by at
/// least two of them when two or more are configured: one endpoint — of another cluster in the
/// list, or simply the first to answer — never decides alone. `views` must be the answers of
/// configured endpoints only.
pub(crate) fn adopt_scope<'a>(views: impl IntoIterator<Item = &'a (Url, ClusterView)>, configured: usize) -> ScopeRule {
    let mut counts: Vec<(Option<&str>, usize)> = Vec::new();
    for (_, v) in views {
        match counts.iter_mut().find(|(s, _)| *s == v.scope.as_deref()) {
            Some((_, n)) => *n += 1,
            None => counts.push((v.scope.as_deref(), 1)),
        }
    }
    let quorum = configured.clamp(1, 2);
    let Some(best) = counts.iter().map(|(_, n)| *n).max().filter(|&n| n >= quorum) else {
        return ScopeRule::Unknown;
    };
    let winners: Vec<Option<&str>> = counts.iter().filter(|(_, n)| *n == best).map(|(s, _)| *s).collect();
    match winners.as_slice() {
        [Some(scope)] => ScopeRule::Named((*scope).to_owned()),
        [None] => ScopeRule::Unscoped,
        _ => ScopeRule::Unknown,
    }
}

/// The scope rule after a poll: the configured scope, else re-decided on every poll by the
/// configured endpoints that answered — see [`adopt_scope`] — so that an upgrade from Patroni
/// 3.0/3.1 to 3.2+, which adds a scope to every answer, is followed; the `current` rule stays
/// while the answers decide nothing.
pub(crate) fn next_scope(
    current: &ScopeRule,
    configured_scope: Option<&str>,
    views: &[(Url, ClusterView)],
    configured: &[Url],
) -> ScopeRule {
    if let Some(scope) = configured_scope {
        return ScopeRule::Named(scope.to_owned());
    }
    let ours = views.iter().filter(|(url, _)| configured.contains(url));
    match adopt_scope(ours, configured.len()) {
        ScopeRule::Unknown => current.clone(),
        decided => decided,
    }
}

fn member_addresses(view: &ClusterView) -> impl Iterator<Item = (&str, u16)> {
    view.members.iter().filter_map(|m| Some((m.host.as_deref()?, m.port?)))
}

/// Why a view must not be used, or `None` if it may. `views` are all the answers of this poll:
/// under [`ScopeRule::Unscoped`] a view that does report a scope is accepted only if it shares a
/// member address with an unscoped view (a member already upgraded to Patroni 3.2+).
pub(crate) fn reject_reason(view: &ClusterView, rule: &ScopeRule, views: &[(Url, ClusterView)]) -> Option<String> {
    let leaders = view
        .members
        .iter()
        .filter(|m| {
            matches!(
                m.role,
                crate::patroni::Role::Leader | crate::patroni::Role::StandbyLeader
            )
        })
        .count();
    if leaders > 1 {
        return Some(format!("it names {leaders} leaders at once"));
    }
    match (rule, view.scope.as_deref()) {
        (ScopeRule::Named(expected), Some(scope)) if expected != scope => {
            Some(format!("it belongs to cluster {scope:?}, not {expected:?}"))
        }
        (ScopeRule::Unscoped, Some(scope)) => {
            let ours: Vec<(&str, u16)> = views
                .iter()
                .filter(|(_, v)| v.scope.is_none())
                .flat_map(|(_, v)| member_addresses(v))
                .collect();
            (!member_addresses(view).any(|a| ours.contains(&a)))
                .then(|| format!("it reports cluster {scope:?} and none of this cluster's members"))
        }
        (ScopeRule::Unknown, _) if views.iter().any(|(_, v)| v.scope != view.scope) => {
            Some("the endpoints report different clusters and no scope is configured (set patroni_scope)".into())
        }
        _ => None,
    }
}

/// The acceptable views, best first: the leader on the highest timeline (a stale endpoint may
/// still name the old leader), then having a leader, then listing the most members.
pub(crate) fn ranked_views<'a>(views: &'a [(Url, ClusterView)], rule: &ScopeRule) -> Vec<&'a ClusterView> {
    let mut ok: Vec<&ClusterView> = views
        .iter()
        .map(|(_, v)| v)
        .filter(|v| reject_reason(v, rule, views).is_none())
        .collect();
    ok.sort_by_key(|v| {
        std::cmp::Reverse((
            v.leader().and_then(|l| l.timeline),
            v.leader().is_some(),
            v.members.len(),
        ))
    });
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(scope: Option<&str>, leaders: usize) -> (Url, ClusterView) {
        let members: Vec<String> = (0..3)
            .map(|i| {
                let role = if i < leaders { "leader" } else { "replica" };
                format!(r#"{{"name": "m{i}", "role": "{role}", "state": "running", "timeline": 1}}"#)
            })
            .collect();
        let scope = scope.map(|s| format!(r#""scope": "{s}","#)).unwrap_or_default();
        let json = format!(r#"{{{scope} "members": [{}]}}"#, members.join(","));
        (
            Url::parse("http://127.0.0.1:8008/").expect("url"),
            ClusterView::from_json(json.as_bytes()).expect("view"),
        )
    }

    #[test]
    fn one_foreign_endpoint_cannot_set_the_scope() {
        let views = [view(None, 1), view(None, 1), view(Some("other"), 1)];
        assert_eq!(adopt_scope(&views, 3), ScopeRule::Unscoped);
        let views = [view(Some("real"), 1), view(Some("other"), 1), view(Some("real"), 1)];
        assert_eq!(adopt_scope(&views, 3), ScopeRule::Named("real".into()));
        assert_eq!(
            adopt_scope(&[view(Some("a"), 1), view(Some("b"), 1)], 2),
            ScopeRule::Unknown
        );
        assert_eq!(adopt_scope(&[], 3), ScopeRule::Unknown);
    }

    #[test]
    fn the_first_endpoint_to_answer_decides_nothing_alone() {
        // One of three configured endpoints answered (perhaps a stranger's): no decision yet.
        assert_eq!(adopt_scope(&[view(Some("other"), 1)], 3), ScopeRule::Unknown);
        assert_eq!(
            adopt_scope(&[view(Some("real"), 1), view(Some("real"), 1)], 3),
            ScopeRule::Named("real".into())
        );
        // With a single configured endpoint, its answer is the majority.
        assert_eq!(
            adopt_scope(&[view(Some("real"), 1)], 1),
            ScopeRule::Named("real".into())
        );
    }

    #[test]
    fn the_scope_is_decided_again_when_the_cluster_is_upgraded() {
        let configured: Vec<Url> = (1..=3)
            .map(|i| Url::parse(&format!("http://10.0.0.{i}:8008/")).expect("url"))
            .collect();
        let answers = |scopes: [Option<&str>; 3]| -> Vec<(Url, ClusterView)> {
            configured
                .iter()
                .zip(scopes)
                .map(|(u, s)| (u.clone(), view(s, 1).1))
                .collect()
        };
        let mut rule = next_scope(&ScopeRule::Unknown, None, &answers([None, None, None]), &configured);
        assert_eq!(rule, ScopeRule::Unscoped);
        // A rolling upgrade to Patroni 3.2+: one member, then two, then all report the scope.
        rule = next_scope(&rule, None, &answers([Some("real"), None, None]), &configured);
        assert_eq!(rule, ScopeRule::Unscoped);
        rule = next_scope(&rule, None, &answers([Some("real"), Some("real"), None]), &configured);
        assert_eq!(rule, ScopeRule::Named("real".into()));
        // A poll where only one configured endpoint answers keeps the decision.
        rule = next_scope(&rule, None, &answers([Some("other"), None, None])[..1], &configured);
        assert_eq!(rule, ScopeRule::Named("real".into()));
        // Answers of learned (unconfigured) endpoints never vote.
        let learned = vec![(Url::parse("http://10.9.9.9:8008/").expect("url"), view(Some("x"), 1).1); 3];
        assert_eq!(
            next_scope(&ScopeRule::Unknown, None, &learned, &configured),
            ScopeRule::Unknown
        );
        // A configured scope always wins.
        assert_eq!(
            next_scope(&rule, Some("pinned"), &answers([None, None, None]), &configured),
            ScopeRule::Named("pinned".into())
        );
    }

    #[test]
    fn foreign_scopes_and_two_leaders_are_rejected() {
        let all = [view(Some("real"), 2), view(Some("other"), 1)];
        let (_, two) = &all[0];
        let named = ScopeRule::Named("real".into());
        assert!(reject_reason(two, &named, &all).is_some_and(|r| r.contains("2 leaders")));
        assert!(reject_reason(&all[1].1, &named, &all).is_some());
        let (_, unscoped) = view(None, 1);
        assert!(
            reject_reason(&unscoped, &named, &all).is_none(),
            "Patroni < 3.2 has no scope"
        );
        assert!(ranked_views(&all, &named).is_empty());
        // Endpoints disagreeing with nothing configured: no scoped view is trusted.
        let split = [view(Some("a"), 1), view(Some("b"), 1)];
        assert!(ranked_views(&split, &ScopeRule::Unknown).is_empty());
    }

    #[test]
    fn an_upgraded_member_of_an_unscoped_cluster_is_accepted_a_stranger_is_not() {
        let mut upgraded = view(Some("real"), 1);
        let (_, plain) = view(None, 1);
        upgraded.1.members = plain.members.clone();
        let mut stranger = view(Some("other"), 1);
        for m in &mut stranger.1.members {
            m.host = Some("10.9.9.9".into());
            m.port = Some(5432);
        }
        for m in &mut upgraded.1.members {
            m.host = Some("10.0.0.1".into());
            m.port = Some(5432);
        }
        let mut plain_view = view(None, 1);
        for m in &mut plain_view.1.members {
            m.host = Some("10.0.0.1".into());
            m.port = Some(5432);
        }
        let all = [plain_view.clone(), plain_view, upgraded.clone(), stranger.clone()];
        assert!(reject_reason(&upgraded.1, &ScopeRule::Unscoped, &all).is_none());
        assert!(reject_reason(&stranger.1, &ScopeRule::Unscoped, &all).is_some());
    }
}
