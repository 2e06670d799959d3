//! One arm per subcommand: call the library, hand the report to the renderer.

use std::collections::BTreeMap;

use pgha_admin::backup::{
    AzureKey, AzureRepository, BackupProgress, BackupType, GcsKey, GcsRepository, S3Repository, UriStyle,
};
use pgha_admin::pgha_client::patroni::Role;
use pgha_admin::pgha_client::vector::{Distance, IndexKind};
use pgha_admin::pitr::RecoveryTarget;
use pgha_admin::{
    exit_codes, parse_schedule, Admin, CheckOptions, ConfigEdit, Machine, RestartRequest, RoleFilter, Storage,
    SwitchoverRequest, VacuumOptions, VectorIndexSpec,
};
use serde::Serialize;
use serde_json::{json, Value};

use crate::args::{
    BackupCmd, BackupTypeArg, Cli, Command, ConfigCmd, DistanceArg, Format, GcsKeyArg, PitrArgs, ReplicationCmd,
    RoleArg, StorageArg, VectorCmd, WalCmd,
};
use crate::output::{confirm, Output};
use crate::render;
use crate::settings::{self, usage, FileSettings};

type Result<T> = pgha_admin::Result<T>;

/// What a command produced: a report and its exit code.
struct Done {
    value: Value,
    human: fn(&Value) -> String,
    /// Text already rendered for people (replaces `human`; the data formats print `value`).
    text: Option<String>,
    code: i32,
}

fn done(report: &impl Serialize) -> Result<Done> {
    Ok(Done {
        value: serde_json::to_value(report).map_err(|e| usage(format!("serializing the report: {e}")))?,
        human: render::render,
        text: None,
        code: exit_codes::OK,
    })
}

fn message(text: impl Into<String>) -> Result<Done> {
    done(&json!({ "result": text.into() }))
}

/// Runs the command line; returns the process exit code.
pub(crate) async fn run(cli: Cli) -> i32 {
    let out = Output::new(cli.global.format);
    let nagios = matches!(cli.command, Command::Check(_)) && !cli.global.format.is_data();
    match execute(cli, out).await {
        Ok(d) => {
            match d.text {
                // Printed already (`status --watch`).
                Some(text) if text.is_empty() => {}
                Some(text) if !out.is_data() => out.text(&text),
                _ => out.data(&d.value, d.human),
            }
            d.code
        }
        // A monitoring system runs `check` as a plugin: whatever went wrong (a bad setting, an
        // unreadable file) is UNKNOWN, with the summary line it reads.
        Err(e) if nagios => {
            out.error(&e);
            out.text(&format!("PGHA UNKNOWN - {}", e.to_string().replace(['|', '\n'], " ")));
            exit_codes::UNKNOWN
        }
        Err(e) => {
            out.error(&e);
            e.exit_code()
        }
    }
}

fn memory(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| usage(format!("memory {s:?}: use e.g. 32GB or 512MB")))?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "GB" | "G" | "GIB" => 1 << 30,
        "MB" | "M" | "MIB" => 1 << 20,
        "TB" | "T" | "TIB" => 1 << 40,
        _ => return Err(usage(format!("memory {s:?}: use e.g. 32GB or 512MB"))),
    };
    Ok(n * mult)
}

/// The library's role filter for the command line's `--role`.
fn role_filter(role: RoleArg) -> RoleFilter {
    match role {
        RoleArg::Primary => RoleFilter::Primary,
        RoleArg::Replica => RoleFilter::Replica,
    }
}

/// `config set` and `wal keep-size VALUE`: the parameters checked against the server, then
/// shown (`--dry-run`) or confirmed and set on every member.
async fn set_parameters(admin: &Admin, g: &crate::args::Global, map: &BTreeMap<String, String>) -> Result<Done> {
    let plan = admin.check_parameters(map).await?;
    if g.dry_run {
        return done(&json!({ "would_set": plan }));
    }
    let list: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let restart = if plan.needs_restart.is_empty() {
        String::new()
    } else {
        format!(" ({} take effect after a restart)", plan.needs_restart.join(", "))
    };
    confirm(g.yes, &format!("set {} on every member{restart}", list.join(", ")))?;
    done(&admin.set_parameters(map).await?)
}

/// The thresholds of `check` (and `exporter`).
fn check_options(a: &crate::args::CheckArgs) -> CheckOptions {
    let mut opts = CheckOptions::default();
    opts.lag_bytes_warning = a.lag_warning_bytes;
    opts.lag_bytes_critical = a.lag_critical_bytes;
    opts.lag_time_warning = a.lag_warning;
    opts.lag_time_critical = a.lag_critical;
    opts.expected_members = a.expect_members;
    opts.disk_warning_pct = a.disk_warning_pct;
    opts.disk_critical_pct = a.disk_critical_pct;
    opts
}

