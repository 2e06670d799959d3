//! The topology task: the only owner of mutable topology state. It refreshes on a timer and on
//! request (rate-limited), publishes immutable [`Snapshot`]s over a `watch` channel, manages the
//! member pools and emits [`TopologyEvent`]s.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{debug, info, warn};

use super::description::{self, Address, Observations, PrimaryHistory, Topology};
use super::selection::check_standby;
use super::{discovery, probe, Snapshot, Source};
use crate::config::Settings;
use crate::etcd::DcsState;
use crate::events::TopologyEvent;
use crate::metrics::{bump, Counters};
use crate::pool::{MemberCounters, MemberHandle};
use crate::telemetry;

/// How long the last view from etcd is still used after its watch was lost, while the watch task
/// reconnects to another etcd member (normally well within this); after that, the Patroni REST
/// APIs are polled, and without an answer the known members are probed with SQL.
const DCS_GRACE: Duration = Duration::from_secs(3);

/// While etcd names a leader whose database is still in recovery (Patroni took the leader key and
/// is promoting it: typically 0.1 s), the topology task re-probes this often instead of waiting
/// `min_refresh_interval`, so writes resume within about this much of the promotion. Only with
/// the etcd source: such a refresh reads no REST API, it sends one probe per member.
const PROMOTION_RECHECK: Duration = Duration::from_millis(20);

/// How long a leader may stay in recovery and still be re-probed every `PROMOTION_RECHECK`: a
/// promotion takes well under this; a leader that stays a standby longer is something else
/// (then `min_refresh_interval` paces the refreshes, as for any disagreement).
const PROMOTION_WINDOW: Duration = Duration::from_secs(2);

/// When the next refresh is due, as one refresh concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// All is well: after `refresh_interval`.
    Steady,
    /// Something is wrong: after `min_refresh_interval`.
    Soon,
    /// etcd names a leader that is being promoted: after `PROMOTION_RECHECK`.
    Promptly,
}

/// Messages to the topology task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Something failed in a way that suggests the topology changed.
    Refresh(&'static str),
    /// Stop: close every pool and exit.
    Shutdown,
}

pub(crate) struct Worker {
    settings: Settings,
    patroni: crate::patroni::Api,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// What Patroni's keys in etcd say, when discovery watches etcd.
    dcs: Option<watch::Receiver<Arc<DcsState>>>,
    /// Tells the etcd watch whether the client is in use (not dormant).
    in_use: watch::Sender<bool>,
    configured: Vec<Url>,
    learned: Vec<Url>,
    /// In steady state (the last refresh confirmed a primary and noted nothing) the one Patroni
    /// endpoint to poll, picked at random among those that answered, so that a fleet spreads
    /// over the members; every endpoint is polled again as soon as anything is wrong.
    steady_endpoint: Option<Url>,
    /// The leader etcd names while its database is still in recovery, and since when.
    promoting: Option<(String, Instant)>,
    /// Whether the refresh in progress (or the last one) left the standbys unprobed.
    standbys_unprobed: bool,
    scope: discovery::ScopeRule,
    history: PrimaryHistory,
    /// Patroni's `/history` as last read, with the system identifier it belongs to: the one
    /// place the timeline history lives; every snapshot of the same database gets it.
    switch_points: (Option<String>, Arc<BTreeMap<u64, crate::patroni::Lsn>>),
    /// Each member's pool, by name, host and port.
    handles: HashMap<(String, String, u16), Arc<MemberHandle>>,
    counters: HashMap<String, Arc<MemberCounters>>,
    generations: HashMap<String, u64>,
    current: Arc<Topology>,
    publisher: watch::Sender<Arc<Snapshot>>,
    events: broadcast::Sender<TopologyEvent>,
    metrics: Arc<Counters>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("generation", &self.current.generation)
            .finish()
    }
}

