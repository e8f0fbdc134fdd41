//! Side-by-side benchmark of the bundled broker and a real Apache Kafka on this machine.
//!
//! ```text
//! cargo bench -p streams-broker --bench broker_vs_kafka [-- --mb 256 --runs 5 --no-kafka]
//! ```
//!
//! A benchmark, not a timed test: it asserts nothing about speed and is not part of CI (under
//! `cargo test --all-targets` it exits at once). In one run it measures, for each broker:
//! - start-up time, from process start to the first accepted TCP connection;
//! - produce and consume throughput with the rdkafka (librdkafka) producer and consumer, for
//!   100-byte and 1 KiB records, acks=all, on a one- and a four-partition topic (`--mb` MiB of
//!   payload per scenario, the median of `--runs` runs, each on a fresh topic);
//! - the broker's resident memory (VmRSS) after the load, and its CPU time.
//!
//! Brokers: the release `streams-broker` binary with the default flush policy (`acks-all`:
//! fsync before every acks=all answer) and with `--flush never` (Kafka's own default: no fsync,
//! durability from replication), and Apache Kafka 4.3.1 started by `scripts/kafka-testbed`
//! (KRaft, one node, JVM heap `-Xms512m -Xmx1g` unless KAFKA_TESTBED_HEAP says otherwise).
//! Client and broker share the machine. Results go to stdout as a markdown table.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RECORD_SIZES: [usize; 2] = [100, 1024];
const PARTITIONS: [i32; 2] = [1, 4];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // cargo bench passes --bench; cargo test --all-targets runs bench binaries without it.
    if !args.iter().any(|a| a == "--bench") {
        println!("broker_vs_kafka: a benchmark; run it with `cargo bench -p streams-broker --bench broker_vs_kafka`");
        return;
    }
    let mb: usize = arg_value(&args, "--mb").map_or(256, |v| v.parse().expect("--mb N"));
    let runs: usize = arg_value(&args, "--runs").map_or(5, |v| v.parse().expect("--runs N"));
    assert!(runs > 0, "--runs must be at least 1");
    let with_kafka = !args.iter().any(|a| a == "--no-kafka");
    let payload_bytes = mb * 1024 * 1024;

    let mut columns = vec![
        run_target(Target::Bundled { flush: "acks-all" }, payload_bytes, runs),
        run_target(Target::Bundled { flush: "never" }, payload_bytes, runs),
    ];
    if with_kafka {
        columns.push(run_target(Target::Kafka, payload_bytes, runs));
    }
    print_table(&columns, mb, runs);
}

fn arg_value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Bundled { flush: &'static str },
    Kafka,
}

impl Target {
    fn label(self) -> String {
        match self {
            Target::Bundled { flush } => format!("streams-broker (--flush {flush})"),
            Target::Kafka => "Apache Kafka 4.3.1 (test bed)".to_string(),
        }
    }
}

/// A broker started for the benchmark; stopping it is `stop`'s job.
struct Running {
    bootstrap: String,
    pid: u32,
    startup: Duration,
    stop: Box<dyn FnOnce()>,
}

