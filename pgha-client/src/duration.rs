//! The one rule for durations pgha reads — configuration files, `ClientConfig` JSON, the `pgha`
//! CLI's flags, the examples' flags: a number and its unit (`250ms`, `2s`, `1.5s`, `3m`, `2h`).
//! A bare number is refused, since `60` means seconds to one reader and milliseconds to another.
//! (The connection string's libpq keys keep libpq's meaning: `connect_timeout` in seconds,
//! `tcp_user_timeout` in milliseconds.) [`parse_duration`] and the serde helpers `duration` and
//! `opt_duration` apply it.

use std::time::Duration;

use serde::Deserialize;

/// Parses a duration as pgha writes them everywhere: a number and its unit, `ms`, `s`, `m`
/// (or `min`) or `h` — `250ms`, `2s`, `1.5s`, `3m`, `2h`. A bare number is an error that says
/// so, never a guess at its unit.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(pgha_client::parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert_eq!(pgha_client::parse_duration("2h"), Ok(Duration::from_secs(7200)));
/// assert!(pgha_client::parse_duration("7200").unwrap_err().contains("7200s"));
/// assert!(pgha_client::parse_duration("3 parsecs").is_err());
/// ```
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit.trim() {
        "" => return Err(no_unit(s)),
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("invalid duration {s:?}"))
}

fn no_unit(number: impl std::fmt::Display) -> String {
    format!("duration {number} has no unit: write {number}ms, {number}s, {number}m or {number}h")
}

fn format_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// serde for `Duration` as `"250ms"`/`"2s"` strings. A bare number (`800` or `"800"`) is
/// refused with a message that asks for the unit.
#[allow(
    clippy::module_inception,
    reason = "the serde `with` module for `Duration`, named as its `Option` twin `opt_duration`"
)]
pub(crate) mod duration {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Err(serde::de::Error::custom(no_unit(n))),
            Raw::Text(s) => parse_duration(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// serde for `Option<Duration>`, as [`duration`].
pub(crate) mod opt_duration {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> std::result::Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::duration")] Duration);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}