impl Worker {
    pub(crate) fn new(
        settings: Settings,
        publisher: watch::Sender<Arc<Snapshot>>,
        events: broadcast::Sender<TopologyEvent>,
        metrics: Arc<Counters>,
    ) -> crate::Result<Self> {
        let patroni = crate::patroni::Api::new(&settings)?;
        let tls = crate::tls::postgres_tls(&settings)?;
        let current = publisher.borrow().topology.clone();
        let (in_use, in_use_rx) = watch::channel(true);
        let dcs = crate::etcd::watch(&settings, in_use_rx)?;
        Ok(Self {
            dcs,
            in_use,
            configured: settings.patroni_urls.clone(),
            settings,
            patroni,
            tls,
            learned: Vec::new(),
            steady_endpoint: None,
            promoting: None,
            standbys_unprobed: false,
            scope: discovery::ScopeRule::Unknown,
            history: PrimaryHistory::default(),
            switch_points: Default::default(),
            handles: HashMap::new(),
            counters: HashMap::new(),
            generations: HashMap::new(),
            current,
            publisher,
            events,
            metrics,
        })
    }

    /// Runs until shut down or until every client handle is gone.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut next = tokio::time::Instant::now();
        let mut last = None::<tokio::time::Instant>;
        let mut dcs_changes = self.dcs.clone();
        if let Some(rx) = &mut dcs_changes {
            // The first refresh uses etcd's first answer (or its first failure) rather than
            // finding nothing read yet: connecting, listing and opening the watch take a few
            // requests, each bounded by the Patroni timeout.
            let first = self.settings.patroni_timeout.saturating_mul(3);
            let _ = tokio::time::timeout(first, rx.changed()).await;
        }
        let mut activity = Activity::new(self.metrics.operations.load(std::sync::atomic::Ordering::Relaxed));
        // Operations that may read from a standby: without any for `idle_timeout`, only the
        // members that may be the primary are probed (a client that only writes holds no
        // connection to a standby and sends it nothing).
        let mut standby_reads = Activity::with_grace(self.standby_operations());
        loop {
            tokio::select! {
                changed = dcs_changed(&mut dcs_changes) => {
                    if !changed {
                        dcs_changes = None;
                    } else if !activity.dormant {
                        // A change in etcd (a leader key written or deleted, a member's state):
                        // confirm it now, not at the next timer. A dormant client reads the
                        // latest keys when it wakes.
                        next = tokio::time::Instant::now();
                    }
                }
                () = tokio::time::sleep_until(next) => {
                    let started = tokio::time::Instant::now();
                    self.close_idle_connections();
                    let operations = self.metrics.operations.load(std::sync::atomic::Ordering::Relaxed);
                    let waiters = self.metrics.waiters.load(std::sync::atomic::Ordering::Relaxed);
                    // The first refresh always runs (`connect` waits for it).
                    if last.is_some() && activity.tick(operations, waiters > 0, started, self.settings.idle_timeout) {
                        debug!(idle_timeout = ?self.settings.idle_timeout, "no operation for idle_timeout: probing stops until the next one");
                        self.set_dormant();
                        self.in_use.send_replace(false);
                    }
                    if activity.dormant {
                        // Only idle connections to close until an operation wakes the client.
                        telemetry::members(&self.publisher.borrow());
                        let pace = (self.settings.idle_timeout / 2).max(self.settings.refresh_interval);
                        next = crate::time::tokio_after(started, pace);
                        continue;
                    }
                    if last.is_some() && standby_reads.tick(self.standby_operations(), waiters > 0, started, self.settings.idle_timeout) {
                        debug!(idle_timeout = ?self.settings.idle_timeout, "no operation that may read from a standby for idle_timeout: only the primary is probed until the next one");
                    }
                    let due = self.refresh(!standby_reads.dormant).await;
                    telemetry::refreshed(self.current.source, started.elapsed());
                    telemetry::members(&self.publisher.borrow());
                    last = Some(started);
                    let period = match due {
                        Next::Steady => self.settings.refresh_interval,
                        Next::Soon => self.settings.min_refresh_interval,
                        Next::Promptly => PROMOTION_RECHECK.min(self.settings.min_refresh_interval),
                    };
                    next = crate::time::tokio_after(started, period);
                }
                command = commands.recv() => match command {
                    Some(Command::Refresh(reason)) => {
                        let waiters = self.metrics.waiters.load(std::sync::atomic::Ordering::Relaxed);
                        let standby_wanted = standby_reads.dormant
                            && (self.standby_operations() != standby_reads.operations || waiters > 0);
                        if standby_wanted {
                            // Probe the standbys now: the operation waits for their staleness.
                            debug!(reason, "a read that may use a standby: probing the standbys again");
                            standby_reads.wake(tokio::time::Instant::now());
                            if !activity.dormant {
                                next = tokio::time::Instant::now();
                                continue;
                            }
                        }
                        if activity.dormant {
                            debug!(reason, "an operation woke the idle client: refreshing");
                            activity.wake(tokio::time::Instant::now());
                            self.in_use.send_replace(true);
                            next = tokio::time::Instant::now();
                            continue;
                        }
                        let earliest = last.map_or_else(tokio::time::Instant::now, |l| crate::time::tokio_after(l, self.settings.min_refresh_interval));
                        if earliest < next {
                            debug!(reason, "topology refresh requested");
                            next = earliest;
                        }
                    }
                    Some(Command::Shutdown) | None => break,
                }
            }
        }
        self.close();
    }

    /// Closes pooled connections unused for `idle_timeout`.
    fn close_idle_connections(&self) {
        let idle_timeout = self.settings.idle_timeout;
        for handle in self.handles.values() {
            handle.pool.retain(|_, metrics| metrics.last_used() < idle_timeout);
        }
    }

    /// Publishes the current snapshot again, marked dormant: operations ask for a refresh first.
    fn set_dormant(&self) {
        let current = self.publisher.borrow().clone();
        self.publisher.send_replace(Arc::new(Snapshot {
            topology: current.topology.clone(),
            handles: current.handles.clone(),
            closed: current.closed,
            dormant: true,
            standbys_unprobed: current.standbys_unprobed,
        }));
    }

    fn standby_operations(&self) -> u64 {
        self.metrics
            .standby_operations
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn close(&mut self) {
        for handle in self.handles.values() {
            handle.pool.close();
        }
        self.handles.clear();
        let topology = self.current.clone();
        self.publisher.send_replace(Arc::new(Snapshot {
            topology,
            handles: Vec::new(),
            closed: true,
            dormant: false,
            standbys_unprobed: false,
        }));
        info!("pgha topology task stopped");
    }

    fn endpoints(&self) -> Vec<Url> {
        let mut all = self.configured.clone();
        for url in &self.learned {
            if !all.contains(url) {
                all.push(url.clone());
            }
        }
        all
    }

    /// The view from etcd, if discovery watches etcd and its view is current: the watch is live,
    /// or was lost less than `DCS_GRACE` ago.
    fn dcs_view(&self) -> Result<Arc<DcsState>, Option<String>> {
        let Some(rx) = &self.dcs else { return Err(None) };
        let state = rx.borrow().clone();
        if state.view.is_some() && (state.live || state.since.elapsed() < DCS_GRACE) {
            Ok(state)
        } else {
            Err(state.error.clone())
        }
    }

    /// Known addresses for when Patroni does not answer: the current members and the seeds.
    fn known(&self) -> Vec<Address> {
        let mut known: Vec<Address> = self
            .current
            .members
            .iter()
            .map(|m| Address {
                name: m.name.clone(),
                host: m.host.clone(),
                port: m.port,
                api_url: m.api_url.clone(),
            })
            .collect();
        for (host, port) in &self.settings.seed_hosts {
            if !known.iter().any(|a| &a.host == host && a.port == *port) {
                known.push(Address {
                    name: format!("{host}:{port}"),
                    host: host.clone(),
                    port: *port,
                    api_url: None,
                });
            }
        }
        known
    }

    /// One refresh. Returns when the next one is due: soon if there is no primary or Patroni and
    /// the databases disagree, promptly while etcd names a leader still being promoted. Without
    /// `standbys`, only the members that may be the primary are probed (see [`probe_scope`]).
    async fn refresh(&mut self, standbys: bool) -> Next {
        bump(&self.metrics.refreshes);
        let endpoints = match self.steady_endpoint.take() {
            Some(one) => vec![one],
            None => self.endpoints(),
        };
        let dcs = self.dcs_view();
        let (poll, view_source) = match &dcs {
            Ok(state) => {
                let view = state.view.clone().into_iter();
                let origin = state.endpoint.clone().into_iter();
                let poll = discovery::Poll {
                    views: origin.zip(view).collect(),
                    errors: Vec::new(),
                };
                (poll, Source::Dcs)
            }
            Err(dcs_error) => {
                let mut poll = if endpoints.is_empty() {
                    discovery::Poll::default()
                } else {
                    let sent = endpoints.len() as u64;
                    self.metrics
                        .patroni_requests
                        .fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
                    telemetry::patroni_requests(sent);
                    discovery::poll(&self.patroni, &endpoints).await
                };
                if let (Some(error), Some(etcd)) = (dcs_error, &self.settings.etcd) {
                    if let Some(url) = etcd.urls.first() {
                        poll.errors.insert(0, (url.clone(), error.clone()));
                    }
                }
                (poll, Source::Patroni)
            }
        };
        for (url, error) in &poll.errors {
            debug!(endpoint = %url, error, "Patroni endpoint did not answer");
        }
        let scope = discovery::next_scope(
            &self.scope,
            self.settings.patroni_scope.as_deref(),
            &poll.views,
            &self.configured,
        );
        if scope != self.scope {
            info!(from = ?self.scope, to = ?scope, "Patroni scope decided by the configured endpoints");
            self.scope = scope;
        }
        for (url, view) in &poll.views {
            if let Some(reason) = discovery::reject_reason(view, &self.scope, &poll.views) {
                warn!(endpoint = %url, reason, "Patroni endpoint answer ignored");
            }
        }
        let ranked = discovery::ranked_views(&poll.views, &self.scope);
        if ranked.is_empty() && !endpoints.is_empty() {
            bump(&self.metrics.patroni_unreachable);
        }
        let known = self.known();
        // Probe every member any acceptable view names (once per address), so that a view
        // naming the wrong leader cannot hide the right one.
        let mut probe_addresses: Vec<Address> = Vec::new();
        for a in ranked
            .iter()
            .flat_map(|v| description::addresses(Some(v), &known))
            .chain(if ranked.is_empty() { known.clone() } else { Vec::new() })
        {
            if !probe_addresses.iter().any(|b| b.host == a.host && b.port == a.port) {
                probe_addresses.push(a);
            }
        }
        let (first, rest) = if standbys {
            (probe_addresses, Vec::new())
        } else {
            let primary = self.current.primary().map(|p| (p.host.as_str(), p.port));
            probe_scope(probe_addresses, &ranked, primary)
        };
        let mut by_address = self.probe(&first).await;
        // The members that may be the primary did not confirm one: something is changing, so
        // every member is probed, as with reads (the fence and a Patroni-less choice need them).
        let confirmed = by_address
            .values()
            .any(|r| matches!(r, description::ProbeResult::Ok(p) if !p.in_recovery));
        self.standbys_unprobed = !rest.is_empty() && confirmed;
        if !rest.is_empty() && !confirmed {
            by_address.extend(self.probe(&rest).await);
        }
        // The view: the best-ranked one whose leader its database confirms (out of recovery),
        // else the best-ranked one.
        let confirmed = |v: &&&crate::patroni::ClusterView| {
            v.leader().is_some_and(|l| {
                let key = (l.host.clone().unwrap_or_default(), l.port.unwrap_or(0));
                matches!(by_address.get(&key), Some(description::ProbeResult::Ok(p)) if !p.in_recovery)
            })
        };
        let view = ranked.iter().find(confirmed).or(ranked.first()).copied();
        if let Some(view) = view {
            self.learned = view
                .members
                .iter()
                .filter_map(|m| m.api_url.as_deref().and_then(crate::patroni::base_url))
                .collect();
        }
        let addresses = description::addresses(view, &known);
        let probes: BTreeMap<_, _> = addresses
            .iter()
            .filter_map(|a| Some((a.name.clone(), by_address.get(&(a.host.clone(), a.port))?.clone())))
            .collect();
        let now = Instant::now();
        let observations = Observations {
            view,
            view_source,
            addresses: &addresses,
            probes: &probes,
            now,
        };
        let mut next = description::build(&observations, &self.current, &mut self.history);
        if next.members.is_empty() {
            // Say why nothing is known: the endpoints' errors name the real cause (timeouts
            // under load, refused connections, TLS, authentication) where "no member known"
            // cannot. (Only then: a note also asks for quicker refreshes.)
            for (url, error) in &poll.errors {
                next.notes.push(format!("Patroni {url}: {error}"));
            }
        }
        for note in &next.notes {
            debug!(note, "topology");
        }
        if let Some(entries) = dcs.as_ref().ok().and_then(|state| state.history.as_deref()) {
            self.switch_points = (next.system_identifier.clone(), Arc::new(switch_points(entries)));
        }
        let (sysid, points) = &self.switch_points;
        if *sysid == next.system_identifier {
            next.switch_points = points.clone();
        }
        // Where each ended timeline ended, once the current one needs it: read after publishing
        // (a new primary is not held up), from the endpoint whose view was used (not from one
        // of another cluster), for the next snapshots.
        let history_from = next
            .current_timeline()
            .filter(|&tl| tl > 1 && !next.switch_points.contains_key(&(tl - 1)))
            .and(view)
            .filter(|_| view_source == Source::Patroni)
            .and_then(|v| poll.views.iter().find(|(_, w)| std::ptr::eq(w, v)))
            .map(|(url, _)| url.clone());
        let needs_attention = next.primary.is_none() || !next.notes.is_empty();
        let candidate = view
            .and_then(|v| v.leader())
            .filter(|_| view_source == Source::Dcs && next.primary.is_none())
            .filter(|leader| description::succeeded(&probes, &leader.name).is_some_and(|p| p.in_recovery))
            .map(|leader| leader.name.clone());
        self.promoting = match (candidate, self.promoting.take()) {
            (Some(name), Some((before, since))) if name == before => Some((name, since)),
            (Some(name), _) => Some((name, Instant::now())),
            (None, _) => None,
        };
        let promoting = self
            .promoting
            .as_ref()
            .is_some_and(|(_, since)| since.elapsed() < PROMOTION_WINDOW);
        if !needs_attention && view_source == Source::Patroni {
            use rand::seq::IndexedRandom;
            let answered: Vec<&Url> = poll
                .views
                .iter()
                .filter(|(_, v)| ranked.iter().any(|r| std::ptr::eq(*r, v)))
                .map(|(url, _)| url)
                .collect();
            self.steady_endpoint = answered.choose(&mut rand::rng()).map(|u| (*u).clone());
        }
        let sysid = next.system_identifier.clone();
        self.publish(next);
        if let Some(url) = history_from {
            bump(&self.metrics.patroni_requests);
            telemetry::patroni_requests(1);
            if let Some(entries) = discovery::history(&self.patroni, &url).await {
                self.switch_points = (sysid, Arc::new(switch_points(&entries)));
            }
        }
        if promoting {
            Next::Promptly
        } else if needs_attention {
            Next::Soon
        } else {
            Next::Steady
        }
    }

    /// Probes the members at `addresses` (one probe each), by address.
    async fn probe(&mut self, addresses: &[Address]) -> HashMap<(String, u16), description::ProbeResult> {
        let members: Vec<Arc<MemberHandle>> = addresses.iter().filter_map(|a| self.handle_for(a, false)).collect();
        let operated = self.metrics.operations.load(std::sync::atomic::Ordering::Relaxed) > 0;
        let mut by_name = probe::probe_all(&self.settings, &members, operated).await;
        addresses
            .iter()
            .filter_map(|a| Some(((a.host.clone(), a.port), by_name.remove(&a.name)?)))
            .collect()
    }

    fn publish(&mut self, next: Topology) {
        let previous = std::mem::replace(&mut self.current, Arc::new(next));
        let next = self.current.clone();
        let now = Instant::now();
        self.emit_changes(&previous, &next, now);

        let mut handles = Vec::with_capacity(next.members.len());
        let mut keep = HashMap::new();
        for m in &next.members {
            let address = Address {
                name: m.name.clone(),
                host: m.host.clone(),
                port: m.port,
                api_url: m.api_url.clone(),
            };
            let was_primary = previous.member(&m.name).is_some_and(|p| p.is_primary());
            let demoted = was_primary && !m.is_primary();
            let handle = self.handle_for(&address, demoted);
            if let Some(h) = &handle {
                keep.insert(handle_key(&address), h.clone());
            }
            handles.push(handle);
        }
        for (key, handle) in self.handles.drain() {
            if !keep.contains_key(&key) {
                handle.pool.close();
            }
        }
        self.handles = keep;
        self.publisher.send_replace(Arc::new(Snapshot {
            topology: next,
            handles,
            closed: false,
            dormant: false,
            standbys_unprobed: self.standbys_unprobed,
        }));
    }

    /// The member's handle (its pool): the current one, or a new one (a new generation) when
    /// there is none or the member was `demoted` from primary, whose pool is purged.
    fn handle_for(&mut self, address: &Address, demoted: bool) -> Option<Arc<MemberHandle>> {
        let key = handle_key(address);
        match self.handles.get(&key) {
            Some(h) if !demoted => return Some(h.clone()),
            Some(old) => {
                old.pool.close();
                self.handles.remove(&key);
            }
            None => {}
        }
        let generation = self.generations.entry(address.name.clone()).or_insert(0);
        *generation += 1;
        let generation = *generation;
        if demoted {
            info!(member = %address.name, generation, "member is no longer the primary: its pool was purged");
            self.send_event(TopologyEvent::PoolPurged {
                name: address.name.clone(),
                generation,
            });
        }
        let counters = self.counters.entry(address.name.clone()).or_default().clone();
        match MemberHandle::new(&self.settings, &self.tls, address.clone(), generation, counters) {
            Ok(h) => {
                let h = Arc::new(h);
                self.handles.insert(key, h.clone());
                Some(h)
            }
            Err(e) => {
                warn!(member = %address.name, error = %e, "could not create a pool");
                None
            }
        }
    }

    /// Publishes `event` to subscribers, counted by kind.
    fn send_event(&self, event: TopologyEvent) {
        debug!(?event, "topology event");
        telemetry::topology_event(event.kind());
        let _ = self.events.send(event);
    }

    fn emit_changes(&self, previous: &Topology, next: &Topology, now: Instant) {
        let send = |event: TopologyEvent| self.send_event(event);
        let (old_primary, new_primary) = (previous.primary(), next.primary());
        if old_primary.map(|m| &m.name) != new_primary.map(|m| &m.name) {
            if previous.generation > 0 && new_primary.is_some() {
                bump(&self.metrics.failovers_seen);
                telemetry::primary_changed();
            }
            info!(
                from = old_primary.map(|m| m.name.as_str()),
                to = new_primary.map(|m| m.name.as_str()),
                timeline = new_primary.and_then(|m| m.timeline),
                "primary changed"
            );
            send(TopologyEvent::LeaderChanged {
                from: old_primary.map(|m| m.name.clone()),
                to: new_primary.map(|m| m.name.clone()),
                timeline: new_primary.and_then(|m| m.timeline),
            });
        }
        if previous.source != next.source && previous.source != Source::Unknown {
            if next.source == Source::SqlProbe {
                warn!("no Patroni endpoint answers: routing from direct SQL probes of the known members");
            }
            send(TopologyEvent::SourceChanged {
                from: previous.source,
                to: next.source,
            });
        }
        for m in &next.members {
            let before = previous.member(&m.name);
            if before.is_none() {
                send(TopologyEvent::MemberJoined { name: m.name.clone() });
            }
            let was_ok =
                before.is_some_and(|b| check_standby(b, &self.settings.lag_bound, previous.observed_at).is_ok());
            match check_standby(m, &self.settings.lag_bound, now) {
                Ok(()) if !was_ok => send(TopologyEvent::StandbyIncluded { name: m.name.clone() }),
                Err(reason) if was_ok => {
                    info!(member = %m.name, ?reason, "standby excluded from reads");
                    send(TopologyEvent::StandbyExcluded {
                        name: m.name.clone(),
                        reason,
                    });
                }
                _ => {}
            }
        }
        for m in &previous.members {
            if next.member(&m.name).is_none() {
                send(TopologyEvent::MemberLeft { name: m.name.clone() });
            }
        }
    }
}

