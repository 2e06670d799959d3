//! Routing as a pure function of (topology snapshot, request, now, load, randomness).

use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;

use super::description::{MemberInfo, Topology};
use crate::intent::{Balance, Intent, LagBound};
use crate::patroni::Lsn;
use crate::token::WalToken;

/// What one operation asks of the router.
#[derive(Debug, Clone)]
pub(crate) struct Request<'a> {
    pub(crate) intent: Intent,
    pub(crate) bound: LagBound,
    pub(crate) token: Option<WalToken>,
    pub(crate) fallback_to_primary: bool,
    pub(crate) balance: Balance,
    /// A member that just failed this operation: avoided if anything else qualifies.
    pub(crate) avoid: Option<&'a str>,
}

/// Why a standby was not eligible for a read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason")]
#[non_exhaustive]
pub enum Exclusion {
    /// Not a usable standby (down, fenced, wrong timeline…).
    NotAStandby {
        /// The member's status explained.
        detail: String,
    },
    /// Tagged `noloadbalance` in Patroni.
    NoLoadBalance,
    /// Staleness unknown (no primary sample it has replayed).
    LagUnknown,
    /// Staler than the bound in time.
    TooStale {
        /// Estimated staleness in milliseconds.
        staleness_ms: u64,
        /// The bound in milliseconds.
        bound_ms: u64,
    },
    /// More WAL bytes behind than the bound.
    TooFarBehind {
        /// Bytes not yet replayed.
        lag_bytes: u64,
        /// The bound in bytes.
        bound_bytes: u64,
    },
}

/// Why the primary served a read that asked for a standby.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Fallback {
    /// No standby was under the lag bound.
    NoEligibleStandby,
}

