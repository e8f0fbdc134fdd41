//! ListOffsets: -1 latest (the high watermark, or the last stable offset under
//! `read_committed`), -2 earliest (log start), -3 the record with the largest timestamp,
//! otherwise the first offset whose timestamp is at or after the one asked for (under
//! `read_committed`, only below the last stable offset).

use crate::state::BrokerState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::sync::Arc;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    version: i16,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let read_committed = req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = state.topics.get(t.name.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        // The encoder refuses a leader epoch before v4.
                        .with_leader_epoch(if version >= 4 {
                            crate::log::LEADER_EPOCH
                        } else {
                            -1
                        });
                    let Some(partition) =
                        topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        return resp.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let Ok(log) = partition.lock_log() else {
                        return resp.with_error_code(ResponseError::KafkaStorageError.code());
                    };
                    let readable_end = if read_committed {
                        log.last_stable_offset()
                    } else {
                        log.next_offset()
                    };
                    let found = match p.timestamp {
                        LATEST => Ok(Some((readable_end, -1))),
                        EARLIEST => Ok(Some((log.log_start_offset(), -1))),
                        MAX_TIMESTAMP => log.max_timestamp_offset(),
                        ts if ts >= 0 => log
                            .offset_for_timestamp(ts)
                            .map(|found| found.filter(|(offset, _)| *offset < readable_end)),
                        _ => return resp.with_error_code(ResponseError::InvalidRequest.code()),
                    };
                    match found {
                        Ok(Some((offset, timestamp))) => {
                            resp.with_offset(offset).with_timestamp(timestamp)
                        }
                        Ok(None) => resp,
                        Err(e) => resp.with_error_code(super::storage_error(e).code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
