//! Shared set-up of the end-to-end tests: the two brokers, unique names, the word count app.
#![allow(dead_code, unreachable_pub)]

// The examples' own topologies, so that the tests drive exactly what the examples run.
#[path = "../../examples/tweets/topology.rs"]
pub mod tweets;
#[path = "../../examples/wordcount/topology.rs"]
pub mod wordcount;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streams::{KafkaStreams, Serdes, State, StateRestoreListener, StreamsConfig};
use streams_testkit as testing;

/// The Apache Kafka test bed started by `scripts/test`. A missing variable fails the test: in
/// CI a missing cluster must fail the run, never skip it.
pub fn kafka_bootstrap() -> String {
    std::env::var("STREAMS_TEST_BOOTSTRAP_SERVERS")
        .expect("STREAMS_TEST_BOOTSTRAP_SERVERS must name the Apache Kafka test bed; run the tests with scripts/test")
}

/// The Apache Kafka test bed's SASL_PLAINTEXT listener (PLAIN; user `streams`, password
/// `streams-secret`), started by `scripts/test`. A missing variable fails the test.
pub fn kafka_sasl_bootstrap() -> String {
    std::env::var("STREAMS_TEST_SASL_BOOTSTRAP_SERVERS")
        .expect("STREAMS_TEST_SASL_BOOTSTRAP_SERVERS must name the test bed's SASL_PLAINTEXT listener; run the tests with scripts/test")
}

/// The Apache Kafka test bed's SASL_SSL listener and its throwaway CA file, started by
/// `scripts/test`. A missing variable fails the test.
pub fn kafka_sasl_ssl() -> (String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} must be set by scripts/test from the test bed's SASL_SSL listener")
        })
    };
    (
        var("STREAMS_TEST_SASL_SSL_BOOTSTRAP_SERVERS"),
        var("STREAMS_TEST_SSL_CA_LOCATION"),
    )
}

/// The Apache Kafka test bed's SSL listener that requires a client certificate, its CA, and a
/// client certificate and key it accepts (PEM files), started by `scripts/test`. A missing
/// variable fails the test.
pub fn kafka_mtls() -> (String, String, String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} must be set by scripts/test from the test bed's SSL listener")
        })
    };
    (
        var("STREAMS_TEST_MTLS_BOOTSTRAP_SERVERS"),
        var("STREAMS_TEST_SSL_CA_LOCATION"),
        var("STREAMS_TEST_SSL_CERTIFICATE_LOCATION"),
        var("STREAMS_TEST_SSL_KEY_LOCATION"),
    )
}

/// The bundled broker, in-process, on its own runtime for the test's lifetime.
pub struct Bundled {
    rt: tokio::runtime::Runtime,
    handle: Option<streams_broker::BrokerHandle>,
}

impl Bundled {
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let handle = rt
            .block_on(streams_broker::Broker::start(Default::default()))
            .expect("bundled broker starts");
        Bundled {
            rt,
            handle: Some(handle),
        }
    }

    pub fn bootstrap(&self) -> String {
        self.handle.as_ref().expect("running").bootstrap_servers()
    }
}

impl Drop for Bundled {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = self.rt.block_on(h.shutdown());
        }
    }
}

/// Sends the library's log lines (level from `RUST_LOG`, default info for this project's crates)
/// to the test's captured output, so that a failing test shows what the application did.
pub fn capture_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,streams_core=info,streams_dsl=info,streams=info")
    });
    // One subscriber for the process; the test writer prints through the test harness's
    // capture, which threads spawned by a test (the stream threads) inherit from it.
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_ansi(false)
        .finish();
    // The first test of the process sets it; the others find it set.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Runs `$name(bootstrap)` once on Apache Kafka and once on the bundled broker.