/// What a switchover will do, in the words of the confirmation question.
fn describe_switchover(plan: &pgha_admin::SwitchoverPlan) -> String {
    let from = plan.leader.as_deref().unwrap_or("no leader");
    let to = match &plan.candidate {
        Some(c) => c.clone(),
        None => format!("the healthiest of {}", plan.eligible.join(", ")),
    };
    match &plan.scheduled_at {
        Some(at) => format!("switch over from {from} to {to} at {at}"),
        None => format!("switch over from {from} to {to} now"),
    }
}

fn schedule(at: Option<&str>) -> Result<Option<chrono::DateTime<chrono::FixedOffset>>> {
    at.map(parse_schedule).transpose()
}

async fn execute(cli: Cli, out: Output) -> Result<Done> {
    let g = &cli.global;
    let file = match settings::config_file(g.config.as_deref()) {
        // A file found in a default place that this user may not read (a root-only
        // /etc/pgha/pgha.toml) must not stop what flags and the environment configure; a
        // mistake in a file that is read is reported wherever it was found.
        Some(path)
            if g.config.is_none()
                && std::fs::File::open(&path).is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied) =>
        {
            eprintln!("pgha: warning: ignoring {}: not readable by this user", path.display());
            FileSettings::default()
        }
        Some(path) => settings::load_file(&path)?,
        None => FileSettings::default(),
    };
    if g.format == Format::Prometheus && !matches!(cli.command, Command::Check(_)) {
        return Err(usage("--format prometheus is for `pgha check` only".into()));
    }
    let command = match cli.command {
        Command::Backup(cmd) => return backup(cmd, g, &file).await,
        other => other,
    };
    let mut config = settings::client_config(g, &file)?;
    if let Command::Remove { scope, .. } = &command {
        // The cluster to remove is the one named, as with patronictl, unless one is configured
        // (then the two must agree).
        config.patroni_scope.get_or_insert_with(|| scope.clone());
    }
    let admin = Admin::from_config(config)?
        .wait_timeout(g.timeout)
        .on_progress(out.progress());
    let dbname = None;
    match command {
        Command::Status { watch: None } => {
            let mut d = done(&admin.status().await?)?;
            d.human = render::status;
            Ok(d)
        }
        Command::Status { watch: Some(every) } => {
            if every < std::time::Duration::from_millis(100) {
                return Err(usage(format!("--watch {every:?}: at least 100ms")));
            }
            // One listener for the whole watch: an interrupt during a round (which can take the
            // whole --timeout in a failover) ends it as well as one during the pause.
            let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(|e| usage(format!("cannot watch for Ctrl-C: {e}")))?;
            // Through a failover too: a round that fails says why, and the next one comes.
            loop {
                let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S %Z");
                let round = tokio::select! {
                    r = admin.status() => r.and_then(|s| done(&s)),
                    _ = interrupt.recv() => break,
                };
                match round {
                    Ok(d) if out.format == Format::Yaml => {
                        // A stream of documents.
                        out.text("---");
                        out.data(&d.value, d.human);
                    }
                    Ok(d) if out.is_data() => out.data(&d.value, d.human),
                    Ok(d) => out.text(&format!("{now}\n{}\n", render::status(&d.value))),
                    Err(e) => out.error(&e),
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = interrupt.recv() => break,
                }
            }
            let mut d = message("")?;
            d.text = Some(String::new());
            Ok(d)
        }
        Command::Version => {
            let members = admin.versions().await?;
            let mut d = done(&json!({ "pgha": env!("CARGO_PKG_VERSION"), "members": members }))?;
            d.text = Some(render::versions(&d.value));
            Ok(d)
        }
        Command::Dsn { member, role } => {
            let dsn = admin.dsn(member.as_deref(), role.map(role_filter)).await?;
            let mut d = done(&json!({ "dsn": dsn }))?;
            d.text = Some(dsn);
            Ok(d)
        }
        Command::EditConfig => edit_config(&admin, g).await,
        Command::Remove { scope, leader } => remove(&admin, g, &scope, leader).await,
        Command::Topology => {
            let mut d = done(&admin.topology().await?)?;
            d.human = render::topology;
            Ok(d)
        }
        Command::Query {
            sql,
            member,
            role,
            write,
        } => {
            let result = admin
                .query(
                    &sql,
                    member.as_deref(),
                    role.map(role_filter),
                    write,
                    g.dbname.as_deref(),
                )
                .await?;
            let mut d = done(&result)?;
            d.human = render::query;
            Ok(d)
        }
        Command::Exporter {
            listen,
            scrape_timeout,
            check,
        } => {
            crate::exporter::serve(admin, check_options(&check), listen, scrape_timeout).await?;
            let mut d = message("")?;
            d.text = Some(String::new());
            Ok(d)
        }
        Command::Check(a) => {
            let report = admin.check(&check_options(&a)).await;
            let mut d = done(&report)?;
            if g.format == Format::Prometheus {
                // For a textfile collector (`pgha check --format prometheus > f.tmp && mv`):
                // the verdict is in the text, the exit code says the text was written.
                d.text = Some(report.prometheus(&[]).trim_end().to_owned());
            } else {
                d.text = Some(report.nagios());
                d.code = report.exit_code();
            }
            Ok(d)
        }
        Command::History => done(&admin.history().await?),
        Command::Switchover { candidate, at } => {
            let mut req = SwitchoverRequest::new(candidate.as_deref());
            if let Some(t) = schedule(at.as_deref())? {
                req = req.at(t);
            }
            let plan = admin.plan_switchover(&req).await?;
            if g.dry_run {
                return done(&plan);
            }
            confirm(g.yes, &describe_switchover(&plan))?;
            done(&admin.switchover(&req).await?)
        }
        Command::Failover { candidate } => {
            let req = SwitchoverRequest::new(Some(&candidate));
            let plan = admin.plan_failover(&req).await?;
            if g.dry_run {
                return done(&plan);
            }
            for w in &plan.warnings {
                eprintln!("pgha: warning: {w}");
            }
            confirm(g.yes, &format!("fail over to {candidate}"))?;
            done(&admin.failover(&req).await?)
        }
        Command::CancelSwitchover => message(admin.cancel_switchover().await?),
        Command::Restart {
            member,
            role,
            pending,
            at,
        } => {
            let mut req = RestartRequest::default();
            req.member = member;
            req.role = role.map(role_filter);
            req.pending_only = pending;
            req.scheduled_at = schedule(at.as_deref())?;
            if g.dry_run {
                // The members Patroni's filters would let through, as they are now.
                let status = admin.status().await?;
                let names: Vec<String> = status
                    .members
                    .into_iter()
                    .filter(|m| req.member.as_ref().is_none_or(|name| *name == m.name))
                    .filter(|m| match role {
                        Some(RoleArg::Primary) => m.role == Role::Leader,
                        Some(RoleArg::Replica) => m.role != Role::Leader,
                        None => true,
                    })
                    .filter(|m| !pending || m.pending_restart)
                    .map(|m| m.name)
                    .collect();
                return done(&json!({
                    "would_restart": names,
                    "role": role.map(|r| format!("{r:?}").to_lowercase()),
                    "pending_only": pending,
                }));
            }
            if req.member.is_none() {
                let which = match role {
                    Some(RoleArg::Primary) => "the primary",
                    Some(RoleArg::Replica) => "every replica",
                    None => "every member",
                };
                let pending = if pending { " with a pending restart" } else { "" };
                confirm(g.yes, &format!("restart PostgreSQL on {which}{pending}"))?;
            }
            done(&admin.restart(&req).await?)
        }
        Command::CancelRestart { member } => message(admin.cancel_restart(&member).await?),
        Command::Reload { member } => done(&admin.reload(member.as_deref()).await?),
        Command::Reinitialize {
            member,
            from_backup: true,
        } => {
            let control = node_control(&file, "reinitialize --from-backup", "stop, start, data_dir")?;
            let pgbackrest = settings::pgbackrest(&g.pgbackrest, &file.pgbackrest)?;
            let status = admin.status().await?;
            let host = status
                .members
                .iter()
                .find(|m| m.name == member)
                .and_then(|m| m.host.clone())
                .ok_or_else(|| usage(format!("no member {member:?} with a known address")))?;
            restore_runs_on(&g.pgbackrest, &file.pgbackrest, &member, &host)?;
            let what = format!("stop {member}, restore it from the newest backup (delta) and start it again");
            if g.dry_run {
                return message(format!("would {what}"));
            }
            confirm(g.yes, &what)?;
            done(&admin.restore_replica(&control, &pgbackrest, &member).await?)
        }
        Command::Reinitialize { member, .. } => {
            let what = format!("wipe {member}'s data directory and re-clone it from the leader");
            if g.dry_run {
                return message(format!("would {what}"));
            }
            confirm(g.yes, &what)?;
            done(&admin.reinitialize(&member).await?)
        }
        Command::RollingRestart { pending } => {
            let status = admin.status().await?;
            let leader = status.leader.clone().unwrap_or_else(|| "no leader".into());
            let replicas: Vec<&str> = status
                .members
                .iter()
                .filter(|m| Some(&m.name) != status.leader.as_ref())
                .map(|m| m.name.as_str())
                .collect();
            let which = if pending { " with a pending restart" } else { "" };
            let what = format!(
                "restart the replicas{which} one by one ({}), each streaming again before the next, \
                 then switch over from {leader} and restart it{}",
                replicas.join(", "),
                if pending { " if it has one pending" } else { "" }
            );
            if g.dry_run {
                return message(format!("would {what}"));
            }
            confirm(g.yes, &what)?;
            done(&admin.rolling_restart(pending).await?)
        }
        Command::Pause => {
            admin.pause().await?;
            message("maintenance mode on: automatic failover is off")
        }
        Command::Resume => {
            admin.resume().await?;
            message("maintenance mode off")
        }
        Command::Config(cmd) => match cmd {
            ConfigCmd::Show => done(&admin.config().await?),
            ConfigCmd::Get { name } => done(&json!({ "name": name, "value": admin.setting(&name).await? })),
            ConfigCmd::Set { parameters } => {
                let mut map = BTreeMap::new();
                for p in parameters {
                    let (k, v) = p
                        .split_once('=')
                        .ok_or_else(|| usage(format!("{p:?} is not NAME=VALUE")))?;
                    map.insert(k.trim().to_owned(), v.trim().to_owned());
                }
                set_parameters(&admin, g, &map).await
            }
            ConfigCmd::Patch { json } => {
                let patch: Value =
                    serde_json::from_str(&json).map_err(|e| usage(format!("the patch is not JSON: {e}")))?;
                if !patch.is_object() {
                    return Err(usage("a configuration patch must be a JSON object".into()));
                }
                if g.dry_run {
                    return done(&json!({ "would_patch": patch, "current": admin.config().await? }));
                }
                confirm(g.yes, &format!("patch Patroni's dynamic configuration with {patch}"))?;
                done(&admin.patch_config(&patch).await?)
            }
        },
        Command::Replication(cmd) => match cmd {
            ReplicationCmd::Lag => done(&admin.replication().await?),
            ReplicationCmd::Slots => done(&admin.slots().await?),
            ReplicationCmd::DropSlot { name } => {
                if g.dry_run {
                    let slot = admin.slots().await?.into_iter().find(|s| s.name == name);
                    return done(&json!({ "would_drop": slot }));
                }
                confirm(g.yes, &format!("drop replication slot {name}"))?;
                done(&admin.drop_slot(&name).await?)
            }
            ReplicationCmd::PauseReplay { member } => {
                admin.set_replay_paused(&member, true).await?;
                message(format!("replay paused on {member}"))
            }
            ReplicationCmd::ResumeReplay { member } => {
                admin.set_replay_paused(&member, false).await?;
                message(format!("replay resumed on {member}"))
            }
        },
        Command::Wal(cmd) => match cmd {
            WalCmd::Archiver => {
                let a = admin.archiver().await?;
                let mut d = done(&a)?;
                if a.failing {
                    d.code = exit_codes::CRITICAL;
                }
                Ok(d)
            }
            WalCmd::Size { member } => done(&admin.wal_dir(member.as_deref()).await?),
            WalCmd::Checkpoint { member } => message(format!(
                "checkpoint done on {}",
                admin.checkpoint(member.as_deref()).await?
            )),
            WalCmd::KeepSize { value: None } => {
                done(&json!({ "wal_keep_size": admin.setting("wal_keep_size").await? }))
            }
            WalCmd::KeepSize { value: Some(v) } => {
                let map = BTreeMap::from([("wal_keep_size".to_owned(), v)]);
                set_parameters(&admin, g, &map).await
            }
        },
        Command::Backup(cmd) => backup(cmd, g, &file).await,
        // Printed by `main` before any configuration is read; never reaches here.
        Command::Completions { .. } | Command::Man => message(""),
        Command::Pitr(a) => pitr(&admin, &file, &cli.global, a).await,
        Command::Vacuum {
            table,
            analyze,
            full,
            no_truncate,
        } => {
            let mut opts = VacuumOptions::default();
            opts.table = table;
            opts.analyze = analyze;
            opts.full = full;
            opts.no_truncate = no_truncate;
            if g.dry_run {
                let what = if full { "VACUUM FULL" } else { "VACUUM" };
                let on = opts.table.as_deref().unwrap_or("the whole database");
                return message(format!("would {what} {on}"));
            }
            if full {
                confirm(g.yes, "VACUUM FULL blocks reads and writes on the table while it runs")?;
            }
            done(&admin.vacuum(&opts, dbname).await?)
        }
        Command::Analyze { table } => done(&admin.analyze(table.as_deref(), dbname).await?),
        Command::Reindex { index } => done(&admin.reindex(&index, dbname).await?),
        Command::Indexes { unused } => {
            if unused {
                done(&admin.unused_indexes(dbname).await?)
            } else {
                done(&admin.index_usage(dbname).await?)
            }
        }
        Command::DropIndex { index } => {
            if g.dry_run {
                let found = admin.index_usage(dbname).await?.into_iter().find(|i| i.index == index);
                return done(&json!({ "would_drop": found }));
            }
            confirm(g.yes, &format!("drop index {index}"))?;
            done(&admin.drop_index(&index, dbname).await?)
        }
        Command::Tables { limit } => done(&admin.table_sizes(limit, dbname).await?),
        Command::SlowQueries { limit, member } => done(&admin.slow_queries(limit, member.as_deref(), dbname).await?),
        Command::Explain { sql, analyze, member } => {
            let mut report = serde_json::to_value(admin.explain(&sql, analyze, member.as_deref(), dbname).await?)
                .map_err(|e| usage(e.to_string()))?;
            if !g.format.is_data() {
                // The full plan is for scripts; people get the summary.
                if let Some(o) = report.as_object_mut() {
                    o.remove("plan");
                }
            }
            done(&report)
        }
        Command::Vector(cmd) => match cmd {
            VectorCmd::CreateIndex {
                table,
                column,
                name,
                ivfflat_lists,
                m,
                ef_construction,
                distance,
                maintenance_work_mem,
            } => {
                let mut spec = VectorIndexSpec::new(table);
                spec.column = column;
                spec.name = name;
                spec.kind = match ivfflat_lists {
                    Some(lists) => IndexKind::IvfFlat { lists },
                    None => IndexKind::Hnsw { m, ef_construction },
                };
                spec.distance = match distance {
                    DistanceArg::L2 => Distance::L2,
                    DistanceArg::Cosine => Distance::Cosine,
                    DistanceArg::Ip => Distance::InnerProduct,
                };
                spec.maintenance_work_mem = maintenance_work_mem;
                done(&admin.create_vector_index(&spec, dbname).await?)
            }
            VectorCmd::List => done(&admin.vector_indexes(dbname).await?),
            VectorCmd::Rebuild { index } => done(&admin.reindex(&index, dbname).await?),
        },
        Command::Tune(a) => {
            let mut machine = Machine::new(memory(&a.memory)?, a.cpus).storage(match a.storage {
                StorageArg::Ssd => Storage::Ssd,
                StorageArg::Hdd => Storage::Hdd,
            });
            machine.max_connections = a.max_connections;
            let report = admin.tuning_advice(&machine).await?;
            if a.apply && g.dry_run {
                return done(&json!({ "advice": report, "applied": null }));
            }
            if a.apply {
                confirm(
                    g.yes,
                    &format!(
                        "apply {} recommended parameters on every member",
                        report.recommendations.len()
                    ),
                )?;
                let change = admin.apply_tuning(&report).await?;
                return done(&json!({ "advice": report, "applied": change }));
            }
            done(&report)
        }
    }
}

