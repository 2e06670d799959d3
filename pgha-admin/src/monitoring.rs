//! The health report in the formats monitoring systems read: a Nagios plugin's output (a
//! summary line with performance data, then one line per finding) and the Prometheus text
//! exposition format (for node_exporter's textfile collector or a scrape endpoint).

use std::fmt::Write;

use crate::health::{HealthReport, Level, Metric, Unit};

/// A number without a needless fraction (`3`, `0.25`).
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// A Nagios performance-data label: always quoted, a quote inside doubled, `=` kept out.
fn perf_label(m: &Metric) -> String {
    let name = match &m.member {
        Some(member) => format!("{}_{member}", m.name),
        None => m.name.to_owned(),
    };
    format!("'{}'", name.replace('\'', "''").replace('=', "_"))
}

/// One Prometheus label value, escaped as the text format wants.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Text on one line of plugin output: Nagios reads the first `|` as the start of performance
/// data and each newline as a new line of output.
fn one_line(text: &str) -> String {
    text.replace('|', "/").replace(['\n', '\r'], " ")
}

impl HealthReport {
    /// The report as a Nagios plugin prints it: `PGHA <LEVEL> - <summary> | <performance data>`,
    /// then one line per finding, worst first. The summary names what is wrong (the findings of
    /// the worst level), or the leader and the streaming standbys when all is well. Exit with
    /// [`exit_code`](Self::exit_code).
    ///
    /// ```
    /// # fn demo(report: pgha_admin::HealthReport) {
    /// let text = report.nagios();
    /// let summary = text.lines().next().unwrap_or_default();
    /// assert!(summary.starts_with("PGHA "));
    /// # }
    /// ```
    pub fn nagios(&self) -> String {
        let mut checks: Vec<_> = self.checks.iter().collect();
        let rank = |l: Level| match l {
            Level::Critical => 0,
            Level::Unknown => 1,
            Level::Warning => 2,
            Level::Ok => 3,
        };
        checks.sort_by_key(|c| rank(c.level));
        let describe = |c: &crate::Check| match &c.member {
            Some(m) => format!("{} {m}: {}", c.name, c.message),
            None => format!("{}: {}", c.name, c.message),
        };
        let summary = if self.level == Level::Ok {
            let leader = self
                .checks
                .iter()
                .find(|c| c.name == "leader")
                .and_then(|c| c.member.clone());
            let streaming = self
                .metrics
                .iter()
                .find(|m| m.name == "streaming_standbys")
                .map(|m| number(m.value));
            match (leader, streaming) {
                (Some(l), Some(n)) => format!("leader {l}, {n} standbys streaming"),
                (Some(l), None) => format!("leader {l}"),
                _ => "every check passed".to_owned(),
            }
        } else {
            let worst: Vec<String> = checks
                .iter()
                .filter(|c| c.level == self.level)
                .map(|c| describe(c))
                .collect();
            if worst.is_empty() {
                "no check could run".to_owned()
            } else {
                worst.join("; ")
            }
        };
        let perf: Vec<String> = self
            .metrics
            .iter()
            .map(|m| {
                let uom = match m.unit {
                    Unit::Count if m.counter => "c",
                    Unit::Count => "",
                    Unit::Bytes => "B",
                    Unit::Seconds => "s",
                    Unit::Percent => "%",
                };
                let threshold = |t: Option<f64>| t.map(number).unwrap_or_default();
                let min = "0";
                let max = if m.unit == Unit::Percent { "100" } else { "" };
                format!(
                    "{}={}{uom};{};{};{min};{max}",
                    perf_label(m),
                    number(m.value),
                    threshold(m.warning),
                    threshold(m.critical)
                )
            })
            .collect();
        let mut out = format!("PGHA {} - {}", self.level.as_str(), one_line(&summary));
        if !perf.is_empty() {
            let _ = write!(out, " | {}", perf.join(" "));
        }
        for c in checks {
            let _ = write!(out, "\n{:<8} {}", c.level.as_str(), one_line(&describe(c)));
        }
        out
    }

