//! Runs the routing fixture tables in `tests/spec/selection/*.json` (MongoDB server-selection
//! spec style): each file gives Patroni's `/cluster` answer (a recorded fixture or inline), the
//! SQL probe results with their timings, the primary's WAL history, and requests with the
//! members each may be routed to.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use serde::Deserialize;

use super::description::{
    build, choose_primary, Address, Fence, Judge, MemberInfo, MemberStatus, Observations, PrimaryHistory, Probe,
    ProbeResult, Source, Topology,
};
use super::selection::{select, Request, Selection};
use crate::intent::{Balance, Intent, LagBound};
use crate::patroni::{ClusterView, Lsn};
use crate::token::WalToken;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    description: String,
    /// A path under `tests/fixtures/patroni/`, an inline document, or null (no endpoint answered).
    patroni: Option<serde_json::Value>,
    #[serde(default)]
    known: Vec<KnownSpec>,
    probes: BTreeMap<String, ProbeSpec>,
    #[serde(default)]
    primary_history: Vec<SampleSpec>,
    #[serde(default)]
    max_timeline_seen: u64,
    #[serde(default)]
    max_timeline_primary: Option<String>,
    /// Patroni's `/history`: `[timeline, "switch LSN"]` for each ended timeline.
    #[serde(default)]
    timeline_history: Vec<(u64, String)>,
    /// What the previous refresh found of each member (the members of the previous topology).
    #[serde(default)]
    previous: BTreeMap<String, PreviousSpec>,
    now_ms: u64,
    expect_topology: TopologyExpect,
    #[serde(default)]
    requests: Vec<RequestSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KnownSpec {
    name: String,
    port: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeSpec {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    in_recovery: bool,
    #[serde(default)]
    lsn: Option<String>,
    #[serde(default)]
    replay: Option<String>,
    #[serde(default)]
    timeline: Option<u64>,
    #[serde(default)]
    paused: bool,
    #[serde(default)]
    sent_ms: u64,
    #[serde(default)]
    received_ms: u64,
}

/// A member as the previous refresh saw it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviousSpec {
    in_recovery: bool,
    #[serde(default)]
    replay: Option<String>,
    /// When its probe answered.
    received_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleSpec {
    at_ms: u64,
    /// The primary's timeline (0: comparable with every member by position alone).
    #[serde(default)]
    timeline: u64,
    lsn: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyExpect {
    primary: Option<String>,
    source: String,
    #[serde(default)]
    standbys: Option<BTreeSet<String>>,
    #[serde(default)]
    unusable: BTreeSet<String>,
    #[serde(default)]
    staleness_ms: BTreeMap<String, Option<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestSpec {
    intent: Intent,
    #[serde(default)]
    max_lag_ms: Option<u64>,
    #[serde(default)]
    max_lag_bytes: Option<u64>,
    #[serde(default = "yes")]
    fallback: bool,
    #[serde(default)]
    token: Option<WalToken>,
    #[serde(default)]
    avoid: Option<String>,
    /// Extra time after `now_ms` at which the request is routed.
    #[serde(default)]
    at_ms: u64,
    expect: Expect,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum Expect {
    /// The set of members the request may be routed to (over many random draws).
    Members(BTreeSet<String>),
    /// Routed to the primary as a fallback.
    Fallback(String),
    /// A standby that must check the token on the session first.
    VerifyToken(BTreeSet<String>),
    Wait,
    NoMember,
    WriteLost,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn run_spec(path: &Path) {
    let text = std::fs::read_to_string(path).expect("readable spec");
    let spec: Spec = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = format!(
        "{} ({})",
        path.file_name().unwrap_or_default().to_string_lossy(),
        spec.description
    );
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);

    let view: Option<ClusterView> = spec.patroni.as_ref().map(|v| match v {
        serde_json::Value::String(rel) => {
            let bytes = std::fs::read(fixture_dir().join("fixtures/patroni").join(rel)).expect("fixture");
            ClusterView::from_json(&bytes).expect("valid fixture")
        }
        inline => ClusterView::from_json(inline.to_string().as_bytes()).expect("valid inline /cluster"),
    });
    let known: Vec<Address> = spec
        .known
        .iter()
        .map(|k| Address {
            name: k.name.clone(),
            host: "127.0.0.1".into(),
            port: k.port,
            api_url: None,
        })
        .collect();
    let lsn = |s: &str| s.parse::<Lsn>().expect("LSN");
    let probes: BTreeMap<String, ProbeResult> = spec
        .probes
        .iter()
        .map(|(name, p)| {
            let result = match &p.error {
                Some(e) => ProbeResult::Failed(e.clone()),
                None => ProbeResult::Ok(Probe {
                    in_recovery: p.in_recovery,
                    current_lsn: p.lsn.as_deref().map(lsn),
                    timeline: p.timeline,
                    replay_lsn: p.replay.as_deref().map(lsn),
                    replay_paused: p.paused,
                    synchronous: false,
                    system_identifier: Some("7712536721700059390".into()),
                    sent_at: at(p.sent_ms),
                    received_at: at(p.received_ms.max(p.sent_ms)),
                }),
            };
            (name.clone(), result)
        })
        .collect();
    let mut history = PrimaryHistory::default();
    for s in &spec.primary_history {
        history.push(at(s.at_ms), s.timeline, lsn(&s.lsn));
    }
    let mut previous = Topology::empty(base);
    previous.max_timeline_seen = spec.max_timeline_seen;
    previous.max_timeline_primary = spec.max_timeline_primary.clone();
    previous.members = spec
        .previous
        .iter()
        .map(|(name, p)| MemberInfo {
            name: name.clone(),
            host: "127.0.0.1".into(),
            port: 5432,
            api_url: None,
            patroni_role: None,
            patroni_state: None,
            timeline: None,
            noloadbalance: false,
            in_recovery: Some(p.in_recovery),
            current_lsn: None,
            replay_lsn: p.replay.as_deref().map(lsn),
            replay_paused: false,
            synchronous: false,
            lag_bytes: None,
            staleness: None,
            status: MemberStatus::Unusable("previous refresh".into()),
            observed_at: at(p.received_ms),
        })
        .collect();
    let now = at(spec.now_ms);
    let addresses = super::description::addresses(view.as_ref(), &known);
    let obs = Observations {
        view: view.as_ref(),
        view_source: Source::Patroni,
        addresses: &addresses,
        probes: &probes,
        now,
    };
    // The steps of `build`, run one by one, on the same observations.
    let mut step_history = history.clone();
    let mut step_notes = Vec::new();
    let mut fence = Fence::carry(&obs, &previous, &mut step_history, &mut step_notes);
    let chosen = choose_primary(&obs, &fence, &mut step_notes);
    assert_eq!(chosen, spec.expect_topology.primary, "{name}: choose_primary");
    if let Some(chosen) = chosen.as_deref() {
        if let Some(ProbeResult::Ok(p)) = probes.get(chosen) {
            fence.record(chosen, p, &mut step_history);
        }
    }
    let mut topology = build(&obs, &previous, &mut history);
    assert_eq!(
        fence.max_timeline_seen,
        topology.fence(),
        "{name}: the fence after Fence::record"
    );
    assert_eq!(step_notes, topology.notes, "{name}: the steps note what build notes");
    let judge = Judge::new(
        &obs,
        &previous,
        &step_history,
        chosen.as_deref().and_then(|c| match probes.get(c) {
            Some(ProbeResult::Ok(p)) => Some((c, p)),
            _ => None,
        }),
        fence.same_cluster,
        chosen.as_deref(),
    );
    for a in &addresses {
        let judged = judge.member(a);
        let built = topology.member(&a.name).expect("every address is a member");
        assert_eq!(
            (&judged.status, judged.staleness, judged.lag_bytes),
            (&built.status, built.staleness, built.lag_bytes),
            "{name}: Judge::member({})",
            a.name
        );
    }
    topology.switch_points = std::sync::Arc::new(spec.timeline_history.iter().map(|(tl, l)| (*tl, lsn(l))).collect());

    let e = &spec.expect_topology;
    assert_eq!(
        topology.primary().map(|m| m.name.clone()),
        e.primary,
        "{name}: primary; {topology:#?}"
    );
    assert_eq!(
        serde_json::to_value(topology.source).expect("serializable"),
        serde_json::Value::String(e.source.clone()),
        "{name}: source"
    );
    if let Some(standbys) = &e.standbys {
        let got: BTreeSet<String> = topology.standbys().map(|m| m.name.clone()).collect();
        assert_eq!(&got, standbys, "{name}: standbys; {topology:#?}");
    }
    let unusable: BTreeSet<String> = topology
        .members
        .iter()
        .filter(|m| !m.is_primary() && !m.is_standby())
        .map(|m| m.name.clone())
        .collect();
    assert_eq!(unusable, e.unusable, "{name}: unusable; {topology:#?}");
    for (member, ms) in &e.staleness_ms {
        let got = topology
            .member(member)
            .and_then(|m| m.staleness)
            .map(|d| d.as_millis() as u64);
        assert_eq!(&got, ms, "{name}: staleness of {member}");
    }

    for (i, r) in spec.requests.iter().enumerate() {
        let bound = LagBound {
            time: r.max_lag_ms.map(Duration::from_millis),
            bytes: r.max_lag_bytes,
        };
        let request = Request {
            intent: r.intent,
            bound,
            token: r.token,
            fallback_to_primary: r.fallback,
            balance: Balance::Random,
            avoid: r.avoid.as_deref(),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
        let when = now + Duration::from_millis(r.at_ms);
        let mut members = BTreeSet::new();
        let mut outcome = None;
        for draw in 0..200 {
            let got = select(&topology, &request, when, &|_| 0, draw, &mut rng);
            let this = match got {
                Selection::Member {
                    index,
                    fallback: Some(_),
                    ..
                } => Expect::Fallback(topology.members[index].name.clone()),
                Selection::Member {
                    index,
                    verify_token: true,
                    ..
                } => {
                    members.insert(topology.members[index].name.clone());
                    Expect::VerifyToken(BTreeSet::new())
                }
                Selection::Member { index, .. } => {
                    members.insert(topology.members[index].name.clone());
                    Expect::Members(BTreeSet::new())
                }
                Selection::Wait(_) => Expect::Wait,
                Selection::NoMember(_) => Expect::NoMember,
                Selection::WriteLost { .. } => Expect::WriteLost,
            };
            if let Some(previous) = &outcome {
                assert_eq!(previous, &this, "{name}: request {i} gives different kinds of answer");
            }
            outcome = Some(this);
        }
        let got = match outcome {
            Some(Expect::Members(_)) => Expect::Members(members),
            Some(Expect::VerifyToken(_)) => Expect::VerifyToken(members),
            Some(other) => other,
            None => unreachable!("200 draws"),
        };
        assert_eq!(got, r.expect, "{name}: request {i} ({:?})", r.intent);
    }
}

#[test]
fn selection_spec_tables() {
    let dir = fixture_dir().join("spec/selection");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("spec dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "expected the selection spec tables in {}",
        dir.display()
    );
    let filter = std::env::var("SPEC_FILE").ok();
    for file in files {
        if filter.as_deref().is_some_and(|f| !file.to_string_lossy().contains(f)) {
            continue;
        }
        run_spec(&file);
    }
}
