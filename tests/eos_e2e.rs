//! `processing.guarantee=exactly_once_v2` on both brokers: the word count's output, read
//! `read_committed`, holds every count update exactly once, with the instance running through,
//! with it killed (kill -9) and restarted while input flows, and with the bundled broker itself
//! killed and restarted.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

on_both_brokers!(
    every_count_update_is_committed_exactly_once,
    kill_minus_9_and_restart_while_input_flows_keeps_every_update_exactly_once,
    a_fenced_producer_is_replaced_and_every_update_stays_exactly_once,
);

const EOS: (&str, &str) = ("processing.guarantee", "exactly_once_v2");

/// Two instances under exactly-once (a repartition between them, so the counting tasks read
/// transactional input): each word's updates are 1, 2, ... N, once each.
fn every_count_update_is_committed_exactly_once(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 2);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, _) = wc.start_with(d1.path(), &[EOS]);
    let (mut b, _) = wc.start_with(d2.path(), &[EOS]);
    let input = lines(71, 2_000);
    produce_lines(bootstrap, &wc.input, &input);
    let expected = expected_counts(&input);
    let updates = read_committed_updates(bootstrap, &wc.output, Duration::from_secs(120), |u| {
        expected
            .iter()
            .all(|(w, n)| u.get(w).and_then(|v| v.last()).is_some_and(|l| l >= n))
    });
    assert_each_update_once(&updates, &expected);
    a.close().unwrap();
    b.close().unwrap();
}

/// Fencing: a producer starts with the stream thread's transactional id (as the thread of a
/// newer instance with this process id would). The instance does not stop: its thread finds
/// its producer fenced at the next transaction, closes its tasks without committing, starts a
/// new producer (fencing the intruder in turn) and rejoins; each word's committed updates are
/// still 1, 2, ... N, input after the fencing included.
fn a_fenced_producer_is_replaced_and_every_update_stays_exactly_once(bootstrap: &str) {
    use rdkafka::producer::{BaseProducer, Producer};
    let wc = WordCount::new(bootstrap, 2);
    let dir = tempfile::tempdir().unwrap();
    let (mut app, _) = wc.start_with(dir.path(), &[EOS]);
    let first = lines(93, 500);
    produce_lines(bootstrap, &wc.input, &first);
    let expected = expected_counts(&first);
    read_committed_updates(bootstrap, &wc.output, Duration::from_secs(120), |u| {
        expected
            .iter()
            .all(|(w, n)| u.get(w).and_then(|v| v.last()).is_some_and(|l| l >= n))
    });
    let process = std::fs::read_to_string(
        dir.path()
            .join(&wc.app_id)
            .join("kafka-streams-process-metadata"),
    )
    .expect("the process id in the state directory");
    let transactional_id = format!("{}-{}-1", wc.app_id, process.trim());
    let intruder: BaseProducer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", &transactional_id)
        .create()
        .expect("intruder");
    intruder
        .init_transactions(Duration::from_secs(30))
        .expect("the intruder fences the stream thread's producer");
    let second = lines(94, 500);
    produce_lines(bootstrap, &wc.input, &second);
    let expected = expected_counts(first.iter().chain(&second));
    let updates = read_committed_updates(bootstrap, &wc.output, Duration::from_secs(120), |u| {
        expected
            .iter()
            .all(|(w, n)| u.get(w).and_then(|v| v.last()).is_some_and(|l| l >= n))
    });
    assert_each_update_once(&updates, &expected);
    assert_eq!(app.state(), streams::State::Running, "the instance runs on");
    app.close().unwrap();
}

fn spawn(wc: &WordCount, state_dir: &std::path::Path) -> Child {
    spawn_wordcount_eos(wc, state_dir, "warn", log_file(state_dir))
}

/// Where an instance's log goes: appended to `instance.log` in its state directory, so
/// that a failure can show it.
fn log_file(state_dir: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state_dir.join("instance.log"))
        .unwrap()
}

