//! DescribeConfigs: every topic config with its override or default, and the broker settings
//! clients commonly ask about.

use super::sb;
use crate::state::BrokerState;
use crate::topics::TOPIC_CONFIG_DEFAULTS;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use std::sync::Arc;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

pub(crate) fn handle(
    state: &Arc<BrokerState>,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let entries: Vec<(String, String, i8)> = match r.resource_type {
                RESOURCE_TOPIC => {
                    let Some(topic) = state.topics.get(r.resource_name.as_str()) else {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let overrides = topic.config_overrides();
                    let mut entries: Vec<(String, String, i8)> = TOPIC_CONFIG_DEFAULTS
                        .iter()
                        .map(|(n, d)| match overrides.get(*n) {
                            Some(v) => ((*n).to_string(), v.clone(), SOURCE_TOPIC),
                            None => ((*n).to_string(), (*d).to_string(), SOURCE_DEFAULT),
                        })
                        .collect();
                    for (n, v) in &overrides {
                        if !TOPIC_CONFIG_DEFAULTS.iter().any(|(d, _)| d == n) {
                            entries.push((n.clone(), v.clone(), SOURCE_TOPIC));
                        }
                    }
                    entries
                }
                RESOURCE_BROKER => broker_configs(state),
                _ => return result.with_error_code(ResponseError::InvalidRequest.code()),
            };
            let keys = r.configuration_keys;
            result.with_configs(
                entries
                    .into_iter()
                    .filter(|(n, _, _)| {
                        keys.as_ref()
                            .is_none_or(|k| k.iter().any(|k| k.as_str() == n))
                    })
                    .map(|(n, v, source)| {
                        DescribeConfigsResourceResult::default()
                            .with_name(sb(n))
                            .with_value(Some(sb(v)))
                            .with_config_source(source)
                    })
                    .collect(),
            )
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn broker_configs(state: &BrokerState) -> Vec<(String, String, i8)> {
    let c = &state.config;
    [
        ("broker.id", c.node_id.to_string()),
        ("num.partitions", c.default_partitions.to_string()),
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
        ),
        ("message.max.bytes", c.max_message_bytes.to_string()),
        ("socket.request.max.bytes", c.max_request_bytes.to_string()),
        ("log.segment.bytes", c.segment_bytes.to_string()),
        ("default.replication.factor", "1".to_string()),
        ("offsets.topic.replication.factor", "1".to_string()),
        ("transaction.state.log.replication.factor", "1".to_string()),
        ("min.insync.replicas", "1".to_string()),
        (
            "group.initial.rebalance.delay.ms",
            c.group_initial_rebalance_delay.as_millis().to_string(),
        ),
        (
            "group.min.session.timeout.ms",
            c.group_min_session_timeout.as_millis().to_string(),
        ),
        (
            "group.max.session.timeout.ms",
            c.group_max_session_timeout.as_millis().to_string(),
        ),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v, SOURCE_STATIC_BROKER))
    .collect()
}