#[macro_export]
macro_rules! on_both_brokers {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn apache_kafka() {
                    $crate::common::capture_logs();
                    super::$name(&$crate::common::kafka_bootstrap());
                }
                #[test]
                fn bundled_broker() {
                    $crate::common::capture_logs();
                    let broker = $crate::common::Bundled::start();
                    super::$name(&broker.bootstrap());
                }
            }
        )*
    };
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000;
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn lines(seed: u64, n: usize) -> Vec<String> {
    const WORDS: &[&str] = &[
        "kafka",
        "streams",
        "rust",
        "state",
        "store",
        "changelog",
        "task",
        "partition",
        "offset",
        "commit",
        "window",
        "join",
        "table",
        "stream",
        "record",
        "topic",
        "broker",
        "group",
        "rebalance",
        "restore",
    ];
    let mut x = seed.max(1);
    (0..n)
        .map(|_| {
            let mut words = Vec::new();
            for _ in 0..6 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                words.push(WORDS[(x % WORDS.len() as u64) as usize]);
            }
            words.join(" ")
        })
        .collect()
}

pub fn expected_counts<'a>(lines: impl IntoIterator<Item = &'a String>) -> HashMap<String, i64> {
    let mut m = HashMap::new();
    for l in lines {
        for w in wordcount::split_words(l) {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

/// Produces `lines`, the i-th with timestamp `timestamps(i)` (milliseconds).
pub fn produce_lines_at(
    bootstrap: &str,
    topic: &str,
    lines: &[String],
    timestamps: impl Fn(usize) -> i64,
) {
    testing::produce(
        bootstrap,
        topic,
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| (None, Some(l.as_bytes().to_vec()), Some(timestamps(i)))),
    )
    .expect("produce lines");
}

/// What the letter sums should end as: per window key (`wordcount::letter_window_key`), the
/// number of words (one update each) and their summed lengths.
pub fn expected_letter_sums<'a>(
    lines: impl IntoIterator<Item = (&'a String, i64)>,
) -> HashMap<String, (usize, i64)> {
    let window = wordcount::LETTER_WINDOW.as_millis() as i64;
    let mut m: HashMap<String, (usize, i64)> = HashMap::new();
    for (line, ts) in lines {
        for w in wordcount::split_words(line) {
            if w.is_empty() {
                continue;
            }
            let key = wordcount::letter_window_key(&w[..1], ts - ts.rem_euclid(window));
            let e = m.entry(key).or_default();
            e.0 += 1;
            e.1 += w.len() as i64;
        }
    }
    m
}

/// Input that keeps flowing while a test kills things: batches of 200 lines, produced one a
/// second. Event time: batch b's lines are 10 ms apart from `base + 2 s * b`, so the letter sums
/// fill 10-second windows, each from several batches.
pub struct FlowingInput {
    pub batches: Vec<Vec<String>>,
    base: i64,
}

impl FlowingInput {
    pub fn new(first_seed: u64, batches: u64) -> Self {
        let base = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        FlowingInput {
            batches: (0..batches).map(|i| lines(first_seed + i, 200)).collect(),
            base,
        }
    }

    fn timestamp(base: i64, batch: usize, line: usize) -> i64 {
        base + 2_000 * batch as i64 + 10 * line as i64
    }

    pub fn expected_counts(&self) -> HashMap<String, i64> {
        expected_counts(self.batches.iter().flatten())
    }

    pub fn expected_sums(&self) -> HashMap<String, (usize, i64)> {
        let base = self.base;
        expected_letter_sums(self.batches.iter().enumerate().flat_map(|(b, lines)| {
            lines
                .iter()
                .enumerate()
                .map(move |(i, l)| (l, Self::timestamp(base, b, i)))
        }))
    }

    /// Produces the batches to `topic`, one a second, on a thread of its own.
    pub fn produce(&self, bootstrap: &str, topic: &str) -> std::thread::JoinHandle<()> {
        let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
        let (batches, base) = (self.batches.clone(), self.base);
        std::thread::spawn(move || {
            for (b, lines) in batches.iter().enumerate() {
                produce_lines_at(&bootstrap, &topic, lines, |i| Self::timestamp(base, b, i));
                std::thread::sleep(Duration::from_millis(1_000));
            }
        })
    }
}

/// Reads `wc`'s counts and letter sums `read_committed` until they reach `input`'s totals
/// (within `timeout` each), and asserts that every update came exactly once.
pub fn assert_output_exactly_once(wc: &WordCount, input: &FlowingInput, timeout: Duration) {
    let expected = input.expected_counts();
    let updates = read_committed_updates(&wc.bootstrap, &wc.output, timeout, |u| {
        expected
            .iter()
            .all(|(w, n)| u.get(w).and_then(|v| v.last()).is_some_and(|l| l >= n))
    });
    assert_each_update_once(&updates, &expected);
    let expected = input.expected_sums();
    let sums = wc
        .letter_sums
        .as_deref()
        .expect("a word count with letter sums");
    let updates = read_committed_updates(&wc.bootstrap, sums, timeout, |u| {
        expected
            .iter()
            .all(|(k, (_, s))| u.get(k).and_then(|v| v.last()).is_some_and(|l| l >= s))
    });
    assert_each_sum_update_once(&updates, &expected);
}

/// Exactly-once for the letter sums: each window's committed updates are one per word, each
/// larger than the one before (no word added twice), ending at the expected sum.
pub fn assert_each_sum_update_once(
    updates: &HashMap<String, Vec<i64>>,
    expected: &HashMap<String, (usize, i64)>,
) {
    assert_eq!(updates.len(), expected.len(), "the letter windows summed");
    for (k, (n, sum)) in expected {
        let got = &updates[k];
        assert!(
            got.len() == *n && got.windows(2).all(|p| p[0] < p[1]) && got.last() == Some(sum),
            "the committed updates of `{k}` should be {n} rising sums ending at {sum}: {got:?}"
        );
    }
}

pub fn produce_lines(bootstrap: &str, topic: &str, lines: &[String]) {
    testing::produce(
        bootstrap,
        topic,
        lines
            .iter()
            .map(|l| (None, Some(l.as_bytes().to_vec()), None)),
    )
    .expect("produce lines");
}

/// Reads the output table until it equals `expected` (or 90 s pass) and returns it.
pub fn read_counts(
    bootstrap: &str,
    topic: &str,
    expected: &HashMap<String, i64>,
) -> HashMap<String, i64> {
    testing::read_table(
        bootstrap,
        topic,
        Serdes::string(),
        Serdes::nullable(Serdes::i64()),
        Duration::from_secs(90),
        |t| t == expected,
    )
    .expect("read output")
}

/// Names of one word count deployment.
#[derive(Clone)]
pub struct WordCount {
    pub bootstrap: String,
    pub app_id: String,
    pub input: String,
    pub output: String,
    /// The letter sums' topic, when the deployment has them (see [`Self::with_letter_sums`]).
    pub letter_sums: Option<String>,
}

impl WordCount {
    pub fn new(bootstrap: &str, partitions: i32) -> Self {
        let wc = WordCount {
            bootstrap: bootstrap.to_string(),
            app_id: unique("wc"),
            input: unique("lines"),
            output: unique("counts"),
            letter_sums: None,
        };
        testing::create_topic(bootstrap, &wc.input, partitions).expect("create input");
        testing::create_topic(bootstrap, &wc.output, partitions).expect("create output");
        wc
    }

    /// A word count that also sums word lengths per first letter and window of event time
    /// (`wordcount::topology_with_letter_sums`), into a topic of its own.
    pub fn with_letter_sums(bootstrap: &str, partitions: i32) -> Self {
        let mut wc = Self::new(bootstrap, partitions);
        let sums = unique("letter-sums");
        testing::create_topic(bootstrap, &sums, partitions).expect("create letter sums");
        wc.letter_sums = Some(sums);
        wc
    }

    pub fn repartition(&self) -> String {
        format!("{}-{}-repartition", self.app_id, wordcount::STORE)
    }

    pub fn changelog(&self) -> String {
        format!("{}-{}-changelog", self.app_id, wordcount::STORE)
    }

    pub fn config(&self, state_dir: &std::path::Path) -> StreamsConfig {
        StreamsConfig::new(&self.app_id, &self.bootstrap)
            .set("state.dir", state_dir.to_str().unwrap())
            .set("commit.interval.ms", "200")
            .set("statestore.cache.max.bytes", "0")
            .set("consumer.session.timeout.ms", "10000")
            .set("consumer.heartbeat.interval.ms", "500")
            .set("repartition.purge.interval.ms", "300")
    }

    pub fn start(&self, state_dir: &std::path::Path) -> (KafkaStreams, Arc<RestoreCounter>) {
        self.start_with(state_dir, &[])
    }

    /// Starts an instance with `extra` properties on top of [`Self::config`].
    pub fn start_with(
        &self,
        state_dir: &std::path::Path,
        extra: &[(&str, &str)],
    ) -> (KafkaStreams, Arc<RestoreCounter>) {
        let topology = wordcount::topology_with_letter_sums(
            &self.input,
            &self.output,
            self.letter_sums.as_deref(),
        )
        .expect("topology");
        let mut config = self.config(state_dir);
        for (k, v) in extra {
            config = config.set(*k, *v);
        }
        let mut app = KafkaStreams::new(topology, config).expect("app");
        let counter = Arc::new(RestoreCounter::default());
        app.set_restore_listener(counter.clone());
        app.start().expect("start");
        (app, counter)
    }
}

/// Counts restored records per store, from the restore listener.
#[derive(Default)]
pub struct RestoreCounter {
    pub total: Mutex<u64>,
    pub ends: Mutex<u64>,
}

impl StateRestoreListener for RestoreCounter {
    fn on_restore_end(&self, _topic: &str, _partition: i32, _store: &str, total_restored: u64) {
        *self.total.lock().unwrap() += total_restored;
        *self.ends.lock().unwrap() += 1;
    }
}

impl RestoreCounter {
    pub fn total(&self) -> u64 {
        *self.total.lock().unwrap()
    }
}

pub fn wait_running(app: &KafkaStreams) {
    assert!(
        app.wait_for_state(State::Running, Duration::from_secs(90)),
        "application did not reach Running: state {:?}, error {:?}",
        app.state(),
        app.error()
    );
}

/// Waits until `f` holds, polling, or panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Like [`wait_until`], for a condition that says what it saw when it does not hold: the last
/// of those is in the failure message.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        let Err(saw) = f() else { return };
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last saw: {saw}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A binary of this build's target directory: `parts` joined to `target/<profile>` (this test
/// runs as `target/<profile>/deps/<test>-<hash>`).
pub fn target_binary(parts: &[&str]) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let mut bin = exe.parent().unwrap().parent().unwrap().to_path_buf();
    bin.extend(parts);
    bin
}

/// The `wordcount` example as a child process of `wc`'s application under exactly-once, with a
/// 6 s session (a killed instance's tasks move soon), logging at `rust_log` to `log`.
pub fn spawn_wordcount_eos(
    wc: &WordCount,
    state_dir: &std::path::Path,
    rust_log: &str,
    log: std::fs::File,
) -> std::process::Child {
    let mut command = std::process::Command::new(example_binary());
    if let Some(sums) = &wc.letter_sums {
        command.args(["--letter-sums-topic", sums]);
    }
    command
        .args(["--bootstrap-servers", &wc.bootstrap])
        .args(["--application-id", &wc.app_id])
        .args(["--input-topic", &wc.input, "--output-topic", &wc.output])
        .args(["--state-dir", state_dir.to_str().unwrap()])
        .args(["--config", "processing.guarantee=exactly_once_v2"])
        .args(["--config", "consumer.session.timeout.ms=6000"])
        .args(["--config", "consumer.heartbeat.interval.ms=500"])
        .env("RUST_LOG", rust_log)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the wordcount example")
}

/// The `wordcount` example binary (`cargo build --examples`, which scripts/test runs first),
/// refused when any source file is newer than it: a stale binary would test old code.
pub fn example_binary() -> std::path::PathBuf {
    example("wordcount")
}

/// The binary of example `name`, refused when stale (see [`example_binary`]).
pub fn example(name: &str) -> std::path::PathBuf {
    let bin = target_binary(&["examples", name]);
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run `cargo build --examples` first (scripts/test does)",
                bin.display()
            )
        });
    assert_newer_than_sources(
        &bin,
        built,
        &[
            "src",
            "examples",
            "streams-core/src",
            "streams-dsl/src",
            "state-store/src",
        ],
        "cargo build --examples",
    );
    bin
}

