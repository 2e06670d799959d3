//! stdout for data, stderr for progress, logs and questions.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};

use pgha_admin::{Error, ErrorKind, Progress};
use serde_json::Value;

use crate::args::Format;

/// The flag and environment variable that set a configuration key, read from the command-line
/// definition itself (an argument's id is its configuration key): `patroni_user` →
/// "--patroni-user or PGHA_PATRONI_USER". `None` for a key the command line does not set.
fn how_to_set(key: &str) -> Option<String> {
    use clap::CommandFactory;
    let command = crate::args::Cli::command();
    let arg = command.get_arguments().find(|a| a.get_id() == key)?;
    let env = arg.get_env().map(|env| env.to_string_lossy().into_owned());
    // A hidden flag is one refused on the command line (a password): only its variable is named.
    if arg.is_hide_set() {
        return env;
    }
    let flag = format!("--{}", arg.get_long()?);
    Some(match env {
        Some(env) => format!("{flag} or {env}"),
        None => flag,
    })
}

/// How to print.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    pub(crate) format: Format,
}

impl Output {
    pub(crate) fn new(format: Format) -> Self {
        Self { format }
    }

    /// Whether the report itself is printed (TSV, JSON, YAML) rather than text for people.
    pub(crate) fn is_data(&self) -> bool {
        self.format.is_data()
    }

    /// Prints a report in the format asked for, or rendered by `human`.
    pub(crate) fn data(&self, value: &Value, human: fn(&Value) -> String) {
        let text = match self.format {
            Format::Json => serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")),
            Format::Yaml => crate::yaml::to_text(value),
            Format::Tsv => crate::render::tsv(value),
            Format::Pretty | Format::Prometheus => human(value),
        };
        self.text(text.trim_end_matches('\n'));
    }

    /// Prints text rendered elsewhere, as it is (nothing for an empty text).
    pub(crate) fn text(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
    }

    /// Prints an error: always on stderr, and as a JSON object on stdout for scripts.
    pub(crate) fn error(&self, e: &Error) {
        eprintln!("pgha: error: {e}");
        let hints: Vec<String> = e.settings().iter().filter_map(|key| how_to_set(key)).collect();
        if !hints.is_empty() {
            eprintln!("pgha: hint: set {}", hints.join("; "));
        }
        if matches!(self.format, Format::Json | Format::Yaml) {
            let v = serde_json::json!({"error": {
                "kind": e.kind().as_str(),
                "settings": e.settings(),
                "message": e.to_string(),
                "exit_code": e.exit_code(),
                "http_status": e.http_status(),
                "pgbackrest_code": e.pgbackrest_code(),
            }});
            self.data(&v, crate::render::render);
        }
    }

    /// A progress sink: a spinner on a terminal (not in JSON mode), plain lines otherwise.
    pub(crate) fn progress(&self) -> impl Fn(&Progress) + Send + Sync + 'static {
        let bar = (!self.is_data() && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        let bar = Arc::new(Mutex::new(bar));
        move |p: &Progress| match bar.lock().ok().as_deref() {
            Some(Some(bar)) => {
                bar.set_message(p.to_string());
                bar.println(format!("  {p}"));
            }
            _ => eprintln!("pgha: {p}"),
        }
    }
}

/// Asks before a destructive operation. `--yes` skips the question; without a terminal to ask
/// on, the operation is refused.
pub(crate) fn confirm(yes: bool, what: &str) -> Result<(), Error> {
    if yes {
        return Ok(());
    }
    if !can_ask() {
        return Err(Error::new(
            ErrorKind::Precondition,
            format!("{what}: refusing without --yes (no terminal to confirm on)"),
        ));
    }
    if matches!(
        ask(&format!("{what}. Proceed? [y/N] ")).as_str(),
        "y" | "Y" | "yes" | "YES"
    ) {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::Precondition, format!("{what}: not confirmed")))
    }
}

/// Whether there is a terminal to ask on (stdin).
pub(crate) fn can_ask() -> bool {
    std::io::stdin().is_terminal()
}

/// Asks `question` on the terminal (stderr) and returns the answer, trimmed.
pub(crate) fn ask(question: &str) -> String {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_keys_named_by_the_library_map_to_flags() {
        assert_eq!(how_to_set("patroni").as_deref(), Some("--patroni or PGHA_PATRONI_URLS"));
        assert_eq!(
            how_to_set("patroni_user").as_deref(),
            Some("--patroni-user or PGHA_PATRONI_USER")
        );
        assert_eq!(how_to_set("patroni_password").as_deref(), Some("PGHA_PATRONI_PASSWORD"));
        assert_eq!(how_to_set("no_such_key"), None);
    }
}
