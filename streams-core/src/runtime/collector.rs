//! The stream thread's [`KafkaCollector`]: sends sink and changelog records with one rdkafka
//! producer, and tracks what the cluster acknowledged (changelog offsets for checkpoints, and the
//! first failure, which fails the thread).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::collector::RecordCollector;
use crate::config::ResolvedConfig;
use crate::error::{Result, StreamsError};
use crate::record::Headers;

/// Delivery reports, filled by the producer's polling thread.
pub(crate) struct Deliveries {
    /// Next offset per changelog partition acknowledged since the last checkpoint, by topic
    /// then partition (so that a delivery report looks up a topic without allocating).
    acked: Mutex<HashMap<String, HashMap<i32, i64>>>,
    error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
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
            Err((e, m)) => {
                let mut err = self.error.lock().unwrap_or_else(|e| e.into_inner());
                err.get_or_insert_with(|| {
                    format!("topic `{}` partition {}: {e}", m.topic(), m.partition())
                });
            }
        }
    }
}

/// Sends records of every task of one stream thread.
pub(crate) struct KafkaCollector {
    producer: ThreadedProducer<Deliveries>,
    flush_timeout: Duration,
}

impl KafkaCollector {
    pub(crate) fn new(config: &ResolvedConfig, client_id: &str) -> Result<Self> {
        let mut cc = ClientConfig::new();
        cc.set("client.id", client_id);
        for (k, v) in &config.producer {
            cc.set(k, v);
        }
        let producer = cc
            .create_with_context(Deliveries {
                acked: Mutex::new(HashMap::new()),
                error: Mutex::new(None),
            })
            .map_err(|e| StreamsError::kafka("creating the producer", e))?;
        Ok(KafkaCollector {
            producer,
            flush_timeout: config.task_timeout,
        })
    }

    /// Waits until every record sent so far is acknowledged (or failed).
    pub(crate) fn flush(&self) -> Result<()> {
        self.producer
            .flush(self.flush_timeout)
            .map_err(|e| StreamsError::kafka("flushing the producer", e))?;
        self.check()
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
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).timestamp(timestamp);
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
                Err((e, _)) => {
                    return Err(StreamsError::Production {
                        topic: topic.to_string(),
                        message: e.to_string(),
                    })
                }
            }
        }
    }

    fn fail(&self, error: StreamsError) {
        let mut err = self
            .producer
            .context()
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        err.get_or_insert_with(|| error.to_string());
    }

    fn check(&self) -> Result<()> {
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
            }),
            None => Ok(()),
        }
    }
}
