//! Human output: every report is rendered from its JSON form, so the human and machine outputs
//! can never disagree. Lists of objects become tables; sizes (`*_bytes`) are shown in IEC units.

use comfy_table::{presets::UTF8_BORDERS_ONLY, ContentArrangement, Table};
use serde_json::{Map, Value};

/// `1536` → `1.5 KiB`.
pub(crate) fn bytes(n: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn cell(key: &str, v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) if key.ends_with("_bytes") || key == "size" => n.as_f64().map_or_else(|| n.to_string(), bytes),
        Value::Number(n) if key.ends_with("_s") || key.ends_with("_ms") => {
            n.as_f64().map_or_else(|| n.to_string(), |f| format!("{f:.2}"))
        }
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            a.iter().map(|x| cell(key, x)).collect::<Vec<_>>().join(", ")
        }
        Value::Object(o) if o.is_empty() => "-".into(),
        Value::Object(o) if key == "tags" => o
            .iter()
            .filter(|(_, v)| !matches!(v, Value::Bool(false) | Value::Null))
            .map(|(k, v)| {
                if v == &Value::Bool(true) {
                    k.clone()
                } else {
                    format!("{k}={}", cell(k, v))
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// A table from a list of objects; columns are the union of keys in first-seen order, without
/// the columns that are empty in every row.
pub(crate) fn table(rows: &[Value]) -> String {
    let mut columns = columns(rows);
    columns.retain(|c| rows.iter().any(|r| !matches!(r.get(c), None | Some(Value::Null))));
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(columns.iter().map(|c| c.replace('_', " ")));
    for r in rows {
        t.add_row(columns.iter().map(|c| cell(c, r.get(c).unwrap_or(&Value::Null))));
    }
    t.to_string()
}

fn object(o: &Map<String, Value>) -> String {
    let mut scalars = Vec::new();
    let mut sections = Vec::new();
    for (k, v) in o {
        match v {
            Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_object) => {
                sections.push(format!("{}:\n{}", k.replace('_', " "), table(a)));
            }
            Value::Object(inner) if !inner.is_empty() && k != "tags" => {
                sections.push(format!("{}:\n{}", k.replace('_', " "), indent(&object(inner))));
            }
            _ => scalars.push((k.replace('_', " "), cell(k, v))),
        }
    }
    let width = scalars.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out: Vec<String> = scalars.into_iter().map(|(k, v)| format!("{k:<width$}  {v}")).collect();
    out.extend(sections);
    out.join("\n")
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

/// The columns of a table of `rows`: the union of their keys in first-seen order.
fn columns(rows: &[Value]) -> Vec<String> {
    let mut columns: Vec<String> = Vec::new();
    for r in rows {
        if let Value::Object(o) = r {
            for k in o.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
    }
    columns
}

/// A report as tab-separated values with a header line, for `cut`, `awk` and spreadsheets: a
/// list's items one per line; a report that holds one list (status's members, version's
/// members, query's rows), that list, even empty; any other report (none, or several, such as
/// check's checks and metrics), one `key<TAB>value` line per field. A cell is the
/// value as JSON has it (numbers unscaled, `true`/`false`, empty for null; nested values as
/// compact JSON), with tabs, newlines and backslashes escaped as `\t`, `\n` and `\\`.
pub(crate) fn tsv(v: &Value) -> String {
    fn cell(v: &Value) -> String {
        let raw = match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        raw.replace('\\', "\\\\")
            .replace('\t', "\\t")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
    }
    fn rows(rows: &[Value]) -> String {
        let columns = columns(rows);
        let mut lines = vec![columns
            .iter()
            .map(|c| cell(&Value::String(c.clone())))
            .collect::<Vec<_>>()
            .join("\t")];
        for r in rows {
            lines.push(
                columns
                    .iter()
                    .map(|c| cell(r.get(c).unwrap_or(&Value::Null)))
                    .collect::<Vec<_>>()
                    .join("\t"),
            );
        }
        lines.join("\n")
    }
    let is_table = |a: &[Value]| a.iter().all(Value::is_object);
    match v {
        Value::Array(a) if is_table(a) => rows(a),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join("\n"),
        Value::Object(o) => {
            // Empty lists count, so that a report's shape does not depend on its data.
            let mut lists = o.values().filter_map(|v| v.as_array().filter(|a| is_table(a)));
            match (lists.next(), lists.next()) {
                (Some(list), None) => rows(list),
                _ => {
                    let fields: Vec<Value> = o
                        .iter()
                        .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
                        .collect();
                    rows(&fields)
                }
            }
        }
        other => cell(other),
    }
}

/// Renders any report.
pub(crate) fn render(v: &Value) -> String {
    match v {
        Value::Array(a) if a.is_empty() => "(none)".into(),
        Value::Array(a) if a.iter().all(Value::is_object) => table(a),
        Value::Array(a) => a.iter().map(|x| cell("", x)).collect::<Vec<_>>().join("\n"),
        Value::Object(o) => object(o),
        other => cell("", other),
    }
}

/// A member's row in the status and topology tables: what an operator looks at, under `name`.
fn member_row(name: Value, m: &Value) -> Value {
    serde_json::json!({
        "member": name,
        "role": m["role"],
        "state": m["state"],
        "address": match (m["host"].as_str(), m["port"].as_u64()) {
            (Some(h), Some(p)) => Value::String(format!("{h}:{p}")),
            _ => Value::Null,
        },
        "timeline": m["timeline"],
        "lag_bytes": m["lag"],
        "pending_restart": m["pending_restart"],
        "tags": m["tags"],
    })
}

/// Cluster status: the summary, then one row per member with what an operator looks at.
pub(crate) fn status(v: &Value) -> String {
    let members: Vec<Value> = v["members"]
        .as_array()
        .map(|a| a.iter().map(|m| member_row(m["name"].clone(), m)).collect())
        .unwrap_or_default();
    let mut summary = v.clone();
    if let Some(o) = summary.as_object_mut() {
        o.remove("members");
    }
    format!("{}\n{}", render(&summary), table(&members))
}

/// The replication tree as patronictl draws it: each member indented under its upstream.
pub(crate) fn topology(v: &Value) -> String {
    let rows: Vec<Value> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| {
                    let depth = usize::try_from(n["depth"].as_u64().unwrap_or(0)).unwrap_or(0);
                    let name = n["name"].as_str().unwrap_or("?");
                    let drawn = if depth == 0 {
                        name.to_owned()
                    } else {
                        format!("{}+ {name}", "  ".repeat(depth - 1))
                    };
                    member_row(Value::String(drawn), n)
                })
                .collect()
        })
        .unwrap_or_default();
    render(&Value::Array(rows))
}

/// `pgha remove`: what was deleted, or (with --dry-run) would be.
pub(crate) fn removal(v: &Value) -> String {
    let keys: Vec<&str> = v["keys"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let prefix = v["prefix"].as_str().unwrap_or("?");
    let head = if v["removed"] == Value::Bool(true) {
        format!("{} keys deleted under {prefix}", keys.len())
    } else {
        let leader = v["leader"]
            .as_str()
            .map(|l| format!(" (leader: {l})"))
            .unwrap_or_default();
        format!("would delete {} keys under {prefix}{leader}", keys.len())
    };
    std::iter::once(head)
        .chain(keys.iter().map(|k| format!("  {k}")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Query results: where it ran, then the rows as a table.
pub(crate) fn query(v: &Value) -> String {
    let rows = v["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
    let shown = if rows.is_empty() {
        "(no rows)".to_owned()
    } else {
        table(rows)
    };
    format!("on {}\n{shown}", v["member"].as_str().unwrap_or("?"))
}

/// Versions: pgha's, then one row per member.
pub(crate) fn versions(v: &Value) -> String {
    let members: Vec<Value> = v["members"].as_array().cloned().unwrap_or_default();
    format!("pgha {}\n{}", v["pgha"].as_str().unwrap_or("?"), table(&members))
}

/// pgBackRest info: stanza status, archive range, one row per backup.
pub(crate) fn backup_info(v: &Value) -> String {
    let time = |t: &Value| {
        t.as_i64()
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            .map_or_else(|| "-".to_owned(), |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
    };
    let backups: Vec<Value> = v["backup"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| {
                    serde_json::json!({
                        "label": b["label"],
                        "type": b["type"],
                        "started": time(&b["timestamp"]["start"]),
                        "finished": time(&b["timestamp"]["stop"]),
                        "database_bytes": b["info"]["size"],
                        "stored_bytes": b["info"]["repository"]["delta"],
                        "wal": format!("{} - {}", b["archive"]["start"].as_str().unwrap_or("?"), b["archive"]["stop"].as_str().unwrap_or("?")),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let last_archive = v["archive"].as_array().and_then(|a| a.last());
    let mut out = vec![
        format!("stanza    {}", v["name"].as_str().unwrap_or("?")),
        format!(
            "status    {} ({})",
            v["status"]["message"].as_str().unwrap_or("?"),
            v["status"]["code"]
        ),
        format!(
            "archive   {} - {}",
            last_archive.and_then(|a| a["min"].as_str()).unwrap_or("-"),
            last_archive.and_then(|a| a["max"].as_str()).unwrap_or("-")
        ),
    ];
    // With several repositories, each one's status (the stanza's says only whether they differ).
    if let Some(repos) = v["repo"].as_array().filter(|r| r.len() > 1) {
        for r in repos {
            out.push(format!(
                "repo{}     {} ({})",
                r["key"],
                r["status"]["message"].as_str().unwrap_or("?"),
                r["status"]["code"]
            ));
        }
    }
    out.push(if backups.is_empty() {
        "no backups".into()
    } else {
        table(&backups)
    });
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_are_human() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(bytes(16.0 * 1024.0 * 1024.0), "16.0 MiB");
    }

    #[test]
    fn lists_of_objects_become_tables() {
        let out = render(&json!([
            {"name": "node1", "role": "leader", "lag": null, "size_bytes": 2048, "tags": {"nofailover": true, "nosync": false}},
            {"name": "node2", "role": "replica", "lag": 0, "size_bytes": 10}
        ]));
        for expected in ["name", "size bytes", "node1", "leader", "2.0 KiB", "nofailover", "-"] {
            assert!(out.contains(expected), "{expected} missing:\n{out}");
        }
        assert!(!out.contains("nosync"), "{out}");
    }

    #[test]
    fn objects_show_scalars_then_sections() {
        let out = render(&json!({"leader": "node1", "paused": false, "members": [{"name": "node1"}]}));
        let leader = out.find("leader").expect("leader line");
        let members = out.find("members:").expect("members section");
        assert!(leader < members, "{out}");
        assert!(out.contains("paused  no") || out.contains("paused   no"), "{out}");
    }

    #[test]
    fn tsv_prints_a_report_s_one_list_or_its_fields_with_cells_escaped() {
        let status = json!({"scope": "demo", "paused": false, "scheduled_switchover": null, "members": [
            {"name": "node1", "role": "leader", "lag": null, "tags": {"nofailover": true}},
            {"name": "node2", "role": "replica", "lag": 1048576, "note": "a\tb\nc\\d"}
        ]});
        assert_eq!(
            tsv(&status),
            "name\trole\tlag\ttags\tnote\n\
             node1\tleader\t\t{\"nofailover\":true}\t\n\
             node2\treplica\t1048576\t\ta\\tb\\nc\\\\d"
        );
        assert_eq!(tsv(&json!([{"a": 1}, {"b": true}])), "a\tb\n1\t\n\ttrue");
        // One list, even empty: a report's shape does not depend on its data.
        assert_eq!(tsv(&json!({"member": "m", "rows": [], "rows_affected": [0]})), "");
        assert_eq!(
            tsv(&json!({"level": "ok", "checks": [{"name": "x"}], "metrics": []})),
            "key\tvalue\nlevel\tok\nchecks\t[{\"name\":\"x\"}]\nmetrics\t[]"
        );
        // Two lists, or none: the fields, one per line.
        assert_eq!(
            tsv(&json!({"result": "done", "n": 2})),
            "key\tvalue\nresult\tdone\nn\t2"
        );
        assert_eq!(
            tsv(&json!({"a": [{"x": 1}], "b": [{"y": 2}]})),
            "key\tvalue\na\t[{\"x\":1}]\nb\t[{\"y\":2}]"
        );
    }
}