/// The last lines an instance logged.
fn log_tail(state_dir: &std::path::Path) -> String {
    let log = std::fs::read_to_string(state_dir.join("instance.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Two instances of the `wordcount` example under exactly-once, with its letter sums (a
/// windowed sum behind a second repartition); one of them is killed with SIGKILL five times
/// while a producer keeps writing, and restarted on the same state directory each time.
/// Whatever it had processed but not committed is aborted (or times out) and processed again,
/// by it or by the other instance, from state as of the last commit: each word's committed
/// updates are still 1, 2, ... N, once each, and each letter window's sums rise once per word
/// to the exact total.
fn kill_minus_9_and_restart_while_input_flows_keeps_every_update_exactly_once(bootstrap: &str) {
    let wc = WordCount::with_letter_sums(bootstrap, 2);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let input = FlowingInput::new(80, 30);
    let total: usize = input.expected_counts().values().sum::<i64>() as usize;
    let producer = input.produce(bootstrap, &wc.input);
    let mut steady = spawn(&wc, d2.path());
    let mut victim = spawn(&wc, d1.path());
    let mut committed = 0;
    for _ in 0..5 {
        // Kill once something new is committed (or everything is done).
        let seen = read_committed_updates(bootstrap, &wc.output, Duration::from_secs(120), |u| {
            let n = u.values().map(Vec::len).sum::<usize>();
            n > committed + 50 || n >= total
        });
        committed = seen.values().map(Vec::len).sum();
        victim.kill().expect("kill -9");
        victim.wait().unwrap();
        victim = spawn(&wc, d1.path());
    }
    producer.join().unwrap();
    assert_output_exactly_once(&wc, &input, Duration::from_secs(180));
    for (app, dir) in [(&mut victim, d1.path()), (&mut steady, d2.path())] {
        let pid = app.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = app.wait().unwrap();
        assert!(
            status.success(),
            "exits cleanly after SIGTERM ({status}); its log ends:\n{}",
            log_tail(dir)
        );
    }
}

/// The `streams-broker` binary next to this test's directory (`cargo test --workspace` builds it
/// for the broker's own tests), refused when the broker's sources are newer.
fn broker_binary() -> std::path::PathBuf {
    let bin = target_binary(&["streams-broker"]);
    let built = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run `cargo build --workspace`",
                bin.display()
            )
        });
    assert_newer_than_sources(&bin, built, &["broker/src"], "cargo build --workspace");
    bin
}

/// Starts the broker binary on `port` with `data` as its data directory; waits until it listens.
fn spawn_broker(port: u16, data: &std::path::Path) -> Child {
    use std::io::BufRead;
    let mut child = Command::new(broker_binary())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start streams-broker");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on "), "broker said {line:?}");
    child
}

/// kill -9 of the bundled broker (its binary, with a data directory of its own) while an
/// exactly-once word count has input to process, then a restart on the same port and data:
/// the application reconnects and goes on, and each word's committed updates are still 1, 2,
/// ... N, once each.
#[test]
fn kill_minus_9_of_the_bundled_broker_keeps_every_update_exactly_once() {
    capture_logs();
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut broker = spawn_broker(port, data.path());
    let bootstrap = format!("127.0.0.1:{port}");
    let wc = WordCount::new(&bootstrap, 2);
    let dir = tempfile::tempdir().unwrap();
    let (mut app, _) = wc.start_with(dir.path(), &[EOS]);
    let first = lines(90, 3_000);
    produce_lines(&bootstrap, &wc.input, &first);
    // Kill while the backlog is being processed: some updates are committed, more are on the way.
    read_committed_updates(&bootstrap, &wc.output, Duration::from_secs(120), |u| {
        u.values().map(Vec::len).sum::<usize>() > 100
    });
    broker.kill().expect("kill -9");
    broker.wait().unwrap();
    let mut broker = spawn_broker(port, data.path());
    let second = lines(91, 1_000);
    produce_lines(&bootstrap, &wc.input, &second);
    let expected = expected_counts(first.iter().chain(&second));
    let updates = read_committed_updates(&bootstrap, &wc.output, Duration::from_secs(180), |u| {
        expected
            .iter()
            .all(|(w, n)| u.get(w).and_then(|v| v.last()).is_some_and(|l| l >= n))
    });
    assert_each_update_once(&updates, &expected);
    app.close().unwrap();
    broker.kill().unwrap();
    broker.wait().unwrap();
}
