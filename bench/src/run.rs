//! `streams-bench run`: every workload on every system and broker asked for. Entry point:
//! [`run`].
//!
//! Per broker: start it; per workload: produce the input into fresh topics; per system: run the
//! application as a measured child process on a fresh application id and output topic, then
//! verify its output. At the end: the table on stdout, the targets, and a JSON-lines file.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use streams_testkit as testing;

use crate::app::AppReport;
use crate::brokers::RunningBroker;
use crate::java::{JavaApp, DEFAULT_JVM_FLAGS};
use crate::measure::run_measured;
use crate::report::{self, Row};
use crate::verify::verify;
use crate::workload::{Broker, Expected, Input, System, Workload, TABLE_KEYS};

/// What `run` measures, and on what.
#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
    /// Small sizes (200,000 records, restore of 100,000 keys) that finish within 5 minutes on a
    /// 2-core machine; explicit sizes still win.
    #[arg(long)]
    quick: bool,
    /// Brokers, comma-separated [default: kafka,bundled; with --quick: bundled].
    #[arg(long, value_delimiter = ',')]
    brokers: Vec<Broker>,
    /// Systems, comma-separated [default: all].
    #[arg(long, value_delimiter = ',')]
    systems: Vec<System>,
    /// Workloads, comma-separated [default: all].
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<Workload>,
    /// Input records per workload [default: 2,000,000; with --quick: 200,000].
    #[arg(long)]
    records: Option<u64>,
    /// Keys of the restored store [default: 1,000,000; with --quick: 100,000].
    #[arg(long)]
    restore_keys: Option<u64>,
    /// Partitions of every input and output topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Distinct keys (and distinct words) of the input.
    #[arg(long, default_value_t = 10_000)]
    keys: u32,
    /// Bytes per input value.
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// JVM flags of the Java application.
    #[arg(long, default_value = DEFAULT_JVM_FLAGS, allow_hyphen_values = true)]
    jvm_flags: String,
    /// `processing.guarantee` of both Streams systems: at_least_once or exactly_once_v2 (each
    /// then with its default commit interval, 100 ms in both). Rows under exactly-once are
    /// labelled `<workload> eos`.
    #[arg(long, default_value = "at_least_once", value_parser = ["at_least_once", "exactly_once_v2"])]
    guarantee: String,
    /// Where the JSON-lines file goes.
    #[arg(long, default_value = "bench/results")]
    results_dir: PathBuf,
    /// Keep the scratch directory (the applications' logs; RUST_LOG is passed on to them).
    #[arg(long)]
    keep: bool,
    /// Longest a single application run may take.
    #[arg(long, default_value_t = 1800)]
    timeout_s: u64,
}

/// The workspace root: the nearest directory up from here holding bench/java/pom.xml (the
/// harness runs scripts and Maven from there).
pub(crate) fn workspace_root() -> anyhow::Result<PathBuf> {
    let cwd = std::env::current_dir()?;
    cwd.ancestors()
        .find(|d| d.join("bench/java/pom.xml").is_file())
        .map(Path::to_path_buf)
        .context("run streams-bench from inside the streams workspace (no bench/java/pom.xml above the current directory)")
}

