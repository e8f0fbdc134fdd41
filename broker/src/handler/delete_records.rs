//! DeleteRecords: moves a partition's log start forward (offset -1 means the high watermark);
//! Kafka Streams purges repartition topics with it.

use crate::state::BrokerState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use std::sync::Arc;

pub(crate) fn handle(state: &Arc<BrokerState>, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = state.topics.get(t.name.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let result = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let Some(partition) =
                        topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let Ok(mut log) = partition.lock_log() else {
                        return result.with_error_code(ResponseError::KafkaStorageError.code());
                    };
                    let offset = if p.offset == -1 {
                        log.next_offset()
                    } else {
                        p.offset
                    };
                    match log.delete_records_before(offset) {
                        Ok(Ok(low)) => result.with_low_watermark(low),
                        Ok(Err(e)) => result.with_error_code(e.code()),
                        Err(e) => result.with_error_code(super::storage_error(e).code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