struct Column {
    label: String,
    startup: Duration,
    /// (record size, partitions, produce, consume)
    rows: Vec<(usize, i32, Throughput, Throughput)>,
    rss_kib: u64,
    cpu: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Throughput {
    records: usize,
    bytes: usize,
    elapsed: Duration,
}

impl Throughput {
    fn cell(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        format!(
            "{:.0}k rec/s, {:.1} MB/s",
            self.records as f64 / secs / 1000.0,
            self.bytes as f64 / secs / 1_000_000.0
        )
    }
}

/// The run with the median time.
fn median(mut runs: Vec<Throughput>) -> Throughput {
    runs.sort_by_key(|t| t.elapsed);
    runs[runs.len() / 2]
}

fn run_target(target: Target, payload_bytes: usize, runs: usize) -> Column {
    eprintln!("== {}", target.label());
    let running = match target {
        Target::Bundled { flush } => start_bundled(flush),
        Target::Kafka => start_kafka(),
    };
    eprintln!(
        "   up at {} after {:?} (pid {})",
        running.bootstrap, running.startup, running.pid
    );
    let cpu_before = cpu_time(running.pid);
    // Warm-up (not reported): topic creation paths, connections, and the JVM's JIT.
    let warm = format!("bench-warmup-{}", std::process::id());
    create_topic(&running.bootstrap, &warm, 4);
    produce(&running.bootstrap, &warm, 4, 1024, 20_000);
    consume(&running.bootstrap, &warm, 4, 20_000);

    let mut rows = Vec::new();
    for &size in &RECORD_SIZES {
        for &partitions in &PARTITIONS {
            let records = payload_bytes / size;
            let (mut produced, mut consumed) = (Vec::new(), Vec::new());
            for run in 0..runs {
                let topic = format!("bench-{size}b-{partitions}p-{run}-{}", std::process::id());
                create_topic(&running.bootstrap, &topic, partitions);
                let p = produce(&running.bootstrap, &topic, partitions, size, records);
                let c = consume(&running.bootstrap, &topic, partitions, records);
                eprintln!(
                    "   {size:>5} B x {partitions} partition(s), run {}: produce {}, consume {}",
                    run + 1,
                    p.cell(),
                    c.cell()
                );
                produced.push(p);
                consumed.push(c);
            }
            rows.push((size, partitions, median(produced), median(consumed)));
        }
    }
    let rss_kib = rss_kib(running.pid);
    let cpu = cpu_time(running.pid).saturating_sub(cpu_before);
    let column = Column {
        label: target.label(),
        startup: running.startup,
        rows,
        rss_kib,
        cpu,
    };
    (running.stop)();
    column
}

// ---------------------------------------------------------------------------------------
// Starting and stopping brokers

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Polls until a TCP connection to `port` is accepted.
fn wait_connectable(port: u16, timeout: Duration) -> Instant {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on {port} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn start_bundled(flush: &'static str) -> Running {
    let data = tempfile::Builder::new()
        .prefix("streams-broker-bench-")
        .tempdir()
        .expect("temp dir");
    let port = free_port();
    let started = Instant::now();
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_streams-broker"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--flush", flush])
        .arg("--data-dir")
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn streams-broker");
    let up = wait_connectable(port, Duration::from_secs(30));
    let pid = child.id();
    Running {
        bootstrap: format!("127.0.0.1:{port}"),
        pid,
        startup: up - started,
        stop: Box::new(move || {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let _ = child.wait();
            drop(data);
        }),
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Starts Kafka with `scripts/kafka-testbed start` in a private state directory. The JVM's
/// start-up is measured from the kafka.Kafka process's start time (/proc/PID/stat, 10 ms
/// resolution) to the first accepted connection, so the script's own work (Maven classpath,
/// storage formatting) is not counted.
fn start_kafka() -> Running {
    let state = tempfile::Builder::new()
        .prefix("streams-bench-testbed-")
        .tempdir()
        .expect("temp dir");
    let script = repo_root().join("scripts/kafka-testbed");
    let mut start = Command::new(&script)
        .arg("start")
        .env("KAFKA_TESTBED_STATE", state.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run scripts/kafka-testbed start");
    // The state file appears right after the JVM is launched.
    let state_file = state.path().join("state");
    let deadline = Instant::now() + Duration::from_secs(600);
    let (pid, port) = loop {
        if let Ok(text) = std::fs::read_to_string(&state_file) {
            let get = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{key}=")))
                    .and_then(|v| v.parse::<u32>().ok())
            };
            if let (Some(pid), Some(port)) = (get("pid"), get("port")) {
                break (pid, port as u16);
            }
        }
        assert!(Instant::now() < deadline, "kafka-testbed wrote no state");
        std::thread::sleep(Duration::from_millis(5));
    };
    wait_connectable(port, Duration::from_secs(120));
    let startup = process_age(pid);
    let status = start.wait().expect("kafka-testbed start");
    assert!(status.success(), "scripts/kafka-testbed start failed");
    Running {
        bootstrap: format!("127.0.0.1:{port}"),
        pid,
        startup,
        stop: Box::new(move || {
            let _ = Command::new(&script)
                .arg("stop")
                .env("KAFKA_TESTBED_STATE", state.path())
                .status();
            drop(state);
        }),
    }
}

// ---------------------------------------------------------------------------------------
// /proc

fn proc_stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The command name may contain spaces: fields start after the closing parenthesis.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    // rest starts with field 3 (state)
    rest.split_whitespace().map(str::to_string).collect()
}

/// Clock ticks per second of /proc times; 100 on every Linux this runs on.
const CLK_TCK: f64 = 100.0;

fn cpu_time(pid: u32) -> Duration {
    let f = proc_stat_fields(pid);
    // utime and stime are fields 14 and 15 (index 11 and 12 after the state field)
    let ticks: u64 = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / CLK_TCK)
}