async fn backup(cmd: BackupCmd, g: &crate::args::Global, file: &FileSettings) -> Result<Done> {
    let pgbackrest = || settings::pgbackrest(&g.pgbackrest, &file.pgbackrest);
    match cmd {
        BackupCmd::S3Config(a) => s3_config(&a, g),
        BackupCmd::GcsConfig(a) => gcs_config(&a, g),
        BackupCmd::AzureConfig(a) => azure_config(&a, g),
        BackupCmd::Create { kind } => {
            let kind = match kind {
                BackupTypeArg::Full => BackupType::Full,
                BackupTypeArg::Diff => BackupType::Diff,
                BackupTypeArg::Incr => BackupType::Incr,
            };
            let pgbackrest = pgbackrest()?;
            let last = std::sync::Mutex::new(None);
            let report = |p: BackupProgress| {
                if let (Some(percent), Ok(mut last)) = (p.percent, last.lock()) {
                    if *last != Some(percent) {
                        *last = Some(percent);
                        eprintln!("pgha: backup: {percent:.2}% complete");
                    }
                }
            };
            pgbackrest
                .backup_watched(kind, std::time::Duration::from_secs(5), report)
                .await?;
            let info = pgbackrest.info().await?;
            done(&json!({ "backup": info.latest(), "stanza": info.name }))
        }
        BackupCmd::Progress => {
            let progress = pgbackrest()?.backup_progress().await?;
            let mut d = done(&json!({
                "running": progress.is_some(),
                "percent": progress.and_then(|p| p.percent),
            }))?;
            d.human = |v| match (v["running"].as_bool(), v["percent"].as_f64()) {
                (Some(true), Some(p)) => format!("a backup is running: {p:.2}% complete"),
                (Some(true), None) => "a backup is running".to_owned(),
                _ => "no backup is running".to_owned(),
            };
            Ok(d)
        }
        BackupCmd::Info => {
            let info = pgbackrest()?.info().await?;
            let mut d = done(&info)?;
            d.human = render::backup_info;
            if let Some(e) = info.status_error() {
                eprintln!("pgha: {e}");
                d.code = exit_codes::BACKUP;
            }
            Ok(d)
        }
        BackupCmd::Check => {
            pgbackrest()?.check().await?;
            message("archiving and the repository work")
        }
        BackupCmd::StanzaCreate => {
            let pgbackrest = pgbackrest()?;
            pgbackrest.stanza_create().await?;
            message(format!("stanza {} created", pgbackrest.stanza()))
        }
        BackupCmd::StanzaUpgrade => {
            let pgbackrest = pgbackrest()?;
            pgbackrest.stanza_upgrade().await?;
            message(format!("stanza {} is up to date", pgbackrest.stanza()))
        }
        BackupCmd::Verify => {
            pgbackrest()?.verify().await?;
            message("every backup and archived WAL segment matches its checksum")
        }
        BackupCmd::Expire if g.dry_run => done(&json!({ "would_expire": pgbackrest()?.expire_plan().await? })),
        BackupCmd::Expire => {
            pgbackrest()?.expire().await?;
            message("retention applied")
        }
    }
}

