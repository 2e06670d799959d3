//! Pure data: what pgha knows about the cluster at one moment, and the pure function that
//! builds it from observations (Patroni's `/cluster` view and SQL probes of each member).
//!
//! Nothing here does I/O or reads the clock: `now` and every observation time are inputs, so the
//! fixture tests can replay recorded Patroni answers with exact timings.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

pub(crate) use crate::address::Address;
use crate::patroni::{ClusterView, Lsn, Role, State};

/// Where the current topology came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Source {
    /// Nothing observed yet.
    Unknown,
    /// Patroni's `/cluster`, verified by SQL probes of each member.
    Patroni,
    /// Patroni's keys in etcd, watched (see [`ClientBuilder::etcd`](crate::ClientBuilder::etcd)),
    /// verified by SQL probes of each member.
    Dcs,
    /// Every Patroni endpoint was unreachable: the members pgha already knew (and the seed hosts)
    /// were probed with SQL, and the one not in recovery on the highest timeline is the primary.
    SqlProbe,
}

impl Source {
    /// The source's name, as serialized (`dcs`, `sql-probe`…): the `source` label of metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Patroni => "patroni",
            Self::Dcs => "dcs",
            Self::SqlProbe => "sql-probe",
        }
    }
}

/// What a member may be used for right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "reason")]
#[non_exhaustive]
pub enum MemberStatus {
    /// The verified primary: Patroni's leader (or, without Patroni, the only member not in
    /// recovery on the highest timeline), confirmed by `pg_is_in_recovery() = false`.
    Primary,
    /// A standby that may serve reads, subject to each read's lag bound.
    Standby,
    /// Not used; the reason says why.
    Unusable(String),
}

/// One member as pgha sees it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MemberInfo {
    /// Patroni member name (or `host:port` for a seed host not yet named by Patroni).
    pub name: String,
    /// PostgreSQL host.
    pub host: String,
    /// PostgreSQL port.
    pub port: u16,
    /// Patroni REST API URL of this member, if known.
    pub api_url: Option<String>,
    /// Role in Patroni's `/cluster`, if Patroni answered.
    pub patroni_role: Option<Role>,
    /// State in Patroni's `/cluster`, if Patroni answered.
    pub patroni_state: Option<State>,
    /// Timeline: for the primary, from its current WAL file; for a standby, the highest of what
    /// Patroni and the database report.
    pub timeline: Option<u64>,
    /// Tagged `noloadbalance` in Patroni: never used for reads.
    pub noloadbalance: bool,
    /// `pg_is_in_recovery()` at the last probe (`None` if the probe failed).
    pub in_recovery: Option<bool>,
    /// The primary's `pg_current_wal_lsn()` at the last probe.
    pub current_lsn: Option<Lsn>,
    /// A standby's `pg_last_wal_replay_lsn()` at the last probe.
    pub replay_lsn: Option<Lsn>,
    /// WAL replay is paused with `pg_wal_replay_pause()`.
    pub replay_paused: bool,
    /// A primary whose commits wait for synchronous standbys (`synchronous_standby_names` is
    /// set) at the last probe. Such a commit shows on a standby that replayed it before it shows
    /// on the primary: an operation carrying a token runs on it only once the synchronous
    /// standbys have confirmed the token's position.
    pub synchronous: bool,
    /// Bytes of WAL between the primary's last sampled position and this standby's replay position.
    pub lag_bytes: Option<u64>,
    /// How stale this standby was when probed (see [`LagBound`](crate::LagBound)); `None` when
    /// unknown (no primary sample old enough).
    pub staleness: Option<Duration>,
    /// What the member may be used for.
    pub status: MemberStatus,
    /// When the member was last probed.
    #[serde(skip)]
    pub observed_at: Instant,
}

impl MemberInfo {
    /// True for the verified primary.
    pub fn is_primary(&self) -> bool {
        self.status == MemberStatus::Primary
    }

    /// True for a standby that may serve reads (subject to the lag bound).
    pub fn is_standby(&self) -> bool {
        self.status == MemberStatus::Standby
    }

