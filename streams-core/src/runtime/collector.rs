//! The stream thread's [`KafkaCollector`]: sends sink and changelog records with one rdkafka
//! producer, and tracks what the cluster acknowledged (changelog offsets for checkpoints, and the
//! first failure, which fails the thread).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::collector::RecordCollector;
use crate::config::ResolvedConfig;
use crate::error::{Result, StreamsError};
use crate::handlers::{
    dead_letter_record, ErrorHandlerContext, ErrorHandlers, ProducedRecord, ProductionResponse,
};
use crate::record::Headers;
use crate::task_id::TaskId;

/// A record the stream thread sends at its next check: a retry, or a dead-letter record of a
/// send that failed after its task moved on (the delivery report's thread cannot send).
struct Resend {
    topic: String,
    partition: Option<i32>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: i64,
    headers: Headers,
}

/// Delivery reports, filled by the producer's polling thread.
pub(crate) struct Deliveries {
    /// Next offset per changelog partition acknowledged since the last checkpoint, by topic
    /// then partition (so that a delivery report looks up a topic without allocating).
    acked: Mutex<HashMap<String, HashMap<i32, i64>>>,
    error: Mutex<Option<String>>,
    handlers: ErrorHandlers,
    resend: Mutex<Vec<Resend>>,
    /// Under exactly-once: why the open transaction cannot commit, once librdkafka has put it
    /// in its abortable error state (records purged, sends refused). The next commit aborts
    /// it, and the tasks start again from the last commit; it is no failure of the thread.
    doomed: Mutex<Option<String>>,
    transactional: bool,
}

/// Whether the cluster may take a record it refused if it is sent again.
pub(crate) fn retriable(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(
            MessageTimedOut
                | RequestTimedOut
                | NotEnoughReplicas
                | NotEnoughReplicasAfterAppend
                | LeaderNotAvailable
                | NotLeaderForPartition
                | NetworkException
                | BrokerNotAvailable
                | AllBrokersDown
                | BrokerTransportFailure
                | QueueFull
        )
    )
}

/// The task a record was sent for, carried through the producer as the delivery opaque.
fn task_opaque(task: TaskId) -> usize {
    ((task.subtopology as u64) << 32 | task.partition as u32 as u64) as usize
}

fn opaque_task(opaque: usize) -> TaskId {
    let v = opaque as u64;
    TaskId {
        subtopology: (v >> 32) as u32 as _,
        partition: v as u32 as i32,
    }
}

impl Deliveries {
    fn doom(&self, why: String) {
        let mut doomed = self.doomed.lock().unwrap_or_else(|e| e.into_inner());
        doomed.get_or_insert(why);
    }

    fn fail(&self, message: String) {
        let mut err = self.error.lock().unwrap_or_else(|e| e.into_inner());
        err.get_or_insert(message);
    }

