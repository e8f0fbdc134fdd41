//! CreatePartitions: grows topics (partitions are never removed), up to
//! [`MAX_PARTITIONS`](crate::topics::MAX_PARTITIONS) each.

use crate::state::BrokerState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use std::sync::Arc;

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if let Some(message) = crate::topics::partition_count_refusal(t.count) {
                return result
                    .with_error_code(ResponseError::InvalidPartitions.code())
                    .with_error_message(Some(super::sb(message)));
            }
            let code = match state
                .topics
                .grow(t.name.as_str(), t.count, req.validate_only)
            {
                Ok(Ok(())) => 0,
                Ok(Err(e)) => e.code(),
                Err(e) => super::storage_error(e).code(),
            };
            result.with_error_code(code)
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
