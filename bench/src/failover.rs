//! `streams-bench failover`: the time from kill -9 of one of two instances to the first
//! output of the tasks it ran, on the survivor, with and without standbys, for this project
//! and Java Kafka Streams with the same settings.
//!
//! Per system and standby count: two instances of the `count` workload start on empty input
//! (so each is active for half of the 4 tasks), `--keys` records with distinct keys go in, and
//! once both have processed everything (and with standbys, once both report their standbys
//! caught up) one instance is killed with SIGKILL. Then one marker record goes to each input
//! partition; the harness reads the output and times each marker's count. The last marker is
//! the first output of the last moved task: session timeout, rebalance and restoration (a
//! full one without standbys, the tail with them).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use streams::{KafkaStreams, State};
use streams_testkit as testing;

use crate::brokers::RunningBroker;
use crate::java::{JavaApp, DEFAULT_JVM_FLAGS};
use crate::workload::{Broker, System};

/// Input partitions (tasks of the count).
const PARTITIONS: i32 = 4;
/// `session.timeout.ms` of both systems: how long the group waits for a killed member.
pub(crate) const SESSION_TIMEOUT_MS: u64 = 10_000;

/// What `streams-bench failover` takes.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct FailoverArgs {
    /// Brokers: kafka, bundled.
    #[arg(long, value_delimiter = ',', default_value = "kafka")]
    brokers: Vec<Broker>,
    /// Systems: streams, kafka-streams-java.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "streams,kafka-streams-java"
    )]
    systems: Vec<System>,
    /// Distinct keys in the count's store.
    #[arg(long, default_value_t = 200_000)]
    keys: u64,
    /// `num.standby.replicas` values to run.
    #[arg(long, value_delimiter = ',', default_value = "0,1")]
    standbys: Vec<u32>,
}

/// The settings both systems' instances get in this benchmark.
pub(crate) fn settings(standbys: u32) -> Vec<(&'static str, String)> {
    vec![
        ("num.standby.replicas", standbys.to_string()),
        ("commit.interval.ms", "1000".into()),
        (
            "consumer.session.timeout.ms",
            SESSION_TIMEOUT_MS.to_string(),
        ),
        ("consumer.heartbeat.interval.ms", "1000".into()),
    ]
}

/// The Rust instance's side: prints `running` once Running and, with standbys, `warm` once
/// every standby it has has caught up; runs until killed (or the timeout).
pub(crate) fn serve(app: &KafkaStreams, standbys: bool, timeout_s: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    let (mut running, mut warm) = (false, false);
    while Instant::now() < deadline {
        ensure!(app.state() != State::Error, "failed: {:?}", app.error());
        if !running && app.state() == State::Running {
            running = true;
            println!("running");
        }
        let lags = app.standby_lags();
        if running && standbys && !warm && !lags.is_empty() && lags.values().all(|l| *l == 0) {
            warm = true;
            println!("warm");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("not killed within {timeout_s} s")
}

/// One instance as a child process, its stdout lines arriving on a channel.
struct Instance {
    child: Child,
    lines: Receiver<String>,
}

impl Instance {
    fn spawn(mut cmd: Command) -> anyhow::Result<Instance> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting an instance")?;
        let out = child.stdout.take().context("the instance's stdout")?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line.trim().to_string()).is_err() {
                    break;
                }
            }
        });
        Ok(Instance { child, lines: rx })
    }

    /// Waits for the line `event`.
    fn wait(&mut self, event: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l == event => return Ok(()),
                Ok(_) => {}
                Err(_) => bail!("no `{event}` from an instance within {timeout:?}"),
            }
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One measured failover.
#[derive(Debug, serde::Serialize)]
struct Outcome {
    system: &'static str,
    broker: &'static str,
    standbys: u32,
    keys: u64,
    /// Seconds from the kill to the first marker's output (usually the survivor's own task).
    first_s: f64,
    /// Seconds from the kill to the last marker's output: the moved tasks are back.
    recovered_s: f64,
}

