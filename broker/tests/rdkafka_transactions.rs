//! Transactions end to end with rdkafka (librdkafka): a transactional producer commits and
//! aborts, `read_committed` consumers see exactly the committed records (also after compaction
//! removed the aborted ones and superseded values), offsets sent to a
//! transaction are committed with it, and a zombie producer is fenced.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};
use streams_broker::{Broker, BrokerConfig, BrokerHandle};

const TIMEOUT: Duration = Duration::from_secs(30);

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

async fn start() -> BrokerHandle {
    Broker::start(BrokerConfig::default())
        .await
        .expect("broker starts")
}

async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for r in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.expect("topic created");
    }
}

/// A transactional producer with `init_transactions` done (run on a blocking thread: the
/// transactional calls block).
async fn txn_producer(bootstrap: &str, id: &str) -> TxnProducer {
    let bootstrap = bootstrap.to_string();
    let id = id.to_string();
    tokio::task::spawn_blocking(move || {
        let p: TxnProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("transactional.id", &id)
            .set("transaction.timeout.ms", "60000")
            .set("linger.ms", "0")
            .create()
            .expect("producer");
        p.init_transactions(TIMEOUT).expect("init_transactions");
        p
    })
    .await
    .unwrap()
}

/// Sends `values` to partition 0 of `topic` and flushes.
fn send(p: &TxnProducer, topic: &str, values: &[&str]) {
    for v in values {
        p.send(BaseRecord::to(topic).partition(0).key("k").payload(*v))
            .map_err(|(e, _)| e)
            .expect("enqueued");
    }
    p.flush(TIMEOUT).expect("flushed");
}

fn reader(bootstrap: &str, isolation: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "txn-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .unwrap()
}