/// How long ago the process started.
fn process_age(pid: u32) -> Duration {
    let f = proc_stat_fields(pid);
    let start_ticks: f64 = f[19].parse().expect("starttime"); // field 22
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .expect("read /proc/uptime")
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("uptime");
    Duration::from_secs_f64((uptime - start_ticks / CLK_TCK).max(0.0))
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("read /proc/PID/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Load

fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = rt
        .block_on(admin.create_topics([&new], &AdminOptions::new()))
        .expect("create_topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
}

/// Counts delivery reports, so the producer knows when everything is acknowledged.
struct Deliveries {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                eprintln!("   delivery failed: {e}");
                self.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// Produces `records` records of `size` bytes round-robin over the partitions, acks=all, and
/// waits for every acknowledgement.
fn produce(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    size: usize,
    records: usize,
) -> Throughput {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let producer: BaseProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("queue.buffering.max.kbytes", "262144")
        .create_with_context(Deliveries {
            ok: ok.clone(),
            failed: failed.clone(),
        })
        .expect("producer");
    // Connections and metadata before the clock starts.
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let payload: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let started = Instant::now();
    for i in 0..records {
        let partition = (i % partitions as usize) as i32;
        let mut record = BaseRecord::<(), [u8]>::to(topic)
            .payload(&payload)
            .partition(partition);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
    }
    while ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < records as u64 {
        producer.poll(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed deliveries");
    let _ = producer.flush(Duration::from_secs(10));
    Throughput {
        records,
        bytes: records * size,
        elapsed,
    }
}

/// Reads `records` records from the start of every partition (assigned, no group).
fn consume(bootstrap: &str, topic: &str, partitions: i32, records: usize) -> Throughput {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-no-commit")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        // As rdkafka_performance does: with the default (100000) a fast broker fills the local
        // queue with small records and librdkafka then pauses fetching for
        // fetch.queue.backoff.ms (1 s), which measures the client's back-off, not the broker.
        .set("queued.min.messages", "1000000")
        .create()
        .expect("consumer");
    consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    let started = Instant::now();
    consumer.assign(&tpl).expect("assign");
    let (mut n, mut bytes) = (0usize, 0usize);
    let deadline = started + Duration::from_secs(300);
    while n < records {
        assert!(Instant::now() < deadline, "consumed only {n} of {records}");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                n += 1;
                bytes += m.payload().map_or(0, <[u8]>::len);
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    Throughput {
        records: n,
        bytes,
        elapsed: started.elapsed(),
    }
}

// ---------------------------------------------------------------------------------------

fn print_table(columns: &[Column], mb: usize, runs: usize) {
    println!();
    println!(
        "Payload per scenario: {mb} MiB, median of {runs} runs; rdkafka {} producer and consumer, \
         acks=all, no compression, linger.ms=5, consumer queued.min.messages=1000000.",
        rdkafka::util::get_rdkafka_version().1
    );
    println!();
    print!("| |");
    for c in columns {
        print!(" {} |", c.label);
    }
    println!();
    print!("|---|");
    for _ in columns {
        print!("---|");
    }
    println!();
    print!("| start-up to first accepted connection |");
    for c in columns {
        print!(" {} |", fmt_duration(c.startup));
    }
    println!();
    let rows = columns[0].rows.len();
    for i in 0..rows {
        let (size, partitions, _, _) = columns[0].rows[i];
        for (what, pick) in [("produce", 0), ("consume", 1)] {
            print!(
                "| {what} {size} B records, {partitions} partition{} |",
                if partitions == 1 { "" } else { "s" }
            );
            for c in columns {
                let (_, _, p, q) = c.rows[i];
                print!(" {} |", if pick == 0 { p.cell() } else { q.cell() });
            }
            println!();
        }
    }
    print!("| broker RSS after the load |");
    for c in columns {
        print!(" {:.0} MiB |", c.rss_kib as f64 / 1024.0);
    }
    println!();
    print!("| broker CPU time (warm-up and load) |");
    for c in columns {
        print!(" {:.1} s |", c.cpu.as_secs_f64());
    }
    println!();
}

fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.0} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}
