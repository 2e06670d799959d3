//! Starting, signalling and reaping the processes a cluster owns — always by PID.
//!
//! A PID alone is not an identity: after a crash the kernel may hand the same number to an
//! unrelated process. [`ProcRef`] pairs the PID with the process start time read from
//! `/proc/<pid>/stat`, so a stale record never signals a stranger.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::{Gid, Pid, Uid, User};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The OS user that runs etcd, Patroni and PostgreSQL.
///
/// PostgreSQL refuses to run as root, so when the test process is root every cluster process
/// is started as `postgres`; otherwise it runs as the current user.
#[derive(Debug, Clone)]
pub(crate) struct OsUser {
    pub(crate) name: String,
    pub(crate) uid: Uid,
    pub(crate) gid: Gid,
    home: PathBuf,
    switch: bool,
}

impl OsUser {
    /// The user cluster processes run as, for the current process.
    pub(crate) fn for_cluster() -> Result<Self> {
        let me = Uid::effective();
        if me.is_root() {
            let user = User::from_name("postgres")
                .map_err(|e| Error::Setup(format!("looking up the postgres OS user: {e}")))?
                .ok_or_else(|| {
                    Error::Setup(
                        "running as root but there is no `postgres` OS user; run scripts/install-deps.sh".into(),
                    )
                })?;
            Ok(Self {
                name: user.name,
                uid: user.uid,
                gid: user.gid,
                home: user.dir,
                switch: true,
            })
        } else {
            let user = User::from_uid(me)
                .ok()
                .flatten()
                .ok_or_else(|| Error::Setup(format!("no passwd entry for uid {me}")))?;
            Ok(Self {
                name: user.name,
                uid: user.uid,
                gid: user.gid,
                home: user.dir,
                switch: false,
            })
        }
    }

    /// A command that runs as this user, in its own process group, with a clean `HOME`.
    pub(crate) fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        if self.switch {
            use std::os::unix::process::CommandExt;
            cmd.uid(self.uid.as_raw()).gid(self.gid.as_raw());
        }
        cmd.env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Whether processes are started as another user.
    #[cfg(feature = "admin")]
    pub(crate) fn switches(&self) -> bool {
        self.switch
    }

    /// Gives a path (and everything below it) to this user.
    pub(crate) fn own(&self, path: &Path) -> Result<()> {
        if !self.switch {
            return Ok(());
        }
        chown_recursive(path, self.uid, self.gid)
            .map_err(|e| Error::Setup(format!("chown {} to {}: {e}", path.display(), self.name)))
    }
}

fn chown_recursive(path: &Path, uid: Uid, gid: Gid) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid.as_raw()), Some(gid.as_raw()))?;
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path)? {
            chown_recursive(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// A process we started (or found in a pid file), identified by PID and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRef {
    /// The process ID.
    pub pid: i32,
    /// Start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    pub start_ticks: u64,
}

impl ProcRef {
    /// Captures the identity of a live process; `None` if it is already gone.
    pub fn of(pid: i32) -> Option<Self> {
        stat(pid).map(|s| Self {
            pid,
            start_ticks: s.start_ticks,
        })
    }

    /// True while this very process (not a later one with the same PID) is running and not a zombie.
    pub fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Some(s) if s.start_ticks == self.start_ticks && s.state != 'Z' && s.state != 'X')
    }

    /// Sends `sig` to the process, if it is still this process.
    pub(crate) fn signal(&self, sig: Signal) -> bool {
        self.is_alive() && signal::kill(Pid::from_raw(self.pid), sig).is_ok()
    }

    /// Sends `sig` to the whole process group led by this process, if it is still alive.
    ///
    /// Falls back to the process alone when it does not lead a group.
    pub(crate) fn signal_group(&self, sig: Signal) -> bool {
        if !self.is_alive() {
            return false;
        }
        let leads_group = stat(self.pid).is_some_and(|s| s.pgrp == self.pid);
        if leads_group {
            signal::killpg(Pid::from_raw(self.pid), sig).is_ok()
        } else {
            signal::kill(Pid::from_raw(self.pid), sig).is_ok()
        }
    }

    /// Waits (polling) until the process is gone; true if it went within `timeout`.
    pub(crate) fn wait_gone(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.is_alive() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// SIGTERM to the group, then SIGKILL after `grace` if it is still there.
    pub(crate) fn terminate(&self, grace: Duration) {
        if self.signal_group(Signal::SIGTERM) && !self.wait_gone(grace) {
            self.signal_group(Signal::SIGKILL);
            self.wait_gone(Duration::from_secs(5));
        }
        // A stopped (SIGSTOP) process does not act on SIGTERM until continued.
        if self.is_alive() {
            self.signal_group(Signal::SIGKILL);
            self.signal_group(Signal::SIGCONT);
            self.wait_gone(Duration::from_secs(5));
        }
    }
}