    /// Staleness at `now`: the staleness measured at the last probe plus the time since, since a
    /// standby may have stopped replaying right after it was probed.
    pub fn staleness_at(&self, now: Instant) -> Option<Duration> {
        self.staleness
            .map(|s| s + now.saturating_duration_since(self.observed_at))
    }
}

/// An immutable snapshot of the cluster, published by the topology task after every refresh.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Topology {
    /// Increases with every published snapshot.
    pub generation: u64,
    /// Where the member list came from.
    pub source: Source,
    /// Every member, in Patroni's order.
    pub members: Vec<MemberInfo>,
    /// Index into `members` of the verified primary, if there is one.
    pub primary: Option<usize>,
    /// The highest timeline any primary has been seen on (fencing: no write ever goes to a
    /// lower one, until that timeline is gone from the cluster — see `max_timeline_primary`).
    /// Private: fencing may change without an API change; [`fence`](Self::fence) shows it.
    #[serde(skip)]
    pub(crate) max_timeline_seen: u64,
    /// The member that was the verified primary on `max_timeline_seen`. The fence is lifted only
    /// once this member is back on a lower timeline (rewound or re-cloned) and every member
    /// answers from a lower one: that history is then gone from the cluster, and waiting for it
    /// would block writes for good.
    #[serde(skip)]
    pub(crate) max_timeline_primary: Option<String>,
    /// Patroni is in maintenance mode (`pause`).
    pub paused: bool,
    /// The database system identifier (`pg_control_system()`), once a member was probed.
    pub system_identifier: Option<String>,
    /// Things that looked wrong in this refresh (disagreements, fenced members…).
    pub notes: Vec<String>,
    /// When the snapshot was built.
    #[serde(skip)]
    pub observed_at: Instant,
    /// Where each ended timeline ended (Patroni's `/history`), to tell a read-your-writes token
    /// of a write that survived a failover from one of a write that was lost.
    #[serde(skip)]
    pub(crate) switch_points: std::sync::Arc<BTreeMap<u64, Lsn>>,
}

impl Topology {
    /// An empty topology (nothing observed yet).
    pub(crate) fn empty(now: Instant) -> Self {
        Self {
            generation: 0,
            source: Source::Unknown,
            members: Vec::new(),
            primary: None,
            max_timeline_seen: 0,
            max_timeline_primary: None,
            paused: false,
            system_identifier: None,
            notes: Vec::new(),
            observed_at: now,
            switch_points: std::sync::Arc::default(),
        }
    }

    /// Where `timeline` ended in a failover or switchover, once pgha has read the cluster's
    /// timeline history (Patroni's `/history`, read after the refresh that finds a new
    /// timeline). A write acknowledged on `timeline` beyond this position was lost.
    pub fn timeline_end(&self, timeline: u64) -> Option<Lsn> {
        self.switch_points.get(&timeline).copied()
    }

    /// The timeline reads are judged against: the primary's, or without one the highest any
    /// usable standby is on.
    pub(crate) fn current_timeline(&self) -> Option<u64> {
        match self.primary() {
            Some(p) => p.timeline,
            None => self.standbys().filter_map(|m| m.timeline).max(),
        }
    }

    /// The fence: no write goes to a primary below this timeline (the highest any verified
    /// primary was seen on), until that timeline is gone from the cluster. `0` before any.
    pub fn fence(&self) -> u64 {
        self.max_timeline_seen
    }

    /// The verified primary, if there is one.
    pub fn primary(&self) -> Option<&MemberInfo> {
        self.primary.and_then(|i| self.members.get(i))
    }

    /// A member by name.
    pub fn member(&self, name: &str) -> Option<&MemberInfo> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The standbys that may serve reads (before applying any lag bound).
    pub fn standbys(&self) -> impl Iterator<Item = &MemberInfo> {
        self.members.iter().filter(|m| m.is_standby())
    }
}

