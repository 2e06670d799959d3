//! The process exit codes of the `pgha` CLI — a stable contract for scripts, cron and monitoring.
//!
//! `pgha check` follows the Nagios plugin convention (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN),
//! so it plugs into Nagios, Icinga, Sensu or a cron `|| alert` line unchanged. Every other
//! command exits 0 on success and with one of the codes ≥ 10 on failure; the code says which
//! kind of failure it was ([`ErrorKind`](crate::ErrorKind)).
//!
//! Each code is a constant below; [`TABLE`] lists them all with their meaning, and is the one
//! source of the `pgha --help` text and of the README's table (a test compares them).

/// Defines each exit code once: its constant, its doc line and its row of [`TABLE`].
macro_rules! exit_codes {
    ($( $name:ident = $code:literal, $meaning:literal; )*) => {
        $( #[doc = concat!("`", $code, "`: ", $meaning, ".")] pub const $name: i32 = $code; )*

        /// Every exit code and what it means, in ascending order.
        pub const TABLE: &[(i32, &str)] = &[$(($code, $meaning)),*];
    };
}

exit_codes! {
    OK = 0, "success; `check`: every check OK";
    WARNING = 1, "`check`: at least one WARNING, no CRITICAL";
    CRITICAL = 2, "`check`: at least one CRITICAL";
    UNKNOWN = 3, "`check`: the checks could not run";
    PRECONDITION = 10, "a pre-flight check refused the operation; nothing was changed";
    NOT_FOUND = 11, "the named member, slot, index, table or backup does not exist";
    PATRONI = 12, "Patroni rejected or failed the request";
    UNREACHABLE = 13, "no Patroni endpoint or database could be reached";
    TIMEOUT = 14, "started, but the cluster did not reach the expected state in time";
    DATABASE = 15, "the database reported an error";
    BACKUP = 16, "pgBackRest failed";
    PROTOCOL = 17, "a response could not be understood";
    NODE_CONTROL = 18, "a node-control command (PITR: stop/start a node, clear the DCS…) failed";
    USAGE = 64, "bad input: flags, schedule, identifier, configuration file (`EX_USAGE` of sysexits.h)";
    INTERNAL = 70, "internal error: the CLI could not start its runtime (`EX_SOFTWARE` of sysexits.h)";
}

/// [`TABLE`] as text for `--help`: one `code  meaning` line per code.
pub fn help_text() -> String {
    let mut text = String::from("Exit codes:\n");
    for (code, meaning) in TABLE {
        text.push_str(&format!("  {code:>2}  {}\n", meaning.replace('`', "")));
    }
    text
}

/// [`TABLE`] as the Markdown table the README shows.
pub fn markdown_table() -> String {
    let mut text = String::from("| code | meaning |\n|---|---|\n");
    for (code, meaning) in TABLE {
        text.push_str(&format!("| {code} | {meaning} |\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_ascending() {
        assert!(TABLE.windows(2).all(|w| w[0].0 < w[1].0), "{TABLE:?}");
    }

    /// The README is for people; this keeps its table the same as the code's.
    #[test]
    fn the_readme_shows_this_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "README.md must contain the exit-code table exactly as exit_codes::markdown_table() prints it:\n{table}"
        );
    }
}
