//! Fetch: long-polls until `min_bytes` are available or `max_wait_ms` passes, waking on every
//! append; returns whole stored batches (at least one per partition with data, even above the
//! size limits) and answers every requested partition. `read_committed` fetches stop at the
//! last stable offset and list the aborted transactions that overlap what they return, so the
//! client can drop those records.

use crate::state::BrokerState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Longest wait honoured, whatever the client asks, so a stuck request cannot pin a connection.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

pub(crate) async fn handle(
    state: &Arc<BrokerState>,
    _version: i16,
    req: FetchRequest,
) -> FetchResponse {
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + wait;
    loop {
        // Register interest before looking, so an append between the look and the wait still
        // wakes us.
        let notified = state.appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (response, bytes, errors) = read_all(state, &req);
        if bytes >= req.min_bytes.max(0) as usize || errors || Instant::now() >= deadline {
            return response;
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// One pass over every requested partition: the response, bytes of records in it, and whether
/// any partition has an error (which makes Kafka answer at once).
fn read_all(state: &BrokerState, req: &FetchRequest) -> (FetchResponse, usize, bool) {
    let mut budget = req.max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut errors = false;
    let read_committed = req.isolation_level == 1;
    let responses = req
        .topics
        .iter()
        .map(|ft| {
            let topic = if ft.topic.is_empty() {
                state.topics.get_by_id(ft.topic_id)
            } else {
                state.topics.get(ft.topic.as_str())
            };
            let partitions = ft
                .partitions
                .iter()
                .map(|fp| {
                    let mut pd = PartitionData::default()
                        .with_partition_index(fp.partition)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_preferred_read_replica(BrokerId(-1))
                        .with_aborted_transactions(read_committed.then(Vec::new))
                        // librdkafka rejects the whole response if any records field is null.
                        .with_records(Some(bytes::Bytes::new()));
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(fp.partition))
                    else {
                        errors = true;
                        return pd.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let Ok(log) = partition.lock_log() else {
                        errors = true;
                        return pd.with_error_code(ResponseError::KafkaStorageError.code());
                    };
                    let hwm = log.next_offset();
                    let lso = log.last_stable_offset();
                    pd.high_watermark = hwm;
                    pd.last_stable_offset = lso;
                    pd.log_start_offset = log.log_start_offset();
                    let end = if read_committed { lso } else { hwm };
                    // Always allow one whole batch for the first partition with data, as Kafka
                    // does, so an oversized batch can never block a consumer.
                    let limit = (fp.partition_max_bytes.max(0) as usize).min(budget);
                    let limit = if total == 0 { limit.max(1) } else { limit };
                    if limit == 0 {
                        return pd;
                    }
                    match log.read_below(fp.fetch_offset, limit, end) {
                        Ok(Ok(records)) => {
                            if total > 0 && records.len() > limit {
                                return pd;
                            }
                            if read_committed && !records.is_empty() {
                                let upto = crate::log::batch::end_offset(&records);
                                pd.aborted_transactions = Some(
                                    log.aborted_transactions(fp.fetch_offset, upto)
                                        .into_iter()
                                        .map(|(producer_id, first_offset)| {
                                            AbortedTransaction::default()
                                                .with_producer_id(ProducerId(producer_id))
                                                .with_first_offset(first_offset)
                                        })
                                        .collect(),
                                );
                            }
                            total += records.len();
                            budget = budget.saturating_sub(records.len());
                            pd.with_records(Some(records.into()))
                        }
                        Ok(Err(e)) => {
                            errors = true;
                            pd.with_error_code(e.code())
                        }
                        Err(e) => {
                            errors = true;
                            pd.with_error_code(super::storage_error(e).code())
                        }
                    }
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(ft.topic.clone())
                .with_topic_id(ft.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    (
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(responses),
        total,
        errors,
    )
}
