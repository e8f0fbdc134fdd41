//! The brokers the benchmark runs on, started for the run and stopped when dropped. Entry
//! point: [`RunningBroker::start`].
//!
//! - `kafka`: Apache Kafka from `scripts/kafka-testbed`, with a state directory of its own so
//!   that it never touches a test bed someone else started.
//! - `bundled`: this project's `streams-broker` (release build, next to this binary) as a child
//!   process, with its default settings, on a fresh data directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use streams_testkit as testing;

use crate::workload::Broker;

/// A broker started by the benchmark.
pub(crate) struct RunningBroker {
    /// `bootstrap.servers` for clients.
    pub(crate) bootstrap: String,
    kind: Kind,
}

enum Kind {
    /// The test bed script and its state directory (`stop` needs both).
    Kafka { script: PathBuf, state: PathBuf },
    /// The broker process: it is signalled and waited for on drop.
    Bundled(Child),
}

impl RunningBroker {
    /// Starts `broker`; `work` is a scratch directory of the run.
    pub(crate) fn start(broker: Broker, root: &Path, work: &Path) -> anyhow::Result<Self> {
        match broker {
            Broker::Kafka => {
                let script = root.join("scripts/kafka-testbed");
                let state = work.join("kafka-testbed");
                std::fs::create_dir_all(&state)?;
                let out = Command::new(&script)
                    .arg("start")
                    .env("KAFKA_TESTBED_STATE", &state)
                    .stderr(Stdio::inherit())
                    .output()
                    .with_context(|| format!("running {}", script.display()))?;
                let stdout = String::from_utf8_lossy(&out.stdout);
                let bootstrap = stdout
                    .lines()
                    .rev()
                    .find_map(|l| l.strip_prefix("bootstrap.servers="))
                    .map(str::to_string);
                let broker = RunningBroker {
                    bootstrap: bootstrap.clone().unwrap_or_default(),
                    kind: Kind::Kafka { script, state },
                };
                if !out.status.success() || bootstrap.is_none() {
                    bail!("scripts/kafka-testbed start failed ({})", out.status);
                }
                Ok(broker)
            }
            Broker::Bundled => {
                let exe = std::env::current_exe()?;
                let bin = exe
                    .parent()
                    .context("the directory of this binary")?
                    .join("streams-broker");
                let data = work.join("bundled-broker");
                let mut child = Command::new(&bin)
                    .arg("--listen")
                    .arg("127.0.0.1:0")
                    .arg("--data-dir")
                    .arg(&data)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .with_context(|| {
                        format!(
                            "starting {} (build it with `cargo build --release --workspace`)",
                            bin.display()
                        )
                    })?;
                let stdout = child.stdout.take().context("broker stdout")?;
                let mut line = String::new();
                BufReader::new(stdout).read_line(&mut line)?;
                let bootstrap = line
                    .trim()
                    .strip_prefix("listening on ")
                    .map(str::to_string);
                let broker = RunningBroker {
                    bootstrap: bootstrap.clone().unwrap_or_default(),
                    kind: Kind::Bundled(child),
                };
                if bootstrap.is_none() {
                    bail!("streams-broker did not say where it listens (got {line:?})");
                }
                Ok(broker)
            }
        }
    }
}

impl RunningBroker {
    /// Makes the broker ready for consumer groups before anything is measured: the first group
    /// on a fresh Apache Kafka creates `__consumer_offsets`, which delays that group's first
    /// assignment by about 3 s, and would be charged to whichever application ran first.
    pub(crate) fn warm_up(&self) -> anyhow::Result<()> {
        let topic = "streams-bench-warm-up";
        testing::create_topic(&self.bootstrap, topic, 1)?;
        testing::produce(&self.bootstrap, topic, [(None, Some(b"x".to_vec()), None)])?;
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", "streams-bench-warm-up")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()?;
        consumer.subscribe(&[topic])?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            ensure!(Instant::now() < deadline, "no consumer group after 120 s");
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                m.context("warming up the group coordinator")?;
                break;
            }
        }
        consumer
            .commit_consumer_state(CommitMode::Sync)
            .context("warming up the group coordinator")?;
        Ok(())
    }
}

impl Drop for RunningBroker {
    fn drop(&mut self) {
        match &mut self.kind {
            Kind::Kafka { script, state } => {
                let _ = Command::new(script)
                    .arg("stop")
                    .env("KAFKA_TESTBED_STATE", state)
                    .stdout(Stdio::null())
                    .status();
            }
            Kind::Bundled(child) => {
                // SIGTERM lets it shut down cleanly; std's kill() would send SIGKILL.
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                let deadline = Instant::now() + Duration::from_secs(30);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
