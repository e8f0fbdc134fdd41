//! AddPartitionsToTxn (v0-3, the client's form): adds partitions to the producer's open
//! transaction, starting one if needed; the answer repeats the outcome for every partition.

use super::sb;
use crate::state::BrokerState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName};
use std::sync::Arc;

/// First version that knows PRODUCER_FENCED (KIP-588).
const PRODUCER_FENCED_VERSION: i16 = 2;

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    version: i16,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let asked: Vec<(TopicName, Vec<i32>)> = req
        .v3_and_below_topics
        .into_iter()
        .map(|t| (t.name, t.partitions))
        .collect();
    // Unknown partitions fail the request as a whole, as in Kafka: the known ones are answered
    // OPERATION_NOT_ATTEMPTED.
    let unknown = |topic: &str, p: i32| {
        state
            .topics
            .get(topic)
            .and_then(|t| t.partition(p))
            .is_none()
    };
    let any_unknown = asked
        .iter()
        .any(|(t, ps)| ps.iter().any(|p| unknown(t.as_str(), *p)));
    let outcome = |topic: &str, p: i32| -> Option<ResponseError> {
        if unknown(topic, p) {
            Some(ResponseError::UnknownTopicOrPartition)
        } else {
            Some(ResponseError::OperationNotAttempted)
        }
    };
    let shared: Option<ResponseError> = if any_unknown {
        None
    } else {
        let partitions: Vec<(String, i32)> = asked
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.to_string(), *p)))
            .collect();
        let result = state
            .txns
            .add_partitions(
                req.v3_and_below_transactional_id.as_str(),
                req.v3_and_below_producer_id.0,
                req.v3_and_below_producer_epoch,
                &partitions,
                crate::util::now_ms(),
            )
            .map_err(super::storage_error)
            .and_then(|r| r);
        result
            .err()
            .map(|e| super::fenced_for_version(e, version, PRODUCER_FENCED_VERSION))
    };
    let results = asked
        .into_iter()
        .map(|(name, partitions)| {
            let results = partitions
                .iter()
                .map(|p| {
                    let error = if any_unknown {
                        outcome(name.as_str(), *p)
                    } else {
                        shared
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(super::code(error))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(TopicName(sb(name.to_string())))
                .with_results_by_partition(results)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}