/// What one SQL probe of a member found (one round trip; see `probe.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe {
    pub(crate) in_recovery: bool,
    /// Primary only: `pg_current_wal_lsn()`.
    pub(crate) current_lsn: Option<Lsn>,
    /// Primary: timeline of the current WAL file; standby: the highest of `received_tli` (needs
    /// `pg_read_all_stats`) and the last checkpoint's timeline.
    pub(crate) timeline: Option<u64>,
    /// Standby only: `pg_last_wal_replay_lsn()`.
    pub(crate) replay_lsn: Option<Lsn>,
    pub(crate) replay_paused: bool,
    /// Primary only: `synchronous_standby_names` is set.
    pub(crate) synchronous: bool,
    pub(crate) system_identifier: Option<String>,
    /// When the probe query was sent: every write acknowledged before this is at or below
    /// `current_lsn`.
    pub(crate) sent_at: Instant,
    /// When the answer arrived: the standby had replayed at least `replay_lsn` by then.
    pub(crate) received_at: Instant,
}

/// The outcome of probing one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProbeResult {
    Ok(Probe),
    Failed(String),
}

/// Samples of the primary's WAL position over time, used to turn a standby's replay position
/// into a staleness in time without trusting replay timestamps (which show false lag when the
/// primary is idle). Each sample carries its timeline: positions are compared within a timeline
/// only, so a standby left on an abandoned timeline — a rejoining old primary whose replay is
/// past the switch point — never looks fresh against the new primary's samples.
#[derive(Debug, Clone, Default)]
pub(crate) struct PrimaryHistory {
    samples: VecDeque<Sample>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    timeline: u64,
    lsn: Lsn,
}

impl PrimaryHistory {
    const MAX_SAMPLES: usize = 1024;

    /// Records that every write acknowledged before `at` by the primary on `timeline` is at or
    /// below `lsn`.
    pub(crate) fn push(&mut self, at: Instant, timeline: u64, lsn: Lsn) {
        if self.samples.back().is_some_and(|s| s.at > at) {
            return;
        }
        self.samples.push_back(Sample { at, timeline, lsn });
        while self.samples.len() > Self::MAX_SAMPLES {
            self.samples.pop_front();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.samples.clear();
    }

    /// Bytes of WAL between the latest sample taken at or after `since` and `replay`, if that
    /// sample is on the member's `timeline` (bytes across timelines mean nothing).
    pub(crate) fn lag_bytes(&self, timeline: u64, replay: Lsn, since: Instant) -> Option<u64> {
        self.samples
            .back()
            .filter(|s| s.at >= since && s.timeline == timeline)
            .map(|s| s.lsn.0.saturating_sub(replay.0))
    }

    /// How stale a member on `timeline` that had replayed `replay` at `observed_at` was: the
    /// time since the latest sample it had fully replayed. `None` (unknown) if it is behind
    /// every sample kept, or if a primary was sampled on a later timeline: a sample of its own
    /// timeline cannot vouch for writes another primary acknowledged after the promotion.
    pub(crate) fn staleness(&self, timeline: u64, replay: Lsn, observed_at: Instant) -> Option<Duration> {
        if self.samples.iter().any(|s| s.timeline > timeline) {
            return None;
        }
        // Every sample is now on the member's timeline or an earlier one, compared by position:
        // positions are shared up to a switch point, and a sample beyond it covers writes lost
        // for every member alike (the member has every write that survived).
        self.samples
            .iter()
            .rev()
            .find(|s| s.lsn <= replay)
            .map(|s| observed_at.saturating_duration_since(s.at))
    }
}

/// Everything a refresh observed.
#[derive(Debug)]
pub(crate) struct Observations<'a> {
    /// Patroni's view (the best of the endpoints' answers), or `None` if none answered.
    pub(crate) view: Option<&'a ClusterView>,
    /// Where `view` came from: [`Source::Patroni`] (the REST API) or [`Source::Dcs`] (etcd).
    pub(crate) view_source: Source,
    /// The members this refresh probed: see [`addresses`].
    pub(crate) addresses: &'a [Address],
    /// Probe results by member name.
    pub(crate) probes: &'a BTreeMap<String, ProbeResult>,
    pub(crate) now: Instant,
}

