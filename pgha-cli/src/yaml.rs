//! YAML for people: reports printed with `--format yaml`, and the dynamic configuration that
//! `edit-config` hands to an editor and reads back. The same documents as JSON, through
//! yaml-rust2 (YAML 1.2: `on` is a string, as PostgreSQL parameters want it).

use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

/// `v` as a YAML document (keys in `v`'s order, no `---` line).
pub(crate) fn to_text(v: &Value) -> String {
    fn convert(v: &Value) -> Yaml {
        match v {
            Value::Null => Yaml::Null,
            Value::Bool(b) => Yaml::Boolean(*b),
            Value::Number(n) => n.as_i64().map_or_else(|| Yaml::Real(n.to_string()), Yaml::Integer),
            Value::String(s) => Yaml::String(s.clone()),
            Value::Array(a) => Yaml::Array(a.iter().map(convert).collect()),
            Value::Object(o) => Yaml::Hash(o.iter().map(|(k, v)| (Yaml::String(k.clone()), convert(v))).collect()),
        }
    }
    let mut out = String::new();
    // No literal blocks: yaml-rust2 writes some strings (a trailing blank line, a first line
    // starting with a space) as blocks that read back as other strings.
    let mut emitter = YamlEmitter::new(&mut out);
    match emitter.dump(&convert(v)) {
        Ok(()) => format!("{}\n", out.strip_prefix("---\n").unwrap_or(&out)),
        Err(e) => format!("error: {e}\n"),
    }
}

/// A YAML document as JSON. An empty document is `null`; anchors, aliases and tags are refused.
pub(crate) fn from_text(text: &str) -> Result<Value, String> {
    fn convert(y: &Yaml) -> Result<Value, String> {
        Ok(match y {
            Yaml::Null => Value::Null,
            Yaml::Boolean(b) => Value::Bool(*b),
            Yaml::Integer(i) => Value::from(*i),
            // Integers beyond i64 (yaml-rust2 reads them as reals) stay integers.
            Yaml::Real(s) => match s.parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => s
                    .parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| format!("{s:?} is not a number JSON can hold"))?,
            },
            Yaml::String(s) => Value::String(s.clone()),
            Yaml::Array(a) => Value::Array(a.iter().map(convert).collect::<Result<_, _>>()?),
            Yaml::Hash(h) => {
                let mut map = Map::new();
                for (k, v) in h {
                    let key = match k {
                        Yaml::String(s) | Yaml::Real(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        _ => return Err("a key must be a scalar".into()),
                    };
                    map.insert(key, convert(v)?);
                }
                Value::Object(map)
            }
            Yaml::Alias(_) | Yaml::BadValue => return Err("aliases and unknown values are not supported".into()),
        })
    }
    let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    match docs.as_slice() {
        [] => Ok(Value::Null),
        [doc] => convert(doc),
        _ => Err("more than one YAML document".into()),
    }
}

/// YAML 1.1's words for true and false, which patronictl's YAML (PyYAML) reads as booleans and
/// YAML 1.2 reads as strings.
const YAML_1_1_BOOLEANS: &[&str] = &["y", "yes", "n", "no", "on", "off"];

/// Where `edited` has a string that patronictl would have read as a boolean (`off`, `no`…)
/// outside `postgresql.parameters` (where PostgreSQL takes either) and `original` has not: the
/// paths, e.g. `postgresql.use_pg_rewind`. Patroni takes any non-empty string as true, so such
/// a string would turn on what the operator meant to turn off.
pub(crate) fn yaml_1_1_booleans(original: &Value, edited: &Value) -> Vec<String> {
    fn walk(original: Option<&Value>, edited: &Value, path: &mut Vec<String>, out: &mut Vec<String>) {
        match edited {
            Value::Object(map) if path.as_slice() != ["postgresql", "parameters"] => {
                for (k, v) in map {
                    path.push(k.clone());
                    walk(original.and_then(|o| o.get(k)), v, path, out);
                    path.pop();
                }
            }
            Value::String(s)
                if YAML_1_1_BOOLEANS.contains(&s.to_ascii_lowercase().as_str()) && original != Some(edited) =>
            {
                out.push(path.join("."));
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(Some(original), edited, &mut Vec::new(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_document_survives_the_round_trip_in_its_order() {
        let report = json!({
            "scope": "demo", "lag": 1.5, "ttl": 30, "members": [{"name": "node1", "tags": {}}],
            "none": null, "note": "two\nlines", "synchronous_commit": "on", "number_text": "16",
            "paused": true, "blank_line_after": "a\n\n", "space_first": " x\ny", "big": u64::MAX,
            "negative": i64::MIN, "real": 1.0e-7
        });
        let text = to_text(&report);
        assert!(text.starts_with("scope: demo\n"), "{text}");
        assert_eq!(from_text(&text), Ok(report.clone()), "{text}");
        // As an editor leaves it: YAML 1.2 scalars, keys in their order.
        assert_eq!(
            from_text("b: on\na: 3\nc: [1, x]\n"),
            Ok(json!({"b": "on", "a": 3, "c": [1, "x"]}))
        );
        assert_eq!(from_text(""), Ok(Value::Null));
        for bad in ["a: *x", "- [", "a: 1\n---\nb: 2", "? [a]\n: 1"] {
            assert!(from_text(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn words_patronictl_reads_as_booleans_are_found_where_they_would_mislead() {
        let original = json!({"postgresql": {"use_pg_rewind": true, "parameters": {"jit": "on"}}, "note": "no"});
        let edited = from_text(
            "postgresql:\n  use_pg_rewind: off\n  use_slots: No\n  parameters:\n    jit: off\n    wal_log_hints: on\nnote: no\nttl: 30\n",
        )
        .expect("YAML");
        assert_eq!(
            yaml_1_1_booleans(&original, &edited),
            ["postgresql.use_pg_rewind", "postgresql.use_slots"]
        );
        assert!(
            yaml_1_1_booleans(&edited, &edited).is_empty(),
            "unchanged strings are left alone"
        );
    }
}
