//! Metadata: brokers (just this one, also the controller), topics and partitions, creating
//! requested topics when the client allows it and the broker is configured to.

use super::sb;
use crate::state::BrokerState;
use crate::topics::Topic;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    version: i16,
    req: MetadataRequest,
) -> MetadataResponse {
    let node = BrokerId(state.node_id());
    // v0 has no null: an empty list means every topic.
    let all =
        req.topics.is_none() || (version == 0 && req.topics.as_ref().is_some_and(|t| t.is_empty()));
    let topics = if all {
        state
            .topics
            .list()
            .iter()
            .map(|t| describe(state, t))
            .collect()
    } else {
        let allow_create = req.allow_auto_topic_creation && state.config.auto_create_topics;
        req.topics
            .unwrap_or_default()
            .into_iter()
            .map(|requested| {
                let found = match &requested.name {
                    Some(name) => state.topics.get(name.as_str()),
                    None => state.topics.get_by_id(requested.topic_id),
                };
                if let Some(topic) = found {
                    return describe(state, &topic);
                }
                let Some(name) = requested.name else {
                    return MetadataResponseTopic::default()
                        .with_topic_id(requested.topic_id)
                        .with_error_code(ResponseError::UnknownTopicId.code());
                };
                let error = if allow_create {
                    match state.topics.create(
                        name.as_str(),
                        state.config.default_partitions,
                        BTreeMap::new(),
                        false,
                    ) {
                        Ok(Ok(topic)) => return describe(state, &topic),
                        // Lost a race with another creator: describe theirs.
                        Ok(Err(ResponseError::TopicAlreadyExists)) => {
                            match state.topics.get(name.as_str()) {
                                Some(topic) => return describe(state, &topic),
                                None => ResponseError::UnknownTopicOrPartition,
                            }
                        }
                        Ok(Err(e)) => e,
                        Err(e) => super::storage_error(e),
                    }
                } else if crate::topics::validate_topic_name(name.as_str()).is_err() {
                    ResponseError::InvalidTopicException
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                MetadataResponseTopic::default()
                    .with_name(Some(name))
                    .with_error_code(error.code())
            })
            .collect()
    };
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(sb(state.host.clone()))
            .with_port(state.port)])
        .with_cluster_id(Some(sb(state.cluster_id.clone())))
        .with_controller_id(node)
        .with_topics(topics)
}

fn describe(state: &BrokerState, topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(state.node_id());
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(sb(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(false)
        .with_partitions(
            (0..topic.partition_count())
                .map(|i| {
                    MetadataResponsePartition::default()
                        .with_partition_index(i)
                        .with_leader_id(node)
                        .with_leader_epoch(crate::log::LEADER_EPOCH)
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect(),
        )
}
