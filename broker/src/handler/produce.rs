//! Produce: validates each partition's batch (CRC, size, keys on compacted topics, idempotent
//! sequence; for a transactional batch, that its partition is in the producer's open
//! transaction), assigns offsets, appends it and wakes waiting fetches. acks=0 gets no response
//! at all.

use crate::log::batch::{self, BatchHeader};
use crate::log::SequenceCheck;
use crate::state::BrokerState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use std::sync::Arc;

/// First version of Produce whose response carries per-record errors (KIP-467).
const RECORD_ERRORS_VERSION: i16 = 8;

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    version: i16,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let valid_acks = matches!(acks, -1..=1);
    let fsync = state.fsync_for(acks);
    let mut appended = false;
    let responses = req
        .topic_data
        .into_iter()
        .map(|topic_data| {
            let topic = state.topics.get(topic_data.name.as_str());
            let partition_responses = topic_data
                .partition_data
                .into_iter()
                .map(|pd| {
                    let mut resp = PartitionProduceResponse::default()
                        .with_index(pd.index)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1);
                    if !valid_acks {
                        return resp.with_error_code(ResponseError::InvalidRequiredAcks.code());
                    }
                    let Some(topic) = &topic else {
                        return resp.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let Some(partition) = topic.partition(pd.index) else {
                        return resp.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let Some(records) = pd.records else {
                        return resp.with_error_code(ResponseError::InvalidRecord.code());
                    };
                    // A topic override wins; otherwise the broker's message.max.bytes.
                    let max = topic
                        .config_override("max.message.bytes")
                        .and_then(|v| v.parse::<i64>().ok())
                        .unwrap_or(state.config.max_message_bytes as i64);
                    let header = match batch::validate_batch(&records, max.max(0) as usize) {
                        Ok(h) => h,
                        Err(e) => {
                            tracing::debug!(topic = %topic.name, partition = pd.index, error = %e, "rejected batch");
                            return resp.with_error_code(e.code());
                        }
                    };
                    if topic.is_compacted() {
                        if let Some(errors) = keyless_records(&records, &topic.name, pd.index) {
                            tracing::debug!(topic = %topic.name, partition = pd.index, keyless = errors.len(), "rejected keyless records on a compacted topic");
                            resp.error_code = ResponseError::InvalidRecord.code();
                            if version >= RECORD_ERRORS_VERSION {
                                resp.error_message = Some(super::sb("One or more records have been rejected"));
                                resp.record_errors = errors;
                            }
                            return resp;
                        }
                    }
                    if header.is_control() {
                        // Only the transaction coordinator writes markers.
                        return resp.with_error_code(ResponseError::InvalidRecord.code());
                    }
                    let mut log = match partition.lock_log() {
                        Ok(log) => log,
                        Err(e) => {
                            let resp = resp.with_error_code(ResponseError::KafkaStorageError.code());
                            return if version >= RECORD_ERRORS_VERSION {
                                resp.with_error_message(Some(super::sb(e.to_string())))
                            } else {
                                resp
                            };
                        }
                    };
                    resp.log_start_offset = log.log_start_offset();
                    if header.is_transactional() {
                        // Asked under the log's lock: a transaction cannot end (its marker
                        // needs this lock) between this check and the append, so no batch can
                        // land after its transaction's marker.
                        if let Err(e) = state.txns.verify_produce(header.producer_id, header.producer_epoch, &topic.name, pd.index) {
                            tracing::debug!(topic = %topic.name, partition = pd.index, producer_id = header.producer_id, error = ?e, "refused transactional batch");
                            return resp.with_error_code(e.code());
                        }
                    }
                    match append(&mut log, &header, &records, fsync) {
                        Ok(base) => {
                            appended = true;
                            resp.with_base_offset(base)
                        }
                        Err(e) => resp.with_error_code(e.code()),
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partition_responses)
        })
        .collect();
    if appended {
        state.appended.notify_waiters();
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

fn append(
    log: &mut crate::log::PartitionLog,
    header: &BatchHeader,
    records: &[u8],
    fsync: bool,
) -> Result<i64, ResponseError> {
    match log.check_sequence(header)? {
        SequenceCheck::Duplicate(base) => Ok(base),
        SequenceCheck::Append => {
            // Patch our own copy: the request buffer is shared and immutable.
            let mut batch = records.to_vec();
            log.append(&mut batch, fsync).map_err(super::storage_error)
        }
    }
}

/// The records of a batch without a key, which a compacted topic refuses (as Kafka does), as
/// KIP-467 record errors; `None` when every record has one. Compressed batches are not looked
/// into: the broker has no compression codecs and stores them as sent.
fn keyless_records(
    batch: &[u8],
    topic: &str,
    partition: i32,
) -> Option<Vec<BatchIndexAndErrorMessage>> {
    let records = crate::log::compaction::records(batch)?;
    let errors: Vec<BatchIndexAndErrorMessage> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.key.is_none())
        .map(|(i, _)| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(i as i32)
                .with_batch_index_error_message(Some(super::sb(format!(
                    "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
                ))))
        })
        .collect();
    (!errors.is_empty()).then_some(errors)
}