pub(crate) fn unix_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// Runs the benchmark `args` describe.
pub(crate) fn run(mut args: RunArgs) -> anyhow::Result<()> {
    if args.brokers.is_empty() {
        args.brokers = if args.quick {
            vec![Broker::Bundled]
        } else {
            Broker::ALL.to_vec()
        };
    }
    if args.systems.is_empty() {
        args.systems = System::ALL.to_vec();
    }
    if args.workloads.is_empty() {
        args.workloads = Workload::ALL.to_vec();
    }
    let records = args
        .records
        .unwrap_or(if args.quick { 200_000 } else { 2_000_000 });
    let restore_keys = args
        .restore_keys
        .unwrap_or(if args.quick { 100_000 } else { 1_000_000 });
    let root = workspace_root()?;
    let work = std::env::temp_dir().join(format!("streams-bench-{}", unix_millis()));
    std::fs::create_dir_all(work.join("logs"))?;
    let started = Instant::now();

    let java = if args.systems.contains(&System::Java) {
        Some(JavaApp::build(&root, &args.jvm_flags)?)
    } else {
        None
    };
    eprintln!(
        "streams-bench: {records} records ({} keys, {}-byte values, {} partitions), restore of {restore_keys} keys; \
         brokers {:?}; JVM flags `{}`; scratch {}",
        args.keys,
        args.value_bytes,
        args.partitions,
        args.brokers.iter().map(|b| b.id()).collect::<Vec<_>>(),
        args.jvm_flags,
        work.display()
    );
    let mut rows = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        for &broker in &args.brokers {
            let running = RunningBroker::start(broker, &root, &work)?;
            eprintln!("{broker}: bootstrap.servers={}", running.bootstrap);
            running.warm_up()?;
            for &workload in &args.workloads {
                let plan = Plan {
                    broker,
                    workload,
                    bootstrap: &running.bootstrap,
                    args: &args,
                    java: java.as_ref(),
                    work: &work,
                    input: Input {
                        records: if workload.restores() {
                            restore_keys
                        } else {
                            records
                        },
                        keys: args.keys,
                        value_bytes: args.value_bytes,
                        // A whole second, so that windows line up with the input.
                        base_ts: (unix_millis() as i64 / 1_000) * 1_000,
                    },
                };
                plan.run(&mut rows)?;
            }
        }
        Ok(())
    })();
    if let Err(e) = &result {
        eprintln!("streams-bench: stopped early: {e:#}");
    }

    println!();
    print!("{}", report::table(&rows));
    println!();
    for t in report::targets(&rows) {
        println!("{t}");
    }
    std::fs::create_dir_all(&args.results_dir)?;
    let path = args.results_dir.join(format!(
        "{}-{}.jsonl",
        unix_millis() / 1000,
        if args.quick { "quick" } else { "full" }
    ));
    let mut f = std::fs::File::create(&path)?;
    for r in &rows {
        writeln!(f, "{}", r.json_line())?;
    }
    println!(
        "\n{} results in {} ({:.0} s in all; JVM flags `{}`)",
        rows.len(),
        path.display(),
        started.elapsed().as_secs_f64(),
        args.jvm_flags
    );
    if result.is_ok() && !args.keep {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        eprintln!("logs kept in {}", work.join("logs").display());
    }
    result
}

/// One workload on one broker.
struct Plan<'a> {
    broker: Broker,
    workload: Workload,
    bootstrap: &'a str,
    args: &'a RunArgs,
    java: Option<&'a JavaApp>,
    work: &'a Path,
    input: Input,
}

