//! kill -9 of one of two word count processes in the middle of the input loses nothing: every
//! final count is at least the expected one (at-least-once). Runs the `wordcount` example binary
//! on the Apache Kafka test bed and on the bundled broker.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use streams::{testing, Serdes};

on_both_brokers!(kill_minus_9_loses_nothing);

fn example_binary() -> PathBuf {
    // target/<profile>/deps/kill9-<hash> -> target/<profile>/examples/wordcount
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let bin = dir.join("wordcount");
    if !bin.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "wordcount"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build --example wordcount");
        assert!(status.success());
    }
    bin
}

fn spawn(wc: &WordCount, state_dir: &std::path::Path) -> Child {
    Command::new(example_binary())
        .args([
            "--bootstrap-servers",
            &wc.bootstrap,
            "--application-id",
            &wc.app_id,
        ])
        .args(["--input-topic", &wc.input, "--output-topic", &wc.output])
        .args(["--state-dir", state_dir.to_str().unwrap()])
        .args([
            "--config",
            "commit.interval.ms=300",
            "--config",
            "consumer.session.timeout.ms=6000",
        ])
        .args(["--config", "consumer.heartbeat.interval.ms=500"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the wordcount example")
}

fn kill_minus_9_loses_nothing(bootstrap: &str) {
    let wc = WordCount::new(bootstrap, 4);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut victim = spawn(&wc, d1.path());
    let mut survivor = spawn(&wc, d2.path());
    let first = lines(11, 3000);
    let second = lines(12, 3000);
    produce_lines(bootstrap, &wc.input, &first);
    // Wait until output flows (both have joined and are processing), then kill one mid-input.
    let some = testing::read_table(
        bootstrap,
        &wc.output,
        Serdes::string(),
        Serdes::nullable(Serdes::i64()),
        Duration::from_secs(90),
        |t| t.values().sum::<i64>() > 100,
    )
    .unwrap();
    assert!(!some.is_empty(), "output flows before the kill");
    std::thread::sleep(Duration::from_millis(500));
    victim.kill().expect("kill -9");
    victim.wait().unwrap();
    produce_lines(bootstrap, &wc.input, &second);

    let expected = expected_counts(first.iter().chain(&second));
    let counts = testing::read_table(
        bootstrap,
        &wc.output,
        Serdes::string(),
        Serdes::nullable(Serdes::i64()),
        Duration::from_secs(120),
        |t| {
            expected
                .iter()
                .all(|(w, n)| t.get(w).is_some_and(|c| c >= n))
        },
    )
    .unwrap();
    for (w, n) in &expected {
        let c = counts.get(w).copied().unwrap_or(0);
        assert!(c >= *n, "count of `{w}` is {c}, expected at least {n}");
    }
    // The survivor still stops cleanly on SIGTERM.
    let pid = survivor.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = survivor.wait().unwrap();
    assert!(
        status.success(),
        "survivor exits cleanly after SIGTERM: {status:?}"
    );
}