/// Reads partition 0 from the start until `last` arrives; returns every value seen.
fn read_until(c: &BaseConsumer, topic: &str, last: &str) -> Vec<String> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while got.last().map(String::as_str) != Some(last) {
        assert!(Instant::now() < deadline, "timed out; got {got:?}");
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_sees_exactly_the_committed_records() {
    let broker = start().await;
    let bootstrap = broker.bootstrap_servers();
    create_topic(&bootstrap, "txn", 1).await;
    let p = txn_producer(&bootstrap, "txn-a").await;
    let p = tokio::task::spawn_blocking(move || {
        p.begin_transaction().unwrap();
        send(&p, "txn", &["c1", "c2", "c3"]);
        p.commit_transaction(TIMEOUT).expect("commit");
        p.begin_transaction().unwrap();
        send(&p, "txn", &["a1", "a2"]);
        p.abort_transaction(TIMEOUT).expect("abort");
        p.begin_transaction().unwrap();
        send(&p, "txn", &["c4", "end"]);
        p.commit_transaction(TIMEOUT).expect("commit");
        p
    })
    .await
    .unwrap();
    let committed = reader(&bootstrap, "read_committed");
    assert_eq!(
        read_until(&committed, "txn", "end"),
        ["c1", "c2", "c3", "c4", "end"]
    );
    let uncommitted = reader(&bootstrap, "read_uncommitted");
    assert_eq!(
        read_until(&uncommitted, "txn", "end"),
        ["c1", "c2", "c3", "a1", "a2", "c4", "end"]
    );
    // 7 records and 3 markers; nothing open, so the stable offset is the high watermark.
    let (low, high) = committed
        .fetch_watermarks("txn", 0, TIMEOUT)
        .expect("watermarks");
    assert_eq!((low, high), (0, 10));
    drop(p);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_holds_back_read_committed_consumers() {
    let broker = start().await;
    let bootstrap = broker.bootstrap_servers();
    create_topic(&bootstrap, "open", 1).await;
    let p = txn_producer(&bootstrap, "txn-open").await;
    let p = tokio::task::spawn_blocking(move || {
        p.begin_transaction().unwrap();
        send(&p, "open", &["o1", "o2"]);
        p
    })
    .await
    .unwrap();
    // Uncommitted records are visible to read_uncommitted right away...
    let uncommitted = reader(&bootstrap, "read_uncommitted");
    assert_eq!(read_until(&uncommitted, "open", "o2"), ["o1", "o2"]);
    // ...while read_committed is told the end is the stable offset, 0, until the commit
    // (ListOffsets LATEST with the consumer's isolation level).
    let committed = reader(&bootstrap, "read_committed");
    assert_eq!(
        committed.fetch_watermarks("open", 0, TIMEOUT).unwrap(),
        (0, 0)
    );
    assert_eq!(
        uncommitted.fetch_watermarks("open", 0, TIMEOUT).unwrap(),
        (0, 2)
    );
    let p = tokio::task::spawn_blocking(move || {
        p.commit_transaction(TIMEOUT).expect("commit");
        p
    })
    .await
    .unwrap();
    assert_eq!(read_until(&committed, "open", "o2"), ["o1", "o2"]);
    assert_eq!(
        committed.fetch_watermarks("open", 0, TIMEOUT).unwrap(),
        (0, 3)
    );
    drop(p);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_producer_is_fenced_and_its_transaction_aborted() {
    let broker = start().await;
    let bootstrap = broker.bootstrap_servers();
    create_topic(&bootstrap, "zombie", 1).await;
    let old = txn_producer(&bootstrap, "txn-z").await;
    let old = tokio::task::spawn_blocking(move || {
        old.begin_transaction().unwrap();
        send(&old, "zombie", &["from-zombie"]);
        old
    })
    .await
    .unwrap();
    // A new instance with the same transactional.id: its init aborts the zombie's transaction.
    let new = txn_producer(&bootstrap, "txn-z").await;
    let (old, new) = tokio::task::spawn_blocking(move || {
        let err = old
            .commit_transaction(TIMEOUT)
            .expect_err("the zombie cannot commit");
        let KafkaError::Transaction(e) = &err else {
            panic!("{err:?}")
        };
        assert!(e.is_fatal(), "fenced is fatal: {e:?}");
        new.begin_transaction().unwrap();
        send(&new, "zombie", &["from-new"]);
        new.commit_transaction(TIMEOUT).expect("commit");
        (old, new)
    })
    .await
    .unwrap();
    let committed = reader(&bootstrap, "read_committed");
    assert_eq!(read_until(&committed, "zombie", "from-new"), ["from-new"]);
    drop((old, new));
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_sent_to_a_transaction_are_committed_with_it() {
    let broker = start().await;
    let bootstrap = broker.bootstrap_servers();
    create_topic(&bootstrap, "in", 1).await;
    create_topic(&bootstrap, "out", 1).await;
    let p = txn_producer(&bootstrap, "txn-offsets").await;
    let p = tokio::task::spawn_blocking(move || {
        p.begin_transaction().unwrap();
        send(&p, "in", &["i1", "i2", "i3"]);
        p.commit_transaction(TIMEOUT).unwrap();
        p
    })
    .await
    .unwrap();
    // A group member, so TxnOffsetCommit v3 carries a real member id and generation.
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "eos-group")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    consumer.subscribe(&["in"]).unwrap();
    let first = tokio::time::timeout(TIMEOUT, consumer.recv())
        .await
        .expect("a record")
        .unwrap();
    assert_eq!(first.payload(), Some(&b"i1"[..]));
    drop(first);
    let metadata = consumer.group_metadata().expect("group metadata");
    let offsets_at = |offset: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("in", 0, Offset::Offset(offset))
            .unwrap();
        tpl
    };
    let (to_abort, to_commit) = (offsets_at(1), offsets_at(3));
    let p = tokio::task::spawn_blocking(move || {
        p.begin_transaction().unwrap();
        send(&p, "out", &["aborted"]);
        p.send_offsets_to_transaction(&to_abort, &metadata, TIMEOUT)
            .unwrap();
        p.abort_transaction(TIMEOUT).unwrap();
        p.begin_transaction().unwrap();
        send(&p, "out", &["o1"]);
        p.send_offsets_to_transaction(&to_commit, &metadata, TIMEOUT)
            .unwrap();
        p.commit_transaction(TIMEOUT).unwrap();
        p
    })
    .await
    .unwrap();
    let committed = consumer
        .committed(TIMEOUT)
        .expect("committed offsets")
        .find_partition("in", 0)
        .map(|e| e.offset());
    assert_eq!(committed, Some(Offset::Offset(3)));
    let out = reader(&bootstrap, "read_committed");
    assert_eq!(read_until(&out, "out", "o1"), ["o1"]);
    drop(p);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_removes_aborted_records_and_values_a_commit_superseded() {
    let broker = Broker::start(BrokerConfig {
        log_cleanup_interval: Duration::from_millis(100),
        ..BrokerConfig::default()
    })
    .await
    .expect("broker starts");
    let bootstrap = broker.bootstrap_servers();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    // One batch per segment, so every batch but the last is in a closed segment.
    let topic = NewTopic::new("ctxn", 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "1");
    for r in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.expect("topic created");
    }
    let p = txn_producer(&bootstrap, "ctxn-a").await;
    let send_keyed = |p: &TxnProducer, records: &[(&str, &str)]| {
        for (k, v) in records {
            p.send(BaseRecord::to("ctxn").partition(0).key(*k).payload(*v))
                .map_err(|(e, _)| e)
                .expect("enqueued");
        }
        p.flush(TIMEOUT).expect("flushed");
    };
    let p = tokio::task::spawn_blocking(move || {
        p.begin_transaction().unwrap();
        send_keyed(&p, &[("k1", "c1"), ("k2", "c2")]);
        p.commit_transaction(TIMEOUT).expect("commit");
        p.begin_transaction().unwrap();
        send_keyed(&p, &[("k1", "a1")]);
        p.abort_transaction(TIMEOUT).expect("abort");
        p.begin_transaction().unwrap();
        send_keyed(&p, &[("k2", "c3"), ("k3", "end")]);
        p.commit_transaction(TIMEOUT).expect("commit");
        p
    })
    .await
    .unwrap();
    // The cleaner runs every 100 ms: wait until even a read_uncommitted consumer sees that the
    // aborted a1 and the superseded c2 are gone (and that the aborted a1 did not replace c1).
    let uncommitted = reader(&bootstrap, "read_uncommitted");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let got = read_until(&uncommitted, "ctxn", "end");
        if got == ["c1", "c3", "end"] {
            break;
        }
        assert!(Instant::now() < deadline, "not compacted: {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let committed = reader(&bootstrap, "read_committed");
    assert_eq!(read_until(&committed, "ctxn", "end"), ["c1", "c3", "end"]);
    drop(p);
    broker.shutdown().await.unwrap();
}
