//! [`PartitionGroup`]: a task's per-partition record queues, drained smallest timestamp first.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;

use crate::error::{Result, StreamsError};
use crate::handlers::{ErrorHandlerContext, ErrorHandlers, HandlerResponse};
use crate::record::{RecordBytes, SourceBytes};
use crate::task_id::TaskId;
use crate::topology::{DecodeError, NodeKind, SourceDecoder, Subtopology, Topology};

struct Queued {
    /// `None`: skipped by the deserialization handler; kept so offsets advance in order.
    payload: Option<Box<dyn Any + Send>>,
    timestamp: i64,
    offset: i64,
    /// The record's headers and (with a dead-letter topic) bytes, for the exception handlers;
    /// `None` for a record without headers when no dead-letter topic is set.
    source: Option<Box<SourceBytes>>,
    /// Why the deserialization handler skipped it.
    skipped: Option<Box<StreamsError>>,
}

struct RecordQueue {
    topic: Arc<str>,
    partition: i32,
    source_node: usize,
    source_name: Arc<str>,
    decoder: SourceDecoder,
    records: VecDeque<Queued>,
    /// Largest timestamp queued so far in this partition.
    partition_time: i64,
    /// Next offset to commit: past the last record taken (processed or skipped).
    next_offset: Option<i64>,
    /// Where reading started, when known (before the first record arrives).
    start: Option<i64>,
    /// The partition's high watermark as last seen by the consumer.
    high_watermark: Option<i64>,
    /// KIP-695: until when an empty partition fetched to its end holds the task back.
    idle_deadline: Option<i64>,
    /// An empty partition's lag as first seen (offset after the last record, high watermark)
    /// and when: a lag that does not move for `STUCK_LAG_MS` is made of transaction markers or
    /// aborted records, which never reach the queue.
    lag_seen: Option<(i64, i64, i64)>,
}

/// How long an empty partition's lag may stay exactly the same before it counts as fetched to
/// its end. librdkafka hands out no control records (transaction markers), so a partition
/// whose log ends with one looks one record behind for ever; a real lag moves within a fetch
/// round trip (`fetch.wait.max.ms`, 500 ms by default).
const STUCK_LAG_MS: i64 = 1_000;

/// Whether a task may take its next record (Kafka Streams' KIP-695).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Every partition has records, or is known to have none to fetch.
    Ready,
    /// An empty partition has records on the cluster (or may have: its lag is not known yet),
    /// and `max.task.idle.ms` has not passed: taking the smallest timestamp now could break
    /// timestamp order across partitions.
    Wait,
    /// As `Wait`, but `max.task.idle.ms` has passed: processing goes on without that partition
    /// (Kafka Streams' enforced processing).
    Enforced,
}

/// The next record a task processes.
pub(crate) struct Next {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) payload: Option<Box<dyn Any + Send>>,
    pub(crate) source_node: usize,
    pub(crate) source: Option<Box<SourceBytes>>,
    /// Set when the deserialization handler skipped the record (`payload` is `None`).
    pub(crate) skipped: Option<Box<StreamsError>>,
}

/// The input queues of one task, one per source topic partition.
pub(crate) struct PartitionGroup {
    queues: Vec<RecordQueue>,
    total: usize,
    task: TaskId,
    /// Keep each record's bytes (a dead-letter topic is set).
    keep_bytes: bool,
}

impl PartitionGroup {
    pub(crate) fn new(
        topology: &Topology,
        sub: &Subtopology,
        partition: i32,
        application_id: &str,
        keep_bytes: bool,
    ) -> Self {
        let mut queues = Vec::new();
        for &i in &sub.nodes {
            if let NodeKind::Source { topics, decoder } = &topology.nodes[i].kind {
                for t in topics {
                    queues.push(RecordQueue {
                        topic: topology.physical_topic(application_id, t).into(),
                        partition,
                        source_node: i,
                        source_name: topology.nodes[i].name.as_str().into(),
                        decoder: decoder.clone(),
                        records: VecDeque::new(),
                        partition_time: -1,
                        next_offset: None,
                        start: None,
                        high_watermark: None,
                        idle_deadline: None,
                        lag_seen: None,
                    });
                }
            }
        }
        PartitionGroup {
            queues,
            total: 0,
            task: TaskId {
                subtopology: sub.id,
                partition,
            },
            keep_bytes,
        }
    }

