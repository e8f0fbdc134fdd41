//! CreatePartitions: grows topics (partitions are never removed).

use crate::state::BrokerState;
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
            let code = match state
                .topics
                .grow(t.name.as_str(), t.count, req.validate_only)
            {
                Ok(Ok(())) => 0,
                Ok(Err(e)) => e.code(),
                Err(e) => super::storage_error(e).code(),
            };
            CreatePartitionsTopicResult::default()
                .with_name(t.name)
                .with_error_code(code)
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
