//! The bodies of pgha's fuzz targets. Each `fuzz_targets/<name>.rs` is one line calling the
//! function of the same name here, so that `tests/replay.rs` (run by `make test`) feeds every
//! committed input (`seeds/<name>/`, `regressions/<name>/`) through exactly the code libFuzzer
//! runs (`make fuzz`). A target fails by panicking: on a panic in pgha's code, or on an assertion
//! here about what pgha returned.
#![deny(missing_docs)]

use pgha_admin::pitr::CommandControl;
use pgha_client::patroni::{ClusterView, HistoryEntry, NodeStatus};
use pgha_client::{Client, ClientBuilder, ClientConfig, Secret, WalToken};

/// The names of every target, in the order `make fuzz` runs them.
pub const TARGETS: [&str; 8] = [
    "patroni_json",
    "client_config",
    "pgbackrest_info",
    "explain_plan",
    "cli_settings",
    "pitr_template",
    "redaction",
    "patroni_config",
];

/// Runs the target `name` on `data`; `false` if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    let target: fn(&[u8]) = match name {
        "patroni_json" => patroni_json,
        "client_config" => client_config,
        "pgbackrest_info" => pgbackrest_info,
        "explain_plan" => explain_plan,
        "cli_settings" => cli_settings,
        "pitr_template" => pitr_template,
        "redaction" => redaction,
        "patroni_config" => patroni_config,
        _ => return false,
    };
    target(data);
    true
}

/// Patroni REST documents (`/cluster`, `/patroni`, `/history`) from arbitrary bytes: a typed
/// error or a value, never a panic; and a parsed `/cluster` always answers `leader()`.
pub fn patroni_json(data: &[u8]) {
    if let Ok(view) = ClusterView::from_json(data) {
        let _ = view.leader();
        for m in &view.members {
            let _ = view.member(&m.name);
            let _ = m.state.is_up();
            let _ = m.role.is_standby();
        }
    }
    let _ = NodeStatus::from_json(data);
    let _ = HistoryEntry::list_from_json(data);
}

/// Connection strings and serde configurations from arbitrary input: validation ends in a value
/// or a typed configuration error, never a panic.
pub fn client_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Client::builder().url(text).connector() {
        Ok(c) => drop(format!("{c:?}")),
        Err(e) => assert!(e.is_config(), "{e}"),
    }
    if let Ok(config) = serde_json::from_str::<ClientConfig>(text) {
        if let Err(e) = config.into_builder().connector() {
            assert!(e.is_config(), "{e}");
        }
    }
    let _ = text.parse::<WalToken>();
    let _ = text.parse::<pgha_client::patroni::Lsn>();
    let _ = pgha_client::Ident::parse(text).map(|i| i.to_string());
}

/// `pgbackrest info --output=json` from arbitrary bytes: typed stanzas or a protocol error.
pub fn pgbackrest_info(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(stanzas) = pgha_admin::backup::parse_info(text) {
        for s in &stanzas {
            let _ = s.status_error();
            let _ = s.latest();
            let _ = s.last_archived();
        }
    }
}

/// EXPLAIN (FORMAT JSON) output from arbitrary JSON: a report or a protocol error.
pub fn explain_plan(data: &[u8]) {
    if let Ok(plan) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = pgha_admin::parse_explain("fuzz", plan);
    }
}

/// The `pgha` configuration file (TOML) from arbitrary text: settings or a usage error, never a
/// panic; what it configures validates to a client or a configuration error.
pub fn cli_settings(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match pgha_cli::settings_file::parse(text, "fuzz.toml") {
        Ok(file) => {
            if let Err(e) = file.client.into_builder().connector() {
                assert!(e.is_config(), "{e}");
            }
            if let Some(pitr) = &file.pitr {
                let _ = pitr.expand(&pitr.set_bootstrap, "member", Some(&serde_json::json!({})));
            }
        }
        Err(e) => assert_eq!(e.kind(), pgha_admin::ErrorKind::Usage, "{e}"),
    }
}

/// A Patroni configuration file (YAML, `pgha --patroni-config`) from arbitrary text: settings
/// or a usage error that quotes none of the text, never a panic; what it configures validates to
/// a client or a configuration error, and its passwords never show in `Debug`.
pub fn patroni_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match pgha_cli::patroni_config::parse(text, "patroni.yml") {
        Ok(config) => {
            // Debug output does not depend on the passwords: the same with other ones. (Not "the
            // password is not a substring": a password may also be a scope or a path.)
            let mut other = config.clone();
            other.patroni_password = other.patroni_password.map(|_| Secret::new("\u{1}other"));
            other.password = other.password.map(|_| Secret::new("\u{1}other"));
            assert_eq!(
                format!("{config:?}"),
                format!("{other:?}"),
                "a password in Debug output"
            );
            if let Err(e) = config.into_builder().connector() {
                assert!(e.is_config(), "{e}");
            }
        }
        Err(e) => {
            assert_eq!(e.kind(), pgha_admin::ErrorKind::Usage, "{e}");
            assert!(
                pgha_cli::patroni_config::is_one_of_our_messages(&e.to_string(), "patroni.yml"),
                "the error quotes the file: {e}"
            );
        }
    }
}

