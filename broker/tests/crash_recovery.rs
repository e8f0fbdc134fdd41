//! Crash safety of the `streams-broker` binary: after `kill -9` and a torn write at the tail of
//! a segment, a restart truncates to the last whole batch and keeps every acknowledged record.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts the binary on a free port and returns it with its bootstrap address.
fn spawn_broker(data_dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streams-broker"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(["--partitions", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("broker binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_torn_tail_lose_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, bootstrap) = spawn_broker(dir.path());
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let mut acked = Vec::new();
    for i in 0..30 {
        let value = format!("record-{i}");
        let d = producer
            .send(
                FutureRecord::to("crash").key("k").payload(&value),
                Duration::from_secs(20),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("acknowledged");
        acked.push((d.offset, value));
    }
    drop(producer);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // Simulate a write torn by the crash: half a batch header at the end of the segment.
    let segment = dir.path().join("logs/crash-0/00000000000000000000.log");
    let before = std::fs::metadata(&segment).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    f.write_all(&[0, 0, 0, 0, 0, 0, 0, 30, 0, 0, 0, 200, 0xde, 0xad])
        .unwrap();
    drop(f);

    let (mut child, bootstrap) = spawn_broker(dir.path());
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        before,
        "the torn tail is truncated on restart"
    );
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "crash-check")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("crash", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < acked.len() && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            got.push((
                m.offset(),
                String::from_utf8(m.payload().unwrap().to_vec()).unwrap(),
            ));
        }
    }
    assert_eq!(got, acked);
    // The log accepts appends after recovery, at the next offset.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let d = producer
        .send(
            FutureRecord::to("crash").key("k").payload("after"),
            Duration::from_secs(20),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    assert_eq!(d.offset, 30);
    // SIGTERM shuts the binary down cleanly.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}