/// Every update of the word count's output as a `read_committed` consumer sees it: per word, the
/// counts in the order written. Reads until `done` holds, or fails after `timeout`.
pub fn read_committed_updates(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
    done: impl Fn(&HashMap<String, Vec<i64>>) -> bool,
) -> HashMap<String, Vec<i64>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique("committed-reader"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .expect("reader");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + timeout;
    let mut updates: HashMap<String, Vec<i64>> = HashMap::new();
    while !done(&updates) {
        assert!(
            Instant::now() < deadline,
            "timed out reading {topic} (read_committed); {} words so far",
            updates.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            // A broker that went away (the tests kill some) is an error event the consumer
            // recovers from; the deadline above catches one that does not.
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("reading {topic} (read_committed): {e}");
                    continue;
                }
            };
            let word = String::from_utf8(m.key().unwrap_or_default().to_vec()).unwrap();
            let count = m
                .payload()
                .map(|v| i64::from_be_bytes(v.try_into().expect("an 8-byte count")))
                .expect("a count");
            updates.entry(word).or_default().push(count);
        }
    }
    updates
}

/// Exactly-once: each word's committed updates are 1, 2, ... up to its expected count, with no
/// update twice and none missing.
pub fn assert_each_update_once(
    updates: &HashMap<String, Vec<i64>>,
    expected: &HashMap<String, i64>,
) {
    assert_eq!(updates.len(), expected.len(), "the words counted");
    for (w, n) in expected {
        let want: Vec<i64> = (1..=*n).collect();
        assert_eq!(updates[w], want, "the committed updates of `{w}`");
    }
}

