//! `streams-bench`: measures streams on a real broker, one workload per subcommand.
//!
//! - `wordcount --bootstrap-servers B --lines N`: produces N lines (8 words each, 10,000 distinct
//!   words) to a fresh 4-partition topic, then runs the WordCountDemo topology from the start of
//!   the input until every record of both sub-topologies is processed and committed. Reports
//!   wall seconds, CPU seconds (user + system) of this process while the application ran, peak
//!   resident memory, and lines per second.
//! - `restore --bootstrap-servers B --keys N`: builds an N-key count store (its changelog holds
//!   N records), deletes the local state, and measures restoring it on restart.
//!
//! Run it with a release build: `cargo run -p streams-bench --release -- wordcount ...`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::{Parser, Subcommand};
use streams::demos::wordcount;
use streams::{testing, KafkaStreams, State, StateRestoreListener, StreamsConfig};

#[derive(Parser)]
#[command(about = "Benchmarks of streams on a real broker")]
struct Args {
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand)]
enum Workload {
    /// Word count throughput.
    Wordcount {
        #[arg(long)]
        bootstrap_servers: String,
        #[arg(long, default_value_t = 1_000_000)]
        lines: u64,
        /// statestore.cache.max.bytes (Kafka Streams' default: 10485760).
        #[arg(long, default_value_t = 10_485_760)]
        cache_bytes: u64,
    },
    /// Restore rate of a store rebuilt from its changelog.
    Restore {
        #[arg(long)]
        bootstrap_servers: String,
        #[arg(long, default_value_t = 1_000_000)]
        keys: u64,
    },
}

/// User + system CPU seconds of this process, from /proc (no unsafe code needed).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the file, 12 and 13 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size of this process in MiB (VmHWM).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!("{prefix}-{nanos}")
}

fn words_line(i: u64, distinct: u64) -> String {
    (0..8)
        .map(|j| format!("w{}", (i.wrapping_mul(7919) + j * 104_729) % distinct))
        .collect::<Vec<_>>()
        .join(" ")
}

fn run_wordcount(bootstrap: &str, lines: u64, cache_bytes: u64) -> anyhow::Result<()> {
    let input = unique("bench-lines");
    let output = unique("bench-counts");
    testing::create_topic(bootstrap, &input, 4)?;
    testing::create_topic(bootstrap, &output, 4)?;
    let t0 = Instant::now();
    testing::produce(
        bootstrap,
        &input,
        (0..lines).map(|i| (None, Some(words_line(i, 10_000).into_bytes()), None)),
    )?;
    eprintln!(
        "produced {lines} lines in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let dir = std::env::temp_dir().join(unique("bench-state"));
    let config = StreamsConfig::new(unique("bench-wc"), bootstrap)
        .set("state.dir", dir.to_str().context("state dir")?)
        .set("statestore.cache.max.bytes", cache_bytes.to_string());
    let mut app = KafkaStreams::new(wordcount::topology(&input, &output)?, config)?;
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    app.start()?;
    // Both sub-topologies: every line, then every word through the repartition topic.
    let total = lines * 9;
    while app.metrics().processed < total {
        ensure!(
            app.state() != State::Error,
            "application failed: {:?}",
            app.error()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    app.close()?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let _ = std::fs::remove_dir_all(&dir);
    println!("workload  lines  records  wall_s  cpu_s  rss_mb  lines_per_s  lines_per_cpu_s");
    println!(
        "wordcount {lines} {total} {wall:.2} {cpu:.2} {:.0} {:.0} {:.0}",
        peak_rss_mb(),
        lines as f64 / wall,
        lines as f64 / cpu
    );
    Ok(())
}

#[derive(Default)]
struct Restored {
    total: Mutex<u64>,
}

impl StateRestoreListener for Restored {
    fn on_restore_end(&self, _: &str, _: i32, _: &str, total: u64) {
        *self.total.lock().unwrap() += total;
    }
}

fn run_restore(bootstrap: &str, keys: u64) -> anyhow::Result<()> {
    let input = unique("bench-keys");
    let output = unique("bench-key-counts");
    testing::create_topic(bootstrap, &input, 4)?;
    testing::create_topic(bootstrap, &output, 4)?;
    // One distinct word per line: the count store ends with `keys` keys.
    testing::produce(
        bootstrap,
        &input,
        (0..keys).map(|i| (None, Some(format!("k{i}").into_bytes()), None)),
    )?;
    let dir = std::env::temp_dir().join(unique("bench-state"));
    let app_id = unique("bench-restore");
    let config =
        || StreamsConfig::new(&app_id, bootstrap).set("state.dir", dir.to_str().unwrap_or("."));
    let mut app = KafkaStreams::new(wordcount::topology(&input, &output)?, config())?;
    app.start()?;
    while app.metrics().processed < keys * 2 {
        ensure!(
            app.state() != State::Error,
            "application failed: {:?}",
            app.error()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    app.close()?;
    app.cleanup()?;
    let changelog = format!("{app_id}-{}-changelog", wordcount::STORE);
    let records = testing::record_count(bootstrap, &changelog)?;

    let listener = Arc::new(Restored::default());
    let mut app = KafkaStreams::new(wordcount::topology(&input, &output)?, config())?;
    app.set_restore_listener(listener.clone());
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    app.start()?;
    ensure!(
        app.wait_for_state(State::Running, Duration::from_secs(600)),
        "did not restore: {:?}",
        app.error()
    );
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let restored = *listener.total.lock().unwrap();
    app.close()?;
    app.cleanup()?;
    ensure!(
        restored as i64 == records,
        "restored {restored} of {records} changelog records"
    );
    println!("workload  keys  changelog_records  restored  wall_s  cpu_s  records_per_s");
    println!(
        "restore {keys} {records} {restored} {wall:.2} {cpu:.2} {:.0}",
        restored as f64 / wall
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Args::parse().workload {
        Workload::Wordcount {
            bootstrap_servers,
            lines,
            cache_bytes,
        } => run_wordcount(&bootstrap_servers, lines, cache_bytes),
        Workload::Restore {
            bootstrap_servers,
            keys,
        } => run_restore(&bootstrap_servers, keys),
    }
}