/// Without reads that may use a standby, which of `addresses` to probe first: the leader each
/// acceptable view names and the current primary; the rest only if none of those confirms a
/// primary. Without a view naming a leader (Patroni unreachable, no leader) every member is
/// probed: choosing a primary from SQL alone needs all of them.
fn probe_scope(
    addresses: Vec<Address>,
    ranked: &[&crate::patroni::ClusterView],
    current_primary: Option<(&str, u16)>,
) -> (Vec<Address>, Vec<Address>) {
    let leaders: Vec<(String, u16)> = ranked
        .iter()
        .filter_map(|v| v.leader())
        .map(|l| (l.host.clone().unwrap_or_default(), l.port.unwrap_or(0)))
        .collect();
    if leaders.is_empty() {
        return (addresses, Vec::new());
    }
    addresses.into_iter().partition(|a| {
        leaders.iter().any(|(host, port)| *host == a.host && *port == a.port)
            || current_primary.is_some_and(|(host, port)| host == a.host && port == a.port)
    })
}

fn handle_key(address: &Address) -> (String, String, u16) {
    (address.name.clone(), address.host.clone(), address.port)
}

/// Whether the client is in use: operations counted at each timer tick. After `idle_timeout`
/// without one — or right after its first refresh, if it has never run an operation — it is
/// dormant (no probes, no REST polls) until an operation asks for a refresh. A caller waiting in
/// `wait_for_topology` keeps it awake. The same for the operations that may read from a
/// standby ([`Activity::with_grace`]: those are dormant only after `idle_timeout`, so a client
/// shows its standbys for that long after it connects).
#[derive(Debug)]
struct Activity {
    operations: u64,
    last: tokio::time::Instant,
    dormant: bool,
    /// Never used is not idle until `idle_timeout` has passed.
    grace: bool,
}