/// `pgha remove`: the keys listed, the removal confirmed as patronictl confirms it (the name,
/// "Yes I am aware", the leader's name), then deleted in one transaction that checks the leader.
async fn remove(admin: &Admin, g: &crate::args::Global, scope: &str, leader: Option<String>) -> Result<Done> {
    let keys = admin.cluster_keys(scope).await?;
    if g.dry_run {
        let mut d = done(&json!({
            "scope": scope, "prefix": keys.prefix, "keys": keys.keys, "leader": keys.leader, "removed": false,
        }))?;
        d.human = render::removal;
        return Ok(d);
    }
    let mut leader = leader;
    if !g.yes {
        let refused =
            |what: &str| pgha_admin::Error::new(pgha_admin::ErrorKind::Precondition, format!("remove {scope}: {what}"));
        if !crate::output::can_ask() {
            return Err(refused("refusing without --yes (no terminal to confirm on)"));
        }
        let what = format!(
            "You are about to remove every key of {scope} from etcd ({} under {})",
            keys.keys.len(),
            keys.prefix
        );
        eprintln!("{what}.");
        if crate::output::ask("Type the cluster's name to confirm: ") != scope {
            return Err(refused("the name typed is not the cluster's"));
        }
        if crate::output::ask("Type \"Yes I am aware\": ") != "Yes I am aware" {
            return Err(refused("not confirmed"));
        }
        if keys.leader.is_some() && leader.is_none() {
            leader = Some(crate::output::ask(
                "The cluster has a leader. Type its name to continue: ",
            ));
        }
    }
    let removed = admin.remove_cluster(scope, leader.as_deref()).await?;
    let mut d = done(&removed)?;
    d.value["removed"] = Value::Bool(true);
    d.human = render::removal;
    Ok(d)
}

