//! The measured applications of this project and of the raw clients, each run as its own
//! process (`streams-bench app ...`) so that its CPU time and memory are its alone. Entry point:
//! [`run`].
//!
//! Each runs from the start of its input until it has processed `--expect` records, then stops
//! cleanly (the Streams application closes, which flushes caches and the producer and commits;
//! the pipe flushes its producer and commits), and prints one JSON line on stdout:
//! `{"processed":N,"app_s":S,"restored":R}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Message;
use streams::core::window::TimeWindows;
use streams::prelude::*;
use streams::StateRestoreListener;

use crate::workload::{Input, System, Workload, WINDOW_MS};

/// What the harness tells the application.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct AppArgs {
    /// Who runs: streams, raw-pipe or raw-consume (Java has its own program).
    #[arg(long)]
    pub(crate) system: System,
    #[arg(long)]
    pub(crate) workload: Workload,
    #[arg(long)]
    pub(crate) bootstrap: String,
    #[arg(long)]
    pub(crate) input: String,
    #[arg(long)]
    pub(crate) output: String,
    /// The join's table topic.
    #[arg(long)]
    pub(crate) table: Option<String>,
    #[arg(long)]
    pub(crate) app_id: String,
    #[arg(long)]
    pub(crate) state_dir: String,
    /// Records to process before stopping (restore: changelog records to restore).
    #[arg(long)]
    pub(crate) expect: u64,
    /// run, or for restore: build (fill the store) and restore (measured), for crash-restore:
    /// crash (fill the store, then exit without closing) and restore, or failover: run until
    /// killed, printing events for the failover harness ([`crate::failover`]).
    #[arg(long, default_value = "run")]
    pub(crate) phase: String,
    /// `num.standby.replicas` (failover phase).
    #[arg(long, default_value_t = 0)]
    pub(crate) standbys: u32,
    #[arg(long, default_value_t = 1200)]
    pub(crate) timeout_s: u64,
    /// `processing.guarantee` (the Streams systems; the raw ones ignore it).
    #[arg(long, default_value = "at_least_once")]
    pub(crate) guarantee: String,
}

/// How long the crash phase waits after processing everything before it dies: twenty commit
/// intervals under exactly-once.
const CRASH_AFTER: Duration = Duration::from_secs(2);

/// What the application reports on stdout.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub(crate) struct AppReport {
    /// Records processed (consumed for the raw clients).
    pub(crate) processed: u64,
    /// Seconds from start to done (restore: to RUNNING with the store restored).
    pub(crate) app_s: f64,
    /// Changelog records restored.
    pub(crate) restored: u64,
}

/// Runs the application `args` describe and prints its report.
pub(crate) fn run(args: &AppArgs) -> anyhow::Result<()> {
    let report = match args.system {
        System::Streams => run_streams(args)?,
        System::RawPipe => run_raw(args, true)?,
        System::RawConsume => run_raw(args, false)?,
        System::Java => bail!("the Java application is bench/java, not this program"),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The workload's topology: the same nodes, in the same order, as bench/java's StreamsBench.
pub(crate) fn topology(
    workload: Workload,
    input: &str,
    output: &str,
    table: Option<&str>,
) -> anyhow::Result<Topology> {
    let b = StreamsBuilder::new();
    let stream =
        b.stream_with::<i32, String>(&[input], Consumed::with(Serdes::i32(), Serdes::string()));
    let produced = || Produced::with(Serdes::i32(), Serdes::string());
    match workload {
        Workload::Passthrough => stream.to_with(output, produced()),
        Workload::FilterMap => stream
            .filter(|k, _| k % 2 == 0)
            .map_values(|v: String| v.to_uppercase())
            .to_with(output, produced()),
        Workload::Count | Workload::Restore | Workload::CrashRestore => stream
            .group_by_key()
            .count_with(Materialized::as_store("counts"))
            .to_stream()
            .to_with(
                output,
                Produced::with(Serdes::i32(), Serdes::nullable(Serdes::i64())),
            ),
        Workload::Wordcount => stream
            .flat_map_values(|v: String| {
                v.split_whitespace().map(str::to_string).collect::<Vec<_>>()
            })
            .group_by_with(
                |_, word| word.clone(),
                Grouped::with(Serdes::string(), Serdes::string()),
            )
            .count_with(Materialized::as_store("counts"))
            .to_stream()
            .to_with(
                output,
                Produced::with(Serdes::string(), Serdes::nullable(Serdes::i64())),
            ),
        Workload::WindowedCount => stream
            .group_by_key()
            .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(
                WINDOW_MS as u64,
            )))
            .count_with(Materialized::as_store("counts"))
            .to_stream()
            .to_with(
                output,
                Produced::with(
                    Serdes::time_windowed(Serdes::i32(), WINDOW_MS),
                    Serdes::nullable(Serdes::i64()),
                ),
            ),
        Workload::Join => {
            let table = b.table_with::<i32, String>(
                table.context("join needs --table")?,
                Consumed::with(Serdes::i32(), Serdes::string()),
                Materialized::as_store("table"),
            );
            left_join(&stream, &table).to_with(output, produced());
        }
    }
    Ok(b.build()?)
}