/// The addresses a refresh should probe: Patroni's members if it answered, else the known ones.
pub(crate) fn addresses(view: Option<&ClusterView>, known: &[Address]) -> Vec<Address> {
    match view {
        Some(view) => view
            .members
            .iter()
            .filter_map(|m| {
                Some(Address {
                    name: m.name.clone(),
                    host: m.host.clone()?,
                    port: m.port?,
                    api_url: m.api_url.clone(),
                })
            })
            .collect(),
        None => known.to_vec(),
    }
}

/// The highest timeline any member answers from, if the highest timeline seen so far is gone:
/// the member that was primary on it answers from a lower one, and so does every other member
/// (one that does not answer might still be on it).
fn abandoned_timeline(obs: &Observations<'_>, max_seen: u64, holder: Option<&str>) -> Option<u64> {
    let holder = holder?;
    let mut highest = 0;
    for a in obs.addresses {
        let Some(ProbeResult::Ok(p)) = obs.probes.get(&a.name) else {
            return None;
        };
        highest = highest.max(p.timeline?);
    }
    // The holder answers from below, or is gone from Patroni's member list: Patroni drops a
    // member's key once it has not renewed it for `ttl`, so a member removed, renamed or
    // rebuilt under another name no longer holds the fence up.
    let holder_listed = obs.addresses.iter().any(|a| a.name == holder);
    let holder_expired = obs.view.is_some_and(|v| v.member(holder).is_none()) && !holder_listed;
    ((holder_listed || holder_expired) && highest > 0 && highest < max_seen).then_some(highest)
}

/// Builds the next topology from observations, in four named steps: [`Fence::carry`] (the
/// fence from the previous refresh, reset for a new database, lifted when its timeline is gone),
/// [`choose_primary`] (Patroni's leader if its database confirms it above the fence, else the
/// one member out of recovery when Patroni is unreachable), [`Fence::record`] (the primary's
/// sample and timeline) and [`Judge::member`] (each member's status, lag and staleness).
/// `history` gets the new primary's sample; `previous` supplies the generation and the fence.
pub(crate) fn build(obs: &Observations<'_>, previous: &Topology, history: &mut PrimaryHistory) -> Topology {
    let mut notes = Vec::new();
    let mut fence = Fence::carry(obs, previous, history, &mut notes);
    let primary_name = choose_primary(obs, &fence, &mut notes);
    let primary = primary_name
        .as_deref()
        .and_then(|name| Some((name, probe_of(obs, name)?)));
    if let Some((name, p)) = primary {
        fence.record(name, p, history);
    }
    let judge = Judge::new(
        obs,
        previous,
        history,
        primary,
        fence.same_cluster,
        primary_name.as_deref(),
    );
    let members: Vec<MemberInfo> = obs.addresses.iter().map(|a| judge.member(a)).collect();

    Topology {
        generation: previous.generation + 1,
        source: if obs.view.is_some() {
            obs.view_source
        } else if members.is_empty() {
            Source::Unknown
        } else {
            Source::SqlProbe
        },
        primary: members.iter().position(|m| m.is_primary()),
        members,
        max_timeline_seen: fence.max_timeline_seen,
        max_timeline_primary: fence.max_timeline_primary,
        paused: obs.view.is_some_and(|v| v.pause),
        system_identifier: fence.system_identifier.or_else(|| previous.system_identifier.clone()),
        notes,
        observed_at: obs.now,
        // The topology task sets them: it reads the history and owns it.
        switch_points: std::sync::Arc::default(),
    }
}

/// A member's successful probe of this refresh.
fn probe_of<'a>(obs: &Observations<'a>, name: &str) -> Option<&'a Probe> {
    succeeded(obs.probes, name)
}

/// `name`'s probe in `probes`, if it succeeded.
pub(crate) fn succeeded<'a>(probes: &'a BTreeMap<String, ProbeResult>, name: &str) -> Option<&'a Probe> {
    match probes.get(name) {
        Some(ProbeResult::Ok(p)) => Some(p),
        _ => None,
    }
}

