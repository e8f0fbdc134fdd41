//! End-to-end tests: the broker started in-process, driven by rdkafka (librdkafka), a real
//! Kafka client.

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use streams_broker::{Broker, BrokerConfig, BrokerHandle};

const TIMEOUT: Duration = Duration::from_secs(30);

async fn start() -> BrokerHandle {
    Broker::start(BrokerConfig::default())
        .await
        .expect("broker starts")
}

fn producer(bootstrap: &str, idempotent: bool) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", idempotent.to_string())
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer")
}

fn consumer(bootstrap: &str, group: &str) -> StreamConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .expect("consumer")
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = admin(bootstrap)
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create_topics request");
    for r in results {
        r.expect("topic created");
    }
}

async fn produce(
    p: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    key: &str,
    value: &str,
) -> (i32, i64) {
    let mut record = FutureRecord::to(topic).key(key).payload(value);
    if let Some(p) = partition {
        record = record.partition(p);
    }
    let delivery = p
        .send(record, TIMEOUT)
        .await
        .unwrap_or_else(|(e, _)| panic!("delivery of {key} failed: {e}"));
    (delivery.partition, delivery.offset)
}

/// Receives until `n` messages arrived, returning (partition, offset, key, value).
async fn receive(c: &StreamConsumer, n: usize) -> Vec<(i32, i64, String, String)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = tokio::time::timeout(left, c.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out after {} of {n} messages", out.len()))
            .expect("consume");
        out.push((
            m.partition(),
            m.offset(),
            String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_then_consume_round_trips_records() {
    let broker = start().await;
    let bootstrap = broker.bootstrap_servers();
    let p = producer(&bootstrap, false);
    // The topic does not exist: the producer's Metadata request creates it (4 partitions).
    let mut sent = BTreeMap::new();
    for i in 0..50 {
        let (partition, offset) =
            produce(&p, "auto", None, &format!("k{i}"), &format!("v{i}")).await;
        sent.insert((partition, offset), (format!("k{i}"), format!("v{i}")));
    }
    let c = consumer(&bootstrap, "g-roundtrip");
    c.subscribe(&["auto"]).unwrap();
    let got = receive(&c, 50).await;
    let got: BTreeMap<_, _> = got
        .into_iter()
        .map(|(p, o, k, v)| ((p, o), (k, v)))
        .collect();
    assert_eq!(got, sent);
    let md = c.fetch_metadata(Some("auto"), TIMEOUT).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 4);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_delivers_each_record_once_in_order() {
    let broker = start().await;
    let bootstrap = broker.bootstrap_servers();
    create_topic(&bootstrap, "idem", 1, &[]).await;
    let p = producer(&bootstrap, true);
    // Enqueue all 200 at once (in order) so that librdkafka pipelines several batches per
    // partition, which is what sequence numbers protect.
    let sends: Vec<_> = (0..200)
        .map(|i| {
            let value = format!("{i}");
            let record = FutureRecord::to("idem")
                .key("k")
                .payload(&value)
                .partition(0);
            p.send_result(record).map_err(|(e, _)| e).expect("enqueue")
        })
        .collect();
    let mut offsets = Vec::new();
    for s in sends {
        let delivery = s
            .await
            .expect("delivery future")
            .map_err(|(e, _)| e)
            .expect("idempotent delivery");
        offsets.push(delivery.offset);
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (0..200).collect::<Vec<i64>>());
    let c = consumer(&bootstrap, "g-idem");
    c.subscribe(&["idem"]).unwrap();
    let got = receive(&c, 200).await;
    let values: Vec<i64> = got.iter().map(|(_, _, _, v)| v.parse().unwrap()).collect();
    assert_eq!(
        values,
        (0..200).collect::<Vec<i64>>(),
        "in order, no duplicates"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_group_consumers_share_partitions() {
    let broker = start().await;
    let bootstrap = broker.bootstrap_servers();
    create_topic(&bootstrap, "shared", 4, &[]).await;
    let p = producer(&bootstrap, false);
    for partition in 0..4 {
        for i in 0..5 {
            produce(
                &p,
                "shared",
                Some(partition),
                &format!("p{partition}"),
                &format!("{i}"),
            )
            .await;
        }
    }
    let a = consumer(&bootstrap, "g-shared");
    let b = consumer(&bootstrap, "g-shared");
    a.subscribe(&["shared"]).unwrap();
    b.subscribe(&["shared"]).unwrap();
    // Both poll until every record is seen; wait until both own partitions.
    // Nothing is committed, so a partition that moves in the rebalance is read
    // again from the start by its new owner: count distinct records, not
    // deliveries.
    let deadline = Instant::now() + TIMEOUT;
    let mut seen_a = BTreeSet::new();
    let mut seen_b = BTreeSet::new();
    loop {
        let assigned_a = a.assignment().unwrap().count();
        let assigned_b = b.assignment().unwrap().count();
        if assigned_a == 2 && assigned_b == 2 && seen_a.union(&seen_b).count() >= 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no balanced assignment: a={assigned_a} b={assigned_b}"
        );
        tokio::select! {
            m = a.recv() => { let m = m.unwrap(); seen_a.insert((m.partition(), m.offset())); }
            m = b.recv() => { let m = m.unwrap(); seen_b.insert((m.partition(), m.offset())); }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    let parts_a: BTreeSet<i32> = a
        .assignment()
        .unwrap()
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect();
    let parts_b: BTreeSet<i32> = b
        .assignment()
        .unwrap()
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect();
    assert!(parts_a.is_disjoint(&parts_b), "{parts_a:?} vs {parts_b:?}");
    assert_eq!(parts_a.union(&parts_b).count(), 4);
    let all: BTreeSet<_> = seen_a.union(&seen_b).cloned().collect();
    assert_eq!(all.len(), 20);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_and_records_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..BrokerConfig::default()
    };
    let broker = Broker::start(config.clone()).await.unwrap();
    let bootstrap = broker.bootstrap_servers();
    create_topic(&bootstrap, "durable", 2, &[("retention.ms", "86400000")]).await;
    let p = producer(&bootstrap, true);
    for i in 0..10 {
        produce(&p, "durable", Some(i % 2), "k", &format!("{i}")).await;
    }
    drop(p);
    let c = consumer(&bootstrap, "g-durable");
    // Metadata strings must round-trip.
    let mut tpl_with_meta = TopicPartitionList::new();
    tpl_with_meta
        .add_partition_offset("durable", 0, Offset::Offset(3))
        .unwrap();
    tpl_with_meta
        .add_partition_offset("durable", 1, Offset::Offset(4))
        .unwrap();
    tpl_with_meta
        .find_partition("durable", 0)
        .unwrap()
        .set_metadata("meta-zero");
    c.commit(&tpl_with_meta, rdkafka::consumer::CommitMode::Sync)
        .unwrap();
    drop(c);
    broker.shutdown().await.unwrap();

    let broker = Broker::start(config).await.unwrap();
    let bootstrap = broker.bootstrap_servers();
    let c = consumer(&bootstrap, "g-durable");
    let mut ask = TopicPartitionList::new();
    ask.add_partition("durable", 0);
    ask.add_partition("durable", 1);
    let committed = c.committed_offsets(ask, TIMEOUT).unwrap();
    let p0 = committed.find_partition("durable", 0).unwrap();
    let p1 = committed.find_partition("durable", 1).unwrap();
    assert_eq!(p0.offset(), Offset::Offset(3));
    assert_eq!(p0.metadata(), "meta-zero");
    assert_eq!(p1.offset(), Offset::Offset(4));
    c.subscribe(&["durable"]).unwrap();
    // Resumes from the committed offsets: 5-3 = 2 left on p0, 5-4 = 1 on p1.
    let got = receive(&c, 3).await;
    let positions: BTreeSet<(i32, i64)> = got.iter().map(|(p, o, _, _)| (*p, *o)).collect();
    assert_eq!(positions, BTreeSet::from([(0, 3), (0, 4), (1, 4)]));
    // The idempotent producer's next id must not collide with the one used before.
    let p = producer(&bootstrap, true);
    produce(&p, "durable", Some(0), "k", "after-restart").await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_creates_describes_grows_and_deletes_topics() {
    let broker = start().await;
    let bootstrap = broker.bootstrap_servers();
    let admin = admin(&bootstrap);
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    create_topic(&bootstrap, "adm", 2, &[("cleanup.policy", "compact")]).await;

    let again = admin
        .create_topics(
            [&NewTopic::new("adm", 2, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(
        again[0].as_ref().unwrap_err().1,
        rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
    );

    let configs = admin
        .describe_configs([&ResourceSpecifier::Topic("adm")], &opts)
        .await
        .unwrap();
    let resource = configs[0].as_ref().unwrap();
    let entry = |name: &str| resource.get(name).and_then(|e| e.value.clone());
    assert_eq!(entry("cleanup.policy").as_deref(), Some("compact"));
    assert_eq!(entry("retention.ms").as_deref(), Some("604800000"));

    // AlterConfigs replaces the whole override set: cleanup.policy falls back to its default.
    let altered = admin
        .alter_configs(
            [&AlterConfig::new(ResourceSpecifier::Topic("adm")).set("retention.ms", "1000")],
            &opts,
        )
        .await
        .unwrap();
    altered[0].as_ref().unwrap();
    let configs = admin
        .describe_configs([&ResourceSpecifier::Topic("adm")], &opts)
        .await
        .unwrap();
    let resource = configs[0].as_ref().unwrap();
    let entry = |name: &str| resource.get(name).and_then(|e| e.value.clone());
    assert_eq!(entry("retention.ms").as_deref(), Some("1000"));
    assert_eq!(entry("cleanup.policy").as_deref(), Some("delete"));

    let grown = admin
        .create_partitions([&NewPartitions::new("adm", 5)], &opts)
        .await
        .unwrap();
    grown[0].as_ref().unwrap();
    let md = admin.inner().fetch_metadata(Some("adm"), TIMEOUT).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 5);

    let deleted = admin.delete_topics(&["adm"], &opts).await.unwrap();
    deleted[0].as_ref().unwrap();
    let md = admin.inner().fetch_metadata(None, TIMEOUT).unwrap();
    assert!(md.topics().iter().all(|t| t.name() != "adm"));
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_and_timestamp_lookup() {
    let broker = start().await;
    let bootstrap = broker.bootstrap_servers();
    create_topic(&bootstrap, "times", 1, &[]).await;
    let p = producer(&bootstrap, false);
    for i in 0..10i64 {
        let record = FutureRecord::to("times")
            .key("k")
            .payload("v")
            .partition(0)
            .timestamp(1_000_000 + i * 1000);
        p.send(record, TIMEOUT).await.map_err(|(e, _)| e).unwrap();
    }
    let c = consumer(&bootstrap, "g-times");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, Offset::Offset(1_004_500))
        .unwrap();
    let found = c.offsets_for_times(tpl, TIMEOUT).unwrap();
    assert_eq!(
        found.find_partition("times", 0).unwrap().offset(),
        Offset::Offset(5)
    );

    let mut del = TopicPartitionList::new();
    del.add_partition_offset("times", 0, Offset::Offset(7))
        .unwrap();
    let admin = admin(&bootstrap);
    admin
        .delete_records(&del, &AdminOptions::new())
        .await
        .unwrap();
    let (low, high) = c.fetch_watermarks("times", 0, TIMEOUT).unwrap();
    assert_eq!((low, high), (7, 10));
    c.subscribe(&["times"]).unwrap();
    let got = receive(&c, 3).await;
    assert_eq!(got.iter().map(|m| m.1).collect::<Vec<_>>(), vec![7, 8, 9]);
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_member_that_vanishes_is_expired_after_its_session_timeout() {
    let broker = start().await;
    let bootstrap = broker.bootstrap_servers();
    create_topic(&bootstrap, "statics", 4, &[]).await;
    let make = |instance: &str| -> StreamConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "g-static")
            .set("group.instance.id", instance)
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap()
    };
    let a = make("instance-a");
    let b = make("instance-b");
    a.subscribe(&["statics"]).unwrap();
    b.subscribe(&["statics"]).unwrap();
    let balanced = Instant::now() + TIMEOUT;
    while !(a.assignment().unwrap().count() == 2 && b.assignment().unwrap().count() == 2) {
        assert!(Instant::now() < balanced, "never balanced");
        tokio::select! {
            _ = a.recv() => {}
            _ = b.recv() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    // A static member does not send LeaveGroup on close: the broker must notice the silence.
    let gone = Instant::now();
    drop(a);
    while b.assignment().unwrap().count() != 4 {
        assert!(
            gone.elapsed() < TIMEOUT,
            "partitions of the vanished member never moved"
        );
        let _ = tokio::time::timeout(Duration::from_millis(100), b.recv()).await;
    }
    assert!(
        gone.elapsed() >= Duration::from_secs(5),
        "reassigned after {:?}, before the 6 s session timeout",
        gone.elapsed()
    );
    broker.shutdown().await.unwrap();
}
