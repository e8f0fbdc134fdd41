//! Crash safety of the `streams-broker` binary: after `kill -9` and a torn write at the tail of
//! a segment, a restart truncates to the last whole batch and keeps every acknowledged record;
//! after `kill -9` with transactions committed, aborted and open, a restart keeps the
//! coordinator's state, so read_committed readers see exactly the committed records.

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

/// A transactional producer on `bootstrap` with `init_transactions` done.
fn txn_producer(
    bootstrap: &str,
) -> rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext> {
    use rdkafka::producer::Producer;
    let p: rdkafka::producer::ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", "crash-tx")
        .set("linger.ms", "0")
        .create()
        .unwrap();
    p.init_transactions(Duration::from_secs(30)).unwrap();
    p
}

#[test]
fn kill_9_keeps_transactions_committed_aborted_and_open() {
    use rdkafka::producer::{BaseRecord, Producer};
    let timeout = Duration::from_secs(30);
    let dir = tempfile::tempdir().unwrap();
    let (mut child, bootstrap) = spawn_broker(dir.path());
    let p = txn_producer(&bootstrap);
    let send = |p: &rdkafka::producer::ThreadedProducer<_>, v: &str| {
        p.send(BaseRecord::to("txn-crash").key("k").payload(v))
            .map_err(|(e, _)| e)
            .unwrap();
        p.flush(timeout).unwrap();
    };
    p.begin_transaction().unwrap();
    send(&p, "c1");
    send(&p, "c2");
    p.commit_transaction(timeout).unwrap();
    p.begin_transaction().unwrap();
    send(&p, "a1");
    p.abort_transaction(timeout).unwrap();
    p.begin_transaction().unwrap();
    send(&p, "open"); // written, never committed: the crash comes first
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(p);

    let (mut child, bootstrap) = spawn_broker(dir.path());
    // The restarted coordinator still knows the open transaction: a new producer of the id
    // aborts it (fencing the old one) before its own.
    let p = txn_producer(&bootstrap);
    p.begin_transaction().unwrap();
    send(&p, "end");
    p.commit_transaction(timeout).unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "txn-crash-check")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("txn-crash", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got: Vec<String> = Vec::new();
    let deadline = Instant::now() + timeout;
    while got.last().map(String::as_str) != Some("end") {
        assert!(Instant::now() < deadline, "timed out; got {got:?}");
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            got.push(String::from_utf8(m.unwrap().payload().unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(got, ["c1", "c2", "end"]);
    // c1 c2 marker a1 marker open marker (the abort at restart) end marker: 9 offsets, and
    // nothing left open (this is read_committed's end, the stable offset).
    assert_eq!(
        consumer.fetch_watermarks("txn-crash", 0, timeout).unwrap(),
        (0, 9)
    );
    drop(p);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}