/// Fencing state from one refresh to the next: the highest timeline a verified primary was seen
/// on, and which member that was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fence {
    pub(crate) max_timeline_seen: u64,
    pub(crate) max_timeline_primary: Option<String>,
    /// This refresh saw the database of the previous one (no new system identifier).
    pub(crate) same_cluster: bool,
    /// The system identifier the members report, if any was probed.
    pub(crate) system_identifier: Option<String>,
}

impl Fence {
    /// The previous refresh's fence, reset when every member reports a new system identifier (a
    /// different cluster: rebuilt, restored — its history is forgotten), and lifted to the
    /// highest timeline any member answers from once the fenced timeline is gone (see
    /// [`abandoned_timeline`]).
    pub(crate) fn carry(
        obs: &Observations<'_>,
        previous: &Topology,
        history: &mut PrimaryHistory,
        notes: &mut Vec<String>,
    ) -> Self {
        let sysids: Vec<&str> = obs
            .addresses
            .iter()
            .filter_map(|a| probe_of(obs, &a.name)?.system_identifier.as_deref())
            .collect();
        let mut fence = Self {
            max_timeline_seen: previous.max_timeline_seen,
            max_timeline_primary: previous.max_timeline_primary.clone(),
            same_cluster: true,
            system_identifier: sysids.first().map(|s| (*s).to_owned()),
        };
        if let (Some(&first), Some(prev)) = (sysids.first(), previous.system_identifier.as_deref()) {
            if first != prev && sysids.iter().all(|&s| s == first) {
                fence.same_cluster = false;
                notes.push(format!(
                    "database system identifier changed ({prev} -> {first}): history reset"
                ));
                history.clear();
                fence.max_timeline_seen = 0;
                fence.max_timeline_primary = None;
            }
        }
        if let Some(lower) = abandoned_timeline(obs, fence.max_timeline_seen, fence.max_timeline_primary.as_deref()) {
            notes.push(format!(
                "timeline {} is gone: its primary {} now follows timeline {lower} or has left the \
                 cluster, and no member is on it; the fence is lifted",
                fence.max_timeline_seen,
                fence.max_timeline_primary.as_deref().unwrap_or_default()
            ));
            fence.max_timeline_seen = lower;
            fence.max_timeline_primary = None;
        }
        fence
    }

    /// Records the verified primary's probe: its WAL position as a sample of `history`, and its
    /// timeline as the fence when it is the highest seen.
    pub(crate) fn record(&mut self, name: &str, p: &Probe, history: &mut PrimaryHistory) {
        if let Some(lsn) = p.current_lsn {
            history.push(p.sent_at, p.timeline.unwrap_or(0), lsn);
        }
        let tl = p.timeline.unwrap_or(0);
        if tl >= self.max_timeline_seen {
            self.max_timeline_seen = tl;
            self.max_timeline_primary = Some(name.to_owned());
        }
    }
}