    pub(crate) fn partitions(&self) -> Vec<(String, i32)> {
        self.queues
            .iter()
            .map(|q| (q.topic.to_string(), q.partition))
            .collect()
    }

    /// Offsets to commit: (topic, partition, next offset) of each partition that moved.
    pub(crate) fn offsets(&self) -> Vec<(String, i32, i64)> {
        self.queues
            .iter()
            .filter_map(|q| Some((q.topic.to_string(), q.partition, q.next_offset?)))
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.total
    }

    /// Each partition with its lag (high watermark minus the offset after the last record
    /// fetched), where both are known.
    pub(crate) fn lags(&self) -> impl Iterator<Item = (&Arc<str>, i32, i64)> {
        self.queues.iter().filter_map(|q| {
            let next = q
                .records
                .back()
                .map(|r| r.offset + 1)
                .or(q.next_offset)
                .or(q.start)?;
            Some((&q.topic, q.partition, (q.high_watermark? - next).max(0)))
        })
    }

    /// The partitions whose position is not known: none of their records was fetched, and
    /// where reading starts was not looked up.
    pub(crate) fn unpositioned(&self) -> impl Iterator<Item = (&Arc<str>, i32)> {
        self.queues
            .iter()
            .filter(|q| q.records.is_empty() && q.next_offset.is_none() && q.start.is_none())
            .map(|q| (&q.topic, q.partition))
    }

    /// Each partition with the number of records queued.
    pub(crate) fn lengths(&self) -> impl Iterator<Item = (&Arc<str>, i32, usize)> {
        self.queues
            .iter()
            .map(|q| (&q.topic, q.partition, q.records.len()))
    }

    /// Notes what the consumer knows of partition (`topic`, `partition`): where reading starts
    /// (at assignment) and its high watermark.
    pub(crate) fn note_position(
        &mut self,
        topic: &str,
        partition: i32,
        start: Option<i64>,
        high_watermark: Option<i64>,
    ) {
        if let Some(q) = self
            .queues
            .iter_mut()
            .find(|q| &*q.topic == topic && q.partition == partition)
        {
            q.start = start.or(q.start);
            q.high_watermark = high_watermark.or(q.high_watermark);
        }
    }

    /// Whether the next record may be taken at `now_ms`, by Kafka Streams' KIP-695 rule for an
    /// empty partition: while its lag is not known, or records are known to be on the cluster
    /// for it, the task waits for them; once it is known to be fetched to its end, the task
    /// waits `max_idle_ms` more for new records to show up, then goes on without it (enforced
    /// processing). `-1`: never wait. A task of one partition never waits: it has no order to
    /// keep across partitions.
    pub(crate) fn readiness(
        &mut self,
        now_ms: impl FnOnce() -> i64,
        max_idle_ms: i64,
    ) -> Readiness {
        if self.queues.len() < 2 || max_idle_ms < 0 {
            return Readiness::Ready;
        }
        // The clock is read only here: the common task of one partition never waits.
        let now_ms = now_ms();
        let mut enforced = false;
        for q in &mut self.queues {
            if !q.records.is_empty() {
                q.idle_deadline = None;
                q.lag_seen = None;
                continue;
            }
            let next = q.next_offset.or(q.start);
            let mut lag = match (q.high_watermark, next) {
                (Some(h), Some(n)) => Some(h - n),
                _ => None,
            };
            if let (Some(l), Some(h), Some(n)) = (lag, q.high_watermark, next) {
                if l > 0 {
                    match q.lag_seen {
                        Some((n0, h0, since)) if (n0, h0) == (n, h) => {
                            if now_ms.saturating_sub(since) >= STUCK_LAG_MS {
                                lag = Some(0);
                            }
                        }
                        _ => q.lag_seen = Some((n, h, now_ms)),
                    }
                }
            }
            match lag {
                // Not known yet (no fetch response seen), or records on their way: wait.
                None => {
                    q.idle_deadline = None;
                    return Readiness::Wait;
                }
                Some(l) if l > 0 => {
                    q.idle_deadline = None;
                    return Readiness::Wait;
                }
                // Fetched to its end: wait `max.task.idle.ms` for more, then go on.
                Some(_) => {
                    let deadline = *q
                        .idle_deadline
                        .get_or_insert(now_ms.saturating_add(max_idle_ms));
                    if now_ms < deadline {
                        return Readiness::Wait;
                    }
                    enforced = true;
                }
            }
        }
        if enforced {
            Readiness::Enforced
        } else {
            Readiness::Ready
        }
    }

