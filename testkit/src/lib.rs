//! Blocking helpers for the examples, the end-to-end tests and the benchmarks of streams on a
//! real cluster: create topics, produce records, count them, and read a topic back as a table
//! (the latest value per key) or as records. Not part of the `streams` API.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use streams_core::serde::SerdeRef;
use streams_core::{Result, StreamsError};

const TIMEOUT: Duration = Duration::from_secs(30);

fn kafka(operation: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> StreamsError {
    let operation = operation.into();
    move |source| StreamsError::Kafka { operation, source }
}

/// Creates `topic` with `partitions` partitions (the broker's default replication factor)
/// unless it exists, and waits until metadata shows it.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(kafka("creating an admin client"))?;
    let nt = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    let res = futures_lite_block_on(
        admin.create_topics([&nt], &AdminOptions::new().operation_timeout(Some(TIMEOUT))),
    )
    .map_err(kafka(format!("creating topic `{topic}`")))?;
    for r in res {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(StreamsError::InternalTopic {
                    topic: t,
                    message: format!("could not be created: {code}"),
                })
            }
        }
    }
    wait_for_partitions(&admin, topic, partitions)
}

/// Waits until metadata shows `topic` with `partitions` partitions (at most 30 s).
fn wait_for_partitions(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    partitions: i32,
) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let md = admin
            .inner()
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(kafka(format!("fetching metadata of `{topic}`")))?;
        if md.topics().iter().any(|t| {
            t.name() == topic && t.error().is_none() && t.partitions().len() as i32 == partitions
        }) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(StreamsError::InternalTopic {
                topic: topic.to_string(),
                message: format!("{partitions} partitions not visible in metadata after 30 s"),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Grows `topic` to `partitions` partitions and waits until metadata shows them.
pub fn add_partitions(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(kafka("creating an admin client"))?;
    let np = NewPartitions::new(topic, partitions as usize);
    let res = futures_lite_block_on(
        admin.create_partitions([&np], &AdminOptions::new().operation_timeout(Some(TIMEOUT))),
    )
    .map_err(kafka(format!("adding partitions to `{topic}`")))?;
    for r in res {
        if let Err((t, code)) = r {
            return Err(StreamsError::InternalTopic {
                topic: t,
                message: format!("could not grow to {partitions} partitions: {code}"),
            });
        }
    }
    wait_for_partitions(&admin, topic, partitions)
}

fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// A record to produce: key, value and optional timestamp.
pub type Outgoing = (Option<Vec<u8>>, Option<Vec<u8>>, Option<i64>);

/// Produces `records` to `topic` (partitioned by key as Java does) and waits until every one
/// is acknowledged.
pub fn produce(
    bootstrap: &str,
    topic: &str,
    records: impl IntoIterator<Item = Outgoing>,
) -> Result<u64> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("acks", "all")
        .create()
        .map_err(kafka("creating a producer"))?;
    let mut n = 0;
    for (k, v, ts) in records {
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
        if let Some(k) = &k {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &v {
            rec = rec.payload(v.as_slice());
        }
        if let Some(ts) = ts {
            rec = rec.timestamp(ts);
        }
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(kafka(format!("producing to `{topic}`"))(e)),
            }
        }
        n += 1;
    }
    producer
        .flush(TIMEOUT)
        .map_err(kafka(format!("flushing records to `{topic}`")))?;
    Ok(n)
}

/// Number of records `topic` holds now (sum over partitions of high minus low watermark).
pub fn record_count(bootstrap: &str, topic: &str) -> Result<i64> {
    let consumer = plain_consumer(bootstrap)?;
    let md = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(kafka(format!("fetching metadata of `{topic}`")))?;
    let mut total = 0;
    for t in md.topics() {
        for p in t.partitions() {
            let (lo, hi) = consumer
                .fetch_watermarks(topic, p.id(), TIMEOUT)
                .map_err(kafka(format!("reading watermarks of `{topic}`")))?;
            total += hi - lo;
        }
    }
    Ok(total)
}

fn plain_consumer(bootstrap: &str) -> Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "streams-testing-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(kafka("creating a consumer"))
}

/// Reads `topic` from the beginning into a table (latest value per key; a null value removes
/// the key) until `done(table)` holds, or `timeout` passes; returns the table either way.
pub fn read_table<K, V>(
    bootstrap: &str,
    topic: &str,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<Option<V>>,
    timeout: Duration,
    done: impl Fn(&HashMap<K, V>) -> bool,
) -> Result<HashMap<K, V>>
where
    K: Hash + Eq + 'static,
    V: 'static,
{
    let mut table = HashMap::new();
    read_topic(bootstrap, topic, key_serde, value_serde, timeout, |r| {
        match r {
            Some((k, Some(v))) => {
                table.insert(k, v);
            }
            Some((k, None)) => {
                table.remove(&k);
            }
            None => return done(&table),
        }
        false
    })?;
    Ok(table)
}

/// Reads every record of `topic` from the beginning (in order per partition) until
/// `done(records)` holds while no more are arriving, or `timeout` passes; returns them either
/// way.
pub fn read_records<K: 'static, V: 'static>(
    bootstrap: &str,
    topic: &str,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    timeout: Duration,
    done: impl Fn(&[(K, V)]) -> bool,
) -> Result<Vec<(K, V)>> {
    let mut records = Vec::new();
    read_topic(bootstrap, topic, key_serde, value_serde, timeout, |r| {
        match r {
            Some(kv) => records.push(kv),
            None => return done(&records),
        }
        false
    })?;
    Ok(records)
}

/// The reading loop of [`read_table`] and [`read_records`]: `step(Some(record))` for each
/// record, `step(None)` when a poll comes back empty, which ends the loop by returning true.
fn read_topic<K: 'static, V: 'static>(
    bootstrap: &str,
    topic: &str,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    timeout: Duration,
    mut step: impl FnMut(Option<(K, V)>) -> bool,
) -> Result<()> {
    let consumer = plain_consumer(bootstrap)?;
    let deadline = Instant::now() + timeout;
    // The topic may not exist yet (an application creates its output when it first writes).
    let mut tpl = TopicPartitionList::new();
    while tpl.count() == 0 {
        let md = consumer
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(kafka(format!("fetching metadata of `{topic}`")))?;
        for t in md.topics().iter().filter(|t| t.error().is_none()) {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                    .map_err(kafka(format!("assigning `{topic}`")))?;
            }
        }
        if tpl.count() == 0 {
            if Instant::now() > deadline {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    consumer
        .assign(&tpl)
        .map_err(kafka(format!("assigning `{topic}`")))?;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let key = key_serde.deserialize(topic, m.key()).map_err(|source| {
                    StreamsError::Deserialization {
                        part: "key",
                        topic: topic.to_string(),
                        partition: m.partition(),
                        offset: m.offset(),
                        source,
                    }
                })?;
                let value = value_serde
                    .deserialize(topic, m.payload())
                    .map_err(|source| StreamsError::Deserialization {
                        part: "value",
                        topic: topic.to_string(),
                        partition: m.partition(),
                        offset: m.offset(),
                        source,
                    })?;
                step(Some((key, value)));
            }
            Some(Err(e)) => return Err(kafka(format!("reading `{topic}`"))(e)),
            None => {
                if step(None) {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}