/// The primary: Patroni's leader if its database is out of recovery on a timeline not below the
/// fence (the fence counts the highest timeline any member out of recovery reports now); without
/// Patroni, the one member out of recovery on the highest timeline. `None` (with a note saying
/// why) otherwise.
pub(crate) fn choose_primary(obs: &Observations<'_>, fence: &Fence, notes: &mut Vec<String>) -> Option<String> {
    // Candidates for primary: members whose database says it is not in recovery.
    let not_in_recovery: Vec<(&Address, &Probe)> = obs
        .addresses
        .iter()
        .filter_map(|a| probe_of(obs, &a.name).filter(|p| !p.in_recovery).map(|p| (a, p)))
        .collect();
    let highest_candidate_tl = not_in_recovery
        .iter()
        .filter_map(|(_, p)| p.timeline)
        .max()
        .unwrap_or(0);
    let fence_tl = fence.max_timeline_seen.max(highest_candidate_tl);

    let leaders = obs.view.map_or(0, |v| {
        v.members
            .iter()
            .filter(|m| matches!(m.role, Role::Leader | Role::StandbyLeader))
            .count()
    });
    match obs.view {
        // Discovery drops such answers; should one get here, it cannot name a primary.
        Some(_) if leaders > 1 => {
            notes.push(format!("Patroni's answer names {leaders} leaders: no primary"));
            None
        }
        Some(view) => match view.leader() {
            Some(leader) => match not_in_recovery.iter().find(|(a, _)| a.name == leader.name) {
                Some((a, p)) if p.timeline.unwrap_or(0) >= fence_tl => Some(a.name.clone()),
                Some((_, p)) => {
                    notes.push(format!(
                        "Patroni leader {} is on timeline {:?}, below timeline {fence_tl} seen elsewhere: fenced",
                        leader.name, p.timeline
                    ));
                    None
                }
                None => {
                    notes.push(format!(
                        "Patroni leader {} is not verified as primary by SQL ({})",
                        leader.name,
                        match obs.probes.get(&leader.name) {
                            Some(ProbeResult::Ok(_)) => "still in recovery".to_owned(),
                            Some(ProbeResult::Failed(e)) => format!("probe failed: {e}"),
                            None => "not probed".to_owned(),
                        }
                    ));
                    None
                }
            },
            None => {
                notes.push("Patroni reports no leader".to_owned());
                None
            }
        },
        None => {
            let top: Vec<&(&Address, &Probe)> = not_in_recovery
                .iter()
                .filter(|(_, p)| p.timeline.unwrap_or(0) >= fence_tl && fence_tl > 0)
                .collect();
            match top.as_slice() {
                [(a, _)] => Some(a.name.clone()),
                [] => None,
                many => {
                    notes.push(format!(
                        "{} members are out of recovery on timeline {fence_tl} and Patroni is unreachable: no primary",
                        many.len()
                    ));
                    None
                }
            }
        }
    }
}

/// Judges each member against this refresh's primary: its status, lag and staleness.
pub(crate) struct Judge<'a> {
    obs: &'a Observations<'a>,
    previous: &'a Topology,
    history: &'a PrimaryHistory,
    primary_name: Option<&'a str>,
    /// The verified primary's probe, while the database is the previous refresh's.
    primary_probe: Option<&'a Probe>,
    /// When this refresh sampled the primary's position, if it did.
    sampled_since: Option<Instant>,
    /// The timeline standbys must be on.
    reference_tl: Option<u64>,
}

impl<'a> Judge<'a> {
    pub(crate) fn new(
        obs: &'a Observations<'a>,
        previous: &'a Topology,
        history: &'a PrimaryHistory,
        primary: Option<(&'a str, &'a Probe)>,
        same_cluster: bool,
        primary_name: Option<&'a str>,
    ) -> Self {
        let primary_probe = primary.map(|(_, p)| p);
        Self {
            obs,
            previous,
            history,
            primary_name,
            primary_probe: primary_probe.filter(|_| same_cluster),
            // Byte lag is measured against this refresh's sample of the primary only: without
            // one (the primary's probe failed, or there is no primary) it is unknown, never an
            // old number.
            sampled_since: primary_probe.filter(|p| p.current_lsn.is_some()).map(|p| p.sent_at),
            // Standbys must follow the primary's timeline; without a verified primary, the
            // highest timeline any member answers from (a member below it did not follow a
            // promotion).
            reference_tl: primary_probe.and_then(|p| p.timeline).or_else(|| {
                obs.addresses
                    .iter()
                    .filter_map(|a| probe_of(obs, &a.name)?.timeline)
                    .max()
            }),
        }
    }

    // A standby never has WAL its primary has not written (walsenders send only flushed WAL, and
    // the primary's write position only grows). A member that had replayed past the position the
    // verified primary reported afterwards replayed something else: a deposed primary's own
    // unacknowledged tail, when Patroni restarts it as a standby before pg_rewind. Its reported
    // timeline may already be the cluster's (Patroni's, or `received_tli`), and by position it
    // looks caught up. The previous refresh's answers all arrived before this one's probes were
    // sent, so the comparison is exact; it needs one earlier answer in recovery, so the first
    // refresh that sees such a member cannot judge it (RELIABILITY.md, section 4).
    fn diverged(&self, name: &str) -> Option<(Lsn, Lsn)> {
        let p = self.primary_probe?;
        let primary_at = p.current_lsn?;
        let before = self.previous.member(name).filter(|m| m.in_recovery == Some(true))?;
        let replayed = before.replay_lsn?;
        (before.observed_at <= p.sent_at && replayed > primary_at).then_some((replayed, primary_at))
    }