/// The stream-table left join: each stream record with the table's current row.
fn left_join(stream: &KStream<i32, String>, table: &KTable<i32, String>) -> KStream<i32, String> {
    stream.left_join(table, |v: &String, t: Option<&String>| {
        Input::joined(v, t.map(String::as_str))
    })
}

/// Sums the records restored, over stores and partitions.
#[derive(Default)]
struct Restored(AtomicU64);

impl StateRestoreListener for Restored {
    fn on_restore_end(&self, _: &str, _: i32, _: &str, total: u64) {
        self.0.fetch_add(total, Ordering::Relaxed);
    }
}

fn run_streams(args: &AppArgs) -> anyhow::Result<AppReport> {
    let topology = topology(
        args.workload,
        &args.input,
        &args.output,
        args.table.as_deref(),
    )?;
    // Defaults for everything else (commit interval, cache, threads), as for Java.
    let mut config = StreamsConfig::new(&args.app_id, &args.bootstrap)
        .set("state.dir", &args.state_dir)
        .set("processing.guarantee", &args.guarantee);
    if args.workload == Workload::CrashRestore {
        // The restart waits for the dead member's session to end before it is assigned
        // anything: the brokers' least session timeout, as on the Java side.
        config = config
            .set("consumer.session.timeout.ms", "6000")
            .set("consumer.heartbeat.interval.ms", "1000");
    }
    if args.phase == "failover" {
        for (k, v) in crate::failover::settings(args.standbys) {
            config = config.set(k, v);
        }
        let mut app = KafkaStreams::new(topology, config)?;
        app.start()?;
        crate::failover::serve(&app, args.standbys > 0, args.timeout_s)?;
        return Ok(AppReport::default());
    }
    let mut app = KafkaStreams::new(topology, config)?;
    let restored = Arc::new(Restored::default());
    app.set_restore_listener(restored.clone());
    let restore = args.phase == "restore";
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let start = Instant::now();
    app.start()?;
    loop {
        ensure!(
            app.state() != State::Error,
            "the application failed: {:?}",
            app.error()
        );
        ensure!(
            Instant::now() < deadline,
            "timed out: processed {} of {}",
            app.metrics().processed,
            args.expect
        );
        let done = if restore {
            app.state() == State::Running && restored.0.load(Ordering::Relaxed) >= args.expect
        } else {
            app.metrics().processed >= args.expect
        };
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ready_s = start.elapsed().as_secs_f64();
    let processed = app.metrics().processed;
    if args.phase == "crash" {
        // Everything processed; a few commit intervals for the last one to commit, then the
        // process dies without closing anything, as a kill leaves it.
        std::thread::sleep(CRASH_AFTER);
        let report = AppReport {
            processed,
            app_s: ready_s,
            restored: restored.0.load(Ordering::Relaxed),
        };
        println!("{}", serde_json::to_string(&report)?);
        use std::io::Write;
        std::io::stdout().flush()?;
        std::process::exit(0);
    }
    app.close()?;
    Ok(AppReport {
        processed,
        app_s: if restore {
            ready_s
        } else {
            start.elapsed().as_secs_f64()
        },
        restored: restored.0.load(Ordering::Relaxed),
    })
}

/// The raw limit: a consumer group member reading the input from the start and, for the pipe,
/// a producer writing each record unchanged to the same partition of the output. Client
/// settings are those this project's runtime gives its own clients (earliest, no auto-commit,
/// the same prefetch; linger.ms 100), so the difference to `streams` is the processing alone.
fn run_raw(args: &AppArgs, pipe: bool) -> anyhow::Result<AppReport> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("group.id", &args.app_id)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        // The runtime's prefetch settings (streams-core's consumer defaults).
        .set("queued.max.messages.kbytes", "16384")
        .set("queued.min.messages", "20000")
        .set("fetch.queue.backoff.ms", "10")
        .create()
        .context("creating the consumer")?;
    let producer: Option<ThreadedProducer<DefaultProducerContext>> = if pipe {
        Some(
            ClientConfig::new()
                .set("bootstrap.servers", &args.bootstrap)
                .set("linger.ms", "100")
                .create()
                .context("creating the producer")?,
        )
    } else {
        None
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let start = Instant::now();
    consumer
        .subscribe(&[&args.input])
        .context("subscribing to the input")?;
    let mut consumed = 0u64;
    while consumed < args.expect {
        ensure!(
            Instant::now() < deadline,
            "timed out: consumed {consumed} of {}",
            args.expect
        );
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.context("consuming the input")?;
        consumed += 1;
        if let Some(p) = &producer {
            let mut rec = BaseRecord::<[u8], [u8]>::to(&args.output).partition(m.partition());
            if let Some(k) = m.key() {
                rec = rec.key(k);
            }
            if let Some(v) = m.payload() {
                rec = rec.payload(v);
            }
            if let Some(ts) = m.timestamp().to_millis() {
                rec = rec.timestamp(ts);
            }
            loop {
                match p.send(rec) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                        r,
                    )) => {
                        rec = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => return Err(e).context("producing to the output"),
                }
            }
        }
    }
    if let Some(p) = &producer {
        p.flush(Duration::from_secs(60))
            .context("flushing the output")?;
    }
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .context("committing")?;
    Ok(AppReport {
        processed: consumed,
        app_s: start.elapsed().as_secs_f64(),
        restored: 0,
    })
}