    /// A sink record the cluster refused: the production handler drops it (dead-lettering it),
    /// has it sent again, or fails the thread. Changelog and dead-letter writes always fail.
    fn refused(&self, e: &KafkaError, m: &rdkafka::message::BorrowedMessage<'_>, task: TaskId) {
        let topic = m.topic();
        let failed = || format!("topic `{topic}` partition {}: {e}", m.partition());
        if topic.ends_with("-changelog")
            || self.handlers.dead_letter_topic.as_deref() == Some(topic)
        {
            return self.fail(failed());
        }
        let headers: Headers = m
            .headers()
            .map(|h| {
                rdkafka::message::Headers::iter(h)
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        let timestamp = m.timestamp().to_millis().unwrap_or(-1);
        let error = StreamsError::Production {
            topic: topic.to_string(),
            message: format!("partition {}: {e}", m.partition()),
            retriable: retriable(e),
        };
        let context = ErrorHandlerContext {
            topic: None,
            partition: None,
            offset: None,
            timestamp,
            headers: &headers,
            processor_node_id: "",
            task_id: task,
            source_raw_key: None,
            source_raw_value: None,
        };
        let record = ProducedRecord {
            topic,
            partition: Some(m.partition()),
            key: m.key(),
            value: m.payload(),
            timestamp,
        };
        let again = |topic: &str, headers: Headers| Resend {
            topic: topic.to_string(),
            partition: None,
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            timestamp,
            headers,
        };
        let mut resend = self.resend.lock().unwrap_or_else(|e| e.into_inner());
        match self.handlers.production.handle(&context, &record, &error) {
            ProductionResponse::Continue => {
                if let Some(dlq) = &self.handlers.dead_letter_topic {
                    resend.push(again(dlq, dead_letter_record(&context, &error, None)));
                }
            }
            ProductionResponse::Retry if error.is_retriable() => {
                let mut r = again(topic, headers.clone());
                r.partition = Some(m.partition());
                resend.push(r);
            }
            ProductionResponse::Retry | ProductionResponse::Fail => self.fail(failed()),
        }
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, task: usize) {
        match result {
            Ok(m) => {
                if m.topic().ends_with("-changelog") {
                    let mut acked = self.acked.lock().unwrap_or_else(|e| e.into_inner());
                    let parts = match acked.get_mut(m.topic()) {
                        Some(p) => p,
                        None => acked.entry(m.topic().to_string()).or_default(),
                    };
                    let next = parts.entry(m.partition()).or_insert(0);
                    *next = (*next).max(m.offset() + 1);
                }
            }
            Err((
                KafkaError::MessageProduction(
                    code @ (RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight),
                ),
                _,
            )) if self.transactional => {
                // librdkafka purges a failed transaction's records: they were never to commit.
                self.doom(format!("its records were purged ({code:?})"));
            }
            Err((e, m)) => self.refused(e, m, opaque_task(task)),
        }
    }
}

/// Sends records of every task of one stream thread.
pub(crate) struct KafkaCollector {
    producer: Arc<ThreadedProducer<Deliveries>>,
    flush_timeout: Duration,
    /// Under exactly-once: how long sending the input offsets may take (the transaction
    /// timeout: past it the coordinator aborts the transaction anyway).
    offsets_deadline: Duration,
    /// Why the producer must be replaced although librdkafka reports no fatal error (a call
    /// into it that never returned; see `txn::send_offsets_within`).
    stuck: Mutex<Option<String>>,
    /// Under exactly-once: the producer's `transactional.id`; a transaction is always open.
    transactional_id: Option<String>,
    /// The task whose records are being sent (see `RecordCollector::set_task`).
    current_task: AtomicU64,
}

/// How an exactly-once commit ended.
#[derive(Debug)]
pub(crate) enum TxnOutcome {
    /// The transaction, input offsets included, is committed; the next one is open.
    Committed,
    /// The transaction was aborted (a rebalance fenced its offsets, or the broker refused
    /// it); the next one is open. What the tasks did since the last commit is undone on the
    /// cluster, so their local state must be rebuilt.
    Aborted(String),
}

impl KafkaCollector {
    /// A producer; a transactional one (initialized, with a transaction open) if
    /// `transactional_id` is given.
    pub(crate) fn new(
        config: &ResolvedConfig,
        client_id: &str,
        transactional_id: Option<String>,
    ) -> Result<Self> {
        let mut cc = ClientConfig::new();
        cc.set("client.id", client_id);
        for (k, v) in &config.producer {
            cc.set(k, v);
        }
        if let Some(id) = &transactional_id {
            cc.set("transactional.id", id);
        }
        let producer = cc
            .create_with_context(Deliveries {
                acked: Mutex::new(HashMap::new()),
                error: Mutex::new(None),
                handlers: config.handlers.clone(),
                resend: Mutex::new(Vec::new()),
                doomed: Mutex::new(None),
                transactional: transactional_id.is_some(),
            })
            .map_err(|e| StreamsError::kafka("creating the producer", e))?;
        let offsets_deadline = config
            .producer
            .get("transaction.timeout.ms")
            .and_then(|ms| ms.parse().ok())
            .map_or(config.task_timeout, Duration::from_millis)
            .min(config.task_timeout);
        let collector = KafkaCollector {
            producer: Arc::new(producer),
            flush_timeout: config.task_timeout,
            offsets_deadline,
            stuck: Mutex::new(None),
            transactional_id,
            current_task: AtomicU64::new(0),
        };
        if let Some(id) = &collector.transactional_id {
            // Fences an older producer with the same id (a zombie of this thread) and aborts
            // what it left open.
            collector
                .producer
                .init_transactions(config.task_timeout)
                .map_err(|e| {
                    StreamsError::kafka(format!("initializing transactions of `{id}`"), e)
                })?;
            collector.begin()?;
        }
        Ok(collector)
    }

    fn begin(&self) -> Result<()> {
        self.producer.begin_transaction().map_err(|e| {
            StreamsError::kafka(
                format!(
                    "beginning a transaction of `{}`",
                    self.transactional_id.as_deref().unwrap_or("")
                ),
                e,
            )
        })
    }

    /// The exactly-once commit: the input `offsets` go into the open transaction with the
    /// member's generation (a member that lost it is fenced), the transaction commits, and the
    /// next one opens. An abortable failure aborts and says why; anything else (fenced by
    /// another producer with our id, a fatal producer error, a call that never returned) is an
    /// error: the thread replaces the producer when [`Self::must_replace`] says so and stops
    /// on anything else.
    pub(crate) fn commit_transaction(
        &self,
        offsets: &[(String, i32, i64)],
        member: &super::txn::GroupMember<'_>,
    ) -> Result<TxnOutcome> {
        let id = self.transactional_id.as_deref().unwrap_or("");
        let doomed = self
            .producer
            .context()
            .doomed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(why) = doomed {
            return self.abort(format!("the transaction failed before its commit: {why}"));
        }
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (topic, p, o) in offsets {
            tpl.add_partition_offset(topic, *p, rdkafka::Offset::Offset(*o))
                .map_err(|e| {
                    StreamsError::kafka(format!("committing `{topic}` partition {p}"), e)
                })?;
        }
        if tpl.count() > 0 {
            let Some(sent) = super::txn::send_offsets_within(
                &self.producer,
                &tpl,
                member,
                self.offsets_deadline,
            ) else {
                let why = format!(
                    "sending the input offsets did not return within {} ms (librdkafka lost \
                     track of the group coordinator)",
                    self.offsets_deadline.as_millis()
                );
                *self.stuck.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
                return Err(StreamsError::Production {
                    topic: format!("<transaction `{id}`>"),
                    message: why,
                    retriable: false,
                });
            };
            if let Err(e) = sent {
                if !e.abortable {
                    return Err(StreamsError::Production {
                        topic: format!("<transaction `{id}`>"),
                        message: format!("sending the input offsets: {e}"),
                        retriable: false,
                    });
                }
                return self.abort(format!("sending the input offsets: {e}"));
            }
        }
        match self.producer.commit_transaction(self.flush_timeout) {
            Ok(()) => {
                self.begin()?;
                Ok(TxnOutcome::Committed)
            }
            Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                self.abort(format!("committing: {e}"))
            }
            Err(e) => Err(StreamsError::kafka(
                format!("committing transaction `{id}`"),
                e,
            )),
        }
    }

    /// Under exactly-once, why the producer must be replaced, if it must: it was fenced
    /// (another producer with its transactional id started, a newer instance of this thread, or
    /// the coordinator aborted its transaction for running past `transaction.timeout.ms` and
    /// bumped its epoch), or a call into it never returned. librdkafka makes fencing a fatal
    /// error of this producer; Kafka Streams treats it as a task migration (close the tasks
    /// dirty, new producer, rejoin), not as the end of the instance.
    pub(crate) fn must_replace(&self) -> Option<String> {
        use rdkafka::types::RDKafkaErrorCode as Code;
        self.transactional_id.as_ref()?;
        if let Some(why) = self.stuck.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Some(why);
        }
        let (code, reason) = self.producer.client().fatal_error()?;
        matches!(
            code,
            Code::Fenced | Code::ProducerFenced | Code::InvalidProducerEpoch
        )
        .then(|| format!("{code:?}: {reason}"))
    }