fn s3_config(a: &crate::args::S3Args, g: &crate::args::Global) -> Result<Done> {
    let mut repo = S3Repository::new(&a.bucket, &a.region, &a.endpoint)
        .path(&a.repository.path)
        .retention_full(a.repository.retention_full);
    if let Some(k) = &a.key {
        repo = repo.credentials(k, secret_from_env("PGHA_S3_KEY_SECRET", "--key")?.as_str());
    }
    if a.path_style {
        repo = repo.uri_style(UriStyle::Path);
    }
    if let Some(n) = g.pgbackrest.repo {
        repo = repo.repo(n);
    }
    repository_conf(g, &a.repository, |stanza, paths| repo.to_ini(stanza, paths))
}

fn gcs_config(a: &crate::args::GcsArgs, g: &crate::args::Global) -> Result<Done> {
    let key = match a.key_type {
        GcsKeyArg::Auto => GcsKey::Auto,
        GcsKeyArg::Service => GcsKey::Service(
            a.key_file
                .clone()
                .ok_or_else(|| usage("--key-type service needs --key-file".into()))?,
        ),
        GcsKeyArg::Token => GcsKey::Token(secret_from_env("PGHA_GCS_TOKEN", "--key-type token")?.into()),
    };
    let mut repo = GcsRepository::new(&a.bucket, key)
        .path(&a.repository.path)
        .retention_full(a.repository.retention_full);
    if let Some(e) = &a.endpoint {
        repo = repo.endpoint(e);
    }
    if let Some(n) = g.pgbackrest.repo {
        repo = repo.repo(n);
    }
    repository_conf(g, &a.repository, |stanza, paths| repo.to_ini(stanza, paths))
}