    /// Decodes and queues one record. One that does not decode fails here, or is queued as
    /// skipped when the deserialization handler continues (so that offsets move past it in
    /// order, and it is dead-lettered and counted when its turn comes).
    /// Returns how many records the partition then holds.
    pub(crate) fn add(&mut self, raw: RecordBytes<'_>, handlers: &ErrorHandlers) -> Result<usize> {
        let q = self
            .queues
            .iter_mut()
            .find(|q| *q.topic == *raw.topic && q.partition == raw.partition)
            .ok_or_else(|| {
                StreamsError::illegal_state(format!("task {}", self.task), format!(
                    "record of topic `{}` partition {} offset {} given to a task that does not read it",
                    raw.topic, raw.partition, raw.offset
                ))
            })?;
        self.total += 1;
        let (topic, partition, offset, raw_ts) =
            (raw.topic, raw.partition, raw.offset, raw.timestamp);
        // Copied only when a handler may need them: headers are usually absent, and the bytes
        // are kept only for a dead-letter topic.
        let source = (self.keep_bytes || !raw.headers.is_empty()).then(|| {
            Box::new(SourceBytes {
                headers: raw.headers.clone(),
                key: raw.key.filter(|_| self.keep_bytes).map(<[u8]>::to_vec),
                value: raw.value.filter(|_| self.keep_bytes).map(<[u8]>::to_vec),
            })
        });
        match (q.decoder)(raw, q.partition_time) {
            Ok((payload, ts)) => {
                if ts < 0 {
                    return Err(StreamsError::InvalidTimestamp {
                        timestamp: ts,
                        topic: topic.to_string(),
                        partition,
                        offset,
                    });
                }
                q.partition_time = q.partition_time.max(ts);
                q.records.push_back(Queued {
                    payload: Some(payload),
                    timestamp: ts,
                    offset,
                    source,
                    skipped: None,
                });
                Ok(q.records.len())
            }
            Err(e) => {
                let (part, source_error) = match e {
                    DecodeError::Key(s) => ("key", s),
                    DecodeError::Value(s) => ("value", s),
                };
                let error = StreamsError::Deserialization {
                    part,
                    topic: topic.to_string(),
                    partition,
                    offset,
                    source: source_error,
                };
                let no_headers = Vec::new();
                let context = ErrorHandlerContext {
                    topic: Some(topic),
                    partition: Some(partition),
                    offset: Some(offset),
                    timestamp: raw_ts,
                    headers: source.as_ref().map_or(&no_headers, |s| &s.headers),
                    processor_node_id: &q.source_name,
                    task_id: self.task,
                    source_raw_key: source.as_ref().and_then(|s| s.key.as_deref()),
                    source_raw_value: source.as_ref().and_then(|s| s.value.as_deref()),
                };
                match handlers.deserialization.handle(&context, &error) {
                    HandlerResponse::Fail => Err(error),
                    HandlerResponse::Continue => {
                        q.records.push_back(Queued {
                            payload: None,
                            timestamp: q.partition_time.max(0),
                            offset,
                            source,
                            skipped: Some(Box::new(error)),
                        });
                        Ok(q.records.len())
                    }
                }
            }
        }
    }

    /// The smallest timestamp among the head records of the partitions (the next record's).
    pub(crate) fn head_timestamp(&self) -> Option<i64> {
        self.queues
            .iter()
            .filter_map(|q| q.records.front().map(|r| r.timestamp))
            .min()
    }

    /// The largest timestamp queued in the partitions that hold records: how far this task's
    /// input is known.
    pub(crate) fn queued_until(&self) -> Option<i64> {
        self.queues
            .iter()
            .filter(|q| !q.records.is_empty())
            .map(|q| q.partition_time)
            .max()
    }

    /// Takes the head record with the smallest timestamp across the partitions.
    pub(crate) fn next(&mut self) -> Option<Next> {
        let q = self
            .queues
            .iter_mut()
            .filter(|q| !q.records.is_empty())
            .min_by_key(|q| q.records.front().map(|r| r.timestamp))?;
        let r = q.records.pop_front()?;
        q.next_offset = Some(r.offset + 1);
        q.high_watermark = q.high_watermark.map(|h| h.max(r.offset + 1));
        self.total -= 1;
        Some(Next {
            topic: q.topic.clone(),
            partition: q.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            payload: r.payload,
            source_node: q.source_node,
            source: r.source,
            skipped: r.skipped,
        })
    }
}