impl Plan<'_> {
    fn run(&self, rows: &mut Vec<Row>) -> anyhow::Result<()> {
        let tag = unix_millis();
        let w = self.workload;
        let input_topic = format!("bench-{w}-input-{tag}");
        testing::create_topic(self.bootstrap, &input_topic, self.args.partitions)?;
        let t0 = Instant::now();
        let input = &self.input;
        let produced = if w.restores() {
            // One record per key: the count store ends with `records` keys.
            testing::produce(
                self.bootstrap,
                &input_topic,
                (0..input.records).map(|i| {
                    (
                        Some((i as i32).to_be_bytes().to_vec()),
                        Some(input.value(i).into_bytes()),
                        Some(input.timestamp(i)),
                    )
                }),
            )?
        } else {
            testing::produce(
                self.bootstrap,
                &input_topic,
                (0..input.records).map(|i| {
                    (
                        Some(input.key(i).to_be_bytes().to_vec()),
                        Some(input.value(i).into_bytes()),
                        Some(input.timestamp(i)),
                    )
                }),
            )?
        };
        let table_topic = format!("bench-{w}-table-{tag}");
        if w == Workload::Join {
            testing::create_topic(self.bootstrap, &table_topic, self.args.partitions)?;
            // Older than every stream record, so the table is complete before the stream is
            // joined (both systems pick records in timestamp order).
            testing::produce(
                self.bootstrap,
                &table_topic,
                (0..TABLE_KEYS as i32).map(|k| {
                    (
                        Some(k.to_be_bytes().to_vec()),
                        Some(Input::table_value(k).into_bytes()),
                        Some(input.base_ts - 1),
                    )
                }),
            )?;
        }
        eprintln!(
            "{}/{w}: produced {produced} records in {:.1} s",
            self.broker,
            t0.elapsed().as_secs_f64()
        );
        let expected = input.expected(w);
        for &system in &self.args.systems {
            if !system.runs(w) {
                continue;
            }
            let row = self
                .run_system(system, &input_topic, &table_topic, &expected, tag)
                .unwrap_or_else(|e| {
                    Row::new(
                        &self.label(),
                        system.id(),
                        self.broker.id(),
                        input.records,
                        0.0,
                        0.0,
                        0.0,
                        Err(format!("{e:#}")),
                    )
                });
            eprintln!("{}", row.json_line());
            rows.push(row);
        }
        Ok(())
    }

    /// The workload's name in the results: `<workload> eos` under exactly-once.
    fn label(&self) -> String {
        match self.args.guarantee.as_str() {
            "exactly_once_v2" => format!("{} eos", self.workload.id()),
            _ => self.workload.id().to_string(),
        }
    }

    fn run_system(
        &self,
        system: System,
        input_topic: &str,
        table_topic: &str,
        expected: &Expected,
        tag: u128,
    ) -> anyhow::Result<Row> {
        let w = self.workload;
        let output = format!("bench-{w}-{system}-output-{tag}");
        testing::create_topic(self.bootstrap, &output, self.args.partitions)?;
        let app_id = format!("bench-{w}-{system}-{tag}");
        let state_dir = self.work.join("state").join(&app_id);
        let mut app_args = vec![
            ("workload", w.id().to_string()),
            ("bootstrap", self.bootstrap.to_string()),
            ("input", input_topic.to_string()),
            ("output", output.clone()),
            ("app-id", app_id.clone()),
            ("state-dir", state_dir.display().to_string()),
            ("expect", self.input.processed(w).to_string()),
            ("timeout-s", self.args.timeout_s.to_string()),
            ("guarantee", self.args.guarantee.clone()),
        ];
        if w == Workload::Join {
            app_args.push(("table", table_topic.to_string()));
        }
        if w == Workload::Restore {
            // Fill the store (not measured), then delete the local state.
            let mut build = app_args.clone();
            build.push(("phase", "build".into()));
            self.launch(system, &build, &format!("{app_id}-build"))?;
            std::fs::remove_dir_all(&state_dir)
                .with_context(|| format!("deleting {}", state_dir.display()))?;
            app_args.push(("phase", "restore".into()));
            let expect = app_args.iter_mut().find(|(k, _)| *k == "expect");
            // Restored records: the changelog holds one record per key.
            expect.expect("set above").1 = self.input.records.to_string();
        }
        if w == Workload::CrashRestore {
            // Fill the store and die without closing (not measured); the local state stays.
            let mut build = app_args.clone();
            build.push(("phase", "crash".into()));
            self.launch(system, &build, &format!("{app_id}-crash"))?;
            app_args.push(("phase", "restore".into()));
            // RUNNING, with however much restored.
            let expect = app_args.iter_mut().find(|(k, _)| *k == "expect");
            expect.expect("set above").1 = "0".into();
        }
        let (report, usage) = self.launch(system, &app_args, &app_id)?;
        let verdict = if system == System::RawConsume {
            // Nothing written: it must have read every record.
            match report.processed == self.input.records {
                true => Ok(()),
                false => Err(format!(
                    "consumed {} records, want {}",
                    report.processed, self.input.records
                )),
            }
        } else {
            verify(self.bootstrap, &output, expected, report.restored)?
        };
        let _ = std::fs::remove_dir_all(&state_dir);
        let wall_s = if w.restores() {
            report.app_s
        } else {
            usage.wall_s
        };
        // After a crash, the records restored are the measure.
        let records = if w == Workload::CrashRestore {
            report.restored
        } else {
            self.input.records
        };
        Ok(Row::new(
            &self.label(),
            system.id(),
            self.broker.id(),
            records,
            wall_s,
            usage.cpu_s,
            usage.rss_mb,
            verdict,
        ))
    }

    /// Runs the application of `system` as a measured child process; its stdout and stderr go
    /// to `<scratch>/logs/<name>.{out,err}`.
    fn launch(
        &self,
        system: System,
        app_args: &[(&str, String)],
        name: &str,
    ) -> anyhow::Result<(AppReport, crate::measure::Usage)> {
        let flat: Vec<String> = app_args
            .iter()
            .flat_map(|(k, v)| [format!("--{k}"), v.clone()])
            .collect();
        let mut cmd = match system {
            System::Java => self
                .java
                .context("the Java program was not built")?
                .command(&flat),
            _ => {
                let mut c = Command::new(std::env::current_exe()?);
                c.arg("app").arg("--system").arg(system.id()).args(&flat);
                c
            }
        };
        let (out_path, err_path) = (
            self.work.join("logs").join(format!("{name}.out")),
            self.work.join("logs").join(format!("{name}.err")),
        );
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path)?)
            .stderr(std::fs::File::create(&err_path)?);
        let timeout = Duration::from_secs(self.args.timeout_s + 60);
        let (status, usage) = run_measured(&mut cmd, timeout)?;
        let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
        if !status.success() {
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("{name} failed ({status}):\n{}", tail.join("\n"));
        }
        let report: AppReport = stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .with_context(|| format!("{name} printed no report (stdout: {stdout:?})"))?;
        Ok((report, usage))
    }
}