    /// Aborts the open transaction (its tasks closed without committing) and opens the next.
    pub(crate) fn abort_open(&self) -> Result<()> {
        self.abort("the tasks were closed without committing".into())
            .map(|_| ())
    }

    /// Aborts the open transaction and opens the next; forgets what the aborted one sent.
    fn abort(&self, why: String) -> Result<TxnOutcome> {
        let id = self.transactional_id.as_deref().unwrap_or("");
        tracing::warn!(transactional_id = id, reason = %why, "aborting the transaction");
        self.producer
            .abort_transaction(self.flush_timeout)
            .map_err(|e| StreamsError::kafka(format!("aborting transaction `{id}`"), e))?;
        let ctx = self.producer.context();
        // The aborted records' delivery reports (purged) are not failures of the next one.
        ctx.error.lock().unwrap_or_else(|e| e.into_inner()).take();
        ctx.acked.lock().unwrap_or_else(|e| e.into_inner()).clear();
        ctx.resend.lock().unwrap_or_else(|e| e.into_inner()).clear();
        ctx.doomed.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.begin()?;
        Ok(TxnOutcome::Aborted(why))
    }

    /// Waits until every record sent so far is acknowledged (or failed), the retries and
    /// dead-letter records that failures asked for included.
    pub(crate) fn flush(&self) -> Result<()> {
        loop {
            self.producer
                .flush(self.flush_timeout)
                .map_err(|e| StreamsError::kafka("flushing the producer", e))?;
            if !self.send_pending()? {
                return self.check();
            }
        }
    }