    /// What this refresh says about the member at `a`.
    pub(crate) fn member(&self, a: &Address) -> MemberInfo {
        let obs = self.obs;
        let pm = obs.view.and_then(|v| v.member(&a.name));
        let pr = probe_of(obs, &a.name);
        let timeline = match (pr.and_then(|p| p.timeline), pm.and_then(|m| m.timeline)) {
            (Some(sql), Some(patroni)) if pr.is_some_and(|p| p.in_recovery) => Some(sql.max(patroni)),
            (Some(sql), _) => Some(sql),
            (None, patroni) => patroni,
        };
        let noloadbalance = pm.is_some_and(|m| m.tags.noloadbalance);
        let replay_lsn = pr.and_then(|p| p.replay_lsn);
        let is_primary = self.primary_name == Some(a.name.as_str());
        let status = if is_primary {
            MemberStatus::Primary
        } else if let Some((replayed, primary_at)) =
            self.diverged(&a.name).filter(|_| pr.is_some_and(|p| p.in_recovery))
        {
            MemberStatus::Unusable(format!(
                "had replayed {replayed}, past the primary's {primary_at} reported afterwards: its WAL is not \
                 the primary's (diverged; Patroni rewinds or re-clones it)"
            ))
        } else {
            standby_status(obs, a, pm, pr, timeline, self.reference_tl)
        };
        let (lag_bytes, staleness) = match (pr, replay_lsn) {
            (Some(p), Some(replay)) if p.in_recovery => {
                let tl = timeline.unwrap_or(0);
                (
                    self.sampled_since
                        .and_then(|since| self.history.lag_bytes(tl, replay, since)),
                    self.history.staleness(tl, replay, p.received_at),
                )
            }
            _ => (None, None),
        };
        MemberInfo {
            name: a.name.clone(),
            host: a.host.clone(),
            port: a.port,
            api_url: a.api_url.clone(),
            patroni_role: pm.map(|m| m.role.clone()),
            patroni_state: pm.map(|m| m.state.clone()),
            timeline,
            noloadbalance,
            in_recovery: pr.map(|p| p.in_recovery),
            current_lsn: pr.and_then(|p| p.current_lsn),
            replay_lsn,
            replay_paused: pr.is_some_and(|p| p.replay_paused),
            synchronous: pr.is_some_and(|p| p.synchronous),
            lag_bytes,
            staleness: if is_primary { Some(Duration::ZERO) } else { staleness },
            status,
            observed_at: pr.map_or(obs.now, |p| p.received_at),
        }
    }
}

fn standby_status(
    obs: &Observations<'_>,
    a: &Address,
    pm: Option<&crate::patroni::Member>,
    pr: Option<&Probe>,
    timeline: Option<u64>,
    reference_tl: Option<u64>,
) -> MemberStatus {
    let Some(p) = pr else {
        return MemberStatus::Unusable(match obs.probes.get(&a.name) {
            Some(ProbeResult::Failed(e)) => format!("unreachable: {e}"),
            _ => "not probed".to_owned(),
        });
    };
    if !p.in_recovery {
        return MemberStatus::Unusable("out of recovery but not the verified primary (fenced)".to_owned());
    }
    if let Some(m) = pm {
        if !m.state.is_up() {
            return MemberStatus::Unusable(format!("Patroni state is {}", m.state));
        }
    }
    if let (Some(tl), Some(rtl)) = (timeline, reference_tl) {
        if tl != rtl {
            return MemberStatus::Unusable(format!("on timeline {tl}, the cluster is on {rtl}"));
        }
    }
    MemberStatus::Standby
}
