//! JoinGroup: parks the caller in the group coordinator until the rebalance completes; v4+
//! unknown members first get MEMBER_ID_REQUIRED with an id to rejoin with.

use super::{code, sb, Ctx};
use crate::group::state::JoinParams;
use crate::state::BrokerState;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use std::sync::Arc;
use std::time::Duration;

pub(crate) async fn handle(
    state: &Arc<BrokerState>,
    ctx: &Ctx,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
    let rebalance = if ctx.version >= 1 {
        Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64)
    } else {
        session
    };
    let params = JoinParams {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|i| i.to_string()),
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout: session,
        rebalance_timeout: rebalance,
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: ctx.version >= 4,
    };
    let outcome = state.groups.join(req.group_id.as_str(), params).await;
    // Before v7 the protocol name is a non-nullable string.
    let protocol_name = match outcome.protocol_name {
        Some(name) => Some(sb(name)),
        None if ctx.version < 7 => Some(sb("")),
        None => None,
    };
    JoinGroupResponse::default()
        .with_error_code(code(outcome.error))
        .with_generation_id(outcome.generation)
        .with_protocol_type(outcome.protocol_type.map(sb))
        .with_protocol_name(protocol_name)
        .with_leader(sb(outcome.leader))
        .with_member_id(sb(outcome.member_id))
        .with_members(
            outcome
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(sb(id))
                        .with_group_instance_id(instance.map(sb))
                        .with_metadata(metadata)
                })
                .collect(),
        )
}