    /// Sends what delivery reports asked to send; whether there was anything.
    fn send_pending(&self) -> Result<bool> {
        let pending = std::mem::take(
            &mut *self
                .producer
                .context()
                .resend
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        let any = !pending.is_empty();
        for r in pending {
            self.send(
                &r.topic,
                r.partition,
                r.key.as_deref(),
                r.value.as_deref(),
                r.timestamp,
                &r.headers,
            )?;
        }
        Ok(any)
    }

    /// Changelog offsets acknowledged since the last call.
    pub(crate) fn take_acked(&self) -> HashMap<(String, i32), i64> {
        let mut acked = self
            .producer
            .context()
            .acked
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut out = HashMap::new();
        for (topic, parts) in acked.iter_mut() {
            for (p, off) in parts.drain() {
                out.insert((topic.clone(), p), off);
            }
        }
        out
    }
}

impl RecordCollector for KafkaCollector {
    fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
        headers: &Headers,
    ) -> Result<()> {
        let task = self.current_task.load(Ordering::Relaxed) as usize;
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, task).timestamp(timestamp);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        if !headers.is_empty() {
            let mut h = OwnedHeaders::new_with_capacity(headers.len());
            for (k, v) in headers {
                h = h.insert(Header {
                    key: k,
                    value: v.as_deref(),
                });
            }
            record = record.headers(h);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The local queue is full: the producer's thread drains it as the cluster
                    // acknowledges; wait a little rather than fail.
                    record = r;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::State), _))
                    if self.transactional_id.is_some() =>
                {
                    // The transaction is in librdkafka's abortable error state and takes no
                    // more records; the record would have been part of it, so it goes with it.
                    self.producer
                        .context()
                        .doom("librdkafka refuses sends to it (erroneous state)".into());
                    return Ok(());
                }
                Err((e, _)) => {
                    return Err(StreamsError::Production {
                        topic: topic.to_string(),
                        message: e.to_string(),
                        retriable: retriable(&e),
                    })
                }
            }
        }
    }

    fn set_task(&self, task: TaskId) {
        self.current_task
            .store(task_opaque(task) as u64, Ordering::Relaxed);
    }

    fn fail(&self, error: StreamsError) {
        self.producer.context().fail(error.to_string());
    }

    fn check(&self) -> Result<()> {
        self.send_pending()?;
        match &*self
            .producer
            .context()
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
        {
            Some(e) => Err(StreamsError::Production {
                topic: "<delivery report>".into(),
                message: e.clone(),
                retriable: false,
            }),
            None => Ok(()),
        }
    }
}