/// Fails unless `bin` (modified at `built`) is newer than every `.rs` file under `dirs` of the
/// workspace: a stale binary would test old code. `fix` says how to rebuild it.
pub fn assert_newer_than_sources(
    bin: &std::path::Path,
    built: std::time::SystemTime,
    dirs: &[&str],
    fix: &str,
) {
    fn newest(dir: &std::path::Path, newest_seen: &mut std::time::SystemTime) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                newest(&p, newest_seen);
            } else if p.extension().is_some_and(|x| x == "rs") {
                if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                    *newest_seen = (*newest_seen).max(t);
                }
            }
        }
    }
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut source = std::time::UNIX_EPOCH;
    for dir in dirs {
        newest(&root.join(dir), &mut source);
    }
    assert!(
        built >= source,
        "{} is older than the sources: run `{fix}` first (scripts/test does)",
        bin.display()
    );
}

/// A port free on the loopback interface now (for an instance's `http.listen`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// GET `url`: the status and the JSON body (`Null` when the body is not JSON, as when nothing
/// answers). Connection errors come back as status 0.
pub fn http_get(url: &str) -> (u16, serde_json::Value) {
    static CLIENT: std::sync::OnceLock<reqwest::blocking::Client> = std::sync::OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("HTTP client")
    });
    match client.get(url).send() {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().unwrap_or(serde_json::Value::Null))
        }
        Err(_) => (0, serde_json::Value::Null),
    }
}
