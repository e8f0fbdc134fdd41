//! Restoration: replaying a new task's changelogs into its stores before it processes.
//!
//! Each changelog is read from the task's checkpoint (or the beginning) to its end, with a
//! restore consumer that only assigns partitions and never joins the group.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::StateRestoreListener;
use crate::config::ResolvedConfig;
use crate::error::{Result, StreamsError};
use crate::task::{ChangelogPartition, StreamTask};

/// Creates the restore consumer of the stream thread `client_id`.
pub(super) fn consumer(config: &ResolvedConfig, client_id: &str) -> Result<BaseConsumer> {
    let mut cc = ClientConfig::new();
    for (k, v) in &config.consumer {
        cc.set(k, v);
    }
    cc.set("client.id", format!("{}-restore-consumer", client_id));
    cc.set("enable.partition.eof", "true");
    // Changelogs are read one partition after another to their end: a fetch the broker
    // holds for `fetch.wait.max.ms` (500 ms by default) at the end of one partition
    // would delay the next by as much.
    cc.set("fetch.wait.max.ms", "10");
    // rdkafka delivers assigned partitions' records through the group queue, so the
    // restore consumer needs a group id; it only assigns, so it never joins that group
    // and never commits.
    cc.set(
        "group.id",
        format!("{}-restore-consumer", config.application_id),
    );
    cc.create()
        .map_err(|e| StreamsError::kafka("creating the restore consumer", e))
}

/// Restores `changelogs` of `task` with `consumer`, telling `listener`; fails after `timeout`
/// without progress.
pub(super) fn changelogs(
    consumer: &BaseConsumer,
    changelogs: Vec<ChangelogPartition>,
    listener: Option<Arc<dyn StateRestoreListener>>,
    timeout: Duration,
    task: &mut StreamTask,
) -> Result<()> {
    let task_id = task.id;
    for cl in changelogs {
        let err = |message: String| StreamsError::Restore {
            task: task_id,
            store: cl.store.clone(),
            changelog: cl.topic.clone(),
            message,
        };
        let (low, high) = changelog_watermarks(consumer, &cl.topic, cl.partition)
            .map_err(|e| err(format!("reading watermarks: {e}")))?;
        let mut start = cl.checkpoint.unwrap_or(low).max(low);
        if cl.checkpoint.is_some_and(|c| c > high) {
            // The changelog is shorter than our checkpoint (it was recreated): the local
            // store cannot be trusted, rebuild it.
            tracing::warn!(task = %task.id, store = %cl.store, checkpoint = ?cl.checkpoint, high, "checkpoint beyond changelog end: restoring from scratch");
            task.clear_store(&cl.store)?;
            task.forget_checkpoint(&cl.topic, cl.partition);
            start = low;
        }
        if let Some(l) = &listener {
            l.on_restore_start(&cl.topic, cl.partition, &cl.store, start, high);
        }
        let began = Instant::now();
        let mut total = 0u64;
        if start < high {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&cl.topic, cl.partition, Offset::Offset(start))
                .map_err(|e| err(e.to_string()))?;
            consumer
                .assign(&tpl)
                .map_err(|e| err(format!("assigning: {e}")))?;
            let mut next = start;
            let mut batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(10_000);
            let mut write =
                |batch: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>, next: i64| -> Result<()> {
                    if batch.is_empty() {
                        return Ok(());
                    }
                    task.restore_batch(&cl.store, batch)?;
                    total += batch.len() as u64;
                    if let Some(l) = &listener {
                        l.on_batch_restored(
                            &cl.topic,
                            cl.partition,
                            &cl.store,
                            next,
                            batch.len() as u64,
                        );
                    }
                    batch.clear();
                    Ok(())
                };
            let mut last_progress = Instant::now();
            while next < high {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        next = m.offset() + 1;
                        last_progress = Instant::now();
                        if let Some(k) = m.key() {
                            batch.push((k.to_vec(), m.payload().map(<[u8]>::to_vec)));
                        }
                    }
                    Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "restore consumer error");
                        if last_progress.elapsed() > timeout {
                            return Err(err(format!("no progress for {timeout:?}: {e}")));
                        }
                    }
                    None => {
                        if last_progress.elapsed() > timeout {
                            return Err(err(format!(
                                "no progress for {timeout:?} at offset {next} of {high}"
                            )));
                        }
                    }
                }
                if batch.len() >= 10_000 || next >= high {
                    write(&mut batch, next)?;
                }
            }
            write(&mut batch, next)?;
            consumer
                .unassign()
                .map_err(|e| err(format!("unassigning: {e}")))?;
        }
        if total > 0 {
            // Written out now (RocksDB memtables to files), so that the memory of a restored
            // store is given back before the next one is restored.
            task.flush_store(&cl.store)?;
        }
        task.restored_to(&cl.topic, cl.partition, high);
        if total > 0 {
            tracing::info!(task = %task.id, store = %cl.store, changelog = %cl.topic, partition = cl.partition,
                start, end = high, restored = total, took_ms = began.elapsed().as_millis() as u64, "restored");
        } else {
            tracing::debug!(task = %task.id, store = %cl.store, changelog = %cl.topic, partition = cl.partition, end = high, "nothing to restore");
        }
        if let Some(l) = &listener {
            l.on_restore_end(&cl.topic, cl.partition, &cl.store, total);
        }
    }
    Ok(())
}

/// The watermarks of a changelog partition. A changelog created at start-up may have no leader
/// yet (Apache Kafka answers NOT_LEADER_OR_FOLLOWER for a moment), so errors are retried for up
/// to 30 s before they fail the restore.
fn changelog_watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
) -> std::result::Result<(i64, i64), rdkafka::error::KafkaError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(30)) {
            Ok(w) => return Ok(w),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(topic, partition, error = %e, "retrying a changelog watermark lookup");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}
