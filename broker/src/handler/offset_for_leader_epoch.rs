//! OffsetForLeaderEpoch: with one node the leader epoch never changes, so every epoch up to the
//! current one ends at the log end offset.

use crate::state::BrokerState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use std::sync::Arc;

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = state.topics.get(t.topic.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition))
                    else {
                        return resp.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if p.current_leader_epoch > crate::log::LEADER_EPOCH {
                        return resp.with_error_code(ResponseError::UnknownLeaderEpoch.code());
                    }
                    if p.leader_epoch > crate::log::LEADER_EPOCH {
                        return resp;
                    }
                    let Ok(log) = partition.lock_log() else {
                        return resp.with_error_code(ResponseError::KafkaStorageError.code());
                    };
                    let end = log.next_offset();
                    resp.with_leader_epoch(crate::log::LEADER_EPOCH)
                        .with_end_offset(end)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
