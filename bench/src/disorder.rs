//! `disorder`: how far event time jumps back in a repartition topic when a multi-partition
//! replay goes through `group_by` (the upstream disorder behind records dropped as late by a
//! windowed aggregation downstream). Entry point: [`run`].
//!
//! The input is the shape of issue 9: tweets ten a second of event time for ten minutes, each
//! with 0-3 of ten hashtags, on four partitions, all produced before the application starts (a
//! replay). The application is the tweets example's per-minute count: hashtags, `group_by`
//! (repartition), one-minute windows with 5 s of grace (`--grace-ms`), final counts. Once it has processed
//! everything, the repartition topic is read back partition by partition in offset order and
//! each record's jump back is the largest timestamp before it minus its own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use streams::core::window::TimeWindows;
use streams::dsl::Grouped;
use streams::{BufferConfig, KafkaStreams, StreamsBuilder, StreamsConfig, Suppressed};
use streams_testkit as testing;

/// Arguments of `streams-bench disorder`.
#[derive(Args, Debug)]
pub(crate) struct DisorderArgs {
    /// The cluster to run on (an Apache Kafka test bed or a bundled broker).
    #[arg(long)]
    bootstrap_servers: String,
    /// Input partitions.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Minutes of event time, ten tweets a second.
    #[arg(long, default_value_t = 10)]
    minutes: i64,
    /// Grace of the windows downstream, in ms (a large grace drops nothing, which isolates the
    /// cost of the processing order from the work saved by dropping late records).
    #[arg(long, default_value_t = 5_000)]
    grace_ms: i64,
    /// Repetitions (each on fresh topics).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Extra application properties, KEY=VALUE (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
}

const TAGS: [&str; 10] = [
    "rust",
    "kafka",
    "streaming",
    "tokio",
    "rocksdb",
    "async",
    "devops",
    "cloud",
    "bigdata",
    "realtime",
];

/// Runs the measurement and prints one line per run and a summary.
pub(crate) fn run(args: DisorderArgs) -> anyhow::Result<()> {
    println!(
        "disorder: {} min of event time, {} partitions, {} runs on {}",
        args.minutes, args.partitions, args.runs, args.bootstrap_servers
    );
    println!("run  records  tags   max-jump-ms  p99-jump-ms  beyond-grace  dropped  wall-s");
    for i in 0..args.runs {
        let r = once(&args, i)?;
        println!(
            "{i:<4} {:<8} {:<6} {:<12} {:<12} {:<13} {:<8} {:.2}",
            r.records, r.tags, r.max_jump, r.p99_jump, r.beyond_grace, r.dropped, r.wall_s
        );
    }
    Ok(())
}

struct Outcome {
    records: u64,
    tags: u64,
    max_jump: i64,
    p99_jump: i64,
    beyond_grace: u64,
    dropped: u64,
    wall_s: f64,
}

fn once(args: &DisorderArgs, run: usize) -> anyhow::Result<Outcome> {
    let bootstrap = &args.bootstrap_servers;
    let id = format!(
        "disorder-{}-{run}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ now_ms() as u128
    );
    let (input, output, app_id) = (format!("{id}-in"), format!("{id}-out"), id.clone());
    testing::create_topic(bootstrap, &input, args.partitions)?;
    testing::create_topic(bootstrap, &output, args.partitions)?;

    // Recent event times, so that no broker retention touches them.
    let start = now_ms() - args.minutes * 60_000 - 3_600_000;
    let mut x = 0x2545_f491_4f6c_dd1du64 ^ run as u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut records = Vec::new();
    let mut tags = 0u64;
    for i in 0..args.minutes * 600 {
        let mut text = String::new();
        for _ in 0..next() % 4 {
            text.push_str(TAGS[(next() % 10) as usize]);
            text.push(' ');
            tags += 1;
        }
        records.push((
            Some(format!("tweet-{i}").into_bytes()),
            Some(text.into_bytes()),
            Some(start + i * 100),
        ));
    }
    let n = records.len() as u64;
    testing::produce(bootstrap, &input, records)?;

    let b = StreamsBuilder::new();
    b.stream::<String, String>(&input)
        .flat_map_values(|text| {
            text.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .group_by_with(|_, tag| tag.clone(), Grouped::as_name("tags"))
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            Duration::from_millis(args.grace_ms as u64),
        ))
        .count()
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .to(&output);
    let dir = std::env::temp_dir().join(&id);
    let mut config =
        StreamsConfig::new(&app_id, bootstrap).set("state.dir", dir.to_str().context("path")?);
    for kv in &args.config {
        let (k, v) = kv.split_once('=').context("--config takes KEY=VALUE")?;
        config = config.set(k, v);
    }
    let mut app = KafkaStreams::new(b.build()?, config)?;
    let started = Instant::now();
    app.start()?;
    // Upstream processes every tweet, downstream every hashtag.
    let deadline = started + Duration::from_secs(300);
    while app.metrics().processed < n + tags {
        ensure!(Instant::now() < deadline, "not processed within 300 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall_s = started.elapsed().as_secs_f64();
    let dropped = app.metrics().dropped;
    app.close()?;
    let _ = std::fs::remove_dir_all(&dir);

    let repartition = format!("{app_id}-tags-repartition");
    let jumps = jumps_back(bootstrap, &repartition, tags)?;
    let mut sorted = jumps.clone();
    sorted.sort_unstable();
    let p99 = sorted
        .get((sorted.len() * 99 / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0);
    Ok(Outcome {
        records: n,
        tags,
        max_jump: sorted.last().copied().unwrap_or(0),
        p99_jump: p99,
        beyond_grace: jumps.iter().filter(|j| **j > args.grace_ms).count() as u64,
        dropped,
        wall_s,
    })
}

/// Each record's jump back in `topic` (largest earlier timestamp of its partition minus its
/// own, 0 when in order), reading `expected` records.
fn jumps_back(bootstrap: &str, topic: &str, expected: u64) -> anyhow::Result<Vec<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    let mut max_seen: BTreeMap<i32, i64> = BTreeMap::new();
    let mut jumps = Vec::with_capacity(expected as usize);
    let deadline = Instant::now() + Duration::from_secs(60);
    while (jumps.len() as u64) < expected {
        ensure!(
            Instant::now() < deadline,
            "read {} of {expected} records of `{topic}`",
            jumps.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m?;
            let ts = m.timestamp().to_millis().unwrap_or(-1);
            let max = max_seen.entry(m.partition()).or_insert(i64::MIN);
            jumps.push(max.saturating_sub(ts).max(0));
            *max = (*max).max(ts);
        }
    }
    Ok(jumps)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