/// `pgha pitr`'s command templates: whatever the member is named and whatever the bootstrap
/// method holds, each placeholder becomes exactly one shell word (checked with a POSIX word
/// splitter) and the text around it is left as written. Input: member, a NUL, a JSON string for
/// the method, a NUL, the word between the placeholders.
pub fn pitr_template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\0');
    let member = parts.next().unwrap_or_default();
    let method = serde_json::Value::String(parts.next().unwrap_or_default().to_owned());
    // A literal word of the template, kept to characters that stand for themselves in `sh`.
    let word: String = parts
        .next()
        .unwrap_or("x")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_./{}".contains(*c))
        .collect();
    let word = if word.is_empty() { "x".to_owned() } else { word };
    let mut table = toml::Table::new();
    for key in ["stop", "start", "clear_data_dir", "clear_dcs"] {
        table.insert(key.into(), "true".into());
    }
    let template = format!("cmd {{member}} {word} {{method}} {{member}}");
    table.insert("set_bootstrap".into(), template.into());
    let control: CommandControl = toml::Value::Table(table).try_into().expect("a valid [pitr] table");
    let command = control.expand(&control.set_bootstrap, member, Some(&method));
    // What the literal word becomes after its own placeholders (if any) are filled in.
    let word_expanded = control.expand(&word, member, Some(&method));
    let want: Vec<String> = std::iter::once("cmd".to_owned())
        .chain([member.to_owned()])
        .chain(shell_words::split(&word_expanded).expect("an expanded word splits"))
        .chain([method.to_string(), member.to_owned()])
        .collect();
    let words = shell_words::split(&command).expect("the expanded template splits");
    assert_eq!(words, want, "{command}");
}

/// The marker every secret is set to in [`redaction`]; inputs that contain it are skipped.
const MARKER: &str = "SeCrEt-7c1";

/// Secrets never show: with a password set to a marker (in a URL's user info, as a URL's first
/// `password` option, as a `key=value` string's first option, in the configuration's password
/// fields, in a configuration file), no Debug, Display or serialized output of the
/// configuration, of what it builds, or of the error it ends in contains the marker — whatever
/// the rest of the input is. (The input surrounds the marker only where the parsers must read it
/// as the password: text that could make it part of another option's value would make showing
/// that value correct.)
pub fn redaction(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if text.contains(MARKER) {
        return;
    }
    for url in [
        format!("postgresql://u:{MARKER}@{text}"),
        format!("postgresql://db1/app?password={MARKER}&{text}"),
        format!("password='{MARKER}' {text}"),
    ] {
        let mut config = ClientConfig::default();
        config.url = Some(url);
        assert_hidden(&config);
        config.patroni = vec!["http://127.0.0.1:8008".into()];
        assert_hidden(&config);
    }
    let parsed = serde_json::from_str::<ClientConfig>(text)
        .ok()
        .or_else(|| toml::from_str::<ClientConfig>(text).ok());
    if let Some(mut config) = parsed {
        config.password = Some(Secret::new(MARKER));
        config.patroni_password = Some(Secret::new(MARKER));
        config.etcd_password = Some(Secret::new(MARKER));
        assert_hidden(&config);
    }
    let file = format!("{text}\npassword = \"{MARKER}\"\n");
    match pgha_cli::settings_file::parse(&file, "fuzz.toml") {
        Ok(settings) => assert_no_marker("settings Debug", &format!("{settings:?}")),
        Err(e) => assert_no_marker("settings error", &format!("{e} {e:?}")),
    }
}

/// Every rendering of `config`, and of the builder, client connector and admin handle it makes,
/// or of their errors, is free of [`MARKER`].
fn assert_hidden(config: &ClientConfig) {
    assert_no_marker("config Debug", &format!("{config:?}"));
    if let Ok(json) = serde_json::to_string(config) {
        assert_no_marker("config JSON", &json);
    }
    if let Ok(toml) = toml::to_string(config) {
        assert_no_marker("config TOML", &toml);
    }
    let builder: ClientBuilder = config.clone().into_builder();
    assert_no_marker("builder Debug", &format!("{builder:?}"));
    match builder.connector() {
        Ok(c) => assert_no_marker("connector Debug", &format!("{c:?}")),
        Err(e) => assert_no_marker("client error", &format!("{e} {e:?}")),
    }
    match pgha_admin::Admin::from_config(config.clone()) {
        Ok(admin) => assert_no_marker("admin Debug", &format!("{admin:?}")),
        Err(e) => assert_no_marker("admin error", &format!("{e} {e:?}")),
    }
}

fn assert_no_marker(what: &str, shown: &str) {
    assert!(!shown.contains(MARKER), "a secret shows in the {what}: {shown}");
}
