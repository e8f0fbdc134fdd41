//! DeleteTopics: by name (v1-5) or by name or id (v6); deletes data and committed offsets.

use super::sb;
use crate::state::BrokerState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use std::sync::Arc;
use uuid::Uuid;

pub(crate) fn handle(state: &Arc<BrokerState>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mut targets: Vec<(Option<String>, Uuid)> = req
        .topic_names
        .into_iter()
        .map(|n| (Some(n.to_string()), Uuid::nil()))
        .collect();
    targets.extend(
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.to_string()), t.topic_id)),
    );
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let name = name.or_else(|| state.topics.get_by_id(id).map(|t| t.name.clone()));
            let result = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(sb(n))))
                .with_topic_id(id);
            let Some(name) = name else {
                return result.with_error_code(ResponseError::UnknownTopicId.code());
            };
            match state.topics.delete(&name) {
                Ok(Ok(topic)) => {
                    if let Err(e) = state.groups.forget_topic(&name) {
                        tracing::warn!(topic = %name, error = %e, "cannot drop offsets of deleted topic");
                    }
                    result.with_topic_id(topic.id)
                }
                Ok(Err(e)) => result.with_error_code(e.code()),
                Err(e) => result.with_error_code(super::storage_error(e).code()),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
