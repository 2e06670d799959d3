//! libpq's password file (`PGPASSFILE`, else `~/.pgpass`): consulted for a member's connection
//! when no password is configured, as libpq does.

use std::path::PathBuf;

use tracing::warn;

/// The password for `user` on `dbname` at `host:port` from the password file, if one matches.
pub(crate) fn lookup(host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
    let path = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".pgpass")))?;
    let metadata = std::fs::metadata(&path).ok()?;
    if !metadata.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            warn!(file = %path.display(), "password file ignored: it must not be readable by group or others (chmod 0600)");
            return None;
        }
    }
    let text = std::fs::read_to_string(&path).ok()?;
    find(&text, host, &port.to_string(), dbname, user)
}

/// The password of the first line of `text` whose four fields match (`*` matches anything;
/// `\:` and `\\` escape), as libpq reads the file.
fn find(text: &str, host: &str, port: &str, dbname: &str, user: &str) -> Option<String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(fields)
        .find(|f| {
            [host, port, dbname, user]
                .iter()
                .zip(f)
                .all(|(want, field)| field == "*" || field == want)
        })
        .map(|mut f| f.swap_remove(4))
}

/// A line's five fields, unescaped; `None` for a line with fewer.
fn fields(line: &str) -> Option<Vec<String>> {
    let mut out = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.last_mut()?.push(chars.next().unwrap_or('\\')),
            ':' if out.len() < 5 => out.push(String::new()),
            c => out.last_mut()?.push(c),
        }
    }
    (out.len() == 5).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# comment
db1:5432:shop:app:first
*:*:shop:app:second
*:5433:*:*:pass\\:with\\\\colon
";

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        assert_eq!(find(FILE, "db1", "5432", "shop", "app").as_deref(), Some("first"));
        assert_eq!(find(FILE, "db2", "5432", "shop", "app").as_deref(), Some("second"));
        assert_eq!(
            find(FILE, "db2", "5433", "other", "bob").as_deref(),
            Some("pass:with\\colon")
        );
        assert_eq!(find(FILE, "db2", "5432", "other", "bob"), None);
        assert_eq!(
            find("db1:5432:shop:app\n", "db1", "5432", "shop", "app"),
            None,
            "four fields"
        );
        assert_eq!(find("", "db1", "5432", "shop", "app"), None);
    }
}