impl Activity {
    fn new(operations: u64) -> Self {
        Self {
            operations,
            last: tokio::time::Instant::now(),
            dormant: false,
            grace: false,
        }
    }

    /// Dormant only after `idle_timeout` without an operation, used or not before.
    fn with_grace(operations: u64) -> Self {
        Self {
            grace: true,
            ..Self::new(operations)
        }
    }

    /// Records the operation count at `now` (and whether anyone waits for the topology); true
    /// when the client just became dormant.
    fn tick(&mut self, operations: u64, waited_on: bool, now: tokio::time::Instant, idle_timeout: Duration) -> bool {
        if operations != self.operations || waited_on {
            self.operations = operations;
            self.last = now;
        }
        let unused = operations == 0 && !self.grace;
        let idle = !waited_on && (unused || now.saturating_duration_since(self.last) >= idle_timeout);
        let fell_asleep = idle && !self.dormant;
        self.dormant = idle;
        fell_asleep
    }

    fn wake(&mut self, now: tokio::time::Instant) {
        self.dormant = false;
        self.last = now;
    }
}

/// Where each ended timeline ended, from Patroni's history.
fn switch_points(entries: &[crate::patroni::HistoryEntry]) -> BTreeMap<u64, crate::patroni::Lsn> {
    entries
        .iter()
        .map(|e| (e.timeline, crate::patroni::Lsn(e.switch_lsn)))
        .collect()
}

