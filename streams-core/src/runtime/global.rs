//! The global thread: [`bootstrap`] fills the global stores from their topics (every partition,
//! from the beginning to the end) before the stream threads start, and [`spawn`] keeps them up
//! to date while the instance runs. The topics are the stores' changelogs: nothing is written
//! back and no offset is committed, so every start rebuilds the (in-memory) stores.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::Shared;
use crate::config::ResolvedConfig;
use crate::error::{Result, StreamsError};
use crate::state::GlobalStores;

/// Records applied to a store per call while bootstrapping.
const BATCH: usize = 10_000;

/// Keys and values (`None`: delete) of one topic, in offset order.
type Batch = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Creates the global consumer, assigns it every partition of every global topic from the
/// beginning and applies records until each partition reaches the end it had when bootstrapping
/// began. Returns the consumer, positioned there, for [`spawn`]; `None` without global stores.
pub(crate) fn bootstrap(
    config: &ResolvedConfig,
    stores: &GlobalStores,
) -> Result<Option<BaseConsumer>> {
    if stores.is_empty() {
        return Ok(None);
    }
    let restore_err = |topic: &str, message: String| StreamsError::Restore {
        task: crate::task_id::TaskId {
            subtopology: u32::MAX,
            partition: -1,
        },
        store: format!("<global store of `{topic}`>"),
        changelog: topic.to_string(),
        message,
    };
    let mut cc = ClientConfig::new();
    for (k, v) in &config.consumer {
        cc.set(k, v);
    }
    cc.set(
        "client.id",
        format!("{}-global-consumer", config.application_id),
    );
    // rdkafka delivers assigned partitions through the group queue, so the consumer needs a
    // group id; it only assigns, so it never joins that group and never commits.
    cc.set(
        "group.id",
        format!("{}-global-consumer", config.application_id),
    );
    let consumer: BaseConsumer = cc
        .create()
        .map_err(|e| StreamsError::kafka("creating the global consumer", e))?;

    let timeout = Duration::from_secs(30);
    let mut tpl = TopicPartitionList::new();
    // (topic, partition) -> end offset to reach before processing starts.
    let mut ends: Vec<(String, i32, i64)> = Vec::new();
    for topic in stores.topics() {
        let md = consumer
            .fetch_metadata(Some(&topic), timeout)
            .map_err(|e| StreamsError::kafka(format!("fetching metadata of `{topic}`"), e))?;
        let partitions: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(StreamsError::MissingSourceTopic { topic });
        }
        for p in partitions {
            let (low, high) = consumer
                .fetch_watermarks(&topic, p, timeout)
                .map_err(|e| restore_err(&topic, format!("reading watermarks: {e}")))?;
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .map_err(|e| restore_err(&topic, e.to_string()))?;
            if high > low {
                ends.push((topic.clone(), p, high));
            }
        }
    }
    consumer
        .assign(&tpl)
        .map_err(|e| StreamsError::kafka("assigning the global topics", e))?;

    let began = Instant::now();
    let mut total = 0u64;
    let mut last_progress = Instant::now();
    let mut pending: Vec<(String, Batch)> = Vec::new();
    let flush = |pending: &mut Vec<(String, Batch)>| -> Result<()> {
        for (topic, batch) in pending.drain(..) {
            stores.apply(&topic, &batch)?;
        }
        Ok(())
    };
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last_progress = Instant::now();
                let (topic, p, next) = (m.topic(), m.partition(), m.offset() + 1);
                if let Some(k) = m.key() {
                    match pending.last_mut() {
                        Some((t, batch)) if t == topic && batch.len() < BATCH => {
                            batch.push((k.to_vec(), m.payload().map(<[u8]>::to_vec)))
                        }
                        _ => pending.push((
                            topic.to_string(),
                            vec![(k.to_vec(), m.payload().map(<[u8]>::to_vec))],
                        )),
                    }
                    total += 1;
                }
                ends.retain(|(t, q, end)| !(t == topic && *q == p && next >= *end));
                if pending.len() > 1 || pending.first().is_some_and(|(_, b)| b.len() >= BATCH) {
                    flush(&mut pending)?;
                }
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "global consumer error while bootstrapping");
                if last_progress.elapsed() > config.task_timeout {
                    return Err(restore_err(
                        &ends[0].0,
                        format!("no progress for {:?}: {e}", config.task_timeout),
                    ));
                }
            }
            None => {
                if last_progress.elapsed() > config.task_timeout {
                    let (t, p, end) = &ends[0];
                    return Err(restore_err(
                        t,
                        format!(
                            "no progress for {:?} before offset {end} of partition {p}",
                            config.task_timeout
                        ),
                    ));
                }
            }
        }
    }
    flush(&mut pending)?;
    tracing::info!(
        records = total,
        took_ms = began.elapsed().as_millis() as u64,
        "global stores bootstrapped"
    );
    Ok(Some(consumer))
}

/// Starts the global thread: it applies new records of the global topics until shutdown. A
/// failure puts the instance in the Error state.
pub(crate) fn spawn(
    consumer: BaseConsumer,
    stores: Arc<GlobalStores>,
    shared: Arc<Shared>,
    name: String,
) -> Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let span = tracing::info_span!("global_thread");
            let _g = span.enter();
            while !shared.shutdown_requested() {
                match consumer.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Ok(m)) => {
                        let Some(k) = m.key() else { continue };
                        let batch = [(k.to_vec(), m.payload().map(<[u8]>::to_vec))];
                        if let Err(e) = stores.apply(m.topic(), &batch) {
                            shared.fail(e);
                            break;
                        }
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => {}
                    Some(Err(e)) => {
                        if matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::Fatal)
                        ) {
                            shared.fail(StreamsError::kafka("consuming the global topics", e));
                            break;
                        }
                        tracing::warn!(error = %e, "global consumer error");
                    }
                }
            }
            tracing::info!("global thread stopped");
        })
        .map_err(|source| StreamsError::Io { path: name, source })
}
