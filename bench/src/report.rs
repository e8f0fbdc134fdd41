//! Results: one [`Row`] per workload, system and broker, written as a JSON line and shown in a
//! table, and the issue's targets checked against them ([`targets`]).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// One measured run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Row {
    pub(crate) workload: String,
    pub(crate) system: String,
    pub(crate) broker: String,
    /// Input records (restore: changelog records restored).
    pub(crate) records: u64,
    /// Process wall seconds (restore: start to RUNNING with the store restored).
    pub(crate) wall_s: f64,
    /// User + system CPU seconds of the application process.
    pub(crate) cpu_s: f64,
    /// Peak resident memory of the application process, MiB.
    pub(crate) rss_mb: f64,
    pub(crate) records_per_s: f64,
    pub(crate) records_per_cpu_s: f64,
    /// Whether the output matched what the input must produce.
    pub(crate) verified: bool,
    /// Why verification failed, if it did.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) note: String,
}

impl Row {
    /// A row with the rates computed from `records`, `wall_s` and `cpu_s`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        workload: &str,
        system: &str,
        broker: &str,
        records: u64,
        wall_s: f64,
        cpu_s: f64,
        rss_mb: f64,
        verdict: Result<(), String>,
    ) -> Row {
        let rate = |secs: f64| {
            if secs > 0.0 {
                (records as f64 / secs).round()
            } else {
                0.0
            }
        };
        Row {
            workload: workload.to_string(),
            system: system.to_string(),
            broker: broker.to_string(),
            records,
            wall_s: round(wall_s, 2),
            cpu_s: round(cpu_s, 2),
            rss_mb: round(rss_mb, 1),
            records_per_s: rate(wall_s),
            records_per_cpu_s: rate(cpu_s),
            verified: verdict.is_ok(),
            note: verdict.err().unwrap_or_default(),
        }
    }

    /// The row as one JSON line (no newline).
    pub(crate) fn json_line(&self) -> String {
        serde_json::to_string(self).expect("a row serializes")
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Thousands separators: 1234567 -> "1,234,567".
fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The rows as a Markdown table (readable on a terminal as it is).
pub(crate) fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| workload | system | broker | records | wall s | CPU s | RSS MiB | records/s | records/CPU s | ok |\n\
         |---|---|---|--:|--:|--:|--:|--:|--:|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.0} | {} | {} | {} |",
            r.workload,
            r.system,
            r.broker,
            thousands(r.records as f64),
            r.wall_s,
            r.cpu_s,
            r.rss_mb,
            thousands(r.records_per_s),
            thousands(r.records_per_cpu_s),
            if r.verified { "yes" } else { "NO" },
        );
    }
    out
}

fn find<'a>(rows: &'a [Row], workload: &str, system: &str, broker: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.workload == workload && r.system == system && r.broker == broker)
}