fn azure_config(a: &crate::args::AzureArgs, g: &crate::args::Global) -> Result<Done> {
    let secret = secret_from_env("PGHA_AZURE_KEY", "an Azure repository")?;
    let key = if a.sas {
        AzureKey::Sas(secret.into())
    } else {
        AzureKey::Shared(secret.into())
    };
    let mut repo = AzureRepository::new(&a.account, &a.container, key)
        .path(&a.repository.path)
        .retention_full(a.repository.retention_full);
    if a.path_style {
        repo = repo.uri_style(UriStyle::Path);
    }
    if let Some(e) = &a.endpoint {
        repo = repo.endpoint(e);
    }
    if let Some(n) = g.pgbackrest.repo {
        repo = repo.repo(n);
    }
    repository_conf(g, &a.repository, |stanza, paths| repo.to_ini(stanza, paths))
}

/// A secret from the environment only (a command line is visible to every user of the host).
fn secret_from_env(var: &str, what: &str) -> Result<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty()).ok_or_else(|| {
        usage(format!(
            "{what} needs {var} (secrets come from the environment, never the command line)"
        ))
    })
}

/// The `pgbackrest.conf` a repository writes for the stanza (`--stanza`, else `main`), as data
/// and as the file's text for people.
fn repository_conf(
    g: &crate::args::Global,
    repository: &crate::args::RepositoryArgs,
    to_ini: impl FnOnce(&str, &[&str]) -> Result<String>,
) -> Result<Done> {
    let stanza = g.pgbackrest.stanza.clone().unwrap_or_else(|| "main".into());
    let paths: Vec<&str> = repository.pg_paths.iter().map(String::as_str).collect();
    let ini = to_ini(&stanza, &paths)?;
    Ok(Done {
        value: json!({ "pgbackrest_conf": ini }),
        human: |v| v["pgbackrest_conf"].as_str().unwrap_or_default().trim_end().to_owned(),
        text: None,
        code: exit_codes::OK,
    })
}