/// Runs every combination asked for and prints a table and JSON lines.
pub(crate) fn run(args: FailoverArgs) -> anyhow::Result<()> {
    let root = crate::run::workspace_root()?;
    let work = std::env::temp_dir().join(format!("streams-bench-{}", crate::run::unix_millis()));
    std::fs::create_dir_all(&work)?;
    let java = if args.systems.contains(&System::Java) {
        Some(JavaApp::build(&root, DEFAULT_JVM_FLAGS)?)
    } else {
        None
    };
    let mut outcomes = Vec::new();
    for &broker in &args.brokers {
        let running = RunningBroker::start(broker, &root, &work)?;
        for &system in &args.systems {
            for &standbys in &args.standbys {
                let o = once(
                    &running.bootstrap,
                    system,
                    broker,
                    standbys,
                    args.keys,
                    java.as_ref(),
                    &work,
                )
                .with_context(|| {
                    format!(
                        "{} on {} with {standbys} standbys",
                        system.id(),
                        broker.id()
                    )
                })?;
                eprintln!("{}", serde_json::to_string(&o)?);
                outcomes.push(o);
            }
        }
    }
    println!("| system | broker | standbys | keys | first output (s) | all tasks back (s) |");
    println!("|---|---|---|---|---|---|");
    for o in &outcomes {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.2} |",
            o.system, o.broker, o.standbys, o.keys, o.first_s, o.recovered_s
        );
    }
    let dir = root.join("bench/results");
    std::fs::create_dir_all(&dir)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let path = dir.join(format!("{stamp}-failover.jsonl"));
    let lines: Vec<String> = outcomes
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<_, _>>()?;
    std::fs::write(&path, lines.join("\n") + "\n")?;
    println!("written to {}", path.display());
    Ok(())
}

fn once(
    bootstrap: &str,
    system: System,
    broker: Broker,
    standbys: u32,
    keys: u64,
    java: Option<&JavaApp>,
    work: &Path,
) -> anyhow::Result<Outcome> {
    let tag = format!(
        "failover-{}-{}-{standbys}-{}",
        system.id(),
        broker.id(),
        std::process::id()
    );
    let (input, output) = (format!("{tag}-in"), format!("{tag}-out"));
    testing::create_topic(bootstrap, &input, PARTITIONS)?;
    testing::create_topic(bootstrap, &output, PARTITIONS)?;
    let spawn = |n: u32| -> anyhow::Result<Instance> {
        let dir = work.join(format!("{tag}-{n}"));
        let args: Vec<String> = [
            "--workload",
            "count",
            "--phase",
            "failover",
            "--bootstrap",
            bootstrap,
            "--input",
            &input,
            "--output",
            &output,
            "--app-id",
            &tag,
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            "--state-dir".to_string(),
            dir.display().to_string(),
            "--expect".to_string(),
            "0".to_string(),
            "--standbys".to_string(),
            standbys.to_string(),
            "--timeout-s".to_string(),
            "600".to_string(),
        ])
        .collect();
        let cmd = match system {
            System::Java => java
                .context("the Java program was not built")?
                .command(&args),
            System::Streams => {
                let mut c = Command::new(std::env::current_exe()?);
                c.arg("app").args(["--system", "streams"]).args(&args);
                c
            }
            other => bail!("{} has no failover", other.id()),
        };
        Instance::spawn(cmd)
    };
    let mut a = spawn(1)?;
    let mut b = spawn(2)?;
    a.wait("running", Duration::from_secs(120))?;
    b.wait("running", Duration::from_secs(120))?;
    testing::produce(
        bootstrap,
        &input,
        (0..keys).map(|i| {
            (
                Some((i as i32).to_be_bytes().to_vec()),
                Some(b"x".to_vec()),
                None,
            )
        }),
    )?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while (testing::record_count(bootstrap, &output)? as u64) < keys {
        ensure!(Instant::now() < deadline, "the counts never all arrived");
        std::thread::sleep(Duration::from_millis(200));
    }
    if standbys > 0 {
        a.wait("warm", Duration::from_secs(300))?;
        b.wait("warm", Duration::from_secs(300))?;
    }
    // Read the output from here on: only the markers' counts come after.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{tag}-reader"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let (_, high) = consumer.fetch_watermarks(&output, p, Duration::from_secs(10))?;
        tpl.add_partition_offset(&output, p, Offset::Offset(high))?;
    }
    consumer.assign(&tpl)?;

    a.child.kill().context("kill -9")?;
    let killed = Instant::now();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let markers: BTreeMap<i32, i32> = (0..PARTITIONS).map(|p| (i32::MAX - p, p)).collect();
    for (key, p) in &markers {
        let k = key.to_be_bytes();
        producer
            .send(
                BaseRecord::to(&input)
                    .key(&k[..])
                    .payload("marker")
                    .partition(*p),
            )
            .map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(30))?;
    let mut seen: BTreeMap<i32, f64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen.len() < markers.len() {
        ensure!(Instant::now() < deadline, "markers seen: {seen:?}");
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            let key = m
                .key()
                .and_then(|k| <[u8; 4]>::try_from(k).ok())
                .map(i32::from_be_bytes);
            if let Some(k) = key.filter(|k| markers.contains_key(k)) {
                seen.entry(k)
                    .or_insert_with(|| killed.elapsed().as_secs_f64());
            }
        }
    }
    drop(b);
    let times: Vec<f64> = seen.values().copied().collect();
    Ok(Outcome {
        system: system.id(),
        broker: broker.id(),
        standbys,
        keys,
        first_s: times.iter().copied().fold(f64::MAX, f64::min),
        recovered_s: times.iter().copied().fold(0.0, f64::max),
    })
}