/// The router's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selection {
    /// Run on `members[index]`.
    Member {
        index: usize,
        /// The read wanted a standby but got the primary.
        fallback: Option<Fallback>,
        /// A read-your-writes read on a standby whose last observed replay position is below
        /// the token: the session must check `pg_last_wal_replay_lsn()` before running it.
        verify_token: bool,
    },
    /// Nothing qualifies now; waiting for the topology to change may help.
    Wait(&'static str),
    /// Nothing qualifies and the request says not to fall back.
    NoMember(&'static str),
    /// The request's read-your-writes token is a write the cluster lost: it was acknowledged on
    /// `timeline` at `lsn`, beyond `switch`, where that timeline ended in a failover.
    WriteLost { timeline: u64, lsn: Lsn, switch: Lsn },
}

/// Where a read-your-writes token stands against the cluster's timeline history.
fn token_standing(topology: &Topology, token: &WalToken) -> Option<Selection> {
    if token.is_unknown() || token.timeline == 0 {
        return None;
    }
    let current = topology.current_timeline()?;
    if token.timeline > current {
        // Written on a timeline this snapshot has not seen yet (another process saw the new
        // primary first), or on one that was abandoned: wait for the topology to tell.
        return Some(Selection::Wait(
            "the read-your-writes token is on a timeline the cluster is not on",
        ));
    }
    if token.timeline == current {
        return None;
    }
    match topology.switch_points.get(&token.timeline) {
        Some(&switch) if token.lsn > switch => Some(Selection::WriteLost {
            timeline: token.timeline,
            lsn: token.lsn,
            switch,
        }),
        // Positions up to the switch point are shared by the later timelines: comparable.
        Some(_) => None,
        // Where that timeline ended is not known (yet: Patroni's /history is read after the
        // refresh that finds the new timeline, and never without Patroni): the primary has every
        // write that survived, so it serves the read; a lost write goes unnoticed there.
        None => Some(topology.primary.map_or(
            Selection::Wait("the timeline history is not known and there is no verified primary"),
            |index| Selection::Member {
                index,
                fallback: None,
                verify_token: false,
            },
        )),
    }
}

/// Whether a standby's staleness at `now` satisfies `bound`; `Err` says why not.
pub(crate) fn check_standby(m: &MemberInfo, bound: &LagBound, now: Instant) -> Result<(), Exclusion> {
    if !m.is_standby() {
        return Err(Exclusion::NotAStandby {
            detail: match &m.status {
                super::MemberStatus::Unusable(why) => why.clone(),
                other => format!("{other:?}"),
            },
        });
    }
    if m.noloadbalance {
        return Err(Exclusion::NoLoadBalance);
    }
    if let Some(max) = bound.time {
        let Some(staleness) = m.staleness_at(now) else {
            return Err(Exclusion::LagUnknown);
        };
        if staleness > max {
            return Err(Exclusion::TooStale {
                staleness_ms: millis(staleness),
                bound_ms: millis(max),
            });
        }
    }
    if let Some(max) = bound.bytes {
        let Some(lag) = m.lag_bytes else {
            return Err(Exclusion::LagUnknown);
        };
        if lag > max {
            return Err(Exclusion::TooFarBehind {
                lag_bytes: lag,
                bound_bytes: max,
            });
        }
    }
    Ok(())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Chooses a member for `req`. `load(i)` is the number of operations in flight on member `i`;
/// `turn` is a counter for round-robin.
pub(crate) fn select<R: Rng + ?Sized>(
    topology: &Topology,
    req: &Request<'_>,
    now: Instant,
    load: &dyn Fn(usize) -> usize,
    turn: usize,
    rng: &mut R,
) -> Selection {
    let primary = topology.primary;
    if let Some(standing) = req.token.as_ref().and_then(|t| token_standing(topology, t)) {
        return standing;
    }
    let member_at = |index: usize| Selection::Member {
        index,
        fallback: None,
        verify_token: false,
    };
    match req.intent {
        Intent::Write | Intent::Primary => {
            return primary.map_or(Selection::Wait("no verified primary"), member_at);
        }
        Intent::Standby | Intent::PreferStandby | Intent::Any => {}
    }

    let mut standbys: Vec<usize> = (0..topology.members.len())
        .filter(|&i| check_standby(&topology.members[i], &req.bound, now).is_ok())
        .collect();
    let mut verify_token = false;
    if req.token.is_some_and(|t| t.is_unknown()) {
        // No standby can prove it has the write: the primary serves the read.
        standbys.clear();
    } else if let Some(token) = req.token {
        let caught_up: Vec<usize> = standbys
            .iter()
            .copied()
            .filter(|&i| topology.members[i].replay_lsn.is_some_and(|r| r >= token.lsn))
            .collect();
        if caught_up.is_empty() {
            verify_token = !standbys.is_empty();
        } else {
            standbys = caught_up;
        }
    }

    let mut candidates = standbys;
    if req.intent == Intent::Any {
        if let Some(p) = primary {
            candidates.push(p);
        }
    }
    if candidates.len() > 1 {
        if let Some(avoid) = req.avoid {
            candidates.retain(|&i| topology.members[i].name != avoid);
        }
    }

    if candidates.is_empty() {
        let fallback = match req.intent {
            Intent::Standby => req.fallback_to_primary || req.token.is_some(),
            _ => true,
        };
        return match (fallback, primary) {
            (true, Some(p)) => Selection::Member {
                index: p,
                fallback: (req.intent != Intent::Any).then_some(Fallback::NoEligibleStandby),
                verify_token: false,
            },
            (true, None) => Selection::Wait("no standby under the lag bound and no verified primary"),
            (false, _) => Selection::NoMember("no standby under the lag bound (fallback to the primary is disabled)"),
        };
    }

    let index = match req.balance {
        Balance::Random => candidates[rng.random_range(0..candidates.len())],
        Balance::RoundRobin => candidates[turn % candidates.len()],
        Balance::LeastOutstanding => {
            let a = candidates[rng.random_range(0..candidates.len())];
            let b = candidates[rng.random_range(0..candidates.len())];
            if load(b) < load(a) {
                b
            } else {
                a
            }
        }
    };
    let verify_token = verify_token && Some(index) != primary;
    Selection::Member {
        index,
        fallback: None,
        verify_token,
    }
}
