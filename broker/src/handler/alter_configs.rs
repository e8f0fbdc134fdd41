//! AlterConfigs and IncrementalAlterConfigs: topic config overrides (set, delete, append to and
//! subtract from lists). Broker configs are static here and refused.

use super::sb;
use crate::state::BrokerState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    incremental_alter_configs_response, AlterConfigsRequest, AlterConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// IncrementalAlterConfigs operations (Kafka's AlterConfigOp.OpType).
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// The outcome for one resource: error code and message.
type Outcome = (i16, Option<StrBytes>);

/// AlterConfigs replaces a topic's overrides with exactly the given set.
pub(crate) fn handle_alter(
    state: &Arc<BrokerState>,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let configs: Vec<(String, Option<String>)> = r
                .configs
                .into_iter()
                .map(|c| (c.name.to_string(), c.value.map(|v| v.to_string())))
                .collect();
            let (code, message) = alter(
                state,
                r.resource_type,
                &r.resource_name,
                req.validate_only,
                |overrides| {
                    overrides.clear();
                    for (name, value) in configs {
                        if let Some(value) = value {
                            overrides.insert(name, value);
                        }
                    }
                    Ok(())
                },
            );
            kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse::default(
            )
            .with_error_code(code)
            .with_error_message(message)
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name)
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// IncrementalAlterConfigs changes only the named overrides.
pub(crate) fn handle_incremental(
    state: &Arc<BrokerState>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let ops: Vec<(String, i8, Option<String>)> = r
                .configs
                .into_iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.config_operation,
                        c.value.map(|v| v.to_string()),
                    )
                })
                .collect();
            let (code, message) = alter(
                state,
                r.resource_type,
                &r.resource_name,
                req.validate_only,
                |overrides| {
                    for (name, op, value) in ops {
                        apply(overrides, &name, op, value)?;
                    }
                    Ok(())
                },
            );
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn alter(
    state: &BrokerState,
    resource_type: i8,
    name: &StrBytes,
    validate_only: bool,
    change: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), ResponseError>,
) -> Outcome {
    match resource_type {
        RESOURCE_TOPIC => match state
            .topics
            .alter_configs(name.as_str(), validate_only, change)
        {
            Ok(Ok(())) => (0, None),
            Ok(Err(e)) => (e.code(), Some(sb(e.to_string()))),
            Err(e) => (super::storage_error(e).code(), None),
        },
        RESOURCE_BROKER => (
            ResponseError::InvalidRequest.code(),
            Some(sb(
                "broker configs of streams-broker are static (command-line flags)",
            )),
        ),
        _ => (
            ResponseError::InvalidRequest.code(),
            Some(sb(format!("unsupported resource type {resource_type}"))),
        ),
    }
}

/// One IncrementalAlterConfigs operation on a topic's overrides. List values are
/// comma-separated, as in Kafka.
fn apply(
    overrides: &mut BTreeMap<String, String>,
    name: &str,
    op: i8,
    value: Option<String>,
) -> Result<(), ResponseError> {
    match op {
        OP_SET => {
            let value = value.ok_or(ResponseError::InvalidConfig)?;
            overrides.insert(name.to_string(), value);
        }
        OP_DELETE => {
            overrides.remove(name);
        }
        OP_APPEND | OP_SUBTRACT => {
            let value = value.ok_or(ResponseError::InvalidConfig)?;
            let current = overrides
                .get(name)
                .cloned()
                .or_else(|| crate::topics::topic_config_default(name).map(str::to_string))
                .unwrap_or_default();
            let mut items: Vec<String> = split_list(&current);
            for item in split_list(&value) {
                if op == OP_APPEND {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                } else {
                    items.retain(|i| *i != item);
                }
            }
            overrides.insert(name.to_string(), items.join(","));
        }
        _ => return Err(ResponseError::InvalidRequest),
    }
    Ok(())
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_operations_edit_overrides() {
        let mut o = BTreeMap::new();
        apply(&mut o, "retention.ms", OP_SET, Some("1000".into())).unwrap();
        assert_eq!(o["retention.ms"], "1000");
        apply(&mut o, "cleanup.policy", OP_APPEND, Some("compact".into())).unwrap();
        assert_eq!(o["cleanup.policy"], "delete,compact");
        apply(&mut o, "cleanup.policy", OP_SUBTRACT, Some("delete".into())).unwrap();
        assert_eq!(o["cleanup.policy"], "compact");
        apply(&mut o, "retention.ms", OP_DELETE, None).unwrap();
        assert!(!o.contains_key("retention.ms"));
        assert_eq!(
            apply(&mut o, "retention.ms", OP_SET, None),
            Err(ResponseError::InvalidConfig)
        );
        assert_eq!(
            apply(&mut o, "retention.ms", 9, Some("1".into())),
            Err(ResponseError::InvalidRequest)
        );
    }
}
