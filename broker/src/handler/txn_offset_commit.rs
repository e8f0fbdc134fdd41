//! TxnOffsetCommit: stages a consumer group's offsets in the producer's open transaction; they
//! become the group's committed offsets only when the transaction commits. From v3 the group
//! fields are checked (KIP-447): a zombie of an older generation cannot commit.

use super::sb;
use crate::group::offsets::Committed;
use crate::state::BrokerState;
use crate::txn::state::PendingOffset;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use std::sync::Arc;

/// Per partition: the offset to stage, or the error to report.
type PartitionResult = super::PartitionOutcome<PendingOffset>;

/// First version that knows PRODUCER_FENCED (KIP-588).
const PRODUCER_FENCED_VERSION: i16 = 3;
/// Kafka's offset.metadata.max.bytes default.
const MAX_METADATA_BYTES: usize = 4096;

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    version: i16,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let group = req.group_id.to_string();
    let mut results: Vec<(TopicName, Vec<PartitionResult>)> = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = state.topics.get(t.name.as_str());
            let parts = t
                .partitions
                .into_iter()
                .map(|p| {
                    let known = topic
                        .as_ref()
                        .and_then(|t| t.partition(p.partition_index))
                        .is_some();
                    let result = if !known {
                        Err(ResponseError::UnknownTopicOrPartition)
                    } else if p
                        .committed_metadata
                        .as_ref()
                        .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
                    {
                        Err(ResponseError::OffsetMetadataTooLarge)
                    } else {
                        Ok(PendingOffset {
                            group: group.clone(),
                            topic: t.name.to_string(),
                            partition: p.partition_index,
                            committed: Committed {
                                offset: p.committed_offset,
                                leader_epoch: p.committed_leader_epoch,
                                metadata: p.committed_metadata.map(|m| m.to_string()),
                            },
                        })
                    };
                    (p.partition_index, result)
                })
                .collect();
            (t.name, parts)
        })
        .collect();
    let staged: Vec<PendingOffset> = results
        .iter()
        .flat_map(|(_, parts)| parts.iter().filter_map(|(_, r)| r.as_ref().ok().cloned()))
        .collect();
    let outcome = if group.is_empty() {
        Err(ResponseError::InvalidGroupId)
    } else {
        state
            .groups
            .validate_txn_commit(
                &group,
                req.member_id.as_str(),
                req.group_instance_id.as_deref(),
                req.generation_id,
            )
            .and_then(|()| {
                if staged.is_empty() {
                    return Ok(());
                }
                state
                    .txns
                    .stage_offsets(
                        req.transactional_id.as_str(),
                        req.producer_id.0,
                        req.producer_epoch,
                        staged,
                        crate::util::now_ms(),
                    )
                    .map_err(super::storage_error)
                    .and_then(|r| r)
            })
            .map_err(|e| super::fenced_for_version(e, version, PRODUCER_FENCED_VERSION))
    };
    if let Err(e) = outcome {
        super::fail_the_rest(&mut results, e);
    }
    TxnOffsetCommitResponse::default().with_topics(
        results
            .into_iter()
            .map(|(name, parts)| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(TopicName(sb(name.to_string())))
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(i, r)| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(i)
                                    .with_error_code(super::code(r.err()))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