async fn pitr(admin: &Admin, file: &FileSettings, g: &crate::args::Global, a: PitrArgs) -> Result<Done> {
    let target = match (a.time, a.lsn, a.restore_point, a.latest) {
        (Some(t), None, None, false) => RecoveryTarget::time(&t)?,
        (None, Some(l), None, false) => RecoveryTarget::lsn(&l)?,
        (None, None, Some(n), false) => RecoveryTarget::restore_point(&n)?,
        (None, None, None, true) => RecoveryTarget::Latest,
        _ => {
            return Err(usage(
                "give exactly one of --time, --lsn, --restore-point, --latest".into(),
            ))
        }
    };
    let control = node_control(file, "pitr", "stop, start, clear_data_dir, clear_dcs, set_bootstrap")?;
    let pgbackrest = settings::pgbackrest(&g.pgbackrest, &file.pgbackrest)?;
    let plan = admin
        .plan_pitr(&control, &pgbackrest, target, a.member.as_deref())
        .await?;
    if g.dry_run {
        return done(&plan);
    }
    for step in &plan.steps {
        eprintln!("pgha: plan: {step}");
    }
    confirm(
        g.yes,
        &format!(
            "restore the whole cluster to {}: every member's data directory is emptied",
            plan.target
        ),
    )?;
    done(&admin.pitr(&control, &pgbackrest, &plan).await?)
}

