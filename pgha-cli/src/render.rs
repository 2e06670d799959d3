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

/// Cluster status: the summary, then one row per member with what an operator looks at.
pub(crate) fn status(v: &Value) -> String {
    let members: Vec<Value> = v["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    serde_json::json!({
                        "member": m["name"],
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
                })
                .collect()
        })
        .unwrap_or_default();
    let mut summary = v.clone();
    if let Some(o) = summary.as_object_mut() {
        o.remove("members");
    }
    format!("{}\n{}", render(&summary), table(&members))
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
}
