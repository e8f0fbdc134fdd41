//! CreateTopics: honours -1 for partitions and replication factor (Kafka Streams sends it),
//! validate_only, and stores config overrides; v5+ answers with the resulting configs. At most
//! [`MAX_PARTITIONS`](crate::topics::MAX_PARTITIONS) partitions per topic.

use super::sb;
use crate::state::BrokerState;
use crate::topics::Topic;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// config_source value for a default (Kafka's DEFAULT_CONFIG).
const SOURCE_DEFAULT: i8 = 5;
/// config_source value for a topic override (Kafka's DYNAMIC_TOPIC_CONFIG).
const SOURCE_TOPIC: i8 = 1;

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    version: i16,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicated: HashSet<String> = req
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.to_string()))
        .map(|t| t.name.to_string())
        .collect();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let mut result = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            if duplicated.contains(t.name.as_str()) {
                return result.with_error_code(ResponseError::InvalidRequest.code());
            }
            if t.replication_factor > 1 && !state.config.accept_any_replication_factor {
                return result
                    .with_error_code(ResponseError::InvalidReplicationFactor.code())
                    .with_error_message(Some(sb(
                        "this broker has a single node: replication factor must be 1 or -1",
                    )));
            }
            let partitions = if !t.assignments.is_empty() {
                t.assignments.len() as i32
            } else if t.num_partitions == -1 {
                state.config.default_partitions
            } else {
                t.num_partitions
            };
            if let Some(message) = crate::topics::partition_count_refusal(partitions) {
                return result
                    .with_error_code(ResponseError::InvalidPartitions.code())
                    .with_error_message(Some(sb(message)));
            }
            let configs: BTreeMap<String, String> = t
                .configs
                .into_iter()
                .filter_map(|c| Some((c.name.to_string(), c.value?.to_string())))
                .collect();
            match state
                .topics
                .create(t.name.as_str(), partitions, configs, req.validate_only)
            {
                Ok(Ok(topic)) => {
                    result.topic_id = topic.id;
                    result.num_partitions = partitions;
                    result.replication_factor = 1;
                    if version >= 5 {
                        result.configs = Some(describe(&topic));
                    }
                    result
                }
                Ok(Err(e)) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(e.to_string()))),
                Err(e) => result.with_error_code(super::storage_error(e).code()),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

fn describe(topic: &Topic) -> Vec<CreatableTopicConfigs> {
    let overrides = topic.config_overrides();
    crate::topics::TOPIC_CONFIG_DEFAULTS
        .iter()
        .map(|(name, default)| {
            let (value, source) = match overrides.get(*name) {
                Some(v) => (v.clone(), SOURCE_TOPIC),
                None => ((*default).to_string(), SOURCE_DEFAULT),
            };
            CreatableTopicConfigs::default()
                .with_name(sb(*name))
                .with_value(Some(sb(value)))
                .with_config_source(source)
        })
        .collect()
}
