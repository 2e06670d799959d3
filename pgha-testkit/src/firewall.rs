//! Loopback firewall rules (iptables) for network faults, tagged with the cluster's scope so
//! that teardown — and the reaper, after a crashed run — removes exactly the rules it added.

use std::process::Command;

use crate::error::Result;

const IPTABLES: &str = "iptables";

fn tag(scope: &str) -> String {
    format!("pgha-testkit:{scope}")
}

fn run(args: &[&str]) -> Result<String> {
    crate::process::run_to_completion(
        Command::new(IPTABLES).args(args),
        &format!("iptables {}", args.join(" ")),
        " (network faults need iptables and root)",
    )
}

/// Silently drops TCP packets to `127.0.0.1:port` (connections hang, as to a dead host).
pub(crate) fn drop_port(scope: &str, port: u16) -> Result<()> {
    let port = port.to_string();
    let tag = tag(scope);
    let spec = [
        "INPUT",
        "-p",
        "tcp",
        "-d",
        "127.0.0.1",
        "--dport",
        &port,
        "-m",
        "comment",
        "--comment",
        &tag,
        "-j",
        "DROP",
    ];
    let mut check = vec!["-C"];
    check.extend_from_slice(&spec);
    if run(&check).is_ok() {
        return Ok(());
    }
    let mut insert = vec!["-I"];
    insert.extend_from_slice(&spec);
    run(&insert).map(drop)
}

/// Silently drops TCP packets that processes of cgroup `path` send to any of `ports`.
fn drop_from_cgroup(scope: &str, path: &str, ports: &[u16]) -> Result<()> {
    drop_output(scope, &["-m", "cgroup", "--path", path], ports)
}

/// Inserts an OUTPUT rule, tagged with `scope`, that drops TCP packets matching `matches` sent
/// to any of `ports`.
fn drop_output(scope: &str, matches: &[&str], ports: &[u16]) -> Result<()> {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let (ports, tag) = (ports.join(","), tag(scope));
    let mut args = vec!["-I", "OUTPUT", "-p", "tcp"];
    args.extend_from_slice(matches);
    args.extend_from_slice(&[
        "-m",
        "multiport",
        "--dports",
        &ports,
        "-m",
        "comment",
        "--comment",
        &tag,
        "-j",
        "DROP",
    ]);
    run(&args).map(drop)
}

/// Cuts processes of cgroup `path` off from `ports`: new packets are dropped
/// ([`drop_from_cgroup`]) and the connections they already have to those ports are aborted
/// (`ss -K`). Dropping alone leaves a one-way leak on connections opened before the cut: the
/// group's own packets to the port (ACKs, requests) are dropped, but what the other end sends
/// back to the group's ephemeral port still arrives — a standby kept receiving the cut-off
/// primary's WAL that way.
pub(crate) fn cut_from_cgroup(scope: &str, path: &str, ports: &[u16]) -> Result<()> {
    drop_from_cgroup(scope, path, ports)?;
    let cgroup = format!("/{}", path.trim_start_matches('/'));
    let mut args = vec![
        "-K".to_owned(),
        "-t".to_owned(),
        "cgroup".to_owned(),
        cgroup,
        "(".to_owned(),
    ];
    for (i, port) in ports.iter().enumerate() {
        if i > 0 {
            args.push("or".to_owned());
        }
        args.extend(["dport".to_owned(), "=".to_owned(), format!(":{port}")]);
    }
    args.push(")".to_owned());
    crate::process::run_to_completion(
        Command::new("ss").args(&args),
        &format!("ss {}", args.join(" ")),
        " (network partitions need iproute2)",
    )
    .map(drop)
}

/// Silently drops TCP packets that processes of user `uid` send to any of `ports` — new and
/// already open connections alike, so an open connection becomes half-open: what it sends is
/// lost, nothing comes back, until its own timeouts notice.
pub(crate) fn drop_from_user(scope: &str, uid: u32, ports: &[u16]) -> Result<()> {
    let uid = uid.to_string();
    drop_output(scope, &["-d", "127.0.0.1", "-m", "owner", "--uid-owner", &uid], ports)
}

/// Removes the rules added by [`drop_from_user`].
pub(crate) fn remove_user_rules(scope: &str) -> Result<()> {
    remove_matching_in("OUTPUT", scope, |line| line.contains("--uid-owner"))
}

/// Removes the rules added by [`drop_from_cgroup`].
pub(crate) fn remove_cgroup_rules(scope: &str) -> Result<()> {
    remove_matching_in("OUTPUT", scope, |line| line.contains("--path"))
}

/// Removes the rule added by [`drop_port`] for `port`, if present.
pub(crate) fn allow_port(scope: &str, port: u16) -> Result<()> {
    let wanted = format!("--dport {port} ");
    remove_matching(scope, |line| line.contains(&wanted))
}

/// Removes every rule tagged with `scope`.
pub(crate) fn remove_rules(scope: &str) {
    for chain in ["INPUT", "OUTPUT"] {
        if let Err(e) = remove_matching_in(chain, scope, |_| true) {
            tracing::debug!(error = %e, chain, "no iptables rules removed");
        }
    }
}

fn remove_matching(scope: &str, keep: impl Fn(&str) -> bool) -> Result<()> {
    remove_matching_in("INPUT", scope, keep)
}

fn remove_matching_in(chain: &str, scope: &str, keep: impl Fn(&str) -> bool) -> Result<()> {
    let tag = tag(scope);
    let listing = run(&["-S", chain])?;
    for line in listing.lines().filter(|l| l.contains(&tag) && keep(l)) {
        let Some(rule) = line.strip_prefix("-A ") else { continue };
        let mut args = vec!["-D"];
        // `iptables -S` prints the rule as it would be added, with the comment in quotes (which
        // a shell would remove); ours has no spaces, so dropping the quotes is enough.
        let words: Vec<String> = rule
            .split_whitespace()
            .map(|w| w.trim_matches('"').to_owned())
            .collect();
        args.extend(words.iter().map(String::as_str));
        run(&args)?;
    }
    Ok(())
}