struct Stat {
    state: char,
    ppid: i32,
    pgrp: i32,
    start_ticks: u64,
}

fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name (field 2) is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); field N is at index N - 3.
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(4 - 3)?.parse().ok()?,
        pgrp: fields.get(5 - 3)?.parse().ok()?,
        start_ticks: fields.get(22 - 3)?.parse().ok()?,
    })
}

/// The live direct children of `parent` (found by scanning `/proc`).
pub(crate) fn children_of(parent: &ProcRef) -> Vec<ProcRef> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let s = stat(pid)?;
            (s.ppid == parent.pid && s.state != 'Z').then_some(ProcRef {
                pid,
                start_ticks: s.start_ticks,
            })
        })
        .collect()
}

/// The process's command line, arguments joined by spaces (empty if it is gone).
pub(crate) fn cmdline(proc: &ProcRef) -> String {
    std::fs::read(format!("/proc/{}/cmdline", proc.pid))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_owned())
        .unwrap_or_default()
}

/// Reads the postmaster PID from `<data_dir>/postmaster.pid`, if PostgreSQL is running there.
pub(crate) fn postmaster(data_dir: &Path) -> Option<ProcRef> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    ProcRef::of(pid).filter(ProcRef::is_alive)
}

/// A node's processes: Patroni, the postmaster, and the postmaster's children (backends, WAL
/// sender/receiver…, each of which PostgreSQL puts in its own process group). The postmaster comes
/// before its children so a stop signal freezes it before it can fork more.
pub(crate) fn node_processes(patroni: Option<ProcRef>, data_dir: &Path) -> Vec<ProcRef> {
    let mut procs: Vec<ProcRef> = patroni.into_iter().collect();
    if let Some(pm) = postmaster(data_dir) {
        procs.push(pm);
        procs.extend(children_of(&pm));
    }
    procs
}

/// Runs a short command to completion and returns its stdout; a non-zero exit is
/// [`Error::Command`] named `shown`, with its stderr. `needs` says what is missing when the
/// program cannot be started (e.g. `" (network faults need iptables and root)"`).
pub(crate) fn run_to_completion(cmd: &mut Command, shown: &str, needs: &str) -> Result<String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .map_err(|e| Error::Setup(format!("{program}: {e}{needs}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: shown.to_owned(),
            code: out.status.code(),
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// Spawns `cmd` with stdout and stderr appended to `log`, in a new process group.
pub(crate) fn spawn_logged(mut cmd: Command, log: &Path, what: &str) -> Result<(std::process::Child, ProcRef)> {
    use std::os::unix::process::CommandExt;
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::Setup(format!("opening log {}: {e}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(|e| Error::Setup(format!("cloning log handle: {e}")))?;
    cmd.stdout(out).stderr(err).process_group(0);
    let child = cmd.spawn().map_err(|e| Error::Setup(format!("starting {what}: {e}")))?;
    let proc = ProcRef::of(child.id() as i32)
        .ok_or_else(|| Error::Setup(format!("{what} exited immediately; see {}", log.display())))?;
    Ok((child, proc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_has_a_start_time() {
        let me = ProcRef::of(std::process::id() as i32).expect("own /proc entry");
        assert!(me.is_alive());
        let reused = ProcRef {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(
            !reused.is_alive(),
            "a different start time must not count as the same process"
        );
    }

    #[test]
    fn stat_parses_command_names_with_spaces_and_parens() {
        let line = "1234 (we ird) name) S 1 1230 1230 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 987654 0 0";
        let s = parse_stat(line).expect("parses");
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.pgrp, 1230);
        assert_eq!(s.start_ticks, 987654);
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("1 (x) S 1").is_none());
    }

    #[test]
    fn children_are_found_by_parent_pid() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("spawn sleep");
        let me = ProcRef::of(std::process::id() as i32).expect("self");
        let kids = children_of(&me);
        let found = kids.iter().any(|k| k.pid == child.id() as i32);
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert!(found, "sleep {} not among {kids:?}", child.id());
    }

    #[test]
    fn terminated_child_is_gone() {
        let child = Command::new("sleep").arg("30").spawn().expect("spawn sleep");
        let proc = ProcRef::of(child.id() as i32).expect("sleep is running");
        // Reap in the background so the child does not linger as a zombie.
        let reaper = std::thread::spawn(move || {
            let mut child = child;
            child.wait()
        });
        proc.terminate(Duration::from_secs(5));
        assert!(!proc.is_alive());
        reaper.join().expect("reaper thread").expect("wait");
    }
}
