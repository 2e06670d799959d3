//! Where `pgbackrest` runs: locally (optionally as another OS user), in a container, over SSH,
//! or anywhere a [`CommandRunner`] you write can reach.

use std::fmt;
use std::path::PathBuf;

/// Builds the full command line that runs `pgbackrest <args…>` somewhere. pgha executes it (with
/// a timeout, killing it if the timeout passes) and interprets the exit status and output.
///
/// Implement it for your deployment (Kubernetes `kubectl exec`, a jump host…):
///
/// ```
/// use pgha_admin::backup::CommandRunner;
///
/// #[derive(Debug)]
/// struct Kubectl { pod: String }
///
/// impl CommandRunner for Kubectl {
///     fn argv(&self, args: &[String]) -> Vec<String> {
///         let mut argv = vec!["kubectl".into(), "exec".into(), self.pod.clone(), "--".into(), "pgbackrest".into()];
///         argv.extend(args.iter().cloned());
///         argv
///     }
/// }
/// let argv = Kubectl { pod: "pg-0".into() }.argv(&["info".into()]);
/// assert_eq!(argv.join(" "), "kubectl exec pg-0 -- pgbackrest info");
/// ```
pub trait CommandRunner: Send + Sync + fmt::Debug {
    /// The program and its arguments; `args` are pgBackRest's own arguments.
    fn argv(&self, args: &[String]) -> Vec<String>;
}

/// Runs `pgbackrest` on this machine, as another OS user when `run_as` is set (through
/// `runuser`, which needs root: pgBackRest must run as the user that owns the data directory).
#[derive(Debug, Clone)]
pub struct LocalRunner {
    binary: PathBuf,
    run_as: Option<String>,
}

impl LocalRunner {
    /// `pgbackrest` from `PATH`, as the current user.
    pub fn new() -> Self {
        Self {
            binary: PathBuf::from("pgbackrest"),
            run_as: None,
        }
    }

    /// Uses this executable.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = path.into();
        self
    }

    /// Runs it as `user` (e.g. `postgres`).
    pub fn run_as(mut self, user: impl Into<String>) -> Self {
        self.run_as = Some(user.into());
        self
    }
}

impl Default for LocalRunner {
    fn default() -> Self {
        Self::new()
    }
}

impl CommandRunner for LocalRunner {
    fn argv(&self, args: &[String]) -> Vec<String> {
        let mut argv = Vec::new();
        if let Some(user) = &self.run_as {
            argv.extend(["runuser".into(), "-u".into(), user.clone(), "--".into()]);
        }
        argv.push(self.binary.display().to_string());
        argv.extend(args.iter().cloned());
        argv
    }
}

/// Runs `pgbackrest` inside a container: `docker exec [-u user] <container> pgbackrest …` (or
/// `podman`).
#[derive(Debug, Clone)]
pub struct ContainerRunner {
    engine: String,
    container: String,
    user: Option<String>,
}

impl ContainerRunner {
    /// `docker exec <container> pgbackrest …`.
    pub fn docker(container: impl Into<String>) -> Self {
        Self {
            engine: "docker".into(),
            container: container.into(),
            user: None,
        }
    }

    /// Uses another engine with the same `exec` syntax (`podman`).
    pub fn engine(mut self, engine: impl Into<String>) -> Self {
        self.engine = engine.into();
        self
    }

    /// `exec -u <user>`.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }
}

impl CommandRunner for ContainerRunner {
    fn argv(&self, args: &[String]) -> Vec<String> {
        let mut argv = vec![self.engine.clone(), "exec".into()];
        if let Some(user) = &self.user {
            argv.extend(["-u".into(), user.clone()]);
        }
        argv.push(self.container.clone());
        argv.push("pgbackrest".into());
        argv.extend(args.iter().cloned());
        argv
    }
}

/// Runs `pgbackrest` on another host over SSH (key-based, non-interactive). The remote side gets
/// one shell command line, so every argument is single-quoted.
#[derive(Debug, Clone)]
pub struct SshRunner {
    destination: String,
    options: Vec<String>,
}

impl SshRunner {
    /// `ssh <destination>`, e.g. `postgres@db1`.
    pub fn new(destination: impl Into<String>) -> Self {
        Self {
            destination: destination.into(),
            options: Vec::new(),
        }
    }

    /// An extra `-o` option, e.g. `ConnectTimeout=5`.
    pub fn option(mut self, option: impl Into<String>) -> Self {
        self.options.push(option.into());
        self
    }
}

/// Quotes `s` for a POSIX shell.
pub(crate) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=./:,@%+".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl CommandRunner for SshRunner {
    fn argv(&self, args: &[String]) -> Vec<String> {
        let mut argv = vec!["ssh".into(), "-o".into(), "BatchMode=yes".into()];
        for o in &self.options {
            argv.extend(["-o".into(), o.clone()]);
        }
        argv.push(self.destination.clone());
        argv.push("--".into());
        let remote: Vec<String> = std::iter::once("pgbackrest")
            .chain(args.iter().map(String::as_str))
            .map(shell_quote)
            .collect();
        argv.push(remote.join(" "));
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn local_runner_switches_user_with_runuser() {
        let r = LocalRunner::new().binary("/usr/bin/pgbackrest").run_as("postgres");
        assert_eq!(
            r.argv(&args(&["--stanza=main", "info"])),
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                "/usr/bin/pgbackrest",
                "--stanza=main",
                "info"
            ]
        );
        assert_eq!(LocalRunner::new().argv(&args(&["check"])), ["pgbackrest", "check"]);
    }

    #[test]
    fn container_runner_builds_docker_exec() {
        let r = ContainerRunner::docker("pg-node-1").user("postgres");
        assert_eq!(
            r.argv(&args(&["--stanza=pg-ha", "backup"])),
            [
                "docker",
                "exec",
                "-u",
                "postgres",
                "pg-node-1",
                "pgbackrest",
                "--stanza=pg-ha",
                "backup"
            ]
        );
        assert_eq!(ContainerRunner::docker("c").engine("podman").argv(&[])[0], "podman");
    }

    #[test]
    fn ssh_runner_quotes_every_argument_for_the_remote_shell() {
        let r = SshRunner::new("postgres@db1").option("ConnectTimeout=5");
        let argv = r.argv(&args(&[
            "--target=2024-01-15 14:29:00+00",
            "--type=time",
            "it's; rm -rf /",
            "restore",
        ]));
        assert_eq!(
            argv[..6],
            ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "postgres@db1"]
        );
        assert_eq!(argv[6], "--");
        assert_eq!(
            argv[7],
            r"pgbackrest '--target=2024-01-15 14:29:00+00' --type=time 'it'\''s; rm -rf /' restore"
        );
    }
}
