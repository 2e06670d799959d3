//! cgroup v2 groups per node, so that firewall rules can tell one node's traffic from another's
//! although every node listens on 127.0.0.1 (iptables' `cgroup --path` match).

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on
/// hybrid systems).
pub(crate) fn root() -> Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").map_err(|e| Error::Setup(format!("/proc/mounts: {e}")))?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, path, fstype) = (f.next()?, f.next()?, f.next()?);
            (fstype == "cgroup2").then(|| PathBuf::from(path))
        })
        .next()
        .ok_or_else(|| Error::Setup("no cgroup2 hierarchy is mounted (network partitions need one)".into()))
}

/// Moves `pids` into the group `name` (created if needed); returns the group's path relative to
/// the root, as iptables wants it.
pub(crate) fn enter(name: &str, pids: &[i32]) -> Result<String> {
    let dir = root()?.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::Setup(format!("creating cgroup {}: {e}", dir.display())))?;
    for pid in pids {
        // A process that exited meanwhile cannot be moved; that is fine.
        if let Err(e) = std::fs::write(dir.join("cgroup.procs"), pid.to_string()) {
            tracing::debug!(pid, error = %e, "not moved into the cgroup");
        }
    }
    Ok(name.to_owned())
}

/// Moves every process of group `name` back to the root group and removes the group.
pub(crate) fn leave(name: &str) {
    let Ok(root) = root() else { return };
    let dir = root.join(name);
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines() {
            let _ = std::fs::write(root.join("cgroup.procs"), pid);
        }
    }
    let _ = std::fs::remove_dir(&dir);
}

/// Removes every (now empty) group whose name starts with `prefix`.
pub(crate) fn remove_all(prefix: &str) {
    let Ok(root) = root() else { return };
    let Ok(entries) = std::fs::read_dir(&root) else { return };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(prefix) {
            leave(&e.file_name().to_string_lossy());
        }
    }
}