/// Waits for the next change in etcd; `false` once the watch task is gone (then never again).
async fn dcs_changed(rx: &mut Option<watch::Receiver<Arc<DcsState>>>) -> bool {
    match rx {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_standby_reads_the_leader_and_the_primary_are_probed_first() {
        let address = |i: u16| Address {
            name: format!("m{i}"),
            host: "127.0.0.1".into(),
            port: 5430 + i,
            api_url: None,
        };
        let view = |leader: Option<u16>| {
            let members: Vec<String> = (0..3)
                .map(|i| {
                    let role = if Some(i) == leader { "leader" } else { "replica" };
                    format!(
                        r#"{{"name": "m{i}", "role": "{role}", "state": "running", "host": "127.0.0.1", "port": {}}}"#,
                        5430 + i
                    )
                })
                .collect();
            let json = format!(r#"{{"members": [{}]}}"#, members.join(","));
            crate::patroni::ClusterView::from_json(json.as_bytes()).expect("view")
        };
        let names = |a: &[Address]| a.iter().map(|a| a.name.clone()).collect::<Vec<_>>();
        let all = || (0..3).map(address).collect::<Vec<_>>();

        let led_by_1 = view(Some(1));
        let (first, rest) = probe_scope(all(), &[&led_by_1], None);
        assert_eq!(
            (names(&first), names(&rest)),
            (vec!["m1".into()], vec!["m0".into(), "m2".into()])
        );
        // A new leader and the primary of the last refresh: both first.
        let (first, rest) = probe_scope(all(), &[&led_by_1], Some(("127.0.0.1", 5432)));
        assert_eq!(
            (names(&first), names(&rest)),
            (vec!["m1".into(), "m2".into()], vec!["m0".into()])
        );
        // No view names a leader, or there is no view: everybody.
        let leaderless = view(None);
        for ranked in [vec![&leaderless], vec![]] {
            let (first, rest) = probe_scope(all(), &ranked, Some(("127.0.0.1", 5432)));
            assert_eq!((first.len(), rest.len()), (3, 0));
        }
    }

    #[test]
    fn a_client_without_operations_for_idle_timeout_is_dormant_until_woken() {
        let idle = Duration::from_secs(30);
        let start = tokio::time::Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut activity = Activity::new(0);
        activity.last = start;
        // Never used: dormant at once, unless someone waits for the topology.
        assert!(!activity.tick(0, true, at(1), idle));
        assert!(activity.tick(0, false, at(2), idle));
        activity.wake(at(3));
        assert!(!activity.tick(1, false, at(3), idle));
        assert!(!activity.tick(1, false, at(32), idle));
        // An operation counted restarts the clock; so does a waiter.
        assert!(!activity.tick(2, false, at(32), idle));
        assert!(!activity.tick(2, true, at(61), idle));
        assert!(!activity.tick(2, false, at(90), idle));
        assert!(activity.tick(2, false, at(91), idle), "falls asleep once");
        assert!(activity.dormant);
        assert!(!activity.tick(2, false, at(120), idle), "stays asleep, reported once");
        assert!(activity.dormant);
        activity.wake(at(121));
        assert!(!activity.dormant);
        assert!(!activity.tick(2, false, at(150), idle));
        assert!(activity.tick(2, false, at(151), idle));

        // With grace, never used is idle only once idle_timeout has passed.
        let mut reads = Activity::with_grace(0);
        reads.last = start;
        assert!(!reads.tick(0, false, at(29), idle));
        assert!(reads.tick(0, false, at(30), idle));
        reads.wake(at(31));
        assert!(!reads.tick(1, false, at(60), idle));
        assert!(reads.tick(1, false, at(91), idle));
    }
}
