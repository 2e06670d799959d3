//! stdout for data, stderr for progress, logs and questions.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};

use pgha_admin::{Error, ErrorKind, Progress};
use serde_json::Value;

use crate::args::Format;

/// How to print.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    pub(crate) json: bool,
}

impl Output {
    pub(crate) fn new(format: Format) -> Self {
        Self {
            json: format == Format::Json,
        }
    }

    /// Prints a report: JSON, or rendered by `human`.
    pub(crate) fn data(&self, value: &Value, human: fn(&Value) -> String) {
        let text = if self.json {
            serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
        } else {
            human(value)
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
    }

    /// Prints an error: always on stderr, and as a JSON object on stdout for scripts.
    pub(crate) fn error(&self, e: &Error) {
        eprintln!("pgha: error: {e}");
        if self.json {
            let v = serde_json::json!({"error": {
                "kind": format!("{:?}", e.kind()),
                "message": e.to_string(),
                "exit_code": e.exit_code(),
                "http_status": e.http_status(),
                "pgbackrest_code": e.pgbackrest_code(),
            }});
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    }

    /// A progress sink: a spinner on a terminal (not in JSON mode), plain lines otherwise.
    pub(crate) fn progress(&self) -> impl Fn(&Progress) + Send + Sync + 'static {
        let bar = (!self.json && std::io::stderr().is_terminal()).then(|| {
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
    if !std::io::stdin().is_terminal() {
        return Err(Error::new(
            ErrorKind::Precondition,
            format!("{what}: refusing without --yes (no terminal to confirm on)"),
        ));
    }
    eprint!("{what}. Proceed? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if matches!(line.trim(), "y" | "Y" | "yes" | "YES") {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::Precondition, format!("{what}: not confirmed")))
    }
}
