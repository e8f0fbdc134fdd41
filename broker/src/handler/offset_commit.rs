//! OffsetCommit: checks the member and generation, then stores offsets (with their metadata
//! string) durably before answering.

use crate::group::offsets::Committed;
use crate::state::BrokerState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};
use std::sync::Arc;

/// Per partition: the commit to store, or the error to report.
type PartitionResult = super::PartitionOutcome<Committed>;

/// Kafka's offset.metadata.max.bytes default.
const MAX_METADATA_BYTES: usize = 4096;

pub(crate) fn handle(state: &Arc<BrokerState>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = req.group_id.as_str();
    let mut results: Vec<(TopicName, Vec<PartitionResult>)> = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = state.topics.get(t.name.as_str());
            let parts = t
                .partitions
                .into_iter()
                .map(|p| {
                    let result = if topic
                        .as_ref()
                        .and_then(|t| t.partition(p.partition_index))
                        .is_none()
                    {
                        Err(ResponseError::UnknownTopicOrPartition)
                    } else if p
                        .committed_metadata
                        .as_ref()
                        .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
                    {
                        Err(ResponseError::OffsetMetadataTooLarge)
                    } else {
                        Ok(Committed {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: p.committed_metadata.map(|m| m.to_string()),
                        })
                    };
                    (p.partition_index, result)
                })
                .collect();
            (t.name, parts)
        })
        .collect();
    let commits: Vec<((String, i32), Committed)> = results
        .iter()
        .flat_map(|(name, parts)| {
            parts
                .iter()
                .filter_map(|(i, r)| r.as_ref().ok().map(|c| ((name.to_string(), *i), c.clone())))
        })
        .collect();
    let outcome = if group.is_empty() {
        Err(ResponseError::InvalidGroupId)
    } else if commits.is_empty() {
        Ok(())
    } else {
        match state.groups.commit(
            group,
            req.member_id.as_str(),
            req.group_instance_id.as_deref(),
            req.generation_id_or_member_epoch,
            commits,
        ) {
            Ok(r) => r,
            Err(e) => Err(super::storage_error(e)),
        }
    };
    if let Err(e) = outcome {
        super::fail_the_rest(&mut results, e);
    }
    OffsetCommitResponse::default().with_topics(
        results
            .into_iter()
            .map(|(name, parts)| {
                OffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(i, r)| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(i)
                                    .with_error_code(r.err().map_or(0, |e| e.code()))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