    /// The report in the Prometheus text exposition format: `pgha_check_status` (0 OK,
    /// 1 WARNING, 2 CRITICAL, 3 UNKNOWN), `pgha_check_findings` per check and level, and every
    /// metric as a `pgha_<name>` gauge with a `member` label where it is about one. `labels`
    /// (such as `cluster="pg-ha"`) are added to every sample.
    ///
    /// ```
    /// # fn demo(report: pgha_admin::HealthReport) {
    /// let text = report.prometheus(&[("cluster", "pg-ha")]);
    /// assert!(text.contains("# TYPE pgha_check_status gauge"));
    /// # }
    /// ```
    pub fn prometheus(&self, labels: &[(&str, &str)]) -> String {
        let labelled = |extra: &[(&str, &str)]| -> String {
            let all: Vec<String> = labels
                .iter()
                .chain(extra)
                .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
                .collect();
            if all.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", all.join(","))
            }
        };
        // Families in order of first appearance, each with its samples.
        // (name, (help, counter), samples)
        let mut families: Vec<(String, (&str, bool), Vec<String>)> = Vec::new();
        let mut add = |name: String, help: (&'static str, bool), sample: String| match families
            .iter_mut()
            .find(|(n, _, _)| *n == name)
        {
            Some((_, _, samples)) => samples.push(sample),
            None => families.push((name, help, vec![sample])),
        };
        add(
            "pgha_check_status".into(),
            (
                "The health check's verdict: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
                false,
            ),
            format!("{} {}", labelled(&[]), self.level.exit_code()),
        );
        let mut findings: std::collections::BTreeMap<(&str, &str), u32> = std::collections::BTreeMap::new();
        for c in &self.checks {
            *findings.entry((c.name, c.level.as_str())).or_default() += 1;
        }
        for ((check, level), n) in findings {
            add(
                "pgha_check_findings".into(),
                ("Findings of the health check, by check and level.", false),
                format!("{} {n}", labelled(&[("check", check), ("level", level)])),
            );
        }
        for m in &self.metrics {
            let member: Vec<(&str, &str)> = m.member.as_deref().map(|v| ("member", v)).into_iter().collect();
            // A counter's name ends in `_total`, as Prometheus names them.
            let suffix = if m.counter { "_total" } else { "" };
            add(
                format!("pgha_{}{suffix}", m.name),
                (m.help, m.counter),
                format!("{} {}", labelled(&member), number(m.value)),
            );
        }
        let mut out = String::new();
        for (name, (help, counter), samples) in families {
            let help = help.replace('\\', "\\\\").replace('\n', "\\n");
            let kind = if counter { "counter" } else { "gauge" };
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for sample in samples {
                let _ = writeln!(out, "{name}{sample}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{check, Check};

    fn lag(member: &str, bytes: f64) -> Metric {
        Metric {
            name: "replay_lag_bytes",
            help: "WAL not replayed.",
            member: Some(member.to_owned()),
            value: bytes,
            unit: Unit::Bytes,
            warning: Some(16_777_216.0),
            critical: Some(268_435_456.0),
            counter: false,
        }
    }

    fn report(level: Level, checks: Vec<Check>) -> HealthReport {
        HealthReport {
            level,
            checks,
            metrics: vec![
                Metric {
                    name: "streaming_standbys",
                    help: "Standbys streaming.",
                    member: None,
                    value: 2.0,
                    unit: Unit::Count,
                    warning: None,
                    critical: None,
                    counter: false,
                },
                lag("node2", 0.0),
                lag("it's|node3", 300_000_000.0),
                Metric {
                    name: "data_directory_used_percent",
                    help: "How full.\nReally.",
                    member: Some("node1".into()),
                    value: 42.5,
                    unit: Unit::Percent,
                    warning: Some(80.0),
                    critical: Some(90.0),
                    counter: false,
                },
                Metric {
                    name: "archive_failures",
                    help: "Failed.",
                    member: Some("node1".into()),
                    value: 3.0,
                    unit: Unit::Count,
                    warning: None,
                    critical: None,
                    counter: true,
                },
            ],
        }
    }

    #[test]
    fn nagios_output_is_a_summary_with_performance_data_then_the_findings_worst_first() {
        let r = report(
            Level::Critical,
            vec![
                check("leader", Some("node1"), Level::Ok, "node1 is the leader"),
                check("lag", Some("node2"), Level::Warning, "replay lag 0 bytes"),
                check("lag", Some("it's|node3"), Level::Critical, "replay lag 300000000 bytes"),
            ],
        );
        let text = r.nagios();
        let mut lines = text.lines();
        let first = lines.next().expect("a summary");
        let (summary, perf) = first.split_once(" | ").expect("performance data");
        assert_eq!(summary, "PGHA CRITICAL - lag it's/node3: replay lag 300000000 bytes");
        assert_eq!(
            perf,
            "'streaming_standbys'=2;;;0; 'replay_lag_bytes_node2'=0B;16777216;268435456;0; \
             'replay_lag_bytes_it''s|node3'=300000000B;16777216;268435456;0; \
             'data_directory_used_percent_node1'=42.5%;80;90;0;100 'archive_failures_node1'=3c;;;0;"
        );
        let rest: Vec<&str> = lines.collect();
        assert_eq!(
            rest,
            [
                "CRITICAL lag it's/node3: replay lag 300000000 bytes",
                "WARNING  lag node2: replay lag 0 bytes",
                "OK       leader node1: node1 is the leader",
            ]
        );
    }

    #[test]
    fn level_names_are_the_report_s_own() {
        for level in [Level::Ok, Level::Warning, Level::Critical, Level::Unknown] {
            assert_eq!(
                serde_json::to_value(level).ok(),
                Some(serde_json::json!(level.as_str()))
            );
        }
    }

    #[test]
    fn a_healthy_cluster_names_its_leader_and_standbys() {
        let r = report(
            Level::Ok,
            vec![check("leader", Some("node1"), Level::Ok, "node1 is the leader")],
        );
        assert!(r
            .nagios()
            .starts_with("PGHA OK - leader node1, 2 standbys streaming | "));
        let empty = HealthReport {
            level: Level::Unknown,
            checks: Vec::new(),
            metrics: Vec::new(),
        };
        assert_eq!(empty.nagios(), "PGHA UNKNOWN - no check could run");
    }

    #[test]
    fn prometheus_text_has_one_help_and_type_per_family_and_escaped_labels() {
        let r = report(
            Level::Warning,
            vec![
                check("lag", Some("node2"), Level::Warning, "slow"),
                check("lag", Some("node3"), Level::Warning, "slow"),
                check("leader", Some("node1"), Level::Ok, "ok"),
            ],
        );
        let text = r.prometheus(&[("cluster", "pg \"ha\"")]);
        let expected = "\
# HELP pgha_check_status The health check's verdict: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
# TYPE pgha_check_status gauge
pgha_check_status{cluster=\"pg \\\"ha\\\"\"} 1
# HELP pgha_check_findings Findings of the health check, by check and level.
# TYPE pgha_check_findings gauge
pgha_check_findings{cluster=\"pg \\\"ha\\\"\",check=\"lag\",level=\"WARNING\"} 2
pgha_check_findings{cluster=\"pg \\\"ha\\\"\",check=\"leader\",level=\"OK\"} 1
# HELP pgha_streaming_standbys Standbys streaming.
# TYPE pgha_streaming_standbys gauge
pgha_streaming_standbys{cluster=\"pg \\\"ha\\\"\"} 2
# HELP pgha_replay_lag_bytes WAL not replayed.
# TYPE pgha_replay_lag_bytes gauge
pgha_replay_lag_bytes{cluster=\"pg \\\"ha\\\"\",member=\"node2\"} 0
pgha_replay_lag_bytes{cluster=\"pg \\\"ha\\\"\",member=\"it's|node3\"} 300000000
# HELP pgha_data_directory_used_percent How full.\\nReally.
# TYPE pgha_data_directory_used_percent gauge
pgha_data_directory_used_percent{cluster=\"pg \\\"ha\\\"\",member=\"node1\"} 42.5
# HELP pgha_archive_failures_total Failed.
# TYPE pgha_archive_failures_total counter
pgha_archive_failures_total{cluster=\"pg \\\"ha\\\"\",member=\"node1\"} 3
";
        assert_eq!(text, expected);
        assert_eq!(
            HealthReport {
                level: Level::Ok,
                checks: vec![],
                metrics: vec![]
            }
            .prometheus(&[]),
            "# HELP pgha_check_status The health check's verdict: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.\n\
             # TYPE pgha_check_status gauge\npgha_check_status 0\n"
        );
    }
}
