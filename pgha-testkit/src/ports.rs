//! Free loopback ports.

use std::net::TcpListener;

use crate::error::{Error, Result};

/// Picks `n` distinct free TCP ports on 127.0.0.1.
///
/// All listeners are held until every port is chosen, so the ports are distinct; they are released
/// before returning, which leaves a small window in which another process could take one. A port
/// taken in that window makes the affected process fail to start, which [`LocalCluster::start`]
/// reports with the process log.
///
/// [`LocalCluster::start`]: crate::LocalClusterBuilder::start
pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::Setup(format!("finding free ports: {e}")))?;
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
    fn ports_are_distinct_and_bindable() {
        let ports = free_ports(8).expect("ports");
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 8);
        for p in ports {
            TcpListener::bind(("127.0.0.1", p)).expect("port is free again");
        }
    }
}
