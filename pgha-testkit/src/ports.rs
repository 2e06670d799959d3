//! Free loopback ports for the processes a cluster starts.
//!
//! A port the kernel hands out for `bind(0)` comes from its ephemeral range
//! (`net.ipv4.ip_local_port_range`), the same range every outgoing connection on the machine takes
//! its source port from. Between choosing such a port and the process binding it, any outgoing
//! connection (a test's HTTP request, a pool's new connection) may take it, and a postmaster that
//! cannot bind exits, which Patroni reports only as "Failed to bootstrap cluster". The listening
//! ports of a cluster are therefore chosen at random *below* the ephemeral range, where nothing
//! takes a port unless it listens on it.

use std::net::TcpListener;
use std::ops::RangeInclusive;

use rand::seq::IteratorRandom;

use crate::error::{Error, Result};

/// Where listening ports are chosen from when the ephemeral range starts above it: clear of the
/// well-known and registered ports most services listen on (PostgreSQL 5432, Patroni 8008,
/// etcd 2379/2380).
const LOWEST: u16 = 20_000;

/// Linux's default ephemeral range, used when `/proc` cannot be read.
const DEFAULT_EPHEMERAL: RangeInclusive<u16> = 32_768..=60_999;

/// The kernel's ephemeral port range.
fn ephemeral_range() -> RangeInclusive<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| parse_range(&s))
        .unwrap_or(DEFAULT_EPHEMERAL)
}

/// Parses `ip_local_port_range` ("32768\t60999\n").
fn parse_range(s: &str) -> Option<RangeInclusive<u16>> {
    let mut parts = s.split_whitespace().map(str::parse::<u16>);
    let (low, high) = (parts.next()?.ok()?, parts.next()?.ok()?);
    (low <= high).then_some(low..=high)
}

/// The ports listening ports are chosen from: `LOWEST` up to just below the ephemeral range, or
/// `None` when the ephemeral range leaves too few below it (the kernel's choice is used then).
fn listening_range(ephemeral: &RangeInclusive<u16>) -> Option<RangeInclusive<u16>> {
    let top = ephemeral.start().checked_sub(1)?;
    (top >= LOWEST.saturating_add(1_000)).then_some(LOWEST..=top)
}

/// Picks `n` distinct free TCP ports on 127.0.0.1, outside the kernel's ephemeral range.
///
/// Each candidate is bound to check it is free, and all listeners are held until every port is
/// chosen, so the ports are distinct; they are released before returning. Another process that
/// *listens* could still take one in that window (two clusters starting at once picking the same
/// random port, about one chance in ten thousand per port); a process that cannot bind makes
/// [`LocalCluster::start`] fail with the process log.
///
/// [`LocalCluster::start`]: crate::LocalClusterBuilder::start
pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>> {
    let Some(range) = listening_range(&ephemeral_range()) else {
        return kernel_ports(n);
    };
    let mut rng = rand::rng();
    let mut listeners = Vec::with_capacity(n);
    // Enough random candidates that a handful of busy ports cannot exhaust them.
    for port in range.clone().choose_multiple(&mut rng, n + 64) {
        if listeners.len() == n {
            break;
        }
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            listeners.push(l);
        }
    }
    if listeners.len() < n {
        return Err(Error::Setup(format!(
            "finding free ports: fewer than {n} of the tried ports in {}-{} could be bound",
            range.start(),
            range.end()
        )));
    }
    ports_of(&listeners)
}

/// Ports the kernel chooses (`bind(0)`), for machines whose ephemeral range leaves no room below.
fn kernel_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::Setup(format!("finding free ports: {e}")))?;
    ports_of(&listeners)
}

fn ports_of(listeners: &[TcpListener]) -> Result<Vec<u16>> {
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::Setup(format!("finding free ports: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports = free_ports(8).expect("ports");
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 8);
        let ephemeral = ephemeral_range();
        for p in ports {
            assert!(
                !ephemeral.contains(&p),
                "{p} is in the ephemeral range {ephemeral:?}, where outgoing connections may take it"
            );
            TcpListener::bind(("127.0.0.1", p)).expect("port is free again");
        }
    }

    #[test]
    fn the_ephemeral_range_is_read_and_leaves_room_below_or_falls_back() {
        assert_eq!(parse_range("32768\t60999\n"), Some(32_768..=60_999));
        assert_eq!(parse_range("1024 65535"), Some(1_024..=65_535));
        assert_eq!(parse_range("60999 32768"), None);
        assert_eq!(parse_range("garbage"), None);
        assert_eq!(listening_range(&(32_768..=60_999)), Some(20_000..=32_767));
        // An ephemeral range that starts low leaves no room: the kernel's ports are used.
        assert_eq!(listening_range(&(1_024..=65_535)), None);
        assert_eq!(listening_range(&(20_500..=65_535)), None);
        assert_eq!(listening_range(&(0..=65_535)), None);
    }
}