/// `reinitialize --from-backup` writes the member's data directory where pgbackrest runs: that
/// must be the member's host, or the same path there is another member's. Local: the member's
/// address is this machine's (loopback or its host name); SSH: the destination's host is the
/// member's address; a container: refused.
fn restore_runs_on(
    args: &crate::args::BackrestArgs,
    file: &settings::BackrestFile,
    member: &str,
    host: &str,
) -> Result<()> {
    let refuse = |runs: &str| {
        Err(pgha_admin::Error::new(
            pgha_admin::ErrorKind::Precondition,
            format!(
                "pgbackrest runs {runs}, not on {member} ({host}): the restore would write another \
                 host's data directory; run pgha there, or pass --pgbackrest-ssh USER@{host}"
            ),
        ))
    };
    if args.pgbackrest_container.is_some() || file.container.is_some() {
        return refuse("in a container");
    }
    if let Some(dest) = args.pgbackrest_ssh.as_deref().or(file.ssh.as_deref()) {
        let target = dest.rsplit_once('@').map_or(dest, |(_, h)| h);
        let target = target.trim_start_matches('[').trim_end_matches(']');
        return if target.eq_ignore_ascii_case(host.trim_start_matches('[').trim_end_matches(']')) {
            Ok(())
        } else {
            refuse(&format!("on {target}"))
        };
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let this_machine =
        std::fs::read_to_string("/proc/sys/kernel/hostname").is_ok_and(|name| name.trim().eq_ignore_ascii_case(host));
    if loopback || this_machine {
        Ok(())
    } else {
        refuse("on this machine")
    }
}

/// The `[pitr]` node control of the configuration file, which `command` needs (`keys` of it).
fn node_control(file: &FileSettings, command: &str, keys: &str) -> Result<pgha_admin::pitr::CommandControl> {
    file.pitr.clone().ok_or_else(|| {
        usage(format!(
            "{command} needs node-control commands: add a [pitr] table to the --config file (it uses \
             {keys}; every key of the table is required); see `pgha_admin::pitr::CommandControl`"
        ))
    })
}

/// How many times `edit-config` starts again when the configuration changed while it was edited.
const EDIT_ROUNDS: usize = 3;

/// `edit-config`: the dynamic configuration as YAML in the operator's editor, the difference,
/// a confirmation, then [`Admin::edit_config`] — again on the new configuration if someone
/// changed it meanwhile.
async fn edit_config(admin: &Admin, g: &crate::args::Global) -> Result<Done> {
    let mut current = admin.config().await?;
    for _ in 0..EDIT_ROUNDS {
        let before = crate::yaml::to_text(&current);
        if crate::yaml::from_text(&before).as_ref() != Ok(&current) {
            return Err(usage(
                "this configuration does not survive a round trip through YAML unchanged; use `config patch`".into(),
            ));
        }
        let after = run_editor(&before)?;
        let edited =
            crate::yaml::from_text(&after).map_err(|e| usage(format!("the edited configuration is not YAML: {e}")))?;
        if !edited.is_object() {
            return Err(usage(
                "the edited configuration must be a mapping of keys to values".into(),
            ));
        }
        let misleading = crate::yaml::yaml_1_1_booleans(&current, &edited);
        if !misleading.is_empty() {
            return Err(usage(format!(
                "{} would be a string here (YAML 1.2), which Patroni takes as true: write true or false; nothing was applied",
                misleading.join(", ")
            )));
        }
        let patch = pgha_admin::config_patch(&current, &edited);
        if patch.as_object().is_some_and(serde_json::Map::is_empty) {
            return message("no changes");
        }
        let diff = similar::TextDiff::from_lines(&before, crate::yaml::to_text(&edited))
            .unified_diff()
            .header("current", "edited")
            .to_string();
        eprint!("{diff}");
        if g.dry_run {
            return done(&json!({ "would_patch": patch }));
        }
        confirm(g.yes, "apply these changes to the dynamic configuration")?;
        match admin.edit_config(&current, &edited).await? {
            ConfigEdit::Applied(new) => return done(&new),
            ConfigEdit::Changed(now) => {
                eprintln!("pgha: the configuration changed while it was edited; editing the new one");
                current = now;
            }
        }
    }
    Err(pgha_admin::Error::new(
        pgha_admin::ErrorKind::Precondition,
        format!("the configuration changed during each of {EDIT_ROUNDS} edits; nothing was applied"),
    ))
}

/// Runs $VISUAL or $EDITOR (default `vi`; words and quotes as the shell reads them) on a private
/// temporary file holding `text` (mode 0600, removed afterwards); returns what the editor left.
fn run_editor(text: &str) -> Result<String> {
    use std::io::Write as _;
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_owned());
    let mut file = tempfile::Builder::new()
        .prefix("pgha-config-")
        .suffix(".yaml")
        .tempfile()
        .map_err(|e| usage(format!("cannot create a temporary file: {e}")))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| usage(format!("cannot write {}: {e}", file.path().display())))?;
    // `sh -c '<editor> "$1"'`: an editor given with arguments (`code --wait`) works, and the
    // path is never parsed by the shell.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file.path())
        .status()
        .map_err(|e| usage(format!("cannot run the editor {editor:?}: {e}")))?;
    if !status.success() {
        return Err(usage(format!(
            "the editor {editor:?} exited with {status}; nothing was applied"
        )));
    }
    // Editors often write a new file in its place: read it by its path.
    std::fs::read_to_string(file.path()).map_err(|e| usage(format!("cannot read {}: {e}", file.path().display())))
}