/// The issue's targets, per broker, for the rows present: one line each, with the ratio
/// reached and whether it meets the target.
pub(crate) fn targets(rows: &[Row]) -> Vec<String> {
    let mut brokers: Vec<&str> = Vec::new();
    for r in rows {
        if !brokers.contains(&r.broker.as_str()) {
            brokers.push(&r.broker);
        }
    }
    let mut out = Vec::new();
    for b in brokers {
        let java = "kafka-streams-java";
        for (w, want) in [
            ("count", 3.0),
            ("wordcount", 3.0),
            ("windowed-count", 2.0),
            ("join", 2.0),
        ] {
            if let (Some(s), Some(j)) = (find(rows, w, "streams", b), find(rows, w, java, b)) {
                let x = s.records_per_cpu_s / j.records_per_cpu_s.max(1.0);
                out.push(format!(
                    "{b}: {w} per CPU second {x:.2}x Java (target {want}x): {}",
                    met(x >= want)
                ));
            }
        }
        if let (Some(s), Some(p)) = (
            find(rows, "passthrough", "streams", b),
            find(rows, "passthrough", "raw-pipe", b),
        ) {
            let x = s.records_per_s / p.records_per_s.max(1.0);
            out.push(format!(
                "{b}: passthrough {:.0}% of the raw pipe's throughput (target 90%): {}",
                x * 100.0,
                met(x >= 0.9)
            ));
        }
        // Memory: the worst ratio over the workloads both ran.
        let worst = rows
            .iter()
            .filter(|r| r.broker == b && r.system == "streams")
            .filter_map(|s| {
                let j = find(rows, &s.workload, java, b)?;
                (j.rss_mb > 0.0).then(|| (s.rss_mb / j.rss_mb, s, j))
            })
            .max_by(|x, y| x.0.total_cmp(&y.0));
        if let Some((x, s, j)) = worst {
            out.push(format!(
                "{b}: resident memory at most {x:.2} of the JVM's (worst: {} {:.0} vs {:.0} MiB; target at most 0.20): {}",
                s.workload,
                s.rss_mb,
                j.rss_mb,
                met(x <= 0.2)
            ));
        }
        if let (Some(s), Some(j)) = (
            find(rows, "restore", "streams", b),
            find(rows, "restore", java, b),
        ) {
            out.push(format!(
                "{b}: restore {:.2} s vs Java's {:.2} s (target faster): {}",
                s.wall_s,
                j.wall_s,
                met(s.wall_s < j.wall_s)
            ));
        }
    }
    out
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(workload: &str, system: &str, wall: f64, cpu: f64, rss: f64) -> Row {
        Row::new(
            workload,
            system,
            "bundled",
            1_000_000,
            wall,
            cpu,
            rss,
            Ok(()),
        )
    }

    #[test]
    fn a_row_is_one_json_line_with_the_issue_s_fields() {
        let r = Row::new(
            "count",
            "streams",
            "kafka",
            2_000_000,
            4.0,
            2.5,
            88.04,
            Ok(()),
        );
        assert_eq!(
            r.json_line(),
            r#"{"workload":"count","system":"streams","broker":"kafka","records":2000000,"wall_s":4.0,"cpu_s":2.5,"rss_mb":88.0,"records_per_s":500000.0,"records_per_cpu_s":800000.0,"verified":true}"#
        );
        let back: Row = serde_json::from_str(&r.json_line()).unwrap();
        assert_eq!(back, r);
        let failed = Row::new(
            "join",
            "streams",
            "kafka",
            10,
            0.0,
            0.0,
            1.0,
            Err("3 wrong".into()),
        );
        assert!(failed
            .json_line()
            .ends_with(r#""verified":false,"note":"3 wrong"}"#));
        assert_eq!(failed.records_per_s, 0.0);
    }

    #[test]
    fn the_table_has_a_line_per_row() {
        let t = table(&[row("count", "streams", 2.0, 1.0, 50.0)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[2],
            "| count | streams | bundled | 1,000,000 | 2.00 | 1.00 | 50 | 500,000 | 1,000,000 | yes |"
        );
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
    }

    #[test]
    fn targets_compare_against_java_and_the_raw_pipe() {
        let rows = vec![
            row("count", "streams", 1.0, 1.0, 100.0),
            row("count", "kafka-streams-java", 3.0, 4.0, 600.0),
            row("join", "streams", 1.0, 1.0, 90.0),
            row("join", "kafka-streams-java", 1.0, 1.5, 500.0),
            row("passthrough", "streams", 1.0, 1.0, 40.0),
            row("passthrough", "raw-pipe", 0.95, 0.5, 20.0),
            row("restore", "streams", 2.0, 1.0, 40.0),
            row("restore", "kafka-streams-java", 3.0, 1.0, 400.0),
        ];
        let t = targets(&rows);
        assert_eq!(
            t,
            vec![
                "bundled: count per CPU second 4.00x Java (target 3x): met",
                "bundled: join per CPU second 1.50x Java (target 2x): MISSED",
                "bundled: passthrough 95% of the raw pipe's throughput (target 90%): met",
                "bundled: resident memory at most 0.18 of the JVM's (worst: join 90 vs 500 MiB; target at most 0.20): met",
                "bundled: restore 2.00 s vs Java's 3.00 s (target faster): met",
            ]
        );
    }
}
